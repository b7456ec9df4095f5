"""`python -m app bench --scale`: many reports — the build on one process vs. a local Dask cluster,
and the generated corpus at ×10/×100/×1000 reports as real indexes on disk.

    build    the generated corpus of `--build-reports` (default 10) full reports, built three ways with
             the real model: one process with one torch thread, one process with every core (the best
             single-process rate here), and `build_distributed` on a LocalCluster of 2 workers × 1
             thread (cluster start and each worker's model load included; the shard phase alone too)
    scale    per factor N: N generated reports read, sectioned, chunked and tokenised for real;
             their vectors are the build's real e5 vectors of the same position in report N mod B,
             plus noise (encoding ×1000 reports on 2 cores would take hours: see the build rates),
             written with the app's own writer, so the index kind is chosen by size as in a real
             build; then disk size, open time, the chunk index's memory per million chunks and
             recall@10 against exact search (real question vectors), and whole `ask()` p50/p95
             without and with a filter (one report's region and year)
    kinds    every vector index kind over the largest factor's vectors: bytes per vector → GB per
             million chunks, recall@10 against exact search, query time

Results: eval/results/bench-scale.json and a table. Timings are as good as the machine is quiet:
the load average before and after is recorded.
"""

from __future__ import annotations

import functools
import gc
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from .config import ROOT

__all__ = ["main"]

RESULTS = ROOT / "eval" / "results"
NOISE = 0.02  # as the single-report bench: a noisy copy's median cosine to its original ≈ 0.93
SEED = 20250120


def _rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _dir_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 2**20


def _texts(folder: Path) -> int:
    m = json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8"))
    vocab = json.loads((Path(folder) / "vocab.json").read_text(encoding="utf-8"))
    return m["counts"]["chunks"] + m["counts"]["sentences"] + len(vocab)


def measure_build(corpus: Path, work: Path, workers: int, say, backend: str = "auto") -> dict:
    """The same corpus built three ways; rates in texts (chunks + sentences + vocabulary words) per second."""
    from .chunking import ChunkSettings
    from .distributed import build_distributed
    from .embedder import make_embedder
    from .index import build_index

    chunk = ChunkSettings()
    out: dict = {"workers": workers}
    for name, threads in (("single_1_thread", 1), ("single_all_cores", None)):
        emb = make_embedder(backend=backend, threads=threads)
        emb.embed_documents(["预热"])  # the model is loaded before the clock starts
        say(f"build: one process, {threads or 'all'} thread(s)")
        t = time.perf_counter()
        folder, _ = build_index(corpus, work / name, emb, chunk)
        secs = time.perf_counter() - t
        out[name] = {"seconds": secs, "texts": _texts(folder), "texts_per_s": _texts(folder) / secs}
        del emb
        gc.collect()
    say(f"build: Dask LocalCluster, {workers} workers × 1 thread")
    t = time.perf_counter()
    rep = build_distributed(corpus, work / "dask", functools.partial(make_embedder, backend=backend, threads=1), chunk,
                            workers=workers)
    secs = time.perf_counter() - t
    n = _texts(rep.folder)
    out["dask"] = {"seconds": secs, "texts": n, "texts_per_s": n / secs, "phases": rep.seconds,
                   "shard_phase_texts_per_s": (n - len(json.loads((rep.folder / "vocab.json").read_text()))) /
                   rep.seconds["shards"]}
    one, best, dask = (out[k]["texts_per_s"] for k in ("single_1_thread", "single_all_cores", "dask"))
    out["speedup_vs_one_thread"] = dask / one
    out["vs_best_single"] = dask / best
    return out


def _base_vectors(folder: Path):
    """The real build's vectors, per document: [(chunk vectors, sentence vectors)]."""
    from .index import load_index

    data = load_index(folder)
    cvec = data.faiss_index.reconstruct_n(0, data.faiss_index.ntotal)
    svec = np.asarray(data.sentence_vectors)
    per_doc = [(cvec[d.chunks[0]:d.chunks[1]], svec[d.sentences[0]:d.sentences[1]]) for d in data.documents]
    return per_doc, list(data.vocab), np.asarray(data.vocab_vectors), data.manifest["model"]["id"]


def _noisy(rows: np.ndarray, n: int, rng) -> np.ndarray:
    idx = np.minimum(np.arange(n), len(rows) - 1)
    x = rows[idx] + rng.normal(0.0, NOISE, (n, rows.shape[1])).astype(np.float32)
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _questions() -> list[tuple[str, dict]]:
    from .multieval import QUESTIONS, load

    qs = [(q["question"], q["filters"]) for q in load(QUESTIONS)]
    return qs


