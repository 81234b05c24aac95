"""``fuserec profiles``: build, update, show and erase user profiles (stored in the cluster)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fuserec_os.commands.common import State, dump, json_option, note, parse_time_option, pass_state
from fuserec_os.errors import QueryError
from fuserec_os.timefmt import utc_iso

if TYPE_CHECKING:
    from fuserec_os.profiles.compute import UserProfile
    from fuserec_os.profiles.jobs import Aliases, ProfileJobReport


def _aliases(state: State) -> Aliases:
    from fuserec_os.profiles.jobs import Aliases

    return Aliases.for_prefix(state.settings.index_prefix)


def _print_job(rep: ProfileJobReport) -> None:
    total = sum(rep.seconds.values())
    click.echo(
        f"{rep.mode}: {rep.events} events, {rep.impressions} logged searches -> {rep.users} profile(s) written, "
        f"as of {utc_iso(rep.as_of)} "
        f"({rep.products} products, {rep.vectors} product vectors, {rep.stats_docs} query-statistics docs, "
        f"{rep.item_docs} item-signals docs) in {total:.1f}s"
    )
    click.echo("  timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in rep.seconds.items()))
    click.echo(
        f"  watermark: {utc_iso(rep.watermark)} (the next 'fuserec profiles update' folds in events ingested after it)"
    )
    if rep.caught_up:
        click.echo(f"  {rep.caught_up} event(s) recorded live during the build folded in after it")
    if rep.rejected:
        click.secho(f"  {rep.rejected} event row(s) rejected, with reasons, in {rep.rejects_path}", fg="yellow")


@click.group()
def profiles() -> None:
    """Build user profiles from behaviour events and inspect or erase them.

    A profile holds decayed affinities (categories incl. parents, brands), a price profile, preferred
    rating, text interests, a latent vector, recent items and counts. Built and updated with them: the
    query statistics and the item signals (every shopper's decayed views, clicks, carts and purchases per
    product, position-debiased click-through and conversion, ratings, recency, trend). Weights and half-life
    come from the 'profiles' section of FUSEREC_CONFIG. Latent vectors are refit only by 'build'; 'update' keeps each
    user's vector (new users get a fold-in over the product vectors).
    """


@profiles.command("build")
@click.option(
    "--from",
    "from_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Build straight from an event file (CSV/JSONL/Parquet) instead of the stored events.",
)
@click.option("--map", "column_map", metavar="FIELD=COLUMN,...", help="With --from: rename your columns onto ours.")
@click.option("--as-of", "as_of", metavar="TIME", help="Use only events before TIME (ISO 8601): a point-in-time build.")
@json_option
@pass_state
def build(state: State, from_file: Path | None, column_map: str | None, as_of: str | None, as_json: bool) -> None:
    """Rebuild every profile (and the product vectors) from all events; resets the update watermark."""
    from fuserec_os.profiles.jobs import build_from_file, build_from_store

    cut = parse_time_option(as_of, "--as-of")
    cfg = state.ranking.profiles
    with state.engine() as eng:
        if from_file is not None:
            from fuserec_os.behaviour.events import EVENT_FIELDS
            from fuserec_os.index.readers import parse_column_map

            cmap = parse_column_map(column_map, EVENT_FIELDS) if column_map else None
            rep = build_from_file(eng.client, _aliases(state), cfg, from_file, state.ranking.events, cmap, as_of=cut)
        else:
            if column_map:
                raise click.UsageError("--map only applies with --from FILE")
            rep = build_from_store(eng.client, _aliases(state), cfg, as_of=cut)
    if as_json:
        dump(rep.as_dict())
    else:
        _print_job(rep)
    if rep.rejected:
        sys.exit(1)


@profiles.command("update")
@json_option
@pass_state
def update(state: State, as_json: bool) -> None:
    """Fold in only the events (and logged searches) ingested since the last build/update (cheap).

    Same result as a full rebuild within floating-point tolerance, except latent vectors (refit by 'build').
    Safe to run from cron; the watermark is kept in the cluster.
    """
    from fuserec_os.profiles.jobs import update_from_store

    with state.engine() as eng:
        rep = update_from_store(eng.client, _aliases(state), state.ranking.profiles)
    if as_json:
        dump(rep.as_dict())
    elif rep.events == 0 and rep.impressions == 0:
        click.echo(f"no new events or logged searches since {utc_iso(rep.watermark)}; profiles unchanged")
    else:
        _print_job(rep)


def profile_summary(p: UserProfile, top: int = 5) -> dict[str, Any]:
    """The readable essentials of a profile (what 'show' prints; also its --json)."""
    from fuserec_os.profiles.compute import iso_utc

    price = p.price
    return {
        "user_id": p.user_id,
        "as_of": iso_utc(p.as_of),
        "first_seen": iso_utc(p.first_seen),
        "last_seen": iso_utc(p.last_seen),
        "events": p.n_events,
        "counts": dict(p.counts),
        "top_categories": [[c, round(s, 3)] for c, s in p.top_categories(top)],
        "top_brands": [[b, round(s, 3)] for b, s in p.top_brands(top)],
        "price": None
        if price is None
        else {
            "median": round(price.median, 2),
            "p25": round(price.p25, 2),
            "p75": round(price.p75, 2),
            "sensitivity": round(price.sensitivity, 3) if price.sensitivity is not None else None,
        },
        "preferred_rating": round(p.rating, 2) if p.rating is not None else None,
        "interests": [t for t, _ in sorted(p.interests.items(), key=lambda kv: -kv[1])[:10]],
        "recent": [[r.product_id, r.type, iso_utc(r.timestamp)] for r in p.recent[:top]],
        "items": len(p.items),
        "has_latent_vector": p.vector is not None,
    }


def render_profile(s: dict[str, Any]) -> str:
    """``profile_summary`` as a few aligned lines."""

    def shares(pairs: list[list[Any]]) -> str:
        return ", ".join(f"{k} {v:.0%}" for k, v in pairs) or "-"

    counts = ", ".join(f"{k} {v}" for k, v in s["counts"].items())
    price = s["price"]
    if price is None:
        price_text = "no priced engagement yet"
    else:
        sens = price["sensitivity"]
        lean = (
            ""
            if sens is None
            else (
                " (buys below category norm)"
                if sens < -0.05
                else " (buys above category norm)"
                if sens > 0.05
                else " (around category norm)"
            )
        )
        price_text = f"median {price['median']:.2f}, p25-p75 {price['p25']:.2f}-{price['p75']:.2f}{lean}"
    rating = s["preferred_rating"]
    lines = [
        f"user {s['user_id']}: {s['events']} events ({counts}), {s['items']} products, "
        f"seen {utc_iso(s['first_seen'])} .. {utc_iso(s['last_seen'])}",
        f"  categories: {shares(s['top_categories'])}",
        f"  brands:     {shares(s['top_brands'])}",
        f"  price:      {price_text}",
        f"  rating:     {'prefers ~' + format(rating, '.1f') if rating is not None else '-'}",
        f"  interests:  {', '.join(s['interests']) or '-'}",
        f"  recent:     {', '.join(f'{pid} ({t})' for pid, t, _ in s['recent']) or '-'}",
    ]
    return "\n".join(lines)


@profiles.command("show")
@click.argument("user_id")
@json_option
@pass_state
def show(state: State, user_id: str, as_json: bool) -> None:
    """Print one user's profile: top categories and brands, price band, interests, history."""
    from fuserec_os.profiles.store import read_profiles

    with state.engine() as eng:
        found = read_profiles(eng.client, _aliases(state).profiles, [user_id])
    if user_id not in found:
        raise QueryError(f"no profile for user {user_id!r} (run 'fuserec profiles build', or check the id)")
    summary = profile_summary(found[user_id])
    if as_json:
        dump(summary)
    else:
        click.echo(render_profile(summary))


@profiles.command("delete")
@click.argument("user_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_state
def delete(state: State, user_id: str, yes: bool, as_json: bool) -> None:
    """Erase a user's profile, all their events and their logged searches (right to erasure). Says how many
    documents went."""
    if not yes and not as_json:
        click.confirm(f"Erase the profile, every event and every logged search of user {user_id!r}?", abort=True)
    from fuserec_os.profiles.jobs import erase_user

    with state.engine() as eng:
        rep = erase_user(eng.client, _aliases(state), user_id)
    if as_json:
        dump(
            {
                "user_id": rep.user_id,
                "profiles": rep.profiles,
                "events": rep.events,
                "impressions": rep.impressions,
                "documents": rep.documents,
            }
        )
    else:
        click.echo(
            f"erased user {user_id!r}: {rep.documents} document(s) ({rep.profiles} profile, {rep.events} events, "
            f"{rep.impressions} logged searches)"
        )
    if rep.documents == 0:
        note(f"note: nothing was stored for user {user_id!r}")
