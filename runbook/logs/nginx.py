"""nginx access and error logs.

Access log (``nginx_access``): the ``combined`` format, with whatever the config appends after it
(``rt=$request_time uct="..." urt="..."`` as in our samples, or a bare ``$request_time``), or any
custom ``log_format`` compiled by ``access_format(log_format)``. nginx writes the line when the
request ends, so for a WebSocket (status 101) the line is the end of the session and
``$request_time`` its length: a ``disconnect`` with that duration, close code unknown. A non-101
answer on a WebSocket path (a path that got a 101 elsewhere in the same log, or one named like
``/ws``, ``/socket.io/?transport=websocket``) is a failed upgrade: an ``error`` whose reason reads
``handshake failed: HTTP 426 on /ws/chat``. Other requests are ignored lines.

Error log (``nginx_error``): ``2026/11/28 06:41:42 [info] 6880#6880: *5 message, client: ...,
server: ..., request: "GET /ws HTTP/1.1", upstream: "...", host: "..."``. Timestamps are local
time without a zone (``log_timezone``). Read:

- ``... while proxying upgraded connection``: the end of a WebSocket session without a close
  frame (code 1006, RFC 6455 7.1.5); ``upstream timed out`` / ``client timed out`` there are
  nginx's own timers (``proxy_read_timeout`` / ``proxy_send_timeout``, logged at ``info``), so
  ``closed_by`` is ``proxy``.
- failures before the upgrade (``while connecting to upstream``, ``while reading response header
  from upstream``, ``no live upstreams``): an ``error`` with ``handshake failed: ...`` and the
  status nginx answers with (502, or 504 for a timeout).
- ``worker_connections are not enough`` and ``Too many open files``: an ``error`` (resources).
The connection number (``*5``) is the ``connection_id``. Other lines are ignored.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from runbook.logs import columnar
from runbook.logs.columnar import pa, pc
from runbook.logs.common import select_rows
from runbook.logs.lines import CONTAINER_PREFIX, LineFormat, Malformed, Record, epoch_to_iso, parse_lines, parse_timezone, share_matching
from runbook.observations import ParsedLog

ACCESS_NAME = "nginx_access"
ERROR_NAME = "nginx_error"

COMBINED = '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"'

# Paths that name a WebSocket endpoint by convention (a non-101 answer there is a failed upgrade).
WEBSOCKET_PATH = re.compile(
    r"(?:^|/)(?:ws|wss|websockets?|sockets?|socket\.io|sockjs|cable|realtime|hubs?|signalr|graphql-ws|subscriptions)"
    r"(?:[/?.]|$)|[?&]transport=websocket",
    re.IGNORECASE,
)

_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_TIME_LOCAL = re.compile(r"([0-9]{2})/([A-Z][a-z]{2})/([0-9]{4}):([0-9]{2}:[0-9]{2}:[0-9]{2}) ([+-][0-9]{2})([0-9]{2})")
_HEX_ESCAPE = re.compile(r"\\x([0-9A-Fa-f]{2})")


def time_local_to_iso(text: str) -> str:
    """nginx/Apache ``28/Nov/2026:06:38:04 +0000`` as ISO 8601; raises Malformed otherwise."""
    match = _TIME_LOCAL.fullmatch(text)
    if not match or match.group(2) not in _MONTHS:
        raise Malformed(f"time {text!r} is not dd/Mon/yyyy:hh:mm:ss +zzzz")
    day, month, year, clock, zone_h, zone_m = match.groups()
    return f"{year}-{_MONTHS[month]:02d}-{day}T{clock}{zone_h}:{zone_m}"


def unescape(text: str) -> str:
    """nginx writes ``"`` and bytes outside printable ASCII in log values as ``\\xHH``."""
    if "\\x" not in text:
        return text
    raw = _HEX_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    return raw.encode("latin-1", "replace").decode("utf-8", "replace")


# --- access log ---------------------------------------------------------------------------------

