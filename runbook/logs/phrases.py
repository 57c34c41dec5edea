"""Server and client library logs read by their message strings, and the generic fallback.

Each library writes a few fixed strings about WebSocket lifecycles (taken from its source):
python ``websockets`` ("connection open", "connection closed", "connection rejected (426 ...)",
``ConnectionClosed`` texts such as "sent 1011 (internal error) keepalive ping timeout; no close
frame received" and "no close frame received or sent", "server rejected WebSocket connection:
HTTP 502", "timed out waiting for keepalive pong"; DEBUG frame and header traces are ignored
lines: the same close also reaches the log as a ConnectionClosed text or "connection closed"); tornado / Jupyter Server
("WebSocket ping timeout after 90009 ms.", the ``101 GET /path (ip) 0.58ms`` access line); Node
``ws`` errors ("Unexpected server response: 502", "Opening handshake has timed out", "WebSocket
was closed before the connection was established", "Invalid WebSocket frame: ...", "Max payload
size exceeded"); Socket.IO / engine.io disconnect reasons ("ping timeout", "transport close",
"transport error", ...); Go gorilla/websocket ("websocket: close 1006 (abnormal closure):
unexpected EOF", "websocket: bad handshake", "'upgrade' token not found in 'Connection' header")
and coder/websocket (nhooyr: "status = StatusGoingAway and reason = ...", "expected handshake
response status code 101 but got 502"); browser consoles (Chrome "WebSocket connection to '...'
failed: Error during WebSocket handshake: Unexpected response code: 400", "WebSocket is closed
before the connection is established.", Firefox "Firefox can't establish a connection to the
server at ...", "The connection to ... was interrupted while the page was loading.", Safari
"There was a bad response from the server.").

A line is read by the first rule whose pattern it holds (a line no rule knows goes to the generic
reader below, its record marked ``[generic]``); a line without a timestamp of its own
(a traceback, a stack) takes the time of the last stamped line before it. Rules are in one
table (``RULES``); each library format uses the rules of its family plus the shared ones, so a
python app's log that also quotes a Node error still reads both.

The generic fallback (``generic``) applies every rule, then looks for close codes in context
(``close 1006``, ``code: 1006``, ``code=1006``, ``(1006)``, ``CloseEvent ... 1006``),
lifetimes (``duration=61.2s``, ``after 60012ms``) and connection ids (``connectionId=...``,
``conn_id: ...``, ``socket abc123``). Its records say so in the reason (``[generic] ...``); the
registry tries it only when no other format reads the file.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from runbook.logs.lines import Malformed, Record, find_timestamp, parse_lines
from runbook.observations import ParsedLog

GENERIC_NAME = "generic"
SCAN_CHARS = 16_384  # of each line, searched for library strings and codes

# coder/websocket StatusCode names (RFC 6455 7.4.1 codes).
_CODER_STATUS = {
    "StatusNormalClosure": 1000, "StatusGoingAway": 1001, "StatusProtocolError": 1002,
    "StatusUnsupportedData": 1003, "StatusNoStatusRcvd": 1005, "StatusAbnormalClosure": 1006,
    "StatusInvalidFramePayloadData": 1007, "StatusPolicyViolation": 1008, "StatusMessageTooBig": 1009,
    "StatusMandatoryExtension": 1010, "StatusInternalError": 1011, "StatusServiceRestart": 1012,
    "StatusTryAgainLater": 1013, "StatusBadGateway": 1014, "StatusTLSHandshake": 1015,
}  # fmt: skip


@dataclass(frozen=True)
class Rule:
    """A message string a library writes, and the record it stands for."""

    family: str  # "python", "tornado", "node", "socketio", "go", "browser", "any"
    pattern: re.Pattern[str]
    event: str  # "connect" | "disconnect" | "error", or "ignore": a known line that is no event
    code: int | Callable[[re.Match[str]], int | None] | None = None
    reason: Callable[[re.Match[str]], str] | None = None  # default: the matched text
    closed_by: str | Callable[[re.Match[str]], str | None] | None = None
    client_ip: Callable[[re.Match[str]], str | None] | None = None
    duration: Callable[[re.Match[str]], float | None] | None = None
    # searched first when given: the rule applies only to lines that also hold this (a cheap,
    # linear pre-check instead of a look-ahead, which is quadratic on long lines)
    requires: re.Pattern[str] | None = None


_URL_QUERY = re.compile(r"(\b(?:wss?|https?)://[^\s?#'\"]*)[?#][^\s'\"]*")


def _without_queries(text: str | None) -> str | None:
    """``text`` with the query of every URL in it removed."""
    return _URL_QUERY.sub(r"\1", text) if text and "://" in text else text


def _no_query(url: str) -> str:
    """A URL without its query and fragment: tokens travel there, and reasons reach the report."""
    return url.split("?", 1)[0].split("#", 1)[0]


def _r(family: str, pattern: str, event: str, **kwargs) -> Rule:
    return Rule(family, re.compile(pattern), event, **kwargs)


def _int(group: int | str) -> Callable[[re.Match[str]], int | None]:
    return lambda m: int(m[group]) if m[group] else None


RULES: list[Rule] = [
    # --- python websockets (src/websockets/{server,protocol,exceptions,frames}.py) ---
    # DEBUG traces of frames, headers and states ("> CLOSE 1000 (OK) [2 bytes]", "< Upgrade: ...",
    # "= connection is CLOSED", "% sent keepalive ping"): detail of events logged elsewhere
    _r("python", r"websockets\.[a-z.]+: (?:[<>] |= connection is |% |x (?:half-)?closing)", "ignore"),
    _r("python", r"\bconnect failed; reconnecting in ([0-9.]+) seconds: (.*)", "error",
       reason=lambda m: f"client reconnecting in {m[1]} s: {m[2].strip()}"),
    _r("python", r"\bconnection rejected \(([0-9]{3}) ([^)]*)\)", "error",
       reason=lambda m: f"handshake failed: server rejected the upgrade: HTTP {m[1]} {m[2]}"),
    _r("python", r"\bHTTP response sent \(([45][0-9]{2}) ([^)]*)\)", "error",
       reason=lambda m: f"handshake failed: HTTP {m[1]} {m[2]}"),
    _r("python", r"\bopening handshake failed\b", "error", reason=lambda m: "handshake failed: opening handshake failed"),
    _r("python", r"\b(sent|received) ([0-9]{4}) \(([^)]{0,60})\)([^;]{0,300}); (no close frame (?:received|sent)|then (?:sent|received) [0-9]{4} \([^)]{0,60}\)[^;]{0,300})",
       "error", code=_int(2), reason=lambda m: m[0].strip()),
    _r("python", r"\bno close frame received or sent\b", "error", code=1006),
    # websockets < 10: "WebSocket connection is closed: code = 1006 (connection closed abnormally [internal]), no reason"
    _r("python", r"\bcode = ([0-9]{4}) \(([^)]*)\)(?:, (?:no reason|reason = [^\n]*))?", "error", code=_int(1),
       reason=lambda m: m[0].strip()),
    _r("python", r"\btimed out waiting for (?:keepalive )?pong\b", "error", code=1011,
       reason=lambda m: "keepalive ping timeout (timed out waiting for pong)"),
    _r("python", r"\bserver rejected WebSocket connection: HTTP ([0-9]{3})", "error"),
    _r("python", r"(?:^|[\s:])connection open\s*$", "connect"),
    _r("python", r"(?:^|[\s:])connection closed\s*$", "disconnect"),
    # --- tornado and Jupyter Server (tornado/websocket.py, jupyter_server/base/websocket.py) ---
    _r("tornado", r"\bWebSocket ping timeout after ([0-9]+) ms", "disconnect", code=1011, closed_by="server",
       reason=lambda m: f"WebSocket ping timeout after {m[1]} ms"),
    _r("tornado", r"\bping timed out\b", "disconnect", code=1011, reason=lambda m: "WebSocket ping timeout (ping timed out)"),
    _r("tornado", r"\] 101 GET (\S+) \(([^)]+)\) ([0-9.]+)ms", "connect", reason=lambda m: None, client_ip=lambda m: m[2]),
    # --- Node ws (lib/websocket.js, lib/receiver.js) ---
    _r("node", r"\bUnexpected server response: ([0-9]{3})", "error"),
    _r("node", r"\bOpening handshake has timed out\b", "error", reason=lambda m: "handshake failed: opening handshake has timed out"),
    _r("node", r"\bWebSocket was closed before the connection was established\b", "error",
       reason=lambda m: "handshake failed: WebSocket was closed before the connection was established"),
    _r("node", r"\bInvalid WebSocket frame: [^\n]*", "error", code=1002),
    _r("node", r"\bMax payload size exceeded\b", "error", code=1009),
    _r("node", r"\bInvalid Sec-WebSocket-Accept header\b", "error", reason=lambda m: "handshake failed: invalid Sec-WebSocket-Accept header"),
    # --- Socket.IO / engine.io disconnect reasons (socket.io docs, "disconnect" event) ---
    # DEBUG=socket.io:* traces: "socket.io:socket closing socket - reason ping timeout"; the client
    # side's "client close with reason ..." is the same close seen one layer down
    _r("socketio", r"socket\.io:client client close with reason", "ignore"),
    _r("socketio", r"\bsocket\.io:[a-z]+ (?!closing socket - reason)", "ignore"),  # other DEBUG traces
    _r("socketio", r"\b(ping timeout|transport close|transport error|parse error|server namespace disconnect"
       r"|client namespace disconnect|server shutting down|forced server close|forced close)\b", "disconnect",
       reason=lambda m: m[1],
       closed_by=lambda m: {"server namespace disconnect": "server", "server shutting down": "server",
                            "forced server close": "server", "client namespace disconnect": "client"}.get(m[1])),
    # --- .NET System.Net.WebSockets (ASP.NET Core, SignalR): the peer's TCP connection ended
    # without a close frame, what RFC 6455 7.1.5 calls 1006 ---
    _r("any", r"\bThe remote party closed the WebSocket connection without completing the close handshake", "disconnect",
       code=1006, reason=lambda m: "remote party closed the WebSocket connection without completing the close handshake"),
    # --- Heroku router (logplex): an upgraded request is logged when it ends, service= its length ---
    _r("any", r"\bheroku\[?router\]?.*?\bpath=\"?(\S+?)\"? .*?\bservice=([0-9]+)ms status=([0-9]{3})", "disconnect",
       reason=lambda m: None if m[3] == "101" else f"handshake failed: HTTP {m[3]} on {m[1].split('?', 1)[0]} (heroku router)",
       duration=lambda m: int(m[2]) / 1000 if m[3] == "101" else None),
    # --- Go gorilla/websocket (conn.go, client.go, server.go) and coder/websocket ---
    _r("go", r"\bwebsocket: close ([0-9]{4})(?: \(([^)]*)\))?(?:: ([^\"\n]*))?", "disconnect", code=_int(1),
       reason=lambda m: m[0].strip()),
    _r("go", r"\bwebsocket: bad handshake\b", "error", reason=lambda m: "handshake failed: websocket: bad handshake"),
    _r("go", r"\bwebsocket: the client is not using the websocket protocol: [^\"\n]*", "error",
       reason=lambda m: f"handshake failed: {m[0].strip()}"),
    _r("go", r"\bstatus = (Status[A-Za-z]+)(?: and reason = (\"[^\"]*\"))?", "disconnect",
       code=lambda m: _CODER_STATUS.get(m[1]), reason=lambda m: m[0]),
    _r("go", r"\bexpected handshake response status code 101 but got ([0-9]{3})", "error",
       reason=lambda m: f"handshake failed: {m[0]}"),
    _r("go", r"\bfailed to (?:get reader|read frame header|read)[^\n]*\b(?:unexpected )?EOF\b", "disconnect", code=1006,
       reason=lambda m: m[0].strip()),
    # --- browser consoles (Chrome, Firefox, Safari) ---
    _r("browser", r"WebSocket connection to '([^']*)' failed: Error during WebSocket handshake: ([^\n]*)", "error",
       reason=lambda m: f"handshake failed: {m[2].strip()} ({_no_query(m[1])})"),
    _r("browser", r"WebSocket connection to '([^']*)' failed: There was a bad response from the server", "error",
       reason=lambda m: f"handshake failed: bad response from the server ({_no_query(m[1])})"),
    _r("browser", r"WebSocket connection to '([^']*)' failed: WebSocket is closed before the connection is established", "error",
       reason=lambda m: f"handshake failed: WebSocket is closed before the connection is established ({_no_query(m[1])})"),
    _r("browser", r"WebSocket connection to '([^']*)' failed(?::\s*([^\n]*))?", "error",
       reason=lambda m: f"connection failed: {m[2].strip() if m[2] and m[2].strip() else 'no detail'} ({_no_query(m[1])})"),
    _r("browser", r"WebSocket is closed before the connection is established", "error",
       reason=lambda m: "handshake failed: WebSocket is closed before the connection is established"),
    _r("browser", r"can[’']t establish a connection to the server at (\S+?)\.?(?:\s|$)", "error",
       reason=lambda m: f"connection failed: can't establish a connection to {_no_query(m[1])}"),
    _r("browser", r"The connection to (\S+) was interrupted while the page was loading", "disconnect", code=1001,
       closed_by="client", reason=lambda m: f"interrupted while the page was loading ({_no_query(m[1])})"),
    _r("browser", r"WebSocket network error: ([^\n]*)", "error", reason=lambda m: f"connection failed: {m[1].strip()}"),
    # app code logging the CloseEvent: "socket closed ws://... code: 1006 reason: wasClean: false",
    # "CloseEvent {isTrusted: true, wasClean: false, code: 1006, reason: ''}"
    _r("browser", r"(?i)\b(?:clos(?:e|ed|ing)|CloseEvent|disconnected)\b.{0,300}?\bcode\b\W{0,3}([0-9]{4})\b(?:.{0,300}?\breason\b\W{0,3}'?([^,'}]{0,200}?)'?\s*(?:wasClean|[,}]|$))?",
       "disconnect", requires=re.compile(r"CloseEvent|wasClean|\bonclose\b", re.IGNORECASE), code=_int(1), reason=lambda m: f"close event {m[1]}" + (f": {m[2].strip()}" if m[2] and m[2].strip() else "")),
]

# Close codes in context, for the generic reader: "close 1006", "code: 1006", "code=1006",
# "closeCode 1006", "(1006)", "CloseEvent {... code: 1006". Numbers outside 1000-4999 are not codes.
_CODE_IN_CONTEXT = re.compile(
    r"(?:\bclose(?:d|_?code)?\b[^0-9\n]{0,12}|\bcode\b\W{0,3}|\bstatus\W{0,3}|\()"
    r"((?:1[0-9]|[234][0-9])[0-9]{2})(?![0-9])",
    re.IGNORECASE,
)
_DURATION = re.compile(
    r"\b(?:duration|lifetime|elapsed|after|connected for|uptime)\W{0,3}([0-9]+(?:\.[0-9]+)?)\s?(ms|s|sec|seconds|msec|milliseconds)?\b",
    re.IGNORECASE,
)
_CONNECTION_ID = re.compile(
    r"\b(?:conn(?:ection)?[_ -]?id|connectionId|socket(?:[_ ]id)?|sid|session(?:[_ ]id)?|client[_ ]id|(?:dis)?connected)\b"
    r"\W{0,3}(?=[A-Za-z0-9_-]*[0-9])([A-Za-z0-9_-]{4,64})",
    re.IGNORECASE,
)
_WEBSOCKET_WORD = re.compile(r"socket|\bws\b|\bwss?://|engine\.io|\bclos(?:e|ed|ing)\b|disconnect", re.IGNORECASE)
_DISCONNECT_WORD = re.compile(r"\bclos(?:e|ed|ing)\b|disconnect|terminat|dropped|lost", re.IGNORECASE)
_DISCONNECT_PHRASE = re.compile(
    r"\b(?:disconnected|connection (?:closed|lost|dropped|reset)|closed connection|socket closed|lost connection)\b", re.IGNORECASE
)
_CONNECT_WORD = re.compile(r"\b(?:connected|connection (?:open|opened|established)|new connection|client connected)\b", re.IGNORECASE)
_KEEPALIVE = re.compile(r"\b(?:keepalive ping timeout|ping timeout|pong timeout|ping timed out|missed (?:pong|heartbeat))\b", re.IGNORECASE)


def _record_from_rule(rule: Rule, match: re.Match[str], ts: str | None) -> Record:
    code = rule.code(match) if callable(rule.code) else rule.code
    reason = rule.reason(match) if rule.reason else match[0].strip()
    closed_by = rule.closed_by(match) if callable(rule.closed_by) else rule.closed_by
    client_ip = rule.client_ip(match) if rule.client_ip else None
    event = rule.event
    if event == "disconnect" and reason and reason.startswith("handshake failed"):
        event = "error"
    duration = rule.duration(match) if rule.duration else None
    return Record(event=event, ts=ts, code=code, reason=reason, closed_by=closed_by, client_ip=client_ip, duration_s=duration)


def _close_side(this_side: str | None, record: Record) -> None:
    """python websockets: a ConnectionClosed text says which side sent the close frame first."""
    if record.closed_by is None and record.reason and record.reason.startswith(("sent ", "received ")):
        if this_side:
            other = "client" if this_side == "server" else "server"
            record.closed_by = this_side if record.reason.startswith("sent ") else other


def _duration_s(line: str) -> float | None:
    match = _DURATION.search(line)
    if not match:
        return None
    value, unit = float(match[1]), (match[2] or "s").lower()
    return value / 1000 if unit.startswith("m") else value


def _applies(rule: Rule, line: str) -> bool:
    return (rule.requires is None or rule.requires.search(line) is not None) and rule.pattern.search(line) is not None


class PhraseReader:
    """Reads lines with a set of rules; remembers the last timestamp for unstamped lines."""

    def __init__(self, rules: list[Rule], generic: bool) -> None:
        self.rules = rules
        self.generic = generic
        self.last_ts: str | None = None
        self.last_side: str | None = None  # python websockets: the logger of the last stamped line
        self.line_index = 0
        # python websockets at DEBUG: "timed out waiting for keepalive pong" comes first, then the
        # handler's ConnectionClosedError "sent 1011 (...) keepalive ping timeout" for the same
        # close; each such error is folded into one waiting timeout of its side, first in first out.
        self.pending_keepalive: dict[str | None, collections.deque[Record]] = {}
        self.last_socketio: tuple[int, Record] | None = None  # the last Socket.IO disconnect and its line

    def __call__(self, line: str) -> Record | None:
        # Library messages sit at the start of their line; a 1 MB line (a dumped payload) is read
        # only this far, so forty patterns stay cheap on it.
        line = line[:SCAN_CHARS]
        self.line_index += 1
        ts = find_timestamp(line)
        if ts is not None:
            self.last_ts = ts
            self.last_side = "server" if "websockets.server" in line else "client" if "websockets.client" in line else None
        else:
            ts = self.last_ts
        for rule in self.rules:
            if rule.requires is not None and not rule.requires.search(line):
                continue
            match = rule.pattern.search(line)
            if match:
                if rule.event == "ignore":
                    return None
                record = _record_from_rule(rule, match, ts)
                _close_side(self.last_side, record)
                if not self.generic and (found := _CONNECTION_ID.search(line)) is not None:
                    record.connection_id = found[1]
                if rule.family == "socketio" and self._same_close(record):
                    return None
                if rule.family == "python" and self._same_keepalive(record):
                    return None
                if self.generic:
                    record.reason = f"[generic] {record.reason}" if record.reason else "[generic]"
                    self._fill(line, record)
                record.reason = _without_queries(record.reason)
                return record
        # A line no library rule knows may still hold a close code or a timeout phrase: the
        # generic reader takes it, marked "[generic]" in its reason.
        record = self._generic(line, ts)
        if record is not None:
            record.reason = _without_queries(record.reason)
        return record

    def _same_keepalive(self, record: Record) -> bool:
        reason = record.reason or ""
        if "keepalive ping timeout" not in reason:
            return False
        waiting = self.pending_keepalive.setdefault(self.last_side, collections.deque(maxlen=100_000))
        if reason.startswith("keepalive ping timeout (timed out waiting for"):
            waiting.append(record)
            return False
        if waiting:
            earlier = waiting.popleft()
            earlier.reason, earlier.closed_by = record.reason, record.closed_by or earlier.closed_by
            return True
        return False

    def _same_close(self, record: Record) -> bool:
        """The app's "socket <id> disconnected: <reason>" and Socket.IO's DEBUG "closing socket -
        reason <reason>" (no id) are one close logged twice, a line or two apart, in either order:
        the second is folded into the first (which takes the id). Two closes that both carry an
        id (a mass disconnect) are never folded."""
        previous = self.last_socketio
        self.last_socketio = (self.line_index, record)
        if previous is None:
            return False
        index, earlier = previous
        if (
            self.line_index - index <= 2
            and earlier.reason == record.reason
            and (earlier.connection_id is None) != (record.connection_id is None)
        ):
            earlier.connection_id = earlier.connection_id or record.connection_id
            earlier.closed_by = earlier.closed_by or record.closed_by
            self.last_socketio = None
            return True
        return False

    def _fill(self, line: str, record: Record) -> None:
        if record.code is None and (code := _CODE_IN_CONTEXT.search(line)):
            record.code = int(code[1])
        if (found := _CONNECTION_ID.search(line)) is not None:
            record.connection_id = found[1]
        if record.event == "disconnect" and record.duration_s is None:
            record.duration_s = _duration_s(line)

    def _generic(self, line: str, ts: str | None) -> Record | None:
        """A line no rule knows: a close code in context, or a ping/pong timeout phrase."""
        code = _CODE_IN_CONTEXT.search(line)
        keepalive = _KEEPALIVE.search(line)
        # a number is a close code only beside a word about closing ("(1000)" alone is any number)
        code = code if code and _DISCONNECT_WORD.search(line) else None
        if not code and not keepalive:
            if _DISCONNECT_PHRASE.search(line):
                record = Record(event="disconnect", ts=ts, reason="[generic] " + line.strip()[:200])
                self._fill(line, record)
                return record
            if _CONNECT_WORD.search(line) and _WEBSOCKET_WORD.search(line):
                record = Record(event="connect", ts=ts, reason="[generic] connect")
                self._fill(line, record)
                return record
            return None
        record = Record(event="disconnect", ts=ts, code=int(code[1]) if code else None)
        record.reason = "[generic] " + (f"{keepalive[0]}: " if keepalive else "") + line.strip()[:200]
        if not code and not _DISCONNECT_WORD.search(line) and not keepalive:
            record.event = "error"
        self._fill(line, record)
        return record


_MAX_SCORE = 0.9  # a library's strings among other output: never as sure as a line grammar
_GENERIC_MAX_SCORE = 0.29  # under MIN_DETECTION_SCORE: the fallback is claimed only when no format is


class PhraseFormat:
    """A library's log read by its message strings (see the module docstring)."""

    def __init__(self, name: str, description: str, families: tuple[str, ...], *, generic: bool = False) -> None:
        self.NAME = name
        self.description = description
        self.families = families
        self.generic = generic
        self.rules = [r for r in RULES if r.family in families] + [r for r in RULES if r.family not in families]
        self._own = [r for r in RULES if r.family in families]
        # The most ``detect`` gives: detection skips this format when another already scored more.
        self.MAX_SCORE = _GENERIC_MAX_SCORE if generic else _MAX_SCORE

    def __repr__(self) -> str:
        return f"PhraseFormat({self.NAME!r})"

    def record_start(self, lines: Sequence[str], start: int) -> int | None:
        """Where a part of a big file may begin (``runbook.logfiles`` cuts big logs at record
        starts): the index of the first of ``lines[start:]`` that has a timestamp of its own, or
        has none before it (a line without one takes the time of the last stamped line), and past
        which no record can still be joined by a later line (a Socket.IO close within two lines,
        a keepalive timeout waiting for its close text); None when none is. ``lines[:start]``:
        the lines before it, as context (the reader keeps its state no further back)."""
        reader = PhraseReader(self.rules, self.generic)
        for index, line in enumerate(lines):
            try:
                stamped = find_timestamp(line[:SCAN_CHARS]) is not None
            except Malformed:
                stamped = False
            if index >= start and (stamped or reader.last_ts is None) and not any(reader.pending_keepalive.values()) and (
                reader.last_socketio is None or reader.line_index - reader.last_socketio[0] >= 2
            ):
                return index
            if line.strip():
                try:
                    reader(line)
                except Malformed:
                    pass
        return None

    def detect(self, sample: list[str]) -> float:
        """The share of lines holding one of this library's strings, scaled: libraries log much
        else (headers, app output), so a few hits among many lines are enough."""
        if not sample:
            return 0.0
        if self.generic:
            hits = sum(1 for line in sample if _CODE_IN_CONTEXT.search(line) or _KEEPALIVE.search(line)
                       or _DISCONNECT_PHRASE.search(line) or any(_applies(r, line) for r in RULES))
            return min(_GENERIC_MAX_SCORE, 0.05 + hits / len(sample)) if hits else 0.0
        hits = sum(1 for line in sample if any(_applies(r, line) for r in self._own))
        if not hits:
            return 0.0
        return min(_MAX_SCORE, 0.4 + 2 * hits / len(sample))

    def parse(self, lines: Iterable[str], source: str, *, timezone=None) -> ParsedLog:
        return parse_lines(self.NAME, PhraseReader(self.rules, self.generic), lines, source, timezone=timezone)


PYTHON_WEBSOCKETS = PhraseFormat("python_websockets", "python websockets logging (server and client)", ("python",))
TORNADO = PhraseFormat("tornado", "tornado / Jupyter Server WebSocket log", ("tornado",))
NODE_WS = PhraseFormat("node_ws", "Node ws errors and Socket.IO / engine.io disconnect reasons", ("node", "socketio"))
GO_WEBSOCKET = PhraseFormat("go_websocket", "Go gorilla/websocket and coder/websocket errors in Go logs", ("go",))
BROWSER_CONSOLE = PhraseFormat("browser_console", "browser console export (Chrome, Firefox, Safari)", ("browser",))
GENERIC = PhraseFormat(GENERIC_NAME, "any line-oriented log: close codes, ping timeouts, lifetimes", ("any",), generic=True)

FORMATS = (PYTHON_WEBSOCKETS, TORNADO, NODE_WS, GO_WEBSOCKET, BROWSER_CONSOLE, GENERIC)

__all__ = ["FORMATS", "GENERIC", "Malformed", "PhraseFormat", "Rule", "RULES"]
