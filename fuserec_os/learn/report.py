"""Show an :class:`~fuserec_os.learn.evaluate.EvalReport`: a terminal table, JSON, and one self-contained HTML file.

Why hand-written SVG: the HTML report must open anywhere (a CI artefact, an air-gapped laptop) without a
network or a plotting dependency, so the charts are tiny inline SVG built here (:func:`svg_bars`,
:func:`svg_lines`) and nothing is loaded from a URL. Every piece of text that reaches the HTML (method names,
segment values, titles, meta values) is escaped, because method names come from configs and run names.

The header (``meta``) is for a person, not a debugger: mappings become key/value tables (nested ones as nested
tables), a feature list becomes one row per scope (see :mod:`fuserec_os.features.spec`), and no Python repr
(``None``, ``True``, ``{'...'}``, ``['...']``) reaches the page: n/a, yes/no, grouped numbers, ISO 8601 UTC.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from fuserec_os.features.spec import FEATURES, MISSING_SUFFIX, SCOPES
from fuserec_os.learn.evaluate import ENGINE, ORACLE, EvalReport

__all__ = ["render_table", "svg_bars", "svg_lines", "write_html", "write_json"]

# Okabe-Ito: distinguishable with the common colour-vision deficiencies, readable on white.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
ENGINE_COLOUR = "#888888"
ORACLE_COLOUR = "#444444"

_esc = html.escape

Table = tuple[str, Sequence[str], Sequence[Sequence[str]]]
"""An extra report section: a note, column names, rows of cell text (escaped when written)."""


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _fmt_delta(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"({value:+.{digits}f})"


def _method_colours(methods: Sequence[str]) -> dict[str, str]:
    """Stable colours: engine grey, oracle dark grey, the rest from the palette in method order."""
    out: dict[str, str] = {}
    i = 0
    for m in methods:
        if m == ENGINE:
            out[m] = ENGINE_COLOUR
        elif m == ORACLE:
            out[m] = ORACLE_COLOUR
        else:
            out[m] = PALETTE[i % len(PALETTE)]
            i += 1
    return out


def _check_metrics(report: EvalReport, metrics: Sequence[str] | None) -> tuple[str, ...]:
    chosen = tuple(metrics) if metrics is not None else report.metric_names
    unknown = [m for m in chosen if m not in report.metric_names]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; this report has: {', '.join(report.metric_names)}")
    return chosen


def _align(rows: list[list[str]]) -> list[str]:
    """Left-align the first column, right-align the others (numbers line up by their decimal point)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines


def render_table(report: EvalReport, metrics: Sequence[str] | None = None) -> str:
    """Methods as rows, metrics as columns (deltas vs ``engine`` in parentheses), then per-segment NDCG@k.

    ``metrics`` defaults to every metric of the report (``ndcg@10, mrr, hr@10, auc, mse`` at k=10).
    """
    chosen = _check_metrics(report, metrics)
    ov = report.overall
    has_engine = ENGINE in report.methods
    can_capture = has_engine and ORACLE in report.methods
    header = ["method", *chosen] + (["captured"] if can_capture else [])
    rows = [header]
    for m in report.methods:
        row = [m]
        for metric in chosen:
            v = ov.metrics[m][metric]
            d = ov.delta_vs_engine.get(m, {}).get(metric) if has_engine and m != ENGINE else None
            row.append(f"{_fmt(v)} {_fmt_delta(d)}".rstrip())
        if can_capture:
            row.append("" if m in (ENGINE, ORACLE) else _fmt(report.captured_gain(m), 3))
        rows.append(row)
    out = [
        f"searches: {ov.n_searches} with a positive ({ov.n_excluded} without one excluded), rows: {ov.n_rows}",
        *_align(rows),
    ]
    ndcg = report.ndcg_name
    for column, cells in report.segments.items():
        seg_rows = [[f"{ndcg} by {column}", *(f"{v} (n={c.n_searches})" for v, c in cells.items())]]
        for m in report.methods:
            seg_rows.append([m, *(_fmt(c.metrics[m][ndcg]) for c in cells.values())])
        out += ["", *_align(seg_rows)]
    return "\n".join(out) + "\n"


