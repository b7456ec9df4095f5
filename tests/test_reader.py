"""What a question asks, the word bridge, and the reader's fitted models (fake embedder: fast)."""

import json

import numpy as np
import pytest

from app.bridge import Bridge, report_vocabulary
from app.features import QUESTION_FEATURES, SENTENCE_FEATURES
from app.question import analyze, asked_years, sentence_types, sentence_units
from app.reader import MODEL_PATH, ReaderModel, blocked_rows


@pytest.mark.parametrize("q,kind", [("2024年地区生产总值是多少？", "amount"), ("报告是哪天作的？", "date"),
                                    ("区长是谁", "person"), ("君尚奥特莱斯在哪条街上？", "place"),
                                    ("六个基地有哪些？", "list"), ("今年主要经济指标目标都列一下", "list"),
                                    ("为什么说竞争形势严峻？", "reason"),
                                    ("今年打算怎么帮小企业贷款？", "how"), ("什么是飞地经济？", "definition"),
                                    ("海拉尔在19个中心城区里排第几", "rank"), ("去年城镇调查失业率是多少", "percent")])
def test_a_question_says_what_kind_of_answer_it_wants(q, kind):
    assert kind in analyze(q).asks


@pytest.mark.parametrize("q,unit", [("区里去年财政进账多少钱", "money"), ("去年来海拉尔玩的人有多少？", "people"),
                                    ("去年办了多少件", "units"), ("今年要治理多大面积", "area")])
def test_a_question_says_which_unit_it_wants(q, unit):
    assert unit in analyze(q).units


def test_a_sentence_offers_answer_types_and_units():
    s = "一般公共预算收入完成 9.5 亿元，按可比口径同比增长 11.04%；"
    assert {"amount", "percent"} <= sentence_types(s)
    assert sentence_units(s) == {"money"}
    assert "date" in sentence_types("——2025 年1 月 20 日在海拉尔区第十六届人民代表大会第五次会议上")
    assert "person" in sentence_types("海拉尔区人民政府区长 于 民")
    assert "list" in sentence_types("围绕谢尔塔拉农牧场、哈克一五窑村、奋斗友联村开发乡村旅游产品")


@pytest.mark.parametrize("s,units", [("节能改造路灯 6,900 余盏", {"units"}), ("到基层出诊 520 余人次。", {"people"}),
                                     ("拆除围挡 1 万延长米，平整土地 32.82 万平方米。", {"length", "area"}),
                                     ("粮食产量达到 1.72 亿斤", {"weight"}), ("2025 年1 月 20 日", set()),
                                     ("具体来说，要做到八个“坚持”", {"units"}), ("概括起来有六个方面", {"units"}),
                                     ("第三个方面", set()), ("这是一个重要机遇", set())])
def test_a_unit_is_read_past_an_approximation_or_a_magnitude(s, units):
    assert sentence_units(s) == units


@pytest.mark.parametrize("q,asks,units", [("今年GDP打算涨多少", {"amount", "percent"}, set()),
                                           ("去年经济涨了几个点", {"amount", "percent"}, set()),
                                           ("去年中小学新进了多少个学生娃", {"amount"}, {"units", "people"}),
                                           ("报告是在第几届人大第几次会议上做的", {"rank"}, set()),
                                           ("今年打算怎么帮小企业贷款", {"how"}, set())])
def test_plan_words_ordinals_and_points_are_read_for_what_they_ask(q, asks, units):
    a = analyze(q)
    assert a.asks == asks and a.units == units


def test_a_rate_per_unit_is_its_own_answer_type():
    assert "per_unit" in analyze("家电以旧换新每台能补贴多少钱").asks and "per_unit" in analyze("新房均价多少一平").asks
    assert "per_unit" not in analyze("去年GDP多少").asks
    assert "per_unit" in sentence_types("深入开展节水行动，计划节水面积超过 1 万亩，亩均节水达到 30%。")
    assert "per_unit" not in sentence_types("组织开展家电以旧换新活动，销售额达到 8,209 万元。")


@pytest.mark.parametrize("q", ["海拉尔区在19个中心城区里排名如何？", "去年粮食收成咋样", "去年安全生产情况怎么样？",
                               "How is the economy doing?"])
def test_how_things_stand_is_not_asking_for_a_way(q):
    assert "how" not in analyze(q).asks


