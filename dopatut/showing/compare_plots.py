"""Figures for comparing methods: accuracy against trainable parameters, paired seeds, validation curves.

Accuracies are fractions in the data and percentages on the axes. Figures are sized for the book's text
width (about 7.5 inches), so their text stays readable without zooming.
"""
from __future__ import annotations

import math
import textwrap

import matplotlib.pyplot as plt

from ..methods.names import VERDICT_STYLE, colour, style
from ..study.pipeline import Result
from .plots import figure_legend
from ..analysis.stats import PairedDifference, mean_std


def _method(label: str) -> str:
    return label.split(" ")[0]


def _label(name: str) -> str:
    """The reader's name for a method's code name (dopatut.methods.names); any other label as it is."""
    from ..methods.names import display

    try:
        return display(name)
    except KeyError:
        return name


SIDE_BY_SIDE = 1.25  # on a log axis, sizes closer than this ratio are drawn side by side, this ratio apart
SIDE_BY_SIDE_NOTE = "nearly equal sizes drawn side by side"


def side_by_side(sizes: dict[str, int], ratio: float = SIDE_BY_SIDE) -> dict[str, float]:
    """label -> the x to draw it at on a log axis: sizes within `ratio` of their neighbour form a group, drawn
    `ratio` apart around the group's geometric mean, in the order of their true sizes (ties: the given order),
    so no marker hides another and the left-to-right order stays true. A size on its own keeps its x."""
    order = sorted(sizes, key=lambda k: sizes[k])  # stable: equal sizes keep the order they were given in
    groups: list[list[str]] = []
    for label in order:
        if groups and sizes[label] < ratio * sizes[groups[-1][-1]]:
            groups[-1].append(label)
        else:
            groups.append([label])
    x = {}
    for group in groups:
        centre = math.prod(sizes[k] for k in group) ** (1 / len(group))
        for i, label in enumerate(group):
            x[label] = centre * ratio ** (i - (len(group) - 1) / 2) if len(group) > 1 else sizes[label]
    return x


def _with_size(name: str, n: int | str) -> str:
    """A legend entry that carries the count, so nobody reads it off a nudged point: 'gain-only: 512'."""
    return f"{name}: {n:,}" if isinstance(n, int) else f"{name}: {n}"


def plot_tradeoff(results: dict[str, Result], frozen: Result, angle: str = "45", ax=None, annotate: bool = True,
                  floor: float | None = None):
    """Test accuracy at `angle` against trainable parameters (log x); LoRA ranks joined by a line, each point
    labelled with its rank where annotate=False (annotate=True labels every point with its name).

    The frozen foundation, which trains nothing, is the dashed horizontal line. `floor` (percent): a point below
    it is drawn on the floor as a downward triangle with its value, so one outlier does not squash the rest.
    Points of nearly equal size are drawn side by side (`side_by_side`); each legend entry gives the true count.
    """
    ax = ax or plt.gca()
    if floor is not None:
        results = dict(results)
        for label, r in list(results.items()):
            if 100 * r.accuracy[angle] < floor:
                ax.plot(r.n_trainable, floor, "v", color=style(_method(label))[0], markersize=9)
                ax.annotate(f"{_label(label)}: {100 * r.accuracy[angle]:.1f}% (below)", (r.n_trainable, floor),
                            textcoords="offset points", xytext=(-8, 8), ha="right", fontsize=8)
                del results[label]
    x = side_by_side({label: r.n_trainable for label, r in results.items()})
    lora = sorted((r.n_trainable, 100 * r.accuracy[angle], label) for label, r in results.items()
                  if _method(label) == "lora")
    if lora:
        ax.plot([x[lab] for _, _, lab in lora], [a for _, a, _ in lora], "-", color=style("lora")[0], alpha=0.6,
                zorder=1)
    for label, r in results.items():
        color, marker, size = style(_method(label))
        first_lora = _method(label) == "lora" and label == lora[0][2]
        ranks = [lab.split("r=")[-1] for _, _, lab in lora]
        name = (_with_size(f"LoRA (r = {ranks[0]} to {ranks[-1]})", f"{lora[0][0]:,} to {lora[-1][0]:,}")
                if first_lora and len(lora) > 1 else
                _with_size(_label(label), r.n_trainable) if first_lora or _method(label) != "lora" else None)
        ax.plot(x[label], 100 * r.accuracy[angle], marker, color=color, markersize=size, label=name, zorder=2,
                markeredgecolor="white", markeredgewidth=0.6)
        if annotate:
            text = label.split(" ", 1)[1] if _method(label) == "lora" and " " in label else _label(label)
            ax.annotate(text, (x[label], 100 * r.accuracy[angle]), textcoords="offset points",
                        xytext=(5, 5), fontsize=8)
        elif _method(label) == "lora" and len(lora) > 1:  # the legend gives the ranks' span; each point its own
            # 9 pt, not 8: the labels read at the book's text width
            ax.annotate(label.split("r=")[-1], (x[label], 100 * r.accuracy[angle]), textcoords="offset points",
                        xytext=(0, 6), ha="center", fontsize=9, color=color)
    ax.axhline(100 * frozen.accuracy[angle], color="k", linestyle="--", linewidth=1, label="frozen foundation")
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel(f"test accuracy at {angle}° (%)")
    ax.grid(True, which="major", alpha=0.3)
    ax.margins(x=0.08, y=0.12)  # no marker on the frame
    if floor is not None:
        ax.set_ylim(bottom=floor - 0.1)
    return ax


