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
from runbook.diagnosis.evidence import Signal
from runbook.diagnosis.probe_rules import probe_signals
from runbook.diagnosis.timeouts import timeouts_matching
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

# Enough disconnects in the logs to call a symptom absent rather than unknown.
MIN_EVENTS = 10


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
    return logs is not None and logs.disconnects + logs.connects >= MIN_EVENTS


def high_disconnect_rate(obs: Observations) -> Symptom:
    sid = SymptomId.HIGH_DISCONNECT_RATE
    logs = obs.logs
    if logs is None or logs.per_minute.empty:
        return Symptom(sid, SymptomStatus.UNKNOWN, "no close logs: set close_logs to measure the rate")
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
        "disconnects": logs.disconnects,
    }
    # One noisy minute in a long log is not the symptom; one in a short log is.
    needed = max(1, math.ceil(0.05 * len(counted)))
    if flagged >= needed:
        summary = (
            f"{flagged} of {len(counted)} minutes over 5%; peak {figures['peak_rate']:.1%}, "
            f"median {figures['median_rate']:.1%} of open connections dropped per minute"
        )
        return Symptom(sid, SymptomStatus.PRESENT, summary, figures)
    summary = (
        f"peak {figures['peak_rate']:.1%}, median {figures['median_rate']:.1%} per minute "
        f"over {len(counted)} minutes ({flagged} over 5%)"
    )
    return Symptom(sid, SymptomStatus.ABSENT, summary, figures)


def timeouts_failed_upgrades(obs: Observations) -> Symptom:
    sid = SymptomId.TIMEOUTS_FAILED_UPGRADES
    logs = obs.logs
    if not _enough_logs(logs):
        return Symptom(sid, SymptomStatus.UNKNOWN, "not enough close logs; target_url probes decide it live")
    peak = logs.duration_peaks[0] if logs.duration_peaks else None
    timed_out = peak is not None and logs.code_share(1006, 1001, 1011) >= 0.5
    figures = {
        "failed_handshakes": logs.handshake_failures,
        "keepalive_timeouts": logs.keepalive_timeouts,
        "lifetime_peak_s": round(peak.center_s, 1) if peak else None,
        "lifetime_peak_share": round(peak.share, 3) if peak else None,
    }
    found = []
    if timed_out:
        found.append(f"{peak.share:.0%} of connections cut at {peak.center_s:.0f} s of age")
    if logs.handshake_failures >= 3:
        found.append(f"{logs.handshake_failures} failed handshakes logged")
    if logs.keepalive_timeouts >= 3:
        found.append(f"{logs.keepalive_timeouts} keepalive ping timeouts")
    if found:
        return Symptom(sid, SymptomStatus.PRESENT, "; ".join(found), figures)
    return Symptom(
        sid, SymptomStatus.ABSENT, "no fixed-age cut, failed handshake or ping timeout in the logs", figures
    )


def reconnect_loops(obs: Observations) -> Symptom:
    sid = SymptomId.RECONNECT_LOOPS
    logs = obs.logs
    if not _enough_logs(logs):
        return Symptom(sid, SymptomStatus.UNKNOWN, "not enough close logs to follow clients")
    if logs.connections["client_ip"].notna().sum() == 0:
        return Symptom(sid, SymptomStatus.UNKNOWN, "the logs carry no client address: clients cannot be followed")
    clients = logs.reconnect_clients
    patterns = clients["pattern"].value_counts() if not clients.empty else {}
    figures = {
        "reconnecting_clients": len(clients),
        "loop_clients": int(patterns.get("loop", 0)),
        "backoff_clients": int(patterns.get("backoff", 0)),
        "median_gap_s": round(float(clients["median_gap_s"].median()), 2) if len(clients) else None,
    }
    if figures["loop_clients"]:
        summary = (
            f"{figures['loop_clients']} of {len(clients)} reconnecting clients loop: 5+ reconnects "
            "with flat gaps of a few seconds"
        )
        return Symptom(sid, SymptomStatus.PRESENT, summary, figures)
    summary = f"{len(clients)} clients reconnected; none in a tight loop"
    if figures["backoff_clients"]:
        summary += f" ({figures['backoff_clients']} back off exponentially)"
    return Symptom(sid, SymptomStatus.ABSENT, summary, figures)


