"""The JSON-lines format: one JSON object per line, with the usual field names of close logs.

    {"ts": "2026-11-28T03:00:01.123Z", "event": "disconnect", "connectionId": "a1", "code": 1006, "reason": "", "duration": 60012}

Field names (the first present wins):

- connection_id: connectionId, connection_id, id, connId
- code: code, closeCode, close_code
- reason: reason, closeReason, close_reason (an error event also takes error, err, errorMessage)
- duration_s: duration, duration_ms, durationMs (milliseconds); duration_s, duration_sec (seconds)
- client_ip: ip, remoteAddress, client_ip, remote_addr, clientIp
- user_agent: userAgent, user_agent, ua
- client_id: clientId, client_id, userId, user_id, deviceId, device_id (who the user is, across
  connections: reconnects are followed by it)
- ts: ts, timestamp, time, @timestamp, datetime: ISO 8601 text, or epoch numbers whose unit
  (s, ms, us, ns) is told by their magnitude; without any, the line prefix's time if any
- event: event, type, msg, message: "disconnect", "close", "closed", "connection closed", ...
  => disconnect; "error", "failed" => error; "connect", "open", "connected" => connect. A
  record with a close code and no recognized event is a disconnect (unless it has an
  ``event``/``type`` naming something else, e.g. "message").

One level of nesting is looked into (``{"ws": {"code": 1006}}``); top-level fields win, then
the object written first. A log prefix before the object is tolerated: the object starts at the
first ``{`` of the line. Objects that are not WebSocket lifecycle records (other application
logs) are ignored lines.

Speed: lines that are one flat JSON object each (the bulk of a close log) are decoded by
pyarrow.json in blocks, on both cores, and typed column by column with pyarrow.compute and numpy
(see "the Arrow path" below). Every other line, and every row whose value the Arrow path cannot
vouch for, goes through the orjson path: objects decoded line by line in chunks, fields pulled
column-wise, per-value conversion only for columns holding unusual types. Both paths give the
same rows, counts and examples (``parse(..., fast_path=False)`` is the orjson path alone).
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import repeat
from typing import Any

import numpy as np
import orjson
import pandas as pd

from runbook.logs.common import (
    MOBILE_USER_AGENT,
    NAT_NS,
    LogText,
    MalformedCollector,
    build_frame,
    concat_frames,
    gc_paused,
    last_timestamp_in,
    naive_timezone,
    out_of_range,
    parse_timestamps,
    range_problem,
    scrub_surrogates,
    to_lines,
    to_log_text,
)
from runbook.logs.lines import parse_timezone
from runbook.observations import EVENTS, ParsedLog

try:  # the fast path; without pyarrow every line goes through orjson
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pa_json
except ImportError:  # pragma: no cover - pyarrow is a declared dependency
    pa = pc = pa_json = None

NAME = "jsonlines"

CHUNK_LINES = 50_000  # bounds memory: one chunk's decoded objects live at a time

CONNECTION_ID_FIELDS = ("connectionId", "connection_id", "id", "connId")
CODE_FIELDS = ("code", "closeCode", "close_code")
REASON_FIELDS = ("reason", "closeReason", "close_reason")
ERROR_FIELDS = ("error", "err", "errorMessage", "error_message")
DURATION_MS_FIELDS = ("duration", "duration_ms", "durationMs")
DURATION_S_FIELDS = ("duration_s", "duration_sec")
CLIENT_IP_FIELDS = ("ip", "remoteAddress", "client_ip", "remote_addr", "clientIp")
USER_AGENT_FIELDS = ("userAgent", "user_agent", "ua")
CLIENT_ID_FIELDS = ("clientId", "client_id", "userId", "user_id", "deviceId", "device_id")
TS_FIELDS = ("ts", "timestamp", "time", "@timestamp", "datetime")
EVENT_NAME_FIELDS = ("event", "type")  # name the event; anything else there is not a lifecycle record
EVENT_TEXT_FIELDS = ("msg", "message")  # describe it in words
KNOWN_FIELDS = frozenset(
    CONNECTION_ID_FIELDS + CODE_FIELDS + REASON_FIELDS + ERROR_FIELDS + DURATION_MS_FIELDS + DURATION_S_FIELDS
    + CLIENT_IP_FIELDS + USER_AGENT_FIELDS + CLIENT_ID_FIELDS + TS_FIELDS + EVENT_NAME_FIELDS + EVENT_TEXT_FIELDS
)

_OBJECT_START = re.compile(r"\{\s*(?:\"|\}|$)")  # JSON object text, not "{port: 8080}" in prose
_NUMERIC = re.compile(r"\s*-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\s*")
_NONE_TYPE = type(None)
_MAX_INT64 = 2**63 - 1


def classify_event(text: str) -> str | None:
    """The lifecycle event an event name or log message describes, or None.

    Order matters: "disconnect" and "connection closed" contain "connect"; "closed with error"
    is a close.
    """
    lowered = text.lower()
    if "disconnect" in lowered or "close" in lowered or "terminat" in lowered:
        return "disconnect"
    if "error" in lowered or "fail" in lowered:
        return "error"
    if "connect" in lowered or "open" in lowered:
        return "connect"
    return None


def detect(sample: list[str]) -> float:
    """Score 0..1 that ``sample`` is this format: JSON objects, some of them WebSocket records."""
    nonblank = objects = records = 0
    for line in sample:
        if not line.strip():
            continue
        nonblank += 1
        start = line.find("{")
        if start < 0:
            continue
        try:
            obj = loads(line[start:])
        except orjson.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        objects += 1
        if _record_event(_flatten_one_level(obj, obj.keys() - KNOWN_FIELDS)) is not None:
            records += 1
    if not records:
        return 0.0
    return 0.5 + 0.5 * objects / nonblank


def loads(text: str) -> Any:
    """``orjson.loads``, also for text holding lone surrogates (decoded with surrogateescape):
    those become U+FFFD rather than failing the line."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        if text.isascii():
            raise
        scrubbed = scrub_surrogates(text)
        if scrubbed == text:  # no surrogate: the text is bad JSON
            raise
        return orjson.loads(scrubbed)


def _record_event(obj: dict[str, Any]) -> str | None:
    """The event of one decoded object by the rules of ``parse`` (used for detection)."""
    named = False
    for field_name in EVENT_NAME_FIELDS + EVENT_TEXT_FIELDS:
        value = obj.get(field_name)
        if isinstance(value, str):
            event = classify_event(value)
            if event:
                return event
        named = named or (field_name in EVENT_NAME_FIELDS and value is not None)
    if not named and any(obj.get(name) is not None for name in CODE_FIELDS):
        return "disconnect"
    return None


def _flatten_one_level(obj: dict[str, Any], containers: Collection[str]) -> dict[str, Any]:
    """``obj`` with the fields of its objects under ``containers`` ({"ws": {...}}) lifted up;
    top-level fields win, then the container written first (so a row never depends on the
    other lines it was decoded with)."""
    flat = obj
    for container, value in obj.items():
        if type(value) is dict and container in containers:
            if flat is obj:
                flat = dict(obj)
            for key, inner in value.items():
                flat.setdefault(key, inner)
    return flat


