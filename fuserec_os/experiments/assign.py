"""Which experiment covers a search, which variant a shopper sees, and what the search log records about it.

The proxy's side of an experiment, in pure Python (hashlib only: a few microseconds per request):

1. ``experiment = active_experiment(config.experiments, index, prefix=..., stopped=...)``: the running
   experiment covering the searched index, or None (``stopped`` comes from :mod:`.state`, polled).
2. ``assignment = assign(experiment, user_id, session_id)``: the variant (None when the request has neither id:
   it is served as if there were no experiment, and not logged under it).
3. Serve ``assignment.variant`` (``engine`` order, ``model_version``, ``blend``); in interleave mode rank with
   both variants and mix them with :func:`fuserec_os.experiments.interleave.interleave_request`.
4. Log the impression with :func:`impression_fields` merged into its row.

Assignment is a salted hash, not a lookup: blake2b of the experiment's salt (default: its name) and the user id,
read as a number in [0, 1) and bucketed by the variants' cumulative shares. So a user sees one variant across
sessions, days and proxy replicas (processes share nothing but the config), and two experiments with different
salts split users independently. Users without an id are assigned by their session id (a different key space:
``u:``/``s:`` prefixes, so a session id equal to some user id does not share that user's bucket).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from fuserec_os.experiments.config import INTERLEAVE, Experiment, ExperimentsConfig, Variant

__all__ = ["Assignment", "active_experiment", "active_experiments", "assign", "bucket", "impression_fields"]

_SCALE = float(2**64)


def bucket(salt: str, unit: str) -> float:
    """A number in [0, 1), uniform over units and the same in every process: blake2b(salt NUL unit), 64 bits."""
    digest = hashlib.blake2b(f"{salt}\x00{unit}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


@dataclass(frozen=True)
class Assignment:
    """What one request gets under ``experiment``.

    ``variant``: the variant to serve (``ab`` mode); None in interleave mode, where every request gets both
    (``experiment.control`` and the treatment, mixed). ``unit``: ``user`` or ``session``, what was hashed;
    ``unit_id``: that id (the report counts it as the user). ``position``: the hash value in [0, 1).
    """

    experiment: Experiment
    variant: Variant | None
    unit: str
    unit_id: str
    position: float

    @property
    def interleaved(self) -> bool:
        return self.experiment.mode == INTERLEAVE


def assign(experiment: Experiment, user_id: str | None, session_id: str | None = None) -> Assignment | None:
    """The variant ``user_id`` (else ``session_id``) sees under ``experiment``; None when both are missing.

    Deterministic: the same ids give the same variant in every call and every process.
    """
    if user_id:
        unit, unit_id = "user", str(user_id)
    elif session_id:
        unit, unit_id = "session", str(session_id)
    else:
        return None
    position = bucket(experiment.hash_salt, f"{unit[0]}:{unit_id}")
    if experiment.mode == INTERLEAVE:
        return Assignment(experiment, None, unit, unit_id, position)
    return Assignment(experiment, _pick(experiment.variants, position), unit, unit_id, position)


def _pick(variants: Sequence[Variant], position: float) -> Variant:
    edge = 0.0
    for variant in variants[:-1]:
        edge += variant.share or 0.0
        if position < edge:
            return variant
    return variants[-1]  # the rest, float rounding of the shares included


def active_experiments(
    config: ExperimentsConfig, index: str, *, prefix: str = "", stopped: Collection[str] = ()
) -> tuple[Experiment, ...]:
    """Running experiments covering a search on ``index`` (an alias with ``prefix``, or the logical name),
    leaving out the ``stopped`` ones (names from :func:`fuserec_os.experiments.state.stopped_experiments`).

    The config allows at most one running experiment per index, so this holds at most one.
    """
    return tuple(
        e for e in config.experiments.values() if e.running and e.name not in stopped and e.applies_to(index, prefix)
    )


def active_experiment(
    config: ExperimentsConfig, index: str, *, prefix: str = "", stopped: Collection[str] = ()
) -> Experiment | None:
    """The running experiment covering ``index``, or None (see :func:`active_experiments`)."""
    found = active_experiments(config, index, prefix=prefix, stopped=stopped)
    return found[0] if found else None


def impression_fields(assignment: Assignment, teams: Sequence[str | None] | None = None) -> dict[str, Any]:
    """The fields a search served under ``assignment`` adds to its search-log row.

    ``experiment`` always; ``variant`` in ab mode; ``teams`` in interleave mode (the variant name each shown
    product came from, parallel to ``product_ids``; None for one neither team drafted). A search assigned by
    its session (no user id) also gets ``user_id`` = the session id and ``session_id``: the search log needs a
    user, and the report counts the session as the user (events of that shopper should carry the same id).
    """
    fields: dict[str, Any] = {"experiment": assignment.experiment.name}
    if assignment.interleaved:
        if teams is None:
            raise ValueError("an interleaved search logs the team of every shown product (teams=...)")
        fields["teams"] = ["" if t is None else t for t in teams]
    else:
        assert assignment.variant is not None
        fields["variant"] = assignment.variant.name
    if assignment.unit == "session":
        fields["user_id"] = assignment.unit_id
        fields["session_id"] = assignment.unit_id
    return fields
