"""The chunk vector index, chosen by size, and search inside a subset of it (metadata filters).

Vectors are L2-normalised, so inner product = cosine similarity everywhere below.

| chunks          | index                    | bytes per vector (dim 384)  | search                          |
|-----------------|--------------------------|-----------------------------|---------------------------------|
| ≤ 50,000        | `IndexFlatIP`            | 1,536                       | exact                           |
| ≤ 1,000,000     | HNSW, 32 links           | 1,536 + ~270 (graph)        | efSearch 1024                   |
| ≤ 50,000,000    | IVF, 8-bit scalar quant. | 384 + 8 (id)                | nprobe: a tenth of the lists    |
| above           | IVF, product quant.      | 48 + 8                      | the same                        |

`python -m app bench --scale` measures each kind's memory per million vectors and recall@10 against
exact search. HNSW keeps the full vectors (1.7 GiB a million); 8-bit scalar quantisation keeps a
quarter of that at ~0.9 recall, which fits the issue's 10⁷ chunks in ~3.9 GiB; product quantisation
(48 bytes) fits 10⁸ in ~8 GiB but measured a recall@10 of only 0.1 on the bench's data, so it is the
last resort, not the default for 10⁷.

A search restricted to a subset (`Subset`: id ranges, one per document a filter keeps) never scans
the whole index: a small subset is searched exactly over its own rows (contiguous, since a
document's chunks are numbered together), a large one through FAISS with an `IDSelector`, which
HNSW and IVF apply while they walk their graph or lists.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

__all__ = ["EXACT_SUBSET", "Subset", "choose_kind", "make_index", "memory_bytes", "rows", "search"]

FLAT_MAX = 50_000
HNSW_MAX = 1_000_000
SQ_MAX = 50_000_000
HNSW_EF_SEARCH = 1024  # `app bench` at 98k chunks: efSearch 128 → recall@10 0.84, 512 → 0.96, 1024 → 0.98
IVF_NPROBE = (64, 1024)  # a tenth of the lists, within these bounds
# A subset up to this many rows is searched exactly over its own rows (zero-copy for flat storage).
EXACT_SUBSET = 50_000


@dataclass(frozen=True)
class Subset:
    """Ids in sorted, disjoint [start, end) ranges (a filter's documents)."""

    ranges: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, ranges) -> "Subset":
        merged: list[list[int]] = []
        for a, b in sorted((int(a), int(b)) for a, b in ranges if b > a):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        return cls(tuple((a, b) for a, b in merged))

    def __len__(self) -> int:
        return sum(b - a for a, b in self.ranges)

    def ids(self) -> np.ndarray:
        if not self.ranges:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in self.ranges])

    def __contains__(self, i: int) -> bool:
        k = bisect_right(self.ranges, (i, float("inf"))) - 1
        return k >= 0 and self.ranges[k][0] <= i < self.ranges[k][1]

    def positions(self, ids) -> np.ndarray:
        """Where global ``ids`` (all inside the subset) sit in `ids()`."""
        starts = np.array([a for a, _ in self.ranges], dtype=np.int64)
        before = np.concatenate([[0], np.cumsum([b - a for a, b in self.ranges])[:-1]]).astype(np.int64)
        ids = np.asarray(ids, dtype=np.int64)
        k = np.searchsorted(starts, ids, side="right") - 1
        return before[k] + ids - starts[k]


def choose_kind(n: int) -> str:
    if n <= FLAT_MAX:
        return "flat"
    if n <= HNSW_MAX:
        return "hnsw"
    if n <= SQ_MAX:
        return "ivf-sq8"
    return "ivf-pq"


