"""``fuserec --help`` and ``--version`` load only click and the settings: start-up stays near bare Python.

The import set is asserted, not the time (timing is ``benchmarks/cli_startup.py``'s job): a heavy import
that creeps back into a command module's top level fails here whatever the machine's speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Run the CLI in a fresh interpreter and write every module loaded by the time it exits.
PROBE = """
import atexit, json, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
from fuserec_os.cli import main
main(sys.argv[2:])
"""

HEAVY = ("pandas", "numpy", "scipy", "sklearn", "tensorflow", "keras", "pyarrow", "opensearchpy", "yaml", "tqdm")
STAGES = (
    "behaviour",
    "profiles",
    "features",
    "learn",
    "rerank",
    "simulate",
    "search",
    "index",
    "engine",
    "experiments",
)
# the search request contract (pure Python) gives 'fuserec search --sort' its choices
ALLOWED = {"fuserec_os.search", "fuserec_os.search.request"}


def loaded_by(args: list[str], tmp_path: Path, env: dict[str, str] | None = None) -> tuple[set[str], str]:
    out = tmp_path / "modules.json"
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), *args], capture_output=True, text=True, timeout=120, env=env
    )
    return set(json.loads(out.read_text())), proc.stdout + proc.stderr


def top_packages(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["model", "--help"],
        ["ingest", "events", "--help"],
        ["config", "--help"],
        ["serve", "--help"],
        ["search", "--help"],
        ["search", "tune", "--help"],
        ["ab", "--help"],
        ["ab", "report", "--help"],
        ["simulate", "ab", "--help"],
    ],
)
def test_help_and_version_load_no_heavy_library_and_no_pipeline_stage(args: list[str], tmp_path: Path) -> None:
    modules, output = loaded_by(args, tmp_path)
    assert "fuserec" in output  # the command really ran
    assert not top_packages(modules) & set(HEAVY), sorted(top_packages(modules) & set(HEAVY))
    stages = sorted(m for m in modules - ALLOWED if m.startswith("fuserec_os.") and m.split(".")[1] in STAGES)
    assert not stages, stages


def test_the_probe_sees_a_heavy_import_when_there_is_one(tmp_path: Path) -> None:
    """The check above can fail: a command that does load pandas is seen loading it."""
    modules, _ = loaded_by(["generate", "catalog", "--n", "3", "-o", str(tmp_path / "c.jsonl")], tmp_path)
    assert "numpy" in top_packages(modules)
