"""Train, evaluate against honest baselines, and register a model: what ``fuserec model train`` runs.

One run: read the stored events and the stored search log (impressions; a file given with ``--impressions``
overrides it), build the leakage-free dataset, train the MLP, tune the blend gate on validation, then
evaluate on the later test searches, in the same run, the engine order, popularity (catalog and behaviour),
query-popularity, latent-only, a gradient-boosted trees reranker on the same features, the MLP blend, and an
oracle when one is passed in. The artifact (weights, feature set, gate, product vectors) is saved as a new
registry version with its metrics.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from opensearchpy import OpenSearch

from fuserec_os.behaviour.event_store import read_events
from fuserec_os.behaviour.search_log import read_impressions as read_stored_impressions
from fuserec_os.config import RankingConfig
from fuserec_os.errors import ConfigError, IndexStateError, InputFileError
from fuserec_os.features.spec import FeatureSet
from fuserec_os.index.products import read_products
from fuserec_os.learn.baselines import (
    behaviour_popularity_scores,
    engine_scores,
    hgb_reranker,
    latent_scores,
    oracle_scores,
    popularity_scores,
    query_popularity_scores,
)
from fuserec_os.learn.dataset import GRADES, Dataset, SplitSpec, build_dataset
from fuserec_os.learn.evaluate import EvalReport, evaluate
from fuserec_os.learn.model_config import ModelConfig
from fuserec_os.learn.report import render_table, write_html, write_json
from fuserec_os.profiles.compute import ProductCatalog
from fuserec_os.profiles.jobs import Aliases
from fuserec_os.rerank.artifact import ModelArtifact
from fuserec_os.rerank.blend import Gate, minmax_groups
from fuserec_os.rerank.evaluation_set import EvaluationSet
from fuserec_os.rerank.registry import CannotRescore, ModelRegistry, Rescorer, VersionInfo, code_version
from fuserec_os.rerank.scorer import Scorer
from fuserec_os.search.retrieval import EngineRetriever

if TYPE_CHECKING:
    from fuserec_os.learn.ablation import Ablation
    from fuserec_os.learn.model import TrainResult

Progress = Callable[[str], None]

ReferenceScorer = Callable[[pd.DataFrame, pd.DataFrame], np.ndarray]
"""A known-truth scorer evaluated as the ``oracle`` row: ``(candidate rows, searches) -> one score per row``.

