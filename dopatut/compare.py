"""The fair comparison: settings chosen on validation data, then every method over ten seeds, on two foundations.

    sel = select("lora", "mixture")       # every grid setting on the validation split; sel.chosen is the best
    config, kwargs = protocol_config("lora", "mixture", seed=0)   # the chosen settings, for specialise
    runs = compare("upright")             # method -> one Result per seed, test accuracy at 0° and 45°
    summarise(runs)                       # mean +- std per method and mode

Two foundations (`FOUNDATIONS`): "mixture", pretrained on 0° and 45° digits as in the paper, and
"upright", pretrained on 0° only, which lacks the rotated features. Every method specialises every seed's
own foundation to 45° with `PROTOCOL`'s budget and its chosen settings. Results are cached as JSON in the
foundation cache, keyed by everything that determines them, so later chapters read them instead of
training again.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass

import numpy as np

from . import bundle
from .cache import cache_dir, check_writable, keep, remembered, training_lock
from .checkpoints import atomic_write_bytes
from .checks import check_seed
from .device import device_key, resolve_device
from .methods import METHODS
from .registry import get_method
from .workers import run_jobs
from .pipeline import FoundationSpec, Result, foundation, foundations, specialise_many
from .protocol import PROTOCOL, Protocol, check_seeds
from .stats import PairedDifference, mean_std, paired_difference
from .tables import Table

FOUNDATIONS = {kind: FoundationSpec(angles=angles) for kind, angles in PROTOCOL.foundations.items()}
ANGLE = 45.0  # the mode every method specialises to
RESULTS_VERSION = 3  # bump when the way results are computed changes (2: matrices trained in a transposed layout;
# 3: frozen weights shared by a stack given once, LoRA evaluated as one product)


def _spec(kind: str) -> FoundationSpec:
    if kind not in FOUNDATIONS:
        raise ValueError(f"unknown foundation {kind!r}; expected one of {', '.join(FOUNDATIONS)}")
    return FOUNDATIONS[kind]


def _check_method(method: str) -> str:
    get_method(method)  # a ValueError naming the registered methods
    return method


def result_name(name: str, key: dict) -> str:
    """The file name of a result in the cache and in the shipped bundle: <name>-<hash of key and version>.json."""
    digest = hashlib.sha256(json.dumps({**key, "version": RESULTS_VERSION}, sort_keys=True,
                                       default=str).encode()).hexdigest()[:12]
    return f"{name}-{digest}.json"


def _cached(name: str, key: dict, compute, recompute: bool | None = None):
    """compute() once per key; its JSON result kept in the cache as results/<name>-<hash>.json. Read from the
    cache, else from the shipped bundle under the same name (unless recomputing), else computed."""
    filename = result_name(name, key)
    path = cache_dir() / "results" / filename
    value = _read_json(path)
    if value is None:
        value = remembered(path)
    if value is None:
        value = bundle.read_json(f"results/{filename}", recompute)
        if value is not None:
            bundle.tell_once("results", bundle.results_line())
    if value is None:
        check_writable()  # before training, not after
        with training_lock():  # another notebook may be computing the same: wait, then read what it wrote
            value = _read_json(path)
            if value is None:
                value = compute()
                keep(path, lambda: atomic_write_bytes(path, json.dumps(value).encode()), value,
                     f"the results {filename}")
    return value


def _read_json(path):
    if path.exists():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            print(f"cached results at {path.name} unreadable, recomputing them")
    return None


# ---------------------------------------------------------------- choosing settings on validation data
@dataclass
class Selection:
    """Every setting of one method's grid with its validation accuracy at 45°; `chosen` is the best."""

    method: str
    kind: str
    settings: list[dict]
    val_accuracy: list[float]  # hard gates for the gate methods, after the full budget
    curves: list[list[float]]  # validation accuracy after each epoch (soft gates)
    diverged: tuple[int, ...] = ()  # settings whose loss blew up: never chosen

    @property
    def best(self) -> int:
        kept = [i for i in range(len(self.settings)) if i not in self.diverged]
        if not kept:
            raise ValueError(f"every setting of {self.method!r}'s grid diverged on {self.kind}: {self.settings}; "
                             f"give it smaller learning rates")
        return max(kept, key=lambda i: (self.val_accuracy[i], -i))  # ties: the first

    @property
    def chosen(self) -> dict:
        return self.settings[self.best]

    @property
    def at_edge(self) -> bool:
        """Whether the chosen learning rate is the smallest or largest of the grid (the grid may not bracket it)."""
        rates = sorted({s["lr"] for s in self.settings if "lr" in s})
        return len(rates) > 1 and self.chosen.get("lr") in (rates[0], rates[-1])


