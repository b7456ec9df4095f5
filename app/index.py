"""Build, save and load the retrieval index (FAISS + JSON + NumPy; never pickle).

Layout of `index/`:

    CURRENT                 name of the live build folder (swapped atomically with os.replace)
    build-<stamp>/
        manifest.json       format, model id + dim + backend, chunk settings, corpus file hashes, file hashes
        chunks.json         chunks and sentences (text, path, offsets as runs)
        tokens.json         their BM25 tokens (read only when asked for: BM25 itself is stored below)
        chunks.faiss        chunk vectors, inner product on L2-normalised rows = cosine
        sentences.npy       sentence vectors (float32, loaded with allow_pickle=False)
        vocab.json, vocab.npy   the report's own words and their vectors, for the word bridge (bridge.py)
        bm25-chunks/        bm25s's own save format (JSON vocab + params, .npy CSC matrix), loaded
        bm25-sentences/     memory-mapped, so opening a large index does no re-indexing
        documents.json      one entry per document in index order: source file, metadata (docmeta.py),
                            and the ranges of chunk and sentence ids it holds (filters use them)
    .lock                   held while building, so two builds never interleave

A build writes a new folder and only then points CURRENT at it, so a crash mid-build
leaves the previous index loadable. Loading checks every file's sha256 against the
manifest, and the manifest against the configured model, backend and corpus (an int8 and an
fp32 encoder put vectors in slightly different places, so switching backend rebuilds).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .chunking import Chunk, ChunkSettings, Sentence, chunk_sections
from .corpus import Doc, load_corpus, sections
from .docmeta import DocMeta
from .embedder import Embedder
from .errors import CorpusError, IndexError_, StaleIndexError

__all__ = ["FORMAT", "HNSW_THRESHOLD", "DocPart", "DocumentEntry", "IndexData", "bm25_model", "build_index",
           "document_part", "expected_manifest", "finish_build", "join_parts", "load_index", "make_faiss", "new_build",
           "write_build", "write_files"]

# 2: the word-bridge vocabulary; 3: BM25 stored (bm25s), tokens.json, the encoder backend in the manifest;
# 4: documents.json (metadata and id ranges per document)
FORMAT = 4
BM25_DIRS = ("bm25-chunks", "bm25-sentences")
# Above this many vectors an approximate HNSW index replaces exact search (see `app bench`).
HNSW_THRESHOLD = 50_000


@dataclass(frozen=True)
class IndexData:
    manifest: dict
    chunks: tuple[Chunk, ...]
    sentences: tuple[Sentence, ...]
    chunk_tokens: Sequence[tuple[str, ...]]  # LazyTokens when loaded: parsed on first use
    sentence_tokens: Sequence[tuple[str, ...]]
    faiss_index: object
    sentence_vectors: np.ndarray
    folder: Path
    vocab: tuple[str, ...] = ()
    vocab_vectors: np.ndarray | None = None
    bm25_chunks: object = None  # bm25s.BM25 over chunk_tokens (memory-mapped), None if not stored
    bm25_sentences: object = None  # the same over sentence_tokens
    documents: tuple["DocumentEntry", ...] = ()  # in index order; each names its chunk and sentence id ranges

    def document(self, source: str) -> "DocumentEntry | None":
        by = self.__dict__.get("_by_source")
        if by is None:
            by = {d.source: d for d in self.documents}
            object.__setattr__(self, "_by_source", by)  # a cache of the field above, not state
        return by.get(source)


@dataclass(frozen=True)
class DocumentEntry:
    """One document of an index: its file, what report it is, and where its ids lie."""

    source: str
    meta: DocMeta
    chunks: tuple[int, int]  # chunk ids [start, end)
    sentences: tuple[int, int]  # sentence ids [start, end)

    def to_dict(self) -> dict:
        return {"source": self.source, **self.meta.to_dict(), "chunks": list(self.chunks),
                "sentences": list(self.sentences)}

    @classmethod
    def from_dict(cls, d: dict) -> "DocumentEntry":
        return cls(d["source"], DocMeta.from_dict(d), tuple(d["chunks"]), tuple(d["sentences"]))


@dataclass(frozen=True)
class DocPart:
    """One document read, sectioned, chunked and tokenised — ids local to it (0-based). The unit a
    build works in: the single-process build joins them, the distributed build (distributed.py)
    makes one per task and writes it to a shard."""

    source: str
    meta: DocMeta
    n_sections: int
    chunks: tuple[Chunk, ...]
    sentences: tuple[Sentence, ...]
    chunk_tokens: tuple[tuple[str, ...], ...]
    sentence_tokens: tuple[tuple[str, ...], ...]
    words: dict = field(default_factory=dict)  # vocabulary counts (bridge.vocabulary_counts)

    def texts(self) -> list[str]:
        """What the model embeds, chunks first, then sentences."""
        return [chunk_text(c) for c in self.chunks] + [sentence_text(s, self.chunks[s.chunk]) for s in self.sentences]


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _bm25s():
    """bm25s without numba and scipy: it imports both for optional backends this app does not use
    (scores come from `get_scores`, plain NumPy; the matrix is built with its NumPy CSC builder);
    numba alone is about half a second of a CLI question's cold start."""
    from .imports import import_without

    return import_without("bm25s", ("numba", "scipy"))