def proxy_lb_issues(obs: Observations) -> Symptom:
    sid = SymptomId.PROXY_LB_ISSUES
    logs = obs.logs
    if not _enough_logs(logs):
        return Symptom(sid, SymptomStatus.UNKNOWN, "no proxy_config, target_url or close logs to judge the proxy")
    found = []
    figures: dict[str, Any] = {"failed_handshakes": logs.handshake_failures}
    if logs.duration_peaks and logs.code_share(1006, 1001, 1011) >= 0.5:
        peak = logs.duration_peaks[0]
        known = [t for t in timeouts_matching(peak.center_s) if t.cause.value == "proxy"]
        if known:
            figures["matching_timeouts"] = [str(t) for t in known]
            found.append(f"lifetimes pile up at {peak.center_s:.0f} s, the default of {known[0]}")
    if logs.handshake_failures >= 3:
        found.append(f"{logs.handshake_failures} rejected upgrades logged")
    if found:
        return Symptom(sid, SymptomStatus.PRESENT, "; ".join(found), figures)
    return Symptom(
        sid,
        SymptomStatus.ABSENT,
        "no proxy signature in the logs (proxy_config and target_url probes check it directly)",
        figures,
    )


def abandoned_connection_leaks(obs: Observations) -> Symptom:
    return Symptom(
        SymptomId.ABANDONED_CONNECTION_LEAKS,
        SymptomStatus.UNKNOWN,
        "needs server_port / server_pid to sample sockets (CLOSE_WAIT) and memory; not provided",
    )


CHECKS = (
    high_disconnect_rate,
    timeouts_failed_upgrades,
    reconnect_loops,
    proxy_lb_issues,
    abandoned_connection_leaks,
)

# Live-probe signals that show each symptom (names from runbook.diagnosis.probe_rules).
_PROBE_SHOWS = {
    SymptomId.HIGH_DISCONNECT_RATE: {"probe_disconnect_rate_high"},
    SymptomId.TIMEOUTS_FAILED_UPGRADES: {
        "upgrade_fails_only_through_proxy", "target_fails_direct_fine", "upgrade_rejected",
        "upgrade_rejected_by_service", "gateway_error_on_upgrade", "upgrade_not_answered_as_websocket",
        "probe_handshakes_fail", "idle_timeout_in_path", "idle_timeout_at_known_default",
        "hard_connection_lifetime", "lifetime_at_known_default", "both_connections_died",
        "idle_connection_blackholed", "path_blackholed", "pings_blackholed",
    },
    SymptomId.ABANDONED_CONNECTION_LEAKS: {
        "close_wait_growing", "close_wait_present", "server_memory_grows", "server_keeps_descriptors",
        "server_threads_grow",
    },
}
# A probe signal that at least doubles the proxy's odds shows a proxy/LB issue.
_PROXY_RATIO = 2.0


def _probe_shows(symptom_id: SymptomId, signals: list[Signal]) -> list[Signal]:
    if symptom_id is SymptomId.PROXY_LB_ISSUES:
        return [s for s in signals if s.ratio(Cause.PROXY) >= _PROXY_RATIO]
    return [s for s in signals if s.name in _PROBE_SHOWS.get(symptom_id, ())]


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


def _with_probes(symptom: Symptom, obs: Observations, signals: list[Signal]) -> Symptom:
    """Combine what the logs showed with what the live probes showed: present wins, then absent."""
    shown = _probe_shows(symptom.id, signals)
    figures = dict(symptom.figures)
    if shown:
        figures["probe_signals"] = [s.name for s in shown]
        live = "live probes: " + "; ".join(s.detail for s in shown[:3])
        summary = f"{symptom.summary}; {live}" if symptom.status is SymptomStatus.PRESENT else live
        return Symptom(symptom.id, SymptomStatus.PRESENT, summary, figures)
    cleared = _probed(symptom.id, obs)
    if symptom.status is SymptomStatus.PRESENT or cleared is None:
        return symptom
    summary = cleared if symptom.status is SymptomStatus.UNKNOWN else f"{symptom.summary}; {cleared}"
    return Symptom(symptom.id, SymptomStatus.ABSENT, summary, figures)


def evaluate_symptoms(obs: Observations) -> list[Symptom]:
    """The five checklist symptoms in the reference order, from the logs and the live probes."""
    signals = probe_signals(obs.probes) if obs.probes is not None else []
    return [_with_probes(check(obs), obs, signals) for check in CHECKS]
