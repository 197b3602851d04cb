"""dopatut.study.perf and the pure parts of benchmarks/bench.py. Nothing here is timed."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dopatut.foundations.data import load_mnist, rotate, to_inputs
from dopatut.foundations.model import FoundationMLP, MLPConfig
from dopatut.methods.builtin import METHODS, apply_method
from dopatut.study.perf import (FUSED_ADAM, PLAIN_ADAM, RESULTS, adam_shares, cpu_best, forward_flops, speedup_sentence, goals_table, interleaved_best,
                          linear_shapes, load_results, measures_table, protocol_flops, run_flops,
                          training_flops)
from dopatut.study.protocol import LORA_RANK, Protocol
from dopatut.training.stack import fit_many
from dopatut.training.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_flops_by_hand():
    shapes = linear_shapes(FoundationMLP())
    assert shapes == [(784, 256), (256, 256), (256, 10)]
    macs = 784 * 256 + 256 * 256 + 256 * 10  # 268,800 multiply-adds per sample
    # forward + weight grads for all three layers, input grads for the last two only
    assert training_flops(shapes, 1) == 2 * macs + 2 * macs + 2 * (256 * 256 + 256 * 10) == 1_211_392
    assert training_flops(shapes, 128) == 128 * 1_211_392
    assert training_flops(shapes, 1, first_input_grad=True) == 6 * macs
    assert forward_flops(shapes, 10) == 10 * 2 * macs


@pytest.mark.parametrize("hidden", [(256, 256), (64,), (32, 16, 8)])
def test_training_flops_agree_with_torch_counter(hidden):
    torch.manual_seed(0)
    model = FoundationMLP(MLPConfig(hidden=hidden))
    x, y = torch.randn(32, 784), torch.randint(0, 10, (32,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    assert counter.get_total_flops() == training_flops(linear_shapes(model), 32)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    assert counter.get_total_flops() == forward_flops(linear_shapes(model), 32)


@pytest.mark.parametrize("method", [m for m in METHODS if m != "frozen"])
def test_run_flops_count_what_fit_many_computes(method):
    """Every method's count against torch's own counter around a real stacked run: two models, two epochs."""
    torch.manual_seed(0)
    base = FoundationMLP(MLPConfig(hidden=(64, 32)))
    for p in base.parameters():
        p.requires_grad_(False)
    models = [apply_method(base, method, verbose=False, **({"rank": LORA_RANK} if method == "lora" else {}))
              for _ in range(2)]
    x, y = torch.randn(200, 784), torch.randint(0, 10, (200,))
    with FlopCounterMode(display=False) as counter:
        fit_many(models, x, y, [TrainConfig(epochs=2, batch_size=64, seed=s) for s in (0, 1)], progress=False)
    assert counter.get_total_flops() == 2 * run_flops(method, linear_shapes(base), 200, epochs=2, rank=LORA_RANK)


def test_protocol_flops_add_up_its_runs():
    shapes = [(784, 256), (256, 256), (256, 10)]
    small = Protocol(seeds=(0, 1), epochs=1, foundation_epochs=2,
                     grids={"full": {"lr": (1e-3,)}, "head": {"lr": (1e-3, 1e-2)}})
    parts = protocol_flops(small, shapes, n_samples=100)
    kinds = len(small.foundations)
    assert parts["foundations"] == kinds * 2 * 2 * 100 * training_flops(shapes, 1)
    assert parts["settings grids"] == kinds * (run_flops("full", shapes, 100) + 2 * run_flops("head", shapes, 100))
    assert parts["ten-seed comparison"] == kinds * 2 * (run_flops("full", shapes, 100) + run_flops("head", shapes, 100))
    assert sum(protocol_flops().values()) > 2e13  # the book's protocol: over 20 TFLOP of training products


def test_counting_errors_name_the_problem():
    with pytest.raises(ValueError, match="no nn.Linear"):
        linear_shapes(nn.ReLU())
    with pytest.raises(ValueError, match="got -1"):
        training_flops([(2, 3)], -1)
    with pytest.raises(ValueError, match="unknown method 'dopa'"):
        run_flops("dopa", [(2, 3)], 1)


def test_interleaved_best_takes_each_functions_fastest_round_in_turn():
    calls = []
    durations = {"a": iter([9, 5, 7, 6]), "b": iter([9, 3, 4, 8])}  # first of each is the warm-up
    now = [0.0]

    def make(name):
        def fn():
            calls.append(name)
            now[0] += next(durations[name])
        return fn
    best = interleaved_best({"a": make("a"), "b": make("b")}, repeats=3, warmup=1, clock=lambda: now[0])
    assert best == {"a": 5, "b": 3}
    assert calls == ["a", "b", "a", "b", "a", "b", "a", "b"]
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        interleaved_best({}, repeats=0)


def test_cpu_best_times_on_one_thread_and_gives_the_threads_back():
    threads, seen = torch.get_num_threads(), []
    x = torch.randn(64, 64)
    best = cpu_best({"matmul": lambda: seen.append(torch.get_num_threads()) or x @ x}, repeats=3)
    assert seen == [1] * 4 and 0 <= best["matmul"] < 1  # the warm-up and three rounds, each on one thread
    assert torch.get_num_threads() == threads


def test_speedup_sentence_says_whether_timings_follow_the_flops():
    assert speedup_sentence([1.02, 1.15, 1.45], [1.04, 1.17, 1.51]).startswith("in CPU time the measured speed-ups follow")
    assert "do not follow" in speedup_sentence([1.0, 2.6, 3.5], [1.04, 1.08, 1.51])  # far above the FLOPs
    assert "do not follow" in speedup_sentence([1.3, 1.0], [1.3, 1.4])  # falls as more is pruned
    with pytest.raises(ValueError, match="one FLOP ratio per speed-up"):
        speedup_sentence([1.0], [])


def test_pil_pipeline_computes_the_same_inputs_as_dopatut(bench):
    mnist = load_mnist(verbose=False)
    images, labels = mnist.train_images[:50], mnist.train_labels[:50]
    usual = torch.stack([bench.PILDigits(images, labels, 45.0)[i][0].flatten() for i in range(50)])
    ours = to_inputs(rotate(images, 45.0))
    grey_level = 1 / 255 / 0.3081  # one grey level in normalised units
    assert (usual - ours).abs().mean() < grey_level  # same rotation, same normalisation
    assert (usual - ours).abs().max() < 16 * grey_level
    assert (usual - to_inputs(rotate(images, -45.0))).abs().mean() > 10 * grey_level  # and the right direction
    assert bench.PILDigits(images, labels, 45.0)[3][1] == int(labels[3])


def test_goal_and_ratio(bench):
    assert bench.goal("x", 6.0, ">=", 5, ".1f")["met"] is True
    assert bench.goal("x", 4.9, ">=", 5, ".1f")["met"] is False
    assert bench.goal("x", 30.0, "<", 30, ".1f")["met"] is False
    assert bench.goal("x", None, "<", 30, ".1f")["met"] is None
    with pytest.raises(ValueError, match="got '>'"):
        bench.goal("x", 1, ">", 0, ".1f")
    assert bench.ratio(6, 3) == 2 and bench.ratio(1, 0) is None and bench.ratio(None, 2) is None


def test_parse_durations_sums_phases_per_notebook(bench):
    out = ("============ slowest durations ============\n"
           "12.50s call     book/02_foundation.ipynb::02_foundation\n"
           "0.50s setup    book/02_foundation.ipynb::02_foundation\n"
           "3.00s call     book/01_modes.ipynb::01_modes\n"
           "30.45s call     tests/test_colab.py::test_a_chapter_runs[01_modes.ipynb]\n"
           "1 passed in 16.0s\n")
    assert bench.parse_durations(out) == {"02_foundation.ipynb": 13.0, "01_modes.ipynb": 3.0}


def test_book_time_is_recorded_from_a_ci_log(bench, tmp_path):
    names = sorted(p.name for p in (ROOT / "book").glob("*.ipynb"))
    log = tmp_path / "ci.log"
    lines = [f"{10.0 + i:.2f}s call     book/{name}::{name}" for i, name in enumerate(names)]
    log.write_text("\n".join(["== slowest 20 durations ==", *lines, "==== 99 passed, 2 skipped in 500.00s ===="]))
    out = tmp_path / "results"
    out.mkdir()
    (out / "latest.json").write_text(RESULTS.read_text())
    assert bench.book_from_log(log, out) == 0
    book = json.loads((out / "book.json").read_text())
    assert book["seconds"] == pytest.approx(sum(10.0 + i for i in range(len(names)))) and book["passed"]
    assert json.loads((out / "latest.json").read_text())["book"] == book
    log.write_text("\n".join(lines[1:]))  # one notebook missing: refused, naming it
    with pytest.raises(SystemExit, match=names[0]):
        bench.book_from_log(log, out)

def fake_results():
    return {
        "meta": {"date": "2026-01-01 00:00 UTC", "host": "h", "cpu": "c", "threads": 2, "torch": "t",
                 "load_start": 0.1, "load_end": 0.2, "seconds": 100.0},
        "throughput": {"n_samples": 100, "samples_per_s": {"dopatut": 30_000.0, "usual, num_workers=0": 3_000.0,
                                                          "usual, num_workers=2": 5_000.0}},
        "limit": {"peak_flops": 1e11, "achieved_flops": 3e10, "fraction_of_peak": 0.3, "gemm_only_fraction": 0.5,
                  "seconds_per_step": {"forward+backward": 1.0, "+ Adam (torch's default on CPU)": 1.5,
                                       "+ Adam(fused=True) (dopatut's fit)": 1.25},
                  "fraction_if_step": {"+ Adam (torch's default on CPU)": 0.25,
                                       "+ Adam(fused=True) (dopatut's fit)": 0.3}, "fraction_batch_1024": 0.6,
                  "fused_adam_max_weight_diff": 0.0},
        "lora": {"epochs": 3, "max_gap_pts": 0.1, "speedup_vs_peft": 1.2,
                 "dopatut": {"accuracy": {"45": 0.975}}, "peft": {"accuracy": {"45": 0.976}},
                 "seconds_per_step": {"dopatut": 0.001, "peft": 0.0012}},
        "seed": {"seconds_pipeline": 25.0, "seconds_process": 27.0, "peak_rss_mb": 900.0},
        "inference": {"n_images": 10_000, "seconds": {"frozen base": 0.01, "LoRA merged": 0.01}},
    }


def test_summarise_judges_goals_from_the_numbers(bench):
    goals, rows = bench.summarise(fake_results())
    by_name = {g["name"]: g for g in goals}
    throughput = by_name["training throughput, dopatut / fastest usual DataLoader"]
    assert throughput["value"] == pytest.approx(6.0) and throughput["met"]  # against the faster usual loader
    limit = by_name["training FLOP/s, fraction of matmul peak"]
    assert limit["met"] is False and "Adam takes 20% of a step" in limit["note"]  # fused: 0.25 of 1.25 s
    assert "default Adam on CPU: 33%" in limit["note"]  # 0.5 of 1.5 s
    assert by_name["one seed: foundation + Dopamine + LoRA + evaluation"]["met"] is True
    assert by_name["whole book execution, empty cache (pytest --nbmake book)"]["met"] is None  # not measured
    book = {"seconds": 400.0, "cache_warm": False, "date": "today"}
    goals, _ = bench.summarise({**fake_results(), "book": book})
    met = {g["name"]: g for g in goals}["whole book execution, empty cache (pytest --nbmake book)"]
    assert met["met"] is False and "cache empty" in met["note"]  # 400 s against the 300 s goal
    assert any("num_workers=0" in r["name"] and r["ratio"] == pytest.approx(10.0) for r in rows)


def test_tables_render_every_goal_and_row(bench):
    r = fake_results()
    r["goals"], r["rows"] = bench.summarise(r)
    goals, measures = goals_table(r).markdown(), measures_table(r).markdown()
    assert goals.count("\n") == len(r["goals"]) + 1 and "**no**" in goals and "| yes |" in goals
    assert measures.count("\n") == len(r["rows"]) + 1 and "10.00×" in measures
    assert "2026-01-01" in bench.render(r)


def test_goals_page_keeps_rows_alignment_and_bold(bench):
    r = fake_results()
    r["goals"], r["rows"] = bench.summarise(r)
    page = goals_table(r).html()
    assert page.count("<tr>") == len(r["goals"]) + 1
    assert '<td style="text-align:right">6.0x</td>' in page and "<b>no</b>" in page and "**" not in page


def test_committed_results_are_readable():
    with pytest.raises(FileNotFoundError, match="bench.py"):
        load_results(ROOT / "no-such-file.json")
    if not RESULTS.is_file():
        pytest.skip("no committed benchmark results yet")
    r = load_results()
    assert {"meta", "goals", "rows"} <= set(r) and json.dumps(r)
    assert goals_table(r).markdown().count("\n") == len(r["goals"]) + 1


def test_adam_shares_name_the_row_fit_used():
    steps = {"forward+backward": 1.0, PLAIN_ADAM: 2.0, FUSED_ADAM: 1.25}
    assert adam_shares(steps) == (FUSED_ADAM, pytest.approx(0.2), pytest.approx(0.5))
    del steps[FUSED_ADAM]  # a torch without a fused Adam: fit used the default
    assert adam_shares(steps) == (PLAIN_ADAM, pytest.approx(0.5), pytest.approx(0.5))


def test_saved_bytes_counts_what_backward_keeps(bench):
    """A frozen first layer keeps nothing for its weight; the kept bytes grow with the batch."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    full = bench.saved_bytes(model, x, y)
    assert bench.saved_bytes(model, torch.cat([x, x]), torch.cat([y, y])) > 1.9 * full - 64
    model[0].requires_grad_(False)
    assert bench.saved_bytes(model, x, y) <= full - 8 * 6 * 4  # x itself is no longer kept for W1's gradient
    assert all(p.grad is None for p in model.parameters())


