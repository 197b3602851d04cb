"""The explorer's pictures: each hidden layer as a grid of neurons, receptive fields, and one PNG of
an `AttributionExplorer`'s state (dopatut.analysis.explorer), drawn with PIL."""
from __future__ import annotations

import io
import math

import numpy as np
import torch

from ..analysis.explorer import AttributionExplorer, LayerView

# Drawn at the book's text width (about 690 px), so the picture is shown at its own size: no scaling down.
WIDTH_PX, PANEL_PX, FONT_PX = 680, 208, 17  # a 16 x 16 grid of neurons at 13 px each


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
    """A receptive field as RGB: green where input ink raises the neuron's drive, purple where it lowers it
    (not red and blue, which the layer grids beside it use for a silenced neuron and a closed gate)."""
    f = (field / field.abs().max().clamp_min(1e-12)).cpu().numpy()
    pos, neg = np.clip(f, 0, 1)[..., None], np.clip(-f, 0, 1)[..., None]
    return 1 - pos * np.array([0.8, 0.3, 0.8]) - neg * np.array([0.3, 0.8, 0.3])


def a_digit(label: int) -> str:
    """'a 3', 'an 8': the article a digit's name takes."""
    return f"{'an' if int(label) == 8 else 'a'} {int(label)}"


def legend_entries(explorer: AttributionExplorer) -> list[tuple[tuple[int, int, int], str]]:
    """The grids' colours and their words, as layer_picture draws them: "silenced" only while a neuron is
    silenced (a precomputed page can silence nothing)."""
    entries = [((230, 120, 20), "output"), ((89, 140, 242), "gate: no")]
    if any(len(neurons) for neurons in explorer.silenced.values()):
        entries.append(((217, 26, 26), "silenced"))
    return entries


FIELD_PX = 96  # a receptive field's tile: three of them run a little below the grids


def render(explorer: AttributionExplorer, top_k: int = 3) -> bytes:
    """One PNG of the explorer's state, WIDTH_PX wide, on two rows: the input and the class probabilities above,
    each hidden layer and the top neurons of the last layer (receptive field and contribution) below."""
    from PIL import Image, ImageDraw

    font, probs, layers = _font(), explorer.probabilities(), explorer.layers()
    prediction = int(probs.argmax())
    top = explorer.top_neurons(top_k, prediction)
    fields = explorer.receptive_fields(explorer.last_layer, [n for n, _ in top])
    line, gap = FONT_PX + 8, 16
    digit_px, bar_px = 5 * line, line // 2  # row 1: the digit as tall as five probability bars
    row2 = line + digit_px + gap  # below the titles, the digit and a gap
    size = FIELD_PX
    fields_px = top_k * (size + 6) - 6
    canvas = Image.new("RGB", (WIDTH_PX, row2 + line + max(PANEL_PX + line + 8, fields_px) + 8), "white")
    draw, x0 = ImageDraw.Draw(canvas), 10
    digit = 1 - explorer.image().float().cpu().numpy() / 255
    draw.text((x0, 4), f"digit #{explorer.digit_index}: {a_digit(explorer.label)}, turned {explorer.angle_deg:g}°", "black", font)
    canvas.paste(_to_pil(np.repeat(digit[..., None], 3, 2), digit_px), (x0, line))
    x0 += PANEL_PX + gap
    draw.text((x0, 4), f"{explorer.model_name} reads {prediction} (p = {float(probs.max()):.2f})", "black", font)
    for c, p in enumerate(probs.tolist()):  # probability bars in two columns of five, the prediction in orange
        x, y = x0 + (c // 5) * 240, line + (c % 5) * line
        draw.text((x, y + 2), str(c), "black", font)
        colour = (230, 120, 20) if c == prediction else (120, 120, 120)
        draw.rectangle((x + 16, y + 4, x + 16 + max(1, int(130 * p)), y + 4 + bar_px), fill=colour)
        if p >= 0.005:
            draw.text((x + 22 + int(130 * p), y + 2), f"{p:.2f}", "black", font)
    x0 = 10
    for name, view in layers.items():
        draw.text((x0, row2), f"{name}: {int(view.firing.sum())} on", "black", font)
        canvas.paste(_to_pil(layer_picture(view), PANEL_PX), (x0, row2 + line))
        x0 += PANEL_PX + gap
    draw.text((x0, row2), f"top {explorer.last_layer} for {prediction}", "black", font)
    for row, ((neuron, value), field) in enumerate(zip(top, fields)):
        y = row2 + line + row * (size + 6)
        canvas.paste(_to_pil(field_picture(field), size), (x0, y))
        draw.text((x0 + size + 8, y + size // 2 - FONT_PX), f"#{neuron}", "black", font)
        draw.text((x0 + size + 8, y + size // 2 + 2), f"{value:+.2f}", "black", font)
    x, y = 10, row2 + line + PANEL_PX + 6  # the legend on one line under the grids
    for colour, word in legend_entries(explorer):
        draw.rectangle((x, y + 4, x + 12, y + 16), fill=colour)
        draw.text((x + 16, y), word, "black", font)
        x += 16 + int(draw.textlength(word, font=font)) + 18
    buffer = io.BytesIO()
    canvas.quantize(64, method=Image.Quantize.FASTOCTREE).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()
