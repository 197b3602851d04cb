"""One registry of methods, in the manner of PEFT's `register_peft_method`: each method is defined once, here or
in a reader's own module, with the config class that holds its settings (as PEFT's `LoraConfig`), and everything
else (apply_method, the protocol's grids, the FLOP count, the comparison, save_pretrained) reads it.

    from dataclasses import dataclass
    from dopatut.methods.registry import Method, MethodConfig, check_target_modules, register_method

    @dataclass(frozen=True)
    class MyGatesConfig(MethodConfig):
        target_modules: object = None                   # PEFT's name; apply_method also takes targets=
        gain_init: float = 1.0

        def __post_init__(self):                        # checked when made, naming the field and the value
            check_target_modules(self)
            ...

    def attach_my_gates(model, config, context):        # put the method on a frozen copy, in place
        ...
    register_method(Method("my_gates", attach=attach_my_gates, display="my gates", config_cls=MyGatesConfig,
                           description="a gain on each neuron's drive", grid={"lr": (1e-2, 3e-2, 1e-1)},
                           flops="from_first"))

    apply_method(model, MyGatesConfig(target_modules=["act"]))   # as PEFT's get_peft_model(model, config)
    apply_method(model, "my_gates", targets=["act"])             # the same model, the config built from keywords

The method's `options` (the keywords apply_method takes) are its config's fields, with target_modules also
called targets. A method registered without a config class takes the `options` it names, as a dict.

A registered method runs through the whole protocol by name: `compare.select("my_gates")`, `compare.compare(
methods=[..., "my_gates"])`, the paired intervals and the plots.
"""
from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, field, fields
from typing import Callable

from torch import nn

FLOP_KINDS = ("none", "all", "from_first", "head", "lora")  # how perf.run_flops counts a run (see there)


class TrainingHook:
    """What a method does in the training loop besides the loss and Adam's step (as d2l's model owns its
    training_step): fit and fit_many call these and know nothing else about any method. The hook reads its
    settings from the model (its method config, model.method_config), not from the TrainConfig."""

    def settings(self, model: nn.Module):
        """What the hook reads from `model` (its method's settings; None: nothing). fit_many trains a stack through
        one template, so it refuses a stack whose models give different settings."""
        return None

    def before_step(self, model: nn.Module, progress: float, config) -> None:
        """Before each step; progress runs from 0 (the first step) to 1 (the last)."""

    def loss(self, model: nn.Module, loss, config):
        """The loss to minimise, given the cross-entropy of the step's forward pass."""
        return loss

    def end_of_epoch(self, template: nn.Module, models: list[nn.Module]) -> None:
        """fit_many trains a template: copy onto each model what the hook set on it (not its parameters)."""


@dataclass(frozen=True)
class MethodConfig:
    """A method's settings, as PEFT's `PeftConfig`: a frozen dataclass whose subclass checks its own fields in
    `__post_init__`, naming the field, the bad value and what was expected. `target_modules` (where a method has
    one) is what apply_method also takes as `targets`: see dopatut.methods.targets."""

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """The apply_method keywords this config takes: its fields, target_modules first and named targets."""
        names = cls.field_names()
        return (("targets",) if "target_modules" in names else ()) + tuple(n for n in names if n != "target_modules")

    @classmethod
    def from_options(cls, options: dict) -> "MethodConfig":
        """The config of apply_method's keywords (targets is target_modules; None means the default)."""
        options = {k: v for k, v in options.items() if v is not None}
        if "targets" in options:
            if "target_modules" in options:
                raise TypeError(f"{cls.__name__}: give targets or target_modules (the same field), not both; got "
                                f"targets={options['targets']!r} and target_modules={options['target_modules']!r}")
            options["target_modules"] = options.pop("targets")
        return cls(**options)

    def options(self) -> dict:
        """The fields that differ from their defaults, as apply_method's keywords (targets for target_modules)."""
        return {("targets" if f.name == "target_modules" else f.name): getattr(self, f.name) for f in fields(self)
                if f.default is MISSING or getattr(self, f.name) != f.default}

    def to_dict(self) -> dict:
        """Every field, as JSON writes it (a tuple as a list); a ValueError where a field cannot be written."""
        out = {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}
        try:
            json.dumps(out)
        except TypeError:
            raise ValueError(f"{type(self).__name__} ({self}) cannot be written as JSON: give targets as a list of "
                             f"names or a pattern (target_modules; a type or a predicate cannot be saved)") from None
        return out

    @classmethod
    def from_dict(cls, data: dict, where: str = "") -> "MethodConfig":
        """The config `to_dict` wrote; an unknown field, or a value its check refuses, is a ValueError naming it."""
        where = where or cls.__name__
        if not isinstance(data, dict):
            raise ValueError(f"{where}: a {cls.__name__} is a JSON object of its fields, got {data!r}")
        unknown = sorted(set(data) - set(cls.field_names()))
        if unknown:
            raise ValueError(f"{where}: {cls.__name__} has no field {', '.join(map(repr, unknown))}; its fields are "
                             f"{', '.join(cls.field_names()) or 'none'}. Save the adapter again with this dopatut")
        try:
            return cls(**data)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: {err}") from None


