"""A deterministic multi-report test corpus generated from the real report (the seed).

There is no second real report on these machines, so filters, per-document time, comparisons and
scale are tested on reports made from this one: other regions and years, every figure changed,
sections reordered or dropped, the parts sometimes in the other order (the plans before the review,
numbered accordingly, so time must be read from the headings' words), and the PDF artifacts kept
and added (gazette footers, page numbers, sentences cut by a page break). Metadata arrives three
ways, as in a real collection: from the title block, from front matter (``.md``), or from a
``.meta.json`` sidecar when the title block does not say (no year in the title).

    python -m app synth OUT --reports 1000 [--seed 0] [--small] [--no-seed-report]

Same arguments, same bytes: `generate` depends on nothing but the seed text and its arguments.
The first report is the seed itself (海拉尔区 2025) unless ``include_seed`` is off.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Report", "SEED_REGION", "SEED_YEAR", "generate", "region_names", "write_corpus"]

SEED_REGION = "海拉尔区"
SEED_YEAR = 2025
_HEAD = "北南东西安宝长丰和河嘉金康乐临龙明宁平青清庆瑞山顺泰通文祥新兴阳永裕云振正"
_TAIL = "城川峰冈湖林岭宁平桥泉山石水台田溪阳源州"
_UNIT = "区县旗市"
_SURNAME = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
_GIVEN = "明华军平刚强伟芳敏静丽勇杰涛斌磊超波辉宁"


@dataclass(frozen=True)
class Report:
    name: str  # file name
    text: str
    region: str
    year: int
    sidecar: dict | None = None  # written as <name>.meta.json


def region_names(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct region names, the seed's own first ("海拉尔区", "安川县", …)."""
    rng = random.Random(f"regions-{seed}")
    names, seen = [SEED_REGION], {SEED_REGION}
    while len(names) < n:
        name = rng.choice(_HEAD) + rng.choice(_TAIL) + rng.choice(_UNIT)
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


# ---------------------------------------------------------------- the seed's structure

_PART = re.compile(r"^#{0,6}\s*[一二三四五六七八九十]+、")
_SUB = re.compile(r"^（[一二三四五六七八九十]+）")
_GLOSS = re.compile(r"^\d+[.．]\s")
_CN = "一二三四五六七八九十"


