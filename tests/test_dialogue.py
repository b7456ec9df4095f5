"""Conversation: small talk, follow-ups that inherit what they leave out, and new questions that stand alone."""

import pytest

from app.dialogue import interpret, is_smalltalk


class Stats:
    """The report's co-occurrence, stated by hand for the words these tests use."""

    def __init__(self, together: set[frozenset] = frozenset()) -> None:
        self.together = together

    def related(self, a, b) -> bool:
        return any(frozenset((x, y)) in self.together or x == y for x in a for y in b)


NONE = Stats()
GDP = "2024年地区生产总值是多少？"


@pytest.mark.parametrize("text", ["你好", "您好！", "hi", "谢谢", "太感谢了，辛苦", "thx", "ok", "好的", "嗯嗯 知道了 再见",
                                  "你是谁啊", "你能做什么？", "你都会干些啥", "你可以回答什么", "Hi, who am I talking to?",
                                  "拜拜~", "👍 谢谢", "hi there, what can you do?", "謝謝你的幫忙", "你是谁？能干啥",
                                  "hi there, can you help me?", "谢谢 很有用", "太有帮助了", "very helpful, thanks"])
def test_greetings_thanks_and_questions_about_the_bot_are_small_talk(text):
    turn = interpret(text, [GDP], NONE)
    assert turn.intent == "smalltalk" and turn.resolved == "" and turn.reply


@pytest.mark.parametrize("text", ["谢谢，那今年呢？", "你好，2024年新增就业多少人？", "好的政策有哪些", "可以申请哪些补贴",
                                  "你能查到哪些项目", "会干什么的企业能拿补贴", "有用的政策有哪些"])
def test_a_question_after_a_greeting_is_still_a_question(text):
    assert not is_smalltalk(text)
    assert interpret(text, [], NONE).intent == "question"


@pytest.mark.parametrize("text", ["牛羊粪污去年利用得怎么样", "对外开放有哪些举措", "早餐工程办得怎么样", "哈克镇有什么项目",
                                  "可以办理哪些业务", "好的政策有哪些", "行政审批改革有哪些", "history of Hailar"])
def test_a_question_that_begins_like_small_talk_keeps_its_first_word(text):
    assert interpret(text, [], NONE).resolved == text


@pytest.mark.parametrize("text,rest", [("你好请问新增就业多少人", "请问新增就业多少人"), ("好的，那教育呢？", "那教育呢？"),
                                       ("谢谢你，那教育呢", "那教育呢"), ("早，新增就业多少人", "新增就业多少人"),
                                       ("hi, how many new jobs?", "how many new jobs?"), ("你好你好，新增就业多少人", "新增就业多少人")])
def test_small_talk_before_a_question_is_dropped(text, rest):
    assert interpret(text, [], NONE).resolved == rest


def test_the_small_talk_reply_points_to_example_questions():
    assert "？" in interpret("你好", [], NONE).reply


def test_a_time_only_follow_up_swaps_the_time():
    assert interpret("那2025年呢？", ["2024年新增就业多少人？"], NONE).resolved == "2025年新增就业多少人？"


def test_a_follow_up_naming_a_new_topic_keeps_the_time_and_drops_the_old_topic():
    resolved = interpret("那就业呢？", [GDP], NONE).resolved
    assert "就业" in resolved and "2024" in resolved and "地区生产总值" not in resolved


def test_a_follow_up_on_a_related_word_keeps_the_old_topic():
    stats = Stats({frozenset(("同比", "地区生产总值"))})
    resolved = interpret("那同比呢？", [GDP], stats).resolved
    assert resolved.startswith("同比") and "地区生产总值" in resolved


def test_a_question_with_no_topic_of_its_own_inherits_the_previous_one():
    resolved = interpret("同比增长了多少？", [GDP], NONE).resolved
    assert "地区生产总值" in resolved and resolved.startswith("同比增长了多少")


@pytest.mark.parametrize("q", ["今天天气怎么样？", "今年要改造多少个老旧小区？", "海拉尔区有哪些冰雪旅游活动？",
                               "报告是哪天作的？", "帮我写首关于草原的诗"])
def test_a_question_with_its_own_topic_is_never_merged(q):
    assert interpret(q, [GDP], NONE).resolved == q


def test_small_talk_in_the_history_carries_no_topic():
    assert interpret("那2025年呢？", ["2024年新增就业多少人？", "谢谢"], NONE).resolved == "2025年新增就业多少人？"


def test_a_chain_of_follow_ups_keeps_its_topic():
    history = ["2024年新增就业多少人？", "那2025年呢？"]
    assert interpret("那2024年呢？", history, NONE).resolved == "2024年新增就业多少人？"


def test_no_history_means_the_question_as_asked():
    assert interpret("那就业呢？", [], NONE).resolved == "那就业呢？"


@pytest.mark.parametrize("q, topic", [("发了多少钱", "临时救助"), ("今年想涨到多少", "临时救助"), ("花了多少钱？", "临时救助")])
def test_a_verb_with_an_aspect_or_a_modal_before_a_frame_word_is_no_topic(q, topic):
    resolved = interpret(q, ["去年临时救助了多少困难群众"], NONE).resolved
    assert resolved.startswith(q.rstrip("？")) and topic in resolved


@pytest.mark.parametrize("q", ["要素保障怎么做", "会展经济怎么发展", "想办法招商的措施有哪些"])
def test_words_that_merely_begin_like_a_modal_keep_their_topic(q):
    assert interpret(q, [GDP], NONE).resolved == q


def test_a_complete_looking_question_carries_a_follow_up_reading_when_its_words_go_with_the_topic():
    stats = Stats({frozenset(("居民", "小区"))})
    turn = interpret("惠及多少户居民？", ["去年老旧小区改造投了多少钱"], stats)
    assert turn.resolved == "惠及多少户居民？"  # asked as it stands first
    assert turn.fallback.startswith("惠及多少户居民？") and "小区" in turn.fallback


def test_no_follow_up_reading_for_a_question_unrelated_to_the_topic():
    assert interpret("明天会下雪吗", ["今年投资增长目标是多少"], NONE).fallback == ""
    assert interpret("惠及多少户居民？", [], NONE).fallback == ""
