"""Model registry in the cluster: every trained model is a version (metadata + compressed blob) in ``<prefix>models``.

Why in the cluster: every proxy replica must load the same active model without a shared filesystem, and a
trainer on another host must be able to publish one. So both the versions and the active pointer live in
OpenSearch (see docs/design: "What lives in the cluster").

Layout
- ``<prefix>models``: an alias over a managed index (``mappings/models.json``), one document per version, doc
  id = version (``v1``, ``v2``, ...). Numbers are allocated with ``op_type=create``: the next free number is
  tried and a 409 moves on to the one after, so two trainers saving at once can never take the same number.
- The blob (model bytes, already compressed by the caller) is stored base64 in a ``binary`` field, split into
  chunks of at most ``BLOB_CHUNK_BYTES`` raw bytes (an array of base64 strings). ``binary`` is accepted by
  osmem and real OpenSearch alike and is never indexed (only kept in ``_source``). Chunking keeps every JSON
  string under OpenSearch's ``opensearch.xcontent.string.length.max`` (unlimited or 50 MB by default depending
  on the version, 5 MB on some managed services). The whole document still travels in one request, so the
  cluster's ``http.max_content_length`` (100 MB by default; smaller on some managed instance types) bounds the
  blob too: the default cap (``DEFAULT_MAX_BLOB_BYTES``, 50 MB -> ~67 MB of base64) stays below the default.
- The active pointer is the state document ``model-active`` (:mod:`fuserec_os.index.state`) holding ``version``
  and ``history`` (previously active versions, newest last) for rollback. It is the source of truth for "which
  model serves"; the per-version ``status`` (candidate | active | retired | deleted) is bookkeeping, written
  *before* the pointer so a reader never sees a pointer to a version whose doc does not say so yet. Pointer
  updates use optimistic concurrency (``if_seq_no``): two promotions at once cannot lose one another's history.
- Deleting a version keeps a tombstone (status ``deleted``, blob dropped), so its number is never reused: an
  exported ``v3`` and a later, different ``v3`` could otherwise be confused.

Export format: one JSON file (``{"format": "fuserec-model", "format_version": 1, "meta": {...}, "blob_base64":
"...", "blob_sha256": "..."}``): readable with any tool, diffable metadata, no archive library needed.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import hashlib
import json
import math
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy import exceptions as osx

from fuserec_os.engine.client import engine_errors
from fuserec_os.errors import FuserecError, IndexStateError
from fuserec_os.index import manager
from fuserec_os.index.mappings import MappingSpec, load_named_mapping
from fuserec_os.index.state import put_state, state_index
from fuserec_os.rerank.evaluation_set import EvaluationSet

__all__ = [
    "ACTIVE_STATE",
    "DEFAULT_MAX_BLOB_BYTES",
    "MODELS_MAPPING",
    "BlobTooLargeError",
    "CannotRescore",
    "CorruptModelError",
    "Decision",
    "ModelRegistry",
    "PromotionRefused",
    "PromotionResult",
    "RegistryError",
    "Rescorer",
    "VersionInfo",
    "code_version",
    "compare",
    "metric_value",
]

MODELS_MAPPING = "models"
MODELS_ALIAS = "models"
ACTIVE_STATE = "model-active"
DEFAULT_MAX_BLOB_BYTES = 50 * 1024 * 1024
BLOB_CHUNK_BYTES = 3 * 1024 * 1024  # base64 of 3 MiB = 4 MiB of text: below a 5,000,000-char string limit
EXPORT_FORMAT = "fuserec-model"
EXPORT_FORMAT_VERSION = 1
META_KEYS = ("kind", "metrics", "config", "features", "training", "code_version")
STATUSES = ("candidate", "active", "retired", "deleted")
_MAX_ALLOCATION_ATTEMPTS = 100
_HISTORY_LIMIT = 100
_LIST_LIMIT = 10_000


class RegistryError(IndexStateError):
    """The registry is not in the state an operation needs: unknown version, nothing to roll back, bad meta."""


class CorruptModelError(RegistryError):
    """A stored (or exported) blob does not match its recorded sha256/size: never load it."""


class BlobTooLargeError(RegistryError):
    """The blob is over the registry's cap (one request must carry it to the cluster)."""


class PromotionRefused(FuserecError):
    """The candidate scores worse than the active model or engine order, or the two cannot be compared on the same
    test searches; ``--force`` promotes anyway."""

    exit_code = 9


