"""The 问答 tab of the workbench page: the chat, 👍/👎 with a comment, the conversation export.

    chat_tab(engine, bench, title) -> ChatTab     its components (call inside the page's Blocks)
    wire_chat(tab, engine, bench, title, state)   its handlers, bound to those components

The handlers keep the last `CHAT_TURNS_KEPT` turns (and the records of their replies), so what the
page sends back with the next question, and what the session's State holds, stay bounded however
long the chat runs. Gradio is imported inside the functions: importing this module is instant.
"""

# No `from __future__ import annotations` here: Gradio reads the `gr.SelectData`/`gr.LikeData`/
# `gr.Request` hints of the handlers at runtime, and a string naming a local import would not resolve.
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .engine import Answer
from .ui import (CHAT_TURNS_KEPT, EXAMPLES, ChatTurn, _origin, _role, document_choices, earlier_questions, keep_turns,
                 make_answerer, turn_at, user_message, user_texts)

__all__ = ["ChatState", "ChatTab", "chat_tab", "wire_chat"]


def _next_id(turns: Sequence[ChatTurn], given: Mapping[int, int]) -> int:
    return max([t.id for t in turns] + list(given), default=-1) + 1


def _feedback_of(answer: Answer, history: Sequence[str], rating: int):
    from .feedback import Feedback

    return Feedback(rating=rating, question=answer.question, found=answer.found,
                    resolved_question=answer.resolved_question, history=tuple(history),
                    answer_text=answer.text or answer.message, section=answer.section, source=answer.source,
                    start=answer.start, end=answer.end)


@dataclass(frozen=True)
class ChatState:
    """The session's state the chat shares with the page: reply records, ratings given, the rated turn."""

    turns: Any  # gr.State([ChatTurn]): the records of the replies on the page
    given: Any  # gr.State({turn id: feedback row id})
    fb_turn: Any  # gr.State(turn id | None): the turn the feedback panel is about


@dataclass(frozen=True)
class ChatTab:
    chatbot: Any
    picker: Any  # the report picker, or None with one report
    box: Any
    fb_panel: Any
    fb_note: Any
    fb_comment: Any
    fb_place: Any
    fb_send: Any
    fb_done: Any
    export: Any


def chat_tab(engine, bench, title: str) -> ChatTab:
    """The chat, the question box, the feedback panel and the export button."""
    import gradio as gr

    from .export import conversation_markdown

    chatbot = gr.Chatbot(
        label="问答",
        show_label=False,
        elem_id="qa-chat",
        height=520,
        min_height=320,
        placeholder="**向报告提问**<br>例如下面的问题，或在下方输入自己的问题。",
        examples=[{"text": q} for q in EXAMPLES],
        sanitize_html=True,
        render_markdown=True,
        latex_delimiters=[],  # "$" in a question is not LaTeX
        buttons=[],
        feedback_options=("Like", "Dislike"),
        layout="bubble",
        autoscroll=True,
    )
    picker = None
    documents = getattr(engine, "documents", ())
    if len(documents) > 1:  # several reports: let the reader narrow the search
        picker = gr.Dropdown(choices=document_choices(documents), value=[], multiselect=True,
                             label="在这些报告中查找（不选 = 全部报告）", elem_id="qa-picker")
    box = gr.Textbox(
        label="问题",
        show_label=False,
        placeholder="输入关于报告的问题，按回车发送",
        submit_btn="发送",
        lines=1,
        max_lines=4,
        autofocus=True,
        elem_id="qa-input",
    )
    with gr.Group(visible=False, elem_id="qa-feedback") as fb_panel:
        fb_note = gr.Markdown()
        fb_comment = gr.Textbox(label="补充说明（可选）", max_lines=4, max_length=2000)
        fb_place = gr.Dropdown(label="正确的位置是…（可选，从来源中选）", choices=[], visible=False)
        fb_send = gr.Button("提交说明", size="sm")
        fb_done = gr.Markdown()
    export = gr.DownloadButton("导出对话（Markdown）", value=bench.write(
        "conversation.md", conversation_markdown([], title=title)), size="sm", elem_id="qa-export")
    return ChatTab(chatbot, picker, box, fb_panel, fb_note, fb_comment, fb_place, fb_send, fb_done, export)


