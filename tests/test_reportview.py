"""The report page: outline, marked places, deep links and search (pure, no browser)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from app.corpus import Doc, clean, load_corpus
from app.reportview import Location, LocationError, find_in_text, outline, parse_location, render_report

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def report() -> Doc:
    return load_corpus(ROOT / "corpus")[0][0]


class _Text(HTMLParser):
    """Collects all text, and the text inside elements of one class."""

    def __init__(self, cls: str = "") -> None:
        super().__init__()
        self.cls, self.depth, self.all, self.inside = cls, 0, [], []

    def handle_starttag(self, tag, attrs):
        if self.depth:
            self.depth += 1
        elif self.cls and self.cls in (dict(attrs).get("class") or "").split():
            self.depth = 1

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1

    def handle_data(self, data):
        self.all.append(data)
        if self.depth:
            self.inside.append(data)


def _text_of(html: str, cls: str) -> str:
    p = _Text(cls)
    p.feed(html)
    return "".join(p.inside)


def test_outline_follows_the_reports_own_hierarchy(report):
    heads = outline(report)
    assert [h.title for h in heads if h.level == 2] == ["一、2024 年工作回顾", "二、2025 年主要工作",
                                                       "三、加快建设人民满意的实干政府", "名词解释"]
    assert "（一）“进”的步伐更为稳健" in [h.title for h in heads if h.level == 3]
    assert "经济运行稳中有进" in [h.title for h in heads if h.level == 4]
    assert all(report.text[h.start : h.end].startswith(h.title) for h in heads if h.end > h.start)


def test_rendered_page_holds_the_whole_text_once(report):
    html = render_report(report)
    article = html[html.index("<article") :]
    p = _Text()
    p.feed(article)
    assert "".join(p.all) == "".join(sp.text for sp in clean(report.text))


def test_a_location_marks_exactly_its_span_and_tints_its_sentence(report):
    start, end = report.text.index("2024 年，地区生产总值"), report.text.index("；固定资产投资")
    hs = report.text.index("地区生产总值预计完成")
    he = hs + len("地区生产总值预计完成 231.52 亿元")
    html = render_report(report, Location(report.source, start, end, hs, he))
    assert _text_of(html, "qa-hit") == report.text[hs:he]
    assert _text_of(html, "qa-hit-sent") == report.text[start:end]
    assert html.count('id="qa-hit"') == 1 and html.count('id="qa-hit-sent"') == 1


def test_a_mark_across_a_page_break_skips_the_dropped_newlines(report):
    a = report.text.index("君尚玖号周")
    b = report.text.index("边道路建成通车") + len("边道路")
    html = render_report(report, Location(report.source, a, b, a, b))
    assert _text_of(html, "qa-hit") == "君尚玖号周边道路"


def test_text_from_the_file_is_escaped(tmp_path):
    doc = Doc("x.txt", "# 标题报告\n\n一段文字<script>alert(1)</script>，结束。\n", "")
    html = render_report(doc, find="<script>")
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_deep_link_round_trips(report):
    loc = Location(report.source, 345, 372, 352, 361)
    params = dict(parse_qsl(loc.query()[1:]))
    assert parse_location(params, {report.source: len(report.text)}) == loc


@pytest.mark.parametrize("params, message", [
    ({"doc": "other.txt", "start": "1", "end": "2"}, "not a file of this corpus"),
    ({"doc": "r.txt", "start": "x", "end": "2"}, "not a character offset"),
    ({"doc": "r.txt", "start": "5", "end": "5"}, "not a range inside r.txt"),
    ({"doc": "r.txt", "start": "1", "end": "999"}, "not a range inside r.txt"),
    ({"doc": "r.txt", "end": "9"}, "missing start="),
    ({"doc": "r.txt", "start": "1", "end": "9", "hs": "8", "he": "199"}, "hs=8, he=199"),
])
def test_a_bad_deep_link_says_what_is_wrong(params, message):
    with pytest.raises(LocationError, match=message):
        parse_location(params, {"r.txt": 100})


def test_no_doc_parameter_means_no_place():
    assert parse_location({"start": "1"}, {"r.txt": 100}) is None


def test_search_ignores_spaces_width_thousands_and_traditional(report):
    t = report.text
    (a, b), = find_in_text(t, "231.52億元")
    assert t[a:b] == "231.52 亿元"
    assert [t[a:b] for a, b in find_in_text(t, "６７３８户")] == ["6,738 户"]
    assert find_in_text(t, "   ") == []


def test_search_marks_every_hit_and_says_how_many(report):
    html = render_report(report, find="老旧小区")
    n = len(find_in_text(report.text, "老旧小区"))
    assert n >= 3
    assert len(re.findall(r'<mark class="qa-find" id="qa-find-\d+">', html)) == n
    assert f"找到 {n} 处" in html
