"""Chapter 9's experiment: the course's methods, put by target on a small vision transformer.

    study = VitStudy()                                     # the chapter's settings (STUDY); replace() to change
    bases = vit_foundations(seed=0, study=study)           # both foundations, trained side by side, then cached
    base = bases["mixture"]
    lrs = choose_lrs(base, study=study)                    # each arm's learning rate, chosen on validation data
    curves = arm_curves(base, lrs, study=study)            # arm -> seed 0's validation curve over curve_epochs
    check_budget({"mixture": curves, ...}, study)          # the epochs those curves choose: study.epochs
    runs, models = run_arms(base, lrs, study=study)        # arm -> [Result], one per seed (study.seeds)
    compare.summarise(runs), compare.differences(runs)     # the tables of chapter 5, for the transformer

An *arm* is a method and where it goes: LoRA on the attention projections (PEFT's usual targets) and LoRA
on the MLP are two arms of one method; so are Dopamine with GELU's open threshold (the identity at init, see
dopatut.methods.gate) and Dopamine with its thresholds starting at 0. The budget is `VitStudy`'s: the foundation
trains `vit_epochs` epochs on its 50,000 images; each arm `epochs` over the 45° training images (`adapt_images`:
all 50,000), at the learning rate that scores best on the validation split after one epoch on the first
`grid_images` of them (dopatut.study.search, widened past an edge). `epochs` is what the curves choose: seed 0 of
every arm on both foundations trained `curve_epochs` epochs at its rate, and the first epoch from which no curve
gains the protocol's margin (dopatut.study.budget.flat_epoch, the latest over the arms: `epoch_budget`).

The grids, curves and arms are cached as results (dopatut.study.result_cache), keyed by the foundation they start
from and the study's settings, and shipped for seed 0's foundations (dopatut.foundations.bundle): a chapter opened
cold reads them. A base that did not come from `vit_foundations` carries no foundation key, and its runs train
each time. The book's automated test run reads the curves and arms from the bundle and recomputes SPOT_CHECK's
(`spot_check`).

Every model here trains by itself (train.fit, `stack=False`), one job per model in worker processes
(dopatut.training.workers): the transformer's products are too small for vmap's batching to pay on a CPU (one arm's
three seeds: 10-45% slower stacked than one after another, measured on two cores), while two one-thread
workers side by side do not slow each other.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import asdict, dataclass, field

import torch

from ..foundations.checkpoints import tensors_from_json, tensors_to_json
from ..analysis.attribution import firing
from ..foundations.data import mode_data
from ..methods.gate import GateSet
from ..methods.lora import peft_lora
from ..methods.builtin import apply_method
from ..foundations.model import count_parameters
from .pipeline import FoundationSpec, Result, foundation_key, foundations, specialise_many
from .result_cache import lookup, store
from .search import search
from ..foundations.tables import Table
from ..training.train import TrainConfig, evaluate, fit, seed_everything
from ..foundations.vit import ViTConfig
from ..training.workers import run_jobs
from ..methods.names import listed

_GATE_LRS = (3e-2, 1e-1, 3e-1)  # a factor of 3 apart, centred on where a first, wider grid put each arm's best


@dataclass(frozen=True)
class VitStudy:
    """Everything chapter 9's comparison is run with, apart from the seeds. Frozen: a variant is
    dataclasses.replace(STUDY, adapt_images=50_000, epochs=3)."""

    vit: ViTConfig = ViTConfig()  # 7x7 patches, width 48, 2 blocks, 4 heads, MLP 192: 60,394 parameters
    vit_epochs: int = 3  # each foundation, over its 50,000-image mixture
    vit_lr: float = 3e-3
    arms: dict = field(default_factory=lambda: {  # arm -> (method, apply_method options)
        "dopamine": ("dopamine", {}),
        "dopamine_at_0": ("dopamine", {"threshold_init": 0.0}),
        "gain_only": ("gain_only", {}),
        "lora_attn": ("lora", {"targets": ["qkv", "proj"]}),
        "lora_mlp": ("lora", {"targets": ["fc1", "fc2"]}),
        "head": ("head", {}),
        "full": ("full", {}),
    })
    lr_grid: dict = field(default_factory=lambda: {
        "dopamine": _GATE_LRS, "dopamine_at_0": _GATE_LRS, "gain_only": _GATE_LRS,
        "lora_attn": (3e-3, 1e-2, 3e-2), "lora_mlp": (3e-3, 1e-2, 3e-2), "head": (1e-3, 3e-3, 1e-2),
        "full": (3e-4, 1e-3, 3e-3)})
    widen: int = 2  # where an arm's best rate sits at an edge of its grid, up to this many rates past it
    adapt_images: int | None = None  # each arm trains on the first this many 45° training images (None: all 50,000)
    epochs: int = 3  # ... this many epochs: what the curves choose (epoch_budget; run_chapter and the chapter check it)
    curve_epochs: int = 4  # seed 0 of each arm, this many epochs, its validation accuracy after each: the curves
    grid_images: int = 5_000  # a grid's runs: one epoch on the first this many
    check_images: int = 10_000  # the PEFT cross-check (trained live in the chapter): one epoch on the first this many
    angle_deg: float = 45.0  # the mode every arm specialises to
    upright_arms: tuple[str, ...] = ("dopamine", "dopamine_at_0", "lora_attn", "full")  # run on "upright" too
    kept: tuple[str, ...] = ("dopamine", "dopamine_at_0")  # the arms whose trained models run_arms returns
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)  # each arm's seeds (the foundation's is 0)

    def __post_init__(self):
        for name in ("vit_epochs", "widen", "adapt_images", "epochs", "curve_epochs", "grid_images", "check_images"):
            value = getattr(self, name)
            if name == "adapt_images" and value is None:
                continue  # the whole split
            least = {"widen": 0, "curve_epochs": 2}.get(name, 1)  # a curve needs two points to gain between
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"VitStudy.{name} must be an int >= {least}"
                                 f"{' or None (the whole split)' * (name == 'adapt_images')}, got {value!r}")
        for name in ("upright_arms", "kept", "lr_grid"):
            unknown = [arm for arm in getattr(self, name) if arm not in self.arms]
            if unknown:
                raise ValueError(f"VitStudy.{name} names {unknown}, which are not arms; arms are "
                                 f"{', '.join(self.arms)} (add them to `arms` first)")
        ungridded = [arm for arm in self.arms if not self.lr_grid.get(arm)]
        if ungridded:
            raise ValueError(f"VitStudy.lr_grid has no rates for the arms {ungridded}; give each arm its rates")

    @property
    def specs(self) -> dict[str, FoundationSpec]:
        """kind -> the transformer foundation's spec (no curves: the chapter does not show them)."""
        return {kind: FoundationSpec(self.vit, angles, train=TrainConfig(epochs=self.vit_epochs, lr=self.vit_lr),
                                     curves=False, stack=False)
                for kind, angles in (("mixture", (0.0, 45.0)), ("upright", (0.0,)))}

    def arm(self, name: str) -> tuple[str, dict]:
        if name not in self.arms:
            raise ValueError(f"unknown arm {name!r}; expected one of {', '.join(self.arms)}")
        return self.arms[name]


