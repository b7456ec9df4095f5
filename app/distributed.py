"""The index build on Dask distributed: `python -m app index --workers N [--scheduler tcp://host:8786]`.

    driver: list files → one task per file ─► workers: read, clean, section, chunk, tokenise, embed
                                                 (model loaded once per worker) → shard folder
            merge shards in file order (ids offset, vectors streamed to disk) → vocabulary words
            embedded on the workers → the same index folder as `build_index`, switched atomically

Shards live in ``<index>/.shards/<key>/`` (``--shards`` elsewhere: on a real cluster a path every
node sees). A shard's key hashes the file (and sidecar), the chunk settings, the model and the
pipeline version, so a rerun skips the files whose shard is already there — after a crash, or
when only some files changed. A shard is written to a temporary folder and renamed into place:
a task killed mid-write leaves no half shard; the scheduler retries it on another worker.

Each shard is JSON (chunks, sentences, tokens, metadata, vocabulary counts) plus one .npy of
vectors: nothing read back is pickled. The tokens of a document depend only on that document
(`textnorm.DocumentSegmenter`), so the merged index equals the single-process build: same chunks,
offsets and tokens; vectors equal up to float rounding (the model batches other texts together).

Without a scheduler address a `LocalCluster` is started on 127.0.0.1 (no dashboard), one thread
per worker process; glibc's `MALLOC_TRIM_THRESHOLD_`, which Dask sets for workers, is left unset
(it cost 14–19 % more CPU while embedding, /work/shared/MEASURED.md). A script that builds with a
local cluster needs the ``if __name__ == "__main__":`` guard (workers are spawned processes).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .chunking import Chunk, ChunkSettings, Sentence
from .docmeta import DocMeta
from .errors import CorpusError, IndexError_

__all__ = ["BuildReport", "build_distributed", "local_cluster"]

SHARD_VERSION = 1  # bump when what a shard holds (or how it is computed) changes
_EMBEDDERS: dict = {}  # per worker process: one model per embedder factory


@dataclass(frozen=True)
class BuildReport:
    folder: Path  # the new current build
    errors: tuple[CorpusError, ...]  # files skipped (with the reason), bad sidecars
    shards_built: int
    shards_reused: int
    seconds: dict  # per phase: "shards", "merge", "vocabulary", "total"


def _embedder(make: Callable):
    """The worker's embedder for this factory, created (and its model loaded) once per process."""
    key = _factory_key(make)
    emb = _EMBEDDERS.get(key)
    if emb is None:
        emb = _EMBEDDERS[key] = make()
    return emb


def _factory_key(make: Callable) -> str:
    if isinstance(make, functools.partial):
        f = make.func
        return f"{f.__module__}.{f.__qualname__}{make.args!r}{sorted(make.keywords.items())!r}"
    return f"{getattr(make, '__module__', '')}.{getattr(make, '__qualname__', repr(make))}"


def shard_key(source: str, digest: str, chunk: ChunkSettings, model_id: str, backend) -> str:
    from .index import FORMAT

    blob = json.dumps([SHARD_VERSION, FORMAT, source, digest, asdict(chunk), model_id, backend])
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


# ---------------------------------------------------------------- on a worker


def build_shard(path: str, corpus_dir: str, shard_root: str, key: str, chunk: ChunkSettings, make: Callable) -> dict:
    """Read, chunk, tokenise and embed one corpus file into ``shard_root/key`` (skipped if there)."""
    final = Path(shard_root) / key
    done = final / "shard.json"
    if done.is_file():
        info = json.loads(done.read_text(encoding="utf-8"))["info"]
        return {**info, "reused": True}
    from .corpus import load_doc
    from .index import document_part

    try:
        doc, problems = load_doc(Path(path), Path(corpus_dir))
    except CorpusError as exc:
        return {"key": key, "error": str(exc)}
    part = document_part(doc, chunk)
    emb = _embedder(make)
    texts = part.texts()
    vecs = emb.embed_documents(texts) if texts else np.zeros((0, emb.dim), dtype=np.float32)
    info = {"key": key, "source": doc.source, "digest": doc.sha256, "chunks": len(part.chunks),
            "sentences": len(part.sentences), "sections": part.n_sections, "dim": int(vecs.shape[1]),
            "problems": [str(p) for p in problems], "model": emb.model_id}
    tmp = Path(shard_root) / f".tmp-{key}-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    tmp.mkdir(parents=True)
    try:
        np.save(tmp / "vectors.npy", np.ascontiguousarray(vecs, dtype=np.float32), allow_pickle=False)
        payload = {
            "info": info, "meta": doc.meta.to_dict(), "words": part.words,
            "chunks": [_chunk_row(c) for c in part.chunks], "chunk_tokens": [list(t) for t in part.chunk_tokens],
            "sentences": [_sentence_row(s) for s in part.sentences],
            "sentence_tokens": [list(t) for t in part.sentence_tokens],
        }
        (tmp / "shard.json").write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
        try:
            os.replace(tmp, final)  # atomic: a shard is there whole or not at all
        except OSError:  # another attempt of the same task got there first: same content
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {**info, "reused": False}


