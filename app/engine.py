"""The public answer types and `Engine`, which only orchestrates the stages:

    question → clean → follow-up (answer.py) → encode (embedder.py) → candidates (retrieval.py)
             → sentence, span, refusal (reader.py) → `Answer`

`ask()` in `app/__init__.py` keeps one default Engine per process, created on first call.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from dataclasses import dataclass, field, fields, replace
from typing import Sequence

import numpy as np

from .answer import resolve_followup
from .config import Settings
from .corpus import load_corpus
from .embedder import Embedder, SentenceTransformerEmbedder
from .errors import IndexError_, QuestionError, StaleIndexError
from .index import IndexData, build_index, expected_manifest, load_index
from .lexicon import Lexicon
from .reader import Reader, ReaderConfig
from .retrieval import RetrievalConfig, Retriever
from .textnorm import add_words, expand_query, normalize

__all__ = ["Answer", "Engine", "MAX_QUESTION_CHARS", "Passage", "RetrievalConfig"]

log = logging.getLogger(__name__)
MAX_QUESTION_CHARS = 2000


@dataclass(frozen=True)
class Passage:
    text: str  # the chunk's text, verbatim from the source (page-break line breaks removed)
    section: str  # breadcrumb, e.g. "二、2025 年主要工作 › （五）… › 挖掘冰雪经济潜力"
    score: float
    source: str  # file name inside the corpus folder
    start: int  # character offsets into the source file
    end: int
    mark_start: int  # the best-matching sentence inside this passage (file offsets)
    mark_end: int


@dataclass(frozen=True)
class Answer:
    question: str
    found: bool  # False when the report does not answer the question
    text: str  # the verbatim sentence(s) that answer; "" when not found
    section: str
    source: str
    start: int  # offsets of `text` in the source file (-1 when not found)
    end: int
    highlight: str  # the answering span inside `text`
    highlight_start: int  # offsets of `highlight` in the source file (-1 when not found)
    highlight_end: int
    score: float  # confidence: cosine of question and answer sentence
    resolved_question: str  # the question after follow-up resolution
    passages: tuple[Passage, ...]  # the quote's own passage first, then by score; when not found, the nearest
    timings: dict = field(default_factory=dict, compare=False, repr=False)
    signals: dict = field(default_factory=dict, compare=False, repr=False)  # the reader's features, for fitting
    intent: str = "question"  # "question", or "smalltalk" (a greeting or thanks: found=False, no quote)
    message: str = ""  # what to say instead of a quote: the small-talk reply, or why nothing was found


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")  # lone surrogates (JSON allows "\ud800") cannot be encoded


def clean_question(question: object) -> str:
    if not isinstance(question, str):
        raise QuestionError(f"question must be a string, got {type(question).__name__}")
    q = _SURROGATE.sub("\ufffd", _CONTROL.sub(" ", question)).strip()
    if not q:
        raise QuestionError("question is empty: type a question about the report, e.g. 2024年地区生产总值是多少？")
    if len(q) > MAX_QUESTION_CHARS:
        raise QuestionError(f"question is {len(q):,} characters; the limit is {MAX_QUESTION_CHARS:,}: ask something shorter")
    return q


class Engine:
    """One loaded index, one embedder, and the stages that answer a question over them:

        clean → resolve follow-up → encode → `Retriever.search` → `Reader.read` → `Answer`

    Build with `Engine.open(settings)` or directly from parts. Safe to share between threads
    (Gradio sessions): answering only reads.
    """

    def __init__(self, data: IndexData, embedder: Embedder, config: RetrievalConfig | None = None,
                 reader_config: ReaderConfig | None = None) -> None:
        self.data = data
        self.embedder = embedder
        self.config = config or RetrievalConfig()
        self.reader_config = reader_config or ReaderConfig()
        add_words(p[-1] for p in {c.path for c in data.chunks})
        self.retriever = Retriever(data)
        self.lexicon = Lexicon(data)
        self.reader = Reader(data, self.retriever, self.lexicon)

    @classmethod
    def open(cls, settings: Settings | None = None, *, embedder: Embedder | None = None,
             config: RetrievalConfig | None = None, build: bool = True, progress=None) -> "Engine":
        """Load the index for ``settings``; (re)build it when missing or stale if ``build``."""
        settings = settings or Settings.from_env()
        embedder = embedder or SentenceTransformerEmbedder(settings.model)
        docs, _errors = load_corpus(settings.corpus_dir)
        expect = expected_manifest(docs, embedder.model_id, None, settings.chunk)
        try:
            data = load_index(settings.index_dir, expect)
            if data.manifest["model"]["dim"] != embedder.dim:
                raise StaleIndexError(
                    f"{settings.index_dir} has dimension {data.manifest['model']['dim']}, model "
                    f"{embedder.model_id!r} has {embedder.dim}: run `python -m app index`"
                )
        except IndexError_ as exc:
            if not build:
                raise
            (progress or log.warning)(f"{exc} — rebuilding the index now")
            build_index(settings.corpus_dir, settings.index_dir, embedder, settings.chunk, progress=progress)
            data = load_index(settings.index_dir, expect)
        return cls(data, embedder, config)

    def ask(self, question: object, k: int = 5, history: Sequence[str] = (), *,
            config: RetrievalConfig | None = None) -> Answer:
        """Answer ``question`` from the report; see `Answer`. Raises QuestionError on unusable input."""
        cfg = config or self.config
        t_all = time.perf_counter()
        q = clean_question(question)
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 50:
            raise QuestionError(f"k must be an integer from 1 to 50, got {k!r}")
        hist = tuple(clean_question(h) for h in history if isinstance(h, str) and h.strip())
        resolved = resolve_followup(q, hist)
        qnorm = expand_query(normalize(resolved))
        timings: dict[str, float] = {}
        if not re.search(r"\w", unicodedata.normalize("NFKC", resolved)):
            # emoji or punctuation only: nothing to look for
            return self._not_found(q, resolved, (), 0.0, timings)

        t = time.perf_counter()
        qvec = self.embedder.embed_queries([resolved])[0] if cfg.mode != "bm25" else None
        timings["encode"] = time.perf_counter() - t
        if qvec is None:
            qvec = np.zeros(self.data.sentence_vectors.shape[1], dtype=np.float32)
        cands = self.retriever.search(resolved, qnorm, qvec, cfg, timings)
        t = time.perf_counter()
        reading = self.reader.read(resolved, qnorm, qvec, cands, k, cfg, self.reader_config)
        timings["answer"] = time.perf_counter() - t
        passages = self._passages(reading.order, cands.fused, reading.marks)
        if not reading.found:
            return replace(self._not_found(q, resolved, passages, reading.score, timings), signals=reading.signals)
        best = reading.sentence
        chunk = self.data.chunks[best.chunk]
        a, b = reading.span
        timings["total"] = time.perf_counter() - t_all
        return Answer(
            question=q, found=True, text=best.text, section=chunk.breadcrumb, source=chunk.source,
            start=best.start, end=best.end, highlight=best.text[a:b],
            highlight_start=best.offsets[a], highlight_end=best.offsets[b - 1] + 1,
            score=round(reading.score, 4), resolved_question=resolved, passages=passages, timings=timings,
            signals=reading.signals,
        )

    def _passages(self, ids, fused, marks) -> tuple[Passage, ...]:
        out = []
        for c in ids:
            ch = self.data.chunks[c]
            m = marks.get(c)
            out.append(Passage(ch.text, ch.breadcrumb, round(float(fused.get(c, 0.0)), 6), ch.source, ch.start, ch.end,
                               m.start if m else -1, m.end if m else -1))
        return tuple(out)

    def _not_found(self, q, resolved, passages, score, timings) -> Answer:
        return Answer(q, False, "", "", "", -1, -1, "", -1, -1, round(float(score), 4), resolved,
                      tuple(passages), timings)

    def with_config(self, **changes) -> "Engine":
        """A view of this engine with other retrieval or reader settings (shares index and model)."""
        other = object.__new__(Engine)
        other.__dict__.update(self.__dict__)
        rfields = {f.name for f in fields(ReaderConfig)}
        other.config = replace(self.config, **{k: v for k, v in changes.items() if k not in rfields})
        other.reader_config = replace(self.reader_config, **{k: v for k, v in changes.items() if k in rfields})
        return other
