"""Library logs read by their message strings (python websockets, tornado, Node ws, Socket.IO, Go,
browsers) and the generic fallback."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runbook.logs import detect_format, parse_log
from tests.logs.accounting import assert_nothing_lost

FORMATS_DIR = Path(__file__).resolve().parents[2] / "data" / "formats"


def test_real_python_websockets_log():
    """The log a real websockets 17 server and client wrote at DEBUG: every lifecycle line read."""
    data = (FORMATS_DIR / "python-websockets.log").read_bytes()
    result = parse_log(data, "python-websockets.log")
    assert result.format == "python_websockets" and result.malformed_count == 0
    frame = result.frame
    assert (frame["event"] == "connect").sum() == 4 and (frame["event"] == "disconnect").sum() == 5
    keepalive = frame[frame["reason"].str.contains("keepalive ping timeout")]
    assert set(keepalive["code"]) == {1011} and "server" in set(keepalive["closed_by"].dropna())
    assert frame["reason"].str.fullmatch("no close frame received or sent").sum() == 1
    assert frame.loc[frame["reason"] == "no close frame received or sent", "code"].tolist() == [1006]
    assert frame["reason"].str.startswith("handshake failed: server rejected the upgrade: HTTP 426").sum() == 1
    assert frame["reason"].str.contains("server rejected WebSocket connection: HTTP 502").sum() == 1
    assert frame["ts"].notna().all()  # traceback lines take the time of the line that started them
    assert_nothing_lost(result, data)


def test_real_tornado_jupyter_log():
    """tornado's access line of each upgrade and Jupyter Server's "WebSocket ping timeout after N ms."."""
    data = (FORMATS_DIR / "tornado.log").read_bytes()
    result = parse_log(data, "tornado.log", timezone="UTC")
    assert result.format == "tornado"
    frame = result.frame
    assert (frame["event"] == "connect").sum() == 3 and frame["client_ip"].dropna().eq("127.0.0.1").all()
    timeout = frame[frame["event"] == "disconnect"].iloc[0]
    assert timeout["code"] == 1011 and timeout["reason"].startswith("WebSocket ping timeout after")
    assert_nothing_lost(result, data)


NODE_LOG = """\
2026-11-30T16:00:00.000Z info: listening on 8080
2026-11-30T16:00:01.000Z error: Error: Unexpected server response: 502
    at ClientRequest.<anonymous> (/app/node_modules/ws/lib/websocket.js:913:7)
    at ClientRequest.emit (node:events:519:28)
2026-11-30T16:00:02.000Z error: Error: Opening handshake has timed out
2026-11-30T16:00:03.000Z error: RangeError: Invalid WebSocket frame: RSV1 must be clear
2026-11-30T16:00:04.000Z warn: socket Xk3_aBcD disconnected: transport close
2026-11-30T16:00:05.000Z warn: socket Yq9_zZzz disconnected: ping timeout
2026-11-30T16:00:06.000Z info: socket Yq9_zZzz disconnected: client namespace disconnect
"""


def test_node_ws_and_socketio_reasons():
    """ws error strings and Socket.IO disconnect reasons, with the socket id; stacks are ignored lines."""
    result = parse_log(NODE_LOG, "node.log")
    assert result.format == "node_ws"
    frame = result.frame
    assert frame["reason"].tolist() == [
        "Unexpected server response: 502",
        "handshake failed: opening handshake has timed out",
        "Invalid WebSocket frame: RSV1 must be clear",
        "transport close",
        "ping timeout",
        "client namespace disconnect",
    ]
    assert frame["code"].tolist()[2] == 1002
    assert frame["connection_id"].tolist()[3:5] == ["Xk3_aBcD", "Yq9_zZzz"]
    assert frame["closed_by"].tolist()[5] == "client"
    assert (result.ignored_lines, result.malformed_count) == (3, 0)
    assert_nothing_lost(result, NODE_LOG)


GO_LOG = """\
2026/11/30 16:00:00 listening on :8080
2026/11/30 16:00:01 read error: websocket: close 1006 (abnormal closure): unexpected EOF
2026/11/30 16:00:02 read error: websocket: close 1001 (going away)
2026/11/30 16:00:03 upgrade: websocket: the client is not using the websocket protocol: 'upgrade' token not found in 'Connection' header
2026/11/30 16:00:04 dial: websocket: bad handshake
2026/11/30 16:00:05 read: failed to get reader: status = StatusGoingAway and reason = "server restarting"
2026/11/30 16:00:06 dial: failed to WebSocket dial: expected handshake response status code 101 but got 502
"""


def test_go_gorilla_and_coder_errors():
    """gorilla CloseError texts give their code; coder's StatusCode names map to numbers."""
    result = parse_log(GO_LOG, "go.log", timezone="-05:00")
    assert result.format == "go_websocket"
    frame = result.frame
    assert frame["code"].tolist()[:2] == [1006, 1001] and frame["code"].tolist()[4] == 1001
    assert frame["event"].tolist() == ["disconnect", "disconnect", "error", "error", "disconnect", "error"]
    assert frame["reason"].tolist()[2].startswith("handshake failed: websocket: the client is not using")
    assert frame["ts"].iloc[0] == pd.Timestamp("2026-11-30T21:00:01Z")
    assert_nothing_lost(result, GO_LOG)


