"""Prometheus text-format metrics, hand-written (no client library): counters and latency histograms.

Everything is updated from the event loop or under one lock (the reload thread), so plain dicts suffice.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(**labels: str) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Histogram:
    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS_S) + 1)
        self.sum = 0.0
        self.n = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS_S, seconds)] += 1
        self.sum += seconds
        self.n += 1


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[str, Histogram] = defaultdict(Histogram)
        self.rerank: dict[str, int] = defaultdict(int)
        self.engine_errors: dict[str, int] = defaultdict(int)
        self.reloads: dict[str, int] = defaultdict(int)
        self.impressions: dict[str, int] = defaultdict(int)
        self.events: dict[str, int] = defaultdict(int)
        self.experiments: dict[str, int] = defaultdict(int)
        self.model_version: str | None = None

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, method, status)] += 1
            self.latency[route].observe(seconds)

    def outcome(self, applied: bool, fallback: str | None) -> None:
        """``applied`` (the model's order), or the fallback that decided the order instead."""
        key = "applied" if applied and fallback is None else (fallback or "engine_order")
        if applied and fallback is not None:
            key = f"applied_{fallback}"  # the model ran through its cold-start path (no_user / no_profile)
        with self._lock:
            self.rerank[key] += 1

    def count(self, table: str, key: str, n: int = 1) -> None:
        with self._lock:
            getattr(self, table)[key] += n

    def render(self) -> str:
        with self._lock:
            out: list[str] = []
            out += [
                "# HELP fuserec_requests_total Proxy requests by route, method and status.",
                "# TYPE fuserec_requests_total counter",
            ]
            for (route, method, status), n in sorted(self.requests.items()):
                out.append(f"fuserec_requests_total{_labels(route=route, method=method, status=str(status))} {n}")
            out += [
                "# HELP fuserec_request_seconds Proxy request latency by route.",
                "# TYPE fuserec_request_seconds histogram",
            ]
            for route, h in sorted(self.latency.items()):
                acc = 0
                for bound, c in zip((*BUCKETS_S, float("inf")), h.counts, strict=False):
                    acc += c
                    le = "+Inf" if bound == float("inf") else repr(bound)
                    out.append(f"fuserec_request_seconds_bucket{_labels(route=route, le=le)} {acc}")
                out.append(f"fuserec_request_seconds_sum{_labels(route=route)} {h.sum:.6f}")
                out.append(f"fuserec_request_seconds_count{_labels(route=route)} {h.n}")
            tables = (
                (
                    "fuserec_rerank_total",
                    "Personalized searches: 'applied' or the fallback used.",
                    "outcome",
                    self.rerank,
                ),
                ("fuserec_engine_errors_total", "Engine failures seen by the proxy.", "kind", self.engine_errors),
                (
                    "fuserec_model_reloads_total",
                    "Model versions loaded or refused by hot reload.",
                    "result",
                    self.reloads,
                ),
                (
                    "fuserec_impressions_total",
                    "Personalized searches logged to the search log.",
                    "result",
                    self.impressions,
                ),
                ("fuserec_events_total", "Behaviour events received on /_fuserec/events.", "result", self.events),
                (
                    "fuserec_experiment_searches_total",
                    "Personalized searches served under an experiment, by experiment/variant.",
                    "variant",
                    self.experiments,
                ),
            )
            for name, help_, label, table in tables:
                out += [f"# HELP {name} {help_}", f"# TYPE {name} counter"]
                for key, n in sorted(table.items()):
                    out.append(f"{name}{_labels(**{label: key})} {n}")
            out += [
                "# HELP fuserec_model_info The model version serving (none: engine order).",
                "# TYPE fuserec_model_info gauge",
                f"fuserec_model_info{_labels(version=self.model_version or 'none')} 1",
            ]
            return "\n".join(out) + "\n"
