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
import re
from collections.abc import Iterable

import pandas as pd

from runbook.logs.lines import CONTAINER_PREFIX, LineFormat, Malformed, Record, epoch_to_iso, parse_lines, share_matching
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


def compile_log_format(log_format: str) -> re.Pattern[str]:
    """A regex for lines written by an nginx ``log_format`` string (the concatenated quoted
    pieces of the directive, variables as ``$name`` or ``${name}``). Each variable becomes a
    named group of its name (a repeated one keeps its first occurrence). Raises ValueError
    when the string holds no variable."""
    parts, seen, position = [], set(), 0
    variables = list(_VARIABLE.finditer(log_format))
    if not variables:
        raise ValueError("the log_format holds no $variable")
    for index, match in enumerate(variables):
        parts.append(re.escape(log_format[position : match.start()]))
        name = match.group(1) or match.group(2)
        following = log_format[match.end() : variables[index + 1].start() if index + 1 < len(variables) else None]
        pattern = _VARIABLE_PATTERNS.get(name)
        if pattern is None:
            if not following:
                pattern = r".*" if index + 1 == len(variables) else r"\S*"
            else:
                pattern = f"[^{re.escape(following[0])}]*"
        if name in seen:
            parts.append(f"(?:{pattern})")
        else:
            seen.add(name)
            parts.append(f"(?P<{name}>{pattern})")
        position = match.end()
    parts.append(re.escape(log_format[position:]))
    return re.compile("".join(parts))


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


class AccessFormat:
    """The nginx access log in one ``log_format`` (the combined one by default, with extras)."""

    STRUCTURAL = True  # a log of ordinary requests is still an access log (0 WebSocket records)

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
        from runbook.logs.common import to_lines

        lines = to_lines(lines)
        websocket_paths = set()
        for line in lines:  # first pass: paths that were upgraded somewhere in this log
            if " 101 " in line and (fields := _access_fields(self.pattern, line)) and fields.get("status") == "101":
                if path := _path_of(fields):
                    websocket_paths.add(path.split("?", 1)[0])

        def read_line(line: str) -> Record | None:
            fields = _access_fields(self.pattern, line)
            if fields is None:
                if re.match(r"^\S+ \S+ \S+ \[", line):  # starts like an access line, then breaks
                    raise Malformed("starts like an nginx access line but does not match its log_format")
                return None
            return _access_record(fields, websocket_paths)

        return parse_lines(self.NAME, read_line, lines, source, timezone=timezone)


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
    errors = frame[is_error_close & frame["ts"].notna() & frame["client_ip"].notna()]
    sessions = frame[is_session & frame["ts"].notna() & frame["client_ip"].notna()]
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


ERROR = LineFormat(ERROR_NAME, "nginx error log", _detect_error, read_error_line, structural=True)
