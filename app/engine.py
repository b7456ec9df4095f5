"""The public answer types and `Engine`, which only orchestrates the stages:

    question → clean → follow-up (dialogue.py) → encode (embedder.py) → candidates (retrieval.py)
             → sentence, span, refusal (reader.py) → `Answer`

`ask()` in `app/__init__.py` keeps one default Engine per process, created on first call.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from dataclasses import dataclass, field, fields, replace
from typing import Sequence

import numpy as np

from .bridge import Bridge
from .dialogue import Turn, interpret, topic_terms
from .config import Settings
from .corpus import Doc, corpus_digests
from .embedder import Embedder, make_embedder
from .errors import FilterError, IndexError_, QuestionError, StaleIndexError
from .filters import select
from .index import IndexData, build_index, expected_manifest, load_index
from .lexicon import Lexicon
from .lists import item_name
from .reader import Reader, ReaderConfig
from .question import Query, analyze
from .retrieval import Candidates, RetrievalConfig, Retriever, Scope
from .textnorm import add_words, expand_query, normalize, simplified, tokenize

__all__ = ["Answer", "Engine", "HISTORY_TURNS", "MAX_QUESTION_CHARS", "Passage", "RetrievalConfig", "clean_history",
           "clean_question"]

log = logging.getLogger(__name__)
MAX_QUESTION_CHARS = 2000
MAX_BRIDGED = 8  # unknown words bridged per question (each is one short encode, cached)
HISTORY_TURNS = 4  # earlier questions kept for follow-ups (resolution reads the last one)


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
    document: str = ""  # the report it is from: "海拉尔区 2025 年政府工作报告"
    citation: str = ""  # document › section path
    region: str = ""
    year: int | None = None  # the report's year (it reviews year − 1 and plans year)


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
    signals: dict = field(default_factory=dict, compare=False, repr=False)  # the reader's features, for fitting
    intent: str = "question"  # "question", or "smalltalk" (a greeting or thanks: found=False, no quote)
    message: str = ""  # what to say instead of a quote: the small-talk reply, or why nothing was found
    document: str = ""  # the report quoted: "海拉尔区 2025 年政府工作报告" ("" when not found)
    citation: str = ""  # "海拉尔区 2025 年政府工作报告 › 二、2025 年主要工作 › …"
    region: str = ""
    year: int | None = None
    # A comparison across reports ("2024年和2025年的…分别是多少？"): one Answer per report named, in the
    # order named; the fields above are then the first found part's. A list the quote announces and
    # the next sections spell out ("八个“坚持”是哪八个？"): the announcing sentence, then one part per
    # item (its heading sentence, the item's name highlighted; label ""). Empty for an ordinary answer.
    parts: tuple["Answer", ...] = ()
    label: str = ""  # for a part: what the question named ("2024年", "满洲里市")


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


def clean_history(history: object) -> tuple[str, ...]:
    """Earlier questions, for follow-ups: the last `HISTORY_TURNS`, each cleaned like a question
    and clipped to `MAX_QUESTION_CHARS` (an earlier question is never refused for its length).

    None is no history and a string is one earlier question; blank entries are dropped. Anything
    else raises QuestionError.
    """
    if history is None:
        return ()
    if isinstance(history, str):
        history = (history,)
    example = 'e.g. history=["2024年新增就业多少人？"]'
    if not isinstance(history, (list, tuple)):
        raise QuestionError(f"history must be a list of earlier questions (strings), got {type(history).__name__}: "
                            f"pass {example}")
    bad = [h for h in history if not isinstance(h, str)]
    if bad:
        raise QuestionError(f"history must be a list of earlier questions (strings); it holds {bad[0]!r:.60} "
                            f"({type(bad[0]).__name__}): pass only the questions' text, {example}")
    out = []
    for h in reversed(history):
        h = _SURROGATE.sub("\ufffd", _CONTROL.sub(" ", h)).strip()[:MAX_QUESTION_CHARS]
        if h:
            out.append(h)
            if len(out) == HISTORY_TURNS:
                break
    return tuple(reversed(out))


def _region_names(documents) -> re.Pattern | None:
    """The corpus's own region names, long forms first ("海拉尔区", "海拉尔")."""
    from .filters import _region_key

    names = {n for d in documents if d.meta.region for n in (d.meta.region, _region_key(d.meta.region)) if len(n) >= 2}
    return re.compile("|".join(map(re.escape, sorted(names, key=len, reverse=True)))) if names else None


def _without(question: str, names: re.Pattern | None) -> str:
    """The question as the encoder reads it: without the names of the reports' own regions. "in
    Hailar" says which report, not which passage, and the sentences that name the region would
    otherwise rise ("海拉尔有多少家工厂" → "海拉尔区在 19 个中心城区…排名")."""
    if names is None:
        return question
    rest = names.sub("", question)
    return rest if re.search(r"\w", rest) else question


