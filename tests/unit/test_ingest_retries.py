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


# --- a chunk refused as a whole (issue 8) ----------------------------------------------------------
class _ChunkRefusingClient(FakeClient):
    """Refuses a whole _bulk request (400) when it holds the document ``bad``, or (413) when it holds more than
    ``max_docs`` documents; every other document is created."""

    def __init__(self, bad: str | None = None, max_docs: int = 10_000) -> None:
        super().__init__()
        self.bad, self.max_docs = bad, max_docs

    def bulk(self, body: str, **kwargs: Any) -> dict[str, Any]:
        from opensearchpy.exceptions import RequestError, TransportError

        lines = body.strip().split("\n")
        ids = [json.loads(line)["index"]["_id"] for line in lines[::2]]
        self.bulk_calls.append(ids)
        if self.bad in ids:
            reason = f"Validation Failed: 1: id [{self.bad}] is too long, must be no longer than 512 bytes;"
            info = {"error": {"type": "action_request_validation_exception", "reason": reason}, "status": 400}
            raise RequestError(400, "action_request_validation_exception", info)
        if len(ids) > self.max_docs:
            raise TransportError(413, "request_entity_too_large", "<html>413 Request Entity Too Large</html>")
        return {"errors": False, "items": [{"index": {"_id": i, "status": 201, "result": "created"}} for i in ids]}


def _catalog(tmp_path: Path, n: int) -> Path:
    src = tmp_path / "c.jsonl"
    src.write_text("".join(json.dumps({"product_id": f"P{i}", "title": f"Item {i}"}) + "\n" for i in range(1, n + 1)))
    return src


def _spec(tmp_path: Path) -> MappingSpec:
    return MappingSpec("products", 1, {}, {"properties": {}}, tmp_path / "products.json")


def test_a_chunk_refused_as_a_whole_is_retried_one_document_at_a_time(tmp_path: Path) -> None:
    client = _ChunkRefusingClient(bad="P3")
    rep = ingest_products(client, _catalog(tmp_path, 5), _spec(tmp_path), "products", progress=False)  # type: ignore[arg-type]
    assert client.bulk_calls[0] == ["P1", "P2", "P3", "P4", "P5"]
    assert client.bulk_calls[1:] == [["P1"], ["P2"], ["P3"], ["P4"], ["P5"]]
    assert (rep.indexed, rep.engine_rejected, rep.rejected) == (4, 1, 1)
    reject = json.loads(Path(str(rep.rejects_path)).read_text())
    assert (reject["row"], reject["product_id"]) == (3, "P3")
    assert reject["reasons"] == [
        "engine rejected the document (400): action_request_validation_exception: Validation Failed: 1: id [P3] "
        "is too long, must be no longer than 512 bytes;"
    ]


def test_a_request_too_large_is_split_and_every_document_lands(tmp_path: Path) -> None:
    client = _ChunkRefusingClient(max_docs=1)
    rep = ingest_products(client, _catalog(tmp_path, 4), _spec(tmp_path), "products", chunk_size=3, progress=False)  # type: ignore[arg-type]
    assert client.bulk_calls == [["P1", "P2", "P3"], ["P1"], ["P2"], ["P3"], ["P4"]]
    assert rep.ok and (rep.indexed, rep.rejected) == (4, 0)


def test_stream_bulk_names_a_single_document_the_engine_refuses_whole(tmp_path: Path) -> None:
    from fuserec_os.engine.bulk import bulk_or_raise, stream_bulk
    from fuserec_os.errors import EngineError

    client = _ChunkRefusingClient(bad="P2")
    actions = [{"_index": "i", "_id": f"P{i}", "_source": {"title": "x"}} for i in range(1, 4)]
    results = list(stream_bulk(client, actions, what="writing"))  # type: ignore[arg-type]
    assert [(ok, r["_id"], r["status"]) for ok, r in results] == [
        (True, "P1", 201),
        (False, "P2", 400),
        (True, "P3", 201),
    ]
    assert results[1][1]["error"]["type"] == "action_request_validation_exception"
    with pytest.raises(EngineError, match=r"refused 1 product document\(s\) in i; first: id P2 \(400\)"):
        bulk_or_raise(_ChunkRefusingClient(bad="P2"), actions, target="i", what="product")  # type: ignore[arg-type]


# --- a failure whose cleanup fails too (issue 8) ----------------------------------------------------
class _KilledIndices(_Indices):
    def create(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"acknowledged": True}

    def delete(self, index: str, params: Any = None) -> dict[str, Any]:
        raise ConnectionError("N/A", "Connection refused", OSError("refused"))


class _KilledClient(FakeClient):
    """The engine dies after the index was created: bulk and the cleanup's delete both find no one there."""

    def __init__(self) -> None:
        super().__init__()
        self.indices = _KilledIndices()

    def bulk(self, body: str, **kwargs: Any) -> dict[str, Any]:
        raise ConnectionError("N/A", "Connection refused", OSError("refused"))

    def close(self) -> None:
        pass


def test_replace_reports_the_original_failure_first_and_the_failed_cleanup_after(tmp_path: Path) -> None:
    client: Any = _KilledClient()
    with pytest.raises(EngineUnavailableError) as info:
        ingest_products(client, _catalog(tmp_path, 3), _spec(tmp_path), "products", replace=True, progress=False)
    message = str(info.value)
    assert message.startswith("cannot reach OpenSearch while bulk indexing into products-v1-")
    cleanup = message.index("removing the unfinished index")
    assert "failed too: cannot reach OpenSearch while deleting index products-v1-" in message[cleanup:]
    assert "alias products was NOT swapped" in message
    assert "docker compose" not in message  # where to look is the CLI's to say, once, and only for a cluster


@pytest.mark.parametrize(("kind", "hinted"), [("cluster", True), ("temporary", False), ("embedded", False)])
def test_cli_says_is_opensearch_running_only_for_a_configured_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, hinted: bool
) -> None:
    from click.testing import CliRunner

    import fuserec_os.engine
    from fuserec_os.cli import cli
    from fuserec_os.engine import Engine

    def fake_open_engine(settings: Any, notify: Any = None) -> Engine:
        return Engine(client=_KilledClient(), url="http://127.0.0.1:9", kind=kind)  # type: ignore[arg-type]

    monkeypatch.setattr(fuserec_os.engine, "open_engine", fake_open_engine)
    env = {"FUSEREC_STATE_DIR": str(tmp_path / "state")}
    if kind == "cluster":
        env["FUSEREC_OPENSEARCH_URL"] = "http://127.0.0.1:9"
    args = ["--env-file", str(tmp_path / "none.env"), "ingest", "products", str(_catalog(tmp_path, 2)), "--replace"]
    res = CliRunner().invoke(cli, [*args, "--no-progress"], env=env)
    assert res.exit_code == 3, res.output
    assert res.stderr.count("cannot reach OpenSearch") == 2  # the failure, then its cleanup
    assert res.stderr.index("while bulk indexing") < res.stderr.index("while deleting index")
    assert ("Is OpenSearch running there? (docker compose up -d" in res.stderr) is hinted
    assert res.stderr.count("Is OpenSearch running") <= 1 and "Traceback" not in res.stderr
