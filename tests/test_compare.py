import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

import dopatut.compare as compare  # noqa: E402
from dopatut.compare import VARIANTS, accuracies, run_seeds, summarise, sweep  # noqa: E402
from dopatut.compare_plots import plot_differences, plot_paired, plot_tradeoff  # noqa: E402
from dopatut.model import MLPConfig  # noqa: E402
from dopatut.pipeline import FoundationSpec, Result  # noqa: E402
from dopatut.stats import paired_difference  # noqa: E402
from dopatut.train import TrainConfig  # noqa: E402

TINY = FoundationSpec(model=MLPConfig(hidden=(16, 16)), train=TrainConfig(epochs=1, batch_size=512))


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def fake_runs():
    acc = {0: (0.96, 0.97, 0.98), 1: (0.95, 0.975, 0.985), 2: (0.955, 0.972, 0.979)}
    return {seed: {"frozen": Result("frozen", 0, {"0": 0.97, "45": f}),
                   "dopamine": Result("dopamine", 1024, {"0": 0.96, "45": d}),
                   "lora": Result("lora", 7272, {"0": 0.95, "45": lo})}
            for seed, (f, d, lo) in acc.items()}


def test_accuracies_follow_seed_order_and_summary_is_mean_std():
    runs = fake_runs()
    assert accuracies(runs, "dopamine") == [0.97, 0.975, 0.972]
    table = summarise(runs)
    assert [r.method for r in table] == ["frozen", "dopamine", "lora"]
    mean, std = table.row("dopamine").accuracy["45"]
    assert mean == pytest.approx((0.97 + 0.975 + 0.972) / 3)
    assert std == pytest.approx(math.sqrt(sum((x - mean) ** 2 for x in (0.97, 0.975, 0.972)) / 2))
    assert table.row("frozen").accuracy["0"] == (pytest.approx(0.97), pytest.approx(0.0, abs=1e-12))
    assert table.row("lora").n_trainable == 7272
    html = table._repr_html_()
    assert html.count("<tr>") == 4 and "97.23 ± 0.25" in html and "7,272" in html
    assert "45° accuracy (%)" in str(table)
    with pytest.raises(KeyError, match="no row for 'full'"):
        table.row("full")


def test_run_seeds_groups_methods_by_epochs(monkeypatch):
    calls = []

    def fake_run_seed(seed, methods, angle_deg, spec, lora_rank, epochs, progress):
        calls.append((seed, methods, epochs))
        return {m: Result(m, 1, {"0": 0.9, "45": 0.9}) for m in methods}

    monkeypatch.setattr(compare, "run_seed", fake_run_seed)
    runs = run_seeds([3, 4], {"frozen": 0, "dopamine": 2, "lora": 2, "head": 1})
    assert calls == [(3, ("frozen", "head"), 1), (3, ("dopamine", "lora"), 2),
                     (4, ("frozen", "head"), 1), (4, ("dopamine", "lora"), 2)]
    assert list(runs) == [3, 4] and list(runs[3]) == ["frozen", "dopamine", "lora", "head"]
    with pytest.raises(ValueError, match="'dopamine': 0"):
        run_seeds([0], {"dopamine": 0})


def test_run_seeds_and_sweep_train_for_real(tmp_path, monkeypatch):
    monkeypatch.setenv("DOPATUT_CACHE", str(tmp_path))
    runs = run_seeds([0, 1], {"frozen": 0, "head": 1}, spec=TINY)
    assert runs[0]["head"].n_trainable == 16 * 10 + 10 and runs[0]["frozen"].n_trainable == 0
    assert runs[0]["frozen"].accuracy != runs[1]["frozen"].accuracy  # each seed has its own foundation
    assert all(r["head"].accuracy["45"] > r["frozen"].accuracy["45"] for r in runs.values())

    from dopatut.pipeline import foundation
    base = foundation(0, TINY, progress=False)
    results = sweep(base, (("lora r=1", "lora", {"rank": 1}), ("lora r=2", "lora", {"rank": 2})))
    assert results["lora r=2"].n_trainable > results["lora r=1"].n_trainable
    assert results["lora r=1"].n_trainable == 1 * (784 + 16) + 1 * (16 + 16) + 1 * (16 + 10)
    with pytest.raises(ValueError, match="unique"):
        sweep(base, (("a", "head", {}), ("a", "bitfit", {})))


def test_default_variants_cover_the_baselines_and_five_lora_ranks():
    methods = [m for _, m, _ in VARIANTS]
    assert {"dopamine", "gain_only", "bitfit", "head", "full"} <= set(methods)
    assert [kw["rank"] for _, m, kw in VARIANTS if m == "lora"] == [1, 2, 4, 8, 16]


def test_plots_draw_every_point_with_labelled_axes():
    results = {"dopamine": Result("dopamine", 1024, {"0": 0.96, "45": 0.975}),
               "lora r=1": Result("lora", 1000, {"0": 0.95, "45": 0.97}),
               "lora r=4": Result("lora", 4000, {"0": 0.95, "45": 0.978})}
    ax = plot_tradeoff(results, Result("frozen", 0, {"0": 0.966, "45": 0.966}))
    assert ax.get_xscale() == "log" and "45°" in ax.get_ylabel()
    points = {(line.get_xdata()[0], round(line.get_ydata()[0], 6)) for line in ax.get_lines()
              if len(line.get_xdata()) == 1}
    assert {(1024, 97.5), (1000, 97.0), (4000, 97.8)} <= points
    assert [h.get_label() for h in ax.get_legend_handles_labels()[0]].count("lora") == 1

    runs = fake_runs()
    per_seed = {m: accuracies(runs, m) for m in ("frozen", "dopamine")}
    ax = plot_paired(per_seed, list(runs), ax=plt.figure().gca())
    assert len([line for line in ax.get_lines() if len(line.get_xdata()) == 2]) == 3  # one line per seed

    diff = paired_difference(per_seed["dopamine"], per_seed["frozen"])
    ax = plot_differences({"dopamine − frozen": diff}, ax=plt.figure().gca())
    assert ax.get_ylabel().startswith("paired difference")
