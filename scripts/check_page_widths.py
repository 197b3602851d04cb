"""Open every built page in headless Chromium at a 1280-px window and fail on a table, code or output block wider
than the text column it sits in (it would scroll sideways or be clipped).

    python scripts/check_page_widths.py                  # every page of _build/html
    python scripts/check_page_widths.py PAGE.html ...    # some pages

Each page is copied beside itself (so its relative assets load) with a script that, once the page has loaded,
opens the folded cells, measures each table, pre, code and output box (its content against its own width, its
right edge against its parent's and the article's) and writes what is more than 2 px too wide onto <body>.
Needs Debian's `chromium` (apt-get install -y chromium).
"""
from __future__ import annotations

import argparse
import html
import json
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_widget_page import OFFLINE, ROOT, run_chromium  # noqa: E402

TOLERANCE_PX = 2
BOXES = "article pre, article div.highlight, article div.output, article .pst-scrollable-table-container, article table"
MEASURE = """<script>
function lines(pre) {  // [characters a line the box shows, characters in its longest line]
  const probe = document.createElement("span"), cs = getComputedStyle(pre);
  Object.assign(probe, {textContent: "x".repeat(100)}).style.whiteSpace = "pre";
  pre.appendChild(probe);
  const char = probe.getBoundingClientRect().width / 100;
  probe.remove();
  return [Math.floor((pre.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight)) / char),
          Math.max(...pre.textContent.split("\\n").map(line => line.length))];
}
addEventListener("load", () => setTimeout(() => {
  document.querySelectorAll("details").forEach(d => d.open = true);
  document.querySelectorAll(".toggle-hidden").forEach(e => e.classList.remove("toggle-hidden"));
  const article = document.querySelector("article") || document.body, found = [];
  for (const el of document.querySelectorAll(BOXES)) {
    if (!el.getClientRects().length) continue;  // not displayed
    const right = Math.min(el.parentElement.getBoundingClientRect().right, article.getBoundingClientRect().right);
    const over = Math.max(el.scrollWidth - el.clientWidth, el.getBoundingClientRect().right - right);
    if (over > TOLERANCE) found.push([el, over]);
  }
  const innermost = found.filter(([el]) => !found.some(([other]) => other !== el && el.contains(other)));
  document.body.dataset.tooWide = JSON.stringify(innermost.map(([el, over]) => ({
    element: el.tagName.toLowerCase() + [...el.classList].map(c => "." + c).join(""),
    section: (el.closest("section") || {}).id || "", over: Math.round(over),
    text: el.textContent.replace(/\\s+/g, " ").trim().slice(0, 60),
    lines: el.tagName === "PRE" ? lines(el) : null})));
}, 1000));</script>""".replace("BOXES", json.dumps(BOXES)).replace("TOLERANCE", str(TOLERANCE_PX))


def too_wide(page: Path) -> list[dict]:
    """The boxes on `page` wider than their column, as measured in Chromium at a 1280-px window."""
    probe = page.with_name(f".widths-{page.name}")
    probe.write_text(page.read_text().replace("</body>", MEASURE + "</body>", 1))
    try:
        dom = run_chromium([*OFFLINE, "--window-size=1280,1000", "--virtual-time-budget=8000", "--dump-dom",
                            probe.resolve().as_uri()])
    finally:
        probe.unlink()
    measured = re.search(r'<body[^>]*\sdata-too-wide="([^"]*)"', dom)
    if measured is None:
        sys.exit(f"{page}: the measuring script did not run (no data-too-wide on <body>)")
    return json.loads(html.unescape(measured.group(1)))


def problems(pages: list[Path], jobs: int = os.cpu_count() or 1) -> list[str]:
    with ThreadPoolExecutor(jobs) as pool:
        results = pool.map(too_wide, pages)
    return [f"{page.name}: {box['element']} in section #{box['section']} starting {box['text']!r} is "
            f"{box['over']} px wider than its column at a 1280-px window; {fix(box)}"
            for page, boxes in zip(pages, results) for box in boxes]


def fix(box: dict) -> str:
    if box["lines"]:
        shows, longest = box["lines"]
        return (f"its box shows {shows} characters a line and its longest line has {longest}: hand-wrap the "
                f"lines to {shows} characters (or print shorter lines)")
    return "shorten its text, round or drop columns, or split the table"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", type=Path, help="built pages (default: every page of _build/html)")
    args = parser.parse_args()
    pages = args.pages or sorted((ROOT / "_build" / "html").glob("*.html"))
    pages = [p for p in pages if "<article" in p.read_text()]  # not index.html, a redirect
    if not pages:
        sys.exit("no built pages: build the book first (jupyter-book build book/)")
    start = time.time()
    found = problems(pages)
    print(f"{len(pages)} pages measured in Chromium in {time.time() - start:.0f} s")
    for p in found:
        print("FAIL:", p)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
