"""Context-conditioned gates: one small map gives every mode its thresholds and gains.

A mode is an angle theta, embedded as e(theta) = (cos theta, sin theta). For hidden neuron j

    tau_j(theta) = tau0_j + U_j . e(theta)        g_j(theta) = g0_j + V_j . e(theta)

so each neuron's threshold and gain are sinusoids of the angle: 3 numbers each, 6 per neuron,
for every angle at once, including angles never trained on. The gate itself is the Dopamine
gate (soft: sigmoid((z - tau)/T) * g * a; hard: 1[z > tau] * g * a). At the start
U = V = 0, tau0 = 0, g0 = 1: with hard gates, the identity. At one fixed angle the conditioned gates are a
plain gate set, which `gates_at` exports (for `Modes`, pruning, saving).

The angle travels as the input's last column, x_ctx = [x, angle_deg], so the usual fit(),
evaluate() and batches() train and test a `ConditionedModel` unchanged.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..methods.builtin import DopamineConfig
from ..methods.gate import DopamineGate, GateSet, attach
from ..foundations.model import FoundationMLP, freeze
from .sweeps import mixed_slice
from ..training.train import TrainConfig, fit, seed_everything


def embed(angle_deg: torch.Tensor) -> torch.Tensor:
    """(N,) angles in degrees -> (N, 2) embeddings (cos, sin)."""
    rad = angle_deg.double() * (math.pi / 180)  # in float64, so one angle alone or in a batch embeds the same
    return torch.stack([torch.cos(rad), torch.sin(rad)], dim=-1).to(angle_deg.dtype)


def with_angle(x: torch.Tensor, angle_deg) -> torch.Tensor:
    """Append the angle (one number, or one per row) to x as its last column."""
    angle = torch.as_tensor(angle_deg, dtype=x.dtype, device=x.device).expand(len(x))
    return torch.cat([x, angle.unsqueeze(1)], dim=1)


class ContextGate(DopamineGate):
    """A Dopamine gate whose threshold and gain depend on the context `self.context` (N, 2)."""

    def __init__(self, width: int, context_dim: int = 2, **gate_kwargs):
        super().__init__(width, **gate_kwargs)
        self.threshold_map = nn.Parameter(torch.zeros(context_dim, width), requires_grad=self.threshold.requires_grad)
        self.gain_map = nn.Parameter(torch.zeros(context_dim, width), requires_grad=self.gain.requires_grad)
        self.context: torch.Tensor | None = None

    def _ctx(self) -> torch.Tensor:
        if self.context is None:
            raise RuntimeError("ContextGate has no context; run it inside a ConditionedModel or set .context")
        return self.context

    def _conditioned(self, base: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        # base + e . weights, term by term: the same arithmetic for one angle or a batch
        ctx = self._ctx()
        out = base
        for k in range(ctx.shape[1]):
            out = out + ctx[:, k:k + 1] * weights[k]
        return out

    def thresholds(self) -> torch.Tensor:
        return self._conditioned(self.threshold, self.threshold_map)

    def gains(self) -> torch.Tensor:
        return self._conditioned(self.gain, self.gain_map)

    def gate_values(self, z: torch.Tensor) -> torch.Tensor:
        if self.hard:
            return (z > self.thresholds()).to(z.dtype)
        return torch.sigmoid((z - self.thresholds()) / self.temperature)

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        if z.shape[-1] != self.width:
            raise ValueError(f"gate has {self.width} neurons but the layer gives {z.shape[-1]}")
        self.last_gate = self.gate_values(z)
        return self.last_gate * self.gains() * a


class ConditionedModel(nn.Module):
    """A frozen copy of the foundation with a ContextGate in every hidden layer; input [x, angle_deg].
    config: the gates' settings (DopamineConfig: how they start, and the temperature schedule and sparsity they
    train with); every hidden layer gets a gate, so its target_modules stays None."""

    def __init__(self, base: FoundationMLP, config: DopamineConfig = DopamineConfig()):
        super().__init__()
        if config.target_modules is not None:
            raise ValueError(f"context gates go in every hidden layer; leave target_modules out, got "
                             f"{config.target_modules!r}")
        self.base = freeze(copy.deepcopy(base))
        self.gates = GateSet({f"hidden.{name}.act": ContextGate(layer.width, **config.gate_kwargs())
                              for name, layer in self.base.hidden_layers().items()})
        attach(self.base, self.gates)
        self.method = "context"
        self.method_config = config  # what the gates' training hook reads

    def forward(self, x_ctx: torch.Tensor) -> torch.Tensor:
        context = embed(x_ctx[:, -1])
        for gate in self.gates.values():
            gate.context = context
        return self.base(x_ctx[:, :-1])


@torch.no_grad()
def gates_at(model: ConditionedModel, angle_deg: float) -> GateSet:
    """The plain gate set that the conditioned gates become at one angle."""
    context = embed(torch.tensor([float(angle_deg)]))
    plain = GateSet()
    for name, gate in model.gates.items():
        gate.context = context
        g = DopamineGate(gate.width, temperature=gate.temperature, hard=gate.hard)
        g.threshold.copy_(gate.thresholds()[0])
        g.gain.copy_(gate.gains()[0])
        plain[name] = g.requires_grad_(False)
    return plain


def train_conditioned(base: FoundationMLP, angles_deg, seed: int = 0, config: TrainConfig | None = None,
                      limit: int | None = None, progress: bool = False, **gate_options):
    """Conditioned gates trained on the first `limit` training images, each turned by one of `angles_deg`
    drawn at random (seeded). gate_options: Dopamine's (temperature, sparsity, ...: protocol_config's keywords
    for "dopamine"). Returns (model, History).
    """
    config = config or TrainConfig(epochs=1, lr=1e-2, seed=seed)
    gates = DopamineConfig.from_options(gate_options)
    device = next(base.parameters()).device
    x, y, mode = mixed_slice(angles_deg, limit, seed, device)
    angle = torch.tensor([float(a) for a in angles_deg], device=device)[mode]
    seed_everything(seed)
    model = ConditionedModel(base, gates)
    history = fit(model, with_angle(x, angle), y, config, progress=progress, desc="context gates")
    return model, history


def above_or_below(points: float) -> str:
    """A difference in points as words, to go before 'the ...': '0.3 points above', '1.2 points below'."""
    return f"{abs(points):.1f} points {'above' if points > 0 else 'below'}"


def overlap_words(overlaps: dict[str, float], seed_overlap: float) -> str:
    """Chapter 8's modes' Jaccard overlaps read against a yardstick: `seed_overlap`, the overlap of one mode
    trained twice on the same foundation with two seeds (only the data order differs). `overlaps`: a pair's
    name ('0°–45°') -> its overlap. Each is compared as printed, to two decimals: as large as the yardstick
    means within seed noise, smaller means beyond it. One sentence."""
    if not overlaps:
        raise ValueError("overlaps must name at least one pair of modes, got none")
    from ..methods.names import listed

    shown = lambda j: round(j, 2)

    def named(pairs):  # the pairs, and their verb
        listing = listed([f"{pair} ({overlaps[pair]:.2f})" for pair in pairs])
        return f"the pairs {listing} all overlap" if len(pairs) > 1 else f"the pair {listing} overlaps"
    within = [p for p, j in overlaps.items() if shown(j) >= shown(seed_overlap)]
    beyond = [p for p in overlaps if p not in within]
    if not beyond:
        return (f"Against that yardstick, {named(within)} as much as two seeds of one mode: at "
                "this threshold the modes' sets of neurons differ no more than seed noise makes them.")
    if not within:
        return (f"Against that yardstick, {named(beyond)} less than two seeds of one mode: the "
                "modes' sets of neurons differ by more than seed noise, though one pair of seeds is a thin "
                "yardstick.")
    return (f"Against that yardstick, {named(within)} as much as two seeds of one mode, a "
            f"difference within seed noise; {named(beyond)} less, a difference the seed alone "
            "does not make.")
