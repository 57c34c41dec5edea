"""Typed results shared between the I/O layer and the pure core.

Parsers, probes and the config lint produce these; ``diagnosis`` consumes them. Keeping them in a
module of their own lets the core know the types without importing the layers that make them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    "source": "string",  # the file (or stream name) the row came from
    "line_no": "Int64",  # 1-based line where the record starts
}

EVENTS = ("connect", "disconnect", "error")


def empty_log_frame() -> pd.DataFrame:
    """An empty DataFrame with the normalized close-log columns and dtypes."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in LOG_COLUMNS.items()})


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

    @property
    def ok(self) -> bool:
        return self.error is None and self.format is not None

    @property
    def records(self) -> int:
        return len(self.frame)


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
    connections: pd.DataFrame  # one row per connection: start, end, duration_s, code, client...
    per_minute: pd.DataFrame  # minute, open, connects, disconnects, rate, counted, flagged
    codes: pd.DataFrame  # code, label, count, share (of disconnects)
    duration_peaks: list[DurationPeak]
    reconnect_gaps: pd.DataFrame  # client, attempt, gap_s, lifetime_s
    reconnect_clients: pd.DataFrame  # client, reconnects, median_gap_s, growth, pattern
    mobile: MobileStats | None
    connects: int = 0
    disconnects: int = 0
    errors: int = 0
    handshake_failures: int = 0  # error/close reasons that name a failed upgrade
    keepalive_timeouts: int = 0  # closes for unanswered pings (e.g. 1011 keepalive ping timeout)
    error_examples: list[str] = field(default_factory=list)

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


@dataclass
class Observations:
    """Everything the runbook observed, as the diagnosis engine sees it.

    Each field is None when its input was not given; later inputs (live probes, proxy config,
    server sockets) add fields here.
    """

    logs: LogMetrics | None = None
    log_formats: list[str] = field(default_factory=list)  # formats the close logs were in
