"""Argument checks shared by every entry point: a bad value fails at once, with its name, its value and what
was expected, instead of deep inside torch or numpy (or not at all)."""
from __future__ import annotations


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_seed(seed, name: str = "seed") -> int:
    """A non-negative int (a seed names a cache file and seeds torch, numpy and the data order)."""
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"{name} must be a non-negative int, got {seed!r}")
    return seed


def check_seeds(seeds, distinct: bool = True, name: str = "seeds") -> list[int]:
    """A non-empty list of (distinct) non-negative ints, or a ValueError that names what is wrong."""
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise ValueError(f"{name} must be a list of non-negative ints, got {seeds!r}")
    seeds = list(seeds)
    if not seeds:
        raise ValueError(f"{name} must name at least one seed, got none")
    bad = [s for s in seeds if not _is_int(s) or s < 0]
    if bad:
        raise ValueError(f"{name} must be non-negative ints, got {bad}")
    if distinct and len(set(seeds)) != len(seeds):
        raise ValueError(f"{name} must be distinct, got {seeds}")
    return seeds


def check_limit(limit, size: int, name: str = "limit", what: str = "the split") -> int | None:
    """None (all) or an int from 1 to `size`."""
    if limit is not None and (not _is_int(limit) or not 1 <= limit <= size):
        raise ValueError(f"{name} must be an int from 1 to {size:,} ({what}), or None for all, got {limit!r}")
    return limit


def refuse_options(method: str, allowed_for: str, **options) -> None:
    """A TypeError if any of `options` (name=value, None meaning unset) is given to a method it does not apply to."""
    given = sorted(name for name, value in options.items() if value is not None)
    if given:
        verb = "applies" if len(given) == 1 else "apply"
        raise TypeError(f"{', '.join(given)} {verb} only to {allowed_for}, not to {method!r}; "
                        f"got {', '.join(f'{n}={options[n]!r}' for n in given)}")
