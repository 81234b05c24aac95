"""Stopped experiments, kept in the cluster so every proxy replica sees ``fuserec ab stop`` (or a guardrail).

The config says which experiments exist and whether they were started; a stop is an event at run time, by a
person or a guardrail, that every replica must see without a redeploy. So it is a small document in the
cluster's state index (:mod:`fuserec_os.index.state`), one per experiment: ``experiment:<name>`` holding
``stopped``, ``stopped_at``, ``by`` (``cli`` or ``guardrail``) and ``reason``. The proxy polls
:func:`stopped_experiments` (one ``_mget`` for every configured name) and leaves the stopped ones out of
:func:`fuserec_os.experiments.assign.active_experiment`. A stop is final: to run the test again, give it a new
name (or a new ``salt``), so its users and its report start afresh.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy import exceptions as osx

from fuserec_os.engine.client import engine_errors
from fuserec_os.errors import EngineError
from fuserec_os.index.state import get_state, put_state, state_index

__all__ = ["StopInfo", "stop_experiment", "stopped_experiments"]

_PREFIX = "experiment:"


@dataclass(frozen=True)
class StopInfo:
    """When and why an experiment was stopped."""

    name: str
    stopped_at: str
    by: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"stopped_at": self.stopped_at, "by": self.by, "reason": self.reason}


def _doc_id(name: str) -> str:
    return f"{_PREFIX}{name}"


def _info(name: str, doc: dict[str, Any] | None) -> StopInfo | None:
    if not doc or not doc.get("stopped"):
        return None
    return StopInfo(name, str(doc.get("stopped_at", "")), str(doc.get("by", "")), str(doc.get("reason", "")))


def stopped_experiments(client: OpenSearch, prefix: str, names: Iterable[str]) -> dict[str, StopInfo]:
    """The experiments among ``names`` that were stopped, with when and why (one ``_mget``; no state index yet:
    none stopped)."""
    ids = [_doc_id(n) for n in names]
    if not ids:
        return {}
    index = state_index(prefix)
    with engine_errors("reading the stopped experiments"):
        try:
            docs = client.mget(index=index, body={"ids": ids})["docs"]
        except osx.NotFoundError:
            return {}
    out: dict[str, StopInfo] = {}
    for doc in docs:
        error = doc.get("error")
        if error is not None:
            if "index_not_found" in str(error):
                continue  # no state index yet (some engines answer per document)
            raise EngineError(f"reading the stopped experiments from {index}: {error}")
        if not doc.get("found"):
            continue
        name = str(doc["_id"])[len(_PREFIX) :]
        info = _info(name, doc.get("_source"))
        if info is not None:
            out[name] = info
    return out


def stop_info(client: OpenSearch, prefix: str, name: str) -> StopInfo | None:
    """Whether ``name`` was stopped, and when and why."""
    return _info(name, get_state(client, state_index(prefix), _doc_id(name)))


def stop_experiment(client: OpenSearch, prefix: str, name: str, *, by: str, reason: str) -> tuple[StopInfo, bool]:
    """Stop ``name`` for every replica. Returns the stop and whether this call made it (False: it was stopped
    already, and that earlier stop is kept, with its time and reason)."""
    earlier = stop_info(client, prefix, name)
    if earlier is not None:
        return earlier, False
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    doc = {"stopped": True, "stopped_at": now, "by": by, "reason": reason, "updated_at": now}
    put_state(client, state_index(prefix), _doc_id(name), doc)
    return StopInfo(name, now, by, reason), True
