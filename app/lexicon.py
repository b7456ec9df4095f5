"""Corpus statistics the reader and the dialogue need: which chunks and sentences hold a word, IDF,
co-occurrence, glossary terms — read off the BM25 postings the index already stores.

A word the BM25 vocabulary holds (a jieba word or a figure) is looked up directly; any other Han
word counts as present where all its character bigrams are (every chunk's and sentence's tokens
include its bigrams). So nothing here scans the corpus: opening a large index costs nothing extra,
and a question costs a few array lookups. Normalised texts of single chunks and sentences are made
on demand and cached. Safe to share between threads: the caches only ever gain entries.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

import numpy as np

from .index import IndexData
from .textnorm import normalize

__all__ = ["Lexicon", "Postings"]

_HAN = re.compile(r"[\u4e00-\u9fff]{2,}")
_EMPTY = np.zeros(0, dtype=np.int64)


class Postings:
    """Which documents of a bm25s model hold a word (its CSC score matrix, read as an inverted index)."""

    def __init__(self, bm25) -> None:
        self.vocab: dict = bm25.vocab_dict
        self.indptr = bm25.scores["indptr"]
        self.indices = bm25.scores["indices"]
        self.docs = lru_cache(maxsize=65536)(self._docs)

    def _token(self, token: str) -> np.ndarray:
        i = self.vocab.get(token)
        return _EMPTY if i is None else np.asarray(self.indices[self.indptr[i]:self.indptr[i + 1]])

    def _docs(self, term: str) -> np.ndarray:
        if term in self.vocab:
            return self._token(term)
        if not _HAN.fullmatch(term):
            return _EMPTY
        out = None
        for i in range(len(term) - 1):
            ids = self._token("#" + term[i:i + 2])
            out = ids if out is None else np.intersect1d(out, ids, assume_unique=True)
            if not len(out):
                return _EMPTY
        return out if out is not None else _EMPTY


class Lexicon:
    def __init__(self, data: IndexData, bm25_chunks, bm25_sentences) -> None:
        self.data = data
        self.n_chunks = len(data.chunks)
        self.chunks = Postings(bm25_chunks)
        self.sentences = Postings(bm25_sentences)
        self.chunk_norm = _Normalised(lambda i: data.chunks[i].breadcrumb + "\n" + data.chunks[i].text)
        self.sentence_norm = _Normalised(lambda i: data.sentences[i].text)
        # The report's glossary is a dictionary: a question naming a term gets its entry.
        self.glossary: dict[str, list[int]] = {}
        for c in data.chunks:
            if c.path and c.path[0] == "名词解释" and len(c.path) > 1:
                name = re.sub(r"^\d+\.\s*", "", c.path[-1])
                for term in {name.strip("“”"), *re.findall(r"“([^”]+)”", name)}:
                    t = normalize(term)
                    if len(t) >= 2:
                        self.glossary.setdefault(t, []).append(c.id)

    def present(self, term: str, within=None) -> bool:
        """Does the corpus use this (normalised) word at all? ``within``: only these chunks count
        (a `vectors.Subset`: the documents a filter keeps — a word only other reports use is absent)."""
        docs = self.chunks.docs(term)
        if within is None or not len(docs):
            return len(docs) > 0
        return any(np.searchsorted(docs, a) < np.searchsorted(docs, b) for a, b in within.ranges)

    def idf(self, term: str) -> float:
        """Inverse document frequency of a (normalised) word over chunks."""
        return math.log((self.n_chunks + 1) / (len(self.chunks.docs(term)) + 0.5))

    @property
    def idf_cap(self) -> float:
        return math.log(self.n_chunks + 1) + 1.0

    def related(self, a, b) -> bool:
        return self.cooccur(a, b)

    def cooccur(self, a, b) -> bool:
        """Does some sentence hold a word of ``a`` and a word of ``b``? (normalised words)"""
        sa = [self.sentences.docs(t) for t in a]
        sb = [self.sentences.docs(t) for t in b]
        sa, sb = [x for x in sa if len(x)], [x for x in sb if len(x)]
        if not sa or not sb:
            return False
        return bool(len(np.intersect1d(np.unique(np.concatenate(sa)), np.unique(np.concatenate(sb)))))

    def glossary_hits(self, qnorm: str) -> list[int]:
        """Glossary chunks whose term the question names, longest term first."""
        out: list[int] = []
        for term in sorted(self.glossary, key=len, reverse=True):
            if term in qnorm:
                out.extend(c for c in self.glossary[term] if c not in out)
        return out


class _Normalised:
    """``texts[i]``: the normalised text of item i, made on first use and kept (bounded)."""

    def __init__(self, raw) -> None:
        self._get = lru_cache(maxsize=65536)(lambda i: normalize(raw(i)))

    def __getitem__(self, i: int) -> str:
        return self._get(int(i))
