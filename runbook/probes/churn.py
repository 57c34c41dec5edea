"""The churn probe: ``connections`` concurrent connections held (and reopened) for a bounded time.

Each of ``connections`` slots opens a connection and holds it. A *held* slot keeps its connection
to the end of the window; a *cycling* slot keeps it for ``hold_s`` (jittered by ±50% so the slots
do not move in lockstep), closes it with 1000 and opens the next one. ``cycling_slots`` says how
many cycle (default: all of them when ``hold_s`` is given, none otherwise): held connections show
what the path does to long sessions, cycling ones give many handshakes to time and make the
server serve (and clean up after) many connections. A connection the peer (or the path) ends first is a disconnect: its close
code, or 1006 when no close frame came (RFC 6455 7.1.5), and how it ended (close frame, FIN,
RST) are counted, and the slot reopens after a short pause, as a client would.

What comes out: opens, failed handshakes by reason, handshake latency percentiles, peer closes
per minute as a share of open connections (the ">5% per minute" symptom), close codes, and a
timeline of the counters once a second.

Bounds: at most ``max_in_flight`` opening handshakes at a time (so the probe itself does not
overflow the server's accept backlog and time out), at most ``max_attempts`` handshakes, and
``duration_s`` plus one open timeout and one close timeout in total. A failed handshake is
retried with an exponential backoff; a local file-descriptor limit (EMFILE) stops all new opens
and is reported, not raised.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from runbook.errors import ParameterError
from runbook.observations import ChurnResult, ChurnSample, FailureKind
from runbook.probes.connection import ObservedConnection, close_quietly, end_of, open_connection
from runbook.probes.failures import describe_failure
from runbook.probes.target import Target, prepare_target

DEFAULT_CONNECTIONS = 20
DEFAULT_DURATION_S = 30.0
DEFAULT_MAX_IN_FLIGHT = 50
DEFAULT_OPEN_TIMEOUT_S = 10.0
DEFAULT_MAX_ATTEMPTS = 200_000
CLOSE_TIMEOUT_S = 2.0
RETRY_BASE_S, RETRY_MAX_S = 0.2, 2.0  # backoff after a failed handshake
REOPEN_DELAY_S = 0.1  # pause before reopening after the peer closed, as a polite client would
TICK_S = 0.25  # progress callback period
SAMPLE_EVERY_TICKS = 4  # a timeline sample every second
MAX_FAILURE_REASONS = 10


@dataclass(frozen=True)
class ChurnProgress:
    """The churn probe's counters while it runs, handed to the ``progress`` callback."""

    elapsed_s: float
    duration_s: float
    open: int
    opened: int
    closed_by_peer: int
    failed: int


class _Tally:
    def __init__(self) -> None:
        self.attempts = 0
        self.opened = 0
        self.open = 0
        self.peak_open = 0
        self.failed = 0
        self.failures: Counter[str] = Counter()
        self.failure_kinds: Counter[str] = Counter()
        self.closed_by_peer = 0
        self.closed_by_us = 0
        self.close_codes: Counter[int] = Counter()
        self.end_kinds: Counter[str] = Counter()
        self.connection_seconds = 0.0
        self.latencies: list[float] = []
        self.stop_reason: tuple[FailureKind, str] | None = None  # a local limit: no more opens