def _jsonable(value: Any) -> Any:
    """Plain Python for JSON: NumPy scalars/arrays unwrapped, non-finite floats -> None (JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def write_json(report: EvalReport, path: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``{"evaluation": report.as_dict(), **extra}`` (``extra``: run metadata, e.g. model version)."""
    doc: dict[str, Any] = {"evaluation": report.as_dict()}
    for key, value in (extra or {}).items():
        if key == "evaluation":
            raise ValueError("extra must not use the key 'evaluation' (it holds the report)")
        doc[str(key)] = value
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(_jsonable(doc), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return p


# --------------------------------------------------------------------------------------------------------------
# SVG helpers
# --------------------------------------------------------------------------------------------------------------


def _nice_max(v: float) -> float:
    """A round axis maximum >= v (1, 2, 2.5, 5 x 10^n), so tick labels are short."""
    if v <= 0 or not math.isfinite(v):
        return 1.0
    exp = math.floor(math.log10(v))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * 10**exp >= v - 1e-12:
            return m * 10**exp
    return 10.0 ** (exp + 1)


def _tick_label(v: float) -> str:
    return f"{v:.3g}"


def _legend(names: Sequence[str], colours: Mapping[str, str], x: float, y: float) -> list[str]:
    parts = []
    for i, name in enumerate(names):
        yy = y + i * 16
        parts.append(f'<rect x="{x:.1f}" y="{yy - 9:.1f}" width="10" height="10" fill="{colours[name]}"/>')
        parts.append(f'<text x="{x + 14:.1f}" y="{yy:.1f}" font-size="11">{_esc(name)}</text>')
    return parts


def _axes(
    parts: list[str], left: float, top: float, pw: float, ph: float, y_max: float, y_min: float, y_label: str
) -> None:
    for i in range(5):
        frac = i / 4
        v = y_min + frac * (y_max - y_min)
        yy = top + ph - frac * ph
        parts.append(f'<line x1="{left:.1f}" y1="{yy:.1f}" x2="{left + pw:.1f}" y2="{yy:.1f}" stroke="#e0e0e0"/>')
        parts.append(
            f'<text x="{left - 6:.1f}" y="{yy + 4:.1f}" font-size="10" text-anchor="end">{_tick_label(v)}</text>'
        )
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#333"/>')
    parts.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#333"/>')
    cy = top + ph / 2
    parts.append(
        f'<text x="14" y="{cy:.1f}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 14 {cy:.1f})">{_esc(y_label)}</text>'
    )


def svg_bars(
    categories: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str = "",
    y_label: str = "",
    x_label: str = "",
    colours: Mapping[str, str] | None = None,
    width: int = 720,
    height: int = 320,
) -> str:
    """Grouped bar chart: one group per category, one bar per series (a single series = plain bars).

    Values of ``None`` draw no bar (a missing metric is not a zero). The y axis starts at 0.
    """
    names = list(series)
    cols = dict(colours) if colours else _method_colours(names)
    for name in names:
        cols.setdefault(name, PALETTE[len(cols) % len(PALETTE)])
    values = [v for vs in series.values() for v in vs if v is not None and math.isfinite(v)]
    y_max = _nice_max(max(values, default=1.0))
    left, right, top, bottom = 56.0, 150.0, 34.0, 56.0
    pw, ph = width - left - right, height - top - bottom
    parts = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'font-family="sans-serif"><title>{_esc(title)}</title>',
        f'<text x="{width / 2:.1f}" y="18" font-size="14" text-anchor="middle" font-weight="bold">{_esc(title)}</text>',
    ]
    _axes(parts, left, top, pw, ph, y_max, 0.0, y_label)
    n_cat = max(len(categories), 1)
    group_w = pw / n_cat
    bar_w = group_w * 0.8 / max(len(names), 1)
    for ci, cat in enumerate(categories):
        gx = left + ci * group_w + group_w * 0.1
        for si, name in enumerate(names):
            vs = series[name]
            v = vs[ci] if ci < len(vs) else None
            if v is None or not math.isfinite(v):
                continue
            h = max(v, 0.0) / y_max * ph
            x = gx + si * bar_w
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{top + ph - h:.1f}" width="{max(bar_w - 1, 1):.1f}" '
                f'height="{h:.1f}" fill="{cols[name]}"><title>{_esc(f"{name} / {cat}: {v:.4f}")}</title></rect>'
            )
        parts.append(
            f'<text x="{left + (ci + 0.5) * group_w:.1f}" y="{top + ph + 16:.1f}" font-size="11" '
            f'text-anchor="middle">{_esc(str(cat))}</text>'
        )
    if x_label:
        parts.append(
            f'<text x="{left + pw / 2:.1f}" y="{height - 10}" font-size="11" text-anchor="middle">'
            f"{_esc(x_label)}</text>"
        )
    parts += _legend(names, cols, left + pw + 16, top + 10)
    parts.append("</svg>")
    return "\n".join(parts)


