"""Named features of (question, candidate sentence) pairs and of a question's best candidate.

The reader's models (`reader.py`) are fitted on these by `python -m app fit`; nothing here is
weighted by hand. Each feature is a plain number with a name, so the fit can print an importance
table and a reader can see why a sentence won.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .answer import section_time, section_year
from .chunking import Chunk, Sentence
from .lexicon import Lexicon
from .question import ANSWER_TYPES, Query, asked_years, sentence_types, sentence_units
from .textnorm import normalize

__all__ = ["QUESTION_FEATURES", "SENTENCE_FEATURES", "Pool", "question_features", "sentence_features"]

SENTENCE_FEATURES = (
    # similarity (the model's view)
    "dense", "dense_gap", "dense_chunk", "fused", "chunk_rank",
    # words (the report's own, and bridged from everyday words)
    "bm25", "bm25_bridged", "cov", "cov_bridged", "cov_chunk", "cov_bigram",
    # answer type asked vs. present
    *(f"want_{t}_has" for t in ANSWER_TYPES), *(f"want_{t}_lacks" for t in ANSWER_TYPES), "unit_match", "unit_lacks",
    # time
    "time_match", "time_clash", "year_clash",
    # where the sentence sits
    "heading", "front_matter", "front_asked", "glossary", "glossary_named", "lead_in", "first_in_section",
    "length", "address", "salutation", "hub",
)

QUESTION_FEATURES = (
    "reader_score", "reader_margin", "dense", "dense_gap_second", "cov", "cov_bridged", "cov_chunk",
    "absent", "absent_in_frame", "absent_bridged_sim", "oov_bigrams", "miss_idf", "type_lacks", "unit_lacks",
    "time_clash", "year_clash",
    "crosslingual", "n_terms", "heading", "front_matter", "front_asked", "glossary_named", "on_topic", "dense_max", "bm25_raw",
)

_DOC_WORDS = re.compile(r"报告|这份|这篇|讲话|作报告|做报告|念的|发言|会议|大会|标题|题目|speech|report|delivered")
_HAN2 = re.compile(r"[\u4e00-\u9fff]{2,}")
# A sentence made only of forms of address ("各位代表！", "同志们："): it says nothing, so it answers nothing.
_SALUTATION = re.compile(r"(?:(?:各位|尊敬的|亲爱的)?(?:人大)?(?:代表|委员|同志|朋友|来宾|女士|先生)们?[，,、和及与]?)+[！!：:，,。]?")


@dataclass(frozen=True)
class Pool:
    """Everything the features of one question's candidates are computed from."""

    query: Query
    sentence_ids: tuple[int, ...]
    dense: np.ndarray  # cosine question–sentence, per candidate
    bm25: np.ndarray  # sentence BM25, plain question tokens, per candidate
    bm25_bridged: np.ndarray  # sentence BM25 with bridged tokens, per candidate
    chunk_of: tuple[int, ...]  # the best-scoring chunk holding each candidate
    fused: dict  # chunk id -> fused retrieval score
    chunk_rank: dict  # chunk id -> rank in retrieval order (0 = first)
    chunk_dense: dict  # chunk id -> cosine question–chunk (dense search results only)
    bridges: dict  # question word -> tuple[Neighbour, ...] (words the report does not use)
    glossary_named: frozenset  # glossary chunk ids whose term the question names
    paths: tuple = ()  # the section path of each candidate's chunk
    on_topic: float = 0.0  # cosine of the question with the corpus centroid: how much it is about the report at all
    within: object = None  # the chunks a filter keeps (vectors.Subset), or None: words are present or absent there
    in_frame: object = None  # the chunks in the tense the question asks (vectors.Subset), or None: no time asked


def _coverage(terms: Sequence[str], weights: Sequence[float], hay: str) -> float:
    total = sum(weights)
    return sum(w for t, w in zip(terms, weights) if t in hay) / total if total else 0.0


def _bridged_coverage(terms, weights, hay: str, bridges: dict) -> float:
    total = sum(weights)
    if not total:
        return 0.0
    got = 0.0
    for t, w in zip(terms, weights):
        if t in hay:
            got += w
        else:
            hits = [n for n in bridges.get(t, ()) if n.term in hay]
            if hits:
                got += w * max(n.similarity for n in hits)
    return got / total


