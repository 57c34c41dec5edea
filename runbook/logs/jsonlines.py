"""The JSON-lines format: one JSON object per line, with the usual field names of close logs.

    {"ts": "2026-11-28T03:00:01.123Z", "event": "disconnect", "connectionId": "a1", "code": 1006, "reason": "", "duration": 60012}

Field names (the first present wins):

- connection_id: connectionId, connection_id, id, connId
- code: code, closeCode, close_code
- reason: reason, closeReason, close_reason (an error event also takes error, err, errorMessage)
- duration_s: duration, duration_ms, durationMs (milliseconds); duration_s, duration_sec (seconds)
- client_ip: ip, remoteAddress, client_ip, remote_addr, clientIp
- user_agent: userAgent, user_agent, ua
- ts: ts, timestamp, time, @timestamp, datetime: ISO 8601 text, or epoch numbers whose unit
  (s, ms, us, ns) is told by their magnitude; without any, the line prefix's time if any
- event: event, type, msg, message: "disconnect", "close", "closed", "connection closed", ...
  => disconnect; "error", "failed" => error; "connect", "open", "connected" => connect. A
  record with a close code and no recognized event is a disconnect (unless it has an
  ``event``/``type`` naming something else, e.g. "message").

One level of nesting is looked into (``{"ws": {"code": 1006}}``); top-level fields win.
A log prefix before the object is tolerated: the object starts at the first ``{`` of the line.
Objects that are not WebSocket lifecycle records (other application logs) are ignored lines.

Speed: lines are decoded by orjson in chunks, fields are pulled column-wise and typed in bulk;
per-value conversion runs only for columns holding unusual types.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import Any

import numpy as np
import orjson

from runbook.logs.common import (
    NAT_NS,
    MalformedCollector,
    build_frame,
    concat_frames,
    gc_paused,
    last_timestamp_in,
    parse_timestamps,
    scrub_surrogates,
    to_lines,
)
from runbook.observations import ParsedLog

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
TS_FIELDS = ("ts", "timestamp", "time", "@timestamp", "datetime")
EVENT_NAME_FIELDS = ("event", "type")  # name the event; anything else there is not a lifecycle record
EVENT_TEXT_FIELDS = ("msg", "message")  # describe it in words
KNOWN_FIELDS = frozenset(
    CONNECTION_ID_FIELDS + CODE_FIELDS + REASON_FIELDS + ERROR_FIELDS + DURATION_MS_FIELDS + DURATION_S_FIELDS
    + CLIENT_IP_FIELDS + USER_AGENT_FIELDS + TS_FIELDS + EVENT_NAME_FIELDS + EVENT_TEXT_FIELDS
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
    except orjson.JSONDecodeError as exc:
        if "surrogates" not in str(exc):
            raise
        return orjson.loads(scrub_surrogates(text))


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


def _flatten_one_level(obj: dict[str, Any], containers: Iterable[str]) -> dict[str, Any]:
    """``obj`` with the fields of its objects under ``containers`` ({"ws": {...}}) lifted up;
    top-level fields win."""
    flat = obj
    for container in containers:
        value = obj.get(container)
        if type(value) is dict:
            if flat is obj:
                flat = dict(obj)
            for key, inner in value.items():
                flat.setdefault(key, inner)
    return flat


def parse(lines: Iterable[str], source: str) -> ParsedLog:
    """Parse JSON-lines close logs into the normalized close-log frame.

    ``lines``: the log's lines (or its whole text); ``source`` names it in every row. Lines that
    are not JSON objects, and objects that are not WebSocket lifecycle records, are counted in
    ``ignored_lines``; JSON text that does not decode, and records with an unusable code,
    duration or timestamp, in ``malformed_count`` with examples. Never raises on content.
    """
    lines = to_lines(lines)
    malformed = MalformedCollector()
    ignored = 0
    frames = []
    with gc_paused():
        for start in range(0, len(lines), CHUNK_LINES):
            stop = min(len(lines), start + CHUNK_LINES)
            frame, chunk_ignored = _parse_chunk(lines, start, stop, source, malformed)
            frames.append(frame)
            ignored += chunk_ignored
    return ParsedLog(
        source=source,
        format=NAME,
        frame=concat_frames(frames),
        lines_total=len(lines),
        ignored_lines=ignored,
        malformed_count=malformed.count,
        malformed_examples=malformed.examples,
    )


def _parse_chunk(lines: list[str], start: int, stop: int, source: str, malformed: MalformedCollector):
    chunk = lines[start:stop]
    ignored = 0
    prefixes: list[str] | None = None
    joined = "\n".join(chunk)
    if joined.count("\n{") + joined.startswith("{") == len(chunk):  # every line is a bare object
        texts, positions = chunk, list(range(start, stop))
    else:  # prefixed or mixed lines: the object starts at the first "{"
        texts, positions, prefixes = [], [], []
        for offset, line in enumerate(chunk):
            brace = line.find("{")
            if brace < 0 or not _OBJECT_START.match(line, brace):
                ignored += bool(line.strip())
                continue
            texts.append(line[brace:] if brace else line)
            positions.append(start + offset)
            prefixes.append(line[:brace])

    try:
        objects = list(map(orjson.loads, texts))
    except orjson.JSONDecodeError:  # a bad line somewhere: decode one by one to find them
        objects = []
        for text, index in zip(texts, positions):
            try:
                objects.append(loads(text))
            except orjson.JSONDecodeError as exc:
                objects.append(None)
                if _OBJECT_START.match(text):
                    malformed.add(index + 1, lines[index], f"invalid JSON: {exc}")
                else:  # "{port: 8080}": prose with a brace, not a JSON record
                    ignored += 1
        keep = [k for k, obj in enumerate(objects) if obj is not None]
        objects = [objects[k] for k in keep]
        positions = [positions[k] for k in keep]
        prefixes = None if prefixes is None else [prefixes[k] for k in keep]
    records = _Records(objects)
    containers = records.containers()
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

    bad = sorted(problems)
    for k in bad:
        malformed.add(positions[k] + 1, lines[positions[k]], problems[k])
    rows = np.ones(count, bool)
    rows[bad] = False
    if not bad:
        rows = slice(None)  # keep every row: the columns go to the frame as they are
    frame = build_frame(
        source=source,
        line_no=np.asarray(positions, np.int64)[rows] + 1,
        ts_ns=ts_ns[rows],
        event=_selected(event, rows),
        connection_id=_selected(_texts(records.column(CONNECTION_ID_FIELDS), count), rows),
        code=code[rows],
        code_missing=code_missing[rows],
        reason=_selected(reason, rows),
        duration_s=duration_s[rows],
        client_ip=_selected(_texts(records.column(CLIENT_IP_FIELDS), count), rows),
        user_agent=_selected(_texts(records.column(USER_AGENT_FIELDS), count), rows),
    )
    return frame, ignored


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
            return array.astype(np.int64), missing
        except OverflowError:
            pass
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
