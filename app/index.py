"""Build, save and load the retrieval index (FAISS + JSON + NumPy; never pickle).

Layout of `index/`:

    CURRENT                 name of the live build folder (swapped atomically with os.replace)
    build-<stamp>/
        manifest.json       format, model id + dim, chunk settings, corpus file hashes, file hashes
        chunks.json         sections, chunks, sentences (text, path, offsets), BM25 tokens
        chunks.faiss        chunk vectors, inner product on L2-normalised rows = cosine
        sentences.npy       sentence vectors (float32, loaded with allow_pickle=False)
        vocab.json, vocab.npy   the report's own words and their vectors, for the word bridge (bridge.py)
        documents.json      one entry per document in index order: source file, metadata (docmeta.py),
                            and the ranges of chunk and sentence ids it holds (filters use them)
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
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .chunking import Chunk, ChunkSettings, Sentence, chunk_sections
from .corpus import Doc, load_corpus, sections
from .docmeta import DocMeta
from .embedder import Embedder
from .errors import CorpusError, IndexError_, StaleIndexError

__all__ = ["FORMAT", "HNSW_THRESHOLD", "DocPart", "DocumentEntry", "IndexData", "build_index", "chunk_row",
           "document_part", "expected_manifest", "finish_build", "join_parts", "load_index", "make_faiss", "new_build",
           "sentence_row", "write_build", "write_chunks_json", "write_small_files"]

FORMAT = 3  # 2: the word-bridge vocabulary; 3: documents.json (metadata and id ranges per document)
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
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
        say(f"{len(docs)} file(s), {n_secs} sections, {len(chunks)} chunks, {len(sents)} sentences")
        t0 = time.perf_counter()
        cvec = embedder.embed_documents([chunk_text(c) for c in chunks], **({"progress": True} if show_bar else {}))
        svec = embedder.embed_documents([sentence_text(s, chunks[s.chunk]) for s in sents],
                                        **({"progress": True} if show_bar else {}))
        vocab = top_vocabulary(words)
        vvec = embedder.embed_queries(vocab) if vocab else np.zeros((0, cvec.shape[1]), dtype=np.float32)
        say(f"embedded {len(chunks) + len(sents)} texts and {len(vocab)} words in {time.perf_counter() - t0:.1f}s")
        manifest = expected_manifest(docs, embedder.model_id, int(cvec.shape[1]), chunk)
        counts = {"files": len(docs), "sections": n_secs, "chunks": len(chunks), "sentences": len(sents)}
        final = write_build(index_dir, manifest, counts, chunks, sents, chunk_tokens, sent_tokens, cvec, svec,
                            vocab, vvec, entries)
        return final, errors


def chunk_row(c: Chunk, tokens) -> dict:
    return {"id": c.id, "section": c.section, "source": c.source, "path": list(c.path), "text": c.text,
            "start": c.start, "end": c.end, "runs": _runs(c.offsets), "tokens": list(tokens)}


def sentence_row(s: Sentence, tokens) -> dict:
    return {"id": s.id, "chunk": s.chunk, "section": s.section, "text": s.text, "start": s.start, "end": s.end,
            "runs": _runs(s.offsets), "tokens": list(tokens)}


def write_chunks_json(path: Path, chunk_rows: Iterable[dict], sentence_rows: Iterable[dict]) -> None:
    """chunks.json, written a record at a time (a distributed merge streams its shards through here)."""
    with open(path, "w", encoding="utf-8") as f:
        for key, rows in (("chunks", chunk_rows), ("sentences", sentence_rows)):
            f.write(('{"' if key == "chunks" else ', "') + key + '": [')
            for i, row in enumerate(rows):
                f.write((", " if i else "") + json.dumps(row, ensure_ascii=False))
            f.write("]")
        f.write("}")


def new_build(index_dir: Path) -> Path:
    """A fresh temporary build folder inside ``index_dir`` (the caller holds the index lock)."""
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    tmp = Path(index_dir) / f".tmp-{stamp}"
    tmp.mkdir()
    return tmp


def finish_build(index_dir: Path, tmp: Path, manifest: dict, counts: dict) -> Path:
    """Hash the build's files into its manifest, make it current with an atomic switch, and remove
    older builds. On any error the temporary folder is removed and the previous build stays."""
    try:
        manifest = dict(
            manifest, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), counts=counts,
            files={n: _sha(tmp / n) for n in INDEX_FILES},
        )
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
        stamp = tmp.name.removeprefix(".tmp-")
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
    return final


INDEX_FILES = ("chunks.faiss", "sentences.npy", "chunks.json", "vocab.json", "vocab.npy", "documents.json")


def write_small_files(tmp: Path, vocab: Sequence[str], vvec: np.ndarray, documents: Sequence[DocumentEntry]) -> None:
    np.save(tmp / "vocab.npy", np.asarray(vvec, dtype=np.float32), allow_pickle=False)
    (tmp / "vocab.json").write_text(json.dumps(list(vocab), ensure_ascii=False), encoding="utf-8")
    (tmp / "documents.json").write_text(json.dumps([d.to_dict() for d in documents], ensure_ascii=False),
                                        encoding="utf-8")


def write_build(index_dir: Path, manifest: dict, counts: dict, chunks: Sequence[Chunk], sents: Sequence[Sentence],
                chunk_tokens, sent_tokens, cvec: np.ndarray, svec: np.ndarray, vocab: Sequence[str],
                vvec: np.ndarray, documents: Sequence[DocumentEntry]) -> Path:
    """Write one build folder (FAISS, vectors, JSON, manifest with every file's sha256), make it
    current with an atomic switch, and remove older builds. The caller holds the index lock."""
    import faiss

    tmp = new_build(index_dir)
    try:
        faiss.write_index(make_faiss(cvec), str(tmp / "chunks.faiss"))
        np.save(tmp / "sentences.npy", svec, allow_pickle=False)
        write_small_files(tmp, vocab, vvec, documents)
        write_chunks_json(tmp / "chunks.json", (chunk_row(c, t) for c, t in zip(chunks, chunk_tokens)),
                          (sentence_row(s, t) for s, t in zip(sents, sent_tokens)))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return finish_build(index_dir, tmp, manifest, counts)


def _rebuild_hint(index_dir: Path) -> str:
    return f"run `python -m app index` (index folder: {index_dir})"


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
    if manifest.get("format") != FORMAT:
        raise StaleIndexError(f"index format {manifest.get('format')} != {FORMAT}: {_rebuild_hint(index_dir)}")
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
        documents = tuple(DocumentEntry.from_dict(d)
                          for d in json.loads((folder / "documents.json").read_text(encoding="utf-8")))
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
        fidx, svec, folder, vocab, vvec, documents,
    )
