"""The Dopamine gate: a learnable threshold and gain for every neuron that goes through an activation.

For a neuron with drive z and activation a = act(z), threshold tau, gain g and temperature T:

    soft (training):   out = sigmoid((z - tau) / T) * g * a
    hard (inference):  out = 1[z > tau] * g * a

The base weights never change. A gate sits on an activation module (ReLU, GELU, SiLU) of any model, found by
target (`GateSet.for_model(model, targets=...)`), and reads the activation's input z. At init g = 1 and tau
starts where the hard gate is open for the activation: tau = 0 for ReLU, which already silences z <= 0, so
the gate is exactly the identity. GELU and SiLU are not zero below 0: a step at 0 would cut their negative
lobe (down to -0.17 and -0.28), so their tau starts at OPEN_AT, below which they are within 5e-4 of zero:
the hard gate is then exactly the identity wherever z > tau, and off by less than 5e-4 below it. The price:
there the soft gate is near 1 for every drive, so tau barely learns and the gate acts as a gain (chapter 9);
`threshold_init=0.0` is the other choice, a gate that selects neurons but changes the model at init.
The gates of one mode form a `GateSet`; `Modes` keeps several named sets on one base.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from torch import nn

from .targets import drive_width, find_targets, replace_module

ACTIVATIONS = (nn.ReLU, nn.GELU, nn.SiLU)
OPEN_AT = {nn.ReLU: 0.0, nn.GELU: -4.0, nn.SiLU: -10.0}  # tau at init: |act(z)| < 5e-4 for z below it


class DopamineGate(nn.Module):
    """A threshold and a gain for each of `width` neurons, on axis `feature_dim` of z (-1; 1 for conv channels)."""

    def __init__(self, width: int, temperature: float = 1.0, hard: bool = False,
                 learn_threshold: bool = True, learn_gain: bool = True,
                 threshold_init: float = 0.0, gain_init: float = 1.0, feature_dim: int = -1):
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int, got {width!r}")
        if feature_dim not in (-1, 1):
            raise ValueError(f"feature_dim must be -1 (features last) or 1 (channels of N, C, ...), got {feature_dim!r}")
        self.threshold = nn.Parameter(torch.full((width,), float(threshold_init)), requires_grad=learn_threshold)
        self.gain = nn.Parameter(torch.full((width,), float(gain_init)), requires_grad=learn_gain)
        self.feature_dim = feature_dim
        self.temperature = temperature
        self.hard = hard
        self.last_gate = None  # gate values of the last forward pass

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

    def per_neuron(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """A (width,) tensor shaped to broadcast along z's neuron axis."""
        return t if self.feature_dim == -1 else t.view(-1, *[1] * (z.dim() - 2))

    def gate_values(self, z: torch.Tensor) -> torch.Tensor:
        if self.hard:  # the comparison written straight into floats: 4-12x quicker on a CPU than a bool mask converted
            return torch.gt(z, self.per_neuron(self.threshold, z), out=torch.empty_like(z))
        return torch.sigmoid((z - self.per_neuron(self.threshold, z)) / self.temperature)

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        if z.dim() < 2 or z.shape[self.feature_dim] != self.width:
            raise ValueError(f"gate has {self.width} neurons on axis {self.feature_dim}, but the layer gives "
                             f"a tensor of shape {tuple(z.shape)}")
        self.last_gate = self.gate_values(z)
        return self.last_gate * self.per_neuron(self.gain, z) * a

    def extra_repr(self) -> str:
        return f"width={self.width}, temperature={self.temperature:g}, hard={self.hard}"

    def __getstate__(self):
        # last_gate may hold an autograd graph, which cannot be copied or pickled; it is a cache anyway
        return {**super().__getstate__(), "last_gate": None}


class GatedActivation(nn.Module):
    """An activation module with a gate on it: forward(z) = gate(z, act(z)). `attach` puts it in act's place."""

    def __init__(self, act: nn.Module, gate: nn.Module):
        super().__init__()
        self.act = act
        self.gate = gate

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.gate(z, self.act(z))


def _activation(model: nn.Module, name: str) -> nn.Module:
    module = model.get_submodule(name)
    return module.act if isinstance(module, GatedActivation) else module


def gate_targets(model: nn.Module, targets=None) -> list[str]:
    """The activation modules that `targets` names (default: every ReLU, GELU and SiLU of the model)."""
    return find_targets(model, ACTIVATIONS if targets is None else targets, ACTIVATIONS + (GatedActivation,),
                        "Dopamine gates", inside=(GatedActivation,))


