"""The evaluation report: terminal table, JSON and the self-contained HTML file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from fuserec_os.learn.evaluate import EvalReport, evaluate
from fuserec_os.learn.report import render_table, svg_bars, svg_lines, write_html, write_json

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