def embed_words(words: list[str], make: Callable) -> np.ndarray:
    return _embedder(make).embed_queries(words)


def _chunk_row(c: Chunk) -> dict:
    from .index import _runs

    return {"id": c.id, "section": c.section, "source": c.source, "path": list(c.path), "text": c.text,
            "start": c.start, "end": c.end, "runs": _runs(c.offsets)}


def _sentence_row(s: Sentence) -> dict:
    from .index import _runs

    return {"id": s.id, "chunk": s.chunk, "section": s.section, "text": s.text, "start": s.start, "end": s.end,
            "runs": _runs(s.offsets)}


# ---------------------------------------------------------------- the cluster


def local_cluster(workers: int):
    """A LocalCluster on 127.0.0.1, no dashboard, one thread per worker process, glibc's malloc
    trimming left at its default (Dask's setting made embedding slower)."""
    import dask
    from dask.distributed import LocalCluster

    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                            dashboard_address=None)


def _client(scheduler: str | None, workers: int):
    from dask.distributed import Client

    if scheduler:
        try:
            return Client(scheduler, timeout="30s"), None
        except OSError as exc:
            raise IndexError_(f"cannot reach the Dask scheduler at {scheduler} ({exc}): start it with "
                              "`dask scheduler` and workers with `dask worker {scheduler}`, or drop --scheduler "
                              "to build on a local cluster") from None
    cluster = local_cluster(workers)
    return Client(cluster), cluster


# ---------------------------------------------------------------- on the driver


def build_distributed(corpus_dir: Path, index_dir: Path, make_embedder: Callable, chunk: ChunkSettings, *,
                      workers: int = 2, scheduler: str | None = None, shard_dir: Path | None = None,
                      progress: Callable[[str], None] | None = None, retries: int = 3) -> BuildReport:
    """Build the index of ``corpus_dir`` on a Dask cluster and make it current; see the module doc.

    ``make_embedder`` is a picklable zero-argument factory (e.g. ``functools.partial(
    embedder.make_embedder, model, backend, threads=1)``): each worker calls it once."""
    from dask.distributed import as_completed
    from filelock import FileLock

    from .corpus import corpus_files, doc_digest

    say = progress or (lambda _m: None)
    t_all = time.perf_counter()
    if workers < 1:
        raise ValueError(f"workers must be ≥ 1, got {workers}")
    corpus_dir, index_dir = Path(corpus_dir), Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    shard_root = Path(shard_dir) if shard_dir else index_dir / ".shards"
    shard_root.mkdir(parents=True, exist_ok=True)
    probe = make_embedder()  # only its model id (and backend): nothing is loaded here
    model_id, backend = probe.model_id, getattr(probe, "backend", None)
    with FileLock(str(index_dir / ".lock")):
        files = corpus_files(corpus_dir)
        jobs = []
        for p in files:
            source = p.relative_to(corpus_dir).as_posix()
            key = shard_key(source, doc_digest(p), chunk, model_id, backend)
            jobs.append((str(p), key))
        client, cluster = _client(scheduler, workers)
        try:
            t = time.perf_counter()
            # largest files first, so no worker is left with a long file while the others idle at the end
            by_size = sorted(range(len(jobs)), key=lambda i: -Path(jobs[i][0]).stat().st_size)
            futures = {client.submit(build_shard, jobs[i][0], str(corpus_dir), str(shard_root), jobs[i][1], chunk,
                                     make_embedder, key=f"shard-{jobs[i][1]}", retries=retries, pure=False,
                                     priority=len(jobs) - rank): i
                       for rank, i in enumerate(by_size)}
            results: list[dict | None] = [None] * len(jobs)
            for n, fut in enumerate(as_completed(futures), 1):
                results[futures[fut]] = fut.result()
                if n % max(1, len(jobs) // 20) == 0 or n == len(jobs):
                    say(f"shards: {n}/{len(jobs)}")
            seconds = {"shards": time.perf_counter() - t}
            errors = [CorpusError(r["error"]) for r in results if r and "error" in r]
            errors += [CorpusError(m) for r in results if r and "error" not in r for m in r.get("problems", ())]
            good = [r for r in results if r and "error" not in r]
            for e in errors:
                say(f"skipped: {e}")
            if not good:
                detail = "; ".join(str(e) for e in errors) or "no .md or .txt files"
                raise CorpusError(f"corpus folder {corpus_dir} has nothing to index ({detail})")
            t = time.perf_counter()
            folder = _merge(index_dir, shard_root, good, chunk, model_id, backend, client, make_embedder, say, seconds)
            seconds["merge"] = time.perf_counter() - t - seconds.get("vocabulary", 0.0)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        keep = {r["key"] for r in good}
        for old in shard_root.iterdir():  # shards of files that are gone or changed
            if old.is_dir() and old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)
    seconds["total"] = time.perf_counter() - t_all
    reused = sum(bool(r.get("reused")) for r in good)
    return BuildReport(folder, tuple(errors), len(good) - reused, reused, seconds)


