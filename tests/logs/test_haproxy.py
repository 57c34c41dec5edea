"""HAProxy HTTP and TCP logs: the real recording, termination states, syslog prefix, malformed lines."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runbook.logs import columnar, haproxy, parse_log
from tests.logs.accounting import assert_nothing_lost

FORMATS_DIR = Path(__file__).resolve().parents[2] / "data" / "formats"


@pytest.mark.parametrize("name", ["haproxy-http.log", "haproxy-tcp.log"])
def test_real_haproxy_logs(name):
    """The logs a real HAProxy wrote (produce_haproxy.py): 3 idle sessions cut by cD, nothing lost."""
    data = (FORMATS_DIR / name).read_bytes()
    result = parse_log(data, name)
    assert result.format == "haproxy" and result.confidence >= 0.9 and result.malformed_count == 0
    cut = result.frame[result.frame["reason"].fillna("").str.startswith("haproxy cD")]
    assert len(cut) == 3 and (cut["code"] == 1006).all() and (cut["closed_by"] == "proxy").all()
    assert cut["duration_s"].between(1.9, 2.5).all()  # timeout client 2s
    assert_nothing_lost(result, data)


def test_http_failed_upgrade_and_user_agent_capture():
    """A 426 on the WebSocket path is a failed handshake; the captured User-Agent is kept."""
    result = parse_log((FORMATS_DIR / "haproxy-http.log").read_bytes(), "h.log")
    errors = result.frame[result.frame["event"] == "error"]
    assert errors["reason"].tolist() == ["handshake failed: HTTP 426 on /ws/chat (haproxy ----)"] * 2
    assert set(result.frame["user_agent"]) == {"http-clean/1.0", "http-idle/1.0", "http-drop/1.0", "curl/8.5.0"}


def test_termination_states_syslog_prefix_and_time():
    """sD/CD/SD map to who closed; the time is accept date + Tt in log_timezone; XFF capture wins."""
    lines = [
        'Nov 30 16:00:00 lb1 haproxy[812]: 10.0.0.1:5000 [30/Nov/2026:16:00:00.000] fe be/s1 0/0/1/2/60000 101 100 - - sD-- 1/1/1/1/0 0/0 {203.0.113.7} "GET /ws HTTP/1.1"',
        '10.0.0.1:5001 [30/Nov/2026:16:00:01.500] fe be/s1 0/0/1/2/1500 101 100 - - CD-- 1/1/1/1/0 0/0 "GET /ws HTTP/1.1"',
        '10.0.0.1:5002 [30/Nov/2026:16:00:02.000] fe be/s1 0/0/1/2/300 101 100 - - SD-- 1/1/1/1/0 0/0 "GET /ws HTTP/1.1"',
        '10.0.0.1:5003 [30/Nov/2026:16:00:03.000] fe be/<NOSRV> 0/-1/-1/-1/0 503 217 - - SC-- 1/1/0/0/0 0/0 "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1"',
        '10.0.0.1:5004 [30/Nov/2026:16:00:04.000] fe be/s1 0/0/1/2/3 200 100 - - ---- 1/1/1/1/0 0/0 "GET /index.html HTTP/1.1"',
        '10.0.0.1:5005 [30/Nov/2026:16:00:05.000] fe be/s1 0/0/1/2/3 nope',
        "[NOTICE]   (1) : New worker (8) forked",
    ]
    text = "\n".join(lines)
    result = parse_log(text, "haproxy.log", timezone="Europe/Berlin")
    frame = result.frame
    assert result.format == "haproxy"
    assert frame["closed_by"].tolist()[:3] == ["proxy", "client", "server"]
    assert frame["client_ip"].tolist()[0] == "203.0.113.7"
    assert frame["ts"].iloc[0] == pd.Timestamp("2026-11-30T15:01:00Z")  # 16:00 CET + 60 s
    assert frame["reason"].iloc[3] == "handshake failed: HTTP 503 on /socket.io/ (haproxy SC--)"
    assert (result.records, result.ignored_lines, result.malformed_count) == (4, 2, 1)
    assert_nothing_lost(result, text)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 10**8),
            st.integers(0, 10**7),
            st.sampled_from(["--", "cD", "sD", "CD", "SD"]),
            st.booleans(),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_round_trip(rows):
    """Sessions rendered as HAProxy HTTP or TCP lines parse back to the same records."""
    base = pd.Timestamp("2020-01-01")
    lines = []
    for seconds, total_ms, state, tcp in rows:
        accept = (base + pd.Timedelta(seconds=seconds)).strftime("%d/%b/%Y:%H:%M:%S.000")
        if tcp:
            lines.append(f"192.0.2.1:4000 [{accept}] fe be/s 0/0/{total_ms} 10 {state} 1/1/1/1/0 0/0")
        else:
            lines.append(f'192.0.2.1:4000 [{accept}] fe be/s 0/0/0/1/{total_ms} 101 10 - - {state}-- 1/1/1/1/0 0/0 "GET /ws HTTP/1.1"')
    result = parse_log("\n".join(lines), "h.log", format="haproxy")
    assert len(result.frame) == len(rows)
    for (seconds, total_ms, state, _), (_, row) in zip(rows, result.frame.iterrows()):
        assert row["ts"] == (base + pd.Timedelta(seconds=seconds, milliseconds=total_ms)).tz_localize("UTC")
        assert row["duration_s"] == pytest.approx(total_ms / 1000)
        assert pd.isna(row["code"]) if state == "--" else row["code"] == 1006


# --- the columnar reading (runbook/logs/columnar.py) gives what the line reader gives ------------


def assert_columns_read_as_lines(monkeypatch, text, timezone=None) -> None:
    """The same text parsed with the columnar path and line by line (no string views): identical."""
    fast = parse_log(text, "h.log", format="haproxy", timezone=timezone)
    with monkeypatch.context() as patch:
        patch.setattr(columnar, "available", lambda: False)
        slow = parse_log(text, "h.log", format="haproxy", timezone=timezone)
    for name in ("error", "lines_total", "ignored_lines", "malformed_count", "record_lines", "malformed_examples"):
        assert getattr(fast, name) == getattr(slow, name), name
    pd.testing.assert_frame_equal(fast.frame, slow.frame, check_exact=True)


_MIXED = [
    'Nov 30 16:00:00 lb1 haproxy[812]: 10.0.0.1:5000 [30/Nov/2026:16:00:00.000] fe be/s1 0/0/1/2/60000 101 100 - - sD-- 1/1/1/1/0 0/0 {203.0.113.7} "GET /ws HTTP/1.1"',
    '2026-11-30T16:00:00+01:00 lb haproxy[1]: [::1]:5001 [30/Nov/2026:16:00:01.5] fe be/s1 0/0/1/2/+1500 101 100 - - CD-- 1/1/1/1/0 0/0 {curl/8.5|10.0.0.9, 10.0.0.1} {x} "GET /ws HTTP/1.1"',
    '10.0.0.1:5002 [29/Mar/2026:02:30:00.123456] fe be/s1 0/0/1/2/-1 101 100 - - cR-- 1/1/1/1/0 0/0 "GET /ws HTTP/1.1"',
    '10.0.0.1:5003 [25/Oct/2026:02:30:00] fe be/<NOSRV> 0/-1/-1/-1/0 503 217 - - SC-- 1/1/0/0/0 0/0 "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1"',
    '10.0.0.1:5004 [30/Nov/2026:16:00:04.000] fe be/s1 0/0/1/2/3 200 100 - - ---- 1/1/1/1/0 0/0 "GET /index.html HTTP/1.1"',
    '10.0.0.1:5005 [31/Nov/2026:16:00:05.000] fe be/s1 0/0/1/2/3 101 100 - - ---- 1/1/1/1/0 0/0 "GET /ws HTTP/1.1"',
    '10.0.0.1:5006 [30/Nov/2026:16:00:06.1234567] fe be/s1 0/0/1/2/3 101 100 - - ---- 1/1/1/1/0 0/0 "GET /ws HTTP/1.1"',
    '10.0.0.1:5007 [30/Nov/2026:16:00:07] fe be/s1 0/0/1/2/99999999999999 101 100 - - KD-- 1/1/1/1/0 0/0 {é} "GET /ws HTTP/1.1"',
    '127.0.0.1:53490 [30/Nov/2026:16:37:19.544] ws_tcp chat_tcp/app1 1/0/2004 303 cD 3/3/2/2/0 0/0',
    '127.0.0.1:53491 [30/Nov/2026:16:37:19.544] ws_tcp chat_tcp/app1 1/0/2004 303 xx 3/3/2/2/0 0/0  ',
    '10.0.0.1:5008 [30/Nov/2026:16:00:08.000] fe be/s1 0/0/1/2/3 0101 100 - - ---- 1/1/1/1/0 0/0 "GET /ws',
    '10.0.0.1:5009 [30/Nov/2026:16:00:09.000] fe be/s1 0/0/1/2/3 nope',
    "[NOTICE]   (1) : New worker (8) forked",
    "",
]


@pytest.mark.parametrize("timezone", [None, "Europe/Berlin", "-05:00"])
def test_columns_are_the_line_readers_records(monkeypatch, timezone):
    """Prefixes, captures, DST gaps and overlaps, TCP lines, odd states and broken lines: the
    columnar path and the line reader give one frame, counts and examples."""
    assert_columns_read_as_lines(monkeypatch, "\n".join(_MIXED) + "\n", timezone)
    for name in ("haproxy-http.log", "haproxy-tcp.log"):
        assert_columns_read_as_lines(monkeypatch, (FORMATS_DIR / name).read_bytes(), timezone)


def test_most_lines_are_read_as_columns(monkeypatch):
    """A real HAProxy log is read as columns, not line by line (the speed of issue 11)."""
    read = []
    original = haproxy.FORMAT.read_columns

    def spy(table, zone):
        columns = original(table, zone)
        read.append(len(columns.rows))
        return columns

    monkeypatch.setattr(haproxy.FORMAT, "read_columns", spy)
    result = parse_log((FORMATS_DIR / "haproxy-http.log").read_bytes(), "h.log", format="haproxy")
    assert read == [result.records] and result.records > 0  # every record
