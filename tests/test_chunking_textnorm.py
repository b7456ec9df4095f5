"""Chunks and sentences keep offsets and never cut figures; normalisation and BM25 tokens."""

import pytest

from app.chunking import ChunkSettings, chunk_sections, split_sentences
from app.corpus import Doc, Span, sections
from app.textnorm import expand_query, figures, normalize, tokenize

from .conftest import REPORT



@pytest.fixture(scope="module")
def parts():
    text = REPORT.read_text(encoding="utf-8")
    return text, chunk_sections(sections(Doc(REPORT.name, text, "x")), ChunkSettings(120, 0))


def test_chunks_respect_the_size_and_keep_offsets(parts):
    raw, (chunks, sents) = parts
    assert chunks and sents
    for c in chunks:
        assert len(c.text) <= 120 or "。" not in c.text[:-1]
        assert all(raw[o] == ch for ch, o in zip(c.text, c.offsets))


def test_no_chunk_boundary_falls_inside_a_figure(parts):
    raw, (chunks, _) = parts
    for c in chunks:
        for edge in (c.start, c.end):
            left, right = raw[edge - 1 : edge], raw[edge : edge + 1]
            assert not (left.isdigit() and (right.isdigit() or right in ".,%")), c.text[:30]
            assert not (left in ".," and right.isdigit()), c.text[:30]


def test_sentences_split_on_chinese_terminators():
    text = "第一句。第二句；第三句！“引号。”结束"
    span = Span(text, tuple(range(len(text))))
    assert [s.text for s in split_sentences(span)] == ["第一句。", "第二句；", "第三句！", "“引号。”", "结束"]


def test_chunk_settings_are_validated():
    with pytest.raises(ValueError, match="chunk size"):
        ChunkSettings(size=10)


def test_normalize_unifies_script_width_and_spacing():
    assert normalize("海拉爾區 ２３１．５２ 億元") == "海拉尔区231.52亿元"
    assert normalize("6,738 户") == "6738户"


def test_figures_are_kept_whole_with_units():
    assert figures(normalize("地区生产总值预计完成 231.52 亿元，增长 5.8%左右，新登记 6,738 户")) == [
        "231.52亿元", "5.8%", "6738户"]


def test_bm25_tokens_match_figures_written_with_or_without_spaces():
    assert "231.52亿元" in tokenize("231.52 亿元") and "231.52亿元" in tokenize("231.52亿元")


def test_a_run_of_han_characters_is_not_one_token():
    toks = tokenize("全体居民人均可支配收入")
    assert len(toks) > 3 and "#收入" in toks


def test_everyday_terms_map_to_the_reports_terms():
    assert "地区生产总值" in expand_query(normalize("GDP去年多少"))


REPORT_WORDS = ("数字经济", "冰雪经济", "地区生产总值")


@pytest.mark.parametrize("q", ["去年经济涨了多少", "去年海拉尔经济总量有多少", "经济增速几个点"])
def test_the_economys_growth_or_size_is_asked_as_gdp(q):
    assert "地区生产总值" in expand_query(normalize(q), lambda w: any(w in t for t in REPORT_WORDS))


@pytest.mark.parametrize("q", ["数字经济规模多大", "冰雪经济增长多少"])
def test_a_kind_of_economy_the_report_names_stays_itself(q):
    assert "地区生产总值" not in expand_query(normalize(q), lambda w: any(w in t for t in REPORT_WORDS))


def test_without_the_reports_words_the_economy_is_left_alone():
    assert expand_query(normalize("去年经济涨了多少")) == normalize("去年经济涨了多少")
