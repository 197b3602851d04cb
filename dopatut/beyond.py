"""Chapter 9's experiment: the course's methods, put by target on a small vision transformer.

    bases = vit_foundations(seed=0)                        # both foundations, trained side by side, then cached
    base = bases["mixture"]
    lrs = choose_lrs(base)                                 # each arm's learning rate, chosen on validation data
    runs = run_arms(base, lrs, seeds=(0, 1, 2))            # arm -> [Result], one per seed
    compare.summarise(runs), compare.differences(runs)     # the tables of chapter 5, for the transformer

An *arm* is a method and where it goes: LoRA on the attention projections (PEFT's usual targets) and LoRA
on the MLP are two arms of one method; so are Dopamine with GELU's open threshold (the identity at init, see
dopatut.gate) and Dopamine with its thresholds starting at 0. The budget, fixed to fit the chapter in CI (and
said there): the foundation trains `VIT_EPOCHS` epochs on its 50,000 images; each arm one epoch over the first
`ADAPT_IMAGES` 45° training images, at the learning rate that scores best on the validation split after one
epoch on the first `GRID_IMAGES` of them.

Every model here trains by itself (train.fit, `stack=False`), one job per model in worker processes
(dopatut.workers): the transformer's products are too small for vmap's batching to pay on a CPU (one arm's
three seeds: 10-45% slower stacked than one after another, measured on two cores), while two one-thread
workers side by side do not slow each other.
"""
from __future__ import annotations

import copy

import torch

from .attribution import firing
from .data import mode_data
from .gate import GateSet
from .lora import LORA_WRAPPERS
from .methods import apply_method
from .model import count_parameters
from .pipeline import FoundationSpec, Result, foundations, specialise_many
from .tables import Table
from .train import TrainConfig, evaluate, fit, seed_everything
from .vit import ViTConfig
from .workers import run_jobs

VIT = ViTConfig()  # 7x7 patches, width 48, 2 blocks, 4 heads, MLP 192: 60,394 parameters
VIT_EPOCHS = 3
VIT_SPECS = {kind: FoundationSpec(VIT, angles, train=TrainConfig(epochs=VIT_EPOCHS, lr=3e-3), curves=False,
                                  stack=False) for kind, angles in (("mixture", (0.0, 45.0)), ("upright", (0.0,)))}
# (no curves: they are not shown)
ARMS = {  # arm -> (method, apply_method options)
    "dopamine": ("dopamine", {}),
    "dopamine_at_0": ("dopamine", {"threshold_init": 0.0}),
    "gain_only": ("gain_only", {}),
    "lora_attn": ("lora", {"targets": ["qkv", "proj"]}),
    "lora_mlp": ("lora", {"targets": ["fc1", "fc2"]}),
    "head": ("head", {}),
    "full": ("full", {}),
}
_GATE_LRS = (3e-2, 1e-1, 3e-1)  # a factor of 3 apart, centred on where a first, wider grid put each arm's best
LR_GRID = {"dopamine": _GATE_LRS, "dopamine_at_0": _GATE_LRS, "gain_only": _GATE_LRS, "lora_attn": (3e-3, 1e-2, 3e-2),
           "lora_mlp": (3e-3, 1e-2, 3e-2), "head": (1e-3, 3e-3, 1e-2), "full": (3e-4, 1e-3, 3e-3)}
WIDEN = 2  # where an arm's best rate sits at an edge of its grid, up to this many rates past it, a factor of 3 apart
ADAPT_IMAGES = 10_000
GRID_IMAGES = 5_000


def vit_foundations(seed: int = 0, device=None, recompute: bool | None = None) -> dict:
    """kind -> the transformer foundation of VIT_SPECS for `seed`, on `device` (None: the reader's): from the
    cache, else the shipped bundle (seed 0, unless `recompute`), else trained side by side in worker processes
    (dopatut.workers; on a GPU one after another, in this process)."""
    return dict(zip(VIT_SPECS, foundations([seed] * len(VIT_SPECS), list(VIT_SPECS.values()), device=device,
                                           recompute=recompute)))


