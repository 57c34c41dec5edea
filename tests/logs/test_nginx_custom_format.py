"""An access log in a custom log_format, written by a real nginx, read through the config's log_format."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time

import pandas as pd
import pytest

import runbook.steps as rb
from runbook.logfiles import load_close_logs
from tests.conftest import require_real

CONFIG = """
worker_processes 1;
daemon off;
pid {run}/nginx.pid;
error_log {run}/error.log info;
events {{ worker_connections 64; }}
http {{
    log_format pipes escape=json '$time_iso8601|$remote_addr|$request_id|"$request"|$status|'
                                 '$request_time|$http_user_agent';
    access_log {run}/access.log pipes;
    client_body_temp_path {run}/tmp; proxy_temp_path {run}/tmp; fastcgi_temp_path {run}/tmp;
    uwsgi_temp_path {run}/tmp; scgi_temp_path {run}/tmp;
    server {{
        listen 127.0.0.1:{port};
        location /ws/ {{
            proxy_pass http://127.0.0.1:{backend};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
        }}
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(port: int, ready: threading.Event, stop: threading.Event) -> None:
    from websockets.asyncio.server import serve

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    async def main():
        async with serve(echo, "127.0.0.1", port, ping_interval=None):
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)

    asyncio.run(main())


async def _clients(port: int) -> None:
    from websockets.asyncio.client import connect

    for hold in (0.2, 0.6):
        async with connect(f"ws://127.0.0.1:{port}/ws/chat", user_agent_header="pipes-test/1.0") as ws:
            await ws.send("x")
            await ws.recv()
            await asyncio.sleep(hold)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)  # no Upgrade: the backend answers 426
    writer.write(b"GET /ws/chat HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    await reader.read()
    writer.close()


@pytest.mark.real
def test_custom_log_format_read_through_the_config(tmp_path):
    """nginx writes '$time_iso8601|...' lines; the format compiled from its config reads them all."""
    binary = require_real("nginx")
    backend, port = _free_port(), _free_port()
    (tmp_path / "tmp").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(CONFIG.format(run=tmp_path, port=port, backend=backend))
    ready, stop = threading.Event(), threading.Event()
    server = threading.Thread(target=_serve, args=(backend, ready, stop), daemon=True)
    server.start()
    assert ready.wait(10)
    nginx = subprocess.Popen([binary, "-c", str(conf), "-p", str(tmp_path)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        asyncio.run(_clients(port))
    finally:
        nginx.terminate()
        nginx.wait(10)
        stop.set()
        server.join(10)
    access = tmp_path / "access.log"
    assert len(access.read_text().splitlines()) == 3
    (unread,) = load_close_logs([str(access)])
    assert unread.format != "nginx_access"  # the built-in combined format does not read it
    (parsed,) = load_close_logs([str(access)], extra_formats=rb.nginx_log_formats(str(conf)))
    assert parsed.format == "nginx_access:pipes" and parsed.malformed_count == 0
    frame = parsed.frame
    assert frame["event"].tolist() == ["disconnect", "disconnect", "error"]
    assert frame["duration_s"].iloc[1] > frame["duration_s"].iloc[0] >= 0.2
    assert frame["reason"].iloc[2] == "handshake failed: HTTP 426 on /ws/chat"
    assert set(frame["user_agent"].dropna()) == {"pipes-test/1.0"}
    assert frame["connection_id"].str.fullmatch("[0-9a-f]{32}").all()  # $request_id
    assert frame["ts"].notna().all() and (frame["ts"] > pd.Timestamp("2020-01-01", tz="UTC")).all()