def svg_lines(
    x: Sequence[float],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str = "",
    x_label: str = "",
    y_label: str = "",
    colours: Mapping[str, str] | None = None,
    width: int = 720,
    height: int = 300,
) -> str:
    """Line chart of several series over a shared x (e.g. epochs); ``None`` values break the line.

    The y range is the data's (padded), not from 0, because loss curves live far from 0 and would look flat.
    """
    names = list(series)
    cols = dict(colours or {})
    for i, name in enumerate(names):
        cols.setdefault(name, PALETTE[i % len(PALETTE)])
    ys = [v for vs in series.values() for v in vs if v is not None and math.isfinite(v)]
    lo, hi = (min(ys), max(ys)) if ys else (0.0, 1.0)
    pad = (hi - lo) * 0.05 or (abs(hi) * 0.05 or 0.5)
    lo, hi = lo - pad, hi + pad
    xs = [float(v) for v in x]
    x_lo, x_hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 0.5, x_hi + 0.5
    left, right, top, bottom = 56.0, 150.0, 34.0, 48.0
    pw, ph = width - left - right, height - top - bottom

    def px(v: float) -> float:
        return left + (v - x_lo) / (x_hi - x_lo) * pw

    def py(v: float) -> float:
        return top + ph - (v - lo) / (hi - lo) * ph

    parts = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'font-family="sans-serif"><title>{_esc(title)}</title>',
        f'<text x="{width / 2:.1f}" y="18" font-size="14" text-anchor="middle" font-weight="bold">{_esc(title)}</text>',
    ]
    _axes(parts, left, top, pw, ph, hi, lo, y_label)
    n_ticks = min(len(xs), 10)
    for i in range(n_ticks):
        xv = xs[round(i * (len(xs) - 1) / max(n_ticks - 1, 1))]
        parts.append(
            f'<text x="{px(xv):.1f}" y="{top + ph + 16:.1f}" font-size="10" text-anchor="middle">'
            f"{_tick_label(xv)}</text>"
        )
    parts.append(
        f'<text x="{left + pw / 2:.1f}" y="{height - 8}" font-size="11" text-anchor="middle">{_esc(x_label)}</text>'
    )
    for name in names:
        segment: list[str] = []
        runs: list[list[str]] = []
        for xv, yv in zip(xs, series[name], strict=False):
            if yv is None or not math.isfinite(yv):
                if segment:
                    runs.append(segment)
                segment = []
                continue
            segment.append(f"{px(xv):.1f},{py(yv):.1f}")
        if segment:
            runs.append(segment)
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{cols[name]}"/>')
            else:
                parts.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{cols[name]}" stroke-width="2"/>')
    parts += _legend(names, cols, left + pw + 16, top + 10)
    parts.append("</svg>")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------------------------

_CSS = """
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1000px; }
table { border-collapse: collapse; margin: 8px 0 20px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
.delta { color: #666; font-size: 0.9em; }
.pos { color: #006d2c; } .neg { color: #b2182b; }
.chart { margin: 12px 0 24px; }
.meta { display: flex; flex-wrap: wrap; gap: 0 32px; align-items: flex-start; }
.meta > div { min-width: 0; }
.meta > div.wide { flex-basis: 100%; }
.meta h3 { margin: 4px 0 0; font-size: 1em; }
.kv th { text-align: left; font-weight: normal; color: #444; }
.kv td, .features td { text-align: left; }
.kv td.num, .features td.num { text-align: right; font-variant-numeric: tabular-nums; }
.kv .kv { margin: 0; font-size: 0.95em; }
.features td.names { max-width: 560px; }
.features caption { text-align: left; color: #666; font-size: 0.9em; padding: 2px 0 4px; }
"""


