"""The web chat's handler and formatting, without a browser (fake embedder or hand-made Answers)."""

from __future__ import annotations

import html
import logging
import subprocess
import sys
from dataclasses import fields, replace

import pytest

from app.engine import Answer, Passage
from app.ui import (
    APOLOGY,
    NOT_FOUND,
    SourceView,
    CHAT_TURNS_KEPT,
    ChatTurn,
    answer_dict,
    earlier_questions,
    keep_turns,
    turn_at,
    build_ui,
    format_reply,
    make_respond,
    passage_mark,
    user_message,
    user_texts,
)

SOURCE = "hailar_2025_government_work_report.txt"
GDP_SENTENCE = "2024 年，地区生产总值预计完成 231.52 亿元，同比增长 5.5%；"
GDP_SECTION = "一、2024 年工作回顾 › （一）“进”的步伐更为稳健 › 经济运行稳中有进"


def _passage(text: str, section: str = GDP_SECTION, start: int = 325, mark: str = "") -> Passage:
    a = text.find(mark) if mark else -1
    return Passage(text, section, 0.0328, SOURCE, start, start + len(text),
                   start + a if a >= 0 else -1, start + a + len(mark) if a >= 0 else -1)


def _answer(text: str = GDP_SENTENCE, highlight: str = "地区生产总值预计完成 231.52 亿元", *, found: bool = True,
            question: str = "2024年地区生产总值是多少？", resolved: str | None = None,
            passages: tuple[Passage, ...] | None = None) -> Answer:
    h = text.find(highlight)
    if passages is None:
        passages = (_passage("经济运行稳中有进。" + text, mark=text),)
    if not found:
        return Answer(question, False, "", "", "", -1, -1, "", -1, -1, 0.61, resolved or question, passages)
    return Answer(question, True, text, GDP_SECTION, SOURCE, 334, 334 + len(text), highlight, 334 + h,
                  334 + h + len(highlight), 0.9123, resolved or question, passages)


def _text(reply: list[dict]) -> str:
    return "\n".join(m["content"] for m in reply)


class _SpyEngine:
    """Records what the handler asks; answers with a fixed Answer (or raises)."""

    def __init__(self, data, answer: Answer | None = None, error: Exception | None = None) -> None:
        self.data, self.answer, self.error, self.calls = data, answer, error, []

    def ask(self, question, k=5, history=()):
        self.calls.append((question, k, list(history)))
        if self.error:
            raise self.error
        return self.answer or _answer(question=question)


# ----------------------------------------------------------------------------- pure formatting


def test_found_reply_quotes_the_sentence_with_the_span_marked():
    reply = format_reply(_answer())
    assert "<mark>地区生产总值预计完成 231.52 亿元</mark>" in reply[0]["content"]
    assert "2024 年，" in reply[0]["content"]


def test_found_reply_cites_section_path_and_source():
    first = format_reply(_answer())[0]["content"]
    assert GDP_SECTION in first
    assert SOURCE in first


def test_found_reply_puts_sources_in_a_collapsed_panel():
    (reply,) = format_reply(_answer())
    assert '<details class="qa-sources-panel"><summary>来源（1 段）</summary>' in reply["content"]
    assert "相关度 0.0328" in reply["content"]
    assert f"<mark>{GDP_SENTENCE}</mark>" in reply["content"]


def test_found_reply_links_the_quote_and_each_source_to_their_place_in_the_report():
    (reply,) = format_reply(_answer())
    assert 'href="?doc=hailar_2025_government_work_report.txt&amp;start=334&amp;end=372&amp;hs=341&amp;he=361"' in reply["content"]
    assert 'href="?doc=hailar_2025_government_work_report.txt&amp;start=325&amp;end=372&amp;hs=334&amp;he=372"' in reply["content"]
    assert "「2024 年，【地区生产总值预计完成 231.52 亿元】" in html.unescape(reply["content"])  # what 复制 copies


def test_not_found_reply_says_so_and_offers_related_passages():
    (reply,) = format_reply(_answer(found=False, question="海拉尔今天天气怎么样？"))
    assert NOT_FOUND in reply["content"]
    assert '<details class="qa-sources-panel" open><summary>相关段落（1 段）</summary>' in reply["content"]


def test_not_found_reply_without_passages_has_no_panel():
    (reply,) = format_reply(_answer(found=False, passages=()))
    assert NOT_FOUND in reply["content"] and "qa-sources-panel" not in reply["content"]


def test_small_talk_reply_is_the_engines_message_without_quote_or_sources():
    hello = replace(_answer(found=False, question="你好"), intent="smalltalk", message="你好！<可以问我报告里的数字>")
    (reply,) = format_reply(hello)
    assert "你好！&lt;可以问我报告里的数字&gt;" in reply["content"]  # escaped like everything else
    for absent in (NOT_FOUND, "qa-quote", "qa-sources-panel", "相关段落", "qa-link"):
        assert absent not in reply["content"]


