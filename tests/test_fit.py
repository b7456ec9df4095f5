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


def _examples(n_writers=4, per=120, seed=0):
    """Questions whose vector says whether the report answers them (dimension 0), with nothing in the
    answer model's own probability to tell them apart."""
    from app.fit import Example

    rng = np.random.default_rng(seed)
    out, yq = [], []
    for w in "abcd"[:n_writers]:
        for i in range(per):
            v = rng.normal(size=8)
            answerable = bool(v[0] + rng.normal(scale=0.3) > -0.5)
            out.append(Example(f"{w}-{i:03d}", False, "everyday", answerable, True, np.zeros((1, 1)), np.ones(1, np.int8),
                               np.zeros(1, bool), None, v))
            yq.append(answerable)
    return out, np.array(yq, dtype=np.int8)


def test_the_question_prior_is_chosen_on_held_out_writers_and_keeps_the_right_answers():
    from app.fit import _prior_cv

    ex, yq = _examples()
    n = len(ex)
    rng = np.random.default_rng(1)
    p_oof = np.clip(0.6 + rng.normal(scale=0.05, size=n), 0.01, 0.99)  # the features cannot tell
    natural, doc, clash, correct = np.ones(n, bool), np.zeros(n, bool), np.zeros(n, bool), yq.astype(bool)
    cv = _prior_cv(ex, p_oof, yq, natural, doc, clash, correct, 0.05)
    assert cv["writers"] == 4
    assert cv["refusal_recall"] > cv["without_prior"]["refusal_recall"] + 0.3
    assert cv["answered_and_right"] >= cv["without_prior"]["answered_and_right"]
    assert cv["false_refusal"] <= 0.05 and cv["target"] <= 0.05


def test_without_question_vectors_there_is_no_prior():
    from dataclasses import replace

    from app.fit import _prior_cv

    ex, yq = _examples(per=20)
    ex = [replace(e, qvec=None) for e in ex]
    n = len(ex)
    z = np.zeros(n, bool)
    assert _prior_cv(ex, np.full(n, 0.5), yq, ~z, z, z, yq.astype(bool), 0.05) is None


def test_writers_are_the_id_prefixes_and_the_seed_questions_are_one_writer():
    from app.fit import _writer

    ex, _ = _examples(n_writers=1, per=1)
    from dataclasses import replace

    assert _writer(ex[0]) == "a"
    assert _writer(replace(ex[0], qid="fig-003")) == _writer(replace(ex[0], qid="def-12")) == "seed"
