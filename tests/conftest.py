import pytest
import torch

from dopatut.model import FoundationMLP, MLPConfig


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    """Tests never touch the user's foundation cache."""
    monkeypatch.setenv("DOPATUT_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def small_model():
    torch.manual_seed(0)
    return FoundationMLP(MLPConfig(hidden=(32, 16)))


@pytest.fixture
def inputs():
    return torch.randn(64, 784, generator=torch.Generator().manual_seed(1))
