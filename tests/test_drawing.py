"""The explorer's pictures."""
import torch

from dopatut.showing.drawing import a_digit, field_picture, layer_picture, legend_entries, render
from explorer_models import explorer, models  # noqa: F401  (fixtures)


def test_layer_picture_marks_gated_and_silenced_neurons(explorer):
    explorer.silence("hidden1", 2)
    view = explorer.layers()["hidden1"]
    rgb = layer_picture(view).reshape(-1, 3)
    assert tuple(rgb[2]) == (0.85, 0.1, 0.1)
    off = torch.nonzero(view.gated_off).flatten().tolist()
    assert off and all(tuple(rgb[i]) == (0.35, 0.55, 0.95) for i in off if i != 2)
    assert render(explorer)[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_digit_takes_an_before_eight():
    assert [a_digit(k) for k in (1, 8, 3)] == ["a 1", "an 8", "a 3"]
    assert a_digit(torch.tensor(8)) == "an 8"


def test_field_picture_is_green_for_raise_and_purple_for_lower_never_red_or_blue():
    rgb = field_picture(torch.tensor([[1.0, -1.0, 0.0]]))[0]
    up, down, zero = rgb
    assert up[1] > up[0] and up[1] > up[2]  # green
    assert down[0] > down[1] and down[2] > down[1]  # purple
    assert (zero == 1).all()  # no ink, no colour


def test_legend_names_silenced_only_while_a_neuron_is_silenced(explorer):
    explorer.clear_silenced()
    assert [word for _, word in legend_entries(explorer)] == ["output", "gate: no"]
    explorer.silence("hidden1", 2)
    assert [word for _, word in legend_entries(explorer)][-1] == "silenced"
    silenced = render(explorer)
    explorer.clear_silenced()
    assert render(explorer) != silenced
