#!/usr/bin/env python3
"""Fault probes: bad inputs and engine faults tried as a new user would, each checked for silent loss, tracebacks
and leaked secrets. A person can run it after any change; every probe prints one line with what happened.

Each probe runs ``fuserec`` as a separate process in a fresh folder with its own state folder and, where it
needs one, its own background embedded engine. Every output line of every probe is checked for a traceback and
for the probe secrets; then the probe's own check says whether the behaviour held (rows rejected with reasons,
nothing lost, a clear error naming what to fix).

Run from the repo root (after `make install`):  .venv/bin/python scripts/probe_faults.py [-k NAME]
Exits 1 if any probe fails. Takes a few minutes (engines start and stop; the training probe trains).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FUSEREC = [sys.executable, "-m", "fuserec_os"]
SECRET = "pr0be-s3cret-PW"


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def all(self) -> str:
        return self.out + self.err


class Shop:
    """A folder with its own state folder; ``fuserec`` runs there as a user would."""

    def __init__(self, root: Path, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FUSEREC_")}
        self.env["FUSEREC_STATE_DIR"] = str(root / "state")
        self.env.update(env or {})
        self.runs: list[Run] = []

    def fuserec(self, *args: str, timeout: float = 600) -> Run:
        proc = subprocess.run(
            [*FUSEREC, *args], cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        run = Run(proc.returncode, proc.stdout, proc.stderr)
        self.runs.append(run)
        return run

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(text, encoding="utf-8")
        return path

    def engine_pid(self) -> int:
        return int(json.loads((self.root / "state" / "engine.json").read_text())["pid"])

    def stop(self) -> None:
        self.fuserec("engine", "stop", "--no-save", timeout=120)


def rows(n: int, start: int = 0) -> str:
    return "".join(
        json.dumps({"product_id": f"P{i}", "title": f"Thing {i}", "price": 10 + i}) + "\n"
        for i in range(start, start + n)
    )


def rejects(shop: Shop, name: str) -> list[dict[str, object]]:
    path = shop.root / name
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# ------------------------------------------------------------------------------------------------ probes
# Each returns (held, what happened in a few words).
Probe = Callable[[Shop], tuple[bool, str]]


def probe_url_password(shop: Shop) -> tuple[bool, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    shop.env.update(
        FUSEREC_OPENSEARCH_URL=f"http://alice:{SECRET}@127.0.0.1:{port}",
        FUSEREC_OPENSEARCH_USER="alice",
        FUSEREC_OPENSEARCH_PASSWORD=SECRET,
        FUSEREC_OPENSEARCH_RETRIES="0",
    )
    runs = [shop.fuserec(*a) for a in (["search", "x"], ["index", "status"], ["config"], ["config", "--json"])]
    failed = runs[0].code == runs[1].code == 3  # engine unreachable, said without the secret
    return failed, f"search exit {runs[0].code}, index status exit {runs[1].code}; config shows the URL masked"


def probe_timeout_nan(shop: Shop) -> tuple[bool, str]:
    shop.env["FUSEREC_OPENSEARCH_TIMEOUT"] = "nan"
    r = shop.fuserec("config")
    return r.code == 2 and "FUSEREC_OPENSEARCH_TIMEOUT" in r.err, f"exit {r.code}: {r.err.strip()[:100]}"


def probe_unknown_setting(shop: Shop) -> tuple[bool, str]:
    shop.env["FUSEREC_INDEX_PREFX"] = "x-"
    r = shop.fuserec("config")
    held = "Did you mean FUSEREC_INDEX_PREFIX?" in r.err and "OPENSEARCH_USER" not in r.err
    return held, r.err.strip().splitlines()[0][:110] if r.err.strip() else "no warning"


def probe_huge_number_in_query(shop: Shop) -> tuple[bool, str]:
    shop.fuserec("engine", "start")
    try:
        shop.fuserec("ingest", "products", str(shop.write("c.jsonl", rows(5))), "--no-progress")
        r = shop.fuserec("search", "review_count:99999999999999999999")
        return r.code == 0 and "beyond what review_count holds" in r.err, f"exit {r.code}; {r.err.strip()[:90]}"
    finally:
        shop.stop()


def probe_multibyte_id(shop: Shop) -> tuple[bool, str]:
    shop.fuserec("engine", "start")
    try:
        text = rows(1500) + json.dumps({"product_id": "é" * 300, "title": "Long id"}) + "\n" + rows(10, 2000)
        r = shop.fuserec("ingest", "products", str(shop.write("c.jsonl", text)), "--no-progress", "--json")
        rep = json.loads(r.out) if r.out.strip().startswith("{") else {}
        bad = rejects(shop, "c.jsonl.rejects.jsonl")
        held = r.code == 1 and rep.get("indexed") == 1510 and len(bad) == 1 and "bytes" in json.dumps(bad)
        return held, f"exit {r.code}, indexed {rep.get('indexed')}, rejected {len(bad)}"
    finally:
        shop.stop()


def probe_ragged_csv(shop: Shop) -> tuple[bool, str]:
    shop.fuserec("engine", "start")
    try:
        lines = ["product_id,title,price"] + [f"P{i},Thing {i},{i}" for i in range(3000)]
        lines.insert(2500, 'P9999,"broken, "row,1,2,3')
        r = shop.fuserec("ingest", "products", str(shop.write("c.csv", "\n".join(lines) + "\n")), "--no-progress")
        said = r.all.lower()
        held = r.code != 0 and ("indexed" in said or "rejected" in said) and "line" in said
        return held, f"exit {r.code}: {(r.err or r.out).strip()[-140:]}"
    finally:
        shop.stop()


def probe_nested_json(shop: Shop) -> tuple[bool, str]:
    shop.fuserec("engine", "start")
    try:
        deep = "[" * 100_000 + "]" * 100_000
        text = rows(3) + deep + "\n" + rows(2, 10)
        r = shop.fuserec("ingest", "products", str(shop.write("c.jsonl", text)), "--no-progress")
        bad = rejects(shop, "c.jsonl.rejects.jsonl")
        return r.code == 1 and len(bad) == 1, f"exit {r.code}, rejected {len(bad)}"
    finally:
        shop.stop()


def probe_non_finite_price(shop: Shop) -> tuple[bool, str]:
    shop.fuserec("engine", "start")
    try:
        text = (
            rows(2)
            + '{"product_id": "N1", "title": "nan", "price": NaN}\n'
            + '{"product_id": "N2", "title": "big", "price": 1e308}\n'
        )
        r = shop.fuserec("ingest", "products", str(shop.write("c.jsonl", text)), "--no-progress")
        bad = rejects(shop, "c.jsonl.rejects.jsonl")
        ids = sorted(str(b.get("product_id")) for b in bad)
        return r.code == 1 and ids == ["N1", "N2"], f"exit {r.code}, rejected {ids}"
    finally:
        shop.stop()


def probe_conflicting_event_id(shop: Shop) -> tuple[bool, str]:
    shop.fuserec("engine", "start")
    try:
        shop.fuserec("ingest", "products", str(shop.write("c.jsonl", rows(3))), "--no-progress")
        base = {"event_id": "E1", "user_id": "U1", "product_id": "P1", "timestamp": "2026-01-01T00:00:00Z"}
        text = "".join(json.dumps({**base, "type": t}) + "\n" for t in ("click", "purchase"))
        r = shop.fuserec("ingest", "events", str(shop.write("e.jsonl", text)), "--no-progress")
        bad = rejects(shop, "e.jsonl.rejects.jsonl")
        return r.code == 1 and len(bad) >= 1 and "E1" in json.dumps(bad), f"exit {r.code}, rejected {len(bad)}"
    finally:
        shop.stop()


def probe_empty_files(shop: Shop) -> tuple[bool, str]:
    a = shop.fuserec("ingest", "products", str(shop.write("empty.jsonl", "")), "--no-progress")
    b = shop.fuserec("ingest", "products", str(shop.write("empty.csv", "")), "--no-progress")
    return a.code == b.code != 0, f"empty .jsonl exit {a.code}, empty .csv exit {b.code}"


def probe_long_impressions(shop: Shop) -> tuple[bool, str]:
    shop.fuserec("engine", "start")
    try:
        row = {"request_id": "R1", "user_id": "U1", "timestamp": "2026-01-01T00:00:00Z"}
        text = json.dumps({**row, "product_ids": [f"P{i}" for i in range(5000)]}) + "\n"
        text += json.dumps({**row, "request_id": "R2", "product_ids": ["P1", "P2"]}) + "\n"
        r = shop.fuserec("ingest", "impressions", str(shop.write("i.jsonl", text)), "--no-progress")
        bad = rejects(shop, "i.jsonl.rejects.jsonl")
        return r.code == 1 and len(bad) == 1, f"exit {r.code}, rejected {len(bad)}"
    finally:
        shop.stop()


def probe_busy_engine(shop: Shop) -> tuple[bool, str]:
    shop.fuserec("engine", "start")
    pid = shop.engine_pid()
    os.kill(pid, signal.SIGSTOP)
    for _ in range(250):  # delivered asynchronously: wait until the kernel says stopped
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T":
            break
        time.sleep(0.02)
    try:
        shop.env["FUSEREC_ENGINE_WAIT"] = "3"
        status = shop.fuserec("engine", "status")
        used = shop.fuserec("index", "status")
        record_kept = (shop.root / "state" / "engine.json").exists()
        held = status.code != 0 and "busy" in status.all.lower() and used.code != 0 and record_kept
        held = held and "temporary" not in used.all
        summary = f"status exit {status.code}, index status exit {used.code}, record kept {record_kept}"
    finally:
        os.kill(pid, signal.SIGCONT)
    stop = shop.fuserec("engine", "stop")
    return held and stop.code == 0 and "saved" in stop.out, summary + f", stop: {stop.out.strip()[:60]}"


def probe_killed_engine(shop: Shop) -> tuple[bool, str]:
    shop.fuserec("engine", "start")
    shop.fuserec("ingest", "products", str(shop.write("c.jsonl", rows(20))), "--no-progress")
    shop.fuserec("engine", "stop")
    shop.fuserec("engine", "start")
    shop.fuserec("ingest", "products", str(shop.write("d.jsonl", rows(5, 100))), "--no-progress")
    os.kill(shop.engine_pid(), signal.SIGKILL)
    time.sleep(0.5)
    again = shop.fuserec("engine", "start")
    try:
        said = again.all.lower()
        return "lost" in said and "save" in said, again.all.strip().replace("\n", " ")[:140]
    finally:
        shop.stop()


def probe_truncated_save(shop: Shop) -> tuple[bool, str]:
    shop.fuserec("engine", "start")
    shop.fuserec("ingest", "products", str(shop.write("c.jsonl", rows(20))), "--no-progress")
    shop.fuserec("index", "create")
    shop.fuserec("engine", "stop")
    data = shop.root / "state" / "engine-data"
    victim = sorted(data.glob("*.ndjson"))[0]
    victim.write_text(victim.read_text()[: len(victim.read_text()) // 2])
    again = shop.fuserec("engine", "start")
    try:
        return again.code == 0 and victim.name.split(".")[0] in again.all, again.all.strip().replace("\n", " ")[:140]
    finally:
        shop.stop()


def probe_training_on_ten_events(shop: Shop) -> tuple[bool, str]:
    shop.fuserec("engine", "start")
    try:
        shop.fuserec("ingest", "products", str(shop.write("c.jsonl", rows(5))), "--no-progress")
        events = [
            {"user_id": f"U{i % 3}", "type": "click", "product_id": f"P{i % 5}", "query": "thing",
             "request_id": f"R{i}", "position": 1 + i % 3, "timestamp": f"2026-01-0{1 + i % 9}T10:00:00Z"}
            for i in range(10)
        ]  # fmt: skip
        shop.fuserec("ingest", "events", str(shop.write("e.jsonl", "".join(json.dumps(e) + "\n" for e in events))))
        r = shop.fuserec("model", "train", "--report-dir", str(shop.root / "reports"))
        listed = shop.fuserec("model", "list")
        held = r.code == 2 and "need at least" in r.err and "v1" not in listed.out
        return held, f"exit {r.code}: {r.err.strip()[:120]}"
    finally:
        shop.stop()


PROBES: dict[str, Probe] = {
    "secret in the cluster URL and password": probe_url_password,
    "FUSEREC_OPENSEARCH_TIMEOUT=nan": probe_timeout_nan,
    "unknown setting FUSEREC_INDEX_PREFX": probe_unknown_setting,
    "review_count:99999999999999999999": probe_huge_number_in_query,
    "300 x é product id in a 1,511-row catalog": probe_multibyte_id,
    "ragged CSV row at line 2,501": probe_ragged_csv,
    "100,000-deep nested JSON line": probe_nested_json,
    "NaN and 1e308 prices": probe_non_finite_price,
    "same event_id, different content": probe_conflicting_event_id,
    "empty .jsonl vs empty .csv": probe_empty_files,
    "impressions row with 5,000 product ids": probe_long_impressions,
    "engine busy (SIGSTOP) during commands": probe_busy_engine,
    "engine killed after unsaved writes": probe_killed_engine,
    "truncated saved index file": probe_truncated_save,
    "training on 10 events": probe_training_on_ten_events,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-k", metavar="TEXT", help="run only the probes whose name contains TEXT")
    args = p.parse_args(argv)
    failed = 0
    for name, probe in PROBES.items():
        if args.k and args.k.lower() not in name.lower():
            continue
        with tempfile.TemporaryDirectory(prefix="fuserec-probe-") as tmp:
            shop = Shop(Path(tmp))
            try:
                held, what = probe(shop)
            except Exception as exc:  # a probe that crashes is a failed probe, said as such
                held, what = False, f"probe crashed: {type(exc).__name__}: {exc}"
            finally:
                pidfile = Path(tmp) / "state" / "engine.json"
                if pidfile.exists():  # never leave an engine behind
                    with contextlib.suppress(OSError, ValueError, KeyError):
                        os.kill(int(json.loads(pidfile.read_text())["pid"]), signal.SIGKILL)
            everything = "".join(r.all for r in shop.runs)
            if "Traceback" in everything:
                held, what = False, "a traceback was printed; " + what
            if SECRET in everything:
                held, what = False, "the secret was printed; " + what
        failed += not held
        print(f"{'ok  ' if held else 'FAIL'}  {name:<44}  {what}", flush=True)
    print("every probe held" if not failed else f"{failed} probe(s) failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