The candidate rows carry ``search_id``, ``product_id`` and ``shown_rank``; the searches frame carries
``search_id``, ``query`` and ``user_id``. Training never imports the simulator: the command layer builds the
oracle (:func:`fuserec_os.simulate.oracle.click_oracle`) and passes it in.
"""


@dataclass(frozen=True)
class TestFile:
    """Held-out events that were never ingested (``model evaluate --test-file``), read like ``ingest events``."""

    path: Path
    column_map: Mapping[str, str] | None = None
    constants: Mapping[str, str] | None = None


@dataclass(frozen=True)
class TrainOptions:
    """``ablation``: also retrain without each feature scope (:mod:`fuserec_os.learn.ablation`; one training run
    per scope), with a progress bar on stderr when ``show_bar``."""

    split: SplitSpec = field(default_factory=SplitSpec)
    impressions: Path | None = None
    oracle: ReferenceScorer | None = None  # e.g. the simulator's click model (commands pass it in)
    report_dir: Path = Path("reports")
    features: tuple[str, ...] | None = None
    test_file: TestFile | None = None
    ablation: bool = False
    show_bar: bool = False


@dataclass
class TrainOutcome:
    version: str | None
    dataset: dict[str, Any]
    report: EvalReport
    valid_report: EvalReport
    table: str
    html: Path
    json: Path
    loss: str
    decision: str
    gate: Gate
    seconds: dict[str, float]
    split: dict[str, Any] = field(default_factory=dict)
    ablation: Ablation | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "dataset": self.dataset,
            "split": self.split,
            "loss": self.loss,
            "decision": self.decision,
            "gate": self.gate.__dict__,
            "report_html": str(self.html),
            "report_json": str(self.json),
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "test": self.report.as_dict(),
            "ablation": self.ablation.as_dict() if self.ablation is not None else None,
        }


def read_impressions(path: Path) -> pd.DataFrame:
    """An impressions log file (``generate events`` writes one): request_id, user_id, timestamp, query,
    product_ids. Training reads the stored log (:func:`stored_impressions`) unless a file is given."""
    from fuserec_os.behaviour.search_log import impressions_frame, normalize_impression
    from fuserec_os.index.readers import read_rows

    if not path.is_file():
        raise ConfigError(f"--impressions {path}: no such file")
    docs, bad = [], []
    for row_number, row in read_rows(path):  # every format the ingest reads, validated the same way
        doc, reasons = normalize_impression(row)
        if doc is None:
            bad.append(f"row {row_number}: {'; '.join(reasons)}")
        else:
            docs.append(doc)
    if bad:
        raise InputFileError(
            f"--impressions {path}: {len(bad)} invalid row(s), first: {bad[0]} (check it with "
            "'fuserec ingest impressions', which writes every reason to a rejects file)"
        )
    return impressions_frame(docs)


def stored_impressions(client: OpenSearch, aliases: Aliases) -> pd.DataFrame | None:
    """The search log stored behind ``aliases.searches`` (``fuserec ingest impressions``), or None when there
    is none: the same log the stored query statistics (what serving reads) are built from."""
    frame = read_stored_impressions(client, aliases.searches)
    return frame if len(frame) else None


def _column(ds: Dataset, name: str, rows: np.ndarray) -> np.ndarray:
    if name not in ds.names:
        return np.full(int(rows.sum()), np.nan)
    values = ds.X[rows, ds.names.index(name)].astype(np.float64)
    missing = f"{name}__missing"
    if missing in ds.names:
        values[ds.X[rows, ds.names.index(missing)] > 0.5] = np.nan
    return values


def engine_ranks(ds: Dataset, split: str) -> np.ndarray:
    """The engine's rank of each candidate row of ``split`` (the rank it was shown at for a logged impression
    the engine did not rank; NaN for a behavioural candidate): what training-candidate sampling keeps the top of."""
    cands = ds.candidates[ds.rows(split)]
    engine = cands["engine_rank"].to_numpy(dtype=np.float64)
    shown = cands["shown_rank"].to_numpy(dtype=np.float64)
    return np.where(np.isfinite(engine), engine, shown)


def gated_scores(
    scorer: Scorer, gate: Gate, X: np.ndarray, groups: np.ndarray, engine: np.ndarray, user_events: np.ndarray
) -> np.ndarray:
    """The served order: per search, blend normalised engine and model scores with the user's gate alpha."""
    model = scorer.predict(X)
    e = minmax_groups(engine, groups)  # NaN (no engine score) -> 0, exactly as rerank.blend serves it
    m = minmax_groups(model, groups)
    alpha = np.array([gate.alpha(int(n)) for n in user_events], dtype=np.float64)
    return np.asarray((1 - alpha) * e + alpha * m)