def _recall(index, cvec: np.ndarray, qvecs: np.ndarray, k: int = 10) -> float:
    """recall@k against exact search; ties are judged on the *exact* scores of what was found
    (a quantised index's own scores are approximate and could make a wrong id look tied)."""
    import faiss

    from .bench import recall_at_k

    exact = faiss.IndexFlatIP(cvec.shape[1])
    exact.add(cvec)
    D0, I0 = exact.search(qvecs, k)
    _, I1 = index.search(qvecs, k)
    D1 = np.where(I1 >= 0, np.einsum("qkd,qd->qk", cvec[np.maximum(I1, 0)], qvecs), -np.inf)
    return recall_at_k(I1, I0, k, found_scores=D1, reference_scores=D0)


def measure_scale(n_reports: int, work: Path, base, qvecs: np.ndarray, embedder, say) -> dict:
    from .bench import percentile
    from .chunking import ChunkSettings
    from .corpus import load_corpus
    from .engine import Engine
    from .index import document_part, expected_manifest, join_parts, load_index, write_build
    from .synth import write_corpus
    from .vectors import kind_of, memory_bytes

    per_doc, vocab, vvec, model_id = base
    rng = np.random.default_rng(SEED + n_reports)
    corpus = work / f"corpus-{n_reports}"
    t = time.perf_counter()
    write_corpus(corpus, n_reports)
    docs, _ = load_corpus(corpus)
    parts = [document_part(d, ChunkSettings()) for d in docs]
    chunks, sents, ctoks, stoks, entries, _words = join_parts(parts)
    prep_s = time.perf_counter() - t
    cvec = np.concatenate([_noisy(per_doc[j % len(per_doc)][0], len(p.chunks), rng) for j, p in enumerate(parts)])
    svec = np.concatenate([_noisy(per_doc[j % len(per_doc)][1], len(p.sentences), rng) for j, p in enumerate(parts)])
    say(f"×{n_reports}: {len(chunks):,} chunks, {len(sents):,} sentences; writing the index")
    t = time.perf_counter()
    index_dir = work / f"index-{n_reports}"
    index_dir.mkdir(parents=True, exist_ok=True)
    manifest = expected_manifest(docs, model_id, int(cvec.shape[1]), ChunkSettings())
    counts = {"files": len(docs), "sections": sum(p.n_sections for p in parts), "chunks": len(chunks),
              "sentences": len(sents)}
    folder = write_build(index_dir, manifest, counts, chunks, sents, ctoks, stoks, cvec, svec, vocab, vvec, entries)
    write_s = time.perf_counter() - t
    del parts, chunks, sents, ctoks, stoks
    gc.collect()
    rss0 = _rss_mib()
    t = time.perf_counter()
    data = load_index(index_dir)
    eng = Engine(data, embedder)
    open_s = time.perf_counter() - t
    rss_open = _rss_mib() - rss0
    index = data.faiss_index
    kind = kind_of(index)
    recall = _recall(index, cvec, qvecs)
    idx_bytes = memory_bytes(index)
    questions = _questions()
    for q, _f in questions[:5]:
        eng.ask(q)
    plain, filtered = [], []
    for i, (q, _f) in enumerate(questions):
        t = time.perf_counter()
        eng.ask(q)
        plain.append((time.perf_counter() - t) * 1000)
        d = entries[(i * 7919) % len(entries)]
        t = time.perf_counter()
        a = eng.ask(q, filters={"region": d.meta.region, "year": d.meta.year})
        filtered.append((time.perf_counter() - t) * 1000)
        assert all(p.source == d.source for p in a.passages), "a filtered ask() showed another report"
    out = {
        "reports": n_reports, "chunks": len(cvec), "sentences": len(svec), "prepare_s": prep_s, "write_s": write_s,
        "index_kind": kind, "disk_mib": _dir_mib(folder), "open_s": open_s, "open_rss_mib": rss_open,
        "vector_index_mib": idx_bytes / 2**20, "vector_index_mib_per_million_chunks": idx_bytes / len(cvec) * 1e6 / 2**20,
        "sentence_vectors_mib_per_million_chunks": svec.nbytes / len(cvec) * 1e6 / 2**20,
        "recall@10": recall, "questions": len(questions),
        "ask_p50_ms": percentile(plain, 50), "ask_p95_ms": percentile(plain, 95),
        "ask_filtered_p50_ms": percentile(filtered, 50), "ask_filtered_p95_ms": percentile(filtered, 95),
    }
    del eng, data
    gc.collect()
    return out, cvec


