"""The one grid search: every setting scored, the next rate past an edge where the best sits at one, and the
main comparison's choices that sit at an edge (read from the shipped grids)."""
import pytest

from dopatut.study import search
from dopatut.study.search import choices_at_an_edge, next_setting, past_edge


def test_past_edge_tries_the_next_rate_only_where_the_best_sits_at_an_edge():
    assert past_edge({0.01: 0.90, 0.03: 0.95, 0.1: 0.93}) is None  # inside: nothing to add
    assert past_edge({0.01: 0.90, 0.03: 0.93, 0.1: 0.95}) == 0.3
    assert past_edge({0.003: 0.96, 0.01: 0.93, 0.03: 0.90}) == 0.001
    assert past_edge({0.1: 0.9}) is None


def test_next_setting_keeps_everything_but_the_rate_and_looks_only_along_the_best_ones_line():
    tried = [({"lr": 1e-3, "alpha": 4.0}, 0.95), ({"lr": 1e-3, "alpha": 16.0}, 0.90),
             ({"lr": 3e-3, "alpha": 4.0}, 0.93), ({"lr": 3e-3, "alpha": 16.0}, 0.96)]
    assert next_setting(tried) == {"lr": 0.009, "alpha": 16.0}  # alpha 16's line rises to its edge
    tried[3] = ({"lr": 3e-3, "alpha": 16.0}, 0.91)
    assert next_setting(tried) == {"lr": 0.00033, "alpha": 4.0}
    assert next_setting([({}, 0.9)]) is None  # nothing to widen without a rate


def test_search_widens_each_grid_until_its_best_is_inside_or_widen_runs_out():
    rounds = []

    def run(points):  # validation accuracy peaks at 0.03 for "peak", rises forever for "rising"
        rounds.append(points)
        return [-abs(s["lr"] - 0.03) if key == "peak" else s["lr"] for key, s in points]
    grids = {key: [{"lr": r} for r in (1e-3, 3e-3, 1e-2)] for key in ("peak", "rising")}
    found = search.search(grids, run, score=lambda acc: acc, widen=2)
    assert [s["lr"] for s, _ in found["peak"]] == [0.001, 0.003, 0.01, 0.03, 0.09]  # inside after two
    assert [s["lr"] for s, _ in found["rising"]] == [0.001, 0.003, 0.01, 0.03, 0.09]  # stops: widen=2
    assert [len(r) for r in rounds] == [6, 2, 2]  # one call of run per round, every grid's points in it
    assert search.search(grids, run, score=lambda acc: acc, widen=0)["rising"] == found["rising"][:3]
    with pytest.raises(ValueError, match="widen must be an int >= 0 .*, got -1"):
        search.search(grids, run, score=lambda acc: acc, widen=-1)


def test_a_diverged_run_is_never_the_best_and_a_grid_of_them_is_not_widened():
    found = search.search({"m": [{"lr": 0.1}, {"lr": 0.3}]}, lambda pts: [0.5, None], lambda acc: acc, widen=1)
    assert [s["lr"] for s, _ in found["m"]] == [0.1, 0.3, 0.033]  # 0.3 blew up: 0.1 is the best, at the low edge
    found = search.search({"m": [{"lr": 0.1}, {"lr": 0.3}]}, lambda pts: [None] * len(pts), lambda acc: acc, widen=1)
    assert len(found["m"]) == 2


def test_the_main_comparison_has_two_choices_at_an_edge_so_it_does_not_widen(monkeypatch):
    """Read from the shipped grids: widening would train past these two, and could change their choice."""
    monkeypatch.delenv("DOPATUT_RECOMPUTE", raising=False)
    monkeypatch.setenv("DOPATUT_DEVICE", "cpu")
    monkeypatch.setattr(search, "specialise_many", lambda *a, **k: pytest.fail("the grids should come from the bundle"))
    assert choices_at_an_edge() == [("mixture", "lora", 0.001, [0.001, 0.003, 0.01]),
                                    ("upright", "full", 0.001, [3e-05, 0.0001, 0.0003, 0.001])]
