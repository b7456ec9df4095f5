"""Every figure in the report as a table row: indicator, value, unit, year, result or target.

    extract_figures(doc) -> list[Figure]          one document (pure; jieba for word boundaries)
    figure_pairs(figures) -> list[FigurePair]     a target beside the earlier result of the same indicator
    figures_csv(figures) -> str                   the rows as CSV (the table's columns)

Extraction is generic, with no list of this report's indicators: each sentence is normalised
(full→half width, Traditional→Simplified, no spaces around Han, no thousands separators) with a
map back to file offsets; a figure is an Arabic number followed by a unit (亿元, 万亩, 个, %, …);
its indicator is the clause's words before it (`改造老旧小区 58 个`) or, for a count in front of
its noun (`开通 3 条国际旅游航线`), the verb before and the noun after, with the linking words
around figures (预计完成, 达到, 共计, 稳定在, …) removed. A percentage after 增长/下降 is a
growth rate; one with no noun of its own belongs to the figure before it (`231.52 亿元，同比增长
5.5%`), which then carries it as its change. Year: one written in the sentence, else 今年/去年,
else the section heading's (二、2025 年主要工作); a year before the report's own is a result,
from it on a target. Not figures: years and dates, ordinals (第二十届), names with digits
(12345 热线, 4.0 方案) and thresholds that qualify a noun (2000 万元以上市级重点项目).

`tests/test_figures.py` checks the rows against a hand-checked sample (`eval/figures_gold.jsonl`).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

from .chunking import split_sentences
from .corpus import Doc, Span, sections

__all__ = ["ALL", "CSV_COLUMNS", "SORTS", "Figure", "FigurePair", "extract_figures", "figure_pairs", "figures_csv",
           "filter_figures", "report_year"]

RESULT, TARGET, OTHER = "结果", "目标", "其他"
AMOUNT, GROWTH, RATE = "总量", "增速", "比率"

# Units, longest first within each group; a magnitude (万, 亿) may precede a base unit.
_BASE_UNITS = (
    "蒸吨/小时|蒸吨|平方米|延长米|公里|千米|米|亩|吨|斤|元|人次|架次|场次|个工作日|人|户|家|个|所|期|场|次|篇|"
    "件|笔|盏|项|处|条|台|座|名|头|只|倍|天|年"
)
# Measure words that count things; "N 个 <noun>" puts the noun after the figure.
_CLASSIFIERS = frozenset("个 所 期 场 次 篇 件 笔 盏 项 处 条 台 座 名 头 只 家 户 人 架次 场次".split())
_FIG = re.compile(
    r"(?P<pre>约|超过|近|逾)?"
    r"(?P<num>\d+(?:\.\d+)?)"
    r"(?P<approx>余|多)?"
    rf"(?P<unit>%|‰|(?:万亿|亿|万|千)?(?:{_BASE_UNITS}))"
    r"(?P<suffix>[（(][^（）()]{1,3}[）)])?"
    r"(?P<post>左右|以上|以下|以内|及以上)?"
)
_YEAR = re.compile(r"((?:19|20)\d\d)年")
# Words that link an indicator to its figure; stripped from the end of the indicator.
_LINK = (
    "预计完成|预计达到|预计实现|预计|完成|达到|达|实现|共计|合计|总计|累计|计|为|是|约为|约|超过|突破|稳定在|保持在|"
    "控制在|提高到|提升至|提升到|增加到|均|全部|分别|覆盖|惠及|有|近|逾|以上|左右|同比|按可比口径|的"
)
_TRAILING_LINK = re.compile(rf"(?:{_LINK})+$")
# Words in front of an indicator that say when or how sure, not what: 全年, 2024年, 计划, 力争, 确保.
_LEADING = re.compile(
    r"^(?:(?:19|20)\d\d年(?:底|末|初)?|全年|今年|去年|明年|一年来|年内|其中|同时|另外|此外|计划|力争|确保|预计|"
    r"累计|共计|努力|全力|持续|进一步|成功|顺利|积极|大力|围绕|在|对|向|于|[”“])+"
)
# 完成/实现/实施 in front of a measure noun say nothing (完成治理面积 → 治理面积; 完成投资 stays).
_LEADING_VERB = re.compile(r"^(?:完成|实现|实施)(?=.+(?:面积|资金|金额|总额|额|量|率|数|收入|支出|产值|总值|里程)$)")
# Heads that need the thing they measure (总量 of what?): taken from the figure before.
_GENERIC_HEADS = re.compile(r"^(?:总量|总数|总额|金额|数量|规模|总计|合计|投资|资金)$")
_GROWTH = re.compile(r"(?:同比|比上年|较上年|按可比口径)*(增长|增加|提高|提升|上升|下降|减少|降低|增速|增幅)了?约?$")
_NEGATIVE = ("下降", "减少", "降低")
_SHARE = re.compile(r"^占(.+?)的?$")
# Where a noun after a counted figure ends ("9 个项目全部完工" → 项目).
_NOUN_STOP = re.compile(
    r"全部|顺利|有序|竣工|投产|完工|开工|建成|办理|完毕|落地|新建|建设|改造|实施|推进|提升|主要|考核|排名|"
    r"已经|均|正在|等|和|及|与|在|的|为|于|以"
)
_TIME_UNITS = frozenset({"个工作日", "天", "年"})
_NOUNISH = frozenset({"n", "nz", "nt", "nr", "j", "l", "an"})
_PLAN_CUE = re.compile(r"计划|力争|确保|目标|争取|预期")
_GLOSSARY = "名词解释"
_HAN = "\u4e00-\u9fff"

CSV_COLUMNS = ("指标", "数值", "单位", "原文数字", "年份", "类别", "口径", "变化", "章节", "文件", "起", "止", "句子")


@dataclass(frozen=True)
class Figure:
    indicator: str  # what is measured, in the report's words: "地区生产总值", "改造老旧小区"
    value: float  # signed for growth: 下降 75% is -75.0
    unit: str  # "亿元", "万头（只）", "%"
    text: str  # the figure verbatim from the file: "5.8%左右", "33 万头（只）以上"
    qualifier: str  # 左右 / 以上 / 余 / 超过 / 约 … or ""
    year: int | None
    kind: str  # 结果 (a result), 目标 (a target or plan), 其他 (definitions, context)
    measure: str  # 总量 (an amount or count), 增速 (a growth rate), 比率 (any other percentage)
    change: str  # the growth stated for this figure's indicator, verbatim: "同比增长 5.5%"
    section: str  # breadcrumb of its section
    source: str
    start: int  # the figure's offsets in the file
    end: int
    sentence: str  # its sentence, verbatim
    sentence_start: int
    sentence_end: int

    def row(self) -> tuple:
        """The figure as a table/CSV row, in `CSV_COLUMNS` order."""
        value = int(self.value) if self.value == int(self.value) else self.value
        return (self.indicator, value, self.unit, self.text, self.year or "", self.kind, self.measure, self.change,
                self.section, self.source, self.start, self.end, self.sentence)


@dataclass(frozen=True)
class FigurePair:
    """A target and the earlier result of the same indicator and unit (地区生产总值 增速 5.5 → 5.8)."""

    indicator: str
    measure: str
    unit: str
    result: Figure
    target: Figure


# ---------------------------------------------------------------- normalisation with offsets


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def normalize_span(text: str, offsets: Sequence[int]) -> tuple[str, list[int]]:
    """``text`` normalised as the rest of the app does it, with each kept character's file offset.

    Drops whitespace (except between two Latin letters) and thousands separators; NFKC per
    character; Traditional→Simplified when it keeps the length (it does, character for character).
    """
    chars: list[str] = []
    idx: list[int] = []
    n = len(text)
    for i, ch in enumerate(text):
        if ch.isspace():
            prev, nxt = text[i - 1] if i else "", text[i + 1] if i + 1 < n else ""
            if not (prev.isascii() and prev.isalpha() and nxt.isascii() and nxt.isalpha()):
                continue
        if ch in ",，" and i and text[i - 1].isdigit() and re.match(r"\d{3}(?!\d)", text[i + 1 : i + 5]):
            continue
        for c in unicodedata.normalize("NFKC", ch) if ch not in "，；：、（）" else ch:
            chars.append(c)
            idx.append(offsets[i])
    norm = "".join(chars)
    simp = _t2s().convert(norm)
    return (simp if len(simp) == len(norm) else norm), idx


@lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(60)
    jieba.initialize()
    return jieba


def _words(text: str) -> list[str]:
    return [w for w in _jieba().cut(text, HMM=True) if w]


def _trim_words(text: str, pattern: re.Pattern, *, end: bool) -> str:
    """Remove ``pattern`` at the start/end of ``text`` only along jieba word boundaries
    (so 完成 is cut from 预计完成 but 成 never from 完成率)."""
    words = _words(text)
    while words:
        joined = "".join(words)
        m = pattern.search(joined)
        if not m or (end and m.end() != len(joined)) or (not end and m.start() != 0) or not m.group():
            break
        cut = m.group()
        # drop whole words covered by the match
        acc, k = "", 0
        seq = reversed(words) if end else iter(words)
        for w in seq:
            if len(acc) + len(w) > len(cut):
                break
            acc += w
            k += 1
        if k == 0:
            break
        words = words[:-k] if end else words[k:]
    return "".join(words)


def _strip_indicator(text: str) -> str:
    text = text.strip("，、：；。 ")
    prev = None
    while prev != text:
        prev = text
        text = _trim_words(text, _LEADING, end=False)
        text = _trim_words(text, _TRAILING_LINK, end=True)
        text = _LEADING_VERB.sub("", text).strip("，、：；。 ")
    return text


# ---------------------------------------------------------------- extraction


def report_year(doc: Doc) -> int | None:
    """The report's own year: the first year in its title line (海拉尔区 2025 年政府工作报告)."""
    for line in doc.text.splitlines():
        if line.strip():
            m = _YEAR.search(re.sub(r"\s+", "", line))
            return int(m.group(1)) if m else None
    return None


