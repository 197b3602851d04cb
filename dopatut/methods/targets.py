"""Finding the modules a method acts on, in any PyTorch model: by name, by pattern or by type.

The same idea as PEFT's `target_modules`. `targets` is one of
  - a str: a regular expression the whole module name must match, e.g. r"blocks\\.\\d+\\.mlp\\.act";
  - a list of str: module names, each matching a module's full name or its last dotted parts
    ("qkv" matches "blocks.0.attn.qkv");
  - a type or a tuple of types: every module of that type, e.g. nn.GELU;
  - a predicate, called as predicate(name, module) -> bool, e.g. lambda name, m: name.endswith("act_fn").
Every module found must be of the kind the method needs. A target that matches nothing, matches a module of
the wrong kind, or matches a module another target already matched is an error naming what was found.
"""
from __future__ import annotations

import re

from torch import nn


def _kind_names(kinds) -> str:
    names = [k.__name__ for k in kinds]
    return ", ".join(names) if len(names) <= 4 else ", ".join(names[:3]) + f", ... ({len(names)} classes)"


def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)


def _candidates(model: nn.Module, inside=()) -> dict[str, nn.Module]:
    """Every named submodule, but not those inside a module of a type in `inside` (a wrapper is found, not its parts)."""
    found, wrappers = {}, []
    for name, module in model.named_modules():
        if name and not any(name.startswith(w) for w in wrappers):
            found[name] = module
            if isinstance(module, inside):
                wrappers.append(name + ".")
    return found


def find_targets(model: nn.Module, targets, kinds: tuple, what: str, inside: tuple = (),
                 listed: tuple | None = None) -> list[str]:
    """The names of `model`'s modules that `targets` selects, each checked to be one of `kinds`.

    what: the method, for messages ("LoRA", "Dopamine gates"). inside: wrapper types whose children are
    not searched (the wrapper itself counts as its kind: a gated activation is still an activation).
    listed: the kinds a message lists as candidates when a target matches nothing (default: kinds).
    """
    modules = _candidates(model, inside)
    listed = kinds if listed is None else listed
    if isinstance(targets, type) or (isinstance(targets, tuple) and targets and all(isinstance(t, type) for t in targets)):
        # a wrapper of `inside` (a gated activation) is found by the type of what it wraps
        chosen = {name: str(targets) for name, m in modules.items()
                  if isinstance(m, targets) or (isinstance(m, inside) and isinstance(getattr(m, "act", None), targets))}
        label = _kind_names(targets if isinstance(targets, tuple) else (targets,))
        if not chosen:
            raise ValueError(f"targets {label} match no module of {type(model).__name__}")
    elif callable(targets):
        chosen = {name: "predicate" for name, m in modules.items() if targets(name, m)}
        if not chosen:
            raise ValueError(f"the targets predicate {getattr(targets, '__name__', targets)!r} is true for no "
                             f"module of {type(model).__name__}")
    elif isinstance(targets, str):
        if not targets:
            raise ValueError("targets is an empty pattern; give a regular expression, a list of names or a type")
        try:
            pattern = re.compile(targets)
        except re.error as err:
            raise ValueError(f"targets {targets!r} is not a valid regular expression ({err})") from err
        chosen = {name: targets for name in modules if pattern.fullmatch(name)}
        if not chosen:
            raise ValueError(f"targets {targets!r} (a regular expression on the whole name) match no module; "
                             f"modules of the right kind ({_kind_names(listed)}) are {_of_kind(modules, listed)}")
    elif isinstance(targets, (list, tuple)) and targets and all(isinstance(t, str) for t in targets):
        chosen = {}
        for target in targets:
            hits = [name for name in modules if _matches(name, target)]
            if not hits:
                raise ValueError(f"target {target!r} matches no module; modules of the right kind "
                                 f"({_kind_names(listed)}) are {_of_kind(modules, listed)}")
            for name in hits:
                if name in chosen:
                    raise ValueError(f"targets {chosen[name]!r} and {target!r} both match {name!r}; "
                                     f"name each module once")
                chosen[name] = target
    else:
        raise ValueError(f"targets must be a regular expression (str), a non-empty list of module names, "
                         f"a module type, or a predicate (name, module) -> bool, got {targets!r}")
    wrong = [f"{name!r} ({type(modules[name]).__name__})" for name in chosen if not isinstance(modules[name], kinds)]
    if wrong:
        raise ValueError(f"{what} need modules of kind {_kind_names(kinds)}, but targets {targets!r} match "
                         f"{', '.join(wrong)}")
    _check_not_shared(model, list(chosen))
    return list(chosen)


def _of_kind(modules: dict, kinds) -> list[str]:
    return [name for name, m in modules.items() if isinstance(m, kinds)]


def _check_not_shared(model: nn.Module, names: list[str]) -> None:
    """A module registered under two names is one object: a method put on it would act at both places."""
    places: dict[int, list[str]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        places.setdefault(id(module), []).append(name)
    for name in names:
        others = [n for n in places[id(model.get_submodule(name))] if n != name]
        if others:
            raise ValueError(f"module {name!r} is the same object as {others}; give each place a module of its own")


def replace_module(model: nn.Module, name: str, new: nn.Module) -> nn.Module:
    """Put `new` where the submodule `name` is, in place, and return what was there."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, child)
    setattr(parent, child, new)
    return old

