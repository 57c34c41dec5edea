"""Evidence rules: each reads the observations and returns the signals it finds.

Every rule has one signature, ``rule(observations) -> list[Signal]``, and is listed in RULES.
Ratios are modest (mostly 1.5-4) because the ranking multiplies them as if independent.
Thresholds come from the facts (close-code meanings, intermediary timeouts), not from one sample.
"""

from __future__ import annotations

from collections.abc import Callable

from runbook.diagnosis.causes import Cause
from runbook.diagnosis.evidence import Signal
from runbook.diagnosis.probe_rules import probe_signals
from runbook.diagnosis.timeouts import timeouts_matching
from runbook.observations import LogMetrics, Observations

P, H, N, L, C = Cause.PROXY, Cause.HEARTBEAT, Cause.NETWORK, Cause.RESOURCE_LEAK, Cause.CLIENT

# Too few disconnects to tell a pattern from chance.
MIN_DISCONNECTS = 10

Rule = Callable[[Observations], list[Signal]]


def _logs(obs: Observations) -> LogMetrics | None:
    logs = obs.logs
    if logs is None or logs.disconnects + logs.errors < MIN_DISCONNECTS:
        return None
    return logs


def abnormal_closures(obs: Observations) -> list[Signal]:
    """Most closes without a close frame (1006): the TCP connection died under the WebSocket."""
    logs = _logs(obs)
    if logs is None:
        return []
    share = logs.code_share(1006)
    if share < 0.5:
        return []
    return [
        Signal(
            "abnormal_closures_dominate",
            f"{share:.0%} of {logs.disconnects} disconnects closed with 1006 (no close frame)",
            "an intermediary, the network or a silent idle cut kills the TCP connection; "
            "the application and the client would have sent a close frame",
            {P: 1.5, H: 1.5, N: 1.5, L: 0.7, C: 0.5},
        )
    ]


def lifetime_peaks(obs: Observations) -> list[Signal]:
    """Connections cut at one fixed age: a timer in the path, named when it is a known default."""
    logs = _logs(obs)
    if logs is None or not logs.duration_peaks:
        return []
    peak = logs.duration_peaks[0]
    abnormal = logs.code_share(1006, 1001, 1011) >= 0.5
    signals = [
        Signal(
            "lifetime_peak",
            f"{peak}: connections are cut at one fixed age",
            "a sharp lifetime cluster means a timer (proxy read/idle timeout or a lifetime cap) "
            "ends connections, not random faults; a heartbeat shorter than it keeps idle ones alive",
            {P: 2.5, H: 2.0, N: 1.2, L: 0.5, C: 0.5} if abnormal else {P: 1.5, H: 1.5, L: 0.7, C: 0.7},
        )
    ]
    known = timeouts_matching(peak.center_s)
    if known:
        names = "; ".join(str(t) for t in known)
        points_to_network = all(t.cause is Cause.NETWORK for t in known)
        signals.append(
            Signal(
                "lifetime_at_known_timeout",
                f"the peak at {peak.center_s:.1f} s matches {names}",
                "disconnects at a fixed, well-known default interval point to that intermediary",
                {N: 2.0, P: 1.2} if points_to_network else {P: 2.0, H: 1.2},
            )
        )
    return signals


def spread_abnormal_lifetimes(obs: Observations) -> list[Signal]:
    """Abnormal closes at random ages: drops by the network rather than by a timer."""
    logs = _logs(obs)
    if logs is None or logs.duration_peaks or logs.code_share(1006) < 0.5:
        return []
    known = logs.connections["duration_s"].notna().sum()
    if known < MIN_DISCONNECTS:
        return []
    return [
        Signal(
            "abnormal_closures_at_random_ages",
            f"1006 closes spread over lifetimes with no sharp peak ({known} lifetimes known)",
            "no fixed timer is at work: lossy networks, NAT rebinding or sleeping devices drop "
            "connections at any age",
            {N: 2.0, P: 0.7, H: 1.2},
        )
    ]


def keepalive_timeouts(obs: Observations) -> list[Signal]:
    """Closes for unanswered pings: a heartbeat exists, but pongs arrive late or never."""
    logs = obs.logs
    if logs is None or logs.keepalive_timeouts < 3:
        return []
    share = logs.keepalive_timeouts / max(logs.disconnects, 1)
    return [
        Signal(
            "keepalive_ping_timeouts",
            f"{logs.keepalive_timeouts} closes name a keepalive/ping timeout ({share:.0%} of disconnects)",
            "the heartbeat is on and catches peers that stopped answering: latency, a blackholed "
            "path or a blocked event loop, not a missing heartbeat",
            {N: 2.0, L: 1.5, H: 0.5, P: 0.8},
        )
    ]


def failed_handshakes(obs: Observations) -> list[Signal]:
    """Errors that name a rejected upgrade (400/426/502, 'Unexpected server response')."""
    logs = obs.logs
    if logs is None or logs.handshake_failures < 3:
        return []
    return [
        Signal(
            "failed_upgrades_logged",
            f"{logs.handshake_failures} log records name a failed opening handshake",
            "a backend answering 400/426 or a gateway answering 502/504 to the upgrade is the "
            "signature of a proxy that does not forward Upgrade/Connection",
            {P: 4.0, C: 1.5, H: 0.7},
        )
    ]


def mobile_disconnects(obs: Observations) -> list[Signal]:
    """Mobile connections dropping far more often per hour than desktop ones."""
    logs = obs.logs
    mobile = logs.mobile if logs else None
    if mobile is None or mobile.mobile_disconnects < MIN_DISCONNECTS or mobile.ratio is None:
        return []
    if mobile.ratio < 2.0:
        return []
    return [
        Signal(
            "mobile_drop_more",
            f"mobile connections drop {mobile.ratio:.1f}x as often per hour as desktop ones "
            f"({mobile.mobile_disconnects} mobile disconnects)",
            "backgrounded apps and radio handovers kill mobile sockets; proxies treat both alike",
            {N: 2.5, C: 1.3, P: 0.8},
        )
    ]


def reconnect_patterns(obs: Observations) -> list[Signal]:
    """Clients coming back at once and forever (a loop), or backing off as they should."""
    logs = obs.logs
    if logs is None or logs.reconnect_clients.empty:
        return []
    patterns = logs.reconnect_clients["pattern"].value_counts()
    loops, backoff = int(patterns.get("loop", 0)), int(patterns.get("backoff", 0))
    signals = []
    if loops:
        signals.append(
            Signal(
                "reconnect_loops",
                f"{loops} client(s) reconnected 5+ times with flat gaps of a few seconds",
                "clients that retry at a fixed short delay are the client-side cause, and they "
                "amplify whatever closes their connections",
                {C: 4.0, P: 1.3},
            )
        )
    if backoff and not loops:
        signals.append(
            Signal(
                "reconnect_backoff_seen",
                f"{backoff} client(s) back off exponentially between reconnects",
                "clients already retry with growing delays: a client-side loop is unlikely",
                {C: 0.5},
            )
        )
    return signals


RULES: tuple[Rule, ...] = (
    abnormal_closures,
    lifetime_peaks,
    spread_abnormal_lifetimes,
    keepalive_timeouts,
    failed_handshakes,
    mobile_disconnects,
    reconnect_patterns,
)


def collect_signals(obs: Observations) -> list[Signal]:
    """Run every rule in order, the log rules then the probe rules: the ranking's evidence."""
    signals = [signal for rule in RULES for signal in rule(obs)]
    if obs.probes is not None:
        signals += probe_signals(obs.probes)
    return signals
