"""Retrieval: a question → candidate chunks with their scores (dense chunks, dense sentences, BM25, fused).

`Retriever` holds the lexical side of one loaded index (BM25 over chunks and sentences) and the
chunk ↔ sentence membership; it never decides what the answer is (that is `reader.py`).
Pure given its inputs: the question vector comes from the caller, so tests need no model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .answer import section_time, time_frame
from .index import IndexData
from .textnorm import tokenize

__all__ = ["Candidates", "RetrievalConfig", "Retriever"]


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
    time_frame: str | None  # "past" / "future" / None, from the question


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

    def sentence_bm25(self, tokens) -> np.ndarray:
        """BM25 of every sentence for ``tokens`` (zeros when there are none)."""
        if not tokens:
            return np.zeros(len(self.data.sentences), dtype=np.float32)
        return self.bm25_sentences.get_scores(list(tokens)).astype(np.float32)

    def search(self, query: str, qnorm: str, qvec: np.ndarray, cfg: RetrievalConfig, timings: dict,
               extra_tokens: tuple[str, ...] = ()) -> Candidates:
        """Rank chunks for one question; ``extra_tokens`` (bridged words) join the BM25 query."""
        n = len(self.data.chunks)
        cand = min(cfg.candidates, n)
        dense = np.zeros(n, dtype=np.float32)
        t = time.perf_counter()
        sims = None
        if cfg.mode in ("hybrid", "dense"):
            D, I = self.data.faiss_index.search(qvec[None, :], cand)
            dense_ids = [int(i) for i in I[0] if i >= 0]
            dense[dense_ids] = D[0][: len(dense_ids)]
            # Sentence-level dense ranking too: a short, exact sentence often matches a question
            # (especially across languages) better than the chunk around it.
            sims = self.data.sentence_vectors @ qvec
            best_per_chunk: dict[int, float] = {}
            for sid in np.argsort(-sims)[: cand * 3]:
                c = self.data.sentences[int(sid)].chunk
                best_per_chunk.setdefault(c, float(sims[sid]))
            sent_rank = sorted(best_per_chunk, key=lambda c: -best_per_chunk[c])[:cand]
        else:
            dense_ids, sent_rank = [], []
        timings["dense_search"] = time.perf_counter() - t
        t = time.perf_counter()
        tokens = tokenize(qnorm, normalized=True)
        bm25 = np.zeros(n, dtype=np.float32)
        if cfg.mode in ("hybrid", "bm25") and (tokens or extra_tokens):
            bm25 = self.bm25_chunks.get_scores(tokens + list(extra_tokens)).astype(np.float32)
        bm25_ids = [int(i) for i in np.argsort(-bm25)[:cand] if bm25[i] > 0]
        timings["bm25"] = time.perf_counter() - t
        t = time.perf_counter()
        fused: dict[int, float] = {}
        if cfg.fusion == "rrf" or cfg.mode != "hybrid":
            for ranking, weight in ((dense_ids, 1.0), (sent_rank, 1.0), (bm25_ids, cfg.bm25_weight)):
                for r, cid in enumerate(ranking):
                    fused[cid] = fused.get(cid, 0.0) + weight / (cfg.rrf_k + r + 1)
        else:
            dn, bn = _minmax(dense), _minmax(bm25)
            for cid in set(dense_ids) | set(bm25_ids) | set(sent_rank):
                fused[cid] = cfg.dense_weight * float(dn[cid]) + (1 - cfg.dense_weight) * float(bn[cid])
        tf = time_frame(query)
        if tf:
            for cid in fused:
                st = section_time(self.data.chunks[cid].path)
                if st and st != tf:
                    fused[cid] *= cfg.time_penalty
        order = sorted(fused, key=lambda c: (-fused[c], c))
        timings["fusion"] = time.perf_counter() - t
        return Candidates(tuple(order), fused, sims, {c: float(dense[c]) for c in dense_ids}, tuple(tokens), tf)


def _bm25(token_lists):
    import bm25s

    model = bm25s.BM25()
    model.index([list(t) or ["∅"] for t in token_lists], show_progress=False)
    return model