def _not_names(terms, names: re.Pattern | None) -> list[str]:
    """``terms`` without the reports' own region names: "海拉尔" says which report, not which topic."""
    return list(terms) if names is None else [t for t in terms if not names.fullmatch(t)]


class _Related:
    """The dialogue's view of the report: do two sets of words share a sentence? Words the report
    never uses stand in through their bridged neighbours ("增速" → "增长"). The reports' own region
    names relate nothing: "海拉尔" shares a sentence with every topic of the Hailar report, so
    "明天海拉尔会下雪吗" after a question about 养老 is not a fragment of it."""

    def __init__(self, lexicon: Lexicon, bridge: Bridge, embedder: Embedder, names: re.Pattern | None = None) -> None:
        self.lexicon, self.bridge, self.embedder, self.names = lexicon, bridge, embedder, names

    def _expand(self, terms) -> list[str]:
        terms = _not_names(terms, self.names)
        unknown = [t for t in terms if not self.lexicon.present(t)][:MAX_BRIDGED]
        near = self.bridge.neighbours(unknown, self.embedder.embed_queries) if unknown else {}
        return [t for t in terms if t not in near] + [n.term for ns in near.values() for n in ns]

    def related(self, a, b) -> bool:
        return self.lexicon.cooccur(self._expand(a), self._expand(b))


@dataclass(frozen=True)
class Prepared:
    """A question after every stage before the reader (what `python -m app fit` learns from)."""

    question: str  # cleaned
    turn: Turn
    query: Query | None  # None for small talk and for questions with nothing to search
    qvec: np.ndarray | None
    bridges: dict
    bridged_tokens: tuple[str, ...]
    candidates: Candidates | None
    timings: dict


