import matplotlib
import matplotlib.legend

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from dopatut.analysis.stats import paired_difference  # noqa: E402
from dopatut.course.figcheck import figure_problems  # noqa: E402
from dopatut.methods.names import colour  # noqa: E402
from dopatut.showing.compare_plots import (LEGEND_GAP_PX, plot_differences, plot_main_result,  # noqa: E402
                                           plot_tradeoff, side_by_side)
from dopatut.study.pipeline import Result  # noqa: E402

SIZES = {"frozen": 0, "dopamine": 1024, "gain_only": 512, "threshold_only": 512, "bitfit": 522, "head": 2570,
         "lora": 7272, "full": 269322}


def test_nearly_equal_sizes_go_side_by_side_in_their_true_order():
    x = side_by_side({m: n for m, n in SIZES.items() if n})
    assert x["dopamine"] == 1024 and x["head"] == 2570 and x["full"] == 269322  # alone: at their true size
    assert x["gain_only"] < x["threshold_only"] < x["bitfit"]  # 512, 512, 522: left to right as given and by size
    assert x["threshold_only"] == pytest.approx((512 * 512 * 522) ** (1 / 3))
    assert x["bitfit"] / x["threshold_only"] == pytest.approx(1.25)


def _runs(shift=0.0):
    acc = {m: 0.97 + 0.001 * i + shift for i, m in enumerate(SIZES)}
    return {m: [Result(m, n, {"45": acc[m] + 0.0005 * s, "0": 0.95}) for s in range(3)] for m, n in SIZES.items()}


def test_the_main_figure_gives_true_counts_and_reads():
    fig = plot_main_result({"mixture": _runs(), "upright": _runs(-0.2)})
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "gain-only: 512" in labels and "BitFit: 522" in labels and "full fine-tuning: 269,322" in labels
    assert "nearly equal sizes drawn side by side" in fig.axes[3].artists[0].get_title().get_text()
    bottom = fig.axes[2].get_ylim()[0]  # the bars' axis: a round number, and said in the title when it is not 0
    assert bottom % 10 == 0 and (f"(axis from {bottom:g}%)" in fig.axes[2].get_title()) == (bottom > 0)
    assert fig.axes[3].artists[0].get_texts()[0].get_fontsize() >= 9  # readable at the book's text width
    assert figure_problems(fig) == []
    plt.close(fig)


def test_the_main_figure_keeps_its_two_legends_apart():
    fig = plot_main_result({"mixture": _runs(), "upright": _runs(-0.2)})
    fig.draw_without_rendering()
    methods, bars = (legend.get_window_extent() for legend in fig.axes[3].get_children()
                     if isinstance(legend, matplotlib.legend.Legend))
    assert methods.y0 - bars.y1 >= 0.8 * LEGEND_GAP_PX  # the bars' legend under the methods', with a gap
    assert bars.y0 >= 0 and figure_problems(fig) == []  # inside the figure, clear of the bars' tick labels
    plt.close(fig)


def test_the_trade_off_keeps_gain_only_and_bitfit_apart_and_counts_them():
    results = {("lora r=4" if m == "lora" else m): rs[0] for m, rs in _runs().items() if m not in ("frozen",
                                                                                                "threshold_only")}
    results["lora r=1"] = Result("lora", 1818, {"45": 0.97, "0": 0.95})
    ax = plot_tradeoff(results, _runs()["frozen"][0], "45", plt.figure().gca(), annotate=False)
    xs = {line.get_label(): line.get_xdata()[0] for line in ax.lines if not line.get_label().startswith("_")}
    assert xs["gain-only: 512"] < xs["BitFit: 522"] and xs["BitFit: 522"] / xs["gain-only: 512"] == pytest.approx(1.25)
    assert "LoRA (r = 1 to 4): 1,818 to 7,272" in xs
    assert sorted(t.get_text() for t in ax.texts) == ["1", "4"]  # each LoRA point names its rank
    assert min(t.get_fontsize() for t in ax.texts) >= 9  # readable at the book's text width
    plt.close("all")


def test_differences_are_dopamine_minus_method_with_the_direction_on_the_axis():
    dop = [0.975, 0.976, 0.977]
    diffs = {"lora": paired_difference(dop, [0.978, 0.979, 0.981]),
             "frozen": paired_difference(dop, [0.5, 0.51, 0.52]), "bitfit": paired_difference(dop, [0.97, 0.971, 0.97])}
    fig, ax = plt.subplots(figsize=(7.5, 3))
    plot_differences(diffs, ax, beyond=0.2)
    assert ax.get_ylabel() == "Dopamine − method (points)\nabove 0: Dopamine ahead"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["LoRA (r = 4)", "BitFit"]  # frozen is 46 points off
    assert "not shown: frozen foundation, +46.6 points" in [t.get_text() for t in ax.texts]
    seeds = [line for line in ax.lines if line.get_marker() == "o" and len(line.get_ydata()) == 3]
    assert seeds[0].get_color() == colour("lora") and max(seeds[0].get_ydata()) < 0  # LoRA ahead: below zero
    plt.close(fig)
