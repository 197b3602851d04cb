"""Does the budget decide the verdicts? Every method at its chosen setting, trained for longer than the protocol.

    study = budget_study("upright")       # method -> BudgetRun: validation curve per seed, test accuracy at the end
    rows = verdict_changes(study, compare("upright"))   # Dopamine's verdict against each rival, at both budgets
    flat_epoch(mean_curve(study["lora"]), PROTOCOL.margin)   # the last epoch that adds the margin or more

One definition of flat, the protocol's (`PROTOCOL.margin`): an epoch that adds less validation accuracy than the
margin is flat, and a curve is flat at the budget when its last epoch is. A curve flat epoch by epoch can still
gain over several epochs (`slow_climbs`): flatness is read one epoch at a time, a slow climb is not.

The protocol gives every method `PROTOCOL.epochs` epochs. Here each method trains, with the setting `compare.select`
chose for that budget, for `epochs` (10), on the first seeds of the protocol (`BUDGET_SEEDS`: ten seeds for ten
epochs would cost more than the book's automated test run allows), recording the validation accuracy at 45° after every epoch (soft gates for
the gate methods, as `select`'s curves) and the test accuracy at 45° at the end (hard gates, as `compare`). The
verdicts at the longer budget come from `compare.dopamine_minus`, the function the protocol's verdicts come from,
paired over the same seeds as the protocol's runs they are set against. The learning rate is constant but the
gates' temperature anneals over all steps, so a longer run's epoch-3 point is not the 3-epoch run's result.
Cached per method and foundation under keys of their own ("budget-..."), and shipped (dopatut.foundations.bundle).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .compare import ANGLE, _cached, _check_method, _spec, dopamine_minus, result_name, select
from ..foundations.device import device_key, resolve_device
from ..methods.builtin import METHODS
from .pipeline import FoundationSpec, Result, foundations, specialise_many
from .protocol import PROTOCOL, Protocol, check_seeds
from ..methods.registry import get_method
from ..analysis.stats import PairedDifference, verdict
from ..methods.names import in_points, listed, signed_points

BUDGET_EPOCHS = 10
BUDGET_SEEDS = PROTOCOL.seeds[:3]  # what the automated test run affords; each seed trains as it would among ten
# The stacks the automated test run recomputes to check the shipped study (DOPATUT_READ_SHIPPED=budget reads the
# rest): the whole study costs as much as the ten-seed comparison, more than that run's hour has left. The pair
# that moves most.
SPOT_CHECK = (("upright", "dopamine"), ("upright", "gain_only"))


@dataclass(frozen=True)
class BudgetRun:
    """One method on one foundation trained for `epochs`: per seed, its validation curve and final test accuracy."""

    method: str
    seeds: tuple[int, ...]
    curves: tuple[tuple[float, ...], ...]  # validation accuracy at 45° after each epoch (empty: nothing trains)
    accuracy: tuple[float, ...]  # test accuracy at 45° after the last epoch
    seconds: float  # the stack's training time, wall clock


def _budget_key(method: str, kind: str, setting: dict, epochs: int, seeds, protocol: Protocol,
                device) -> tuple[str, dict]:
    setting = {k: list(v) if isinstance(v, tuple) else v for k, v in setting.items()}
    return f"budget-{kind}-{method}", {"protocol": protocol.to_dict(), "spec": _spec(kind).to_dict(0),
                                       "method": method, "setting": setting, "epochs": epochs,
                                       "seeds": list(seeds), **get_method(method).fingerprint(),
                                       **device_key(device)}


def budget_name(method: str, kind: str, setting: dict, epochs: int = BUDGET_EPOCHS, seeds=BUDGET_SEEDS,
                protocol: Protocol = PROTOCOL, device="cpu") -> str:
    """The file name of budget_study(kind)'s result for `method` run with `setting` (the grid's choice)."""
    return result_name(*_budget_key(_check_method(method), kind, setting, epochs, seeds, protocol, device))


def budget_job(method: str, spec: FoundationSpec, seeds: list[int], setting: dict, epochs: int,
               protocol: Protocol = PROTOCOL, progress: bool = False, device=None,
               recompute: bool | None = None) -> dict:
    """One (method, foundation, seeds) stack trained for `epochs` instead of the protocol's; a JSON-able dict."""
    bases = foundations(seeds, spec, progress=progress, device=resolve_device(device), recompute=recompute)
    config, kwargs = protocol.config(method, setting, seeds[0])
    pairs = specialise_many(bases, method, seeds, replace(config, epochs=epochs), angle_deg=ANGLE, eval_angles=(ANGLE,),
                            progress=progress, curve=True, **kwargs)
    results: list[Result] = [r for _, r in pairs]
    return {"curves": [r.curve for r in results], "accuracy": [r.accuracy[f"{ANGLE:g}"] for r in results],
            "seconds": results[0].seconds}


