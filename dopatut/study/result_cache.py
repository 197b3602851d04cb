"""Results kept as JSON, keyed by everything that determines them: the cache first, then the shipped bundle, then computed.

    value = cached("select-mixture-lora", key, compute)   # compute() once per key; results/<name>-<hash>.json
    result_name("select-mixture-lora", key)                 # that file's name, in the cache and in the bundle

The study's results (the grids of dopatut.study.search, the comparisons of dopatut.study.compare, chapter 9's arms) all go
through here, so a result computed once is read by every later chapter, and a cold chapter reads the bundle's.
"""
from __future__ import annotations

import hashlib
import json

from ..foundations import bundle
from ..foundations.cache import cache_dir, check_writable, keep, remembered, training_lock
from ..foundations.checkpoints import atomic_write_bytes

RESULTS_VERSION = 3  # bump when the way results are computed changes (2: matrices trained in a transposed layout;
# 3: frozen weights shared by a stack given once, LoRA evaluated as one product)


def result_name(name: str, key: dict) -> str:
    """The file name of a result in the cache and in the shipped bundle: <name>-<hash of key and version>.json."""
    digest = hashlib.sha256(json.dumps({**key, "version": RESULTS_VERSION}, sort_keys=True,
                                       default=str).encode()).hexdigest()[:12]
    return f"{name}-{digest}.json"


def cached(name: str, key: dict, compute, recompute: bool | None = None):
    """compute() once per key; its JSON result kept in the cache as results/<name>-<hash>.json. Read from the
    cache, else from the shipped bundle under the same name (unless recomputing), else computed."""
    value = lookup(name, key, recompute)
    if value is None:
        check_writable()  # before training, not after
        with training_lock():  # another notebook may be computing the same: wait, then read what it wrote
            value = read_json(cache_dir() / "results" / result_name(name, key))
            if value is None:
                value = store(name, key, compute())
    return value


def lookup(name: str, key: dict, recompute: bool | None = None):
    """The result of (name, key) from the cache, else this session's memory (a full disk), else the shipped
    bundle (unless recomputing); None if none has it."""
    filename = result_name(name, key)
    path = cache_dir() / "results" / filename
    value = read_json(path)
    if value is None:
        value = remembered(path)
    if value is None:
        value = bundle.read_json(f"results/{filename}", recompute)
        if value is not None:
            bundle.tell_once("results", bundle.results_line())
    return value


def store(name: str, key: dict, value):
    """Keep `value` in the cache as the result of (name, key) (in memory where the disk is full); returns it."""
    filename = result_name(name, key)
    path = cache_dir() / "results" / filename
    keep(path, lambda: atomic_write_bytes(path, json.dumps(value).encode()), value, f"the results {filename}")
    return value


def is_cached(name: str, key: dict) -> bool:
    """Whether the cache itself (not the bundle) holds the result of (name, key)."""
    return read_json(cache_dir() / "results" / result_name(name, key)) is not None


def read_json(path):
    if path.exists():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            print(f"cached results at {path.name} unreadable, recomputing them")
    return None
