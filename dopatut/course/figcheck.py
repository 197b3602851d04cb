"""Does a figure read? Text that overlaps other text or another panel, and legends over data, found by drawing it.

    problems = figure_problems(fig)        # [] when every title, label, tick label and legend stands clear

`watch(report)` makes every figure a process renders (a notebook's inline figures, `savefig`) check itself first and
append what it finds to `report` (one JSON line per figure with problems). The book's CI sets it up in each
notebook's kernel through IPython's startup files (scripts/figcheck_startup.py), then
`python scripts/check_figures.py <report>` fails on any line.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

TOLERANCE_PX = 1.0  # boxes that only touch are fine


def _visible_text(t) -> bool:
    return t.get_visible() and bool(t.get_text().strip())


def _overlap(a, b, tol: float = TOLERANCE_PX) -> bool:
    return (min(a.x1, b.x1) - max(a.x0, b.x0) > tol) and (min(a.y1, b.y1) - max(a.y0, b.y0) > tol)


def _axes_name(ax) -> str:
    number = ax.figure.axes.index(ax) + 1
    return f"panel {number} ({ax.get_title()!r})" if ax.get_title() else f"panel {number}"


def _texts(fig, renderer):
    """(description, owner, bbox) for every piece of text the reader sees; owner is the axes, legend or figure."""
    out = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        name = _axes_name(ax)
        pieces = [("title", t) for t in (ax.title, ax._left_title, ax._right_title)]
        if ax.axison:
            pieces += [("x label", ax.xaxis.label), ("y label", ax.yaxis.label)]
            for axis, letter in ((ax.xaxis, "x"), (ax.yaxis, "y")):  # only the ticks drawn, inside the view
                pieces += [(f"{letter} tick label", label) for tick in axis._update_ticks()
                           for label in (tick.label1, tick.label2) if label.get_visible()]
            pieces += [("offset text", ax.xaxis.get_offset_text()), ("offset text", ax.yaxis.get_offset_text())]
        pieces += [("text", t) for t in ax.texts]
        out += [(f"{what} {t.get_text()!r} of {name}", ax, t.get_window_extent(renderer), t.get_rotation() % 180)
                for what, t in pieces if _visible_text(t)]
    for t in dict.fromkeys(fig.texts + ([fig._suptitle] if fig._suptitle is not None else [])):
        if _visible_text(t):
            out.append((f"figure text {t.get_text()!r}", fig, t.get_window_extent(renderer), t.get_rotation() % 180))
    return out


def _legends(fig):
    """(axes, legend) for every visible legend: an axes' own, those added with add_artist, and the figure's."""
    from matplotlib.legend import Legend

    for ax in fig.axes:
        for legend in dict.fromkeys([c for c in ax.get_children() if isinstance(c, Legend)]):
            if legend.get_visible():
                yield ax, legend
    for legend in fig.legends:
        yield None, legend


def _data_points(ax):
    """Display coordinates of the data drawn in `ax`: line vertices, scatter points, bar rectangles' boxes."""
    points, boxes = [], []
    for line in ax.get_lines():
        if line.get_visible() and line.get_transform() is ax.transData and len(line.get_xydata()):
            points += [tuple(p) for p in ax.transData.transform(line.get_xydata())]
    for coll in ax.collections:
        offsets = coll.get_offsets() if coll.get_visible() else []
        if len(offsets) and coll.get_offset_transform() is ax.transData:
            points += [tuple(p) for p in ax.transData.transform(offsets)]
    for patch in ax.patches:
        if not patch.get_visible():
            continue
        if type(patch).__name__ == "Rectangle":
            if patch.get_height() and patch.get_width():
                boxes.append(patch.get_window_extent())
        else:  # a step histogram's outline, a polygon: its corners
            points += [tuple(p) for p in patch.get_transform().transform(patch.get_path().vertices)]
    return points, boxes


