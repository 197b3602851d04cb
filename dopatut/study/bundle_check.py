"""What the shipped bundle holds, how it is rebuilt from a cache, and how CI checks it against its own run.

    contents(cache)            # bundle name -> the file of `cache` that holds it
    write(cache)               # rebuild dopatut/shipped from a cache that holds everything (scripts/make_bundle.py)
    report = check(cache)      # compare a cache filled from nothing (CI's) with the bundle; report.ok, print(report)

The check reads only what CI computed anyway (the notebooks fill its cache from nothing with
DOPATUT_RECOMPUTE=1), so the protocol never runs twice. How close the two must be depends on the CPUs.

**A CPU that rounds like the bundle's** (the same torch and vector kernels: device.rounds_alike, against the
bundle's MANIFEST.json) gives the same bits: every number must be equal (SAME), so any change to what trains
shows as a stale bundle.

**A CPU that rounds otherwise** (AVX2 against the bundle's AVX512, say) drifts from the first step, and a run
then is another draw, as another seed would be. Measured between the bundle (AVX512) and CI on an AMD EPYC with
AVX2 (benchmarks/README.md): an upright seed's accuracy at 0°, the mode it forgets, moved by up to 8.5 points;
a single run (a sweep's angle) by up to 2.4, a grid's point by 1.8; a method's mean over ten seeds by up to 1.4
at 0° and under 0.5 at 45°; no verdict changed. So across CPUs the check compares what the book reports (ACROSS):

- every grid's validation scores within "grid" and the same choice, or a near-tie (this run scored the two
  choices within CHOICE of each other: either passes, and the report says so);
- where both chose the same setting: the mean over the seeds of each accuracy within its paired interval,
  "mean" or SPREAD standard errors of the seeds' differences, whichever is wider; each seed alone is not
  compared (another draw), but the largest difference is reported;
- the same verdict for Dopamine against every other method (stats.verdict of the paired difference), unless an
  end of its interval lies within VERDICT of zero in either (a near-tie of the verdict: reported);
- chapter 5's budget study, the shipped foundations and training records, chapter 7's sweeps and chapter 9's
  grids, curves and arms by the same rules: a single run within "single" (or "grid"), seeds by their mean.
"""
from __future__ import annotations

import json
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..foundations import bundle
from ..foundations.checkpoints import load_checkpoint
from ..foundations.device import rounding, rounds_alike
from .budget import SPOT_CHECK, budget_name
from .compare import FOUNDATIONS, Selection, compare_name, select_name
from ..methods.builtin import METHODS
from .protocol import PROTOCOL
from ..analysis.stats import paired_difference, verdict

# Accuracies as fractions. On a CPU that rounds alike: the same bits (measured: a recompute on an AMD EPYC gave
# every grid and comparison of the bundle made on another of that kind).
SAME = {"grid": 0.0, "single": 0.0, "seed": 0.0, "mean": 0.0}
# On one that rounds otherwise: the largest differences measured (see above), with room: a grid's point 1.83,
# a single run 2.40; "mean" is the least a mean's interval allows; "seed" is not compared (reported only).
ACROSS = {"grid": 0.03, "single": 0.04, "seed": None, "mean": 0.005}
SPREAD = 3.0  # standard errors of the seeds' paired differences that a mean may move across CPUs
CHOICE = 0.01  # a grid's near-tie: this run scored the bundle's choice within this of its own (largest seen: 0.46)
VERDICT = 0.001  # a verdict's near-tie: an end of its interval within this of zero


def tolerance(kind: str = "seed") -> float | None:
    """How far a number of this machine may be from the bundle's (SAME where this CPU rounds like the bundle's,
    else ACROSS; None: not comparable, another draw): for a chapter that checks a live run against it."""
    return (SAME if rounds_alike(rounding(), bundle.made_on()) else ACROSS)[kind]
PACKAGE = Path(__file__).resolve().parents[1] / bundle.FOLDER


@contextmanager
def _cache_at(cache: Path):
    before = os.environ.get("DOPATUT_CACHE")
    os.environ["DOPATUT_CACHE"] = str(cache)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("DOPATUT_CACHE")
        else:
            os.environ["DOPATUT_CACHE"] = before


def _selection(value: dict, method: str, kind: str) -> Selection:
    settings = [{k: tuple(v) if isinstance(v, list) else v for k, v in s.items()} for s in value["settings"]]
    return Selection(method, kind, settings, value["val_accuracy"], value["curves"])


