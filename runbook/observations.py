"""Typed results shared between the I/O layer and the pure core.

Parsers, probes and the config lint produce these; ``diagnosis`` consumes them. Keeping them in a
module of their own lets the core know the types without importing the layers that make them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pandas as pd

# The normalized close-log schema every log format is parsed into (one row per event).
LOG_COLUMNS: dict[str, str] = {
    "ts": "datetime64[ns, UTC]",  # when the event was logged, UTC
    "connection_id": "string",  # as the server logged it; <NA> when the format has none
    "event": "string",  # "connect", "disconnect" or "error"
    "code": "Int64",  # close code (RFC 6455 7.4); <NA> when not logged
    "reason": "string",  # close reason or error message, as logged (attacker-controlled)
    "duration_s": "float64",  # connection lifetime in seconds at disconnect; NaN if unknown
    "client_ip": "string",
    "user_agent": "string",  # attacker-controlled
    "is_mobile": "boolean",  # from the user agent; <NA> when there is none
    "client_id": "string",  # who the user is across connections (clientId/userId/...), when logged
    "closed_by": "string",  # who closed first when the log says: "server", "client", "proxy"; <NA>
    "source": "string",  # the file (or stream name) the row came from
    "line_no": "Int64",  # 1-based line where the record starts
}

EVENTS = ("connect", "disconnect", "error")
CLOSERS = ("server", "client", "proxy")  # values of the closed_by column

# Server state over time, as offline files give it (``ss -tan`` / ``netstat -an`` snapshots, a
# CSV of RSS/fds, a server's own open-connection gauge): one row per (time, metric) value.
# Metrics: "tcp_<STATE>" (sockets in that TCP state, e.g. tcp_CLOSE_WAIT), "rss_bytes", "fds",
# "threads", "open_connections" (the server's own gauge of open WebSocket connections).
STATE_COLUMNS: dict[str, str] = {
    "ts": "datetime64[ns, UTC]",  # when the snapshot was taken; NaT when the file does not say
    "metric": "string",
    "value": "float64",
    "port": "Int64",  # the local port the socket counts are for; <NA> for process metrics
    "source": "string",
}


def empty_state_frame() -> pd.DataFrame:
    """An empty DataFrame with the server-state columns and dtypes (a copy of its own)."""
    return _empty_frame("state").copy()


def empty_log_frame() -> pd.DataFrame:
    """An empty DataFrame with the normalized close-log columns and dtypes (a copy of its own)."""
    return _empty_frame("log").copy()


@cache
def _empty_frame(kind: str) -> pd.DataFrame:
    # Built once: typing 13 empty columns takes 1.2 ms, copying them 0.03 ms, and every file
    # of a fleet asks for a few of them.
    columns = LOG_COLUMNS if kind == "log" else STATE_COLUMNS
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})


@dataclass(frozen=True)
class MalformedLine:
    """One line that looked like a record of the format but could not be parsed."""

    line_no: int
    text: str  # an excerpt, at most a few hundred characters
    problem: str

    def __str__(self) -> str:
        return f"line {self.line_no}: {self.problem}: {self.text!r}"


@dataclass
class ParsedLog:
    """The outcome of parsing one log source. Never raised: a log nobody can read is data too."""

    source: str
    format: str | None  # registry name of the detected format; None when nothing matched
    frame: pd.DataFrame  # LOG_COLUMNS
    lines_total: int = 0
    ignored_lines: int = 0  # lines of other kinds (unrelated app output): counted, not records
    malformed_count: int = 0
    malformed_examples: list[MalformedLine] = field(default_factory=list)
    error: str | None = None  # why the source could not be read at all (missing file, ...)
    # Server-state snapshots the source held (STATE_COLUMNS), for formats that carry them.
    state: pd.DataFrame | None = None
    # Lines that gave records (or state values); None when the format does not count them
    # (a multi-line record format): then they are the non-blank lines not ignored or malformed.
    record_lines: int | None = None
    # How sure format detection was (0..1; the winning format's score); None when the format
    # was given by the log_format parameter rather than detected.
    confidence: float | None = None
    # What the reader had to do to read it (partial .gz, newest part of a huge file, UTF-16,
    # duplicate lines, a second format inside): shown beside the records, never a failure.
    notes: list[str] = field(default_factory=list)
    # Records read, when ``frame`` holds only the first ones (a file summarized in parts).
    record_count: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.format is not None

    @property
    def records(self) -> int:
        return len(self.frame) if self.record_count is None else self.record_count


@dataclass
class Lifetimes:
    """A multiset of lifetimes (seconds): sorted distinct values and how often each occurred."""

    values: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, durations: pd.Series | np.ndarray) -> Lifetimes:
        values = pd.to_numeric(pd.Series(durations), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        values = values[np.isfinite(values) & (values >= 0)]
        distinct, counts = np.unique(values, return_counts=True)
        return cls(distinct, counts.astype(np.int64))

    @classmethod
    def merge(cls, parts: list[Lifetimes]) -> Lifetimes:
        if len(parts) == 1:
            return parts[0]
        values = np.concatenate([p.values for p in parts]) if parts else np.array([], dtype=float)
        counts = np.concatenate([p.counts for p in parts]) if parts else np.array([], dtype=np.int64)
        distinct, inverse = np.unique(values, return_inverse=True)
        return cls(distinct, np.bincount(inverse, weights=counts, minlength=len(distinct)).astype(np.int64))

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def quantile(self, q: float) -> float:
        """The ``q`` quantile, interpolated linearly as numpy and pandas do by default (nan when empty)."""
        if not len(self.values):
            return float("nan")
        cumulative = np.cumsum(self.counts)
        rank = q * (cumulative[-1] - 1)
        lower = self.values[np.searchsorted(cumulative, np.floor(rank) + 1)]
        upper = self.values[np.searchsorted(cumulative, np.ceil(rank) + 1)]
        return float(lower + (upper - lower) * (rank - np.floor(rank)))


@dataclass(frozen=True)
class DurationPeak:
    """A sharp cluster of connection lifetimes: many connections cut at one fixed age."""

    center_s: float
    low_s: float
    high_s: float
    count: int
    share: float  # of the disconnects whose lifetime is known

    def __str__(self) -> str:
        return f"{self.share:.0%} of lifetimes ({self.count}) at {self.low_s:.1f}-{self.high_s:.1f} s"


@dataclass(frozen=True)
class MobileStats:
    """Disconnects per connection-hour of mobile and desktop clients."""

    mobile_disconnects: int
    mobile_hours: float
    desktop_disconnects: int
    desktop_hours: float

    @property
    def mobile_rate(self) -> float | None:
        return self.mobile_disconnects / self.mobile_hours if self.mobile_hours > 0 else None

    @property
    def desktop_rate(self) -> float | None:
        return self.desktop_disconnects / self.desktop_hours if self.desktop_hours > 0 else None

    @property
    def ratio(self) -> float | None:
        """How many times more often a mobile connection drops than a desktop one."""
        mobile, desktop = self.mobile_rate, self.desktop_rate
        if mobile is None or not desktop:
            return None
        return mobile / desktop


@dataclass
class LogMetrics:
    """What the close logs say, reduced to the figures the checklist and the rules need."""

    window_start: pd.Timestamp | None
    window_end: pd.Timestamp | None
    per_minute: pd.DataFrame  # minute, open, connects, disconnects, rate, counted, flagged
    codes: pd.DataFrame  # code, label, count, share (of disconnects)
    duration_peaks: list[DurationPeak]
    # client, attempt, gap_s, lifetime_s, after_failed_handshake (a failed handshake counts as a
    # session of 0 s that dropped: its client is retrying)
    reconnect_gaps: pd.DataFrame
    # client, reconnects, after_failed_handshake, median_gap_s, median_lifetime_s, growth, per_minute, pattern
    reconnect_clients: pd.DataFrame
    mobile: MobileStats | None
    connects: int = 0
    disconnects: int = 0
    errors: int = 0
    handshake_failures: int = 0  # error/close reasons that name a failed upgrade
    keepalive_timeouts: int = 0  # closes for unanswered pings (e.g. 1011 keepalive ping timeout)
    error_examples: list[str] = field(default_factory=list)
    # Closes by class (normal, abnormal, shed, application, unknown: runbook.logs.metrics).
    close_classes: dict[str, int] = field(default_factory=dict)
    lingering: int = 0  # clients whose old connection stayed open after they came back twice
    # (connections opened per minute per connection open, median lifetime of unexpected closes)
    turnover: tuple[float, float] | None = None
    mass_disconnects: pd.DataFrame = field(default_factory=pd.DataFrame)  # second, dropped, open, ...
    lifetimes: Lifetimes = field(default_factory=lambda: Lifetimes.of(np.array([])))  # of the closed connections
    connection_count: int = 0
    abnormal_closes: int = 0  # closes without a code or with one other than 1000/1001
    abnormal_addresses: int = 0  # distinct client addresses among them
    has_client_identity: bool = False  # some connection carries a client address or id
    affected_clients: pd.DataFrame = field(default_factory=pd.DataFrame)  # client, client_ip, user_agent, abnormal disconnects
    top_reasons: pd.DataFrame = field(default_factory=pd.DataFrame)  # event, code, reason, count

    @property
    def closes(self) -> int:
        return sum(self.close_classes.values())

    @property
    def coded_closes(self) -> int:
        """Closes whose code is known (the base of every close-class share)."""
        return self.closes - self.close_classes.get("unknown", 0)

    def class_share(self, *classes: str) -> float:
        """Share of the coded closes in ``classes``; 0 without any coded close."""
        coded = self.coded_closes
        return sum(self.close_classes.get(c, 0) for c in classes) / coded if coded else 0.0

    @property
    def window_minutes(self) -> float:
        if self.window_start is None or self.window_end is None:
            return 0.0
        return (self.window_end - self.window_start).total_seconds() / 60

    def code_share(self, *codes: int) -> float:
        """Share of disconnects that carried one of ``codes``."""
        if self.codes.empty:
            return 0.0
        return float(self.codes.loc[self.codes["code"].isin(codes), "share"].sum())


@dataclass(frozen=True)
class Event:
    """Something that happened to the service at a known time (a deploy, a proxy reload)."""

    ts: pd.Timestamp  # UTC
    label: str  # as the user gave it (shown escaped)


@dataclass(frozen=True)
class StateTrend:
    """One server-state metric over time (e.g. tcp_CLOSE_WAIT on port 8080, or rss_bytes)."""

    metric: str
    port: int | None
    samples: int
    span_s: float  # from the first to the last snapshot
    first: float
    last: float
    peak: float
    per_minute: float  # least-squares slope

    @property
    def growth(self) -> float:
        return self.last - self.first


@dataclass
class StateMetrics:
    """What offline server-state snapshots say: one trend per (metric, port)."""

    trends: list[StateTrend]
    window_start: pd.Timestamp | None = None
    window_end: pd.Timestamp | None = None

    def trend(self, metric: str) -> StateTrend | None:
        """The trend of ``metric`` with the most growth across ports, or None."""
        found = [t for t in self.trends if t.metric == metric]
        return max(found, key=lambda t: t.growth, default=None)


@dataclass
class Observations:
    """Everything the runbook observed, as the diagnosis engine sees it.

    Each field is None when its input was not given; later inputs (live probes, proxy config,
    server sockets) add fields here.
    """

    logs: LogMetrics | None = None
    log_formats: list[str] = field(default_factory=list)  # formats the close logs were in
    probes: ProbeReport | None = None  # live probes of target_url and/or the server's sockets
    state: StateMetrics | None = None  # offline socket/memory snapshots given with the logs
    # The server's ping interval when the user knows it; params.NO_HEARTBEAT when it sends no pings.
    heartbeat_interval_s: float | None = None
    events: list[Event] = field(default_factory=list)  # deploys, reloads: matched to mass disconnects
    config: ConfigReport | None = None  # the proxy/LB config lint (proxy_config, lb_preset, ...)


# --- live probes ---------------------------------------------------------------------------------
# What runbook.probes measured on the network and on the server host. Probes fill these in and
# never classify; runbook.diagnosis.probe_rules reads them. Every result has ``ok``, ``error``
# (a precise lowercase reason, never a secret) and ``elapsed_s``; a failure is a result too.
# Times inside a result are seconds since that probe (or that connection) started.

from enum import StrEnum  # noqa: E402  (kept with the probe types this section appends)


class FailureKind(StrEnum):
    """Why a probe could not do what it set out to do."""

    DNS = "dns"  # the host name does not resolve
    REFUSED = "refused"  # TCP RST to our SYN: nothing listens there
    UNREACHABLE = "unreachable"  # no route to the network or host
    TIMEOUT = "timeout"  # no answer within the probe's bound
    RESET = "reset"  # the peer (or a middlebox) reset an established connection
    CLOSED = "closed"  # the peer closed the connection before answering
    TLS = "tls"  # TLS handshake or certificate verification failed
    HTTP_STATUS = "http_status"  # an HTTP answer other than 101 Switching Protocols
    PROTOCOL = "protocol"  # a 101 that breaks RFC 6455 4.2.2, or not HTTP at all
    TOO_MANY_FILES = "too_many_files"  # EMFILE/ENFILE in the probing process: a local limit
    OS_ERROR = "os_error"  # any other operating system error


class EndKind(StrEnum):
    """How a WebSocket connection we held came to an end (not by us)."""

    CLOSE_FRAME = "close_frame"  # the peer sent a close frame (RFC 6455 5.5.1): code and reason
    FIN = "fin"  # the TCP connection ended (EOF) with no close frame: 1006 to an application
    RST = "rst"  # the TCP connection was reset
    SILENCE = "silence"  # our ping went unanswered and nothing came back, not even to a close frame
    PONG_TIMEOUT = "pong_timeout"  # pings unanswered, but the peer still answered our close frame
    ERROR = "error"  # any other transport error


@dataclass(frozen=True)
class HandshakeResult:
    """One raw HTTP/1.1 upgrade request (RFC 6455 4.1) and what came back, phase by phase.

    ``ok`` means a valid 101: ``Sec-WebSocket-Accept`` matches the key (RFC 6455 4.2.2 5.4),
    ``Upgrade`` names websocket and ``Connection`` has the upgrade token. Phase times are None
    for phases that were not reached (``tls_s`` is None for ws://). ``request_header_names``
    lists the header names we sent, never their values; ``headers`` are the response headers
    with Set-Cookie values removed. Server-provided text (reason phrase, headers, body excerpt)
    is attacker-controlled: escape it before showing it anywhere.
    """

    url: str  # as probed, with userinfo and secret-looking query values removed
    ok: bool
    error: str | None
    elapsed_s: float
    error_kind: FailureKind | None = None
    address: str | None = None  # ip:port we connected to
    dns_s: float | None = None
    tcp_s: float | None = None
    tls_s: float | None = None
    upgrade_s: float | None = None  # request written to response head read
    tls_version: str | None = None
    status: int | None = None
    reason: str | None = None  # the reason phrase of the status line
    headers: tuple[tuple[str, str], ...] = ()
    body_excerpt: str | None = None  # the start of the body when the answer was not a 101
    accept_ok: bool | None = None
    upgrade_header_ok: bool | None = None
    connection_header_ok: bool | None = None
    request_header_names: tuple[str, ...] = ()

    def header(self, name: str) -> str | None:
        """The first response header called ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def __str__(self) -> str:
        if self.ok:
            return f"{self.url}: 101 in {self.elapsed_s * 1000:.0f} ms"
        return f"{self.url}: {self.error}"


@dataclass(frozen=True)
class ConnectionFate:
    """What happened to one WebSocket connection the heartbeat probe held open."""

    role: str  # "idle" (sends nothing) or "pinging" (pings every ping_every_s)
    alive_at_end: bool
    observed_s: float = 0.0  # how long it was watched: its lifetime, or the window if it lived
    ended_by: EndKind | None = None  # None while alive (or never opened)
    lifetime_s: float | None = None  # age when it ended; for silence, when it was detected
    last_received_s: float | None = None  # age of the last bytes received, None if nothing
    close_code: int | None = None  # of a received close frame
    close_reason: str | None = None  # attacker-controlled
    pings_sent: int = 0
    pongs_received: int = 0
    server_pings: int = 0  # ping frames the server sent us (we answered each, RFC 6455 5.5.2)
    server_ping_times_s: tuple[float, ...] = ()  # ages at which they arrived
    messages_received: int = 0  # data frames (an application-level heartbeat shows up here)
    detail: str = ""

    @property
    def server_ping_interval_s(self) -> float | None:
        """Median gap between the server's pings, None with fewer than two."""
        times = self.server_ping_times_s
        if len(times) < 2:
            return None
        gaps = sorted(b - a for a, b in zip(times, times[1:]))
        return gaps[len(gaps) // 2]


@dataclass(frozen=True)
class HeartbeatResult:
    """Idle survival: one idle connection and one pinging connection held for ``probe_seconds``.

    ``ok`` means both connections opened and were watched for the whole window (their fates are
    the finding, whatever they are). ``rtt_s`` holds every pong round trip of the pinging
    connection, in order.
    """

    url: str
    ok: bool
    error: str | None
    elapsed_s: float
    probe_seconds: float
    ping_every_s: float
    pong_timeout_s: float
    error_kind: FailureKind | None = None
    idle: ConnectionFate | None = None
    pinging: ConnectionFate | None = None
    rtt_s: tuple[float, ...] = ()

    @property
    def server_pings(self) -> int:
        """Server pings seen on the idle connection (the one our own traffic cannot disturb)."""
        return self.idle.server_pings if self.idle else 0

    @property
    def server_ping_interval_s(self) -> float | None:
        for fate in (self.idle, self.pinging):
            if fate is not None and fate.server_ping_interval_s is not None:
                return fate.server_ping_interval_s
        return None

    @property
    def first_server_ping_s(self) -> float | None:
        """Age at which the first server ping arrived on either connection, None without one."""
        times = [f.server_ping_times_s[0] for f in (self.idle, self.pinging) if f is not None and f.server_ping_times_s]
        return min(times, default=None)

    @property
    def server_ping_estimate_s(self) -> float | None:
        """The server's ping interval: the gap between its pings, or with one ping its age.

        A server's first keepalive ping comes one interval after the handshake (python-websockets,
        the ws README pattern), so a single ping still tells the interval.
        """
        return self.server_ping_interval_s or self.first_server_ping_s

    def rtt_percentile(self, q: float) -> float | None:
        """The q-quantile (0..1, nearest rank) of the pong round trips, None without any."""
        return _nearest_rank(sorted(self.rtt_s), q)


def _nearest_rank(ordered: list[float] | tuple[float, ...], q: float) -> float | None:
    if not ordered:
        return None
    rank = int(-(-q * len(ordered) // 1))  # ceil(q * n) without importing math
    return ordered[min(len(ordered) - 1, max(0, rank - 1))]


@dataclass(frozen=True)
class ChurnSample:
    """The churn probe's counters at one moment, ``t_s`` after it started."""

    t_s: float
    open: int
    opened: int
    closed_by_peer: int
    failed: int


@dataclass(frozen=True)
class ChurnResult:
    """``connections`` concurrent connections held (and reopened) for ``duration_s``.

    ``cycling_slots`` of the slots closed and reopened their connection every ~``hold_s``; the
    others held theirs to the end. Only closes we did not ask for count as disconnects
    (``closed_by_peer``); ``close_codes``
    maps their codes, with 1006 for a connection that ended without a close frame (RFC 6455
    7.1.5). ``connection_seconds`` is the time all our connections spent open, so
    ``close_rate_per_open_per_minute`` is the share of open connections dropping per minute,
    the figure of the ">5% per minute" symptom. ``failures`` counts failed handshakes by reason.
    """

    url: str
    ok: bool
    error: str | None
    elapsed_s: float
    duration_s: float
    connections: int
    max_in_flight: int
    hold_s: float | None  # how long cycling slots kept each connection; None: no slot cycled
    error_kind: FailureKind | None = None
    cycling_slots: int = 0  # slots that closed and reopened every ~hold_s; the rest held to the end
    attempts: int = 0
    opened: int = 0
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # reason -> count, most common first
    failure_kinds: dict[str, int] = field(default_factory=dict)  # FailureKind value -> count
    closed_by_peer: int = 0
    closed_by_us: int = 0
    close_codes: dict[int, int] = field(default_factory=dict)
    end_kinds: dict[str, int] = field(default_factory=dict)  # EndKind value -> count
    connection_seconds: float = 0.0
    peak_open: int = 0
    latency_p50_s: float | None = None  # opening handshake (TCP, TLS, upgrade) latencies
    latency_p90_s: float | None = None
    latency_p99_s: float | None = None
    latency_max_s: float | None = None
    timeline: tuple[ChurnSample, ...] = ()

    @property
    def close_rate_per_open_per_minute(self) -> float | None:
        """Peer closes per minute as a share of open connections; None without open time."""
        if self.connection_seconds <= 0:
            return None
        return self.closed_by_peer / (self.connection_seconds / 60)

    @property
    def failed_share(self) -> float:
        return self.failed / self.attempts if self.attempts else 0.0

    @property
    def handshakes_per_s(self) -> float:
        return self.opened / self.elapsed_s if self.elapsed_s > 0 else 0.0


def _slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, in value per minute; 0 for < 2 points."""
    if len(points) < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return 0.0
    return 60 * sum((t - mean_t) * (v - mean_v) for t, v in points) / spread


TCP_STATES = ("ESTABLISHED", "CLOSE_WAIT", "TIME_WAIT", "FIN_WAIT1", "FIN_WAIT2", "LAST_ACK",
              "CLOSING", "SYN_RECV")


@dataclass(frozen=True)
class SocketSample:
    t_s: float
    counts: dict[str, int]  # TCP state -> sockets on the server port (listening socket excluded)


@dataclass(frozen=True)
class SocketStatesResult:
    """TCP states of the server side of ``port`` (local address port == ``port``), over time."""

    port: int
    ok: bool
    error: str | None
    elapsed_s: float
    samples: tuple[SocketSample, ...] = ()
    listening: bool | None = None  # whether anything listened on the port

    def series(self, state: str) -> list[tuple[float, int]]:
        return [(s.t_s, s.counts.get(state, 0)) for s in self.samples]

    def first(self, state: str) -> int:
        return self.samples[0].counts.get(state, 0) if self.samples else 0

    def last(self, state: str) -> int:
        return self.samples[-1].counts.get(state, 0) if self.samples else 0

    def peak(self, state: str) -> int:
        return max((s.counts.get(state, 0) for s in self.samples), default=0)

    def trend_per_minute(self, state: str) -> float:
        """Least-squares growth of the ``state`` count, sockets per minute."""
        return _slope_per_minute([(t, float(v)) for t, v in self.series(state)])


@dataclass(frozen=True)
class ProcessSample:
    t_s: float
    rss_bytes: int | None
    fds: int | None  # None when the process is not ours to inspect
    threads: int | None
    connections: int  # ESTABLISHED sockets on the server port (0 without a port)
    served: int  # connections our probes had opened to it so far


@dataclass(frozen=True)
class ProcessResult:
    """RSS, open fds and threads of the server process, sampled with its connection count.

    The first sample is taken before our probes open anything and the last one after they have
    closed everything and the server had a moment to clean up, so ``retained_*`` is what the
    connections we served left behind.
    """

    pid: int | None
    ok: bool
    error: str | None
    elapsed_s: float
    name: str | None = None
    found_by: str = ""  # "server_pid" or "listening on port N"
    samples: tuple[ProcessSample, ...] = ()

    @property
    def served(self) -> int:
        return self.samples[-1].served if self.samples else 0

    def _retained(self, attr: str) -> int | None:
        values = [getattr(s, attr) for s in self.samples if getattr(s, attr) is not None]
        if len(values) < 2:
            return None
        return values[-1] - values[0]

    @property
    def retained_rss_bytes(self) -> int | None:
        return self._retained("rss_bytes")

    @property
    def retained_fds(self) -> int | None:
        """Descriptors gained beyond the connections open at the end: a live server keeps serving
        other clients while it is sampled, and each of their sockets is a descriptor too."""
        samples = [s for s in self.samples if s.fds is not None]
        if len(samples) < 2:
            return None
        return (samples[-1].fds - samples[-1].connections) - (samples[0].fds - samples[0].connections)

    @property
    def retained_threads(self) -> int | None:
        return self._retained("threads")

    def per_1k_served(self, retained: int | None) -> float | None:
        """``retained`` scaled to 1,000 connections served; None without traffic or data."""
        if retained is None or self.served <= 0:
            return None
        return retained * 1000 / self.served


# The attributes the probe rules read, on Observations and on ProbeReport alike.
PROBE_FIELDS = ("handshake_target", "handshake_direct", "heartbeat", "churn", "sockets", "process")


@dataclass
class ProbeReport:
    """Everything one run of the live probes measured; None for a probe that did not run.

    ``skipped`` says why a probe did not run (no direct_url, the handshake failed, no server
    port). The probe rules read the attributes in PROBE_FIELDS, here or on Observations.
    """

    target_url: str
    direct_url: str | None
    elapsed_s: float
    handshake_target: HandshakeResult | None = None
    handshake_direct: HandshakeResult | None = None
    heartbeat: HeartbeatResult | None = None
    churn: ChurnResult | None = None
    sockets: SocketStatesResult | None = None
    process: ProcessResult | None = None
    skipped: dict[str, str] = field(default_factory=dict)


# --- proxy and load-balancer config lint ---------------------------------------------------------
# What runbook.configs found in the proxy/LB configs in front of the service. The lint fills
# these in; the config evidence rules of runbook.diagnosis read them.


@dataclass(frozen=True)
class ConfigFinding:
    """One problem at one place of a config, ruff-style: a stable check id from the checks table."""

    file: str
    line: int | None  # 1-based; None for a preset or a whole-file finding
    severity: str  # "error" | "warning" | "info" (runbook.configs.checks.Severity)
    check: str  # e.g. "NGX002", see runbook.configs.checks.CHECKS
    message: str
    fix: str | None = None  # a unified diff that corrects that exact place; None when none applies

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.severity} {self.check} {self.message}"


@dataclass(frozen=True)
class PathTimeout:
    """A timeout on the path of the WebSocket traffic (proxy, ingress, load balancer)."""

    component: str  # "nginx", "haproxy", "ingress-nginx", "aws-alb", ...
    setting: str  # "proxy_read_timeout", "timeout tunnel", "idle timeout", ...
    seconds: float
    file: str | None
    line: int | None
    is_default: bool  # not set in the config: the software's default applies
    kind: str  # "idle" (reset by traffic) or "lifetime" (a cap even with traffic)

    def __str__(self) -> str:
        origin = "default" if self.is_default else (f"{self.file}:{self.line}" if self.line else self.file or "given")
        return f"{self.component} {self.setting} {self.seconds:g} s ({self.kind}, {origin})"


@dataclass
class ConfigReport:
    """Everything the config lint found in the given proxy/LB configs. Never raised."""

    files: list[str]
    kind: str | None  # "nginx", "haproxy", "ingress", "lb", or "mixed" for several kinds
    findings: list[ConfigFinding] = field(default_factory=list)
    websocket_locations: list[str] = field(default_factory=list)  # "file:line location /ws (matched by ...)"
    # True: every WebSocket location forwards the upgrade correctly; False: at least one does not;
    # None: cannot tell (no WebSocket location found, or the config does not say).
    upgrade_forwarded: bool | None = None
    path_timeouts: list[PathTimeout] = field(default_factory=list)  # timeouts that apply to WS traffic
    heartbeat_s: float | None = None  # the heartbeat the checks compared against
    error: str | None = None  # why the config could not be used at all

    @property
    def ok(self) -> bool:
        return self.error is None

    def count(self, severity: str) -> int:
        return sum(1 for finding in self.findings if finding.severity == severity)
