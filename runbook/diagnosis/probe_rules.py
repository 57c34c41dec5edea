"""Evidence rules for the live probes: what the handshake, heartbeat, churn and server sampling saw.

Same contract as :mod:`runbook.diagnosis.rules`: ``rule(observations) -> list[Signal]``, pure,
listed in PROBE_RULES. A rule reads the attributes named in ``runbook.observations.PROBE_FIELDS``
(``handshake_target``, ``handshake_direct``, ``heartbeat``, ``churn``, ``sockets``,
``process``) with ``getattr(obs, name, None)``, so it takes an Observations carrying those fields
or a ProbeReport alike; a missing or None attribute means that probe did not run. What each
signal weighs, and its family, is in the evidence table (``evidence.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runbook.diagnosis.causes import Cause
from runbook.diagnosis.evidence import (
    CLOSE_WAIT_GROWTH,
    CLOSE_WAIT_PRESENT,
    FAILED_HANDSHAKE_SHARE,
    FD_RETAINED_SHARE,
    FIN_WAIT2_PRESENT,
    HIGH_DISCONNECT_RATE,
    MIN_FDS_RETAINED,
    MIN_PEER_CLOSES,
    MIN_SERVED,
    MIN_SERVED_FOR_RSS,
    NO_PING_WINDOW_S,
    RSS_CLEAN_PER_CONNECTION,
    RSS_LEAK_PER_CONNECTION,
    SLOW_HANDSHAKE_P99_S,
    SLOW_PONG_P90_S,
    Signal,
    fire,
    same_timer,
)
from runbook.diagnosis.timeouts import timeouts_matching
from runbook.logs.metrics import PEAK_MIN_AGE_S
from runbook.observations import (
    ChurnResult,
    ConnectionFate,
    EndKind,
    FailureKind,
    HandshakeResult,
    HeartbeatResult,
    ProcessResult,
    SocketStatesResult,
)

ProbeRule = Callable[[Any], list[Signal]]

_LOCAL_FAILURES = {FailureKind.TOO_MANY_FILES, FailureKind.OS_ERROR}  # our host, not the path


def _probe(obs: Any, name: str) -> Any:
    return getattr(obs, name, None)


def _printable(text: str | None, limit: int = 60) -> str:
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in (text or ""))
    return cleaned[:limit]


def _answer(result: HandshakeResult) -> str:
    if result.ok:
        return "101"
    if result.status is not None:
        return f"HTTP {result.status}"
    return f"{result.error_kind or 'failed'}"


def _idle_cut(prefix: str, seconds: float, detail: str) -> Signal:
    """An idle cut, named after the known default it matches (a proxy's or the network's)."""
    known = timeouts_matching(seconds)
    if not known:
        return fire(prefix, detail, age_s=round(seconds, 1))
    names = "; ".join(str(t) for t in known)
    where = "network" if all(t.cause is Cause.NETWORK for t in known) else "proxy"
    return fire(f"{prefix}_at_{where}_default", f"{detail}; {seconds:.1f} s matches {names}", age_s=round(seconds, 1))


# --- handshake ------------------------------------------------------------------------------------

_NETWORK_FAILURES: dict[FailureKind, str] = {
    FailureKind.DNS: "target_dns_failure",
    FailureKind.REFUSED: "target_connection_refused",
    FailureKind.UNREACHABLE: "target_unreachable",
    FailureKind.TIMEOUT: "target_handshake_timeout",
    FailureKind.TLS: "target_tls_failure",
    FailureKind.RESET: "target_reset_during_handshake",
    FailureKind.CLOSED: "target_closed_during_handshake",
}


def _status_signal(target: HandshakeResult) -> Signal:
    """A non-101 through the target when there is nothing to compare it with."""
    status = target.status or 0
    detail = f"the upgrade through target_url got HTTP {status} instead of 101: {target.error}"
    if status in (400, 426, 505):
        return fire("upgrade_rejected", detail)
    if status in (502, 503, 504):
        return fire("gateway_error_on_upgrade", detail)
    if status in (401, 403):
        return fire("upgrade_refused_auth", detail)
    return fire("upgrade_not_answered_as_websocket", detail)


def handshake_comparison(obs: Any) -> list[Signal]:
    """Target against direct: 101 direct but not through the proxy is the proxy's signature."""
    target: HandshakeResult | None = _probe(obs, "handshake_target")
    direct: HandshakeResult | None = _probe(obs, "handshake_direct")
    if target is None:
        return []
    kind = target.error_kind
    if target.ok:
        if direct is not None and direct.ok:
            return [fire("upgrade_ok_through_proxy", "101 with a valid accept key both through target_url and directly")]
        return [fire("upgrade_ok", "target_url answered the upgrade with a valid 101")]
    if kind in _LOCAL_FAILURES:
        return []
    direct_ok = direct is not None and direct.ok
    if direct_ok and kind in (FailureKind.HTTP_STATUS, FailureKind.PROTOCOL):
        return [fire("upgrade_fails_only_through_proxy", f"directly: 101; through target_url: {_answer(target)} ({target.error})")]
    if direct_ok:
        return [fire("target_fails_direct_fine", f"directly: 101; through target_url: {target.error}")]
    if kind in (FailureKind.HTTP_STATUS, FailureKind.PROTOCOL):
        if direct is not None and direct.status is not None and direct.status != 101:
            return [fire("upgrade_rejected_by_service", f"HTTP {direct.status} directly and {_answer(target)} through target_url")]
        if kind is FailureKind.PROTOCOL and target.status == 101:
            return [fire("invalid_101", f"target_url: {target.error}")]
        if target.status is not None:
            return [_status_signal(target)]
        return [fire("not_http", f"target_url: {target.error}")]
    return [fire(_NETWORK_FAILURES.get(kind, "target_unreachable"), f"target_url: {target.error}")]


