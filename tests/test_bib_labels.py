"""The references page's labels read as the inline author-year citations (dopatut.course.bib_labels)."""
from pathlib import Path

import pytest
import yaml

pytest.importorskip("sphinxcontrib.bibtex")
from pybtex.database import Entry, Person, parse_file  # noqa: E402

from dopatut.course.bib_labels import STYLE, entry_label, labels, setup  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _entry(authors, year="2020"):
    return Entry("article", fields={"title": "T", "year": year}, persons={"author": [Person(a) for a in authors]})


def test_one_two_and_many_authors_read_as_an_author_year_citation():
    assert entry_label(_entry(["Nelson, Edward"])) == "Nelson, 2020"
    assert entry_label(_entry(["Nelson, Edward", "Bottou, L{\\'e}on"])) == "Nelson and Bottou, 2020"
    assert entry_label(_entry(["Ben Zaken, Elad", "Goldberg, Yoav", "Ravfogel, Shauli"], "2022")) == \
        "Ben Zaken et al., 2022"
    assert entry_label(_entry(["Bottou, L{\\'e}on"])) == "Bottou, 2020"  # last names only; LaTeX read


def test_shared_labels_get_a_letter_and_others_none():
    entries = [_entry(["Yan, Qiqi"]), _entry(["Taly, Ankur"]), _entry(["Yan, Qiqi"])]
    assert labels(entries) == ["Yan, 2020a", "Taly, 2020", "Yan, 2020b"]


def test_the_registered_style_labels_the_books_bibliography_and_the_book_uses_it():
    setup(None)
    from pybtex.plugin import find_plugin
    database = parse_file(ROOT / "book" / "references.bib")
    formatted = list(find_plugin("pybtex.style.formatting", STYLE)().format_bibliography(database))
    assert {e.key: e.label for e in formatted}["dopamine2026"] == "Ghasemlou, 2026"
    assert len({e.label for e in formatted}) == len(formatted)  # no twins: every label is its inline citation
    assert [e.label for e in formatted] == sorted(e.label for e in formatted)  # sorted by author
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert "dopatut.course.bib_labels" in config["sphinx"]["extra_extensions"]
    assert config["sphinx"]["config"]["bibtex_default_style"] == STYLE
    assert config["sphinx"]["config"]["bibtex_reference_style"] == "author_year"