def _section_year(path: Sequence[str]) -> int | None:
    for p in path:
        m = _YEAR.search(re.sub(r"\s+", "", p))
        if m:
            return int(m.group(1))
    return None


def _clauses(norm: str) -> list[tuple[int, int]]:
    """Clause boundaries: at ，；： and at 、 after a segment that already holds a figure
    ("完成投资 2.87 亿元、惠及小区 108 个"), not inside a list of names ("人工造林、退化林修复")."""
    out, start = [], 0
    for i, ch in enumerate(norm):
        if ch in "，；：。！？" or (ch == "、" and _FIG.search(norm, start, i)):
            out.append((start, i))
            start = i + 1
    out.append((start, len(norm)))
    return [(a, b) for a, b in out if b > a]


def _is_figure(norm: str, m: re.Match) -> bool:
    num, unit = m.group("num"), m.group("unit")
    a, b = m.start(), m.end()
    if a and (norm[a - 1].isdigit() or norm[a - 1] in ".+" or norm[a - 1].isalpha() and norm[a - 1].isascii()):
        return False
    if b < len(norm) and (norm[b].isascii() and norm[b].isalnum() or norm[b] in "+."):
        return False  # "1+2e", "2e", "137+N+e": names, not figures
    if a and norm[a - 1] == "第":
        return False  # ordinals
    if unit == "年" and (len(num) == 4 or (b < len(norm) and norm[b] in "代底初末度")):
        return False  # a year or a decade
    if unit == "年" and (b < len(norm) and norm[b] in "级"):
        return False
    post = m.group("post") or ""
    # "2000 万元以上市级重点项目", "65 蒸吨/小时及以上燃煤锅炉": a threshold that qualifies a noun
    base = re.sub(r"^(?:万亿|亿|万|千)", "", unit)
    if post in ("以上", "及以上", "以下") and base not in _CLASSIFIERS and b < len(norm) and re.match(f"[{_HAN}]", norm[b]):
        return False
    return True


