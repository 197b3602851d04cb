"""Notebook hygiene: the table of contents and the files agree; notebooks are stored clean."""
import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
spec = importlib.util.spec_from_file_location("sync_notebooks", ROOT / "scripts" / "sync_notebooks.py")
sync = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sync)


def toc_files() -> list[str]:
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part["chapters"]]
    return files


def test_every_toc_entry_exists_and_every_notebook_is_in_the_toc():
    stems = {p.stem for p in BOOK.glob("*.ipynb")} | {p.stem for p in BOOK.glob("*.md")}
    missing = [f for f in toc_files() if f not in stems]
    assert not missing, f"in _toc.yml but not in book/: {missing}"
    orphans = sorted({p.stem for p in BOOK.glob("*.ipynb")} - set(toc_files()))
    assert not orphans, f"notebooks not in _toc.yml: {orphans}"


@pytest.mark.parametrize("path", sync.notebooks(), ids=lambda p: p.name)
def test_notebook_is_stored_clean_with_its_colab_header(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{path.name} has outputs"
    assert set(nb["metadata"]) <= {"kernelspec", "language_info"}
    assert path.read_text() == sync.dump(sync.cleaned(nb, path)), \
        f"{path.name} is not clean: run python scripts/sync_notebooks.py"
    url, branch, _ = sync.repository()
    badge, setup = nb["cells"][1], nb["cells"][2]
    assert f"{url.split('github.com/')[1]}/blob/{branch}/book/{path.name}" in badge["source"]
    image = re.search(r"!\[[^\]]*\]\(([^)\s]+)\)", badge["source"]).group(1)  # the book's own file: it reads offline
    assert not image.startswith(("http:", "https:")) and (path.parent / image).is_file(), image
    assert f"git+{url}@{branch}" in setup["source"] and 'if "google.colab" in sys.modules' in setup["source"]


@pytest.mark.parametrize("path", sync.notebooks(), ids=lambda p: p.name)
def test_chapter_has_goals_recap_and_exercises(path):
    if path.stem == "intro" or path.stem.startswith("appendix"):
        pytest.skip("the landing page and appendices are not chapters")
    text = "\n".join(c["source"] for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown")
    for heading in ("Learning goals", "Recap", "Exercises"):
        assert heading in text, f"{path.name} has no '{heading}' section"
    assert "{glue:" in text, f"{path.name} glues no number into its prose"


check_html = importlib.util.module_from_spec(
    s := importlib.util.spec_from_file_location("check_book_html", ROOT / "scripts" / "check_book_html.py"))
s.loader.exec_module(check_html)


def test_html_check_finds_tracebacks_bare_numbers_and_local_paths():
    bare = ('<div class="output text_plain highlight-myst-ansi notranslate"><div class="highlight"><pre><span></span>'
            '2.9728012084960938\n</pre></div>')
    words = bare.replace("2.9728012084960938", "soft 97.41%, hard 97.40%")
    assert check_html.page_problems(words, "p", ["/home/me"]) == []
    assert "bare number" in check_html.page_problems(bare, "p", ["/home/me"])[0]
    assert "local path" in check_html.page_problems("loaded from /home/me/.cache/x.pt", "p", ["/home/me"])[0]
    assert "Traceback" in check_html.page_problems("Traceback (most recent call last)", "p", [])[0]


def hidden_and_visible_names(nb: dict):
    """Names assigned in hidden code cells (tags remove-input / remove-cell) and names read in visible ones."""
    import ast
    hidden, visible_defined, visible_read = set(), set(), []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code" or "%pip" in cell["source"]:
            continue
        tree = ast.parse(cell["source"])
        stored = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        stored |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        stored |= {a.asname or a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                   for a in n.names}
        tags = set(cell["metadata"].get("tags", []))
        if tags & {"remove-input", "remove-cell"}:
            hidden |= stored
        else:
            visible_defined |= stored
            visible_read += [n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
    return hidden - visible_defined, set(visible_read)


@pytest.mark.parametrize("path", sync.notebooks(), ids=lambda p: p.name)
def test_visible_cells_use_no_name_defined_only_in_hidden_cells(path):
    only_hidden, read = hidden_and_visible_names(json.loads(path.read_text()))
    leaked = sorted(only_hidden & read)
    assert not leaked, f"{path.name}: visible cells use {leaked}, defined only in hidden cells"


def ends_with_a_shown_glue_or_check(source: str) -> bool:
    """True when a cell's last statement is a glue(...) or check_...(...) call, on one line or several, not
    silenced by a trailing ';': IPython would show its value (a glued sentence printed twice on the page)."""
    import ast
    body = ast.parse(source).body
    last = body[-1] if body else None
    if not (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)):
        return False
    func = last.value.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    return (name == "glue" or name.startswith("check_")) and not source.rstrip().endswith(";")


def test_the_shown_glue_check_finds_one_line_and_several():
    assert ends_with_a_shown_glue_or_check('glue("x", 1)')
    assert ends_with_a_shown_glue_or_check('x = 2\nglue("words", Markdown("a" if x else\n                               "b"))')
    assert ends_with_a_shown_glue_or_check("check_soft_gate(soft_gate)")
    assert not ends_with_a_shown_glue_or_check('glue("x", 1);')
    assert not ends_with_a_shown_glue_or_check('glue("words", Markdown("a" if x else\n    "b"));')
    assert not ends_with_a_shown_glue_or_check('y = glue("x", 1)')


@pytest.mark.parametrize("path", sync.notebooks(), ids=lambda p: p.name)
def test_no_cell_ends_with_a_bare_glue_or_check(path):
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "code" or "remove-cell" in cell["metadata"].get("tags", []) or "%pip" in cell["source"]:
            continue
        assert not ends_with_a_shown_glue_or_check(cell["source"]), \
            f"{path.name}: the cell ending {cell['source'].rstrip()[-60:]!r} would print its value; end it with ;"


def glued_but_missing(nb: dict) -> list[str]:
    """Names the prose reads ({glue:text}`name:...`, {glue:md}`name`) that no code cell of the notebook glues: the
    book build (-W) fails on them, but executing the notebook does not notice."""
    prose = "\n".join(c["source"] for c in nb["cells"] if c["cell_type"] == "markdown")
    code = "\n".join(c["source"] for c in nb["cells"] if c["cell_type"] == "code")
    read = set(re.findall(r"\{glue(?::\w+)?\}`([^`:]+)", prose))
    literal = set(re.findall(r"[\"']([\w.-]+)[\"']", code))  # glue("name", ...) or a dict of names glued in a loop
    patterns = [re.sub(r"\\\{[^}]*\\\}", r"[\\w.-]+", re.escape(m)) for m in
                re.findall(r"glue\(\s*f[\"']([^\"']+)[\"']", code)]  # glue(f"s_short_{kind}", ...)
    return sorted(n for n in read if n not in literal and not any(re.fullmatch(q, n) for q in patterns))


def test_the_missing_glue_check_finds_a_name_no_cell_glues():
    nb = {"cells": [{"cell_type": "markdown", "source": "{glue:text}`acc:.1%` and {glue:md}`words` and {glue:text}`s_a`"},
                    {"cell_type": "code", "source": 'glue("acc", 0.9)\nfor k in "ab":\n    glue(f"s_{k}", 1)'}]}
    assert glued_but_missing(nb) == ["words"]


@pytest.mark.parametrize("path", sync.notebooks(), ids=lambda p: p.name)
def test_every_glued_name_the_prose_reads_is_glued(path):
    missing = glued_but_missing(json.loads(path.read_text()))
    assert not missing, f"{path.name}: the prose reads {missing}, which no code cell glues"


CELL_WIDTH, SOLUTION_WIDTH = 88, 80  # characters a code box shows at the text width (book/_static/dopatut.css)
HIDDEN = {"remove-cell", "remove-input", "hide-input"}


def long_code_lines(nb: dict) -> list[str]:
    """Lines of shown code wider than their box: a visible code cell's, or a code block's in a markdown cell (a
    fenced one, or in an {admonition} an indented literal one), narrower in an admonition by its margins. They
    would scroll sideways or wrap."""
    found = []
    for i, cell in enumerate(nb["cells"]):
        lines = cell["source"].split("\n")
        if cell["cell_type"] == "code" and not HIDDEN & set(cell["metadata"].get("tags", [])):
            found += [f"cell {i}, {len(line)} > {CELL_WIDTH}: {line}" for line in lines if len(line) > CELL_WIDTH]
        elif cell["cell_type"] == "markdown":
            admonition, fenced = None, False  # the admonition's closing fence; inside a fenced code block
            for line in lines:
                width = SOLUTION_WIDTH if admonition else CELL_WIDTH
                opening = re.match(r"(`{3,})\{admonition\}", line)
                if opening and not fenced:
                    admonition = opening.group(1)
                elif admonition and line.strip() == admonition and not fenced:
                    admonition = None
                elif re.fullmatch(r"```\w*", line.strip()):
                    fenced = not fenced
                elif fenced or admonition and line.startswith("    "):
                    shown = line if fenced else line[4:]  # a literal block's indent is not shown; the rest is
                    if len(shown.rstrip()) > width:
                        found.append(f"cell {i} (markdown), {len(shown.rstrip())} > {width}: {shown.strip()}")
    return found


def test_the_long_line_check_finds_a_cell_line_and_a_solution_line():
    long = "x = " + "1 + " * 30 + "1"
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": long},
                    {"cell_type": "code", "metadata": {"tags": ["remove-input"]}, "source": long},
                    {"cell_type": "markdown", "metadata": {},
                     "source": f"```{{admonition}} Solution\n:class: dropdown\n\n    {long[:84]}\n    y = 1\n```\n{long}"},
                    {"cell_type": "markdown", "metadata": {},
                     "source": f"````{{admonition}} Solution\n```python\n{' ' * 8}{long[:76]}\n```\n````\n```\n{long[:84]}\n```"}]}
    assert [f.split(",")[0] for f in long_code_lines(nb)] == ["cell 0", "cell 2 (markdown)", "cell 3 (markdown)"]


