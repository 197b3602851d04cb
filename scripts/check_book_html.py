"""Fail if a page of the built book shows what a reader should never see.

    python scripts/check_book_html.py _build/html

Every page is checked for:
- an execution error, a traceback, or a local path (the build machine's home, checkout or foundation cache);
- a bare number as a cell output (such as `2.9728012084960938`), left when a cell ends with an expression;
- a repr as output (`<matplotlib.legend.Legend at 0x7f...>`, `<Figure size ...>`), or a float printed raw
  (`0.948199987411499`) in a cell's output;
- in prose and tables: a number with more than 4 significant digits (`97.7213`), or in scientific notation
  (`3.2e-04`), or a method's code name (`gain_only`, `lora`; dopatut.methods.names says how to name it);
- a paragraph that points at "the next cell" or at something "below" when what follows is a hidden cell;
- an image loaded from the network (the book reads offline: keep a copy under book/_static);
- a "chapter N" in prose that is not a link to chapter N (dopatut.course.chapter_links makes them).
"""
import os
import re
import sys
from pathlib import Path

from bs4 import BeautifulSoup, NavigableString

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from dopatut.methods.names import CODE_NAMES  # noqa: E402

REMOTE_IMAGE = re.compile(r'<img[^>]*\bsrc="(https?://[^"]+)"')
MARKERS = ("Traceback (most recent call last)", "output traceback", "output error")
BARE_NUMBER = re.compile(r'class="output text_plain[^"]*"><div class="highlight"><pre><span></span>\s*'
                         r'\(?-?[\d.,]+(?:e[-+]?\d+)?\)?\s*</pre>')
REPR = re.compile(r"<(?:[A-Za-z_][\w.]*(?: object)? at 0x[0-9a-fA-F]+|Figure size [^>]*|matplotlib\.[^>]*)>")
RAW_FLOAT = re.compile(r"(?<![\w.])-?\d+\.\d{7,}(?![\w.])")  # a float's repr: 0.948199987411499
DECIMAL = re.compile(r"(?<![\w.,])\d[\d,]*\.\d+(?![\w]|\.\d)")
SCIENTIFIC = re.compile(r"(?<![\w.])\d+(?:\.\d+)?[eE][-+]?\d+(?![\w.])")
ARXIV = re.compile(r"arxiv\S{0,12}?\s*\d{4}\.\d{4,5}", re.IGNORECASE)  # an arXiv number is a name
DOI_OR_URL = re.compile(r"\b(?:doi:\s*|https?://)\S+", re.IGNORECASE)  # so is a DOI, or an address
CODE_NAME = re.compile(r"(?<![\w.`/-])(" + "|".join(map(re.escape, CODE_NAMES)) + r")(?![\w-])")
# "the next cell(s)", "the figure below", "as follows below:"; not "below zero" or "below its threshold"
CHAPTER = re.compile(r"\b[Cc]hapters?\s+(\d{1,2})\b")
DOPAMINE_VERDICT = re.compile(r"\bdopamine (?:beats|ties with|loses to)\b|\b(?:beats|ties with|loses to) dopamine\b")
POINTER = re.compile(r"\bnext cells?\b|\b(?:cells?|figure|picture|table|plot|panels?|histograms?|output|sentences?|"
                     r"list|function|code|check|grid|intervals?|numbers?)\s+below\b|\bbelow\s*:", re.IGNORECASE)
SKIP = ("code", "pre", "kbd", "script", "style", "math")
SKIP_CLASSES = ("math", "highlight", "cell_input", "cell_output", "admonition", "sig", "toctree-wrapper")


def local_paths() -> list[str]:
    return sorted({str(ROOT), str(Path.home()), ".dopatut_cache", os.environ.get("DOPATUT_CACHE") or ".dopatut_cache"},
                  key=len, reverse=True)


def significant_digits(number: str) -> int:
    return len(number.replace(",", "").replace(".", "").lstrip("0"))


def _skipped(node, in_tables: bool) -> bool:
    for parent in node.parents:
        if parent.name in SKIP:
            return True
        classes = parent.get("class") or []
        if any(c in SKIP_CLASSES for c in classes) and not (in_tables and "cell_output" in classes):
            return True
    return False


def prose_texts(soup, tables: bool = True):
    """The text a reader reads as prose: paragraphs, list items and (with `tables`) table cells, outputs' too,
    but never code, printed output or math."""
    root = soup.find("article") or soup
    for node in root.find_all(string=True):
        if not isinstance(node, NavigableString) or not node.strip():
            continue
        in_table = node.find_parent(["td", "th"]) is not None
        if in_table and not tables:
            continue
        if not in_table and node.find_parent(["p", "li", "dd", "dt", "h1", "h2", "h3", "h4", "caption"]) is None:
            continue
        if _skipped(node, in_tables=in_table):
            continue
        yield str(node)


def output_texts(soup):
    root = soup.find("article") or soup
    for out in root.select("div.cell_output"):
        yield out.get_text()