class GateSet(nn.ModuleDict):
    """The gates of one mode: the name of the activation module it sits on -> DopamineGate.

    Names keep their dots ("hidden.hidden1.act"); inside, where nn.ModuleDict forbids dots, they are stored
    with "/" instead, which is what a GateSet's state_dict shows.
    """

    @staticmethod
    def _key(name: str) -> str:
        return name.replace(".", "/")

    def __getitem__(self, name: str) -> nn.Module:
        if self._key(name) not in self._modules:
            raise KeyError(f"no gate for {name!r}; this set has gates for {list(self)}")
        return super().__getitem__(self._key(name))

    def __setitem__(self, name: str, gate: nn.Module) -> None:
        super().__setitem__(self._key(name), gate)

    def __delitem__(self, name: str) -> None:
        super().__delitem__(self._key(name))

    def __contains__(self, name: str) -> bool:
        return super().__contains__(self._key(name))

    def __iter__(self):
        return (k.replace("/", ".") for k in super().__iter__())

    def keys(self):
        return list(self)

    def items(self):
        return [(name, self[name]) for name in self]

    @classmethod
    def for_model(cls, model: nn.Module, targets=None, **gate_kwargs) -> "GateSet":
        """A fresh gate on every activation that `targets` names (see dopatut.targets; default: all of them)."""
        gates = cls()
        for name in gate_targets(model, targets):
            width, axis = drive_width(model, name)
            start = OPEN_AT.get(type(_activation(model, name)), 0.0)
            gates[name] = DopamineGate(width, **{"threshold_init": start, "feature_dim": axis, **gate_kwargs})
        return gates

    def check_fits(self, model: nn.Module) -> None:
        for name, gate in self.items():
            try:
                model.get_submodule(name)
            except AttributeError:
                raise ValueError(f"gate for {name!r}, but {type(model).__name__} has no module of that name; its "
                                 f"activations are {gate_targets(model)}") from None
            gate_targets(model, [name])  # the right kind, not shared
            width, axis = drive_width(model, name)
            if (gate.width, getattr(gate, "feature_dim", -1)) != (width, axis):
                raise ValueError(f"gate for {name!r} has {gate.width} neurons on axis "
                                 f"{getattr(gate, 'feature_dim', -1)}, the layer has {width} on axis {axis}")

    @classmethod
    def of(cls, model: nn.Module) -> "GateSet":
        """The gates attached to `model` now, by name (the same gate objects, not copies)."""
        gates = cls()
        for name, module in model.named_modules():
            if isinstance(module, GatedActivation):
                gates[name] = module.gate
        return gates


def gates_of(model: nn.Module) -> list[DopamineGate]:
    return [m for m in model.modules() if isinstance(m, DopamineGate)]


def attach(model: nn.Module, gates: GateSet) -> nn.Module:
    """Put `gates` on the model's activations by name, in place; activations not named get no gate (and lose
    any they had). Base weights are untouched."""
    gates.check_fits(model)
    detach(model)
    for name, gate in gates.items():
        replace_module(model, name, GatedActivation(model.get_submodule(name), gate))
    return model


def detach(model: nn.Module) -> nn.Module:
    """Take every gate off, in place: each activation is back as it was."""
    for name in [n for n, m in model.named_modules() if isinstance(m, GatedActivation)]:
        replace_module(model, name, model.get_submodule(name).act)
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
    """Several named gate sets on one frozen base, of any model, in the spirit of PEFT's adapters.

        modes = Modes(base); modes.add("45deg", gates45); modes.use("45deg"); modes.off()
        modes.save("45deg", "45deg.pt"); Modes(base).load("45deg", "45deg.pt")  # a mode alone: a few kB
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.sets: dict[str, GateSet] = {}
        self.active: str | None = None

    def add(self, name: str, gates: GateSet) -> None:
        gates.check_fits(self.model)
        self.sets[name] = gates

    def _get(self, name: str) -> GateSet:
        if name not in self.sets:
            raise KeyError(f"no mode named {name!r}; modes are {sorted(self.sets)}")
        return self.sets[name]

    def use(self, name: str) -> nn.Module:
        attach(self.model, self._get(name))
        self.active = name
        return self.model

    def off(self) -> nn.Module:
        """Back to the bare base."""
        detach(self.model)
        self.active = None
        return self.model

    def save(self, name: str, path):
        """Write mode `name` alone (its gate tensors; atomic, checksummed) and return the path."""
        from .checkpoints import save_gates  # local: checkpoints sits below gate in the import order
        return save_gates(path, self._get(name), meta={"model": type(self.model).__name__})

    def load(self, name: str, path) -> GateSet:
        """Read a mode saved by `save`; refused (CheckpointError) if it does not fit this model."""
        from .checkpoints import load_gates
        gates = load_gates(path, self.model)
        self.sets[name] = gates
        return gates

    def summary(self) -> str:
        """One line per mode, as PEFT's print_trainable_parameters: its numbers against the base's."""
        base = sum(p.numel() for n, p in self.model.named_parameters() if ".gate." not in n)
        lines = [f"{type(self.model).__name__}: {base:,} base parameters, {len(self.sets)} modes"]
        for name, gates in self.sets.items():
            n = sum(p.numel() for p in gates.parameters())
            lines.append(f"  {name!r}{' (active)' if name == self.active else ''}: {n:,} gate numbers on "
                         f"{len(gates)} activations ({100 * n / base:.2f}% of the base)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Modes({sorted(self.sets)}, active={self.active!r})"
