"""The probes through a real nginx: upgrade headers missing, and a short proxy_read_timeout.

nginx comes from the Debian package; without it these tests skip (fail under RUNBOOK_REQUIRE_REAL).
Timeouts are compressed: proxy_read_timeout 2 s stands for nginx's 60 s default.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook.diagnosis.causes import Cause
from runbook.diagnosis.probe_rules import handshake_comparison, idle_survival, server_heartbeat
from runbook.lab.nginx import Nginx, ProxySite, Route
from runbook.lab.processes import free_port
from runbook.observations import EndKind, FailureKind, HeartbeatResult, ProbeReport
from runbook.probes import probe_handshakes, probe_heartbeat, run_sync
from tests.conftest import require_real
from tests.probes.servers import ServerThread

READ_TIMEOUT_S = 2.0
WINDOW_S = 6.0


@pytest.fixture(scope="module")
def nginx_binary() -> str:
    return require_real(shutil.which("nginx") or "/usr/sbin/nginx")


@pytest.fixture(scope="module")
def upstreams(servers: ServerThread) -> dict[str, int]:
    return {"silent": servers.start_websocket(ping_interval=None),
            "pings": servers.start_websocket(ping_interval=0.8)}


@pytest.fixture(scope="module")
def broken_nginx(nginx_binary: str, upstreams: dict[str, int], tmp_path_factory: pytest.TempPathFactory,
                 ) -> Iterator[Nginx]:
    """nginx with a bare proxy_pass: HTTP/1.0 upstream, Upgrade and Connection not forwarded."""
    site = ProxySite(listen_port=free_port(), websocket_headers=False,
                     routes=(Route("/ws/chat", "chat", upstreams["silent"]),))
    with Nginx(site, Path(tmp_path_factory.mktemp("nginx-broken")), binary=nginx_binary) as nginx:
        yield nginx


@pytest.fixture(scope="module")
def short_timeout_nginx(nginx_binary: str, upstreams: dict[str, int],
                        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    """The reference WebSocket proxy configuration with proxy_read_timeout 2 s."""
    site = ProxySite(listen_port=free_port(), proxy_read_timeout_s=READ_TIMEOUT_S,
                     routes=(Route("/ws/silent", "silent", upstreams["silent"]),
                             Route("/ws/pings", "pings", upstreams["pings"])))
    with Nginx(site, Path(tmp_path_factory.mktemp("nginx-timeout")), binary=nginx_binary) as nginx:
        yield nginx


@pytest.fixture(scope="module")
def through_timeout(short_timeout_nginx: Nginx) -> dict[str, HeartbeatResult]:
    async def both() -> dict[str, HeartbeatResult]:
        silent, pings = await asyncio.gather(
            probe_heartbeat(f"{short_timeout_nginx.url}/ws/silent", probe_seconds=WINDOW_S),
            probe_heartbeat(f"{short_timeout_nginx.url}/ws/pings", probe_seconds=WINDOW_S))
        return {"silent": silent, "pings": pings}

    return run_sync(both())


def test_missing_upgrade_headers_fail_only_through_the_proxy(broken_nginx: Nginx, upstreams: dict[str, int]) -> None:
    """Direct 101, through nginx a refusal from the backend: the rule points strongly at the proxy."""
    via, direct = run_sync(probe_handshakes(f"{broken_nginx.url}/ws/chat",
                                            f"ws://127.0.0.1:{upstreams['silent']}/ws/chat"))
    assert direct is not None and direct.ok
    assert not via.ok and via.error_kind is FailureKind.HTTP_STATUS and via.status in (400, 426, 505)
    assert "nginx" in (via.header("Server") or "")
    report = ProbeReport(target_url=via.url, direct_url=direct.url, elapsed_s=0.0,
                         handshake_target=via, handshake_direct=direct)
    (signal,) = handshake_comparison(report)
    assert signal.name == "upgrade_fails_only_through_proxy" and signal.ratio(Cause.PROXY) >= 8


def test_short_read_timeout_kills_only_the_idle_connection(through_timeout: dict[str, HeartbeatResult]) -> None:
    """proxy_read_timeout 2 s: the idle connection gets a FIN at ~2 s, the pinging one lives."""
    result = through_timeout["silent"]
    assert result.ok
    assert result.idle.ended_by is EndKind.FIN
    assert result.idle.lifetime_s == pytest.approx(READ_TIMEOUT_S, abs=0.5)
    assert result.pinging.alive_at_end
    report = ProbeReport(target_url=result.url, direct_url=None, elapsed_s=0.0, heartbeat=result)
    names = [s.name for s in idle_survival(report)]
    assert names == ["probe_idle_cut"]


def test_server_heartbeat_shorter_than_the_timeout_keeps_idle_alive(
        through_timeout: dict[str, HeartbeatResult]) -> None:
    """A server pinging every 0.8 s keeps the idle connection through a 2 s read timeout."""
    result = through_timeout["pings"]
    assert result.ok and result.idle.alive_at_end and result.pinging.alive_at_end
    assert result.server_pings >= 3
    report = ProbeReport(target_url=result.url, direct_url=None, elapsed_s=0.0, heartbeat=result)
    assert [s.name for s in server_heartbeat(report)] == ["server_heartbeat_present"]