def parse(lines: Iterable[str], source: str, *, fast_path: bool = True, timezone: str | None = None) -> ParsedLog:
    """Parse with naive timestamps read in ``timezone`` (``log_timezone``: UTC when None); see ``_parse``."""
    with naive_timezone(parse_timezone(timezone)):
        return _parse(lines, source, fast_path=fast_path)


def _parse(lines: Iterable[str], source: str, *, fast_path: bool = True) -> ParsedLog:
    """Parse JSON-lines close logs into the normalized close-log frame.

    ``lines``: the log's lines (or its whole text, ``str`` or ``bytes``); ``source`` names it in
    every row. Lines that are not JSON objects, and objects that are not WebSocket lifecycle
    records, are counted in ``ignored_lines``; JSON text that does not decode, and records with an
    unusable code, duration or timestamp, in ``malformed_count`` with examples. Rows keep their
    line numbers and file order. ``fast_path=False`` decodes every line with orjson (the reference
    the Arrow path is tested against). Never raises on content.
    """
    arrow = fast_path and pa_json is not None
    log = to_log_text(lines) if arrow else to_lines(lines)
    malformed = MalformedCollector()
    ignored = 0
    frames = []
    with gc_paused():
        if arrow:
            frames, ignored, lines_total = _parse_arrow(log, source, malformed)
        else:
            lines_total = len(log)
            for start in range(0, len(log), CHUNK_LINES):
                stop = min(len(log), start + CHUNK_LINES)
                frame, chunk_ignored = _parse_lines(log[start:stop], range(start, stop), source, malformed)
                frames.append(frame)
                ignored += chunk_ignored
    return ParsedLog(
        source=source,
        format=NAME,
        frame=concat_frames(frames),
        lines_total=lines_total,
        ignored_lines=ignored,
        malformed_count=malformed.count,
        malformed_examples=malformed.examples,
    )


def _parse_lines(chunk: list[str], line_index: Sequence[int], source: str, malformed: MalformedCollector):
    """The orjson path: decode ``chunk`` (lines of the log at 0-based ``line_index``) one object
    per line. Returns the chunk's frame and its count of ignored lines."""
    ignored = 0
    prefixes: list[str] | None = None
    joined = "\n".join(chunk)
    if joined.count("\n{") + joined.startswith("{") == len(chunk):  # every line is a bare object
        texts, positions = chunk, list(range(len(chunk)))
    else:  # prefixed or mixed lines: the object starts at the first "{"
        texts, positions, prefixes = [], [], []
        for offset, line in enumerate(chunk):
            brace = line.find("{")
            if brace < 0 or not _OBJECT_START.match(line, brace):
                ignored += bool(line.strip())
                continue
            texts.append(line[brace:] if brace else line)
            positions.append(offset)
            prefixes.append(line[:brace])

    try:
        objects = list(map(orjson.loads, texts))
    except orjson.JSONDecodeError:  # a bad line somewhere: decode one by one to find them
        objects = []
        for text, offset in zip(texts, positions):
            try:
                objects.append(loads(text))
            except orjson.JSONDecodeError as exc:
                objects.append(None)
                if _OBJECT_START.match(text):
                    malformed.add(line_index[offset] + 1, chunk[offset], f"invalid JSON: {exc}")
                else:  # "{port: 8080}": prose with a brace, not a JSON record
                    ignored += 1
        keep = [k for k, obj in enumerate(objects) if obj is not None]
        objects = [objects[k] for k in keep]
        positions = [positions[k] for k in keep]
        prefixes = None if prefixes is None else [prefixes[k] for k in keep]
    records = _Records(objects)
    containers = set(records.containers())
    if containers:  # fields one level down, e.g. {"ws": {"code": 1006}}
        objects = [_flatten_one_level(obj, containers) for obj in objects]
        records = _Records(objects)
    event = records.events()
    event_array = np.asarray(event, dtype=object)
    is_record = event_array != None  # noqa: E711 - elementwise
    ignored += int(np.count_nonzero(~is_record))
    if not is_record.all():
        chosen = np.flatnonzero(is_record).tolist()
        records = _Records([objects[k] for k in chosen])
        event = [event[k] for k in chosen]
        event_array = event_array[is_record]
        positions = [positions[k] for k in chosen]
        prefixes = None if prefixes is None else [prefixes[k] for k in chosen]
    count = len(event)
    problems: dict[int, str] = {}  # row -> why it is malformed (the first problem found)

    code, code_missing = _codes(records.column(CODE_FIELDS), count, problems)
    duration_s = _durations(records.column(DURATION_MS_FIELDS), records.column(DURATION_S_FIELDS), count, problems)
    reason = _texts(records.column(REASON_FIELDS), count)
    errors = np.flatnonzero(event_array == "error").tolist()
    if errors:  # an error event without a reason: its error message
        error_records = _Records([records.objects[k] for k in errors])
        error_text = _texts(error_records.column(ERROR_FIELDS), len(errors), message_of_objects=True)
        reason = list(reason)
        for k, text in zip(errors, error_text):
            if reason[k] is None:
                reason[k] = text
    ts_ns = _timestamps(records.column(TS_FIELDS), prefixes, count, problems)
    for k in np.flatnonzero(out_of_range(code, code_missing, duration_s)).tolist():
        problems.setdefault(k, range_problem(int(code[k]), bool(code_missing[k]), float(duration_s[k])))

    bad = sorted(problems)
    for k in bad:
        malformed.add(line_index[positions[k]] + 1, chunk[positions[k]], problems[k])
    rows = np.ones(count, bool)
    rows[bad] = False
    if not bad:
        rows = slice(None)  # keep every row: the columns go to the frame as they are
    frame = build_frame(
        source=source,
        line_no=np.asarray(line_index, np.int64)[positions][rows] + 1,
        ts_ns=ts_ns[rows],
        event=_selected(event, rows),
        connection_id=_selected(_texts(records.column(CONNECTION_ID_FIELDS), count), rows),
        code=code[rows],
        code_missing=code_missing[rows],
        reason=_selected(reason, rows),
        duration_s=duration_s[rows],
        client_ip=_selected(_texts(records.column(CLIENT_IP_FIELDS), count), rows),
        user_agent=_selected(_texts(records.column(USER_AGENT_FIELDS), count), rows),
        client_id=_selected(_texts(records.column(CLIENT_ID_FIELDS), count), rows),
    )
    return frame, ignored


# --- the Arrow path ------------------------------------------------------------------------------
#
# pyarrow.json decodes whole blocks of lines in C++ on all cores, several times as fast as orjson
# line by line, and leaves the fields we read in typed columns. It stands in for orjson
# only where both must agree: lines that are one flat JSON object each. Everything else takes the
# orjson path, line by line, and the rows are merged back by line number:
#
# - lines that do not start with "{" (prefixes, blank lines, prose, other JSON values), and lines
#   with more than one "{" (a nested object may hold our fields one level down, which the orjson
#   path looks into; a brace in a string is rare);
# - NaN and Infinity literals and arrays nested 1024 deep, which RapidJSON (inside Arrow) accepts
#   and orjson rejects; invalid UTF-8, which Arrow would pass on;
# - lines Arrow rejects (bad JSON, a field with two types, a duplicated key). A read that fails
#   is never diagnosed from Arrow's error message (its wording is no contract): the failed
#   block's lines are decoded by orjson, which tells which lines are bad JSON, what fields and
#   types the block holds and which values the schema cannot take; those lines go to the orjson
#   path and the rest is read again with the schema updated. A read that still fails is halved
#   down to pieces of ``_MIN_PIECE_LINES``, and pieces that fail alone take the orjson path;
# - rows whose value orjson might read otherwise or call malformed (a code "abc", a float where
#   an id is expected, an epoch past 2**53 that may have been an integer, a timestamp pandas
#   rejects): the "suspect" rows, decided again by the orjson path, which also words the problem.

