"""Pure answer logic: the question's time frame, follow-up resolution, the answering span,
and the refusal decision. No model, no index: plain strings and numbers in and out."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .textnorm import content_terms, figures, normalize

__all__ = ["Refusal", "clause_spans", "is_numeric_question", "resolve_followup", "time_frame", "section_time"]

_PAST = re.compile(r"2024|去年|上年|过去一年|一年来|完成了|已经|实现了|达到了|取得|last year|in 2024|was|were|did", re.I)
_FUTURE = re.compile(r"2025|今年|明年|计划|目标|力争|预期|打算|将要|要做|准备|plan|target|will|this year|in 2025|goal", re.I)
_NUMERIC = re.compile(r"多少|几个|几家|几所|几项|几次|几条|几户|几人|几万|几亿|多大|多高|多长|多快|比例|比率|百分|增长了|增速|"
                      r"规模|金额|面积|数量|总额|how many|how much|what percentage|rate|number of|amount", re.I)
_FOLLOW = re.compile(r"^(那|那么|还有|另外|再|and|what about|how about)|[呢吗]?[？?]?$", re.I)
_TIME_WORDS = re.compile(r"20\d\d\s*年?|去年|今年|明年|上年")


def time_frame(question: str) -> str | None:
    """'past' (2024 results), 'future' (2025 plans) or None when the question does not say."""
    past, fut = bool(_PAST.search(question)), bool(_FUTURE.search(question))
    if past == fut:
        return None
    return "past" if past else "future"


def section_time(path: tuple[str, ...]) -> str | None:
    """The report's parts have a tense: 一、 reviews 2024, 二、 plans 2025."""
    top = path[0] if path else ""
    if top.startswith("一、"):
        return "past"
    if top.startswith("二、"):
        return "future"
    return None


def is_numeric_question(question: str) -> bool:
    return bool(_NUMERIC.search(question))


def resolve_followup(question: str, history: tuple[str, ...] | list[str]) -> str:
    """Carry the topic of the previous question into an elliptical follow-up.

    "那2025年呢？" after "2024年新增就业多少人？" → "2025年新增就业多少人？" (the time is swapped);
    "那城镇失业人员再就业呢？" → "城镇失业人员再就业 2024年新增就业多少人？" (the new subject leads).
    A question that stands on its own (long enough, or no follow-up marker) is returned unchanged.
    """
    q = question.strip()
    if not history:
        return q
    prev = str(history[-1]).strip()
    if not prev:
        return q
    elliptical = len(q) <= 14 and bool(re.search(r"^(那|那么|还有|另外|and |what about|how about)|呢[？?]?$", q, re.I))
    if not elliptical:
        return q
    core = re.sub(r"^(那么|那|还有|另外|and|what about|how about)\s*|[呢吗]?[？?]?$", "", q, flags=re.I).strip()
    if not core:
        return prev
    if _TIME_WORDS.fullmatch(core) or re.fullmatch(r"(20\d\d\s*年?|去年|今年|明年)(的)?(呢)?", core):
        if _TIME_WORDS.search(prev):
            return _TIME_WORDS.sub(core, prev, count=1)
        return f"{core}{prev}"
    # A new subject: keep what the previous question asked (its predicate) and its time.
    return f"{core} {prev}"


@dataclass(frozen=True)
class Clause:
    start: int  # index into the sentence text
    end: int
    text: str


def clause_spans(sentence: str) -> list[Clause]:
    out, pos = [], 0
    for m in re.finditer(r"(?:[^，,；;：:]|(?<=\d),(?=\d))+[，,；;：:]?", sentence):
        text = m.group().rstrip("，,；;：:。")
        if text.strip():
            out.append(Clause(m.start(), m.start() + len(text), text))
        pos = m.end()
    return out or [Clause(0, len(sentence), sentence)]


_DEF = re.compile(r"什么是|是什么|指什么|什么意思|含义|定义|意思是|有哪些|包括哪些|包括什么|哪几|指的是|"
                  r"what is|what does|what are|mean|definition|which are", re.I)


def is_definition_question(question: str) -> bool:
    return bool(_DEF.search(question))


def has_figure(text: str) -> bool:
    """A figure other than a bare year (a "2025 年" in a title answers no "多少")."""
    return any(not re.fullmatch(r"(19|20)\d\d年?", f) for f in figures(normalize(text)))


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


@dataclass(frozen=True)
class Refusal:
    """Thresholds of the "the report does not say" decision (calibrated by `app eval --calibrate`)."""

    min_dense: float = 0.80  # cosine of question vs best sentence, below which nothing is close
    min_dense_lexical: float = 0.76  # lower bar when the question's own words are found
    min_coverage: float = 0.5  # share of the question's topic words found in the answer's chunk
    min_dense_crosslingual: float = 0.80  # questions with no Chinese words can only be judged densely

    def decide(self, *, dense: float, coverage: float | None, numeric_missing: bool) -> bool:
        if numeric_missing:
            return False
        if coverage is None:  # no Chinese topic words (e.g. an English question)
            return dense >= self.min_dense_crosslingual
        if coverage >= self.min_coverage and dense >= self.min_dense_lexical:
            return True
        return dense >= self.min_dense and coverage > 0
