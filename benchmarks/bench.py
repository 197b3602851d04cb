"""dopatut's speed, side by side with the usual pipelines and with the machine's own limit.

    python benchmarks/bench.py           # about 3 minutes on two cores
    python benchmarks/bench.py --book    # also times `pytest --nbmake book` (several minutes more)

Writes dopatut/results/latest.json (read by book/appendix_performance.ipynb) and latest.md, and
prints both tables. Exits 1 if a comparison could not be made (an error, or dopatut's LoRA and PEFT's
disagreeing by more than 0.3 points), never because a number is merely slow: goals are reported, not enforced.
Foundations are trained fresh in a temporary DOPATUT_CACHE, so their cost is measured, not a cache hit.
"""
from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from dopatut.foundations.data import MNIST_MEAN, MNIST_STD, load_mnist, mixture, mode_data, rotate  # noqa: E402
from dopatut.methods.gate import hardened  # noqa: E402
from dopatut.methods.lora import merge_lora  # noqa: E402
from dopatut.methods.builtin import apply_method, linear_names  # noqa: E402
from dopatut.foundations.model import FoundationMLP, freeze  # noqa: E402
from dopatut.study.perf import (FUSED_ADAM, PLAIN_ADAM, adam_shares, forward_flops, goals_table, protocol_flops,  # noqa: E402
                          interleaved_best, linear_shapes, measures_table, training_flops)
from dopatut.study.pipeline import FoundationSpec, foundation, specialise  # noqa: E402
from dopatut.training.stack import fit_many  # noqa: E402
from dopatut.training.train import TrainConfig, adam, evaluate, fit, predict_logits, seed_everything  # noqa: E402

RESULTS_DIR = ROOT / "dopatut" / "results"  # package data: the book's appendix reads it from any install
ANGLE_DEG = 45.0
BATCH = 128
LORA_RANK, LORA_ALPHA = 4, 4.0
MAX_ACC_GAP_PTS = 0.3  # dopatut's LoRA and PEFT's must agree this well, else the comparison is not of the same work


# ---------------------------------------------------------------- the usual pipeline
class FixedRotation:
    """Rotate a PIL image counter-clockwise by `angle_deg`, bilinear (the same resampling as dopatut.foundations.data.rotate)."""

    def __init__(self, angle_deg: float):
        self.angle_deg = angle_deg

    def __call__(self, img: Image.Image) -> Image.Image:
        import torchvision.transforms.functional as TF
        from torchvision.transforms import InterpolationMode
        return TF.rotate(img, self.angle_deg, interpolation=InterpolationMode.BILINEAR)


class PILDigits(Dataset):
    """torchvision's MNIST as usually used: a PIL image per item, transformed one sample at a time."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, angle_deg: float):
        from torchvision import transforms as T
        self.images, self.labels = images.numpy(), labels.numpy()
        self.transform = T.Compose([FixedRotation(angle_deg), T.ToTensor(), T.Normalize((MNIST_MEAN,), (MNIST_STD,))])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i], mode="L")  # what torchvision.datasets.MNIST does
        return self.transform(img), int(self.labels[i])


def usual_epoch(model, loader, optimizer) -> None:
    """The loop of the PyTorch MNIST example: batches from a DataLoader, flattened in the loop."""
    model.train()
    for xb, yb in loader:
        loss = F.cross_entropy(model(xb.flatten(1)), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


# ---------------------------------------------------------------- small pure helpers
def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing or b is 0."""
    return None if a is None or b is None or b == 0 else a / b


def goal(name: str, value, op: str, target: float, fmt: str, unit: str = "", note: str = "") -> dict:
    """A goal and whether `value` meets it (None when it was not measured)."""
    if op not in (">=", "<=", "<"):
        raise ValueError(f"op must be '>=', '<=' or '<', got {op!r}")
    met = None if value is None else {">=": value >= target, "<=": value <= target, "<": value < target}[op]
    return {"name": name, "value": value, "op": op, "target": target, "fmt": fmt, "unit": unit,
            "met": met, "note": note}


