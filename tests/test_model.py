import pytest
import torch

from dopatut.foundations.model import FoundationMLP, MLPConfig, base_state_dict, count_parameters, freeze


def test_default_foundation_shape_and_counts():
    model = FoundationMLP()
    assert list(model.hidden_layers()) == ["hidden1", "hidden2"]
    assert model(torch.zeros(3, 784)).shape == (3, 10)
    total = 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10
    assert count_parameters(model) == (total, total)
    assert count_parameters(freeze(model)) == (0, total)


def test_width_is_configurable(small_model):
    assert [layer.width for layer in small_model.hidden_layers().values()] == [32, 16]
    assert small_model.head.in_features == 16


@pytest.mark.parametrize("hidden", [(0,), (256, -1), (), (2.5,)])
def test_bad_widths_are_refused(hidden):
    with pytest.raises(ValueError, match="hidden"):
        MLPConfig(hidden=hidden)


def test_wrong_input_shape_names_the_expected_one(small_model):
    with pytest.raises(ValueError, match=r"\(batch, 784\), got \(2, 28, 28\)"):
        small_model(torch.zeros(2, 28, 28))


def test_base_state_dict_leaves_out_gates(small_model):
    from dopatut.methods.gate import GateSet, attach

    keys = set(small_model.state_dict())
    attach(small_model, GateSet.for_model(small_model))
    assert set(base_state_dict(small_model)) == keys != set(small_model.state_dict())
