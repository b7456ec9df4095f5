"""The web chat (Gradio): quoted, highlighted answers with their section path and sources.

    build_ui(engine) -> gr.Blocks      the chat page, plus the programmatic route /ask
    serve(engine, host, port)          build and launch (what `python -m app serve` runs)
    launch_options()                   launch arguments: CSS, the HTTP edge (app/edge.py), nothing stored
    make_respond(engine)               the chat handler: respond(message, history[, sources]) -> reply messages
    ask_args(args, kwargs)             the /ask route's input check, run at the HTTP edge
    document_choices(documents)        the report picker's entries (shown when the index holds several reports)
    format_reply(answer, view)         pure: an Answer → assistant message dicts (HTML)

Limits: the page sends its whole chat with each question, so every handler keeps only the last
`CHAT_TURNS_KEPT` turns (older ones leave the page; the request stays far under the edge's body
limit), and follow-ups are resolved from the last `HISTORY_TURNS` questions only: a long chat
costs no more to answer than a short one. Only /ask is an API route; the page's own handlers are
private and reachable only the way the page calls them (by number, through the edge's checks).

Safety: every string from the user or the report is html-escaped before it goes into HTML, and
the user's own message is shown escaped too (Gradio's Chatbot renders user messages as
Markdown/HTML, so a raw `<img onerror=…>` would otherwise become an element). The Chatbot's own
sanitizer stays on as a second layer. Replies are single-line HTML blocks so Markdown leaves
the report's text alone (a "1." or "*" in the report stays literal).

Gradio is imported inside the functions that need it: importing this module is instant.
"""

# No `from __future__ import annotations` here: Gradio reads the `gr.SelectData` hint of the
# example handler at runtime, and a string annotation naming a local import would not resolve.
import html
import logging
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from .answer import resolve_followup
from .edge import InputError
from .engine import HISTORY_TURNS, MAX_QUESTION_CHARS, Answer, Passage, clean_question
from .errors import QuestionError

__all__ = ["APOLOGY", "CHAT_TURNS_KEPT", "EXAMPLES", "NOT_FOUND", "TITLE", "SourceView", "answer_dict", "ask_args",
           "build_ui", "document_choices", "format_reply", "launch_options", "make_respond", "passage_mark",
           "recent_turns", "resolved_history", "serve", "user_message", "user_texts"]

log = logging.getLogger(__name__)

TITLE = "海拉尔区 2025 年政府工作报告 · 问答"
EXAMPLES = (
    "2024年地区生产总值是多少？",
    "什么是飞地经济？",
    "2025年计划改造多少个老旧小区？",
    "What was Hailar's GDP in 2024?",
)
NOT_FOUND = "报告中没有找到这个问题的答案。"
APOLOGY = "抱歉，处理这个问题时出错了，请稍后再试或换个问法。"
K = 5
MAX_K = 50
CHAT_TURNS_KEPT = 40  # questions (with their replies) the page keeps; a reply is ~12-16 KB of HTML
QUEUE_SIZE = 256  # requests waiting at most; more get "queue is full" (503) instead of holding memory
# Gradio keeps per session (each page, and each API call without a session of its own) a copy of the
# page's config and the chat last sent, for deep links; its default of 10,000 sessions let a stream
# of API calls grow the server by ~70 KB each. The chat itself lives in the browser, so an evicted
# session loses nothing a user sees.
SESSIONS_KEPT = 128
_USER_OPEN, _USER_CLOSE = '<div class="qa-q">', "</div>"

