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

A refused opening handshake (any answer but 101, e.g. 505 or 426 when a proxy did not forward
the upgrade) is logged as an ``error`` record whose reason starts ``opening handshake failed:
HTTP <status>``, with the request's ip and userAgent.

Fault modes (:class:`ServerFaults`), each a real misbehaviour of the process, bounded:

- ``leak``: every connection leaves behind what a buggy handler keeps: the connection object, a
  per-connection cache of ``leak_bytes`` and a presence timer task that is never cancelled; for a
  ``leak_socket_share`` of connections also a duplicate of the TCP socket that is never closed
  (and no half-close either), so when the peer closes, the kernel keeps that socket in
  CLOSE_WAIT. RSS and CLOSE_WAIT then
  grow with churn, up to ``leak_max`` connections.
- ``max_connections``: beyond that many open connections, a new one is accepted, then closed at
  once with ``shed_code`` (1013 "try again later": load shedding).

Run it as ``python -m runbook.lab.server --port N --log PATH [--ping-interval S|none] [faults]``;
SIGTERM closes every connection with 1001 and exits. :func:`python_server` builds the process
handle.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import resource
import signal
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from runbook.lab.processes import LOOPBACK, ChildProcess

# python-websockets defaults (facts.md, "Keepalive defaults").
DEFAULT_PING_INTERVAL_S = 20.0
DEFAULT_PING_TIMEOUT_S = 20.0
ABNORMAL_CLOSURE = 1006  # RFC 6455 §7.4.1: reserved, "no close frame"
# Reasons sent with a load-shedding close (RFC 6455 §7.4.1 names; IANA registry for 1012-1014).
SHED_REASONS = {1011: "server overloaded", 1012: "service restart", 1013: "try again later"}
# Seconds between ticks of a leaked presence timer: enough to keep it alive, cheap in CPU.
LEAK_TIMER_S = 1.0
DEFAULT_LEAK_BYTES = 128 * 1024
DEFAULT_LEAK_MAX = 1500


@dataclass(frozen=True)
class ServerFaults:
    """How the server misbehaves beyond its heartbeat (see the module docstring)."""

    leak: bool = False
    leak_socket_share: float = 0.0
    leak_bytes: int = DEFAULT_LEAK_BYTES
    leak_max: int = DEFAULT_LEAK_MAX
    max_connections: int | None = None
    shed_code: int = 1013

    def __post_init__(self) -> None:
        if not 0 <= self.leak_socket_share <= 1:
            raise ValueError("leak_socket_share is a fraction between 0 and 1")
        if self.leak_bytes < 0 or self.leak_max < 0:
            raise ValueError("leak_bytes and leak_max must not be negative")
        if self.max_connections is not None and self.max_connections < 0:
            raise ValueError("max_connections must not be negative")
        if self.shed_code not in SHED_REASONS:
            raise ValueError(f"shed_code must be one of {sorted(SHED_REASONS)}")

    def argv(self) -> list[str]:
        """The command-line flags of ``python -m runbook.lab.server`` for these faults."""
        args: list[str] = []
        if self.leak:
            args += ["--leak", "--leak-socket-share", repr(self.leak_socket_share),
                     "--leak-bytes", str(self.leak_bytes), "--leak-max", str(self.leak_max)]
        if self.max_connections is not None:
            args += ["--max-connections", str(self.max_connections),
                     "--shed-code", str(self.shed_code)]
        return args

    def describe(self) -> str:
        parts = []
        if self.leak:
            parts.append(f"keeps every closed connection's objects, a {self.leak_bytes // 1024} KiB "
                         f"cache and an uncancelled timer; leaves {self.leak_socket_share:.0%} "
                         f"of sockets open (CLOSE_WAIT); up to {self.leak_max} connections")
        if self.max_connections is not None:
            parts.append(f"closes connections beyond {self.max_connections} open with "
                         f"{self.shed_code} ({SHED_REASONS[self.shed_code]})")
        return "; ".join(parts) or "none"


@dataclass
class LeakedSession:
    """What the leaking server keeps of one connection after it closed, for ever."""

    connection: ServerConnection
    cache: bytes
    timer: asyncio.Task[None] | None = None
    socket: socket.socket | None = None  # duplicate of the TCP socket, never closed
    ticks: int = 0


@dataclass
class Leaks:
    """The leaking server's module-level registry (the kind of global that never shrinks)."""

    faults: ServerFaults
    sessions: list[LeakedSession] = field(default_factory=list)
    sockets_kept: int = 0
    full_reported: bool = False

    def keep(self, connection: ServerConnection, number: int) -> LeakedSession | None:
        """Start leaking this connection (the ``number``-th one); None once ``leak_max`` is hit."""
        if len(self.sessions) >= self.faults.leak_max:
            if not self.full_reported:
                self.full_reported = True
                logging.getLogger("runbook.lab.server").warning(
                    "leak bound reached: %d connections kept; later ones are cleaned up",
                    self.faults.leak_max)
            return None
        # b"x" * n writes every page, so the cache really counts in RSS (zeros could stay lazy).
        session = LeakedSession(connection, b"x" * self.faults.leak_bytes)
        session.timer = asyncio.get_running_loop().create_task(_presence_timer(session))
        share = self.faults.leak_socket_share
        if int(number * share) != int((number - 1) * share):
            transport_socket = connection.transport.get_extra_info("socket")
            if transport_socket is not None:
                # A second descriptor on the same TCP socket: when the library closes its own,
                # the socket stays open, so the peer's FIN leaves it in CLOSE_WAIT. The
                # library half-closes (write_eof) before closing when it can, which would send
                # our FIN anyway; the buggy path this models never gets that far.
                session.socket = socket.socket(fileno=os.dup(transport_socket.fileno()))
                connection.transport.can_write_eof = lambda: False  # type: ignore[method-assign]
                self.sockets_kept += 1
        self.sessions.append(session)
        return session


