"""Corpus statistics the reader needs: normalised chunk texts, IDF by substring, glossary terms.

Built once per loaded index; pure lookups afterwards (safe to share between threads: the IDF
cache only ever gains entries, and a race computes the same value twice).
"""

from __future__ import annotations

import math
import re

from .index import IndexData
from .textnorm import normalize

__all__ = ["Lexicon"]


class Lexicon:
    def __init__(self, data: IndexData) -> None:
        self.chunk_norm = [normalize(c.breadcrumb + "\n" + c.text) for c in data.chunks]
        self.corpus_norm = "\n".join(self.chunk_norm)
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
            df = sum(term in t for t in self.chunk_norm)
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
