"""The statistics of an experiment report: two-proportion z-tests, a bootstrap over users, the sign test.

Why two methods for a lift. The two-proportion z-test treats every search as an independent coin flip; it is
exact enough when the unit is the user (conversion per user), but a user's searches are not independent (one
shopper who buys a lot makes many converting searches), so for per-search rates it gives intervals that are too
narrow. The bootstrap over users resamples whole users, keeping each user's searches together, so its interval
is right for every metric; the report's verdict and the guardrails use it, and the z-test is shown beside it.

The bootstrap is the Poisson bootstrap (each user's weight in a replicate is Poisson(1); Chamandy et al.,
"Estimating uncertainty for massive data streams", 2012): one matrix product per block of replicates, so a
hundred thousand users and two thousand replicates take seconds, and the variants are resampled independently
(they are independent samples). Seeded: the same data and seed give the same interval.

Everything here is plain NumPy and the standard library (``statistics.NormalDist`` for the normal quantiles).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

__all__ = [
    "BootstrapLift",
    "ZTest",
    "bootstrap_lift",
    "chi_square_sf",
    "poisson_bootstrap_sums",
    "sample_ratio_p",
    "sign_test",
    "two_proportion",
]

_NORMAL = NormalDist()
_BLOCK_CELLS = 4_000_000  # replicates x users per block of the bootstrap (32 MB of float64 weights)


def z_critical(confidence: float) -> float:
    """The two-sided normal quantile: 1.95996 for 0.95."""
    return _NORMAL.inv_cdf(0.5 + confidence / 2.0)


def two_sided_p(z: float) -> float:
    """P(|Z| >= |z|) for a standard normal Z."""
    return math.erfc(abs(z) / math.sqrt(2.0))


@dataclass(frozen=True)
class ZTest:
    """A two-proportion z-test of treatment (``x_t`` of ``n_t``) against control (``x_c`` of ``n_c``).

    ``diff``: p_t - p_c with its Wald interval (unpooled standard error); ``p_value``: pooled z-test, two-sided;
    ``lift``: p_t / p_c - 1 with the log-ratio (Katz) interval; None where undefined (no successes in a group).
    """

    x_c: int
    n_c: int
    x_t: int
    n_t: int
    diff: float
    diff_ci: tuple[float, float]
    z: float | None
    p_value: float | None
    lift: float | None
    lift_ci: tuple[float, float] | None


def two_proportion(x_c: int, n_c: int, x_t: int, n_t: int, confidence: float = 0.95) -> ZTest:
    """Compare two proportions (see :class:`ZTest`). Needs at least one trial in each group."""
    if n_c < 1 or n_t < 1:
        raise ValueError(f"each group needs at least one trial (control {n_c}, treatment {n_t})")
    if not (0 <= x_c <= n_c and 0 <= x_t <= n_t):
        raise ValueError(f"successes must be between 0 and the trials (control {x_c}/{n_c}, treatment {x_t}/{n_t})")
    zc = z_critical(confidence)
    p_c, p_t = x_c / n_c, x_t / n_t
    diff = p_t - p_c
    se = math.sqrt(p_c * (1 - p_c) / n_c + p_t * (1 - p_t) / n_t)
    pooled = (x_c + x_t) / (n_c + n_t)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t))
    z = diff / se0 if se0 > 0 else None
    p_value = two_sided_p(z) if z is not None else None
    lift: float | None = None
    lift_ci: tuple[float, float] | None = None
    if x_c > 0:
        lift = p_t / p_c - 1.0
        if x_t > 0:
            se_log = math.sqrt((1 - p_t) / x_t + (1 - p_c) / x_c)
            log_ratio = math.log(p_t / p_c)
            lift_ci = (math.exp(log_ratio - zc * se_log) - 1.0, math.exp(log_ratio + zc * se_log) - 1.0)
    return ZTest(x_c, n_c, x_t, n_t, diff, (diff - zc * se, diff + zc * se), z, p_value, lift, lift_ci)


def poisson_bootstrap_sums(
    values: npt.ArrayLike, replicates: int, rng: np.random.Generator, *, block_cells: int = _BLOCK_CELLS
) -> npt.NDArray[np.float64]:
    """Column sums of ``values`` (users x columns) under ``replicates`` Poisson(1) reweightings of the users:
    a (replicates x columns) array. Vectorised in blocks of replicates (``block_cells`` weights at a time).

    Users with identical rows are drawn together: the total weight of g such users is Poisson(g), the same
    distribution as g separate Poisson(1) draws, at a fraction of the cost (most users of a shop search a few
    times and buy nothing, so their rows repeat).
    """
    m = np.asarray(values, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"values must be users x columns (got shape {m.shape})")
    k = m.shape[1]
    rows, counts = np.unique(m, axis=0, return_counts=True) if len(m) else (m, np.zeros(0, dtype=np.int64))
    n = len(rows)
    out = np.empty((replicates, k), dtype=np.float64)
    block = max(1, block_cells // max(n, 1))
    lam = counts.astype(np.float64)
    for start in range(0, replicates, block):
        stop = min(replicates, start + block)
        weights = rng.poisson(lam, size=(stop - start, n)).astype(np.float64)
        out[start:stop] = weights @ rows
    return out


@dataclass(frozen=True)
class BootstrapLift:
    """The bootstrap distribution of one metric's relative lift (treatment / control - 1).

    ``lifts`` holds the replicates where both ratios were defined (a replicate whose control denominator or rate
    is 0 has no lift); ``undefined`` counts the others.
    """

    lifts: npt.NDArray[np.float64]
    undefined: int

    def interval(self, confidence: float = 0.95) -> tuple[float, float] | None:
        """The percentile interval, or None with fewer than 100 defined replicates."""
        if self.lifts.size < 100:
            return None
        tail = (1.0 - confidence) / 2.0
        low, high = np.quantile(self.lifts, [tail, 1.0 - tail])
        return float(low), float(high)

    def p_value(self) -> float | None:
        """Two-sided: twice the share of replicates on the far side of zero (at least 1 / replicates)."""
        n = self.lifts.size
        if n < 100:
            return None
        below = float(np.count_nonzero(self.lifts <= 0.0)) / n
        above = float(np.count_nonzero(self.lifts >= 0.0)) / n
        return min(1.0, max(2.0 * min(below, above), 1.0 / n))


def bootstrap_lift(
    control: npt.NDArray[np.float64],
    treatment: npt.NDArray[np.float64],
    ratios: Sequence[tuple[int, int]],
    *,
    replicates: int = 2000,
    seed: int = 0,
) -> list[BootstrapLift]:
    """For each ``(numerator column, denominator column)`` of ``ratios``, the bootstrap lift of the ratio of
    sums (sum of numerators / sum of denominators over the resampled users) of ``treatment`` over ``control``.

    ``control`` and ``treatment`` are per-user matrices (users x columns: e.g. searches, converted searches,
    revenue, 1 per user). A denominator column of -1 means "per user": the number of resampled users.
    """
    if replicates < 100:
        raise ValueError(f"replicates must be at least 100 (got {replicates})")
    rng_c, rng_t = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    sums_c = poisson_bootstrap_sums(_with_ones(control), replicates, rng_c)
    sums_t = poisson_bootstrap_sums(_with_ones(treatment), replicates, rng_t)
    out: list[BootstrapLift] = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for num, den in ratios:
            rc = sums_c[:, num] / sums_c[:, den]
            rt = sums_t[:, num] / sums_t[:, den]
            lift = rt / rc - 1.0
            ok = np.isfinite(lift)
            out.append(BootstrapLift(lift[ok], int((~ok).sum())))
    return out


def _with_ones(m: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``m`` with a last column of ones (so column -1 sums to the resampled number of users)."""
    m = np.asarray(m, dtype=np.float64).reshape(len(m), -1)
    return np.hstack([m, np.ones((m.shape[0], 1))])


