"""The web workbench (Gradio): the chat with quoted, highlighted answers, the report, its figures.

    build_ui(engine) -> gr.Blocks      the page (tabs 问答 / 报告原文 / 数据一览), plus the API route /ask
    serve(engine, host, port)          build and launch (what `python -m app serve` runs)
    launch_options()                   launch arguments: CSS, script, the HTTP edge (app/edge.py)
    make_respond(engine)               the chat handler: respond(message, history[, sources]) -> reply messages
    earlier_questions(history)         the user's own last HISTORY_TURNS questions, as typed
    keep_turns(history, turns, n)      the chat's last n turns and the page's records of their replies
    ask_args(args, kwargs)             the /ask route's input check, run at the HTTP edge
    is_download(path)                  the edge's test for the file route: a download this app wrote
    document_choices(documents)        the report picker's entries (shown when the index holds several reports)
    format_reply(answer, view)         pure: an Answer → assistant message dicts (HTML)

Limits: the page sends its whole chat with each question, so every handler keeps only the last
`CHAT_TURNS_KEPT` turns (older ones leave the page, and their records leave the session's state;
the request stays far under the edge's body limit). The engine resolves follow-ups from the
user's own last `HISTORY_TURNS` questions only: a long chat costs no more to answer than a short
one. Only /ask is an API route; the page's own handlers are private and reachable only the way
the page calls them (by number, through the edge's checks). Downloads (CSV, Markdown) are files
with generated names, the only files the edge serves; they are deleted after `DOWNLOAD_TTL_S`.

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
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

from .edge import InputError
from .engine import HISTORY_TURNS, MAX_QUESTION_CHARS, Answer, Passage, clean_question
from .errors import QuestionError
from .export import answer_location, answer_plain_text, passage_location
from .workbench import DOWNLOAD_TTL_S, is_download

__all__ = ["APOLOGY", "CHAT_TURNS_KEPT", "EXAMPLES", "NOT_FOUND", "TITLE", "ChatTurn", "SourceView", "answer_dict",
           "ask_args", "build_ui", "document_choices", "earlier_questions", "format_reply", "is_download", "keep_turns", "launch_options",
           "make_answerer", "make_respond", "passage_mark", "recent_turns", "serve", "turn_at", "user_message",
           "user_texts"]

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
CHAT_TURNS_KEPT = 40  # questions (with their replies) the page keeps; a reply is ~14-18 KB of HTML (UTF-8)
QUEUE_SIZE = 256  # requests waiting at most; more get "queue is full" (503) instead of holding memory
# Gradio keeps per session (each page, and each API call without a session of its own) a copy of the
# page's config, the chat last sent and the page's State (the answers kept for feedback and export);
# its default of 10,000 sessions let a stream of API calls grow the server by ~70 KB each. An evicted
# session loses only the 👍/👎 link to its answers; the chat itself lives in the browser.
SESSIONS_KEPT = 128
MAX_LINK_CHARS = 1000  # a deep link (?doc=…&start=…&end=…&hs=…&he=…) is ~100 characters
_USER_OPEN, _USER_CLOSE = '<div class="qa-q">', "</div>"

CSS = """
.gradio-container { width: 100% !important; max-width: 1200px !important; margin: 0 auto !important; }
#qa-tab-chat { max-width: 900px; margin: 0 auto; width: 100%; }
.qa-copy-src { display: none !important; }
.qa-sources-panel { margin-top: 0.5rem; border-top: 1px solid var(--border-color-primary); padding-top: 0.35rem; }
.qa-sources-panel > summary { cursor: pointer; font-size: 0.9rem; font-weight: 600; }
.qa-sources-panel > .qa-sources { margin-top: 0.4rem; }
#qa-title p, .qa-cite, .qa-p-head .qa-score, .qa-resolved, .qa-chart figcaption { color: #4b5563 !important; }
footer .show-api, footer .built-with, footer .settings, footer a, footer button { color: #374151 !important; }
.qa-actions { margin-top: 0.35rem; display: flex; gap: 0.8rem; align-items: center; flex-wrap: wrap; font-size: 0.88rem; }
.qa-actions button.qa-copy { border: 1px solid var(--border-color-primary); border-radius: 6px; padding: 0 0.6rem;
  background: var(--background-fill-primary); color: var(--body-text-color); cursor: pointer; line-height: 1.8; }
#qa-chat .message-content .prose { opacity: 1 !important; }  /* Gradio dims answers to 0.8: too faint for AA */
#qa-chat .qa-context summary { color: #1d4ed8 !important; }
#qa-tabs button[role="tab"][aria-selected="true"] { color: #c2410c !important; }  /* Gradio's orange is 2.8:1 */
#qa-chat .qa-cite, #qa-chat .qa-p-head .qa-score, #qa-chat .qa-resolved { color: #4b5563 !important; }
#qa-chat a.qa-link, #qa-report a.qa-link, #qa-fig-table a.qa-link, #qa-fig-charts a.qa-link,
#qa-find-results a.qa-link { color: #1d4ed8 !important; }
a.qa-link { color: #1d4ed8; text-decoration: underline; text-underline-offset: 2px; }
a.qa-link:focus-visible, .qa-copy:focus-visible, .qa-toc a:focus-visible, .qa-hit:focus, .qa-h:focus
  { outline: 3px solid #2563eb; outline-offset: 2px; }
.qa-report { display: grid; grid-template-columns: minmax(13rem, 17rem) minmax(0, 1fr); gap: 1.5rem; align-items: start; }
.qa-toc { position: sticky; top: 0.5rem; max-height: calc(100vh - 1rem); overflow-y: auto; font-size: 0.85rem;
          line-height: 1.5; padding-right: 0.4rem; border-right: 1px solid var(--border-color-primary); }
.qa-toc ul { list-style: none; margin: 0.1rem 0 0.1rem 0.9rem; padding: 0; }
.qa-toc > details > ul { margin-left: 0; }
.qa-toc summary { cursor: pointer; }
.qa-toc-fold > summary { font-size: 0.78rem; color: #4b5563; margin-left: 0.2rem; }
.qa-toc-root > summary { font-weight: 600; margin-bottom: 0.3rem; }
.qa-toc a { color: var(--body-text-color); text-decoration: none; }
.qa-toc a:hover { text-decoration: underline; }
.qa-doc { font-size: 1rem; line-height: 1.85; max-width: 46rem; }
.qa-doc h2 { font-size: 1.3rem; margin: 0.4rem 0 0.6rem; }
.qa-doc h3 { font-size: 1.12rem; margin: 1.4rem 0 0.4rem; }
.qa-doc h4 { font-size: 1rem; margin: 1rem 0 0.2rem; }
.qa-doc p { margin: 0 0 0.7rem; }
.qa-doc .qa-lead { font-weight: 700; }
.qa-hit-sent { background: #fff4c2; color: #1f2328; border-radius: 2px; }
mark.qa-hit { background: #ffd43b; color: #1f2328; padding: 0 1px; border-radius: 2px; box-shadow: 0 0 0 2px #f59f00; }
mark.qa-find { background: #b2f2bb; color: #1f2328; }
.qa-notice { color: #b42318; font-weight: 600; }
.qa-find-list { font-size: 0.88rem; line-height: 1.6; max-height: 12rem; overflow-y: auto; margin: 0; padding-left: 1.6rem; }
.qa-table-wrap { overflow-x: auto; max-width: 100%; }
.qa-table-wrap:focus-visible { outline: 3px solid #2563eb; }
table.qa-figures, table.qa-pairs { border-collapse: collapse; font-size: 0.86rem; width: 100%; }
table.qa-figures th, table.qa-figures td, table.qa-pairs th, table.qa-pairs td
  { border-bottom: 1px solid var(--border-color-primary); padding: 0.25rem 0.45rem; text-align: left; vertical-align: top; }
table.qa-figures thead th, table.qa-pairs thead th { position: sticky; top: 0; background: var(--background-fill-secondary); }
table.qa-figures caption, table.qa-pairs caption { text-align: left; font-weight: 600; padding: 0.3rem 0; }
table.qa-figures tbody th, table.qa-pairs tbody th { font-weight: 600; min-width: 8rem; }
table.qa-figures td:nth-child(n+3):nth-child(-n+7), table.qa-pairs td:first-of-type { white-space: nowrap; }
.qa-num { text-align: right !important; font-variant-numeric: tabular-nums; white-space: nowrap; }
#qa-fig-table .qa-table-wrap { max-height: 70vh; overflow-y: auto; }
.qa-chart { margin: 0.8rem 0; }
.qa-chart img { max-width: 100%; height: auto; }
.qa-chart figcaption { font-size: 0.85rem; color: var(--body-text-color-subdued); }
@media (max-width: 800px) {
  .qa-report { grid-template-columns: minmax(0, 1fr); }
  .qa-toc { position: static; max-height: 40vh; border-right: none; border-bottom: 1px solid var(--border-color-primary); }
}
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
.qa-cite { font-size: 0.85rem; line-height: 1.5; }
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
    link = html.escape(passage_location(p).query())
    parts = [
        '<div class="qa-passage">',
        f'<div class="qa-p-head">[{i}] <a class="qa-link" href="{link}" aria-label="在报告原文中查看来源 {i}：{_esc(p.section)}">'
        f'{_esc(p.citation or p.section)}</a><span class="qa-score">相关度 {p.score:.4f}</span></div>',
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


def _assistant(content: str) -> dict:
    return {"role": "assistant", "content": content}


def _sources_panel(answer: Answer, view: SourceView | None, title: str, *, open_: bool) -> str:
    # A native <details>: focusable and opened with Enter/Space. (Gradio's titled message panel
    # nests an unnamed button inside a role=button, which keyboard and screen-reader users cannot use.)
    passages = "".join(_passage_html(i, p, view) for i, p in enumerate(answer.passages, 1))
    return (f'<details class="qa-sources-panel"{" open" if open_ else ""}><summary>{title}</summary>'
            f'<div class="qa-sources">{passages}</div></details>')


def format_reply(answer: Answer, view: SourceView | None = None) -> list[dict]:
    """The chat reply for ``answer``: the highlighted quote, where it is from (a link to the place
    in the report tab, a copy button), then the sources in a collapsible panel.

    Returns Gradio "messages" dicts (one message, so 👍/👎 rate the whole answer).
    """
    resolved = ""
    if answer.resolved_question and answer.resolved_question != answer.question:
        resolved = f'<div class="qa-resolved">按“{_esc(answer.resolved_question)}”理解</div>'
    if answer.intent == "smalltalk":  # a greeting or thanks: the engine's short reply, no quote, no sources
        return [_assistant(f'<div class="qa-answer qa-smalltalk"><p>{_esc(answer.message)}</p></div>')]
    n = len(answer.passages)
    if not answer.found:
        related = _sources_panel(answer, view, f"相关段落（{n} 段）", open_=True) if n else ""
        return [_assistant(f'<div class="qa-answer qa-none">{resolved}<p>{NOT_FOUND}</p>{related}</div>')]
    if answer.parts:  # one quote per report a comparison names, or a list's lead and its items
        body = "".join((f'<div class="qa-part-label">{_esc(part.label)}</div>' if part.label else "") + _quote_html(part)
                       for part in answer.parts)
        if answer.message:
            body = f'<p class="qa-part-note">{_esc(answer.message)}</p>' + body
    else:
        body = _quote_html(answer)
    sources = _sources_panel(answer, view, f"来源（{n} 段）", open_=False) if n else ""
    return [_assistant(f'<div class="qa-answer">{resolved}{body}{sources}</div>')]


def _quote_html(answer: Answer) -> str:
    """One quote with its citation, a link to its place in the report tab and a copy button."""
    if not answer.found:
        return f"<p>{NOT_FOUND}</p>"
    link = html.escape(answer_location(answer).query())
    cite = (f'<div class="qa-cite">—— <span class="qa-path">{_esc(answer.citation or answer.section)}</span><br>'
            f"{_esc(answer.source)} · 第 {answer.start}–{answer.end} 字符 · 置信度 {answer.score:.2f}</div>"
            f'<div class="qa-actions"><a class="qa-link qa-open" href="{link}">在报告原文中查看</a>'
            f'<button type="button" class="qa-copy">复制</button>'
            # what the button copies; the chat's sanitizer drops data- attributes, CSS hides this
            f'<span class="qa-copy-src">{html.escape(answer_plain_text(answer)).replace(chr(10), "&#10;")}</span></div>')
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


def earlier_questions(history: Sequence[Any] | None) -> list[str]:
    """The user's own last `HISTORY_TURNS` questions in the chat, as typed (each clipped to
    `MAX_QUESTION_CHARS`, as the engine clips them): what the engine resolves a follow-up from
    (app/dialogue.py resolves the whole chain itself), and what feedback records keep, so an
    exported 👎 replays exactly as it was asked."""
    return [q[:MAX_QUESTION_CHARS] for q in user_texts(recent_turns(history, HISTORY_TURNS))]


# --------------------------------------------------------------------------- handlers


def make_answerer(engine, k: int = K) -> Callable[..., tuple[Answer | None, list[dict]]]:
    """``turn(message, earlier, sources=None) -> (answer or None on error, assistant messages)``: the
    chat handler plus the Answer itself, which the page keeps for feedback and export. ``earlier`` is
    the user's earlier questions as typed (`earlier_questions`); ``sources`` (the picker's selection)
    keeps the search to those reports."""
    view = SourceView.from_index(engine.data)

    def turn(message: str, earlier: Sequence[str], sources: Sequence[str] | None = None) -> tuple[Answer | None, list[dict]]:
        try:
            narrow = {"filters": {"source": list(sources)}} if sources else {}
            answer = engine.ask(message, k=k, history=earlier, **narrow)
        except QuestionError as exc:
            return None, [_assistant(f'<div class="qa-error">{_esc(str(exc))}</div>')]
        except Exception:
            log.exception("chat: answering %r failed", message)
            return None, [_assistant(f'<div class="qa-error">{APOLOGY}</div>')]
        return answer, format_reply(answer, view)

    return turn


def make_respond(engine, k: int = K) -> Callable[..., list[dict]]:
    """The chat handler for ``engine``: ``respond(message, history, sources=None) -> list of assistant
    messages``; ``sources`` (the picker's selection) keeps the search to those reports."""
    turn = make_answerer(engine, k)
    # only the last few questions can matter to a follow-up: a long chat costs no more
    return lambda message, history, sources=None: turn(message, earlier_questions(history), sources)[1]


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


@dataclass(frozen=True)
class ChatTurn:
    """One reply as the page keeps it (in the session's State) for 👍/👎 and the Markdown export."""

    id: int  # stable within the session (the feedback given is keyed by it), unlike a message index
    answer: Answer | None  # None when the question was refused or failed
    history: tuple[str, ...]  # the user's earlier questions as typed (`earlier_questions`), as asked
    first: int  # the reply's message indices in the chat
    last: int


def keep_turns(history: Sequence[Any] | None, turns: Sequence[ChatTurn], n: int) -> tuple[list, list[ChatTurn]]:
    """The chat's last ``n`` turns, and the records of the replies still in it, re-indexed: the
    page's State shrinks with the chat, and a 👍 on a reply still finds its answer."""
    history = list(history or ())
    kept = recent_turns(history, n)
    drop = len(history) - len(kept)
    return kept, [replace(t, first=t.first - drop, last=t.last - drop) for t in turns if t.first >= drop]


def turn_at(turns: Sequence[ChatTurn], index: Any) -> ChatTurn | None:
    """The reply a chat message index belongs to (Gradio's like event gives the message index)."""
    i = index[0] if isinstance(index, (list, tuple)) and index else index
    if not isinstance(i, int) or isinstance(i, bool):
        return None
    return next((t for t in turns if t.first <= i <= t.last), None)


def _origin(request) -> str:
    """The page's address as the browser sees it, for absolute links in exports and the share box."""
    headers = getattr(request, "headers", None) or {}
    origin = headers.get("origin") or (f"http://{headers['host']}" if headers.get("host") else "")
    return origin.rstrip("/") + "/" if origin else ""


def build_ui(engine, corpus_dir=None, feedback=None):
    """The workbench page for ``engine`` (queue enabled) plus the API route ``/ask``.

    Tabs: 问答 (the chat, with 👍/👎, copy and export: `ui_chat`), 报告原文 (the report, its contents
    and search; citations open it at their place: `ui_report`) and 数据一览 (every figure,
    filterable, as CSV, with charts: `ui_figures`). ``corpus_dir`` is the folder the index was
    built from (default: the settings'), and ``feedback`` a FeedbackStore (default: APP_FEEDBACK_DB
    or the user data folder).
    """
    import gradio as gr

    from .config import Settings
    from .ui_chat import ChatState, chat_tab, wire_chat
    from .ui_figures import figures_tab, wire_figures
    from .ui_report import report_tab, wire_report
    from .workbench import Workbench

    bench = Workbench.open(corpus_dir or Settings.from_env().corpus_dir, feedback)

    def api_ask(question: str, k: int = K) -> dict:
        """Answer a question from the report. Returns found, text, highlight, section, source,
        character offsets, score, resolved_question and the passages (best first)."""
        try:
            return answer_dict(engine, question, k)
        except QuestionError as exc:
            raise gr.Error(str(exc), print_exception=False) from None  # the caller's mistake, not ours

    ui_only = {"api_visibility": "private"}
    n_docs = len(getattr(engine, "documents", ()))
    title = TITLE if n_docs <= 1 else f"政府工作报告 · 问答（{n_docs} 份报告）"
    # analytics off: Gradio otherwise reports usage to its servers (and the app runs offline);
    # delete_cache: Gradio's copies of generated downloads go after DOWNLOAD_TTL_S (the initial ones stay)
    with gr.Blocks(title=title, fill_height=True, analytics_enabled=False,
                   delete_cache=(min(60, DOWNLOAD_TTL_S), DOWNLOAD_TTL_S)) as demo:
        gr.Markdown(f"# {title}\n答案逐字引自报告原文，标出答案所在的句子和章节；离线运行。", elem_id="qa-title")
        state = ChatState(gr.State([]), gr.State({}), gr.State(None))
        goto = gr.Textbox(visible="hidden", label="跳转到报告中的位置", max_length=MAX_LINK_CHARS, elem_id="qa-goto")
        with gr.Tabs(selected="chat", elem_id="qa-tabs") as tabs:
            with gr.Tab("问答", id="chat", elem_id="qa-tab-chat"):
                chat = chat_tab(engine, bench, title)
            with gr.Tab("报告原文", id="report", elem_id="qa-tab-report"):
                report = report_tab(bench)
            with gr.Tab("数据一览", id="figures", elem_id="qa-tab-figures"):
                figures = figures_tab(bench)
        wire_chat(chat, engine, bench, title, state, ui_only)
        wire_report(report, bench, goto, tabs, demo, ui_only)
        wire_figures(figures, bench, ui_only)
        gr.api(api_ask, api_name="ask")
    # Engine.ask only reads: safe to share across sessions
    demo.queue(default_concurrency_limit=4, max_size=QUEUE_SIZE)
    return demo


def launch_options() -> dict:
    """Keyword arguments for ``build_ui(engine).launch(...)``: the page's CSS and script (Gradio 6
    takes them there), the HTTP edge in front of every route (app/edge.py: only /ask, what the page
    needs and the downloads it generated; bodies limited, inputs checked, errors as JSON), and none
    of Gradio's extras that store or send anything: no run history (it can sync to the Hugging Face
    Hub), no monitoring page, no server-side rendering process; uploads are closed at the edge and
    capped here as a second layer."""
    from starlette.middleware import Middleware

    from .edge import Edge
    from .workbench import GOTO_JS

    return {
        "css": CSS,
        "js": GOTO_JS,
        "footer_links": ["api", "settings"],
        "app_kwargs": {"middleware": [Middleware(Edge, api={"ask": ask_args}, files=is_download)]},
        "state_session_capacity": SESSIONS_KEPT,
        "run_history": False,
        "enable_monitoring": False,
        "ssr_mode": False,
        "max_file_size": "1kb",
    }


def serve(engine, host: str = "127.0.0.1", port: int = 7860, corpus_dir=None) -> None:
    """Start the web chat and block until interrupted."""
    build_ui(engine, corpus_dir=corpus_dir).launch(server_name=host, server_port=port, **launch_options())
