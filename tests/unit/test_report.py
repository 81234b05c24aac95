"""The evaluation report: terminal table, JSON and the self-contained HTML file."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fuserec_os.features.spec import DEFAULT_FEATURES, FEATURES, MISSING_SUFFIX, SCOPES
from fuserec_os.learn.evaluate import EvalReport, evaluate
from fuserec_os.learn.report import render_html, render_table, svg_bars, svg_lines, write_html, write_json
from fuserec_os.rerank.blend import Gate

EVIL = "<b>x</b>"


def make_report(extra_method: str | None = None) -> EvalReport:
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(30), 8)
    labels = rng.choice(4, size=groups.size, p=[0.7, 0.15, 0.1, 0.05])
    methods = {
        "engine": np.tile(np.arange(8, 0, -1, dtype=np.float64), 30),
        "mlp": 1 / (1 + np.exp(-(labels + rng.normal(size=groups.size)))),
        "oracle": labels.astype(np.float64),
    }
    if extra_method:
        methods[extra_method] = rng.random(groups.size)
    user = np.repeat(rng.choice(["none", "light", "heavy"], size=30), 8)
    query = np.repeat(rng.choice(["broad", "specific"], size=30), 8)
    return evaluate(methods, labels, groups, {"user": user, "query": query}, probabilistic={"mlp"})


def test_render_table_has_every_method_metric_delta_and_segment() -> None:
    rep = make_report()
    text = render_table(rep)
    for name in (*rep.methods, *rep.metric_names, "user", "query", "heavy", "broad", "captured"):
        assert name in text
    mlp_line = next(line for line in text.splitlines() if line.startswith("mlp "))
    delta = rep.overall.delta_vs_engine["mlp"]["ndcg@10"]
    assert delta is not None
    assert f"({delta:+.4f})" in mlp_line
    engine_line = next(line for line in text.splitlines() if line.startswith("engine "))
    assert "(" not in engine_line  # no delta of the engine against itself
    assert f"n={rep.segments['user']['heavy'].n_searches}" in text
    # columns are right-aligned: every header's last character sits above the last character of each value
    header, *rows = text.split("\n\n")[0].splitlines()[1:]
    ends = [m.end() for m in re.finditer(r"\S+", header)]
    for row in rows:
        for end in ends[1:]:
            if end <= len(row):
                assert row[end - 1] != " " and (end == len(row) or row[end] == " "), (row, end)
    assert render_table(rep, metrics=["mrr"]).count("ndcg@10") == 2  # only the per-segment tables
    with pytest.raises(ValueError, match="unknown metrics"):
        render_table(rep, metrics=["precision"])


def test_write_json_round_trips(tmp_path: Path) -> None:
    rep = make_report()
    path = write_json(rep, tmp_path / "out" / "eval.json", {"model": "v3", "seed": np.int64(7), "nan": float("nan")})
    doc = json.loads(path.read_text())
    assert doc["evaluation"] == json.loads(json.dumps(rep.as_dict()))
    assert doc["model"] == "v3" and doc["seed"] == 7 and doc["nan"] is None
    with pytest.raises(ValueError, match="evaluation"):
        write_json(rep, tmp_path / "x.json", {"evaluation": 1})


def test_write_html_is_one_self_contained_escaped_file(tmp_path: Path) -> None:
    rep = make_report(extra_method=EVIL)
    history = [{"epoch": i, "loss": 1.0 / i, "val_loss": 1.2 / i, "valid_ndcg": 0.5 + 0.01 * i} for i in range(1, 8)]
    out = tmp_path / "report"
    path = write_html(rep, out / "eval.html", history=history, title="run <1> & co", meta={"model": "<v2>"})
    assert [p.name for p in out.iterdir()] == ["eval.html"]
    doc = path.read_text(encoding="utf-8")
    assert doc.startswith("<!DOCTYPE html>")
    assert doc.count("<svg") >= 1 + len(rep.segments) + 2  # overall, per segment, loss + validation curves
    for method in ("engine", "mlp", "oracle"):
        assert method in doc
    assert EVIL not in doc
    assert "&lt;b&gt;x&lt;/b&gt;" in doc
    assert "run &lt;1&gt; &amp; co" in doc and "&lt;v2&gt;" in doc
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*https?://""", doc, flags=re.I)
    assert "http://" not in doc and "https://" not in doc and "<script" not in doc
    assert "valid_ndcg" in doc and "epoch" in doc and "polyline" in doc


