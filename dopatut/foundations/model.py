"""The foundation: a plain MLP whose hidden layers are reachable by name.

Each hidden layer computes a drive z = W x + b and an activation a = relu(z), with the ReLU a module of
its own, `act`: that is where a Dopamine gate goes, by the same path as on any other model (dopatut.methods.gate).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class MLPConfig:
    in_features: int = 784
    hidden: tuple[int, ...] = (256, 256)
    n_classes: int = 10

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(self.hidden))
        for name, value in (("in_features", self.in_features), ("n_classes", self.n_classes), *(
                (f"hidden[{i}]", h) for i, h in enumerate(self.hidden))):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not self.hidden:
            raise ValueError("hidden must list at least one layer width, got ()")

    @property
    def tag(self) -> str:
        """A short name for file names."""
        return "h" + "x".join(map(str, self.hidden))

    def to_dict(self) -> dict:
        return {**asdict(self), "hidden": list(self.hidden)}


class HiddenLayer(nn.Module):
    """Linear -> ReLU."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.act = nn.ReLU()

    @property
    def width(self) -> int:
        return self.linear.out_features

    @property
    def gate(self) -> nn.Module | None:
        """The gate attached to this layer's activation, if any (read only: attach gates with dopatut.methods.gate)."""
        return getattr(self.act, "gate", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.linear(x))


class FoundationMLP(nn.Module):
    """784 -> 256 -> 256 -> 10 by default; hidden layers are `hidden1`, `hidden2`, ...; the output is `head`."""

    stem = "hidden.hidden1.linear"  # the first layer on the input: when frozen, its product can be precomputed

    def __init__(self, config: MLPConfig = MLPConfig()):
        super().__init__()
        self.config = config
        widths = (config.in_features, *config.hidden)
        self.hidden = nn.ModuleDict({f"hidden{i + 1}": HiddenLayer(widths[i], widths[i + 1])
                                     for i in range(len(config.hidden))})
        self.head = nn.Linear(widths[-1], config.n_classes)

    def hidden_layers(self) -> dict[str, HiddenLayer]:
        return dict(self.hidden.items())

    def example_input(self) -> torch.Tensor:
        """A batch the model takes (for the forward pass that finds where gates go: dopatut.methods.places)."""
        return torch.zeros(2, self.get_submodule(self.stem).in_features, device=self.head.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_in = self.get_submodule(self.stem).in_features  # 784, or 256 when the stem's product is precomputed
        if x.dim() != 2 or x.shape[1] != n_in:
            raise ValueError(f"input must be (batch, {n_in}), got {tuple(x.shape)}")
        for layer in self.hidden.values():
            x = layer(x)
        return self.head(x)


def freeze(model: nn.Module) -> nn.Module:
    """Stop gradients to every parameter of `model` (in place) and return it."""
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def base_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's own weights: everything but gates."""
    return {k: v for k, v in model.state_dict().items() if ".gates." not in k}