def test_the_cold_table_shows_both_columns_and_the_goal(tmp_path):
    from dopatut.study.perf import cold_table, load_cold

    path = tmp_path / "cold.json"
    path.write_text(json.dumps({"before": {"04_baselines": 500.0}, "after": {"04_baselines": 70.2, "05_seeds": 75.0},
                                "after_cpu": {"04_baselines": 30.0}, "goal_seconds": 60}))
    table = cold_table(load_cold(path)).markdown()
    assert "| 04_baselines | 500.0 | - | 70.2 | 30.0 | ✔ |" in table, table  # the CPU time decides where measured
    assert "| 05_seeds | - | - | 75.0 | - | ✘ |" in table, table
    assert load_cold(tmp_path / "none.json") == {}
    after = cold_table(load_cold(path), goal_column=False, before=False)
    assert after.header == ("chapter", "wall clock (s)", "CPU (s)")
    assert ("04_baselines", "70.2", "30.0") in after.rows and ("05_seeds", "75.0", "-") in after.rows


def test_a_bar_in_a_measure_stays_in_its_cell():
    from dopatut.study.perf import measures_table
    page = measures_table({"rows": [{"name": "|a - b| in points", "dopatut": "0.2"}]}).html()
    assert page.count("<td") == 4 and "|a - b| in points</td>" in page, page


