"""Property tests: records rendered in a format's own line layout parse back to the same records.

(nginx access, HAProxy, Envoy, Go and the state CSV have theirs beside their other tests.)
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runbook.logs import parse_log

BASE = pd.Timestamp("2020-01-01T00:00:00Z")
SECONDS = st.integers(0, 10**8)
IPS = st.from_regex(r"(?:[1-9][0-9]?)\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}", fullmatch=True)
IDS = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{6,20}[0-9]", fullmatch=True)
CODES = st.sampled_from([1000, 1001, 1006, 1008, 1011, 1012, 4001])


def _when(seconds: int) -> pd.Timestamp:
    return BASE + pd.Timedelta(seconds=seconds)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(SECONDS, st.integers(1, 10**6), IPS), min_size=1, max_size=15))
def test_nginx_error_round_trip(rows):
    """'upstream timed out ... while proxying upgraded connection' lines: time, connection, client."""
    lines = [
        f"{_when(s).strftime('%Y/%m/%d %H:%M:%S')} [info] 7#7: *{cid} upstream timed out (110: Connection timed out) "
        f'while proxying upgraded connection, client: {ip}, server: _, request: "GET /ws HTTP/1.1", host: "h"'
        for s, cid, ip in rows
    ]
    frame = parse_log("\n".join(lines), "e.log", format="nginx_error").frame
    assert frame["ts"].tolist() == [_when(s) for s, _, _ in rows]
    assert frame["connection_id"].tolist() == [str(cid) for _, cid, _ in rows]
    assert frame["client_ip"].tolist() == [ip for _, _, ip in rows]
    assert (frame["code"] == 1006).all() and (frame["closed_by"] == "proxy").all()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(SECONDS, st.sampled_from(["open", "closed"]), st.integers(0, 999)), min_size=1, max_size=15))
def test_python_websockets_round_trip(rows):
    """python logging lines 'connection open' / 'connection closed' with comma milliseconds."""
    lines = [
        f"{_when(s).strftime('%Y-%m-%d %H:%M:%S')},{ms:03d} INFO websockets.server: connection {what}"
        for s, what, ms in rows
    ]
    frame = parse_log("\n".join(lines), "p.log", format="python_websockets").frame
    assert frame["event"].tolist() == ["connect" if what == "open" else "disconnect" for _, what, _ in rows]
    assert frame["ts"].tolist() == [_when(s) + pd.Timedelta(milliseconds=ms) for s, _, ms in rows]


REASONS = st.sampled_from(["ping timeout", "transport close", "transport error", "server namespace disconnect"])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(SECONDS, IDS, REASONS), min_size=1, max_size=15))
def test_socketio_round_trip(rows):
    """'socket <id> disconnected: <reason>' app lines keep their id and reason, none folded."""
    lines = [f"{_when(s).isoformat()} warn: socket {sid} disconnected: {reason}" for s, sid, reason in rows]
    frame = parse_log("\n".join(lines), "n.log", format="node_ws").frame
    assert frame["connection_id"].tolist() == [sid for _, sid, _ in rows]
    assert frame["reason"].tolist() == [reason for _, _, reason in rows]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(SECONDS, st.integers(0, 10**13), IPS), min_size=1, max_size=15))
def test_traefik_round_trip(rows):
    """Traefik JSON: StartUTC + Duration (ns) is the end; Duration the lifetime."""
    lines = [
        json.dumps({"ClientHost": ip, "DownstreamStatus": 101, "Duration": ns, "RequestPath": "/ws",
                    "StartUTC": _when(s).strftime("%Y-%m-%dT%H:%M:%SZ")})
        for s, ns, ip in rows
    ]
    frame = parse_log("\n".join(lines), "t.log", format="traefik").frame
    assert frame["duration_s"].tolist() == pytest.approx([ns / 1e9 for _, ns, _ in rows])
    expected = [_when(s) + pd.Timedelta(microseconds=ns // 1000) for s, ns, _ in rows]
    assert [abs((a - b).total_seconds()) < 1e-3 for a, b in zip(frame["ts"], expected)] == [True] * len(rows)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(SECONDS, st.integers(0, 10**6), IPS), min_size=1, max_size=10))
def test_alb_round_trip(rows):
    """ALB wss entries: duration = time - request_creation_time, end at time."""
    lines = []
    for s, length, ip in rows:
        end, created = _when(s + length), _when(s)
        lines.append(
            f'wss {end.strftime("%Y-%m-%dT%H:%M:%S.%fZ")} app/lb/1 {ip}:5000 10.0.0.1:80 0.0 0.0 0.0 101 101 1 2 '
            f'"GET wss://h:443/ws HTTP/1.1" "ua" - - arn "Root=1-abc" "h" "-" 0 {created.strftime("%Y-%m-%dT%H:%M:%S.%fZ")} '
            f'"forward" "-" "-" "10.0.0.1:80" "101" "-" "-"'
        )
    frame = parse_log("\n".join(lines), "a.log", format="aws_alb").frame
    assert frame["duration_s"].tolist() == [float(length) for _, length, _ in rows]
    assert frame["client_ip"].tolist() == [ip for _, _, ip in rows]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(SECONDS, CODES, st.integers(0, 10**6), IDS), min_size=1, max_size=15))
def test_generic_round_trip(rows):
    """Unknown app lines 'conn_id=<id> ws closed code=<code> duration=<ms>ms' give code, lifetime and id."""
    lines = [f"{_when(s).isoformat()} conn_id={cid} ws closed code={code} duration={ms}ms" for s, code, ms, cid in rows]
    frame = parse_log("\n".join(lines), "g.log", format="generic").frame
    assert frame["code"].tolist() == [code for _, code, _, _ in rows]
    assert frame["duration_s"].tolist() == pytest.approx([ms / 1000 for _, _, ms, _ in rows])
    assert frame["connection_id"].tolist() == [cid for _, _, _, cid in rows]
    assert frame["ts"].tolist() == [_when(s) for s, _, _, _ in rows]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["ESTABLISHED", "CLOSE_WAIT", "TIME_WAIT"]), st.integers(0, 30)), min_size=1, max_size=5))
def test_netstat_snapshots_round_trip(snapshots):
    """netstat -tan snapshots rendered row by row count back to the same per-state numbers."""
    lines = []
    for index, counts in enumerate(snapshots):
        lines += [f"2026-11-30T16:{index:02d}:00Z", "Proto Recv-Q Send-Q Local Address Foreign Address State",
                  "tcp        0      0 0.0.0.0:8080            0.0.0.0:*               LISTEN"]
        for state, count in counts.items():
            lines += [f"tcp        0      0 10.0.0.5:8080           10.0.0.9:{40000 + k}         {state}" for k in range(count)]
    state = parse_log("\n".join(lines), "n.txt", format="sockets").state
    for index, counts in enumerate(snapshots):
        at = state[state["ts"] == pd.Timestamp(f"2026-11-30T16:{index:02d}:00Z")]
        got = dict(zip(at["metric"], at["value"]))
        for name, count in counts.items():
            assert got.get(f"tcp_{name}", 0) == count
