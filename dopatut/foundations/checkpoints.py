"""Checkpoints that are written atomically and checked when loaded.

A file holds a header (format, what it contains: "foundation" or "mode", configuration, metadata), the tensors,
and a SHA-256 of the tensors' bytes. Loading refuses a file that is corrupt, holds something else, or was made
for another configuration, and says exactly what differs. (In the rest of the package `kind` is a foundation.)
"""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

import torch

FORMAT = "dopatut-checkpoint-v1"


class CheckpointError(RuntimeError):
    """A checkpoint could not be used: corrupt, of another kind, or for another configuration."""


def _digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path, state: dict[str, torch.Tensor], content: str, config: dict, meta: dict | None = None) -> Path:
    state = {k: v.detach().cpu().clone() for k, v in state.items()}
    payload = {"format": FORMAT, "kind": content, "config": config, "meta": meta or {},
               "state": state, "sha256": _digest(state)}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def _differences(expected: dict, found: dict) -> list[str]:
    keys = sorted(set(expected) | set(found))
    return [f"{k}: expected {expected.get(k, '<missing>')!r}, file has {found.get(k, '<missing>')!r}"
            for k in keys if expected.get(k, "<missing>") != found.get(k, "<missing>")]


def load_checkpoint(path, content: str, config: dict | None = None,
                    shapes: dict[str, tuple] | None = None) -> dict:
    """Load and check a checkpoint. Returns the payload (with 'state', 'config', 'meta')."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path} is corrupt or truncated ({type(err).__name__}: {err})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a dopatut checkpoint (expected format {FORMAT!r})")
    if payload["kind"] != content:
        raise CheckpointError(f"{path} holds a {payload['kind']!r}, expected a {content!r}")
    if _digest(payload["state"]) != payload["sha256"]:
        raise CheckpointError(f"{path}: tensors do not match their checksum; the file is corrupt")
    if config is not None and payload["config"] != config:
        raise CheckpointError(f"{path} was made for another configuration:\n  " +
                              "\n  ".join(_differences(config, payload["config"])))
    if shapes is not None:
        found = {k: tuple(v.shape) for k, v in payload["state"].items()}
        diffs = _differences({k: tuple(v) for k, v in shapes.items()}, found)
        if diffs:
            raise CheckpointError(f"{path} does not fit the model (tensor shapes):\n  " + "\n  ".join(diffs))
    return payload


def tensors_to_json(tensors: dict[str, torch.Tensor]) -> dict[str, dict]:
    """Float tensors as JSON, exactly: name -> {"shape", "float32": base64 of the little-endian bytes}."""
    import base64

    return {name: {"shape": list(t.shape),
                   "float32": base64.b64encode(t.detach().to("cpu", torch.float32).contiguous().numpy()
                                               .astype("<f4").tobytes()).decode("ascii")}
            for name, t in tensors.items()}


def tensors_from_json(value: dict[str, dict]) -> dict[str, torch.Tensor]:
    """tensors_to_json's tensors back, bit for bit."""
    import base64

    import numpy as np

    return {name: torch.from_numpy(np.frombuffer(base64.b64decode(v["float32"]), dtype="<f4").copy()
                                   .astype(np.float32)).reshape(v["shape"]) for name, v in value.items()}
