"""probe_url / probe_all end to end, the terminal summary, run_sync inside a running loop, cancellation."""

from __future__ import annotations

import asyncio
import time

import psutil
import pytest

from runbook.diagnosis.probe_rules import probe_signals
from runbook.errors import ParameterError
from runbook.observations import FailureKind, HandshakeResult, ProbeReport
from runbook.probes import format_probe_report, probe_all, probe_handshake, probe_url, run_sync, summary_rows
from tests.probes.servers import ServerThread

SECRET = "Bearer summary-secret-77"


def test_probe_url_runs_every_probe_and_keeps_secrets(servers: ServerThread, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """One call: handshake, heartbeat, churn and server sampling; the summary holds no header value."""
    port = servers.start_websocket(ping_interval=1.0, require_header=("Authorization", SECRET))
    monkeypatch.setenv("PROBE_AUTH", f"Authorization: {SECRET}")
    report = probe_url(f"ws://127.0.0.1:{port}/", f"ws://127.0.0.1:{port}/", probe_seconds=4,
                       connections=5, header_env=["PROBE_AUTH"], server_port=port, progress=True)
    assert report.handshake_target.ok and report.handshake_direct.ok
    assert report.heartbeat.ok and report.churn.ok and report.sockets.ok and report.process.ok
    assert report.process.served == report.churn.opened + 2 + 2 and report.churn.cycling_slots == 2
    text = format_probe_report(report, probe_signals(report))
    for section in ("Handshake", "Heartbeat and idle survival", "Churn", "Server sockets",
                    "Server process", "Evidence"):
        assert f"\n{section}\n" in text
    assert "server_heartbeat_present" in text
    assert "summary-secret" not in text and "summary-secret" not in repr(report)
    assert "live probes" in capsys.readouterr().err  # the terminal progress bar


def test_failed_handshake_skips_the_held_probes(closed_port: int) -> None:
    """A refused target: heartbeat and churn are skipped with the reason, in the text and the rows."""
    report = probe_url(f"ws://127.0.0.1:{closed_port}/", probe_seconds=3, progress=False)
    assert report.handshake_target.error_kind is FailureKind.REFUSED
    assert report.heartbeat is None and report.churn is None
    assert "refused" in report.skipped["heartbeat"]
    text = format_probe_report(report)
    assert "FAILED (refused)" in text and "skipped: the handshake through target_url failed" in text
    rows = {row["probe"]: row for row in summary_rows(report)}
    assert rows["handshake (target)"]["status"] == "failed" and rows["churn"]["status"] == "skipped"
    assert "refused" in rows["handshake (target)"]["saw"]


def test_summary_strips_control_characters() -> None:
    """Escape sequences, CR and bidi overrides from a server never reach the terminal."""
    hostile = "\x1b[2J\x1b[31mpwned\r\u202eevil"
    target = HandshakeResult(url="ws://example.test/", ok=False, error=f"answered HTTP 400 {hostile}",
                             elapsed_s=0.1, error_kind=FailureKind.HTTP_STATUS, status=400,
                             headers=(("Server", hostile),), body_excerpt=hostile)
    text = format_probe_report(ProbeReport(target_url="ws://example.test/", direct_url=None,
                                           elapsed_s=0.1, handshake_target=target))
    assert "\x1b" not in text and "\r" not in text and "\u202e" not in text
    assert "pwned" in text


def test_run_sync_inside_a_running_loop(servers: ServerThread) -> None:
    """Called from a coroutine (as in a Jupyter cell), run_sync uses a worker thread and returns."""
    port = servers.start_websocket()

    async def cell() -> HandshakeResult:
        return run_sync(probe_handshake(f"ws://127.0.0.1:{port}/"))

    assert asyncio.run(cell()).ok


def test_run_sync_raises_parameter_errors_from_the_worker_thread() -> None:
    """A bad parameter still raises ParameterError through the worker thread."""
    async def cell() -> None:
        run_sync(probe_handshake("https://example.test/"))

    with pytest.raises(ParameterError, match="target_url"):
        asyncio.run(cell())


def test_bad_window_is_a_parameter_error() -> None:
    """probe_seconds under 3 s cannot hold the heartbeat probe: a ParameterError naming it."""
    with pytest.raises(ParameterError, match="probe_seconds"):
        probe_url("ws://127.0.0.1:9/", probe_seconds=1, progress=False)


def _established(port: int) -> int:
    return sum(1 for c in psutil.net_connections(kind="tcp")
               if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED)


def test_cancellation_closes_every_connection(servers: ServerThread) -> None:
    """Cancelling a probe run mid-window leaves no connection open at the server."""
    port = servers.start_websocket()

    async def cancel_after(seconds: float) -> None:
        task = asyncio.create_task(probe_all(f"ws://127.0.0.1:{port}/", probe_seconds=20,
                                             connections=8, server_port=port))
        await asyncio.sleep(seconds)
        assert _established(port) >= 8
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    started = time.monotonic()
    asyncio.run(cancel_after(1.5))
    assert time.monotonic() - started < 6
    deadline = time.monotonic() + 3
    while _established(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _established(port) == 0
