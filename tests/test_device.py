"""The reader's device: DOPATUT_DEVICE, CUDA, MPS, else the CPU; CPU keys unchanged; jobs on a GPU in one process.
Everything here runs on a CPU, with the device given explicitly."""
import hashlib
import json

import pytest
import torch

from dopatut.study import compare
from dopatut.foundations import device
from dopatut.training import workers
from dopatut.foundations.data import mode_data
from dopatut.foundations.device import default_device, device_key, resolve_device
from dopatut.foundations.model import MLPConfig
from dopatut.study.pipeline import FoundationSpec, foundation, foundation_path, foundations
from dopatut.training.train import TrainConfig, evaluate

SPEC = FoundationSpec(model=MLPConfig(hidden=(16, 16)), train=TrainConfig(epochs=1, batch_size=1024))


def test_dopatut_device_chooses(monkeypatch):
    monkeypatch.setenv("DOPATUT_DEVICE", "cpu")
    assert default_device() == torch.device("cpu")
    monkeypatch.setenv("DOPATUT_DEVICE", "tpu-ish")
    with pytest.raises(ValueError, match="DOPATUT_DEVICE='tpu-ish' is not a device"):
        default_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_a_missing_gpu_says_so(monkeypatch):
    monkeypatch.setenv("DOPATUT_DEVICE", "cuda")
    with pytest.raises(ValueError, match="no cuda device"):
        default_device()


def test_without_the_variable_the_best_available(monkeypatch):
    monkeypatch.delenv("DOPATUT_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "mps" if device._available(torch.device("mps")) else "cpu"
    assert default_device().type == expected
    assert resolve_device(None) == default_device() and resolve_device("cpu") == torch.device("cpu")


def test_cpu_keys_are_the_keys_from_before_the_device(monkeypatch):
    monkeypatch.setenv("DOPATUT_DEVICE", "cpu")
    old = hashlib.sha256(json.dumps(SPEC.to_dict(3), sort_keys=True).encode()).hexdigest()[:10]
    assert foundation_path(SPEC, 3).name.endswith(f"-{old}.pt")
    assert foundation_path(SPEC, 3, "cpu") == foundation_path(SPEC, 3)
    assert device_key("cpu") == {} and device_key("cuda:1") == {"device": "cuda"}
    assert foundation_path(SPEC, 3, "cuda") != foundation_path(SPEC, 3, "cpu")  # a GPU rounds otherwise
    key = {"method": "lora"}
    assert compare.result_name("x", {**key, **device_key("cpu")}) == compare.result_name("x", key)
    assert compare.result_name("x", {**key, **device_key("cuda")}) != compare.result_name("x", key)


def test_foundations_train_and_return_on_the_device_given(monkeypatch):
    monkeypatch.setenv("DOPATUT_DEVICE", "cpu")
    trained = foundations([0, 1], SPEC, progress=False, device=torch.device("cpu"))
    assert all(next(m.parameters()).device.type == "cpu" for m in trained)
    again = foundation(1, SPEC, progress=False, device="cpu")  # from the cache, the same key
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), trained[1].state_dict().values()))


def test_data_and_evaluation_follow_the_device(monkeypatch, small_model):
    monkeypatch.setenv("DOPATUT_DEVICE", "cpu")
    x, y = mode_data("test", 45, limit=100)
    assert x.device == default_device() == y.device
    x2, _ = mode_data("test", 45, device="cpu", limit=100)
    assert torch.equal(x, x2)
    assert 0.0 <= evaluate(small_model, x, y) <= 1.0


def test_jobs_on_a_gpu_run_in_this_process(small_model):
    assert workers.on_accelerator([{"device": "cuda", "seed": 0}])
    assert workers.on_accelerator([{"device": torch.device("cuda:0")}])
    assert not workers.on_accelerator([{"device": "cpu", "arm": "lora_attn"}, {"base": small_model, "lr": 0.1}])
    assert not workers.on_accelerator([{"device": None, "x": torch.zeros(2)}])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: run scripts/check_gpu.sh itself")
def test_the_gpu_check_refuses_a_machine_without_cuda(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONPATH": str(root), "HOME": str(tmp_path)}
    proc = subprocess.run(["bash", str(root / "scripts" / "check_gpu.sh"), str(tmp_path / "out")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "no CUDA device" in proc.stderr, proc.stderr
