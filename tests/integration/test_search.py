"""BM25 and Boolean search against a real engine: ordering, operators, every filter, facets, sort, paging.

One generated catalog is loaded once for the module (its own index prefix); expected results are computed
from the same file with pandas, never hard-coded.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from opensearchpy import OpenSearch

from fuserec_os.errors import QueryError
from fuserec_os.index.ingest import ingest_products
from fuserec_os.index.mappings import MappingSpec
from fuserec_os.search.backend import SearchBackend
from fuserec_os.search.request import Filters, SearchConfig, SearchRequest, Sort

from .conftest import Cli

N = 600
EXTRA = [
    # hand-made pair for the title-vs-description check
    {"product_id": "Z-TITLE", "title": "Zanzibar lantern", "description": "A lamp for the garden."},
    {"product_id": "Z-DESC", "title": "Garden lamp", "description": "Shaped like a zanzibar lantern, solar powered."},
]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fuserec_os.simulate.catalog import generate_catalog, write_catalog

    path = tmp_path_factory.mktemp("catalog") / "catalog.jsonl"
    write_catalog(generate_catalog(N, seed=5), path)
    with open(path, "a", encoding="utf-8") as f:
        for row in EXTRA:
            f.write(json.dumps(row) + "\n")
    return path


@pytest.fixture(scope="module")
def frame(catalog: Path) -> pd.DataFrame:
    """The catalog as the engine should see it (through the same validator)."""
    from fuserec_os.index.validate import normalize_product

    docs = [normalize_product(json.loads(line))[0] for line in catalog.read_text().splitlines()]
    return pd.DataFrame([d for d in docs if d is not None])


@pytest.fixture(scope="module")
def backend(client: OpenSearch, spec: MappingSpec, catalog: Path) -> Iterator[SearchBackend]:
    alias = f"s{uuid.uuid4().hex[:10]}-products"
    rep = ingest_products(client, catalog, spec, alias, progress=False)
    assert rep.ok and rep.indexed == N + len(EXTRA)
    yield SearchBackend(client, alias)
    for name in client.indices.get(index=f"{alias}*"):
        client.indices.delete(index=name)


def _all_ids(backend: SearchBackend, **kwargs: object) -> list[str]:
    ids: list[str] = []
    page = 1
    while True:
        res = backend.search(page=page, size=100, facets=False, highlight=False, **kwargs)  # type: ignore[arg-type]
        ids += res.ids
        if page * 100 >= res.total:
            return ids
        page += 1


def test_title_match_ranks_above_description_only_match(backend: SearchBackend) -> None:
    res = backend.search("zanzibar lantern")
    assert res.ids[:2] == ["Z-TITLE", "Z-DESC"]
    assert "<em>" in " ".join(res.hits[0].highlights.get("title", []))


def test_free_text_is_bm25_over_several_fields(backend: SearchBackend, frame: pd.DataFrame) -> None:
    brand = frame["brand"].dropna().value_counts().index[0]
    res = backend.search(brand.lower(), size=50)
    assert res.total >= int((frame["brand"] == brand).sum())
    assert all(h.source.get("brand") == brand for h in res.hits[:5])


def test_and_narrows_or_widens_not_excludes(backend: SearchBackend) -> None:
    shoes = set(_all_ids(backend, query="shoes"))
    running = set(_all_ids(backend, query="running"))
    both = set(_all_ids(backend, query="shoes AND running"))
    either = set(_all_ids(backend, query="shoes OR running"))
    assert both and both <= shoes & running and both < shoes
    assert either == shoes | running
    no_running = set(_all_ids(backend, query="shoes -running"))
    assert no_running == shoes - running
    assert set(_all_ids(backend, query="shoes NOT running")) == no_running


def test_phrase_requires_adjacent_words(backend: SearchBackend, frame: pd.DataFrame) -> None:
    phrase = set(_all_ids(backend, query='"running shoes"'))
    words = set(_all_ids(backend, query="running AND shoes"))
    assert phrase and phrase <= words
    text = (frame["title"] + " " + frame["description"].fillna("")).str.lower()
    expected = set(frame.loc[text.str.contains("running shoe"), "product_id"])
    assert expected <= phrase


def test_field_syntax_and_ranges(backend: SearchBackend, frame: pd.DataFrame) -> None:
    brand = frame["brand"].dropna().value_counts().index[1]
    ids = set(_all_ids(backend, query=f'brand:"{brand}" price:[20 TO 100]'))
    expected = set(frame.loc[(frame["brand"] == brand) & frame["price"].between(20, 100), "product_id"])
    assert ids == expected and ids


def test_every_filter_matches_pandas(backend: SearchBackend, frame: pd.DataFrame) -> None:
    top = frame["category"].dropna().str.split(" > ").str[0].value_counts().index[0]
    brands = list(frame["brand"].dropna().value_counts().index[:2])
    tag = frame["tags"].dropna().explode().value_counts().index[0]
    attr = frame["attributes"].dropna().explode().value_counts().index[0]
    key, value = attr.split(":", 1)
    cases = [
        (Filters(category=top), frame["category"].fillna("").str.startswith(top + " >")),
        (Filters(brands=tuple(brands)), frame["brand"].isin(brands)),
        (Filters(price_min=50.0, price_max=120.0), frame["price"].between(50, 120)),
        (Filters(rating_min=4.0), frame["rating"] >= 4.0),
        (Filters(in_stock=False), frame["in_stock"] == False),  # noqa: E712 - pandas element-wise
        (Filters(tags=(tag,)), frame["tags"].apply(lambda t: isinstance(t, list) and tag in t)),
        (
            Filters(attributes=((key, (value,)),)),
            frame["attributes"].apply(lambda a: isinstance(a, list) and attr in a),
        ),
    ]
    for filters, mask in cases:
        expected = set(frame.loc[mask, "product_id"])
        assert expected, filters
        assert set(_all_ids(backend, filters=filters)) == expected, filters


def test_facet_counts_match_pandas(backend: SearchBackend, frame: pd.DataFrame) -> None:
    res = backend.search("", size=1)
    assert res.total == len(frame)
    brand_counts = frame["brand"].value_counts()
    for bucket in res.facets["brand"]:
        assert bucket.count == brand_counts[bucket.key]
    cat_counts = frame["category"].value_counts()
    returned = {b.key: b.count for b in res.facets["category"]}
    assert returned == {k: int(cat_counts[k]) for k in returned}
    left_out = cat_counts.drop(list(returned))
    assert left_out.empty or left_out.max() <= min(returned.values())  # the top buckets, ties in any order
    price = {b.key: b.count for b in res.facets["price"]}
    assert price["25-50"] == int(((frame["price"] >= 25) & (frame["price"] < 50)).sum())
    assert price["500-*"] == int((frame["price"] >= 500).sum())
    rating = {b.key: b.count for b in res.facets["rating"]}
    assert rating["4+"] == int((frame["rating"] >= 4).sum())


def test_paging_has_no_duplicates_or_gaps(backend: SearchBackend) -> None:
    for sort in Sort:
        full = backend.search("shoes", sort=sort, size=100, facets=False).ids
        paged: list[str] = []
        for page in range(1, 11):
            paged += backend.search("shoes", sort=sort, page=page, size=10, facets=False).ids
        assert paged == full[: len(paged)], sort
        assert len(set(paged)) == len(paged)


def test_sorts_order_by_their_field(backend: SearchBackend) -> None:
    prices = [h.source["price"] for h in backend.search("", sort="price_asc", size=50).hits]
    assert prices == sorted(prices)
    prices = [h.source["price"] for h in backend.search("", sort=Sort.PRICE_DESC, size=50).hits]
    assert prices == sorted(prices, reverse=True)
    ratings = [h.source["rating"] for h in backend.search("", sort="rating", size=50).hits]
    assert ratings == sorted(ratings, reverse=True)
    dates = [h.source["created_at"] for h in backend.search("", sort="newest", size=50).hits]
    assert dates == sorted(dates, reverse=True)


@pytest.mark.parametrize(
    "text",
    ["shoes AND", '"unbalanced', "(running", "price:[abc TO 5]", "title:", "\\/:*?~^{}[]", "NOT", "a OR OR b"],
)
def test_broken_syntax_never_errors(backend: SearchBackend, text: str) -> None:
    res = backend.search(text)
    assert res.total >= 0


def test_bad_requests_are_query_errors(backend: SearchBackend) -> None:
    with pytest.raises(QueryError, match="256"):
        backend.search("x" * 300)
    with pytest.raises(QueryError, match="size"):
        backend.search("shoes", size=1000)
    with pytest.raises(QueryError, match="page"):
        backend.search("shoes", page=0)
    with pytest.raises(QueryError, match="sort"):
        backend.search("shoes", sort="cheapest")
    narrow = SearchBackend(backend.client, backend.alias, SearchConfig(max_result_window=100))
    with pytest.raises(QueryError):
        narrow.execute(SearchRequest(text="shoes", page=11, size=10))


def test_missing_index_says_what_to_do(client: OpenSearch) -> None:
    with pytest.raises(QueryError, match="index create"):
        SearchBackend(client, f"missing-{uuid.uuid4().hex[:8]}").search("shoes")


def test_cli_search_json_and_table(cli: Cli, backend: SearchBackend, frame: pd.DataFrame, catalog: Path) -> None:
    cli("ingest", "products", str(catalog), "--no-progress")
    out = json.loads(cli("search", "running shoes", "--filter", "price=..100", "--json").stdout)
    assert out["hits"] and all(h["source"]["price"] <= 100 for h in out["hits"])
    assert set(out["facets"]) == {"brand", "category", "price", "rating"}
    table = cli("search", "coffee maker", "--size", "3").stdout
    assert "match(es)" in table and "facets:" in table
    bad = cli("search", "shoes", "--filter", "colour=red", ok=False)
    assert bad.exit_code != 0 and "colour" in bad.stderr and "Traceback" not in bad.stderr
