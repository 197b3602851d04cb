"""Where gates go, read from the model running: one place per call of an activation module, its width from the drive.

A gate's width is the number of neurons its activation receives, and the only sure way to know it is to look:
`probe(model, names)` runs one forward pass on an example input (no gradients, eval mode, the global random
state untouched) and records, for every call of every named module, the shape of its input z. A module called
twice (torchvision's ResNet block calls one `relu` after each convolution) gives two places, "layer1.0.relu[0]"
and "layer1.0.relu[1]", each with a gate of its own; a module called once gives one, named as the module.

The neurons' axis: where z was made by a convolution or a channel norm (BatchNorm, GroupNorm, InstanceNorm),
channels lie on axis 1 of (N, C, ...); where it was made by a Linear (or anything else that computes features
last: a transformers Conv1D, a LayerNorm), on the last axis. Where no module made z (a sum written in forward),
a 4- or 5-dimensional z is taken as (N, C, H, W[, D]) and anything else as features last.

The example input: `example_input=` if given; else the model's own `example_input()` (dopatut's models have one);
a transformers model's `dummy_inputs` (text) or pixel_values of its config's image size; timm's and torchvision's
image size; else a batch for the first layer (Linear: (2, in_features); Conv2d: (2, C, 32, 32)).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .activations import activation_classes

CHANNELS_FIRST = (nn.modules.conv._ConvNd, nn.modules.batchnorm._NormBase, nn.GroupNorm)
FUNCTIONAL = {"relu", "relu_", "relu6", "gelu", "silu", "mish", "hardswish", "elu", "selu", "celu",
              "leaky_relu", "softplus"}  # torch and torch.nn.functional names of activations written as calls


@dataclass(frozen=True)
class Place:
    """One call of an activation module: the gate that goes there has `width` neurons on axis `axis` of z."""
    module: str
    call: int  # 0, 1, ... in the order the calls run
    calls: int  # how many times the module runs per forward
    width: int
    axis: int  # -1 (features last) or 1 (channels of N, C, ...)
    activation: str  # the class name of the activation module

    @property
    def key(self) -> str:
        return self.module if self.calls == 1 else f"{self.module}[{self.call}]"

    def describe(self) -> dict:
        return {"module": self.module, "call": self.call, "calls": self.calls, "width": self.width,
                "axis": self.axis, "activation": self.activation}


def split_key(key: str) -> tuple[str, int | None]:
    """"layer1.0.relu[1]" -> ("layer1.0.relu", 1); "hidden.hidden1.act" -> ("hidden.hidden1.act", None)."""
    if key.endswith("]") and "[" in key:
        name, _, index = key[:-1].rpartition("[")
        if index.isdigit():
            return name, int(index)
    return key, None


def example_input(model: nn.Module):
    """An input `model` accepts, made without touching the global random state (see the module's docstring)."""
    own = getattr(model, "example_input", None)
    if callable(own):
        return own()
    config = getattr(model, "config", None)
    if hasattr(model, "main_input_name") and config is not None:  # a transformers model
        if model.main_input_name == "pixel_values":
            size = getattr(config, "image_size", 224)
            size = (size, size) if isinstance(size, int) else tuple(size)
            return {"pixel_values": torch.zeros(2, getattr(config, "num_channels", 3), *size)}
        dummy = getattr(model, "dummy_inputs", None)
        if isinstance(dummy, dict) and dummy:
            vocab = getattr(config, "vocab_size", None)
            return {k: v % vocab if vocab and k == "input_ids" else v for k, v in dummy.items()}
    for module in model.modules():  # timm's patch_embed.img_size, torchvision's VisionTransformer.image_size
        size = getattr(module, "img_size", None) or getattr(module, "image_size", None)
        if isinstance(size, int) or (isinstance(size, (tuple, list)) and len(size) == 2):
            size = (size, size) if isinstance(size, int) else tuple(size)
            return torch.zeros(2, _first(model).in_channels, *size)
    first = _first(model)
    if isinstance(first, nn.Linear):
        return torch.zeros(2, first.in_features)
    if isinstance(first, nn.Conv2d):
        return torch.zeros(2, first.in_channels, 32, 32)
    raise ValueError(f"cannot make an example input for {type(model).__name__} (its first layer is "
                     f"{type(first).__name__}); pass one: example_input=torch.zeros(...) or a dict of inputs")


def _first(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.Embedding)):
            return module
    raise ValueError(f"cannot make an example input for {type(model).__name__}: it has no Linear, Conv2d or "
                     f"Embedding layer; pass one: example_input=torch.zeros(...)")


