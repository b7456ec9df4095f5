"""Shared fixtures: a fake embedder for fast tests, the real model for behaviour that depends on it."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "corpus" / "hailar_2025_government_work_report.txt"


class FakeEmbedder:
    """Hashes character bigrams into a small normalised vector: deterministic, instant, no model.

    Texts sharing bigrams get similar vectors, so retrieval over it behaves sensibly enough for
    testing the plumbing (it is no stand-in for the real model's quality)."""

    def __init__(self, dim: int = 64, model_id: str = "fake-bigram-64") -> None:
        self.dim = dim
        self.model_id = model_id
        self.calls = 0

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        t = text.replace(" ", "")
        for i in range(max(1, len(t) - 1)):
            h = int.from_bytes(hashlib.blake2b(t[i : i + 2].encode(), digest_size=4).digest(), "little")
            v[h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        n = np.linalg.norm(v)
        return v / n if n > 0 else v

    def embed_queries(self, texts):
        self.calls += 1
        return np.stack([self._vec(t) for t in texts]).astype(np.float32)

    def embed_documents(self, texts, progress: bool = False):
        self.calls += 1
        return np.stack([self._vec(t) for t in texts]).astype(np.float32)


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def corpus_dir(tmp_path) -> Path:
    d = tmp_path / "corpus"
    d.mkdir()
    shutil.copy(REPORT, d / REPORT.name)
    return d


@pytest.fixture
def settings(tmp_path, corpus_dir):
    from app.config import Settings

    return Settings(corpus_dir=corpus_dir, index_dir=tmp_path / "index", model="fake-bigram-64")


@pytest.fixture
def fake_engine(settings, fake_embedder):
    from app.engine import Engine

    return Engine.open(settings, embedder=fake_embedder)


@pytest.fixture(scope="session")
def real_engine(tmp_path_factory):
    """The real default model over the real report, built once per test session."""
    from app.config import Settings
    from app.engine import Engine

    s = Settings(index_dir=tmp_path_factory.mktemp("real-index"))
    return Engine.open(s)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def feedback_db(tmp_path_factory) -> Path:
    """Where the test server stores 👍/👎 (never the user's own database)."""
    return tmp_path_factory.mktemp("feedback") / "feedback.sqlite3"


@pytest.fixture(scope="session")
def server(real_engine, feedback_db):
    """The web chat over the real engine on a free loopback port, shared by the UI and load tests."""
    import os

    from app.feedback import FeedbackStore
    from app.ui import build_ui, launch_options

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no usage pings
    port = free_port()
    demo = build_ui(real_engine, feedback=FeedbackStore(feedback_db))
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True, **launch_options())
    yield f"http://127.0.0.1:{port}/"
    demo.close()


# ------------------------------------------------------------------ browser tests (Debian's Chromium)

CHROMIUM = Path("/usr/bin/chromium")
NEEDS_CHROMIUM = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason="no /usr/bin/chromium: `apt-get install chromium` to run the browser tests")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through Playwright, one per test module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        yield b
        b.close()

