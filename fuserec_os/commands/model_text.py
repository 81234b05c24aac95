"""What ``fuserec model list`` and ``model show`` print: aligned tables and ``key: value`` lines a person reads.

No Python reprs (dicts, lists, None, True); times in ISO 8601 UTC to the second (:func:`fuserec_os.timefmt.utc_iso`);
a value that was not recorded prints as ``-``. Pure Python, so the model commands import it at no cost.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fuserec_os.timefmt import utc_iso

if TYPE_CHECKING:
    from fuserec_os.rerank.registry import VersionInfo

__all__ = ["render_version", "render_versions"]


_TIME_TEXT = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?")
_SPLITS = ("train", "valid", "test")


def _number(value: Any, digits: int = 4) -> str:
    """A score with ``digits`` decimals; ``-`` for anything that is not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return "-"
    return f"{value:.{digits}f}"


def _count(value: Any) -> str:
    """A whole number with thousands separators; ``-`` when missing."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-"
    return f"{int(value):,}"


def _plain(value: Any) -> str:
    """Any stored JSON value as text a person reads: no brackets, quotes, None or True; times in ISO 8601 UTC."""
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return utc_iso(value) if _TIME_TEXT.fullmatch(value) else value
    if isinstance(value, Mapping):
        return ", ".join(
            f"{k} " + (f"({_plain(v)})" if isinstance(v, Mapping) else _plain(v)) for k, v in value.items()
        )
    if isinstance(value, Sequence):
        return ", ".join(_plain(v) for v in value)
    return str(value)


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], right: Collection[int] = (), indent: str = ""
) -> list[str]:
    """Aligned columns, two spaces apart; the columns in ``right`` (numbers) right-aligned, header included."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        out = "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        return (indent + out).rstrip()

    return [line(header)] + [line(r) for r in rows]


def _flow(prefix: str, items: Sequence[str], sep: str, width: int = 100) -> list[str]:
    """``prefix`` and ``items`` joined by ``sep``, wrapped between items at ``width`` under the first item."""
    lines: list[str] = []
    line = prefix
    for i, item in enumerate(items):
        piece = item + (sep.rstrip() if i < len(items) - 1 else "")
        if line != prefix and len(line) + 1 + len(piece) > width:
            lines.append(line)
            line = " " * len(prefix) + piece
        else:
            line += ("" if line == prefix else " ") + piece
    return [*lines, line]


def _size(n_bytes: int) -> str:
    if n_bytes < 1024:
        return f"{n_bytes} B"
    if n_bytes < 1024 * 1024:
        return f"{n_bytes / 1024:.0f} KiB"
    return f"{n_bytes / 1024 / 1024:.1f} MiB"


def _searches(counts: Any) -> str:
    """Searches per split: ``train 5,210, valid 640, test 655`` (``-`` when not recorded)."""
    if not isinstance(counts, Mapping) or not counts:
        return "-"
    names = [s for s in _SPLITS if s in counts] + [s for s in counts if s not in _SPLITS]
    return ", ".join(f"{name} {_count(counts[name])}" for name in names)


def _method(info: VersionInfo) -> str:
    """The version's own row in its metrics: its kind (``mlp``) when recorded under that name."""
    test = (info.metrics or {}).get("test") or {}
    return info.kind if info.kind in test else "mlp"


def _ndcg(info: VersionInfo) -> tuple[str, str]:
    """Test NDCG@10 of the version and its difference to engine order, as text (``-`` when not recorded)."""
    test = (info.metrics or {}).get("test") or {}
    value = (test.get(_method(info)) or {}).get("ndcg@10")
    engine = (test.get("engine") or {}).get("ndcg@10")
    if not isinstance(value, (int, float)):
        return "-", "-"
    delta = f"{value - engine:+.4f}" if isinstance(engine, (int, float)) else "-"
    return f"{value:.4f}", delta


def render_versions(versions: Sequence[VersionInfo]) -> str:
    """One aligned row per version under a header row (what 'model list' prints)."""
    header = ["version", "status", "created", "kind", "loss", "NDCG@10", "vs engine", "searches (train/valid/test)"]
    header += ["rows", "size"]
    rows = []
    for v in versions:
        training = v.training or {}
        counts = training.get("searches")
        searches = "/".join(_count(counts.get(s)) for s in _SPLITS) if isinstance(counts, Mapping) and counts else "-"
        ndcg, delta = _ndcg(v)
        rows.append(
            [
                v.version,
                v.status or "-",
                utc_iso(v.created_at),
                v.kind or "-",
                _plain(training.get("loss")),
                ndcg,
                delta,
                searches,
                _count(training.get("rows")),
                "-" if v.status == "deleted" else _size(v.blob_bytes),
            ]
        )
    return "\n".join(_table(header, rows, right={5, 6, 8, 9}))