def evaluate_split(
    ds: Dataset,
    split: str,
    scorer: Scorer,
    gate: Gate,
    *,
    hgb_train: tuple[np.ndarray, np.ndarray] | None,
    oracle: Callable[[np.ndarray], np.ndarray] | None = None,
    seed: int = 7,
) -> EvalReport:
    rows = ds.rows(split)
    X, y = ds.X[rows], ds.labels[rows]
    _, groups = np.unique(ds.groups[rows], return_inverse=True)
    cands = ds.candidates[rows]
    engine = engine_scores(cands["engine_score"], cands["engine_rank"], cands["shown_rank"])
    per_search = ds.searches.set_index("search_id")
    sid = cands["search_id"].to_numpy()
    user_events = per_search.loc[sid, "user_events"].to_numpy()
    methods: dict[str, np.ndarray] = {
        "engine": engine,
        "popularity": popularity_scores(_column(ds, "log_popularity", rows)),
        "behaviour_popularity": behaviour_popularity_scores(
            cands["item_engagement"] if "item_engagement" in cands else np.full(len(cands), np.nan), engine
        ),
        "query_popularity": query_popularity_scores(
            _column(ds, "q_log_clicks", rows), _column(ds, "q_purchase_rate", rows), engine
        ),
        "latent": latent_scores(_column(ds, "latent_dot", rows), engine),
    }
    if hgb_train is not None:
        methods["hgb"] = hgb_reranker(hgb_train[0], hgb_train[1], X, seed=seed)
    methods["mlp"] = gated_scores(
        scorer, gate, X, groups, cands["engine_score"].to_numpy(dtype=np.float64), user_events
    )
    methods["mlp_only"] = scorer.predict(X)
    if oracle is not None:
        methods["oracle"] = oracle(rows)
    segments = {
        "user": per_search.loc[sid, "user_segment"].to_numpy(),
        "query": per_search.loc[sid, "query_type"].to_numpy(),
    }
    probabilistic = {"mlp_only"} if getattr(scorer, "output", None) == "sigmoid" else set()
    return evaluate(methods, y, groups, segments=segments, probabilistic=probabilistic)


def fit_model(ds: Dataset, cfg: ModelConfig, say: Progress) -> TrainResult:
    """Train the MLP on ``ds``'s training searches, early-stopped on its validation searches."""
    from fuserec_os.learn.model import train_mlp

    Xtr, ytr, gtr = ds.subset("train")
    Xva, yva, gva = ds.subset("valid")
    return train_mlp(
        Xtr, ytr, gtr, Xva, yva, gva, cfg, feature_names=ds.names, progress=say, ranks_train=engine_ranks(ds, "train")
    )


def fit_gate(ds: Dataset, scorer: Scorer, cfg: ModelConfig) -> Gate:
    """The blend gate (alpha per user segment) tuned on ``ds``'s validation searches."""
    Xva, yva, gva = ds.subset("valid")
    vc = ds.candidates[ds.rows("valid")]
    v_events = ds.searches.set_index("search_id").loc[vc["search_id"].to_numpy(), "user_events"].to_numpy()
    gate, _tables = Gate.fit(
        vc["engine_score"].to_numpy(dtype=np.float64), scorer.predict(Xva), yva, gva, v_events, cfg.blend_alphas
    )
    return gate


@dataclass
class Prepared:
    """The inputs every model evaluation of one split needs: the dataset and what it was built from."""

    dataset: Dataset
    events: int
    products: int
    oracle: Callable[[np.ndarray], np.ndarray] | None
    source: str = "events (no search log)"  # where the searches came from (see evaluation_set)


