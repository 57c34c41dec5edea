"""Each scenario really shows its fault, checked from the outside: with our own WebSocket clients,
the kernel's socket table (psutil) and the logs the real servers and nginx wrote.

Scenarios run compressed (Scenario.compressed(): a 60 s timeout takes 3 s) with few clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import psutil
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from runbook.lab.relay import FlowState
from runbook.lab.scenarios import NODE_BACKEND, PYTHON_BACKEND, SCENARIOS, ScenarioLab, get_scenario
from runbook.lab.session import run_for
from runbook.logs import combine_logs, parse_log
from runbook.logs.metrics import summarize_logs
from tests.lab.conftest import need_full_lab, need_nginx, need_node

pytestmark = pytest.mark.real

DESIGN_CAUSES = {"proxy", "heartbeat", "network", "resource_leak", "client"}
TEST_UA = "Mozilla/5.0 (X11; Linux x86_64) lab-test-client"


@contextlib.contextmanager
def running(name: str, *, clients: int | None = None, scale: float | None = None,
            proxy: str = "auto", backends: tuple[str, ...] | None = None) -> Iterator[ScenarioLab]:
    """The scenario compressed (or at ``scale``), in a throwaway run folder nginx can traverse."""
    scenario = get_scenario(name)
    scenario = scenario.compressed() if scale is None else scenario.scaled(scale)
    if clients:
        scenario = scenario.with_clients(clients)
    run_dir = Path(tempfile.mkdtemp(prefix=f"lab-test-{name}-"))
    run_dir.chmod(0o755)
    try:
        with ScenarioLab(scenario, run_dir, backends, proxy=proxy) as lab:
            yield lab
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def require_for(proxy: str, backends: tuple[str, ...] | None = None) -> None:
    if proxy != "relay":
        need_nginx()
    if backends is None or NODE_BACKEND in backends:
        need_node()


def open_client(url: str, ip: str, **options) -> contextlib.AbstractAsyncContextManager[ClientConnection]:
    """A browser-like client (no pings of its own) with an address the logs will show."""
    return connect(url, user_agent_header=TEST_UA, additional_headers={"X-Forwarded-For": ip},
                   ping_interval=None, **options)


async def lifetime_until_closed(connection: ClientConnection, limit_s: float) -> float | None:
    """Seconds until the connection closes (reading it), or None if still open after limit_s."""
    opened = time.monotonic()
    try:
        async with asyncio.timeout(limit_s):
            async for _message in connection:
                pass
    except TimeoutError:
        return None
    except ConnectionClosed:
        pass
    return time.monotonic() - opened


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def tcp_states_on(pid: int, port: int) -> list[str]:
    return [c.status for c in psutil.Process(pid).net_connections(kind="tcp")
            if c.laddr and c.laddr.port == port and c.status != psutil.CONN_LISTEN]


def own_tcp_state(local_port: int) -> str | None:
    for conn in psutil.Process().net_connections(kind="tcp"):
        if conn.laddr and conn.laddr.port == local_port:
            return conn.status
    return None


# --- the catalogue ----------------------------------------------------------------------------


def test_every_scenario_names_a_true_cause_and_compresses():
    """Each scenario's causes are DESIGN.md ids, and compressing it scales every timer alike."""
    assert set(SCENARIOS) >= {"healthy", "proxy_missing_upgrade", "proxy_timeout",
                              "heartbeat_missing", "network_idle_drop", "resource_leak",
                              "client_reconnect_storm"}
    for scenario in SCENARIOS.values():
        assert set(scenario.true_causes) <= DESIGN_CAUSES
        assert scenario.story and scenario.fix and scenario.shows
        fast = scenario.compressed()
        assert fast.proxy_read_timeout_s == pytest.approx(scenario.proxy_read_timeout_s * scenario.fast_time_scale)
        if scenario.middlebox is not None:
            assert fast.middlebox.idle_timeout_s == pytest.approx(
                scenario.middlebox.idle_timeout_s * scenario.fast_time_scale)
    assert SCENARIOS["healthy"].true_causes == ()
    storm = SCENARIOS["client_reconnect_storm"]
    assert storm.with_clients(30).python_faults.max_connections == 10


# --- healthy ----------------------------------------------------------------------------------


