"""The report of one experiment: per-variant rates, lifts with intervals and p-values, the verdict in words,
and the guardrail's status; read from the cluster or computed from frames.

Metrics (per variant; :data:`~fuserec_os.experiments.config.AB_METRICS` says what each divides):

- ``users`` and ``searches`` under the variant (every logged search, those that found nothing included: the
  proxy logs an empty page too, so a variant that finds nothing more often pays for it in every per-search rate);
- ``ctr``: searches with a click (or a cart or purchase: see :mod:`.attribution`) / searches;
- ``click_to_cart``: searches with an add to cart / searches with a click;
- ``conversion``: searches with a purchase / searches; ``conversion_per_user``: users with a purchase / users;
- ``revenue_per_search``: price x quantity of the attributed purchases / searches (None when no purchase has a
  price; purchases without one are counted in ``unpriced`` and left out of the revenue).

Each treatment's lift over the control (treatment / control - 1) comes with the bootstrap over users (interval,
p-value: what the verdict and the guardrail use) and, for the proportions, the two-proportion z-test (which
treats searches as independent: see :mod:`.stats`). In interleave mode the report counts, per interleaved
search with a credited click, whether the treatment won, lost or tied, with the win rate, its bootstrap
interval over users and the sign test.

Nothing is dropped silently: searches logged under a variant the config does not have are counted in the
notes, and events that could not be attributed are counted by reason (:class:`.attribution.Attribution`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fuserec_os.experiments.attribution import (
    CLOCK_SKEW,
    FUNNEL,
    Attribution,
    attribute,
    search_outcomes,
    team_clicks,
)
from fuserec_os.experiments.config import AB_METRICS, INTERLEAVE, Experiment, ExperimentsConfig
from fuserec_os.experiments.state import StopInfo
from fuserec_os.experiments.stats import (
    BootstrapLift,
    ZTest,
    bootstrap_lift,
    poisson_bootstrap_sums,
    sample_ratio_p,
    sign_test,
)
from fuserec_os.experiments.stats import two_proportion as z_test

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

__all__ = [
    "GuardrailStatus",
    "InterleaveSummary",
    "MetricLift",
    "Report",
    "VariantSummary",
    "check_guardrails",
    "compute_report",
    "experiment_report",
    "guardrail_status",
    "read_experiment",
]

# per-user matrix columns (stats.bootstrap_lift appends a column of ones: -1, "per user")
_SEARCHES, _CLICKED, _CARTED, _PURCHASED, _REVENUE, _BUYER = range(6)
_PER_USER = -1
_RATIOS: dict[str, tuple[int, int]] = {
    "ctr": (_CLICKED, _SEARCHES),
    "click_to_cart": (_CARTED, _CLICKED),
    "conversion": (_PURCHASED, _SEARCHES),
    "conversion_per_user": (_BUYER, _PER_USER),
    "revenue_per_search": (_REVENUE, _SEARCHES),
}
# how the verdict says a metric moved: (verb, up, down)
_WORDS: dict[str, tuple[str, str, str]] = {
    "ctr": ("gets clicked", "more often", "less often"),
    "click_to_cart": ("turns clicks into carts", "more often", "less often"),
    "conversion": ("converts", "better", "worse"),
    "conversion_per_user": ("converts users", "better", "worse"),
    "revenue_per_search": ("earns", "more per search", "less per search"),
}


# ------------------------------------------------------------------------------------------ the report's parts


@dataclass(frozen=True)
class VariantSummary:
    """Counts of one variant (see the module docstring for the metrics made from them)."""

    name: str
    control: bool
    serves: str
    share: float | None
    users: int = 0
    searches: int = 0
    clicked: int = 0
    carted: int = 0
    purchased: int = 0
    buyers: int = 0
    purchases: int = 0
    revenue: float = 0.0
    unpriced: int = 0

    def metric(self, name: str) -> float | None:
        """The metric's value, None where it is undefined (nothing to divide by, or no price known)."""
        if name == "ctr":
            return _div(self.clicked, self.searches)
        if name == "click_to_cart":
            return _div(self.carted, self.clicked)
        if name == "conversion":
            return _div(self.purchased, self.searches)
        if name == "conversion_per_user":
            return _div(self.buyers, self.users)
        if name == "revenue_per_search":
            if self.purchases and self.unpriced == self.purchases:
                return None  # every purchase came without a price
            return _div(self.revenue, self.searches)
        raise KeyError(name)

    def proportion(self, name: str) -> tuple[int, int] | None:
        """(successes, trials) of a proportion metric, for the z-test; None for revenue."""
        return {
            "ctr": (self.clicked, self.searches),
            "click_to_cart": (self.carted, self.clicked),
            "conversion": (self.purchased, self.searches),
            "conversion_per_user": (self.buyers, self.users),
        }.get(name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "control": self.control,
            "serves": self.serves,
            "share": self.share,
            "users": self.users,
            "searches": self.searches,
            "searches_with_click": self.clicked,
            "searches_with_cart": self.carted,
            "searches_with_purchase": self.purchased,
            "users_with_purchase": self.buyers,
            "purchases": self.purchases,
            "revenue": round(self.revenue, 2),
            "purchases_without_price": self.unpriced,
            "metrics": {m: self.metric(m) for m in AB_METRICS},
        }


