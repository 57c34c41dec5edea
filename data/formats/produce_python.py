"""Record data/formats/python-websockets.log and tornado.log from real servers on loopback.

    .venv/bin/python data/formats/produce_python.py

python-websockets (server and client loggers at DEBUG, ``%(asctime)s %(levelname)s %(name)s:
%(message)s``): clean sessions, a client that stops answering pings (the server's keepalive ping
timeout, 1011), a client that vanishes without a close frame, a plain GET on the WebSocket path
(rejected), and a client whose connect() loop retries a gateway answering 502.

tornado with Jupyter Server's WebSocketMixin (tornado's LogFormatter, as Jupyter prints it): the
access-log line of each upgrade, and "WebSocket ping timeout after N ms." for a silent client.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def silent_client(port: int, path: str, hold_s: float) -> None:
    """Complete the opening handshake by hand, then never read: pings go unanswered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        "User-Agent: silent-client/1.0\r\n\r\n".encode()
    )
    await writer.drain()
    await asyncio.sleep(hold_s)
    writer.close()


async def python_websockets(log_path: Path) -> None:
    import websockets
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    handler = logging.FileHandler(log_path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("websockets.server", "websockets.client"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    async def gateway(reader, writer):  # a proxy whose upstream is down
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    port, gateway_port = free_port(), free_port()
    async with serve(echo, "127.0.0.1", port, ping_interval=1.0, ping_timeout=1.0):
        for _ in range(2):
            async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await ws.send("hello")
                await ws.recv()
        await silent_client(port, "/ws", 3.0)
        dropped = await connect(f"ws://127.0.0.1:{port}/ws")
        await asyncio.sleep(0.2)
        dropped.transport.abort()
        await asyncio.sleep(0.3)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8.5.0\r\n\r\n")
        await writer.drain()
        await reader.read()
        writer.close()
        gateway_server = await asyncio.start_server(gateway, "127.0.0.1", gateway_port)
        async with gateway_server:
            async def reconnecting() -> None:
                async for ws in connect(f"ws://127.0.0.1:{gateway_port}/ws"):
                    break

            try:
                await asyncio.wait_for(reconnecting(), timeout=4.0)
            except TimeoutError:
                pass
        try:
            async with connect(f"ws://127.0.0.1:{gateway_port}/ws"):
                pass
        except (OSError, websockets.exceptions.InvalidStatus) as exc:
            logging.getLogger("websockets.client").error("connect failed: %s", exc)
    handler.close()


async def tornado_jupyter(log_path: Path) -> None:
    import tornado.log
    import tornado.web
    import tornado.websocket
    from jupyter_server.base.websocket import WebSocketMixin

    handler = logging.FileHandler(log_path, mode="w")
    handler.setFormatter(tornado.log.LogFormatter(color=False))
    for name in ("tornado.access", "tornado.application", "tornado.general", "ServerApp"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)

    class Echo(WebSocketMixin, tornado.websocket.WebSocketHandler):
        @property
        def log(self):
            return logging.getLogger("ServerApp")

        def on_message(self, message):
            self.write_message(message)

    port = free_port()
    app = tornado.web.Application([(r"/api/kernels/k1/channels", Echo)], ws_ping_interval=500, ws_ping_timeout=1000,
                                  allow_unauthenticated_access=True)
    server = app.listen(port, address="127.0.0.1")
    import websockets

    for _ in range(2):
        async with websockets.connect(f"ws://127.0.0.1:{port}/api/kernels/k1/channels") as ws:
            await ws.send("hi")
            await ws.recv()
    await silent_client(port, "/api/kernels/k1/channels", 3.0)
    server.stop()
    handler.close()


if __name__ == "__main__":
    asyncio.run(python_websockets(HERE / "python-websockets.log"))
    asyncio.run(tornado_jupyter(HERE / "tornado.log"))
    for name in ("python-websockets.log", "tornado.log"):
        print(name, len((HERE / name).read_text().splitlines()), "lines", file=sys.stderr)
