"""The attribution explorer's state and everything its views show, computed with hard gates.

`AttributionExplorer` holds the state (digit, angle, model, silenced neurons) and returns what a
view shows (logits, each layer's `LayerView`, exact contributions, receptive fields); it is driven
from code and tested without a browser. Its pictures are drawn by dopatut.showing.drawing and its views are
in dopatut.showing.widgets. Gates are always hard here: at inference a neuron takes part or it does not.
The models are passed in; nothing here trains.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .attribution import fires, hidden_states, last_layer_contributions, silenced
from ..foundations.data import check_angle, load_mnist, rotate, rotated, to_inputs
from ..methods.gate import hardened
from ..training.train import predict_logits


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
        return fires(self._state())

    @property
    def gated_off(self) -> torch.Tensor:
        """Neurons whose relu would fire (z > 0) but whose gate keeps them silent."""
        if self.gate is None:
            return torch.zeros_like(self.firing)
        return fires(self._state(), "gated_off")

    def _state(self) -> dict:
        return {"drive": self.drive, "output": self.output, "gate": self.gate}


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

    def margin_parts(self, rival: int, k: int = 4) -> dict:
        """The logit margin of the prediction over `rival`, split exactly: the k last-layer neurons that push most
        towards the prediction, the k that push most towards the rival, all other neurons together, and the
        difference of the head's biases. The parts sum to the margin (values: logit(pred) - logit(rival) each);
        n_rest_firing counts the other neurons that fire on this input (the rest add exactly 0)."""
        pred = self.prediction
        (c_pred, b_pred), (c_rival, b_rival) = self.contributions(pred), self.contributions(rival)
        diff = c_pred - c_rival
        if not 1 <= k <= len(diff) // 2:
            raise ValueError(f"margin_parts: k must be between 1 and {len(diff) // 2} (half the "
                             f"{len(diff)} neurons of {self.last_layer!r}), got {k!r}")
        order = diff.argsort(descending=True)
        picked = [*order[:k].tolist(), *order.flip(0)[:k].tolist()[::-1]]  # largest first, most negative last
        rest = float(diff.sum() - diff[picked].sum())
        others = torch.ones(len(diff), dtype=torch.bool)
        others[picked] = False
        firing = (c_pred != 0) | (c_rival != 0)  # a silent neuron adds 0 to every logit
        return dict(pred=pred, rival=rival, neurons=picked, values=diff[picked].tolist(), rest=rest,
                    n_rest=len(diff) - len(picked), n_rest_firing=int((firing & others).sum()),
                    bias=b_pred - b_rival,
                    margin=float(self.logits()[pred] - self.logits()[rival]))

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
