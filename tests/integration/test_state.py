"""Named state documents in the cluster (watermarks)."""

from __future__ import annotations

from opensearchpy import OpenSearch

from fuserec_os.index.state import delete_state, get_state, put_state, state_index


def test_state_round_trip(client: OpenSearch, prefix: str) -> None:
    index = state_index(prefix)
    assert get_state(client, index, "profiles") is None  # no index yet: nothing, no error
    put_state(
        client, index, "profiles", {"watermark": "2024-05-01T00:00:00.000Z", "updated_at": "2024-05-02T00:00:00Z"}
    )
    put_state(client, index, "other", {"x": 1})
    assert get_state(client, index, "profiles") == {
        "watermark": "2024-05-01T00:00:00.000Z",
        "updated_at": "2024-05-02T00:00:00Z",
        "name": "profiles",
    }
    put_state(client, index, "profiles", {"watermark": "2024-06-01T00:00:00.000Z"})
    assert get_state(client, index, "profiles") == {"watermark": "2024-06-01T00:00:00.000Z", "name": "profiles"}
    assert delete_state(client, index, "profiles") is True
    assert get_state(client, index, "profiles") is None
    assert get_state(client, index, "other") == {"x": 1, "name": "other"}
    assert delete_state(client, index, "profiles") is False