# Value patterns of variables whose text can hold the separators around them.
_VARIABLE_PATTERNS = {
    "time_local": r"[0-9]{2}/[A-Za-z]{3}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}",
    "request": r"[^\"]*",
    "status": r"[0-9]{3}|-",
    "request_time": r"[0-9]+(?:\.[0-9]+)?|-",
    "msec": r"[0-9]+(?:\.[0-9]+)?",
}
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")
# After the combined part, values the config may append: rt=0.003, request_time=0.003, or a bare number.
_TAIL_REQUEST_TIME = re.compile(r"(?:^|\s)(?:rt|request_time|req_time)=\"?([0-9]+(?:\.[0-9]+)?)")
_TAIL_BARE_NUMBER = re.compile(r"^\s*\"?([0-9]+\.[0-9]+)\"?(?:\s|$)")


@dataclass(frozen=True)
class _Variable:
    """One ``$variable`` of a log_format: the literal text before it, its name, the pattern of its
    value, and whether it is the group of that name (a repeated variable is matched, not kept)."""

    before: str
    name: str
    pattern: str
    kept: bool


def _log_format_parts(log_format: str) -> tuple[list[_Variable], str]:
    """The variables of a log_format string and the literal text after the last one."""
    variables = list(_VARIABLE.finditer(log_format))
    if not variables:
        raise ValueError("the log_format holds no $variable")
    parts, seen, position = [], set(), 0
    for index, match in enumerate(variables):
        name = match.group(1) or match.group(2)
        following = log_format[match.end() : variables[index + 1].start() if index + 1 < len(variables) else None]
        pattern = _VARIABLE_PATTERNS.get(name)
        if pattern is None:
            if not following:
                pattern = r".*" if index + 1 == len(variables) else r"\S*"
            else:
                pattern = f"[^{re.escape(following[0])}]*"
        parts.append(_Variable(log_format[position : match.start()], name, pattern, name not in seen))
        seen.add(name)
        position = match.end()
    return parts, log_format[position:]


def _regex_of(parts: list[_Variable], after: str) -> str:
    pieces = []
    for variable in parts:
        pieces.append(re.escape(variable.before))
        pieces.append(f"(?P<{variable.name}>{variable.pattern})" if variable.kept else f"(?:{variable.pattern})")
    return "".join(pieces) + re.escape(after)


def compile_log_format(log_format: str) -> re.Pattern[str]:
    """A regex for lines written by an nginx ``log_format`` string (the concatenated quoted
    pieces of the directive, variables as ``$name`` or ``${name}``). Each variable becomes a
    named group of its name (a repeated one keeps its first occurrence). Raises ValueError
    when the string holds no variable."""
    return re.compile(_regex_of(*_log_format_parts(log_format)))


_COMBINED_PARTS = _log_format_parts(COMBINED)
# The built-in format: combined, then whatever the config appends (read by _TAIL_REQUEST_TIME).
_COMBINED_TAIL = ([*_COMBINED_PARTS[0], _Variable(_COMBINED_PARTS[1], "_tail", ".*", True)], "")
_COMBINED_PREFIX = re.compile(compile_log_format(COMBINED).pattern + r"(?P<_tail>.*)")


def _first(fields: dict[str, str | None], *names: str) -> str | None:
    for name in names:
        value = fields.get(name)
        if value not in (None, "", "-"):
            return value
    return None


def _access_fields(pattern: re.Pattern[str], line: str) -> dict[str, str | None] | None:
    match = pattern.fullmatch(line)
    if match is None:
        return None
    fields = match.groupdict()
    tail = fields.pop("_tail", None)
    if tail and not fields.get("request_time"):
        found = _TAIL_REQUEST_TIME.search(tail) or _TAIL_BARE_NUMBER.match(tail)
        fields["request_time"] = found.group(1) if found else None
    return fields


def _path_of(fields: dict[str, str | None]) -> str | None:
    request = fields.get("request")
    if request:
        pieces = request.split(" ")
        return pieces[1] if len(pieces) >= 2 else None
    return _first(fields, "request_uri", "uri")


