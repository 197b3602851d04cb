import pytest
import torch

from dopatut.methods import METHODS, apply_method
from dopatut.model import FoundationMLP, count_parameters


@pytest.fixture(scope="module")
def foundation():
    torch.manual_seed(0)
    return FoundationMLP()


@pytest.mark.parametrize("method, expected", [
    ("frozen", 0),
    ("dopamine", 2 * (256 + 256)),
    ("gain_only", 256 + 256),
    ("threshold_only", 256 + 256),
    ("bitfit", 256 + 256 + 10),
    ("head", 256 * 10 + 10),
    ("lora", 4 * (784 + 256) + 4 * (256 + 256) + 4 * (256 + 10)),
    ("full", 784 * 256 + 256 + 256 * 256 + 256 + 2570),
])
def test_trainable_counts_are_exact(foundation, method, expected):
    assert count_parameters(apply_method(foundation, method, verbose=False))[0] == expected


def test_methods_leave_the_foundation_untouched(foundation):
    before = {k: v.clone() for k, v in foundation.state_dict().items()}
    for method in METHODS:
        apply_method(foundation, method, verbose=False)
    assert all(torch.equal(before[k], v) for k, v in foundation.state_dict().items())
    assert all(p.requires_grad for p in foundation.parameters())


def test_unknown_method_lists_the_known_ones(foundation):
    with pytest.raises(ValueError, match="unknown method 'loRA'; expected one of frozen, dopamine"):
        apply_method(foundation, "loRA")


def test_lora_targets_are_checked(foundation):
    model = apply_method(foundation, "lora", rank=2, targets=["head"], verbose=False)
    assert count_parameters(model)[0] == 2 * (256 + 10)
    with pytest.raises(ValueError, match="target 'hidden9' matches no module; modules of the right kind \\(Linear, Conv2d(, Conv1D)?\\) are "
                                         "\\['hidden.hidden1.linear', 'hidden.hidden2.linear', 'head'\\]"):
        apply_method(foundation, "lora", targets=["hidden9"])


def test_summary_is_printed(foundation, capsys):
    apply_method(foundation, "dopamine")
    assert "dopamine: 1,024 trainable of" in capsys.readouterr().out
