"""The simulator's click model as a reference scorer: the ``oracle`` row of an evaluation on a simulated shop.

Why here and not in training: the oracle needs the simulated users' hidden tastes and the products' hidden
attributes, which only the simulator knows. Training takes any ``(candidate rows, searches) -> scores``
function; the command layer builds this one from the files 'fuserec generate' wrote and passes it in.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from fuserec_os.errors import ConfigError
from fuserec_os.simulate.catalog import latent_path_for
from fuserec_os.simulate.queries import QueryIntent, QueryVocabulary
from fuserec_os.simulate.shoppers import click_probability, load_catalog, load_truth

__all__ = ["click_oracle"]


def click_oracle(truth: Path, catalog: Path | None) -> Callable[[pd.DataFrame, pd.DataFrame], np.ndarray]:
    """The simulator's click probability of each candidate from the hidden tastes and the shown position.

    ``truth`` is the users' tastes file ('fuserec generate events' writes it); ``catalog`` the generated
    catalog file, whose hidden attributes (``.latent.jsonl``) sit beside it. The files are checked here, so a
    missing one fails before any training starts. The query's intent is approximated by the category the
    shop's query rules give it (brand and modifier are not recovered), so this oracle is a strong reference,
    not a perfect one.
    """
    if catalog is None:
        raise ConfigError("--truth needs --catalog (the generated catalog file) to compute the oracle")
    latent = latent_path_for(catalog)
    for needed in (catalog, truth, latent):
        if not needed.is_file():
            raise ConfigError(
                f"{needed}: no such file (the oracle needs the catalog, its hidden attributes "
                f"{latent.name} written by 'fuserec generate catalog', and the truth file)"
            )

    def score(candidates: pd.DataFrame, searches: pd.DataFrame) -> np.ndarray:
        users = load_truth(truth)
        products = {p.doc["product_id"]: p for p in load_catalog(catalog, latent)}
        vocab = QueryVocabulary()
        by_id = searches.set_index("search_id")
        out = np.full(len(candidates), -1e9)
        intents: dict[str, QueryIntent | None] = {}
        shown = candidates["shown_rank"].to_numpy(dtype=np.float64)
        for i, (sid, pid) in enumerate(zip(candidates["search_id"], candidates["product_id"], strict=True)):
            s = by_id.loc[sid]
            q = str(s["query"])
            if q not in intents:
                cat = vocab.category_for(q)
                intents[q] = (
                    None
                    if cat is None
                    else QueryIntent(
                        leaf=cat, top=cat.split(" > ")[0], kind=vocab.kind_of(q) or "canonical", text=q, category=cat
                    )
                )
            user, product = users.get(str(s["user_id"])), products.get(str(pid))
            if user is not None and product is not None:
                rank = None if np.isnan(shown[i]) else int(shown[i])
                out[i] = click_probability(user, product, intents[q], rank)
        return out

    return score
