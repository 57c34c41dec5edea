"""ss / netstat snapshots and the server-state CSV: state rows, not log rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runbook.logs import combine_states, parse_log
from runbook.observations import STATE_COLUMNS
from tests.logs.accounting import assert_nothing_lost

FORMATS_DIR = Path(__file__).resolve().parents[2] / "data" / "formats"


def _series(state: pd.DataFrame, metric: str) -> list[float]:
    return state.loc[state["metric"] == metric, "value"].tolist()


@pytest.mark.parametrize("name", ["ss-snapshots.txt", "netstat-snapshots.txt"])
def test_real_snapshots_show_close_wait_growth(name):
    """Three snapshots of a real leaking server (produce_state.py): CLOSE_WAIT 40, 80, 120."""
    data = (FORMATS_DIR / name).read_bytes()
    result = parse_log(data, name)
    assert result.format == "sockets" and result.records == 0 and result.malformed_count == 0
    state = result.state
    assert dict(state.dtypes.astype(str)) == STATE_COLUMNS
    assert _series(state, "tcp_CLOSE_WAIT") == [40, 80, 120]
    assert _series(state, "tcp_ESTABLISHED") == [5, 10, 15]
    assert state["ts"].notna().all() and state["ts"].is_monotonic_increasing
    assert_nothing_lost(result, data)


def test_real_state_csv():
    """The corpus layout: RSS, fds, threads and socket counts per sample time."""
    data = (FORMATS_DIR / "server-state.csv").read_bytes()
    result = parse_log(data, "server-state.csv")
    assert result.format == "state_csv" and result.malformed_count == 0
    state = result.state
    assert _series(state, "tcp_CLOSE_WAIT") == [40, 80, 120]
    rss = _series(state, "rss_bytes")
    assert rss == sorted(rss) and rss[0] > 1e6
    assert state.loc[state["metric"] == "rss_bytes", "port"].isna().all()
    assert state.loc[state["metric"] == "tcp_CLOSE_WAIT", "port"].notna().all()
    assert_nothing_lost(result, data)


def test_csv_variants_and_malformed_rows():
    """Epoch times, RSS in KiB, a pid column; bad rows counted with the reason."""
    text = "\n".join(
        [
            "epoch,pid,rss_kib,open_fds,num_threads,cpu",
            "1795845600,812,10240,100,4,0.5",
            "1795845660000,812,20480,200,4,0.7",  # epoch milliseconds
            "1795845720,812,lots,300,4,0.9",
            "1795845780,812,30720",
        ]
    )
    result = parse_log(text, "state.csv")
    assert result.format == "state_csv"
    state = result.state
    assert _series(state, "rss_bytes") == [10240 * 1024, 20480 * 1024]
    assert state["ts"].tolist()[::3] == [pd.Timestamp(1795845600, unit="s", tz="UTC"), pd.Timestamp(1795845660, unit="s", tz="UTC")]
    assert result.malformed_count == 2 and "fields where the header has" in str(result.malformed_examples[1])
    assert_nothing_lost(result, text)


def test_macos_and_windows_netstat_and_naive_date():
    """macOS ports after a dot, Windows LISTENING; a naive time line is read in log_timezone."""
    text = "\n".join(
        [
            "2026-11-30 17:00:00",
            "Proto Recv-Q Send-Q  Local Address          Foreign Address        (state)",
            "tcp4       0      0  10.0.0.5.8080          10.0.0.9.51234         ESTABLISHED",
            "tcp4       1      0  10.0.0.5.8080          10.0.0.9.51235         CLOSE_WAIT",
            "tcp4       0      0  *.8080                 *.*                    LISTEN",
            "  TCP    0.0.0.0:9090           0.0.0.0:0              LISTENING",
            "  TCP    10.0.0.5:9090          10.0.0.7:50000         CLOSE_WAIT",
            "udp4       0      0  *.5353                 *.*",
            "tcp4       0      0  garbage",
        ]
    )
    result = parse_log(text, "netstat.txt", timezone="Europe/Berlin")
    state = result.state
    close_wait = state[state["metric"] == "tcp_CLOSE_WAIT"].set_index("port")["value"].to_dict()
    assert close_wait == {8080: 1, 9090: 1}
    assert (state["ts"] == pd.Timestamp("2026-11-30T16:00:00Z")).all()
    assert (result.ignored_lines, result.malformed_count) == (1, 1)
    assert_nothing_lost(result, text)


def test_combine_states_orders_sources_by_time():
    """State frames of several files combine on one timeline, each row keeping its source."""
    ss = parse_log((FORMATS_DIR / "ss-snapshots.txt").read_bytes(), "ss.txt")
    csv = parse_log((FORMATS_DIR / "server-state.csv").read_bytes(), "state.csv")
    combined = combine_states([ss, csv])
    assert len(combined) == len(ss.state) + len(csv.state)
    assert combined["ts"].is_monotonic_increasing and set(combined["source"]) == {"ss.txt", "state.csv"}


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**8), st.integers(0, 10**10), st.integers(0, 10**5)), min_size=1, max_size=20))
def test_csv_round_trip(rows):
    """Values written as the corpus CSV parse back unchanged."""
    base = pd.Timestamp("2020-01-01T00:00:00Z")
    lines = ["ts,port,rss_bytes,fds,threads,tcp_ESTABLISHED,tcp_CLOSE_WAIT"]
    lines += [f"{(base + pd.Timedelta(seconds=s)).isoformat()},8080,{rss},{fds},1,0,{fds}" for s, rss, fds in rows]
    state = parse_log("\n".join(lines), "s.csv", format="state_csv").state
    assert _series(state, "rss_bytes") == [rss for _, rss, _ in rows]
    assert _series(state, "tcp_CLOSE_WAIT") == [fds for _, _, fds in rows]
    assert state.loc[state["metric"] == "fds", "ts"].tolist() == [base + pd.Timedelta(seconds=s) for s, _, _ in rows]


def test_server_gauge_in_log_lines_gives_open_connections():
    """A server log line carrying its own gauge (activeConnections, open_connections=) adds state rows."""
    text = "\n".join(
        [
            '{"ts": "2026-11-28T03:00:01Z", "event": "disconnect", "code": 1006, "activeConnections": 41}',
            '{"ts": "2026-11-28T03:00:02Z", "event": "connect", "activeConnections": 42}',
        ]
    )
    result = parse_log(text, "server.jsonl")
    assert result.format == "jsonlines" and result.records == 2
    assert _series(result.state, "open_connections") == [41, 42]
    plain = parse_log("2026-11-28 03:00:05 INFO stats open_connections=17 rss=1.2G\n", "app.log", format="generic")
    assert _series(plain.state, "open_connections") == [17]


def test_a_proxy_log_carries_no_server_gauge():
    """A proxy logs requests, not the server's own gauge: a user agent (attacker-controlled) that
    reads "connections=99" in an access log adds no open-connection row."""
    line = ('198.51.100.{n} - - [28/Nov/2026:03:00:0{n} +0000] "GET /ws/chat HTTP/1.1" 101 854 "-" '
            '"probe connections=99" rt=60.007 uct="0.000" uht="0.001" urt="60.007"')
    result = parse_log("\n".join(line.format(n=n) for n in range(1, 4)), "access.log")
    assert result.format == "nginx_access" and result.records == 3
    assert result.state is None or result.state.empty


def test_pasted_state_counts_and_lsof_rows():
    """Per-state counts as pasted from awk or uniq -c, and lsof rows, count without a port."""
    awk = "TIME_WAIT 12\nCLOSE_WAIT 950\nESTABLISHED 140\nLISTEN 1\n"
    uniq = "   4100 CLOSE_WAIT\n   3900 ESTABLISHED\n      1 LISTEN\n"
    lsof = (
        "node 4242 app 31u IPv4 9001 0t0 TCP 10.1.1.5:8080->10.1.1.9:40123 (CLOSE_WAIT)\n"
        "node 4242 app 32u IPv4 9002 0t0 TCP 10.1.1.5:8080->10.1.1.9:40124 (CLOSE_WAIT)\n"
        "node 4242 app 20u IPv4 9000 0t0 TCP *:8080 (LISTEN)\n"
    )
    for text, close_wait, port in ((awk, 950, None), (uniq, 4100, None), (lsof, 2, 8080)):
        result = parse_log(text, "paste.txt")
        assert result.format == "sockets"
        rows = result.state[result.state["metric"] == "tcp_CLOSE_WAIT"]
        assert rows["value"].tolist() == [close_wait]
        assert (rows["port"].isna().all() if port is None else rows["port"].tolist() == [port])
        assert_nothing_lost(result, text)


def test_gauge_lines_found_in_bytes_as_in_split_lines():
    """A log still held as bytes is searched for the gauge's words without being split: the same
    state rows as from its lines, whatever the line (first, last without a newline, two words,
    bytes that are not UTF-8, a gauge line with no stamp of its own)."""
    from runbook.logs.common import LogText, lines_with, to_log_text
    from runbook.logs.lines import gauge_states

    data = (b'{"ts": "2026-11-28T03:00:01Z", "activeConnections": 41, "openConnections": 40}\n'
            b"2026-11-28T03:00:02Z plain line\n"
            b"2026-11-28T03:00:03Z \xff\xfe stats open_connections=17\n"
            b"stats without a stamp clientsCount: 9\n"
            b"2026-11-28T03:00:05Z connections: 12")
    text = to_log_text(data)
    assert isinstance(text, LogText)
    assert list(lines_with(text, (b"onnections", b"clientsCount"))) == [
        line for line in text.lines() if "onnections" in line or "clientsCount" in line]
    fresh = to_log_text(data)
    state = gauge_states(fresh, "server.log")
    assert fresh._lines is None  # found without splitting the log
    assert _series(state, "open_connections") == [41, 17, 9, 12]
    pd.testing.assert_frame_equal(state, gauge_states(list(text.lines()), "server.log"))
