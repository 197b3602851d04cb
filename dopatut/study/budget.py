"""Does the budget decide the verdicts? Every method at its chosen setting, trained for longer than the protocol.

    study = budget_study("upright")       # method -> BudgetRun: validation curve per seed, test accuracy at the end
    rows = verdict_changes(study, compare("upright"))   # Dopamine's verdict against each rival, at both budgets
    flat_epoch(mean_curve(study["lora"]), PROTOCOL.margin)   # the last epoch that adds the margin or more

One definition of flat, the protocol's (`PROTOCOL.margin`): an epoch that adds less validation accuracy than the
margin is flat, and a curve is flat at the budget when its last epoch is (`still_climbing`: the curves with a
later epoch that is not flat). `budget_words` says in a few sentences what the longer budget changes,
`verdict_table` gives the numbers per rival, and `keep_words` says why the protocol keeps its budget.

The protocol gives every method `PROTOCOL.epochs` epochs. Here each method trains, with the setting `compare.select`
chose for that budget, for `epochs` (10), on the first seeds of the protocol (`BUDGET_SEEDS`: ten seeds for ten
epochs would cost more than the book's automated test run allows), recording the validation accuracy at 45°
after every epoch (soft gates for the gate methods, as `select`'s curves) and the test accuracy at 45° at the end (hard gates, as `compare`). The
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


def _name(method: str) -> str:
    """A method's name for a possessive in prose: 'LoRA', not 'LoRA (r = 4)' (the tables keep the rank)."""
    from ..methods.names import display

    return display(method).split(" (")[0]


def still_climbing(study: dict[str, BudgetRun], budget: int, margin: float = PROTOCOL.margin) -> dict[str, int]:
    """method -> the last epoch after `budget` that adds `margin` or more to its mean curve, for the methods
    whose mean curve has one (by the protocol's one rule for a flat epoch)."""
    out = {}
    for method, run in study.items():
        late = climbing_epochs(mean_curve(run), budget, margin) if any(run.curves) else []
        if late:
            out[method] = late[-1]
    return out


def _climb_words(study: dict[str, BudgetRun], budget: int, margin: float) -> str:
    """Which mean curves still climb after `budget`, with the rule and the exceptions named: "6 of 7 mean curves
    (all but BitFit's) still gain 0.2 points or more in some epoch after epoch 3"; "" if none does."""
    climbing = still_climbing(study, budget, margin)
    trained = [m for m, run in study.items() if any(run.curves)]
    rest = [m for m in trained if m not in climbing]
    if not climbing:
        return ""
    if not rest:
        which = f"all {len(trained)} mean curves"
    else:
        names = listed([f"{_name(m)}'s" for m in (rest if len(rest) < len(climbing) else climbing)])
        which = (f"{len(climbing)} of {len(trained)} mean curves ("
                 + (f"all but {names}" if len(rest) < len(climbing) else names) + ")")
    return f"{which} still gain {100 * margin:g} points or more in some epoch after epoch {budget}"


def budget_words(studies: dict[str, dict[str, BudgetRun]], changes: dict[str, list[Change]], short_epochs: int,
                 long_epochs: int, margin: float = PROTOCOL.margin) -> dict[str, str]:
    """Chapter 5's answer to "does the budget decide the verdicts?" in short paragraphs of one or two sentences:
    "moved", which verdicts change; then, per foundation, why they change there or why none does (the size of
    the gaps against how far the longer budget moves them). The numbers per rival are in verdict_table."""
    from ..methods.names import display

    moved = [(kind, c) for kind, rows in changes.items() for c in rows if c.changed]
    total = sum(len(rows) for rows in changes.values())
    span = f"Between {short_epochs} and {long_epochs} epochs"
    if not moved:
        out = {"moved": f"{span} none of the {total} verdicts changes."}
    else:
        kinds = [k for k in changes if any(k == kind for kind, _ in moved)]
        said = "; ".join(f"on the {display(k, 'foundation')}, against "
                         + listed([f"{_name(c.method)} ({verdict(c.short)} → {verdict(c.long)})"
                                   for kind, c in moved if kind == k]) for k in kinds)
        out = {"moved": f"{span}, {len(moved)} of the {total} verdicts change{'s' * (len(moved) == 1)}: {said}."}
    for kind, rows in changes.items():
        name = display(kind, "foundation")
        climb = _climb_words(studies[kind], short_epochs, margin)
        shifted = [c for c in rows if c.changed]
        if not shifted:
            decided = [abs(c.short.mean) for c in rows if verdict(c.short) != "ties with"]
            most = max(abs(c.long.mean - c.short.mean) for c in rows)
            start = f"On the {name} no verdict changes:" if moved else f"On the {name}"
            out[kind] = (f"{start} the longer budget moves each gap by {in_points(most)} points or less"
                         + (f", and the clear gaps are {in_points(min(decided))} points or more." if decided else ".")
                         + (f" Yet {climb}." if climb else ""))
            continue
        gap = max(abs(c.short.mean) for c in shifted)
        flat = f"no later epoch adds {100 * margin:g} points to any mean curve"
        out[kind] = (f"On the {name} {climb or flat}, but the gaps that change were "
                     f"{in_points(gap)} points or less at {short_epochs} epochs. The longer budget moves both "
                     f"sides of them: Dopamine's test accuracy by {signed_points(shifted[0].moves[0])} points, "
                     + listed([f"{_name(c.method)}'s by {signed_points(c.moves[1])}" for c in shifted]) + ".")
    return out


