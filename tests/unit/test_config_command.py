"""``fuserec config``: every setting and ranking section, readable, each value with where it came from.

Runs the CLI in-process with CliRunner and a fixed environment; ``config`` never contacts the engine, so a
dummy (unreachable) cluster URL is enough.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fuserec_os.settings import SETTINGS

SECTIONS = ("search", "events", "profiles", "features", "model", "rerank", "rules", "experiments")
DUMMY_URL = "http://127.0.0.1:9"  # nothing listens on the discard port
PASSWORD = "s3cr3t-Pa55word"


def run(tmp_path: Path, env: dict[str, str], *args: str, dotenv: str | None = None) -> Result:
    """``fuserec [--env-file F] config ARGS`` with exactly ``env`` as the FUSEREC_* environment."""
    from fuserec_os.cli import cli

    env_file = tmp_path / ".env"
    if dotenv is not None:
        env_file.write_text(dotenv)
    full: dict[str, str | None] = {k: None for k in os.environ if k.startswith("FUSEREC_")}
    full.update(env)
    result = CliRunner().invoke(cli, ["--env-file", str(env_file), "config", *args], env=full, prog_name="fuserec")
    assert result.exit_code == 0, f"{result.output}\n{result.stderr}\n{result.exception!r}"
    return result


def rows(text: str) -> dict[str, tuple[str, str]]:
    """Key -> (value, source) for every three-column line (continuation lines of wrapped lists are skipped)."""
    out = {}
    for line in text.splitlines():
        parts = re.split(r"\s{2,}", line.strip())
        if line.startswith("  ") and len(parts) == 3:
            out[parts[0]] = (parts[1], parts[2])
    return out


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    return {"FUSEREC_OPENSEARCH_URL": DUMMY_URL, "FUSEREC_STATE_DIR": str(tmp_path / "state")}


def test_every_setting_and_every_ranking_section_is_shown(tmp_path: Path, base_env: dict[str, str]) -> None:
    out = run(tmp_path, base_env).stdout
    lines = out.splitlines()
    assert lines[0].startswith("deployment settings")
    assert any(line.startswith("ranking config (built-in defaults)") for line in lines)
    for section in SECTIONS:
        assert section in lines, f"no header line for section {section}"
    shown = rows(out)
    for setting in SETTINGS:
        assert setting.name in shown, setting.name
    assert shown["search.fields.title"] == ("3.0", "default")
    assert shown["profiles.weights.purchase"] == ("10.0", "default")
    assert shown["events.type_aliases.order"] == ("purchase", "default")
    assert shown["model.hidden"] == ("512, 256, 128", "default")
    assert shown["search.minimum_should_match"] == ("unset", "default")
    assert shown["search.price_ranges"][0].startswith("..25.0, 25.0..50.0")
    assert shown["FUSEREC_OPENSEARCH_VERIFY_CERTS"] == ("yes", "default")
    assert shown["rerank.window"] == ("100", "default")
    assert shown["rules.out_of_stock"] == ("keep", "default")
    assert shown["rules.max_per_brand_first_page"] == ("unset", "default")
    assert shown["rules.pins"] == ("none", "default") and shown["rules.boosts"] == ("none", "default")
    for scope in ("query_item", "item", "user", "cross"):
        assert f"features ({scope})" in out
    assert "user_history, user_views" in out
    assert lines[-1] == "configuration is valid"


def test_sources_of_settings_env_dotenv_default(tmp_path: Path, base_env: dict[str, str]) -> None:
    dotenv = "FUSEREC_OPENSEARCH_RETRIES=7\nFUSEREC_INDEX_PREFIX=from-dotenv-\n"
    env = {**base_env, "FUSEREC_INDEX_PREFIX": "shop1-"}  # env wins over .env
    shown = rows(run(tmp_path, env, dotenv=dotenv).stdout)
    assert shown["FUSEREC_OPENSEARCH_URL"] == (DUMMY_URL, "env")
    assert shown["FUSEREC_OPENSEARCH_RETRIES"] == ("7", ".env")
    assert shown["FUSEREC_INDEX_PREFIX"] == ("shop1-", "env")
    assert shown["FUSEREC_OPENSEARCH_TIMEOUT"] == ("30.0", "default")
    assert shown["FUSEREC_CONFIG"] == ("unset", "default")

    data = json.loads(run(tmp_path, env, "--json", dotenv=dotenv).stdout)
    settings = data["settings"]
    assert settings["FUSEREC_OPENSEARCH_URL"] == {"value": [DUMMY_URL], "source": "env"}
    assert settings["FUSEREC_OPENSEARCH_RETRIES"] == {"value": 7, "source": ".env"}
    assert settings["FUSEREC_INDEX_PREFIX"] == {"value": "shop1-", "source": "env"}
    assert settings["FUSEREC_OPENSEARCH_VERIFY_CERTS"] == {"value": True, "source": "default"}
    assert settings["FUSEREC_CONFIG"] == {"value": None, "source": "default"}
    assert data["in_use"]["products_alias"] == "shop1-products" and data["in_use"]["engine"] == "cluster"


RANKING_YAML = """\
version: 1
search:
  fields: {title: 5, description: 1}
  minimum_should_match: null
profiles:
  weights: {purchase: 20}
model:
  hidden: [64, 32]
  loss: auto
