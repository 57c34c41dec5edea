"""Evidence rules for the live probes: what the handshake, heartbeat, churn and server sampling saw.

Same contract as :mod:`runbook.diagnosis.rules`: ``rule(observations) -> list[Signal]``, pure,
listed in PROBE_RULES. A rule reads the attributes named in ``runbook.observations.PROBE_FIELDS``
(``handshake_target``, ``handshake_direct``, ``heartbeat``, ``churn``, ``sockets``,
``process``) with ``getattr(obs, name, None)``, so it takes an Observations carrying those fields
or a ProbeReport alike; a missing or None attribute means that probe did not run.

Ratios stay modest (1.3-4) as the ranking multiplies them as if independent, with two
exceptions measured directly on the wire, where a live probe is close to proof: 101 directly but
not through the proxy (8 for proxy), and CLOSE_WAIT piling up on the server port (6 for a leak).
Probe signals have source "probe"; socket and process signals have source "server".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runbook.diagnosis.causes import Cause
from runbook.diagnosis.evidence import Signal
from runbook.diagnosis.timeouts import timeouts_matching
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

P, H, N, L, C = Cause.PROXY, Cause.HEARTBEAT, Cause.NETWORK, Cause.RESOURCE_LEAK, Cause.CLIENT

ProbeRule = Callable[[Any], list[Signal]]

# The ">5% of connections per minute" symptom (DESIGN.md, high_disconnect_rate).
HIGH_CLOSE_RATE = 0.05
MIN_PEER_CLOSES = 2
# Seconds of idle observation after which a server that never pinged has no heartbeat at all:
# longer than python-websockets' 20 s and Socket.IO's 25 s ping intervals (facts.md).
NO_PING_WINDOW_S = 25.0
# Two deaths this close together (max of 1 s and 15%) are the same timer.
SAME_AGE_ABS_S, SAME_AGE_REL = 1.0, 0.15
SLOW_PONG_P90_S = 0.5
SLOW_HANDSHAKE_P99_S = 1.0
FAILED_HANDSHAKE_SHARE = 0.05
# CLOSE_WAIT sockets gained over the window before we call it a pile-up.
CLOSE_WAIT_GROWTH = 5
CLOSE_WAIT_PRESENT = 10
FIN_WAIT2_PRESENT = 10
# Server process: what connections served may leave behind.
MIN_SERVED = 20
MIN_SERVED_FOR_RSS = 100
RSS_PER_1K_LEAK = 20 * 2**20  # 20 KiB kept per connection served
RSS_PER_1K_CLEAN = 5 * 2**20
FD_RETAINED_SHARE = 0.05
MIN_FDS_RETAINED = 5

_LOCAL_FAILURES = {FailureKind.TOO_MANY_FILES, FailureKind.OS_ERROR}  # our host, not the path


def _probe(obs: Any, name: str) -> Any:
    return getattr(obs, name, None)


def _signal(name: str, detail: str, rationale: str, ratios: dict[Cause, float],
            source: str = "probe") -> Signal:
    return Signal(name, detail, rationale, ratios, source=source)


def _printable(text: str | None, limit: int = 60) -> str:
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in (text or ""))
    return cleaned[:limit]


def _answer(result: HandshakeResult) -> str:
    if result.ok:
        return "101"
    if result.status is not None:
        return f"HTTP {result.status}"
    return f"{result.error_kind or 'failed'}"


def _known_timeout_signal(name: str, seconds: float, what: str) -> list[Signal]:
    """A death at a well-known intermediary default names the component (as lifetime_peaks does)."""
    known = timeouts_matching(seconds)
    if not known:
        return []
    names = "; ".join(str(t) for t in known)
    network = all(t.cause is Cause.NETWORK for t in known)
    return [_signal(
        name, f"{what} at {seconds:.1f} s matches {names}",
        "a cut at a fixed, well-known default interval points to that intermediary",
        {N: 2.0, P: 1.2} if network else {P: 2.0, H: 1.2},
    )]


# --- handshake ------------------------------------------------------------------------------------

_NETWORK_FAILURES: dict[FailureKind, tuple[str, str, dict[Cause, float]]] = {
    FailureKind.DNS: ("target_dns_failure",
                      "the host name does not resolve: a wrong URL or broken DNS; no client connects at all",
                      {N: 1.5}),
    FailureKind.REFUSED: ("target_connection_refused",
                          "nothing listens at the address: the server or proxy is down or on another port",
                          {P: 1.3, N: 1.3, L: 1.3}),
    FailureKind.UNREACHABLE: ("target_unreachable",
                              "no route to the host: a network or firewall problem",
                              {N: 2.0}),
    FailureKind.TIMEOUT: ("target_handshake_timeout",
                          "the opening handshake got no answer in time: packets dropped, or an "
                          "overloaded server or proxy",
                          {N: 1.8, P: 1.3, L: 1.3}),
    FailureKind.TLS: ("target_tls_failure",
                      "TLS usually terminates at the proxy or load balancer: its certificate or TLS "
                      "settings stop every client",
                      {P: 1.5, N: 1.2}),
    FailureKind.RESET: ("target_reset_during_handshake",
                        "a reset during the opening handshake comes from a proxy, firewall or a "
                        "server that drops the connection",
                        {P: 1.5, N: 1.5}),
    FailureKind.CLOSED: ("target_closed_during_handshake",
                         "the connection was closed before any answer: a proxy or server dropping "
                         "the upgrade",
                         {P: 1.5, N: 1.3}),
}


def _status_signal(target: HandshakeResult) -> Signal:
    """A non-101 through the target when there is nothing to compare it with."""
    status = target.status or 0
    detail = f"the upgrade through target_url got HTTP {status} instead of 101: {target.error}"
    if status in (400, 426, 505):
        return _signal("upgrade_rejected", detail,
                       "400/426 to an upgrade is what a backend answers when a proxy strips the "
                       "Upgrade/Connection headers, 505 when it speaks HTTP/1.0 upstream",
                       {P: 3.0, C: 1.2, H: 0.7})
    if status in (502, 503, 504):
        return _signal("gateway_error_on_upgrade", detail,
                       "a gateway error means the proxy could not get an answer from the backend: "
                       "wrong upstream, backend down or overloaded",
                       {P: 2.0, L: 1.5, N: 1.2, H: 0.7})
    if status in (401, 403):
        return _signal("upgrade_refused_auth", detail,
                       "authentication or an Origin check refused the upgrade: the request (or "
                       "the application's policy) is the problem, not the transport",
                       {C: 1.5, P: 1.2, H: 0.8, N: 0.8})
    return _signal("upgrade_not_answered_as_websocket", detail,
                   "the URL does not lead to a WebSocket endpoint (a page, a redirect, a 404): a "
                   "proxy route or the client's URL is wrong",
                   {P: 1.5, C: 1.5, H: 0.8, N: 0.8})


def handshake_comparison(obs: Any) -> list[Signal]:
    """Target against direct: 101 direct but not through the proxy is the proxy's signature."""
    target: HandshakeResult | None = _probe(obs, "handshake_target")
    direct: HandshakeResult | None = _probe(obs, "handshake_direct")
    if target is None:
        return []
    kind = target.error_kind
    if target.ok:
        if direct is not None and direct.ok:
            return [_signal("upgrade_ok_through_proxy",
                            "101 with a valid accept key both through target_url and directly",
                            "the proxy forwards the upgrade: missing Upgrade/Connection headers are "
                            "ruled out (its timeouts are not)", {P: 0.7})]
        return [_signal("upgrade_ok", "target_url answered the upgrade with a valid 101",
                        "the upgrade passes: a proxy stripping Upgrade/Connection is unlikely "
                        "(its timeouts are not ruled out)", {P: 0.85})]
    if kind in _LOCAL_FAILURES:
        return []
    direct_ok = direct is not None and direct.ok
    if direct_ok and kind in (FailureKind.HTTP_STATUS, FailureKind.PROTOCOL):
        return [_signal("upgrade_fails_only_through_proxy",
                        f"directly: 101; through target_url: {_answer(target)} ({target.error})",
                        "the backend speaks WebSocket and the proxy in front does not pass the upgrade "
                        "on: the signature of missing proxy_http_version 1.1 / Upgrade / Connection",
                        {P: 8.0, H: 0.6, N: 0.6, L: 0.6, C: 0.5})]
    if direct_ok:
        return [_signal("target_fails_direct_fine",
                        f"directly: 101; through target_url: {target.error}",
                        "the service answers, but not on the public path: the proxy, load balancer "
                        "or network in between fails",
                        {P: 2.5, N: 2.5, H: 0.7, L: 0.8, C: 0.6})]
    if kind in (FailureKind.HTTP_STATUS, FailureKind.PROTOCOL):
        if direct is not None and direct.status is not None and direct.status != 101:
            return [_signal("upgrade_rejected_by_service",
                            f"HTTP {direct.status} directly and {_answer(target)} through target_url",
                            "the service itself refuses the upgrade (path, Origin or authentication), "
                            "with or without the proxy: fix the request or the application first",
                            {P: 0.4, C: 2.0})]
        if kind is FailureKind.PROTOCOL and target.status == 101:
            return [_signal("invalid_101", f"target_url: {target.error}",
                            "a 101 that breaks RFC 6455 4.2.2 comes from a middlebox rewriting the "
                            "handshake or a broken server", {P: 3.0, C: 1.2})]
        if target.status is not None:
            return [_status_signal(target)]
        return [_signal("not_http", f"target_url: {target.error}",
                        "something that is not an HTTP server answers on that port: a wrong port or "
                        "a proxy speaking another protocol", {P: 1.5, C: 1.5})]
    name, rationale, ratios = _NETWORK_FAILURES.get(
        kind, ("target_unreachable", "the endpoint could not be reached", {N: 1.5}))
    return [_signal(name, f"target_url: {target.error}", rationale, ratios)]


