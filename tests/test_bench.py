"""The benchmark's pure helpers, on small fake data (no model, no timings: those are never pass/fail)."""

from __future__ import annotations

import numpy as np
import pytest

from app.bench import (BenchError, Figure, parse_scales, peak_rss_kib, percentile, recall_at_k, synthetic_documents,
                       synthetic_vectors)


def _unit_rows(rng, n, dim):
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute_force_top(xb, xq, k):
    scores = xq @ xb.T
    ids = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return ids, np.take_along_axis(scores, ids, axis=1)


# ------------------------------------------------------------------ percentile


@pytest.mark.parametrize("q", [0, 5, 25, 50, 90, 95, 99, 100])
def test_percentile_matches_numpy_linear_method(q):
    values = np.random.default_rng(q).exponential(20.0, size=101).tolist()
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_interpolates_between_ranks():
    assert percentile([10, 20, 30, 40], 50) == 25
    assert percentile([1.0, 2.0], 95) == pytest.approx(1.95)


def test_percentile_of_one_value_is_that_value():
    assert percentile([7.5], 95) == 7.5


def test_percentile_does_not_depend_on_input_order():
    assert percentile([3, 1, 2, 5, 4], 50) == 3


def test_percentile_rejects_no_values_and_bad_q():
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="0 to 100"):
        percentile([1, 2], 101)


# ------------------------------------------------------------------ recall@k


def test_recall_is_one_for_the_exact_search_itself():
    rng = np.random.default_rng(0)
    xb, xq = _unit_rows(rng, 300, 16), _unit_rows(rng, 25, 16)
    ids, _ = _brute_force_top(xb, xq, 10)
    assert recall_at_k(ids, ids, 10) == 1.0


def test_recall_of_faiss_flat_search_against_brute_force_is_one():
    import faiss

    rng = np.random.default_rng(1)
    xb, xq = _unit_rows(rng, 400, 32), _unit_rows(rng, 30, 32)
    index = faiss.IndexFlatIP(32)
    index.add(xb)
    D, I = index.search(xq, 10)
    ref_ids, ref_scores = _brute_force_top(xb, xq, 10)
    assert recall_at_k(I, ref_ids, 10, found_scores=D, reference_scores=ref_scores) == pytest.approx(1.0)


def test_recall_counts_the_share_of_the_reference_found():
    rng = np.random.default_rng(2)
    xb, xq = _unit_rows(rng, 300, 16), _unit_rows(rng, 20, 16)
    ref, _ = _brute_force_top(xb, xq, 10)
    found = ref.copy()
    found[:, 7:] = _brute_force_top(xb, xq, 20)[0][:, 10:13]  # the 3 last replaced by ranks 11–13: wrong
    found[:10, 9] = -1  # and a missing result counts as a miss, not an error
    brute = np.mean([len(set(f[:10]) & set(r[:10])) / 10 for f, r in zip(found, ref)])
    assert recall_at_k(found, ref, 10) == pytest.approx(brute) == pytest.approx(0.7)


def test_recall_ignores_order_within_the_top_k():
    ref = np.array([[0, 1, 2, 3]])
    assert recall_at_k(ref[:, ::-1], ref, 4) == 1.0


def test_recall_at_k_uses_only_the_first_k_columns():
    ref = np.array([[0, 1, 2, 3, 4]])
    found = np.array([[0, 9, 8, 1, 2]])
    assert recall_at_k(found, ref, 2) == 0.5


def test_recall_counts_a_tie_with_the_kth_exact_score():
    # Two identical vectors: which one comes back at rank k is arbitrary, so both count.
    xb = np.eye(4, dtype=np.float32)[[0, 1, 1, 2]]
    xq = np.array([[0.9, 0.5, 0.0, 0.1]], dtype=np.float32)
    ref_ids, ref_scores = _brute_force_top(xb, xq, 2)  # [0, 1] (1 and 2 tie)
    found = np.array([[0, 2]])
    found_scores = (xq @ xb.T)[:, [0, 2]]
    assert recall_at_k(found, ref_ids, 2) == 0.5
    assert recall_at_k(found, ref_ids, 2, found_scores=found_scores, reference_scores=ref_scores) == 1.0


def test_recall_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="same number of queries"):
        recall_at_k(np.zeros((2, 10)), np.zeros((3, 10)), 10)
    with pytest.raises(ValueError, match="k=11"):
        recall_at_k(np.zeros((2, 10)), np.zeros((2, 10)), 11)
    with pytest.raises(ValueError, match="both"):
        recall_at_k(np.zeros((2, 10)), np.zeros((2, 10)), 10, found_scores=np.zeros((2, 10)))


# ------------------------------------------------------------------ synthetic scale data


def test_synthetic_vectors_have_factor_times_the_rows_and_unit_length():
    base = _unit_rows(np.random.default_rng(3), 7, 24)
    out = synthetic_vectors(base, 5, 0.02, np.random.default_rng(0))
    assert out.shape == (35, 24)
    assert out.dtype == np.float32 and out.flags["C_CONTIGUOUS"]
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_synthetic_vector_i_is_a_noisy_copy_of_base_row_i_mod_n():
    base = _unit_rows(np.random.default_rng(4), 6, 64)
    out = synthetic_vectors(base, 4, 0.02, np.random.default_rng(0), block=5)  # blocks cross copies
    cos = out @ base.T
    assert (np.argmax(cos, axis=1) == np.arange(24) % 6).all()
    assert (cos[np.arange(24), np.arange(24) % 6] > 0.95).all()
    assert not np.allclose(out[:6], out[6:12])  # copies differ