CHUNK_BYTES = 8 << 20  # the Arrow path reads the log in blocks of about this size
_ARROW_BLOCK_BYTES = 1 << 20  # pyarrow's unit of parallel work (its block_size)
_READERS = 2  # chunks decoded ahead, each in a worker thread of its own
_PIECE_LINES = 2048  # a chunk Arrow rejects is read again in pieces of this many lines
_MIN_PIECE_LINES = 64  # a piece Arrow rejects even after orjson sorted it is halved down to this many lines
_MAX_REJECTED_READS = 64  # per chunk: past this, the rest of a troubled chunk goes line by line
_MAX_DEPTH = 1024  # orjson's nesting limit; Arrow has none
_SAMPLE_LINES = 64  # lines decoded by orjson per chunk to learn the fields' JSON types
_FEW_WORDS = 256  # distinct event texts classified in Python; more, with pyarrow.compute
_ARROW_FIELDS = tuple(dict.fromkeys(
    TS_FIELDS + EVENT_NAME_FIELDS + EVENT_TEXT_FIELDS + CONNECTION_ID_FIELDS + CODE_FIELDS + REASON_FIELDS
    + ERROR_FIELDS + DURATION_MS_FIELDS + DURATION_S_FIELDS + CLIENT_IP_FIELDS + USER_AGENT_FIELDS
    + CLIENT_ID_FIELDS
))
_ARROW_FIELD_SET = frozenset(_ARROW_FIELDS)
_DURATION_FIELDS = frozenset(DURATION_MS_FIELDS + DURATION_S_FIELDS)
_NON_FINITE = re.compile(rb"[:,\[]\s*-?(?:NaN|Inf)")  # RapidJSON's NaN, Inf, -Infinity as values
# ISO 8601 texts that Arrow's cast and pandas' ISO8601 parser read alike (checked by the tests);
# every other text goes to parse_timestamps, as on the orjson path.
_STRICT_ISO = (
    r"^(?:19|20)[0-9]{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(?:\.[0-9]{1,9})?(?:Z|[+-](?:0[0-9]|1[0-4]):[0-5][0-9])$"
)
_EXACT_FLOAT = 2.0**53  # integers beyond this may not survive a trip through a double
_INT64_MIN = np.iinfo(np.int64).min
_EVENT_INDEX = {event: index for index, event in enumerate(EVENTS)}
_ERROR_INDEX = _EVENT_INDEX["error"]


class _Chunk:
    """Consecutive lines of the log: a slice of its UTF-8 bytes, and its lines as strings when
    the caller gave strings (they are decoded from the bytes otherwise)."""

    def __init__(
        self, start: int, data: bytes, low: int, high: int, scratch: np.ndarray, lines: list[str] | None = None
    ) -> None:
        self.start = start  # 0-based index of the first line in the log
        self.data, self.low, self.high = data, low, high
        self.bytes = np.frombuffer(data, np.uint8)[low:high]
        if len(scratch) < high - low:
            scratch = np.empty(high - low, bool)
        # byte tests write here, a buffer shared with the next chunk (valid until it is made):
        # a fresh 8 MB array per test costs more in page faults than the test itself
        self.scratch = scratch[: high - low]
        newlines = np.flatnonzero(self.found(ord("\n")))
        self.starts = np.concatenate(([0], newlines + 1))  # of each line, relative to low
        self.ends = np.append(newlines, high - low)
        self.count = len(self.starts)
        self._lines = lines

    def found(self, byte: int, stop: int | None = None) -> np.ndarray:
        """Where the chunk's bytes (up to ``stop``) equal ``byte``: a view of the scratch buffer."""
        view = self.bytes if stop is None else self.bytes[:stop]
        return np.equal(view, byte, out=self.scratch[: len(view)])

    def raw_line(self, offset: int) -> bytes:
        return self.data[self.low + self.starts[offset] : self.low + self.ends[offset]]

    def line(self, offset: int) -> str:
        if self._lines is not None:
            return self._lines[offset]
        return self.raw_line(offset).decode("utf-8", errors="replace")

    def text(self, offsets: np.ndarray) -> _Text:
        """The lines at ``offsets``, each ended by "\\n" (a view of the chunk when that is all of
        them and the log has the last one's "\\n")."""
        if len(offsets) < self.count:
            return _Text.of([self.raw_line(k) for k in offsets.tolist()])
        if self.high < len(self.data):  # data[high] is the "\\n" that ends the chunk's last line
            buffer = pa.py_buffer(self.data)[self.low : self.high + 1]
        else:
            buffer = pa.py_buffer(self.data[self.low : self.high] + b"\n")
        return _Text(buffer, self.starts, self.ends)


class _Text:
    """Lines in one buffer, each ended by "\\n" (as pyarrow.json's ParseOptions asks of its
    input), with where each starts and ends: any run of them is a slice of the buffer, no copy."""

    def __init__(self, buffer: pa.Buffer, starts: np.ndarray, ends: np.ndarray) -> None:
        self.buffer, self.starts, self.ends = buffer, starts, ends

    @classmethod
    def of(cls, lines: list[bytes]) -> _Text:
        lengths = np.fromiter(map(len, lines), np.int64, len(lines))
        starts = np.cumsum(lengths + 1) - (lengths + 1)
        return cls(pa.py_buffer(b"\n".join([*lines, b""])), starts, starts + lengths)

    def __len__(self) -> int:
        return len(self.starts)

    def lines(self, first: int, stop: int) -> pa.Buffer:
        """Lines ``first`` to ``stop`` (excluded), with the "\\n" of the last."""
        return self.buffer[self.starts[first] : self.ends[stop - 1] + 1]

    def split(self, first: int, stop: int) -> list[bytes]:
        """Lines ``first`` to ``stop`` (excluded) as bytes, without their "\\n"."""
        return self.buffer[self.starts[first] : self.ends[stop - 1]].to_pybytes().split(b"\n")

    def longest(self, first: int, stop: int) -> int:
        """The length of the longest of lines ``first`` to ``stop`` (excluded)."""
        return int((self.ends[first:stop] - self.starts[first:stop]).max())


def _chunks(log: LogText | list[str]) -> Iterator[tuple[_Chunk, bool]]:
    """The log in chunks, each with whether its bytes are known to be valid UTF-8."""
    scratch = np.empty(0, bool)
    if isinstance(log, LogText):
        data, last, start, position = log.data, log.end, 0, 0
        utf8 = data.isascii()
        while data and position <= last:
            end = data.find(b"\n", position + CHUNK_BYTES, last)
            chunk = _Chunk(start, data, position, last if end < 0 else end, scratch)
            yield chunk, utf8
            start, position, scratch = start + chunk.count, chunk.high + 1, chunk.scratch.base
        return
    for start in range(0, len(log), CHUNK_LINES):
        lines = log[start : start + CHUNK_LINES]
        # surrogatepass: a lone surrogate becomes invalid UTF-8, so its line takes the orjson path
        block = "\n".join(lines).encode("utf-8", "surrogatepass")
        chunk = _Chunk(start, block, 0, len(block), scratch, lines)
        yield chunk, block.isascii()
        scratch = chunk.scratch.base