def budget_study(kind: str = "mixture", methods=METHODS, epochs: int = BUDGET_EPOCHS, seeds=BUDGET_SEEDS,
                 protocol: Protocol = PROTOCOL, progress: bool = True, device=None,
                 recompute: bool | None = None) -> dict[str, BudgetRun]:
    """method -> BudgetRun: each method with its chosen setting (compare.select, at the protocol's budget)
    trained for `epochs` on each of `seeds`' own foundation. Cached, and shipped (unless `recompute`)."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 2:
        raise ValueError(f"budget_study needs epochs >= 2 to draw a curve, got {epochs!r}")
    seeds = check_seeds(seeds)
    missing = [s for s in seeds if s not in protocol.seeds]
    if missing:
        raise ValueError(f"seeds {missing} are not the protocol's {list(protocol.seeds)}: the verdicts pair them "
                         "with the protocol's runs of the same seeds")
    spec, device = _spec(kind), resolve_device(device)
    out = {}
    for method in methods:
        setting = select(_check_method(method), kind, protocol, device=device, recompute=recompute).chosen
        value = _cached(*_budget_key(method, kind, setting, epochs, seeds, protocol, device),
                        lambda m=method, s=setting: budget_job(m, spec, list(seeds), s, epochs, protocol, progress,
                                                               device, recompute), recompute)
        out[method] = BudgetRun(method, tuple(seeds), tuple(tuple(c) for c in value["curves"]),
                                tuple(value["accuracy"]), value["seconds"])
    return out


def spot_check(device=None, progress: bool = False) -> list[str]:
    """Recompute SPOT_CHECK's stacks into the cache (never from the bundle), for bundle_check to compare."""
    for kind, method in SPOT_CHECK:
        budget_study(kind, methods=[method], progress=progress, device=device, recompute=True)
    return [f"{kind} {method}" for kind, method in SPOT_CHECK]


def mean_curve(run: BudgetRun) -> list[float]:
    """The validation curve averaged over the seeds, epoch by epoch (empty for a method that trains nothing)."""
    return [sum(values) / len(values) for values in zip(*run.curves)]


def epoch_gains(curve) -> list[float]:
    """What each epoch adds to the one before it: gains[i] is epoch i + 2's (epoch 1 has nothing before it)."""
    return [b - a for a, b in zip(curve, curve[1:])]


def climbing_epochs(curve, after: int = 0, margin: float = PROTOCOL.margin) -> list[int]:
    """The epochs (counted from 1) later than `after` that add `margin` or more: the epochs that are not flat."""
    return [i + 2 for i, g in enumerate(epoch_gains(curve)) if g >= margin and i + 2 > after]


def flat_epoch(curve, margin: float = PROTOCOL.margin) -> int | None:
    """The last epoch (counted from 1) that adds `margin` or more, so that every later one is flat (1 if none
    does); None if that is the curve's last epoch, which is then not flat."""
    climbs = climbing_epochs(curve, margin=margin)
    if len(curve) < 2 or (climbs and climbs[-1] == len(curve)):
        return None
    return climbs[-1] if climbs else 1


@dataclass(frozen=True)
class Change:
    """Dopamine against one rival, over the study's seeds: at the protocol's budget and at the longer one."""

    method: str
    short: PairedDifference  # Dopamine - rival after the protocol's epochs (compare's runs of the same seeds)
    long: PairedDifference  # after the study's epochs
    moves: tuple[float, float] = (math.nan, math.nan)  # mean test accuracy, longer minus shorter: (Dopamine, rival)

    @property
    def changed(self) -> bool:
        return verdict(self.short) != verdict(self.long)