def _access_record(fields: dict[str, str | None], websocket_paths: set[str]) -> Record | None:
    status_text = _first(fields, "status")
    path = _path_of(fields)
    if status_text is None or not status_text.isdigit():
        raise Malformed("no status")
    status = int(status_text)
    bare_path = path.split("?", 1)[0] if path else None
    upgrade = (_first(fields, "http_upgrade") or "").lower() == "websocket"
    if status != 101 and not (upgrade or bare_path in websocket_paths or (path and WEBSOCKET_PATH.search(path))):
        return None  # an ordinary HTTP request
    if (time_local := _first(fields, "time_local")) is not None:
        ts = time_local_to_iso(time_local)
    elif (iso := _first(fields, "time_iso8601")) is not None:
        ts = iso
    elif (msec := _first(fields, "msec")) is not None:
        ts = epoch_to_iso(float(msec))
    else:
        ts = None
    request_time = _first(fields, "request_time")
    try:
        duration = float(request_time) if request_time is not None else None
    except ValueError:
        raise Malformed(f"request time {request_time!r} is not a number") from None
    forwarded = _first(fields, "http_x_forwarded_for")
    client_ip = forwarded.split(",")[0].strip() if forwarded else _first(fields, "remote_addr", "realip_remote_addr")
    agent = _first(fields, "http_user_agent")
    record = Record(
        event="disconnect",
        ts=ts,
        connection_id=_first(fields, "request_id", "connection"),
        duration_s=duration,
        client_ip=client_ip,
        user_agent=unescape(agent) if agent else None,
    )
    if status != 101:
        record.event = "error"
        record.reason = f"handshake failed: HTTP {status} on {unescape(bare_path or '?')}"
        if status == 499:
            record.closed_by = "client"  # nginx's code for a client that closed before the answer
    return record


# --- access log as columns (see runbook/logs/columnar.py) ----------------------------------------

_SCAN_LIMIT = 256  # bytes a value ended by a plain separator may hold to be read as a column
_NUMBER_BYTES = "0123456789.-"
_TIME_WIDTH = 26  # dd/Mon/yyyy:hh:mm:ss +zzzz
_SOME_PREFIX = CONTAINER_PREFIX.removesuffix("?")
# The variables an access record is read from (_access_fields, _path_of, _access_record).
_USED = {
    "status", "time_local", "request", "request_uri", "uri", "http_upgrade", "http_user_agent", "request_time", "_tail",
    "http_x_forwarded_for", "remote_addr", "realip_remote_addr", "request_id", "connection",
}


@dataclass(frozen=True)
class _Step:
    """Where the value of one variable ends, in a line the clean regex matched: ``time`` and
    ``status`` have their widths, ``quote`` ends ``offset`` bytes before the line's ``quote``-th
    quote (fields hold none, so it is the grammar's), ``scan`` at the first ``byte`` (which its
    pattern excludes), ``end`` at the end of the line."""

    variable: _Variable
    kind: str
    after: str  # the literal text after the value
    quote: int = 0
    offset: int = 0
    byte: int = 0


@dataclass(frozen=True)
class _Plan:
    clean: str  # the format's regex with quote-free fields (but a last ``.*``), without groups
    before: str  # the literal text before the first variable
    steps: tuple[_Step, ...]
    to_end: bool  # False: ``clean`` leaves out a last ``.*``, which any rest of the line matches


@functools.lru_cache(maxsize=64)
def _walk_plan(log_format: str | None) -> _Plan | None:
    """How to read lines of this log_format (None: the built-in one) as columns; None when some
    value cannot be placed without backtracking, or status or $time_local is missing."""
    parts, trailing = _COMBINED_TAIL if log_format is None else _log_format_parts(log_format)
    if not {"status", "time_local"} <= {v.name for v in parts}:
        return None
    literals = [v.before for v in parts] + [trailing]
    steps, clean, quotes = [], [re.escape(literals[0])], literals[0].count('"')
    for index, variable in enumerate(parts):
        after, last = literals[index + 1], index + 1 == len(parts)
        kind, byte = None, 0
        if variable.name == "time_local":
            kind = "time"
        elif variable.name == "status":
            kind = "status"
        elif '"' in after:
            kind = "quote"
        elif after and (
            variable.pattern == f"[^{re.escape(after[0])}]*"
            or (variable.name in ("request_time", "msec") and after[0] not in _NUMBER_BYTES)
        ):
            kind, byte = "scan", ord(after[0])
        elif not after and last:
            kind = "end"
        if kind is None or not after.isascii() or not variable.before.isascii():
            return None
        pattern = variable.pattern
        if pattern.startswith("[^"):  # no quote in a field (and no newline: lines are read joined)
            pattern = pattern[:-2] + '"\\n]*'
        elif pattern == r"\S*":
            return None
        quote = quotes if kind == "quote" else 0
        steps.append(_Step(variable, kind, after, quote, after.find('"'), byte))
        clean += [f"(?:{pattern})", re.escape(after)]
        quotes += after.count('"')
    to_end = not (steps[-1].kind == "end" and steps[-1].variable.pattern == ".*")
    return _Plan("".join(clean if to_end else clean[:-2]), literals[0], tuple(steps), to_end)


