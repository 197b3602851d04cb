"""The Dopamine gate: a learnable threshold and gain for every neuron that goes through an activation.

For a neuron with drive z and activation a = act(z), threshold tau, gain g and temperature T:

    soft (training):   out = sigmoid((z - tau) / T) * g * a
    hard (inference):  out = 1[z > tau] * g * a

The base weights never change. A gate sits on an activation module of any model (by default every activation
class of torch.nn, transformers and timm: dopatut.methods.activations), found by target (`GateSet.for_model(model,
targets=...)`), and reads the activation's input z, even where the activation writes in place. Its width is read
from z in a probe forward (dopatut.methods.places), and a module that runs at several places per forward gets one gate
per place, in call order ("layer1.0.relu[0]", "layer1.0.relu[1]"). At init g = 1 and tau starts where the hard
gate is open for the activation (`activations.open_threshold`): tau = 0 for ReLU, which already silences z <= 0,
so the gate is exactly the identity. GELU and SiLU are not zero below 0: a step at 0 would cut their negative
lobe (down to -0.17 and -0.28), so their tau starts at OPEN_AT, below which they are within 5e-4 of zero:
the hard gate is then exactly the identity wherever z > tau, and off by less than 5e-4 below it. The price:
there the soft gate is near 1 for every drive, so tau barely learns and the gate acts as a gain (chapter 9);
`threshold_init=0.0` is the other choice, a gate that selects neurons but changes the model at init.
The gates of one mode form a `GateSet`; `Modes` keeps several named sets on one base.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from .activations import activation_classes, open_threshold
from ..foundations.checkpoints import CheckpointError, _differences, load_checkpoint, save_checkpoint
from .places import Place, probe, split_key
from .targets import _check_not_shared, find_targets, replace_module

OPEN_AT = {nn.ReLU: 0.0, nn.GELU: -4.0, nn.SiLU: -10.0}  # tau at init: |act(z)| < 5e-4 for z below it (the rule
# of activations.open_threshold, which gives the same for every activation class)


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
    """An activation module with gates on it, one per place it runs: at its i-th call in a forward pass,
    forward(z) = gates[i](z, act(z)). `attach` puts it in act's place; `name` is that place's module name."""

    def __init__(self, act: nn.Module, gates, name: str = ""):
        super().__init__()
        self.act = act
        self.gates = nn.ModuleList(gates if isinstance(gates, (list, tuple)) else [gates])
        self.name = name
        self.calls = 0  # calls since the model's forward began (counted where there are several gates)
        self.bypass = False  # True: the bare activation (a probe forward)

    @property
    def wrapped_activation(self) -> nn.Module:
        return self.act

    @property
    def gate(self) -> nn.Module:
        """The gate, where the module runs at one place; `gates[i]` where it runs at several."""
        if len(self.gates) != 1:
            raise ValueError(f"{self.name!r} runs at {len(self.gates)} places and has a gate for each: "
                             f"use .gates[i] (or GateSet.of(model)['{self.name}[i]'])")
        return self.gates[0]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.bypass:
            return self.act(z)
        if len(self.gates) == 1:
            gate, call = self.gates[0], None
        else:
            call = self.calls % len(self.gates)
            gate, self.calls = self.gates[call], self.calls + 1
        width, axis = getattr(gate, "width", None), getattr(gate, "feature_dim", -1)
        if width is not None and (z.dim() < 2 or z.shape[axis] != width):
            where = self.name if call is None else f"{self.name}[{call}]"
            raise ValueError(f"the gate at {where!r} has {width} neurons on axis {axis}, but its activation's "
                             f"input has shape {tuple(z.shape)}; attach gates made for this model "
                             f"(GateSet.for_model reads each width from the drive)")
        # an activation that writes in place would overwrite z, the drive the gate compares: it gets a copy
        return gate(z, self.act(z.clone() if getattr(self.act, "inplace", False) else z))


def _reset_calls(model: nn.Module, args) -> None:
    for m in model.modules():
        if isinstance(m, GatedActivation):
            m.calls = 0


def _check_calls(model: nn.Module, args, out) -> None:
    for m in model.modules():
        if isinstance(m, GatedActivation) and len(m.gates) > 1 and m.calls not in (0, len(m.gates)):
            calls, m.calls = m.calls, 0
            raise RuntimeError(f"{m.name!r} ran {calls} times in this forward pass, but it has gates for the "
                               f"{len(m.gates)} places it ran at when the gates were made; attach gates made "
                               f"with an example input that takes this path (GateSet.for_model(..., example_input=))")


def _watch_calls(model: nn.Module) -> None:
    """Count the calls of modules with several gates from the start of each forward pass of `model`."""
    if _reset_calls not in model._forward_pre_hooks.values():
        model.register_forward_pre_hook(_reset_calls)
        model.register_forward_hook(_check_calls)


@contextmanager
def passthrough(model: nn.Module):
    """Every gated activation of `model` computes its bare activation inside the block (a probe forward)."""
    gated = [m for m in model.modules() if isinstance(m, GatedActivation)]
    for m in gated:
        m.bypass = True
    try:
        yield model
    finally:
        for m in gated:
            m.bypass, m.calls = False, 0


def _activation(model: nn.Module, name: str) -> nn.Module:
    module = model.get_submodule(name)
    return module.act if isinstance(module, GatedActivation) else module


def gate_targets(model: nn.Module, targets=None) -> list[str]:
    """The activation modules that `targets` names (default: every activation module, dopatut.methods.activations)."""
    if targets is not None:
        return find_targets(model, targets, (nn.Module,), "Dopamine gates", inside=(GatedActivation,),
                            listed=activation_classes() + (GatedActivation,))
    try:
        return find_targets(model, activation_classes(), (nn.Module,), "Dopamine gates", inside=(GatedActivation,))
    except ValueError:
        raise ValueError(_no_activation_message(model)) from None


def _no_activation_message(model: nn.Module) -> str:
    kind = type(model).__name__
    lines = [f"{kind} has no activation module dopatut knows (torch.nn's, transformers' or timm's), so the "
             f"default targets match nothing."]
    try:
        with passthrough(model):
            found = probe(model, [], functional=True).functional
    except Exception:  # no example input: say what can be said without running the model
        found = []
    if found:
        calls = ", ".join(f"{fn} in {where or kind!r}" for where, fn in dict.fromkeys(found))
        lines.append(f"Its forward computes activations as function calls ({calls}): a gate needs a module to sit "
                     f"on. Make each one a module: in __init__, self.act = nn.ReLU() (or nn.GELU(), ...), and in "
                     f"forward, self.act(x) instead of F.relu(x).")
    leaves = sorted({type(m).__name__ for _, m in model.named_modules()
                     if not list(m.children()) and next(m.parameters(), None) is None})
    if leaves:
        lines.append(f"Its parameter-free modules are of classes {', '.join(leaves)}: if one is an activation, "
                     f"name it with targets= (its class, a name pattern, or a predicate (name, module) -> bool).")
    return " ".join(lines)


def _places(model: nn.Module, names, example=None, notes: list | None = None) -> dict[str, list[Place]]:
    with passthrough(model):
        found = probe(model, names, example, functional=notes is not None)
    if found.functional:
        calls = ", ".join(f"{fn} in {where or type(model).__name__!r}" for where, fn in dict.fromkeys(found.functional))
        notes.append(f"not gated: activations computed as function calls ({calls}); make each a module to gate it")
    for name, (before, after) in found.shape_changes.items():
        raise ValueError(f"Dopamine gates go on activations (an output the shape of the input), but {name!r} "
                         f"({type(_activation(model, name)).__name__}) maps {before} to {after}")
    silent = [name for name in names if not found.places[name]]
    if silent:
        raise ValueError(f"{silent} did not run in a forward pass on the example input, so their widths are "
                         f"unknown; pass example_input= that reaches them")
    return found.places


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
    def for_model(cls, model: nn.Module, targets=None, example_input=None, **gate_kwargs) -> "GateSet":
        """A fresh gate at every place where an activation that `targets` names runs (see dopatut.methods.targets;
        default: every activation module), its width read from the drive in a forward pass on `example_input`
        (default: dopatut.methods.places.example_input(model)). `gates.notes` says where the hard gate is not the
        identity at init."""
        gates, gates.notes = cls(), []
        for name, places in _places(model, gate_targets(model, targets), example_input, gates.notes).items():
            start, exact = open_threshold(_activation(model, name))
            if not exact:
                gates.notes.append(f"{name!r} ({places[0].activation}) is not near 0 below any drive: its gates "
                                   f"start at tau = 0, and the hard gate cuts its negative part at init")
            for place in places:
                gates[place.key] = DopamineGate(place.width, **{"threshold_init": start, "feature_dim": place.axis,
                                                                **gate_kwargs})
        return gates

    def check_fits(self, model: nn.Module, example_input=None) -> None:
        """A ValueError naming the place and both numbers unless every gate fits where it goes on `model`."""
        modules: dict[str, list] = {}
        for key in self:
            name, call = split_key(key)
            modules.setdefault(name, []).append(call)
        for name in modules:
            try:
                model.get_submodule(name)
            except AttributeError:
                raise ValueError(f"gate for {name!r}, but {type(model).__name__} has no module of that name; its "
                                 f"activations are {gate_targets(model)}") from None
        _check_not_shared(model, list(modules))
        places = _places(model, list(modules), example_input)
        for name, calls in modules.items():
            keys = [p.key for p in places[name]]
            given = [name if c is None else f"{name}[{c}]" for c in calls]
            if sorted(given) != sorted(keys):
                raise ValueError(f"gates for {given}, but {name!r} runs at {len(keys)} place(s) per forward: "
                                 f"{keys}; give one gate for each")
            for place in places[name]:
                gate = self[place.key]
                have = (gate.width, getattr(gate, "feature_dim", -1))
                if have != (place.width, place.axis):
                    raise ValueError(f"gate for {place.key!r} has {have[0]} neurons on axis {have[1]}, but the "
                                     f"activation's input there has {place.width} on axis {place.axis}")

    def places(self) -> dict[str, list[str]]:
        """Module name -> the keys of its gates, in call order."""
        grouped: dict[str, list] = {}
        for key in self:
            name, call = split_key(key)
            grouped.setdefault(name, []).append((call or 0, key))
        return {name: [k for _, k in sorted(keys)] for name, keys in grouped.items()}

    @classmethod
    def of(cls, model: nn.Module) -> "GateSet":
        """The gates attached to `model` now, by name (the same gate objects, not copies)."""
        gates = cls()
        for name, module in model.named_modules():
            if isinstance(module, GatedActivation):
                for i, gate in enumerate(module.gates):
                    gates[name if len(module.gates) == 1 else f"{name}[{i}]"] = gate
        return gates


def gates_of(model: nn.Module) -> list[DopamineGate]:
    return [m for m in model.modules() if isinstance(m, DopamineGate)]


def attach(model: nn.Module, gates: GateSet, example_input=None, check: bool = True) -> nn.Module:
    """Put `gates` on the model's activations by place, in place; activations not named get no gate (and lose
    any they had). Base weights are untouched. check=False skips the fit check (gates just made for `model`)."""
    if check:
        gates.check_fits(model, example_input)
    detach(model)
    for name, keys in gates.places().items():
        replace_module(model, name, GatedActivation(model.get_submodule(name), [gates[k] for k in keys], name))
        if len(keys) > 1:
            _watch_calls(model)
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


def shifted_drive_check(base: nn.Module, gated: nn.Module, x, shift: float) -> dict[str, float]:
    """Run `x` through `base` and through `gated` (its gates hardened) with every gated activation's drive moved by
    `shift` in both (a forward pre-hook), so that drives fall below the gates' open threshold. Returns "below", the
    share of drives the gates shut; "act", the largest |gated - base| over the gated activations' outputs, which a
    gate at the open threshold keeps under OPEN_TOL; "output", the largest |gated - base| over the models' outputs."""
    names = list(GateSet.of(gated).places())
    outs: dict[str, list] = {"base": [], "gated": []}
    handles = []
    for kind, model in (("base", base), ("gated", gated)):
        modules = dict(model.named_modules())
        for name in names:
            handles.append(modules[name].register_forward_pre_hook(lambda m, args: (args[0] + shift, *args[1:])))
            handles.append(modules[name].register_forward_hook(lambda m, a, out, k=kind: outs[k].append(out)))
    try:
        with torch.no_grad(), hardened(gated):
            got, ref = gated(x), base(x)
    finally:
        for handle in handles:
            handle.remove()
    got, ref = getattr(got, "logits", got), getattr(ref, "logits", ref)  # a transformers model's output
    shut = [g.last_gate for g in gates_of(gated)]
    return {"below": sum((1 - s).sum().item() for s in shut) / sum(s.numel() for s in shut),
            "act": max((a - b).abs().max().item() for a, b in zip(outs["gated"], outs["base"])),
            "output": (got - ref).abs().max().item()}


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
        """Write mode `name` alone (its gate tensors, and the places it was made for; atomic, checksummed)."""
        return save_gates(path, self._get(name), self.model)

    def load(self, name: str, path, partial: bool = False) -> GateSet:
        """Read a mode saved by `save`; refused (CheckpointError) unless this model's activations are the ones
        it was saved on, place for place (partial=True: only the mode's own places need to fit)."""
        gates = load_gates(path, self.model, partial=partial)
        self.sets[name] = gates
        return gates

    def summary(self) -> str:
        """One line per mode, as PEFT's print_trainable_parameters: its numbers against the base's."""
        base = sum(p.numel() for n, p in self.model.named_parameters() if ".gates." not in n)
        lines = [f"{type(self.model).__name__}: {base:,} base parameters, {len(self.sets)} mode{'' if len(self.sets) == 1 else 's'}"]
        for name, gates in self.sets.items():
            n = sum(p.numel() for p in gates.parameters())
            lines.append(f"  {name!r}{' (active)' if name == self.active else ''}: {n:,} gate numbers on "
                         f"{len(gates)} activations ({100 * n / base:.2f}% of the base)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Modes({sorted(self.sets)}, active={self.active!r})"


def model_places(model: nn.Module, example_input=None) -> dict[str, dict]:
    """Every place a gate can go by default (every activation module's every call): key -> what it is."""
    try:
        names = find_targets(model, activation_classes(), (nn.Module,), "Dopamine gates", inside=(GatedActivation,))
    except ValueError:
        return {}
    with passthrough(model):
        found = probe(model, names, example_input)
    return {p.key: p.describe() for places in found.places.values() for p in places}


# ---------------------------------------------------------------- a mode on disk
def save_gates(path, gates, model, meta: dict | None = None) -> Path:
    """Save one mode's GateSet alone (a few kB), apart from the base. The file records each gate's place (module
    name, call index, width, axis, activation class) and every place the model could be gated at by default,
    so that `load_gates` refuses a model it does not fit exactly."""
    found = model_places(model)
    places = {}
    for key, g in gates.items():
        module, call = split_key(key)
        known = found.get(key, {})
        places[key] = {"module": module, "call": call or 0, "width": g.width,
                       "axis": getattr(g, "feature_dim", -1), "activation": known.get("activation")}
    config = {"places": places, "model_places": found}
    return save_checkpoint(path, gates.state_dict(), "mode", config, {"model": type(model).__name__, **(meta or {})})


def _place_differences(saved: dict, now: dict) -> list[str]:
    lines = [f"{k}: in the mode's model, not in this one" for k in saved if k not in now]
    lines += [f"{k}: in this model ({now[k]['activation']}, {now[k]['width']} neurons), not in the mode's"
              for k in now if k not in saved]
    for k in saved:
        if k in now and saved[k] != now[k]:
            lines.append(f"{k}: " + ", ".join(f"{f} {saved[k][f]!r} in the mode's model, {now[k][f]!r} here"
                                               for f in saved[k] if saved[k][f] != now[k].get(f)))
    return lines


def load_gates(path, model, partial: bool = False, **gate_kwargs):
    """Load a GateSet saved by `save_gates`, checked to fit `model`: every place the mode's model could be gated
    at is a place of this model, with the same width, axis and activation, and no more (partial=True: only the
    mode's own places are checked, so a mode can go on part of a larger model)."""
    payload = load_checkpoint(path, "mode")
    config, source = payload["config"], payload["meta"].get("model", "?")
    if not partial:
        diffs = _place_differences(config["model_places"], model_places(model))
        if diffs:
            raise CheckpointError(f"{path} holds a mode for another model ({source}); the activations differ "
                                  f"({len(diffs)}):\n  " + "\n  ".join(diffs[:20]) +
                                  ("\n  ..." if len(diffs) > 20 else "") +
                                  "\nload it with partial=True to put it on the places it names only")
    gates = GateSet({key: DopamineGate(c["width"], feature_dim=c["axis"], **gate_kwargs)
                     for key, c in config["places"].items()})
    try:
        gates.check_fits(model)
    except ValueError as err:
        raise CheckpointError(f"{path} holds a mode for another model ({source}): {err}") from None
    diffs = _differences({k: tuple(v.shape) for k, v in gates.state_dict().items()},
                         {k: tuple(v.shape) for k, v in payload["state"].items()})
    if diffs:
        raise CheckpointError(f"{path}: gates do not fit the model:\n  " + "\n  ".join(diffs))
    gates.load_state_dict(payload["state"])
    return gates
