"""Fail if any page of the built book shows an execution error, a traceback, a local path or a bare number.

    python scripts/check_book_html.py _build/html

A bare number is a cell output that is only a number (such as `2.9728012084960938`), left behind when a cell
ends with an expression: the book glues numbers into its prose instead. A local path is the build machine's
own folders (the home directory, the checkout, the foundation cache) printed into a page.
"""
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKERS = ("Traceback (most recent call last)", "output traceback", "output error")
BARE_NUMBER = re.compile(r'class="output text_plain[^"]*"><div class="highlight"><pre><span></span>\s*'
                         r'\(?-?[\d.,]+(?:e[-+]?\d+)?\)?\s*</pre>')


def local_paths() -> list[str]:
    return sorted({str(ROOT), str(Path.home()), ".dopatut_cache", os.environ.get("DOPATUT_CACHE") or ".dopatut_cache"},
                  key=len, reverse=True)


def page_problems(text: str, name: str, paths=None) -> list[str]:
    found = [f"{name}: {m!r}" for m in MARKERS if m in text]
    found += [f"{name}: a bare number as a cell output: {m.group(0)[-60:]!r}" for m in BARE_NUMBER.finditer(text)]
    for path in paths if paths is not None else local_paths():
        if path and path != "/" and f"{path}/" in text:
            found.append(f"{name}: a local path printed: {path}/...")
    return found


def problems(html_dir: Path) -> list[str]:
    found = []
    for page in sorted(html_dir.rglob("*.html")):
        if "_static" in page.parts or "_sources" in page.parts:
            continue
        found += page_problems(page.read_text(errors="replace"), str(page.relative_to(html_dir)))
    return found


if __name__ == "__main__":
    html = Path(sys.argv[1] if len(sys.argv) > 1 else "_build/html")
    if not (html / "index.html").exists():
        sys.exit(f"no built book at {html} (expected {html / 'index.html'}); run jupyter-book build book/ first")
    bad = problems(html)
    print("\n".join(bad) or f"{html}: no tracebacks, execution errors, local paths or bare numbers in "
                            f"{len(list(html.rglob('*.html')))} pages")
    sys.exit(1 if bad else 0)