CSS = """
.gradio-container { width: 100% !important; max-width: 900px !important; margin: 0 auto !important; }
/* Gradio pads the page 32px a side; on a 390px phone that is a sixth of the width */
.main.app { padding-left: clamp(6px, 3vw, 32px) !important; padding-right: clamp(6px, 3vw, 32px) !important; }
#qa-title h1 { font-size: 1.35rem; margin: 0.2rem 0 0.1rem; }
#qa-title p { margin: 0; color: var(--body-text-color-subdued); font-size: 0.9rem; }
.qa-q { white-space: normal; word-break: break-word; }
.qa-quote { margin: 0 0 0.4rem !important; padding: 0.1rem 0 0.1rem 0.7rem; border-left: 3px solid var(--color-accent);
            font-size: 1.02rem; line-height: 1.7; }
.qa-answer mark, .qa-sources mark { background: #ffe58a; color: #1f2328; font-size: inherit; padding: 0 2px;
                                   border-radius: 3px; }
.qa-part-label { font-weight: 600; margin: 0.5rem 0 0.2rem; }
.qa-cite { font-size: 0.85rem; color: var(--body-text-color-subdued); line-height: 1.5; }
.qa-cite .qa-path { color: var(--body-text-color); font-weight: 600; }
.qa-resolved { font-size: 0.85rem; color: var(--body-text-color-subdued); margin-bottom: 0.3rem; }
.qa-passage { padding: 0.45rem 0; border-top: 1px solid var(--border-color-primary); }
.qa-passage:first-child { border-top: none; padding-top: 0; }
.qa-p-head { font-size: 0.85rem; font-weight: 600; margin-bottom: 0.2rem; }
.qa-p-head .qa-score { font-weight: 400; color: var(--body-text-color-subdued); margin-left: 0.4rem; white-space: nowrap; }
.qa-p-text { font-size: 0.92rem; line-height: 1.65; }
.qa-context summary { cursor: pointer; font-size: 0.85rem; color: var(--color-accent); margin-top: 0.25rem; }
.qa-ctx-text { font-size: 0.9rem; line-height: 1.7; max-height: 22rem; overflow-y: auto; padding: 0.4rem 0.6rem;
               margin-top: 0.3rem; background: var(--background-fill-secondary); border-radius: 6px; }
@media (max-width: 480px) {
  #qa-chat .message-row.bot-row { max-width: calc(100% - 12px) !important; margin-left: 6px !important; }
  #qa-chat .message-row.user-row { max-width: calc(100% - 40px) !important; margin-right: 6px !important; }
  #qa-title h1 { font-size: 1.1rem; }
  .qa-quote { font-size: 0.98rem; }
}
"""


# --------------------------------------------------------------------------- index lookups


def _context_key(path: Sequence[str]) -> tuple[str, ...]:
    # Leaf sections are often one paragraph ("经济运行稳中有进"), too little to read around, so the
    # context is the second-level section ("（一）“进”的步伐更为稳健") with all its subsections;
    # a top-level section's own lead text stands alone (its subtree is the whole chapter).
    return tuple(path[:2])


@dataclass(frozen=True)
class SourceView:
    """What the reply needs from the index: which chunk a passage is, and the section around it.

    Built once per engine. A formatting call without one (a hand-made Answer in a test) still
    works; it just cannot offer the section in context.
    """

    chunk_by_span: dict  # (source, start, end) -> Chunk
    context_chunks: dict  # (source, _context_key) -> tuple[Chunk, ...] in file order

    @classmethod
    def from_index(cls, data) -> "SourceView":
        by_span, groups = {}, {}
        for c in data.chunks:
            by_span[(c.source, c.start, c.end)] = c
            groups.setdefault((c.source, _context_key(c.path)), []).append(c)
        return cls(by_span, {k: tuple(sorted(cs, key=lambda c: c.start)) for k, cs in groups.items()})

    def chunk_of(self, p: Passage):
        return self.chunk_by_span.get((p.source, p.start, p.end))

    def context_of(self, p: Passage) -> tuple[str, str, tuple[int, ...]] | None:
        """The section around ``p``: its breadcrumb, its text (overlaps merged, a line break
        between paragraphs) and, per character, the file offset (-1 for inserted breaks)."""
        c = self.chunk_of(p)
        if c is None:
            return None
        key = _context_key(c.path)
        chars: list[str] = []
        offsets: list[int] = []
        last, section = -1, None
        for ch in self.context_chunks.get((c.source, key), (c,)):
            # each subsection starts a new line, as in the report
            if offsets and (ch.section != section or ch.start > last + 1) and chars[-1] != "\n":
                chars.append("\n")
                offsets.append(-1)
            for t, o in zip(ch.text, ch.offsets):
                if o > last:  # chunks may overlap: keep each file character once
                    chars.append(t)
                    offsets.append(o)
                    last = o
            section = ch.section
        return " › ".join(key), "".join(chars), tuple(offsets)


