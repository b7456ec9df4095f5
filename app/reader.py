"""The reader: candidates from retrieval → the answering sentence, its span, or an explicit "no answer".

Two small fitted models (weights in app/models/reader.json, written by `python -m app fit`):

- the **sentence model** scores every candidate sentence from its named features (features.py);
  the best one is the quote — except that a heading or the title block never answers a question
  that is not about the document itself;
- the **answer model** (gradient-boosted trees, monotone in every feature whose meaning has a
  direction) gives the probability that the report answers at all, from the best candidate and
  question-level evidence; below its fitted threshold the reader says "no answer" (a scored
  alternative, not a similarity cut-off);
- on the corpus it was fitted on, a **question prior** (logistic, on the question's vector) adds
  what the dev questions taught about which questions this report leaves unanswered.

The reader never searches: it takes `Candidates` and returns a `Reading`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from .answer import best_span, section_time
from .chunking import Sentence
from .features import QUESTION_FEATURES, SENTENCE_FEATURES, Pool, question_features, sentence_features
from .index import IndexData
from .lexicon import Lexicon
from .lists import announced_count, announced_items, section_heads
from .question import Query
from .retrieval import Candidates, Retriever
from .topk import top_n
from .vectors import Subset

__all__ = ["MODEL_PATH", "BoostedModel", "LinearModel", "QuestionPrior", "Reader", "ReaderConfig", "ReaderModel",
           "Reading", "blocked_rows"]

MODEL_PATH = Path(__file__).resolve().parent / "models" / "reader.json"


@dataclass(frozen=True)
class LinearModel:
    """A standardised logistic model: score = coef · (x − mean) / scale + intercept."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def score(self, X: np.ndarray) -> np.ndarray:
        Z = (X - np.asarray(self.mean)) / np.asarray(self.scale)
        return Z @ np.asarray(self.coef) + self.intercept

    @classmethod
    def from_dict(cls, d: dict) -> "LinearModel":
        return cls(tuple(d["features"]), tuple(d["mean"]), tuple(d["scale"]), tuple(d["coef"]), float(d["intercept"]))


@dataclass(frozen=True)
class BoostedModel:
    """Gradient-boosted trees giving a probability: the mean of a few models fitted with different
    bagging seeds (less variance than any one of them), each in LightGBM's own text format inside
    the JSON file."""

    features: tuple[str, ...]
    texts: tuple[str, ...]

    @property
    def boosters(self) -> list:
        bs = self.__dict__.get("_boosters")
        if bs is None:
            from .imports import import_without

            # lightgbm would import pandas and scikit-learn, which prediction does not use (1 s of a cold start)
            lightgbm = import_without("lightgbm", ("pandas", "sklearn"))
            bs = [lightgbm.Booster(model_str=t) for t in self.texts]
            object.__setattr__(self, "_boosters", bs)  # a cache, not state: same model texts, same boosters
        return bs

    def probability(self, X: np.ndarray) -> np.ndarray:
        return np.mean([b.predict(X, num_threads=1) for b in self.boosters], axis=0).astype(np.float64)

    @classmethod
    def from_dict(cls, d: dict) -> "BoostedModel":
        texts = d["lightgbm"]
        if isinstance(texts, str):
            texts = [texts]
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError("'lightgbm' must be a model text or a non-empty list of them")
        return cls(tuple(d["features"]), tuple(texts))


