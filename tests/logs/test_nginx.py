"""nginx access and error logs: the lab's real recordings, custom log_format, malformed lines."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runbook.logs import columnar, nginx, parse_log
from runbook.logs.registry import detect_format_scored
from tests.logs.accounting import assert_nothing_lost

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"


def _samples(name: str) -> list:
    return [pytest.param(p, id=p.parent.name) for p in sorted(SAMPLES.glob(f"*/{name}"))]


@pytest.mark.parametrize("path", _samples("access.log"))
def test_sample_access_logs_are_read(path):
    """Every recorded access.log (real nginx, lab log_format) is detected and read whole."""
    data = path.read_bytes()
    result = parse_log(data, str(path))
    assert result.format == "nginx_access" and result.confidence >= 0.9
    assert result.malformed_count == 0 and result.records > 0
    assert result.frame["ts"].notna().all() and result.frame["duration_s"].notna().all()
    assert_nothing_lost(result, data)


@pytest.mark.parametrize("path", _samples("error.log"))
def test_sample_error_logs_are_read(path):
    """Every recorded error.log is an nginx error log, even one with startup notices only."""
    data = path.read_bytes()
    result = parse_log(data, str(path))
    assert result.ok and result.format == "nginx_error" and result.malformed_count == 0
    assert_nothing_lost(result, data)


def test_proxy_timeout_sessions_end_at_sixty_seconds():
    """A 101 line is a session that ended, $request_time its lifetime: the 60 s timer shows."""
    result = parse_log((SAMPLES / "proxy_timeout" / "access.log").read_bytes(), "access.log")
    durations = result.frame["duration_s"]
    assert (result.frame["event"] == "disconnect").all()
    assert ((durations > 59.5) & (durations < 60.5)).sum() >= 0.3 * len(durations)
    assert result.frame["code"].isna().all()


def test_failed_upgrade_is_a_handshake_error():
    """A non-101 answer on a WebSocket path reads "handshake failed: HTTP 426 on /ws/live"."""
    result = parse_log((SAMPLES / "proxy_missing_upgrade" / "access.log").read_bytes(), "access.log")
    assert (result.frame["event"] == "error").all()
    assert set(result.frame["reason"]) == {"handshake failed: HTTP 426 on /ws/live", "handshake failed: HTTP 505 on /ws/chat"}


def test_upstream_timed_out_is_a_proxy_close_without_close_frame():
    """"upstream timed out ... while proxying upgraded connection": 1006, closed by the proxy."""
    line = (
        '2026/11/28 06:41:42 [info] 6880#6880: *5 upstream timed out (110: Connection timed out) while proxying '
        'upgraded connection, client: 203.0.113.74, server: localhost, request: "GET /ws/live HTTP/1.1", '
        'upstream: "http://127.0.0.1:53389/ws/live", host: "127.0.0.1:35183"'
    )
    row = parse_log(line + "\n", "error.log", timezone="+02:00").frame.iloc[0]
    assert (row["event"], row["code"], row["closed_by"], row["connection_id"], row["client_ip"]) == (
        "disconnect", 1006, "proxy", "5", "203.0.113.74")
    assert row["ts"] == pd.Timestamp("2026-11-28T04:41:42Z")  # naive local time read in +02:00
    assert "proxy_read_timeout" in row["reason"]


def test_error_log_before_upgrade_failures():
    """connect() failed and timeouts before the 101 are failed handshakes naming nginx's status."""
    text = (
        "2026/11/28 06:00:00 [error] 10#10: *1 connect() failed (111: Connection refused) while connecting to upstream, "
        'client: 10.0.0.1, server: _, request: "GET /ws HTTP/1.1", upstream: "http://127.0.0.1:9/ws", host: "a"\n'
        "2026/11/28 06:00:01 [error] 10#10: *2 upstream timed out (110: Connection timed out) while reading response "
        'header from upstream, client: 10.0.0.2, server: _, request: "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1"\n'
        "2026/11/28 06:00:02 [error] 10#10: *3 connect() failed (111: Connection refused) while connecting to upstream, "
        'client: 10.0.0.3, server: _, request: "GET /index.html HTTP/1.1"\n'
        "2026/11/28 06:00:03 [alert] 10#10: 1024 worker_connections are not enough\n"
        "2026/13/28 06:00:04 [info] 10#10: *4 client timed out (110: Connection timed out) while proxying upgraded connection\n"
    )
    result = parse_log(text, "error.log", format="nginx_error")
    reasons = result.frame["reason"].tolist()
    assert reasons[0].startswith("handshake failed: nginx answered HTTP 502: connect() failed") and reasons[0].endswith("on /ws")
    assert "HTTP 504" in reasons[1]
    assert "worker_connections are not enough" in reasons[2]
    assert (result.records, result.ignored_lines, result.malformed_count) == (3, 1, 1)  # month 13 is malformed
    assert_nothing_lost(result, text)


