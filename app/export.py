"""The conversation as Markdown, and one answer as plain text (the copy button).

    conversation_markdown(turns, base_url="") -> str    each question, its quote with 【】 around the span,
                                                        section path, file and offsets, and the sources
    answer_plain_text(answer) -> str                    「…【span】…」 —— section（file，第 a–b 字符）

Pure functions of `Answer` values; the UI keeps the session's answers and offers the file.
Text from the user or the report is escaped for Markdown, so a question such as
"<img onerror=…>" or "*重点*" stays literal wherever the file is rendered.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Iterable

from .engine import Answer, Passage
from .reportview import Location

__all__ = ["NOT_FOUND", "answer_location", "answer_plain_text", "conversation_markdown", "passage_location",
           "quote_with_span"]

NOT_FOUND = "报告中没有找到这个问题的答案。"
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def _md(text: str) -> str:
    """Escape Markdown/HTML syntax and keep the text on one line."""
    return _MD_SPECIAL.sub(r"\\\1", re.sub(r"\s*\n\s*", " ", text))


def quote_with_span(answer: Answer) -> tuple[str, str, str]:
    """``answer.text`` split around its highlight: (before, span, after); located by content, as the
    CLI does, because offsets are into the file and the text may skip page-break newlines."""
    i = answer.text.find(answer.highlight) if answer.highlight else -1
    if i < 0:
        return answer.text, "", ""
    j = i + len(answer.highlight)
    return answer.text[:i], answer.text[i:j], answer.text[j:]


def answer_location(answer: Answer) -> Location | None:
    """The quote's place: the sentence, with the highlight marked."""
    if not answer.found or answer.start < 0:
        return None
    return Location(answer.source, answer.start, answer.end, answer.highlight_start, answer.highlight_end)


def passage_location(p: Passage) -> Location:
    """A source passage's place: the passage, with its best sentence marked."""
    return Location(p.source, p.start, p.end, p.mark_start, p.mark_end)


def answer_plain_text(answer: Answer) -> str:
    """What the copy button copies: the quote with 【】 around the span, and where it is from."""
    if answer.intent == "smalltalk":
        return answer.message
    if answer.parts:
        return "\n\n".join(f"{p.label}：{answer_plain_text(p)}" if p.label else answer_plain_text(p)
                             for p in answer.parts)
    if not answer.found:
        return NOT_FOUND
    before, span, after = quote_with_span(answer)
    quote = f"「{before}【{span}】{after}」" if span else f"「{answer.text}」"
    return (f"{quote}\n—— {answer.citation or answer.section}（{answer.source}，第 {answer.start}–{answer.end} 字符；"
            f"答案 {answer.highlight_start}–{answer.highlight_end}）")


def conversation_markdown(answers: Iterable[Answer], base_url: str = "", title: str = "",
                          now: datetime | None = None) -> str:
    """The conversation as a Markdown document, one section per question."""
    now = now or datetime.now(timezone.utc)
    lines = [f"# {_md(title or '海拉尔区 2025 年政府工作报告 · 问答记录')}", "",
             f"导出时间：{now.isoformat(timespec='seconds')}", ""]
    link = (lambda loc: f"{base_url.rstrip('/')}/{loc.query()}") if base_url else (lambda loc: loc.query())
    for n, a in enumerate(answers, 1):
        lines += [f"## {n}. {_md(a.question)}", ""]
        if a.resolved_question and a.resolved_question != a.question:
            lines += [f"（按“{_md(a.resolved_question)}”理解）", ""]
        if a.intent == "smalltalk":  # a greeting or thanks: the reply, no quote
            lines += [_md(a.message), ""]
        elif a.parts:  # one quote per report a comparison names, or a list's lead and its items
            for part in a.parts:
                lines += [*([f"**{_md(part.label)}**", ""] if part.label else []), *_quote_lines(part, link)]
        else:
            lines += _quote_lines(a, link)
        if a.passages:
            lines += ["来源：" if a.found else "相关段落：", ""]
            for i, p in enumerate(a.passages, 1):
                lines.append(f"{i}. {_md(p.citation or p.section)}（{_md(p.source)}，第 {p.start}–{p.end} 字符）"
                             f" [查看]({link(passage_location(p))})")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _quote_lines(a: Answer, link) -> list[str]:
    loc = answer_location(a)
    if loc is None:
        return [f"> {NOT_FOUND}", ""]
    before, span, after = quote_with_span(a)
    quote = f"「{_md(before)}【{_md(span)}】{_md(after)}」" if span else f"「{_md(a.text)}」"
    return [
        f"> {quote}", "",
        f"—— {_md(a.citation or a.section)}  ",
        f"文件 {_md(a.source)}，第 {a.start}–{a.end} 字符；答案 {a.highlight_start}–{a.highlight_end} 字符  ",
        f"[在报告中查看]({link(loc)})", "",
    ]
