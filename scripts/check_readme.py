#!/usr/bin/env python3
"""Run the demo and the tour as a new user would, and hold the README's claims about them to what they print.

Checked: the demo's wall time ("about N s"), the tour's ("about N min"), and the demo's row of the quality
table (test searches, NDCG@10 of engine, query-popularity, HGB, the MLP blend and the oracle, captured gain).
Each measured value is printed beside the README's; a claim off by more than its tolerance exits 1, so the
README is changed to what this prints, never the other way round.

Run from the repo root (after `make install`):  .venv/bin/python scripts/check_readme.py [--skip-tour]
Times are whole-process wall times on this machine; run it on a quiet machine (these have 2 cores).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
FUSEREC = REPO / ".venv" / "bin" / "fuserec"
TIME_TOLERANCE = 0.35  # a stated "about" time may be off by this share of the measured one
NDCG_TOLERANCE = 0.0025  # the README rounds to 3 decimals; TensorFlow's threads add a little noise
CAPTURED_TOLERANCE = 2  # percentage points
DEMO_ROW = re.compile(
    r"^\| demo: [^|]*\| (?P<searches>[\d,]+) \| (?P<engine>[\d.]+) \| (?P<query_popularity>[\d.]+) \| "
    r"(?P<hgb>[\d.]+) \| \*\*(?P<mlp>[\d.]+)\*\* \| (?P<oracle>[\d.]+) \| (?P<captured>\d+)% \|",
    re.M,
)


def run_demo(workdir: Path) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSEREC_")}
    env["FUSEREC_STATE_DIR"] = str(workdir / "state")
    t0 = time.perf_counter()
    proc = subprocess.run([str(FUSEREC), "demo"], cwd=workdir, env=env, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"fuserec demo exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return took, proc.stdout


def run_tour() -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run([str(REPO / "scripts" / "tour.sh")], cwd=REPO, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"scripts/tour.sh exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return took, proc.stdout


def demo_quality(out: str) -> dict[str, float]:
    """The demo's NDCG@10 per method, its test searches and the MLP's captured gain, from its table."""
    found: dict[str, float] = {}
    m = re.search(r"^searches: (\d+) with a positive", out, re.M)
    if m:
        found["searches"] = float(m.group(1))
    for method in ("engine", "query_popularity", "hgb", "mlp", "oracle"):
        row = re.search(rf"^{method}\s+([\d.]+)", out, re.M)
        if row:
            found[method] = float(row.group(1))
    if {"engine", "mlp", "oracle"} <= found.keys():
        found["captured"] = 100 * (found["mlp"] - found["engine"]) / (found["oracle"] - found["engine"])
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--skip-tour", action="store_true", help="check the demo only")
    args = p.parse_args(argv)
    readme = README.read_text(encoding="utf-8")
    rows: list[tuple[str, str, str, bool]] = []

    with tempfile.TemporaryDirectory(prefix="fuserec-readme-") as tmp:
        took, out = run_demo(Path(tmp))
    claim = re.search(r"`make demo` shows all of it on the embedded engine in about (\d+) s", readme)
    stated = float(claim.group(1)) if claim else None
    ok = stated is not None and abs(stated - took) <= TIME_TOLERANCE * took
    rows.append(("demo wall time", f"{took:.0f} s", f"{stated:.0f} s" if stated else "no claim found", ok))

    quality = demo_quality(out)
    m = DEMO_ROW.search(readme)
    if m is None:
        rows.append(("demo quality row", "-", "no 'demo:' row in the README table", False))
    else:
        for key, value in m.groupdict().items():
            want = float(value.replace(",", ""))
            got = quality.get(key)
            if key == "searches":
                ok = got == want
            elif key == "captured":
                ok = got is not None and abs(got - want) <= CAPTURED_TOLERANCE
            else:
                ok = got is not None and abs(got - want) <= NDCG_TOLERANCE
            shown = "-" if got is None else (f"{got:.0f}" if key in ("searches", "captured") else f"{got:.3f}")
            rows.append((f"demo {key}", shown, value, ok))

    if not args.skip_tour:
        took, _ = run_tour()
        claim = re.search(r"^## A tour \(every CLI step; about (\d+) min here\)", readme, re.M)
        stated_min = float(claim.group(1)) if claim else None
        ok = stated_min is not None and abs(stated_min * 60 - took) <= TIME_TOLERANCE * took
        rows.append(
            ("tour wall time", f"{took:.0f} s", f"about {stated_min:.0f} min" if stated_min else "no claim found", ok)
        )

    width = max(len(r[0]) for r in rows)
    print(f"{'claim':<{width}}  {'measured':>10}  {'README':>16}")
    for name, got, want, ok in rows:
        print(f"{name:<{width}}  {got:>10}  {want:>16}  {'ok' if ok else 'DIFFERS'}")
    bad = [r for r in rows if not r[3]]
    print("README matches what was measured" if not bad else f"{len(bad)} README claim(s) differ: update them")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
