"""Which neurons take part, and what each adds to the decision.

For the last hidden layer the split is exact: with h_j the layer's output (activation
times gate times gain) and W the head's weight, logit_c = sum_j h_j W_cj + b_c.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from .model import FoundationMLP


@torch.no_grad()
def hidden_states(model: FoundationMLP, x: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    """For every hidden layer: drive z, output h (after any gate) and gate values (None without a gate)."""
    states, handles = {}, []
    for name, layer in model.hidden_layers().items():
        def hook(module, inputs, output, name=name):
            z = module.linear(inputs[0])
            gate = module.gate.gate_values(z) if module.gate is not None else None
            states[name] = {"drive": z, "output": output, "gate": gate}
        handles.append(layer.register_forward_hook(hook))
    try:
        was_training = model.training
        model.eval()
        logits = model(x)
        model.train(was_training)
    finally:
        for h in handles:
            h.remove()
    states["logits"] = {"output": logits}
    return states


def head_weight(model: FoundationMLP) -> tuple[torch.Tensor, torch.Tensor]:
    """The head's effective weight and bias (a LoRA head's delta included)."""
    head = model.head
    return head.weight.detach(), head.bias.detach()


@torch.no_grad()
def last_layer_contributions(model: FoundationMLP, x: torch.Tensor):
    """Exact contributions (N, neurons, classes) of each last-layer neuron to each logit, and the bias.

    contributions.sum(1) + bias equals the model's logits.
    """
    last = list(model.hidden_layers())[-1]
    h = hidden_states(model, x)[last]["output"]
    weight, bias = head_weight(model)
    return h.unsqueeze(2) * weight.t().unsqueeze(0), bias


@contextmanager
def silenced(model: FoundationMLP, neurons: dict[str, list[int]]):
    """Within the block, the listed neurons of each named hidden layer output zero."""
    layers = model.hidden_layers()
    handles = []
    for name, idx in neurons.items():
        if name not in layers:
            raise ValueError(f"unknown hidden layer {name!r}; the model has {list(layers)}")
        idx = torch.as_tensor(list(idx), dtype=torch.long)
        if len(idx) and (idx.min() < 0 or idx.max() >= layers[name].width):
            raise ValueError(f"neuron indices for {name!r} must be in [0, {layers[name].width}), got {idx.tolist()}")

        def hook(module, inputs, output, idx=idx):
            output = output.clone()
            output[..., idx] = 0
            return output
        handles.append(layers[name].register_forward_hook(hook))
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


def firing_fraction(model: FoundationMLP, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per hidden layer, the fraction of neurons with a non-zero output, for each input (N,)."""
    states = hidden_states(model, x)
    return {name: (s["output"] != 0).float().mean(1) for name, s in states.items() if name != "logits"}


def strongly_active_fraction(model: FoundationMLP, x: torch.Tensor,
                             share: float = 0.5) -> dict[str, float]:
    """Per hidden layer, the mean over inputs of the smallest fraction of neurons that carries
    `share` of the layer's total absolute output: small means a minority of units does most of the work."""
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    result = {}
    for name, s in hidden_states(model, x).items():
        if name == "logits":
            continue
        out = s["output"].abs().sort(dim=1, descending=True).values
        cum = out.cumsum(1) / out.sum(1, keepdim=True).clamp_min(1e-12)
        # smallest k with cum[k-1] >= share (a relative tolerance absorbs rounding), never more than the firing units
        k = torch.minimum((cum < share * (1 - 1e-6)).sum(1) + 1, (out > 0).sum(1))
        result[name] = (k.float() / out.shape[1]).mean().item()
    return result


def logit_margins(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """How close each answer is to changing: (margins of the right answers, margins of the wrong ones).

    A right answer's margin is its logit minus the runner-up's; a wrong answer's is the predicted
    logit minus the true class's. Both are >= 0; a small one is a near tie.
    """
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"expected logits (N, classes) and labels (N,), got {tuple(logits.shape)} and "
                         f"{tuple(labels.shape)}")
    pred = logits.argmax(1)
    right = pred == labels
    first, second = logits.topk(2, dim=1).values.unbind(1)
    wrong_gap = logits.gather(1, pred[:, None]) - logits.gather(1, labels[:, None])
    return (first - second)[right], wrong_gap.squeeze(1)[~right]