async def _presence_timer(session: LeakedSession) -> None:
    """The per-connection timer a buggy handler starts and never cancels."""
    while True:
        await asyncio.sleep(LEAK_TIMER_S)
        session.ticks += 1


def utc_timestamp() -> str:
    """Now as ISO-8601 UTC with milliseconds and a Z, the way Node's toISOString() writes it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def client_address(connection: ServerConnection) -> str:
    """The client address the proxy forwarded, else the socket peer."""
    if connection.request is not None:
        headers = connection.request.headers
        # get_all: a proxy may add its own header line (HAProxy's `option forwardfor` does)
        # instead of appending to the client's; the first entry of the first line is the client.
        real_ip = next(iter(headers.get_all("X-Real-IP")), "").strip()
        if real_ip:
            return real_ip
        forwarded = next(iter(headers.get_all("X-Forwarded-For")), "").split(",")[0].strip()
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


def make_handler(log: CloseLog, faults: ServerFaults | None = None,
                 ) -> Callable[[ServerConnection], Awaitable[None]]:
    """The connection handler: log the connect, ack every message, log how it ended."""
    faults = faults or ServerFaults()
    leaks = Leaks(faults) if faults.leak else None
    counts = {"accepted": 0, "open": 0}

    async def handler(connection: ServerConnection) -> None:
        connection_id = str(uuid.uuid4())
        opened = time.monotonic()
        ip = client_address(connection)
        user_agent = connection.request.headers.get("User-Agent", "") if connection.request else ""
        log.write("connect", connection_id, ip=ip, user_agent=user_agent)
        counts["accepted"] += 1
        counts["open"] += 1
        if leaks is not None:
            leaks.keep(connection, counts["accepted"])
        seq = 0
        try:
            if faults.max_connections is not None and counts["open"] > faults.max_connections:
                await connection.close(faults.shed_code, SHED_REASONS[faults.shed_code])
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
            counts["open"] -= 1
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


def make_response_logger(log: CloseLog) -> Callable[[ServerConnection, Request, Response], None]:
    """A ``process_response`` hook that logs every refused opening handshake as an error."""

    def log_refusal(connection: ServerConnection, request: Request, response: Response) -> None:
        if response.status_code == 101:
            return
        problem = connection.protocol.handshake_exc
        reason = f"opening handshake failed: HTTP {response.status_code} {response.reason_phrase}"
        if problem is not None:
            reason += f": {problem}"
        log.write("error", str(uuid.uuid4()), reason=reason, ip=client_address(connection),
                  user_agent=request.headers.get("User-Agent", ""))

    return log_refusal


async def serve_close_log(port: int, log_path: Path, *, host: str = LOOPBACK,
                          ping_interval: float | None = DEFAULT_PING_INTERVAL_S,
                          ping_timeout: float | None = DEFAULT_PING_TIMEOUT_S,
                          faults: ServerFaults | None = None,
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
        async with serve(make_handler(log, faults), host, port, ping_interval=ping_interval,
                         ping_timeout=ping_timeout, close_timeout=5,
                         process_response=make_response_logger(log)):
            await stop.wait()


def python_server(port: int, log_path: Path, output_path: Path, *,
                  ping_interval: float | None = DEFAULT_PING_INTERVAL_S,
                  ping_timeout: float | None = DEFAULT_PING_TIMEOUT_S,
                  faults: ServerFaults | None = None) -> ChildProcess:
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
            "--ping-timeout", _seconds_arg(ping_timeout), *(faults or ServerFaults()).argv()]
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
    faults = parser.add_argument_group("faults")
    faults.add_argument("--leak", action="store_true", help="keep every closed connection's state")
    faults.add_argument("--leak-socket-share", type=float, default=0.0,
                        help="share of leaked connections whose socket is never closed")
    faults.add_argument("--leak-bytes", type=int, default=DEFAULT_LEAK_BYTES)
    faults.add_argument("--leak-max", type=int, default=DEFAULT_LEAK_MAX)
    faults.add_argument("--max-connections", type=int, default=None,
                        help="close connections beyond this many open (load shedding)")
    faults.add_argument("--shed-code", type=int, default=1013, choices=sorted(SHED_REASONS))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    chosen = ServerFaults(leak=args.leak, leak_socket_share=args.leak_socket_share,
                          leak_bytes=args.leak_bytes, leak_max=args.leak_max,
                          max_connections=args.max_connections, shed_code=args.shed_code)
    if chosen.leak:
        # Kept sockets hold descriptors: allow as many as the hard limit does.
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(serve_close_log(args.port, args.log, host=args.host,
                                ping_interval=args.ping_interval, ping_timeout=args.ping_timeout,
                                faults=chosen))


if __name__ == "__main__":
    main()
