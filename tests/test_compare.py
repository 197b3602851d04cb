import math
from dataclasses import replace

import pytest

import dopatut.study.compare as compare
import dopatut.foundations.data as data
import dopatut.study.pipeline as pipeline
import dopatut.study.search as search
from dopatut.study.compare import (Selection, accuracies, differences, protocol_config, select, selection_table,
                             summarise)
from dopatut.foundations.model import MLPConfig
from dopatut.study.pipeline import FoundationSpec, Result, foundation
from dopatut.study.protocol import Protocol
from dopatut.training.train import TrainConfig

TINY_SPEC = FoundationSpec(model=MLPConfig(hidden=(16, 16)), train=TrainConfig(epochs=1, batch_size=512))
TINY = Protocol(epochs=1, foundation_epochs=1, batch_size=512, seeds=(0, 1),
                grids={"head": {"lr": (1e-4, 1e-2)}, "dopamine": {"lr": (1e-2,), "temperature": ((1.0, 0.1),)}})


def fake_runs():
    acc = {"frozen": (0.96, 0.95, 0.955), "dopamine": (0.97, 0.975, 0.972), "lora": (0.98, 0.985, 0.979)}
    return {m: [Result(m, n, {"0": 0.97, "45": a}) for a in accs]
            for (m, accs), n in zip(acc.items(), (0, 1024, 7272))}


def test_summary_is_mean_and_sample_std_per_method():
    runs = fake_runs()
    assert accuracies(runs, "dopamine") == [0.97, 0.975, 0.972]
    table = summarise(runs)
    assert [r.method for r in table] == ["frozen", "dopamine", "lora"]
    mean, std = table.row("dopamine").accuracy["45"]
    assert mean == pytest.approx((0.97 + 0.975 + 0.972) / 3)
    assert std == pytest.approx(math.sqrt(sum((x - mean) ** 2 for x in (0.97, 0.975, 0.972)) / 2))
    assert table.row("lora").n_trainable == 7272
    assert "97.23 ± 0.25" in table.html() == table._repr_html_() and "7,272" in str(table)
    with pytest.raises(KeyError, match="no row for 'full'"):
        table.row("full")
    with pytest.raises(KeyError, match="no runs of 'full'"):
        accuracies(runs, "full")


def test_differences_pair_every_method_with_dopamine_seed_by_seed():
    diffs = differences(fake_runs())
    assert set(diffs) == {"frozen", "lora"}
    assert diffs["frozen"].differences == pytest.approx((-0.01, -0.025, -0.017))
    assert diffs["lora"].ci_low > 0


def test_lead_over_is_the_answers_sign_dopamine_minus_each_rival():
    from dopatut.study.report import lead_over
    runs = fake_runs()
    ahead, behind = lead_over(runs), differences(runs)
    assert set(ahead) == {"frozen", "lora"}
    assert ahead["frozen"].differences == pytest.approx(tuple(-x for x in behind["frozen"].differences))
    assert ahead["lora"].ci_high < 0  # LoRA is ahead of Dopamine: Dopamine - LoRA is below zero
    assert ahead["lora"] == compare.dopamine_minus({m: accuracies(runs, m) for m in runs}, ["lora"])["lora"]


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    monkeypatch.setenv("DOPATUT_CACHE", str(tmp_path))
    monkeypatch.setitem(compare.FOUNDATIONS, "mixture", TINY_SPEC)
    monkeypatch.setitem(compare.FOUNDATIONS, "upright", replace(TINY_SPEC, angles=(0.0,)))
    return TINY


def test_selection_reads_no_test_data_and_picks_the_best_validation_score(tiny, monkeypatch):
    foundation(0, TINY_SPEC, progress=False)  # trained (and tested) before: choosing is what must not look
    splits = []
    real = data.mode_data

    def spy(split, *args, **kwargs):
        splits.append(split)
        return real(split, *args, **kwargs)
    monkeypatch.setattr(pipeline, "mode_data", spy)
    sel = select("head", "mixture", tiny)
    assert "val" in splits and "test" not in splits, splits
    assert sel.settings == [{"lr": 1e-4}, {"lr": 1e-2}] and len(sel.curves[0]) == 1
    assert sel.chosen == sel.settings[max(range(2), key=lambda i: sel.val_accuracy[i])]
    assert sel.val_accuracy[1] > sel.val_accuracy[0]  # 1e-4 for one epoch barely moves the head
    splits.clear()
    assert select("head", "mixture", tiny).val_accuracy == sel.val_accuracy and not splits  # cached
    config, kwargs = protocol_config("head", "mixture", 3, tiny)
    assert config.lr == sel.chosen["lr"] and config.seed == 3 and kwargs == {}
    assert "✔" in selection_table([sel])


