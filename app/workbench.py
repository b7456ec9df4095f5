"""The report workbench around the chat: the report tab, the figures tab, feedback and export.

    Workbench.open(corpus_dir, feedback)           per server: the corpus files, their figures, the store
    Workbench.write(name, text) -> path            a download (CSV, Markdown) under a generated name
    is_download(path)                              whether a file route's path is such a download
    figures_table_html(rows) / pairs_html(pairs)   pure HTML for the figures tab
    chart_png(...)                                 matplotlib charts (CJK font found on the system)
    GOTO_JS, SCROLL_JS                             the page script: citation links open the report tab

Nothing here is global: `app.ui.build_ui` makes one Workbench per page and passes it to the
handlers. Citation links are ordinary links to deep-link URLs (``?doc=…&start=…``), so they work
from the keyboard, open in a new tab with the same view, and are what a user shares; the page
script turns a plain click into an in-page jump (a hidden "goto" box the server listens to).

Downloads are the only files the server hands out. Each is written under a generated name
(``figures-<sha256 prefix>.csv``, ``conversation-<…>.md``) in a folder of its own; Gradio copies
it into its cache to serve it, and the HTTP edge (app/edge.py) lets the file route through only
for such a name inside that cache (`is_download`). Neither copy is kept for ever: this folder
drops files older than `DOWNLOAD_TTL_S` (and keeps at most `MAX_DOWNLOADS`), and the page asks
Gradio to delete its copies on the same schedule, so a stream of exports cannot fill the disk.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import os
import re
import shutil
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .corpus import Doc, load_corpus
from .feedback import FeedbackStore
from .figures import Figure, FigurePair, extract_figures, figure_pairs, figures_csv
from .reportview import Location

__all__ = ["DOWNLOAD_TTL_S", "GOTO_JS", "MAX_DOWNLOADS", "SCROLL_JS", "Workbench", "chart_png", "figures_table_html",
           "is_download", "pairs_html"]

DOWNLOAD_TTL_S = 900  # a generated download is deleted this long after it was written (or handed out again)
MAX_DOWNLOADS = 500  # and the folder keeps at most this many, newest first
_PRUNE_EVERY_S = 30.0
_DOWNLOAD_NAME = re.compile(r"(?:conversation|figures)-[0-9a-f]{12}\.(?:md|csv)")


def is_download(path: str, cache_dir: str | None = None) -> bool:
    """Whether ``path`` (from Gradio's file route, ``/gradio_api/file=<path>``) is a download this
    app wrote, as Gradio serves it: a generated name, in Gradio's cache folder (``cache_dir``,
    default GRADIO_TEMP_DIR or <temp>/gradio), no way out of it. Anything else is not served."""
    if not isinstance(path, str) or not _DOWNLOAD_NAME.fullmatch(os.path.basename(path)) or "\0" in path:
        return False
    if cache_dir is None:
        cache_dir = os.environ.get("GRADIO_TEMP_DIR") or os.path.join(tempfile.gettempdir(), "gradio")
    if not os.path.isabs(path) or ".." in path.replace("\\", "/").split("/"):
        return False
    real, root = os.path.realpath(path), os.path.realpath(cache_dir)
    # <cache>/<content hash>/<name>, as Gradio stores it (and still a generated name once links are resolved)
    return os.path.dirname(os.path.dirname(real)) == root and bool(_DOWNLOAD_NAME.fullmatch(os.path.basename(real)))


@dataclass(frozen=True)
class Workbench:
    docs: dict  # source -> Doc
    figures: tuple[Figure, ...]
    pairs: tuple[FigurePair, ...]
    feedback: FeedbackStore
    files: Path  # where generated downloads (CSV, Markdown) are written, one folder per server
    _pruned: list = field(default_factory=lambda: [0.0], compare=False, repr=False)  # when the folder was last pruned
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    @classmethod
    def open(cls, corpus_dir: Path, feedback: FeedbackStore | None = None) -> "Workbench":
        docs, _errors = load_corpus(corpus_dir)
        figs = tuple(f for d in docs for f in extract_figures(d))
        bench = cls({d.source: d for d in docs}, figs, tuple(figure_pairs(figs)), feedback or FeedbackStore.from_env(),
                    Path(tempfile.mkdtemp(prefix="hailar-qa-")))
        weakref.finalize(bench, shutil.rmtree, str(bench.files), True)  # the folder goes with the server
        return bench

    @property
    def sizes(self) -> dict:
        return {s: len(d.text) for s, d in self.docs.items()}

    def doc(self, source: str | None = None) -> Doc:
        return self.docs.get(source or "") or next(iter(self.docs.values()))

    def write(self, name: str, text: str, encoding: str = "utf-8") -> str:
        """Write a download; the name carries a hash of the content, so sessions never clash."""
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
        stem, _, ext = name.rpartition(".")
        path = self.files / f"{stem}-{digest}.{ext}"
        if path.exists():
            os.utime(path)  # handed out again: it lives another DOWNLOAD_TTL_S
        else:
            tmp = path.with_suffix(f"{path.suffix}.{threading.get_ident()}.tmp")
            tmp.write_text(text, encoding=encoding)
            tmp.replace(path)
        self.prune()
        return str(path)

    def prune(self, now: float | None = None, force: bool = False) -> None:
        """Delete downloads older than DOWNLOAD_TTL_S, and the oldest beyond MAX_DOWNLOADS (at most
        every few seconds: Gradio has copied a file to its cache long before either applies)."""
        now = time.time() if now is None else now
        with self._lock:
            if not force and now - self._pruned[0] < _PRUNE_EVERY_S:
                return
            self._pruned[0] = now
            try:
                entries = sorted(((e.stat().st_mtime, e.path) for e in os.scandir(self.files) if e.is_file()),
                                 reverse=True)
            except OSError:
                return
            for i, (mtime, path) in enumerate(entries):
                if i >= MAX_DOWNLOADS or now - mtime > DOWNLOAD_TTL_S:
                    try:
                        os.remove(path)
                    except OSError:
                        pass

    def csv_file(self, rows: Sequence[Figure]) -> str:
        return self.write("figures.csv", figures_csv(rows), encoding="utf-8-sig")  # BOM: Excel reads it as UTF-8


# ---------------------------------------------------------------- figures tab (pure HTML)


def _num(f: Figure) -> str:
    """The value as the report writes it, with thousands separators: 2,431.67, 231.52, -75."""
    text = f"{f.value:,.6f}".rstrip("0").rstrip(".")
    return text


def figures_table_html(rows: Sequence[Figure], caption: str = "") -> str:
    """The rows as an accessible table; each row links to its sentence in the report."""
    head = "".join(f'<th scope="col">{h}</th>' for h in ("指标", "数值", "单位", "原文", "年份", "类别", "口径", "变化", "章节", "位置"))
    body = []
    for f in rows:
        loc = Location(f.source, f.sentence_start, f.sentence_end, f.start, f.end)
        body.append(
            "<tr>"
            f'<th scope="row">{html.escape(f.indicator)}</th>'
            f'<td class="qa-num">{_num(f)}</td><td>{html.escape(f.unit)}</td><td>{html.escape(f.text)}</td>'
            f"<td>{f.year or ''}</td><td>{f.kind}</td><td>{f.measure}</td><td>{html.escape(f.change)}</td>"
            f'<td class="qa-sec">{html.escape(f.section.split(" › ")[-1])}</td>'
            f'<td><a class="qa-link" href="{html.escape(loc.query())}" aria-label="在原文中查看：{html.escape(f.indicator)} '
            f'{html.escape(f.text)}">原文</a></td>'
            "</tr>"
        )
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    if not rows:
        body.append('<tr><td colspan="10">没有符合条件的数字。</td></tr>')
    return (f'<div class="qa-table-wrap" tabindex="0" role="region" aria-label="数字表格">'
            f'<table class="qa-figures">{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>')


def pairs_html(pairs: Sequence[FigurePair]) -> str:
    """Each target beside its earlier result: the headline comparison as a small table."""
    rows = []
    for p in pairs:
        r, t = p.result, p.target
        rl = Location(r.source, r.sentence_start, r.sentence_end, r.start, r.end).query()
        tl = Location(t.source, t.sentence_start, t.sentence_end, t.start, t.end).query()
        rows.append(
            f'<tr><th scope="row">{html.escape(p.indicator)}</th><td>{p.measure}</td>'
            f'<td><a class="qa-link" href="{html.escape(rl)}" aria-label="{r.year} 年结果 {html.escape(r.text)}，在原文中查看">'
            f"{html.escape(r.text)}</a></td>"
            f'<td><a class="qa-link" href="{html.escape(tl)}" aria-label="{t.year} 年目标 {html.escape(t.text)}，在原文中查看">'
            f"{html.escape(t.text)}</a></td></tr>"
        )
    years = sorted({p.result.year for p in pairs} | {p.target.year for p in pairs})
    ry, ty = (years[0], years[-1]) if years else ("", "")
    return (f'<div class="qa-table-wrap" tabindex="0" role="region" aria-label="目标与上年结果对照">'
            f'<table class="qa-pairs"><caption>{ty} 年目标与 {ry} 年结果（报告两者都给出的指标）</caption>'
            f'<thead><tr><th scope="col">指标</th><th scope="col">口径</th><th scope="col">{ry} 年结果</th>'
            f'<th scope="col">{ty} 年目标</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


# ---------------------------------------------------------------- charts


def _cjk_font() -> str | None:
    """A CJK font file on this system (Debian's fonts-noto-cjk), registered with matplotlib."""
    import glob

    import matplotlib.font_manager as fm

    for pattern in ("/usr/share/fonts/**/NotoSansCJK-Regular.ttc", "/usr/share/fonts/**/NotoSansCJK*.ttc",
                    "/usr/share/fonts/**/*CJK*.tt[cf]", "/usr/share/fonts/**/wqy*.tt[cf]"):
        for path in sorted(glob.glob(pattern, recursive=True)):
            try:
                fm.fontManager.addfont(path)
                return fm.FontProperties(fname=path).get_name()
            except (OSError, RuntimeError, ValueError):
                continue
    return None


def chart_png(pairs: Sequence[FigurePair], figures: Sequence[Figure]) -> bytes:
    """Two panels: growth-rate targets beside the earlier results, and every stated growth rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    font = _cjk_font()
    growth_pairs = [p for p in pairs if p.measure == "增速"]
    rates = [f for f in figures if f.measure == "增速" and f.kind == "结果"]
    with plt.rc_context({"font.family": [font, "DejaVu Sans"] if font else ["DejaVu Sans"], "font.size": 9,
                         "axes.unicode_minus": False}):
        fig, axes = plt.subplots(1, 2, figsize=(10, max(2.6, 0.32 * max(len(rates), 2 * len(growth_pairs)) + 1)),
                                 gridspec_kw={"width_ratios": [1, 1.2]})
        ax = axes[0]
        names = [p.indicator for p in growth_pairs]
        ys = range(len(names))
        if growth_pairs:
            ry, ty = growth_pairs[0].result.year, growth_pairs[0].target.year
            ax.barh([y + 0.2 for y in ys], [p.result.value for p in growth_pairs], 0.4, label=f"{ry} 年结果", color="#8aa1b4")
            ax.barh([y - 0.2 for y in ys], [p.target.value for p in growth_pairs], 0.4, label=f"{ty} 年目标", color="#d9822b")
            for y, p in zip(ys, growth_pairs):
                ax.text(p.result.value, y + 0.2, f" {p.result.text}", va="center", fontsize=8)
                ax.text(p.target.value, y - 0.2, f" {p.target.text}", va="center", fontsize=8)
            ax.set_yticks(list(ys), names)
            ax.invert_yaxis()
            ax.legend(loc="lower right", fontsize=8)
            ax.set_title(f"增速：{ty} 年目标与 {ry} 年结果（%）")
            ax.margins(x=0.35)
        ax = axes[1]
        rates = sorted(rates, key=lambda f: f.value)
        if rates:
            ax.barh(range(len(rates)), [f.value for f in rates],
                    color=["#c0504d" if f.value < 0 else "#4f81bd" for f in rates])
            ax.set_yticks(range(len(rates)), [f.indicator[:14] for f in rates])
            for y, f in enumerate(rates):
                ax.text(f.value, y, f" {f.value:g}%", va="center", fontsize=8, ha="left" if f.value >= 0 else "right")
            ax.axvline(0, color="#555", linewidth=0.6)
            ax.set_title(f"{rates[0].year} 年报告给出的增速（%）")
            ax.margins(x=0.2)
        for a in axes:
            a.spines[["top", "right"]].set_visible(False)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
    return buf.getvalue()


def chart_html(pairs: Sequence[FigurePair], figures: Sequence[Figure]) -> str:
    growth = [p for p in pairs if p.measure == "增速"]
    rates = [f for f in figures if f.measure == "增速" and f.kind == "结果"]
    alt = ("图表。左：" + "；".join(f"{p.indicator} {p.result.year} 年 {p.result.text}，{p.target.year} 年目标 {p.target.text}"
                                   for p in growth)
           + "。右：" + "；".join(f"{f.indicator} {f.value:g}%" for f in rates) + "。")
    data = base64.b64encode(chart_png(pairs, figures)).decode("ascii")
    return (f'<figure class="qa-chart"><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'
            f"<figcaption>增速对照与 {rates[0].year if rates else ''} 年各项增速（数据取自下表）</figcaption></figure>")


# ---------------------------------------------------------------- page script

# Runs once when the page loads (Blocks.launch(js=...)). A plain click on a deep link (citation,
# source, figure row, search hit) stays in the page: the address bar takes the link (shareable) and
# the hidden goto box tells the server, which opens the report tab there. Ctrl/⌘/middle click still
# opens a new tab, where the same link is read on load.
GOTO_JS = r"""
() => {
  if (window.__qaInstalled) return; window.__qaInstalled = true;
  const goto = (query) => {
    try { history.replaceState(null, "", query); } catch (e) {}
    const box = document.querySelector("#qa-goto textarea, #qa-goto input");
    if (!box) { window.location.search = query; return; }
    box.value = query + "#" + Date.now();
    box.dispatchEvent(new Event("input", { bubbles: true }));
  };
  window.__qaGoto = goto;
  document.addEventListener("click", (e) => {
    const el = e.target instanceof Element ? e.target : null;
    const copy = el && el.closest("button.qa-copy");
    if (copy) {
      e.preventDefault();
      const src = copy.parentElement && copy.parentElement.querySelector(".qa-copy-src");
      const text = src ? src.textContent : "";
      const done = () => { copy.textContent = "已复制"; setTimeout(() => { copy.textContent = "复制"; }, 1500); };
      if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).then(done, done); }
      else { const t = document.createElement("textarea"); t.value = text; document.body.appendChild(t);
             t.select(); try { document.execCommand("copy"); } catch (x) {} t.remove(); done(); }
      return;
    }
    const a = el && el.closest("a[href]");
    if (!a || e.defaultPrevented || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
    const href = a.getAttribute("href") || "";
    if (/^\??doc=|^\?doc=/.test(href) || href.startsWith("?doc=")) {
      e.preventDefault(); e.stopPropagation(); goto(href);
    } else if (href.startsWith("#qa-h-")) {
      const target = document.getElementById(href.slice(1));
      if (target) { e.preventDefault(); target.setAttribute("tabindex", "-1");
                    target.scrollIntoView({ block: "start" }); target.focus({ preventScroll: true }); }
    }
  }, true);
}
"""

# After the report re-renders: bring the marked span (or the first search hit) into view and give
# it focus, so keyboard and screen-reader users land where the citation points.
SCROLL_JS = r"""
() => {
  let tries = 0;
  const go = () => {
    const el = document.getElementById("qa-hit") || document.getElementById("qa-find-0");
    if (!el) { if (++tries < 40) setTimeout(go, 50); return; }
    el.setAttribute("tabindex", "-1");
    el.scrollIntoView({ block: "center" });
    el.focus({ preventScroll: true });
  };
  setTimeout(go, 30);
}
"""
