"""Which neurons take part, and what each adds to the decision.

For the last hidden layer the split is exact: with h_j the layer's output (activation
times gate times gain) and W the head's weight, logit_c = sum_j h_j W_cj + b_c.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from ..methods.gate import GateSet, hardened
from ..foundations.model import FoundationMLP


@torch.no_grad()
def hidden_states(model: FoundationMLP, x: torch.Tensor, logits: bool = False):
    """For every hidden layer: drive z, output h (after any gate) and gate values (None without a gate).
    With logits=True, (those states, the model's logits) from the same forward pass."""
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
        out = model(x)
        model.train(was_training)
    finally:
        for h in handles:
            h.remove()
    return (states, out) if logits else states


@torch.no_grad()
def gate_states(model: nn.Module, x: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    """`hidden_states` for any model with gates (dopatut.methods.gate): for every gate, by its place's name, the drive z
    it read, its output h and its gate values, from one forward pass in eval mode."""
    states, handles = {}, []
    for name, gate in GateSet.of(model).items():
        def hook(module, inputs, output, name=name):
            states[name] = {"drive": inputs[0], "output": output, "gate": module.last_gate}
        handles.append(gate.register_forward_hook(hook))
    if not handles:
        raise ValueError(f"gate_states: the {type(model).__name__} has no gates; attach some (dopatut.methods.gate.attach) "
                         "or, for a FoundationMLP, use hidden_states")
    try:
        was_training = model.training
        model.eval()
        model(x)
        model.train(was_training)
    finally:
        for h in handles:
            h.remove()
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


MEASURES = ("output", "gate", "gated_off")
PER = ("neuron", "input", "layer", "model")


def fires(state: dict[str, torch.Tensor], measure: str = "output", name: str = "") -> torch.Tensor:
    """Which neurons take part, as a bool tensor shaped like the layer's output, from one layer's
    `hidden_states` entry. measure: "output", a non-zero output h (after the gate, its gain and the
    activation); "gate", an open gate (the drive above the threshold, whatever relu or the gain then do);
    "gated_off", a neuron the activation would let through (z > 0) but whose gate shuts it."""
    if measure not in MEASURES:
        raise ValueError(f"attribution.fires: measure={measure!r} is not one of {MEASURES}")
    if measure == "output":
        return state["output"] != 0
    if state["gate"] is None:
        raise ValueError(f"attribution.fires: layer {name!r} has no gate, so measure={measure!r} has no meaning; "
                         "use measure='output' or attach a gate")
    if measure == "gate":
        return state["gate"] != 0
    return (state["drive"] > 0) & (state["gate"] == 0)


def firing(model: nn.Module, x: torch.Tensor, per: str = "neuron", measure: str = "output",
           count: bool = False, hard: bool = True):
    """How often the neurons of each hidden layer (each gate, for a model other than a FoundationMLP) take part
    on the inputs x, in the sense of `fires(measure)`, with hard gates unless hard=False.

    per="neuron": layer -> (width,), the share of inputs on which each neuron fires;
    per="input": layer -> (N,), the share of the layer's neurons that fire on each input;
    per="layer": layer -> float, the share of every (input, neuron) pair (and token, for a transformer);
    per="model": one float, the mean over layers of per="layer" (each layer weighs the same).
    count=True gives numbers of inputs or neurons instead of shares (per="neuron" or "input" only).
    """
    if per not in PER:
        raise ValueError(f"attribution.firing: per={per!r} is not one of {PER}")
    if count and per not in ("neuron", "input"):
        raise ValueError(f"attribution.firing: count=True needs per='neuron' or 'input', got per={per!r}")
    with hardened(model, hard):
        states = hidden_states(model, x) if isinstance(model, FoundationMLP) else gate_states(model, x)
    flags = {name: fires(s, measure, name) for name, s in states.items()}
    if per == "neuron":  # over every axis but the neurons' (the last)
        return {n: f.flatten(0, -2).sum(0) if count else f.flatten(0, -2).float().mean(0) for n, f in flags.items()}
    if per == "input":
        return {n: f.flatten(1).sum(1) if count else f.flatten(1).float().mean(1) for n, f in flags.items()}
    shares = {n: f.float().mean() for n, f in flags.items()}
    return {n: v.item() for n, v in shares.items()} if per == "layer" else torch.stack(list(shares.values())).mean().item()


def strongly_active_fraction(model: FoundationMLP, x: torch.Tensor,
                             share: float = 0.5) -> dict[str, float]:
    """Per hidden layer, the mean over inputs of the smallest fraction of neurons that carries
    `share` of the layer's total absolute output: small means a minority of units does most of the work."""
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    result = {}
    for name, s in hidden_states(model, x).items():
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


def balance_words(named: float, rest: float, predicted: int, rival: int) -> str:
    """Who carries a margin of `predicted` over `rival`, in words: `named` is what the strongest neurons add to
    it together, `rest` what all the other neurons add (the head's bias is the remainder). Chapter 6 quotes it
    for a wrong answer, where `rival` is the true class."""
    if named < 0 < rest:
        return (f"the strongest neurons, on balance, favour the true {rival}, and the many small pushes of the "
                "rest decide")
    if named <= 0 and rest <= 0:
        return f"neither the strongest neurons nor the rest favour {predicted}: the head's bias decides"
    if named >= rest:
        return "the strongest neurons carry the wrong answer"
    return f"the strongest neurons and the rest both push towards {predicted}"


def rest_words(parts: dict) -> str:
    """What the neurons outside the named ones add to a margin, in words: `parts` is
    AttributionExplorer.margin_parts' split (values of the named neurons, rest, n_rest, n_rest_firing, bias,
    margin > 0). Chapter 6 quotes it for a right answer, whose figure shows the rest as one bar. Only the firing
    ones among the rest add anything (a silent neuron adds exactly 0), so the sentence names how many fire."""
    rest, margin, n, firing = parts["rest"], parts["margin"], parts["n_rest"], parts["n_rest_firing"]
    signed = f"{rest:+.2f}".replace("-", "−")  # a true minus sign, as in the prose
    who = f"the other {n} neurons, of which {firing} fire,"
    if rest <= 0:
        return f"{who} together push towards the rival ({signed}): the named neurons and the bias carry the margin"
    largest = rest > max(abs(v) for v in [*parts["values"], parts["bias"]])
    head = (f"{who} together {'are the largest bar, ' if largest else 'add '}{signed} of a "
            f"margin of {margin:.2f}")
    if rest >= margin:
        return head + f": the many small pushes of those {firing} carry all of it, and more"
    if rest > margin / 2:
        return head + f": the many small pushes of those {firing} carry most of it"
    return head + ": the named neurons and the bias carry the larger part"


def flip_words(k: int, flipped: bool, label: int, wrong: int) -> str:
    """Chapter 6's exercise 1 in words: silencing the top `k` neurons for the `wrong` class turned the digit
    to its true `label` (`flipped`), or did not."""
    if flipped:
        return f"the count is {k}: then it reads {label}"
    return f"even the top {k} do not turn it: it still reads {wrong}"


def selective_counts(rates_a: dict, rates_b: dict, active: float = 0.05,
                     silent: float = 0.01) -> dict[str, tuple[int, int]]:
    """Per layer, how many neurons are selective between two rate tables (layer -> a rate per neuron, as
    `firing` returns): (often in a and rare in b, often in b and rare in a), where often means a rate of at
    least `active` and rare one below `silent`. Chapter 6 counts gate cuts of two modes, and of one mode
    trained twice (its seed-noise control)."""
    if not 0 <= silent <= active <= 1:
        raise ValueError(f"expected 0 <= silent <= active <= 1, got silent={silent}, active={active}")
    if rates_a.keys() != rates_b.keys():
        raise ValueError(f"the two tables name different layers: {list(rates_a)} and {list(rates_b)}")
    return {layer: (int(((a >= active) & (rates_b[layer] < silent)).sum()),
                    int(((rates_b[layer] >= active) & (a < silent)).sum()))
            for layer, a in rates_a.items()}


def threshold_correlation(tau_a: torch.Tensor, tau_b: torch.Tensor) -> dict[str, float]:
    """How alike two gate sets' thresholds on one layer are: Pearson's r over all neurons ("all"), and over the
    neurons where either threshold is above 0 ("acting", with their count "n_acting"). On a relu neuron every
    tau <= 0 has the same effect (relu is 0 wherever the drive is at most 0), so only positive thresholds act."""
    a, b = tau_a.detach().flatten().double(), tau_b.detach().flatten().double()
    if a.shape != b.shape or a.numel() < 3:
        raise ValueError(f"expected two threshold vectors of one length >= 3, got {tuple(a.shape)}, {tuple(b.shape)}")
    acting = (a > 0) | (b > 0)
    r = lambda x, y: float(torch.corrcoef(torch.stack([x, y]))[0, 1]) if len(x) > 2 else float("nan")
    return {"all": r(a, b), "acting": r(a[acting], b[acting]), "n_acting": int(acting.sum())}


def control_words(modes: int, seeds: int, r_modes: float, r_seeds: float) -> str:
    """What survives of chapter 6's mode selectivity beyond seed noise, in words. `modes`: neurons cut by one
    mode's gates only (both ways, both layers), 0° against 45°; `seeds`: the same count for two 45° gate sets
    trained from one start with two seeds; r_modes, r_seeds: their correlations of the acting thresholds."""
    if modes > 2 * seeds:
        counts = f"the modes cut {modes} neurons selectively, seed noise alone {seeds}: most of the selectivity is the mode's"
    elif modes > seeds:
        counts = f"the modes cut {modes} neurons selectively, seed noise alone {seeds}: only part of it is the mode's"
    else:
        counts = f"the modes cut {modes} neurons selectively, seed noise alone {seeds}: the count is seed noise"
    if r_seeds - r_modes > 0.2:
        taus = (f"and the acting thresholds of one mode agree across seeds (r = {r_seeds:.2f}) far better than "
                f"those of the two modes (r = {r_modes:.2f})")
    else:
        taus = (f"but the acting thresholds of the two modes (r = {r_modes:.2f}) agree about as well as one "
                f"mode's across seeds (r = {r_seeds:.2f})")
    return f"{counts}, {taus}".replace("r = -", "r = −")
