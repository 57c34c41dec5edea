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
from runbook.logs import registry
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
    assert detect_format(chatter + NODE_TEXT.splitlines() * 2) == "node_monitor"  # 12 record lines


# A project README: it quotes one line of the Node monitor's output and one JSON close record.
README = """# chat-gateway

WebSocket gateway for the chat frontend. Terminates client connections, authenticates them
against the session service and fans messages out over Redis pub/sub.

## Requirements

- Node.js 20 LTS
- Redis 7 (pub/sub only, no persistence needed)
- nginx in front, with `proxy_read_timeout` longer than the heartbeat interval

## Running locally

```sh
npm ci
cp .env.example .env
npm run dev
```

The server listens on `:8080` and serves the socket at `/ws/chat`.

## Configuration

| variable | default | meaning |
|---|---|---|
| `PORT` | `8080` | listening port |
| `HEARTBEAT_MS` | `30000` | ping interval; clients that miss two pongs are dropped |
| `MAX_PAYLOAD` | `1048576` | largest accepted frame, in bytes |
| `REDIS_URL` | `redis://localhost:6379` | pub/sub broker |

## Logging

Every connection logs one line when it opens and one when it closes. A close looks like this:

    2026-11-28T03:00:01.000Z WebSocket disconnect: { connectionId: 'a1', code: 1006, reason: '', duration: 60012 }

With `LOG_FORMAT=json` the same event is written as

    {"ts": "2026-11-28T03:00:01.000Z", "event": "disconnect", "connectionId": "a1", "code": 1006}

Code 1006 means the TCP connection went away without a close frame: look at the proxy
timeouts first, then at the client's network.

## Deploying

1. Build the image: `docker build -t chat-gateway .`
2. Push it and bump the tag in `deploy/values.yaml`.
3. `helm upgrade chat-gateway deploy/ -f deploy/values.yaml`

Rolling restarts close every socket with 1001 (going away); clients reconnect with jitter.

## Troubleshooting

- Clients drop every 60 s: the proxy's read timeout is shorter than the heartbeat.
- 1009 closes: a message exceeded `MAX_PAYLOAD`.
- Handshake 400s: the `Upgrade` header is stripped somewhere in front of nginx.

## License

MIT
"""

# nginx access log lines (combined format plus timings) and pino-http JSON request logs: the
# unrelated output that shares a log with the close records.
NGINX = [
    '198.51.100.127 - - [28/Nov/2026:04:53:16 +0000] "GET /ws/chat HTTP/1.1" 101 32 "-" "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36" rt=13.554',
    '198.51.100.79 - - [28/Nov/2026:04:53:50 +0000] "GET /api/session HTTP/1.1" 200 512 "https://chat.example.com/" "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36" rt=0.012',
    '198.51.100.8 - - [28/Nov/2026:04:54:32 +0000] "GET /static/app.js HTTP/1.1" 304 0 "https://chat.example.com/" "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0" rt=0.001',
    '203.0.113.9 - - [28/Nov/2026:04:54:40 +0000] "POST /api/messages HTTP/1.1" 201 88 "https://chat.example.com/" "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)" rt=0.034',
]
PINO_HTTP = [
    '{"level":30,"time":1795834801000,"pid":7,"hostname":"api-1","req":{"id":%d,"method":"GET","url":"/api/session"},"res":{"statusCode":200},"responseTime":4,"msg":"request completed"}' % k
    for k in range(4)
]


def test_text_that_only_mentions_a_record_is_not_a_log():
    """A README quoting one record of each format, and a request log with one error, are unrecognized."""
    assert detect_format(README) is None
    result = parse_log(README, "README.md")
    assert result.format is None and result.malformed_count == 0 and len(result.frame) == 0
    assert "no known log format recognized in README.md (first lines: # chat-gateway" in result.error
    assert "node_monitor, jsonlines" in result.error and "set the log_format parameter" in result.error
    errored = '{"level":50,"time":1795834802000,"pid":7,"hostname":"api-1","req":{"id":99,"method":"POST","url":"/api/messages"},"res":{"statusCode":500},"msg":"request errored"}'
    request_log = PINO_HTTP * 15 + [errored]  # "errored" reads as an error event, once in 61 lines
    assert detect_format(request_log) is None
    assert detect_format(NGINX * 15 + [NODE_TEXT.splitlines()[0]]) == "nginx_access"  # not a Node monitor log


def test_records_among_much_unrelated_output_are_detected():
    """One record in five lines, between access-log or request-log lines, is still a close log."""
    node = [line for line in NODE_TEXT.splitlines() if "WebSocket" in line and line.endswith("}")]
    node_log = [line for k in range(40) for line in (*NGINX, node[0].replace("'a1'", f"'n{k}'"))]
    assert detect_format(node_log) == "node_monitor"
    result = parse_log(node_log, "server.log")
    assert (result.records, result.ignored_lines, result.malformed_count) == (40, 160, 0)
    record = '{"ts": "2026-11-28T03:00:03.000Z", "event": "disconnect", "connectionId": "j%d", "code": 1006}'
    json_log = [line for k in range(40) for line in (*PINO_HTTP, record % k)]
    assert detect_format(json_log) == "jsonlines"
    assert parse_log(json_log, "app.log").records == 40


