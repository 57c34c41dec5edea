"""What every linter of runbook.configs shares: the file source, findings, diffs, the heartbeat.

The linters never open files: they get a ``Files`` (``read(path) -> str`` and
``glob(pattern) -> list[str]``) from the caller, so nginx includes can be followed from text held
in memory as well as from disk.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from runbook.configs.checks import CHECKS
from runbook.observations import ConfigFinding, PathTimeout

Read = Callable[[str], str]
Glob = Callable[[str], list[str]]

# The idle timeout a fix writes when nothing says otherwise: an hour, the value HAProxy's and
# nginx's own WebSocket guides use; never less than four heartbeats.
FIX_TIMEOUT_S = 3600


def fix_timeout_s(heartbeat_s: float | None) -> int:
    """The timeout a fix proposes: an hour, or four heartbeats when that is longer."""
    return int(max(FIX_TIMEOUT_S, 4 * (heartbeat_s or 0)))


@dataclass(frozen=True)
class Files:
    """Where the linters get file contents: ``read`` raises OSError for a missing file."""

    read: Read
    glob: Glob


def in_memory(files: dict[str, str]) -> Files:
    """A Files over a dict of path -> text (tests, or contents the caller already holds)."""
    from fnmatch import fnmatchcase

    def read(path: str) -> str:
        try:
            return files[path]
        except KeyError:
            raise FileNotFoundError(2, "No such file or directory", path) from None

    def glob(pattern: str) -> list[str]:
        return sorted(path for path in files if fnmatchcase(path, pattern))

    return Files(read, glob)


def finding(check: str, file: str, line: int | None, message: str, fix: str | None = None,
            severity: str | None = None) -> ConfigFinding:
    """A ConfigFinding of ``check`` with the table's severity (or a stated one)."""
    return ConfigFinding(file=file, line=line, severity=str(severity or CHECKS[check].severity), check=check,
                         message=message, fix=fix)


@dataclass(frozen=True)
class Edit:
    """Replace ``lines[start:end]`` (0-based; start == end inserts) with ``new``."""

    start: int
    end: int
    new: tuple[str, ...]


_CONTEXT = 3  # lines of context around each change, as diff -u


@functools.lru_cache(maxsize=32)
def text_lines(text: str) -> tuple[str, ...]:
    """The lines of ``text`` split on "\\n" only, as nginx and crossplane count lines (a stray "\\r"
    stays part of its line). Cached: every fix of a large config reuses one split."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return tuple(lines)


def unified_diff(path: str, text: str, edits: Iterable[Edit]) -> str | None:
    """A unified diff of ``text`` after ``edits``, labelled with ``path`` (``patch FILE < diff``).

    Only the lines around the edits are compared (the hunk numbers are shifted back), so a fix
    in a config of thousands of lines costs what a fix in a short one does.
    """
    edits = sorted(edits, key=lambda e: (e.start, e.end))
    if not edits:
        return None
    old = text_lines(text)
    low = max(0, edits[0].start - _CONTEXT - 1)
    high = min(len(old), max(e.end for e in edits) + _CONTEXT + 1)
    window = [line + "\n" for line in old[low:high]]
    new = list(window)
    for edit in reversed(edits):
        new[edit.start - low:edit.end - low] = [line + "\n" for line in edit.new]
    if new == window:
        return None
    lines = list(difflib.unified_diff(window, new, fromfile=path, tofile=path))
    return "".join(_shift_hunk(line, low) if line.startswith("@@") else line for line in lines)


def _shift_hunk(header: str, offset: int) -> str:
    """``@@ -a,b +c,d @@`` of a diff over a slice, renumbered for the whole file."""
    def shift(match: re.Match) -> str:
        sign, start, count = match.group(1), int(match.group(2)), match.group(3) or ""
        return f"{sign}{start + offset}{count}"

    return re.sub(r"([-+])(\d+)(,\d+)?", shift, header, count=2)


def indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


@dataclass
class LintResult:
    """What one linter found in one config (or one preset); merged into a ConfigReport."""

    kind: str
    files: list[str] = field(default_factory=list)
    findings: list[ConfigFinding] = field(default_factory=list)
    websocket_locations: list[str] = field(default_factory=list)
    upgrade_forwarded: bool | None = None
    path_timeouts: list[PathTimeout] = field(default_factory=list)


def timeout_verdict(seconds: float, heartbeat_s: float | None) -> str:
    """How a timeout compares with the heartbeat, for messages."""
    if heartbeat_s is None:
        return f"{seconds:g} s"
    if seconds <= heartbeat_s:
        return f"{seconds:g} s, {heartbeat_s - seconds:g} s short of the {heartbeat_s:g} s heartbeat"
    return f"{seconds:g} s, above the {heartbeat_s:g} s heartbeat"