def test_the_measures_tables_split_by_topic_and_read_every_ratio_one_way():
    from dopatut.study.perf import RATIO_HEADER, measures_tables
    rows = [{"name": "training samples/s (batch 128) vs usual", "dopatut": "9", "reference": "1", "ratio": 9.0},
            {"name": "inference, 10,000 images: frozen base (ms)", "dopatut": "2", "reference": "2 (frozen base)",
             "ratio": 1.0},  # the base against itself: left out
            {"name": "inference, 10,000 images: LoRA merged (ms)", "dopatut": "1", "reference": "2 (frozen base)",
             "ratio": 2.0},
            {"name": "transformer: MB kept for backward, Dopamine vs LoRA on attention", "dopatut": "2",
             "reference": "1", "ratio": 0.5},
            {"name": "transformer: MiB kept for backward per batch", "dopatut": "16.1", "reference": "11.0",
             "ratio": 11.04 / 16.05},  # 0.688 unrounded; from the printed values, 11.0 / 16.1 = 0.683
            {"name": "transformer foundation, 3 epochs (s)", "dopatut": "44"},
            {"name": "full recipe, |fit_many - fit| accuracy at 45 deg", "dopatut": "0.1"},
            {"name": "full recipe, |fit_many - fit| (points): foundation, Dopamine", "dopatut": "0.20, 0.09"}]
    tables = measures_tables({"rows": rows})
    stacked_title = "Stacked against one at a time: test accuracy at 45°"
    assert list(tables) == ["Training the MLP", stacked_title, "Transformer",
                            "Inference on 10,000 images", "Whole runs"]
    training = tables["Training the MLP"].markdown()
    assert "9.00×" in training and "full recipe" not in training, training
    assert "fit_many" not in tables["Stacked against one at a time: test accuracy at 45°"].markdown()
    transformer = tables["Transformer"]
    assert transformer.header[1:3] == ("Dopamine", "LoRA on attention (r=4)")
    assert transformer.rows == (("MB kept for backward", "2", "1", "0.50×"),  # the headers say who is compared
                                ("MiB kept for backward per batch", "16.1", "11.0", "0.68×"))  # as printed
    inference = tables["Inference on 10,000 images"]
    assert inference.rows == (("LoRA merged", "1", "2", "2.00×"),)
    assert all(t.header[-1] == RATIO_HEADER for k, t in tables.items() if k not in ("Whole runs", stacked_title))
    assert len(RATIO_HEADER) <= 24  # a header of a few words: it must not wrap into four lines
    # the stacks' accuracy differences have no reference and no ratio: a table of their own, one value a row,
    # and a row with two values becomes two rows
    stacked = tables["Stacked against one at a time: test accuracy at 45°"]
    assert stacked.header == ("measure", "difference (points)"), stacked.header
    assert [r[1] for r in stacked.rows][-2:] == ["0.20", "0.09"]
    assert [r[0] for r in stacked.rows][-2:] == ["foundation", "Dopamine"], stacked.rows
    # a fraction of the matmul peak is no rival's ratio: with the whole runs' "this run" against "at the peak"
    peak = measures_tables({"rows": [{"name": "training GFLOP/s vs float32 matmul peak", "dopatut": "41.8",
                                      "reference": "141.9", "ratio": 0.29}]})
    assert list(peak) == ["Whole runs"] and peak["Whole runs"].rows[0][1:] == ("41.8", "141.9")  # no ratio
    assert len(tables["Whole runs"].header) == 3  # no ratio there, so no ratio column
    # the long labels wrap, so a table fits the text width (the stylesheet keeps other first columns whole)
    assert all('<td style="text-align:left;white-space:normal">' in t.html() for t in tables.values())