def _parse_arrow(
    log: LogText | list[str], source: str, malformed: MalformedCollector
) -> tuple[list[pd.DataFrame], int, int]:
    """The Arrow path over the whole log, chunk by chunk. pyarrow decodes the next chunks in
    worker threads (it releases the GIL) while this one's rows are typed: both cores stay busy.
    Returns the frames, the lines ignored and the lines in all (the chunks' lines: counting the
    newlines of a large log again took 0.08 s per 180 MB)."""
    fields = _Fields()
    frames: list[pd.DataFrame] = []
    ignored = lines = 0
    pending: deque[_ChunkJob] = deque()
    pool: ThreadPoolExecutor | None = None
    try:
        for chunk, utf8 in _chunks(log):
            lines += chunk.count
            if pending and pool is None:  # more than one chunk: worth the threads
                pool = ThreadPoolExecutor(max_workers=_READERS, thread_name_prefix="jsonlines-arrow")
            pending.append(_ChunkJob(chunk, utf8, fields, pool))
            if len(pending) > _READERS:
                ignored += pending.popleft().finish(source, malformed, fields, frames)
        while pending:
            ignored += pending.popleft().finish(source, malformed, fields, frames)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return frames, ignored, lines


class _ChunkJob:
    """One chunk on the Arrow path: its lines sorted out, and their decoding started."""

    def __init__(self, chunk: _Chunk, utf8: bool, fields: _Fields, pool: ThreadPoolExecutor | None):
        self.chunk = chunk
        flat = _flat_objects(chunk, utf8)
        self.offsets = np.flatnonzero(flat)  # the lines Arrow decodes
        self.slow = np.flatnonzero(~flat).tolist()  # the lines orjson decodes
        self.future: Future | None = None
        if len(self.offsets):
            fields.learn_lines([chunk.raw_line(k) for k in self.offsets[:_SAMPLE_LINES].tolist()])
            self.plan = fields.plan()  # what the log had shown when the read started
            self.text = chunk.text(self.offsets)
            if pool is not None:
                self.future = pool.submit(_read_ahead, self.plan, self.text)

    def finish(self, source: str, malformed: MalformedCollector, fields: _Fields, frames: list) -> int:
        """Type the decoded rows, send the rest through orjson, add the chunk's frame to
        ``frames`` (rows in file order); returns the chunk's count of ignored lines."""
        chunk, slow, ignored, chunk_frames = self.chunk, self.slow, 0, []
        if len(self.offsets):
            table, done = self.future.result() if self.future is not None else _read_ahead(self.plan, self.text)
            if table is None and fields.plan() != self.plan:  # an earlier chunk taught something since
                table, done = _read_ahead(fields.plan(), self.text)
            if table is not None:
                pieces, rejected = [(table, self.offsets, done)], []
            else:
                pieces, rejected = _read_rejected(fields, self.text, self.offsets)
                pieces = [(table, rows, _type_in_advance(table)) for table, rows in _joined(pieces)]
            slow.extend(rejected)
            for table, rows, done in pieces:
                frame, table_ignored, suspect = _arrow_frame(table, done, chunk.start + rows + 1, source)
                chunk_frames.append(frame)
                ignored += table_ignored
                slow.extend(rows[suspect].tolist())
        if slow:
            slow.sort()
            frame, slow_ignored = _parse_lines(
                [chunk.line(k) for k in slow], [chunk.start + k for k in slow], source, malformed
            )
            chunk_frames.append(frame)
            ignored += slow_ignored
        chunk_frames = [frame for frame in chunk_frames if len(frame)]
        if len(chunk_frames) > 1:  # back into file order
            merged = concat_frames(chunk_frames)
            chunk_frames = [merged.iloc[np.argsort(merged["line_no"].to_numpy(np.int64), kind="stable")]]
        frames.extend(chunk_frames)
        return ignored


def _flat_objects(chunk: _Chunk, utf8: bool) -> np.ndarray:
    """Per line of the chunk, whether Arrow may decode it in orjson's stead (see the notes above):
    it starts with "{", holds no other "{", no NaN or Infinity literal, fewer than 1024 "[", and
    is valid UTF-8. Vectorized over the chunk's bytes."""
    view, starts, count = chunk.bytes, chunk.starts, chunk.count
    flat = chunk.ends > starts
    flat[flat] = view[starts[flat]] == ord("{")

    def lines_of(hits: np.ndarray) -> np.ndarray:
        return np.searchsorted(starts, np.flatnonzero(hits), "right") - 1

    def per_line(hits: np.ndarray) -> np.ndarray:
        return np.bincount(lines_of(hits), minlength=count)

    braces = chunk.found(ord("{"))
    if not flat.all() or np.count_nonzero(braces) != count:
        flat &= per_line(braces) == 1
    brackets = chunk.found(ord("["))
    if np.count_nonzero(brackets) >= _MAX_DEPTH:
        flat &= per_line(brackets) < _MAX_DEPTH
    for literal in (b"NaN", b"Inf"):
        at = np.flatnonzero(chunk.found(literal[0], max(len(view) - 2, 0)))
        at = at[(view[at + 1] == literal[1]) & (view[at + 2] == literal[2])]
        for k in np.unique(np.searchsorted(starts, at, "right") - 1).tolist():
            if flat[k] and _NON_FINITE.search(chunk.raw_line(k)):
                flat[k] = False
    if not utf8 and not _is_utf8(view.tobytes()):
        for k in np.unique(lines_of(np.greater_equal(view, 0x80, out=chunk.scratch))).tolist():
            flat[k] = flat[k] and _is_utf8(chunk.raw_line(k))
    return flat


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _read_ahead(plan: _Plan, text: _Text) -> tuple[pa.Table | None, dict]:
    """``_read`` of all of ``text``, then ``_type_in_advance``: the work of the worker thread."""
    table = _read(plan, text, 0, len(text))
    return table, (_type_in_advance(table) if table is not None else {})


def _read(plan: _Plan, text: _Text, first: int, stop: int) -> pa.Table | None:
    """Lines ``first`` to ``stop`` of ``text`` decoded by pyarrow.json with ``plan``'s schema: a
    table of one row per line, or None when Arrow rejects them (whatever its message says).

    The block size exceeds the longest line: pyarrow.json cuts its input into blocks at line
    ends and needs one in every block (ReadOptions.block_size), so no line ever straddles two."""
    schema, unexpected = plan
    block_size = max(_ARROW_BLOCK_BYTES, text.longest(first, stop) + 1)
    try:
        table = pa_json.read_json(
            pa.BufferReader(text.lines(first, stop)),
            read_options=pa_json.ReadOptions(block_size=block_size),
            parse_options=pa_json.ParseOptions(
                explicit_schema=schema, newlines_in_values=False, unexpected_field_behavior=unexpected
            ),
        )
    except pa.ArrowException:  # bad JSON, a type the schema does not allow, a duplicated key...
        return None
    return table if table.num_rows == stop - first else None


