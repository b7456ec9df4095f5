"""Normalisation and Chinese tokenisation shared by the corpus side and the question side.

Both sides go through the same `normalize`, so "海拉爾區", "２３１．５２ 億元" and "231.52亿元"
all meet the report's "海拉尔区" and "231.52 亿元". Tokens for BM25 are
  - figures kept whole with their unit ("231.52亿元", "5.8%", "6738户") and bare ("231.52"),
  - jieba search-mode words, and
  - Han character bigrams (robust to segmentation differences and typos),
so a run of Han characters is never one giant token and nothing scores zero by accident.
"""

from __future__ import annotations

import re
import sys
import threading
import unicodedata
from contextlib import contextmanager
from functools import lru_cache

__all__ = ["content_terms", "figures", "normalize", "simplified", "tokenize"]

_HAN = "\u4e00-\u9fff"
_SPACE_NEAR_HAN = re.compile(rf"(?<=[{_HAN}\d%])\s+(?=[{_HAN}])|(?<=[{_HAN}])\s+(?=[{_HAN}\d])")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
UNITS = (
    "万亩|万平方米|平方米|万人次|人次|万人|万户|万头|万吨|万件|万条|万元|亿元|亿斤|万只|"
    "亿|万|元|个|人|户|家|亩|吨|公里|千米|米|延长米|所|期|场|次|篇|件|笔|架次|盏|项|处|条|台|座|名|"
    "头|只|斤|年|天|%|‰|倍|成|蒸吨"
)
_FIGURE = re.compile(rf"\d+(?:\.\d+)?\s*(?:(?:余|多)\s*(?={UNITS}))?(?:{UNITS})?")  # "520 余人次", "20 多家"
_WORD = re.compile(rf"[{_HAN}]+|[a-z]+|\d+(?:\.\d+)?%?")
# Question words and particles that carry no topic.
STOPWORDS = frozenset(
    "的 了 是 在 和 与 及 等 吗 呢 吧 啊 呀 么 嘛 哪 哪些 哪个 什么 多少 几 怎么 怎样 如何 为什么 请问 "
    "请 我 你 他 它 我们 有 有没有 没有 是否 多 少 又 也 都 还 就 那 那么 这 这个 那个 一下 告诉 知道 "
    "想 问 一 个 去年 今年 明年 年 报告 政府 工作 提到 说 讲 情况 方面 主要 具体 哪里 何 啥 咋 为 对 "
    "这份 这篇 那份 哪几个 哪几 哪天 哪年 几个 一共 总共 大概 大约 左右 大家 咱们 他们 她们 它们 你们 区里 "
    "现在 目前 到底 究竟 一些 这些 那些 什么样 怎么样 多大 多久 能否 可以 能不能 会不会 打算 准备 "
    "the a an of in on to for is are was were what how many much which who when where did does do".split()
)

# Everyday names and abbreviations for the report's official terms (applied to questions).
SYNONYMS = {
    "gdp": "地区生产总值", "国内生产总值": "地区生产总值", "生产总值": "地区生产总值", "社零": "社会消费品零售总额",
    "固投": "固定资产投资", "财政收入": "一般公共预算收入", "外贸": "进出口",
}
_SYN = re.compile("|".join(sorted((re.escape(k) for k in SYNONYMS if k != SYNONYMS[k]), key=len, reverse=True)))

_lock = threading.Lock()


# How much the economy grew, or how big it is, is what GDP measures, in any report of this kind:
# "去年经济涨了多少", "经济总量多大" ask for 地区生产总值 — unless "…经济" is a kind of economy the report
# names ("数字经济规模", "冰雪经济增长"), which `present` (the report's word test) tells.
_ECONOMY = re.compile(r"经济(?=总量|规模|增速|增幅|增长|涨|发展速度)")


def expand_query(normalized: str, present=None) -> str:
    """Replace everyday terms with the report's own ("gdp" → "地区生产总值"); with ``present``, also
    the economy's growth or size with 地区生产总值."""
    out = _SYN.sub(lambda m: SYNONYMS[m.group()] if SYNONYMS[m.group()] not in normalized else m.group(), normalized)
    if present is None or "地区生产总值" in out:
        return out

    def gdp(m):
        run = re.search(r"[\u4e00-\u9fff]{0,4}$", out[: m.start()]).group()  # the Han characters just before
        kind = any(present(run[-k:] + "经济") for k in range(2, len(run) + 1))
        return m.group() if kind else "地区生产总值"

    return _ECONOMY.sub(gdp, out)


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def simplified(text: str) -> str:
    """Traditional characters as Simplified, nothing else changed (what the encoder reads: the report
    is in Simplified, and so were the questions the reader was fitted on)."""
    return _t2s().convert(text)