def _percentile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank q-quantile of an already sorted sequence."""
    if not ordered:
        return None
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 1))))
    return ordered[rank - 1]


async def churn_target(target: Target, *, connections: int = DEFAULT_CONNECTIONS,
                       duration_s: float = DEFAULT_DURATION_S, hold_s: float | None = None,
                       cycling_slots: int | None = None, max_in_flight: int | None = None,
                       open_timeout_s: float = DEFAULT_OPEN_TIMEOUT_S,
                       keepalive_s: float | None = None,
                       max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                       progress: Callable[[ChurnProgress], None] | None = None,
                       on_open: Callable[[], None] | None = None) -> ChurnResult:
    """Run the churn probe on a prepared target (see :func:`probe_churn`)."""
    if not 1 <= connections <= 10_000:
        raise ParameterError("connections", "must be between 1 and 10000")
    if not duration_s > 0:
        raise ParameterError("probe_seconds", "must be more than 0 seconds")
    if hold_s is not None and hold_s < 0:
        raise ParameterError("hold_s", "must be 0 or more seconds, or None to hold to the end")
    cycling = 0 if hold_s is None else connections if cycling_slots is None else max(0, min(connections, cycling_slots))
    in_flight = max(1, min(connections, max_in_flight or DEFAULT_MAX_IN_FLIGHT))
    tally = _Tally()
    started = time.monotonic()
    deadline = started + duration_s
    gate = asyncio.Semaphore(in_flight)
    context = target.ssl_context()  # one context for all: building one costs milliseconds
    where = f"{target.host}:{target.port}"
    timeline: list[ChurnSample] = []
    rng = random.Random()

    def sample() -> ChurnSample:
        return ChurnSample(t_s=time.monotonic() - started, open=tally.open, opened=tally.opened,
                           closed_by_peer=tally.closed_by_peer, failed=tally.failed)

    def report_progress() -> None:
        if progress is not None:
            progress(ChurnProgress(elapsed_s=min(duration_s, time.monotonic() - started),
                                   duration_s=duration_s, open=tally.open, opened=tally.opened,
                                   closed_by_peer=tally.closed_by_peer, failed=tally.failed))

    async def slot(hold: float | None) -> None:
        backoff = RETRY_BASE_S
        while tally.stop_reason is None and tally.attempts < max_attempts:
            if time.monotonic() >= deadline:
                return
            conn: ObservedConnection | None = None
            async with gate:
                if time.monotonic() >= deadline or tally.stop_reason is not None:
                    return
                tally.attempts += 1
                begun = time.monotonic()
                try:
                    conn = await open_connection(target, ssl_context=context,
                                                 open_timeout_s=open_timeout_s,
                                                 close_timeout_s=CLOSE_TIMEOUT_S,
                                                 ping_interval_s=keepalive_s,
                                                 ping_timeout_s=keepalive_s)
                except Exception as exc:  # noqa: BLE001 - every network fault is data here
                    kind, reason = describe_failure(exc, where=where, phase="WebSocket opening handshake",
                                                    timeout_s=open_timeout_s)
                    tally.failed += 1
                    tally.failures[reason] += 1
                    tally.failure_kinds[kind.value] += 1
                    if kind is FailureKind.TOO_MANY_FILES:
                        tally.stop_reason = (kind, reason)
                else:
                    tally.latencies.append(time.monotonic() - begun)
            if conn is None:
                await asyncio.sleep(min(backoff * rng.uniform(0.5, 1.5), max(0.0, deadline - time.monotonic())))
                backoff = min(backoff * 2, RETRY_MAX_S)
                continue
            backoff = RETRY_BASE_S
            await _hold(conn, hold)

    async def _hold(conn: ObservedConnection, hold: float | None) -> None:
        tally.opened += 1
        tally.open += 1
        tally.peak_open = max(tally.peak_open, tally.open)
        if on_open is not None:
            on_open()
        try:
            now = time.monotonic()
            end = deadline if hold is None else min(deadline, now + hold * rng.uniform(0.5, 1.5))
            await conn.wait_lost(end - now)
            kind, code, _reason = end_of(conn)
            ended = conn.ended_at or time.monotonic()
            if kind is None:
                await close_quietly(conn, CLOSE_TIMEOUT_S)
                tally.closed_by_us += 1
            else:
                tally.closed_by_peer += 1
                tally.close_codes[code if code is not None else 1006] += 1
                tally.end_kinds[kind.value] += 1
            tally.connection_seconds += max(0.0, ended - conn.opened_at)
        finally:
            tally.open -= 1
            if not conn.lost and not conn.closing_by_us:
                conn.abort()  # cancelled while holding it
        if kind is not None:
            await asyncio.sleep(min(REOPEN_DELAY_S, max(0.0, deadline - time.monotonic())))

    async def ticker() -> None:
        ticks = int(duration_s / TICK_S) + 2
        for tick in range(ticks):
            if tick % SAMPLE_EVERY_TICKS == 0:
                timeline.append(sample())
            report_progress()
            await asyncio.sleep(TICK_S)

    tick_task = asyncio.create_task(ticker())
    try:
        async with asyncio.TaskGroup() as group:
            for index in range(connections):
                group.create_task(slot(hold_s if index < cycling else None))
    finally:
        tick_task.cancel()
        await asyncio.gather(tick_task, return_exceptions=True)
    timeline.append(sample())
    report_progress()

    ordered = sorted(tally.latencies)
    error: str | None = None
    kind: FailureKind | None = None
    if tally.stop_reason is not None:
        kind, error = tally.stop_reason
        error = f"stopped opening after {tally.opened} connections: {error}"
    elif tally.opened == 0 and tally.failures:
        top_reason, _count = tally.failures.most_common(1)[0]
        kind = FailureKind(tally.failure_kinds.most_common(1)[0][0])
        error = f"no connection could be opened in {tally.attempts} attempts: {top_reason}"
    elif tally.opened == 0:
        error = "no connection was attempted within the window"
    return ChurnResult(
        url=target.display_url,
        ok=error is None,
        error=error,
        error_kind=kind,
        elapsed_s=time.monotonic() - started,
        duration_s=duration_s,
        connections=connections,
        max_in_flight=in_flight,
        hold_s=hold_s if cycling else None,
        cycling_slots=cycling,
        attempts=tally.attempts,
        opened=tally.opened,
        failed=tally.failed,
        failures=dict(tally.failures.most_common(MAX_FAILURE_REASONS)),
        failure_kinds=dict(tally.failure_kinds.most_common()),
        closed_by_peer=tally.closed_by_peer,
        closed_by_us=tally.closed_by_us,
        close_codes=dict(tally.close_codes.most_common()),
        end_kinds=dict(tally.end_kinds.most_common()),
        connection_seconds=tally.connection_seconds,
        peak_open=tally.peak_open,
        latency_p50_s=_percentile(ordered, 0.50),
        latency_p90_s=_percentile(ordered, 0.90),
        latency_p99_s=_percentile(ordered, 0.99),
        latency_max_s=ordered[-1] if ordered else None,
        timeline=tuple(timeline),
    )


async def probe_churn(url: str, *, connections: int = DEFAULT_CONNECTIONS,
                      duration_s: float = DEFAULT_DURATION_S, hold_s: float | None = None,
                      cycling_slots: int | None = None, max_in_flight: int | None = None, open_timeout_s: float = DEFAULT_OPEN_TIMEOUT_S,
                      keepalive_s: float | None = None, header_env: Sequence[str] = (),
                      origin: str | None = None, insecure_tls: bool = False,
                      max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                      progress: Callable[[ChurnProgress], None] | None = None) -> ChurnResult:
    """Hold ``connections`` (1-10,000) concurrent connections to ``url`` for ``duration_s``.

    ``hold_s`` None keeps each connection to the end of the window (reopening it only if the
    peer closes it); a number makes ``cycling_slots`` slots (default: all) close and reopen their
    connection after about that long (0: at once, the handshake-rate benchmark), the others
    still hold to the end. ``max_in_flight`` caps concurrent opening handshakes (default 50).
    ``keepalive_s`` turns the library's ping on, as a client with a heartbeat would (default
    off). ``progress`` is called about four times a second with a ChurnProgress. Returns within
    about ``duration_s + open_timeout_s + 2`` seconds; ``ok`` is False when no connection could
    be opened or a local limit (EMFILE) stopped the probe. Raises ParameterError for bad input.
    """
    target = prepare_target(url, header_env=header_env, origin=origin, insecure_tls=insecure_tls)
    return await churn_target(target, connections=connections, duration_s=duration_s, hold_s=hold_s,
                              cycling_slots=cycling_slots, max_in_flight=max_in_flight, open_timeout_s=open_timeout_s,
                              keepalive_s=keepalive_s, max_attempts=max_attempts, progress=progress)
