"""Command line: each command parses, calls one function, prints, and turns AppError into a message.

    python -m app ask "2024年地区生产总值是多少？" [-k 5] [--json] [--filter year=2025]
    python -m app chat                 interactive ask loop in the terminal
    python -m app index                build (or rebuild) index/ [--workers N [--scheduler tcp://host:8786]]
    python -m app synth OUT            write the generated multi-report test corpus
    python -m app serve                the Gradio chat on http://127.0.0.1:7860
    python -m app eval                 the evaluation benchmark (eval/results/)
    python -m app fit                  fit the reader on the eval set's dev split (app/models/reader.json)
    python -m app bench                speed/scale benchmark
    python -m app feedback stats|export   feedback from the web chat (counts; 👎 rows as eval candidates)
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from .errors import AppError

__all__ = ["UsageError", "main"]


class UsageError(AppError):
    """A command-line value that cannot work (a port taken, a file missing): said before any loading."""


def _settings(args):
    from .config import Settings

    over = {}
    if getattr(args, "corpus", None):
        over["corpus_dir"] = Path(args.corpus)
    if getattr(args, "index", None):
        over["index_dir"] = Path(args.index)
    if getattr(args, "model", None):
        over["model"] = args.model
    if getattr(args, "backend", None):
        over["backend"] = args.backend
    return Settings.from_env(chunk_size=getattr(args, "chunk_size", None), **over)


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
    """Plain-text rendering: the quote with the span in 【】, its document and section, then the sources.
    A comparison across reports shows one quote per report."""
    lines = []
    if answer.intent == "smalltalk":
        return answer.message
    if answer.resolved_question and answer.resolved_question != answer.question:
        lines.append(f"（按“{answer.resolved_question}”理解）")
    if answer.parts:
        lines.append(answer.message)
        for part in answer.parts:
            lines.append("")
            if part.label:
                lines.append(f"【{part.label}】")
            lines.extend(_quote_lines(part))
    else:
        lines.extend(_quote_lines(answer))
        if not answer.found and answer.passages:
            lines.append("相关段落：")
    lines.append("")
    for i, p in enumerate(answer.passages, 1):
        lines.append(f"[{i}] {p.citation or p.section}  (score {p.score:.4f}, {p.source} {p.start}–{p.end})")
        lines.append(f"    {p.text[:160]}{'…' if len(p.text) > 160 else ''}")
    return "\n".join(lines)


def _quote_lines(answer) -> list[str]:
    if not answer.found:
        return ["报告中没有找到这个问题的答案。"]
    # offsets are into the file and the text may skip page-break newlines: locate by content
    a = max(0, answer.text.find(answer.highlight))
    b = a + len(answer.highlight)
    return [f"「{answer.text[:a]}【{answer.text[a:b]}】{answer.text[b:]}」",
            f"—— {answer.citation or answer.section}（{answer.source}，第 {answer.start}–{answer.end} 字符）"]


def _filters(args) -> dict | None:
    from .filters import parse_filter_args

    return parse_filter_args(getattr(args, "filter", None)) or None


def cmd_ask(args) -> int:
    filters = _filters(args)
    eng = _engine(args)
    ans = eng.ask(args.question, k=args.k, history=args.history or (), filters=filters)
    print(answer_to_json(ans) if args.json else format_answer(ans))
    return 0


def cmd_chat(args) -> int:
    from .errors import QuestionError

    filters = _filters(args)
    eng = _engine(args)
    history: list[str] = []
    print("政府工作报告问答（输入问题，空行或 Ctrl-D 退出）")
    while True:
        try:
            q = input("问> ").strip()
        except EOFError:
            break
        if not q:
            break
        try:
            ans = eng.ask(q, k=args.k, history=history, filters=filters)
        except QuestionError as exc:
            print(f"[!] {exc}")
            continue
        print(format_answer(ans))
        history.append(q)  # the engine resolves the whole chain itself; small talk carries no topic
    return 0


def cmd_index(args) -> int:
    from .embedder import make_embedder

    s = _settings(args)
    say = lambda m: print(m, file=sys.stderr)  # noqa: E731
    if args.workers or args.scheduler:
        import functools

        from .distributed import build_distributed

        report = build_distributed(s.corpus_dir, s.index_dir,
                                   functools.partial(make_embedder, s.model, s.backend, threads=1), s.chunk,
                                   workers=args.workers or 2, scheduler=args.scheduler,
                                   shard_dir=Path(args.shards) if args.shards else None, progress=say)
        folder, errors = report.folder, report.errors
        say(f"{report.shards_built} shard(s) built, {report.shards_reused} reused; "
            + ", ".join(f"{k} {v:.1f}s" for k, v in report.seconds.items()))
    else:
        from .index import build_index

        folder, errors = build_index(s.corpus_dir, s.index_dir, make_embedder(s.model, s.backend), s.chunk,
                                     progress=say, show_bar=True)
    print(f"index written to {folder}")
    return 1 if errors and args.strict else 0


def cmd_synth(args) -> int:
    from .synth import write_corpus

    paths = write_corpus(Path(args.out), args.reports, seed=args.seed, small=args.small,
                         include_seed=not args.no_seed_report)
    print(f"{len(paths)} report(s) written to {args.out}")
    return 0


def _port_taken(host: str, port: int) -> UsageError:
    return UsageError(f"cannot listen on {host}:{port} (the port is in use, or the address is not this machine's): "
                      f"stop the other server or pick another with --port, e.g. --port {port + 1 if port < 65535 else 7861}")


def _check_port(host: str, port: int) -> None:
    """Fail in a moment, before the model loads, when the server could not listen anyway."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise UsageError(f"--host {host!r} is not an address of this machine: use 127.0.0.1 (default) or 0.0.0.0") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is no conflict
        try:
            s.bind(address)
        except OSError:
            raise _port_taken(host, port) from None


