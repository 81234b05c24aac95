"""What each feature scope adds: the model retrained without it, on the same searches, against the full model.

Why retrain: zeroing a scope's columns in a trained model (a "retrain-free" ablation) feeds it inputs it never saw
and measures the damage of the surprise, not the worth of the information; a model trained without the scope
learns to do what it can with the rest. So every row here is a new MLP (same config, seed and searches) with
its own blend gate tuned on validation, evaluated on the test searches, and the tree baseline (HGB) refitted on
the same columns as a second opinion that does not depend on one network's training run.

Variants: one per scope the features cover (:data:`~fuserec_os.features.spec.SCOPES`: the engine hit, query
engagement, the item, the user, the user against the item), and the user and cross scopes together: what
personalization itself adds over query statistics and item features. Each costs one training run (about 20 s
on the demo shop, 2 to 4 min on the 2,000-shopper one, on 2 cores), so it runs only when asked (``model train
--ablation``) behind a progress bar.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import IO, Any

import numpy as np

from fuserec_os.features.spec import FEATURES, MISSING_SUFFIX, SCOPES
from fuserec_os.learn.dataset import Dataset
from fuserec_os.learn.evaluate import ENGINE, EvalReport
from fuserec_os.learn.model_config import ModelConfig

__all__ = ["Ablation", "AblationRow", "ablation_variants", "drop_scopes", "run_ablation", "scope_of"]

SCOPE_LABELS: Mapping[str, str] = {
    "query_item": "engine hit (query_item)",
    "query_item_engagement": "query engagement (query_item_engagement)",
    "item": "item (item)",
    "user": "user (user)",
    "cross": "user x item (cross)",
}
PERSONAL = ("user", "cross")
REFERENCE = "all features"

Evaluator = Callable[[Dataset, ModelConfig], tuple[EvalReport, dict[str, float]]]
"""Trains and evaluates one variant: ``(dataset, config) -> (test report with mlp and hgb, gate alphas)``."""


def scope_of(column: str) -> str:
    """The scope of an ``X`` column (a missing indicator has its feature's); ``other`` for an unknown name."""
    d = FEATURES.get(column.removesuffix(MISSING_SUFFIX))
    return d.scope if d is not None else "other"


def ablation_variants(names: Iterable[str]) -> list[tuple[str, frozenset[str]]]:
    """(label, scopes removed) for every scope present in ``names``, then user and cross together."""
    present = {scope_of(n) for n in names}
    out = [(f"without {SCOPE_LABELS[s]}", frozenset({s})) for s in SCOPES if s in present]
    if set(PERSONAL) <= present:
        out.append(("without user and cross (no personalization)", frozenset(PERSONAL)))
    return out


def drop_scopes(ds: Dataset, removed: frozenset[str]) -> Dataset:
    """``ds`` without the columns of the ``removed`` scopes (the same searches, labels and candidates)."""
    keep = [i for i, n in enumerate(ds.names) if scope_of(n) not in removed]
    if not keep:
        raise ValueError(f"removing {', '.join(sorted(removed))} leaves no feature")
    return replace(ds, X=np.ascontiguousarray(ds.X[:, keep]), names=tuple(ds.names[i] for i in keep))


@dataclass(frozen=True)
class AblationRow:
    """One variant: the served blend's NDCG@k overall and per user segment, and HGB's on the same columns."""

    label: str
    removed: tuple[str, ...]
    columns: int
    mlp: float | None
    by_user: dict[str, float | None]
    hgb: float | None
    gate: dict[str, float]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "removed": list(self.removed),
            "columns": self.columns,
            "mlp": self.mlp,
            "by_user": dict(self.by_user),
            "hgb": self.hgb,
            "gate": dict(self.gate),
            "seconds": round(self.seconds, 2),
        }


