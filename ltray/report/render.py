"""A report table written four ways: text (the terminal's), LaTeX, Markdown and HTML.

``ltray.report`` builds each table once as rows of cells (a label, a ``Stat``, a ``Value`` or a
``Diff``); the formats decide only how a cell is written, so every format prints the same numbers.
Text has no provenance (it is the terminal's view); every other format carries a ``Provenance``.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from typing import NamedTuple


@dataclass(frozen=True)
class Stat:
    """A number in the table's unit (% or points): mean +- 95% CI half-width over n seeds."""

    mean: float
    ci95: float
    n: int
    show_n: bool = False
    """Write "(n=3)" after it (the methods and LA tables, where n differs between rows)."""

    @classmethod
    def of(cls, s: dict, show_n: bool = False) -> Stat:
        """From ``ltray.stats.mean_ci``'s dict of fractions, in %."""
        return cls(s["mean"] * 100, s["ci95"] * 100, s["n"], show_n)

    def text(self, pm: str = " +- ") -> str:
        if self.n == 0:
            return "-"
        ci = f"{pm}{self.ci95:.2f}" if self.n > 1 else ""
        return f"{self.mean:.2f}{ci}" + (f" (n={self.n})" if self.show_n else "")

    def latex(self) -> str:
        if self.n == 0:
            return "--"
        ci = rf" \pm {self.ci95:.2f}" if self.n > 1 else ""
        return f"${self.mean:.2f}{ci}$" + (f" ($n={self.n}$)" if self.show_n else "")


@dataclass(frozen=True)
class Value:
    """A bare number (the shift table's mean accuracy, %); NaN where the study has none."""

    value: float

    def text(self, pm: str = " +- ") -> str:
        return f"{self.value:.2f}"

    def latex(self) -> str:
        return f"${self.value:.2f}$" if math.isfinite(self.value) else "--"


@dataclass(frozen=True)
class Diff:
    """A paired difference in points: observed, its 95% interval, and the verdict from the
    Holm-adjusted two-sided p. With one seed there is no test (interval and p NaN)."""

    diff: float
    lo: float
    hi: float
    p: float
    """Holm-adjusted over the rows compared with the baseline."""

    @classmethod
    def of(cls, d: dict) -> Diff:
        """From ``ltray.core.stats.paired_difference``'s dict of fractions (with ``p_holm``), in points."""
        return cls(d["diff"] * 100, d["lo"] * 100, d["hi"] * 100, d.get("p_holm", d["p"]))

    @property
    def verdict(self) -> str:
        if self.p != self.p:
            return "1 seed: differences of these two trained models only"
        return "not distinguishable" if self.p >= 0.05 else ("better" if self.diff > 0 else "worse")

    @property
    def p_text(self) -> str:
        return p_text(self.p)

    def text(self, pm: str = " +- ") -> str:
        if self.p != self.p:
            return f"{self.diff:+.2f} ({self.verdict})"
        return f"{self.diff:+.2f} [{self.lo:+.2f}, {self.hi:+.2f}] {self.p_text} {self.verdict}"

    def latex(self) -> str:
        if self.p != self.p:
            return f"${self.diff:+.2f}$ ({self.verdict})"
        return f"${self.diff:+.2f}$ [${self.lo:+.2f}$, ${self.hi:+.2f}$] ${self.p_text}$ {self.verdict}"


def p_text(p: float) -> str:
    """A p-value as every view prints it: p<0.001 below that, else three decimals; "" for none."""
    if p != p:
        return ""
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


Cell = str | Stat | Value | Diff


class Column(NamedTuple):
    """A column's heading and how the text format lays it out."""

    title: str
    width: int = 0
    """Text: padded to this many characters (0: as it is)."""
    align: str = ">"
    """Text: "<" left or ">" right."""
    sep: str = ""
    """Text: what comes before it on the line."""
    short: str = ""
    """Text: a narrower heading ("forw50" for "forward50"); the title when empty."""


