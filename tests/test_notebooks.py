"""Notebook hygiene: the table of contents and the files agree; notebooks are stored clean."""
import importlib.util
import json
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
    assert f"git+{url}@{branch}" in setup["source"] and 'if "google.colab" in sys.modules' in setup["source"]


@pytest.mark.parametrize("path", sync.notebooks(), ids=lambda p: p.name)
def test_chapter_has_goals_recap_and_exercises(path):
    if path.stem == "intro" or path.stem.startswith("appendix"):
        pytest.skip("the landing page and appendices are not chapters")
    text = "\n".join(c["source"] for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown")
    for heading in ("Learning goals", "Recap", "Exercises"):
        assert heading in text, f"{path.name} has no '{heading}' section"
    assert "{glue:" in text, f"{path.name} glues no number into its prose"
