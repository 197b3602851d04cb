"""Quick specialisations for sweeps: many (method, angle, setting) runs on a slice of the data.

`adapt` is `pipeline.specialise` with one epoch, on the first `train_limit` training images
(rotated on the spot: no full-split rotation), scored on the full test set of the target angle.
The share of a gap that a method recovers is

    recovered = (acc_method - acc_floor) / (acc_ceiling - acc_floor),

0 when the method does no better than the floor (e.g. the frozen foundation), 1 when it reaches the ceiling.
"""
from __future__ import annotations

import torch

from .attribution import firing_fraction
from .data import load_mnist, rotate, to_inputs
from .gate import hardened
from .model import FoundationMLP, MLPConfig, freeze
from .pipeline import recommended_config, specialise
from .train import TrainConfig, fit, seed_everything


def mixed_slice(angles, limit: int | None = None, seed: int = 0, device="cpu"):
    """The first `limit` training images, each turned by one of `angles` drawn uniformly (seeded):
    inputs, labels and each image's mode index. Like data.mixture, without rotating the whole split."""
    mnist = load_mnist(verbose=False)
    images, labels = mnist.train_images[:limit].clone(), mnist.train_labels[:limit]
    mode = torch.randint(len(angles), (len(labels),), generator=torch.Generator().manual_seed(seed))
    for m, angle in enumerate(angles):
        images[mode == m] = rotate(images[mode == m], float(angle))
    return to_inputs(images).to(device), labels.to(device), mode.to(device)


def quick_foundation(hidden=(256, 256), seed: int = 0, angles=(0.0, 45.0), train_limit: int | None = 20_000,
                     epochs: int = 1, lr: float = 1e-3) -> FoundationMLP:
    """A small-budget foundation for sweeps (not cached): `epochs` over the first `train_limit` training
    images, each turned by one of `angles` drawn uniformly at random (seeded)."""
    x, y, _ = mixed_slice(angles, train_limit, seed)
    seed_everything(seed)
    model = FoundationMLP(MLPConfig(hidden=tuple(hidden)))
    fit(model, x, y, TrainConfig(epochs=epochs, lr=lr, seed=seed), progress=False)
    return freeze(model)


def adapt(base: FoundationMLP, method: str, angle_deg: float = 45.0, seed: int = 0,
          config: TrainConfig | None = None, train_limit: int | None = None, **method_kwargs):
    """`pipeline.specialise` with the sweeps' defaults: one epoch, no progress bar, and the test set
    of the target angle only. Returns (model, Result); gate methods are scored with hard gates."""
    config = config or recommended_config(method, seed, epochs=1)
    return specialise(base, method, angle_deg, seed, config, eval_angles=(angle_deg,), progress=False,
                      train_limit=train_limit, **method_kwargs)


def recovered(acc: float, floor: float, ceiling: float) -> float:
    """Share of the gap from `floor` to `ceiling` that `acc` closes."""
    if not ceiling > floor:
        raise ValueError(f"ceiling must exceed floor, got floor={floor}, ceiling={ceiling}")
    return (acc - floor) / (ceiling - floor)


def firing(model: FoundationMLP, x: torch.Tensor) -> float:
    """Mean fraction of hidden neurons with a non-zero output, hard gates, averaged over inputs and layers."""
    with hardened(model):
        fractions = firing_fraction(model, x)
    return torch.stack([f.mean() for f in fractions.values()]).mean().item()
