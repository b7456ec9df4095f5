"""Settings: where the corpus and index live, which model, how to chunk. One frozen value."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from .chunking import ChunkSettings
from .embedder import DEFAULT_MODEL

__all__ = ["ROOT", "Settings"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    corpus_dir: Path = ROOT / "corpus"
    index_dir: Path = ROOT / "index"
    model: str = DEFAULT_MODEL
    backend: str = "auto"  # "auto" (fp32 ONNX for the default model) | "onnx-fp32" | "onnx" (int8) | "torch"
    chunk: ChunkSettings = field(default_factory=ChunkSettings)

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        """Defaults, then APP_CORPUS / APP_INDEX / APP_MODEL / APP_BACKEND / APP_CHUNK_SIZE, then explicit overrides."""
        s = cls()
        env = os.environ
        if env.get("APP_CORPUS"):
            s = replace(s, corpus_dir=Path(env["APP_CORPUS"]))
        if env.get("APP_INDEX"):
            s = replace(s, index_dir=Path(env["APP_INDEX"]))
        if env.get("APP_MODEL"):
            s = replace(s, model=env["APP_MODEL"])
        if env.get("APP_BACKEND"):
            s = replace(s, backend=env["APP_BACKEND"])
        if env.get("APP_CHUNK_SIZE"):
            s = replace(s, chunk=ChunkSettings(int(env["APP_CHUNK_SIZE"]), s.chunk.overlap))
        return replace(s, **{k: v for k, v in overrides.items() if v is not None})
