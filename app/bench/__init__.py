"""Speed and scale benchmark: `python -m app bench` → eval/results/bench.json and a table.

Every figure is stored with the sentence that says how it was measured and, where the project
has one, its target (issue 10's). One module per phase, in the order they run:

    cold.py    new processes: `python -m app ask` (the headline), the Python API, an instrumented
               twin stamping each step (and its peak RSS), `--help`; then the real `serve`'s peak RSS
    build.py   `python -m app index` end to end (time, peak RSS); build_index in-process; the
               encoder's rate on the report's chunks and sentences
    warm.py    every eval question after a warm-up pass: p50/p95 and stage medians; query encoding
               with the int8 and the fp32 encoder side by side
    scale.py   ×10/×100/×1000 synthetic copies in memory: retrieval p50, HNSW recall, disk, RSS
    load.py    the largest factor written to disk as a real index: opening the engine step by step,
               then whole ask() calls over it

Subprocess phases run first, while this process holds no model. Timings are only as good as
the machine is quiet: the CPU used by *other* processes during each phase is recorded and
flagged. Shared helpers (`Figure`, `percentile`, `recall_at_k`, the synthetic data) live in
common.py; the tables in report.py.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from .common import (BUSY_WARN, COLD_QUESTION, DEFAULT_SCALES, RESULTS, BenchError, CpuWatch, Figure, fmt,
                     load_questions, parse_scales, peak_rss_kib, percentile, recall_at_k, synthetic_copies,
                     synthetic_documents, synthetic_vectors)
from .scale import recall_probe

__all__ = ["BenchError", "Figure", "main", "parse_scales", "peak_rss_kib", "percentile", "recall_at_k",
           "recall_probe", "synthetic_copies", "synthetic_documents", "synthetic_vectors"]


def main(args, settings) -> int:
    from rich.console import Console

    from ..corpus import load_corpus
    from ..embedder import make_embedder
    from ..engine import Engine
    from ..errors import IndexError_
    from ..index import expected_manifest, load_index
    from . import build, cold, load, report, scale, warm

    quick = bool(getattr(args, "quick", False))
    scales_arg = getattr(args, "scales", None) or DEFAULT_SCALES
    factors = parse_scales("10" if quick and scales_arg == DEFAULT_SCALES else scales_arg)
    out_dir = Path(args.out) if getattr(args, "out", None) else RESULTS
    log = Console(stderr=True)
    say: Callable[[str], None] = lambda m: log.print(f"[dim]bench[/dim] {m}", highlight=False)  # noqa: E731
    started, t_all, watch_all = time.strftime("%Y-%m-%dT%H:%M:%S%z"), time.monotonic(), CpuWatch()
    load_before, probe = os.getloadavg(), CpuWatch()
    time.sleep(1.0)
    if (busy_before := probe.other_cores()) > BUSY_WARN:
        say(f"[yellow]other processes use {busy_before:.2f} cores right now: timings will be inflated[/yellow]")
    questions = load_questions()

    # The cold-start children need a current index and an exported encoder: build/export here if needed.
    emb = make_embedder(settings.model, settings.backend)
    docs, _ = load_corpus(settings.corpus_dir)
    try:
        load_index(settings.index_dir, expected_manifest(docs, settings.model, None, settings.chunk,
                                                         backend=getattr(emb, "backend", None)))
    except IndexError_:
        Engine.open(settings, embedder=emb, progress=say)  # says why it (re)builds
    emb.embed_queries([COLD_QUESTION])
    del emb

    figs: list[Figure] = []
    detail: dict = {}
    busy: dict[str, float] = {}

    def phase(name: str, fn, *a):
        say(f"[bold]{name}[/bold]")
        w = CpuWatch()
        figures, *rest = fn(*a)
        busy[name] = w.other_cores()
        figs.extend(figures)
        return rest

    reps = 1 if quick else 3
    (detail["cold"],) = phase("cold start", cold.phase_cold, settings, questions, reps, 3 if quick else 5, say)
    (detail["serve"],) = phase("serve", cold.phase_serve, settings, questions, say)
    (detail["index_process"],) = phase("index process", build.phase_index_process, settings, say)
    t = time.perf_counter()
    engine = Engine.open(settings, build=False)
    engine.ask(COLD_QUESTION)
    detail["parent_engine_open_s"] = time.perf_counter() - t
    detail["warm"], resolved = phase("warm ask()", warm.phase_warm, engine, questions, quick, say)
    (encoders,) = phase("encoders", warm.phase_encoders, engine, settings, resolved[: 30 if quick else 100], say)
    detail["warm"].update(encoders)
    (detail["build"],) = phase("build", build.phase_build, engine, settings, 1 if quick else 2, not quick, say)
    b = detail["build"]
    (detail["scale"],) = phase("scale", scale.phase_scale, settings, engine, resolved, factors, reps,
                               (b["sentences_per_s"], b["chunks_per_s"]), say)
    (detail["load"],) = phase("load", load.phase_load, settings, questions, max(factors), 60 if quick else 300, say)
    figs.sort(key=lambda x: report.section_rank(x.section))  # stable: phases run in the order that measures best

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
                     "backend": settings.backend, "chunk": asdict(settings.chunk)},
        "headline": [{"row": label, **f.to_json()} for label, f in report.headlines(figs)],
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
    report.table(figs, console)
    report.headline_table(figs, console)
    missed = [x for x in figs if x.passed is False]
    console.print(f"{len(missed)} of {sum(x.passed is not None for x in figs)} targets missed"
                  + (": " + "; ".join(f"{x.section} {x.name} {fmt(x.value, x.unit)}{' ' + x.unit if x.unit else ''} "
                                      f"(target {x.target})" for x in missed) if missed else ""), highlight=False)
    if other > BUSY_WARN:
        console.print(f"[yellow]other processes used {other:.2f} cores on average during the run: "
                      "the timings above are inflated; rerun on a quiet machine[/yellow]")
    console.print(f"written to {out_dir / 'bench.json'} in {result['seconds']:.0f}s", highlight=False)
    return 0
