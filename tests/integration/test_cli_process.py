"""``fuserec`` as a separate process, as a user runs it: what a search loads, and what a throwaway engine prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from opensearchpy import OpenSearch

from fuserec_os.index import manager
from fuserec_os.index.mappings import MappingSpec
from tests.unit.test_cli_imports import loaded_by, top_packages

NOT_ON_THE_SEARCH_PATH = ("pandas", "sklearn", "scipy", "tensorflow", "keras", "pyarrow")


def test_search_against_a_running_engine_loads_no_pandas_sklearn_or_tensorflow(
    client: OpenSearch, cli_env: dict[str, str], alias: str, spec: MappingSpec, tmp_path: Path
) -> None:
    manager.ensure_index(client, spec, alias)
    doc = {"product_id": "S1", "title": "Trail running shoes", "brand": "Kinetix", "price": 80.0, "in_stock": True}
    client.index(index=alias, id="S1", body=doc, params={"refresh": "true"})
    env = {**os.environ, **cli_env}
    out = tmp_path / "hits.json"
    modules, output = loaded_by(["search", "running shoes", "--json"], tmp_path, env=env)
    assert not top_packages(modules) & set(NOT_ON_THE_SEARCH_PATH), sorted(
        top_packages(modules) & set(NOT_ON_THE_SEARCH_PATH)
    )
    # of the later stages, only their config sections (the ranking YAML is validated whole at start-up)
    later = {m for m in modules if m.startswith(("fuserec_os.learn.", "fuserec_os.features.", "fuserec_os.profiles."))}
    assert later <= {"fuserec_os.learn.model_config", "fuserec_os.features.spec", "fuserec_os.profiles.config"}, later
    start = output.index("{")
    out.write_text(output[start:])
    assert [h["id"] for h in json.loads(out.read_text())["hits"]] == ["S1"]  # and the search did run


def test_a_throwaway_engine_says_one_quiet_line_and_nothing_of_its_own(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSEREC_")}
    env["FUSEREC_STATE_DIR"] = str(tmp_path / "state")
    proc = subprocess.run(
        [sys.executable, "-m", "fuserec_os", "index", "create"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "temporary" in lines[0], proc.stderr
    assert "osmem" not in proc.stderr and "stdin closed" not in proc.stderr
