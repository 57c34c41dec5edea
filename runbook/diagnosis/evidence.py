"""The evidence table: every signal the ranking can use, declared once, with its family.

A signal is a named observation ("connections are cut at one fixed age") with a likelihood ratio
per root cause: how much more likely the observation is when that cause is at work than on
average (1.0 for causes it says nothing about). Rules in ``rules.py`` and ``probe_rules.py``
decide *whether* a signal fires and with which figures; *what it weighs* lives only here.

Signals that report one mechanism belong to one ``Family``: a single 60 s idle cut shows as a
lifetime cluster in the logs, as an idle probe dying at 60 s and as a default in the proxy
config. The ranking takes at most one ratio per family (the strongest signal that fired in it),
so one fact is never counted twice. Every threshold the rules share lives here too.

``basis`` says where a signal's meaning comes from (a fact in shared/reference/, or the
reference runbook); ``numbers`` says where its ratios come from: set by hand from that fact, or
calibrated on the labeled corpus (``data/corpus``, calibration split) at a named commit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from runbook.diagnosis.causes import Cause
from runbook.logs.metrics import DISCONNECT_RATE_THRESHOLD
from runbook.logs.metrics import STORM_GAP_S as METRICS_STORM_GAP_S

P, H, N, L, C = Cause.PROXY, Cause.HEARTBEAT, Cause.NETWORK, Cause.RESOURCE_LEAK, Cause.CLIENT


class Family(StrEnum):
    """Mechanisms: signals of one family report the same underlying fact."""

    IDLE_TIMER = "idle_timer"  # connections cut at one age (idle timeout, lifetime cap, silent drop)
    ABNORMAL_SHARE = "abnormal_share"  # how many closes lack a close frame
    HEARTBEAT = "heartbeat"  # whether the server pings, and often enough
    LINGERING_PEERS = "lingering_peers"  # dead peers the server never notices
    KEEPALIVE_FAILURES = "keepalive_failures"  # pings that go unanswered
    BLACKHOLE = "blackhole"  # flows that go silent without FIN or RST
    UPGRADE = "upgrade"  # the opening handshake through the proxy
    REACHABILITY = "reachability"  # whether the endpoint can be reached at all
    RETAINED = "retained"  # sockets, descriptors, memory kept after connections close
    RECONNECT = "reconnect"  # how clients come back after a close
    SHEDDING = "shedding"  # the server closing connections because it is overloaded or restarting
    MOBILE = "mobile"  # mobile clients dropping more than desktop ones
    LATENCY = "latency"  # slow pongs and handshakes
    MASS_DISCONNECT = "mass_disconnect"  # many clients dropped in the same second
    CONFIG_UPGRADE = "config_upgrade"  # what the proxy config does with the upgrade
    # The path's idle timeout against the heartbeat, however it is known (config, logs, probe):
    # "the proxy times out before the first ping" is one fact whichever input shows it.
    TIMEOUT_VS_HEARTBEAT = "timeout_vs_heartbeat"


class Input(StrEnum):
    """Which input a signal is read from (shown to the user beside it)."""

    LOGS = "logs"
    PROBE = "probe"
    SERVER = "server"
    CONFIG = "config"


HAND_SET = "set by hand from the basis; not yet calibrated on the corpus"
# Ratios moved after reading the corpus's calibration split (data/corpus/split.json; the
# evaluation split was never tuned on), in commits 014c3c7, 7a3f9f5 and 90ac7fb.
CALIBRATED = "set by hand from the basis, adjusted on the corpus calibration split (014c3c7, 7a3f9f5, 90ac7fb)"
# A retry loop against a failing handshake: enough to put the loop in the top two beside what
# broke the handshake, not to outrank it; and a broken upgrade lowers every other cause alike
# (the client's 0.4 became 0.5). Set on the calibration cases ng/ha-two-upgrade-loop (added
# after the split) and ng/ha-proxy-upgrade-a.
CALIBRATED_RETRY = "set on the corpus calibration split: ng/ha-two-upgrade-loop, ng/ha-proxy-upgrade-a (issue 7)"


@dataclass(frozen=True)
class SignalSpec:
    id: str
    family: Family
    input: Input
    ratios: dict[Cause, float]
    rationale: str  # one line: why the observation moves the ranking this way
    basis: str  # where the meaning comes from
    numbers: str = HAND_SET

    def __post_init__(self) -> None:
        for cause, ratio in self.ratios.items():
            if not isinstance(cause, Cause) or not ratio > 0:
                raise ValueError(f"signal {self.id}: likelihood ratio for {cause!r} must be > 0")

    @property
    def strength(self) -> float:
        """How far the signal moves the odds of any cause (for the one-per-family rule)."""
        return max((abs(math.log(r)) for r in self.ratios.values()), default=0.0)


@dataclass(frozen=True)
class Signal:
    """One piece of evidence that fired: its table entry, what was measured, and the figures."""

    spec: SignalSpec
    detail: str  # what was measured, with the figures, in words
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.id

    @property
    def family(self) -> Family:
        return self.spec.family

    @property
    def rationale(self) -> str:
        return self.spec.rationale

    @property
    def likelihood_ratios(self) -> dict[Cause, float]:
        return self.spec.ratios

    @property
    def source(self) -> str:
        return self.spec.input.value

    def ratio(self, cause: Cause) -> float:
        return self.spec.ratios.get(cause, 1.0)

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}"


def fire(signal_id: str, detail: str, **figures: Any) -> Signal:
    """The signal ``signal_id`` of the table, with what was measured. KeyError for an unknown id."""
    return Signal(SIGNALS[signal_id], detail, figures)


# --- thresholds shared by the rules ---------------------------------------------------------

# Enough data: fewer closes than this cannot tell a pattern from chance.
MIN_CLOSES = 10
# Two ages within max(1 s, 15%) of each other are the same timer (an idle timer fires T after
# the last frame, plus handshake and scheduling slack).
SAME_TIMER_ABS_S, SAME_TIMER_REL = 1.0, 0.15
# A share of closes counts as "most" from here.
MOST = 0.5
# The figures the metrics compute with (the 5% symptom, what makes a reconnect a storm) are
# defined once, in runbook.logs.metrics, and read here under the names the rules use.
HIGH_DISCONNECT_RATE = DISCONNECT_RATE_THRESHOLD
STORM_GAP_S = METRICS_STORM_GAP_S
STORM_MIN_CLIENTS = 3
# Shedding closes (1012/1013) from this share of the closes on.
SHED_SHARE = 0.1
# Server-state growth (offline snapshots and live sampling alike).
CLOSE_WAIT_GROWTH = 5
CLOSE_WAIT_PRESENT = 10
FIN_WAIT2_PRESENT = 10
# Seconds of idle observation after which a server that never pinged has no heartbeat:
# longer than python-websockets' 20 s and Socket.IO's 25 s intervals (facts.md).
NO_PING_WINDOW_S = 25.0
# Closes naming a ping timeout, from this share of the closes on: the heartbeat is on and its own
# timer (interval + timeout) is what ends connections, not an intermediary's idle cut.
KEEPALIVE_SHARE = 0.1
# Clients back twice while their first connection stayed open, from this many on.
LINGERING_MIN_CLIENTS = 3
# A storm read over a population without client identity: each open connection replaced this
# many times a minute (users coming and going, or an idle cut each minute, stay near 1).
STORM_TURNOVER = 10.0
MOBILE_MIN_RATIO = 2.0
# Memory a connection leaves behind once closed. Allocators keep some after churn (the lab's
# python server holds 30-45 KiB per connection cut or served and closed); the lab's leaking
# servers keep 128 KiB and more. A leak needs a fifth more RSS over the window too.
RSS_LEAK_PER_CONNECTION = 64 * 1024
RSS_CLEAN_PER_CONNECTION = 5 * 1024
RSS_GROWTH_SHARE = 0.2
FD_GROWTH = 5
FD_RETAINED_SHARE = 0.05
MIN_FDS_RETAINED = 5
# Live sampling needs this many connections served to read what they leave behind (and more for
# memory, which is noisier than descriptors).
MIN_SERVED = 20
MIN_SERVED_FOR_RSS = 100
# Probes: peer closes needed for a rate, the slow tails, the failing-handshake share.
MIN_PEER_CLOSES = 2
SLOW_PONG_P90_S = 0.5
SLOW_HANDSHAKE_P99_S = 1.0
FAILED_HANDSHAKE_SHARE = 0.05
# A burst belongs to an event that happened up to this long before it (ingress-nginx drops its
# sockets up to worker-shutdown-timeout, 240 s, after a reload: facts.md), or a little after it
# (clocks of two hosts disagree).
EVENT_MATCH_S = 300.0
EVENT_SKEW_S = 30.0


def same_timer(a: float, b: float) -> bool:
    """Whether two ages are one timer firing (the one tolerance for "the same timer")."""
    return abs(a - b) <= max(SAME_TIMER_ABS_S, SAME_TIMER_REL * max(a, b))


_FACTS = "shared/reference/facts.md"


def _specs(*specs: SignalSpec) -> dict[str, SignalSpec]:
    table: dict[str, SignalSpec] = {}
    for spec in specs:
        if spec.id in table:
            raise ValueError(f"signal {spec.id} declared twice")
        table[spec.id] = spec
    return table


S = SignalSpec
F, I = Family, Input

SIGNALS: dict[str, SignalSpec] = _specs(
    # --- an idle timer or lifetime cap in the path ----------------------------------------------
    S("lifetime_timer", F.IDLE_TIMER, I.LOGS, {P: 3.0, H: 3.0, N: 1.5},
      "a sharp excess of lifetimes at one age is a timer in the path (proxy read timeout, LB idle "
      "timeout): either the proxy times out before the heartbeat or there is no heartbeat",
      f"{_FACTS}: default timeouts; 'disconnects at a fixed interval point to an intermediary'", numbers=CALIBRATED),
    S("lifetime_timer_at_proxy_default", F.IDLE_TIMER, I.LOGS, {P: 4.0, H: 3.0, N: 1.2},
      "the cut matches the default idle timeout of a proxy or load balancer: that component cuts "
      "idle connections before any heartbeat",
      f"{_FACTS}: default timeouts (nginx 60 s, ALB 60 s, Cloudflare 100 s, ...)", numbers=CALIBRATED),
    S("lifetime_timer_at_network_default", F.IDLE_TIMER, I.LOGS, {N: 3.0, H: 3.0, P: 1.2},
      "the cut matches the idle timeout of a NAT gateway or L4 balancer (Azure 4 min, AWS NLB/NAT "
      "350 s)", f"{_FACTS}: default timeouts", numbers=CALIBRATED),
    S("probe_idle_cut", F.IDLE_TIMER, I.PROBE, {P: 3.0, H: 3.0, N: 1.5},
      "the idle probe died while the pinging one lived: an idle timeout sits in the path; a "
      "heartbeat more often than it keeps connections alive",
      f"{_FACTS}: default timeouts; RFC 6455 5.5.2 (pings are traffic)", numbers=CALIBRATED),
    S("probe_idle_cut_at_proxy_default", F.IDLE_TIMER, I.PROBE, {P: 4.0, H: 3.0, N: 1.2},
      "the idle probe died at the default idle timeout of a proxy or load balancer",
      f"{_FACTS}: default timeouts", numbers=CALIBRATED),
    S("probe_idle_cut_at_network_default", F.IDLE_TIMER, I.PROBE, {N: 3.0, H: 3.0, P: 1.2},
      "the idle probe died at the idle timeout of a NAT gateway or L4 balancer",
      f"{_FACTS}: default timeouts", numbers=CALIBRATED),
    S("hard_connection_lifetime", F.IDLE_TIMER, I.PROBE, {P: 3.0, N: 2.0, H: 0.4, L: 0.6, C: 0.5},
      "traffic did not keep the connection alive: a maximum lifetime (GCP backend timeoutSec, API "
      "gateways) or an aggressive socket timeout; a heartbeat will not fix it",
      f"{_FACTS}: GCP 30 s maximum lifetime even with traffic; API Gateway 2 h"),
    # --- close frames missing --------------------------------------------------------------------
    S("abnormal_closes_dominate", F.ABNORMAL_SHARE, I.LOGS, {P: 1.5, H: 1.5, N: 1.5, C: 0.7},
      "most closes carry no close frame (1006) or an error code: something under the WebSocket "
      "kills the TCP connection; applications and clients that mean to leave send a frame",
      f"{_FACTS}: close codes (1006 is never sent: the TCP connection died)", numbers=CALIBRATED),
    S("abnormal_closes_at_random_ages", F.ABNORMAL_SHARE, I.LOGS, {N: 2.5, H: 1.2, P: 0.7, L: 0.6, C: 0.6},
      "abnormal closes spread over all ages: no timer is at work; lossy networks, NAT rebinding "
      "or sleeping devices drop connections at any age",
      f"{_FACTS}: close codes; iOS/Android backgrounding"),
    S("closes_clean", F.ABNORMAL_SHARE, I.LOGS, {P: 0.7, H: 0.6, N: 0.6},
      "almost every close carries a deliberate code: nothing in the path cuts connections",
      f"{_FACTS}: who closes, and what is normal"),
    S("probe_drops_abnormal", F.ABNORMAL_SHARE, I.PROBE, {P: 1.5, H: 1.3, N: 1.5, C: 0.5},
      "a well-behaved client's connections drop at more than 5% per minute, mostly without a close "
      "frame: something under the WebSocket cuts them", "reference runbook: >5% per minute", numbers=CALIBRATED),
    S("probe_connections_die", F.ABNORMAL_SHARE, I.PROBE, {P: 1.5, N: 1.5, H: 0.7, C: 0.7},
      "the idle and the pinging probe both died, at different ages: the path or the server is "
      "unstable, traffic or not", "comparison of the idle and pinging probes"),
    S("probe_drops_other", F.ABNORMAL_SHARE, I.PROBE, {P: 1.3, N: 1.3, C: 0.5},
      "a well-behaved client's connections are closed by the other end at more than 5% per minute",
      "reference runbook: >5% per minute"),
    # --- the heartbeat ---------------------------------------------------------------------------
    S("server_never_pings", F.HEARTBEAT, I.PROBE, {H: 3.0, L: 1.2},
      "no ping and no message from the server on an idle connection for longer than any usual "
      "heartbeat interval: there is no heartbeat, so idle connections die at the first "
      "intermediary timeout and dead peers linger",
      f"{_FACTS}: keepalive defaults (python-websockets 20 s, Socket.IO 25 s, Node ws none)"),
    S("no_server_ping_seen", F.HEARTBEAT, I.PROBE, {H: 1.3},
      "no server ping in a window too short to be sure there is no heartbeat",
      f"{_FACTS}: keepalive defaults"),
    S("server_silent_past_the_cut", F.HEARTBEAT, I.PROBE, {H: 2.5, P: 1.2},
      "the server never pinged, not even the probe that outlived the idle cut: it has no heartbeat, "
      "or one slower than the path's idle timeout (either way idle connections die)",
      f"{_FACTS}: keepalive defaults; RFC 6455 5.5.2", numbers=CALIBRATED),
    S("server_heartbeat_slower_than_path", F.TIMEOUT_VS_HEARTBEAT, I.PROBE, {P: 2.0, H: 0.7},
      "the server pings, but less often than the path's idle timeout: the proxy's timeout is "
      "shorter than the heartbeat (raise the timeout, or ping more often: both fix it)",
      f"{_FACTS}: 'proxy timeouts shorter than the heartbeat'; socket.io #3025", numbers=CALIBRATED),
    S("no_heartbeat_given", F.HEARTBEAT, I.CONFIG, {H: 3.0, L: 1.2},
      "the server sends no pings (heartbeat_interval_s = -1): idle connections die at the first "
      "intermediary timeout and dead peers linger",
      f"{_FACTS}: keepalive defaults (Node ws and gorilla send none by default)", numbers=CALIBRATED),
    S("server_heartbeat_present", F.HEARTBEAT, I.PROBE, {H: 0.3},
      "the server pinged the idle probe and it survived: a missing heartbeat is not the cause",
      f"{_FACTS}: keepalive defaults"),
    S("heartbeat_slower_than_cut", F.TIMEOUT_VS_HEARTBEAT, I.LOGS, {P: 2.0, H: 0.7},
      "the heartbeat given (heartbeat_interval_s) is slower than the cut the logs show: the "
      "path's idle timeout fires before the first ping", f"{_FACTS}: default timeouts", numbers=CALIBRATED),
    S("heartbeat_faster_than_cut", F.TIMEOUT_VS_HEARTBEAT, I.LOGS, {P: 2.0, N: 2.0, H: 0.5},
      "the heartbeat given is faster than the cut, yet connections still die at one age: the timer "
      "is a lifetime cap or pings do not cross the path, not a missing heartbeat",
      f"{_FACTS}: GCP maximum lifetime; RFC 6455 5.5.2"),
    S("lingering_dead_peers", F.LINGERING_PEERS, I.LOGS, {H: 3.0, N: 1.3, L: 1.3},
      "clients came back on a new connection while their old one stayed open on the server: the "
      "server never noticed the old peer die, which a heartbeat would have caught within one "
      "interval", f"{_FACTS}: 'dead peers linger'; signalk-server #2386"),
    S("fin_wait2_growing", F.LINGERING_PEERS, I.SERVER, {N: 1.5, H: 1.5},
      "the server closed and its peers never finished: clients that vanished without a trace",
      "RFC 793 FIN_WAIT2"),
    # --- keepalive failures ----------------------------------------------------------------------
    S("keepalive_ping_timeouts", F.KEEPALIVE_FAILURES, I.LOGS, {N: 3.0, L: 1.5, H: 0.4, P: 0.7, C: 0.8},
      "the heartbeat is on and catches peers that stopped answering: a blackholed path, latency or "
      "a blocked event loop, not a missing heartbeat",
      f"{_FACTS}: python-websockets 1011 keepalive ping timeout; Socket.IO ping timeout"),
    S("server_ignores_pings", F.KEEPALIVE_FAILURES, I.PROBE, {H: 2.0, L: 1.5, N: 0.8, C: 0.8},
      "the server (or its blocked event loop) does not answer pings: every client heartbeat "
      "times out", "RFC 6455 5.5.2: a pong for every ping"),
    # --- silent drops ----------------------------------------------------------------------------
    S("idle_connection_blackholed", F.IDLE_TIMER, I.PROBE, {N: 4.0, H: 1.5, P: 0.6, L: 0.5, C: 0.5},
      "a silent drop (no FIN, no RST) is a NAT or stateful firewall forgetting an idle flow; "
      "proxies and load balancers close with a FIN or RST",
      f"{_FACTS}: AWS NLB/NAT silent drop, Azure SNAT silent", numbers=CALIBRATED),
    S("path_blackholed", F.BLACKHOLE, I.PROBE, {N: 4.0, P: 1.3, H: 0.7, L: 0.7, C: 0.5},
      "packets vanish on the way, traffic or not, without any reset: a firewall, NAT or broken link",
      f"{_FACTS}: silent drops"),
    S("pings_blackholed", F.BLACKHOLE, I.PROBE, {N: 3.0, P: 1.2, H: 0.8},
      "a path that swallows packets without a reset is a network fault", f"{_FACTS}: silent drops"),
    # --- the opening handshake -------------------------------------------------------------------
    S("failed_upgrades_logged", F.UPGRADE, I.LOGS, {P: 5.0, C: 1.2, H: 0.5, N: 0.7, L: 0.8},
      "a backend answering 400/426/505 or a gateway 502/504 to the upgrade is the signature of a "
      "proxy that does not forward Upgrade/Connection or speaks HTTP/1.0 upstream",
      f"{_FACTS}: nginx upstream HTTP 1.0, backend rejecting a stripped upgrade"),
    S("upgrade_fails_only_through_proxy", F.UPGRADE, I.PROBE, {P: 10.0, H: 0.5, N: 0.5, L: 0.5, C: 0.5},
      "the backend speaks WebSocket and the proxy in front does not pass the upgrade on",
      f"{_FACTS}: nginx upstream HTTP 1.0; RFC 6455 4.1", numbers=CALIBRATED_RETRY),
    S("upgrade_rejected", F.UPGRADE, I.PROBE, {P: 4.0, C: 1.2, H: 0.6},
      "400/426 to an upgrade is what a backend answers when a proxy strips Upgrade/Connection, 505 "
      "when it speaks HTTP/1.0 upstream", f"{_FACTS}: backend rejecting a stripped upgrade"),
    S("gateway_error_on_upgrade", F.UPGRADE, I.PROBE, {P: 2.0, L: 1.5, N: 1.2, H: 0.7},
      "the proxy could not get an answer from the backend: wrong upstream, backend down or "
      "overloaded", f"{_FACTS}: nginx 502/504 during the handshake"),
    S("upgrade_refused_auth", F.UPGRADE, I.PROBE, {C: 1.5, P: 1.2, H: 0.8, N: 0.8},
      "authentication or an Origin check refused the upgrade: the request or the application's "
      "policy, not the transport", "RFC 6455 4.2.1 (Origin), HTTP 401/403"),
    S("upgrade_not_answered_as_websocket", F.UPGRADE, I.PROBE, {P: 1.5, C: 1.5, H: 0.8, N: 0.8},
      "the URL does not lead to a WebSocket endpoint: a proxy route or the client's URL is wrong",
      "RFC 6455 4.2.2"),
    S("upgrade_rejected_by_service", F.UPGRADE, I.PROBE, {P: 0.4, C: 2.0},
      "the service itself refuses the upgrade, with or without the proxy: fix the request first",
      "RFC 6455 4.2.2"),
    S("invalid_101", F.UPGRADE, I.PROBE, {P: 3.0, C: 1.2},
      "a 101 that breaks RFC 6455 4.2.2 comes from a middlebox rewriting the handshake",
      "RFC 6455 4.2.2"),
    S("not_http", F.UPGRADE, I.PROBE, {P: 1.5, C: 1.5},
      "something that is not an HTTP server answers on that port", "RFC 6455 4.1"),
    S("probe_handshakes_fail", F.UPGRADE, I.PROBE, {P: 2.0, L: 1.5, N: 1.3, C: 0.7},
      "upgrades failing under modest concurrency: proxy limits (worker_connections, maxconn), an "
      "overloaded server or exhausted descriptors", "nginx worker_connections, HAProxy maxconn"),
    S("upgrade_ok_through_proxy", F.UPGRADE, I.PROBE, {P: 0.6},
      "the proxy forwards the upgrade: missing Upgrade/Connection headers are ruled out (its "
      "timeouts are not)", "RFC 6455 4.2.2"),
    S("upgrade_ok", F.UPGRADE, I.PROBE, {P: 0.8},
      "the upgrade passes through target_url: a proxy stripping Upgrade/Connection is unlikely",
      "RFC 6455 4.2.2"),
    # --- reaching the endpoint -------------------------------------------------------------------
    S("target_dns_failure", F.REACHABILITY, I.PROBE, {N: 1.5},
      "the host name does not resolve: a wrong URL or broken DNS", "RFC 1035"),
    S("target_connection_refused", F.REACHABILITY, I.PROBE, {P: 1.3, N: 1.3, L: 1.3},
      "nothing listens at the address: the server or proxy is down or on another port", "RFC 793 RST"),
    S("target_unreachable", F.REACHABILITY, I.PROBE, {N: 2.0},
      "no route to the host: a network or firewall problem", "ICMP unreachable"),
    S("target_handshake_timeout", F.REACHABILITY, I.PROBE, {N: 1.8, P: 1.3, L: 1.3},
      "the opening handshake got no answer in time: packets dropped, or an overloaded server or "
      "proxy", "RFC 793"),
    S("target_tls_failure", F.REACHABILITY, I.PROBE, {P: 1.5, N: 1.2},
      "TLS usually terminates at the proxy or load balancer: its certificate or settings stop "
      "every client", f"{_FACTS}: 1015 TLS handshake"),
    S("target_reset_during_handshake", F.REACHABILITY, I.PROBE, {P: 1.5, N: 1.5},
      "a reset during the opening handshake comes from a proxy, firewall or server dropping it",
      "RFC 793 RST"),
    S("target_closed_during_handshake", F.REACHABILITY, I.PROBE, {P: 1.5, N: 1.3},
      "the connection was closed before any answer: a proxy or server dropping the upgrade",
      "RFC 793 FIN"),
    S("target_fails_direct_fine", F.REACHABILITY, I.PROBE, {P: 2.5, N: 2.5, H: 0.7, L: 0.8, C: 0.6},
      "the service answers directly but not on the public path: the proxy, LB or network in "
      "between fails", "comparison of target_url and direct_url"),
    # --- what closed connections leave behind ----------------------------------------------------
    S("close_wait_growing", F.RETAINED, I.SERVER, {L: 15.0},
      "CLOSE_WAIT means the peer closed and the server never closed its side: only sockets the "
      "application lost track of pile up there, so growth is close to proof of a leak (whatever "
      "else is wrong)", "RFC 793 CLOSE_WAIT; reference runbook: leaks", numbers=CALIBRATED),
    S("close_wait_present", F.RETAINED, I.SERVER, {L: 2.5},
      "sockets the peer closed but the server did not: slow or missing clean-up", "RFC 793 CLOSE_WAIT"),
    S("server_keeps_descriptors", F.RETAINED, I.SERVER, {L: 8.0},
      "descriptors that outlive their connections are sockets nobody closed",
      "reference runbook: memory leaks and resource issues", numbers=CALIBRATED),
    S("server_memory_grows", F.RETAINED, I.SERVER, {L: 3.0},
      "memory kept per connection served is state (timers, listeners, buffers) never released",
      "reference runbook: memory leaks; engine.io #559"),
    S("server_threads_grow", F.RETAINED, I.SERVER, {L: 2.0},
      "threads started per connection and never joined leak with the connections",
      "reference runbook: memory leaks"),
    S("open_gauge_drifts", F.RETAINED, I.LOGS, {L: 4.0, H: 1.5},
      "the server's own count of open connections drifts above connects minus disconnects: "
      "connections it closed are still counted (kept) somewhere",
      "reference runbook: WebSocketMonitor metrics.activeConnections", numbers=CALIBRATED),
    S("server_releases_resources", F.RETAINED, I.SERVER, {L: 0.4},
      "descriptors and memory return to their level after connections close: no leak",
      "reference runbook: CleanWebSocketServer"),
    # --- clients coming back ---------------------------------------------------------------------
    S("reconnect_storm", F.RECONNECT, I.LOGS, {C: 25.0, L: 1.2, P: 0.7, H: 0.5, N: 0.6},
      "clients reconnect within a second or two of every close, over and over, with no growing "
      "delay: a reconnect loop without backoff that keeps the load on",
      f"{_FACTS}: thundering-herd reconnects (mattermost-webapp #10960, socket.io-client #784)"),
    S("handshake_retry_storm", F.RECONNECT, I.LOGS, {C: 12.0},
      "clients retry a failing opening handshake at once, over and over, with no growing delay: "
      "a reconnect loop without backoff that multiplies the load of an outage, though not what "
      "stops the connections (none ever opens)",
      f"{_FACTS}: thundering-herd reconnects (mattermost-webapp #10960, socket.io-client #784)",
      numbers=CALIBRATED_RETRY),
    S("reconnect_loops", F.RECONNECT, I.LOGS, {C: 3.0, P: 1.2},
      "some clients retry at a fixed short delay: they amplify whatever closes their connections",
      "reference runbook: client reconnect loops"),
    S("reconnect_backoff_seen", F.RECONNECT, I.LOGS, {C: 0.4},
      "clients already retry with growing delays: a client-side loop is unlikely",
      "reference runbook: RobustWebSocketClient"),
    # --- the server shedding ---------------------------------------------------------------------
    S("server_sheds", F.SHEDDING, I.LOGS, {C: 2.0, L: 2.0, P: 0.7, H: 0.5, N: 0.6},
      "the server closes connections with 1012/1013 (restarting, try again later): it is "
      "overloaded, by too many clients or by resources it never frees",
      f"{_FACTS}: 1012/1013 come from the server (restart, overload)"),
    S("probe_drops_shed", F.SHEDDING, I.PROBE, {L: 1.5, C: 1.5, P: 1.2, N: 0.8},
      "the server closed the probe's connections as going away, restarting or overloaded",
      f"{_FACTS}: 1001/1012/1013"),
    # --- mobile, latency, mass disconnects -------------------------------------------------------
    S("mobile_drop_more", F.MOBILE, I.LOGS, {N: 2.5, C: 1.3, P: 0.8},
      "mobile connections drop far more often per hour than desktop ones: backgrounded apps and "
      "radio handovers kill mobile sockets, proxies treat both alike",
      f"{_FACTS}: iOS/Android suspension; reference runbook: Slack 2019"),
    S("slow_pongs", F.LATENCY, I.PROBE, {N: 1.5, L: 1.3},
      "slow pongs push heartbeats toward their timeout: a congested path or a busy event loop",
      f"{_FACTS}: python-websockets #703, #1620"),
    S("slow_handshakes", F.LATENCY, I.PROBE, {L: 1.5, P: 1.3, N: 1.3},
      "a slow handshake tail at modest concurrency means queueing: a full backlog, an overloaded "
      "proxy or server, or packet loss", "TCP SYN retransmission (1 s)"),
    # --- the proxy / load-balancer config --------------------------------------------------------
    S("config_upgrade_not_forwarded", F.CONFIG_UPGRADE, I.CONFIG, {P: 10.0, H: 0.5, N: 0.5, L: 0.5, C: 0.5},
      "a WebSocket route that does not forward the upgrade (HTTP/1.0 upstream, Upgrade/Connection "
      "not set) fails every handshake through the proxy",
      f"{_FACTS}: nginx upstream HTTP 1.0; Upgrade/Connection are hop-by-hop", numbers=CALIBRATED_RETRY),
    S("config_upgrade_forwarded", F.CONFIG_UPGRADE, I.CONFIG, {P: 0.8},
      "every WebSocket route forwards the upgrade: only the proxy's timeouts remain suspect",
      f"{_FACTS}: nginx upstream HTTP 1.0"),
    S("config_timeout_below_heartbeat", F.TIMEOUT_VS_HEARTBEAT, I.CONFIG, {P: 5.0, H: 0.7, N: 0.7},
      "an idle timeout on the WebSocket path is shorter than the heartbeat: idle connections are "
      "cut before their first ping", f"{_FACTS}: proxy timeouts shorter than the heartbeat; socket.io #3025", numbers=CALIBRATED),
    S("config_timeout_matches_cut", F.TIMEOUT_VS_HEARTBEAT, I.CONFIG, {P: 2.0, H: 2.0, N: 0.4},
      "the cut the logs or probes show is this proxy's own idle timeout: the proxy ends idle "
      "connections, so either its timeout is too short or nothing pings",
      f"{_FACTS}: default timeouts"),
    S("config_timeouts_longer_than_cut", F.TIMEOUT_VS_HEARTBEAT, I.CONFIG, {P: 0.4, N: 2.0, H: 1.3},
      "every timeout in the given configs is longer than the cut: something outside them (a load "
      "balancer, NAT, firewall) ends the connections", f"{_FACTS}: default timeouts"),
    S("config_timeouts_above_heartbeat", F.TIMEOUT_VS_HEARTBEAT, I.CONFIG, {P: 0.5, H: 0.8},
      "every idle timeout on the path is longer than the heartbeat: the proxy's timeouts do not "
      "cut pinging connections", f"{_FACTS}: keepalive defaults"),
    S("mass_disconnect", F.MASS_DISCONNECT, I.LOGS, {P: 2.0, N: 1.5, H: 0.7, C: 0.7},
      "many clients of all ages dropped in the same second: a proxy reload, a deploy or a network "
      "blip, not a per-connection timer",
      f"{_FACTS}: ingress reloads drop all sockets; Caddy reloads close all WebSockets"),
)

del S, F, I
