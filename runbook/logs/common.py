"""Helpers shared by the close-log formats.

Input lines (``to_lines``; ``to_log_text`` keeps a whole log as bytes until split), per-line log
prefixes (``ContinuationPrefix``, ``last_timestamp_in``), timestamps (``parse_timestamps``),
malformed-line bookkeeping (``MalformedCollector``, ``excerpt``), the mobile user-agent test
(``is_mobile_user_agent``) and the typed frame every format returns (``build_frame``). Pure: no
files, no clock, no printing.
"""

from __future__ import annotations

import bisect
import codecs
import datetime as dt
import gc
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, overload

import numpy as np
import pandas as pd

from runbook.observations import EVENTS, LOG_COLUMNS, MalformedLine, empty_log_frame

try:  # pyarrow builds string columns about twice as fast; plain pandas is the fallback
    import pyarrow as pa
except ImportError:  # pragma: no cover - pyarrow is installed wherever pandas 3 uses it
    pa = None

EXCERPT_CHARS = 200
MALFORMED_EXAMPLES = 5
NAT_NS = np.iinfo(np.int64).min  # numpy's NaT as int64 nanoseconds

# The reference runbook's mobile test: /Mobile|Android|iPhone|iPad/.test(userAgent), case-sensitive.
MOBILE_USER_AGENT = re.compile(r"Mobile|Android|iPhone|iPad")


# --- input lines ------------------------------------------------------------------------------


class LogLines(list[str]):
    """Lines already normalized by ``to_lines``: no terminators, no BOM. Passed on as they are."""


