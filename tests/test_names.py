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