@dataclass(frozen=True)
class QuestionPrior:
    """What the dev questions taught about *this* report: a logistic model on the question's vector
    alone, "is this the kind of question the report answers?" (writers of natural questions keep
    asking for the same things the report leaves out: 失业率, 债务余额, which 58 小区). It is added to
    the answer model's log-odds with weight ``alpha`` and has its own threshold; both were chosen
    with folds that hold out whole writers (fit.py). It means nothing for another corpus or another
    model, so it applies only to the corpus files and the model it was fitted on."""

    model: LinearModel
    alpha: float
    threshold: float  # replaces ReaderModel.threshold when the prior applies
    corpus: tuple[tuple[str, str], ...]  # (source, sha256) of every corpus file at fit time
    model_id: str

    def applies(self, manifest: dict) -> bool:
        return (manifest.get("model", {}).get("id") == self.model_id
                and tuple(sorted(manifest.get("corpus", {}).items())) == self.corpus)

    def combine(self, p_answer: float, qvec: np.ndarray) -> tuple[float, float]:
        """(P(answer) with the prior, the prior's own log-odds)."""
        z = float(self.model.score(np.asarray(qvec, dtype=np.float64).reshape(1, -1))[0])
        p = min(max(p_answer, 1e-9), 1 - 1e-9)
        logit = np.log(p / (1 - p)) + self.alpha * z
        return float(1 / (1 + np.exp(-logit))), z

    @classmethod
    def from_dict(cls, d: dict) -> "QuestionPrior":
        return cls(LinearModel.from_dict(d), float(d["alpha"]), float(d["threshold"]),
                   tuple(sorted((str(k), str(v)) for k, v in d["corpus"].items())), str(d["model_id"]))


@dataclass(frozen=True)
class ReaderModel:
    sentence: LinearModel
    answer: BoostedModel
    threshold: float  # P(the report answers) below this → no answer
    prior: QuestionPrior | None = None  # for the corpus the model was fitted on (None: none fitted)

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> "ReaderModel":
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
            model = cls(LinearModel.from_dict(d["sentence"]), BoostedModel.from_dict(d["answer"]), float(d["threshold"]),
                        QuestionPrior.from_dict(d["prior"]) if d.get("prior") else None)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"reader model {path} is missing or malformed ({exc}): run `python -m app fit`") from None
        if model.sentence.features != SENTENCE_FEATURES or model.answer.features != QUESTION_FEATURES:
            raise ValueError(f"reader model {path} was fitted on other features than this code computes: "
                             "run `python -m app fit`")
        return model


def blocked_rows(X: np.ndarray) -> np.ndarray:
    """Candidates that may not be the answer: a bare form of address ("各位代表！"); a heading, or the
    title block, on a question that is not about the document (who gave it, when, its title)."""
    col = {n: i for i, n in enumerate(SENTENCE_FEATURES)}
    structural = (X[:, col["heading"]] > 0) | (X[:, col["front_matter"]] > 0)
    return (structural & (X[:, col["front_asked"]] == 0)) | (X[:, col["salutation"]] > 0)


@lru_cache(maxsize=1)
def default_model() -> ReaderModel:
    return ReaderModel.load()


@dataclass(frozen=True)
class ReaderConfig:
    pool_chunks: int = 8  # sentences of this many top chunks are candidates …
    pool_sentences: int = 20  # … plus this many top sentences by dense and by BM25 score
    refuse: bool = True  # False: always quote the best sentence (tests, diagnostics)
    model: ReaderModel | None = None  # None: the committed default


@dataclass(frozen=True)
class Reading:
    order: tuple[int, ...]  # chunk ids to show, the quote's own chunk first
    marks: dict  # chunk id -> the Sentence to mark in it
    sentence: Sentence | None  # the answering sentence(s), None when there is no answer
    found: bool
    span: tuple[int, int] = (0, 0)  # the highlight inside sentence.text
    score: float = 0.0  # P(the report answers this), from the answer model
    signals: dict = field(default_factory=dict)  # the answer model's features, by name
    items: tuple[Sentence, ...] = ()  # the items a list question's sentence announces (lists.py), in order


