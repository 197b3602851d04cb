"""The explorer's pictures: each hidden layer as a grid of neurons, receptive fields, and one PNG of
an `AttributionExplorer`'s state (dopatut.analysis.explorer), drawn with PIL."""
from __future__ import annotations

import io
import math

import numpy as np
import torch

from ..analysis.explorer import AttributionExplorer, LayerView

PANEL_PX, FONT_PX = 128, 12  # a 16 x 16 grid of neurons at 8 px each: readable at the text width


def _font():
    from PIL import ImageFont
    return ImageFont.load_default(size=FONT_PX)


def _to_pil(rgb: np.ndarray, size: int):
    from PIL import Image
    return Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8)).resize((size, size), Image.NEAREST)


def layer_picture(view: LayerView) -> np.ndarray:
    """A square grid of the layer's neurons as RGB in [0, 1]: orange by output, blue where the hard
    gate silences a neuron that relu would let fire, red where the reader silenced it."""
    side = math.ceil(math.sqrt(len(view.output)))
    out = view.output.clamp_min(0)
    level = (out / out.max().clamp_min(1e-12)).cpu().numpy()
    rgb = np.ones((side * side, 3))
    rgb[:len(level)] = 1 - level[:, None] * np.array([0.0, 0.55, 0.95])  # white -> orange
    rgb[:len(level)][view.gated_off.cpu().numpy()] = (0.35, 0.55, 0.95)
    rgb[view.silenced] = (0.85, 0.1, 0.1)
    rgb[len(level):] = 0.8
    return rgb.reshape(side, side, 3)


def field_picture(field: torch.Tensor) -> np.ndarray:
    """A receptive field as RGB: red where input ink raises the neuron's drive, blue where it lowers it."""
    f = (field / field.abs().max().clamp_min(1e-12)).cpu().numpy()
    pos, neg = np.clip(f, 0, 1)[..., None], np.clip(-f, 0, 1)[..., None]
    return 1 - pos * np.array([0.0, 0.8, 0.8]) - neg * np.array([0.8, 0.8, 0.0])


def render(explorer: AttributionExplorer, top_k: int = 3) -> bytes:
    """One PNG of the explorer's state: input, probabilities, each hidden layer, top neurons."""
    from PIL import Image, ImageDraw

    font, probs, layers = _font(), explorer.probabilities(), explorer.layers()
    prediction = int(probs.argmax())
    top = explorer.top_neurons(top_k, prediction)
    fields = explorer.receptive_fields(explorer.last_layer, [n for n, _ in top])
    width = PANEL_PX * (1 + len(layers)) + 110 + 150 + 20 * (len(layers) + 2)
    canvas = Image.new("RGB", (width, PANEL_PX + 32), "white")
    draw, x0 = ImageDraw.Draw(canvas), 10
    digit = 1 - explorer.image().float().cpu().numpy() / 255
    canvas.paste(_to_pil(np.repeat(digit[..., None], 3, 2), PANEL_PX), (x0, 20))
    draw.text((x0, 4), f"#{explorer.digit_index}: a {explorer.label}, {explorer.angle_deg:g}°", "black", font)
    x0 += PANEL_PX + 20
    draw.text((x0, 4), f"{explorer.model_name}: {prediction}", "black", font)
    for c, p in enumerate(probs.tolist()):  # probability bars, the prediction in orange
        y = 20 + c * PANEL_PX // 10
        draw.text((x0, y - 1), str(c), "black", font)
        colour = (230, 120, 20) if c == prediction else (120, 120, 120)
        draw.rectangle((x0 + 10, y + 1, x0 + 10 + int(90 * p), y + PANEL_PX // 10 - 2), fill=colour)
    x0 += 110
    for name, view in layers.items():
        canvas.paste(_to_pil(layer_picture(view), PANEL_PX), (x0, 20))
        draw.text((x0, 4), f"{name}: {int(view.firing.sum())} on", "black", font)
        x0 += PANEL_PX + 20
    draw.text((x0, 4), f"top {explorer.last_layer} for {prediction}", "black", font)
    for row, ((neuron, value), field) in enumerate(zip(top, fields)):
        y = 20 + row * (PANEL_PX // top_k)
        canvas.paste(_to_pil(field_picture(field), PANEL_PX // top_k - 4), (x0, y))
        draw.text((x0 + PANEL_PX // top_k + 2, y + 4), f"#{neuron} {value:+.2f}", "black", font)
    buffer = io.BytesIO()
    canvas.quantize(64, method=Image.Quantize.FASTOCTREE).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()
