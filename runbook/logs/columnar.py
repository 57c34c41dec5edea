"""One-line-one-record logs read a column at a time, with the per-line reader as the reference.

A proxy access log of a million lines read line by line costs a million regex matches, field
dicts, ``Record`` objects and ISO strings (~30k lines/s). Here the log stays one UTF-8 buffer:
numpy finds the lines and the delimiters, one RE2 pass (pyarrow) checks each line's whole
grammar, fields are cut at the positions that grammar fixes and typed as arrays. A format reads
this way only the lines it can prove it reads exactly as its ``read_line`` would:

- printable ASCII (and tab) only: there Python's ``re`` and RE2 agree on ``\\s``, ``\\S``, ``.``,
  classes and case folding, and ``str.strip`` / ``str.lower`` act as their Arrow counterparts;
- the line matches a stricter ("clean") form of the format's regex whose fields hold no quote,
  so the n-th quote of the line is the n-th quote of the grammar, and every field ends at a
  place that cannot move (a fixed width, a quote, the first of a byte its pattern excludes);
- every value is in the plain range (a real date in 1900-2199, a number of few digits...).

Every other line (blank, non-ASCII, malformed, or merely unusual) goes to ``read_line``, which
is the per-line reader itself, unchanged. ``parse_columns`` puts both halves together in line
order with the counts, malformed examples and line numbers ``lines.parse_lines`` gives. Needs a
pyarrow with ``string_view`` (16+); without it every line goes to ``read_line``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import as_strided

from runbook.logs.common import MOBILE_USER_AGENT, LogText, MalformedCollector, build_frame, scrub_surrogates, to_lines
from runbook.logs.lines import LineFormat, LineReader, Malformed, Record, parse_timezone, timestamps_to_ns
from runbook.observations import EVENTS, ParsedLog

try:
    import pyarrow as pa
    import pyarrow.compute as pc
except ImportError:  # pragma: no cover - pyarrow is a dependency
    pa = pc = None

# Bytes a line may hold to be read as columns: printable ASCII and tab ("\n" ends lines).
_SIMPLE_BYTES = bytes(range(0x20, 0x7F)) + b"\t\n"
_NOT_SIMPLE = np.ones(256, bool)
_NOT_SIMPLE[np.frombuffer(_SIMPLE_BYTES, np.uint8)] = False
_VIEW_BLOCK = 1 << 30  # a string view's offset is an int32: one data buffer per GiB
_EVENT_CODE = {name: code for code, name in enumerate(EVENTS)}
DISCONNECT, ERROR = _EVENT_CODE["disconnect"], _EVENT_CODE["error"]
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Years whose dates are read as columns: far inside datetime64[ns] (1677-2262) whatever is added.
YEAR_MIN, YEAR_MAX = 1900, 2199


def available() -> bool:
    """Whether this pyarrow can cut strings out of a buffer without copying it (``string_view``)."""
    return pa is not None and hasattr(pa, "string_view")


# --- the lines -----------------------------------------------------------------------------------


class LineTable:
    """A log's lines as byte ranges of one UTF-8 buffer (``data[start[i]:end[i]]`` is line i).

    ``simple[i]``: line i holds printable ASCII and tabs only. ``text(i)`` is the line exactly as
    ``common.to_lines`` gives it. Build with ``LineTable.of``.
    """

    def __init__(self, data: bytes, start: np.ndarray, end: np.ndarray, texts: list[str] | None) -> None:
        self.data = data
        self.buf = np.frombuffer(data, np.uint8)
        self.start = start
        self.end = end
        self._texts = texts
        self._positions: dict[int, np.ndarray] = {}
        self._words: dict[int, np.ndarray] = {}
        self.simple = np.ones(len(start), bool)
        dirty = data.translate(None, _SIMPLE_BYTES)
        if dirty:
            at = np.flatnonzero(_NOT_SIMPLE[self.buf])
            self.simple[np.searchsorted(start, at, side="right") - 1] = False

    @classmethod
    def of(cls, lines: Iterable[str]) -> LineTable | None:
        """The lines of a ``LogText`` (its bytes, not split) or of any iterable ``to_lines`` takes;
        None when they cannot be held as UTF-8 (lone surrogates) or pyarrow lacks string views."""
        if not available():
            return None
        if isinstance(lines, LogText):
            data, texts = lines.data, None
            if not data:
                return cls(b"", np.empty(0, np.int64), np.empty(0, np.int64), None)
            if not data.isascii():
                try:
                    data.decode("utf-8")
                except UnicodeDecodeError:  # as LogText.lines(): each bad byte reads as U+FFFD
                    data = data.decode("utf-8", "replace").encode("utf-8")
            stop = len(data) - 1 if data.endswith(b"\n") else len(data)
        else:
            texts = to_lines(lines)
            if not texts:
                return cls(b"", np.empty(0, np.int64), np.empty(0, np.int64), texts)
            try:
                data = "\n".join(texts).encode("utf-8")
            except UnicodeEncodeError:
                return None
            stop = len(data)
        newlines = positions_of(np.frombuffer(data, np.uint8)[:stop], 10)
        start = np.concatenate(([0], newlines + 1)).astype(np.int64)
        end = np.concatenate((newlines, [stop])).astype(np.int64)
        return cls(data, start, end, texts)

    def __len__(self) -> int:
        return len(self.start)

    def text(self, row: int) -> str:
        if self._texts is not None:
            return self._texts[row]
        return self.data[self.start[row] : self.end[row]].decode("utf-8")

    def positions(self, byte: int) -> np.ndarray:
        """Where ``byte`` occurs in the buffer, ascending (kept for the next caller)."""
        if byte not in self._positions:
            self._positions[byte] = positions_of(self.buf, byte)
        return self._positions[byte]

    def rows_with(self, byte: int) -> np.ndarray:
        """Per line, whether ``byte`` occurs in it."""
        found = np.zeros(len(self), bool)
        if bytes([byte]) not in self.data:
            return found
        at = self.positions(byte)
        if at.size:
            found[np.searchsorted(self.start, at, side="right") - 1] = True
        return found

    def words(self, at: np.ndarray, width: int = 4) -> np.ndarray:
        """The ``width`` (4 or 8) bytes at each of ``at`` as a little-endian unsigned integer
        (bytes outside the buffer read as 0)."""
        size, dtype = len(self.buf), np.dtype(f"<u{width}")
        if width not in self._words:
            self._words[width] = np.ndarray((max(size - width + 1, 0),), dtype, self.data, 0, (1,))
        at = np.asarray(at, np.int64)
        near_end = (at > size - width) | (at < 0)
        words = self._words[width][np.clip(at, 0, max(size - width, 0))] if size >= width else np.zeros(len(at), dtype)
        if near_end.any():
            tail = np.zeros(len(at), dtype)
            for offset in range(width):
                here = at + offset
                inside = near_end & (here >= 0) & (here < size)
                tail[inside] |= self.buf[here[inside]].astype(dtype) << dtype.type(8 * offset)
            words = np.where(near_end, tail, words)
        return words

    def bytes_at(self, at: np.ndarray, width: int) -> np.ndarray:
        """The ``width`` bytes at each of ``at``, as rows of a uint8 matrix (outside the buffer: 0)."""
        at = np.asarray(at, np.int64)
        size = len(self.buf)
        if size < width:
            out = np.zeros((len(at), width), np.uint8)
            outside = np.ones(len(at), bool)
        else:
            windows = as_strided(self.buf, shape=(size - width + 1, width), strides=(1, 1), writeable=False)
            outside = (at < 0) | (at > size - width)
            out = windows[np.clip(at, 0, size - width)]
        if outside.any():
            rows = np.flatnonzero(outside)
            here = at[rows, None] + np.arange(width)
            inside = (here >= 0) & (here < size)
            out[rows] = np.where(inside, self.buf[np.clip(here, 0, max(size - 1, 0))] if size else 0, 0)
        return out

    def distinct(self, start: np.ndarray, end: np.ndarray) -> tuple[object, np.ndarray]:
        """The distinct strings among ``data[start[k]:end[k]]`` (a pyarrow ``large_string`` array)
        and, for every k, the index of its own; nothing is copied but the distinct ones."""
        encoded = pc.dictionary_encode(self.strings(start, end, view=True))
        return encoded.dictionary.cast(pa.large_string()), encoded.indices.to_numpy(zero_copy_only=False)

    def strings(self, start: np.ndarray, end: np.ndarray, valid: np.ndarray | None = None, *, view: bool = False):
        """``data[start[k]:end[k]]`` for every k as a pyarrow ``large_string`` array (null where
        ``valid`` is False; ``view``: a ``string_view`` array of the buffer, not copied). The
        ranges must lie in simple lines."""
        count = len(start)
        start = np.asarray(start, np.int64)
        length = np.asarray(end, np.int64) - start
        if valid is not None:
            length = np.where(valid, length, 0)
        # Arrow's string view: the length, then up to 12 bytes of a short string (zero padded),
        # or the first 4 bytes of a long one, its data buffer and its offset in that buffer.
        views = np.empty((count, 4), "<u4")
        views[:, 0] = length
        short = length <= 12
        head = np.ascontiguousarray(self.bytes_at(start, 12)).view("<u4")  # (count, 3)
        for word in range(3):
            held = np.clip(length - 4 * word, 0, 4).astype(np.uint64)
            mask = ((np.uint64(1) << (np.uint64(8) * held)) - np.uint64(1)).astype(np.uint32)
            inline = head[:, word] & mask
            if word == 0:
                views[:, 1] = np.where(short, inline, head[:, 0])
            elif word == 1:
                views[:, 2] = np.where(short, inline, start // _VIEW_BLOCK)
            else:
                views[:, 3] = np.where(short, inline, start % _VIEW_BLOCK)
        size = len(self.buf)
        blocks = max(1, -(-size // _VIEW_BLOCK))
        buffers = [pa.py_buffer(memoryview(self.data)[k * _VIEW_BLOCK :]) for k in range(blocks)]
        validity = None if valid is None else pa.py_buffer(np.packbits(np.asarray(valid, bool), bitorder="little"))
        array = pa.Array.from_buffers(pa.string_view(), count, [validity, pa.py_buffer(views)] + buffers)
        return array if view else array.cast(pa.large_string())

    def matches(self, rows: np.ndarray, at: np.ndarray, pattern: str, *, to_end: bool = True) -> np.ndarray:
        """For each of ``rows``, whether ``pattern`` (RE2, anchored here) matches the line from byte
        ``at`` to its end (``to_end=False``: a beginning of it). The pattern must not match a
        newline; no line is copied."""
        if not len(rows):
            return np.zeros(0, bool)
        offsets = np.concatenate((at, [self.end[rows[-1]]])).astype(np.int64)
        bodies = pa.LargeStringArray.from_buffers(len(rows), pa.py_buffer(offsets), pa.py_buffer(self.data))
        found = pc.match_substring_regex(bodies, "^(?:" + pattern + ")" + ("(?:\n|$)" if to_end else ""))
        return found.to_numpy(zero_copy_only=False).astype(bool)

    def _maybe_prefixed(self, rows: np.ndarray) -> np.ndarray:
        """Whether each of ``rows`` may begin with a container or syslog prefix (lines.CONTAINER_PREFIX,
        haproxy._SYSLOG): a "YYYY-" date, "[" (kubectl), an upper-case letter (a syslog month), or
        a "|" somewhere (docker compose's "name  | "). A cheap test that skips most lines."""
        head = self.bytes_at(self.start[rows], 8)
        digits = ((head[:, :4] >= 48) & (head[:, :4] <= 57)).all(axis=1) & (head[:, 4] == ord("-"))
        maybe = digits | (head[:, 0] == ord("[")) | ((head[:, 0] >= ord("A")) & (head[:, 0] <= ord("Z")))
        return maybe | self.rows_with(ord("|"))[rows]

    def prefix_ends(self, rows: np.ndarray, some_prefix: str, prefix: str) -> np.ndarray:
        """Where the body of each of ``rows`` begins after ``prefix`` (an RE2 pattern that may match
        nothing), as the leftmost-first match of the prefix alone gives it. ``some_prefix``: a
        pattern that matches at the start of every line where ``prefix`` is not empty (and maybe
        of a few others), to skip the lines that have none."""
        at = self.start[rows].copy()
        maybe = np.flatnonzero(self._maybe_prefixed(rows))
        if not maybe.size:
            return at
        offsets = np.concatenate((at[maybe], [self.end[rows[maybe[-1]]]])).astype(np.int64)
        heads = pa.LargeStringArray.from_buffers(len(maybe), pa.py_buffer(offsets), pa.py_buffer(self.data))
        which = maybe[values_of(pc.match_substring_regex(heads, "^(?:" + some_prefix + ")"))]
        if which.size:
            texts = self.strings(self.start[rows[which]], self.end[rows[which]])
            found = pc.struct_field(pc.extract_regex(texts, "^(?P<p>" + prefix + ")"), [0])
            at[which] += values_of(pc.binary_length(found)).astype(np.int64)
        return at


_CHUNK = 1 << 22  # bytes compared at once: a temporary that stays in cache


def positions_of(buf: np.ndarray, byte: int) -> np.ndarray:
    """Where ``byte`` occurs in ``buf``, ascending (int64)."""
    found, scratch = [np.empty(0, np.int64)], np.empty(min(len(buf), _CHUNK), bool)
    for at in range(0, len(buf), _CHUNK):
        chunk = buf[at : at + _CHUNK]
        hits = scratch[: len(chunk)]
        np.equal(chunk, byte, out=hits)
        found.append(np.flatnonzero(hits) + at)
    return np.concatenate(found)


# --- bytes to values ---------------------------------------------------------------------------


_ROWS_AT_ONCE = 1 << 15  # rows whose bytes are compared as one matrix
_ONES, _HIGHS = np.uint64(0x0101010101010101), np.uint64(0x8080808080808080)


def find_byte(table: LineTable, at: np.ndarray, stop: np.ndarray, byte: int, limit: int) -> np.ndarray:
    """Per row, the first position of ``byte`` in ``[at, stop)``, looking at most about ``limit``
    bytes (8 at a time); -1 where there is none."""
    found = np.full(len(at), -1, np.int64)
    at, stop = np.asarray(at, np.int64), np.asarray(stop, np.int64)
    window = 32  # most values end in the first few bytes: one look at a window of them
    hits = (table.bytes_at(at, window) == byte) & (np.arange(window) < (stop - at)[:, None])
    seen = hits.any(axis=1)
    found[seen] = at[seen] + np.argmax(hits[seen], axis=1)
    active = np.flatnonzero(~seen & (at + window < stop))
    position = at + window
    target = np.uint64(byte) * _ONES
    for _ in range(-(-max(limit - window, 0) // 8)):
        here = position[active]
        inside = here < stop[active]
        active, here = active[inside], here[inside]
        if not active.size:
            break
        other = table.words(here, 8) ^ target  # a zero byte where ``byte`` is
        flags = (other - _ONES) & ~other & _HIGHS  # the lowest flag marks the first zero byte
        hit = flags != 0
        lowest = flags[hit] & (~flags[hit] + np.uint64(1))
        where = here[hit] + (np.log2(lowest.astype(np.float64)).astype(np.int64) - 7) // 8
        before_stop = where < stop[active[hit]]
        found[active[hit][before_stop]] = where[before_stop]
        active = active[~hit]
        position[active] += 8
    return found


def first_bytes(table: LineTable, at: np.ndarray, stop: np.ndarray, byte: int, count: int, window: int = 256) -> list[np.ndarray]:
    """Per row, the positions of the first ``count`` occurrences of ``byte`` in ``[at, stop)``
    within ``window`` bytes of ``at`` (-1 for all of them where there are fewer)."""
    found = [np.full(len(at), -1, np.int64) for _ in range(count)]
    width = -(-window // 8) * 8
    for low in range(0, len(at), _ROWS_AT_ONCE):
        begin, end = at[low : low + _ROWS_AT_ONCE], stop[low : low + _ROWS_AT_ONCE]
        hits = (table.bytes_at(begin, width) == byte) & (np.arange(width) < (end - begin)[:, None])
        row, column = np.nonzero(hits)
        counts = np.bincount(row, minlength=len(begin))
        first = np.cumsum(counts) - counts
        enough = np.flatnonzero(counts >= count)
        for k in range(count):
            found[k][low + enough] = begin[enough] + column[first[enough] + k]
    return found


def find_byte_back(table: LineTable, at: np.ndarray, stop: np.ndarray, byte: int, limit: int) -> np.ndarray:
    """Per row, the last position of ``byte`` in ``[stop, at]``, looking at most ``limit`` bytes
    back from ``at``; -1 where there is none."""
    found = np.full(len(at), -1, np.int64)
    active = np.arange(len(at))
    top = np.asarray(at, np.int64)
    for step in range(0, limit, 8):
        here = top[active] - step  # the window [here - 7, here]
        window = table.bytes_at(here - 7, 8)
        hits = (window == byte) & (np.arange(8) >= 7 - np.minimum(here - stop[active], 7)[:, None])
        hits &= (here >= stop[active])[:, None]
        last = 7 - np.argmax(hits[:, ::-1], axis=1)
        hit = hits.any(axis=1)
        found[active[hit]] = here[hit] - 7 + last[hit]
        active = active[~hit & (here - 8 >= stop[active])]
        if not active.size:
            break
    return found


def digits(table: LineTable, at: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The number written in the ``width`` (1-8) bytes at ``at`` (int64), and whether they are all digits."""
    word = table.words(at, 4 if width <= 4 else 8).astype(np.int64)
    value = np.zeros(len(at), np.int64)
    ok = np.ones(len(at), bool)
    for offset in range(width):
        char = ((word >> (8 * offset)) & 0xFF) - 48
        ok &= (char >= 0) & (char <= 9)
        value = value * 10 + char
    return value, ok


def number(table: LineTable, start: np.ndarray, end: np.ndarray, most: int = 15) -> tuple[np.ndarray, np.ndarray]:
    """The unsigned integer in each ``[start, end)`` (1 to ``most`` digits), and where it is one."""
    length = end - start
    ok = (length >= 1) & (length <= most)
    value = np.zeros(len(start), np.int64)
    for offset in range(most):
        inside = ok & (offset < length)
        if not inside.any():
            break
        char = table.buf[np.where(inside, start + offset, 0)].astype(np.int64) - 48
        ok &= ~inside | ((char >= 0) & (char <= 9))
        value = np.where(inside, value * 10 + char, value)
    return value, ok


def decimal(table: LineTable, at: np.ndarray, stop: np.ndarray, most: int = 15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The longest ``[0-9]+(?:\\.[0-9]+)?`` at each ``at`` (before ``stop``) as ``float()`` reads it,
    where it ends, and where there is one of at most ``most`` digits (more: not read here). With at
    most 15 digits the value is digits / 10**decimals, both exact in a double, so the quotient is
    the correctly rounded number (what ``float`` gives)."""
    count, size = len(at), len(table.buf)
    value, scale, seen = np.zeros(count, np.int64), np.zeros(count, np.int64), np.zeros(count, np.int64)
    end = np.asarray(at, np.int64).copy()
    fraction = np.zeros(count, bool)
    active = np.flatnonzero(end < stop)
    for _ in range(most + 2):
        if not active.size:
            break
        here = end[active]
        char = table.buf[here].astype(np.int64)
        digit = (char >= 48) & (char <= 57)
        value[active] = np.where(digit, value[active] * 10 + char - 48, value[active])
        scale[active] += digit & fraction[active]
        seen[active] += digit
        # a "." counts when a digit came before it and one follows it
        after = table.buf[np.minimum(here + 1, size - 1)]
        dot = ~fraction[active] & (char == 46) & (seen[active] > 0) & (here + 1 < stop[active]) & (after >= 48) & (after <= 57)
        fraction[active] |= dot
        moved = digit | dot
        end[active] += moved
        active = active[moved & (end[active] < stop[active])]
    ok = (seen >= 1) & (seen <= most)
    ok[active] = False  # still reading: more than ``most`` digits
    return value / 10.0 ** scale, end, ok


def month_numbers(table: LineTable, at: np.ndarray) -> np.ndarray:
    """The month named by the 3 bytes at ``at`` (``Jan``..``Dec``, that case exactly), 0 otherwise."""
    key = table.words(at).astype(np.int64) & 0xFFFFFF
    names = np.array([ord(m[0]) | (ord(m[1]) << 8) | (ord(m[2]) << 16) for m in MONTH_NAMES], np.int64)
    order = np.argsort(names)
    where = np.clip(np.searchsorted(names[order], key), 0, 11)
    return np.where(names[order][where] == key, order[where] + 1, 0)


_DAYS_BEFORE_MONTH = np.array([0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334], np.int64)
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int64)


def civil_ns(year, month, day, hour, minute, second) -> tuple[np.ndarray, np.ndarray]:
    """Nanoseconds since the epoch of the wall-clock times given (proleptic Gregorian), and where
    they are real times of years ``YEAR_MIN``-``YEAR_MAX`` (month 1-12, the month's days,
    hour < 24, minute < 60, second < 60: what ``datetime`` and pandas accept)."""
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_ok = (month >= 1) & (month <= 12)
    safe_month = np.where(month_ok, month, 1)
    last_day = _DAYS_IN_MONTH[safe_month] + ((safe_month == 2) & leap)
    ok = (
        month_ok & (day >= 1) & (day <= last_day) & (hour <= 23) & (minute <= 59) & (second <= 59)
        & (year >= YEAR_MIN) & (year <= YEAR_MAX)
    )
    before = year - 1
    days = (
        365 * (before - 1969) + (before // 4 - 1969 // 4) - (before // 100 - 1969 // 100) + (before // 400 - 1969 // 400)
        + _DAYS_BEFORE_MONTH[safe_month] + ((safe_month > 2) & leap) + day - 1
    )
    seconds = days * 86400 + hour * 3600 + minute * 60 + second
    return seconds * 1_000_000_000, ok


def local_to_utc_ns(wall_ns: np.ndarray, zone: dt.tzinfo) -> np.ndarray:
    """Wall-clock nanoseconds read in ``zone`` as UTC nanoseconds, as ``lines.timestamps_to_ns``
    reads a naive time (a time a DST change skips is shifted forward, an ambiguous one is standard
    time)."""
    if zone is None or zone == dt.timezone.utc or not len(wall_ns):
        return wall_ns
    series = pd.Series(wall_ns.view("datetime64[ns]"))
    local = series.dt.tz_localize(zone, ambiguous=False, nonexistent="shift_forward").dt.tz_convert("UTC")
    return pd.DatetimeIndex(local).as_unit("ns").asi8.copy()


def values_of(array) -> np.ndarray:
    """A pyarrow boolean or numeric array as numpy (nulls as False / 0)."""
    if pa.types.is_boolean(array.type):
        return pc.fill_null(array, False).to_numpy(zero_copy_only=False).astype(bool)
    return pc.fill_null(array, 0).to_numpy(zero_copy_only=False)


# --- what the columnar path read -----------------------------------------------------------------


@dataclass
class Columns:
    """The lines a format read as columns: ``ignored`` (line indexes), and the records of ``rows``
    (line indexes, ascending) with their values. ``ts_ns`` holds real times (never NaT); string
    columns are pyarrow arrays of ``len(rows)`` or None (all null)."""

    rows: np.ndarray
    ignored: np.ndarray
    ts_ns: np.ndarray
    event: np.ndarray  # indexes into EVENTS
    duration_s: np.ndarray
    code: np.ndarray | None = None
    code_missing: np.ndarray | None = None
    connection_id: object = None
    reason: object = None
    client_ip: object = None
    user_agent: object = None
    closed_by: object = None

    @classmethod
    def none(cls) -> Columns:
        empty = np.empty(0, np.int64)
        return cls(empty, empty, empty, np.empty(0, np.int8), np.empty(0, np.float64))


def strings_of(values: list[str | None]):
    """A pyarrow ``large_string`` array of Python strings and None (lone surrogates become U+FFFD)."""
    try:
        return pa.array(values, type=pa.large_string())
    except UnicodeEncodeError:  # as common.string_array: lone surrogates become U+FFFD
        return pa.array([None if v is None else scrub_surrogates(v) for v in values], type=pa.large_string())


def _null_strings(count: int):
    return pa.nulls(count, type=pa.large_string())


def parse_columns(
    name: str,
    table: LineTable,
    source: str,
    zone: dt.tzinfo,
    read_columns: Callable[[LineTable, dt.tzinfo], tuple[Columns, LineReader]],
) -> ParsedLog:
    """``lines.parse_lines`` for a format that reads most lines as columns.

    ``read_columns(table, zone)`` returns what it read and the reader of every other line (a
    format whose reading of a line depends on the whole log returns a reader built from it).
    The result is what ``parse_lines(name, reader, lines, source, timezone=zone)`` gives."""
    done, reader = read_columns(table, zone)
    claimed = np.zeros(len(table), bool)
    claimed[done.rows] = True
    claimed[done.ignored] = True
    malformed = MalformedCollector()
    records: list[tuple[int, Record]] = []
    ignored = len(done.ignored)
    for row in np.flatnonzero(~claimed).tolist():  # lines.parse_lines, for the lines left
        line = table.text(row)
        if not line.strip():
            continue
        try:
            found = reader(line)
        except Malformed as exc:
            malformed.add(row + 1, line, str(exc))
            continue
        if found is None or found == []:
            ignored += 1
            continue
        items = found if isinstance(found, list) else [found]
        if not all(isinstance(item, Record) for item in items):
            raise TypeError(f"the {name} format reads close records only, not {items!r}")
        records.extend((row, item) for item in items)
    record_lines = len(done.rows) + len({row for row, _ in records})
    slow_ns, bad = timestamps_to_ns([r.ts for _, r in records], zone)
    bad_rows = sorted({records[i][0] for i in np.flatnonzero(bad)})
    for row in bad_rows:
        malformed.add(row + 1, table.text(row), "timestamp is not a real date")
    record_lines -= len(bad_rows)
    keep = [i for i, (row, _) in enumerate(records) if row not in set(bad_rows)] if bad_rows else list(range(len(records)))
    kept = [records[i][1] for i in keep]
    slow_rows = np.array([records[i][0] for i in keep], np.int64)
    order = np.argsort(np.concatenate((done.rows, slow_rows)), kind="stable")
    count = len(order)

    def numbers(fast: np.ndarray, slow: list, dtype) -> np.ndarray:
        if not len(slow):
            return np.asarray(fast, dtype)
        return np.concatenate((np.asarray(fast, dtype), np.asarray(slow, dtype)))[order]

    def texts(fast, slow: list[str | None]):
        fast = _null_strings(len(done.rows)) if fast is None else fast.cast(pa.large_string())
        if not slow:
            return fast
        return pa.concat_arrays([fast, strings_of(slow)]).take(pa.array(order))

    agents = texts(done.user_agent, [r.user_agent for r in kept])
    fast_code = done.code if done.code is not None else np.zeros(len(done.rows), np.int64)
    fast_missing = done.code_missing if done.code_missing is not None else np.ones(len(done.rows), bool)
    frame = build_frame(
        source=source,
        line_no=numbers(done.rows, slow_rows, np.int64) + 1,
        ts_ns=numbers(done.ts_ns, slow_ns[keep] if keep else [], np.int64) if count else np.empty(0, np.int64),
        event=numbers(done.event, [_EVENT_CODE[r.event] for r in kept], np.int8),
        connection_id=texts(done.connection_id, [r.connection_id for r in kept]),
        code=numbers(fast_code, [0 if r.code is None else r.code for r in kept], np.int64),
        code_missing=numbers(fast_missing, [r.code is None for r in kept], bool),
        reason=texts(done.reason, [r.reason for r in kept]),
        duration_s=numbers(done.duration_s, [np.nan if r.duration_s is None else r.duration_s for r in kept], np.float64),
        client_ip=texts(done.client_ip, [r.client_ip for r in kept]),
        user_agent=agents,
        closed_by=texts(done.closed_by, [r.closed_by for r in kept]),
        is_mobile=mobile_user_agents(agents),
    )
    return ParsedLog(
        source=source,
        format=name,
        frame=frame,
        lines_total=len(table),
        ignored_lines=ignored,
        malformed_count=malformed.count,
        malformed_examples=malformed.examples,
        state=None,
        record_lines=record_lines,
    )




def mobile_user_agents(agents) -> np.ndarray:
    """``common.is_mobile_user_agent`` of a string column as bools (False where null), computed
    once per distinct user agent."""
    distinct = pc.dictionary_encode(agents, null_encoding="encode")
    mobile = pc.match_substring_regex(distinct.dictionary, MOBILE_USER_AGENT.pattern)
    return values_of(mobile)[distinct.indices.to_numpy(zero_copy_only=False)] if len(agents) else np.zeros(0, bool)


def if_else(condition, then, otherwise):
    """``pc.if_else`` on string columns, where ``then`` / ``otherwise`` may be a str or None."""

    def value(item):
        return pa.scalar(item, pa.large_string()) if item is None or isinstance(item, str) else item

    return pc.if_else(condition, value(then), value(otherwise))


def join(*pieces):
    """Strings and string columns concatenated row by row (a null piece makes a null row)."""
    pieces = [pa.scalar(p, pa.large_string()) if isinstance(p, str) else p.cast(pa.large_string()) for p in pieces]
    return pc.binary_join_element_wise(*pieces, pa.scalar("", pa.large_string()))


def scatter(count: int, rows: np.ndarray, values):
    """A string column of ``count`` nulls with ``values`` (a str, or a column of ``len(rows)``) at ``rows``."""
    if not len(rows):
        return pa.nulls(count, pa.large_string())
    if isinstance(values, str):
        values = pa.array([values], pa.large_string()).take(pa.array(np.zeros(len(rows), np.int64)))
    where = np.full(count, -1, np.int64)
    where[rows] = np.arange(len(rows))
    return values.cast(pa.large_string()).take(pa.array(where, mask=where < 0))


class ColumnarFormat(LineFormat):
    """A ``LineFormat`` whose ``parse`` reads what it can as columns: ``read_columns(table, zone)``
    returns the ``Columns`` it read, and ``read_line`` reads every other line (all of them when
    there is no columnar path). The result is ``LineFormat.parse``'s."""

    def __init__(self, name, description, detect, read_line, read_columns, *, structural: bool = False,
                 proxy: bool = False) -> None:
        super().__init__(name, description, detect, read_line, structural=structural, proxy=proxy)
        self.read_columns = read_columns

    def parse(self, lines: Iterable[str], source: str, *, timezone: str | dt.tzinfo | None = None) -> ParsedLog:
        table = LineTable.of(lines)
        if table is None:
            return super().parse(lines, source, timezone=timezone)
        zone = timezone if isinstance(timezone, dt.tzinfo) else parse_timezone(timezone)
        return parse_columns(self.NAME, table, source, zone, lambda t, z: (self.read_columns(t, z), self.read_line))


def scatter_mask(count: int, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A bool array of ``count`` False with ``values`` at ``rows``."""
    out = np.zeros(count, bool)
    out[rows] = values
    return out


@dataclass
class IsoTimes:
    """Times written ``YYYY-MM-DDTHH:MM:SS[.f{1,9}][Z|+HH:MM|-HH:MM]`` (see ``iso_times``)."""

    wall_ns: np.ndarray  # the wall-clock time to the second, as nanoseconds since the epoch
    nanos: np.ndarray  # the fraction, in nanoseconds (all its digits)
    micros: np.ndarray  # the fraction cut to microseconds, as ``datetime.fromisoformat`` keeps it
    offset_ns: np.ndarray  # the zone's offset east of UTC (0 when there is none)
    zoned: np.ndarray  # a zone was written
    ok: np.ndarray  # the text is exactly that, a real time of YEAR_MIN-YEAR_MAX, an offset < 24 h


def iso_times(table: LineTable, at: np.ndarray, stop: np.ndarray) -> IsoTimes:
    """Read ``[at, stop)`` of each row as an ISO 8601 time in the strict form above."""
    count = len(at)
    text = table.bytes_at(at, 35)
    width = stop - at

    def number(offset: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        value, ok = np.zeros(count, np.int64), np.ones(count, bool)
        for column in range(offset, offset + size):
            digit = text[:, column].astype(np.int64) - 48
            ok &= (digit >= 0) & (digit <= 9)
            value = value * 10 + digit
        return value, ok

    def char(offset: int, value: str) -> np.ndarray:
        return text[:, offset] == ord(value)

    (year, y_ok), (month, m_ok), (day, d_ok) = number(0, 4), number(5, 2), number(8, 2)
    (hour, h_ok), (minute, i_ok), (second, s_ok) = number(11, 2), number(14, 2), number(17, 2)
    ok = y_ok & m_ok & d_ok & h_ok & i_ok & s_ok & char(4, "-") & char(7, "-") & char(10, "T") & char(13, ":") & char(16, ":")
    # the fraction: "." and 1-9 digits
    fraction = np.zeros(count, np.int64)
    digits_seen = np.zeros(count, np.int64)
    dotted = char(19, ".")
    running = dotted.copy()
    for column in range(20, 29):
        digit = text[:, column].astype(np.int64) - 48
        more = running & (column < width) & (digit >= 0) & (digit <= 9)
        fraction = np.where(more, fraction * 10 + digit, fraction)
        digits_seen += more
        running &= more
    ok &= ~dotted | (digits_seen >= 1)
    nanos = fraction * 10 ** (9 - np.clip(digits_seen, 0, 9))
    micros = nanos // 1000
    rest = 19 + np.where(dotted, 1 + digits_seen, 0)  # where the zone begins
    rest_width = width - rest
    pick = np.clip(rest, 0, 34)[:, None] + np.arange(6)
    zone = np.take_along_axis(text, np.clip(pick, 0, 34), axis=1).astype(np.int64)
    utc = (rest_width == 1) & (zone[:, 0] == ord("Z"))
    signed = (rest_width == 6) & ((zone[:, 0] == ord("+")) | (zone[:, 0] == ord("-"))) & (zone[:, 3] == ord(":"))
    zone_digits = zone[:, [1, 2, 4, 5]] - 48
    signed &= ((zone_digits >= 0) & (zone_digits <= 9)).all(axis=1)
    zone_h, zone_m = zone_digits[:, 0] * 10 + zone_digits[:, 1], zone_digits[:, 2] * 10 + zone_digits[:, 3]
    signed &= (zone_h <= 23) & (zone_m <= 59)
    ok &= (rest_width == 0) | utc | signed
    ok &= width <= 35
    offset = np.where(signed, np.where(zone[:, 0] == ord("-"), -1, 1) * (zone_h * 3600 + zone_m * 60), 0) * 1_000_000_000
    wall, real = civil_ns(year, month, day, hour, minute, second)
    return IsoTimes(wall, nanos, micros, offset, utc | signed, ok & real)
