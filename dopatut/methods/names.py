"""The one place that says how a method, a foundation or an arm is named to a reader.

Code names (`gain_only`, `lora`) are for code; prose, tables, legends and tick labels use `display(name)`:

    display("gain_only")  -> "gain-only"        display("lora")  -> "LoRA (r = 4)"
    display("lora r=16")  -> "LoRA (r = 16)"    display("upright", "foundation") -> "upright foundation"

and every figure draws a method in its one colour and marker, in every chapter: `style(name)`.
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

# How a reader sees each method, in every figure of the book: (matplotlib colour, marker, marker size).
# Dopamine is always the red star; the colours of verdicts (VERDICT_STYLE) are none of these.
STYLES = {
    "dopamine": ("C3", "*", 16), "gain_only": ("C1", "D", 8), "threshold_only": ("C5", "v", 8),
    "bitfit": ("C2", "s", 8), "head": ("C4", "^", 9), "lora": ("C0", "o", 7), "full": ("C7", "P", 10),
    "frozen": ("k", "x", 8),
    "dopamine_at_0": ("C6", "*", 13), "lora_attn": ("C0", "o", 7), "lora_mlp": ("C9", "v", 8),  # chapter 9's arms
}
OTHER_STYLE = ("C8", "o", 7)  # a method a reader registered
# A verdict of Dopamine against a rival: black filled (beats), grey (ties with), hollow (loses to).
VERDICT_STYLE = {"beats": {"color": "k", "mfc": "k"}, "ties with": {"color": "0.55", "mfc": "0.55"},
                 "loses to": {"color": "k", "mfc": "white"}}


def style(name: str) -> tuple[str, str, float]:
    """(colour, marker, marker size) of a method, an arm of chapter 9 or a LoRA rank ('lora r=16'), the same in
    every figure; a method a reader registered gets OTHER_STYLE."""
    if _LORA_RANK.match(name):
        return STYLES["lora"]
    return STYLES.get(name, OTHER_STYLE)


def colour(name: str) -> str:
    """The one colour of a method (or arm) in every figure."""
    return style(name)[0]


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


def in_points(x: float) -> str:
    """A fraction in percentage points, as the book's sentences print them: 0.0123 -> '1.23'."""
    return f"{100 * x:.2f}"


def signed_points(x: float) -> str:
    """Points with their sign and a true minus: '+0.85', '−1.20'."""
    return f"{100 * x:+.2f}".replace("-", "−")


def listed(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]