def unlinked_chapters(soup, name: str) -> list[str]:
    """Mentions of another chapter, in prose, that are not links (a chapter's mention of itself needs none)."""
    own = re.match(r"(\d{2})_", name)
    found = []
    for node in (soup.find("article") or soup).find_all(string=CHAPTER):
        if node.find_parent("a") or node.find_parent(["p", "li", "dd"]) is None or _skipped(node, in_tables=False):
            continue
        found += [f"{name}: 'chapter {m.group(1)}' is not a link, in {str(node).strip()[:80]!r} "
                  f"(is dopatut.course.chapter_links in _config.yml's extra_extensions?)"
                  for m in CHAPTER.finditer(str(node)) if not (own and int(own.group(1)) == int(m.group(1)))]
    return found


def prose_problems(soup, name: str) -> list[str]:
    found = []
    for text in prose_texts(soup):
        clean = DOI_OR_URL.sub("", ARXIV.sub("", text))
        found += [f"{name}: a number with more than 4 significant digits in prose or a table: {m.group(0)!r} "
                  f"in {text.strip()[:80]!r}" for m in DECIMAL.finditer(clean) if significant_digits(m.group(0)) > 4]
        found += [f"{name}: scientific notation in prose: {m.group(0)!r} in {text.strip()[:80]!r}"
                  for m in SCIENTIFIC.finditer(clean)]
        found += [f"{name}: a method's code name in prose: {m.group(1)!r} in {text.strip()[:80]!r} "
                  f"(use dopatut.methods.names.display)" for m in CODE_NAME.finditer(text)]
        found += [f"{name}: a method's code name in prose: {m.group(0)!r} in {text.strip()[:80]!r}"
                  for m in DOPAMINE_VERDICT.finditer(text)]
    return found


def _next_cell(paragraph):
    """The first code cell after `paragraph`, or None if prose or a heading comes first."""
    block = paragraph
    while block.parent is not None and block.parent.name in ("li", "ul", "ol", "blockquote"):
        block = block.parent
    for sibling in block.find_next_siblings():
        classes = sibling.get("class") or []
        if "cell" in classes:
            return sibling
        if sibling.name in ("p", "ul", "ol", "section", "h1", "h2", "h3", "h4") or "admonition" in classes:
            return None
    return None


def pointer_problems(soup, name: str) -> list[str]:
    """A paragraph that says "the next cell ..." or "... below" must be followed by a cell the reader can see."""
    found = []
    root = soup.find("article") or soup
    for p in root.find_all("p"):
        if p.find_parent(class_=["admonition", "cell_output"]):
            continue
        text = p.get_text(" ")
        pointers = [m.group(0) for m in POINTER.finditer(text)]
        if not pointers:
            continue
        cell = _next_cell(p)
        if cell is None:
            continue  # points at a figure, a table or the prose below: not a cell
        shows_input = cell.find(class_="cell_input") is not None
        shows_output = bool((cell.find(class_="cell_output") or BeautifulSoup("", "html.parser")).get_text().strip()
                            or cell.find("img"))
        if "cell" in " ".join(pointers).lower() and not shows_input:
            found.append(f"{name}: {text.strip()[:80]!r} points at the next cell, whose code is hidden")
        elif not (shows_input or shows_output):
            found.append(f"{name}: {text.strip()[:80]!r} points at what follows, a hidden cell that shows nothing")
    return found


def page_problems(text: str, name: str, paths=None) -> list[str]:
    found = [f"{name}: {m!r}" for m in MARKERS if m in text]
    found += [f"{name}: a bare number as a cell output: {m.group(0)[-60:]!r}" for m in BARE_NUMBER.finditer(text)]
    for path in paths if paths is not None else local_paths():
        if path and path != "/" and f"{path}/" in text:
            found.append(f"{name}: a local path printed: {path}/...")
    found += [f"{name}: an image from the network, {m.group(1)}: offline it shows only its alt text; "
              f"save a copy under book/_static and point at that" for m in REMOTE_IMAGE.finditer(text)]
    soup = BeautifulSoup(text, "html.parser")
    for out in output_texts(soup):
        found += [f"{name}: a repr as output: {m.group(0)[:60]!r}" for m in REPR.finditer(out)]
        found += [f"{name}: a raw float as output: {m.group(0)!r} (format it for people)" for m in RAW_FLOAT.finditer(out)]
    return found + prose_problems(soup, name) + pointer_problems(soup, name) + unlinked_chapters(soup, name)


def problems(html_dir: Path) -> list[str]:
    found = []
    for page in sorted(html_dir.rglob("*.html")):
        if "_static" in page.parts or "_sources" in page.parts or page.name in ("search.html", "genindex.html"):
            continue
        found += page_problems(page.read_text(errors="replace"), str(page.relative_to(html_dir)))
    return found


if __name__ == "__main__":
    html = Path(sys.argv[1] if len(sys.argv) > 1 else "_build/html")
    if not (html / "index.html").exists():
        sys.exit(f"no built book at {html} (expected {html / 'index.html'}); run jupyter-book build book/ first")
    bad = problems(html)
    print("\n".join(bad) or f"{html}: no tracebacks, execution errors, local paths, bare numbers, reprs, long or "
                            f"scientific numbers, images from the network, unlinked chapter mentions, code names or pointers at hidden cells in "
                            f"{len(list(html.rglob('*.html')))} pages")
    sys.exit(1 if bad else 0)