def test_write_html_without_history_has_no_training_section(tmp_path: Path) -> None:
    doc = write_html(make_report(), tmp_path / "r.html").read_text()
    assert "<svg" in doc and "Training" not in doc and "polyline" not in doc


def test_svg_bars_scale_labels_and_missing_values() -> None:
    svg = svg_bars(["a", "b"], {"m1": [0.5, None], "m2": [1.0, 0.25]}, title="t", y_label="NDCG@10")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    bars = re.findall(r'<rect class="bar" x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"', svg)
    assert len(bars) == 3  # the None value draws no bar
    heights = sorted(float(h) for _, h in bars)
    assert heights[2] == pytest.approx(2 * heights[1], rel=1e-2) == pytest.approx(4 * heights[0], rel=1e-2)
    assert "NDCG@10" in svg and ">a<" in svg and ">b<" in svg


def test_svg_lines_breaks_on_missing_values() -> None:
    svg = svg_lines([1, 2, 3, 4, 5], {"loss": [1.0, 0.8, None, 0.5, 0.4]}, x_label="epoch", y_label="loss")
    assert svg.count("<polyline") == 2  # the gap at epoch 3 splits the line
    assert "epoch" in svg
    single = svg_lines([1], {"loss": [0.3]})
    assert "<circle" in single


