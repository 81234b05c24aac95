"""What every ``fuserec`` command shares: lazily read settings, the engine, notes and JSON output.

Cheap to import on purpose (click and the settings only): every command module imports it, and ``--help``
must not pay for the engine client or the ranking config. Those load on first use.

Errors the user can fix (FuserecError) print one ``error:`` line and exit with the error's code, never a
traceback. Notices (embedded engine in use, warnings) go to stderr so ``--json`` output stays parseable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from fuserec_os.errors import FuserecError
from fuserec_os.settings import Settings, redact

if TYPE_CHECKING:
    from datetime import datetime

    from fuserec_os.config import RankingConfig
    from fuserec_os.engine import Engine
    from fuserec_os.index.mappings import MappingSpec

PRODUCTS = "products"
"""The logical name of the catalog index (its alias carries the tenant prefix)."""


class FuserecGroup(click.Group):
    """A click group that turns FuserecError into one readable line and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FuserecError as exc:
            state = ctx.find_object(State)
            click.secho(f"error: {redact(str(exc), state.loaded_settings if state else None)}", fg="red", err=True)
            ctx.exit(exc.exit_code)


class State:
    """Per-invocation context: settings are read once, lazily, so ``--help`` works without any env."""

    def __init__(self, env_file: str) -> None:
        self.env_file = env_file
        self._settings: Settings | None = None
        self._ranking: RankingConfig | None = None

    @property
    def loaded_settings(self) -> Settings | None:
        """The settings if they were read (an error before that has no secrets to hide)."""
        return self._settings

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.from_env(dotenv_path=self.env_file)
            for warning in self._settings.warnings:
                note(f"warning: {warning}")
        return self._settings

    @property
    def ranking(self) -> RankingConfig:
        """The ranking config (FUSEREC_CONFIG), read once."""
        if self._ranking is None:
            from fuserec_os.config import load_ranking_config

            self._ranking = load_ranking_config(self.settings.config_path)
        return self._ranking

    def alias(self, name: str) -> str:
        """The alias of a logical index (``products``, ``events``, ``profiles``) with the tenant prefix."""
        return self.settings.alias(name)

    def mapping(self, name: str = PRODUCTS) -> MappingSpec:
        from fuserec_os.index.mappings import load_mapping, mapping_path

        return load_mapping(mapping_path(self.settings.resolved_mappings_dir(), name), name)

    @contextmanager
    def engine(self) -> Iterator[Engine]:
        from fuserec_os.engine import open_engine

        engine = open_engine(self.settings, notify=lambda m: note(f"fuserec: {m}"))
        try:
            yield engine
        except FuserecError as exc:  # nothing answered: say where to look, for this kind of engine only
            explained = engine.explain(exc)
            if explained is exc:
                raise
            raise explained from exc
        finally:
            engine.close()


def parse_time_option(value: str | None, name: str) -> datetime | None:
    """A TIME option (ISO 8601, epoch seconds or milliseconds; naive is UTC) as an aware UTC datetime, or None;
    a bad one is a usage error naming the option and an example."""
    if value is None:
        return None
    from fuserec_os.index.validate import InvalidValue, parse_datetime

    try:
        return parse_datetime(value)
    except InvalidValue as exc:
        raise click.BadParameter(
            f"{value!r}: {exc} (expected ISO 8601, e.g. 2024-05-01T00:00:00Z)", param_hint=name
        ) from None


def note(message: str) -> None:
    click.secho(message, fg="yellow", err=True)


def dump(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


pass_state = click.make_pass_decorator(State)
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
