"""Engine failures become one readable error naming the URL and the cause (no raw tracebacks)."""

from __future__ import annotations

import socket

import pytest
from opensearchpy import exceptions as osx

from fuserec_os.engine.client import check_reachable, make_client, map_engine_error
from fuserec_os.errors import EngineError, EngineUnavailableError
from fuserec_os.settings import Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused_names_url_and_cause() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    settings = Settings.from_values({"FUSEREC_OPENSEARCH_URL": url, "FUSEREC_OPENSEARCH_RETRIES": "0"})
    client = make_client(settings)
    with pytest.raises(EngineUnavailableError) as err:
        check_reachable(client, url)
    client.close()
    assert url in str(err.value)
    assert "connection refused" in str(err.value)


def test_401_says_which_settings_to_fix() -> None:
    exc = osx.AuthenticationException(401, "security_exception", {"error": {"type": "security_exception"}})
    mapped = map_engine_error(exc, "connecting", "https://h:9200")
    assert isinstance(mapped, EngineUnavailableError)
    assert "401" in str(mapped) and "FUSEREC_OPENSEARCH_USER" in str(mapped) and "https://h:9200" in str(mapped)


def test_tls_error_points_at_tls_settings() -> None:
    exc = osx.SSLError("N/A", "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed", None)
    mapped = map_engine_error(exc, "connecting", "https://h:9200")
    assert isinstance(mapped, EngineUnavailableError)
    assert "TLS" in str(mapped) and "FUSEREC_OPENSEARCH_CA_CERTS" in str(mapped)


def test_other_engine_errors_carry_type_and_reason() -> None:
    info = {"error": {"type": "illegal_argument_exception", "reason": "bad thing"}}
    mapped = map_engine_error(osx.RequestError(400, "illegal_argument_exception", info), "creating x")
    assert isinstance(mapped, EngineError)
    assert "illegal_argument_exception: bad thing" in str(mapped) and "creating x" in str(mapped)


def test_a_failed_cleanup_follows_the_original_failure_never_replaces_it() -> None:
    from opensearchpy import exceptions as osx

    from fuserec_os.errors import EngineError, FuserecError
    from fuserec_os.index.manager import discard_unfinished

    class DeadIndices:
        def delete(self, **_: object) -> None:
            raise osx.ConnectionError("N/A", "connection refused", Exception("connection refused"))

    class DeadClient:
        indices = DeadIndices()

    original = EngineError("OpenSearch refused bulk indexing into vectors-v1-1: 400 mapper_parsing_exception")
    raised = discard_unfinished(DeadClient(), "vectors-v1-1", original)  # type: ignore[arg-type]
    assert isinstance(raised, FuserecError)
    text = str(raised)
    assert text.startswith(str(original).rstrip("."))  # the original failure first
    assert "Then removing the unfinished index vectors-v1-1 failed too" in text and "refused" in text

    deleted: list[str] = []

    class LiveIndices:
        def delete(self, index: str, **_: object) -> None:
            deleted.append(index)

    class LiveClient:
        indices = LiveIndices()

    assert discard_unfinished(LiveClient(), "vectors-v1-2", original) is original  # type: ignore[arg-type]
    assert deleted == ["vectors-v1-2"]