# --- heartbeat ------------------------------------------------------------------------------------


def _same_age(a: float, b: float) -> bool:
    return abs(a - b) <= max(SAME_AGE_ABS_S, SAME_AGE_REL * max(a, b))


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
    signals: list[Signal] = []
    if not idle.alive_at_end and pinging.alive_at_end:
        age = idle.lifetime_s or idle.observed_s
        if idle.ended_by is EndKind.SILENCE:
            since = (f"after its last bytes at {idle.last_received_s:.1f} s"
                     if idle.last_received_s is not None else "(nothing received after the handshake)")
            signals.append(_signal(
                "idle_connection_blackholed",
                f"the idle connection was found dead at {age:.1f} s {since}: no FIN, no RST, ping "
                f"and close frame unanswered, while the pinging one stayed up",
                "a silent drop is the signature of a NAT or stateful firewall forgetting an idle "
                "flow (proxies and load balancers close with a FIN or RST); a heartbeat shorter "
                "than its timeout keeps the flow alive",
                {N: 4.0, H: 1.5, P: 0.8, L: 0.5, C: 0.5}))
        else:
            signals.append(_signal(
                "idle_timeout_in_path",
                f"the idle connection ended at {age:.1f} s with {_end_text(idle)} while the "
                f"pinging one stayed up for {pinging.observed_s:.1f} s",
                f"an idle timeout of about {age:.0f} s sits in the path (proxy read timeout, load "
                f"balancer idle timeout); a heartbeat more often than every {age:.0f} s keeps "
                f"connections alive",
                {P: 3.0, H: 3.0, N: 1.5, L: 0.5, C: 0.5}))
            signals += _known_timeout_signal("idle_timeout_at_known_default", age,
                                             "the idle connection's death")
    elif not idle.alive_at_end and not pinging.alive_at_end:
        idle_age = idle.lifetime_s or idle.observed_s
        ping_age = pinging.lifetime_s or pinging.observed_s
        if idle.ended_by is EndKind.SILENCE and pinging.ended_by is EndKind.SILENCE:
            signals.append(_signal(
                "path_blackholed",
                f"both connections went silent (pings and close frames unanswered, no FIN or RST) "
                f"by {idle_age:.1f} s and {ping_age:.1f} s",
                "packets vanish on the way without any reset: a firewall, NAT or broken link "
                "blackholes the flows, traffic or not",
                {N: 4.0, P: 1.3, H: 0.7, L: 0.7, C: 0.5}))
        elif _same_age(idle_age, ping_age):
            age = (idle_age + ping_age) / 2
            signals.append(_signal(
                "hard_connection_lifetime",
                f"both connections ended at about {age:.1f} s (idle: {_end_text(idle)}; pinging: "
                f"{_end_text(pinging)}), the pinging one despite its traffic",
                "traffic did not keep the connection alive: a maximum connection lifetime (GCP "
                "backend timeoutSec, API gateways) or an aggressive socket timeout; a heartbeat "
                "will not fix it, reconnecting before the limit will",
                {P: 2.5, N: 2.0, H: 0.4, L: 0.7, C: 0.5}))
            signals += _known_timeout_signal("lifetime_at_known_default", age, "both connections' death")
        else:
            signals.append(_signal(
                "both_connections_died",
                f"the idle connection ended at {idle_age:.1f} s ({_end_text(idle)}), the pinging one "
                f"at {ping_age:.1f} s ({_end_text(pinging)})",
                "connections die whether or not they carry traffic: the path or the server is "
                "unstable", {P: 1.5, N: 1.5, H: 0.7, C: 0.7}))
    elif idle.alive_at_end and not pinging.alive_at_end and pinging.ended_by is EndKind.SILENCE:
        signals.append(_signal(
            "pings_blackholed",
            f"the pinging connection went silent at {pinging.lifetime_s or 0:.1f} s (no pong, no "
            "close frame, no FIN or RST) while the idle one lived",
            "a path that swallows packets without a reset is a network fault (firewall, NAT, "
            "lossy link)", {N: 3.0, P: 1.2, H: 0.8}))
    return signals


