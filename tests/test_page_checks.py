"""The page checks (scripts/check_book_html.py, dopatut.course.figcheck) fail on a page or figure with each defect."""
import importlib.util
import json
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from dopatut.course import figcheck  # noqa: E402
from dopatut.methods.names import CODE_NAMES, display  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_book_html", ROOT / "scripts" / "check_book_html.py")
check_html = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_html)
spec = importlib.util.spec_from_file_location("check_figures", ROOT / "scripts" / "check_figures.py")
check_figures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_figures)
spec = importlib.util.spec_from_file_location("check_page_widths", ROOT / "scripts" / "check_page_widths.py")
check_widths = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_widths)


def page(body: str) -> str:
    return f"<html><body><article>{body}</article></body></html>"


def cell(source: str | None = "x = 1", output: str = "", tags: str = "") -> str:
    inp = f'<div class="cell_input docutils container"><div class="highlight"><pre>{source}</pre></div></div>' \
        if source is not None else ""
    out = f'<div class="cell_output docutils container"><div class="output text_plain">{output}</div></div>' \
        if output else ""
    return f'<div class="cell docutils container {tags}">{inp}{out}</div>'


def found(body: str) -> list[str]:
    return check_html.page_problems(page(body), "p", [])


CLEAN = page("<p>Dopamine reaches 97.72% with 1,024 numbers, 0.1 s (arXiv 2602.11726); gain-only ties.</p>"
             "<p>LeCun et al. 1998, doi:10.1109/5.726791, https://doi.org/10.1109/5.726791.</p>"
             "<p>The next cell counts them:</p>" + cell("n = count()", "1,024 numbers")
             + "<table><tr><td>97.72 ± 0.05</td></tr></table>"
             + "<p>A drive below its threshold is silenced; the figure below shows it.</p>"
             + '<div class="cell_output"><pre>&lt;class &#x27;int&#x27;&gt; 0.97</pre></div>'
             + "<p>In code: <code>gain_only</code>, <code>1e-4</code>, <code>0.948199987411499</code>.</p>")


def test_a_clean_page_passes():
    assert check_html.page_problems(CLEAN, "p", []) == []


def test_repr_output_is_found():
    assert "repr" in found(cell("ax.legend()", "&lt;matplotlib.legend.Legend at 0x7f3a2c&gt;"))[0]
    assert "repr" in found(cell("fig", "&lt;Figure size 750x360 with 2 Axes&gt;"))[0]


def test_an_image_from_the_network_is_found_and_a_local_one_passes():
    remote = '<p><img alt="Open In Colab" src="https://colab.research.google.com/assets/colab-badge.svg" /></p>'
    assert "image from the network" in found(remote)[0]
    assert found('<p><img alt="Open In Colab" src="_images/open-in-colab.svg" /></p>') == []


def test_a_chapter_mention_that_is_not_a_link_is_found_but_a_link_or_a_self_mention_passes():
    assert "'chapter 5' is not a link" in found("<p>As chapter 5 showed.</p>")[0]
    assert found('<p>As <a href="05_seeds.html">chapter 5</a> showed.</p>') == []
    assert check_html.page_problems(page("<p>This chapter 5 shows.</p>"), "05_seeds.html", []) == []


def test_a_raw_float_in_output_is_found():
    assert "raw float" in found(cell("print(r)", "accuracy={&#x27;0&#x27;: 0.948199987411499}"))[0]


@pytest.mark.parametrize("text", ["reaches 97.7213%", "a gap of 0.94819", "took 23.6512 s"])
def test_more_than_four_significant_digits_in_prose_is_found(text):
    assert "4 significant digits" in found(f"<p>{text}</p>")[0]


def test_more_than_four_significant_digits_in_a_table_is_found_even_in_an_output():
    assert "4 significant digits" in found(cell("t", "<table><tr><td>0.94819</td></tr></table>"))[0]


def test_scientific_notation_in_prose_is_found():
    assert "scientific" in found("<p>asking again took 3.2e-04 s</p>")[0]
    assert "scientific" in found("<ul><li>a gap of 0.0e+00</li></ul>")[0]


@pytest.mark.parametrize("name", CODE_NAMES)
def test_a_code_name_in_prose_is_found(name):
    assert "code name" in found(f"<p>Dopamine ties with {name} on the mixture foundation.</p>")[0]
    assert found(f"<p>Dopamine ties with {display(name)} on the mixture foundation.</p>") == []


