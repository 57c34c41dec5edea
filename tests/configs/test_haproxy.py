"""HAProxy lint on real configs: with and without timeout tunnel, removed options, stripped upgrades."""

from __future__ import annotations

import pytest

from runbook.configs import in_memory, lint_paths
from runbook.configs.haproxy import haproxy_seconds
from tests.configs.conftest import DATA, assert_haproxy_accepts

pytestmark = pytest.mark.real

WITH, WITHOUT = str(DATA / "haproxy/with-tunnel.cfg"), str(DATA / "haproxy/without-tunnel.cfg")


@pytest.mark.parametrize("name", ["with-tunnel.cfg", "without-tunnel.cfg"])
def test_samples_are_valid_haproxy(name):
    """Both samples pass the real haproxy -c."""
    assert_haproxy_accepts(DATA / "haproxy" / name)


def test_with_tunnel_is_clean():
    """timeout tunnel 1h with client-fin/server-fin: no finding; the tunnel is the path timeout."""
    report = lint_paths([WITH], heartbeat_s=30)
    assert report.kind == "haproxy" and report.findings == [] and report.upgrade_forwarded is True
    (timeout,) = report.path_timeouts
    assert (timeout.setting, timeout.seconds, timeout.line, timeout.kind) == ("timeout tunnel", 3600, 12, "idle")
    assert report.websocket_locations == [f"{WITH}:20 backend chat (matched by a backend with servers: HAProxy tunnels every upgrade)"]


def test_without_tunnel_falls_back_to_client_server():
    """Without timeout tunnel the 30 s client/server timeouts cut idle WebSockets: a warning, an error past the heartbeat."""
    unknown = lint_paths([WITHOUT])
    assert [(f.check, f.severity, f.line) for f in unknown.findings] == [("HAP001", "warning", 17)]
    assert "timeout server (line 11, 30 s)" in unknown.findings[0].message
    assert "+    timeout tunnel 3600s" in unknown.findings[0].fix
    late = lint_paths([WITHOUT], heartbeat_s=45)
    assert [(f.check, f.severity) for f in late.findings] == [("HAP002", "error")]
    assert "30 s, 15 s short of the 45 s heartbeat" in late.findings[0].message
    assert [(t.setting, t.seconds) for t in late.path_timeouts] == [("timeout server", 30)]


def test_tunnel_below_heartbeat_and_fin_timeouts():
    """A tunnel timeout under the heartbeat is an error; a long one without *-fin timeouts is an info."""
    cfg = "defaults\n    mode http\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel {tunnel}\n" \
          "listen ws\n    bind 127.0.0.1:18100\n    server s1 127.0.0.1:9000\n"
    short = _lint(cfg.format(tunnel="20s"), heartbeat_s=25)
    assert [f.check for f in short.findings] == ["HAP002"]
    long = _lint(cfg.format(tunnel="2h"), heartbeat_s=25)
    assert [f.check for f in long.findings] == ["HAP003"]
    assert "timeout client-fin 30s" in long.findings[0].fix


def test_removed_options_and_frontend_tunnel(tmp_path):
    """option forceclose / http-tunnel (refused by HAProxy 2.x), tunnel in a frontend, close options."""
    cfg = ("defaults\n    mode http\n    timeout client 30s\n    timeout server 30s\n"
           "frontend fe\n    bind 127.0.0.1:18101\n    timeout tunnel 1h\n    option forceclose\n    option httpclose\n    default_backend be\n"
           "backend be\n    timeout tunnel 1h\n    server s1 127.0.0.1:9000\n")
    report = _lint(cfg)
    found = {(f.check, f.line) for f in report.findings}
    assert {("HAP006", 8), ("HAP007", 7), ("HAP008", 9)} <= found
    assert report.upgrade_forwarded is False


def test_stripped_upgrade_header():
    """http-request del-header Upgrade (the lab's HAProxy upgrade fault) is an error with a delete diff."""
    cfg = ("defaults\n    mode http\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel 1h\n"
           "frontend fe\n    bind 127.0.0.1:18102\n    http-request del-header Upgrade\n    default_backend be\n"
           "backend be\n    server s1 127.0.0.1:9000\n")
    report = _lint(cfg)
    (stripped,) = [f for f in report.findings if f.check == "HAP009"]
    assert stripped.severity == "error" and stripped.line == 8
    assert "-    http-request del-header Upgrade" in stripped.fix
    assert report.upgrade_forwarded is False


def test_mode_tcp_is_noted():
    cfg = "defaults\n    timeout client 1h\n    timeout server 1h\nlisten raw\n    bind 127.0.0.1:18103\n    server s1 127.0.0.1:9000\n"
    report = _lint(cfg)
    assert "HAP005" in {f.check for f in report.findings}


def test_time_values():
    """HAProxy times default to milliseconds."""
    assert haproxy_seconds("5000") == 5 and haproxy_seconds("30s") == 30 and haproxy_seconds("1h") == 3600
    assert haproxy_seconds("1m30s") is None


def _lint(text: str, heartbeat_s=None):
    source = in_memory({"haproxy.cfg": text})
    return lint_paths(["haproxy.cfg"], read=source.read, glob=source.glob, heartbeat_s=heartbeat_s)


ROUTED = """defaults
    mode http
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:18106
    acl is_chat path_beg /ws/chat
    use_backend chat if is_chat
    use_backend api if { path_beg /api }
    default_backend web
backend chat
    timeout tunnel 1h
    timeout server-fin 30s
    server a 127.0.0.1:9001
backend api
    server b 127.0.0.1:9002
backend web
    server c 127.0.0.1:9003
"""


def test_target_path_picks_the_backend(tmp_path):
    """With target_url's path, only the backend HAProxy routes it to is checked, and the rule says so."""
    conf = tmp_path / "routed.cfg"
    conf.write_text(ROUTED)
    assert_haproxy_accepts(conf)
    chat = lint_paths([str(conf)], heartbeat_s=40, target_path="/ws/chat/room1")
    assert chat.websocket_locations == [f"{conf}:11 backend chat (matched by the path of target_url (/ws/chat/room1))"]
    assert [f.check for f in chat.findings] == []
    web = lint_paths([str(conf)], heartbeat_s=40, target_path="/socket")
    assert [(f.check, f.line) for f in web.findings] == [("HAP002", 17)]
    every = lint_paths([str(conf)], heartbeat_s=40)
    assert len(every.websocket_locations) == 3


def test_upgrade_acl_marks_the_websocket_backend():
    """A backend chosen by an acl on the Upgrade header is the WebSocket backend."""
    cfg = ROUTED.replace("acl is_chat path_beg /ws/chat", "acl is_ws hdr(Upgrade) -i websocket").replace("if is_chat", "if is_ws")
    report = _lint(cfg, heartbeat_s=40)
    assert [label.split(" (matched by ")[1] for label in report.websocket_locations] == ["an acl on the Upgrade header)"]
