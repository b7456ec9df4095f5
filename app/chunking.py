"""Sections → chunks (for retrieval) and sentences (for the quoted answer).

Chunks are cut inside one section with langchain-text-splitters on Chinese boundaries:
paragraph, then 。！？；, then ，、 — so a chunk never ends inside a sentence unless the
sentence alone is longer than the chunk size, and never inside a figure (the splitter
has no character-level fallback). Every chunk and sentence keeps its offsets into the
source file.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from typing import Sequence

from .corpus import Section, Span

__all__ = ["Chunk", "ChunkSettings", "Sentence", "split_sentences", "chunk_sections"]

SEPARATORS = ["\n", "。", "！", "？", "；", "，", "、"]


@dataclass(frozen=True)
class ChunkSettings:
    size: int = 300
    overlap: int = 0

    def __post_init__(self) -> None:
        if self.size < 20 or not 0 <= self.overlap < self.size:
            raise ValueError(f"chunk size {self.size} / overlap {self.overlap}: need size >= 20 and 0 <= overlap < size")


@dataclass(frozen=True)
class Sentence:
    id: int
    chunk: int  # id of the first chunk that holds it
    section: int
    text: str
    start: int
    end: int
    offsets: Sequence[int]  # per character, its offset in the source file


@dataclass(frozen=True)
class Chunk:
    id: int
    section: int
    source: str
    path: tuple[str, ...]
    text: str
    start: int
    end: int
    offsets: Sequence[int]  # per character, its offset in the source file

    @property
    def breadcrumb(self) -> str:
        return " › ".join(self.path)


_SENT = re.compile(r"[^。！？；\n]*(?:[。！？；][”’）)]*|\n|$)")


def split_sentences(span: Span) -> list[Span]:
    """Sentences on 。！？； and line breaks, closing quotes kept with their sentence."""
    out = []
    for m in _SENT.finditer(span.text):
        if m.start() == m.end():
            continue
        piece = span[m.start() : m.end()].strip()
        if piece.text and re.search(r"\w", piece.text):
            out.append(piece)
    return out


def _splitter(settings: ChunkSettings):
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(
        chunk_size=settings.size,
        chunk_overlap=settings.overlap,
        separators=SEPARATORS,
        keep_separator="end",
        strip_whitespace=False,
        add_start_index=True,
    )


def chunk_sections(sections: list[Section], settings: ChunkSettings) -> tuple[list[Chunk], list[Sentence]]:
    splitter = _splitter(settings)
    chunks: list[Chunk] = []
    sentences: list[Sentence] = []
    for sid, sec in enumerate(sections):
        body = sec.body
        docs = splitter.create_documents([body.text])
        first_chunk = len(chunks)
        for d in docs:
            a = d.metadata["start_index"]
            span = body[a : a + len(d.page_content)].strip()
            if not span.text:
                continue
            chunks.append(Chunk(len(chunks), sid, sec.source, sec.path, span.text, span.start, span.end, span.offsets))
        starts = [c.start for c in chunks[first_chunk:]]
        for sent in split_sentences(body):
            # the last chunk starting at or before the sentence holds it (chunks are in file order)
            owner = first_chunk + max(0, bisect_right(starts, sent.start) - 1)
            sentences.append(Sentence(len(sentences), owner, sid, sent.text, sent.start, sent.end, sent.offsets))
    return chunks, sentences
