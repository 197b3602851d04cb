"""Figures for comparing methods: accuracy against trainable parameters, paired seeds, validation curves.

Accuracies are fractions in the data and percentages on the axes. Figures are sized for the book's text
width (about 7.5 inches), so their text stays readable without zooming.
"""
from __future__ import annotations

import matplotlib.pyplot as plt

from ..methods.names import VERDICT_STYLE, style
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


def plot_tradeoff(results: dict[str, Result], frozen: Result, angle: str = "45", ax=None, annotate: bool = True,
                  floor: float | None = None):
    """Test accuracy at `angle` against trainable parameters (log x); LoRA ranks joined by a line.

    The frozen foundation, which trains nothing, is the dashed horizontal line. `floor` (percent): a point below
    it is drawn on the floor as a downward triangle with its value, so one outlier does not squash the rest.
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
    lora = sorted((r.n_trainable, 100 * r.accuracy[angle], label) for label, r in results.items()
                  if _method(label) == "lora")
    if lora:
        ax.plot([n for n, _, _ in lora], [a for _, a, _ in lora], "-", color=style("lora")[0], alpha=0.6, zorder=1)
    for label, r in results.items():
        color, marker, size = style(_method(label))
        first_lora = _method(label) == "lora" and label == lora[0][2]
        ranks = [lab.split("r=")[-1] for _, _, lab in lora]
        name = f"LoRA (r = {ranks[0]} to {ranks[-1]})" if first_lora and len(lora) > 1 else (
            _label(label) if first_lora or _method(label) != "lora" else None)
        ax.plot(r.n_trainable, 100 * r.accuracy[angle], marker, color=color, markersize=size, label=name, zorder=2)
        if annotate:
            text = label.split(" ", 1)[1] if _method(label) == "lora" and " " in label else _label(label)
            ax.annotate(text, (r.n_trainable, 100 * r.accuracy[angle]), textcoords="offset points",
                        xytext=(5, 5), fontsize=8)
    ax.axhline(100 * frozen.accuracy[angle], color="k", linestyle="--", linewidth=1, label="frozen foundation")
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel(f"test accuracy at {angle}° (%)")
    ax.grid(True, which="major", alpha=0.3)
    if floor is not None:
        ax.set_ylim(bottom=floor - 0.1)
    return ax


def plot_differences(diffs: dict[str, PairedDifference], ax=None):
    """Per-seed paired differences (percentage points) with the mean and its confidence interval."""
    ax = ax or plt.gca()
    for j, (label, d) in enumerate(diffs.items()):
        ax.plot([j] * d.n, [100 * x for x in d.differences], "o", color="C0", alpha=0.6,
                label="one seed" if j == 0 else None)
        ax.errorbar(j + 0.15, 100 * d.mean, yerr=100 * d.half_width, fmt="s", color="k", capsize=5,
                    label=f"mean, {d.confidence:.0%} t-interval" if j == 0 else None)
    ax.axhline(0, color="grey", linewidth=1)
    ax.set_xticks(range(len(diffs)), [_label(m) for m in diffs])
    ax.set_xlim(-0.5, len(diffs) - 0.5)
    ax.set_ylabel("paired difference (percentage points)")
    return ax


def plot_main_result(runs_by_kind: dict, angle: str = "45", cost_angle: str = "0") -> plt.Figure:
    """The comparison on each foundation: accuracy at `angle` against trainable parameters (mean ± std over
    seeds), one panel per foundation, and each method's accuracy at `cost_angle` (what specialising costs)."""
    kinds = list(runs_by_kind)
    fig, axes = plt.subplots(2, 2, figsize=(7.5, 6.4), constrained_layout=True)
    panels = list(axes.flat)
    for ax, kind in zip(panels, kinds):
        runs = runs_by_kind[kind]
        sizes = [rs[0].n_trainable for m, rs in runs.items() if m != "frozen"]
        for method, results in runs.items():
            mean, std = mean_std([100 * r.accuracy[angle] for r in results])
            if method == "frozen":
                ax.axhline(mean, color="k", ls="--", lw=1, label="frozen foundation")
                continue
            color, marker, size = style(method)
            n = results[0].n_trainable
            near = sorted(m for m, rs in runs.items() if m != "frozen" and 0.8 < rs[0].n_trainable / n < 1.25)
            dodge = 1.3 ** (near.index(method) - (len(near) - 1) / 2)  # sizes within 25% drawn side by side
            ax.errorbar(n * dodge, mean, yerr=std, fmt=marker, color=color, markersize=size * 0.8,
                        capsize=3, label=_label(method))
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
                  rotation=45, ha="right", fontsize=8)
    low = min(100 * r.accuracy[cost_angle] for kind in kinds for rs in runs_by_kind[kind].values() for r in rs)
    ax.set(title=f"the same models at {cost_angle}°", ylabel=f"test accuracy at {cost_angle}° (%)",
           ylim=(max(0, low - 2), 100))
    cost_handles = ax.get_legend_handles_labels()
    legend_ax = panels[-1] if len(panels) > len(kinds) + 1 else None
    if legend_ax is not None:
        handles, labels = panels[0].get_legend_handles_labels()
        legend_ax.add_artist(legend_ax.legend(handles, labels, loc="upper center", fontsize=8, title_fontsize=8,
                                              ncol=2, title="method (error bar: ± 1 std over seeds)"))
        legend_ax.legend(*cost_handles, loc="lower center", fontsize=8, ncol=1, title=f"bars at {cost_angle}°",
                         title_fontsize=8)
        legend_ax.axis("off")
    else:
        ax.legend(*cost_handles, fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
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
                        fmt="o", capsize=3, markersize=6, **VERDICT_STYLE[verdict(d)])
        ax.axvline(0, color="k", lw=0.8)
        ax.set_title(display(kind, "foundation"), fontsize=10)
        ax.set_xlabel("Dopamine − method at 45° (points)", fontsize=9)
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