def prepare(
    client: OpenSearch,
    aliases: Aliases,
    ranking: RankingConfig,
    options: TrainOptions,
    feature_set: FeatureSet,
    seconds: dict[str, float],
    say: Progress,
    product_vectors: Mapping[str, np.ndarray] | None = None,
    minimum: Mapping[str, int] | None = None,
) -> Prepared:
    """Read the catalog, events and optional logs, and build the leakage-free dataset.

    ``minimum`` (training passes ``model.min_searches``): the fewest searches each split must hold, else a
    ConfigError saying how many there are and how many are needed. Evaluating a stored model needs none.
    """
    t = time.monotonic()
    products = read_products(client, aliases.products, "training")
    catalog = ProductCatalog.from_frame(products)
    events = read_events(client, aliases.events)
    if events.empty:
        raise IndexStateError(f"no events behind '{aliases.events}': run 'fuserec ingest events FILE' first.")
    impressions: pd.DataFrame | None
    if options.impressions:
        impressions, where = read_impressions(options.impressions), f"from {options.impressions}"
        source = f"impressions file {options.impressions.name}"
    else:
        impressions, where = stored_impressions(client, aliases), f"from '{aliases.searches}'"
        source = f"search log '{aliases.searches}'" if impressions is not None else "events (no search log)"
    test_events = None
    if options.test_file is not None:
        test_events = read_test_events(options.test_file, ranking, events, say)
        check_test_searches_logged(options.test_file.path, test_events, impressions, where)
        source = f"test file {options.test_file.path.name}"
    seconds["read"] = time.monotonic() - t
    say(
        f"read {len(products)} products, {len(events)} events"
        + (f", {len(impressions)} impressions {where}" if impressions is not None else ", no impressions")
    )
    t = time.monotonic()
    ds = build_dataset(
        events,
        catalog,
        feature_set,
        ranking.profiles,
        EngineRetriever(client, aliases.products),
        impressions=impressions,
        split=options.split,
        derived_search_gap=pd.Timedelta(minutes=ranking.events.derived_search_gap_minutes),
        progress=say,
        products=products,
        product_vectors=product_vectors,
        test_events=test_events,
    )
    seconds["dataset"] = time.monotonic() - t
    summary = ds.summary()
    searches = ", ".join(f"{split} {n:,}" for split, n in summary["searches"].items())
    say(f"dataset: {summary['rows']:,} rows, {summary['features']} columns, searches: {searches}")
    say(f"test searches: {split_text(split_record(options))}")
    if minimum and any(summary["searches"][split] < minimum[split] for split in minimum):
        need = ", ".join(f"{split} {minimum[split]:,}" for split in summary["searches"] if split in minimum)
        raise ConfigError(
            f"too little data to train: searches with engagement {searches}; need at least {need} "
            "(model.min_searches in FUSEREC_CONFIG); ingest more events or lower the minimum"
        )
    if min(summary["searches"].values()) == 0:
        raise ConfigError(f"a split has no searches ({searches}): simulate or log more behaviour")
    oracle = None
    if options.oracle is not None:
        reference = options.oracle

        def oracle(rows: np.ndarray) -> np.ndarray:
            return oracle_scores(reference(ds.candidates[rows], ds.searches))

    return Prepared(ds, len(events), len(products), oracle, source)


def read_test_events(test_file: TestFile, ranking: RankingConfig, stored: pd.DataFrame, say: Progress) -> pd.DataFrame:
    """The held-out events of ``test_file``, validated as ``fuserec ingest events`` validates a file; none of them
    may be stored already (they would count twice: once as history, once as held out)."""
    from fuserec_os.behaviour.event_file import read_event_file

    got = read_event_file(
        test_file.path, cfg=ranking.events, column_map=test_file.column_map, constants=test_file.constants
    )
    ids = got.events["event_id"].astype(str)
    already = ids[ids.isin(set(stored["event_id"].astype(str)))]
    if len(already):
        raise ConfigError(
            f"--test-file {test_file.path}: {len(already):,} of its {len(ids):,} events are already stored (e.g. "
            f"event_id {already.iloc[0]!r}); held-out events must never have been ingested: test on a file of "
            "later events, or store only the events before them"
        )
    repeats = f" ({got.repeats:,} identical repeats kept once)" if got.repeats else ""
    say(f"read {len(ids):,} held-out events from {test_file.path} (not stored){repeats}")
    return got.events


def check_test_searches_logged(
    path: Path, test_events: pd.DataFrame, impressions: pd.DataFrame | None, where: str
) -> None:
    """With a search log, searches (and so test searches) come from it: every engaged test search must be in it."""
    if impressions is None:
        return
    engaged = test_events[test_events["type"].isin(list(GRADES)) & test_events["query"].notna()]
    rids = engaged["request_id"].dropna().astype(str).unique()
    missing = [r for r in rids if r not in set(impressions["request_id"].astype(str))]
    no_rid = int(engaged["request_id"].isna().sum())
    if missing or no_rid:
        first = f"request id {missing[0]!r}" if missing else "events without a request id"
        raise ConfigError(
            f"--test-file {path}: {len(missing):,} of its {len(rids):,} engaged searches are not in the search log "
            f"{where}" + (f" and {no_rid:,} engaged events carry no request id" if no_rid else "") + f" (e.g. "
            f"{first}). With a search log, the searches and their candidates come from it: pass --impressions FILE "
            "with a log that holds the test searches too (what they showed is not held out; their engagement is)"
        )