def parse_durations(pytest_output: str) -> dict[str, float]:
    """Seconds per notebook from `pytest --durations=0` lines like '12.34s call book/01_modes.ipynb::...'."""
    out: dict[str, float] = {}
    # a notebook's own item (book/x.ipynb::...), not a test whose parameter names a notebook (tests/...[x.ipynb])
    for m in re.finditer(r"^([\d.]+)s (?:setup|call|teardown)\s+((?:\S+/)?[^/\s:]+\.ipynb)::", pytest_output, re.M):
        out[Path(m.group(2)).name] = out.get(Path(m.group(2)).name, 0.0) + float(m.group(1))
    return out


# ---------------------------------------------------------------- 1 and 2: throughput and the limit
def bench_throughput(x, y, n: int, repeats: int) -> dict:
    x, y = x[:n], y[:n]
    config = TrainConfig(epochs=1, batch_size=BATCH, lr=1e-3, seed=0)
    images, labels = load_mnist(verbose=False).split("train")
    fns = {"dopatut": lambda: fit(FoundationMLP(), x, y, config, progress=False)}
    for workers in (0, 2):
        dataset = PILDigits(images[:n], labels[:n], ANGLE_DEG)
        model = FoundationMLP()
        opt = adam(model.parameters(), lr=1e-3)  # the Adam `fit` uses: only the data path differs
        loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers)
        fns[f"usual, num_workers={workers}"] = lambda loader=loader, model=model, opt=opt: usual_epoch(model, loader, opt)
    fit(FoundationMLP(), x[:1024], y[:1024], config, progress=False)  # warm-up
    seconds = interleaved_best(fns, repeats, warmup=0)
    start = time.perf_counter()
    rotate(images, ANGLE_DEG)  # dopatut pays this once per angle for the whole split, then caches it
    return {"n_samples": n, "batch_size": BATCH, "seconds": seconds,
            "samples_per_s": {k: n / v for k, v in seconds.items()},
            "seconds_rotate_60k_once": time.perf_counter() - start}


def train_steps(model, x, y, optimizer, n_steps: int):
    """A function running `n_steps` training steps (forward, backward, and optimizer if given) on fixed batches."""
    def run():
        for i in range(n_steps):
            j = (i * BATCH) % (len(x) - BATCH)
            loss = F.cross_entropy(model(x[j:j + BATCH]), y[j:j + BATCH])
            model.zero_grad(set_to_none=True)
            loss.backward()
            if optimizer is not None:
                optimizer.step()
    return run


def bench_limit(x, y, throughput: dict, repeats: int) -> dict:
    shapes = linear_shapes(FoundationMLP())
    n = throughput["n_samples"]
    achieved = training_flops(shapes, n) / throughput["seconds"]["dopatut"]
    # Why it falls short: the step's matmuls alone at batch 128, and what autograd and Adam add.
    ws = [torch.randn(o, i) for i, o in shapes]
    acts = [torch.randn(BATCH, i) for i, _ in shapes]
    grads = [torch.randn(BATCH, o) for _, o in shapes]

    def gemms():
        for _ in range(50):
            for k, (w, a, g) in enumerate(zip(ws, acts, grads)):
                a @ w.t(), g.t() @ a  # forward, weight gradient
                if k:
                    g @ w  # input gradient, none for the images
    x, y = x[:8192], y[:8192]
    n_steps, model = 60, FoundationMLP()
    big = {size: (torch.randn(size, size), torch.randn(size, size)) for size in (1024, 2048)}
    fns = {f"matmul {k}": lambda ab=ab: ab[0] @ ab[1] for k, ab in big.items()}
    fns["batch-128 matmuls"] = gemms
    fns["forward+backward"] = train_steps(model, x, y, None, n_steps)
    for name, kwargs in ((PLAIN_ADAM, {}), ("+ Adam(foreach=True)", {"foreach": True}), (FUSED_ADAM, {"fused": True})):
        try:
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, **kwargs)
            train_steps(model, x, y, opt, 1)()
            fns[name] = train_steps(model, x, y, opt, n_steps)
        except (RuntimeError, TypeError) as err:  # an optimizer variant this torch lacks on this device
            print(f"  {name}: not available ({err})")
    fns["fit, batch 1024"] = lambda: fit(FoundationMLP(), x, y, TrainConfig(epochs=1, batch_size=1024),
                                         progress=False)
    seconds = interleaved_best(fns, repeats + 2)
    peak = max(2 * k**3 / seconds[f"matmul {k}"] for k in big)
    step_flops = training_flops(shapes, BATCH)
    per_step = {k: v / n_steps for k, v in seconds.items() if k.startswith(("forward", "+"))}
    return {"peak_flops": peak, "achieved_flops": achieved, "fraction_of_peak": achieved / peak,
            "flops_per_sample": training_flops(shapes, 1), "flops_per_sample_6p": 6 * sum(i * o for i, o in shapes),
            "formula": "6*sum(in*out) - 2*in_1*out_1 per sample (forward, weight grads, input grads but the first)",
            "gemm_only_fraction": training_flops(shapes, 50 * BATCH) / seconds["batch-128 matmuls"] / peak,
            "seconds_per_step": per_step,
            "fraction_if_step": {k: step_flops / v / peak for k, v in per_step.items()},
            "fraction_batch_1024": training_flops(shapes, len(x)) / seconds["fit, batch 1024"] / peak,
            "fused_adam_max_weight_diff": same_training_with(x, y, {"fused": True})}