# --------------------------------------------------------------------------- pure formatting


def _esc(text: str) -> str:
    # <br> instead of newlines keeps each reply one HTML block, which Markdown passes through untouched
    return html.escape(text).replace("\r\n", "\n").replace("\n", "<br>")


def _with_mark(text: str, span: tuple[int, int] | None) -> str:
    if not span or span[0] >= span[1]:
        return _esc(text)
    a, b = span
    return f"{_esc(text[:a])}<mark>{_esc(text[a:b])}</mark>{_esc(text[b:])}"


def _span_by_offsets(offsets: Sequence[int], start: int, end: int) -> tuple[int, int] | None:
    """Indices of the characters whose file offsets fall in [start, end)."""
    idx = [i for i, o in enumerate(offsets) if start <= o < end]
    return (idx[0], idx[-1] + 1) if idx else None


def passage_mark(p: Passage, view: SourceView | None = None) -> tuple[int, int] | None:
    """Where the passage's best sentence sits inside ``p.text`` (None when it has none).

    Offsets are into the file and the text may lack page-break newlines, so with the index at
    hand use the chunk's per-character offsets; without it, subtract and clip (exact whenever
    no newline was dropped before the sentence).
    """
    if p.mark_start < 0 or p.mark_end <= p.mark_start:
        return None
    c = view.chunk_of(p) if view else None
    if c is not None and len(c.offsets) == len(p.text):
        return _span_by_offsets(c.offsets, p.mark_start, p.mark_end)
    a = max(0, min(len(p.text), p.mark_start - p.start))
    b = max(a, min(len(p.text), p.mark_end - p.start))
    return (a, b) if b > a else None


def answer_mark(answer: Answer) -> tuple[int, int] | None:
    """Where ``answer.highlight`` sits inside ``answer.text`` (located by content, as the CLI does)."""
    if not answer.highlight:
        return None
    i = answer.text.find(answer.highlight)
    if i >= 0:
        return i, i + len(answer.highlight)
    a, b = answer.highlight_start - answer.start, answer.highlight_end - answer.start
    return (a, b) if 0 <= a < b <= len(answer.text) else None


def _passage_html(i: int, p: Passage, view: SourceView | None) -> str:
    parts = [
        '<div class="qa-passage">',
        f'<div class="qa-p-head">[{i}] {_esc(p.citation or p.section)}<span class="qa-score">相关度 {p.score:.4f}</span></div>',
        f'<div class="qa-p-text">{_with_mark(p.text, passage_mark(p, view))}</div>',
    ]
    context = view.context_of(p) if view else None
    if context is not None:
        title, text, offsets = context
        mark = _span_by_offsets(offsets, p.mark_start, p.mark_end) if p.mark_start >= 0 else None
        real = [o for o in offsets if o >= 0]
        where = f"{p.source}，第 {real[0]}–{real[-1] + 1} 字符" if real else p.source
        parts.append(
            '<details class="qa-context"><summary>阅读全文上下文</summary>'
            f'<div class="qa-ctx-text"><div class="qa-cite"><span class="qa-path">{_esc(title)}</span>'
            f"（{_esc(where)}）</div>{_with_mark(text, mark)}</div></details>"
        )
    parts.append("</div>")
    return "".join(parts)


