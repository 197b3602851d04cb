import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dopatut.course.figcheck import figure_problems  # noqa: E402
from dopatut.showing.plots import (digit_grid, gate_response, gate_response_figure, layer_histograms,  # noqa: E402
                           mode_schematic)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_gate_response_matches_the_formula():
    z = torch.linspace(-2, 3, 51)
    soft = gate_response(z, threshold=0.7, gain=1.3, temperature=0.25)
    assert torch.allclose(soft, torch.sigmoid((z - 0.7) / 0.25) * 1.3 * torch.relu(z))
    hard = gate_response(z, threshold=0.7, gain=1.3, hard=True)
    assert torch.equal(hard, (z > 0.7).float() * 1.3 * torch.relu(z))


def test_gate_response_at_identity_init_is_relu():
    z = torch.linspace(-2, 3, 51)
    assert torch.equal(gate_response(z, hard=True), torch.relu(z))


def test_gate_response_figure_has_four_labelled_panels():
    fig = gate_response_figure()
    assert len(fig.axes) == 4
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("Gate value") and any("Threshold" in t for t in titles)
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
    # panel 3 draws ReLU plus one curve per threshold
    assert len(fig.axes[2].get_lines()) == 4


def test_gate_response_figure_one_meaning_per_colour():
    from matplotlib.colors import to_hex
    fig = gate_response_figure()
    by_label = [{line.get_label(): to_hex(line.get_color()) for line in ax.get_lines()} for ax in fig.axes]
    assert by_label[0]["hard step 1[z > τ]"] == by_label[1]["hard"] == "#000000"  # hard: black in both
    colours = [c for panel in by_label for label, c in panel.items() if label.startswith(("τ", "g"))]
    assert len(colours) == len(set(colours)) == 7, by_label  # thresholds and gains: no colour twice
    assert "g = −1" in by_label[3]  # a negative gain inverts the output, as the chapter says
    # the temperature panel shows every T of the gate-value panel, T = 0.1 (where training ends) included
    assert {k for k in by_label[0] if k.startswith("soft")} == {k for k in by_label[1] if k.startswith("soft")}
    assert all(text.get_fontsize() >= 9 for ax in fig.axes for text in ax.get_legend().get_texts())


def test_layer_histograms_negative_mean_with_a_real_minus():
    fig = layer_histograms({"hidden1": torch.full((4,), -0.0189)}, "x", "t")
    assert fig.axes[0].get_title() == "hidden1 (mean −0.02)"


def test_digit_grid_one_row_per_mode_and_titles_name_labels():
    images = torch.zeros(3, 28, 28, dtype=torch.uint8)
    fig = digit_grid({"0°": images, "45°": images}, torch.tensor([7, 2, 1]), title="digits")
    assert len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes[:3]] == ["label 7", "label 2", "label 1"]
    assert fig.axes[0].get_ylabel() == "0°" and fig.axes[3].get_ylabel() == "45°"


def test_digit_grid_rejects_rows_of_the_wrong_length():
    with pytest.raises(ValueError, match="every row needs 3 images"):
        digit_grid({"0°": torch.zeros(2, 28, 28)}, [1, 2, 3])


def test_layer_histograms_one_panel_per_layer_with_mean():
    fig = layer_histograms({"hidden1": torch.ones(10), "hidden2": torch.full((5,), 2.0)}, "gain g", "gains")
    assert [ax.get_title() for ax in fig.axes] == ["hidden1 (mean 1.00)", "hidden2 (mean 2.00)"]
    assert fig.axes[1].get_lines()[0].get_xdata()[0] == pytest.approx(2.0)  # the mean line
    assert fig.axes[0].get_xlabel() == "gain g"
    assert not fig.legends and [t.get_text() for t in fig.axes[0].texts] == [" mean"]  # named on the line


def test_layer_histograms_mark_the_start_apart_from_the_mean():
    fig = layer_histograms({"hidden1": torch.full((4,), -0.0189)}, "threshold", "t", start=0)
    ax = fig.axes[0]
    assert [line.get_xdata()[0] for line in ax.get_lines()] == pytest.approx([-0.0189, 0.0])  # mean, start
    assert ax.get_lines()[0].get_linestyle() != ax.get_lines()[1].get_linestyle()
    assert [t.get_text() for t in ax.texts] == ["mean ", " start (0)"]  # each on the side away from the other
    assert [t.get_ha() for t in ax.texts] == ["right", "left"]
    assert figure_problems(fig) == []  # the two names clear each other
    fig = layer_histograms({"hidden1": torch.rand(20)}, "x", "t", label="Dopamine", start=1)
    assert "start (1)" in [t.get_text() for t in fig.legends[0].get_texts()]
    plt.close("all")


def test_mode_schematic_two_panels_and_prints_the_counts_it_is_given():
    fig = mode_schematic(n_dopamine=1024, n_lora=7272)
    assert len(fig.axes) == 2
    assert "Dopamine" in fig.axes[0].get_title() and "LoRA" in fig.axes[1].get_title()
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("1,024 trainable" in t for t in texts) and any("7,272 trainable" in t for t in texts)
    # the Dopamine panel silences some neurons, the LoRA panel none
    assert sum(t == "×" for t in (x.get_text() for x in fig.axes[0].texts)) == 4
    assert not any(t.get_text() == "×" for t in fig.axes[1].texts)


def test_layer_histograms_label_names_the_series_in_the_legend():
    fig = layer_histograms({"hidden1": torch.rand(20)}, "x", "t", label="Dopamine")
    assert fig.axes[0].get_legend() is None, "one legend under the panels, off the data"
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "Dopamine" in texts and any(t.startswith("mean") and "(Dopamine)" in t for t in texts)
