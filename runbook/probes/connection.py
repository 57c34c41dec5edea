"""A websockets client connection that remembers what happened to it, for the held-open probes.

:class:`ObservedConnection` is python-websockets' asyncio ``ClientConnection`` with a few
observations added at the points where bytes and events arrive: when anything was last received,
each ping frame the server sent (the library answers it, RFC 6455 5.5.2), EOF, and the exception
the transport died with. :func:`end_of` then tells how the connection ended, as precisely as the
wire allows:

- a close frame was received (RFC 6455 5.5.1): its code and reason;
- EOF with no close frame: a FIN, 1006 to the application (RFC 6455 7.1.5);
- the transport died with ECONNRESET: an RST;
- the probe itself decided on silence (pings unanswered): the caller knows, not the connection.

The probes never read messages: data frames are counted and dropped instead of queued, so a
chatty server cannot fill the receive queue and pause reading (which would also stop our answers
to its pings), and no reader task per connection is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ssl
import time

from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import DATA_OPCODES, Opcode

from runbook.observations import EndKind
from runbook.probes.target import USER_AGENT, Target

# Ping times kept per connection; a server pinging every second for an hour stays bounded.
MAX_PING_TIMES = 1000
ABNORMAL_CLOSURE = 1006  # RFC 6455 7.4.1: reserved, "no close frame"


class ObservedConnection(ClientConnection):
    """A ClientConnection recording arrivals, server pings, EOF and how the transport died."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - passed through
        super().__init__(*args, **kwargs)
        self.opened_at = time.monotonic()  # reset by the caller once the handshake is done
        self.last_received_at: float | None = None
        self.server_ping_times: list[float] = []
        self.messages = 0
        self.close_frame_at: float | None = None
        self.eof_at: float | None = None
        self.lost_at: float | None = None
        self.lost_exc: BaseException | None = None
        self.closing_by_us = False

    def data_received(self, data: bytes) -> None:
        self.last_received_at = time.monotonic()
        super().data_received(data)

    def process_event(self, event) -> None:  # noqa: ANN001 - a websockets Event
        if self.response is None:  # the first event is the handshake response
            super().process_event(event)
            return
        if event.opcode is Opcode.PING and len(self.server_ping_times) < MAX_PING_TIMES:
            self.server_ping_times.append(time.monotonic())
        elif event.opcode is Opcode.CLOSE and self.close_frame_at is None:
            self.close_frame_at = time.monotonic()
        if event.opcode in DATA_OPCODES:
            if event.fin:
                self.messages += 1
            return  # never queued: see the module docstring
        super().process_event(event)

    def eof_received(self) -> bool | None:
        self.eof_at = time.monotonic()
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost_at = time.monotonic()
        self.lost_exc = exc
        super().connection_lost(exc)

    @property
    def ended_at(self) -> float | None:
        """When the peer ended it: its close frame, else EOF, else the transport's end."""
        for moment in (self.close_frame_at, self.eof_at, self.lost_at):
            if moment is not None:
                return moment
        return None

    @property
    def lost(self) -> bool:
        return self.lost_at is not None

    def age(self, at: float | None = None) -> float:
        return (at if at is not None else time.monotonic()) - self.opened_at

    async def wait_lost(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the transport to end; True once it has."""
        if timeout_s > 0 and not self.lost:
            await asyncio.wait([self.connection_lost_waiter], timeout=timeout_s)
        return self.lost

    def abort(self) -> None:
        """Drop the TCP connection at once (no closing handshake): for cancellation and silence."""
        with contextlib.suppress(Exception):
            self.transport.abort()


def end_of(conn: ObservedConnection) -> tuple[EndKind | None, int | None, str | None]:
    """How a connection we did not close ended: (kind, close code, close reason).

    Kind None means it is still open or we closed it ourselves. A keepalive failure of the
    library's own pings (it sends 1011 and gives up) counts as silence.
    """
    if conn.closing_by_us:
        return None, None, None
    protocol = conn.protocol
    received = protocol.close_rcvd
    if received is not None:
        return EndKind.CLOSE_FRAME, int(received.code), received.reason
    exc = conn.lost_exc
    if isinstance(exc, ConnectionResetError) or getattr(exc, "errno", None) == errno.ECONNRESET:
        return EndKind.RST, ABNORMAL_CLOSURE, None
    sent = protocol.close_sent
    if sent is not None and int(sent.code) == 1011:  # "keepalive ping timeout" (RFC 6455 7.4.1)
        return EndKind.SILENCE, ABNORMAL_CLOSURE, None
    if conn.eof_at is not None or (conn.lost and exc is None):
        return EndKind.FIN, ABNORMAL_CLOSURE, None
    if conn.lost:
        return EndKind.ERROR, ABNORMAL_CLOSURE, None
    return None, None, None


async def open_connection(target: Target, *, ssl_context: ssl.SSLContext | None,
                          open_timeout_s: float, close_timeout_s: float = 2.0,
                          ping_interval_s: float | None = None,
                          ping_timeout_s: float | None = None) -> ObservedConnection:
    """Open one WebSocket connection to ``target`` without the library's automatic pings (unless
    ``ping_interval_s``), without compression and without any proxy from the environment (probes
    go only to the URL given). Raises whatever connecting raises: callers classify it."""
    conn = await connect(
        target.connect_url,
        additional_headers=list(target.extra_headers),
        origin=target.origin,  # type: ignore[arg-type]
        user_agent_header=USER_AGENT,
        proxy=None,
        open_timeout=open_timeout_s,
        ping_interval=ping_interval_s,
        ping_timeout=ping_timeout_s if ping_interval_s else None,
        close_timeout=close_timeout_s,
        compression=None,
        create_connection=ObservedConnection,
        **({"ssl": ssl_context} if target.secure else {}),
    )
    assert isinstance(conn, ObservedConnection)
    conn.opened_at = time.monotonic()
    conn.last_received_at = None  # count only what arrives after the handshake
    return conn


async def close_quietly(conn: ObservedConnection, timeout_s: float) -> None:
    """Close with 1000 (our own close), bounded by ``timeout_s``; abort if that runs out.

    A connection the peer already ended (close frame received, or the transport gone) is left
    as it is, so :func:`end_of` still reports the peer's end.
    """
    if conn.lost or conn.protocol.close_rcvd is not None:
        return
    conn.closing_by_us = True
    try:
        async with asyncio.timeout(timeout_s):
            await conn.close()
    except (TimeoutError, OSError):
        conn.abort()
    except asyncio.CancelledError:
        conn.abort()
        raise
