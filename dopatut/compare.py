"""Many methods, many seeds: run them, tabulate them, draw them.

    results = sweep(base, VARIANTS, epochs=1)              # one foundation, label -> Result
    runs = run_seeds(range(5), {"dopamine": 1, "lora": 1})  # seed -> method -> Result
    summarise(runs)                                        # mean +- std per method and mode

Accuracies are the hard-gate test accuracies of `pipeline.specialise`, keyed by angle ("0", "45").
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass

from .pipeline import FoundationSpec, Result, recommended_config, run_seed, specialise
from .stats import mean_std

# (label, method, extra keyword arguments for apply_method)
VARIANTS = (("dopamine", "dopamine", {}), ("gain_only", "gain_only", {}), ("bitfit", "bitfit", {}),
            ("head", "head", {}), *((f"lora r={r}", "lora", {"rank": r}) for r in (1, 2, 4, 8, 16)),
            ("full", "full", {}))


def sweep(base, variants=VARIANTS, angle_deg: float = 45.0, seed: int = 0, epochs: int = 1,
          eval_angles=(0.0, 45.0), progress: bool = False) -> dict[str, Result]:
    """Specialise `base` once per variant (label, method, kwargs), all with the same seed and epochs."""
    labels = [label for label, _, _ in variants]
    if len(set(labels)) != len(labels):
        raise ValueError(f"variant labels must be unique, got {labels}")
    return {label: specialise(base, method, angle_deg, seed, recommended_config(method, seed, epochs),
                              eval_angles, progress, **kwargs)[1]
            for label, method, kwargs in variants}


def run_seeds(seeds, epochs_by_method: dict[str, int], angle_deg: float = 45.0,
              spec: FoundationSpec = FoundationSpec(), lora_rank: int = 4,
              progress: bool = False) -> dict[int, dict[str, Result]]:
    """`run_seed` for every seed, each method trained for its own number of epochs (0 for frozen)."""
    bad = {m: e for m, e in epochs_by_method.items()
           if isinstance(e, bool) or not isinstance(e, int) or e < (0 if m == "frozen" else 1)}
    if bad:
        raise ValueError(f"epochs must be ints >= 1 (0 allowed for frozen), got {bad}")
    groups: dict[int, list[str]] = {}
    for method, epochs in epochs_by_method.items():
        groups.setdefault(max(epochs, 1), []).append(method)
    runs = {}
    for seed in seeds:
        by_method = {}
        for epochs, methods in groups.items():  # the foundation is cached, so later groups just load it
            by_method.update(run_seed(seed, tuple(methods), angle_deg, spec, lora_rank, epochs, progress))
        runs[seed] = {m: by_method[m] for m in epochs_by_method}
    return runs


def accuracies(runs: dict[int, dict[str, Result]], method: str, angle: str = "45") -> list[float]:
    """One method's test accuracy at `angle`, one value per seed, in the order of the seeds."""
    return [by_method[method].accuracy[angle] for by_method in runs.values()]


@dataclass(frozen=True)
class Row:
    method: str
    n_trainable: int
    accuracy: dict[str, tuple[float, float]]  # angle -> (mean, std) over seeds


class Summary(list):
    """Rows of mean +- std over seeds; shows as an HTML table in a notebook, as text elsewhere."""

    def row(self, method: str) -> Row:
        for r in self:
            if r.method == method:
                return r
        raise KeyError(f"no row for {method!r}; methods are {[r.method for r in self]}")

    def _cells(self):
        angles = list(self[0].accuracy) if self else []
        header = ["method", "trainable params", *(f"{a}° accuracy (%)" for a in angles)]
        body = [[r.method, f"{r.n_trainable:,}",
                 *(f"{100 * m:.2f} ± {100 * s:.2f}" if not math.isnan(s) else f"{100 * m:.2f}"
                   for m, s in r.accuracy.values())] for r in self]
        return header, body

    def __str__(self) -> str:
        header, body = self._cells()
        widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
        return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(line, widths)) for line in [header, *body])

    def _repr_html_(self) -> str:
        header, body = self._cells()
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in line) + "</tr>" for line in body)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def summarise(runs: dict[int, dict[str, Result]], angles=("0", "45")) -> Summary:
    """Mean +- sample std over seeds of every method's accuracy at each angle."""
    if not runs:
        raise ValueError("runs is empty: run at least one seed")
    methods = list(next(iter(runs.values())))
    counts = {m: {by_method[m].n_trainable for by_method in runs.values()} for m in methods}
    return Summary(Row(m, max(counts[m]), {a: mean_std(accuracies(runs, m, a)) for a in angles}) for m in methods)
