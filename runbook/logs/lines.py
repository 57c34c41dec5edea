"""One-line-one-record formats: a format reads each line on its own and says what it holds.

Most logs a responder has at hand (proxy access and error logs, library log lines, ``ss``
output) are read line by line. A format built here gives ``read_line(line)`` and ``detect``;
``LineFormat`` turns that into the registry's ``parse(lines, source)``:

- ``read_line`` returns a ``Record`` (a row of the close-log frame), a ``State`` (a server-state
  value), a list of them, or None for a line of another kind (counted as ignored); it raises
  ``Malformed`` for a line that is of the format but cannot be read (counted, with an example).
- Timestamps are ISO 8601 texts; texts without a zone are in the ``timezone`` given to
  ``parse`` (the ``log_timezone`` parameter; UTC by default).
- Nothing is lost: every non-blank line is a record line, a malformed line or an ignored line
  (``ParsedLog.record_lines + malformed_count + ignored_lines`` = the non-blank lines).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from runbook.errors import ParameterError
from runbook.logs.common import NAT_NS, MalformedCollector, build_frame, lines_with, to_lines
from runbook.observations import STATE_COLUMNS, ParsedLog, empty_state_frame


@dataclass(slots=True)
class Record:
    """One row of the close-log frame as a format reads it from a line."""

    event: str  # "connect" | "disconnect" | "error"
    ts: str | None = None  # ISO 8601; without a zone it is in the log's timezone
    connection_id: str | None = None
    code: int | None = None
    reason: str | None = None
    duration_s: float | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    closed_by: str | None = None  # "server" | "client" | "proxy"


@dataclass(slots=True)
class State:
    """One server-state value (``STATE_COLUMNS``): sockets in a TCP state, RSS, fds..."""

    metric: str
    value: float
    ts: str | None = None
    port: int | None = None


# What container tooling puts before each line of a log it collects: containerd / CRI
# ("2026-11-30T16:00:00.123456789Z stdout F "), docker compose ("nginx-1  | "), kubectl --prefix
# ("[pod/web-5d9c/nginx] "). Optional in the line patterns of the proxy formats.
CONTAINER_PREFIX = r"(?:[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(?:Z|[+-][0-9:]+) (?:stdout|stderr) [FP] |[A-Za-z0-9_.-]+ +\| |\[pod/[^\]]+\] )?"


class Malformed(ValueError):
    """The line belongs to the format but cannot be read; the message says why."""


LineReader = Callable[[str], "Record | State | list[Record | State] | None"]


# --- time zones ---------------------------------------------------------------------------------

_OFFSET = re.compile(r"^(?:UTC|GMT)?([+-])([0-9]{1,2}):?([0-9]{2})?$")
_ZONED = re.compile(r"(?:Z|[+-][0-9]{2}:?[0-9]{2})$")


def parse_timezone(name: str | None) -> dt.tzinfo:
    """The zone of naive log timestamps: "UTC", an offset ("+02:00", "-0500", "UTC+1") or an
    IANA name ("Europe/Berlin"). Raises ``ParameterError`` naming ``log_timezone``."""
    if name is None or str(name).strip() in ("", "UTC", "Z", "GMT", "utc"):
        return dt.timezone.utc
    text = str(name).strip()
    match = _OFFSET.match(text)
    if match:
        sign, hours, minutes = match.groups()
        offset = dt.timedelta(hours=int(hours), minutes=int(minutes or 0))
        if offset > dt.timedelta(hours=14):
            raise ParameterError("log_timezone", f"offset {text!r} is beyond +-14:00")
        return dt.timezone(-offset if sign == "-" else offset)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ParameterError(
            "log_timezone", f"unknown time zone {text!r}: use UTC, an offset like +02:00, or an IANA name like Europe/Berlin"
        ) from None


def timestamps_to_ns(texts: Sequence[str | None], timezone: dt.tzinfo) -> tuple[np.ndarray, np.ndarray]:
    """ISO 8601 texts to UTC nanoseconds (``NAT_NS`` for none) and a mask of texts that are not
    real dates. Texts with a zone keep it; naive ones are read in ``timezone`` (a local time that
    does not exist or is ambiguous at a DST change is shifted forward / taken as standard time)."""
    count = len(texts)
    ns = np.full(count, NAT_NS, np.int64)
    bad = np.zeros(count, bool)
    if not count:
        return ns, bad
    series = pd.Series(texts, dtype=object)
    given = series.notna().to_numpy()
    zoned = np.array([isinstance(t, str) and bool(_ZONED.search(t)) for t in texts], bool)
    for mask, localize in ((given & zoned, False), (given & ~zoned, True)):
        if not mask.any():
            continue
        subset = series[mask]
        if localize:
            parsed = pd.to_datetime(subset, format="ISO8601", errors="coerce")
            parsed = parsed.dt.tz_localize(timezone, ambiguous=False, nonexistent="shift_forward").dt.tz_convert("UTC")
        else:
            parsed = pd.to_datetime(subset, format="ISO8601", utc=True, errors="coerce")
        values = pd.DatetimeIndex(parsed).as_unit("ns").asi8
        ns[mask] = values
    bad = given & (ns == NAT_NS)
    return ns, bad


def epoch_to_iso(seconds: float) -> str:
    """Epoch seconds (UTC) as ISO 8601 text with its zone; raises Malformed when out of range."""
    try:
        return dt.datetime.fromtimestamp(float(seconds), dt.timezone.utc).isoformat()
    except (OverflowError, OSError, ValueError):
        raise Malformed(f"epoch time {seconds!r} is out of range") from None


# --- the format -----------------------------------------------------------------------------------


class LineFormat:
    """A registry format made of a line reader and a detector (see the module docstring)."""

    def __init__(
        self,
        name: str,
        description: str,
        detect: Callable[[list[str]], float],
        read_line: LineReader,
        *,
        structural: bool = False,
        proxy: bool = False,
    ) -> None:
        self.NAME = name
        self.description = description
        # True when ``detect`` scores the line grammar itself: the registry then claims the
        # format without asking for WebSocket records in the sample (see registry.py).
        self.STRUCTURAL = structural
        # True for a proxy's or balancer's log: it never carries the server's own gauge of open
        # connections, so the registry does not search its lines for one.
        self.PROXY = proxy
        self._detect = detect
        self.read_line = read_line

    def __repr__(self) -> str:
        return f"LineFormat({self.NAME!r})"

    def detect(self, sample: list[str]) -> float:
        return self._detect(sample)

    def parse(self, lines: Iterable[str], source: str, *, timezone: str | dt.tzinfo | None = None) -> ParsedLog:
        return parse_lines(self.NAME, self.read_line, lines, source, timezone=timezone)


def share_matching(sample: list[str], pattern: re.Pattern[str]) -> float:
    """Share of the sample's lines that ``pattern`` finds something in (0 for an empty sample)."""
    if not sample:
        return 0.0
    return sum(1 for line in sample if pattern.search(line)) / len(sample)


