r"""Every way of adapting a frozen model, applied by name, to any PyTorch model.

    model = apply_method(foundation, "lora", rank=4)
    model = apply_method(vit, "lora", targets=["qkv", "proj"])
    model = apply_method(vit, "dopamine", targets=r"blocks\.\d+\.mlp\.act")
    model = apply_method(BertForSequenceClassification(BertConfig(...)), "dopamine")  # any model, by default

returns a copy of the model with all base weights frozen and only the method's own parameters trainable.
The model itself is never modified. `targets` (see dopatut.targets: a regular expression, a list of names, or
a module type, or a predicate) says where the method goes; by default:
    gates (dopamine, gain_only, threshold_only): every activation module (torch.nn's, transformers', timm's:
        dopatut.activations), one gate per place it runs, its width read from the drive (dopatut.places);
    lora: every nn.Linear, nn.Conv2d with groups=1 and transformers Conv1D, but not a layer whose weight is
        tied to another's (GPT-2's lm_head is the token embedding);
    bitfit: every bias;
    head: the output layer: a transformers model's get_output_embeddings(), timm's get_classifier(), else the
        module named "head", else the last nn.Linear that runs; a head tied to the input embedding is untied (a trainable copy) first.
Where a forward pass is needed (gates, the last Linear), it runs once on `example_input` (default:
dopatut.places.example_input(model)).
The base stays the base in its BatchNorm buffers too: every method but full fine-tuning stops them tracking
(track_running_stats=False), so training (in train mode, normalising by batch statistics) leaves the running
mean, variance and batch count as the foundation had them, evaluation still uses them, and a mode switched off
is the foundation again.
"""
from __future__ import annotations

import copy

from torch import nn

from .checks import refuse_options
from .gate import GateSet, attach
from .lora import LoRAConfig, cannot_wrap, lora_kinds, lora_version
from .model import count_parameters, freeze
from .places import probe
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
            notes.append(f"LoRA left out {len(skipped)} layer(s) it cannot wrap or that are tied: "
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


def apply_method(foundation: nn.Module, method: str, *, targets=None, rank: int | None = None,
                 alpha: float | None = None, example_input=None, verbose: bool = True, **gate_kwargs) -> nn.Module:
    """A frozen copy of `foundation` with `method`'s parameters added and trainable.

    targets: where the method goes (all but frozen and full; defaults in the module's docstring).
    example_input: an input the model takes, for the forward pass that finds the gates' places (a tensor, a
    tuple of positional inputs or a dict of keyword inputs; default: dopatut.places.example_input).
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
    notes: list[str] = []
    if method != "full":
        for norm in model.modules():
            if isinstance(norm, BATCH_NORMS):
                norm.track_running_stats = False  # its running statistics and count stay the foundation's
    if method in GATE_METHODS:
        gates = GateSet.for_model(model, targets, example_input, learn_threshold=method != "gain_only",
                                  learn_gain=method != "threshold_only", **gate_kwargs)
        attach(model, gates, check=False)  # made for this model a line above
        notes += _gate_notes(gates) + gates.notes
    elif method == "bitfit":
        _train_biases(model, targets)
    elif method == "head":
        _train_head(model, targets, example_input, notes)
    elif method == "lora":
        add_lora(model, LoRAConfig(rank=4 if rank is None else rank, alpha=alpha), targets, notes)
    elif method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
    model.method = method
    model.method_options = {k: v for k, v in {"targets": targets, "rank": rank, "alpha": alpha, **gate_kwargs}.items()
                            if v is not None}  # what save_pretrained records (dopatut.pretrained)
    if verbose:
        print("\n  ".join([trainable_summary(model), *notes]))
    return model


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