def bm25_model(token_lists):
    """A bm25s index over token lists (an empty document gets a placeholder token)."""
    model = _bm25s().BM25(backend="numpy", csc_backend="numpy")
    model.index([list(t) or ["∅"] for t in token_lists], show_progress=False)
    return model


def _bm25_load(folder: Path):
    return _bm25s().BM25.load(str(folder), mmap=True, show_progress=False)


def chunk_text(c: Chunk) -> str:
    """What the model embeds for a chunk: its breadcrumb, then its text."""
    return f"{c.breadcrumb}\n{c.text}"


def sentence_text(s: Sentence, chunk: Chunk) -> str:
    return f"{chunk.path[-1]}：{s.text}"


def make_faiss(vectors: np.ndarray, hnsw_threshold: int = HNSW_THRESHOLD, kind: str | None = None):
    """The chunk index for these vectors, its kind chosen by their number (vectors.py); above
    ``hnsw_threshold`` at least HNSW (a test can force the approximate kind on small data)."""
    from .vectors import choose_kind, make_index

    n = len(vectors)
    if kind is None:
        kind = choose_kind(n)
        if kind == "flat" and n > hnsw_threshold:
            kind = "hnsw"
    return make_index(vectors, kind)


def expected_manifest(docs: list[Doc], model_id: str, dim: int | None, chunk: ChunkSettings, *,
                      backend: str | None = None) -> dict:
    return {
        "format": FORMAT,
        "model": {"id": model_id, "dim": dim, "backend": backend},
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


class LazyTokens(Sequence):
    """The token lists of tokens.json, parsed on first use.

    BM25 is stored ready-made, so a question never needs them; parsing them (at ×1000, 20
    million strings) was the largest step of opening a large index. Rebuilding BM25 and the
    bench's synthetic data read them.
    """

    def __init__(self, path: Path, key: str) -> None:
        self._path, self._key, self._data = path, key, None

    def _all(self) -> tuple[tuple[str, ...], ...]:
        if self._data is None:
            import orjson

            self._data = tuple(tuple(t) for t in orjson.loads(self._path.read_bytes())[self._key])
        return self._data

    def __len__(self) -> int:
        return len(self._all())

    def __getitem__(self, i):
        return self._all()[i]

    def __iter__(self):
        return iter(self._all())


class RunOffsets(Sequence[int]):
    """A text's per-character file offsets, read from its runs without expanding them.

    Loading a large index builds one of these per chunk and sentence instead of an array of
    every offset (at ×1000: 400,000 arrays, 60 million integers). Indexing is a binary search
    over the runs; iteration walks them.
    """

    __slots__ = ("_runs", "_n")

    def __init__(self, runs: list[list[int]]) -> None:
        self._runs = runs
        self._n = sum(r[2] for r in runs)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(f"offset index {i} out of range for {self._n} characters")
        start, offset, _n = self._runs[bisect_right(self._runs, i, key=lambda r: r[0]) - 1]
        return offset + i - start

    def __iter__(self):
        for _start, offset, n in self._runs:
            yield from range(offset, offset + n)

    def __eq__(self, other) -> bool:
        try:
            return len(other) == self._n and all(a == b for a, b in zip(self, other))
        except TypeError:
            return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RunOffsets({self._runs!r})"


def document_part(doc: Doc, chunk: ChunkSettings) -> DocPart:
    """Sections, chunks, sentences, BM25 tokens and vocabulary counts of one document. Depends on
    nothing but the document and the settings (the segmenter learns only this document's section
    titles), so any process computes the same part."""
    from .bridge import vocabulary_counts
    from .textnorm import document_segmenter, tokenize

    secs = sections(doc)
    chunks, sents = chunk_sections(secs, chunk)
    with document_segmenter().words(p[-1] for p in {s.path for s in secs}) as jb:
        ctoks = tuple(tuple(tokenize(chunk_text(c), jb=jb)) for c in chunks)
        stoks = tuple(tuple(tokenize(s.text, jb=jb)) for s in sents)
        words = vocabulary_counts((c.text for c in chunks), sorted({p for c in chunks for p in c.path}), jb)
    return DocPart(doc.source, doc.meta, len(secs), tuple(chunks), tuple(sents), ctoks, stoks, dict(words))


def join_parts(parts: Iterable[DocPart]):
    """Documents in order → global ids: (chunks, sentences, chunk tokens, sentence tokens, entries, word counts)."""
    chunks: list[Chunk] = []
    sents: list[Sentence] = []
    ctoks: list = []
    stoks: list = []
    entries: list[DocumentEntry] = []
    words: Counter = Counter()
    n_secs = 0
    for p in parts:
        c0, s0 = len(chunks), len(sents)
        chunks.extend(replace(c, id=c.id + c0, section=c.section + n_secs) for c in p.chunks)
        sents.extend(replace(s, id=s.id + s0, chunk=s.chunk + c0, section=s.section + n_secs) for s in p.sentences)
        ctoks.extend(p.chunk_tokens)
        stoks.extend(p.sentence_tokens)
        words.update(p.words)
        n_secs += p.n_sections
        entries.append(DocumentEntry(p.source, p.meta, (c0, len(chunks)), (s0, len(sents))))
    return chunks, sents, ctoks, stoks, entries, words


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

    from .bridge import top_vocabulary

    say = progress or (lambda _msg: None)
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(index_dir / ".lock")):
        docs, errors = load_corpus(corpus_dir)
        for e in errors:
            say(f"skipped: {e}")
        parts = [document_part(d, chunk) for d in docs]
        n_secs = sum(p.n_sections for p in parts)
        chunks, sents, chunk_tokens, sent_tokens, entries, words = join_parts(parts)
        del parts
        say(f"{len(docs)} file(s), {n_secs} sections, {len(chunks)} chunks, {len(sents)} sentences")
        t0 = time.perf_counter()
        # One call for chunks and sentences: one progress bar, and the embedder sorts them all by length.
        texts = [chunk_text(c) for c in chunks] + [sentence_text(s, chunks[s.chunk]) for s in sents]
        vecs = embedder.embed_documents(texts, **({"progress": True} if show_bar else {}))
        cvec, svec = vecs[: len(chunks)], vecs[len(chunks):]
        vocab = top_vocabulary(words)
        vvec = embedder.embed_queries(vocab) if vocab else np.zeros((0, cvec.shape[1]), dtype=np.float32)
        secs_taken = time.perf_counter() - t0
        say(f"embedded {len(texts)} texts and {len(vocab)} words in {secs_taken:.1f}s "
            f"({len(texts) / max(secs_taken, 1e-9):.1f} texts/s)")

        manifest = expected_manifest(docs, embedder.model_id, int(cvec.shape[1]), chunk,
                                     backend=getattr(embedder, "backend", None))
        counts = {"files": len(docs), "sections": n_secs, "chunks": len(chunks), "sentences": len(sents)}
        final = write_build(index_dir, manifest, counts, chunks, sents, chunk_tokens, sent_tokens, cvec, svec,
                            vocab, vvec, entries)
        return final, errors


