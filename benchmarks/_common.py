"""Shared plumbing for the benchmarks: the engines, machine info, statistics, JSON results, summaries.

Engines (``--engines`` of search.py and ingest.py; :func:`parse_engines`, :func:`open_bench_engines`):

* ``osmem``: a fresh in-memory osmem-server (the embedded engine, an imitation of OpenSearch's REST API),
  started for the run and stopped afterwards;
* ``opensearch``: a real single-node OpenSearch (the version ``engines/opensearch/pom.xml`` pins) started by
  ``fuserec_os.engine.opensearch_node.start_node`` in a temporary home (fresh data, ``--heap``), stopped and
  its folder deleted afterwards whatever happens (also on Ctrl-C; the JVM also exits by itself if this
  process dies). Needs a JDK 21+ and, for the first build of the launcher, Maven: without them
  :func:`check_engines` raises ``EngineUnavailableError`` naming what is missing, before anything is measured;
* ``cluster``: ``FUSEREC_BENCH_OPENSEARCH_URL`` (optionally with ``FUSEREC_BENCH_OPENSEARCH_USER``/
  ``_PASSWORD``/``_VERIFY_CERTS``/``_CA_CERTS``), e.g. a docker-compose cluster.

Several engines are opened one after the other, never together, so they do not compete for the CPUs.
``open_bench_engine()`` (no kind) is what the single-engine benchmarks use: the cluster if
``FUSEREC_BENCH_OPENSEARCH_URL`` is set, else a fresh osmem-server. Every index a benchmark creates has a
unique ``fuserec-bench-<random>-`` prefix and is deleted at the end, so a shared cluster is left as it was.

Results go to ``benchmarks/results/<name>.json`` (git-ignored) with the machine, library and engine versions
and a UTC timestamp, so numbers from different machines or engines are never compared blindly.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch

from fuserec_os.engine import close_osmem
from fuserec_os.engine.client import make_client
from fuserec_os.errors import EngineUnavailableError, FuserecError
from fuserec_os.index.mappings import MappingSpec, load_mapping
from fuserec_os.settings import Settings

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "benchmarks" / "results"
MAPPING_FILE = REPO / "mappings" / "products.json"
URL_ENV = "FUSEREC_BENCH_OPENSEARCH_URL"


ENGINE_KINDS = ("osmem", "opensearch", "cluster")
DEFAULT_ENGINES = ("osmem", "opensearch")
DEFAULT_HEAP = "1g"

ENGINES_HELP = (
    "comma-separated engines to measure, one after the other: osmem (a fresh in-memory osmem-server, the "
    "embedded engine), opensearch (a real single-node OpenSearch started for the run in a temporary folder "
    "with fresh data and stopped afterwards; needs a JDK 21+ and, for its first build, Maven), cluster "
    f"(the cluster at {URL_ENV}). Default: {','.join(DEFAULT_ENGINES)}"
)


@dataclass
class BenchEngine:
    """A connected engine for one benchmark run."""

    client: OpenSearch
    url: str
    kind: str  # "osmem" or "opensearch" (started for this run), or "cluster" (FUSEREC_BENCH_OPENSEARCH_URL)
    info: dict[str, Any] = field(default_factory=dict)
    prefix: str = field(default_factory=lambda: f"fuserec-bench-{uuid.uuid4().hex[:8]}-")
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the node's heap and start-up time

    @property
    def version(self) -> str:
        v = self.info.get("version", {})
        answers = f"{v.get('distribution', 'opensearch')} {v.get('number', '?')}"
        if self.kind == "osmem":
            return f"osmem-server {self.extra.get('osmem_server', '?')} (answers as {answers})"
        return answers

    def describe(self) -> dict[str, Any]:
        v = self.info.get("version", {})
        return {
            "kind": self.kind,
            "url": self.url,
            "distribution": v.get("distribution", "opensearch"),
            "version": v.get("number"),
            "lucene_version": v.get("lucene_version"),
            **self.extra,
        }

    def cleanup(self) -> None:
        """Delete every index this run created (matters on a shared cluster)."""
        names = self.client.indices.get(index=f"{self.prefix}*", params={"ignore_unavailable": "true"})
        for name in names:
            self.client.indices.delete(index=name, params={"ignore_unavailable": "true"})


def parse_engines(text: str) -> tuple[str, ...]:
    """``"osmem,opensearch"`` -> ``("osmem", "opensearch")``: known kinds, in the order given, no repeats.

    Raises ValueError naming the valid kinds (argparse shows it as the option's error).
    """
    kinds = [part.strip().lower() for part in text.split(",") if part.strip()]
    if not kinds:
        raise ValueError(f"name at least one engine: {', '.join(ENGINE_KINDS)}")
    unknown = [k for k in kinds if k not in ENGINE_KINDS]
    if unknown:
        raise ValueError(f"unknown engine {', '.join(unknown)}; choose from {', '.join(ENGINE_KINDS)}")
    repeated = sorted({k for k in kinds if kinds.count(k) > 1})
    if repeated:
        raise ValueError(f"engine named twice: {', '.join(repeated)}")
    return tuple(kinds)


def parse_sizes(text: str) -> tuple[int, ...]:
    """``"5000,50000"`` (``_`` and ``k`` allowed: ``50_000``, ``50k``) -> ``(5000, 50000)``, each >= 1, no repeats."""
    sizes = []
    for part in (p.strip().lower().replace("_", "") for p in text.split(",")):
        if not part:
            continue
        try:
            size = int(part[:-1]) * 1000 if part.endswith("k") else int(part)
        except ValueError:
            raise ValueError(f"not a whole number of documents: {part!r}") from None
        if size < 1:
            raise ValueError(f"sizes must be >= 1, got {size}")
        if size in sizes:
            raise ValueError(f"size named twice: {size}")
        sizes.append(size)
    if not sizes:
        raise ValueError("name at least one size, e.g. 5000,50000")
    return tuple(sizes)


def argparse_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type=`` that reports ``parse``'s ValueError message as the option's error."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__.removeprefix("parse_")  # argparse names the type in its messages
    return convert


def check_engines(kinds: Sequence[str]) -> None:
    """Fail before anything is measured if an engine cannot run: raises EngineUnavailableError (opensearch:
    no JDK 21+, no Maven for the first build, a failed build; cluster: FUSEREC_BENCH_OPENSEARCH_URL unset).

    Builds the OpenSearch launcher if it is missing or stale, so the first start later is not slowed by it.
    """
    if "cluster" in kinds and not os.environ.get(URL_ENV, "").strip():
        raise EngineUnavailableError(f"--engines cluster needs {URL_ENV} (the cluster's URL); it is not set")
    if "opensearch" in kinds:
        from fuserec_os.engine import opensearch_node

        jdk = opensearch_node.find_jdk(javac=False)
        opensearch_node.build_launcher(jdk=jdk if jdk.has_javac else None)


@contextmanager
def open_bench_engine(kind: str | None = None, *, heap: str = DEFAULT_HEAP) -> Iterator[BenchEngine]:
    """One engine to measure against, closed (and anything started for it stopped) on leaving the block.

    ``kind`` None: the configured cluster if FUSEREC_BENCH_OPENSEARCH_URL is set, else a fresh osmem-server.
    """
    if kind is None:
        kind = "cluster" if os.environ.get(URL_ENV, "").strip() else "osmem"
    if kind == "cluster":
        with _open_cluster() as engine:
            yield engine
    elif kind == "osmem":
        with _open_osmem() as engine:
            yield engine
    elif kind == "opensearch":
        with _open_opensearch(heap) as engine:
            yield engine
    else:
        raise ValueError(f"unknown engine kind {kind!r}; choose from {', '.join(ENGINE_KINDS)}")


def open_bench_engines(kinds: Sequence[str], *, heap: str = DEFAULT_HEAP) -> Generator[BenchEngine, None, None]:
    """Each engine of ``kinds`` in turn: opened, yielded, closed before the next one opens.

    Checks every engine first (:func:`check_engines`), so a missing JDK fails the run before osmem is
    measured. Use it under ``contextlib.closing`` so that an exception or Ctrl-C in the loop body closes
    the open engine at once::

        with closing(open_bench_engines(kinds)) as engines:
            for engine in engines:
                ...
    """
    check_engines(kinds)
    for kind in kinds:
        with open_bench_engine(kind, heap=heap) as engine:
            yield engine


@contextmanager
def _connected(client: OpenSearch, url: str, kind: str, **extra: Any) -> Iterator[BenchEngine]:
    """A BenchEngine over ``client``, closed afterwards. On a cluster (which outlives the run) every index the
    run created is deleted too; a failing deletion never hides the failure that ended the run."""
    try:
        engine = BenchEngine(client=client, url=url, kind=kind, info=dict(client.info()), extra=extra)
        if kind != "cluster":  # started for this run: its indices go with it
            yield engine
            return
        try:
            yield engine
        except BaseException:
            with suppress(Exception):
                engine.cleanup()
            raise
        engine.cleanup()
    finally:
        client.close()


@contextmanager
def _open_cluster() -> Iterator[BenchEngine]:
    url = os.environ.get(URL_ENV, "").strip()
    if not url:
        raise EngineUnavailableError(f"{URL_ENV} is not set")
    values = {"FUSEREC_OPENSEARCH_URL": url}
    for key in ("USER", "PASSWORD", "VERIFY_CERTS", "CA_CERTS"):
        value = os.environ.get(f"FUSEREC_BENCH_OPENSEARCH_{key}")
        if value:
            values[f"FUSEREC_OPENSEARCH_{key}"] = value
    settings = Settings.from_values(values)
    with _connected(make_client(settings), url, "cluster") as engine:
        yield engine


@contextmanager
def _open_osmem() -> Iterator[BenchEngine]:
    from osmem_server import OsmemServer

    server = OsmemServer.start(japanese=False)
    try:
        client = make_client(Settings(), [server.url])
        with _connected(client, server.url, "osmem", osmem_server=_version("osmem-server")) as engine:
            yield engine
    finally:
        close_osmem(server)


@contextmanager
def _open_opensearch(heap: str) -> Iterator[BenchEngine]:
    from fuserec_os.engine import opensearch_node

    with tempfile.TemporaryDirectory(prefix="fuserec-bench-node-") as home:
        print(f"starting OpenSearch (heap {heap}) in {home} ...", flush=True)
        # a child of this process: it also exits if this process dies without stopping it
        node = opensearch_node.start_node(Path(home), heap=heap, detach=False)
        try:
            print(
                f"OpenSearch {node.version} at {node.url} (pid {node.pid}, started in {node.started_in:.1f} s, "
                f"RSS {node.rss_mb()} MiB)",
                flush=True,
            )
            extra = {"heap": heap, "java": node.java, "started_in_s": node.started_in, "rss_mb_at_start": node.rss_mb()}
            with _connected(make_client(Settings(), [node.url]), node.url, "opensearch", **extra) as engine:
                yield engine
        finally:
            node.stop()


def describe_engine(desc: dict[str, Any]) -> str:
    """``osmem-server 0.9 (answers as opensearch 3.8.0)`` / ``opensearch 3.9.0, Lucene 10.5.1, heap 1g, ...``."""
    answers = f"{desc.get('distribution', 'opensearch')} {desc.get('version', '?')}"
    if desc["kind"] == "osmem":
        return f"osmem-server {desc.get('osmem_server', '?')} in memory (answers as {answers})"
    parts = [answers, f"Lucene {desc.get('lucene_version', '?')}"]
    if desc["kind"] == "opensearch":
        parts += [f"heap {desc.get('heap')}", f"Java {desc.get('java')}", f"started in {desc.get('started_in_s')} s"]
    parts.append(desc["url"])
    return ", ".join(parts)


def osmem_run(runs: Sequence[Mapping[str, Any]], size: int) -> Mapping[str, Any] | None:
    """The osmem run of ``size`` among a benchmark's runs (each with ``size`` and ``engine.kind``), if any:
    what the other engines' side-by-side ratios divide by."""
    return next((r for r in runs if r["size"] == size and r["engine"]["kind"] == "osmem"), None)


def ratios_vs_osmem(
    runs: Sequence[Mapping[str, Any]], values: Callable[[Mapping[str, Any]], Mapping[str, float]]
) -> list[dict[str, Any]]:
    """Every non-osmem run's ``values(run)`` divided by the osmem run's at the same size (where osmem ran),
    keyed ``<name>_ratio``: the side-by-side column of every engine-switch benchmark."""
    out = []
    for run in runs:
        base = osmem_run(runs, run["size"])
        if base is None or run is base:
            continue
        mine, theirs = values(run), values(base)
        ratios = {f"{k}_ratio": v / theirs[k] for k, v in mine.items()}
        out.append({"size": run["size"], "engine": run["engine"]["kind"], "versus": "osmem", **ratios})
    return out


def run_engines_main(run: Callable[[Any], int], args: Any) -> int:
    """Run a side-by-side benchmark's ``run(args)``: a missing JDK or Maven (or any FuserecError) prints what is
    missing and exits with its code; Ctrl-C exits 130 after every engine started for the run was stopped."""
    try:
        return run(args)
    except FuserecError as exc:  # e.g. no JDK 21+ or no Maven for opensearch: what is missing, exit 3
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: every engine started for the run has been stopped", file=sys.stderr)
        return 130


def load_spec() -> MappingSpec:
    return load_mapping(MAPPING_FILE, "products")


# ------------------------------------------------------------------------------------------ machine info


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _usable_cpus() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def machine_info() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": _usable_cpus(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "versions": {
            "fuserec-os": _version("fuserec-os"),
            "opensearch-py": _version("opensearch-py"),
            "osmem-server": _version("osmem-server"),
        },
    }


