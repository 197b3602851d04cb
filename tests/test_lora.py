import copy

import pytest
import torch
from torch import nn

from dopatut.methods.lora import (LoRAConfig, LoRAConv2d, LoRALinear, factored, lora_layers, merge_lora, peft_lora,
                          unmerge_lora)
from dopatut.methods.builtin import apply_method


def randomise_b(model):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LoRALinear):
                m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=g) * 0.1)


def test_lora_at_init_is_exactly_the_base(small_model, inputs):
    lora = apply_method(small_model, "lora", rank=4, verbose=False)
    assert torch.equal(lora(inputs), small_model(inputs))


def test_merged_equals_unmerged_and_unmerge_restores_weights(small_model, inputs):
    lora = apply_method(small_model, "lora", rank=3, alpha=6, verbose=False)
    randomise_b(lora)
    unmerged = lora(inputs)
    assert not torch.allclose(unmerged, small_model(inputs))
    w_before = lora.hidden["hidden1"].linear.base.weight.clone()
    merge_lora(lora)
    assert torch.allclose(lora(inputs), unmerged, atol=1e-5)
    unmerge_lora(lora)
    assert torch.allclose(lora.hidden["hidden1"].linear.base.weight, w_before, atol=1e-6)
    assert torch.allclose(lora(inputs), unmerged, atol=1e-5)


def test_effective_weight_includes_delta(small_model):
    layer = LoRALinear(nn.Linear(5, 4), LoRAConfig(rank=2, alpha=4))
    with torch.no_grad():
        layer.lora_B.fill_(0.5)
    x = torch.randn(3, 5)
    assert torch.allclose(layer(x), x @ layer.weight.t() + layer.bias, atol=1e-6)
    assert layer.scaling == 2.0


@pytest.mark.parametrize("rank", [0, -2, 1.5])
def test_rank_below_one_is_refused(rank):
    with pytest.raises(ValueError, match="rank must be an int >= 1"):
        LoRAConfig(rank=rank)


def test_double_merge_is_refused():
    layer = LoRALinear(nn.Linear(3, 3))
    layer.merge()
    with pytest.raises(RuntimeError, match="already merged"):
        layer.merge()


@pytest.mark.parametrize("conv", [dict(kernel_size=3, padding=1), dict(kernel_size=3, stride=2, padding=1),
                                  dict(kernel_size=(3, 2), dilation=2), dict(kernel_size=1)])
def test_conv_lora_is_the_base_at_init_and_merges_into_one_kernel(conv):
    torch.manual_seed(0)
    base = nn.Conv2d(3, 5, **conv)
    layer = LoRAConv2d(base, LoRAConfig(rank=2, alpha=3))
    x = torch.randn(4, 3, 9, 9)
    assert torch.equal(layer(x), base(x))  # B = 0: exactly the base
    assert layer.lora_A.shape == (2, 3, *base.kernel_size) and layer.lora_B.shape == (5, 2)
    with torch.no_grad():
        layer.lora_B.normal_()
    unmerged = layer(x)
    assert not torch.allclose(unmerged, base(x), atol=1e-3)
    # conv(conv(x, A), B 1x1) is one convolution with the kernel B A: the effective weight
    assert torch.allclose(unmerged, nn.functional.conv2d(x, layer.weight, layer.bias, base.stride, base.padding,
                                                         base.dilation), atol=1e-5)
    w_before = base.weight.clone()
    merge_lora(layer)
    assert torch.allclose(layer(x), unmerged, atol=1e-5)
    unmerge_lora(layer)
    assert torch.allclose(base.weight, w_before, atol=1e-6) and torch.allclose(layer(x), unmerged, atol=1e-5)