def test_healthy_stays_under_one_percent_disconnects_per_minute():
    """Healthy: under 1% of open connections drop per (scenario) minute; servers log only normal closes."""
    need_full_lab()
    scale, clients, seconds = 0.1, 30, 10.0
    with running("healthy", clients=clients, scale=scale) as lab:
        population = lab.start_clients(seed=5)
        run_for(lab, seconds)
        stats = population.stop()
        python_log = jsonl(lab.server_logs[PYTHON_BACKEND])
        node_log = lab.server_logs[NODE_BACKEND].read_text()
    scenario_minutes = seconds / (60 * scale)
    drops = sum(seen.drops for seen in stats.values())
    assert sum(seen.connects for seen in stats.values()) >= clients
    assert drops / (clients * scenario_minutes) < 0.01
    codes = {r["code"] for r in python_log if r["event"] == "disconnect"}
    assert codes <= {1000, 1001}
    assert "code: 1006" not in node_log and "code: 1011" not in node_log


# --- proxy_missing_upgrade ----------------------------------------------------------------------


async def handshake_status(url: str) -> int:
    try:
        async with open_client(url, "192.0.2.10", open_timeout=3):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


@pytest.mark.parametrize("proxy", ["nginx", "relay"])
def test_missing_upgrade_fails_through_the_proxy_and_works_direct(proxy):
    """proxy_missing_upgrade: non-101 through the proxy (python 505, Node 426), 101 direct."""
    require_for(proxy)
    with running("proxy_missing_upgrade", proxy=proxy) as lab:

        async def check():
            return ({b: await handshake_status(lab.url(b)) for b in lab.backends},
                    {b: await handshake_status(lab.url(b, direct=True)) for b in lab.backends})

        proxied, direct = asyncio.run(check())
        refusals = [r for r in jsonl(lab.server_logs[PYTHON_BACKEND]) if r["event"] == "error"]
        access = lab.log_files["access.log"].read_text() if "access.log" in lab.log_files else None
        used, kind = lab.proxy_used, lab.proxy_kind
    assert proxied == {PYTHON_BACKEND: 505, NODE_BACKEND: 426}
    assert direct == {PYTHON_BACKEND: 101, NODE_BACKEND: 101}
    assert refusals and refusals[0]["reason"].startswith("opening handshake failed: HTTP 505")
    assert kind == proxy and used.startswith("nginx" if proxy == "nginx" else "built-in relay")
    if access is not None:
        assert '"GET /ws/chat HTTP/1.1" 505 ' in access and '"GET /ws/live HTTP/1.1" 426 ' in access


# --- proxy_timeout and heartbeat_missing ---------------------------------------------------------


@pytest.mark.parametrize("proxy", ["nginx", "relay"])
def test_proxy_timeout_cuts_idle_sockets_near_the_read_timeout(proxy):
    """proxy_timeout: an idle client is cut with 1006 near the 3 s read timeout; a chatty one and a
    direct idle one (answering the server's slower pings) survive."""
    require_for(proxy, backends=(PYTHON_BACKEND,))
    with running("proxy_timeout", proxy=proxy, backends=(PYTHON_BACKEND,)) as lab:
        timeout_s = lab.scenario.proxy_read_timeout_s

        async def check():
            async with (open_client(lab.url(), "192.0.2.11") as idle,
                        open_client(lab.url(), "192.0.2.12") as chatty,
                        open_client(lab.url(direct=True), "192.0.2.13") as direct):

                async def chat():
                    with contextlib.suppress(ConnectionClosed):
                        for _ in range(14):
                            await chatty.send('{"type": "message"}')
                            await asyncio.sleep(0.4)

                talker = asyncio.create_task(chat())
                idle_life = await lifetime_until_closed(idle, timeout_s + 3)
                await talker
                return (idle_life, idle.close_code, chatty.protocol.state.name,
                        direct.protocol.state.name)

        idle_life, idle_code, chatty_state, direct_state = asyncio.run(check())
        error_log = lab.log_files["error.log"].read_text() if "error.log" in lab.log_files else ""
    assert idle_life is not None
    # nginx fires its timers up to 300 ms early (NGX_TIMER_LAZY_DELAY); the rest is scheduling.
    assert timeout_s - 0.5 <= idle_life <= timeout_s + 1.0
    assert idle_code == 1006
    assert chatty_state == "OPEN" and direct_state == "OPEN"
    if proxy == "nginx":
        assert "upstream timed out (110: Connection timed out) while proxying upgraded connection" in error_log