def _noun_after(text: str) -> str:
    """The noun phrase a counted figure stands before: "文旅重点项目顺利竣工" → 文旅重点项目."""
    text = text.lstrip("”“")
    m = _NOUN_STOP.search(text)
    noun = text[: m.start()] if m else text
    return noun if len(noun) >= 2 else ""


def _owner_before(left: str) -> str:
    """What goes in front of the noun of "<left> N 个 <noun>": the owner when ``left`` ends in a noun
    ("温暖工程 9 个项目" → 温暖工程), the verb when it ends in one ("开通 3 条航线" → 开通), nothing
    after a list or a preposition ("…等 4 个项目", "在 19 个中心城区")."""
    import jieba.posseg as pseg

    raw = left.rstrip()
    if not raw or raw[-1] in "等、及和与在对向于从":
        return ""
    lead = _YEAR.sub("", _strip_indicator(raw))
    if not lead:
        return ""
    words = [(p.word, p.flag) for p in pseg.cut(lead)]
    word, flag = words[-1]
    if flag in _NOUNISH and len(lead) <= 8:
        return lead
    return word if flag.startswith("v") or flag == "ns" else ""


@dataclass
class _Raw:
    norm_start: int
    norm_end: int
    m: re.Match
    indicator: str
    measure: str
    value: float
    change_of: int | None = None  # index of the figure this growth rate belongs to