def _walk(table: columnar.LineTable, rows: np.ndarray, body: np.ndarray, plan: _Plan):
    """Per kept variable, the byte range of its value in each of ``rows`` (bodies starting at
    ``body``), and where the walk reached the end of the line exactly."""
    size = len(table.buf)
    pos = body + len(plan.before)
    end = table.end[rows]
    ok = np.ones(len(rows), bool)
    spans = {}
    if any(step.kind == "quote" for step in plan.steps):
        quotes = table.positions(ord('"'))
        first_quote = np.searchsorted(quotes, body)
    for step in plan.steps:
        if step.kind == "time":
            stop = pos + _TIME_WIDTH
        elif step.kind == "status":
            stop = pos + np.where(table.buf[np.clip(pos, 0, size - 1)] == ord("-"), 1, 3)
        elif step.kind == "quote":
            at = first_quote + step.quote
            ok &= at < len(quotes)
            stop = quotes[np.minimum(at, len(quotes) - 1)] - step.offset if len(quotes) else pos
        elif step.kind == "scan":
            stop = columnar.find_byte(table, pos, end, step.byte, _SCAN_LIMIT)
            ok &= stop >= 0
        else:
            stop = end
        ok &= (stop >= pos) & (stop <= end)
        if step.variable.kept:
            spans[step.variable.name] = (pos, stop)
        pos = stop + len(step.after)
    return spans, ok & (pos == end)


