"""Record data/formats/haproxy-http.log and haproxy-tcp.log from a real HAProxy on loopback.

    .venv/bin/python data/formats/produce_haproxy.py

A python-websockets echo server (no keepalive pings) sits behind HAProxy twice: an ``option
httplog`` frontend (``mode http``) and an ``option tcplog`` one (``mode tcp``), both without
``timeout tunnel``, so ``timeout client`` / ``timeout server`` (2 s) cut idle sockets. Clients:
sessions closed cleanly (1000), idle sessions HAProxy cuts (cD/sD), sessions the client drops
without a close frame (CD), and requests that are not WebSocket handshakes (426 from the
backend). HAProxy logs to stdout (``log stdout format raw``); the script keeps what it printed.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import websockets

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


CONFIG = """
global
    log stdout format raw local0 info
defaults
    log global
    timeout connect 1s
    timeout client 2s
    timeout server 2s
frontend ws_http
    mode http
    option httplog
    bind 127.0.0.1:{http_port}
    http-request capture req.hdr(User-Agent) len 120
    default_backend chat
frontend ws_tcp
    mode tcp
    option tcplog
    bind 127.0.0.1:{tcp_port}
    default_backend chat_tcp
backend chat
    mode http
    server app1 127.0.0.1:{backend_port}
backend chat_tcp
    mode tcp
    server app1 127.0.0.1:{backend_port}
"""


async def echo(ws) -> None:
    async for message in ws:
        await ws.send(message)


async def clients(port: int, label: str) -> None:
    url = f"ws://127.0.0.1:{port}/ws/chat"
    for _ in range(3):  # clean sessions
        async with websockets.connect(url, ping_interval=None, user_agent_header=f"{label}-clean/1.0") as ws:
            await ws.send("hi")
            await ws.recv()
            await asyncio.sleep(0.3)
    idle = [await websockets.connect(url, ping_interval=None, user_agent_header=f"{label}-idle/1.0") for _ in range(3)]
    await asyncio.sleep(3.0)  # past timeout client/server: HAProxy cuts them
    for ws in idle:
        await ws.close()
    dropped = await websockets.connect(url, ping_interval=None, user_agent_header=f"{label}-drop/1.0")
    await asyncio.sleep(0.5)
    dropped.transport.abort()  # the client vanishes: no close frame, a TCP reset
    await asyncio.sleep(0.5)
    for _ in range(2):  # a plain GET on the WebSocket path: the backend answers 426
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ws/chat HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8.5.0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        await reader.read()
        writer.close()


async def main(binary: str) -> None:
    backend_port, http_port, tcp_port = free_port(), free_port(), free_port()
    async with websockets.serve(echo, "127.0.0.1", backend_port, ping_interval=None):
        with tempfile.TemporaryDirectory() as run:
            cfg = Path(run) / "haproxy.cfg"
            cfg.write_text(CONFIG.format(http_port=http_port, tcp_port=tcp_port, backend_port=backend_port))
            out = open(Path(run) / "stdout.log", "wb")
            proc = subprocess.Popen([binary, "-db", "-f", str(cfg)], stdout=out, stderr=subprocess.STDOUT)
            try:
                await asyncio.sleep(0.5)
                await clients(http_port, "http")
                await clients(tcp_port, "tcp")
                await asyncio.sleep(0.5)
            finally:
                proc.terminate()
                proc.wait(timeout=10)
                out.close()
            lines = (Path(run) / "stdout.log").read_text().splitlines()
    http = [line for line in lines if " ws_http " in line]
    tcp = [line for line in lines if " ws_tcp " in line]
    (HERE / "haproxy-http.log").write_text("\n".join(http) + "\n")
    (HERE / "haproxy-tcp.log").write_text("\n".join(tcp) + "\n")
    print(f"{len(http)} http lines, {len(tcp)} tcp lines; other output: {len(lines) - len(http) - len(tcp)}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "/usr/sbin/haproxy"))