def write_build(index_dir: Path, manifest: dict, counts: dict, chunks, sents, chunk_tokens, sent_tokens,
                cvec: np.ndarray, svec: np.ndarray, vocab=(), vocab_vectors: np.ndarray | None = None,
                documents: Sequence[DocumentEntry] = ()) -> Path:
    """Write one build folder (FAISS, vectors, JSON, BM25, manifest with every file's sha256), make it
    current with an atomic switch, and remove older builds. The caller holds the index lock."""
    tmp = new_build(index_dir)
    try:
        write_files(tmp, chunks, sents, chunk_tokens, sent_tokens, cvec, svec, vocab, vocab_vectors, documents)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return finish_build(index_dir, tmp, manifest, counts)


def new_build(index_dir: Path) -> Path:
    """A fresh temporary build folder inside ``index_dir`` (the caller holds the index lock)."""
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    tmp = Path(index_dir) / f".tmp-{stamp}"
    tmp.mkdir()
    return tmp


def write_files(tmp: Path, chunks, sents, chunk_tokens, sent_tokens, cvec: np.ndarray, svec: np.ndarray, vocab=(),
                vocab_vectors: np.ndarray | None = None, documents: Sequence[DocumentEntry] = ()) -> None:
    """Every file of a build into ``tmp``. ``cvec``/``svec`` may be memory-mapped (a distributed build
    streams them from its shards): FAISS adds them in batches, `np.save` copies them through."""
    import faiss
    import orjson

    faiss.write_index(make_faiss(cvec), str(tmp / "chunks.faiss"))
    np.save(tmp / "sentences.npy", svec, allow_pickle=False)
    if vocab_vectors is None:
        vocab_vectors = np.zeros((0, svec.shape[1]), dtype=np.float32)
    np.save(tmp / "vocab.npy", np.asarray(vocab_vectors, dtype=np.float32), allow_pickle=False)
    (tmp / "vocab.json").write_text(json.dumps(list(vocab), ensure_ascii=False), encoding="utf-8")
    (tmp / "documents.json").write_text(json.dumps([d.to_dict() for d in documents], ensure_ascii=False),
                                        encoding="utf-8")
    payload = {
        "chunks": [
            {"id": c.id, "section": c.section, "source": c.source, "path": list(c.path), "text": c.text,
             "start": c.start, "end": c.end, "runs": _runs(c.offsets)}
            for c in chunks
        ],
        "sentences": [
            {"id": s.id, "chunk": s.chunk, "section": s.section, "text": s.text, "start": s.start,
             "end": s.end, "runs": _runs(s.offsets)}
            for s in sents
        ],
    }
    (tmp / "chunks.json").write_bytes(orjson.dumps(payload))
    del payload
    (tmp / "tokens.json").write_bytes(orjson.dumps({"chunks": [list(t) for t in chunk_tokens],
                                                    "sentences": [list(t) for t in sent_tokens]}))
    for name, tokens in zip(BM25_DIRS, (chunk_tokens, sent_tokens)):
        bm25_model(tokens).save(str(tmp / name), show_progress=False)


