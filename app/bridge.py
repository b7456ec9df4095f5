"""Bridge everyday words to the report's own words, without a hand-written table.

At index time the report's vocabulary (jieba words and section titles) is embedded once and stored
with the index (`vocab.json` + `vocab.npy`). At question time each topic word the report never uses
("暖气", "老房子", "preschool") is embedded too and mapped to its nearest report terms ("供热",
"老旧", "学前"). The reader uses those terms for BM25 and coverage; how far to trust them is fitted.
"""

from __future__ import annotations

import re
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

__all__ = ["Bridge", "Neighbour", "report_vocabulary", "top_vocabulary", "vocabulary_counts"]

_WORD = re.compile(r"[\u4e00-\u9fff]{2,8}")
MAX_VOCAB = 20_000  # most frequent terms; a big corpus should not spend its build embedding rare words


@dataclass(frozen=True)
class Neighbour:
    term: str  # a word the report uses
    similarity: float  # cosine of the question word and this term


def vocabulary_counts(texts: Iterable[str], titles: Iterable[str], jb=None) -> Counter:
    """How often each report word worth bridging to occurs: jieba words of 2–8 Han characters
    (minus stopwords) in ``texts``, and the words of the section ``titles`` (a heading word names
    a topic: it counts twice)."""
    from .textnorm import STOPWORDS, _jieba, normalize

    jb = jb or _jieba()
    counts: Counter = Counter()
    for t in texts:
        for w in jb.cut(normalize(t)):
            if _WORD.fullmatch(w) and w not in STOPWORDS:
                counts[w] += 1
    for t in titles:
        for w in jb.cut(normalize(t)):
            if _WORD.fullmatch(w) and w not in STOPWORDS:
                counts[w] += 2
    return counts


def top_vocabulary(counts: Counter, limit: int = MAX_VOCAB) -> list[str]:
    """The ``limit`` most frequent words, ties by the word (deterministic)."""
    return [w for w, _ in sorted(counts.items(), key=lambda x: (-x[1], x[0]))[:limit]]


def report_vocabulary(texts: Iterable[str], titles: Iterable[str], limit: int = MAX_VOCAB) -> list[str]:
    """Distinct report words worth bridging to, most frequent first, at most ``limit``."""
    return top_vocabulary(vocabulary_counts(texts, titles), limit)


class Bridge:
    """Nearest report terms for words the report does not use (cached per word)."""

    def __init__(self, terms: Sequence[str], vectors: np.ndarray, *, k: int = 3, window: float = 0.03,
                 cache_size: int = 4096) -> None:
        if len(terms) != len(vectors):
            raise ValueError(f"{len(terms)} vocabulary terms but {len(vectors)} vectors")
        self.terms = list(terms)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.k, self.window = k, window
        self._cache: OrderedDict[str, tuple[Neighbour, ...]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def neighbours(self, words: Sequence[str], embed: Callable[[list[str]], np.ndarray]) -> dict[str, tuple[Neighbour, ...]]:
        """For each word, up to k report terms within ``window`` cosine of its nearest one."""
        out: dict[str, tuple[Neighbour, ...]] = {}
        todo = []
        with self._lock:
            for w in dict.fromkeys(words):
                if w in self._cache:
                    self._cache.move_to_end(w)
                    out[w] = self._cache[w]
                else:
                    todo.append(w)
        if todo and len(self.terms):
            sims = embed(todo) @ self.vectors.T
            for w, row in zip(todo, sims):
                top = np.argsort(-row)[: self.k]
                best = float(row[top[0]])
                out[w] = tuple(Neighbour(self.terms[i], float(row[i])) for i in top if row[i] >= best - self.window)
            with self._lock:
                for w in todo:
                    self._cache[w] = out[w]
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return out
