"""Which neurons fire for one digit, and what each adds to the decision: an explorer.

`AttributionExplorer` holds the state (digit, angle, model, silenced neurons) and returns
what a view shows; it is driven from code and tested without a browser. Two thin views sit
on top of it:

    explorer = AttributionExplorer({"frozen": base, "dopamine 45°": dop45})
    explorer_view(explorer)          # live: Python callbacks, needs a kernel
    static_explorer(explorer, ...)   # precomputed pictures switched in the browser, no kernel

Gates are always hard here: at inference a neuron takes part or it does not. Widgets never
train; the models are passed in.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .attribution import hidden_states, last_layer_contributions, silenced
from .data import check_angle, load_mnist, rotate, rotated, to_inputs
from .gate import hardened
from .train import predict_logits


@dataclass
class LayerView:
    """One hidden layer for one input: drive z, output h, hard gate (None without gate), gain, silenced indices."""

    drive: torch.Tensor
    output: torch.Tensor
    gate: torch.Tensor | None
    gain: torch.Tensor | None
    silenced: list[int]

    @property
    def firing(self) -> torch.Tensor:
        return self.output != 0

    @property
    def gated_off(self) -> torch.Tensor:
        """Neurons whose relu would fire (z > 0) but whose gate keeps them silent."""
        if self.gate is None:
            return torch.zeros_like(self.firing)
        return (self.drive > 0) & (self.gate == 0)


@torch.no_grad()
def input_patterns(model: nn.Module, x: torch.Tensor, layer: str, neurons=None) -> torch.Tensor:
    """d z / d x for each neuron of `layer` (all, or the listed `neurons`) at the single input x:
    (neurons, in_features).

    With hard gates and relu the network is piecewise linear, so around x each neuron's drive
    is exactly this pattern dotted with the input plus a constant: its receptive field *for this
    input*. For the first layer it is the weight row itself, whatever x is.
    """
    if x.dim() != 2 or len(x) != 1:
        raise ValueError(f"x must be one input of shape (1, features), got {tuple(x.shape)}")
    layers = model.hidden_layers()
    if layer not in layers:
        raise ValueError(f"unknown hidden layer {layer!r}; the model has {list(layers)}")
    states, weights, slopes = hidden_states(model, x), [], []
    for name, hidden in layers.items():
        weights.append(hidden.linear.weight.detach())  # a LoRA layer's effective weight
        if name == layer:
            break
        z, h = states[name]["drive"][0], states[name]["output"][0]
        slopes.append(torch.where(z > 0, h / torch.where(z > 0, z, torch.ones_like(z)), torch.zeros_like(z)))
    # dz/dx = W_k diag(s_{k-1}) W_{k-1} ... diag(s_1) W_1, multiplied from the left: cheap for a few rows
    pattern = weights[-1] if neurons is None else weights[-1][list(neurons)]
    for weight, slope in zip(reversed(weights[:-1]), reversed(slopes)):
        pattern = (pattern * slope) @ weight
    return pattern


class AttributionExplorer:
    """The explorer's state and everything its views show, computed with hard gates."""

    def __init__(self, models: dict[str, nn.Module], split: str = "test", digit_index: int = 0,
                 angle_deg: float = 0.0, model_name: str | None = None):
        if not models:
            raise ValueError("models must name at least one model, got an empty dict")
        self.models = dict(models)
        self.split = split
        self.images, self.labels = load_mnist(verbose=False).split(split)
        self.digit_index = digit_index
        self.angle_deg = angle_deg
        self.model_name = model_name if model_name is not None else next(iter(self.models))
        self.silenced: dict[str, set[int]] = {}

    # --- state -------------------------------------------------------------------------
    @property
    def digit_index(self) -> int:
        return self._digit_index

    @digit_index.setter
    def digit_index(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < len(self.labels):
            raise ValueError(f"digit_index must be an int in [0, {len(self.labels)}), got {value!r}")
        self._digit_index = int(value)

    @property
    def angle_deg(self) -> float:
        return self._angle_deg

    @angle_deg.setter
    def angle_deg(self, value: float) -> None:
        self._angle_deg = check_angle(value)

    @property
    def model_name(self) -> str:
        return self._model_name

    @model_name.setter
    def model_name(self, value: str) -> None:
        if value not in self.models:
            raise ValueError(f"unknown model {value!r}; expected one of {list(self.models)}")
        self._model_name = value

    @property
    def model(self) -> nn.Module:
        return self.models[self.model_name]

    def silence(self, layer: str, neuron: int) -> None:
        layers = self._layers()
        if layer not in layers:
            raise ValueError(f"unknown hidden layer {layer!r}; the model has {list(layers)}")
        width = layers[layer].width
        if not 0 <= neuron < width:
            raise ValueError(f"neuron must be in [0, {width}) for {layer!r}, got {neuron}")
        self.silenced.setdefault(layer, set()).add(int(neuron))

    def unsilence(self, layer: str, neuron: int) -> None:
        self.silenced.get(layer, set()).discard(int(neuron))

    def clear_silenced(self) -> None:
        self.silenced = {}

    def next_digit(self, label: int) -> int:
        """Move to the next digit (after the current one, wrapping) whose label is `label`."""
        return self._move_to(self.labels == label, f"no digit with label {label!r}")

    def next_mistake(self, model_name: str | None = None) -> int:
        """Move to the next digit that `model_name` (default: the current model) gets wrong at this angle."""
        model = self.models[model_name or self.model_name]
        x = to_inputs(rotated(self.split, self.angle_deg)[0])
        with hardened(model):
            wrong = predict_logits(model, x).argmax(1) != self.labels
        return self._move_to(wrong, f"{model_name or self.model_name} makes no mistake at {self.angle_deg:g}°")

    def _move_to(self, mask: torch.Tensor, error: str) -> int:
        order = (torch.arange(len(mask)) - self.digit_index - 1) % len(mask)  # 0 for the digit after this one
        if not mask.any():
            raise ValueError(error)
        self.digit_index = int(torch.nonzero(mask)[order[mask].argmin()])
        return self.digit_index

    # --- what the views show ---------------------------------------------------------------
    def _layers(self):
        return self.model.hidden_layers()

    def _silenced_lists(self) -> dict[str, list[int]]:
        return {k: sorted(v) for k, v in self.silenced.items() if v}

    @property
    def label(self) -> int:
        return int(self.labels[self.digit_index])

    def image(self) -> torch.Tensor:
        """The digit at the current angle, uint8 (28, 28)."""
        return rotate(self.images[self.digit_index:self.digit_index + 1], self.angle_deg)[0]

    def inputs(self) -> torch.Tensor:
        return to_inputs(self.image()[None])

    def _run(self, fn):
        with hardened(self.model), silenced(self.model, self._silenced_lists()):
            return fn(self.model, self.inputs())

    def logits(self) -> torch.Tensor:
        return self._run(lambda m, x: predict_logits(m, x)[0])

    def probabilities(self) -> torch.Tensor:
        return torch.softmax(self.logits(), 0)

    @property
    def prediction(self) -> int:
        return int(self.logits().argmax())

    def layers(self) -> dict[str, LayerView]:
        states = self._run(hidden_states)
        views = {}
        for name, layer in self._layers().items():
            s, gate = states[name], layer.gate
            views[name] = LayerView(s["drive"][0], s["output"][0], None if s["gate"] is None else s["gate"][0],
                                    None if gate is None else gate.gain.detach().clone(),
                                    sorted(self.silenced.get(name, ())))
        return views

    def contributions(self, class_idx: int | None = None) -> tuple[torch.Tensor, float]:
        """Exact contribution of each last-layer neuron to the logit of `class_idx` (default: the prediction),
        and the head's bias: contributions.sum() + bias is that logit."""
        c = self.prediction if class_idx is None else class_idx
        contrib, bias = self._run(last_layer_contributions)
        return contrib[0, :, c], float(bias[c])

    def top_neurons(self, k: int = 5, class_idx: int | None = None) -> list[tuple[int, float]]:
        """The k last-layer neurons that add most to the logit of `class_idx`, with their contributions."""
        contrib, _ = self.contributions(class_idx)
        values, idx = contrib.topk(min(k, len(contrib)))
        return [(int(i), float(v)) for i, v in zip(idx, values)]

    def gradient_x_activation(self, layer: str, class_idx: int | None = None) -> torch.Tensor:
        """h_i * d logit / d h_i for each neuron of `layer` (Captum's LayerGradientXActivation).
        For the last hidden layer this is the exact contribution; for an earlier layer it is only the
        local linear share, since silencing a neuron can switch gates further up."""
        c = self.prediction if class_idx is None else class_idx
        captured = {}

        def keep(module, inputs, output):
            captured["h"] = output.detach().requires_grad_(True)
            return captured["h"]

        handle = self._layers()[layer].register_forward_hook(keep)
        try:
            with torch.enable_grad():
                logit = self._run(lambda m, x: m(x))[0, c]
                grad, = torch.autograd.grad(logit, captured["h"])
        finally:
            handle.remove()
        return (captured["h"] * grad).detach()[0]

    def silencing_effects(self, layer: str, neurons, class_idx: int | None = None) -> torch.Tensor:
        """How much the logit of `class_idx` drops when each listed neuron alone is silenced."""
        c = self.prediction if class_idx is None else class_idx
        before, effects = float(self.logits()[c]), []
        for n in neurons:
            extra = {**self._silenced_lists()}
            extra[layer] = sorted({*extra.get(layer, []), int(n)})
            with hardened(self.model), silenced(self.model, extra):
                effects.append(before - float(predict_logits(self.model, self.inputs())[0, c]))
        return torch.tensor(effects)

    @property
    def last_layer(self) -> str:
        return list(self._layers())[-1]

    def receptive_field(self, layer: str, neuron: int) -> torch.Tensor:
        """What the neuron responds to at this input, as a 28x28 picture (see `input_patterns`)."""
        return self.receptive_fields(layer, [neuron])[0]

    def receptive_fields(self, layer: str, neurons) -> torch.Tensor:
        """Receptive fields of several neurons of `layer` at once: (len(neurons), 28, 28)."""
        return self._run(lambda m, x: input_patterns(m, x, layer, neurons)).reshape(-1, 28, 28)


@torch.no_grad()
def firing_rates(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per hidden layer, the fraction of the inputs x for which each neuron fires (hard gates): (width,)."""
    with hardened(model):
        states = hidden_states(model, x)
    return {name: (s["output"] != 0).float().mean(0) for name, s in states.items() if name != "logits"}


# --- pictures ---------------------------------------------------------------------------------
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


# --- views ------------------------------------------------------------------------------------
def explorer_view(explorer: AttributionExplorer, top_k: int = 8):
    """The live explorer: controls that set the state, a picture, and ticks to silence top neurons.
    Python callbacks: it responds in a running kernel (Jupyter, Colab), not on a static page."""
    import ipywidgets as w

    digit = w.BoundedIntText(explorer.digit_index, min=0, max=len(explorer.labels) - 1, description="digit #")
    label = w.Dropdown(options=list(range(10)), value=explorer.label, description="next a", layout={"width": "150px"})
    next_label, mistake = w.Button(description="next"), w.Button(description="next mistake")
    angle = w.FloatSlider(explorer.angle_deg, min=0, max=90, step=5, description="angle (°)")
    model = w.ToggleButtons(options=list(explorer.models), value=explorer.model_name, description="model")
    picture, ticks, status = w.Image(format="png"), w.VBox(), w.HTML()

    def refresh(*_):
        picture.value = render(explorer)
        boxes = []
        for neuron, value in explorer.top_neurons(top_k):
            box = w.Checkbox(neuron in explorer.silenced.get(explorer.last_layer, ()),
                             description=f"silence {explorer.last_layer} #{neuron} ({value:+.2f})", indent=False)
            box.observe(lambda change, n=neuron: toggle(n, change["new"]), "value")
            boxes.append(box)
        ticks.children = boxes
        p = explorer.probabilities()
        status.value = f"prediction {explorer.prediction} with p = {float(p.max()):.3f}; true label {explorer.label}"

    def toggle(neuron, on):
        (explorer.silence if on else explorer.unsilence)(explorer.last_layer, neuron)
        refresh()

    def set_state(**kwargs):
        for key, value in kwargs.items():
            setattr(explorer, key, value)
        digit.value = explorer.digit_index
        refresh()

    digit.observe(lambda c: set_state(digit_index=c["new"]), "value")
    angle.observe(lambda c: set_state(angle_deg=c["new"]), "value")
    model.observe(lambda c: set_state(model_name=c["new"]), "value")
    next_label.on_click(lambda _: set_state(digit_index=explorer.next_digit(label.value)))
    mistake.on_click(lambda _: set_state(digit_index=explorer.next_mistake()))
    refresh()
    return w.VBox([w.HBox([digit, label, next_label, mistake]), angle, model, picture, status, ticks])


def static_explorer(explorer: AttributionExplorer, digit_indices, angles_deg, model_names=None):
    """A kernel-free explorer: one picture per (model, digit, angle), precomputed, in nested `Stack`s
    whose selected child follows the sliders through `jslink`, so the page's JavaScript switches them."""
    import ipywidgets as w

    model_names = list(model_names or explorer.models)
    state = (explorer.digit_index, explorer.angle_deg, explorer.model_name, explorer.silenced)
    explorer.silenced = {}
    model = w.ToggleButtons(options=model_names, description="model")
    digit = w.IntSlider(0, min=0, max=len(digit_indices) - 1, description="digit")
    angle = w.SelectionSlider(options=[f"{a:g}°" for a in angles_deg], description="angle")
    links, per_model, threads = [], [], torch.get_num_threads()
    torch.set_num_threads(1)  # one input at a time: threads only add overhead, the more so on a busy machine
    try:
        for name in model_names:
            per_digit = []
            for i in digit_indices:
                pictures = []
                for a in angles_deg:
                    explorer.digit_index, explorer.angle_deg, explorer.model_name = i, a, name
                    pictures.append(w.Image(value=render(explorer), format="png"))
                per_digit.append(w.Stack(pictures, selected_index=0))
                links.append(w.jslink((angle, "index"), (per_digit[-1], "selected_index")))
            per_model.append(w.Stack(per_digit, selected_index=0))
            links.append(w.jslink((digit, "value"), (per_model[-1], "selected_index")))
    finally:
        torch.set_num_threads(threads)
        explorer.digit_index, explorer.angle_deg, explorer.model_name, explorer.silenced = state
    views = w.Stack(per_model, selected_index=0)
    links.append(w.jslink((model, "index"), (views, "selected_index")))
    box = w.VBox([model, w.HBox([digit, angle]), views])
    box.links = links  # keep the links alive with the view
    return box