def _structure(setting: dict) -> tuple:
    """Settings that can share one stack: the same everything but the learning rate."""
    return tuple((k, v) for k, v in sorted(setting.items()) if k != "lr")


def select(method: str, kind: str = "mixture", protocol: Protocol = PROTOCOL, progress: bool = False,
           device=None, recompute: bool | None = None) -> Selection:
    """Train `method` once per setting of its grid (on the selection seed's foundation) and score each on the
    validation split at 45°. Reads no test data. Cached (and shipped: dopatut.bundle, unless `recompute`).
    device: where it trains (None: the reader's); results of a GPU are kept apart from a CPU's."""
    _check_method(method)
    spec = _spec(kind)
    device = resolve_device(device)

    def compute():
        grid = protocol.grid(method)
        if get_method(method).grid is None:  # nothing to choose
            return {"settings": [{}], "val_accuracy": [_frozen_val(spec, protocol, device, recompute)],
                    "curves": [[]]}
        base = foundation(protocol.selection_seed, spec, progress=progress, device=device, recompute=recompute)
        scores = {}
        groups: dict[tuple, list[int]] = {}
        for i, setting in enumerate(grid):
            groups.setdefault(_structure(setting), []).append(i)
        for group in groups.values():
            configs = [protocol.config(method, grid[i], protocol.selection_seed)[0] for i in group]
            kwargs = protocol.config(method, grid[group[0]], protocol.selection_seed)[1]
            pairs = specialise_many([base] * len(group), method, [protocol.selection_seed] * len(group),
                                    angle_deg=ANGLE, eval_angles=(ANGLE,), split="val", progress=progress,
                                    configs=configs, curve=True, diverged="mark", **kwargs)
            for i, (_, result) in zip(group, pairs):
                blown = result.diverged_at is not None
                scores[i] = (result.accuracy[f"{ANGLE:g}"], result.curve, blown)
        value = {"settings": grid, "val_accuracy": [scores[i][0] for i in range(len(grid))],
                 "curves": [scores[i][1] for i in range(len(grid))]}
        blown = [i for i in range(len(grid)) if scores[i][2]]
        return {**value, "diverged": blown} if blown else value  # results without a blown setting as before

    value = _cached(*_select_key(method, kind, protocol, device), compute, recompute)
    settings = [{k: tuple(v) if isinstance(v, list) else v for k, v in s.items()} for s in value["settings"]]
    return Selection(method, kind, settings, value["val_accuracy"], value["curves"], tuple(value.get("diverged", ())))


def _select_key(method: str, kind: str, protocol: Protocol, device) -> tuple[str, dict]:
    return f"select-{kind}-{method}", {"protocol": protocol.to_dict(), "spec": _spec(kind).to_dict(0),
                                       "method": method, **get_method(method).fingerprint(), **device_key(device)}


def _compare_key(method: str, kind: str, setting: dict, protocol: Protocol, device) -> tuple[str, dict]:
    return f"compare-{kind}-{method}", {"protocol": protocol.to_dict(), "spec": _spec(kind).to_dict(0),
                                        "method": method, "setting": setting, **get_method(method).fingerprint(),
                                        **device_key(device)}


def select_name(method: str, kind: str = "mixture", protocol: Protocol = PROTOCOL, device="cpu") -> str:
    """The file name of select(method, kind)'s result, in the cache's results/ and in the shipped bundle."""
    return result_name(*_select_key(_check_method(method), kind, protocol, device))


def compare_name(method: str, kind: str, setting: dict, protocol: Protocol = PROTOCOL, device="cpu") -> str:
    """The file name of compare(kind)'s result for `method` run with `setting` (the grid's choice)."""
    setting = {k: list(v) if isinstance(v, tuple) else v for k, v in setting.items()}
    return result_name(*_compare_key(_check_method(method), kind, setting, protocol, device))


def _frozen_val(spec: FoundationSpec, protocol: Protocol, device, recompute) -> float:
    base = foundation(protocol.selection_seed, spec, progress=False, device=device, recompute=recompute)
    return specialise_many([base], "frozen", [protocol.selection_seed], angle_deg=ANGLE, eval_angles=(ANGLE,),
                           split="val", progress=False)[0][1].accuracy[f"{ANGLE:g}"]


def protocol_config(method: str, kind: str = "mixture", seed: int = 0, protocol: Protocol = PROTOCOL,
                    device=None, recompute: bool | None = None):
    """(TrainConfig, apply_method kwargs) with the settings chosen on validation data for `method` on `kind`."""
    check_seed(seed)
    return protocol.config(method, select(method, kind, protocol, device=device, recompute=recompute).chosen, seed)


