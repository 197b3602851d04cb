"""Where gates go: places read from a forward pass, the neurons' axis, example inputs."""
import pytest
import torch
from torch import nn

from dopatut.methods.places import example_input, probe, split_key


class ActFirst(nn.Module):
    """The activation registered before the layer that computes its input (as transformers 5's ViT does), and a
    sum written in forward feeding a second call of the same module."""

    def __init__(self):
        super().__init__()
        self.act = nn.GELU()
        self.fc1, self.fc2 = nn.Linear(6, 24), nn.Linear(24, 6)

    def forward(self, x):
        h = self.act(self.fc1(x))
        return self.act(self.fc2(h) + x)


def test_places_come_from_the_drive_in_call_order():
    found = probe(ActFirst(), ["act"], torch.zeros(3, 5, 6))
    assert [(p.key, p.width, p.axis) for p in found.places["act"]] == [("act[0]", 24, -1), ("act[1]", 6, -1)]
    assert found.linears == ["fc1", "fc2"]


def test_channels_lie_on_axis_1_after_a_convolution_and_last_after_a_linear_even_in_4d():
    conv = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    channels_last = nn.Sequential(nn.Linear(3, 5), nn.ReLU())
    assert probe(conv, ["1"], torch.zeros(2, 3, 8, 8)).places["1"][0].axis == 1
    place = probe(channels_last, ["1"], torch.zeros(2, 4, 4, 3)).places["1"][0]
    assert (place.axis, place.width) == (-1, 5)


def test_the_probe_leaves_modes_and_the_random_state_as_they_were():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.ReLU()).train()
    state = torch.random.get_rng_state()
    probe(model, ["2"])
    assert model.training and all(m.training for m in model.modules())
    assert torch.equal(torch.random.get_rng_state(), state)


def test_example_inputs_and_keys():
    assert example_input(nn.Sequential(nn.Linear(7, 2))).shape == (2, 7)
    assert example_input(nn.Sequential(nn.Conv2d(5, 2, 3))).shape == (2, 5, 32, 32)
    with pytest.raises(ValueError, match="cannot make an example input for Sequential: it has no Linear, Conv2d or "
                                         "Embedding layer; pass one: example_input="):
        example_input(nn.Sequential(nn.ReLU()))
    assert split_key("layer1.0.relu[1]") == ("layer1.0.relu", 1)
    assert split_key("hidden.hidden1.act") == ("hidden.hidden1.act", None)