def decode_log_bytes(data: bytes) -> str:
    """Decode raw log bytes: UTF-16 when it carries a UTF-16 BOM, else UTF-8; bad bytes become U+FFFD."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8", errors="replace")


def to_lines(text_or_lines: str | bytes | Iterable[str | bytes]) -> LogLines:
    """Split a log into lines without terminators.

    Accepts the whole text (``str`` or ``bytes``) or an iterable of lines (a file object, a list;
    with or without their ``\\n``). Strips a leading UTF-8 BOM and ``\\r`` before ``\\n``; splits on
    ``\\n`` only (never on U+2028 or other characters ``str.splitlines`` treats as breaks, which
    util.inspect and orjson print raw inside strings). Never raises on content.
    """
    if isinstance(text_or_lines, LogLines):
        return text_or_lines
    if isinstance(text_or_lines, LogText):
        return text_or_lines.lines()
    if isinstance(text_or_lines, (bytes, bytearray, memoryview)):
        return _split_text(decode_log_bytes(bytes(text_or_lines)), drop_final_empty=True)
    if isinstance(text_or_lines, str):
        return _split_text(text_or_lines, drop_final_empty=True)
    pieces: list[str] = []
    for item in text_or_lines:
        if isinstance(item, (bytes, bytearray)):
            item = decode_log_bytes(bytes(item))
        pieces.append(item[:-1] if item.endswith("\n") else item)
    return _split_text("\n".join(pieces), drop_final_empty=False) if pieces else LogLines()


def _split_text(text: str, *, drop_final_empty: bool) -> LogLines:
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if text.endswith("\r"):
            text = text[:-1]
    lines = LogLines(text.split("\n"))
    if drop_final_empty and lines and lines[-1] == "":
        lines.pop()  # the terminator of the last line, not an empty line of its own
    return lines


class LogText:
    """A whole log kept as UTF-8 bytes, normalized as ``to_lines`` would (no BOM, no ``\\r\\n``), not split.

    Splitting a large log into a million Python strings costs more than a parser that reads bytes
    (the JSON-lines Arrow path) spends on all of it, so the split waits until someone asks:
    ``lines()`` (and iterating) gives exactly what ``to_lines`` gives for the same text, ``head``
    the first non-blank lines without splitting the rest, ``len`` the number of lines. ``data``
    may hold invalid UTF-8 (bytes given as they were read); each line decodes with replacement.
    """

    __slots__ = ("data", "_lines")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._lines: LogLines | None = None

    @property
    def end(self) -> int:
        """Where the last line ends in ``data`` (before its terminator): ``data[:end]`` is the
        lines joined by ``\\n``."""
        return len(self.data) - 1 if self.data.endswith(b"\n") else len(self.data)

    def lines(self) -> LogLines:
        if self._lines is None:
            text = str(memoryview(self.data)[: self.end], "utf-8", "replace")
            self._lines = LogLines(text.split("\n")) if self.data else LogLines()
        return self._lines

    def head(self, limit: int) -> list[str]:
        """The first ``limit`` non-blank lines."""
        if self._lines is not None:
            return first_nonblank(self._lines, limit)
        data, end, sample, position = self.data, self.end, [], 0
        while data and position <= end and len(sample) < limit:
            newline = data.find(b"\n", position, end)
            newline = end if newline < 0 else newline
            line = data[position:newline].decode("utf-8", errors="replace")
            if line.strip():
                sample.append(line)
            position = newline + 1
        return sample

    def __len__(self) -> int:
        if self._lines is not None:
            return len(self._lines)
        return self.data.count(b"\n") + (not self.data.endswith(b"\n")) if self.data else 0

    def __iter__(self) -> Iterator[str]:
        return iter(self.lines())


def lines_with(lines: Iterable[str], words: Sequence[bytes]) -> Iterator[str]:
    """The lines holding one of ``words`` (ASCII, no newline), in order. A ``LogText`` not yet
    split is searched as bytes and decodes only those lines (bytes.find per word: a fast search,
    where a regex alternation is not); the lines are what ``lines()`` would give."""
    if not isinstance(lines, LogText) or lines._lines is not None:
        texts = [word.decode("ascii") for word in words]
        yield from (line for line in lines if any(text in line for text in texts))
        return
    data, end, found = lines.data, lines.end, set()
    for word in words:
        at = data.find(word, 0, end)
        while at >= 0:
            stop = data.find(b"\n", at, end)
            stop = end if stop < 0 else stop
            found.add((data.rfind(b"\n", 0, at) + 1, stop))
            at = data.find(word, stop, end)
    for start, stop in sorted(found):
        yield data[start:stop].decode("utf-8", errors="replace")


def to_log_text(text_or_lines: str | bytes | Iterable[str | bytes]) -> LogText | LogLines:
    """A whole log (``str`` or ``bytes``) as ``LogText``; lines, or text that cannot be held as
    UTF-8 (UTF-16, lone surrogates), as ``to_lines`` gives them. Never raises on content."""
    if isinstance(text_or_lines, (LogText, LogLines)):
        return text_or_lines
    if isinstance(text_or_lines, (bytes, bytearray, memoryview)):
        data = bytes(text_or_lines)
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return to_lines(data)
    elif isinstance(text_or_lines, str):
        try:
            data = text_or_lines.encode("utf-8")
        except UnicodeEncodeError:  # surrogateescape-decoded text: to_lines keeps its strings
            return to_lines(text_or_lines)
    else:
        return to_lines(text_or_lines)
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    if b"\r" in data:  # as _split_text: an invalid byte never swallows an ASCII "\r" or "\n"
        data = data.replace(b"\r\n", b"\n")
        if data.endswith(b"\r"):
            data = data[:-1]
    return LogText(data)


def first_nonblank(lines: Iterable[str], limit: int) -> list[str]:
    """The first ``limit`` lines that are not blank (the detection sample)."""
    if isinstance(lines, LogText):
        return lines.head(limit)
    sample: list[str] = []
    for line in lines:
        if line.strip():
            sample.append(line)
            if len(sample) >= limit:
                break
    return sample


# --- prefixes and timestamps ------------------------------------------------------------------

# A date-time as log prefixes and loggers print it: ISO 8601 with "T" or a space, "." or ","
# before the fraction (Python logging), an optional zone. Without a zone the time is taken as UTC.
LOOSE_TIMESTAMP = re.compile(
    r"(?<![0-9])([0-9]{4}-[0-9]{2}-[0-9]{2})[T ]([0-9]{2}:[0-9]{2}:[0-9]{2})(?:[.,]([0-9]{1,9}))?"
    r"(?:[ ]?(Z|[+-][0-9]{2}(?::?[0-9]{2})?|UTC|GMT)(?![A-Za-z]))?(?![0-9])"
)


def _normalize_timestamp(match: re.Match[str]) -> str:
    date, time, fraction, zone = match.groups()
    text = f"{date}T{time}"
    if fraction:
        text += "." + fraction
    if zone is None:  # naive: read in the log's zone (log_timezone) by parse_timestamps
        return text
    if zone in ("Z", "UTC", "GMT"):
        return text + "Z"
    sign, digits = zone[0], zone[1:].replace(":", "")
    return f"{text}{sign}{digits[:2]}:{digits[2:4] or '00'}"


def last_timestamp_in(text: str) -> str | None:
    """The last date-time in ``text`` (a log prefix), as ISO 8601 text, or None when there is none.

    Only full dates count: a BSD syslog stamp (``Nov 28 03:00:01``) carries no year and is not
    guessed. The result is syntactically ISO 8601; ``parse_timestamps`` decides if it is a real date.
    """
    last = None
    for last in LOOSE_TIMESTAMP.finditer(text):
        pass
    return _normalize_timestamp(last) if last else None


def normalize_loose_timestamp(text: str) -> str | None:
    """``text`` as ISO 8601 when the whole of it is a loose date-time, else None."""
    match = LOOSE_TIMESTAMP.fullmatch(text.strip())
    return _normalize_timestamp(match) if match else None


_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


# The zone of naive timestamps (``log_timezone``) while a parser runs: set by ``naive_timezone``
# around a parse, read by ``parse_timestamps`` deep in the parsers' paths. UTC when unset.
_NAIVE_ZONE: ContextVar[dt.tzinfo | None] = ContextVar("naive_zone", default=None)
_HAS_ZONE = re.compile(r"(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)\s*$")


@contextmanager
def naive_timezone(zone: dt.tzinfo | None) -> Iterator[None]:
    """Read timestamps without a zone in ``zone`` (None or UTC: as UTC) inside the block."""
    token = _NAIVE_ZONE.set(zone)
    try:
        yield
    finally:
        _NAIVE_ZONE.reset(token)


def parse_timestamps(texts: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Parse ISO 8601 texts (vectorized) into UTC nanoseconds since the epoch.

    Returns ``(ns, bad)``: ``ns`` is int64 with ``NAT_NS`` where there is no time; ``bad`` is True
    where a text was given but is not a date-time in the datetime64[ns] range. Texts without a
    zone are read in the zone ``naive_timezone`` set (UTC by default); loose forms (space instead
    of "T", "," before the fraction) are accepted.
    """
    count = len(texts)
    if count == 0:
        return np.empty(0, np.int64), np.zeros(0, bool)
    series = pd.Series(texts, dtype=object)
    given = series.notna().to_numpy()
    ns = _iso_to_ns(series)
    bad = given & (ns == NAT_NS)
    if bad.any():  # second chance for loose forms, one by one (rare)
        retry = np.flatnonzero(bad)
        fixed = [
            normalize_loose_timestamp(t) if isinstance(t, str) else None
            for t in series.iloc[retry]
        ]
        if any(f is not None for f in fixed):
            ns[retry] = _iso_to_ns(pd.Series(fixed, dtype=object))
            bad = given & (ns == NAT_NS)
    zone = _NAIVE_ZONE.get()
    if zone is not None and zone != dt.timezone.utc:
        naive = np.array([isinstance(t, str) and not _HAS_ZONE.search(t) for t in texts], bool) & (ns != NAT_NS)
        if naive.any():  # the wall-clock time was read as UTC: read it in the log's zone instead
            wall = pd.DatetimeIndex(ns[naive].view("datetime64[ns]"))
            local = wall.tz_localize(zone, ambiguous=False, nonexistent="shift_forward").tz_convert("UTC")
            ns[naive] = local.as_unit("ns").asi8
    return ns, bad


