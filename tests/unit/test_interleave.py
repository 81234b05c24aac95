"""Team-draft interleaving on hand-built lists: the draft rule, reproducibility from the request id, credit."""

from __future__ import annotations

from collections import Counter

import pytest

from fuserec_os.config import parse_ranking_config
from fuserec_os.experiments.assign import assign
from fuserec_os.experiments.interleave import (
    LOSS,
    TIE,
    WIN,
    credit,
    interleave_request,
    interleave_seed,
    team_draft,
)

A = ["a1", "a2", "a3", "s1", "a4"]
B = ["b1", "s1", "b2", "b3", "b4"]


def test_team_draft_takes_turns_and_never_repeats_a_product() -> None:
    for seed in range(50):
        mixed = team_draft(A, B, seed=seed)
        assert len(set(mixed.product_ids)) == len(mixed.product_ids)
        assert set(mixed.product_ids) == set(A) | set(B)
        control = [p for p, t in zip(mixed.product_ids, mixed.teams, strict=True) if t == "control"]
        treatment = [p for p, t in zip(mixed.product_ids, mixed.teams, strict=True) if t == "treatment"]
        # each team's picks keep its own ranking's order
        assert control == [p for p in A if p in control] and treatment == [p for p in B if p in treatment]
        # after every pair of picks the teams are level: a team is never two picks ahead
        for n in range(2, len(mixed.teams) + 1, 2):
            drafted = [t for t in mixed.teams[:n] if t is not None]
            if len(drafted) == n:
                assert Counter(drafted)["control"] == Counter(drafted)["treatment"]


def test_a_hand_built_draft() -> None:
    """control = [x, y, z], treatment = [y, w, x], seed 1: random.Random(1) draws 0.134, 0.847, ...

    round 1: teams level, coin 0.134 < 0.5 -> control picks first: x (its best); treatment then picks its best
    not yet shown: y. round 2: level again, coin 0.847 -> treatment first: w (y is taken); control: z. Both
    rankings are used up (x, y, w, z all shown).
    """
    mixed = team_draft(["x", "y", "z"], ["y", "w", "x"], seed=1)
    assert mixed.product_ids == ("x", "y", "w", "z")
    assert mixed.teams == ("control", "treatment", "treatment", "control")


def test_identical_rankings_give_that_ranking() -> None:
    mixed = team_draft(A, A, seed=3)
    assert mixed.product_ids == tuple(A)


def test_when_one_ranking_runs_out_the_rest_has_no_team() -> None:
    mixed = team_draft(["a"], ["a", "b", "c"], seed=0)
    assert mixed.product_ids[0] == "a"
    # after "a", control has nothing new: b and c follow in treatment's order, credited to nobody
    assert mixed.product_ids[1:] == ("b", "c") and mixed.teams[1:] == (None, None)


def test_size_caps_the_list() -> None:
    mixed = team_draft(A, B, seed=5, size=3)
    assert len(mixed.product_ids) == 3 == len(mixed.teams)


def test_the_coin_is_reproducible_from_the_request_id_and_varies_between_requests() -> None:
    seed = interleave_seed("exp", "req-42")
    assert seed == interleave_seed("exp", "req-42") and seed != interleave_seed("exp", "req-43")
    assert team_draft(A, B, seed=seed) == team_draft(A, B, seed=seed)
    firsts = Counter(team_draft(A, B, seed=interleave_seed("exp", f"r{i}")).teams[0] for i in range(2000))
    assert 900 < firsts["control"] < 1100  # a fair coin for who picks first


def test_interleave_request_names_teams_after_the_variants() -> None:
    cfg = parse_ranking_config(
        {"experiments": {"il": {"mode": "interleave", "variants": {"engine": {"engine": True, "control": True},
                                                                     "mlp": {"model_version": "v2"}}}}}
    ).experiments  # fmt: skip
    a = assign(cfg.get("il"), "u1")
    assert a is not None
    mixed = interleave_request(a, A, B, "req-1", size=6)
    assert set(mixed.teams) <= {"engine", "mlp"} and len(mixed.product_ids) == 6
    assert mixed == interleave_request(a, A, B, "req-1", size=6)


@pytest.mark.parametrize(
    ("clicked", "control", "treatment", "outcome", "any_click"),
    [
        (["a1"], 1, 0, LOSS, True),
        (["b1", "b2"], 0, 2, WIN, True),
        (["a1", "b1"], 1, 1, TIE, True),
        (["b1", "b1", "b1", "a1", "a2"], 2, 1, LOSS, True),  # distinct products: repeated clicks count once
        (["zz", "n1"], 0, 0, TIE, False),  # not shown, or shown without a team: nobody's credit
        ([], 0, 0, TIE, False),
    ],
)
def test_credit(clicked: list[str], control: int, treatment: int, outcome: str, any_click: bool) -> None:
    shown = ["a1", "b1", "a2", "b2", "n1"]
    teams = ["control", "treatment", "control", "treatment", None]
    c = credit(shown, teams, clicked)
    assert (c.control, c.treatment, c.outcome, c.clicked) == (control, treatment, outcome, any_click)


def test_credit_needs_parallel_teams() -> None:
    with pytest.raises(ValueError, match="parallel"):
        credit(["a", "b"], ["control"], ["a"])
