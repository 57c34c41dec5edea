"""HAProxy HTTP (``option httplog``) and TCP (``option tcplog``) logs, one format.

    127.0.0.1:60726 [30/Nov/2026:16:37:14.582] ws_http chat/app1 0/0/0/3/2004 101 294 - - cD-- 3/3/2/2/0 0/0 {ua} "GET /ws/chat HTTP/1.1"
    127.0.0.1:53490 [30/Nov/2026:16:37:19.544] ws_tcp chat_tcp/app1 1/0/2004 303 cD 3/3/2/2/0 0/0

with or without a syslog prefix (``Nov 30 16:37:14 lb haproxy[812]: ``). HAProxy writes the line
when the session ends, but the date in brackets is when it was *accepted*, in local time without
a zone (``log_timezone``); the last timer (``Ta``/``Tt``, ms) is the session's total time. So a
record's time is accept date + total time, its ``duration_s`` the total time.

- A ``mode http`` line with status 101, and every ``mode tcp`` line, is a session that ended: a
  ``disconnect``. Its termination state (HAProxy manual 8.5) says how: ``cD``/``sD`` a client- /
  server-side timeout in the data phase (``timeout client``/``server``/``tunnel``: HAProxy's own
  timer, ``closed_by`` proxy), ``CD`` the client aborted, ``SD`` the server aborted; those end
  without a close frame (code 1006, RFC 6455 7.1.5). ``--`` is an ordinary end, code unknown.
- A ``mode http`` line with another status on a WebSocket path (``nginx.WEBSOCKET_PATH``) is a
  failed upgrade: ``handshake failed: HTTP 426 on /ws/chat (haproxy ----)``.
- Captured headers (``{...}``) that read like a user agent or an address fill those columns.
"""

from __future__ import annotations

import datetime as dt
import re

from runbook.logs.lines import CONTAINER_PREFIX, LineFormat, Malformed, Record
from runbook.logs.nginx import _MONTHS, WEBSOCKET_PATH

NAME = "haproxy"

_SYSLOG = r"(?:(?:[A-Z][a-z]{2} +[0-9]{1,2} [0-9:]{8}|[0-9]{4}-[0-9]{2}-[0-9]{2}T\S+) \S+ \S+?(?:\[[0-9]+\])?: )?"
_HEAD = (
    r"^" + CONTAINER_PREFIX + _SYSLOG + r"(?P<client>\S+):(?P<port>[0-9]+) \[(?P<date>[^\]]+)\] (?P<frontend>\S+) (?P<backend>[^/\s]+)/(?P<server>\S+) "
)
_HTTP = re.compile(
    _HEAD + r"(?P<timers>-?[0-9]+/-?[0-9]+/-?[0-9]+/-?[0-9]+/\+?-?[0-9]+) (?P<status>-?[0-9]+) \+?[0-9]+ \S+ \S+ "
    r"(?P<term>[-A-Za-z]{4}) \S+ \S+(?P<captures>(?: \{[^}]*\})*)(?: \"(?P<request>[^\"]*)\"?)?\s*$"
)
_TCP = re.compile(
    _HEAD + r"(?P<timers>-?[0-9]+/-?[0-9]+/\+?-?[0-9]+) \+?[0-9]+ (?P<term>[-A-Za-z]{2}) \S+ \S+\s*$"
)
_LOOSE = re.compile(r"^" + _SYSLOG + r"\S+:[0-9]+ \[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:")
_DATE = re.compile(r"([0-9]{2})/([A-Z][a-z]{2})/([0-9]{4}):([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?")
_ADDRESS = re.compile(r"^[0-9A-Fa-f:.]+$")

# Termination states (HAProxy configuration manual, 8.5 "Session state at disconnection").
TERMINATIONS = {
    "cD": ("proxy", "client-side timeout in the data phase (timeout client/tunnel)"),
    "sD": ("proxy", "server-side timeout in the data phase (timeout server/tunnel)"),
    "CD": ("client", "the client aborted in the data phase"),
    "SD": ("server", "the server aborted in the data phase"),
    "KD": ("proxy", "killed by HAProxy in the data phase"),
    "PD": ("proxy", "HAProxy aborted in the data phase"),
}


def _end_time(date: str, total_ms: int | None) -> str:
    match = _DATE.fullmatch(date)
    if not match or match.group(2) not in _MONTHS:
        raise Malformed(f"accept date {date!r} is not dd/Mon/yyyy:hh:mm:ss.mmm")
    day, month, year, hour, minute, second, fraction = match.groups()
    try:
        accepted = dt.datetime(int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second),
                               int((fraction or "0").ljust(6, "0")))
    except ValueError as exc:
        raise Malformed(f"accept date {date!r}: {exc}") from None
    if total_ms is not None and total_ms >= 0:
        accepted += dt.timedelta(milliseconds=total_ms)
    return accepted.isoformat()  # naive: HAProxy logs local time


def _captures(text: str, record: Record) -> None:
    for value in re.findall(r"\{([^}]*)\}", text or ""):
        for item in value.split("|"):
            item = item.strip()
            first = item.split(",")[0].strip()
            if record.client_ip is None and first and _ADDRESS.match(first) and any(c in first for c in ".:"):
                record.client_ip = first  # a captured X-Forwarded-For: the user's address
            elif record.user_agent is None and "/" in item and any(c.isalpha() for c in item):
                record.user_agent = item


def read_line(line: str) -> Record | None:
    """One HAProxy log line as a record; None for other lines (startup messages, other logs)."""
    match = _HTTP.match(line) or _TCP.match(line)
    if match is None:
        if _LOOSE.match(line):
            raise Malformed("starts like an HAProxy log line but its fields do not parse")
        return None
    fields = match.groupdict()
    total = int(fields["timers"].rsplit("/", 1)[1].lstrip("+"))
    term = fields["term"]
    record = Record(
        event="disconnect",
        ts=_end_time(fields["date"], total),
        duration_s=total / 1000 if total >= 0 else None,
    )
    _captures(fields.get("captures") or "", record)
    record.client_ip = record.client_ip or fields["client"]
    status = fields.get("status")
    if status is not None and status != "101":  # mode http, no upgrade
        request = fields.get("request") or ""
        path = request.split(" ")[1] if request.count(" ") >= 1 else ""
        if not WEBSOCKET_PATH.search(path):
            return None
        record.event = "error"
        record.reason = f"handshake failed: HTTP {status} on {path.split('?', 1)[0]} (haproxy {term})"
        record.duration_s = None
        return record
    state = term[:2]
    if state in TERMINATIONS:
        record.closed_by, what = TERMINATIONS[state]
        record.code = 1006
        record.reason = f"haproxy {state}: {what}"
    elif state[0] in "cs" and state[1] in "RQCHT":
        record.closed_by, record.code = "proxy", 1006
        record.reason = f"haproxy {state}: timeout before the data phase"
    elif state != "--":
        record.code = 1006
        record.reason = f"haproxy {state}: session aborted"
    return record


def detect(sample: list[str]) -> float:
    if not sample:
        return 0.0
    return 0.95 * sum(1 for line in sample if _HTTP.match(line) or _TCP.match(line)) / len(sample)


FORMAT = LineFormat(NAME, "HAProxy HTTP/TCP log (option httplog / tcplog)", detect, read_line, structural=True)