BROWSER = """\
index.js:42 WebSocket connection to 'wss://chat.example.com/ws' failed: Error during WebSocket handshake: Unexpected response code: 400
WebSocket connection to 'wss://chat.example.com/ws' failed:
WebSocket is closed before the connection is established.
Firefox can’t establish a connection to the server at wss://chat.example.com/ws.
The connection to wss://chat.example.com/ws was interrupted while the page was loading.
WebSocket connection to 'wss://chat.example.com/ws' failed: There was a bad response from the server.
app.js:88 socket closed CloseEvent {isTrusted: true, wasClean: false, code: 1006, reason: '', type: 'close'}
Download the React DevTools for a better development experience
"""


def test_browser_console_export():
    """Chrome, Firefox and Safari strings; lines without a time still count (lifetimes unknown)."""
    result = parse_log(BROWSER, "console.txt")
    assert result.format == "browser_console"
    reasons = result.frame["reason"].tolist()
    assert reasons[0] == "handshake failed: Unexpected response code: 400 (wss://chat.example.com/ws)"
    assert reasons[1] == "connection failed: no detail (wss://chat.example.com/ws)"
    assert reasons[3].startswith("connection failed: can't establish")
    assert result.frame["code"].tolist()[4] == 1001
    assert result.frame["ts"].isna().all()
    assert result.frame["code"].tolist()[-1] == 1006  # the CloseEvent app code logged
    assert (result.records, result.ignored_lines) == (7, 1)
    assert_nothing_lost(result, BROWSER)


def test_generic_fallback_reads_unknown_logs():
    """Close codes in context, ping timeouts, lifetimes and ids in a log no format knows."""
    text = """\
Nov 30 16:00:00 host app[12]: starting
2026-11-30T16:00:01Z conn_id=a1b2c3 ws closed code=1006 duration=61.5s
[2026-11-30 16:00:02] socket 7f3e9a01 closed (1011) after 60012ms
2026-11-30T16:00:03Z client 10.0.0.9 pong timeout, terminating
2026-11-30T16:00:04Z user logged in
websocket connection closed: close 1000
"""
    assert detect_format(text) == "generic"
    result = parse_log(text, "app.log")
    frame = result.frame
    assert result.format == "generic" and result.confidence is not None
    assert frame["code"].tolist()[:2] == [1006, 1011] and pd.isna(frame["code"].iloc[2])
    assert frame["duration_s"].tolist()[:2] == [61.5, pytest.approx(60.012)]
    assert frame["connection_id"].tolist()[:2] == ["a1b2c3", "7f3e9a01"]
    assert "pong timeout" in frame["reason"].iloc[2] and frame["reason"].str.startswith("[generic]").all()
    assert pd.isna(frame["ts"].iloc[3]) is False and frame["code"].iloc[3] == 1000  # timestamp carried forward
    assert (result.records, result.ignored_lines) == (4, 2)
    assert_nothing_lost(result, text)


