"""Read close-log files from disk: paths and globs in, one ``ParsedLog`` per file out.

The parsers in ``runbook.logs`` take text; this module opens the files, and never lets one bad
file cost the good ones. What it does with the files a responder meets at 3 AM:

- a glob matching nothing, a missing or unreadable file, a folder: an entry with an ``error``
  naming the path and what to do;
- a FIFO, device or socket: skipped with an ``error`` (opening it to read could block forever);
- the same file given twice (twice in a list, or matched by two globs, or via a symlink): read
  once, and the first entry says it was given again;
- a truncated or corrupt ``.gz`` (logrotate still writing it): what decompresses is parsed, and a
  note says where the stream broke; a ``.gz`` with nothing readable is an ``error``;
- a file larger than ``MAX_LOG_BYTES``: the newest ``MAX_LOG_BYTES`` (the end of the file, where
  the incident usually is) are read from a line boundary, and a note says how much was left out;
- UTF-16 (with a BOM, as PowerShell's ``>`` writes, or without one), a UTF-8 BOM, bytes that are
  not UTF-8: decoded, with a note when anything was guessed or replaced;
- the same record twice in one file, or a second log format inside one file: flagged in a note.

Notes never make a log unreadable (``ParsedLog.ok`` stays true); errors do.
"""

from __future__ import annotations

import codecs
import collections
import fnmatch
import glob
import os
import stat
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from runbook.logs import LogFormat, detect_format, parse_log
from runbook.observations import ParsedLog, empty_log_frame

# Largest part of one file that is read; bigger files keep their newest part (the log-formats
# issue removes the cap with streaming reads).
MAX_LOG_BYTES = 512 * 1024 * 1024
# Compressed bytes fed to zlib at once: at deflate's 1032:1 ceiling, at most 66 MiB out per step.
_GZIP_INPUT_CHUNK = 64 * 1024
# Bytes from the end of a file sampled to find a second format inside it (a rotated file that
# changed format, two logs concatenated).
_PROBE_BYTES = 64 * 1024
# Columns that identify one logged record; line_no and source differ between two copies of it.
_RECORD_COLUMNS = ("ts", "connection_id", "event", "code", "reason", "duration_s", "client_ip", "user_agent")


def load_close_logs(
    patterns: list[str],
    *,
    max_bytes: int = MAX_LOG_BYTES,
    log_format: str | Mapping[str, str] | None = None,
    log_timezone: str | None = None,
    extra_formats: Sequence[LogFormat] = (),
) -> list[ParsedLog]:
    """Expand paths/globs (``~`` too) and read each file once; never raises on a bad file.

    Returns one ``ParsedLog`` per pattern that matched nothing and per distinct file, in the
    order given (glob matches sorted). ``max_bytes`` bounds what is read of one file (see the
    module docstring). ``log_format``: a format id for every file, or a mapping of path/glob to
    format id (``format_for``); files it does not name are detected. ``log_timezone``: the zone
    of timestamps that carry none (UTC when None). ``extra_formats``: formats built for this run
    (nginx access formats from ``proxy_config``), tried first by detection. Keyword arguments only
    after ``patterns``.
    """
    parsed: list[ParsedLog] = []
    first_seen: dict[tuple[int, int], ParsedLog] = {}
    for pattern in patterns:
        expanded = os.path.expanduser(pattern)
        paths = sorted(glob.glob(expanded)) if glob.has_magic(expanded) else [expanded]
        if not paths:
            parsed.append(_failed(pattern, f"no file matches {pattern!r}: check the glob and the folder"))
        for path in paths:
            try:
                info = os.stat(path)
            except OSError as exc:
                parsed.append(_failed(path, _os_problem(path, exc)))
                continue
            identity = (info.st_dev, info.st_ino)
            if identity in first_seen:
                earlier = first_seen[identity]
                same = "" if earlier.source == path else f" as {path}"
                earlier.notes.append(f"given again{same}: read once")
                continue
            result = read_close_log(
                Path(path),
                info=info,
                max_bytes=max_bytes,
                log_format=format_for(path, log_format, pattern),
                log_timezone=log_timezone,
                extra_formats=extra_formats,
            )
            first_seen[identity] = result
            parsed.append(result)
    return parsed


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


def read_close_log(
    path: Path,
    *,
    info: os.stat_result | None = None,
    max_bytes: int = MAX_LOG_BYTES,
    log_format: str | None = None,
    log_timezone: str | None = None,
    extra_formats: Sequence[LogFormat] = (),
) -> ParsedLog:
    """Read and parse one close-log file (plain or ``.gz``); problems come back as data.
    ``log_format`` forces a format id (None: detect); ``log_timezone`` as in ``load_close_logs``."""
    source = str(path)
    try:
        info = info or os.stat(path)
    except OSError as exc:
        return _failed(source, _os_problem(source, exc))
    if stat.S_ISDIR(info.st_mode):
        return _failed(source, f"{source} is a folder: give the files in it, e.g. {os.path.join(source, '*.log')}")
    if not stat.S_ISREG(info.st_mode):
        return _failed(source, f"{source} is a {_file_kind(info.st_mode)}, not a regular file: skipped (reading it could block)")
    notes: list[str] = []
    try:
        if path.suffix == ".gz":
            data = _read_gzip(path, max_bytes, notes)
        else:
            data = _read_plain(path, info.st_size, max_bytes, notes)
    except OSError as exc:
        return _failed(source, _os_problem(source, exc))
    if data is None:
        return _failed(source, "; ".join(notes))
    data, cut = data
    text = _decode(data, cut, notes)
    result = parse_log(text, source=source, format=log_format, timezone=log_timezone, extra_formats=extra_formats)
    result.notes[:0] = notes
    if result.ok:
        _flag_duplicates(result)
        _flag_second_format(text, result)
    return result