def test_small_logs_are_detected():
    """A log of three records, alone or with a startup line, is detected as its format."""
    node = "\n".join(f"2026-11-28T03:00:0{k}.000Z WebSocket disconnect: {{ connectionId: 'a{k}', code: 1006, reason: '', duration: 60012 }}" for k in range(3))
    assert detect_format(node) == "node_monitor"
    assert detect_format("Server listening on port 8080\n" + node) == "node_monitor"
    records = [f'{{"ts": "2026-11-28T03:00:0{k}.000Z", "event": "close", "code": 1000}}' for k in range(3)]
    assert detect_format(records) == "jsonlines"
    assert detect_format(['{"level": "info", "msg": "listening", "port": 8080}', *records]) == "jsonlines"


def test_forced_and_unknown_format():
    """format= forces a parser; an unknown name is a ParameterError naming the supported ones."""
    result = parse_log(JSON_TEXT, "x.log", format="node_monitor")
    assert result.format == "node_monitor" and len(result.frame) == 0 and result.ignored_lines == 2
    with pytest.raises(ParameterError, match="'log_format': unknown log format 'csv'; known formats: node_monitor, jsonlines"):
        parse_log(JSON_TEXT, "x.log", format="csv")


def test_text_bytes_and_line_iterables_give_the_same_frame():
    """Whole text, bytes, a list of lines and an open file's lines parse alike."""
    expected = parse_log(NODE_TEXT, "s").frame
    for given in (NODE_TEXT.encode(), NODE_TEXT.splitlines(), io.StringIO(NODE_TEXT), NODE_TEXT.splitlines(keepends=True)):
        pd.testing.assert_frame_equal(parse_log(given, "s").frame, expected)


@pytest.mark.parametrize(
    "text",
    [b"", b"\n", b"\n\n", b"a", b"a\n", b"a\n\n", b"\xef\xbb\xbfa\r\nb\r\n", b"a\r\r\nb\r", b"\xff\xfe", "a\u2028b\nc".encode(),
     b"x\xe2\x82\r\ny \xc3\n\n  \n z", "\ufeffé\r\n".encode("utf-16"), "é\n\ud800\n", "\ufeffa\r\nb"],
    ids=repr,
)
def test_whole_text_is_held_unsplit_but_reads_as_its_lines(text):
    """to_log_text keeps whole text as bytes; its lines, head and length are exactly to_lines'."""
    from runbook.logs.common import LogText, first_nonblank, to_lines, to_log_text

    log, lines = to_log_text(text), to_lines(text)
    utf16 = isinstance(text, bytes) and text.startswith((b"\xff\xfe", b"\xfe\xff"))
    surrogates = isinstance(text, str) and "\ud800" in text
    assert isinstance(log, LogText) == (not utf16 and not surrogates)  # those stay to_lines' lines
    assert list(log) == lines and len(log) == len(lines) and to_lines(log) == lines
    assert first_nonblank(to_log_text(text), 2) == first_nonblank(lines, 2)


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


def _best_format_scoring_all(sample: list[str], candidates: dict) -> tuple[str | None, float]:
    """Detection as it was before the phrase formats could be skipped: every candidate scored."""
    scored = []
    for name, log_format in candidates.items():
        try:
            score = float(log_format.detect(sample))
        except Exception:  # noqa: BLE001 - as the registry does
            continue
        if score >= registry.MIN_DETECTION_SCORE or (name == registry.FALLBACK_FORMAT and score > 0):
            scored.append((name == registry.FALLBACK_FORMAT, -score, name))
    for _, negative_score, name in sorted(scored, key=lambda item: item[:2]):
        log_format = candidates[name]
        if getattr(log_format, "STRUCTURAL", False) and -negative_score >= registry.STRUCTURAL_SCORE:
            return name, -negative_score
        if registry._has_enough_records(log_format, sample):
            return name, -negative_score
    return None, 0.0


def test_skipping_the_phrase_formats_never_changes_what_is_detected():
    """Phrase formats (a score ceiling, regexes costing ~0.1 s a file) are scored only when no
    other format won above their ceiling: on every sample log, its second half, and mixes of two
    logs' lines, detection picks what scoring every format picks."""
    texts = [path.read_text(encoding="utf-8", errors="replace").splitlines()
             for path in sorted(SAMPLES.rglob("*")) if path.suffix in {".log", ".jsonl", ".json", ".csv"}]
    samples = [lines[:DETECTION_SAMPLE_LINES] for lines in texts]
    samples += [lines[len(lines) // 2:][:DETECTION_SAMPLE_LINES] for lines in texts]
    samples += [[line for pair in zip(a, b) for line in pair][:DETECTION_SAMPLE_LINES] for a, b in zip(texts, texts[1:])]
    winners = []
    for sample in samples:
        sample = [line for line in sample if line.strip()]
        found = registry._best_format(sample, dict(FORMATS))
        assert found == _best_format_scoring_all(sample, dict(FORMATS)), sample[:3]
        winners.append(found[0])
    capped = {name for name, log_format in FORMATS.items() if getattr(log_format, "MAX_SCORE", None) is not None}
    assert capped & set(winners) and set(winners) - capped  # both paths taken
