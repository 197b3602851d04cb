r"""Every way of adapting a frozen model, applied by its config or by name, to any PyTorch model.

    model = apply_method(foundation, LoRAConfig(rank=4))       # as PEFT's get_peft_model(model, LoraConfig(...))
    model = apply_method(foundation, "lora", rank=4)           # the same: the config is built from the keywords
    model = apply_method(vit, LoRAConfig(target_modules=["qkv", "proj"]))
    model = apply_method(vit, DopamineConfig(target_modules=r"blocks\.\d+\.mlp\.act"))
    model = apply_method(vit, "dopamine", targets=r"blocks\.\d+\.mlp\.act")   # targets: target_modules' old name
    model = apply_method(BertForSequenceClassification(BertConfig(...)), "dopamine")  # any model, by default

returns a copy of the model with all base weights frozen and only the method's own parameters trainable.
The model itself is never modified. Each method has a config class, defined beside it below (LoRA's is
dopatut.methods.lora.LoRAConfig) and checked when made. `target_modules` (see dopatut.methods.targets: a regular expression, a
list of names, or a module type, or a predicate) says where the method goes; by default:
    gates (dopamine, gain_only, threshold_only): every activation module (torch.nn's, transformers', timm's:
        dopatut.methods.activations), one gate per place it runs, its width read from the drive (dopatut.methods.places);
    lora: every nn.Linear, nn.Conv2d with groups=1 and transformers Conv1D, but not a layer whose weight is
        tied to another's (GPT-2's lm_head is the token embedding);
    bitfit: every bias;
    head: the output layer: a transformers model's get_output_embeddings(), timm's get_classifier(), else the
        module named "head", else the last nn.Linear that runs; a head tied to the input embedding is untied (a trainable copy) first.
Where a forward pass is needed (gates, the last Linear), it runs once on `example_input` (default:
dopatut.methods.places.example_input(model)).
The base stays the base in its BatchNorm buffers too: every method but full fine-tuning stops them tracking
(track_running_stats=False), so training (in train mode, normalising by batch statistics) leaves the running
mean, variance and batch count as the foundation had them, evaluation still uses them, and a mode switched off
is the foundation again.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import ClassVar

from torch import nn

from .gate import GateSet, attach, gate_activity, gates_of, set_temperature, temperature_at
from .lora import LoRAConfig, cannot_wrap, lora_kinds, lora_version
from ..foundations.model import count_parameters, freeze
from .places import probe
from .registry import (_REGISTRY, Context, Method, MethodConfig, TrainingHook, check_target_modules, get_method,
                       method_names, method_of, register_method)
from .targets import find_targets, replace_module

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
LORA_RANK = 4  # the comparison's rank; chapter 4 sweeps the rank on the same protocol


def linear_names(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]


def tied(model: nn.Module) -> dict[str, str]:
    """Module name -> the other module that holds the same weight (a tied head and its embedding)."""
    owners: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if name.endswith("weight"):
            owners.setdefault(id(p), []).append(name.rpartition(".")[0])
    return {n: next(o for o in names if o != n) for names in owners.values() if len(names) > 1 for n in names}


def add_lora(model: nn.Module, config: LoRAConfig, targets=None, notes: list | None = None) -> nn.Module:
    """Replace each target layer (by default every layer LoRA can wrap, tied ones left out) by its LoRA
    version, in place. An explicit target LoRA cannot wrap is refused, by name."""
    ties = tied(model)
    if targets is None:
        names = [n for n, m in model.named_modules() if n and lora_version(m) is not None]
        skipped = [n for n in names if cannot_wrap(model.get_submodule(n)) or n in ties]
        names = [n for n in names if n not in skipped]
        if skipped and notes is not None:
            layers, are = ("layer", "is") if len(skipped) == 1 else ("layers", "are")
            notes.append(f"LoRA left out {len(skipped)} {layers} it cannot wrap or that {are} tied: "
                         f"{', '.join(skipped[:4])}{', ...' if len(skipped) > 4 else ''}")
    else:
        names = find_targets(model, targets, (nn.Module,), "LoRA layers", listed=lora_kinds())
        for name in names:
            why = cannot_wrap(model.get_submodule(name))
            if why is None and name in ties:
                why = (f"its weight is tied to {ties[name]!r}'s; merging would change both. Leave it out of targets, "
                       f"or untie it first")
            if why:
                raise ValueError(f"LoRA cannot wrap {name!r}: {why}")
    if not names:
        raise ValueError(f"{type(model).__name__} has no layer LoRA can wrap (Linear, Conv2d with groups=1, "
                         f"transformers Conv1D)")
    for name in names:
        replace_module(model, name, lora_version(model.get_submodule(name))(model.get_submodule(name), config))
    return model


def _train_biases(model: nn.Module, targets) -> None:
    names = [""] if targets is None else find_targets(model, targets, (nn.Module,), "BitFit")
    for name in names:
        biases = [p for n, p in model.get_submodule(name).named_parameters() if n.endswith("bias")]
        if not biases:
            where = f"{type(model).__name__} has no bias anywhere" if name == "" else f"BitFit target {name!r} has no bias"
            raise ValueError(f"{where}; BitFit trains biases only, so it cannot adapt this model")
        for p in biases:
            p.requires_grad_(True)


def output_layer(model: nn.Module, example_input=None) -> str:
    """The name of `model`'s output layer (see the module's docstring for the order in which it is looked for)."""
    get = getattr(model, "get_output_embeddings", None)
    head = get() if callable(get) else None
    get = getattr(model, "get_classifier", None)  # timm's
    head = head if isinstance(head, nn.Module) or not callable(get) else get()
    if isinstance(head, nn.Module) and next(head.parameters(), None) is not None:
        return next(n for n, m in model.named_modules() if m is head)
    if isinstance(getattr(model, "head", None), nn.Module) and next(model.head.parameters(), None) is not None:
        return "head"
    linears = probe(model, [], example_input).linears
    if not linears:
        raise ValueError(f"{type(model).__name__} runs no nn.Linear, so head-only tuning cannot tell its output "
                         f"layer; name it with targets=")
    return linears[-1]


def _train_head(model: nn.Module, targets, example_input=None, notes: list | None = None) -> None:
    names = [output_layer(model, example_input)] if targets is None else find_targets(
        model, targets, (nn.Module,), "head-only tuning")
    ties = tied(model)
    for name in names:
        layer = model.get_submodule(name)
        if name in ties:  # train a copy: the tied embedding stays the foundation's
            layer.weight = nn.Parameter(layer.weight.detach().clone())
            if notes is not None:
                notes.append(f"{name!r} was tied to {ties[name]!r}; head-only trains an untied copy, and "
                             f"{ties[name]!r} stays frozen")
        for p in layer.parameters():
            p.requires_grad_(True)


def apply_method(foundation: nn.Module, method, *, example_input=None, verbose: bool = True,
                 **options) -> nn.Module:
    """A frozen copy of `foundation` with `method`'s parameters added and trainable.

    method: a method's config (DopamineConfig(target_modules=...), LoRAConfig(rank=8), ...: the registered method
    whose config_cls it is), or a registered method's name (dopatut.methods.registry; the eight of the course are
    registered below) with its options as keywords, from which its config is built (so a bad value is the
    config's error): targets or target_modules; rank and alpha for LoRA; temperature (start, end), sparsity,
    threshold_init, ... for the gates. An option given to a method it does not apply to is refused (TypeError),
    not silently ignored.
    example_input: an input the model takes, for the forward pass that finds the gates' places (a tensor, a
    tuple of positional inputs or a dict of keyword inputs; default: dopatut.methods.places.example_input).
    """
    if isinstance(method, MethodConfig):
        if options:
            raise TypeError(f"apply_method got a {type(method).__name__} and the keywords {', '.join(options)}: put "
                            f"them in the config (dataclasses.replace(config, ...)), or give the method's name")
        spec, config = method_of(method), method
    else:
        spec = get_method(method)
        config = _config_of(spec, method, options)
    model = freeze(copy.deepcopy(foundation))
    context = Context(example_input)
    if not spec.trains_everything:
        for norm in model.modules():
            if isinstance(norm, BATCH_NORMS):
                norm.track_running_stats = False  # its running statistics and count stay the foundation's
    if spec.attach is not None:
        spec.attach(model, config, context)
    model.method = spec.name
    model.method_config = config if spec.config_cls is not None else None  # what save_pretrained writes
    model.method_options = config.options() if spec.config_cls is not None else config
    if verbose:
        print("\n  ".join([trainable_summary(model), *context.notes]))
    return model


def _config_of(spec: Method, method: str, options: dict):
    """The config of `spec` built from apply_method's keywords (a dict of them for a method without a config)."""
    given = {k: v for k, v in options.items() if v is not None}
    offered = set(spec.options) | ({"target_modules"} if "targets" in spec.options else set())
    unknown = sorted(set(given) - offered)
    if unknown:
        asked = {"targets" if k == "target_modules" else k for k in unknown}
        takers = [m for m in method_names() if asked <= set(get_method(m).options)]
        raise TypeError(f"{', '.join(unknown)} {'applies' if len(unknown) == 1 else 'apply'} only to "
                        f"{', '.join(takers) or 'no registered method'}, not to {method!r} (its options: "
                        f"{', '.join(spec.options) or 'none'}); got {', '.join(f'{k}={given[k]!r}' for k in unknown)}")
    return spec.config_cls.from_options(given) if spec.config_cls is not None else given