@pytest.mark.parametrize("q,person", [("区长叫什么名字", True), ("负责人叫啥", True), ("副区长都有谁", True),
                                      ("这份报告的标题叫啥", False), ("去年开张的那个大商场叫啥名", False)])
def test_a_name_asks_for_a_person_only_after_a_person_word(q, person):
    assert ("person" in analyze(q).asks) is person


@pytest.mark.parametrize("s,kind", [("哈克时空星漫谷、沿河体育公园等 4 个文旅重点项目顺利竣工。", "list"),
                                    ("（二）“稳”的基础不断巩固。", "list"), ("——坚持政治引领，筑牢忠诚担当之魂。", "list"),
                                    ("一是牢牢把握政策机遇。", "list"),
                                    ("鼓励企业利用技术改造更新生产线，提高核心竞争力。", "how"),
                                    ("海拉尔区在 19 个中心城区主要经济指标考核中排名连续靠后。", "rank"),
                                    ("在海拉尔区第十六届人民代表大会第五次会议上", "rank")])
def test_a_sentence_offers_what_its_form_supplies(s, kind):
    assert kind in sentence_types(s)


@pytest.mark.parametrize("s", ["计划投资 4,000 万元改造 21 个老旧小区，持续改善人居环境。",
                               "温暖工程 9 个项目全部完工，完成投资 2.87 亿元、惠及小区 108 个。"])
def test_a_count_of_things_is_not_a_list_of_them(s):
    assert "list" not in sentence_types(s)


@pytest.mark.parametrize("q,years", [("明年经济增长目标多少", {"2026"}), ("前年 来旅游的人有多少", {"2023"}),
                                     ("大前年GDP多少", {"2022"}), ("去年旅游收入比前年涨了多少", set()),
                                     ("2023年GDP多少", {"2023"}), ("去年GDP多少", set())])
def test_relative_years_the_report_does_not_cover_are_asked_years(q, years):
    assert asked_years(analyze(q), 2025) == years


def test_without_the_report_year_only_named_years_count():
    assert asked_years(analyze("明年GDP目标"), None) == frozenset()


def test_an_approximate_count_is_an_amount():
    from app.answer import has_figure

    assert has_figure("组织市级以上专家到基层出诊 520 余人次。") and has_figure("新增 20 多家企业")
    assert not has_figure("2024 年多措并举")


def test_which_ones_asks_for_names_not_a_count():
    assert analyze("今年乡村游主要搞哪几个村子").units == frozenset()
    assert "units" in analyze("去年新开了几个村子的乡村游").units


def test_time_words_are_not_topic_words():
    q = analyze("去年新增就业多少人？")
    assert q.time == "past" and "去年" not in q.terms and "就业" in "".join(q.terms)


def test_everyday_phrases_are_kept_whole_for_the_bridge():
    assert "新找到工作" in analyze("去年新找到工作的有多少人").phrases


def _unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_the_bridge_maps_an_unknown_word_to_its_nearest_report_terms():
    terms = ["供热", "老旧", "学前"]
    vecs = np.stack([_unit([1, 0, 0]), _unit([0, 1, 0]), _unit([0, 0, 1])])
    bridge = Bridge(terms, vecs, k=2, window=0.05)
    embed = lambda ws: np.stack([_unit([1, 0.1, 0]) if w == "暖气" else _unit([0, 0.2, 1]) for w in ws])
    out = bridge.neighbours(["暖气", "幼儿"], embed)
    assert [n.term for n in out["暖气"]] == ["供热"]  # the second is outside the window
    assert out["幼儿"][0].term == "学前"


def test_the_bridge_caches_words_it_has_seen():
    calls = []
    bridge = Bridge(["供热"], _unit([1, 0])[None, :])

    def embed(ws):
        calls.append(list(ws))
        return np.stack([_unit([1, 0])] * len(ws))

    bridge.neighbours(["暖气"], embed)
    bridge.neighbours(["暖气", "供暖"], embed)
    assert calls == [["暖气"], ["供暖"]]


def test_the_bridge_rejects_mismatched_vectors():
    with pytest.raises(ValueError, match="2 vocabulary terms but 1 vectors"):
        Bridge(["a", "b"], np.zeros((1, 3), np.float32))


