"""Evidence rules for the proxy/LB config lint: what the config says against what was measured.

Same contract as :mod:`runbook.diagnosis.rules`. The lint (``runbook.configs``) reports whether
WebSocket routes forward the upgrade and which timeouts apply to them; these rules weigh that
against the cut the logs or probes measured and the heartbeat the user, the lint or the probe
knows. What each signal weighs is in the evidence table.
"""

from __future__ import annotations

from collections.abc import Callable

from runbook.diagnosis.evidence import Signal, fire, same_timer
from runbook.diagnosis.rules import timer_peak
from runbook.observations import Observations, PathTimeout
from runbook.params import NO_HEARTBEAT

ConfigRule = Callable[[Observations], list[Signal]]


def measured_cut_s(obs: Observations) -> float | None:
    """The age at which idle connections die: the logs' timer, else the idle probe's death."""
    peak = timer_peak(obs.logs) if obs.logs is not None else None
    if peak is not None:
        return peak.center_s
    heartbeat = obs.probes.heartbeat if obs.probes is not None else None
    if heartbeat is not None and heartbeat.ok and heartbeat.idle is not None and heartbeat.pinging is not None:
        if not heartbeat.idle.alive_at_end and heartbeat.pinging.alive_at_end:
            return heartbeat.idle.lifetime_s or heartbeat.idle.observed_s
    return None


def known_heartbeat_s(obs: Observations) -> float | None:
    """The server's ping interval: given by the user or the lint, else seen by the idle probe."""
    config = obs.config
    if obs.heartbeat_interval_s == NO_HEARTBEAT:
        return None
    if obs.heartbeat_interval_s:
        return obs.heartbeat_interval_s
    if config is not None and config.heartbeat_s:
        return config.heartbeat_s
    heartbeat = obs.probes.heartbeat if obs.probes is not None else None
    return heartbeat.server_ping_estimate_s if heartbeat is not None and heartbeat.ok else None


def upgrade_forwarding(obs: Observations) -> list[Signal]:
    config = obs.config
    if config is None or not config.ok or config.upgrade_forwarded is None:
        return []
    if config.upgrade_forwarded:
        return [fire("config_upgrade_forwarded", "every WebSocket location forwards the upgrade over HTTP/1.1")]
    where = "; ".join(f.message for f in config.findings if f.severity == "error")[:300]
    return [fire("config_upgrade_not_forwarded", f"a WebSocket location does not forward the upgrade: {where}")]


def _idle(config_timeouts: list[PathTimeout]) -> list[PathTimeout]:
    return [t for t in config_timeouts if t.kind == "idle"]


def timeouts_against_heartbeat(obs: Observations) -> list[Signal]:
    """The path's idle timeouts against the heartbeat, and against the cut that was measured."""
    config = obs.config
    if config is None or not config.ok or not config.path_timeouts:
        return []
    idle = _idle(config.path_timeouts)
    heartbeat = known_heartbeat_s(obs)
    cut = measured_cut_s(obs)
    if heartbeat and idle:
        shortest = min(idle, key=lambda t: t.seconds)
        if shortest.seconds < heartbeat:
            return [fire("config_timeout_below_heartbeat",
                         f"{shortest} is shorter than the {heartbeat:g} s heartbeat, by {heartbeat - shortest.seconds:g} s",
                         timeout_s=shortest.seconds, heartbeat_s=heartbeat)]
    if cut is not None:
        matching = [t for t in config.path_timeouts if same_timer(t.seconds, cut)]
        if matching:
            return [fire("config_timeout_matches_cut", f"the cut at {cut:.1f} s is {matching[0]}",
                         timeout_s=matching[0].seconds, cut_s=round(cut, 1))]
        if all(t.seconds > cut for t in config.path_timeouts):
            listed = "; ".join(str(t) for t in config.path_timeouts[:3])
            return [fire("config_timeouts_longer_than_cut",
                         f"connections die at {cut:.1f} s but every configured timeout is longer ({listed})",
                         cut_s=round(cut, 1))]
    if heartbeat and idle and all(t.seconds > heartbeat for t in idle):
        return [fire("config_timeouts_above_heartbeat",
                     f"every idle timeout on the path is longer than the {heartbeat:g} s heartbeat",
                     heartbeat_s=heartbeat)]
    return []


CONFIG_RULES: tuple[ConfigRule, ...] = (upgrade_forwarding, timeouts_against_heartbeat)


def config_signals(obs: Observations) -> list[Signal]:
    return [signal for rule in CONFIG_RULES for signal in rule(obs)]