def unanswered_pings(obs: Any) -> list[Signal]:
    """Pings ignored by a peer that is otherwise alive (it answers the close frame)."""
    hb: HeartbeatResult | None = _probe(obs, "heartbeat")
    if hb is None or not hb.ok:
        return []
    deaf = [f for f in (hb.idle, hb.pinging) if f is not None and f.ended_by is EndKind.PONG_TIMEOUT]
    if not deaf:
        return []
    return [_signal(
        "server_ignores_pings",
        f"{deaf[0].role} connection: {deaf[0].detail}",
        "RFC 6455 5.5.2 requires a pong for every ping: a server (or a blocked event loop) that "
        "does not answer makes every client heartbeat time out and drop the connection",
        {H: 2.0, L: 1.5, N: 0.8, C: 0.8})]


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
        if watched >= NO_PING_WINDOW_S:
            return [_signal(
                "server_never_pings",
                f"no ping frame and no message from the server in {watched:.0f} s on an idle connection",
                "servers with a keepalive ping every 20-30 s (python-websockets 20 s, Socket.IO "
                "25 s); none in this window means no heartbeat: idle connections die at the "
                "first intermediary timeout and dead peers linger",
                {H: 2.5, P: 1.1, L: 1.2})]
        return [_signal(
            "no_server_ping_seen",
            f"no ping frame from the server in {watched:.1f} s on an idle connection (a short window)",
            "a server with a heartbeat pings every 20-30 s by default; this window is too short to "
            "be sure it has none", {H: 1.3})]
    interval = idle.server_ping_interval_s
    every = f"every {interval:.1f} s" if interval else f"{idle.server_pings} time(s)"
    if not idle.alive_at_end and idle.ended_by is not EndKind.PONG_TIMEOUT:
        age = idle.lifetime_s or watched
        if interval is None or interval >= age * 0.9:
            return [_signal(
                "server_heartbeat_slower_than_path",
                f"the server pings {every}, but the idle connection died at {age:.1f} s",
                "the heartbeat exists but is slower than the path's idle timeout: ping more often "
                "than it", {H: 2.0, P: 1.3})]
        return []
    if idle.alive_at_end:
        return [_signal(
            "server_heartbeat_present",
            f"the server pinged the idle connection {every} and it survived {watched:.1f} s",
            "a server keepalive is in place: missing pings are not the cause", {H: 0.4})]
    return []


