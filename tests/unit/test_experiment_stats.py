"""The statistics of the A/B report against hand computations, and the bootstrap's calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp

from fuserec_os.experiments.stats import (
    BootstrapLift,
    bootstrap_lift,
    chi_square_sf,
    poisson_bootstrap_sums,
    sample_ratio_p,
    sign_test,
    two_proportion,
)


def test_two_proportion_matches_a_hand_computation() -> None:
    """Control 50 of 1000 searches converted, treatment 70 of 1000.

    p_c = 0.05, p_t = 0.07, difference 0.02.
    pooled p = 120 / 2000 = 0.06; SE0 = sqrt(0.06 * 0.94 * (1/1000 + 1/1000)) = sqrt(0.0001128) = 0.0106207
    z = 0.02 / 0.0106207 = 1.88311; p = 2 * (1 - Phi(1.88311)) = 0.059686
    unpooled SE = sqrt(0.05 * 0.95 / 1000 + 0.07 * 0.93 / 1000) = sqrt(0.0001126) = 0.0106113
    difference CI = 0.02 -/+ 1.959964 * 0.0106113 = [-0.000798, 0.040798]
    relative lift = 0.07 / 0.05 - 1 = 0.40; log ratio = ln 1.4 = 0.336472
    SE(log ratio) = sqrt((1 - 0.07) / 70 + (1 - 0.05) / 50) = sqrt(0.0132857 + 0.019) = 0.179682
    lift CI = exp(0.336472 -/+ 1.959964 * 0.179682) - 1 = [exp(-0.015696) - 1, exp(0.688640) - 1]
            = [-0.015576, 0.991012]
    """
    t = two_proportion(50, 1000, 70, 1000)
    assert t.diff == pytest.approx(0.02)
    assert t.z == pytest.approx(1.88311, abs=1e-5)
    assert t.p_value == pytest.approx(0.059686, abs=1e-6)
    assert t.diff_ci == pytest.approx((-0.000798, 0.040798), abs=1e-6)
    assert t.lift == pytest.approx(0.40)
    assert t.lift_ci == pytest.approx((-0.015576, 0.991012), abs=1e-6)
    assert t.p_value == pytest.approx(2 * sp.norm.sf(t.z))  # and scipy agrees


def test_two_proportion_edge_cases() -> None:
    none = two_proportion(0, 100, 0, 100)
    assert none.z is None and none.p_value is None and none.lift is None and none.diff == 0.0
    from_zero = two_proportion(0, 100, 5, 100)
    assert from_zero.lift is None and from_zero.p_value is not None  # no relative lift from a zero control
    to_zero = two_proportion(5, 100, 0, 100)
    assert to_zero.lift == -1.0 and to_zero.lift_ci is None
    with pytest.raises(ValueError, match="at least one trial"):
        two_proportion(0, 0, 1, 10)
    with pytest.raises(ValueError, match="between 0 and the trials"):
        two_proportion(11, 10, 1, 10)


def test_sign_test_matches_a_hand_computation() -> None:
    """9 wins, 1 loss: P(X <= 1 | n = 10, 1/2) = (C(10,0) + C(10,1)) / 2^10 = 11 / 1024; two-sided: 22 / 1024."""
    assert sign_test(9, 1) == pytest.approx(22 / 1024)
    assert sign_test(1, 9) == pytest.approx(22 / 1024)
    assert sign_test(5, 5) == 1.0 and sign_test(0, 0) is None
    assert sign_test(612, 481) == pytest.approx(sp.binomtest(612, 1093).pvalue, rel=1e-9)
    assert sign_test(600_000, 600_500) == pytest.approx(sp.binomtest(600_000, 1_200_500).pvalue, rel=1e-2)


def test_poisson_bootstrap_sums_are_seeded_and_unbiased() -> None:
    values = np.arange(1, 11, dtype=float).reshape(5, 2)
    a = poisson_bootstrap_sums(values, 4000, np.random.default_rng(3), block_cells=7)  # many small blocks
    b = poisson_bootstrap_sums(values, 4000, np.random.default_rng(3))
    assert a.shape == (4000, 2)
    assert np.allclose(a.mean(axis=0), values.sum(axis=0), rtol=0.03)
    c = poisson_bootstrap_sums(values, 4000, np.random.default_rng(4))
    assert not np.array_equal(b, c)
    # repeated rows are drawn together (Poisson(g) for g equal users): the same distribution
    repeated = np.repeat(values, 3, axis=0)
    sums = poisson_bootstrap_sums(repeated, 20_000, np.random.default_rng(6))
    assert np.allclose(sums.mean(axis=0), repeated.sum(axis=0), rtol=0.01)
    direct = np.random.default_rng(7).poisson(1.0, size=(20_000, len(repeated))) @ repeated
    assert np.allclose(sums.std(axis=0), direct.std(axis=0), rtol=0.03)
    assert poisson_bootstrap_sums(np.zeros((0, 2)), 5, np.random.default_rng(0)).tolist() == [[0, 0]] * 5


def per_user_table(successes: int, trials: int) -> np.ndarray:
    """One search per user: columns searches (1), converted (0/1)."""
    m = np.zeros((trials, 2))
    m[:, 0] = 1.0
    m[:successes, 1] = 1.0
    return m


def test_bootstrap_agrees_with_the_z_test_when_users_are_independent_trials() -> None:
    """One search per user: the bootstrap over users and the log-ratio interval estimate the same thing."""
    control, treatment = per_user_table(200, 4000), per_user_table(260, 4000)
    (boot,) = bootstrap_lift(control, treatment, [(1, 0)], replicates=4000, seed=1)
    z = two_proportion(200, 4000, 260, 4000)
    ci = boot.interval(0.95)
    assert ci is not None and z.lift_ci is not None
    assert ci == pytest.approx(z.lift_ci, abs=0.03)
    p = boot.p_value()
    assert p is not None and z.p_value is not None and abs(p - z.p_value) < 0.01
    again = bootstrap_lift(control, treatment, [(1, 0)], replicates=4000, seed=1)[0]
    assert np.array_equal(again.lifts, boot.lifts)  # seeded


def test_bootstrap_is_wider_than_the_z_test_when_searches_of_a_user_go_together() -> None:
    """Each user converts on all or none of 10 searches: 10x the searches, but the information of the users.
    The z-test over searches is fooled into a narrow interval; the bootstrap over users is not."""
    rng = np.random.default_rng(5)

    def clustered(n_users: int, rate: float) -> np.ndarray:
        buyer = rng.random(n_users) < rate
        return np.column_stack([np.full(n_users, 10.0), np.where(buyer, 10.0, 0.0)])

    c, t = clustered(1000, 0.05), clustered(1000, 0.05)
    (boot,) = bootstrap_lift(c, t, [(1, 0)], replicates=2000, seed=2)
    z = two_proportion(int(c[:, 1].sum()), int(c[:, 0].sum()), int(t[:, 1].sum()), int(t[:, 0].sum()))
    ci = boot.interval()
    assert ci is not None and z.lift_ci is not None
    assert (ci[1] - ci[0]) > 2.0 * (z.lift_ci[1] - z.lift_ci[0])


def shoppers(rng: np.random.Generator, n: int, scale: float = 1.0) -> np.ndarray:
    """Per user: searches (1-11) and converted searches, with a propensity that differs a lot between users."""
    propensity = np.clip(rng.beta(0.5, 8.0, n) * scale, 0, 1)  # most users rarely buy, a few often
    searches = rng.integers(1, 12, n)
    return np.column_stack([searches, rng.binomial(searches, propensity)]).astype(float)


def test_a_a_shows_no_significance_in_most_seeds() -> None:
    """Both arms from one process (heterogeneous users with several searches each): at 95% the bootstrap should
    call about 1 in 20 significant. Over 40 seeds, 6 or more would happen by chance with probability ~1.4%
    (binomial 40, 0.05); all 40 are fixed seeds, so the test is deterministic."""
    significant = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        (boot,) = bootstrap_lift(shoppers(rng, 400), shoppers(rng, 400), [(1, 0)], replicates=500, seed=seed)
        ci = boot.interval()
        assert ci is not None
        significant += ci[0] > 0 or ci[1] < 0
    assert significant <= 5, significant


def test_a_real_difference_is_found() -> None:
    """The same setting with a 40% better treatment: significant in most seeds (the check above can fail)."""
    found = 0
    for seed in range(10):
        rng = np.random.default_rng(100 + seed)
        control, treatment = shoppers(rng, 2000), shoppers(rng, 2000, scale=1.4)
        (boot,) = bootstrap_lift(control, treatment, [(1, 0)], replicates=500, seed=seed)
        ci = boot.interval()
        found += ci is not None and ci[0] > 0
    assert found >= 8, found


def test_bootstrap_lift_edge_cases() -> None:
    few = BootstrapLift(np.array([0.1] * 50), 0)
    assert few.interval() is None and few.p_value() is None
    all_above = BootstrapLift(np.linspace(0.01, 0.2, 1000), 0)
    assert all_above.p_value() == pytest.approx(1 / 1000)  # never 0: at least one replicate's worth
    with pytest.raises(ValueError, match="at least 100"):
        bootstrap_lift(per_user_table(1, 10), per_user_table(1, 10), [(1, 0)], replicates=10)
    # a control that never converts: every replicate's lift is undefined
    (boot,) = bootstrap_lift(per_user_table(0, 50), per_user_table(5, 50), [(1, 0)], replicates=200)
    assert boot.lifts.size == 0 and boot.undefined == 200 and boot.interval() is None
    assert math.isclose(sign_test(0, 3) or 0, 0.25)


@pytest.mark.parametrize("df", [1, 2, 3, 5, 10])
def test_chi_square_tail(df: int) -> None:
    for x in (0.01, 0.5, 3.0, 10.0, 25.0, 80.0):
        assert chi_square_sf(x, df) == pytest.approx(sp.chi2.sf(x, df), rel=1e-9, abs=1e-300)
    assert chi_square_sf(0.0, df) == 1.0


def test_sample_ratio_mismatch() -> None:
    """5,000 / 5,000 at 50/50 fits; 5,200 / 4,800 does not (chi-square 16 on 1 df, p = 6.3e-5)."""
    assert sample_ratio_p([5000, 5000], [0.5, 0.5]) == pytest.approx(1.0)
    assert sample_ratio_p([5200, 4800], [0.5, 0.5]) == pytest.approx(sp.chi2.sf(16.0, 1))
    assert sample_ratio_p([0, 0], [0.5, 0.5]) is None