def keep_words(studies: dict[str, dict[str, BudgetRun]], changes: dict[str, list[Change]], short_epochs: int,
               margin: float = PROTOCOL.margin) -> str:
    """Why the protocol keeps its budget, in two sentences from the study: per foundation, whether its mean curves
    still climb after the budget (the protocol's flat-curve rule) and which verdicts the longer budget changes;
    then the conclusion, which names the foundations where the budget is short by that rule, e.g. "On the mixture
    foundation every mean curve is flat after epoch 3, yet 2 verdicts change, on gaps of 0.39 points or less; on
    the upright foundation 6 of 7 mean curves still climb after epoch 3, yet no verdict changes. So the protocol
    keeps its budget of 3 epochs, though by the flat-curve rule it is short on the upright foundation: more epochs
    change no verdict there, and its verdicts are verdicts at that budget." """
    from ..methods.names import display

    clauses, short_on, moved_where_short = [], [], False
    for kind, rows in changes.items():
        name = display(kind, "foundation")
        climbing = still_climbing(studies[kind], short_epochs, margin)
        trained = [m for m, run in studies[kind].items() if any(run.curves)]
        shifted = [c for c in rows if c.changed]
        curves = (f"{len(climbing)} of {len(trained)} mean curves still climb" if climbing
                  else "every mean curve is flat") + f" after epoch {short_epochs}"
        if shifted:
            gap = max(abs(c.short.mean) for c in shifted)
            n = len(shifted)
            verdicts = (f"{'and' if climbing else 'yet'} {n} verdict{'s' * (n > 1)} change{'s' * (n == 1)}, "
                        f"on gaps of {in_points(gap)} points or less")
        else:
            verdicts = "yet no verdict changes" if climbing else "and no verdict changes"
        clauses.append(f"on the {name} {curves}, {verdicts}")
        if climbing:
            short_on.append(name)
            moved_where_short = moved_where_short or bool(shifted)
    facts = "; ".join(clauses)
    facts = facts[0].upper() + facts[1:] + "."
    keep = f"the protocol keeps its budget of {short_epochs} epochs"
    if moved_where_short:
        return (f"{facts} {keep[0].upper()}{keep[1:]} all the same, since moving it would retrain every result "
                "of the book; its verdicts are verdicts at that budget, and these changes are their caveat.")
    if short_on:
        return (f"{facts} So {keep}, though by the flat-curve rule it is short on the {listed(short_on)}: more "
                "epochs change no verdict there, and its verdicts are verdicts at that budget.")
    return f"{facts} So {keep}, and its verdicts are verdicts at that budget."


