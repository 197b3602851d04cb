"""Every "chapter N" in the prose links to chapter N (dopatut.course.chapter_links)."""
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

pytest.importorskip("docutils")
from docutils import nodes  # noqa: E402
from docutils.frontend import get_default_settings  # noqa: E402
from docutils.parsers.rst import Parser  # noqa: E402
from docutils.utils import new_document  # noqa: E402

from dopatut.course.chapter_links import chapter_docs, link_chapters, spans  # noqa: E402

DOCS = ["intro", "01_modes", "05_seeds", "07_limits", "appendix_performance"]


def test_chapters_are_found_by_their_file_names():
    assert chapter_docs(DOCS) == {1: "01_modes", 5: "05_seeds", 7: "07_limits"}


def test_a_mention_and_a_list_of_chapters_are_split_into_links():
    text = "Chapter 5's table; chapters 5 and\n7, a chapter, chapter 12."
    assert [(text[s:e], n) for s, e, n in spans(text)] == [("Chapter 5", 5), ("chapters 5", 5), ("7", 7),
                                                          ("chapter 12", 12)]


def _linked(rst: str, docname: str = "07_limits"):
    document = new_document("test", get_default_settings(Parser))
    Parser().parse(rst, document)
    app = SimpleNamespace(env=SimpleNamespace(found_docs=DOCS),
                          builder=SimpleNamespace(get_relative_uri=lambda here, there: f"{there}.html"))
    link_chapters(app, document, docname)
    return document


def test_prose_mentions_link_and_code_titles_self_mentions_and_unknown_chapters_do_not():
    doc = _linked("Title about chapter 5\n=====================\n\n"
                  "As chapter 5's table and chapters 1 and 7 show; not ``chapter 5`` nor chapter 9.\n")
    links = [(r.astext(), r["refuri"]) for r in doc.findall(nodes.reference)]
    assert links == [("chapter 5", "05_seeds.html"), ("chapters 1", "01_modes.html")]  # 7 is this page
    paragraph = next(iter(doc.findall(nodes.paragraph)))
    assert paragraph.astext() == "As chapter 5's table and chapters 1 and 7 show; not chapter 5 nor chapter 9."
    assert "chapter 5" in next(iter(doc.findall(nodes.title))).astext() and not list(
        next(iter(doc.findall(nodes.title))).findall(nodes.reference))


def test_the_book_loads_the_extension_and_numbers_its_chapters():
    root = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((root / "_config.yml").read_text())
    assert "dopatut.course.chapter_links" in config["sphinx"]["extra_extensions"]
    toc = yaml.safe_load((root / "book" / "_toc.yml").read_text())
    numbered = [c["file"] for part in toc["parts"] if part.get("numbered") for c in part["chapters"]]
    # the toc's numbers are the file names' numbers: "chapter 5" links to the page numbered 5
    assert [number for number, _ in sorted(chapter_docs(numbered).items(), key=lambda kv: numbered.index(kv[1]))] \
        == list(range(1, 11))
