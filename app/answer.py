"""Pure answer logic: the question's time frame, the answering span and the refusal decision
(follow-ups are resolved in app/dialogue.py). No model, no index: plain strings and numbers in and out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .textnorm import content_terms, figures, normalize

__all__ = ["Refusal", "clause_spans", "is_numeric_question", "time_frame", "section_time", "section_year"]

_PAST = re.compile(r"去年|上年|过去一年|一年来|完成了|已经|实现了|达到了|取得|\blast year|\bwas\b|\bwere\b|\bdid\b", re.I)
_FUTURE = re.compile(r"今年|明年|计划|目标|力争|预期|打算|将要|要做|准备|\bplan|\btarget|\bwill\b|\bthis year|\bgoal|\baim", re.I)
_NUMERIC = re.compile(r"多少|几个|几家|几所|几项|几次|几条|几户|几人|几万|几亿|多大|多高|多长|多快|比例|比率|百分|增长了|增速|"
                      r"规模|金额|面积|数量|总额|how many|how much|what percentage|rate|number of|amount", re.I)


def time_frame(question: str, year: int | None = None) -> str | None:
    """'past' or 'future' for a report of ``year`` (which reviews year − 1 and plans year), or None
    when the question does not say. An explicit year decides; then relative years (去年/今年 resolve
    against the report's year: its 今年 is its own year); then tense words. Without the report's
    year an explicit year cannot be placed, so only the words decide."""
    if year is not None:
        y_past, y_plan = str(year - 1) in question, str(year) in question
        if y_past != y_plan:
            return "past" if y_past else "future"
    return _relative_frame(question)


@lru_cache(maxsize=8192)
def _relative_frame(question: str) -> str | None:
    # a relative year outranks tense words: "去年呢" after "今年打算…" asks about last year
    rel_past, rel_fut = bool(re.search(r"去年|上年|last year", question, re.I)), bool(re.search(r"今年|本年|this year", question, re.I))
    if rel_past != rel_fut:
        return "past" if rel_past else "future"
    past, fut = bool(_PAST.search(question)), bool(_FUTURE.search(question))
    if past == fut:
        return None
    return "past" if past else "future"


_PART = re.compile(r"^[一二三四五六七八九十]+、")
_REVIEW = re.compile(r"回顾|总结|过去|成绩|成就")
_PLAN = re.compile(r"主要工作|重点工作|工作安排|工作任务|主要任务|重点任务|目标任务|总体要求|工作思路|计划|打算|展望")
_YEAR = re.compile(r"(?:19|20)\d\d")


@lru_cache(maxsize=65536)
def section_time(path: tuple[str, ...], year: int | None = None) -> str | None:
    """The tense of a report's numbered part, read from its heading: "一、2024 年工作回顾" reviews the
    past, "二、2025 年主要工作" plans the future — whatever its number or position. A heading with only
    a year is placed against the report's ``year`` (earlier → past). Other sections (the title
    block, the glossary, a closing part) have no tense."""
    top = path[0] if path else ""
    if not _PART.match(top):
        return None
    if _REVIEW.search(top):
        return "past"
    if _PLAN.search(top):
        return "future"
    years = [int(y) for y in _YEAR.findall(top)]
    if years and year is not None:
        return "past" if max(years) < year else "future"
    return None


def section_year(path: tuple[str, ...], year: int | None) -> int | None:
    """The year a section is about: the report reviews ``year`` − 1 and plans ``year``."""
    if year is None:
        return None
    st = section_time(path, year)
    return {"past": year - 1, "future": year}.get(st or "")


def is_numeric_question(question: str) -> bool:
    return bool(_NUMERIC.search(question))


@dataclass(frozen=True)
class Clause:
    start: int  # index into the sentence text
    end: int
    text: str


def clause_spans(sentence: str) -> list[Clause]:
    out = []
    for m in re.finditer(r"(?:[^，,；;：:]|(?<=\d),(?=\d))+[，,；;：:]?", sentence):
        text = m.group().rstrip("，,；;：:。")
        if text.strip():
            out.append(Clause(m.start(), m.start() + len(text), text))
    return out or [Clause(0, len(sentence), sentence)]


_DEF = re.compile(r"什么是|是什么|指什么|什么意思|含义|定义|意思是|有哪些|包括哪些|包括什么|哪几|指的是|什么叫|啥意思|"
                  r"啥是|是啥|哪[一二三四五六七八九十两几]个|分别是|"
                  r"what is|what does|what are|mean|definition|which are", re.I)


def is_definition_question(question: str) -> bool:
    return bool(_DEF.search(question))


def has_figure(text: str) -> bool:
    """An amount: a number with a unit, decimals or %, not a year or a date
    (a "2025 年" in a title or "1 月 20 日" answers no "多少")."""
    for f in figures(normalize(text)):
        if re.fullmatch(r"(19|20)\d\d年?", f):
            continue  # a year is not an amount
        if re.search(r"\D", f) or "." in f:
            return True  # has a unit, a decimal point or a percent sign
    return False


def best_span(question: str, sentence: str) -> tuple[int, int]:
    """The part of ``sentence`` that answers: a definition's body, or the clause that best
    matches the question (and holds a figure when the question asks for one)."""
    if _DEF.search(question):
        m = re.search(r"(?:是指|指的是|即)", sentence)
        if m:
            end = len(sentence.rstrip("。；;"))
            return m.end(), end
    terms = [normalize(t) for t in content_terms(question)]
    numeric = is_numeric_question(question)
    best, best_score = None, -1.0
    for c in clause_spans(sentence):
        norm = normalize(c.text)
        score = sum(len(t) for t in terms if t in norm)
        # partial credit for shared bigrams, so "gdp" style paraphrases still pick something
        score += 0.3 * sum(1 for t in terms for i in range(len(t) - 1) if t[i : i + 2] in norm)
        if numeric and has_figure(c.text):
            score += 2.0
        if score > best_score:
            best, best_score = c, score
    assert best is not None
    # For a figure question the highlight is the clause; that is short and reads on its own.
    return best.start, best.end


FEATURES = ("dense", "dense_xl", "cov_sentence", "cov_chunk", "absent", "numeric_missing", "crosslingual",
            "year_mismatch")  # the order of `feature_vector` and of `Refusal.weights`


def feature_vector(signals: dict) -> list[float]:
    """Refusal features from an answer's signals; dense cosine is centred and scaled (e5 cosines are compressed)."""
    xl = 1.0 if signals.get("crosslingual") else 0.0
    d = (float(signals.get("dense", 0.0)) - 0.8) * 10
    return [d, d * xl, float(signals.get("cov_sentence", 0.0)), float(signals.get("cov_chunk", 0.0)),
            float(signals.get("absent", 0.0)), 1.0 if signals.get("numeric_missing") else 0.0, xl,
            1.0 if signals.get("year_mismatch") else 0.0]