def sign_test(wins: int, losses: int) -> float | None:
    """Two-sided exact binomial test of ``wins`` against ``losses`` with p = 1/2 (ties left out); None when
    there is nothing to test. Exact up to a million trials (log-factorials), normal beyond."""
    n = wins + losses
    if n == 0:
        return None
    k = min(wins, losses)
    if n > 1_000_000:
        z = (abs(wins - losses) - 1.0) / math.sqrt(n)
        return two_sided_p(max(z, 0.0))
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))])
    i = np.arange(0, k + 1)
    log_pmf = log_fact[n] - log_fact[i] - log_fact[n - i] - n * math.log(2.0)
    tail = float(np.exp(log_pmf).sum())
    return min(1.0, 2.0 * tail)


def chi_square_sf(x: float, df: int) -> float:
    """P(X >= x) for a chi-square variable with ``df`` degrees of freedom: the regularized upper incomplete
    gamma Q(df/2, x/2), by its series below a + 1 and its continued fraction above (Numerical Recipes 6.2)."""
    if df < 1:
        raise ValueError(f"df must be >= 1 (got {df})")
    if x <= 0:
        return 1.0
    a, y = df / 2.0, x / 2.0
    log_front = a * math.log(y) - y - math.lgamma(a)
    if y < a + 1.0:  # series for P, then Q = 1 - P
        term = total = 1.0 / a
        n = a
        for _ in range(1000):
            n += 1.0
            term *= y / n
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300  # Lentz's continued fraction for Q
    b = y + 1.0 - a
    c, d = 1.0 / tiny, 1.0 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        step = d * c
        h *= step
        if abs(step - 1.0) < 1e-15:
            break
    return min(1.0, math.exp(log_front) * h)


def sample_ratio_p(observed: Sequence[int], shares: Sequence[float]) -> float | None:
    """The chi-square goodness-of-fit p-value of the users per variant against the configured shares: a tiny
    value (a *sample ratio mismatch*) means assignment or logging loses users of some variant, and the lifts
    cannot be trusted. None without users."""
    total = sum(observed)
    if total == 0 or len(observed) < 2:
        return None
    stat = sum((o - total * s) ** 2 / (total * s) for o, s in zip(observed, shares, strict=True))
    return chi_square_sf(stat, len(observed) - 1)
