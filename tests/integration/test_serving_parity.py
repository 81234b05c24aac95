"""The parity test of issue 10: a logged search's feature rows are the same through the serving path and through
the training dataset code, for the same profile and statistics snapshot.

A small simulated shop (catalog, shoppers, events, the search log) is stored in the engine. The profiles and
statistics are built *as of* the start of the last logged day (``fuserec profiles build --as-of``), a model
over every default feature is registered with the build's product vectors, and each of that day's searches is
replayed through :class:`~fuserec_os.rerank.pipeline.Pipeline` (engine window, profile and statistics read from
the engine, the stage) at the search's own time. Before each search, the events (and logged searches) between
the previous search and this one are folded into the stored profiles, statistics and item signals with the live
update (:class:`~fuserec_os.profiles.live.LiveUpdater`, issue 11), so serving sees every event strictly before the
search; the item signals are served from one in-memory copy (:class:`~fuserec_os.profiles.item_cache.
ItemSignalsCache`) loaded after the build and fed by those live updates, as in a proxy replica.
:func:`~fuserec_os.learn.dataset.build_dataset` featurises the same searches point-in-time at their own
timestamps. Every shown product's row must be equal, the ``item_*`` behaviour features included.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from opensearchpy import OpenSearch

from fuserec_os.behaviour.event_store import ingest_events, read_events
from fuserec_os.behaviour.search_log import ingest_impressions, read_impressions
from fuserec_os.config import RankingConfig
from fuserec_os.features.spec import BEHAVIOUR_FEATURES, DEFAULT_FEATURES
from fuserec_os.index.ingest import ingest_products
from fuserec_os.index.mappings import load_mapping
from fuserec_os.index.products import read_products
from fuserec_os.learn.dataset import Dataset, SplitSpec, build_dataset
from fuserec_os.profiles import item_store, stats_store
from fuserec_os.profiles.compute import ProductCatalog
from fuserec_os.profiles.item_cache import ItemSignalsCache
from fuserec_os.profiles.jobs import Aliases, build_from_store
from fuserec_os.profiles.live import LiveUpdater
from fuserec_os.profiles.query_stats import mark_counted_requests
from fuserec_os.profiles.store import read_product_vectors
from fuserec_os.rerank.artifact import ModelArtifact
from fuserec_os.rerank.blend import Gate
from fuserec_os.rerank.pipeline import Pipeline
from fuserec_os.rerank.registry import ModelRegistry
from fuserec_os.rerank.scorer import NumpyMLPScorer
from fuserec_os.rerank.settings import RerankSettings
from fuserec_os.rerank.stage import StageInput, StageResult
from fuserec_os.search.backend import SearchBackend
from fuserec_os.search.request import SearchRequest
from fuserec_os.search.retrieval import EngineRetriever
from fuserec_os.simulate.catalog import generate_catalog, write_catalog
from fuserec_os.simulate.shoppers import simulate, write_simulation

from .conftest import REPO


class Recorder:
    """Wraps the served scorer and keeps every feature matrix it is asked to score."""

    def __init__(self, inner: NumpyMLPScorer) -> None:
        self.inner = inner
        self.seen: list[np.ndarray] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def predict(self, X: np.ndarray) -> np.ndarray:
        self.seen.append(np.array(X, copy=True))
        return self.inner.predict(X)


@pytest.fixture(scope="module")
def shop(client: OpenSearch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    tmp = tmp_path_factory.mktemp("parity")
    prefix = "par-" + tmp.name.lower().replace("_", "")[-8:] + "-"
    aliases = Aliases.for_prefix(prefix)
    products = generate_catalog(400, seed=11)
    write_catalog(products, tmp / "catalog.jsonl")
    spec = load_mapping(REPO / "mappings" / "products.json", "products")
    assert ingest_products(client, tmp / "catalog.jsonl", spec, aliases.products, progress=False).ok
    result = simulate(products, EngineRetriever(client, aliases.products), users=250, days=8, seed=5)
    write_simulation(result, tmp / "events.jsonl", tmp / "events.impressions.jsonl")
    cfg = RankingConfig()
    events_spec = load_mapping(REPO / "mappings" / "events.json", "events")
    rep = ingest_events(
        client, tmp / "events.jsonl", events_spec, aliases.events, cfg=cfg.events, products_alias=aliases.products,
        progress=False,
    )  # fmt: skip
    assert rep.ok
    searches_spec = load_mapping(REPO / "mappings" / "searches.json", "searches")
    imp = ingest_impressions(client, tmp / "events.impressions.jsonl", searches_spec, aliases.searches, progress=False)
    assert imp.ok
    yield {"aliases": aliases, "prefix": prefix}
    for name in client.indices.get(index=f"{prefix}*"):
        client.indices.delete(index=name)


def test_feature_rows_are_the_same_online_and_offline(client: OpenSearch, shop: dict[str, object]) -> None:
    aliases, prefix = shop["aliases"], str(shop["prefix"])
    assert isinstance(aliases, Aliases)
    ranking = RankingConfig()
    events = read_events(client, aliases.events)
    impressions = read_impressions(client, aliases.searches)
    day = pd.Timestamp(impressions["timestamp"].max()).floor("D")  # the last logged day
    build_from_store(client, aliases, ranking.profiles, as_of=day.to_pydatetime())  # the snapshot serving reads
    vectors = read_product_vectors(client, aliases.vectors)

    # a model over every default feature, with the snapshot's product vectors (as a trained one carries)
    columns = DEFAULT_FEATURES.columns
    assert set(DEFAULT_FEATURES.names) >= BEHAVIOUR_FEATURES
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(len(columns), 8)), np.zeros(8), rng.normal(size=(8, 1)), np.zeros(1)]
    scorer = NumpyMLPScorer(weights, np.zeros(len(columns)), np.ones(len(columns)), columns, "linear")
    artifact = ModelArtifact(scorer, DEFAULT_FEATURES.names, Gate(0.5, 0.5, 0.5), product_vectors=vectors)
    registry = ModelRegistry(client, prefix)
    registry.promote(registry.save(artifact.to_bytes(), {"kind": "mlp"}), force=True)

    # offline: the training dataset (profiles and statistics point-in-time at each search)
    products = read_products(client, aliases.products)
    ds = build_dataset(
        events,
        ProductCatalog.from_frame(products),
        DEFAULT_FEATURES,
        ranking.profiles,
        EngineRetriever(client, aliases.products),
        impressions=impressions,
        split=SplitSpec(test_from=day, freeze_stats=False),  # serving's live updates keep counting: so do we
        products=products,
        product_vectors=vectors,
    )
    offline = _rows_of_day(ds, day)
    assert len(offline) >= 10, "too few logged searches with engagement on the last day"

    # online: the serving pipeline, reading the snapshot from the engine
    served = replace(ranking, rerank=RerankSettings(budget_ms=1e9))
    compared = missing_online = signal_rows = 0
    signals = ItemSignalsCache(client, aliases.items, interval_s=0)  # this "replica's" copy of the item signals
    assert signals.load() == "loaded"
    live = LiveUpdater.for_prefix(client, prefix, ranking.profiles, signals_cache=signals)
    ordered = mark_counted_requests(events.sort_values("timestamp", kind="stable").reset_index(drop=True))
    logged = impressions.sort_values("timestamp", kind="stable").reset_index(drop=True)
    done_until = day
    for search, pids, X_off in offline[:25]:
        now = pd.Timestamp(search["timestamp"])
        # bring the stored state up to just before this search, as live updates would have
        window = ordered[(ordered["timestamp"] >= done_until) & (ordered["timestamp"] < now)]
        if len(window):
            assert live.apply(window).error is None
        shown = logged[(logged["timestamp"] >= done_until) & (logged["timestamp"] < now)]
        stats_store.add_impressions(client, aliases.stats, shown)
        signals.apply_docs(item_store.add(client, aliases.items, impressions=shown) or [])
        done_until = now
        pipeline = Pipeline.from_config(client, prefix, served)
        pipeline.clock = lambda now=now: now  # type: ignore[misc]
        assert pipeline.stage.signals is not None  # the model reads item signals: the pipeline loaded a copy
        pipeline.stage.signals = signals
        model = pipeline.stage.model
        assert model is not None
        recorder = Recorder(model.artifact.scorer)
        model.artifact.scorer = recorder  # type: ignore[assignment]
        inputs = _spy_on(pipeline)
        backend = SearchBackend(client, aliases.products, ranking.search, pipeline)
        result = backend.execute(
            SearchRequest(text=str(search["query"]), size=10, user_id=str(search["user_id"]), facets=False)
        )
        (inp,) = inputs
        if not inp.hits and not inp.behavioural:  # nothing matched this time (the shop's catalog moved on)
            continue
        assert result.personalization is not None and result.personalization["applied"], result.personalization
        (X_on,) = recorder.seen
        online_ids = [h.id for h in (*inp.hits, *inp.behavioural)]
        position = {p: i for i, p in enumerate(online_ids)}
        signal_rows += int((X_on[:, [columns.index(f"{n}__missing") for n in BEHAVIOUR_FEATURES]] < 0.5).sum())
        for i, pid in enumerate(pids):
            if pid not in position:
                missing_online += 1
                continue
            np.testing.assert_allclose(
                X_on[position[pid]],
                X_off[i],
                rtol=1e-5,
                atol=1e-5,
                err_msg=f"search {search['request_id']} ({search['query']!r}), product {pid}: "
                + ", ".join(
                    f"{n}: online {a:.6g} offline {b:.6g}"
                    for n, a, b in zip(columns, X_on[position[pid]], X_off[i], strict=True)
                    if not np.isclose(a, b, rtol=1e-5, atol=1e-5)
                ),
            )
            compared += 1
    assert compared >= 50 and missing_online <= compared * 0.2, (compared, missing_online)
    assert signal_rows > compared, "the item signals were missing online: the comparison proved nothing for them"


def _spy_on(pipeline: Pipeline) -> list[StageInput]:
    """Keep every StageInput the pipeline hands its stage (the candidate order the features were built in)."""
    inputs: list[StageInput] = []
    run = pipeline.stage.run

    def spy(inp: StageInput, **kw: Any) -> StageResult:
        inputs.append(inp)
        return run(inp, **kw)

    pipeline.stage.run = spy  # type: ignore[method-assign]
    return inputs


def _rows_of_day(ds: Dataset, day: pd.Timestamp) -> list[tuple[dict[str, object], list[str], np.ndarray]]:
    """Per search of ``day``: its row, the candidate product ids and their feature rows."""
    out = []
    searches = ds.searches[pd.to_datetime(ds.searches["timestamp"], utc=True) >= day]
    for row in searches.to_dict("records"):
        mask = ds.groups == int(row["search_id"])
        pids = ds.candidates.loc[mask, "product_id"].astype(str).tolist()
        out.append((row, pids, ds.X[mask]))
    return out