def _on_device(example, model: nn.Module):
    param = next(model.parameters(), None)
    if param is None:
        return example
    move = lambda t: t.to(param.device) if isinstance(t, torch.Tensor) else t  # noqa: E731
    if isinstance(example, dict):
        return {k: move(v) for k, v in example.items()}
    if isinstance(example, (tuple, list)):
        return type(example)(move(t) for t in example)
    return move(example)


def run(model: nn.Module, example):
    """model(example), with a dict as keyword arguments and a tuple as positional ones."""
    example = _on_device(example, model)
    if isinstance(example, dict):
        return model(**example)
    if isinstance(example, tuple):
        return model(*example)
    return model(example)


class _Functional(TorchFunctionMode):
    """Records activations computed as function calls outside any activation module."""

    def __init__(self, stack: list):
        super().__init__()
        self.stack, self.found = stack, []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in FUNCTIONAL and not any(inside for _, inside in self.stack):
            where = self.stack[-1][0] if self.stack else ""
            self.found.append((where, name))
        return func(*args, **(kwargs or {}))


@dataclass
class Probe:
    places: dict[str, list[Place]]  # module name -> its places, in call order (empty: it did not run)
    functional: list[tuple[str, str]]  # (module name it ran in, function name) of activations written as calls
    linears: list[str]  # the nn.Linear modules in the order they ran
    shape_changes: dict[str, tuple]  # module name -> (input shape, output shape) where they differ


@torch.no_grad()
def probe(model: nn.Module, names, example=None, functional: bool = False) -> Probe:
    """Run `model` once on `example` (default: `example_input(model)`) and record the places of `names`;
    functional=True also records activations computed as function calls (slower: every torch call is seen).
    A wrapper that names the activation it wraps (`wrapped_activation`, as a gated activation does) counts as that
    activation; the caller decides whether its own computation runs (dopatut.methods.gate.passthrough)."""
    names = list(names)
    example = example_input(model) if example is None else example
    made_by: dict[int, nn.Module] = {}
    keep, stack = [], []
    calls: dict[str, list] = {name: [] for name in names}
    linears, changes = [], {}
    acts = activation_classes()
    modules = dict(model.named_modules())

    def pre(name, module):
        def hook(mod, args):
            stack.append((name, isinstance(getattr(mod, "wrapped_activation", mod), acts)))
            if name in calls and args and isinstance(args[0], torch.Tensor):
                z = args[0]
                calls[name].append((tuple(z.shape), made_by.get(id(z)), z.dim()))
        return hook

    def post(name):
        def hook(mod, args, out):
            stack.pop()
            if isinstance(out, torch.Tensor):
                passed = args and out is args[0]  # a module that returns its input (Dropout, Identity) made nothing
                if not passed:
                    made_by[id(out)] = mod
                    keep.append(out)  # alive, so that no later tensor reuses its id
                if name in calls and args and isinstance(args[0], torch.Tensor) and out.shape != args[0].shape:
                    changes[name] = (tuple(args[0].shape), tuple(out.shape))
            if isinstance(mod, nn.Linear):
                linears.append(name)
        return hook

    handles = []
    for name, module in modules.items():
        if name:
            handles.append(module.register_forward_pre_hook(pre(name, module)))
            handles.append(module.register_forward_hook(post(name)))
    was = {m: m.training for m in model.modules()}
    model.eval()
    mode = _Functional(stack)
    try:
        with mode if functional else nullcontext():
            run(model, example)
    finally:
        for h in handles:
            h.remove()
        for m, training in was.items():
            m.training = training
    places = {}
    for name, seen in calls.items():
        act = getattr(modules[name], "wrapped_activation", modules[name])
        places[name] = [Place(name, i, len(seen), shape[_axis(maker, dim)], _axis(maker, dim), type(act).__name__)
                        for i, (shape, maker, dim) in enumerate(seen)]
    return Probe(places, mode.found, linears, changes)


def _axis(maker: nn.Module | None, dim: int) -> int:
    if maker is not None:
        return 1 if isinstance(maker, CHANNELS_FIRST) or "BatchNorm" in type(maker).__name__ else -1
    return 1 if dim in (4, 5) else -1