def plot_differences(diffs: dict[str, PairedDifference], ax=None, leader: str = "Dopamine",
                     beyond: float | None = None):
    """Per-seed paired differences, `leader` − method (percentage points), each method's seeds in its own colour,
    with the mean and its confidence interval: above zero, `leader` is ahead (the sign of the book's answer,
    report.lead_over). `beyond` (a fraction, 0.1 = 10 points): a method whose mean lies further from zero is
    left out, so it does not squash the rest, and named with its mean in the panel's upper right corner."""
    ax = ax or plt.gca()
    far = {m: d for m, d in diffs.items() if beyond is not None and abs(d.mean) > beyond}
    shown = {m: d for m, d in diffs.items() if m not in far}
    for j, (label, d) in enumerate(shown.items()):
        ax.plot([j] * d.n, [100 * x for x in d.differences], "o", color=colour(_method(label)), alpha=0.6,
                markersize=5)
        ax.errorbar(j + 0.2, 100 * d.mean, yerr=100 * d.half_width, fmt="s", color="k", capsize=5)
    ax.plot([], [], "o", color="0.5", alpha=0.6, markersize=5, label="one seed (in the method's colour)")
    ax.errorbar([], [], yerr=[], fmt="s", color="k", capsize=5,
                label=f"mean, {next(iter(diffs.values())).confidence:.0%} t-interval")
    if far:
        ax.text(0.99, 0.96, "not shown: " + "; ".join(f"{_label(m)}, {100 * d.mean:+.1f} points".replace("-", "−")
                                                     for m, d in far.items()),
                transform=ax.transAxes, ha="right", va="top", fontsize=9.5)
    ax.axhline(0, color="grey", linewidth=1)
    ax.set_xticks(range(len(shown)), [textwrap.fill(_label(m), 12, break_on_hyphens=False, break_long_words=False)
                                      for m in shown], fontsize=9.5)
    ax.set_xlim(-0.5, len(shown) - 0.5)
    ax.set_ylabel(f"{leader} − method (points)\nabove 0: {leader} ahead", fontsize=9)
    return ax


LEGEND_GAP_PX = 10  # between the main figure's two legends, at the figure's dpi