# --------------------------------------------------------------------------------------------------------------
# The header: run metadata as small tables
# --------------------------------------------------------------------------------------------------------------

_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?")


def _plain(value: Any) -> Any:
    """NumPy scalars/arrays as Python values, dataclasses (e.g. a gate) as mappings; the rest unchanged."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if getattr(getattr(value, "dtype", None), "kind", "") == "M":  # datetime64: ns units would become an int
        return value.astype("datetime64[us]").tolist()
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return value.tolist()
    return value


def _label(key: Any) -> str:
    """A mapping key as a row label: ``best_epoch`` -> ``best epoch``."""
    return str(key).replace("_", " ")


def _fmt_datetime(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``; a naive value is taken as UTC (every stored timestamp is)."""
    utc = value.astimezone(UTC) if value.tzinfo is not None else value
    return utc.replace(tzinfo=None).isoformat(timespec="auto") + "Z"


def _fmt_number(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) < 1e-3:
        return f"{value:.3g}"
    return f"{value:,.4f}".rstrip("0").rstrip(".")


def _fmt_scalar(value: Any) -> tuple[str, bool]:
    """A scalar as text a person reads, and whether it is a number (right-aligned)."""
    if value is None:
        return "n/a", False
    if isinstance(value, bool):
        return ("yes" if value else "no"), False
    if isinstance(value, int):
        return f"{value:,}", True
    if isinstance(value, float):
        return _fmt_number(value), math.isfinite(value)
    if isinstance(value, datetime):
        return ("n/a" if value != value else _fmt_datetime(value)), False  # pandas NaT != itself
    if isinstance(value, date):
        return value.isoformat(), False
    if isinstance(value, str) and _ISO_DATETIME.fullmatch(value.strip()):
        try:
            return _fmt_datetime(datetime.fromisoformat(value.strip())), False
        except ValueError:
            pass
    return str(value), False


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, (Mapping, list, tuple, set, frozenset))


def _is_feature_list(value: Any) -> bool:
    """A non-empty list of ``X`` column names of which at least one is a registered feature."""
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(n, str) for n in value):
        return False
    return any(n.removesuffix(MISSING_SUFFIX) in FEATURES for n in value)


def _html_value(value: Any) -> tuple[str, str]:
    """A meta value as escaped cell HTML and the cell's class (``num`` for numbers)."""
    value = _plain(value)
    if isinstance(value, Mapping):
        return _html_kv_table(value), ""
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_plain(v) for v in (sorted(value, key=str) if isinstance(value, (set, frozenset)) else value)]
        if not items:
            return "none", ""
        if all(_is_scalar(v) for v in items):
            return _esc(", ".join(_fmt_scalar(v)[0] for v in items)), ""
        return _html_kv_table({i + 1: v for i, v in enumerate(items)}), ""
    text, numeric = _fmt_scalar(value)
    return _esc(text), "num" if numeric else ""


def _html_kv_table(mapping: Mapping[Any, Any]) -> str:
    """Two columns, key and value; a nested mapping (or a list of them) becomes a nested table in its cell."""
    rows = []
    for key, value in mapping.items():
        cell, cls = _html_value(value)
        attr = f' class="{cls}"' if cls else ""
        rows.append(f'<tr><th scope="row">{_esc(_label(key))}</th><td{attr}>{cell}</td></tr>')
    return f'<table class="kv"><tbody>{"".join(rows)}</tbody></table>'


def _feature_span(name: str) -> str:
    d = FEATURES.get(name)
    return f'<span title="{_esc(d.description)}">{_esc(name)}</span>' if d else _esc(name)