def _assistant(content: str, title: str | None = None, *, closed: bool = False) -> dict:
    msg: dict[str, Any] = {"role": "assistant", "content": content}
    if title:
        msg["metadata"] = {"title": title, **({"status": "done"} if closed else {})}
    return msg


def format_reply(answer: Answer, view: SourceView | None = None) -> list[dict]:
    """The chat reply for ``answer``: the highlighted quote and where it is from, then the sources.

    Returns Gradio "messages" dicts: the answer, then a titled (collapsible) sources panel.
    """
    resolved = ""
    if answer.resolved_question and answer.resolved_question != answer.question:
        resolved = f'<div class="qa-resolved">按“{_esc(answer.resolved_question)}”理解</div>'
    passages = "".join(_passage_html(i, p, view) for i, p in enumerate(answer.passages, 1))
    passages = f'<div class="qa-sources">{passages}</div>'
    n = len(answer.passages)
    if not answer.found:
        out = [_assistant(f'<div class="qa-answer qa-none">{resolved}<p>{NOT_FOUND}</p></div>')]
        if n:
            out.append(_assistant(passages, f"相关段落（{n} 段）"))
        return out
    if answer.parts:  # a comparison across reports: one quote per report named
        body = "".join(f'<div class="qa-part-label">{_esc(part.label)}</div>' + _quote_html(part) for part in answer.parts)
        out = [_assistant(f'<div class="qa-answer">{resolved}{body}</div>')]
    else:
        out = [_assistant(f'<div class="qa-answer">{resolved}{_quote_html(answer)}</div>')]
    if n:
        out.append(_assistant(passages, f"来源（{n} 段）", closed=True))
    return out


def _quote_html(answer: Answer) -> str:
    if not answer.found:
        return f"<p>{NOT_FOUND}</p>"
    cite = (f'<div class="qa-cite">—— <span class="qa-path">{_esc(answer.citation or answer.section)}</span><br>'
            f"{_esc(answer.source)} · 第 {answer.start}–{answer.end} 字符 · 置信度 {answer.score:.2f}</div>")
    return f'<blockquote class="qa-quote">「{_with_mark(answer.text, answer_mark(answer))}」</blockquote>{cite}'


def document_choices(documents) -> list[tuple[str, str]]:
    """(label, source file) per report, newest first then by region: what the picker offers."""
    ordered = sorted(documents, key=lambda d: (-(d.meta.year or 0), d.meta.region, d.source))
    return [(d.meta.label(d.source), d.source) for d in ordered]


def user_message(text: str) -> dict:
    """The user's message as shown in the chat: escaped, so it renders literally and runs nothing."""
    return {"role": "user", "content": f"{_USER_OPEN}{_esc(text)}{_USER_CLOSE}"}


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        text = content
    elif isinstance(content, dict):
        text = content.get("text") if isinstance(content.get("text"), str) else ""
    elif isinstance(content, (list, tuple)):
        text = "".join(_content_text(c) for c in content)
    else:
        text = ""
    if text.startswith(_USER_OPEN) and text.endswith(_USER_CLOSE):
        text = html.unescape(text[len(_USER_OPEN) : -len(_USER_CLOSE)].replace("<br>", "\n"))
    return text


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, dict) else getattr(message, "role", None)


def recent_turns(history: Sequence[Any] | None, turns: int) -> list:
    """The chat from its ``turns``-th last user message on (all of it when shorter)."""
    history = list(history or ())
    seen = 0
    for i in range(len(history) - 1, -1, -1):
        if _role(history[i]) == "user":
            seen += 1
            if seen == turns:
                return history[i:]
    return history


def user_texts(history: Iterable[Any]) -> list[str]:
    """The user's earlier questions, as typed, from Gradio "messages" history."""
    out = []
    for m in history or ():
        if _role(m) == "user":
            text = _content_text(m.get("content") if isinstance(m, dict) else getattr(m, "content", ""))
            if text.strip():
                out.append(text)
    return out