def test_selection_ties_go_to_the_first_setting():
    sel = Selection("head", "mixture", [{"lr": 1.0}, {"lr": 2.0}, {"lr": 3.0}], [0.9, 0.95, 0.95], [[], [], []])
    assert sel.chosen == {"lr": 2.0}


def test_comparison_runs_every_seed_and_is_cached(tiny, monkeypatch):
    runs = compare.compare("mixture", ("frozen", "head", "dopamine"), tiny, progress=False)
    assert list(runs) == ["frozen", "head", "dopamine"] and all(len(r) == 2 for r in runs.values())
    assert runs["head"][0].n_trainable == 16 * 10 + 10 and runs["dopamine"][0].n_trainable == 64
    assert runs["frozen"][0].accuracy != runs["frozen"][1].accuracy  # each seed has its own foundation
    assert all(h.accuracy["45"] > f.accuracy["45"] for h, f in zip(runs["head"], runs["frozen"]))
    for module in (compare, search):
        monkeypatch.setattr(module, "specialise_many", lambda *a, **k: pytest.fail("should come from the cache"))
    again = compare.compare("mixture", ("frozen", "head", "dopamine"), tiny, progress=False)
    assert [r.accuracy for r in again["head"]] == [r.accuracy for r in runs["head"]]


def test_lora_ranks_train_once_then_come_from_the_cache(tiny, monkeypatch):
    proto = replace(tiny, grids={**tiny.grids, "lora": {"lr": (1e-2,), "alpha": (4.0,)}})
    ranks = compare.lora_ranks((1, 2), protocol=proto)
    assert list(ranks) == [1, 2]
    assert [r.n_trainable for r in ranks.values()] == [r * ((784 + 16) + (16 + 16) + (16 + 10)) for r in (1, 2)]
    assert all(r.method == "lora" and set(r.accuracy) == {"0", "45"} for r in ranks.values())
    monkeypatch.setattr(compare, "specialise", lambda *a, **k: pytest.fail("should come from the cache"))
    assert {r: x.accuracy for r, x in compare.lora_ranks((1, 2), protocol=proto).items()} == \
        {r: x.accuracy for r, x in ranks.items()}
    with pytest.raises(pytest.fail.Exception):  # other ranks, another key: trained
        compare.lora_ranks((1, 3), protocol=proto)
    with pytest.raises(ValueError, match="ranks must be ints >= 1"):
        compare.lora_ranks((0,), protocol=proto)


@pytest.mark.parametrize("make, message", [
    (lambda: Protocol(seeds=()), "at least one seed"),
    (lambda: Protocol(seeds=(0, 1, 1)), "distinct, got \\[0, 1, 1\\]"),
    (lambda: Protocol(seeds=(0, -1)), "non-negative ints, got \\[-1\\]"),
    (lambda: Protocol(epochs=0), "epochs must be an int >= 1, got 0"),
    (lambda: Protocol(grids={"head": {"lr": ()}}).grid("head"), "grid of 'head' has no values for \\['lr'\\]"),
    (lambda: Protocol().grid("nope"), "unknown method 'nope'"),
    (lambda: select("nope"), "unknown method 'nope'"),
    (lambda: select("head", "sideways"), "unknown foundation 'sideways'"),
])
def test_bad_input_is_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("low, high, start", [
    (0.005, 0.012, "A beats B at 45° by 0.85 points (95% interval of A − B: +0.50 to +1.20, 10 seeds)"),
    (-0.012, -0.005, "A loses to B at 45° by 0.85 points (95% interval of A − B: −1.20 to −0.50, 10 seeds)"),
    (-0.002, 0.004, "A ties with B at 45°: A − B is +0.10 points on average, and its 95% interval, −0.20 to +0.40, "
                    "holds zero"),
])
def test_the_sentence_follows_the_interval(low, high, start):
    from dopatut.study.compare import said
    from dopatut.analysis.stats import PairedDifference
    d = PairedDifference((0.0,) * 10, (low + high) / 2, 0.01, low, high, 0.95)
    assert said("A", "B", d).startswith(start), said("A", "B", d)


