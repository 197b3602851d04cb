"""Fail if any page of the built book shows an execution error or a traceback.

    python scripts/check_book_html.py _build/html
"""
import sys
from pathlib import Path

MARKERS = ("Traceback (most recent call last)", "output traceback", "output error")


def problems(html_dir: Path) -> list[str]:
    found = []
    for page in sorted(html_dir.rglob("*.html")):
        if "_static" in page.parts or "_sources" in page.parts:
            continue
        text = page.read_text(errors="replace")
        found += [f"{page.relative_to(html_dir)}: {m!r}" for m in MARKERS if m in text]
    return found


if __name__ == "__main__":
    html = Path(sys.argv[1] if len(sys.argv) > 1 else "_build/html")
    if not (html / "index.html").exists():
        sys.exit(f"no built book at {html} (expected {html / 'index.html'}); run jupyter-book build book/ first")
    bad = problems(html)
    print("\n".join(bad) or f"{html}: no tracebacks or execution errors in {len(list(html.rglob('*.html')))} pages")
    sys.exit(1 if bad else 0)
