"""The one table type: the same cells as HTML for a notebook and as markdown for a file."""
import pytest

from dopatut.foundations.tables import Table


def test_html_escapes_text_reads_bold_and_code_and_styles_only_aligned_columns():
    table = Table(["name", "count"], [["`hidden1.gate`", "1,024"], ["x<1 & **total**", 7]])
    assert table._repr_html_() == table.html() == (
        "<table><thead><tr><th>name</th><th>count</th></tr></thead><tbody>"
        "<tr><td><code>hidden1.gate</code></td><td>1,024</td></tr>"
        "<tr><td>x&lt;1 &amp; <b>total</b></td><td>7</td></tr></tbody></table>")
    aligned = Table(["a", "b"], [["1", "2"]], caption="Two **columns**", align=("left", "right")).html()
    assert aligned.startswith("<table><caption>Two <b>columns</b></caption><thead><tr>"
                              '<th style="text-align:left">a</th><th style="text-align:right">b</th>')
    assert '<td style="text-align:right">2</td>' in aligned


def test_markdown_has_a_rule_per_alignment_and_keeps_the_marks():
    table = Table(["goal", "met"], [["speed | size", "**no**"]], align=("left", "center"))
    assert table.markdown() == "| goal | met |\n| :--- | :---: |\n| speed \\| size | **no** |"
    assert str(Table(["a"], [[1]], caption="c")) == "*c*\n\n| a |\n| --- |\n| 1 |"


def test_rows_and_alignments_that_do_not_fit_the_header_are_refused():
    with pytest.raises(ValueError, match=r"row 1 has 1 cells but the header has 2 columns"):
        Table(["a", "b"], [[1, 2], [3]])
    with pytest.raises(ValueError, match=r"align=\['left'\] must give one of"):
        Table(["a", "b"], [[1, 2]], align=("left",))
    with pytest.raises(ValueError, match="must give one of"):
        Table(["a"], [[1]], align=("middle",))


def test_wrap_first_lets_only_the_first_column_wrap():
    from dopatut.foundations.tables import Table
    plain = Table(["a", "b"], [["x", "1"]], align=("left", "right")).html()
    wrapped = Table(["a", "b"], [["x", "1"]], align=("left", "right"), wrap_first=True).html()
    assert "white-space" not in plain
    assert '<td style="text-align:left;white-space:normal">x</td><td style="text-align:right">1</td>' in wrapped
    assert '<td style="white-space:normal">x</td><td>1</td>' in Table(["a", "b"], [["x", "1"]], wrap_first=True).html()