def figure_problems(fig) -> list[str]:
    """What keeps `fig` from reading: overlapping texts, text running into another panel, a legend over data."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = _texts(fig, renderer)
    found = []
    for i, (what_a, owner_a, box_a, turn_a) in enumerate(texts):
        for what_b, owner_b, box_b, turn_b in texts[i + 1:]:
            # slanted tick labels side by side: their upright boxes overlap while the text does not
            slanted = owner_a is owner_b and turn_a == turn_b and turn_a not in (0, 90) and "tick" in what_a
            if not slanted and _overlap(box_a, box_b):
                found.append(f"{what_a} overlaps {what_b}")
    texts = [(what, owner, box) for what, owner, box, _ in texts]
    areas = [(ax, ax.get_window_extent(renderer)) for ax in fig.axes if ax.get_visible() and ax.axison]
    for what, owner, box in texts:
        for ax, area in _other_panels(owner, areas, renderer):
            if _overlap(box, area, 2):
                found.append(f"{what} runs into {_axes_name(ax)}")
    frames = [legend.get_window_extent(renderer) for _, legend in _legends(fig)]
    found += ["two legends overlap" for i, a in enumerate(frames) for b in frames[i + 1:] if _overlap(a, b)]
    for ax, legend in _legends(fig):
        frame = legend.get_window_extent(renderer)
        found += [f"a legend covers {what}" for what, owner, box in texts if _overlap(frame, box)]
        found += [f"a legend runs into {_axes_name(other)}" for other, area in _other_panels(ax, areas, renderer)
                  if _overlap(frame, area, 2)]
        if ax is not None:
            points, boxes = _data_points(ax)
            covered = sum(frame.x0 < x < frame.x1 and frame.y0 < y < frame.y1 for x, y in points)
            covered += sum(_overlap(frame, b, 2) for b in boxes)
            if covered:
                found.append(f"the legend of {_axes_name(ax)} covers {covered} data point(s) or bar(s)")
    return list(dict.fromkeys(found))


def _other_panels(owner, areas, renderer):
    """The panels other than `owner`, leaving out its twins and insets (they share its area by design)."""
    own = owner.get_window_extent(renderer) if hasattr(owner, "get_position") and hasattr(owner, "axison") else None
    for ax, area in areas:
        if ax is owner or (own is not None and _overlap(own, area, 2)):
            continue
        yield ax, area


_REPORT = None


def _check_before_print(print_figure):
    def checked(canvas, *args, **kwargs):
        if _REPORT is not None and not getattr(canvas.figure, "_dopatut_checked", False):
            canvas.figure._dopatut_checked = True  # once per figure, however many formats it is printed in
            try:
                found = figure_problems(canvas.figure)
            except Exception as error:  # a check that cannot run says so, and never breaks the figure
                found = [f"the figure check failed: {error!r}"]
            if found:
                _report(canvas.figure, found)
        return print_figure(canvas, *args, **kwargs)
    checked.__wrapped__ = print_figure
    return checked


def _report(fig, found):
    cell = ""
    try:
        from IPython import get_ipython
        shell = get_ipython()
        cell = shell.history_manager.input_hist_raw[-1] if shell is not None else ""
    except Exception:
        pass
    title = next((ax.get_title() for ax in fig.axes if ax.get_title()), "")
    line = {"cwd": os.getcwd(), "notebook": os.environ.get("DOPATUT_NOTEBOOK", ""), "title": title,
            "cell": cell.strip().splitlines()[:3], "problems": found}
    with open(_REPORT, "a") as f:
        f.write(json.dumps(line) + "\n")


def watch(report) -> None:
    """From now on, every figure this process prints is checked first; problems are appended to `report`."""
    global _REPORT
    from matplotlib.backend_bases import FigureCanvasBase

    _REPORT = Path(report)
    if not hasattr(FigureCanvasBase.print_figure, "__wrapped__"):
        FigureCanvasBase.print_figure = _check_before_print(FigureCanvasBase.print_figure)


def read_report(report) -> list[dict]:
    path = Path(report)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
