"""Counting the work of a training step, timing it, and reading the benchmark's results.

FLOPs of one training sample through a stack of linear layers (in_i -> out_i), a multiply-add counted as 2:

    forward         2 * sum_i in_i * out_i
    weight grads    2 * sum_i in_i * out_i     (every layer trained)
    input grads     2 * sum_i in_i * out_i     for every layer but the first: the images need no gradient

So full training costs 6 * sum(in * out) - 2 * in_1 * out_1 per sample: the usual "6 x parameters"
less the first layer's input gradient. Biases, ReLU, softmax and Adam are left out (they are < 1%).
benchmarks/bench.py uses these; the book's appendix reads the table it writes with `load_results`.
"""
from __future__ import annotations

import json
import math
import re
import time
from importlib import resources
from pathlib import Path

from torch import nn

from ..foundations.tables import Table

# Shipped inside the package (package data), so the appendix reads it from any install, Colab included.
RESULTS = resources.files("dopatut") / "results" / "latest.json"


def linear_shapes(model: nn.Module) -> list[tuple[int, int]]:
    """(in_features, out_features) of each nn.Linear of `model`, in forward order."""
    shapes = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]
    if not shapes:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layers to count")
    return shapes


def training_flops(shapes, n_samples: int, first_input_grad: bool = False) -> int:
    """Matmul FLOPs of training every layer of an MLP with `shapes` on `n_samples` samples (see module doc)."""
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    macs = [i * o for i, o in shapes]
    per_sample = 2 * sum(macs) + 2 * sum(macs) + 2 * (sum(macs) if first_input_grad else sum(macs[1:]))
    return per_sample * n_samples


def forward_flops(shapes, n_samples: int) -> int:
    """Matmul FLOPs of one forward pass (inference) of `n_samples` samples."""
    return 2 * sum(i * o for i, o in shapes) * n_samples


def run_flops(method: str, shapes, n_samples: int, epochs: int = 1, rank: int = 4) -> int:
    """Matmul FLOPs of one run of `method` on an MLP with `shapes`, as dopatut's fit_many computes it.

    Methods that freeze the first layer's weight (gates, BitFit, head-only) compute its product with the
    `n_samples` images once (2 in_1 out_1 each), then train on it: every later layer forward, and backward
    to the first layer's gates or bias (head-only: to the head's weight only). LoRA and full training run
    the whole network at every step; LoRA adds its rank-r factors on every layer.
    """
    from ..methods.registry import get_method

    counted = get_method(method).flops
    if counted == "none":
        return 0
    macs = [i * o for i, o in shapes]
    if counted == "all":
        return epochs * training_flops(shapes, n_samples)
    if counted == "lora":
        factors = sum(rank * (i + o) for i, o in shapes)  # A: in x r, B: r x out, per layer
        per_sample = 2 * sum(macs) + 2 * sum(macs[1:]) + 6 * factors - 2 * rank * shapes[0][0]
        return epochs * n_samples * per_sample
    later = 2 * sum(macs[1:])  # the forward of every layer after the precomputed first one
    backward = 2 * macs[-1] if counted == "head" else later
    return 2 * macs[0] * n_samples + epochs * n_samples * (later + backward)


def protocol_flops(protocol=None, shapes=None, n_samples: int = 50_000) -> dict:
    """The protocol's training matmul FLOPs, by part: every seed's foundation, every setting of every grid, and
    every method on every seed, on each foundation kind (shapes: the foundation MLP's by default). Evaluation is
    left out (forward passes only)."""
    from ..foundations.model import FoundationMLP
    from .protocol import LORA_RANK, PROTOCOL

    protocol = protocol or PROTOCOL
    shapes = linear_shapes(FoundationMLP()) if shapes is None else shapes
    kinds, seeds = len(protocol.foundations), len(protocol.seeds)
    methods = list(protocol.grids)  # every method that trains

    def run(method):
        return run_flops(method, shapes, n_samples, protocol.epochs, LORA_RANK)
    return {"foundations": kinds * seeds * run_flops("full", shapes, n_samples, protocol.foundation_epochs),
            "settings grids": kinds * sum(len(protocol.grid(m)) * run(m) for m in methods),
            "ten-seed comparison": kinds * seeds * sum(run(m) for m in methods)}


