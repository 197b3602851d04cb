"""The device every chapter trains on: the reader's GPU where there is one.

    default_device()        # DOPATUT_DEVICE if set, else CUDA, else MPS (Apple), else the CPU
    resolve_device(None)    # the same; resolve_device("cpu") -> torch.device("cpu")
    device_key(device)      # {} on the CPU, {"device": "cuda"} elsewhere: what a cache key adds
    rounding()              # {"torch": "2.14.1", "kernels": "AVX512", "cpu_id": "AuthenticAMD/25/17", ...}

A GPU rounds floats otherwise than a CPU, so results and checkpoints made on one are kept apart from the
other's: their cache keys name the device type, except on the CPU, whose keys (and the shipped bundle,
made on a CPU) stay as they were.

Two machines round alike when torch's version, the vector kernels it picked (torch.backends.cpu: AVX2, AVX512)
and the CPU (vendor, family, model) are the same: then a training run gives the same bits on both (measured:
two AMD EPYC machines, benchmarks/README.md). Where any differs, runs drift apart, as another seed's would: an
Intel Xeon and an AMD EPYC, both AVX512, agreed for three epochs and then did not (dopatut.study.bundle_check).
"""
from __future__ import annotations

import os
import platform

import torch


def _available(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_available()
    if device.type == "mps":
        return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    return device.type == "cpu"


def default_device() -> torch.device:
    """DOPATUT_DEVICE (e.g. cpu, cuda, cuda:1, mps) if set, else CUDA, else MPS, else the CPU."""
    chosen = os.environ.get("DOPATUT_DEVICE", "").strip()
    if chosen:
        try:
            device = torch.device(chosen)
        except RuntimeError as err:
            raise ValueError(f"DOPATUT_DEVICE={chosen!r} is not a device torch knows ({err}); "
                             "expected cpu, cuda, cuda:N or mps") from None
        if not _available(device):
            raise ValueError(f"DOPATUT_DEVICE={chosen!r}, but this machine has no {device.type} device that torch "
                             "can use; unset DOPATUT_DEVICE, or set it to cpu")
        return device
    for candidate in ("cuda", "mps"):
        if _available(torch.device(candidate)):
            return torch.device(candidate)
    return torch.device("cpu")


def resolve_device(device=None) -> torch.device:
    """`device` as a torch.device; None: default_device()."""
    return default_device() if device is None else torch.device(device)


def device_key(device) -> dict:
    """What a cache key adds for results made on `device`: nothing on the CPU, else its type."""
    kind = resolve_device(device).type
    return {} if kind == "cpu" else {"device": kind}


def describe(device=None) -> str:
    """The device in words, for the setup cell: 'cuda (NVIDIA H100)', 'cpu (2 threads)'."""
    device = resolve_device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type


def _cpuinfo() -> dict:
    """/proc/cpuinfo's first processor (Linux), {} elsewhere."""
    out = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as lines:
            for line in lines:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                out[key.strip()] = value.strip()
    except OSError:
        pass
    return out


def rounding() -> dict:
    """How this machine's CPU rounds a training run: torch's version, its vector kernels, and the CPU (vendor,
    family and model: MKL picks its matrix kernels by them), with the CPU's name for the record."""
    info = _cpuinfo()
    ident = "/".join(info.get(k, "?") for k in ("vendor_id", "cpu family", "model")) if info else platform.machine()
    return {"torch": torch.__version__.split("+")[0], "kernels": torch.backends.cpu.get_cpu_capability(),
            "cpu_id": ident, "cpu": info.get("model name") or platform.processor() or platform.machine()}


def rounds_alike(a: dict, b: dict) -> bool:
    """Whether two rounding() records give the same bits: the same torch, kernels and CPU."""
    return all(a.get(k) is not None and a.get(k) == b.get(k) for k in ("torch", "kernels", "cpu_id"))