def _read_columns(access: AccessFormat, plan: _Plan, table: columnar.LineTable):
    """The lines of an access log read as columns, and the reader of the others (``_access_record``
    with the WebSocket paths of the whole log); see runbook/logs/columnar.py."""
    rows = np.flatnonzero(table.simple)
    body = table.prefix_ends(rows, _SOME_PREFIX, CONTAINER_PREFIX)
    clean = table.matches(rows, body, plan.clean, to_end=plan.to_end)
    rows, body = rows[clean], body[clean]
    spans, ok = _walk(table, rows, body, plan)
    walked = np.flatnonzero(ok)
    # status: 3 digits ("-" is malformed: the line reader says so)
    status_at, status_end = spans["status"][0][walked], spans["status"][1][walked]
    status, digits_ok = columnar.digits(table, status_at, 3)
    # $time_local, dd/Mon/yyyy:hh:mm:ss +zzzz: a real time in the plain range (else the line reader decides)
    time = table.bytes_at(spans["time_local"][0][walked], _TIME_WIDTH).astype(np.int64)

    def number(offset: int, width: int) -> np.ndarray:
        value = np.zeros(len(walked), np.int64)
        for column in range(offset, offset + width):
            value = value * 10 + time[:, column] - 48
        return value

    month = columnar.month_numbers(table, spans["time_local"][0][walked] + 3)
    wall, real = columnar.civil_ns(number(7, 4), month, number(0, 2), number(12, 2), number(15, 2), number(18, 2))
    zone_h, zone_m = number(22, 2), number(24, 2)
    ok = (status_end - status_at == 3) & digits_ok & real & (month > 0) & (zone_h <= 23) & (zone_m <= 59)
    ts_ns = wall - np.where(time[:, 21] == ord("-"), -1, 1) * (zone_h * 3600 + zone_m * 60) * 1_000_000_000
    read = walked[ok]  # of rows: the lines read here from now on
    rows, status, ts_ns = rows[read], status[ok], ts_ns[ok]
    spans = {name: (start[read], stop[read]) for name, (start, stop) in spans.items() if name in _USED}

    def column(name: str, which: np.ndarray | None = None, *, present: bool = False):
        """The values of a variable (None when the format has none); ``present``: "" and "-" are null."""
        if name not in spans:
            return None if not present else pa.nulls(len(rows) if which is None else len(which), pa.large_string())
        start, stop = spans[name]
        if which is not None:
            start, stop = start[which], stop[which]
        valid = None
        if present:  # _first: "" and "-" are no value
            valid = (stop > start) & ~((stop - start == 1) & (table.buf[np.minimum(start, len(table.buf) - 1)] == ord("-")))
        return table.strings(start, stop, valid)

    # The path of each request, and what it says, computed once per distinct request.
    other_path = None
    if "request_uri" in spans or "uri" in spans or "request" not in spans:
        other_path = pc.coalesce(column("request_uri", present=True), column("uri", present=True))
    if other_path is None:  # the path of each distinct request
        requests, path_of = table.distinct(*spans["request"])
        path_u = pc.struct_field(pc.extract_regex(requests, r"^[^ ]* (?P<p>[^ ]*)"), [0])
    else:
        path = other_path
        if "request" in spans:
            request = column("request")
            second = pc.struct_field(pc.extract_regex(request, r"^[^ ]* (?P<p>[^ ]*)"), [0])
            path = columnar.if_else(pc.equal(request, ""), other_path, second)
        paths = pc.dictionary_encode(path, null_encoding="encode")
        path_u, path_of = paths.dictionary, paths.indices.to_numpy(zero_copy_only=False)
    has_path_u = columnar.values_of(pc.not_equal(path_u, ""))
    bare_u = columnar.if_else(pa.array(has_path_u), pc.struct_field(pc.extract_regex(path_u, r"^(?P<b>[^?]*)"), [0]), None)
    named_u = columnar.values_of(pc.match_substring_regex(path_u, WEBSOCKET_PATH.pattern, ignore_case=True)) & has_path_u
    has_path = has_path_u[path_of]
    upgraded = status == 101
    # AccessFormat.parse's first pass: the paths upgraded somewhere in this log, from every line
    said_101 = upgraded & has_path
    status_step = next(step for step in plan.steps if step.variable.name == "status" and step.variable.kept)
    if not (status_step.variable.before.endswith(" ") and status_step.after.startswith(" ")):  # " 101 " in the line?
        which = np.flatnonzero(said_101)
        lines = table.strings(table.start[rows[which]], table.end[rows[which]])
        said_101[which] = columnar.values_of(pc.match_substring(lines, " 101 "))
    websocket_paths = set(bare_u.take(pa.array(np.unique(path_of[said_101]))).to_pylist())
    done = np.zeros(len(table), bool)
    done[rows] = True
    for row in np.flatnonzero(~done).tolist():
        line = table.text(row)
        if " 101 " in line and (fields := _access_fields(access.pattern, line)) and fields.get("status") == "101":
            if path_text := _path_of(fields):
                websocket_paths.add(path_text.split("?", 1)[0])
    known_u = columnar.values_of(pc.is_in(bare_u, value_set=pa.array(sorted(websocket_paths), pa.large_string())))
    record = upgraded | known_u[path_of] | named_u[path_of]
    if "http_upgrade" in spans:
        record |= columnar.values_of(pc.equal(pc.utf8_lower(column("http_upgrade", present=True)), "websocket"))
    failed = record & ~upgraded
    # A value with nginx's \xHH escapes sends its line to the line reader, which decodes it.
    escaped = table.rows_with(ord("\\"))[rows]
    if escaped.any():
        which = np.flatnonzero(escaped & record)
        agents = column("http_user_agent", which, present=True)
        bares = bare_u.take(pa.array(path_of[which]))
        escaped[which] = columnar.values_of(pc.match_substring(agents, "\\x")) | (
            failed[which] & columnar.values_of(pc.match_substring(bares, "\\x")))
    ignored = rows[~record]
    take = np.flatnonzero(record & ~escaped)
    failed, status = failed[take], status[take]
    # $request_time, or the number the config appended after combined (_access_fields)
    seconds = np.full(len(take), np.nan)
    if "request_time" in spans:
        start, stop = spans["request_time"][0][take], spans["request_time"][1][take]
        value, end, number = columnar.decimal(table, start, stop)
        number &= end == stop
        seconds = np.where(number, value, np.nan)
        odd = np.flatnonzero(~number & ((stop > start) & ~((stop - start == 1) & (table.buf[np.minimum(start, len(table.buf) - 1)] == ord("-")))))
        if odd.size:
            seconds[odd] = pc.cast(table.strings(start[odd], stop[odd]), pa.float64()).to_numpy(zero_copy_only=False)
    if "_tail" in spans:
        start, stop = spans["_tail"][0][take], spans["_tail"][1][take]
        unset = (stop > start) if "request_time" not in spans else (stop > start) & (spans["request_time"][1][take] == spans["request_time"][0][take])
        # the usual shape first: ' rt=12.345' (the first match of _TAIL_REQUEST_TIME starts there)
        head = table.words(start) & 0xFFFFFFFF == int.from_bytes(b" rt=", "little")
        quoted = table.buf[np.minimum(start + 4, len(table.buf) - 1)] == ord('"')
        value, _, number = columnar.decimal(table, start + 4 + quoted, stop)
        usual = unset & head & number
        seconds = np.where(usual, value, seconds if "request_time" in spans else np.nan)
        other = np.flatnonzero(unset & ~usual)
        if other.size:
            tail = table.strings(start[other], stop[other])
            found = pc.coalesce(
                pc.struct_field(pc.extract_regex(tail, _TAIL_REQUEST_TIME.pattern.replace("([0-9]", "(?P<t>[0-9]", 1)), [0]),
                pc.struct_field(pc.extract_regex(tail, _TAIL_BARE_NUMBER.pattern.replace("([0-9]", "(?P<t>[0-9]", 1)), [0]),
            )
            seconds[other] = pc.cast(found, pa.float64()).to_numpy(zero_copy_only=False)
    forwarded = column("http_x_forwarded_for", take, present=True)
    first_hop = pc.utf8_trim(pc.struct_field(pc.extract_regex(forwarded, r"^(?P<f>[^,]*)"), [0]), " \t") if "http_x_forwarded_for" in spans else forwarded
    which = np.flatnonzero(failed)
    bare = bare_u.take(pa.array(path_of[take][which]))  # unescape(bare_path or "?")
    reasons = columnar.join("handshake failed: HTTP ", pa.array(status[which].astype(str), pa.large_string()), " on ",
                            columnar.if_else(pc.fill_null(pc.equal(bare, ""), True), "?", bare))
    return columnar.Columns(
        rows=rows[take],
        ignored=ignored,
        ts_ns=ts_ns[take],
        event=np.where(failed, columnar.ERROR, columnar.DISCONNECT).astype(np.int8),
        duration_s=seconds,
        connection_id=pc.coalesce(column("request_id", take, present=True), column("connection", take, present=True)),
        reason=columnar.scatter(len(take), which, reasons),
        client_ip=pc.coalesce(first_hop, column("remote_addr", take, present=True), column("realip_remote_addr", take, present=True)),
        user_agent=column("http_user_agent", take, present=True),
        closed_by=columnar.scatter(len(take), np.flatnonzero(failed & (status == 499)), "client"),
    ), _access_reader(access.pattern, websocket_paths)