def parse_lines(
    name: str,
    read_line: LineReader,
    lines: Iterable[str],
    source: str,
    *,
    timezone: str | dt.tzinfo | None = None,
) -> ParsedLog:
    """Run ``read_line`` over every non-blank line; build the log frame and the state frame."""
    zone = timezone if isinstance(timezone, dt.tzinfo) else parse_timezone(timezone)
    lines = to_lines(lines)
    malformed = MalformedCollector()
    records: list[tuple[int, Record]] = []
    states: list[tuple[int, State]] = []
    ignored = record_lines = 0
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            found = read_line(line)
        except Malformed as exc:
            malformed.add(line_no, line, str(exc))
            continue
        if found is None or found == []:
            ignored += 1
            continue
        record_lines += 1
        for item in found if isinstance(found, list) else [found]:
            (records if isinstance(item, Record) else states).append((line_no, item))
    frame, bad_lines = _log_frame(records, source, zone)
    state, bad_state_lines = _state_frame(states, source, zone)
    for line_no in sorted(bad_lines | bad_state_lines):
        malformed.add(line_no, lines[line_no - 1], "timestamp is not a real date")
    record_lines -= len(bad_lines | bad_state_lines)
    return ParsedLog(
        source=source,
        format=name,
        frame=frame,
        lines_total=len(lines),
        ignored_lines=ignored,
        malformed_count=malformed.count,
        malformed_examples=malformed.examples,
        state=state if len(state) else None,
        record_lines=record_lines,
    )