def wire_chat(tab: ChatTab, engine, bench, title: str, state: ChatState, ui_only: dict) -> None:
    """Bind the chat's handlers: a question or an example → the reply (and a fresh export);
    clear; 👍/👎 → the feedback panel; its comment → the feedback store."""
    import gradio as gr

    from .errors import AppError
    from .export import conversation_markdown

    turn_for = make_answerer(engine)

    def add_user(message: str, history: list, turns: list):
        if not (message or "").strip():
            return (message, *keep_turns(history, turns, CHAT_TURNS_KEPT))
        history, turns = keep_turns(history, turns, CHAT_TURNS_KEPT - 1)
        return "", [*history, user_message(message)], turns

    def add_example(evt: gr.SelectData, history: list, turns: list):
        value = evt.value if isinstance(evt.value, dict) else {"text": str(evt.value)}
        history, turns = keep_turns(history, turns, CHAT_TURNS_KEPT - 1)
        return [*history, user_message(str(value.get("text", "")))], turns

    def add_reply(history: list, turns: list, given: dict, sources=None):
        history, turns = keep_turns(history, turns, CHAT_TURNS_KEPT)
        if not history or _role(history[-1]) != "user":
            return history, turns
        message = user_texts(history[-1:])
        earlier = earlier_questions(history[:-1])  # the user's own words: the engine resolves the chain
        answer, reply = turn_for(message[0] if message else "", earlier, sources or None)
        record = ChatTurn(_next_id(turns, given), answer, tuple(earlier), len(history), len(history) + len(reply) - 1)
        return [*history, *reply], [*turns, record]

    def export_file(turns: list, request: gr.Request):
        answers = [t.answer for t in turns if t.answer is not None]
        return bench.write("conversation.md", conversation_markdown(answers, base_url=_origin(request), title=title))

    def on_like(data: gr.LikeData, turns: list, given: dict):
        t = turn_at(turns, data.index)
        given = {i: f for i, f in given.items() if any(x.id == i for x in turns)}  # replies still in the chat
        hide = (gr.update(visible=False), "", gr.update(), gr.update(), given, None)
        if t is None or t.answer is None:
            return hide
        answer = t.answer
        if data.liked not in (True, False):  # the click took the rating back
            if t.id in given:
                bench.feedback.delete(given.pop(t.id))
            return (*hide[:4], given, None)
        rating = 1 if data.liked else -1
        if t.id in given:
            bench.feedback.update(given[t.id], rating=rating)
        else:
            given[t.id] = bench.feedback.add(_feedback_of(answer, t.history, rating))
        choices = [(f"[{i}] {p.section}（第 {p.start}–{p.end} 字符）", i - 1) for i, p in enumerate(answer.passages, 1)]
        note = ("已记录：有用。谢谢！" if rating > 0 else "已记录：不准确。可以说明哪里不对，或指出正确的位置：")
        return (gr.update(visible=True), f"{note}（问题：{answer.question}）",
                gr.update(choices=choices, value=None, visible=rating < 0 and bool(choices)),
                gr.update(value=""), given, t.id)

    def on_feedback_detail(turn_id, comment: str, place, turns: list, given: dict):
        t = next((x for x in turns if x.id == turn_id), None)
        if t is None or t.answer is None or turn_id not in given:
            raise gr.Error("先点 👍 或 👎，再补充说明。", print_exception=False)
        answer = t.answer
        changes = {"comment": (comment or "").strip()}
        if isinstance(place, int) and not isinstance(place, bool) and 0 <= place < len(answer.passages):
            p = answer.passages[place]
            changes.update(right_source=p.source, right_section=p.section, right_start=p.start, right_end=p.end,
                           right_text=p.text)
        try:
            bench.feedback.update(given[turn_id], **changes)
        except AppError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        return "已保存，谢谢。反馈只供人工复查，不会自动改变回答。"

    turns, given, fb_turn = state.turns, state.given, state.fb_turn
    send = tab.box.submit(add_user, [tab.box, tab.chatbot, turns], [tab.box, tab.chatbot, turns], queue=False,
                          **ui_only)
    pick = tab.chatbot.example_select(add_example, [tab.chatbot, turns], [tab.chatbot, turns], queue=False, **ui_only)
    reply_inputs = [tab.chatbot, turns, given, *([tab.picker] if tab.picker is not None else [])]
    for trigger in (send, pick):
        trigger.then(add_reply, reply_inputs, [tab.chatbot, turns], show_progress="minimal", **ui_only).then(
            export_file, turns, tab.export, **ui_only)
    tab.chatbot.clear(lambda: ([], {}, None, gr.update(visible=False)), None, [turns, given, fb_turn, tab.fb_panel],
                      **ui_only).then(export_file, turns, tab.export, **ui_only)
    tab.chatbot.like(on_like, [turns, given],
                     [tab.fb_panel, tab.fb_note, tab.fb_place, tab.fb_comment, given, fb_turn], **ui_only)
    tab.fb_send.click(on_feedback_detail, [fb_turn, tab.fb_comment, tab.fb_place, turns, given], tab.fb_done,
                      **ui_only)