def verdict_changes(study: dict[str, BudgetRun], runs: dict[str, list[Result]], protocol: Protocol = PROTOCOL,
                    against: str = "dopamine") -> list[Change]:
    """Dopamine's verdict against every other method of `study`, from compare's `runs` (the protocol's budget) and
    from `study` (the longer one), each paired over the study's seeds, by the protocol's own dopamine_minus."""
    if against not in study:
        raise ValueError(f"the study has no {against!r} run to pair with; it has {list(study)}")
    seeds = study[against].seeds
    where = [list(protocol.seeds).index(s) for s in seeds]
    short = {m: [runs[m][i].accuracy[f"{ANGLE:g}"] for i in where] for m in study}
    long = {m: list(run.accuracy) for m, run in study.items()}
    rivals = [m for m in study if m != against]
    d_short, d_long = (dopamine_minus(acc, rivals, against) for acc in (short, long))

    def move(m):
        return sum(long[m]) / len(long[m]) - sum(short[m]) / len(short[m])
    return [Change(m, d_short[m], d_long[m], (move(against), move(m))) for m in rivals]



def verdict_sentence(changes: dict[str, list[Change]], short_epochs: int, long_epochs: int) -> str:
    """Chapter 5's sentence on the budget, chosen by the verdicts: kind -> verdict_changes(...). One sentence; the
    numbers are in verdict_table."""
    from ..methods.names import display

    n = next(c.long.n for rows in changes.values() for c in rows)
    moved = [(kind, c) for kind, rows in changes.items() for c in rows if c.changed]
    total = sum(len(rows) for rows in changes.values())
    where = f"on the first {n} seeds"
    if not moved:
        return (f"Between {short_epochs} and {long_epochs} epochs, {where}, none of the {total} verdicts changes: "
                f"Dopamine beats, ties with and loses to the same rivals on both foundations.")
    said = [f"on the {display(kind, 'foundation')}, against "
            + listed([f"{display(c.method)} ({verdict(c.short)} → {verdict(c.long)})" for k, c in moved if k == kind])
            for kind in changes if any(k == kind for k, _ in moved)]
    return (f"Between {short_epochs} and {long_epochs} epochs, {where}, {len(moved)} of Dopamine's {total} verdicts "
            f"change{'s' * (len(moved) == 1)}: " + "; ".join(said) + ".")


def moves_sentence(changes: dict[str, list[Change]], short_epochs: int, long_epochs: int) -> str:
    """One sentence on the two sides of each verdict that moved: how Dopamine's and the rival's mean test
    accuracy change from `short_epochs` to `long_epochs` ('' when none moved)."""
    from ..methods.names import display

    parts = []
    for kind, rows in changes.items():
        moved = [c for c in rows if c.changed]
        if moved:
            parts.append(f"on the {display(kind, 'foundation')}, Dopamine's mean test accuracy at 45° moves "
                         f"{signed_points(moved[0].moves[0])} points, "
                         + listed([f"{display(c.method)}'s {signed_points(c.moves[1])}" for c in moved]))
    if not parts:
        return ""
    return (f"From {short_epochs} to {long_epochs} epochs, {'; '.join(parts)}: a verdict moves when either side "
            f"does.")


def verdict_table(changes: dict[str, list[Change]], short_epochs: int, long_epochs: int, answer=None):
    """Dopamine - rival and the verdict at both budgets, one row per foundation and rival (a dopatut Table);
    `answer` (compare.dopamine_against()): the protocol's verdict over all its seeds, as a last column."""
    from ..foundations.tables import Table
    from ..methods.names import display

    n = next(c.long.n for rows in changes.values() for c in rows)
    header = ["foundation", "Dopamine against", f"{short_epochs} epochs, {n} seeds", f"{long_epochs} epochs, {n} seeds"]
    if answer is not None:
        header.append(f"{short_epochs} epochs, {next(iter(next(iter(answer.values())).values())).n} seeds")
    body = []
    for kind, rows in changes.items():
        for c in rows:
            row = [display(kind, "foundation"), display(c.method), f"{signed_points(c.short.mean)}: {verdict(c.short)}",
                   f"{signed_points(c.long.mean)}: {verdict(c.long)}" + (" (changed)" if c.changed else "")]
            if answer is not None:
                row.append(f"{signed_points(answer[kind][c.method].mean)}: {verdict(answer[kind][c.method])}")
            body.append(row)
    return Table(header, body, caption="Dopamine − rival at 45°, test accuracy in points, and its verdict")