def test_access_log_with_malformed_and_unrelated_lines():
    """Ordinary requests are ignored, broken access lines counted as malformed, nothing lost."""
    good = f'10.0.0.1 - - [28/Nov/2026:06:00:00 +0000] "GET /ws HTTP/1.1" 101 19 "-" "{CHROME}" 61.002'
    text = "\n".join(
        [
            good,
            '10.0.0.2 - - [28/Nov/2026:06:00:01 +0000] "GET /index.html HTTP/1.1" 200 512 "-" "curl/8.5"',
            '10.0.0.3 - - [28/Nov/2026:06:00:0',  # truncated last write
            '10.0.0.4 - - [31/Foo/2026:06:00:02 +0000] "GET /ws HTTP/1.1" 101 19 "-" "-"',
            "\x00\x01\x02 binary",
            good.replace("101 19", "400 0"),
        ]
    )
    result = parse_log(text, "access.log")
    assert result.format == "nginx_access"
    assert result.frame["duration_s"].tolist()[0] == 61.002  # a bare $request_time after combined
    assert result.frame["reason"].tolist()[1] == "handshake failed: HTTP 400 on /ws"
    assert (result.records, result.ignored_lines, result.malformed_count) == (2, 2, 2)
    assert_nothing_lost(result, text)


def test_custom_log_format_from_config():
    """A log_format string compiles to a parser: $msec, $request_id, $http_x_forwarded_for."""
    log_format = '$msec $request_id "$request" $status rt=$request_time xff="$http_x_forwarded_for" ua="$http_user_agent"'
    custom = nginx.access_format(log_format)
    line = f'1795845600.250 4f2a9c "GET /ws/chat HTTP/1.1" 101 rt=299.998 xff="198.51.100.7, 10.0.0.2" ua="{CHROME}"'
    result = parse_log(line, "custom.log", format=custom)
    row = result.frame.iloc[0]
    assert (row["connection_id"], row["client_ip"], row["duration_s"]) == ("4f2a9c", "198.51.100.7", 299.998)
    assert row["ts"] == pd.Timestamp(1795845600.250, unit="s", tz="UTC")
    assert result.confidence is None  # forced, not detected
    with pytest.raises(ValueError):
        nginx.access_format("no variables here")


_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\'), max_size=40)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 10**8),  # seconds after 2020-01-01
            st.sampled_from([101, 400, 426, 502]),
            st.integers(0, 10**6).map(lambda ms: ms / 1000),
            st.from_regex(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}", fullmatch=True),
            _TEXT,
        ),
        min_size=1,
        max_size=20,
    )
)
def test_access_round_trip(rows):
    """Records rendered in the lab's log_format and parsed back are the same records."""
    base = pd.Timestamp("2020-01-01T00:00:00Z")
    lines = []
    for seconds, status, duration, ip, agent in rows:
        when = (base + pd.Timedelta(seconds=seconds)).strftime("%d/%b/%Y:%H:%M:%S +0000")
        lines.append(
            f'{ip} - - [{when}] "GET /ws/chat HTTP/1.1" {status} 19 "-" "{agent}" '
            f'rt={duration:.3f} uct="0.000" uht="0.001" urt="{duration:.3f}"'
        )
    result = parse_log("\n".join(lines), "a.log", format="nginx_access")
    frame = result.frame
    assert len(frame) == len(rows) and result.malformed_count == 0
    for (seconds, status, duration, ip, agent), (_, row) in zip(rows, frame.iterrows()):
        assert row["ts"] == base + pd.Timedelta(seconds=seconds)
        assert row["event"] == ("disconnect" if status == 101 else "error")
        assert row["duration_s"] == pytest.approx(duration)
        assert row["client_ip"] == ip
        expected_agent = None if agent in ("", "-") else agent
        assert (None if pd.isna(row["user_agent"]) else row["user_agent"]) == expected_agent


