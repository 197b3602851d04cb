"""Which modules are activations, and where a gate on each starts so that the hard gate changes nothing.

A gate goes on a hidden neuron's activation. By default dopatut finds them by class, in the three libraries
readers' models come from:
  - torch.nn: ReLU, ReLU6, LeakyReLU, PReLU, RReLU, ELU, SELU, CELU, GELU (either form), SiLU, Mish, Hardswish,
    Softplus;
  - Hugging Face transformers: the classes of `transformers.activations.ACT2CLS` (GELUActivation,
    NewGELUActivation, QuickGELUActivation, ...);
  - timm: the classes of `timm.layers.activations` and `timm.layers.activations_me` (GELU, GELUTanh, Swish, ...).
A library that is not imported is not looked at (a model built from its classes has imported it already).
Squashing functions that scale rather than select (Sigmoid, Tanh, Hardsigmoid, Softmax; a squeeze-excitation
block's gate) and the identity are left out; name them with `targets=` to gate them anyway.

The rule at init (`open_threshold`): a gate starts at the largest whole threshold tau <= 0 below which the
activation is within OPEN_TOL of zero, so the hard gate 1[z > tau] * a equals a exactly wherever z > tau and is
off by less than OPEN_TOL below. ReLU, ReLU6, Hardswish: tau = 0, -3, exact everywhere. GELU: -4, SiLU: -10.
An activation that is not near zero below any drive (LeakyReLU, ELU, PReLU, Tanh) has no such tau: its gates
start at 0, the hard gate cuts its negative part, and the model is not the base at init; `open_threshold` says
so and so does the summary `apply_method` prints.
"""
from __future__ import annotations

import sys

import torch
from torch import nn

OPEN_TOL = 5e-4  # |act(z)| below this counts as zero
# the classes torch.nn ships that compute one hidden neuron's activation from its drive
TORCH_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU,
                     nn.SiLU, nn.Mish, nn.Hardswish, nn.Softplus)
# names of classes that squash or pass through rather than select, in any library: not gated by default
NOT_BY_DEFAULT = {"Sigmoid", "Tanh", "Hardsigmoid", "HardSigmoid", "HardSigmoidMe", "Softmax", "LogSoftmax",
                  "Identity", "LinearActivation", "LaplaceActivation", "GLU", "GluMlp"}
_LIBRARIES = ("transformers.activations", "timm.layers.activations", "timm.layers.activations_me")


def _library_classes(module) -> list[type]:
    if module.__name__ == "transformers.activations":
        entries = getattr(module, "ACT2CLS", {}).values()
        found = [e[0] if isinstance(e, tuple) else e for e in entries]
    else:
        found = [v for v in vars(module).values() if isinstance(v, type) and v.__module__ == module.__name__]
    return [c for c in found if isinstance(c, type) and issubclass(c, nn.Module)]


def activation_classes() -> tuple[type, ...]:
    """The activation classes gated by default: torch.nn's, and those of transformers and timm if imported."""
    found = list(TORCH_ACTIVATIONS)
    for name in _LIBRARIES:
        if name in sys.modules:
            found += [c for c in _library_classes(sys.modules[name]) if c not in found]
    return tuple(c for c in found if c.__name__ not in NOT_BY_DEFAULT)


_OPEN: dict[tuple, tuple[float, bool]] = {}


@torch.no_grad()
def open_threshold(act: nn.Module) -> tuple[float, bool]:
    """(tau, exact): where a gate on `act` starts, and whether the hard gate is then the activation (to OPEN_TOL).

    tau is the largest whole number <= 0 such that |act(z)| < OPEN_TOL for every z <= tau (checked on a grid
    down to -60 and at -1e2, -1e3, -1e4). Where there is none, (0.0, False).
    """
    key = (type(act), repr(act))
    if key not in _OPEN:
        param = next(act.parameters(), None)
        z = torch.cat([torch.tensor([-1e4, -1e3, -1e2]), torch.arange(-6000, 1) / 100.0])
        z = z.to(dtype=param.dtype if param is not None else torch.float32,
                 device=param.device if param is not None else "cpu")
        try:
            small = act(z.clone().unsqueeze(0)).squeeze(0).abs() < OPEN_TOL
        except Exception:  # an activation that wants another shape or input: no rule, start at 0
            small = torch.zeros_like(z, dtype=torch.bool)
        # small below t: every grid point <= t is small, i.e. t lies before the first point that is not
        first_bad = int((~small).nonzero()[0]) if (~small).any() else len(z)
        candidates = [t for t in range(0, -61, -1) if first_bad == len(z) or z[first_bad] > t]
        _OPEN[key] = (float(candidates[0]), True) if candidates else (0.0, False)
    return _OPEN[key]
