"""Corpus files → cleaned paragraphs → sections along the report's own hierarchy.

Everything here is pure: a file's text goes in, frozen dataclasses come out. Cleaning
never rewrites characters, it only *drops* some (Markdown `#` markers, page-break line
breaks inside a sentence, the PDF footer), so every kept character maps back to its
offset in the original file. That is what lets a quote carry exact `start`/`end`.
"""

from __future__ import annotations

import re
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .docmeta import DocMeta, document_meta, front_matter, parse_title_block, read_sidecar, sidecar_path
from .errors import CorpusError

__all__ = ["Doc", "DocMeta", "Section", "Span", "clean", "corpus_digests", "corpus_files", "doc_digest", "load_corpus", "load_doc",
           "read_text", "sections"]

CORPUS_SUFFIXES = (".md", ".txt")
# Lines that are PDF page furniture, not report text: a gazette's running footer ("海拉尔区政府公报")
# and page numbers ("— 12 —").
FOOTERS = ("海拉尔区政府公报",)
_FOOTER = re.compile(r"[\u4e00-\u9fff]{1,16}政府公报|[-—–]\s*\d{1,4}\s*[-—–]")
# A paragraph ending in one of these is complete; otherwise a page break cut it.
_END = "。！？：；!?:;”’）)"
_HAN = r"\u4e00-\u9fff"


def _offsets(values=()) -> array:
    # 8 bytes a character instead of a tuple of Python ints (~36): a 20 MB file stays affordable
    return values if isinstance(values, array) else array("q", values)


@dataclass(frozen=True)
class Span:
    """Cleaned text plus, per character, its offset in the source file."""

    text: str
    offsets: Sequence[int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "offsets", _offsets(self.offsets))
        if len(self.text) != len(self.offsets):
            raise ValueError("Span text and offsets differ in length")

    @classmethod
    def join(cls, spans: Sequence["Span"]) -> "Span":
        """Concatenate in one pass (repeated `+` would be quadratic on a long section)."""
        offs = array("q")
        for sp in spans:
            offs.extend(sp.offsets)
        return cls("".join(sp.text for sp in spans), offs)

    @property
    def start(self) -> int:
        return self.offsets[0] if self.offsets else 0

    @property
    def end(self) -> int:
        return self.offsets[-1] + 1 if self.offsets else 0

    def __getitem__(self, s: slice) -> "Span":
        return Span(self.text[s], self.offsets[s])

    def __add__(self, other: "Span") -> "Span":
        return Span.join((self, other))

    def strip(self) -> "Span":
        a, b = 0, len(self.text)
        while a < b and self.text[a].isspace():
            a += 1
        while b > a and self.text[b - 1].isspace():
            b -= 1
        return self[a:b]


@dataclass(frozen=True)
class Doc:
    source: str  # file name relative to the corpus folder
    text: str  # the file's text, exactly as on disk
    sha256: str  # of the file, and of its metadata sidecar when it has one (editing either rebuilds)
    meta: DocMeta = DocMeta()  # which report it is (docmeta.py)


@dataclass(frozen=True)
class Section:
    """A leaf unit of the report: its breadcrumb path and its cleaned text."""

    source: str
    path: tuple[str, ...]
    body: Span

    @property
    def breadcrumb(self) -> str:
        return " › ".join(self.path)


# ---------------------------------------------------------------- reading files


def read_text(path: Path) -> str:
    """Read one corpus file as UTF-8 text, or raise CorpusError naming the file and the fix."""
    data = Path(path).read_bytes()
    if not data.strip():
        raise CorpusError(f"{path}: file is empty; add text or remove it from the corpus folder")
    if b"\x00" in data[:8192]:
        raise CorpusError(f"{path}: looks binary (NUL bytes); only UTF-8 .md/.txt files are indexed")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{path}: not UTF-8 (byte {exc.start}: {data[exc.start:exc.start + 2]!r}); "
            f"convert it, e.g. `iconv -f GBK -t UTF-8 {Path(path).name} > fixed.txt`"
        ) from None
    return text


