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

import numpy as np

from runbook.logs import columnar
from runbook.logs.columnar import pa, pc
from runbook.logs.lines import CONTAINER_PREFIX, Malformed, Record
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
    record.closed_by, record.code, record.reason = _termination(term[:2])
    return record


def _termination(state: str) -> tuple[str | None, int | None, str | None]:
    """Who closed, the close code and the reason a session's termination state (its first two
    letters) gives; ``--`` is an ordinary end (nothing)."""
    if state in TERMINATIONS:
        closed_by, what = TERMINATIONS[state]
        return closed_by, 1006, f"haproxy {state}: {what}"
    if state[0] in "cs" and state[1] in "RQCHT":
        return "proxy", 1006, f"haproxy {state}: timeout before the data phase"
    if state != "--":
        return None, 1006, f"haproxy {state}: session aborted"
    return None, None, None


def detect(sample: list[str]) -> float:
    if not sample:
        return 0.0
    return 0.95 * sum(1 for line in sample if _HTTP.match(line) or _TCP.match(line)) / len(sample)


# --- as columns (see runbook/logs/columnar.py) -------------------------------------------------------

_SOME_PREFIX = "(?:" + CONTAINER_PREFIX.removesuffix("?") + "|" + _SYSLOG.removesuffix("?") + ")"
# The line patterns with quote-free fields, a date read as _DATE reads it, no trailing blanks.
_FIELD = r'[^\s"]+'
_CLEAN_HEAD = (
    _FIELD + r':[0-9]+ \[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?\] '
    + _FIELD + r' [^/\s"]+/' + _FIELD + " "
)
_CLEAN_HTTP = (
    _CLEAN_HEAD + r"-?[0-9]+/-?[0-9]+/-?[0-9]+/-?[0-9]+/\+?-?[0-9]+ -?[0-9]+ \+?[0-9]+ " + _FIELD + " " + _FIELD
    + r" [-A-Za-z]{4} " + _FIELD + " " + _FIELD + r'(?: \{[^}"\n]*\})*(?: "[^"\n]*")?'
)
_CLEAN_TCP = _CLEAN_HEAD + r"-?[0-9]+/-?[0-9]+/\+?-?[0-9]+ \+?[0-9]+ [-A-Za-z]{2} " + _FIELD + " " + _FIELD
_MOST_MS = 12  # digits of a session's total time read as a column (up to ~31 years)


