"""Checkpoints that are written atomically and checked when loaded.

A file holds a header (format, kind, configuration, metadata), the tensors, and a
SHA-256 of the tensors' bytes. Loading refuses a file that is corrupt, of another
kind, or made for another configuration, and says exactly what differs.
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


def save_checkpoint(path, state: dict[str, torch.Tensor], kind: str, config: dict, meta: dict | None = None) -> Path:
    state = {k: v.detach().cpu().clone() for k, v in state.items()}
    payload = {"format": FORMAT, "kind": kind, "config": config, "meta": meta or {},
               "state": state, "sha256": _digest(state)}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def _differences(expected: dict, found: dict) -> list[str]:
    keys = sorted(set(expected) | set(found))
    return [f"{k}: expected {expected.get(k, '<missing>')!r}, file has {found.get(k, '<missing>')!r}"
            for k in keys if expected.get(k, "<missing>") != found.get(k, "<missing>")]


def load_checkpoint(path, kind: str, config: dict | None = None,
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
    if payload["kind"] != kind:
        raise CheckpointError(f"{path} holds a {payload['kind']!r}, expected a {kind!r}")
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


def save_gates(path, gates, model, meta: dict | None = None) -> Path:
    """Save one mode's GateSet alone (a few kB), apart from the base. The file records each gate's place (module
    name, call index, width, axis, activation class) and every place the model could be gated at by default,
    so that `load_gates` refuses a model it does not fit exactly."""
    from .gate import model_places  # local: checkpoints sits below gate in the import order
    from .places import split_key

    found = model_places(model)
    places = {}
    for key, g in gates.items():
        module, call = split_key(key)
        known = found.get(key, {})
        places[key] = {"module": module, "call": call or 0, "width": g.width,
                       "axis": getattr(g, "feature_dim", -1), "activation": known.get("activation")}
    config = {"places": places, "model_places": found}
    return save_checkpoint(path, gates.state_dict(), "mode", config, {"model": type(model).__name__, **(meta or {})})


def _place_differences(saved: dict, now: dict) -> list[str]:
    lines = [f"{k}: in the mode's model, not in this one" for k in saved if k not in now]
    lines += [f"{k}: in this model ({now[k]['activation']}, {now[k]['width']} neurons), not in the mode's"
              for k in now if k not in saved]
    for k in saved:
        if k in now and saved[k] != now[k]:
            lines.append(f"{k}: " + ", ".join(f"{f} {saved[k][f]!r} in the mode's model, {now[k][f]!r} here"
                                               for f in saved[k] if saved[k][f] != now[k].get(f)))
    return lines


def load_gates(path, model, partial: bool = False, **gate_kwargs):
    """Load a GateSet saved by `save_gates`, checked to fit `model`: every place the mode's model could be gated
    at is a place of this model, with the same width, axis and activation, and no more (partial=True: only the
    mode's own places are checked, so a mode can go on part of a larger model)."""
    from .gate import DopamineGate, GateSet, model_places  # local: checkpoints sits below gate in the import order

    payload = load_checkpoint(path, "mode")
    config, source = payload["config"], payload["meta"].get("model", "?")
    if not partial:
        diffs = _place_differences(config["model_places"], model_places(model))
        if diffs:
            raise CheckpointError(f"{path} holds a mode for another model ({source}); the activations differ "
                                  f"({len(diffs)}):\n  " + "\n  ".join(diffs[:20]) +
                                  ("\n  ..." if len(diffs) > 20 else "") +
                                  "\nload it with partial=True to put it on the places it names only")
    gates = GateSet({key: DopamineGate(c["width"], feature_dim=c["axis"], **gate_kwargs)
                     for key, c in config["places"].items()})
    try:
        gates.check_fits(model)
    except ValueError as err:
        raise CheckpointError(f"{path} holds a mode for another model ({source}): {err}") from None
    diffs = _differences({k: tuple(v.shape) for k, v in gates.state_dict().items()},
                         {k: tuple(v.shape) for k, v in payload["state"].items()})
    if diffs:
        raise CheckpointError(f"{path}: gates do not fit the model:\n  " + "\n  ".join(diffs))
    gates.load_state_dict(payload["state"])
    return gates
