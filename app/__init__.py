"""Offline question answering over the 海拉尔区 2025 年政府工作报告.

    >>> from app import ask
    >>> a = ask("2024年地区生产总值是多少？")
    >>> a.found, a.text, a.passages[0].section

Importing is instant: the model and index load on the first `ask()` and are reused.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Sequence

__all__ = ["Answer", "AppError", "CorpusError", "Engine", "FilterError", "IndexError_", "ModelError", "Passage",
           "QuestionError", "RetrievalConfig", "Settings", "StaleIndexError", "ask"]

if TYPE_CHECKING:
    from .engine import Answer, Engine

_lazy = {
    "Answer": "engine", "Engine": "engine", "Passage": "engine", "RetrievalConfig": "engine",
    "Settings": "config", "AppError": "errors", "CorpusError": "errors", "IndexError_": "errors",
    "ModelError": "errors", "QuestionError": "errors", "StaleIndexError": "errors", "FilterError": "errors",
}
_default: "Engine | None" = None
_default_lock = threading.Lock()


def __getattr__(name: str):
    if name in _lazy:
        import importlib

        return getattr(importlib.import_module(f".{_lazy[name]}", __name__), name)
    raise AttributeError(f"module 'app' has no attribute {name!r}")


def default_engine() -> "Engine":
    """The process-wide engine for `ask()`, opened (and the index built if needed) on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                from .engine import Engine

                _default = Engine.open()
    return _default


def ask(question: str, k: int = 5, history: Sequence[str] = (), filters: dict | None = None) -> "Answer":
    """Answer a question from the reports with verbatim quotes; see `app.engine.Answer`.
    ``filters`` (``{"region": "海拉尔区", "year": 2025}``) search only the reports they match."""
    return default_engine().ask(question, k=k, history=history, filters=filters)
