"""The report as a page: its own hierarchy as a table of contents, places linked by file offsets.

    Location(source, start, end, mark_start, mark_end)   a place in a file; .query() is its deep link
    parse_location(params, sources) -> Location          from a URL's query (?doc=…&start=…), validated
    outline(doc) -> tuple[Heading, ...]                  一、/（一）/一是/——/lead sentences/名词解释 entries
    render_report(doc, location, find) -> str            HTML: contents + full text, the place marked
    find_in_text(text, query) -> list[(start, end)]      search that ignores spaces, width and 繁/简

Everything is pure and escapes every string from the file or the user. A deep link is a URL
query: ``?doc=<file>&start=<a>&end=<b>&hs=<c>&he=<d>`` — the sentence or passage [a, b) is
tinted and the span [c, d) (the answer's highlight) is marked; all are character offsets into the
file, as in `Answer`/`Passage`.
"""

from __future__ import annotations

import html
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping, Sequence
from urllib.parse import urlencode

from .corpus import Doc, Span, clean, sections
from .errors import AppError

__all__ = ["Heading", "Location", "LocationError", "find_in_text", "outline", "parse_location", "render_report"]

MAX_FIND_HITS = 200


class LocationError(AppError):
    """A deep link that does not point into the corpus (names the bad parameter and what is allowed)."""


@dataclass(frozen=True)
class Location:
    source: str
    start: int  # the passage or sentence, file offsets
    end: int
    mark_start: int = -1  # the span to mark inside it (-1: none)
    mark_end: int = -1

    def query(self) -> str:
        """The deep link's query string, e.g. ``?doc=report.txt&start=345&end=372&hs=352&he=361``."""
        q = {"doc": self.source, "start": self.start, "end": self.end}
        if self.mark_start >= 0 and self.mark_end > self.mark_start:
            q.update(hs=self.mark_start, he=self.mark_end)
        return "?" + urlencode(q)

    @property
    def focus(self) -> tuple[int, int]:
        """The range to bring into view: the marked span, else the whole place."""
        if self.mark_start >= 0 and self.mark_end > self.mark_start:
            return self.mark_start, self.mark_end
        return self.start, self.end


def _int_param(params: Mapping[str, str], name: str, default: int | None = None) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        if default is None:
            raise LocationError(f"link is missing {name}=: a place needs doc, start and end (e.g. ?doc=…&start=345&end=372)")
        return default
    try:
        return int(str(raw).strip())
    except ValueError:
        raise LocationError(f"{name}={raw!r} is not a character offset (a whole number)") from None


def parse_location(params: Mapping[str, str], sources: Mapping[str, int]) -> Location | None:
    """The place a URL query names, or None when it names none (no ``doc``).

    ``sources`` maps each corpus file name to its length. Raises LocationError for an unknown
    file or offsets outside it, so a mistyped link says what is wrong instead of opening elsewhere.
    """
    doc = params.get("doc")
    if not doc:
        return None
    if doc not in sources:
        known = ", ".join(sorted(sources)) or "none"
        raise LocationError(f"doc={doc!r} is not a file of this corpus (files: {known})")
    n = sources[doc]
    start, end = _int_param(params, "start"), _int_param(params, "end")
    if not 0 <= start < end <= n:
        raise LocationError(f"start={start}, end={end} is not a range inside {doc} (0 ≤ start < end ≤ {n})")
    hs, he = _int_param(params, "hs", -1), _int_param(params, "he", -1)
    if (hs, he) != (-1, -1) and not 0 <= hs < he <= n:
        raise LocationError(f"hs={hs}, he={he} is not a range inside {doc} (0 ≤ hs < he ≤ {n})")
    return Location(doc, start, end, hs, he)


# ---------------------------------------------------------------- outline


@dataclass(frozen=True)
class Heading:
    level: int  # 1 = the report's title, 2 = 一、…, 3 = （一）/一是/——/glossary entry, 4 = a lead sentence
    title: str
    start: int  # where its text starts in the file
    end: int  # where its heading text ends (the title with its closing 。/：); == start if not in the text
    anchor: str  # element id in the rendered page


def _heading_end(body: Span, title: str) -> int | None:
    """File offset just past ``title`` (and its closing punctuation) when the body starts with it."""
    t = body.text
    if not t.startswith(title):
        return None
    i = len(title)
    while i < len(t) and t[i] in "。：:":
        i += 1
    return body.offsets[i - 1] + 1


