"""The workbench in headless Chromium over the real model: citations open the report at their place,
deep links, the figures tab and its CSV, 👍/👎 into `feedback export`, Markdown export, copy,
keyboard-only use, and an axe-core scan plus screenshots of each tab at 1280 and 390 px.

Debian's /usr/bin/chromium driven by Playwright (no browser download); axe-core comes inside the
axe-playwright-python wheel. Screenshots go to test-output/ (the README's copies: docs/screenshots/).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from .conftest import NEEDS_CHROMIUM

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "test-output"
ANSWER_TIMEOUT_MS = 60_000
GDP_Q = "2024年地区生产总值是多少？"
GDP_SPAN = "地区生产总值预计完成 231.52 亿元"
TABS = {"chat": "问答", "report": "报告原文", "figures": "数据一览"}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.model,
    NEEDS_CHROMIUM,
]


@pytest.fixture
def open_page(server, browser):
    contexts = []

    def _open(query: str = "", width: int = 1280, height: int = 900, **context):
        ctx = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True, **context)
        contexts.append(ctx)
        page = ctx.new_page()
        page.goto(server + query)
        page.locator("#qa-input textarea").wait_for(state="attached")  # a deep link opens another tab
        return page

    yield _open
    for ctx in contexts:
        ctx.close()


def _ask(page, question: str = GDP_Q):
    from playwright.sync_api import expect

    box = page.locator("#qa-input textarea")
    box.fill(question)
    box.press("Enter")
    answer = page.locator("#qa-chat .qa-answer").last
    expect(page.locator("#qa-chat .qa-answer")).to_have_count(1, timeout=ANSWER_TIMEOUT_MS)
    return answer


def _expect_report_at(page, span: str):
    from playwright.sync_api import expect

    expect(page.get_by_role("tab", name=TABS["report"])).to_have_attribute("aria-selected", "true")
    hit = page.locator("#qa-report mark.qa-hit")
    expect(hit.first).to_be_visible()
    assert "".join(hit.all_inner_texts()) == span
    expect(page.locator("#qa-hit")).to_be_in_viewport()


def _download(page, selector: str) -> str:
    with page.expect_download() as dl:
        page.locator(f"{selector} button, button{selector}").first.click()
    return Path(dl.value.path()).read_text(encoding="utf-8-sig")


def test_citation_click_opens_the_report_with_the_span_highlighted_in_view(open_page):
    page = open_page()
    _ask(page).get_by_role("link", name="在报告原文中查看").click()
    _expect_report_at(page, GDP_SPAN)
    assert re.search(r"\?doc=[^&]+&start=\d+&end=\d+&hs=\d+&he=\d+$", page.url)  # the address is the deep link


def test_a_deep_link_opened_in_a_new_page_shows_the_same_place(open_page, real_engine):
    from app.export import answer_location

    loc = answer_location(real_engine.ask(GDP_Q))
    page = open_page(loc.query())
    _expect_report_at(page, GDP_SPAN)


def test_a_broken_deep_link_says_what_is_wrong(open_page):
    from playwright.sync_api import expect

    page = open_page("?doc=nope.txt&start=1&end=2")
    expect(page.locator("#qa-report .qa-notice")).to_contain_text("doc='nope.txt' is not a file of this corpus")


def test_figures_tab_pairs_the_gdp_target_with_the_2024_result_and_the_csv_holds_the_table(open_page):
    from playwright.sync_api import expect

    page = open_page()
    page.get_by_role("tab", name=TABS["figures"]).click()
    gdp = page.locator("table.qa-pairs tbody tr", has_text="地区生产总值").filter(has_text="增速")
    expect(gdp.locator("td")).to_have_text(["增速", "5.5%", "5.8%左右"])
    page.get_by_label("筛选（指标、章节或句子）").fill("地区生产总值")
    page.get_by_label("筛选（指标、章节或句子）").press("Enter")
    expect(page.locator("table.qa-figures caption")).to_contain_text("共 3 项")
    table = [[c.strip() for c in row.all_inner_texts()[0].split("\t")][:4]
             for row in page.locator("table.qa-figures tbody tr").all()]
    rows = list(csv.reader(io.StringIO(_download(page, "#qa-csv"))))
    assert [r[:2] + [r[2], r[3]] for r in rows[1:]] == [[t[0], t[1].replace(",", ""), t[2], t[3]] for t in table]
    assert [r[3] for r in rows[1:]] == ["231.52 亿元", "5.5%", "5.8%左右"]


def test_thumbs_down_writes_a_row_that_feedback_export_turns_into_an_eval_line(open_page, feedback_db, tmp_path):
    from playwright.sync_api import expect

    from app.cli import main
    from app.evaluate import load_questions

    page = open_page()
    question = "2025年地区生产总值预期增长多少？"
    _ask(page, question)
    page.get_by_role("button", name="Dislike", exact=True).click()
    page.get_by_label("补充说明（可选）").fill("浏览器测试的说明")
    page.get_by_role("button", name="提交说明").click()
    expect(page.locator("#qa-feedback").first).to_contain_text("已保存")
    out = tmp_path / "candidates.jsonl"
    assert main(["feedback", "export", "--db", str(feedback_db), "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    mine = [line for line in lines if "浏览器测试的说明" in line["note"]]
    assert len(mine) == 1 and mine[0]["question"] == question and mine[0]["kind"] == "feedback"
    assert any(q.question == question for q in load_questions(out))


def test_exported_markdown_holds_the_quote_path_and_offsets(open_page, real_engine):
    page = open_page()
    _ask(page)
    a = real_engine.ask(GDP_Q)
    md = _download(page, "#qa-export")
    assert f"## 1. {GDP_Q}" in md
    assert f"【{GDP_SPAN}】" in md
    assert a.section in md
    assert f"第 {a.start}–{a.end} 字符；答案 {a.highlight_start}–{a.highlight_end} 字符" in md


def test_every_handler_of_the_page_passes_the_http_edge(open_page, feedback_db):
    """The handlers no other test drives (an example click, 👎 with "the right place", search,
    a dropdown filter) work through app/edge.py's checks, and the page gets no 4xx/5xx at all."""
    from playwright.sync_api import expect

    from app.feedback import FeedbackStore

    page = open_page()
    refused = []
    page.on("response", lambda r: refused.append((r.status, r.url)) if r.status >= 400 else None)
    page.locator("#qa-chat").get_by_text("什么是飞地经济？").click()  # example_select: event data through the edge
    expect(page.locator("#qa-chat .qa-answer")).to_have_count(1, timeout=ANSWER_TIMEOUT_MS)
    page.get_by_role("button", name="Dislike", exact=True).click()
    page.get_by_label("正确的位置是…（可选，从来源中选）").click()  # choices set by the like handler
    page.get_by_role("option").first.click()
    page.get_by_label("补充说明（可选）").fill("边界检查")
    page.get_by_role("button", name="提交说明").click()
    expect(page.locator("#qa-feedback").first).to_contain_text("已保存")
    mine = [f for f in FeedbackStore(feedback_db).rows() if f.comment == "边界检查"]
    assert len(mine) == 1 and mine[0].right_start >= 0 and mine[0].question == "什么是飞地经济？"

    page.get_by_role("tab", name=TABS["report"]).click()
    page.get_by_label("在报告中查找").fill("老旧小区")
    page.get_by_label("在报告中查找").press("Enter")
    expect(page.locator("#qa-find-results li").first).to_be_visible()
    expect(page.locator("#qa-report mark.qa-find").first).to_be_visible()

    page.get_by_role("tab", name=TABS["figures"]).click()
    caption = page.locator("table.qa-figures caption")
    everything = caption.inner_text()
    page.get_by_label("类别").click()
    page.get_by_role("option", name="目标", exact=True).click()
    expect(caption).not_to_have_text(everything)
    assert refused == []


