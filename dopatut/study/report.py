"""The study's report: what the runs say, as tables and sentences (the comparison's, chapter 9's, any runs').

    accuracies(runs, "lora")              # one method's test accuracy at 45°, one value per seed
    differences(runs, against="dopamine") # method -> its paired difference with Dopamine, with its interval
    seed_gap_words(a, b, "head-only")     # one run against another, '0.32 points behind head-only's 97.45%'
    lead_over(runs, leader="dopamine")    # method -> Dopamine - method, the sign of the book's answer
    summarise(runs)                       # mean +- std per method and mode, an HTML table in a notebook
    said("Dopamine", "LoRA", d)           # the comparison in words chosen by the interval
    draw_words(0.0129, d)                 # where one seed's difference falls among the seeds of d
    choices_table({kind: [Selection]})    # each grid's choice on each foundation, one row a method
    edges_sentence({kind: [Selection]})   # which grids chose at an edge, and whether it matters

`runs` is method -> [pipeline.Result, one per seed], as compare.compare and beyond.run_arms give them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .pipeline import Result
from .search import Selection
from ..analysis.stats import PairedDifference, mean_std, paired_difference
from ..foundations.tables import Table
from ..methods.names import listed, signed_points


def accuracies(runs: dict[str, list[Result]], method: str, angle: str = "45") -> list[float]:
    """One method's test accuracy at `angle`, one value per seed."""
    if method not in runs:
        raise KeyError(f"no runs of {method!r}; methods are {list(runs)}")
    return [r.accuracy[angle] for r in runs[method]]


def differences(runs: dict[str, list[Result]], against: str = "dopamine", angle: str = "45",
                confidence: float = 0.95) -> dict[str, PairedDifference]:
    """method -> (method - `against`), paired by seed, with its t interval; every method but `against`."""
    base = accuracies(runs, against, angle)
    return {m: paired_difference(accuracies(runs, m, angle), base, confidence) for m in runs if m != against}


def seed_gap_words(accuracy: float, rival_accuracy: float, rival: str) -> str:
    """One run's test accuracy against a rival's (fractions), in words with the gap's size in points:
    '0.32 points behind head-only's 97.45%', '0.10 points ahead of ...', 'level with ...' (equal to 0.01 points)."""
    gap = round(100 * (accuracy - rival_accuracy), 2)
    against = f"{rival}'s {rival_accuracy:.2%}"
    if gap == 0:
        return f"level with {against}"
    return f"{abs(gap):.2f} points {'behind' if gap < 0 else 'ahead of'} {against}"


def lead_over(runs: dict[str, list[Result]], leader: str = "dopamine", angle: str = "45",
              confidence: float = 0.95) -> dict[str, PairedDifference]:
    """method -> (`leader` - method), paired by seed, with its t interval: how far `leader` is ahead of every
    other method (the sign of the book's answer, Dopamine - rival; `differences` gives method - `leader`)."""
    ahead = accuracies(runs, leader, angle)
    return {m: paired_difference(ahead, accuracies(runs, m, angle), confidence) for m in runs if m != leader}


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
        body = [[_readable(r.method), f"{r.n_trainable:,}",
                 *(f"{100 * m:.2f} ± {100 * s:.2f}" if not math.isnan(s) else f"{100 * m:.2f}"
                   for m, s in r.accuracy.values())] for r in self]
        return header, body

    def __str__(self) -> str:
        header, body = self._cells()
        widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
        return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(line, widths)) for line in [header, *body])

    def html(self) -> str:
        """The table as HTML, to set beside a heading in a notebook's HTML output."""
        return Table(*self._cells()).html()

    def _repr_html_(self) -> str:
        return self.html()


def summarise(runs: dict[str, list[Result]], angles=("45", "0")) -> Summary:
    """Mean +- sample std over seeds of every method's accuracy at each angle."""
    if not runs:
        raise ValueError("runs is empty: run at least one method")
    return Summary(Row(m, max(r.n_trainable for r in rs), {a: mean_std(accuracies(runs, m, a)) for a in angles})
                   for m, rs in runs.items())


