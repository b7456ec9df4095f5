"""Document metadata, per-document time, filters and comparison plans: pure parts, no index."""

import json

import pytest

from app.answer import section_time, section_year, time_frame
from app.compare import narrow, plan
from app.corpus import load_corpus, sections
from app.docmeta import DocMeta, parse_title_block
from app.errors import FilterError
from app.filters import parse_filter_args, select
from app.index import DocumentEntry

from .conftest import REPORT


def _write(folder, name, text, sidecar=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    if sidecar is not None:
        (folder / (name + ".meta.json")).write_text(json.dumps(sidecar, ensure_ascii=False), encoding="utf-8")


def test_title_block_gives_region_level_year_and_date():
    meta = parse_title_block(REPORT.read_text(encoding="utf-8"))
    assert meta == DocMeta("海拉尔区 2025 年政府工作报告", "海拉尔区", "district", 2025, "2025-01-20")


def test_front_matter_sets_metadata_and_is_not_report_text(tmp_path):
    body = "# 某某报告\n\n## 一、工作回顾\n\n去年，全县地区生产总值增长 5%。\n"
    _write(tmp_path, "a.md", "---\nregion: 安川县\nyear: 2021\ndate: 2021-01-05\n---\n" + body)
    (doc,), errors = load_corpus(tmp_path)
    assert not errors
    assert (doc.meta.region, doc.meta.level, doc.meta.year, doc.meta.date) == ("安川县", "county", 2021, "2021-01-05")
    assert not any("region" in s.body.text or "---" in s.body.text for s in sections(doc))


def test_sidecar_overrides_the_title_block(tmp_path):
    _write(tmp_path, "r.txt", REPORT.read_text(encoding="utf-8"), {"year": 2026, "level": "county"})
    (doc,), errors = load_corpus(tmp_path)
    assert not errors and doc.meta.year == 2026 and doc.meta.level == "county" and doc.meta.region == "海拉尔区"


def test_a_bad_sidecar_is_reported_and_the_document_still_indexed(tmp_path):
    _write(tmp_path, "r.txt", REPORT.read_text(encoding="utf-8"), {"year": "next year"})
    docs, errors = load_corpus(tmp_path)
    assert [d.meta.year for d in docs] == [2025]
    assert len(errors) == 1 and "year must be a number" in str(errors[0]) and "r.txt.meta.json" in str(errors[0])


def test_unknown_sidecar_key_names_the_allowed_ones(tmp_path):
    _write(tmp_path, "r.txt", REPORT.read_text(encoding="utf-8"), {"province": "内蒙古"})
    _, errors = load_corpus(tmp_path)
    assert "unknown metadata key(s) ['province']" in str(errors[0]) and "region" in str(errors[0])


def test_editing_a_sidecar_changes_the_documents_digest(tmp_path):
    _write(tmp_path, "r.txt", REPORT.read_text(encoding="utf-8"), {"year": 2025})
    (before,), _ = load_corpus(tmp_path)
    (tmp_path / "r.txt.meta.json").write_text('{"year": 2024}', encoding="utf-8")
    (after,), _ = load_corpus(tmp_path)
    assert before.sha256 != after.sha256 and after.meta.year == 2024


@pytest.mark.parametrize("path,year,tense", [
    (("一、2024 年工作回顾",), 2025, "past"), (("二、2025 年主要工作",), 2025, "future"),
    (("一、2025 年主要工作", "（一）…"), 2025, "future"),  # the plans first: the number says nothing
    (("二、2024 年工作回顾",), 2025, "past"), (("三、2030 年",), 2030, "future"), (("三、2029 年",), 2030, "past"),
    (("三、加快建设人民满意的实干政府",), 2025, None), (("海拉尔区 2025 年政府工作报告",), 2025, None),
    (("名词解释", "7. 飞地经济"), 2025, None),
])
def test_a_sections_tense_comes_from_its_heading(path, year, tense):
    assert section_time(path, year) == tense


def test_a_report_reviews_the_year_before_and_plans_its_own():
    assert section_year(("一、2023 年工作回顾",), 2024) == 2023
    assert section_year(("二、2024 年主要工作",), 2024) == 2024


@pytest.mark.parametrize("q,year,frame", [
    ("2024年地区生产总值是多少", 2025, "past"), ("2024年地区生产总值是多少", 2024, "future"),
    ("2024年地区生产总值是多少", 2023, None), ("去年新增就业多少人", 2019, "past"), ("今年的目标是多少", 2019, "future"),
    ("2024年地区生产总值是多少", None, None),
])
def test_time_words_resolve_against_the_reports_own_year(q, year, frame):
    assert time_frame(q, year) == frame


def _entries():
    out, c = [], 0
    for r, lvl in (("海拉尔区", "district"), ("通源县", "county")):
        for y in (2023, 2024, 2025):
            out.append(DocumentEntry(f"{r}-{y}.txt", DocMeta(f"{r} {y} 年政府工作报告", r, lvl, y), (c, c + 10),
                                     (c * 3, c * 3 + 30)))
            c += 10
    return out


def test_filters_keep_the_matching_documents():
    docs = _entries()
    assert [d.source for d in select(docs, {"region": "通源县", "year": 2024})] == ["通源县-2024.txt"]
    assert len(select(docs, {"year": ["2024", 2025]})) == 4
    assert [d.meta.region for d in select(docs, {"region": "海拉尔"})] == ["海拉尔区"] * 3  # without its unit
    assert len(select(docs, {"level": "county"})) == 3


def test_a_filter_with_an_unknown_key_names_the_known_ones():
    with pytest.raises(FilterError, match="unknown filter key.*'province'.*region"):
        select(_entries(), {"province": "内蒙古"})


def test_a_filter_nothing_matches_lists_what_the_index_holds():
    with pytest.raises(FilterError, match="no report matches year=2030.*2023, 2024, 2025"):
        select(_entries(), {"year": 2030})


def test_cli_filter_arguments_parse_into_lists():
    assert parse_filter_args(["year=2024,2025", "region=通源县"]) == {"year": ["2024", "2025"], "region": ["通源县"]}
    with pytest.raises(FilterError, match="key=value"):
        parse_filter_args(["2025"])


def test_a_question_naming_two_years_is_planned_per_report():
    parts = plan("通源县2024年和2025年的地区生产总值目标分别是多少？", _entries())
    assert [(p.label, p.sources, p.question) for p in parts] == [
        ("2024年", ("通源县-2024.txt",), "通源县2024年的地区生产总值目标是多少？"),
        ("2025年", ("通源县-2025.txt",), "通源县2025年的地区生产总值目标是多少？")]


def test_a_question_naming_two_regions_is_planned_per_region_in_the_year_named():
    parts = plan("海拉尔区和通源县2025年的固定资产投资增长目标分别是多少？", _entries())
    assert [(p.label, p.sources) for p in parts] == [("海拉尔区", ("海拉尔区-2025.txt",)),
                                                      ("通源县", ("通源县-2025.txt",))]


def test_names_that_resolve_to_one_report_are_no_comparison():
    one = [e for e in _entries() if e.source == "海拉尔区-2025.txt"]
    assert plan("2024年和2025年的地区生产总值分别是多少？", one) == []  # the 2025 report reviews 2024 and plans 2025


def test_a_question_naming_one_region_searches_its_reports():
    assert [d.source for d in narrow("通源县去年地区生产总值是多少？", _entries())] == [
        "通源县-2023.txt", "通源县-2024.txt", "通源县-2025.txt"]
    assert len(narrow("去年地区生产总值是多少？", _entries())) == 6
