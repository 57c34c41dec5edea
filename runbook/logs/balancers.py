"""Envoy access logs, Traefik JSON access logs and AWS ALB access logs.

All three write one line per request when it ends; for an upgraded WebSocket (status 101, or ALB
``type`` ws/wss) that line is the session: a ``disconnect`` at its end with its lifetime in
``duration_s``. A non-101 answer on a WebSocket path (``nginx.WEBSOCKET_PATH``) is a failed
upgrade (``handshake failed: HTTP 502 on /ws``); other requests are ignored lines.

- ``envoy`` (the default format: ``[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%
  %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% ...
  "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" ...``): the end is START_TIME
  + DURATION (ms). Response flags say how it ended (Envoy docs, "Access logging"): ``SI`` stream
  idle timeout and ``UT`` upstream request timeout (Envoy's timers: ``closed_by`` proxy), ``UC``
  upstream connection termination (server), ``DC`` downstream connection termination (client);
  these end without a close frame (1006).
- ``traefik`` (``accessLog.format: json``): ``StartUTC`` + ``Duration`` (ns), ``DownstreamStatus``,
  ``RequestPath``, ``ClientHost``, ``request_User-Agent``.
- ``aws_alb`` (ELB access log entries): ``type time elb client:port target:port ... elb_status_code
  ... "request" "user_agent" ... request_creation_time ...``. For WebSockets ``time`` is when the
  connection closed; duration = ``time - request_creation_time`` (AWS docs).
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

import numpy as np
import orjson

from runbook.logs import columnar
from runbook.logs.columnar import pa, pc
from runbook.logs.common import LogLines
from runbook.logs.lines import CONTAINER_PREFIX, Malformed, Record, share_matching
from runbook.logs.nginx import WEBSOCKET_PATH

ENVOY_NAME = "envoy"
TRAEFIK_NAME = "traefik"
ALB_NAME = "aws_alb"


def _handshake_error(record: Record, status: str, path: str, suffix: str = "") -> Record:
    record.event = "error"
    record.reason = f"handshake failed: HTTP {status} on {path.split('?', 1)[0]}{suffix}"
    record.duration_s = None
    return record


def _plus_ms(iso: str, milliseconds: float) -> str:
    try:
        start = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        raise Malformed(f"start time {iso!r} is not ISO 8601") from None
    return (start + dt.timedelta(milliseconds=milliseconds)).isoformat()


# --- Envoy ------------------------------------------------------------------------------------------

_ENVOY = re.compile(
    r"^" + CONTAINER_PREFIX + r'\[(?P<start>[0-9]{4}-[0-9]{2}-[0-9]{2}T[^\]]+)\] "(?P<method>[A-Z]+|-) (?P<path>\S+) (?P<protocol>[^"]*)" '
    r"(?P<status>[0-9]{1,3}) (?P<flags>\S+) (?P<received>[0-9]+) (?P<sent>[0-9]+) (?P<duration>[0-9]+|-) "
    r'(?P<upstream_time>\S+) "(?P<xff>[^"]*)" "(?P<agent>[^"]*)" "(?P<request_id>[^"]*)"'
)
ENVOY_FLAGS = {
    "SI": ("proxy", "stream idle timeout"),
    "UT": ("proxy", "upstream request timeout"),
    "UC": ("server", "upstream connection termination"),
    "DC": ("client", "downstream connection termination"),
    "LR": ("proxy", "connection local reset"),
    "UR": ("server", "upstream remote reset"),
    "DT": ("proxy", "request or connection exceeded max_connection_duration / max stream duration"),
}


def read_envoy(line: str) -> Record | None:
    match = _ENVOY.match(line)
    if match is None:
        if line.startswith("[") and '"' in line and re.match(r"^\[[0-9]{4}-", line):
            raise Malformed("starts like an Envoy access log line but its fields do not parse")
        return None
    fields = match.groupdict()
    status, path = fields["status"], fields["path"]
    duration = float(fields["duration"]) if fields["duration"].isdigit() else None
    record = Record(
        event="disconnect",
        ts=_plus_ms(fields["start"], duration or 0),
        duration_s=None if duration is None else duration / 1000,
        client_ip=(fields["xff"].split(",")[0].strip() or None) if fields["xff"] not in ("", "-") else None,
        user_agent=fields["agent"] if fields["agent"] not in ("", "-") else None,
        connection_id=fields["request_id"] if fields["request_id"] not in ("", "-") else None,
    )
    if status != "101":
        if not WEBSOCKET_PATH.search(path):
            return None
        return _handshake_error(record, status, path, f" (envoy {fields['flags']})" if fields["flags"] != "-" else "")
    flags = [flag for flag in fields["flags"].split(",") if flag in ENVOY_FLAGS]
    if flags:
        record.closed_by, what = ENVOY_FLAGS[flags[0]]
        record.code = 1006
        record.reason = f"envoy {flags[0]}: {what}"
    return record


def _detect_envoy(sample: list[str]) -> float:
    return 0.95 * share_matching(sample, _ENVOY)


_ENVOY_CLEAN = (
    r'\[[0-9]{4}-[0-9]{2}-[0-9]{2}T[^\]"\n]+\] "(?:[A-Z]+|-) [^\s"]+ [^"\n]*" [0-9]{1,3} [^\s"]+ [0-9]+ [0-9]+ (?:[0-9]+|-) [^\s"]+ '
    r'"[^"\n]*" "[^"\n]*" "[^"\n]*".*'
)
_MOST_MS = 12  # digits of a DURATION read as a column (up to ~31 years)


def _envoy_flags(flags: str) -> tuple[str | None, int | None, str | None]:
    """Who closed, the close code and the reason of a 101 line's RESPONSE_FLAGS (read_envoy)."""
    known = [flag for flag in flags.split(",") if flag in ENVOY_FLAGS]
    if not known:
        return None, None, None
    closed_by, what = ENVOY_FLAGS[known[0]]
    return closed_by, 1006, f"envoy {known[0]}: {what}"