# ---------------------------------------------------------------- the course's eight methods, each defined once
def _number(config: MethodConfig, name: str, positive: bool = False, optional: bool = False) -> None:
    value = getattr(config, name)
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or \
            (positive and not value > 0):
        expected = "a positive finite number" if positive else "a finite number"
        raise ValueError(f"{type(config).__name__}.{name} must be {expected}{' or None' * optional}, got {value!r}")


@dataclass(frozen=True)
class GateConfig(MethodConfig):
    """The gates' settings (dopatut.methods.gate): where they go (target_modules; None: every activation module), how
    they train (the temperature T, annealed geometrically from start to end over the run, a single number held
    fixed; the gates are made at T = start; `sparsity` times the mean gate value added to the loss), whether they
    start hard, and tau and g at init (threshold_init None: where the hard gate is the activation,
    activations.open_threshold). Its subclasses differ in what is learned."""
    target_modules: object = None
    temperature: tuple[float, float] = (1.0, 0.1)
    sparsity: float = 0.0
    hard: bool = False
    threshold_init: float | None = None
    gain_init: float = 1.0
    learn_threshold: ClassVar[bool] = True
    learn_gain: ClassVar[bool] = True

    def __post_init__(self):
        check_target_modules(self)
        object.__setattr__(self, "temperature", _schedule(self, self.temperature))
        _number(self, "sparsity")
        if self.sparsity < 0:
            raise ValueError(f"{type(self).__name__}.sparsity must be >= 0 (the weight of the mean gate value in the "
                             f"loss; 0: no penalty), got {self.sparsity!r}")
        if not isinstance(self.hard, bool):
            raise ValueError(f"{type(self).__name__}.hard must be True or False, got {self.hard!r}")
        _number(self, "threshold_init", optional=True)
        _number(self, "gain_init")

    def gate_kwargs(self) -> dict:
        """DopamineGate's keywords (threshold_init only where given: GateSet.for_model picks it otherwise)."""
        chosen = {} if self.threshold_init is None else {"threshold_init": self.threshold_init}
        return {"temperature": self.temperature[0], "hard": self.hard, "gain_init": self.gain_init,
                "learn_threshold": self.learn_threshold, "learn_gain": self.learn_gain, **chosen}