def flat_sentence(studies: dict[str, dict[str, BudgetRun]], budget: int, margin: float = PROTOCOL.margin) -> str:
    """One sentence, by the protocol's one definition: on each foundation, which mean curves still have an epoch
    after `budget` that adds `margin` or more (an epoch that is not flat), and the last such epoch."""
    from ..methods.names import display

    parts = []
    for kind, study in studies.items():
        curves = {m: mean_curve(run) for m, run in study.items() if any(run.curves)}
        late = {m: climbing_epochs(c, budget, margin) for m, c in curves.items()}
        late = {m: e for m, e in late.items() if e}
        name = f"on the {display(kind, 'foundation')}"
        if not late:
            parts.append(f"{name} no epoch after epoch {budget} adds {100 * margin:g} points or more to any of the "
                         f"{len(curves)} curves")
            continue
        last = max(e[-1] for e in late.values())
        parts.append(f"{name} {len(late)} of {len(curves)} curves still have an epoch after epoch {budget} that adds "
                     f"{100 * margin:g} points or more (" + listed([display(m) for m in late])
                     + f"), the last at epoch {last}")
    return "; ".join(parts)


@dataclass(frozen=True)
class SlowClimb:
    """A mean curve flat at every epoch after the budget that still ends up `margin` or more above it."""

    kind: str
    method: str
    gain: float  # its best later epoch minus the budget's epoch
    epoch: int  # that best later epoch


def slow_climbs(studies: dict[str, dict[str, BudgetRun]], budget: int,
                margin: float = PROTOCOL.margin) -> list[SlowClimb]:
    """The curves that flatness misses: no epoch after `budget` adds `margin`, yet a later epoch is `margin` or
    more above the budget's (a climb spread over several epochs)."""
    out = []
    for kind, study in studies.items():
        for method, run in study.items():
            curve = mean_curve(run)
            if len(curve) <= budget or climbing_epochs(curve, budget, margin):
                continue
            best = max(range(budget, len(curve)), key=lambda i: curve[i])
            if curve[best] - curve[budget - 1] >= margin:
                out.append(SlowClimb(kind, method, curve[best] - curve[budget - 1], best + 1))
    return out


def slow_sentence(studies: dict[str, dict[str, BudgetRun]], budget: int, margin: float = PROTOCOL.margin,
                  changes: dict[str, list[Change]] | None = None) -> str:
    """One sentence on what flatness misses: the curves flat epoch by epoch that gain `margin` or more over several
    epochs (slow_climbs), and, given `changes`, whether the verdict against such a rival moves."""
    from ..methods.names import display

    slow = slow_climbs(studies, budget, margin)
    if not slow:
        return (f"No curve that is flat epoch by epoch after epoch {budget} gains {100 * margin:g} points over "
                f"several epochs either.")
    text = (f"Flat epoch by epoch is not the same as finished: no epoch after epoch {budget} adds {100 * margin:g} "
            f"points to " + listed([f"{display(s.method)}'s curve on the {display(s.kind, 'foundation')}"
                                     for s in slow]) + ", yet " + listed(
                [f"{'it' if len(slow) == 1 else display(s.method) + chr(39) + 's'} is {in_points(s.gain)} points higher "
                 f"by epoch {s.epoch}" for s in slow]) + ".")
    moved = [s for s in slow if any(c.changed and c.method == s.method for c in (changes or {}).get(s.kind, []))]
    if moved:
        text += (" Dopamine's verdict against " + listed([f"{display(s.method)} on the "
                                                           f"{display(s.kind, 'foundation')}" for s in moved])
                 + " moves with the budget.")
    return text


def seed0_sentence(seed0: dict[str, dict[str, tuple[float, ...]]], studies: dict[str, dict[str, BudgetRun]],
                   budget: int, margin: float = PROTOCOL.margin) -> str:
    """Where seed 0's own curves (kind -> method -> its validation curve at the protocol's budget, as select
    records it) and the study's mean over its seeds judge epoch `budget` differently, in one sentence."""
    from ..methods.names import display

    parts = []
    for kind, curves in seed0.items():
        differ = []
        for method, curve in curves.items():
            mean = mean_curve(studies[kind][method])
            if len(curve) < budget or len(mean) < budget:
                continue
            one, many = curve[budget - 1] - curve[budget - 2], mean[budget - 1] - mean[budget - 2]
            if (one >= margin) != (many >= margin):
                differ.append(f"{display(method)} ({signed_points(one)} and {signed_points(many)})")
        if differ:
            parts.append(listed(differ) + f" on the {display(kind, 'foundation')}")
    n = len(next(iter(next(iter(studies.values())).values())).seeds)
    if not parts:
        return f"Seed 0 and the mean of {n} seeds agree on which curves epoch {budget} leaves flat."
    return (f"Seed 0 and the mean of {n} seeds judge epoch {budget} differently for " + "; ".join(parts)
            + f" (what epoch {budget} adds to seed 0's curve and to the mean, in points).")
