"""Live probes: every network and OS measurement of the runbook, and nothing that classifies.

Each probe is an ``async def probe_*`` returning a typed result from ``runbook.observations``
(``ok``, ``error``, ``elapsed_s`` and the figures); network faults are results, only bad
parameters raise (ParameterError). :func:`run_sync` runs any of them from synchronous code,
inside Jupyter too; :func:`probe_url` runs them all and :func:`format_probe_report` prints the
outcome for a terminal.

    handshake   raw HTTP/1.1 upgrade, DNS/TCP/TLS/upgrade timed, target and direct side by side
    heartbeat   one idle and one pinging connection: who dies when, and how
    churn       N concurrent connections held and reopened: closes/min, codes, latencies
    server      TCP states on the server port and the server process's RSS/fds/threads
"""

from runbook.probes.churn import ChurnProgress, probe_churn
from runbook.probes.handshake import probe_handshake, probe_handshakes
from runbook.probes.heartbeat import probe_heartbeat
from runbook.probes.progress import ProgressBar
from runbook.probes.runner import run_sync
from runbook.probes.server import ServerSampler, probe_server
from runbook.probes.summary import format_probe_report, probe_all, probe_url, summary_rows
from runbook.probes.target import Target, prepare_target

__all__ = [
    "ChurnProgress", "ProgressBar", "ServerSampler", "Target", "format_probe_report", "prepare_target",
    "probe_all", "probe_churn", "probe_handshake", "probe_handshakes", "probe_heartbeat",
    "probe_server", "probe_url", "run_sync", "summary_rows",
]
