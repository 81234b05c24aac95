"""``fuserec config``: validate and show the deployment settings and the ranking config in force.

Every documented setting and every key of every ranking section is shown, one line each (a map is one line per
entry, with its key dotted: ``profiles.weights.purchase``, ``rules.boosts.running shoes.P1``; an empty map is one
line showing ``none``; the feature list is one entry per scope), with where the value came from: ``env``,
``.env`` or ``default`` for a setting (:attr:`Settings.sources`), ``file`` or ``default`` for the ranking config
(:meth:`RankingConfig.set_in_file`; a map entry the defaults lack can only be from the file). Text output is
for a person (no Python reprs: ``unset``, ``yes``/``no``, lists joined with ``, ``, ranges as ``from..to``);
``--json`` holds the same rows as JSON values. Passwords are masked, the one in FUSEREC_OPENSEARCH_PASSWORD
and any in a cluster URL. Nothing here contacts the engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import click

from fuserec_os.commands.common import PRODUCTS, State, dump, json_option, pass_state

if TYPE_CHECKING:
    from fuserec_os.config import RankingConfig
    from fuserec_os.settings import Settings

RANKING_SECTIONS = ("search", "events", "profiles", "features", "model", "rerank", "rules", "experiments")
# values in these keys are (from, to) ranges, shown ``from..to`` with an open end left empty
_RANGES = frozenset({"search.price_ranges", "search.rating_ranges"})
_ABSENT = object()  # a map entry the built-in defaults do not have
_WRAP = 44  # value column: longer lists wrap at ", " onto continuation lines


class Row(NamedTuple):
    key: str
    value: Any  # a JSON value: None, bool, int, float, str, a list of those (ranges: lists of pairs), or {}
    source: str


def setting_rows(s: Settings) -> list[Row]:
    """One row per documented setting (``SETTINGS`` order): the value in force, as a JSON value, and its source."""
    from fuserec_os.settings import MASK, SETTINGS, mask_url

    def path(p: Path | None) -> str | None:
        return None if p is None else str(p)

    values: dict[str, Any] = {
        "FUSEREC_OPENSEARCH_URL": [mask_url(u) for u in s.opensearch_urls] or None,
        "FUSEREC_OPENSEARCH_USER": s.user,
        "FUSEREC_OPENSEARCH_PASSWORD": MASK if s.password else None,
        "FUSEREC_OPENSEARCH_VERIFY_CERTS": s.verify_certs,
        "FUSEREC_OPENSEARCH_CA_CERTS": path(s.ca_certs),
        "FUSEREC_OPENSEARCH_TIMEOUT": s.timeout,
        "FUSEREC_OPENSEARCH_RETRIES": s.retries,
        "FUSEREC_INDEX_PREFIX": s.index_prefix,
        "FUSEREC_STATE_DIR": str(s.state_dir),
        "FUSEREC_ENGINE": s.engine,
        "FUSEREC_ENGINE_WAIT": s.engine_wait,
        "FUSEREC_MAPPINGS_DIR": path(s.mappings_dir),
        "FUSEREC_CONFIG": path(s.config_path),
        "FUSEREC_PROXY_USER_HEADER": s.proxy_user_header,
        "FUSEREC_PROXY_API_KEY": MASK if s.proxy_api_key else None,
        "FUSEREC_PROXY_MAX_BODY": s.proxy_max_body,
        "FUSEREC_PROXY_RELOAD_SECONDS": s.proxy_reload_seconds,
        "FUSEREC_PROXY_ALLOW": list(s.proxy_allow) or None,
    }
    # a KeyError here means a setting was added to SETTINGS but not to this table
    return [Row(d.name, values[d.name], s.sources.get(d.name, "default")) for d in SETTINGS]


def ranking_rows(ranking: RankingConfig) -> dict[str, list[Row]]:
    """Section name -> its rows: every field of the section's dataclass, maps flattened to dotted keys."""
    from fuserec_os.features.spec import SCOPES

    def source(*path: str) -> str:
        return "file" if ranking.set_in_file(*path) else "default"

    def flatten(key: str, path: tuple[str, ...], value: Any, default: Any) -> Iterator[Row]:
        """A map becomes one row per entry (nested maps too: ``rules.boosts.running shoes.P1``); an empty map
        one row showing ``none``. An entry the defaults do not have can only come from the file (its key may be
        written differently there, e.g. a query before normalisation)."""
        if dataclasses.is_dataclass(value) and not isinstance(value, type):  # a nested section: events.ratings
            value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.init}
            if dataclasses.is_dataclass(default) and not isinstance(default, type):
                default = {f.name: getattr(default, f.name) for f in dataclasses.fields(default) if f.init}
        if isinstance(value, Mapping):
            if not value:
                yield Row(key, {}, source(*path))
                return
            for k, v in value.items():
                d = default.get(k, _ABSENT) if isinstance(default, Mapping) else _ABSENT
                yield from flatten(f"{key}.{k}", (*path, str(k)), v, d)
            return
        yield Row(key, _json(value), "file" if default is _ABSENT else source(*path))

    defaults = type(ranking)()
    sections: dict[str, list[Row]] = {}
    for name in RANKING_SECTIONS:
        section = getattr(ranking, name)
        rows: list[Row] = []
        if name == "features":
            by_scope: dict[str, list[str]] = {scope: [] for scope in SCOPES}
            for d in section.defs:
                by_scope[d.scope].append(d.name)
            rows = [Row(f"features ({scope})", names, source("features")) for scope, names in by_scope.items() if names]
        elif name == "experiments":
            rows = _experiment_rows(ranking, source)
        else:
            for f in dataclasses.fields(section):
                if not f.init or f.name.startswith("_"):
                    continue
                key, value = f"{name}.{f.name}", getattr(section, f.name)
                default = getattr(getattr(defaults, name), f.name)
                if key == "search.fields":  # (field, boost) pairs: a map in the YAML
                    value, default = dict(value), dict(default)
                rows.extend(flatten(key, (name, f.name), value, default))
        sections[name] = rows
    return sections


