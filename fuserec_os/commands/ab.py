"""``fuserec ab``: A/B tests and interleaving experiments: list them, report one, stop one, check guardrails.

Experiments live in the ``experiments`` section of the ranking YAML (FUSEREC_CONFIG); the proxy assigns shoppers
and logs each search with its variant; events flow in through the proxy's events endpoint or ``fuserec ingest
events``. These commands read all of that back from the cluster. See docs/experiments.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fuserec_os.commands.common import State, dump, json_option, note, parse_time_option, pass_state

if TYPE_CHECKING:
    from fuserec_os.experiments.config import Experiment
    from fuserec_os.experiments.report import GuardrailStatus, Report

_METRIC_LABELS = {
    "ctr": "CTR",
    "click_to_cart": "click to cart",
    "conversion": "conversion",
    "conversion_per_user": "conversion/user",
    "revenue_per_search": "revenue/search",
}


@click.group("ab")
def ab() -> None:
    """A/B tests and interleaving experiments: list, report, stop, check guardrails.

    \b
    Experiments are defined in the 'experiments' section of FUSEREC_CONFIG; the proxy
    (fuserec serve) assigns each shopper a variant by a salted hash of their id and logs
    every search with it; clicks, carts and purchases are attributed to those searches.
      fuserec ab list
      fuserec ab report mlp-vs-engine                 # table and verdict
      fuserec ab report mlp-vs-engine --chart lifts.svg --json
      fuserec ab stop mlp-vs-engine --reason "enough data"
      fuserec ab check                                # guardrails, once
    Details: docs/experiments.md.
    """


def _experiment(state: State, name: str) -> Experiment:
    """A configured experiment, or the closed loop's built-in one (``fuserec simulate ab``) when not configured."""
    from fuserec_os.commands.simulate_run import DEFAULT_EXPERIMENT, default_experiment

    if name == DEFAULT_EXPERIMENT and name not in state.ranking.experiments.experiments:
        built_in: Experiment = default_experiment().get(name)
        return built_in
    return state.ranking.experiments.get(name)


@ab.command("list")
@json_option
@pass_state
def list_cmd(state: State, as_json: bool) -> None:
    """List the configured experiments and whether they run.

    Each with its mode, state (a stop made in the cluster included), indices, attribution window, variants
    (share, what each serves) and guardrail.
    """
    experiments = list(state.ranking.experiments.experiments.values())
    if not experiments:
        if as_json:
            dump([])
            return
        click.echo(f"no experiments configured in {state.ranking.source} (add an 'experiments' section)")
        return
    from fuserec_os.experiments.state import stopped_experiments

    with state.engine() as eng:
        stopped = stopped_experiments(eng.client, state.settings.index_prefix, [e.name for e in experiments])
    if as_json:
        dump(
            [
                {
                    **e.as_dict(),
                    "state": "stopped" if e.name in stopped else e.state,
                    "stop": stopped[e.name].as_dict() if e.name in stopped else None,
                }
                for e in experiments
            ]
        )
        return
    for e in experiments:
        info = stopped.get(e.name)
        where = ", ".join(e.indices)
        status = f"stopped {info.stopped_at} by {info.by}: {info.reason}" if info else e.state
        click.echo(f"{e.name}  ({e.mode}, {status}) on {where}, attribution window {e.attribution_hours:g} h")
        for v in e.variants:
            share = "" if v.share is None else f"{v.share * 100:g}%  "
            click.echo(f"  {v.name}{' (control)' if v.control else ''}: {share}{v.serves}")
        if e.guardrail:
            g = e.guardrail
            click.echo(f"  guardrail: {g.metric}, stop on a significant drop over {g.max_drop * 100:g}%")


