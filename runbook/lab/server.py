"""A python ``websockets`` server that writes a JSON-lines close log, and a handle that runs it.

The log has one JSON object per line, one for every connect, every disconnect and every error,
always with the same fields::

    {"ts": "2026-05-09T07:35:25.123Z", "event": "disconnect", "connectionId": "…",
     "code": 1006, "reason": "", "duration": 60007, "ip": "203.0.113.7", "userAgent": "…"}

- ``ts``: ISO-8601 UTC with milliseconds, when the server logged the event.
- ``event``: ``connect``, ``disconnect`` or ``error``.
- ``code`` / ``reason``: the close frame the server received (RFC 6455 §7.1.5 "The WebSocket
  Connection Close Code"); when none was received but the server sent one (its keepalive gave
  up: 1011 ``keepalive ping timeout``), the one it sent; 1006 with an empty reason when the TCP
  connection ended with no close frame either way (§7.1.5: 1006 is never on the wire). For
  ``error`` records ``reason`` holds the error message. ``null`` on ``connect``.
- ``duration``: milliseconds since the connection opened (``null`` on ``connect``).
- ``ip``: the client address as the proxy reported it (``X-Real-IP``, else the first
  ``X-Forwarded-For`` entry), else the socket peer. ``userAgent``: the request's header.

The server acknowledges each message it receives, so chatty clients keep traffic flowing both
ways; idle clients get nothing. ``ping_interval`` None disables the library's keepalive (the
"no heartbeat" application); the library default is a ping every 20 s.

Run it as ``python -m runbook.lab.server --port N --log PATH [--ping-interval S|none]``; SIGTERM
closes every connection with 1001 and exits. :func:`python_server` builds the process handle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from runbook.lab.processes import LOOPBACK, ChildProcess

# python-websockets defaults (facts.md, "Keepalive defaults").
DEFAULT_PING_INTERVAL_S = 20.0
DEFAULT_PING_TIMEOUT_S = 20.0
ABNORMAL_CLOSURE = 1006  # RFC 6455 §7.4.1: reserved, "no close frame"


def utc_timestamp() -> str:
    """Now as ISO-8601 UTC with milliseconds and a Z, the way Node's toISOString() writes it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def client_address(connection: ServerConnection) -> str:
    """The client address the proxy forwarded, else the socket peer."""
    headers = connection.request.headers if connection.request else {}
    real_ip = headers.get("X-Real-IP", "").strip()
    if real_ip:
        return real_ip
    forwarded = headers.get("X-Forwarded-For", "").split(",")[0].strip()
    if forwarded:
        return forwarded
    peer = connection.remote_address
    return str(peer[0]) if peer else ""


def close_code_and_reason(connection: ServerConnection) -> tuple[int, str]:
    """The close frame received, else the one sent, else 1006 (see the module docstring)."""
    protocol = connection.protocol
    frame = protocol.close_rcvd or protocol.close_sent
    if frame is None:
        return ABNORMAL_CLOSURE, ""
    return int(frame.code), frame.reason


