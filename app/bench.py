"""Speed and scale benchmark: `python -m app bench` → eval/results/bench.json and a table.

Every figure is stored with the sentence that says how it was measured, and, where the
project has one, its target. Phases, in the order they run:

    cold start      new processes: `python -c "from app import ask; ask(...)"` (time to the
                    answer) and an instrumented twin that stamps each step; `python -m app --help`
    memory          peak RSS of a serve-like process (the instrumented twin answers a few more
                    questions) and of `python -m app index` (RUSAGE_CHILDREN of a wrapper)
    warm ask()      every eval question (history passed) after a warm-up pass; stage medians
                    from Answer.timings
    build           build_index into a temp folder; model throughput on the report's texts
    scale           per factor f, in a fresh subprocess: f noisy copies of every real vector and
                    BM25 documents recombined from real sentence tokens; disk size, RSS, the
                    engine's own dense + BM25 + fusion step, and HNSW recall@10 vs exact search

Timings are only as good as the machine is quiet: the CPU used by *other* processes during
the run is recorded and flagged. The pure helpers (`percentile`, `recall_at_k`,
`synthetic_vectors`, `synthetic_documents`) are what tests/test_bench.py checks.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .config import ROOT, Settings
from .errors import AppError

__all__ = ["BenchError", "Figure", "main", "peak_rss_kib", "percentile", "recall_at_k", "synthetic_documents",
           "synthetic_vectors"]

QUESTIONS = ROOT / "eval" / "questions.jsonl"
RESULTS = ROOT / "eval" / "results"
COLD_QUESTION = "2024年地区生产总值是多少？"
DEFAULT_SCALES = "10,100,1000"
NOISE = 0.02  # per-dimension σ of the synthetic copies: median cosine to the original ≈ 0.93,
# about the spacing of the report's own nearest-neighbour chunks (median 0.95), so copies fill
# the space between real chunks instead of forming tight clusters.
SEED = 20250120

# Targets (value must be ≤ at_most / ≥ at_least).
WARM_P50_MS, WARM_P95_MS = 30.0, 60.0
COLD_S, HELP_S = 8.0, 0.5
SCALE_P50_MS, RECALL_MIN = 60.0, 0.98
BUSY_WARN = 0.25  # other processes' average CPU (in cores) above which timings are flagged


class BenchError(AppError):
    """A benchmark step could not run (a subprocess failed, a bad --scales value)."""


@dataclass(frozen=True)
class Figure:
    section: str
    name: str
    value: float | None
    unit: str
    how: str  # how it was measured, in one sentence
    at_most: float | None = None
    at_least: float | None = None

    @property
    def passed(self) -> bool | None:
        if self.value is None or (self.at_most is None and self.at_least is None):
            return None
        return (self.at_most is None or self.value <= self.at_most) and (
            self.at_least is None or self.value >= self.at_least)

    @property
    def target(self) -> str:
        if self.at_most is not None:
            return f"≤ {_fmt(self.at_most, self.unit)} {self.unit}".rstrip()
        if self.at_least is not None:
            return f"≥ {_fmt(self.at_least, self.unit)} {self.unit}".rstrip()
        return ""

    def to_json(self) -> dict:
        return {**asdict(self), "target": self.target, "passed": self.passed}


# ---------------------------------------------------------------------------------- pure helpers


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100), linear between closest ranks (numpy's default method)."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q={q!r}: use a number from 0 to 100")
    xs = sorted(float(v) for v in values)
    if not xs:
        raise ValueError("percentile of no values: measure at least one")
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def recall_at_k(found: np.ndarray, reference: np.ndarray, k: int, *, found_scores: np.ndarray | None = None,
                reference_scores: np.ndarray | None = None, tol: float = 1e-5) -> float:
    """Mean share of each query's exact top-k that the approximate search returned in its top k.

    ``found`` and ``reference`` are (queries, ≥k) id arrays, best first; -1 means "no result".
    With scores given, a found id whose score ties the k-th exact score (within ``tol``) also
    counts, as in faiss.contrib.evaluation: which of two equal vectors comes back is arbitrary.
    """
    found, reference = np.asarray(found), np.asarray(reference)
    if found.ndim != 2 or reference.ndim != 2 or len(found) != len(reference):
        raise ValueError(f"found {found.shape} and reference {reference.shape}: "
                         "both must be (queries, k) arrays with the same number of queries")
    if not 1 <= k <= min(found.shape[1], reference.shape[1]):
        raise ValueError(f"k={k} must be from 1 to the result width {min(found.shape[1], reference.shape[1])}")
    if (found_scores is None) != (reference_scores is None):
        raise ValueError("give both found_scores and reference_scores, or neither")
    if len(found) == 0:
        raise ValueError("recall of no queries: pass at least one")
    total = 0.0
    for q in range(len(found)):
        want = {int(i) for i in reference[q, :k] if i >= 0}
        if not want:
            total += 1.0
            continue
        hits = 0
        for j, i in enumerate(found[q, :k]):
            if i < 0:
                continue
            if int(i) in want or (found_scores is not None and
                                  found_scores[q, j] >= reference_scores[q, k - 1] - tol):  # type: ignore[index]
                hits += 1
        total += min(hits, len(want)) / len(want)
    return total / len(found)


def synthetic_vectors(base: np.ndarray, factor: int, noise: float, rng: np.random.Generator,
                      block: int = 65_536) -> np.ndarray:
    """``factor`` noisy copies of every row of ``base``: row i is base[i % n] + N(0, noise²), re-normalised.

    Rows stay unit length, so inner product is still cosine similarity. Built block by block so
    the peak memory is the result plus one block.
    """
    base = np.asarray(base, dtype=np.float32)
    if base.ndim != 2 or len(base) == 0:
        raise ValueError(f"base must be a non-empty (n, dim) array, got shape {base.shape}")
    if factor < 1:
        raise ValueError(f"factor={factor}: use 1 or more")
    n, dim = base.shape
    out = np.empty((n * factor, dim), dtype=np.float32)
    for a in range(0, len(out), block):
        b = min(a + block, len(out))
        rows = base[np.arange(a, b) % n] + rng.normal(0.0, noise, (b - a, dim)).astype(np.float32)
        rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
        out[a:b] = rows
    return out


def synthetic_documents(sentence_tokens: Sequence[Sequence[str]], lengths: Sequence[int],
                        rng: np.random.Generator) -> list[list[str]]:
    """One BM25 document per entry of ``lengths``: random real sentences' tokens, concatenated
    until the document has at least that many tokens (so the length distribution is the real one)."""
    pool = [list(t) for t in sentence_tokens if len(t)]
    if not pool:
        raise ValueError("sentence_tokens has no non-empty sentence to recombine")

    def picks():  # random sentence numbers, drawn in batches (one rng call per pick is slow at 10⁶)
        while True:
            yield from rng.integers(0, len(pool), size=65_536).tolist()

    pick = picks()
    docs: list[list[str]] = []
    for want in lengths:
        doc: list[str] = []
        while len(doc) < max(1, want):
            doc.extend(pool[next(pick)])
        docs.append(doc)
    return docs


def parse_scales(text: str) -> list[int]:
    try:
        scales = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        scales = []
    if not scales or any(s < 1 for s in scales):
        raise BenchError(f"--scales {text!r}: give comma-separated positive whole numbers, e.g. 10,100,1000")
    return sorted(set(scales))


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "n/a"
    if unit in ("ms", "texts/s"):
        return f"{v:,.1f}"
    if unit == "s":
        return f"{v:,.2f}"
    if unit == "MiB":
        return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"
    if unit == "min":
        return f"{v:,.1f}"
    if unit == "cores":
        return f"{v:.2f}"
    return f"{v:.3f}"


_SECTIONS = ("cold start", "warm ask()", "index build", "memory", "scale", "machine")


def _section_rank(section: str) -> int:
    return next((i for i, s in enumerate(_SECTIONS) if section.startswith(s)), len(_SECTIONS))


# ---------------------------------------------------------------------------------- processes


class _CpuWatch:
    """CPU used by other processes while a phase ran, in cores (0 = the machine was ours)."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self.wall = time.monotonic()
        self.sys = self._busy()
        self.own = self._own()

    def _busy(self) -> float:
        t = self._psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0)

    @staticmethod
    def _own() -> float:
        s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime

    def other_cores(self) -> float:
        wall = max(time.monotonic() - self.wall, 1e-9)
        return max(0.0, (self._busy() - self.sys) - (self._own() - self.own)) / wall


