"""PEFT's file layout for any method: a folder with the method's tensors alone and the config that rebuilds them.

    save_pretrained(model, "my-mode")           # my-mode/adapter_config.json + my-mode/adapter_model.safetensors
    model = from_pretrained(base, "my-mode")    # apply_method(base, ...) again, then the saved tensors
    print_trainable_parameters(model)           # trainable params: 1,024 || all params: ... || trainable%: 0.44

`adapter_model.safetensors` holds only what the method adds or trains (gates, LoRA factors, biases, a head), by
the names they have in the model. `adapter_config.json` holds the method and its config's fields ("config", read
back into the method's config class, which checks them; a method registered without one: its "options"), the
base model's class,
every tensor's name and shape, and the SHA-256 of the tensor file, so a torn or edited pair is refused. A base that
does not give the same tensors (another architecture, a sibling of another size, other activations) is refused,
and the message lists the differences. Both files are written atomically, the config last.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from ..foundations.checkpoints import CheckpointError, atomic_write_bytes
from .builtin import apply_method
from .registry import get_method

FORMAT = "dopatut-adapter-v1"
CONFIG, TENSORS = "adapter_config.json", "adapter_model.safetensors"


def method_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors a method adds or trains: every trainable parameter, and every gate's (trainable or fixed)."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad or ".gates." in name}


def base_layout(base: nn.Module) -> str:
    """A digest of the base's parameter names and shapes: another architecture or size has another."""
    shapes = sorted((n, tuple(p.shape)) for n, p in base.named_parameters(remove_duplicate=False))
    return hashlib.sha256(repr(shapes).encode()).hexdigest()[:16]


def save_pretrained(model: nn.Module, directory, base: nn.Module | None = None) -> Path:
    """Write `model`'s method (made by apply_method) as PEFT lays an adapter out; returns the folder.
    base: the model the method was put on (default: `model` with the method taken off, as apply_method started)."""
    from safetensors.torch import save

    method = getattr(model, "method", None)
    if method is None:
        raise ValueError(f"{type(model).__name__} has no method: save_pretrained saves what apply_method added")
    method_config = getattr(model, "method_config", None)
    if method_config is not None:
        try:
            settings = {"config": method_config.to_dict()}
        except ValueError as err:
            raise ValueError(f"the config of {method!r}: {err}") from None
    else:
        settings = {"options": getattr(model, "method_options", {})}
        try:
            json.dumps(settings)
        except TypeError:
            raise ValueError(f"the options of {method!r} ({settings['options']}) cannot be written as JSON: give "
                             f"targets as a list of names or a pattern (a type or a predicate cannot be saved)") from None
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in method_tensors(model).items()}
    blob = save(tensors)
    if base is None:
        base = _base_of(model)
    config = {"format": FORMAT, "method": method, **settings, "base_model": type(model).__name__,
              "base_layout": base_layout(base),
              "tensors": {k: list(v.shape) for k, v in tensors.items()}, "sha256": hashlib.sha256(blob).hexdigest()}
    directory = Path(directory)
    atomic_write_bytes(directory / TENSORS, blob)
    atomic_write_bytes(directory / CONFIG, (json.dumps(config, indent=1) + "\n").encode())
    return directory


def from_pretrained(base: nn.Module, directory, example_input=None, verbose: bool = False) -> nn.Module:
    """A frozen copy of `base` with the saved method on it; refused (CheckpointError) unless it fits exactly.
    example_input: as for apply_method, where the base needs one for its probe forward."""
    from safetensors.torch import load

    directory = Path(directory)
    try:
        config = json.loads((directory / CONFIG).read_text())
        blob = (directory / TENSORS).read_bytes()
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{directory} is not a saved adapter: {Path(err.filename).name} is missing") from None
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{directory / CONFIG} is not a dopatut adapter (expected format {FORMAT!r})")
    if hashlib.sha256(blob).hexdigest() != config["sha256"]:
        raise CheckpointError(f"{directory / TENSORS} does not match the checksum in {CONFIG}: the pair is torn or "
                              f"edited; save it again")
    if config["base_model"] != type(base).__name__:
        raise CheckpointError(f"{directory} holds a {config['method']!r} adapter for a {config['base_model']}, "
                              f"not a {type(base).__name__}")
    if config["base_layout"] != base_layout(base):
        raise CheckpointError(f"{directory} holds a {config['method']!r} adapter for another {config['base_model']}: "
                              f"this one's parameters have other names or shapes (another size or variant)")
    method, options = _method_args(config, directory / CONFIG)
    model = apply_method(base, method, example_input=example_input, verbose=verbose, **options)
    now = {k: list(v.shape) for k, v in method_tensors(model).items()}
    diffs = [f"{k}: {config['tensors'].get(k, 'absent')} in the file, {now.get(k, 'absent')} in this model"
             for k in sorted(set(now) | set(config["tensors"])) if now.get(k) != config["tensors"].get(k)]
    if diffs:
        raise CheckpointError(f"{directory} does not fit this {type(base).__name__} ({len(diffs)} tensors differ):\n  "
                              + "\n  ".join(diffs[:20]) + ("\n  ..." if len(diffs) > 20 else ""))
    saved = load(blob)
    with torch.no_grad():
        for name, p in method_tensors(model).items():
            p.copy_(saved[name])
    return model


def _method_args(saved: dict, path: Path) -> tuple[object, dict]:
    """apply_method's method and keywords for the saved adapter: its config, checked by the method's config class;
    the name and options of a method registered without one (or of a file written before configs)."""
    spec = get_method(saved["method"])
    if "config" not in saved:
        return spec.name, saved.get("options", {})
    if spec.config_cls is None:
        raise CheckpointError(f"{path} holds a config for {spec.name!r}, which is registered without a config class "
                              f"now; register it with config_cls= as when the adapter was saved")
    try:
        return spec.config_cls.from_dict(saved["config"], f"{path}, method {spec.name!r}"), {}
    except ValueError as err:
        raise CheckpointError(str(err)) from None


def _base_of(model: nn.Module) -> nn.Module:
    """The base's parameter layout as apply_method found it: gates off, LoRA layers unwrapped."""
    import copy

    from .gate import detach
    from .lora import LORA_WRAPPERS
    from .targets import replace_module

    base = detach(copy.deepcopy(model))
    for name in [n for n, m in base.named_modules() if isinstance(m, LORA_WRAPPERS)]:
        replace_module(base, name, base.get_submodule(name).base)
    return base


def print_trainable_parameters(model: nn.Module) -> None:
    """PEFT's line: trainable params, all params, and the trainable share."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    print(f"trainable params: {trainable:,} || all params: {total:,} || trainable%: {100 * trainable / total:.4f}")
