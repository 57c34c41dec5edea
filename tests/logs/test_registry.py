"""Tests of the public runbook.logs API: format registry, detection, parse_log, combine_logs."""

from __future__ import annotations

import io
import json
import types
from pathlib import Path

import pandas as pd
import pytest

from runbook.errors import ParameterError
from runbook.logs import FORMATS, combine_logs, detect_format, is_mobile_user_agent, parse_log, register_format
from runbook.logs.registry import DETECTION_SAMPLE_LINES
from runbook.observations import LOG_COLUMNS, ParsedLog, empty_log_frame

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"

NODE_TEXT = (
    "2026-11-28T03:00:01.000Z WebSocket disconnect: { connectionId: 'a1', code: 1006, reason: '', duration: 60012 }\n"
    "2026-11-28T03:00:02.000Z WebSocket connected: {\n"
    "  connectionId: 'b2',\n"
    "  ip: '::ffff:10.0.0.9',\n"
    "  userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148'\n"
    "}\n"
)
JSON_TEXT = (
    '{"ts": "2026-11-28T03:00:00.500Z", "event": "connect", "connectionId": "j1", "ip": "10.0.0.1"}\n'
    '{"ts": "2026-11-28T03:00:03.000Z", "event": "disconnect", "connectionId": "j1", "code": 1001, "duration": 2500}\n'
)
JUNK = "GET /ws HTTP/1.1 101\nconfig loaded {port: 8080}\n\x00\x01binary\nstarting worker 3\n"


def sample_logs() -> list:
    """The close logs recorded into data/samples/<scenario>/, each with the format it is in."""
    found = []
    for path in sorted(SAMPLES.glob("*/*")):
        is_node = path.name.startswith("server") and path.suffix == ".log"
        expected = "jsonlines" if path.suffix == ".jsonl" else "node_monitor" if is_node else None
        if expected:
            found.append(pytest.param(path, expected, id=f"{path.parent.name}/{path.name}"))
    return found or [pytest.param(None, None, marks=pytest.mark.skip(reason="no sample logs recorded yet"))]


@pytest.mark.parametrize("path, expected", sample_logs())
def test_every_sample_log_parses_cleanly(path, expected):
    """Every recorded sample log is detected as its format and parses with zero malformed lines."""
    data = path.read_bytes()
    assert detect_format(data) == expected
    result = parse_log(data, str(path))
    assert result.ok and result.format == expected
    assert result.malformed_count == 0, result.malformed_examples
    assert result.ignored_lines == 0 and len(result.frame) > 0
    assert result.frame["ts"].notna().all()


def test_each_format_is_detected():
    """Node monitor output and JSON lines are told apart, with or without a shipper prefix."""
    assert detect_format(NODE_TEXT) == "node_monitor"
    assert detect_format(JSON_TEXT) == "jsonlines"
    prefix = "2026-11-28T03:00:09.5Z stdout F "
    assert detect_format([prefix + line for line in NODE_TEXT.splitlines()]) == "node_monitor"
    assert detect_format([prefix + line for line in JSON_TEXT.splitlines()]) == "jsonlines"


def test_junk_is_not_detected_and_says_why():
    """Unrecognized text gives format None, an empty frame, every non-blank line ignored, and an error."""
    assert detect_format(JUNK) is None
    result = parse_log(JUNK, "mystery.log")
    assert result.format is None and not result.ok
    assert len(result.frame) == 0 and list(result.frame.columns) == list(LOG_COLUMNS)
    assert result.ignored_lines == 4 and result.lines_total == 4
    assert "mystery.log" in result.error and "node_monitor" in result.error and "jsonlines" in result.error


def test_empty_input_is_an_error_not_an_exception():
    """An empty log is reported as such, for text, bytes and line lists alike."""
    for empty in ("", b"", [], "\n\n"):
        result = parse_log(empty, "empty.log")
        assert not result.ok and "empty" in result.error and len(result.frame) == 0


def test_records_after_long_startup_chatter_are_still_detected():
    """When the first lines are all chatter, a wider sample finds the records."""
    chatter = [f"worker {k} ready" for k in range(DETECTION_SAMPLE_LINES + 50)]
    assert detect_format(chatter + NODE_TEXT.splitlines()) == "node_monitor"


