"""What every benchmark phase shares: the `Figure` record, targets, pure statistics, child processes.

The pure helpers (`percentile`, `recall_at_k`, `synthetic_vectors`, `synthetic_documents`,
`parse_scales`) are what tests/test_bench.py checks; the rest runs processes and reads clocks.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..config import ROOT, Settings
from ..errors import AppError

__all__ = ["BenchError", "COLD_QUESTION", "CpuWatch", "Figure", "QUESTIONS", "RESULTS", "child_env", "fmt",
           "last_json", "load_questions", "parse_scales", "peak_rss_kib", "percentile", "recall_at_k", "run",
           "synthetic_documents", "synthetic_vectors"]

QUESTIONS = ROOT / "eval" / "questions.jsonl"
RESULTS = ROOT / "eval" / "results"
COLD_QUESTION = "2024年地区生产总值是多少？"
DEFAULT_SCALES = "10,100,1000"
NOISE = 0.02  # per-dimension σ of the synthetic copies: median cosine to the original ≈ 0.93,
# about the spacing of the report's own nearest-neighbour chunks (median 0.95), so copies fill
# the space between real chunks instead of forming tight clusters.
SEED = 20250120

# Targets (issue 10): a value must be ≤ at_most / ≥ at_least.
WARM_P50_MS, WARM_P95_MS = 10.0, 20.0
COLD_S, HELP_S = 3.0, 0.5
SERVE_RSS_MIB = 500.0
BUILD_CHUNKS_PER_S = 80.0
OPEN_S, SCALE_ASK_P50_MS = 3.0, 30.0  # at the largest scale
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
            return f"≤ {fmt(self.at_most, self.unit)} {self.unit}".rstrip()
        if self.at_least is not None:
            return f"≥ {fmt(self.at_least, self.unit)} {self.unit}".rstrip()
        return ""

    def to_json(self) -> dict:
        return {**asdict(self), "target": self.target, "passed": self.passed}


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


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "n/a"
    if unit in ("ms", "texts/s", "chunks/s"):
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



# ---------------------------------------------------------------------------------- processes


class CpuWatch:
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


def child_env(settings: Settings) -> dict[str, str]:
    """The parent's environment plus the settings, so children open the same index, model and backend."""
    env = dict(os.environ)
    env.update(APP_CORPUS=str(settings.corpus_dir), APP_INDEX=str(settings.index_dir), APP_MODEL=settings.model,
               APP_BACKEND=settings.backend, APP_CHUNK_SIZE=str(settings.chunk.size))
    return env


def run(cmd: list[str], env: dict, what: str) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run a child; return (result, monotonic spawn time, wall seconds to exit)."""
    t0 = time.monotonic()
    r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip()[-1500:]
        shown = " ".join(c if len(c) < 80 else c[:77] + "…" for c in cmd)
        raise BenchError(f"{what} failed (exit {r.returncode}): {tail}\nrun `{shown}` by hand to see the full error")
    return r, t0, wall


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def load_questions(path: Path = QUESTIONS) -> list[tuple[str, tuple[str, ...]]]:
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


def synthetic_copies(chunks, sentences, factor: int) -> tuple[list, list]:
    """``factor`` copies of the report's chunks and sentences with ids, sections and chunk links shifted,
    so copy k is a self-consistent report of its own (texts and offsets are shared, not copied)."""
    from dataclasses import replace

    if factor < 1:
        raise ValueError(f"factor={factor}: use 1 or more")
    n_c, n_s = len(chunks), len(sentences)
    n_sec = 1 + max((c.section for c in chunks), default=0)
    out_c = [replace(c, id=k * n_c + c.id, section=k * n_sec + c.section) for k in range(factor) for c in chunks]
    out_s = [replace(s, id=k * n_s + s.id, chunk=k * n_c + s.chunk, section=k * n_sec + s.section)
             for k in range(factor) for s in sentences]
    return out_c, out_s