def test_respond_answers_small_talk_with_a_friendly_reply(fake_engine):
    (reply,) = make_respond(fake_engine)("你好", [])
    assert "qa-smalltalk" in reply["content"] and "你好" in reply["content"]
    assert NOT_FOUND not in reply["content"] and "qa-sources-panel" not in reply["content"]


def test_report_text_is_escaped():
    evil = "<script>alert(1)</script>收入 5 亿元。"
    reply = _text(format_reply(_answer(text=evil, highlight="收入 5 亿元",
                                       passages=(_passage(evil, section="<b>x</b>", mark=evil),))))
    assert "<script>" not in reply and "<b>x</b>" not in reply
    assert "&lt;script&gt;" in reply and "&lt;b&gt;x&lt;/b&gt;" in reply


def test_reply_is_one_html_block_per_message():
    # no raw newline: Markdown would otherwise end the HTML block and re-read the report as Markdown
    text = "第一行\n\n2. 第二行 *星号*"
    reply = format_reply(_answer(text=text, highlight="第二行", passages=(_passage(text, mark="第二行"),)))
    assert all("\n" not in m["content"] for m in reply)
    assert "第一行<br><br>2. <mark>第二行</mark> *星号*" in reply[0]["content"]


def test_followup_reply_says_how_the_question_was_understood():
    reply = format_reply(_answer(question="那2025年呢？", resolved="2025年地区生产总值是多少？"))
    assert "按“2025年地区生产总值是多少？”理解" in reply[0]["content"]


def test_passage_mark_without_index_subtracts_offsets():
    p = _passage("甲乙。丙丁。", start=100, mark="丙丁。")
    assert passage_mark(p) == (3, 6)


def test_passage_without_marked_sentence_has_no_mark():
    assert passage_mark(_passage("甲乙。", mark="")) is None


# ----------------------------------------------------------------------------- user messages


def test_user_message_is_escaped_and_reads_back_as_typed():
    typed = "<img src=x onerror=alert(1)>\n& &amp; <br>"
    shown = user_message(typed)
    assert "<img" not in shown["content"] and "&lt;img src=x onerror=alert(1)&gt;" in shown["content"]
    assert user_texts([shown]) == [typed]


def test_user_texts_reads_gradio6_content_blocks_and_plain_strings():
    history = [
        {"role": "user", "content": [{"type": "text", "text": user_message("第一问")["content"]}]},
        {"role": "assistant", "content": [{"type": "text", "text": "答"}]},
        {"role": "user", "content": "第二问"},
    ]
    assert user_texts(history) == ["第一问", "第二问"]


def test_earlier_questions_are_the_users_own_last_few_as_typed_and_clipped():
    history = []
    for q in ["一问", "2024年新增就业多少人？", "那2025年呢？", "海" * 3000, "那城镇呢？"]:
        history += [user_message(q), {"role": "assistant", "content": "…"}]
    assert earlier_questions(history) == ["2024年新增就业多少人？", "那2025年呢？", "海" * 2000, "那城镇呢？"]


# ----------------------------------------------------------------------------- the page's records of its replies


def _chat_of(n: int) -> tuple[list, list]:
    """A chat of n questions, each answered with one message, and the page's record of each reply."""
    history, turns = [], []
    for i in range(n):
        history.append(user_message(f"问{i}"))
        turns.append(ChatTurn(i, _answer(question=f"问{i}"), (), len(history), len(history)))
        history.append({"role": "assistant", "content": f"答{i}"})
    return history, turns


def test_keep_turns_drops_the_records_of_replies_that_left_the_chat_and_reindexes_the_rest():
    history, turns = _chat_of(CHAT_TURNS_KEPT + 5)
    kept, kept_turns = keep_turns(history, turns, CHAT_TURNS_KEPT)
    assert len(kept) == 2 * CHAT_TURNS_KEPT and len(kept_turns) == CHAT_TURNS_KEPT
    for t in kept_turns:  # each record still points at its own reply
        assert kept[t.first]["content"] == f"答{t.id}"


def test_a_like_on_a_reply_finds_its_answer_after_the_chat_was_trimmed():
    history, turns = _chat_of(CHAT_TURNS_KEPT + 3)
    kept, kept_turns = keep_turns(history, turns, CHAT_TURNS_KEPT)
    assert turn_at(kept_turns, [len(kept) - 1]).answer.question == f"问{CHAT_TURNS_KEPT + 2}"
    assert turn_at(kept_turns, 0) is None  # a question, not a reply
    assert turn_at(kept_turns, "x") is None and turn_at(kept_turns, []) is None


# ----------------------------------------------------------------------------- respond()