def _gate_text(gate: Any) -> str:
    """``alpha by user history: none 0.00, light 0.30 (1-19 events), heavy 0.70 (20+ events)``."""
    if not isinstance(gate, Mapping) or not gate:
        return "-"
    light, heavy = gate.get("light_min_events"), gate.get("heavy_min_events")
    light_range = ""
    if isinstance(light, int) and isinstance(heavy, int):
        light_range = f" ({light}-{heavy - 1} events)" if heavy - 1 > light else f" ({light} event(s))"
    heavy_range = f" ({heavy}+ events)" if isinstance(heavy, int) else ""
    return (
        f"alpha by user history: none {_number(gate.get('alpha_no_history'), 2)}, "
        f"light {_number(gate.get('alpha_light'), 2)}{light_range}, heavy {_number(gate.get('alpha_heavy'), 2)}"
        f"{heavy_range}"
    )


def _feature_lines(names: Sequence[str], columns: Any) -> list[str]:
    """``features: N (...)`` and one indented line per scope (fuserec_os.features.spec), missing indicators
    folded into their feature."""
    from fuserec_os.features.spec import FEATURES, MISSING_SUFFIX, SCOPES

    base = [n for n in names if not n.endswith(MISSING_SUFFIX)]
    listed_indicators = {n[: -len(MISSING_SUFFIX)] for n in names if n.endswith(MISSING_SUFFIX)}
    if not base:
        return ["features:       -"]
    with_indicator = [n for n in base if n in listed_indicators or (n in FEATURES and FEATURES[n].can_be_missing)]
    inputs = f"{_count(columns)} input columns" if isinstance(columns, int) else ""
    if len(with_indicator) == len(base):
        folded = "each has a missing indicator"
    elif with_indicator:
        folded = f"{len(with_indicator)} of them with a missing indicator"
    else:
        folded = "no missing indicators"
    lines = [f"features:       {len(base)} ({inputs + ': ' if inputs else ''}{folded})"]
    by_scope: dict[str, list[str]] = {}
    for name in base:
        by_scope.setdefault(FEATURES[name].scope if name in FEATURES else "other", []).append(name)
    order = [s for s in (*SCOPES, "other") if s in by_scope]
    width = max(len(s) for s in order) + 1
    for scope in order:
        lines += _flow(f"  {(scope + ':').ljust(width)}  ", by_scope[scope], ", ")
    return lines


_METRIC_ORDER = ("ndcg@", "mrr", "hr@", "auc", "mse")
_METHOD_ORDER = (
    "engine", "popularity", "behaviour_popularity", "query_popularity", "latent", "hgb", "mlp", "mlp_only", "oracle",
)  # fmt: skip


def _ordered(keys: Sequence[str], preferred: Sequence[str]) -> list[str]:
    """``keys`` in the ``preferred`` order (matched as prefixes), the rest after them as they came."""

    def rank(key: str) -> int:
        return next((i for i, p in enumerate(preferred) if key == p or (p.endswith("@") and key.startswith(p))), 99)

    return sorted(keys, key=rank)  # stable: unknown keys keep their order


def _metric_lines(metrics: Mapping[str, Any], version: str) -> list[str]:
    """Methods down, metrics across, one block per split (test first), aligned together; a version name among
    the methods is the model that was active when this one was trained, scored on the same searches."""
    splits = _ordered([s for s, m in metrics.items() if isinstance(m, Mapping) and m], ("test", "valid", "train"))
    names: list[str] = []
    for split in splits:
        for values in metrics[split].values():
            names += [n for n in (values if isinstance(values, Mapping) else ()) if n not in names]
    names = _ordered(names, _METRIC_ORDER)
    if not splits or not names:
        return ["metrics:        -"]
    blocks: list[list[str]] = []
    for split in splits:
        by_method = metrics[split]
        blocks.append([split, *names])
        for method in _ordered(list(by_method), _METHOD_ORDER):
            values = by_method[method] if isinstance(by_method[method], Mapping) else {}
            label = f"{method} (active at training)" if re.fullmatch(r"v\d+", method) and method != version else method
            blocks.append([f"  {label}", *(_number(values.get(n)) for n in names)])
    return ["metrics:", *_table(blocks[0], blocks[1:], right=set(range(1, len(names) + 1)), indent="  ")]