def _shipped_foundations():
    from .beyond import STUDY  # chapter 9's, imported here only

    return [(spec, 0) for spec in (*FOUNDATIONS.values(), *STUDY.specs.values())]


def _foundation_files(device="cpu") -> dict[str, Path]:
    """The shipped foundations and the mixture's training records, named as in the bundle, with the cache's
    files that hold them (the records: read from the checkpoints)."""
    from .pipeline import foundation_path

    out = {}
    for spec, seed in _shipped_foundations():
        path, shipped = foundation_path(spec, seed, device), foundation_path(spec, seed, "cpu")
        out[f"foundations/{shipped.name}"] = path
    for seed in PROTOCOL.seeds:
        path, shipped = foundation_path(FOUNDATIONS["mixture"], seed, device), foundation_path(FOUNDATIONS["mixture"], seed, "cpu")
        out[f"records/{shipped.stem}.json"] = path
    return out


def contents(cache: Path, read=None) -> dict[str, Path]:
    """Bundle name -> the file in `cache` that holds it: every grid and comparison on both foundations (the
    comparisons named by the choices `read` finds: the cache's own by default), the shipped foundations, the
    training records of the mixture's ten seeds, and chapter 9's grids, curves and arms (dopatut.study.beyond)."""
    cache = Path(cache)
    read = read or (lambda name: json.loads((cache / name).read_text()))
    out = {}
    with _cache_at(cache):
        for kind in FOUNDATIONS:
            for method in METHODS:
                name = f"results/{select_name(method, kind)}"
                out[name] = cache / name
                chosen = _selection(read(name), method, kind).chosen
                name = f"results/{compare_name(method, kind, chosen)}"
                out[name] = cache / name
                name = f"results/{budget_name(method, kind, chosen)}"
                out[name] = cache / name
        out.update(_foundation_files())
        from .beyond import chapter_results  # chapter 9's grids, curves and arms, on its shipped foundations

        from .sweeps import chapter_results as sweeps  # chapter 7's sweeps

        out.update({name: cache / name for name in [*chapter_results(read), *sweeps()]})
    return out


def _meta(path: Path) -> dict:
    return load_checkpoint(path, "foundation")["meta"]


