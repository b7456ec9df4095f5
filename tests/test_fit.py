"""Fitting the reader: bounded weights, a model file the reader loads, figures that are cross-validated."""

import numpy as np

from app.evaluate import QUESTIONS, load_questions
from app.fit import _bounds, _logistic, fit
from app.reader import ReaderModel


def test_a_sign_constraint_holds_even_against_the_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2))
    y = (X[:, 0] - X[:, 1] + rng.normal(scale=0.3, size=400) > 0).astype(int)  # feature 1 truly argues against
    free = _logistic(X, y, 1.0, _bounds(["a", "b"], {}))
    bound = _logistic(X, y, 1.0, _bounds(["a", "b"], {"b": +1}))
    assert free["coef"][1] < -0.5
    assert bound["coef"][1] >= 0 and bound["coef"][0] > 0


def test_fit_writes_a_model_the_reader_loads(fake_engine, tmp_path):
    qs = [q for q in load_questions(QUESTIONS) if q.split == "dev" and q.kind != "smalltalk"][::8]
    model, report = fit(fake_engine, qs, progress=lambda *_: None)
    path = tmp_path / "reader.json"
    import json

    path.write_text(json.dumps(model), encoding="utf-8")
    loaded = ReaderModel.load(path)
    cv = model["cross_validated"]
    assert cv["questions"] == len(qs) and 0 <= cv["sentence_top1"] <= 1
    assert 0 <= cv["natural"]["false_refusal"] <= 1 and 0 < loaded.threshold < 1
    assert "Cross-validated" in report and "gain share" in report