@dataclass(frozen=True)
class Ablation:
    """The reference (every feature) first, then one row per variant; ``engine`` is engine order's NDCG@k."""

    k: int
    rows: tuple[AblationRow, ...]
    engine: float | None
    engine_by_user: dict[str, float | None]
    segments: tuple[str, ...]

    @property
    def reference(self) -> AblationRow:
        return self.rows[0]

    def as_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "metric": f"ndcg@{self.k}",
            "engine": self.engine,
            "engine_by_user": dict(self.engine_by_user),
            "rows": [r.as_dict() for r in self.rows],
        }

    @property
    def note(self) -> str:
        return (
            f"test ndcg@{self.k} with each feature scope removed; every row is a model retrained on the same "
            "searches (same config and seed, its blend gate retuned on validation) and HGB refitted on the same "
            "columns; in parentheses the change against all features"
        )

    def header(self) -> list[str]:
        return ["variant", "columns", f"mlp ndcg@{self.k}", *(f"user {s}" for s in self.segments), "hgb", "seconds"]

    def cells(self) -> list[list[str]]:
        """The table's rows as text: engine order, all features, then each variant with its change."""
        ref = self.reference

        def num(v: float | None, base: float | None = None) -> str:
            if v is None:
                return "n/a"
            return f"{v:.4f}" if base is None else f"{v:.4f} ({v - base:+.4f})"

        out = [["engine order", "", num(self.engine), *(num(self.engine_by_user.get(s)) for s in self.segments)]]
        out[0] += ["", ""]
        for r in self.rows:
            first = r is ref
            out.append(
                [
                    r.label,
                    str(r.columns),
                    num(r.mlp, None if first else ref.mlp),
                    *(num(r.by_user.get(s), None if first else ref.by_user.get(s)) for s in self.segments),
                    num(r.hgb, None if first else ref.hgb),
                    f"{r.seconds:.0f}",
                ]
            )
        return out

    def table(self) -> str:
        """Aligned text: variant, columns, MLP blend (and its change vs every feature), per segment, HGB."""
        rows = [self.header(), *self.cells()]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(
                [row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))]
            ).rstrip()
            for row in rows
        ]
        return "\n".join([f"ablation: {self.note}", *lines]) + "\n"

    def html_tables(self) -> dict[str, tuple[str, list[str], list[list[str]]]]:
        """The ablation as a report section (:func:`fuserec_os.learn.report.write_html`'s ``tables``)."""
        return {"Ablation by feature scope": (self.note, self.header(), self.cells())}


def row_of(
    label: str, removed: Iterable[str], ds: Dataset, report: EvalReport, gate: Mapping[str, float], seconds: float
) -> AblationRow:
    """An :class:`AblationRow` from a variant's test report (methods ``mlp`` and, when fitted, ``hgb``)."""
    ndcg = report.ndcg_name
    cells = report.segments.get("user", {})
    return AblationRow(
        label=label,
        removed=tuple(sorted(removed)),
        columns=len(ds.names),
        mlp=report.value("mlp", ndcg),
        by_user={s: c.metrics["mlp"][ndcg] for s, c in cells.items()},
        hgb=report.value("hgb", ndcg) if "hgb" in report.methods else None,
        gate={k: float(v) for k, v in gate.items()},
        seconds=seconds,
    )


def run_ablation(
    ds: Dataset,
    cfg: ModelConfig,
    evaluate_variant: Evaluator,
    *,
    reference: tuple[EvalReport, Mapping[str, float], float] | None = None,
    variants: list[tuple[str, frozenset[str]]] | None = None,
    say: Callable[[str], None] | None = None,
    show_bar: bool = True,
    bar_file: IO[str] | None = None,
) -> Ablation:
    """Retrain and evaluate ``ds`` without each variant's scopes (default: :func:`ablation_variants`).

    ``reference``: the full model's test report, gate alphas and training seconds when already trained (the
    training run's own model); None trains it here too, so every row is trained the same way. A progress bar
    (one step per model, on stderr unless ``bar_file``) shows the cost; ``say`` gets one line per model.
    """
    from tqdm import tqdm

    tell = say or (lambda _m: None)
    chosen = ablation_variants(ds.names) if variants is None else variants
    steps = len(chosen) + (reference is None)
    rows: list[AblationRow] = []
    bar = tqdm(total=steps, desc="ablation", unit="model", disable=not show_bar, file=bar_file or sys.stderr)
    try:
        if reference is None:
            bar.set_postfix_str(REFERENCE)
            t = time.monotonic()
            report, gate = evaluate_variant(ds, cfg)
            reference = (report, gate, time.monotonic() - t)
            bar.update(1)
        ref_report, ref_gate, ref_seconds = reference
        rows.append(row_of(REFERENCE, (), ds, ref_report, ref_gate, ref_seconds))
        for label, removed in chosen:
            bar.set_postfix_str(label)
            t = time.monotonic()
            sub = drop_scopes(ds, removed)
            report, gate = evaluate_variant(sub, cfg)
            rows.append(row_of(label, removed, sub, report, gate, time.monotonic() - t))
            r = rows[-1]
            score = "n/a" if r.mlp is None else f"{r.mlp:.4f}"
            tell(f"ablation {len(rows) - 1}/{len(chosen)}: {label}: mlp ndcg@{report.k} {score}, {r.seconds:.0f} s")
            bar.update(1)
    finally:
        bar.close()
    ndcg = ref_report.ndcg_name
    cells = ref_report.segments.get("user", {})
    return Ablation(
        k=ref_report.k,
        rows=tuple(rows),
        engine=ref_report.value(ENGINE, ndcg),
        engine_by_user={s: c.metrics[ENGINE][ndcg] for s, c in cells.items()},
        segments=tuple(cells),
    )