def _div(a: float, b: float) -> float | None:
    return a / b if b else None


@dataclass(frozen=True)
class MetricLift:
    """One treatment's lift over the control on one metric.

    ``lift``: observed treatment / control - 1; ``ci``/``p_value``: the bootstrap over users at ``confidence``
    (None when it could not be computed: too little data); ``z``: the two-proportion z-test (proportions only).
    """

    metric: str
    variant: str
    control_value: float | None
    value: float | None
    lift: float | None
    ci: tuple[float, float] | None
    p_value: float | None
    confidence: float
    z: ZTest | None = None
    bootstrap: BootstrapLift | None = field(default=None, repr=False, compare=False)

    @property
    def significant(self) -> bool:
        """The interval excludes zero (the two-sided test at ``1 - confidence`` rejects "no difference")."""
        return self.ci is not None and (self.ci[0] > 0.0 or self.ci[1] < 0.0)

    def as_dict(self) -> dict[str, Any]:
        z = self.z
        return {
            "metric": self.metric,
            "variant": self.variant,
            "control_value": self.control_value,
            "value": self.value,
            "lift": self.lift,
            "ci": list(self.ci) if self.ci else None,
            "p_value": self.p_value,
            "significant": self.significant,
            "method": "bootstrap over users",
            "z_test": None
            if z is None
            else {
                "diff": z.diff,
                "diff_ci": list(z.diff_ci),
                "lift": z.lift,
                "lift_ci": list(z.lift_ci) if z.lift_ci else None,
                "z": z.z,
                "p_value": z.p_value,
                "note": "treats searches as independent",
            },
        }


@dataclass(frozen=True)
class InterleaveSummary:
    """Interleave mode: the outcome of each interleaved search with a credited click, for the treatment."""

    control: str
    treatment: str
    users: int
    searches: int
    searches_with_click: int
    wins: int
    losses: int
    ties: int
    confidence: float
    ci: tuple[float, float] | None  # of the win rate, bootstrap over users
    p_value: float | None  # bootstrap over users
    sign_test_p: float | None  # exact binomial over searches (treats searches as independent)
    bootstrap: BootstrapLift | None = field(default=None, repr=False, compare=False)

    @property
    def win_rate(self) -> float | None:
        """Won / (won + lost): 0.5 is no preference."""
        return _div(self.wins, self.wins + self.losses)

    @property
    def significant(self) -> bool:
        return self.ci is not None and (self.ci[0] > 0.5 or self.ci[1] < 0.5)

    def as_dict(self) -> dict[str, Any]:
        return {
            "control": self.control,
            "treatment": self.treatment,
            "users": self.users,
            "searches": self.searches,
            "searches_with_click": self.searches_with_click,
            "wins": self.wins,
            "losses": self.losses,
            "ties": self.ties,
            "win_rate": self.win_rate,
            "ci": list(self.ci) if self.ci else None,
            "p_value": self.p_value,
            "sign_test_p": self.sign_test_p,
            "significant": self.significant,
        }


