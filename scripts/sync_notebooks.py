"""Keep every book notebook clean and its Colab header in sync with _config.yml.

    python scripts/sync_notebooks.py          # rewrite notebooks in place
    python scripts/sync_notebooks.py --check  # exit 1 if any notebook would change

Each notebook starts with its title cell, then a Colab badge (markdown, tag `colab-badge`)
and a setup cell (code, tag `colab-setup`) that installs dopatut in Colab only, then prints the device
it will train on and whether results come from the shipped bundle. Outputs,
execution counts and editor metadata are removed: the book build executes the notebooks.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
KEEP_NB_METADATA = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                    "language_info": {"name": "python"}}
# the book's own copy of the badge (relative to the notebook): a page read offline shows it too
BADGE = "_static/open-in-colab.svg"
KEEP_CELL_METADATA = ("tags",)  # plus jupyter.source_hidden, set from the hide-input tag


def repository() -> tuple[str, str, str]:
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    return repo["url"].rstrip("/"), repo.get("branch", "main"), repo.get("path_to_book", "book")


def header_cells(nb_path: Path) -> list[dict]:
    url, branch, book = repository()
    github = url.split("github.com/", 1)[1]
    colab = f"https://colab.research.google.com/github/{github}/blob/{branch}/{book}/{nb_path.name}"
    badge = {"cell_type": "markdown", "metadata": {"tags": ["colab-badge"]},
             "source": f"[![Open In Colab]({BADGE})]({colab})"}
    setup = {"cell_type": "code", "metadata": {"tags": ["colab-setup", "remove-cell"]}, "execution_count": None,
             "outputs": [], "source": (
                 "# In Colab, install dopatut from the repository (and ipywidgets 8); elsewhere this cell does nothing.\n"
                 "import subprocess\n"
                 "import sys\n"
                 "if \"google.colab\" in sys.modules:\n"
                 f"    pip = [sys.executable, \"-m\", \"pip\", \"install\", \"-q\", \"dopatut @ git+{url}@{branch}\", \"ipywidgets>=8\"]\n"
                 "    if subprocess.run(pip).returncode != 0:\n"
                 "        raise RuntimeError(\"Installing dopatut failed (pip's message is above). Check the network, then \"\n"
                 "                           \"run this cell again before the rest of the chapter.\")\n"
                 "from dopatut.course.notebook import setup_line\n"
                 "print(setup_line())  # the device it trains on, and whether results come from the shipped bundle")}
    return [badge, setup]


def cleaned(nb: dict, nb_path: Path) -> dict:
    cells = [c for c in nb["cells"] if not {"colab-badge", "colab-setup"} & set(c.get("metadata", {}).get("tags", []))]
    out = []
    for cell in cells:
        src = cell["source"]
        meta = {k: v for k, v in cell.get("metadata", {}).items() if k in KEEP_CELL_METADATA}
        if "hide-input" in meta.get("tags", []):  # a folded solution in the book is folded in Jupyter too
            meta["jupyter"] = {"source_hidden": True}
        new = {"cell_type": cell["cell_type"], "metadata": meta, "source": "".join(src) if isinstance(src, list) else src}
        if cell["cell_type"] == "code":
            new.update(execution_count=None, outputs=[])
        out.append(new)
    out[1:1] = header_cells(nb_path)
    for i, cell in enumerate(out):
        cell["id"] = f"cell-{i:02d}"
    return {"cells": out, "metadata": KEEP_NB_METADATA, "nbformat": 4, "nbformat_minor": 5}


def notebooks() -> list[Path]:
    return sorted(p for p in BOOK.glob("*.ipynb"))


def dump(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def main(check: bool) -> int:
    stale = []
    for path in notebooks():
        text = path.read_text()
        new = dump(cleaned(json.loads(text), path))
        if new != text:
            stale.append(path)
            if not check:
                path.write_text(new)
    if check and stale:
        print("notebooks not clean (run python scripts/sync_notebooks.py):", *map(str, stale), sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main("--check" in sys.argv))
