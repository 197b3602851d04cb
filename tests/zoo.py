"""Tiny real architectures, built from the libraries' own classes and config objects (random init, no download).

Each entry: a builder for the model, one for a sibling of another size (a mode saved on one must not load into
the other), and a batch of inputs. Used by tests/test_real_models.py and scripts/real_models_table.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Entry:
    name: str
    build: Callable[[], nn.Module]
    sibling: Callable[[], nn.Module] | None
    inputs: Callable[[], object]  # a tensor, or a dict of keyword inputs
    head: str  # the output layer, as a reader would name it


def _seeded(make):
    def build():
        torch.manual_seed(0)
        return make().eval()
    return build


def _images(channels=3, size=32):
    return lambda: torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(1))


def _tokens(vocab=100, length=8):
    return lambda: {"input_ids": torch.randint(0, vocab, (2, length), generator=torch.Generator().manual_seed(1))}


def _tv(name, **kwargs):
    import torchvision
    return lambda: getattr(torchvision.models, name)(weights=None, **kwargs)


def _tv_vit(layers):
    from torchvision.models import VisionTransformer

    def build():
        model = VisionTransformer(image_size=32, patch_size=8, num_layers=layers, num_heads=2, hidden_dim=32,
                                  mlp_dim=64, num_classes=10)
        nn.init.normal_(model.heads.head.weight, std=0.02)  # torchvision starts its head at zero; as if pretrained
        return model
    return build


def _timm(name, **kwargs):
    import timm
    return lambda: timm.create_model(name, pretrained=False, **kwargs)


def _hf(model_cls, config_cls, **kwargs):
    import transformers
    return lambda: getattr(transformers, model_cls)(getattr(transformers, config_cls)(**kwargs))


def _bert(layers):
    return _hf("BertForSequenceClassification", "BertConfig", vocab_size=100, hidden_size=32, num_hidden_layers=layers,
               num_attention_heads=2, intermediate_size=64, max_position_embeddings=32, num_labels=3)


def _gpt2(layers):
    return _hf("GPT2LMHeadModel", "GPT2Config", vocab_size=100, n_embd=32, n_layer=layers, n_head=2, n_positions=32,
               bos_token_id=0, eos_token_id=0)


def _hf_vit(layers):
    return _hf("ViTForImageClassification", "ViTConfig", image_size=32, patch_size=8, hidden_size=32,
               num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64, num_labels=10)


def _llama(layers):
    return _hf("LlamaForCausalLM", "LlamaConfig", vocab_size=100, hidden_size=32, intermediate_size=48,
               num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32,
               bos_token_id=0, eos_token_id=0, pad_token_id=0)


class FunctionalMLP(nn.Module):
    """An activation written as a function call in forward: no module for a gate to sit on."""

    def __init__(self, hidden: int = 16):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(12, hidden), nn.Linear(hidden, 3)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


def _mlp(hidden=(20, 16)):
    widths = (12, *hidden)
    layers = [m for i in range(len(hidden)) for m in (nn.Linear(widths[i], widths[i + 1]), nn.ReLU())]
    return lambda: nn.Sequential(*layers, nn.Linear(widths[-1], 3))


def _vectors():
    return lambda: torch.randn(2, 12, generator=torch.Generator().manual_seed(1))


# the twelve of issue 21, in the order of its table
ZOO = [
    Entry("torchvision resnet18", _seeded(_tv("resnet18")), _seeded(_tv("resnet34")), _images(size=16), "fc"),
    Entry("torchvision mobilenet_v3_small", _seeded(_tv("mobilenet_v3_small")), _seeded(_tv("mobilenet_v3_large")),
          _images(size=16), "classifier.3"),
    Entry("torchvision efficientnet_b0", _seeded(_tv("efficientnet_b0")), _seeded(_tv("efficientnet_b1")), _images(size=16), "classifier.1"),
    Entry("torchvision VisionTransformer", _seeded(_tv_vit(2)), _seeded(_tv_vit(3)), _images(), "heads.head"),
    Entry("timm resnet18", _seeded(_timm("resnet18")), _seeded(_timm("resnet34")), _images(size=16), "fc"),
    Entry("timm vit_tiny_patch16_224", _seeded(_timm("vit_tiny_patch16_224", img_size=32, depth=2, num_classes=10)),
          _seeded(_timm("vit_tiny_patch16_224", img_size=32, depth=3, num_classes=10)), _images(), "head"),
    Entry("transformers BERT", _seeded(_bert(2)), _seeded(_bert(3)), _tokens(), "classifier"),
    Entry("transformers GPT-2", _seeded(_gpt2(2)), _seeded(_gpt2(3)), _tokens(), "lm_head"),
    Entry("transformers ViT", _seeded(_hf_vit(2)), _seeded(_hf_vit(3)), _images(), "classifier"),
    Entry("transformers Llama", _seeded(_llama(2)), _seeded(_llama(3)), _tokens(), "lm_head"),
    Entry("an MLP of nn.ReLU modules", _seeded(_mlp()), _seeded(_mlp((20, 16, 16))), _vectors(), "4"),
    Entry("an MLP with F.relu in forward", _seeded(FunctionalMLP), None, _vectors(), "fc2"),
]


def logits(out) -> torch.Tensor:
    """The model's output as one tensor (transformers models return an output object)."""
    if isinstance(out, torch.Tensor):
        return out
    return out.logits if getattr(out, "logits", None) is not None else out.image_embeds


def call(model: nn.Module, inputs):
    return logits(model(**inputs) if isinstance(inputs, dict) else model(inputs))


def _t5():
    return _hf("T5ForConditionalGeneration", "T5Config", vocab_size=100, d_model=32, d_kv=16, d_ff=64, num_layers=2,
               num_heads=2, decoder_start_token_id=0)


def _clip():
    return _hf("CLIPVisionModelWithProjection", "CLIPVisionConfig", projection_dim=16, image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
               num_hidden_layers=2, num_attention_heads=2, hidden_act="quick_gelu")


def _t5_inputs():
    tokens = _tokens()
    return lambda: {**tokens(), "decoder_input_ids": tokens()["input_ids"][:, :4]}


# more of the same families: convolutions written channels-last (ConvNeXt), timm's BatchNormAct2d, QuickGELU, T5's
# ReLU, DistilBERT; attached, counted and checked at init only
MORE = [
    Entry("torchvision convnext_tiny", _seeded(_tv("convnext_tiny")), None, _images(), "classifier.2"),
    Entry("timm efficientnet_b0", _seeded(_timm("efficientnet_b0")), None, _images(), "classifier"),
    Entry("timm convnext_atto", _seeded(_timm("convnext_atto")), None, _images(), "head.fc"),
    Entry("transformers DistilBERT", _seeded(_hf("DistilBertForSequenceClassification", "DistilBertConfig",
                                                 vocab_size=100, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                                 max_position_embeddings=32)), None, _tokens(), "classifier"),
    Entry("transformers T5", _seeded(_t5()), None, _t5_inputs(), "lm_head"),
    Entry("transformers CLIP vision (QuickGELU)", _seeded(_clip()), None, _images(), "visual_projection"),
]