def finish_build(index_dir: Path, tmp: Path, manifest: dict, counts: dict) -> Path:
    """Hash the build's files into its manifest, make it current with an atomic switch, and remove
    older builds. On any error the temporary folder is removed and the previous build stays."""
    try:
        manifest = dict(
            manifest, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), counts=counts,
            files={p.relative_to(tmp).as_posix(): _sha(p) for p in sorted(tmp.rglob("*")) if p.is_file()},
        )
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
        stamp = tmp.name.removeprefix(".tmp-")
        final = Path(index_dir) / f"build-{stamp}"
        os.replace(tmp, final)
        pointer = Path(index_dir) / f".CURRENT-{stamp}"
        pointer.write_text(final.name)
        os.replace(pointer, Path(index_dir) / "CURRENT")  # the atomic switch
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in Path(index_dir).iterdir():  # old builds, crashed temp folders and pointer files
        if old.is_dir() and old != final and (old.name.startswith("build-") or old.name.startswith(".tmp-")):
            shutil.rmtree(old, ignore_errors=True)
        elif old.is_file() and old.name.startswith(".CURRENT-"):
            old.unlink(missing_ok=True)
    return final


def _rebuild_hint(index_dir: Path) -> str:
    return f"run `python -m app index` (index folder: {index_dir})"


