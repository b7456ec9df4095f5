"""Cleaning and sectioning: offsets stay exact, PDF artifacts are repaired, the hierarchy is the report's."""

from pathlib import Path

import pytest

from app.corpus import Doc, clean, load_corpus, sections
from app.errors import CorpusError

from .conftest import REPORT


@pytest.fixture(scope="module")
def report_sections():
    text = REPORT.read_text(encoding="utf-8")
    return text, sections(Doc(REPORT.name, text, "x"))


def _find(secs, needle):
    return next(s for s in secs if needle in s.body.text)


def test_every_kept_character_maps_to_its_offset_in_the_file(report_sections):
    raw, secs = report_sections
    for s in secs:
        assert all(raw[o] == ch for ch, o in zip(s.body.text, s.body.offsets))


def test_page_break_inside_a_sentence_is_joined(report_sections):
    _, secs = report_sections
    assert "重点项目 30 个，完成投资 37.56 亿元" in _find(secs, "完成投资 37.56").body.text
    assert "君尚玖号周边道路建成通车" in _find(secs, "君尚玖号").body.text
    assert "坚持矛盾不上交" in _find(secs, "枫桥镇").body.text


def test_footer_is_dropped(report_sections):
    _, secs = report_sections
    assert not any("海拉尔区政府公报" in s.body.text for s in secs)


def test_heading_levels_come_from_numbering_not_markdown(report_sections):
    _, secs = report_sections
    tops = {s.path[0] for s in secs}
    # "### 三、" is written one level deeper than "## 一、" in the file, but is a top-level part
    assert {"一、2024 年工作回顾", "二、2025 年主要工作", "三、加快建设人民满意的实干政府", "名词解释"} <= tops


def test_lead_sentences_and_items_form_the_breadcrumb(report_sections):
    _, secs = report_sections
    s = _find(secs, "推进冰雪运动、冰雪文化")
    assert s.breadcrumb == "二、2025 年主要工作 › （五）坚持释放潜力，在促进消费提升上实现更大突破 › 挖掘冰雪经济潜力"
    gdp = _find(secs, "231.52 亿元")
    assert gdp.path[:2] == ("一、2024 年工作回顾", "（一）“进”的步伐更为稳健")


def test_each_glossary_term_is_its_own_section(report_sections):
    _, secs = report_sections
    gloss = [s for s in secs if s.path[0] == "名词解释"]
    assert len(gloss) == 23
    assert gloss[6].path == ("名词解释", "7. 飞地经济")


def test_header_is_content(report_sections):
    _, secs = report_sections
    assert "区长 于 民" in secs[0].body.text


def test_page_break_after_a_lead_keeps_the_text_under_that_lead(report_sections):
    _, secs = report_sections
    assert _find(secs, "顺利完成财政部监测平台").path[-1] == "债务风险防控有力"


def test_clean_joins_only_prose():
    paras = clean("标题行\n\n第二行也没有标点\n\n一句话没有写完，\n\n后半句。")
    assert [p.text for p in paras] == ["标题行", "第二行也没有标点", "一句话没有写完，后半句。"]


def test_non_utf8_file_is_named_and_the_others_still_load(tmp_path):
    (tmp_path / "good.txt").write_text("好的文件。", encoding="utf-8")
    (tmp_path / "gbk.txt").write_bytes("海拉尔区政府工作报告".encode("gbk"))
    (tmp_path / "empty.md").write_bytes(b"")
    (tmp_path / "blob.txt").write_bytes(b"\x00\x01\x02binary")
    docs, errors = load_corpus(tmp_path)
    assert [d.source for d in docs] == ["good.txt"]
    msgs = " ".join(str(e) for e in errors)
    assert "gbk.txt" in msgs and "not UTF-8" in msgs and "iconv" in msgs
    assert "empty.md" in msgs and "empty" in msgs
    assert "blob.txt" in msgs and "binary" in msgs


def test_corpus_with_nothing_usable_is_an_error(tmp_path):
    (tmp_path / "bad.txt").write_bytes("只有GBK".encode("gbk"))
    with pytest.raises(CorpusError, match="bad.txt"):
        load_corpus(tmp_path)


def test_missing_corpus_folder_is_an_error(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        load_corpus(Path(tmp_path / "nope"))