def test_generic_needs_some_signal():
    """Prose without codes or phrases stays unreadable, with its first lines in the message."""
    result = parse_log("hello world\nthe cat sat on the mat\n", "notes.txt")
    assert result.format is None and "first lines: hello world | the cat sat on the mat" in result.error


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 10**8), st.sampled_from([1000, 1001, 1006, 1011, 1012, 4000]),
                  st.from_regex(r"[A-Za-z0-9]{6,12}", fullmatch=True)),
        min_size=1, max_size=15,
    )
)
def test_gorilla_round_trip(rows):
    """Go log lines carrying gorilla close errors parse back to the same times and codes."""
    base = pd.Timestamp("2020-01-01")
    lines = [
        f"{(base + pd.Timedelta(seconds=s)).strftime('%Y/%m/%d %H:%M:%S')} conn {cid}: websocket: close {code} (x): unexpected EOF"
        for s, code, cid in rows
    ]
    result = parse_log("\n".join(lines), "go.log", format="go_websocket")
    assert result.frame["code"].tolist() == [code for _, code, _ in rows]
    assert result.frame["ts"].tolist() == [(base + pd.Timedelta(seconds=s)).tz_localize("UTC") for s, _, _ in rows]


def test_real_chrome_console():
    """What a real headless Chromium printed (produce_browser.py): failures and app-logged CloseEvents."""
    data = (FORMATS_DIR / "chrome-console.log").read_bytes()
    result = parse_log(data, "chrome-console.log")
    assert result.format == "browser_console" and result.ignored_lines == 0
    reasons = result.frame["reason"].tolist()
    assert any(r.startswith("handshake failed: Unexpected response code: 502") for r in reasons)
    assert any(r.startswith("handshake failed: WebSocket is closed before the connection is established") for r in reasons)
    assert any("ERR_CONNECTION_REFUSED" in r for r in reasons)
    closes = result.frame[result.frame["event"] == "disconnect"]
    assert sorted(closes["code"].tolist()) == [1000, 1006, 1006, 1006]
    assert_nothing_lost(result, data)


def test_real_har():
    """Playwright's HAR of the same page: upgraded sessions are connects, the others failures."""
    data = (FORMATS_DIR / "chrome.har").read_bytes()
    result = parse_log(data, "chrome.har")
    assert result.format == "har"
    frame = result.frame
    assert (frame["event"] == "connect").sum() == 2 and (frame["event"] == "error").sum() == 3
    assert frame.loc[frame["event"] == "connect", "reason"].str.contains("frames, the last at").all()
    assert_nothing_lost(result, data)
    broken = parse_log('{"log": {"creator": {}, "entries": [\n', "broken.har", format="har")
    assert broken.malformed_count == 1 and "JSON does not parse" in broken.malformed_examples[0].problem
    assert_nothing_lost(broken, '{"log": {"creator": {}, "entries": [\n')


def test_older_library_strings_and_debug_traces():
    """websockets < 10 ConnectionClosed texts, socket.io DEBUG traces, app disconnect lines, Heroku router."""
    old_python = (
        "Unexpected exception in keepalive ping task\n"
        "Traceback (most recent call last):\n"
        '  File "/srv/venv/websockets/protocol.py", line 984, in keepalive_ping\n'
        "websockets.exceptions.ConnectionClosed: WebSocket connection is closed: code = 1006 (connection closed abnormally [internal]), no reason\n"
    )
    result = parse_log(old_python, "py.log")
    assert result.format == "python_websockets" and result.frame["code"].tolist() == [1006]
    socketio = (
        "Disconnected: Qw3rTy_uIoP12345\n"
        "  socket.io:client client close with reason transport close +2s\n"
        "  socket.io:socket closing socket - reason transport close +2s\n"
    )
    result = parse_log(socketio, "sio.log")
    assert result.format == "node_ws"
    assert result.frame["reason"].tolist() == ["[generic] Disconnected: Qw3rTy_uIoP12345", "transport close"]
    assert result.frame["connection_id"].tolist()[0] == "Qw3rTy_uIoP12345"
    heroku = (
        '2026-11-30T10:00:00+00:00 heroku[router]: at=info method=GET path="/cable" host=a.herokuapp.com '
        'request_id=1 fwd="198.51.100.1" dyno=web.1 connect=1ms service=55012ms status=101 bytes=900\n'
    )
    row = parse_log(heroku, "heroku.log", format="generic").frame.iloc[0]
    assert row["event"] == "disconnect" and row["duration_s"] == pytest.approx(55.012)
    tornado_warning = "[W 261130 16:40:19 websocket:1392] The websocket_ping_timeout (1000) cannot be longer than the websocket_ping_interval (500).\n"
    assert parse_log(tornado_warning, "t.log", format="generic").records == 0  # "(1000)" beside no close word