@ab.command("report")
@click.argument("experiment")
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also write the lifts with their intervals as an SVG chart to this file (.svg).",
)
@click.option(
    "--replicates",
    type=click.IntRange(min=100),
    default=2000,
    show_default=True,
    help="Bootstrap replicates (resampling users).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Bootstrap seed: the same seed, the same interval."
)
@click.option(
    "--confidence",
    type=click.FloatRange(0.5, 0.999),
    default=0.95,
    show_default=True,
    help="Confidence level of the intervals.",
)
@click.option(
    "--since",
    metavar="TIME",
    help="Only the searches made from TIME on (ISO 8601, e.g. 2024-05-01T00:00:00Z), with the events they earned.",
)
@click.option("--until", metavar="TIME", help="Only the searches made before TIME (ISO 8601).")
@json_option
@pass_state
def report_cmd(
    state: State,
    experiment: str,
    chart: Path | None,
    replicates: int,
    seed: int,
    confidence: float,
    since: str | None,
    until: str | None,
    as_json: bool,
) -> None:
    """Report one experiment: rates, lifts, verdict, guardrail.

    Per variant: users, searches, CTR, click to cart, conversion (per search and per user), revenue per
    search; each treatment's lift over the control with its interval and p-value; the verdict in words; the
    guardrail's status. Interleave experiments: the treatment's win rate with its test.

    Intervals and the verdict come from a bootstrap over users (a user's searches are not independent); the
    two-proportion z-test is shown beside it in --json. --since / --until report one period (a weekly
    read-out, or whether the lift holds over time), e.g.:
      fuserec ab report mlp-vs-engine --since 2024-05-01T00:00:00Z --until 2024-05-08T00:00:00Z
    """
    exp = _experiment(state, experiment)
    start, end = parse_time_option(since, "--since"), parse_time_option(until, "--until")
    if start is not None and end is not None and start >= end:
        raise click.BadParameter(f"{until!r} is not after --since {since!r}", param_hint="--until")
    if chart is not None and chart.suffix.lower() != ".svg":
        raise click.BadParameter(
            f"{chart.name}: the chart is written as SVG (no plotting library is installed); name it *.svg",
            param_hint="--chart",
        )
    from fuserec_os.experiments.report import experiment_report

    with state.engine() as eng:
        report = experiment_report(
            eng.client, state.settings.index_prefix, exp, confidence=confidence, replicates=replicates, seed=seed,
            since=start, until=end,
        )  # fmt: skip
    if chart is not None:
        from fuserec_os.experiments.chart import lift_chart_svg

        chart.write_text(lift_chart_svg(report), encoding="utf-8")
        note(f"chart written to {chart}")
    if as_json:
        dump(report.as_dict())
        return
    for line in render_report(report):
        click.echo(line)


@ab.command("stop")
@click.argument("experiment")
@click.option("--reason", default="stopped from the CLI", show_default=True, help="Why, kept with the stop.")
@json_option
@pass_state
def stop_cmd(state: State, experiment: str, reason: str, as_json: bool) -> None:
    """Stop an experiment for every proxy replica.

    The replicas poll the cluster; from then on its searches are served as if it did not exist. The report
    still works. A stop is final: to test again, give the experiment a new name.
    """
    exp = _experiment(state, experiment)
    from fuserec_os.experiments.state import stop_experiment

    with state.engine() as eng:
        info, made = stop_experiment(eng.client, state.settings.index_prefix, exp.name, by="cli", reason=reason)
    if as_json:
        dump({"experiment": exp.name, "stopped_now": made, **info.as_dict()})
        return
    if made:
        click.echo(f"stopped {exp.name} at {info.stopped_at}: every proxy replica leaves it out from its next poll")
    else:
        click.echo(f"{exp.name} was stopped already, at {info.stopped_at} by {info.by}: {info.reason}")


@ab.command("check")
@click.option("--dry-run", is_flag=True, help="Report what would be stopped; stop nothing.")
@click.option(
    "--replicates", type=click.IntRange(min=100), default=500, show_default=True, help="Bootstrap replicates."
)
@json_option
@pass_state
def check_cmd(state: State, dry_run: bool, replicates: int, as_json: bool) -> None:
    """Check guardrails once; stop the tripped experiments.

    Every running experiment with a guardrail is checked; a tripped one is stopped unless --dry-run or its
    guardrail says auto_stop: false. The proxy runs the same check periodically; this is for cron or a look.
    """
    config = state.ranking.experiments
    if not any(e.guardrail for e in config.running()):
        if as_json:
            dump([])
            return
        click.echo("no running experiment has a guardrail")
        return
    from fuserec_os.experiments.report import check_guardrails

    with state.engine() as eng:
        statuses = check_guardrails(
            eng.client, state.settings.index_prefix, config, replicates=replicates, stop=not dry_run
        )
    if as_json:
        dump([s.as_dict() for s in statuses])
        return
    for s in statuses:
        click.echo(_guardrail_line(s))