@lru_cache(maxsize=8)
def _outline(source: str, text: str) -> tuple[tuple[Heading, ...], tuple[Span, ...]]:
    doc = Doc(source, text, "")
    paras = tuple(clean(text))
    secs = sections(doc)
    heads: list[Heading] = []
    seen: set[tuple[str, ...]] = set()
    by_text = {}
    for p in paras:
        by_text.setdefault(p.text, p)
    doc_title = secs[0].path[0] if secs and len(secs[0].path) == 1 else None
    for sec in secs:
        for depth in range(1, len(sec.path) + 1):
            prefix = sec.path[:depth]
            if prefix in seen:
                continue
            seen.add(prefix)
            title = prefix[-1]
            level = depth if prefix[0] == doc_title else depth + 1
            para = by_text.get(title) if depth == 1 else None
            if para is not None:  # 一、… and the title stand alone as paragraphs
                start, end = para.start, para.end
            else:
                end = _heading_end(sec.body, title)
                start = sec.body.start
                end = end if end is not None else start
            heads.append(Heading(level, title, start, end, f"qa-h-{len(heads)}"))
    return tuple(heads), paras


def outline(doc: Doc) -> tuple[Heading, ...]:
    """The report's headings in file order (cached per file text)."""
    return _outline(doc.source, doc.text)[0]


# ---------------------------------------------------------------- search


def _norm_char(ch: str) -> str:
    return unicodedata.normalize("NFKC", ch).lower()


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def _searchable(text: str) -> tuple[str, list[int]]:
    chars, idx = [], []
    for i, ch in enumerate(text):
        if ch.isspace() or (ch == "," and 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()):
            continue
        for c in _norm_char(ch):
            chars.append(c)
            idx.append(i)
    s = "".join(chars)
    simp = _t2s().convert(s)
    return (simp if len(simp) == len(s) else s), idx


def find_in_text(text: str, query: str, limit: int = MAX_FIND_HITS) -> list[tuple[int, int]]:
    """Where ``query`` occurs in ``text``, as (start, end) indices into ``text``.

    Spaces, full/half width, case, thousands separators and Traditional/Simplified do not matter:
    "231.52亿元" finds "231.52 亿元", "海拉爾" finds "海拉尔".
    """
    q, _ = _searchable(query or "")
    if not q:
        return []
    s, idx = _searchable(text)
    out = []
    pos = s.find(q)
    while pos >= 0 and len(out) < limit:
        out.append((idx[pos], idx[pos + len(q) - 1] + 1))
        pos = s.find(q, pos + len(q))
    return out


# ---------------------------------------------------------------- rendering

_SENT, _HIT, _FIND = 0, 1, 2
_OPEN = {
    _SENT: ('<span class="qa-hit-sent"{id}>', "</span>", ' id="qa-hit-sent"'),
    _HIT: ('<mark class="qa-hit"{id}>', "</mark>", ' id="qa-hit"'),
    _FIND: ('<mark class="qa-find"{id}>', "</mark>", ""),
}


def _render_chars(text: str, offsets: Sequence[int], ranges: Sequence[tuple[int, int, int, str]],
                  opened: set) -> str:
    """Escape ``text``, wrapping the characters whose file offsets fall in each range.

    ``ranges`` are (start, end, kind, element id). Tags are closed and reopened whenever the set
    of active ranges changes, so the HTML nests correctly however the ranges overlap; an id goes
    on the first element of its range only (``opened`` remembers across paragraphs).
    """
    if not ranges:
        return html.escape(text)
    out: list[str] = []
    active: tuple = ()
    buf: list[str] = []

    def flush():
        if buf:
            out.append(html.escape("".join(buf)))
            buf.clear()

    for ch, off in zip(text, offsets):
        now = tuple(sorted({(k, rid) for a, b, k, rid in ranges if a <= off < b}))
        if now != active:
            flush()
            for k, _ in reversed(active):
                out.append(_OPEN[k][1])
            for k, rid in now:
                key = (k, rid)
                attr = ""
                if key not in opened:
                    opened.add(key)
                    attr = f' id="{rid}"' if rid else ""
                out.append(_OPEN[k][0].format(id=attr))
            active = now
        buf.append(ch)
    flush()
    for k, _ in reversed(active):
        out.append(_OPEN[k][1])
    return "".join(out)


def _toc(heads: Sequence[Heading]) -> str:
    """Nested, collapsible contents: a <details> for each entry with children, links to anchors."""
    root: list = []
    stack: list[tuple[int, list]] = [(1, root)]
    for h in heads:
        if h.level == 1:
            continue
        while stack[-1][0] >= h.level:
            stack.pop()
        node = (h, [])
        stack[-1][1].append(node)
        stack.append((h.level, node[1]))

    def render(nodes: list) -> str:
        out = []
        for h, kids in nodes:
            link = f'<a href="#{h.anchor}" class="qa-toc-link">{html.escape(h.title)}</a>'
            if kids:
                # the link and the fold are separate controls (a link inside <summary> is a control
                # inside a control); chapters start open, their subsections folded
                out.append(f'<li>{link}<details class="qa-toc-fold"{" open" if h.level == 2 else ""}>'
                           f'<summary aria-label="{html.escape(h.title)} 的 {len(kids)} 个小节">{len(kids)} 个小节</summary>'
                           f"<ul>{render(kids)}</ul></details></li>")
            else:
                out.append(f"<li>{link}</li>")
        return "".join(out)

    return (f'<nav class="qa-toc" aria-label="报告目录"><details class="qa-toc-root" open><summary>目录</summary>'
            f"<ul>{render(root)}</ul></details></nav>")