def _schedule(config: MethodConfig, value) -> tuple[float, float]:
    """A temperature schedule (start, end) of positive finite numbers; one number is held fixed: (T, T)."""
    pair = value if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(not isinstance(t, bool) and isinstance(t, (int, float)) and math.isfinite(t) and t > 0
                                 for t in pair):
        raise ValueError(f"{type(config).__name__}.temperature must be a positive finite number (held fixed) or a "
                         f"pair (start, end) of them (annealed geometrically over training), got {value!r}")
    return float(pair[0]), float(pair[1])


@dataclass(frozen=True)
class DopamineConfig(GateConfig):
    """Dopamine: a threshold and a gain per neuron, both learned."""


@dataclass(frozen=True)
class GainOnlyConfig(GateConfig):
    """Gain-only (IA3-style): the gains learned, the thresholds fixed where they start."""
    learn_threshold: ClassVar[bool] = False


@dataclass(frozen=True)
class ThresholdOnlyConfig(GateConfig):
    """Threshold-only: the thresholds learned, the gains fixed at gain_init."""
    learn_gain: ClassVar[bool] = False


@dataclass(frozen=True)
class TargetsConfig(MethodConfig):
    """A method whose one setting is where it goes (target_modules; None: its default, see the module docstring)."""
    target_modules: object = None

    def __post_init__(self):
        check_target_modules(self)


@dataclass(frozen=True)
class BitFitConfig(TargetsConfig):
    """BitFit: the biases of target_modules (None: every bias) trained."""


@dataclass(frozen=True)
class HeadConfig(TargetsConfig):
    """Head-only: target_modules (None: the output layer) trained."""


@dataclass(frozen=True)
class FullConfig(MethodConfig):
    """Full fine-tuning: every weight trained; nothing to set."""


@dataclass(frozen=True)
class FrozenConfig(MethodConfig):
    """The frozen foundation: nothing trained, nothing to set."""


def _attach_gates(model: nn.Module, config: GateConfig, context: Context) -> None:
    gates = GateSet.for_model(model, config.target_modules, context.example_input, **config.gate_kwargs())
    attach(model, gates, check=False)  # made for this model a line above
    context.notes += _gate_notes(gates) + gates.notes


def _all(model: nn.Module, config: FullConfig, context: Context) -> None:
    for p in model.parameters():
        p.requires_grad_(True)


def _lora(model: nn.Module, config: LoRAConfig, context: Context) -> None:
    add_lora(model, config, config.target_modules, context.notes)


