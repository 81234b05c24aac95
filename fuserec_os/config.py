"""Ranking behaviour: one YAML file (``FUSEREC_CONFIG``), validated with every key checked.

Sections: ``search`` (field boosts, paging caps, facet ranges), ``events``, ``profiles``, ``features``,
``model``, ``rerank``, ``rules`` and ``experiments`` (A/B tests and interleaving,
:mod:`fuserec_os.experiments`). Unknown keys are errors, not ignored, because a misspelt boost
that silently does nothing is the worst kind of ranking bug.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fuserec_os.behaviour.config import EventsConfig
from fuserec_os.errors import ConfigError
from fuserec_os.experiments.config import ExperimentsConfig
from fuserec_os.features.spec import FeatureSet
from fuserec_os.learn.model_config import ModelConfig
from fuserec_os.profiles.config import ProfilesConfig
from fuserec_os.rerank.rules import RulesConfig
from fuserec_os.rerank.settings import RerankSettings
from fuserec_os.search.request import SearchConfig

SECTIONS = ("version", "search", "events", "profiles", "features", "model", "rerank", "rules", "experiments")


@dataclass(frozen=True)
class RankingConfig:
    """The validated sections, where they were read from, and the parsed YAML document itself.

    ``raw`` keeps the document as parsed (empty for the built-in defaults) so :meth:`set_in_file` can tell a
    value the file sets from one left at its default. It takes no part in equality.
    """

    search: SearchConfig = field(default_factory=SearchConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    profiles: ProfilesConfig = field(default_factory=ProfilesConfig)
    features: FeatureSet = field(default_factory=lambda: FeatureSet.from_config(None))
    model: ModelConfig = field(default_factory=ModelConfig)
    rerank: RerankSettings = field(default_factory=RerankSettings)
    rules: RulesConfig = field(default_factory=RulesConfig)
    experiments: ExperimentsConfig = field(default_factory=ExperimentsConfig)
    source: str = "built-in defaults"
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def set_in_file(self, *path: str) -> bool:
        """Whether the YAML file sets the key at ``path`` (``"profiles", "weights", "purchase"``) explicitly.

        Read from the parsed document, not by comparing with the defaults: a file that repeats a default
        value still sets it. A ``null`` means "the default" in this config, so a key whose value (or whose
        parent section) is null counts as not set. A list is given whole, so any key below one the file
        sets as a list (``search.fields`` as ``[[title, 3]]``) counts as set.
        """
        node: Any = self.raw
        for key in path:
            if not isinstance(node, Mapping):
                return node is not None
            matches = [v for k, v in node.items() if str(k) == key]
            if not matches:
                return False
            node = matches[0]
        return node is not None


def parse_ranking_config(raw: Any, source: str = "<config>") -> RankingConfig:
    """Validate a parsed YAML document; ConfigError names the file and key."""
    if raw is None:
        return RankingConfig(source=source)
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping with the sections {', '.join(SECTIONS)}.")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {', '.join(unknown)} (valid: {', '.join(SECTIONS)}).")
    version = raw.get("version", 1)
    if version != 1:
        raise ConfigError(f"{source}: version {version!r} is not supported (expected 1).")
    search = raw.get("search")
    if search is None:
        search = {}
    if not isinstance(search, dict):
        raise ConfigError(f"{source}: 'search' must be a mapping.")
    try:
        return RankingConfig(
            search=SearchConfig.from_dict(search),
            events=EventsConfig.from_dict(raw.get("events")),
            profiles=ProfilesConfig.from_dict(raw.get("profiles")),
            features=FeatureSet.from_config(raw.get("features")),
            model=ModelConfig.from_dict(raw.get("model")),
            rerank=RerankSettings.from_dict(raw.get("rerank")),
            rules=RulesConfig.from_dict(raw.get("rules")),
            experiments=ExperimentsConfig.from_dict(raw.get("experiments")),
            source=source,
            raw=raw,
        )
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_ranking_config(path: Path | None) -> RankingConfig:
    """The ranking config from ``path``, or the defaults when no file is configured."""
    if path is None:
        return RankingConfig()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ranking config: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_ranking_config(raw, str(path))
