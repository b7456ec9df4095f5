"""Command line: each command parses, calls one function, prints, and turns AppError into a message.

    python -m app ask "2024年地区生产总值是多少？" [-k 5] [--json]
    python -m app chat                 interactive ask loop in the terminal
    python -m app index                build (or rebuild) index/
    python -m app serve                the Gradio chat on http://127.0.0.1:7860
    python -m app eval                 the evaluation benchmark (eval/results/)
    python -m app bench                speed/scale benchmark
    python -m app feedback stats|export   feedback from the web chat (counts; 👎 rows as eval candidates)
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

__all__ = ["main"]


def _settings(args):
    from .chunking import ChunkSettings
    from .config import Settings

    over = {}
    if getattr(args, "corpus", None):
        over["corpus_dir"] = Path(args.corpus)
    if getattr(args, "index", None):
        over["index_dir"] = Path(args.index)
    if getattr(args, "model", None):
        over["model"] = args.model
    s = Settings.from_env(**over)
    if getattr(args, "chunk_size", None):
        from dataclasses import replace

        s = replace(s, chunk=ChunkSettings(args.chunk_size, s.chunk.overlap))
    return s


def _engine(args):
    from .engine import Engine

    return Engine.open(_settings(args), build=not getattr(args, "no_build", False),
                       progress=lambda m: print(m, file=sys.stderr))


def answer_to_json(answer) -> str:
    d = asdict(answer)
    d.pop("timings", None)
    d.pop("signals", None)
    return json.dumps(d, ensure_ascii=False, indent=2)


def format_answer(answer) -> str:
    """Plain-text rendering: the quote with the span in 【】, its section, then the sources."""
    lines = []
    if answer.found:
        # offsets are into the file and the text may skip page-break newlines: locate by content
        a = max(0, answer.text.find(answer.highlight))
        b = a + len(answer.highlight)
        lines.append(f"「{answer.text[:a]}【{answer.text[a:b]}】{answer.text[b:]}」")
        lines.append(f"—— {answer.section}（{answer.source}，第 {answer.start}–{answer.end} 字符）")
    else:
        lines.append("报告中没有找到这个问题的答案。")
        if answer.passages:
            lines.append("相关段落：")
    lines.append("")
    for i, p in enumerate(answer.passages, 1):
        lines.append(f"[{i}] {p.section}  (score {p.score:.4f}, {p.source} {p.start}–{p.end})")
        lines.append(f"    {p.text[:160]}{'…' if len(p.text) > 160 else ''}")
    return "\n".join(lines)


def cmd_ask(args) -> int:
    eng = _engine(args)
    ans = eng.ask(args.question, k=args.k, history=args.history or ())
    print(answer_to_json(ans) if args.json else format_answer(ans))
    return 0


def cmd_chat(args) -> int:
    from .errors import QuestionError

    eng = _engine(args)
    history: list[str] = []
    print("海拉尔区 2025 年政府工作报告问答（输入问题，空行或 Ctrl-D 退出）")
    while True:
        try:
            q = input("问> ").strip()
        except EOFError:
            break
        if not q:
            break
        try:
            ans = eng.ask(q, k=args.k, history=history)
        except QuestionError as exc:
            print(f"[!] {exc}")
            continue
        print(format_answer(ans))
        history.append(ans.resolved_question)
    return 0


def cmd_index(args) -> int:
    from .embedder import SentenceTransformerEmbedder
    from .index import build_index

    s = _settings(args)
    folder, errors = build_index(s.corpus_dir, s.index_dir, SentenceTransformerEmbedder(s.model), s.chunk,
                                 progress=lambda m: print(m, file=sys.stderr), show_bar=True)
    print(f"index written to {folder}")
    return 1 if errors and args.strict else 0


def cmd_serve(args) -> int:
    from .ui import serve

    serve(_engine(args), host=args.host, port=args.port, corpus_dir=_settings(args).corpus_dir)
    return 0


def cmd_eval(args) -> int:
    from .evaluate import main as eval_main

    return eval_main(args, _engine(args))


def cmd_bench(args) -> int:
    from .bench import main as bench_main

    return bench_main(args, _settings(args))


def cmd_feedback(args) -> int:
    from .feedback import FeedbackStore

    store = FeedbackStore(args.db) if args.db else FeedbackStore.from_env()
    if args.action == "stats":
        stats = store.stats()
        if args.json:
            print(json.dumps(stats, ensure_ascii=False, indent=2))
        else:
            for key, value in stats.items():
                print(f"{key:18} {value}")
        return 0
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            n = store.export_candidates(fh)
        print(f"{n} candidate question(s) written to {args.out} (review them before adding to eval/questions.jsonl)",
              file=sys.stderr)
    else:
        store.export_candidates(sys.stdout)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app", description="Offline Q&A over the 海拉尔区 2025 年政府工作报告.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--corpus", help="corpus folder of .md/.txt files (default: corpus/, env APP_CORPUS)")
    common.add_argument("--index", help="index folder (default: index/, env APP_INDEX)")
    common.add_argument("--model", help="sentence-transformers model name or path (default: bundled e5-small, env APP_MODEL)")
    common.add_argument("--chunk-size", type=int, help="chunk size in characters (default 300)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    a = sub.add_parser("ask", parents=[common], help="answer one question")
    a.add_argument("question")
    a.add_argument("-k", type=int, default=5, help="number of passages (default 5)")
    a.add_argument("--json", action="store_true", help="print the Answer as JSON")
    a.add_argument("--history", action="append", help="an earlier question, for follow-ups (repeatable)")
    a.add_argument("--no-build", action="store_true", help="fail instead of building a missing/stale index")
    a.set_defaults(fn=cmd_ask)

    c = sub.add_parser("chat", parents=[common], help="interactive question loop in the terminal")
    c.add_argument("-k", type=int, default=3)
    c.set_defaults(fn=cmd_chat)

    i = sub.add_parser("index", parents=[common], help="build the index")
    i.add_argument("--strict", action="store_true", help="exit 1 if any corpus file was skipped")
    i.set_defaults(fn=cmd_index)

    s = sub.add_parser("serve", parents=[common], help="start the web chat")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=7860)
    s.set_defaults(fn=cmd_serve)

    e = sub.add_parser("eval", parents=[common], help="run the evaluation benchmark")
    e.add_argument("--questions", default=None, help="eval JSONL (default eval/questions.jsonl)")
    e.add_argument("--out", default=None, help="results folder (default eval/results)")
    e.add_argument("--configs", default="bm25,dense,hybrid", help="comma-separated retrieval configs to compare")
    e.add_argument("--check", action="store_true", help="exit 1 if the default config is below the floors")
    e.add_argument("--no-build", action="store_true")
    e.set_defaults(fn=cmd_eval)

    b = sub.add_parser("bench", parents=[common], help="speed and scale benchmark")
    b.add_argument("--out", default=None, help="results folder (default eval/results)")
    b.add_argument("--scales", default="10,100,1000", help="index scale factors to measure")
    b.add_argument("--quick", action="store_true", help="fewer repetitions (for CI smoke runs)")
    b.set_defaults(fn=cmd_bench)
    f = sub.add_parser("feedback", help="feedback given in the web chat: stats, or export 👎 rows for review")
    f.add_argument("action", choices=["stats", "export"],
                   help="stats: counts; export: 👎 rows as eval-format JSON lines (candidates to review)")
    f.add_argument("--db", help="feedback database (default: env APP_FEEDBACK_DB, else the user data folder)")
    f.add_argument("--out", help="export: write to this file instead of standard output")
    f.add_argument("--json", action="store_true", help="stats: print JSON")
    f.set_defaults(fn=cmd_feedback)
    return p


def main(argv: list[str] | None = None) -> int:
    from .errors import AppError

    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
