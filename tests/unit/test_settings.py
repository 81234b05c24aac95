"""Deployment settings: parsing, validation messages, env over .env."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuserec_os.errors import ConfigError
from fuserec_os.settings import SETTINGS, Settings


def test_defaults_mean_embedded_engine() -> None:
    s = Settings.from_values({})
    assert s.embedded and s.opensearch_urls == ()
    assert s.timeout == 30.0 and s.retries == 3 and s.verify_certs
    assert s.alias("products") == "products"


def test_several_hosts_and_typed_values(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    s = Settings.from_values(
        {
            "FUSEREC_OPENSEARCH_URL": "https://n1:9200/, https://n2:9200",
            "FUSEREC_OPENSEARCH_USER": "admin",
            "FUSEREC_OPENSEARCH_PASSWORD": "secret",
            "FUSEREC_OPENSEARCH_VERIFY_CERTS": "no",
            "FUSEREC_OPENSEARCH_CA_CERTS": str(ca),
            "FUSEREC_OPENSEARCH_TIMEOUT": "2.5",
            "FUSEREC_OPENSEARCH_RETRIES": "0",
            "FUSEREC_INDEX_PREFIX": "shop1-",
        }
    )
    assert s.opensearch_urls == ("https://n1:9200", "https://n2:9200")
    assert not s.embedded and s.user == "admin" and s.password == "secret"
    assert s.verify_certs is False and s.ca_certs == ca
    assert s.timeout == 2.5 and s.retries == 0
    assert s.alias("products") == "shop1-products"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"FUSEREC_OPENSEARCH_URL": "localhost:9200"},
            r"FUSEREC_OPENSEARCH_URL: 'localhost:9200' is not a cluster URL",
        ),
        ({"FUSEREC_OPENSEARCH_URL": "http://h:99999"}, "invalid port"),
        ({"FUSEREC_OPENSEARCH_TIMEOUT": "soon"}, r"FUSEREC_OPENSEARCH_TIMEOUT='soon' is not a number"),
        ({"FUSEREC_OPENSEARCH_TIMEOUT": "0"}, "must be positive"),
        ({"FUSEREC_OPENSEARCH_RETRIES": "2.5"}, "is not a whole number"),
        ({"FUSEREC_OPENSEARCH_VERIFY_CERTS": "maybe"}, r"expected true/false"),
        ({"FUSEREC_OPENSEARCH_PASSWORD": "x", "FUSEREC_OPENSEARCH_URL": "http://h:9200"}, "set both"),
        ({"FUSEREC_OPENSEARCH_USER": "u"}, "need a cluster URL"),
        ({"FUSEREC_OPENSEARCH_CA_CERTS": "/nope/ca.pem"}, "no such file"),
        ({"FUSEREC_INDEX_PREFIX": "Shop 1"}, "lower-case"),
        ({"FUSEREC_CONFIG": "/nope/ranking.yaml"}, "FUSEREC_CONFIG='/nope/ranking.yaml': no such file"),
    ],
)
def test_bad_values_name_the_variable(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_values(values)


def test_unknown_setting_warns_with_suggestion() -> None:
    s = Settings.from_values({"FUSEREC_OPENSEARCH_TIMEOUTS": "3"})
    assert any("FUSEREC_OPENSEARCH_TIMEOUTS" in w for w in s.warnings)


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("FUSEREC_OPENSEARCH_TIMEOUTS", "FUSEREC_OPENSEARCH_TIMEOUT"),
        ("FUSEREC_INDEX_PREFX", "FUSEREC_INDEX_PREFIX"),
        ("FUSEREC_STATEDIR", "FUSEREC_STATE_DIR"),
        ("FUSEREC_OPENSEARCH_PASWORD", "FUSEREC_OPENSEARCH_PASSWORD"),
        ("FUSEREC_CONFIG_FILE", "FUSEREC_CONFIG"),
    ],
)
def test_unknown_setting_suggests_the_nearest_name(typo: str, meant: str) -> None:
    (warning,) = Settings.from_values({typo: "x"}).warnings
    assert warning.endswith(f"Did you mean {meant}?"), warning


def test_unrelated_unknown_setting_gets_no_wild_guess() -> None:
    (warning,) = Settings.from_values({"FUSEREC_FROBNICATE_LEVEL": "3"}).warnings
    assert "Did you mean" not in warning  # not FUSEREC_OPENSEARCH_USER because USER is in FUSEREC


@pytest.mark.parametrize("raw", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999"])
def test_non_finite_numbers_are_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="FUSEREC_OPENSEARCH_TIMEOUT"):
        Settings.from_values({"FUSEREC_OPENSEARCH_TIMEOUT": raw})


def test_env_overrides_dotenv(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("FUSEREC_OPENSEARCH_URL=http://from-dotenv:9200\nFUSEREC_OPENSEARCH_RETRIES=7\n")
    s = Settings.from_env({"FUSEREC_OPENSEARCH_URL": "http://from-env:9200"}, dotenv_path=dotenv)
    assert s.opensearch_urls == ("http://from-env:9200",)
    assert s.retries == 7


def test_missing_dotenv_is_fine(tmp_path: Path) -> None:
    assert Settings.from_env({}, dotenv_path=tmp_path / "absent.env").embedded


def test_sources_say_env_dotenv_or_default(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "FUSEREC_OPENSEARCH_URL=http://from-dotenv:9200\nFUSEREC_OPENSEARCH_RETRIES=7\nFUSEREC_INDEX_PREFIX=dot-\n"
    )
    s = Settings.from_env(
        {"FUSEREC_OPENSEARCH_URL": "http://from-env:9200", "FUSEREC_INDEX_PREFIX": " ", "HOME": "/x"},
        dotenv_path=dotenv,
    )
    assert s.sources["FUSEREC_OPENSEARCH_URL"] == "env"
    assert s.sources["FUSEREC_OPENSEARCH_RETRIES"] == ".env"
    assert s.sources["FUSEREC_OPENSEARCH_TIMEOUT"] == "default"
    # a blank value means unset: the default is in force, whoever wrote the blank
    assert s.index_prefix == "" and s.sources["FUSEREC_INDEX_PREFIX"] == "default"
    assert set(s.sources) == {setting.name for setting in SETTINGS}
    assert s == Settings.from_values(
        {"FUSEREC_OPENSEARCH_URL": "http://from-env:9200", "FUSEREC_OPENSEARCH_RETRIES": "7"}
    )


def test_from_values_sources_default_to_env_unless_told() -> None:
    s = Settings.from_values({"FUSEREC_OPENSEARCH_RETRIES": "1"})
    assert s.sources["FUSEREC_OPENSEARCH_RETRIES"] == "env" and s.sources["FUSEREC_CONFIG"] == "default"
    t = Settings.from_values({"FUSEREC_OPENSEARCH_RETRIES": "1"}, origins={"FUSEREC_OPENSEARCH_RETRIES": ".env"})
    assert t.sources["FUSEREC_OPENSEARCH_RETRIES"] == ".env"
    assert Settings().sources == {}  # built directly: no sources recorded
