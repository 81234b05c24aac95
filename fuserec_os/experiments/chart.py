"""The lifts of a report with their intervals, as an SVG written by hand (no plotting library is a dependency).

One row per (treatment, metric): a dot at the observed lift, a bar over its interval, a line at zero; green when
the interval lies above zero, red below, grey when it contains zero. Interleave mode draws the treatment's
preference (2 x win rate - 1: +20% means it wins 60% of the searches with a preference).
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from fuserec_os.experiments.report import Report

__all__ = ["lift_chart_svg"]

_LABELS = {
    "ctr": "CTR",
    "click_to_cart": "click to cart",
    "conversion": "conversion",
    "conversion_per_user": "conversion per user",
    "revenue_per_search": "revenue per search",
}
_ROW, _TOP, _LEFT, _PLOT, _RIGHT = 28, 56, 250, 440, 150
_UP, _DOWN, _NONE = "#1a7f37", "#cf222e", "#6e7781"
_SPANS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


def _rows(report: Report) -> list[tuple[str, float | None, tuple[float, float] | None, str]]:
    """(label, lift, interval, note) per row; lift None: nothing to draw (not enough data)."""
    if report.interleave is not None:
        s = report.interleave
        rate = s.win_rate
        lift = None if rate is None else 2 * rate - 1
        ci = None if s.ci is None else (2 * s.ci[0] - 1, 2 * s.ci[1] - 1)
        note = "no data" if rate is None else f"wins {rate * 100:.1f}%"
        return [(f"{s.treatment}: preference", lift, ci, note)]
    rows = []
    for x in report.lifts:
        label = f"{x.variant}: {_LABELS.get(x.metric, x.metric)}"
        if x.metric == report.experiment.primary_metric:
            label += " *"
        note = "no data" if x.lift is None else f"{x.lift * 100:+.1f}%"
        if x.p_value is not None:
            note += " (p < 0.001)" if x.p_value < 0.001 else f" (p = {x.p_value:.3f})"
        rows.append((label, x.lift, x.ci, note))
    return rows


def lift_chart_svg(report: Report) -> str:
    """The chart as SVG text (see the module docstring)."""
    rows = _rows(report)
    ends = [v for _, lift, ci, _ in rows for v in ((lift,) if ci is None else (lift, *ci)) if v is not None]
    widest = max([abs(v) for v in ends] + [0.0]) * 1.05
    span = next((n for n in _SPANS if n >= widest), widest)  # a round axis: ticks at +-span and +-span/2
    width = _LEFT + _PLOT + _RIGHT
    height = _TOP + _ROW * len(rows) + 40

    def x(value: float) -> float:
        return _LEFT + (value + span) / (2 * span) * _PLOT

    level = f"{report.confidence * 100:g}%"
    what = "preference" if report.interleave is not None else "lift over " + report.experiment.control.name
    title = f"{report.experiment.name}: {what} with {level} intervals (bootstrap over users)"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="22" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    bottom = _TOP + _ROW * len(rows)
    for tick in (-span, -span / 2, 0.0, span / 2, span):
        tx = x(tick)
        out.append(
            f'<line x1="{tx:.1f}" y1="{_TOP - 8}" x2="{tx:.1f}" y2="{bottom}" stroke="#d0d7de" '
            f'stroke-width="{1.5 if tick == 0 else 0.5}"/>'
        )
        out.append(f'<text x="{tx:.1f}" y="{bottom + 16}" text-anchor="middle">{tick * 100:+.0f}%</text>')
    for i, (label, lift, ci, note) in enumerate(rows):
        cy = _TOP + _ROW * i + _ROW / 2
        out.append(f'<text x="{_LEFT - 10}" y="{cy + 4:.1f}" text-anchor="end">{escape(label)}</text>')
        colour = _NONE
        if ci is not None and ci[0] > 0:
            colour = _UP
        elif ci is not None and ci[1] < 0:
            colour = _DOWN
        if ci is not None:
            out.append(
                f'<line x1="{x(ci[0]):.1f}" y1="{cy:.1f}" x2="{x(ci[1]):.1f}" y2="{cy:.1f}" '
                f'stroke="{colour}" stroke-width="3"/>'
            )
        if lift is not None:
            out.append(f'<circle cx="{x(lift):.1f}" cy="{cy:.1f}" r="5" fill="{colour}"/>')
        out.append(f'<text x="{_LEFT + _PLOT + 10}" y="{cy + 4:.1f}">{escape(note)}</text>')
    if report.interleave is None:
        out.append(
            f'<text x="10" y="{height - 8}" fill="{_NONE}">* the primary metric (the verdict\'s); '
            "green: significantly better, red: significantly worse</text>"
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"