def caveat(changes: dict[str, list[Change]], short_epochs: int, long_epochs: int, where: str = "",
           answer=None) -> str:
    """Two sentences that carry the budget study into a headline: the verdicts hold at the protocol's budget, and
    how many the longer one changes on the study's seeds, each change that matters with its numbers and the
    budget each number comes from, e.g. "These verdicts are at the protocol's budget of 3 epochs; at 10 epochs,
    on 3 of the table's 10 seeds, 2 of the 14 verdicts change, and 1 of them no longer matches the table's
    10-seed verdict. Over those 3 seeds, Dopamine's gap to threshold-only on the mixture foundation shrinks from
    +0.39 points at 3 epochs to +0.12 at 10, and its interval holds zero (a tie on 3 seeds says little;
    chapter 5)." Both numbers are means over the study's seeds, not the table's.
    `where`: a pointer appended in brackets ("chapter 5"). `answer` (compare.dopamine_against(), the headline's
    verdicts over all the protocol's seeds): spell out only the changes that end on another verdict than the
    headline's (the others are counted), since a change within the study's seeds that ends where the headline
    already is changes nothing the reader was told."""
    from ..methods.names import display

    n = next(c.long.n for rows in changes.values() for c in rows)
    told_n = next(iter(next(iter(answer.values())).values())).n if answer is not None else n
    total = sum(len(rows) for rows in changes.values())
    seeds = f"on {n} of the table's {told_n} seeds" if told_n > n else f"on {n} seeds"
    start = f"These verdicts are at the protocol's budget of {short_epochs} epochs; at {long_epochs} epochs, {seeds},"
    ref = f"; {where}" if where else ""

    def told(kind, c):  # the verdict the reader was told: the headline's, else the study's own at the budget
        return verdict(answer[kind][c.method]) if answer is not None else verdict(c.short)

    changed = sum(c.changed for rows in changes.values() for c in rows)
    moved = [(kind, c) for kind, rows in changes.items() for c in rows if verdict(c.long) != told(kind, c)]
    if not moved:
        what = (f"{changed} of the {total} change{'s' * (changed == 1)}, each to the table's verdict" if changed
                else "none of them changes")
        return f"{start} {what}" + (f" ({where})." if where else ".")

    def one(kind, c):
        a, b = c.short.mean, c.long.mean
        how = ("changes sign" if a * b < 0 else "shrinks" if abs(b) < abs(a) else "grows")
        side = {"ties with": "holds zero", "beats": "lies above zero", "loses to": "lies below zero"}
        return (f"Dopamine's gap to {'the ' * (c.method == 'frozen')}{_name(c.method)} on the "
                f"{display(kind, 'foundation')} {how} from {signed_points(a)} points at {short_epochs} epochs "
                f"to {signed_points(b)} at {long_epochs}, and its interval {side[verdict(c.long)]}")
    count = f"{changed} of the {total} verdicts change{'s' * (changed == 1)}"
    if len(moved) < changed:
        count += (f", and {len(moved)} of them no longer match{'es' * (len(moved) == 1)} the table's "
                  f"{told_n}-seed verdict")
    tie = any(verdict(c.long) == "ties with" for _, c in moved)
    note = f"a tie on {n} seeds says little{ref}" if tie else where
    return (f"{start} {count}. Over those {n} seeds, " + "; ".join(one(k, c) for k, c in moved)
            + (f" ({note})." if note else "."))


def recap_words(changes: dict[str, list[Change]], short_epochs: int, long_epochs: int, answer) -> str:
    """The recap's budget item: how many verdicts the longer budget changes over the study's seeds, and each
    change in words, beside the protocol's verdict over all its seeds (`answer`, compare.dopamine_against()), e.g.
    "2 of 14 verdicts change between 3 and 10 epochs (3 seeds): on the mixture foundation, Dopamine beats
    threshold-only at 3 epochs but ties with it at 10 (the 10-seed verdict: beats), and ..."."""
    from ..methods.names import display

    n = next(c.long.n for rows in changes.values() for c in rows)
    total = sum(len(rows) for rows in changes.values())
    span = f"between {short_epochs} and {long_epochs} epochs ({n} seeds)"
    moved = {kind: [c for c in rows if c.changed] for kind, rows in changes.items()}
    count = sum(len(rows) for rows in moved.values())
    if not count:
        return f"None of the {total} verdicts changes {span}."

    def one(kind, c):
        told = answer[kind][c.method]
        return (f"{verdict(c.short)} {'the ' * (c.method == 'frozen')}{_name(c.method)} at {short_epochs} epochs "
                f"but {verdict(c.long)} it at {long_epochs} (the {told.n}-seed verdict: {verdict(told)})")
    parts = [f"on the {display(kind, 'foundation')}, Dopamine " + listed([one(kind, c) for c in rows])
             for kind, rows in moved.items() if rows]
    return f"{count} of {total} verdicts change{'s' * (count == 1)} {span}: " + "; ".join(parts) + "."


