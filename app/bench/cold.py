"""Cold start: new processes, from spawn to the first answer, and what a fresh process holds.

    python -m app --help                  spawn → exit
    python -m app ask Q --no-build        spawn → exit (what a CLI user waits for; the headline)
    from app import ask; ask(Q)           spawn → answer returned (stamped inside the child)
    instrumented twin                     the same steps one by one, each stamped; then a few more
                                          questions and the process's peak RSS (a server without Gradio)
    python -m app serve                   the real server: 5 questions through gradio_client, then its
                                          peak RSS read from /proc before it is stopped

The index is built and the encoder exported before this phase runs; the OS file cache is warm.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from ..config import ROOT, Settings
from .common import (COLD_QUESTION, COLD_S, HELP_S, SERVE_RSS_MIB, BenchError, Figure, child_env, last_json,
                     run)

__all__ = ["phase_cold", "phase_serve"]

# The Python API's cold start, plus one stamp printed after the answer (CLOCK_MONOTONIC is system-wide
# on Linux, so the parent can subtract its own spawn time from it).
_API = (f"from app import ask; ask({COLD_QUESTION!r}); "
        "import time, json; print(json.dumps(time.monotonic()))")

# The steps Engine.open() + ask() take, one stamp after each; then a few more questions (a
# serve-like session), the modules that got imported, and the process's peak RSS.
_SPLIT = """
import time
T = {"interpreter": time.monotonic()}
import app
T["import app"] = time.monotonic()
from app.config import Settings
from app.corpus import load_corpus
from app.embedder import make_embedder
from app.engine import Engine
from app.index import expected_manifest, load_index
T["import engine modules"] = time.monotonic()
s = Settings.from_env()
emb = make_embedder(s.model, s.backend)
emb.embed_queries(["预热"])
T["encoder load"] = time.monotonic()
docs, _ = load_corpus(s.corpus_dir)
data = load_index(s.index_dir, expected_manifest(docs, emb.model_id, emb.dim, s.chunk,
                                                 backend=getattr(emb, "backend", None)))
T["corpus hash + index load"] = time.monotonic()
eng = Engine(data, emb)
T["Engine() (jieba, lexicon, retriever)"] = time.monotonic()
eng.ask(%(q)r)
T["first ask"] = time.monotonic()
for q in %(more)r:
    eng.ask(q)
import json, sys
from app.bench.common import peak_rss_kib
heavy = [m for m in ("torch", "sentence_transformers", "transformers", "gradio", "matplotlib", "numba", "scipy")
         if m in sys.modules]
print(json.dumps({"stamps": T, "asked": 1 + len(%(more)r), "peak_kib": peak_rss_kib(), "heavy": heavy,
                  "backend": getattr(emb, "backend", None)}))
