"""One registry of methods: the eight defined once, and a reader's own running through the whole protocol."""
from dataclasses import dataclass, replace

import pytest
import torch
from torch import nn

import dopatut.study.compare as compare
from dopatut.study.compare import compare as run_comparison, differences, select
from dopatut.methods.gate import GateSet, attach
from dopatut.methods.builtin import GATE_METHODS, METHODS, apply_method
from dopatut.study.perf import run_flops
from dopatut.study.pipeline import foundation, specialise
from dopatut.training.train import TrainConfig
from dopatut.study.protocol import GRIDS, PROTOCOL
from dopatut.methods.pretrained import from_pretrained, save_pretrained
from dopatut.methods.registry import Method, MethodConfig, _REGISTRY, check_target_modules, get_method, register_method

from test_compare import TINY, TINY_SPEC


def attach_gates_without_gain(model, options, context):
    """A reader's variant: Dopamine's thresholds, its gains fixed at 1 (threshold-only under another name)."""
    gates = GateSet.for_model(model, options.get("targets"), context.example_input, learn_gain=False)
    attach(model, gates, check=False)


@pytest.fixture
def mine():
    method = register_method(Method("no_gain", "gates without gains", "thresholds alone", attach_gates_without_gain,
                                    ("targets",), {"lr": (1e-2, 3e-2)}, flops="from_first"))
    yield method
    _REGISTRY.pop("no_gain")


def test_the_eight_are_defined_once_and_everything_reads_them():
    assert METHODS == ("frozen", "dopamine", "gain_only", "threshold_only", "bitfit", "head", "lora", "full")
    assert GATE_METHODS == ("dopamine", "gain_only", "threshold_only")
    assert GRIDS == {m: get_method(m).grid for m in METHODS if m != "frozen"}
    assert PROTOCOL.config("lora", {"lr": 1e-3, "alpha": 16.0}, 0)[1] == {"rank": 4, "alpha": 16.0}
    # the grid's temperature axis is the gates' setting: it goes to the method, the TrainConfig holds what all share
    assert PROTOCOL.config("dopamine", {"lr": 0.03, "temperature": (1.0, 0.01)}, 2) == (
        TrainConfig(epochs=PROTOCOL.epochs, batch_size=PROTOCOL.batch_size, lr=0.03, seed=2),
        {"temperature": (1.0, 0.01)})
    with pytest.raises(ValueError, match=r"unknown settings \['temperature'\] for 'lora'; expected lr, alpha"):
        PROTOCOL.config("lora", {"lr": 1e-3, "temperature": (1.0, 0.1)}, 0)
    assert get_method("gain_only").display == "gain-only"
    with pytest.raises(ValueError, match="unknown method 'lorax'; expected one of frozen, dopamine"):
        get_method("lorax")
    with pytest.raises(ValueError, match="a method named 'lora' is registered already$"):
        register_method(replace(get_method("lora"), builtin=False), replace=True)
    with pytest.raises(ValueError, match="grid must be a dict with at least an 'lr' axis"):
        Method("bad", "bad", "", None, grid={"alpha": (1.0,)})


def test_a_readers_method_runs_through_the_protocol_and_is_paired_with_dopamine(mine, tiny):
    model = apply_method(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), "no_gain", verbose=False)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 8
    with pytest.raises(TypeError, match=r"rank applies only to lora, not to 'no_gain' \(its options: targets\)"):
        apply_method(nn.Sequential(nn.Linear(4, 8), nn.ReLU()), "no_gain", rank=2, verbose=False)
    assert run_flops("no_gain", [(784, 16), (16, 10)], 10) == run_flops("threshold_only", [(784, 16), (16, 10)], 10)
    chosen = select("no_gain", "mixture", TINY)
    assert chosen.settings == [{"lr": 1e-2}, {"lr": 3e-2}]
    runs = run_comparison("mixture", ("dopamine", "no_gain"), TINY, progress=False)
    paired = differences(runs)["no_gain"]
    assert len(runs["no_gain"]) == len(TINY.seeds) and paired.ci_low <= paired.mean <= paired.ci_high


def test_a_readers_method_trains_as_the_builtin_it_copies(mine, tiny):
    base = foundation(0, TINY_SPEC, progress=False)
    config = TrainConfig(epochs=1, batch_size=512, lr=3e-2)
    results = [specialise(base, m, config=config, train_limit=2048, progress=False)[1].accuracy
               for m in ("threshold_only", "no_gain")]
    assert results[0] == results[1]


def test_a_readers_method_is_cached_by_its_definition(mine, tiny, monkeypatch):
    select("no_gain", "mixture", TINY)
    register_method(replace(mine, grid={"lr": (1e-2,)}), replace=True)  # redefined: not read from the cache
    assert select("no_gain", "mixture", TINY).settings == [{"lr": 1e-2}]


@dataclass(frozen=True)
class GainsConfig(MethodConfig):
    """A reader's own config: where the gains go, and where they start."""
    target_modules: object = None
    gain_init: float = 1.0

    def __post_init__(self):
        check_target_modules(self)
        if not self.gain_init > 0:
            raise ValueError(f"GainsConfig.gain_init must be > 0, got {self.gain_init!r}")


def attach_gains(model, config, context):
    gates = GateSet.for_model(model, config.target_modules, context.example_input, learn_threshold=False,
                              gain_init=config.gain_init)
    attach(model, gates, check=False)


@pytest.fixture
def gains():
    method = register_method(Method("gains", "gains", "a gain per neuron", attach_gains, grid={"lr": (1e-2,)},
                                    flops="from_first", config_cls=GainsConfig))
    yield method
    _REGISTRY.pop("gains")


def test_a_readers_config_gives_its_options_is_applied_saved_and_read_back(gains, tmp_path):
    assert gains.options == ("targets", "gain_init")
    base = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    model = apply_method(base, GainsConfig(target_modules=["1"], gain_init=2.0), verbose=False)
    assert model.method == "gains" and torch.equal(model[1].gate.gain, torch.full((8,), 2.0))
    same = apply_method(base, "gains", targets=["1"], gain_init=2.0, verbose=False)
    assert same.method_config == model.method_config
    with pytest.raises(ValueError, match="GainsConfig.gain_init must be > 0, got -1"):
        apply_method(base, "gains", gain_init=-1)
    with pytest.raises(TypeError, match=r"rank applies only to lora, not to 'gains' \(its options: targets, gain_init\)"):
        apply_method(base, "gains", rank=2)
    again = from_pretrained(base, save_pretrained(model, tmp_path / "gains"))
    assert again.method_config == GainsConfig(target_modules=["1"], gain_init=2.0)
    assert get_method("gains").fingerprint()["definition"]["config"] == "test_registry.GainsConfig"


def test_a_config_class_belongs_to_one_method(gains):
    with pytest.raises(ValueError, match="its config class GainsConfig is 'gains''s already"):
        register_method(Method("gains2", "gains", "", attach_gains, config_cls=GainsConfig))
    with pytest.raises(ValueError, match="config_cls must be a subclass of dopatut.methods.registry.MethodConfig"):
        Method("bad", "bad", "", None, config_cls=dict)
    with pytest.raises(ValueError, match=r"options \('targets',\) are not its config's fields"):
        Method("bad", "bad", "", None, options=("targets",), config_cls=GainsConfig)


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    monkeypatch.setenv("DOPATUT_CACHE", str(tmp_path))
    monkeypatch.setitem(compare.FOUNDATIONS, "mixture", TINY_SPEC)
    monkeypatch.setitem(compare.FOUNDATIONS, "upright", replace(TINY_SPEC, angles=(0.0,)))
