"""The TCP relay in each mode, between a real python websockets client and server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import time

import psutil
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus

from runbook.errors import ParameterError
from runbook.lab.relay import FlowState, Relay, strip_upgrade_request

IDLE_S = 0.6


@contextlib.asynccontextmanager
async def echo_server(closed: list[ServerConnection] | None = None, ping_interval=None):
    """A python websockets echo server on a free loopback port; yields the port."""

    async def echo(connection: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in connection:
                await connection.send(message)
        if closed is not None:
            closed.append(connection)

    async with serve(echo, "127.0.0.1", 0, ping_interval=ping_interval, ping_timeout=0.5,
                     close_timeout=0.5) as server:
        yield server.sockets[0].getsockname()[1]


def tcp_state(local_port: int) -> str | None:
    """The kernel's state of this process's TCP socket bound to local_port."""
    for conn in psutil.Process().net_connections(kind="tcp"):
        if conn.laddr and conn.laddr.port == local_port:
            return conn.status
    return None


async def pong_within(connection: ClientConnection, seconds: float) -> bool:
    waiter = await connection.ping()
    try:
        async with asyncio.timeout(seconds):
            await waiter
    except TimeoutError:
        return False
    return True


def test_forward_mode_relays_messages_and_pings():
    """A forward relay passes messages and ping/pong both ways and records the bytes."""

    async def scenario():
        async with echo_server() as port:
            with Relay(port) as relay:
                async with connect(f"{relay.url}/ws", ping_interval=None) as ws:
                    await ws.send("hello")
                    assert await ws.recv() == "hello"
                    assert await pong_within(ws, 1.0)
                return relay.flows()

    flows = asyncio.run(scenario())
    assert len(flows) == 1 and flows[0].bytes_up > 0 and flows[0].bytes_down > 0


def test_close_mode_ends_idle_flows_with_1006_near_the_timeout():
    """A close relay ends a flow idle for idle_timeout_s with a FIN: the client sees 1006."""

    async def scenario():
        async with echo_server() as port:
            with Relay(port, mode="close", idle_timeout_s=IDLE_S) as relay:
                async with connect(f"{relay.url}/ws", ping_interval=None) as ws:
                    opened = time.monotonic()
                    with pytest.raises(ConnectionClosed):
                        async with asyncio.timeout(5):
                            await ws.recv()
                    lived = time.monotonic() - opened
                    code = ws.close_code
                return lived, code, relay.flows()

    lived, code, flows = asyncio.run(scenario())
    assert IDLE_S - 0.1 <= lived <= IDLE_S + 0.5
    assert code == 1006  # no close frame: the TCP connection just ended
    assert flows[0].state is FlowState.CLOSED and flows[0].ended_by == "idle timeout"


def test_blackhole_mode_drops_silently_without_fin():
    """Once idle, a blackhole relay drops pings and messages and keeps the client's socket open."""

    async def idle_then_ping():
        async with echo_server() as port:
            with Relay(port, mode="blackhole", idle_timeout_s=IDLE_S) as relay:
                async with connect(f"{relay.url}/ws", ping_interval=None, close_timeout=0.2) as ws:
                    await ws.send("before")
                    assert await ws.recv() == "before"
                    await asyncio.sleep(IDLE_S + 0.3)
                    answered = await pong_within(ws, 1.0)
                    await ws.send("after")  # dropped too: no echo comes back
                    with pytest.raises(TimeoutError):
                        async with asyncio.timeout(0.5):
                            await ws.recv()
                    state = tcp_state(ws.local_address[1])
                    still_open = ws.protocol.state.name
                return answered, state, still_open, relay.flows()

    answered, state, still_open, flows = asyncio.run(idle_then_ping())
    assert answered is False
    assert state == psutil.CONN_ESTABLISHED and still_open == "OPEN"
    assert flows[0].state is FlowState.BLACKHOLED and flows[0].bytes_dropped > 0


def test_blackhole_hides_the_servers_close_from_the_client():
    """When the server gives up on a blackholed flow (1011 keepalive timeout), no FIN reaches the
    client: its socket stays ESTABLISHED."""
    closed: list[ServerConnection] = []

    async def scenario():
        # The server pings every 0.8 s; the relay forgets flows idle for 0.6 s, so the first
        # ping is already dropped and the server closes after its 0.5 s pong timeout.
        async with echo_server(closed, ping_interval=0.8) as port:
            with Relay(port, mode="blackhole", idle_timeout_s=IDLE_S) as relay:
                async with connect(f"{relay.url}/ws", ping_interval=None, close_timeout=0.2) as ws:
                    deadline = time.monotonic() + 5
                    while not closed and time.monotonic() < deadline:
                        await asyncio.sleep(0.1)
                    await asyncio.sleep(0.3)
                    sent = closed[0].protocol.close_sent if closed else None
                    return sent and sent.code, tcp_state(ws.local_address[1]), ws.protocol.state.name

    server_code, client_tcp, client_state = asyncio.run(scenario())
    assert server_code == 1011  # python-websockets sent "keepalive ping timeout", got no answer
    assert client_tcp == psutil.CONN_ESTABLISHED and client_state == "OPEN"


def test_strip_upgrade_makes_the_backend_refuse_the_handshake():
    """Forwarded the way nginx does without the upgrade headers, the handshake gets no 101."""

    async def scenario():
        async with echo_server() as port:
            with Relay(port, strip_upgrade=True) as relay:
                with pytest.raises(InvalidStatus) as refused:
                    async with connect(f"{relay.url}/ws", open_timeout=3):
                        pass
            async with connect(f"ws://127.0.0.1:{port}/ws") as direct:
                assert direct.protocol.state.name == "OPEN"
        return refused.value.response.status_code

    assert asyncio.run(scenario()) == 505  # python-websockets refuses HTTP/1.0 outright


def test_strip_upgrade_request_rewrites_like_nginx_defaults():
    """The request goes upstream as HTTP/1.0 with hop-by-hop headers dropped, the rest kept."""
    head = (b"GET /ws/chat?room=1 HTTP/1.1\r\nHost: chat.example.com\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: abc\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n")
    out = strip_upgrade_request(head)
    assert out.startswith(b"GET /ws/chat?room=1 HTTP/1.0\r\n")
    assert b"Upgrade:" not in out and b"Connection: Upgrade" not in out
    assert b"Connection: close\r\n\r\n" in out
    assert b"Sec-WebSocket-Key: abc" in out and b"X-Forwarded-For: 192.0.2.1" in out


def test_stop_releases_port_and_thread():
    """After stop() nothing listens on the relay's port and its thread has ended."""
    relay = Relay(9, mode="close", idle_timeout_s=1.0).start()
    port = relay.port
    relay.stop()
    listening = [c for c in psutil.net_connections(kind="tcp")
                 if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port]
    assert listening == [] and not relay.running


@pytest.mark.parametrize(("mode", "idle"), [("forward", 1.0), ("close", None), ("blackhole", 0),
                                            ("drop", 1.0)])
def test_bad_settings_fail_at_construction(mode, idle):
    """A mode/timeout combination that cannot work is refused with a ParameterError."""
    with pytest.raises(ParameterError):
        Relay(9, mode=mode, idle_timeout_s=idle)
