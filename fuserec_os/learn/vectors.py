"""Product latent vectors as of each search: refitted day by day for training, never on a search's own future.

Why: ``latent_dot`` (the user's vector against the item's) is only honest when the product vectors were fitted
on events before the search. Fitting them once on every event before validation, as training did until issue
11, let each training search's own clicks, carts and purchases shape the vectors its features were computed
with: the engaged product's vector was pulled towards the user's earlier products *because of the label*. The
model learned to trust ``latent_dot`` far more than it deserves on later searches, and heavy users, whose many
engaged products make the signal strongest, paid most (the demo shop: test NDCG@10 0.503 with the leak, 0.549
without ``latent_dot`` at all; heavy users +0.06 over engine order with it, +0.10 without).

So every search reads the vectors fitted on the events before the start of its UTC day (the refit a daily
``fuserec profiles build`` makes), leaving out held-out events (:func:`~fuserec_os.learn.splits.held_out_events`).
Validation searches read the vectors as of the validation start and test searches those as of the test period's
start (a time split): what a model trained at that moment carries, fixed in its artifact, as serving uses it.
The artifact's vectors (:attr:`VectorsInTime.final`) are fitted on every event that is not held out (in a time
split, exactly those the test searches read). Evaluating a stored model, its test searches read its own vectors.
Each fit is one :func:`~fuserec_os.profiles.compute.build_profiles` over the events before it (about 0.5 s
on the demo shop's 8k events); days without a new event reuse the previous fit.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fuserec_os.features.items import ItemTable
from fuserec_os.profiles.compute import ProductCatalog, build_profiles
from fuserec_os.profiles.config import ProfilesConfig

__all__ = ["VectorsInTime", "refit_times", "vectors_in_time"]

REFIT = pd.Timedelta(days=1)
"""How often training refits the product vectors (at each UTC midnight), as a daily profile build would."""


@dataclass(frozen=True)
class VectorsInTime:
    """Item tables by the time from which they apply (ascending ``times``; the first is the earliest search)."""

    times: tuple[pd.Timestamp, ...]
    tables: tuple[ItemTable, ...]
    final: dict[str, np.ndarray]
    fits: int

    def at(self, moment: pd.Timestamp) -> ItemTable:
        """The item table (with its vectors) a search at ``moment`` reads."""
        i = bisect.bisect_right(self.times, pd.Timestamp(moment)) - 1
        return self.tables[max(i, 0)]


def refit_times(first: pd.Timestamp, valid_from: pd.Timestamp, test_from: pd.Timestamp) -> list[pd.Timestamp]:
    """Every UTC midnight from ``first``'s day up to ``valid_from``, then ``valid_from``, then ``test_from`` when
    it is later (a time split's cut: the test period reads the vectors of all the events before it)."""
    out = list(pd.date_range(pd.Timestamp(first).floor("D"), pd.Timestamp(valid_from), freq=REFIT, inclusive="left"))
    out.append(pd.Timestamp(valid_from))
    if test_from > valid_from:
        out.append(pd.Timestamp(test_from))
    return sorted(set(out))


def vectors_in_time(
    events: pd.DataFrame,
    catalog: ProductCatalog,
    cfg: ProfilesConfig,
    base: ItemTable,
    times: list[pd.Timestamp],
    *,
    final: bool = True,
    say: Callable[[str], None] | None = None,
) -> VectorsInTime:
    """The item tables of each refit time in ``times``, fitted on ``events`` (the events not held out) before it;
    with ``final``, also the vectors of all ``events`` (what a trained model's artifact carries)."""
    ev = events.sort_values("timestamp", kind="stable").reset_index(drop=True)
    ev_ns = pd.DatetimeIndex(pd.to_datetime(ev["timestamp"], utc=True)).as_unit("ns").asi8
    fitted: dict[int, dict[str, np.ndarray]] = {}  # by the number of events fitted on: a quiet day refits nothing

    def fit(n: int, as_of: pd.Timestamp | None) -> dict[str, np.ndarray]:
        if n not in fitted:
            fitted[n] = dict(build_profiles(ev.iloc[:n], catalog, cfg, as_of=as_of).product_vectors) if n else {}
        return fitted[n]

    tables: dict[int, ItemTable] = {}
    chosen: list[ItemTable] = []
    for moment in times:
        n = int(np.searchsorted(ev_ns, pd.Timestamp(moment).value, side="left"))
        if n not in tables:
            tables[n] = base.with_vectors(fit(n, moment))
        chosen.append(tables[n])
    last = fit(len(ev), None) if final else {}
    if say is not None:
        say(f"product vectors fitted {len(fitted)} times (each day's searches read those fitted before the day)")
    return VectorsInTime(tuple(times), tuple(chosen), last, len(fitted))
