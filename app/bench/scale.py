"""Scale: retrieval over ×10, ×100, ×1000 synthetic copies of the report, each in a fresh process.

Per factor f: f noisy copies of every real chunk and sentence vector, BM25 documents recombined
from real sentence tokens, the chunk and sentence records copied with shifted ids; then disk size,
RSS, the `Retriever`'s own dense + BM25 + fusion step, and HNSW recall@10 against exact search.
Encoding that many real texts would take hours on 2 cores, so it is extrapolated from the
measured throughput instead. (Opening such an index from disk and whole `ask()` calls over it
are the `load` phase.)
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..config import Settings
from .common import (NOISE, RECALL_MIN, SCALE_P50_MS, SEED, Figure, child_env, peak_rss_kib, percentile, recall_at_k,
                     run, synthetic_copies, synthetic_documents, synthetic_vectors)

__all__ = ["phase_scale", "recall_probe", "scale_figures", "scale_worker"]


def scale_worker(spec_path: str) -> None:
    """Runs in a fresh process (so RSS and peak memory belong to one scale): see `_phase_scale`."""
    import faiss
    import psutil

    from ..index import bm25_model

    from ..index import HNSW_THRESHOLD, load_index, make_faiss
    from ..retrieval import RetrievalConfig, Retriever
    from ..textnorm import add_words, expand_query, normalize, tokenize

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    f, reps, tmp = int(spec["factor"]), int(spec["reps"]), Path(spec["tmp"])
    rng = np.random.default_rng(spec["seed"])
    data = load_index(Path(spec["index_dir"]))
    add_words(p[-1] for p in {c.path for c in data.chunks})  # as Engine.__init__ does
    tokenize("预热")  # load jieba before the memory baseline
    qvecs = np.load(spec["query_vectors"], allow_pickle=False)
    queries = [(q, expand_query(normalize(q))) for q in spec["queries"]]
    base_c = data.faiss_index.reconstruct_n(0, data.faiss_index.ntotal)
    proc = psutil.Process()
    gc.collect()
    rss0 = proc.memory_info().rss

    t = time.perf_counter()
    cvec = synthetic_vectors(base_c, f, spec["noise"], rng)
    svec = synthetic_vectors(np.asarray(data.sentence_vectors), f, spec["noise"], rng)
    chunks_f, sents_f = synthetic_copies(data.chunks, data.sentences, f)
    chunk_docs = synthetic_documents(data.sentence_tokens, [len(x) for x in data.chunk_tokens] * f, rng)
    sent_docs = synthetic_documents(data.sentence_tokens, [len(x) for x in data.sentence_tokens] * f, rng)
    gen_s = time.perf_counter() - t
    origin_cos = float(np.median(np.sum(cvec[: len(base_c)] * base_c, axis=1)))
    t = time.perf_counter()
    index = make_faiss(cvec)
    faiss_s = time.perf_counter() - t
    del cvec  # the index holds its own copy; the app keeps no other (reconstructed below for recall)
    t = time.perf_counter()
    bm25_c, bm25_s = bm25_model(chunk_docs), bm25_model(sent_docs)
    bm25_build_s = time.perf_counter() - t
    gc.collect()
    rss_delta = proc.memory_info().rss - rss0

    faiss.write_index(index, str(tmp / "chunks.faiss"))
    np.save(tmp / "sentences.npy", svec, allow_pickle=False)
    disk = {n: (tmp / n).stat().st_size for n in ("chunks.faiss", "sentences.npy")}
    for n in disk:
        (tmp / n).unlink()
    json_bytes = (data.folder / "chunks.json").stat().st_size * f  # texts are not synthesised: extrapolated

    # The engine's own retrieval step over the synthetic index (chunks, sentences, both vector sets),
    # with the BM25 models built above.
    retriever = Retriever(replace(data, chunks=tuple(chunks_f), sentences=tuple(sents_f), sentence_vectors=svec,
                                  faiss_index=index), bm25_chunks=bm25_c, bm25_sentences=bm25_s)
    cfg = RetrievalConfig()
    walls, sent_ms, stages = [], [], {}
    for p in range(reps + 1):  # pass 0 warms caches
        for (q, qn), v in zip(queries, qvecs):
            timings: dict[str, float] = {}
            t = time.perf_counter()
            tokens = retriever.search(q, qn, v, cfg, timings).tokens
            wall = time.perf_counter() - t
            t = time.perf_counter()
            if tokens:
                bm25_s.get_scores(list(tokens))  # the answer stage scores every sentence with BM25 too
            sent = time.perf_counter() - t
            if p:
                walls.append(wall * 1000)
                sent_ms.append(sent * 1000)
                for k, x in timings.items():
                    stages.setdefault(k, []).append(x * 1000)
    out = {
        "factor": f, "chunks": index.ntotal, "sentences": len(svec), "noise": spec["noise"],
        "median_cos_to_original": origin_cos, "generate_s": gen_s, "faiss_kind": type(index).__name__,
        "faiss_build_s": faiss_s, "bm25_build_s": bm25_build_s, "rss_delta_bytes": rss_delta,
        "disk_bytes": disk, "chunks_json_bytes_extrapolated": json_bytes, "queries": len(queries), "reps": reps,
        "p50_ms": percentile(walls, 50), "p95_ms": percentile(walls, 95),
        "stage_median_ms": {k: statistics.median(v) for k, v in stages.items()},
        "sentence_bm25_p50_ms": percentile(sent_ms, 50), "hnsw_threshold": HNSW_THRESHOLD,
    }
    if not isinstance(index, faiss.IndexFlat):
        out.update(recall_probe(index, qvecs, min(cfg.candidates, index.ntotal)))
    out["peak_kib"] = peak_rss_kib()
    Path(spec["out"]).write_text(json.dumps(out), encoding="utf-8")


def recall_probe(index, qvecs: np.ndarray, candidates: int) -> dict:
    """Recall@10 of an approximate index against exact search, at its own efSearch and a few larger ones."""
    import faiss

    exact = faiss.IndexFlatIP(index.d)  # vectors are unit length: inner product = cosine
    exact.add(index.reconstruct_n(0, index.ntotal))
    D_ref, I_ref = exact.search(qvecs, 11)
    out: dict = {"gap_10th_11th_median": float(np.median(D_ref[:, 9] - D_ref[:, 10])),
                 "spread_1st_10th_median": float(np.median(D_ref[:, 0] - D_ref[:, 9]))}

    def single_query_p50(idx) -> float:
        ts = []
        for v in qvecs:
            t = time.perf_counter()
            idx.search(v[None, :], candidates)
            ts.append((time.perf_counter() - t) * 1000)
        return percentile(ts, 50)

    out["exact_search_p50_ms"] = single_query_p50(exact)
    hnsw = getattr(index, "hnsw", None)
    if hnsw is None:  # another approximate kind: recall only
        D, I = index.search(qvecs, 10)
        out["recall_at_10"] = recall_at_k(I, I_ref[:, :10], 10, found_scores=D, reference_scores=D_ref[:, :10])
        return out
    configured = hnsw.efSearch
    out["ef_search"] = configured
    sweep = {}
    try:
        for ef in sorted({configured, 256, 512, 1024}):
            hnsw.efSearch = ef
            D, I = index.search(qvecs, 10)
            sweep[ef] = {"recall_at_10": recall_at_k(I, I_ref[:, :10], 10, found_scores=D,
                                                     reference_scores=D_ref[:, :10]),
                         "search_p50_ms": single_query_p50(index)}
    finally:
        hnsw.efSearch = configured
    out["recall_at_10"] = sweep[configured]["recall_at_10"]
    out["ef_sweep"] = sweep
    return out


def phase_scale(settings: Settings, engine, resolved: list[str], factors: list[int], reps: int,
                 texts_per_s: tuple[float, float], say) -> tuple[list[Figure], dict]:
    n_c, n_s = len(engine.data.chunks), len(engine.data.sentences)
    qvecs = engine.embedder.embed_queries(resolved)
    figs: list[Figure] = []
    results = {}
    with tempfile.TemporaryDirectory(prefix="app-bench-scale-") as tmp:
        np.save(Path(tmp) / "queries.npy", qvecs, allow_pickle=False)
        for f in factors:
            spec = {"factor": f, "reps": reps, "tmp": tmp, "seed": SEED + f, "noise": NOISE,
                    "index_dir": str(settings.index_dir), "query_vectors": str(Path(tmp) / "queries.npy"),
                    "queries": resolved, "out": str(Path(tmp) / f"scale-{f}.json")}
            (Path(tmp) / "spec.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
            say(f"scale ×{f}: {n_c * f:,} chunks, {n_s * f:,} sentences …")
            run([sys.executable, "-c", "import sys; from app.bench.scale import scale_worker; scale_worker(sys.argv[1])",
                  str(Path(tmp) / "spec.json")], child_env(settings), f"the ×{f} scale run")
            r = json.loads(Path(spec["out"]).read_text(encoding="utf-8"))
            results[f] = r
            say(f"scale ×{f}: p50 {r['p50_ms']:.1f} ms, {r['faiss_kind']} built in {r['faiss_build_s']:.1f}s"
                + (f", recall@10 {r['recall_at_10']:.3f}" if "recall_at_10" in r else ""))
            figs.extend(scale_figures(r, n_c, n_s, texts_per_s))
    return figs, {str(f): r for f, r in results.items()}


def scale_figures(r: dict, n_c: int, n_s: int, texts_per_s: tuple[float, float]) -> list[Figure]:
    f = r["factor"]
    sec = f"scale ×{f} ({r['chunks']:,} chunks)"
    disk = sum(r["disk_bytes"].values())
    n_q = f"{r['queries']} eval-question vectors × {r['reps']} pass(es) after a warm-up pass"
    figs = [
        Figure(sec, "retrieval p50 (dense + BM25 + fusion)", r["p50_ms"], "ms",
               f"Retriever.search over {r['chunks']:,} synthetic chunks ({r['faiss_kind']}) and "
               f"{r['sentences']:,} sentences: {n_q}; real query vectors, so query encoding is not included",
               at_most=SCALE_P50_MS),
        Figure(sec, "retrieval p95", r["p95_ms"], "ms", "same runs"),
    ]
    for i, (k, v) in enumerate(r["stage_median_ms"].items()):
        figs.append(Figure(sec, f"stage median: {k}", v, "ms", "same runs, Retriever.search's own timings" if i == 0
                           else "same"))
    figs += [
        Figure(sec, "sentence BM25 p50 (answer stage)", r["sentence_bm25_p50_ms"], "ms",
               f"bm25s get_scores over {r['sentences']:,} synthetic sentences, as ask() does for every question"),
        Figure(sec, "index size on disk", disk / 2**20, "MiB",
               f"chunks.faiss {r['disk_bytes']['chunks.faiss'] / 2**20:,.0f} MiB + sentences.npy "
               f"{r['disk_bytes']['sentences.npy'] / 2**20:,.0f} MiB written to a temp folder and measured; "
               f"chunks.json would add ≈{r['chunks_json_bytes_extrapolated'] / 2**20:,.0f} MiB (×{f} the real one, "
               "extrapolated)"),
        Figure(sec, "memory (RSS delta)", r["rss_delta_bytes"] / 2**20, "MiB",
               "psutil RSS of a fresh process after building FAISS, sentence vectors, both BM25 indexes and token "
               "lists, minus before (real index loaded); chunk texts and Chunk objects are not synthesised"),
        Figure(sec, "peak RSS of that process", r["peak_kib"] / 1024, "MiB",
               "VmHWM at the end; includes the exact reference index when recall is measured"),
        Figure(sec, f"FAISS build ({r['faiss_kind']})", r["faiss_build_s"], "s",
               f"make_faiss on {r['chunks']:,} vectors (HNSW above HNSW_THRESHOLD={r['hnsw_threshold']:,})"),
        Figure(sec, "BM25 build (chunks + sentences)", r["bm25_build_s"], "s",
               f"bm25s index of {r['chunks']:,} + {r['sentences']:,} documents recombined from real sentence tokens"),
    ]
    if "recall_at_10" in r:
        ef = f" (efSearch={r['ef_search']})" if "ef_search" in r else ""
        figs.append(Figure(
            sec, f"{r['faiss_kind']} recall@10 vs exact{ef}", r["recall_at_10"], "",
            f"efSearch as make_faiss sets it; top 10 vs IndexFlatIP for {r['queries']} real query vectors "
            f"(ties within 1e-5 count); hard data: median gap between the exact 10th and 11th score is "
            f"{r['gap_10th_11th_median']:.5f}, 1st to 10th {r['spread_1st_10th_median']:.4f}", at_least=RECALL_MIN))
        for e, v in r.get("ef_sweep", {}).items():
            if int(e) != r.get("ef_search"):
                figs.append(Figure(sec, f"diagnostic: recall@10 at efSearch={e}", v["recall_at_10"], "",
                                   f"same queries after hnsw.efSearch={e}; search p50 {v['search_p50_ms']:.2f} ms "
                                   f"(top {min(50, r['chunks'])}, one query at a time)"))
        figs.append(Figure(sec, "exact IndexFlatIP search p50 (for comparison)", r["exact_search_p50_ms"], "ms",
                           f"one query at a time, top {min(50, r['chunks'])}, same vectors"))
    s_tps, c_tps = texts_per_s
    enc = n_c * f / c_tps + n_s * f / s_tps
    figs.append(Figure(sec, "extrapolated encode time of real texts", enc / 60, "min",
                       f"{n_c * f:,} chunks ÷ {c_tps:.1f}/s + {n_s * f:,} sentences ÷ {s_tps:.1f}/s "
                       "(measured throughput above, this machine)"))
    return figs
