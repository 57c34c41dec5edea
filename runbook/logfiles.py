"""Read close-log files from disk, in parts: paths and globs in, parsed records out, memory bounded.

The parsers in ``runbook.logs`` take text; this module opens the files, and never lets one bad
file cost the good ones. A file of any size is read whole, about ``PART_BYTES`` at a time:

- ``plan_parts`` expands the paths, decides each file's format once from its head (detected, or
  forced by ``log_format``) and cuts a plain file into byte ranges of about ``part_bytes``
  (``PartSpec``: picklable, for other processes and Dask workers). It reads the head, a small
  window around each cut and the last 64 KiB, never the whole file;
- ``read_part`` parses one part into ``LogPiece``s; a ``.gz`` or UTF-16 file is one part read as a
  stream (decompressed, decoded), a piece per ``part_bytes`` of its text;
- ``iter_log_parts`` does both, in order, with each record's line in its file, a piece in memory
  at a time; ``load_close_logs`` concatenates the pieces into one ``ParsedLog`` per file.

A cut never changes what is parsed: a part begins only where a record may begin, as the format
declares it: ``RECORD_START``, a pattern a record's first line matches (the Node monitor: its
objects span lines); ``record_start(lines, start)``, a function of the lines around the cut (the
library formats: lines without a time take the last one's, and a few records are joined by a
later line); ``WHOLE_FILE``, never cut (HAR: one JSON document; socket snapshots and the state
CSV: whole-file ports and header). Without a declaration any line may begin a part (one record
per line: the proxy logs, and JSON lines, see ``_RECORD_STARTS``). Where no record start follows
for ``_SEARCH_BYTES``, the part grows to the next one. One rule is per part, not per file: an nginx
access log reads a non-101 answer as a failed upgrade on a path that got a 101 "elsewhere in the
same log", now elsewhere in the same part (paths named like ``/ws`` always count).

What it does with the files a responder meets at 3 AM:

- a glob matching nothing, a missing or unreadable file, a folder: an entry with an ``error``
  naming the path and what to do;
- a FIFO, device or socket: skipped with an ``error`` (opening it to read could block forever);
- the same file given twice (twice in a list, or matched by two globs, or via a symlink): read
  once, and the first entry says it was given again;
- a truncated or corrupt ``.gz`` (logrotate still writing it): what decompresses is parsed, and a
  note says where the stream broke; a ``.gz`` with nothing readable is an ``error``;
- a file of any size: read whole, in parts; a format read whole (``WHOLE_FILE``) over
  ``WHOLE_FILE_MAX_BYTES`` is an ``error`` naming its size;
- UTF-16 (with a BOM, as PowerShell's ``>`` writes, or without one), a UTF-8 BOM, bytes that are
  not UTF-8: decoded, with a note when anything was guessed or replaced;
- the same record twice in one file, or a second log format inside one file: flagged in a note
  (by ``read_part``, repeats within one part; by ``load_close_logs``, within the whole file).

Notes never make a log unreadable (``ParsedLog.ok`` stays true); errors do.
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import enum
import fnmatch
import glob
import os
import re
import stat
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from runbook.errors import ParameterError
from runbook.logs import FORMATS, LogFormat, detect_format_scored, parse_log
from runbook.logs.common import MALFORMED_EXAMPLES, LogText, concat_frames, first_nonblank, select_rows, to_log_text
from runbook.logs.registry import UNREADABLE_HEAD_LINES, WIDER_SAMPLE_LINES, unreadable_message
from runbook.observations import STATE_COLUMNS, MalformedLine, ParsedLog, empty_log_frame

# Bytes of one part: of the file for plain files, of the decompressed (decoded) text for a .gz
# (UTF-16). A part is parsed in memory at once: its records take a few times its size.
PART_BYTES = 64 * 1024 * 1024
# A format that cannot be cut (WHOLE_FILE: a HAR is one JSON document) is read whole, up to this.
WHOLE_FILE_MAX_BYTES = 1024 * 1024 * 1024
# Compressed bytes fed to zlib at once: at deflate's 1032:1 ceiling, at most 66 MiB out per step.
_GZIP_INPUT_CHUNK = 64 * 1024
_READ_BYTES = 1024 * 1024  # bytes read at once from a file read as a stream
# The head read to detect the format: until it holds the lines detection may read
# (registry.WIDER_SAMPLE_LINES), checked from this size on, up to the most read for it.
_HEAD_BYTES = 1024 * 1024
_HEAD_MAX_BYTES = 32 * 1024 * 1024
# Bytes after a planned cut searched for a record start, growing fourfold up to _SEARCH_BYTES;
# past that without one, the part grows to the next record start further on.
_WINDOW_BYTES = 64 * 1024
_SEARCH_BYTES = 16 * 1024 * 1024
# Lines before a cut that a record_start function reads as context (to know what is pending).
_CONTEXT_BYTES = 256 * 1024
# Bytes from the end of a file sampled to find a second format inside it (a rotated file that
# changed format, two logs concatenated).
_PROBE_BYTES = 64 * 1024
# Columns that identify one logged record; line_no and source differ between two copies of it.
_RECORD_COLUMNS = ("ts", "connection_id", "event", "code", "reason", "duration_s", "client_ip", "user_agent")


class _Cut(enum.Enum):
    """Where a format's parts may begin, when it declares no pattern or function."""

    ANY_LINE = "any line"
    NEVER = "never: the file is one part"