def same_training_with(x, y, adam_kwargs: dict) -> float | None:
    """Largest weight difference after 20 steps with Adam(**adam_kwargs) against the default Adam."""
    weights = []
    for kwargs in ({}, adam_kwargs):
        torch.manual_seed(0)
        model = FoundationMLP()
        try:
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, **kwargs)
            train_steps(model, x, y, opt, 20)()
        except (RuntimeError, TypeError):
            return None
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    return (weights[0] - weights[1]).abs().max().item()


# ---------------------------------------------------------------- 2b: many models at once
def bench_many(x, y, n: int, n_models: int = 10) -> dict:
    """n_models foundations trained one epoch on n samples: stacked (fit_many) against one at a time (fit)."""
    x, y = x[:n], y[:n]
    config = TrainConfig(epochs=1, batch_size=BATCH, lr=1e-3)

    def models():
        out = []
        for s in range(n_models):
            seed_everything(s)
            out.append(FoundationMLP())
        return out
    fit_many(models()[:2], x[:1024], y[:1024], config, progress=False)  # warm-up
    fns = {"stacked": lambda: fit_many(models(), x, y, config, progress=False),
           "one at a time": lambda: [fit(m, x, y, config, progress=False) for m in models()]}
    seconds = interleaved_best(fns, 2, warmup=0)
    flops = n_models * training_flops(linear_shapes(FoundationMLP()), n)
    gated = {}  # Dopamine gates: the frozen first product is precomputed when stacked
    for name, run in (("stacked", lambda ms: fit_many(ms, x, y, config, progress=False)),
                      ("one at a time", lambda ms: [fit(m, x, y, config, progress=False) for m in ms])):
        ms = [apply_method(m, "dopamine", verbose=False) for m in models()]
        begin = time.perf_counter()
        run(ms)
        gated[name] = time.perf_counter() - begin
    return {"n_models": n_models, "n_samples": n, "seconds": seconds, "flops": flops,
            "flops_per_s": {k: flops / v for k, v in seconds.items()}, "seconds_dopamine": gated,
            "full_recipe_gap_pts": full_recipe_gap()}


def full_recipe_gap(seed: int = 0) -> dict:
    """Test accuracy at 45°, fit (one model, the readable loop) against fit_many (the stacked path), after the
    protocol's full recipe, for the foundation and for Dopamine on it: rounding differs, so do the numbers."""
    from dopatut.study.protocol import PROTOCOL
    spec = FoundationSpec()
    x, y, _ = mixture("train", spec.angles, seed=seed)
    x45, y45 = mode_data("train", ANGLE_DEG)
    test = mode_data("test", ANGLE_DEG)
    out = {}
    bases = []
    for trainer in (fit, fit_many):
        seed_everything(seed)
        base = FoundationMLP()
        config = PROTOCOL.foundation_config(seed)
        trainer(base, x, y, config, progress=False) if trainer is fit else trainer([base], x, y, config, progress=False)
        bases.append(freeze(base))
    out["foundation"] = 100 * abs(evaluate(bases[0], *test) - evaluate(bases[1], *test))
    accs = []
    for trainer, base in zip((fit, fit_many), bases):
        seed_everything(seed)
        model = apply_method(base, "dopamine", verbose=False)
        config = TrainConfig(epochs=PROTOCOL.epochs, lr=1e-2, seed=seed)
        trainer(model, x45, y45, config, progress=False) if trainer is fit else trainer([model], x45, y45, config, progress=False)
        with hardened(model):
            accs.append(evaluate(model, *test))
    out["dopamine"] = 100 * abs(accs[0] - accs[1])
    return out