def evaluation_set(ds: Dataset, source: str) -> EvaluationSet:
    """The test searches of ``ds``: their number, first and last time, and a SHA-256 of their sorted request ids
    (what the registry compares so that two versions' scores are only ever compared on the same searches)."""
    test = ds.searches[ds.searches["split"] == "test"]
    times = pd.to_datetime(test["timestamp"], utc=True)
    ids = sorted(test["request_id"].astype(str))
    return EvaluationSet(
        searches=len(test),
        first=times.min().isoformat() if len(test) else None,
        last=times.max().isoformat() if len(test) else None,
        digest=hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest(),
        source=source,
    )


def run_training(
    client: OpenSearch,
    aliases: Aliases,
    ranking: RankingConfig,
    options: TrainOptions,
    *,
    register: bool = True,
    progress: Progress | None = None,
) -> TrainOutcome:
    say = progress or (lambda _m: None)
    seconds: dict[str, float] = {}
    feature_set = FeatureSet.from_config(list(options.features) if options.features else None)
    prep = prepare(client, aliases, ranking, options, feature_set, seconds, say, minimum=ranking.model.min_searches)
    ds, oracle = prep.dataset, prep.oracle
    summary = ds.summary()

    t = time.monotonic()
    result = fit_model(ds, ranking.model, say)
    seconds["train"] = time.monotonic() - t

    t = time.monotonic()
    Xtr, ytr, _ = ds.subset("train")
    gate = fit_gate(ds, result.scorer, ranking.model)
    say(
        f"blend gate (alpha by user history): none {gate.alpha_no_history:.2f}, light {gate.alpha_light:.2f}, "
        f"heavy {gate.alpha_heavy:.2f}"
    )
    valid_report = evaluate_split(ds, "valid", result.scorer, gate, hgb_train=None)
    say(
        f"evaluating on {summary['searches']['test']:,} test searches: engine order, popularity (catalog and "
        f"behaviour), query-popularity, latent, the MLP, and a gradient-boosted trees reranker (training it on "
        f"{len(ytr):,} rows)" + (", and the oracle" if oracle is not None else "")
    )
    t_eval = time.monotonic()
    report = evaluate_split(
        ds, "test", result.scorer, gate, hgb_train=(Xtr, ytr), oracle=oracle, seed=ranking.model.seed
    )
    say(f"evaluated in {time.monotonic() - t_eval:.1f}s")
    active_at_training, active_metrics = _evaluate_active(client, aliases, ranking, options, say)
    seconds["evaluate"] = time.monotonic() - t
    ablation = None
    if options.ablation:
        t = time.monotonic()
        ablation = ablate(ds, ranking, options, say, reference=(report, gate_alphas(gate), seconds["train"]))
        seconds["ablation"] = time.monotonic() - t

    table = render_table(report) + (f"\n{ablation.table()}" if ablation is not None else "")
    options.report_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    split = split_record(options)
    meta = {
        "dataset": summary,
        "split": split,
        "loss": result.loss,
        "decision": result.decision,
        "gate": gate.__dict__,
        "best_epoch": result.best_epoch,
        "features": list(ds.names),
    }
    html = write_html(
        report,
        options.report_dir / f"model-{stamp}.html",
        history=result.history,
        title="fuserec model evaluation",
        meta=meta,
        tables=ablation.html_tables() if ablation is not None else None,
    )
    extra = {**meta, "history": result.history, "ablation": ablation.as_dict() if ablation is not None else None}
    jpath = write_json(report, options.report_dir / f"model-{stamp}.json", extra=extra)

    version = None
    if register:
        artifact = ModelArtifact(
            scorer=result.scorer,
            features=feature_set.names,
            gate=gate,
            product_vectors=ds.product_vectors,
            meta={"loss": result.loss, "trained_at": stamp},
        )
        registry = ModelRegistry(client, aliases.prefix)
        version = registry.save(
            artifact.to_bytes(),
            {
                "kind": "mlp",
                "metrics": {"test": {**_metrics(report), **active_metrics}, "valid": _metrics(valid_report)},
                "config": {
                    "model": _jsonable(ranking.model.__dict__),
                    "profiles": _jsonable(ranking.profiles.__dict__),
                },
                "features": list(feature_set.names),
                "training": {
                    **summary,
                    "split": split,
                    "test_set": evaluation_set(ds, prep.source).as_dict(),
                    **({"active_at_training": active_at_training} if active_at_training else {}),
                    "events": prep.events,
                    "products": prep.products,
                    "loss": result.loss,
                    "decision": result.decision,
                    "gate": dict(gate.__dict__),
                },
                "code_version": code_version(),
            },
        )
        say(f"registered model {version}")
    return TrainOutcome(
        version, summary, report, valid_report, table, html, jpath, result.loss, result.decision, gate, seconds,
        split, ablation,
    )  # fmt: skip


