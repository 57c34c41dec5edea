"""nginx lint on real configs: Debian's default, the reference runbook's blocks, includes, maps."""

from __future__ import annotations

import pytest

from runbook.configs import in_memory, lint_paths
from runbook.configs.nginx import nginx_seconds
from tests.configs.conftest import DATA, assert_nginx_accepts

pytestmark = pytest.mark.real


def checks(report, severity=None):
    return sorted({f.check for f in report.findings if severity is None or f.severity == severity})


@pytest.mark.parametrize("name", ["debian/nginx.conf", "multi/nginx.conf", "nginx/reference-broken.conf", "nginx/reference-fixed.conf",
                                  "nginx/inherit.conf", "nginx/keepalive.conf", "nginx/map-wrong.conf"])
def test_samples_are_valid_nginx(name, tmp_path):
    """Every sample meant to be valid passes the real nginx -t."""
    assert_nginx_accepts(DATA / name, tmp_path)


def test_debian_default_has_nothing_to_proxy():
    """Debian's default config (three files via includes) parses cleanly and proxies nothing."""
    report = lint_paths([str(DATA / "debian/nginx.conf")])
    assert report.ok and report.kind == "nginx"
    assert [f.check for f in report.findings] == ["CFG003"]
    assert any(path.endswith("sites-enabled/default") for path in report.files)
    assert any(path.endswith("mime.types") for path in report.files)
    assert report.upgrade_forwarded is None and report.websocket_locations == []


def test_reference_broken_block():
    """The reference runbook's broken /ws location: HTTP/1.0, no Upgrade, no Connection, at its line."""
    report = lint_paths([str(DATA / "nginx/reference-broken.conf")])
    errors = [f for f in report.findings if f.severity == "error"]
    assert sorted(f.check for f in errors) == ["NGX001", "NGX002", "NGX003"]
    assert {f.line for f in errors} == {9}
    assert report.upgrade_forwarded is False
    assert report.websocket_locations == [f"{DATA / 'nginx/reference-broken.conf'}:9 location /ws (matched by common WebSocket path /ws)"]
    timeout = report.path_timeouts[0]
    assert (timeout.seconds, timeout.is_default, timeout.kind) == (60, True, "idle")


def test_reference_fixed_block():
    """The reference fix has no error; its explicit 60 s read timeout is compared with the heartbeat."""
    path = str(DATA / "nginx/reference-fixed.conf")
    assert checks(lint_paths([path]), "error") == []
    assert lint_paths([path]).upgrade_forwarded is True
    assert checks(lint_paths([path], heartbeat_s=25)) == []
    late = lint_paths([path], heartbeat_s=60)
    assert checks(late, "error") == ["NGX004"]
    assert "proxy_read_timeout is 60 s, 0 s short of the 60 s heartbeat" in late.findings[0].message
    assert late.path_timeouts[0].line == 25 and not late.path_timeouts[0].is_default


def test_includes_across_files_and_map_idiom():
    """Map in conf.d, site in sites-enabled, headers in a snippet: all followed, nothing wrong."""
    report = lint_paths([str(DATA / "multi/nginx.conf")], heartbeat_s=25)
    assert report.findings == []
    assert report.upgrade_forwarded is True
    assert len(report.files) == 5
    (location,) = report.websocket_locations
    assert "sites-enabled/chat:6 location /ws/ (matched by forwards $http_upgrade)" in location
    (timeout,) = report.path_timeouts
    assert timeout.seconds == 300 and timeout.file.endswith("sites-enabled/chat") and timeout.line == 4


def test_root_glob_lints_included_files_once():
    """A glob that names the root and its includes lints each location once."""
    report = lint_paths([str(DATA / "multi/**")], glob=lambda p: sorted(__import__("glob").glob(p, recursive=True)))
    assert len(report.websocket_locations) == 1


def test_nested_proxy_set_header_drops_inherited():
    """A location with one proxy_set_header of its own loses the server's Upgrade, Connection, Host..."""
    report = lint_paths([str(DATA / "nginx/inherit.conf")], heartbeat_s=20)
    assert checks(report) == ["NGX002", "NGX003", "NGX008"]
    upgrade = next(f for f in report.findings if f.check == "NGX002")
    assert "inherit.conf:10 but not inherited because this block has its own proxy_set_header" in upgrade.message
    dropped = next(f for f in report.findings if f.check == "NGX008")
    assert "Host, X-Forwarded-For" in dropped.message