def test_copy_button_copies_the_quote_with_its_span_and_place(open_page):
    page = open_page(permissions=["clipboard-read", "clipboard-write"])
    _ask(page).get_by_role("button", name="复制").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith(f"「2024 年，【{GDP_SPAN}】") and "一、2024 年工作回顾" in copied


def test_keyboard_only_send_open_sources_and_follow_a_citation(open_page):
    from playwright.sync_api import expect

    page = open_page()
    expect(page.locator("#qa-input textarea")).to_be_focused()  # the question box has focus when the page opens
    page.keyboard.type(GDP_Q)
    page.keyboard.press("Enter")
    expect(page.locator("#qa-chat .qa-answer")).to_have_count(1, timeout=ANSWER_TIMEOUT_MS)

    def tab_to(selector: str, limit: int = 40) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate(f"document.activeElement && document.activeElement.matches({selector!r})"):
                return
        raise AssertionError(f"Tab never reached {selector}")

    tab_to("#qa-chat summary")
    page.keyboard.press("Enter")
    expect(page.locator("#qa-chat details.qa-sources-panel")).to_have_attribute("open", "")
    tab_to("#qa-chat .qa-passage a.qa-link")
    page.keyboard.press("Enter")
    expect(page.get_by_role("tab", name=TABS["report"])).to_have_attribute("aria-selected", "true")
    expect(page.locator("#qa-hit")).to_be_focused()
    expect(page.locator("#qa-hit")).to_be_in_viewport()


@pytest.mark.parametrize("width, height", [(1280, 900), (390, 844)])
def test_each_tab_passes_axe_and_is_screenshotted(open_page, width, height):
    """Chat with an answer (sources opened after its screenshot), the report at a citation, the figures."""
    from axe_playwright_python.sync_playwright import Axe

    page = open_page(width=width, height=height)
    answer = _ask(page)
    OUT.mkdir(exist_ok=True)
    axe, problems = Axe(), []

    def check(tab: str) -> None:
        for v in axe.run(page).response["violations"]:
            if v["impact"] in ("serious", "critical"):
                problems.append((tab, v["id"], v["help"], [n["target"] for n in v["nodes"][:3]]))
        assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{tab} scrolls sideways"

    page.screenshot(path=str(OUT / f"tab-chat-{width}.png"))
    answer.locator("details.qa-sources-panel > summary").click()
    check("chat")
    answer.get_by_role("link", name="在报告原文中查看").click()
    _expect_report_at(page, GDP_SPAN)
    page.screenshot(path=str(OUT / f"tab-report-{width}.png"))
    check("report")
    page.get_by_role("tab", name=TABS["figures"]).click()
    page.locator("table.qa-pairs").wait_for()
    page.screenshot(path=str(OUT / f"tab-figures-{width}.png"))
    check("figures")
    assert problems == []