def test_dopamine_in_lower_case_is_a_code_name_only_in_a_verdict():
    assert "code name" in found("<p>dopamine ties with gain-only</p>")[0]
    assert found("<p>dopamine is a neuromodulator</p>") == []


def test_the_next_cell_pointing_at_a_hidden_cell_is_found():
    hidden = cell(None, tags="tag_remove-input")
    assert "whose code is hidden" in found("<p>The next cell checks that both are high.</p>" + hidden)[0]
    assert found("<p>The next cell checks that both are high.</p>" + cell("assert ok")) == []


def test_below_pointing_at_a_hidden_cell_that_shows_nothing_is_found():
    hidden = cell(None, tags="tag_remove-input")
    assert "shows nothing" in found("<p>The histograms below show where training moved them.</p>" + hidden)[0]
    shown = cell(None, '<img src="a.png"/>', tags="tag_remove-input")
    assert found("<p>The histograms below show where training moved them.</p>" + shown) == []


def overlapping_titles():
    fig, axes = plt.subplots(1, 2, figsize=(3, 2))
    for ax in axes:
        ax.set_title("a title far too long for its panel")
    return fig


def test_figure_check_finds_overlapping_titles_and_passes_a_clean_figure():
    assert any("overlaps" in p for p in figcheck.figure_problems(overlapping_titles()))
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3), constrained_layout=True)
    for ax in axes:
        ax.plot([0, 1, 2], [0, 1, 4], "o-", label="data")
        ax.set(title="short", xlabel="epoch", ylabel="accuracy (%)")
        ax.legend(loc="upper left")
    assert figcheck.figure_problems(fig) == []


def test_figure_check_finds_a_label_running_into_the_next_panel():
    fig, axes = plt.subplots(1, 2, figsize=(4, 2))
    axes[1].set_yticks([0.5], ["a tick label long enough to reach the panel on its left"])
    assert any("runs into panel 1" in p for p in figcheck.figure_problems(fig))


def test_figure_check_finds_a_legend_over_data_and_over_text():
    fig, ax = plt.subplots(figsize=(6, 3), constrained_layout=True)
    ax.plot(range(10), [9 - x for x in range(10)], "o-", label="falls")
    ax.legend(loc="upper left")
    assert any("covers" in p and "data point" in p for p in figcheck.figure_problems(fig))
    fig, ax = plt.subplots(figsize=(6, 3), constrained_layout=True)
    ax.bar(range(10), [0.5] * 10, label="share at 45°")
    ax.legend(loc="lower right")
    assert any("bar" in p for p in figcheck.figure_problems(fig))
    fig, ax = plt.subplots(figsize=(6, 3), constrained_layout=True)
    ax.plot([0, 1], [0, 0], label="flat")
    ax.text(0.9, 0.9, "a note", transform=ax.transAxes)
    ax.legend(loc="upper right")
    assert any("legend covers text 'a note'" in p for p in figcheck.figure_problems(fig))


def test_watch_reports_each_rendered_figure_once(tmp_path):
    report = tmp_path / "figures.jsonl"
    figcheck.watch(report)
    try:
        fig = overlapping_titles()
        fig.savefig(tmp_path / "a.png")
        fig.savefig(tmp_path / "a.svg")
        clean, ax = plt.subplots(figsize=(6, 3), constrained_layout=True)
        ax.set_title("fine")
        clean.savefig(tmp_path / "b.png")
    finally:
        figcheck._REPORT = None
    lines = figcheck.read_report(report)
    assert len(lines) == 1 and any("overlaps" in p for p in lines[0]["problems"]), lines
    assert check_figures.problems(report) and "overlaps" in check_figures.problems(report)[0]
    assert check_figures.problems(tmp_path / "none.jsonl") == []


def test_figure_check_startup_file_installs(tmp_path):
    installed = check_figures.setup(tmp_path)
    assert installed.parent == tmp_path / "profile_default" / "startup" and "watch(" in installed.read_text()