def test_detection_confidence_is_reported():
    """Detection gives the format and its score; a file of prose gets neither."""
    data = (SAMPLES / "healthy" / "access.log").read_bytes()
    assert detect_format_scored(data) == ("nginx_access", pytest.approx(0.95))
    assert detect_format_scored("just some prose\nwith two lines\n") == (None, 0.0)


def test_error_log_closes_fold_into_their_access_lines():
    """heartbeat_missing: each 'upstream timed out' close joins its 101 line: one row, 60 s, 1006, proxy."""
    from runbook.logs import combine_logs

    access = parse_log((SAMPLES / "heartbeat_missing" / "access.log").read_bytes(), "access.log")
    error = parse_log((SAMPLES / "heartbeat_missing" / "error.log").read_bytes(), "error.log")
    combined = combine_logs([access, error])
    assert len(combined) == access.records  # no session counted twice
    cut = combined[combined["closed_by"] == "proxy"]
    assert len(cut) == error.records and (cut["code"] == 1006).all()
    assert cut["duration_s"].between(59.5, 60.5).all() and (cut["source"] == "access.log").all()
    assert cut["reason"].str.contains("proxy_read_timeout").all()
    alone = combine_logs([error])  # without the access log the error rows stay
    assert len(alone) == error.records


@pytest.mark.parametrize(
    "prefix",
    ["", "nginx-1  | ", "2026-11-30T16:00:00.123456789Z stdout F ", "[pod/web-5d9c7/nginx] "],
)
def test_container_prefixes(prefix):
    """Access and error lines collected by docker compose, containerd or kubectl --prefix still read."""
    access = prefix + f'10.0.0.1 - - [30/Nov/2026:16:00:00 +0000] "GET /ws HTTP/1.1" 101 19 "-" "{CHROME}" rt=61.002'
    error = prefix + (
        "2026/11/30 16:00:00 [info] 7#7: *3 upstream timed out (110: Connection timed out) while proxying upgraded "
        'connection, client: 10.0.0.1, server: _, request: "GET /ws HTTP/1.1"'
    )
    assert parse_log(access + "\n", "a.log").frame["duration_s"].tolist() == [61.002]
    assert parse_log(error + "\n", "e.log").frame["code"].tolist() == [1006]


def test_access_log_of_plain_requests_first_is_still_an_access_log():
    """300 ordinary requests (and one odd line) before the first upgrade: still nginx_access, all read."""
    plain = '10.0.0.2 - - [30/Nov/2026:16:00:01 +0000] "GET /api/items HTTP/1.1" 200 512 "-" "curl/8.5"'
    upgrade = f'10.0.0.1 - - [30/Nov/2026:16:10:00 +0000] "GET /ws HTTP/1.1" 101 19 "-" "{CHROME}" 61.002'
    text = "\n".join([plain] * 320 + ["-- log rotated --"] + [upgrade] * 3) + "\n"
    result = parse_log(text, "access.log")
    assert result.format == "nginx_access" and result.records == 3
    assert_nothing_lost(result, text)


# --- the columnar reading (runbook/logs/columnar.py) gives what the line reader gives ------------


def _parsed(result) -> tuple:
    examples = [(e.line_no, e.text, e.problem) for e in result.malformed_examples]
    return (result.format, result.error, result.lines_total, result.ignored_lines, result.malformed_count,
            result.record_lines, examples)


