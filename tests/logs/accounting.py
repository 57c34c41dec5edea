"""The "nothing lost" check every format's tests use."""

from __future__ import annotations

from runbook.logs.common import to_lines
from runbook.observations import ParsedLog


def assert_nothing_lost(result: ParsedLog, text: str | bytes) -> None:
    """Every non-blank line is a record line, a counted malformed line or a counted ignored line."""
    lines = to_lines(text)
    nonblank = sum(1 for line in lines if line.strip())
    assert result.lines_total == len(lines)
    assert result.record_lines is not None, "the format does not count its record lines"
    assert result.record_lines + result.malformed_count + result.ignored_lines == nonblank, (
        result.record_lines,
        result.malformed_count,
        result.ignored_lines,
        nonblank,
    )
