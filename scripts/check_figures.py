"""Fail if a figure the book rendered has overlapping text or a legend over its data.

    DOPATUT_FIGCHECK=_build/figures.jsonl IPYTHONDIR=_build/ipython pytest --nbmake book   # after setup() below
    python scripts/check_figures.py _build/figures.jsonl

`python scripts/check_figures.py --setup _build/ipython` installs scripts/figcheck_startup.py as an IPython
startup file there, so that every kernel started with IPYTHONDIR=_build/ipython checks its figures
(dopatut.course.figcheck.watch) as it renders them.
"""
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from dopatut.course.figcheck import read_report  # noqa: E402


def setup(ipython_dir) -> Path:
    startup = Path(ipython_dir) / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(ROOT / "scripts" / "figcheck_startup.py", startup / "50-dopatut-figcheck.py"))


def problems(report) -> list[str]:
    return [f"{Path(r['cwd']).name}/{r['notebook']} figure {r['title']!r} (cell {' | '.join(r['cell'])[:70]!r}): {p}"
            for r in read_report(report) for p in r["problems"]]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--setup"]:
        print(f"installed {setup(sys.argv[2])}")
        sys.exit(0)
    report = Path(sys.argv[1] if len(sys.argv) > 1 else "_build/figures.jsonl")
    bad = problems(report)
    print("\n".join(bad) or f"{report}: every figure reads (no overlapping text, no legend over data)")
    sys.exit(1 if bad else 0)