@dataclass(frozen=True)
class Table:
    """One table of a report: a caption, columns and rows of cells (one cell per column)."""

    caption: str
    columns: tuple[Column, ...] = ()
    rows: tuple[tuple[Cell, ...], ...] = ()
    before: tuple[str, ...] = ()
    """Text: the lines above the heading (the terminal's caption)."""
    after: tuple[str, ...] = ()
    """Notes under the table, in every format."""
    trial_ids: frozenset[str] = field(default_factory=frozenset)
    """The trials its numbers come from (what the provenance lists)."""


@dataclass(frozen=True)
class Provenance:
    """Where a table's numbers come from: the study, its experiment files and the trials' records."""

    study: str
    command: str
    date: str
    code_versions: tuple[str, ...]
    versions: tuple[str, ...]
    subsets: tuple[tuple[str, tuple[tuple[int, str], ...]], ...]
    """Per method, (seed, subset_hash) of each trial the table uses."""
    files: tuple[tuple[str, str], ...]
    """(name, text) of the study's experiment.py and experiment.json; text "" when absent."""
    skipped: tuple[str, ...] = ()
    """The study's results files that could not be read, each with why (their rows are missing)."""

    def lines(self) -> list[str]:
        """Everything but the files' text, one fact a line."""
        out = [f"study: {self.study}", f"made: {self.date} with {self.command}",
               "code_version: " + (", ".join(self.code_versions) or "(not recorded)"),
               "versions: " + (", ".join(self.versions) or "(not recorded)"),
               "subset_hash of each trial used (seed: hash):"]
        out += [f"  {m}: " + ", ".join(f"{s}: {h or '(none)'}" for s, h in runs) for m, runs in self.subsets]
        if self.skipped:
            out += ["skipped, unreadable (their rows are missing from every table):"] + [f"  {s}" for s in self.skipped]
        return out


def _cell_text(cell: Cell, pm: str = " +- ") -> str:
    return cell if isinstance(cell, str) else cell.text(pm)


def _text_line(columns, cells: list[str]) -> str:
    return "".join(c.sep + (f"{s:{c.align}{c.width}}" if c.width else s) for c, s in zip(columns, cells))


def text_lines(t: Table) -> list[str]:
    """One table as the terminal shows it: the lines above, the heading, the rows, the notes."""
    lines = list(t.before)
    if t.columns:
        lines.append(_text_line(t.columns, [c.short or c.title for c in t.columns]))
        lines += [_text_line(t.columns, [_cell_text(x) for x in row]) for row in t.rows]
    return lines + list(t.after)


def as_text(tables: list[Table]) -> str:
    """The terminal's tables, a blank line between two."""
    return "\n\n".join("\n".join(text_lines(t)) for t in tables) + "\n"


def _prose(s: str) -> str:
    """A caption, heading or note outside the terminal: "+-" as the plus-minus sign."""
    return s.replace("+-", "±")


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
          ">": r"\textgreater{}"}


def latex_escape(s: str) -> str:
    """Text safe in LaTeX's text mode, "+-" written as $\\pm$."""
    return re.sub(r"[\\&%$#_{}~^<>]", lambda m: _LATEX[m.group()], s).replace("+-", r"$\pm$")


def _latex_cell(cell: Cell) -> str:
    return latex_escape(cell) if isinstance(cell, str) else cell.latex()


def _comment(lines) -> list[str]:
    return ["%" + (f" {ln}" if ln else "") for ln in lines]