@dataclass(frozen=True)
class Refusal:
    """Logistic model of "the report answers this": found when P ≥ threshold.

    Weights are fitted by `python -m app eval --calibrate` on the eval set (its output is pasted
    here); features: see `feature_vector`."""

    # `python -m app eval --calibrate` on eval/questions.jsonl (268 questions, 36 unanswerable), sign-constrained,
    # threshold keeping false refusals ≤ 5%: in-sample refusal recall 0.611 / false refusal 0.047;
    # 5-fold CV 0.528 / 0.052.
    weights: tuple[float, ...] = (1.2519, 1.9476, 1.7655, 1.5246, 0.0, -1.4145, 3.1394, -2.3621)
    bias: float = -0.9395
    threshold: float = 0.577543

    def probability(self, signals: dict) -> float:
        import math

        z = self.bias + sum(w * x for w, x in zip(self.weights, feature_vector(signals)))
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def decide(self, signals: dict) -> bool:
        return self.probability(signals) >= self.threshold


_LOWER = [0, 0, 0, 0, -1e9, -1e9, -1e9, -1e9]
_UPPER = [1e9, 1e9, 1e9, 1e9, 0, 0, 1e9, 0]


def fit_refusal(rows: list[tuple[dict, bool]], max_false_refusal: float = 0.05, l2: float = 0.001) -> Refusal:
    """Fit the logistic weights (gradient descent, numpy), then the lowest-risk threshold that keeps
    false refusals (answerable questions refused) at or below ``max_false_refusal``."""
    import numpy as np

    X = np.array([feature_vector(s) for s, _ in rows], dtype=np.float64)
    y = np.array([1.0 if ans else 0.0 for _, ans in rows])
    w = np.zeros(X.shape[1])
    b = 0.0
    for _ in range(20000):
        p = 1 / (1 + np.exp(-(X @ w + b)))
        g = p - y
        w -= 0.5 * (X.T @ g / len(y) + l2 * w)
        b -= 0.5 * g.mean()
        # keep the model monotone (more similarity/coverage never argues for refusing, absent
        # words and missing figures never argue for answering), so it cannot learn quirks of
        # a small eval set that contradict what the features mean
        w = np.clip(w, _LOWER, _UPPER)
    p = 1 / (1 + np.exp(-(X @ w + b)))
    pos = np.sort(p[y == 1])
    k = int(np.floor(max_false_refusal * len(pos)))
    threshold = float(pos[k]) if len(pos) else 0.5  # at most k answerable questions fall below
    return Refusal(tuple(round(float(v), 4) for v in w), round(float(b), 4), round(threshold - 1e-6, 6))