def render_report(doc: Doc, location: Location | None = None, find: str = "", notice: str = "") -> str:
    """The whole report as HTML: a collapsible table of contents and the text with its headings.

    ``location`` tints its passage/sentence (``#qa-hit-sent``) and marks its span (``#qa-hit``);
    ``find`` marks every occurrence (``mark.qa-find``). ``notice`` (already plain text) is shown
    above the text, e.g. why a link could not be followed.
    """
    heads, paras = _outline(doc.source, doc.text)
    ranges: list[tuple[int, int, int, str]] = []
    if location is not None and location.source == doc.source:
        ranges.append((location.start, location.end, _SENT, "qa-hit-sent"))
        if location.mark_start >= 0 and location.mark_end > location.mark_start:
            ranges.append((location.mark_start, location.mark_end, _HIT, "qa-hit"))
    hits = find_in_text(doc.text, find) if find else []
    for n, (a, b) in enumerate(hits):
        ranges.append((a, b, _FIND, f"qa-find-{n}"))
    opened: set = set()
    by_start = {}
    for h in heads:
        by_start.setdefault(h.start, []).append(h)

    body: list[str] = []
    for p in paras:
        rng = [r for r in ranges if r[0] < p.end and r[1] > p.start]
        here = [h for off in p.offsets[:1] for h in by_start.get(off, [])]
        whole = next((h for h in here if h.end == p.end and h.level <= 2), None)
        if whole is not None:  # the title and 一、… headings are paragraphs of their own
            tag = "h2" if whole.level == 1 else "h3"
            body.append(f'<{tag} id="{whole.anchor}" class="qa-h qa-h{whole.level}">'
                        f"{_render_chars(p.text, p.offsets, rng, opened)}</{tag}>")
            continue
        # headings inside the paragraph: （一）… at its start becomes an h4; leads are bold in place
        inner = sorted((h for h in heads if p.start <= h.start < p.end and h.end > h.start), key=lambda h: h.start)
        pos = 0
        parts: list[str] = []
        para_open = False
        for h in inner:
            i = _index_of(p.offsets, h.start)
            j = _index_of(p.offsets, h.end - 1) + 1
            if i is None or j is None or i < pos:
                continue
            if h.level == 3 and i == 0 and p.text[j - 1] in "。：:":  # a whole sentence, not "…要求是："
                parts.append(f'<h4 id="{h.anchor}" class="qa-h qa-h3">'
                             f"{_render_chars(p.text[i:j], p.offsets[i:j], rng, opened)}</h4>")
                pos = j
                continue
            if not para_open:
                parts.append("<p>")
                para_open = True
            parts.append(_render_chars(p.text[pos:i], p.offsets[pos:i], rng, opened))
            parts.append(f'<strong id="{h.anchor}" class="qa-lead">'
                         f"{_render_chars(p.text[i:j], p.offsets[i:j], rng, opened)}</strong>")
            pos = j
        if pos < len(p.text):
            if not para_open:
                parts.append("<p>")
                para_open = True
            parts.append(_render_chars(p.text[pos:], p.offsets[pos:], rng, opened))
        if para_open:
            parts.append("</p>")
        body.append(f'<div class="qa-para" data-start="{p.start}">{"".join(parts)}</div>')

    status = []
    if notice:
        status.append(f'<p class="qa-notice" role="alert">{html.escape(notice)}</p>')
    if find:
        more = "（只显示前 200 处）" if len(hits) >= MAX_FIND_HITS else ""
        status.append(f'<p class="qa-find-count" role="status">“{html.escape(find)}”：找到 {len(hits)} 处{more}</p>')
    return (f'<div class="qa-report" data-doc="{html.escape(doc.source)}">{_toc(heads)}'
            f'<article class="qa-doc" aria-label="报告原文">{"".join(status)}{"".join(body)}</article></div>')


def _index_of(offsets: Sequence[int], off: int) -> int | None:
    from bisect import bisect_left

    i = bisect_left(offsets, off)
    return i if i < len(offsets) and offsets[i] == off else None


def find_results(doc: Doc, query: str, limit: int = 50) -> list[tuple[Location, str, str]]:
    """Each hit of ``query``: its Location, the section it is in, and a short snippet around it."""
    heads = outline(doc)
    out = []
    for a, b in find_in_text(doc.text, query)[:limit]:
        path = [h for h in heads if h.start <= a and h.level > 1]
        section = path[-1].title if path else ""
        snippet = doc.text[max(0, a - 18) : b + 18].replace("\n", " ")
        out.append((Location(doc.source, a, b, a, b), section, snippet))
    return out
