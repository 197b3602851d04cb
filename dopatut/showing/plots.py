"""Figures the chapters share: the one-picture schematic, digit grids, gate response curves, per-layer histograms.

Every function returns a matplotlib Figure and draws nothing it is not given: the
numbers come from the caller (or, for the gate curves, from `DopamineGate` itself).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..methods.gate import DopamineGate
from ..methods.names import colour

# the schematic's frozen weights, LoRA's delta and a silenced neuron; gated neurons are shaded in Dopamine's red
FROZEN, TRAINED, SILENT = "0.75", colour("lora"), "white"
GAINS = "Reds"


def gate_response(z: torch.Tensor, threshold: float = 0.0, gain: float = 1.0,
                  temperature: float = 1.0, hard: bool = False) -> torch.Tensor:
    """out(z) of one neuron with drive `z`: a = relu(z) passed through a one-neuron DopamineGate."""
    gate = DopamineGate(1, temperature=temperature, hard=hard, threshold_init=threshold, gain_init=gain)
    z = torch.as_tensor(z, dtype=torch.float).reshape(-1, 1)
    with torch.no_grad():
        return gate(z, torch.relu(z)).squeeze(1)


# the gate-response panels: the hard step black wherever it is drawn, the soft gates greys that darken towards it
# as T falls; thresholds in teal, gains in purple, darker for a larger value (no method's colour among them)
HARD = "k"
SHADES = {"T": ("0.78", "0.55", "0.35"), "τ": ("#76d7c4", "#17a589", "#0b5345"),
          "g": ("#d7bde2", "#af7ac5", "#7d3c98", "#4a235a")}


def _response_panel(ax, z, settings, title):
    ax.plot(z.numpy(), torch.relu(z).numpy(), color="0.6", ls="--", lw=1, label="ReLU, no gate")
    for label, color, kwargs in settings:
        ax.plot(z.numpy(), gate_response(z, **kwargs).numpy(), lw=2, color=color, label=label)
    ax.set(title=title, xlabel="drive z = w·x + b", ylabel="output out(z)")
    ax.legend(fontsize=9, loc="upper left")


def gate_response_figure(z_max: float = 3.0) -> plt.Figure:
    """Four panels: the gate value (soft σ vs hard step), then out(z) as T, τ and g change (g = -1 inverts).

    The hard step is black wherever it is drawn, the soft gates grey; thresholds are teal and gains purple,
    darker for a larger value."""
    z = torch.linspace(-1.0, z_max, 401)
    fig, axes = plt.subplots(2, 2, figsize=(7.5, 6), constrained_layout=True)
    axes = list(axes.flat)
    for T, color in zip((1.0, 0.3, 0.1), SHADES["T"]):
        axes[0].plot(z.numpy(), torch.sigmoid((z - 1.0) / T).numpy(), lw=2, color=color, label=f"soft, T = {T:g}")
    axes[0].plot(z.numpy(), (z > 1.0).float().numpy(), color=HARD, lw=2, label="hard step 1[z > τ]")
    axes[0].set(title="Gate value at τ = 1", xlabel="drive z = w·x + b", ylabel="gate value")
    axes[0].legend(fontsize=9, loc="upper left", handlelength=1.2)  # short handles: the box ends left of the step
    _response_panel(axes[1], z, [(f"soft, T = {T:g}", c, dict(threshold=1.0, temperature=T))
                                 for T, c in zip((1.0, 0.3, 0.1), SHADES["T"])]
                    + [("hard", HARD, dict(threshold=1.0, hard=True))], "Temperature T (τ = 1, g = 1)")
    _response_panel(axes[2], z, [(f"τ = {t:g}", c, dict(threshold=t, hard=True))
                                 for t, c in zip((0.0, 1.0, 2.0), SHADES["τ"])], "Threshold τ (hard, g = 1)")
    gains = (-1.0, 0.5, 1.0, 1.5)
    _response_panel(axes[3], z, [(f"g = {g:g}".replace("-", "−"), c, dict(threshold=1.0, gain=g, hard=True))
                                 for g, c in zip(gains, SHADES["g"])],
                    "Gain g (hard, τ = 1)")
    axes[3].axhline(0, color="0.8", lw=0.8, zorder=0)
    return fig


def digit_grid(rows: dict[str, torch.Tensor], labels, title: str = "") -> plt.Figure:
    """One row of images (N, 28, 28) per mode name, one column per image, each column titled with its label."""
    n = len(labels)
    if not rows or any(len(images) != n for images in rows.values()):
        raise ValueError(f"every row needs {n} images (one per label), got {[len(v) for v in rows.values()]}")
    width = min(7.5, 1.1 * n)
    side = (width - 0.6) / n  # one square image per column, after the row labels: rows as tall as that, no gap
    fig, axes = plt.subplots(len(rows), n, figsize=(width, side * len(rows) + 0.5), squeeze=False,
                             constrained_layout=True)
    for r, (mode, images) in enumerate(rows.items()):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(np.asarray(images[c]), cmap="gray_r")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(f"label {int(labels[c])}", fontsize=9)
        axes[r, 0].set_ylabel(mode, rotation=0, ha="right", va="center", fontsize=11)
    fig.suptitle(title)
    return fig


START_COLOUR = "#1f4e9c"  # layer_histograms' start line: a dark blue, apart from the mean's black and the bars


def layer_histograms(values: dict[str, torch.Tensor], xlabel: str, title: str, bins=30,
                     ylabel: str = "count", label: str | None = None, color: str = "0.35",
                     start: float | None = None) -> plt.Figure:
    """One histogram per hidden layer (name -> 1-D values), side by side, with the mean marked.

    `label` names the series in each panel's legend (useful when the caller overlays another one); `color` is
    its colour: a method's own (dopatut.methods.names.colour) where the values are a method's. `start`: the
    value every entry started from, marked by a line of its own colour, so that a mean near it is not read as it.
    """
    fig, axes = plt.subplots(1, len(values), figsize=(min(7.5, 3.75 * len(values)), 3.2), squeeze=False,
                             constrained_layout=True)
    for ax, (name, v) in zip(axes[0], values.items()):
        v = torch.as_tensor(v).detach().float().flatten().cpu().numpy()
        ax.hist(v, bins=bins, color=color, alpha=0.8, label=label)
        ax.axvline(v.mean(), color="k", ls="--", label=f"mean ({label})" if label else None, zorder=4)
        if start is not None:  # a colour of its own, under the mean's dashes where the two meet
            ax.axvline(start, color=START_COLOUR, lw=1.5, label=f"start ({start:g})" if label else None, zorder=3)
        if not label:  # one series: the lines named on the spot, not in a legend far below; each name on the side
            # of its line away from the other line, so the two names clear each other however close the lines are
            left = start is not None and start > v.mean()
            names = [(v.mean(), "mean", "k", left)]
            if start is not None:
                names.append((start, f"start ({start:g})".replace("-", "−"), START_COLOUR, not left))
            for x, text, shade, on_left in names:
                ax.text(x, 0.97, f"{text} " if on_left else f" {text}", transform=ax.get_xaxis_transform(),
                        ha="right" if on_left else "left", va="top", fontsize=9, color=shade,
                        bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 0.5})
        ax.set_title(f"{name} (mean {v.mean():.2f})".replace("-", "−"), fontsize=10)
        ax.set(xlabel=xlabel, ylabel=ylabel)
    fig.suptitle(title, fontsize=11)
    figure_legend(fig)
    return fig


def figure_legend(fig, ncol: int = 3, fontsize: float = 10) -> plt.Figure:
    """One legend under all panels, off the data, from the first panel's labelled artists (panels' own removed).
    fontsize 10: about 8 px tall at the book's text width (8 was about 6 px)."""
    for ax in fig.axes:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    for legend in list(fig.legends):
        legend.remove()
    handles, labels = fig.axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=fontsize)
    return fig


