"""A real HAProxy in front of the real python websockets server, with compressed timeouts.

Checks from the outside: the upgrade passes, an idle WebSocket is cut at `timeout client` when
`timeout tunnel` is not set (and survives past it when it is), the log file gets httplog lines,
and the header-stripping misconfiguration makes every handshake fail through the proxy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from runbook.lab.haproxy import HaproxySite, render_haproxy_cfg
from runbook.lab.nginx import Route
from runbook.lab.scenarios import ScenarioLab, get_scenario
from tests.lab.conftest import need_haproxy

TIMEOUT_S = 1.5  # timeout client / timeout server, compressed


def _scenario(**changes):
    base = dataclasses.replace(get_scenario("healthy"), python_ping_interval_s=None,
                               python_ping_timeout_s=None, proxy_read_timeout_s=TIMEOUT_S)
    return dataclasses.replace(base, **changes)


def _lab(tmp_path: Path, **changes) -> ScenarioLab:
    need_haproxy()
    tmp_path.chmod(0o755)
    return ScenarioLab(_scenario(**changes), tmp_path, backends=("python",), proxy="haproxy")


async def _idle_lifetime(url: str, limit_s: float) -> tuple[float, bool]:
    """Seconds an idle connection lived (capped at limit_s) and whether it was cut."""
    started = time.monotonic()
    async with connect(url, ping_interval=None, additional_headers={"X-Forwarded-For": "192.0.2.9"}) as ws:
        try:
            async with asyncio.timeout(limit_s):
                async for _message in ws:
                    pass
        except TimeoutError:
            return time.monotonic() - started, False
        except ConnectionClosed:
            pass
    return time.monotonic() - started, True


def _log_lines(lab: ScenarioLab) -> list[str]:
    return [line for line in lab.log_files["haproxy.log"].read_text().splitlines() if "ws_front" in line]


def test_config_renders_timeouts_tunnel_and_upgrade_stripping() -> None:
    route = (Route("/ws/chat", "chat_python", 9000),)
    plain = render_haproxy_cfg(HaproxySite(8080, route, timeout_client_s=1.5, timeout_server_s=60))
    assert "timeout client 1500ms" in plain and "timeout server 60s" in plain
    assert "timeout tunnel" not in plain and "del-header Upgrade" not in plain
    assert "option httplog" in plain and "log stdout format raw" in plain
    assert "acl is_chat_python path_beg /ws/chat" in plain
    tunnel = render_haproxy_cfg(HaproxySite(8080, route, timeout_tunnel_s=3600))
    assert "timeout tunnel 3600s" in tunnel
    stripped = render_haproxy_cfg(HaproxySite(8080, route, websocket_upgrade=False))
    assert "http-request del-header Upgrade" in stripped


@pytest.mark.real
def test_idle_websocket_cut_at_timeout_client_without_tunnel(tmp_path: Path) -> None:
    with _lab(tmp_path) as lab:
        assert lab.proxy_kind == "haproxy"
        lived, cut = asyncio.run(_idle_lifetime(lab.url(), limit_s=TIMEOUT_S + 3))
        assert cut, "the idle connection survived timeout client"
        assert TIMEOUT_S - 0.2 <= lived <= TIMEOUT_S + 1.0, lived
        time.sleep(0.3)  # the session's line is written when it ends
        lines = _log_lines(lab)
        close_log = lab.log_files["close-log.jsonl"].read_text()
    assert lines, "haproxy.log has no session line"
    assert " 101 " in lines[-1] and " cD" in lines[-1], lines[-1]  # client-side timeout, data phase
    assert "{192.0.2.9}" in lines[-1]  # the captured X-Forwarded-For
    assert '"code": 1006' in close_log and '"ip": "192.0.2.9"' in close_log


@pytest.mark.real
def test_timeout_tunnel_keeps_idle_websocket_past_timeout_client(tmp_path: Path) -> None:
    with _lab(tmp_path, haproxy_timeout_tunnel_s=30.0) as lab:
        lived, cut = asyncio.run(_idle_lifetime(lab.url(), limit_s=TIMEOUT_S * 2))
    assert not cut, f"cut after {lived:.2f} s although timeout tunnel is 30 s"


@pytest.mark.real
def test_stripped_upgrade_fails_through_haproxy_but_not_direct(tmp_path: Path) -> None:
    async def status(url: str) -> int:
        try:
            async with connect(url, ping_interval=None):
                return 101
        except InvalidStatus as error:
            return error.response.status_code

    with _lab(tmp_path, proxy_websocket_headers=False) as lab:
        through, direct = asyncio.run(status(lab.url())), asyncio.run(status(lab.url(direct=True)))
        assert "del-header Upgrade" in lab.log_files["haproxy.cfg"].read_text()
    assert through != 101 and 400 <= through < 500, through
    assert direct == 101
