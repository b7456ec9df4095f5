"""`bench --scale`'s scale step on a tiny generated corpus with the fake model (the figures
themselves come from the real run; this checks the step measures what it says)."""

import numpy as np

from app.chunking import ChunkSettings
from app.index import build_index
from app.synth import write_corpus

from .conftest import FakeEmbedder


def test_a_scale_row_is_a_real_index_of_generated_reports_with_filtered_asks(tmp_path):
    from app.scalebench import _base_vectors, measure_scale

    write_corpus(tmp_path / "base", 2, small=True, include_seed=False)
    emb = FakeEmbedder()
    build_index(tmp_path / "base", tmp_path / "base-index", emb, ChunkSettings())
    base = _base_vectors(tmp_path / "base-index")
    qvecs = emb.embed_queries(["今年地区生产总值增长目标是多少？", "什么是飞地经济？"])
    row, cvec = measure_scale(3, tmp_path, base, qvecs, emb, lambda m: None)
    assert row["reports"] == 3 and row["chunks"] == len(cvec) > 0 and row["index_kind"] == "flat"
    assert row["recall@10"] == 1.0  # flat is exact
    assert row["ask_p95_ms"] >= row["ask_p50_ms"] > 0 and row["ask_filtered_p50_ms"] > 0
    assert np.allclose(np.linalg.norm(cvec, axis=1), 1.0, atol=1e-5)
    assert (tmp_path / "index-3" / "CURRENT").is_file()