def peak_rss_kib() -> int:
    """This process's peak resident memory in KiB.

    On Linux, VmHWM of /proc/self/status: ru_maxrss would not do for a child, because a process
    started by fork/vfork + exec inherits its parent's peak in ru_maxrss (so a child of this
    1 GB benchmark would report ≥ 1 GB). Elsewhere ru_maxrss is the best there is.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _child_env(settings: Settings) -> dict[str, str]:
    """The parent's environment plus the settings, so children open the same index and model."""
    env = dict(os.environ)
    env.update(APP_CORPUS=str(settings.corpus_dir), APP_INDEX=str(settings.index_dir), APP_MODEL=settings.model,
               APP_CHUNK_SIZE=str(settings.chunk.size))
    return env


def _run(cmd: list[str], env: dict, what: str) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run a child; return (result, monotonic spawn time, wall seconds to exit)."""
    t0 = time.monotonic()
    r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip()[-1500:]
        shown = " ".join(c if len(c) < 80 else c[:77] + "…" for c in cmd)
        raise BenchError(f"{what} failed (exit {r.returncode}): {tail}\nrun `{shown}` by hand to see the full error")
    return r, t0, wall


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


# The literal cold start, plus one stamp printed after the answer (CLOCK_MONOTONIC is system-wide on
# Linux, so the parent can subtract its own spawn time from it).
_COLD = (f"from app import ask; ask({COLD_QUESTION!r}); "
         "import time, json; print(json.dumps(time.monotonic()))")

# The same steps default_engine() + ask() take, one stamp after each; then a few more questions
# (a serve-like session) and the process's peak RSS.
_SPLIT = """
import time
T = {"interpreter": time.monotonic()}
import app
T["import app"] = time.monotonic()
from app.config import Settings
from app.embedder import SentenceTransformerEmbedder
from app.engine import Engine
T["import engine modules"] = time.monotonic()
s = Settings.from_env()
emb = SentenceTransformerEmbedder(s.model)
emb.dim
T["model load"] = time.monotonic()
eng = Engine.open(s, embedder=emb, build=False)
T["index load + BM25"] = time.monotonic()
eng.ask(%(q)r)
T["first ask"] = time.monotonic()
for q in %(more)r:
    eng.ask(q)