def test_report_vocabulary_is_words_most_frequent_first():
    vocab = report_vocabulary(["新增就业人数增加，就业形势稳定。", "就业困难人员再就业。"], ["就业形势总体稳定"])
    assert vocab[0] == "就业" and all(2 <= len(w) <= 8 for w in vocab)


def test_the_committed_model_matches_the_features_this_code_computes():
    model = ReaderModel.load()
    assert model.sentence.features == SENTENCE_FEATURES and model.answer.features == QUESTION_FEATURES
    assert 0 < model.threshold < 1
    p = model.answer.probability(np.zeros((1, len(QUESTION_FEATURES))))
    assert 0 <= p[0] <= 1


def test_a_model_file_for_other_features_names_the_fix(tmp_path):
    d = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    d["sentence"]["features"] = d["sentence"]["features"][:-1]
    bad = tmp_path / "reader.json"
    bad.write_text(json.dumps(d), encoding="utf-8")
    with pytest.raises(ValueError, match="python -m app fit"):
        ReaderModel.load(bad)


def test_a_missing_model_file_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match="python -m app fit"):
        ReaderModel.load(tmp_path / "nope.json")


def test_headings_and_the_title_block_are_blocked_unless_the_question_is_about_the_document():
    col = {n: i for i, n in enumerate(SENTENCE_FEATURES)}
    X = np.zeros((4, len(SENTENCE_FEATURES)))
    X[0, col["heading"]] = 1  # a heading, content question
    X[1, col["front_matter"]] = 1  # the title block, content question
    X[2, col["front_matter"]] = X[2, col["front_asked"]] = 1  # the title block, "who gave the report?"
    assert blocked_rows(X).tolist() == [True, True, False, False]


def test_a_bare_form_of_address_is_never_an_answer():
    col = {n: i for i, n in enumerate(SENTENCE_FEATURES)}
    X = np.zeros((2, len(SENTENCE_FEATURES)))
    X[0, col["salutation"]] = 1  # "各位代表！"
    X[1, col["address"]] = 1  # "各位代表！一年来，我们狠抓政府自身建设…": content after the address
    assert blocked_rows(X).tolist() == [True, False]


@pytest.mark.parametrize("text,bare", [("各位代表！", True), ("各位代表：", True), ("同志们，朋友们！", True),
                                       ("各位代表！一年来，我们狠抓政府自身建设。", False), ("代表建议办理完毕。", False)])
def test_a_salutation_is_a_sentence_of_forms_of_address_only(text, bare):
    from app.features import _SALUTATION

    assert bool(_SALUTATION.fullmatch(text)) is bare


def test_a_heading_never_answers_a_content_question(fake_engine):
    eng = fake_engine.with_config(refuse=False)
    headings = {s.id for s in eng.data.sentences if s.text.rstrip("。") in {p for c in eng.data.chunks for p in c.path}}
    for q in ["海拉尔区有哪些冰雪旅游活动？", "守好安全稳定底线", "经济运行稳中有进", "就业形势总体稳定"]:
        a = eng.ask(q)
        assert a.found and a.text.rstrip("。") not in {eng.data.sentences[i].text.rstrip("。") for i in headings}, q


def test_a_question_about_another_year_than_the_best_match_is_refused(fake_engine):
    a = fake_engine.ask("2019年地区生产总值是多少？")
    assert not a.found and a.signals.get("time_clash") is True


def test_small_talk_gets_a_reply_and_no_quote(fake_engine):
    a = fake_engine.ask("谢谢！", history=["2024年地区生产总值是多少？"])
    assert (a.found, a.intent, a.text, a.passages) == (False, "smalltalk", "", ())
    assert "不客气" in a.message


@pytest.mark.parametrize("question, kind", [
    ("这份报告是谁作的？", "person"), ("做报告的人是啥职务", "person"), ("作报告的领导是什么职位", "person"),
    ("报告是哪天作的", "date"), ("这份报告是哪一年的", "date"), ("这篇报告的标题是什么", "title"),
    ("报告是在什么会上作的", "meeting"), ("报告里说的老旧小区改造了多少个", ""), ("今年的工作重点是什么", ""),
    ("Who delivered this report, and what is his job title?", "person"), ("这份报告叫什么名字", "title"),
])
def test_questions_about_the_report_itself_are_told_apart(question, kind):
    from app.question import about_document
    from app.textnorm import normalize

    assert about_document(normalize(question)) == kind


