"""Load: 32 concurrent API clients against one Gradio server over the real model.

Every answer under load must be the answer the engine gives to the same question asked alone:
sessions share one Engine, so any cross-talk or lost request would show up as a difference.
Throughput and p95 latency are printed (run with -s), never asserted.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.model

CLIENTS = 32
QUESTIONS_EACH = 10
POOL = 32  # distinct questions spread over the clients (asking all 78 candidates alone costs ~20 s more)
REQUEST_TIMEOUT = 120  # seconds, per request: a bound against hangs, not a speed requirement


def _squash(text: str) -> str:
    return "".join(text.split())


@pytest.fixture(scope="module")
def answered(real_engine) -> dict[str, tuple[bool, str]]:
    """The first POOL eval figure/target questions the engine answers correctly when asked alone → (found, text)."""
    out = {}
    for line in (ROOT / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines():
        q = json.loads(line)
        if len(out) == POOL:
            break
        if q["kind"] not in ("figure", "target") or q["history"]:
            continue
        a = real_engine.ask(q["question"])
        if a.found and all(_squash(gold) in _squash(a.text) for gold in q["answers"]):
            out[q["question"]] = (a.found, a.text)
    return out


def test_concurrent_clients_get_the_answers_the_engine_gives_alone(server, answered):
    from gradio_client import Client

    pool = sorted(answered)
    assert len(pool) >= QUESTIONS_EACH, f"only {len(pool)} eval questions answered correctly alone"
    # Client i asks a different run of 10 questions, so neighbouring requests differ.
    plans = [[pool[(i * 7 + j) % len(pool)] for j in range(QUESTIONS_EACH)] for i in range(CLIENTS)]
    results: list[tuple[str, dict, float]] = []
    errors: list[tuple[str, BaseException]] = []
    lock = threading.Lock()
    released: list[float] = []  # when every client is connected and the requests start
    start = threading.Barrier(CLIENTS, action=lambda: released.append(time.perf_counter()))

    def run(plan: list[str]) -> None:
        client = None
        try:
            client = Client(server, verbose=False, analytics_enabled=False, download_files=False)
            start.wait(timeout=REQUEST_TIMEOUT)
            for q in plan:
                t = time.perf_counter()
                d = client.predict(q, api_name="/ask")
                with lock:
                    results.append((q, d, time.perf_counter() - t))
        except BaseException as exc:  # collected and reported below
            with lock:
                errors.append((plan[0], exc))
            start.abort()
        finally:
            if client is not None:
                client.close()

    threads = [threading.Thread(target=run, args=(plan,), daemon=True) for plan in plans]
    for t in threads:
        t.start()
    deadline = time.monotonic() + REQUEST_TIMEOUT * QUESTIONS_EACH
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    wall = time.perf_counter() - released[0] if released else float("nan")
    assert not any(t.is_alive() for t in threads), "a client hung"

    assert not errors, errors[:3]
    assert len(results) == CLIENTS * QUESTIONS_EACH
    wrong = [(q, d.get("found"), d.get("text")) for q, d, _ in results if (d["found"], d["text"]) != answered[q]]
    assert not wrong, wrong[:3]

    latencies = sorted(s for _, _, s in results)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(f"\n{len(pool)} questions answered correctly alone; {len(results)} requests from {CLIENTS} clients "
          f"in {wall:.1f}s: {len(results) / wall:.1f} req/s, p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
          f"p95 {p95 * 1000:.0f} ms")
