"""Lists a sentence announces and the following sections spell out (app/lists.py): pure, no index."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from app.lists import announced_count, announced_items, chinese_number, item_name, section_heads


@dataclass(frozen=True)
class S:  # the fields of chunking.Sentence that lists.py reads
    id: int
    chunk: int
    section: int
    text: str


@dataclass(frozen=True)
class C:
    source: str
    path: tuple


def _doc(sections, source="r.txt"):
    """sections: [(path, [sentence texts])] → sentences, chunks (one chunk per section)."""
    sents, chunks = [], []
    for sec, (path, texts) in enumerate(sections):
        chunks.append(C(source, tuple(path)))
        for t in texts:
            sents.append(S(len(sents), sec, sec, t))
    return sents, chunks


def _items(sections, lead_text):
    sents, chunks = _doc(sections)
    heads = section_heads(sents, chunks)
    lead = next(s for s in sents if s.text == lead_text)
    ids = announced_items(lead, heads, {h.section: i for i, h in enumerate(heads)})
    return [sents[i].text for i in ids]


LEAD = "具体来说，要做到三个“坚持”。"
REPORT = [
    (("二、工作",), ["今年是关键一年。", LEAD]),
    (("二、工作", "（一）坚持大抓项目"), ["（一）坚持大抓项目，在发展上突破。", "细节。"]),
    (("二、工作", "（一）坚持大抓项目", "认真谋划项目"), ["认真谋划项目。"]),
    (("二、工作", "（二）坚持转型升级"), ["（二）坚持转型升级，在动能上突破。"]),
    (("二、工作", "（三）坚持人民至上"), ["（三）坚持人民至上，在民生上突破。"]),
    (("三、政府建设",), ["各位代表！"]),
]


def test_the_sections_after_an_announcing_sentence_are_its_items_subsections_skipped():
    assert _items(REPORT, LEAD) == ["（一）坚持大抓项目，在发展上突破。", "（二）坚持转型升级，在动能上突破。",
                                    "（三）坚持人民至上，在民生上突破。"]


def test_a_count_that_does_not_match_the_sections_gives_no_list():
    sections = [(p, [t.replace("三个", "四个") for t in ts]) for p, ts in REPORT]
    assert _items(sections, LEAD.replace("三个", "四个")) == []


def test_a_sentence_inside_its_section_announces_nothing_there():
    sections = [(("二、工作",), [LEAD, "今年是关键一年。"]), *REPORT[1:]]
    assert _items(sections, LEAD) == []


def test_numbering_must_start_at_one_and_run_on():
    sections = [REPORT[0], REPORT[3], REPORT[4], REPORT[1]]  # （二）（三）（一）
    assert _items(sections, LEAD) == []


def test_dashes_and_children_one_level_down_count_too():
    sections = [
        (("三、政府建设",), ["要做到两个方面："]),
        (("三、政府建设", "——坚持政治引领"), ["——坚持政治引领，筑牢忠诚之魂。"]),
        (("三、政府建设", "——坚持崇法善治"), ["——坚持崇法善治，扛起职守之责。"]),
    ]
    assert _items(sections, "要做到两个方面：") == ["——坚持政治引领，筑牢忠诚之魂。", "——坚持崇法善治，扛起职守之责。"]


def test_the_list_ends_with_its_document():
    sents, chunks = _doc(REPORT[:2])
    more, more_chunks = _doc(REPORT[3:5], source="other.txt")
    sents += [S(len(sents) + s.id, s.chunk + 2, s.section + 2, s.text) for s in more]
    chunks += more_chunks
    heads = section_heads(sents, chunks)
    lead = sents[1]
    assert announced_items(lead, heads, {h.section: i for i, h in enumerate(heads)}) == ()


@pytest.mark.parametrize("text, n", [("一", 1), ("八", 8), ("十", 10), ("十二", 12), ("二十", 20), ("两", 2),
                                     ("12", 12), ("百", None), ("一二", None)])
def test_chinese_numbers(text, n):
    assert chinese_number(text) == n


def test_the_count_is_the_last_one_named_and_small():
    assert announced_count("概括起来，有六个方面特征：") == 6
    assert announced_count("探索建设四个平台，创新打造六个基地。") == 6
    assert announced_count("完成投资 37.56 亿元。") is None
    assert announced_count("建设 64 个公共充电桩。") is None  # more than a list of sections


def test_the_item_name_is_after_the_marker_up_to_the_first_comma():
    text = "（一）坚持大抓项目，在夯实发展基础上实现更大突破。"
    a, b = item_name(text)
    assert text[a:b] == "坚持大抓项目"
    text = "（二）“稳”的基础不断巩固。"
    a, b = item_name(text)
    assert text[a:b] == "“稳”的基础不断巩固"