def _is_heading(s: Sentence, chunk: Chunk) -> bool:
    bare = s.text.rstrip("。：:；;！!")
    return any(bare == p or p.startswith(bare) for p in chunk.path) or (
        len(s.text) < 40 and not re.search(r"[，,；;。\d]", s.text[:-1]) and s.text[-1:] in "。：" and len(s.text) < 16)


def sentence_features(pool: Pool, sentences: Sequence[Sentence], chunks: Sequence[Chunk], lex: Lexicon,
                      first_section: dict, hub: np.ndarray, years: dict | None = None) -> np.ndarray:
    """One row per candidate, columns in `SENTENCE_FEATURES` order. ``years``: each source file's
    report year, against which the question's time words and the sections' tenses are read."""
    years = years or {}
    q = pool.query
    terms = list(q.terms)
    weights = [max(lex.idf(t), 0.1) for t in terms]
    bigrams = {m[i:i + 2] for m in _HAN2.findall(q.norm) for i in range(len(m) - 1)}
    dmax = float(pool.dense.max()) if len(pool.dense) else 0.0
    bmax = float(pool.bm25.max()) if len(pool.bm25) and pool.bm25.max() > 0 else 1.0
    bbmax = float(pool.bm25_bridged.max()) if len(pool.bm25_bridged) and pool.bm25_bridged.max() > 0 else 1.0
    fmax = max(pool.fused.values()) if pool.fused else 1.0
    nrank = len(pool.chunk_rank) + 1
    dchunk_floor = min(pool.chunk_dense.values()) if pool.chunk_dense else 0.0
    # about the document itself: its title, who gave it, when, where — or who/when with no other topic
    asks_doc = bool(_DOC_WORDS.search(q.norm)) or bool(q.asks & {"person", "date"})
    wanted_by_year: dict = {}  # the years asked, read once per report year (a big corpus has few)
    rows = []
    for i, sid in enumerate(pool.sentence_ids):
        s = sentences[sid]
        c = chunks[pool.chunk_of[i]]
        sent_norm = normalize(c.path[-1] + " " + s.text)
        chunk_norm = lex.chunk_norm[c.id]
        types = sentence_types(s.text)
        year = years.get(c.source)
        st = section_time(c.path, year)
        frame = q.time_in(year)
        f = {
            "dense": float(pool.dense[i]),
            "dense_gap": float(pool.dense[i]) - dmax,
            "dense_chunk": pool.chunk_dense.get(c.id, dchunk_floor),
            "fused": pool.fused.get(c.id, 0.0) / fmax,
            "chunk_rank": math.log1p(pool.chunk_rank.get(c.id, nrank)),
            "bm25": float(pool.bm25[i]) / bmax,
            "bm25_bridged": float(pool.bm25_bridged[i]) / bbmax,
            "cov": _coverage(terms, weights, sent_norm),
            "cov_bridged": _bridged_coverage(terms, weights, sent_norm, pool.bridges),
            "cov_chunk": _coverage(terms, weights, chunk_norm),
            "cov_bigram": (sum(b in sent_norm for b in bigrams) / len(bigrams)) if bigrams else 0.0,
        }
        for t in ANSWER_TYPES:
            asked = t in q.asks
            f[f"want_{t}_has"] = float(asked and t in types)
            f[f"want_{t}_lacks"] = float(asked and t not in types)
        units = sentence_units(s.text)
        f["unit_match"] = float(bool(q.units & units))
        f["unit_lacks"] = float(bool(q.units) and not (q.units & units))
        f["time_match"] = float(bool(frame and st == frame))
        f["time_clash"] = float(bool(frame and st and st != frame))
        if year not in wanted_by_year:
            wanted_by_year[year] = asked_years(q, year)
        wanted = wanted_by_year[year]
        if wanted:
            have = set(re.findall(r"(?:19|20)\d\d", c.breadcrumb + c.text))
            about = section_year(c.path, year)
            if about is not None:
                have.add(str(about))
            f["year_clash"] = float(bool(wanted - have))
        else:
            f["year_clash"] = 0.0
        front = first_section.get(c.source) == c.section
        f["heading"] = float(_is_heading(s, c))
        f["front_matter"] = float(front)
        f["front_asked"] = float(front and asks_doc)
        f["glossary"] = float(c.path[0] == "名词解释")
        f["glossary_named"] = float(c.id in pool.glossary_named)
        f["lead_in"] = float(s.text.endswith(("：", ":")))
        f["first_in_section"] = float(s.id == 0 or sentences[s.id - 1].section != s.section)
        f["length"] = math.log1p(len(s.text))
        f["address"] = float(bool(re.match(r"各位代表|同志们", s.text)))
        f["salutation"] = float(bool(_SALUTATION.fullmatch(s.text.strip())))
        f["hub"] = float(hub[sid])  # closeness to the corpus centroid: generic sentences match every question a little
        rows.append([f[n] for n in SENTENCE_FEATURES])
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(SENTENCE_FEATURES))