def saved_shapes(model: nn.Module, x, y) -> dict[tuple, int]:
    """How many tensors of each shape autograd keeps for the backward pass of one training step (cross-entropy
    of model(x) against y), as benchmarks/bench.py's saved_bytes counts their bytes. Nothing is trained."""
    import torch
    import torch.nn.functional as F

    counts: dict[tuple, int] = {}

    def pack(t):
        counts[tuple(t.shape)] = counts.get(tuple(t.shape), 0) + 1
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        F.cross_entropy(model(x), y)
    return counts


def best_seconds(fn, repeats: int = 3, warmup: int = 1) -> float:
    """The fastest of `repeats` timed calls of fn() after `warmup` untimed ones: the least disturbed run."""
    return interleaved_best({"fn": fn}, repeats, warmup)["fn"]


def interleaved_best(fns: dict, repeats: int = 3, warmup: int = 1, clock=time.perf_counter) -> dict:
    """{name: fastest seconds of fn()}, timing the functions in turn each round, so a busy spell hits them alike."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    best = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = clock()
            fn()
            best[name] = min(best.get(name, float("inf")), clock() - start)
    return best


def cpu_best(fns: dict, repeats: int = 10, warmup: int = 1) -> dict:
    """`interleaved_best` on one thread, timed by this process's CPU time (time.process_time).

    On a shared machine wall-clock time also counts the waits for other programs: with two threads on a busy CPU,
    chapter 8's pruned networks once "ran" several times faster than their FLOPs allow. CPU time on one thread
    counts the work done, and follows the FLOPs; it is still a timing on a shared machine, not a result."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return interleaved_best(fns, repeats, warmup, clock=time.process_time)
    finally:
        torch.set_num_threads(threads)


def speedup_sentence(speedups, flop_ratios, noise: float = 0.1) -> str:
    """Chapter 8's sentence on measured speed-ups against FLOP ratios (the same networks, in the same order, most
    pruned last): do the speed-ups grow with the pruning and stay within `noise` of the FLOP ratio?"""
    speedups, flop_ratios = list(speedups), list(flop_ratios)
    if len(speedups) != len(flop_ratios) or not speedups:
        raise ValueError(f"speedup_sentence needs one FLOP ratio per speed-up, got {len(speedups)} and {len(flop_ratios)}")
    grows = all(b >= a * (1 - noise) for a, b in zip(speedups, speedups[1:]))
    close = all(abs(s - f) <= noise * f for s, f in zip(speedups, flop_ratios))
    if grows and close:
        return (f"in CPU time the measured speed-ups follow them (within {noise:.0%}: CPU time leaves out other "
                f"programs' turns, but not their effect on the caches, nor the CPU's changing clock speed).")
    return (f"even in CPU time the measured speed-ups do not follow them closely here (they wobble, or miss the FLOP "
            f"ratio, by more than {noise:.0%}): other programs on a shared CPU also disturb the caches a timing "
            f"relies on, so these are this run's timings, not results.")


# The optimizer rows of the benchmark's step timing (benchmarks/bench.py, section "limit").
PLAIN_ADAM, FUSED_ADAM = "+ Adam (torch's default on CPU)", "+ Adam(fused=True) (dopatut's fit)"


def adam_shares(seconds_per_step: dict) -> tuple[str, float, float]:
    """(the row fit's Adam was timed under, its share of a step, the default Adam's share).

    fit uses the fused Adam where torch has one, else the default; a share is the part of a step
    that the optimizer adds to forward+backward.
    """
    ours = FUSED_ADAM if FUSED_ADAM in seconds_per_step else PLAIN_ADAM

    def share(name):
        return max(0.0, 1 - seconds_per_step["forward+backward"] / seconds_per_step[name])
    return ours, share(ours), share(PLAIN_ADAM)