def test_keepalive_clears_connection():
    """Connection "" (the upstream keepalive idiom) on a WebSocket location is named as such."""
    report = lint_paths([str(DATA / "nginx/keepalive.conf")], heartbeat_s=30)
    assert checks(report) == ["NGX009"]
    assert "upstream keepalive idiom for upstream rails" in report.findings[0].message
    assert report.upgrade_forwarded is False


def test_map_resolved_for_an_upgrade_request():
    """A map that gives 'close' to upgrade requests is an error, explained through the map's line."""
    report = lint_paths([str(DATA / "nginx/map-wrong.conf")], heartbeat_s=30)
    assert checks(report) == ["NGX003"]
    assert "gives 'close' for an upgrade request" in report.findings[0].message


def test_target_path_picks_the_location_nginx_would():
    """With target_url's path, the longest matching prefix is the WebSocket location, by that rule."""
    conf = """
server {
    listen 127.0.0.1:18097;
    location / { proxy_pass http://127.0.0.1:9000; }
    location /stream { proxy_pass http://127.0.0.1:9001; }
    location /stream/v2 { proxy_pass http://127.0.0.1:9002; proxy_http_version 1.1; }
}
"""
    report = lint_paths(["site.conf"], **_memory({"site.conf": conf}), target_path="/stream/v2/events")
    assert report.websocket_locations == ["site.conf:6 location /stream/v2 (matched by the path of target_url (/stream/v2/events))"]
    unnarrowed = lint_paths(["site.conf"], **_memory({"site.conf": conf}))
    assert len(unnarrowed.websocket_locations) == 3
    assert all("nothing narrows the WebSocket path" in label for label in unnarrowed.websocket_locations)


def test_http_level_settings_are_inherited():
    """Settings at http level reach the location; a server-level override wins over them."""
    conf = """
events {}
http {
    proxy_http_version 1.1;
    proxy_read_timeout 10m;
    server {
        listen 127.0.0.1:18098;
        proxy_read_timeout 20s;
        location /ws {
            proxy_pass http://127.0.0.1:9000;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection upgrade;
            proxy_buffering off;
        }
    }
}
"""
    report = lint_paths(["nginx.conf"], **_memory({"nginx.conf": conf}), heartbeat_s=30)
    assert checks(report) == ["NGX004"]
    assert "20 s, 10 s short of the 30 s heartbeat (nginx.conf:8)" in report.findings[0].message


def test_time_values():
    """nginx time syntax: bare seconds, units, and combinations."""
    assert nginx_seconds("90") == 90 and nginx_seconds("1m30s") == 90 and nginx_seconds("1h") == 3600
    assert nginx_seconds("500ms") == 0.5 and nginx_seconds("ten") is None and nginx_seconds("") is None


def _memory(files: dict[str, str]) -> dict:
    source = in_memory(files)
    return {"read": source.read, "glob": source.glob}


def test_stream_proxy_timeout():
    """A stream (TCP) proxy carries WebSockets too: its proxy_timeout (default 10m) meets the heartbeat.

    Lint only: Debian's nginx package builds the stream module as a separate package
    (libnginx-mod-stream), so nginx -t cannot load this config on a default install.
    """
    conf = "events {}\nstream {\n    proxy_timeout 30s;\n    server {\n        listen 127.0.0.1:18105;\n        proxy_pass 127.0.0.1:9000;\n    }\n}\n"
    report = lint_paths(["nginx.conf"], **_memory({"nginx.conf": conf}), heartbeat_s=45)
    (finding,) = report.findings
    assert (finding.check, finding.line) == ("NGX010", 4) and "30 s, 15 s short of the 45 s heartbeat (nginx.conf:3)" in finding.message
    assert "+        proxy_timeout 3600s;" in finding.fix
    assert report.websocket_locations[0].startswith("nginx.conf:4 stream server listen 127.0.0.1:18105")
    assert report.upgrade_forwarded is None
    default = lint_paths(["nginx.conf"], **_memory({"nginx.conf": conf.replace("    proxy_timeout 30s;\n", "")}), heartbeat_s=45)
    assert default.findings == [] and default.path_timeouts[0].seconds == 600 and default.path_timeouts[0].is_default