def chunks_path(pool: Pool, i: int) -> tuple[str, ...]:
    return pool.paths[i] if pool.paths else ()


def question_features(pool: Pool, X: np.ndarray, scores: np.ndarray, best: int, lex: Lexicon) -> np.ndarray:
    """The refusal model's inputs: the best candidate's features plus question-level evidence."""
    col = {n: i for i, n in enumerate(SENTENCE_FEATURES)}
    q = pool.query
    order = np.argsort(-scores)
    second = float(scores[order[1]]) if len(order) > 1 else float(scores[best]) - 5.0
    dense_sorted = np.sort(pool.dense)[::-1]
    terms = list(q.terms)
    absent = [t for t in terms if not lex.present(t, pool.within)]
    weights = {t: max(lex.idf(t), 0.1) for t in terms}
    wsum = sum(weights.values()) or 1.0
    bridged_sim = [max((n.similarity for n in pool.bridges.get(t, ())), default=0.0) for t in absent]
    bigrams = [m[i:i + 2] for m in _HAN2.findall(q.norm) for i in range(len(m) - 1)]
    row = X[best]
    # the most distinctive question word that neither the answer sentence (with its section path)
    # nor any of the word's bridged neighbours covers: "区委书记" against "区长 于 民"
    s = pool.sentence_ids[best]
    hay = lex.sentence_norm[s] + normalize(" ".join(chunks_path(pool, best)))
    missing = [t for t in terms if t not in hay and not any(n.term in hay for n in pool.bridges.get(t, ()))]
    idf_cap = lex.idf_cap
    miss_idf = max((min(lex.idf(t), idf_cap) if lex.present(t, pool.within) else idf_cap for t in missing), default=0.0)
    f = {
        "reader_score": float(scores[best]),
        "reader_margin": float(scores[best]) - second,
        "dense": row[col["dense"]],
        "dense_gap_second": float(dense_sorted[0] - dense_sorted[1]) if len(dense_sorted) > 1 else 0.0,
        "cov": row[col["cov"]],
        "cov_bridged": row[col["cov_bridged"]],
        "cov_chunk": row[col["cov_chunk"]],
        "absent": sum(weights[t] for t in absent) / wsum,
        # words the report uses, but never in the part of the time asked: "2025年新增就业目标" when 新增就业
        # appears only in the review of 2024
        "absent_in_frame": (sum(weights[t] for t in terms if t not in absent and not lex.present(t, pool.in_frame))
                            / wsum) if pool.in_frame is not None else 0.0,
        "absent_bridged_sim": float(np.mean(bridged_sim)) if bridged_sim else 1.0,
        "oov_bigrams": (sum(not lex.present(b, pool.within) for b in bigrams) / len(bigrams)) if bigrams else 0.0,
        "miss_idf": miss_idf / idf_cap,
        "type_lacks": float(sum(row[col[f"want_{t}_lacks"]] for t in ANSWER_TYPES)),
        "unit_lacks": row[col["unit_lacks"]],
        "time_clash": row[col["time_clash"]],
        "year_clash": row[col["year_clash"]],
        "crosslingual": float(q.crosslingual),
        "n_terms": math.log1p(len(terms)),
        "heading": row[col["heading"]],
        "front_matter": row[col["front_matter"]],
        "front_asked": row[col["front_asked"]],
        "glossary_named": row[col["glossary_named"]],
        "on_topic": pool.on_topic,
        "dense_max": float(pool.dense.max()) if len(pool.dense) else 0.0,
        "bm25_raw": math.log1p(float(pool.bm25[best])),  # absolute word overlap, not relative to the other candidates
    }
    return np.asarray([f[n] for n in QUESTION_FEATURES], dtype=np.float64)
