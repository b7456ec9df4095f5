"""The query path: question → (follow-up resolution) → dense + BM25 → fusion → quoted answer.

`Engine` owns one loaded index and one embedder; it is safe to share between threads
(Gradio sessions) because queries only read. `ask()` in `app/__init__.py` keeps one
default Engine per process, created on first call.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from .answer import Refusal, best_span, has_figure, is_definition_question, is_numeric_question, resolve_followup, section_time, time_frame
from .config import Settings
from .corpus import load_corpus
from .embedder import Embedder, SentenceTransformerEmbedder
from .errors import IndexError_, QuestionError, StaleIndexError
from .chunking import Sentence
from .index import IndexData, build_index, expected_manifest, load_index
from .textnorm import add_words, content_terms, expand_query, normalize, tokenize

__all__ = ["Answer", "Engine", "MAX_QUESTION_CHARS", "Passage", "RetrievalConfig"]

log = logging.getLogger(__name__)
MAX_QUESTION_CHARS = 2000


@dataclass(frozen=True)
class Passage:
    text: str  # the chunk's text, verbatim from the source (page-break line breaks removed)
    section: str  # breadcrumb, e.g. "二、2025 年主要工作 › （五）… › 挖掘冰雪经济潜力"
    score: float
    source: str  # file name inside the corpus folder
    start: int  # character offsets into the source file
    end: int
    mark_start: int  # the best-matching sentence inside this passage (file offsets)
    mark_end: int


@dataclass(frozen=True)
class Answer:
    question: str
    found: bool  # False when the report does not answer the question
    text: str  # the verbatim sentence(s) that answer; "" when not found
    section: str
    source: str
    start: int  # offsets of `text` in the source file (-1 when not found)
    end: int
    highlight: str  # the answering span inside `text`
    highlight_start: int  # offsets of `highlight` in the source file (-1 when not found)
    highlight_end: int
    score: float  # confidence: cosine of question and answer sentence
    resolved_question: str  # the question after follow-up resolution
    passages: tuple[Passage, ...]  # the quote's own passage first, then by score; when not found, the nearest
    timings: dict = field(default_factory=dict, compare=False, repr=False)
    signals: dict = field(default_factory=dict, compare=False, repr=False)  # refusal inputs, for calibration


@dataclass(frozen=True)
class RetrievalConfig:
    mode: str = "hybrid"  # "hybrid" | "dense" | "bm25"
    fusion: str = "rrf"  # "rrf" | "weighted"
    rrf_k: int = 60
    bm25_weight: float = 1.0  # weight of the BM25 list in RRF (the two dense lists weigh 1)
    dense_weight: float = 0.5  # for "weighted" fusion
    candidates: int = 50  # per retriever, before fusion
    answer_chunks: int = 4  # sentences are drawn from this many top chunks
    time_penalty: float = 0.5  # multiplier on scores of chunks in the other tense than asked
    sentence_dense: float = 1.0
    sentence_lexical: float = 0.35
    sentence_chunk: float = 0.25
    refusal: Refusal = Refusal()

    def __post_init__(self) -> None:
        if self.mode not in ("hybrid", "dense", "bm25"):
            raise ValueError(f"mode {self.mode!r}: use 'hybrid', 'dense' or 'bm25'")
        if self.fusion not in ("rrf", "weighted"):
            raise ValueError(f"fusion {self.fusion!r}: use 'rrf' or 'weighted'")


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")  # lone surrogates (JSON allows "\ud800") cannot be encoded


def clean_question(question: object) -> str:
    if not isinstance(question, str):
        raise QuestionError(f"question must be a string, got {type(question).__name__}")
    q = _SURROGATE.sub("\ufffd", _CONTROL.sub(" ", question)).strip()
    if not q:
        raise QuestionError("question is empty: type a question about the report, e.g. 2024年地区生产总值是多少？")
    if len(q) > MAX_QUESTION_CHARS:
        raise QuestionError(f"question is {len(q):,} characters; the limit is {MAX_QUESTION_CHARS:,}: ask something shorter")
    return q


def _minmax(x: np.ndarray) -> np.ndarray:
    if x.size == 0:
        return x
    lo, hi = float(x.min()), float(x.max())
    return np.zeros_like(x) if hi - lo < 1e-12 else (x - lo) / (hi - lo)


class Engine:
    """A loaded index plus an embedder. Build with `Engine.open(settings)` or directly from parts."""

    def __init__(self, data: IndexData, embedder: Embedder, config: RetrievalConfig | None = None) -> None:
        import bm25s

        self.data = data
        self.embedder = embedder
        self.config = config or RetrievalConfig()
        add_words(p[-1] for p in {c.path for c in data.chunks})
        self._bm25_chunks = bm25s.BM25()
        self._bm25_chunks.index([list(t) or ["∅"] for t in data.chunk_tokens], show_progress=False)
        self._bm25_sents = bm25s.BM25()
        self._bm25_sents.index([list(t) or ["∅"] for t in data.sentence_tokens], show_progress=False)
        # A sentence belongs to every chunk of its section that overlaps it (chunks may overlap);
        # computed once here, the query path only looks it up.
        self._holders: list[tuple[int, ...]] = [
            (s.chunk, *(c.id for c in data.chunks[s.chunk + 1 : s.chunk + 4]
                        if c.section == s.section and c.start < s.end and s.start < c.end))
            for s in data.sentences
        ]
        self._sent_by_chunk: dict[int, list[int]] = {}
        for s in data.sentences:
            for c in self._holders[s.id]:
                self._sent_by_chunk.setdefault(c, []).append(s.id)
        # The report's glossary is a dictionary: a question naming a term gets its entry.
        self._glossary: dict[str, list[int]] = {}
        for c in data.chunks:
            if c.path and c.path[0] == "名词解释" and len(c.path) > 1:
                name = re.sub(r"^\d+\.\s*", "", c.path[-1])
                for term in {name.strip("“”"), *re.findall(r"“([^”]+)”", name)}:
                    t = normalize(term)
                    if len(t) >= 2:
                        self._glossary.setdefault(t, []).append(c.id)
        self._chunk_norm = [normalize(c.breadcrumb + "\n" + c.text) for c in data.chunks]
        self._corpus_norm = "\n".join(self._chunk_norm)
        self._idf_cache: dict[str, float] = {}

    def idf(self, term: str) -> float:
        """Inverse document frequency of a (normalised) term over chunks, by substring match."""
        v = self._idf_cache.get(term)
        if v is None:
            import math

            df = sum(term in t for t in self._chunk_norm)
            v = math.log((len(self._chunk_norm) + 1) / (df + 0.5))
            if len(self._idf_cache) < 100_000:
                self._idf_cache[term] = v
        return v

    def glossary_hits(self, qnorm: str) -> list[int]:
        """Glossary chunks whose term the question names, longest term first."""
        out: list[int] = []
        for term in sorted(self._glossary, key=len, reverse=True):
            if term in qnorm:
                out.extend(c for c in self._glossary[term] if c not in out)
        return out

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, settings: Settings | None = None, *, embedder: Embedder | None = None,
             config: RetrievalConfig | None = None, build: bool = True, progress=None) -> "Engine":
        """Load the index for ``settings``; (re)build it when missing or stale if ``build``."""
        settings = settings or Settings.from_env()
        embedder = embedder or SentenceTransformerEmbedder(settings.model)
        docs, _errors = load_corpus(settings.corpus_dir)
        expect = expected_manifest(docs, embedder.model_id, None, settings.chunk)
        try:
            data = load_index(settings.index_dir, expect)
            if data.manifest["model"]["dim"] != embedder.dim:
                raise StaleIndexError(
                    f"{settings.index_dir} has dimension {data.manifest['model']['dim']}, model "
                    f"{embedder.model_id!r} has {embedder.dim}: run `python -m app index`"
                )
        except IndexError_ as exc:
            if not build:
                raise
            (progress or log.warning)(f"{exc} — rebuilding the index now")
            build_index(settings.corpus_dir, settings.index_dir, embedder, settings.chunk, progress=progress)
            data = load_index(settings.index_dir, expect)
        return cls(data, embedder, config)

    # ------------------------------------------------------------------ retrieval

    def _rank(self, query: str, qnorm: str, qvec: np.ndarray, cfg: RetrievalConfig, timings: dict):
        n = len(self.data.chunks)
        cand = min(cfg.candidates, n)
        dense = np.zeros(n, dtype=np.float32)
        t = time.perf_counter()
        if cfg.mode in ("hybrid", "dense"):
            D, I = self.data.faiss_index.search(qvec[None, :], cand)
            dense_ids = [int(i) for i in I[0] if i >= 0]
            dense[dense_ids] = D[0][: len(dense_ids)]
            # Sentence-level dense ranking too: a short, exact sentence often matches a question
            # (especially across languages) better than the chunk around it.
            sims = self.data.sentence_vectors @ qvec
            best_per_chunk: dict[int, float] = {}
            for sid in np.argsort(-sims)[: cand * 3]:
                c = self.data.sentences[int(sid)].chunk
                best_per_chunk.setdefault(c, float(sims[sid]))
            sent_ids_rank = sorted(best_per_chunk, key=lambda c: -best_per_chunk[c])[:cand]
        else:
            dense_ids, sent_ids_rank, sims = [], [], None
        timings["dense_search"] = time.perf_counter() - t
        t = time.perf_counter()
        tokens = tokenize(qnorm, normalized=True)
        bm25 = np.zeros(n, dtype=np.float32)
        if cfg.mode in ("hybrid", "bm25") and tokens:
            bm25 = self._bm25_chunks.get_scores(tokens).astype(np.float32)
        bm25_ids = [int(i) for i in np.argsort(-bm25)[:cand] if bm25[i] > 0]
        timings["bm25"] = time.perf_counter() - t
        t = time.perf_counter()
        fused: dict[int, float] = {}
        if cfg.fusion == "rrf" or cfg.mode != "hybrid":
            for ranking, weight in ((dense_ids, 1.0), (sent_ids_rank, 1.0), (bm25_ids, cfg.bm25_weight)):
                for r, cid in enumerate(ranking):
                    fused[cid] = fused.get(cid, 0.0) + weight / (cfg.rrf_k + r + 1)
        else:
            dn, bn = _minmax(dense), _minmax(bm25)
            for cid in set(dense_ids) | set(bm25_ids) | set(sent_ids_rank):
                fused[cid] = cfg.dense_weight * float(dn[cid]) + (1 - cfg.dense_weight) * float(bn[cid])
        tf = time_frame(query)
        if tf:
            for cid in fused:
                st = section_time(self.data.chunks[cid].path)
                if st and st != tf:
                    fused[cid] *= cfg.time_penalty
        order = sorted(fused, key=lambda c: (-fused[c], c))
        timings["fusion"] = time.perf_counter() - t
        return order, fused, tokens, tf, sims

    def ask(self, question: object, k: int = 5, history: Sequence[str] = (), *,
            config: RetrievalConfig | None = None) -> Answer:
        """Answer ``question`` from the report; see `Answer`. Raises QuestionError on unusable input."""
        cfg = config or self.config
        t_all = time.perf_counter()
        q = clean_question(question)
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 50:
            raise QuestionError(f"k must be an integer from 1 to 50, got {k!r}")
        hist = tuple(clean_question(h) for h in history if isinstance(h, str) and h.strip())
        resolved = resolve_followup(q, hist)
        qnorm = expand_query(normalize(resolved))
        timings: dict[str, float] = {}
        if not re.search(r"\w", unicodedata.normalize("NFKC", resolved)):
            # emoji or punctuation only: nothing to look for
            return self._not_found(q, resolved, [], {}, 0.0, timings)

        t = time.perf_counter()
        qvec = self.embedder.embed_queries([resolved])[0] if cfg.mode != "bm25" else None
        timings["encode"] = time.perf_counter() - t
        if qvec is None:
            qvec = np.zeros(self.data.sentence_vectors.shape[1], dtype=np.float32)
        order, fused, tokens, tf, sims = self._rank(resolved, qnorm, qvec, cfg, timings)

        t = time.perf_counter()
        definition = is_definition_question(resolved)
        gloss = self.glossary_hits(qnorm)
        if gloss and definition and cfg.mode != "bm25":
            lead = max(fused.values(), default=1.0) * 1.01
            for i, c in enumerate(gloss):
                fused[c] = lead - i * 1e-6
            order = gloss + [c for c in order if c not in gloss]
        top = order[: max(k, cfg.answer_chunks)]
        pool = top[: cfg.answer_chunks] + [c for c in gloss if c not in top[: cfg.answer_chunks]]
        sent_ids = sorted({s for c in pool for s in self._sent_by_chunk.get(c, [])})
        best_sent, best_dense, mark = None, 0.0, {}
        if sent_ids:
            # reuse the similarities the sentence ranking already computed
            sdense = sims[sent_ids] if sims is not None else self.data.sentence_vectors[sent_ids] @ qvec
            slex = np.zeros(len(sent_ids), dtype=np.float32)
            if tokens:
                allscores = self._bm25_sents.get_scores(tokens)
                slex = allscores[sent_ids].astype(np.float32)
            slex_n = slex / slex.max() if slex.max() > 0 else slex
            fmax = max(fused.values()) if fused else 1.0
            chunk_score = np.array([max(fused.get(c, 0.0) for c in self._holders[s]) / fmax
                                    for s in sent_ids], dtype=np.float32)
            numeric = is_numeric_question(resolved)
            total = cfg.sentence_dense * sdense + cfg.sentence_lexical * slex_n + cfg.sentence_chunk * chunk_score
            if not re.search(r"[\u4e00-\u9fff]", resolved):
                # no Chinese words to match: trust the chunk ranking (three signals) more than one
                # short sentence's similarity, which favours generic lines across languages
                total = total + cfg.sentence_chunk * chunk_score
            for i, sid in enumerate(sent_ids):
                s = self.data.sentences[sid]
                st = section_time(self.data.chunks[s.chunk].path)
                if tf and st and st != tf:
                    total[i] -= 0.15
                if numeric and not has_figure(s.text):
                    total[i] -= 0.05
                if definition and s.chunk in gloss:
                    total[i] += 0.3  # a definition question naming a glossary term: the glossary answers it
                elif definition and re.search(r"是指|指的是", s.text):
                    total[i] += 0.08  # otherwise a definition beats a mere mention
                if s.text.rstrip("。：:") in self.data.chunks[s.chunk].path or len(s.text) < 8:
                    total[i] -= 0.25  # a heading ("守好安全稳定底线。") names a topic, it answers nothing
            if cfg.mode == "bm25":
                total = slex_n + cfg.sentence_chunk * chunk_score
            bi = int(np.argmax(total))
            best_sent = self.data.sentences[sent_ids[bi]]
            best_dense = float(sdense[bi])
            for c in top[:k]:  # the best sentence of each shown passage, for marking
                ids = [i for i, sid in enumerate(sent_ids) if c in self._holders[sid]]
                if ids:
                    j = max(ids, key=lambda i: total[i])
                    mark[c] = self.data.sentences[sent_ids[j]]
        timings["answer"] = time.perf_counter() - t

        if best_sent is not None:
            # the passage the quote comes from leads the sources: sentence-level scoring has
            # re-ranked it, and a reader expects the first source to hold the quoted sentence
            owner = max(self._holders[best_sent.id], key=lambda c: fused.get(c, 0.0))
            top = [owner] + [c for c in top if c != owner]
            mark[owner] = best_sent
        passages = self._passages(top[:k], fused, mark)
        if best_sent is None:
            return self._not_found(q, resolved, passages, fused, 0.0, timings)
        chunk = self.data.chunks[best_sent.chunk]
        han_terms = [w for w in content_terms(qnorm) if re.search(r"[\u4e00-\u9fff\d]", w)
                     and not re.fullmatch(r"(20\d\d年?|今年|去年|明年|目标|计划|多少)", w)]
        if not han_terms:  # Chinese too short for jieba words ("“慢粗虚”…"): fall back to its bigrams
            han_terms = [t[1:] for t in tokenize(qnorm, normalized=True) if t.startswith("#")]
        signals = {"dense": best_dense, "crosslingual": not re.search(r"[\u4e00-\u9fff]", resolved), "cov_sentence": 0.0, "cov_chunk": 0.0,
                   "absent": 0.0, "numeric_missing": is_numeric_question(resolved) and not has_figure(best_sent.text)}
        if han_terms:
            sent_hay = normalize(chunk.path[-1] + best_sent.text)
            chunk_hay = normalize(chunk.breadcrumb + chunk.text)
            weights = [max(self.idf(w), 0.1) for w in han_terms]
            signals["cov_sentence"] = sum(wt for w, wt in zip(han_terms, weights) if w in sent_hay) / sum(weights)
            signals["cov_chunk"] = sum(w in chunk_hay for w in han_terms) / len(han_terms)
            signals["absent"] = sum(w not in self._corpus_norm for w in han_terms) / len(han_terms)
        asked_years = set(re.findall(r"20\d\d", resolved))
        if asked_years:
            # a year the answer's passage never mentions (and whose part is not about) — e.g. a 2023 question
            have = set(re.findall(r"20\d\d", chunk.breadcrumb + chunk.text))
            have |= {"past": {"2024"}, "future": {"2025"}}.get(section_time(chunk.path) or "", set())
            signals["year_mismatch"] = bool(asked_years - have)
        score = best_dense if cfg.mode != "bm25" else signals["cov_sentence"]
        found = cfg.refusal.decide(signals) if cfg.mode != "bm25" else signals["cov_sentence"] >= 0.5
        if not found:
            return replace(self._not_found(q, resolved, passages, fused, score, timings), signals=signals)
        if best_sent.text.endswith(("；", "：", ";", ":")) and (definition or best_sent.text[-1] in "：:"):
            # a list ("主要是：A；B；C。") or a lead-in ("……如下：") answers only with what follows,
            # up to the end of the full sentence
            best_sent = self._extend_to_period(best_sent)
        if chunk.path[0] == "名词解释" and best_sent.chunk in gloss:
            # a glossary entry is one unit: quote it whole ("三多", "三少", "三慢" are three sentences)
            best_sent = Sentence(-1, chunk.id, best_sent.section, chunk.text, chunk.start, chunk.end, chunk.offsets)
        a, b = best_span(resolved, best_sent.text)
        timings["total"] = time.perf_counter() - t_all
        return Answer(
            question=q, found=True, text=best_sent.text, section=chunk.breadcrumb, source=chunk.source,
            start=best_sent.start, end=best_sent.end, highlight=best_sent.text[a:b],
            highlight_start=best_sent.offsets[a], highlight_end=best_sent.offsets[b - 1] + 1,
            score=round(score, 4), resolved_question=resolved, passages=passages, timings=timings,
            signals=signals,
        )

    def _extend_to_period(self, s: Sentence, limit: int = 300) -> Sentence:
        sents = self.data.sentences
        parts = [s]
        while (parts[-1].text[-1] in "；：;:" and parts[-1].id + 1 < len(sents)
               and sents[parts[-1].id + 1].section == s.section
               and sum(len(p.text) for p in parts) + len(sents[parts[-1].id + 1].text) <= limit):
            parts.append(sents[parts[-1].id + 1])
        if len(parts) == 1:
            return s
        offsets = [o for p in parts for o in p.offsets]
        # the sentences are adjacent in the cleaned text, so joining them keeps it verbatim
        return Sentence(s.id, s.chunk, s.section, "".join(p.text for p in parts), s.start, parts[-1].end, offsets)

    def _passages(self, ids, fused, mark) -> tuple[Passage, ...]:
        out = []
        for c in ids:
            ch = self.data.chunks[c]
            m = mark.get(c)
            out.append(Passage(ch.text, ch.breadcrumb, round(float(fused.get(c, 0.0)), 6), ch.source, ch.start, ch.end,
                               m.start if m else -1, m.end if m else -1))
        return tuple(out)

    def _not_found(self, q, resolved, passages, fused, score, timings) -> Answer:
        return Answer(q, False, "", "", "", -1, -1, "", -1, -1, round(float(score), 4), resolved,
                      tuple(passages), timings)

    def with_config(self, **changes) -> "Engine":
        """A view of this engine with other retrieval settings (shares index and model)."""
        other = object.__new__(Engine)
        other.__dict__.update(self.__dict__)
        other.config = replace(self.config, **changes)
        return other
