"""Top-n of a score array without sorting all of it (a large index has hundreds of thousands of sentences)."""

from __future__ import annotations

import numpy as np

__all__ = ["LARGE", "top_n"]

# Below this many scores a full sort is cheap and its order is the one every figure so far was measured
# with (ties included); above it only the top n are partitioned out and sorted.
LARGE = 50_000


def top_n(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` highest scores, best first — ``np.argsort(-scores)[:n]``."""
    m = len(scores)
    if m <= LARGE or n >= m:
        return np.argsort(-scores)[:n]
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, n - 1)[:n]
    return part[np.argsort(-scores[part], kind="stable")]