STUDY = VitStudy()


def vit_foundations(seed: int = 0, study: VitStudy = STUDY, device=None, recompute: bool | None = None) -> dict:
    """kind -> the transformer foundation of study.specs for `seed`, on `device` (None: the reader's): from the
    cache, else the shipped bundle (seed 0, unless `recompute`), else trained side by side in worker processes
    (dopatut.training.workers; on a GPU one after another, in this process). Each carries `.foundation_key`, by which
    the grids and arms that start from it are cached."""
    specs = study.specs
    said = io.StringIO()
    with contextlib.redirect_stdout(said):  # each foundation says where it came from: one line where they agree
        models = foundations([seed] * len(specs), list(specs.values()), device=device, recompute=recompute)
    lines = said.getvalue().splitlines()
    for line in dict.fromkeys(lines):
        if lines.count(line) > 1 and line.startswith("foundation (seed"):
            line = line.replace("foundation (seed", "both foundations (seed", 1).replace("trains it", "trains them")
        print(line)
    for spec, model in zip(specs.values(), models):
        model.foundation_key = foundation_key(spec, seed, next(model.parameters()).device)
    return dict(zip(specs, models))


def foundations_words(bases: dict, elapsed_s: float) -> str:
    """Where vit_foundations's answer came from, in words: trained here (in `elapsed_s`), or loaded, with the
    seconds each took to train where it was trained (once, with "each", where the two round alike)."""
    from ..foundations import bundle

    trained = [b.meta["seconds"] for b in bases.values()]
    if elapsed_s > max(trained) / 2:
        return f"here the two trained side by side in {elapsed_s:.0f} s"
    where, machine = (("the shipped bundle", "the machine that built it") if bundle.was_read("foundations") else
                      ("this machine's cache", "this machine"))
    took = (f"{trained[0]:.0f} s each" if f"{trained[0]:.0f}" == f"{trained[1]:.0f}" else
            f"{trained[0]:.0f} s and {trained[1]:.0f} s")
    return f"here they were loaded from {where}; they trained in {took} on {machine}"


def _checked(arms, study: VitStudy) -> list[str]:
    """The arms as a list; an unknown one is refused here, before any worker starts."""
    arms = list(arms)
    for arm in arms:
        study.arm(arm)
    return arms


def _longest_first(base, arms: list[str], study: VitStudy) -> list[str]:
    """The order to hand the arms to the workers: most trainable parameters (about the longest to train) first,
    so that no worker is left alone with a long job at the end."""
    def size(arm):
        method, options = study.arm(arm)
        return count_parameters(apply_method(base, method, verbose=False, **options))[0]
    return sorted(arms, key=size, reverse=True)


def _adapted(base, arm: str, method: str, options: dict, lr: float, seed: int, angle_deg: float, epochs: int,
             train_limit: int | None, split: str = "test", eval_angles=(0.0, 45.0), curve: bool = False) -> tuple:
    """One arm, one seed, trained by itself on the first `train_limit` images (None: all): (model, Result), with
    the validation accuracy after each epoch in Result.curve if `curve`. Everything comes in the job, so a worker
    forked earlier needs nothing from this process."""
    model, result = specialise_many([base], method, [seed], TrainConfig(epochs=epochs, lr=lr), angle_deg=angle_deg,
                                    eval_angles=eval_angles, split=split, progress=False, train_limit=train_limit,
                                    curve=curve, soft=False, stack=False, **options)[0]
    result.method = arm
    return model, result


def _curve_run(base, arm: str, method: str, options: dict, lr: float, angle_deg: float, epochs: int,
               train_limit: int | None) -> Result:
    """One arm's curve run (seed 0): its Result, the validation curve in .curve (the model stays in the worker)."""
    return _adapted(base, arm, method, options, lr, 0, angle_deg, epochs, train_limit, curve=True)[1]


