"""Comparison questions across reports: "2024年和2025年的地区生产总值目标分别是多少？". Pure.

`plan(question, documents)` finds the reports a question names — two or more years, or two or more
regions, that documents of the index have — and returns one `Part` per report named: the filter that
keeps that report and the question as asked of it alone ("2024年的地区生产总值目标是多少？"). The engine
answers each part on its own and returns one Answer with a part per report. A question that names
one report, or several that all resolve to the same documents, is not a comparison (its Answer is
the ordinary one).

A named year Y means the report of year Y; when there is none, the report of Y + 1 (which reviews Y).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

__all__ = ["Part", "narrow", "plan"]

_YEAR = re.compile(r"((?:19|20)\d\d)(\s*年(?:度)?)?")
_JOIN = r"\s*(?:和|与|及|以及|跟|同|、|,|，|对比|相比|vs\.?|and)\s*"
_EACH = re.compile(r"分别|各自|各(?=[是为有])")


@dataclass(frozen=True)
class Part:
    label: str  # what the question named: "2024年", "满洲里市"
    filters: dict  # the filter that keeps this report
    question: str  # the question as asked of this report alone
    sources: tuple[str, ...]  # the documents it resolves to


@dataclass(frozen=True)
class _Mention:
    start: int
    end: int
    key: str  # the value named (a year as text, or a region)
    text: str


def _drop_others(question: str, keep: _Mention, others: Sequence[_Mention], suffix: str = "") -> str:
    """The question with the other mentions (and the word joining each to its neighbour) removed."""
    cuts = []
    for m in others:
        before = re.search(_JOIN + r"$", question[: m.start])
        after = re.match(_JOIN, question[m.end:])
        if before and (not after or m.start > keep.start):
            cuts.append((before.start(), m.end))
        elif after:
            cuts.append((m.start, m.end + after.end()))
        else:
            cuts.append((m.start, m.end))
    out, pos = [], 0
    for a, b in sorted(cuts):
        if a < pos:
            a = pos
        out.append(question[pos:a])
        pos = max(pos, b)
    out.append(question[pos:])
    text = "".join(out)
    if suffix:  # "2024和2025年" → the kept "2024" takes the dropped "年"
        k = text.find(keep.text)
        if k >= 0 and not text[k + len(keep.text):].lstrip().startswith("年"):
            text = text[: k + len(keep.text)] + suffix + text[k + len(keep.text):]
    return _EACH.sub("", text)


def _years(question: str, documents) -> list[tuple[_Mention, tuple]]:
    have: dict[int, list] = {}
    for d in documents:
        if d.meta.year is not None:
            have.setdefault(d.meta.year, []).append(d)
    out = []
    for m in _YEAR.finditer(question):
        y = int(m.group(1))
        docs = have.get(y) or have.get(y + 1)
        if docs:
            out.append((_Mention(m.start(), m.end(), str(y), m.group(0)), tuple(docs)))
    return out


def _regions(question: str, documents) -> list[tuple[_Mention, tuple]]:
    from .filters import _region_key
    from .textnorm import normalize

    by_region: dict[str, list] = {}
    for d in documents:
        if d.meta.region:
            by_region.setdefault(d.meta.region, []).append(d)
    q = normalize(question)
    if len(q) != len(question):  # normalisation moved characters: positions would not map back
        q = question
    found = []
    for region, docs in by_region.items():
        for name in dict.fromkeys((normalize(region), _region_key(region))):
            if len(name) < 2:
                continue
            i = q.find(name)
            if i >= 0:
                found.append((_Mention(i, i + len(name), region, question[i:i + len(name)]), tuple(docs)))
                break
    found.sort(key=lambda x: x[0].start)
    # a region whose name sits inside another's mention ("海拉尔" in "海拉尔区") is the same mention
    out = []
    for m, docs in found:
        if out and m.start < out[-1][0].end:
            continue
        out.append((m, docs))
    return out


def narrow(question: str, documents: Sequence) -> tuple:
    """The documents of the one region a question names, when the index has several regions
    ("通源县去年地区生产总值是多少？" → 通源县's reports); all of them otherwise."""
    if len({d.meta.region for d in documents if d.meta.region}) < 2:
        return tuple(documents)
    named = {m.key: docs for m, docs in _regions(question, documents)}
    return tuple(next(iter(named.values()))) if len(named) == 1 else tuple(documents)


def plan(question: str, documents: Sequence) -> list[Part]:
    """One `Part` per report the question names, or [] when it is not a comparison across reports.

    Years are compared within the one region a question names, if it names one; regions within
    the one year it names (that year's report, or the next year's, which reviews it)."""
    regions = _regions(question, documents)
    years = _years(question, documents)
    for facet, mentions in (("region", regions), ("year", years)):
        distinct: dict[str, tuple] = {}
        for m, docs in mentions:
            distinct.setdefault(m.key, docs)
        if len(distinct) < 2:
            continue
        # the other facet, named once, narrows every part ("通源县2024年和2025年…", "海拉尔区和通源县2025年…")
        other = {m.key for m, _ in (years if facet == "region" else regions)}
        if len(other) == 1:
            (value,) = other
            if facet == "region":
                y = int(value)
                keep = {d.source for d in documents if d.meta.year in (y, y + 1)}
            else:
                keep = {d.source for d in documents if d.meta.region == value}
            distinct = {k: tuple(d for d in docs if d.source in keep) for k, docs in distinct.items()}
            distinct = {k: docs for k, docs in distinct.items() if docs}
            if facet == "year":  # a named year's report may be the region's next one
                for m, _ in mentions:
                    y = int(m.key)
                    if m.key not in distinct or not distinct[m.key]:
                        mine = [d for d in documents if d.source in keep]
                        docs = tuple(d for d in mine if d.meta.year == y) or tuple(d for d in mine if d.meta.year == y + 1)
                        if docs:
                            distinct[m.key] = docs
            if len(distinct) < 2:
                continue
        doc_sets = {tuple(sorted(d.source for d in docs)) for docs in distinct.values()}
        if len(doc_sets) < 2:
            continue  # the names resolve to the same report(s): one report answers
        firsts = {}
        for m, _docs in mentions:
            firsts.setdefault(m.key, m)
        parts = []
        for key, docs in distinct.items():
            keep_m = firsts[key]
            others = [m for m, _ in mentions if m.key != key]
            suffix = ""
            if facet == "year" and "年" not in keep_m.text:
                suffix = next((re.sub(r"^\d+", "", o.text) for o in others if "年" in o.text), "").strip()
            sub = _drop_others(question, keep_m, others, suffix)
            sources = tuple(sorted(d.source for d in docs))
            parts.append(Part(keep_m.text.strip() + suffix, {"source": list(sources)}, sub, sources))
        return parts
    return []
