"""One fast training loop for every method: batches sliced from tensors, seeded, with progress bars."""
from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..foundations.checks import check_seed
from ..foundations.data import batches
from ..foundations.device import default_device  # noqa: F401  (re-exported: train.default_device)
from ..methods.builtin import hook_for


# Refused by name, with where they live: a method's own settings are in its config, not the loop's (issue 22).
RETIRED = {"temperature": "the gates' temperature schedule (start, end)", "sparsity": "the gates' sparsity penalty"}


@dataclass(frozen=True)
class TrainConfig:
    """What every method's training shares: the budget, Adam's settings and the seed. What is special to a method
    (the gates' temperature schedule and sparsity) is in its config: apply_method(base, "dopamine", temperature=...)."""
    epochs: int = 3
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    fused: bool = True  # one-kernel Adam where torch has it (CPU, CUDA): same update rule, faster steps

    def __new__(cls, *args, **kwargs):
        retired = [name for name in RETIRED if name in kwargs]
        if retired:
            name = retired[0]
            raise TypeError(f"TrainConfig has no {name} ({name}={kwargs[name]!r}): {RETIRED[name]} is the gate "
                            f"method's setting now; give it to the method: apply_method(base, \"dopamine\", "
                            f"{name}=...), specialise(..., {name}=...) or DopamineConfig({name}=...)")
        return super().__new__(cls)

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        check_seed(self.seed)
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not isinstance(self.fused, bool):
            raise ValueError(f"fused must be True or False, got {self.fused!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class History:
    loss: list[float] = field(default_factory=list)  # mean training loss per epoch
    accuracy: dict[str, list[float]] = field(default_factory=dict)  # per evaluation set, per epoch
    seconds: float = 0.0
    diverged_at: int | None = None  # the first step whose loss blew up (fit_many(..., diverged="mark"))

    def final(self, name: str) -> float:
        return self.accuracy[name][-1]


# A cross-entropy this far above chance (ln 10 = 2.3 nats) puts e^-1000 on the right class: the run blew up.
DIVERGED_LOSS = 1e3


class DivergedError(FloatingPointError):
    """A run whose loss stopped being a finite number (or passed DIVERGED_LOSS): named by its lr and the step."""


def blown(losses: torch.Tensor) -> torch.Tensor:
    return ~torch.isfinite(losses) | (losses > DIVERGED_LOSS)


def first_bad_step(step_losses: list[torch.Tensor], first_step: int) -> int | None:
    """The step of the first blown-up loss among an epoch's (read once, at the end of the epoch)."""
    bad = blown(torch.stack(step_losses)).nonzero()
    return None if len(bad) == 0 else first_step + int(bad[0, 0])


def diverged_message(step: int, total: int, lr: float, which: str = "") -> str:
    return (f"training{which} diverged: the loss was not finite, or above {DIVERGED_LOSS:g}, at step {step} of "
            f"{total} with lr {lr:g}; try a smaller learning rate")


def adam(params, lr: float, weight_decay: float = 0.0, fused: bool = True) -> torch.optim.Adam:
    """torch's Adam; fused into one kernel per step when asked and this torch supports it on the params' device.

    Fused and plain Adam apply the same update; they differ only in float rounding, so a run is
    reproducible with either, but the two give slightly different numbers.
    """
    params = list(params)
    if fused:
        try:
            return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
        except (RuntimeError, TypeError):  # an older torch, or a device without a fused Adam
            pass
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator for shuffling."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Logits in eval mode, in batches of `batch_size` (default: the model's `eval_batch_size`, else 10,000)."""
    batch_size = batch_size or getattr(model, "eval_batch_size", 10_000)
    device = _device_of(model, x)
    was_training = model.training
    model.eval()
    out = torch.cat([model(x[i:i + batch_size].to(device)) for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out


def _device_of(model: nn.Module, x: torch.Tensor) -> torch.device:
    """Where the model's parameters are (inputs elsewhere, e.g. CPU tensors for a GPU model, are moved there)."""
    param = next(model.parameters(), None)
    return x.device if param is None else param.device


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int | None = None) -> float:
    """Accuracy in [0, 1]; x and y may sit on another device than the model (each batch is moved to it)."""
    logits = predict_logits(model, x, batch_size)
    return (logits.argmax(1) == y.to(logits.device)).float().mean().item()


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: TrainConfig = TrainConfig(),
        eval_sets: dict | None = None, progress: bool = True, desc: str | None = None) -> History:
    """Train the trainable parameters of `model` on (x, y) with Adam and cross-entropy.

    eval_sets: name -> (x, y), evaluated after every epoch. What a method does besides (the gates' annealing
    and sparsity penalty, set in their config) is its training hook's (dopatut.methods.registry.TrainingHook).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters; apply a method first (e.g. apply_method(base, 'dopamine'))")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    eval_sets = eval_sets or {}
    generator = seed_everything(config.seed)
    optimizer = adam(params, config.lr, config.weight_decay, config.fused)
    hook = hook_for(model)  # what the method does at each step (the gates' annealing); the loop knows no method
    steps_per_epoch = -(-len(x) // config.batch_size)
    total = config.epochs * steps_per_epoch
    history = History(accuracy={name: [] for name in eval_sets})
    start, step = time.perf_counter(), 0
    bar = tqdm(total=total, desc=desc or getattr(model, "method", "training"), disable=not progress, leave=True)
    model.train()
    for _ in range(config.epochs):
        loss_sum = torch.zeros((), device=x.device)  # summed on the device: no sync per step
        step_losses, first_step = [], step
        for xb, yb in batches(x, y, config.batch_size, generator):
            if hook:
                hook.before_step(model, step / max(total - 1, 1), config)
            loss = F.cross_entropy(model(xb), yb)
            if hook:
                loss = hook.loss(model, loss, config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            step_losses.append(loss.detach())
            step += 1
            bar.update(1)
        history.loss.append(loss_sum.item() / steps_per_epoch)
        bad = first_bad_step(step_losses, first_step)
        if bad is not None:
            bar.close()
            raise DivergedError(diverged_message(bad, total, config.lr))
        for name, (xe, ye) in eval_sets.items():
            history.accuracy[name].append(evaluate(model, xe, ye))
        bar.set_postfix(loss=f"{history.loss[-1]:.3f}",
                        **{name: f"{acc[-1]:.2%}" for name, acc in history.accuracy.items()})
    bar.close()
    history.seconds = time.perf_counter() - start
    return history