def _read_rejected(fields: _Fields, text: _Text, offsets: np.ndarray):
    """Decode the chunk's lines at ``offsets`` (``text``) after Arrow rejected them together.
    Returns the decoded pieces as (table, the offsets of its rows), in order, and the offsets of
    the lines left to the orjson path.

    Arrow's error message is not read. The lines are read again in pieces of ``_PIECE_LINES``
    (after two pieces in a row fail, the rest of the chunk is one piece). orjson decodes the
    lines of a piece Arrow rejects: the lines orjson rejects go to the orjson path; the fields
    learn from the objects (a field seen for the first time, a wider type, other fields), and
    the lines holding a value the schema cannot take even so (a text among numbers, an object
    where a text goes) go to the orjson path too. The rest of the piece is read again, halved
    while Arrow rejects it (a duplicated key: orjson keeps the last value), down to
    ``_MIN_PIECE_LINES`` lines that go to the orjson path when they fail alone. Past
    ``_MAX_REJECTED_READS`` failed reads, the rest of the chunk goes to the orjson path."""
    pieces: list[tuple[pa.Table, np.ndarray]] = []
    read = np.zeros(len(offsets), bool)  # the lines in pieces
    failures = 0

    def attempt(plan: _Plan, lines: _Text, first: int, stop: int, rows: np.ndarray) -> bool:
        """Read ``lines`` [first, stop), which are the chunk's lines ``rows``."""
        nonlocal failures
        table = _read(plan, lines, first, stop) if failures <= _MAX_REJECTED_READS else None
        if table is None:
            failures += 1
            return False
        pieces.append((table, offsets[rows]))
        read[rows] = True
        return True

    start, streak = 0, 0  # streak: pieces failed in a row
    while start < len(offsets) and failures <= _MAX_REJECTED_READS:
        stop = len(offsets) if streak >= 2 else min(start + _PIECE_LINES, len(offsets))
        if streak < 2 and attempt(fields.plan(), text, start, stop, np.arange(start, stop)):
            start, streak = stop, 0
            continue
        streak += 1
        lines = text.split(start, stop)
        objects, rows = _decode(lines)
        if 0 < len(rows) < len(lines):  # bad JSON: perhaps all that Arrow rejected
            if attempt(fields.plan(), _Text.of([lines[k] for k in rows.tolist()]), 0, len(rows), start + rows):
                start = stop
                continue
        rows = rows[~fields.learn(objects)]  # the lines of the piece Arrow may read
        piece, plan = _Text.of([lines[k] for k in rows.tolist()]), fields.plan()
        todo = [(0, len(rows))] if len(rows) else []  # runs [first, last) of piece to read, the next one last
        while todo:
            first, last = todo.pop()
            if not attempt(plan, piece, first, last, start + rows[first:last]) and last - first > _MIN_PIECE_LINES:
                middle = (first + last) // 2
                todo += [(middle, last), (first, middle)]
        start = stop
    return pieces, offsets[~read].tolist()


def _decode(lines: list[bytes]) -> tuple[list[dict[str, Any]], np.ndarray]:
    """The objects of the lines orjson decodes, and the indexes of those lines."""
    objects: list[dict[str, Any]] = []
    rows: list[int] = []
    for start in range(0, len(lines), _SAMPLE_LINES):
        part = lines[start : start + _SAMPLE_LINES]
        try:
            objects += list(map(orjson.loads, part))
            rows += range(start, start + len(part))
        except orjson.JSONDecodeError:  # bad JSON among them: one by one
            for k, line in enumerate(part, start):
                try:
                    objects.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    continue
                rows.append(k)
    return objects, np.array(rows, np.int64)


def _joined(pieces: list[tuple[pa.Table, np.ndarray]]) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """Consecutive pieces with the same schema as one table (a frame per piece costs more than
    the piece)."""
    run: list[tuple[pa.Table, np.ndarray]] = []
    for piece in [*pieces, None]:
        if run and (piece is None or piece[0].schema != run[0][0].schema):
            yield pa.concat_tables([table for table, _ in run]), np.concatenate([rows for _, rows in run])
            run = []
        if piece is not None:
            run.append(piece)


_Plan = tuple  # (the explicit schema, unexpected_field_behavior): how pyarrow.json reads a block


class _Fields:
    """What the log has shown so far of the fields we read, as orjson decoded it (Arrow's error
    messages are never read): their JSON types (as Arrow types), which ones appear at all, and
    whether lines carry other fields too.

    pyarrow.json gets an explicit schema of our fields (``plan``). A log of nothing but our
    fields is read with only the fields seen and ``unexpected_field_behavior="error"``: the
    cheapest read, and a field not seen yet fails the read rather than being skipped. Once other
    fields show up, every one of our fields goes in the schema, those not seen yet typed null,
    and other fields are skipped unread (``"ignore"``). A read that fails sends its lines
    through ``learn`` (``_read_rejected``): the types only widen (an integer column meeting a
    float becomes float), so what was learned stays true of the lines read before.
    """

    def __init__(self) -> None:
        self.types: dict[str, pa.DataType] = dict.fromkeys(_ARROW_FIELDS, pa.null())
        self.seen: set[str] = set()
        self.others = False  # lines have fields we do not read

    def plan(self) -> _Plan:
        names = _ARROW_FIELDS if self.others else [name for name in _ARROW_FIELDS if name in self.seen]
        return pa.schema([(name, self.types[name]) for name in names]), "ignore" if self.others else "error"

    def learn_lines(self, lines: list[bytes]) -> None:
        """``learn`` from the objects these lines hold (lines orjson rejects teach nothing)."""
        objects = []
        for line in lines:
            try:
                objects.append(orjson.loads(line))  # a dict: the line starts with "{"
            except orjson.JSONDecodeError:
                continue
        self.learn(objects)

    def learn(self, objects: list[dict[str, Any]]) -> np.ndarray:
        """Take in the fields of these objects and widen their types to hold their values.
        Returns which objects hold a value the schema cannot take even so."""
        present = set().union(*objects)
        ours = present & _ARROW_FIELD_SET
        self.seen |= ours
        self.others = self.others or len(ours) < len(present)
        misfits = np.zeros(len(objects), bool)
        for name in ours:
            values = list(map(dict.get, objects, repeat(name)))
            kinds = set(map(type, values)) - {_NONE_TYPE}
            held = _KINDS_HELD[self.types[name]]
            if not kinds or kinds <= held and not self.types[name] == pa.int64():
                continue
            arrow_type = _arrow_type(name, held | kinds)
            if arrow_type is None and not held:  # values of several kinds: the first one's type
                arrow_type = _arrow_type(name, {next(type(v) for v in values if v is not None)})
            if arrow_type is not None:
                self.types[name] = arrow_type
            allowed = _KINDS_HELD[self.types[name]] | {_NONE_TYPE}
            # orjson reads integers from -2**63 to 2**64 - 1: int64 takes them up to 2**63 - 1
            int64 = self.types[name] == pa.int64()
            too_big = int64 and max([value for value in values if type(value) is int], default=0) > _MAX_INT64
            if kinds | {_NONE_TYPE} <= allowed and not too_big:
                continue
            for k, value in enumerate(values):
                if type(value) not in allowed or (too_big and type(value) is int and value > _MAX_INT64):
                    misfits[k] = True
        return misfits