def _grid_point(base, arm: str, method: str, options: dict, lr: float, angle_deg: float, train_limit: int) -> float:
    """One arm at one rate (seed 0, one epoch): its validation accuracy (the model stays in the worker)."""
    _, result = _adapted(base, arm, method, options, lr, 0, angle_deg, 1, train_limit, split="val",
                         eval_angles=(angle_deg,))
    return result.accuracy[f"{angle_deg:g}"]


def _key(where: dict | None, arm: str, study: VitStudy, **more) -> dict | None:
    """What determines a grid's or an arm's runs from the foundation of key `where`; None without one."""
    if where is None:
        return None
    method, options = study.arm(arm)
    return {"foundation": where, "method": method, "options": options, "angle_deg": study.angle_deg, **more}


def _grid_key(where, arm: str, study: VitStudy) -> dict | None:
    return _key(where, arm, study, grid=list(study.lr_grid[arm]), widen=study.widen, images=study.grid_images)


def _arm_key(where, arm: str, lr: float, seeds, study: VitStudy) -> dict | None:
    return _key(where, arm, study, lr=lr, seeds=list(seeds), images=study.adapt_images, epochs=study.epochs)


def _curve_key(where, arm: str, lr: float, study: VitStudy) -> dict | None:
    return _key(where, arm, study, lr=lr, seed=0, images=study.adapt_images, curve_epochs=study.curve_epochs)


def _where(base) -> dict | None:
    return getattr(base, "foundation_key", None)  # set by vit_foundations


def _kind_arms(kind: str, study: VitStudy) -> list[str]:
    return list(study.arms if kind == "mixture" else study.upright_arms)


def chapter_entries(read, study: "VitStudy | None" = None, device="cpu", only=None) -> list[tuple[str, str, str]]:
    """(foundation, arm, name) of what chapter 9 reads on seed 0's foundations, names as results/...: every arm's
    grid, its curve and its seeds' runs, on the mixture foundation, and study.upright_arms's on the upright one
    (`only`: those (foundation, arm) pairs). `read(name)` gives a grid's value (the curve and the runs are named by
    its choice)."""
    from .result_cache import result_name

    study = study or STUDY
    out = []
    for kind, spec in study.specs.items():
        where = foundation_key(spec, 0, device)
        for arm in _kind_arms(kind, study):
            if only is not None and (kind, arm) not in only:
                continue
            grid = f"results/{result_name(f'vit-grid-{arm}', _grid_key(where, arm, study))}"
            scores = {rate: acc for rate, acc in read(grid)}
            best = max(scores, key=scores.get)
            out += [(kind, arm, grid),
                    (kind, arm, f"results/{result_name(f'vit-curve-{arm}', _curve_key(where, arm, best, study))}"),
                    (kind, arm, f"results/{result_name(f'vit-arm-{arm}', _arm_key(where, arm, best, study.seeds, study))}")]
    return out


def chapter_results(read, study: "VitStudy | None" = None, device="cpu") -> list[str]:
    """The names of chapter_entries: what the bundle ships of chapter 9 (dopatut.study.bundle_check)."""
    return [name for _, _, name in chapter_entries(read, study, device)]


def run_chapter(study: "VitStudy | None" = None, device=None, progress: bool = False) -> None:
    """Everything chapter_results names, computed into the cache (scripts/make_bundle.py): both foundations' grids
    and curves first; then, if the curves choose study.epochs (epoch_budget), the arms' seeds; else a ValueError
    that names the choice, before any arm trains."""
    study = study or STUDY
    bases = vit_foundations(0, study, device=device)
    chosen, curves = {}, {}
    for kind, base in bases.items():
        chosen[kind] = choose_lrs(base, _kind_arms(kind, study), study, progress)
        curves[kind] = arm_curves(base, chosen[kind], study=study, progress=progress)
    check_budget(curves, study)
    for kind, base in bases.items():
        run_arms(base, chosen[kind], study.seeds, _kind_arms(kind, study), study, progress)


def choose_lrs(base, arms=None, study: VitStudy = STUDY, progress: bool = True,
               recompute: bool | None = None) -> dict[str, tuple[float, dict[float, float]]]:
    """arm -> (chosen learning rate, {rate: validation accuracy}, rates ascending); arms None: all of study's.

    Each arm tries the rates of study.lr_grid; where its best sits at an edge, the next rate past that edge (a
    factor of 3) too, up to study.widen times (dopatut.study.search), so that the rate chosen has a worse one on each
    side wherever it can. One job per (arm, rate), side by side (dopatut.training.workers). Cached per arm (and shipped
    for the chapter's foundations) where `base` came from vit_foundations."""
    arms = _checked(study.arms if arms is None else arms, study)
    found = {}
    for arm in arms:
        key = _grid_key(_where(base), arm, study)
        value = None if key is None else lookup(f"vit-grid-{arm}", key, recompute)
        if value is not None:
            found[arm] = {float(rate): acc for rate, acc in value}
    todo = [arm for arm in _longest_first(base, arms, study) if arm not in found]
    if todo:
        def run(points):
            jobs = [{"base": base, "arm": arm, "method": study.arm(arm)[0], "options": study.arm(arm)[1],
                     "lr": setting["lr"], "angle_deg": study.angle_deg, "train_limit": study.grid_images}
                    for arm, setting in points]
            return run_jobs(_grid_point, jobs, desc=f"learning rates ({len(points)} runs)", progress=progress)
        tried = search({arm: [{"lr": lr} for lr in study.lr_grid[arm]] for arm in todo}, run, lambda acc: acc,
                       study.widen)
        for arm in todo:
            found[arm] = {setting["lr"]: acc for setting, acc in tried[arm]}
            key = _grid_key(_where(base), arm, study)
            if key is not None:
                store(f"vit-grid-{arm}", key, [[rate, acc] for rate, acc in found[arm].items()])
    return {arm: (max(found[arm], key=found[arm].get), dict(sorted(found[arm].items()))) for arm in arms}


