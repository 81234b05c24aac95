"""Catalog ingest against a real engine: rejects with reasons, idempotence, --replace safety, column maps."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from opensearchpy import OpenSearch

from fuserec_os.index import manager
from fuserec_os.index.ingest import ingest_products
from fuserec_os.index.mappings import MappingSpec

from .conftest import Cli

GOOD = [
    {
        "product_id": "G1",
        "title": "Trail <b>running</b> shoes",
        "brand": "Acme",
        "category": "shoes > running",
        "price": "89.90",
        "in_stock": "yes",
        "tags": "trail|running",
        "attributes": "color=red|size=42",
    },
    {
        "product_id": "G2",
        "title": "Espresso coffee maker",
        "brand": "Brewco",
        "category": "home > kitchen",
        "price": "1,249.00",
        "in_stock": "0",
        "created_at": "2024-03-01T12:00:00+02:00",
    },
    {
        "product_id": "G3",
        "title": "  Yoga   mat  ",
        "brand": "Zen",
        "category": "sports > yoga",
        "price": "25",
        "rating": "4.5",
        "review_count": "12",
    },
]
BAD = [
    {"product_id": "B1", "title": "", "price": "10"},  # missing title
    {"product_id": "B2", "title": "Broken price", "price": "ten", "in_stock": "maybe"},  # two problems
]
FIELDS = [
    "product_id",
    "title",
    "brand",
    "category",
    "price",
    "in_stock",
    "tags",
    "attributes",
    "created_at",
    "rating",
    "review_count",
]


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return path


def test_mixed_file_rejects_bad_rows_with_reasons_and_indexes_the_rest(
    client: OpenSearch, spec: MappingSpec, alias: str, tmp_path: Path
) -> None:
    src = _write_csv(tmp_path / "catalog.csv", [GOOD[0], BAD[0], GOOD[1], BAD[1], GOOD[2]])
    rep = ingest_products(client, src, spec, alias, progress=False)
    assert (rep.read, rep.indexed, rep.rejected) == (5, 3, 2)
    assert not rep.ok and rep.created_index

    rejects = [json.loads(line) for line in Path(str(rep.rejects_path)).read_text().splitlines()]
    assert [r["row"] for r in rejects] == [2, 4]
    assert rejects[0]["product_id"] == "B1" and any("title" in why for why in rejects[0]["reasons"])
    assert len(rejects[1]["reasons"]) == 2  # every reason, not just the first
    assert any("price" in why for why in rejects[1]["reasons"])
    assert any("in_stock" in why for why in rejects[1]["reasons"])
    assert rejects[1]["record"]["price"] == "ten"  # the row as read

    g1 = client.get(index=alias, id="G1")["_source"]
    assert g1["title"] == "Trail running shoes"  # HTML stripped
    assert g1["category_path"] == ["shoes", "shoes > running"]
    assert g1["attributes"] == ["color:red", "size:42"]
    g2 = client.get(index=alias, id="G2")["_source"]
    assert g2["price"] == 1249.0 and g2["in_stock"] is False
    assert g2["created_at"] == "2024-03-01T10:00:00Z"  # normalised to UTC
    assert client.get(index=alias, id="G3")["_source"]["title"] == "Yoga mat"
    assert not client.exists(index=alias, id="B1")

    found = client.search(index=alias, body={"query": {"match": {"title": "running"}}})
    assert [h["_id"] for h in found["hits"]["hits"]] == ["G1"]


def test_reingest_is_idempotent_and_updates(client: OpenSearch, spec: MappingSpec, alias: str, tmp_path: Path) -> None:
    src = _write_csv(tmp_path / "catalog.csv", GOOD)
    ingest_products(client, src, spec, alias, progress=False)
    changed = [dict(GOOD[0], price="79.90"), *GOOD[1:]]
    rep = ingest_products(client, _write_csv(tmp_path / "catalog.csv", changed), spec, alias, progress=False)
    assert rep.ok and rep.indexed == 3 and not rep.created_index
    client.indices.refresh(index=alias)
    assert client.count(index=alias)["count"] == 3
    assert client.get(index=alias, id="G1")["_source"]["price"] == 79.9
    assert rep.rejects_path is None and not (tmp_path / "catalog.csv.rejects.jsonl").exists()


def test_replace_swaps_on_success_and_keeps_live_index_on_a_bad_file(
    client: OpenSearch, spec: MappingSpec, alias: str, tmp_path: Path
) -> None:
    first = ingest_products(client, _write_csv(tmp_path / "a.csv", GOOD), spec, alias, progress=False)
    live = manager.alias_targets(client, alias)
    assert live == [first.index]

    bad = ingest_products(client, _write_csv(tmp_path / "bad.csv", BAD), spec, alias, replace=True, progress=False)
    assert not bad.swapped and not bad.ok and "NOT swapped" in bad.message
    assert manager.alias_targets(client, alias) == live  # the live index is untouched
    assert not client.indices.exists(index=bad.index)  # the half-loaded index was removed
    assert client.count(index=alias)["count"] == 3

    new = ingest_products(client, _write_csv(tmp_path / "b.csv", GOOD[:2]), spec, alias, replace=True, progress=False)
    assert new.swapped and new.ok
    assert manager.alias_targets(client, alias) == [new.index]
    assert client.count(index=alias)["count"] == 2


def test_engine_rejections_are_reported_per_document(
    client: OpenSearch, spec: MappingSpec, alias: str, tmp_path: Path
) -> None:
    """A doc the validator passes but the engine refuses (here: a brand under a mapping that wants an
    integer) lands in the same rejects file, with the engine's reason and the row number."""
    strict = json.loads(json.dumps(spec.mappings))
    strict["properties"]["brand"] = {"type": "integer"}  # "Acme" cannot be an integer
    from dataclasses import replace

    odd = replace(spec, mappings=strict)
    rows = [*GOOD, dict(GOOD[0], title="Trail running shoes v2")]  # G1 twice: rows 1 and 4
    rep = ingest_products(client, _write_csv(tmp_path / "c.csv", rows), odd, alias, progress=False)
    assert rep.engine_rejected == 4 and rep.indexed == 0 and rep.rejected == 4 and rep.duplicates == 1
    rejects = [json.loads(line) for line in Path(str(rep.rejects_path)).read_text().splitlines()]
    assert all("engine rejected" in r["reasons"][0] and "brand" in r["reasons"][0] for r in rejects)
    # each refused document is reported with its own row, also for the repeated id
    by_row = {r["row"]: r["record"] for r in rejects}
    assert sorted(by_row) == [1, 2, 3, 4]
    assert by_row[1]["title"] == "Trail running shoes" and by_row[4]["title"] == "Trail running shoes v2"
    assert by_row[2]["product_id"] == "G2"


