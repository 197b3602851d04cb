"""Every chapter opened alone on an empty cache, as a reader meets it (a fresh Colab session): its time.

    python benchmarks/cold_chapters.py                 # after: the shipped bundle read where the cache is empty
    python benchmarks/cold_chapters.py --before        # before: DOPATUT_RECOMPUTE=1, everything it reads retrained
    python benchmarks/cold_chapters.py --chapters 04_baselines 05_seeds

Each chapter runs in a fresh kernel with a fresh, empty DOPATUT_CACHE, one after another (never side by side),
on the threads torch starts with (set OMP_NUM_THREADS to share the machine). Writes, into
dopatut/results/cold.json, {"after" or "before": {chapter: seconds}} with the machine, its load and the date,
keeping the other column; the performance appendix reads it. The goal: every chapter under 60 s on two cores.
On a machine that others share the wall-clock time is inflated by their load, so the kernel's CPU time is kept
too ("after_cpu", "before_cpu"): with OMP_NUM_THREADS=1 it is about the chapter's time on one idle core.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import nbformat
import torch
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "dopatut" / "results" / "cold.json"
GOAL_SECONDS = 60


def chapters() -> list[str]:
    return sorted(p.stem for p in (ROOT / "book").glob("*.ipynb"))


CPU_CELL = ("import resource, time\n"
            "print('cpu-seconds', time.process_time() + resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime)")


def run_cold(chapter: str, recompute: bool) -> tuple[float, float]:
    """(wall seconds, the kernel's CPU seconds) to execute book/<chapter>.ipynb top to bottom in a new kernel with
    an empty cache."""
    nb = nbformat.read(ROOT / "book" / f"{chapter}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(CPU_CELL))
    with tempfile.TemporaryDirectory(prefix="dopatut-cold-") as cache:
        env = {"DOPATUT_CACHE": cache, "DOPATUT_RECOMPUTE": "1" if recompute else "0",
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)  # the kernel inherits them
        try:
            start = time.perf_counter()
            NotebookClient(nb, timeout=3600, resources={"metadata": {"path": str(ROOT / "book")}}).execute()
            wall = time.perf_counter() - start
            text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
            return wall, float(text.split("cpu-seconds", 1)[1].split()[0])
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", action="store_true", help="DOPATUT_RECOMPUTE=1: retrain what a chapter reads")
    parser.add_argument("--chapters", nargs="*", default=None, help="chapter names (default: all)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    column = "before" if args.before else "after"
    record = json.loads(args.out.read_text()) if args.out.exists() else {}
    times, cpu = {}, {}
    load_start = os.getloadavg()[0]
    for chapter in args.chapters or chapters():
        wall, used = run_cold(chapter, args.before)
        times[chapter], cpu[chapter] = round(wall, 1), round(used, 1)
        print(f"{chapter}: {wall:.1f} s, {used:.1f} CPU s ({column}; load {os.getloadavg()[0]:.1f})", flush=True)
        record.setdefault(column, {}).update(times)
        record.setdefault(f"{column}_cpu", {}).update(cpu)
        args.out.write_text(json.dumps(record, indent=1) + "\n")  # chapter by chapter: a long run keeps its part
    record.setdefault("meta", {})[column] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "host": platform.node(),
        "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "load_start": load_start,
        "load_end": os.getloadavg()[0]}
    record["goal_seconds"] = GOAL_SECONDS
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    slow = {c: s for c, s in times.items() if s >= GOAL_SECONDS}
    print("over the goal:" if slow else f"every chapter under {GOAL_SECONDS} s", slow or "")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