# --- heartbeat ------------------------------------------------------------------------------------


def _end_text(fate: ConnectionFate) -> str:
    if fate.ended_by is EndKind.CLOSE_FRAME:
        reason = f" {_printable(fate.close_reason)!r}" if fate.close_reason else ""
        return f"a close frame {fate.close_code}{reason}"
    if fate.ended_by is EndKind.FIN:
        return "a FIN without a close frame (1006)"
    if fate.ended_by is EndKind.RST:
        return "a TCP reset (1006)"
    if fate.ended_by is EndKind.SILENCE:
        return "silence (ping and close frame unanswered, no FIN or RST)"
    if fate.ended_by is EndKind.PONG_TIMEOUT:
        return "pings unanswered while the peer still answered otherwise"
    return "a transport error"


def idle_survival(obs: Any) -> list[Signal]:
    """Who died when: idle only (an idle timeout), both at once (a lifetime), or silence (a blackhole)."""
    hb: HeartbeatResult | None = _probe(obs, "heartbeat")
    if hb is None or not hb.ok or hb.idle is None or hb.pinging is None:
        return []
    idle, pinging = hb.idle, hb.pinging
    if EndKind.PONG_TIMEOUT in (idle.ended_by, pinging.ended_by):
        return []  # a peer deaf to pings, not a path that kills connections: unanswered_pings
    if all(not f.alive_at_end and (f.lifetime_s or f.observed_s) < PEAK_MIN_AGE_S for f in (idle, pinging)):
        return []  # closed at once (shed, refused): no timer at work; the churn probe reports it
    signals: list[Signal] = []
    if not idle.alive_at_end and pinging.alive_at_end:
        age = idle.lifetime_s or idle.observed_s
        if idle.ended_by is EndKind.SILENCE:
            since = (f"after its last bytes at {idle.last_received_s:.1f} s"
                     if idle.last_received_s is not None else "(nothing received after the handshake)")
            signals.append(fire("idle_connection_blackholed",
                                f"the idle connection was found dead at {age:.1f} s {since}: no FIN, no RST, ping "
                                "and close frame unanswered, while the pinging one stayed up", age_s=round(age, 1)))
        else:
            signals.append(_idle_cut("probe_idle_cut", age,
                                     f"the idle connection ended at {age:.1f} s with {_end_text(idle)} while "
                                     f"the pinging one stayed up for {pinging.observed_s:.1f} s"))
    elif not idle.alive_at_end and not pinging.alive_at_end:
        idle_age = idle.lifetime_s or idle.observed_s
        ping_age = pinging.lifetime_s or pinging.observed_s
        if idle.ended_by is EndKind.SILENCE and pinging.ended_by is EndKind.SILENCE:
            signals.append(fire("path_blackholed", f"both connections went silent (pings and close frames unanswered, no FIN or RST) "
                f"by {idle_age:.1f} s and {ping_age:.1f} s"))
        elif same_timer(idle_age, ping_age):
            age = (idle_age + ping_age) / 2
            known = "; ".join(str(t) for t in timeouts_matching(age))
            signals.append(fire("hard_connection_lifetime",
                                f"both connections ended at about {age:.1f} s (idle: {_end_text(idle)}; pinging: "
                                f"{_end_text(pinging)}), the pinging one despite its traffic"
                                + (f"; {age:.1f} s matches {known}" if known else ""), age_s=round(age, 1)))
        else:
            signals.append(fire("probe_connections_die", f"the idle connection ended at {idle_age:.1f} s ({_end_text(idle)}), the pinging one "
                f"at {ping_age:.1f} s ({_end_text(pinging)})"))
    elif idle.alive_at_end and not pinging.alive_at_end and pinging.ended_by is EndKind.SILENCE:
        signals.append(fire("pings_blackholed", f"the pinging connection went silent at {pinging.lifetime_s or 0:.1f} s (no pong, no "
            "close frame, no FIN or RST) while the idle one lived"))
    return signals