def _access_reader(pattern: re.Pattern[str], websocket_paths: set[str]):
    def read_line(line: str) -> Record | None:
        fields = _access_fields(pattern, line)
        if fields is None:
            if re.match(r"^\S+ \S+ \S+ \[", line):  # starts like an access line, then breaks
                raise Malformed("starts like an nginx access line but does not match its log_format")
            return None
        return _access_record(fields, websocket_paths)

    return read_line


class AccessFormat:
    """The nginx access log in one ``log_format`` (the combined one by default, with extras)."""

    STRUCTURAL = True  # a log of ordinary requests is still an access log (0 WebSocket records)
    PROXY = True  # see LineFormat.PROXY

    def __init__(self, log_format: str | None = None, name: str = ACCESS_NAME) -> None:
        self.NAME = name
        self.log_format = log_format
        pattern = _COMBINED_PREFIX if log_format is None else compile_log_format(log_format)
        self.pattern = re.compile(CONTAINER_PREFIX + pattern.pattern)
        self.description = "nginx access log (" + ("combined + $request_time" if log_format is None else "custom log_format") + ")"

    def __repr__(self) -> str:
        return f"AccessFormat({self.log_format!r})"

    def detect(self, sample: list[str]) -> float:
        if not sample:
            return 0.0
        fields = [_access_fields(self.pattern, line) for line in sample]
        matched = [f for f in fields if f is not None]
        share = len(matched) / len(sample)
        if not matched:
            return 0.0
        # A log of ordinary requests is an access log too, but only WebSocket traffic is evidence.
        websocket = any(f.get("status") == "101" for f in matched) or any(
            (p := _path_of(f)) and WEBSOCKET_PATH.search(p) for f in matched
        )
        return share * (0.95 if websocket else 0.6)

    def parse(self, lines: Iterable[str], source: str, *, timezone: str | dt.tzinfo | None = None) -> ParsedLog:
        plan = _walk_plan(self.log_format)
        table = columnar.LineTable.of(lines) if plan is not None else None
        if table is not None:  # most lines as columns, the others line by line: the same result
            zone = timezone if isinstance(timezone, dt.tzinfo) else parse_timezone(timezone)
            return columnar.parse_columns(self.NAME, table, source, zone, lambda t, _: _read_columns(self, plan, t))
        from runbook.logs.common import to_lines

        lines = to_lines(lines)
        websocket_paths = set()
        for line in lines:  # first pass: paths that were upgraded somewhere in this log
            if " 101 " in line and (fields := _access_fields(self.pattern, line)) and fields.get("status") == "101":
                if path := _path_of(fields):
                    websocket_paths.add(path.split("?", 1)[0])
        return parse_lines(self.NAME, _access_reader(self.pattern, websocket_paths), lines, source, timezone=timezone)


