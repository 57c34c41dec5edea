"""Envoy, Traefik and AWS ALB access logs (lines written to each product's documented format)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runbook.logs import balancers, columnar, parse_log
from tests.logs.accounting import assert_nothing_lost

ENVOY = "\n".join(
    [
        '[2026-11-30T16:00:00.000Z] "GET /ws/chat HTTP/1.1" 101 SI 120 3400 300000 - "203.0.113.7" "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) Mobile/15E148" "req-1" "chat.example.com" "10.0.0.5:8080"',
        '[2026-11-30T16:00:01.000Z] "GET /ws/chat HTTP/1.1" 101 UC 10 20 1500 - "203.0.113.8" "curl/8.5.0" "req-2" "chat.example.com" "10.0.0.5:8080"',
        '[2026-11-30T16:00:02.000Z] "GET /ws/chat HTTP/1.1" 101 - 10 20 2500 - "-" "-" "req-3" "chat.example.com" "10.0.0.5:8080"',
        '[2026-11-30T16:00:03.000Z] "GET /ws/chat HTTP/1.1" 503 UH 0 19 0 - "-" "-" "req-4" "chat.example.com" "-"',
        '[2026-11-30T16:00:04.000Z] "GET /healthz HTTP/1.1" 200 - 0 2 1 1 "-" "kube-probe/1.30" "req-5" "chat" "10.0.0.5:8080"',
        '[2026-11-30T16:00:05.000Z] "GET /ws/chat',
    ]
)


def test_envoy_response_flags():
    """SI is Envoy's idle timer (proxy), UC the upstream; the end is START_TIME + DURATION."""
    result = parse_log(ENVOY, "envoy.log")
    frame = result.frame
    assert result.format == "envoy"
    assert frame["closed_by"].tolist()[:2] == ["proxy", "server"] and pd.isna(frame["closed_by"].iloc[2])
    assert frame["reason"].iloc[0] == "envoy SI: stream idle timeout" and frame["code"].iloc[0] == 1006
    assert frame["ts"].iloc[0] == pd.Timestamp("2026-11-30T16:05:00Z") and frame["duration_s"].iloc[0] == 300
    assert bool(frame["is_mobile"].iloc[0]) and frame["client_ip"].iloc[0] == "203.0.113.7"
    assert frame["reason"].iloc[3] == "handshake failed: HTTP 503 on /ws/chat (envoy UH)"
    assert (result.records, result.ignored_lines, result.malformed_count) == (4, 1, 1)
    assert_nothing_lost(result, ENVOY)


TRAEFIK = "\n".join(
    [
        '{"ClientHost":"203.0.113.9","DownstreamStatus":101,"Duration":180001000000,"OriginStatus":101,"RequestMethod":"GET","RequestPath":"/ws","StartUTC":"2026-11-30T16:00:00.5Z","request_User-Agent":"Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0","level":"info","msg":"","time":"2026-11-30T16:03:00Z"}',
        '{"ClientHost":"203.0.113.9","DownstreamStatus":502,"Duration":2000000,"RequestPath":"/socket.io/?EIO=4&transport=websocket","StartUTC":"2026-11-30T16:03:01Z","level":"info"}',
        '{"ClientHost":"203.0.113.9","DownstreamStatus":200,"Duration":2000000,"RequestPath":"/","StartUTC":"2026-11-30T16:03:02Z"}',
        '{"ClientHost":"203.0.113.9","DownstreamStatus":101,"Duration":',
        'time="2026-11-30T16:00:00Z" level=info msg="Configuration loaded from flags."',
    ]
)


def test_traefik_json_access_log():
    """A 101 lasts Duration (ns) from StartUTC; a 502 on a socket.io upgrade is a failed handshake."""
    result = parse_log(TRAEFIK, "traefik.json")
    frame = result.frame
    assert result.format == "traefik"
    assert frame["duration_s"].iloc[0] == pytest.approx(180.001)
    assert frame["ts"].iloc[0] == pd.Timestamp("2026-11-30T16:03:00.501Z")
    assert frame["reason"].iloc[1] == "handshake failed: HTTP 502 on /socket.io/"
    assert (result.records, result.ignored_lines, result.malformed_count) == (2, 2, 1)
    assert_nothing_lost(result, TRAEFIK)


