"""The eval set is well-formed and the metrics are right."""

import pytest

from app.evaluate import QUESTIONS, char_f1, load_questions, summarize

from .conftest import REPORT


@pytest.fixture(scope="module")
def questions():
    return load_questions(QUESTIONS)


def test_gold_spans_point_at_the_gold_strings(questions):
    raw = REPORT.read_text(encoding="utf-8")
    for q in questions:
        assert len(q.spans) == len(q.answers), q.id
        for (a, b), ans in zip(q.spans, q.answers):
            assert raw[a:b] == ans, q.id
        for ev in q.evidence:
            assert ev in raw, q.id


def test_eval_set_covers_the_kinds_the_issue_asks_for(questions):
    kinds = {q.kind for q in questions}
    assert {"figure", "target", "definition", "list", "paraphrase", "colloquial", "crosslingual", "traditional",
            "followup", "unanswerable"} <= kinds
    assert len(questions) >= 150
    assert sum(not q.answerable for q in questions) >= 25
    assert len({q.id for q in questions}) == len(questions)


def test_char_f1_matches_hand_computed_values():
    assert char_f1("231.52亿元", "231.52 亿元") == 1.0
    assert char_f1("", "abc") == 0.0
    assert char_f1("ab", "abcd") == pytest.approx(2 * 1.0 * 0.5 / 1.5)


def _rec(qid, first, run, found=True, answerable=True):
    return {"id": qid, "answerable": answerable, "found": found, "answer": "x" if found else "", "em": found,
            "f1": 1.0, "first_relevant": first, "run": run, "latency_ms": 1.0, "kind": "figure"}


def test_ranking_metrics_match_a_hand_computed_reference():
    qrels = {"q1": {"d1": 1}, "q2": {"d9": 1}}
    recs = [_rec("q1", 2, {"d0": 1.0, "d1": 0.5}), _rec("q2", None, {"d0": 1.0})]
    s = summarize(recs, qrels)
    assert s["mrr@10"] == pytest.approx((0.5 + 0.0) / 2)
    # one relevant doc at rank 2: DCG = 1/log2(3), IDCG = 1
    import math
    assert s["ndcg@10"] == pytest.approx((1 / math.log2(3)) / 2)
    assert s["hit@1"] == 0.0 and s["hit@5"] == 0.5


def test_refusal_metrics_count_the_right_questions():
    recs = [_rec("a", 1, {"d": 1.0}), _rec("b", 1, {"d": 1.0}, found=False),
            _rec("u1", None, {}, found=False, answerable=False), _rec("u2", None, {}, found=True, answerable=False)]
    s = summarize(recs, {"a": {"d": 1}, "b": {"d": 1}})
    assert s["refusal_recall"] == 0.5 and s["refusal_precision"] == 0.5 and s["false_refusal"] == 0.5
