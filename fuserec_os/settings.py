"""Deployment settings: typed, read once at start-up from ``FUSEREC_*`` env vars and ``.env``.

Why a module of its own: every entry point (CLI, Python backend, later the proxy) must agree on how to reach
the cluster, and a typo in an env var must fail at start-up with the fix in the message, not as a
connection error minutes later. Real environment variables win over ``.env`` entries (Starlette ``Config``
does the same), so a deployment can override a developer's file. :attr:`Settings.sources` records which of the
two (or the default) each setting came from, for ``fuserec config``.

Ranking behaviour (field boosts, later features/model/blend) is not here: it lives in the YAML file
read by :mod:`fuserec_os.config`.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from dotenv import dotenv_values

from fuserec_os.errors import ConfigError

_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n"}


@dataclass(frozen=True)
class Setting:
    """One documented setting: its env var, default and meaning (drives the README table and ``--help``)."""

    name: str
    default: str | None
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "FUSEREC_OPENSEARCH_URL",
        None,
        "Cluster URL(s), comma-separated (https://node1:9200,https://node2:9200). "
        "Unset: use the embedded in-memory dev engine.",
    ),
    Setting("FUSEREC_OPENSEARCH_USER", None, "Basic-auth user name."),
    Setting("FUSEREC_OPENSEARCH_PASSWORD", None, "Basic-auth password (needs FUSEREC_OPENSEARCH_USER)."),
    Setting("FUSEREC_OPENSEARCH_VERIFY_CERTS", "true", "Verify TLS certificates (true/false)."),
    Setting("FUSEREC_OPENSEARCH_CA_CERTS", None, "Path to a CA bundle (PEM) for TLS verification."),
    Setting("FUSEREC_OPENSEARCH_TIMEOUT", "30", "Request timeout in seconds."),
    Setting("FUSEREC_OPENSEARCH_RETRIES", "3", "Retries on connection errors and timeouts."),
    Setting("FUSEREC_INDEX_PREFIX", "", "Prefix for every alias and index (multi-tenant clusters), e.g. 'shop1-'."),
    Setting(
        "FUSEREC_ENGINE",
        "osmem",
        "What 'fuserec engine start' starts without --engine: osmem (in-memory dev engine) or opensearch "
        "(a real single-node OpenSearch; needs a JDK 21+ and Maven).",
    ),
    Setting("FUSEREC_STATE_DIR", ".fuserec", "Where the embedded engine records its address and saved data."),
    Setting(
        "FUSEREC_ENGINE_WAIT",
        "120",
        "Seconds a command (and 'engine stop') waits for a busy or still-starting embedded engine before failing.",
    ),
    Setting("FUSEREC_MAPPINGS_DIR", None, "Folder of mapping files (default: the repo's mappings/ folder)."),
    Setting("FUSEREC_CONFIG", None, "Ranking config YAML (search field boosts, facets, ...). Unset: defaults."),
    Setting("FUSEREC_PROXY_USER_HEADER", "X-Fuserec-User-Id", "Header 'fuserec serve' reads the shopper's id from."),
    Setting(
        "FUSEREC_PROXY_API_KEY",
        None,
        "If set, every proxy request (but /_fuserec/health) must carry it in the X-Fuserec-Api-Key header.",
    ),
    Setting("FUSEREC_PROXY_MAX_BODY", "1048576", "Largest request body the proxy accepts, in bytes (413 above)."),
    Setting(
        "FUSEREC_PROXY_RELOAD_SECONDS",
        "30",
        "How often the proxy polls the registry's active model version; also how often serving (the proxy, the "
        "Python backend) checks the item signals for changes.",
    ),
    Setting(
        "FUSEREC_PROXY_ALLOW",
        None,
        "Write/admin endpoints the proxy forwards instead of refusing (403), comma-separated 'METHOD /path-glob' "
        "or '/path-glob' entries, e.g. 'POST /_bulk,PUT /shop1-products*/_doc/*'.",
    ),
)
_KNOWN = {s.name for s in SETTINGS}
ENGINE_KINDS = ("osmem", "opensearch")
"""What ``fuserec engine start`` can run in the background (FUSEREC_ENGINE, ``--engine``)."""


@dataclass(frozen=True)
class Settings:
    """Validated deployment settings. Build with :meth:`from_env`; construct directly in tests."""

    opensearch_urls: tuple[str, ...] = ()
    user: str | None = None
    password: str | None = None
    verify_certs: bool = True
    ca_certs: Path | None = None
    timeout: float = 30.0
    retries: int = 3
    index_prefix: str = ""
    state_dir: Path = Path(".fuserec")
    engine_wait: int = 120
    engine: str = "osmem"
    """What ``engine start`` starts without ``--engine``: one of :data:`ENGINE_KINDS`."""
    mappings_dir: Path | None = None
    config_path: Path | None = None
    proxy_user_header: str = "X-Fuserec-User-Id"
    proxy_api_key: str | None = field(default=None, repr=False)
    proxy_max_body: int = 1_048_576
    proxy_reload_seconds: float = 30.0
    proxy_allow: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=(), compare=False)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    """Env var name -> ``"env"`` (the process environment), ``".env"`` or ``"default"`` for every documented
    setting; filled in by :meth:`from_env` and :meth:`from_values`, empty when the dataclass is built directly.
    A blank value counts as unset, so its source is ``"default"``."""

    @property
    def embedded(self) -> bool:
        """True when no cluster is configured, so the embedded dev engine is used."""
        return not self.opensearch_urls

    def alias(self, name: str) -> str:
        """The alias for a logical index name (``products``), with the tenant prefix applied."""
        return f"{self.index_prefix}{name}"

    def resolved_mappings_dir(self) -> Path:
        """The mappings folder: the setting, else ``./mappings``, else the one beside the package (a checkout)."""
        if self.mappings_dir is not None:
            return self.mappings_dir
        here = Path("mappings")
        if here.is_dir():
            return here.resolve()
        return Path(__file__).resolve().parent.parent / "mappings"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, dotenv_path: str | os.PathLike[str] | None = ".env"
    ) -> Settings:
        """Read and validate settings; env vars override ``.env``. Raises ConfigError naming the variable.

        :attr:`sources` says, per setting, whether the environment, the ``.env`` file or the default won.
        """
        values: dict[str, str] = {}
        origins: dict[str, str] = {}
        if dotenv_path is not None and Path(dotenv_path).is_file():
            from_file = {k: v for k, v in dotenv_values(dotenv_path).items() if v is not None}
            values.update(from_file)
            origins.update(dict.fromkeys(from_file, ".env"))
        env = os.environ if environ is None else environ
        from_env = {k: v for k, v in env.items() if k.startswith("FUSEREC_")}
        values.update(from_env)
        origins.update(dict.fromkeys(from_env, "env"))
        return cls.from_values(values, origins)

    @classmethod
    def from_values(cls, values: Mapping[str, str], origins: Mapping[str, str] | None = None) -> Settings:
        """Validate a flat mapping of ``FUSEREC_*`` strings (already merged from env and ``.env``).

        ``origins`` names where each key came from (``"env"`` or ``".env"``); a key it does not name counts as
        ``"env"``. Unset or blank settings get ``"default"`` in :attr:`sources`.
        """
        warnings = []
        for key in sorted(values):
            if key.startswith("FUSEREC_") and key not in _KNOWN and not key.startswith("FUSEREC_TEST_"):
                close = _nearest_setting(key)
                hint = f" Did you mean {close}?" if close else ""
                warnings.append(f"unknown setting {key} is ignored.{hint}")

        def get(name: str) -> str | None:
            raw = values.get(name)
            if raw is None or raw.strip() == "":
                return None
            return raw.strip()

        urls = _parse_urls(get("FUSEREC_OPENSEARCH_URL"))
        user, password = get("FUSEREC_OPENSEARCH_USER"), get("FUSEREC_OPENSEARCH_PASSWORD")
        if password and not user:
            raise ConfigError("FUSEREC_OPENSEARCH_PASSWORD is set but FUSEREC_OPENSEARCH_USER is not: set both.")
        if user and not urls:
            raise ConfigError(
                "FUSEREC_OPENSEARCH_USER is set but FUSEREC_OPENSEARCH_URL is not: credentials need a cluster URL."
            )
        ca = get("FUSEREC_OPENSEARCH_CA_CERTS")
        ca_path = Path(ca).expanduser() if ca else None
        if ca_path is not None and not ca_path.is_file():
            raise ConfigError(f"FUSEREC_OPENSEARCH_CA_CERTS={ca!r}: no such file (expected a PEM CA bundle path).")
        prefix = get("FUSEREC_INDEX_PREFIX") or ""
        if prefix != prefix.lower() or any(c in prefix for c in ' "*\\<|,>/?#:'):
            raise ConfigError(
                f"FUSEREC_INDEX_PREFIX={prefix!r}: index names must be lower-case without spaces or "
                '" * \\ < | , > / ? # : (e.g. "shop1-").'
            )
        mappings = get("FUSEREC_MAPPINGS_DIR")
        mappings_dir = Path(mappings).expanduser() if mappings else None
        if mappings_dir is not None and not mappings_dir.is_dir():
            raise ConfigError(f"FUSEREC_MAPPINGS_DIR={mappings!r}: no such folder (expected the mappings/ folder).")
        config = get("FUSEREC_CONFIG")
        config_path = Path(config).expanduser() if config else None
        if config_path is not None and not config_path.is_file():
            raise ConfigError(f"FUSEREC_CONFIG={config!r}: no such file (expected a ranking config YAML).")
        engine = (get("FUSEREC_ENGINE") or "osmem").lower()
        if engine not in ENGINE_KINDS:
            raise ConfigError(
                f"FUSEREC_ENGINE={get('FUSEREC_ENGINE')!r} is not an engine 'fuserec engine start' can run "
                f"(expected one of: {', '.join(ENGINE_KINDS)})."
            )
        header = get("FUSEREC_PROXY_USER_HEADER") or "X-Fuserec-User-Id"
        if not all(c.isalnum() or c in "-_" for c in header) or not header.isascii():
            raise ConfigError(
                f"FUSEREC_PROXY_USER_HEADER={header!r} is not a header name (letters, digits, '-' and '_')."
            )
        max_body = int(_parse_number("FUSEREC_PROXY_MAX_BODY", get("FUSEREC_PROXY_MAX_BODY"), 1_048_576, int))
        if max_body < 1024:
            raise ConfigError(f"FUSEREC_PROXY_MAX_BODY={max_body}: must be at least 1024 bytes.")
        allow = tuple(a.strip() for a in (get("FUSEREC_PROXY_ALLOW") or "").split(",") if a.strip())
        return cls(
            opensearch_urls=urls,
            user=user,
            password=password,
            verify_certs=_parse_bool("FUSEREC_OPENSEARCH_VERIFY_CERTS", get("FUSEREC_OPENSEARCH_VERIFY_CERTS"), True),
            ca_certs=ca_path,
            timeout=_parse_number("FUSEREC_OPENSEARCH_TIMEOUT", get("FUSEREC_OPENSEARCH_TIMEOUT"), 30.0, float),
            retries=int(_parse_number("FUSEREC_OPENSEARCH_RETRIES", get("FUSEREC_OPENSEARCH_RETRIES"), 3, int)),
            index_prefix=prefix,
            state_dir=Path(get("FUSEREC_STATE_DIR") or ".fuserec").expanduser(),
            engine_wait=int(_parse_number("FUSEREC_ENGINE_WAIT", get("FUSEREC_ENGINE_WAIT"), 120, int)),
            engine=engine,
            mappings_dir=mappings_dir,
            config_path=config_path,
            proxy_user_header=header,
            proxy_api_key=get("FUSEREC_PROXY_API_KEY"),
            proxy_max_body=max_body,
            proxy_reload_seconds=_parse_number(
                "FUSEREC_PROXY_RELOAD_SECONDS", get("FUSEREC_PROXY_RELOAD_SECONDS"), 30.0, float
            ),
            proxy_allow=allow,
            warnings=tuple(warnings),
            sources={
                d.name: (origins or {}).get(d.name, "env") if get(d.name) is not None else "default" for d in SETTINGS
            },
        )


def _parse_urls(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    urls = []
    for part in raw.split(","):
        url = part.strip().rstrip("/")
        if not url:
            continue
        parsed = urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(
                f"FUSEREC_OPENSEARCH_URL: {part.strip()!r} is not a cluster URL "
                "(expected http(s)://host:port, comma-separated for several hosts)."
            )
        try:
            parsed.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise ConfigError(f"FUSEREC_OPENSEARCH_URL: {part.strip()!r} has an invalid port.") from None
        urls.append(url)
    return tuple(urls)


def _parse_bool(name: str, raw: str | None, default: bool) -> bool:
    if raw is None:
        return default
    low = raw.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (expected true/false, yes/no, 1/0).")


def _parse_number(name: str, raw: str | None, default: float, kind: type) -> float:
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        expected = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{name}={raw!r} is not {expected}.") from None
    if not math.isfinite(value):
        raise ConfigError(f"{name}={raw!r} is not a finite number (e.g. 30).")
    if value < 0 or (kind is float and value == 0):
        raise ConfigError(f"{name}={raw!r} must be {'positive' if kind is float else 'zero or more'}.")
    return float(value)


MASK = "***"


def mask_url(url: str) -> str:
    """``url`` with the password of its user info (``https://user:pw@host``) replaced by ``***``.

    Every place that shows or logs a cluster URL goes through this (error messages, ``fuserec config``).
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{MASK}@{host}"))


def redact(text: str, settings: Settings | None) -> str:
    """``text`` with every secret the settings hold (the password, passwords inside URLs) replaced by ``***``.

    The last line of defence before anything reaches the terminal: a library message that quotes a URL or a
    header whole must not leak what the masking at the source missed.
    """
    if settings is None:
        return text
    secrets = {settings.password or "", settings.proxy_api_key or ""}
    for url in settings.opensearch_urls:
        pw = urlsplit(url).password
        if pw:
            secrets.update({pw, unquote(pw)})
    for secret in sorted((s for s in secrets if len(s) >= 3), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _nearest_setting(key: str) -> str | None:
    """The documented setting whose name after ``FUSEREC_`` is closest to ``key``'s (edit similarity), if any.

    Compared on the suffix: every name shares ``FUSEREC_``, and a substring test would suggest
    ``FUSEREC_OPENSEARCH_USER`` for anything, since "USER" is in "FUSEREC".
    """
    prefix = "FUSEREC_"
    suffixes = {name[len(prefix) :]: name for name in _KNOWN}
    close = difflib.get_close_matches(key[len(prefix) :], list(suffixes), n=1, cutoff=0.7)
    return suffixes[close[0]] if close else None