def grid_table(lrs: dict) -> str:
    """An HTML table of choose_lrs's answer: each arm's rates tried, ascending, each with its validation accuracy
    and the chosen one in bold, in one cell per arm that wraps only between rates (so it fits the text width)."""
    from .report import _fmt
    from ..methods.names import display

    def tried(lr, acc, best):
        said = f"{_fmt(lr)}\u00a0({100 * acc:.2f}%)"  # a no-break space: a rate stays with its accuracy
        return f"**{said}**" if lr == best else said
    rows = [[display(arm), " · ".join(tried(lr, acc, best) for lr, acc in scores.items())]
            for arm, (best, scores) in lrs.items()]
    return Table(["arm", "rates tried (validation accuracy); the chosen rate in bold"], rows).html()


def grid_ties(lrs: dict, a: str = "dopamine", b: str = "gain_only") -> list[float]:
    """The rates both arms tried whose validation accuracies print the same in grid_table (to 0.01%), ascending."""
    scores = lambda arm: {lr: f"{100 * acc:.2f}" for lr, acc in lrs[arm][1].items()}
    return sorted(lr for lr, said in scores(a).items() if scores(b).get(lr) == said)


def grid_ties_sentence(lrs: dict) -> str:
    """Why Dopamine and gain-only may read the same in the grid, in two short sentences without a final stop: gain-only
    is Dopamine with its thresholds held at the open threshold, where they get almost no gradient."""
    from ..methods.names import display
    from .report import _fmt

    same = grid_ties(lrs)
    held = (f"{display('gain_only')} is {display('dopamine')} with its thresholds held at τ₀, and from τ₀ "
            "they get almost no gradient (section 2)")
    if not same:
        return f"{display('dopamine')} and {display('gain_only')} differ at every rate tried, though {held}"
    at = listed([_fmt(lr) for lr in same])
    return (f"{display('dopamine')} and {display('gain_only')} read the same at {at}, and that is no copy error. "
            f"{held[0].upper()}{held[1:]}, so in the grid's one short epoch the two train nearly the same gains")


def widened_and_at_edge(chosen: dict[str, dict], study: VitStudy = STUDY) -> tuple[list[str], list[str]]:
    """For {foundation: choose_lrs's answer}: the arms whose grid was widened ("arm (foundation)"), and those whose
    chosen rate is still at an edge of the rates tried ("arm (foundation, rate)")."""
    from ..methods.names import display

    widened = [f"{display(arm)} ({kind})" for kind, lrs in chosen.items() for arm, (_, scores) in lrs.items()
               if len(scores) > len(study.lr_grid[arm])]
    at_edge = [f"{display(arm)} ({kind}, {best:g})" for kind, lrs in chosen.items()
               for arm, (best, scores) in lrs.items() if best in (min(scores), max(scores))]
    return widened, at_edge


def arm_curves(base, lrs: dict, arms=None, study: VitStudy = STUDY, progress: bool = True,
               recompute: bool | None = None) -> dict[str, Result]:
    """arm -> the Result of seed 0 trained study.curve_epochs epochs over study.adapt_images images at its chosen
    rate (lrs: choose_lrs's answer), its validation accuracy at study.angle_deg after each epoch in .curve, the
    test accuracies after the last: what chooses study.epochs (epoch_budget). One job per arm, side by side;
    cached per arm (and shipped for the chapter's foundations) where `base` came from vit_foundations."""
    arms = _checked(arms or lrs, study)
    rate = {arm: lrs[arm][0] if isinstance(lrs[arm], tuple) else lrs[arm] for arm in arms}
    found = {}
    for arm in arms:
        key = _curve_key(_where(base), arm, rate[arm], study)
        value = None if key is None else lookup(f"vit-curve-{arm}", key, recompute)
        if value is not None:
            found[arm] = Result(**value)
    todo = [arm for arm in _longest_first(base, arms, study) if arm not in found]
    jobs = [{"base": base, "arm": arm, "method": study.arm(arm)[0], "options": study.arm(arm)[1], "lr": rate[arm],
             "angle_deg": study.angle_deg, "epochs": study.curve_epochs, "train_limit": study.adapt_images}
            for arm in todo]
    for arm, result in zip(todo, run_jobs(_curve_run, jobs, desc=f"curves ({len(todo)} arms)", progress=progress)
                           if jobs else []):
        found[arm] = result
        key = _curve_key(_where(base), arm, rate[arm], study)
        if key is not None:
            store(f"vit-curve-{arm}", key, asdict(result))
    return {arm: found[arm] for arm in arms}


def _curves(curves: dict) -> dict[str, dict[str, list[float]]]:
    """{foundation: {arm: curve}} from {foundation: arm_curves's answer} (Results or curves)."""
    return {kind: {arm: list(getattr(c, "curve", c)) for arm, c in by_arm.items()} for kind, by_arm in curves.items()}