def _nlist(n: int) -> int:
    # ~4·√n lists, each trained on ≥ 39 points (FAISS's own rule of thumb)
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def make_index(vectors: np.ndarray, kind: str | None = None, *, batch: int = 100_000):
    """A FAISS index over L2-normalised ``vectors`` (may be memory-mapped: added in batches)."""
    import faiss

    n, dim = vectors.shape
    kind = kind or choose_kind(n)
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = HNSW_EF_SEARCH
    elif kind in ("ivf-sq8", "ivf-pq"):
        code = "SQ8" if kind == "ivf-sq8" else f"PQ{_pq_m(dim)}"
        index = faiss.index_factory(dim, f"IVF{_nlist(n)},{code}", faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        sample = np.sort(rng.choice(n, size=min(n, max(100_000, 50 * _nlist(n))), replace=False))
        index.train(np.ascontiguousarray(vectors[sample], dtype=np.float32))
        ivf = faiss.extract_index_ivf(index)
        ivf.nprobe = max(IVF_NPROBE[0], min(IVF_NPROBE[1], ivf.nlist // 10))
    else:
        raise ValueError(f"vector index kind {kind!r}: use flat, hnsw, ivf-sq8 or ivf-pq")
    for a in range(0, n, batch):
        index.add(np.ascontiguousarray(vectors[a : a + batch], dtype=np.float32))
    return index


def _pq_m(dim: int) -> int:
    for m in (48, 32, 24, 16, 12, 8, 4, 2, 1):
        if dim % m == 0 and m <= dim:
            return m
    return 1


def kind_of(index) -> str:
    import faiss

    if isinstance(index, faiss.IndexHNSW):
        return "hnsw"
    if isinstance(index, faiss.IndexFlat):
        return "flat"
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        return "ivf-pq" if isinstance(ivf, faiss.IndexIVFPQ) else "ivf-sq8"
    return type(index).__name__


def prepare(index) -> None:
    """After loading: IVF indexes need their id → list map to read rows back (subset search)."""
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None and ivf.direct_map.type == faiss.DirectMap.NoMap:
        ivf.make_direct_map()


def _flat_view(index) -> np.ndarray | None:
    import faiss

    flat = index
    if isinstance(index, faiss.IndexHNSW):
        flat = faiss.downcast_index(index.storage)
    if isinstance(flat, faiss.IndexFlat):
        return faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d).reshape(flat.ntotal, flat.d)
    return None


def rows(index, subset: Subset) -> np.ndarray:
    """The subset's vectors (a view for flat storage; decoded, so approximate, for quantised)."""
    view = _flat_view(index)
    if view is not None:
        if len(subset.ranges) == 1:
            a, b = subset.ranges[0]
            return view[a:b]
        return np.concatenate([view[a:b] for a, b in subset.ranges])
    prepare(index)
    return np.concatenate([index.reconstruct_n(a, b - a) for a, b in subset.ranges]) if subset.ranges else \
        np.zeros((0, index.d), np.float32)


def _selector(subset: Subset):
    import faiss

    if len(subset.ranges) == 1:
        return faiss.IDSelectorRange(*subset.ranges[0]), None
    ids = subset.ids()
    return faiss.IDSelectorBatch(len(ids), faiss.swig_ptr(ids)), ids  # the selector copies; keep ids alive anyway


def search(index, q: np.ndarray, k: int, subset: Subset | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` (scores, ids) for one query vector, within ``subset`` if given (ids stay global)."""
    import faiss

    q = np.ascontiguousarray(q.reshape(1, -1), dtype=np.float32)
    if subset is None:
        D, I = index.search(q, k)
        return D[0], I[0]
    n = len(subset)
    if n == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    k = min(k, n)
    if n <= EXACT_SUBSET:
        sims = rows(index, subset) @ q[0]
        top = np.argsort(-sims, kind="stable")[:k]
        return sims[top].astype(np.float32), subset.ids()[top]
    sel, _keep = _selector(subset)
    if isinstance(index, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW(sel=sel, efSearch=index.hnsw.efSearch)
    elif faiss.try_extract_index_ivf(index) is not None:
        params = faiss.SearchParametersIVF(sel=sel, nprobe=faiss.extract_index_ivf(index).nprobe)
    else:
        params = faiss.SearchParameters(sel=sel)
    D, I = index.search(q, k, params=params)
    keep = I[0] >= 0
    return D[0][keep], I[0][keep]


def memory_bytes(index) -> int:
    """Serialised size of the index: what it occupies in memory once read (FAISS reads it whole)."""
    import faiss

    return int(faiss.serialize_index(index).nbytes)