def test_conv_lora_refuses_what_it_cannot_merge():
    with pytest.raises(ValueError, match="groups=1 and zero padding, got groups=2"):
        LoRAConv2d(nn.Conv2d(4, 4, 3, groups=2))
    with pytest.raises(ValueError, match="padding_mode='reflect'"):
        LoRAConv2d(nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"))
    with pytest.raises(TypeError, match="wraps an nn.Conv2d, got Linear"):
        LoRAConv2d(nn.Linear(3, 3))


def test_inference_without_gradients_computes_the_merged_layer(small_model, inputs):
    lora = apply_method(small_model, "lora", rank=4, verbose=False)
    randomise_b(lora)
    with_grad = lora(inputs)  # the low-rank path that training differentiates
    with torch.no_grad():
        inference = lora(inputs)
        merge_lora(lora)
        merged = lora(inputs)
    assert torch.equal(inference, merged)  # one product with W + delta, as a merged layer computes it
    assert torch.allclose(inference, with_grad, atol=1e-5) and not torch.allclose(inference, small_model(inputs))


def small_vit():
    from dopatut.foundations.vit import VisionTransformer, ViTConfig
    torch.manual_seed(0)
    return VisionTransformer(ViTConfig(width=16, depth=2, heads=2)).requires_grad_(False)


def small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(6 * 4 * 4, 3)).requires_grad_(False)


@pytest.mark.parametrize("make, targets, x, trainable", [
    (small_vit, ["qkv", "proj"], torch.randn(5, 784), 2 * 4 * (16 + 48 + 16 + 16)),
    (small_cnn, ["0", "2", "5"], torch.randn(5, 1, 8, 8), 4 * (9 + 4) + 4 * (4 * 9 + 6) + 4 * (96 + 3))])
def test_peft_lora_on_the_same_targets_computes_what_dopatut_lora_does(make, targets, x, trainable):
    pytest.importorskip("peft")
    base = make()
    ours = apply_method(base, "lora", targets=targets, verbose=False)
    with torch.no_grad():
        for layer in lora_layers(ours):
            layer.lora_B.normal_()  # B != 0, so the deltas count
    theirs = peft_lora(base, targets, rank=4, start_from=ours)  # PEFT's A and B set to ours
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-5) and not torch.allclose(ours(x), base(x), atol=1e-3)
    assert (sum(p.numel() for p in ours.parameters() if p.requires_grad)
            == sum(p.numel() for p in theirs.parameters() if p.requires_grad) == trainable)


def test_factored_computes_the_unmerged_layer_from_its_factors_without_gradients(small_model, inputs, monkeypatch):
    layer = LoRALinear(nn.Linear(5, 4), LoRAConfig(rank=2, alpha=4))
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(3, 5)
    lora = apply_method(small_model, "lora", rank=4, verbose=False)
    randomise_b(lora)
    with torch.no_grad():
        merged = merge_lora(copy.deepcopy(lora))(inputs)
    # the summed weight W + delta is off limits: a factored path that used it (as inference does) fails here
    monkeypatch.setattr(LoRALinear, "weight", property(lambda self: pytest.fail("factored path used W + delta")))
    with torch.no_grad(), factored(layer), factored(lora):
        assert torch.equal(layer(x), layer.base(x) + (x @ layer.lora_A.t() @ layer.lora_B.t()) * layer.scaling)
        unmerged = lora(inputs)
    assert torch.allclose(unmerged, merged, atol=1e-5) and not torch.allclose(unmerged, small_model(inputs))
    assert not any(m.force_factored for m in lora_layers(lora))  # only inside the block


@pytest.mark.parametrize("groups, n_left", [((1, 8), 1), ((1, 8, 8), 2)])
def test_the_note_on_layers_left_out_agrees_in_number(groups, n_left):
    from dopatut.methods.builtin import add_lora
    model = nn.Sequential(*(nn.Conv2d(8, 8, 3, groups=g) for g in groups))
    notes = []
    add_lora(model, LoRAConfig(), notes=notes)
    layers, verb = ("layer", "is") if n_left == 1 else ("layers", "are")
    assert len(notes) == 1 and notes[0].startswith(
        f"LoRA left out {n_left} {layers} it cannot wrap or that {verb} tied: ")