def epoch_budget(curves: dict, margin: float | None = None) -> int:
    """The epochs every arm trains, from {foundation: arm_curves's answer}: the first epoch from which no arm's
    validation curve gains `margin` (the protocol's) or more in a later epoch (budget.flat_epoch, the latest over
    the arms), at most the curves' last epoch but one. A curve that still gains the margin in its last epoch
    (flat_epoch None) says only that its own budget lies past the curves; the curves stop where the chapter's
    time does (VitStudy.curve_epochs), so the budget is then the last epoch they judge (climbing names such arms)."""
    from .budget import flat_epoch

    margin = _margin(margin)
    by_arm = [c for arms in _curves(curves).values() for c in arms.values()]
    judged = min(len(c) for c in by_arm) - 1  # the last epoch that a later one is seen after
    flat = [flat_epoch(c, margin) for c in by_arm]
    return min(judged, max(judged if e is None else e for e in flat))


def _margin(margin: float | None) -> float:
    from .protocol import PROTOCOL

    return PROTOCOL.margin if margin is None else margin


def largest_gains(curves: dict, after: int) -> list[tuple[float, str, str]]:
    """(gain, foundation, arm), largest first: each arm's largest gain in validation accuracy between two epochs
    after epoch `after`, from {foundation: arm_curves's answer}."""
    gains = [(max(b - a for a, b in zip(c[after - 1:], c[after:])), kind, arm)
             for kind, by_arm in _curves(curves).items() for arm, c in by_arm.items() if len(c) > after]
    return sorted(gains, reverse=True)


def climbing(curves: dict, epochs: int, margin: float | None = None) -> list[tuple[float, str, str]]:
    """largest_gains after `epochs` of the arms that still gain `margin` or more in a later epoch: the curves that
    are not flat at the budget."""
    return [row for row in largest_gains(curves, epochs) if row[0] >= _margin(margin)]


def budget_sentence(curves: dict, margin: float | None = None) -> str:
    """What the curves say of the budget, in at most two short sentences, from {foundation: arm_curves's answer}:
    which arms still gain the protocol's margin after epoch_budget's epochs (their own budget lies past the curves),
    else which arm gained it last."""
    from ..methods.names import display
    from .budget import flat_epoch

    margin = _margin(margin)
    epochs = epoch_budget(curves, margin)
    by_kind = _curves(curves)
    n_curves = sum(len(arms) for arms in by_kind.values())
    name = lambda kind, arm: f"{display(arm)} on the {kind} foundation"
    late = climbing(curves, epochs, margin)
    if late:
        last = min(len(c) for arms in by_kind.values() for c in arms.values())
        said = listed([f"{name(kind, arm)} ({100 * gain:+.2f} points)" for gain, kind, arm in late])
        return (f"By the protocol's margin of {100 * margin:.1f} points, {len(late)} of the {n_curves} curves still "
                f"climb{'s' * (len(late) == 1)} after epoch {epochs}: {said}. "
                f"{'Its' if len(late) == 1 else 'Their'} own budget lies past the {last} epochs measured")
    later = largest_gains(curves, epochs)
    after = f"the largest gain after it is {100 * later[0][0]:.2f} points, by {name(later[0][1], later[0][2])}"
    if epochs == 1:
        return (f"After the first epoch, none of the {n_curves} curves gains the protocol's margin of "
                f"{100 * margin:.1f} points. Here {after}")
    setters = [(kind, arm, c[epochs - 1] - c[epochs - 2]) for kind, arms in by_kind.items()
               for arm, c in arms.items() if flat_epoch(c, margin) == epochs]
    said = listed([f"{name(kind, arm)} ({100 * gain:+.2f} points)" for kind, arm, gain in setters])
    return (f"In epoch {epochs}, {said} still gain{'s' * (len(setters) == 1)} the protocol's margin of "
            f"{100 * margin:.1f} points, and no curve does after it. Here {after}")


def _longer_budget(curves: dict, runs: dict, against: str, margin: float | None):
    """(epochs, the still-climbing (foundation, arm, verdict of against - arm), the epoch from which against's own
    curves are flat (None: not flat), the (foundation, arm) whose verdict a longer budget could move). An arm that `against` already loses to (paired
    by seed) cannot be caught by more epochs while `against`'s own curves are flat; any other climbing arm could."""
    from ..analysis.stats import paired_difference, verdict
    from .budget import flat_epoch

    margin = _margin(margin)
    epochs = epoch_budget(curves, margin)
    late = climbing(curves, epochs, margin)
    acc = lambda kind, arm: [r.accuracy[f"{STUDY.angle_deg:g}"] for r in runs[kind][arm]]
    said = [(kind, arm, verdict(paired_difference(acc(kind, against), acc(kind, arm)))) for _, kind, arm in late]
    flat = [flat_epoch(c, margin) for arms in _curves(curves).values() for arm, c in arms.items() if arm == against]
    is_flat = bool(flat) and None not in flat
    movable = [(kind, arm) for kind, arm, words in said if not (is_flat and words == "loses to")]
    return epochs, said, (max(flat) if is_flat else None), movable


