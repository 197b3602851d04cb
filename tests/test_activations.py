"""The activation classes gated by default, and the rule that makes each gate the identity at init (or says it can't)."""
import sys

import pytest
import torch
from torch import nn

from dopatut.methods.activations import OPEN_TOL, activation_classes, open_threshold
from dopatut.methods.gate import OPEN_AT, GateSet, attach, hardened
from dopatut.methods.builtin import apply_method

Z = torch.linspace(-40, 8, 20_001).unsqueeze(1)


def instances():
    pytest.importorskip("timm.layers")  # imported here, so that dopatut sees their classes
    pytest.importorskip("transformers.activations")
    found = []
    for cls in activation_classes():
        try:
            found.append(cls())
        except TypeError:  # a class that needs arguments (transformers' ClippedGELUActivation)
            continue
    return found


def gated_at_init(act: nn.Module) -> nn.Module:
    model = nn.Sequential(nn.Identity(), act)
    example = torch.zeros(2, 1)
    attach(model, GateSet.for_model(model, targets=["1"], example_input=example), example_input=example)
    return model


def test_the_default_classes_cover_the_three_libraries_and_leave_out_squashing_functions():
    names = {c.__name__ for c in [*activation_classes(), *[type(a) for a in instances()]]}
    assert {"ReLU", "ReLU6", "GELU", "SiLU", "Hardswish", "GELUActivation", "NewGELUActivation",
            "QuickGELUActivation", "GELUTanh", "Swish"} <= names
    assert not {"Sigmoid", "Tanh", "Hardsigmoid", "HardSigmoid", "LinearActivation", "Softmax"} & names
    modules = [c.__module__.split(".")[0] for c in activation_classes()]
    assert {"torch", "transformers", "timm"} <= set(modules)


def test_a_library_that_is_not_imported_is_not_looked_at(monkeypatch):
    for name in list(sys.modules):
        if name.startswith(("transformers", "timm")):
            monkeypatch.delitem(sys.modules, name)
    assert {c.__module__.split(".")[0] for c in activation_classes()} == {"torch"}


def test_the_open_rule_gives_the_documented_thresholds():
    assert {cls: open_threshold(cls())[0] for cls in OPEN_AT} == OPEN_AT
    assert open_threshold(nn.GELU(approximate="tanh")) == (-4.0, True)
    assert open_threshold(nn.Hardswish()) == (-3.0, True) and open_threshold(nn.ReLU6()) == (0.0, True)
    assert open_threshold(nn.LeakyReLU()) == (0.0, False) and open_threshold(nn.ELU()) == (0.0, False)


@pytest.mark.parametrize("act", instances(), ids=lambda a: f"{type(a).__module__.split('.')[0]}.{type(a).__name__}")
def test_every_default_class_is_the_identity_at_init_or_says_what_it_does(act):
    tau, exact = open_threshold(act)
    model = gated_at_init(act)
    with torch.no_grad(), hardened(model):
        out, base = model(Z), act(Z.clone())
    above = Z > tau
    assert torch.equal(out[above], base[above])  # exactly the activation where the drive is above tau
    if exact:
        assert (out[~above] - base[~above]).abs().max() < OPEN_TOL  # and within OPEN_TOL of it below
    else:  # no tau makes it the identity: the gate starts at 0 and cuts the part below
        assert tau == 0.0 and (out[~above] == 0).all() and (base[~above] != 0).any()


def test_the_summary_says_where_the_hard_gate_is_not_the_identity(capsys):
    apply_method(nn.Sequential(nn.Linear(3, 4), nn.LeakyReLU(), nn.Linear(4, 2)), "dopamine")
    assert ("'1' (LeakyReLU) is not near 0 below any drive: its gates start at tau = 0, and the hard gate cuts "
            "its negative part at init") in capsys.readouterr().out
