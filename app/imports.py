"""Importing a library without the optional extras it would import for features the app does not use.

Some libraries import every optional backend they find at import time: bm25s imports numba
(llvmlite) and scipy; lightgbm imports pandas and scikit-learn. On a CLI question's cold start
that is a second or more of work for nothing. `import_without` hides those modules while the
library is imported (the library sees ImportError and takes its plain path) and un-hides them
afterwards, so a later `import numba` or `import pandas` elsewhere works as usual.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

__all__ = ["import_without"]


def import_without(name: str, hidden: tuple[str, ...]) -> ModuleType:
    """``import name`` with the top-level modules in ``hidden`` unavailable during that import only."""
    if name in sys.modules:
        return sys.modules[name]
    blocked = [m for m in hidden if m not in sys.modules]
    for m in blocked:
        sys.modules[m] = None  # type: ignore[assignment]  # makes `import m` raise ImportError
    try:
        return importlib.import_module(name)
    finally:
        for m in blocked:
            if sys.modules.get(m, 0) is None:
                del sys.modules[m]
