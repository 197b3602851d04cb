"""A small vision transformer, written to be read top to bottom (in the manner of nanoGPT's model.py).

A 28x28 digit is cut into 7x7 patches (16 tokens); each patch is embedded by one nn.Linear, a learned class
token is put in front, and learned positions are added. Then `depth` pre-LayerNorm blocks, each
    x = x + attn(ln1(x))      multi-head self-attention: one qkv projection, softmax(q k^T / sqrt(d)) v, proj
    x = x + mlp(ln2(x))       fc1 -> GELU -> fc2, the MLP's hidden neurons being the ones Dopamine gates
and the class token's final state, normalised, goes to the `head`. The input is the flat (batch, 784) vector
the MLP takes, so the data, training and evaluation code of the course serve both.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ViTConfig:
    image_size: int = 28
    patch: int = 7
    width: int = 48
    depth: int = 2
    heads: int = 4
    mlp_ratio: int = 4
    n_classes: int = 10

    def __post_init__(self):
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.image_size % self.patch:
            raise ValueError(f"patch ({self.patch}) must divide image_size ({self.image_size})")
        if self.width % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide width ({self.width})")

    @property
    def in_features(self) -> int:
        return self.image_size ** 2

    @property
    def tag(self) -> str:
        """A short name for file names."""
        return f"vit-p{self.patch}-w{self.width}-d{self.depth}-h{self.heads}-r{self.mlp_ratio}"

    def to_dict(self) -> dict:
        return {"kind": "vit", **asdict(self)}


class Attention(nn.Module):
    def __init__(self, config: ViTConfig):
        super().__init__()
        self.heads = config.heads
        self.qkv = nn.Linear(config.width, 3 * config.width)  # queries, keys and values in one product
        self.proj = nn.Linear(config.width, config.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=2)
        q, k, v = (t.view(batch, tokens, self.heads, width // self.heads).transpose(1, 2) for t in (q, k, v))
        # softmax(q k^T / sqrt(d)) v, written out (as nanoGPT's slow path): it reads as the formula and batches
        # under vmap, which stacks several models in one run; no mask, as every patch may look at every other
        weights = (q @ k.transpose(-2, -1) * (q.shape[-1] ** -0.5)).softmax(dim=-1)
        y = weights @ v  # (batch, heads, tokens, head width)
        return self.proj(y.transpose(1, 2).reshape(batch, tokens, width))


class MLP(nn.Module):
    def __init__(self, config: ViTConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.width, config.mlp_ratio * config.width)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(config.mlp_ratio * config.width, config.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, config: ViTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.width)
        self.attn = Attention(config)
        self.ln2 = nn.LayerNorm(config.width)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class VisionTransformer(nn.Module):
    eval_batch_size = 500  # evaluation in batches this size: 17 tokens x 192 neurons of 10,000 images overflow the caches

    def __init__(self, config: ViTConfig = ViTConfig()):
        super().__init__()
        self.config = config
        n_patches = (config.image_size // config.patch) ** 2
        self.patch_embed = nn.Linear(config.patch ** 2, config.width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.width))
        self.pos = nn.Parameter(torch.zeros(1, n_patches + 1, config.width))
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.ln_f = nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, config.n_classes)
        # Linear layers keep torch's default initialisation: at this small width it trains faster here than
        # GPT-2's N(0, 0.02) (93.0% against 89.5% after two epochs on the mixture, measured)
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.pos, std=0.02)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 784) -> (batch, 16, 49): the image cut into patch x patch squares, row by row."""
        side, p = self.config.image_size, self.config.patch
        n = side // p
        return x.view(-1, n, p, n, p).transpose(2, 3).reshape(-1, n * n, p * p)

    def example_input(self) -> torch.Tensor:
        """A batch the model takes (for the forward pass that finds where gates go: dopatut.methods.places)."""
        return torch.zeros(2, self.config.in_features, device=self.head.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.config.in_features:
            raise ValueError(f"input must be (batch, {self.config.in_features}), got {tuple(x.shape)}")
        tokens = self.patch_embed(self.patches(x))
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], dim=1) + self.pos
        for block in self.blocks:
            tokens = block(tokens)
        return self.head(self.ln_f(tokens[:, 0]))
