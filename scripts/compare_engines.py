#!/usr/bin/env python3
"""Ask osmem (the embedded engine) and a real OpenSearch the same questions; print where they answer differently.

    .venv/bin/python scripts/compare_engines.py                 # starts a real node itself (JDK 21+, Maven)
    .venv/bin/python scripts/compare_engines.py --url URL       # or uses a running cluster
    .venv/bin/python scripts/compare_engines.py --all           # also print the behaviours that agree

Each probe is one request (or a few) on a small index with the products mapping; an error is shown as
``ERR status type``. The table in docs/engines.md comes from this output.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from opensearchpy import OpenSearch  # noqa: E402
from opensearchpy import exceptions as osx  # noqa: E402

INDEX = "compare-engines"


def _err(exc: Exception) -> str:
    if isinstance(exc, osx.TransportError):
        info = exc.info if isinstance(exc.info, dict) else {}
        error = info.get("error")
        kind = error.get("type") if isinstance(error, dict) else str(exc.error)
        return f"ERR {exc.status_code} {kind}"
    return f"ERR {type(exc).__name__}"


def _score(c: OpenSearch, query: dict[str, Any]) -> Any:
    return c.search(index=INDEX, body={"query": query})["hits"]["hits"][0]["_score"]


def probes(c: OpenSearch) -> dict[str, Callable[[], Any]]:
    def script(source: str) -> dict[str, Any]:
        return {"script_score": {"query": {"ids": {"values": ["1"]}}, "script": {"source": source}}}

    def agg_order() -> Any:
        aggs = {"brand": {"terms": {"field": "brand"}}, "category": {"terms": {"field": "category"}}}
        return list(c.search(index=INDEX, body={"size": 0, "aggs": aggs})["aggregations"])

    return {
        "search sees a write before any refresh": lambda: c.search(index=INDEX, body={})["hits"]["total"]["value"],
        "GET sees a write before any refresh": lambda: c.get(index=INDEX, id="1")["found"],
        "(refresh)": lambda: c.indices.refresh(index=INDEX)["_shards"]["failed"],
        "scaled_float price 19.999: _source": lambda: c.get(index=INDEX, id="1")["_source"]["price"],
        "scaled_float price 19.999: range lte 19.99": lambda: c.count(
            index=INDEX, body={"query": {"range": {"price": {"lte": 19.99}}}}
        )["count"],
        "scaled_float price 19.999: sort value": lambda: c.search(index=INDEX, body={"sort": [{"price": "asc"}]})[
            "hits"
        ]["hits"][0]["sort"],
        "scaled_float price 19.999: doc['price'] in painless": lambda: _score(c, script("doc['price'].value")),
        "BM25 score, match title 'running'": lambda: round(_score(c, {"match": {"title": "running"}}), 4),
        "english analyzer: 'run' finds 'Running'": lambda: c.count(
            index=INDEX, body={"query": {"match": {"title": "run"}}}
        )["count"],
        "order of top-level aggregations (asked: brand, category)": agg_order,
        "unknown field under dynamic strict": lambda: c.index(index=INDEX, id="9", body={"nope": 1})["result"],
        "text value in a float field": lambda: c.index(index=INDEX, id="9", body={"rating": "high"})["result"],
        "sort on a text field": lambda: c.search(index=INDEX, body={"sort": [{"title": "asc"}]})["hits"]["total"],
        "from 10000 (past max_result_window)": lambda: c.search(index=INDEX, body={"from": 10000, "size": 1}),
        "unknown query type": lambda: c.search(index=INDEX, body={"query": {"nonesuch": {}}}),
        "query_string syntax error": lambda: c.search(index=INDEX, body={"query": {"query_string": {"query": "(a"}}}),
        "search a missing index": lambda: c.search(index="compare-engines-missing", body={}),
        "painless: value of a missing field": lambda: _score(c, script("doc['review_count'].value")),
        "painless: negative script_score": lambda: _score(c, script("-1.0")),
        "painless: params and doc values": lambda: _score(c, script("2.0 * doc['rating'].value")),
        "write through an alias on two indices": lambda: (
            c.indices.create(index=INDEX + "-b"),
            c.indices.update_aliases(
                body={"actions": [{"add": {"index": i, "alias": INDEX + "-al"}} for i in (INDEX, INDEX + "-b")]}
            ),
            c.index(index=INDEX + "-al", body={"x": 1})["result"],
        )[-1],
        "point in time": lambda: bool(c.create_pit(index=INDEX, params={"keep_alive": "1m"}).get("pit_id")),
        "change a field's type": lambda: c.indices.put_mapping(
            index=INDEX, body={"properties": {"price": {"type": "keyword"}}}
        ),
        "msearch with one missing index": lambda: [
            r.get("status")
            for r in c.msearch(body=[{"index": INDEX}, {}, {"index": "compare-engines-missing"}, {}])["responses"]
        ],
    }


def run(url: str) -> tuple[str, dict[str, Any]]:
    c = OpenSearch([url], timeout=60, max_retries=0)
    mapping = json.loads((REPO / "mappings" / "products.json").read_text())
    c.indices.delete(index=INDEX + "*", params={"ignore_unavailable": "true"})
    c.indices.create(index=INDEX, body={"settings": mapping["settings"], "mappings": mapping["mappings"]})
    doc = {"product_id": "1", "title": "Running shoes for runners", "price": 19.999, "rating": 4.5}
    c.index(index=INDEX, id="1", body={**doc, "brand": "Kinetix", "category": "shoes"})
    c.index(index=INDEX, id="2", body={"product_id": "2", "title": "Coffee maker", "brand": "Kitchora"})
    out: dict[str, Any] = {}
    try:
        for name, probe in probes(c).items():
            try:
                out[name] = probe()
            except Exception as exc:
                out[name] = _err(exc)
    finally:
        c.indices.delete(index=INDEX + "*", params={"ignore_unavailable": "true"})
    return str(c.info()["version"]["number"]), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running OpenSearch (default: start a node from engines/opensearch)")
    parser.add_argument("--all", action="store_true", help="also print what both engines answer alike")
    args = parser.parse_args()

    from osmem_server import OsmemServer

    from fuserec_os.engine import close_osmem

    server = OsmemServer.start(japanese=False)
    try:
        mem_version, mem = run(server.url)
    finally:
        close_osmem(server)
    if args.url:
        real_version, real = run(args.url)
    else:
        from fuserec_os.engine.opensearch_node import start_node

        with tempfile.TemporaryDirectory(prefix="fuserec-compare-") as home, start_node(Path(home)) as node:
            real_version, real = run(node.url)
    print(f"osmem (reports {mem_version}) vs OpenSearch {real_version}")
    for name, answer in mem.items():
        same = answer == real[name]
        if args.all or not same:
            print(f"{'  same' if same else 'DIFFER'}  {name}")
            print(f"          osmem:      {answer}\n          OpenSearch: {real[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
