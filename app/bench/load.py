"""Load: opening a large index from disk, and whole `ask()` calls over it.

For the largest scale factor F (×1000 by default: ~98,000 chunks, ~312,000 sentences):

1. a worker process writes a real index folder with `index.write_build`, as `python -m app index`
   would: F copies of the report's chunks and sentences (ids shifted, texts shared), noisy copies
   of their vectors, BM25 saved, every file checksummed;
2. a fresh process opens it the way `Engine.open` does, one step at a time and stamped (corpus
   hash, `load_index` with its own step timings, `Engine()` with its parts), then asks eval
   questions through the whole `Engine.ask()` (encoding included).

What the issue calls "open the engine" is steps 2's corpus hash + `load_index` + `Engine()`; the
encoder loads lazily on the first question and is measured under cold start.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..config import Settings
from .common import (NOISE, OPEN_S, SCALE_ASK_P50_MS, SEED, Figure, child_env, last_json, peak_rss_kib, percentile,
                     run, synthetic_copies, synthetic_vectors)

__all__ = ["open_worker", "phase_load", "write_worker"]


def write_worker(spec_path: str) -> None:
    """Write a ×factor index into spec["out_index"] (see the module docstring)."""
    from ..index import load_index, write_build

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    f = int(spec["factor"])
    rng = np.random.default_rng(spec["seed"])
    data = load_index(Path(spec["index_dir"]))
    t = time.perf_counter()
    chunks, sents = synthetic_copies(data.chunks, data.sentences, f)
    cvec = synthetic_vectors(data.faiss_index.reconstruct_n(0, data.faiss_index.ntotal), f, spec["noise"], rng)
    svec = synthetic_vectors(np.asarray(data.sentence_vectors), f, spec["noise"], rng)
    gen_s = time.perf_counter() - t
    manifest = {k: data.manifest[k] for k in ("format", "model", "chunking", "corpus")}
    counts = {k: v * f if k != "files" else v for k, v in data.manifest["counts"].items()}
    out = Path(spec["out_index"])
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    folder = write_build(out, manifest, counts, chunks, sents, list(data.chunk_tokens) * f, list(data.sentence_tokens) * f,
                         cvec, svec, data.vocab, data.vocab_vectors)
    write_s = time.perf_counter() - t
    sizes = {p.relative_to(folder).as_posix(): p.stat().st_size for p in folder.rglob("*") if p.is_file()}
    print(json.dumps({"generate_s": gen_s, "write_s": write_s, "sizes": sizes, "chunks": len(chunks),
                      "sentences": len(sents), "peak_kib": peak_rss_kib()}))


def open_worker(spec_path: str) -> None:
    """Open the ×factor index as Engine.open does, step by step; then whole asks (see the module docstring)."""
    t_start = time.monotonic()
    import psutil

    from .. import engine as engine_mod
    from ..config import Settings
    from ..corpus import load_corpus
    from ..embedder import make_embedder
    from ..index import expected_manifest, load_index

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    steps: dict[str, float] = {"imports": time.monotonic() - t_start}
    parts: dict[str, float] = {}

    def timed(cls):  # Engine() builds these; time each (a bench-only wrapper in engine's namespace)
        def make(*a, **kw):
            t0 = time.perf_counter()
            try:
                return cls(*a, **kw)
            finally:
                parts[cls.__name__] = parts.get(cls.__name__, 0.0) + time.perf_counter() - t0
        return make

    for name in ("Retriever", "Lexicon", "Reader"):
        if hasattr(engine_mod, name):
            setattr(engine_mod, name, timed(getattr(engine_mod, name)))

    t = time.perf_counter()
    s = Settings.from_env()
    emb = make_embedder(s.model, s.backend)
    docs, _ = load_corpus(s.corpus_dir)
    expect = expected_manifest(docs, emb.model_id, emb.dim, s.chunk, backend=getattr(emb, "backend", None))
    steps["corpus hash + encoder config"] = time.perf_counter() - t
    t = time.perf_counter()
    load_steps: dict[str, float] = {}
    data = load_index(s.index_dir, expect, timings=load_steps)
    steps["load_index"] = time.perf_counter() - t
    t = time.perf_counter()
    eng = engine_mod.Engine(data, emb)
    steps["Engine()"] = time.perf_counter() - t
    parts["the rest (add_words: jieba's dictionary loads here)"] = steps["Engine()"] - sum(parts.values())
    rss_open = psutil.Process().memory_info().rss
    questions = spec["questions"]
    t = time.perf_counter()
    eng.ask(questions[0][0], history=questions[0][1])
    first_ask = time.perf_counter() - t
    for q, h in questions[1 : 1 + spec["warmup"]]:
        eng.ask(q, history=h)
    walls, stages = [], {}
    for q, h in questions[1 + spec["warmup"] :]:
        t = time.perf_counter()
        a = eng.ask(q, history=h)
        walls.append((time.perf_counter() - t) * 1000)
        for k, v in a.timings.items():
            stages.setdefault(k, []).append(v * 1000)
    print(json.dumps({"steps": steps, "load_steps": load_steps, "engine_parts": parts, "first_ask_s": first_ask,
                      "asks": len(walls), "p50_ms": percentile(walls, 50), "p95_ms": percentile(walls, 95),
                      "stage_median_ms": {k: statistics.median(v) for k, v in stages.items()},
                      "rss_open_kib": rss_open // 1024, "peak_kib": peak_rss_kib()}))


def phase_load(settings: Settings, questions, factor: int, n_asks: int, say) -> tuple[list[Figure], dict]:
    from dataclasses import replace

    with tempfile.TemporaryDirectory(prefix="app-bench-load-") as tmp:
        spec = {"factor": factor, "seed": SEED + factor, "noise": NOISE, "index_dir": str(settings.index_dir),
                "out_index": str(Path(tmp) / "index"), "warmup": 20,
                "questions": [list(x) for x in questions[: 21 + n_asks]]}
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
        say(f"load ×{factor}: writing the index …")
        r, _t0, _w = run([sys.executable, "-c", "import sys; from app.bench.load import write_worker; "
                          "write_worker(sys.argv[1])", str(spec_path)], child_env(settings), f"the ×{factor} index write")
        wrote = last_json(r.stdout)
        say(f"load ×{factor}: {wrote['chunks']:,} chunks written in {wrote['write_s']:.0f}s; opening …")
        env = child_env(replace(settings, index_dir=Path(spec["out_index"])))
        r, _t0, wall = run([sys.executable, "-c", "import sys; from app.bench.load import open_worker; "
                            "open_worker(sys.argv[1])", str(spec_path)], env, f"the ×{factor} engine open")
        got = last_json(r.stdout)
    opened = sum(v for k, v in got["steps"].items() if k != "imports")
    say(f"load ×{factor}: engine open {opened:.1f}s, whole ask() p50 {got['p50_ms']:.1f} ms")
    sec = f"load ×{factor} ({wrote['chunks']:,} chunks, {wrote['sentences']:,} sentences)"
    disk = sum(wrote["sizes"].values()) / 2**20
    figs = [
        Figure(sec, "open the engine", opened, "s",
               "fresh process: corpus hash + load_index (manifest, checksums, JSON, FAISS, mapped vectors and BM25) "
               "+ Engine(); the encoder loads on the first question (see cold start)", at_most=OPEN_S),
    ]
    for k, v in got["load_steps"].items():
        figs.append(Figure(sec, f"… load_index: {k}", v, "s", "load_index(timings=…) in the same process"))
    for k, v in got["engine_parts"].items():
        figs.append(Figure(sec, f"… Engine(): {k}", v, "s", "constructor time inside Engine() (same process)"))
    figs += [
        Figure(sec, "whole ask() p50", got["p50_ms"], "ms",
               f"Engine.ask() over {got['asks']} eval questions (history passed) after 20 warm-up asks; encoding, "
               "retrieval and reading included", at_most=SCALE_ASK_P50_MS),
        Figure(sec, "whole ask() p95", got["p95_ms"], "ms", "same asks"),
    ]
    for k, v in got["stage_median_ms"].items():
        figs.append(Figure(sec, f"ask() stage median: {k}", v, "ms", "Answer.timings over the same asks"))
    figs += [
        Figure(sec, "first ask() (encoder load included)", got["first_ask_s"], "s", "same process, before warm-up"),
        Figure(sec, "RSS after open", got["rss_open_kib"] / 1024, "MiB", "psutil, before the first question"),
        Figure(sec, "peak RSS of that process", got["peak_kib"] / 1024, "MiB", "VmHWM after the asks"),
        Figure(sec, "index on disk", disk, "MiB", "every file of the build folder, written by index.write_build"),
        Figure(sec, "writing it (write_build)", wrote["write_s"], "s",
               "FAISS (HNSW above 50,000), JSON, BM25 index + save, checksums; encoding not included"),
    ]
    return figs, {"factor": factor, "write": wrote, "open": got, "open_s": opened, "open_process_wall_s": wall}