def unanswered_pings(obs: Any) -> list[Signal]:
    """Pings ignored by a peer that is otherwise alive (it answers the close frame)."""
    hb: HeartbeatResult | None = _probe(obs, "heartbeat")
    if hb is None or not hb.ok:
        return []
    deaf = [f for f in (hb.idle, hb.pinging) if f is not None and f.ended_by is EndKind.PONG_TIMEOUT]
    if not deaf:
        return []
    return [fire("server_ignores_pings", f"{deaf[0].role} connection: {deaf[0].detail}")]


def server_heartbeat(obs: Any) -> list[Signal]:
    """Whether the server pings at all, and whether its pings come often enough for the path."""
    hb: HeartbeatResult | None = _probe(obs, "heartbeat")
    if hb is None or not hb.ok or hb.idle is None:
        return []
    idle = hb.idle
    watched = idle.observed_s
    if idle.server_pings == 0:
        if idle.messages_received:
            return []  # an application-level heartbeat (Socket.IO sends messages, not ping frames)
        first = hb.first_server_ping_s  # seen on the pinging connection, which outlived the idle one
        died = None if idle.alive_at_end or idle.ended_by is EndKind.PONG_TIMEOUT else (idle.lifetime_s or watched)
        if first is not None and died is not None and first >= died * 0.9:
            return [fire("server_heartbeat_slower_than_path",
                         f"the server's first ping came {first:.1f} s after the handshake, but the idle connection "
                         f"died at {died:.1f} s", heartbeat_s=round(first, 1), cut_s=round(died, 1))]
        outlived = hb.pinging is not None and hb.pinging.server_pings == 0 and hb.pinging.observed_s >= 1.2 * (died or 0)
        if died is not None and outlived and watched < NO_PING_WINDOW_S:
            return [fire("server_silent_past_the_cut",
                         f"no ping from the server on either probe: the idle one died at {died:.1f} s, the pinging "
                         f"one heard none in {hb.pinging.observed_s:.1f} s", cut_s=round(died, 1))]
        if watched >= NO_PING_WINDOW_S:
            return [fire("server_never_pings", f"no ping frame and no message from the server in {watched:.0f} s on an idle connection")]
        return [fire("no_server_ping_seen", f"no ping frame from the server in {watched:.1f} s on an idle connection (a short window)")]
    interval = idle.server_ping_interval_s
    every = f"every {interval:.1f} s" if interval else f"{idle.server_pings} time(s)"
    if not idle.alive_at_end and idle.ended_by is not EndKind.PONG_TIMEOUT:
        age = idle.lifetime_s or watched
        if interval is None or interval >= age * 0.9:
            return [fire("server_heartbeat_slower_than_path", f"the server pings {every}, but the idle connection died at {age:.1f} s")]
        return []
    if idle.alive_at_end:
        return [fire("server_heartbeat_present", f"the server pinged the idle connection {every} and it survived {watched:.1f} s")]
    return []