class Engine:
    """One loaded index, one embedder, and the stages that answer a question over them:

        clean → resolve follow-up → encode → `Retriever.search` → `Reader.read` → `Answer`

    Build with `Engine.open(settings)` or directly from parts. Safe to share between threads
    (Gradio sessions): answering only reads.
    """

    def __init__(self, data: IndexData, embedder: Embedder, config: RetrievalConfig | None = None,
                 reader_config: ReaderConfig | None = None) -> None:
        self.data = data
        self.embedder = embedder
        self.config = config or RetrievalConfig()
        self.reader_config = reader_config or ReaderConfig()
        add_words(p[-1] for p in {c.path for c in data.chunks})
        self.retriever = Retriever(data, bm25_chunks=data.bm25_chunks, bm25_sentences=data.bm25_sentences)
        self.lexicon = Lexicon(data, self.retriever.bm25_chunks, self.retriever.bm25_sentences)
        self.reader = Reader(data, self.retriever, self.lexicon)
        self._names = _region_names(data.documents)
        vocab_vectors = data.vocab_vectors if data.vocab_vectors is not None else np.zeros((0, 1), np.float32)
        self.bridge = Bridge(data.vocab, vocab_vectors)
        self._related = _Related(self.lexicon, self.bridge, embedder, self._names)  # the dialogue's view of the report

    @classmethod
    def open(cls, settings: Settings | None = None, *, embedder: Embedder | None = None,
             config: RetrievalConfig | None = None, build: bool = True, progress=None) -> "Engine":
        """Load the index for ``settings``; (re)build it when missing or stale if ``build``."""
        settings = settings or Settings.from_env()
        embedder = embedder or make_embedder(settings.model, settings.backend)
        # the corpus's file digests only: a replica of a large corpus does not hold its texts
        docs = [Doc(src, "", digest) for src, digest in corpus_digests(settings.corpus_dir).items()]
        expect = expected_manifest(docs, embedder.model_id, None, settings.chunk,
                                   backend=getattr(embedder, "backend", None))
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

    @property
    def documents(self):
        """The index's documents (`index.DocumentEntry`: source, metadata, id ranges), in order."""
        return self.data.documents

    def scope(self, filters) -> Scope | None:
        """The documents ``filters`` keep (None: all); FilterError names a bad key or value."""
        if not filters:
            return None
        if not self.data.documents:
            raise FilterError("this index has no document metadata: rebuild it with `python -m app index`")
        kept = select(self.data.documents, filters)
        return None if len(kept) == len(self.data.documents) else Scope.of(kept)

    def prepare(self, question: object, k: int = 5, history: Sequence[str] | str | None = (), *,
                config: RetrievalConfig | None = None, filters=None, turn: Turn | None = None) -> "Prepared":
        """Every stage before the reader: clean, interpret the turn, encode, bridge words, retrieve."""
        cfg = config or self.config
        scope = self.scope(filters)
        q = clean_question(question)
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 50:
            raise QuestionError(f"k must be an integer from 1 to 50, got {k!r}")
        hist = clean_history(history)
        timings: dict[str, float] = {}
        if turn is None:  # (`ask` passes the turn it already interpreted)
            turn = interpret(q, hist, self._related if cfg.bridge else self.lexicon)
        if len(turn.resolved) > MAX_QUESTION_CHARS:  # a follow-up adds words: clip, never fail
            turn = replace(turn, resolved=turn.resolved[:MAX_QUESTION_CHARS])
        if turn.intent == "smalltalk" or not re.search(r"\w", unicodedata.normalize("NFKC", turn.resolved)):
            # small talk, or emoji/punctuation only: nothing to look for
            return Prepared(q, turn, None, None, {}, (), None, timings)
        query = replace(analyze(expand_query(normalize(turn.resolved), self.lexicon.present)), text=turn.resolved)
        t = time.perf_counter()
        qvec = self.embedder.embed_queries([_without(simplified(turn.resolved), self._names)])[0]
        unknown = [w for w in (*query.terms, *query.phrases) if not self.lexicon.present(w)] if cfg.bridge else []
        unknown = unknown[:MAX_BRIDGED]  # a question is a few words; a 2,000-character paste must not cost 2,000 encodes
        bridges = self.bridge.neighbours(unknown, self.embedder.embed_queries) if unknown else {}
        for p in query.phrases:  # a word inside a bridged phrase shares the phrase's neighbours
            for w in query.terms:
                if w in p and w != p and p in bridges:
                    bridges[w] = tuple({n.term: n for n in (*bridges.get(w, ()), *bridges[p])}.values())
        timings["encode"] = time.perf_counter() - t
        bridged = tuple(t for ns in bridges.values() for n in ns for t in tokenize(n.term, normalized=True))
        cands = self.retriever.search(turn.resolved, query.norm, qvec, cfg, timings, extra_tokens=bridged, scope=scope)
        return Prepared(q, turn, query, qvec, bridges, bridged, cands, timings)

    def ask(self, question: object, k: int = 5, history: Sequence[str] | str | None = (), *,
            config: RetrievalConfig | None = None, filters=None) -> Answer:
        """Answer ``question`` from the reports; see `Answer`. ``filters`` (``{"region": …, "year": …}``,
        filters.py) keep only some documents, before any ranking. A question naming several reports
        gets one part per report (compare.py). Raises QuestionError (FilterError) on unusable input."""
        from .compare import narrow, plan

        turn = None
        if len(self.data.documents) > 1:
            q = clean_question(question)
            hist = clean_history(history)
            cfg = config or self.config
            turn = interpret(q, hist, self._related if cfg.bridge else self.lexicon)
            if len(turn.resolved) > MAX_QUESTION_CHARS:  # as in prepare: clip, never fail
                turn = replace(turn, resolved=turn.resolved[:MAX_QUESTION_CHARS])
            if turn.intent == "question":
                docs = select(self.data.documents, filters) if filters else self.data.documents
                parts = plan(turn.resolved, docs)
                if parts:
                    return self._compare(q, turn.resolved, parts, k, config, filters)
                mine = narrow(turn.resolved, docs)
                if len(mine) < len(docs):  # the question names one region: search its reports
                    filters = {**(filters or {}), "source": [d.source for d in mine]}
        return self._ask_one(question, k, history, config=config, filters=filters, turn=turn)

    def _compare(self, q: str, resolved: str, parts, k: int, config, filters) -> Answer:
        t = time.perf_counter()
        answers = []
        for part in parts:
            sub = dict(filters or {})
            sub["source"] = list(part.sources)
            a = self._ask_one(part.question, k, (), config=config, filters=sub)
            answers.append(replace(a, label=part.label))
        lead = next((a for a in answers if a.found), answers[0])
        passages = []  # each report's passages in turn, best first, until k
        for i in range(max(len(a.passages) for a in answers) if answers else 0):
            passages.extend(a.passages[i] for a in answers if i < len(a.passages))
        timings = {"total": time.perf_counter() - t}
        return replace(lead, question=q, resolved_question=resolved, passages=tuple(passages[:k]), timings=timings,
                       signals={}, parts=tuple(answers), label="",
                       message=f"比较 {len(answers)} 份报告：" + "；".join(a.label for a in answers))

    def _ask_one(self, question: object, k: int = 5, history: Sequence[str] | str | None = (), *,
                 config: RetrievalConfig | None = None, filters=None, turn: Turn | None = None) -> Answer:
        t_all = time.perf_counter()
        prep = self.prepare(question, k, history, config=config, filters=filters, turn=turn)
        q, turn, timings = prep.question, prep.turn, prep.timings
        if turn.intent == "smalltalk":
            return replace(self._not_found(q, "", (), 0.0, timings), intent="smalltalk", message=turn.reply)
        if prep.candidates is None:
            return self._not_found(q, turn.resolved, (), 0.0, timings)
        t = time.perf_counter()
        reading = self.reader.read(prep.query, prep.candidates, prep.bridges, prep.bridged_tokens, k,
                                   self.reader_config, prep.qvec)
        timings["answer"] = time.perf_counter() - t
        if not reading.found and turn.fallback:
            # The message looked complete but the report does not answer it as it stands: read it as a
            # follow-up of the previous question ("惠及多少户居民？" after the 老旧小区 question).
            alt = self.prepare(question, k, history, config=config, filters=filters,
                               turn=replace(turn, resolved=turn.fallback, fallback=""))
            if alt.candidates is not None:
                again = self.reader.read(alt.query, alt.candidates, alt.bridges, alt.bridged_tokens, k,
                                         self.reader_config, alt.qvec)
                # the context may only say what the message is about; the quote must still hold the
                # message's own words ("居民" in "受益居民 5,074 户"), or it answers the old topic instead;
                # a report's region name is not such a word (every sentence is about the region)
                quote = normalize(again.sentence.text) if again.found else ""
                if any(w in quote for w in _not_names(topic_terms(q), self._names)):
                    prep, turn, reading = alt, alt.turn, again
                    timings = {**alt.timings, "answer": time.perf_counter() - t}
        passages = self._passages(reading.order, prep.candidates.fused, reading.marks)
        timings["total"] = time.perf_counter() - t_all
        if not reading.found:
            return replace(self._not_found(q, turn.resolved, passages, reading.score, timings), signals=reading.signals)
        answer = replace(self._quote(reading.sentence, reading.span, q, turn.resolved, reading.score),
                         passages=passages, timings=timings, signals=reading.signals)
        if reading.items:  # a list the sentence announces and the next sections spell out: quote each item
            items = tuple(self._quote(s, item_name(s.text), q, turn.resolved, reading.score) for s in reading.items)
            answer = replace(answer, parts=(answer, *items),
                             message=f"共 {len(items)} 项，逐项引自报告：")
        return answer

    def _quote(self, s, span: tuple[int, int], q: str, resolved: str, score: float) -> Answer:
        """One sentence as a found Answer (no passages): its place, document and highlighted span."""
        chunk = self.data.chunks[s.chunk]
        a, b = span
        doc, citation, region, year = self._document(chunk)
        return Answer(
            question=q, found=True, text=s.text, section=chunk.breadcrumb, source=chunk.source,
            start=s.start, end=s.end, highlight=s.text[a:b],
            highlight_start=s.offsets[a], highlight_end=s.offsets[b - 1] + 1,
            score=round(score, 4), resolved_question=resolved, passages=(),
            document=doc, citation=citation, region=region, year=year,
        )

    def _document(self, chunk) -> tuple[str, str, str, int | None]:
        """(document label, citation, region, year) of a chunk's report."""
        entry = self.data.document(chunk.source)
        meta = entry.meta if entry is not None else None
        label = meta.label(chunk.source) if meta is not None else chunk.source
        # the title block's own heading is the document's title (perhaps spelt without its year)
        first = chunk.path[0] if chunk.path else ""
        title_block = first == label or ("工作报告" in first and not re.match(r"[一二三四五六七八九十]+、", first))
        path = chunk.path[1:] if title_block else chunk.path
        return label, " › ".join((label, *path)), (meta.region if meta else ""), (meta.year if meta else None)

    def _passages(self, ids, fused, marks) -> tuple[Passage, ...]:
        out = []
        for c in ids:
            ch = self.data.chunks[c]
            m = marks.get(c)
            doc, citation, region, year = self._document(ch)
            out.append(Passage(ch.text, ch.breadcrumb, round(float(fused.get(c, 0.0)), 6), ch.source, ch.start, ch.end,
                               m.start if m else -1, m.end if m else -1, doc, citation, region, year))
        return tuple(out)

    def _not_found(self, q, resolved, passages, score, timings) -> Answer:
        return Answer(q, False, "", "", "", -1, -1, "", -1, -1, round(float(score), 4), resolved,
                      tuple(passages), timings)

    def with_config(self, **changes) -> "Engine":
        """A view of this engine with other retrieval or reader settings (shares index and model)."""
        other = object.__new__(Engine)
        other.__dict__.update(self.__dict__)
        rfields = {f.name for f in fields(ReaderConfig)}
        other.config = replace(self.config, **{k: v for k, v in changes.items() if k not in rfields})
        other.reader_config = replace(self.reader_config, **{k: v for k, v in changes.items() if k in rfields})
        return other