@dataclass(frozen=True)
class GuardrailStatus:
    """``status``: ``ok``, ``tripped``, ``waiting`` (too few searches yet), ``none`` (no guardrail), or
    ``stopped`` (the experiment is stopped already). ``stopped_now``: this check stopped it."""

    experiment: str
    status: str
    message: str
    metric: str | None = None
    variant: str | None = None
    lift: float | None = None
    ci: tuple[float, float] | None = None
    stopped_now: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "status": self.status,
            "message": self.message,
            "metric": self.metric,
            "variant": self.variant,
            "lift": self.lift,
            "ci": list(self.ci) if self.ci else None,
            "stopped_now": self.stopped_now,
        }


@dataclass
class Report:
    """Everything ``fuserec ab report`` shows (``as_dict`` is its ``--json``)."""

    experiment: Experiment
    stop: StopInfo | None
    first_search: pd.Timestamp | None
    last_search: pd.Timestamp | None
    variants: list[VariantSummary]
    lifts: list[MetricLift]
    interleave: InterleaveSummary | None
    attribution: dict[str, Any]
    confidence: float
    replicates: int
    seed: int
    notes: list[str] = field(default_factory=list)
    guardrail: GuardrailStatus | None = None

    @property
    def state(self) -> str:
        if self.stop is not None:
            return f"stopped at {self.stop.stopped_at} by {self.stop.by}: {self.stop.reason}"
        return self.experiment.state

    def lift(self, metric: str, variant: str) -> MetricLift | None:
        return next((x for x in self.lifts if x.metric == metric and x.variant == variant), None)

    def verdict(self) -> list[str]:
        """One plain sentence per treatment (interleave: one), about the primary metric."""
        if self.interleave is not None:
            return [_interleave_verdict(self.interleave, self.replicates)]
        return [_ab_verdict(self, t.name) for t in self.experiment.treatments]

    def as_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment.as_dict(),
            "state": "stopped" if self.stop else self.experiment.state,
            "stop": self.stop.as_dict() if self.stop else None,
            "first_search": None if self.first_search is None else self.first_search.isoformat(),
            "last_search": None if self.last_search is None else self.last_search.isoformat(),
            "variants": [v.as_dict() for v in self.variants],
            "lifts": [x.as_dict() for x in self.lifts],
            "interleave": self.interleave.as_dict() if self.interleave else None,
            "attribution": self.attribution,
            "guardrail": self.guardrail.as_dict() if self.guardrail else None,
            "verdict": self.verdict(),
            "confidence": self.confidence,
            "bootstrap": {"replicates": self.replicates, "seed": self.seed, "unit": "user"},
            "notes": list(self.notes),
        }


# ------------------------------------------------------------------------------------------ the verdict


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def _p(p: float | None, replicates: int) -> str:
    """A p-value in words; a bootstrap p-value at its floor (every replicate on one side) is a bound."""
    if p is None:
        return "p unknown"
    if p <= 1.0 / replicates:
        return f"p <= {1.0 / replicates:.2g}"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _ab_verdict(report: Report, variant: str) -> str:
    metric = report.experiment.primary_metric
    control = report.experiment.control.name
    x = report.lift(metric, variant)
    level = f"{report.confidence * 100:g}%"
    if x is None or x.lift is None or x.value is None or x.control_value is None:
        return f"{variant}: not enough data yet for {metric} (it needs searches, and events under {control})"
    verb, up, down = _WORDS[metric]
    how = f"{verb} {_pct(abs(x.lift))} {up if x.lift >= 0 else down} than {control}"
    if x.ci is None:
        return f"{variant} {how}; too little data for a {level} interval yet"
    ci = f"{level} CI {_pct(x.ci[0])} to {_pct(x.ci[1])}"
    if x.significant:
        return f"{variant} {how}, {ci}, significant ({_p(x.p_value, report.replicates)})"
    p = _p(x.p_value, report.replicates)
    return f"no significant difference in {metric}: {variant} {how}, {ci} ({p}); keep collecting"