def test_cli_ingest_with_column_map_and_jsonl(cli: Cli, client: OpenSearch, alias: str, tmp_path: Path) -> None:
    rows = [
        {"sku": "X1", "name": "Wool socks", "maker": "Knitco", "cost": 9.5, "extra": "ignored"},
        {"sku": "X2", "name": "Cotton tee", "maker": "Knitco", "cost": 12},
    ]
    src = tmp_path / "foreign.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = cli(
        "ingest", "products", str(src), "--map", "product_id=sku,title=name,brand=maker,price=cost", "--no-progress"
    )
    assert "indexed 2" in out.stdout and "rejected 0" in out.stdout
    assert "extra" in out.stdout  # unknown columns are reported, not silently dropped
    assert client.get(index=alias, id="X2")["_source"]["title"] == "Cotton tee"

    bad_map = cli("ingest", "products", str(src), "--map", "title=nope", ok=False)
    assert bad_map.exit_code != 0 and "nope" in bad_map.stderr

    rejected = tmp_path / "mixed.jsonl"
    rejected.write_text(
        json.dumps({"product_id": "Y1", "title": "ok"}) + "\n" + json.dumps({"product_id": "Y2"}) + "\n"
    )
    res = cli("ingest", "products", str(rejected), "--no-progress", "--json", ok=False)
    assert res.exit_code == 1
    report = json.loads(res.stdout)
    assert (report["indexed"], report["rejected"], report["ok"]) == (1, 1, False)
    assert cli("ingest", "products", str(rejected), "--no-progress", "--allow-rejects").exit_code == 0


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_generated_catalog_loads_completely(
    fmt: str, client: OpenSearch, spec: MappingSpec, alias: str, tmp_path: Path
) -> None:
    from fuserec_os.simulate.catalog import generate_catalog, write_catalog

    src = tmp_path / f"catalog.{fmt}"
    write_catalog(generate_catalog(300, seed=11), src)
    rep = ingest_products(client, src, spec, alias, progress=False)
    assert rep.ok and rep.indexed == 300 and rep.rejected == 0
    assert client.count(index=alias)["count"] == 300


