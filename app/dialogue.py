"""Conversation: small talk, and what a follow-up question means given the ones before it.

    interpret(message, history, stats) -> Turn(intent, resolved, reply)

- Greetings, thanks, goodbyes and "who are you" get a short friendly reply and no quote.
- A follow-up inherits only what it leaves out and replaces what it names. After
  "2024年地区生产总值是多少？": "那2025年呢？" swaps the time; "那就业呢？" swaps the topic (就业 and
  地区生产总值 never share a sentence of the report, so 就业 is a new topic: "2024年就业是多少？");
  "同比增长了多少？" refines it (同比增长 shares a sentence with 地区生产总值, so both are kept).
- A question that names its own topic stands alone and is never merged with the one before.

Whether two topics belong together is read off the report itself (`CorpusStats.cooccur`), not
from a list of this report's phrases. Pure: the statistics come in as an argument.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, Sequence

from .textnorm import content_terms, expand_query, normalize

__all__ = ["CorpusStats", "Turn", "interpret", "is_smalltalk", "smalltalk_reply", "topic_terms"]

EXAMPLES = ("2024年地区生产总值是多少？", "今年要改造多少个老旧小区？", "什么是飞地经济？")

# Small talk is a closed class: greetings, thanks, goodbyes, acknowledgements, questions about the bot.
_SMALL = {
    "greeting": r"你好|您好|嗨|哈喽|哈啰|hello|hi|hey|早上好|上午好|中午好|下午好|晚上好|早安|早|在吗|在不在|喂|大家好|"
                r"good morning|good afternoon|good evening",
    "thanks": r"谢谢|多谢|感谢|谢了|谢啦|thx|thanks|thank you|thank u|辛苦|麻烦你了|有劳|感恩|appreciate it",
    "bye": r"再见|拜拜|拜|bye|goodbye|回头见|下次见|下次再聊|再会|先这样|晚安|告辞|没事了|不用了|算了",
    "ack": r"好的|好吧|好滴|好嘞|ok|okay|嗯+|哦+|噢|知道了|明白了?|懂了?|了解了?|收到|行吧?|可以|不错|厉害|棒|牛|哈+|666|赞|对了|对啦|对|"
           r"是的|没问题|太好了|挺好|很好|真好|好极了|有用|有帮助|帮了大忙|管用|靠谱|great|cool|nice|got it|i see|helpful|useful",
    "identity": r"你是谁|你叫什么(名字)?|你叫啥(名字)?|你是什么|你有什么用|你?(都|还)?(能|会|可以)(帮我)?(干|做|帮|答|回答)?(点|些)?(什么|啥|哪些)|"
                r"怎么用|怎么问|介绍一下你自己|自我介绍|你是机器人吗|你是真人吗|你是人吗|你是ai吗|who are you|what are you|"
                r"what can you do|what do you do|who am i (talking|speaking|chatting) (to|with)|who is this|can you help( me)?|help|帮助",
}
_FILLER = r"[\s,，.。!！?？~～…、:：;；'\"“”()（）\[\]【】\U0001F300-\U0001FAFF\u2600-\u27BF\uFE0F]|啊|呀|呢|吧|啦|哦|喔|嘛|哈|了|太|真|非常|十分|特别|很|挺|一下|你|您|们|的|请问|问一下|呗|咯|么|吗|帮忙|so much|very|a lot|for|you|the|there|everyone|all"
_SMALL_RE = re.compile(r"(?:" + "|".join(f"(?P<{k}>{v})" for k, v in _SMALL.items()) + r"|" + _FILLER + r")+", re.I)
# A greeting, thanks or acknowledgement before a question ("你好，…", "谢谢！那就业呢"). A word of two
# or more characters may run straight into the question ("你好请问…"); a single character needs a
# separator after it, or it is the question's own first word ("对外开放", "牛羊粪污", "早餐", "哈克镇").
_SEP = r"[\s,，.。!！~～]"
_LEADING_WORDS = "|".join(_SMALL[k] for k in ("greeting", "thanks", "ack"))
_RUN_ON = "|".join((_SMALL["greeting"], _SMALL["thanks"], r"嗯+|哦+|ok|okay|对了|对啦"))
_LEADING_SMALL = re.compile(rf"^(?:(?:(?:{_RUN_ON})(?<=\w\w)(?:(?:你|您)(?!好)|啦|了)?(?![a-z]){_SEP}*|(?:{_LEADING_WORDS})(?:(?:你|您)(?!好)|啦|了)?{_SEP}+))+", re.I)

_TIME = re.compile(r"(?:19|20)\d\d\s*年?度?|去年|今年|明年|前年|后年|上一年|上年|本年度|this year|last year|next year", re.I)
_MARKER = re.compile(r"^(?:那么|那|还有|另外|再问一下|再问|and|what about|how about)\s*|(?:呢|的呢)\s*[？?]?\s*$", re.I)
_LEAD_MARKER = re.compile(r"^(?:那么|那|还有|另外|再问一下|再问|and|what about|how about)", re.I)
_ANAPHORA = re.compile(r"^(?:具体|其中|这个|那个|这些|那些|它们?|他们|她们|该|上述|这方面|这块|这一块|they|it|its|those|these)")
_FORM = re.compile(r"是多少|多少[个家人户项亿万元钱]*|有哪些|哪些|是什么|什么|几[个家项人户]?|怎么样|如何|怎么|为什么|是否|有没有|多大|"
                   r"how many|how much|what|which|why|how")
_DOCUMENT = re.compile(r"报告|这份|这篇|讲话|发言|会议|大会|标题|题目|report|speech")
_MODAL = re.compile(r"^(?:想|要|能|会|可以|打算|准备)+")
# Words that frame a question (a plan, a result, a change) without naming its topic.
_FRAME = frozenset("目标 计划 打算 准备 预计 力争 实现 完成 达到 情况 增长 增速 增幅 涨 提高 下降 同比 总共 一共 大概 "
                   "具体 主要 分别 要求 进展 变化".split())


class CorpusStats(Protocol):
    def related(self, a: Sequence[str], b: Sequence[str]) -> bool: ...  # some report sentence holds a term of each


@dataclass(frozen=True)
class Turn:
    intent: str  # "question" or "smalltalk"
    resolved: str  # the question to answer, after follow-up resolution ("" for small talk)
    reply: str = ""  # what to say for small talk
    kind: str = ""  # which small talk: greeting / thanks / bye / ack / identity
    # The message read as a follow-up of the previous question, when it looked complete on its own
    # ("惠及多少户居民？" after "去年老旧小区改造投了多少钱"): asked only if the report does not
    # answer the message as it stands (Engine).
    fallback: str = ""


def _small_kind(text: str) -> str | None:
    t = normalize(text).strip()
    m = _SMALL_RE.fullmatch(t)
    if not m or not re.search(r"\w", t):
        return None
    for k in ("identity", "thanks", "bye", "greeting", "ack"):
        if re.search(_SMALL[k], t, re.I):
            return k
    return None


def is_smalltalk(text: str) -> bool:
    return _small_kind(text) is not None


def smalltalk_reply(kind: str) -> str:
    ex = "、".join(f"“{e}”" for e in EXAMPLES)
    return {
        "thanks": f"不客气！还想了解报告的哪方面？例如 {ex}",
        "bye": "再见！有关于报告的问题随时来问。",
        "identity": ("我是政府工作报告问答助手：回答时逐字引用报告原文，标出答案和所在章节；报告没有写的，我会直说。"
                     f"可以这样问：{ex}"),
        "ack": f"好的。还有什么想问的吗？例如 {ex}",
    }.get(kind, f"你好！我可以回答关于这份政府工作报告的问题，并给出原文出处。例如 {ex}")


def _is_frame(term: str) -> bool:
    """A frame word, a frame word after a modal ("想涨", "要涨"), or one verb character with an aspect
    particle ("发了", "花了"): how a question asks, not what it is about."""
    stem = term.rstrip("了过着")
    if stem in _FRAME or (len(stem) == 1 and stem != term):
        return True
    m = _MODAL.match(stem)
    return bool(m) and stem[m.end():] in _FRAME


def topic_terms(text: str) -> list[str]:
    """The words that name what a question is about (not its time, question form or frame)."""
    norm = expand_query(normalize(text))
    pieces = [p for p in re.split(f"{_TIME.pattern}|{_FORM.pattern}", norm, flags=re.I) if p and p.strip()]
    terms = [t for p in pieces for t in content_terms(p)]
    return [t for t in dict.fromkeys(terms) if not re.fullmatch(r"[\d.%]+.*", t) and not _is_frame(t)
            and not re.fullmatch(r"[比和与跟同]?.", t)]


def _strip(text: str) -> str:
    prev = None
    while prev != text:
        prev, text = text, _MARKER.sub("", text.strip()).strip()
    return text


def _resolve(q: str, prev: str, stats: CorpusStats, *, follow: bool = False) -> str:
    """``q`` given the previous question ``prev``; ``follow``: read it as a follow-up even though it
    looks complete on its own (the reading asked only when ``q`` alone finds no answer)."""
    core = _strip(q)
    # a leading "那/还有/what about" marks a follow-up; a trailing "呢" only when the question has no form of its own
    marker = bool(_LEAD_MARKER.search(q.strip())) or (bool(_MARKER.search(q.strip())) and not _FORM.search(core))
    anaphora = bool(_ANAPHORA.match(core))
    own = topic_terms(core)
    prev_topic = topic_terms(prev)
    about_document = bool(_DOCUMENT.search(core))
    # a complete question (its own topic and its own question form, no pronoun pointing back) stands
    # alone even after "那…": "那2025年新增就业目标是多少？" is not about the previous topic
    complete = bool(own) and bool(_FORM.search(core)) and not anaphora
    if about_document or (not follow and (complete or not (marker or anaphora or not own))):
        return q  # it names its own topic (or asks about the report itself): a new question
    if not core:
        return prev
    # The follow-up replaces what it names and inherits what it leaves out: the previous question's
    # time (unless it gives one), its question form (unless it has one), and those of its topic
    # words that the report uses together with the new ones (none, when the topic changed).
    times = _TIME.findall(core)
    rest = _TIME.sub("", core).strip(" ，,的")
    if times and not rest and _TIME.search(prev):
        return _TIME.sub(times[0], prev, count=1)  # only a time ("那2025年呢？"): swap it
    base = expand_query(normalize(prev))
    if times:
        base = _TIME.sub("", base)
    if _FORM.search(_TIME.sub("", core)):
        base = _FORM.sub("", base)
    for t in prev_topic:
        if own and not stats.related(own, [t]):
            base = base.replace(t, "")
    base = re.sub(r"[\s？?。，,]+", " ", base).strip()
    return f"{core} {base}".strip() if base else core


def interpret(message: str, history: Sequence[str], stats: CorpusStats) -> Turn:
    """What ``message`` asks, given the user's earlier messages (oldest first)."""
    kind = _small_kind(message)
    if kind:
        return Turn("smalltalk", "", smalltalk_reply(kind), kind)
    m = _LEADING_SMALL.match(message.strip())
    q = message.strip()[m.end():] if m and re.search(r"\w", message.strip()[m.end():]) else message.strip()
    prev = ""
    for h in history:  # resolve the history in order, so chains keep their topic
        h = h.strip()
        if not h or _small_kind(h):
            continue
        hm = _LEADING_SMALL.match(h)
        if hm and re.search(r"\w", h[hm.end():]):
            h = h[hm.end():]
        prev = _resolve(h, prev, stats) if prev else h
    resolved = _resolve(q, prev, stats) if prev else q
    # A message that stood alone may still be a fragment of the previous topic, but only if the report
    # uses its words together with that topic's ("居民" with "老旧小区"; not "下雪" with "投资").
    fallback = ""
    if prev and resolved == q:
        own, before = topic_terms(_strip(q)), topic_terms(prev)
        if own and before and stats.related(own, before):
            fallback = _resolve(q, prev, stats, follow=True)
    return Turn("question", resolved, fallback=fallback if fallback != q else "")
