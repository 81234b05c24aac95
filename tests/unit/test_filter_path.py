"""The proxy's ``filter_path``: the engine's response filtering, applied to answers the proxy builds (the
integration tests compare it with the engine's own on both engines; these pin the edges)."""

from __future__ import annotations

from typing import Any

import pytest

from fuserec_os.serve.filter_path import apply_filter_path, filter_path_of

DOC: dict[str, Any] = {
    "took": 3,
    "hits": {"total": {"value": 2}, "hits": [{"_id": "a", "_source": {"title": "x", "tags": ["t1"]}}, {"_id": "b"}]},
    "fuserec": {"applied": True, "timings_ms": {"total": 1.5}},
}


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("hits.hits._id", {"hits": {"hits": [{"_id": "a"}, {"_id": "b"}]}}),
        ("hits.hits._source", {"hits": {"hits": [{"_source": {"title": "x", "tags": ["t1"]}}]}}),  # b has none
        ("hits.**.title", {"hits": {"hits": [{"_source": {"title": "x"}}]}}),
        ("fuserec.**.total", {"fuserec": {"timings_ms": {"total": 1.5}}}),
        ("hits.total.**", {"hits": {"total": {"value": 2}}}),  # ** after the last name: everything below it
        ("hits.hits._source.tags.more", {}),  # a path past a value matches nothing
        ("t*k", {"took": 3}),
        ("-hits,-fuserec", {"took": 3}),
        ("-hits.hits._source,hits.hits", {"hits": {"hits": [{"_id": "a"}, {"_id": "b"}]}}),  # exclusions first
        ("nothing", {}),
    ],
)
def test_paths(path: str, want: Any) -> None:
    assert apply_filter_path(DOC, path) == want


def test_no_filter_or_an_empty_one_keeps_the_answer() -> None:
    assert apply_filter_path(DOC, None) is DOC
    assert apply_filter_path(DOC, " , ") == DOC


def test_several_parameters_are_one_filter() -> None:
    assert filter_path_of([("q", "x"), ("filter_path", "took"), ("filter_path", "hits.total")]) == "took,hits.total"
    assert filter_path_of([("q", "x")]) is None
    assert apply_filter_path(DOC, "took,hits.total") == {"took": 3, "hits": {"total": {"value": 2}}}