def _load_shard(shard_root: Path, key: str) -> dict:
    return json.loads((shard_root / key / "shard.json").read_text(encoding="utf-8"))


def _merge(index_dir: Path, shard_root: Path, shards: list[dict], chunk: ChunkSettings, model_id: str, backend,
           client, make_embedder, say, seconds: dict) -> Path:
    """Shards in file order → one build folder. Ids are offset; vectors go through memory-mapped files,
    so the driver never holds them all (FAISS then holds the chunk vectors it indexes); texts and
    tokens are held, as BM25 is built over all of them."""
    from .bridge import top_vocabulary
    from .index import DocumentEntry, RunOffsets, expected_manifest, finish_build, new_build, write_files

    dims = {r["dim"] for r in shards}
    if len(dims) != 1:
        raise IndexError_(f"shards disagree on the vector dimension ({sorted(dims)}): delete {shard_root} and rebuild")
    dim = dims.pop()
    n_chunks = sum(r["chunks"] for r in shards)
    n_sents = sum(r["sentences"] for r in shards)
    say(f"merging {len(shards)} shard(s): {n_chunks} chunks, {n_sents} sentences")
    tmp = new_build(index_dir)
    try:
        spool = tmp / ".vectors"
        spool.mkdir()
        cvec = np.lib.format.open_memmap(spool / "chunks.npy", mode="w+", dtype=np.float32, shape=(n_chunks, dim))
        svec = np.lib.format.open_memmap(spool / "sentences.npy", mode="w+", dtype=np.float32, shape=(n_sents, dim))
        chunks, sents, ctoks, stoks, entries, words = [], [], [], [], [], Counter()
        sec0 = 0
        for r in shards:
            sh = _load_shard(shard_root, r["key"])
            c0, s0 = len(chunks), len(sents)
            nc, ns = r["chunks"], r["sentences"]
            v = np.load(shard_root / r["key"] / "vectors.npy", allow_pickle=False, mmap_mode="r")
            cvec[c0:c0 + nc] = v[:nc]
            svec[s0:s0 + ns] = v[nc:nc + ns]
            chunks.extend(Chunk(c["id"] + c0, c["section"] + sec0, c["source"], tuple(c["path"]), c["text"],
                                c["start"], c["end"], RunOffsets(c["runs"])) for c in sh["chunks"])
            sents.extend(Sentence(s["id"] + s0, s["chunk"] + c0, s["section"] + sec0, s["text"], s["start"], s["end"],
                                  RunOffsets(s["runs"])) for s in sh["sentences"])
            ctoks.extend(tuple(t) for t in sh["chunk_tokens"])
            stoks.extend(tuple(t) for t in sh["sentence_tokens"])
            entries.append(DocumentEntry(r["source"], DocMeta.from_dict(sh["meta"]), (c0, c0 + nc), (s0, s0 + ns)))
            words.update(sh["words"])
            sec0 += r["sections"]
        cvec.flush()
        svec.flush()
        t = time.perf_counter()
        vocab = top_vocabulary(words)
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        size = max(1, min(2000, -(-len(vocab) // (2 * n_workers))))  # every worker gets some
        batches = [vocab[i:i + size] for i in range(0, len(vocab), size)]
        futs = [client.submit(embed_words, b, make_embedder, pure=False, retries=3) for b in batches]
        vvec = np.concatenate(client.gather(futs)) if futs else np.zeros((0, dim), dtype=np.float32)
        seconds["vocabulary"] = time.perf_counter() - t
        write_files(tmp, chunks, sents, ctoks, stoks, np.load(spool / "chunks.npy", mmap_mode="r"),
                    np.load(spool / "sentences.npy", mmap_mode="r"), vocab, vvec, entries)
        del cvec, svec
        shutil.rmtree(spool)
        manifest = expected_manifest([], model_id, dim, chunk, backend=backend)
        manifest["corpus"] = {r["source"]: r["digest"] for r in shards}
        counts = {"files": len(shards), "sections": sec0, "chunks": n_chunks, "sentences": n_sents}
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return finish_build(index_dir, tmp, manifest, counts)