class CannotRescore(FuserecError):
    """A :data:`Rescorer` cannot score the active model on the candidate's test searches; the message says why."""


# ---------------------------------------------------------------------------------------------------------------
# Pure rules
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """Outcome of :func:`compare`. ``deltas``: candidate minus each baseline ("active", "engine") that was found."""

    ok: bool
    reason: str
    deltas: dict[str, float] = field(default_factory=dict)


def metric_value(metrics: Mapping[str, Any] | None, split: str, method: str, metric: str) -> float | None:
    """``metrics[split][method][metric]`` as a finite float, or None when any level is missing or not a number."""
    if not isinstance(metrics, Mapping):
        return None
    by_method = metrics.get(split)
    if not isinstance(by_method, Mapping):
        return None
    values = by_method.get(method)
    if not isinstance(values, Mapping):
        return None
    value = values.get(metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        return None
    return float(value)


def compare(
    candidate_metrics: Mapping[str, Any] | None,
    active_metrics: Mapping[str, Any] | None,
    metric: str = "ndcg@10",
    split: str = "test",
    tolerance: float = 0.0,
    *,
    candidate_method: str = "mlp",
    active_method: str = "mlp",
    active_version: str | None = None,
    candidate_version: str | None = None,
    candidate_set: str | None = None,
    active_set: str | None = None,
    same_set: bool = False,
    rescored: Mapping[str, Any] | None = None,
    unscored: str | None = None,
) -> Decision:
    """May the candidate replace the active model? Pure, so the promotion rule is unit-tested without an engine.

    Scores are compared only on the same searches: two numbers from different test sets say nothing about which
    model ranks better (a model tested on one search can score 0.66 and a sound one 0.50 on 701).

    The candidate's score is ``candidate_metrics[split][candidate_method][metric]``, on its own test searches
    (``candidate_set`` describes them, e.g. ``v3's 701 test searches (2024-04-11T19:47:51Z .. ...)``). It must not
    be worse (by more than ``tolerance``) than
    - engine order: ``candidate_metrics[split]["engine"][metric]``, measured on the same searches (a model that
      loses to the plain engine ranking must never serve), and
    - the active model, when there is one (``active_metrics`` or ``active_version`` given), on the same searches:
      the candidate's own evaluation of it (recorded at training under ``active_version`` or ``"active"``), else
      ``rescored`` (the active model scored now on the candidate's searches: ``{metric: value}``), else its stored
      ``active_metrics[split][active_method][metric]`` only when ``same_set`` says it was measured on the very
      same searches. A stored score from another test set (``active_set`` describes it) is never compared: the
      decision is a refusal that says so, why the active model could not be scored on the candidate's searches
      (``unscored``), and how to compare the two.
    A missing score is a refusal with a reason naming the missing key: no evidence is not good evidence.
    """
    where = f"{metric} on {split}"
    on = candidate_set or f"the candidate's {split} searches"
    cand = metric_value(candidate_metrics, split, candidate_method, metric)
    if cand is None:
        missing = f"its {split} metrics have no {metric} for {candidate_method}"
        return Decision(False, f"the candidate has no {where} ({on}): {missing}")
    deltas: dict[str, float] = {}
    problems: list[str] = []
    notes: list[str] = []
    hint = ""
    cand_name = candidate_version or "the candidate"

    engine = metric_value(candidate_metrics, split, "engine", metric)
    if engine is None:
        problems.append(f"no engine-order baseline (the {split} metrics have no {metric} for engine)")
    else:
        deltas["engine"] = cand - engine
        text = f"engine order {engine:.4f} ({cand - engine:+.4f}) on the same searches"
        (problems if cand - engine < -tolerance else notes).append(
            f"{abs(cand - engine):.4f} worse than {text}" if cand - engine < -tolerance else f"vs {text}"
        )

    if active_metrics is not None or active_version is not None:
        label = f"active model {active_version}" if active_version else "active model"
        active_name = active_version or "the active model"
        base: float | None = None
        how = ""
        for key in ([active_version] if active_version else []) + ["active"]:
            base = metric_value(candidate_metrics, split, key, metric)
            if base is not None:
                how = f"on the same searches, scored when {cand_name} was trained"
                break
        if base is None and rescored is not None:
            base = metric_value({split: {active_method: rescored}}, split, active_method, metric)
            how = "on the same searches, scored now"
        stored = metric_value(active_metrics, split, active_method, metric)
        if base is None and same_set and stored is not None:
            base = stored
            how = f"on the same test searches ({active_name}'s stored score)"
        if base is not None:
            deltas["active"] = cand - base
            text = f"{label} {base:.4f} ({cand - base:+.4f}) {how}"
            if cand - base < -tolerance:
                problems.append(f"{abs(cand - base):.4f} worse than {text}")
            else:
                notes.append(f"vs {text}")
        elif stored is None:
            problems.append(
                f"no {where} for the {label}: neither the candidate's evaluation records it nor do the active "
                f"version's stored {split} metrics (no {metric} for {active_method})"
                + (
                    f"; {active_name} could not be scored on {cand_name}'s test searches: {unscored}"
                    if unscored
                    else ""
                )
            )
        else:
            origin = active_set or f"{active_name}'s own {split} searches"
            text = f"the {label}'s {stored:.4f} is from {origin}, a different test set, so the two cannot be compared"
            if unscored:
                text += f" ({active_name} could not be scored on {cand_name}'s test searches: {unscored})"
            problems.append(text)
            cv = candidate_version or "CANDIDATE"
            av = active_version or "ACTIVE"
            hint = (
                f"Compare both on the same searches with 'fuserec model evaluate {cv}' and 'fuserec model evaluate "
                f"{av}' (the same split options)"
            )

    head = f"{metric} on {on}: candidate{' ' + candidate_version if candidate_version else ''} {cand:.4f}"
    tail = f" (tolerance {tolerance:.4f})" + (f". {hint}" if hint else "")
    if problems:
        return Decision(False, f"{head}; " + "; ".join(problems + notes) + tail, deltas)
    return Decision(True, f"{head}; " + "; ".join(notes) + tail, deltas)


# ---------------------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionInfo:
    """One version's metadata (never the blob: listing must stay cheap whatever the model size)."""

    version: str
    seq: int
    created_at: str
    status: str
    kind: str
    metrics: dict[str, Any]
    config: dict[str, Any]
    features: list[str]
    training: dict[str, Any]
    code_version: str
    blob_sha256: str
    blob_bytes: int
    imported_from: dict[str, Any] | None = None
    status_at: str | None = None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> VersionInfo:
        return cls(
            version=str(doc["version"]),
            seq=int(doc.get("seq", 0)),
            created_at=str(doc.get("created_at", "")),
            status=str(doc.get("status", "")),
            kind=str(doc.get("kind", "")),
            metrics=dict(doc.get("metrics") or {}),
            config=dict(doc.get("config") or {}),
            features=[str(f) for f in doc.get("features") or []],
            training=dict(doc.get("training") or {}),
            code_version=str(doc.get("code_version", "")),
            blob_sha256=str(doc.get("blob_sha256", "")),
            blob_bytes=int(doc.get("blob_bytes", 0)),
            imported_from=dict(doc["imported_from"]) if doc.get("imported_from") else None,
            status_at=str(doc["status_at"]) if doc.get("status_at") else None,
        )

    def meta(self) -> dict[str, Any]:
        """The caller-supplied part (what :meth:`ModelRegistry.save` takes), e.g. for export."""
        return {
            "kind": self.kind,
            "metrics": self.metrics,
            "config": self.config,
            "features": list(self.features),
            "training": self.training,
            "code_version": self.code_version,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "seq": self.seq,
            "created_at": self.created_at,
            "status": self.status,
            "status_at": self.status_at,
            **self.meta(),
            "blob_sha256": self.blob_sha256,
            "blob_bytes": self.blob_bytes,
            "imported_from": self.imported_from,
        }


@dataclass(frozen=True)
class PromotionResult:
    """What :meth:`ModelRegistry.promote` / :meth:`~ModelRegistry.rollback` changed.

    ``decision`` is None for a rollback (restoring a version that served before needs no comparison);
    ``forced`` is True only when ``force`` overrode a refusal (so reports can flag it); ``changed`` is False when
    the version was already active.
    """

    version: str
    previous: str | None
    changed: bool
    forced: bool = False
    decision: Decision | None = None


Rescorer = Callable[["VersionInfo", "VersionInfo"], Mapping[str, Any]]
"""``(candidate, active) -> the active model's metrics ({"ndcg@10": ..., ...}) on the candidate's test searches``.

What :meth:`ModelRegistry.promote` calls when the candidate's metrics hold no score of the active model on its own
test searches (the candidate was trained before that model became active, or imported) and the two versions were
not tested on the same searches. It raises :class:`CannotRescore` saying why when it cannot (the registry knows no
models, only metadata: the training job supplies one, :func:`fuserec_os.learn.train_job.active_rescorer`).
"""

# ---------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------


def code_version() -> str:
    """Package version plus ``git describe --always --dirty`` when the package runs from its own git checkout.

    Why: a model trained from uncommitted code should say so. Never fails: without git (or outside a checkout,
    e.g. an installed wheel) it is just the package version.
    """
    from fuserec_os import __version__

    root = Path(__file__).resolve().parents[2]
    try:
        top = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != root:
            return __version__  # not our checkout (e.g. site-packages inside someone else's repo)
        described = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return __version__
    tag = described.stdout.strip()
    return f"{__version__}+{tag}" if described.returncode == 0 and tag else __version__


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _version_name(seq: int) -> str:
    return f"v{seq}"


def _chunks(blob: bytes) -> list[str]:
    return [
        base64.b64encode(blob[i : i + BLOB_CHUNK_BYTES]).decode("ascii") for i in range(0, len(blob), BLOB_CHUNK_BYTES)
    ]


def _decode(chunks: Any, version: str) -> bytes:
    if isinstance(chunks, str):
        chunks = [chunks]
    if not isinstance(chunks, list):
        raise CorruptModelError(f"model {version}: the stored blob is not base64 text (got {type(chunks).__name__}).")
    try:
        return b"".join(base64.b64decode(c, validate=True) for c in chunks)
    except (binascii.Error, TypeError, ValueError) as exc:
        raise CorruptModelError(f"model {version}: the stored blob is not valid base64 ({exc}).") from None


def _verify(blob: bytes, sha256: str, size: int, what: str) -> None:
    digest = hashlib.sha256(blob).hexdigest()
    if len(blob) != size or digest != sha256:
        raise CorruptModelError(
            f"{what}: the blob does not match its checksum (sha256 {digest[:12]}…, {len(blob)} bytes; recorded "
            f"{sha256[:12]}…, {size} bytes). It was altered or truncated: do not load it; save the model again "
            "or import it from an export."
        )


def _normalise_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(meta) - set(META_KEYS) - {"imported_from"})
    if unknown:
        raise RegistryError(
            f"unknown model meta key(s) {', '.join(unknown)} (allowed: {', '.join(META_KEYS)}, imported_from)."
        )
    kind = meta.get("kind")
    if not isinstance(kind, str) or not kind:
        raise RegistryError(f"model meta needs 'kind', a non-empty string such as 'mlp' (got {kind!r}).")
    out: dict[str, Any] = {"kind": kind}
    for key in ("metrics", "config", "training"):
        value = meta.get(key) or {}
        if not isinstance(value, Mapping):
            raise RegistryError(f"model meta '{key}' must be a mapping (got {type(value).__name__}).")
        out[key] = json.loads(json.dumps(value))  # plain JSON now, so a bad value fails here, not in the engine
    features = meta.get("features") or []
    if isinstance(features, str) or not isinstance(features, Sequence):
        raise RegistryError(f"model meta 'features' must be a list of names (got {type(features).__name__}).")
    out["features"] = [str(f) for f in features]
    cv = meta.get("code_version")
    out["code_version"] = str(cv) if cv else code_version()
    if meta.get("imported_from"):
        out["imported_from"] = json.loads(json.dumps(dict(meta["imported_from"])))
    return out