def split_record(options: TrainOptions) -> dict[str, Any]:
    """How the test searches were chosen (kept with a version, so they can be rebuilt the same way)."""
    if options.test_file is not None:
        return {"kind": "file", "file": str(options.test_file.path), "freeze_stats": options.split.freeze_stats}
    return options.split.describe()


def split_text(split: Mapping[str, Any]) -> str:
    """How the test searches were chosen, in words: ``time split, statistics frozen at the cut``."""
    kind = split.get("kind")
    if kind == "user":
        holdout = split.get("holdout", 1)
        what = f"user split: each user's last {holdout} search{'' if holdout == 1 else 'es'} with engagement"
    elif kind == "file":
        what = f"the searches of {Path(str(split.get('file'))).name}"
    else:
        what = "time split"
    stats = "statistics frozen at the cut" if split.get("freeze_stats") else "live statistics (not frozen)"
    return f"{what}, {stats}"


def gate_alphas(gate: Gate) -> dict[str, float]:
    return {"none": gate.alpha_no_history, "light": gate.alpha_light, "heavy": gate.alpha_heavy}


def ablate(
    ds: Dataset,
    ranking: RankingConfig,
    options: TrainOptions,
    say: Progress,
    reference: tuple[EvalReport, Mapping[str, float], float] | None = None,
) -> Ablation:
    """The ablation table of ``ds``: the MLP retrained without each feature scope (see :mod:`~.ablation`)."""
    from fuserec_os.learn.ablation import ablation_variants, run_ablation

    cfg = ranking.model

    def one(sub: Dataset, model_cfg: ModelConfig) -> tuple[EvalReport, dict[str, float]]:
        result = fit_model(sub, model_cfg, lambda _m: None)
        gate = fit_gate(sub, result.scorer, model_cfg)
        Xtr, ytr, _ = sub.subset("train")
        return evaluate_split(sub, "test", result.scorer, gate, hgb_train=(Xtr, ytr), seed=model_cfg.seed), (
            gate_alphas(gate)
        )

    n = len(ablation_variants(ds.names)) + (reference is None)
    per = reference[2] if reference is not None else None
    cost = f", about {per * n / 60:.0f} min at {per:.0f} s per model" if per else ""
    say(f"ablation: training {n} more models, each without one feature scope{cost}")
    return run_ablation(ds, cfg, one, reference=reference, say=say, show_bar=options.show_bar)


