"""Warm ask(): the latency of a question to an engine that is already open.

Every eval question (its history passed) after a warm-up pass; p50/p95 of the whole
`Engine.ask()`, stage medians from `Answer.timings`, and the query encoder alone, with the
other backends beside it (int8 ONNX, fp32 ONNX, fp32 PyTorch) for comparison.
"""

from __future__ import annotations

import statistics
import time

from .common import WARM_P50_MS, WARM_P95_MS, Figure, percentile

__all__ = ["phase_encoders", "phase_warm"]


def phase_warm(engine, questions, quick: bool, say) -> tuple[list[Figure], dict, list[str]]:
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
    backend = getattr(engine.embedder, "backend", "?")
    how = (f"{len(questions)} eval questions (history passed) × {passes} pass(es) after a warm-up pass over "
           f"{len(warmup)}; perf_counter around Engine.ask(); encoder {backend}")
    figs = [Figure("warm ask()", "p50 latency", p50, "ms", how, at_most=WARM_P50_MS),
            Figure("warm ask()", "p95 latency", p95, "ms", how, at_most=WARM_P95_MS)]
    for i, (k, vs) in enumerate(stages.items()):
        figs.append(Figure("warm ask()", f"stage median: {k}", statistics.median(vs), "ms",
                           ("median of Answer.timings[stage] over the same asks" if i == 0 else "same")
                           + (f" ({len(vs)} of {len(walls)} answers have it)" if len(vs) != len(walls) else "")))
    detail = {"asks": len(walls), "p50_ms": p50, "p95_ms": p95, "max_ms": max(walls),
              "mean_ms": statistics.fmean(walls), "backend": backend,
              "stage_median_ms": {k: statistics.median(v) for k, v in stages.items()}}
    return figs, detail, resolved


def _encode_p50(embedder, texts: list[str]) -> float:
    embedder.embed_queries(texts[:3])  # load and warm
    ts = []
    for t in texts:
        t0 = time.perf_counter()
        embedder.embed_queries([t])
        ts.append((time.perf_counter() - t0) * 1000)
    return statistics.median(ts)


def phase_encoders(engine, settings, texts: list[str], say) -> tuple[list[Figure], dict]:
    """Query-encode p50 of the engine's encoder and of the other backends (a diagnostic)."""
    from ..embedder import make_embedder

    mine = getattr(engine.embedder, "backend", "?")
    out = {mine: _encode_p50(engine.embedder, texts)}
    for other in ("onnx", "onnx-fp32", "torch"):
        try:
            emb = make_embedder(settings.model, other)
            if emb.backend not in out:
                out[emb.backend] = _encode_p50(emb, texts)
        except Exception as exc:  # e.g. onnx for a non-default model: that comparison is just not there
            say(f"no {other} comparison: {exc}")
    say("query encode p50: " + ", ".join(f"{b} {v:.1f} ms" for b, v in out.items()))
    figs = [Figure("warm ask()", f"query encode p50, {b}" + (" (in use)" if b == mine else " (for comparison)"), v,
                   "ms", f"embed_queries([q]) on {len(texts)} eval questions, one at a time, one thread")
            for b, v in out.items()]
    return figs, {"encode_p50_ms_by_backend": out}