def check_target_modules(config: MethodConfig) -> None:
    """A ValueError unless config.target_modules is None or one of the forms dopatut.methods.targets reads."""
    value = config.target_modules
    names = isinstance(value, (list, tuple)) and value and all(isinstance(t, str) for t in value)
    types = isinstance(value, type) or (isinstance(value, tuple) and value and all(isinstance(t, type) for t in value))
    if value is None or (isinstance(value, str) and value) or names or types or callable(value):
        return
    if value == "":
        raise ValueError(f"{type(config).__name__}.target_modules is an empty pattern, which would match every "
                         "module; give a regular expression such as 'mlp' or None for the method's default places")
    raise ValueError(f"{type(config).__name__}.target_modules must be None (the method's default places), a regular "
                     f"expression (str), a non-empty list of module names, a module type or a predicate "
                     f"(name, module) -> bool; got {value!r}")


@dataclass
class Context:
    """What an attach function may need besides the model and its options, and where it leaves notes."""
    example_input: object = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Method:
    """A way of adapting a frozen model.

    name: its code name (apply_method(model, name)); display: its name in prose ("gain-only").
    attach(model, config, context): puts the method on `model` (a frozen copy, BatchNorm already kept) in place;
        None for a method that trains nothing. config: an instance of config_cls (a dict of its options for a
        method registered without one).
    config_cls: the method's MethodConfig subclass (one class per method: apply_method(model, config) finds the
        method by its config's class). options: the apply_method keywords it takes (others are refused); by
        default its config's fields (target_modules also as targets).
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
    attach: Callable[[nn.Module, object, Context], None] | None
    options: tuple[str, ...] = ()
    grid: dict | None = None
    fixed: dict = field(default_factory=dict)
    flops: str = "all"
    trains_everything: bool = False
    hook: TrainingHook | None = None
    builtin: bool = False
    config_cls: type | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"a method's name must be an identifier such as 'my_gates', got {self.name!r}")
        if self.config_cls is not None:
            if not (isinstance(self.config_cls, type) and issubclass(self.config_cls, MethodConfig)):
                raise ValueError(f"method {self.name!r}: config_cls must be a subclass of "
                                 f"dopatut.methods.registry.MethodConfig (a frozen dataclass), got {self.config_cls!r}")
            derived = self.config_cls.option_names()
            if self.options and tuple(self.options) != derived:
                raise ValueError(f"method {self.name!r}: options {self.options} are not its config's fields "
                                 f"{derived}; leave options out, they are read from {self.config_cls.__name__}")
            object.__setattr__(self, "options", derived)
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
        attach, config = self.attach, self.config_cls
        definition = {"attach": f"{attach.__module__}.{attach.__qualname__}" if attach else None,
                      "grid": self.grid, "fixed": self.fixed, "options": list(self.options)}
        if config is not None:  # named only where there is one, so a method registered without keeps its key
            definition["config"] = f"{config.__module__}.{config.__qualname__}"
        return {"definition": definition}


_REGISTRY: dict[str, Method] = {}


def register_method(method: Method, replace: bool = False) -> Method:
    """Add `method` to the registry (replace=True to redefine one of the same name; dopatut's own cannot be)."""
    if not isinstance(method, Method):
        raise TypeError(f"register_method takes a dopatut.methods.registry.Method, got {type(method).__name__}")
    old = _REGISTRY.get(method.name)
    if old is not None and (old.builtin or not replace):
        raise ValueError(f"a method named {method.name!r} is registered already"
                         + ("" if old.builtin else "; pass replace=True to redefine it"))
    if method.config_cls is not None:
        other = next((m for m in _REGISTRY.values() if m.config_cls is method.config_cls and m.name != method.name), None)
        if other is not None:
            raise ValueError(f"method {method.name!r}: its config class {method.config_cls.__name__} is "
                             f"{other.name!r}'s already; give each method a config class of its own (a subclass)")
    _REGISTRY[method.name] = method
    return method


def get_method(name: str) -> Method:
    """The registered method `name`, or a ValueError that lists the registered ones."""
    if isinstance(name, str) and name in _REGISTRY:
        return _REGISTRY[name]
    raise ValueError(f"unknown method {name!r}; expected one of {', '.join(_REGISTRY)}")


def method_of(config: MethodConfig) -> Method:
    """The registered method whose config class is `config`'s (exactly: a subclass is another method)."""
    found = next((m for m in _REGISTRY.values() if m.config_cls is not None and type(config) is m.config_cls), None)
    if found is None:
        known = ", ".join(m.config_cls.__name__ for m in _REGISTRY.values() if m.config_cls is not None)
        raise ValueError(f"no registered method takes a {type(config).__name__}; expected a config of one of "
                         f"{known} (or a method's name), or register_method(Method(..., config_cls="
                         f"{type(config).__name__}))")
    return found


def method_names(builtin_only: bool = False) -> tuple[str, ...]:
    return tuple(n for n, m in _REGISTRY.items() if m.builtin or not builtin_only)
