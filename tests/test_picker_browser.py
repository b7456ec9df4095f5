"""The report picker in headless Chromium: with several reports indexed, choosing one keeps the chat's
quote and sources to it (fake model: this is about which report answers, not how well)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import NEEDS_CHROMIUM

OUT = Path(__file__).resolve().parent.parent / "test-output"

pytestmark = [
    pytest.mark.browser,
    NEEDS_CHROMIUM,
]


@pytest.fixture(scope="module")
def multi_server(tmp_path_factory):
    import os

    from app.config import Settings
    from app.engine import Engine
    from app.synth import write_corpus
    from app.ui import build_ui, launch_options

    from .conftest import FakeEmbedder, free_port

    root = tmp_path_factory.mktemp("picker")
    write_corpus(root / "corpus", 4, small=True)
    engine = Engine.open(Settings(corpus_dir=root / "corpus", index_dir=root / "index", model="fake-bigram-64"),
                         embedder=FakeEmbedder()).with_config(refuse=False)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    port = free_port()
    demo = build_ui(engine)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True, **launch_options())
    yield f"http://127.0.0.1:{port}/", engine
    demo.close()


def test_choosing_a_report_keeps_the_answer_to_it(multi_server, browser):
    from playwright.sync_api import expect

    url, engine = multi_server
    chosen = next(d for d in engine.documents if d.meta.region == "通源县" and d.meta.year == 2024)
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    try:
        page.goto(url)
        page.locator("#qa-input textarea").wait_for()
        page.locator("#qa-picker input").click()
        page.get_by_role("option", name=chosen.meta.title).click()
        page.keyboard.press("Escape")
        box = page.locator("#qa-input textarea")
        box.fill("今年地区生产总值增长目标是多少？")
        box.press("Enter")
        answer = page.locator("#qa-chat .qa-answer")
        expect(answer).to_have_count(1, timeout=60_000)
        expect(answer).to_contain_text(chosen.meta.title + " ›")
        chat = page.locator("#qa-chat").inner_text()
        others = {d.meta.title for d in engine.documents} - {chosen.meta.title}
        assert not any(t in chat for t in others)
        OUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUT / "chat-picker.png"), full_page=True)
    finally:
        page.close()