def _manifest_problem(m: object, folder: Path) -> str | None:
    """What is wrong with a manifest's shape (None when nothing is): a damaged manifest is rebuilt,
    never half-read, and every file of the build must have a checksum, so none is read unchecked."""
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
    if not (isinstance(files, dict) and all(isinstance(v, str) for v in files.values())):
        return '"files" is not an object of checksums'
    unlisted = sorted(n for n in (p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
                      if n != "manifest.json" and n not in files)
    if unlisted:
        return f'"files" has no checksum for {", ".join(unlisted[:3])}'
    return None


def load_index(index_dir: Path, expect: dict | None = None, *, timings: dict | None = None) -> IndexData:
    """Load the current build; raise IndexError_/StaleIndexError with the command that fixes it.

    ``expect`` is `expected_manifest(...)` for the configured model and corpus; with
    ``dim`` None the dimension is not checked (the model has not been loaded yet). The manifest
    is checked first (a stale index fails before any file is hashed), then every file's sha256,
    two files at a time. Sentence vectors and BM25 matrices are memory-mapped. ``timings``, if
    given, receives the seconds each step took (for `app bench`).
    """
    import faiss
    import orjson

    t = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal t
        if timings is not None:
            now = time.perf_counter()
            timings[step] = timings.get(step, 0.0) + now - t
            t = now

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
    problem = _manifest_problem(manifest, folder)
    if problem:
        raise IndexError_(f"index manifest {folder / 'manifest.json'} is damaged ({problem}): {_rebuild_hint(index_dir)}")
    if expect is not None:
        got, want = manifest["model"], expect["model"]
        if got["id"] != want["id"] or (want["dim"] is not None and got["dim"] != want["dim"]):
            want_dim = "" if want["dim"] is None else f" (dimension {want['dim']})"
            raise StaleIndexError(
                f"{index_dir} was built with model {got['id']!r} (dimension {got['dim']}); the configured model is "
                f"{want['id']!r}{want_dim}: " + _rebuild_hint(index_dir)
            )
        if got.get("backend") != want.get("backend"):
            b = str(got.get("backend"))
            other = f" (or pass --backend {'onnx-fp32' if b.startswith('onnx-fp32') else b.split('-')[0]})" \
                if got.get("backend") else ""
            raise StaleIndexError(
                f"{index_dir} was built with the {got.get('backend')!r} encoder, the configured one is "
                f"{want.get('backend')!r} (their vectors differ slightly): " + _rebuild_hint(index_dir) + other
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
    lap("manifest")
    _verify(folder, manifest.get("files", {}), index_dir)
    lap("checksums")
    try:
        payload = orjson.loads((folder / "chunks.json").read_bytes())  # 3–4× json's speed on a large index
        lap("chunks.json")
        fidx = faiss.read_index(str(folder / "chunks.faiss"))
        lap("faiss")
        svec = np.load(folder / "sentences.npy", allow_pickle=False, mmap_mode="r")
        vocab = tuple(json.loads((folder / "vocab.json").read_text(encoding="utf-8")))
        vvec = np.load(folder / "vocab.npy", allow_pickle=False)
        documents = tuple(DocumentEntry.from_dict(d)
                          for d in json.loads((folder / "documents.json").read_text(encoding="utf-8")))
        bm25 = [_bm25_load(folder / n) if (folder / n).is_dir() else None for n in BM25_DIRS]
        lap("vectors, vocabulary, bm25 (mapped)")
    except Exception as exc:  # corrupt despite matching checksums is unlikely, but say what to do
        raise IndexError_(f"cannot read index in {folder} ({exc}): {_rebuild_hint(index_dir)}") from None
    chunks = tuple(
        Chunk(c["id"], c["section"], c["source"], tuple(c["path"]), c["text"], c["start"], c["end"], RunOffsets(c["runs"]))
        for c in payload["chunks"]
    )
    sents = tuple(
        Sentence(s["id"], s["chunk"], s["section"], s["text"], s["start"], s["end"], RunOffsets(s["runs"]))
        for s in payload["sentences"]
    )
    if fidx.ntotal != len(chunks) or len(svec) != len(sents) or len(vvec) != len(vocab):
        raise IndexError_(f"index in {folder} is inconsistent (vector and chunk counts differ): {_rebuild_hint(index_dir)}")
    data = IndexData(
        manifest, chunks, sents, LazyTokens(folder / "tokens.json", "chunks"),
        LazyTokens(folder / "tokens.json", "sentences"), fidx, svec, folder, vocab, vvec, *bm25, documents,
    )
    lap("chunk and sentence objects")
    return data


def _verify(folder: Path, files: dict, index_dir: Path) -> None:
    """Every file's sha256 against the manifest; hashlib releases the GIL, so two threads use two cores."""
    from concurrent.futures import ThreadPoolExecutor

    def ok(item) -> bool:
        p = folder / item[0]
        return p.is_file() and _sha(p) == item[1]

    items = sorted(files.items(), key=lambda kv: -(folder / kv[0]).stat().st_size if (folder / kv[0]).exists() else 0)
    with ThreadPoolExecutor(max_workers=2) as pool:
        for (name, _), good in zip(items, pool.map(ok, items)):
            if not good:
                raise IndexError_(f"index file {folder / name} is missing or corrupt (checksum mismatch): "
                                  + _rebuild_hint(index_dir))