def climbing_sentence(curves: dict, runs: dict, against: str = "dopamine", margin: float | None = None) -> str:
    """Which verdicts a longer budget could move, in at most two short sentences, from {foundation: arm_curves's
    answer} and {foundation: run_arms's runs}: an arm still climbing that `against` already loses to (paired by seed)
    while `against`'s own curves are flat can only widen its lead; any other arm still climbing could move. Arms
    that `against` all lose to are counted, not named again: budget_sentence, read just before, names them."""
    from ..methods.names import display

    epochs, late, flat_from, movable = _longer_budget(curves, runs, against, _margin(margin))
    if not late:
        return f"No curve still climbs after epoch {epochs}, so a longer budget would move little"
    own = f"own curves are flat from epoch {flat_from}" if flat_from else "own curves still climb"
    if not movable:  # budget_sentence has named them
        count = {1: "one", 2: "two", 3: "three", 4: "four"}.get(len(late), str(len(late)))
        one = len(late) == 1
        return (f"{display(against)} already loses to the {count} still climbing after {epochs} epochs, and its "
                f"{own}. A longer budget would widen {'that gap' if one else 'those gaps'}, "
                f"not close {'it' if one else 'them'}")
    named = listed([f"{display(arm)} on the {kind} foundation ({display(against)} {words} it)"
                    for kind, arm, words in late])
    return (f"The arms still climbing after epoch {epochs} are {named}. {display(against)}'s {own}, so a longer "
            f"budget could move the verdicts of those {display(against)} does not already lose to")


def longer_budget_answer(curves: dict, runs: dict, against: str = "dopamine", margin: float | None = None) -> str:
    """Exercise 3's answer, one or two short sentences without a final stop: which verdicts a longer budget could
    move ("None, here: ..." where `against` already loses to every arm still climbing and its own curves are flat)."""
    from ..methods.names import display

    epochs, late, flat_from, movable = _longer_budget(curves, runs, against, _margin(margin))
    if not late:
        return f"None, here: no curve still climbs after epoch {epochs}"
    if not movable:
        return (f"None, here: {display(against)} already loses to every arm still climbing after epoch {epochs}, "
                f"and its own curves are flat, so more epochs could only widen those gaps")
    return ("Those of " + listed([f"{display(arm)} on the {kind} foundation" for kind, arm in movable])
            + f": still climbing after epoch {epochs}, and not yet ahead of {display(against)}")


def versus(a: str, b: str, d) -> str:
    """One short sentence, no final stop, on d = a - b (a stats.PairedDifference of accuracies):
    'Dopamine beats gain-only: +0.42 points (95% interval +0.20 to +0.64)', the book's interval format."""
    from ..analysis.stats import verdict

    signed = lambda x: f"{100 * x:+.2f}".replace("-", "−")  # a minus sign, as in the prose
    return (f"{a} {verdict(d)} {b}: {signed(d.mean)} points ({d.confidence:.0%} interval "
            f"{signed(d.ci_low)} to {signed(d.ci_high)})")


def thresholds_words(d) -> tuple[str, str]:
    """What Dopamine's thresholds add to its gains on GELU, from d = Dopamine - gain-only (paired by seed):
    (a sentence for the chapter's summary, a phrase for its recap)."""
    from ..analysis.stats import verdict

    return {"ties with": ("Dopamine's thresholds move, but add nothing measurable to its gains",
                          "and there it does no better than its gains alone"),
            "beats": ("Dopamine's thresholds add something to its gains, even from the open point",
                      "and there its thresholds still add to its gains"),
            "loses to": ("Gains alone do better than Dopamine", "and there gains alone do better")}[verdict(d)]


def verdict_table(acc: dict[str, list[float]], n_trainable: dict[str, int], against: str = "dopamine"):
    """`against` against every other arm once, paired by seed, as a foundations.tables.Table, in the book's sign
    convention (chapters 5 and 7): the arm, the numbers it trains, the mean of against - arm in points, its 95%
    interval and the verdict, read "Dopamine beats it". acc: each arm's test accuracies, seed by seed; the frozen
    foundation, with 0 numbers, is an arm like the others."""
    from ..analysis.stats import paired_difference, verdict
    from ..foundations.tables import Table
    from ..methods.names import display, signed_points

    rows = []
    for arm, accs in acc.items():
        if arm == against:
            continue
        d = paired_difference(acc[against], accs)
        rows.append([display(arm), f"{n_trainable.get(arm, 0):,}", signed_points(d.mean),
                     # no-break spaces: an interval and a verdict each stay on one line
                     f"{signed_points(d.ci_low)}\u00a0to\u00a0{signed_points(d.ci_high)}",  # as chapters 5, 7
                     f"{verdict(d)} it".replace(" ", "\u00a0")])  # the header names the subject
    header = [f"{display(against)} against", "numbers trained", f"{display(against)} − it (points)",
              "95% interval", f"verdict: {display(against)} …"]
    return Table(header, rows, align=("left", "right", "right", "right", "left"))


def head_words(d, n_head: int, n_gates: int) -> str:
    """What retraining only the output layer says against Dopamine, from d = Dopamine - head-only (paired by seed,
    the book's sign convention) and the numbers each trains: a sentence without numbers and without a final stop,
    for the conclusions."""
    from ..analysis.stats import verdict

    fewer = "with fewer numbers than the gates" if n_head < n_gates else "with more numbers than the gates"
    return {"loses to": f"Retraining only the output layer, {fewer}, does better than Dopamine here",
            "ties with": f"Retraining only the output layer, {fewer}, does as well as Dopamine here",
            "beats": f"Retraining only the output layer, {fewer}, does worse than Dopamine here"}[verdict(d)]


def peft_words(check: dict) -> str:
    """peft_cross_check's answer in words, no final stop: 'agree to the printed precision' where the two
    accuracies print the same."""
    ours, theirs = check["dopatut"], check["peft"]
    if f"{ours:.2%}" == f"{theirs:.2%}":
        return f"dopatut's LoRA and PEFT's agree to the printed precision: both read {ours:.2%} at 45°"
    return (f"dopatut's LoRA reads {ours:.2%} at 45° and PEFT's {theirs:.2%}, "
            f"{100 * abs(ours - theirs):.2f} points apart")