# ---------------------------------------------------------------- the comparison
def compare(kind: str = "mixture", methods=METHODS, protocol: Protocol = PROTOCOL,
            progress: bool = True, device=None, recompute: bool | None = None,
            executor=None) -> dict[str, list[Result]]:
    """Every method specialised to 45° on each seed's own foundation, with its chosen settings.

    Returns method -> [Result per seed, in the order of protocol.seeds], test accuracy at 0° and 45°. Cached
    (and shipped: dopatut.bundle, unless `recompute` or DOPATUT_RECOMPUTE=1). device None: the reader's.
    executor: any concurrent.futures.Executor (a Dask cluster's: distributed.Client(address).get_executor()) to
    run the methods' stacks on, as jobs (`seeds_job`), side by side; what is cached is computed there.
    """
    spec = _spec(kind)
    seeds = check_seeds(protocol.seeds)
    device = resolve_device(device)
    keys, jobs = {}, {}
    for method in methods:
        _check_method(method)
        setting = select(method, kind, protocol, device=device, recompute=recompute).chosen
        keys[method] = _compare_key(method, kind, setting, protocol, device)
        jobs[method] = {"method": method, "spec": spec, "seeds": list(seeds), "setting": setting,
                        "protocol": protocol, "progress": progress and executor is None, "device": device,
                        "recompute": recompute}
    ahead = {}
    if executor is not None:  # the stacks not cached yet, run on the executor; each kept as it would be here
        todo = [m for m in methods if _read_json(cache_dir() / "results" / result_name(*keys[m])) is None]
        ahead = dict(zip(todo, run_jobs(seeds_job, [jobs[m] for m in todo], "stacks", progress, executor)))
    return {m: [Result(**row) for row in _cached(*keys[m], lambda m=m: ahead.get(m) or seeds_job(**jobs[m]),
                                                 recompute)]
            for m in methods}


def seeds_job(method: str, spec: FoundationSpec, seeds: list[int], setting: dict, protocol: Protocol = PROTOCOL,
              progress: bool = False, train_limit: int | None = None, device=None,
              recompute: bool | None = None) -> list[dict]:
    """One (method, foundation, seeds) stack of the comparison, the protocol's unit of work: every seed's
    foundation, `method` with `setting` on each, trained in one stack; the Results as dicts. A job for
    workers.run_jobs on any executor (everything it needs travels in its arguments)."""
    bases = foundations(seeds, spec, progress=progress, device=resolve_device(device), recompute=recompute)
    config, kwargs = protocol.config(method, setting, seeds[0])
    pairs = specialise_many(bases, method, seeds, config, ANGLE, (0.0, ANGLE), "test", progress, train_limit,
                            **kwargs)
    return [asdict(result) for _, result in pairs]


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

    def _repr_html_(self) -> str:
        return Table(*self._cells()).html()


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


def _readable(name: str) -> str:
    """A method's or an arm's name for the reader (dopatut.names), or the name as it is."""
    from .names import display

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

        'dopamine beats frozen at 45° by 1.02 points (95% CI of the difference [+0.85, +1.19], 10 seeds)'
    """
    from .stats import verdict

    words = verdict(d)
    interval = f"[{100 * d.ci_low:+.2f}, {100 * d.ci_high:+.2f}]"
    if words == "ties with":
        return (f"{a} ties with {b} at {angle}°: the difference, {100 * d.mean:+.2f} points on average, has a "
                f"{d.confidence:.0%} CI of {interval}, which holds zero ({d.n} seeds)")
    return (f"{a} {words} {b} at {angle}° by {abs(100 * d.mean):.2f} points ({d.confidence:.0%} CI of the "
            f"difference {interval}, {d.n} seeds)")


def dopamine_against(baselines=("frozen", "gain_only", "threshold_only", "bitfit", "head", "lora", "full"),
                     angle: str = "45", protocol: Protocol = PROTOCOL, device=None,
                     recompute: bool | None = None) -> dict[str, dict[str, PairedDifference]]:
    """kind -> baseline -> (dopamine - baseline), paired over the protocol's seeds: what the book's answer reads."""
    out = {}
    for kind in FOUNDATIONS:
        runs = compare(kind, ("dopamine", *baselines), protocol, progress=False, device=device, recompute=recompute)
        out[kind] = {b: paired_difference(accuracies(runs, "dopamine", angle), accuracies(runs, b, angle))
                     for b in baselines}
    return out