def test_forced_and_unknown_format():
    """format= forces a parser; an unknown name is a ParameterError naming the supported ones."""
    result = parse_log(JSON_TEXT, "x.log", format="node_monitor")
    assert result.format == "node_monitor" and len(result.frame) == 0 and result.ignored_lines == 2
    with pytest.raises(ParameterError, match="unknown log format 'csv'; supported: node_monitor, jsonlines"):
        parse_log(JSON_TEXT, "x.log", format="csv")


def test_text_bytes_and_line_iterables_give_the_same_frame():
    """Whole text, bytes, a list of lines and an open file's lines parse alike."""
    expected = parse_log(NODE_TEXT, "s").frame
    for given in (NODE_TEXT.encode(), NODE_TEXT.splitlines(), io.StringIO(NODE_TEXT), NODE_TEXT.splitlines(keepends=True)):
        pd.testing.assert_frame_equal(parse_log(given, "s").frame, expected)


def test_combine_logs_sorts_by_time_stably():
    """Frames of several logs are concatenated and sorted by ts, ties in input order, no time last."""
    node = parse_log(NODE_TEXT, "server.log")
    jsonl = parse_log(JSON_TEXT, "close-log.jsonl")
    untimed = parse_log('{"event": "close", "code": 1000}\n', "untimed.jsonl")
    tie = parse_log('{"ts": "2026-11-28T03:00:01Z", "event": "close", "code": 4000}\n', "tie.jsonl")
    combined = combine_logs([untimed, node, jsonl, tie])
    assert combined["source"].tolist() == ["close-log.jsonl", "server.log", "tie.jsonl", "server.log", "close-log.jsonl", "untimed.jsonl"]
    assert {name: str(dtype) for name, dtype in combined.dtypes.items()} == LOG_COLUMNS
    assert list(combined.index) == list(range(6))
    assert combine_logs([]).equals(empty_log_frame())


def test_registered_format_is_detected_and_a_failing_parser_is_data():
    """A registered format takes part in detection; a parser that raises yields an error, not a crash."""

    def parse(lines, source):
        raise RuntimeError("parser bug")

    csv = types.SimpleNamespace(NAME="csv_close", detect=lambda sample: 1.0 if sample[0].startswith("ts,") else 0.0, parse=parse)
    register_format(csv)
    try:
        assert detect_format("ts,code\n1,1006\n") == "csv_close"
        result = parse_log("ts,code\n1,1006\n", "c.csv")
        assert not result.ok and "RuntimeError: parser bug" in result.error and result.format == "csv_close"
    finally:
        del FORMATS["csv_close"]
    with pytest.raises(ParameterError):
        register_format(types.SimpleNamespace(NAME="broken"))


def test_is_mobile_user_agent_scalar_and_series():
    """The reference runbook's mobile test, for one user agent or a Series with missing values."""
    assert is_mobile_user_agent("Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X)") is True
    assert is_mobile_user_agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64)") is False
    assert is_mobile_user_agent("mobile lowercase") is False  # the JavaScript regex is case-sensitive
    assert is_mobile_user_agent(None) is None
    series = pd.Series(["Android 14", None, "curl/8"], dtype="string")
    assert is_mobile_user_agent(series).tolist() == [True, pd.NA, False]
    assert str(is_mobile_user_agent(pd.Series(["iPhone"], dtype=object)).dtype) == "boolean"


def test_lone_surrogates_from_surrogateescape_text():
    """Text decoded with surrogateescape (odd bytes in names or lines) parses; surrogates become U+FFFD."""
    node = "2026-11-28T03:00:01.000Z WebSocket disconnect: { connectionId: 'a\udcff', code: 1006, reason: '', duration: 1 }\n"
    jsonl = '{"event": "close", "code": 1000, "reason": "x\udcff"}\n'
    for text, column, value in ((node, "connection_id", "a\ufffd"), (jsonl, "reason", "x\ufffd")):
        result = parse_log(text, "odd\udcff.log")
        assert result.ok, result.error
        assert result.frame[column].tolist() == [value] and result.frame["source"].tolist() == ["odd\ufffd.log"]


def test_parsed_log_reports_counts_for_the_steps_table():
    """lines_total, records, ignored and malformed add up for a typical mixed log."""
    text = NODE_TEXT + "unrelated line\n" + "2026-11-28T03:00:04.000Z WebSocket disconnect: { connectionId: 'x', code: 'bad' }\n"
    result = parse_log(text, "server.log")
    assert isinstance(result, ParsedLog) and result.ok
    assert (result.lines_total, result.records, result.ignored_lines, result.malformed_count) == (8, 2, 1, 1)
    assert json.dumps([str(m) for m in result.malformed_examples])  # printable as they are
