"""The 报告原文 tab of the workbench page: the report, search in it, deep links to a place.

    report_tab(bench) -> ReportTab                 its components (call inside the page's Blocks)
    wire_report(tab, bench, goto, tabs, demo)      its handlers: a citation click or the page's URL
                                                   opens the tab at the place; search lists the hits

Gradio is imported inside the functions: importing this module is instant.
"""

# No `from __future__ import annotations` here: Gradio reads the `gr.Request` hints at runtime.
import html
from dataclasses import dataclass
from typing import Any

from .ui import MAX_LINK_CHARS, _esc, _origin

__all__ = ["ReportTab", "report_tab", "wire_report"]


@dataclass(frozen=True)
class ReportTab:
    find_box: Any
    find_list: Any
    share: Any
    report: Any


def report_tab(bench) -> ReportTab:
    import gradio as gr

    from .reportview import render_report

    find_box = gr.Textbox(label="在报告中查找", placeholder="例如：老旧小区、231.52亿元", submit_btn="查找",
                          max_lines=1, max_length=100, elem_id="qa-find")
    find_list = gr.HTML(elem_id="qa-find-results")
    share = gr.Textbox(label="当前位置的链接（可复制分享）", interactive=False, buttons=["copy"], elem_id="qa-share")
    report = gr.HTML(render_report(bench.doc()), elem_id="qa-report")
    return ReportTab(find_box, find_list, share, report)


def wire_report(tab: ReportTab, bench, goto, tabs, demo, ui_only: dict) -> None:
    """``goto``: the hidden box the page's citation links write a deep link into; ``tabs``: the page's
    tabs (a place opens the report tab); ``demo``: the page (its URL may name a place)."""
    import gradio as gr

    from .reportview import LocationError, find_results, parse_location, render_report
    from .workbench import SCROLL_JS

    def show_place(query: str, find: str, request: gr.Request):
        """Open the report tab at the place a deep link names (from a click or the page's URL)."""
        query = (query or "").split("#", 1)[0][:MAX_LINK_CHARS]
        from urllib.parse import parse_qsl

        params = dict(parse_qsl(query.lstrip("?")))
        try:
            loc = parse_location(params, bench.sizes)
        except LocationError as exc:
            return (render_report(bench.doc(), find=find, notice=f"无法打开这个链接：{exc}"),
                    gr.Tabs(selected="report"), "")
        if loc is None:
            return gr.skip(), gr.skip(), gr.skip()
        return (render_report(bench.doc(loc.source), loc, find=find), gr.Tabs(selected="report"),
                _origin(request) + loc.query())

    def on_load(request: gr.Request):
        params = dict(getattr(request, "query_params", {}) or {})
        if not params.get("doc"):
            return gr.skip(), gr.skip(), gr.skip()
        from urllib.parse import urlencode

        return show_place("?" + urlencode(params), "", request)

    def on_find(find: str):
        find = (find or "").strip()[:100]
        doc = bench.doc()
        hits = find_results(doc, find) if find else []
        items = "".join(
            f'<li><a class="qa-link" href="{html.escape(loc.query())}">{_esc(section) or "（正文）"}</a>：'
            f"{_esc(snippet)}</li>" for loc, section, snippet in hits)
        listing = f'<ol class="qa-find-list" aria-label="查找结果">{items}</ol>' if hits else ""
        return render_report(doc, find=find), listing

    goto.change(show_place, [goto, tab.find_box], [tab.report, tabs, tab.share], **ui_only).then(
        None, None, None, js=SCROLL_JS, **ui_only)
    tab.find_box.submit(on_find, tab.find_box, [tab.report, tab.find_list], **ui_only).then(
        None, None, None, js=SCROLL_JS, **ui_only)
    demo.load(on_load, None, [tab.report, tabs, tab.share], **ui_only).then(None, None, None, js=SCROLL_JS, **ui_only)
