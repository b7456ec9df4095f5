"""The eval set is well-formed and the metrics are right."""

import pytest

from app.evaluate import QUESTIONS, char_f1, check_floors, load_questions, summarize

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


def _occurrences(raw: str, s: str):
    i = raw.find(s)
    while i >= 0:
        yield i
        i = raw.find(s, i + 1)


def test_spans_sit_inside_an_occurrence_of_the_evidence(questions):
    raw = REPORT.read_text(encoding="utf-8")
    for q in questions:
        for a, b in q.spans:
            assert any(p <= a and b <= p + len(ev) for ev in q.evidence for p in _occurrences(raw, ev)), q.id


def test_eval_set_has_the_mix_the_issue_asks_for(questions):
    n = len(questions)
    assert n >= 500 and len({q.id for q in questions}) == n
    everyday = sum("wording:everyday" in q.tags for q in questions)
    conversation = sum(bool(q.history) or q.kind == "smalltalk" for q in questions)
    unanswerable = sum(not q.answerable and q.kind != "smalltalk" for q in questions)
    assert everyday >= 0.40 * n and conversation >= 0.10 * n and unanswerable >= 0.15 * n
    assert {q.split for q in questions} == {"dev", "blind"}
    assert sum(q.split == "blind" for q in questions) >= 200
    assert all(("wording:everyday" in q.tags) != ("wording:report" in q.tags) for q in questions)


# The blind split is frozen once written: editing it (even to "fix" a question) changes this digest.
BLIND_SHA256 = "458d317da2ac2d45cc3bb54462dc04db8908913ee6a1abe48968d8b110becca1"


def test_the_blind_split_is_frozen():
    import hashlib
    import json

    lines = [ln for ln in QUESTIONS.read_text(encoding="utf-8").splitlines(keepends=True)
             if ln.strip() and json.loads(ln)["split"] == "blind"]
    assert hashlib.sha256("".join(lines).encode()).hexdigest() == BLIND_SHA256


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


def test_small_talk_and_topic_switches_are_scored_apart_from_refusals():
    hi = {**_rec("s", None, {}, found=False, answerable=False), "kind": "smalltalk", "intent": "smalltalk"}
    hi2 = {**_rec("s2", None, {}, found=False, answerable=False), "kind": "smalltalk", "intent": "question"}
    sw = {**_rec("w", 1, {"d": 1.0}), "tags": ["switch"], "question": "今天天气怎么样", "resolved": "今天天气怎么样"}
    sw2 = {**_rec("w2", 1, {"d": 1.0}), "tags": ["switch"], "question": "你好", "resolved": "你好 GDP"}
    sw3 = {**_rec("w3", 1, {"d": 1.0}), "tags": ["switch"], "question": "对了，区长叫啥", "resolved": "区长叫啥"}
    s = summarize([hi, hi2, sw, sw2, sw3], {"w": {"d": 1}, "w2": {"d": 1}, "w3": {"d": 1}})
    assert s["smalltalk_ok"] == 0.5 and s["switch_ok"] == 2 / 3
    assert s["refusal_recall"] != s["refusal_recall"]  # nan: small talk is not an unanswerable question


def test_floors_are_checked_per_split():
    ok = {"hit@1": 0.9, "hit@5": 0.99, "em": 0.9, "refusal_recall": 0.9, "false_refusal": 0.01}
    low = {**ok, "em": 0.5, "false_refusal": 0.5}
    fails = check_floors({"dev": ok, "blind": low}, {"dev": {"em": 0.8, "false_refusal_max": 0.1},
                                                     "blind": {"em": 0.8, "false_refusal_max": 0.1}})
    assert fails == ["blind em 0.500 < 0.8", "blind false_refusal 0.500 > 0.1"]


def test_bootstrap_intervals_hold_the_rate_and_narrow_with_more_questions():
    from app.evaluate import bootstrap_ci

    def recs(n):  # 80 % answered with the gold first, 20 % unanswerable, half of those refused
        out = []
        for i in range(n):
            if i % 5 == 4:
                out.append({"answerable": False, "found": i % 10 == 4, "first_relevant": None, "em": False})
            else:
                out.append({"answerable": True, "found": True, "first_relevant": 1, "em": i % 4 != 0})
        return out

    small, large = bootstrap_ci(recs(100)), bootstrap_ci(recs(2000))
    assert small["hit@1"] == (1.0, 1.0) and small["false_refusal"] == (0.0, 0.0)
    lo, hi = small["refusal_recall"]
    assert lo < 0.5 < hi
    assert large["refusal_recall"][1] - large["refusal_recall"][0] < (hi - lo) / 2
    assert bootstrap_ci(recs(100)) == small  # a fixed seed: the report is reproducible
