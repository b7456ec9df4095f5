"""The vector index by size, and search inside a subset checked against brute force."""

import numpy as np
import pytest

from app import vectors
from app.retrieval import bm25_scores_in
from app.vectors import Subset, choose_kind, make_index, search


def _unit(n, dim=32, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _exact(xb, q, ids, k):
    sims = xb[ids] @ q
    return ids[np.argsort(-sims, kind="stable")[:k]]


def test_the_index_kind_grows_with_the_number_of_vectors():
    assert [choose_kind(n) for n in (1_000, 60_000, 2_000_000, 60_000_000)] == ["flat", "hnsw", "ivf-sq8", "ivf-pq"]


def test_subset_ids_positions_and_membership():
    s = Subset.of([(10, 13), (0, 2), (12, 15)])
    assert s.ranges == ((0, 2), (10, 15)) and len(s) == 7
    assert list(s.ids()) == [0, 1, 10, 11, 12, 13, 14]
    assert list(s.positions([1, 10, 14])) == [1, 2, 6]
    assert 11 in s and 5 not in s and 15 not in s


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf-sq8"])
@pytest.mark.parametrize("via", ["rows", "selector"])
def test_subset_search_finds_what_brute_force_finds_inside_the_subset(kind, via, monkeypatch):
    xb = _unit(3000)
    index = make_index(xb, kind)
    if via == "selector":
        monkeypatch.setattr(vectors, "EXACT_SUBSET", 10)  # force FAISS's IDSelector path
    subset = Subset.of([(100, 700), (2000, 2600)])
    ids = subset.ids()
    for q in _unit(20, seed=1):
        _, got = search(index, q, 10, subset)
        assert set(got) <= set(ids)  # never outside the filter
        want = _exact(xb, q, ids, 10)
        overlap = len(set(got) & set(want)) / 10
        assert overlap >= (1.0 if kind == "flat" else 0.8)


def test_a_search_without_subset_is_the_plain_index_search():
    xb = _unit(500)
    index = make_index(xb, "flat")
    q = _unit(1, seed=3)[0]
    _, got = search(index, q, 5)
    assert list(got) == list(_exact(xb, q, np.arange(500), 5))


def test_bm25_inside_a_subset_equals_the_full_scores_restricted():
    from app.retrieval import _bm25

    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(40)]
    docs = [list(rng.choice(vocab, size=rng.integers(1, 12))) for _ in range(300)]
    model = _bm25(docs)
    subset = Subset.of([(5, 40), (120, 121), (250, 300)])
    for _ in range(10):
        query = list(rng.choice(vocab, size=3)) + ["unknown-token"]
        full = model.get_scores(query).astype(np.float32)
        np.testing.assert_allclose(bm25_scores_in(model, query, subset), full[subset.ids()], rtol=1e-6, atol=1e-7)


def test_top_n_is_the_full_sort_on_a_large_array():
    from app.topk import top_n

    x = np.random.default_rng(0).standard_normal(120_000).astype(np.float32)
    assert list(top_n(x, 50)) == list(np.argsort(-x)[:50])
