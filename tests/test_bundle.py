"""The shipped results bundle: complete for the current code, read on an empty cache with one line, skipped by
DOPATUT_RECOMPUTE=1, and the check that CI runs against it (on small fake caches, nothing trained)."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from dopatut.foundations import bundle
from dopatut.study import compare
from dopatut.study import pipeline
from dopatut.study import search
from dopatut.study.budget import budget_name
from dopatut.study import bundle_check
from dopatut.study.bundle_check import ACROSS, CHOICE, PACKAGE, check, contents, missing_from_bundle
from dopatut.study.compare import FOUNDATIONS, compare as run_compare, select
from dopatut.study.pipeline import foundation, foundation_path, foundation_records


@pytest.fixture
def shipped(monkeypatch):
    """The bundle on, as for a reader (conftest turns it off for the other tests)."""
    monkeypatch.delenv("DOPATUT_RECOMPUTE", raising=False)
    monkeypatch.setenv("DOPATUT_DEVICE", "cpu")
    monkeypatch.setattr(bundle, "_told", set())


def _no_training(*args, **kwargs):
    raise AssertionError("trained although the bundle has it")


def test_the_bundle_holds_what_the_current_code_reads():
    missing = missing_from_bundle()
    assert not missing, (f"the shipped bundle lacks {missing[:3]}: the code or the protocol changed; "
                         f"rebuild it with python {bundle.REBUILD}")


def test_the_bundle_is_small_and_git_friendly():
    files = [p for p in PACKAGE.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 5e6
    for path in files:
        if path.suffix == ".json":
            text = path.read_text()
            assert text == bundle.encode(json.loads(text)), path  # one value a line
    assert {p.relative_to(PACKAGE).as_posix() for p in files} == {bundle.MANIFEST, *contents(PACKAGE, lambda name: json.loads(
        (PACKAGE / name).read_text()))}  # nothing else rides along
    assert set(bundle.made_on()) == {"torch", "kernels", "cpu_id", "cpu"}  # how the CPU that made it rounds


def test_every_protocol_result_and_foundation_is_shipped_under_the_name_the_code_builds(shipped, monkeypatch):
    """A key that changes (a field added to TrainConfig's dict, a method's fingerprint, the protocol's dict)
    renames the results, and the shipped bundle no longer has them: this names which."""
    from dopatut.study.beyond import STUDY
    from dopatut.methods.builtin import METHODS
    from dopatut.study.protocol import PROTOCOL
    monkeypatch.setattr(compare, "specialise_many", _no_training)
    monkeypatch.setattr(pipeline, "_train_foundations", _no_training)
    missing = []
    for kind in FOUNDATIONS:
        for method in METHODS:
            names = [compare.select_name(method, kind, device="cpu")]
            if (PACKAGE / "results" / names[0]).is_file():  # the grid's choice, as the bundle made it
                names.append(compare.compare_name(method, kind, select(method, kind, device="cpu").chosen,
                                                  device="cpu"))
            missing += [n for n in names if not (PACKAGE / "results" / n).is_file()]
    names = [f"foundations/{foundation_path(spec, 0, 'cpu').name}"  # the weights of the chapters' seed 0
             for spec in [*FOUNDATIONS.values(), *STUDY.specs.values()]]
    names += [f"records/{foundation_path(FOUNDATIONS['mixture'], seed, 'cpu').stem}.json" for seed in PROTOCOL.seeds]
    missing += [n for n in names if not (PACKAGE / n).is_file()]
    assert not missing, f"not in the shipped bundle under these names (a key changed): {missing}"


def test_the_gates_settings_moved_out_of_trainconfig_and_no_name_changed():
    """The names the code built while TrainConfig held the gates' temperature and sparsity (their keys hash it):
    the keys keep the two at the values they had (pipeline.RETIRED_TRAIN_KEY), so the code builds them still, and
    the bundle has them."""
    from dopatut.study.budget import budget_name
    from dopatut.study.result_cache import result_name
    from dopatut.study.sweeps import _variant_key
    annealed = {"lr": 0.03, "temperature": (1.0, 0.1)}
    mixture, upright = (foundation_path(FOUNDATIONS[kind], 0, "cpu").name for kind in ("mixture", "upright"))

    def variant(changes):
        key = _variant_key("dopamine", changes, 0, "upright", 45.0, "cpu")
        return result_name("sweep-variant-upright-dopamine", key)
    built = {
        "foundations/foundation-h256x256-a0_45-s0-dbbbc004cf.pt": f"foundations/{mixture}",
        "foundations/foundation-h256x256-a0-s0-496fe367e1.pt": f"foundations/{upright}",
        "results/select-mixture-dopamine-0671d08eafdc.json": f"results/{compare.select_name('dopamine', 'mixture')}",
        "results/compare-mixture-dopamine-4874c2424f12.json":
            f"results/{compare.compare_name('dopamine', 'mixture', annealed)}",
        "results/compare-upright-threshold_only-33e27dd2d3a9.json":
            f"results/{compare.compare_name('threshold_only', 'upright', {**annealed, 'lr': 0.1})}",
        "results/budget-mixture-dopamine-26173156daab.json": f"results/{budget_name('dopamine', 'mixture', annealed)}",
        "results/sweep-variant-upright-dopamine-33d9671180b9.json": f"results/{variant({'temperature': (1.0, 1.0)})}",
        "results/sweep-variant-upright-dopamine-15281909cf87.json": f"results/{variant({'sparsity': 2.0})}",
    }
    assert {old: now for old, now in built.items() if old != now} == {}
    assert [name for name in built if not (PACKAGE / name).is_file()] == []


def test_a_cold_chapter_reads_the_bundle_and_says_so_once(shipped, monkeypatch, capsys):
    monkeypatch.setattr(compare, "specialise_many", _no_training)
    monkeypatch.setattr(search, "specialise_many", _no_training)
    monkeypatch.setattr(pipeline, "_train_foundations", _no_training)
    assert not bundle.was_read()
    runs = run_compare("mixture", progress=False)
    sels = [select(m, "upright") for m in ("dopamine", "lora")]
    assert bundle.was_read() and not bundle.was_read("records")
    out = capsys.readouterr().out
    assert out.count("shipped bundle") == 1 and "DOPATUT_RECOMPUTE=1" in out, out
    assert len(runs["dopamine"]) == 10 and all(0.9 < r.accuracy["45"] <= 1 for r in runs["dopamine"])
    assert sels[1].chosen.keys() == {"lr", "alpha"}
    assert not (Path(compare.cache_dir()) / "results").exists()  # read from the package, not copied


def test_a_shipped_foundation_loads_and_matches_its_record(shipped, capsys, monkeypatch):
    monkeypatch.setattr(pipeline, "_train_foundations", _no_training)
    assert not bundle.was_read("foundations")
    base = foundation(0)
    assert "loaded from the shipped bundle" in capsys.readouterr().out and bundle.was_read("foundations")
    assert not any(p.requires_grad for p in base.parameters())
    records = foundation_records(range(10))
    assert records[0]["accuracy"] == base.meta["accuracy"] and len(records[9]["curves"]["45"]) == 5


def test_recompute_skips_the_bundle(shipped, monkeypatch):
    calls = []
    monkeypatch.setattr(pipeline, "_train_foundations", lambda *a, **k: calls.append(1) or _no_training())
    with pytest.raises(AssertionError, match="trained although"):
        foundation(0, recompute=True)
    monkeypatch.setenv("DOPATUT_RECOMPUTE", "1")
    with pytest.raises(AssertionError, match="trained although"):
        foundation(0)
    assert len(calls) == 2
    name = f"results/{compare.select_name('lora', 'mixture')}"
    assert bundle.read_json(name, recompute=True) is None and bundle.read_json(name, recompute=False) is not None
    monkeypatch.setenv("DOPATUT_RECOMPUTE", "maybe")
    with pytest.raises(ValueError, match="DOPATUT_RECOMPUTE must be 1 or 0"):
        bundle.recompute_requested()


def test_read_shipped_keeps_only_the_named_kind_from_the_bundle_under_recompute(shipped, monkeypatch):
    chosen = select("gain_only", "upright").chosen
    budget = f"results/{budget_name('gain_only', 'upright', chosen)}"
    grid = f"results/{compare.select_name('gain_only', 'upright')}"
    monkeypatch.setenv("DOPATUT_RECOMPUTE", "1")
    assert bundle.read_json(budget) is None and bundle.read_json(grid) is None
    monkeypatch.setenv("DOPATUT_READ_SHIPPED", "budget")
    assert bundle.read_json(budget) is not None and bundle.read_json(grid) is None
    assert bundle.read_json(budget, recompute=True) is None  # an explicit recompute always recomputes
    from dopatut.study.beyond import chapter_results
    vit = chapter_results(lambda n: json.loads((PACKAGE / n).read_text()))
    arm, curve, vit_grid = (next(n for n in vit if f"vit-{k}-" in n) for k in ("arm", "curve", "grid"))
    monkeypatch.setenv("DOPATUT_READ_SHIPPED", "budget,vit-curve,vit-arm")  # as CI
    assert bundle.read_json(arm) is not None and bundle.read_json(curve) is not None
    assert bundle.read_json(vit_grid) is None  # chapter 9's grids are recomputed


def test_the_check_notes_budget_stacks_it_did_not_recompute_and_fails_a_missing_spot_check(tmp_path, shipped):
    from dopatut.study.budget import SPOT_CHECK

    run = _fake_run(tmp_path)
    skipped = [(k, m) for k in FOUNDATIONS for m in ("lora", "head") if (k, m) not in SPOT_CHECK]
    for kind, method in skipped:
        (run / "results" / budget_name(method, kind, select(method, kind).chosen)).unlink()
    report = check(run)
    assert report.ok and sum("read from the bundle, not recomputed" in n for n in report.notes) == len(skipped)
    kind, method = SPOT_CHECK[0]
    (run / "results" / budget_name(method, kind, select(method, kind).chosen)).unlink()
    report = check(run)
    assert not report.ok and f"{kind} {method}: the budget study is missing" in str(report)


def test_the_check_notes_chapter_9_arms_it_did_not_recompute_and_fails_a_missing_spot_check(tmp_path, shipped):
    from dopatut.study.beyond import SPOT_CHECK, chapter_entries

    run = _fake_run(tmp_path)
    entries = chapter_entries(lambda n: json.loads((run / n).read_text()))
    skipped = [name for kind, arm, name in entries if "vit-grid-" not in name and (kind, arm) not in SPOT_CHECK]
    assert len(skipped) == 2 * (len(entries) // 3 - len(SPOT_CHECK))  # every other arm's curve and seeds
    for name in skipped:  # what CI read from the bundle (DOPATUT_READ_SHIPPED=vit-curve,vit-arm): not in its cache
        (run / name).unlink()
    report = check(run)
    notes = [n for n in report.notes if "chapter 9's" in n and "read from the bundle, not recomputed" in n]
    assert report.ok and len(notes) == len(skipped), str(report)
    assert any(n.startswith("upright vit-arm-full: chapter 9's arm was read") for n in notes), notes
    spot = next(name for kind, arm, name in entries if (kind, arm) == SPOT_CHECK[0] and "vit-arm-" in name)
    (run / spot).unlink()
    report = check(run)
    assert not report.ok and f"has no {spot}" in str(report) and "--spot-check" in str(report), str(report)


def test_the_shipped_curves_choose_the_chapters_epochs():
    from dopatut.study import beyond

    read = lambda n: json.loads((PACKAGE / n).read_text())
    curves = {}
    for kind, arm, name in beyond.chapter_entries(read):
        if "vit-curve-" in name:
            curves.setdefault(kind, {})[arm] = read(name)["curve"]
    assert {kind: list(c) for kind, c in curves.items()} == {"mixture": list(beyond.STUDY.arms),
                                                            "upright": list(beyond.STUDY.upright_arms)}
    assert all(len(c) == beyond.STUDY.curve_epochs for by_arm in curves.values() for c in by_arm.values())
    assert beyond.check_budget(curves) == beyond.STUDY.epochs


def _fake_run(tmp_path) -> Path:
    """A cache that looks like CI's after a run: the bundle's results and foundations, as the cache names them."""
    run = tmp_path / "run"
    for name, source in contents(run, lambda n: json.loads((PACKAGE / n).read_text())).items():
        source.parent.mkdir(parents=True, exist_ok=True)
        if name.startswith("records/"):
            continue  # the mixture's checkpoints: seed 0's is shipped, the others are faked below
        shutil.copy(PACKAGE / name, source)
    spec = FOUNDATIONS["mixture"]
    seed0 = torch.load(run / foundation_path(spec, 0).name, weights_only=True)
    for seed in range(1, 10):
        record = json.loads((PACKAGE / "records" / f"{foundation_path(spec, seed).stem}.json").read_text())
        torch.save({**seed0, "meta": record}, run / foundation_path(spec, seed).name)
    return run


def _edit(path: Path, change) -> None:
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value))


def _compare_file(method: str, kind: str) -> str:
    return f"results/{compare.compare_name(method, kind, select(method, kind).chosen)}"


def test_on_a_cpu_that_rounds_alike_every_number_must_be_equal(tmp_path, shipped):
    run = _fake_run(tmp_path)
    report = check(run, across=False)
    assert report.ok and all(d == 0.0 for d, _ in report.largest.values()) and report.compared >= 2 * 8 * 10 * 2 + 100, str(report)  # seeds x angles, grids
    assert "it rounds alike" in str(report)
    name = _compare_file("lora", "upright")
    _edit(run / name, lambda rows: rows[3]["accuracy"].update({"45": rows[3]["accuracy"]["45"] - 1e-4}))  # one image
    report = check(run, across=False)
    assert not report.ok and "upright lora seed 3 at 45°" in str(report) and bundle.REBUILD in str(report)


def test_across_cpus_seeds_are_draws_but_a_moved_mean_fails(tmp_path, shipped):
    """As measured between an AVX2 and an AVX512 CPU: each seed may move by several points, in both directions;
    what the book reports, the mean, must stay within its interval."""
    run = _fake_run(tmp_path)
    name = _compare_file("lora", "upright")
    scatter = [0.05, -0.04, 0.06, -0.07, 0.03, -0.03, 0.02, -0.05, 0.04, -0.01]  # mean 0, single seeds up to 7 points
    _edit(run / name, lambda rows: [r["accuracy"].update({"0": r["accuracy"]["0"] + d}) for r, d in zip(rows, scatter)])
    report = check(run, across=True)
    assert report.ok and "rounds otherwise" in str(report) and "not compared: another draw" in str(report), str(report)
    assert not check(run, across=False).ok  # where it rounds alike, a moved seed is a stale bundle
    shift = 2 * ACROSS["mean"]  # every seed a little, the same way: no seed far, but the mean moved
    _edit(run / name, lambda rows: [r["accuracy"].update({"0": r["accuracy"]["0"] - d - shift}) for r, d in zip(rows, scatter)])
    report = check(run, across=True)
    assert not report.ok and "upright lora mean over seeds at 0°" in str(report), str(report)
    assert len(report.failures) == 1, report.failures


def test_which_rule_applies_is_read_from_the_bundles_manifest(tmp_path, shipped, monkeypatch):
    run, shipped_copy = _fake_run(tmp_path), tmp_path / "shipped"
    shutil.copytree(PACKAGE, shipped_copy)
    here = bundle_check.rounding()
    for kernels, across in ((here["kernels"], False), ("AVX2" if here["kernels"] != "AVX2" else "AVX512", True)):
        (shipped_copy / bundle.MANIFEST).write_text(bundle.encode({"made_on": {**here, "kernels": kernels}}))
        assert check(run, shipped_copy).across is across
    (shipped_copy / bundle.MANIFEST).write_text(bundle.encode({"made_on": {**here, "cpu_id": "GenuineIntel/6/143"}}))
    assert check(run, shipped_copy).across  # the same kernels on another CPU: MKL's own choice of kernels differs
    monkeypatch.setattr(bundle, "made_on", lambda: {**here, "torch": "0.0"})  # another torch rounds otherwise too
    assert bundle_check.tolerance("seed") is None and bundle_check.tolerance("single") == ACROSS["single"]
    monkeypatch.setattr(bundle, "made_on", lambda: here)
    assert bundle_check.tolerance("seed") == 0.0


def test_the_check_compares_chapter_7_and_9_results_and_fails_a_moved_one(tmp_path, shipped):
    from dopatut.study.sweeps import chapter_results

    run = _fake_run(tmp_path)
    name = chapter_results()[0]  # an angle sweep: a list of results, one per angle
    angle = next(iter(json.loads((run / name).read_text())[2]["accuracy"]))
    _edit(run / name, lambda rows: rows[2]["accuracy"].update({angle: rows[2]["accuracy"][angle] - 2 * ACROSS["single"]}))
    report = check(run, across=True)
    assert not report.ok and "sweep-angles-mixture" in str(report) and f"[2].accuracy.{angle}" in str(report), str(report)
    (run / name).unlink()
    assert f"has no {name}" in str(check(run))


def test_a_transformer_grid_that_widened_further_is_compared_where_both_tried(tmp_path, shipped):
    from dopatut.study.beyond import chapter_results

    run = _fake_run(tmp_path)
    grid = next(n for n in chapter_results(lambda n: json.loads((PACKAGE / n).read_text())) if "vit-grid-" in n)
    pairs = json.loads((run / grid).read_text())
    worst = min(pairs, key=lambda pair: pair[1])
    _edit(run / grid, lambda v: v.append([worst[0] * 9, worst[1] - 0.2]))  # one more rate tried, far below the best
    assert check(run, across=True).ok
    _edit(run / grid, lambda v: v.__setitem__(v.index(worst), [worst[0], worst[1] - 2 * ACROSS["grid"]]))
    report = check(run, across=True)
    assert not report.ok and f"at rate {worst[0]:g}" in str(report), str(report)


def test_a_verdict_that_flips_fails_unless_its_interval_touches_zero(tmp_path, shipped):
    run = _fake_run(tmp_path)
    sel = select("bitfit", "upright")
    name = f"results/{compare.compare_name('bitfit', 'upright', sel.chosen)}"
    dop = [r.accuracy["45"] for r in run_compare("upright", ("dopamine",), progress=False)["dopamine"]]
    gaps = [0.004, 0.005, 0.006, 0.004, 0.005, 0.006, 0.004, 0.005, 0.006, 0.005]  # bitfit beats Dopamine clearly
    _edit(run / name, lambda rows: [r["accuracy"].update({"45": d + g}) for r, d, g in zip(rows, dop, gaps)])
    report = check(run)
    flipped = [f for f in report.failures if "upright: Dopamine" in f and "bitfit in this run" in f]
    assert flipped and "loses to bitfit in this run" in flipped[0], str(report)


def test_a_near_tie_in_a_grid_passes_and_is_reported(tmp_path, shipped):
    run, shipped_copy = _fake_run(tmp_path), tmp_path / "shipped"
    shutil.copytree(PACKAGE, shipped_copy)
    sel = select("bitfit", "mixture")
    best, other = sel.best, next(i for i in range(len(sel.settings)) if i != sel.best)
    name = f"results/{compare.select_name('bitfit', 'mixture')}"
    top = sel.val_accuracy[best]
    _edit(shipped_copy / name, lambda v: v["val_accuracy"].__setitem__(other, top - CHOICE / 4))
    _edit(run / name, lambda v: v["val_accuracy"].__setitem__(other, top + CHOICE / 4))  # this run picks it
    for name_of in (compare.compare_name, budget_name):  # this run's stacks, named by its choice
        shutil.copy(run / "results" / name_of("bitfit", "mixture", sel.chosen),
                    run / "results" / name_of("bitfit", "mixture", sel.settings[other]))
    report = check(run, shipped_copy, across=True)
    assert report.ok and "near-tie: mixture bitfit" in str(report), str(report)
    _edit(run / name, lambda v: v["val_accuracy"].__setitem__(other, top + 2 * CHOICE))  # a clear other choice
    report = check(run, shipped_copy, across=True)
    assert not report.ok and "points above the bundle's choice" in str(report), str(report)


def test_the_results_words_agree_with_what_the_read_printed(shipped, monkeypatch):
    assert bundle.results_words().startswith("trained on this machine by the first run")
    monkeypatch.setenv("DOPATUT_RECOMPUTE", "1")
    assert "`DOPATUT_RECOMPUTE=1` skips the shipped bundle" in bundle.results_words()
    monkeypatch.delenv("DOPATUT_RECOMPUTE")
    bundle.tell_once("results", bundle.results_line())  # what a read from the bundle prints
    assert bundle.results_words().startswith("read from the shipped bundle")
