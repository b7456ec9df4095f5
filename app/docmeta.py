"""Document metadata: which report a file is (region, level, year, title, date). Pure.

Read from the document itself, in this order, each later source overriding the earlier:

1. its title block — the first lines before the first numbered part: "海拉尔区 2025 年政府工作报告"
   gives region, level and year; "——2025 年1 月 20 日在…会议上" gives the date;
2. front matter at the very top of the file (``---`` lines around ``key: value`` lines), which
   the corpus reader drops from the text;
3. a sidecar ``<file name>.meta.json`` (or ``<stem>.meta.json``) beside the file: a JSON object
   with any of the keys in `FIELDS`.

A report of year Y reviews Y−1 and plans Y: `year` is the report's own year (its title's, else its
date's), which is what time words in a question resolve against (answer.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from .errors import CorpusError

__all__ = ["FIELDS", "DocMeta", "front_matter", "level_of", "parse_title_block", "read_sidecar", "sidecar_path"]

FIELDS = ("title", "region", "level", "year", "date")

# The administrative unit a region name ends in → the level recorded (override with a sidecar when
# the name does not say, e.g. a county-level 市).
_LEVELS = (
    ("自治区", "province"), ("省", "province"), ("自治州", "prefecture"), ("地区", "prefecture"), ("盟", "prefecture"),
    ("自治县", "county"), ("自治旗", "banner"), ("县", "county"), ("旗", "banner"), ("区", "district"),
    ("市", "city"), ("镇", "town"), ("乡", "town"), ("苏木", "town"),
)
_TITLE = re.compile(r"^(?P<region>[\u4e00-\u9fff]{2,20}?)\s*(?P<year>(?:19|20)\d\d)\s*年(?:度)?\s*(?:人民)?政府工作报告$")
_TITLE_ANY = re.compile(r"政府工作报告")
_DATE = re.compile(r"(?P<y>(?:19|20)\d\d)\s*年\s*(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*日")
_PART = re.compile(r"^[一二三四五六七八九十]+、")
_FRONT = re.compile(r"\A\ufeff?---[ \t]*\n(?P<body>(?:.*\n){0,40}?)---[ \t]*(?:\n|\Z)")


@dataclass(frozen=True)
class DocMeta:
    """What report a document is. Empty strings / None where nothing says."""

    title: str = ""
    region: str = ""
    level: str = ""  # province / prefecture / city / district / county / banner / town
    year: int | None = None  # the report's year: it reviews year − 1 and plans year
    date: str = ""  # ISO date it was delivered, "2025-01-20"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DocMeta":
        return cls(**{k: d[k] for k in FIELDS if k in d and d[k] is not None})

    def label(self, fallback: str = "") -> str:
        """How a citation names the document: its title, else region + year, else ``fallback``."""
        if self.title:
            return self.title
        if self.region or self.year:
            return " ".join(str(p) for p in (self.region, f"{self.year} 年" if self.year else "") if p) + "政府工作报告"
        return fallback


def level_of(region: str) -> str:
    for suffix, level in _LEVELS:
        if region.endswith(suffix):
            return level
    return ""


def front_matter(text: str) -> tuple[dict, int]:
    """``key: value`` lines between ``---`` lines at the top of a file → (fields, characters it spans)."""
    m = _FRONT.match(text)
    if not m:
        return {}, 0
    out = {}
    for line in m.group("body").splitlines():
        if ":" in line and not line.lstrip().startswith("#"):
            k, v = line.split(":", 1)
            out[k.strip().lower()] = v.strip().strip("\"'")
    return out, m.end()


def _clean_line(line: str) -> str:
    return re.sub(r"^#{1,6}\s+", "", line).strip()


def parse_title_block(text: str) -> DocMeta:
    """Region, level, year, title and date from the lines before the first numbered part."""
    _, skip = front_matter(text)
    title = region = date = ""
    year: int | None = None
    for n, raw in enumerate(text[skip:].splitlines()):
        line = _clean_line(raw)
        if not line:
            continue
        if _PART.match(line) or n > 60:
            break
        compact = re.sub(r"\s+", " ", line)
        m = _TITLE.match(compact)
        if m and not title:
            title, region, year = compact, m.group("region").strip(), int(m.group("year"))
            continue
        if not title and _TITLE_ANY.search(line) and len(line) <= 40 and not re.search(r"[，。；]", line):
            title = compact
            continue
        d = _DATE.search(line)
        if d and not date:
            date = f"{int(d.group('y')):04d}-{int(d.group('m')):02d}-{int(d.group('d')):02d}"
    if year is None and date:
        year = int(date[:4])  # a report is delivered early in the year it plans
    return DocMeta(title, region, level_of(region), year, date)


def sidecar_path(path: Path) -> Path | None:
    """``report.txt.meta.json``, else ``report.meta.json``, if either exists."""
    path = Path(path)
    for cand in (path.with_name(path.name + ".meta.json"), path.with_name(path.stem + ".meta.json")):
        if cand.is_file():
            return cand
    return None


def _validated(values: dict, where: str) -> dict:
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise CorpusError(f"{where}: unknown metadata key(s) {unknown}; allowed: {', '.join(FIELDS)}")
    out = {}
    for k, v in values.items():
        if k == "year":
            try:
                v = int(v)
            except (TypeError, ValueError):
                raise CorpusError(f"{where}: year must be a number like 2025, got {v!r}") from None
            if not 1900 <= v <= 2200:
                raise CorpusError(f"{where}: year {v} is out of range; write the report's year, e.g. 2025")
        elif k == "date":
            if not isinstance(v, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
                raise CorpusError(f"{where}: date must be written YYYY-MM-DD, got {v!r}")
        elif not isinstance(v, str):
            raise CorpusError(f"{where}: {k} must be a string, got {type(v).__name__}")
        out[k] = v
    return out


def read_sidecar(path: Path) -> dict:
    """The fields of a sidecar file, validated; CorpusError names the file and the fix."""
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CorpusError(f"{path}: not a readable JSON object ({exc}); fix it or delete it") from None
    if not isinstance(values, dict):
        raise CorpusError(f"{path}: must hold a JSON object such as {{\"year\": 2025}}, got {type(values).__name__}")
    return _validated(values, str(path))


def document_meta(text: str, sidecar: dict | None = None, *, where: str = "") -> DocMeta:
    """The title block, then front matter, then the sidecar's fields (already validated)."""
    meta = parse_title_block(text)
    fm, _ = front_matter(text)
    fm = {k: v for k, v in fm.items() if k in FIELDS}
    for layer in (_validated(fm, f"{where} (front matter)") if fm else {}, sidecar or {}):
        if layer:
            meta = replace(meta, **layer)
            if "region" in layer and "level" not in layer:
                meta = replace(meta, level=level_of(meta.region) or meta.level)
    return meta


assert {f.name for f in fields(DocMeta)} == set(FIELDS)