"""

_STEP_NAMES = {
    "interpreter": "split: interpreter start",
    "import app": "split: import app",
    "import engine modules": "split: import engine modules (numpy, faiss, jieba, bm25s, …)",
    "encoder load": "split: encoder load + one encode",
    "corpus hash + index load": "split: corpus hash + index load (checksums, JSON, FAISS, mapped BM25)",
    "Engine() (jieba, lexicon, retriever)": "split: Engine() (jieba dictionary, lexicon, retriever)",
    "first ask": "split: first ask()",
}


def phase_cold(settings: Settings, questions, reps: int, help_reps: int, say) -> tuple[list[Figure], dict]:
    env, py = child_env(settings), sys.executable
    help_walls = []
    for _ in range(help_reps):
        _r, _t0, wall = run([py, "-m", "app", "--help"], env, "`python -m app --help`")
        help_walls.append(wall)
    say(f"--help: {', '.join(f'{w:.2f}s' for w in help_walls)}")
    cli = []
    for i in range(reps):
        _r, _t0, wall = run([py, "-m", "app", "ask", COLD_QUESTION, "--no-build"], env, "the cold-start CLI ask")
        cli.append(wall)
        say(f"cold CLI ask {i + 1}/{reps}: {wall:.2f}s")
    answered = []
    for _ in range(reps):
        r, t0, _wall = run([py, "-c", _API], env, "the cold-start API ask")
        answered.append(last_json(r.stdout) - t0)
    more = [q for q, h in questions[1:6] if not h]
    r, t0, _wall = run([py, "-c", _SPLIT % {"q": COLD_QUESTION, "more": more}], env, "the instrumented cold start")
    got = last_json(r.stdout)
    split, prev = {}, t0
    for step, t in got["stamps"].items():
        split[step] = t - prev
        prev = t
    say("split: " + ", ".join(f"{k} {v:.2f}s" for k, v in split.items()))

    figs = [
        Figure("cold start", "new process to first answer (python -m app ask …)", statistics.median(cli), "s",
               f"median of {reps} runs of `python -m app ask '{COLD_QUESTION}' --no-build`, spawn → exit "
               f"(index built, encoder exported, OS file cache warm; backend {got['backend']})", at_most=COLD_S),
        Figure("cold start", "… Python API: from app import ask; ask(…)", statistics.median(answered), "s",
               f"median of {reps} new processes, spawn → the answer returned (stamped in the child)"),
    ]
    for i, (step, secs) in enumerate(split.items()):
        figs.append(Figure("cold start", _STEP_NAMES.get(step, f"split: {step}"), secs, "s",
                           "one more new process doing Engine.open()'s steps one by one, time.monotonic() "
                           "stamped after each; step = stamp − previous stamp (spawn for the first)"
                           if i == 0 else "same process, next stamp"))
    figs.append(Figure("cold start", "heavy modules imported on that path", float(len(got["heavy"])), "",
                       "of torch, sentence_transformers, transformers, gradio, matplotlib, numba, scipy: "
                       + (", ".join(got["heavy"]) or "none")))
    figs.append(Figure("cold start", "python -m app --help", statistics.median(help_walls), "s",
                       f"median of {help_reps} new processes, spawn → exit", at_most=HELP_S))
    figs.append(Figure("memory", "peak RSS, serve-like process (no Gradio)", got["peak_kib"] / 1024, "MiB",
                       f"the instrumented process: Engine.open + {got['asked']} questions, then its peak RSS "
                       "(VmHWM; see peak_rss_kib for why not ru_maxrss)"))
    return figs, {"cli_ask_s": cli, "api_answer_s": answered, "split_s": split, "help_s": help_walls,
                  "serve_like_peak_kib": got["peak_kib"], "heavy_modules": got["heavy"]}


def _vm_hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise BenchError(f"no VmHWM for process {pid}: peak RSS of `serve` needs Linux's /proc")


def phase_serve(settings: Settings, questions, say, timeout: float = 180.0) -> tuple[list[Figure], dict]:
    """`python -m app serve` on a free loopback port; 5 questions through gradio_client; its peak RSS."""
    import socket

    from gradio_client import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(child_env(settings), GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", str(port)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        t0, client = time.monotonic(), None
        while client is None:
            if proc.poll() is not None:
                raise BenchError(f"`python -m app serve` exited with {proc.returncode}: {proc.stderr.read()[-1500:]}")
            if time.monotonic() - t0 > timeout:
                raise BenchError(f"`python -m app serve` did not answer on {url} within {timeout:.0f}s")
            try:
                client = Client(url, verbose=False)
            except Exception:  # not listening yet
                time.sleep(0.5)
        up = time.monotonic() - t0
        asked = [q for q, h in questions[:12] if not h][:5]
        for q in asked:
            client.predict(q, 5, api_name="/ask")
        peak = _vm_hwm_kib(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    say(f"serve: up after {up:.1f}s, peak RSS {peak / 1024:.0f} MiB after {len(asked)} questions")
    figs = [Figure("memory", "peak RSS, python -m app serve", peak / 1024, "MiB",
                   f"the real server on a loopback port, {len(asked)} questions through gradio_client "
                   "(api_name=/ask), then VmHWM from /proc/<pid>/status", at_most=SERVE_RSS_MIB)]
    return figs, {"serve_peak_kib": peak, "serve_up_s": up, "questions": len(asked)}