def _evaluate_active(
    client: OpenSearch, aliases: Aliases, ranking: RankingConfig, options: TrainOptions, say: Progress
) -> tuple[dict[str, str], dict[str, dict[str, float | None]]]:
    """The active model scored on the same test searches as the new one, so promotion compares like with like.

    Returns which model that was (``version`` and ``blob_sha256``: a version name alone means another model in
    another registry, once the new version is exported) and its metrics keyed by the version's name (what the
    registry's promotion rule looks for); both empty without an active model.
    """
    loaded = ModelRegistry(client, aliases.prefix).load_active()
    if loaded is None:
        return {}, {}
    info, blob = loaded
    say(f"scoring the active model {info.version} on the same test searches (its own features and vectors)")
    artifact = ModelArtifact.from_bytes(blob)
    prep = prepare(
        client, aliases, ranking, options, FeatureSet(artifact.features), {}, lambda _m: None, artifact.product_vectors
    )
    active = evaluate_split(prep.dataset, "test", artifact.scorer, artifact.gate, hgb_train=None)
    mlp = dict(active.overall.metrics["mlp"])
    score = mlp.get(active.ndcg_name)
    shown = f"{score:.4f}" if isinstance(score, (int, float)) else "-"
    say(f"active model {info.version} on the same test searches: {active.ndcg_name} {shown}")
    return {"version": info.version, "blob_sha256": info.blob_sha256}, {info.version: mlp}


def active_rescorer(
    client: OpenSearch,
    aliases: Aliases,
    ranking: RankingConfig,
    *,
    impressions: Path | None = None,
    progress: Progress | None = None,
) -> Rescorer:
    """What ``fuserec model promote`` gives the registry to score the active model on a candidate's test searches.

    The candidate's recorded test set (first and last search time) is rebuilt from the stored events and search
    log (or ``impressions``, when the candidate read a file), checked against its digest, and the active
    version's artifact (its own features, vectors and gate) is evaluated on it. :class:`CannotRescore` says why
    when that is impossible: an active model that is not an ``mlp``, a test set that was not recorded, or
    searches that are no longer the same (events deleted, another search log).
    """
    say = progress or (lambda _m: None)

    def rescore(candidate: VersionInfo, active: VersionInfo) -> dict[str, float | None]:
        held = EvaluationSet.of(candidate.training)
        if held is None or held.first is None:
            raise CannotRescore(f"{candidate.version} did not record when its test searches began")
        if active.kind != "mlp":
            raise CannotRescore(f"{active.version} is a '{active.kind}' model: only 'mlp' models can be scored here")
        split = rebuild_split(candidate.version, held, candidate.training)
        artifact = ModelArtifact.from_bytes(ModelRegistry(client, aliases.prefix).get(active.version)[1])
        say(
            f"scoring the active model {active.version} on {held.describe(candidate.version)}, rebuilt from the "
            "stored events"
        )
        try:
            prep = prepare(
                client,
                aliases,
                ranking,
                TrainOptions(split=split, impressions=impressions),
                FeatureSet(artifact.features),
                {},
                lambda _m: None,
                artifact.product_vectors,
            )
        except (ConfigError, IndexStateError, InputFileError) as exc:
            raise CannotRescore(f"its test searches could not be rebuilt: {exc}") from None
        rebuilt = evaluation_set(prep.dataset, prep.source)
        if not held.matched_by(rebuilt):
            where = ""
            if held.source and held.source != rebuilt.source:
                where = f"; {candidate.version} read its searches from {held.source}, this run from {rebuilt.source}"
                if held.source.startswith("impressions file "):
                    where += f": pass --impressions {held.source.removeprefix('impressions file ')}"
            raise CannotRescore(
                f"the searches stored now are not the ones {candidate.version} was tested on (rebuilt "
                f"{rebuilt.searches:,} searches, {rebuilt.window()}{where})"
            )
        report = evaluate_split(prep.dataset, "test", artifact.scorer, artifact.gate, hgb_train=None)
        mlp = dict(report.overall.metrics["mlp"])
        score = mlp.get(report.ndcg_name)
        shown = f"{score:.4f}" if isinstance(score, (int, float)) else "-"
        say(f"active model {active.version} on {held.describe(candidate.version)}: {report.ndcg_name} {shown}")
        return mlp

    return rescore