def test_heartbeat_missing_cuts_idle_sockets_and_leaves_dead_peers():
    """heartbeat_missing: idle sockets through nginx die near its timeout with 1006, and a client
    that vanishes behind the L4 path stays connected on the server, with no disconnect logged."""
    need_nginx()
    with running("heartbeat_missing", backends=(PYTHON_BACKEND,)) as lab:
        timeout_s = lab.scenario.proxy_read_timeout_s
        box_idle_s = lab.scenario.middlebox.idle_timeout_s
        l4_url = next(url for _backend, url, route in lab.targets if "L4" in route)
        server_pid, server_port = lab.servers[PYTHON_BACKEND].pid, lab.server_ports[PYTHON_BACKEND]

        async def check():
            async with open_client(lab.url(), "192.0.2.21") as idle:
                idle_life = await lifetime_until_closed(idle, timeout_s + 3)
                idle_code = idle.close_code
            async with open_client(l4_url, "192.0.2.22", close_timeout=0.3) as mobile:
                local_port = mobile.local_address[1]
                await asyncio.sleep(box_idle_s + 0.5)  # the L4 balancer forgets the flow
            # The phone is gone: its socket closed, its goodbye dropped on the way.
            await asyncio.sleep(1.5)
            return idle_life, idle_code, own_tcp_state(local_port)

        idle_life, idle_code, phone_socket = asyncio.run(check())
        server_states = tcp_states_on(server_pid, server_port)
        records = jsonl(lab.server_logs[PYTHON_BACKEND])
        flows = lab.middleboxes[0].flows()
    assert idle_life is not None and timeout_s - 0.5 <= idle_life <= timeout_s + 1.0
    assert idle_code == 1006
    assert phone_socket in (None, psutil.CONN_TIME_WAIT, psutil.CONN_FIN_WAIT2)  # closed on its side
    assert server_states == [psutil.CONN_ESTABLISHED]  # ... but not on the server's
    phone = [r for r in records if r["ip"] == "192.0.2.22"]
    assert [r["event"] for r in phone] == ["connect"]
    assert [f.state for f in flows] == [FlowState.BLACKHOLED]


# --- network_idle_drop --------------------------------------------------------------------------


def test_network_idle_drop_leaves_pings_unanswered_without_fin():
    """network_idle_drop: after the firewall's idle timeout the client's ping gets no pong, and
    even when the server gives up (1011 keepalive ping timeout) no FIN reaches the client."""
    need_nginx()
    with running("network_idle_drop", backends=(PYTHON_BACKEND,)) as lab:
        scenario = lab.scenario
        box_idle_s = scenario.middlebox.idle_timeout_s
        server_gives_up_s = scenario.python_ping_interval_s + scenario.python_ping_timeout_s

        async def check():
            async with open_client(lab.url(), "192.0.2.31", close_timeout=0.3) as client:
                opened = time.monotonic()
                await client.send('{"type": "subscribe"}')
                await client.recv()  # the ack: the path works while the flow is fresh
                await asyncio.sleep(box_idle_s + 0.5)
                waiter = await client.ping()
                try:
                    async with asyncio.timeout(1.5):
                        await waiter
                    answered = True
                except TimeoutError:
                    answered = False
                await asyncio.sleep(max(0.0, server_gives_up_s + 1.0 - (time.monotonic() - opened)))
                return answered, client.protocol.state.name, own_tcp_state(client.local_address[1])

        answered, client_state, client_tcp = asyncio.run(check())
        records = [r for r in jsonl(lab.server_logs[PYTHON_BACKEND]) if r["ip"] == "192.0.2.31"]
    assert answered is False
    assert client_state == "OPEN" and client_tcp == psutil.CONN_ESTABLISHED  # no FIN, no RST
    closes = [r for r in records if r["event"] == "disconnect"]
    assert [(r["code"], r["reason"]) for r in closes] == [(1011, "keepalive ping timeout")]


# --- resource_leak ------------------------------------------------------------------------------


