"""Every way of adapting the frozen foundation, applied by name.

    model = apply_method(foundation, "lora", rank=4)

returns a copy of the foundation with all base weights frozen and only the
method's own parameters trainable. The foundation itself is never modified.
"""
from __future__ import annotations

import copy

from torch import nn

from .checks import refuse_options
from .gate import GateSet, attach
from .lora import LoRAConfig, LoRALinear
from .model import FoundationMLP, count_parameters, freeze

METHODS = ("frozen", "dopamine", "gain_only", "threshold_only", "bitfit", "head", "lora", "full")
DESCRIPTIONS = {
    "frozen": "the foundation as it is, nothing trained",
    "dopamine": "a threshold and a gain per hidden neuron",
    "gain_only": "a gain per hidden neuron, thresholds fixed at 0 (IA3-style)",
    "threshold_only": "a threshold per hidden neuron, gains fixed at 1",
    "bitfit": "biases only",
    "head": "the output layer only",
    "lora": "low-rank deltas B A on every linear layer",
    "full": "every weight",
}


def linear_names(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]


def add_lora(model: nn.Module, config: LoRAConfig, targets=None) -> nn.Module:
    """Replace each target nn.Linear (all of them by default) by a LoRALinear, in place."""
    names = linear_names(model) if targets is None else list(targets)
    available = linear_names(model)
    unknown = [t for t in names if t not in available]
    if unknown:
        raise ValueError(f"unknown LoRA targets {unknown}; linear layers are {available}")
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(getattr(parent, child), config))
    return model


def apply_method(foundation: FoundationMLP, method: str, *, rank: int | None = None, alpha: float | None = None,
                 targets=None, verbose: bool = True, **gate_kwargs) -> FoundationMLP:
    """A frozen copy of `foundation` with `method`'s parameters added and trainable.

    rank (default 4), alpha, targets: LoRA only. gate_kwargs (temperature, ...): the gate methods only.
    An option given to a method it does not apply to is refused (TypeError), not silently ignored.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if method != "lora":
        refuse_options(method, "LoRA", rank=rank, alpha=alpha, targets=targets)
    model = freeze(copy.deepcopy(foundation))
    if method in ("dopamine", "gain_only", "threshold_only"):
        gates = GateSet.for_model(model, learn_threshold=method != "gain_only",
                                  learn_gain=method != "threshold_only", **gate_kwargs)
        attach(model, gates)
    else:
        refuse_options(method, "the gate methods (dopamine, gain_only, threshold_only)", **gate_kwargs)
    if method == "bitfit":
        for name, p in model.named_parameters():
            p.requires_grad_(name.endswith("bias"))
    elif method == "head":
        for p in model.head.parameters():
            p.requires_grad_(True)
    elif method == "lora":
        add_lora(model, LoRAConfig(rank=4 if rank is None else rank, alpha=alpha), targets)
    elif method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
    model.method = method
    if verbose:
        print(trainable_summary(model))
    return model


def trainable_summary(model: nn.Module) -> str:
    trainable, total = count_parameters(model)
    name = getattr(model, "method", type(model).__name__)
    return f"{name}: {trainable:,} trainable of {total:,} parameters ({100 * trainable / total:.2f}%)"
