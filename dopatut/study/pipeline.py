"""The experiment in a few calls: cached foundations, then specialisations, one model or many at once.

    base = foundation(seed=0)                         # trained once, then loaded from disk
    bases = foundations(range(10))                    # the same, ten seeds trained at once (dopatut.training.stack)
    model, result = specialise(base, "dopamine", angle_deg=45, seed=0)
    pairs = specialise_many(bases, "dopamine", seeds=range(10))   # one stacked run for ten seeds

Everything trains on the "train" split (the first 50,000 training images) with the budget of
`protocol.PROTOCOL`. Training goes through `stack.fit_many` even for one model, so a seed gives the same
numbers, bit for bit, in any stack of two or more, and alone up to float rounding (see dopatut.training.stack). Where
batching gains nothing (chapter 9's transformer, whose products are small), `stack=False` trains each model by
itself with `train.fit`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..foundations import bundle
from ..foundations.cache import cache_dir, check_writable, keep, remembered, training_lock
from ..foundations.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from ..foundations.checks import check_seed
from ..foundations.data import check_angle, check_limit, mixture, mode_data
from ..foundations.device import device_key, resolve_device
from ..methods.gate import gates_of, hardened
from ..methods.builtin import apply_method
from ..methods.registry import get_method
from ..foundations.model import FoundationMLP, MLPConfig, base_state_dict, count_parameters, freeze
from .protocol import PROTOCOL, check_seeds
from ..training.stack import fit_many
from ..training.train import TrainConfig, evaluate, fit, seed_everything
from ..foundations.vit import VisionTransformer, ViTConfig
from ..training.workers import run_jobs


# The gates' two settings TrainConfig held until they moved to GateConfig, at the values every key had them, so that
# the names of cached and shipped foundations and results (all keyed by FoundationSpec.to_dict) stay as they were.
RETIRED_TRAIN_KEY = {"sparsity": 0.0, "temperature": [1.0, 0.1]}


@dataclass(frozen=True)
class FoundationSpec:
    """Everything that determines a foundation, apart from the seed."""

    model: MLPConfig | ViTConfig = MLPConfig()  # the MLP, or the vision transformer of chapter 9
    angles: tuple[float, ...] = (0.0, 45.0)
    weights: tuple[float, ...] | None = None  # None: equal proportions
    train: TrainConfig = PROTOCOL.foundation_config()
    curves: bool = True  # validation accuracy at each angle after every epoch (one evaluation each)
    stack: bool = True  # False: trained by itself with train.fit (in a worker process where there are several)

    def to_dict(self, seed: int) -> dict:
        # "curves" and "stack" are named only when off, so the foundations cached before them keep their keys;
        # "stack" is in the key because the two loops round floats differently
        return {"model": self.model.to_dict(), "angles": [float(a) for a in self.angles],
                "weights": None if self.weights is None else [float(w) for w in self.weights],
                "train": {**replace(self.train, seed=seed).to_dict(), **RETIRED_TRAIN_KEY}, "split": "train",
                **({} if self.curves else {"curves": False}), **({} if self.stack else {"stack": False})}


def foundation_key(spec: FoundationSpec, seed: int, device=None) -> dict:
    """Everything that determines the foundation: the spec, the seed, and the device type unless it is the CPU
    (a GPU rounds otherwise; CPU keys stay as they were)."""
    return {**spec.to_dict(seed), **device_key(device)}


def foundation_path(spec: FoundationSpec, seed: int, device=None) -> Path:
    """Where the cache keeps the foundation of (spec, seed) trained on `device` (None: the reader's)."""
    key = hashlib.sha256(json.dumps(foundation_key(spec, seed, device), sort_keys=True).encode()).hexdigest()[:10]
    angles = "_".join(f"{a:g}" for a in spec.angles)
    return cache_dir() / f"foundation-{spec.model.tag}-a{angles}-s{seed}-{key}.pt"


def build(config: MLPConfig | ViTConfig) -> FoundationMLP | VisionTransformer:
    """A freshly initialised model of `config`'s kind."""
    if isinstance(config, MLPConfig):
        return FoundationMLP(config)
    if isinstance(config, ViTConfig):
        return VisionTransformer(config)
    raise ValueError(f"a foundation's model is an MLPConfig or a ViTConfig, got {config!r}")


def _load_foundation(spec: FoundationSpec, seed: int, progress: bool, device,
                     recompute: bool | None = None) -> FoundationMLP | None:
    """The foundation from the cache, else from this session's memory (a full disk), else from the shipped
    bundle (unless recomputing); None if none has it."""
    path = foundation_path(spec, seed, device)
    if path.exists():
        model = _read_foundation(path, spec, seed, device, "cached foundation unusable, retraining it")
        if model is not None:
            if progress:
                print(f"foundation (seed {seed}): loaded from the cache")
            return model
    if remembered(path) is not None:
        return remembered(path)
    relative = f"foundations/{path.name}"
    if bundle.recompute_requested(recompute) or bundle.bundled(relative) is None:
        return None
    with bundle.file_path(relative) as shipped:
        model = _read_foundation(shipped, spec, seed, device, "shipped foundation unusable, training it")
    if model is not None:
        bundle.mark_read("foundations")
    if model is not None and progress:
        print(f"foundation (seed {seed}): loaded from the shipped bundle (trained on a CPU by "
              f"{bundle.REBUILD}); DOPATUT_RECOMPUTE=1 trains it instead")
    return model


def _read_foundation(path, spec, seed, device, unusable: str):
    model = build(spec.model)
    try:
        payload = load_checkpoint(path, "foundation", foundation_key(spec, seed, device),
                                  {k: v.shape for k, v in model.state_dict().items()})
    except CheckpointError as err:
        print(f"{unusable}: {err}")
        return None
    model.load_state_dict(payload["state"])
    model.meta = payload["meta"]
    return freeze(model)


def _train_foundations(specs: list[FoundationSpec], seeds: list[int], progress: bool,
                       device) -> list[FoundationMLP]:
    """Train one foundation per (spec, seed), in as few stacks as they allow (same model and budget)."""
    groups: dict = {}
    for i, spec in enumerate(specs):
        groups.setdefault((spec.model, replace(spec.train, seed=0, lr=1.0)), []).append(i)
    models = [None] * len(specs)
    for members in groups.values():
        for i, model in zip(members, _train_stack([specs[i] for i in members], [seeds[i] for i in members],
                                                   progress, device)):
            models[i] = model
    return models


def _fresh(spec: FoundationSpec, seed: int, device) -> FoundationMLP | VisionTransformer:
    seed_everything(seed)
    return build(spec.model).to(device)


def _finished(spec: FoundationSpec, model, history, stacked: int, device):
    """The trained foundation, frozen, with its meta: test accuracy at its own angles, loss and curves."""
    own = {f"{a:g}": a for a in spec.angles}  # a stack may hold foundations of other modes: keep this one's
    model.meta = {"accuracy": {k: evaluate(model, *mode_data("test", a, device)) for k, a in own.items()},
                  "loss": history.loss, "curves": {k: history.accuracy[k] for k in own if spec.curves},
                  "seconds": history.seconds, "stacked": stacked}
    return freeze(model)


def _train_stack(specs: list[FoundationSpec], seeds: list[int], progress: bool, device) -> list[FoundationMLP]:
    data = [mixture("train", spec.angles, spec.weights, seed=s, device=device)[:2] for spec, s in zip(specs, seeds)]
    vals = {f"{a:g}": mode_data("val", a, device) for spec in specs if spec.curves for a in spec.angles}
    models = [_fresh(spec, s, device) for spec, s in zip(specs, seeds)]
    names = [f"{'+'.join(f'{a:g}' for a in spec.angles)}°, seed {s}" for spec, s in zip(specs, seeds)]
    histories = fit_many(models, torch.stack([x for x, _ in data]), torch.stack([y for _, y in data]),
                         [replace(spec.train, seed=s) for spec, s in zip(specs, seeds)], vals, progress,
                         desc=f"foundations ({'; '.join(names)})" if len(seeds) > 1 else f"foundation (seed {seeds[0]})")
    return [_finished(spec, model, history, len(seeds), device)
            for spec, model, history in zip(specs, models, histories)]


def _train_alone(spec: FoundationSpec, seed: int, progress: bool, device) -> FoundationMLP | VisionTransformer:
    """One foundation of a spec with stack=False, trained by itself with train.fit."""
    x, y = mixture("train", spec.angles, spec.weights, seed=seed, device=device)[:2]
    vals = {f"{a:g}": mode_data("val", a, device) for a in spec.angles} if spec.curves else None
    model = _fresh(spec, seed, device)
    history = fit(model, x, y, replace(spec.train, seed=seed), vals, progress, desc=f"foundation (seed {seed})")
    return _finished(spec, model, history, 1, device)


def foundations(seeds, spec: FoundationSpec | list[FoundationSpec] = FoundationSpec(), cache: bool = True,
                progress: bool = True, device=None, recompute: bool | None = None) -> list[FoundationMLP]:
    """The frozen foundations of `seeds`: loaded from the cache where there (else from the shipped bundle,
    dopatut.foundations.bundle, unless `recompute` or DOPATUT_RECOMPUTE=1), the rest trained at once.

    device: where they train and are returned (None: the reader's, device.default_device(); a GPU's are
    cached apart from the CPU's).

    spec: one FoundationSpec for every seed, or a list with one per seed, so that foundations of different
    modes train in one stack: foundations([0, 0], [mixture_spec, upright_spec]). Specs with stack=False train
    each by itself instead, side by side in worker processes where there are several (dopatut.training.workers), else
    one after another. Each carries `.meta`: its test accuracy at each of its training angles ("accuracy"),
    and its validation accuracy at each of them after every epoch ("curves"; empty where the spec turns them off).
    """
    if isinstance(spec, (list, tuple)):
        seeds, specs = check_seeds(seeds, distinct=False), list(spec)
        if len(specs) != len(seeds) or not all(isinstance(s, FoundationSpec) for s in specs):
            raise ValueError(f"give one FoundationSpec per seed: {len(seeds)} seeds, got {spec!r}")
        if len(set(zip(specs, seeds))) != len(seeds):
            raise ValueError(f"each (spec, seed) must be asked for once, got seeds {seeds} with a spec repeated")
    else:
        seeds = check_seeds(seeds)
        specs = [spec] * len(seeds)
    device = resolve_device(device)
    keys = list(range(len(seeds)))
    found = ({i: _load_foundation(specs[i], seeds[i], progress, device, recompute) for i in keys} if cache
             else dict.fromkeys(keys))
    missing = [i for i in keys if found[i] is None]

    def train(which):
        stacked = [i for i in which if specs[i].stack]
        alone = [i for i in which if not specs[i].stack]
        trained = dict(zip(stacked, _train_foundations([specs[i] for i in stacked], [seeds[i] for i in stacked],
                                                       progress, device)))
        jobs = [{"spec": specs[i], "seed": seeds[i], "progress": progress and len(alone) == 1, "device": device}
                for i in alone]  # one job runs here with its own bar; several run in workers, under one bar
        trained.update(zip(alone, run_jobs(_train_alone, jobs, "foundations", progress and len(alone) > 1)))
        return trained
    if missing and not cache:
        found.update(train(missing))
    elif missing:
        check_writable()  # before training, not after
        with training_lock():  # another process may be training them: wait, then load what it saved
            found.update({i: _load_foundation(specs[i], seeds[i], progress, device, recompute) for i in missing})
            missing = [i for i in keys if found[i] is None]
            if missing:
                trained = train(missing)
                for i, model in trained.items():
                    path = foundation_path(specs[i], seeds[i], device)
                    keep(path, lambda: save_checkpoint(path, base_state_dict(model), "foundation",
                                                       foundation_key(specs[i], seeds[i], device), model.meta),
                         model, f"the trained foundation (seed {seeds[i]})")
                found.update(trained)
    return [found[i].to(device) for i in keys]  # loaded ones come from the cache on the CPU


def foundation(seed: int = 0, spec: FoundationSpec = FoundationSpec(),
               cache: bool = True, progress: bool = True, device=None,
               recompute: bool | None = None) -> FoundationMLP:
    """The frozen foundation for (spec, seed): loaded from the cache, or the shipped
    bundle, if there; else trained and cached.
    device None: the reader's (device.default_device())."""
    return foundations([check_seed(seed)], spec, cache, progress, device, recompute)[0]


def foundation_records(seeds, spec: FoundationSpec = FoundationSpec(), device=None,
                       recompute: bool | None = None, progress: bool = False) -> list[dict]:
    """Each seed's training record (the foundation's `.meta`: test accuracy, loss, validation curves, seconds)
    without its weights: from the cache, else from the shipped bundle (which ships records, not weights, for
    most seeds), else trained (foundations())."""
    seeds, device = check_seeds(seeds), resolve_device(device)
    records = {}
    for seed in seeds:
        path = foundation_path(spec, seed, device)
        if path.exists() or remembered(path) is not None:
            continue
        record = bundle.read_json(f"records/{path.stem}.json", recompute)
        if record is not None:
            bundle.tell_once("records", "foundation records (curves, accuracy): seeds without a cached foundation "
                             f"come from the shipped bundle ({bundle.REBUILD}); DOPATUT_RECOMPUTE=1 trains them")
            records[seed] = record
    rest = [s for s in seeds if s not in records]
    if rest:
        records.update({s: m.meta for s, m in zip(rest, foundations(rest, spec, progress=progress, device=device,
                                                                      recompute=recompute))})
    return [records[s] for s in seeds]


@dataclass
class Result:
    method: str
    n_trainable: int
    accuracy: dict[str, float]  # angle -> accuracy on the evaluated split; hard gates for gate methods
    soft_accuracy: dict[str, float] = field(default_factory=dict)  # gate methods only
    seconds: float = 0.0
    curve: list[float] = field(default_factory=list)  # validation accuracy at the target angle after each epoch
    diverged_at: int | None = None  # the step its loss blew up, where a stack marks it (diverged="mark")


def specialise_many(bases, method: str, seeds, config: TrainConfig | None = None, *, angle_deg=45.0,
                    eval_angles=(0.0, 45.0), split: str = "test", progress: bool = True,
                    train_limit: int | None = None, configs=None, curve: bool = False, soft: bool = True,
                    stack: bool = True, diverged: str = "raise", **method_kwargs):
    """Adapt a copy of each base (one per seed) to one mode with `method`, in one stacked run (stack=False: in turn).

    Model i starts from bases[i] with seed seeds[i] (LoRA's A is drawn from it, and the data order).
    angle_deg: the mode, or one per model (each then trains on its own angle's images).
    config: one TrainConfig for all (its seed is replaced by each model's), or `configs`, one per model.
    Returns [(model, Result)], accuracies on `split` ("test" or "val") at `eval_angles` (None: each model's own);
    gate methods with hard gates, and also soft unless soft=False. stack=False: each model trains by itself
    with train.fit, one after another (the same data order; other float rounding). diverged: a run whose loss
    blows up raises ("raise"), or is marked in its Result.diverged_at ("mark", in a stack: a grid's setting).
    """
    seeds = check_seeds(seeds, distinct=False)  # a grid runs one seed with several settings
    check_limit(train_limit, "train", "train_limit")
    bases = list(bases)
    angles = ([check_angle(a) for a in angle_deg] if isinstance(angle_deg, (list, tuple))
              else [check_angle(angle_deg)] * len(bases))
    if not len(bases) == len(seeds) == len(angles):
        raise ValueError(f"give one base and one angle per seed: {len(bases)} bases, {len(angles)} angles, "
                         f"{len(seeds)} seeds")
    if configs is None:
        configs = [replace(config or PROTOCOL.config(method, {}, 0)[0], seed=s) for s in seeds]
    device = next(bases[0].parameters()).device
    models = []
    for base, seed in zip(bases, seeds):
        seed_everything(seed)  # LoRA's A matrices are drawn here
        models.append(apply_method(base, method, verbose=False, **method_kwargs))
    seconds, curves = [0.0] * len(models), [[] for _ in models]
    if get_method(method).attach is not None:  # a method that trains something
        data = {a: mode_data("train", a, device, limit=train_limit) for a in dict.fromkeys(angles)}
        vals = {"val": mode_data("val", angles[0], device)} if curve else None
        desc = f"{method} -> {angles[0]:g}° ({len(models)} model{'s' * (len(models) > 1)})"
        if stack:
            x, y = data[angles[0]] if len(data) == 1 else [torch.stack([data[a][k] for a in angles]) for k in (0, 1)]
            histories = fit_many(models, x, y, configs, vals, progress, desc=desc, diverged=diverged)
            del x, y
        else:
            histories = [fit(m, *data[a], c, vals, progress, desc=desc) for m, c, a in zip(models, configs, angles)]
        del data
        seconds = [h.seconds for h in histories]
        curves = [h.accuracy.get("val", []) for h in histories]
        blown = [h.diverged_at for h in histories]
    else:
        blown = [None] * len(models)
    out = []
    for model, c, angle, s, at in zip(models, curves, angles, seconds, blown):
        evals = {f"{a:g}": mode_data(split, a, device) for a in (eval_angles or (angle,))}
        soft_acc = {k: evaluate(model, *xy) for k, xy in evals.items()} if soft and gates_of(model) else {}
        with hardened(model):
            hard = {k: evaluate(model, *xy) for k, xy in evals.items()}
        out.append((model, Result(method, count_parameters(model)[0], hard, soft_acc, s, c, at)))
    return out


def specialise(base: FoundationMLP, method: str, angle_deg: float = 45.0, seed: int = 0,
               config: TrainConfig | None = None, eval_angles=(0.0, 45.0), progress: bool = True,
               train_limit: int | None = None, **method_kwargs):
    """Adapt a copy of `base` to one mode with `method`; evaluate on the full test set at `eval_angles`.

    It trains on the "train" images at `angle_deg`: all 50,000 of them, or the first `train_limit`.
    Without `config`, the protocol's budget with a learning rate of 1e-3 (`compare.protocol_config` gives
    the settings chosen on validation data).
    """
    return specialise_many([base], method, [check_seed(seed)], config, angle_deg=angle_deg, eval_angles=eval_angles,
                           progress=progress, train_limit=train_limit, **method_kwargs)[0]
