"""Ingest against a fake transport: 429 answers are retried, other refusals land in the rejects file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opensearchpy.exceptions import ConnectionError
from opensearchpy.serializer import JSONSerializer

from fuserec_os.errors import EngineUnavailableError
from fuserec_os.index.ingest import ingest_products
from fuserec_os.index.mappings import MappingSpec


class _Indices:
    def exists_alias(self, name: str) -> bool:
        return True

    def exists(self, index: str) -> bool:
        return True

    def get_alias(self, name: str) -> dict[str, Any]:
        return {"live-index": {"aliases": {name: {}}}}

    def refresh(self, index: str) -> dict[str, Any]:
        return {}


class _Transport:
    serializer = JSONSerializer()


class FakeClient:
    """Answers _bulk from a script: the first answer refuses every doc with 429, then P2 with a 400."""

    def __init__(self) -> None:
        self.indices = _Indices()
        self.transport = _Transport()
        self.bulk_calls: list[list[str]] = []

    def bulk(self, body: str, **kwargs: Any) -> dict[str, Any]:
        lines = body.strip().split("\n")
        ids = [json.loads(line)["index"]["_id"] for line in lines[::2]]
        self.bulk_calls.append(ids)
        if len(self.bulk_calls) == 1:
            items = [
                {"index": {"_id": i, "status": 429, "error": {"type": "es_rejected_execution_exception"}}} for i in ids
            ]
        else:
            items = [
                {"index": {"_id": i, "status": 400, "error": {"type": "mapper_parsing_exception", "reason": "bad"}}}
                if i == "P2"
                else {"index": {"_id": i, "status": 201, "result": "created"}}
                for i in ids
            ]
        return {"errors": True, "items": items}


def test_429_is_retried_and_engine_refusals_are_rejects(tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    src.write_text("".join(json.dumps({"product_id": f"P{i}", "title": f"Item {i}"}) + "\n" for i in range(1, 4)))
    spec = MappingSpec("products", 1, {}, {"properties": {}}, tmp_path / "products.json")
    client = FakeClient()
    rep = ingest_products(client, src, spec, "products", progress=False, initial_backoff=0.01)  # type: ignore[arg-type]
    assert client.bulk_calls == [["P1", "P2", "P3"], ["P1", "P2", "P3"]]  # all three retried after the 429
    assert (rep.indexed, rep.engine_rejected, rep.rejected) == (2, 1, 1)
    reject = json.loads(Path(str(rep.rejects_path)).read_text())
    assert reject["row"] == 2 and reject["product_id"] == "P2"
    assert "mapper_parsing_exception: bad" in reject["reasons"][0]


class _DownClient(FakeClient):
    def bulk(self, body: str, **kwargs: Any) -> dict[str, Any]:
        raise ConnectionError("N/A", "Connection refused", OSError("refused"))


def test_engine_going_down_mid_ingest_is_an_engine_error_not_rejects(tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    src.write_text(json.dumps({"product_id": "P1", "title": "Item"}) + "\n")
    spec = MappingSpec("products", 1, {}, {"properties": {}}, tmp_path / "products.json")
    with pytest.raises(EngineUnavailableError, match="connection refused"):
        ingest_products(_DownClient(), src, spec, "products", progress=False)  # type: ignore[arg-type]
    assert not (tmp_path / "c.jsonl.rejects.jsonl").exists()
