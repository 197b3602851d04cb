"""The shipped results: what the protocol computed on a CPU, read instead of retraining on an empty cache.

    bundled("results/compare-mixture-lora-0123456789ab.json")   # the file in the package, or None
    recompute_requested()          # DOPATUT_RECOMPUTE=1 (or an argument recompute=True): never read the bundle

A chapter opened cold (every Colab session starts with an empty cache) would retrain the settings grids and the
ten-seed comparisons on both foundations before it shows anything. dopatut ships them instead, as package data
in `dopatut/shipped/` (read through importlib.resources, so an installed dopatut has them): the JSON results of
`compare.select` and `compare.compare`, named exactly as in the cache (`results/<name>-<hash of everything
that determines it>.json`), the few foundations that chapters load and that take more than about 10 s to
train (seed 0's MLP on each foundation, chapter 9's two transformers), the training record (curves,
accuracy, no weights) of the ten mixture foundations that chapter 2 plots, chapter 7's sweeps
(`sweeps.angle_sweep`, `sweeps.variant`) and chapter 9's grids, curves and arms (`beyond.choose_lrs`, `beyond.arm_curves`, `beyond.run_arms`,
with the gate arms' trained tensors, a few kB each). Because the names are the cache's
keys, a change to the protocol, a grid or the code's RESULTS_VERSION gives new names, which the bundle lacks,
so they are computed; nothing reads old numbers for a new question.

The cache is read first, then the bundle, then the result is computed (and cached). With
DOPATUT_RECOMPUTE=1 the bundle is never read: what the cache lacks is trained; point DOPATUT_CACHE at an
empty folder to recompute everything from nothing. Only CPU results are shipped; on a GPU the keys name the
device (dopatut.foundations.device), so a GPU recomputes, which takes seconds there.

`scripts/make_bundle.py` rebuilds the bundle; `scripts/make_bundle.py --check CACHE` compares a cache that
CI filled from nothing with it (dopatut.study.bundle_check).
"""
from __future__ import annotations

import contextlib
import importlib.resources
import json
import os
from pathlib import Path

FOLDER = "shipped"  # dopatut/shipped/
MANIFEST = "MANIFEST.json"  # how the CPU that made the bundle rounds (dopatut.foundations.device.rounding)
REBUILD = "scripts/make_bundle.py"
_told: set[str] = set()


def recompute_requested(recompute: bool | None = None) -> bool:
    """recompute if given, else whether DOPATUT_RECOMPUTE is set to 1 (true, yes)."""
    if recompute is not None:
        return bool(recompute)
    value = os.environ.get("DOPATUT_RECOMPUTE", "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ValueError(f"DOPATUT_RECOMPUTE must be 1 or 0, got {value!r}")


def root():
    """The bundle's folder in the installed package (a Traversable)."""
    return importlib.resources.files("dopatut") / FOLDER


def bundled(relative: str):
    """The bundle's file at `relative` (e.g. 'results/select-mixture-lora-<hash>.json'), or None."""
    path = root().joinpath(*relative.split("/"))
    return path if path.is_file() else None


def made_on(folder=None) -> dict:
    """device.rounding() of the machine that made the bundle (its MANIFEST.json; the one in `folder` if given, else
    the package's); {} if it has none."""
    path = bundled(MANIFEST) if folder is None else Path(folder) / MANIFEST
    return json.loads(path.read_text())["made_on"] if path is not None and path.is_file() else {}


def read_shipped_anyway(relative: str) -> bool:
    """Whether DOPATUT_READ_SHIPPED (a comma list of result kinds, e.g. "budget") names `relative`'s kind: read it
    from the bundle even under DOPATUT_RECOMPUTE=1. CI sets it for chapter 5's budget study, which costs as much
    as the ten-seed comparison, and chapter 9's curves and arms ("vit-curve,vit-arm"); it recomputes a few of them
    instead (dopatut.study.budget.SPOT_CHECK, dopatut.study.beyond.SPOT_CHECK)."""
    kinds = [k.strip() for k in os.environ.get("DOPATUT_READ_SHIPPED", "").split(",") if k.strip()]
    name = relative.rsplit("/", 1)[-1]
    return any(name.startswith(f"{kind}-") for kind in kinds)


def read_json(relative: str, recompute: bool | None = None):
    """The bundled JSON value at `relative`, or None (absent, or recomputing). An explicit recompute=True always
    recomputes; DOPATUT_RECOMPUTE=1 does, except for the kinds DOPATUT_READ_SHIPPED names."""
    if recompute_requested(recompute) and (recompute is not None or not read_shipped_anyway(relative)):
        return None
    path = bundled(relative)
    return None if path is None else json.loads(path.read_text())


@contextlib.contextmanager
def file_path(relative: str):
    """A real file path for the bundled file (importlib.resources.as_file), for loaders that want one."""
    with importlib.resources.as_file(bundled(relative)) as path:
        yield Path(path)


def tell_once(what: str, line: str) -> None:
    """Print `line` the first time `what` is read from the bundle in this process: one line, not one per result."""
    if what not in _told:
        mark_read(what)
        print(line, flush=True)


def mark_read(what: str) -> None:
    """Record that `what` ("results", "records", "foundations") was read from the bundle (see was_read)."""
    _told.add(what)


def was_read(what: str = "results") -> bool:
    """Whether this process read `what` ("results", "records", "foundations") from the bundle: numbers computed on another CPU,
    so a live run here agrees with them bitwise only on a CPU that rounds alike (bundle_check.tolerance)."""
    return what in _told


def results_line() -> str:
    return ("results: the settings grids and ten-seed comparisons come from the shipped bundle (computed on a CPU "
            f"by {REBUILD}); set DOPATUT_RECOMPUTE=1 to recompute them")


def results_words() -> str:
    """Where this process's results came from, for a page's prose after its first read of them: words that agree
    with what that read printed (results_line, once, where they came from the bundle; nothing otherwise)."""
    if was_read("results"):
        return ("read from the shipped bundle, computed on a CPU, as the line above the table says; "
                "`DOPATUT_RECOMPUTE=1` trains them here")
    if recompute_requested():
        return ("trained on this machine by the first run, since `DOPATUT_RECOMPUTE=1` skips the shipped bundle; "
                "later runs read them from the cache")
    return "trained on this machine by the first run; later runs read them from the cache"


def encode(value) -> str:
    """Git-friendly JSON: one value a line, so a rebuilt bundle's diff shows what moved (keys in their order,
    which the tables show)."""
    return json.dumps(value, indent=1) + "\n"
