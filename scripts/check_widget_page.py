"""Open the attribution chapter's built page in headless Chromium and check its widgets render.

    python scripts/check_widget_page.py              # check the built book (_build/html), else the page build
    python scripts/check_widget_page.py --build      # build this page alone first (jupyter-book build book/06_attribution.ipynb)
    python scripts/check_widget_page.py --html PATH  # check some other built page

Fails (exit 1) when the page shows an execution error, loads widget JavaScript from the network, or when,
after the page's JavaScript ran, no widget was rendered. It also opens a chapter with equations with the
network shut off (an unreachable proxy) and fails unless MathJax, served from the book's own files, rendered
them. Saves screenshots under _build/screenshots/.
Needs Debian's `chromium` (apt-get install -y chromium).
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = "06_attribution"
# the full book, then the page built alone (jupyter-book names its folder after the path: book-06_attribution)
CANDIDATES = (ROOT / "_build" / "html" / f"{PAGE}.html", ROOT / "_build" / "_page" / f"book-{PAGE}" / "html" / f"{PAGE}.html",
              ROOT / "_build" / "_page" / PAGE / "html" / f"{PAGE}.html")
ERROR_MARKERS = ("Traceback (most recent call last)", "output traceback", "output error")  # as check_book_html.py
# classes the html-manager gives the widgets it renders (the saved JSON alone has none of these)
RENDERED = {"image": r'<img[^>]*class="[^"]*widget-image', "slider": r'class="[^"]*widget-slider',
            "toggle buttons": r'class="[^"]*widget-toggle-buttons'}
FOCUS_CSS = "article section section:not(#the-explorer-on-this-page) { display: none; }"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    sys.exit("chromium not found: apt-get install -y chromium")


def run_chromium(args: list[str], timeout_s: int = 120) -> str:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        result = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                                capture_output=True, text=True, timeout=timeout_s)
    if result.returncode != 0:
        sys.exit(f"chromium failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return result.stdout


MATH_PAGE = "03_dopamine.html"
OFFLINE = ["--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]  # every http(s) request fails


def check_math(page: Path) -> list[str]:
    """The page's equations render with the network off: MathJax comes from the book's own static files."""
    if not page.exists():
        return [f"no built page {page} to check math on"]
    source = page.read_text()
    remote = re.findall(r'<script[^>]+src="(https?://[^"]*mathjax[^"]*)"', source, re.I)
    if remote:
        return [f"MathJax is loaded from the network: {remote[0]}"]
    dom = run_chromium([*OFFLINE, "--virtual-time-budget=20000", "--dump-dom", page.resolve().as_uri()])
    rendered, raw = dom.count("<mjx-container"), source.count('class="math notranslate')
    print(f"{page.name}: {rendered} equations rendered by MathJax offline ({raw} math blocks in the page)")
    return [] if rendered >= max(1, raw) else [f"math did not render offline: {rendered} of {raw} equations"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", type=Path, help="the built page to check")
    parser.add_argument("--build", action="store_true", help="build the chapter as a page first")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "screenshots")
    # the static explorer's picture; the live explorer's output is removed from the page, where it cannot compute
    parser.add_argument("--min-images", type=int, default=1, help="rendered Image widgets expected at least")
    args = parser.parse_args()
    if args.build:
        subprocess.run(["jupyter-book", "build", f"book/{PAGE}.ipynb"], cwd=ROOT, check=True)
        args.html = args.html or next((p for p in CANDIDATES[1:] if p.exists()), None)
    html = args.html or next((p for p in CANDIDATES if p.exists()), None)
    if html is None or not html.exists():
        sys.exit(f"no built page: looked for {html or ' or '.join(map(str, CANDIDATES))}; build the book or pass --build")
    url, problems = html.resolve().as_uri(), []

    source = html.read_text()
    problems += [f"the page shows an execution error ({m!r})" for m in ERROR_MARKERS if m in source]
    if "application/vnd.jupyter.widget-state+json" not in source:
        problems.append("the page holds no saved widget state")
    remote = re.findall(r'<script[^>]+src="(https?://[^"]+)"', source)
    problems += [f"widget JavaScript from the network: {src}" for src in remote if "widget" in src or "require" in src]

    dom = run_chromium(["--virtual-time-budget=20000", "--dump-dom", url])
    counts = {name: len(re.findall(pattern, dom)) for name, pattern in RENDERED.items()}
    print(f"{html}: rendered widgets after JavaScript ran: {counts}")
    if counts["image"] < args.min_images or counts["slider"] == 0 or counts["toggle buttons"] == 0:
        problems.append(f"widgets did not render (need >= {args.min_images} images, a slider and toggle "
                        f"buttons, got {counts})")

    args.out.mkdir(parents=True, exist_ok=True)
    # headless screenshots ignore #fragments, so a copy beside the page (same relative links) hides every
    # section but the page-side explorer; the second screenshot is the page's top as it is
    focused = html.with_name(f".{PAGE}-explorer.html")
    focused.write_text(source.replace("</head>", f"<style>{FOCUS_CSS}</style></head>", 1))
    try:
        for name, page_url in ((PAGE, focused.resolve().as_uri()), (f"{PAGE}-top", url)):
            shot = args.out / f"{name}.png"
            run_chromium(["--virtual-time-budget=20000", "--window-size=1280,1400", f"--screenshot={shot}", page_url])
            print(f"screenshot: {shot}")
    finally:
        focused.unlink()
    problems += check_math(html.with_name(MATH_PAGE))
    for p in problems:
        print("FAIL:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