def drift_words(study: dict[str, BudgetRun], changes: list[Change], short_epochs: int,
                method: str = "dopamine") -> str:
    """Where `method`'s test accuracy falls with the longer budget: one sentence on what its mean validation
    curve does after the protocol's budget, and that the study does not say why; "" where it does not fall."""
    if not changes or changes[0].moves[0] >= 0:
        return ""
    from ..methods.names import display

    curve = mean_curve(study[method])
    peak = max(range(len(curve)), key=curve.__getitem__)
    end = curve[-1] - curve[short_epochs - 1]
    name = display(method)
    shape = (f"peaks at epoch {peak + 1} and ends {in_points(abs(end))} points "
             f"{'below' if end < 0 else 'above'} its epoch-{short_epochs} value")
    return (f"This study does not explain why {name}'s test accuracy falls with the longer budget. Its mean "
            f"validation curve {shape}: gates that overfit, or the temperature annealing over more steps, could "
            f"explain it, but neither is tested here.")


def verdict_table(changes: dict[str, list[Change]], short_epochs: int, long_epochs: int, answer=None,
                  moves: bool = False):
    """Dopamine - rival and the verdict at both budgets, one row per foundation and rival (a dopatut Table; for
    one foundation, named in the caption, a table narrow enough for the page), a
    verdict that the longer budget changes in bold; `answer` (compare.dopamine_against()): the protocol's verdict
    over all its seeds, as a column; `moves`: how far the rival's mean test accuracy moves between the budgets
    (Change.moves), as a last column, and Dopamine's own move per foundation in the caption (one number each)."""
    from ..foundations.tables import Table
    from ..methods.names import display

    n = next(c.long.n for rows in changes.values() for c in rows)
    one = len(changes) == 1  # one foundation: named in the caption, not in a column of its own
    header = ["foundation", "Dopamine against", f"{short_epochs} epochs, {n} seeds", f"{long_epochs} epochs, {n} seeds"]
    if answer is not None:
        header.append(f"{short_epochs} epochs, {next(iter(next(iter(answer.values())).values())).n} seeds")
    if moves:
        header.append("rival's move")
    def said(d):  # a number and its verdict on one line
        return f"{signed_points(d.mean)} {verdict(d)}".replace(" ", "\u00a0")

    body = []
    for kind, rows in changes.items():
        for c in rows:
            row = [kind, display(c.method).replace(" ", "\u00a0"),  # a name on one line
                   said(c.short), f"**{said(c.long)}**" if c.changed else said(c.long)]
            if answer is not None:
                row.append(said(answer[kind][c.method]))
            if moves:
                row.append(signed_points(c.moves[1]))
            body.append(row[1:] if one else row)
    where = f" on the {display(next(iter(changes)), 'foundation')}" if one else ""
    caption = (f"Dopamine − rival at 45°{where}, test accuracy in points, and its verdict (bold: changed by the "
               "longer budget)")
    if moves:
        own = listed([signed_points(rows[0].moves[0]) + ("" if one else f" on the {kind} foundation")
                      for kind, rows in changes.items() if rows])
        caption += (f". Rival's move: its mean test accuracy at {long_epochs} epochs minus at {short_epochs}; "
                    f"Dopamine's own moves by {own}")
    return Table(header[1:] if one else header, body, caption=caption)


def noise_words(studies: dict[str, dict[str, BudgetRun]], kind: str, noise: float) -> str:
    """One sentence on how far a mean curve of `kind` moves from one epoch to the next, against `noise` (one
    validation score's standard error): where the two are alike, a flat or climbing call is itself noisy."""
    from ..methods.names import display

    steps = [abs(g) for run in studies[kind].values() for g in epoch_gains(mean_curve(run))]
    wiggle = sum(steps) / len(steps)
    n = len(next(iter(studies[kind].values())).seeds)
    return (f"On the {display(kind, 'foundation')} a mean of {n} seeds still moves by {in_points(wiggle)} points "
            f"from one epoch to the next on average, while one validation score is uncertain by about "
            f"{in_points(noise)} points (its binomial standard error on this validation set)"
            + (": steps that small say little about the true accuracy." if wiggle < noise else "."))