def _present(table: columnar.LineTable, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Where a value is neither "" nor "-"."""
    return (stop > start) & ~((stop - start == 1) & (table.buf[np.minimum(start, len(table.buf) - 1)] == ord("-")))


def _read_envoy_columns(table: columnar.LineTable, zone) -> columnar.Columns:
    """Envoy lines read as columns (``read_envoy`` reads the others): the fields between the line's
    first eight quotes, as _ENVOY cuts them."""
    rows = np.flatnonzero(table.simple)
    body = table.prefix_ends(rows, CONTAINER_PREFIX.removesuffix("?"), CONTAINER_PREFIX)
    clean = table.matches(rows, body, _ENVOY_CLEAN)
    rows, body = rows[clean], body[clean]
    quotes = table.positions(ord('"'))
    first = np.searchsorted(quotes, body)
    ok = first + 7 < len(quotes)
    quote = [quotes[np.minimum(first + k, len(quotes) - 1)] for k in range(8)]
    times = columnar.iso_times(table, body + 1, quote[0] - 2)
    ok &= times.ok
    method_end = columnar.find_byte(table, quote[0] + 1, quote[1], ord(" "), 64)
    path_end = columnar.find_byte(table, method_end + 1, quote[1], ord(" "), 1 << 16)
    status_end, flags_end, received_end, sent_end, duration_end = columnar.first_bytes(table, quote[1] + 2, quote[2], ord(" "), 5, 128)
    ok &= (method_end > 0) & (path_end > 0) & (status_end > 0) & (flags_end > 0) & (received_end > 0) & (sent_end > 0) & (duration_end > 0)
    duration_at = sent_end + 1
    dash = (duration_end - duration_at == 1) & (table.buf[np.maximum(duration_at, 0)] == ord("-"))
    duration, digits_ok = columnar.number(table, duration_at, duration_end, _MOST_MS)
    ok &= dash | digits_ok
    duration = np.where(dash, 0, duration)
    read = np.flatnonzero(ok)
    rows, quote, dash, duration = rows[read], [q[read] for q in quote], dash[read], duration[read]
    method_end, path_end, status_end, flags_end = method_end[read], path_end[read], status_end[read], flags_end[read]
    status_at = quote[1] + 2
    upgraded = (status_end - status_at == 3) & (table.words(status_at) & 0xFFFFFF == int.from_bytes(b"101", "little"))
    path_u, path_of = table.distinct(method_end + 1, path_end)
    named_u = columnar.values_of(pc.match_substring_regex(path_u, WEBSOCKET_PATH.pattern, ignore_case=True))
    record = upgraded | named_u[path_of]
    take = np.flatnonzero(record)
    failed = ~upgraded[take]
    quote = [q[take] for q in quote]
    flags_u, flags_of = table.distinct(status_end[take] + 1, flags_end[take])
    ends = [_envoy_flags(text) for text in flags_u.to_pylist()]
    closed_by = pa.array([e[0] for e in ends], pa.large_string()).take(pa.array(flags_of))
    code_missing = np.array([e[1] is None for e in ends], bool)[flags_of] | failed
    reason = pa.array([e[2] for e in ends], pa.large_string()).take(pa.array(flags_of))
    if failed.any():  # handshake failed: HTTP 503 on /ws/chat (envoy UH)
        bad = np.flatnonzero(failed)
        flag_text = flags_u.take(pa.array(flags_of[bad]))
        status = table.strings(status_at[take][bad], status_end[take][bad])
        bare = pc.struct_field(pc.extract_regex(path_u.take(pa.array(path_of[take][bad])), r"^(?P<b>[^?]*)"), [0])
        suffix = columnar.if_else(pc.equal(flag_text, "-"), "", columnar.join(" (envoy ", flag_text, ")"))
        text = columnar.join("handshake failed: HTTP ", status, " on ", bare, suffix)
        other = pa.array(~failed)
        reason = columnar.if_else(other, reason, columnar.scatter(len(take), bad, text))
        closed_by = columnar.if_else(other, closed_by, None)
    dash, duration, times_of = dash[take], duration[take], read[take]
    wall = times.wall_ns[times_of] + times.micros[times_of] * 1000 + duration * 1_000_000
    zoned = times.zoned[times_of]
    ts_ns = np.where(zoned, wall - times.offset_ns[times_of], columnar.local_to_utc_ns(wall, zone))
    xff_at, xff_end = quote[2] + 1, quote[3]
    first_hop = pc.utf8_trim(pc.struct_field(pc.extract_regex(table.strings(xff_at, xff_end, _present(table, xff_at, xff_end)), r"^(?P<f>[^,]*)"), [0]), " \t")
    return columnar.Columns(
        rows=rows[take],
        ignored=rows[~record],
        ts_ns=ts_ns,
        event=np.where(failed, columnar.ERROR, columnar.DISCONNECT).astype(np.int8),
        duration_s=np.where(failed | dash, np.nan, duration / 1000),
        code=np.where(code_missing, 0, 1006),
        code_missing=code_missing,
        reason=reason,
        client_ip=columnar.if_else(pc.equal(first_hop, ""), None, first_hop),
        user_agent=table.strings(quote[4] + 1, quote[5], _present(table, quote[4] + 1, quote[5])),
        connection_id=table.strings(quote[6] + 1, quote[7], _present(table, quote[6] + 1, quote[7])),
        closed_by=closed_by,
    )


ENVOY = columnar.ColumnarFormat(ENVOY_NAME, "Envoy access log (default format, response flags)", _detect_envoy, read_envoy,
                                _read_envoy_columns, structural=True, proxy=True)


# --- Traefik ----------------------------------------------------------------------------------------

def read_traefik(line: str) -> Record | None:
    if '"DownstreamStatus"' not in line and '"RequestPath"' not in line:
        return None
    try:
        entry = orjson.loads(line[line.index("{") :])
    except (ValueError, orjson.JSONDecodeError):
        raise Malformed("a Traefik access-log line that is not valid JSON") from None
    if not isinstance(entry, dict):
        raise Malformed("a Traefik access-log line that is not a JSON object")
    status = str(entry.get("DownstreamStatus", entry.get("OriginStatus", "")))
    path = str(entry.get("RequestPath", ""))
    duration_ns = entry.get("Duration")
    start = entry.get("StartUTC") or entry.get("StartLocal") or entry.get("time")
    if not isinstance(start, str):
        raise Malformed("no StartUTC")
    if not isinstance(duration_ns, (int, float)):
        duration_ns = None
    agent = entry.get("request_User-Agent")
    record = Record(
        event="disconnect",
        ts=_plus_ms(start, (duration_ns or 0) / 1e6),
        duration_s=None if duration_ns is None else duration_ns / 1e9,
        client_ip=entry.get("ClientHost") if isinstance(entry.get("ClientHost"), str) else None,
        user_agent=agent if isinstance(agent, str) else None,
        connection_id=str(entry["request_X-Request-Id"]) if entry.get("request_X-Request-Id") else None,
    )
    if status != "101":
        if not WEBSOCKET_PATH.search(path):
            return None
        return _handshake_error(record, status, path)
    return record


def _detect_traefik(sample: list[str]) -> float:
    return 0.95 * share_matching(sample, re.compile(r'"DownstreamStatus"\s*:'))


_MOST_NS = 10**18  # a Duration read here (~31 years): the end stays a real datetime64[ns] time


def _timedelta_us(milliseconds: np.ndarray) -> np.ndarray:
    """``datetime.timedelta(milliseconds=x)`` of each float, in microseconds, as CPython computes
    it: the whole milliseconds exactly, then 1000 * the fraction, whose fraction is rounded half to
    even on the result (``delta_new`` / ``accum`` in Modules/_datetimemodule.c)."""
    whole = np.trunc(milliseconds)
    micro = whole.astype(np.int64) * 1000
    scaled = 1000.0 * (milliseconds - whole)
    whole_scaled = np.trunc(scaled)
    micro += whole_scaled.astype(np.int64)
    leftover = scaled - whole_scaled  # in (-1, 1)
    nearest = np.where(np.abs(leftover) >= 0.5, np.sign(leftover), 0.0)  # C round(): half away from zero
    odd = (micro & 1).astype(np.float64)
    halfway = np.abs(nearest - leftover) == 0.5
    nearest = np.where(halfway, 2.0 * np.where(np.abs((leftover + odd) * 0.5) >= 0.5, np.sign((leftover + odd) * 0.5), 0.0) - odd, nearest)
    return micro + nearest.astype(np.int64)


def _read_traefik_columns(table: columnar.LineTable, zone) -> columnar.Columns:
    """Traefik lines: each decoded by orjson as read_traefik decodes it, the fields pulled out in
    one pass; StartUTC + Duration and the frame built as columns. Lines whose values are not of the
    plain kinds (a start that is not strict ISO 8601, a huge Duration...) go to ``read_traefik``."""
    ignored, rows, starts, durations = [], [], [], []
    status, client, agent, request_id, path = [], [], [], [], []
    lines = table.data[: table.end[-1]].split(b"\n") if len(table) else []
    loads = orjson.loads
    for row, (line, simple) in enumerate(zip(lines, table.simple.tolist())):
        if not simple:
            continue
        if b'"DownstreamStatus"' not in line and b'"RequestPath"' not in line:
            if line.strip():
                ignored.append(row)
            continue
        brace = line.find(b"{")
        if brace < 0:
            continue
        try:
            entry = loads(line[brace:])
        except orjson.JSONDecodeError:
            continue
        if type(entry) is not dict:
            continue
        get = entry.get
        start = get("StartUTC") or get("StartLocal") or get("time")
        if not isinstance(start, str) or not start.isascii() or "\n" in start:
            continue
        duration = get("Duration")
        if not isinstance(duration, (int, float)):
            duration = None
        elif not -_MOST_NS <= duration <= _MOST_NS:  # also NaN
            continue
        host, user_agent, the_id = get("ClientHost"), get("request_User-Agent"), get("request_X-Request-Id")
        rows.append(row)
        starts.append(start)
        durations.append(duration)
        status.append(str(get("DownstreamStatus", get("OriginStatus", ""))))
        path.append(str(get("RequestPath", "")))
        client.append(host if isinstance(host, str) else None)
        agent.append(user_agent if isinstance(user_agent, str) else None)
        request_id.append(str(the_id) if the_id else None)
    count = len(rows)
    if not count:
        return columnar.Columns(rows=np.empty(0, np.int64), ignored=np.array(ignored, np.int64), ts_ns=np.empty(0, np.int64),
                                event=np.empty(0, np.int8), duration_s=np.empty(0, np.float64))
    rows_of = np.array(rows, np.int64)
    times_table = columnar.LineTable.of(LogLines(starts))  # one line per start (none holds a newline)
    times = columnar.iso_times(times_table, times_table.start, times_table.end)
    given = np.array([d is not None for d in durations], bool)
    duration = np.array([0.0 if d is None else float(d) for d in durations], np.float64)
    # _plus_ms: fromisoformat(start) + timedelta(milliseconds=(Duration or 0) / 1e6), then isoformat
    micro = (times.wall_ns // 1000 + times.micros) + _timedelta_us(duration / 1e6)
    day = micro // 86_400_000_000
    ok = times.ok & (day > -26_000) & (day < 84_000)  # 1898-2199: a datetime and a datetime64[ns] time
    ts_ns = np.where(times.zoned, micro * 1000 - times.offset_ns, columnar.local_to_utc_ns(np.where(times.zoned, 0, micro * 1000), zone))
    upgraded = np.array([text == "101" for text in status], bool)
    named = np.array([not up and WEBSOCKET_PATH.search(text) is not None for up, text in zip(upgraded.tolist(), path)], bool)
    record = ok & (upgraded | named)
    take = np.flatnonzero(record)
    pick = pa.array(take)
    failed = ~upgraded[take]
    reason = [f"handshake failed: HTTP {status[k]} on {path[k].split('?', 1)[0]}" for k in take[failed].tolist()]
    return columnar.Columns(
        rows=rows_of[take],
        ignored=np.sort(np.concatenate((np.array(ignored, np.int64), rows_of[ok & ~record]))),
        ts_ns=ts_ns[take],
        event=np.where(failed, columnar.ERROR, columnar.DISCONNECT).astype(np.int8),
        duration_s=np.where(failed | ~given[take], np.nan, duration[take] / 1e9),
        reason=columnar.scatter(len(take), np.flatnonzero(failed), columnar.strings_of(reason)),
        client_ip=columnar.strings_of(client).take(pick),
        user_agent=columnar.strings_of(agent).take(pick),
        connection_id=columnar.strings_of(request_id).take(pick),
    )


TRAEFIK = columnar.ColumnarFormat(TRAEFIK_NAME, "Traefik JSON access log", _detect_traefik, read_traefik, _read_traefik_columns,
                                  structural=True, proxy=True)


# --- AWS ALB ----------------------------------------------------------------------------------------

_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')
_ALB_START = re.compile(r"^(?:http|https|h2|grpcs|ws|wss) [0-9]{4}-[0-9]{2}-[0-9]{2}T")


def read_alb(line: str) -> Record | None:
    if not _ALB_START.match(line):
        return None
    tokens = [m.group(1) if m.group(1) is not None else m.group(2) for m in _TOKEN.finditer(line)]
    if len(tokens) < 22:
        raise Malformed(f"an ALB entry with {len(tokens)} fields; at least 22 expected")
    kind, end, client, status, request, agent, created = tokens[0], tokens[1], tokens[3], tokens[8], tokens[12], tokens[13], tokens[21]
    url = request.split(" ")[1] if request.count(" ") >= 1 else ""
    path = urlsplit(url).path if "://" in url else url
    record = Record(event="disconnect", ts=end, client_ip=client.rsplit(":", 1)[0] if ":" in client else client,
                    user_agent=agent if agent not in ("", "-") else None, connection_id=tokens[17] if tokens[17] != "-" else None)
    if kind in ("ws", "wss") and status == "101":
        try:
            start = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
            finish = dt.datetime.fromisoformat(end.replace("Z", "+00:00"))
        except ValueError:
            raise Malformed("request_creation_time or time is not ISO 8601") from None
        record.duration_s = (finish - start).total_seconds()
        return record
    if kind in ("ws", "wss") or WEBSOCKET_PATH.search(path):
        return _handshake_error(record, status, path or "?")
    return None


def _detect_alb(sample: list[str]) -> float:
    return 0.95 * share_matching(sample, _ALB_START)


# A clean entry: fields separated by single blanks, unquoted ones without quotes, quoted ones
# without quotes or backslashes, in the order of the ELB log; what follows field 21 is free.
_ALB_UNQUOTED, _ALB_QUOTED = r'[^\s"]+', r'"[^"\\\n]*"'
_ALB_CLEAN = (
    r"(?:http|https|h2|grpcs|ws|wss) [0-9]{4}-[0-9]{2}-[0-9]{2}T[^\s\"]*"
    + (" " + _ALB_UNQUOTED) * 10 + (" " + _ALB_QUOTED) * 2 + (" " + _ALB_UNQUOTED) * 3 + (" " + _ALB_QUOTED) * 3
    + (" " + _ALB_UNQUOTED) * 2 + "(?: .*)?"
)


def _alb_path(request: str) -> str | None:
    """read_alb's path of a request field; None when urlsplit raises (the line reader does that)."""
    url = request.split(" ")[1] if request.count(" ") >= 1 else ""
    try:
        return urlsplit(url).path if "://" in url else url
    except ValueError:
        return None


def _read_alb_columns(table: columnar.LineTable, zone) -> columnar.Columns:
    """ALB entries read as columns (``read_alb`` reads the others): fields 0-11 end at the first 12
    blanks, the quoted ones at the line's quotes."""
    rows = np.flatnonzero(table.simple)
    rows = rows[table.matches(rows, table.start[rows], _ALB_CLEAN)]
    start = table.start[rows]
    end = table.end[rows]
    blank = [start - 1, *columnar.first_bytes(table, start, end, ord(" "), 9, 320)]  # after fields 0-8
    quotes = table.positions(ord('"'))
    first = np.searchsorted(quotes, start)
    ok = (blank[9] > 0) & (first + 9 < len(quotes))
    quote = [quotes[np.minimum(first + k, len(quotes) - 1)] for k in range(10)]
    created_at = columnar.find_byte(table, quote[9] + 2, end, ord(" "), 4096) + 1  # after field 20
    created_end = columnar.find_byte(table, created_at, end, ord(" "), 4096)
    created_end = np.where(created_end < 0, end, created_end)
    ok &= created_at > 0
    # field 3, the client: up to its last colon
    colon = columnar.find_byte_back(table, blank[4] - 1, blank[3] + 1, ord(":"), 64)
    ok &= (colon >= 0) | (blank[4] - blank[3] - 1 <= 64)
    kind_width = blank[1] - start
    websocket = ((kind_width == 2) | (kind_width == 3)) & (table.words(start) & 0xFFFF == int.from_bytes(b"ws", "little"))
    status_at = blank[8] + 1
    upgraded = (blank[9] - status_at == 3) & (table.words(status_at) & 0xFFFFFF == int.from_bytes(b"101", "little"))
    finish = columnar.iso_times(table, blank[1] + 1, blank[2])
    began = columnar.iso_times(table, created_at, created_end)
    ok &= finish.ok
    session = websocket & upgraded
    ok &= ~session | (began.ok & (began.zoned == finish.zoned))  # else Malformed or a TypeError: the line reader's
    requests, request_of = table.distinct(quote[0] + 1, quote[1])
    paths_u = [_alb_path(text) for text in requests.to_pylist()]
    ok &= ~np.array([p is None for p in paths_u], bool)[request_of] if paths_u else True
    path_u = pa.array([p or "" for p in paths_u], pa.large_string())
    named_u = columnar.values_of(pc.match_substring_regex(path_u, WEBSOCKET_PATH.pattern, ignore_case=True))
    record = ok & (websocket | named_u[request_of])
    take = np.flatnonzero(record)
    ignored = rows[ok & ~record]
    failed = ~session[take]
    blank, quote = [b[take] for b in blank], [q[take] for q in quote]
    colon, begun_us = colon[take], None
    finish_ns = finish.wall_ns[take] + finish.nanos[take]
    ts_ns = np.where(finish.zoned[take], finish_ns - finish.offset_ns[take], columnar.local_to_utc_ns(finish_ns, zone))
    end_us = (finish.wall_ns[take] - finish.offset_ns[take]) // 1000 + finish.micros[take]
    begun_us = (began.wall_ns[take] - began.offset_ns[take]) // 1000 + began.micros[take]
    duration = np.where(failed, np.nan, (end_us - begun_us) / 1e6)
    reason = None
    if failed.any():  # handshake failed: HTTP 502 on /ws
        bad = np.flatnonzero(failed)
        status = table.strings(blank[8][bad] + 1, blank[9][bad])
        path = path_u.take(pa.array(request_of[take][bad]))
        bare = pc.struct_field(pc.extract_regex(columnar.if_else(pc.equal(path, ""), "?", path), r"^(?P<b>[^?]*)"), [0])
        reason = columnar.scatter(len(take), bad, columnar.join("handshake failed: HTTP ", status, " on ", bare))
    agent_at, agent_end = quote[2] + 1, quote[3]
    trace_at, trace_end = quote[4] + 1, quote[5]
    trace_dash = (trace_end - trace_at == 1) & (table.buf[np.minimum(trace_at, len(table.buf) - 1)] == ord("-"))
    return columnar.Columns(
        rows=rows[take],
        ignored=ignored,
        ts_ns=ts_ns,
        event=np.where(failed, columnar.ERROR, columnar.DISCONNECT).astype(np.int8),
        duration_s=duration,
        reason=reason,
        client_ip=table.strings(blank[3] + 1, np.where(colon >= 0, colon, blank[4])),
        user_agent=table.strings(agent_at, agent_end, _present(table, agent_at, agent_end)),
        connection_id=table.strings(trace_at, trace_end, ~trace_dash),
    )


ALB = columnar.ColumnarFormat(ALB_NAME, "AWS ALB access log (ws/wss entries)", _detect_alb, read_alb, _read_alb_columns, structural=True, proxy=True)

FORMATS = (ENVOY, TRAEFIK, ALB)
