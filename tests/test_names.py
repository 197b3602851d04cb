import pytest

from dopatut.methods.builtin import METHODS
from dopatut.methods.names import CODE_NAMES, display


def test_every_method_has_a_readable_name():
    names = [display(m) for m in METHODS]
    assert len(set(names)) == len(METHODS) and not any("_" in n for n in names), names
    assert display("gain_only") == "gain-only" and display("head") == "head-only"
    assert display("lora") == "LoRA (r = 4)" and display("lora r=16") == "LoRA (r = 16)"


def test_foundations_and_unknown_names():
    assert display("upright", "foundation") == "upright foundation"
    with pytest.raises(KeyError, match="no method named 'gain-only'"):
        display("gain-only")
    with pytest.raises(KeyError, match="no foundation"):
        display("rotated", "foundation")
    with pytest.raises(ValueError, match="kind must be"):
        display("lora", "arm")


def test_code_names_are_those_a_reader_would_not_read_as_words():
    assert set(CODE_NAMES) == {"gain_only", "threshold_only", "bitfit", "lora"}


def test_small_numbers_are_written_as_people_write_them():
    from dopatut.methods.names import small_number
    assert small_number(2.384e-07) == "2.4 × 10⁻⁷" and small_number(0.0) == "0" and small_number(3.2e-4) == "3.2 × 10⁻⁴"


def test_each_method_has_one_style_of_its_own_and_figures_draw_with_it():
    import matplotlib
    matplotlib.use("Agg")
    from dopatut.methods.names import ARM_NAMES, OTHER_STYLE, VERDICT_STYLE, colour, style
    from dopatut.showing.compare_plots import plot_curves
    from dopatut.study.search import Selection

    colours = [colour(m) for m in METHODS]
    assert len(set(colours)) == len(METHODS), dict(zip(METHODS, colours))  # no two methods share a colour
    assert all(style(arm) != OTHER_STYLE for arm in ARM_NAMES)  # chapter 9's arms are in the palette too
    assert style("lora r=16") == style("lora") and style("my_own_method") == OTHER_STYLE
    method_colours = {colour(m) for m in METHODS if m != "frozen"}
    assert not {kw["mfc"] for kw in VERDICT_STYLE.values()} & method_colours  # verdicts are no method's colour
    sel = Selection("dopamine", "mixture", [{"lr": 0.1}], [0.9], [[0.8, 0.9]], ())
    line = plot_curves([sel]).get_lines()[0]
    assert line.get_color() == colour("dopamine") and line.get_marker() == style("dopamine")[1]