def _iso_to_ns(series: pd.Series) -> np.ndarray:
    parsed = pd.to_datetime(series, format="ISO8601", utc=True, errors="coerce")
    index = pd.DatetimeIndex(parsed)
    values = index.asi8.copy()
    factor = _UNIT_NS[index.unit]
    if factor != 1:  # coarser units reach beyond datetime64[ns]: such dates are out of range
        limit = np.iinfo(np.int64).max // factor
        valid = (values != NAT_NS) & (np.abs(values) <= limit)
        values = np.where(valid, values * factor, NAT_NS)
    return values


_PREFIX_PIECE = re.compile(r"[.,][0-9]+|[0-9]+|[ \t]+|.", re.DOTALL)


class ContinuationPrefix:
    """Strips the per-line log prefix from the continuation lines of a multi-line record.

    Built from the prefix of the record's first line (what stands before the record itself, e.g.
    ``2026-11-28T03:00:01.123456789Z stdout F`` or ``app-1  | ``). Container runtimes and syslog
    prefix every physical line, with a fresh timestamp each time, so a continuation line carries
    a prefix of the same shape but not the same text: numbers may change (fractions may vanish,
    containerd trims trailing zeros), runs of blanks may change width. The final blanks of the
    prefix stay exact so the record's own indentation survives. Lines without the prefix (Python
    logging prefixes only the first line) come back unchanged.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._shape: re.Pattern[str] | None = None

    def strip(self, line: str) -> str:
        if not self.prefix:
            return line
        if line.startswith(self.prefix):
            return line[len(self.prefix) :]
        if self._shape is None:
            self._shape = _prefix_shape(self.prefix)
        match = self._shape.match(line)
        return line[match.end() :] if match else line


def _prefix_shape(prefix: str) -> re.Pattern[str]:
    body = prefix.rstrip(" \t")
    parts = []
    for piece in _PREFIX_PIECE.findall(body):
        if piece[0] in ".," and len(piece) > 1:
            parts.append(r"(?:[.,][0-9]+)?")
        elif piece[0].isascii() and piece[0].isdigit():
            parts.append(r"[0-9]+")
        elif piece[0] in " \t":
            parts.append(r"[ \t]+")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts) + re.escape(prefix[len(body) :]))


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a parser allocates millions of small objects.

    Every few hundred new tuples and dicts trigger a collection, and the older generations'
    collections walk all of them: on a million-line log that costs more than the parsing. The
    parsers build no reference cycles, so nothing is left for the collector to find.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --- malformed lines --------------------------------------------------------------------------


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """At most ``limit`` characters of ``text``, with an ellipsis when cut."""
    return text if len(text) <= limit else text[:limit] + "…"


class MalformedCollector:
    """Counts malformed lines and keeps the first few (by line number) as examples."""

    def __init__(self, keep: int = MALFORMED_EXAMPLES) -> None:
        self.count = 0
        self._keep = keep
        self._examples: list[MalformedLine] = []
        self._line_nos: list[int] = []

    def add(self, line_no: int, text: str, problem: str) -> None:
        self.count += 1
        if len(self._examples) >= self._keep and line_no >= self._line_nos[-1]:
            return
        at = bisect.bisect_right(self._line_nos, line_no)
        self._line_nos.insert(at, line_no)
        self._examples.insert(at, MalformedLine(line_no, excerpt(text), problem))
        del self._line_nos[self._keep :], self._examples[self._keep :]

    @property
    def examples(self) -> list[MalformedLine]:
        return list(self._examples)


# --- values out of range -----------------------------------------------------------------------

# RFC 6455 5.5.1: the close code is a 2-byte unsigned integer. Unused values (0-999, 5000+) are
# kept as logged; one that cannot travel in a close frame (-1, 99999) is a broken record.
CLOSE_CODE_MIN, CLOSE_CODE_MAX = 0, 65535
# No WebSocket connection lives a year: a longer (or negative) lifetime is a broken record.
MAX_DURATION_S = 366 * 24 * 3600.0


def out_of_range(code: np.ndarray, code_missing: np.ndarray, duration_s: np.ndarray) -> np.ndarray:
    """Per row, whether its close code or lifetime is impossible (a malformed record, not data)."""
    bad_code = ~code_missing & ((code < CLOSE_CODE_MIN) | (code > CLOSE_CODE_MAX))
    with np.errstate(invalid="ignore"):
        bad_duration = (duration_s < 0) | (duration_s > MAX_DURATION_S)  # NaN (unknown) is neither
    return bad_code | bad_duration


def range_problem(code: int, code_missing: bool, duration_s: float) -> str:
    """Why ``out_of_range`` rejected a row, for the malformed-line examples."""
    if not code_missing and not CLOSE_CODE_MIN <= code <= CLOSE_CODE_MAX:
        return f"close code {code} is outside {CLOSE_CODE_MIN}-{CLOSE_CODE_MAX} (a 2-byte field)"
    if duration_s < 0:
        return f"negative duration {duration_s:g} s"
    return f"duration {duration_s:g} s is longer than a year"


# --- the typed frame --------------------------------------------------------------------------


@overload
def is_mobile_user_agent(user_agent: pd.Series) -> pd.Series: ...
@overload
def is_mobile_user_agent(user_agent: str | None) -> bool | None: ...
def is_mobile_user_agent(user_agent: str | None | pd.Series) -> bool | None | pd.Series:
    """The reference runbook's ``/Mobile|Android|iPhone|iPad/`` test.

    A string gives a bool and None (or NA) gives None; a Series gives a nullable boolean Series
    with <NA> where there is no user agent.
    """
    if isinstance(user_agent, pd.Series):
        text = user_agent if user_agent.dtype == "string" else user_agent.astype("string")
        return text.str.contains(MOBILE_USER_AGENT.pattern, regex=True).astype("boolean")
    if user_agent is None or user_agent is pd.NA:
        return None
    return MOBILE_USER_AGENT.search(user_agent) is not None


def string_array(values: Sequence[str | None] | np.ndarray | Any) -> pd.api.extensions.ExtensionArray:
    """A pandas ``string`` array from Python strings and None (None becomes <NA>), or from a
    pyarrow string array (kept as it is, without a round trip through Python objects).

    Lone surrogates (from ``\\ud800`` escapes or surrogateescape-decoded input) cannot be stored
    as UTF-8; they become U+FFFD instead of failing the whole log.
    """
    if pa is not None and isinstance(values, (pa.Array, pa.ChunkedArray)):
        values = values.cast(pa.large_string())
        try:
            return pd.array(values, dtype="string")
        except (TypeError, ValueError):  # pragma: no cover - a pandas whose "string" is not Arrow-backed
            return pd.array(values.to_pylist(), dtype="string")
    try:
        if pa is not None:
            return pd.array(pa.array(values, type=pa.large_string()), dtype="string")
        return pd.array(values, dtype="string")
    except UnicodeEncodeError:
        return string_array([None if v is None else scrub_surrogates(v) for v in values])


def scrub_surrogates(text: str) -> str:
    """``text`` with lone UTF-16 surrogates replaced by U+FFFD (pairs are joined)."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _few_strings(values: np.ndarray, choices: Sequence[str], codes_given: bool = False):
    """A string array of values drawn from a few ``choices`` (or of their indexes), built by take."""
    choices = [scrub_surrogates(choice) for choice in choices]  # a file name may carry them
    if pa is None:
        return string_array(np.asarray(choices, dtype=object)[values] if codes_given else values)
    codes = values if codes_given else np.zeros(len(values), np.int8)
    if not codes_given:
        for code, choice in enumerate(choices[1:], start=1):
            codes[values == choice] = code
    return pd.array(pa.array(choices, type=pa.large_string()).take(pa.array(codes)), dtype="string")


