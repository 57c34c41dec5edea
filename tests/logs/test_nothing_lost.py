"""Every format, forced onto hostile input: no crash, and every line accounted for.

Every non-blank line is a record line, a counted malformed line or a counted ignored line
(``record_lines + malformed_count + ignored_lines``): checked for every registered format on
binary garbage, invalid UTF-8, a truncated last line, a 1 MB line, an empty file, and each
format's own sample with garbage mixed in.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from runbook.logs import FORMATS, parse_log
from runbook.logs.common import to_lines
from tests.logs.accounting import assert_nothing_lost

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_OF = {
    "nginx_access": ROOT / "data/samples/proxy_timeout/access.log",
    "nginx_error": ROOT / "data/samples/heartbeat_missing/error.log",
    "haproxy": ROOT / "data/formats/haproxy-http.log",
    "python_websockets": ROOT / "data/formats/python-websockets.log",
    "tornado": ROOT / "data/formats/tornado.log",
    "browser_console": ROOT / "data/formats/chrome-console.log",
    "sockets": ROOT / "data/formats/ss-snapshots.txt",
    "state_csv": ROOT / "data/formats/server-state.csv",
    "node_monitor": ROOT / "data/samples/healthy/server.log",
    "jsonlines": ROOT / "data/samples/healthy/close-log.jsonl",
}
HOSTILE = {
    "binary": bytes(range(256)) * 8 + b"\n\x00\x00\xff\n",
    "invalid_utf8": b"2026-11-30T16:00:00Z ws closed code=1006 \xc3\x28 \xa0\xa1\n\xed\xa0\x80 lone surrogate\n",
    "truncated": b'198.51.100.7 - - [30/Nov/2026:16:00:00 +0000] "GET /ws HTTP/1.1" 101 19 "-" "x" rt=1.0\n198.51.100.7 - - [30/Nov/2026:16:0',
    "one_mb_line": b"2026-11-30T16:00:00Z socket closed code 1006 " + b"A" * 1_000_000 + b"\nnext line\n",
    "empty": b"",
    "blank_lines": b"\n\n   \n\t\n",
}
# Multi-line record formats count record lines as what is left (their record_lines is None).
LINE_COUNTED = sorted(name for name in FORMATS if name not in ("node_monitor", "jsonlines"))


def _accounted(result, data) -> None:
    if result.record_lines is None:
        nonblank = sum(1 for line in to_lines(data) if line.strip())
        assert result.malformed_count + result.ignored_lines <= nonblank
        assert result.records <= nonblank - result.malformed_count - result.ignored_lines or result.records == 0
    else:
        assert_nothing_lost(result, data)


@pytest.mark.parametrize("name", sorted(FORMATS))
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_input_is_counted_not_fatal(name, case):
    """Forced onto garbage, a format parses without failing, in bounded time, losing no line."""
    data = HOSTILE[case]
    started = time.monotonic()
    result = parse_log(data, f"{case}.log", format=name)
    assert time.monotonic() - started < 20
    assert result.error is None, result.error
    _accounted(result, data)


# node_monitor records span several lines: noise inside a record breaks it, by design.
@pytest.mark.parametrize("name", sorted(set(SAMPLE_OF) - {"node_monitor"}))
def test_sample_with_garbage_mixed_in(name):
    """A format's own sample with garbage lines between its lines: the records stay, garbage is counted."""
    clean = SAMPLE_OF[name].read_bytes()
    lines = clean.splitlines()
    mixed = b"\n".join(line for pair in zip(lines, [b"\x00\xffnoise %d" % i for i in range(len(lines))]) for line in pair) + b"\n"
    before = parse_log(clean, "clean", format=name)
    after = parse_log(mixed, "mixed", format=name)
    assert after.error is None
    if name != "sockets":  # snapshots count rows; their total stays
        assert after.records == before.records
    _accounted(after, mixed)
    if name in LINE_COUNTED:
        assert after.ignored_lines + after.malformed_count >= before.ignored_lines + before.malformed_count + len(lines) - 1