def _sentence_figures(norm: str) -> list[_Raw]:
    raws: list[_Raw] = []
    for ca, cb in _clauses(norm):
        clause_figs = [m for m in _FIG.finditer(norm, ca, cb) if _is_figure(norm, m)]
        cursor = ca
        for m in clause_figs:
            left = norm[cursor : m.start()]
            right_end = next((x.start() for x in clause_figs if x.start() > m.start()), cb)
            right = norm[m.end() : right_end]
            unit = m.group("unit")
            value = float(m.group("num"))
            base = re.sub(r"^(?:万亿|亿|万|千)", "", unit)
            measure, indicator = AMOUNT, ""
            raw_left = left.rstrip()
            g = _GROWTH.search(raw_left) if unit in ("%", "‰") else None
            share = None
            if g:
                measure = GROWTH
                if g.group(1) in _NEGATIVE:
                    value = -value
                indicator = _strip_indicator(raw_left[: g.start()])
            elif unit in ("%", "‰"):
                measure = RATE
                stripped = _strip_indicator(raw_left)
                share = _SHARE.match(stripped)
                indicator = stripped
            elif base in _CLASSIFIERS and m.group("num") and right and re.match(f"[{_HAN}“]", right):
                noun = _noun_after(right)
                if noun:
                    owner = _owner_before(left)
                    if not owner and len(noun) == 2 and re.fullmatch(f"[{_HAN}]+", right):
                        noun = right  # a bare "项目" keeps what it did: "4 个项目竣工投产"
                    indicator = owner + noun
            if not indicator and measure != GROWTH:
                indicator = _strip_indicator(left)
                if base in _TIME_UNITS and right.startswith("内"):
                    # "一般问题 3 个工作日内“窗口”办结": a time limit for what follows
                    indicator += right[1:].strip("，、：；。 ") + "时限"
            raws.append(_Raw(m.start(), m.end(), m, indicator, measure, value))
            if share and raws[:-1]:
                prev = next((r for r in reversed(raws[:-1]) if r.measure == AMOUNT), None)
                if prev is not None:
                    raws[-1].indicator = f"{prev.indicator}占{share.group(1)}比重"
            cursor = m.end()
    # a growth rate with no noun of its own, or a bare head (金额, 总量), takes the figure before
    for i, r in enumerate(raws):
        prev = next((p for p in reversed(raws[:i]) if p.measure == AMOUNT and p.indicator), None)
        if r.measure == GROWTH and not r.indicator:
            if prev is not None:
                r.indicator = prev.indicator
                r.change_of = raws.index(prev)
        elif _GENERIC_HEADS.match(r.indicator or ""):
            r.indicator = _compose_generic(norm, r, raws, i, prev)
    return raws


