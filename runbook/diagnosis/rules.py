"""Evidence rules for the logs and offline server state: each decides whether a signal fires.

Every rule has one signature, ``rule(observations) -> list[Signal]``, and is listed in RULES.
What a signal weighs lives in the evidence table (``evidence.py``), never here; the thresholds
shared by several rules live there too. Thresholds come from the facts (close-code meanings,
intermediary timeouts), not from one sample's numbers.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from runbook.diagnosis.causes import Cause
from runbook.diagnosis.evidence import (
    CLOSE_WAIT_GROWTH,
    EVENT_MATCH_S,
    EVENT_SKEW_S,
    FD_GROWTH,
    HIGH_DISCONNECT_RATE,
    KEEPALIVE_SHARE,
    LINGERING_MIN_CLIENTS,
    MIN_CLOSES,
    MOBILE_MIN_RATIO,
    MOST,
    RSS_GROWTH_SHARE,
    RSS_LEAK_PER_CONNECTION,
    SHED_SHARE,
    STORM_GAP_S,
    STORM_MIN_CLIENTS,
    STORM_TURNOVER,
    Signal,
    fire,
)
from runbook.diagnosis.timeouts import timeouts_matching
from runbook.observations import DurationPeak, Event, LogMetrics, Observations
from runbook.params import NO_HEARTBEAT

Rule = Callable[[Observations], list[Signal]]

ABNORMAL_CLASSES = ("abnormal",)
UNEXPECTED_CLASSES = ("abnormal", "shed", "application")


def _logs(obs: Observations) -> LogMetrics | None:
    logs = obs.logs
    if logs is None or logs.closes + logs.errors < MIN_CLOSES:
        return None
    return logs


def timer_peak(logs: LogMetrics) -> DurationPeak | None:
    """The lifetime peak that is an intermediary's timer, or None.

    When many closes name a keepalive ping timeout, the heartbeat itself is the timer (it finds
    dead peers at interval + timeout): that is network evidence, not an idle cut.
    """
    if not logs.duration_peaks or logs.keepalive_timeouts >= max(3, KEEPALIVE_SHARE * logs.coded_closes):
        return None
    return logs.duration_peaks[0]


def lifetime_timer(obs: Observations) -> list[Signal]:
    """Connections cut at one fixed age: a timer in the path, named when it is a known default."""
    logs = _logs(obs)
    peak = timer_peak(logs) if logs else None
    if peak is None:
        return []
    figures = {"timer_s": round(peak.center_s, 1), "share": round(peak.share, 3), "count": peak.count}
    detail = f"{peak}: connections are cut at one fixed age (about {peak.center_s:.0f} s)"
    known = timeouts_matching(peak.center_s)
    if not known:
        return [fire("lifetime_timer", detail, **figures)]
    names = "; ".join(str(t) for t in known)
    if all(t.cause is Cause.NETWORK for t in known):
        return [fire("lifetime_timer_at_network_default", f"{detail}, the default of {names}", **figures)]
    return [fire("lifetime_timer_at_proxy_default", f"{detail}, the default of {names}", **figures)]


def abnormal_share(obs: Observations) -> list[Signal]:
    """How many coded closes lack a close frame or carry an error code."""
    logs = _logs(obs)
    if logs is None or logs.coded_closes < MIN_CLOSES:
        return []
    share = logs.class_share(*ABNORMAL_CLASSES)
    unexpected = logs.class_share(*UNEXPECTED_CLASSES)
    figures = {"abnormal_share": round(share, 3), "coded_closes": logs.coded_closes}
    if share >= MOST:
        detail = f"{share:.0%} of {logs.coded_closes} closes were abnormal (1006 no close frame, 1011, 1002, ...)"
        if logs.duration_peaks:
            return [fire("abnormal_closes_dominate", detail, **figures)]
        return [fire("abnormal_closes_at_random_ages", f"{detail}, at all ages with no timer", **figures)]
    if unexpected < HIGH_DISCONNECT_RATE:
        return [fire("closes_clean", f"{1 - unexpected:.0%} of {logs.coded_closes} closes were normal "
                                     "(1000/1001)", **figures)]
    return []


def heartbeat_against_cut(obs: Observations) -> list[Signal]:
    """The heartbeat the user gave (or that there is none), against the cut the logs show."""
    interval = obs.heartbeat_interval_s
    if interval == NO_HEARTBEAT:
        return [fire("no_heartbeat_given", "heartbeat_interval_s = -1: the server sends no pings")]
    logs = _logs(obs)
    peak = timer_peak(logs) if logs else None
    if peak is None or not interval:
        return []
    figures = {"heartbeat_s": interval, "timer_s": round(peak.center_s, 1)}
    if interval >= peak.center_s * 0.9:
        return [fire("heartbeat_slower_than_cut",
                     f"the heartbeat every {interval:g} s is slower than the cut at {peak.center_s:.0f} s",
                     **figures)]
    return [fire("heartbeat_faster_than_cut",
                 f"connections die at {peak.center_s:.0f} s although the server pings every {interval:g} s",
                 **figures)]


def lingering_peers(obs: Observations) -> list[Signal]:
    """Clients back twice while their first connection is still open on the server."""
    logs = _logs(obs)
    if logs is None or logs.lingering < LINGERING_MIN_CLIENTS:
        return []
    return [fire("lingering_dead_peers",
                 f"{logs.lingering} clients opened two or more new connections while an older one was "
                 "still open on the server", clients=logs.lingering)]


def keepalive_timeouts(obs: Observations) -> list[Signal]:
    """Closes for unanswered pings: a heartbeat exists, but pongs arrive late or never."""
    logs = obs.logs
    if logs is None or logs.keepalive_timeouts < 3:
        return []
    # Of the closes with a code: an access log's code-less session ends repeat the servers' closes.
    share = logs.keepalive_timeouts / max(logs.coded_closes, 1)
    if share < KEEPALIVE_SHARE:
        return []
    return [fire("keepalive_ping_timeouts",
                 f"{logs.keepalive_timeouts} closes name a keepalive/ping timeout ({share:.0%} of the closes with a code)",
                 count=logs.keepalive_timeouts, share=round(share, 3))]


def failed_handshakes(obs: Observations) -> list[Signal]:
    """Records that name a rejected upgrade (400/426/502, 'Unexpected server response')."""
    logs = obs.logs
    if logs is None or logs.handshake_failures < 3:
        return []
    return [fire("failed_upgrades_logged", f"{logs.handshake_failures} log records name a failed opening handshake",
                 count=logs.handshake_failures)]


def reconnects(obs: Observations) -> list[Signal]:
    """Clients coming back at once and forever (a storm, a loop), or backing off as they should."""
    logs = obs.logs
    if logs is None:
        return []
    if not logs.has_client_identity:
        return _population_storm(logs)
    if logs.reconnect_clients.empty:
        return []
    clients = logs.reconnect_clients
    patterns = clients["pattern"].value_counts()
    storm, loops, backoff = (int(patterns.get(name, 0)) for name in ("storm", "loop", "backoff"))
    if storm >= STORM_MIN_CLIENTS:
        stormy = clients[clients["pattern"] == "storm"]
        retries = int(stormy["reconnects"].sum())
        if stormy["after_failed_handshake"].sum() > MOST * retries:
            # No connection ever opened: the loop multiplies the outage, something else caused it.
            return [fire("handshake_retry_storm",
                         f"{storm} clients retried a failed opening handshake {retries} times, each within "
                         f"{stormy['median_gap_s'].median():.2f} s (median), with no growing delay",
                         clients=storm, reconnects=retries)]
        return [fire("reconnect_storm",
                     f"{storm} clients reconnected {retries} times, each within "
                     f"{stormy['median_gap_s'].median():.2f} s (median) of a {stormy['median_lifetime_s'].median():.2f} s "
                     "session, with no growing delay", clients=storm, reconnects=retries)]
    if loops + storm:
        return [fire("reconnect_loops", f"{loops + storm} client(s) reconnected 5+ times with flat gaps of a few seconds",
                     clients=loops + storm)]
    if backoff:
        return [fire("reconnect_backoff_seen", f"{backoff} client(s) back off exponentially between reconnects",
                     clients=backoff)]
    return []


def _population_storm(logs: LogMetrics) -> list[Signal]:
    """Without any client identity: every open connection replaced many times a minute by
    sessions that barely live."""
    if logs.turnover is None:
        return []
    per_minute, lifetime = logs.turnover
    if per_minute < STORM_TURNOVER or not lifetime <= STORM_GAP_S:
        return []
    return [fire("reconnect_storm",
                 f"each open connection was replaced {per_minute:.0f} times a minute by sessions of {lifetime:.2f} s "
                 "(median); the logs carry no client identity, so this is read over the whole population",
                 turnover_per_minute=round(per_minute, 1))]


def shedding(obs: Observations) -> list[Signal]:
    """The server closing connections as restarting or overloaded."""
    logs = _logs(obs)
    if logs is None:
        return []
    share = logs.class_share("shed")
    if share < SHED_SHARE:
        return []
    return [fire("server_sheds", f"{share:.0%} of {logs.coded_closes} closes were sent by the server as "
                                 "restarting or overloaded (1012/1013)", share=round(share, 3))]


def mobile_disconnects(obs: Observations) -> list[Signal]:
    """Mobile connections dropping far more often per hour than desktop ones."""
    logs = obs.logs
    mobile = logs.mobile if logs else None
    if mobile is None or mobile.mobile_disconnects < MIN_CLOSES or mobile.ratio is None:
        return []
    if mobile.ratio < MOBILE_MIN_RATIO:
        return []
    return [fire("mobile_drop_more",
                 f"mobile connections drop {mobile.ratio:.1f}x as often per hour as desktop ones "
                 f"({mobile.mobile_disconnects} mobile disconnects)", ratio=round(mobile.ratio, 2))]


def mass_disconnects(obs: Observations) -> list[Signal]:
    """Many clients of all ages dropped in the same second, matched to the deploys/reloads given."""
    logs = obs.logs
    if logs is None or logs.mass_disconnects.empty:
        return []
    bursts = logs.mass_disconnects
    worst = bursts.loc[bursts["dropped"].idxmax()]
    detail = (f"{len(bursts)} burst(s): worst {int(worst['dropped'])} of {int(worst['open'])} open connections "
              f"dropped at {pd.Timestamp(worst['second']):%H:%M:%S}, median age {worst['median_age_s']:.0f} s")
    matched = [(pd.Timestamp(second), event) for second in bursts["second"]
               if (event := matching_event(pd.Timestamp(second), obs.events)) is not None]
    if matched:
        detail += "; " + "; ".join(f"{second:%H:%M:%S} follows {event.label!r} at {event.ts:%H:%M:%S}"
                                   for second, event in matched[:3])
    return [fire("mass_disconnect", detail, bursts=len(bursts), matched_events=len(matched))]


def matching_event(second: pd.Timestamp, events: list[Event]) -> Event | None:
    """The event closest before (or just after, for clock skew) a burst, within EVENT_MATCH_S."""
    near = [e for e in events if -EVENT_SKEW_S <= (second - e.ts).total_seconds() <= EVENT_MATCH_S]
    return min(near, key=lambda e: abs((second - e.ts).total_seconds()), default=None)


def server_state(obs: Observations) -> list[Signal]:
    """Offline snapshots: CLOSE_WAIT piling up, memory and descriptors growing, a drifting gauge."""
    state = obs.state
    if state is None:
        return []
    signals = []
    close_wait = state.trend("tcp_CLOSE_WAIT")
    if close_wait is not None and close_wait.growth >= CLOSE_WAIT_GROWTH and close_wait.per_minute > 0:
        signals.append(fire("close_wait_growing",
                            f"CLOSE_WAIT sockets grew from {close_wait.first:.0f} to {close_wait.last:.0f} over "
                            f"{close_wait.samples} snapshots ({close_wait.per_minute:+.1f} per minute)",
                            growth=close_wait.growth))
    # Memory and descriptors that open connections explain are no leak: read what they leave behind.
    rss = state.trend("rss_retained") or state.trend("rss_bytes")
    base = state.trend("rss_bytes")
    served = obs.logs.connects if obs.logs is not None else 0
    per_connection = rss.growth / served if rss is not None and served else None
    if (rss is not None and base is not None and rss.samples >= 3 and base.first > 0 and rss.per_minute > 0
            and rss.growth >= RSS_GROWTH_SHARE * base.first
            and (per_connection is None or per_connection >= RSS_LEAK_PER_CONNECTION)):
        signals.append(fire("server_memory_grows",
                            f"server RSS grew from {base.first / 2**20:.1f} to {base.last / 2**20:.1f} MiB over "
                            f"{rss.span_s:.0f} s of snapshots, {rss.growth / 2**20:.1f} MiB of it not explained by "
                            "open connections", growth_bytes=rss.growth))
    fds = state.trend("fds_retained") or state.trend("fds")
    if fds is not None and fds.samples >= 3 and fds.per_minute > 0 and fds.growth >= max(FD_GROWTH, 0.05 * fds.first):
        signals.append(fire("server_keeps_descriptors",
                            f"descriptors beyond the open connections grew from {fds.first:.0f} to {fds.last:.0f} "
                            f"over {fds.span_s:.0f} s of snapshots", growth=fds.growth))
    signals += _gauge_drift(obs)
    return signals


def _gauge_drift(obs: Observations) -> list[Signal]:
    """The server's own open-connection gauge against connects minus disconnects in its logs."""
    gauge = obs.state.trend("open_connections") if obs.state else None
    logs = obs.logs
    if gauge is None or logs is None or gauge.samples < 3:
        return []
    counted = logs.connects - logs.disconnects
    drift = gauge.growth - counted
    if drift < max(CLOSE_WAIT_GROWTH, 0.2 * max(logs.connects, 1)):
        return []
    return [fire("open_gauge_drifts",
                 f"the server's open-connection gauge grew by {gauge.growth:.0f} while the logs show "
                 f"{counted} more connects than disconnects", drift=drift)]


RULES: tuple[Rule, ...] = (
    lifetime_timer,
    abnormal_share,
    heartbeat_against_cut,
    lingering_peers,
    keepalive_timeouts,
    failed_handshakes,
    reconnects,
    shedding,
    mobile_disconnects,
    mass_disconnects,
    server_state,
)

