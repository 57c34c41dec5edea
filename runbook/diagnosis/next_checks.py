"""What would settle it: for every cause still in the running, the one check that decides it.

A cause is in the running while its probability is within CONTENDER_FACTOR of the top cause's.
The check is the input the run did not have that separates this cause from the others (a
parameter to set), or, when every input was given, the command that looks closer.
"""

from __future__ import annotations

from dataclasses import dataclass

from runbook.diagnosis.causes import Cause
from runbook.diagnosis.ranking import RankedCause
from runbook.observations import Observations

CONTENDER_FACTOR = 3.0


@dataclass(frozen=True)
class NextCheck:
    cause: Cause
    check: str  # the parameter to add or the command to run
    why: str  # what its answer would tell


def _config_given(obs: Observations) -> bool:
    return getattr(obs, "config", None) is not None


def _check(cause: Cause, obs: Observations) -> NextCheck:
    probes = obs.probes
    live = probes is not None and probes.heartbeat is not None
    if cause is Cause.PROXY:
        if not _config_given(obs):
            return NextCheck(cause, "set proxy_config to the nginx/HAProxy config in front of the service",
                             "the lint shows whether the upgrade is forwarded and which idle timeout applies "
                             "to WebSocket routes, against the heartbeat")
        if probes is None or probes.handshake_direct is None:
            return NextCheck(cause, "set target_url and direct_url",
                             "101 directly but not through the proxy proves the proxy; an idle probe cut "
                             "through the proxy but not directly puts the timeout there")
        return NextCheck(cause, "compare the proxy's access log session lengths ($request_time) with the cut",
                         "sessions ended by the proxy's timer all last the timeout")
    if cause is Cause.HEARTBEAT:
        if not live and obs.heartbeat_interval_s is None:
            return NextCheck(cause, "set target_url (or heartbeat_interval_s to the server's ping interval)",
                             "the idle probe shows whether the server pings and how often; no ping, or a ping "
                             "slower than the cut, settles it")
        return NextCheck(cause, "log the server's pings and pongs (python-websockets: logger 'websockets' at DEBUG)",
                         "pings that stop, or never start, before the cut show the heartbeat")
    if cause is Cause.NETWORK:
        if probes is None or probes.handshake_direct is None:
            return NextCheck(cause, "set target_url and direct_url, probe_seconds above the suspected timeout",
                             "an idle probe that goes silent (no FIN, no RST) is a NAT or firewall; one cut "
                             "cleanly is a proxy")
        return NextCheck(cause, "tcpdump -ni any 'tcp port PORT and (tcp[tcpflags] & (tcp-rst|tcp-fin) != 0)' on both ends",
                         "a FIN or RST from a middlebox, or none at all, names the hop that drops flows")
    if cause is Cause.RESOURCE_LEAK:
        if obs.state is None and (probes is None or (probes.sockets is None and probes.process is None)):
            return NextCheck(cause, "set server_port / server_pid, or add `ss -tan` snapshots or an RSS/fds CSV to close_logs",
                             "CLOSE_WAIT sockets, descriptors or memory growing with connections served prove a leak")
        return NextCheck(cause, "take a heap snapshot after a burst of connections closes (node --inspect, tracemalloc)",
                         "objects per closed connection that survive a GC are the leak")
    return NextCheck(cause, "add close logs that carry a client identity (ip, clientId/sessionId, user agent)",
                     "the same clients coming back within a second of every close, without growing delays, "
                     "is a reconnect loop")


def next_checks(obs: Observations, ranked: list[RankedCause]) -> list[NextCheck]:
    """One check per cause within CONTENDER_FACTOR of the top one, most probable first."""
    if not ranked:
        return []
    top = ranked[0].probability
    return [_check(r.cause, obs) for r in ranked if r.probability * CONTENDER_FACTOR >= top]