class GateTraining(TrainingHook):
    """Gates train soft, at a temperature annealed geometrically over the run (the method config's temperature:
    start, end), with its sparsity times the mean gate value added to the loss; they end soft at the last
    temperature. A model whose method config is no GateConfig (gates attached by hand) trains with GateConfig's
    defaults."""

    def settings(self, model):
        config = getattr(model, "method_config", None)
        config = config if isinstance(config, GateConfig) else HAND_GATES
        return {"temperature": config.temperature, "sparsity": config.sparsity}

    def before_step(self, model, progress, config):
        set_temperature(model, temperature_at(progress, *self.settings(model)["temperature"]))

    def loss(self, model, loss, config):
        sparsity = self.settings(model)["sparsity"]
        return loss + sparsity * gate_activity(model) if sparsity > 0 else loss

    def end_of_epoch(self, template, models):
        temperatures = [g.temperature for g in gates_of(template)]
        for model in models:
            for gate, temperature in zip(gates_of(model), temperatures):
                gate.temperature = temperature


HAND_GATES = GateConfig()  # how gates train on a model that has no gate method's config
GATE_TRAINING = GateTraining()


def hook_for(model: nn.Module) -> TrainingHook | None:
    """The training hook of `model`'s method; a model with gates whose method names no hook (gates attached by
    hand, context gates, a reader's gate method) trains as the gate methods do."""
    spec = _REGISTRY.get(getattr(model, "method", None))
    if spec is not None and spec.hook is not None:
        return spec.hook
    return GATE_TRAINING if gates_of(model) else None


GATE_OPTIONS = GateConfig.option_names()  # targets, temperature, sparsity, hard, threshold_init, gain_init
GATE_GRID = {"lr": (3e-3, 1e-2, 3e-2, 1e-1, 3e-1), "temperature": ((1.0, 0.1), (1.0, 0.01))}
# Learning rates a factor of about 3 apart, wide enough that the best one lies inside (chapter 5 checks).
for _method in (
    Method("frozen", "frozen foundation", "the foundation as it is, nothing trained", None, flops="none",
           config_cls=FrozenConfig),
    Method("dopamine", "Dopamine", "a threshold and a gain per hidden neuron", _attach_gates, grid=GATE_GRID,
           flops="from_first", hook=GATE_TRAINING, config_cls=DopamineConfig),
    Method("gain_only", "gain-only", "a gain per hidden neuron, thresholds fixed where the gate is open (0 on "
           "ReLU; IA3-style)", _attach_gates, grid=GATE_GRID, flops="from_first", hook=GATE_TRAINING,
           config_cls=GainOnlyConfig),
    Method("threshold_only", "threshold-only", "a threshold per hidden neuron, gains fixed at 1", _attach_gates,
           grid=GATE_GRID, flops="from_first", hook=GATE_TRAINING, config_cls=ThresholdOnlyConfig),
    Method("bitfit", "BitFit", "biases only", lambda model, config, context: _train_biases(
        model, config.target_modules), grid={"lr": (3e-3, 1e-2, 3e-2, 1e-1, 3e-1)}, flops="from_first",
        config_cls=BitFitConfig),
    Method("head", "head-only", "the output layer only", lambda model, config, context: _train_head(
        model, config.target_modules, context.example_input, context.notes), grid={"lr": (1e-3, 3e-3, 1e-2, 3e-2)},
        flops="head", config_cls=HeadConfig),
    Method("lora", "LoRA (r = 4)", "low-rank deltas B A on every linear and convolutional layer (or the targets "
           "named)", _lora, grid={"lr": (1e-3, 3e-3, 1e-2), "alpha": (4.0, 16.0)}, fixed={"rank": LORA_RANK},
           flops="lora", config_cls=LoRAConfig),
    Method("full", "full fine-tuning", "every weight", _all, grid={"lr": (3e-5, 1e-4, 3e-4, 1e-3)}, flops="all",
           trains_everything=True, config_cls=FullConfig),
):
    register_method(replace(_method, builtin=True))

METHODS = method_names(builtin_only=True)  # the course's eight, in the order its tables show them
GATE_METHODS = tuple(m for m in METHODS if get_method(m).hook is GATE_TRAINING)
DESCRIPTIONS = {m: get_method(m).description for m in METHODS}


def _gate_notes(gates: GateSet) -> list[str]:
    places = gates.places()
    several = {name: len(keys) for name, keys in places.items() if len(keys) > 1}
    line = f"gates at {len(gates)} places on {len(places)} activation modules"
    if several:
        line += f"; {len(several)} modules run at several places, each with a gate per place (e.g. " + \
            ", ".join(places[n][0] + " ... " + places[n][-1] for n in list(several)[:1]) + ")"
    return [line]


def trainable_summary(model: nn.Module) -> str:
    trainable, total = count_parameters(model)
    name = getattr(model, "method", type(model).__name__)
    return f"{name}: {trainable:,} trainable of {total:,} parameters ({100 * trainable / total:.2f}%)"
