"""The "Node monitor" format: the reference runbook's ``ws`` WebSocketMonitor on stdout.

The monitor logs with ``console.log(new Date().toISOString(), 'WebSocket disconnect:', {...})``::

    2026-11-28T03:00:01.123Z WebSocket disconnect: { connectionId: 'a1', code: 1006, reason: '', duration: 60012 }
    2026-11-28T03:00:02.000Z WebSocket connected: {
      connectionId: 'b2',
      ip: '::ffff:127.0.0.1',
      userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) ...'
    }
    2026-11-28T03:00:03.000Z WebSocket error: { connectionId: 'b2', error: 'Invalid WebSocket frame: ...' }
    2026-11-28T03:00:03.000Z WebSocket error: RangeError: Invalid WebSocket frame: invalid status code 1005

The object is Node's ``util.inspect`` output, on one line when short and over several when long
(more than about 72 characters). Fields: connectionId -> connection_id, code, reason (a string or
a ``<Buffer ..>`` decoded as UTF-8), duration (ms) -> duration_s, ip -> client_ip,
userAgent -> user_agent, error -> reason of an error event. Other keys are parsed and left out.

Every line may carry a log prefix (containerd, syslog, docker compose, Python logging): the
record is found by its ``WebSocket <event>:`` marker anywhere in the line, its time is the last
date-time before the marker (Node's own ISO stamp, else the prefix's), and continuation lines
lose a prefix of the same shape (``common.ContinuationPrefix``).

Speed: the log is read as columns (``_parse_columns``, see runbook/logs/columnar.py): the lines of
the common single-line shape are found by one RE2 pass over all lines and cut at their quotes, the
multi-line objects of one level are flattened in Arrow and take the same pass; every other line
that mentions "WebSocket " goes through the line reader (``read_record``), in line order. Without
a UTF-8 buffer (text with lone surrogates) the line reader reads every line: the common shape by
one compiled expression mapped over each chunk's lines, everything else through ``parse_inspect``,
a real tokenizer for util.inspect output (never ``eval``). All paths give identical results
(tested, ``columns=False`` and ``fast_path=False`` being the references); columns are typed in bulk.
"""

from __future__ import annotations

import bisect
import math
import operator
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np

from runbook.logs import columnar
from runbook.logs.columnar import pa, pc  # None without pyarrow: then no LineTable, lines are read one by one
from runbook.logs.common import (
    ContinuationPrefix,
    MalformedCollector,
    as_object_array,
    build_frame,
    concat_frames,
    gc_paused,
    last_timestamp_in,
    naive_timezone,
    out_of_range,
    parse_timestamps,
    range_problem,
    to_lines,
)
from runbook.logs.lines import CONTAINER_PREFIX, parse_timezone
from runbook.observations import ParsedLog

NAME = "node_monitor"

CHUNK_LINES = 50_000  # bounds memory: one chunk's regex groups live at a time
MAX_RECORD_LINES = 10_000  # an unterminated object stops here instead of eating the log

EVENT_OF_MARKER = {"disconnect": "disconnect", "connected": "connect", "error": "error"}
MARKER = re.compile(r"WebSocket (disconnect|connected|error):")
# Where a part of a big file may begin (``runbook.logfiles`` cuts big logs at record starts): a
# record's first line, its marker right after a date-time (Node's stamp, or the prefix's) or right
# after a container prefix, with nothing quoted before it. Any other line may continue the object
# of the record above it: an indented entry, an error's stack, an Error header quoting a marker.
RECORD_START = re.compile(
    CONTAINER_PREFIX
    + r"(?:(?:[^ \t'\"`\n][^'\"`\n]*?)?[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?[ \t]+)?WebSocket (?:disconnect|connected|error):"
)

# A Node ISO stamp directly before the marker: its text up to the marker is not prefix.
_ADJACENT_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:Z|[+-][0-9]{2}:?[0-9]{2})?[ \t]+$"
)

# --- the fast path: the common shapes, matched by regular expressions ----------------------------
# Strings without quotes or backslashes are printed verbatim by util.inspect, so a match's groups
# are exactly the values the tokenizer would produce. Anything else falls to the tokenizer.
_PLAIN = r"'([^'\\\n]*)'"
_BODY = (
    r"\{ connectionId: " + _PLAIN + r", (?:"
    r"code: ([0-9]{1,9}), reason: " + _PLAIN + r", duration: ([0-9]{1,15}(?:\.[0-9]{1,15})?)"
    r"|(ip): " + _PLAIN + r", userAgent: " + _PLAIN + r""
    r"|(error): " + _PLAIN + r""
    r") \}"
)
_FAST_BODY = re.compile(_BODY + r"[ \t]*")
# A whole line in the common shape: Node's ISO stamp right before the marker, at the start of
# the line (_FAST_LINE) or behind a prefix without "WebSocket " in it (_FAST_PREFIXED_LINE; the
# slow path reads the first marker, this one must not differ). The first costs nothing on lines
# that are not records; the second scans them, so it only sees lines that mention "WebSocket ".
_NODE_STAMP = r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z)"  # Date.toISOString()
_FAST_RECORD = _NODE_STAMP + r" WebSocket (disconnect|connected|error): " + _BODY + r"[ \t]*$"
_FAST_LINE = re.compile(_FAST_RECORD)
_FAST_PREFIXED_LINE = re.compile(r"(?:(?!WebSocket )[^\n])*?(?<![0-9])" + _FAST_RECORD)
# The first line of a multi-line object in the common shape: no prefix, Node's stamp, "{" at the end.
_FAST_OPEN_LINE = re.compile(_NODE_STAMP + r" WebSocket (disconnect|connected|error): \{")
# group positions in _FAST_LINE
_G_TS, _G_EVENT = 0, 1
_G_ID, _G_CODE, _G_REASON, _G_DURATION, _G_IP_FLAG, _G_IP, _G_UA, _G_ERROR_FLAG, _G_ERROR = range(2, 11)
# ... and in _FAST_BODY
_B_ID, _B_CODE, _B_REASON, _B_DURATION, _B_IP_FLAG, _B_IP, _B_UA, _B_ERROR_FLAG, _B_ERROR = range(9)

_STACK_FRAME_LINE = re.compile(r"[ \t]+(?:at [^\n]*|\.\.\. [0-9]+ lines? matching [^\n]*)")
_ERROR_HEAD = re.compile(r"[A-Za-z_$][\w$]*(?: \[[^\]\n]*\])?: ")
_CLASS_OBJECT_HEAD = re.compile(r"(?:[A-Za-z_$][\w$]*(?:\([^()\n]*\))? |\[[A-Za-z][^\[\]\n]*\] )[{\[]")


# --- util.inspect values ------------------------------------------------------------------------


class InspectSyntaxError(ValueError):
    """util.inspect text that does not parse; ``truncated`` when it ended inside a value."""

    def __init__(self, problem: str, position: int, truncated: bool = False) -> None:
        super().__init__(problem, position)
        self.problem = problem
        self.position = position
        self.truncated = truncated

    def __str__(self) -> str:
        return f"{self.problem} at character {self.position}"


@dataclass(frozen=True)
class Buffer:
    """A ``<Buffer 6f 6b ...>``: the bytes shown (util.inspect shows at most 50)."""

    data: bytes
    more_bytes: int = 0

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Opaque:
    """A value util.inspect prints as a label, kept as its text: ``[Object]``, ``[Circular *1]``,
    ``[Function: f]``, ``Symbol(x)``, a Date, a RegExp, ``Invalid Date``, ``<pending>``..."""

    text: str