# ------------------------------------------------------------------------------------------ statistics


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (numpy's default), ``p`` in 0..100."""
    if not values:
        return math.nan
    data = sorted(values)
    if len(data) == 1:
        return float(data[0])
    k = (len(data) - 1) * p / 100.0
    lo = math.floor(k)
    hi = math.ceil(k)
    if lo == hi:
        return float(data[lo])
    return float(data[lo] + (data[hi] - data[lo]) * (k - lo))


def median(values: Sequence[float]) -> float:
    return percentile(values, 50.0)


def verdict(met: bool) -> str:
    return "MET" if met else "MISSED"


# ------------------------------------------------------------------------------------------ output


def write_results(name: str, payload: Mapping[str, Any], results_dir: Path | None = None) -> Path:
    """Write ``<results_dir>/<name>.json`` with machine info and a UTC timestamp; returns the path."""
    out_dir = results_dir or RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": name,
        "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine_info(),
        **payload,
    }
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def print_summary(title: str, rows: Sequence[tuple[str, str]], engine: BenchEngine | None = None) -> None:
    """A readable block: a title, the engine and machine, then aligned ``label  value`` rows."""
    width = max((len(label) for label, _ in rows), default=0)
    print()
    print(f"== {title} ==")
    if engine is not None:
        print(f"engine: {engine.version} ({engine.kind}, {engine.url})")
    print_machine()
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    sys.stdout.flush()


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> list[str]:
    """Aligned text table lines: a header, a rule, then the rows. ``align`` has one letter per column, ``l``
    or ``r`` (default: the first column left, the others right, as they hold numbers). Every row must have
    as many cells as ``headers``."""
    align = align or "l" + "r" * (len(headers) - 1)
    if len(align) != len(headers) or set(align) - {"l", "r"}:
        raise ValueError(f"align {align!r} needs one l or r per column ({len(headers)})")
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row {list(row)} has {len(row)} cells, the header {len(headers)}")
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [str(c).ljust(w) if a == "l" else str(c).rjust(w) for c, w, a in zip(cells, widths, align, strict=True)]
        return "  ".join(parts).rstrip()

    return [line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def ratio_text(numerator: float | None, denominator: float | None) -> str:
    """``numerator/denominator`` as ``"0.81x"``; ``"-"`` when either is missing, zero or not finite."""
    if numerator is None or denominator is None or not denominator:
        return "-"
    value = numerator / denominator
    return f"{value:.2f}x" if math.isfinite(value) else "-"


def print_machine() -> None:
    """One line: usable CPUs, Python and the client and osmem versions."""
    info = machine_info()
    v = info["versions"]
    print(
        f"machine: {info['usable_cpus']} usable CPU(s) of {info['cpu_count']}, Python {info['python']}, "
        f"opensearch-py {v['opensearch-py']}, osmem-server {v['osmem-server']}"
    )