def _html_feature_table(columns: Sequence[str]) -> str:
    """The ``X`` columns as one row per scope (registry scope order, then unknown names as ``other``).

    Missing-indicator columns are folded into their base feature: the last column says which have one.
    """
    bases: list[str] = []
    with_indicator: set[str] = set()
    for col in columns:
        base = col.removesuffix(MISSING_SUFFIX)
        if base != col:
            with_indicator.add(base)
        if base not in bases:
            bases.append(base)
    by_scope: dict[str, list[str]] = {}
    for base in bases:
        d = FEATURES.get(base)
        by_scope.setdefault(d.scope if d else "other", []).append(base)
    rows = []
    for scope in (*SCOPES, "other"):
        names = by_scope.get(scope)
        if not names:
            continue
        flagged = [n for n in names if n in with_indicator]
        if len(flagged) == len(names):
            missing = "each has one"
        elif not flagged:
            missing = "none"
        else:
            missing = f"{len(flagged)} of {len(names)}: {', '.join(flagged)}"
        rows.append(
            f'<tr><td>{_esc(scope)}</td><td class="num">{len(names)}</td>'
            f'<td class="names">{", ".join(_feature_span(n) for n in names)}</td><td>{_esc(missing)}</td></tr>'
        )
    n_ind = sum(1 for b in bases if b in with_indicator)
    note = f"{len(bases)} features + {n_ind} missing indicators = {len(bases) + n_ind} columns"
    if len(bases) + n_ind != len(columns):  # a repeated column name: say what was actually given
        note += f" ({len(columns)} given)"
    head = "<tr><th>scope</th><th>features</th><th>names</th><th>missing indicator</th></tr>"
    return (
        f'<table class="features"><caption>{_esc(note)}</caption>'
        f"<thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _html_meta(meta: Mapping[str, Any]) -> str:
    """The header: scalar values in one ``Run`` table, then one titled table per mapping or list."""
    scalars: dict[str, Any] = {}
    blocks: list[str] = []
    for key, raw in meta.items():
        value = _plain(raw)
        title = _esc(_label(key).capitalize())
        if _is_feature_list(value):
            blocks.append(f'<div class="wide"><h3>{title}</h3>{_html_feature_table(value)}</div>')
        elif isinstance(value, Mapping):
            blocks.append(f"<div><h3>{title}</h3>{_html_kv_table(value)}</div>")
        elif _is_scalar(value) or all(_is_scalar(v) for v in value):
            scalars[key] = value
        else:
            blocks.append(f"<div><h3>{title}</h3>{_html_value(value)[0]}</div>")
    if scalars:
        blocks.insert(0, f"<div><h3>Run</h3>{_html_kv_table(scalars)}</div>")
    return f'<section class="meta">{"".join(blocks)}</section>'


def _html_metrics_table(report: EvalReport, metrics: Sequence[str]) -> str:
    ov = report.overall
    has_engine = ENGINE in report.methods
    can_capture = has_engine and ORACLE in report.methods
    head = "".join(f"<th>{_esc(m)}</th>" for m in ["method", *metrics])
    if can_capture:
        head += "<th>captured gain</th>"
    body = []
    for m in report.methods:
        cells = [f"<td>{_esc(m)}</td>"]
        for metric in metrics:
            v = ov.metrics[m][metric]
            d = ov.delta_vs_engine.get(m, {}).get(metric) if has_engine and m != ENGINE else None
            cls = "" if d is None or d == 0 else (" pos" if (d > 0) != (metric == "mse") else " neg")
            delta = f' <span class="delta{cls}">{_esc(_fmt_delta(d))}</span>' if d is not None else ""
            cells.append(f"<td>{_esc(_fmt(v))}{delta}</td>")
        if can_capture:
            cg = None if m in (ENGINE, ORACLE) else report.captured_gain(m)
            cells.append(f"<td>{_esc(_fmt(cg, 3) if cg is not None else '')}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _html_segment_table(report: EvalReport, column: str) -> str:
    cells = report.segments[column]
    ndcg = report.ndcg_name
    head = f"<th>{_esc(ndcg)} by {_esc(column)}</th>" + "".join(
        f"<th>{_esc(v)}<br><small>n={c.n_searches}, excluded {c.n_excluded}</small></th>" for v, c in cells.items()
    )
    body = []
    for m in report.methods:
        row = f"<td>{_esc(m)}</td>"
        for c in cells.values():
            d = c.delta_vs_engine.get(m, {}).get(ndcg) if m != ENGINE else None
            delta = f' <span class="delta">{_esc(_fmt_delta(d))}</span>' if d is not None else ""
            row += f"<td>{_esc(_fmt(c.metrics[m][ndcg]))}{delta}</td>"
        body.append(f"<tr>{row}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _history_charts(history: Sequence[Mapping[str, Any]]) -> list[str]:
    """Loss-like keys in one chart, everything else (validation metrics) in another: their scales differ."""
    epochs = [float(h.get("epoch", i + 1)) for i, h in enumerate(history)]
    keys: list[str] = []
    for h in history:
        for key, v in h.items():
            if key != "epoch" and key not in keys and (v is None or isinstance(v, (int, float))):
                keys.append(key)

    def col(key: str) -> list[float | None]:
        out: list[float | None] = []
        for h in history:
            v = h.get(key)
            out.append(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None)
        return out

    loss_keys = [k for k in keys if "loss" in k.lower()]
    other_keys = [k for k in keys if k not in loss_keys]
    charts = []
    if loss_keys:
        charts.append(
            svg_lines(epochs, {k: col(k) for k in loss_keys}, title="Training loss", x_label="epoch", y_label="loss")
        )
    if other_keys:
        charts.append(
            svg_lines(
                epochs,
                {k: col(k) for k in other_keys},
                title="Validation metrics",
                x_label="epoch",
                y_label="value",
                colours={k: PALETTE[(i + 2) % len(PALETTE)] for i, k in enumerate(other_keys)},
            )
        )
    return charts


def render_html(
    report: EvalReport,
    *,
    history: Sequence[Mapping[str, Any]] | None = None,
    title: str = "fuserec offline evaluation",
    meta: Mapping[str, Any] | None = None,
    tables: Mapping[str, Table] | None = None,
) -> str:
    """The HTML document :func:`write_html` writes (separate so it can be tested or served without a file)."""
    ndcg = report.ndcg_name
    colours = _method_colours(report.methods)
    ov = report.overall
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
    ]
    if meta:
        parts.append(_html_meta(meta))
    parts.append(
        f"<p>{ov.n_searches} searches with a positive label ({ov.n_excluded} without one are excluded from every "
        f"metric), {ov.n_rows} candidate rows, cut-off k={report.k}.</p>"
    )
    parts.append("<h2>Overall</h2>")
    overall_series = {m: [ov.metrics[m][ndcg]] for m in report.methods}
    parts.append(
        '<div class="chart">'
        + svg_bars([ndcg], overall_series, title=f"{ndcg} per method", y_label=ndcg, colours=colours)
        + "</div>"
    )
    parts.append(_html_metrics_table(report, report.metric_names))
    if report.segments:
        parts.append("<h2>By segment</h2>")
    for column, cells in report.segments.items():
        cats = [f"{v} (n={c.n_searches})" for v, c in cells.items()]
        series = {m: [c.metrics[m][ndcg] for c in cells.values()] for m in report.methods}
        parts.append(f"<h3>{_esc(column)}</h3>")
        parts.append(
            '<div class="chart">'
            + svg_bars(cats, series, title=f"{ndcg} by {column}", y_label=ndcg, x_label=column, colours=colours)
            + "</div>"
        )
        parts.append(_html_segment_table(report, column))
    for heading, (note, header, rows) in (tables or {}).items():
        parts.append(f"<h2>{_esc(heading)}</h2>")
        if note:
            parts.append(f"<p>{_esc(note)}</p>")
        head = "".join(f"<th>{_esc(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    if history:
        parts.append("<h2>Training</h2>")
        parts += [f'<div class="chart">{c}</div>' for c in _history_charts(history)]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_html(
    report: EvalReport,
    path: str | Path,
    *,
    history: Sequence[Mapping[str, Any]] | None = None,
    title: str = "fuserec offline evaluation",
    meta: Mapping[str, Any] | None = None,
    tables: Mapping[str, Table] | None = None,
) -> Path:
    """Write one self-contained HTML file: charts (inline SVG) and tables, no scripts, no external resources.

    ``history``: per-epoch dicts (e.g. ``{"epoch": 1, "loss": 0.4, "val_loss": 0.5, "valid_ndcg": 0.61}``);
    loss-like keys are drawn together, the rest (validation metrics) in a second chart.
    ``meta``: shown at the top (model version, data window, seed...): scalars in one key/value table, each
    mapping (e.g. the dataset summary, the gate) in its own, a list of feature columns grouped by scope.
    ``tables``: more sections, heading -> (a note, column names, rows of text), e.g. the ablation table.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_html(report, history=history, title=title, meta=meta, tables=tables), encoding="utf-8")
    return p