@dataclass(frozen=True)
class ErrorValue:
    """An Error printed with its stack: ``RangeError: message`` (+ own properties, if any)."""

    header: str  # "RangeError: message", the first line(s) before the stack frames
    properties: dict[str, Any] = field(default_factory=dict)


_WHITESPACE = re.compile(r"[ \t\r\n]*")
_IDENT = re.compile(r"[A-Za-z_$][\w$]*")
_IDENT_KEY = re.compile(r"([A-Za-z_$][\w$]*)[ \t]*:(?=[ \t\n])")
_BRACKET_KEY = re.compile(r"\[([^\[\]\n]*)\]:(?=[ \t\n])")
_STRINGS = {
    "'": re.compile(r"'([^'\\\n]*(?:\\.[^'\\\n]*)*)'"),
    '"': re.compile(r'"([^"\\\n]*(?:\\.[^"\\\n]*)*)"'),
    "`": re.compile(r"`([^`\\\n]*(?:\\.[^`\\\n]*)*)`"),
}
_ESCAPE = re.compile(r"\\(?:x([0-9A-Fa-f]{2})|u\{([0-9A-Fa-f]{1,6})\}|u([0-9A-Fa-f]{4})|(.))", re.DOTALL)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_MORE_CHARACTERS = re.compile(r"\.\.\. [0-9]+ more characters?")
_MORE_ITEMS = re.compile(r"\.\.\. [0-9]+ more items?")
_NUMBER = re.compile(r"-?(?:Infinity|NaN|[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?n?)(?![\w$])")
_DATE = re.compile(r"[+-]?[0-9]{4,6}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?Z(?![\w$])")
_ANGLE = re.compile(r"<([^<>\n]*)>")
_BUFFER = re.compile(r"<Buffer((?: [0-9a-f]{2})*)(?: \.\.\. ([0-9]+) more bytes?)?>")
_BRACKET_ATOM = re.compile(r"\[[A-Za-z][^\[\]\n]*\]")
_REGEXP = re.compile(r"/(?:[^/\\\n\[]|\\.|\[(?:[^\]\\\n]|\\.)*\])+/[a-z]*")
_PARENS = re.compile(r"\([^()\n]*\)")
_WORDS = {"true": True, "false": False, "null": None, "undefined": None}
_ERROR_MESSAGE_TAIL = re.compile(r"(?:\n(?![ \t]+at )[^\n]*){0,50}?(?=\n[ \t]+at )")
_STACK_FRAMES = re.compile(r"(?:\n[ \t]+(?:at [^\n]*|\.\.\. [0-9]+ lines? matching [^\n]*))+")


def parse_inspect(text: str) -> Any:
    """Parse one value printed by Node's ``util.inspect`` (what ``console.log`` shows for an object).

    Returns Python values: dict (objects, class instances, Maps by key), list (arrays, Sets),
    str, int, float (NaN, Infinity), bool, None (null, undefined), ``Buffer``, ``ErrorValue``
    and ``Opaque`` for labels (``[Object]``, ``[Circular *1]``, Dates, Symbols...). Quoted keys,
    escapes (``\\n \\' \\xNN \\uNNNN``), string concatenation over lines, ``<ref *1>`` and
    ``... N more items`` are understood. Raises ``InspectSyntaxError`` when the text is not one
    complete value (``truncated`` when it ends inside one). Never evaluates anything.
    """
    parser = _InspectParser(text)
    try:
        value = parser.value()
        parser.skip_whitespace()
    except RecursionError:
        raise InspectSyntaxError("value nested too deeply", parser.pos) from None
    if parser.pos != len(text):
        raise InspectSyntaxError(f"unexpected {text[parser.pos : parser.pos + 20]!r} after the value", parser.pos)
    return value