def _arm(name: str) -> tuple[str, dict]:
    if name not in ARMS:
        raise ValueError(f"unknown arm {name!r}; expected one of {', '.join(ARMS)}")
    return ARMS[name]


def _checked(arms) -> list[str]:
    """The arms as a list; an unknown one is refused here, before any worker starts."""
    arms = list(arms)
    for arm in arms:
        _arm(arm)
    return arms


def _longest_first(base, arms: list[str]) -> list[str]:
    """The order to hand the arms to the workers: most trainable parameters (about the longest to train) first,
    so that no worker is left alone with a long job at the end."""
    def size(arm):
        method, options = _arm(arm)
        return count_parameters(apply_method(base, method, verbose=False, **options))[0]
    return sorted(arms, key=size, reverse=True)


def _adapted(base, arm: str, lr: float, seed: int, angle_deg: float, epochs: int, train_limit: int,
             split: str = "test", eval_angles=(0.0, 45.0)) -> tuple:
    """One arm, one seed, trained by itself on the first `train_limit` images: (model, Result). The sizes come in
    the job, not from this module's globals, which a worker forked earlier would hold as they were then."""
    method, options = _arm(arm)
    model, result = specialise_many([base], method, [seed], TrainConfig(epochs=epochs, lr=lr), angle_deg=angle_deg,
                                    eval_angles=eval_angles, split=split, progress=False, train_limit=train_limit,
                                    soft=False, stack=False, **options)[0]
    result.method = arm
    return model, result


def _grid_point(base, arm: str, lr: float, angle_deg: float, train_limit: int) -> float:
    """One arm at one rate (seed 0, one epoch): its validation accuracy (the model stays in the worker)."""
    _, result = _adapted(base, arm, lr, 0, angle_deg, 1, train_limit, split="val", eval_angles=(angle_deg,))
    return result.accuracy[f"{angle_deg:g}"]


def past_edge(scores: dict[float, float], factor: float = 3.0) -> float | None:
    """The next rate to try past the edge of `scores` ({rate: validation accuracy}) where the best one sits
    (`factor` times the largest, or the smallest divided by it); None if the best is inside."""
    best, rates = max(scores, key=scores.get), sorted(scores)
    if len(rates) < 2 or best not in (rates[0], rates[-1]):
        return None
    return float(f"{best * factor if best == rates[-1] else best / factor:.2g}")


def choose_lrs(base, arms=tuple(ARMS), angle_deg: float = 45.0,
               progress: bool = True) -> dict[str, tuple[float, dict[float, float]]]:
    """arm -> (chosen learning rate, {rate: validation accuracy}, rates ascending).

    Each arm tries the rates of LR_GRID; where its best sits at an edge, the next rate past that edge (a factor
    of 3) too, up to WIDEN times, so that the rate chosen has a worse one on each side wherever it can.
    One job per (arm, rate), side by side (dopatut.workers)."""
    arms = _checked(arms)
    grids = {arm: {} for arm in arms}
    todo = [(arm, lr) for arm in _longest_first(base, arms) for lr in LR_GRID[arm]]
    for widening in range(WIDEN + 1):
        jobs = [{"base": base, "arm": arm, "lr": lr, "angle_deg": angle_deg, "train_limit": GRID_IMAGES}
                for arm, lr in todo]
        what = f"past an edge ({len(todo)} run{'s' * (len(todo) > 1)})" if widening else f"grids ({len(todo)} runs)"
        scores = run_jobs(_grid_point, jobs, desc=f"learning rates, {what}", progress=progress)
        for (arm, lr), score in zip(todo, scores):
            grids[arm][lr] = score
        todo = [(arm, lr) for arm in arms if (lr := past_edge(grids[arm]))]
        if not todo:
            break
    return {arm: (max(grid, key=grid.get), dict(sorted(grid.items()))) for arm, grid in grids.items()}