@pytest.mark.parametrize("path", sync.notebooks(), ids=lambda p: p.name)
def test_shown_code_fits_its_box(path):
    assert long_code_lines(json.loads(path.read_text())) == [], \
        f"{path.name}: wrap these lines by hand (scripts/check_page_widths.py measures the built page)"


def unused_shown_imports(nb: dict) -> list[str]:
    """Names a shown code cell imports that no shown code reads: not a shown cell (folded ones count) nor a
    markdown cell's code (a solution, a name in the prose). A reader running the notebook wonders what they are
    for; an import only bookkeeping needs belongs in the hidden cell that uses it."""
    import ast
    imported, read, markdown = {}, set(), ""
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            markdown += cell["source"] + "\n"
            continue
        if cell["cell_type"] != "code" or {"remove-input", "remove-cell"} & set(cell["metadata"].get("tags", [])):
            continue
        tree = ast.parse(cell["source"])
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                imported.update({a.asname or a.name.split(".")[0]: node.lineno for a in node.names if a.name != "*"})
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                read.add(node.id)
    return sorted(name for name in imported
                  if name not in read and not re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", markdown))


def test_the_unused_import_check_reads_shown_cells_and_solutions():
    cell = lambda source, *tags: {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": source}
    nb = {"cells": [cell("from m import a, b, c, d\nimport numpy as np"), cell("a(1)"), cell("b", "hide-input"),
                    cell("np.ones(c)", "remove-input"), {"cell_type": "markdown", "metadata": {}, "source": "    d(2)"}]}
    assert unused_shown_imports(nb) == ["c", "np"]


@pytest.mark.parametrize("path", sync.notebooks(), ids=lambda p: p.name)
def test_shown_cells_import_only_what_shown_code_reads(path):
    unused = unused_shown_imports(json.loads(path.read_text()))
    assert not unused, (f"{path.name}: shown cells import {unused}, which only hidden cells read (or none): "
                        f"import them in the hidden cell that uses them")