# ------------------------------------------------------------------------------------------ the text report


def _pct(value: float | None, digits: int = 1, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value * 100:+.{digits}f}%" if sign else f"{value * 100:.{digits}f}%"


def _value(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if metric == "revenue_per_search" else _pct(value, 2)


def _p_cell(p: float | None, replicates: int) -> str:
    if p is None:
        return "-"
    if p <= 1.0 / replicates:  # every replicate on one side: a bound, not a value
        return f"<={1.0 / replicates:.2g}"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _guardrail_line(s: GuardrailStatus) -> str:
    stopped = " (stopped it now)" if s.stopped_now else ""
    return f"{s.experiment}: guardrail {s.status}{stopped}: {s.message}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = [f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths)]
    return ["  ".join(f.format(c) for f, c in zip(fmt, row, strict=True)).rstrip() for row in [header, *rows]]


def render_report(report: Report) -> list[str]:
    """The report as terminal lines: header, per-variant table, lifts, verdict, guardrail, attribution, notes."""
    exp = report.experiment
    lines = [
        f"experiment {exp.name} ({exp.mode}, {report.state}) on {', '.join(exp.indices)}",
        f"  searches from {_time(report.first_search)} to {_time(report.last_search)}; attribution window "
        f"{exp.attribution_hours:g} h; {report.confidence * 100:g}% intervals from a bootstrap over users "
        f"({report.replicates} replicates, seed {report.seed})",
        "",
    ]
    if report.interleave is not None:
        s = report.interleave
        lines += _table(
            ["interleaving", "users", "searches", "with a click", "won", "lost", "tied", "win rate", "CI", "sign test"],
            [
                [
                    f"{s.treatment} vs {s.control}",
                    str(s.users),
                    str(s.searches),
                    str(s.searches_with_click),
                    str(s.wins),
                    str(s.losses),
                    str(s.ties),
                    _pct(s.win_rate),
                    "-" if s.ci is None else f"{_pct(s.ci[0])} to {_pct(s.ci[1])}",
                    "-" if s.sign_test_p is None else f"p={s.sign_test_p:.3g}",
                ]
            ],
        )
    else:
        metrics = list(_METRIC_LABELS)
        rows = []
        for v in report.variants:
            share = "" if v.share is None else f"{v.share * 100:g}%"
            name = f"{v.name} (control)" if v.control else v.name
            rows.append(
                [name, v.serves, share, str(v.users), str(v.searches), *(_value(m, v.metric(m)) for m in metrics)]
            )
        lines += _table(["variant", "serves", "share", "users", "searches", *_METRIC_LABELS.values()], rows)
        lines += ["", f"lift over {exp.control.name} ({report.confidence * 100:g}% CI, p-value)"]
        lift_rows = []
        for t in exp.treatments:
            for m in metrics:
                x = report.lift(m, t.name)
                if x is None:
                    continue
                ci = "-" if x.ci is None else f"{_pct(x.ci[0], sign=True)} to {_pct(x.ci[1], sign=True)}"
                p = _p_cell(x.p_value, report.replicates)
                mark = " *" if x.significant else ""
                primary = " (primary)" if m == exp.primary_metric else ""
                lift_rows.append([f"{t.name}: {_METRIC_LABELS[m]}{primary}", _pct(x.lift, sign=True), ci, p + mark])
        lines += _table(["", "lift", "CI", "p"], lift_rows)
    lines += ["", *(f"verdict: {v}" for v in report.verdict())]
    if report.guardrail is not None:
        lines.append(_guardrail_line(report.guardrail))
    a = report.attribution
    line = (
        f"attribution: {a['attributed']} events attributed ({a['by_request_id']} by request id, "
        f"{a['by_user_window']} by user, product and time)"
    )
    rest = [f"{reason.replace('_', ' ')} {n}" for reason, n in a["unattributed"].items() if n]
    lines.append(line + (f"; not attributed: {', '.join(rest)}" if rest else ""))
    lines += [f"note: {n}" for n in report.notes]
    return lines


def _time(value: Any) -> str:
    from fuserec_os.timefmt import utc_iso

    return utc_iso(value.to_pydatetime() if value is not None else None)
