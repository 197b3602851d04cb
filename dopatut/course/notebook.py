"""Small helpers for the book's notebooks that work the same in the book build, locally and in Colab."""
from __future__ import annotations

import sys


def in_colab() -> bool:
    return "google.colab" in sys.modules


def glue(name: str, value, display: bool = False):
    """Store `value` for the book's prose; without myst-nb (as in Colab) just return it.

    Glue numbers, not strings (a string shows with quotes), and format in the prose:
    {glue:text}`dopamine_acc45:.1%` or {glue:text}`n_trainable:,.0f`.
    """
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return value
    myst_glue(name, value, display=display)
    return value


def setup_line() -> str:
    """What the setup cell prints: the device the chapter trains on, and where its results come from."""
    from ..foundations import bundle
    from ..foundations.device import default_device, describe

    if bundle.recompute_requested():
        source = "DOPATUT_RECOMPUTE=1: what the cache lacks is trained, nothing is read from the shipped bundle"
    elif default_device().type == "cpu":
        source = ("results the cache lacks come from the shipped bundle (DOPATUT_RECOMPUTE=1 trains them "
                  "instead)")
    else:
        source = ("the shipped bundle holds CPU results, so results the cache lacks are trained on this device "
                  "(seconds on a GPU)")
    return f"dopatut trains on {describe()}; {source}"