def test_real_node_ws_and_socketio_log():
    """Real ws 8 errors and Socket.IO 4 reasons (produce_node.py); the DEBUG trace of a close folds into the app's line."""
    data = (FORMATS_DIR / "node-ws.log").read_bytes()
    result = parse_log(data, "node-ws.log")
    assert result.format == "node_ws" and result.malformed_count == 0
    frame = result.frame
    reasons = frame.loc[frame["event"] == "disconnect", "reason"].tolist()
    for reason in ("client namespace disconnect", "transport close", "ping timeout", "server shutting down"):
        assert reasons.count(reason) == 1, reason
    closes = frame[frame["reason"].isin(["transport close", "ping timeout"])]
    assert closes["connection_id"].notna().all()  # joined to their "connected" lines by socket id
    assert set(closes["connection_id"]) <= set(frame.loc[frame["event"] == "connect", "connection_id"])
    errors = frame.loc[frame["event"] == "error", "reason"].tolist()
    assert errors[0] == "Unexpected server response: 502" and "opening handshake has timed out" in errors[1]
    assert_nothing_lost(result, data)


def test_two_closes_with_ids_are_never_folded():
    """A mass disconnect: adjacent Socket.IO closes with the same reason and their own ids all count."""
    text = "\n".join(f"2026-11-30T16:00:00.000Z warn: socket s{k}Abc123 disconnected: transport close" for k in range(5))
    assert parse_log(text, "sio.log").records == 5


def test_keepalive_timeout_logged_twice_counts_once():
    """At DEBUG one keepalive timeout shows as the pong timeout and the handler's error: one row.
    At INFO (no DEBUG line) the error alone is the row; two timeouts stay two."""
    data = (FORMATS_DIR / "python-websockets.log").read_text()
    frame = parse_log(data, "p.log").frame
    assert frame["reason"].str.contains("keepalive ping timeout").sum() == 1
    info_only = "\n".join(line for line in data.splitlines() if " DEBUG " not in line)
    frame = parse_log(info_only, "p.log", format="python_websockets").frame
    assert frame["reason"].str.contains("keepalive ping timeout").sum() == 1
    two = (
        "2026-11-30 16:00:00,000 DEBUG websockets.server: - timed out waiting for keepalive pong\n"
        "2026-11-30 16:00:00,001 DEBUG websockets.server: - timed out waiting for keepalive pong\n"
        "2026-11-30 16:00:01,000 ERROR websockets.server: connection handler failed\n"
        "websockets.exceptions.ConnectionClosedError: sent 1011 (internal error) keepalive ping timeout; no close frame received\n"
    )
    frame = parse_log(two, "p.log", format="python_websockets").frame
    assert frame["reason"].tolist() == [
        "sent 1011 (internal error) keepalive ping timeout; no close frame received",
        "keepalive ping timeout (timed out waiting for pong)",
    ]


def test_urls_in_reasons_lose_their_query():
    """A token in a WebSocket URL's query never reaches a reason (reasons reach the report)."""
    line = "WebSocket connection to 'wss://a.example/ws?token=SECRET123' failed: Error during WebSocket handshake: Unexpected response code: 403\n"
    assert "SECRET123" not in parse_log(line, "c.log").frame["reason"].iloc[0]


def test_generic_reasons_lose_url_queries():
    """The generic reader quotes its line in the reason, without any URL's query."""
    line = "2026-11-30T16:00:00Z ws closed code=1006 url=wss://a.example/ws?access_token=SECRET456&x=1 after reconnect\n"
    reason = parse_log(line, "g.log", format="generic").frame["reason"].iloc[0]
    assert "SECRET456" not in reason and "wss://a.example/ws" in reason


def test_dotnet_close_without_handshake_is_1006():
    """.NET's WebSocketException for a peer gone without a close frame reads as a 1006 close."""
    line = ("2026-11-30 16:00:00.123 +00:00 [ERR] System.Net.WebSockets.WebSocketException (0x80004005): "
            "The remote party closed the WebSocket connection without completing the close handshake.\n")
    row = parse_log(line, "app.log", format="generic").frame.iloc[0]
    assert (row["event"], row["code"]) == ("disconnect", 1006)