def _experiment_rows(ranking: RankingConfig, source: Any) -> list[Row]:
    """One row per key of each experiment, dotted by experiment and variant name (``experiments.e.variants.
    control.share``); ``serves`` is what the variant's keys amount to (``engine order``, ``model v7, blend
    0.5``). No experiment: one ``experiments`` row showing ``none``."""
    experiments = ranking.experiments.experiments
    if not experiments:
        return [Row("experiments", {}, source("experiments"))]
    rows: list[Row] = []
    for name, exp in experiments.items():
        at = ("experiments", name)
        for key in ("mode", "state", "indices", "attribution_hours", "primary_metric"):
            rows.append(Row(f"experiments.{name}.{key}", _json(getattr(exp, key)), source(*at, key)))
        rows.append(Row(f"experiments.{name}.salt", exp.hash_salt, source(*at, "salt")))
        for v in exp.variants:
            vat = (*at, "variants", v.name)
            key = f"experiments.{name}.variants.{v.name}"
            rows.append(Row(f"{key}.share", v.share, source(*vat, "share")))
            rows.append(Row(f"{key}.control", v.control, source(*vat, "control")))
            rows.append(Row(f"{key}.serves", v.serves, "file"))
        if exp.guardrail is None:
            rows.append(Row(f"experiments.{name}.guardrail", None, "default"))
        else:
            for key, value in exp.guardrail.as_dict().items():
                rows.append(Row(f"experiments.{name}.guardrail.{key}", value, source(*at, "guardrail", key)))
    return rows


def _json(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_json(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def text(value: Any, key: str = "") -> str:
    """A JSON value as a person reads it: ``unset``, ``yes``/``no``, lists joined with ``, ``."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value if value else "empty"
    if isinstance(value, (list, Mapping)) and not value:
        return "none"
    if isinstance(value, list):
        if key in _RANGES:
            return ", ".join(f"{'' if lo is None else text(lo)}..{'' if hi is None else text(hi)}" for lo, hi in value)
        return ", ".join("-" if v is None else text(v) for v in value)  # a free pin position: -
    return str(value)


def _wrap(value: str) -> list[str]:
    """A long ``a, b, c`` list cut at ``, `` into lines of at most ``_WRAP`` characters (a word never split)."""
    lines: list[str] = []
    for word in value.split(", "):
        if lines and len(lines[-1]) + 2 + len(word) <= _WRAP:
            lines[-1] += ", " + word
        else:
            lines.append(word)
    for i in range(len(lines) - 1):
        lines[i] += ","
    return lines


def _table(groups: list[tuple[str, list[Row]]]) -> Iterator[str]:
    """Per group a header line, then its ``key  value  source`` rows, aligned across every group.

    A blank line comes before each header that follows rows.
    """
    cells = [(row, _wrap(text(row.value, row.key))) for _, rows in groups for row in rows]
    key_w = max(len(r.key) for r, _ in cells)
    value_w = min(_WRAP, max(len(line) for _, lines in cells for line in lines))
    after_rows = False
    for header, rows in groups:
        if after_rows:
            yield ""
        yield header
        after_rows = bool(rows)
        for row in rows:
            first, *rest = _wrap(text(row.value, row.key))
            yield f"  {row.key:<{key_w}}  {first:<{value_w}}  {row.source}".rstrip()
            for line in rest:
                yield f"  {'':<{key_w}}  {line}"


@click.command("config")
@json_option
@pass_state
def config_cmd(state: State, as_json: bool) -> None:
    """Validate and show every setting (env, .env) and every ranking config section (FUSEREC_CONFIG).

    Each value is shown with its source: env, .env or default for a setting, file or default for the ranking
    config. Exits 2 with the variable or key to fix when anything is invalid. Passwords are masked.
    """
    s = state.settings
    ranking = state.ranking
    settings = setting_rows(s)
    sections = ranking_rows(ranking)
    dotenv = Path(state.env_file)
    in_use = {
        "engine": "cluster" if s.opensearch_urls else "embedded (in-memory dev engine)",
        "products_alias": s.alias(PRODUCTS),
        "mappings_dir": str(s.resolved_mappings_dir()),
    }
    if as_json:
        dump(
            {
                "settings": {r.key: {"value": r.value, "source": r.source} for r in settings},
                "dotenv": {"path": str(dotenv), "found": dotenv.is_file()},
                "in_use": in_use,
                "ranking": {
                    "source": ranking.source,
                    "file": str(s.config_path) if s.config_path else None,
                    "sections": {
                        name: {r.key: {"value": r.value, "source": r.source} for r in rows}
                        for name, rows in sections.items()
                    },
                },
            }
        )
        return
    found = "" if dotenv.is_file() else ", not found"
    in_use_rows = [Row(k.replace("_", " "), v, "") for k, v in in_use.items()]
    groups = [
        (f"deployment settings (env, then .env file: {dotenv}{found})", settings),
        ("in use", in_use_rows),
        (f"ranking config ({ranking.source})", []),
        *sections.items(),
    ]
    for line in _table(groups):
        click.echo(line)
    click.echo("")
    click.echo("configuration is valid")