import json
from app.bench import peak_rss_kib
print(json.dumps({"stamps": T, "asked": 1 + len(%(more)r), "peak_kib": peak_rss_kib()}))
"""

# A wrapper whose only child is `python -m app index`, so RUSAGE_CHILDREN is that process's peak (the
# child's ru_maxrss starts at the wrapper's own small peak, not at this benchmark's: see peak_rss_kib).
_INDEX_WRAPPER = """
import json, resource, subprocess, sys, time
t = time.monotonic()
r = subprocess.run([sys.executable, "-m", "app", "index", "--index", sys.argv[1]], capture_output=True, text=True)
print(json.dumps({"rc": r.returncode, "wall": time.monotonic() - t, "stderr": r.stderr[-1500:],
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def _load_questions(path: Path = QUESTIONS) -> list[tuple[str, tuple[str, ...]]]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                d = json.loads(line)
                out.append((d["question"], tuple(d.get("history") or ())))
            except (ValueError, KeyError) as exc:
                raise BenchError(f"{path}:{n} is not an eval question ({exc}): "
                                 "fix the line or restore the file") from None
    if not out:
        raise BenchError(f"{path} has no questions: the warm-latency phase needs the eval set")
    return out


# ---------------------------------------------------------------------------------- phases


def _phase_cold(settings: Settings, questions, reps: int, help_reps: int, say) -> tuple[list[Figure], dict]:
    env, py = _child_env(settings), sys.executable
    help_walls = []
    for _ in range(help_reps):
        _r, _t0, wall = _run([py, "-m", "app", "--help"], env, "`python -m app --help`")
        help_walls.append(wall)
    say(f"--help: {', '.join(f'{w:.2f}s' for w in help_walls)}")
    answered, exited = [], []
    for i in range(reps):
        r, t0, wall = _run([py, "-c", _COLD], env, "the cold-start ask")
        answered.append(_last_json(r.stdout) - t0)
        exited.append(wall)
        say(f"cold start {i + 1}/{reps}: answer after {answered[-1]:.2f}s, exit after {wall:.2f}s")
    more = [q for q, h in questions[1:5] if not h]
    r, t0, wall = _run([py, "-c", _SPLIT % {"q": COLD_QUESTION, "more": more}], env, "the instrumented cold start")
    got = _last_json(r.stdout)
    stamps, prev, split = got["stamps"], t0, {}
    for step, t in stamps.items():
        split[step] = t - prev
        prev = t
    say("split: " + ", ".join(f"{k} {v:.2f}s" for k, v in split.items()))

    cmd = f'python -c "from app import ask; ask(\'{COLD_QUESTION}\')"'
    figs = [
        Figure("cold start", "time to first answer", statistics.median(answered), "s",
               f"median of {reps} new processes running {cmd} (index built, OS file cache warm): "
               "spawn → the answer returned", at_most=COLD_S),
        Figure("cold start", "… until the process exits", statistics.median(exited), "s",
               "same runs, spawn → exit (adds interpreter teardown: torch, faiss)"),
    ]
    names = {"interpreter": "split: interpreter start", "import app": "split: import app",
             "import engine modules": "split: import engine modules (numpy, jieba, …)",
             "model load": "split: model load (torch, sentence-transformers, weights)",
             "index load + BM25": "split: index load + BM25 + corpus hash check", "first ask": "split: first ask()"}
    for i, (step, secs) in enumerate(split.items()):
        figs.append(Figure("cold start", names.get(step, f"split: {step}"), secs, "s",
                           "one more new process doing default_engine()'s steps one by one, time.monotonic() "
                           "stamped after each; step = stamp − previous stamp (spawn for the first)"
                           if i == 0 else "same process, next stamp"))
    figs.append(Figure("cold start", "python -m app --help", statistics.median(help_walls), "s",
                       f"median of {help_reps} new processes, spawn → exit", at_most=HELP_S))
    figs.append(Figure("memory", "peak RSS, serve-like process", got["peak_kib"] / 1024, "MiB",
                       f"the instrumented cold-start process: Engine.open + {got['asked']} questions, then its peak "
                       "RSS (VmHWM; see peak_rss_kib for why not ru_maxrss); no Gradio loaded"))
    return figs, {"cold_answer_s": answered, "cold_exit_s": exited, "split_s": split, "help_s": help_walls,
                  "serve_like_peak_kib": got["peak_kib"]}


def _phase_index_process(settings: Settings, say) -> tuple[list[Figure], dict]:
    with tempfile.TemporaryDirectory(prefix="app-bench-index-") as tmp:
        r, _t0, _wall = _run([sys.executable, "-c", _INDEX_WRAPPER, str(Path(tmp) / "index")], _child_env(settings),
                             "the `python -m app index` memory run")
    got = _last_json(r.stdout)
    if got["rc"] != 0:
        raise BenchError(f"`python -m app index` failed (exit {got['rc']}): {got['stderr']}")
    say(f"python -m app index: {got['wall']:.1f}s, peak RSS {got['maxrss_kib'] / 1024:.0f} MiB")
    figs = [
        Figure("memory", "peak RSS, python -m app index", got["maxrss_kib"] / 1024, "MiB",
               "`python -m app index --index <tmp>` run by a wrapper process; "
               "getrusage(RUSAGE_CHILDREN).ru_maxrss of the wrapper"),
        Figure("index build", "python -m app index, end to end", got["wall"], "s",
               "same run, spawn → exit (interpreter, model load, chunking, encoding, writing)"),
    ]
    return figs, {k: got[k] for k in ("wall", "maxrss_kib")}


def _phase_warm(engine, questions, quick: bool, say) -> tuple[list[Figure], dict, list[str]]:
    warmup = questions[:30] if quick else questions
    for q, h in warmup:
        engine.ask(q, history=h)
    passes = 1 if quick else 2
    walls: list[float] = []
    stages: dict[str, list[float]] = {}
    resolved: list[str] = []
    for p in range(passes):
        for q, h in questions:
            t = time.perf_counter()
            a = engine.ask(q, history=h)
            walls.append((time.perf_counter() - t) * 1000)
            for k, v in a.timings.items():
                stages.setdefault(k, []).append(v * 1000)
            if p == 0:
                resolved.append(a.resolved_question)
    p50, p95 = percentile(walls, 50), percentile(walls, 95)
    say(f"warm ask(): p50 {p50:.1f} ms, p95 {p95:.1f} ms over {len(walls)} asks")
    how = (f"{len(questions)} eval questions (history passed) × {passes} pass(es) after a warm-up pass over "
           f"{len(warmup)}; perf_counter around Engine.ask()")
    figs = [Figure("warm ask()", "p50 latency", p50, "ms", how, at_most=WARM_P50_MS),
            Figure("warm ask()", "p95 latency", p95, "ms", how, at_most=WARM_P95_MS)]
    for i, (k, vs) in enumerate(stages.items()):
        figs.append(Figure("warm ask()", f"stage median: {k}", statistics.median(vs), "ms",
                           ("median of Answer.timings[stage] over the same asks" if i == 0 else "same")
                           + (f" ({len(vs)} of {len(walls)} answers have it)" if len(vs) != len(walls) else "")))
    detail = {"asks": len(walls), "p50_ms": p50, "p95_ms": p95, "max_ms": max(walls),
              "mean_ms": statistics.fmean(walls),
              "stage_median_ms": {k: statistics.median(v) for k, v in stages.items()}}
    return figs, detail, resolved


def _phase_threads(engine, texts: list[str], say) -> tuple[list[Figure], dict]:
    """Query-encode latency with torch's default thread count and with one thread (a diagnostic)."""
    import torch

    default = torch.get_num_threads()
    out = {}
    try:
        for n in dict.fromkeys((default, 1)):
            torch.set_num_threads(n)
            engine.embedder.embed_queries(texts[:3])
            ts = []
            for t in texts:
                t0 = time.perf_counter()
                engine.embedder.embed_queries([t])
                ts.append((time.perf_counter() - t0) * 1000)
            out[n] = statistics.median(ts)
    finally:
        torch.set_num_threads(default)
    say("query encode p50 by torch threads: " + ", ".join(f"{n}: {v:.1f} ms" for n, v in out.items()))
    figs = [Figure("warm ask()", f"diagnostic: query encode p50, torch threads={n}", v, "ms",
                   f"embed_queries([q]) on {len(texts)} eval questions after set_num_threads({n})"
                   + (" (the default)" if n == default else ""))
            for n, v in out.items()]
    return figs, {"encode_p50_ms_by_threads": out}


def _mean_len(texts: list[str]) -> float:
    return sum(map(len, texts)) / max(1, len(texts))


def _phase_build(engine, settings: Settings, reps: int, build: bool, say) -> tuple[list[Figure], dict]:
    from .index import build_index, chunk_text, sentence_text

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
    say(f"encode {s_tps:.1f} sentences/s, {c_tps:.1f} chunks/s")
    n = len(data.chunks) + len(data.sentences)
    figs = [] if build_s is None else [
        Figure("index build", "build_index (model already loaded)", build_s, "s",
               f"build_index(show_bar=True) of the corpus into a temp folder: {len(data.chunks)} chunks + "
               f"{len(data.sentences)} sentences = {n} texts encoded, JSON + FAISS written"),
    ]
    figs += [
        Figure("index build", "encode throughput, report sentences", s_tps, "texts/s",
               f"embed_documents on the report's {len(sents)} sentence texts, median of {reps}, batch 32"),
        Figure("index build", "encode throughput, report chunks", c_tps, "texts/s",
               f"embed_documents on the report's {len(chunks)} chunk texts (mean {_mean_len(chunks):.0f} characters "
               f"vs {_mean_len(sents):.0f} for sentences), median of {reps}"),
    ]
    return figs, {"build_s": build_s, "sentences_per_s": s_tps, "chunks_per_s": c_tps,
                  "chunks": len(data.chunks), "sentences": len(data.sentences)}


# ---------------------------------------------------------------------------------- scale


def _scale_worker(spec_path: str) -> None:
    """Runs in a fresh process (so RSS and peak memory belong to one scale): see `_phase_scale`."""
    import bm25s
    import faiss
    import psutil

    from .retrieval import RetrievalConfig, Retriever
    from .index import HNSW_THRESHOLD, load_index, make_faiss
    from .textnorm import add_words, expand_query, normalize, tokenize

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
    svec = synthetic_vectors(data.sentence_vectors, f, spec["noise"], rng)
    chunk_docs = synthetic_documents(data.sentence_tokens, [len(x) for x in data.chunk_tokens] * f, rng)
    sent_docs = synthetic_documents(data.sentence_tokens, [len(x) for x in data.sentence_tokens] * f, rng)
    gen_s = time.perf_counter() - t
    origin_cos = float(np.median(np.sum(cvec[: len(base_c)] * base_c, axis=1)))
    t = time.perf_counter()
    index = make_faiss(cvec)
    faiss_s = time.perf_counter() - t
    del cvec  # the index holds its own copy; the app keeps no other (reconstructed below for recall)
    t = time.perf_counter()
    bm25_c = bm25s.BM25()
    bm25_c.index(chunk_docs, show_progress=False)
    bm25_s = bm25s.BM25()
    bm25_s.index(sent_docs, show_progress=False)
    bm25_build_s = time.perf_counter() - t
    gc.collect()
    rss_delta = proc.memory_info().rss - rss0

    faiss.write_index(index, str(tmp / "chunks.faiss"))
    np.save(tmp / "sentences.npy", svec, allow_pickle=False)
    disk = {n: (tmp / n).stat().st_size for n in ("chunks.faiss", "sentences.npy")}
    for n in disk:
        (tmp / n).unlink()
    json_bytes = (data.folder / "chunks.json").stat().st_size * f  # texts are not synthesised: extrapolated

    # The engine's own retrieval step over the synthetic index, with the BM25 models built above.
    retriever = Retriever(replace(data, chunks=data.chunks * f, faiss_index=index), bm25_chunks=bm25_c,
                          bm25_sentences=bm25_s)
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
                bm25_s.get_scores(tokens)  # the answer stage scores every sentence with BM25 too
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
        out.update(_recall_probe(index, qvecs, min(cfg.candidates, index.ntotal)))
    out["peak_kib"] = peak_rss_kib()
    Path(spec["out"]).write_text(json.dumps(out), encoding="utf-8")


def _recall_probe(index, qvecs: np.ndarray, candidates: int) -> dict:
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


def _phase_scale(settings: Settings, engine, resolved: list[str], factors: list[int], reps: int,
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
            _run([sys.executable, "-c", "import sys; from app.bench import _scale_worker; _scale_worker(sys.argv[1])",
                  str(Path(tmp) / "spec.json")], _child_env(settings), f"the ×{f} scale run")
            r = json.loads(Path(spec["out"]).read_text(encoding="utf-8"))
            results[f] = r
            say(f"scale ×{f}: p50 {r['p50_ms']:.1f} ms, {r['faiss_kind']} built in {r['faiss_build_s']:.1f}s"
                + (f", recall@10 {r['recall_at_10']:.3f}" if "recall_at_10" in r else ""))
            figs.extend(_scale_figures(r, n_c, n_s, texts_per_s))
    return figs, {str(f): r for f, r in results.items()}


def _scale_figures(r: dict, n_c: int, n_s: int, texts_per_s: tuple[float, float]) -> list[Figure]:
    f = r["factor"]
    sec = f"scale ×{f} ({r['chunks']:,} chunks)"
    disk = sum(r["disk_bytes"].values())
    n_q = f"{r['queries']} eval-question vectors × {r['reps']} pass(es) after a warm-up pass"
    figs = [
        Figure(sec, "retrieval p50 (dense + BM25 + fusion)", r["p50_ms"], "ms",
               f"Engine._rank over {r['chunks']:,} synthetic chunks ({r['faiss_kind']}): {n_q}; real query "
               f"vectors, so query encoding is not included", at_most=SCALE_P50_MS),
        Figure(sec, "retrieval p95", r["p95_ms"], "ms", "same runs"),
    ]
    for i, (k, v) in enumerate(r["stage_median_ms"].items()):
        figs.append(Figure(sec, f"stage median: {k}", v, "ms", "same runs, Engine._rank's own timings" if i == 0
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


# ---------------------------------------------------------------------------------- report


def _table(figs: list[Figure], console) -> None:
    from rich.table import Table

    table = Table(title="app bench", show_lines=False, header_style="bold")
    for col, kw in (("figure", {}), ("value", {"justify": "right"}), ("target", {"justify": "right"}),
                    ("", {}), ("how measured", {"ratio": 1})):
        table.add_column(col, **kw)
    section = None
    for f in figs:
        if f.section != section:
            section = f.section
            table.add_section()
            table.add_row(f"[bold]{section}[/bold]", "", "", "", "")
        mark = {True: "[green]pass[/green]", False: "[red]MISS[/red]", None: ""}[f.passed]
        table.add_row("  " + f.name, f"{_fmt(f.value, f.unit)} {f.unit}".strip(), f.target, mark, f.how)
    console.print(table)


def main(args, settings: Settings) -> int:
    from rich.console import Console

    from .corpus import load_corpus
    from .engine import Engine
    from .errors import IndexError_
    from .index import expected_manifest, load_index

    quick = bool(getattr(args, "quick", False))
    scales_arg = getattr(args, "scales", None) or DEFAULT_SCALES
    factors = parse_scales("10" if quick and scales_arg == DEFAULT_SCALES else scales_arg)
    out_dir = Path(args.out) if getattr(args, "out", None) else RESULTS
    log = Console(stderr=True)
    say: Callable[[str], None] = lambda m: log.print(f"[dim]bench[/dim] {m}", highlight=False)  # noqa: E731
    started, t_all, watch_all = time.strftime("%Y-%m-%dT%H:%M:%S%z"), time.monotonic(), _CpuWatch()
    load_before, probe = os.getloadavg(), _CpuWatch()
    time.sleep(1.0)
    if (busy_before := probe.other_cores()) > BUSY_WARN:
        say(f"[yellow]other processes use {busy_before:.2f} cores right now: timings will be inflated[/yellow]")
    questions = _load_questions()

    # The cold-start children need a current index; build it (in this process) only if missing/stale.
    docs, _ = load_corpus(settings.corpus_dir)
    try:
        load_index(settings.index_dir, expected_manifest(docs, settings.model, None, settings.chunk))
    except IndexError_:
        Engine.open(settings, progress=say)  # says why it (re)builds

    figs: list[Figure] = []
    detail: dict = {}
    busy: dict[str, float] = {}

    def phase(name: str, fn, *a):
        say(f"[bold]{name}[/bold]")
        w = _CpuWatch()
        figures, *rest = fn(*a)
        busy[name] = w.other_cores()
        figs.extend(figures)
        return rest

    # Subprocess phases first, while this process holds no model and stays idle.
    (detail["cold"],) = phase("cold start", _phase_cold, settings, questions, 1 if quick else 3, 3 if quick else 5, say)
    (detail["index_process"],) = phase("index process", _phase_index_process, settings, say)
    t = time.perf_counter()
    engine = Engine.open(settings, build=False)
    engine.ask(COLD_QUESTION)
    detail["parent_engine_open_s"] = time.perf_counter() - t
    detail["warm"], resolved = phase("warm ask()", _phase_warm, engine, questions, quick, say)
    (threads,) = phase("torch threads", _phase_threads, engine, resolved[: 30 if quick else 80], say)
    detail["warm"].update(threads)
    (build,) = phase("build", _phase_build, engine, settings, 1 if quick else 2, not quick, say)
    detail["build"] = build
    (detail["scale"],) = phase("scale", _phase_scale, settings, engine, resolved, factors, 1 if quick else 3,
                               (build["sentences_per_s"], build["chunks_per_s"]), say)
    figs.sort(key=lambda x: _section_rank(x.section))  # stable: phases run in the order that measures best

    other = watch_all.other_cores()
    figs.append(Figure("machine", "CPU used by other processes during the bench", other, "cores",
                       f"(system busy CPU − this bench's own, incl. children) ÷ wall time; on {os.cpu_count()} "
                       f"cores; above {BUSY_WARN} the timings are inflated by contention"))
    for name, cores in busy.items():
        figs.append(Figure("machine", f"… during {name}", cores, "cores", "same, over that phase only"))
    result = {
        "started": started, "seconds": time.monotonic() - t_all, "quick": quick, "scales": factors,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                    "other_processes_cores_before": busy_before, "other_processes_cores": other,
                    "other_processes_cores_by_phase": busy},
        "settings": {"corpus": str(settings.corpus_dir), "index": str(settings.index_dir), "model": settings.model,
                     "chunk": asdict(settings.chunk)},
        "figures": [x.to_json() for x in figs],
        "details": detail,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / "bench.json.tmp"
    tmp.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(tmp, out_dir / "bench.json")

    console = Console()
    if not console.is_terminal:
        console = Console(width=170)
    _table(figs, console)
    missed = [x for x in figs if x.passed is False]
    console.print(f"{len(missed)} of {sum(x.passed is not None for x in figs)} targets missed"
                  + (": " + "; ".join(f"{x.section} {x.name} {_fmt(x.value, x.unit)}{' ' + x.unit if x.unit else ''} (target {x.target})"
                                      for x in missed) if missed else ""), highlight=False)
    if other > BUSY_WARN:
        console.print(f"[yellow]other processes used {other:.2f} cores on average during the run: "
                      "the timings above are inflated; rerun on a quiet machine[/yellow]")
    console.print(f"written to {out_dir / 'bench.json'} in {result['seconds']:.0f}s", highlight=False)
    return 0
