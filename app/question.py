"""What a question asks, and what a sentence offers: answer types, time frame, topic terms. Pure.

The reader pairs the two: a "多少" question wants a sentence with an amount, a "什么时候" question a
date, "谁" a person, "有哪些" a list. These are generic properties of Chinese questions and
report sentences, not facts about one report; how much each pairing matters is fitted (fit.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .answer import has_figure, is_definition_question, time_frame
from .textnorm import content_terms, normalize

__all__ = ["ANSWER_TYPES", "UNIT_KINDS", "Query", "analyze", "asked_units", "asked_years", "sentence_types",
           "sentence_units"]

ANSWER_TYPES = ("amount", "percent", "date", "person", "place", "list", "reason", "how", "definition", "rank", "per_unit")

_ASKS = {
    "amount": r"多少|(?<![哪第])几[个家所项次条户人万亿位名期场座台笔处]|多大|多高|多长|多快|多远|多不多|多重|比例|比率|百分之|占比|"
              r"增速|增幅|增长了|涨了|降了|提高了|规模|金额|总额|面积|数量|产量|几成|how many|how much|percent|rate|number of|amount|growth",
    "percent": r"[^\w]?率|比例|比率|百分|占比|增速|增幅|增长了?多少|涨了?多少|降了?多少|提高了?多少|几成|几个点|多少个点|"
               r"percent|rate\b|growth",
    "date": r"什么时候|何时|哪天|哪一天|几月|几号|日期|哪年|哪一年|啥时候|when\b|what date|which day",
    # ("叫什么/名字" name a person only after a person word: "报告标题叫啥", "那个商场叫啥名" ask for things)
    "person": r"谁|哪位|什么人|啥人|(?:长|书记|主任|领导|负责人|人)\s*(?:的)?(?:姓名|名字|叫什么|叫啥)|姓什么|\bwho\b",
    "place": r"哪里|哪儿|在哪|什么地方|哪个地方|地点|位置|哪条|哪座|哪个村|where\b",
    "list": r"哪些|哪几|有什么|有啥|包括|包含|分别|都有|几个方面|哪[一二三四五六七八九十两]|列一下|列举|列出|罗列|"
            r"which\b|what are",
    "reason": r"为什么|为何|原因|为啥|怎么会|\bwhy\b",
    # (打算/准备 alone mark a plan, not a way: "今年GDP打算涨多少" asks an amount)
    # ("怎么样/咋样", or "如何" ending the question, ask how things stand, not a way: "排名如何", "收成咋样")
    "how": r"怎么(?!样)|如何(?!\s*[?。!]*$)|怎样(?!\s*[?。!]*$)|咋(?!样)|措施|办法|举措|靠什么|"
           r"\bhow\b(?! (?:many|much|is|are|was|were|about|did)\b)",
    "definition": None,  # is_definition_question
    "rank": r"第几|排名|排第|排多少|名次|rank",
    # a rate per head or per unit: "每台补贴多少", "暖气费每平米多少钱", "人均收入", "均价"
    "per_unit": r"每(?:[一个]?(?:台|个|人|户|平米?|平方米|亩|月|年|吨|斤|天|次|辆|套|间)|平)|人均|户均|亩均|均价|单价|一平|per (?:capita|person|head|unit)",
}
_ASK_RE = {k: re.compile(v, re.I) for k, v in _ASKS.items() if v}

_DATE = re.compile(r"\d{1,2}\s*月\s*\d{1,2}\s*日|\d{4}\s*年\s*\d{1,2}\s*月|[年月]底|年初|上半年|下半年|\d{4}\s*年底")
_PERSON = re.compile(r"(区长|书记|主任|局长|市长|县长|主席|旗长|镇长|部长|厅长|省长)\s*[\u4e00-\u9fff](\s?[\u4e00-\u9fff]){1,2}$|"
                     r"(区长|书记|主任|局长|市长|县长|主席|旗长|镇长|部长|厅长|省长)\s+[\u4e00-\u9fff]")
_PLACE = re.compile(r"[\u4e00-\u9fff]{1,8}(路|街|村|镇|乡|苏木|嘎查|社区|园区?|广场|小区|景区|基地|口岸|机场|河|山|湖|市|区|县|旗|省)(?![\u4e00-\u9fff]{0,1}(建设|发展|改造))")
# A list: three items or more, "A、B 等", clauses in a series, quoted names side by side ("“稳”“进”"), or one
# item of an enumeration ("（二）…", "——坚持…", "一是…").
_LIST = re.compile(r"(?:[^、，；]{1,20}、){2,}|；.*；|：.*；|[^、，；。]{1,30}、[^、，；。]{1,30}等|”\s*“|"
                   r"^\s*(?:（[一二三四五六七八九十]+）|——|[一二三四五六七八九十]是)")
_REASON = re.compile(r"因为|由于|为了|旨在|目的|是.{0,30}的结果|原因|之所以")
_HOW = re.compile(r"实施|推进|开展|加强|加快|推动|落实|建设|完善|提升|打造|深化|探索|促进|支持|引导|发放|通过|依托|围绕|"
                  r"鼓励|发挥|利用|建立|健全|树立|编制|争取|强化|优化|推行|推广|组织|规范|培育|引进|抓好|做好|用好|守住")
_DEFN = re.compile(r"是指|指的是|即[^使便]")
_RANK = re.compile(r"第\s*[一二三四五六七八九十\d]+\s*[名位届次]|排名第|位列第|排在第|首家|第一[个家名位]|"
                   r"排名[^，。；]{0,4}(?:靠前|靠后|前列|末位|落后)|位居|名列")
_HAN = re.compile(r"[\u4e00-\u9fff]")
# What a sentence can supply, by answer type ("amount" is `has_figure`).
_OFFERS = {"percent": re.compile(r"\d\s*[%‰]|百分之|\d\s*成"), "date": _DATE, "person": _PERSON, "place": _PLACE,
           "list": _LIST, "reason": _REASON, "how": _HOW, "definition": _DEFN, "rank": _RANK,
           "per_unit": re.compile(r"每[^，。；]{0,6}\d|人均|户均|亩均|均价|单价|每[一个]?(?:台|个|人|户|平方米|亩|月|年|吨)|/\s*[\u4e00-\u9fff]")}


@dataclass(frozen=True)
class Query:
    text: str  # the (resolved) question as asked
    norm: str  # normalised (Simplified, half width, lower case)
    terms: tuple[str, ...]  # topic words (jieba words and figures minus question words)
    phrases: tuple[str, ...]  # runs of 3–6 Han characters between function words ("新找到工作")
    asks: frozenset  # answer types the question asks for (subset of ANSWER_TYPES)
    time: str | None  # "past" / "future" / None
    years: frozenset  # explicit years named ("2024")
    crosslingual: bool  # no Chinese at all
    units: frozenset = frozenset()  # unit kinds the question asks in ("money" for 多少钱, "people" for 多少人)
    document: str = ""  # a question about the report itself: "person" (who gave it), "date", "meeting", "title"

    def wants(self, kind: str) -> bool:
        return kind in self.asks

    def time_in(self, year: int | None) -> str | None:
        """The time frame asked of a report of ``year`` (its 今年 is ``year``, its 去年 ``year`` − 1)."""
        return time_frame(self.norm, year)


def analyze(question: str) -> Query:
    norm = normalize(question)
    asks = {k for k, rx in _ASK_RE.items() if rx.search(norm)}
    if is_definition_question(norm):
        asks.add("definition")
    if "list" in asks and "definition" in asks and not re.search(r"什么是|是什么意思|指什么|含义|啥意思|mean", norm):
        asks.discard("definition")  # "有哪些" is a list question, not a definition
    terms = tuple(t for t in content_terms(norm)
                  if not re.fullmatch(r"(19|20)\d\d年?|今年|去年|明年|前年|目标|计划|多少|什么", t))
    return Query(question, norm, terms, _phrases(norm), frozenset(asks), time_frame(question),
                 frozenset(re.findall(r"(?:19|20)\d\d", norm)), not _HAN.search(norm), asked_units(norm),
                 about_document(norm, asks))


_ABOUT_DOC = re.compile(r"(?:这份|这篇|这个|本)?(?:政府)?(?:工作)?报告|这份|这篇|讲话|发言|\breport\b|\bspeech\b")
# (who before title: "Who delivered this report, and what is his job title?" asks for the person)
_DOC_ASK = {
    "person": re.compile(r"谁|哪位|什么人|啥人|职务|职位|身份|什么官|啥官|哪个领导|什么领导|who|delivered by|position"),
    "title": re.compile(r"标题|题目|名字叫|叫什么|title|called"),
    "meeting": re.compile(r"什么会|哪个会|哪次会|几届|第几次|会议|大会|meeting|session|congress"),
    "date": re.compile(r"哪天|哪一天|什么时候|何时|几月|几号|日期|哪年|哪一年|年份|when|what date|which year"),
}


# Relative years a report of year Y does not cover (it reviews Y − 1 and plans Y): 前年 = Y − 2, 明年 = Y + 1.
# "比前年涨了多少" names the year before last only as the baseline of a year-on-year change, which the
# report gives for Y − 1, so a comparison does not ask about that year.
_OTHER_YEARS = (("大前年", -3), ("前年", -2), ("明年", 1), ("后年", 2))
_BASELINE = re.compile(r"(?:比|较|跟|和|与|同)\s*$")


def asked_years(q: Query, year: int | None) -> frozenset:
    """The years a question asks about: the ones it names, and for a report of ``year`` the relative
    years outside the two it covers ("明年呢" asks about year + 1)."""
    if year is None:
        return q.years
    out = set(q.years)
    rest = q.norm
    for word, delta in _OTHER_YEARS:
        for m in re.finditer(word, rest):
            if not _BASELINE.search(rest[max(0, m.start() - 2): m.start()]):
                out.add(str(year + delta))
        rest = rest.replace(word, " ")  # "大前年" is not also a "前年"
    return frozenset(out)


def about_document(norm: str, asks=frozenset()) -> str:
    """What a question asks about the report itself (its title block answers it), or ""."""
    if not _ABOUT_DOC.search(norm):
        return ""
    for kind, rx in _DOC_ASK.items():
        if rx.search(norm):
            return kind
    return ""


# Unit words by kind: what "多少钱", "几家", "多少人次", "多大面积" ask for, and what a figure is in.
UNIT_KINDS = {
    "money": "元|钱|资金|金额|投资|花费|收入|销售额|交易额|预算|费",
    "people": "人次|人|名|位|人口|人数",
    "units": "户|家|所|座|处|个|项|条|件|笔|场|次|期|台|盏|架次|篇|头|只",
    "area": "亩|平方米|平方公里|公顷|面积",
    "length": "公里|千米|米|延长米|长度",
    "weight": "吨|斤|产量",
}
# ("哪几个村子" asks for names and "第几次" for a rank, not a count; "几个点" asks percentage points)
_ASK_UNIT = {k: re.compile(rf"(?:多少|(?<![哪第])几|多大|多长|多重)\s*(?:万|亿)?\s*(?:{v})(?!百?分?点)|"
                           rf"(?:{v})\s*(?:是|有|达到|为)?\s*(?:多少|(?<![哪第])几)")
             for k, v in UNIT_KINDS.items()}
_GENERIC_COUNT = re.compile(r"(?:多少|(?<![哪第])几)\s*个(?!百?分?点)")  # "多少个学生": a count of things or of people
# A figure and its unit, allowing an approximation and a magnitude between them: "6,900 余盏",
# "520 余人次", "1 万延长米", "2.2 亿元" (thousands separators are gone after `normalize`).
_UNIT_WORDS = "|".join(sorted({u for v in UNIT_KINDS.values() for u in v.split("|")}, key=len, reverse=True))
_UNIT_FIGURE = re.compile(r"\d+(?:\.\d+)?\s*(?:余|多)?\s*(?:万|亿)?\s*(" + _UNIT_WORDS + ")")
# A count in Chinese numerals: "八个“坚持”", "三项", "两家" (not an ordinal "第三个", and not a bare
# "一个", which is mostly an article: "一个重要…").
_CN_COUNT = re.compile(r"(?<![第一二三四五六七八九十两百千])(?:[两二三四五六七八九十]|[一二三四五六七八九十两]?[十百千][一二三四五六七八九]?)"
                       r"\s*(个|项|家|所|座|处|条|件|名|位|户|次|场|方面)")


def asked_units(norm: str) -> frozenset:
    kinds = {k for k, rx in _ASK_UNIT.items() if rx.search(norm)}
    if _GENERIC_COUNT.search(norm):
        kinds.add("people")  # "个" counts people too ("多少个学生" → "6,655 人")
    return frozenset(kinds)


@lru_cache(maxsize=65536)
def sentence_units(text: str) -> frozenset:
    """Unit kinds of the figures in a sentence ("9.5 亿元" → money, "6,738 户" → units)."""
    out = set()
    norm = normalize(text)
    for m in (*_UNIT_FIGURE.finditer(norm), *_CN_COUNT.finditer(norm)):
        for k, v in UNIT_KINDS.items():
            if re.fullmatch(rf"(?:{v})", m.group(1)):
                out.add(k)
    if any(m.group(1) == "方面" for m in _CN_COUNT.finditer(norm)):
        out.add("units")
    return frozenset(out)


_FUNCTION = re.compile(r"(?:19|20)\d\d年?|去年|今年|明年|前年|多少|哪些|哪几|什么|怎么样?|如何|为什么|为啥|是否|有没有|"
                       r"[的了是有在和与及吗呢吧啊呀么嘛几谁哪啥咋把被给让从向对为也都还就又才要会能想请问说]|[^\u4e00-\u9fff]+")


def _phrases(norm: str) -> tuple[str, ...]:
    """Everyday multi-word expressions a word-by-word bridge would cut apart ("找到工作" → 就业)."""
    runs = [r for r in _FUNCTION.split(norm) if 3 <= len(r) <= 6]
    return tuple(dict.fromkeys(runs))


@lru_cache(maxsize=65536)
def sentence_types(text: str) -> frozenset:
    """Answer types a sentence can supply (cached: the same report sentences recur across questions)."""
    out = {kind for kind, rx in _OFFERS.items() if rx.search(text)}
    if has_figure(text):
        out.add("amount")
    elif _CN_COUNT.search(normalize(text)):
        out.add("amount")  # "要做到八个“坚持”" answers "几个坚持"
    return frozenset(out)
