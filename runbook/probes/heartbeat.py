"""The heartbeat and idle-survival probe: what the path does to a connection that says nothing.

Two connections are opened to the same URL and held for ``probe_seconds``:

- the **idle** one sends nothing at all (the library's keepalive is off) and only answers the
  server's pings, as every client must (RFC 6455 5.5.2). Near the end of the window it gets one
  ping: a pong means it survived; no pong means it died silently somewhere on the way.
- the **pinging** one sends a ping every ``ping_every_s`` and times each pong (RFC 6455 5.5.3).

For each we record whether and how often the server pinged us, and when and how it ended: a
close frame (code and reason), a FIN with no close frame, an RST, or silence. Silence is decided
like this: a ping unanswered within ``pong_timeout_s``, then a close frame (RFC 6455 5.5.1) also
unanswered within ``close_s``, and nothing else received since the ping: a blackhole. A peer
that ignores the ping but answers the close frame (or keeps sending) is alive but deaf to pings.

Reading the outcome (done by ``runbook.diagnosis.probe_rules``, not here): idle dies at T while
the pinging one lives means an idle timeout of about T in the path; both die at T means a hard
lifetime or an aggressive socket timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from websockets.exceptions import ConnectionClosed

from runbook.errors import ParameterError
from runbook.observations import ConnectionFate, EndKind, FailureKind, HeartbeatResult
from runbook.probes.connection import ObservedConnection, close_quietly, end_of, open_connection
from runbook.probes.failures import describe_failure
from runbook.probes.target import Target, prepare_target

DEFAULT_PROBE_SECONDS = 30.0
DEFAULT_OPEN_TIMEOUT_S = 10.0
MIN_PROBE_SECONDS = 3.0
IDLE, PINGING = "idle", "pinging"


def default_ping_every(probe_seconds: float) -> float:
    """A ping every few seconds: six per window, between 0.5 s and 5 s apart."""
    return min(5.0, max(0.5, probe_seconds / 6))


def default_pong_timeout(probe_seconds: float) -> float:
    """How long a pong may take before we call it missing: a tenth of the window, 1-5 s."""
    return min(5.0, max(1.0, probe_seconds / 10))


class _Watch:
    """The counters of one held connection while the probe runs."""

    def __init__(self, conn: ObservedConnection, role: str) -> None:
        self.conn = conn
        self.role = role
        self.pings_sent = 0
        self.pongs = 0
        self.rtts: list[float] = []
        self.kind: EndKind | None = None
        self.code: int | None = None
        self.reason: str | None = None
        self.ended_at: float | None = None
        self.alive = False
        self.detail = ""
        self.watched_until: float | None = None  # when the watch ended (set by the watchers)

    def take_end(self) -> bool:
        """Record how the peer ended the connection, if it did; True when it has ended."""
        kind, code, reason = end_of(self.conn)
        if kind is None:
            return False
        self.kind, self.code, self.reason = kind, code, reason
        self.ended_at = self.conn.ended_at or time.monotonic()
        self.detail = _end_detail(kind, code, self.ended_at - self.conn.opened_at)
        return True

    def fate(self) -> ConnectionFate:
        conn = self.conn
        received = conn.last_received_at
        until = self.ended_at if self.ended_at is not None else (self.watched_until or time.monotonic())
        return ConnectionFate(
            role=self.role,
            alive_at_end=self.alive,
            observed_s=max(0.0, until - conn.opened_at),
            ended_by=self.kind,
            lifetime_s=None if self.ended_at is None else self.ended_at - conn.opened_at,
            last_received_s=None if received is None else received - conn.opened_at,
            close_code=self.code,
            close_reason=self.reason,
            pings_sent=self.pings_sent,
            pongs_received=self.pongs,
            server_pings=len(conn.server_ping_times),
            server_ping_times_s=tuple(t - conn.opened_at for t in conn.server_ping_times),
            messages_received=conn.messages,
            detail=self.detail,
        )


def _end_detail(kind: EndKind, code: int | None, age: float) -> str:
    if kind is EndKind.CLOSE_FRAME:
        return f"the peer sent close code {code} after {age:.1f} s"
    if kind is EndKind.FIN:
        return f"the TCP connection ended without a close frame (FIN) after {age:.1f} s"
    if kind is EndKind.RST:
        return f"the TCP connection was reset (RST) after {age:.1f} s"
    if kind is EndKind.SILENCE:
        return f"found silent at {age:.1f} s: ping and close frame unanswered, no FIN or RST"
    if kind is EndKind.PONG_TIMEOUT:
        return f"ping at {age:.1f} s unanswered, although the peer still answers otherwise"
    return f"the transport failed after {age:.1f} s"


async def _ping_once(watch: _Watch, pong_timeout_s: float, close_s: float) -> bool:
    """Ping and wait for the pong; True if it came. On a missing pong, decide silence or a
    deaf peer (see the module docstring) and end the connection; False then too."""
    conn = watch.conn
    sent = time.monotonic()
    try:
        waiter = await conn.ping()
    except ConnectionClosed:
        watch.take_end()
        return False
    watch.pings_sent += 1
    done, _ = await asyncio.wait([waiter], timeout=pong_timeout_s)
    if done:
        if waiter.exception() is not None:  # ConnectionClosed: the connection ended meanwhile
            watch.take_end()
            return False
        watch.pongs += 1
        watch.rtts.append(float(waiter.result()))
        return True
    if watch.take_end():  # it ended while we waited
        return False
    traffic_since = conn.last_received_at is not None and conn.last_received_at > sent
    conn.closing_by_us = True
    try:
        async with asyncio.timeout(close_s + 0.5):
            await conn.close(1000, "probe: ping unanswered")
    except (TimeoutError, OSError):
        pass
    finally:
        conn.abort()
    answered_close = conn.protocol.close_rcvd is not None
    watch.kind = EndKind.PONG_TIMEOUT if (answered_close or traffic_since) else EndKind.SILENCE
    watch.ended_at = sent
    watch.detail = _end_detail(watch.kind, None, sent - conn.opened_at)
    if watch.kind is EndKind.PONG_TIMEOUT:
        answer = "answered our close frame" if answered_close else "kept sending"
        watch.detail = (f"ping at {sent - conn.opened_at:.1f} s unanswered within {pong_timeout_s:g} s, "
                        f"but the peer {answer}: it is alive and ignores pings")
    return False


async def _watch_idle(watch: _Watch, check_at: float, pong_timeout_s: float, close_s: float) -> None:
    conn = watch.conn
    await conn.wait_lost(check_at - time.monotonic())
    if watch.take_end():
        return
    if await _ping_once(watch, pong_timeout_s, close_s):
        watch.alive = True
        watch.watched_until = time.monotonic()
        watch.detail = (f"alive after {conn.age():.1f} s idle (pong in "
                        f"{watch.rtts[-1] * 1000:.0f} ms at the final check)")


async def _watch_pinging(watch: _Watch, check_at: float, every_s: float,
                         pong_timeout_s: float, close_s: float) -> None:
    conn = watch.conn
    next_ping = conn.opened_at + every_s
    limit = int((check_at - conn.opened_at) / every_s) + 2  # bounded in count as in time
    for _ in range(limit):
        if next_ping > check_at:
            break
        await conn.wait_lost(next_ping - time.monotonic())
        if watch.take_end():
            return
        next_ping = time.monotonic() + every_s
        if not await _ping_once(watch, pong_timeout_s, close_s):
            return
    # Held as long as the idle one, so both face the same window.
    await conn.wait_lost(check_at - time.monotonic())
    if watch.take_end():
        return
    watch.alive = True
    watch.watched_until = time.monotonic()
    watch.detail = f"alive after {conn.age():.1f} s, {watch.pongs} of {watch.pings_sent} pings answered"


async def heartbeat_target(target: Target, *, probe_seconds: float = DEFAULT_PROBE_SECONDS,
                           ping_every_s: float | None = None, pong_timeout_s: float | None = None,
                           open_timeout_s: float = DEFAULT_OPEN_TIMEOUT_S) -> HeartbeatResult:
    """Run the heartbeat probe on a prepared target (see :func:`probe_heartbeat`)."""
    if probe_seconds < MIN_PROBE_SECONDS:
        raise ParameterError("probe_seconds", f"must be at least {MIN_PROBE_SECONDS:g} s for the "
                                              "heartbeat probe")
    every = ping_every_s or default_ping_every(probe_seconds)
    pong_timeout = pong_timeout_s or default_pong_timeout(probe_seconds)
    close_s = min(pong_timeout, 2.0)
    started = time.monotonic()
    window_end = started + probe_seconds
    # The final check must fit in the window: a ping, its pong timeout, then the close frame test.
    check_at = max(started + 1.0, window_end - pong_timeout - close_s)

    def result(ok: bool, error: str | None = None, kind: FailureKind | None = None,
               watches: Sequence[_Watch] = ()) -> HeartbeatResult:
        fates = {w.role: w.fate() for w in watches}
        pinger = next((w for w in watches if w.role == PINGING), None)
        return HeartbeatResult(
            url=target.display_url, ok=ok, error=error, error_kind=kind,
            elapsed_s=time.monotonic() - started, probe_seconds=probe_seconds,
            ping_every_s=every, pong_timeout_s=pong_timeout,
            idle=fates.get(IDLE), pinging=fates.get(PINGING),
            rtt_s=tuple(pinger.rtts) if pinger else ())

    context = target.ssl_context()
    opening = [open_connection(target, ssl_context=context, close_timeout_s=close_s,
                               open_timeout_s=min(open_timeout_s, probe_seconds))
               for _ in (IDLE, PINGING)]
    opened = await asyncio.gather(*opening, return_exceptions=True)
    conns = [c for c in opened if isinstance(c, ObservedConnection)]
    try:
        failure = next((c for c in opened if not isinstance(c, ObservedConnection)), None)
        if failure is not None:
            if not isinstance(failure, Exception):
                raise failure  # CancelledError, KeyboardInterrupt: not ours to swallow
            where = f"{target.host}:{target.port}"
            kind, reason = describe_failure(failure, where=where, phase="WebSocket opening handshake",
                                            timeout_s=open_timeout_s)
            return result(False, f"could not open the probe connections: {reason}", kind)
        idle, pinging = (_Watch(opened[0], IDLE), _Watch(opened[1], PINGING))
        await asyncio.gather(
            _watch_idle(idle, check_at, pong_timeout, close_s),
            _watch_pinging(pinging, check_at, every, pong_timeout, close_s),
        )
        await asyncio.gather(*(close_quietly(w.conn, close_s) for w in (idle, pinging) if w.alive))
        return result(True, watches=(idle, pinging))
    finally:
        for conn in conns:
            if not conn.lost and not conn.closing_by_us:
                conn.abort()


async def probe_heartbeat(url: str, *, probe_seconds: float = DEFAULT_PROBE_SECONDS,
                          ping_every_s: float | None = None, pong_timeout_s: float | None = None,
                          header_env: Sequence[str] = (), origin: str | None = None,
                          insecure_tls: bool = False,
                          open_timeout_s: float = DEFAULT_OPEN_TIMEOUT_S) -> HeartbeatResult:
    """Hold one idle and one pinging connection to ``url`` for ``probe_seconds`` (>= 3).

    Defaults: a ping every ``probe_seconds / 6`` (0.5-5 s), a pong missing after
    ``probe_seconds / 10`` (1-5 s). Returns within about ``probe_seconds`` plus the opening
    handshake; ``ok`` is False only when the two connections could not be opened (with the
    reason). Raises ParameterError for a malformed URL, header variable or window.
    """
    target = prepare_target(url, header_env=header_env, origin=origin, insecure_tls=insecure_tls)
    return await heartbeat_target(target, probe_seconds=probe_seconds, ping_every_s=ping_every_s,
                                  pong_timeout_s=pong_timeout_s, open_timeout_s=open_timeout_s)