def _interleave_verdict(s: InterleaveSummary, replicates: int) -> str:
    rate = s.win_rate
    counts = f"{s.wins} won, {s.losses} lost, {s.ties} tied"
    if rate is None:
        return f"not enough data yet: no interleaved search with a click on either side ({counts})"
    level = f"{s.confidence * 100:g}%"
    head = f"{s.treatment} wins {_pct(rate)} of the interleaved searches with a preference ({counts})"
    if s.ci is None:
        return f"{head}; too little data for a {level} interval yet"
    ci = f"{level} CI {_pct(s.ci[0])} to {_pct(s.ci[1])}"
    if s.significant:
        better = s.treatment if rate > 0.5 else s.control
        return f"{head}, {ci}, significant ({_p(s.p_value, replicates)}): users prefer {better}"
    return f"no significant preference: {head}, {ci} ({_p(s.p_value, replicates)}); keep collecting"


# ------------------------------------------------------------------------------------------ computing


def compute_report(
    experiment: Experiment,
    impressions: pd.DataFrame,
    events: pd.DataFrame,
    *,
    stop: StopInfo | None = None,
    confidence: float = 0.95,
    replicates: int = 2000,
    seed: int = 0,
) -> Report:
    """The report of ``experiment`` from its searches (``impressions``: an impressions frame of its searches,
    with ``variant`` and, interleaved, ``teams``) and ``events`` (an events frame covering its period)."""
    notes: list[str] = []
    impressions = _known_variants(experiment, impressions, notes)
    window = pd.Timedelta(hours=experiment.attribution_hours)
    attribution = attribute(impressions, events, window)
    first = impressions["timestamp"].min() if len(impressions) else None
    last = impressions["timestamp"].max() if len(impressions) else None
    report = Report(
        experiment=experiment,
        stop=stop,
        first_search=None if first is None or pd.isna(first) else first,
        last_search=None if last is None or pd.isna(last) else last,
        variants=[],
        lifts=[],
        interleave=None,
        attribution=attribution.as_dict(),
        confidence=confidence,
        replicates=replicates,
        seed=seed,
        notes=notes,
    )
    if experiment.mode == INTERLEAVE:
        report.interleave = _interleave(experiment, impressions, attribution, confidence, replicates, seed)
    else:
        outcomes = search_outcomes(impressions, attribution)
        users = _per_user(outcomes)
        report.variants = [_summary(experiment, v.name, users) for v in experiment.variants]
        report.lifts = _lifts(experiment, report.variants, users, confidence, replicates, seed)
        _check_split(experiment, report.variants, users, notes)
        unpriced = sum(v.unpriced for v in report.variants)
        if unpriced:
            notes.append(f"{unpriced} attributed purchase(s) had no price: left out of the revenue")
    report.guardrail = guardrail_status(experiment, report)
    return report