def plot_main_result(runs_by_kind: dict, angle: str = "45", cost_angle: str = "0") -> plt.Figure:
    """The comparison on each foundation: accuracy at `angle` against trainable parameters (mean ± std over
    seeds), one panel per foundation, and each method's accuracy at `cost_angle` (what specialising costs).
    Nearly equal sizes are drawn side by side (`side_by_side`); the legend gives each method's true count."""
    kinds = list(runs_by_kind)
    fig, axes = plt.subplots(2, 2, figsize=(7.5, 7.2), constrained_layout=True)
    panels = list(axes.flat)
    for ax, kind in zip(panels, kinds):
        runs = runs_by_kind[kind]
        sizes = [rs[0].n_trainable for m, rs in runs.items() if m != "frozen"]
        x = side_by_side({m: rs[0].n_trainable for m, rs in runs.items() if m != "frozen"})
        for method, results in runs.items():
            mean, std = mean_std([100 * r.accuracy[angle] for r in results])
            if method == "frozen":
                ax.axhline(mean, color="k", ls="--", lw=1, label="frozen foundation")
                continue
            color, marker, size = style(method)
            ax.errorbar(x[method], mean, yerr=std, fmt=marker, color=color, markersize=size * 0.8,
                        capsize=3, label=_with_size(_label(method), results[0].n_trainable))
        ax.set_xscale("log")
        ax.set_xlim(min(sizes) / 3, max(sizes) * 3)
        ax.set(title=f"{kind} foundation, tested at {angle}°", xlabel="trainable parameters (log)",
               ylabel=f"test accuracy at {angle}° (%)")
        ax.grid(True, alpha=0.3)
    ax = panels[len(kinds)]
    methods = list(runs_by_kind[kinds[0]])
    width = 0.8 / len(kinds)
    for k, kind in enumerate(kinds):
        stats = [mean_std([100 * r.accuracy[cost_angle] for r in runs_by_kind[kind][m]]) for m in methods]
        ax.bar([j + k * width for j in range(len(methods))], [m for m, _ in stats], width,
               yerr=[s for _, s in stats], capsize=2, label=f"{kind} foundation", color=("0.25", "0.65", "0.85")[k % 3], edgecolor="k", lw=0.5)
    ax.set_xticks([j + width * (len(kinds) - 1) / 2 for j in range(len(methods))], [_label(m) for m in methods],
                  rotation=45, ha="right", fontsize=9.5)
    low = min(100 * r.accuracy[cost_angle] for kind in kinds for rs in runs_by_kind[kind].values() for r in rs)
    bottom = max(0, 10 * math.floor((low - 2) / 10))  # a round number below the lowest bar's error bar
    # the note on its own line: on one line the title is wider than the panel, over the '100' tick label
    ax.set(title=f"the same models at {cost_angle}°" + (f"\n(axis from {bottom}%)" if bottom else ""),
           ylabel=f"test accuracy at {cost_angle}° (%)", ylim=(bottom, 100))
    cost_handles = ax.get_legend_handles_labels()
    legend_ax = panels[-1] if len(panels) > len(kinds) + 1 else None
    if legend_ax is not None:  # 9.5-point text: about 8 px high where the book shows the figure (688 px)
        handles, labels = panels[0].get_legend_handles_labels()
        methods_legend = legend_ax.legend(handles, labels, loc="upper center", fontsize=9.5, title_fontsize=9.5,
                                          ncol=1, borderaxespad=0, labelspacing=0.25, handletextpad=0.4,
                                          title=f"method: trainable parameters\n(error bar: ± 1 std over seeds;"
                                          f"\n{SIDE_BY_SIDE_NOTE})")
        legend_ax.add_artist(methods_legend)
        legend_ax.axis("off")
        # the bars' legend a fixed gap under the methods' (not at the panel's foot, where the two can touch)
        fig.draw_without_rendering()  # lays the panels out, so the methods' legend has its size
        top = legend_ax.transAxes.inverted().transform(methods_legend.get_window_extent())[0][1]
        gap = LEGEND_GAP_PX / legend_ax.get_window_extent().height
        legend_ax.legend(*cost_handles, loc="upper center", bbox_to_anchor=(0.5, top - gap), fontsize=9.5, ncol=2,
                         title=f"bars at {cost_angle}°", title_fontsize=9.5, borderaxespad=0, columnspacing=1.0,
                         handletextpad=0.4)
    else:
        ax.legend(*cost_handles, fontsize=9, loc="upper left", bbox_to_anchor=(1, 1))
    return fig


