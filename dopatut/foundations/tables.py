"""The one table type: a header, rows, an optional caption and column alignment, shown as HTML in a
notebook (`_repr_html_`) and as markdown where a file wants one (benchmarks/README.md, latest.md).

Cells are text, escaped for HTML, with two marks read in both renderings: **bold** and `code`.
It sits with the foundations, beside `notebook`, because the study's modules (compare, perf, beyond)
build tables of their results and a layer never imports from one above it.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass

ALIGNS = {"left": ":---", "right": "---:", "center": ":---:"}


def _cell_html(cell) -> str:
    text = html.escape(str(cell))
    text = re.sub(r"[*][*](.+?)[*][*]", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


@dataclass(frozen=True)
class Table:
    """header: the column names; rows: one sequence of cells per row, as long as the header; align: one of
    "left", "right", "center" per column (None: the page's default, and no style on the cells); wrap_first:
    let the first column's cells wrap, where the book's stylesheet keeps a first column on one line (for long
    labels, which would otherwise push the table past the text width)."""

    header: tuple
    rows: tuple
    caption: str | None = None
    align: tuple | None = None
    wrap_first: bool = False

    def __post_init__(self):
        object.__setattr__(self, "header", tuple(self.header))
        object.__setattr__(self, "rows", tuple(tuple(r) for r in self.rows))
        width = len(self.header)
        for i, row in enumerate(self.rows):
            if len(row) != width:
                raise ValueError(f"tables.Table: row {i} has {len(row)} cells but the header has {width} columns "
                                 f"({list(self.header)}); give every row one cell per column")
        if self.align is not None:
            object.__setattr__(self, "align", tuple(self.align))
            bad = [a for a in self.align if a not in ALIGNS]
            if bad or len(self.align) != width:
                raise ValueError(f"tables.Table: align={list(self.align)} must give one of {list(ALIGNS)} for each "
                                 f"of the {width} columns")

    def html(self) -> str:
        rules = [[] if self.align is None else [f"text-align:{a}"] for a in (self.align or self.header)]
        if self.wrap_first:
            rules[0].append("white-space:normal")
        styles = [f' style="{";".join(r)}"' if r else "" for r in rules]

        def tr(cells, tag):
            return "<tr>" + "".join(f"<{tag}{s}>{_cell_html(c)}</{tag}>" for c, s in zip(cells, styles)) + "</tr>"
        caption = "" if self.caption is None else f"<caption>{_cell_html(self.caption)}</caption>"
        return (f"<table>{caption}<thead>{tr(self.header, 'th')}</thead><tbody>"
                + "".join(tr(r, "td") for r in self.rows) + "</tbody></table>")

    _repr_html_ = html

    def markdown(self) -> str:
        def line(cells):
            return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
        rule = "| " + " | ".join(["---"] * len(self.header) if self.align is None else
                                 [ALIGNS[a] for a in self.align]) + " |"
        lines = [line(self.header), rule, *(line(r) for r in self.rows)]
        return "\n".join(lines if self.caption is None else [f"*{self.caption}*", "", *lines])

    __str__ = markdown