def selection_table(selections: list[Selection]) -> str:
    """The grids as one HTML table: method, setting, validation accuracy, chosen."""
    body = []
    for sel in selections:
        for i, (setting, acc) in enumerate(zip(sel.settings, sel.val_accuracy)):
            text = ", ".join(f"{k} {_fmt(v)}" for k, v in setting.items()) or "(nothing to set)"
            body.append([_readable(sel.method), text, f"{100 * acc:.2f}", "✔" if i == sel.best else ""])
    return Table(["method", "setting", "validation accuracy at 45° (%)", "chosen"], body).html()


def _chosen_words(sel: Selection) -> str:
    """'lr 0.03, temperature 1 → 0.1 (97.55%)': the setting a grid chose, with its validation accuracy."""
    text = ", ".join(f"{k} {_fmt(v)}" for k, v in sel.chosen.items()) or "(nothing to set)"
    return f"{text} ({100 * sel.val_accuracy[sel.best]:.2f}%)"


def choices_table(selections: dict[str, list[Selection]]) -> Table:
    """{foundation: [Selection, one per method]} as one table: a row per method, the setting chosen on each."""
    methods = [sel.method for sel in next(iter(selections.values()))]
    by_kind = {kind: {sel.method: sel for sel in sels} for kind, sels in selections.items()}
    return Table(["method", *(f"chosen on the {kind} foundation (validation accuracy at 45°)" for kind in selections)],
                 [[_readable(m), *(_chosen_words(by_kind[kind][m]) for kind in selections)] for m in methods])


_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


def edges_sentence(selections: dict[str, list[Selection]], answer=None) -> str:
    """A sentence for each grid whose choice lies at an edge of its rates (where a wider grid might score higher);
    a choice tied with a setting inside the grid is said not to matter (the tie goes to the first in the grid).
    `answer` (compare.dopamine_against()): where Dopamine loses to that method, say that a better rate could only
    widen the method's lead, so the verdict stands; otherwise that the verdict rests on this grid."""
    from ..analysis.stats import verdict

    said = []
    for kind, sels in selections.items():
        for sel in (s for s in sels if s.at_edge):
            name = _readable(sel.method).split(" (")[0]  # "LoRA", not "LoRA (r = 4)"
            top = sel.val_accuracy[sel.best]
            rates = sorted({st["lr"] for st in sel.settings})
            tied = [st for st, acc in zip(sel.settings, sel.val_accuracy) if acc == top]
            inside = [st for st in tied if rates[0] < st["lr"] < rates[-1]]
            if inside:
                n = len(inside)
                said.append(f"{name}'s best score on the {kind} foundation is shared by "
                            f"{_WORDS.get(len(tied), len(tied))} settings, {_WORDS.get(n, n) if n > 1 else 'one'} "
                            f"of them inside the grid, so the edge does not matter there.")
            else:
                end, beyond = ("largest", "larger") if sel.chosen["lr"] == rates[-1] else ("smallest", "smaller")
                said.append(f"{name[0].upper() + name[1:]} on the {kind} foundation won at the {end} rate of its "
                            f"grid ({_fmt(sel.chosen['lr'])}): a {beyond} rate might score higher.")
                d = (answer or {}).get(kind, {}).get(sel.method)
                if d is not None and sel.method != "dopamine":
                    said.append("That could only widen its lead over Dopamine, so the verdict \"loses to\" stands."
                                if verdict(d) == "loses to" else
                                f"That could change Dopamine's verdict against it (\"{verdict(d)}\").")
    return " ".join(said) if said else "No winner lies at an edge of its grid."


def _readable(name: str) -> str:
    """A method's or an arm's name for the reader (dopatut.methods.names), or the name as it is."""
    from ..methods.names import display

    try:
        return display(name)
    except KeyError:
        return name


def _fmt(value) -> str:
    """A setting as people write it: 0.00003, not 3e-05."""
    if isinstance(value, tuple):
        return " → ".join(_fmt(v) for v in value)
    return np.format_float_positional(value, trim="-") if isinstance(value, float) else f"{value:g}"


def said(a: str, b: str, d: PairedDifference, angle: str = "45") -> str:
    """The comparison of `a` with `b` in words chosen by the interval of d = a - b (accuracies as fractions):

        'Dopamine beats the frozen foundation at 45° by 1.02 points (95% interval of the difference +0.85 to
        +1.19, 10 seeds)'
    """
    from ..analysis.stats import verdict

    words = verdict(d)
    interval = f"{signed_points(d.ci_low)} to {signed_points(d.ci_high)}"
    if words == "ties with":
        return (f"{a} ties with {b} at {angle}°: {a} − {b} is {signed_points(d.mean)} points on average, and its "
                f"{d.confidence:.0%} interval, {interval}, holds zero ({d.n} seeds)")
    return (f"{a} {words} {b} at {angle}° by {abs(100 * d.mean):.2f} points ({d.confidence:.0%} interval of "
            f"{a} − {b}: {interval}, {d.n} seeds)")