def test_synthetic_vectors_without_noise_are_the_base_repeated():
    base = _unit_rows(np.random.default_rng(5), 3, 8)
    assert np.allclose(synthetic_vectors(base, 3, 0.0, np.random.default_rng(0)), np.tile(base, (3, 1)))


def test_synthetic_vectors_are_reproducible_from_the_seed():
    base = _unit_rows(np.random.default_rng(6), 5, 8)
    a = synthetic_vectors(base, 2, 0.05, np.random.default_rng(42))
    b = synthetic_vectors(base, 2, 0.05, np.random.default_rng(42))
    assert np.array_equal(a, b)


def test_synthetic_vectors_reject_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        synthetic_vectors(np.zeros((0, 4)), 2, 0.01, np.random.default_rng(0))
    with pytest.raises(ValueError, match="factor=0"):
        synthetic_vectors(np.ones((2, 4)), 0, 0.01, np.random.default_rng(0))


def test_synthetic_documents_reach_each_target_length_from_real_sentences():
    sentences = [("地区", "生产", "总值"), ("同比", "增长"), (), ("冰雪", "经济", "潜力", "挖掘")]
    lengths = [1, 5, 9, 4, 12, 0]
    docs = synthetic_documents(sentences, lengths, np.random.default_rng(0))
    assert len(docs) == len(lengths)
    vocab = {t for s in sentences for t in s}
    for doc, want in zip(docs, lengths):
        assert len(doc) >= max(1, want)
        assert len(doc) < max(1, want) + 4  # stops after the sentence that reached the length
        assert set(doc) <= vocab


def test_synthetic_documents_are_whole_sentences_concatenated():
    sentences = [("a1", "a2"), ("b1", "b2", "b3"), ("c1",)]
    by_first = {s[0]: s for s in sentences}
    for doc in synthetic_documents(sentences, [6] * 50, np.random.default_rng(1)):
        i = 0
        while i < len(doc):
            s = by_first[doc[i]]
            assert tuple(doc[i : i + len(s)]) == s
            i += len(s)


def test_synthetic_documents_need_a_non_empty_sentence():
    with pytest.raises(ValueError, match="no non-empty"):
        synthetic_documents([(), ()], [3], np.random.default_rng(0))


# ------------------------------------------------------------------ small pieces


def test_parse_scales_sorts_and_deduplicates():
    assert parse_scales("1000, 10,100,10") == [10, 100, 1000]


@pytest.mark.parametrize("bad", ["", "ten", "10,-1", "0"])
def test_parse_scales_names_the_bad_value(bad):
    with pytest.raises(BenchError, match="--scales"):
        parse_scales(bad)


def test_figure_passes_or_misses_its_target():
    assert Figure("s", "p50", 25.0, "ms", "how", at_most=30.0).passed is True
    assert Figure("s", "p50", 31.0, "ms", "how", at_most=30.0).passed is False
    assert Figure("s", "recall", 0.97, "", "how", at_least=0.98).passed is False
    assert Figure("s", "size", 12.0, "MiB", "how").passed is None


def test_figure_json_carries_value_target_and_method():
    d = Figure("warm ask()", "p50", 25.0, "ms", "perf_counter around ask()", at_most=30.0).to_json()
    assert d["passed"] is True and d["target"] == "≤ 30.0 ms" and d["how"] == "perf_counter around ask()"


def test_peak_rss_is_a_positive_number_of_kib():
    assert peak_rss_kib() > 1000


def test_recall_probe_sweeps_efsearch_and_restores_it():
    from app.bench import recall_probe
    from app.index import make_faiss

    rng = np.random.default_rng(7)
    xb, xq = _unit_rows(rng, 600, 16), _unit_rows(rng, 12, 16)
    index = make_faiss(xb, hnsw_threshold=100)  # force the approximate kind on small data
    out = recall_probe(index, xq, candidates=50)
    configured = index.hnsw.efSearch
    assert out["ef_search"] == configured  # restored after the sweep
    assert set(out["ef_sweep"]) == {configured, 256, 512, 1024}
    assert all(0.0 <= v["recall_at_10"] <= 1.0 for v in out["ef_sweep"].values())
    assert out["ef_sweep"][1024]["recall_at_10"] == 1.0  # efSearch above the corpus size: exhaustive


def test_synthetic_copies_shift_ids_sections_and_chunk_links(fake_engine):
    from app.bench import synthetic_copies

    data = fake_engine.data
    chunks, sents = synthetic_copies(data.chunks, data.sentences, 3)
    assert [c.id for c in chunks] == list(range(3 * len(data.chunks)))
    assert [s.id for s in sents] == list(range(3 * len(data.sentences)))
    n_c = len(data.chunks)
    for s in sents[len(data.sentences):][:50]:
        assert chunks[s.chunk].section == s.section  # each copy links to its own chunks
        assert chunks[s.chunk].text == data.chunks[s.chunk % n_c].text