def plot_curves(selections, ax=None):
    """Validation accuracy after each epoch, for the chosen setting of each method (one line per method)."""
    ax = ax or plt.gca()
    for sel in selections:
        curve = sel.curves[sel.best]
        if curve:
            color, marker, _ = style(sel.method)
            ax.plot(range(1, len(curve) + 1), [100 * a for a in curve], marker + "-", color=color,
                    label=_label(sel.method), markersize=5)
    ax.set(xlabel="epoch", ylabel="validation accuracy at 45° (%)")
    ax.grid(True, alpha=0.3)
    return ax


# A white ring round the filled dots, so that one on the zero line stands clear of it (a hollow dot has its own).
HALO = {"beats": {"mec": "white", "mew": 1.0}, "ties with": {"mec": "white", "mew": 1.0}}


def plot_forest(answer: dict[str, dict[str, PairedDifference]], skip=("frozen",)) -> plt.Figure:
    """The answer at a glance: each rival's paired difference with Dopamine (Dopamine - rival, points) and its
    interval, one panel per foundation, each on its own scale (the foundations' gaps differ tenfold). Right of
    zero, Dopamine is ahead; an interval across zero is a tie. `skip`: rivals left out (the frozen foundation,
    tens of points away on the upright foundation, would squash the rest: its difference is in the sentences)."""
    from ..methods.names import display
    from ..analysis.stats import verdict

    kinds = list(answer)
    rivals = [m for m in answer[kinds[0]] if m not in skip]
    fig, axes = plt.subplots(1, len(kinds), figsize=(7.5, 0.42 * len(rivals) + 1.5), sharey=True,
                             constrained_layout=True, squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for row, m in enumerate(rivals):
            d = answer[kind][m]
            ax.errorbar(100 * d.mean, row, xerr=[[100 * (d.mean - d.ci_low)], [100 * (d.ci_high - d.mean)]],
                        fmt="o", capsize=3, markersize=6, zorder=3, **VERDICT_STYLE[verdict(d)],
                        **HALO.get(verdict(d), {}))
        ax.axvline(0, color="k", lw=0.8, zorder=1)  # behind the dots: a tie's grey dot sits on it
        ax.set_title(display(kind, "foundation"), fontsize=10)
        ax.set_xlabel("Dopamine − method at 45° (points)\nright of 0: Dopamine ahead", fontsize=9)
        ax.grid(True, axis="x", alpha=0.3)
        ax.margins(x=0.15)
    axes[0][0].set_yticks(range(len(rivals)), [display(m) for m in rivals])
    axes[0][0].invert_yaxis()
    handles = [plt.Line2D([], [], marker="o", ls="", label=f"Dopamine {w} it", **kw) for w, kw in VERDICT_STYLE.items()]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=9,
               title=f"mean and 95% interval over {answer[kinds[0]][rivals[0]].n} paired seeds", title_fontsize=9)
    fig.get_layout_engine().set(wspace=0.08)  # the panels' scales differ: keep their tick labels apart
    return fig


def plot_budget(studies: dict, budget: int, skip=("frozen",)) -> plt.Figure:
    """Chapter 5's budget figure: validation accuracy at 45° against epoch, the mean over the seeds of each method
    (dopatut.study.budget.budget_study), one panel per foundation, the protocol's `budget` marked; the legend below."""
    from ..methods.names import display

    fig, axes = plt.subplots(1, len(studies), figsize=(7.5, 3.9), constrained_layout=True, squeeze=False)
    for ax, (kind, study) in zip(axes[0], studies.items()):
        for method, run in study.items():
            if method in skip or not run.curves or not run.curves[0]:
                continue
            curve = [100 * sum(v) / len(v) for v in zip(*run.curves)]
            color, marker, _ = style(method)
            ax.plot(range(1, len(curve) + 1), curve, marker + "-", color=color, label=_label(method), markersize=4)
        ax.axvline(budget, color="k", ls="--", lw=0.8, label=f"the protocol's budget ({budget} epochs)")
        ax.set_title(f"{display(kind, 'foundation')} ({len(next(iter(study.values())).seeds)} seeds)", fontsize=10)
        ax.set(xlabel="epoch", ylabel="validation accuracy at 45° (%)")
        ax.set_xticks(range(1, len(curve) + 1))
        ax.grid(True, alpha=0.3)
    return figure_legend(fig, ncol=3)