rerank:
  window: 200
features: [bm25, rating, user_history, cat_affinity]
rules:
  max_per_brand_first_page: 3
  pins: {Running  Shoes: [P1, null, P3]}
  boosts: {running shoes: {P7: top, P8: 2}}
"""


def test_ranking_keys_set_in_the_file_show_file_others_default(tmp_path: Path, base_env: dict[str, str]) -> None:
    cfg = tmp_path / "ranking.yaml"
    cfg.write_text(RANKING_YAML)
    env = {**base_env, "FUSEREC_CONFIG": str(cfg)}
    out = run(tmp_path, env).stdout
    assert f"ranking config ({cfg})" in out.splitlines()
    shown = rows(out)
    assert shown["FUSEREC_CONFIG"] == (str(cfg), "env")
    assert shown["search.fields.title"] == ("5.0", "file")
    assert "search.fields.brand.text" not in shown  # the file's field list replaces the default one
    assert shown["search.max_size"] == ("100", "default")
    assert shown["search.minimum_should_match"] == ("unset", "default")  # null means "the default"
    assert shown["profiles.weights.purchase"] == ("20", "file")
    assert shown["profiles.weights.view"] == ("1.0", "default")  # weights merge with the defaults
    assert shown["profiles.half_life_days"] == ("14.0", "default")
    assert shown["model.hidden"] == ("64, 32", "file")
    assert shown["model.loss"] == ("auto", "file")
    assert shown["model.dropout"] == ("0.5", "default")
    assert shown["rerank.window"] == ("200", "file")
    assert shown["rerank.budget_ms"] == ("25.0", "default")
    assert shown["rerank.enabled"] == ("yes", "default")
    assert shown["features (user)"] == ("user_history", "file")
    assert shown["features (query_item)"] == ("bm25", "file")
    assert shown["events.type_aliases.order"] == ("purchase", "default")
    assert shown["rules.out_of_stock"] == ("keep", "default")
    assert shown["rules.max_per_brand_first_page"] == ("3", "file")
    assert shown["rules.pins.running shoes"] == ("P1, -, P3", "file")  # the query as normalised
    assert shown["rules.boosts.running shoes.P7"] == ("top", "file")
    assert shown["rules.boosts.running shoes.P8"] == ("2", "file")

    sections = json.loads(run(tmp_path, env, "--json").stdout)["ranking"]["sections"]
    assert set(sections) == set(SECTIONS)
    assert sections["search"]["search.fields.title"] == {"value": 5.0, "source": "file"}
    assert sections["model"]["model.hidden"] == {"value": [64, 32], "source": "file"}
    assert sections["search"]["search.price_ranges"]["value"][0] == [None, 25.0]
    assert sections["features"]["features (cross)"] == {"value": ["cat_affinity"], "source": "file"}
    assert sections["rules"]["rules.pins.running shoes"] == {"value": ["P1", None, "P3"], "source": "file"}
    assert sections["rules"]["rules.boosts.running shoes.P8"] == {"value": 2, "source": "file"}


def test_text_output_has_no_python_reprs(tmp_path: Path, base_env: dict[str, str]) -> None:
    cfg = tmp_path / "ranking.yaml"
    cfg.write_text(RANKING_YAML)
    out = run(tmp_path, {**base_env, "FUSEREC_CONFIG": str(cfg)}).stdout
    out += run(tmp_path, base_env).stdout
    for marker in ("{'", "['", "('", "None", "True", "False", "PosixPath", "{", "["):
        assert marker not in out, marker


def test_password_is_never_printed(tmp_path: Path, base_env: dict[str, str]) -> None:
    env = {
        **base_env,
        "FUSEREC_OPENSEARCH_URL": f"https://admin:url-{PASSWORD}@node1:9200,https://node2:9200",
        "FUSEREC_OPENSEARCH_USER": "admin",
        "FUSEREC_OPENSEARCH_PASSWORD": PASSWORD,
    }
    text, js = run(tmp_path, env), run(tmp_path, env, "--json")
    for result in (text, js):
        assert PASSWORD not in result.output and PASSWORD not in result.stderr
    shown = rows(text.stdout)
    assert shown["FUSEREC_OPENSEARCH_PASSWORD"] == ("***", "env")
    assert shown["FUSEREC_OPENSEARCH_URL"][0].startswith("https://admin:***@node1:9200,")
    assert "https://node2:9200" in text.stdout
    settings = json.loads(js.stdout)["settings"]
    assert settings["FUSEREC_OPENSEARCH_PASSWORD"] == {"value": "***", "source": "env"}
    assert settings["FUSEREC_OPENSEARCH_URL"]["value"] == ["https://admin:***@node1:9200", "https://node2:9200"]


def test_config_does_not_contact_the_engine(
    tmp_path: Path, base_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import fuserec_os.engine

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("fuserec config opened the engine")

    monkeypatch.setattr(fuserec_os.engine, "open_engine", refuse)
    assert run(tmp_path, base_env).stdout.splitlines()[-1] == "configuration is valid"
    embedded = run(tmp_path, {"FUSEREC_STATE_DIR": str(tmp_path / "state")})
    assert rows(embedded.stdout)["FUSEREC_OPENSEARCH_URL"][0].startswith("unset")
    assert not (tmp_path / "state").exists()  # no embedded engine was started either
