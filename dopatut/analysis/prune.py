"""Conditional computation: remove the neurons a hard gate keeps silent.

With hard gates, neuron j of a hidden layer outputs h_j = 1[z_j > tau_j] * g_j * relu(z_j).
If h_j = 0 for every input we care about, column j of the next layer's weight only ever
multiplies zero. Deleting row j of this layer (W, b, tau, g) and column j of the next
layer's weight then leaves every output unchanged: exactly in real arithmetic; in float32
the matrix products add the same non-zero terms in another order, so logits agree to
rounding (~1e-6) and predictions agree.

Two ways to know that h_j = 0, with different promises:

- `silent_on(model, x)`, measured: h_j = 0 on every row of x. The pruned model equals
  the gated one on those inputs and promises nothing on any other input.
  (`silent_on(model, x, max_firing_rate=p)` also takes neurons that fire on at most a share p
  of x: an approximation, no longer exact.)
- `never_fire(model, low, high)`, certified: interval arithmetic over the whole box
  low <= x <= high (by default every image with pixels in [0, 1]) shows that
  z_j <= max(tau_j, 0) or g_j = 0. The pruned model equals the gated one on every input in the box.
"""
from __future__ import annotations

import torch
from torch import nn

from .attribution import firing
from ..foundations.data import MNIST_MEAN, MNIST_STD
from ..methods.gate import DopamineGate, GateSet, attach
from ..foundations.model import FoundationMLP, MLPConfig


def _check_gates(model: FoundationMLP) -> None:
    for name, layer in model.hidden_layers().items():
        if layer.gate is not None and type(layer.gate) is not DopamineGate:
            raise TypeError(f"layer {name!r} has a {type(layer.gate).__name__}; pruning needs plain DopamineGates")
        if not isinstance(layer.linear, nn.Linear) or type(layer.linear) is not nn.Linear:
            raise TypeError(f"layer {name!r} has a {type(layer.linear).__name__}; merge LoRA into plain nn.Linear first")


def silent_on(model: FoundationMLP, x: torch.Tensor, max_firing_rate: float = 0.0) -> dict[str, torch.Tensor]:
    """Per hidden layer, a bool mask of the neurons whose hard-gated output is non-zero on at most
    `max_firing_rate` of the rows of x. At 0 (the default): silent on every row, and pruning them is exact
    on x; above 0 pruning them changes some outputs (an approximation whose cost must be measured)."""
    if not 0 <= max_firing_rate < 1:
        raise ValueError(f"max_firing_rate must be in [0, 1), got {max_firing_rate!r}")
    _check_gates(model)
    return {name: rate <= max_firing_rate for name, rate in firing(model, x, per="neuron").items()}


@torch.no_grad()
def drive_bounds(model: FoundationMLP, low: torch.Tensor, high: torch.Tensor) -> dict[str, tuple]:
    """Per hidden layer, (lowest, highest) drive z over every input in the box [low, high], hard gates.

    Interval arithmetic: for z = W x + b with x in [l, u], z lies in W c + b -/+ |W| r,
    c = (l + u) / 2, r = (u - l) / 2. A neuron that may fire outputs something between 0 and g * z_max.
    """
    _check_gates(model)
    bounds = {}
    for name, layer in model.hidden_layers().items():
        centre, radius = (low + high) / 2, (high - low) / 2
        mid = layer.linear(centre)
        spread = radius @ layer.linear.weight.abs().t()
        z_low, z_high = mid - spread, mid + spread
        bounds[name] = (z_low, z_high)
        gate = layer.gate
        tau = gate.threshold if gate is not None else torch.zeros_like(z_high)
        gain = gate.gain if gate is not None else torch.ones_like(z_high)
        may_fire = z_high > tau.clamp_min(0)
        top = torch.where(may_fire, gain * z_high.clamp_min(0), torch.zeros_like(z_high))
        low, high = top.clamp_max(0), top.clamp_min(0)
    return bounds


def pixel_box(in_features: int = 784) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs of every possible image: each normalised pixel between (0 - mean)/std and (1 - mean)/std."""
    return (torch.full((in_features,), (0 - MNIST_MEAN) / MNIST_STD),
            torch.full((in_features,), (1 - MNIST_MEAN) / MNIST_STD))


def never_fire(model: FoundationMLP, low: torch.Tensor | None = None,
               high: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per hidden layer, a bool mask of the neurons certified silent on every input in [low, high]."""
    if low is None or high is None:
        low, high = pixel_box(model.config.in_features)
    masks = {}
    for name, (_, z_high) in drive_bounds(model, low, high).items():
        gate = model.hidden_layers()[name].gate
        tau = gate.threshold.detach() if gate is not None else torch.zeros_like(z_high)
        zero_gain = (gate.gain.detach() == 0) if gate is not None else torch.zeros_like(z_high, dtype=torch.bool)
        masks[name] = (z_high <= tau.clamp_min(0)) | zero_gain
    return masks