def _cn(n: int) -> str:
    if n <= 10:
        return _CN[n - 1] if n < 10 else "十"
    return "十" + _CN[n - 11] if n < 20 else _CN[n // 10 - 1] + "十" + (_CN[n % 10 - 1] if n % 10 else "")


def _paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n[ \t]*\n+", text.strip("\n")) if p.strip()]


@dataclass
class _Part:
    heading: str  # "## 一、2024 年工作回顾" (number replaced when written)
    intro: list
    subs: list  # each a list of paragraphs starting with （N）
    outro: list


def _parse(seed: str):
    paras = _paragraphs(seed)
    header, parts, glossary, trailer = [], [], [], []
    cur: _Part | None = None
    in_gloss = False
    for p in paras:
        bare = re.sub(r"^#{1,6}\s*", "", p)
        if bare == "名词解释":
            in_gloss, cur = True, None
            glossary.append([p])
            continue
        if in_gloss:
            if _GLOSS.match(p):
                glossary.append([p])
            elif "政府公报" in p and len(p) < 20:
                trailer.append(p)
            else:
                glossary[-1].append(p)
            continue
        if _PART.match(p):
            cur = _Part(p, [], [], [])
            parts.append(cur)
            continue
        if cur is None:
            header.append(p)
        elif _SUB.match(p):
            cur.subs.append([p])
        elif cur.subs and (p.startswith("各位代表") or cur.outro):
            cur.outro.append(p)
        elif cur.subs:
            cur.subs[-1].append(p)
        else:
            cur.intro.append(p)
    return header, parts, glossary, trailer


# ---------------------------------------------------------------- rewriting


_YEAR = re.compile(r"(?<!\d)((?:19|20)\d\d)(?=\s*(?:年|—|-|$)|\s*年)")
_NUM = re.compile(r"(?<![\d.,A-Za-z+\-])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\d.,A-Za-z+])")


def _shift_years(text: str, delta: int) -> str:
    return _YEAR.sub(lambda m: str(int(m.group(1)) + delta), text) if delta else text


def _change_figures(text: str, rng: random.Random) -> str:
    """Every amount scaled by its own factor (0.7–1.3), written as the seed writes it; years,
    dates, ordinals and list numbers stay."""

    def repl(m: re.Match) -> str:
        whole, frac = m.group(1), m.group(2) or ""
        after = text[m.end(): m.end() + 3]
        before = text[max(0, m.start() - 2): m.start()]
        value = int(whole.replace(",", ""))
        if (re.match(r"\s*(?:年|月|日|届|次|世纪|\.\s|．)", after) and not frac) or (1900 <= value <= 2100 and not frac):
            return m.group(0)
        if before.endswith(("第", "近")):
            return m.group(0)
        f = rng.uniform(0.7, 1.3)
        new = (value + float(frac or 0)) * f
        if re.match(r"\s*%", after) and value < 100:
            new = min(new, 99.9)
        if frac:
            s = f"{new:.{len(frac) - 1}f}"
            w, _, d = s.partition(".")
        else:
            w, d = str(max(1, round(new))), ""
        if "," in whole:
            w = f"{int(w):,}"
        return w + ("." + d if d else "")

    return _NUM.sub(repl, text)


_OWN = re.compile(r"(?<![治城园社景矿新市辖片港])区(?=委|长|政府|人民|人大|政协)|(?<=[全我本])区")


def _rename(text: str, region: str, person: str) -> str:
    """The seed's region, its short name and its head of government replaced; "区委", "区长", "全区"…
    follow the new region's unit ("县委", "县长", "全县")."""
    stem, unit = region[:-1], region[-1]
    text = text.replace(SEED_REGION, region).replace("海拉尔", stem).replace("于 民", person)
    return _OWN.sub(unit, text) if unit != "区" else text


def _page_break(paragraph: str, rng: random.Random, footer: str | None) -> str:
    """Cut a long paragraph after a comma, as a PDF page break does (maybe with the page's footer)."""
    commas = [m.end() for m in re.finditer("，", paragraph) if 40 < m.end() < len(paragraph) - 20]
    if len(paragraph) < 120 or not commas:
        return paragraph
    at = rng.choice(commas)
    mid = f"\n\n{footer}\n\n" if footer else "\n\n"
    return paragraph[:at] + mid + paragraph[at:]


def _renumber_sub(p: str, n: int) -> str:
    return _SUB.sub(f"（{_cn(n)}）", p, count=1)


def _renumber_part(p: str, n: int) -> str:
    return re.sub(r"^(#{0,6}\s*)[一二三四五六七八九十]+、", lambda m: f"{m.group(1)}{_cn(n)}、", p, count=1)


def _renumber_gloss(p: str, n: int) -> str:
    return re.sub(r"^\d+", str(n), p, count=1)


def _one(seed: str, region: str, year: int, index: int, seed_n: int, small: bool) -> Report:
    rng = random.Random(f"report-{seed_n}-{index}-{region}-{year}")
    header, parts, glossary, trailer = _parse(seed)
    person = f"{rng.choice(_SURNAME)} {rng.choice(_GIVEN)}"
    # sections: shuffled within each part, some dropped (more of them for a small corpus)
    keep_ratio = 0.35 if small else rng.uniform(0.7, 1.0)
    for part in parts:
        subs = list(part.subs)
        if subs:
            rng.shuffle(subs)
            keep = max(1 if small else 2, round(len(subs) * keep_ratio))
            part.subs = subs[:keep]
    gl_head, entries = glossary[:1], glossary[1:]
    if entries:
        rng.shuffle(entries)
        entries = entries[: max(2, round(len(entries) * (0.25 if small else rng.uniform(0.5, 1.0))))]
    swap = len(parts) >= 2 and rng.random() < 0.3  # the plans before the review
    order = [parts[1], parts[0], *parts[2:]] if swap else list(parts)
    if small:
        order = [p for p in order if p.subs]  # the closing part has no numbered subsections
        for p in order:
            p.intro = p.intro[:2]
            p.outro = p.outro[:1]
    footer = f"{region}政府公报"
    out: list[str] = []
    header = list(header)
    fm_kind = index % 5
    if fm_kind == 4:  # title block without a year: the sidecar says which report this is
        header[0] = re.sub(r"\s*\d{4}\s*年", "", header[0])
    out.extend(header)
    page = rng.randint(2, 40)
    for n, part in enumerate(order, 1):
        out.append(_renumber_part(part.heading, n))
        out.extend(part.intro)
        for m, sub in enumerate(part.subs, 1):
            body = [_renumber_sub(sub[0], m), *sub[1:]]
            if rng.random() < 0.25:
                body[0] = _page_break(body[0], rng, footer if rng.random() < 0.5 else None)
            out.extend(body)
            if rng.random() < 0.15:
                out.append(f"— {page} —")
                page += 1
        out.extend(part.outro)
    if entries:
        out.extend(gl_head[0])
        for m, entry in enumerate(entries, 1):
            out.extend([_renumber_gloss(entry[0], m), *entry[1:]])
    out.extend(trailer)
    text = "\n\n" + "\n\n".join(out) + "\n"
    text = _shift_years(text, year - SEED_YEAR)
    text = _rename(text, region, person)
    text = _change_figures(text, rng)
    day = rng.randint(6, 28)
    text = re.sub(r"(——\d{4} 年)1 月 \d+ 日", lambda m: f"{m.group(1)}1 月 {day} 日", text, count=1)
    stem = f"{index:04d}_{region}_{year}"
    sidecar = None
    if fm_kind == 3:
        level = {"区": "district", "县": "county", "旗": "banner", "市": "city"}[region[-1]]
        text = f"---\nregion: {region}\nlevel: {level}\nyear: {year}\ndate: {year}-01-{day:02d}\n---\n" + text
        name = stem + ".md"
    else:
        name = stem + ".txt"
    if fm_kind == 4:
        sidecar = {"region": region, "year": year, "title": f"{region} {year} 年政府工作报告"}
    return Report(name, text, region, year, sidecar)


def generate(seed_text: str, n_reports: int, *, seed: int = 0, small: bool = False, include_seed: bool = True,
             years_per_region: int = 20) -> list[Report]:
    """``n_reports`` reports: regions × years (the newest years first, regions interleaved)."""
    if n_reports < 1:
        raise ValueError(f"n_reports must be ≥ 1, got {n_reports}")
    n_regions = max(2, -(-n_reports // years_per_region))
    names = region_names(n_regions, seed)
    out = []
    for i in range(n_reports):
        region, year = names[i % n_regions], SEED_YEAR - i // n_regions
        if i == 0 and include_seed:
            out.append(Report(f"{i:04d}_{region}_{year}.txt", seed_text, region, year))
        else:
            out.append(_one(seed_text, region, year, i, seed, small))
    return out


def write_corpus(out: Path, n_reports: int, *, seed_text: str | None = None, **kw) -> list[Path]:
    """Write the generated reports (and sidecars) into ``out``; returns the report files."""
    from .config import ROOT

    if seed_text is None:
        seed_text = next((ROOT / "corpus").glob("*.txt")).read_text(encoding="utf-8")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for r in generate(seed_text, n_reports, **kw):
        p = out / r.name
        p.write_text(r.text, encoding="utf-8")
        if r.sidecar is not None:
            (out / (r.name + ".meta.json")).write_text(json.dumps(r.sidecar, ensure_ascii=False, indent=1),
                                                       encoding="utf-8")
        paths.append(p)
    return paths