def _network(ax, widths, silenced=(), gains=None, delta=False):
    """Draw a small layered network; `silenced`: {(layer, i)}; `gains`: {(layer, i): g}; `delta`: LoRA overlay."""
    xs = np.arange(len(widths)) * 2.0
    pos = [[(x, y) for y in np.linspace(-(w - 1) / 2, (w - 1) / 2, w)] for x, w in zip(xs, widths)]
    for l in range(len(widths) - 1):
        for i, p in enumerate(pos[l]):
            off = (l, i) in silenced
            for q in pos[l + 1]:
                ax.plot(*zip(p, q), color=FROZEN, lw=0.8, alpha=0.25 if off else 1, zorder=1)
                if delta:
                    ax.plot(*zip(p, q), color=TRAINED, lw=1.2, alpha=0.35, zorder=2)
        if delta:
            ax.text(xs[l] + 1, max(widths) / 2 + 0.2, "ΔW = B A", ha="center", color=TRAINED, fontsize=10,
                    bbox=dict(fc="white", ec=TRAINED, boxstyle="round"))
    cmap = plt.get_cmap(GAINS)
    for l, layer in enumerate(pos):
        for i, (x, y) in enumerate(layer):
            gated = gains is not None and 0 < l < len(widths) - 1
            face = SILENT if (l, i) in silenced else cmap(0.3 + 0.5 * gains[(l, i)]) if gated else "0.9"
            ax.scatter([x], [y], s=260, c=[face], edgecolors="k", zorder=3)
            if (l, i) in silenced:
                ax.text(x, y, "×", ha="center", va="center", fontsize=12, zorder=4)
    names = ["input\n784"] + [f"hidden{l}\n256" for l in range(1, len(widths) - 1)] + ["head\n10"]
    for x, name in zip(xs, names):
        ax.text(x, -max(widths) / 2 - 0.5, name, ha="center", va="top", fontsize=10)
    ax.set_xlim(-0.6, xs[-1] + 0.6)
    ax.set_ylim(-max(widths) / 2 - 1.9, max(widths) / 2 + 1.0)  # room for the 10-pt labels and count
    ax.axis("off")


