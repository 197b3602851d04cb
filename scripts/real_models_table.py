"""Every method with its defaults on the real architectures of tests/zoo.py: attached, trainable count, identity.

    python scripts/real_models_table.py            # a markdown table on standard output

"identity" is the largest difference between the method's model at init (gates hardened) and the base, on the
entry's inputs: 0 means exact. Models are built from config objects: nothing is downloaded.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from zoo import ZOO, call  # noqa: E402

from dopatut.methods.gate import hardened  # noqa: E402
from dopatut.methods.builtin import apply_method  # noqa: E402

METHODS = ("dopamine", "gain_only", "bitfit", "head", "lora")


def cell(entry, method) -> str:
    base, x = entry.build(), entry.inputs()
    try:
        model = apply_method(base, method, verbose=False)
    except Exception as err:  # the table reports what a reader would see
        return f"refused: {str(err).splitlines()[0][:70]}"
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    try:
        with torch.no_grad(), hardened(model):
            diff = (call(model.eval(), x) - call(base, x)).abs().max().item()
    except Exception as err:
        return f"{trainable:,}; fails at the first call: {str(err).splitlines()[0][:60]}"
    return f"{trainable:,}; identity {'exact' if diff == 0 else f'off by {diff:.1e}'}"


def main() -> None:
    warnings.filterwarnings("ignore")
    print("| model | " + " | ".join(METHODS) + " |")
    print("|---" * (len(METHODS) + 1) + "|")
    for entry in ZOO:
        print(f"| {entry.name} | " + " | ".join(cell(entry, m).replace("|", "/") for m in METHODS) + " |", flush=True)


if __name__ == "__main__":
    main()