def rebuild_split(version: str, held: EvaluationSet, training: Mapping[str, Any] | None) -> SplitSpec:
    """The split that chose ``version``'s test searches (its ``training.split``), ending at its last test search.

    A version that recorded no split was tested on a time split with live statistics (before ``--freeze-stats``).
    """
    if held.first is None:
        raise CannotRescore(f"{version} did not record when its test searches began")
    recorded = (training or {}).get("split")
    until = pd.Timestamp(held.last) if held.last else None
    if not isinstance(recorded, Mapping):
        return SplitSpec(test_from=pd.Timestamp(held.first), test_until=until, freeze_stats=False)
    freeze = bool(recorded.get("freeze_stats", False))
    valid = recorded.get("valid_fraction")
    valid_fraction = float(valid) if isinstance(valid, (int, float)) else SplitSpec.valid_fraction
    kind = recorded.get("kind")
    if kind == "user":
        holdout = int(recorded.get("holdout", 1))
        return SplitSpec(
            kind="user", holdout=holdout, test_until=until, freeze_stats=freeze, valid_fraction=valid_fraction
        )
    if kind != "time":
        raise CannotRescore(
            f"{version} was tested on held-out events of a file ({recorded.get('file', 'not recorded')})"
        )
    cut = str((training or {}).get("test_from") or held.first)
    return SplitSpec(test_from=pd.Timestamp(cut), test_until=until, freeze_stats=freeze, valid_fraction=valid_fraction)


def _metrics(report: EvalReport) -> dict[str, dict[str, float | None]]:
    return {m: dict(report.overall.metrics[m]) for m in report.methods}


def _jsonable(value: Mapping[str, Any]) -> dict[str, Any]:
    def default(o: Any) -> Any:
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return dataclasses.asdict(o)
        return list(o) if isinstance(o, tuple) else str(o)

    return json.loads(json.dumps(dict(value), default=default))


@dataclass
class Evaluated:
    """What ``fuserec model evaluate`` prints: the version, its test report (and table), and how it was tested."""

    version: str
    report: EvalReport
    table: str
    dataset: dict[str, Any]
    split: dict[str, Any]
    ablation: Ablation | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "dataset": self.dataset,
            "split": self.split,
            "test": self.report.as_dict(),
            "ablation": self.ablation.as_dict() if self.ablation is not None else None,
        }


def evaluate_version(
    client: OpenSearch,
    aliases: Aliases,
    ranking: RankingConfig,
    options: TrainOptions,
    version: str | None = None,
    *,
    progress: Progress | None = None,
) -> Evaluated:
    """Re-evaluate a stored version (default: the active one) on a fresh dataset, against the same baselines.

    With ``options.ablation`` the current model config is also trained with every feature and without each
    scope on the same searches (the stored version's features), for the ablation table.
    """
    say = progress or (lambda _m: None)
    registry = ModelRegistry(client, aliases.prefix)
    if version is None:
        loaded = registry.load_active()
        if loaded is None:
            raise IndexStateError("no active model: name a version (fuserec model list) or promote one first")
        info, blob = loaded
    else:
        info, blob = registry.get(version)
    artifact = ModelArtifact.from_bytes(blob)
    prep = prepare(client, aliases, ranking, options, FeatureSet(artifact.features), {}, say, artifact.product_vectors)
    ds = prep.dataset
    Xtr, ytr, _ = ds.subset("train")
    report = evaluate_split(
        ds, "test", artifact.scorer, artifact.gate, hgb_train=(Xtr, ytr), oracle=prep.oracle, seed=ranking.model.seed
    )
    ablation = ablate(ds, ranking, options, say) if options.ablation else None
    table = render_table(report) + (f"\n{ablation.table()}" if ablation is not None else "")
    return Evaluated(info.version, report, table, ds.summary(), split_record(options), ablation)