def _compose_generic(norm: str, r: _Raw, raws: list[_Raw], i: int, prev: _Raw | None) -> str:
    head = r.indicator
    if head in ("投资", "资金"):
        # the purpose follows the figure: "计划投资 1.32 亿元改造一二级供水管网", or a counted
        # thing in the same or the next clause: "…万元改造 21 个老旧小区", "…亿元，实施…等 4 个技改项目"
        after = re.split(r"[，；。]", norm[r.norm_end :], maxsplit=1)[0]
        later = [n for n in raws[i + 1 :] if n.measure == AMOUNT and n.indicator]
        in_clause = [n for n in later if n.norm_start < r.norm_end + len(after)]
        if in_clause:
            return in_clause[-1].indicator + head
        purpose = _noun_or_clause(after)
        if purpose:
            return purpose + head
        if later:
            return later[0].indicator + head
        return head
    if prev is not None:
        return _drop_leading_verb(prev.indicator) + head
    return head


def _noun_or_clause(text: str) -> str:
    text = text.strip("，、：；。 ")
    m = re.match(rf"[{_HAN}“”]+", text)
    return m.group() if m and len(m.group()) >= 2 else ""


def _drop_leading_verb(indicator: str) -> str:
    """新登记经营主体 → 经营主体, 发放创业担保贷款 → 创业担保贷款 (what a 总量/金额 is of)."""
    import jieba.posseg as pseg

    words = [(p.word, p.flag) for p in pseg.cut(indicator)]
    while len(words) > 1 and (words[0][1] in ("v", "ad", "d") or words[0][0] in ("新", "新增", "新建")):
        words = words[1:]
    return "".join(w for w, _ in words)


def _qualifier(m: re.Match) -> str:
    return "".join(x for x in (m.group("pre"), m.group("approx"), m.group("post")) if x)


def extract_figures(doc: Doc) -> list[Figure]:
    """Every figure of one document, in file order."""
    ryear = report_year(doc)
    out: list[Figure] = []
    secs = sections(doc)
    title = secs[0].path[0] if secs else ""
    for sec in secs:
        glossary = _GLOSSARY in sec.path
        syear = _section_year([p for p in sec.path if p != title])
        for sent in split_sentences(sec.body):
            out.extend(_figures_of_sentence(doc, sec.breadcrumb, sent, ryear, syear, glossary))
    return out


def _figures_of_sentence(doc: Doc, section: str, sent: Span, ryear, syear, glossary) -> list[Figure]:
    norm, idx = normalize_span(sent.text, sent.offsets)
    if not re.search(r"\d", norm):
        return []
    raws = _sentence_figures(norm)
    if not raws:
        return []
    figs: list[Figure] = []
    changes: dict[int, str] = {}
    for i, r in enumerate(raws):
        if r.change_of is not None:
            g = _GROWTH.search(norm[: r.norm_start])
            a = idx[g.start()] if g else idx[r.norm_start]
            changes[r.change_of] = doc.text[a : idx[r.norm_end - 1] + 1]
    for i, r in enumerate(raws):
        m = r.m
        year = _year_before(norm, r.norm_start, ryear)
        if year is None:
            year = syear if syear is not None else (None if glossary else ryear)
        if glossary:
            kind = OTHER
        elif year is not None and ryear is not None:
            kind = RESULT if year < ryear else TARGET
        else:
            kind = TARGET if _PLAN_CUE.search(norm) else RESULT
        start, end = idx[r.norm_start], idx[r.norm_end - 1] + 1
        unit = m.group("unit") + (m.group("suffix") or "")
        figs.append(Figure(
            indicator=r.indicator, value=r.value, unit=unit, text=doc.text[start:end], qualifier=_qualifier(m),
            year=None if glossary else year, kind=kind, measure=r.measure, change=changes.get(i, ""),
            section=section, source=doc.source, start=start, end=end, sentence=sent.text,
            sentence_start=sent.start, sentence_end=sent.end,
        ))
    return figs