def assert_columns_read_as_lines(monkeypatch, text, format="nginx_access", timezone=None) -> None:
    """The same text parsed with the columnar path and line by line (no string views): identical."""
    fast = parse_log(text, "a.log", format=format, timezone=timezone)
    with monkeypatch.context() as patch:
        patch.setattr(columnar, "available", lambda: False)
        slow = parse_log(text, "a.log", format=format, timezone=timezone)
    assert _parsed(fast) == _parsed(slow)
    pd.testing.assert_frame_equal(fast.frame, slow.frame, check_exact=True)


def _mixed_access_log() -> str:
    ua = f'"-" "{CHROME}"'
    lines = [
        f'10.0.0.1 - - [28/Nov/2026:06:00:00 +0000] "GET /ws/chat HTTP/1.1" 101 19 {ua} rt=61.002 uct="0.000" urt="61.002"',
        f'10.0.0.2 - alice [28/Nov/2026:06:00:01 -0530] "GET /ws/chat?token=1 HTTP/1.1" 101 19 {ua} 7.5',
        f'10.0.0.3 - - [29/Feb/2026:06:00:02 +0000] "GET /ws HTTP/1.1" 101 19 {ua} rt=1.0',  # not a real date
        f'10.0.0.4 - - [28/Nov/2026:06:00:03 +2400] "GET /ws HTTP/1.1" 101 19 {ua} rt=1.0',  # nor this zone
        f'10.0.0.5 - - [28/nov/2026:06:00:04 +0000] "GET /ws HTTP/1.1" 101 19 {ua} rt=1.0',  # month case
        f'10.0.0.6 - - [28/Nov/2026:06:00:05 +0000] "GET /chat HTTP/1.1" 426 0 {ua}',  # a path upgraded below
        f'10.0.0.7 - - [28/Nov/2026:06:00:06 +0000] "GET /chat HTTP/1.1" 101 0 {ua} rt="2.25"',
        f'10.0.0.8 - - [28/Nov/2026:06:00:07 +0000] "GET /api HTTP/1.1" 200 0 {ua} rt=0.001',
        f'10.0.0.9 - - [28/Nov/2026:06:00:08 +0000] "GET /Socket.IO/?EIO=4&transport=websocket HTTP/1.1" 499 0 {ua}',
        '10.0.0.10 - - [28/Nov/2026:06:00:09 +0000] "GET /ws\\x41 HTTP/1.1" 502 0 "-" "bot\\xC3\\xA9"',
        '10.0.0.11 - - [28/Nov/2026:06:00:10 +0000] "GET ?x HTTP/1.1" 426 0 "-" "-" x rt=3',
        '10.0.0.12 - - [28/Nov/2026:06:00:11 +0000] "-" 400 0 "-" "-"',
        f'10.0.0.13 - - [28/Nov/2026:06:00:12 +0000] "GET /ws HTTP/1.1" - 0 {ua}',  # no status: malformed
        '10.0.0.14 - - [28/Nov/2026:06:00:13 +0000] "GET /ws HTTP/1.1" 101 0 "-" "Mozilla/5.0 (iPhone) é" rt=9',
        f'nginx-1  | 10.0.0.15 - - [28/Nov/2026:06:00:14 +0000] "GET /ws HTTP/1.1" 101 0 {ua} rt=12345678901234567.5',
        f'[pod/web-5d9c7/nginx] 10.0.0.16 - - [01/Jan/1677:00:00:00 +0000] "GET /api HTTP/1.1" 200 0 {ua}',
        "",
        "\t  ",
        '10.0.0.17 - - [28/Nov/2026:06:0',
        "-- log rotated --",
    ]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("timezone", [None, "Europe/Berlin"])
def test_columns_are_the_line_readers_records(monkeypatch, timezone):
    """Lines read as columns and lines left to the line reader (bad dates, escapes, prefixes,
    non-ASCII, malformed) give one frame, counts and examples identical to reading all line by line."""
    assert_columns_read_as_lines(monkeypatch, _mixed_access_log(), timezone=timezone)
    assert_columns_read_as_lines(monkeypatch, _mixed_access_log().split("\n"), timezone=timezone)
    for path in sorted(SAMPLES.glob("*/access.log")):
        assert_columns_read_as_lines(monkeypatch, path.read_bytes(), timezone=timezone)


