"""Settings chosen on validation data: one grid search for the course, with widening at an edge.

    found = search({"head": [{"lr": 1e-3}, {"lr": 3e-3}]}, run, score, widen=2)   # key -> [(setting, record)]
    sel = select("lora", "mixture")       # the main comparison's grid of one method; sel.chosen is the best
    config, kwargs = protocol_config("lora", "mixture", seed=0)   # the chosen settings, for specialise
    choices_at_an_edge()                  # the main comparison's choices at an edge of their grid

`search` runs every point of every grid through one call of `run` (which may stack them, or hand them to
workers), scores each record, and where a grid's best learning rate is its smallest or largest, tries the next
rate past that edge (a factor of 3), up to `widen` times, so that the rate chosen has a worse one on either side.
The main comparison (`select`) searches with widen=0: two of its choices sit at an edge of their grid
(`choices_at_an_edge`, tests/test_search.py), and widening them would change its results. Chapter 9 widens.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..foundations.checks import check_seed
from ..foundations.device import device_key, resolve_device
from .pipeline import FoundationSpec, foundation, specialise_many
from .protocol import PROTOCOL, Protocol
from ..methods.registry import get_method
from .result_cache import cached, result_name

FOUNDATIONS = {kind: FoundationSpec(angles=angles) for kind, angles in PROTOCOL.foundations.items()}
ANGLE = 45.0  # the mode every method specialises to
FACTOR = 3.0  # the grids' rates are a factor of 3 apart; widening goes on by the same


def _spec(kind: str) -> FoundationSpec:
    if kind not in FOUNDATIONS:
        raise ValueError(f"unknown foundation {kind!r}; expected one of {', '.join(FOUNDATIONS)}")
    return FOUNDATIONS[kind]


def _check_method(method: str) -> str:
    get_method(method)  # a ValueError naming the registered methods
    return method


# ---------------------------------------------------------------- the search
def past_edge(scores: dict[float, float], factor: float = FACTOR) -> float | None:
    """The next rate to try past the edge of `scores` ({rate: validation accuracy}) where the best one sits
    (`factor` times the largest, or the smallest divided by it); None if the best is inside."""
    best, rates = max(scores, key=scores.get), sorted(scores)
    if len(rates) < 2 or best not in (rates[0], rates[-1]):
        return None
    return float(f"{best * factor if best == rates[-1] else best / factor:.2g}")


def _structure(setting: dict) -> tuple:
    """Settings that can share one stack, and one line of rates: the same everything but the learning rate."""
    return tuple((k, v) for k, v in sorted(setting.items()) if k != "lr")


def _best(tried: list[tuple[dict, float]]) -> int:
    return max(range(len(tried)), key=lambda i: (tried[i][1], -i))  # ties: the first


def next_setting(tried: list[tuple[dict, float]], factor: float = FACTOR) -> dict | None:
    """The setting to try next for one grid ([(setting, score)] in the order tried): the best setting with the
    learning rate past the edge of its line (the settings that differ from it only in "lr"), or None."""
    best = tried[_best(tried)][0]
    if "lr" not in best:
        return None
    line = {s["lr"]: score for s, score in tried if "lr" in s and _structure(s) == _structure(best)}
    line[best["lr"]] = max(line.values()) + 1  # the line's best is the grid's best, even where a rate ties it
    rate = past_edge(line, factor)
    return None if rate is None else {**best, "lr": rate}


def search(grids: dict, run, score, widen: int = 0, factor: float = FACTOR) -> dict[str, list[tuple[dict, object]]]:
    """Every setting of every grid ({key: [setting]}), scored; then, up to `widen` times, the next rate past
    the edge of each grid whose best learning rate sits at one.

    run([(key, setting)]) -> [record], one per point, in order: trains and scores them (all of one round in one
    call, so it may stack them or run them side by side); score(record) -> validation accuracy, or None for a
    run that never counts (its loss blew up). Returns key -> [(setting, record)] in the order tried."""
    if isinstance(widen, bool) or not isinstance(widen, int) or widen < 0:
        raise ValueError(f"widen must be an int >= 0 (how many rates past an edge to try), got {widen!r}")
    found = {key: [] for key in grids}
    todo = [(key, setting) for key, settings in grids.items() for setting in settings]
    for round_ in range(widen + 1):
        for (key, setting), record in zip(todo, run(todo)):
            found[key].append((setting, record))
        if round_ == widen:
            break
        todo = []
        for key, tried in found.items():
            scored = [(s, -math.inf if score(r) is None else score(r)) for s, r in tried]
            setting = next_setting(scored, factor) if any(v > -math.inf for _, v in scored) else None
            if setting is not None and setting not in [s for s, _ in tried]:
                todo.append((key, setting))
        if not todo:
            break
    return found


# ---------------------------------------------------------------- the main comparison's grids
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


def _stacked_runs(method: str, base, protocol: Protocol, progress: bool):
    """search's `run` for the main comparison: the points of one method, one stack per structure (the same
    everything but the learning rate), in the order of their first setting; (accuracy, curve, diverged)."""
    def run(points):
        groups: dict[tuple, list[int]] = {}
        for i, (_, setting) in enumerate(points):
            groups.setdefault(_structure(setting), []).append(i)
        records = [None] * len(points)
        for group in groups.values():
            settings = [points[i][1] for i in group]
            configs = [protocol.config(method, s, protocol.selection_seed)[0] for s in settings]
            kwargs = protocol.config(method, settings[0], protocol.selection_seed)[1]
            pairs = specialise_many([base] * len(group), method, [protocol.selection_seed] * len(group),
                                    angle_deg=ANGLE, eval_angles=(ANGLE,), split="val", progress=progress,
                                    configs=configs, curve=True, diverged="mark", **kwargs)
            for i, (_, result) in zip(group, pairs):
                records[i] = (result.accuracy[f"{ANGLE:g}"], result.curve, result.diverged_at is not None)
        return records
    return run


def select(method: str, kind: str = "mixture", protocol: Protocol = PROTOCOL, progress: bool = False,
           device=None, recompute: bool | None = None, widen: int = 0) -> Selection:
    """Train `method` once per setting of its grid (on the selection seed's foundation) and score each on the
    validation split at 45°; with `widen`, also up to that many rates past an edge (`search`). Reads no test
    data. Cached (and shipped: dopatut.foundations.bundle, unless `recompute`). device: where it trains (None: the
    reader's); results of a GPU are kept apart from a CPU's."""
    _check_method(method)
    spec = _spec(kind)
    device = resolve_device(device)

    def compute():
        if get_method(method).grid is None:  # nothing to choose
            return {"settings": [{}], "val_accuracy": [_frozen_val(spec, protocol, device, recompute)],
                    "curves": [[]]}
        base = foundation(protocol.selection_seed, spec, progress=progress, device=device, recompute=recompute)
        tried = search({method: protocol.grid(method)}, _stacked_runs(method, base, protocol, progress),
                       lambda record: None if record[2] else record[0], widen)[method]
        value = {"settings": [s for s, _ in tried], "val_accuracy": [r[0] for _, r in tried],
                 "curves": [r[1] for _, r in tried]}
        blown = [i for i, (_, r) in enumerate(tried) if r[2]]
        return {**value, "diverged": blown} if blown else value  # results without a blown setting as before

    value = cached(*_select_key(method, kind, protocol, device, widen), compute, recompute)
    settings = [{k: tuple(v) if isinstance(v, list) else v for k, v in s.items()} for s in value["settings"]]
    return Selection(method, kind, settings, value["val_accuracy"], value["curves"], tuple(value.get("diverged", ())))


def _select_key(method: str, kind: str, protocol: Protocol, device, widen: int = 0) -> tuple[str, dict]:
    # "widen" is named only when on, so the grids searched without it keep their keys (and the bundle its names)
    return f"select-{kind}-{method}", {"protocol": protocol.to_dict(), "spec": _spec(kind).to_dict(0),
                                       "method": method, **get_method(method).fingerprint(), **device_key(device),
                                       **({"widen": widen} if widen else {})}


def select_name(method: str, kind: str = "mixture", protocol: Protocol = PROTOCOL, device="cpu",
                widen: int = 0) -> str:
    """The file name of select(method, kind)'s result, in the cache's results/ and in the shipped bundle."""
    return result_name(*_select_key(_check_method(method), kind, protocol, device, widen))


def _frozen_val(spec: FoundationSpec, protocol: Protocol, device, recompute) -> float:
    base = foundation(protocol.selection_seed, spec, progress=False, device=device, recompute=recompute)
    return specialise_many([base], "frozen", [protocol.selection_seed], angle_deg=ANGLE, eval_angles=(ANGLE,),
                           split="val", progress=False)[0][1].accuracy[f"{ANGLE:g}"]


def protocol_config(method: str, kind: str = "mixture", seed: int = 0, protocol: Protocol = PROTOCOL,
                    device=None, recompute: bool | None = None):
    """(TrainConfig, apply_method kwargs) with the settings chosen on validation data for `method` on `kind`."""
    check_seed(seed)
    return protocol.config(method, select(method, kind, protocol, device=device, recompute=recompute).chosen, seed)


def choices_at_an_edge(methods=None, protocol: Protocol = PROTOCOL, device=None,
                       recompute: bool | None = None) -> list[tuple[str, str, float, list[float]]]:
    """The main comparison's choices whose learning rate is the smallest or largest of its line in the grid:
    [(foundation, method, chosen rate, the line's rates)]. Widening (`search`) would try past each of them."""
    from ..methods.builtin import METHODS

    out = []
    for kind in FOUNDATIONS:
        for method in methods or METHODS:
            sel = select(method, kind, protocol, device=device, recompute=recompute)
            tried = list(zip(sel.settings, [-math.inf if i in sel.diverged else a
                                            for i, a in enumerate(sel.val_accuracy)]))
            if next_setting(tried) is not None:
                chosen = sel.chosen
                line = sorted({s["lr"] for s in sel.settings if "lr" in s and _structure(s) == _structure(chosen)})
                out.append((kind, method, chosen["lr"], line))
    return out