def as_latex(tables: list[Table], prov: Provenance) -> str:
    """``table`` environments with booktabs rules (\\usepackage{booktabs}); the provenance as %
    comments above them and in short in each caption."""
    out = _comment(["made by ltray; needs \\usepackage{booktabs}"] + prov.lines())
    for name, text in prov.files:
        out += _comment([f"{name}:"] + ([f"  {ln}" for ln in text.splitlines()] or ["  (not in the study folder)"]))
    source = f" Study {prov.study}, {prov.date}; code {', '.join(prov.code_versions) or 'not recorded'}."
    for t in tables:
        caption = latex_escape(t.caption.rstrip(".") + "." + source)
        if not t.columns:
            out += ["", rf"\paragraph{{}} {caption}"]
            continue
        align = "".join("l" if c.align == "<" else "r" for c in t.columns)
        out += ["", r"\begin{table}[t]", r"\centering", rf"\caption{{{caption}}}", rf"\begin{{tabular}}{{{align}}}",
                r"\toprule", " & ".join(latex_escape(c.title) for c in t.columns) + r" \\", r"\midrule"]
        out += [" & ".join(_latex_cell(x) for x in row) + r" \\" for row in t.rows]
        out += [r"\bottomrule", r"\end{tabular}"]
        out += [r"\par\smallskip\footnotesize " + latex_escape(note) for note in t.after]
        out += [r"\end{table}"]
    return "\n".join(out) + "\n"


_MARKDOWN = re.compile(r"([\\`*_|<])")


def markdown_escape(s: str) -> str:
    return _MARKDOWN.sub(r"\\\1", s)


def _fence(text: str) -> str:
    """A fence longer than any run of backticks inside ``text``."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def as_markdown(tables: list[Table], prov: Provenance) -> str:
    """Pipe tables under their captions, then a provenance section (the experiment files fenced)."""
    out = []
    for t in tables:
        out += [markdown_escape(_prose(t.caption)), ""]
        if t.columns:
            out.append("| " + " | ".join(markdown_escape(_prose(c.title)) for c in t.columns) + " |")
            out.append("|" + "|".join(":---" if c.align == "<" else "---:" for c in t.columns) + "|")
            out += ["| " + " | ".join(markdown_escape(_cell_text(x, " ± ")) for x in row) + " |" for row in t.rows]
            out.append("")
        out += [markdown_escape(_prose(note)) + "  " for note in t.after] + ([""] if t.after else [])
    out += ["## Provenance", ""]
    out += [("  - " if ln.startswith("  ") else "- ") + markdown_escape(ln.strip()) for ln in prov.lines()] + [""]
    for name, text in prov.files:
        fence = _fence(text)
        lang = "python" if name.endswith(".py") else "json" if name.endswith(".json") else ""
        out += [f"### {markdown_escape(name)}", ""]
        out += [fence + lang, text.rstrip("\n"), fence, ""] if text else ["(not in the study folder)", ""]
    return "\n".join(out)


def as_html(tables: list[Table], prov: Provenance) -> str:
    """A standalone page: each table a <table> with its caption, the provenance in <pre>."""
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{e(prov.study)}: {e(prov.command)}</title>",
           "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
           "th,td{padding:.2em .8em;border-bottom:1px solid #ccc}td.num{text-align:right}"
           "caption{text-align:left;font-weight:bold}</style>", "</head>", "<body>", f"<h1>{e(prov.study)}</h1>"]
    for t in tables:
        if not t.columns:
            out.append(f"<p>{e(_prose(t.caption))}</p>")
            continue
        out += ["<table>", f"<caption>{e(_prose(t.caption))}</caption>", "<thead><tr>"
                + "".join(f"<th>{e(_prose(c.title))}</th>" for c in t.columns) + "</tr></thead>", "<tbody>"]
        for row in t.rows:
            out.append("<tr>" + "".join(f"<td>{e(x)}</td>" if isinstance(x, str) else
                                        f'<td class="num">{e(x.text(" ± "))}</td>' for x in row) + "</tr>")
        out += ["</tbody>", "</table>"] + [f"<p>{e(_prose(note))}</p>" for note in t.after]
    out += ["<h2>Provenance</h2>", "<pre>" + e("\n".join(prov.lines())) + "</pre>"]
    for name, text in prov.files:
        out += [f"<h3>{e(name)}</h3>", f"<pre>{e(text)}</pre>" if text else "<p>(not in the study folder)</p>"]
    return "\n".join(out + ["</body>", "</html>"]) + "\n"
