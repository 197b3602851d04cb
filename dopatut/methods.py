r"""Every way of adapting a frozen model, applied by name, to any PyTorch model.

    model = apply_method(foundation, "lora", rank=4)
    model = apply_method(vit, "lora", targets=["qkv", "proj"])
    model = apply_method(vit, "dopamine", targets=r"blocks\.\d+\.mlp\.act")

returns a copy of the model with all base weights frozen and only the method's own parameters trainable.
The model itself is never modified. `targets` (see dopatut.targets: a regular expression, a list of names, or
a module type) says where the method goes; by default:
    gates (dopamine, gain_only, threshold_only): every ReLU, GELU and SiLU module;
    lora: every nn.Linear and nn.Conv2d;   bitfit: every bias;   head: the module named "head".
The base stays the base in its BatchNorm statistics too: every method but full fine-tuning sets their momentum
to 0, so training (in train mode, normalising by batch statistics) leaves the running mean and variance as the
foundation had them, and a mode switched off is the foundation again.
"""
from __future__ import annotations

import copy

from torch import nn

from .checks import refuse_options
from .gate import GateSet, attach
from .lora import LORA_LAYERS, LoRAConfig
from .model import count_parameters, freeze
from .targets import find_targets, replace_module

METHODS = ("frozen", "dopamine", "gain_only", "threshold_only", "bitfit", "head", "lora", "full")
GATE_METHODS = ("dopamine", "gain_only", "threshold_only")
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
DESCRIPTIONS = {
    "frozen": "the foundation as it is, nothing trained",
    "dopamine": "a threshold and a gain per hidden neuron",
    "gain_only": "a gain per hidden neuron, thresholds fixed where the gate is open (0 on ReLU; IA3-style)",
    "threshold_only": "a threshold per hidden neuron, gains fixed at 1",
    "bitfit": "biases only",
    "head": "the output layer only",
    "lora": "low-rank deltas B A on every linear and convolutional layer (or the targets named)",
    "full": "every weight",
}


def linear_names(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]


def add_lora(model: nn.Module, config: LoRAConfig, targets=None) -> nn.Module:
    """Replace each target nn.Linear or nn.Conv2d (all of them by default) by its LoRA version, in place."""
    kinds = tuple(LORA_LAYERS)
    for name in find_targets(model, kinds if targets is None else targets, kinds, "LoRA layers"):
        layer = model.get_submodule(name)
        lora = next(lora for kind, lora in LORA_LAYERS.items() if isinstance(layer, kind))
        replace_module(model, name, lora(layer, config))
    return model


def _train_biases(model: nn.Module, targets) -> None:
    names = [""] if targets is None else find_targets(model, targets, (nn.Module,), "BitFit")
    for name in names:
        biases = [p for n, p in model.get_submodule(name).named_parameters() if n.endswith("bias")]
        if not biases:
            raise ValueError(f"BitFit target {name!r} has no bias")
        for p in biases:
            p.requires_grad_(True)


def _train_head(model: nn.Module, targets) -> None:
    if targets is None and not isinstance(getattr(model, "head", None), nn.Module):
        raise ValueError(f"{type(model).__name__} has no module named 'head'; name the output layer with targets=")
    for name in find_targets(model, ["head"] if targets is None else targets, (nn.Module,), "head-only tuning"):
        for p in model.get_submodule(name).parameters():
            p.requires_grad_(True)


def apply_method(foundation: nn.Module, method: str, *, targets=None, rank: int | None = None,
                 alpha: float | None = None, verbose: bool = True, **gate_kwargs) -> nn.Module:
    """A frozen copy of `foundation` with `method`'s parameters added and trainable.

    targets: where the method goes (all but frozen and full; defaults in the module's docstring).
    rank (default 4), alpha: LoRA only. gate_kwargs (temperature, ...): the gate methods only.
    An option given to a method it does not apply to is refused (TypeError), not silently ignored.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if method != "lora":
        refuse_options(method, "LoRA", rank=rank, alpha=alpha)
    if method in ("frozen", "full"):
        refuse_options(method, "the methods that act on part of a model (all but frozen and full)", targets=targets)
    if method not in GATE_METHODS:
        refuse_options(method, "the gate methods (dopamine, gain_only, threshold_only)", **gate_kwargs)
    model = freeze(copy.deepcopy(foundation))
    if method != "full":
        for norm in model.modules():
            if isinstance(norm, BATCH_NORMS):
                norm.momentum = 0.0  # running statistics stay the foundation's
    if method in GATE_METHODS:
        attach(model, GateSet.for_model(model, targets, learn_threshold=method != "gain_only",
                                        learn_gain=method != "threshold_only", **gate_kwargs))
    elif method == "bitfit":
        _train_biases(model, targets)
    elif method == "head":
        _train_head(model, targets)
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