def load_results(path=None) -> dict:
    """The benchmark's results as written by benchmarks/bench.py (by default the copy shipped in dopatut/results)."""
    path = RESULTS if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: this install of dopatut came without its benchmark results "
                                "(dopatut/results/latest.json, package data); run `python benchmarks/bench.py` in a "
                                "clone of the repository to write it")
    return json.loads(path.read_text())


def _cell(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def goals_table(results: dict) -> Table:
    """The goals of the results as a table: what, measured, target, met."""
    rows = []
    for g in results["goals"]:
        met = "-" if g.get("met") is None else ("yes" if g["met"] else "**no**")
        rows.append([g["name"], f"{_cell(g.get('value'), g['fmt'])}{g.get('unit', '')}",
                     f"{g['op']} {format(g['target'], g['fmt'])}{g.get('unit', '')}", met])
    return Table(["goal", "measured", "target", "met"], rows, align=("left", "right", "right", "center"),
                 wrap_first=True)  # long goals wrap, so the table fits the text width


RATIO_RULE = "above 1: first column better"  # every ratio of bench.py's table reads this way
RATIO_HEADER = "ratio (>1: first better)"  # RATIO_RULE, short enough for a header at the text width

# The topics of bench.py's rows, in the page's order: (title, a test on the row's name, the two columns' headers,
# the words each row's name loses in that table because the title and headers say them).
TOPICS = (
    ("Training the MLP", lambda n: n.startswith(("training ", "10 ")) and "matmul peak" not in n,
     ("dopatut", "reference"), ()),
    ("Stacked against one at a time: test accuracy at 45°", lambda n: n.startswith("full recipe"),
     ("difference (points)", None),
     ("full recipe, |fit_many - fit| test accuracy at 45 deg (points): ", "full recipe, |fit_many - fit| (points): ")),
    ("LoRA against PEFT", lambda n: n.startswith("LoRA"), ("dopatut", "PEFT"), (" vs PEFT",)),
    ("Transformer", lambda n: n.startswith("transformer:"), ("Dopamine", "LoRA on attention (r=4)"),
     ("transformer: ", ", Dopamine vs LoRA on attention (r=4)", ", Dopamine vs LoRA on attention")),
    ("Inference on 10,000 images", lambda n: n.startswith("inference"), ("this model (ms)", "frozen base (ms)"),
     ("inference, 10,000 images: ", " (ms)")),
    ("Whole runs", lambda n: True, ("this run", "at the matmul peak"), ()),
)


def measure_topic(name: str) -> str:
    """The title of the topic a row of bench.py's table belongs to (TOPICS, first match)."""
    return next(title for title, test, _, _ in TOPICS if test(name))


def _readable_measure(name: str, drop=()) -> str:
    for words in drop:
        name = name.replace(words, "")
    return name.replace(" deg", "°").replace("|fit_many - fit|", "stacked against one at a time, the difference in")


def _ratio(row: dict) -> str:
    """The row's ratio, recomputed from its two values as printed where both are numbers (so that a reader's
    division of the shown values gives the shown ratio), in the direction of bench.py's ratio."""
    if row.get("ratio") is None:
        return "-"
    shown = [_number(row.get(side)) for side in ("dopatut", "reference")]
    if None in shown or 0 in shown:
        return f"{row['ratio']:.2f}×"
    a, b = shown
    ratio = min((a / b, b / a), key=lambda r: abs(math.log(r / row["ratio"])))  # bench.py's direction
    return f"{ratio:.2f}×"


def _number(cell) -> float | None:
    """A printed cell as a number ("1,302", "2 (frozen base)"), or None where it is not one."""
    try:
        return float(str(cell).split(" (")[0].replace(",", ""))
    except ValueError:
        return None


def _split_pair(row: dict) -> list[dict]:
    """A row without a reference that holds one value per name after its last ": " ("...: foundation, Dopamine"
    with "0.20, 0.09") as one row per value ("...: foundation" 0.20, "...: Dopamine" 0.09); any other row as it is."""
    head, _, names = row["name"].rpartition(": ")
    names, values = names.split(", "), str(row["dopatut"]).split(", ")
    if row.get("reference") or not head or len(names) < 2 or len(names) != len(values):
        return [row]
    return [{"name": f"{head}: {name}", "dopatut": value} for name, value in zip(names, values)]


def _with_itself(row: dict) -> bool:
    """Whether a row compares a side with itself ("inference: frozen base (ms)" against "43.6 (frozen base)")."""
    side = re.search(r"\((.+)\)$", row.get("reference") or "")
    return bool(side) and f": {side.group(1)} (" in row["name"]


def measures_table(results: dict) -> Table:
    """Every side-by-side measurement as one table: what, dopatut, reference, ratio (RATIO_RULE), for
    benchmarks/bench.py's own page."""
    rows = [[_readable_measure(row["name"]), row["dopatut"], row.get("reference") or "-", _ratio(row)]
            for row in results["rows"]]
    return Table(["measure", "dopatut", "reference", f"ratio ({RATIO_RULE})"], rows,
                 align=("left", "right", "right", "right"))


def measures_tables(results: dict) -> dict[str, Table]:
    """bench.py's rows split by topic (TOPICS), each a table whose headers name its two sides, and whose ratio
    column reads one way (RATIO_RULE, headed RATIO_HEADER); a row holding two values is split in two (_split_pair);
    a topic without rows is left out, a topic without ratios has no ratio
    column; a row that compares a side with itself is left out. The measures' long labels wrap, so each table fits
    the page's text width."""
    tables = {}
    for title, _, (first, second), drop in TOPICS:
        rows = [row for row in results["rows"] if measure_topic(row["name"]) == title and not _with_itself(row)]
        if not rows:
            continue
        rows = [part for row in rows for part in _split_pair(row)]
        # the whole runs stand against a ceiling (the matmul peak), not a rival: no "better" ratio there
        ratios = title != "Whole runs" and any(row.get("ratio") is not None for row in rows)
        sides = [first] + [second] * (second is not None)  # None: a topic of single values (no reference)
        cells = [[_readable_measure(row["name"], drop) or row["name"], row["dopatut"]]
                 + [(row.get("reference") or "-").replace(" (frozen base)", "")] * (second is not None)
                 + [_ratio(row)] * ratios for row in rows]
        tables[title] = Table(["measure", *sides] + [RATIO_HEADER] * ratios, cells, caption=title,
                              align=("left",) + ("right",) * (len(sides) + ratios), wrap_first=True)
    return tables


def load_cold(path=None) -> dict:
    """Each chapter's time alone from an empty cache, before the shipped bundle and after, as written by
    benchmarks/cold_chapters.py (dopatut/results/cold.json by default); {} where it was never measured."""
    path = resources.files("dopatut") / "results" / "cold.json" if path is None else Path(path)
    return json.loads(path.read_text()) if path.is_file() else {}


def cold_table(record: dict, goal_column: bool = True, before: bool = True) -> Table:
    """A table of load_cold()'s record: each chapter's wall-clock and CPU seconds before and after, and
    whether it meets the goal. The CPU time (one thread: about the time on an idle core) decides where it was
    measured, since other work on a shared machine inflates the wall clock; else the wall clock. With
    before=False, the 'after' columns only (what a reader's first run costs), headed "wall clock" and "CPU"."""
    goal = record.get("goal_seconds", 60)
    cols = ("before", "before_cpu", "after", "after_cpu")
    shown = cols if before else cols[2:]
    chapters = sorted(set().union(*(record.get(c, {}) for c in shown)))
    rows = []
    for chapter in chapters:
        values = [record.get(c, {}).get(chapter) for c in cols]
        decides = values[3] if values[3] is not None else values[2]
        rows.append([chapter, *(_cell(v, ',.1f') for v in values[4 - len(shown):])]
                    + (["-" if decides is None else "✔" if decides < goal else "✘"] if goal_column else []))
    header = (["chapter", "before (s)", "before, CPU (s)", "after (s)", "after, CPU (s)"] if before else
              ["chapter", "wall clock (s)", "CPU (s)"])
    return Table(header + ["under the goal"] * goal_column, rows,
                 align=("left",) + ("right",) * len(shown) + ("center",) * goal_column)


def cold_words(record: dict) -> str:
    """What load_cold()'s two columns say where a chapter took longer after the bundle than before it: by its CPU
    time too (then the chapter itself costs more), or by the wall clock only (then it is the load of the moment)."""
    meta = record.get("meta", {})
    load = {c: meta.get(c, {}).get("load_start") for c in ("before", "after")}
    slower = [ch for ch in record.get("before", {}) if ch in record.get("after", {})
              and record["after"][ch] > record["before"][ch]]
    if not slower:
        return "Every chapter timed both ways took less time after than before."
    costs_more = [ch for ch in slower if record.get("after_cpu", {}).get(ch, 0) > record.get("before_cpu", {}).get(ch, 0)]
    by_load = [ch for ch in slower if ch not in costs_more]
    said = []
    if by_load:
        loads = (f" (load average {load['after']:.1f} at the start of the 'after' run, {load['before']:.1f} at the "
                 "start of 'before')" if None not in load.values() else "")
        said.append(f"{', '.join(by_load)} took longer after than before by the wall clock, but less CPU time: the "
                    f"difference is the machine's load{loads}, not the chapter.")
    if costs_more:
        said.append(f"{', '.join(costs_more)} took more CPU time after than before: reading the bundle cost more "
                    "there than it saved.")
    return " ".join(said)


def lora_full_words(share: float, seconds: dict, names: dict, step_s: dict, noise: float) -> str:
    """What chapter 5's stacks' wall times say about LoRA against full fine-tuning, given that LoRA computes
    `share` of full fine-tuning's FLOPs, in two sentences, the second a verdict. seconds: {foundation: {"lora": s,
    "full": s}}; names: each foundation's readable name; step_s: {"lora": s, "full": s}, the benchmark's time per
    training step of each, best of several rounds on the same MLP (bench_lora's and bench_limit's fused-Adam step);
    noise: the relative gap the same timer gives two identical networks (merged LoRA against the frozen base). ""
    where LoRA's stack was the faster on every foundation (the FLOPs and the clock agree). Where they disagree: if
    the step follows the FLOPs, the stacks' order is the load of their moment; if not, the saving in arithmetic does
    not show in time, and which of the two is faster is settled only where the steps differ by more than twice the
    noise and every stack agrees with them."""
    slower = [k for k in seconds if seconds[k]["lora"] > seconds[k]["full"]]
    if not slower:
        return ""
    faster = [k for k in seconds if k not in slower]
    said = (f"LoRA computes {share:.0%} of full fine-tuning's arithmetic, yet its stack took longer on the "
            f"{' and '.join(names[k] for k in slower)}")
    if faster:
        said += f" (and less on the {' and '.join(names[k] for k in faster)})"
    ratio = step_s["lora"] / step_s["full"]
    step = (f"Its step, timed by the benchmark (one model at batch 128, best of several rounds), took "
            f"{1e3 * step_s['lora']:.2f} ms against {1e3 * step_s['full']:.2f} ms for a full one")
    if ratio <= share * (1 + noise):
        why = (f"{step}, about what the arithmetic predicts, so the stacks' order is not LoRA's doing: each stack "
               "was timed once, under the load of its moment")
    elif ratio > 1 + 2 * noise and not faster:
        why = (f"{step}: on this small MLP LoRA's thin rank-4 products cost more time than the weight gradients it "
               "skips, so its saving in arithmetic does not show in time")
    else:
        split = "; the stacks, timed once each, disagree" if faster else ""
        why = (f"{step}: its saving in arithmetic does not show in time on this small MLP, but which of the two is "
               f"faster these timings do not settle (the steps differ by {abs(ratio - 1):.0%}, the timing noise of "
               f"section 6 is {noise:.0%}{split})")
    return f"{said}. {why}."


def lora_agreement(gap_pts: float) -> str:
    """bench.py's largest gap between dopatut's LoRA and PEFT's (points, over both angles) in words:
    'agree exactly' where it is 0."""
    if gap_pts == 0:
        return "dopatut's LoRA and PEFT's agree exactly at both angles"
    return f"dopatut's LoRA and PEFT's agree within {gap_pts:.2f} points at both angles"


def comparison_source(kinds, methods) -> str | None:
    """Where chapter 5's comparison of `methods` on foundations `kinds` can be read without training: "cache"
    (every result in this machine's results cache), "bundle" (some from the shipped bundle, computed on the machine
    that built it), or None (something would have to be trained). Reads file names only, as compare() would."""
    from ..foundations import bundle
    from ..foundations.cache import cache_dir
    from .compare import compare_name
    from ..foundations.device import resolve_device
    from .result_cache import read_json
    from .search import Selection, select_name

    device, sources = resolve_device(None), set()

    def read(name):
        value = read_json(cache_dir() / "results" / name)
        if value is not None:
            sources.add("cache")
            return value
        value = bundle.read_json(f"results/{name}")
        if value is not None:
            sources.add("bundle")
        return value

    for kind in kinds:
        for method in methods:
            grid = read(select_name(method, kind, device=device))
            if grid is None:
                return None
            chosen = Selection(method, kind, [{k: tuple(v) if isinstance(v, list) else v for k, v in s.items()}
                                              for s in grid["settings"]], grid["val_accuracy"], grid["curves"],
                               tuple(grid.get("diverged", ()))).chosen
            if read(compare_name(method, kind, chosen, device=device)) is None:
                return None
    return "bundle" if "bundle" in sources else "cache"


def whole_book_words(results: dict, cold: dict) -> str:
    """Why the goals table's whole-book row (bench.py's goal: every chapter with an empty cache and nothing read
    from the shipped bundle, so chapter 5's ten-seed comparison trains) and the sum of the cold-chapter table of
    section 5 (each chapter alone, reading the shipped results) measure different things: one sentence, with when
    and where each was measured, and the sum of the chapters' wall clocks."""
    goal = next((g for g in results.get("goals", []) if g["name"].startswith("whole book")), None)
    after, meta = cold.get("after", {}), cold.get("meta", {}).get("after", {})
    if goal is None or not after:
        return ""
    when = re.match(r"measured ([\d-]+)", goal.get("note", ""))
    book = f"{goal['value']:,.0f} s" + (f", measured {when.group(1)}" if when else "")
    chapters = f"{sum(after.values()):,.0f} s" + (f", measured {meta['date'][:10]}" if meta.get("date") else "")
    return (f"The whole-book row trains everything the chapters read, chapter 5's ten-seed comparison included "
            f"({book}); the chapter table of section 5 times chapters that read the shipped results instead, "
            f"so its wall clocks sum to less ({chapters}).")


def stack_cost_words(seconds: dict[str, dict[str, float]], machine: str, names: dict[str, str]) -> str:
    """The stacks' wall times in words, as rough as they are: `seconds` is {foundation: {method: s}}, each stack
    timed once under the load of its moment. Names the cheapest and dearest stack on the first foundation, and
    how far one method's two stacks (the same arithmetic) lie apart, as the measure of that roughness; it ranks
    nothing finer than that spread."""
    kinds = list(seconds)
    first = seconds[kinds[0]]
    cheapest, dearest = min(first, key=first.get), max(first, key=first.get)
    words = (f"{machine}, on the {names[kinds[0]]}, the cheapest stack was {names[cheapest]} "
             f"({first[cheapest]:.1f} s) and the dearest {names[dearest]} ({first[dearest]:.1f} s).")
    if len(kinds) > 1:
        spread = {m: max(seconds[k][m] for k in kinds) / min(seconds[k][m] for k in kinds) for m in first}
        worst = max(spread, key=spread.get)
        times = " and ".join(f"{seconds[k][worst]:.1f} s" for k in kinds)
        words += (f" Each stack was timed once, under the load of its moment: {names[worst]}'s two stacks, the "
                  f"same arithmetic, took {times}, so read these times as rough, and the order of the methods "
                  f"from the FLOP count.")
    return words
