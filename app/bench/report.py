"""The bench's output: the table on the terminal, in the order the phases read best."""

from __future__ import annotations

from .common import Figure, fmt

__all__ = ["HEADLINES", "SECTIONS", "headline_table", "headlines", "section_rank", "table"]

SECTIONS = ("cold start", "warm ask()", "index build", "memory", "scale", "load", "machine")


def section_rank(section: str) -> int:
    return next((i for i, s in enumerate(SECTIONS) if section.startswith(s)), len(SECTIONS))


def table(figs: list[Figure], console) -> None:
    from rich.table import Table

    table = Table(title="app bench", show_lines=False, header_style="bold")
    for col, kw in (("figure", {}), ("value", {"justify": "right"}), ("target", {"justify": "right"}),
                    ("", {}), ("how measured", {"ratio": 1})):
        table.add_column(col, **kw)
    section = None
    for f in figs:
        if f.section != section:
            section = f.section
            table.add_section()
            table.add_row(f"[bold]{section}[/bold]", "", "", "", "")
        mark = {True: "[green]pass[/green]", False: "[red]MISS[/red]", None: ""}[f.passed]
        table.add_row("  " + f.name, f"{fmt(f.value, f.unit)} {f.unit}".strip(), f.target, mark, f.how)
    console.print(table)


# The table: (row, where the figure is, its name). The section of a scale row is matched by prefix.
HEADLINES = (
    ("warm ask() p50", "warm ask()", "p50 latency"),
    ("warm ask() p95", "warm ask()", "p95 latency"),
    ("cold: new process to first answer (python -m app ask …)", "cold start",
     "new process to first answer (python -m app ask …)"),
    ("peak RSS, serve", "memory", "peak RSS, python -m app serve"),
    ("index build, encoding rate", "index build", "encoding rate, report chunks"),
    ("largest corpus: open the engine", "load ×", "open the engine"),
    ("largest corpus: whole ask() p50", "load ×", "whole ask() p50"),
)


def headlines(figs: list[Figure]) -> list[tuple[str, Figure]]:
    out = []
    for label, section, name in HEADLINES:
        f = next((f for f in figs if f.section.startswith(section) and f.name == name), None)
        if f is not None:
            out.append((label if not section.endswith("×") else f"{f.section.split(' (')[0]}: {name}", f))
    return out


def headline_table(figs: list[Figure], console) -> None:
    from rich.table import Table

    t = Table(title="issue 10 targets", header_style="bold")
    for col in ("figure", "measured", "target", ""):
        t.add_column(col, justify="right" if col in ("measured", "target") else "left")
    for label, f in headlines(figs):
        mark = {True: "[green]pass[/green]", False: "[red]MISS[/red]", None: ""}[f.passed]
        t.add_row(label, f"{fmt(f.value, f.unit)} {f.unit}".strip(), f.target, mark)
    console.print(t)