def mode_schematic(n_dopamine: int | None = None, n_lora: int | None = None, seed: int = 0) -> plt.Figure:
    """Two panels on the same frozen MLP: Dopamine's per-neuron gates (left) and LoRA's weight deltas (right).

    n_dopamine, n_lora: trainable-parameter counts to print under each panel (pass the measured ones).
    """
    widths = (5, 6, 6, 3)
    rng = np.random.default_rng(seed)
    hidden = [(l, i) for l in (1, 2) for i in range(widths[l])]
    silenced = {hidden[k] for k in rng.choice(len(hidden), size=4, replace=False)}
    gains = {h: float(rng.uniform(0, 1)) for h in hidden}
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.5, 4.4), constrained_layout=True)
    _network(left, widths, silenced=silenced, gains=gains)
    _network(right, widths, delta=True)
    left.set_title("Dopamine: frozen weights,\na gate (τ, g) on every hidden neuron", fontsize=10)
    right.set_title("LoRA: frozen weights,\nplus a low-rank ΔW = B A on every layer", fontsize=10)
    for ax, n, what in ((left, n_dopamine, "2 numbers per hidden neuron"), (right, n_lora, "r (n_in + n_out) per layer")):
        count = f": {n:,} trainable" if n is not None else ""
        ax.text(0.5, 0.0, what + count, transform=ax.transAxes, ha="center", fontsize=10)
    handles = [Line2D([], [], color=FROZEN, label="frozen weight"),
               Line2D([], [], color=TRAINED, alpha=0.6, lw=2, label="trained low-rank delta"),
               Patch(fc=plt.get_cmap(GAINS)(0.7), ec="k", label="gated neuron (shade = gain g)"),
               Patch(fc=SILENT, ec="k", label="silenced for this input: drive z ≤ τ (×)")]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False, fontsize=10)
    return fig