class CloseLog:
    """Appends close-log records to a text stream, one JSON object per line, flushed each time."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, event: str, connection_id: str, *, code: int | None = None,
              reason: str | None = None, duration_ms: int | None = None, ip: str = "",
              user_agent: str = "") -> None:
        record: dict[str, Any] = {
            "ts": utc_timestamp(),
            "event": event,
            "connectionId": connection_id,
            "code": code,
            "reason": reason,
            "duration": duration_ms,
            "ip": ip,
            "userAgent": user_agent,
        }
        self.stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.stream.flush()


def make_handler(log: CloseLog) -> Callable[[ServerConnection], Awaitable[None]]:
    """The connection handler: log the connect, ack every message, log how it ended."""

    async def handler(connection: ServerConnection) -> None:
        connection_id = str(uuid.uuid4())
        opened = time.monotonic()
        ip = client_address(connection)
        user_agent = connection.request.headers.get("User-Agent", "") if connection.request else ""
        log.write("connect", connection_id, ip=ip, user_agent=user_agent)
        seq = 0
        try:
            async for _message in connection:
                seq += 1
                await connection.send(json.dumps({"type": "ack", "seq": seq}))
        except ConnectionClosed as closed:
            # A protocol violation (bad frame, oversized message) is an error worth its own
            # record; a peer or proxy that simply went away is a plain disconnect.
            cause = closed.__cause__
            if cause is not None and not isinstance(cause, (OSError, EOFError)):
                log.write("error", connection_id, reason=str(cause),
                          duration_ms=round((time.monotonic() - opened) * 1000), ip=ip,
                          user_agent=user_agent)
        except Exception as error:  # noqa: BLE001 - any handler failure is logged, then closed
            log.write("error", connection_id, reason=f"{type(error).__name__}: {error}",
                      duration_ms=round((time.monotonic() - opened) * 1000), ip=ip,
                      user_agent=user_agent)
            await connection.close(1011, "internal error")
        finally:
            # The code is final once the TCP connection is gone; bounded by the close timeout.
            try:
                async with asyncio.timeout(15):
                    await connection.wait_closed()
            except TimeoutError:
                pass
            code, reason = close_code_and_reason(connection)
            log.write("disconnect", connection_id, code=code, reason=reason,
                      duration_ms=round((time.monotonic() - opened) * 1000), ip=ip,
                      user_agent=user_agent)

    return handler


async def serve_close_log(port: int, log_path: Path, *, host: str = LOOPBACK,
                          ping_interval: float | None = DEFAULT_PING_INTERVAL_S,
                          ping_timeout: float | None = DEFAULT_PING_TIMEOUT_S,
                          stop: asyncio.Event | None = None) -> None:
    """Serve on host:port, logging to ``log_path`` (appended), until ``stop`` is set.

    Without ``stop``, SIGTERM and SIGINT stop it. Leaving closes the open connections with 1001
    (python-websockets' ``Server.close()``), which the log records as disconnects.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    with open(log_path, "a", encoding="utf-8") as stream:
        log = CloseLog(stream)
        async with serve(make_handler(log), host, port, ping_interval=ping_interval,
                         ping_timeout=ping_timeout, close_timeout=5):
            await stop.wait()


def python_server(port: int, log_path: Path, output_path: Path, *,
                  ping_interval: float | None = DEFAULT_PING_INTERVAL_S,
                  ping_timeout: float | None = DEFAULT_PING_TIMEOUT_S) -> ChildProcess:
    """A (not yet started) handle on this server in its own python process.

    ``log_path`` receives the JSON-lines close log, ``output_path`` the process's own stdout and
    stderr (library warnings, tracebacks).
    """
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    # The child imports runbook from this very tree, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "runbook.lab.server", "--port", str(port),
            "--log", str(log_path), "--ping-interval", _seconds_arg(ping_interval),
            "--ping-timeout", _seconds_arg(ping_timeout)]
    return ChildProcess("python websockets server", argv, output_path, env=env)


def _seconds_arg(value: float | None) -> str:
    return "none" if value is None else repr(float(value))


def _parse_seconds(text: str) -> float | None:
    if text.lower() == "none":
        return None
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds or 'none'")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m runbook.lab.server",
                                     description="python websockets server with a JSON-lines close log")
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True, help="close log, JSON lines (appended)")
    parser.add_argument("--ping-interval", type=_parse_seconds, default=DEFAULT_PING_INTERVAL_S,
                        help="seconds between keepalive pings, or 'none' for no heartbeat")
    parser.add_argument("--ping-timeout", type=_parse_seconds, default=DEFAULT_PING_TIMEOUT_S)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve_close_log(args.port, args.log, host=args.host,
                                ping_interval=args.ping_interval, ping_timeout=args.ping_timeout))


if __name__ == "__main__":
    main()