def corpus_files(folder: Path) -> list[Path]:
    """The corpus's *.md/*.txt files, sorted (the order of documents in the index)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CorpusError(f"corpus folder {folder} does not exist: create it or pass --corpus")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in CORPUS_SUFFIXES)


def doc_digest(path: Path) -> str:
    """sha256 of a corpus file and of its metadata sidecar, if any (what the manifest records)."""
    import hashlib

    digest = hashlib.sha256(Path(path).read_bytes())
    side = sidecar_path(path)
    if side is not None:
        digest.update(b"\0meta\0" + side.read_bytes())
    return digest.hexdigest()


def load_doc(path: Path, folder: Path) -> tuple[Doc, list[CorpusError]]:
    """One corpus file with its metadata. Raises CorpusError for an unusable file; a bad sidecar or
    front matter is reported in the returned list and the title block's metadata is used instead."""
    path = Path(path)
    text = read_text(path)
    problems: list[CorpusError] = []
    side = sidecar_path(path)
    fields: dict = {}
    if side is not None:
        try:
            fields = read_sidecar(side)
        except CorpusError as exc:
            problems.append(exc)
    try:
        meta = document_meta(text, fields, where=str(path))
    except CorpusError as exc:  # malformed front matter: keep what the title block and sidecar say
        problems.append(exc)
        from dataclasses import replace

        meta = replace(parse_title_block(text), **fields)
    return Doc(path.relative_to(Path(folder)).as_posix(), text, doc_digest(path), meta), problems


def corpus_digests(folder: Path) -> dict[str, str]:
    """{source: digest} of the files `load_corpus` would index, without keeping their texts (what a
    serving replica checks its index against: a large corpus is read once, not held)."""
    folder = Path(folder)
    out = {}
    for path in corpus_files(folder):
        try:
            read_text(path)
        except CorpusError:
            continue
        out[path.relative_to(folder).as_posix()] = doc_digest(path)
    if not out:
        raise CorpusError(f"corpus folder {folder} has nothing to index (no readable .md or .txt files)")
    return out


def load_corpus(folder: Path) -> tuple[list[Doc], list[CorpusError]]:
    """Every *.md/*.txt under ``folder`` (sorted); bad files are reported, the rest still load."""
    folder = Path(folder)
    docs, errors = [], []
    for path in corpus_files(folder):
        try:
            doc, problems = load_doc(path, folder)
        except CorpusError as exc:
            errors.append(exc)
            continue
        docs.append(doc)
        errors.extend(problems)
    if not docs:
        detail = "; ".join(str(e) for e in errors) or "no .md or .txt files"
        raise CorpusError(f"corpus folder {folder} has nothing to index ({detail})")
    return docs, errors


# ---------------------------------------------------------------- cleaning

_HEADING = re.compile(r"^#{1,6}[ \t]+")


def clean(text: str) -> list[Span]:
    """Split into paragraphs, repairing PDF artifacts; each paragraph keeps source offsets.

    - Markdown heading markers are dropped (levels are re-derived from the numbering).
    - Footer lines ("海拉尔区政府公报") are dropped.
    - A paragraph that stops mid-sentence (no closing punctuation) is joined with the next
      one: "…重点项目 30 个，" + "完成投资 37.56 亿元…", "君尚玖号周" + "边道路".
    """
    paragraphs: list[Span] = []
    _, pos = front_matter(text)  # metadata, not report text (docmeta.py reads it)
    for block in re.split(r"(\n[ \t]*\n+)", text[pos:]):
        start = pos
        pos += len(block)
        if not block.strip() or block.startswith("\n") and not block.strip():
            continue
        lines: list[Span] = []
        heading = False
        lpos = start
        for line in block.split("\n"):
            span = Span(line, array("q", range(lpos, lpos + len(line))))
            lpos += len(line) + 1
            m = _HEADING.match(span.text)
            if m:
                span = span[m.end():]
                heading = True
            span = span.strip()
            if span.text and span.text not in FOOTERS and not _FOOTER.fullmatch(span.text):
                lines.append(span)
        if not lines:
            continue
        paragraphs.append((Span.join(lines), heading))

    groups: list[tuple[list[Span], bool]] = []  # paragraphs a page break split, joined once at the end
    for para, heading in paragraphs:
        if groups and not heading and not groups[-1][1] and _continues(groups[-1][0][-1].text, para.text):
            groups[-1][0].append(para)
        else:
            groups.append(([para], heading))
    return [Span.join(parts) for parts, _ in groups]


_MARKER = re.compile(
    r"^(?:[一二三四五六七八九十]+、|（[一二三四五六七八九十]+）|[一二三四五六七八九十]+是|——|\d+[.．、]\s*|名词解释$|各位代表)"
)


def _continues(prev: str, nxt: str) -> bool:
    # Only prose is cut by a page break; header lines (date, speaker) carry no punctuation.
    prose = any(ch in prev for ch in "，。；：、")
    return prose and prev[-1] not in _END and not _MARKER.match(nxt)