_KINDS_HELD = {  # the Python types of the JSON values each Arrow type we use takes
    pa.null(): set(),
    pa.string(): {str},
    pa.bool_(): {bool},
    pa.int64(): {int},
    pa.float64(): {int, float},
} if pa is not None else {}


def _arrow_type(name: str, kinds: set[type]) -> pa.DataType | None:
    """The Arrow type for a field whose values have these Python types, None when none fits."""
    if kinds == {str}:
        return pa.string()
    if kinds == {bool}:
        return pa.bool_()
    if kinds <= {int, float} and kinds:
        # durations become float64 anyway, and Arrow reads an integer text into a double exactly
        # as Python's float(int) rounds it
        return pa.int64() if kinds == {int} and name not in _DURATION_FIELDS else pa.float64()
    return None


def _arrow_frame(table: pa.Table, done: dict[str, Any], line_no: np.ndarray, source: str):
    """The normalized rows of one decoded block (``done``: its ``_type_in_advance``). Returns the
    frame, the number of objects that are not records, and the rows (indexes into ``table``) the
    orjson path must decide."""
    count = table.num_rows
    columns = {
        name: column
        for name, column in zip(table.column_names, table.columns)
        if column.null_count < count  # all null: as absent, on the orjson path too
    }
    event = _arrow_events(columns, count)
    is_record = event >= 0
    records = np.flatnonzero(is_record)
    ignored = count - len(records)
    if ignored:
        mask = pa.array(is_record)
        columns = {name: column.filter(mask) for name, column in columns.items()}
        columns = {name: column for name, column in columns.items() if column.null_count < len(records)}
        event, line_no = event[records], line_no[records]
        done = {name: tuple(array[records] for array in arrays) for name, arrays in done.items()}
    count = len(records)
    suspect = np.zeros(count, bool)

    code, code_missing = _arrow_codes(columns, count, suspect)
    duration_s = _arrow_durations(columns, count, suspect)
    reason = _arrow_texts(columns, REASON_FIELDS, count, suspect)
    wanted = (event == _ERROR_INDEX) & ~_given(reason)
    if wanted.any():  # an error event without a reason: its error message
        error_text = _arrow_texts(columns, ERROR_FIELDS, count, suspect, rows=wanted)
        reason = pc.if_else(pa.array(wanted), error_text, reason)
    ts_ns = _arrow_timestamps(columns, done, count, suspect)
    suspect |= out_of_range(code, code_missing, duration_s)  # the orjson path names the problem
    is_mobile = _arrow_mobile(columns, done, count)
    texts = {
        "connection_id": _arrow_texts(columns, CONNECTION_ID_FIELDS, count, suspect),
        "client_ip": _arrow_texts(columns, CLIENT_IP_FIELDS, count, suspect),
        "user_agent": _arrow_texts(columns, USER_AGENT_FIELDS, count, suspect),
        "client_id": _arrow_texts(columns, CLIENT_ID_FIELDS, count, suspect),
        "reason": reason,
    }
    keep = ~suspect
    if suspect.any():
        mask = pa.array(keep)
        texts = {name: text.filter(mask) for name, text in texts.items()}
        line_no, ts_ns, event = line_no[keep], ts_ns[keep], event[keep]
        code, code_missing, duration_s = code[keep], code_missing[keep], duration_s[keep]
        is_mobile = None if is_mobile is None else is_mobile[keep]
    frame = build_frame(
        source=source,
        line_no=line_no,
        ts_ns=ts_ns,
        event=event,
        connection_id=texts["connection_id"],
        code=code,
        code_missing=code_missing,
        reason=texts["reason"],
        duration_s=duration_s,
        client_ip=texts["client_ip"],
        user_agent=texts["user_agent"],
        is_mobile=is_mobile,
        client_id=texts["client_id"],
    )
    return frame, ignored, records[suspect]


def _type_in_advance(table: pa.Table) -> dict[str, tuple[np.ndarray, ...]]:
    """The costly work on single columns, done in the thread that decoded the block while the
    main thread types the previous one: the text timestamps (``_iso_to_ns``) and the mobile test
    of the text user agents, per field, for every row."""
    done = {}
    for name, column in zip(table.column_names, table.columns):
        if not _is_text(column.type) or column.null_count == len(column):
            continue
        if name in TS_FIELDS:
            done[name] = _iso_to_ns(column)
        elif name in USER_AGENT_FIELDS:
            mobile = pc.match_substring_regex(column, MOBILE_USER_AGENT.pattern).fill_null(False)
            done[name] = (mobile.to_numpy(zero_copy_only=False),)
    return done


def _arrow_mobile(columns: dict[str, Any], done: dict[str, tuple[np.ndarray, ...]], count: int) -> np.ndarray | None:
    """``is_mobile_user_agent`` of the chosen user agents (False where there is none), or None
    when one is not text (build_frame then tests the text it prints)."""
    mobile = np.zeros(count, bool)
    for name, column, rows in _chosen(columns, USER_AGENT_FIELDS, count):
        if name not in done:
            return None
        mobile |= rows & done[name][0]
    return mobile


def _given(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return column.is_valid().to_numpy(zero_copy_only=False)


def _is_text(arrow_type: pa.DataType) -> bool:
    return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)


def _chosen(columns: dict[str, Any], names: Sequence[str], count: int) -> Iterator[tuple[str, Any, np.ndarray]]:
    """The columns of ``names`` present, each with the rows where it is the first one given."""
    taken = np.zeros(count, bool)
    for name in names:
        column = columns.get(name)
        if column is not None:
            given = _given(column)
            yield name, column, given & ~taken
            taken |= given


def _arrow_events(columns: dict[str, Any], count: int) -> np.ndarray:
    """As ``_Records.events``: indexes into EVENTS, -1 for objects that are not records."""
    event = np.full(count, -1, np.int8)
    named = np.zeros(count, bool)
    for name in EVENT_NAME_FIELDS + EVENT_TEXT_FIELDS:
        column = columns.get(name)
        if column is None:
            continue
        if name in EVENT_NAME_FIELDS:
            named |= _given(column)
        unset = event < 0
        if _is_text(column.type) and unset.any():
            event = np.where(unset, _classify_texts(column), event)
    unset = event < 0
    if unset.any():  # a close code and no event name: a disconnect
        coded = np.zeros(count, bool)
        for name in CODE_FIELDS:
            if name in columns:
                coded |= _given(columns[name])
        event[unset & coded & ~named] = _EVENT_INDEX["disconnect"]
    return event


def _classify_texts(column: pa.ChunkedArray) -> np.ndarray:
    """``classify_event`` of each text as an index into EVENTS (-1: none, or no text)."""
    encoded = pc.dictionary_encode(column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column)
    words = encoded.dictionary
    if len(words) <= _FEW_WORDS:
        known = np.array([_EVENT_INDEX.get(classify_event(w), -1) for w in words.to_pylist()], np.int8)
    else:  # many distinct messages: the same tests in C++, exact for ASCII (Python lowercases more)
        lower = pc.ascii_lower(words)

        def contains(*needles: str) -> np.ndarray:
            found = np.zeros(len(words), bool)
            for needle in needles:
                found |= pc.match_substring(lower, needle).to_numpy(zero_copy_only=False)
            return found

        known = np.select(
            [contains("disconnect", "close", "terminat"), contains("error", "fail"), contains("connect", "open")],
            [_EVENT_INDEX["disconnect"], _EVENT_INDEX["error"], _EVENT_INDEX["connect"]],
            -1,
        ).astype(np.int8)
        for k in np.flatnonzero(~pc.string_is_ascii(words).to_numpy(zero_copy_only=False)).tolist():
            known[k] = _EVENT_INDEX.get(classify_event(words[k].as_py()), -1)
    indices = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
    result = known[indices] if len(known) else np.full(len(indices), -1, np.int8)
    result[~_given(encoded)] = -1
    return result


