"""The 数据一览 tab of the workbench page: every figure of the reports, filtered and sorted, as CSV,
with charts of targets against results.

    figures_tab(bench) -> FiguresTab      its components (call inside the page's Blocks)
    wire_figures(tab, bench)              any filter change redraws the table and the CSV download

Gradio is imported inside the functions: importing this module is instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["FiguresTab", "figures_tab", "wire_figures"]


@dataclass(frozen=True)
class FiguresTab:
    text: Any
    kind: Any
    measure: Any
    year: Any
    sort: Any
    csv: Any
    table: Any

    @property
    def filters(self) -> list:
        return [self.text, self.kind, self.measure, self.year, self.sort]


def figures_tab(bench) -> FiguresTab:
    import gradio as gr

    from .figures import ALL, SORTS
    from .workbench import chart_html, figures_table_html, pairs_html

    years = sorted({str(f.year) for f in bench.figures if f.year})
    rows = list(bench.figures)
    gr.HTML(pairs_html(bench.pairs) + chart_html(bench.pairs, bench.figures), elem_id="qa-fig-charts")
    with gr.Row(equal_height=True):
        text = gr.Textbox(label="筛选（指标、章节或句子）", max_lines=1, max_length=100, scale=2)
        kind = gr.Dropdown([ALL, "结果", "目标", "其他"], value=ALL, label="类别", min_width=110)
        measure = gr.Dropdown([ALL, "总量", "增速", "比率"], value=ALL, label="口径", min_width=110)
        year = gr.Dropdown([ALL, *years], value=ALL, label="年份", min_width=110)
        sort = gr.Dropdown(list(SORTS), value="文中顺序", label="排序", min_width=150)
    csv = gr.DownloadButton("下载 CSV（当前筛选）", value=bench.csv_file(rows), size="sm", elem_id="qa-csv")
    table = gr.HTML(figures_table_html(rows, caption=f"共 {len(rows)} 项（全部 {len(rows)} 项）"),
                    elem_id="qa-fig-table")
    return FiguresTab(text, kind, measure, year, sort, csv, table)


def wire_figures(tab: FiguresTab, bench, ui_only: dict) -> None:
    from .figures import SORTS, filter_figures
    from .workbench import figures_table_html

    def on_filter(text: str, kind: str, measure: str, year: str, sort: str):
        rows = filter_figures(bench.figures, (text or "")[:100], kind, measure, year,
                              sort if sort in SORTS else "文中顺序")
        return (figures_table_html(rows, caption=f"共 {len(rows)} 项（全部 {len(bench.figures)} 项）"),
                bench.csv_file(rows))

    out = [tab.table, tab.csv]
    for c in tab.filters[1:]:
        c.change(on_filter, tab.filters, out, **ui_only)
    tab.text.submit(on_filter, tab.filters, out, **ui_only)
    tab.text.blur(on_filter, tab.filters, out, **ui_only)
