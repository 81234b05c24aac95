"""CLI start-up: ``fuserec --help``, ``--version`` and a search, as whole processes, beside bare Python.

What is measured, in one run, each as a fresh process (median, min and max of ``--runs`` runs, after one
untimed warm-up run each, interleaved so machine noise hits every command alike):

* ``python -c pass``: the floor every command pays;
* ``fuserec --help`` and ``fuserec --version``: target at most 0.5 s above bare Python;
* ``fuserec search "running shoes"`` against a running engine holding a generated catalog: target at most
  1 s in all (the engine is started once for the run, with ``FUSEREC_OPENSEARCH_URL`` pointing at it).

With ``--compare-ref REF`` (e.g. a commit before the lazy imports) the same commands also run from a
checkout of REF (a temporary ``git worktree``; same interpreter and libraries), so before and after are
measured side by side on the same noisy machine.

Run from the repo root:  .venv/bin/python benchmarks/cli_startup.py [--runs 10] [--compare-ref e43e01b]
Writes benchmarks/results/cli_startup.json; prints MET/MISSED per target and exits 0 either way.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import REPO, load_spec, median, open_bench_engine, print_summary, verdict, write_results

NAME = "cli_startup"
HELP_TARGET_S = 0.5  # above bare Python
SEARCH_TARGET_S = 1.0  # in all
# Run the CLI from a given checkout (first on sys.path), whatever the installed package points at.
LAUNCH = "import sys; sys.path.insert(0, sys.argv.pop(1)); from fuserec_os.cli import main; main(sys.argv[1:])"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benchmarks/cli_startup.py",
        description=(
            "Time 'fuserec --help', '--version' and 'fuserec search \"running shoes\"' (against a running engine) "
            "as whole processes beside 'python -c pass', median of --runs runs. Targets: help/version at most "
            f"{HELP_TARGET_S} s above bare Python, search at most {SEARCH_TARGET_S} s. Prints MET/MISSED (exit 0 "
            "either way) and writes benchmarks/results/cli_startup.json."
        ),
    )
    p.add_argument("--runs", type=int, default=10, help="timed runs per command (default: 10)")
    p.add_argument("--products", type=int, default=2000, help="catalog size in the engine (default: 2000)")
    p.add_argument("--compare-ref", metavar="REF", help="also time the CLI of this git commit (before/after)")
    p.add_argument("--results-dir", type=Path, default=None, help="where to write cli_startup.json")
    args = p.parse_args(argv)
    if args.runs < 3:
        p.error("--runs must be >= 3")
    return args


@contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """A temporary worktree of ``ref``, removed afterwards."""
    where = Path(tempfile.mkdtemp(prefix="fuserec-ref-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(where), ref], cwd=REPO, check=True, capture_output=True)
    try:
        yield where
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(where)], cwd=REPO, capture_output=True)
        shutil.rmtree(where, ignore_errors=True)


def _once(cmd: Sequence[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return took


def time_all(commands: dict[str, list[str]], env: dict[str, str], runs: int) -> dict[str, list[float]]:
    """Every command ``runs`` times, interleaved (one warm-up each first)."""
    for cmd in commands.values():
        _once(cmd, env)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, cmd in commands.items():
            times[name].append(_once(cmd, env))
    return times


def _catalog(path: Path, n: int) -> None:
    from fuserec_os.simulate.catalog import generate_catalog, write_catalog

    write_catalog(generate_catalog(n, seed=7), path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    py = sys.executable
    with open_bench_engine() as engine, tempfile.TemporaryDirectory(prefix="fuserec-startup-") as tmp:
        from fuserec_os.index.ingest import ingest_products

        catalog = Path(tmp) / "catalog.jsonl"
        _catalog(catalog, args.products)
        ingest_products(engine.client, catalog, load_spec(), f"{engine.prefix}products", progress=False)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUSEREC_")}
        env.update(
            FUSEREC_OPENSEARCH_URL=engine.url,
            FUSEREC_INDEX_PREFIX=engine.prefix,
            FUSEREC_STATE_DIR=str(Path(tmp) / "state"),
        )
        if engine.kind == "cluster":
            for key in ("USER", "PASSWORD", "VERIFY_CERTS", "CA_CERTS"):
                if os.environ.get(f"FUSEREC_BENCH_OPENSEARCH_{key}"):
                    env[f"FUSEREC_OPENSEARCH_{key}"] = os.environ[f"FUSEREC_BENCH_OPENSEARCH_{key}"]

        def cli(root: Path, *cli_args: str) -> list[str]:
            return [py, "-c", LAUNCH, str(root), "--env-file", str(Path(tmp) / "absent.env"), *cli_args]

        commands: dict[str, list[str]] = {"python -c pass": [py, "-c", "pass"]}
        sides = {"now": REPO}
        reference: AbstractContextManager[Path | None] = (
            checkout(args.compare_ref) if args.compare_ref else nullcontext()
        )
        with reference as old:
            if old is not None:
                sides[args.compare_ref] = old
            for side, root in sides.items():
                suffix = "" if side == "now" else f" [{side}]"
                commands[f"fuserec --help{suffix}"] = cli(root, "--help")
                commands[f"fuserec --version{suffix}"] = cli(root, "--version")
                commands[f'fuserec search "running shoes"{suffix}'] = cli(root, "search", "running shoes")
            times = time_all(commands, env, args.runs)
        engine.cleanup()
        engine_desc = engine.describe()
        engine_version = engine.version

    med = {name: median(ts) for name, ts in times.items()}
    bare = med["python -c pass"]
    help_extra = max(med["fuserec --help"], med["fuserec --version"]) - bare
    search_s = med['fuserec search "running shoes"']
    rows = [
        (name, f"median {m:.3f} s  (min {min(times[name]):.3f}, max {max(times[name]):.3f})  +{m - bare:.3f} s")
        for name, m in med.items()
    ]
    rows += [
        (
            f"target: --help/--version <= {HELP_TARGET_S} s above bare Python",
            f"{help_extra:.3f} s  {verdict(help_extra <= HELP_TARGET_S)}",
        ),
        (f"target: search <= {SEARCH_TARGET_S} s", f"{search_s:.3f} s  {verdict(search_s <= SEARCH_TARGET_S)}"),
    ]
    if args.compare_ref:
        before = med[f"fuserec --help [{args.compare_ref}]"]
        rows.append((f"--help, {args.compare_ref} / now", f"{before / med['fuserec --help']:.1f}x"))
    print_summary(f"CLI start-up ({args.runs} runs each, {args.products} products in the engine)", rows)
    print(f"  engine: {engine_version}")
    payload: dict[str, Any] = {
        "runs": args.runs,
        "products": args.products,
        "engine": engine_desc,
        "compare_ref": args.compare_ref,
        "seconds": {name: {"median": med[name], "min": min(ts), "max": max(ts)} for name, ts in times.items()},
        "help_above_bare_python_s": help_extra,
        "search_s": search_s,
        "targets": {
            "help_above_bare_python_s": HELP_TARGET_S,
            "search_s": SEARCH_TARGET_S,
            "help_met": help_extra <= HELP_TARGET_S,
            "search_met": search_s <= SEARCH_TARGET_S,
        },
    }
    path = write_results(NAME, payload, args.results_dir)
    print(f"  results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
