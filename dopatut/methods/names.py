"""The one place that says how a method, a foundation or an arm is named to a reader.

Code names (`gain_only`, `lora`) are for code; prose, tables, legends and tick labels use `display(name)`:

    display("gain_only")  -> "gain-only"        display("lora")  -> "LoRA (r = 4)"
    display("lora r=16")  -> "LoRA (r = 16)"    display("upright", "foundation") -> "upright foundation"
"""
from __future__ import annotations

import re

from .builtin import METHODS
from .registry import _REGISTRY

# a method's reader name is its registration's (dopatut.methods.builtin; a reader's own method brings its own)
METHOD_NAMES = {m: _REGISTRY[m].display for m in METHODS}
ARM_NAMES = {  # chapter 9's arms (dopatut.study.beyond.VitStudy.arms) that are not methods by themselves
    "dopamine_at_0": "Dopamine (τ from 0)",
    "lora_attn": "LoRA on attention",
    "lora_mlp": "LoRA on the MLPs",
}
FOUNDATION_NAMES = {"mixture": "mixture", "upright": "upright"}
# Code names a reader should never meet in prose (the check in scripts/check_book_html.py reads this):
# every name that is not already a readable word ("dopamine" is also the neuromodulator: caught by its verdicts).
CODE_NAMES = tuple(n for n in METHOD_NAMES if n not in ("frozen", "head", "full", "dopamine"))
_LORA_RANK = re.compile(r"^lora r=(\d+)$")


def display(name: str, kind: str = "method") -> str:
    """The reader's name of a method (default), or of a foundation with `kind="foundation"`."""
    if kind == "foundation":
        if name not in FOUNDATION_NAMES:
            raise KeyError(f"display: no foundation named {name!r}; expected one of {', '.join(FOUNDATION_NAMES)}")
        return f"{FOUNDATION_NAMES[name]} foundation"
    if kind != "method":
        raise ValueError(f"display: kind must be 'method' or 'foundation', got {kind!r}")
    if match := _LORA_RANK.match(name):
        return f"LoRA (r = {match.group(1)})"
    if name in ARM_NAMES:
        return ARM_NAMES[name]
    if name in _REGISTRY:
        return _REGISTRY[name].display
    if name not in METHOD_NAMES:
        raise KeyError(f"display: no method named {name!r}; expected one of {', '.join(METHOD_NAMES)} "
                       f"or 'lora r=<rank>'")
    return METHOD_NAMES[name]


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def small_number(x: float, digits: int = 2) -> str:
    """A tiny number as people write it, never as 2.4e-07: '2.4 × 10⁻⁷', and '0' for zero."""
    if x == 0:
        return "0"
    mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
    return f"{mantissa} × 10{str(int(exponent)).translate(_SUPERSCRIPT)}"
