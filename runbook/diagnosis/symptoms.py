"""The reference runbook's symptoms checklist, each decided from the observations.

A symptom is ``present`` or ``absent`` only when some input could show it; with no such input it
is ``unknown`` and its summary names the parameter that would decide it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from runbook.diagnosis.causes import Cause
from runbook.diagnosis.evidence import MIN_CLOSES, Signal
from runbook.observations import LogMetrics, Observations


class SymptomStatus(StrEnum):
    PRESENT = "present"
    ABSENT = "absent"
    UNKNOWN = "unknown"


class SymptomId(StrEnum):
    HIGH_DISCONNECT_RATE = "high_disconnect_rate"
    TIMEOUTS_FAILED_UPGRADES = "timeouts_failed_upgrades"
    RECONNECT_LOOPS = "reconnect_loops"
    PROXY_LB_ISSUES = "proxy_lb_issues"
    ABANDONED_CONNECTION_LEAKS = "abandoned_connection_leaks"


SYMPTOM_TITLES = {
    SymptomId.HIGH_DISCONNECT_RATE: "High WebSocket disconnect rates (>5% per minute)",
    SymptomId.TIMEOUTS_FAILED_UPGRADES: "Connection timeouts and failed upgrades",
    SymptomId.RECONNECT_LOOPS: "Client-side reconnection loops",
    SymptomId.PROXY_LB_ISSUES: "Proxy/load balancer connection issues",
    SymptomId.ABANDONED_CONNECTION_LEAKS: "Memory leaks from abandoned connections",
}



@dataclass(frozen=True)
class Symptom:
    id: SymptomId
    status: SymptomStatus
    summary: str
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return SYMPTOM_TITLES[self.id]


def _enough_logs(logs: LogMetrics | None) -> bool:
    return logs is not None and logs.closes + logs.connects + logs.errors >= MIN_CLOSES


def high_disconnect_rate(obs: Observations) -> Symptom:
    """Unexpected disconnects (not 1000/1001) per open connection per minute, over 5%."""
    sid = SymptomId.HIGH_DISCONNECT_RATE
    logs = obs.logs
    if logs is None or logs.per_minute.empty:
        return Symptom(sid, SymptomStatus.UNKNOWN, "no close logs: set close_logs to measure the rate")
    if logs.closes and not logs.coded_closes:
        return Symptom(
            sid, SymptomStatus.UNKNOWN,
            f"{logs.closes} closes without a close code (e.g. an access log): normal churn cannot be told "
            "from drops; add the server's close log", {"closes": logs.closes})
    counted = logs.per_minute[logs.per_minute["counted"].astype(bool)]
    if counted.empty:
        return Symptom(
            sid,
            SymptomStatus.UNKNOWN,
            "fewer than 20 connections open in every minute of the logs: too few to measure a rate",
            {"minutes": len(logs.per_minute)},
        )
    flagged = int(counted["flagged"].sum())
    figures = {
        "minutes_counted": len(counted),
        "minutes_over_5pct": flagged,
        "peak_rate": round(float(counted["rate"].max()), 4),
        "median_rate": round(float(counted["rate"].median()), 4),
        "median_churn_rate": round(float(counted["churn_rate"].median()), 4),
        "unexpected_disconnects": logs.coded_closes - logs.close_classes.get("normal", 0),
        "normal_disconnects": logs.close_classes.get("normal", 0),
    }
    churn = f"; normal churn (1000/1001) {figures['median_churn_rate']:.1%} per minute, not counted"
    # One noisy minute in a long log is not the symptom; one in a short log is.
    needed = max(1, math.ceil(0.05 * len(counted)))
    if flagged >= needed:
        summary = (
            f"{flagged} of {len(counted)} minutes over 5%; peak {figures['peak_rate']:.1%}, "
            f"median {figures['median_rate']:.1%} of open connections dropped unexpectedly per minute"
        )
        return Symptom(sid, SymptomStatus.PRESENT, summary + churn, figures)
    summary = (
        f"unexpected disconnects peak {figures['peak_rate']:.1%}, median {figures['median_rate']:.1%} "
        f"per minute over {len(counted)} minutes ({flagged} over 5%)"
    )
    return Symptom(sid, SymptomStatus.ABSENT, summary + churn, figures)


# Signals that show each of the other symptoms, from any input (names from the evidence table).
SHOWN_BY: dict[SymptomId, set[str]] = {
    SymptomId.HIGH_DISCONNECT_RATE: {"probe_drops_abnormal", "probe_drops_shed", "probe_drops_other"},
    SymptomId.TIMEOUTS_FAILED_UPGRADES: {
        "lifetime_timer", "lifetime_timer_at_proxy_default", "lifetime_timer_at_network_default",
        "keepalive_ping_timeouts", "failed_upgrades_logged",
        "upgrade_fails_only_through_proxy", "target_fails_direct_fine", "upgrade_rejected",
        "upgrade_rejected_by_service", "gateway_error_on_upgrade", "upgrade_not_answered_as_websocket",
        "invalid_101", "probe_handshakes_fail", "probe_idle_cut", "probe_idle_cut_at_proxy_default",
        "probe_idle_cut_at_network_default", "hard_connection_lifetime", "probe_connections_die",
        "idle_connection_blackholed", "path_blackholed", "pings_blackholed", "target_handshake_timeout",
    },
    SymptomId.RECONNECT_LOOPS: {"reconnect_storm", "handshake_retry_storm", "reconnect_loops"},
    SymptomId.ABANDONED_CONNECTION_LEAKS: {
        "close_wait_growing", "close_wait_present", "server_memory_grows", "server_keeps_descriptors",
        "server_threads_grow", "open_gauge_drifts", "lingering_dead_peers",
    },
}
# A signal that at least doubles the proxy's odds shows a proxy/LB issue.
_PROXY_RATIO = 2.0


def _shown(symptom_id: SymptomId, signals: list[Signal]) -> list[Signal]:
    if symptom_id is SymptomId.PROXY_LB_ISSUES:
        return [s for s in signals if s.ratio(Cause.PROXY) >= _PROXY_RATIO]
    return [s for s in signals if s.name in SHOWN_BY.get(symptom_id, ())]


def _could_show(symptom_id: SymptomId, obs: Observations) -> str | None:
    """What was given that would have shown this symptom, so its silence means absent; else None."""
    logs = obs.logs
    if symptom_id is SymptomId.TIMEOUTS_FAILED_UPGRADES and _enough_logs(logs):
        return "no fixed-age cut, failed handshake or ping timeout in the logs"
    if symptom_id is SymptomId.RECONNECT_LOOPS and _enough_logs(logs):
        if not logs.has_client_identity and logs.turnover is None:
            return None  # no identity to follow clients by, and too few drops to read the population
        return f"{len(logs.reconnect_clients)} clients reconnected after a drop; none in a tight loop"
    if symptom_id is SymptomId.PROXY_LB_ISSUES and _enough_logs(logs):
        return "no proxy signature in the logs (proxy_config and target_url probes check it directly)"
    if symptom_id is SymptomId.ABANDONED_CONNECTION_LEAKS and obs.state is not None:
        return "server-state snapshots: no CLOSE_WAIT, descriptor or memory growth"
    return _probed(symptom_id, obs)


_UNKNOWN_HINTS = {
    SymptomId.TIMEOUTS_FAILED_UPGRADES: "not enough close logs; target_url probes decide it live",
    SymptomId.RECONNECT_LOOPS: "not enough close logs with client addresses to follow clients",
    SymptomId.PROXY_LB_ISSUES: "no proxy_config, target_url or close logs to judge the proxy",
    SymptomId.ABANDONED_CONNECTION_LEAKS: (
        "needs server_port / server_pid (live) or server-state snapshots (ss -tan, an RSS/fds CSV) in "
        "close_logs"),
}


def _from_signals(symptom_id: SymptomId, obs: Observations, signals: list[Signal]) -> Symptom:
    shown = _shown(symptom_id, signals)
    if shown:
        figures = {"signals": [s.name for s in shown]}
        return Symptom(symptom_id, SymptomStatus.PRESENT, "; ".join(s.detail for s in shown[:3]), figures)
    cleared = _could_show(symptom_id, obs)
    if cleared is not None:
        return Symptom(symptom_id, SymptomStatus.ABSENT, cleared)
    return Symptom(symptom_id, SymptomStatus.UNKNOWN, _UNKNOWN_HINTS[symptom_id])


def _probed(symptom_id: SymptomId, obs: Observations) -> str | None:
    """What the live probes measured that can clear this symptom; None if nothing could."""
    probes = obs.probes
    if probes is None:
        return None
    if symptom_id is SymptomId.HIGH_DISCONNECT_RATE and probes.churn is not None and probes.churn.ok:
        rate = probes.churn.close_rate_per_open_per_minute
        return None if rate is None else f"churn probe: {rate:.1%} of open connections closed per minute"
    if symptom_id in (SymptomId.TIMEOUTS_FAILED_UPGRADES, SymptomId.PROXY_LB_ISSUES):
        target = probes.handshake_target
        if target is not None and target.ok and (probes.heartbeat is None or probes.heartbeat.ok):
            return "live probes: the upgrade succeeded and the probe connections survived"
    if symptom_id is SymptomId.ABANDONED_CONNECTION_LEAKS:
        sampled = [r for r in (probes.sockets, probes.process) if r is not None and r.ok]
        if sampled:
            return "server sampling: no CLOSE_WAIT pile-up or growth per connection served"
    return None


def _rate_with_probes(symptom: Symptom, obs: Observations, signals: list[Signal]) -> Symptom:
    """The logs' disconnect rate combined with the churn probe's: present wins, then absent."""
    shown = _shown(symptom.id, signals)
    figures = dict(symptom.figures)
    if shown:
        figures["signals"] = [s.name for s in shown]
        live = "live probes: " + "; ".join(s.detail for s in shown[:3])
        summary = f"{symptom.summary}; {live}" if symptom.status is SymptomStatus.PRESENT else live
        return Symptom(symptom.id, SymptomStatus.PRESENT, summary, figures)
    cleared = _probed(symptom.id, obs)
    if symptom.status is not SymptomStatus.UNKNOWN or cleared is None:
        return symptom
    return Symptom(symptom.id, SymptomStatus.ABSENT, cleared, figures)


def evaluate_symptoms(obs: Observations, signals: list[Signal]) -> list[Symptom]:
    """The five checklist symptoms in the reference order, from every input's signals.

    ``signals`` are the evidence signals of the same observations (``collect_signals``): a
    symptom is present when a signal that shows it fired, absent when an input that could have
    shown it was given and none did, unknown otherwise.
    """
    rate = _rate_with_probes(high_disconnect_rate(obs), obs, signals)
    others = [_from_signals(sid, obs, signals) for sid in SymptomId if sid is not SymptomId.HIGH_DISCONNECT_RATE]
    return [rate, *others]
