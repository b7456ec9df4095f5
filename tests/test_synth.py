"""The generated multi-report corpus: deterministic, parsed as generated, artifacts repaired, and the
committed multi-report questions are exactly what the generator gives."""

import json
import re

import pytest

from app import multieval
from app.corpus import load_corpus, sections
from app.synth import generate, write_corpus

from .conftest import REPORT


@pytest.fixture(scope="module")
def seed():
    return REPORT.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def multi_corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("multi-corpus")
    c = multieval.CORPUS
    write_corpus(d, c["n_reports"], small=c["small"], seed=c["seed"], include_seed=c["include_seed"])
    return d


def test_the_same_arguments_give_the_same_bytes(seed):
    assert generate(seed, 8) == generate(seed, 8)
    assert generate(seed, 8, seed=1) != generate(seed, 8)


def test_each_report_is_parsed_as_the_region_and_year_it_was_made_for(seed, tmp_path):
    made = generate(seed, 12)
    write_corpus(tmp_path, 12)
    docs, errors = load_corpus(tmp_path)
    assert not errors
    assert [(d.meta.region, d.meta.year) for d in docs] == [(r.region, r.year) for r in made]
    assert len({(r.region, r.year) for r in made}) == 12
    assert any(p.suffix == ".md" for p in tmp_path.iterdir()) and any(p.name.endswith(".meta.json")
                                                                       for p in tmp_path.iterdir())


def test_figures_change_but_the_seed_report_stays_verbatim(seed):
    reports = generate(seed, 6)
    assert reports[0].text == seed
    target = re.compile(r"地区生产总值增长 ([\d.]+)%左右")
    values = {target.search(r.text).group(1) for r in reports}
    assert len(values) >= 4  # figures differ from report to report


def test_pdf_artifacts_are_kept_in_the_files_and_repaired_in_the_sections(seed, tmp_path):
    write_corpus(tmp_path, 10)
    raw = "".join(p.read_text(encoding="utf-8") for p in tmp_path.glob("*.*") if not p.name.endswith(".json"))
    assert re.search(r"\n— \d+ —\n", raw) and re.search(r"政府公报\n", raw) and re.search(r"，\n\n", raw)
    docs, _ = load_corpus(tmp_path)
    for d in docs:
        for s in sections(d):
            assert not re.search(r"— \d+ —|政府公报", s.body.text), (d.source, s.breadcrumb)
            assert all(d.text[o] == ch for ch, o in zip(s.body.text, s.body.offsets))


def test_some_reports_put_their_plans_before_their_review(seed, tmp_path):
    write_corpus(tmp_path, 12)
    docs, _ = load_corpus(tmp_path)
    firsts = {sections(d)[1].path[0] for d in docs}
    assert any("主要工作" in f and f.startswith("一、") for f in firsts)


def test_committed_multi_report_questions_are_what_the_generator_gives(multi_corpus):
    committed = multieval.load()
    assert committed == json.loads(json.dumps(multieval.make_questions(multi_corpus), ensure_ascii=False))
    assert len(committed) >= 30


def test_every_gold_answer_is_verbatim_at_its_span(multi_corpus):
    for q in multieval.load():
        for e in q["expect"]:
            text = (multi_corpus / e["source"]).read_text(encoding="utf-8")
            assert [text[a:b] for a, b in e["spans"]] == e["answers"], q["id"]
