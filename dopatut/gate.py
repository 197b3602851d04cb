"""The Dopamine gate: a learnable threshold and gain for every hidden neuron.

For a neuron with drive z and activation a = relu(z), threshold tau, gain g and temperature T:

    soft (training):   out = sigmoid((z - tau) / T) * g * a
    hard (inference):  out = 1[z > tau] * g * a

The base weights never change. At tau = 0, g = 1 the hard gate is the identity,
because relu already silences z <= 0. The gates of one mode form a `GateSet`
(2 numbers per hidden neuron); `Modes` keeps several named sets on one base.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from torch import nn

from .model import FoundationMLP


class DopamineGate(nn.Module):
    def __init__(self, width: int, temperature: float = 1.0, hard: bool = False,
                 learn_threshold: bool = True, learn_gain: bool = True,
                 threshold_init: float = 0.0, gain_init: float = 1.0):
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int, got {width!r}")
        self.threshold = nn.Parameter(torch.full((width,), float(threshold_init)), requires_grad=learn_threshold)
        self.gain = nn.Parameter(torch.full((width,), float(gain_init)), requires_grad=learn_gain)
        self.temperature = temperature
        self.hard = hard
        self.last_gate: torch.Tensor | None = None  # gate values of the last forward pass

    @property
    def temperature(self) -> float:
        return self._temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        if not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
            raise ValueError(f"temperature must be a positive finite number, got {value!r}")
        self._temperature = float(value)

    @property
    def width(self) -> int:
        return self.threshold.numel()

    def gate_values(self, z: torch.Tensor) -> torch.Tensor:
        if self.hard:
            return (z > self.threshold).to(z.dtype)
        return torch.sigmoid((z - self.threshold) / self.temperature)

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        if z.shape[-1] != self.width:
            raise ValueError(f"gate has {self.width} neurons but the layer gives {z.shape[-1]}")
        self.last_gate = self.gate_values(z)
        return self.last_gate * self.gain * a

    def extra_repr(self) -> str:
        return f"width={self.width}, temperature={self.temperature:g}, hard={self.hard}"

    def __getstate__(self):
        # last_gate may hold an autograd graph, which cannot be copied or pickled; it is a cache anyway
        return {**super().__getstate__(), "last_gate": None}


class GateSet(nn.ModuleDict):
    """The gates of one mode: hidden-layer name -> DopamineGate."""

    @classmethod
    def for_model(cls, model: FoundationMLP, layers=None, **gate_kwargs) -> "GateSet":
        names = list(model.hidden_layers()) if layers is None else list(layers)
        hidden = model.hidden_layers()
        unknown = [n for n in names if n not in hidden]
        if unknown:
            raise ValueError(f"unknown hidden layers {unknown}; the model has {list(hidden)}")
        return cls({n: DopamineGate(hidden[n].width, **gate_kwargs) for n in names})

    def check_fits(self, model: FoundationMLP) -> None:
        hidden = model.hidden_layers()
        for name, gate in self.items():
            if name not in hidden:
                raise ValueError(f"gate for {name!r} but the model's hidden layers are {list(hidden)}")
            if gate.width != hidden[name].width:
                raise ValueError(f"gate for {name!r} has {gate.width} neurons, the layer has {hidden[name].width}")


def gates_of(model: nn.Module) -> list[DopamineGate]:
    return [m for m in model.modules() if isinstance(m, DopamineGate)]


def attach(model: FoundationMLP, gates: GateSet) -> FoundationMLP:
    """Put `gates` into the model's gate slots (layers without a gate get none). Base weights are untouched."""
    gates.check_fits(model)
    for name, layer in model.hidden_layers().items():
        layer.gate = gates[name] if name in gates else None
    return model


def detach(model: FoundationMLP) -> FoundationMLP:
    for layer in model.hidden_layers().values():
        layer.gate = None
    return model


def set_hard(model: nn.Module, hard: bool = True) -> None:
    for gate in gates_of(model):
        gate.hard = hard


def set_temperature(model: nn.Module, temperature: float) -> None:
    for gate in gates_of(model):
        gate.temperature = temperature


@contextmanager
def hardened(model: nn.Module, hard: bool = True):
    """Temporarily switch every gate of `model` to hard (or soft) and restore it afterwards."""
    before = [(g, g.hard) for g in gates_of(model)]
    set_hard(model, hard)
    try:
        yield model
    finally:
        for g, h in before:
            g.hard = h


def temperature_at(progress: float, start: float = 1.0, end: float = 0.1) -> float:
    """Geometric annealing from `start` (progress 0) to `end` (progress 1)."""
    if not (start > 0 and end > 0):
        raise ValueError(f"temperatures must be positive, got start={start}, end={end}")
    progress = min(max(progress, 0.0), 1.0)
    return start * (end / start) ** progress


def gate_activity(model: nn.Module) -> torch.Tensor:
    """Mean gate value over every gated neuron of the last forward pass: the sparsity penalty's target."""
    values = [g.last_gate.mean() for g in gates_of(model) if g.last_gate is not None]
    if not values:
        raise RuntimeError("no gate has run a forward pass yet; call the model first")
    return torch.stack(values).mean()


class Modes:
    """Several named gate sets on one frozen base, in the spirit of PEFT's adapters.

        modes = Modes(base); modes.add("45deg", gates45); modes.use("45deg"); modes.off()
    """

    def __init__(self, model: FoundationMLP):
        self.model = model
        self.sets: dict[str, GateSet] = {}
        self.active: str | None = None

    def add(self, name: str, gates: GateSet) -> None:
        gates.check_fits(self.model)
        self.sets[name] = gates

    def use(self, name: str) -> FoundationMLP:
        if name not in self.sets:
            raise KeyError(f"no mode named {name!r}; modes are {sorted(self.sets)}")
        attach(self.model, self.sets[name])
        self.active = name
        return self.model

    def off(self) -> FoundationMLP:
        """Back to the bare base."""
        detach(self.model)
        self.active = None
        return self.model

    def __repr__(self) -> str:
        return f"Modes({sorted(self.sets)}, active={self.active!r})"