def curve_words(loss, curves: dict[str, list[float]]) -> str:
    """What learning curves do, in words chosen by the numbers: 'the loss falls every epoch; the 45° accuracy
    rises every epoch, to 96.3% at epoch 5; the 0° accuracy peaks at epoch 4 (97.6%) and ends at 97.5%'.

    loss: the mean training loss of each epoch; curves: angle -> the validation accuracy (a fraction) after each
    epoch, as a foundation's meta holds them."""
    loss = [float(x) for x in loss]
    if not loss or any(len(c) != len(loss) for c in curves.values()):
        raise ValueError(f"curve_words: one value per epoch in every curve, got {len(loss)} losses and "
                         f"{ {a: len(c) for a, c in curves.items()} }")
    if all(b < a for a, b in zip(loss, loss[1:])):
        parts = ["the loss falls every epoch"]
    else:
        low = min(range(len(loss)), key=loss.__getitem__)
        parts = [f"the loss is lowest after epoch {low + 1}"]
    for angle, curve in curves.items():
        best = max(range(len(curve)), key=curve.__getitem__)  # the first epoch with the highest accuracy
        name, last = f"the {angle}° accuracy", len(curve)
        if best == last - 1 and all(b >= a for a, b in zip(curve, curve[1:])):
            parts.append(f"{name} rises every epoch, to {curve[-1]:.1%} at epoch {last}")
        elif best == last - 1:
            parts.append(f"{name} ends at its highest, {curve[-1]:.1%} at epoch {last}")
        elif f"{curve[best]:.1%}" == f"{curve[-1]:.1%}":  # the dip after the peak does not show at this precision
            parts.append(f"{name} levels off at {curve[best]:.1%} from epoch {best + 1}")
        else:
            parts.append(f"{name} peaks at epoch {best + 1} ({curve[best]:.1%}) and ends at {curve[-1]:.1%}")
    return "; ".join(parts)


def alone_words(method: str, d: PairedDifference) -> str:
    """One rival against Dopamine, from d = Dopamine - rival (as compare.dopamine_against gives it):
    'gain-only alone ties with Dopamine (0.01 points apart)', 'threshold-only alone is 0.24 points behind'."""
    from ..analysis.stats import verdict

    words, points = verdict(d), f"{abs(100 * d.mean):.2f} points"
    if words == "ties with":
        return f"{_readable(method)} alone ties with Dopamine ({points} apart)"
    return f"{_readable(method)} alone is {points} {'behind' if words == 'beats' else 'ahead'}"


def twin_words(mine: PairedDifference, twin: PairedDifference, twin_name: str, where: str = "") -> str:
    """A check of a method against its twin (one method under two names), from Dopamine - each over the same seeds:
    where the two match seed by seed (within half a test digit of 10,000), "It matches threshold-only's gap on the
    same seeds in the budget table, +0.39: the same gate with the same learning rate trains the same models.";
    else the twin's gap and that its runs differ. `where`: where the page shows the twin's gap."""
    if mine.n != twin.n:
        raise ValueError(f"twin_words: the twin needs the same seeds, got {mine.n} and {twin.n} differences")
    at = f" {where}" if where else ""
    same = all(abs(a - b) < 0.5e-4 for a, b in zip(mine.differences, twin.differences))
    if same:
        return (f"It matches {twin_name}'s gap on the same seeds{at}, {signed_points(twin.mean)}: the same gate "
                "with the same learning rate trains the same models.")
    return (f"{twin_name[:1].upper()}{twin_name[1:]}'s gap on the same seeds is {signed_points(twin.mean)}{at}, "
            f"not {signed_points(mine.mean)}: its runs differ from these, by their setting or by float rounding.")