# ---------------------------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------------------------


class ModelRegistry:
    """Model versions and the active pointer of one tenant (``prefix``), shared by every replica via the cluster.

    Stateless apart from the client: a fresh object on another host sees the same versions and active model.
    """

    def __init__(
        self,
        client: OpenSearch,
        prefix: str,
        *,
        max_blob_bytes: int = DEFAULT_MAX_BLOB_BYTES,
        spec: MappingSpec | None = None,
        mappings_dir: Path | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.alias = f"{prefix}{MODELS_ALIAS}"
        self.state_index = state_index(prefix)
        self.max_blob_bytes = max_blob_bytes
        self._spec = spec
        self._mappings_dir = mappings_dir
        self._index: str | None = None

    # -- storage -------------------------------------------------------------------------------------------------

    def ensure_index(self) -> str:
        """The concrete index behind ``<prefix>models``, created (with the alias) when there is none.

        Saves call it on first use; deployments may call it up front, because two trainers saving the very
        first version at the same moment could each create an index behind the alias (as with every managed
        store). A second index behind the alias is reported, never silently used.
        """
        if self._index is None:
            spec = self._spec or load_named_mapping(MODELS_MAPPING, self._mappings_dir)
            self._index, _ = manager.ensure_index(self.client, spec, self.alias)
            live = manager.alias_targets(self.client, self.alias)
            if len(live) > 1:
                self._index = None
                raise RegistryError(
                    f"alias '{self.alias}' points at {len(live)} indices ({', '.join(live)}): two registries were "
                    "created at once. Keep the one holding versions and delete the other, then save again."
                )
        return self._index

    def _exists(self) -> bool:
        with engine_errors(f"checking {self.alias}"):
            return bool(self.client.indices.exists(index=self.alias))

    def _get_doc(self, version: str, *, with_blob: bool) -> dict[str, Any]:
        params = {} if with_blob else {"_source_excludes": "blob"}
        with engine_errors(f"reading model {version} from {self.alias}"):
            try:
                resp = self.client.get(index=self.alias, id=version, params=params)
            except osx.NotFoundError:
                resp = None
        if not resp or not resp.get("found", True):
            known = ", ".join(v.version for v in self.list()[:10]) or "none yet"
            raise RegistryError(f"model version '{version}' does not exist in {self.alias} (newest: {known}).")
        doc: dict[str, Any] = resp["_source"]
        return doc

    def _set_status(self, version: str, status: str, extra: Mapping[str, Any] | None = None) -> None:
        with engine_errors(f"setting model {version} to {status}"):
            self.client.update(
                index=self.alias,
                id=version,
                body={"doc": {"status": status, "status_at": _now(), **(extra or {})}},
                params={"refresh": "true", "retry_on_conflict": 3},
            )

    def _next_seq(self) -> int:
        if not self._exists():
            return 1
        with engine_errors(f"reading the newest version in {self.alias}"):
            resp = self.client.search(
                index=self.alias,
                body={"size": 1, "sort": [{"seq": {"order": "desc"}}], "_source": ["seq"]},
            )
        hits = resp["hits"]["hits"]
        return int(hits[0]["_source"]["seq"]) + 1 if hits else 1

    # -- active pointer ------------------------------------------------------------------------------------------

    def _pointer(self) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """The ``model-active`` state doc and the concurrency token (``if_seq_no``/``if_primary_term``) to update it."""
        with engine_errors(f"reading state '{ACTIVE_STATE}'"):
            try:
                resp = self.client.get(index=self.state_index, id=ACTIVE_STATE)
            except osx.NotFoundError:
                return None, {}
        if not resp.get("found", True):
            return None, {}
        token = {"if_seq_no": resp["_seq_no"], "if_primary_term": resp["_primary_term"]}
        source: dict[str, Any] = resp["_source"]
        return source, token

    def _write_pointer(self, version: str, history: Sequence[str], token: Mapping[str, Any]) -> None:
        """Replace the pointer only if nobody changed it since it was read (``token``; empty: it did not exist)."""
        doc = {"version": version, "history": [*history][-_HISTORY_LIMIT:], "updated_at": _now()}
        if token:
            params: dict[str, Any] = {**token, "refresh": "true"}
        else:
            with engine_errors("checking the state index"):
                state_exists = bool(self.client.indices.exists(index=self.state_index))
            if not state_exists:
                # put_state creates the state index with its mapping; the only unguarded write is this very
                # first one on a fresh cluster.
                put_state(self.client, self.state_index, ACTIVE_STATE, doc)
                return
            params = {"op_type": "create", "refresh": "true"}
        doc["name"] = ACTIVE_STATE
        try:
            with engine_errors(f"writing state '{ACTIVE_STATE}'"):
                self.client.index(index=self.state_index, id=ACTIVE_STATE, body=doc, params=params)
        except FuserecError as exc:
            if isinstance(exc.__cause__, osx.ConflictError):
                raise RegistryError(
                    "another promotion or rollback changed the active model at the same time; nothing of this one "
                    "took effect on the pointer. Check 'active' and run it again."
                ) from exc
            raise

    # -- public API ----------------------------------------------------------------------------------------------

    def save(self, blob: bytes, meta: Mapping[str, Any]) -> str:
        """Store ``blob`` (already compressed) as a new candidate version; returns its name (``v<n>``).

        The number is claimed with ``op_type=create``: on 409 (another trainer took it) the next one is tried.
        """
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise RegistryError(f"the model blob must be bytes (got {type(blob).__name__}).")
        blob = bytes(blob)
        if len(blob) > self.max_blob_bytes:
            raise BlobTooLargeError(
                f"model blob is {len(blob) / 1e6:.1f} MB, over the registry cap of {self.max_blob_bytes / 1e6:.1f} "
                "MB. Compress it (np.savez_compressed / zlib), quantize the weights, or raise max_blob_bytes (the "
                "cluster's http.max_content_length must carry ~4/3 of the size)."
            )
        fields = _normalise_meta(meta)
        index = self.ensure_index()
        body = {
            **fields,
            "status": "candidate",
            "blob": _chunks(blob),
            "blob_sha256": hashlib.sha256(blob).hexdigest(),
            "blob_bytes": len(blob),
            "blob_chunk_bytes": BLOB_CHUNK_BYTES,
        }
        seq = self._next_seq()
        for _ in range(_MAX_ALLOCATION_ATTEMPTS):
            version = _version_name(seq)
            now = _now()
            doc = {**body, "version": version, "seq": seq, "created_at": now, "status_at": now}
            try:
                with engine_errors(f"saving model {version} into {self.alias}"):
                    self.client.index(
                        index=index,
                        id=version,
                        body=doc,
                        params={"op_type": "create", "refresh": "true"},
                        request_timeout=max(60, len(blob) // 1_000_000 * 5),
                    )
                return version
            except FuserecError as exc:
                if not isinstance(exc.__cause__, osx.ConflictError):
                    raise
                seq += 1
        raise RegistryError(
            f"could not allocate a version number in {self.alias} after {_MAX_ALLOCATION_ATTEMPTS} attempts "
            "(every number tried was taken meanwhile); try again."
        )

    def list(self, *, include_deleted: bool = False) -> list[VersionInfo]:
        """Every version's metadata, newest first, without blobs ([] before the first save)."""
        if not self._exists():
            return []
        query: dict[str, Any] = (
            {"match_all": {}} if include_deleted else {"bool": {"must_not": [{"term": {"status": "deleted"}}]}}
        )
        with engine_errors(f"listing models in {self.alias}"):
            resp = self.client.search(
                index=self.alias,
                body={
                    "size": _LIST_LIMIT,
                    "query": query,
                    "sort": [{"seq": {"order": "desc"}}],
                    "_source": {"excludes": ["blob"]},
                },
            )
        return [VersionInfo.from_doc(hit["_source"]) for hit in resp["hits"]["hits"]]

    def info(self, version: str) -> VersionInfo:
        """One version's metadata (no blob)."""
        return VersionInfo.from_doc(self._get_doc(version, with_blob=False))

    def get(self, version: str) -> tuple[VersionInfo, bytes]:
        """Metadata and blob of ``version``; CorruptModelError when the blob does not match its sha256."""
        doc = self._get_doc(version, with_blob=True)
        info = VersionInfo.from_doc(doc)
        if info.status == "deleted":
            raise RegistryError(f"model {version} was deleted (its blob is gone; only a tombstone remains).")
        blob = _decode(doc.get("blob"), version)
        _verify(blob, info.blob_sha256, info.blob_bytes, f"model {version} in {self.alias}")
        return info, blob

    def active_version(self) -> str | None:
        """Name of the active version (the pointer), or None when no model was ever promoted."""
        pointer, _ = self._pointer()
        if not pointer or not pointer.get("version"):
            return None
        return str(pointer["version"])

    def history(self) -> builtins.list[str]:
        """Previously active versions, oldest first (rollback pops from the end)."""
        pointer, _ = self._pointer()
        return [str(v) for v in (pointer or {}).get("history") or []]

    def active(self) -> VersionInfo | None:
        version = self.active_version()
        return self.info(version) if version else None

    def load_active(self) -> tuple[VersionInfo, bytes] | None:
        """What a proxy replica loads: the active version and its verified blob, or None (serve engine order)."""
        version = self.active_version()
        return self.get(version) if version else None

    def promote(
        self,
        version: str,
        *,
        metric: str = "ndcg@10",
        split: str = "test",
        force: bool = False,
        tolerance: float = 0.0,
        rescore: Rescorer | None = None,
    ) -> PromotionResult:
        """Make ``version`` the active model, unless it scores worse than the active one or engine order.

        The rule is :func:`compare`, on the candidate's test searches (:class:`EvaluationSet`): the active model's
        score on them comes from the candidate's training (recorded there), else from the active version's stored
        metrics when it was tested on the very same searches, else from ``rescore`` (scoring it now). When none
        applies the promotion is refused, saying the two numbers come from different test sets. ``force``
        records the decision (without rescoring) but promotes anyway. The previous active version is retired
        and pushed onto the pointer's history (for :meth:`rollback`).
        """
        candidate = self.info(version)
        if candidate.status == "deleted":
            raise RegistryError(f"model {version} was deleted; it cannot be promoted.")
        if not force:  # never make active what a replica could not load
            _check_loadable(self.get(version)[1], candidate.kind, version)
        pointer, token = self._pointer()
        current = str(pointer["version"]) if pointer and pointer.get("version") else None
        history = [str(v) for v in (pointer or {}).get("history") or []]
        if current == version:
            decision = Decision(True, f"{version} is already the active model", {})
            return PromotionResult(version, current, changed=False, forced=force, decision=decision)
        active_info = self.info(current) if current else None
        held = EvaluationSet.of(candidate.training)
        active_held = EvaluationSet.of(active_info.training) if active_info else None
        same_set = held is not None and held.same_as(active_held)
        rescored: dict[str, Any] | None = None
        unscored: str | None = None
        metrics = _own_evaluation(candidate, active_info)
        recorded = current is not None and any(
            metric_value(metrics, split, key, metric) is not None for key in (current, "active")
        )
        if active_info is not None and not recorded and not same_set and not force and rescore is not None:
            try:
                rescored = dict(rescore(candidate, active_info))
            except CannotRescore as exc:
                unscored = str(exc)
        decision = compare(
            metrics,
            active_info.metrics if active_info else None,
            metric,
            split,
            tolerance,
            candidate_method=candidate.kind,
            active_method=active_info.kind if active_info else "mlp",
            active_version=current,
            candidate_version=version,
            candidate_set=EvaluationSet.describe_of(held, version),
            active_set=EvaluationSet.describe_of(active_held, current) if current else None,
            same_set=same_set,
            rescored=rescored,
            unscored=unscored,
        )
        if not decision.ok and not force:
            raise PromotionRefused(f"refusing to promote {version}: {decision.reason}. Pass --force to promote anyway.")
        self._set_status(version, "active")
        if current:
            self._set_status(current, "retired")
            history.append(current)
        try:
            self._write_pointer(version, history, token)
        except Exception:
            self._restore_statuses({version: candidate.status, **({current: "active"} if current else {})})
            raise
        return PromotionResult(version, current, changed=True, forced=force and not decision.ok, decision=decision)

    def rollback(self) -> PromotionResult:
        """Re-activate the previously active version (skipping deleted ones); RegistryError when there is none."""
        pointer, token = self._pointer()
        current = str(pointer["version"]) if pointer and pointer.get("version") else None
        history = [str(v) for v in (pointer or {}).get("history") or []]
        while history:
            previous = history.pop()
            try:
                info = self.info(previous)
            except RegistryError:
                continue
            if info.status == "deleted":
                continue
            self._set_status(previous, "active")
            if current:
                self._set_status(current, "retired")
            try:
                self._write_pointer(previous, history, token)
            except Exception:
                self._restore_statuses({previous: info.status, **({current: "active"} if current else {})})
                raise
            return PromotionResult(previous, current, changed=True)
        raise RegistryError(
            "nothing to roll back to: no previously active version is left (history empty or all deleted)"
            + (f"; the active model is {current}." if current else "; no model was ever promoted.")
        )

    def _restore_statuses(self, statuses: Mapping[str, str]) -> None:
        for name, status in statuses.items():
            try:
                self._set_status(name, status)
            except Exception:  # best effort: the pointer (unchanged) is what replicas follow
                continue

    def delete(self, version: str) -> None:
        """Drop ``version``'s blob and mark it deleted (a tombstone, so its number is never reused).

        The active version cannot be deleted: replicas would fail to load it. Roll back or promote another first.
        """
        info = self.info(version)
        if self.active_version() == version:
            raise RegistryError(
                f"model {version} is the active model; promote another version or roll back before deleting it."
            )
        if info.status == "deleted":
            return
        self._set_status(version, "deleted", {"blob": []})

    def export(self, version: str, path: Path | str) -> Path:
        """Write ``version`` to one JSON file (meta + base64 blob + sha256), checksum verified first."""
        info, blob = self.get(version)
        out = Path(path)
        payload = {
            "format": EXPORT_FORMAT,
            "format_version": EXPORT_FORMAT_VERSION,
            "exported_at": _now(),
            "meta": info.as_dict(),
            "blob_sha256": info.blob_sha256,
            "blob_bytes": info.blob_bytes,
            "blob_base64": base64.b64encode(blob).decode("ascii"),
        }
        if not out.parent.is_dir():
            raise RegistryError(f"{out}: the folder {out.parent} does not exist (create it, or export elsewhere).")
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(payload, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(out)  # never leave a half-written export where the real one should be
        return out

    def import_file(self, path: Path | str) -> str:
        """Store an exported model as a new version (status candidate); returns the new version's name.

        The original version and created_at are kept as ``imported_from``; the checksum is verified first.
        """
        src = Path(path)
        try:
            payload = json.loads(src.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RegistryError(f"{src}: export file not found.") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RegistryError(f"{src}: not a fuserec model export (unreadable JSON: {exc}).") from None
        if not isinstance(payload, dict) or payload.get("format") != EXPORT_FORMAT:
            raise RegistryError(f"{src}: not a fuserec model export ('format' is not '{EXPORT_FORMAT}').")
        if payload.get("format_version") != EXPORT_FORMAT_VERSION:
            raise RegistryError(
                f"{src}: export format_version {payload.get('format_version', 'missing')} is not supported "
                f"(this fuserec reads {EXPORT_FORMAT_VERSION})."
            )
        meta = payload.get("meta")
        if not isinstance(meta, dict):
            raise RegistryError(f"{src}: the export has no 'meta' object.")
        try:
            blob = base64.b64decode(str(payload.get("blob_base64", "")), validate=True)
        except (binascii.Error, ValueError):
            raise CorruptModelError(f"{src}: the exported blob is not valid base64.") from None
        try:
            size = int(payload.get("blob_bytes", -1))
        except (TypeError, ValueError):
            raise CorruptModelError(f"{src}: 'blob_bytes' is not a whole number.") from None
        _verify(blob, str(payload.get("blob_sha256", "")), size, str(src))
        _check_loadable(blob, str(meta.get("kind", "")), str(src))
        fields = {k: meta[k] for k in META_KEYS if k in meta}
        fields["imported_from"] = {
            "version": meta.get("version"),
            "created_at": meta.get("created_at"),
            "file": src.name,
            "imported_at": _now(),
        }
        return self.save(blob, fields)


def _own_evaluation(candidate: VersionInfo, active: VersionInfo | None) -> dict[str, Any]:
    """The candidate's metrics, keeping its score of a model active at its training (recorded under that version's
    name) only when that model is the active one now: the same blob (``training.active_at_training``), or for a
    version that did not record it, one trained in this registry (an imported version's ``v2`` was another
    registry's ``v2``)."""
    metrics: dict[str, Any] = json.loads(json.dumps(candidate.metrics))
    if active is None:
        return metrics
    recorded = candidate.training.get("active_at_training")
    if isinstance(recorded, Mapping):
        same = recorded.get("version") == active.version and recorded.get("blob_sha256") == active.blob_sha256
    else:
        same = candidate.imported_from is None
    if not same:
        for by_method in metrics.values():
            if isinstance(by_method, dict):
                by_method.pop(active.version, None)
    return metrics


def _check_loadable(blob: bytes, kind: str, where: str) -> None:
    """An ``mlp`` blob must load as a model artifact (the checksum only proves the bytes are intact)."""
    if kind != "mlp":
        return
    from fuserec_os.rerank.artifact import ArtifactError, ModelArtifact

    try:
        ModelArtifact.from_bytes(blob)
    except ArtifactError as exc:
        raise CorruptModelError(f"{where}: the blob is not a loadable model artifact ({exc}).") from None
