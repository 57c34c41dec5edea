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

import orjson

from runbook.logs.lines import CONTAINER_PREFIX, LineFormat, Malformed, Record, share_matching
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


ENVOY = LineFormat(ENVOY_NAME, "Envoy access log (default format, response flags)", _detect_envoy, read_envoy, structural=True)


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


TRAEFIK = LineFormat(TRAEFIK_NAME, "Traefik JSON access log", _detect_traefik, read_traefik, structural=True)


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


ALB = LineFormat(ALB_NAME, "AWS ALB access log (ws/wss entries)", _detect_alb, read_alb, structural=True)

FORMATS = (ENVOY, TRAEFIK, ALB)