# --- issue 8: ingest that fails part way, ids in bytes, absurd values, empty files --------------------------
def _strict_json(line: str) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"bare {name} in the rejects file: {line}")

    return json.loads(line, parse_constant=refuse)


def _rejects(path: Path) -> list[dict[str, Any]]:
    return [_strict_json(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_cli_a_multibyte_id_over_512_bytes_is_one_reject_and_the_valid_rows_are_indexed(
    cli: Cli, client: OpenSearch, alias: str, tmp_path: Path
) -> None:
    rows = [{"product_id": f"P{i}", "title": f"Item {i}"} for i in range(1, 51)]
    rows.insert(25, {"product_id": "é" * 300, "title": "Accented"})  # 300 characters, 600 bytes: row 26
    src = tmp_path / "ids.csv"
    pd.DataFrame(rows).to_csv(src, index=False)
    res = cli("ingest", "products", str(src), "--no-progress", ok=False)
    assert res.exit_code == 1, res.stderr
    assert "indexed 50, rejected 1" in res.stdout
    (reject,) = _rejects(tmp_path / "ids.csv.rejects.jsonl")
    assert reject["row"] == 26 and reject["product_id"] == "é" * 300
    assert reject["reasons"][0].startswith("product_id: 600 bytes, at most 512")
    client.indices.refresh(index=alias)
    assert client.count(index=alias)["count"] == 50


def test_a_chunk_the_engine_refuses_whole_is_retried_document_by_document(
    client: OpenSearch, spec: MappingSpec, alias: str
) -> None:
    """Past validation (the bulk policy itself): a 600-byte id fails the engine's request validation, which
    refuses the whole request; only that document may fail, with the engine's reason, kept short."""
    from fuserec_os.engine.bulk import stream_bulk

    index, _ = manager.ensure_index(client, spec, alias)
    ids = ["A1", "A2", "é" * 300, "A4"]
    actions = [{"_index": index, "_id": i, "_source": {"product_id": i[:50], "title": "t"}} for i in ids]
    results = list(stream_bulk(client, actions, what="test", chunk_size=10))
    assert [(ok, r.get("status")) for ok, r in results] == [(True, 201), (True, 201), (False, 400), (True, 201)]
    from fuserec_os.engine.bulk import refusal_reason

    reason = refusal_reason(results[2][1])
    assert "512 bytes" in reason and len(reason) < 400
    client.indices.refresh(index=index)
    assert client.count(index=index)["count"] == 3


def _ragged_csv(path: Path, rows: int, bad_row: int) -> Path:
    lines = ["product_id,title"]
    for i in range(1, rows + 1):
        lines.append(f"P{i},Item {i},surplus" if i == bad_row else f"P{i},Item {i}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_cli_a_file_that_stops_parsing_says_what_was_indexed_and_how_to_go_on(
    cli: Cli, client: OpenSearch, alias: str, tmp_path: Path
) -> None:
    src = _ragged_csv(tmp_path / "ragged.csv", 6000, bad_row=5501)  # file line 5502
    res = cli("ingest", "products", str(src), "--no-progress", ok=False)
    assert res.exit_code == 8 and "Traceback" not in res.stderr
    live = manager.alias_targets(client, alias)
    message = res.stderr
    assert "line 5502" in message
    assert f"5000 row(s) were read before it: 5000 indexed into {live[0]} (alias {alias})" in message
    assert "fix line 5502 and run the same command again" in message.lower()
    assert "idempotent" in message and "--replace" in message
    client.indices.refresh(index=alias)
    assert client.count(index=alias)["count"] == 5000

    replaced = cli("ingest", "products", str(src), "--no-progress", "--replace", ok=False)
    assert replaced.exit_code == 8
    assert f"alias {alias} was NOT swapped" in replaced.stderr and "live index is unchanged" in replaced.stderr
    assert manager.alias_targets(client, alias) == live
    assert manager.managed_indices(client, alias) == live  # the partial new index was deleted
    assert client.count(index=alias)["count"] == 5000


def test_cli_a_deeply_nested_json_line_is_a_reject_with_its_raw_text(
    cli: Cli, client: OpenSearch, alias: str, tmp_path: Path
) -> None:
    deep = '{"product_id": "D", "title": ' + "[" * 10_000 + "]" * 10_000 + "}"
    src = tmp_path / "deep.jsonl"
    src.write_text('{"product_id": "A", "title": "a"}\n' + deep + '\n{"product_id": "B", "title": "b"}\n')
    res = cli("ingest", "products", str(src), "--no-progress", ok=False)
    assert res.exit_code == 1 and "Traceback" not in res.stderr and "RecursionError" not in res.output
    assert "indexed 2, rejected 1" in res.stdout
    (reject,) = _rejects(tmp_path / "deep.jsonl.rejects.jsonl")
    assert reject["row"] == 2 and reject["raw"] == deep
    assert reject["reasons"][0].startswith("row: could not be parsed (line 2: nested too deeply")


def test_cli_non_finite_and_absurd_numbers_are_rejected_and_the_rejects_file_is_strict_json(
    cli: Cli, client: OpenSearch, alias: str, tmp_path: Path
) -> None:
    src = tmp_path / "prices.jsonl"
    src.write_text(
        '{"product_id": "N", "title": "nan", "price": NaN}\n'
        '{"product_id": "H", "title": "huge", "price": 1e308}\n'
        '{"product_id": "I", "title": "inf", "price": Infinity, "popularity": -Infinity}\n'
        '{"product_id": "M", "title": "twenty million", "price": 2e7}\n'
        '{"product_id": "G", "title": "good", "price": 19.99}\n'
    )
    res = cli("ingest", "products", str(src), "--no-progress", ok=False)
    assert res.exit_code == 1 and "indexed 1, rejected 4" in res.stdout
    rejects = {r["product_id"]: r for r in _rejects(tmp_path / "prices.jsonl.rejects.jsonl")}
    assert rejects["N"]["record"]["price"] == "NaN" and "not a finite number" in rejects["N"]["reasons"][0]
    assert "above the maximum 10,000,000" in rejects["H"]["reasons"][0]
    assert rejects["I"]["record"]["popularity"] == "-Infinity" and len(rejects["I"]["reasons"]) == 2
    assert "above the maximum 10,000,000" in rejects["M"]["reasons"][0]

    raised = cli("ingest", "products", str(src), "--no-progress", "--max-price", "1e8", ok=False)
    assert "indexed 2, rejected 3" in raised.stdout
    assert client.get(index=alias, id="M")["_source"]["price"] == 2e7


@pytest.mark.parametrize("command", ["products", "events", "impressions"])
def test_cli_an_empty_file_is_one_error_whatever_the_format(cli: Cli, tmp_path: Path, command: str) -> None:
    outcomes = []
    for name, content in [("empty.jsonl", ""), ("empty.csv", ""), ("header.csv", "a,b\n"), ("blank.json", "\n\n")]:
        src = tmp_path / name
        src.write_text(content)
        res = cli("ingest", command, str(src), "--no-progress", ok=False)
        outcomes.append((res.exit_code, res.stderr.replace(str(src), "FILE").splitlines()[-1]))
    assert outcomes[0] == (8, "error: FILE has no rows (nothing to ingest)")
    assert all(outcome[0] == 8 and outcome[1].startswith("error: FILE has no rows") for outcome in outcomes)
    assert outcomes[1] == outcomes[0]


def test_a_first_load_whose_every_row_is_rejected_leaves_no_empty_index_behind_the_alias(
    cli: Cli, client: OpenSearch, spec: MappingSpec, alias: str, tmp_path: Path
) -> None:
    rep = ingest_products(client, _write_csv(tmp_path / "bad.csv", BAD), spec, alias, progress=False)
    assert (rep.read, rep.indexed, rep.rejected) == (2, 0, 2) and not rep.ok
    assert not rep.created_index and "nothing was indexed" in rep.message
    assert manager.alias_targets(client, alias) == []  # no alias over an empty index ...
    assert manager.managed_indices(client, alias) == []  # ... and no empty index left over
    assert Path(str(rep.rejects_path)).read_text().count("\n") == 2  # every row is in the rejects file

    # the corrected file then loads as a first load would, without --replace
    result = cli("ingest", "products", str(_write_csv(tmp_path / "good.csv", GOOD)), "--no-progress")
    assert "created index" in result.stdout
    assert client.count(index=alias)["count"] == 3


def test_a_load_whose_every_row_is_rejected_keeps_the_live_index(
    client: OpenSearch, spec: MappingSpec, alias: str, tmp_path: Path
) -> None:
    first = ingest_products(client, _write_csv(tmp_path / "good.csv", GOOD), spec, alias, progress=False)
    rep = ingest_products(client, _write_csv(tmp_path / "bad.csv", BAD), spec, alias, progress=False)
    assert rep.indexed == 0 and rep.index == first.index and not rep.created_index
    assert manager.alias_targets(client, alias) == [first.index]
    assert client.count(index=alias)["count"] == 3
