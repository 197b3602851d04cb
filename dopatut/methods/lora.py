"""LoRA for nn.Linear (and nn.Conv2d), written from scratch in the shape of PEFT's LoRA layers.

    y = W x + b + (alpha / r) * B A x,   A: (r, in) random,  B: (out, r) zeros

B starts at zero, so at init the layer is exactly the frozen base. `merge` folds
B A into W for inference at the base's cost; `unmerge` takes it back out.
"""
from __future__ import annotations

import copy
import math
import sys
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .registry import MethodConfig, check_target_modules


@dataclass(frozen=True)
class LoRAConfig(MethodConfig):
    """LoRA's settings, as PEFT's LoraConfig: the rank r, alpha (the update is scaled by alpha / r) and where it
    goes (target_modules; None: every layer LoRA can wrap, dopatut.methods.builtin). The layers read rank and alpha."""
    rank: int = 4
    alpha: float | None = None  # None: alpha = rank, a scaling of 1
    target_modules: object = None

    def __post_init__(self):
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ValueError(f"LoRAConfig.rank must be an int >= 1, got {self.rank!r}")
        if self.alpha is not None and (isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float))
                                       or not self.alpha > 0):
            raise ValueError(f"LoRAConfig.alpha must be a number > 0 (or None for alpha = rank), got {self.alpha!r}")
        check_target_modules(self)

    @property
    def scaling(self) -> float:
        return (self.rank if self.alpha is None else self.alpha) / self.rank


def _factors(layer: nn.Module, base: nn.Module, config: LoRAConfig, n_in: int, n_out: int) -> None:
    """The frozen base and the factors A: (r, n_in) random, B: (n_out, r) zeros, on a LoRA layer being made."""
    layer.base = base
    for p in base.parameters():
        p.requires_grad_(False)
    layer.config = config
    layer.scaling = config.scaling
    layer.lora_A = nn.Parameter(torch.empty(config.rank, n_in))
    layer.lora_B = nn.Parameter(torch.zeros(n_out, config.rank))
    nn.init.kaiming_uniform_(layer.lora_A, a=math.sqrt(5))  # PEFT's default for A
    layer.merged = False
    layer.force_factored = False  # set by factored(): the low-rank path even without gradients


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, config: LoRAConfig = LoRAConfig()):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        _factors(self, base, config, base.in_features, base.out_features)

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def delta_weight(self) -> torch.Tensor:
        return (self.lora_B @ self.lora_A) * self.scaling

    @property
    def weight(self) -> torch.Tensor:
        """The effective weight W + delta, whether merged or not."""
        return self.base.weight if self.merged else self.base.weight + self.delta_weight()

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged:
            return self.base(x)
        if not torch.is_grad_enabled() and not getattr(self, "force_factored", False):
            # inference: W + delta is one small matrix, so one product, as merged
            return F.linear(x, self.weight, self.bias)
        return self.base(x) + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        if self.merged:
            raise RuntimeError("LoRA layer is already merged")
        self.base.weight += self.delta_weight()
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if not self.merged:
            raise RuntimeError("LoRA layer is not merged")
        self.base.weight -= self.delta_weight()
        self.merged = False

    def extra_repr(self) -> str:
        return f"rank={self.config.rank}, scaling={self.scaling:g}, merged={self.merged}"


