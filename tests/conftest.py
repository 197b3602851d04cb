import socket

import pytest
import torch

from dopatut.foundations.model import FoundationMLP, MLPConfig

_connect = socket.socket.connect


def _offline_connect(sock, address):
    host = address[0] if isinstance(address, tuple) else address
    if sock.family == socket.AF_UNIX or host in ("localhost", "::1") or str(host).startswith("127."):
        return _connect(sock, address)
    raise RuntimeError(f"a test tried to reach the network at {address!r}; tests must run offline")


@pytest.fixture(autouse=True)
def _offline_and_in_tmp(tmp_path, monkeypatch):
    """Tests never touch the user's caches or the network: DOPATUT_CACHE and DOPATUT_DATA point into the test's
    own folder, and a connection to anything but this machine fails the test. They compute what they test:
    the shipped bundle is off (DOPATUT_RECOMPUTE=1) except in the tests that turn it on (tests/test_bundle.py)."""
    monkeypatch.setenv("DOPATUT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DOPATUT_RECOMPUTE", "1")
    monkeypatch.delenv("DOPATUT_READ_SHIPPED", raising=False)  # CI's exception for the budget study: not here
    monkeypatch.setenv("DOPATUT_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(socket.socket, "connect", _offline_connect)


@pytest.fixture
def small_model():
    torch.manual_seed(0)
    return FoundationMLP(MLPConfig(hidden=(32, 16)))


@pytest.fixture
def inputs():
    return torch.randn(64, 784, generator=torch.Generator().manual_seed(1))