def _alb(kind, end, status, path, created):
    return (
        f'{kind} {end} app/my-lb/50dc6c495c0c9188 198.51.100.4:52000 10.0.0.5:8080 0.000 0.001 0.000 {status} {status} 34 366 '
        f'"GET {"wss" if kind == "wss" else "https"}://chat.example.com:443{path} HTTP/1.1" "Mozilla/5.0 (Windows NT 10.0) Chrome/131.0" '
        f'ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/tg/73e2d6bc24d8a067 '
        f'"Root=1-58337262-36d228ad5d99923122bbe354" "chat.example.com" "arn:aws:acm:us-east-1:123456789012:certificate/x" '
        f'0 {created} "forward" "-" "-" "10.0.0.5:8080" "101" "-" "-"'
    )


def test_aws_alb_websocket_entries():
    """wss entries: duration = time - request_creation_time (60 s idle timeout shows)."""
    text = "\n".join(
        [
            _alb("wss", "2026-11-30T16:01:00.000000Z", 101, "/ws", "2026-11-30T16:00:00.000000Z"),
            _alb("https", "2026-11-30T16:01:01.000000Z", 502, "/ws", "2026-11-30T16:01:01.000000Z"),
            _alb("https", "2026-11-30T16:01:02.000000Z", 200, "/index.html", "2026-11-30T16:01:02.000000Z"),
            "wss 2026-11-30T16:01:03.000000Z app/my-lb/1 truncated",
        ]
    )
    result = parse_log(text, "alb.log")
    frame = result.frame
    assert result.format == "aws_alb"
    assert frame["duration_s"].iloc[0] == 60 and frame["client_ip"].iloc[0] == "198.51.100.4"
    assert frame["reason"].iloc[1] == "handshake failed: HTTP 502 on /ws"
    assert (result.records, result.ignored_lines, result.malformed_count) == (2, 1, 1)
    assert_nothing_lost(result, text)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**8), st.integers(0, 10**8), st.sampled_from(["-", "SI", "UC", "DC"])), min_size=1, max_size=15))
def test_envoy_round_trip(rows):
    """Sessions rendered as Envoy default-format lines parse back to the same end times and flags."""
    base = pd.Timestamp("2020-01-01T00:00:00Z")
    lines = [
        f'[{(base + pd.Timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%S.000Z")}] "GET /ws HTTP/1.1" 101 {flag} 1 2 {ms} - "-" "-" "-" "h" "u"'
        for s, ms, flag in rows
    ]
    frame = parse_log("\n".join(lines), "e.log", format="envoy").frame
    assert frame["ts"].tolist() == [base + pd.Timedelta(seconds=s, milliseconds=ms) for s, ms, _ in rows]
    assert frame["code"].isna().tolist() == [flag == "-" for _, _, flag in rows]


# --- the columnar reading (runbook/logs/columnar.py) gives what the line reader gives ------------


def assert_columns_read_as_lines(monkeypatch, text, format, timezone=None) -> None:
    """The same text parsed with the columnar path and line by line (no string views): identical."""
    fast = parse_log(text, "b.log", format=format, timezone=timezone)
    with monkeypatch.context() as patch:
        patch.setattr(columnar, "available", lambda: False)
        slow = parse_log(text, "b.log", format=format, timezone=timezone)
    for name in ("error", "lines_total", "ignored_lines", "malformed_count", "record_lines", "malformed_examples"):
        assert getattr(fast, name) == getattr(slow, name), name
    pd.testing.assert_frame_equal(fast.frame, slow.frame, check_exact=True)


