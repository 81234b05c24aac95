"""Small named state documents kept in the cluster (watermarks, last-run facts).

Why in the cluster and not a local file: every replica and every cron host must agree on, say, which events
the profiles already include. One index (``<prefix>fuserec-state``), one document per name.
"""

from __future__ import annotations

from typing import Any

from opensearchpy import OpenSearch
from opensearchpy import exceptions as osx

from fuserec_os.engine.client import engine_errors

STATE_INDEX = "fuserec-state"
_STATE_BODY = {
    "settings": {"index": {"number_of_shards": 1, "number_of_replicas": 0}},
    "mappings": {"dynamic": False, "properties": {"name": {"type": "keyword"}, "updated_at": {"type": "date"}}},
}


def state_index(prefix: str) -> str:
    return f"{prefix}{STATE_INDEX}"


def get_state(client: OpenSearch, index: str, name: str) -> dict[str, Any] | None:
    """The state document ``name``, or None when it was never written."""
    with engine_errors(f"reading state '{name}'"):
        try:
            doc: dict[str, Any] = client.get(index=index, id=name)["_source"]
        except osx.NotFoundError:
            return None
    return doc


def put_state(client: OpenSearch, index: str, name: str, doc: dict[str, Any]) -> None:
    """Write the state document ``name`` (creating the state index on first use), visible at once."""
    with engine_errors(f"writing state '{name}'"):
        if not client.indices.exists(index=index):
            try:
                client.indices.create(index=index, body=_STATE_BODY)
            except osx.RequestError as exc:  # created meanwhile by another process
                if "already_exists" not in str(exc.error):
                    raise
        client.index(index=index, id=name, body={**doc, "name": name}, params={"refresh": "true"})


def delete_state(client: OpenSearch, index: str, name: str) -> bool:
    with engine_errors(f"deleting state '{name}'"):
        try:
            client.delete(index=index, id=name, params={"refresh": "true"})
        except osx.NotFoundError:
            return False
    return True
