"""``fuserec serve``: the OpenSearch query proxy (personalized ``_search``/``_msearch`` for unchanged clients).

Only click at import time: Starlette, uvicorn and the stage load when the command runs.
"""

from __future__ import annotations

import click

from fuserec_os.commands.common import State, note, pass_state


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0: all).")
@click.option("--port", default=9400, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes (each loads the model and polls the registry on its own).",
)
@click.option("--log-level", default="warning", show_default=True, type=click.Choice(["debug", "info", "warning"]))
@pass_state
def serve(state: State, host: str, port: int, workers: int, log_level: str) -> None:
    """Serve an OpenSearch-compatible proxy in front of the engine.

    \b
    Point an unchanged OpenSearch client at http://HOST:PORT and send the shopper's id in the
    X-Fuserec-User-Id header (FUSEREC_PROXY_USER_HEADER): searches on the products alias that rank by
    relevance come back reranked by the active model. Reads pass through; writes and admin get 403
    (FUSEREC_PROXY_ALLOW opens some). See docs/proxy.md.
    """
    import logging
    import os

    import uvicorn

    from fuserec_os.serve.app import ProxyOptions, create_app, engine_urls

    settings = state.settings
    ranking = state.ranking
    urls = engine_urls(settings)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    note(
        f"fuserec serve: http://{host}:{port} -> {', '.join(urls)} (products alias "
        f"'{settings.alias('products')}', user header {settings.proxy_user_header}, {workers} worker(s))"
    )
    if workers == 1:
        from fuserec_os.rerank.rules import BusinessRules

        options = ProxyOptions(
            urls=urls,
            rerank=ranking.rerank,
            rules=BusinessRules(ranking.rules),
            events_cfg=ranking.events,
            profiles_cfg=ranking.profiles,
            experiments=ranking.experiments,
        )
        uvicorn.run(create_app(settings, options), host=host, port=port, log_level=log_level)
        return
    # several processes: each builds its app from the environment (the .env file is passed on through it)
    from dotenv import dotenv_values

    for key, value in dotenv_values(state.env_file).items():
        if value is not None:
            os.environ.setdefault(key, value)
    if not settings.opensearch_urls:
        os.environ["FUSEREC_OPENSEARCH_URL"] = ",".join(urls)
    uvicorn.run(
        "fuserec_os.serve.app:app_from_env", factory=True, host=host, port=port, workers=workers, log_level=log_level
    )