def pong_latency(obs: Any) -> list[Signal]:
    """Slow pongs: a congested path or a busy server."""
    hb: HeartbeatResult | None = _probe(obs, "heartbeat")
    if hb is None or not hb.ok or len(hb.rtt_s) < 3:
        return []
    p90 = hb.rtt_percentile(0.9) or 0.0
    if p90 < SLOW_PONG_P90_S:
        return []
    return [_signal(
        "slow_pongs",
        f"pong round trips p90 {p90 * 1000:.0f} ms over {len(hb.rtt_s)} pings",
        "slow pongs push heartbeats toward their timeout (1011 keepalive ping timeout): a "
        "congested or lossy network, or a server whose event loop is busy",
        {N: 1.5, L: 1.3})]


# --- churn ----------------------------------------------------------------------------------------


def churn_disconnects(obs: Any) -> list[Signal]:
    """Our own connections dropping at more than 5% per minute while we hold them."""
    churn: ChurnResult | None = _probe(obs, "churn")
    if churn is None or churn.opened == 0:
        return []
    rate = churn.close_rate_per_open_per_minute
    if rate is None or churn.closed_by_peer < MIN_PEER_CLOSES or rate <= HIGH_CLOSE_RATE:
        return []
    total = sum(churn.close_codes.values()) or 1
    abnormal = churn.close_codes.get(1006, 0) / total
    going_away = sum(churn.close_codes.get(c, 0) for c in (1001, 1012, 1013)) / total
    if abnormal >= 0.5:
        ratios = {P: 1.5, H: 1.3, N: 1.5, L: 0.8, C: 0.5}
        why = "most ended without a close frame: something under the WebSocket cuts the TCP connection"
    elif going_away >= 0.5:
        ratios = {L: 1.5, P: 1.2, N: 0.8, C: 0.5}
        why = "most were closed by the server as going away/restarting/overloaded (1001/1012/1013)"
    else:
        ratios = {P: 1.3, N: 1.3, C: 0.5}
        why = "the server or path closes connections while a well-behaved client holds them"
    codes = ", ".join(f"{code} x{count}" for code, count in churn.close_codes.items())
    return [_signal(
        "probe_disconnect_rate_high",
        f"{churn.closed_by_peer} of our connections were closed by the other end: {rate:.0%} of open "
        f"connections per minute (codes {codes})",
        f"more than 5% per minute is the high disconnect rate symptom, reproduced by a client that "
        f"does nothing wrong; {why}", ratios)]


