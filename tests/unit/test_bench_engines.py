"""The benchmarks' engine switch and side-by-side tables, without starting an engine or timing anything:
parsing ``--engines`` and ``--sizes``, failing before any measurement when an engine cannot run, the table
layout, and the ratios against osmem."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import _common, ingest, search
from fuserec_os.errors import EngineUnavailableError


def test_parse_engines_keeps_the_order_given_and_refuses_unknown_or_repeated_kinds() -> None:
    assert _common.parse_engines("osmem,opensearch") == ("osmem", "opensearch")
    assert _common.parse_engines(" OpenSearch , osmem ") == ("opensearch", "osmem")
    assert _common.parse_engines("cluster") == ("cluster",)
    with pytest.raises(ValueError, match="unknown engine elastic; choose from osmem, opensearch, cluster"):
        _common.parse_engines("osmem,elastic")
    with pytest.raises(ValueError, match="named twice: osmem"):
        _common.parse_engines("osmem,osmem")
    with pytest.raises(ValueError, match="at least one engine"):
        _common.parse_engines(" , ")


def test_parse_sizes_accepts_k_and_underscores_and_refuses_nonsense() -> None:
    assert _common.parse_sizes("5000,50000") == (5000, 50000)
    assert _common.parse_sizes("5k, 50_000") == (5000, 50000)
    for bad, message in (("0", ">= 1"), ("5k,5000", "twice"), ("lots", "whole number"), ("", "at least one")):
        with pytest.raises(ValueError, match=message):
            _common.parse_sizes(bad)


def test_both_benchmarks_default_to_both_engines_and_report_a_bad_engine_as_an_option_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = search.parse_args([])
    assert args.engines == ("osmem", "opensearch")
    assert args.sizes == (5000, 50000)
    assert search.parse_args(["--n", "700", "--engines", "osmem"]).sizes == (700,)
    args = ingest.parse_args([])
    assert (args.engines, args.sizes) == (("osmem", "opensearch"), (5000,))
    assert ingest.parse_args(["--sizes", "1k,2k"]).sizes == (1000, 2000)
    with pytest.raises(SystemExit) as exc:
        ingest.parse_args(["--engines", "osmem,solr"])
    assert exc.value.code == 2
    assert "argument --engines: unknown engine solr" in capsys.readouterr().err


def test_a_missing_jdk_fails_before_any_engine_is_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    from fuserec_os.engine import opensearch_node

    def no_jdk(**_: Any) -> Any:
        raise EngineUnavailableError("OpenSearch 3.9.0 needs a JDK 21 or newer; found no Java at all.")

    opened: list[str] = []
    monkeypatch.setattr(opensearch_node, "find_jdk", no_jdk)
    monkeypatch.setattr(_common, "open_bench_engine", lambda kind, **_: opened.append(kind))
    with pytest.raises(EngineUnavailableError, match="needs a JDK 21"):
        next(_common.open_bench_engines(("osmem", "opensearch")))
    assert opened == []  # osmem was not measured first


def test_the_cluster_engine_needs_its_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_common.URL_ENV, raising=False)
    with pytest.raises(EngineUnavailableError, match="FUSEREC_BENCH_OPENSEARCH_URL"):
        _common.check_engines(("cluster",))


def test_format_table_aligns_columns_and_checks_the_row_width() -> None:
    lines = _common.format_table(
        ["size", "engine", "median"], [["5,000", "osmem", "9.10 ms"], ["50,000", "os", "12 ms"]], "rlr"
    )
    assert lines == [
        "  size  engine   median",
        "------  ------  -------",
        " 5,000  osmem   9.10 ms",
        "50,000  os        12 ms",
    ]
    with pytest.raises(ValueError, match="2 cells"):
        _common.format_table(["a", "b", "c"], [["1", "2"]])
    with pytest.raises(ValueError, match="one l or r per column"):
        _common.format_table(["a", "b"], [], "lx")


def test_ratio_text() -> None:
    assert _common.ratio_text(3.0, 4.0) == "0.75x"
    assert _common.ratio_text(3.0, 0.0) == "-"
    assert _common.ratio_text(None, 4.0) == "-"


def _search_run(kind: str, size: int, ours: float, raw: float) -> dict[str, Any]:
    return {
        "engine": {"kind": kind},
        "size": size,
        "ours": {"median_ms": ours, "p99_ms": ours * 3},
        "baseline": {"median_ms": raw, "p99_ms": raw * 3},
        "overhead": {"median_ms": ours - raw},
        "target": {"verdict": "MET"},
    }


def test_search_table_puts_sizes_together_and_divides_by_osmem_at_the_same_size() -> None:
    runs = [
        _search_run("osmem", 5000, 10.0, 9.5),
        _search_run("osmem", 50000, 130.0, 129.0),
        _search_run("opensearch", 5000, 5.0, 4.75),
        _search_run("opensearch", 50000, 13.0, 12.9),
    ]
    rows = search.table_rows(runs)
    assert [(r[0], r[1]) for r in rows] == [
        ("5,000", "osmem"),
        ("5,000", "opensearch"),
        ("50,000", "osmem"),
        ("50,000", "opensearch"),
    ]
    assert rows[0][2:] == ["10.00 ms", "30.00 ms", "9.50 ms", "28.50 ms", "+0.500 ms", "MET", "-"]
    assert rows[1][-1] == "0.50x, 0.50x"
    assert rows[3][-1] == "0.10x, 0.10x"
    assert all(len(r) == len(search.TABLE_HEADERS) == len(search.TABLE_ALIGN) for r in rows)
    (first, second) = search.comparison(runs)
    assert (first["size"], first["engine"], first["ours_median_ratio"]) == (5000, "opensearch", 0.5)
    assert second["baseline_p99_ratio"] == pytest.approx(0.1)
    # without osmem there is nothing to divide by
    assert search.table_rows(runs[2:])[0][-1] == "-"
    assert search.comparison(runs[2:]) == []


def test_ingest_table_shows_both_rates_their_ratio_and_the_rates_against_osmem() -> None:
    def run(kind: str, ours: float, base: float) -> dict[str, Any]:
        summary = {"ours_docs_per_s_median": ours, "baseline_docs_per_s_median": base, "ratio_median": ours / base}
        return {"engine": {"kind": kind}, "size": 5000, "summary": summary, "target": {"verdict": "MET"}}

    runs = [run("osmem", 1000.0, 1100.0), run("opensearch", 3000.0, 4400.0)]
    assert ingest.table_rows(runs) == [
        ["5,000", "osmem", "1,000", "1,100", "0.909x", "MET", "-"],
        ["5,000", "opensearch", "3,000", "4,400", "0.682x", "MET", "3.00x, 4.00x"],
    ]
    assert ingest.comparison(runs) == [
        {
            "size": 5000,
            "engine": "opensearch",
            "versus": "osmem",
            "ours_docs_per_s_ratio": 3.0,
            "baseline_docs_per_s_ratio": 4.0,
        }
    ]


def test_describe_engine_names_what_ran() -> None:
    osmem = {"kind": "osmem", "distribution": "opensearch", "version": "3.8.0", "osmem_server": "0.1.6", "url": "u"}
    assert _common.describe_engine(osmem) == "osmem-server 0.1.6 in memory (answers as opensearch 3.8.0)"
    node = {
        "kind": "opensearch",
        "distribution": "opensearch",
        "version": "3.9.0",
        "lucene_version": "10.5.1",
        "heap": "1g",
        "java": "25",
        "started_in_s": 3.2,
        "url": "http://127.0.0.1:9200",
    }
    assert _common.describe_engine(node) == (
        "opensearch 3.9.0, Lucene 10.5.1, heap 1g, Java 25, started in 3.2 s, http://127.0.0.1:9200"
    )
