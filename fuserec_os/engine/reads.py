"""Reading documents back by id: ``_mget`` in chunks, where a missing index means "nothing stored yet".

Profiles, query statistics and item signals are all read this way (one document per user, query key or
product); the rules are the same for each, so they live here once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy import exceptions as osx

from fuserec_os.engine.client import engine_errors
from fuserec_os.errors import EngineError

MGET_CHUNK = 1000


def chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def missing_index(error: Any) -> bool:
    return isinstance(error, dict) and error.get("type") == "index_not_found_exception"


def mget_found(client: OpenSearch, alias: str, ids: Sequence[str], what: str) -> list[dict[str, Any]]:
    """The found documents (``_id``, ``_source``, ...) of ``ids`` (duplicates read once), one ``_mget`` per
    :data:`MGET_CHUNK` ids; [] when there is no index behind ``alias``. Any other per-document error raises
    EngineError naming ``what`` (e.g. "query stats") and the document."""
    out: list[dict[str, Any]] = []
    for chunk in chunks(list(dict.fromkeys(ids)), MGET_CHUNK):
        try:
            with engine_errors(f"reading {what} from {alias}"):
                resp = client.mget(index=alias, body={"ids": list(chunk)})
        except EngineError as exc:
            if isinstance(exc.__cause__, osx.NotFoundError):
                return []
            raise
        for doc in resp.get("docs", []):
            error = doc.get("error")
            if error is not None:
                if missing_index(error):
                    return []
                raise EngineError(f"OpenSearch refused reading {what} {doc.get('_id')} from {alias}: {error}")
            if doc.get("found"):
                out.append(doc)
    return out


def mget_sources(client: OpenSearch, alias: str, ids: Sequence[str], what: str) -> list[dict[str, Any]]:
    """The ``_source`` of each found document of ``ids`` (see :func:`mget_found`)."""
    return [doc["_source"] for doc in mget_found(client, alias, ids, what)]