def access_format(log_format: str, name: str = ACCESS_NAME) -> AccessFormat:
    """The access-log format for a custom nginx ``log_format`` string (e.g. from the config that
    ``proxy_config`` names); pass it to ``parse_log(..., format=...)``. Raises ValueError when
    the string holds no variable."""
    return AccessFormat(log_format, name)


ACCESS = AccessFormat()


def access_formats_from_directives(directives: Iterable[tuple[str, list[str]]]) -> list[AccessFormat]:
    """Access-log formats for the ``log_format`` directives of an nginx config, each given as
    ``(name, args)`` with the quoted pieces already unquoted (as crossplane gives them):
    ``log_format main escape=json '$remote_addr ...' '...';`` becomes the format
    ``nginx_access:main``. A directive without a ``$variable`` is left out."""
    formats = []
    for name, args in directives:
        if name != "log_format" or len(args) < 2:
            continue
        pieces = [arg for arg in args[1:] if not arg.startswith("escape=")]
        try:
            formats.append(access_format("".join(pieces), name=f"{ACCESS_NAME}:{args[0]}"))
        except ValueError:
            continue
    return formats


# --- error log ----------------------------------------------------------------------------------

_ERROR_LINE = re.compile(
    r"^" + CONTAINER_PREFIX + r"([0-9]{4})/([0-9]{2})/([0-9]{2}) ([0-9]{2}:[0-9]{2}:[0-9]{2}) \[(debug|info|notice|warn|error|crit|alert|emerg)\] "
    r"([0-9]+)#([0-9]+): (?:\*([0-9]+) )?(.*)$"
)
_CONTEXT = re.compile(r", (client|server|request|upstream|host|referrer): (\"[^\"]*\"|[^,]*)")
_PROXYING_UPGRADED = "while proxying upgraded connection"
_BEFORE_UPGRADE = re.compile(
    r"while connecting to upstream|while reading response header from upstream|while sending request to upstream"
    r"|no live upstreams|while SSL handshaking to upstream"
)
_RESOURCE = re.compile(r"worker_connections are not enough|Too many open files")


