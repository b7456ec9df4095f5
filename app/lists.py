"""Lists a report announces in one sentence and spells out in the sections that follow. Pure.

"具体来说，要做到八个“坚持”……。" ends a section; the eight items are the next eight sections, headed
（一）…（八）. Quoting the announcing sentence alone tells the reader there are eight and not what
they are. `announced_items` finds the items from the report's own structure:

    the sentence is the last of its section and names a count N ("八个", "六个方面", "三项");
    the next section is item 1 of a numbered family (（一）, 一、, 一是, 1., or ——);
    the items are the following sections at that depth, numbered 1, 2, … in the same family,
    their own subsections skipped, until the family breaks or the parent section ends;
    exactly N of them, or nothing (a count that does not match is not this list).

Each item is quoted by its heading sentence. Nothing here knows this report's lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from .corpus import _DASH, _ORD, _SUB, _TOP

__all__ = ["SectionHead", "announced_count", "announced_items", "item_name", "section_heads"]

_DIGITS = {c: i for i, c in enumerate("零一二三四五六七八九", 0)} | {"两": 2}
_COUNT = re.compile(r"([一二三四五六七八九十两]{1,3}|\d{1,2})\s*(?:个|项|大|条|点|方面|种|类)")
# The heading markers the sectioning recognises (corpus.py), by family; the number is group 1,
# absent for dashes. Glossary entries ("1. 飞地经济：") are numbered sections too.
_MARKERS = (("paren", _SUB), ("dun", _TOP), ("shi", _ORD), ("arabic", re.compile(r"^(\d{1,2})[.．、]")), ("dash", _DASH))
MAX_ITEMS = 20


def chinese_number(text: str) -> int | None:
    """一 … 九十九 (and 两) as an int; digits as digits; None otherwise."""
    if text.isdigit():
        return int(text)
    if not text or any(c not in _DIGITS and c != "十" for c in text):
        return None
    if "十" not in text:
        return _DIGITS[text] if len(text) == 1 else None
    tens, _, ones = text.partition("十")
    if len(tens) > 1 or len(ones) > 1:
        return None
    return (_DIGITS[tens] if tens else 1) * 10 + (_DIGITS[ones] if ones else 0)


def announced_count(text: str) -> int | None:
    """The count a sentence announces ("要做到八个“坚持”" → 8), the last one it names; None if none."""
    counts = [chinese_number(m.group(1)) for m in _COUNT.finditer(text)]
    counts = [n for n in counts if n is not None and 2 <= n <= MAX_ITEMS]
    return counts[-1] if counts else None


def _marker(heading: str) -> tuple[str, int | None] | None:
    for family, rx in _MARKERS:
        m = rx.match(heading)
        if m:
            return family, (chinese_number(m.group(1)) if m.groups() else None)
    return None


@dataclass(frozen=True)
class SectionHead:
    section: int
    source: str
    path: tuple[str, ...]
    first: int  # id of the section's first sentence
    last: int  # id of its last sentence


def section_heads(sentences: Sequence, chunks: Sequence) -> list[SectionHead]:
    """Every section in document order, with its first and last sentence."""
    heads: dict[int, list] = {}
    for s in sentences:
        h = heads.get(s.section)
        if h is None:
            c = chunks[s.chunk]
            heads[s.section] = [s.section, c.source, tuple(c.path), s.id, s.id]
        else:
            h[3], h[4] = min(h[3], s.id), max(h[4], s.id)
    return [SectionHead(*h) for h in sorted(heads.values(), key=lambda h: h[3])]


def announced_items(lead, heads: Sequence[SectionHead], position: dict) -> tuple[int, ...]:
    """The first sentence ids of the sections a lead sentence announces, or () (see the module
    docstring). ``position`` maps a section id to its index in ``heads``."""
    i = position.get(lead.section)
    n = announced_count(lead.text)
    if i is None or n is None or heads[i].last != lead.id:
        return ()
    items: list[int] = []
    family, depth = None, None
    for h in heads[i + 1:]:
        if h.source != heads[i].source or not h.path:
            break
        if depth is not None and len(h.path) > depth:
            continue  # an item's own subsections
        mark = _marker(h.path[-1])
        if mark is None or (depth is not None and (len(h.path) < depth or mark[0] != family)):
            break
        fam, num = mark
        if num is not None and num != len(items) + 1:
            break
        family, depth = fam, len(h.path)
        items.append(h.first)
        if len(items) == n:
            return tuple(items)
    return ()


def item_name(text: str) -> tuple[int, int]:
    """The span of an item's name in its heading sentence: after the marker, up to the first
    comma or full stop ("（一）坚持大抓项目，在…" → "坚持大抓项目")."""
    start = 0
    for _, rx in _MARKERS:
        m = rx.match(text)
        if m:
            start = m.end()
            break
    end = len(text)
    for stop in "，,。：:；;":
        j = text.find(stop, start)
        if j != -1:
            end = min(end, j)
    return (start, end) if end > start else (0, len(text))
