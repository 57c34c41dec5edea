"""ProbeReport <-> JSON-ready dict: every nested dataclass, enum and tuple comes back; header
values never get written."""

from __future__ import annotations

import json

import pytest

from runbook.observations import (
    ChurnResult,
    ChurnSample,
    ConnectionFate,
    EndKind,
    FailureKind,
    HandshakeResult,
    HeartbeatResult,
    ProbeReport,
    ProcessResult,
    ProcessSample,
    SocketSample,
    SocketStatesResult,
)
from runbook.probes.serialize import report_from_dict, report_to_dict

SECRET = "session=abc123-secret"


def full_report() -> ProbeReport:
    """A report with every probe filled in, every enum and tuple used at least once."""
    handshake = HandshakeResult(
        url="ws://127.0.0.1:8080/ws/chat", ok=False, error="the server answered 426", elapsed_s=0.012,
        error_kind=FailureKind.HTTP_STATUS, address="127.0.0.1:8080", dns_s=0.0, tcp_s=0.001,
        upgrade_s=0.01, status=426, reason="Upgrade Required",
        headers=(("Server", "nginx"), ("Set-Cookie", SECRET)), body_excerpt="Upgrade Required",
        accept_ok=None, upgrade_header_ok=False, connection_header_ok=False,
        request_header_names=("Host", "Upgrade", "Connection"))
    direct = HandshakeResult(url="ws://127.0.0.1:9000/ws/chat", ok=True, error=None, elapsed_s=0.004,
                             status=101, accept_ok=True, headers=(("Upgrade", "websocket"),))
    idle = ConnectionFate(role="idle", alive_at_end=False, observed_s=6.0, ended_by=EndKind.FIN,
                          lifetime_s=6.0, last_received_s=0.1, server_pings=2,
                          server_ping_times_s=(2.0, 4.0), detail="cut at 6 s")
    pinging = ConnectionFate(role="pinging", alive_at_end=True, observed_s=15.0, pings_sent=7,
                             pongs_received=7, close_code=None)
    heartbeat = HeartbeatResult(url=handshake.url, ok=True, error=None, elapsed_s=15.2,
                                probe_seconds=15.0, ping_every_s=2.0, pong_timeout_s=5.0,
                                idle=idle, pinging=pinging, rtt_s=(0.001, 0.002))
    churn = ChurnResult(url=handshake.url, ok=True, error=None, elapsed_s=15.0, duration_s=15.0,
                        connections=10, max_in_flight=50, hold_s=1.0, cycling_slots=5, attempts=40,
                        opened=39, failed=1, failures={"refused": 1}, failure_kinds={"refused": 1},
                        closed_by_peer=3, closed_by_us=30, close_codes={1006: 2, 1000: 1},
                        end_kinds={"fin": 2, "close_frame": 1}, connection_seconds=140.0,
                        peak_open=10, latency_p50_s=0.003, latency_max_s=0.02,
                        timeline=(ChurnSample(1.0, 10, 10, 0, 0), ChurnSample(2.0, 9, 12, 1, 0)))
    sockets = SocketStatesResult(port=9000, ok=True, error=None, elapsed_s=16.0, listening=True,
                                 samples=(SocketSample(0.0, {"ESTABLISHED": 3}),
                                          SocketSample(1.0, {"ESTABLISHED": 5, "CLOSE_WAIT": 2})))
    process = ProcessResult(pid=4242, ok=True, error=None, elapsed_s=16.0, name="python",
                            found_by="server_pid",
                            samples=(ProcessSample(0.0, 1000, 10, 1, 3, 0),
                                     ProcessSample(1.0, 2000, None, 1, 5, 12)))
    return ProbeReport(target_url=handshake.url, direct_url=direct.url, elapsed_s=16.5,
                       handshake_target=handshake, handshake_direct=direct, heartbeat=heartbeat,
                       churn=churn, sockets=sockets, process=process,
                       skipped={"note": "nothing skipped"})


def test_round_trip_restores_every_field_but_header_values() -> None:
    report = full_report()
    data = json.loads(json.dumps(report_to_dict(report)))  # through real JSON text
    restored = report_from_dict(data)
    blank = tuple((name, "") for name, _value in report.handshake_target.headers)
    expected_target = report.handshake_target.__class__(
        **{**report.handshake_target.__dict__, "headers": blank})
    assert restored.handshake_target == expected_target
    assert restored.heartbeat == report.heartbeat
    assert restored.churn == report.churn
    assert restored.sockets == report.sockets
    assert restored.process == report.process
    assert restored.skipped == report.skipped
    assert (restored.target_url, restored.direct_url, restored.elapsed_s) == (
        report.target_url, report.direct_url, report.elapsed_s)
    # Types, not just equal-looking values: enums, tuples, integer close codes.
    assert restored.heartbeat.idle.ended_by is EndKind.FIN
    assert restored.handshake_target.error_kind is FailureKind.HTTP_STATUS
    assert isinstance(restored.churn.timeline, tuple)
    assert isinstance(restored.heartbeat.idle.server_ping_times_s, tuple)
    assert set(restored.churn.close_codes) == {1006, 1000}
    # Derived figures the probe rules read still work on the restored report.
    assert restored.process.retained_rss_bytes == 1000
    assert restored.churn.close_rate_per_open_per_minute == report.churn.close_rate_per_open_per_minute


def test_header_values_are_never_written() -> None:
    text = json.dumps(report_to_dict(full_report()))
    assert SECRET not in text
    assert "nginx" not in text  # the Server header's value
    assert report_to_dict(full_report())["handshake_target"]["headers"] == ["Server", "Set-Cookie"]


def test_a_report_with_probes_not_run_round_trips() -> None:
    report = ProbeReport(target_url="ws://127.0.0.1:1/", direct_url=None, elapsed_s=0.5,
                         skipped={"heartbeat": "the handshake through target_url failed"})
    assert report_from_dict(report_to_dict(report)) == report


@pytest.mark.parametrize(("mangle", "message"), [
    (lambda d: d.update(elapsed_s="slow"), "report.elapsed_s"),
    (lambda d: d["heartbeat"]["idle"].update(ended_by="vanished"), "report.heartbeat.idle.ended_by"),
    (lambda d: d["churn"].update(close_codes={"x": 1}), "report.churn.close_codes"),
])
def test_data_that_does_not_fit_names_the_field(mangle, message) -> None:
    data = report_to_dict(full_report())
    mangle(data)
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        report_from_dict(data)


def test_not_an_object_is_refused() -> None:
    with pytest.raises(ValueError, match="must be a JSON object"):
        report_from_dict([])  # type: ignore[arg-type]