class _InspectParser:
    """Recursive descent over util.inspect text; regular expressions for the tokens."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, problem: str) -> InspectSyntaxError:
        if self.pos >= len(self.text):
            return InspectSyntaxError(f"{problem}: the record ends too early", self.pos, truncated=True)
        return InspectSyntaxError(problem, self.pos)

    def skip_whitespace(self) -> None:
        self.pos = _WHITESPACE.match(self.text, self.pos).end()

    def value(self) -> Any:
        self.skip_whitespace()
        text, pos = self.text, self.pos
        if pos >= len(text):
            raise self.fail("expected a value")
        char = text[pos]
        if char in _STRINGS:
            return self.string()
        if char == "{":
            return self.container("}")[0]
        if char == "[":
            atom = _BRACKET_ATOM.match(text, pos)
            if atom is None:
                return self.container("]")[1]
            self.pos = atom.end()
            return self.after_label(atom.group())
        if char == "<":
            return self.angle()
        if char == "-" or char.isdigit():
            return self.number_or_date()
        if char == "/":
            match = _REGEXP.match(text, pos)
            if match is None:
                raise self.fail("unterminated regular expression")
            self.pos = match.end()
            return Opaque(match.group())
        if _IDENT.match(text, pos):
            return self.word()
        raise self.fail(f"unexpected {char!r}")

    def string(self) -> str:
        text = self.text
        pieces = []
        while True:
            match = _STRINGS[text[self.pos]].match(text, self.pos)
            if match is None:
                raise self.fail("unterminated string")
            body = match.group(1)
            pieces.append(_unescape(body) if "\\" in body else body)
            self.pos = match.end()
            # util.inspect splits long multi-line strings into 'a\n' + 'b' over several lines
            after = _WHITESPACE.match(text, self.pos).end()
            if after < len(text) and text[after] == "+":
                self.pos = after + 1
                self.skip_whitespace()
                if self.pos >= len(text) or text[self.pos] not in _STRINGS:
                    raise self.fail("expected a string after '+'")
                continue
            break
        more = _MORE_CHARACTERS.match(text, self.pos)
        if more:  # only the first 10000 characters are shown; keep what is shown
            self.pos = more.end()
        return pieces[0] if len(pieces) == 1 else "".join(pieces)

    def number_or_date(self) -> Any:
        text, pos = self.text, self.pos
        date = _DATE.match(text, pos)
        if date:
            self.pos = date.end()
            return Opaque(date.group())
        match = _NUMBER.match(text, pos)
        if match is None:
            raise self.fail("invalid number")
        self.pos = match.end()
        token = match.group()
        if token.endswith("n"):  # BigInt
            return int(token[:-1])
        if token.lstrip("-") in ("Infinity", "NaN"):
            return float(token.replace("Infinity", "inf").replace("NaN", "nan"))
        if "." in token or "e" in token or token == "-0":
            return float(token)
        return int(token)

    def angle(self) -> Any:
        text, pos = self.text, self.pos
        buffer = _BUFFER.match(text, pos)
        if buffer:
            self.pos = buffer.end()
            return Buffer(bytes.fromhex(buffer.group(1)), int(buffer.group(2) or 0))
        match = _ANGLE.match(text, pos)
        if match is None:
            raise self.fail("unterminated '<...>'")
        self.pos = match.end()
        if match.group(1).startswith("ref *"):  # <ref *1> marks the target of a [Circular *1]
            return self.value()
        return Opaque(match.group())

    def word(self) -> Any:
        text = self.text
        start = self.pos
        ident = _IDENT.match(text, start)
        word, end = ident.group(), ident.end()
        if word in _WORDS:
            self.pos = end
            return _WORDS[word]
        if word in ("Infinity", "NaN"):
            return self.number_or_date()
        if word == "Invalid" and text.startswith(" Date", end):
            self.pos = end + 5
            return Opaque("Invalid Date")
        if _ERROR_HEAD.match(text, start):
            return self.error_value()
        parens = _PARENS.match(text, end)  # Map(2), Set(1), Symbol(description), Foo(3)
        if parens:
            end = parens.end()
        self.pos = end
        return self.after_label(text[start:end])

    def after_label(self, label: str) -> Any:
        """A label followed by `` {`` or `` [`` names a container (class instance, Map, null prototype)."""
        text, pos = self.text, self.pos
        if text.startswith((" {", " ["), pos):
            self.pos = pos + 1
            keyed, items = self.container("}" if text[pos + 1] == "{" else "]")
            return keyed if keyed or not items else items
        return Opaque(label)

    def error_value(self) -> ErrorValue:
        text = self.text
        line_end = text.find("\n", self.pos)
        line_end = len(text) if line_end < 0 else line_end
        header = text[self.pos : line_end]
        self.pos = line_end
        tail = _ERROR_MESSAGE_TAIL.match(text, self.pos)
        if tail and tail.end() > self.pos:  # a message over several lines, then the stack
            header += "\n" + "\n".join(line.strip() for line in tail.group().split("\n")[1:])
            self.pos = tail.end()
        frames = _STACK_FRAMES.match(text, self.pos)
        if frames is None:
            if header.endswith(","):  # no stack: the comma separates the next entry
                header = header[:-1]
                self.pos -= 1
            return ErrorValue(header.rstrip())
        self.pos = frames.end()
        if frames.group().endswith(","):  # the entry separator, printed right after the last frame
            self.pos -= 1
        properties: dict[str, Any] = {}
        if frames.group().rstrip().endswith("{"):  # own properties follow the last frame
            self.pos = text.rindex("{", frames.start(), frames.end())
            properties = self.container("}")[0]
        return ErrorValue(header.rstrip(), properties)

    def key(self) -> str | None:
        """The key of an entry (``name:``, ``'quoted-name':``, ``[Symbol(k)]:``) or None."""
        text, pos = self.text, self.pos
        char = text[pos]
        if char in _STRINGS:
            match = _STRINGS[char].match(text, pos)
            if match and text.startswith(":", match.end()):
                self.pos = match.end() + 1
                body = match.group(1)
                return _unescape(body) if "\\" in body else body
            return None
        if char == "[":
            match = _BRACKET_KEY.match(text, pos)
            if match:
                self.pos = match.end()
                return match.group()[:-1]
            return None
        match = _IDENT_KEY.match(text, pos)
        if match:  # in a Set an Error item would read as a key; harmless, Sets are not mapped
            self.pos = match.end()
            return match.group(1)
        return None

    def container(self, close: str) -> tuple[dict[str, Any], list[Any]]:
        """``{...}`` or ``[...]`` from the opening bracket: (keyed entries, plain items)."""
        text = self.text
        self.pos += 1
        keyed: dict[str, Any] = {}
        items: list[Any] = []
        self.skip_whitespace()
        if text.startswith(close, self.pos):
            self.pos += 1
            return keyed, items
        while True:
            self.skip_whitespace()
            if self.pos >= len(text):
                raise self.fail(f"expected '{close}'")
            more = _MORE_ITEMS.match(text, self.pos)
            if more:
                self.pos = more.end()
            else:
                key = self.key()
                if key is not None:
                    keyed[key] = self.value()
                else:
                    item = self.value()
                    after = _WHITESPACE.match(text, self.pos).end()
                    if text.startswith("=>", after):  # a Map entry
                        self.pos = after + 2
                        entry_value = self.value()
                        keyed[item if isinstance(item, str) else repr(item)] = entry_value
                    else:
                        items.append(item)
            self.skip_whitespace()
            if self.pos >= len(text):
                raise self.fail(f"expected ',' or '{close}'")
            char = text[self.pos]
            if char == ",":
                self.pos += 1
            elif char == close:
                self.pos += 1
                return keyed, items
            else:
                raise self.fail(f"expected ',' or '{close}', found {char!r}")


def _unescape(body: str) -> str:
    text = _ESCAPE.sub(_unescape_one, body)
    if "\\u" in body and _SURROGATE.search(text):  # pairs printed as \uD83D\uDE00, or lone halves
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _unescape_one(match: re.Match[str]) -> str:
    hex2, braced, hex4, char = match.groups()
    if hex2 is not None:
        return chr(int(hex2, 16))
    if hex4 is not None:
        return chr(int(hex4, 16))
    if braced is not None:
        point = int(braced, 16)
        return chr(point) if point <= 0x10FFFF else "\ufffd"
    return _SIMPLE_ESCAPES.get(char, char)


# --- from a parsed value to the row's fields ----------------------------------------------------


class FieldError(ValueError):
    """A record parsed, but a field has a value the schema cannot hold (e.g. code 'abc')."""


def _first(obj: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = obj.get(key)
        if value is not None:
            return value
    return None


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, Buffer):
        return value.text()
    if isinstance(value, ErrorValue):
        return value.header
    if isinstance(value, Opaque):
        return value.text
    return None  # an object or array where a text was expected: nothing to show


def _as_code(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value.strip()) <= 18:
        return int(value.strip())
    raise FieldError(f"invalid close code {_as_text(value) if not isinstance(value, str) else value!r}")


def _as_duration_ms(value: Any) -> float:
    if value is None:
        return float("nan")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise FieldError(f"invalid duration {value!r}") from None
    else:
        raise FieldError(f"invalid duration {_as_text(value)!r}")
    return number if math.isfinite(number) else float("nan")  # no lifetime is infinite


def _error_text(value: Any) -> str | None:
    if isinstance(value, dict):
        return _as_text(_first(value, "message", "error", "reason"))
    return _as_text(value)


# A row before typing: (connection_id, code, reason, duration_ms, client_ip, user_agent)
_Fields = tuple[str | None, int | None, str | None, float, str | None, str | None]


def fields_of(event: str, value: Any) -> _Fields:
    """The schema fields of one record's parsed value. Raises ``FieldError`` on unusable values."""
    if isinstance(value, ErrorValue):  # console.log('WebSocket error:', err)
        value = {"error": value}
    if not isinstance(value, dict):
        raise FieldError(f"expected an object after 'WebSocket {_marker_word(event)}:'")
    reason = value.get("reason")
    if event == "error":
        reason = _first(value, "error", "message", "reason", "err")
    return (
        _as_text(_first(value, "connectionId", "connection_id", "id", "connId")),
        _as_code(value.get("code")),
        _error_text(reason) if event == "error" else _as_text(reason),
        _as_duration_ms(value.get("duration")),
        _as_text(_first(value, "ip", "remoteAddress", "clientIp", "client_ip")),
        _as_text(_first(value, "userAgent", "user-agent", "user_agent", "ua")),
    )


def _marker_word(event: str) -> str:
    return {"connect": "connected"}.get(event, event)


def _fields_of_fast_body(event: str, groups: tuple[str, ...]) -> _Fields:
    """The same fields as ``fields_of`` for a ``_FAST_BODY`` match."""
    if groups[_B_CODE]:
        return (groups[_B_ID], int(groups[_B_CODE]), groups[_B_REASON], float(groups[_B_DURATION]), None, None)
    if groups[_B_IP_FLAG]:
        return (groups[_B_ID], None, None, float("nan"), groups[_B_IP], groups[_B_UA])
    # an "error" key is the reason of an error event only, as in fields_of
    return (groups[_B_ID], None, groups[_B_ERROR] if event == "error" else None, float("nan"), None, None)


# --- records over lines -----------------------------------------------------------------------


@dataclass
class _SlowRecord:
    index: int  # 0-based line where the record starts
    end: int  # one past its last line
    event: str = ""
    ts_text: str | None = None
    fields: _Fields | None = None
    problem: str | None = None


def read_record(lines: list[str], index: int, marker: re.Match[str], *, fast_path: bool = True) -> _SlowRecord:
    """Read the record whose marker is on ``lines[index]``: its extent, time and fields.

    The object after the marker continues over the following lines when the first line ends
    with ``{`` or ``[``: indented lines, up to a ``}``/``]`` alone at column 0 (after the
    prefix). A bare Error is followed by its indented stack frames. A record interrupted by an
    unindented line or the end of input is malformed ("truncated").
    """
    line = lines[index]
    event = EVENT_OF_MARKER[marker.group(1)]
    head = line[: marker.start()]
    record = _SlowRecord(index, index + 1, event, last_timestamp_in(head))
    adjacent = _ADJACENT_TIMESTAMP.search(head)
    prefix = _Continuation(head, adjacent.start() if adjacent else len(head))
    first = line[marker.end() :].lstrip(" \t")
    body = [first]
    stripped_first = first.rstrip()
    next_index = index + 1
    closed = True
    if event == "error" and not stripped_first.endswith(("{", "[")) and _ERROR_HEAD.match(first):
        while next_index < len(lines) and next_index - index < MAX_RECORD_LINES:  # stack frames
            continuation = prefix.strip(lines[next_index])
            if not _STACK_FRAME_LINE.fullmatch(continuation):
                break
            body.append(continuation)
            next_index += 1
        stripped_first = body[-1].rstrip()
    if stripped_first.endswith(("{", "[")):
        closed = False
        while next_index < len(lines) and next_index - index < MAX_RECORD_LINES:
            continuation = prefix.strip(lines[next_index])
            if continuation[:1] in ("}", "]") and continuation.rstrip() in ("}", "]"):
                body.append(continuation)
                next_index += 1
                closed = True
                break
            if continuation[:1] not in (" ", "\t"):
                break
            body.append(continuation)
            next_index += 1
    record.end = next_index
    if not closed:
        if next_index - index >= MAX_RECORD_LINES:
            record.problem = f"truncated record: the object is not closed within {MAX_RECORD_LINES} lines"
        else:
            where = "end of input" if next_index >= len(lines) else f"line {next_index + 1}"
            record.problem = f"truncated record: the object is not closed before {where}"
        return record
    if fast_path:
        fast = _FAST_BODY.fullmatch(_flatten(body))
        if fast:
            record.fields = _fields_of_fast_body(event, fast.groups())
            return record
    payload = "\n".join(body)
    if event == "error" and not _is_structured(payload):
        # console.log('WebSocket error:', err.message) prints the bare message; an Error its header
        record.fields = (None, None, body[0].rstrip() or None, float("nan"), None, None)
        return record
    try:
        record.fields = fields_of(event, parse_inspect(payload))
    except InspectSyntaxError as exc:
        record.problem = f"unparseable object: {exc}"
    except FieldError as exc:
        record.problem = str(exc)
    return record


class _Continuation:
    """Strips the prefix from a record's continuation lines.

    The prefix is what stands before the record's own ISO stamp. When that stamp was in fact the
    shipper's (``kubectl logs --timestamps`` on an app that prints none), continuation lines carry
    a stamp too: then the whole head's shape is stripped.
    """

    def __init__(self, head: str, record_start: int) -> None:
        self._prefix = ContinuationPrefix(head[:record_start])
        self._head = ContinuationPrefix(head) if record_start < len(head) else None

    def strip(self, line: str) -> str:
        text = self._prefix.strip(line)
        if self._head is not None and text[:1] not in (" ", "\t", "}", "]"):
            return self._head.strip(line)
        return text


def _is_structured(payload: str) -> bool:
    return payload.startswith(("{", "<ref *")) or _CLASS_OBJECT_HEAD.match(payload) is not None


def _flatten(body: list[str]) -> str:
    """A multi-line object of one level as util.inspect would print it on one line."""
    if len(body) == 1:
        return body[0]
    if body[0] != "{" or body[-1] != "}":
        return ""
    middle = body[1:-1]
    for line in middle:
        if not line.startswith("  ") or line[2:3] in (" ", "\t", ""):
            return ""
    return "{ " + " ".join(line[2:] for line in middle) + " }"


@dataclass
class _Rows:
    """Rows of one chunk, column-wise, before typing."""

    index: list[int] = field(default_factory=list)
    ts_text: list[str | None] = field(default_factory=list)
    event: list[str] = field(default_factory=list)
    connection_id: list[str | None] = field(default_factory=list)
    code: list[int | None] = field(default_factory=list)
    reason: list[str | None] = field(default_factory=list)
    duration_ms: list[float] = field(default_factory=list)
    client_ip: list[str | None] = field(default_factory=list)
    user_agent: list[str | None] = field(default_factory=list)

    def add(self, index: int, ts_text: str | None, event: str, fields: _Fields) -> None:
        self.index.append(index)
        self.ts_text.append(ts_text)
        self.event.append(event)
        connection_id, code, reason, duration_ms, client_ip, user_agent = fields
        self.connection_id.append(connection_id)
        self.code.append(code)
        self.reason.append(reason)
        self.duration_ms.append(duration_ms)
        self.client_ip.append(client_ip)
        self.user_agent.append(user_agent)


class _Scan:
    """State that crosses chunk boundaries: lines taken by records, counts."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.taken = bytearray(len(lines))  # 1 = part of a record (read or malformed)
        self.taken_mask = np.frombuffer(self.taken, dtype=bool) if lines else np.zeros(0, bool)
        self.malformed = MalformedCollector()
        self.ignored = 0

    def take(self, start: int, stop: int) -> None:
        self.taken[start:stop] = b"\x01" * (stop - start)

    def read(self, index: int, marker: re.Match[str], rows: _Rows, fast_path: bool) -> None:
        record = read_record(self.lines, index, marker, fast_path=fast_path)
        self.take(record.index, record.end)
        if record.problem:
            self.malformed.add(index + 1, self.lines[index], record.problem)
        else:
            rows.add(index, record.ts_text, record.event, record.fields)


def detect(sample: list[str]) -> float:
    """Score 0..1 that ``sample`` is this format: lines with a ``WebSocket <event>:`` record.

    Marker lines that are JSON objects (a JSON logger's ``msg``) count against it.
    """
    records = json_like = 0
    for line in sample:
        marker = MARKER.search(line)
        if marker is None:
            continue
        brace = line.find("{")
        if 0 <= brace < marker.start() and line.rstrip().endswith("}"):
            json_like += 1
        else:
            records += 1
    if not records:
        return 0.0
    return 0.6 + 0.4 * records / (records + json_like)


def parse(
    lines: Iterable[str], source: str, *, fast_path: bool = True, timezone: str | None = None, columns: bool = True
) -> ParsedLog:
    """Parse with naive timestamps read in ``timezone`` (``log_timezone``: UTC when None); see ``_parse``."""
    with naive_timezone(parse_timezone(timezone)):
        return _parse(lines, source, fast_path=fast_path, columns=columns)


def _parse(lines: Iterable[str], source: str, *, fast_path: bool = True, columns: bool = True) -> ParsedLog:
    """Parse Node monitor output into the normalized close-log frame.

    ``lines``: the log's lines (or its whole text); ``source`` names it in every row. Lines
    without a record are counted in ``ignored_lines``; records that do not parse (truncated
    objects, invalid codes, impossible timestamps) in ``malformed_count`` with examples. Rows
    keep the line where their record starts. ``fast_path=False`` parses every record with the
    tokenizer (the reference the fast path is tested against). Never raises on content.

    The fast path reads the plain records as columns (``_parse_columns``) when the lines can be
    held as one UTF-8 buffer; ``columns=False`` reads them line by line (the same result, tested).
    """
    if fast_path and columns:
        table = columnar.LineTable.of(lines)
        if table is not None:
            with gc_paused():
                return _parse_columns(table, source)
    lines = to_lines(lines)
    scan = _Scan(lines)
    frames = []
    with gc_paused():
        for start in range(0, len(lines), CHUNK_LINES):
            stop = min(len(lines), start + CHUNK_LINES)
            if fast_path:
                frames.append(_parse_chunk_fast(scan, start, stop, source))
            else:
                frames.append(_parse_chunk_slow(scan, start, stop, source))
    return ParsedLog(
        source=source,
        format=NAME,
        frame=concat_frames(frames),
        lines_total=len(lines),
        ignored_lines=scan.ignored,
        malformed_count=scan.malformed.count,
        malformed_examples=scan.malformed.examples,
    )


def _parse_chunk_slow(scan: _Scan, start: int, stop: int, source: str):
    rows = _Rows()
    for index in range(start, stop):
        if scan.taken[index]:
            continue
        line = scan.lines[index]
        marker = MARKER.search(line)
        if marker:
            scan.read(index, marker, rows, fast_path=False)
        elif line.strip():
            scan.ignored += 1
    return _frame(scan, rows, source)


def _read_flat_block(scan: _Scan, index: int, opening: re.Match[str], rows: _Rows) -> bool:
    """Read an unprefixed multi-line object of one level in the fast shape; False to fall back.

    Gives what ``read_record`` gives for the same lines: the same extent rule (indented lines up
    to "}"), the same flattening and body expression; the canonical stamp is its own ISO text.
    """
    lines = scan.lines
    end = index + 1
    limit = min(len(lines), index + 64)
    while end < limit and lines[end][:2] == "  ":
        end += 1
    if end >= limit or lines[end] != "}":
        return False
    fast = _FAST_BODY.fullmatch(_flatten(["{", *lines[index + 1 : end], "}"]))
    if fast is None:
        return False
    event = EVENT_OF_MARKER[opening.group(2)]
    rows.add(index, opening.group(1), event, _fields_of_fast_body(event, fast.groups()))
    scan.take(index, end + 1)
    return True


def _parse_chunk_fast(scan: _Scan, start: int, stop: int, source: str):
    lines = scan.lines
    chunk = lines[start:stop]
    matches = list(map(_FAST_LINE.match, chunk))
    is_fast = np.fromiter(map(operator.is_not, matches, repeat(None)), bool, len(chunk))
    groups = list(map(re.Match.groups, filter(None, matches), repeat("")))
    del matches
    others = np.flatnonzero(~is_fast)
    other_lines = [chunk[k] for k in others.tolist()]
    mentions = np.fromiter(map(operator.contains, other_lines, repeat("WebSocket ")), bool, len(others))
    if mentions.any():  # records behind a log prefix
        candidates = others[mentions]
        prefixed = list(map(_FAST_PREFIXED_LINE.match, [chunk[k] for k in candidates.tolist()]))
        found = np.fromiter(map(operator.is_not, prefixed, repeat(None)), bool, len(candidates))
        if found.any():
            is_fast[candidates[found]] = True
            groups = _merge_in_line_order(is_fast, groups, candidates[found], prefixed)
            others = np.flatnonzero(~is_fast)

    rows = _Rows()
    taken = scan.taken
    for offset in others.tolist():
        index = start + offset
        if taken[index]:
            continue
        line = lines[index]
        opening = _FAST_OPEN_LINE.fullmatch(line)
        if opening and _read_flat_block(scan, index, opening, rows):
            continue
        marker = MARKER.search(line)
        if marker:
            scan.read(index, marker, rows, fast_path=True)
        elif line.strip():
            scan.ignored += 1
    fast_index = np.flatnonzero(is_fast) + start
    keep = ~scan.taken_mask[fast_index]  # a multi-line record can claim a following line (never in practice)
    scan.taken_mask[fast_index] = True
    columns = [np.asarray(column, dtype=object)[keep] for column in zip(*groups)] if groups else None
    return _frame(scan, rows, source, fast_index[keep], columns)


def _merge_in_line_order(
    is_fast: np.ndarray, groups: list[tuple[str, ...]], added: np.ndarray, matches: list[re.Match[str] | None]
) -> list[tuple[str, ...]]:
    """The groups of both fast passes, in line order (``is_fast`` already includes ``added``)."""
    by_offset = dict(zip(added.tolist(), map(re.Match.groups, filter(None, matches), repeat(""))))
    first_pass = iter(groups)
    return [by_offset[k] if k in by_offset else next(first_pass) for k in np.flatnonzero(is_fast).tolist()]


def _frame(
    scan: _Scan,
    rows: _Rows,
    source: str,
    fast_index: np.ndarray | None = None,
    fast: list[np.ndarray] | None = None,
):
    """Type the chunk's rows (bulk-matched and tokenized), in line order, into a frame."""
    count_slow = len(rows.index)
    index = np.asarray(rows.index, dtype=np.int64)
    ts_text = as_object_array(rows.ts_text, count_slow)
    event = as_object_array(rows.event, count_slow)
    connection_id = as_object_array(rows.connection_id, count_slow)
    code_missing = np.fromiter((c is None for c in rows.code), bool, count_slow)
    code = np.fromiter((0 if c is None else c for c in rows.code), np.int64, count_slow)
    reason = as_object_array(rows.reason, count_slow)
    duration_ms = np.asarray(rows.duration_ms, dtype=np.float64)
    client_ip = as_object_array(rows.client_ip, count_slow)
    user_agent = as_object_array(rows.user_agent, count_slow)

    if fast is not None and len(fast_index):
        is_disconnect = fast[_G_CODE] != ""
        is_connect = fast[_G_IP_FLAG] != ""
        is_error = fast[_G_ERROR_FLAG] != ""
        # int() and float() of the matched digits, as the tokenizer does; few distinct codes
        code_of = {text: int(text) for text in set(fast[_G_CODE].tolist()) if text}
        fast_code = np.fromiter(map(code_of.get, fast[_G_CODE], repeat(0)), np.int64, len(fast_index))
        fast_duration = np.full(len(fast_index), np.nan)
        fast_duration[is_disconnect] = np.fromiter(map(float, fast[_G_DURATION][is_disconnect]), np.float64)
        fast_event = np.where(fast[_G_EVENT] == "connected", "connect", fast[_G_EVENT])
        index = np.concatenate([index, fast_index])
        ts_text = np.concatenate([ts_text, fast[_G_TS]])
        event = np.concatenate([event, fast_event])
        connection_id = np.concatenate([connection_id, fast[_G_ID]])
        code = np.concatenate([code, fast_code])
        code_missing = np.concatenate([code_missing, ~is_disconnect])
        error_reason = np.where(is_error & (fast_event == "error"), fast[_G_ERROR], None)
        reason = np.concatenate([reason, np.where(is_disconnect, fast[_G_REASON], error_reason)])
        duration_ms = np.concatenate([duration_ms, fast_duration])
        client_ip = np.concatenate([client_ip, np.where(is_connect, fast[_G_IP], None)])
        user_agent = np.concatenate([user_agent, np.where(is_connect, fast[_G_UA], None)])

    order = np.argsort(index, kind="stable")
    ts_ns, bad_ts = parse_timestamps(list(ts_text[order]))
    # Both paths meet here, so an impossible code or lifetime is malformed the same way in each.
    bad_range = out_of_range(code[order], code_missing[order], duration_ms[order] / 1000.0)
    bad = bad_ts | bad_range
    keep = order
    if bad.any():
        for position in np.flatnonzero(bad):
            row = order[position]
            line_index = int(index[row])
            if bad_ts[position]:
                problem = f"timestamp {ts_text[row]!r} does not parse"
            else:
                problem = range_problem(int(code[row]), bool(code_missing[row]), float(duration_ms[row]) / 1000.0)
            scan.malformed.add(line_index + 1, scan.lines[line_index], problem)
        keep = order[~bad]
        ts_ns = ts_ns[~bad]
    return build_frame(
        source=source,
        line_no=index[keep] + 1,
        ts_ns=ts_ns,
        event=event[keep],
        connection_id=connection_id[keep],
        code=code[keep],
        code_missing=code_missing[keep],
        reason=reason[keep],
        duration_s=duration_ms[keep] / 1000.0,
        client_ip=client_ip[keep],
        user_agent=user_agent[keep],
    )



# --- the fast path as columns (see runbook/logs/columnar.py) ---------------------------------------
# The whole log is one UTF-8 buffer (columnar.LineTable). Read as columns: the printable-ASCII lines
# that _FAST_LINE matches (RE2 over all of them at once), and the flat multi-line objects that
# _read_flat_block accepts (flattened in Arrow, then matched as single lines). Every other line that
# mentions "WebSocket " goes through the line reader above, in line order, unchanged; a record it
# reads may claim lines below it, which then are not read as columns. On printable ASCII, RE2 and
# Python's re agree on these expressions (literals, classes, bounded repeats, alternatives).
_FAST_RECORD_RE2 = _FAST_RECORD[: -len("$")]  # LineTable.matches anchors it at the end of the line
assert _FAST_RECORD.endswith("$")
_FAST_OPEN_RE2 = _FAST_OPEN_LINE.pattern  # fullmatch: anchored at both ends
_STAMP_WIDTH = 24  # "2026-11-28T03:00:00.000Z"
_EVENT_LETTER_AT = _STAMP_WIDTH + len(" WebSocket ")  # d(isconnect), c(onnected), e(rror)
_FLAT_MAX_LINES = 64  # _read_flat_block looks this far for the closing "}"
_SPACE, _TAB = ord(" "), ord("\t")


class _TableLines:
    """The lines of a ``LineTable`` as the line reader takes them: a sequence of str, each line
    decoded when asked (``common.to_lines``'s text for the same log)."""

    def __init__(self, table: columnar.LineTable) -> None:
        self.table = table

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, key):
        count = len(self.table)
        if isinstance(key, slice):
            return [self.table.text(row) for row in range(*key.indices(count))]
        row = key + count if key < 0 else key
        if not 0 <= row < count:
            raise IndexError(key)
        return self.table.text(row)


def _parse_columns(table: columnar.LineTable, source: str) -> ParsedLog:
    """``_parse`` with ``fast_path=True`` for the lines of ``table``: the same frame, counts and
    malformed examples as the line-by-line fast path (``_parse_chunk_fast``)."""
    count = len(table)
    lines = _TableLines(table)
    scan = _Scan(lines)
    start, end, simple = table.start, table.end, table.simple
    length = end - start
    head = table.bytes_at(start, 3)  # the first 3 bytes of each line (then the next line's)
    digit_first = (head[:, 0] >= ord("0")) & (head[:, 0] <= ord("9"))

    last = table.bytes_at(end - 1, 1)[:, 0]  # the last byte of each line (when not empty)

    # single-line records of the common shape without a prefix: what _FAST_LINE matches
    is_fast = np.zeros(count, bool)
    closed = (last == ord("}")) | (last == _SPACE) | (last == _TAB)  # "}" and blanks end such a line
    candidates = np.flatnonzero(simple & digit_first & closed & (length > _EVENT_LETTER_AT))
    is_fast[candidates] = table.matches(candidates, start[candidates], _FAST_RECORD_RE2)

    # flat multi-line objects: what _read_flat_block reads (its extent rule, its flattening)
    maybe_open = np.flatnonzero(simple & digit_first & ~is_fast & (last == ord("{")))
    opens = maybe_open[table.matches(maybe_open, start[maybe_open], _FAST_OPEN_RE2)]
    indented = (length >= 2) & (head[:, 0] == _SPACE) & (head[:, 1] == _SPACE)
    flat_line = indented & simple & (length >= 3) & (head[:, 2] != _SPACE) & (head[:, 2] != _TAB)
    breaks = np.append(np.flatnonzero(~indented), count)
    closes = breaks[np.searchsorted(breaks, opens + 1)]  # the first line after the opening not indented
    unflat = np.concatenate(([0], np.cumsum(indented & ~flat_line)))
    safe_close = np.minimum(closes, max(count - 1, 0))
    shaped = (
        (closes < count) & (closes - opens < _FLAT_MAX_LINES) & (closes > opens + 1)
        & (length[safe_close] == 1) & (head[safe_close, 0] == ord("}")) & (unflat[safe_close] == unflat[opens + 1])
    )
    opens, closes = opens[shaped], closes[shaped]
    flat_table = None
    if len(opens):
        objects, flat_table = _flattened(table, opens, closes)
        matched = columnar.values_of(pc.match_substring_regex(objects, "^(?:" + _FAST_RECORD_RE2 + ")$"))
        block_rows = np.flatnonzero(matched)  # rows of flat_table
        opens, closes = opens[matched], closes[matched]
    else:
        block_rows = np.empty(0, np.int64)
    is_open = np.zeros(count, bool)
    is_open[opens] = True

    # every other line that mentions "WebSocket ": a record behind a prefix, or one the line reader reads
    rest = np.flatnonzero(~is_fast & ~is_open)
    mentions = rest[_mentions(table)[rest]]
    prefixed_index: list[int] = []
    prefixed_groups: list[tuple[str, ...]] = []
    markers: list[int] = []
    for row in mentions.tolist():
        line = lines[row]
        match = _FAST_LINE.match(line) or _FAST_PREFIXED_LINE.match(line)
        if match:
            prefixed_index.append(row)
            prefixed_groups.append(match.groups(""))
        elif MARKER.search(line):
            markers.append(row)

    # the line reader, in line order; a flat object read as columns holds its lines unless a record
    # above it claimed its first line (a record's lines are contiguous: it holds them all or none)
    rows = _Rows()
    taken = scan.taken
    open_list, close_list = opens.tolist(), closes.tolist()
    for row in markers:
        if taken[row]:
            continue
        block = bisect.bisect_right(open_list, row) - 1
        if block >= 0 and row <= close_list[block] and not taken[open_list[block]]:
            continue
        line = lines[row]
        opening = _FAST_OPEN_LINE.fullmatch(line)
        if opening and _read_flat_block(scan, row, opening, rows):
            continue
        scan.read(row, MARKER.search(line), rows, fast_path=True)

    claimed = scan.taken_mask.copy() if count else np.zeros(0, bool)
    accepted = ~claimed[opens]
    opens, closes, block_rows = opens[accepted], closes[accepted], block_rows[accepted]
    edges = np.zeros(count + 1, np.int64)
    edges[opens] += 1
    edges[closes + 1] -= 1
    claimed |= np.cumsum(edges[:count]) > 0

    # lines of no record: ignored unless blank
    is_prefixed = np.zeros(count, bool)
    is_prefixed[prefixed_index] = True
    is_marker = np.zeros(count, bool)
    is_marker[markers] = True
    loose = np.flatnonzero(~claimed & ~is_fast & ~is_prefixed & ~is_marker & ~is_open)
    first_byte, last_byte = head[loose, 0], last[loose]
    plain = simple[loose] & (length[loose] > 0)
    nonblank = plain & (((first_byte != _SPACE) & (first_byte != _TAB)) | ((last_byte != _SPACE) & (last_byte != _TAB)))
    unsure = loose[~nonblank & ~(simple[loose] & (length[loose] == 0))]
    ignored = int(nonblank.sum()) + sum(1 for row in unsure.tolist() if lines[row].strip())

    # the rows the line reader read (and the prefixed records), as _parse_chunk_fast types them
    kept = [k for k, row in enumerate(prefixed_index) if not claimed[row]]
    prefixed_rows = np.asarray([prefixed_index[k] for k in kept], np.int64)
    groups = [prefixed_groups[k] for k in kept]
    group_columns = [np.asarray(column, dtype=object) for column in zip(*groups)] if groups else None
    frames = []
    if rows.index or groups:
        frames.append(_frame(scan, rows, source, prefixed_rows, group_columns))
    frames.append(_columns_frame(scan, source, [
        (table, np.flatnonzero(is_fast & ~claimed), None),
        (flat_table, block_rows, opens),
    ]))
    frame = _in_line_order(frames)
    return ParsedLog(
        source=source,
        format=NAME,
        frame=frame,
        lines_total=count,
        ignored_lines=ignored,
        malformed_count=scan.malformed.count,
        malformed_examples=scan.malformed.examples,
    )


def _flattened(table: columnar.LineTable, opens: np.ndarray, closes: np.ndarray) -> tuple[Any, columnar.LineTable]:
    """The objects from each of ``opens`` to its closing line, each on one line as ``_flatten``
    writes it after its opening line's text: the opening line, the indented lines without their
    two spaces and the closing "}", joined by a space. One line per object, in a table of their own
    (its lines are not separated: ``start``/``end`` bound them), and as a string array."""
    sizes = closes - opens + 1
    offsets = np.concatenate(([0], np.cumsum(sizes)))
    lines = np.repeat(opens - offsets[:-1], sizes) + np.arange(offsets[-1])
    indent = np.full(len(lines), 2)
    indent[offsets[:-1]] = 0  # the opening line
    indent[offsets[1:] - 1] = 0  # the closing "}"
    pieces = table.strings(table.start[lines] + indent, table.end[lines])
    joined = pc.binary_join(pa.LargeListArray.from_arrays(pa.array(offsets), pieces), pa.scalar(" ", pa.large_string()))
    _, offsets_buffer, data_buffer = joined.buffers()
    bounds = np.frombuffer(offsets_buffer, np.int64)[joined.offset : joined.offset + len(joined) + 1]
    data = data_buffer.to_pybytes()[bounds[0] : bounds[-1]]
    bounds = bounds - bounds[0]
    return joined, columnar.LineTable(data, bounds[:-1].copy(), bounds[1:].copy(), None)


_WEBSOCKET = np.frombuffer(b"ebSocket", "<u8")[0]


def _mentions(table: columnar.LineTable) -> np.ndarray:
    """Per line, whether it holds "WebSocket " (every "W" of the buffer, and the 9 bytes after it)."""
    found = np.zeros(len(table), bool)
    if b"WebSocket " not in table.data:
        return found
    at = table.positions(ord("W"))
    at = at[(table.words(at + 1, 8) == _WEBSOCKET) & (table.buf[np.minimum(at + 9, len(table.buf) - 1)] == _SPACE)]
    found[np.searchsorted(table.start, at, side="right") - 1] = True
    return found


def _node_stamps(table: columnar.LineTable, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The times written ``YYYY-MM-DDTHH:MM:SS.mmmZ`` at ``at`` (digits where digits belong, as
    _NODE_STAMP matched) as UTC nanoseconds, and where they are real times of years 1900-2199.

    Eight bytes at a time: the digits (XOR "0"), the rest zeroed, then ``10 * d[i] + d[i + 1]``
    in every byte at once (at most 99: no carry), and the two-digit numbers read at their bytes."""
    u64 = np.uint64

    def pairs(offset: int, digit_bytes: int) -> np.ndarray:
        digits = (table.words(at + offset, 8) ^ u64(0x3030303030303030)) & u64(digit_bytes)
        return digits * u64(10) + (digits >> u64(8)), digits

    def byte(word: np.ndarray, index: int) -> np.ndarray:
        return ((word >> u64(8 * index)) & u64(0xFF)).astype(np.int64)

    date, _ = pairs(0, 0x00FFFF00FFFFFFFF)  # YYYY-MM-
    day_time, _ = pairs(8, 0xFFFF00FFFF00FFFF)  # DDTHH:MM
    rest, digits = pairs(16, 0x00FFFFFF00FFFF00)  # :SS.mmmZ
    year, month = byte(date, 0) * 100 + byte(date, 2), byte(date, 5)
    wall, ok = columnar.civil_ns(year, month, byte(day_time, 0), byte(day_time, 3), byte(day_time, 6), byte(rest, 1))
    millis = byte(rest, 4) * 10 + byte(digits, 6)
    return wall + millis * 1_000_000, ok


def _fast_columns(table: columnar.LineTable, rows: np.ndarray) -> dict[str, Any]:
    """What ``_frame`` makes of ``_FAST_LINE``'s groups, for lines of ``table`` that
    ``_FAST_RECORD_RE2`` matched: values hold no quote, so the n-th quote of the line is the n-th
    quote of the expression, and the fields lie between fixed texts and those quotes. String
    columns come as spans of ``table`` (begin, end, present)."""
    at = table.start[rows]
    ts_ns, ts_ok = _node_stamps(table, at)
    letter = table.buf[at + _EVENT_LETTER_AT]
    event = np.where(letter == ord("d"), columnar.DISCONNECT,
                     np.where(letter == ord("c"), columnar._EVENT_CODE["connect"], columnar.ERROR)).astype(np.int8)
    quotes = table.positions(ord("'"))
    first = np.searchsorted(quotes, at)
    q = [quotes[np.minimum(first + k, len(quotes) - 1)] for k in range(6)]
    shape = table.buf[q[1] + len("', ")]  # c(ode), i(p), e(rror)
    is_code, is_ip = shape == ord("c"), shape == ord("i")
    is_error_key = ~is_code & ~is_ip
    codes = _strings(table, q[1] + len("', code: "), q[2] - len(", reason: "), is_code)
    code = columnar.values_of(pc.cast(codes, pa.int64()))  # 1-9 digits, as int() reads them
    # the "}" after the duration: the line's last byte, unless blanks follow it
    brace = table.end[rows] - 1
    trailing = np.flatnonzero(table.buf[brace] != ord("}"))
    if trailing.size:
        braces = table.positions(ord("}"))
        brace[trailing] = braces[np.minimum(np.searchsorted(braces, q[3][trailing]), len(braces) - 1)]
    durations = _strings(table, q[3] + len("', duration: "), brace - 1, is_code)
    # Arrow's string to double rounds correctly, as float() does: the same doubles (NaN where null)
    duration_ms = pc.cast(durations, pa.float64()).to_numpy(zero_copy_only=False)
    return {
        "at": at,
        "ts_ns": ts_ns,
        "ts_ok": ts_ok,
        "event": event,
        "code": code.astype(np.int64),
        "code_missing": ~is_code,
        "duration_ms": duration_ms,
        "connection_id": (q[0] + 1, q[1], np.ones(len(rows), bool)),
        "reason": (q[2] + 1, q[3], is_code | (is_error_key & (event == columnar.ERROR))),
        "client_ip": (q[2] + 1, q[3], is_ip),
        "user_agent": (q[4] + 1, q[5], is_ip),
    }


_STRING_COLUMNS = ("connection_id", "reason", "client_ip", "user_agent")
_NUMBER_COLUMNS = ("ts_ns", "ts_ok", "event", "code", "code_missing", "duration_ms", "at")
_VIEW_BLOCK = 1 << 30  # as columnar.LineTable.strings: a string view's offset is an int32


def _views(table: columnar.LineTable, begin: np.ndarray, end: np.ndarray, present: np.ndarray, first_buffer: int) -> np.ndarray:
    """Arrow string views (rows of 4 uint32) of ``table.data[begin:end]`` (empty where not
    ``present``), whose data buffers are the table's, numbered from ``first_buffer``."""
    views = np.zeros((len(begin), 4), "<u4")
    rows = slice(None) if present.all() else np.flatnonzero(present)
    begin = begin[rows]
    if not len(begin):
        return views
    length = end[rows] - begin
    inline = table.bytes_at(begin, 12)
    inline *= np.arange(12) < length[:, None]  # a short string is held zero padded
    views[rows, 0] = length
    views[rows, 1:] = inline.view("<u4")
    long = np.flatnonzero(length > 12)  # its first 4 bytes, its buffer and its offset there
    at = long if isinstance(rows, slice) else rows[long]
    views[at, 2] = first_buffer + begin[long] // _VIEW_BLOCK
    views[at, 3] = begin[long] % _VIEW_BLOCK
    return views


def _strings(table: columnar.LineTable, begin: np.ndarray, end: np.ndarray, present: np.ndarray):
    """``table.data[begin:end]`` as a pyarrow ``string_view`` array, null where not ``present``."""
    views = _views(table, begin, end, present, 0)
    validity = None if present.all() else pa.py_buffer(np.packbits(present, bitorder="little"))
    return pa.Array.from_buffers(pa.string_view(), len(begin), [validity, pa.py_buffer(views), *_buffers(table)])


def _buffers(table: columnar.LineTable) -> list:
    return [pa.py_buffer(memoryview(table.data)[k * _VIEW_BLOCK :]) for k in range(max(1, -(-len(table.buf) // _VIEW_BLOCK)))]


def _columns_frame(scan: _Scan, source: str, parts: list[tuple[columnar.LineTable | None, np.ndarray, np.ndarray | None]]):
    """The frame of the records read as columns: ``parts`` are (table, its rows, their line
    indexes in the log, or None when the rows are the log's lines). Checked as ``_frame`` checks
    rows: a time that does not parse, a code or lifetime out of range is a malformed record."""
    pieces, indexes, tables = [], [], []
    for table, rows, index in parts:
        if table is None or not len(rows):
            continue
        pieces.append(_fast_columns(table, rows))
        indexes.append(rows if index is None else index)
        tables.append(table)
    if not pieces:
        return None
    index = np.concatenate(indexes)
    order = np.argsort(index, kind="stable")
    index = index[order]
    piece_of = np.repeat(np.arange(len(pieces)), [len(rows) for rows in indexes])[order]
    merged = {name: np.concatenate([p[name] for p in pieces])[order] for name in _NUMBER_COLUMNS}
    ts_ns = merged["ts_ns"]
    bad_ts = np.zeros(len(index), bool)
    ts_text: dict[int, str] = {}
    unsure = np.flatnonzero(~merged["ts_ok"])
    if unsure.size:  # outside 1900-2199 or not a real date: as parse_timestamps reads it
        texts = [
            tables[piece].data[at : at + _STAMP_WIDTH].decode("utf-8")
            for piece, at in zip(piece_of[unsure].tolist(), merged["at"][unsure].tolist())
        ]
        ts_text = dict(zip(unsure.tolist(), texts))
        ts_ns[unsure], bad_ts[unsure] = parse_timestamps(texts)
    code, code_missing, duration_ms = merged["code"], merged["code_missing"], merged["duration_ms"]
    bad = bad_ts | out_of_range(code, code_missing, duration_ms / 1000.0)
    keep = order
    if bad.any():
        for position in np.flatnonzero(bad).tolist():
            line_index = int(index[position])
            if bad_ts[position]:
                problem = f"timestamp {ts_text[position]!r} does not parse"
            else:
                problem = range_problem(int(code[position]), bool(code_missing[position]), float(duration_ms[position]) / 1000.0)
            scan.malformed.add(line_index + 1, scan.lines[line_index], problem)
        good = ~bad
        keep = order[good]
        index, ts_ns, code, code_missing, duration_ms = index[good], ts_ns[good], code[good], code_missing[good], duration_ms[good]
        merged["event"] = merged["event"][good]
    # the string columns: views of each table's buffer, in line order, copied once
    buffers, firsts = [], []
    for table in tables:
        firsts.append(len(buffers))
        buffers.extend(_buffers(table))
    strings = {}
    for name in _STRING_COLUMNS:
        views = np.concatenate([_views(table, *piece[name], first) for table, piece, first in zip(tables, pieces, firsts)])[keep]
        present = np.concatenate([piece[name][2] for piece in pieces])[keep]
        validity = None if present.all() else pa.py_buffer(np.packbits(present, bitorder="little"))
        array = pa.Array.from_buffers(pa.string_view(), len(keep), [validity, pa.py_buffer(views), *buffers])
        strings[name] = array.cast(pa.large_string())
    return build_frame(
        source=source,
        line_no=index + 1,
        ts_ns=ts_ns,
        event=merged["event"],
        connection_id=strings["connection_id"],
        code=code,
        code_missing=code_missing,
        reason=strings["reason"],
        duration_s=duration_ms / 1000.0,
        client_ip=strings["client_ip"],
        user_agent=strings["user_agent"],
        is_mobile=columnar.mobile_user_agents(strings["user_agent"]),
    )


def _in_line_order(frames: list) -> Any:
    """One frame of the rows of ``frames`` (each in line order), in line order."""
    frames = [frame for frame in frames if frame is not None and len(frame)]
    if len(frames) <= 1:
        return concat_frames(frames)
    frame = concat_frames(frames)
    order = np.argsort(frame["line_no"].to_numpy(np.int64), kind="stable")
    return frame.take(order).reset_index(drop=True)