def test_the_answer_model_is_the_mean_of_its_seeded_tree_models():
    model = ReaderModel.load()
    d = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    assert len(model.answer.texts) == len(d["answer"]["lightgbm"]) > 1
    X = np.random.default_rng(0).uniform(0, 1, (3, len(QUESTION_FEATURES)))
    each = np.stack([b.predict(X, num_threads=1) for b in model.answer.boosters])
    assert np.allclose(model.answer.probability(X), each.mean(axis=0))
    assert not np.allclose(each[0], each[1])  # the seeds differ, or averaging would be pointless


def test_an_answer_model_with_no_trees_names_the_fix(tmp_path):
    d = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    d["answer"]["lightgbm"] = []
    bad = tmp_path / "reader.json"
    bad.write_text(json.dumps(d), encoding="utf-8")
    with pytest.raises(ValueError, match="python -m app fit"):
        ReaderModel.load(bad)


def _question_signal(engine, question: str, name: str) -> float:
    from app.features import question_features
    from app.reader import ReaderConfig

    prep = engine.prepare(question)
    r = engine.reader
    pool = r.pool(prep.query, prep.candidates, prep.bridges, prep.bridged_tokens, ReaderConfig(), prep.qvec)
    X = r.features(pool)
    scores = X[:, 0]
    return float(question_features(pool, X, scores, int(np.argmax(scores)), engine.lexicon)[QUESTION_FEATURES.index(name)])


def test_a_word_the_report_uses_only_for_another_time_than_asked_is_absent_in_frame(fake_engine):
    # 君尚 (a mall that opened in 2024) is named in the review of 2024 only; the 2025 plans never name it
    assert _question_signal(fake_engine, "今年君尚客流目标是多少？", "absent_in_frame") > 0
    assert _question_signal(fake_engine, "去年君尚客流多少？", "absent_in_frame") == 0
    assert _question_signal(fake_engine, "君尚客流多少？", "absent_in_frame") == 0  # no time asked


def test_the_tense_ranges_cover_the_review_and_the_plans(fake_engine):
    r = fake_engine.reader
    src = fake_engine.data.chunks[0].source
    past, future = r.tense_ranges[(src, "past")], r.tense_ranges[(src, "future")]
    chunks = fake_engine.data.chunks
    assert all(chunks[i].path[0].startswith("一、") for a, b in past for i in range(a, b))
    assert all(chunks[i].path[0].startswith("二、") for a, b in future for i in range(a, b))


def test_the_question_prior_applies_only_to_the_corpus_and_model_it_was_fitted_on():
    from app.reader import LinearModel, QuestionPrior

    lin = LinearModel(("v0", "v1"), (0.0, 0.0), (1.0, 1.0), (2.0, 0.0), 0.0)
    prior = QuestionPrior(lin, 1.0, 0.4, (("report.txt", "abc"),), "m")
    assert prior.applies({"model": {"id": "m"}, "corpus": {"report.txt": "abc"}})
    assert not prior.applies({"model": {"id": "m"}, "corpus": {"report.txt": "changed"}})
    assert not prior.applies({"model": {"id": "m"}, "corpus": {"report.txt": "abc", "other.txt": "x"}})
    assert not prior.applies({"model": {"id": "other-model"}, "corpus": {"report.txt": "abc"}})
    # it moves P(answer) in log-odds, towards answering for a question like the answered ones
    up, z = prior.combine(0.5, np.array([1.0, 0.0]))
    down, _ = prior.combine(0.5, np.array([-1.0, 0.0]))
    assert z == 2.0 and up > 0.5 > down and abs(up - 1 / (1 + np.exp(-2.0))) < 1e-9


def test_the_committed_prior_is_for_the_default_corpus_and_model():
    from app.corpus import corpus_digests
    from app.embedder import DEFAULT_MODEL

    from .conftest import REPORT

    model = ReaderModel.load()
    assert model.prior is not None and 0 < model.prior.threshold < 1 and model.prior.alpha > 0
    assert dict(model.prior.corpus) == corpus_digests(REPORT.parent) and model.prior.model_id == DEFAULT_MODEL
    assert len(model.prior.model.coef) == 384