# ---------------------------------------------------------------- 3: LoRA against PEFT
def peft_lora(base, rank: int, alpha: float, start_from=None):
    """PEFT's LoRA on a frozen copy of `base`, targeting every linear layer; optionally from `start_from`'s A and B."""
    from dopatut.methods.lora import peft_lora as on_targets
    return on_targets(base, linear_names(base), rank, alpha, start_from)  # PEFT freezes all but its own


def bench_lora(base, epochs: int, repeats: int) -> dict:
    import peft
    x, y = mode_data("train", ANGLE_DEG)
    tests = {f"{a:g}": mode_data("test", a) for a in (0.0, ANGLE_DEG)}
    config = TrainConfig(epochs=epochs, lr=1e-3, seed=0)
    out = {"rank": LORA_RANK, "alpha": LORA_ALPHA, "epochs": epochs, "lr": config.lr, "peft": peft.__version__}
    seed_everything(0)
    ours = apply_method(base, "lora", rank=LORA_RANK, alpha=LORA_ALPHA, verbose=False)
    seed_everything(0)
    theirs = peft_lora(base, LORA_RANK, LORA_ALPHA, start_from=ours)
    out["n_trainable"] = {k: sum(p.numel() for p in m.parameters() if p.requires_grad)
                          for k, m in (("dopatut", ours), ("peft", theirs))}
    for name, model in (("dopatut", ours), ("peft", theirs)):
        history = fit(model, x, y, config, progress=False)
        out[name] = {"seconds": history.seconds, "accuracy": {k: evaluate(model, *xy) for k, xy in tests.items()}}
    out["max_gap_pts"] = max(100 * abs(out["dopatut"]["accuracy"][k] - out["peft"]["accuracy"][k]) for k in tests)
    # Time per step, interleaved and best-of, is steadier than one fit each on a busy machine.
    fns = {name: train_steps(model, x, y, adam([p for p in model.parameters() if p.requires_grad], config.lr), 50)
           for name, model in (("dopatut", ours), ("peft", theirs))}
    steps = {k: v / 50 for k, v in interleaved_best(fns, repeats + 2).items()}
    out["seconds_per_step"] = steps
    out["speedup_vs_peft"] = steps["peft"] / steps["dopatut"]
    return out


# ---------------------------------------------------------------- 3b: the transformer of chapter 9
def saved_bytes(model, x, y) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of one training step (activation memory)."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return total


def bench_transformer(repeats: int, quick: bool) -> dict:
    """Chapter 9's transformer: its foundation trained from nothing, then Dopamine against LoRA on attention:
    time per training step (interleaved, best of) and memory (activations kept for backward, Adam's state)."""
    from dopatut.study import beyond
    spec = beyond.STUDY.specs["mixture"]
    if quick:
        spec = replace(spec, train=replace(spec.train, epochs=1))
    start = time.perf_counter()
    base = foundation(0, spec, cache=False, progress=False)
    out = {"foundation_seconds": time.perf_counter() - start, "foundation_epochs": spec.train.epochs,
           "foundation_accuracy": base.meta["accuracy"]}
    x, y = mode_data("train", ANGLE_DEG, limit=4096)
    models = {arm: apply_method(base, method, verbose=False, **options)
              for arm, (method, options) in beyond.STUDY.arms.items() if arm in ("dopamine", "lora_attn")}
    fns = {arm: train_steps(m, x, y, adam([p for p in m.parameters() if p.requires_grad], 1e-3), 20)
           for arm, m in models.items()}
    out["seconds_per_step"] = {k: v / 20 for k, v in interleaved_best(fns, repeats + 2).items()}
    out["activation_mb"] = {arm: saved_bytes(m, x[:BATCH], y[:BATCH]) / 2**20 for arm, m in models.items()}
    out["n_trainable"] = {arm: sum(p.numel() for p in m.parameters() if p.requires_grad) for arm, m in models.items()}
    out["adam_state_kb"] = {arm: 2 * 4 * n / 1024 for arm, n in out["n_trainable"].items()}  # two moments, float32
    return out


# ---------------------------------------------------------------- 4: one seed, in a child process
def spec_for(quick: bool) -> FoundationSpec:
    """The book's foundation (the protocol's epochs on the 50k mixture), or a 1-epoch one for --quick."""
    return FoundationSpec(train=TrainConfig(epochs=1)) if quick else FoundationSpec()


