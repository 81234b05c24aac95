"""The model a proxy replica serves, and hot reload from the registry.

:class:`ModelHolder` holds the current :class:`LoadedModel` (or None: engine order). A request takes the
holder's :meth:`~ModelHolder.stage` once and uses it to the end, so a swap in the middle of a request never
mixes two versions. :class:`Reloader` polls the registry's active version in a background thread; a new version
is loaded (reading the catalog) and warmed on a scoring batch there, then swapped in one assignment. A version
that fails either step is refused (logged, counted, remembered) and the current one keeps serving. A version that
uses the item signals first has the process's in-memory copy loaded (once; it then refreshes itself).

After a load the proxy *settles the heap* (:func:`settle_heap`): one full collection, then ``gc.freeze()``. A
loaded model, the catalog's item table and the web stack are hundreds of thousands of long-lived objects that
Python's cyclic collector would otherwise walk in every full (generation 2) collection, each a pause for the
requests in flight. Measured with ``gc.callbacks`` in the proxies of a short ``benchmarks/proxy.py`` run on osmem:
the full collection while serving took 80-86 ms before, 5.4-5.6 ms frozen. Frozen objects are skipped. The
collection happens once per load, in the reloader's thread (at start-up before serving; on a hot reload it is
one pause of that size, once). The previous load's objects are unfrozen first, so a model swapped out is still
collected.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from typing import Any

from fuserec_os.rerank.explain import describe
from fuserec_os.rerank.stage import LoadedModel, RerankSettings, RerankStage, RuleSet, SignalsSource

log = logging.getLogger("fuserec.serve")

Loader = Callable[[str], LoadedModel]
"""Builds a loaded, not yet warmed, model for a registry version (raises when it cannot)."""
ActiveVersion = Callable[[], "str | None"]


class ModelHolder:
    """The current model and the stage built around it, swapped atomically. ``signals``: the process's item
    signals (:class:`~fuserec_os.profiles.item_cache.ItemSignalsCache`), handed to every stage."""

    def __init__(
        self, settings: RerankSettings, rules: RuleSet | None = None, signals: SignalsSource | None = None
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.signals = signals
        self._stage = RerankStage(None, settings, rules, describe, signals)
        self._lock = threading.Lock()

    @property
    def model(self) -> LoadedModel | None:
        return self._stage.model

    @property
    def version(self) -> str | None:
        model = self._stage.model
        return model.version if model is not None else None

    def stage(self) -> RerankStage:
        """The stage to use for one whole request (one attribute read: atomic)."""
        return self._stage

    def swap(self, model: LoadedModel | None) -> LoadedModel | None:
        """Serve ``model`` from now on; returns the previous one (not closed: requests may still use it)."""
        with self._lock:
            old = self._stage.model
            self._stage = RerankStage(model, self.settings, self.rules, describe, self.signals)
        return old


def settle_heap() -> int:
    """Unfreeze, collect everything, freeze what is left (see the module docstring); returns the frozen count."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class Reloader:
    """Polls ``active_version`` every ``interval`` seconds and swaps in what it names (see the module docstring).
    ``freeze_heap``: settle the heap after each load (the proxy does; a test process need not)."""

    def __init__(
        self,
        holder: ModelHolder,
        active_version: ActiveVersion,
        loader: Loader,
        interval: float,
        *,
        on_result: Callable[[str, str | None], None] | None = None,
        freeze_heap: bool = False,
    ) -> None:
        self.holder = holder
        self.freeze_heap = freeze_heap
        self.active_version = active_version
        self.loader = loader
        self.interval = interval
        self.on_result = on_result or (lambda result, version: None)
        self.refused: dict[str, str] = {}
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._check_lock = threading.Lock()

    def check(self) -> str | None:
        """One poll: load and swap when the active version changed. Returns what happened (for tests/logs)."""
        with self._check_lock:
            try:
                wanted = self.active_version()
            except Exception as exc:  # registry unreachable: keep serving what we have
                self.last_error = f"reading the active version: {exc}"
                log.warning("fuserec serve: %s", self.last_error)
                return "registry_error"
            current = self.holder.version
            if wanted == current:
                return None
            if wanted is None:
                self.holder.swap(None)
                self.on_result("unloaded", current)
                log.warning("fuserec serve: no active model in the registry any more: engine order")
                return "unloaded"
            if wanted in self.refused:
                return "refused"
            try:
                model = self.loader(wanted)
                model.warm()
                ensure = getattr(self.holder.signals, "ensure_loaded", None)
                if ensure is not None and getattr(model, "needs_item_signals", False):
                    ensure()  # a failed read leaves the item_* features missing, it does not refuse the model
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                self.refused[wanted] = reason
                self.last_error = f"model {wanted} refused: {reason}"
                self.on_result("refused", wanted)
                log.error("fuserec serve: model %s refused (still serving %s): %s", wanted, current or "none", reason)
                return "refused"
            self.holder.swap(model)
            if self.freeze_heap:
                settle_heap()
            self.on_result("loaded", wanted)
            log.warning("fuserec serve: now serving model %s (was %s)", wanted, current or "none")
            return "loaded"

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="fuserec-model-reload", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def registry_loader(client: Any, prefix: str, products_alias: str) -> tuple[ActiveVersion, Loader]:
    """The registry's active version and a loader for a version: artifact + catalog -> :class:`LoadedModel`.

    The same steps as :func:`fuserec_os.rerank.loader.build_loaded` without its warm-up: the reloader warms
    the model itself, to refuse one that cannot score.
    """
    from fuserec_os.index.products import read_products
    from fuserec_os.rerank.artifact import ModelArtifact
    from fuserec_os.rerank.registry import ModelRegistry

    registry = ModelRegistry(client, prefix)

    def active() -> str | None:
        if not client.indices.exists(index=registry.alias):
            return None
        return registry.active_version()

    def load(version: str) -> LoadedModel:
        _, blob = registry.get(version)
        artifact = ModelArtifact.from_bytes(blob)
        products = read_products(client, products_alias, "loading a model")
        return LoadedModel.build(version, artifact, products)

    return active, load