def _read_columns(table: columnar.LineTable, zone) -> columnar.Columns:
    """The HAProxy lines read as columns (``read_line`` reads the others): in a line the clean
    pattern matches, the first 11 (HTTP) or 8 (TCP) blanks after the prefix end its fields."""
    rows = np.flatnonzero(table.simple)
    body = table.prefix_ends(rows, _SOME_PREFIX, CONTAINER_PREFIX + _SYSLOG)
    http = table.matches(rows, body, _CLEAN_HTTP)
    tcp = ~http
    tcp[tcp] = table.matches(rows[tcp], body[tcp], _CLEAN_TCP)
    keep = http | tcp
    rows, body, http = rows[keep], body[keep], http[keep]
    end = table.end[rows]
    blanks = table.positions(ord(" "))
    first = np.searchsorted(blanks, body)
    fields = np.where(http, 11, 8)  # blanks that end the fields before the captures / the end
    ok = first + fields - 1 < len(blanks)
    blank = [blanks[np.minimum(first + k, len(blanks) - 1)] if k != 2 and k != 6 and k != 9 else None for k in range(12)]
    blank[11] = np.where(first + 11 < len(blanks), np.minimum(blank[11], end), end)  # HTTP: the last field's end
    ok &= np.where(http, blank[10], blank[7]) < end
    # client:port, the client up to the last colon
    colon = columnar.find_byte_back(table, blank[0] - 1, body, ord(":"), 24)
    ok &= colon > body
    # [date]: dd/Mon/yyyy:hh:mm:ss[.ffffff], read as _end_time reads it
    date = table.bytes_at(blank[0] + 2, 27)
    width = blank[1] - 1 - (blank[0] + 2)

    def number(offset: int, size: int) -> np.ndarray:
        value = np.zeros(len(rows), np.int64)
        for column in range(offset, offset + size):
            value = value * 10 + date[:, column] - 48
        return value

    micro = np.zeros(len(rows), np.int64)
    for column in range(21, 27):
        micro = micro * 10 + np.where(column < width, date[:, column].astype(np.int64) - 48, 0)
    month = columnar.month_numbers(table, blank[0] + 5)
    wall, real = columnar.civil_ns(number(7, 4), month, number(0, 2), number(12, 2), number(15, 2), number(18, 2))
    ok &= real & (month > 0)
    # Tt, the last timer: [+][-]digits
    slash = columnar.find_byte_back(table, blank[4] - 1, blank[3] + 1, ord("/"), 24)
    at = slash + 1
    at = at + (table.buf[at] == ord("+"))
    minus = table.buf[at] == ord("-")
    total, digits_ok = columnar.number(table, at + minus, blank[4], _MOST_MS)
    ok &= (slash > blank[3]) & digits_ok
    total = np.where(minus, -total, total)
    upgraded = ~http | ((blank[5] - blank[4] == 4) & (table.words(blank[4] + 1) & 0xFFFFFF == int.from_bytes(b"101", "little")))
    term_at = np.where(http, blank[8] + 1, blank[5] + 1)
    # the request line: the last thing on an HTTP line, in quotes (captures hold none)
    quoted = http & (table.buf[np.maximum(end - 1, 0)] == ord('"'))
    open_quote = np.where(quoted, columnar.find_byte(table, blank[11], end, ord('"'), 1 << 16), -1)
    ok &= ~quoted | (open_quote >= 0)
    read = np.flatnonzero(ok)
    rows, http, end, body, total, wall, micro = rows[read], http[read], end[read], body[read], total[read], wall[read], micro[read]
    blank = [None if b is None else b[read] for b in blank]
    client_end, upgraded, term_at, quoted, open_quote = colon[read], upgraded[read], term_at[read], quoted[read], open_quote[read]
    last = np.where(http, blank[11], end)
    captures_end = np.where(quoted, open_quote - 1, end)
    # failed upgrades: a status other than 101 on a WebSocket path
    request = table.strings(open_quote + 1, end - 1, quoted)
    requests = pc.dictionary_encode(request, null_encoding="encode")
    path_u = pc.coalesce(pc.struct_field(pc.extract_regex(requests.dictionary, r"^[^ ]* (?P<p>[^ ]*)"), [0]), "")
    named_u = columnar.values_of(pc.match_substring_regex(path_u, WEBSOCKET_PATH.pattern, ignore_case=True))
    which = requests.indices.to_numpy(zero_copy_only=False)
    record = upgraded | named_u[which]
    ignored = rows[~record]
    take = np.flatnonzero(record)
    failed = ~upgraded[take]
    # the record: captures first (a captured address wins over the connecting one)
    client_ip = table.strings(body[take], client_end[take])
    user_agent = pa.nulls(len(take), pa.large_string())
    captured = np.flatnonzero(captures_end[take] > last[take])
    if captured.size:
        texts = pc.dictionary_encode(table.strings(last[take][captured], captures_end[take][captured]))
        found = []
        for text in texts.dictionary.to_pylist():
            record_of = Record(event="disconnect")
            _captures(text, record_of)
            found.append((record_of.client_ip, record_of.user_agent))
        ip_u = pa.array([ip for ip, _ in found], pa.large_string())
        agent_u = pa.array([agent for _, agent in found], pa.large_string())
        at_u = texts.indices
        client_ip = columnar.if_else(
            pa.array(columnar.scatter_mask(len(take), captured, columnar.values_of(pc.is_valid(ip_u.take(at_u))))),
            columnar.scatter(len(take), captured, ip_u.take(at_u)), client_ip)
        user_agent = columnar.scatter(len(take), captured, agent_u.take(at_u))
    state_at = term_at[take]
    state = table.words(state_at).astype(np.int64) & 0xFFFF
    states, state_of = np.unique(state, return_inverse=True)
    ends = [_termination(int(code).to_bytes(2, "little").decode("ascii")) for code in states]
    closed_by = pa.array([e[0] for e in ends], pa.large_string()).take(pa.array(state_of))
    code_u = np.array([0 if e[1] is None else e[1] for e in ends], np.int64)
    reason = pa.array([e[2] for e in ends], pa.large_string()).take(pa.array(state_of))
    code, code_missing = code_u[state_of], np.array([e[1] is None for e in ends], bool)[state_of]
    if failed.any():  # handshake failed: HTTP 426 on /ws/chat (haproxy ----)
        bad = np.flatnonzero(failed)
        rows_bad = take[bad]
        status = table.strings(blank[4][rows_bad] + 1, blank[5][rows_bad])
        bare = pc.struct_field(pc.extract_regex(path_u.take(pa.array(which[rows_bad])), r"^(?P<b>[^?]*)"), [0])
        term = table.strings(term_at[rows_bad], term_at[rows_bad] + 4)
        text = columnar.join("handshake failed: HTTP ", status, " on ", bare, " (haproxy ", term, ")")
        keep_reason = np.ones(len(take), bool)
        keep_reason[bad] = False
        reason = columnar.if_else(pa.array(keep_reason), reason, columnar.scatter(len(take), bad, text))
        closed_by = columnar.if_else(pa.array(keep_reason), closed_by, None)
        code_missing = code_missing | failed
    total = total[take]
    wall = wall[take] + micro[take] * 1000 + np.where(total >= 0, total, 0) * 1_000_000
    return columnar.Columns(
        rows=rows[take],
        ignored=ignored,
        ts_ns=columnar.local_to_utc_ns(wall, zone),
        event=np.where(failed, columnar.ERROR, columnar.DISCONNECT).astype(np.int8),
        duration_s=np.where(failed | (total < 0), np.nan, total / 1000),
        code=np.where(code_missing, 0, code),
        code_missing=code_missing,
        reason=reason,
        client_ip=client_ip,
        user_agent=user_agent,
        closed_by=closed_by,
    )


FORMAT = columnar.ColumnarFormat(NAME, "HAProxy HTTP/TCP log (option httplog / tcplog)", detect, read_line, _read_columns, structural=True,
                                  proxy=True)
