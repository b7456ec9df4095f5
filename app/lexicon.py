"""Corpus statistics the reader needs: normalised chunk texts, IDF by substring, glossary terms.

Built once per loaded index; pure lookups afterwards (safe to share between threads: the IDF
cache only ever gains entries, and a race computes the same value twice).
"""

from __future__ import annotations

import math
import re

from .index import IndexData
from .textnorm import normalize

__all__ = ["CorpusText", "Lexicon"]

_HAN_RUN = re.compile(r"[\u4e00-\u9fff]{2,}")
# Above this many characters `term in corpus` answers from BM25's postings instead of scanning the text
# (at ×1000 reports the text is ~30 M characters: ~5 ms a scan, dozens of scans a question).
INDEXED_ABOVE = 2_000_000


class CorpusText:
    """The corpus's normalised chunks joined by newlines, for ``term in corpus``.

    On a large corpus a term of Han characters is looked up through the BM25 index, which holds
    every Han bigram of every chunk (textnorm.tokenize) with the chunks it occurs in: a term is in
    the corpus iff some chunk holding its rarest bigram holds the term. Same answer as scanning the
    text, without scanning it; other terms (figures, Latin) are scanned, and every answer is cached."""

    def __init__(self, chunk_norm, bm25=None) -> None:
        self.chunk_norm = chunk_norm
        self.text = "\n".join(chunk_norm)
        self._bm25 = bm25 if bm25 is not None and len(self.text) > INDEXED_ABOVE else None
        self._cache: dict[str, bool] = {}

    def __str__(self) -> str:
        return self.text

    def __len__(self) -> int:
        return len(self.text)

    def candidates(self, term: str):
        """Ids of the chunks that may hold ``term`` (those holding its rarest bigram), or None when
        the index cannot say (a small corpus, or not a run of Han characters)."""
        if self._bm25 is None or not _HAN_RUN.fullmatch(term):
            return None
        vocab, sc = self._bm25.vocab_dict, self._bm25.scores
        best = None
        for i in range(len(term) - 1):
            tid = vocab.get("#" + term[i:i + 2])
            if tid is None:
                return ()
            n = int(sc["indptr"][tid + 1]) - int(sc["indptr"][tid])
            if best is None or n < best[0]:
                best = (n, tid)
        lo, hi = int(sc["indptr"][best[1]]), int(sc["indptr"][best[1] + 1])
        return sc["indices"][lo:hi]

    def __contains__(self, term: str) -> bool:
        hit = self._cache.get(term)
        if hit is None:
            cands = self.candidates(term)
            if cands is None:
                hit = term in self.text
            else:
                hit = len(term) == 2 and len(cands) > 0 or any(term in self.chunk_norm[int(c)] for c in cands)
            if len(self._cache) < 200_000:
                self._cache[term] = hit
        return hit


class Lexicon:
    def __init__(self, data: IndexData, bm25=None) -> None:
        self.chunk_norm = [normalize(c.breadcrumb + "\n" + c.text) for c in data.chunks]
        self.corpus_norm = CorpusText(self.chunk_norm, bm25 if bm25 is not None else data.bm25_chunks)
        self.sentence_norm = [normalize(s.text) for s in data.sentences]
        self._idf: dict[str, float] = {}
        # The report's glossary is a dictionary: a question naming a term gets its entry.
        self.glossary: dict[str, list[int]] = {}
        for c in data.chunks:
            if c.path and c.path[0] == "名词解释" and len(c.path) > 1:
                name = re.sub(r"^\d+\.\s*", "", c.path[-1])
                for term in {name.strip("“”"), *re.findall(r"“([^”]+)”", name)}:
                    t = normalize(term)
                    if len(t) >= 2:
                        self.glossary.setdefault(t, []).append(c.id)

    def idf(self, term: str) -> float:
        """Inverse document frequency of a (normalised) term over chunks, by substring match."""
        v = self._idf.get(term)
        if v is None:
            cands = self.corpus_norm.candidates(term)
            if cands is None:
                df = sum(term in t for t in self.chunk_norm)
            else:  # only the chunks holding the term's rarest bigram can hold the term
                df = len(cands) if len(term) == 2 else sum(term in self.chunk_norm[int(c)] for c in cands)
            v = math.log((len(self.chunk_norm) + 1) / (df + 0.5))
            if len(self._idf) < 100_000:
                self._idf[term] = v
        return v

    def related(self, a, b) -> bool:
        return self.cooccur(a, b)

    def cooccur(self, a, b) -> bool:
        """Does some sentence hold a term of ``a`` and a term of ``b``? (normalised terms)"""
        a, b = [t for t in a if t in self.corpus_norm], [t for t in b if t in self.corpus_norm]
        return bool(a and b) and any(any(x in s for x in a) and any(y in s for y in b) for s in self.sentence_norm)

    def glossary_hits(self, qnorm: str) -> list[int]:
        """Glossary chunks whose term the question names, longest term first."""
        out: list[int] = []
        for term in sorted(self.glossary, key=len, reverse=True):
            if term in qnorm:
                out.extend(c for c in self.glossary[term] if c not in out)
        return out
