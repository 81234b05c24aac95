"""``fuserec``: the admin CLI. This file only assembles the command groups that live in :mod:`fuserec_os.commands`.

Every command module imports only click and what all commands share at import time; what a command runs
(pandas, the engine client, the trainer) is imported when it runs, so ``fuserec --help`` answers at once and
``fuserec search`` never loads pandas, scikit-learn or TensorFlow (tests check both import sets).

Errors the user can fix (FuserecError) print one ``error:`` line and exit with the error's code, never a
traceback. Engine notices go to stderr so ``--json`` output stays parseable.
"""

from __future__ import annotations

import click

from fuserec_os import __version__
from fuserec_os.commands.ab import ab
from fuserec_os.commands.common import FuserecGroup, State
from fuserec_os.commands.config import config_cmd
from fuserec_os.commands.demo import demo
from fuserec_os.commands.engine import engine
from fuserec_os.commands.generate import generate
from fuserec_os.commands.index import index
from fuserec_os.commands.ingest import ingest
from fuserec_os.commands.model import model
from fuserec_os.commands.profiles import profiles
from fuserec_os.commands.search import search
from fuserec_os.commands.serve import serve
from fuserec_os.commands.simulate import simulate
from fuserec_os.settings import SETTINGS

_SETTINGS_HELP = "\n".join(f"  {s.name} (default: {s.default or 'unset'})" for s in SETTINGS)


@click.group(cls=FuserecGroup, epilog=f"\b\nSettings (env vars or .env):\n{_SETTINGS_HELP}")
@click.version_option(__version__, prog_name="fuserec")
@click.option("--env-file", default=".env", show_default=True, help="A .env file with FUSEREC_* settings.")
@click.pass_context
def cli(ctx: click.Context, env_file: str) -> None:
    """fuserec-os: personalized e-commerce search on OpenSearch.

    \b
    Everything end to end, in about a minute: fuserec demo
    Typical first run (no cluster needed; an in-memory dev engine is used):
      fuserec engine start
      fuserec generate catalog --n 5000 -o catalog.jsonl
      fuserec ingest products catalog.jsonl
      fuserec search "running shoes" --filter price=..100
      fuserec engine stop

    Point at a real cluster with FUSEREC_OPENSEARCH_URL=https://host:9200.
    """
    ctx.obj = State(env_file)


for _command in (engine, index, ingest, search, serve, profiles, model, ab, simulate, generate, demo, config_cmd):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="fuserec")