def _is_title(text: str) -> bool:
    return bool(re.fullmatch(r"[^。，；！？]{2,40}", text)) and ("报告" in text or text == "名词解释")


# ---------------------------------------------------------------- sectioning

# Heading markers (the number is group 1; lists.py reads the numbering of sections with them)
_TOP = re.compile(r"^([一二三四五六七八九十]+)、")
_SUB = re.compile(r"^（([一二三四五六七八九十]+)）")
_ORD = re.compile(r"^([一二三四五六七八九十]+)是")
_DASH = re.compile(r"^——")
_GLOSS = re.compile(r"^(\d+)[.．、]\s*([^：:]{1,40})[：:]")
# A lead sentence: a short all-Han statement such as "认真谋划储备项目。" or "经济运行稳中有进。"
_LEAD = re.compile(rf"[{_HAN}“”]{{4,12}}。")
_INTRO = re.compile(rf"^([{_HAN}]{{4,20}}?)是：")


def _first_sentence(span: Span) -> Span:
    m = re.search(r"[。！？]", span.text)
    return span[: m.start()] if m else span


def _split_leads(body: Span, skip: int = 0) -> list[tuple[str | None, Span]]:
    """Split a paragraph at inline lead sentences; returns (lead or None, text) pieces."""
    text = body.text
    cuts = []
    for m in _LEAD.finditer(text, skip):
        s = m.start()
        # must start a sentence: paragraph start, or right after 。/：
        if s == 0 or text[s - 1] in "。：":
            cuts.append((s, m.end()))
    pieces: list[tuple[str | None, Span]] = []
    if not cuts:
        return [(None, body)]
    if cuts[0][0] > 0:
        pieces.append((None, body[: cuts[0][0]]))
    for i, (s, e) in enumerate(cuts):
        nxt = cuts[i + 1][0] if i + 1 < len(cuts) else len(text)
        pieces.append((text[s:e - 1], body[s:nxt]))
    return pieces


def sections(doc: Doc) -> list[Section]:
    """Leaf sections of one document, each with its breadcrumb path, in reading order."""
    paras = clean(doc.text)
    title = paras[0].text if paras and _is_title(paras[0].text) else Path(doc.source).stem
    top: str | None = None  # 一、… / 名词解释
    sub: str | None = None  # （一）… / 一是… / ——…
    lead: str | None = None  # 认真谋划储备项目
    in_glossary = False

    pieces: list[tuple[tuple[str, ...], list[Span]]] = []  # consecutive paragraphs of one section

    def emit(path_tail: tuple[str | None, ...], span: Span) -> None:
        span = span.strip()
        if not span.text:
            return
        path = tuple(p for p in ((top or title), *path_tail) if p)
        if pieces and pieces[-1][0] == path:
            gap = span.start - 1  # keep the paragraph break (a real newline in the file)
            if doc.text[gap] == "\n":
                pieces[-1][1].append(Span("\n", (gap,)))
            pieces[-1][1].append(span)
        else:
            pieces.append((path, [span]))

    for i, para in enumerate(paras):
        text = para.text
        if i == 0 and text == title:
            emit((), para)
            continue
        if text == "名词解释":
            top, sub, lead, in_glossary = text, None, None, True
            continue
        if _TOP.match(text) and len(text) <= 40 and "。" not in text:
            top, sub, lead, in_glossary = text, None, None, False
            continue
        if in_glossary:
            m = _GLOSS.match(text)
            if m:
                sub = f"{m.group(1)}. {m.group(2).strip()}"
            emit((sub,), para)
            continue
        if text.startswith("各位代表"):
            # "各位代表！…" closes the numbered items: back to the top level.
            sub, lead = None, None
            emit((), para)
            continue
        heading_len = 0
        if top is not None and (_SUB.match(text) or _ORD.match(text) or _DASH.match(text)):
            sub = _first_sentence(para).text.rstrip("：:")
            heading_len = len(sub)
            lead = None
        elif top is None:
            emit((), para)
            continue
        m = _INTRO.match(text)
        if m and sub is None:
            emit((m.group(1),), para)
            continue
        # A paragraph without a lead of its own (e.g. one a page break separated from its
        # lead) stays under the current lead.
        for lead_text, piece in _split_leads(para, skip=heading_len):
            if lead_text is not None:
                lead = lead_text
            emit((sub, lead), piece)
    return [Section(doc.source, path, Span.join(parts)) for path, parts in pieces]
