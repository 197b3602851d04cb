"""The experiment in three calls: a cached foundation, a specialisation, a whole seed.

    base = foundation(seed=0)                         # trained once, then loaded from disk
    model, result = specialise(base, "dopamine", angle_deg=45, seed=0)
    results = run_seed(0)                             # every method, both modes
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .data import mixture, mode_data
from .gate import gates_of, hardened
from .methods import apply_method
from .model import FoundationMLP, MLPConfig, base_state_dict, count_parameters, freeze
from .train import TrainConfig, evaluate, fit, seed_everything

GATE_METHODS = ("dopamine", "gain_only", "threshold_only")


@dataclass(frozen=True)
class FoundationSpec:
    """Everything that determines a foundation, apart from the seed."""

    model: MLPConfig = MLPConfig()
    angles: tuple[float, ...] = (0.0, 45.0)
    weights: tuple[float, ...] | None = None  # None: equal proportions
    train: TrainConfig = TrainConfig(epochs=3, lr=1e-3)

    def to_dict(self, seed: int) -> dict:
        return {"model": self.model.to_dict(), "angles": [float(a) for a in self.angles],
                "weights": None if self.weights is None else [float(w) for w in self.weights],
                "train": replace(self.train, seed=seed).to_dict()}


def cache_dir() -> Path:
    """$DOPATUT_CACHE, else ~/.cache/dopatut."""
    return Path(os.environ.get("DOPATUT_CACHE", Path.home() / ".cache" / "dopatut"))


def foundation_path(spec: FoundationSpec, seed: int) -> Path:
    key = hashlib.sha256(json.dumps(spec.to_dict(seed), sort_keys=True).encode()).hexdigest()[:10]
    widths = "x".join(map(str, spec.model.hidden))
    angles = "_".join(f"{a:g}" for a in spec.angles)
    return cache_dir() / f"foundation-h{widths}-a{angles}-s{seed}-{key}.pt"


def foundation(seed: int = 0, spec: FoundationSpec = FoundationSpec(), cache: bool = True,
               progress: bool = True, device="cpu") -> FoundationMLP:
    """The frozen foundation for (spec, seed): loaded from the cache if there, else trained and cached.

    The returned model carries `.meta` with its test accuracy at each training angle.
    """
    path = foundation_path(spec, seed)
    model = FoundationMLP(spec.model)
    if cache and path.exists():
        try:
            payload = load_checkpoint(path, "foundation", spec.to_dict(seed),
                                      {k: v.shape for k, v in model.state_dict().items()})
            model.load_state_dict(payload["state"])
            model.meta = payload["meta"]
            if progress:
                print(f"foundation (seed {seed}): loaded from {path}")
            return freeze(model.to(device))
        except CheckpointError as err:
            print(f"cached foundation unusable, retraining: {err}")
    x, y, _ = mixture("train", spec.angles, spec.weights, seed=seed, device=device)
    tests = {f"{a:g}": mode_data("test", a, device) for a in spec.angles}
    seed_everything(seed)
    model = FoundationMLP(spec.model).to(device)
    history = fit(model, x, y, replace(spec.train, seed=seed), tests, progress, desc=f"foundation (seed {seed})")
    model.meta = {"accuracy": {k: v[-1] for k, v in history.accuracy.items()}, "loss": history.loss,
                  "curves": history.accuracy, "seconds": history.seconds}
    if cache:
        save_checkpoint(path, base_state_dict(model), "foundation", spec.to_dict(seed), model.meta)
    return freeze(model)


def recommended_config(method: str, seed: int = 0, epochs: int = 3) -> TrainConfig:
    """Learning rates that suit each method: gates and biases move with a larger step than weights."""
    lr = 1e-2 if method in (*GATE_METHODS, "bitfit") else 1e-3
    return TrainConfig(epochs=epochs, lr=lr, seed=seed)


@dataclass
class Result:
    method: str
    n_trainable: int
    accuracy: dict[str, float]  # angle -> test accuracy; hard gates for gate methods
    soft_accuracy: dict[str, float] = field(default_factory=dict)  # gate methods only
    seconds: float = 0.0


def specialise(base: FoundationMLP, method: str, angle_deg: float = 45.0, seed: int = 0,
               config: TrainConfig | None = None, eval_angles=(0.0, 45.0), progress: bool = True,
               train_limit: int | None = None, **method_kwargs):
    """Adapt a copy of `base` to one mode with `method`; evaluate on the full test set at `eval_angles`.

    It trains on the training images at `angle_deg`: all of them, or the first `train_limit`.
    """
    config = config or recommended_config(method, seed)
    device = next(base.parameters()).device
    tests = {f"{a:g}": mode_data("test", a, device) for a in eval_angles}
    seed_everything(seed)  # LoRA's A matrices are drawn here
    model = apply_method(base, method, verbose=False, **method_kwargs)
    seconds = 0.0
    if method != "frozen":
        x, y = mode_data("train", angle_deg, device, limit=train_limit)
        seconds = fit(model, x, y, replace(config, seed=seed), progress=progress,
                      desc=f"{method} -> {angle_deg:g}° (seed {seed})").seconds
    soft = {k: evaluate(model, *xy) for k, xy in tests.items()} if gates_of(model) else {}
    with hardened(model):
        hard = {k: evaluate(model, *xy) for k, xy in tests.items()}
    return model, Result(method, count_parameters(model)[0], hard, soft, seconds)


def run_seed(seed: int, methods=("frozen", "dopamine", "lora"), angle_deg: float = 45.0,
             spec: FoundationSpec = FoundationSpec(), lora_rank: int = 4, epochs: int = 3,
             progress: bool = True) -> dict[str, Result]:
    """One seed of the whole pipeline: the foundation, then each method specialised to `angle_deg` for `epochs`."""
    base = foundation(seed, spec, progress=progress)
    eval_angles = tuple(sorted({*spec.angles, float(angle_deg)}))
    return {m: specialise(base, m, angle_deg, seed, recommended_config(m, seed, epochs), eval_angles, progress,
                          **({"rank": lora_rank} if m == "lora" else {}))[1] for m in methods}