def _arrow_codes(columns: dict[str, Any], count: int, suspect: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """As ``_codes``; rows with anything but an integral number are suspect."""
    code = np.zeros(count, np.int64)
    missing = np.ones(count, bool)
    for _, column, rows in _chosen(columns, CODE_FIELDS, count):
        if pa.types.is_int64(column.type):
            values = column.fill_null(0).to_numpy()
            suspect |= rows & (values == _INT64_MIN)  # out of _code_of's range
        elif pa.types.is_float64(column.type):
            numbers = column.fill_null(0.0).to_numpy()
            exact = np.isfinite(numbers) & (np.abs(numbers) < _EXACT_FLOAT)
            exact &= np.floor(numbers, where=exact, out=np.zeros(count)) == numbers
            suspect |= rows & ~exact
            values = np.where(exact, numbers, 0).astype(np.int64)
        else:  # text ("1001" or "abc"), booleans
            suspect |= rows
            continue
        code = np.where(rows, values, code)
        missing &= ~rows
    return code, missing


def _arrow_durations(columns: dict[str, Any], count: int, suspect: np.ndarray) -> np.ndarray:
    """As ``_durations``; rows with a duration that is not a number are suspect."""
    result = np.full(count, np.nan)
    for names, scale in ((DURATION_S_FIELDS, 1.0), (DURATION_MS_FIELDS, 1000.0)):  # milliseconds win
        numbers = np.full(count, np.nan)
        for _, column, rows in _chosen(columns, names, count):
            if pa.types.is_float64(column.type):  # integers too: _arrow_type reads durations as doubles
                values = column.fill_null(0.0).to_numpy()
                suspect |= rows & (values == 0) & np.signbit(values)  # -0: the integer 0, or -0.0?
                numbers = np.where(rows, values, numbers)
            else:
                suspect |= rows
        numbers[~np.isfinite(numbers)] = np.nan
        given = ~np.isnan(numbers)
        result[given] = numbers[given] / scale
    return result


def _arrow_texts(
    columns: dict[str, Any], names: Sequence[str], count: int, suspect: np.ndarray, rows: np.ndarray | None = None
) -> pa.Array | pa.ChunkedArray:
    """As ``_texts``: the first given of ``names`` as text. Integers and booleans print as Python
    and orjson print them; a float (Python's repr) makes the row suspect, where ``rows`` use it."""
    texts = []
    for _, column, chosen in _chosen(columns, names, count):
        if _is_text(column.type):
            texts.append(column)
        elif pa.types.is_int64(column.type) or pa.types.is_boolean(column.type):
            texts.append(pc.cast(column, pa.string()))  # 42 -> "42", true -> "true"
        else:
            suspect |= chosen if rows is None else chosen & rows
    if not texts:
        return pa.nulls(count, pa.string())
    if len(texts) == 1:
        return texts[0]
    return pc.coalesce(*[text.cast(pa.string()) for text in texts])


def _arrow_timestamps(
    columns: dict[str, Any], done: dict[str, tuple[np.ndarray, ...]], count: int, suspect: np.ndarray
) -> np.ndarray:
    """As ``_timestamps`` for bare objects (no prefix to fall back on); rows whose time the
    orjson path might read otherwise, or call malformed, are suspect."""
    ns = np.full(count, NAT_NS, np.int64)
    for name, column, rows in _chosen(columns, TS_FIELDS, count):
        if _is_text(column.type):
            values, bad = done[name] if name in done else _iso_to_ns(column)
        elif pa.types.is_int64(column.type):
            values, bad = _int_epochs_to_ns(column.fill_null(0).to_numpy())
        elif pa.types.is_float64(column.type):
            values, bad = _float_epochs_to_ns(column.fill_null(0.0).to_numpy())
        else:
            suspect |= rows
            continue
        ns = np.where(rows, values, ns)
        suspect |= rows & bad
    return ns


def _iso_to_ns(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """ISO 8601 texts as nanoseconds: the strict common form by Arrow's cast, the rest by
    ``parse_timestamps`` (as the orjson path). ``bad``: a text neither reads."""
    count = len(column)
    ns = np.full(count, NAT_NS, np.int64)
    bad = np.zeros(count, bool)
    strict = pc.match_substring_regex(column, _STRICT_ISO).fill_null(False).to_numpy(zero_copy_only=False)
    if strict.any():
        subset = column if strict.all() else column.filter(pa.array(strict))
        try:
            ns[strict] = pc.cast(pc.cast(subset, pa.timestamp("ns", tz="UTC")), pa.int64()).to_numpy()
        except pa.ArrowInvalid:  # an impossible date (February 30) among them: pandas decides
            strict[:] = False
    rest = _given(column) & ~strict
    if rest.any():
        ns[rest], bad[rest] = parse_timestamps(column.filter(pa.array(rest)).to_pylist())
    return ns, bad


def _int_epochs_to_ns(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``epoch_to_ns`` of integers, vectorized with integer arithmetic as Python does it."""
    magnitude = np.abs(values)  # wraps for int64's minimum, which is flagged below
    factor = np.select(
        [magnitude < 10**11, magnitude < 10**14, magnitude < 10**17], [10**9, 10**6, 10**3], 1
    ).astype(np.int64)
    ok = (values != _INT64_MIN) & (values != -_MAX_INT64) & (magnitude <= _MAX_INT64 // factor)
    return np.where(ok, values, 0) * factor, ~ok


def _float_epochs_to_ns(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``epoch_to_ns`` of floats: the same float product, rounded half to even. A whole number
    whose product passes 2**53 may have been an integer in the JSON (exact on the orjson path):
    those are flagged."""
    magnitude = np.abs(values)
    factor = np.select([magnitude < 1e11, magnitude < 1e14, magnitude < 1e17], [1e9, 1e6, 1e3], 1.0)
    scaled = np.rint(values * factor)
    whole = np.floor(values) == values
    ok = np.isfinite(scaled) & (np.abs(scaled) < 2.0**62) & ~(whole & (np.abs(scaled) >= _EXACT_FLOAT))
    return np.where(ok, scaled, 0).astype(np.int64), ~ok


def _selected(values: list[Any], rows: np.ndarray | slice) -> list[Any] | np.ndarray:
    if isinstance(rows, slice):
        return values
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array[rows]


class _Records:
    """Decoded objects of one chunk, read column by column."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = objects
        self.keys: set[str] = set().union(*objects)

    def containers(self) -> list[str]:
        """Keys we do not know that hold an object in some record (where fields may nest)."""
        return [
            key
            for key in self.keys - KNOWN_FIELDS
            if dict in set(map(type, map(dict.get, self.objects, repeat(key))))
        ]

    def column(self, names: Sequence[str]) -> list[Any] | None:
        """Per object, the value of the first of ``names`` that is present and not null; None
        when no object has any of them."""
        present = [name for name in names if name in self.keys]
        if not present:
            return None
        objects = self.objects
        values = list(map(dict.get, objects, repeat(present[0])))
        for name in present[1:]:  # rare: several spellings in one log
            values = [value if value is not None else obj.get(name) for value, obj in zip(values, objects)]
        return values

    def events(self) -> list[str | None]:
        count = len(self.objects)
        event: list[str | None] | None = None
        named: np.ndarray | None = None  # has an event/type that may name something else
        for names in (EVENT_NAME_FIELDS, EVENT_TEXT_FIELDS):
            for name in names:
                if name not in self.keys:
                    continue
                values = list(map(dict.get, self.objects, repeat(name)))
                classified = _classify_column(values)
                if event is None:
                    event = classified
                elif None in event:
                    event = [e if e is not None else c for e, c in zip(event, classified)]
                if names is EVENT_NAME_FIELDS:
                    given = np.asarray(values, dtype=object) != None  # noqa: E711 - elementwise
                    named = given if named is None else named | given
        if event is None:
            event = [None] * count
        if None in event:  # a close code and no event name: a disconnect
            codes = self.column(CODE_FIELDS)
            if codes is not None:
                unnamed = np.zeros(count, bool) if named is None else named
                event = [
                    e if e is not None else ("disconnect" if c is not None and not n else None)
                    for e, c, n in zip(event, codes, unnamed.tolist())
                ]
        return event


def _classify_column(values: list[Any]) -> list[str | None]:
    try:
        distinct = set(values)
    except TypeError:  # objects or arrays in the field: only text names an event
        return [classify_event(v) if type(v) is str else None for v in values]
    known = {value: classify_event(value) if type(value) is str else None for value in distinct}
    return list(map(known.__getitem__, values))


def _codes(values: list[Any] | None, count: int, problems: dict[int, str]) -> tuple[np.ndarray, np.ndarray]:
    if values is None:
        return np.zeros(count, np.int64), np.ones(count, bool)
    array = np.asarray(values, dtype=object)
    missing = array == None  # noqa: E711 - elementwise
    if set(map(type, values)) <= {int, _NONE_TYPE}:
        array[missing] = 0
        try:
            codes = array.astype(np.int64)
        except OverflowError:
            pass
        else:
            if not (codes == _INT64_MIN).any():  # outside _code_of's range, as above it
                return codes, missing
    codes = np.zeros(count, np.int64)
    for k, value in enumerate(values):
        if value is None:
            continue
        code = _code_of(value)
        if code is None:
            problems.setdefault(k, f"invalid close code {value!r}")
            missing[k] = True
        else:
            codes[k] = code
    return codes, missing


def _code_of(value: Any) -> int | None:
    if type(value) is int and -_MAX_INT64 <= value <= _MAX_INT64:
        return value
    if type(value) is float and value.is_integer() and abs(value) <= _MAX_INT64:
        return int(value)
    if type(value) is str and value.strip().isascii() and value.strip().isdigit() and len(value.strip()) <= 18:
        return int(value.strip())
    return None


def _durations(
    ms: list[Any] | None, seconds: list[Any] | None, count: int, problems: dict[int, str]
) -> np.ndarray:
    result = np.full(count, np.nan)
    for values, scale in ((seconds, 1.0), (ms, 1000.0)):  # milliseconds win when both are given
        if values is None:
            continue
        if set(map(type, values)) <= {int, float, _NONE_TYPE}:
            try:
                numbers = np.array(values, dtype=np.float64)  # None -> NaN
            except OverflowError:
                numbers = np.array([_float_or_nan(v) for v in values])
        else:
            numbers = np.full(count, np.nan)
            for k, value in enumerate(values):
                number = _number_of(value)
                if number is None and value is not None:
                    problems.setdefault(k, f"invalid duration {value!r}")
                elif number is not None:
                    numbers[k] = number
        numbers[~np.isfinite(numbers)] = np.nan  # no lifetime is infinite
        given = ~np.isnan(numbers)
        result[given] = numbers[given] / scale
    return result


def _float_or_nan(value: Any) -> float:
    try:
        return float(value) if value is not None else math.nan
    except OverflowError:
        return math.nan


def _number_of(value: Any) -> float | None:
    if type(value) in (int, float):
        return _float_or_nan(value)
    if type(value) is str and _NUMERIC.fullmatch(value):
        return float(value)
    return None


def _texts(values: list[Any] | None, count: int, message_of_objects: bool = False) -> list[str | None]:
    if values is None:
        return [None] * count
    if set(map(type, values)) <= {str, _NONE_TYPE}:
        return values
    return [_text_of(v, message_of_objects) for v in values]


def _text_of(value: Any, message_of_objects: bool) -> str | None:
    if value is None or type(value) is str:
        return value
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) in (int, float):
        return str(value)
    if message_of_objects and type(value) is dict and isinstance(value.get("message"), str):
        return value["message"]
    return orjson.dumps(value).decode()  # an object or array: its JSON text, as logged


def _timestamps(
    values: list[Any] | None, prefixes: list[str] | None, count: int, problems: dict[int, str]
) -> np.ndarray:
    texts: list[str | None]
    epochs: dict[int, float | int] = {}
    if values is None:
        texts = [None] * count
    elif set(map(type, values)) <= {str, _NONE_TYPE}:
        texts = values
    else:
        texts = [None] * count
        for k, value in enumerate(values):
            if type(value) is str:
                texts[k] = value
            elif type(value) in (int, float):
                epochs[k] = value
            elif value is not None:
                problems.setdefault(k, f"invalid timestamp {value!r}")
    if prefixes is not None:  # no time in the record: the prefix's, when it has one
        for k in range(count):
            if texts[k] is None and k not in epochs and prefixes[k]:
                texts[k] = last_timestamp_in(prefixes[k])
    ns, bad = parse_timestamps(texts)
    for k in np.flatnonzero(bad):
        number = texts[k].strip()
        if _NUMERIC.fullmatch(number):  # epoch sent as text
            epochs[int(k)] = float(number)
        else:
            problems.setdefault(int(k), f"timestamp {texts[k]!r} does not parse")
    for k, value in epochs.items():
        epoch_ns = epoch_to_ns(value)
        if epoch_ns is None:
            problems.setdefault(k, f"timestamp {value!r} is out of range")
        else:
            ns[k] = epoch_ns
    return ns


def epoch_to_ns(value: float | int) -> int | None:
    """Nanoseconds since the epoch from a number in s, ms, us or ns, told apart by magnitude.

    Seconds stay below 1e11 until the year 5138, and milliseconds reach 1e11 in 1973: the cuts
    1e11, 1e14, 1e17 separate the units for any date from 1973 to 5138. None when out of range.
    """
    magnitude = abs(value)
    if not math.isfinite(magnitude):
        return None
    if magnitude < 1e11:
        scaled = value * 1_000_000_000
    elif magnitude < 1e14:
        scaled = value * 1_000_000
    elif magnitude < 1e17:
        scaled = value * 1_000
    else:
        scaled = value
    if isinstance(scaled, float):
        scaled = round(scaled)
    if not -_MAX_INT64 < scaled <= _MAX_INT64:
        return None
    return int(scaled) if scaled != NAT_NS else None