def test_cold_words_tell_a_chapter_slowed_by_load_from_one_that_costs_more():
    from dopatut.study.perf import cold_words
    meta = {"before": {"load_start": 4.0}, "after": {"load_start": 6.5}}
    record = {"before": {"08": 73.0, "09": 220.0}, "after": {"08": 104.2, "09": 42.0},
              "before_cpu": {"08": 67.6, "09": 170.0}, "after_cpu": {"08": 48.8, "09": 18.0}, "meta": meta}
    assert cold_words(record).startswith("08 took longer after than before by the wall clock, but less CPU time: "
                                         "the difference is the machine's load (load average 6.5")
    record["after_cpu"]["08"] = 70.0
    assert cold_words(record) == ("08 took more CPU time after than before: reading the bundle cost more there "
                                  "than it saved.")
    record["after"]["08"] = 50.0
    assert cold_words(record) == "Every chapter timed both ways took less time after than before."


def test_lora_agreement_says_exactly_at_a_zero_gap():
    from dopatut.study.perf import lora_agreement
    assert lora_agreement(0.0) == "dopatut's LoRA and PEFT's agree exactly at both angles"
    assert lora_agreement(0.12).endswith("agree within 0.12 points at both angles")


def test_lora_full_words_say_what_the_clock_shows_and_give_a_verdict_the_timings_support():
    from dopatut.study.perf import lora_full_words
    names = {"mixture": "mixture foundation", "upright": "upright foundation"}
    slow_step, fast_step = {"lora": 0.00358, "full": 0.00322}, {"lora": 0.0019, "full": 0.0032}
    agree = {"mixture": {"lora": 20.0, "full": 25.0}, "upright": {"lora": 21.0, "full": 28.0}}
    assert lora_full_words(0.59, agree, names, slow_step, 0.07) == ""
    split = {"mixture": {"lora": 36.6, "full": 24.7}, "upright": {"lora": 20.8, "full": 27.8}}
    words = lora_full_words(0.59, split, names, slow_step, 0.07)
    assert "59%" in words and "longer on the mixture foundation (and less on the upright foundation)" in words
    assert "3.58 ms against 3.22 ms for a full one" in words and words.count(". ") == 1, words
    # 11% apart against a noise of 7%, and the stacks split: not settled
    assert "do not settle (the steps differ by 11%, the timing noise of section 6 is 7%; the stacks" in words, words
    both = {"mixture": {"lora": 30.0, "full": 25.0}, "upright": {"lora": 31.0, "full": 28.0}}
    words = lora_full_words(0.59, both, names, slow_step, 0.07)
    assert "do not settle" in words and "disagree" not in words  # the stacks agree, but 11% < twice the noise
    words = lora_full_words(0.59, both, names, slow_step, 0.03)  # 11% > twice a noise of 3%: settled
    assert "mixture foundation and upright foundation" in words and "thin" in words and "settle" not in words
    words = lora_full_words(0.59, both, names, fast_step, 0.07)  # the step follows the FLOPs: the stacks saw load
    assert "not LoRA's doing" in words and "load" in words and words.count(". ") == 1, words


