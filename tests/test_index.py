"""The index: round trip, manifest checks, atomic builds, no pickle."""

import json
import threading

import numpy as np
import pytest

from app.engine import Engine
from app.errors import IndexError_, StaleIndexError
from app.index import build_index, expected_manifest, load_index
from app.corpus import load_corpus

from .conftest import FakeEmbedder


def _build(settings, emb=None):
    return build_index(settings.corpus_dir, settings.index_dir, emb or FakeEmbedder(), settings.chunk)


def _expect(settings, model_id="fake-bigram-64", dim=64):
    docs, _ = load_corpus(settings.corpus_dir)
    return expected_manifest(docs, model_id, dim, settings.chunk)


def test_build_then_load_round_trips(settings):
    folder, errors = _build(settings)
    data = load_index(settings.index_dir, _expect(settings))
    assert not errors and data.folder == folder
    assert data.faiss_index.ntotal == len(data.chunks) == data.manifest["counts"]["chunks"]
    assert data.sentence_vectors.shape == (len(data.sentences), 64)


def test_index_files_are_json_numpy_and_faiss_only(settings):
    folder, _ = _build(settings)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert {f.rsplit(".", 1)[-1] for f in files} == {"faiss", "json", "npy"}
    assert {"chunks.faiss", "chunks.json", "manifest.json", "sentences.npy", "vocab.json", "vocab.npy"} <= set(files)
    for f in files:
        if f.endswith(".npy"):
            np.load(folder / f, allow_pickle=False)
        elif f.endswith(".json"):
            json.loads((folder / f).read_text(encoding="utf-8"))


def test_every_index_file_is_covered_by_a_manifest_checksum(settings):
    folder, _ = _build(settings)
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {"manifest.json"}
    data = load_index(settings.index_dir)
    assert set(data.manifest["files"]) == files


def test_bm25_is_loaded_from_the_index_not_rebuilt(settings):
    _build(settings)
    data = load_index(settings.index_dir)
    assert data.bm25_chunks is not None and data.bm25_sentences is not None
    assert isinstance(data.bm25_chunks.scores["data"], np.memmap)  # memory-mapped, not re-indexed


def test_stored_bm25_scores_equal_a_fresh_bm25_index(settings):
    from app.index import bm25_model

    _build(settings)
    data = load_index(settings.index_dir)
    fresh = bm25_model(data.chunk_tokens)
    for query in (["地区生产总值"], ["冰雪", "经济"], ["2024", "就业"], ["不存在的词"]):
        assert np.allclose(data.bm25_chunks.get_scores(query), fresh.get_scores(query))


def test_a_corrupted_bm25_matrix_is_detected(settings):
    folder, _ = _build(settings)
    target = next((folder / "bm25-sentences").glob("data*.npy"))
    raw = bytearray(target.read_bytes())
    raw[-4:] = b"\x00\x00\x80\x7f"
    target.write_bytes(bytes(raw))
    with pytest.raises(IndexError_, match="corrupt"):
        load_index(settings.index_dir)


def test_index_from_another_encoder_backend_is_stale_and_names_both(settings):
    emb = FakeEmbedder()
    emb.backend = "onnx-int8"
    _build(settings, emb)
    docs, _ = load_corpus(settings.corpus_dir)
    with pytest.raises(StaleIndexError, match="onnx-int8.*torch-fp32.*--backend onnx"):
        load_index(settings.index_dir, expected_manifest(docs, "fake-bigram-64", 64, settings.chunk,
                                                         backend="torch-fp32"))


def test_engine_rebuilds_when_the_backend_changes(settings):
    old = FakeEmbedder()
    old.backend = "torch-fp32"
    _build(settings, old)
    new = FakeEmbedder()
    new.backend = "onnx-int8"
    eng = Engine.open(settings, embedder=new)
    assert eng.data.manifest["model"]["backend"] == "onnx-int8"


def test_missing_index_says_what_to_run(settings):
    with pytest.raises(IndexError_, match="python -m app index"):
        load_index(settings.index_dir)


def test_corrupted_file_is_detected(settings):
    folder, _ = _build(settings)
    with open(folder / "chunks.faiss", "r+b") as f:
        f.seek(100)
        f.write(b"\xff\xfe\xfd")
    with pytest.raises(IndexError_, match="corrupt"):
        load_index(settings.index_dir)