def _split_context(message: str) -> tuple[str, dict[str, str]]:
    first = _CONTEXT.search(message)
    if first is None:
        return message, {}
    context = {m.group(1): m.group(2).strip('"') for m in _CONTEXT.finditer(message, first.start())}
    return message[: first.start()], context


JOIN_TOLERANCE_S = 2.0  # nginx writes the error line and the access line of one close together


def join_error_closes(frame: pd.DataFrame) -> pd.DataFrame:
    """Fold each nginx error-log close of an upgraded connection into the access-log line of the
    same session: same client address, access line written within ``JOIN_TOLERANCE_S`` of it, an
    access line with a lifetime and no code yet. Each access line takes at most one error line;
    an error line without its access line stays a row of its own. ``frame``: LOG_COLUMNS."""
    reasons = frame["reason"].fillna("")
    is_error_close = (frame["event"] == "disconnect") & reasons.str.startswith("nginx ") & reasons.str.contains(_PROXYING_UPGRADED, regex=False)
    is_session = (frame["event"] == "disconnect") & frame["code"].isna() & frame["duration_s"].notna() & frame["reason"].isna()
    located = frame["ts"].notna() & frame["client_ip"].notna()
    errors = select_rows(frame[["ts", "client_ip"]], is_error_close & located)
    sessions = select_rows(frame[["ts", "client_ip"]], is_session & located)
    if errors.empty or sessions.empty:
        return frame
    left = errors[["ts", "client_ip"]].assign(error_row=errors.index).sort_values("ts")
    right = sessions[["ts", "client_ip"]].assign(session_row=sessions.index).sort_values("ts")
    left["client_ip"] = left["client_ip"].astype(str)
    right["client_ip"] = right["client_ip"].astype(str)
    pairs = pd.merge_asof(left, right, on="ts", by="client_ip", direction="nearest",
                          tolerance=pd.Timedelta(seconds=JOIN_TOLERANCE_S)).dropna(subset=["session_row"])
    pairs = pairs.drop_duplicates("session_row", keep="first")
    if pairs.empty:
        return frame
    frame = frame.copy()
    error_rows, session_rows = pairs["error_row"].to_numpy(), pairs["session_row"].astype(int).to_numpy()
    for column in ("code", "closed_by", "reason", "connection_id"):
        frame.loc[session_rows, column] = frame.loc[error_rows, column].to_numpy()
    return frame.drop(index=error_rows)


def read_error_line(line: str) -> Record | None:
    """One nginx error-log line as a record, or None for lines that are not about a WebSocket."""
    match = _ERROR_LINE.match(line)
    if match is None:
        return None
    year, month, day, clock, level, _pid, _tid, connection, message = match.groups()
    text, context = _split_context(message)
    request = context.get("request", "")
    path = request.split(" ")[1] if request.count(" ") >= 2 else None
    record = Record(
        event="error",
        ts=f"{year}-{month}-{day}T{clock}",
        connection_id=connection,
        client_ip=context.get("client"),
    )
    if _PROXYING_UPGRADED in text:
        record.event, record.code = "disconnect", 1006
        if "upstream timed out" in text or "client timed out" in text:
            record.closed_by = "proxy"
            timer = "proxy_read_timeout" if "upstream timed out" in text else "proxy_send_timeout"
            record.reason = f"nginx {level}: {text.strip()} ({timer})"
        else:
            record.reason = f"nginx {level}: {text.strip()}"
        return record
    if _BEFORE_UPGRADE.search(text) and (path is None or WEBSOCKET_PATH.search(path)):
        status = 504 if "timed out" in text else 502
        record.reason = f"handshake failed: nginx answered HTTP {status}: {text.strip()}" + (f" on {path}" if path else "")
        return record
    if _RESOURCE.search(text):
        record.reason = f"nginx {level}: {text.strip()}"
        return record
    return None


def _detect_error(sample: list[str]) -> float:
    share = share_matching(sample, _ERROR_LINE)
    return 0.9 * share if share else 0.0


ERROR = LineFormat(ERROR_NAME, "nginx error log", _detect_error, read_error_line, structural=True, proxy=True)