def grid_table(lrs: dict) -> str:
    """An HTML table of choose_lrs's answer: each arm's rates tried with their validation accuracy, and its choice."""
    from .compare import _fmt
    from .names import display

    width = max(len(scores) for _, scores in lrs.values())
    rows = [[display(arm), *(f"{_fmt(lr)}: {100 * acc:.2f}%" for lr, acc in scores.items()),
             *[""] * (width - len(scores)), _fmt(best)] for arm, (best, scores) in lrs.items()]
    return Table(["arm", *(f"rate {i + 1}" for i in range(width)), "chosen"], rows).html()


def widened_and_at_edge(chosen: dict[str, dict]) -> tuple[list[str], list[str]]:
    """For {foundation: choose_lrs's answer}: the arms whose grid was widened ("arm (foundation)"), and those whose
    chosen rate is still at an edge of the rates tried ("arm (foundation, rate)")."""
    from .names import display

    widened = [f"{display(arm)} ({kind})" for kind, lrs in chosen.items() for arm, (_, scores) in lrs.items()
               if len(scores) > len(LR_GRID[arm])]
    at_edge = [f"{display(arm)} ({kind}, {best:g})" for kind, lrs in chosen.items()
               for arm, (best, scores) in lrs.items() if best in (min(scores), max(scores))]
    return widened, at_edge


def run_arms(base, lrs: dict, seeds=(0, 1, 2), arms=None, angle_deg: float = 45.0, epochs: int = 1,
             progress: bool = True) -> tuple[dict[str, list[Result]], dict[str, list]]:
    """Each arm at its chosen rate, `epochs` over the first ADAPT_IMAGES images, for each seed; one job per
    (arm, seed), side by side (dopatut.workers): (arm -> [Result], arm -> [model]), in seed order."""
    arms = _checked(arms or lrs)
    runs = [(arm, seed) for arm in _longest_first(base, arms) for seed in seeds]
    jobs = [{"base": base, "arm": arm, "lr": lrs[arm][0] if isinstance(lrs[arm], tuple) else lrs[arm], "seed": seed,
             "angle_deg": angle_deg, "epochs": epochs, "train_limit": ADAPT_IMAGES} for arm, seed in runs]
    done = dict(zip(runs, run_jobs(_adapted, jobs, desc=f"arms ({len(arms)} x {len(seeds)} seeds)",
                                   progress=progress)))
    return ({arm: [done[arm, s][1] for s in seeds] for arm in arms},
            {arm: [done[arm, s][0] for s in seeds] for arm in arms})


def firing_by_block(model, angle_deg: float = 45.0, n: int = 10_000) -> dict[str, float]:
    """Gate name -> the fraction of (image, token, neuron) whose hard gate is open, on `n` test images."""
    return firing(model, mode_data("test", angle_deg)[0][:n], per="layer", measure="gate")


def gate_movement(models) -> dict[str, dict[str, float]]:
    """Gate name -> mean |tau - tau at init| and mean |g - 1| over neurons, averaged over the models."""
    out = {}
    for model in models:
        fresh = GateSet.for_model(model)  # gates as they start: tau at the activation's OPEN_AT, g = 1
        for (name, g), g0 in zip(GateSet.of(model).items(), fresh.values()):
            row = out.setdefault(name, {"threshold": 0.0, "gain": 0.0})
            row["threshold"] += (g.threshold - g0.threshold).abs().mean().item() / len(models)
            row["gain"] += (g.gain - 1).abs().mean().item() / len(models)
    return out


