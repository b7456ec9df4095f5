"""Metadata filters: ``{"region": "海拉尔区", "year": 2025}`` → the documents a search may look at. Pure.

A filter key is a `DocMeta` field or ``source`` (the file name); a value is one value or a list of
them (any of). Regions match after normalisation (Traditional/Simplified, width, spaces), with or
without their unit ("海拉尔" matches "海拉尔区"). The documents come from the index's
documents.json, so resolving a filter reads one entry per document, never the chunks.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Mapping, Sequence

from .docmeta import FIELDS
from .errors import FilterError

__all__ = ["KEYS", "filter_label", "parse_filter_args", "select"]

KEYS = (*FIELDS, "source")


@lru_cache(maxsize=65536)
def _norm(v) -> str:
    from .textnorm import normalize

    return normalize(str(v)).strip()


@lru_cache(maxsize=65536)
def _region_key(region: str) -> str:
    r = _norm(region)
    for suffix in ("自治区", "自治州", "自治县", "自治旗", "地区", "省", "市", "区", "县", "旗", "盟", "州", "镇", "乡"):
        if r.endswith(suffix) and len(r) > len(suffix) + 1:
            return r[: -len(suffix)]
    return r


def _values(key: str, value) -> list:
    vals = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
    if not vals:
        raise FilterError(f"filter {key}= has no values: give one value or a list of them")
    if key == "year":
        out = []
        for v in vals:
            try:
                out.append(int(str(v).strip().removesuffix("年")))
            except ValueError:
                raise FilterError(f"filter year={v!r} is not a year: write it like 2025") from None
        return out
    return [str(v) for v in vals]


def _matches(entry, key: str, wanted: list) -> bool:
    if key == "source":
        return entry.source in wanted
    have = getattr(entry.meta, key)
    if key == "year":
        return have in wanted
    if key == "region":
        return bool(have) and any(_norm(w) == _norm(have) or _region_key(w) == _region_key(have) for w in wanted)
    return bool(have) and any(_norm(w) == _norm(have) for w in wanted)


def select(documents: Sequence, filters: Mapping | None) -> tuple:
    """The documents (index entries) every filter key matches; FilterError when a key is unknown
    or nothing matches (the message lists what the index holds)."""
    if not filters:
        return tuple(documents)
    if not isinstance(filters, Mapping):
        raise FilterError(f"filters must be a mapping such as {{'year': 2025}}, got {type(filters).__name__}")
    unknown = sorted(str(k) for k in filters if k not in KEYS)
    if unknown:
        raise FilterError(f"unknown filter key(s) {unknown}; use {', '.join(KEYS)}")
    wanted = {k: _values(k, v) for k, v in filters.items() if v is not None and v != ""}
    out = tuple(d for d in documents if all(_matches(d, k, w) for k, w in wanted.items()))
    if not out:
        have = {k: sorted({str(getattr(d.meta, k) if k != "source" else d.source) for d in documents} - {"", "None"})
                for k in wanted}
        shown = "; ".join(f"{k}: {', '.join(v[:12])}{' …' if len(v) > 12 else ''}" for k, v in have.items())
        raise FilterError(f"no report matches {filter_label(filters)}; the index holds {shown or 'no such metadata'}")
    return out


def filter_label(filters: Mapping | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (filters or {}).items())


def parse_filter_args(items: Sequence[str] | None) -> dict:
    """CLI ``--filter year=2025 --filter region=海拉尔区,满洲里市`` → ``{"year": [2025], ...}``."""
    out: dict = {}
    for item in items or ():
        if "=" not in item:
            raise FilterError(f"--filter {item!r}: write key=value, e.g. --filter year=2025")
        k, v = (x.strip() for x in item.split("=", 1))
        if k not in KEYS:
            raise FilterError(f"--filter {item!r}: unknown key {k!r}; use {', '.join(KEYS)}")
        vals = [x for x in re.split(r"[,，]", v) if x.strip()]
        if not vals:
            raise FilterError(f"--filter {item!r}: no value after '='")
        out.setdefault(k, []).extend(vals)
    return out