# --- reading bytes --------------------------------------------------------------------------


def _read_plain(path: Path, size: int, max_bytes: int, notes: list[str]) -> tuple[bytes, bool]:
    """The file's bytes, or its newest ``max_bytes`` (from an even offset, for UTF-16); cut or not."""
    with open(path, "rb") as handle:
        if size <= max_bytes:
            return handle.read(), False
        head = handle.read(4)
        start = size - max_bytes + (size - max_bytes) % 2
        handle.seek(start)
        data = handle.read(max_bytes)
    notes.append(
        f"file is {_mib(size)}: read only its newest {_mib(size - start)} (the end of the file); "
        f"the oldest {_mib(start)} were left out"
    )
    # Keep a UTF-16 byte order mark so the decoder still knows the byte order.
    bom = next((b for b in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) if head.startswith(b)), b"")
    return bom + data, True


def _read_gzip(path: Path, max_bytes: int, notes: list[str]) -> tuple[bytes, bool] | None:
    """Decompress up to the first error, keeping the newest ``max_bytes``; None if nothing read.

    zlib directly rather than ``gzip.open``: its buffered reader discards what it decompressed in
    a read call that then hits the break, and here every byte before the break counts.
    """
    kept: collections.deque[bytes] = collections.deque()
    kept_bytes = total = 0
    problem = None
    decompressor = zlib.decompressobj(wbits=31)  # 31: gzip header and trailer (zlib docs)
    in_member = False  # the current decompressor has taken input and not reached its trailer
    with open(path, "rb") as handle:
        while problem is None:
            compressed = handle.read(_GZIP_INPUT_CHUNK)
            if not compressed:
                if in_member:
                    problem = "the gzip stream ends early (truncated: logrotate may still be writing it)"
                break
            while compressed:
                in_member = True
                try:
                    chunk = decompressor.decompress(compressed)
                except zlib.error as exc:
                    problem = f"the gzip data is corrupt ({exc})"
                    break
                compressed = b""
                if decompressor.eof:  # concatenated members (gzip -c a >> b.gz) follow
                    compressed = decompressor.unused_data
                    decompressor = zlib.decompressobj(wbits=31)
                    in_member = False
                    if not compressed.strip(b"\0"):  # trailing zero padding is no member
                        compressed = b""
                if chunk:
                    kept.append(chunk)
                    kept_bytes += len(chunk)
                    total += len(chunk)
                    while kept_bytes - len(kept[0]) >= max_bytes:
                        kept_bytes -= len(kept.popleft())
    data = b"".join(kept)
    cut = len(data) > max_bytes
    if cut:
        data = data[-(max_bytes - max_bytes % 2) :]
        notes.append(
            f"decompresses to over {_mib(total)}: read only its newest {_mib(len(data))}; "
            f"the oldest {_mib(total - len(data))} were left out"
        )
    if problem is not None:
        if not total:
            notes.append(f"cannot read {path}: {problem}; nothing could be decompressed")
            return None
        notes.append(f"{problem}: read the {_mib(total)} before the break, the rest is lost")
    return data, cut


def _decode(data: bytes, cut: bool, notes: list[str]) -> bytes | str:
    """Bytes for UTF-8 (the parsers' fast path), str for what had to be decoded otherwise.

    A read that started mid-file (``cut``) drops its partial first line; a read that may have
    stopped mid-line (truncated .gz) is left to the parser, which counts the half line as malformed.
    """
    encoding = None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
        notes.append("decoded as UTF-16 (byte order mark)")
    elif (guess := _utf16_without_bom(data)) is not None:
        encoding = guess
        notes.append(f"decoded as {guess.upper()} (no byte order mark; every other byte was zero)")
    if encoding is not None:
        text = data.decode(encoding, errors="replace")
        return text[text.find("\n") + 1 :] if cut else text
    if cut:
        data = data[data.find(b"\n") + 1 :]
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        bad = data.decode("utf-8", errors="replace").count("\ufffd")
        notes.append(f"{bad} byte sequences are not UTF-8: shown as \ufffd")
    return data


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


# --- flags on what was read -----------------------------------------------------------------


def _flag_duplicates(result: ParsedLog) -> None:
    if len(result.frame) < 2:
        return
    duplicated = int(result.frame.duplicated(subset=list(_RECORD_COLUMNS)).sum())
    if duplicated:
        result.notes.append(
            f"{duplicated} records repeat an earlier record exactly (the same lines logged or concatenated twice?); they are counted as logged"
        )


def _flag_second_format(text: bytes | str, result: ParsedLog) -> None:
    """Detect the format of the file's end too: a file can hold two formats one after the other.

    Only the end is sampled (detection costs a parse of the sample), where a rotated file that
    changed format or a second log appended to the first shows.
    """
    if len(text) <= 2 * _PROBE_BYTES:
        return
    piece = text[-_PROBE_BYTES:]
    if isinstance(piece, bytes):
        piece = piece.decode("utf-8", errors="replace")
    lines = piece.split("\n")[1:-1]  # whole lines only
    other = detect_format(lines) if lines else None
    if other is not None and other != result.format:
        result.notes.append(
            f"the end of the file looks like {other}, not {result.format}: a second format inside one file; "
            f"only its {result.format} records were read (split the file, one format each)"
        )


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
    return f"{size / (1 << 20):.0f} MiB" if size >= 1 << 20 else f"{size} bytes"
