"""Many reports through the engine and the CLI (fake embedder): citations, filters, comparisons."""

import pytest

from app.errors import FilterError
from app.synth import write_corpus

from .conftest import FakeEmbedder

QUESTIONS = ["今年地区生产总值增长目标是多少？", "去年新增就业多少人？", "什么是飞地经济？", "这份报告是谁作的？",
             "改造老旧小区多少个？"]


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    from app.config import Settings
    from app.engine import Engine

    root = tmp_path_factory.mktemp("multi")
    write_corpus(root / "corpus", 6, small=True)
    s = Settings(corpus_dir=root / "corpus", index_dir=root / "index", model="fake-bigram-64")
    # the fake model's vectors say little, so the reader's refusal is off: these tests are about which
    # document an answer comes from, not about its quality (the multi-report eval measures that)
    return Engine.open(s, embedder=FakeEmbedder()).with_config(refuse=False)


def test_every_answer_and_passage_names_its_document(multi):
    a = multi.ask("今年地区生产总值增长目标是多少？")
    assert a.found and a.document.endswith("年政府工作报告") and a.citation.startswith(a.document + " › ")
    assert a.year in {d.meta.year for d in multi.documents} and a.region
    for p in a.passages:
        entry = next(d for d in multi.documents if d.source == p.source)
        assert p.document == entry.meta.title and p.year == entry.meta.year and p.citation.startswith(p.document)


@pytest.mark.parametrize("key", ["source", "year", "region"])
def test_a_filtered_question_never_quotes_another_document(multi, key):
    for entry in multi.documents:
        value = entry.source if key == "source" else getattr(entry.meta, key)
        allowed = {d.source for d in multi.documents
                   if (d.source if key == "source" else getattr(d.meta, key)) == value}
        for q in QUESTIONS:
            a = multi.ask(q, k=10, filters={key: value})
            assert {p.source for p in a.passages} <= allowed, (q, value)
            assert not a.found or a.source in allowed


def test_filters_narrow_before_ranking_so_a_small_document_still_fills_k(multi):
    entry = multi.documents[1]
    a = multi.ask("地区生产总值", k=10, filters={"source": entry.source})
    n_chunks = entry.chunks[1] - entry.chunks[0]
    assert len(a.passages) == min(10, n_chunks) and {p.source for p in a.passages} == {entry.source}


def test_a_comparison_quotes_one_sentence_from_each_report_named(multi):
    a = multi.ask("海拉尔区2024年和2025年的地区生产总值增长目标分别是多少？")
    assert [p.label for p in a.parts] == ["2024年", "2025年"]
    assert [(p.region, p.year) for p in a.parts] == [("海拉尔区", 2024), ("海拉尔区", 2025)]
    by_year = {d.meta.year: d.source for d in multi.documents if d.meta.region == "海拉尔区"}
    assert [p.source for p in a.parts] == [by_year[2024], by_year[2025]] and all(p.found for p in a.parts)
    assert (a.text, a.source) == (a.parts[0].text, a.parts[0].source)  # the Answer's own fields: the first part's


def test_a_single_report_question_has_no_parts(multi):
    a = multi.ask("今年地区生产总值增长目标是多少？", filters={"year": 2024, "region": "通源县"})
    assert a.parts == () and a.label == "" and a.found


def test_a_bad_filter_is_a_question_error_naming_the_fix(multi):
    with pytest.raises(FilterError, match="unknown filter key"):
        multi.ask("地区生产总值", filters={"county": "x"})
    with pytest.raises(FilterError, match="no report matches"):
        multi.ask("地区生产总值", filters={"year": 1999})


def test_the_cli_filter_flag_keeps_one_year(multi, capsys, monkeypatch):
    import json

    from app import cli

    monkeypatch.setattr(cli, "_engine", lambda args: multi)
    assert cli.main(["ask", "今年地区生产总值增长目标是多少？", "--filter", "year=2024", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["year"] == 2024 and {p["year"] for p in out["passages"]} == {2024}


def test_the_cli_names_a_bad_filter(multi, capsys, monkeypatch):
    from app import cli

    monkeypatch.setattr(cli, "_engine", lambda args: multi)
    assert cli.main(["ask", "地区生产总值", "--filter", "year"]) == 2
    assert "key=value" in capsys.readouterr().err


def test_the_chat_reply_names_the_report_and_shows_each_part(multi):
    from app.ui import format_reply

    a = multi.ask("海拉尔区2024年和2025年的地区生产总值增长目标分别是多少？")
    html = format_reply(a)[0]["content"]
    assert "2024年" in html and "2025年" in html
    assert "海拉尔区 2024 年政府工作报告 ›" in html and "海拉尔区 2025 年政府工作报告 ›" in html


def test_the_picker_keeps_the_chat_to_the_chosen_report(multi):
    from app.ui import make_respond

    chosen = next(d for d in multi.documents if d.meta.region == "通源县" and d.meta.year == 2024)
    others = {d.meta.title for d in multi.documents} - {chosen.meta.title}
    reply = "".join(m["content"] for m in make_respond(multi)("今年地区生产总值增长目标是多少？", [], [chosen.source]))
    assert chosen.meta.title in reply and not any(t in reply for t in others)


def test_the_page_offers_the_picker_only_for_several_reports(multi, fake_engine):
    from app.ui import build_ui, document_choices

    def picker(engine):
        demo = build_ui(engine)
        return [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "qa-picker"]

    (dropdown,) = picker(multi)
    assert [v for _, v in dropdown.choices] == [v for _, v in document_choices(multi.documents)]
    assert len(dropdown.choices) == 6 and dropdown.choices[0][0].startswith(("海拉尔区 2025", "通源县 2025"))
    assert picker(fake_engine) == []


def test_a_word_only_other_reports_use_is_absent_within_a_filter(multi):
    from app.retrieval import Scope

    lex = multi.lexicon
    word = "君尚奥特莱斯"  # a shopping centre the real report names; the small generated reports dropped it
    holders = [d for d in multi.documents if word in (multi.data.folder.parent.parent / "corpus" / d.source).read_text()]
    others = [d for d in multi.documents if d not in holders]
    assert holders and others and lex.present(word)
    assert lex.present(word, Scope.of(holders).chunks)
    assert not lex.present(word, Scope.of(others[:1]).chunks)