@pytest.mark.parametrize(
    "log_format",
    [
        '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" '
        'rt=$request_time uct="$upstream_connect_time"',
        '$remote_addr $http_upgrade [$time_local] "$request" $status $request_time "$http_user_agent" $connection',
        '$msec $request_id "$request" $status rt=$request_time xff="$http_x_forwarded_for" ua="$http_user_agent"',
    ],
)
def test_custom_formats_as_columns(monkeypatch, log_format):
    """A log_format the config defines is read as columns where it can be, with the same result."""
    custom = nginx.access_format(log_format, "nginx_access:custom")
    lines = []
    for k, (status, agent) in enumerate([(101, CHROME), (426, "-"), (200, "curl/8.5"), (101, "\\x22q\\x22"), (500, "")]):
        values = {"remote_addr": f"10.0.0.{k}", "remote_user": "-", "time_local": f"28/Nov/2026:06:00:0{k} +0100",
                  "request": "GET /ws/chat HTTP/1.1", "status": status, "body_bytes_sent": 19, "http_referer": "-",
                  "http_user_agent": agent, "request_time": f"{k}.25", "upstream_connect_time": "-", "http_upgrade": "websocket",
                  "connection": k, "msec": f"17958456{k}0.250", "request_id": f"id{k}", "http_x_forwarded_for": f" 198.51.100.{k}, 10.0.0.1"}
        line = log_format
        for name, value in sorted(values.items(), key=lambda item: -len(item[0])):
            line = line.replace("$" + name, str(value))
        lines.append(line)
    text = "\n".join(lines) + "\n"
    fast = parse_log(text, "a.log", format=custom)
    with monkeypatch.context() as patch:
        patch.setattr(columnar, "available", lambda: False)
        slow = parse_log(text, "a.log", format=custom)
    assert _parsed(fast) == _parsed(slow) and fast.records > 0
    pd.testing.assert_frame_equal(fast.frame, slow.frame, check_exact=True)


def test_most_lines_are_read_as_columns(monkeypatch):
    """The lab's access logs are read as columns, not line by line (the speed of issue 11)."""
    read = []
    original = nginx._read_columns

    def spy(*args):
        columns, reader = original(*args)
        read.append(len(columns.rows) + len(columns.ignored))
        return columns, reader

    monkeypatch.setattr(nginx, "_read_columns", spy)
    result = parse_log((SAMPLES / "proxy_timeout" / "access.log").read_bytes(), "access.log", format="nginx_access")
    assert read == [result.lines_total] and result.records > 0


_PIECES = st.tuples(
    st.sampled_from(["10.0.0.1", "::1", "-", "", "a\"b"]),
    st.sampled_from(["-", "bob", ""]),
    st.sampled_from(["28/Nov/2026:06:00:00 +0000", "31/Dec/2199:23:59:59 -1200", "01/Jan/1900:00:00:00 +2359", "29/Feb/2024:12:00:00 +0100",
                     "29/Feb/2026:12:00:00 +0100", "28/Nov/2026:24:00:00 +0000", "28/Foo/2026:06:00:00 +0000", "28/Nov/2262:06:00:00 +0000"]),
    st.sampled_from(["GET /ws HTTP/1.1", "GET /api?x=1 HTTP/1.1", "GET  /ws HTTP/1.1", "", "-", "GET /WS/x", "GET /a\\x41 HTTP/1.1"]),
    st.sampled_from(["101", "426", "200", "499", "007", "-"]),
    st.sampled_from(["", " rt=1.5", ' rt="0.250"', " 61.002", " x rt=7", " rt=", "  2.5 ", " request_time=3 x", " rt=123456789012345678.5"]),
    st.sampled_from(["", "nginx-1  | ", "[pod/a/b] "]),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(_PIECES, min_size=1, max_size=12))
def test_columns_equal_lines_on_random_lines(rows):
    """Random combinations of the values that decide between the two paths: one result."""
    lines = [f'{prefix}{ip} - {user} [{when}] "{request}" {status} 1 "-" "UA/1.0"{tail}' for ip, user, when, request, status, tail, prefix in rows]
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert_columns_read_as_lines(monkeypatch, "\n".join(lines))