def train_images(study: VitStudy = STUDY) -> int:
    """How many 45° training images each arm trains on: study.adapt_images, or the whole split's size."""
    from ..foundations.data import load_mnist

    return study.adapt_images or len(load_mnist(verbose=False).split("train")[1])


def check_budget(curves: dict, study: VitStudy = STUDY) -> int:
    """study.epochs if the curves choose it (epoch_budget), else a ValueError naming their choice and the fix."""
    chosen = epoch_budget(curves)
    if chosen != study.epochs:
        raise ValueError(f"dopatut.study.beyond: the arms' validation curves choose {chosen} epochs, but "
                         f"VitStudy.epochs is {study.epochs}; set epochs={chosen} (the arms' keys change, so they "
                         "train again)")
    return chosen


SPOT_CHECK = (("mixture", "dopamine"),)  # what the book's automated test run recomputes of the arms and curves; it reads the rest shipped


def spot_check(study: VitStudy = STUDY, device=None, progress: bool = False) -> list[str]:
    """Recompute SPOT_CHECK's curves and seeds into the cache (never from the bundle), for bundle_check to compare:
    the book's automated test run reads the other arms and curves from the bundle (DOPATUT_READ_SHIPPED=vit-arm,vit-curve)."""
    bases = vit_foundations(0, study, device=device)
    for kind, arm in SPOT_CHECK:
        lrs = choose_lrs(bases[kind], [arm], study, progress)  # the test run's own grid, computed in the chapter
        arm_curves(bases[kind], lrs, study=study, progress=progress, recompute=True)
        run_arms(bases[kind], lrs, study.seeds, study=study, progress=progress, recompute=True)
    return [f"{kind} {arm}" for kind, arm in SPOT_CHECK]


def plot_curves(curves: dict, epochs: int | None = None, study: VitStudy = STUDY):
    """Each arm's validation curve (seed 0), one panel per foundation, the epochs trained a dashed line; from
    {foundation: arm_curves's answer}."""
    import matplotlib.pyplot as plt

    from ..methods.names import display, style

    by_kind = _curves(curves)
    fig, axes = plt.subplots(1, len(by_kind), figsize=(7.5, 3.4), squeeze=False, constrained_layout=True)
    for ax, (kind, by_arm) in zip(axes[0], by_kind.items()):
        for arm, curve in by_arm.items():
            ax.plot(range(1, len(curve) + 1), [100 * v for v in curve], marker=style(arm)[1], ms=5,
                    color=style(arm)[0], label=display(arm))
        if epochs is not None:
            ax.axvline(epochs, color="0.3", ls="--", lw=1, label="epochs trained (the cap)")
        longest = max(len(c) for c in by_arm.values())
        ax.set(title=f"{kind} foundation", xlabel="epoch", xticks=range(1, longest + 1))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"validation accuracy at {study.angle_deg:g}° (%)")
    labelled = {label: handle for ax in axes[0] for handle, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(list(labelled.values()), list(labelled), loc="outside lower center", ncol=4, fontsize=9)
    return fig


def plot_blocks(firing: dict[str, dict[str, float]], moved: dict[str, dict[str, dict[str, float]]],
                foundation: str = "mixture", starts: dict[str, float] | None = None):
    """Per block, for each gate arm: the share of open gates (firing_by_block) and how far its thresholds moved
    (gate_movement), two panels apart, each arm in its one colour (dopatut.methods.names.style), the foundation
    named in the title. starts: each arm's starting threshold τ₀, named in the legend."""
    import matplotlib.pyplot as plt

    from ..methods.names import colour, display

    arms = list(firing)
    blocks = list(firing[arms[0]])
    width = 0.8 / len(arms)
    starts = starts or {}
    label = lambda arm: (f"{display(arm)}: τ₀ = {starts[arm]:g}".replace("-", "−") if arm in starts
                         else display(arm))
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.2), constrained_layout=True)
    for i, arm in enumerate(arms):
        at = [b + width * i for b in range(len(blocks))]
        axes[0].bar(at, [100 * firing[arm][b] for b in blocks], width, color=colour(arm), label=label(arm))
        axes[1].bar(at, [moved[arm][b]["threshold"] for b in blocks], width, color=colour(arm), label=label(arm))
    moved_title = "mean |τ − τ₀|, τ₀: each arm's start" if starts else "mean |τ − τ₀|"
    for ax, title in zip(axes, ("open gates (%)", moved_title)):
        ax.set(xticks=[b + width * (len(arms) - 1) / 2 for b in range(len(blocks))], title=title,
               xticklabels=[n.split(".mlp")[0] for n in blocks])
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=len(arms), fontsize=9)
    fig.suptitle(f"Gates per block, on the {foundation} foundation", fontsize=11)
    fig.get_layout_engine().set(wspace=0.12)  # the right panel's ticks clear of the left panel
    return fig


def _trained(model) -> dict:
    """The tensors a method trained in `model` (its trainable parameters), as JSON."""
    return tensors_to_json({name: p for name, p in model.named_parameters() if p.requires_grad})


def _rebuilt(base, arm: str, trained: dict, study: VitStudy):
    """The model of one cached run: the method put on `base` again, its trained tensors put back."""
    method, options = study.arm(arm)
    model = apply_method(base, method, verbose=False, **options)
    tensors = tensors_from_json(trained)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in tensors:
                p.copy_(tensors[name])
    return model


