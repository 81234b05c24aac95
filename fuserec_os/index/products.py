"""Read the live catalog back from the products alias (profiles, statistics and training need all of it)."""

from __future__ import annotations

import pandas as pd
from opensearchpy import OpenSearch, helpers

from fuserec_os.engine.client import engine_errors
from fuserec_os.errors import IndexStateError


def read_products(client: OpenSearch, products_alias: str, purpose: str = "this step") -> pd.DataFrame:
    """Every product document behind the alias as a frame (one scan); a clear error when there is no index."""
    with engine_errors(f"reading the catalog from {products_alias}"):
        if not client.indices.exists(index=products_alias):
            raise IndexStateError(
                f"no products index '{products_alias}': {purpose} needs the catalog "
                "(run 'fuserec ingest products FILE')."
            )
        docs = [h["_source"] for h in helpers.scan(client, index=products_alias, query={"query": {"match_all": {}}})]
    return pd.DataFrame(docs)