def write(cache: Path, folder: Path = PACKAGE) -> list[str]:
    """Rebuild the bundle in `folder` from `cache`, which must hold everything (run the protocol into it first, on
    this machine: its MANIFEST.json records how this CPU rounds); files of an older bundle that the new one lacks
    are removed. Returns the names written."""
    wanted = contents(cache)
    missing = [str(p) for p in wanted.values() if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"{cache} lacks what the bundle ships (run the protocol into it first): "
                                + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
    for name, source in wanted.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if name.startswith("results/"):
            target.write_text(bundle.encode(json.loads(Path(source).read_text())))
        elif name.startswith("records/"):
            target.write_text(bundle.encode(_meta(Path(source))))
        else:
            target.write_bytes(Path(source).read_bytes())
    for old in folder.glob("*/*"):
        if old.relative_to(folder).as_posix() not in wanted:
            old.unlink()
    (folder / bundle.MANIFEST).write_text(bundle.encode({"made_on": rounding()}))  # how this CPU rounds: check()
    return sorted(wanted)


def missing_from_bundle(folder: Path = PACKAGE) -> list[str]:
    """What the current code would read from the bundle and it lacks (a changed key: rebuild the bundle). The
    comparisons are named by the bundle's own grid choices."""
    def read(name):
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(name)
        return json.loads(path.read_text())
    try:
        wanted = contents(folder, read)
    except FileNotFoundError as err:
        return [str(err)]
    return [name for name in wanted if not (folder / name).is_file()]


@dataclass
class Report:
    across: bool = False  # this run's CPU rounds otherwise than the bundle's: compared as draws (ACROSS)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # near-ties (of a grid's choice, or of a verdict), what was not compared
    largest: dict = field(default_factory=dict)  # kind of comparison -> (largest |difference|, where)
    compared: int = 0
    cpus: tuple = ()  # (the bundle's rounding, this run's)

    @property
    def ok(self) -> bool:
        return not self.failures

    def tolerance(self, kind: str) -> float | None:
        return (ACROSS if self.across else SAME)[kind]

    def _largest(self, d: float, where: str, kind: str) -> None:
        if d > self.largest.get(kind, (-1.0, ""))[0]:
            self.largest[kind] = (d, where)

    def differ(self, a: float, b: float, where: str, kind: str = "single") -> None:
        """One run's number in the bundle (a) and in this run (b)."""
        d, allowed = abs(a - b), self.tolerance(kind)
        self._largest(d, where, kind)
        if allowed is None:
            return
        self.compared += 1
        if d > allowed:
            why = (f"more than {100 * allowed:.1f} points apart, the {kind} tolerance" if allowed else
                   f"{100 * d:.2g} points apart, on a CPU that rounds like the bundle's")
            self.failures.append(f"{where}: {100 * a:.2f}% in the bundle, {100 * b:.2f}% recomputed ({why})")

    def seeds(self, xs: list, ys: list, where: str, seed_where: str) -> None:
        """The same seeds' accuracies in the bundle (xs) and in this run (ys): each seed and the mean on a CPU
        that rounds alike; across CPUs the mean within max("mean", SPREAD standard errors of the differences).
        `seed_where` names one seed ("{seed}" in it)."""
        for seed, (x, y) in enumerate(zip(xs, ys)):
            self.differ(x, y, seed_where.format(seed=seed), "seed")
        if not self.across:
            self.differ(_mean(xs), _mean(ys), where, "mean")
            return
        diffs = [y - x for x, y in zip(xs, ys)]
        d = _mean(diffs)
        se = math.sqrt(sum((v - d) ** 2 for v in diffs) / (len(diffs) - 1) / len(diffs)) if len(diffs) > 1 else 0.0
        allowed = max(ACROSS["mean"], SPREAD * se)
        self.compared += 1
        self._largest(abs(d), where, "mean")
        if abs(d) > allowed:
            self.failures.append(f"{where}: {100 * _mean(xs):.2f}% in the bundle, {100 * _mean(ys):.2f}% recomputed "
                                 f"(moved by {100 * abs(d):.2f} points, more than {100 * allowed:.2f}: the larger of "
                                 f"{100 * ACROSS['mean']:.1f} and {SPREAD:g} standard errors of the seeds' differences)")

    def __str__(self) -> str:
        made, here = self.cpus or ({}, {})
        how = ("it rounds otherwise, so runs are compared as draws: means by their intervals, single runs within "
               "their tolerance, seeds alone not at all" if self.across else "it rounds alike: every number must be equal")
        lines = [f"the bundle was made with torch {made.get('torch', '?')}, {made.get('kernels', '?')} kernels "
                 f"({made.get('cpu', '?')}); this run with torch {here.get('torch', '?')}, {here.get('kernels', '?')} "
                 f"kernels ({here.get('cpu', '?')}): {how}",
                 *(f"note: {n}" for n in self.notes), f"{self.compared} accuracies compared; the largest differences:"]
        for kind, (d, where) in self.largest.items():
            allowed = self.tolerance(kind)
            limit = ("not compared: another draw" if allowed is None else
                     f"tolerance max({100 * allowed:.1f}, {SPREAD:g} SE)" if kind == "mean" and self.across else
                     f"tolerance {100 * allowed:.1f}")
            lines.append(f"  {kind}: {100 * d:.2f} points ({where}; {limit})")
        if self.failures:
            lines += ["the shipped bundle is stale or differs from this run:", *(f"  {f}" for f in self.failures),
                      f"rebuild it: python {bundle.REBUILD} (or --from-cache CACHE after a run), and commit "
                      f"dopatut/{bundle.FOLDER}"]
        else:
            lines.append("the shipped bundle matches this run: the same choices (or near-ties) and verdicts")
        return "\n".join(lines)


def _mean(values) -> float:
    return sum(values) / len(values)


def _read(root: Path):
    return lambda name: json.loads((Path(root) / name).read_text())


def check(cache: Path, folder: Path = PACKAGE, device="cpu", across: bool | None = None) -> Report:
    """Compare `cache`, filled from nothing by this run on `device`, with the bundle in `folder` (nothing is
    trained). across: whether this run's CPU rounds otherwise than the bundle's (None: from the bundle's
    MANIFEST.json and device.rounding(); a GPU always does). A GPU's run is named by its device
    (scripts/check_gpu.sh); the bundle's by the CPU."""
    cache, folder = Path(cache), Path(folder)
    made = bundle.made_on(folder)
    here = rounding() if str(device) == "cpu" else {"torch": rounding()["torch"], "kernels": str(device), "cpu": str(device)}
    if across is None:
        across = not rounds_alike(made, here)
    report = Report(across=across, cpus=(made, here))
    shipped, ours = _read(folder), _read(cache)
    with _cache_at(cache):
        for kind in FOUNDATIONS:
            accuracies = {"bundle": {}, "run": {}}
            for method in METHODS:
                name, run_name = (f"results/{select_name(method, kind, device=d)}" for d in ("cpu", device))
                if not (folder / name).is_file():
                    report.failures.append(f"the bundle has no {name}: the protocol, a grid or the code's "
                                           "RESULTS_VERSION changed since it was made")
                    continue
                if not (cache / run_name).is_file():
                    report.failures.append(f"this run's cache {cache} has no {run_name}: run every chapter first")
                    continue
                a, b = _selection(shipped(name), method, kind), _selection(ours(run_name), method, kind)
                if a.settings != b.settings:
                    report.failures.append(f"{kind} {method}: the grid differs ({a.settings} against {b.settings})")
                    continue
                for setting, x, y in zip(a.settings, a.val_accuracy, b.val_accuracy):
                    report.differ(x, y, f"{kind} {method} grid {setting}", "grid")
                same = a.best == b.best
                if not same:
                    gap = b.val_accuracy[b.best] - b.val_accuracy[a.best]
                    text = (f"{kind} {method}: the bundle chose {a.chosen}, this run {b.chosen}, which it scored "
                            f"{100 * gap:.2f} points above the bundle's choice on validation")
                    if gap <= CHOICE:
                        report.notes.append("near-tie: " + text + f" (within {100 * CHOICE:.1f}: either passes; "
                                            "their seeds, another setting's, are compared by verdict only)")
                    else:
                        report.failures.append(text)
                names = {"bundle": f"results/{compare_name(method, kind, a.chosen)}",
                         "run": f"results/{compare_name(method, kind, b.chosen, device=device)}"}
                if not (folder / names["bundle"]).is_file() or not (cache / names["run"]).is_file():
                    report.failures.append(f"{kind} {method}: the ten-seed comparison is missing "
                                           f"({names['bundle']} in the bundle, {names['run']} in the run)")
                    continue
                _check_budget(kind, method, a.chosen, b.chosen, shipped, ours, device, report)
                rows = {"bundle": shipped(names["bundle"]), "run": ours(names["run"])}
                for side, values in rows.items():
                    accuracies[side][method] = [r["accuracy"]["45"] for r in values]
                if not same:
                    continue
                for angle in rows["bundle"][0]["accuracy"]:
                    x, y = ([r["accuracy"][angle] for r in rows[side]] for side in ("bundle", "run"))
                    report.seeds(x, y, f"{kind} {method} mean over seeds at {angle}°",
                                 f"{kind} {method} seed {{seed}} at {angle}°")
            _check_verdicts(kind, accuracies, report)
        _check_foundations(cache, folder, report, device)
        _check_chapters(cache, folder, device, report)
    return report


def _check_chapters(cache: Path, folder: Path, device, report: Report) -> None:
    """Chapters 7's sweeps and 9's grids, curves and arms: the same structure and counts, every accuracy by the
    rules above (an arm's seeds by their mean across CPUs); times and trained tensors are not compared. A grid of
    chapter 9 is compared at the rates both tried (its widening may go further in one); where it chose another
    rate (a near-tie), its curve and arm are named differently and only the grid is compared. Chapter 9's curves
    and arms that CI read from the bundle (all but beyond.SPOT_CHECK's) are noted, not compared."""
    from .beyond import SPOT_CHECK as VIT_SPOT_CHECK, chapter_entries
    from .sweeps import chapter_results as sweeps

    try:
        ours = chapter_entries(_read(cache), device=device) + [(None, None, n) for n in sweeps(device=device)]
    except FileNotFoundError as missing:
        report.failures.append(f"this run's cache {cache} lacks {Path(missing.filename).name}: run chapters 7 and 9 first")
        return
    theirs = chapter_entries(_read(folder)) + [(None, None, n) for n in sweeps()]
    for (kind, arm, shipped), (_, _, run) in zip(theirs, ours):
        label = Path(run).name.rsplit("-", 1)[0]
        if not (folder / shipped).is_file():
            report.failures.append(f"the bundle has no {shipped}: chapter 7's or 9's settings changed since it was made")
        elif shipped != run:
            report.notes.append(f"near-tie: {Path(shipped).name.rsplit('-', 1)[0]}: chapter 9's grid chose another rate here "
                                "(a near-tie of its grid, compared above); the arm's curve and seeds are not compared")
        elif not (cache / run).is_file():
            if label.startswith(("vit-arm-", "vit-curve-")) and (kind, arm) not in VIT_SPOT_CHECK:
                report.notes.append(f"{kind} {label}: chapter 9's {label.split('-')[1]} was read from the bundle, not "
                                    f"recomputed (CI recomputes {', '.join(' '.join(s) for s in VIT_SPOT_CHECK)} only)")
            else:
                report.failures.append(f"this run's cache {cache} has no {run}: run chapters 7 and 9 first"
                                       + (" and the spot check (scripts/make_bundle.py --spot-check)"
                                          * label.startswith(("vit-arm-", "vit-curve-"))))
        elif label.startswith("vit-grid-"):
            _check_vit_grid(_read(folder)(shipped), _read(cache)(run), label, report)
        elif label.startswith("vit-arm-"):
            a, b = _read(folder)(shipped), _read(cache)(run)
            _compare_values({k: v for k, v in a.items() if k != "results"}, b, label, report)
            _check_runs(a["results"], b["results"], label, report)
        else:
            _compare_values(_read(folder)(shipped), _read(cache)(run), label, report)


def _check_vit_grid(a: list, b: list, where: str, report: Report) -> None:
    """A transformer arm's [rate, validation accuracy] pairs: the rates both tried within "grid"; the same best
    rate, or a near-tie (CHOICE)."""
    ours = dict(map(tuple, b))
    for rate, acc in a:
        if rate in ours:
            report.differ(acc, ours[rate], f"{where} at rate {rate:g}", "grid")
    best = {side: max(v, key=lambda pair: pair[1])[0] for side, v in (("bundle", a), ("run", b))}
    if best["bundle"] != best["run"]:
        gap = ours[best["run"]] - ours.get(best["bundle"], float("-inf"))
        text = f"{where}: the bundle chose rate {best['bundle']:g}, this run {best['run']:g} ({100 * gap:.2f} points above it)"
        if gap <= CHOICE:
            report.notes.append(f"near-tie: {text}")
        else:
            report.failures.append(text)


def _check_runs(a: list, b: list, where: str, report: Report) -> None:
    """An arm's runs, one per seed: their counts equal, each accuracy by report.seeds."""
    if len(a) != len(b):
        report.failures.append(f"{where}: {len(a)} seeds in the bundle, {len(b)} recomputed")
        return
    for x, y in zip(a, b):
        _compare_values({k: v for k, v in x.items() if k not in ("accuracy", "soft_accuracy")}, y, where, report)
    for key in ("accuracy", "soft_accuracy"):
        for angle in a[0][key]:
            report.seeds([r[key][angle] for r in a], [r[key][angle] for r in b], f"{where} {key} mean over seeds at {angle}°",
                         f"{where}.results[{{seed}}].{key}.{angle}")


def _compare_values(a, b, where: str, report: Report) -> None:
    """Every float of `a` against `b` as a single run's; other values must be equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a:
            if key not in ("seconds", "trained"):
                _compare_values(a[key], b.get(key), f"{where}.{key}", report)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _compare_values(x, y, f"{where}[{i}]", report)
    elif isinstance(a, float) and isinstance(b, float):
        report.differ(a, b, where, "single")
    elif a != b:
        report.failures.append(f"{where}: {a!r} in the bundle, {b!r} recomputed")


def _check_budget(kind: str, method: str, chosen: dict, run_chosen: dict, shipped, ours, device,
                  report: Report) -> None:
    """The budget study's stack of `method` (chapter 5): each epoch's validation and the final test accuracy, over
    its seeds (report.seeds); with another setting chosen (a near-tie), not compared."""
    names = {"bundle": f"results/{budget_name(method, kind, chosen)}",
             "run": f"results/{budget_name(method, kind, run_chosen, device=device)}"}
    try:
        rows = {"bundle": shipped(names["bundle"]), "run": ours(names["run"])}
    except FileNotFoundError:
        if (kind, method) not in SPOT_CHECK and _bundled(shipped, names["bundle"]):
            report.notes.append(f"{kind} {method}: the budget study was read from the bundle, not recomputed "
                                f"(CI recomputes {', '.join(' '.join(s) for s in SPOT_CHECK)} only)")
            return
        report.failures.append(f"{kind} {method}: the budget study is missing ({names['bundle']} in the bundle, "
                               f"{names['run']} in the run)")
        return
    if chosen != run_chosen:
        return  # a near-tie of the grid, reported there: another setting's runs
    where = f"{kind} {method} budget study"
    report.seeds(rows["bundle"]["accuracy"], rows["run"]["accuracy"], f"{where}, mean over seeds at 45°",
                 f"{where}, seed {{seed}}, test at 45°")
    curves = [list(zip(*rows[side]["curves"])) for side in ("bundle", "run")]  # epoch -> the seeds' scores
    for epoch, (x, y) in enumerate(zip(*curves), 1):
        report.seeds(list(x), list(y), f"{where}, mean validation after epoch {epoch}",
                     f"{where}, seed {{seed}}, validation after epoch {epoch}")


def _bundled(shipped, name: str) -> bool:
    try:
        shipped(name)
    except FileNotFoundError:
        return False
    return True


def _check_verdicts(kind: str, accuracies: dict, report: Report) -> None:
    if "dopamine" not in accuracies["bundle"] or "dopamine" not in accuracies["run"]:
        return
    for method in accuracies["bundle"]:
        if method == "dopamine" or method not in accuracies["run"]:
            continue
        diffs = [paired_difference(acc["dopamine"], acc[method]) for acc in (accuracies["bundle"], accuracies["run"])]
        words = [verdict(d) for d in diffs]
        if words[0] == words[1]:
            continue
        text = (f"{kind}: Dopamine {words[0]} {method} in the bundle, {words[1]} {method} in this run (95% intervals "
                + ", ".join(f"[{100 * d.ci_low:+.2f}, {100 * d.ci_high:+.2f}]" for d in diffs) + " points)")
        if min(abs(end) for d in diffs for end in (d.ci_low, d.ci_high)) <= VERDICT:
            report.notes.append("near-tie: " + text + f": an end lies within {100 * VERDICT:.1f} points of zero")
        else:
            report.failures.append(text)


def _check_foundations(cache: Path, folder: Path, report: Report, device) -> None:
    """The shipped foundations (single runs) and the mixture's ten training records (seeds, report.seeds)."""
    records = {"bundle": [], "run": []}
    for name, source in _foundation_files(device).items():
        if not (folder / name).is_file():
            report.failures.append(f"the bundle has no {name}: the foundation's spec changed since it was made")
            continue
        if not Path(source).is_file():
            report.failures.append(f"this run's cache has no {Path(source).name}: run every chapter first")
            continue
        ours = _meta(Path(source))
        if name.startswith("records/"):
            records["bundle"].append(json.loads((folder / name).read_text()))
            records["run"].append(ours)
            continue
        theirs = _meta(folder / name)
        for angle, acc in theirs["accuracy"].items():
            report.differ(acc, ours["accuracy"][angle], f"{name} test accuracy at {angle}°")
        for angle, curve in theirs.get("curves", {}).items():
            for epoch, (x, y) in enumerate(zip(curve, ours["curves"][angle]), 1):
                report.differ(x, y, f"{name} validation at {angle}° after epoch {epoch}")
    if not records["bundle"] or len(records["bundle"]) != len(records["run"]):
        return
    where = "the mixture's foundations"
    first = records["bundle"][0]
    for angle in first["accuracy"]:
        report.seeds(*([m["accuracy"][angle] for m in records[side]] for side in ("bundle", "run")),
                     f"{where}: mean test accuracy at {angle}°", f"{where}: seed {{seed}}'s test accuracy at {angle}°")
    for angle, curve in first.get("curves", {}).items():
        for epoch in range(len(curve)):
            report.seeds(*([m["curves"][angle][epoch] for m in records[side]] for side in ("bundle", "run")),
                         f"{where}: mean validation at {angle}° after epoch {epoch + 1}",
                         f"{where}: seed {{seed}}'s validation at {angle}° after epoch {epoch + 1}")