def run_arms(base, lrs: dict, seeds=None, arms=None, study: VitStudy = STUDY, progress: bool = True,
             recompute: bool | None = None) -> tuple[dict[str, list[Result]], dict[str, list]]:
    """Each arm at its chosen rate, study.epochs over the first study.adapt_images images, for each seed; one job
    per (arm, seed), side by side (dopatut.training.workers): (arm -> [Result], arm -> [model]), in seed order; the
    models of study.kept's arms only; seeds None: study.seeds. Cached per arm (the kept arms with their trained tensors, a few kB) where
    `base` came from vit_foundations."""
    arms = _checked(arms or lrs, study)
    seeds = list(study.seeds if seeds is None else seeds)
    rate = {arm: lrs[arm][0] if isinstance(lrs[arm], tuple) else lrs[arm] for arm in arms}
    results, models = {}, {}
    for arm in arms:
        key = _arm_key(_where(base), arm, rate[arm], seeds, study)
        value = None if key is None else lookup(f"vit-arm-{arm}", key, recompute)
        if value is not None and (arm not in study.kept or "trained" in value):
            results[arm] = [Result(**row) for row in value["results"]]
            if arm in study.kept:
                models[arm] = [_rebuilt(base, arm, t, study) for t in value["trained"]]
    todo = [arm for arm in _longest_first(base, arms, study) if arm not in results]
    runs = [(arm, seed) for arm in todo for seed in seeds]
    jobs = [{"base": base, "arm": arm, "method": study.arm(arm)[0], "options": study.arm(arm)[1], "lr": rate[arm],
             "seed": seed, "angle_deg": study.angle_deg, "epochs": study.epochs, "train_limit": study.adapt_images}
            for arm, seed in runs]
    done = dict(zip(runs, run_jobs(_adapted, jobs, desc=f"arms ({len(todo)} x {len(seeds)} seeds)",
                                   progress=progress))) if runs else {}
    for arm in todo:
        results[arm] = [done[arm, s][1] for s in seeds]
        value = {"results": [asdict(r) for r in results[arm]]}
        if arm in study.kept:
            models[arm] = [done[arm, s][0] for s in seeds]
            value["trained"] = [_trained(m) for m in models[arm]]
        key = _arm_key(_where(base), arm, rate[arm], seeds, study)
        if key is not None:
            store(f"vit-arm-{arm}", key, value)
    return {arm: results[arm] for arm in arms}, {arm: models[arm] for arm in arms if arm in models}


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


def peft_cross_check(base, lr: float, targets=("qkv", "proj"), rank: int = 4, seed: int = 0,
                     angle_deg: float = 45.0, study: VitStudy = STUDY) -> dict[str, float]:
    """dopatut's LoRA and Hugging Face PEFT's on the same targets, from the same A and B, trained the same way
    (one epoch, same data order): test accuracy at `angle_deg` of each."""
    seed_everything(seed)
    ours = apply_method(base, "lora", targets=list(targets), rank=rank, verbose=False)
    theirs = peft_lora(base, targets, rank, start_from=ours)
    x, y = mode_data("train", angle_deg, limit=study.check_images)
    test = mode_data("test", angle_deg)
    config = TrainConfig(epochs=1, lr=lr, seed=seed)
    out = {}
    for label, model in (("dopatut", ours), ("peft", theirs)):
        fit(model, x, y, config, progress=False)
        out[label] = evaluate(model, *test)
    out["trainable"] = {label: sum(p.numel() for p in m.parameters() if p.requires_grad)
                        for label, m in (("dopatut", ours), ("peft", theirs))}
    return out


def plot_arms(runs_by_kind: dict[str, dict[str, list[Result]]], angle: str = "45", study: VitStudy = STUDY):
    """Accuracy at `angle` against trainable parameters (log scale), mean ± std over seeds, one panel per foundation;
    the frozen foundation a dotted line, and arms of one size a little apart, side by side."""
    import matplotlib.pyplot as plt

    from ..analysis.stats import mean_std

    # each panel its own y range: on the mixture foundation the arms lie within a point or two
    from ..methods.names import display, style

    fig, axes = plt.subplots(1, len(runs_by_kind), figsize=(7.5, 3.8), squeeze=False, constrained_layout=True)
    for ax, (kind, runs) in zip(axes[0], runs_by_kind.items()):
        sizes = [results[0].n_trainable for arm, results in runs.items() if results[0].n_trainable]
        for arm, results in runs.items():
            mean, std = mean_std([100 * r.accuracy[angle] for r in results])
            n = results[0].n_trainable
            if not n:  # nothing trained: a line across, not a point at an arbitrary x on a log scale
                ax.axhline(mean, color="0.2", ls=":", lw=1.2, label=display(arm))
                continue
            same = [a for a, r in runs.items() if r[0].n_trainable == n]  # arms of one size, side by side
            x = n * 1.15 ** (same.index(arm) - (len(same) - 1) / 2)
            ax.errorbar(x, mean, yerr=0 if len(results) < 2 else std, fmt=style(arm)[1], capsize=3,
                        color=style(arm)[0], markersize=0.7 * style(arm)[2], label=display(arm))
        if sizes:
            ax.set_xlim(min(sizes) / 2, max(sizes) * 2)
        ax.set(xscale="log", title=f"{kind} foundation", xlabel="trainable parameters")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"test accuracy at {angle}° (%)")
    labelled = {label: handle for ax in axes[0] for handle, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(list(labelled.values()), list(labelled), loc="outside lower center", ncol=4, fontsize=9)  # every arm
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
