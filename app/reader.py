"""The reader: candidate chunks → the answering sentence, its span, and whether to answer at all.

Takes `Candidates` from retrieval and never searches; returns a `Reading`. `Engine` turns a
Reading into the public `Answer`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .answer import Refusal, best_span, has_figure, is_definition_question, is_numeric_question, section_time
from .chunking import Sentence
from .index import IndexData
from .lexicon import Lexicon
from .retrieval import Candidates, RetrievalConfig, Retriever
from .textnorm import content_terms, normalize, tokenize

__all__ = ["Reader", "ReaderConfig", "Reading"]


@dataclass(frozen=True)
class ReaderConfig:
    sentence_dense: float = 1.0
    sentence_lexical: float = 0.35
    sentence_chunk: float = 0.25
    refusal: Refusal = Refusal()


@dataclass(frozen=True)
class Reading:
    order: tuple[int, ...]  # chunk ids to show, the quote's own chunk first
    marks: dict  # chunk id -> the Sentence to mark in it
    sentence: Sentence | None  # the answering sentence (possibly extended), None when refused or nothing found
    found: bool
    span: tuple[int, int] = (0, 0)  # the highlight inside sentence.text
    score: float = 0.0
    signals: dict = field(default_factory=dict)


class Reader:
    def __init__(self, data: IndexData, retriever: Retriever, lexicon: Lexicon) -> None:
        self.data = data
        self.retriever = retriever
        self.lexicon = lexicon

    def read(self, resolved: str, qnorm: str, qvec: np.ndarray, cands: Candidates, k: int,
             rcfg: RetrievalConfig, cfg: ReaderConfig) -> Reading:
        data, holders = self.data, self.retriever.holders
        fused = dict(cands.fused)
        order = list(cands.order)
        tokens, tf, sims = cands.tokens, cands.time_frame, cands.sentence_sims
        definition = is_definition_question(resolved)
        gloss = self.lexicon.glossary_hits(qnorm)
        if gloss and definition and rcfg.mode != "bm25":
            lead = max(fused.values(), default=1.0) * 1.01
            for i, c in enumerate(gloss):
                fused[c] = lead - i * 1e-6
            order = gloss + [c for c in order if c not in gloss]
        top = order[: max(k, rcfg.answer_chunks)]
        pool = top[: rcfg.answer_chunks] + [c for c in gloss if c not in top[: rcfg.answer_chunks]]
        sent_ids = sorted({s for c in pool for s in self.retriever.sentences_of.get(c, [])})
        if not sent_ids:
            return Reading(tuple(top[:k]), {}, None, False)
        # reuse the similarities the sentence ranking already computed
        sdense = sims[sent_ids] if sims is not None else data.sentence_vectors[sent_ids] @ qvec
        slex = self.retriever.sentence_bm25(tokens)[sent_ids]
        slex_n = slex / slex.max() if slex.max() > 0 else slex
        fmax = max(fused.values()) if fused else 1.0
        chunk_score = np.array([max(fused.get(c, 0.0) for c in holders[s]) / fmax for s in sent_ids],
                               dtype=np.float32)
        numeric = is_numeric_question(resolved)
        total = cfg.sentence_dense * sdense + cfg.sentence_lexical * slex_n + cfg.sentence_chunk * chunk_score
        if not re.search(r"[\u4e00-\u9fff]", resolved):
            # no Chinese words to match: trust the chunk ranking (three signals) more than one
            # short sentence's similarity, which favours generic lines across languages
            total = total + cfg.sentence_chunk * chunk_score
        for i, sid in enumerate(sent_ids):
            s = data.sentences[sid]
            st = section_time(data.chunks[s.chunk].path)
            if tf and st and st != tf:
                total[i] -= 0.15
            if numeric and not has_figure(s.text):
                total[i] -= 0.05
            if definition and s.chunk in gloss:
                total[i] += 0.3  # a definition question naming a glossary term: the glossary answers it
            elif definition and re.search(r"是指|指的是", s.text):
                total[i] += 0.08  # otherwise a definition beats a mere mention
            if s.text.rstrip("。：:") in data.chunks[s.chunk].path or len(s.text) < 8:
                total[i] -= 0.25  # a heading ("守好安全稳定底线。") names a topic, it answers nothing
        if rcfg.mode == "bm25":
            total = slex_n + cfg.sentence_chunk * chunk_score
        bi = int(np.argmax(total))
        best = data.sentences[sent_ids[bi]]
        best_dense = float(sdense[bi])
        marks = {}
        for c in top[:k]:  # the best sentence of each shown passage, for marking
            ids = [i for i, sid in enumerate(sent_ids) if c in holders[sid]]
            if ids:
                marks[c] = data.sentences[sent_ids[max(ids, key=lambda i: total[i])]]
        # the passage the quote comes from leads the sources: sentence-level scoring has
        # re-ranked it, and a reader expects the first source to hold the quoted sentence
        owner = max(holders[best.id], key=lambda c: fused.get(c, 0.0))
        top = [owner] + [c for c in top if c != owner]
        marks[owner] = best

        signals = self._signals(resolved, qnorm, best, best_dense)
        score = best_dense if rcfg.mode != "bm25" else signals["cov_sentence"]
        found = cfg.refusal.decide(signals) if rcfg.mode != "bm25" else signals["cov_sentence"] >= 0.5
        if not found:
            return Reading(tuple(top[:k]), marks, None, False, score=score, signals=signals)
        chunk = data.chunks[best.chunk]
        if best.text.endswith(("；", "：", ";", ":")) and (definition or best.text[-1] in "：:"):
            # a list ("主要是：A；B；C。") or a lead-in ("……如下：") answers only with what follows,
            # up to the end of the full sentence
            best = self._extend_to_period(best)
        if chunk.path[0] == "名词解释" and best.chunk in gloss:
            # a glossary entry is one unit: quote it whole ("三多", "三少", "三慢" are three sentences)
            best = Sentence(-1, chunk.id, best.section, chunk.text, chunk.start, chunk.end, chunk.offsets)
        return Reading(tuple(top[:k]), marks, best, True, best_span(resolved, best.text), score, signals)

    def _signals(self, resolved: str, qnorm: str, best: Sentence, best_dense: float) -> dict:
        """The refusal model's inputs for the chosen sentence."""
        data, lex = self.data, self.lexicon
        chunk = data.chunks[best.chunk]
        han_terms = [w for w in content_terms(qnorm) if re.search(r"[\u4e00-\u9fff\d]", w)
                     and not re.fullmatch(r"(20\d\d年?|今年|去年|明年|目标|计划|多少)", w)]
        if not han_terms:  # Chinese too short for jieba words ("“慢粗虚”…"): fall back to its bigrams
            han_terms = [t[1:] for t in tokenize(qnorm, normalized=True) if t.startswith("#")]
        signals = {"dense": best_dense, "crosslingual": not re.search(r"[\u4e00-\u9fff]", resolved),
                   "cov_sentence": 0.0, "cov_chunk": 0.0, "absent": 0.0,
                   "numeric_missing": is_numeric_question(resolved) and not has_figure(best.text)}
        if han_terms:
            sent_hay = normalize(chunk.path[-1] + best.text)
            chunk_hay = normalize(chunk.breadcrumb + chunk.text)
            weights = [max(lex.idf(w), 0.1) for w in han_terms]
            signals["cov_sentence"] = sum(wt for w, wt in zip(han_terms, weights) if w in sent_hay) / sum(weights)
            signals["cov_chunk"] = sum(w in chunk_hay for w in han_terms) / len(han_terms)
            signals["absent"] = sum(w not in lex.corpus_norm for w in han_terms) / len(han_terms)
        asked_years = set(re.findall(r"20\d\d", resolved))
        if asked_years:
            # a year the answer's passage never mentions (and whose part is not about) — e.g. a 2023 question
            have = set(re.findall(r"20\d\d", chunk.breadcrumb + chunk.text))
            have |= {"past": {"2024"}, "future": {"2025"}}.get(section_time(chunk.path) or "", set())
            signals["year_mismatch"] = bool(asked_years - have)
        return signals

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
