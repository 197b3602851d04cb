"""The fair comparison: every method over ten seeds, on two foundations, with the settings chosen on validation data.

    sel = select("lora", "mixture")       # every grid setting on the validation split; sel.chosen is the best
    config, kwargs = protocol_config("lora", "mixture", seed=0)   # the chosen settings, for specialise
    runs = compare("upright")             # method -> one Result per seed, test accuracy at 0° and 45°
    summarise(runs)                       # mean +- std per method and mode

Two foundations (`FOUNDATIONS`): "mixture", pretrained on 0° and 45° digits as in the paper, and
"upright", pretrained on 0° only, which lacks the rotated features. Every method specialises every seed's
own foundation to 45° with `PROTOCOL`'s budget and its chosen settings. Results are cached as JSON in the
foundation cache, keyed by everything that determines them (dopatut.study.result_cache), so later chapters read
them instead of training again. The grids are dopatut.study.search's (`select`, `protocol_config` and `Selection` are
re-exported here, as the book imports them), and so are dopatut.study.report's tables and sentences.
"""
from __future__ import annotations

from dataclasses import asdict

from ..foundations.checks import check_seed  # noqa: F401  (re-exported)
from ..foundations.device import device_key, resolve_device
from ..methods.builtin import METHODS
from ..methods.registry import get_method
from ..training.workers import run_jobs
from .pipeline import (FoundationSpec, Result, foundation, foundations, specialise,  # noqa: F401
                       specialise_many)
from .protocol import PROTOCOL, Protocol, check_seeds
from ..foundations.cache import cache_dir  # noqa: F401  (re-exported: tests point it elsewhere)
from .result_cache import RESULTS_VERSION, cached as _cached, read_json as _read_json, result_name  # noqa: F401
from .search import (ANGLE, FOUNDATIONS, Selection, _check_method, _spec, choices_at_an_edge,  # noqa: F401
                     protocol_config, select, select_name)
from .report import (Row, Summary, _fmt, _readable, accuracies, differences, said,  # noqa: F401
                     selection_table, summarise)
from ..analysis.stats import PairedDifference, paired_difference


def _compare_key(method: str, kind: str, setting: dict, protocol: Protocol, device) -> tuple[str, dict]:
    return f"compare-{kind}-{method}", {"protocol": protocol.to_dict(), "spec": _spec(kind).to_dict(0),
                                        "method": method, "setting": setting, **get_method(method).fingerprint(),
                                        **device_key(device)}


def compare_name(method: str, kind: str, setting: dict, protocol: Protocol = PROTOCOL, device="cpu") -> str:
    """The file name of compare(kind)'s result for `method` run with `setting` (the grid's choice)."""
    setting = {k: list(v) if isinstance(v, tuple) else v for k, v in setting.items()}
    return result_name(*_compare_key(_check_method(method), kind, setting, protocol, device))


# ---------------------------------------------------------------- the comparison
def compare(kind: str = "mixture", methods=METHODS, protocol: Protocol = PROTOCOL,
            progress: bool = True, device=None, recompute: bool | None = None,
            executor=None) -> dict[str, list[Result]]:
    """Every method specialised to 45° on each seed's own foundation, with its chosen settings.

    Returns method -> [Result per seed, in the order of protocol.seeds], test accuracy at 0° and 45°. Cached
    (and shipped: dopatut.foundations.bundle, unless `recompute` or DOPATUT_RECOMPUTE=1). device None: the reader's.
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
    pairs = specialise_many(bases, method, seeds, config, angle_deg=ANGLE, eval_angles=(0.0, ANGLE), progress=progress,
                            train_limit=train_limit, **kwargs)
    return [asdict(result) for _, result in pairs]


def lora_ranks(ranks=(1, 2, 8, 16), kind: str = "mixture", seed: int = 0, protocol: Protocol = PROTOCOL,
               device=None, recompute: bool | None = None) -> dict[int, Result]:
    """LoRA at other ranks on one seed's foundation, each with the settings chosen for rank 4 (its learning rate
    and alpha, so each rank trains at its own scale alpha / r). Returns rank -> Result (test accuracy at 0° and
    45°). Cached like compare(): trained on the first call only, keyed by the ranks, seed, foundation, protocol,
    the rank-4 setting and the device."""
    check_seed(seed)
    ranks = [int(r) for r in ranks]
    if not ranks or any(r < 1 for r in ranks):
        raise ValueError(f"lora_ranks: ranks must be ints >= 1, got {ranks}")
    device = resolve_device(device)
    setting = select("lora", kind, protocol, device=device, recompute=recompute).chosen
    name, key = _compare_key("lora", kind, setting, protocol, device)
    key = {**key, "spec": _spec(kind).to_dict(seed), "seed": seed, "ranks": ranks}

    def train() -> list[dict]:
        base = foundation(seed, _spec(kind), progress=False, device=device, recompute=recompute)
        config, kwargs = protocol.config("lora", setting, seed)
        kwargs = {k: v for k, v in kwargs.items() if k != "rank"}
        return [asdict(specialise(base, "lora", ANGLE, seed, config, progress=False, rank=r, **kwargs)[1])
                for r in ranks]

    rows = _cached(f"ranks-{kind}-lora", key, train, recompute)
    return {r: Result(**row) for r, row in zip(ranks, rows)}


def dopamine_against(baselines=("frozen", "gain_only", "threshold_only", "bitfit", "head", "lora", "full"),
                     angle: str = "45", protocol: Protocol = PROTOCOL, device=None,
                     recompute: bool | None = None) -> dict[str, dict[str, PairedDifference]]:
    """kind -> baseline -> (dopamine - baseline), paired over the protocol's seeds: what the book's answer reads."""
    out = {}
    for kind in FOUNDATIONS:
        runs = compare(kind, ("dopamine", *baselines), protocol, progress=False, device=device, recompute=recompute)
        out[kind] = dopamine_minus({m: accuracies(runs, m, angle) for m in ("dopamine", *baselines)}, baselines)
    return out


def dopamine_minus(accuracy: dict[str, list[float]], baselines,
                   against: str = "dopamine") -> dict[str, PairedDifference]:
    """baseline -> (`against` - baseline), paired by seed, from method -> one accuracy per seed: the verdicts'
    intervals (dopamine_against, and chapter 5's budget study)."""
    return {b: paired_difference(accuracy[against], accuracy[b]) for b in baselines}