def normalize(text: str) -> str:
    """Traditional→Simplified, full→half width, lower case, no spaces around Han characters,
    no thousands separators ("6,738" → "6738")."""
    text = unicodedata.normalize("NFKC", re.sub(r"[\ud800-\udfff]", "\ufffd", text))
    text = simplified(text)
    text = _SPACE_NEAR_HAN.sub("", text)
    text = _THOUSANDS.sub("", text)
    return text.lower()


def figures(normalized: str) -> list[str]:
    """Figures with their unit, spaces removed: "231.52亿元", "5.8%", "6738户"."""
    return [re.sub(r"\s+", "", m.group()) for m in _FIGURE.finditer(normalized)]


@lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(60)
    with _lock:
        jieba.initialize()
    return jieba


def _own_words(words) -> list[str]:
    return sorted({w for w in (normalize(w).strip("“”\"") for w in words) if 2 <= len(w) <= 12})


def add_words(words) -> None:
    """Teach the segmenter the corpus's own terms (glossary entries, section leads)."""
    jb = _jieba()
    for w in _own_words(words):
        jb.add_word(w)


_MISSING = object()


class DocumentSegmenter:
    """A jieba segmenter of its own for index builds, taught one document's terms at a time.

    `words(titles)` adds a document's section titles for the duration of a `with` block and then
    restores the dictionary exactly, so a document's tokens depend only on that document — not on
    which documents a process (or a Dask worker) happened to tokenize before. That is what makes a
    distributed build equal to a single-process one. The process-wide segmenter the question side
    uses is never touched."""

    def __init__(self) -> None:
        import jieba

        _jieba()  # the default dictionary's cache file exists after this
        self.jb = jieba.Tokenizer()
        self.jb.initialize()

    @contextmanager
    def words(self, words):
        jb = self.jb
        saved: dict = {}
        total = jb.total
        try:
            for w in _own_words(words):
                for i in range(1, len(w) + 1):
                    saved.setdefault(w[:i], jb.FREQ.get(w[:i], _MISSING))
                jb.add_word(w)
            yield jb
        finally:
            for k, v in saved.items():
                if v is _MISSING:
                    jb.FREQ.pop(k, None)
                else:
                    jb.FREQ[k] = v
            jb.total = total


@lru_cache(maxsize=1)
def document_segmenter() -> DocumentSegmenter:
    return DocumentSegmenter()


def tokenize(text: str, *, normalized: bool = False, jb=None) -> list[str]:
    """BM25 tokens: whole figures, bare numbers, jieba search-mode words, Han bigrams.
    ``jb``: the segmenter (default: the process-wide one the question side uses)."""
    norm = text if normalized else normalize(text)
    tokens: list[str] = []
    for fig in figures(norm):
        tokens.append(fig)
        bare = re.match(r"\d+(?:\.\d+)?", fig).group()
        if bare != fig:
            tokens.append(bare)
    for w in (jb or _jieba()).cut_for_search(norm):
        w = w.strip()
        if w and w not in STOPWORDS and _WORD.fullmatch(w) and not w[0].isdigit():
            tokens.append(w)
    for run in re.findall(rf"[{_HAN}]{{2,}}", norm):
        tokens.extend("#" + run[i : i + 2] for i in range(len(run) - 1))
    # Tokens repeat endlessly across a corpus; interned, each list holds pointers to shared strings
    # (a 5 MB file: 1.95 GB peak before, see the note in the commit).
    return [sys.intern(t) for t in tokens]


def content_terms(text: str) -> list[str]:
    """Topic words of a question (jieba words minus question words), for coverage checks."""
    norm = normalize(text)
    out = [f for f in figures(norm)]
    for w in _jieba().cut(norm):
        w = w.strip()
        if w and w not in STOPWORDS and _WORD.fullmatch(w) and not w[0].isdigit() and len(w) >= 2:
            out.append(w)
    return list(dict.fromkeys(out))
