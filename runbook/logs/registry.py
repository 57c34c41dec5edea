"""The registry of close-log formats, and the entry points that pick one.

Each format is a small module (or any object) with ``NAME``, ``detect(sample) -> float`` (0 when
the sample is surely not this format, 1 when it surely is) and ``parse(lines, source) ->
ParsedLog``. ``parse_log`` detects the format from the first non-blank lines unless told, and
never raises on content: a log nobody can read comes back as a ParsedLog with an ``error``.

A format is claimed only when its score is high enough *and* its own parser finds records in a
meaningful part of the sample (``MIN_RECORD_SHARE`` of the lines, or ``MIN_RECORD_LINES``): a
README that quotes one log line, or an access log with one odd entry, is not a close log.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import pandas as pd

from runbook.errors import ParameterError
from runbook.logs import balancers, haproxy, har, jsonlines, nginx, node_monitor, phrases, server_state
from runbook.logs.common import concat_frames, excerpt, first_nonblank, to_log_text
from runbook.logs.lines import gauge_states
from runbook.observations import LOG_COLUMNS, STATE_COLUMNS, ParsedLog, empty_log_frame, empty_state_frame

DETECTION_SAMPLE_LINES = 300  # non-blank lines read to detect a format
WIDER_SAMPLE_LINES = 5_000  # read next when the first lines are all startup chatter
MIN_DETECTION_SCORE = 0.3  # below this no format is claimed
# ...and the format's parser must take this share of the sample's lines as records (malformed
# ones included; the rest it ignores), or at least MIN_RECORD_LINES of them: a log where app
# output outnumbers the records four to one still qualifies, a README quoting one record does not
MIN_RECORD_SHARE = 0.2
MIN_RECORD_LINES = 10
# A format whose detector reads the line grammar itself (``STRUCTURAL = True``: nginx error log,
# ss output) is claimed from this score even when none of its lines is a WebSocket record: an
# nginx error log with only startup notices is an nginx error log, not an unreadable file.
STRUCTURAL_SCORE = 0.5
# The format tried only when no other format qualifies (see runbook/logs/generic.py).
FALLBACK_FORMAT = "generic"
UNREADABLE_HEAD_LINES = 3  # first lines quoted when no format can read a file


@runtime_checkable
class LogFormat(Protocol):
    """What a log format module provides."""

    NAME: str

    def detect(self, sample: list[str]) -> float: ...

    def parse(self, lines: Iterable[str], source: str) -> ParsedLog: ...


FORMATS: dict[str, LogFormat] = {
    node_monitor.NAME: node_monitor,
    jsonlines.NAME: jsonlines,
    nginx.ACCESS_NAME: nginx.ACCESS,
    nginx.ERROR_NAME: nginx.ERROR,
    haproxy.NAME: haproxy.FORMAT,
    **{log_format.NAME: log_format for log_format in balancers.FORMATS},
    har.NAME: har.HAR,
    server_state.SOCKETS_NAME: server_state.SOCKETS,
    server_state.CSV_NAME: server_state.STATE_CSV,
    **{log_format.NAME: log_format for log_format in phrases.FORMATS},  # generic last: the fallback
}


def register_format(log_format: LogFormat) -> None:
    """Add (or replace) a format under its ``NAME``; detection tries formats in registration order."""
    if not isinstance(log_format, LogFormat) or not isinstance(getattr(log_format, "NAME", None), str):
        raise ParameterError("log_format", "needs NAME (str), detect(sample) and parse(lines, source)")
    FORMATS[log_format.NAME] = log_format


def detect_format(sample_lines: str | bytes | Iterable[str]) -> str | None:
    """The name of the best-scoring format for these lines, or None when none qualifies."""
    return detect_format_scored(sample_lines)[0]


def detect_format_scored(
    sample_lines: str | bytes | Iterable[str], extra_formats: Iterable[LogFormat] = ()
) -> tuple[str | None, float]:
    """The best-scoring format for these lines and its score (the detection's confidence, 0..1);
    ``(None, 0.0)`` when none qualifies. ``extra_formats`` (e.g. access-log formats compiled from
    the nginx config at hand) are tried before the registered ones and win ties.

    Reads the first ``DETECTION_SAMPLE_LINES`` non-blank lines, then up to
    ``WIDER_SAMPLE_LINES`` when those match nothing. A format needs a score of at least
    ``MIN_DETECTION_SCORE`` and enough records in the sample (see the module docstring); among
    those the highest score wins, ties going to the earlier-registered format. The fallback
    format (``FALLBACK_FORMAT``) is tried last, only when no other format qualifies.
    """
    lines = to_log_text(sample_lines)
    candidates = {f.NAME: f for f in extra_formats} | {n: f for n, f in FORMATS.items() if n not in {f.NAME for f in extra_formats}}
    sample = first_nonblank(lines, DETECTION_SAMPLE_LINES)
    found = _best_format(sample, candidates)
    if found[0] is None and len(sample) >= DETECTION_SAMPLE_LINES:
        found = _best_format(first_nonblank(lines, WIDER_SAMPLE_LINES), candidates)
    return found


def _best_format(sample: list[str], candidates: dict[str, LogFormat]) -> tuple[str | None, float]:
    """The best-scored format whose check passes (STRUCTURAL_SCORE for a structural one, enough
    records for the others); ties keep the candidates' order, the fallback comes last.

    Formats with a known ceiling on their score (``MAX_SCORE``: the phrase formats, whose
    regexes over the sample cost ~0.1 s a file) are scored only when no other format has already
    won with a score above every ceiling: one that scored below could never be chosen before it."""
    items = list(candidates.items())
    capped = [at for at, (_, log_format) in enumerate(items) if getattr(log_format, "MAX_SCORE", None) is not None]
    scored = _scores(sample, items, [at for at in range(len(items)) if at not in capped])
    ceiling = max((items[at][1].MAX_SCORE for at in capped), default=0.0)
    found = _first_that_qualifies(sample, items, [key for key in scored if not key[0] and -key[1] > ceiling])
    if found[0] is not None or not capped:
        return found
    return _first_that_qualifies(sample, items, scored + _scores(sample, items, capped))


def _scores(sample: list[str], items: list[tuple[str, LogFormat]], positions: list[int]) -> list[tuple[bool, float, int]]:
    """(is the fallback, minus the score, position) of the formats at ``positions`` that score enough."""
    scored = []
    for at in positions:
        name, log_format = items[at]
        try:
            score = float(log_format.detect(sample))
        except Exception:  # a broken detector must not hide the other formats
            continue
        if score >= MIN_DETECTION_SCORE or (name == FALLBACK_FORMAT and score > 0):
            scored.append((name == FALLBACK_FORMAT, -score, at))
    return scored


def _first_that_qualifies(sample: list[str], items: list[tuple[str, LogFormat]],
                          scored: list[tuple[bool, float, int]]) -> tuple[str | None, float]:
    for _, negative_score, at in sorted(scored):  # the position breaks ties: candidates' order
        name, log_format = items[at]
        if getattr(log_format, "STRUCTURAL", False) and -negative_score >= STRUCTURAL_SCORE:
            return name, -negative_score
        if _has_enough_records(log_format, sample):
            return name, -negative_score
    return None, 0.0


def _has_enough_records(log_format: LogFormat, sample: list[str]) -> bool:
    """Whether the format's parser takes enough of the sample's (non-blank) lines as records."""
    try:
        ignored = int(log_format.parse(sample, "detection sample").ignored_lines)
    except Exception:  # a parser that fails is parse_log's to report, not detection's to hide
        return True
    record_lines = len(sample) - ignored
    return record_lines >= MIN_RECORD_LINES or record_lines >= MIN_RECORD_SHARE * len(sample)


def parse_log(
    text_or_lines: str | bytes | Iterable[str],
    source: str,
    format: str | LogFormat | None = None,
    *,
    timezone: str | None = None,
    extra_formats: Iterable[LogFormat] = (),
) -> ParsedLog:
    """Parse one close log into the normalized frame (``LOG_COLUMNS``).

    ``text_or_lines``: the whole text (str, or bytes decoded as UTF-8 with replacement) or its
    lines; ``source`` names the log in every row and in the result; ``format``: a ``FORMATS``
    name or a format object (``nginx.access_format(...)``), or None to detect it (the result's
    ``confidence`` is then the detection score); ``timezone``: the zone of naive timestamps
    (``log_timezone``; UTC when None), for formats whose ``parse`` takes ``timezone``. When no
    format matches, the result has ``format=None``, an empty frame, every non-blank line counted
    as ignored, and an ``error`` quoting the first lines and naming the known formats.
    ``extra_formats``: formats built for this call that detection tries first (see
    ``detect_format_scored``); a ``format`` name may name one of them. Raises
    ``ParameterError`` only for an unknown ``format`` name.

    Whole text reaches the format's ``parse`` as a ``LogText`` (an iterable of its lines that
    also holds the UTF-8 bytes, split only if the parser asks), lines as ``LogLines``.
    """
    extra_formats = list(extra_formats)
    extras = {f.NAME: f for f in extra_formats}
    if isinstance(format, str) and format in extras:
        format = extras[format]
    if isinstance(format, str) and format not in FORMATS:
        raise ParameterError("log_format", f"unknown log format {format!r}; known formats: {', '.join(FORMATS)}")
    lines = to_log_text(text_or_lines)
    if isinstance(format, LogFormat):  # a format built for this call, e.g. nginx.access_format(...)
        log_format, name, confidence = format, format.NAME, None
    elif format is not None:
        log_format, name, confidence = FORMATS[format], format, None
    else:
        name, confidence = detect_format_scored(lines, extra_formats)
        log_format = (extras.get(name) or FORMATS.get(name)) if name else None
    if log_format is None:
        nonblank = sum(1 for line in lines if line.strip())
        return ParsedLog(
            source=source,
            format=None,
            frame=empty_log_frame(),
            lines_total=len(lines),
            ignored_lines=nonblank,
            error=unreadable_message(source, first_nonblank(lines, UNREADABLE_HEAD_LINES)),
        )
    try:
        if _takes_timezone(log_format):
            result = log_format.parse(lines, source, timezone=timezone)
        else:
            result = log_format.parse(lines, source)
        result.confidence = None if confidence is None else round(confidence, 3)
        if result.state is None and not getattr(log_format, "PROXY", False):  # a server log with its own gauge
            result.state = gauge_states(lines, source, timezone)
        return result
    except Exception as exc:  # a parser bug must not stop the runbook: report it as data
        return ParsedLog(
            source=source,
            format=name,
            frame=empty_log_frame(),
            lines_total=len(lines),
            error=f"the {name} parser failed on {source}: {type(exc).__name__}: {exc}",
        )


def unreadable_message(source: str, head: list[str]) -> str:
    """Why ``source`` could not be read: its first lines (escaped, cut short) and the known formats."""
    if not head:
        return f"{source} is empty; known formats: {', '.join(FORMATS)}"
    quoted = " | ".join(_printable(excerpt(line, 120)) for line in head)
    return (
        f"no known log format recognized in {source} (first lines: {quoted}); known formats: "
        f"{', '.join(FORMATS)}; set the log_format parameter to one of them to force it"
    )


def _printable(text: str) -> str:
    """Control characters and lone surrogates as ``\\xNN`` escapes: binary garbage stays one short line
    (the report escapes HTML itself)."""
    return "".join(ch if ch.isprintable() and not 0xD800 <= ord(ch) <= 0xDFFF else ch.encode("unicode_escape", "backslashreplace").decode("ascii") for ch in text)


def _takes_timezone(log_format: LogFormat) -> bool:
    try:
        return "timezone" in inspect.signature(log_format.parse).parameters
    except (TypeError, ValueError):
        return False


def combine_states(parsed: list[ParsedLog]) -> pd.DataFrame:
    """The server-state frames (``STATE_COLUMNS``) of several parsed logs in one, sorted by ts."""
    frames = [p.state for p in parsed if p.state is not None and len(p.state)]
    if not frames:
        return empty_state_frame()
    frame = pd.concat(frames, ignore_index=True)
    return frame.sort_values("ts", kind="stable", na_position="last").reset_index(drop=True).astype(STATE_COLUMNS)


def combine_logs(parsed: list[ParsedLog]) -> pd.DataFrame:
    """The frames of several parsed logs in one, sorted by ts (stable; rows without ts last).

    One session seen by two logs of the same proxy is one row: nginx's error-log close ("upstream
    timed out ... while proxying upgraded connection") is folded into the access-log line of the
    same session (``nginx.join_error_closes``), which keeps its lifetime and gains the code, the
    closer and the reason.
    """
    frame = concat_frames([p.frame for p in parsed])
    if len(frame) == 0:
        return empty_log_frame()
    if {p.format for p in parsed} >= {nginx.ERROR_NAME} and any(str(p.format).startswith(nginx.ACCESS_NAME) for p in parsed):
        frame = nginx.join_error_closes(frame)
    return frame.sort_values("ts", kind="stable", na_position="last").reset_index(drop=True).astype(LOG_COLUMNS)
