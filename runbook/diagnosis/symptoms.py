"""The reference runbook's symptoms checklist, each decided from the observations.

A symptom is ``present`` or ``absent`` only when some input could show it; with no such input it
is ``unknown`` and its summary names the parameter that would decide it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

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


def evaluate_symptoms(obs: Observations) -> list[Symptom]:
    """The five checklist symptoms in the reference order."""
    return [check(obs) for check in CHECKS]