def build_frame(
    *,
    source: str,
    line_no: np.ndarray,
    ts_ns: np.ndarray,
    event: Sequence[str] | np.ndarray,
    connection_id: Sequence[str | None],
    code: np.ndarray,
    code_missing: np.ndarray,
    reason: Sequence[str | None],
    duration_s: np.ndarray,
    client_ip: Sequence[str | None],
    user_agent: Sequence[str | None],
    is_mobile: np.ndarray | None = None,
    closed_by: Sequence[str | None] | None = None,
    client_id: Sequence[str | None] | None = None,
) -> pd.DataFrame:
    """The normalized close-log frame (``LOG_COLUMNS``, exact dtypes, ts UTC) from its columns.

    ``ts_ns`` is int64 nanoseconds with ``NAT_NS`` for no time; ``code`` is int64 with
    ``code_missing`` marking <NA>; ``event`` holds names, or an integer array of indexes into
    ``EVENTS``; the string columns take Python strings and None, or pyarrow string arrays.
    ``is_mobile``: ``is_mobile_user_agent`` of the user agents as bools, when the caller has it
    (<NA> where there is no user agent either way). ``closed_by``: one of ``CLOSERS`` or None per
    row, when the format says who closed first; ``client_id``: the user's identity across
    connections, when the format logs one.
    """
    count = len(line_no)
    user_agents = pd.Series(string_array(user_agent))
    events = event if isinstance(event, np.ndarray) and event.dtype.kind in "iu" else np.asarray(event, dtype=object)
    frame = pd.DataFrame(
        {
            "ts": pd.Series(np.asarray(ts_ns, np.int64).view("datetime64[ns]")).dt.tz_localize("UTC"),
            "connection_id": string_array(connection_id),
            "event": _few_strings(events, EVENTS, codes_given=events.dtype.kind in "iu"),
            "code": pd.arrays.IntegerArray(np.asarray(code, np.int64), np.asarray(code_missing, bool)),
            "reason": string_array(reason),
            "duration_s": np.asarray(duration_s, np.float64),
            "client_ip": string_array(client_ip),
            "user_agent": user_agents,
            "is_mobile": (
                is_mobile_user_agent(user_agents)
                if is_mobile is None
                else pd.arrays.BooleanArray(np.asarray(is_mobile, bool), user_agents.isna().to_numpy())
            ),
            "client_id": string_array(client_id if client_id is not None else [None] * count),
            "closed_by": string_array(closed_by if closed_by is not None else [None] * count),
            "source": _few_strings(np.zeros(count, np.int8), (source,), codes_given=True),
            "line_no": pd.arrays.IntegerArray(np.asarray(line_no, np.int64), np.zeros(count, bool)),
        }
    )
    return frame.astype(LOG_COLUMNS)


def select_rows(frame: pd.DataFrame, mask: np.ndarray | pd.Series) -> pd.DataFrame:
    """The rows of ``frame`` where ``mask`` holds. ``frame.loc[mask]`` goes through Arrow's take,
    which joins a text column's pieces first: a copy of the whole column, however few rows are
    chosen. Arrow's filter, used here column by column, reads the pieces one by one."""
    mask = np.asarray(mask, dtype=bool)
    return pd.DataFrame({column: frame[column].array[mask] for column in frame.columns}, index=frame.index[mask])


def concat_frames(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate normalized frames (keeping LOG_COLUMNS dtypes) with a fresh 0..n-1 index."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_log_frame()
    if len(frames) == 1:
        return frames[0].reset_index(drop=True)
    return pd.concat(frames, ignore_index=True).astype(LOG_COLUMNS)


def as_object_array(values: Iterable[Any], count: int) -> np.ndarray:
    """A 1-d object array of ``count`` items (numpy would nest tuples; this never does)."""
    out = np.empty(count, dtype=object)
    out[:] = list(values) if not isinstance(values, (list, tuple)) else values
    return out
