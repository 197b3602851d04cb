"""Small random models for the explorer's tests (test_explorer, test_drawing, test_widgets)."""
import pytest
import torch

from dopatut.analysis.explorer import AttributionExplorer
from dopatut.methods.gate import gates_of
from dopatut.methods.builtin import apply_method
from dopatut.foundations.model import FoundationMLP, MLPConfig, freeze


def random_models(seed=0):
    """A small untrained base, the same base with random hard-gate thresholds and gains, and a LoRA copy."""
    torch.manual_seed(seed)
    base = freeze(FoundationMLP(MLPConfig(hidden=(32, 24))))
    gated = apply_method(base, "dopamine", verbose=False)
    with torch.no_grad():
        for gate in gates_of(gated):
            gate.threshold.uniform_(-0.2, 0.4)
            gate.gain.uniform_(0.5, 2.0)
    lora = apply_method(base, "lora", rank=2, verbose=False)
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    return {"frozen": base, "dopamine 45°": gated, "lora": lora}


@pytest.fixture(scope="module")
def models():
    return random_models()


@pytest.fixture
def explorer(models):
    return AttributionExplorer(models, digit_index=3, angle_deg=30, model_name="dopamine 45°")