def _log_frame(records: list[tuple[int, Record]], source: str, zone: dt.tzinfo) -> tuple[pd.DataFrame, set[int]]:
    ns, bad = timestamps_to_ns([r.ts for _, r in records], zone)
    bad_lines = {records[i][0] for i in np.flatnonzero(bad)}
    keep = [i for i, (line_no, _) in enumerate(records) if line_no not in bad_lines]
    kept = [records[i][1] for i in keep]
    codes = [r.code for r in kept]
    frame = build_frame(
        source=source,
        line_no=np.array([records[i][0] for i in keep], np.int64),
        ts_ns=ns[keep] if keep else np.empty(0, np.int64),
        event=[r.event for r in kept],
        connection_id=[r.connection_id for r in kept],
        code=np.array([c if c is not None else 0 for c in codes], np.int64),
        code_missing=np.array([c is None for c in codes], bool),
        reason=[r.reason for r in kept],
        duration_s=np.array([np.nan if r.duration_s is None else r.duration_s for r in kept], np.float64),
        client_ip=[r.client_ip for r in kept],
        user_agent=[r.user_agent for r in kept],
        closed_by=[r.closed_by for r in kept],
    )
    return frame, bad_lines


def _state_frame(states: list[tuple[int, State]], source: str, zone: dt.tzinfo) -> tuple[pd.DataFrame, set[int]]:
    if not states:
        return empty_state_frame(), set()
    ns, bad = timestamps_to_ns([s.ts for _, s in states], zone)
    bad_lines = {states[i][0] for i in np.flatnonzero(bad)}
    keep = [i for i, (line_no, _) in enumerate(states) if line_no not in bad_lines]
    return state_frame(
        ts_ns=ns[keep],
        metric=[states[i][1].metric for i in keep],
        value=[states[i][1].value for i in keep],
        port=[states[i][1].port for i in keep],
        source=source,
    ), bad_lines


def state_frame(*, ts_ns: np.ndarray, metric: Sequence[str], value: Sequence[float], port: Sequence[int | None], source: str) -> pd.DataFrame:
    """The server-state frame (``STATE_COLUMNS``, exact dtypes) from its columns."""
    frame = pd.DataFrame(
        {
            "ts": pd.Series(np.asarray(ts_ns, np.int64).view("datetime64[ns]")).dt.tz_localize("UTC"),
            "metric": pd.array(list(metric), dtype="string"),
            "value": np.asarray(value, np.float64),
            "port": pd.array(list(port), dtype="Int64"),
            "source": pd.array([source] * len(metric), dtype="string"),
        }
    )
    return frame.astype(STATE_COLUMNS)


# --- timestamps found in free text ----------------------------------------------------------------

