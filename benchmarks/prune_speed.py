"""Conditional computation, measured: the dense hard-gated network against pruned ones.

    python benchmarks/prune_speed.py            # about a minute on two cores
    python benchmarks/prune_speed.py --quick    # a smoke test with tiny sizes

One mode (45°) of the book's foundation: Dopamine gates trained for one epoch on the first
`--train-limit` 45° training images, made hard. Pruned networks (dopatut.analysis.prune) drop the neurons that
are silent on every 45° test image (exact on those images), or that fire on at most p of the 45°
training images (an approximation). For each: hidden neurons removed, FLOPs per image, accuracy on the
45° test set, and the fastest forward pass over the test set (batch of all images) and over single
images, every network timed in turn each round (dopatut.study.perf.interleaved_best).

Prints a table and writes dopatut/results/prune_speed.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from dopatut.analysis import prune  # noqa: E402
from dopatut.methods.gate import set_hard  # noqa: E402
from dopatut.foundations.data import mode_data  # noqa: E402
from dopatut.study.perf import forward_flops, interleaved_best, linear_shapes  # noqa: E402
from dopatut.study.pipeline import foundation  # noqa: E402
from dopatut.study.sweeps import adapt  # noqa: E402
from dopatut.training.train import evaluate  # noqa: E402

ANGLE_DEG = 45.0
RATES = (0.01, 0.05, 0.1, 0.2)


def measure(seed: int, train_limit: int, test_limit: int | None, repeats: int, multiple_of: int) -> dict:
    base = foundation(seed, progress=False)
    gated, _ = adapt(base, "dopamine", ANGLE_DEG, seed, train_limit=train_limit)  # the protocol's settings
    set_hard(gated)
    x, y = mode_data("test", ANGLE_DEG, limit=test_limit)
    x_train, _ = mode_data("train", ANGLE_DEG, limit=train_limit)
    n_hidden = sum(base.config.hidden)
    masks = {"silent on test set (exact)": prune.silent_on(gated, x),
             **{f"fires on <= {p:.0%} of train": prune.silent_on(gated, x_train, p) for p in RATES}}
    nets = {"dense gated": gated}
    nets.update({f"{label}, widths as found": prune.prune(gated, masks[label]) for label in list(masks)[:1]})
    nets.update({label: prune.prune(gated, mask, multiple_of=multiple_of) for label, mask in masks.items()})
    with torch.no_grad():
        batch = interleaved_best({k: (lambda n=n: n(x)) for k, n in nets.items()}, repeats)
        single = interleaved_best({k: (lambda n=n: [n(x[i:i + 1]) for i in range(100)]) for k, n in nets.items()},
                                  repeats)
        dense_logits = gated(x)
    rows = []
    for name, net in nets.items():
        with torch.no_grad():
            logits = net(x)
        rows.append({"network": name, "hidden": list(net.config.hidden),
                     "removed_fraction": 1 - sum(net.config.hidden) / n_hidden,
                     "flops_per_image": forward_flops(linear_shapes(net), 1),
                     "accuracy": evaluate(net, x, y),
                     "max_logit_diff": (logits - dense_logits).abs().max().item(),
                     "same_predictions": bool(torch.equal(logits.argmax(1), dense_logits.argmax(1))),
                     "batch_seconds": batch[name], "single_image_seconds": single[name] / 100})
    dense = rows[0]
    for r in rows:
        r["speedup_batch"] = dense["batch_seconds"] / r["batch_seconds"]
        r["speedup_single"] = dense["single_image_seconds"] / r["single_image_seconds"]
        r["flops_ratio"] = dense["flops_per_image"] / r["flops_per_image"]
    certified = sum(m.sum().item() for m in prune.never_fire(gated).values())
    return {"rows": rows, "n_test_images": len(x), "certified_silent_neurons": certified, "n_hidden": n_hidden}


def table(result: dict) -> str:
    head = (f"{'network':<42} {'hidden':>10} {'removed':>8} {'FLOPs x':>8} {'accuracy':>9} {'same':>5} "
            f"{'batch ms':>9} {'speed-up':>8} {'1 img us':>9} {'speed-up':>8}")
    lines = [head, "-" * len(head)]
    for r in result["rows"]:
        lines.append(f"{r['network']:<42} {'x'.join(map(str, r['hidden'])):>10} {r['removed_fraction']:>8.1%} "
                     f"{r['flops_ratio']:>8.2f} {r['accuracy']:>9.2%} {'yes' if r['same_predictions'] else 'no':>5} "
                     f"{1e3 * r['batch_seconds']:>9.1f} {r['speedup_batch']:>8.2f} "
                     f"{1e6 * r['single_image_seconds']:>9.1f} {r['speedup_single']:>8.2f}")
    lines.append(f"certified silent on every possible image (interval arithmetic): "
                 f"{result['certified_silent_neurons']} of {result['n_hidden']} neurons")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-limit", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--multiple-of", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script works")
    parser.add_argument("--out", type=Path, default=ROOT / "dopatut" / "results" / "prune_speed.json")
    args = parser.parse_args()
    test_limit, repeats = (1000, 2) if args.quick else (None, args.repeats)
    train_limit = 2000 if args.quick else args.train_limit
    result = measure(args.seed, train_limit, test_limit, repeats, args.multiple_of)
    result.update(date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), seed=args.seed,
                  angle_deg=ANGLE_DEG, train_limit=train_limit, repeats=repeats, multiple_of=args.multiple_of,
                  torch=torch.__version__, threads=torch.get_num_threads(), machine=platform.machine(),
                  processor=platform.processor() or platform.machine(), quick=args.quick,
                  load_average_1min=os.getloadavg()[0])  # other work on the machine disturbs the timings
    print(table(result))
    print(f"load average (1 min) at the end: {result['load_average_1min']:.1f} on {os.cpu_count()} CPUs")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