@pytest.mark.model
def test_respond_answers_with_highlight_and_section_path(real_engine):
    respond = make_respond(real_engine)
    reply = _text(respond("2024年新增就业多少人？", []))
    assert "<mark>新增就业 2,179 人</mark>" in reply
    assert "（六）“安”的局面更加托底 › 就业形势总体稳定" in reply
    assert "阅读全文上下文" in reply


def test_respond_offers_the_section_in_context(fake_engine):
    respond = make_respond(fake_engine.with_config(refuse=False))
    sources = respond("2024年新增就业多少人？", [])[0]["content"]
    context = sources.split("阅读全文上下文", 1)[1]
    # the whole second-level section, its other subsections included
    assert "一、2024 年工作回顾 › （六）“安”的局面更加托底" in context
    assert "（六）“安”的局面更加托底。主要体现在：" in context
    assert "<mark>" in context


def test_passage_mark_with_index_marks_the_sentence_at_the_file_offsets(fake_engine):
    view = SourceView.from_index(fake_engine.data)
    by_start = {s.start: s.text for s in fake_engine.data.sentences}
    marked = 0
    for p in fake_engine.ask("2024年新增就业多少人？").passages:
        span = passage_mark(p, view)
        if span is not None:
            assert p.text[span[0]:span[1]] in by_start[p.mark_start]  # clipped to the passage at most
            marked += 1
    assert marked


def test_respond_escapes_an_injection_question(fake_engine):
    respond = make_respond(fake_engine)
    question = "<img src=x onerror=alert(1)>"
    reply = _text(respond(question, []))
    assert "<img" not in reply
    assert "onerror=alert(1)" not in reply.replace(html.escape(question), "")


def test_respond_shows_a_refusal_with_the_related_passages(fake_engine):
    refused = _answer(found=False, question="今天天气怎么样？")
    reply = make_respond(_SpyEngine(fake_engine.data, refused))("今天天气怎么样？", [])
    assert NOT_FOUND in reply[0]["content"]
    assert "<summary>相关段落" in reply[0]["content"]


def test_respond_passes_earlier_questions_as_history(fake_engine):
    spy = _SpyEngine(fake_engine.data)
    history = [user_message("2024年新增就业多少人？"), {"role": "assistant", "content": "…"},
               user_message("那2025年呢？"), {"role": "assistant", "content": "…"}]
    make_respond(spy)("那城镇失业人员再就业呢？", history)
    # the user's own words: the engine resolves the whole chain itself (app/dialogue.py)
    assert spy.calls == [("那城镇失业人员再就业呢？", 5, ["2024年新增就业多少人？", "那2025年呢？"])]


def test_respond_followup_reaches_the_right_sentence(fake_engine):
    respond = make_respond(fake_engine.with_config(refuse=False))
    history = [user_message("2024年新增就业多少人？"), *respond("2024年新增就业多少人？", [])]
    reply = respond("那城镇失业人员再就业呢？", history)[0]["content"]
    assert "826" in reply


def test_respond_shows_a_question_error_as_the_reply(fake_engine):
    reply = make_respond(fake_engine)("   ", [])
    assert len(reply) == 1 and "question is empty" in reply[0]["content"]
    assert "Traceback" not in reply[0]["content"]


def test_respond_apologises_and_logs_an_unexpected_error(fake_engine, caplog):
    spy = _SpyEngine(fake_engine.data, error=RuntimeError("disk on fire"))
    with caplog.at_level(logging.ERROR, logger="app.ui"):
        reply = make_respond(spy)("2024年地区生产总值是多少？", [])
    assert APOLOGY in reply[0]["content"] and "disk on fire" not in reply[0]["content"]
    assert "disk on fire" in caplog.text


# ----------------------------------------------------------------------------- API and page


def test_answer_dict_is_the_answer_without_internals(fake_engine):
    d = answer_dict(fake_engine, "2024年地区生产总值是多少？", 3)
    expected = {f.name for f in fields(Answer)} - {"timings", "signals"}
    assert set(d) == expected
    assert len(d["passages"]) == 3
    assert set(d["passages"][0]) == {f.name for f in fields(Passage)}


def test_build_ui_exposes_only_the_ask_route(fake_engine):
    demo = build_ui(fake_engine)
    public = [fn.api_name for fn in demo.fns.values() if fn.api_visibility == "public"]
    assert public == ["ask"]


def test_importing_the_ui_does_not_import_gradio():
    code = "import sys, app.ui; print('gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("question", ["2024年地区生产总值是多少？", "What was Hailar's GDP in 2024?"])
def test_respond_always_returns_assistant_messages(fake_engine, question):
    reply = make_respond(fake_engine)(question, [])
    assert reply and all(m["role"] == "assistant" and isinstance(m["content"], str) for m in reply)


def test_build_ui_sends_no_usage_analytics(fake_engine, monkeypatch):
    monkeypatch.delenv("GRADIO_ANALYTICS_ENABLED", raising=False)  # Gradio's default is on
    assert build_ui(fake_engine).analytics_enabled is False

