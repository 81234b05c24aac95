"""``fuserec config``: validate and show the deployment settings and the ranking config in force."""

from __future__ import annotations

import click

from fuserec_os.commands.common import PRODUCTS, State, dump, json_option, pass_state


@click.command("config")
@json_option
@pass_state
def config_cmd(state: State, as_json: bool) -> None:
    """Validate and show the settings in force (env and .env) and the ranking config (FUSEREC_CONFIG).

    Exits 2 with the variable or key to fix when anything is invalid. Passwords are masked.
    """
    s = state.settings
    ranking = state.ranking
    data = {
        "engine": "cluster" if s.opensearch_urls else "embedded (in-memory dev engine)",
        "opensearch_urls": list(s.opensearch_urls),
        "user": s.user,
        "password": "***" if s.password else None,
        "verify_certs": s.verify_certs,
        "ca_certs": str(s.ca_certs) if s.ca_certs else None,
        "timeout": s.timeout,
        "retries": s.retries,
        "index_prefix": s.index_prefix,
        "products_alias": s.alias(PRODUCTS),
        "state_dir": str(s.state_dir),
        "mappings_dir": str(s.resolved_mappings_dir()),
        "ranking_config": ranking.source,
        "search": {
            "fields": dict(ranking.search.fields),
            "max_size": ranking.search.max_size,
            "max_query_length": ranking.search.max_query_length,
        },
    }
    if as_json:
        dump(data)
        return
    for key, value in data.items():
        click.echo(f"{key:>16}: {value}")
    click.echo("configuration is valid")
