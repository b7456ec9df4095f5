"""Exceptions raised by the app, each beside the code that raises it conceptually.

    AppError
    ├── CorpusError        a corpus file or folder cannot be used (names the file and the fix)
    ├── IndexError_        index/ is missing, corrupt, or built for another model/corpus
    │   └── StaleIndexError    built from other corpus files or settings than the current ones
    ├── ModelError         the embedding model cannot be loaded or converted
    └── QuestionError      a question that cannot be asked (not a string, empty, too long)
        └── FilterError        a metadata filter with an unknown key, a bad value, or no document matching
"""

from __future__ import annotations

__all__ = ["AppError", "CorpusError", "IndexError_", "ModelError", "QuestionError", "FilterError", "StaleIndexError"]


class AppError(Exception):
    """Base class: every message says what is wrong and what to run."""


class CorpusError(AppError):
    pass


class IndexError_(AppError):  # noqa: N801 - avoid shadowing the builtin IndexError
    pass


class StaleIndexError(IndexError_):
    pass


class ModelError(AppError):
    pass


class QuestionError(AppError, ValueError):
    pass


class FilterError(QuestionError):
    pass
