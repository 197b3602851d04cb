"""The explorer's pictures."""
import torch

from dopatut.showing.drawing import layer_picture, render
from explorer_models import explorer, models  # noqa: F401  (fixtures)


def test_layer_picture_marks_gated_and_silenced_neurons(explorer):
    explorer.silence("hidden1", 2)
    view = explorer.layers()["hidden1"]
    rgb = layer_picture(view).reshape(-1, 3)
    assert tuple(rgb[2]) == (0.85, 0.1, 0.1)
    off = torch.nonzero(view.gated_off).flatten().tolist()
    assert off and all(tuple(rgb[i]) == (0.35, 0.55, 0.95) for i in off if i != 2)
    assert render(explorer)[:8] == b"\x89PNG\r\n\x1a\n"
