"""``fuserec model``: train, evaluate, and manage the registry of reranking models (stored in the cluster)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fuserec_os.commands.common import State, dump, json_option, note, pass_state

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

    from fuserec_os.learn.dataset import SplitSpec
    from fuserec_os.profiles.jobs import Aliases
    from fuserec_os.rerank.registry import ModelRegistry, PromotionRefused, VersionInfo


def _aliases(state: State) -> Aliases:
    from fuserec_os.profiles.jobs import Aliases

    return Aliases.for_prefix(state.settings.index_prefix)


def _registry(state: State, client: OpenSearch) -> ModelRegistry:
    from fuserec_os.rerank.registry import ModelRegistry

    return ModelRegistry(client, state.settings.index_prefix)


def _split(
    test_from: str | None,
    test_fraction: float,
    valid_fraction: float,
    split: str = "time",
    holdout: int | None = None,
    freeze_stats: bool = True,
) -> SplitSpec:
    import pandas as pd

    from fuserec_os.errors import ConfigError
    from fuserec_os.learn.dataset import SplitSpec

    if split == "user" and test_from is not None:
        raise click.BadParameter(
            "a user split tests each user's last --holdout searches; --test-from is a time split's cut",
            param_hint="--test-from",
        )
    if holdout is not None and split != "user":
        raise click.BadParameter("--holdout needs --split user (each user's last N searches)", param_hint="--holdout")
    cut = None
    if test_from is not None:
        try:
            cut = pd.Timestamp(test_from)
        except ValueError:
            raise click.BadParameter(
                f"{test_from!r} is not a time (e.g. 2024-05-01T00:00:00Z)", param_hint="--test-from"
            ) from None
        cut = cut.tz_localize("UTC") if cut.tzinfo is None else cut.tz_convert("UTC")
    try:
        return SplitSpec(
            test_from=cut,
            test_fraction=test_fraction,
            valid_fraction=valid_fraction,
            kind=split,
            holdout=1 if holdout is None else holdout,
            freeze_stats=freeze_stats,
        )
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group()
def model() -> None:
    """Train the personalization MLP, evaluate it against baselines, and manage its versions.

    \b
    Typical cycle:
      fuserec ingest impressions events.impressions.jsonl   # the search log, once
      fuserec model train             # trains, evaluates, registers vN
      fuserec model list
      fuserec model promote vN        # refused if worse than the active model or engine order
      fuserec model rollback          # back to the previous active version
    """


_split_options = [
    click.option(
        "--split",
        "split_kind",
        type=click.Choice(["time", "user"]),
        default="time",
        show_default=True,
        help="time: test on the latest searches (--test-from / --test-fraction); user: test on each user's last "
        "--holdout searches with engagement (a user with no more than that is tested on all of theirs).",
    ),
    click.option(
        "--holdout",
        type=click.IntRange(min=1),
        metavar="N",
        help="With --split user: searches held out per user (default 1).",
    ),
    click.option("--test-from", metavar="TIME", help="Test on searches from TIME on (ISO 8601); train before."),
    click.option("--test-fraction", default=0.25, show_default=True, help="Without --test-from: the latest share."),
    click.option(
        "--valid-fraction", default=0.15, show_default=True, help="Share of the searches not tested to validate on."
    ),
    click.option(
        "--freeze-stats/--live-stats",
        default=True,
        show_default=True,
        help="Freeze: the query statistics (and behavioural candidates) never count the held-out events, so test "
        "searches read them as of the cut. Live: they keep counting the test period's earlier engagement, as "
        "serving with live updates does (flatters every method that reads them).",
    ),
    click.option(
        "--ablation",
        is_flag=True,
        help="Also retrain without each feature scope (engine hit, query engagement, item, user, cross, and "
        "user+cross) and add the test NDCG@10 of each to the report: one more training run per row (minutes).",
    ),
    click.option(
        "--impressions",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        help="Impressions log file (what each search showed) to use instead of the stored search log "
        "('fuserec ingest impressions'): candidates and position-debiased statistics.",
    ),
    click.option(
        "--truth",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        help="Simulated users' true tastes (generate events writes it): adds the oracle to the evaluation.",
    ),
    click.option(
        "--catalog",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        help="With --truth: the generated catalog file (its .latent.jsonl must sit beside it).",
    ),
    click.option(
        "--report-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("reports"),
        show_default=True,
        help="Where the HTML and JSON reports go.",
    ),
]


def _oracle(truth: Path | None, catalog: Path | None) -> Any:
    """The simulator's click model as the evaluation's oracle when --truth is given (imported only then)."""
    if truth is None:
        return None
    from fuserec_os.simulate.oracle import click_oracle

    return click_oracle(truth, catalog)


def split_options(f: Any) -> Any:
    for option in reversed(_split_options):
        f = option(f)
    return f


@model.command("train")
@split_options
@click.option("--promote", "do_promote", is_flag=True, help="Promote the new version if it passes the checks.")
@click.option("--no-register", is_flag=True, help="Evaluate only; do not store a version.")
@json_option
@pass_state
def train(
    state: State,
    split_kind: str,
    holdout: int | None,
    test_from: str | None,
    test_fraction: float,
    valid_fraction: float,
    freeze_stats: bool,
    ablation: bool,
    impressions: Path | None,
    truth: Path | None,
    catalog: Path | None,
    report_dir: Path,
    do_promote: bool,
    no_register: bool,
    as_json: bool,
) -> None:
    """Build leakage-free examples from the stored events, train, evaluate, and register a new version.

    Features come from profiles, query statistics and item signals as of each search (no later event leaks
    in); the split is by time (or by user: --split user). The evaluation table compares, on the same test
    searches: engine (BM25) order, popularity (catalog), behaviour popularity (every shopper's decayed
    engagement), query-popularity, latent-only, gradient-boosted trees, the MLP (blended) and, with --truth, the
    oracle; by user history and query type. --ablation adds the MLP retrained without each feature scope. The
    model section of FUSEREC_CONFIG sets the architecture.
    """
    from fuserec_os.learn.train_job import TrainOptions, active_rescorer, run_training
    from fuserec_os.rerank.registry import PromotionRefused

    options = TrainOptions(
        split=_split(test_from, test_fraction, valid_fraction, split_kind, holdout, freeze_stats),
        impressions=impressions,
        oracle=_oracle(truth, catalog),
        report_dir=report_dir,
        features=state.ranking.features.names,
        ablation=ablation,
        show_bar=not as_json,
    )
    say = (lambda m: note(m)) if as_json else click.echo
    with state.engine() as eng:
        outcome = run_training(
            eng.client, _aliases(state), state.ranking, options, register=not no_register, progress=say
        )
        promoted = None
        refused: PromotionRefused | None = None
        if do_promote and outcome.version is not None:
            try:
                rescore = active_rescorer(  # another model was promoted while this one trained
                    eng.client, _aliases(state), state.ranking, impressions=impressions, progress=say
                )
                promoted = _registry(state, eng.client).promote(outcome.version, rescore=rescore)
            except PromotionRefused as exc:  # still show what was trained, then exit 9
                refused = exc
    if as_json:
        data = outcome.as_dict()
        data["promoted"] = promoted.version if promoted else None
        data["promotion_reason"] = promoted.decision.reason if promoted and promoted.decision else None
        data["promotion_refused"] = str(refused) if refused else None
        dump(data)
        if refused is not None:
            raise refused
        return
    click.echo("")
    click.echo(outcome.table)
    click.echo(f"\nloss: {outcome.loss}" + (f" ({outcome.decision})" if outcome.decision else ""))
    click.echo(f"report: {outcome.html} (and {outcome.json})")
    if outcome.version and refused is None:
        click.echo(
            f"registered {outcome.version}"
            + (
                f"; promoted to active ({promoted.decision.reason})"
                if promoted and promoted.decision
                else f"; promote it with 'fuserec model promote {outcome.version}'"
            )
        )
    if refused is not None:
        raise refused


@model.command("evaluate")
@click.argument("version", required=False)
@split_options
@click.option(
    "--test-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Test on the searches of these events instead (never ingested; read and validated like 'fuserec ingest "
    "events'): the stored events are the history, and are split into train and validation for the baselines.",
)
@click.option(
    "--test-map",
    "test_map",
    metavar="FIELD=COLUMN,...",
    help="With --test-file: rename its columns onto ours, as 'ingest events --map'.",
)
@click.option(
    "--test-set",
    "test_set",
    multiple=True,
    metavar="FIELD=VALUE",
    help="With --test-file: a constant for a column it lacks, as 'ingest events --set' (repeatable).",
)
@json_option
@pass_state
def evaluate_cmd(
    state: State,
    version: str | None,
    split_kind: str,
    holdout: int | None,
    test_from: str | None,
    test_fraction: float,
    valid_fraction: float,
    freeze_stats: bool,
    ablation: bool,
    impressions: Path | None,
    truth: Path | None,
    catalog: Path | None,
    report_dir: Path,
    test_file: Path | None,
    test_map: str | None,
    test_set: tuple[str, ...],
    as_json: bool,
) -> None:
    """Evaluate a stored VERSION (default: the active one) on the current events against every baseline.

    \b
    Which searches are tested (the same options as 'model train'):
      --split time (default)     the latest --test-fraction, or from --test-from TIME on
      --split user --holdout N   each user's last N searches with engagement
      --test-file FILE           the searches of held-out events that were never ingested
    By default the query statistics never count held-out events (--freeze-stats); --live-stats lets them
    count the test period's earlier engagement, as serving with live updates does.

    \b
    Examples:
      fuserec model evaluate v3 --split user --holdout 2
      fuserec model evaluate --test-file may.csv --test-map user_id=visitor,product_id=sku --test-set type=click
      fuserec model evaluate --ablation --json > evaluation.json
    """
    from fuserec_os.learn.report import write_json
    from fuserec_os.learn.train_job import TestFile, TrainOptions, evaluate_version, split_text

    held_out = None
    if test_file is not None:
        if test_from is not None or split_kind != "time":
            raise click.UsageError("--test-file chooses the test searches itself: leave out --test-from and --split")
        from fuserec_os.behaviour.events import EVENT_FIELDS, NOT_SETTABLE
        from fuserec_os.index.readers import parse_column_map, parse_constants

        held_out = TestFile(
            test_file,
            column_map=parse_column_map(test_map, EVENT_FIELDS) if test_map else None,
            constants=parse_constants(test_set, EVENT_FIELDS, not_settable=NOT_SETTABLE),
        )
    elif test_map or test_set:
        raise click.UsageError("--test-map and --test-set describe a --test-file: give one")
    options = TrainOptions(
        split=_split(test_from, test_fraction, valid_fraction, split_kind, holdout, freeze_stats),
        impressions=impressions,
        oracle=_oracle(truth, catalog),
        report_dir=report_dir,
        test_file=held_out,
        ablation=ablation,
        show_bar=not as_json,
    )
    say = (lambda m: note(m)) if as_json else click.echo
    with state.engine() as eng:
        evaluated = evaluate_version(eng.client, _aliases(state), state.ranking, options, version, progress=say)
    if as_json:
        dump(evaluated.as_dict())
        return
    report_dir.mkdir(parents=True, exist_ok=True)
    extra = {k: v for k, v in evaluated.as_dict().items() if k != "test"}
    path = write_json(evaluated.report, report_dir / f"evaluate-{evaluated.version}.json", extra=extra)
    click.echo(f"\n{evaluated.version} on the test searches ({split_text(evaluated.split)}):\n{evaluated.table}")
    click.echo(f"report: {path}")


@model.command("list")
@json_option
@pass_state
def list_versions(state: State, as_json: bool) -> None:
    """Every stored version, newest first: status, creation time, loss, test NDCG@10 (and its gain over engine
    order), the searches it was trained/validated/tested on, and its size."""
    with state.engine() as eng:
        versions = _registry(state, eng.client).list()
    if as_json:
        dump([v.as_dict() for v in versions])
        return
    if not versions:
        click.echo("no models yet: run 'fuserec model train'")
        return
    from fuserec_os.commands.model_text import render_versions

    click.echo(render_versions(versions))


def _stored_gate(registry: ModelRegistry, info: VersionInfo) -> Mapping[str, Any] | None:
    """The blend gate of a version that did not record it in its metadata (older versions): from its artifact."""
    if info.kind != "mlp" or info.status == "deleted":
        return None
    from fuserec_os.rerank.artifact import ArtifactError, ModelArtifact
    from fuserec_os.rerank.registry import RegistryError

    try:
        _, blob = registry.get(info.version)
        return dict(ModelArtifact.from_bytes(blob).gate.__dict__)
    except (RegistryError, ArtifactError):
        return None


@model.command("show")
@click.argument("version", required=False)
@json_option
@pass_state
def show(state: State, version: str | None, as_json: bool) -> None:
    """One version's metadata and metrics (default: the active one): status, times, loss, dataset, blend gate,
    features by scope, configuration, and a methods x metrics table per split."""
    with state.engine() as eng:
        reg = _registry(state, eng.client)
        info = reg.info(version) if version else reg.active()
        gate = None
        if info is not None and not as_json and not (info.training or {}).get("gate"):
            gate = _stored_gate(reg, info)
    if info is None:
        raise click.UsageError("no active model: name a version (fuserec model list)")
    if as_json:
        dump(info.as_dict())
        return
    from fuserec_os.commands.model_text import render_version

    click.echo(render_version(info, gate))


@model.command("promote")
@click.argument("version")
@click.option("--force", is_flag=True, help="Promote even if it is worse than the active model or engine order.")
@click.option(
    "--impressions",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The impressions file VERSION was trained with ('model train --impressions'), to score the active "
    "model on VERSION's test searches when they came from it.",
)
@json_option
@pass_state
def promote(state: State, version: str, force: bool, impressions: Path | None, as_json: bool) -> None:
    """Make VERSION the active model; refused (exit 9) if worse than the active one or engine order.

    Both are compared on VERSION's test searches: with the active model's score recorded when VERSION was
    trained, or else by scoring the active version on them now (rebuilt from the stored events and search log).
    Scores from two different test sets are never compared: when the active model cannot be scored on VERSION's
    searches, the promotion is refused saying so (--force promotes anyway). Every message names the test set.
    """
    say = (lambda m: note(m)) if as_json else click.echo
    with state.engine() as eng:
        client = eng.client

        def rescore(candidate: VersionInfo, active: VersionInfo) -> Mapping[str, Any]:
            from fuserec_os.learn.train_job import active_rescorer  # seconds to import: only when it is needed

            scorer = active_rescorer(client, _aliases(state), state.ranking, impressions=impressions, progress=say)
            return scorer(candidate, active)

        res = _registry(state, client).promote(version, force=force, rescore=rescore)
    if as_json:
        dump(
            {
                "version": res.version,
                "previous": res.previous,
                "changed": res.changed,
                "forced": res.forced,
                "reason": res.decision.reason if res.decision else None,
            }
        )
        return
    if not res.changed:
        click.echo(f"{res.version} is already active")
        return
    reason = f": {res.decision.reason}" if res.decision else ""
    click.echo(
        f"promoted {res.version}"
        + (f" (was {res.previous})" if res.previous else "")
        + (" with --force" if res.forced else "")
        + reason
    )


@model.command("rollback")
@json_option
@pass_state
def rollback(state: State, as_json: bool) -> None:
    """Re-activate the previously active version."""
    with state.engine() as eng:
        res = _registry(state, eng.client).rollback()
    if as_json:
        dump({"version": res.version, "previous": res.previous})
    else:
        click.echo(f"rolled back to {res.version}" + (f" (was {res.previous})" if res.previous else ""))


@model.command("export")
@click.argument("version")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@pass_state
def export(state: State, version: str, path: Path) -> None:
    """Write VERSION (metadata and weights) to one file, to copy it to another cluster."""
    with state.engine() as eng:
        out = _registry(state, eng.client).export(version, path)
    click.echo(f"exported {version} to {out}")


@model.command("import")
@click.argument("path", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@pass_state
def import_(state: State, path: Path) -> None:
    """Store an exported model file as a new version (checksum verified)."""
    with state.engine() as eng:
        version = _registry(state, eng.client).import_file(path)
    click.echo(f"imported {path} as {version} (candidate; promote it to serve it)")