def churn(url: str, count: int) -> None:
    """Open ``count`` connections at once, say something on each, close them all."""

    async def one(index: int) -> None:
        async with open_client(url, f"198.51.100.{index + 1}", close_timeout=0.3) as ws:
            await ws.send('{"type": "subscribe"}')
            await ws.recv()

    async def all_of_them() -> None:
        await asyncio.gather(*(one(i) for i in range(count)))

    asyncio.run(all_of_them())


def measure_churn(name: str, rounds: int, per_round: int) -> list[tuple[int, int]]:
    """(RSS bytes, CLOSE_WAIT sockets) of the python server before and after each churn round."""
    with running(name, backends=(PYTHON_BACKEND,)) as lab:
        pid, port = lab.servers[PYTHON_BACKEND].pid, lab.server_ports[PYTHON_BACKEND]

        def sample() -> tuple[int, int]:
            time.sleep(0.5)  # let the last closes settle in the socket table
            return (psutil.Process(pid).memory_info().rss,
                    tcp_states_on(pid, port).count(psutil.CONN_CLOSE_WAIT))

        samples = [sample()]
        for _ in range(rounds):
            churn(lab.url(), per_round)
            samples.append(sample())
    return samples


def test_resource_leak_grows_rss_and_close_wait_with_churn():
    """resource_leak: every churn round raises the server's RSS and CLOSE_WAIT count; the healthy
    server under the same churn keeps no CLOSE_WAIT and grows far less."""
    need_nginx()
    rounds, per_round = 3, 20
    leaky = measure_churn("resource_leak", rounds, per_round)
    healthy = measure_churn("healthy", rounds, per_round)
    rss = [r for r, _ in leaky]
    close_wait = [c for _, c in leaky]
    # 30% of the connections keep their socket; each keeps a 128 KiB cache.
    assert close_wait == sorted(close_wait) and close_wait[-1] >= 0.25 * rounds * per_round
    assert all(b > a for a, b in zip(close_wait, close_wait[1:]))
    per_round_growth = [b - a for a, b in zip(rss, rss[1:])]
    assert all(growth >= per_round * 100 * 1024 for growth in per_round_growth), per_round_growth
    assert [c for _, c in healthy] == [0] * (rounds + 1)
    assert healthy[-1][0] - healthy[0][0] < (rss[-1] - rss[0]) / 2


# --- client_reconnect_storm ---------------------------------------------------------------------


def test_reconnect_storm_shows_flat_reconnect_gaps():
    """client_reconnect_storm: shed clients come back within ~0.3 s, again and again, with no
    growth in the gaps; the server logs 1013 closes."""
    need_nginx()
    with running("client_reconnect_storm", clients=30, backends=(PYTHON_BACKEND,)) as lab:
        population = lab.start_clients(seed=4)
        run_for(lab, 6.0)
        population.stop()
        log_path = lab.server_logs[PYTHON_BACKEND]
        records = jsonl(log_path)
        metrics = summarize_logs(combine_logs([parse_log(log_path.read_text(), str(log_path))]))
    sessions: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)  # ip -> id -> times
    for record in records:
        if record["event"] in ("connect", "disconnect"):
            sessions[record["ip"]].setdefault(record["connectionId"], {})[record["event"]] = epoch(record["ts"])
    shed = sum(1 for r in records if r["event"] == "disconnect" and r["code"] == 1013)
    loopers = 0
    for by_id in sessions.values():
        ordered = sorted((times for times in by_id.values() if len(times) == 2),
                         key=lambda times: times["connect"])
        if len(ordered) < 8:
            continue
        loopers += 1
        gaps = [after["connect"] - before["disconnect"] for before, after in zip(ordered, ordered[1:])]
        assert statistics.median(gaps) < 0.6
        # Flat: the last attempts wait no longer than the first ones (no backoff).
        assert statistics.mean(gaps[-3:]) < 1.5 * statistics.mean(gaps[:3]) + 0.1
    assert loopers >= 3 and shed >= 8 * loopers
    # runbook.logs names sub-second flat reconnects after sub-second sessions a "storm" (a
    # "loop" is the slower kind); either way no backoff.
    assert metrics.reconnect_clients["pattern"].isin(("storm", "loop")).sum() >= 3