def seed_child(quick: bool) -> None:
    """Run one seed of the whole pipeline and print its cost as JSON (the child side of bench_seed)."""
    start = time.perf_counter()
    load_mnist(verbose=False)
    base = foundation(0, spec_for(quick), progress=False)
    budget = {"epochs": 1 if quick else 3, "seed": 0}
    results = {m: specialise(base, m, ANGLE_DEG, 0, TrainConfig(lr=lr, **budget), progress=False, **kw)[1]
               for m, lr, kw in (("frozen", 1e-3, {}), ("dopamine", 1e-2, {}), ("lora", 1e-3, {"rank": LORA_RANK}))}
    seconds = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    print(json.dumps({"seconds_pipeline": seconds,
                      "seconds_train": {"foundation": base.meta["seconds"], **{k: r.seconds for k, r in results.items()}},
                      "accuracy": {k: r.accuracy for k, r in results.items()},
                      "n_trainable": {k: r.n_trainable for k, r in results.items()},
                      "foundation_accuracy": base.meta["accuracy"], "peak_rss_mb": rss_mb}))


def bench_seed(quick: bool, threads: int | None = None) -> dict:
    start = time.perf_counter()
    flags = [*(["--quick"] if quick else []), *([f"--threads={threads}"] if threads else [])]
    proc = subprocess.run([sys.executable, __file__, "--seed-child", *flags],
                          capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"the one-seed child failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["seconds_process"] = time.perf_counter() - start  # with Python start-up and `import torch`
    return out


# ---------------------------------------------------------------- 5: inference
def bench_inference(base, repeats: int) -> dict:
    x, _ = mode_data("test", ANGLE_DEG)
    dopamine = apply_method(base, "dopamine", verbose=False)  # the cost of a gate does not depend on its values
    lora = apply_method(base, "lora", rank=LORA_RANK, verbose=False)
    merged = merge_lora(copy.deepcopy(lora))
    with hardened(dopamine):
        timed = interleaved_best({"frozen base": lambda: predict_logits(base, x),
                                  "Dopamine (hard gates)": lambda: predict_logits(dopamine, x),
                                  "LoRA merged": lambda: predict_logits(merged, x),
                                  "LoRA unmerged": lambda: predict_logits(lora, x)}, repeats)
    return {"n_images": len(x), "seconds": timed,
            "flops_frozen": forward_flops(linear_shapes(base), len(x))}


# ---------------------------------------------------------------- the book
def run_book(path: Path, env: dict) -> dict:
    """Execute every notebook as CI does, with the usual foundation cache (`env`), and keep the time in `path`."""
    from dopatut.study.pipeline import FoundationSpec, foundation_path
    cache = Path(env.get("DOPATUT_CACHE", Path.home() / ".cache" / "dopatut"))
    warm = (cache / foundation_path(FoundationSpec(), 0).name).exists()  # seed 0's foundation already trained?
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "--nbmake", "book", "-q", "--durations=0",
                           "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True, env=env)
    book = {"seconds": time.perf_counter() - start, "passed": proc.returncode == 0, "cache_warm": warm,
            "notebooks": parse_durations(proc.stdout), "date": now(), "host": platform.node(),
            "load_start": os.getloadavg()[0]}
    path.write_text(json.dumps(book, indent=1) + "\n")
    return book


# ---------------------------------------------------------------- the table
def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def summarise(r: dict) -> tuple[list[dict], list[dict]]:
    """The goals and the side-by-side rows, with notes on what falls short and why."""
    th, lim, lo, sd, inf, book = (r.get(k) for k in ("throughput", "limit", "lora", "seed", "inference", "book"))
    many = r.get("many")
    goals, rows = [], []
    if th:
        sps = th["samples_per_s"]
        usual = {k: v for k, v in sps.items() if k.startswith("usual")}
        th["ratio"] = sps["dopatut"] / max(usual.values())
        goals.append(goal("training throughput, dopatut / fastest usual DataLoader", th["ratio"], ">=", 5, ".1f", "x"))
        for name, value in usual.items():
            rows.append({"name": f"training samples/s (batch {BATCH}) vs {name}",
                         "dopatut": f"{sps['dopatut']:,.0f}", "reference": f"{value:,.0f}", "ratio": sps["dopatut"] / value})
    if lim:
        ours, share_ours, share_plain = adam_shares(lim["seconds_per_step"])
        note = (f"batch-{BATCH} matmuls alone reach {lim['gemm_only_fraction']:.0%} of the peak; one step timed "
                f"alone (outside fit, dopatut's Adam) {lim['fraction_if_step'][ours]:.0%}; "
                f"Adam takes {share_ours:.0%} of a step")
        if ours != PLAIN_ADAM:
            note += (f" (torch's default Adam on CPU: {share_plain:.0%}; fused and default weights differ by "
                     f"{lim['fused_adam_max_weight_diff']:.1e} after 20 steps)")
        note += f"; batch 1024 reaches {lim['fraction_batch_1024']:.0%}"
        goals.append(goal("training FLOP/s, fraction of matmul peak", lim["fraction_of_peak"], ">=", 0.40, ".0%",
                          note=note))
        rows.append({"name": "training GFLOP/s vs float32 matmul peak", "dopatut": f"{lim['achieved_flops'] / 1e9:.1f}",
                     "reference": f"{lim['peak_flops'] / 1e9:.1f}", "ratio": lim["fraction_of_peak"]})
    if many and lim:
        fraction = {k: v / lim["peak_flops"] for k, v in many["flops_per_s"].items()}
        many["fraction_of_peak"] = fraction
        goals.append(goal(f"{many['n_models']} models at once (fit_many): fraction of matmul peak", fraction["stacked"],
                          ">=", 0.70, ".0%", note=f"one at a time (fit): {fraction['one at a time']:.0%} in the same run"))
        rows.append({"name": f"{many['n_models']} foundations, one epoch of {many['n_samples']:,}: s, stacked vs one at a time",
                     "dopatut": f"{many['seconds']['stacked']:.2f}", "reference": f"{many['seconds']['one at a time']:.2f}",
                     "ratio": many["seconds"]["one at a time"] / many["seconds"]["stacked"]})
        gated = many["seconds_dopamine"]
        rows.append({"name": f"{many['n_models']} Dopamine gate sets, one epoch: s, stacked (first product precomputed) vs one at a time",
                     "dopatut": f"{gated['stacked']:.2f}", "reference": f"{gated['one at a time']:.2f}",
                     "ratio": gated["one at a time"] / gated["stacked"]})
        gap = many["full_recipe_gap_pts"]
        rows.append({"name": "full recipe, |fit_many - fit| test accuracy at 45 deg (points): foundation, Dopamine",
                     "dopatut": f"{gap['foundation']:.2f}, {gap['dopamine']:.2f}"})
    if lo:
        goals.append(goal("LoRA accuracy gap to PEFT (points)", lo["max_gap_pts"], "<=", MAX_ACC_GAP_PTS, ".2f"))
        goals.append(goal("LoRA training speed, PEFT step / dopatut step", lo["speedup_vs_peft"], ">=", 1.0, ".2f",
                          "x"))
        a = f"{ANGLE_DEG:g}"
        rows.append({"name": f"LoRA r={LORA_RANK}, {lo['epochs']} epochs: accuracy at {a} deg vs PEFT",
                     "dopatut": f"{lo['dopatut']['accuracy'][a]:.2%}", "reference": f"{lo['peft']['accuracy'][a]:.2%}"})
        rows.append({"name": f"LoRA r={LORA_RANK}: ms per training step vs PEFT",
                     "dopatut": f"{1e3 * lo['seconds_per_step']['dopatut']:.2f}",
                     "reference": f"{1e3 * lo['seconds_per_step']['peft']:.2f}", "ratio": lo["speedup_vs_peft"]})
    if sd:
        goals.append(goal("one seed: foundation + Dopamine + LoRA + evaluation", sd["seconds_pipeline"], "<", 30,
                          ".1f", " s"))
        goals.append(goal("peak resident memory of one seed", sd["peak_rss_mb"], "<", 2000, ",.0f", " MB"))
        rows.append({"name": "one seed, whole pipeline (s; with Python start-up)",
                     "dopatut": f"{sd['seconds_pipeline']:.1f} ({sd['seconds_process']:.1f})"})
    tr = r.get("transformer")
    if tr:
        acc = ", ".join(f"{a} deg {v:.1%}" for a, v in tr["foundation_accuracy"].items())
        rows.append({"name": f"transformer foundation, {tr['foundation_epochs']} epochs from nothing (s; test {acc})",
                     "dopatut": f"{tr['foundation_seconds']:.1f}"})
        goals.append(goal("transformer foundation from an empty cache", tr["foundation_seconds"], "<", 60, ".1f", " s"))
        step, mem = tr["seconds_per_step"], tr["activation_mb"]
        rows.append({"name": "transformer: ms per training step, Dopamine vs LoRA on attention (r=4)",
                     "dopatut": f"{1e3 * step['dopamine']:.2f}", "reference": f"{1e3 * step['lora_attn']:.2f}",
                     "ratio": step["lora_attn"] / step["dopamine"]})
        rows.append({"name": f"transformer: MiB kept for backward per batch of {BATCH}, Dopamine vs LoRA on attention",
                     "dopatut": f"{mem['dopamine']:.1f}", "reference": f"{mem['lora_attn']:.1f}",
                     "ratio": mem["lora_attn"] / mem["dopamine"]})
        rows.append({"name": "transformer: trainable parameters (Adam state, kB), Dopamine vs LoRA on attention",
                     "dopatut": f"{tr['n_trainable']['dopamine']:,} ({tr['adam_state_kb']['dopamine']:.0f})",
                     "reference": f"{tr['n_trainable']['lora_attn']:,} ({tr['adam_state_kb']['lora_attn']:.0f})"})
    note = (f"measured {book['date']}; " + ("the cache was warm" if book.get("cache_warm") else
                                             "cache empty: the ten-seed comparison on two foundations trained")
            ) if book else "not measured: run with --book"
    if lim:  # the least time the protocol's training products can take on this machine
        flops = sum(protocol_flops().values())
        at_peak = flops / lim["peak_flops"]
        note += (f"; the protocol's training products alone (perf.protocol_flops: {flops / 1e12:.1f} TFLOP) would "
                 f"take {at_peak:.0f} s at this run's matmul peak, {at_peak / 0.7:.0f} s at 70% of it")
        rows.append({"name": "the protocol's training matrix products (foundations, grids, ten seeds; two foundations): "
                             "work, and time at the matmul peak", "dopatut": f"{flops / 1e12:.1f} TFLOP",
                     "reference": f"{at_peak:.0f} s"})
    goals.append(goal("whole book execution, empty cache (pytest --nbmake book)", book and book["seconds"], "<", 300,
                      ",.0f", " s", note=note))
    if inf:
        ref = inf["seconds"]["frozen base"]
        for name, sec in inf["seconds"].items():
            rows.append({"name": f"inference, {inf['n_images']:,} images: {name} (ms)", "dopatut": f"{1e3 * sec:.1f}",
                         "reference": f"{1e3 * ref:.1f} (frozen base)", "ratio": ref / sec})
    return goals, rows


def write(r: dict, out: Path) -> None:
    text = render(r)
    print("\n" + text)
    (out / "latest.json").write_text(json.dumps(r, indent=1) + "\n")
    (out / "latest.md").write_text(text)
    print(f"wrote {out / 'latest.json'} and latest.md")


def update_book(out: Path, book: dict | None = None) -> int:
    """--book-only: time the book (or take `book`) and refresh the book's goal in latest.json, leaving the rest."""
    r = json.loads((out / "latest.json").read_text())
    r["book"] = book or run_book(out / "book.json", dict(os.environ))
    r["goals"], r["rows"] = summarise(r)
    write(r, out)
    return 0 if r["book"]["passed"] else 1


def book_from_log(log: Path, out: Path) -> int:
    """--book-from-log: the book's time from the log of `.ci/run` (a fresh clone, an empty cache, `--durations`)."""
    text = log.read_text(errors="replace")
    notebooks = parse_durations(text)
    missing = sorted({p.name for p in (ROOT / "book").glob("*.ipynb")} - set(notebooks))
    if missing:
        sys.exit(f"{log} gives no time for {missing}; expected pytest --durations lines for every notebook")
    when = dt.datetime.fromtimestamp(log.stat().st_mtime, dt.timezone.utc)
    book = {"seconds": round(sum(notebooks.values()), 2), "passed": not re.search(r"^=+ .*\bfailed\b", text, re.M),
            "cache_warm": False, "notebooks": dict(sorted(notebooks.items(), key=lambda kv: -kv[1])),
            "date": when.strftime("%Y-%m-%d %H:%M UTC"), "host": platform.node(), "load_start": 0.0,
            "how": ".ci/run in a fresh clone, empty DOPATUT_CACHE: pytest --nbmake --overwrite --durations=20 tests "
                   "book; the sum of the notebooks' times"}
    (out / "book.json").write_text(json.dumps(book, indent=1) + "\n")
    return update_book(out, book)


def render(r: dict) -> str:
    m = r["meta"]
    head = ("QUICK RUN (--quick: sizes and epochs reduced, numbers not comparable with the goals). "
            if m.get("quick") else "") + (f"Measured {m['date']} on {m['host']} ({m['cpu']}, {m['threads']} torch threads, torch {m['torch']}); "
            f"load average {m['load_start']:.1f} at start, {m['load_end']:.1f} at end; run took {m['seconds']:.0f} s.")
    notes = [f"- {g['name']}: {g['note']}" for g in r["goals"] if g["note"]]
    return "\n\n".join([head, goals_table(r).markdown(), measures_table(r).markdown(), "\n".join(notes)]) + "\n"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--book", action="store_true", help="also time `pytest --nbmake book` (minutes)")
    parser.add_argument("--book-only", action="store_true",
                        help="only time the book, and update the book's row of an existing latest.json")
    parser.add_argument("--book-from-log", type=Path, metavar="LOG",
                        help="record the book's time from the log of .ci/run, and update latest.json's book row")
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat: checks the script runs")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice, one per core); 1 is steadier on a busy machine")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder for latest.json and latest.md")
    parser.add_argument("--seed-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.seed_child:
        seed_child(args.quick)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    if args.book_only:
        return update_book(args.out)
    if args.book_from_log:
        return book_from_log(args.book_from_log, args.out)
    start = time.perf_counter()
    n, repeats, epochs = (2048, 1, 1) if args.quick else (15_360, 3, 3)
    r = {"meta": {"date": now(), "host": platform.node(), "cpu": cpu_name(), "threads": torch.get_num_threads(),
                  "torch": torch.__version__, "python": platform.python_version(), "quick": args.quick,
                  "load_start": os.getloadavg()[0]}, "errors": []}
    user_env = dict(os.environ)  # the book runs with the usual cache
    cache = tempfile.TemporaryDirectory(prefix="dopatut-bench-")
    os.environ["DOPATUT_CACHE"] = cache.name  # fresh foundations: their training is part of what is timed

    def section(key, fn, *a):
        print(f"[{time.perf_counter() - start:5.0f} s] {key} ...", flush=True)
        try:
            r[key] = fn(*a)
        except Exception:  # noqa: BLE001 - reported, and the exit code says the comparison failed
            r["errors"].append(f"{key}: {traceback.format_exc()}")
            print(r["errors"][-1], file=sys.stderr)

    section("seed", bench_seed, args.quick, args.threads)  # first: it also trains the foundation the later sections reuse
    x, y, _ = mixture("train", (0.0, ANGLE_DEG), seed=0)
    section("throughput", bench_throughput, x, y, n, repeats)
    if "throughput" in r:
        section("limit", bench_limit, x, y, r["throughput"], repeats)
    section("many", bench_many, x, y, n)
    section("base", foundation, 0, spec_for(args.quick), True, False)  # cached by the seed's child (else trained)
    if "base" in r:
        base = r.pop("base")
        section("lora", bench_lora, base, epochs, repeats)
        section("inference", bench_inference, base, 10 if not args.quick else 2)
    section("transformer", bench_transformer, repeats, args.quick)
    book_file = args.out / "book.json"
    if args.book:
        section("book", run_book, book_file, user_env)
    elif book_file.exists():
        r["book"] = json.loads(book_file.read_text())
    cache.cleanup()
    if r.get("lora") and r["lora"]["max_gap_pts"] > MAX_ACC_GAP_PTS:
        r["errors"].append(f"lora: dopatut and PEFT differ by {r['lora']['max_gap_pts']:.2f} points "
                           f"(> {MAX_ACC_GAP_PTS}): not the same work")
    r["goals"], r["rows"] = summarise(r)
    r["meta"].update(seconds=time.perf_counter() - start, load_end=os.getloadavg()[0])
    write(r, args.out)
    for err in r["errors"]:
        print(f"FAILED: {err.splitlines()[0]}", file=sys.stderr)
    return 1 if r["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