def peft_lora(base, targets, rank: int = 4, alpha: float | None = None, start_from=None):
    """Hugging Face PEFT's LoRA on a copy of `base` at `targets` (module names); with `start_from` (a model
    from dopatut's LoRA on the same targets), PEFT's A and B take its values: the same start, so any gap between
    the two is the implementation."""
    from peft import LoraConfig, get_peft_model

    targets = list(targets)
    model = get_peft_model(copy.deepcopy(base), LoraConfig(r=rank, lora_alpha=rank if alpha is None else alpha,
                                                           lora_dropout=0.0, target_modules=targets))
    if start_from is not None:
        with torch.no_grad():
            for name, module in start_from.named_modules():
                if isinstance(module, LORA_WRAPPERS):
                    twin = model.base_model.model.get_submodule(name)
                    twin.lora_A["default"].weight.copy_(module.lora_A)
                    twin.lora_B["default"].weight.copy_(module.lora_B.view_as(twin.lora_B["default"].weight))
    return model


def peft_cross_check(base, lr: float, targets=("qkv", "proj"), rank: int = 4, seed: int = 0,
                     angle_deg: float = 45.0) -> dict[str, float]:
    """dopatut's LoRA and Hugging Face PEFT's on the same targets, from the same A and B, trained the same way
    (one epoch, same data order): test accuracy at `angle_deg` of each."""
    seed_everything(seed)
    ours = apply_method(base, "lora", targets=list(targets), rank=rank, verbose=False)
    theirs = peft_lora(base, targets, rank, start_from=ours)
    x, y = mode_data("train", angle_deg, limit=ADAPT_IMAGES)
    test = mode_data("test", angle_deg)
    config = TrainConfig(epochs=1, lr=lr, seed=seed)
    out = {}
    for label, model in (("dopatut", ours), ("peft", theirs)):
        fit(model, x, y, config, progress=False)
        out[label] = evaluate(model, *test)
    out["trainable"] = {label: sum(p.numel() for p in m.parameters() if p.requires_grad)
                        for label, m in (("dopatut", ours), ("peft", theirs))}
    return out


def plot_arms(runs_by_kind: dict[str, dict[str, list[Result]]], angle: str = "45"):
    """Accuracy at `angle` against trainable parameters (log scale), mean ± std over seeds, one panel per foundation."""
    import matplotlib.pyplot as plt

    from .stats import mean_std

    # each panel its own y range: on the mixture foundation the arms lie within a point or two
    from .names import display

    fig, axes = plt.subplots(1, len(runs_by_kind), figsize=(7.5, 3.8), squeeze=False, constrained_layout=True)
    colors = dict(zip(ARMS, ("tab:orange", "tab:brown", "tab:red", "tab:blue", "tab:cyan", "tab:purple", "tab:green")))
    for ax, (kind, runs) in zip(axes[0], runs_by_kind.items()):
        for arm, results in runs.items():
            mean, std = mean_std([100 * r.accuracy[angle] for r in results])
            ax.errorbar(max(results[0].n_trainable, 1), mean, yerr=0 if len(results) < 2 else std, fmt="o",
                        capsize=3, color=colors.get(arm, "0.4"), label=display(arm))
        ax.set(xscale="log", title=f"{kind} foundation", xlabel="trainable parameters")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"test accuracy at {angle}° (%)")
    labelled = {label: handle for ax in axes[0] for handle, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(list(labelled.values()), list(labelled), loc="outside lower center", ncol=4, fontsize=8)  # every arm
    return fig


def foundations_table(models: dict) -> str:
    """An HTML table: each foundation's parameters and test accuracy at 0° and 45° (measured here where its
    training did not test that angle, as for a foundation that never saw 45°)."""
    def accuracy(m, angle):
        if angle in m.meta["accuracy"]:
            return m.meta["accuracy"][angle]
        return evaluate(m, *mode_data("test", float(angle)))

    rows = [[name, f"{sum(p.numel() for p in m.parameters()):,}",  # rounded as the prose's {glue:text}`x:.1%`
             *(f"{accuracy(m, a):.1%}"[:-1] for a in ("0", "45"))] for name, m in models.items()]
    return Table(["foundation (seed 0)", "parameters", "0° test accuracy (%)", "45° test accuracy (%)"], rows).html()