class Reader:
    def __init__(self, data: IndexData, retriever: Retriever, lexicon: Lexicon) -> None:
        self.data = data
        self.retriever = retriever
        self.lexicon = lexicon
        self.first_section: dict[str, int] = {}
        self._prior_ok: dict[tuple, bool] = {}  # does a model's question prior apply to this index?
        for c in data.chunks:
            self.first_section.setdefault(c.source, c.section)
        first = set(self.first_section.values())
        self.title_sentences: dict[str, list[int]] = {}  # each document's title block, by source
        for s in data.sentences:
            if s.section in first:
                self.title_sentences.setdefault(data.chunks[s.chunk].source, []).append(s.id)
        self.years = {d.source: d.meta.year for d in data.documents}
        # each report's chunks by tense (the part reviewing the past, the part planning), as id ranges
        self.tense_ranges: dict[tuple[str, str], list[tuple[int, int]]] = {}
        self._frame_subsets: dict[tuple, Subset] = {}  # (sources or None, frame per year) -> Subset
        self.sources_by_year = _by_year(dict.fromkeys(c.source for c in data.chunks), self.years)
        for c in data.chunks:
            tense = section_time(c.path, self.years.get(c.source))
            if tense:
                runs = self.tense_ranges.setdefault((c.source, tense), [])
                if runs and runs[-1][1] == c.id:
                    runs[-1] = (runs[-1][0], c.id + 1)
                else:
                    runs.append((c.id, c.id + 1))
        centroid = data.sentence_vectors.mean(axis=0) if len(data.sentence_vectors) else np.zeros(1, np.float32)
        centroid = centroid / (np.linalg.norm(centroid) or 1.0)
        self.centroid = centroid.astype(np.float32)
        self.hub = data.sentence_vectors @ centroid if len(data.sentence_vectors) else np.zeros(0, np.float32)

    # ---------------------------------------------------------------- candidates and features

    def pool(self, q: Query, cands: Candidates, bridges: dict, bridged_tokens: tuple[str, ...],
             cfg: ReaderConfig, qvec: np.ndarray) -> Pool:
        data, holders, scope = self.data, self.retriever.holders, cands.scope
        # Sentence scores over the whole index, or over the filter's documents only (then
        # position j of these arrays is sentence `glob[j]`).
        glob = None if scope is None else scope.sentences.ids()
        sims = cands.sentence_sims if cands.sentence_sims is not None else self.retriever.sentence_sims(qvec, scope)
        bm25 = self.retriever.sentence_bm25(cands.tokens, scope)
        bm25b = self.retriever.sentence_bm25(cands.tokens + bridged_tokens, scope) if bridged_tokens else bm25
        gloss = self.lexicon.glossary_hits(q.norm)
        if scope is not None:
            gloss = [c for c in gloss if c in scope.chunks]
        if len(gloss) > cfg.pool_chunks:  # many reports explain the term: the entries retrieval ranks best
            rank = {c: r for r, c in enumerate(cands.order)}
            gloss = sorted(gloss, key=lambda c: (rank.get(c, len(rank)), c))[: cfg.pool_chunks]
        ids = {s for c in cands.order[: cfg.pool_chunks] for s in self.retriever.sentences_of.get(c, [])}
        ids |= {s for c in gloss for s in self.retriever.sentences_of.get(c, [])}
        n = cfg.pool_sentences
        top_dense = top_n(sims, n)
        top_bm25 = [i for i in top_n(bm25b, n) if bm25b[i] > 0]
        ids |= {int(i) if glob is None else int(glob[i]) for i in (*top_dense, *top_bm25)}
        if q.document:  # the title block is where a question about the report is answered
            sources = self.title_sentences if scope is None else {s: self.title_sentences.get(s, ()) for s in scope.sources}
            if len(sources) > cfg.pool_chunks:  # many reports: the title blocks of those retrieval ranks best
                top_docs = {data.chunks[c].source for c in cands.order[: cfg.pool_chunks]}
                sources = {s: v for s, v in sources.items() if s in top_docs}
            ids |= {s for sids in sources.values() for s in sids}
        sent_ids = tuple(sorted(ids))
        fused = cands.fused
        chunk_of = tuple(max(holders[s], key=lambda c: (fused.get(c, 0.0), -c)) for s in sent_ids)
        idx = list(sent_ids) if glob is None else scope.sentences.positions(sent_ids)
        return Pool(q, sent_ids, sims[idx], bm25[idx], bm25b[idx], chunk_of, dict(fused),
                    {c: r for r, c in enumerate(cands.order)}, dict(cands.dense), bridges, frozenset(gloss),
                    tuple(data.chunks[c].path for c in chunk_of), float(qvec @ self.centroid),
                    None if scope is None else scope.chunks, self._in_frame(q, scope))

    def _in_frame(self, q: Query, scope) -> Subset | None:
        """The chunks, in the question's scope, of the part of each report in the time the question
        asks (its 去年 → the review, its 今年 → the plans); None when it asks no time."""
        sources = self.sources_by_year if scope is None else _by_year(scope.sources, self.years)
        # one reading of the question per report year (a big corpus has few years)
        frames = tuple((year, q.time_in(year)) for year in sources)
        if not any(f for _, f in frames):
            return None
        key = (None if scope is None else scope.sources, frames)
        sub = self._frame_subsets.get(key)
        if sub is None:
            sub = Subset.of(r for year, f in frames if f for s in sources[year] for r in self.tense_ranges.get((s, f), ()))
            if len(self._frame_subsets) < 256:  # a few frames × the filters in use
                self._frame_subsets[key] = sub
        return sub

    def features(self, pool: Pool) -> np.ndarray:
        return sentence_features(pool, self.data.sentences, self.data.chunks, self.lexicon, self.first_section, self.hub,
                                 self.years)

    # ---------------------------------------------------------------- reading

    def read(self, q: Query, cands: Candidates, bridges: dict, bridged_tokens: tuple[str, ...], k: int,
             cfg: ReaderConfig, qvec: np.ndarray) -> Reading:
        model = cfg.model or default_model()
        pool = self.pool(q, cands, bridges, bridged_tokens, cfg, qvec)
        top = list(cands.order[:k])
        if not pool.sentence_ids:
            return Reading(tuple(top), {}, None, False)
        X = self.features(pool)
        scores = model.sentence.score(X)
        # A heading or the title block names a topic; it answers only questions about the document.
        blocked = blocked_rows(X)
        if q.document:
            return self._read_title_block(q, pool, X, scores, cands, k, cfg)
        eligible = np.where(blocked, -np.inf, scores)
        best = int(np.argmax(eligible)) if np.isfinite(eligible).any() else int(np.argmax(scores))
        sent = self.data.sentences[pool.sentence_ids[best]]
        owner = pool.chunk_of[best]
        marks = {}
        for i, sid in enumerate(pool.sentence_ids):  # the best sentence of each shown passage
            c = pool.chunk_of[i]
            if c in top and (c not in marks or eligible[i] > marks[c][0]):
                marks[c] = (eligible[i], self.data.sentences[sid])
        marks = {c: s for c, (_, s) in marks.items()}
        # the passage the quote comes from leads the sources
        top = [owner] + [c for c in top if c != owner]
        marks[owner] = sent
        qf = question_features(pool, X, eligible if np.isfinite(eligible[best]) else scores, best, self.lexicon)
        p = float(model.answer.probability(qf[None, :])[0])
        signals = {n: round(float(v), 4) for n, v in zip(QUESTION_FEATURES, qf)}
        threshold = model.threshold
        prior = self._prior(model)
        if prior is not None:
            signals["p_answer_features"] = round(p, 4)
            p, z = prior.combine(p, qvec)
            signals["question_prior"] = round(z, 4)
            threshold = prior.threshold
        signals["p_answer"] = round(p, 4)
        col = {n: i for i, n in enumerate(SENTENCE_FEATURES)}
        clash = X[best, col["time_clash"]] > 0 or X[best, col["year_clash"]] > 0
        signals["time_clash"] = bool(clash)
        # The best match is about another year than the one asked ("2025年新增就业目标" against the 2024
        # result): the report does not give what was asked, whatever the answer model thinks.
        if cfg.refuse and (p < threshold or clash):
            return Reading(tuple(top[:k]), marks, None, False, score=p, signals=signals)
        items = self._items(sent) if q.wants("list") else ()
        sent = self._complete(sent, q)
        return Reading(tuple(top[:k]), marks, sent, True, best_span(q.text, sent.text), p, signals, items)

    def _prior(self, model: ReaderModel) -> QuestionPrior | None:
        """The model's question prior when it was fitted on this index's corpus and model, else None."""
        prior = model.prior
        if prior is None:
            return None
        key = (prior.model_id, prior.corpus)
        ok = self._prior_ok.get(key)
        if ok is None:
            ok = self._prior_ok[key] = prior.applies(self.data.manifest)
        return prior if ok else None

    def _read_title_block(self, q: Query, pool: Pool, X, scores, cands: Candidates, k: int, cfg: ReaderConfig) -> Reading:
        """Who gave the report, when, at which meeting, its title: the title block says, or nothing does."""
        from .question import sentence_types

        col = {n: i for i, n in enumerate(SENTENCE_FEATURES)}
        front = X[:, col["front_matter"]] > 0
        offers = {
            "person": lambda t: "person" in sentence_types(t),
            "date": lambda t: "date" in sentence_types(t),
            "meeting": lambda t: bool(re.search(r"会议|大会", t)),
            "title": lambda t: "报告" in t and len(t) <= 40 and not re.search(r"[，。；]", t),
        }[q.document]
        ok = [i for i in range(len(scores)) if front[i] and offers(self.data.sentences[pool.sentence_ids[i]].text)]
        top = list(cands.order[:k])
        if not ok:
            return Reading(tuple(top), {}, None, False, signals={"document": q.document})
        best = max(ok, key=lambda i: scores[i])
        sent = self.data.sentences[pool.sentence_ids[best]]
        owner = pool.chunk_of[best]
        top = [owner] + [c for c in top if c != owner]
        return Reading(tuple(top[:k]), {owner: sent}, sent, True, best_span(q.text, sent.text), 1.0,
                       {"document": q.document})

    # ---------------------------------------------------------------- the quote's extent

    @cached_property
    def _heads(self):
        heads = section_heads(self.data.sentences, self.data.chunks)
        return heads, {h.section: i for i, h in enumerate(heads)}

    def _items(self, s: Sentence) -> tuple[Sentence, ...]:
        """The items a sentence announces when they are the sections that follow it (lists.py)."""
        if s.id < 0 or announced_count(s.text) is None:
            return ()
        heads, position = self._heads
        return tuple(self.data.sentences[i] for i in announced_items(s, heads, position))

    def _complete(self, s: Sentence, q: Query) -> Sentence:
        """A glossary entry is quoted whole; a list or a lead-in ("主要是：", "A；B；") runs to its full stop."""
        chunk = self.data.chunks[s.chunk]
        if chunk.path[0] == "名词解释" and q.asks & {"definition", "list"}:
            # a glossary entry is one unit ("三多", "三少", "三慢" are three sentences)
            return Sentence(-1, chunk.id, s.section, chunk.text, chunk.start, chunk.end, chunk.offsets)
        if s.text.endswith(("：", ":")) or (s.text.endswith(("；", ";")) and q.asks & {"list", "definition", "how"}):
            s = self._extend_to_period(s)
        if q.wants("list") and re.search(r"[：:]", s.text):
            s = self._with_addendum(s)
        return s

    def _with_addendum(self, s: Sentence) -> Sentence:
        """A list's last item may follow in the next sentence: "…主要是：A；B；C。另外，还有少数干部…"."""
        sents = self.data.sentences
        if s.id < 0:
            return s
        last = s.id  # s may already span several sentences (_extend_to_period): step to its last one
        while last + 1 < len(sents) and sents[last].end < s.end:
            last += 1
        if last + 1 >= len(sents):
            return s
        nxt = sents[last + 1]
        if nxt.section != s.section or not re.match(r"(?:另外|此外)[，,]?\s*还", nxt.text):
            return s
        return _joined(s, [s, nxt])

    def _extend_to_period(self, s: Sentence, limit: int = 300) -> Sentence:
        sents = self.data.sentences
        parts = [s]
        while (parts[-1].text[-1] in "；：;:" and parts[-1].id + 1 < len(sents)
               and sents[parts[-1].id + 1].section == s.section
               and sum(len(p.text) for p in parts) + len(sents[parts[-1].id + 1].text) <= limit):
            parts.append(sents[parts[-1].id + 1])
        return s if len(parts) == 1 else _joined(s, parts)


def _by_year(sources, years: dict) -> dict:
    """Sources grouped by their report year (None when unknown), in order."""
    out: dict = {}
    for s in sources:
        out.setdefault(years.get(s), []).append(s)
    return out


def _joined(first: Sentence, parts: list[Sentence]) -> Sentence:
    """Adjacent sentences of one section as one quote (they are adjacent in the cleaned text, so the
    joined text stays verbatim), keeping the first one's id and place."""
    return Sentence(first.id, first.chunk, first.section, "".join(p.text for p in parts), first.start, parts[-1].end,
                    [o for p in parts for o in p.offsets])
