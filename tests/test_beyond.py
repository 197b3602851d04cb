"""Chapter 9's helpers: arms by name, the grids and their widening, gate statistics."""

import pytest
import torch
from torch import nn

from dopatut import beyond
from dopatut.gate import GateSet
from dopatut.methods import apply_method
from dopatut.vit import VisionTransformer, ViTConfig


def small_vit():
    torch.manual_seed(0)
    return VisionTransformer(ViTConfig(width=16, depth=2, heads=2)).requires_grad_(False)


def test_unknown_arm_is_refused():
    with pytest.raises(ValueError, match="unknown arm .lora_everywhere.; expected one of dopamine, dopamine_at_0, gain_only"):
        beyond.run_arms(small_vit(), {"lora_everywhere": 1e-3})


def test_gate_movement_is_zero_at_init_and_sees_a_moved_threshold():
    model = apply_method(small_vit(), "dopamine", verbose=False)
    assert beyond.gate_movement([model]) == {"blocks.0.mlp.act": {"threshold": 0.0, "gain": 0.0},
                                              "blocks.1.mlp.act": {"threshold": 0.0, "gain": 0.0}}
    with torch.no_grad():
        GateSet.of(model)["blocks.1.mlp.act"].threshold[:16] += 2.0  # 16 of 64 neurons by 2: a mean of 0.5
    assert beyond.gate_movement([model])["blocks.1.mlp.act"]["threshold"] == pytest.approx(0.5)


def test_plot_arms_gives_each_foundation_its_own_panel_and_scale():
    from dopatut.pipeline import Result
    runs = {"mixture": {"frozen": [Result("frozen", 0, {"45": 0.944})] * 2,
                        "dopamine": [Result("dopamine", 768, {"45": a}) for a in (0.953, 0.954)]},
            "upright": {"frozen": [Result("frozen", 0, {"45": 0.5})] * 2,
                        "dopamine": [Result("dopamine", 768, {"45": a}) for a in (0.76, 0.78)]}}
    fig = beyond.plot_arms(runs)
    left, right = fig.axes
    assert left.get_title() == "mixture foundation" and right.get_title() == "upright foundation"
    assert left.get_ylim()[0] > 90 and right.get_ylim()[0] < 55  # not one shared scale


def test_grids_and_arms_are_one_job_per_model_each_as_trained_alone(monkeypatch):
    from dopatut.pipeline import specialise_many
    from dopatut.train import TrainConfig
    monkeypatch.setenv("DOPATUT_WORKERS", "1")  # in process; tests/test_workers.py checks a job's numbers in a worker
    monkeypatch.setattr(beyond, "ADAPT_IMAGES", 500)
    monkeypatch.setattr(beyond, "GRID_IMAGES", 300)
    monkeypatch.setitem(beyond.LR_GRID, "head", (1e-4, 3e-2))
    monkeypatch.setattr(beyond, "WIDEN", 0)  # the grids as they are (widening: the test below)
    base = small_vit()
    lrs = beyond.choose_lrs(base, arms=("head", "gain_only"), progress=False)
    assert list(lrs) == ["head", "gain_only"] and set(lrs["head"][1]) == {1e-4, 3e-2}
    assert lrs["head"][0] == max(lrs["head"][1], key=lrs["head"][1].get)
    runs, models = beyond.run_arms(base, lrs, seeds=(1, 0), progress=False)
    assert list(runs) == ["head", "gain_only"] and [r.method for r in runs["head"]] == ["head", "head"]
    alone, result = specialise_many([base], "head", [0], TrainConfig(epochs=1, lr=lrs["head"][0]), progress=False,
                                    train_limit=500, soft=False, stack=False)[0]
    same = lambda m, n: all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), n.state_dict().values()))
    assert same(models["head"][1], alone) and not same(models["head"][0], alone)  # in the order of the seeds
    assert runs["head"][1].accuracy == result.accuracy


def test_past_edge_tries_the_next_rate_only_where_the_best_sits_at_an_edge():
    assert beyond.past_edge({0.01: 0.90, 0.03: 0.95, 0.1: 0.93}) is None  # inside: nothing to add
    assert beyond.past_edge({0.01: 0.90, 0.03: 0.93, 0.1: 0.95}) == 0.3
    assert beyond.past_edge({0.003: 0.96, 0.01: 0.93, 0.03: 0.90}) == 0.001
    assert beyond.past_edge({0.1: 0.9}) is None


def test_choose_lrs_widens_a_grid_past_its_edge_until_the_best_is_inside_or_widen_runs_out(monkeypatch):
    calls = []

    def score(base, arm, lr, angle_deg, train_limit):  # validation accuracy peaks at 0.03 for head, rises forever for full
        calls.append((arm, lr))
        return -abs(lr - 0.03) if arm == "head" else lr
    monkeypatch.setenv("DOPATUT_WORKERS", "1")
    monkeypatch.setattr(beyond, "_grid_point", score)
    monkeypatch.setitem(beyond.LR_GRID, "head", (1e-3, 3e-3, 1e-2))
    monkeypatch.setitem(beyond.LR_GRID, "full", (1e-3, 3e-3, 1e-2))
    lrs = beyond.choose_lrs(small_vit(), arms=("head", "full"), progress=False)
    assert lrs["head"][0] == 0.03 and list(lrs["head"][1]) == [0.001, 0.003, 0.01, 0.03, 0.09]  # inside after two
    assert lrs["head"][1] == pytest.approx({0.001: -0.029, 0.003: -0.027, 0.01: -0.02, 0.03: 0.0, 0.09: -0.06})
    assert list(lrs["full"][1]) == [0.001, 0.003, 0.01, 0.03, 0.09] and lrs["full"][0] == 0.09  # WIDEN = 2: stops
    assert len(calls) == 3 + 3 + 2 + 2
    assert "rate 5" in beyond.grid_table(lrs) and "0.09: 9.00%" in beyond.grid_table(lrs)


def test_widened_and_at_edge_name_the_grids_widened_and_the_choices_left_at_an_edge():
    chosen = {"mixture": {"head": (0.01, {0.001: 0.9, 0.003: 0.91, 0.01: 0.93, 0.03: 0.92}),
                          "full": (0.001, {0.0003: 0.9, 0.001: 0.95, 0.003: 0.94})},
              "upright": {"full": (0.027, {0.0003: 0.1, 0.001: 0.2, 0.003: 0.3, 0.009: 0.4, 0.027: 0.5})}}
    assert beyond.widened_and_at_edge(chosen) == (["head-only (mixture)", "full fine-tuning (upright)"],
                                                   ["full fine-tuning (upright, 0.027)"])
