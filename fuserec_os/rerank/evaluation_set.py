"""Which searches a model version was tested on: so two versions' scores are compared only on the same ones.

Training records it in the version's ``training`` metadata as ``test_set``: the number of test searches, the
first and last search time (ISO 8601 with fractions: the exact bounds to rebuild the set from), a SHA-256 of the
sorted request ids (the identity: equal digests, same searches) and where the searches came from (the stored
search log, an impressions file, or the events). Versions trained before it was recorded only have
``test_from`` and ``searches.test``; two such versions count as tested on the same searches when both agree.

Pure Python (stdlib and :mod:`fuserec_os.timefmt`): the registry, the training job and ``model show`` share it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fuserec_os.timefmt import utc_iso

__all__ = ["EvaluationSet"]


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value.strip() else None


def _count(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class EvaluationSet:
    """The test searches of one version (see the module docstring); every field may be unknown (None)."""

    searches: int | None
    first: str | None = None
    last: str | None = None
    digest: str | None = None
    source: str | None = None

    @classmethod
    def of(cls, training: Mapping[str, Any] | None) -> EvaluationSet | None:
        """From a version's ``training`` metadata; None when it recorded nothing about its test searches."""
        if not isinstance(training, Mapping):
            return None
        recorded = training.get("test_set")
        if isinstance(recorded, Mapping):
            return cls(
                searches=_count(recorded.get("searches")),
                first=_text(recorded.get("first")),
                last=_text(recorded.get("last")),
                digest=_text(recorded.get("digest")),
                source=_text(recorded.get("source")),
            )
        counts = training.get("searches")
        searches = _count(counts.get("test")) if isinstance(counts, Mapping) else None
        first = _text(training.get("test_from"))
        if searches is None and first is None:
            return None
        return cls(searches=searches, first=first)

    def as_dict(self) -> dict[str, Any]:
        return {
            "searches": self.searches,
            "first": self.first,
            "last": self.last,
            "digest": self.digest,
            "source": self.source,
        }

    def same_as(self, other: EvaluationSet | None) -> bool:
        """Known to be the very same searches: equal digests, or (neither has one) the same start and count."""
        if other is None:
            return False
        if self.digest or other.digest:
            return bool(self.digest and self.digest == other.digest)
        return (
            self.first is not None
            and self.searches is not None
            and self.first == other.first
            and self.searches == other.searches
        )

    def matched_by(self, rebuilt: EvaluationSet) -> bool:
        """Whether searches rebuilt now (which always carry a digest) are the ones this set recorded: the same
        digest, or for a version that recorded none, the same start and count."""
        if self.digest:
            return self.digest == rebuilt.digest
        return self.searches == rebuilt.searches and (self.first is None or self.first == rebuilt.first)

    def window(self) -> str:
        """``2024-04-11T19:47:51Z .. 2024-04-14T23:58:10Z`` (or ``from ...`` when the end was not recorded)."""
        if self.first and self.last:
            if utc_iso(self.first) == utc_iso(self.last):
                return utc_iso(self.first)
            return f"{utc_iso(self.first)} .. {utc_iso(self.last)}"
        if self.first:
            return f"from {utc_iso(self.first)}"
        return "window not recorded"

    def describe(self, version: str) -> str:
        """``v3's 701 test searches (2024-04-11T19:47:51Z .. 2024-04-14T23:58:10Z)``: what a message names."""
        if self.searches is None:
            count = "test searches"
        else:
            count = f"{self.searches:,} test search" + ("" if self.searches == 1 else "es")
        return f"{version}'s {count} ({self.window()})"

    @staticmethod
    def describe_of(held: EvaluationSet | None, version: str) -> str:
        """:meth:`describe`, or ``v3's test searches (not recorded)`` when the version recorded nothing."""
        return held.describe(version) if held is not None else f"{version}'s test searches (not recorded)"
