"""Catalog ingest against a real engine: rejects with reasons, idempotence, --replace safety, column maps."""

from __future__ import annotations

import csv
import json
from pathlib import Path

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