def resolved_history(questions: Iterable[str]) -> list[str]:
    """Earlier questions after follow-up resolution, as the engine resolved them when they were asked.

    Passing resolved questions (not raw ones) keeps chains working: after "2024年新增就业多少人？",
    "那2025年呢？", a third "那城镇呢？" still knows the topic.
    """
    out: list[str] = []
    for q in questions:
        try:
            q = clean_question(q)
        except QuestionError:
            continue  # it was refused when asked; it carries no topic
        out.append(resolve_followup(q, out)[:MAX_QUESTION_CHARS])  # as the engine clips it
    return out


# --------------------------------------------------------------------------- handlers


def make_respond(engine, k: int = K) -> Callable[..., list[dict]]:
    """The chat handler for ``engine``: ``respond(message, history, sources=None) -> list of assistant
    messages``; ``sources`` (the picker's selection) keeps the search to those reports."""
    view = SourceView.from_index(engine.data)

    def respond(message: str, history: list, sources: Sequence[str] | None = None) -> list[dict]:
        # only the last few questions can matter to a follow-up: a long chat costs no more
        earlier = resolved_history(user_texts(recent_turns(history, HISTORY_TURNS)))
        try:
            narrow = {"filters": {"source": list(sources)}} if sources else {}
            answer = engine.ask(message, k=k, history=earlier, **narrow)
        except QuestionError as exc:
            return [_assistant(f'<div class="qa-error">{_esc(str(exc))}</div>')]
        except Exception:
            log.exception("chat: answering %r failed", message)
            return [_assistant(f'<div class="qa-error">{APOLOGY}</div>')]
        return format_reply(answer, view)

    return respond