def test_dopamine_against_pairs_dopamine_with_each_baseline(tiny):
    out = compare.dopamine_against(("frozen", "head"), protocol=tiny)
    assert set(out) == {"mixture", "upright"} and set(out["mixture"]) == {"frozen", "head"}
    assert out["mixture"]["frozen"].n == 2 and out["mixture"]["frozen"].mean > 0


def test_a_grid_setting_that_blows_up_is_marked_and_never_chosen(tiny):
    protocol = replace(TINY, grids={**TINY.grids, "full": {"lr": (1e-3, 1e6)}})
    chosen = select("full", "mixture", protocol)
    assert chosen.diverged == (1,) and chosen.chosen == {"lr": 1e-3}
    assert select("full", "mixture", protocol).diverged == (1,)  # from the cache, still marked


def test_settings_are_written_out_for_readers():
    assert compare._fmt(3e-05) == "0.00003" and compare._fmt((1.0, 0.01)) == "1 → 0.01" and compare._fmt(4) == "4"


def test_the_choices_table_and_the_edge_sentence_say_what_each_grid_chose():
    from dopatut.analysis.stats import paired_difference
    from dopatut.study.report import choices_table, edges_sentence

    grid = [{"lr": 0.01}, {"lr": 0.03}, {"lr": 0.1}]
    inside = Selection("lora", "mixture", grid, [0.95, 0.97, 0.96], [[]] * 3)
    edge = Selection("head", "mixture", grid, [0.90, 0.91, 0.93], [[]] * 3)
    tied = Selection("head", "upright", grid, [0.93, 0.92, 0.93], [[]] * 3)  # a tie goes to the first: an edge
    upright_lora = Selection("lora", "upright", grid, [0.80, 0.85, 0.84], [[]] * 3)
    table = choices_table({"mixture": [inside, edge], "upright": [upright_lora, tied]})
    assert list(table.rows[0]) == ["LoRA (r = 4)", "lr 0.03 (97.00%)", "lr 0.03 (85.00%)"], table.rows
    assert list(table.rows[1][1:]) == ["lr 0.1 (93.00%)", "lr 0.01 (93.00%)"]
    said = edges_sentence({"mixture": [inside, edge], "upright": [upright_lora, tied]})
    assert said == ("Head-only on the mixture foundation won at the largest rate of its grid (0.1): a larger rate "
                    "might score higher. Head-only on the upright foundation won at the smallest rate of its grid "
                    "(0.01): a smaller rate might score higher."), said
    grid4 = [{"lr": 0.001, "alpha": 4}, {"lr": 0.001, "alpha": 16}, {"lr": 0.003, "alpha": 4}, {"lr": 0.01, "alpha": 4}]
    shared = Selection("lora", "mixture", grid4, [0.97, 0.97, 0.97, 0.96], [[]] * 4)  # one tie inside the grid
    assert edges_sentence({"mixture": [shared]}) == ("LoRA's best score on the mixture foundation is shared by three "
                                                     "settings, one of them inside the grid, so the edge does not "
                                                     "matter there.")
    assert edges_sentence({"mixture": [inside]}) == "No winner lies at an edge of its grid."
    # with the verdicts: a grid-edge winner that already beats Dopamine can only widen its lead
    a, b = [0.90, 0.91, 0.92, 0.93], [0.93, 0.941, 0.949, 0.962]
    ahead, behind = paired_difference(a, b), paired_difference(b, a)
    said = edges_sentence({"mixture": [edge]}, {"mixture": {"head": ahead}})
    assert said.endswith("could only widen its lead over Dopamine, so the verdict \"loses to\" stands."), said
    said = edges_sentence({"mixture": [edge]}, {"mixture": {"head": behind}})
    assert said.endswith("That could change Dopamine's verdict against it (\"beats\")."), said
