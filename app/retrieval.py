"""Retrieval: a question → candidate chunks with their scores (dense chunks, dense sentences, BM25, fused).

`Retriever` holds the lexical side of one loaded index (BM25 over chunks and sentences) and the
chunk ↔ sentence membership; it never decides what the answer is (that is `reader.py`).
Pure given its inputs: the question vector comes from the caller, so tests need no model.

A `Scope` (the documents a metadata filter keeps) restricts every retriever *before* ranking:
dense search runs over the scope's rows or through a FAISS selector (vectors.py), sentence search
over the scope's rows, BM25 over the scope's part of each query token's postings — so a filtered
question never scores a chunk outside its documents, and never touches most of a large index.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .answer import section_time, time_frame
from .index import IndexData
from .textnorm import tokenize
from .topk import top_n
from .vectors import Subset, search as vector_search

__all__ = ["Candidates", "RetrievalConfig", "Retriever", "Scope", "bm25_scores_in"]


@dataclass(frozen=True)
class Scope:
    """The documents a search may look at, as id ranges of their chunks and sentences."""

    sources: tuple[str, ...]
    chunks: Subset
    sentences: Subset

    @classmethod
    def of(cls, entries) -> "Scope":
        entries = tuple(entries)
        return cls(tuple(e.source for e in entries), Subset.of(e.chunks for e in entries),
                   Subset.of(e.sentences for e in entries))


def bm25_scores_in(model, tokens, subset: Subset) -> np.ndarray:
    """bm25s scores of the documents in ``subset`` only (aligned with ``subset.ids()``), read off
    each query token's postings between the subset's bounds: the same numbers as
    ``model.get_scores(tokens)[subset.ids()]`` without computing the rest."""
    out = np.zeros(len(subset), dtype=np.float32)
    ids = model.get_tokens_ids(list(tokens)) if tokens else []
    if not ids:
        return out
    data, indices, indptr = model.scores["data"], model.scores["indices"], model.scores["indptr"]
    base = 0
    bounds = []
    for a, b in subset.ranges:
        bounds.append((a, b, base))
        base += b - a
    for t in ids:
        lo, hi = int(indptr[t]), int(indptr[t + 1])
        post = indices[lo:hi]  # document ids holding the token, ascending
        for a, b, at in bounds:
            i, j = np.searchsorted(post, a), np.searchsorted(post, b)
            if j > i:
                np.add.at(out, post[i:j] - a + at, data[lo + i : lo + j])
    extra = getattr(model, "nonoccurrence_array", None)
    if extra is not None:
        out += extra[np.asarray(ids)].sum()
    return out


@dataclass(frozen=True)
class RetrievalConfig:
    mode: str = "hybrid"  # "hybrid" | "dense" | "bm25"
    fusion: str = "rrf"  # "rrf" | "weighted"
    rrf_k: int = 60
    bm25_weight: float = 1.0  # weight of the BM25 list in RRF (the two dense lists weigh 1)
    dense_weight: float = 0.5  # for "weighted" fusion
    candidates: int = 50  # per retriever, before fusion
    answer_chunks: int = 4  # sentences are drawn from this many top chunks
    time_penalty: float = 0.5  # multiplier on scores of chunks in the other tense than asked
    bridge: bool = True  # add the report's words nearest to the question's unknown words (bridge.py)

    def __post_init__(self) -> None:
        if self.mode not in ("hybrid", "dense", "bm25"):
            raise ValueError(f"mode {self.mode!r}: use 'hybrid', 'dense' or 'bm25'")
        if self.fusion not in ("rrf", "weighted"):
            raise ValueError(f"fusion {self.fusion!r}: use 'rrf' or 'weighted'")


@dataclass(frozen=True)
class Candidates:
    """What retrieval found for one question: chunk ids best first, with every score the reader may use."""

    order: tuple[int, ...]  # chunk ids, best first (fused score, ties by id)
    fused: dict  # chunk id -> fused score (only chunks some retriever returned)
    sentence_sims: np.ndarray | None  # cosine of the question with every sentence (None in bm25 mode)
    dense: dict  # chunk id -> cosine with the question, for the chunks dense search returned
    tokens: tuple[str, ...]  # the question's BM25 tokens
    time_frame: str | None  # "past" / "future" / None, from the question (for a report of unknown year)
    scope: Scope | None = None  # the filter's documents; `sentence_sims` is then aligned with scope.sentences.ids()


def _minmax(x: np.ndarray) -> np.ndarray:
    if x.size == 0:
        return x
    lo, hi = float(x.min()), float(x.max())
    return np.zeros_like(x) if hi - lo < 1e-12 else (x - lo) / (hi - lo)


class Retriever:
    """Dense chunk search (FAISS) + dense sentence search + BM25 over chunks, fused (RRF by default)."""

    def __init__(self, data: IndexData, *, bm25_chunks=None, bm25_sentences=None) -> None:
        self.data = data
        self.bm25_chunks = bm25_chunks if bm25_chunks is not None else _bm25(data.chunk_tokens)
        self.bm25_sentences = bm25_sentences if bm25_sentences is not None else _bm25(data.sentence_tokens)
        # A sentence belongs to every chunk of its section that overlaps it (chunks may overlap);
        # computed once here, the query path only looks it up.
        self.holders: list[tuple[int, ...]] = [
            (s.chunk, *(c.id for c in data.chunks[s.chunk + 1 : s.chunk + 4]
                        if c.section == s.section and c.start < s.end and s.start < c.end))
            for s in data.sentences
        ]
        self.sentences_of: dict[int, list[int]] = {}
        for s in data.sentences:
            for c in self.holders[s.id]:
                self.sentences_of.setdefault(c, []).append(s.id)

    def sentence_bm25(self, tokens, scope: Scope | None = None) -> np.ndarray:
        """BM25 of every sentence (of the scope, aligned with its ids) for ``tokens``."""
        if scope is not None:
            return bm25_scores_in(self.bm25_sentences, tokens, scope.sentences)
        if not tokens:
            return np.zeros(len(self.data.sentences), dtype=np.float32)
        return self.bm25_sentences.get_scores(list(tokens)).astype(np.float32)

    def sentence_sims(self, qvec: np.ndarray, scope: Scope | None = None) -> np.ndarray:
        """Cosine of the question with every sentence (of the scope, aligned with its ids)."""
        V = self.data.sentence_vectors
        if scope is None:
            return V @ qvec
        parts = [V[a:b] @ qvec for a, b in scope.sentences.ranges]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    def year_of(self, source: str) -> int | None:
        entry = self.data.document(source)
        return entry.meta.year if entry is not None else None

    def search(self, query: str, qnorm: str, qvec: np.ndarray, cfg: RetrievalConfig, timings: dict,
               extra_tokens: tuple[str, ...] = (), scope: Scope | None = None) -> Candidates:
        """Rank chunks for one question; ``extra_tokens`` (bridged words) join the BM25 query;
        ``scope`` keeps only the filter's documents (applied before ranking)."""
        n = len(self.data.chunks) if scope is None else len(scope.chunks)
        cand = min(cfg.candidates, n)
        t = time.perf_counter()
        sims = None
        dense: dict[int, float] = {}
        if cfg.mode in ("hybrid", "dense") and cand:
            D, I = vector_search(self.data.faiss_index, qvec, cand, None if scope is None else scope.chunks)
            dense_ids = [int(i) for i in I if i >= 0]
            dense = {c: float(d) for c, d in zip(dense_ids, D)}
            # Sentence-level dense ranking too: a short, exact sentence often matches a question
            # (especially across languages) better than the chunk around it.
            sims = self.sentence_sims(qvec, scope)
            ids = None if scope is None else scope.sentences.ids()
            best_per_chunk: dict[int, float] = {}
            for j in top_n(sims, cand * 3):
                sid = int(j) if ids is None else int(ids[j])
                best_per_chunk.setdefault(self.data.sentences[sid].chunk, float(sims[j]))
            sent_rank = sorted(best_per_chunk, key=lambda c: -best_per_chunk[c])[:cand]
        else:
            dense_ids, sent_rank = [], []
        timings["dense_search"] = time.perf_counter() - t
        t = time.perf_counter()
        tokens = tokenize(qnorm, normalized=True)
        query_tokens = tokens + list(extra_tokens)
        bm25_ids: list[int] = []
        bm25_of: dict[int, float] = {}
        if cfg.mode in ("hybrid", "bm25") and query_tokens and cand:
            if scope is None:
                bm25 = self.bm25_chunks.get_scores(query_tokens).astype(np.float32)
                cids = None
            else:
                bm25 = bm25_scores_in(self.bm25_chunks, query_tokens, scope.chunks)
                cids = scope.chunks.ids()
            top = [int(i) for i in top_n(bm25, cand) if bm25[i] > 0]
            bm25_ids = top if cids is None else [int(cids[i]) for i in top]
            bm25_of = {c: float(bm25[i]) for c, i in zip(bm25_ids, top)}
            if cfg.fusion == "weighted" and cfg.mode == "hybrid":
                lo, hi = (float(bm25.min()), float(bm25.max())) if len(bm25) else (0.0, 0.0)
        timings["bm25"] = time.perf_counter() - t
        t = time.perf_counter()
        fused: dict[int, float] = {}
        if cfg.fusion == "rrf" or cfg.mode != "hybrid":
            for ranking, weight in ((dense_ids, 1.0), (sent_rank, 1.0), (bm25_ids, cfg.bm25_weight)):
                for r, cid in enumerate(ranking):
                    fused[cid] = fused.get(cid, 0.0) + weight / (cfg.rrf_k + r + 1)
        else:
            # min-max over the whole (scoped) score vector: chunks no retriever returned score 0 /
            # the minimum, as a full dense vector would give them
            dvals = list(dense.values()) + ([0.0] if len(dense) < n else [])
            dlo, dhi = min(dvals), max(dvals)
            if not bm25_of:
                lo = hi = 0.0
            for cid in set(dense_ids) | set(bm25_ids) | set(sent_rank):
                dn = (dense.get(cid, 0.0) - dlo) / (dhi - dlo) if dhi - dlo >= 1e-12 else 0.0
                bn = (bm25_of.get(cid, 0.0) - lo) / (hi - lo) if hi - lo >= 1e-12 else 0.0
                fused[cid] = cfg.dense_weight * dn + (1 - cfg.dense_weight) * bn
        frames: dict[str, str | None] = {}
        for cid in fused:
            src = self.data.chunks[cid].source
            if src not in frames:
                frames[src] = time_frame(query, self.year_of(src))
            tf = frames[src]
            if tf:
                st = section_time(self.data.chunks[cid].path, self.year_of(src))
                if st and st != tf:
                    fused[cid] *= cfg.time_penalty
        order = sorted(fused, key=lambda c: (-fused[c], c))
        timings["fusion"] = time.perf_counter() - t
        return Candidates(tuple(order), fused, sims, dense, tuple(tokens), time_frame(query), scope)


def _bm25(token_lists):
    import bm25s

    model = bm25s.BM25()
    model.index([list(t) or ["∅"] for t in token_lists], show_progress=False)
    return model