# Record starts of formats whose module does not declare its own. JSON lines
# (runbook/logs/jsonlines.py): every line is decoded on its own, and a pretty-printed object
# spread over lines is malformed line by line wherever it is cut, so any line will do.
_RECORD_STARTS: dict[str, object] = {"jsonlines": _Cut.ANY_LINE}

CutRule = re.Pattern[str] | Callable[[Sequence[str], int], "int | None"] | _Cut


@dataclass(frozen=True)
class PartSpec:
    """One part of one file: what a worker needs to parse it exactly as the whole file would be.

    Picklable (sent to other processes and Dask workers). ``start``/``end``: the byte range of a
    plain file (``end`` exclusive); a ``.gz`` is one part, ``start`` 0 and ``end`` -1, read as a
    stream in pieces. ``format``: the format id decided once for the whole file (None: no format
    reads it; its lines are only counted). ``encoding``: None for UTF-8 bytes, else the decoder
    the file's head needed (``utf-16``, ``utf-16-le``, ``utf-16-be``; such a file is one part,
    decoded as a stream in pieces). ``parser``: the format object when it is not the registered
    one of that id (an nginx access format built from the proxy config, ``extra_formats``: it
    pickles with its compiled pattern); None: ``FORMATS[format]``. ``confidence``: the detection
    score of the file's format (None when forced). ``part_bytes``: text per piece of a stream.
    """

    source: str
    format: str | None
    start: int
    end: int
    index: int
    encoding: str | None
    log_timezone: str | None
    parser: LogFormat | None = None
    confidence: float | None = None
    part_bytes: int = PART_BYTES

    @property
    def streamed(self) -> bool:
        """Read as a stream in pieces (a .gz, or text that must be decoded) rather than at once."""
        return self.end < 0 or self.encoding is not None


@dataclass
class LogPiece(ParsedLog):
    """One parsed piece of a part: a ``ParsedLog`` whose counts are the piece's own.

    ``first_line``: the piece's first line, 1-based, counted from the start of its part
    (``read_part``) or of its file (``iter_log_parts``); its records' ``line_no`` and its
    malformed examples are counted the same way. ``line_span``: the lines it spans (its
    ``lines_total``): the next piece begins at ``first_line + line_span``. ``bad_utf8``: byte
    sequences that were not UTF-8 (shown as U+FFFD); ``repeated``: records that repeat an earlier
    record of the piece exactly; ``size``: bytes of its text.
    """

    first_line: int = 1
    line_span: int = 0
    bad_utf8: int = 0
    repeated: int = 0
    size: int = 0


# --- the whole of each file -------------------------------------------------------------------


def load_close_logs(
    patterns: list[str],
    *,
    max_bytes: int | None = None,
    log_format: str | Mapping[str, str] | None = None,
    log_timezone: str | None = None,
    extra_formats: Sequence[LogFormat] = (),
    part_bytes: int = PART_BYTES,
) -> list[ParsedLog]:
    """Expand paths/globs (``~`` too) and read each file once, whole; never raises on a bad file.

    Returns one ``ParsedLog`` per pattern that matched nothing and per distinct file, in the
    order given (glob matches sorted), each the concatenation of the file's parts (``read_part``):
    its records numbered by their line in the file, repeated records counted over the whole file.
    ``max_bytes``: read only the newest ``max_bytes`` of each file (from a record start; a note
    says how much was left out, lines are numbered from the first line read); None reads all.
    ``log_format``: a format id for every file, or a mapping of path/glob to format id
    (``format_for``); files it does not name are detected. ``log_timezone``: the zone of
    timestamps that carry none (UTC when None). ``extra_formats``: formats built for this run
    (nginx access formats from ``proxy_config``), tried first by detection. ``part_bytes``: see
    ``plan_parts``. Raises ``ParameterError`` for an unknown format id.
    """
    planned = _plan(patterns, log_format=log_format, log_timezone=log_timezone,
                    extra_formats=extra_formats, part_bytes=part_bytes)
    return [_load_file(summary, specs, max_bytes) if specs else summary for summary, specs in planned]


def read_close_log(
    path: Path,
    *,
    info: os.stat_result | None = None,
    max_bytes: int | None = None,
    log_format: str | None = None,
    log_timezone: str | None = None,
    extra_formats: Sequence[LogFormat] = (),
    part_bytes: int = PART_BYTES,
) -> ParsedLog:
    """Read and parse one close-log file (plain or ``.gz``), as ``load_close_logs`` reads each;
    problems come back as data. ``log_format`` forces a format id (None: detect)."""
    source = str(path)
    try:
        info = info or os.stat(path)
    except OSError as exc:
        return _failed(source, _os_problem(source, exc))
    summary, specs = _plan_file(source, info, log_format, log_timezone, list(extra_formats), part_bytes)
    return _load_file(summary, specs, max_bytes) if specs else summary


def format_for(path: str, log_format: str | Mapping[str, str] | None, pattern: str | None = None) -> str | None:
    """The format id ``log_format`` names for ``path``: the id itself, or the value of the first
    mapping key equal to the pattern the path came from or matching the path or its file name
    as a glob; None (detect) when nothing names it."""
    if not log_format:
        return None
    if isinstance(log_format, str):
        return log_format
    name = os.path.basename(path)
    for key, format_id in log_format.items():
        expanded = os.path.expanduser(key)
        if key == pattern or fnmatch.fnmatch(path, expanded) or fnmatch.fnmatch(name, expanded):
            return format_id
    return None