def _known_variants(experiment: Experiment, impressions: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    if experiment.mode == INTERLEAVE:
        if "teams" not in impressions:
            return impressions.iloc[0:0]
        # an interleaved search that showed nothing logs no teams ([] for []): a search, counted (no preference)
        complete = [
            t is not None and (len(t) > 0 or len(shown) == 0)
            for t, shown in zip(impressions["teams"], impressions["product_ids"], strict=True)
        ]
        has_teams = pd.Series(complete, index=impressions.index, dtype="bool")
        if (~has_teams).any():
            notes.append(f"{int((~has_teams).sum())} search(es) of this experiment were logged without teams: left out")
        return impressions[has_teams]
    names = {v.name for v in experiment.variants}
    known = impressions["variant"].isin(names)
    if (~known).any():
        other = impressions.loc[~known, "variant"].fillna("(none)").value_counts()
        listed = ", ".join(f"{n} ({c})" for n, c in other.items())
        notes.append(f"searches logged under variants the config does not have were left out: {listed}")
    return impressions[known]


#: Below this, the users per variant are too far from the configured shares to be chance.
SRM_ALARM = 0.001


def _check_split(
    experiment: Experiment, summaries: Sequence[VariantSummary], users: pd.DataFrame, notes: list[str]
) -> None:
    """Notes when the users per variant do not fit the shares (a sample ratio mismatch), and when a user was
    logged under several variants: both mean the assignment or the log is broken, so the lifts are suspect."""
    observed = [s.users for s in summaries]
    p = sample_ratio_p(observed, [v.share or 0.0 for v in experiment.variants])
    if p is not None and p < SRM_ALARM:
        split = ", ".join(f"{s.name} {s.users}" for s in summaries)
        shares = ", ".join(f"{v.name} {v.share:g}" for v in experiment.variants)
        notes.append(
            f"sample ratio mismatch: users split {split} but the shares are {shares} (chi-square p = {p:.2g}); "
            "assignment or logging loses users of some variant: do not trust the lifts until it is explained"
        )
    if len(users):
        per_user = users.index.get_level_values(1).value_counts()
        several = int((per_user > 1).sum())
        if several:
            notes.append(
                f"{several} user(s) were logged under more than one variant (the shares or salt changed while "
                "it ran?); each counts in every variant it saw"
            )


def _per_user(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Per (variant, user): searches, clicked, carted, purchased, revenue, buyer (0/1); matrix columns order."""
    frame = outcomes.assign(
        searches=1,
        clicked=outcomes["clicked"].astype("int64"),
        carted=outcomes["carted"].astype("int64"),
        purchased=outcomes["purchased"].astype("int64"),
    )
    per = frame.groupby(["variant", "user_id"], sort=True).agg(
        searches=("searches", "sum"),
        clicked=("clicked", "sum"),
        carted=("carted", "sum"),
        purchased=("purchased", "sum"),
        revenue=("revenue", "sum"),
        purchases=("purchases", "sum"),
        unpriced=("unpriced", "sum"),
    )
    per["buyer"] = (per["purchased"] > 0).astype("int64")
    return per


def _matrix(users: pd.DataFrame, variant: str) -> np.ndarray:
    cols = ["searches", "clicked", "carted", "purchased", "revenue", "buyer"]
    if variant not in users.index.get_level_values(0):
        return np.zeros((0, len(cols)))
    return users.loc[variant, cols].to_numpy(dtype=np.float64)


def _summary(experiment: Experiment, name: str, users: pd.DataFrame) -> VariantSummary:
    v = experiment.variant(name)
    if name not in users.index.get_level_values(0):
        return VariantSummary(v.name, v.control, v.serves, v.share)
    u = users.loc[name]
    return VariantSummary(
        v.name,
        v.control,
        v.serves,
        v.share,
        users=len(u),
        searches=int(u["searches"].sum()),
        clicked=int(u["clicked"].sum()),
        carted=int(u["carted"].sum()),
        purchased=int(u["purchased"].sum()),
        buyers=int(u["buyer"].sum()),
        purchases=int(u["purchases"].sum()),
        revenue=float(u["revenue"].sum()),
        unpriced=int(u["unpriced"].sum()),
    )


def _lifts(
    experiment: Experiment,
    summaries: Sequence[VariantSummary],
    users: pd.DataFrame,
    confidence: float,
    replicates: int,
    seed: int,
) -> list[MetricLift]:
    by_name = {s.name: s for s in summaries}
    control = by_name[experiment.control.name]
    mc = _matrix(users, control.name)
    metrics = list(AB_METRICS)
    out: list[MetricLift] = []
    for offset, t in enumerate(experiment.treatments):
        s = by_name[t.name]
        mt = _matrix(users, t.name)
        boots: list[BootstrapLift | None] = [None] * len(metrics)
        if len(mc) and len(mt):
            ratios = [_RATIOS[m] for m in metrics]
            boots = list(bootstrap_lift(mc, mt, ratios, replicates=replicates, seed=seed + offset))
        for metric, boot in zip(metrics, boots, strict=True):
            cv, tv = control.metric(metric), s.metric(metric)
            lift = tv / cv - 1.0 if cv and tv is not None else None
            if lift is None:
                boot = None  # no lift to put an interval around (e.g. no price known on one side)
            z = None
            pc, pt = control.proportion(metric), s.proportion(metric)
            if pc is not None and pt is not None and pc[1] > 0 and pt[1] > 0:
                z = z_test(pc[0], pc[1], pt[0], pt[1], confidence)
            out.append(
                MetricLift(
                    metric=metric,
                    variant=t.name,
                    control_value=cv,
                    value=tv,
                    lift=lift,
                    ci=boot.interval(confidence) if boot else None,
                    p_value=boot.p_value() if boot else None,
                    confidence=confidence,
                    z=z,
                    bootstrap=boot,
                )
            )
    return out


def _interleave(
    experiment: Experiment,
    impressions: pd.DataFrame,
    attribution: Attribution,
    confidence: float,
    replicates: int,
    seed: int,
) -> InterleaveSummary:
    control, treatment = experiment.control.name, experiment.treatments[0].name
    clicks = team_clicks(impressions, attribution, control, treatment)
    t, c = clicks["treatment_clicks"], clicks["control_clicks"]
    clicks = clicks.assign(
        win=(t > c).astype("int64"), loss=(t < c).astype("int64"), tie=((t == c) & (t > 0)).astype("int64")
    )
    per_user = clicks.groupby("user_id")[["win", "loss"]].sum().to_numpy(dtype=np.float64)
    wins, losses = int(clicks["win"].sum()), int(clicks["loss"].sum())
    boot: BootstrapLift | None = None
    if wins + losses > 0:
        sums = poisson_bootstrap_sums(per_user, replicates, np.random.default_rng(seed))
        with np.errstate(divide="ignore", invalid="ignore"):
            preference = (sums[:, 0] - sums[:, 1]) / (sums[:, 0] + sums[:, 1])  # 2 x win rate - 1
        ok = np.isfinite(preference)
        boot = BootstrapLift(preference[ok], int((~ok).sum()))
    interval = boot.interval(confidence) if boot else None
    return InterleaveSummary(
        control=control,
        treatment=treatment,
        users=int(clicks["user_id"].nunique()),
        searches=len(clicks),
        searches_with_click=int(((t + c) > 0).sum()),
        wins=wins,
        losses=losses,
        ties=int(clicks["tie"].sum()),
        confidence=confidence,
        ci=None if interval is None else ((interval[0] + 1) / 2, (interval[1] + 1) / 2),
        p_value=boot.p_value() if boot else None,
        sign_test_p=sign_test(wins, losses),
        bootstrap=boot,
    )


# ------------------------------------------------------------------------------------------ guardrails


def guardrail_status(experiment: Experiment, report: Report) -> GuardrailStatus:
    """The guardrail's state in ``report`` (see :class:`~fuserec_os.experiments.config.Guardrail` for the rule):
    tripped when a treatment is significantly worse at the guardrail's confidence and by more than
    ``max_drop``. Waits until every variant has ``min_searches`` searches."""
    g = experiment.guardrail
    name = experiment.name
    if g is None:
        return GuardrailStatus(name, "none", "no guardrail configured")
    if report.stop is not None:
        return GuardrailStatus(name, "stopped", f"the experiment is stopped ({report.stop.reason})", g.metric)
    level = f"{g.confidence * 100:g}%"
    if report.interleave is not None:
        s = report.interleave
        if s.searches < g.min_searches:
            return GuardrailStatus(name, "waiting", f"{s.searches} interleaved searches of {g.min_searches}", g.metric)
        candidates = [(s.treatment, s.bootstrap, None if s.win_rate is None else 2 * s.win_rate - 1)]
    else:
        few = [v for v in report.variants if v.searches < g.min_searches]
        if few:
            counts = ", ".join(f"{v.name} {v.searches}" for v in few)
            return GuardrailStatus(
                name, "waiting", f"waiting for {g.min_searches} searches per variant ({counts})", g.metric
            )
        candidates = []
        for t in experiment.treatments:
            x = report.lift(g.metric, t.name)
            candidates.append((t.name, x.bootstrap if x else None, x.lift if x else None))
    worst: GuardrailStatus | None = None
    for variant, boot, lift in candidates:
        ci = boot.interval(g.confidence) if boot is not None else None
        if lift is None or ci is None:
            continue
        if ci[1] < 0.0 and lift < -g.max_drop:
            message = (
                f"{variant}'s {g.metric} is {_pct(-lift)} worse than {experiment.control.name} "
                f"({level} CI {_pct(ci[0])} to {_pct(ci[1])}; limit: a drop of {_pct(g.max_drop)})"
            )
            return GuardrailStatus(name, "tripped", message, g.metric, variant, lift, ci)
        if worst is None or lift < (worst.lift or 0.0):
            message = f"{variant}'s {g.metric} lift {_pct(lift)}, {level} CI {_pct(ci[0])} to {_pct(ci[1])}"
            worst = GuardrailStatus(name, "ok", message, g.metric, variant, lift, ci)
    return worst or GuardrailStatus(name, "waiting", f"not enough data for a {level} interval yet", g.metric)


# ------------------------------------------------------------------------------------------ the cluster


def read_experiment(
    client: OpenSearch,
    experiment: Experiment,
    *,
    searches_alias: str,
    events_alias: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The experiment's logged searches (those from ``since`` on and before ``until``, when given) and the funnel
    events of their period (first search minus the clock skew to the last search plus the attribution window),
    from the cluster. A period reports the searches made in it, with the events they earned, even after it."""
    from fuserec_os.behaviour.event_store import event_indices
    from fuserec_os.behaviour.events import events_frame, format_timestamp
    from fuserec_os.behaviour.search_log import read_impressions
    from fuserec_os.behaviour.timeseries import read_pit

    impressions = read_impressions(client, searches_alias, experiment=experiment.name)
    if not impressions.empty and (since is not None or until is not None):
        keep = pd.Series(True, index=impressions.index)
        if since is not None:
            keep &= impressions["timestamp"] >= pd.Timestamp(since)
        if until is not None:
            keep &= impressions["timestamp"] < pd.Timestamp(until)
        impressions = impressions[keep].reset_index(drop=True)
    if impressions.empty or not event_indices(client, events_alias):
        return impressions, events_frame([])
    start = impressions["timestamp"].min() - CLOCK_SKEW
    end = impressions["timestamp"].max() + timedelta(hours=experiment.attribution_hours)
    query = {
        "bool": {
            "filter": [
                {"range": {"timestamp": {"gte": format_timestamp(start), "lte": format_timestamp(end)}}},
                {"terms": {"type": list(FUNNEL)}},
            ]
        }
    }
    sort = [{"timestamp": {"order": "asc"}}, {"event_id": {"order": "asc"}}]
    return impressions, events_frame(read_pit(client, events_alias, query, sort, what="events"))


def experiment_report(
    client: OpenSearch,
    prefix: str,
    experiment: Experiment,
    *,
    confidence: float = 0.95,
    replicates: int = 2000,
    seed: int = 0,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Report:
    """Read the experiment's searches, events and stop state from the cluster under ``prefix`` and report;
    ``since`` / ``until``: only the searches made in that period (a weekly read-out, or a lift over time)."""
    from fuserec_os.experiments.state import stop_info

    impressions, events = read_experiment(
        client, experiment, searches_alias=f"{prefix}searches", events_alias=f"{prefix}events", since=since,
        until=until,
    )  # fmt: skip
    stop = stop_info(client, prefix, experiment.name)
    return compute_report(
        experiment, impressions, events, stop=stop, confidence=confidence, replicates=replicates, seed=seed
    )


def check_guardrails(
    client: OpenSearch,
    prefix: str,
    config: ExperimentsConfig,
    *,
    replicates: int = 500,
    seed: int = 0,
    stop: bool = True,
) -> list[GuardrailStatus]:
    """Check the guardrail of every running experiment that has one; stop (for every replica) each tripped one
    whose guardrail says ``auto_stop`` when ``stop`` is true. What the proxy calls periodically, off the request
    path (it reads the experiment's whole log: minutes apart, not per request); ``fuserec ab check`` runs it once.
    """
    from fuserec_os.experiments.state import stop_experiment, stopped_experiments

    guarded = [e for e in config.running() if e.guardrail is not None]
    stopped = stopped_experiments(client, prefix, [e.name for e in guarded])
    out: list[GuardrailStatus] = []
    for exp in guarded:
        if exp.name in stopped:
            out.append(GuardrailStatus(exp.name, "stopped", f"stopped already ({stopped[exp.name].reason})"))
            continue
        report = experiment_report(client, prefix, exp, replicates=replicates, seed=seed)
        status = report.guardrail or guardrail_status(exp, report)
        assert exp.guardrail is not None
        if status.status == "tripped" and stop and exp.guardrail.auto_stop:
            _, made = stop_experiment(client, prefix, exp.name, by="guardrail", reason=status.message)
            status = GuardrailStatus(**{**status.__dict__, "stopped_now": made})
        out.append(status)
    return out