def ask_args(args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict:
    """The /ask route's input, checked at the HTTP edge before it is queued: ``{"question", "k"}``
    with k defaulting to 5 (None too), or InputError/QuestionError naming what is wrong."""
    names = ("question", "k")
    if len(args) > len(names):
        raise InputError(f"/ask takes at most 2 inputs (question, k), got {len(args)}", "data")
    unknown = sorted(set(kwargs) - set(names))
    if unknown:
        raise InputError(f"/ask has no input {unknown[0]!r}: it takes question and k", unknown[0])
    values = dict(zip(names, args))
    for name, value in kwargs.items():
        if name in values:
            raise InputError(f"{name} is given twice", name)
        values[name] = value
    if "question" not in values:
        raise InputError('question is missing: send e.g. {"question": "2024年地区生产总值是多少？"}', "question")
    clean_question(values["question"])  # QuestionError: not a string, empty, too long
    k = K if values.get("k") is None else values["k"]
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise InputError(f"k must be an integer from 1 to {MAX_K}, got {k!r}", "k")
    return {"question": values["question"], "k": k}


def answer_dict(engine, question: str, k: int = K) -> dict:
    """What the /ask route returns: ``asdict(answer)`` without the internal timings and refusal
    signals (the same fields as `python -m app ask --json`)."""
    d = asdict(engine.ask(question, k=k))
    for internal in ("timings", "signals"):
        d.pop(internal, None)
    return d


def build_ui(engine):
    """The chat page for ``engine`` (queue enabled) plus the API route ``/ask``."""
    import gradio as gr

    respond = make_respond(engine)

    # The page's handlers: each keeps the last CHAT_TURNS_KEPT turns, so what the page sends back
    # with the next question stays bounded however long the chat runs.
    def add_user(message: str, history: list):
        if not (message or "").strip():
            return message, recent_turns(history, CHAT_TURNS_KEPT)
        return "", [*recent_turns(history, CHAT_TURNS_KEPT - 1), user_message(message)]

    def add_example(evt: gr.SelectData, history: list):
        value = evt.value if isinstance(evt.value, dict) else {"text": str(evt.value)}
        return [*recent_turns(history, CHAT_TURNS_KEPT - 1), user_message(str(value.get("text", "")))]

    def add_reply(history: list, sources=None):
        history = recent_turns(history, CHAT_TURNS_KEPT)
        if not history or _role(history[-1]) != "user":
            return history
        message = user_texts(history[-1:])
        return [*history, *respond(message[0] if message else "", history[:-1], sources or None)]

    def api_ask(question: str, k: int = K) -> dict:
        """Answer a question from the report. Returns found, text, highlight, section, source,
        character offsets, score, resolved_question and the passages (best first)."""
        try:
            return answer_dict(engine, question, k)
        except QuestionError as exc:
            raise gr.Error(str(exc), print_exception=False) from None  # the caller's mistake, not ours

    n_docs = len(getattr(engine, "documents", ()))
    title = TITLE if n_docs <= 1 else f"政府工作报告 · 问答（{n_docs} 份报告）"
    # analytics off: Gradio otherwise reports usage to its servers (and the app runs offline)
    with gr.Blocks(title=title, fill_height=True, analytics_enabled=False) as demo:
        gr.Markdown(f"# {title}\n答案逐字引自报告原文，标出答案所在的句子和章节；离线运行。", elem_id="qa-title")
        chatbot = gr.Chatbot(
            label="问答",
            show_label=False,
            elem_id="qa-chat",
            scale=1,
            height=200,  # with fill_height the chat grows to the window; this is only its floor
            min_height=320,
            placeholder="**向报告提问**<br>例如下面的问题，或在下方输入自己的问题。",
            examples=[{"text": q} for q in EXAMPLES],
            sanitize_html=True,
            render_markdown=True,
            latex_delimiters=[],  # "$" in a question is not LaTeX
            buttons=[],
            feedback_options=None,
            layout="bubble",
            autoscroll=True,
        )
        picker = None
        if len(getattr(engine, "documents", ())) > 1:  # several reports: let the reader narrow the search
            picker = gr.Dropdown(choices=document_choices(engine.documents), value=[], multiselect=True,
                                 label="在这些报告中查找（不选 = 全部报告）", elem_id="qa-picker")
        box = gr.Textbox(
            show_label=False,
            placeholder="输入关于报告的问题，按回车发送",
            submit_btn="发送",
            lines=1,
            max_lines=4,
            autofocus=True,
            elem_id="qa-input",
        )
        ui_only = {"api_visibility": "private"}
        reply_in = [chatbot, picker] if picker is not None else chatbot
        box.submit(add_user, [box, chatbot], [box, chatbot], queue=False, **ui_only).then(
            add_reply, reply_in, chatbot, show_progress="minimal", **ui_only)
        chatbot.example_select(add_example, chatbot, chatbot, queue=False, **ui_only).then(
            add_reply, reply_in, chatbot, show_progress="minimal", **ui_only)
        gr.api(api_ask, api_name="ask")
    # Engine.ask only reads: safe to share across sessions
    demo.queue(default_concurrency_limit=4, max_size=QUEUE_SIZE)
    return demo


def launch_options() -> dict:
    """Keyword arguments for ``build_ui(engine).launch(...)``: the page's CSS (Gradio 6 takes it there),
    the HTTP edge in front of every route (app/edge.py: only /ask and what the page needs, bodies
    limited, inputs checked, errors as JSON), and none of Gradio's extras that store or send anything:
    no run history (it can sync to the Hugging Face Hub), no monitoring page, no server-side
    rendering process; uploads are closed at the edge and capped here as a second layer."""
    from starlette.middleware import Middleware

    from .edge import Edge

    return {
        "css": CSS,
        "app_kwargs": {"middleware": [Middleware(Edge, api={"ask": ask_args})]},
        "state_session_capacity": SESSIONS_KEPT,
        "run_history": False,
        "enable_monitoring": False,
        "ssr_mode": False,
        "max_file_size": "1kb",
    }


def serve(engine, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Start the web chat and block until interrupted."""
    build_ui(engine).launch(server_name=host, server_port=port, **launch_options())