def draw_words(value: float, d: PairedDifference, who: str = "Seed 0") -> str:
    """Where one seed's gain `value` (a fraction; d's differences are gains too) falls among the seeds of `d`, in
    one sentence: 'Seed 0 gained +1.29 points, the largest of the 10 draws: over the 10 seeds the gain runs from
    +0.58 to +1.29 points.' Values within half a test digit of 10,000 count as equal."""
    tol = 0.5e-4
    n, above = d.n, sum(x > value + tol for x in d.differences)
    below = sum(x < value - tol for x in d.differences)
    if above == 0:
        where = f"the largest of the {n} draws"
    elif below == 0:
        where = f"the smallest of the {n} draws"
    elif 3 * above < n:
        where = "one of the larger draws"
    elif 3 * below < n:
        where = "one of the smaller draws"
    else:
        where = "a middling draw"
    return (f"{who} gained {signed_points(value)} points, {where}: over the {n} seeds the gain runs from "
            f"{signed_points(min(d.differences))} to {signed_points(max(d.differences))} points.")


def halves(diffs: dict[str, PairedDifference], gain: str = "gain_only", threshold: str = "threshold_only") -> str:
    """Which half of Dopamine's gate matters more, over the seeds of `diffs` (rival -> Dopamine - rival): the half
    whose method alone comes closer to Dopamine. 'The gain matters more: gain-only alone ties with Dopamine
    (0.01 points apart); threshold-only alone is 0.24 points behind.'"""
    closer = "gain" if diffs[gain].mean < diffs[threshold].mean else "threshold"
    return f"The {closer} matters more: {alone_words(gain, diffs[gain])}; {alone_words(threshold, diffs[threshold])}."


def findings(answer: dict[str, dict[str, PairedDifference]]) -> str:
    """The verdicts alone, without sizes, for a recap: 'on the mixture foundation, Dopamine beats the frozen
    foundation and threshold-only, ties with ... and loses to ...; on the upright foundation, it ...'.
    answer: foundation -> rival -> Dopamine - rival (compare.dopamine_against)."""
    from ..analysis.stats import verdict
    from ..methods.names import display

    sentences = []
    for i, (kind, diffs) in enumerate(answer.items()):
        groups = []
        for words in ("beats", "ties with", "loses to"):
            names = [f"the {display(m)}" if m == "frozen" else display(m) for m, d in diffs.items()
                     if verdict(d) == words]
            if names:
                groups.append(f"{words} {listed(names)}")
        verbs = groups[0] if len(groups) == 1 else ", ".join(groups[:-1]) + ", and " + groups[-1]  # lists hold "and"
        sentences.append(f"on the {display(kind, 'foundation')}, {'Dopamine' if i == 0 else 'it'} {verbs}")
    return "; ".join(sentences)


@dataclass(frozen=True)
class Pairing:
    """What pairing by seed does to the interval of a - b: its width unpaired (Welch) and paired, in points, and
    how closely the two methods' accuracies move together across seeds (Pearson's r)."""

    unpaired_width: float
    paired_width: float
    correlation: float

    @property
    def narrower(self) -> bool:
        return self.paired_width < self.unpaired_width

    def words(self) -> str:
        """Why pairing helps or not, chosen by the numbers: 'they move together (correlation 0.90), so pairing
        narrows the interval' or 'they do not move together (correlation −0.37), so there is nothing shared to
        cancel'."""
        corr = f"{self.correlation:.2f}".replace("-", "−")
        if self.narrower:
            return (f"they move together (correlation {corr}), so pairing cancels a shared part and narrows the "
                    f"interval")
        return f"their accuracies do not move together (correlation {corr}), so there is nothing shared to cancel"


def pairing(a, b, confidence: float = 0.95) -> Pairing:
    """The paired and the unpaired (Welch's t) `confidence` interval of a - b, one value per seed in each, and the
    correlation of a and b: pairing helps as much as the two move together."""
    from scipy import stats

    from ..analysis.stats import paired_difference

    if len(a) != len(b) or len(a) < 3:
        raise ValueError(f"pairing needs one value per seed in each, at least 3; got {len(a)} and {len(b)}")
    unpaired = stats.ttest_ind(a, b, equal_var=False).confidence_interval(confidence)
    paired = paired_difference(a, b, confidence)  # the book's one paired interval
    return Pairing(float(100 * (unpaired.high - unpaired.low)), 100 * (paired.ci_high - paired.ci_low),
                   float(stats.pearsonr(a, b).statistic))