def measure_kinds(cvec: np.ndarray, qvecs: np.ndarray, say) -> list[dict]:
    import faiss

    from .vectors import make_index, memory_bytes

    rows = []
    for kind in ("flat", "hnsw", "ivf-sq8", "ivf-pq"):
        if kind.startswith("ivf") and len(cvec) < (20_000 if kind == "ivf-pq" else 2_000):
            continue  # too few vectors to train its quantiser (FAISS wants ~40 points per centroid)
        say(f"kinds: {kind} over {len(cvec):,} vectors")
        t = time.perf_counter()
        index = make_index(cvec, kind)
        build_s = time.perf_counter() - t
        faiss.omp_set_num_threads(1)
        t = time.perf_counter()
        for q in qvecs:
            index.search(q[None, :], 10)
        ms = (time.perf_counter() - t) / len(qvecs) * 1000
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        b = memory_bytes(index)
        rows.append({"kind": kind, "vectors": len(cvec), "build_s": build_s, "bytes_per_vector": b / len(cvec),
                     "gib_per_million": b / len(cvec) * 1e6 / 2**30, "gib_at_10_million": b / len(cvec) * 1e7 / 2**30,
                     "recall@10": _recall(index, cvec, qvecs), "query_ms": ms})
        del index
        gc.collect()
    return rows


def _table(result: dict) -> str:
    b = result.get("build")
    lines = []
    if b:
        lines += ["| build (generated corpus, %d reports, %d texts) | seconds | texts/s |" % (
            result["build_reports"], b["dask"]["texts"]), "|---|---|---|"]
        for k, label in (("single_1_thread", "one process, 1 torch thread"),
                         ("single_all_cores", "one process, all cores"),
                         ("dask", f"Dask LocalCluster, {b['workers']} workers × 1 thread (start + model loads incl.)")):
            lines.append(f"| {label} | {b[k]['seconds']:.1f} | {b[k]['texts_per_s']:.1f} |")
        lines.append(f"| Dask shard phase only | {b['dask']['phases']['shards']:.1f} | "
                     f"{b['dask']['shard_phase_texts_per_s']:.1f} |")
        lines.append(f"\nDask vs one thread: ×{b['speedup_vs_one_thread']:.2f}; vs the best single process: "
                     f"{b['vs_best_single']:.2f}\n")
    cols = ["reports", "chunks", "index_kind", "disk_mib", "open_s", "vector_index_mib_per_million_chunks",
            "recall@10", "ask_p50_ms", "ask_p95_ms", "ask_filtered_p50_ms", "ask_filtered_p95_ms"]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in result["scales"]:
        lines.append("| " + " | ".join(f"{r[c]:.3g}" if isinstance(r[c], float) else f"{r[c]:,}" if isinstance(
            r[c], int) else str(r[c]) for c in cols) + " |")
    if result.get("kinds"):
        cols = ["kind", "vectors", "bytes_per_vector", "gib_per_million", "gib_at_10_million", "recall@10", "query_ms",
                "build_s"]
        lines += ["", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in result["kinds"]:
            lines.append("| " + " | ".join(f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def main(args, settings) -> int:
    from .bench import parse_scales
    from .embedder import make_embedder
    from .synth import write_corpus

    say = lambda m: print(f"bench --scale: {m}", flush=True)  # noqa: E731
    scales = parse_scales(getattr(args, "scales", None) or "10,100,1000")
    build_reports = int(getattr(args, "build_reports", None) or 10)
    out_dir = Path(args.out) if getattr(args, "out", None) else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    result: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "loadavg_before": os.getloadavg(),
                    "cpus": os.cpu_count(), "build_reports": build_reports, "noise": NOISE}
    try:
        base_corpus = work / "build-corpus"
        write_corpus(base_corpus, build_reports)
        result["build"] = measure_build(base_corpus, work / "builds", 2, say, settings.backend)
        if getattr(args, "only_build", False):
            scales = []
        base = _base_vectors(work / "builds" / "single_all_cores")
        embedder = make_embedder(settings.model, settings.backend)
        qs = [q for q, _ in _questions()]
        qvecs = embedder.embed_queries(qs)
        result["scales"] = []
        result["kinds"] = []
        largest = None
        for n in scales:
            row, cvec = measure_scale(n, work, base, qvecs, embedder, say)
            result["scales"].append(row)
            say(json.dumps(row, ensure_ascii=False))
            largest = cvec
            shutil.rmtree(work / f"corpus-{n}", ignore_errors=True)
        if largest is not None:
            result["kinds"] = measure_kinds(largest, qvecs, say)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["loadavg_after"] = os.getloadavg()
    name = "bench-scale-build.json" if getattr(args, "only_build", False) else "bench-scale.json"
    (out_dir / name).write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    print(_table(result))
    print(f"load average before {result['loadavg_before']}, after {result['loadavg_after']} (2 cores)")
    return 0