def pong_latency(obs: Any) -> list[Signal]:
    """Slow pongs: a congested path or a busy server."""
    hb: HeartbeatResult | None = _probe(obs, "heartbeat")
    if hb is None or not hb.ok or len(hb.rtt_s) < 3:
        return []
    p90 = hb.rtt_percentile(0.9) or 0.0
    if p90 < SLOW_PONG_P90_S:
        return []
    return [fire("slow_pongs", f"pong round trips p90 {p90 * 1000:.0f} ms over {len(hb.rtt_s)} pings")]


# --- churn ----------------------------------------------------------------------------------------


def churn_disconnects(obs: Any) -> list[Signal]:
    """Our own connections dropping at more than 5% per minute while we hold them."""
    churn: ChurnResult | None = _probe(obs, "churn")
    if churn is None or churn.opened == 0:
        return []
    rate = churn.close_rate_per_open_per_minute
    if rate is None or churn.closed_by_peer < MIN_PEER_CLOSES or rate <= HIGH_DISCONNECT_RATE:
        return []
    total = sum(churn.close_codes.values()) or 1
    abnormal = churn.close_codes.get(1006, 0) / total
    going_away = sum(churn.close_codes.get(c, 0) for c in (1001, 1012, 1013)) / total
    name = "probe_drops_abnormal" if abnormal >= 0.5 else "probe_drops_shed" if going_away >= 0.5 else "probe_drops_other"
    codes = ", ".join(f"{code} x{count}" for code, count in churn.close_codes.items())
    return [fire(name, f"{churn.closed_by_peer} of our connections were closed by the other end: {rate:.0%} of "
                       f"open connections per minute (codes {codes})")]


def churn_handshake_failures(obs: Any) -> list[Signal]:
    """Handshakes failing under modest concurrency (local fd limits excluded)."""
    churn: ChurnResult | None = _probe(obs, "churn")
    if churn is None or churn.attempts == 0:
        return []
    remote = churn.failed - sum(churn.failure_kinds.get(k.value, 0) for k in _LOCAL_FAILURES)
    if remote < 3 or remote / churn.attempts < FAILED_HANDSHAKE_SHARE:
        return []
    top = next(iter(churn.failures), "")
    return [fire("probe_handshakes_fail", f"{remote} of {churn.attempts} opening handshakes failed ({remote / churn.attempts:.0%}); "
        f"most often: {top}")]


def churn_latency(obs: Any) -> list[Signal]:
    """Slow opening handshakes at the tail."""
    churn: ChurnResult | None = _probe(obs, "churn")
    if churn is None or churn.opened < 20 or churn.latency_p99_s is None:
        return []
    if churn.latency_p99_s < SLOW_HANDSHAKE_P99_S:
        return []
    return [fire("slow_handshakes", f"opening handshake p99 {churn.latency_p99_s * 1000:.0f} ms (p50 "
        f"{(churn.latency_p50_s or 0) * 1000:.0f} ms) over {churn.opened} connections")]