_MONTH_NUMBERS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
# The stamps line-oriented logs start with, most specific first. Each gives ISO 8601 text.
_STAMPS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    # ISO 8601 / RFC 3339 and python logging ("2026-11-30 16:40:11,178"), optional zone
    (
        re.compile(
            r"(?<![0-9])([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([0-9]{2}:[0-9]{2}:[0-9]{2})(?:[.,]([0-9]{1,9}))?"
            r"(?: ?(Z|[+-][0-9]{2}:?[0-9]{2}|UTC|GMT)(?![A-Za-z]))?"
        ),
        lambda m: f"{m[1]}-{m[2]}-{m[3]}T{m[4]}" + (f".{m[5]}" if m[5] else "") + _zone(m[6]),
    ),
    # nginx error log and Go's log package: "2026/11/30 16:40:11" (optionally .micro)
    (
        re.compile(r"(?<![0-9])([0-9]{4})/([0-9]{2})/([0-9]{2}) ([0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{1,9}))?"),
        lambda m: f"{m[1]}-{m[2]}-{m[3]}T{m[4]}" + (f".{m[5]}" if m[5] else ""),
    ),
    # nginx/Apache access log: "30/Nov/2026:16:40:11 +0000"
    (
        re.compile(r"([0-9]{2})/([A-Z][a-z]{2})/([0-9]{4}):([0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{1,6}))?(?: ([+-][0-9]{4}))?"),
        lambda m: f"{m[3]}-{_month(m[2]):02d}-{m[1]}T{m[4]}" + (f".{m[5]}" if m[5] else "") + _zone(m[6]),
    ),
    # tornado's LogFormatter: "[I 261130 16:40:19 web:2591]"
    (
        re.compile(r"^\[[DIWEC] ([0-9]{2})([0-9]{2})([0-9]{2}) ([0-9]{2}:[0-9]{2}:[0-9]{2})"),
        lambda m: f"20{m[1]}-{m[2]}-{m[3]}T{m[4]}",
    ),
    # epoch seconds or milliseconds at the start of a line (10 or 13 digits)
    (
        re.compile(r"^\[?([0-9]{10}(?:\.[0-9]{1,9})?|[0-9]{13})(?![0-9])"),
        lambda m: epoch_to_iso(float(m[1]) / (1000 if len(m[1]) == 13 else 1)),
    ),
]
# A BSD syslog stamp has no year: "Nov 30 16:40:11". Recognized (so it is not read as something
# else) but not turned into a time: guessing the year would invent data.
SYSLOG_STAMP = re.compile(r"^(?:<[0-9]+>)?([A-Z][a-z]{2}) +([0-9]{1,2}) ([0-9]{2}:[0-9]{2}:[0-9]{2}) ")


def _zone(zone: str | None) -> str:
    if not zone:
        return ""
    if zone in ("Z", "UTC", "GMT"):
        return "Z"
    digits = zone[1:].replace(":", "")
    return f"{zone[0]}{digits[:2]}:{digits[2:4]}"


def _month(name: str) -> int:
    number = _MONTH_NUMBERS.get(name.lower())
    if number is None:
        raise Malformed(f"unknown month {name!r}")
    return number


def find_timestamp(line: str, search_chars: int = 80) -> str | None:
    """The first timestamp among the first ``search_chars`` characters of a log line, as ISO 8601
    text (naive when the log gives no zone), or None. Knows ISO 8601 / RFC 3339, python logging,
    Go and nginx error-log dates, nginx/Apache access dates, tornado's ``yymmdd`` and leading
    epoch seconds or milliseconds. Raises Malformed for a stamp that is not a real date."""
    head = line[:search_chars]
    for pattern, convert in _STAMPS:
        match = pattern.search(head)
        if match:
            return convert(match)
    return None


# --- a server's own open-connection gauge ---------------------------------------------------------

_GAUGE = re.compile(
    r"[\"']?\b(activeConnections|active_connections|openConnections|open_connections|connections|clientsCount|wsConnections)\b[\"']?"
    r"\s*[:=]\s*([0-9]+)(?![0-9.])"
)


_GAUGE_WORDS = (b"onnections", b"clientsCount")


def gauge_states(lines: Iterable[str], source: str, timezone: str | dt.tzinfo | None = None) -> pd.DataFrame | None:
    """``open_connections`` state rows from log lines that carry the server's own gauge
    (``"activeConnections": 42``, ``open_connections=42``, ``connections: 42``), timed by the
    line's own timestamp (or the last one before it); None when no line carries one."""
    # Only lines with one of the gauge's words are read; a log still held as bytes is searched
    # as bytes, so the lines without them are never made into strings.
    times: list[str | None] = []
    values: list[float] = []
    last_ts = None
    for line in lines_with(lines, _GAUGE_WORDS):
        try:
            stamp = find_timestamp(line)
        except Malformed:
            stamp = None
        last_ts = stamp or last_ts
        match = _GAUGE.search(line)
        if match:
            times.append(stamp or last_ts)
            values.append(float(match.group(2)))
    if not values:
        return None
    zone = timezone if isinstance(timezone, dt.tzinfo) else parse_timezone(timezone)
    ns, _ = timestamps_to_ns(times, zone)
    return state_frame(ts_ns=ns, metric=["open_connections"] * len(values), value=values, port=[None] * len(values), source=source)