class LoRAConv2d(nn.Module):
    """LoRA for nn.Conv2d, as PEFT builds it: A is a convolution with the base's kernel, stride, padding and
    dilation into r channels, B a 1x1 convolution back to the base's channels:

        y = conv(x, W) + b + (alpha / r) * conv(conv(x, A), B),   A: (r, in, kh, kw) random,  B: (out, r) zeros

    B applied to A's r channels is one kernel of W's shape, B A, so it merges like LoRALinear."""

    def __init__(self, base: nn.Conv2d, config: LoRAConfig = LoRAConfig()):
        super().__init__()
        if not isinstance(base, nn.Conv2d):
            raise TypeError(f"LoRAConv2d wraps an nn.Conv2d, got {type(base).__name__}")
        if base.groups != 1 or base.padding_mode != "zeros":
            raise ValueError(f"LoRAConv2d needs groups=1 and zero padding, got groups={base.groups}, "
                             f"padding_mode={base.padding_mode!r}")
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.config = config
        self.scaling = config.scaling
        self.lora_A = nn.Parameter(torch.empty(config.rank, base.in_channels, *base.kernel_size))
        self.lora_B = nn.Parameter(torch.zeros(base.out_channels, config.rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # PEFT's default for A
        self.merged = False

    def delta_weight(self) -> torch.Tensor:
        return torch.einsum("or,rikl->oikl", self.lora_B, self.lora_A) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.merged:
            return y
        low = F.conv2d(x, self.lora_A, None, self.base.stride, self.base.padding, self.base.dilation)
        return y + F.conv2d(low, self.lora_B[:, :, None, None]) * self.scaling

    # the rest is LoRALinear's: it reads only base, delta_weight(), merged and config
    weight, bias, merge, unmerge, extra_repr = (LoRALinear.weight, LoRALinear.bias, LoRALinear.merge,
                                                LoRALinear.unmerge, LoRALinear.extra_repr)


class LoRAConv1D(nn.Module):
    """LoRA for transformers' Conv1D (GPT-2's c_attn, c_fc, c_proj): a linear layer whose weight is stored
    transposed, (in, out), y = x W + b. As PEFT does (fan_in_fan_out), A and B are LoRALinear's, and the merged
    delta is (B A) transposed:

        y = x W + b + (alpha / r) * x A^T B^T,   A: (r, in) random,  B: (out, r) zeros"""

    def __init__(self, base: nn.Module, config: LoRAConfig = LoRAConfig()):
        super().__init__()
        if not is_conv1d(base):
            raise TypeError(f"LoRAConv1D wraps a transformers Conv1D, got {type(base).__name__}")
        _factors(self, base, config, *base.weight.shape)  # Conv1D's weight is (in, out)

    def delta_weight(self) -> torch.Tensor:
        return ((self.lora_B @ self.lora_A) * self.scaling).t()  # in Conv1D's (in, out) layout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.merged:
            return y
        return y + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scaling

    weight, bias, merge, unmerge, extra_repr = (LoRALinear.weight, LoRALinear.bias, LoRALinear.merge,
                                                LoRALinear.unmerge, LoRALinear.extra_repr)


def is_conv1d(module: nn.Module) -> bool:
    """A transformers Conv1D (checked by class, without importing transformers)."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and getattr(module, "weight", None) is not None


LORA_LAYERS = {nn.Linear: LoRALinear, nn.Conv2d: LoRAConv2d}  # the torch layers LoRA wraps, and their LoRA versions
LORA_WRAPPERS = (LoRALinear, LoRAConv2d, LoRAConv1D)


def lora_kinds() -> tuple[type, ...]:
    """The layer classes LoRA wraps: torch's, and transformers' Conv1D where transformers is imported."""
    conv1d = getattr(sys.modules.get("transformers.pytorch_utils"), "Conv1D", None)
    return tuple(LORA_LAYERS) + ((conv1d,) if isinstance(conv1d, type) else ())


def lora_version(layer: nn.Module):
    """The LoRA class for `layer`, or None if LoRA cannot wrap it."""
    if is_conv1d(layer):
        return LoRAConv1D
    return next((lora for kind, lora in LORA_LAYERS.items() if type(layer) is kind or isinstance(layer, kind)), None)


def cannot_wrap(layer: nn.Module) -> str | None:
    """Why LoRA cannot wrap `layer` (None if it can)."""
    if lora_version(layer) is None:
        return f"it is a {type(layer).__name__}; LoRA wraps Linear, Conv2d and transformers' Conv1D"
    if isinstance(layer, nn.Conv2d) and (layer.groups != 1 or layer.padding_mode != "zeros"):
        return (f"it is a Conv2d with groups={layer.groups} and padding_mode={layer.padding_mode!r} (a depthwise or "
                f"grouped convolution); LoRAConv2d needs groups=1 and zero padding")
    return None


def lora_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, LORA_WRAPPERS)]


@contextmanager
def factored(model: nn.Module):
    """Inside, every unmerged LoRA layer computes W x + b + (alpha / r) B A x from its factors, with or without
    gradients (outside, LoRALinear's inference forms W + delta once): the genuinely unmerged function, to check a
    merge against."""
    layers = [layer for layer in lora_layers(model) if isinstance(layer, LoRALinear)]  # the others always are
    for layer in layers:
        layer.force_factored = True
    try:
        yield model
    finally:
        for layer in layers:
            layer.force_factored = False


def merge_lora(model: nn.Module) -> nn.Module:
    for layer in lora_layers(model):
        layer.merge()
    return model


def unmerge_lora(model: nn.Module) -> nn.Module:
    for layer in lora_layers(model):
        layer.unmerge()
    return model


def peft_lora(base, targets, rank: int = 4, alpha: float | None = None, start_from=None):
    """Hugging Face PEFT's LoRA on a copy of `base` at `targets` (module names); with `start_from` (a model
    from dopatut's LoRA on the same targets), PEFT's A and B take its values: the same start, so any gap between
    the two is the implementation."""
    from peft import LoraConfig, get_peft_model

    targets = list(targets)
    model = get_peft_model(copy.deepcopy(base), LoraConfig(r=rank, lora_alpha=rank if alpha is None else alpha,
                                                           lora_dropout=0.0, target_modules=targets))
    if start_from is not None:
        with torch.no_grad():
            for name, module in start_from.named_modules():
                if isinstance(module, LORA_WRAPPERS):
                    twin = model.base_model.model.get_submodule(name)
                    twin.lora_A["default"].weight.copy_(module.lora_A)
                    twin.lora_B["default"].weight.copy_(module.lora_B.view_as(twin.lora_B["default"].weight))
    return model