_TRAINING_SHOWN = {
    "searches", "rows", "positives", "features", "valid_from", "test_from", "events", "products", "loss", "decision",
    "gate", "test_set", "active_at_training",
}  # fmt: skip


def _test_set_text(recorded: Mapping[str, Any]) -> str:
    """``701 searches, 2024-04-11T19:47:51Z .. 2024-04-14T23:58:10Z; search log 'x'; digest 5e5e5e5e5e5e``."""
    parts = []
    first, last = recorded.get("first"), recorded.get("last")
    window = f"{utc_iso(first)} .. {utc_iso(last)}" if first and last else (f"from {utc_iso(first)}" if first else "")
    parts.append(", ".join(p for p in (f"{_count(recorded.get('searches'))} searches", window) if p))
    if recorded.get("source"):
        parts.append(_plain(recorded["source"]))
    if isinstance(recorded.get("digest"), str):
        parts.append(f"digest {recorded['digest'][:12]}")
    return "; ".join(parts)


def render_version(info: VersionInfo, gate: Mapping[str, Any] | None = None) -> str:
    """Everything a version's metadata holds, as ``key: value`` lines and small tables (what 'show' prints)."""
    training = info.training or {}
    status = info.status or "-"
    if info.status_at:
        status += f" since {utc_iso(info.status_at)}"
    loss = _plain(training.get("loss"))
    if training.get("decision") and loss != "-":
        loss += f" ({_plain(training['decision'])})"
    lines = [
        f"version:        {info.version}",
        f"status:         {status}",
        f"created:        {utc_iso(info.created_at)}",
        f"kind:           {info.kind or '-'}",
        f"loss:           {loss}",
        f"code version:   {info.code_version or '-'}",
        f"checksum:       {'sha256 ' + info.blob_sha256 if info.blob_sha256 else '-'}",
        f"size:           {_size(info.blob_bytes)} ({info.blob_bytes:,} bytes)"
        + ("; blob dropped (deleted)" if info.status == "deleted" else ""),
    ]
    imp = info.imported_from
    if imp:
        origin = str(imp.get("version") or "-")
        if imp.get("created_at"):
            origin += f" (created {utc_iso(imp['created_at'])})"
        if imp.get("file"):
            origin += f", file {imp['file']}"
        if imp.get("imported_at"):
            origin += f", imported {utc_iso(imp['imported_at'])}"
        lines.append(f"imported from:  {origin}")
    lines.append(f"searches:       {_searches(training.get('searches'))}")
    dataset = []
    if "rows" in training:
        dataset.append(
            f"{_count(training['rows'])} rows"
            + (f" ({_count(training['positives'])} positive)" if "positives" in training else "")
        )
    dataset += [f"{_count(training[k])} {k}" for k in ("events", "products") if k in training]
    lines.append(f"dataset:        {', '.join(dataset) or '-'}")
    if training.get("valid_from") or training.get("test_from"):
        lines.append(
            f"split:          valid from {utc_iso(training.get('valid_from'))}, "
            f"test from {utc_iso(training.get('test_from'))}"
        )
    if isinstance(training.get("test_set"), Mapping):
        lines.append(f"test set:       {_test_set_text(training['test_set'])}")
    for key, value in training.items():
        if key not in _TRAINING_SHOWN:
            lines.append(f"{(key.replace('_', ' ') + ':').ljust(15)} {_plain(value)}")
    lines.append(f"gate:           {_gate_text(training.get('gate') or gate)}")
    lines += _feature_lines(info.features, training.get("features"))
    if info.config:
        lines.append("config:")
        width = max(len(str(k)) for k in info.config) + 1
        # keys sorted, nested ones too: engines differ in whether a stored object keeps its key order
        for key, value in sorted(info.config.items()):
            items = (
                [
                    f"{k} " + (f"({_plain(dict(sorted(v.items())))})" if isinstance(v, Mapping) else _plain(v))
                    for k, v in sorted(value.items())
                ]
                if isinstance(value, Mapping)
                else [_plain(value)]
            )
            lines += _flow(f"  {(str(key) + ':').ljust(width)}  ", items or ["-"], "; ")
    else:
        lines.append("config:         -")
    lines += _metric_lines(info.metrics or {}, info.version)
    return "\n".join(lines)
