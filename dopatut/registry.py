"""One registry of methods, in the manner of PEFT's `register_peft_method`: each method is defined once, here or
in a reader's own module, and everything else (apply_method, the protocol's grids, the FLOP count, the
comparison) reads it.

    from dopatut.registry import Method, register_method

    def attach_my_gates(model, options, context):      # put the method on a frozen copy, in place
        ...
    register_method(Method("my_gates", attach=attach_my_gates, display="my gates",
                           description="a gain on each neuron's drive", options=("targets",),
                           grid={"lr": (1e-2, 3e-2, 1e-1)}, flops="from_first"))

A registered method runs through the whole protocol by name: `compare.select("my_gates")`, `compare.compare(
methods=[..., "my_gates"])`, the paired intervals and the plots.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

FLOP_KINDS = ("none", "all", "from_first", "head", "lora")  # how perf.run_flops counts a run (see there)


class TrainingHook:
    """What a method does in the training loop besides the loss and Adam's step (as d2l's model owns its
    training_step): fit and fit_many call these and know nothing else about any method."""

    def before_step(self, model: nn.Module, progress: float, config) -> None:
        """Before each step; progress runs from 0 (the first step) to 1 (the last)."""

    def loss(self, model: nn.Module, loss, config):
        """The loss to minimise, given the cross-entropy of the step's forward pass."""
        return loss

    def end_of_epoch(self, template: nn.Module, models: list[nn.Module]) -> None:
        """fit_many trains a template: copy onto each model what the hook set on it (not its parameters)."""


@dataclass
class Context:
    """What an attach function may need besides the model and its options, and where it leaves notes."""
    example_input: object = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Method:
    """A way of adapting a frozen model.

    name: its code name (apply_method(model, name)); display: its name in prose ("gain-only").
    attach(model, options, context): puts the method on `model` (a frozen copy, BatchNorm already kept) in place;
        None for a method that trains nothing. options: the apply_method keywords it takes (others are refused).
    grid: the settings tried on validation data (axis -> values: "lr", and any option, e.g. "alpha");
        None where there is nothing to choose. fixed: options every protocol run gets (LoRA's rank).
    flops: how perf.run_flops counts one run: "none", "all" (every layer trained), "from_first" (the first
        layer's product precomputed, the rest forward and back to it), "head" (only the head trained), "lora".
    trains_everything: True for full fine-tuning (BatchNorm's statistics then move too).
    hook: what it does in the training loop (a TrainingHook), or None.
    builtin: True for dopatut's own eight (their cache keys are the method's name alone).
    """
    name: str
    display: str
    description: str
    attach: Callable[[nn.Module, dict, Context], None] | None
    options: tuple[str, ...] = ()
    grid: dict | None = None
    fixed: dict = field(default_factory=dict)
    flops: str = "all"
    trains_everything: bool = False
    hook: TrainingHook | None = None
    builtin: bool = False

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"a method's name must be an identifier such as 'my_gates', got {self.name!r}")
        if self.flops not in FLOP_KINDS:
            raise ValueError(f"method {self.name!r}: flops must be one of {', '.join(FLOP_KINDS)}, got {self.flops!r}")
        if self.grid is not None and (not isinstance(self.grid, dict) or "lr" not in self.grid):
            raise ValueError(f"method {self.name!r}: grid must be a dict with at least an 'lr' axis, or None; "
                             f"got {self.grid!r}")
        if self.attach is not None and not callable(self.attach):
            raise ValueError(f"method {self.name!r}: attach must be a function (model, options, context)")

    def fingerprint(self) -> dict:
        """What a cached result of this method depends on beyond its name (for a method registered by a reader)."""
        if self.builtin:
            return {}
        attach = self.attach
        return {"definition": {"attach": f"{attach.__module__}.{attach.__qualname__}" if attach else None,
                               "grid": self.grid, "fixed": self.fixed, "options": list(self.options)}}


_REGISTRY: dict[str, Method] = {}


def register_method(method: Method, replace: bool = False) -> Method:
    """Add `method` to the registry (replace=True to redefine one of the same name; dopatut's own cannot be)."""
    if not isinstance(method, Method):
        raise TypeError(f"register_method takes a dopatut.registry.Method, got {type(method).__name__}")
    old = _REGISTRY.get(method.name)
    if old is not None and (old.builtin or not replace):
        raise ValueError(f"a method named {method.name!r} is registered already"
                         + ("" if old.builtin else "; pass replace=True to redefine it"))
    _REGISTRY[method.name] = method
    return method


def get_method(name: str) -> Method:
    """The registered method `name`, or a ValueError that lists the registered ones."""
    if isinstance(name, str) and name in _REGISTRY:
        return _REGISTRY[name]
    raise ValueError(f"unknown method {name!r}; expected one of {', '.join(_REGISTRY)}")


def method_names(builtin_only: bool = False) -> tuple[str, ...]:
    return tuple(n for n, m in _REGISTRY.items() if m.builtin or not builtin_only)