class _Text(HTMLParser):
    """The text a reader sees (no tags, no attributes, no CSS), entities decoded."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skip += tag in ("style", "script")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("style", "script")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def visible_text(fragment: str) -> str:
    parser = _Text()
    parser.feed(fragment)
    parser.close()
    return " ".join(parser.parts)


def training_meta() -> dict[str, object]:
    """What ``train_job.run_training`` passes as ``meta`` (same keys, same value shapes)."""
    columns = DEFAULT_FEATURES.columns
    gate = Gate(alpha_no_history=0.0, alpha_light=0.3, alpha_heavy=0.7)
    return {
        "dataset": {  # Dataset.summary()
            "searches": {"train": 5210, "valid": 640, "test": 655},
            "rows": 312480,
            "positives": 20544,
            "features": len(columns),
            "valid_from": "2026-03-01T00:00:00+00:00",
            "test_from": "2026-03-08T12:30:00+00:00",
        },
        "loss": "pointwise",
        "decision": "auto: kept pointwise, valid NDCG@10 0.6123 >= (tie keeps pointwise) listwise 0.6123",
        "gate": gate.__dict__,
        "best_epoch": np.int64(7),
        "features": list(columns),
    }


def meta_section(doc: str) -> str:
    m = re.search(r'<section class="meta">(.*?)</section>', doc, flags=re.S)
    assert m, "the header (meta) section is missing"
    return m.group(1)


def test_html_header_is_readable_tables_not_python_reprs() -> None:
    doc = render_html(make_report(), meta=training_meta(), title="fuserec model evaluation")
    doc_text = visible_text(doc)
    for marker in ("{'", "['", "None", "True", "False"):
        assert marker not in doc_text, marker
    head = meta_section(doc)
    # one table per section: the scalars, the dataset summary, the gate, the features
    for heading in ("Run", "Dataset", "Gate", "Features"):
        assert re.search(rf"<h3>{heading}</h3>\s*<table", head), heading
    text = visible_text(head)
    for marker in ("None", "True", "False", "{", "}", "[", "]", "'", '"', "np.int64"):
        assert marker not in text, (marker, text)
    # the dataset: nested split counts as a small table, numbers grouped, timestamps ISO 8601 UTC
    assert re.search(r"searches</th>\s*<td[^>]*>\s*<table", head)
    assert "312,480" in text and "5,210" in text
    assert "2026-03-01T00:00:00Z" in text and "2026-03-08T12:30:00Z" in text and "+00:00" not in text
    # the gate: every alpha and threshold, short numbers
    for label, value in (("alpha light", "0.3"), ("alpha heavy", "0.7"), ("heavy min events", "20")):
        assert re.search(rf"<th[^>]*>{label}</th>\s*<td[^>]*>{value}</td>", head), label
    assert re.search(r"<th[^>]*>best epoch</th>\s*<td[^>]*>7</td>", head)


def test_html_header_groups_features_by_scope_and_folds_missing_indicators() -> None:
    meta = training_meta()
    head = meta_section(render_html(make_report(), meta=meta))
    table = re.search(r'<table class="features">.*?</table>', head, flags=re.S)
    assert table
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table.group(0), flags=re.S)[1:]:
        cells = [visible_text(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, flags=re.S)]
        rows[cells[0]] = cells
    assert list(rows) == list(SCOPES)  # one row per scope, in the registry's order
    for scope, cells in rows.items():
        names = [d.name for d in FEATURES.values() if d.scope == scope]
        assert cells[1] == str(len(names))
        assert [n.strip() for n in cells[2].split(",")] == names
        assert cells[3] == "each has one"  # every default feature can be missing
    assert MISSING_SUFFIX not in visible_text(head)
    n = len(FEATURES)
    assert f"{n} features + {n} missing indicators = {2 * n} columns" in visible_text(head)


def test_html_header_partial_missing_indicators_and_unknown_names() -> None:
    meta = {"features": ["bm25", "bm25_norm", "rating", "legacy_feature", "bm25" + MISSING_SUFFIX]}
    head = meta_section(render_html(make_report(), meta=meta))
    text = visible_text(head)
    assert "1 of 2: bm25" in text  # only bm25 has its indicator column here
    assert re.search(r"<td>item</td>.*?>rating</span></td><td>none</td>", head)  # rating has none
    assert "other" in text and "legacy_feature" in text
    assert "[" not in text and "'" not in text


def test_html_header_formats_values_and_escapes() -> None:
    berlin = timezone(timedelta(hours=1))
    meta = {
        "trained_at": datetime(2026, 3, 1, 1, 0, tzinfo=berlin),
        "naive": datetime(2026, 3, 1, 0, 0, 0, 250000),
        "cut": pd.Timestamp("2026-03-02 01:00", tz="Europe/Berlin"),
        "cut_ns": np.datetime64("2026-03-03T00:00:00.000000000"),
        "never": pd.NaT,
        "registered": True,
        "dry_run": False,
        "version": None,
        "ratio": 0.123456789,
        "tiny": 1.5e-7,
        "undefined": float("nan"),
        "tags": ["a", "b"],
        "empty": [],
        "nested": {"inner": {"deep": None}, "<k>": "<v>"},
    }
    head = meta_section(render_html(make_report(), meta=meta))
    text = visible_text(head)
    assert "2026-03-01T00:00:00Z" in text and "2026-03-01T00:00:00.250000Z" in text
    assert "2026-03-02T00:00:00Z" in text and "2026-03-03T00:00:00Z" in text
    assert re.search(r"never</th>\s*<td>n/a</td>", head) and "NaT" not in text
    assert re.search(r"registered</th>\s*<td[^>]*>yes</td>", head)
    assert re.search(r"dry run</th>\s*<td[^>]*>no</td>", head)
    assert re.search(r"version</th>\s*<td[^>]*>n/a</td>", head)
    assert "0.1235" in text and "1.5e-07" in text and "a, b" in text
    assert re.search(r"undefined</th>\s*<td>n/a</td>", head)
    assert re.search(r"empty</th>\s*<td>none</td>", head)
    assert head.count("<table") == 3  # run, nested, nested.inner
    assert "<k>" not in head and "&lt;k&gt;" in head and "&lt;v&gt;" in head
    for marker in ("None", "True", "False", "{", "[", "'", "nan"):
        assert marker not in text, marker