def test_truncated_file_is_detected(settings):
    folder, _ = _build(settings)
    data = (folder / "chunks.json").read_bytes()
    (folder / "chunks.json").write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexError_):
        load_index(settings.index_dir)


def test_index_from_another_model_is_refused_with_both_names(settings):
    _build(settings)
    with pytest.raises(StaleIndexError, match="fake-bigram-64.*other-model"):
        load_index(settings.index_dir, _expect(settings, model_id="other-model", dim=384))


def test_index_is_stale_after_a_corpus_file_changes(settings):
    _build(settings)
    f = next(settings.corpus_dir.iterdir())
    f.write_text(f.read_text(encoding="utf-8") + "\n新增一段。\n", encoding="utf-8")
    with pytest.raises(StaleIndexError, match=f.name):
        load_index(settings.index_dir, _expect(settings))


def test_engine_rebuilds_a_stale_index(settings):
    _build(settings, FakeEmbedder(model_id="old-model"))
    eng = Engine.open(settings, embedder=FakeEmbedder())
    assert eng.data.manifest["model"]["id"] == "fake-bigram-64"


def test_engine_without_build_reports_the_fix(settings):
    with pytest.raises(IndexError_, match="python -m app index"):
        Engine.open(settings, embedder=FakeEmbedder(), build=False)


class ExplodingEmbedder(FakeEmbedder):
    def embed_documents(self, texts, progress=False):
        raise KeyboardInterrupt("killed mid-build")


def test_a_build_killed_midway_leaves_the_previous_index_usable(settings):
    first, _ = _build(settings)
    with pytest.raises(KeyboardInterrupt):
        _build(settings, ExplodingEmbedder())
    data = load_index(settings.index_dir, _expect(settings))
    assert data.folder == first
    assert not [p for p in settings.index_dir.iterdir() if p.name.startswith(".tmp-")]


def test_two_builds_at_once_leave_one_whole_index(settings):
    errors = []

    def run():
        try:
            _build(settings)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    data = load_index(settings.index_dir, _expect(settings))
    assert data.faiss_index.ntotal == len(data.chunks)
    assert len([p for p in settings.index_dir.iterdir() if p.name.startswith("build-")]) == 1


def test_a_bad_corpus_file_is_skipped_and_named(settings):
    (settings.corpus_dir / "gbk.txt").write_bytes("海拉尔区".encode("gbk"))
    _, errors = _build(settings)
    assert len(errors) == 1 and "gbk.txt" in str(errors[0])


def test_flat_search_matches_brute_force(settings):
    _build(settings)
    data = load_index(settings.index_dir)
    q = FakeEmbedder().embed_queries(["地区生产总值"])[0]
    D, I = data.faiss_index.search(q[None, :], 5)
    vecs = np.stack([data.faiss_index.reconstruct(i) for i in range(data.faiss_index.ntotal)])
    brute = vecs @ q
    assert np.allclose(np.sort(brute)[::-1][:5], D[0], atol=1e-5)


def test_engine_answers_with_the_stored_bm25(settings):
    _build(settings)
    eng = Engine.open(settings, embedder=FakeEmbedder(), build=False)
    assert eng.retriever.bm25_chunks is eng.data.bm25_chunks
    assert eng.retriever.bm25_sentences is eng.data.bm25_sentences


def test_bm25s_is_imported_without_numba_or_scipy_and_they_stay_importable():
    import subprocess
    import sys

    code = ("import sys\nfrom app.index import _bm25s\n_bm25s()\n"
            "print(sorted(m for m in ('numba', 'scipy') if m in sys.modules))\n"
            "import scipy.sparse\nprint('scipy ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-1500:]
    assert r.stdout.split() == ["[]", "scipy", "ok"]


def test_loaded_offsets_equal_the_built_ones_character_by_character(settings):
    from app.chunking import chunk_sections
    from app.corpus import sections

    _build(settings)
    data = load_index(settings.index_dir)
    docs, _ = load_corpus(settings.corpus_dir)
    chunks, sents = chunk_sections([s for d in docs for s in sections(d)], settings.chunk)
    for built, loaded in ((chunks, data.chunks), (sents, data.sentences)):
        for b, x in zip(built, loaded):
            assert list(x.offsets) == list(b.offsets)
            assert len(x.offsets) == len(b.offsets) and x.offsets[-1] == b.offsets[-1] and x.offsets[0] == b.offsets[0]
            assert x.offsets[1:3] == list(b.offsets[1:3])
