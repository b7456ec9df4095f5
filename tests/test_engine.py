"""The query path with a fake embedder: shapes, offsets, input handling, follow-ups."""

import dataclasses
import subprocess
import sys

import pytest

from app.answer import best_span, clause_spans, time_frame
from app.engine import MAX_QUESTION_CHARS, Answer, Passage
from app.errors import QuestionError

from .conftest import REPORT


def test_answer_and_passage_are_frozen(fake_engine):
    a = fake_engine.ask("2024年地区生产总值是多少？")
    assert isinstance(a, Answer) and all(isinstance(p, Passage) for p in a.passages)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.found = False


def test_passages_are_at_most_k_and_best_first(fake_engine):
    a = fake_engine.ask("新增就业多少人", k=3)
    assert len(a.passages) <= 3
    rest = [p.score for p in a.passages[1:]]
    assert rest == sorted(rest, reverse=True)


def test_the_quotes_own_passage_comes_first(fake_engine):
    a = fake_engine.with_config(refuse=False).ask("新增就业多少人", k=3)
    first = a.passages[0]
    assert a.found and first.start <= a.start and a.end <= first.end
    assert (first.mark_start, first.mark_end) == (a.start, a.end)


def test_quotes_are_verbatim_from_the_file_at_their_offsets(fake_engine):
    raw = REPORT.read_text(encoding="utf-8")
    a = fake_engine.ask("地区生产总值预计完成多少亿元")
    for p in a.passages:
        assert "".join(raw[p.start:p.end].split()) == "".join(p.text.split())
    if a.found:
        assert "".join(raw[a.start:a.end].split()) == "".join(a.text.split())
        assert raw[a.highlight_start:a.highlight_end].replace("\n", "") == a.highlight
        assert a.highlight in a.text


def test_a_list_that_ends_with_another_item_in_the_next_sentence_is_quoted_whole(fake_engine):
    # "…主要是：A；B；C；D。另外，还有E。": the 另外-sentence is the list's last item
    raw = REPORT.read_text(encoding="utf-8")
    a = fake_engine.with_config(refuse=False).ask("当前经济社会发展中存在哪些困难和问题？")
    assert a.found and "主要是：" in a.text and a.text.endswith("高质量发展的需求。")
    assert "".join(raw[a.start:a.end].split()) == "".join(a.text.split())


@pytest.mark.parametrize("bad", [None, 42, ["问题"], b"bytes"])
def test_a_non_string_question_gets_a_clear_error(fake_engine, bad):
    with pytest.raises(QuestionError, match="must be a string"):
        fake_engine.ask(bad)


@pytest.mark.parametrize("empty", ["", "   ", "\n\t", "\x00\x00"])
def test_an_empty_question_gets_a_clear_error(fake_engine, empty):
    with pytest.raises(QuestionError, match="empty"):
        fake_engine.ask(empty)


def test_a_huge_question_is_refused_with_the_limit(fake_engine):
    with pytest.raises(QuestionError, match=f"{MAX_QUESTION_CHARS:,}"):
        fake_engine.ask("海" * 100_000)


@pytest.mark.parametrize("q", ["😀😀😀", "？？！！。。", "……"])
def test_a_question_with_nothing_to_search_is_not_found(fake_engine, q):
    assert fake_engine.ask(q).found is False


@pytest.mark.parametrize("q", ["'; DROP TABLE chunks; --", "<img src=x onerror=alert(1)>", "**粗体** [链接](http://x)",
                               "地区\x00生产\x07总值"])
def test_hostile_text_is_just_a_question(fake_engine, q):
    a = fake_engine.ask(q)
    assert isinstance(a.found, bool)


def test_k_is_validated(fake_engine):
    with pytest.raises(QuestionError, match="k must be"):
        fake_engine.ask("地区生产总值", k=0)


def test_history_reaches_the_resolved_question(fake_engine):
    a = fake_engine.ask("那2025年呢？", history=["2024年改造老旧小区多少个？"])
    assert a.resolved_question == "2025年改造老旧小区多少个？"


@pytest.mark.parametrize("q,frame", [("2024年地区生产总值是多少", "past"), ("2025年计划改造多少个老旧小区", "future"),
                                     ("去年新增就业多少人", "past"), ("今年的目标是多少", "future"),
                                     ("What was the GDP last year?", "past"), ("什么是飞地经济", None)])
def test_time_frame_of_a_question(q, frame):
    assert time_frame(q, 2025) == frame  # this report is of 2025: it reviews 2024 and plans 2025


def test_clauses_do_not_split_thousands_separators():
    assert [c.text for c in clause_spans("计划投资 4,000 万元改造 21 个老旧小区，持续改善人居环境。")] == [
        "计划投资 4,000 万元改造 21 个老旧小区", "持续改善人居环境"]


def test_definition_span_is_the_body_after_shi_zhi():
    s = "7. 飞地经济：是指两个相互独立的行政地区。"
    a, b = best_span("什么是飞地经济？", s)
    assert s[a:b] == "两个相互独立的行政地区"


def test_figure_question_highlights_the_clause_with_the_figure():
    s = "2024 年，地区生产总值预计完成 231.52 亿元，同比增长 5.5%；"
    a, b = best_span("2024年地区生产总值是多少？", s)
    assert s[a:b] == "地区生产总值预计完成 231.52 亿元"


def test_import_is_light_and_public_names_resolve():
    code = ("import sys, app; heavy = [m for m in ('torch', 'gradio', 'faiss', 'sentence_transformers', 'jieba') "
            "if m in sys.modules]; print(heavy); [getattr(app, n) for n in app.__all__]")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "app", "--help"], capture_output=True, text=True, check=True).stdout
    for cmd in ("ask", "chat", "index", "serve", "eval", "bench"):
        assert cmd in out


def test_the_encoder_reads_a_question_without_the_reports_own_region_names():
    from types import SimpleNamespace

    from app.engine import _region_names, _without

    docs = [SimpleNamespace(meta=SimpleNamespace(region="海拉尔区")), SimpleNamespace(meta=SimpleNamespace(region="通源县"))]
    names = _region_names(docs)
    assert _without("海拉尔有多少家上规模的工厂", names) == "有多少家上规模的工厂"
    assert _without("海拉尔区和通源县2025年的目标", names) == "和2025年的目标"
    assert _without("海拉尔区", names) == "海拉尔区"  # nothing else to read: keep it
    assert _without("今年的目标", _region_names([])) == "今年的目标"