# --- server sockets and process -------------------------------------------------------------------


def socket_states(obs: Any) -> list[Signal]:
    """CLOSE_WAIT piling up (the server never closes its side) and FIN_WAIT2 lingering."""
    sockets: SocketStatesResult | None = _probe(obs, "sockets")
    if sockets is None or not sockets.ok or not sockets.samples:
        return []
    signals = []
    first, last, peak = sockets.first("CLOSE_WAIT"), sockets.last("CLOSE_WAIT"), sockets.peak("CLOSE_WAIT")
    trend = sockets.trend_per_minute("CLOSE_WAIT")
    if last - first >= CLOSE_WAIT_GROWTH and trend > 0:
        signals.append(fire("close_wait_growing", f"CLOSE_WAIT sockets on port {sockets.port} grew from {first} to {last} ({trend:+.0f} per "
            f"minute) over {sockets.elapsed_s:.0f} s"))
    elif max(last, peak) >= CLOSE_WAIT_PRESENT:
        signals.append(fire("close_wait_present", f"{last} CLOSE_WAIT sockets on port {sockets.port} (peak {peak})"))
    fin_wait2 = sockets.peak("FIN_WAIT2")
    if fin_wait2 >= FIN_WAIT2_PRESENT and sockets.trend_per_minute("FIN_WAIT2") > 0:
        signals.append(fire("fin_wait2_growing", f"FIN_WAIT2 sockets on port {sockets.port} grew to {fin_wait2}"))
    return signals


def process_growth(obs: Any) -> list[Signal]:
    """What the connections we served left behind in the server process: fds, memory, threads."""
    process: ProcessResult | None = _probe(obs, "process")
    if process is None or not process.ok or process.served < MIN_SERVED:
        return []
    served = process.served
    signals = []
    fds = process.retained_fds
    if fds is not None and fds >= max(MIN_FDS_RETAINED, FD_RETAINED_SHARE * served):
        signals.append(fire("server_keeps_descriptors", f"{fds} more open descriptors after our {served} connections closed "
            f"({process.per_1k_served(fds):.0f} per 1,000 served)"))
    rss = process.retained_rss_bytes
    rss_1k = process.per_1k_served(rss)
    if rss_1k is not None and served >= MIN_SERVED_FOR_RSS and rss_1k >= RSS_LEAK_PER_CONNECTION * 1000:
        signals.append(fire("server_memory_grows", f"RSS grew {rss / 2**20:.1f} MiB over {served} connections served "
            f"({rss_1k / 2**20:.0f} MiB per 1,000) and stayed after they closed"))
    threads = process.retained_threads
    if threads is not None and threads >= max(MIN_FDS_RETAINED, FD_RETAINED_SHARE * served):
        signals.append(fire("server_threads_grow", f"{threads} more threads after our {served} connections closed"))
    clean = (fds is not None and fds <= 1 and served >= MIN_SERVED_FOR_RSS and rss_1k is not None
             and rss_1k < RSS_CLEAN_PER_CONNECTION * 1000)
    if clean and not signals:
        signals.append(fire("server_releases_resources", f"descriptors back to their count and RSS within {rss_1k / 2**20:.1f} MiB per 1,000 "
            f"after {served} connections served"))
    return signals


PROBE_RULES: tuple[ProbeRule, ...] = (
    handshake_comparison,
    idle_survival,
    unanswered_pings,
    server_heartbeat,
    pong_latency,
    churn_disconnects,
    churn_handshake_failures,
    churn_latency,
    socket_states,
    process_growth,
)


def probe_signals(obs: Any) -> list[Signal]:
    """Run every probe rule in order on ``obs`` (an Observations or a ProbeReport)."""
    return [signal for rule in PROBE_RULES for signal in rule(obs)]
