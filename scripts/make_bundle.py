"""Rebuild, or check, the results bundle that dopatut ships (dopatut/shipped/, see dopatut.foundations.bundle).

    python scripts/make_bundle.py                   # the protocol from nothing in a fresh cache, then the bundle
    python scripts/make_bundle.py --from-cache DIR  # the bundle from a cache that holds everything (e.g. CI's)
    python scripts/make_bundle.py --check DIR       # compare DIR, filled from nothing, with the bundle
    python scripts/make_bundle.py --spot-check --check DIR   # CI: first a few stacks of the budget study, and
                                                              # one arm of chapter 9 (its curve and seeds)
    python scripts/make_bundle.py --run DIR --device cuda --check DIR   # the protocol on a GPU, timed, then compared

The bundle is CPU results: build it on a CPU (the default --device). Rebuild it after any change to the code that
trains (the check in CI fails until then), and commit dopatut/shipped.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_protocol(cache: Path, device: str) -> float:
    """Everything the bundle ships, computed into `cache` (DOPATUT_RECOMPUTE=1) on `device`; the seconds it took."""
    os.environ["DOPATUT_CACHE"] = str(cache)
    os.environ["DOPATUT_RECOMPUTE"] = "1"
    os.environ.pop("DOPATUT_READ_SHIPPED", None)  # the bundle is made from nothing, the budget study included
    from dopatut.study import beyond
    from dopatut.study import sweeps
    from dopatut.study.budget import budget_study
    from dopatut.study.compare import FOUNDATIONS, compare

    start = time.perf_counter()
    for kind in FOUNDATIONS:  # every grid, then ten seeds of every method; the foundations on the way
        compare(kind, progress=False, device=device)
        budget_study(kind, progress=False, device=device)  # chapter 5's longer budget, on its seeds
        print(f"{kind}: {time.perf_counter() - start:.1f} s", flush=True)
    sweeps.run_chapter(device=device)  # chapter 7's sweeps
    beyond.run_chapter(device=device)  # its two transformer foundations, then their grids and arms
    seconds = time.perf_counter() - start
    print(f"chapter 9's transformers, grids and arms: {seconds:.1f} s in all", flush=True)
    return seconds


def size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from-cache", type=Path, help="write the bundle from this cache instead of recomputing")
    parser.add_argument("--check", type=Path, help="compare this cache (filled from nothing) with the bundle")
    parser.add_argument("--run", type=Path, help="first run the protocol into this (empty) cache")
    parser.add_argument("--device", default="cpu", help="where --run trains (the bundle itself is made on the CPU)")
    parser.add_argument("--spot-check", action="store_true",
                        help="with --check: first recompute the budget study's SPOT_CHECK stacks and chapter 9's "
                             "SPOT_CHECK arm (its curve and seeds) into the cache (CI reads the rest of them from "
                             "the bundle: DOPATUT_READ_SHIPPED=budget,vit-curve,vit-arm)")
    parser.add_argument("--json", type=Path, help="with --check: also write the report's numbers here")
    args = parser.parse_args(argv)
    seconds = None
    if args.run:
        seconds = run_protocol(args.run, args.device)
    if args.check:
        from dopatut.study.bundle_check import check

        if args.spot_check:
            from dopatut.study import beyond
            from dopatut.study.budget import spot_check

            os.environ["DOPATUT_CACHE"] = str(args.check)
            start = time.perf_counter()
            print(f"budget study recomputed: {', '.join(spot_check(args.device))} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
            start = time.perf_counter()
            print(f"chapter 9's curves and arms recomputed: {', '.join(beyond.spot_check(device=args.device))} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)

        report = check(args.check, device=args.device)
        print(report)
        if args.json:
            args.json.write_text(json.dumps({"ok": report.ok, "largest_difference": report.largest,
                                             "compared": report.compared,
                                             "across_cpus": report.across, "cpus": report.cpus,
                                             "near_ties": report.notes,
                                             "failures": report.failures, "device": args.device,
                                             "protocol_seconds": seconds}, indent=1) + "\n")
        return 0 if report.ok else 1
    if args.device != "cpu":
        parser.error("the bundle ships CPU results: build it with --device cpu")
    from dopatut.study.bundle_check import PACKAGE, write

    source = args.from_cache or args.run
    if source is None:
        source = Path(tempfile.mkdtemp(prefix="dopatut-bundle-"))
        run_protocol(source, "cpu")
    names = write(source)
    print(f"{len(names)} files, {size(PACKAGE) / 1e6:.2f} MB in {PACKAGE.relative_to(ROOT)} (from {source})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
