"""Every public entry point refuses bad arguments at once, naming the argument, the value and what it expects.

One table: (entry point, call, exception, message). Each call would train or load data if its check were
missing, so a check that stops working fails here (and the no-training guard makes that loud)."""
import copy

import pytest
import torch

from dopatut.study import compare
from dopatut.study import pipeline
from dopatut.study import search
from dopatut.training import stack
from dopatut.study import sweeps
from dopatut.methods.builtin import apply_method
from dopatut.foundations.model import FoundationMLP, MLPConfig, freeze
from dopatut.study.pipeline import foundation, foundations, specialise, specialise_many
from dopatut.study.protocol import PROTOCOL
from dopatut.training.train import TrainConfig, fit

BASE = FoundationMLP(MLPConfig(hidden=(8, 8)))
CONFIG = TrainConfig(epochs=1)
X, Y = torch.zeros(4, 784), torch.zeros(4, dtype=torch.long)
SEED = "seed must be a non-negative int, got {}"
LIMIT = r"train_limit must be an int from 1 to 50,000 \(the 'train' split\), or None for all, got {}"

BAD_SEEDS = [1.5, -1, True, "0", None]
BAD_LIMITS = [-5, 0, 1.5, 50_001, "100"]


def _seed_cases():
    entry_points = {
        "foundation": lambda s: foundation(seed=s, progress=False),
        "specialise": lambda s: specialise(BASE, "dopamine", seed=s, config=CONFIG, progress=False),
        "TrainConfig / fit": lambda s: fit(apply_method(BASE, "head", verbose=False), X, Y, TrainConfig(seed=s)),
        "adapt": lambda s: sweeps.adapt(BASE, "dopamine", seed=s),
        "adapt_angles": lambda s: sweeps.adapt_angles(BASE, "dopamine", [45], seed=s),
        "quick_foundation": lambda s: sweeps.quick_foundation(seed=s),
        "protocol_config": lambda s: compare.protocol_config("dopamine", "mixture", s),
        "Protocol.config": lambda s: PROTOCOL.config("dopamine", {}, s),
    }
    for name, call in entry_points.items():
        for s in BAD_SEEDS:
            yield pytest.param(call, s, ValueError, SEED.format(repr(s)).replace("(", r"\(").replace(")", r"\)"),
                               id=f"{name}-seed={s!r}")


def _limit_cases():
    entry_points = {
        "specialise": lambda n: specialise(BASE, "dopamine", config=CONFIG, train_limit=n, progress=False),
        "specialise_many": lambda n: specialise_many([BASE], "dopamine", [0], CONFIG, train_limit=n, progress=False),
        "adapt": lambda n: sweeps.adapt(BASE, "dopamine", train_limit=n),
        "adapt_angles": lambda n: sweeps.adapt_angles(BASE, "dopamine", [45], train_limit=n),
        "quick_foundation": lambda n: sweeps.quick_foundation(train_limit=n),
    }
    for name, call in entry_points.items():
        for n in BAD_LIMITS:
            yield pytest.param(call, n, ValueError, LIMIT.format(repr(n)), id=f"{name}-train_limit={n!r}")


SEEDS_LISTS = [([], "seeds must name at least one seed, got none"),
               ([1, 1], r"seeds must be distinct, got \[1, 1\]"),
               ([0, 1.5], r"seeds must be non-negative ints, got \[1.5\]"),
               ("01", "seeds must be a list of non-negative ints, got '01'")]