def churn_handshake_failures(obs: Any) -> list[Signal]:
    """Handshakes failing under modest concurrency (local fd limits excluded)."""
    churn: ChurnResult | None = _probe(obs, "churn")
    if churn is None or churn.attempts == 0:
        return []
    remote = churn.failed - sum(churn.failure_kinds.get(k.value, 0) for k in _LOCAL_FAILURES)
    if remote < 3 or remote / churn.attempts < FAILED_HANDSHAKE_SHARE:
        return []
    top = next(iter(churn.failures), "")
    return [_signal(
        "probe_handshakes_fail",
        f"{remote} of {churn.attempts} opening handshakes failed ({remote / churn.attempts:.0%}); "
        f"most often: {top}",
        "upgrades that fail under modest, capped concurrency point to proxy limits "
        "(worker_connections, maxconn), an overloaded server or exhausted descriptors",
        {P: 2.0, L: 1.5, N: 1.3, C: 0.7})]


def churn_latency(obs: Any) -> list[Signal]:
    """Slow opening handshakes at the tail."""
    churn: ChurnResult | None = _probe(obs, "churn")
    if churn is None or churn.opened < 20 or churn.latency_p99_s is None:
        return []
    if churn.latency_p99_s < SLOW_HANDSHAKE_P99_S:
        return []
    return [_signal(
        "slow_handshakes",
        f"opening handshake p99 {churn.latency_p99_s * 1000:.0f} ms (p50 "
        f"{(churn.latency_p50_s or 0) * 1000:.0f} ms) over {churn.opened} connections",
        "a slow tail at modest concurrency means queueing: a full accept backlog, an overloaded "
        "proxy or server, or packet loss (SYN retransmits take 1 s)",
        {L: 1.5, P: 1.3, N: 1.3})]


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
        signals.append(_signal(
            "close_wait_growing",
            f"CLOSE_WAIT sockets on port {sockets.port} grew from {first} to {last} ({trend:+.0f} per "
            f"minute) over {sockets.elapsed_s:.0f} s",
            "CLOSE_WAIT means the peer closed and the server never closed its side: connection "
            "objects (and their descriptors) are leaking", {L: 6.0, P: 0.8, H: 0.8, N: 0.8, C: 0.8},
            source="server"))
    elif max(last, peak) >= CLOSE_WAIT_PRESENT:
        signals.append(_signal(
            "close_wait_present",
            f"{last} CLOSE_WAIT sockets on port {sockets.port} (peak {peak})",
            "sockets the peer closed but the server did not: slow or missing clean-up",
            {L: 2.5}, source="server"))
    fin_wait2 = sockets.peak("FIN_WAIT2")
    if fin_wait2 >= FIN_WAIT2_PRESENT and sockets.trend_per_minute("FIN_WAIT2") > 0:
        signals.append(_signal(
            "fin_wait2_growing",
            f"FIN_WAIT2 sockets on port {sockets.port} grew to {fin_wait2}",
            "the server closed and the peers never finished: clients that vanished (network drops, "
            "no heartbeat to notice)", {N: 1.5, H: 1.5}, source="server"))
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
        signals.append(_signal(
            "server_keeps_descriptors",
            f"{fds} more open descriptors after our {served} connections closed "
            f"({process.per_1k_served(fds):.0f} per 1,000 served)",
            "descriptors that outlive their connections are sockets nobody closed: a connection leak",
            {L: 5.0, P: 0.8, H: 0.8, N: 0.8, C: 0.8}, source="server"))
    rss = process.retained_rss_bytes
    rss_1k = process.per_1k_served(rss)
    if rss_1k is not None and served >= MIN_SERVED_FOR_RSS and rss_1k >= RSS_PER_1K_LEAK:
        signals.append(_signal(
            "server_memory_grows",
            f"RSS grew {rss / 2**20:.1f} MiB over {served} connections served "
            f"({rss_1k / 2**20:.0f} MiB per 1,000) and stayed after they closed",
            "memory kept per connection served is state (timers, listeners, buffers) that is never "
            "released", {L: 3.0}, source="server"))
    threads = process.retained_threads
    if threads is not None and threads >= max(MIN_FDS_RETAINED, FD_RETAINED_SHARE * served):
        signals.append(_signal(
            "server_threads_grow",
            f"{threads} more threads after our {served} connections closed",
            "threads started per connection and never joined leak with the connections",
            {L: 2.0}, source="server"))
    clean = (fds is not None and fds <= 1 and served >= MIN_SERVED_FOR_RSS and rss_1k is not None
             and rss_1k < RSS_PER_1K_CLEAN)
    if clean and not signals:
        signals.append(_signal(
            "server_releases_resources",
            f"descriptors back to their count and RSS within {rss_1k / 2**20:.1f} MiB per 1,000 "
            f"after {served} connections served",
            "the server cleans up after closed connections: a leak is unlikely", {L: 0.5},
            source="server"))
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
