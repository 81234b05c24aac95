"""Team-draft interleaving: one result list mixing the control's and the treatment's rankings, and click credit.

Why: in an A/B test each user sees one ranking, so the difference between rankings is buried in the difference
between users; interleaving shows every user both, and each click is a direct vote for the ranking that put the
product there. It detects a difference with one or two orders of magnitude fewer users (Chapelle et al., "Large
scale validation and analysis of interleaved search evaluation", 2012), which matters for small shops.

Team draft (Radlinski, Kurup and Joachims, 2008): like captains picking teams, the team with fewer picks so far
picks next (a coin decides when both have as many); a team picks its highest-ranked product not yet in the list.
When the team whose turn it is has no new product left, the other ranking's remaining products follow in its
order, drafted by no team (``None``): a click on them credits neither side, so neither team gets picks the
other could not match. The coin comes from the request id (:func:`interleave_seed`),
so a logged search can be replayed exactly.

Credit (:func:`credit`): per search, the distinct clicked products drafted by each team; the treatment wins when
it has more, loses when it has fewer, ties otherwise.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fuserec_os.experiments.assign import Assignment

__all__ = [
    "LOSS",
    "TIE",
    "WIN",
    "Credit",
    "Interleaved",
    "credit",
    "interleave_request",
    "interleave_seed",
    "team_draft",
]

WIN, LOSS, TIE = "win", "loss", "tie"


@dataclass(frozen=True)
class Interleaved:
    """The mixed list: product ids in display order and, parallel to them, the team (variant name) that drafted
    each (None: appended after one ranking ran out, no team)."""

    product_ids: tuple[str, ...]
    teams: tuple[str | None, ...]


def interleave_seed(salt: str, request_id: str) -> int:
    """The coin's seed for one request: the same request id gives the same list in every process."""
    return int.from_bytes(hashlib.blake2b(f"{salt}\x00{request_id}".encode(), digest_size=8).digest(), "big")


def team_draft(
    control: Sequence[str],
    treatment: Sequence[str],
    *,
    seed: int,
    size: int | None = None,
    names: tuple[str, str] = ("control", "treatment"),
) -> Interleaved:
    """Interleave two rankings of product ids (best first) by team draft; at most ``size`` products (None: all).

    ``names`` are the teams' labels (the variants' names). A product in both rankings appears once, drafted by
    the team that picked it first. Duplicates within one ranking are skipped.
    """
    rng = random.Random(seed)
    out: list[str] = []
    teams: list[str | None] = []
    seen: set[str] = set()
    limit = len(control) + len(treatment) if size is None else size
    ia = ib = picks_a = picks_b = 0
    while len(out) < limit:
        while ia < len(control) and control[ia] in seen:
            ia += 1
        while ib < len(treatment) and treatment[ib] in seen:
            ib += 1
        if ia == len(control) and ib == len(treatment):
            break
        control_picks = picks_a < picks_b or (picks_a == picks_b and rng.random() < 0.5)
        if control_picks:
            if ia == len(control):
                break  # the team whose turn it is has nothing new: the rest is nobody's
            pid, team = control[ia], names[0]
            picks_a += 1
        else:
            if ib == len(treatment):
                break
            pid, team = treatment[ib], names[1]
            picks_b += 1
        out.append(pid)
        teams.append(team)
        seen.add(pid)
    for rest in (control[ia:], treatment[ib:]):  # at most one of them still has new products
        for pid in rest:
            if len(out) >= limit:
                break
            if pid not in seen:
                out.append(pid)
                teams.append(None)
                seen.add(pid)
    return Interleaved(tuple(out), tuple(teams))


def interleave_request(
    assignment: Assignment,
    control: Sequence[str],
    treatment: Sequence[str],
    request_id: str,
    size: int | None = None,
) -> Interleaved:
    """:func:`team_draft` for one proxied search under an interleave experiment: teams named after the
    experiment's control and treatment, the coin seeded by the experiment's salt and the request id."""
    experiment = assignment.experiment
    names = (experiment.control.name, experiment.treatments[0].name)
    seed = interleave_seed(experiment.hash_salt, request_id)
    return team_draft(control, treatment, seed=seed, size=size, names=names)


@dataclass(frozen=True)
class Credit:
    """One interleaved search's clicks by team, and the outcome for the treatment."""

    control: int
    treatment: int

    @property
    def outcome(self) -> str:
        if self.treatment > self.control:
            return WIN
        if self.treatment < self.control:
            return LOSS
        return TIE

    @property
    def clicked(self) -> bool:
        """Whether any credited click happened (a 0-0 tie says nothing about preference)."""
        return self.control + self.treatment > 0


def credit(
    product_ids: Sequence[str],
    teams: Sequence[str | None],
    clicked: Iterable[str],
    *,
    control: str = "control",
    treatment: str = "treatment",
) -> Credit:
    """Credit each distinct clicked product to the team that drafted it (clicks on products not shown, or shown
    without a team, credit nobody)."""
    if len(product_ids) != len(teams):
        raise ValueError(f"teams must be parallel to product_ids ({len(teams)} teams for {len(product_ids)} products)")
    team_of = dict(zip(product_ids, teams, strict=True))
    counts = {control: 0, treatment: 0}
    for pid in set(clicked):
        team = team_of.get(pid)
        if team in counts:
            counts[team] += 1
    return Credit(counts[control], counts[treatment])
