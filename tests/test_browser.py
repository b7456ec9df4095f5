"""The web chat in headless Chromium, over the real model: answers, escaping, follow-ups, phone width.

Needs Debian's chromium at /usr/bin/chromium (`apt-get install chromium`); Playwright drives it
directly, so `playwright install` is not needed. Screenshots go to test-output/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import NEEDS_CHROMIUM

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "test-output"
ANSWER_TIMEOUT_MS = 60_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.model,
    NEEDS_CHROMIUM,
]


@pytest.fixture
def open_chat(server, browser):
    """Open the chat at a viewport size; returns (page, dialogs fired on it)."""
    pages = []

    def _open(width: int = 1100, height: int = 900):
        page = browser.new_page(viewport={"width": width, "height": height})
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(server)
        page.locator("#qa-input textarea").wait_for()
        pages.append(page)
        return page, dialogs

    yield _open
    for page in pages:
        page.close()


def _ask(page, question: str, n: int):
    """Type ``question``, send it, and wait for the n-th (1-based) reply; returns that reply's answer block."""
    from playwright.sync_api import expect

    box = page.locator("#qa-input textarea")
    box.fill(question)
    box.press("Enter")
    replies = page.locator("#qa-chat .qa-answer, #qa-chat .qa-error")
    expect(replies).to_have_count(n, timeout=ANSWER_TIMEOUT_MS)
    return replies.nth(n - 1)


def test_answer_shows_highlighted_figure_and_section_path(open_chat):
    from playwright.sync_api import expect

    page, _ = open_chat()
    answer = _ask(page, "2024年地区生产总值是多少？", 1)
    expect(answer).to_contain_text("231.52 亿元")
    expect(answer.locator(".qa-quote mark")).to_contain_text("231.52 亿元")
    expect(answer).to_contain_text("（一）“进”的步伐更为稳健")
    expect(page.locator("#qa-chat")).to_contain_text("来源（5 段）")
    OUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUT / "chat-answer.png"), full_page=True)


def test_injection_question_runs_no_script_and_shows_literally(open_chat):
    from playwright.sync_api import expect

    page, dialogs = open_chat()
    question = "<img src=x onerror=alert(1)>"
    _ask(page, question, 1)
    expect(page.locator("#qa-chat [data-testid='user']")).to_have_text(question)
    assert page.locator("#qa-chat img[src='x']").count() == 0
    page.wait_for_timeout(500)  # a broken image's onerror would have fired by now
    assert dialogs == []


def test_followup_question_carries_the_topic(open_chat):
    from playwright.sync_api import expect

    page, _ = open_chat()
    _ask(page, "2024年新增就业多少人？", 1)
    second = _ask(page, "那城镇失业人员再就业呢？", 2)
    expect(second).to_contain_text("826")
    expect(second.locator(".qa-quote mark")).to_contain_text("826")


def test_phone_width_fits_without_sideways_scrolling(open_chat):
    from playwright.sync_api import expect

    page, _ = open_chat(390, 844)
    answer = _ask(page, "2024年地区生产总值是多少？", 1)
    expect(answer.locator(".qa-quote mark")).to_contain_text("231.52 亿元")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    OUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUT / "chat-phone.png"))


def test_clicking_an_example_asks_it_and_clear_empties_the_chat(open_chat):
    from playwright.sync_api import expect

    page, _ = open_chat()
    page.get_by_text("什么是飞地经济？", exact=True).click()
    answer = page.locator("#qa-chat .qa-answer")
    expect(answer).to_have_count(1, timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("#qa-chat [data-testid='user']")).to_have_text("什么是飞地经济？")
    page.get_by_role("button", name="Clear").click()
    expect(answer).to_have_count(0)
    expect(page.get_by_text("2024年地区生产总值是多少？", exact=True)).to_be_visible()  # examples are back
