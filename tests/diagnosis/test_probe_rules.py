"""Tests of the probe evidence rules, each called directly on probe results with known figures."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from runbook.diagnosis import Cause, rank_causes
from runbook.diagnosis.probe_rules import (
    PROBE_RULES,
    churn_disconnects,
    churn_handshake_failures,
    churn_latency,
    handshake_comparison,
    idle_survival,
    pong_latency,
    probe_signals,
    process_growth,
    server_heartbeat,
    socket_states,
    unanswered_pings,
)
from runbook.observations import (
    PROBE_FIELDS,
    ChurnResult,
    ConnectionFate,
    EndKind,
    FailureKind,
    HandshakeResult,
    HeartbeatResult,
    Observations,
    ProbeReport,
    ProcessResult,
    ProcessSample,
    SocketSample,
    SocketStatesResult,
)

MIB = 2**20


def probes(**fields) -> ProbeReport:
    return ProbeReport(target_url="ws://t/", direct_url=None, elapsed_s=1.0, **fields)


def names(signals) -> list[str]:
    return [s.name for s in signals]


def ok_101(url: str = "ws://t/") -> HandshakeResult:
    return HandshakeResult(url=url, ok=True, error=None, elapsed_s=0.01, status=101, accept_ok=True)


def refused(status: int | None = None, kind: FailureKind = FailureKind.HTTP_STATUS) -> HandshakeResult:
    error = f"t:80 answered HTTP {status}" if status else f"failed: {kind}"
    return HandshakeResult(url="ws://t/", ok=False, error=error, elapsed_s=0.01, error_kind=kind, status=status)


def alive(role: str, window: float = 30.0, **extra) -> ConnectionFate:
    return ConnectionFate(role=role, alive_at_end=True, observed_s=window, detail="alive", **extra)


def died(role: str, at: float, kind: EndKind = EndKind.FIN, **extra) -> ConnectionFate:
    return ConnectionFate(role=role, alive_at_end=False, observed_s=at, ended_by=kind, lifetime_s=at,
                          close_code=1006 if kind in (EndKind.FIN, EndKind.RST) else None,
                          detail=f"{kind} at {at}", **extra)


def heartbeat(idle: ConnectionFate, pinging: ConnectionFate, rtt=(0.001, 0.002, 0.001)) -> HeartbeatResult:
    return HeartbeatResult(url="ws://t/", ok=True, error=None, elapsed_s=30.0, probe_seconds=30.0,
                           ping_every_s=5.0, pong_timeout_s=3.0, idle=idle, pinging=pinging, rtt_s=tuple(rtt))


def churn(**figures) -> ChurnResult:
    base = dict(url="ws://t/", ok=True, error=None, elapsed_s=30.0, duration_s=30.0, connections=20,
                max_in_flight=20, hold_s=None, attempts=20, opened=20, connection_seconds=600.0)
    base.update(figures)
    return ChurnResult(**base)


def sockets(*counts: dict[str, int]) -> SocketStatesResult:
    samples = tuple(SocketSample(t_s=float(i), counts=c) for i, c in enumerate(counts))
    return SocketStatesResult(port=8765, ok=True, error=None, elapsed_s=float(len(counts)), samples=samples)


def process(served: int, rss: tuple[int, int], fds: tuple[int, int], threads: tuple[int, int] = (4, 4)) -> ProcessResult:
    samples = (ProcessSample(0.0, rss[0], fds[0], threads[0], 0, 0),
               ProcessSample(9.0, rss[1], fds[1], threads[1], 0, served))
    return ProcessResult(pid=42, ok=True, error=None, elapsed_s=9.0, samples=samples)


# --- no probes ----------------------------------------------------------------------------------


def test_no_probes_no_signals() -> None:
    """Without probe results (or on an Observations without probe fields) no probe rule fires."""
    assert probe_signals(probes()) == []
    assert probe_signals(Observations()) == []
    assert probe_signals(SimpleNamespace(**dict.fromkeys(PROBE_FIELDS))) == []


def test_every_rule_reads_only_probe_fields() -> None:
    """Rules take any object with the PROBE_FIELDS attributes, such as a future Observations."""
    obs = SimpleNamespace(**{**dict.fromkeys(PROBE_FIELDS), "handshake_target": ok_101()})
    assert names(probe_signals(obs)) == ["upgrade_ok"]
    assert len(PROBE_RULES) == 10


# --- handshake ----------------------------------------------------------------------------------


def test_direct_101_target_426_is_the_proxy_signature() -> None:
    """101 directly but 426 through the target moves proxy to the top with high probability."""
    signals = handshake_comparison(probes(handshake_target=refused(426), handshake_direct=ok_101()))
    assert names(signals) == ["upgrade_fails_only_through_proxy"]
    assert signals[0].ratio(Cause.PROXY) >= 8.0 and signals[0].source == "probe"
    top = rank_causes(signals)[0]
    assert top.cause is Cause.PROXY and top.probability > 0.8


def test_both_refusing_points_away_from_the_proxy() -> None:
    """404 directly and through the target: the service refuses, the proxy is not to blame."""
    signals = handshake_comparison(probes(handshake_target=refused(404), handshake_direct=refused(404)))
    assert names(signals) == ["upgrade_rejected_by_service"] and signals[0].ratio(Cause.PROXY) < 1


@pytest.mark.parametrize(("status", "name"), [
    (426, "upgrade_rejected"), (400, "upgrade_rejected"), (505, "upgrade_rejected"),
    (502, "gateway_error_on_upgrade"), (504, "gateway_error_on_upgrade"),
    (403, "upgrade_refused_auth"), (200, "upgrade_not_answered_as_websocket"),
])
def test_target_status_alone(status: int, name: str) -> None:
    """Without a direct URL the status itself says what kind of refusal it was."""
    assert names(handshake_comparison(probes(handshake_target=refused(status)))) == [name]


@pytest.mark.parametrize(("kind", "name"), [
    (FailureKind.DNS, "target_dns_failure"), (FailureKind.REFUSED, "target_connection_refused"),
    (FailureKind.TLS, "target_tls_failure"), (FailureKind.TIMEOUT, "target_handshake_timeout"),
    (FailureKind.RESET, "target_reset_during_handshake"), (FailureKind.UNREACHABLE, "target_unreachable"),
])
def test_network_failures_are_modest_evidence(kind: FailureKind, name: str) -> None:
    """Refused, DNS, TLS and timeouts give named signals with ratios of at most 2."""
    (signal,) = handshake_comparison(probes(handshake_target=refused(kind=kind)))
    assert signal.name == name and max(signal.likelihood_ratios.values()) <= 2.0
    assert str(kind) in signal.detail


def test_local_limits_are_no_evidence() -> None:
    """EMFILE in our own process says nothing about the service."""
    assert handshake_comparison(probes(handshake_target=refused(kind=FailureKind.TOO_MANY_FILES))) == []


def test_target_unreachable_but_direct_fine() -> None:
    """A timeout through the target while the direct URL answers blames the path in between."""
    signals = handshake_comparison(probes(handshake_target=refused(kind=FailureKind.TIMEOUT),
                                          handshake_direct=ok_101()))
    assert names(signals) == ["target_fails_direct_fine"]
    assert signals[0].ratio(Cause.PROXY) > 1 and signals[0].ratio(Cause.NETWORK) > 1


def test_upgrade_ok_both_ways_lowers_proxy() -> None:
    """A valid 101 through the proxy and directly rules out stripped upgrade headers."""
    signals = handshake_comparison(probes(handshake_target=ok_101(), handshake_direct=ok_101()))
    assert names(signals) == ["upgrade_ok_through_proxy"] and signals[0].ratio(Cause.PROXY) < 1


# --- heartbeat ----------------------------------------------------------------------------------


def test_idle_dies_at_nginx_default_while_pinging_lives() -> None:
    """Idle FIN at 60 s, pinging alive: an idle timeout in the path, named as nginx/ALB."""
    obs = probes(heartbeat=heartbeat(died("idle", 60.4), alive("pinging", 90.0)))
    signals = idle_survival(obs)
    assert names(signals) == ["probe_idle_cut_at_proxy_default"] and "nginx" in signals[0].detail
    ranked = rank_causes(signals)
    assert {ranked[0].cause, ranked[1].cause} == {Cause.PROXY, Cause.HEARTBEAT}


def test_both_die_at_the_same_age_is_a_hard_lifetime() -> None:
    """Both connections cut at ~30 s, traffic or not: a lifetime cap (GCP's 30 s), not the heartbeat."""
    obs = probes(heartbeat=heartbeat(died("idle", 30.2), died("pinging", 30.5, EndKind.RST)))
    signals = idle_survival(obs)
    assert names(signals) == ["hard_connection_lifetime"]
    assert signals[0].ratio(Cause.HEARTBEAT) < 1 and "GCP" in signals[0].detail


def test_idle_blackhole_points_to_the_network() -> None:
    """Idle silent (no FIN/RST) while the pinging one lives: network first, heartbeat the fix."""
    obs = probes(heartbeat=heartbeat(died("idle", 25.0, EndKind.SILENCE, last_received_s=0.0),
                                     alive("pinging")))
    (signal,) = idle_survival(obs)
    assert signal.name == "idle_connection_blackholed"
    assert max(signal.likelihood_ratios, key=signal.ratio) is Cause.NETWORK


def test_both_silent_is_a_blackholed_path() -> None:
    """Pings and close frames unanswered on both connections: a blackhole, network strongly."""
    obs = probes(heartbeat=heartbeat(died("idle", 25.0, EndKind.SILENCE), died("pinging", 5.0, EndKind.SILENCE)))
    (signal,) = idle_survival(obs)
    assert signal.name == "path_blackholed" and signal.ratio(Cause.NETWORK) == 4.0


def test_deaf_server_is_not_a_dying_path() -> None:
    """Pings ignored by a peer that answers the close frame: server_ignores_pings only."""
    hb = heartbeat(died("idle", 25.0, EndKind.PONG_TIMEOUT), died("pinging", 5.0, EndKind.PONG_TIMEOUT))
    assert idle_survival(probes(heartbeat=hb)) == []
    assert names(unanswered_pings(probes(heartbeat=hb))) == ["server_ignores_pings"]


@pytest.mark.parametrize(("watched", "messages", "expected"), [
    (30.0, 0, ["server_never_pings"]), (5.0, 0, ["no_server_ping_seen"]), (30.0, 4, []),
])
def test_server_without_ping_frames(watched: float, messages: int, expected: list[str]) -> None:
    """No ping frame over a long window is a missing heartbeat; a short one only hints at it."""
    hb = heartbeat(alive("idle", watched, messages_received=messages), alive("pinging", watched))
    assert names(server_heartbeat(probes(heartbeat=hb))) == expected


def test_server_heartbeat_present_and_too_slow() -> None:
    """Pings every 20 s that keep idle alive lower heartbeat; pings slower than the cut raise it."""
    times = (20.0, 40.0, 60.0)
    kept = heartbeat(alive("idle", 90.0, server_pings=3, server_ping_times_s=times), alive("pinging", 90.0))
    (present,) = server_heartbeat(probes(heartbeat=kept))
    assert present.name == "server_heartbeat_present" and present.ratio(Cause.HEARTBEAT) < 1
    slow = heartbeat(died("idle", 15.0, server_pings=2, server_ping_times_s=(0.5, 20.5)), alive("pinging"))
    assert names(server_heartbeat(probes(heartbeat=slow))) == ["server_heartbeat_slower_than_path"]


def test_slow_pongs() -> None:
    """A p90 pong round trip of 800 ms is a slow path or a busy server."""
    hb = heartbeat(alive("idle"), alive("pinging"), rtt=(0.8, 0.9, 0.7, 0.85))
    assert names(pong_latency(probes(heartbeat=hb))) == ["slow_pongs"]
    assert pong_latency(probes(heartbeat=heartbeat(alive("idle"), alive("pinging")))) == []


def test_failed_heartbeat_gives_no_heartbeat_signals() -> None:
    """A heartbeat probe that could not open its connections says nothing about keepalive."""
    failed = HeartbeatResult(url="ws://t/", ok=False, error="refused", elapsed_s=0.0, probe_seconds=30,
                             ping_every_s=5, pong_timeout_s=3, error_kind=FailureKind.REFUSED)
    obs = probes(heartbeat=failed)
    assert idle_survival(obs) == server_heartbeat(obs) == unanswered_pings(obs) == pong_latency(obs) == []


# --- churn --------------------------------------------------------------------------------------


def test_churn_above_five_percent_per_minute() -> None:
    """4 abnormal closes over 600 connection-seconds is 40%/min: the high disconnect rate."""
    obs = probes(churn=churn(closed_by_peer=4, close_codes={1006: 4}, end_kinds={"fin": 4}))
    (signal,) = churn_disconnects(obs)
    assert signal.name == "probe_drops_abnormal" and "40%" in signal.detail
    assert signal.ratio(Cause.CLIENT) < 1


def test_churn_below_threshold_or_too_few_closes() -> None:
    """One close, or a rate under 5%/min, is not the symptom."""
    assert churn_disconnects(probes(churn=churn(closed_by_peer=1, close_codes={1006: 1}))) == []
    slow = churn(closed_by_peer=2, close_codes={1001: 2}, connection_seconds=6000.0)
    assert churn_disconnects(probes(churn=slow)) == []


def test_churn_handshake_failures_ignore_local_limits() -> None:
    """Failed upgrades count; EMFILE on our side does not."""
    failing = churn(attempts=40, failed=10, failures={"t:80 answered HTTP 502": 10},
                    failure_kinds={"http_status": 10})
    assert names(churn_handshake_failures(probes(churn=failing))) == ["probe_handshakes_fail"]
    local = churn(attempts=40, failed=10, failure_kinds={"too_many_files": 10})
    assert churn_handshake_failures(probes(churn=local)) == []


def test_churn_slow_tail() -> None:
    """A p99 handshake latency above a second is queueing somewhere."""
    assert names(churn_latency(probes(churn=churn(latency_p50_s=0.01, latency_p99_s=1.4)))) == ["slow_handshakes"]
    assert churn_latency(probes(churn=churn(latency_p50_s=0.01, latency_p99_s=0.05))) == []


# --- server -------------------------------------------------------------------------------------


def test_close_wait_growing_is_a_leak() -> None:
    """CLOSE_WAIT climbing over the window is the strongest leak evidence."""
    obs = probes(sockets=sockets({"ESTABLISHED": 20}, {"ESTABLISHED": 20, "CLOSE_WAIT": 4},
                                 {"ESTABLISHED": 20, "CLOSE_WAIT": 9}))
    (signal,) = socket_states(obs)
    assert signal.name == "close_wait_growing" and signal.ratio(Cause.RESOURCE_LEAK) >= 5
    assert signal.source == "server"


def test_close_wait_steady_and_fin_wait2() -> None:
    """A steady pile of CLOSE_WAIT is weaker evidence; growing FIN_WAIT2 points at vanished peers."""
    steady = probes(sockets=sockets({"CLOSE_WAIT": 12}, {"CLOSE_WAIT": 12}))
    assert names(socket_states(steady)) == ["close_wait_present"]
    fin = probes(sockets=sockets({"FIN_WAIT2": 2}, {"FIN_WAIT2": 8}, {"FIN_WAIT2": 14}))
    assert names(socket_states(fin)) == ["fin_wait2_growing"]
    assert socket_states(probes(sockets=sockets({"ESTABLISHED": 5}, {"TIME_WAIT": 40}))) == []


def test_process_keeping_fds_and_memory() -> None:
    """fds and RSS kept after 200 connections closed are a leak, three ways of saying it."""
    obs = probes(process=process(200, rss=(30 * MIB, 60 * MIB), fds=(10, 210), threads=(2, 202)))
    assert names(process_growth(obs)) == ["server_keeps_descriptors", "server_memory_grows", "server_threads_grow"]


def test_process_giving_resources_back() -> None:
    """fds back to baseline and RSS within 5 MiB per 1,000 lowers resource_leak."""
    (signal,) = process_growth(probes(process=process(1000, rss=(30 * MIB, 32 * MIB), fds=(10, 10))))
    assert signal.name == "server_releases_resources" and signal.ratio(Cause.RESOURCE_LEAK) < 1


def test_process_with_too_little_traffic_says_nothing() -> None:
    """Ten connections served are too few to measure growth per 1,000."""
    assert process_growth(probes(process=process(10, rss=(30 * MIB, 90 * MIB), fds=(10, 20)))) == []


def test_all_signals_are_well_formed() -> None:
    """Every signal the rules can emit has a detail, a rationale and positive ratios."""
    everything = probes(
        handshake_target=refused(426), handshake_direct=ok_101(),
        heartbeat=heartbeat(died("idle", 60.0), alive("pinging", 90.0)),
        churn=churn(closed_by_peer=4, close_codes={1006: 4}, latency_p99_s=2.0, latency_p50_s=0.1),
        sockets=sockets({"CLOSE_WAIT": 0}, {"CLOSE_WAIT": 10}),
        process=process(200, rss=(30 * MIB, 60 * MIB), fds=(10, 210)),
    )
    signals = probe_signals(everything)
    assert len(signals) >= 7
    for signal in signals:
        assert signal.detail and signal.rationale and signal.source in ("probe", "server")
        assert all(ratio > 0 for ratio in signal.likelihood_ratios.values())


def test_first_server_ping_after_the_idle_death_is_a_heartbeat_slower_than_the_path() -> None:
    """The idle probe died at 3 s before any ping; the pinging one got the server's first ping at 4.5 s."""
    hb = heartbeat(died("idle", 3.0), alive("pinging", 8.0, server_pings=1, server_ping_times_s=(4.5,)))
    (signal,) = server_heartbeat(probes(heartbeat=hb))
    assert signal.name == "server_heartbeat_slower_than_path" and "4.5 s" in signal.detail
    assert hb.server_ping_estimate_s == 4.5


def test_descriptors_of_other_clients_connections_are_not_retained() -> None:
    """A live server gains descriptors because more clients are connected, not because it leaks."""
    samples = (ProcessSample(0.0, 30_000_000, 35, 4, 27, 0), ProcessSample(16.0, 30_500_000, 40, 4, 33, 87))
    busy = ProcessResult(pid=1, ok=True, error=None, elapsed_s=16.0, samples=samples)
    assert busy.retained_fds == -1
    assert not [s for s in process_growth(probes(process=busy)) if s.name == "server_keeps_descriptors"]