def cmd_serve(args) -> int:
    from .ui import serve

    _check_port(args.host, args.port)
    engine = _engine(args)
    try:
        serve(engine, host=args.host, port=args.port, corpus_dir=_settings(args).corpus_dir)
    except OSError as exc:  # taken between the check and the launch; Gradio says "Cannot find empty port"
        if "port" not in str(exc).lower():
            raise
        raise _port_taken(args.host, args.port) from None
    return 0


def cmd_eval(args) -> int:
    if args.suite == "multi":
        from .multieval import main as multi_main

        return multi_main(args, _settings(args))
    from .evaluate import main as eval_main

    if args.questions and not Path(args.questions).is_file():
        raise UsageError(f"--questions {args.questions}: no such file: pass a JSONL file of questions "
                         "(format in eval/README.md), or leave it out for eval/questions.jsonl")
    return eval_main(args, _engine(args))


def cmd_fit(args) -> int:
    from .fit import main as fit_main

    return fit_main(args, _engine(args))


def cmd_bench(args) -> int:
    if args.scale:
        from .scalebench import main as scale_main

        return scale_main(args, _settings(args))
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


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port: give a number from 1 to 65535, e.g. 7860")
    return port


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app", description="Offline Q&A over the 海拉尔区 2025 年政府工作报告.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--corpus", help="corpus folder of .md/.txt files (default: corpus/, env APP_CORPUS)")
    common.add_argument("--index", help="index folder (default: index/, env APP_INDEX)")
    common.add_argument("--model", help="sentence-transformers model name or path (default: bundled e5-small, env APP_MODEL)")
    common.add_argument("--backend", choices=("auto", "onnx", "onnx-fp32", "torch"),
                        help="encoder: onnx-fp32, onnx (int8: fastest, vectors moved slightly) or torch (PyTorch "
                             "fp32); auto = onnx-fp32 for the default model, torch for others (env APP_BACKEND)")
    common.add_argument("--chunk-size", type=int, help="chunk size in characters (default 300)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    a = sub.add_parser("ask", parents=[common], help="answer one question")
    a.add_argument("question")
    a.add_argument("-k", type=int, default=5, help="number of passages (default 5)")
    a.add_argument("--json", action="store_true", help="print the Answer as JSON")
    a.add_argument("--history", action="append", help="an earlier question, for follow-ups (repeatable)")
    a.add_argument("--no-build", action="store_true", help="fail instead of building a missing/stale index")
    a.add_argument("--filter", action="append", metavar="KEY=VALUE",
                   help="search only matching reports: region=, year=, level=, title=, date=, source= "
                        "(repeatable; a,b for any of several)")
    a.set_defaults(fn=cmd_ask)

    c = sub.add_parser("chat", parents=[common], help="interactive question loop in the terminal")
    c.add_argument("-k", type=int, default=3)
    c.add_argument("--filter", action="append", metavar="KEY=VALUE", help="as for ask")
    c.set_defaults(fn=cmd_chat)

    i = sub.add_parser("index", parents=[common], help="build the index")
    i.add_argument("--strict", action="store_true", help="exit 1 if any corpus file was skipped")
    i.add_argument("--workers", type=int, default=0,
                   help="build on a local Dask cluster of N worker processes (one thread each)")
    i.add_argument("--scheduler", default=None, metavar="tcp://HOST:8786",
                   help="build on this running Dask scheduler's workers instead of a local cluster")
    i.add_argument("--shards", default=None,
                   help="shard folder for a distributed build (default <index>/.shards; on a cluster, a path every "
                        "worker sees)")
    i.set_defaults(fn=cmd_index)

    y = sub.add_parser("synth", help="write the generated multi-report test corpus (deterministic)")
    y.add_argument("out", help="folder to write the reports into")
    y.add_argument("--reports", type=int, default=10, help="number of reports (default 10)")
    y.add_argument("--seed", type=int, default=0)
    y.add_argument("--small", action="store_true", help="few sections per report (fast test corpora)")
    y.add_argument("--no-seed-report", action="store_true", help="leave out the real report itself")
    y.set_defaults(fn=cmd_synth)

    s = sub.add_parser("serve", parents=[common], help="start the web chat")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=_port, default=7860, help="port to listen on (default 7860)")
    s.add_argument("--no-build", action="store_true",
                   help="fail instead of building a missing/stale index (replicas sharing one index)")
    s.set_defaults(fn=cmd_serve)

    e = sub.add_parser("eval", parents=[common], help="run the evaluation benchmark")
    e.add_argument("--questions", default=None, help="eval JSONL (default eval/questions.jsonl)")
    e.add_argument("--out", default=None, help="results folder (default eval/results)")
    e.add_argument("--configs", default="bm25,dense,hybrid", help="comma-separated retrieval configs to compare")
    e.add_argument("--check", action="store_true", help="exit 1 if the default config is below the floors")
    e.add_argument("--split", choices=["dev", "blind"], default=None, help="only this split (default: both)")
    e.add_argument("--suite", choices=["report", "multi"], default="report",
                   help="report: the real report's questions (default); multi: the generated multi-report corpus "
                        "and eval/multi/questions.jsonl (corpus and index in --out, default eval/results/multi)")
    e.add_argument("--write-questions", action="store_true", help="with --suite multi: regenerate its questions")
    e.add_argument("--no-build", action="store_true")
    e.set_defaults(fn=cmd_eval)

    f = sub.add_parser("fit", parents=[common], help="fit the reader's models on the eval set's dev split")
    f.add_argument("--questions", default=None, help="eval JSONL (default eval/questions.jsonl; only split=dev is used)")
    f.add_argument("--out", dest="model_out", default=None, help="where to write the weights (default app/models/reader.json)")
    f.add_argument("--report", default=None, help="where to write the report (default eval/results/fit.md)")
    f.add_argument("--max-false-refusal", type=float, default=0.05,
                   help="share of answerable dev questions the threshold may refuse (cross-validated; default 0.05)")
    f.add_argument("--no-build", action="store_true")
    f.set_defaults(fn=cmd_fit)

    b = sub.add_parser("bench", parents=[common], help="speed and scale benchmark")
    b.add_argument("--out", default=None, help="results folder (default eval/results)")
    b.add_argument("--scales", default="10,100,1000", help="index scale factors to measure")
    b.add_argument("--quick", action="store_true", help="fewer repetitions (for CI smoke runs)")
    b.add_argument("--scale", action="store_true",
                   help="many reports: the build on one process vs. a local Dask cluster, and the generated corpus at "
                        "--scales reports as real indexes (eval/results/bench-scale.json)")
    b.add_argument("--build-reports", type=int, default=10, help="with --scale: reports in the build comparison")
    b.add_argument("--only-build", action="store_true", help="with --scale: only the build comparison "
                                                                "(eval/results/bench-scale-build.json)")
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
    """Run one command; a mistake or an unusable file ends in one `error:` line and exit code 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a folder that cannot be written, a file that cannot be read
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}: check that the path exists and is writable, "
              "or point --index/--corpus elsewhere", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