_ENVOY_MORE = [
    '[2026-03-29T02:30:00.5] "GET /ws HTTP/1.1" 101 SI,UC 1 2 1500 - "-" "-" "-" "h" "u"',  # naive, in a DST gap
    '[2026-10-25T02:30:00.123456789+02:00] "GET /ws HTTP/1.1" 101 XX,DC 1 2 - - " 203.0.113.1 , x" "ua" "" "h" "u"',
    '[2026-11-30T16:00:00Z] "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1" 502 - 1 2 3 - "," "-" "id" "h" "u"',
    '[2026-11-30T16:00:00+0200] "GET /ws HTTP/1.1" 101 - 1 2 3 - "-" "-" "-" "h" "u"',
    '[2026-02-30T16:00:00Z] "GET /ws HTTP/1.1" 101 - 1 2 3 - "-" "-" "-" "h" "u"',
    '[2026-11-30T16:00:00Z] "GET /ws HTTP/1.1" 101 - 1 2 99999999999999 - "-" "-" "-" "h" "u"',
    'nginx-1  | [2026-11-30T16:00:00Z] "GET /ws HTTP/1.1" 101 UC 1 2 3 - "-" "é" "-" "h" "u"',
]


@pytest.mark.parametrize("timezone", [None, "Europe/Berlin"])
def test_columns_are_the_line_readers_records(monkeypatch, timezone):
    """Envoy, Traefik and ALB: the columnar path and the line reader give one frame, counts and examples."""
    assert_columns_read_as_lines(monkeypatch, ENVOY + "\n" + "\n".join(_ENVOY_MORE), "envoy", timezone)
    traefik_more = TRAEFIK + "\n" + "\n".join([
        '{"DownstreamStatus":101,"Duration":1.5e9,"RequestPath":"/ws","StartLocal":"2026-03-29T02:30:00","request_X-Request-Id":7}',
        '{"DownstreamStatus":"101","Duration":true,"RequestPath":"/ws","StartUTC":"","time":"2026-11-30T16:00:00Z"}',
        '{"DownstreamStatus":101.0,"Duration":-5,"RequestPath":"/ws","StartUTC":"2026-11-30T16:00:00.0000005Z"}',
        '{"DownstreamStatus":101,"Duration":100000000000000000000,"RequestPath":"/ws","StartUTC":"2026-11-30T16:00:00Z"}',
        'prefix {"DownstreamStatus":502,"RequestPath":"/ws","StartUTC":"2026-11-30T16:00:00Z","ClientHost":"x"}',
        '["DownstreamStatus", 101]',
    ])
    assert_columns_read_as_lines(monkeypatch, traefik_more, "traefik", timezone)
    alb = [
        _alb("wss", "2026-11-30T16:01:00.000000Z", 101, "/ws", "2026-11-30T16:00:00.000000Z"),
        _alb("ws", "2026-10-25T02:30:00.123456789", 101, "/ws", "2026-10-25T02:00:00.5"),
        _alb("wss", "2026-11-30T16:01:00.000000Z", 101, "/ws", "2026-11-30T16:00:00"),  # naive and aware: a TypeError
        _alb("https", "2026-11-30T16:01:01.000000Z", 502, "/socket.io/?transport=websocket", "-"),
        _alb("https", "2026-11-30T16:01:02.000000Z", 200, "", "-"),
        _alb("wss", "2026-11-30T16:01:03.000000Z", 426, "/x", "-"),
        "wss 2026-11-30T16:01:03.000000Z app/my-lb/1 truncated",
    ]
    assert_columns_read_as_lines(monkeypatch, "\n".join(alb[:2] + alb[3:]), "aws_alb", timezone)
    assert_columns_read_as_lines(monkeypatch, "\n".join(alb), "aws_alb", timezone)  # the TypeError, on both paths


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.integers(-10**18, 10**18).map(lambda ns: ns / 1e6), st.floats(-1e12, 1e12, allow_nan=False),
                 st.integers(-10**9, 10**9).map(lambda k: (k + 0.5) / 1000)))
def test_timedelta_of_milliseconds_as_cpython_rounds_it(milliseconds):
    """The columnar StartUTC + Duration adds exactly the microseconds datetime.timedelta would."""
    delta = dt.timedelta(milliseconds=milliseconds)
    expected = (delta.days * 86400 + delta.seconds) * 10**6 + delta.microseconds
    assert balancers._timedelta_us(np.array([milliseconds]))[0] == expected
