#!/usr/bin/env python3
"""Start, stop and use a real single-node OpenSearch built from Maven Central jars (engines/opensearch/).

    scripts/opensearch_node.py start  [--home DIR] [--heap 1g] [--port 0] [--fresh] [--refresh-interval -1]
    scripts/opensearch_node.py url    [--home DIR]         # its URL, for $(...)
    scripts/opensearch_node.py status [--home DIR]         # JSON, or exit 1
    scripts/opensearch_node.py stop   [--home DIR]
    scripts/opensearch_node.py run    [--home DIR] [--fresh] [--refresh-interval -1] -- COMMAND ...

``start`` runs the node detached and prints its URL, pid, version, start-up time and RSS as JSON. ``run``
starts the node as its child, runs COMMAND with FUSEREC_TEST_OPENSEARCH_URL and FUSEREC_OPENSEARCH_URL set
to it, stops the node whatever happens (also on Ctrl-C), and exits with COMMAND's status;
``make test-opensearch`` uses it with ``--refresh-interval -1``, so that code which searches for what it has
just written without a refresh fails every time rather than now and then.

Needs a JDK 21+ and Maven (the first run downloads about 100 MB of jars and Maven plugins into ~/.m2). Data,
logs and ``node.json`` live under --home (default .fuserec/opensearch-node); --fresh deletes its data first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fuserec_os.engine import opensearch_node as osn  # noqa: E402
from fuserec_os.errors import FuserecError  # noqa: E402

DEFAULT_HOME = REPO / ".fuserec" / "opensearch-node"


def _describe(node: osn.OpenSearchNode) -> dict[str, object]:
    return {
        "url": node.url,
        "pid": node.pid,
        "version": node.version,
        "java": node.java,
        "home": str(node.home),
        "started_in_s": node.started_in,
        "rss_mb": node.rss_mb(),
        "log": str(node.log_path),
    }


def _fresh(home: Path) -> None:
    running = osn.read_recorded(home)
    if running is not None and running.alive():
        raise SystemExit(f"a node still runs from {home} (pid {running.pid}); stop it before --fresh")
    shutil.rmtree(home / "data", ignore_errors=True)


def cmd_start(args: argparse.Namespace) -> int:
    if args.fresh:
        _fresh(args.home)
    node = osn.start_node(
        args.home,
        heap=args.heap,
        http_port=args.port,
        detach=True,
        startup_timeout=args.timeout,
        refresh_interval=args.refresh_interval,
    )
    print(json.dumps(_describe(node)))
    return 0


def cmd_url(args: argparse.Namespace) -> int:
    node = osn.read_recorded(args.home)
    if node is None or not node.alive():
        print(f"no OpenSearch node runs from {args.home}", file=sys.stderr)
        return 1
    print(node.url)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    node = osn.read_recorded(args.home)
    if node is None or not node.alive():
        print(f"no OpenSearch node runs from {args.home}", file=sys.stderr)
        return 1
    info = _describe(node)
    try:
        info["health"] = osn.http_json(f"{node.url}/_cluster/health", 10).get("status")
    except (OSError, ValueError) as exc:
        info["health"] = f"unreachable: {exc}"
    print(json.dumps(info))
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    node = osn.stop_recorded(args.home)
    print(f"stopped the node (pid {node.pid})" if node else f"no OpenSearch node recorded under {args.home}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise SystemExit("run: give the command after --, e.g. run -- pytest tests/integration")
    if args.fresh:
        _fresh(args.home)
    node = osn.start_node(
        args.home,
        heap=args.heap,
        http_port=args.port,
        startup_timeout=args.timeout,
        refresh_interval=args.refresh_interval,
    )
    print(
        f"OpenSearch {node.version} at {node.url} (pid {node.pid}, started in {node.started_in:.1f} s, "
        f"RSS {node.rss_mb()} MiB, log {node.log_path})",
        file=sys.stderr,
        flush=True,
    )
    env = dict(os.environ, FUSEREC_TEST_OPENSEARCH_URL=node.url, FUSEREC_OPENSEARCH_URL=node.url)
    child: subprocess.Popen[bytes] | None = None
    try:
        child = subprocess.Popen(command, env=env)
        return child.wait()
    except KeyboardInterrupt:
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGINT)
            child.wait()
        return 130
    finally:
        rss = node.rss_mb()
        node.stop()
        print(f"stopped OpenSearch (RSS at the end: {rss} MiB)", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    for name, fn in (("start", cmd_start), ("url", cmd_url), ("status", cmd_status), ("stop", cmd_stop)):
        p = sub.add_parser(name)
        p.set_defaults(fn=fn)
    p = sub.add_parser("run")
    p.set_defaults(fn=cmd_run)
    p.add_argument("command", nargs=argparse.REMAINDER)
    for p in sub.choices.values():
        p.add_argument("--home", type=Path, default=DEFAULT_HOME, help="data, logs and node.json (default %(default)s)")
        if p.prog.split()[-1] in ("start", "run"):
            p.add_argument("--heap", default=osn.DEFAULT_HEAP, help="-Xmx (default %(default)s; -Xms is 512m)")
            p.add_argument("--port", type=int, default=0, help="HTTP port (default 0: a free one)")
            p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for start-up")
            p.add_argument("--fresh", action="store_true", help="delete the node's data first")
            p.add_argument(
                "--refresh-interval",
                metavar="VALUE",
                help="default index.refresh_interval of new indices, e.g. -1: nothing is searchable before a "
                "refresh, so code that forgets one fails every time (default: OpenSearch's 1s)",
            )
    args = parser.parse_args(argv)
    args.home = args.home.resolve()
    try:
        return int(args.fn(args))
    except FuserecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
