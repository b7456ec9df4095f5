"""Settings: where the corpus and index live, which model, how to chunk. One frozen value.

Values from the environment and the command line are checked here, so a mistake ends in a
`ConfigError` that names the variable or option and a good value, never in a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from .chunking import ChunkSettings
from .embedder import DEFAULT_MODEL
from .errors import AppError

__all__ = ["ROOT", "ConfigError", "Settings"]

ROOT = Path(__file__).resolve().parent.parent


class ConfigError(AppError, ValueError):
    """A setting from the environment or the command line that cannot be used."""


def _chunk_settings(value: object, overlap: int, name: str) -> ChunkSettings:
    example = f"{name} 300" if name.startswith("--") else f"{name}=300"
    try:
        size = int(value)  # an int already, or the text of an environment variable
    except (TypeError, ValueError):
        raise ConfigError(f"{name} {value!r} is not a whole number: give the chunk size in characters, "
                          f"e.g. {example}") from None
    try:
        return ChunkSettings(size, overlap)
    except ValueError as exc:
        raise ConfigError(f"{name} {size}: {exc}; the default is 300") from None


def _folder(path: Path, name: str) -> Path:
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{name} {path} is a file, not a folder: point {name} at a folder "
                          "(an index folder is created if missing)")
    return path


@dataclass(frozen=True)
class Settings:
    corpus_dir: Path = ROOT / "corpus"
    index_dir: Path = ROOT / "index"
    model: str = DEFAULT_MODEL
    backend: str = "auto"  # "auto" (fp32 ONNX for the default model) | "onnx-fp32" | "onnx" (int8) | "torch"
    chunk: ChunkSettings = field(default_factory=ChunkSettings)

    @classmethod
    def from_env(cls, *, chunk_size: int | None = None, **overrides) -> "Settings":
        """Defaults, then APP_CORPUS / APP_INDEX / APP_MODEL / APP_BACKEND / APP_CHUNK_SIZE, then explicit overrides
        (``chunk_size`` is the command line's --chunk-size). Raises ConfigError on an unusable value; an unknown
        backend is refused by `make_embedder`."""
        s = cls()
        env = os.environ
        if env.get("APP_CORPUS"):
            s = replace(s, corpus_dir=_folder(Path(env["APP_CORPUS"]), "APP_CORPUS"))
        if env.get("APP_INDEX"):
            s = replace(s, index_dir=_folder(Path(env["APP_INDEX"]), "APP_INDEX"))
        if env.get("APP_MODEL"):
            s = replace(s, model=env["APP_MODEL"])
        if env.get("APP_BACKEND"):
            s = replace(s, backend=env["APP_BACKEND"])
        if env.get("APP_CHUNK_SIZE"):
            s = replace(s, chunk=_chunk_settings(env["APP_CHUNK_SIZE"], s.chunk.overlap, "APP_CHUNK_SIZE"))
        if chunk_size is not None:
            s = replace(s, chunk=_chunk_settings(chunk_size, s.chunk.overlap, "--chunk-size"))
        for key, option in (("corpus_dir", "--corpus"), ("index_dir", "--index")):
            if overrides.get(key) is not None:
                overrides[key] = _folder(Path(overrides[key]), option)
        return replace(s, **{k: v for k, v in overrides.items() if v is not None})
