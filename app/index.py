"""Build, save and load the retrieval index (FAISS + JSON + NumPy; never pickle).

Layout of `index/`:

    CURRENT                 name of the live build folder (swapped atomically with os.replace)
    build-<stamp>/
        manifest.json       format, model id + dim, chunk settings, corpus file hashes, file hashes
        chunks.json         sections, chunks, sentences (text, path, offsets), BM25 tokens
        chunks.faiss        chunk vectors, inner product on L2-normalised rows = cosine
        sentences.npy       sentence vectors (float32, loaded with allow_pickle=False)
        vocab.json, vocab.npy   the report's own words and their vectors, for the word bridge (bridge.py)
    .lock                   held while building, so two builds never interleave

A build writes a new folder and only then points CURRENT at it, so a crash mid-build
leaves the previous index loadable. Loading checks every file's sha256 against the
manifest, and the manifest against the configured model and corpus.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .chunking import Chunk, ChunkSettings, Sentence, chunk_sections
from .corpus import Doc, load_corpus, sections
from .embedder import Embedder
from .errors import CorpusError, IndexError_, StaleIndexError

__all__ = ["FORMAT", "HNSW_THRESHOLD", "IndexData", "build_index", "expected_manifest", "load_index", "make_faiss"]

FORMAT = 2  # 2: the word-bridge vocabulary
# Above this many vectors an approximate HNSW index replaces exact search (see `app bench`).
HNSW_THRESHOLD = 50_000


@dataclass(frozen=True)
class IndexData:
    manifest: dict
    chunks: tuple[Chunk, ...]
    sentences: tuple[Sentence, ...]
    chunk_tokens: tuple[tuple[str, ...], ...]
    sentence_tokens: tuple[tuple[str, ...], ...]
    faiss_index: object
    sentence_vectors: np.ndarray
    folder: Path
    vocab: tuple[str, ...] = ()
    vocab_vectors: np.ndarray | None = None


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def chunk_text(c: Chunk) -> str:
    """What the model embeds for a chunk: its breadcrumb, then its text."""
    return f"{c.breadcrumb}\n{c.text}"


def sentence_text(s: Sentence, chunk: Chunk) -> str:
    return f"{chunk.path[-1]}：{s.text}"


def make_faiss(vectors: np.ndarray, hnsw_threshold: int = HNSW_THRESHOLD):
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    if len(vectors) > hnsw_threshold:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        # `app bench` at 98k chunks: efSearch 128 → recall@10 0.84, 512 → 0.96, 1024 → 0.98 (1.5 ms/query)
        index.hnsw.efSearch = 1024
    else:
        # Vectors are L2-normalised, so inner product = cosine similarity.
        index = faiss.IndexFlatIP(dim)
    index.add(vectors)
    return index


def expected_manifest(docs: list[Doc], model_id: str, dim: int | None, chunk: ChunkSettings) -> dict:
    return {
        "format": FORMAT,
        "model": {"id": model_id, "dim": dim},
        "chunking": asdict(chunk),
        "corpus": {d.source: d.sha256 for d in docs},
    }


def _runs(offsets) -> list[list[int]]:
    """Run-length encode offsets as [text_index, file_offset, length] (they are mostly contiguous)."""
    runs: list[list[int]] = []
    for i, o in enumerate(offsets):
        if runs and runs[-1][1] + runs[-1][2] == o and runs[-1][0] + runs[-1][2] == i:
            runs[-1][2] += 1
        else:
            runs.append([i, o, 1])
    return runs


def _unruns(runs: list[list[int]]):
    from array import array

    out = array("q")
    for _, o, n in runs:
        out.extend(range(o, o + n))
    return out


def build_index(
    corpus_dir: Path,
    index_dir: Path,
    embedder: Embedder,
    chunk: ChunkSettings,
    *,
    progress: Callable[[str], None] | None = None,
    show_bar: bool = False,
) -> tuple[Path, list[CorpusError]]:
    """Build a new index folder and make it current. Returns (folder, skipped-file errors)."""
    from filelock import FileLock

    from .textnorm import add_words, tokenize

    say = progress or (lambda _msg: None)
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(index_dir / ".lock")):
        docs, errors = load_corpus(corpus_dir)
        for e in errors:
            say(f"skipped: {e}")
        secs = [s for d in docs for s in sections(d)]
        chunks, sents = chunk_sections(secs, chunk)
        say(f"{len(docs)} file(s), {len(secs)} sections, {len(chunks)} chunks, {len(sents)} sentences")
        add_words(p[-1] for p in {s.path for s in secs})
        chunk_tokens = [tokenize(chunk_text(c)) for c in chunks]
        sent_tokens = [tokenize(s.text) for s in sents]
        t0 = time.perf_counter()
        cvec = embedder.embed_documents([chunk_text(c) for c in chunks], **({"progress": True} if show_bar else {}))
        svec = embedder.embed_documents([sentence_text(s, chunks[s.chunk]) for s in sents],
                                        **({"progress": True} if show_bar else {}))
        from .bridge import report_vocabulary

        vocab = report_vocabulary((c.text for c in chunks), {p for c in chunks for p in c.path})
        vvec = embedder.embed_queries(vocab) if vocab else np.zeros((0, cvec.shape[1]), dtype=np.float32)
        say(f"embedded {len(chunks) + len(sents)} texts and {len(vocab)} words in {time.perf_counter() - t0:.1f}s")

        stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}-{time.monotonic_ns() % 10**6}"
        tmp = index_dir / f".tmp-{stamp}"
        tmp.mkdir()
        try:
            import faiss

            faiss.write_index(make_faiss(cvec), str(tmp / "chunks.faiss"))
            np.save(tmp / "sentences.npy", svec, allow_pickle=False)
            np.save(tmp / "vocab.npy", np.asarray(vvec, dtype=np.float32), allow_pickle=False)
            (tmp / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
            payload = {
                "chunks": [
                    {"id": c.id, "section": c.section, "source": c.source, "path": list(c.path), "text": c.text,
                     "start": c.start, "end": c.end, "runs": _runs(c.offsets), "tokens": t}
                    for c, t in zip(chunks, chunk_tokens)
                ],
                "sentences": [
                    {"id": s.id, "chunk": s.chunk, "section": s.section, "text": s.text, "start": s.start,
                     "end": s.end, "runs": _runs(s.offsets), "tokens": t}
                    for s, t in zip(sents, sent_tokens)
                ],
            }
            (tmp / "chunks.json").write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
            manifest = expected_manifest(docs, embedder.model_id, int(cvec.shape[1]), chunk)
            manifest.update(
                created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                counts={"files": len(docs), "sections": len(secs), "chunks": len(chunks), "sentences": len(sents)},
                files={n: _sha(tmp / n) for n in ("chunks.faiss", "sentences.npy", "chunks.json", "vocab.json",
                                                  "vocab.npy")},
            )
            (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
            final = index_dir / f"build-{stamp}"
            os.replace(tmp, final)
            pointer = index_dir / f".CURRENT-{stamp}"
            pointer.write_text(final.name)
            os.replace(pointer, index_dir / "CURRENT")  # the atomic switch
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for old in index_dir.iterdir():  # old builds, crashed temp folders and pointer files
            if old.is_dir() and old != final and (old.name.startswith("build-") or old.name.startswith(".tmp-")):
                shutil.rmtree(old, ignore_errors=True)
            elif old.is_file() and old.name.startswith(".CURRENT-"):
                old.unlink(missing_ok=True)
        return final, errors


def _rebuild_hint(index_dir: Path) -> str:
    return f"run `python -m app index` (index folder: {index_dir})"


_MANIFEST_FILES = ("chunks.faiss", "sentences.npy", "chunks.json")  # checksummed in every build


def _manifest_problem(m: object) -> str | None:
    """What is wrong with a manifest's shape (None when nothing is): a damaged manifest is rebuilt,
    never half-read, and one without checksums must not let edited files through unchecked."""
    if not isinstance(m, dict):
        return f"a JSON {type(m).__name__}, not an object"
    model, files = m.get("model"), m.get("files")

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    if not (isinstance(model, dict) and isinstance(model.get("id"), str) and is_int(model.get("dim"))):
        return f'"model" is {model!r:.80}, not {{"id": <name>, "dim": <int>}}'
    for key in ("chunking", "corpus"):
        if not isinstance(m.get(key), dict):
            return f'"{key}" is {m.get(key)!r:.80}, not an object'
    if not (isinstance(files, dict) and all(isinstance(files.get(n), str) for n in _MANIFEST_FILES)):
        return f'"files" lacks the checksums of {", ".join(_MANIFEST_FILES)}'
    return None


def load_index(index_dir: Path, expect: dict | None = None) -> IndexData:
    """Load the current build; raise IndexError_/StaleIndexError with the command that fixes it.

    ``expect`` is `expected_manifest(...)` for the configured model and corpus; with
    ``dim`` None the dimension is not checked (the model has not been loaded yet).
    """
    import faiss

    index_dir = Path(index_dir)
    cur = index_dir / "CURRENT"
    if not cur.is_file():
        raise IndexError_(f"no index in {index_dir}: {_rebuild_hint(index_dir)}")
    folder = index_dir / cur.read_text().strip()
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexError_(f"index manifest in {folder} is missing or corrupt ({exc}): {_rebuild_hint(index_dir)}") from None
    if isinstance(manifest, dict) and manifest.get("format") != FORMAT:
        raise StaleIndexError(f"index format {manifest.get('format')} != {FORMAT}: {_rebuild_hint(index_dir)}")
    problem = _manifest_problem(manifest)
    if problem:
        raise IndexError_(f"index manifest {folder / 'manifest.json'} is damaged ({problem}): {_rebuild_hint(index_dir)}")
    for name, digest in manifest.get("files", {}).items():
        p = folder / name
        if not p.is_file() or _sha(p) != digest:
            raise IndexError_(f"index file {p} is missing or corrupt (checksum mismatch): {_rebuild_hint(index_dir)}")
    if expect is not None:
        got, want = manifest["model"], expect["model"]
        if got["id"] != want["id"] or (want["dim"] is not None and got["dim"] != want["dim"]):
            want_dim = "" if want["dim"] is None else f" (dimension {want['dim']})"
            raise StaleIndexError(
                f"{index_dir} was built with model {got['id']!r} (dimension {got['dim']}); the configured model is "
                f"{want['id']!r}{want_dim}: " + _rebuild_hint(index_dir)
            )
        if manifest["chunking"] != expect["chunking"]:
            raise StaleIndexError(
                f"{index_dir} was built with chunking {manifest['chunking']}, configured {expect['chunking']}: "
                + _rebuild_hint(index_dir)
            )
        if manifest["corpus"] != expect["corpus"]:
            changed = sorted(set(manifest["corpus"].items()) ^ set(expect["corpus"].items()))
            names = sorted({n for n, _ in changed})
            raise StaleIndexError(f"corpus changed since the index was built ({', '.join(names)}): " + _rebuild_hint(index_dir))
    try:
        payload = json.loads((folder / "chunks.json").read_text(encoding="utf-8"))
        fidx = faiss.read_index(str(folder / "chunks.faiss"))
        svec = np.load(folder / "sentences.npy", allow_pickle=False)
        vocab = tuple(json.loads((folder / "vocab.json").read_text(encoding="utf-8")))
        vvec = np.load(folder / "vocab.npy", allow_pickle=False)
    except Exception as exc:  # corrupt despite matching checksums is unlikely, but say what to do
        raise IndexError_(f"cannot read index in {folder} ({exc}): {_rebuild_hint(index_dir)}") from None
    chunks = tuple(
        Chunk(c["id"], c["section"], c["source"], tuple(c["path"]), c["text"], c["start"], c["end"], _unruns(c["runs"]))
        for c in payload["chunks"]
    )
    sents = tuple(
        Sentence(s["id"], s["chunk"], s["section"], s["text"], s["start"], s["end"], _unruns(s["runs"]))
        for s in payload["sentences"]
    )
    if fidx.ntotal != len(chunks) or len(svec) != len(sents) or len(vvec) != len(vocab):
        raise IndexError_(f"index in {folder} is inconsistent (vector and chunk counts differ): {_rebuild_hint(index_dir)}")
    return IndexData(
        manifest, chunks, sents,
        tuple(tuple(c["tokens"]) for c in payload["chunks"]),
        tuple(tuple(s["tokens"]) for s in payload["sentences"]),
        fidx, svec, folder, vocab, vvec,
    )
