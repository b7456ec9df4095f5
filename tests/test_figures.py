"""The figures table: generic extraction checked against a hand-checked gold file."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from app.corpus import Doc, load_corpus
from app.figures import CSV_COLUMNS, extract_figures, figure_pairs, figures_csv

ROOT = Path(__file__).resolve().parent.parent
GOLD = ROOT / "eval" / "figures_gold.jsonl"


@pytest.fixture(scope="module")
def report():
    docs, _ = load_corpus(ROOT / "corpus")
    return docs[0]


@pytest.fixture(scope="module")
def figures(report):
    return extract_figures(report)


def _gold():
    return [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines() if line.strip()]


def _correct(f, g) -> bool:
    return (f.indicator in [g["indicator"], *g["also"]] and f.value == g["value"] and f.unit == g["unit"]
            and f.year == g["year"] and f.kind == g["kind"] and f.measure == g["measure"])


def test_gold_sample_is_large_enough_and_points_at_the_report(report):
    gold = _gold()
    assert len(gold) >= 100
    assert all(report.text[g["start"] : g["end"]] == g["text"] for g in gold)


def test_precision_on_the_hand_checked_sample_is_at_least_095(figures):
    gold = {g["start"]: g for g in _gold()}
    lo, hi = min(gold), max(g["end"] for g in gold.values())
    sample = [f for f in figures if lo <= f.start < hi]  # every extracted row the gold file covers
    wrong = [(f.start, f.indicator, f.kind) for f in sample if f.start not in gold or not _correct(f, gold[f.start])]
    precision = 1 - len(wrong) / len(sample)
    assert precision >= 0.95, f"precision {precision:.3f}; wrong rows: {wrong}"


def test_every_figure_of_the_main_targets_paragraph_is_found(report, figures):
    para_start = report.text.index("今年经济社会发展的主要预期目标是")
    para_end = report.text.index("\n", para_start)
    gold = [g for g in _gold() if para_start <= g["start"] < para_end]
    assert [g["text"] for g in gold] == ["5.8%左右", "15%左右", "4.5%左右", "6%左右"]
    found = {f.start: f for f in figures}
    recalled = [g for g in gold if g["start"] in found and _correct(found[g["start"]], g)]
    assert len(recalled) / len(gold) == 1.0


def test_gdp_target_stands_beside_the_2024_result(figures):
    pairs = {(p.indicator, p.measure): p for p in figure_pairs(figures)}
    gdp = pairs[("地区生产总值", "增速")]
    assert (gdp.result.year, gdp.result.value, gdp.result.text) == (2024, 5.5, "5.5%")
    assert (gdp.target.year, gdp.target.value, gdp.target.text) == (2025, 5.8, "5.8%左右")


def test_a_growth_rate_is_the_change_of_the_amount_before_it(figures):
    gdp = next(f for f in figures if f.text == "231.52 亿元")
    assert (gdp.indicator, gdp.kind, gdp.change) == ("地区生产总值", "结果", "同比增长 5.5%")


def test_years_dates_ordinals_names_and_thresholds_are_not_figures(figures):
    texts = {f.text for f in figures}
    assert not texts & {"2025 年", "2024 年", "20 日", "400", "12345", "4.0"}
    assert not any("蒸吨" in t or t.startswith("2000") for t in texts)


def test_extraction_is_generic_on_another_report(tmp_path):
    text = ("# 某市 2024 年政府工作报告\n\n## 一、2023 年工作回顾\n\n"
            "全市粮食產量達到 52.3 萬噸，同比下降 1.5%。新建学校 3 所，改造道路 12 公里。\n\n"
            "## 二、2024 年主要任务\n\n计划新建 4 所幼儿园；城镇新增就业 1,200 人以上。\n")
    rows = {f.text: f for f in extract_figures(Doc("other.txt", text, ""))}
    assert (rows["52.3 萬噸"].indicator, rows["52.3 萬噸"].unit, rows["52.3 萬噸"].year) == ("全市粮食产量", "万吨", 2023)
    assert rows["1.5%"].value == -1.5 and rows["1.5%"].measure == "增速"
    assert (rows["3 所"].indicator, rows["3 所"].kind) == ("新建学校", "结果")
    assert (rows["4 所"].indicator, rows["4 所"].kind, rows["4 所"].year) == ("新建幼儿园", "目标", 2024)
    assert (rows["1,200 人以上"].value, rows["1,200 人以上"].qualifier) == (1200, "以上")


def test_csv_holds_one_row_per_figure_with_the_table_columns(figures):
    rows = list(csv.reader(io.StringIO(figures_csv(figures))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == len(figures) + 1
    assert rows[1][:3] == ["地区生产总值", "231.52", "亿元"]


def test_filters_combine_and_text_ignores_spaces_and_width(figures):
    from app.figures import filter_figures

    rows = filter_figures(figures, text="地区生产总值", kind="目标")
    assert [f.text for f in rows] == ["5.8%左右"]
    assert {f.text for f in filter_figures(figures, text="２３１．５２亿元")} == {"231.52 亿元", "5.5%"}  # by sentence
    assert all(f.measure == "增速" and f.year == 2024 for f in filter_figures(figures, measure="增速", year="2024"))


def test_sorting_by_value_puts_the_largest_first(figures):
    from app.figures import filter_figures

    values = [f.value for f in filter_figures(figures, sort="数值（从大到小）")]
    assert values == sorted(values, reverse=True)
    with pytest.raises(ValueError, match="sort must be one of"):
        filter_figures(figures, sort="random")


def test_a_target_is_paired_only_with_a_result_of_the_same_report(figures):
    from dataclasses import replace

    other = [replace(f, source="other.txt") for f in figures]
    from app.figures import TARGET

    mixed = figure_pairs([*[f for f in figures if f.kind == TARGET], *[f for f in other if f.kind != TARGET]])
    assert mixed == []  # this report's targets, another report's results: nothing to set side by side
    assert len(figure_pairs([*figures, *other])) == 2 * len(figure_pairs(figures))
