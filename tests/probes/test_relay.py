"""The heartbeat probe through the lab relay that silently blackholes idle flows (no FIN, no RST)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from runbook.diagnosis.probe_rules import idle_survival
from runbook.lab.relay import Relay
from runbook.observations import EndKind, HeartbeatResult, ProbeReport
from runbook.probes import probe_heartbeat, run_sync
from tests.probes.servers import ServerThread

IDLE_TIMEOUT_S = 1.5
WINDOW_S = 6.0


@pytest.fixture(scope="module")
def blackhole(servers: ServerThread) -> Iterator[Relay]:
    upstream = servers.start_websocket(ping_interval=None)
    with Relay(upstream, mode="blackhole", idle_timeout_s=IDLE_TIMEOUT_S) as relay:
        yield relay


@pytest.fixture(scope="module")
def outcomes(blackhole: Relay) -> dict[str, HeartbeatResult]:
    async def both() -> dict[str, HeartbeatResult]:
        frequent, rare = await asyncio.gather(
            probe_heartbeat(f"{blackhole.url}/", probe_seconds=WINDOW_S, ping_every_s=0.5),
            # Pings further apart than the relay's idle timeout: the pinging flow goes idle too.
            probe_heartbeat(f"{blackhole.url}/", probe_seconds=WINDOW_S, ping_every_s=2.5))
        return {"frequent": frequent, "rare": rare}

    return run_sync(both())


def _report(result: HeartbeatResult) -> ProbeReport:
    return ProbeReport(target_url=result.url, direct_url=None, elapsed_s=0.0, heartbeat=result)


def test_idle_flow_is_blackholed_while_pings_keep_the_other(outcomes: dict[str, HeartbeatResult]) -> None:
    """The idle connection goes silent (no FIN, no RST); the one pinging every 0.5 s lives."""
    result = outcomes["frequent"]
    assert result.ok and result.pinging.alive_at_end
    assert result.idle.ended_by is EndKind.SILENCE and result.idle.close_code is None
    assert [s.name for s in idle_survival(_report(result))] == ["idle_connection_blackholed"]


def test_sparse_pings_are_blackholed_too(outcomes: dict[str, HeartbeatResult]) -> None:
    """Pings 2.5 s apart cannot hold a 1.5 s idle flow: both connections go silent."""
    result = outcomes["rare"]
    assert result.ok
    assert result.idle.ended_by is EndKind.SILENCE and result.pinging.ended_by is EndKind.SILENCE
    assert result.pinging.pings_sent == 1 and result.pinging.pongs_received == 0
    assert [s.name for s in idle_survival(_report(result))] == ["path_blackholed"]