@torch.no_grad()
def prune(model: FoundationMLP, silent: dict[str, torch.Tensor], multiple_of: int = 1) -> FoundationMLP:
    """A smaller FoundationMLP with hard gates, without the neurons marked silent.

    multiple_of: keep a multiple of this many neurons per layer, putting back the first silent ones
    (keeping a silent neuron is always safe). CPU matrix kernels work in blocks, and a width
    such as 249 can run slower than 256; 8 avoids that. Each layer keeps at least one neuron.
    """
    if isinstance(multiple_of, bool) or not isinstance(multiple_of, int) or multiple_of < 1:
        raise ValueError(f"multiple_of must be a positive int, got {multiple_of!r}")
    _check_gates(model)
    layers = model.hidden_layers()
    if set(silent) - set(layers):
        raise ValueError(f"masks for {sorted(set(silent) - set(layers))}; the model has {list(layers)}")
    keep = {}
    for name, layer in layers.items():
        mask = silent.get(name, torch.zeros(layer.width, dtype=torch.bool))
        if mask.shape != (layer.width,):
            raise ValueError(f"mask for {name!r} has shape {tuple(mask.shape)}, expected ({layer.width},)")
        n_keep = min(layer.width, max(1, -(-int((~mask).sum()) // multiple_of) * multiple_of))
        back = mask.nonzero().flatten()[:n_keep - int((~mask).sum())]  # silent neurons put back
        keep[name] = torch.cat([(~mask).nonzero().flatten(), back]).sort().values
    small = FoundationMLP(MLPConfig(model.config.in_features, tuple(len(k) for k in keep.values()),
                                    model.config.n_classes))
    rows_in, gates = torch.arange(model.config.in_features), GateSet()
    for (name, layer), new in zip(layers.items(), small.hidden_layers().values()):
        new.linear.weight.copy_(layer.linear.weight[keep[name]][:, rows_in])
        new.linear.bias.copy_(layer.linear.bias[keep[name]])
        if layer.gate is not None:
            gate = gates[f"hidden.{name}.act"] = DopamineGate(len(keep[name]), hard=True)
            gate.threshold.copy_(layer.gate.threshold[keep[name]])
            gate.gain.copy_(layer.gate.gain[keep[name]])
        rows_in = keep[name]
    attach(small, gates)
    small.head.weight.copy_(model.head.weight[:, rows_in])
    small.head.bias.copy_(model.head.bias)
    return small.requires_grad_(False).eval()


def same_logits_words(max_diff: float) -> str:
    """How the pruned network's logits compare with the gated one's, from their largest absolute difference:
    'the logits are exactly equal', or that they differ only by float rounding (and by how much)."""
    from ..methods.names import small_number

    if max_diff == 0:
        return "the logits are exactly equal"
    return f"the logits differ only by float rounding (at most {small_number(max_diff)})"


def penalty_words(plain: dict, penalised: dict) -> str:
    """Chapter 8's exercise 3 in words: what a sparsity penalty did to the neurons pruning can remove. plain and
    penalised: {"silent": neurons silent on every test digit, "rare": neurons firing on at most 5% of the training
    digits, "accuracy": test accuracy}, for the mode trained without and with the penalty. Two sentences: the
    counts, then which kind of neuron the penalty added more of."""
    def change(key):
        a, b = plain[key], penalised[key]
        return f"from {a:,} to {b:,}" if a != b else f"at {a:,}"

    def verb(key):
        a, b = plain[key], penalised[key]
        return "grows" if b > a else "falls" if b < a else "stays"

    said = (f"With the penalty the count of neurons silent on every 45° test digit {verb('silent')} "
            f"{change('silent')}, and of those firing on at most 5% of the training digits {verb('rare')} "
            f"{change('rare')}, at {penalised['accuracy']:.1%} accuracy against {plain['accuracy']:.1%}")
    more_silent = penalised["silent"] - plain["silent"]
    more_rare = penalised["rare"] - plain["rare"]
    if more_rare > max(more_silent, 0):
        why = ("So the penalty's gain lies mostly in rarely firing neurons, which pruning can remove only as an "
               "approximation; exact pruning gains less")
    elif more_silent > 0:
        why = "So here the penalty silences whole neurons too, which exact pruning can remove"
    else:
        why = "So here the penalty leaves pruning no more to remove"
    return f"{said}. {why}."