def _year_before(norm: str, pos: int, ryear: int | None) -> int | None:
    years = [m for m in _YEAR.finditer(norm, 0, pos)]
    if years:
        return int(years[-1].group(1))
    head = norm[:pos]
    if ryear is not None:
        if "今年" in head:
            return ryear
        if "去年" in head or "一年来" in head or "过去一年" in head:
            return ryear - 1
    return None


# ---------------------------------------------------------------- pairs and CSV


def _pair_keys(indicator: str) -> set[str]:
    keys = {indicator, _drop_leading_verb(indicator)}
    return keys | {k[:-1] for k in keys if k.endswith("量") and len(k) > 4}


def figure_pairs(figures: Iterable[Figure]) -> list[FigurePair]:
    """Each target with the result of the same indicator, measure and unit from an earlier year, in the
    same report (with several reports, another region's result is no baseline for this one's target).

    Indicators match when one key ends with the other (到位资金 ↔ 引进国内到位资金; 牲畜存栏量 ↔
    牲畜存栏) and the shorter has at least four characters; ambiguous matches are left out.
    """
    figs = list(figures)
    results = [f for f in figs if f.kind == RESULT]
    out = []
    for t in (f for f in figs if f.kind == TARGET and f.year is not None):
        tk = _pair_keys(t.indicator)
        cands = [
            r for r in results
            if r.source == t.source and r.measure == t.measure and r.unit == t.unit and r.year is not None
            and r.year < t.year
            and any(_keys_match(a, b) for a in tk for b in _pair_keys(r.indicator))
        ]
        if len(cands) == 1:
            out.append(FigurePair(t.indicator, t.measure, t.unit, cands[0], t))
    return out


def _keys_match(a: str, b: str) -> bool:
    short, long_ = sorted((a, b), key=len)
    return len(short) >= 4 and long_.endswith(short)


def figures_csv(figures: Iterable[Figure]) -> str:
    """The rows as CSV text with a header (`CSV_COLUMNS`); write it with encoding ``utf-8-sig`` for Excel."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for f in figures:
        w.writerow(f.row())
    return buf.getvalue()




SORTS = {
    "文中顺序": lambda f: (f.source, f.start),
    "指标": lambda f: (f.indicator, f.source, f.start),
    "数值（从大到小）": lambda f: (-f.value, f.source, f.start),
    "数值（从小到大）": lambda f: (f.value, f.source, f.start),
    "年份": lambda f: (f.year or 0, f.source, f.start),
}
ALL = "全部"


def filter_figures(figures: Iterable[Figure], text: str = "", kind: str = ALL, measure: str = ALL,
                   year: str | int = ALL, sort: str = "文中顺序") -> list[Figure]:
    """The rows matching every filter, sorted. ``text`` matches indicator, section or sentence
    (spaces and width ignored); the others match exactly, "全部" matches all."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
    needle = normalize_span(text or "", range(len(text or "")))[0]
    out = []
    for f in figures:
        if kind != ALL and f.kind != kind or measure != ALL and f.measure != measure:
            continue
        if year not in (ALL, "", None) and str(f.year or "") != str(year):
            continue
        if needle and not any(needle in normalize_span(s, range(len(s)))[0] for s in (f.indicator, f.section, f.sentence)):
            continue
        out.append(f)
    return sorted(out, key=SORTS[sort])
