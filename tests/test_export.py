"""Markdown export of a conversation and the plain text behind each answer's copy button."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from app.engine import Answer, Passage
from app.export import answer_plain_text, conversation_markdown

P = Passage("2024 年，地区生产总值预计完成 231.52 亿元，同比增长 5.5%；", "一、2024 年工作回顾 › （一）…", 0.91,
            "r.txt", 345, 378, 345, 378)
A = Answer("2024年GDP是多少？", True, "2024 年，地区生产总值预计完成 231.52 亿元，同比增长 5.5%；", "一、2024 年工作回顾 › （一）…",
           "r.txt", 345, 378, "地区生产总值预计完成 231.52 亿元", 352, 370, 0.93, "2024年GDP是多少？", (P,))
NONE = Answer("<img src=x onerror=alert(1)> *粗体*", False, "", "", "", -1, -1, "", -1, -1, 0.2, "<img src=x>", (P,))
NOW = datetime(2025, 3, 1, tzinfo=timezone.utc)


def test_markdown_holds_question_quote_with_span_path_and_offsets():
    md = conversation_markdown([A], now=NOW)
    assert "## 1. 2024年GDP是多少？" in md
    assert "> 「2024 年，【地区生产总值预计完成 231.52 亿元】，同比增长 5.5%；」" in md
    assert "—— 一、2024 年工作回顾 › （一）…" in md
    assert "文件 r.txt，第 345–378 字符；答案 352–370 字符" in md
    assert "(?doc=r.txt&start=345&end=378&hs=352&he=370)" in md


def test_links_are_absolute_when_the_server_address_is_known():
    md = conversation_markdown([A], base_url="http://127.0.0.1:7860/", now=NOW)
    assert "(http://127.0.0.1:7860/?doc=r.txt&start=345&end=378&hs=352&he=370)" in md


def test_a_refusal_is_exported_with_its_related_passages_and_user_text_escaped():
    md = conversation_markdown([A, NONE], now=NOW)
    assert "## 2. \\<img src=x onerror=alert\\(1\\)\\> \\*粗体\\*" in md
    assert "> 报告中没有找到这个问题的答案。" in md
    assert "相关段落：" in md
    assert re.search(r"(?<!\\)[<*]", md) is None  # every < and * escaped


def test_copy_text_is_the_quote_with_the_span_and_where_it_is_from():
    assert answer_plain_text(A) == ("「2024 年，【地区生产总值预计完成 231.52 亿元】，同比增长 5.5%；」\n"
                                    "—— 一、2024 年工作回顾 › （一）…（r.txt，第 345–378 字符；答案 352–370）")
    assert answer_plain_text(NONE) == "报告中没有找到这个问题的答案。"


def test_small_talk_is_exported_and_copied_as_its_reply():
    hello = Answer("你好", False, "", "", "", -1, -1, "", -1, -1, 0.0, "", (), intent="smalltalk",
                   message="你好！我可以回答关于这份报告的问题。")
    md = conversation_markdown([hello], now=NOW)
    assert "## 1. 你好\n\n你好！我可以回答关于这份报告的问题。" in md and "没有找到" not in md
    assert answer_plain_text(hello) == "你好！我可以回答关于这份报告的问题。"


def test_a_comparison_exports_and_copies_one_labelled_quote_per_report():
    from dataclasses import replace

    y24 = replace(A, label="2024年", citation="海拉尔区 2024 年政府工作报告 › 一、… ", source="r2024.txt")
    y25 = replace(A, label="2025年", citation="海拉尔区 2025 年政府工作报告 › 一、…", source="r2025.txt",
                  text="2025 年，地区生产总值增长 5.8%；", highlight="地区生产总值增长 5.8%")
    both = replace(y25, question="2024年和2025年的GDP分别是多少？", parts=(y24, y25), label="")
    md = conversation_markdown([both], now=NOW)
    assert md.index("**2024年**") < md.index("文件 r2024.txt") < md.index("**2025年**") < md.index("文件 r2025.txt")
    assert "—— 海拉尔区 2025 年政府工作报告 › 一、…" in md  # the citation names the document
    copied = answer_plain_text(both)
    assert copied.startswith("2024年：「") and "\n\n2025年：「2025 年，【地区生产总值增长 5.8%】；」" in copied
