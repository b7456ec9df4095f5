"""Index build: `python -m app index` end to end (time, peak RSS) and the encoder's throughput.

Throughput is measured with the engine's own encoder on the report's chunk and sentence texts:
`embed_documents` sorts them by length, cuts them into batches and runs the batches on every
core (the int8 ONNX encoder), as a build does.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from ..config import Settings
from .common import BUILD_CHUNKS_PER_S, BenchError, Figure, child_env, last_json, run

__all__ = ["phase_build", "phase_index_process"]

# A wrapper whose only child is `python -m app index`, so RUSAGE_CHILDREN is that process's peak (the
# child's ru_maxrss starts at the wrapper's own small peak, not at this benchmark's: see peak_rss_kib).
_INDEX_WRAPPER = """
import json, resource, subprocess, sys, time
t = time.monotonic()
r = subprocess.run([sys.executable, "-m", "app", "index", "--index", sys.argv[1]], capture_output=True, text=True)
print(json.dumps({"rc": r.returncode, "wall": time.monotonic() - t, "stderr": r.stderr[-1500:],
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def phase_index_process(settings: Settings, say) -> tuple[list[Figure], dict]:
    with tempfile.TemporaryDirectory(prefix="app-bench-index-") as tmp:
        r, _t0, _wall = run([sys.executable, "-c", _INDEX_WRAPPER, str(Path(tmp) / "index")], child_env(settings),
                            "the `python -m app index` memory run")
    got = last_json(r.stdout)
    if got["rc"] != 0:
        raise BenchError(f"`python -m app index` failed (exit {got['rc']}): {got['stderr']}")
    say(f"python -m app index: {got['wall']:.1f}s, peak RSS {got['maxrss_kib'] / 1024:.0f} MiB")
    figs = [
        Figure("memory", "peak RSS, python -m app index", got["maxrss_kib"] / 1024, "MiB",
               "`python -m app index --index <tmp>` run by a wrapper process; "
               "getrusage(RUSAGE_CHILDREN).ru_maxrss of the wrapper"),
        Figure("index build", "python -m app index, end to end", got["wall"], "s",
               "same run, spawn → exit (interpreter, encoder load, chunking, encoding, BM25, writing)"),
    ]
    return figs, {k: got[k] for k in ("wall", "maxrss_kib")}


def _mean_len(texts: list[str]) -> float:
    return sum(map(len, texts)) / max(1, len(texts))


def phase_build(engine, settings: Settings, reps: int, build: bool, say) -> tuple[list[Figure], dict]:
    from ..index import build_index, chunk_text, sentence_text

    data = engine.data
    build_s = None
    if build:  # --quick skips it: the `python -m app index` run already timed a whole build
        with tempfile.TemporaryDirectory(prefix="app-bench-build-") as tmp:
            t = time.perf_counter()
            build_index(settings.corpus_dir, Path(tmp) / "index", engine.embedder, settings.chunk, progress=say,
                        show_bar=True)
            build_s = time.perf_counter() - t
    sents = [sentence_text(s, data.chunks[s.chunk]) for s in data.sentences]
    chunks = [chunk_text(c) for c in data.chunks]

    def throughput(texts: list[str]) -> float:
        runs = []
        for _ in range(reps):
            t0 = time.perf_counter()
            engine.embedder.embed_documents(texts)
            runs.append(len(texts) / (time.perf_counter() - t0))
        return statistics.median(runs)

    s_tps, c_tps = throughput(sents), throughput(chunks)
    backend = getattr(engine.embedder, "backend", "?")
    say(f"encode {s_tps:.1f} sentences/s, {c_tps:.1f} chunks/s ({backend})")
    n = len(data.chunks) + len(data.sentences)
    figs = [] if build_s is None else [
        Figure("index build", "build_index (encoder already loaded)", build_s, "s",
               f"build_index(show_bar=True) of the corpus into a temp folder: {len(data.chunks)} chunks + "
               f"{len(data.sentences)} sentences = {n} texts encoded, JSON + FAISS + BM25 written"),
    ]
    figs += [
        Figure("index build", "encoding rate, report chunks", c_tps, "chunks/s",
               f"embed_documents on the report's {len(chunks)} chunk texts (mean {_mean_len(chunks):.0f} "
               f"characters), median of {reps}; {backend}, length-sorted batches on every core",
               at_least=BUILD_CHUNKS_PER_S),
        Figure("index build", "encoding rate, report sentences", s_tps, "texts/s",
               f"the same on the report's {len(sents)} sentence texts (mean {_mean_len(sents):.0f} characters)"),
    ]
    return figs, {"build_s": build_s, "sentences_per_s": s_tps, "chunks_per_s": c_tps, "backend": backend,
                  "chunks": len(data.chunks), "sentences": len(data.sentences)}
