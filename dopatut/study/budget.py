"""Does the budget decide the verdicts? Every method at its chosen setting, trained for longer than the protocol.

    study = budget_study("upright")       # method -> BudgetRun: validation curve per seed, test accuracy at the end
    rows = verdict_changes(study, compare("upright"))   # Dopamine's verdict against each rival, at both budgets
    flat_epoch(mean_curve(study["lora"]), PROTOCOL.margin)   # the first epoch from which the curve stays flat

The protocol gives every method `PROTOCOL.epochs` epochs. Here each method trains, with the setting `compare.select`
chose for that budget, for `epochs` (10), on the first seeds of the protocol (`BUDGET_SEEDS`: ten seeds for ten
epochs would cost more than CI has), recording the validation accuracy at 45° after every epoch (soft gates for
the gate methods, as `select`'s curves) and the test accuracy at 45° at the end (hard gates, as `compare`). The
verdicts at the longer budget come from `compare.dopamine_minus`, the function the protocol's verdicts come from,
paired over the same seeds as the protocol's runs they are set against. The learning rate is constant but the
gates' temperature anneals over all steps, so a longer run's epoch-3 point is not the 3-epoch run's result.
Cached per method and foundation under keys of their own ("budget-..."), and shipped (dopatut.foundations.bundle).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .compare import ANGLE, _cached, _check_method, _spec, dopamine_minus, result_name, select
from ..foundations.device import device_key, resolve_device
from ..methods.builtin import METHODS
from .pipeline import FoundationSpec, Result, foundations, specialise_many
from .protocol import PROTOCOL, Protocol, check_seeds
from ..methods.registry import get_method
from ..analysis.stats import PairedDifference, verdict

BUDGET_EPOCHS = 10
BUDGET_SEEDS = PROTOCOL.seeds[:3]  # what CI affords (see budget_study); each seed trains as it would among ten
# The stacks CI recomputes to check the shipped study (DOPATUT_READ_SHIPPED=budget reads the rest): the whole
# study costs as much as the ten-seed comparison, more than CI's hour has left. The pair that moves most.
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


def flat_epoch(curve, margin: float = PROTOCOL.margin) -> int | None:
    """The first epoch (counted from 1) from which no later epoch adds `margin` or more; None if the last does."""
    gains = [b - a for a, b in zip(curve, curve[1:])]  # gains[i]: what epoch i + 2 adds
    if not gains or gains[-1] >= margin:
        return None
    last_climb = max((i for i, g in enumerate(gains) if g >= margin), default=-1)
    return last_climb + 2


@dataclass(frozen=True)
class Change:
    """Dopamine against one rival, over the study's seeds: at the protocol's budget and at the longer one."""

    method: str
    short: PairedDifference  # Dopamine - rival after the protocol's epochs (compare's runs of the same seeds)
    long: PairedDifference  # after the study's epochs

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
    return [Change(m, d_short[m], d_long[m]) for m in rivals]


def _signed(x: float) -> str:
    return f"{100 * x:+.2f}".replace("-", "−")


def verdict_sentence(changes: dict[str, list[Change]], short_epochs: int, long_epochs: int) -> str:
    """Chapter 5's sentence on the budget, chosen by the verdicts: kind -> verdict_changes(...)."""
    from ..methods.names import display

    n = next(c.long.n for rows in changes.values() for c in rows)
    moved = [(kind, c) for kind, rows in changes.items() for c in rows if c.changed]
    where = f"on the first {n} seeds"
    if not moved:
        return (f"Between {short_epochs} and {long_epochs} epochs no verdict changes, {where}: Dopamine beats, ties "
                f"with and loses to the same rivals on both foundations.")
    said = [f"on the {display(kind, 'foundation')} Dopamine {verdict(c.short)} {display(c.method)} after "
            f"{short_epochs} epochs and {verdict(c.long)} it after {long_epochs} (Dopamine − {display(c.method)}: "
            f"{_signed(c.short.mean)} then {_signed(c.long.mean)} points)" for kind, c in moved]
    kept = sum(len(rows) for rows in changes.values()) - len(moved)
    return (f"Between {short_epochs} and {long_epochs} epochs, {where}, {len(moved)} verdict"
            f"{'s' * (len(moved) > 1)} change{'s' * (len(moved) == 1)} and {kept} stay: " + "; ".join(said) + ".")


def flat_sentence(studies: dict[str, dict[str, BudgetRun]], budget: int, margin: float = PROTOCOL.margin) -> str:
    """Which mean curves are flat by the protocol's margin from the protocol's budget on, and which are not."""
    from ..methods.names import display

    parts = []
    for kind, study in studies.items():
        flat = {m: flat_epoch(mean_curve(run), margin) for m, run in study.items() if any(run.curves)}
        late = [display(m) + (" (still climbing at the last epoch)" if e is None else f" (flat from epoch {e})")
                for m, e in flat.items() if e is None or e > budget]
        parts.append(f"on the {display(kind, 'foundation')}, " + (
            f"every curve is flat by epoch {budget}" if not late else
            f"{len(late)} of {len(flat)} curves are not flat by epoch {budget}: " + ", ".join(late)))
    return "; ".join(parts)
