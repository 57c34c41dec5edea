"""The handshake probe against real servers on loopback: every outcome is a result, not a traceback."""

from __future__ import annotations

import pytest

from runbook.errors import ParameterError
from runbook.observations import FailureKind
from runbook.probes import probe_handshake, run_sync
from runbook.probes.handshake import accept_value
from tests.probes.servers import Certificates, ServerThread, html_response, wrong_accept_response

SECRET = "Bearer s3cret-probe-token-42"


def handshake(url: str, **kwargs):
    return run_sync(probe_handshake(url, **kwargs))


def test_accept_value_matches_rfc_example() -> None:
    """The accept value of the RFC 6455 1.3 example key is the RFC's own answer."""
    assert accept_value("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_valid_upgrade_is_timed_phase_by_phase(servers: ServerThread) -> None:
    """A python-websockets server gives a valid 101 with DNS, TCP and upgrade times, no TLS time."""
    port = servers.start_websocket()
    result = handshake(f"ws://127.0.0.1:{port}/chat")
    assert result.ok, result.error
    assert (result.status, result.accept_ok, result.upgrade_header_ok, result.connection_header_ok) == \
        (101, True, True, True)
    assert result.dns_s is not None and result.tcp_s is not None and result.upgrade_s is not None
    assert result.tls_s is None and result.address == f"127.0.0.1:{port}"
    assert "Sec-WebSocket-Key" in result.request_header_names


def test_dns_failure_is_a_result() -> None:
    """A name under .invalid never resolves: a DNS failure naming the host."""
    result = handshake("ws://nonexistent.invalid/")
    assert not result.ok and result.error_kind is FailureKind.DNS
    assert "nonexistent.invalid" in result.error


def test_closed_port_is_refused(closed_port: int) -> None:
    """A port nothing listens on is refused, with the address in the reason."""
    result = handshake(f"ws://127.0.0.1:{closed_port}/")
    assert not result.ok and result.error_kind is FailureKind.REFUSED
    assert f"127.0.0.1:{closed_port}" in result.error and result.tcp_s is None


def test_plain_http_server_keeps_status_and_body(servers: ServerThread) -> None:
    """A web page answering 200 is not a WebSocket endpoint: status, headers and body are kept."""
    port = servers.start_tcp(html_response)
    result = handshake(f"ws://127.0.0.1:{port}/")
    assert not result.ok and result.error_kind is FailureKind.HTTP_STATUS
    assert result.status == 200 and "not a WebSocket endpoint" in result.error
    assert result.header("content-type") == "text/html; charset=utf-8"
    assert "Welcome" in (result.body_excerpt or "")


def test_wrong_accept_key_is_a_protocol_failure(servers: ServerThread) -> None:
    """A 101 with someone else's Sec-WebSocket-Accept fails RFC 6455 4.2.2."""
    port = servers.start_tcp(wrong_accept_response)
    result = handshake(f"ws://127.0.0.1:{port}/")
    assert not result.ok and result.error_kind is FailureKind.PROTOCOL
    assert result.accept_ok is False and "does not match" in result.error


def test_silent_server_times_out_in_the_upgrade(servers: ServerThread) -> None:
    """A server that accepts and never answers gives a timeout in the upgrade phase, bounded."""
    port = servers.start_tcp(lambda head: None)
    result = handshake(f"ws://127.0.0.1:{port}/", timeout_s=1.0)
    assert not result.ok and result.error_kind is FailureKind.TIMEOUT
    assert "WebSocket upgrade" in result.error and result.elapsed_s < 3


def test_header_env_is_sent_and_never_kept(servers: ServerThread, monkeypatch: pytest.MonkeyPatch) -> None:
    """Headers from header_env reach the server; only their names appear in the result."""
    port = servers.start_websocket(require_header=("Authorization", SECRET))
    url = f"ws://127.0.0.1:{port}/"
    refused = handshake(url)
    assert refused.status == 401 and "credentials" in refused.error
    monkeypatch.setenv("WS_AUTH", f"Authorization: {SECRET}")
    result = handshake(url, header_env=["WS_AUTH"])
    assert result.ok, result.error
    assert "Authorization" in result.request_header_names
    assert "s3cret" not in repr(result) and "s3cret" not in str(result)


def test_header_env_problems_are_parameter_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unset variable or a value without a colon names the variable, never the value."""
    monkeypatch.delenv("WS_NOT_SET", raising=False)
    with pytest.raises(ParameterError, match="WS_NOT_SET is not set"):
        handshake("ws://127.0.0.1:9/", header_env=["WS_NOT_SET"])
    monkeypatch.setenv("WS_BAD", "just-a-token-value")
    with pytest.raises(ParameterError, match="WS_BAD") as caught:
        handshake("ws://127.0.0.1:9/", header_env=["WS_BAD"])
    assert "just-a-token-value" not in str(caught.value)


def test_malformed_url_is_a_parameter_error() -> None:
    """An http:// URL is a bad parameter, raised before any traffic."""
    with pytest.raises(ParameterError, match="ws:// or wss://"):
        handshake("http://127.0.0.1/")


def test_url_secrets_stay_out_of_the_result(servers: ServerThread) -> None:
    """Userinfo and token query values are removed from the URL the result keeps."""
    port = servers.start_websocket()
    result = handshake(f"ws://alice:pa55word@127.0.0.1:{port}/?token=abc123&room=7")
    assert result.ok
    assert result.url == f"ws://127.0.0.1:{port}/?token=***&room=7"
    assert "pa55word" not in repr(result) and "abc123" not in repr(result)


def test_valid_certificate_verifies(servers: ServerThread, certificates: Certificates,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """wss with a certificate from a trusted CA verifies, with the TLS phase timed."""
    port = servers.start_websocket(ssl_context=certificates.server_context(certificates.valid))
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca))
    result = handshake(f"wss://127.0.0.1:{port}/")
    assert result.ok, result.error
    assert result.tls_s is not None and (result.tls_version or "").startswith("TLS")


def test_expired_certificate_fails_clearly(servers: ServerThread, certificates: Certificates,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """An expired certificate says so and names insecure_tls; insecure_tls gets through."""
    port = servers.start_websocket(ssl_context=certificates.server_context(certificates.expired))
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca))
    result = handshake(f"wss://127.0.0.1:{port}/")
    assert not result.ok and result.error_kind is FailureKind.TLS
    assert "expired" in result.error and "insecure_tls" in result.error
    assert handshake(f"wss://127.0.0.1:{port}/", insecure_tls=True).ok


def test_self_signed_certificate_fails_clearly(servers: ServerThread, certificates: Certificates) -> None:
    """A self-signed certificate fails verification with OpenSSL's reason."""
    port = servers.start_websocket(ssl_context=certificates.server_context(certificates.self_signed))
    result = handshake(f"wss://127.0.0.1:{port}/")
    assert not result.ok and result.error_kind is FailureKind.TLS
    assert "self-signed" in result.error or "self signed" in result.error


def test_wss_to_a_plain_port_hints_at_the_scheme(servers: ServerThread) -> None:
    """TLS spoken to a ws:// server fails in the TLS phase with a hint about the port."""
    port = servers.start_websocket()
    result = handshake(f"wss://127.0.0.1:{port}/", timeout_s=3.0)
    assert not result.ok and result.error_kind in (FailureKind.TLS, FailureKind.RESET, FailureKind.CLOSED)
    assert "ws://" in result.error
