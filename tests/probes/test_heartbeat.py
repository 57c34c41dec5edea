"""The heartbeat probe against python-websockets servers: pinging, silent, deaf and time-limited.

All scenarios run at once in one 5-second window (a module fixture), then each test reads its own.
"""

from __future__ import annotations

import asyncio

import pytest

from runbook.observations import EndKind, FailureKind, HeartbeatResult
from runbook.probes import probe_heartbeat, run_sync
from tests.probes.servers import ServerThread

WINDOW_S = 5.0
LIFETIME_S = 2.0


@pytest.fixture(scope="module")
def outcomes(servers: ServerThread) -> dict[str, HeartbeatResult]:
    ports = {
        "pings": servers.start_websocket(ping_interval=1.0),
        "silent": servers.start_websocket(ping_interval=None),
        "deaf": servers.start_websocket(deaf=True),
        "lifetime": servers.start_websocket(lifetime_s=LIFETIME_S),
    }

    async def everything() -> dict[str, HeartbeatResult]:
        names = list(ports)
        results = await asyncio.gather(*(probe_heartbeat(f"ws://127.0.0.1:{ports[n]}/", probe_seconds=WINDOW_S)
                                         for n in names))
        return dict(zip(names, results))

    return run_sync(everything())


def test_pinging_server_is_seen_and_idle_survives(outcomes: dict[str, HeartbeatResult]) -> None:
    """A server pinging every second: its pings are counted and both connections live."""
    result = outcomes["pings"]
    assert result.ok and result.idle.alive_at_end and result.pinging.alive_at_end
    assert result.server_pings >= 2
    assert result.server_ping_interval_s == pytest.approx(1.0, abs=0.3)


def test_silent_server_never_pings(outcomes: dict[str, HeartbeatResult]) -> None:
    """A server without keepalive sends no ping; our pings are answered with RTTs recorded."""
    result = outcomes["silent"]
    assert result.ok and result.server_pings == 0 and result.idle.alive_at_end
    assert result.pinging.pongs_received == result.pinging.pings_sent >= 3
    assert len(result.rtt_s) == result.pinging.pongs_received and result.rtt_percentile(0.5) < 0.5


def test_deaf_server_is_alive_but_ignores_pings(outcomes: dict[str, HeartbeatResult]) -> None:
    """No pong but an answered close frame: a deaf peer, not a blackhole."""
    result = outcomes["deaf"]
    assert result.ok
    assert result.pinging.ended_by is EndKind.PONG_TIMEOUT
    assert result.pinging.lifetime_s < WINDOW_S / 2
    assert "ignores pings" in result.pinging.detail


def test_hard_lifetime_kills_both(outcomes: dict[str, HeartbeatResult]) -> None:
    """A server ending every connection at 2 s: both die by FIN at about 2 s, traffic or not."""
    result = outcomes["lifetime"]
    for fate in (result.idle, result.pinging):
        assert not fate.alive_at_end and fate.ended_by is EndKind.FIN
        assert fate.close_code == 1006 and fate.lifetime_s == pytest.approx(LIFETIME_S, abs=0.4)


def test_window_is_respected(outcomes: dict[str, HeartbeatResult]) -> None:
    """Every scenario finishes within its window plus the opening handshake."""
    assert all(r.elapsed_s < WINDOW_S + 1.0 for r in outcomes.values())


def test_unreachable_server_is_a_result(closed_port: int) -> None:
    """A closed port gives ok=False with the refusal, at once."""
    result = run_sync(probe_heartbeat(f"ws://127.0.0.1:{closed_port}/", probe_seconds=WINDOW_S))
    assert not result.ok and result.error_kind is FailureKind.REFUSED
    assert result.idle is None and result.elapsed_s < 1.0
