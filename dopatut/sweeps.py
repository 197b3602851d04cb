"""Specialisations for sweeps: many (method, angle, setting) runs, scored on the target angle only.

`adapt` is `pipeline.specialise` with the protocol's budget and the settings chosen on validation data
(`compare.protocol_config`), optionally on the first `train_limit` training images (rotated on the spot:
no full-split rotation), scored on the full test set of the target angle.
The share of a gap that a method recovers is

    recovered = (acc_method - acc_floor) / (acc_ceiling - acc_floor),

0 when the method does no better than the floor (e.g. the frozen foundation), 1 when it reaches the ceiling.
"""
from __future__ import annotations

import torch

from .compare import protocol_config
from .checks import check_seed
from .device import resolve_device
from .data import check_angle, check_limit, load_mnist, rotate, to_inputs
from .model import FoundationMLP, MLPConfig, freeze
from .pipeline import Result, specialise, specialise_many
from .stack import fit_many
from .train import TrainConfig, seed_everything


def mixed_slice(angles, limit: int | None = None, seed: int = 0, device=None):
    """The first `limit` training images, each turned by one of `angles` drawn uniformly (seeded):
    inputs, labels and each image's mode index. Like data.mixture, without rotating the whole split."""
    check_seed(seed)
    check_limit(limit, "train")
    images, labels = load_mnist(verbose=False).split("train")
    images, labels = images[:limit].clone(), labels[:limit]
    mode = torch.randint(len(angles), (len(labels),), generator=torch.Generator().manual_seed(seed))
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


def adapt_angles(base: FoundationMLP, method: str, angles_deg, seed: int = 0, kind: str = "mixture",
                 train_limit: int | None = None) -> dict[float, tuple[FoundationMLP, Result]]:
    """`adapt` to every angle of `angles_deg` in one stacked run (`pipeline.specialise_many`): one copy of `base`
    per angle, each trained on its own angle's images, with the protocol's settings, scored at its angle.
    Returns angle -> (model, Result)."""
    check_seed(seed)
    check_limit(train_limit, "train", "train_limit")
    angles = [check_angle(a) for a in angles_deg]
    if not angles:
        raise ValueError("angles_deg must name at least one angle, got none")
    config, kwargs = protocol_config(method, kind, seed)
    pairs = specialise_many([base] * len(angles), method, [seed] * len(angles), config, angles, eval_angles=None,
                            progress=False, train_limit=train_limit, **kwargs)
    return dict(zip(angles, pairs))


def recovered(acc: float, floor: float, ceiling: float) -> float:
    """Share of the gap from `floor` to `ceiling` that `acc` closes."""
    if not ceiling > floor:
        raise ValueError(f"ceiling must exceed floor, got floor={floor}, ceiling={ceiling}")
    return (acc - floor) / (ceiling - floor)