def names_last_set_in_hidden_cells(nb: dict) -> list[str]:
    """Names a visible cell reads whose latest assignment, before that cell, was in a hidden cell: the reader sees
    the name mean one thing (ch. 7's `mean`, a loop's float) while the code reads another (a hidden dict)."""
    import ast
    last_hidden, leaked = {}, []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code" or "%pip" in cell["source"]:
            continue
        tree = ast.parse("".join(cell["source"]))
        in_comprehension = {id(n) for c in ast.walk(tree) if isinstance(c, ast.comprehension) for n in ast.walk(c.target)}
        stored = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
                  and id(n) not in in_comprehension}  # a comprehension's variable is its own
        stored |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        stored |= {a.asname or a.name.split(".")[0] for n in ast.walk(tree)
                   if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
        hidden = bool(set(cell["metadata"].get("tags", [])) & {"remove-input", "remove-cell"})
        if not hidden:
            read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
            own = {n.id for c in ast.walk(tree) if isinstance(c, ast.comprehension) for n in ast.walk(c.target)
                   if isinstance(n, ast.Name)}  # read inside the comprehension that binds it
            leaked += sorted(n for n in read - stored - own if last_hidden.get(n))
        last_hidden.update({n: hidden for n in stored})
    return leaked


def test_a_name_reassigned_in_a_hidden_cell_is_found():
    def nb(*cells):
        return {"cells": [{"cell_type": "code", "source": s, "metadata": {"tags": t}} for s, t in cells]}
    shadowed = nb(("for mean in (1.0, 2.0): pass", []), ("mean = {'frozen': 1}", ["remove-cell"]),
                  ("assert mean['frozen'] == 1", []))
    assert names_last_set_in_hidden_cells(shadowed) == ["mean"]
    assert names_last_set_in_hidden_cells(nb(("mean = {'frozen': 1}", []), ("assert mean", []))) == []


@pytest.mark.parametrize("path", sorted((ROOT / "book").glob("*.ipynb")), ids=lambda p: p.name)
def test_no_visible_cell_reads_a_name_last_set_in_a_hidden_cell(path):
    leaked = names_last_set_in_hidden_cells(json.loads(path.read_text()))
    assert not leaked, f"{path.name}: visible cells read {leaked}, last assigned in a hidden cell"


def test_slanted_tick_labels_side_by_side_pass_and_upright_crowded_ones_fail():
    fig, ax = plt.subplots(figsize=(3, 2.5), constrained_layout=True)
    names = ["full fine-tuning", "threshold-only", "LoRA (r = 4)", "head-only"]
    ax.set_xticks(range(4), names, rotation=45, ha="right")
    assert figcheck.figure_problems(fig) == []
    ax.set_xticks(range(4), names, rotation=0, ha="center")
    assert any("x tick label" in p and "overlaps" in p for p in figcheck.figure_problems(fig))


def test_two_legends_on_top_of_each_other_are_found():
    fig, ax = plt.subplots(figsize=(4, 2), constrained_layout=True)
    line, = ax.plot([0, 1], [5, 5], label="a rather long label for a line")
    ax.add_artist(ax.legend([line], ["a rather long label for a line"], loc="center"))
    ax.legend([line], ["another long label, same place"], loc="center")
    ax.axis("off")
    assert "two legends overlap" in figcheck.figure_problems(fig)


def test_a_legend_over_a_step_histogram_is_found():
    fig, ax = plt.subplots(figsize=(6, 3), constrained_layout=True)
    ax.hist([1] * 10 + [2] * 20 + [5] * 60, bins=5, histtype="step", label="counts")  # tallest at the right
    ax.legend(loc="upper right")
    assert any("covers" in p for p in figcheck.figure_problems(fig))


@pytest.mark.skipif(not any(map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))),
                    reason="chromium is not installed (apt-get install -y chromium); .ci/run installs it")
def test_a_table_or_code_wider_than_its_column_is_found_and_one_that_fits_passes(tmp_path):
    def built(name: str, words: int) -> Path:
        path = tmp_path / name
        path.write_text('<html><body><article style="width: 600px"><section id="results"><table><tr><td '
                        f'style="white-space: nowrap">{"accuracy " * words}</td></tr></table>'
                        f'<pre style="overflow: auto">{"x" * 8 * words}</pre></section></article></body></html>')
        return path
    wide, fits = built("wide.html", 100), built("fits.html", 3)
    found = check_widths.problems([wide, fits], jobs=1)
    assert len(found) == 2 and found[0].startswith("wide.html: table in section #results starting 'accuracy"), found
    assert "px wider than its column" in found[0] and "split the table" in found[0]
    assert found[1].startswith("wide.html: pre in section #results") and "its longest line has 800" in found[1]
    assert check_widths.problems([fits]) == []
