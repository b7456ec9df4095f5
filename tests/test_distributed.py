"""The Dask build: equal to the single-process build, reruns skip finished shards, a worker killed
mid-build loses nothing. The fast tests share one local cluster (reached through its scheduler
address, as on a real cluster); the real-model test starts its own (the `--workers` path)."""

import functools
import os

import numpy as np
import pytest

from app.chunking import ChunkSettings
from app.index import build_index, load_index
from app.synth import write_corpus

from .conftest import FakeEmbedder

CHUNK = ChunkSettings()


class DyingEmbedder(FakeEmbedder):
    """Kills its own worker process the first time it embeds (the flag file records that it did)."""

    def __init__(self, flag: str) -> None:
        super().__init__()
        self.flag = flag

    def embed_documents(self, texts, progress: bool = False):
        if not os.path.exists(self.flag):
            with open(self.flag, "w") as f:
                f.write(str(os.getpid()))
            os._exit(1)  # the worker dies mid-task, as on an out-of-memory kill
        return super().embed_documents(texts, progress)


@pytest.fixture(scope="module")
def cluster():
    from app.distributed import local_cluster

    c = local_cluster(2)
    yield c
    c.close()


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("dist-corpus")
    write_corpus(d, 4, small=True, include_seed=False)
    return d


def _same_index(a, b, atol=1e-5):
    assert a.chunks == b.chunks and a.sentences == b.sentences  # texts, paths, ids, offsets
    assert list(a.chunk_tokens) == list(b.chunk_tokens) and list(a.sentence_tokens) == list(b.sentence_tokens)
    assert a.documents == b.documents and a.vocab == b.vocab
    xa, xb = (vectors.reconstruct_n(0, vectors.ntotal) for vectors in (a.faiss_index, b.faiss_index))
    np.testing.assert_allclose(xa, xb, atol=atol)
    np.testing.assert_allclose(a.sentence_vectors, b.sentence_vectors, atol=atol)
    np.testing.assert_allclose(a.vocab_vectors, b.vocab_vectors, atol=atol)
    ma, mb = ({k: v for k, v in m.manifest.items() if k not in ("created", "files")} for m in (a, b))
    assert ma == mb  # same format, model, chunking, corpus hashes and counts


def test_distributed_build_equals_the_single_process_build(cluster, small_corpus, tmp_path):
    from app.distributed import build_distributed

    build_index(small_corpus, tmp_path / "single", FakeEmbedder(), CHUNK)
    report = build_distributed(small_corpus, tmp_path / "dist", functools.partial(FakeEmbedder), CHUNK,
                               scheduler=cluster.scheduler_address)
    assert report.shards_built == 4 and report.shards_reused == 0 and not report.errors
    _same_index(load_index(tmp_path / "dist"), load_index(tmp_path / "single"), atol=0)


def test_a_rerun_skips_the_shards_already_built(cluster, small_corpus, tmp_path):
    from app.distributed import build_distributed

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for p in small_corpus.iterdir():
        (corpus / p.name).write_bytes(p.read_bytes())
    make = functools.partial(FakeEmbedder)
    first = build_distributed(corpus, tmp_path / "idx", make, CHUNK, scheduler=cluster.scheduler_address)
    victim = sorted(corpus.glob("*.txt"))[0]
    victim.write_text(victim.read_text(encoding="utf-8").replace("各位代表", "各位委员", 1), encoding="utf-8")
    second = build_distributed(corpus, tmp_path / "idx", make, CHUNK, scheduler=cluster.scheduler_address)
    assert (first.shards_built, second.shards_built, second.shards_reused) == (4, 1, 3)
    assert len(list((tmp_path / "idx" / ".shards").iterdir())) == 4  # the changed file's old shard is gone
    assert load_index(tmp_path / "idx").folder == second.folder


def test_a_worker_killed_mid_build_does_not_lose_the_build(cluster, small_corpus, tmp_path):
    from app.distributed import build_distributed

    flag = tmp_path / "died"
    build_index(small_corpus, tmp_path / "single", FakeEmbedder(), CHUNK)
    report = build_distributed(small_corpus, tmp_path / "dist", functools.partial(DyingEmbedder, str(flag)), CHUNK,
                               scheduler=cluster.scheduler_address)
    assert flag.exists()  # a worker really died during the build …
    assert report.shards_built == 4 and not report.errors  # … and the scheduler ran its task again
    _same_index(load_index(tmp_path / "dist"), load_index(tmp_path / "single"), atol=0)


def test_files_that_cannot_be_read_are_skipped_with_their_reason(cluster, small_corpus, tmp_path):
    from app.distributed import build_distributed

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    first = sorted(small_corpus.glob("*.txt"))[0]
    (corpus / first.name).write_bytes(first.read_bytes())
    (corpus / "gbk.txt").write_bytes("政府工作报告".encode("gbk"))
    report = build_distributed(corpus, tmp_path / "idx", functools.partial(FakeEmbedder), CHUNK,
                               scheduler=cluster.scheduler_address)
    assert len(report.errors) == 1 and "not UTF-8" in str(report.errors[0]) and "iconv" in str(report.errors[0])
    assert [d.source for d in load_index(tmp_path / "idx").documents] == [first.name]


@pytest.mark.model
def test_distributed_build_with_the_real_model_answers_like_the_single_process_build(small_corpus, tmp_path):
    """Four generated reports built both ways with e5-small (the local-cluster path: no address);
    then the multi-report eval's questions asked of both indexes."""
    from app import multieval
    from app.config import Settings
    from app.distributed import build_distributed
    from app.embedder import make_embedder
    from app.engine import Engine

    emb = make_embedder()  # the default encoder (fp32 ONNX of e5-small)
    build_index(small_corpus, tmp_path / "single", emb, CHUNK)
    report = build_distributed(small_corpus, tmp_path / "dist", functools.partial(make_embedder, threads=1), CHUNK,
                               workers=2)
    assert report.shards_built == 4 and not report.errors
    single, dist = load_index(tmp_path / "single"), load_index(tmp_path / "dist")
    _same_index(dist, single, atol=1e-4)  # the model batches other texts together: float rounding only
    answers = []
    for index in ("single", "dist"):
        eng = Engine.open(Settings(corpus_dir=small_corpus, index_dir=tmp_path / index), embedder=emb, build=False)
        # the answer: found or not, the quote, where it is, each comparison part's quote, the quote's own
        # passage. (Lower-ranked passages may swap places on a near tie: the vectors agree to ~1e-6.)
        answers.append([(a.found, a.source, a.start, a.text, a.passages[0].start if a.passages else None,
                         [(p.source, p.text) for p in a.parts])
                        for a in (eng.ask(q["question"]) for q in multieval.load())])
    assert answers[0] == answers[1]
    assert sum(found for found, *_ in answers[0]) >= len(answers[0]) // 2  # the comparison is not of empty answers