OTHER_CASES = [
    # method-specific options refused for the wrong method
    ("apply_method rank for dopamine", lambda: apply_method(BASE, "dopamine", rank=4), TypeError,
     r"rank applies only to lora, not to 'dopamine' \(its options: targets, .*\); got rank=4"),
    ("specialise rank for dopamine", lambda: specialise(BASE, "dopamine", config=CONFIG, rank=4, progress=False),
     TypeError, r"rank applies only to lora, not to 'dopamine'"),
    ("apply_method alpha, rank for bitfit", lambda: apply_method(BASE, "bitfit", alpha=8.0, rank=2, targets=["head"]),
     TypeError, r"alpha, rank apply only to lora, not to 'bitfit'"),
    ("apply_method targets for full", lambda: apply_method(BASE, "full", targets=["head"]),
     TypeError, r"targets applies only to dopamine, gain_only, threshold_only, bitfit, head, lora, not to 'full'"),
    ("apply_method temperature for lora", lambda: apply_method(BASE, "lora", temperature=0.5), TypeError,
     r"temperature applies only to dopamine, gain_only, threshold_only, not to 'lora'"),
    ("specialise temperature for lora", lambda: specialise(BASE, "lora", config=CONFIG, temperature=0.5,
                                                           progress=False), TypeError, "temperature applies only"),
    ("adapt rank for head", lambda: sweeps.adapt(BASE, "head", config=CONFIG, rank=2), TypeError,
     "rank applies only to lora, not to 'head'"),
    # unknown names
    ("apply_method unknown method", lambda: apply_method(BASE, "lorax"), ValueError, "unknown method 'lorax'; expected"),
    ("specialise unknown method", lambda: specialise(BASE, "Dopamine", config=CONFIG, progress=False), ValueError,
     "unknown method 'Dopamine'"),
    ("select unknown method", lambda: compare.select("lorax"), ValueError, "unknown method 'lorax'"),
    ("select unknown foundation", lambda: compare.select("lora", "mix"), ValueError, "unknown foundation 'mix'; expected"),
    ("compare unknown foundation", lambda: compare.compare("mix"), ValueError, "unknown foundation 'mix'"),
    ("compare unknown method", lambda: compare.compare("mixture", ["lorax"]), ValueError, "unknown method 'lorax'"),
    ("grid unknown method", lambda: PROTOCOL.grid("lorax"), ValueError, "unknown method 'lorax'"),
    ("Protocol.config unknown setting", lambda: PROTOCOL.config("lora", {"rank": 8}, 0), ValueError,
     r"unknown settings \['rank'\] for 'lora'"),
    # angles and shapes
    ("specialise angle", lambda: specialise(BASE, "dopamine", angle_deg="45", config=CONFIG, progress=False), TypeError,
     "angle_deg must be a finite number of degrees, got '45'"),
    ("adapt_angles no angles", lambda: sweeps.adapt_angles(BASE, "dopamine", []), ValueError,
     "angles_deg must name at least one angle, got none"),
    ("specialise_many lengths", lambda: specialise_many([BASE], "dopamine", [0, 1], CONFIG), ValueError,
     "give one base and one angle per seed: 1 bases, 1 angles, 2 seeds"),
    ("fit lengths", lambda: fit(apply_method(BASE, "head", verbose=False), X, Y[:3], CONFIG), ValueError,
     "x has 4 samples but y has 3"),
    ("fit nothing to train", lambda: fit(freeze(copy.deepcopy(BASE)), X, Y, CONFIG), ValueError, "model has no trainable parameters"),
    ("TrainConfig epochs", lambda: TrainConfig(epochs=0), ValueError, "epochs must be an int >= 1, got 0"),
    ("TrainConfig lr", lambda: TrainConfig(lr=-1.0), ValueError, r"lr must be > 0, got -1.0"),
]


@pytest.fixture(autouse=True)
def _nothing_trains(monkeypatch):
    """A check that stopped working would start training: fail loudly instead of training."""
    def refuse(*args, **kwargs):
        raise AssertionError("training started: an argument check is missing")
    monkeypatch.setattr(stack, "fit_many", refuse)
    for module in (pipeline, sweeps):
        monkeypatch.setattr(module, "fit_many", refuse)
    for module in (compare, search):  # protocol_config lives in search, and calls its select
        monkeypatch.setattr(module, "select", _guarded(search.select))


def _guarded(select):
    def checked(method, kind="mixture", *args, **kwargs):
        compare._check_method(method), compare._spec(kind)
        raise AssertionError("settings selection started: an argument check is missing")
    return checked


@pytest.mark.parametrize("call, value, error, message", [*_seed_cases(), *_limit_cases()])
def test_bad_seeds_and_limits_are_named(call, value, error, message):
    with pytest.raises(error, match=f"^{message}$"):
        call(value)


SEED_LIST_CALLS = {
    "foundations": lambda seeds: foundations(seeds, progress=False),
    "specialise_many": lambda seeds: specialise_many([BASE] * 2, "dopamine", seeds, CONFIG, progress=False),
    "Protocol": lambda seeds: type(PROTOCOL)(seeds=seeds),
}
# specialise_many allows a repeated seed: a settings grid runs one seed with several settings.
SEED_LIST_CASES = [pytest.param(entry, seeds, message, id=f"{entry}-{seeds!r}")
                   for entry in SEED_LIST_CALLS for seeds, message in SEEDS_LISTS
                   if not (entry == "specialise_many" and seeds == [1, 1])]


@pytest.mark.parametrize("entry, seeds, message", SEED_LIST_CASES)
def test_bad_seed_lists_are_named(entry, seeds, message):
    with pytest.raises(ValueError, match=message):
        SEED_LIST_CALLS[entry](seeds)


@pytest.mark.parametrize("name, call, error, message", OTHER_CASES, ids=[c[0] for c in OTHER_CASES])
def test_other_bad_arguments(name, call, error, message):
    with pytest.raises(error, match=message):
        call()
