"""Specialisations for sweeps: many (method, angle, setting) runs, scored on the target angle only.

`adapt` is `pipeline.specialise` with the protocol's budget and the settings chosen on validation data
(`compare.protocol_config`), optionally on the first `train_limit` training images (rotated on the spot:
no full-split rotation), scored on the full test set of the target angle.
The share of a gap that a method recovers is

    recovered = (acc_method - acc_floor) / (acc_ceiling - acc_floor),

0 when the method does no better than the floor (e.g. the frozen foundation), 1 when it reaches the ceiling.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ..analysis.attribution import firing
from .search import protocol_config
from ..foundations.checks import check_seed
from ..foundations.device import resolve_device
from ..foundations.data import check_angle, check_limit, load_mnist, rotate, to_inputs
from ..foundations.model import FoundationMLP, MLPConfig, freeze
from ..methods.builtin import DopamineConfig
from .pipeline import Result, specialise, specialise_many
from ..training.stack import fit_many
from ..training.train import TrainConfig, seed_everything


def mixed_slice(angles, limit: int | None = None, seed: int = 0, device=None):
    """The first `limit` training images, each turned by one of `angles` drawn uniformly (seeded): inputs, labels
    and each image's mode index, as data.mixture("train", angles, seed=seed, limit=limit) gives them, without
    rotating the whole split."""
    check_seed(seed)
    check_limit(limit, "train")
    images, labels = load_mnist(verbose=False).split("train")
    images, labels = images[:limit].clone(), labels[:limit]
    # data.mixture's draw, so the same seed gives the same mixture (it rotates whole splits; this, only the slice)
    uniform = torch.full((len(angles),), 1.0 / len(angles))
    mode = torch.multinomial(uniform, len(labels), replacement=True, generator=torch.Generator().manual_seed(seed))
    for m, angle in enumerate(angles):
        images[mode == m] = rotate(images[mode == m], float(angle))
    device = resolve_device(device)  # None: device.default_device()
    return to_inputs(images).to(device), labels.to(device), mode.to(device)


def quick_foundation(hidden=(256, 256), seed: int = 0, angles=(0.0, 45.0), train_limit: int | None = 20_000,
                     epochs: int = 1, lr: float = 1e-3, device=None) -> FoundationMLP:
    """A small-budget foundation for sweeps (not cached): `epochs` over the first `train_limit` training
    images, each turned by one of `angles` drawn uniformly at random (seeded), on `device` (None: the reader's)."""
    check_limit(train_limit, "train", "train_limit")
    device = resolve_device(device)
    x, y, _ = mixed_slice(angles, train_limit, seed, device)
    seed_everything(seed)
    model = FoundationMLP(MLPConfig(hidden=tuple(hidden))).to(device)
    fit_many([model], x, y, TrainConfig(epochs=epochs, lr=lr, seed=seed), progress=False)
    return freeze(model)


def adapt(base: FoundationMLP, method: str, angle_deg: float = 45.0, seed: int = 0,
          config: TrainConfig | None = None, train_limit: int | None = None, kind: str = "mixture",
          **method_kwargs):
    """`pipeline.specialise` with the sweeps' defaults: the protocol's budget and the settings chosen for
    `method` on the `kind` foundation (unless `config` is given), no progress bar, and the test set of the
    target angle only. Returns (model, Result); gate methods are scored with hard gates."""
    check_seed(seed)
    check_limit(train_limit, "train", "train_limit")  # before protocol_config, which may train the grid
    if config is None:
        config, chosen = protocol_config(method, kind, seed)
        method_kwargs = {**chosen, **method_kwargs}
    return specialise(base, method, angle_deg, seed, config, eval_angles=(angle_deg,), progress=False,
                      train_limit=train_limit, **method_kwargs)


def adapt_angles(base: FoundationMLP, method: str, angles_deg, seed: int = 0,
                 kind: str = "mixture", train_limit: int | None = None
                 ) -> dict[float, tuple[FoundationMLP, Result]]:
    """`adapt` to every angle of `angles_deg` in one stacked run
    (`pipeline.specialise_many`): one copy of `base` per angle, each trained on its own
    angle's images, with the protocol's settings, scored at its angle.
    Returns angle -> (model, Result)."""
    check_seed(seed)
    check_limit(train_limit, "train", "train_limit")
    angles = [check_angle(a) for a in angles_deg]
    if not angles:
        raise ValueError("angles_deg must name at least one angle, got none")
    config, kwargs = protocol_config(method, kind, seed)
    pairs = specialise_many([base] * len(angles), method, [seed] * len(angles), config,
                            angle_deg=angles, eval_angles=None, progress=False,
                            train_limit=train_limit, **kwargs)
    return dict(zip(angles, pairs))


def recovered(acc: float, floor: float, ceiling: float) -> float:
    """Share of the gap from `floor` to `ceiling` that `acc` closes."""
    if not ceiling > floor:
        raise ValueError(f"ceiling must exceed floor, got floor={floor}, ceiling={ceiling}")
    return (acc - floor) / (ceiling - floor)


# ---------------------------------------------------------------- chapter 7's sweeps, cached (and shipped)
def _where(kind: str, seed: int, device) -> dict:
    from .pipeline import foundation_key
    from .search import FOUNDATIONS

    return foundation_key(FOUNDATIONS[kind], seed, device)


def _sweep_key(method: str, kind: str, seed: int, device, protocol=None, **more) -> dict:
    """What determines a sweep's runs: the foundation, the method's grid (named by its result, which fixes the
    choice), and the sweep's own settings."""
    from .protocol import PROTOCOL
    from .search import select_name

    protocol = protocol or PROTOCOL
    return {"foundation": _where(kind, seed, device), "grid": select_name(method, kind, protocol, device),
            "protocol": protocol.to_dict(), **more}


def angle_sweep(method: str, angles_deg, seed: int = 0, kind: str = "mixture", device=None,
                recompute: bool | None = None) -> dict[float, Result]:
    """`adapt_angles` on seed's `kind` foundation (pipeline.foundation): angle -> Result, scored at its angle.
    Cached (and shipped for chapter 7's sweeps: dopatut.foundations.bundle)."""
    from .pipeline import foundation
    from .result_cache import cached
    from .search import FOUNDATIONS, _spec

    check_seed(seed)
    _spec(kind)
    angles = [check_angle(a) for a in angles_deg]
    device = resolve_device(device)

    def compute():
        base = foundation(seed, FOUNDATIONS[kind], progress=False, device=device, recompute=recompute)
        return [asdict(r) for _, r in adapt_angles(base, method, angles, seed, kind).values()]
    rows = cached(f"sweep-angles-{kind}-{method}", _sweep_key(method, kind, seed, device, angles=angles), compute,
                  recompute)
    return {a: Result(**row) for a, row in zip(angles, rows)}


def _variant_key(method: str, changes: dict, seed: int, kind: str, angle_deg: float, device) -> dict:
    return _sweep_key(method, kind, seed, device, angle_deg=angle_deg,
                      changes={k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()})


def variant(method: str, changes: dict, seed: int = 0, kind: str = "upright", angle_deg: float = 45.0,
            device=None, recompute: bool | None = None) -> tuple[Result, float]:
    """`method` on seed's `kind` foundation with the protocol's chosen settings but for `changes` (to its
    TrainConfig, e.g. {"lr": 0.1}, or to its method's options, e.g. {"temperature": (1.0, 1.0)} or
    {"sparsity": 2.0} for the gates), scored at `angle_deg` on the test set: (Result, the share of hidden neurons
    firing there, hard gates). Cached (and shipped for chapter 7's)."""
    from dataclasses import fields, replace

    from .pipeline import foundation
    from .result_cache import cached
    from .search import FOUNDATIONS, _spec

    check_seed(seed)
    _spec(kind)
    angle_deg = check_angle(angle_deg)
    device = resolve_device(device)

    def compute():
        from ..foundations.data import mode_data

        base = foundation(seed, FOUNDATIONS[kind], progress=False, device=device, recompute=recompute)
        config, kwargs = protocol_config(method, kind, seed, device=device, recompute=recompute)
        training = {f.name for f in fields(TrainConfig)}
        config = replace(config, **{k: v for k, v in changes.items() if k in training})
        kwargs = {**kwargs, **{k: v for k, v in changes.items() if k not in training}}
        model, result = specialise(base, method, angle_deg, seed, config, (angle_deg,), False, **kwargs)
        return {"result": asdict(result), "firing": firing(model, mode_data("test", angle_deg, device)[0], per="model")}
    key = _variant_key(method, changes, seed, kind, angle_deg, device)
    value = cached(f"sweep-variant-{kind}-{method}", key, compute, recompute)
    return Result(**value["result"]), value["firing"]


@dataclass(frozen=True)
class LimitsSweeps:
    """Chapter 7's cached sweeps, on seed `seed`'s foundations: what the chapter reads and the bundle ships."""

    angles: tuple[float, ...] = (0, 15, 30, 45, 60, 75, 90)  # the mixture foundation adapted to each
    angle_methods: tuple[str, ...] = ("frozen", "dopamine", "lora")
    temperatures: tuple = ((1.0, 1.0), (0.1, 0.1), None)  # Dopamine on the upright one; None: the chosen annealing
    sparsities: tuple[float, ...] = (0.0, 0.5, 2.0, 10.0)  # ... and with each sparsity penalty
    seed: int = 0

    def variants(self, device=None) -> list[dict]:
        chosen = protocol_config("dopamine", "upright", self.seed, device=device)[1].get(
            "temperature", DopamineConfig().temperature)
        return ([{"temperature": chosen if t is None else t} for t in self.temperatures]
                + [{"sparsity": s} for s in self.sparsities])


LIMITS = LimitsSweeps()


def chapter_results(limits: LimitsSweeps = LIMITS, device="cpu") -> list[str]:
    """The names (results/...) of chapter 7's sweeps (dopatut.study.bundle_check ships them)."""
    from .result_cache import result_name

    device = resolve_device(device)
    names = [result_name(f"sweep-angles-mixture-{m}", _sweep_key(m, "mixture", limits.seed, device,
                                                                   angles=[float(a) for a in limits.angles]))
             for m in limits.angle_methods]
    names += [result_name("sweep-variant-upright-dopamine", _variant_key("dopamine", changes, limits.seed, "upright",
                                                                          45.0, device))
              for changes in limits.variants(device)]
    return [f"results/{name}" for name in names]


def run_chapter(limits: LimitsSweeps = LIMITS, device=None) -> None:
    """Every sweep chapter_results names, computed into the cache (scripts/make_bundle.py)."""
    for method in limits.angle_methods:
        angle_sweep(method, limits.angles, limits.seed, device=device)
    for changes in limits.variants(device):
        variant("dopamine", changes, limits.seed, "upright", device=device)


# Chapter 7's sentences: the words follow the numbers, so they stay true when the numbers move.

def width_gains(widths, accuracy: dict[str, list[float]], methods=("dopamine", "lora")) -> str:
    """One sentence: each method's gain over the frozen foundation at each width, in points, e.g.
    'Over the frozen foundation, Dopamine gains +2.2, +1.4 and +1.2 points at widths 64, 256 and 1024; LoRA (r = 4)
    +2.0, +1.6 and +1.1.' (`accuracy`: method -> one accuracy per width, as fractions, "frozen" included)."""
    from ..methods.names import display, listed

    frozen = accuracy["frozen"]
    gains = {m: listed([f"{100 * (a - f):+.1f}".replace("-", "−") for a, f in zip(accuracy[m], frozen)])
             for m in methods}
    first, *rest = methods
    where = listed([f"{w:g}" for w in widths])
    tail = "".join(f"; {display(m)} {gains[m]}" for m in rest)
    return f"Over the frozen foundation, {display(first)} gains {gains[first]} points at widths {where}{tail}."


def width_order(accuracy: dict[str, list[float]], lr: dict[str, float], epochs: int) -> str:
    """One sentence: which of Dopamine and LoRA leads at each width under the sweep's one-epoch shortcut, and
    why the order is not a result (`lr`: each method's chosen learning rate; `epochs`: the protocol's)."""
    ahead = [d >= l for d, l in zip(accuracy["dopamine"], accuracy["lora"])]
    if not any(ahead):
        return "LoRA leads at every width, as in chapter 5."
    why = (f"LoRA's chosen learning rate ({lr['lora']:g}, against Dopamine's {lr['dopamine']:g}) takes it less "
           "far in one short epoch" if lr["lora"] < lr["dopamine"] else
           "one short epoch favours whichever method moves fastest")
    what = ("Dopamine matches or edges LoRA at every width, the reverse of chapter 5's result" if all(ahead) else
            "which of Dopamine and LoRA leads changes with the width")
    return (f"Under this shortcut {what}, so do not read the order as a result: the settings were chosen for "
            f"{epochs} epochs on 50,000 images, and {why}.")


def shortcut_costs(full: dict[str, float], quick: dict[str, float]) -> str:
    """Two sentences for chapter 7's exercise 2: how many points the shortcut costs each method (`full` and
    `quick`: method -> accuracy, as fractions, in the order to name them), and whether the methods' order flips.
    Pass the accuracies as printed (rounded), so the points add up for the reader."""
    from ..methods.names import display, listed

    first, *rest = full
    costs = [f"{100 * (full[m] - quick[m]):.1f}" for m in full]
    cost = f"The shortcut costs {display(first)} {costs[0]} points" + "".join(
        f" and {display(m)} {c}" for m, c in zip(rest, costs[1:])) + "."

    def leader(acc):
        best = max(acc.values())
        return [m for m in acc if acc[m] == best]
    lead_full, lead_quick = leader(full), leader(quick)
    names = lambda ms: listed([display(m) for m in ms])
    if len(lead_full) > 1 or len(lead_quick) > 1:
        where = lambda ms: f"{names(ms)} leads" if len(ms) == 1 else f"{names(ms)} tie"
        order = (f"The order is not settled: at the full recipe {where(lead_full)}, under the shortcut "
                 f"{where(lead_quick)}.")
    elif lead_full == lead_quick:
        order = f"The order stays: {names(lead_full)} leads under both."
    else:
        order = (f"The order flips: {names(lead_full)} leads at the full recipe, {names(lead_quick)} under the "
                 "shortcut.")
    return f"{cost} {order}"


def anneal_words(gain: float, seed_std: float) -> str:
    """What annealing adds over a fixed low temperature (`gain`, one seed) set against Dopamine's seed-to-seed
    standard deviation `seed_std` (both fractions): within the spread, or more than it."""
    if abs(gain) <= seed_std:
        return (f"what annealing adds over a fixed T = 0.1 ({100 * gain:+.1f} points, one seed) is within "
                f"Dopamine's seed-to-seed spread on the upright foundation ({100 * seed_std:.1f} points)")
    return (f"annealing adds {100 * gain:+.1f} points over a fixed T = 0.1 (one seed), more than Dopamine's "
            f"seed-to-seed spread on the upright foundation ({100 * seed_std:.1f} points)")


def sparsity_words(lambdas, accuracy: list[float], firing_share: list[float], free_within: float = 0.005) -> str:
    """One sentence on the sparsity sweep (lambdas[0] must be 0): the largest λ whose accuracy stays within
    `free_within` of the unpenalised run, or what the smallest penalty costs if none does."""
    if lambdas[0] != 0:
        raise ValueError("sparsity_words: the first λ must be 0, the unpenalised run")
    free = [i for i in range(1, len(lambdas)) if accuracy[i] > accuracy[0] - free_within]
    if free:
        i = max(free)
        return (f"Up to λ = {lambdas[i]:g} silence is nearly free: {firing_share[i]:.0%} of the neurons fire, at "
                f"{accuracy[i]:.1%}")
    return (f"Even the smallest penalty, λ = {lambdas[1]:g}, costs {100 * (accuracy[0] - accuracy[1]):.1f} points "
            f"on this hard case")