def test_saved_shapes_counts_what_backward_keeps_and_nothing_when_all_is_frozen():
    from dopatut.study.perf import saved_shapes
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    counts = saved_shapes(model, x, y)
    assert counts[(5, 8)] >= 2  # the ReLU's output, and the second layer's input
    for p in model.parameters():
        p.requires_grad_(False)
    assert saved_shapes(model, x, y) == {}


def test_whole_book_words_sets_the_trained_book_against_the_chapters_that_read_the_bundle():
    from dopatut.study.perf import whole_book_words

    results = {"goals": [{"name": "whole book execution, empty cache", "value": 533.51,
                          "note": "measured 2026-12-01 14:52 UTC; cache empty"}]}
    cold = {"after": {"01_modes": 10.0, "05_seeds": 30.4}, "meta": {"after": {"date": "2026-12-07 08:00 UTC"}}}
    words = whole_book_words(results, cold)
    assert "(534 s, measured 2026-12-01)" in words and "less (40 s, measured 2026-12-07)" in words, words
    assert whole_book_words(results, {}) == "" and whole_book_words({"goals": []}, cold) == ""


def test_stack_cost_words_names_the_extremes_and_the_roughness_of_single_timings():
    from dopatut.study.perf import stack_cost_words

    names = {"mixture": "mixture foundation", "upright": "upright foundation", "lora": "LoRA (r = 4)",
             "head": "head-only", "full": "full fine-tuning"}
    seconds = {"mixture": {"lora": 36.6, "head": 8.4, "full": 30.0},
               "upright": {"lora": 20.8, "head": 8.0, "full": 29.0}}
    words = stack_cost_words(seconds, "Here", names)
    assert words.startswith("Here, on the mixture foundation, the cheapest stack was head-only (8.4 s) and the "
                            "dearest LoRA (r = 4) (36.6 s).")
    assert "LoRA (r = 4)'s two stacks, the same arithmetic, took 36.6 s and 20.8 s" in words
    assert "Each stack" not in stack_cost_words({"mixture": seconds["mixture"]}, "Here", names)
