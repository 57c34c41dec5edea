"""The registry of close-log formats, and the entry points that pick one.

Each format is a small module (or any object) with ``NAME``, ``detect(sample) -> float`` (0 when
the sample is surely not this format, 1 when it surely is) and ``parse(lines, source) ->
ParsedLog``. ``parse_log`` detects the format from the first non-blank lines unless told, and
never raises on content: a log nobody can read comes back as a ParsedLog with an ``error``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import pandas as pd

from runbook.errors import ParameterError
from runbook.logs import jsonlines, node_monitor
from runbook.logs.common import concat_frames, first_nonblank, to_lines
from runbook.observations import LOG_COLUMNS, ParsedLog, empty_log_frame

DETECTION_SAMPLE_LINES = 300  # non-blank lines read to detect a format
WIDER_SAMPLE_LINES = 5_000  # read next when the first lines are all startup chatter
MIN_DETECTION_SCORE = 0.3  # below this no format is claimed


@runtime_checkable
class LogFormat(Protocol):
    """What a log format module provides."""

    NAME: str

    def detect(self, sample: list[str]) -> float: ...

    def parse(self, lines: Iterable[str], source: str) -> ParsedLog: ...


FORMATS: dict[str, LogFormat] = {
    node_monitor.NAME: node_monitor,
    jsonlines.NAME: jsonlines,
}


def register_format(log_format: LogFormat) -> None:
    """Add (or replace) a format under its ``NAME``; detection tries formats in registration order."""
    if not isinstance(log_format, LogFormat) or not isinstance(getattr(log_format, "NAME", None), str):
        raise ParameterError("log_format", "needs NAME (str), detect(sample) and parse(lines, source)")
    FORMATS[log_format.NAME] = log_format


def detect_format(sample_lines: str | bytes | Iterable[str]) -> str | None:
    """The name of the best-scoring format for these lines, or None when none scores enough.

    Reads the first ``DETECTION_SAMPLE_LINES`` non-blank lines, then up to
    ``WIDER_SAMPLE_LINES`` when those match nothing. Ties go to the earlier-registered format.
    """
    lines = to_lines(sample_lines)
    sample = first_nonblank(lines, DETECTION_SAMPLE_LINES)
    name = _best_format(sample)
    if name is None and len(sample) >= DETECTION_SAMPLE_LINES:
        name = _best_format(first_nonblank(lines, WIDER_SAMPLE_LINES))
    return name


def _best_format(sample: list[str]) -> str | None:
    best_name, best_score = None, MIN_DETECTION_SCORE
    for name, log_format in FORMATS.items():
        try:
            score = float(log_format.detect(sample))
        except Exception:  # a broken detector must not hide the other formats
            continue
        if score > best_score or (best_name is None and score >= best_score):
            best_name, best_score = name, score
    return best_name


def parse_log(
    text_or_lines: str | bytes | Iterable[str], source: str, format: str | None = None
) -> ParsedLog:
    """Parse one close log into the normalized frame (``LOG_COLUMNS``).

    ``text_or_lines``: the whole text (str, or bytes decoded as UTF-8 with replacement) or its
    lines; ``source`` names the log in every row and in the result; ``format``: a ``FORMATS``
    name, or None to detect it. When no format matches, the result has ``format=None``, an empty
    frame, every non-blank line counted as ignored, and an ``error`` naming the supported
    formats. Raises ``ParameterError`` only for an unknown ``format`` name.
    """
    if format is not None and format not in FORMATS:
        raise ParameterError("format", f"unknown log format {format!r}; supported: {', '.join(FORMATS)}")
    lines = to_lines(text_or_lines)
    name = format if format is not None else detect_format(lines)
    if name is None:
        nonblank = sum(1 for line in lines if line.strip())
        what = f"{source} is empty" if not nonblank else f"no supported log format recognized in {source}"
        return ParsedLog(
            source=source,
            format=None,
            frame=empty_log_frame(),
            lines_total=len(lines),
            ignored_lines=nonblank,
            error=f"{what}; supported formats: {', '.join(FORMATS)} (pass format= to force one)",
        )
    try:
        return FORMATS[name].parse(lines, source)
    except Exception as exc:  # a parser bug must not stop the runbook: report it as data
        return ParsedLog(
            source=source,
            format=name,
            frame=empty_log_frame(),
            lines_total=len(lines),
            error=f"the {name} parser failed on {source}: {type(exc).__name__}: {exc}",
        )


def combine_logs(parsed: list[ParsedLog]) -> pd.DataFrame:
    """The frames of several parsed logs in one, sorted by ts (stable; rows without ts last)."""
    frame = concat_frames([p.frame for p in parsed])
    if len(frame) == 0:
        return empty_log_frame()
    return frame.sort_values("ts", kind="stable", na_position="last").reset_index(drop=True).astype(LOG_COLUMNS)