def _load_file(summary: ParsedLog, specs: list[PartSpec], max_bytes: int | None) -> ParsedLog:
    """The file's pieces concatenated into one ParsedLog (within the newest ``max_bytes``)."""
    notes: list[str] = []
    if max_bytes is not None:
        specs = _newest_parts(specs, max_bytes, notes)
    pieces: deque[LogPiece] = deque()
    kept = read = offset = 0
    for spec in specs:
        span = 0
        for piece in _read_part(spec, part_notes=False, repeats=False):
            _renumber(piece, offset)
            span += piece.line_span
            pieces.append(piece)
            kept += piece.size
            read += piece.size
            while max_bytes is not None and len(pieces) > 1 and kept > max_bytes:  # a stream: keep its newest
                kept -= pieces.popleft().size
        offset += span
    if read > kept:
        how = "decompresses to" if specs[0].end < 0 else "its text is"
        notes.append(f"{how} over {_mib(read)}: read only its newest {_mib(kept)}; "
                     f"the oldest {_mib(read - kept)} were left out")
        first = pieces[0].first_line - 1
        for piece in pieces:  # numbered within what was kept, as a cut plain file is
            _renumber(piece, -first)
    return _combine(summary, list(pieces), notes)


def _newest_parts(specs: list[PartSpec], max_bytes: int, notes: list[str]) -> list[PartSpec]:
    """The parts of a plain file trimmed to its newest ``max_bytes``, from a record start; a
    stream gets pieces small enough to drop the oldest (``_load_file``)."""
    if specs[0].streamed:
        return [dataclasses.replace(s, part_bytes=min(s.part_bytes, max(max_bytes // 8, 4096))) for s in specs]
    size = specs[-1].end
    if size <= max_bytes:
        return specs
    with open(specs[0].source, "rb") as handle:
        cut, _ = _file_cut(handle, size, size - max_bytes, _cut_rule(_format_object(specs[0])))
    if cut is None:
        return specs
    kept = [s for s in specs if s.end > cut]
    kept[0] = dataclasses.replace(kept[0], start=max(kept[0].start, cut))
    notes.append(f"file is {_mib(size)}: read only its newest {_mib(size - cut)} (the end of the file); "
                 f"the oldest {_mib(cut)} were left out")
    return kept


def _combine(summary: ParsedLog, pieces: list[LogPiece], notes: list[str]) -> ParsedLog:
    states = [p.state for p in pieces if p.state is not None]
    state = None
    if states:
        state = states[0] if len(states) == 1 else pd.concat(states, ignore_index=True).astype(STATE_COLUMNS)
    result = ParsedLog(
        source=summary.source,
        format=summary.format,
        frame=concat_frames([p.frame for p in pieces]) if pieces else empty_log_frame(),
        lines_total=sum(p.lines_total for p in pieces),
        ignored_lines=sum(p.ignored_lines for p in pieces),
        malformed_count=sum(p.malformed_count for p in pieces),
        malformed_examples=[example for p in pieces for example in p.malformed_examples][:MALFORMED_EXAMPLES],
        error=summary.error or next((p.error for p in pieces if p.error), None),
        state=state,
        record_lines=None if any(p.record_lines is None for p in pieces) else sum(p.record_lines for p in pieces),
        confidence=summary.confidence,
    )
    bad_utf8 = sum(p.bad_utf8 for p in pieces)
    found = [*notes, *summary.notes, *(note for p in pieces for note in p.notes)]
    if bad_utf8:
        found.append(_utf8_note(bad_utf8))
    if result.ok and len(result.frame) >= 2:
        repeated = _repeated(result.frame)
        if repeated:
            found.append(f"{repeated} records repeat an earlier record exactly (the same lines logged or "
                         f"concatenated twice?); they are counted as logged")
    result.notes = sorted(dict.fromkeys(found), key=_note_rank)  # stable: each kind keeps its order
    return result


# --- planning parts ---------------------------------------------------------------------------


def plan_parts(
    patterns: list[str],
    *,
    log_format: str | Mapping[str, str] | None = None,
    log_timezone: str | None = None,
    extra_formats: Sequence[LogFormat] = (),
    part_bytes: int = PART_BYTES,
) -> tuple[list[PartSpec], list[ParsedLog]]:
    """The parts to read, and one summary per source; reads no file whole.

    Expands ``patterns`` as ``load_close_logs`` does (globs, ``~``, a file given twice read once,
    FIFOs, folders and missing files as failed entries with the same messages), decides each
    file's format once from its head (the same detection and confidence as parsing the whole
    file), and cuts plain files into byte ranges of about ``part_bytes`` that begin where a
    record may begin (see the module docstring). Returns the specs in file order, and one
    summary ``ParsedLog`` per source in the order ``load_close_logs`` returns them: format,
    confidence, notes (decoding, a second format at the end, given again) and error, with an
    empty frame and zero counts (the parts hold them). Raises ``ParameterError`` for an unknown
    format id or a ``part_bytes`` below 1.
    """
    planned = _plan(patterns, log_format=log_format, log_timezone=log_timezone,
                    extra_formats=extra_formats, part_bytes=part_bytes)
    return [spec for _, specs in planned for spec in specs], [summary for summary, _ in planned]


def _plan(
    patterns: list[str],
    *,
    log_format: str | Mapping[str, str] | None,
    log_timezone: str | None,
    extra_formats: Sequence[LogFormat],
    part_bytes: int,
) -> list[tuple[ParsedLog, list[PartSpec]]]:
    if part_bytes < 1:
        raise ParameterError("part_bytes", f"must be at least 1 byte, not {part_bytes}")
    extra_formats = list(extra_formats)
    planned: list[tuple[ParsedLog, list[PartSpec]]] = []
    first_seen: dict[tuple[int, int], ParsedLog] = {}
    for pattern in patterns:
        expanded = os.path.expanduser(pattern)
        paths = sorted(glob.glob(expanded)) if glob.has_magic(expanded) else [expanded]
        if not paths:
            planned.append((_failed(pattern, f"no file matches {pattern!r}: check the glob and the folder"), []))
        for path in paths:
            try:
                info = os.stat(path)
            except OSError as exc:
                planned.append((_failed(path, _os_problem(path, exc)), []))
                continue
            identity = (info.st_dev, info.st_ino)
            if identity in first_seen:
                earlier = first_seen[identity]
                same = "" if earlier.source == path else f" as {path}"
                earlier.notes.append(f"given again{same}: read once")
                continue
            summary, specs = _plan_file(path, info, format_for(path, log_format, pattern), log_timezone,
                                        extra_formats, part_bytes)
            first_seen[identity] = summary
            planned.append((summary, specs))
    return planned


def _plan_file(
    source: str, info: os.stat_result, log_format: str | None, log_timezone: str | None,
    extra_formats: list[LogFormat], part_bytes: int,
) -> tuple[ParsedLog, list[PartSpec]]:
    """The summary and the parts of one file (see ``plan_parts``)."""
    if stat.S_ISDIR(info.st_mode):
        return _failed(source, f"{source} is a folder: give the files in it, e.g. {os.path.join(source, '*.log')}"), []
    if not stat.S_ISREG(info.st_mode):
        kind = _file_kind(info.st_mode)
        return _failed(source, f"{source} is a {kind}, not a regular file: skipped (reading it could block)"), []
    forced = _forced_format(log_format, extra_formats)
    gz = Path(source).suffix == ".gz"
    try:
        head, whole, problem = _read_head(source, gz)
    except OSError as exc:
        return _failed(source, _os_problem(source, exc)), []
    if problem is not None and not head:
        return _failed(source, f"cannot read {source}: {problem}; nothing could be decompressed"), []
    notes: list[str] = []
    encoding = _encoding_of(head, notes)
    text = _head_text(head, encoding, whole)
    if forced is not None:
        name, log_format_object, confidence = forced.NAME, forced, None
    else:
        name, score = detect_format_scored(text, extra_formats)
        log_format_object = None
        if name is not None:
            log_format_object = next((f for f in extra_formats if f.NAME == name), None) or FORMATS.get(name)
        confidence = round(score, 3) if name else None
    summary = ParsedLog(source, name, empty_log_frame(), confidence=confidence, notes=notes)
    if name is None:
        summary.error = unreadable_message(source, first_nonblank(to_log_text(text), UNREADABLE_HEAD_LINES))
    rule = _cut_rule(log_format_object)
    if rule is _Cut.NEVER and not gz and info.st_size > WHOLE_FILE_MAX_BYTES:
        summary.error = _too_big(source, name, f"is {_mib(info.st_size)}")
        return summary, []
    base = PartSpec(
        source=source, format=name, start=0, end=-1 if gz else info.st_size, index=0, encoding=encoding,
        log_timezone=log_timezone, parser=log_format_object if FORMATS.get(name) is not log_format_object else None,
        confidence=confidence, part_bytes=part_bytes,
    )
    try:
        with open(source, "rb") as handle:
            starts = [0] if base.streamed or rule is _Cut.NEVER else _plan_cuts(handle, info.st_size, rule, part_bytes)
            if name is not None and not gz:
                note = _second_format(_tail_text(handle, info.st_size, encoding, head), name, extra_formats)
                if note:
                    notes.append(note)
    except OSError as exc:
        return _failed(source, _os_problem(source, exc)), []
    ends = [*starts[1:], base.end]
    return summary, [dataclasses.replace(base, start=start, end=end, index=index)
                     for index, (start, end) in enumerate(zip(starts, ends))]


def _forced_format(name: str | None, extra_formats: list[LogFormat]) -> LogFormat | None:
    if name is None:
        return None
    extra = next((f for f in extra_formats if f.NAME == name), None)
    if extra is not None:
        return extra
    if name not in FORMATS:
        raise ParameterError("log_format", f"unknown log format {name!r}; known formats: {', '.join(FORMATS)}")
    return FORMATS[name]


def _plan_cuts(handle, size: int, rule: CutRule, part_bytes: int) -> list[int]:
    """Where the parts of a plain file begin: about every ``part_bytes``, at a record start."""
    starts = [0]
    at = part_bytes
    while at < size:
        cut, searched = _file_cut(handle, size, at, rule)
        if cut is None:  # no record start from ``at`` to ``searched``: the part grows past them
            at = searched
            continue
        starts.append(cut)
        at = cut + part_bytes
    return starts


def _file_cut(handle, size: int, at: int, rule: CutRule) -> tuple[int | None, int]:
    """The first place at or after byte ``at`` of the file where a part may begin, reading only a
    window around it; and how far the search read (the file's size when it found none)."""
    back = _CONTEXT_BYTES if callable(rule) else 1
    forward = _WINDOW_BYTES
    while True:
        low, high = max(0, at - back), min(size, at + forward)
        handle.seek(low)
        data = handle.read(high - low)
        cut = _cut_at(data, at - low, rule, final=high >= size, line_start=low == 0)
        if cut is not None:
            return low + cut, high
        if high >= size or forward >= _SEARCH_BYTES:
            return None, size if high >= size else high
        forward *= 4


# --- reading parts ----------------------------------------------------------------------------


def read_part(spec: PartSpec, *, notes_of_counts: bool = True) -> Iterator[LogPiece]:
    """Parse one part (see ``PartSpec``); never raises on content or a file that went away.

    Yields ``LogPiece``s in file order: one for a part of a plain file, one per about
    ``spec.part_bytes`` of text for a stream (a ``.gz`` is decompressed and UTF-16 decoded as
    they are read, cut where a record may begin), so memory stays about a part. Each piece's
    frame has the ``LOG_COLUMNS`` (its ``state`` the server-state rows, if any), its counts are
    its own, and its line numbers count from the start of the part (``first_line``,
    ``line_span``: see ``LogPiece``). Notes of a piece: bytes that were not UTF-8, records that
    repeat one of the same piece, where a truncated or corrupt ``.gz`` broke and, for a stream,
    a second format at its end (the last piece). A file that cannot be read any more, or a
    ``WHOLE_FILE`` stream over ``WHOLE_FILE_MAX_BYTES``, gives a piece with an ``error``.
    """
    yield from _read_part(spec, part_notes=notes_of_counts)


def _read_part(spec: PartSpec, *, part_notes: bool, repeats: bool = True) -> Iterator[LogPiece]:
    """``read_part``; ``repeats=False`` does not count repeated records (``load_close_logs`` counts
    them over the whole file); ``part_notes=False`` leaves out the notes of counts that ``load_close_logs``
    adds up over the whole file instead (bytes not UTF-8, repeated records)."""
    log_format = _format_object(spec)
    if spec.format is not None and log_format is None:
        yield _error_piece(spec, f"unknown log format {spec.format!r}; known formats: {', '.join(FORMATS)}", 1)
        return
    if spec.streamed:
        yield from _read_stream(spec, log_format, part_notes, repeats)
        return
    try:
        with open(spec.source, "rb") as handle:
            handle.seek(spec.start)
            data = handle.read(spec.end - spec.start)
    except OSError as exc:
        yield _error_piece(spec, _os_problem(spec.source, exc), 1)
        return
    piece = _parse_piece(data, spec, log_format, 1, part_notes, repeats)
    del data  # not held while the caller works on the piece
    yield piece


def _read_stream(spec: PartSpec, log_format: LogFormat | None, part_notes: bool, repeats: bool) -> Iterator[LogPiece]:
    """The pieces of a .gz or of a file decoded as it is read; the last one says where a .gz broke
    and whether the end of a .gz looks like a second format (a plain file's end is the plan's)."""
    gzip_state = _GzipState()
    raw = _gunzip(spec.source, gzip_state) if spec.end < 0 else _file_blocks(spec.source, spec.start, spec.end)
    blocks = _decoded(raw, spec.encoding) if spec.encoding else raw
    line, total, tail = 1, 0, b""
    try:
        for data, last in _pieces(blocks, _cut_rule(log_format), spec.part_bytes):
            total += len(data)
            tail = (tail + data[-_PROBE_BYTES:])[-_PROBE_BYTES:]
            piece = _parse_piece(data, spec, log_format, line, part_notes, repeats)
            del data
            line += piece.line_span
            if last and gzip_state.problem is not None:
                broke = f"{gzip_state.problem}: read the {_mib(gzip_state.total)} before the break, the rest is lost"
                piece.notes.insert(0, broke)
            if last and spec.format is not None and spec.end < 0 and total > 2 * _PROBE_BYTES:
                note = _second_format(tail.decode("utf-8", errors="replace"), spec.format,
                                      [spec.parser] if spec.parser is not None else [])
                piece.notes.extend([note] if note else [])
            yield piece
            del piece  # not held while the next piece is parsed
    except OSError as exc:
        yield _error_piece(spec, _os_problem(spec.source, exc), line)
    except _TooBig as exc:
        how_big = "decompresses to" if spec.end < 0 else "holds"
        yield _error_piece(spec, _too_big(spec.source, spec.format, f"{how_big} over {_mib(exc.size)} of text"), line)


def _parse_piece(data: bytes, spec: PartSpec, log_format: LogFormat | None, first_line: int, part_notes: bool,
                 repeats: bool = True) -> LogPiece:
    bad_utf8 = 0
    if spec.encoding is None and not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            bad_utf8 = data.decode("utf-8", errors="replace").count("\ufffd")
    text = _log_text(data, at_file_start=first_line == 1 and spec.start == 0)
    if log_format is None:  # no format reads the file: its lines are counted (plan_parts says why)
        parsed = ParsedLog(spec.source, None, empty_log_frame(), lines_total=len(text),
                           ignored_lines=sum(1 for line in text if line.strip()))
    else:
        parsed = parse_log(text, spec.source, log_format, timezone=spec.log_timezone)
    piece = LogPiece(**{f.name: getattr(parsed, f.name) for f in dataclasses.fields(ParsedLog)},
                     line_span=parsed.lines_total, bad_utf8=bad_utf8, size=len(data))
    piece.confidence = spec.confidence
    if repeats and piece.ok and len(piece.frame) >= 2:  # load_close_logs counts them over the whole file
        piece.repeated = _repeated(piece.frame)
    if part_notes:
        piece.notes.extend(count_notes(bad_utf8, piece.repeated, within_parts=True))
    _renumber(piece, first_line - 1)
    return piece


def _log_text(data: bytes, *, at_file_start: bool) -> LogText:
    """The piece as the parsers take it, normalized as ``to_log_text`` normalizes a whole file:
    a byte order mark counts only at the start of the file, not at the start of a part."""
    if at_file_start:
        text = to_log_text(data)
        if isinstance(text, LogText):
            return text
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
        if data.endswith(b"\r"):
            data = data[:-1]
    return LogText(data)


# Where a malformed record's problem names a line (node_monitor: "the object is not closed before
# line N"), that line is numbered like the record's.
_LINE_IN_PROBLEM = re.compile(r"\bbefore line ([0-9]+)\b")


def _renumber(piece: LogPiece, offset: int) -> None:
    """Add ``offset`` to every line number the piece holds."""
    if not offset:
        return
    piece.first_line += offset
    if len(piece.frame):
        piece.frame["line_no"] = piece.frame["line_no"] + offset
    piece.malformed_examples = [
        MalformedLine(e.line_no + offset, e.text, _LINE_IN_PROBLEM.sub(lambda m: f"before line {int(m[1]) + offset}", e.problem))
        for e in piece.malformed_examples
    ]


def _error_piece(spec: PartSpec, error: str, first_line: int) -> LogPiece:
    return LogPiece(spec.source, spec.format, empty_log_frame(), error=error, confidence=spec.confidence, first_line=first_line)


def _format_object(spec: PartSpec) -> LogFormat | None:
    return spec.parser if spec.parser is not None else FORMATS.get(spec.format) if spec.format else None


# --- every part, in order ---------------------------------------------------------------------


def iter_log_parts(
    patterns: list[str],
    *,
    log_format: str | Mapping[str, str] | None = None,
    log_timezone: str | None = None,
    extra_formats: Sequence[LogFormat] = (),
    part_bytes: int = PART_BYTES,
) -> Iterator[ParsedLog]:
    """``plan_parts`` and ``read_part`` in order: every piece of every file, about a part in
    memory at a time. Line numbers are the file's (a record's ``line_no`` is its line in the
    file). A file's first piece carries its summary's notes and error; a source with nothing to
    read (a missing file, a folder, a .gz with nothing readable) comes as its summary alone.
    Keywords as ``plan_parts``."""
    planned = _plan(patterns, log_format=log_format, log_timezone=log_timezone,
                    extra_formats=extra_formats, part_bytes=part_bytes)
    for summary, specs in planned:
        if not specs:
            yield summary
            continue
        first, offset = True, 0
        for spec in specs:
            span = 0
            for piece in read_part(spec):
                _renumber(piece, offset)
                span += piece.line_span
                if first:
                    piece.notes[:0] = summary.notes
                    piece.error = summary.error or piece.error
                    first = False
                yield piece
                del piece  # not held while the next piece is parsed
            offset += span


# --- where a part may begin -------------------------------------------------------------------


def _cut_rule(log_format: LogFormat | None) -> CutRule:
    """What ``log_format`` declares about where its parts may begin (see the module docstring)."""
    if log_format is None:
        return _Cut.ANY_LINE
    if getattr(log_format, "WHOLE_FILE", False):
        return _Cut.NEVER
    declared = getattr(log_format, "RECORD_START", None) or getattr(log_format, "record_start", None)
    if declared is None:
        declared = _RECORD_STARTS.get(log_format.NAME, _Cut.ANY_LINE)
    return declared


def _cut_at(data: bytes, at: int, rule: CutRule, *, final: bool, line_start: bool = False) -> int | None:
    """The first offset at or after ``at`` (>= 1) in ``data`` where a part may begin: the start
    of a line the rule allows, with at least a line after it. None when ``data`` holds none;
    unless ``final`` (data ends the file), data beyond it may. A function rule sees the lines of
    ``data`` before the place as context (from its first whole line; ``line_start``: data begins
    with one)."""
    if rule is _Cut.NEVER:
        return None
    newline = data.find(b"\n", at - 1)
    if newline < 0 or newline + 1 >= len(data):
        return None
    start = newline + 1
    if rule is _Cut.ANY_LINE:
        return start
    if isinstance(rule, re.Pattern):
        position = start
        while position < len(data):
            end = data.find(b"\n", position)
            if end < 0:
                if not final:
                    return None
                end = len(data)
            if rule.match(_decode_line(data, position, end)):
                return position
            position = end + 1
        return None
    context = 0 if line_start else data.find(b"\n", 0, start) + 1
    lines = [_decode_line(data, a, b) for a, b in _line_bounds(data, context, start, final=True)]
    offsets = []
    for a, b in _line_bounds(data, start, len(data), final=final):
        lines.append(_decode_line(data, a, b))
        offsets.append(a)
    before = len(lines) - len(offsets)
    index = rule(lines, before)
    return offsets[index - before] if index is not None and index >= before else None


def _line_bounds(data: bytes, start: int, stop: int, *, final: bool) -> Iterator[tuple[int, int]]:
    """(start, end) of the lines in ``data[start:stop]``; the last one without its "\\n" only if ``final``."""
    position = start
    while position < stop:
        end = data.find(b"\n", position, stop)
        if end < 0:
            if final:
                yield position, stop
            return
        yield position, end
        position = end + 1


def _decode_line(data: bytes, start: int, end: int) -> str:
    line = data[start:end].decode("utf-8", errors="replace")
    return line[:-1] if line.endswith("\r") else line


def _pieces(blocks: Iterable[bytes], rule: CutRule, part_bytes: int) -> Iterator[tuple[bytes, bool]]:
    """The text of ``blocks`` in pieces of about ``part_bytes`` (all of it in one when the rule
    is NEVER, up to WHOLE_FILE_MAX_BYTES), each cut where a part may begin; with whether it is
    the last piece."""
    buffer = bytearray()
    back = _CONTEXT_BYTES if callable(rule) else 1
    before = b""  # the end of the pieces already cut off: context for a function rule
    at, need = part_bytes, part_bytes + _WINDOW_BYTES  # search from ``at`` once ``need`` bytes are in

    def cut(final: bool) -> int | None:
        low = max(0, at - back)
        context = before[max(0, len(before) - (back - at)):] if back > at else b""
        found = _cut_at(context + bytes(buffer[low:]), len(context) + at - low, rule, final=final,
                        line_start=low == 0 and not context)
        return None if found is None else found - len(context) + low

    def take(end: int) -> bytes:
        nonlocal before
        piece = bytes(buffer[:end])
        del buffer[:end]
        if callable(rule):
            before = (before + piece[-_CONTEXT_BYTES:])[-_CONTEXT_BYTES:]
        return piece

    for block in blocks:
        buffer += block
        if rule is _Cut.NEVER and len(buffer) > WHOLE_FILE_MAX_BYTES:
            raise _TooBig(len(buffer))
        while rule is not _Cut.NEVER and len(buffer) >= need:
            end = cut(final=False)
            if end is None:
                if len(buffer) - at >= _SEARCH_BYTES:  # no record start in so long: the piece grows past it
                    at = len(buffer)
                need = len(buffer) + max(_WINDOW_BYTES, len(buffer) - at)
                break
            yield take(end), False
            at, need = part_bytes, part_bytes + _WINDOW_BYTES
    while rule is not _Cut.NEVER and len(buffer) > at:  # the end of the stream: what is left may hold more than a part
        end = cut(final=True)
        if end is None:
            break
        yield take(end), False
        at = part_bytes
    yield bytes(buffer), True


class _TooBig(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def _too_big(source: str, name: str | None, how_big: str) -> str:
    return (f"{source} {how_big}: a {name} file is read whole (one document, never cut into parts), and one over "
            f"{_mib(WHOLE_FILE_MAX_BYTES)} is not read; export or keep a shorter one")


# --- reading bytes ----------------------------------------------------------------------------


@dataclass
class _GzipState:
    problem: str | None = None  # where the stream broke, once it did
    total: int = 0  # bytes decompressed


def _gunzip(path: str, state: _GzipState) -> Iterator[bytes]:
    """Decompress up to the first error, a chunk at a time; ``state`` says where it broke.

    zlib directly rather than ``gzip.open``: its buffered reader discards what it decompressed in
    a read call that then hits the break, and here every byte before the break counts.
    """
    decompressor = zlib.decompressobj(wbits=31)  # 31: gzip header and trailer (zlib docs)
    in_member = False  # the current decompressor has taken input and not reached its trailer
    with open(path, "rb") as handle:
        while True:
            compressed = handle.read(_GZIP_INPUT_CHUNK)
            if not compressed:
                if in_member:
                    state.problem = "the gzip stream ends early (truncated: logrotate may still be writing it)"
                return
            while compressed:
                in_member = True
                try:
                    chunk = decompressor.decompress(compressed)
                except zlib.error as exc:
                    state.problem = f"the gzip data is corrupt ({exc})"
                    return
                compressed = b""
                if decompressor.eof:  # concatenated members (gzip -c a >> b.gz) follow
                    compressed = decompressor.unused_data
                    decompressor = zlib.decompressobj(wbits=31)
                    in_member = False
                    if not compressed.strip(b"\0"):  # trailing zero padding is no member
                        compressed = b""
                if chunk:
                    state.total += len(chunk)
                    yield chunk


def _file_blocks(path: str, start: int, end: int) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        handle.seek(start)
        left = end - start
        while left > 0:
            block = handle.read(min(_READ_BYTES, left))
            if not block:
                return
            left -= len(block)
            yield block


def _decoded(blocks: Iterable[bytes], encoding: str) -> Iterator[bytes]:
    """``blocks`` decoded from ``encoding`` as they come (bad sequences as U+FFFD), as UTF-8."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    for block in blocks:
        text = decoder.decode(block)
        if text:
            yield text.encode("utf-8", errors="surrogatepass")
    text = decoder.decode(b"", final=True)
    if text:
        yield text.encode("utf-8", errors="surrogatepass")


def _read_head(path: str, gz: bool) -> tuple[bytes, bool, str | None]:
    """The first bytes of the file (decompressed for a .gz), enough for detection; whether they
    are all of it; and where a .gz broke, when it broke within them."""
    state = _GzipState()
    blocks = _gunzip(path, state) if gz else _file_blocks(path, 0, os.stat(path).st_size)
    head = bytearray()
    check_at = _HEAD_BYTES
    with contextlib.closing(blocks):
        for block in blocks:
            head += block
            if len(head) >= check_at:
                if len(head) >= _HEAD_MAX_BYTES or _nonblank_lines(head) >= WIDER_SAMPLE_LINES:
                    return bytes(head), False, state.problem
                check_at = 2 * len(head)
    return bytes(head), True, state.problem


def _nonblank_lines(data: bytearray) -> int:
    return sum(1 for line in data.split(b"\n")[:-1] if line.strip())


def _encoding_of(head: bytes, notes: list[str]) -> str | None:
    """None for UTF-8 (the parsers' fast path), else the decoder the head needs; a note says so."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        notes.append("decoded as UTF-16 (byte order mark)")
        return "utf-16"
    if (guess := _utf16_without_bom(head)) is not None:
        notes.append(f"decoded as {guess.upper()} (no byte order mark; every other byte was zero)")
        return guess
    return None


def _head_text(head: bytes, encoding: str | None, whole: bool) -> bytes | str:
    """The head's complete lines (all of it when it is the whole file), decoded when it must be."""
    if encoding is not None:
        text = head[: len(head) - len(head) % 2].decode(encoding, errors="replace")
        return text if whole else text[: text.rfind("\n") + 1]
    return head if whole else head[: head.rfind(b"\n") + 1]


def _tail_text(handle, size: int, encoding: str | None, head: bytes) -> str | None:
    """The last ``_PROBE_BYTES`` of a plain file's text, or None when the file is too short for a
    second format to matter (at most twice that)."""
    width = 2 if encoding else 1
    if size // width <= 2 * _PROBE_BYTES:
        return None
    start = size - width * _PROBE_BYTES
    handle.seek(start - start % width)
    data = handle.read()
    if encoding == "utf-16":  # the byte order the head's mark gave
        encoding = "utf-16-le" if head.startswith(codecs.BOM_UTF16_LE) else "utf-16-be"
    return data.decode(encoding or "utf-8", errors="replace")


def _second_format(tail: str | None, name: str, extra_formats: Sequence[LogFormat]) -> str | None:
    """A note when the end of the file looks like another format: a file can hold two formats
    one after the other (a rotated file that changed format, a second log appended). Only the end
    is sampled (detection costs a parse of the sample)."""
    if not tail:
        return None
    lines = tail.split("\n")[1:-1]  # whole lines only
    other = detect_format_scored(lines, extra_formats)[0] if lines else None
    if other is not None and other != name:
        return (f"the end of the file looks like {other}, not {name}: a second format inside one file; "
                f"only its {name} records were read (split the file, one format each)")
    return None


def _utf16_without_bom(data: bytes) -> str | None:
    """'utf-16-le' or 'utf-16-be' when the sample looks like ASCII text in UTF-16, else None."""
    sample = data[:4096]
    if len(sample) < 16:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


# --- notes ------------------------------------------------------------------------------------


def count_notes(bad_utf8: int, repeated: int, *, within_parts: bool) -> list[str]:
    """The notes of a file's counts: bytes that were not UTF-8, records repeated exactly
    (``within_parts``: counted within each part, not across the whole file)."""
    notes = [_utf8_note(bad_utf8)] if bad_utf8 else []
    if repeated:
        where = " of the same part of the file" if within_parts else ""
        notes.append(f"{repeated} records repeat an earlier record{where} exactly (the same lines logged or "
                     f"concatenated twice?); they are counted as logged")
    return notes


def _utf8_note(count: int) -> str:
    return f"{count} byte sequences are not UTF-8: shown as \ufffd"


def _repeated(frame: pd.DataFrame) -> int:
    # Only records alike in their time, event, code and lifetime can repeat one another (numbers,
    # cheap to compare: access logs share whole seconds); the whole record is compared for those.
    same_time = frame["ts"].duplicated(keep=False).to_numpy(dtype=bool)
    if not same_time.any():
        return 0
    if not same_time.all():  # a repeat and what it repeats share their time: the others are left out
        frame = select_rows(frame, same_time)
    numbers = pd.DataFrame({"ts": frame["ts"].array.asi8, "event": pd.factorize(frame["event"])[0],
                            "code": frame["code"].to_numpy(dtype=float, na_value=np.nan),
                            "duration_s": frame["duration_s"].to_numpy()})
    alike = numbers.duplicated(keep=False).to_numpy()
    if not alike.any():
        return 0
    return int(select_rows(frame[list(_RECORD_COLUMNS)], alike).duplicated().sum())


def _note_rank(note: str) -> int:
    """Notes in the order a reader meets the problems: how the bytes were read, how they were
    decoded, what the records show, the file as a whole; a file given again is said last."""
    if note.startswith(("the gzip ", "file is ", "decompresses to over ", "its text is over ")):
        return 0
    if note.startswith("decoded as "):
        return 1
    if "byte sequences are not UTF-8" in note:
        return 2
    if "repeat an earlier record" in note:
        return 4
    if note.startswith("the end of the file looks like "):
        return 5
    if note.startswith("given again"):
        return 6
    return 3


# --- helpers --------------------------------------------------------------------------------


def _failed(source: str, error: str) -> ParsedLog:
    return ParsedLog(source, None, empty_log_frame(), error=error)


def _os_problem(path: str, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"{path} does not exist: check the path (relative paths start from the folder the run was started in)"
    if isinstance(exc, PermissionError):
        return f"cannot read {path}: permission denied"
    return f"cannot read {path}: {exc.strerror or exc}"


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def _mib(size: int) -> str:
    if size >= 1 << 30:
        return f"{size / (1 << 30):.1f} GiB"
    return f"{size / (1 << 20):.0f} MiB" if size >= 1 << 20 else f"{size} bytes"
