"""Figures for comparing methods: accuracy against trainable parameters, and paired seeds.

Accuracies are fractions in the data and percentages on the axes.
"""
from __future__ import annotations

import matplotlib.pyplot as plt

from .pipeline import Result
from .stats import PairedDifference

STYLE = {"dopamine": ("C3", "*", 16), "gain_only": ("C1", "D", 8), "threshold_only": ("C5", "v", 8),
         "bitfit": ("C2", "s", 8), "head": ("C4", "^", 9), "lora": ("C0", "o", 7), "full": ("C7", "P", 10),
         "frozen": ("k", "x", 8)}


def _method(label: str) -> str:
    return label.split(" ")[0]


def plot_tradeoff(results: dict[str, Result], frozen: Result, angle: str = "45", ax=None, annotate: bool = True):
    """Test accuracy at `angle` against trainable parameters (log x); LoRA ranks joined by a line.

    The frozen foundation, which trains nothing, is the dashed horizontal line.
    """
    ax = ax or plt.gca()
    lora = sorted((r.n_trainable, 100 * r.accuracy[angle], label) for label, r in results.items()
                  if _method(label) == "lora")
    if lora:
        ax.plot([n for n, _, _ in lora], [a for _, a, _ in lora], "-", color=STYLE["lora"][0], alpha=0.6, zorder=1)
    for label, r in results.items():
        color, marker, size = STYLE.get(_method(label), ("C9", "o", 7))
        first_lora = _method(label) == "lora" and label == lora[0][2]
        name = "lora" if first_lora else (None if _method(label) == "lora" else label)
        ax.plot(r.n_trainable, 100 * r.accuracy[angle], marker, color=color, markersize=size, label=name, zorder=2)
        if annotate:
            text = label.split(" ", 1)[1] if _method(label) == "lora" else label
            ax.annotate(text, (r.n_trainable, 100 * r.accuracy[angle]), textcoords="offset points",
                        xytext=(5, 5), fontsize=8)
    ax.axhline(100 * frozen.accuracy[angle], color="k", linestyle="--", linewidth=1, label="frozen foundation")
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel(f"test accuracy at {angle}° (%)")
    ax.grid(True, which="major", alpha=0.3)
    return ax


def plot_paired(per_seed: dict[str, list[float]], seeds, ax=None):
    """One line per seed through each method's accuracy (fractions); the mean as a black bar."""
    ax = ax or plt.gca()
    methods = list(per_seed)
    for i, seed in enumerate(seeds):
        ax.plot(range(len(methods)), [100 * per_seed[m][i] for m in methods], "o-", alpha=0.7,
                label=f"seed {seed}")
    for j, m in enumerate(methods):
        mean = 100 * sum(per_seed[m]) / len(per_seed[m])
        ax.hlines(mean, j - 0.2, j + 0.2, color="k", linewidth=3, zorder=3)
    ax.set_xticks(range(len(methods)), methods)
    ax.set_xlim(-0.4, len(methods) - 0.6)
    ax.set_xlabel("method")
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
    ax.set_xticks(range(len(diffs)), list(diffs))
    ax.set_xlim(-0.5, len(diffs) - 0.5)
    ax.set_ylabel("paired difference (percentage points)")
    return ax
