"""Every fix is a unified diff that GNU patch applies, after which the lint and nginx -t pass."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from runbook.configs import lint_paths
from tests.configs.conftest import DATA, SAMPLES, apply_patch, assert_haproxy_accepts, assert_nginx_accepts

pytestmark = pytest.mark.real


def lab_copy(scenario: str, tmp_path: Path) -> Path:
    """A lab nginx.conf with its run folder moved under tmp_path, so nginx -t can open its logs."""
    text = (SAMPLES / scenario / "nginx.conf").read_text()
    run_dir = tmp_path / "run"
    text = re.sub(r"/tmp/ws-runbook-lab-[^/]+", str(run_dir), text)
    for sub in ("nginx/logs", "nginx/temp"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    return conf


def apply_all(report, target: Path) -> int:
    """Apply each distinct diff of the report's findings (findings of one block share one)."""
    diffs = list(dict.fromkeys(f.fix for f in report.findings if f.fix))
    for diff in diffs:
        apply_patch(target, diff)
    return len(diffs)


@pytest.mark.parametrize(("source", "heartbeat"), [
    ("nginx/reference-broken.conf", None), ("nginx/inherit.conf", 20.0), ("nginx/keepalive.conf", 30.0),
    ("nginx/map-wrong.conf", 30.0), ("nginx/reference-fixed.conf", 90.0)])
def test_nginx_fixes_apply_and_pass(source, heartbeat, tmp_path):
    """Patched with its own diffs, the config has no finding left but infos and nginx -t accepts it."""
    target = tmp_path / Path(source).name
    shutil.copy(DATA / source, target)
    before = lint_paths([str(target)], heartbeat_s=heartbeat)
    assert any(f.severity != "info" for f in before.findings)
    assert apply_all(before, target) >= 1
    after = lint_paths([str(target)], heartbeat_s=heartbeat)
    assert [f for f in after.findings if f.severity != "info"] == []
    assert after.upgrade_forwarded is True
    assert_nginx_accepts(target, tmp_path)


@pytest.mark.parametrize(("scenario", "heartbeat"), [("proxy_missing_upgrade", None), ("proxy_timeout", 90.0)])
def test_lab_fixes_apply_and_pass(scenario, heartbeat, tmp_path):
    """The lab's broken configs, fixed by the lint's diffs, are clean and valid nginx."""
    conf = lab_copy(scenario, tmp_path)
    assert_nginx_accepts(conf, tmp_path)
    before = lint_paths([str(conf)], heartbeat_s=heartbeat)
    assert apply_all(before, conf) == 2  # two WebSocket locations, one corrected block each
    after = lint_paths([str(conf)], heartbeat_s=heartbeat)
    assert [f for f in after.findings if f.severity == "error"] == []
    assert_nginx_accepts(conf, tmp_path)


def test_fix_keeps_inherited_headers(tmp_path):
    """The corrected block repeats the server-level headers it would otherwise hide."""
    target = tmp_path / "inherit.conf"
    shutil.copy(DATA / "nginx/inherit.conf", target)
    apply_all(lint_paths([str(target)], heartbeat_s=20), target)
    block = target.read_text().split("location /socket.io/", 1)[1]
    for header in ("Host $host", "X-Forwarded-For $proxy_add_x_forwarded_for", "Upgrade $http_upgrade", 'Connection "upgrade"',
                   "X-Request-Id $request_id"):
        assert f"proxy_set_header {header};" in block


def test_fix_uses_the_map_when_there_is_one(tmp_path):
    """With a correct map $http_upgrade in the config, the fix sends $connection_upgrade."""
    conf = lab_copy("proxy_timeout", tmp_path)
    text = conf.read_text().replace("proxy_set_header Connection $connection_upgrade;", "proxy_set_header Connection close;", 1)
    conf.write_text(text)
    report = lint_paths([str(conf)])
    (finding,) = [f for f in report.findings if f.check == "NGX003"]
    assert "+            proxy_set_header Connection $connection_upgrade;" in finding.fix


@pytest.mark.parametrize(("source", "heartbeat"), [("haproxy/without-tunnel.cfg", None), ("haproxy/with-tunnel.cfg", 7200.0)])
def test_haproxy_fixes_apply_and_pass(source, heartbeat, tmp_path):
    """The tunnel-timeout diffs apply, leave no warning or error, and haproxy -c accepts the result."""
    target = tmp_path / Path(source).name
    shutil.copy(DATA / source, target)
    before = lint_paths([str(target)], heartbeat_s=heartbeat)
    assert apply_all(before, target) >= 1
    after = lint_paths([str(target)], heartbeat_s=heartbeat)
    assert [f for f in after.findings if f.severity != "info"] == []
    assert_haproxy_accepts(target)


def test_ingress_fix_adds_annotations(tmp_path):
    """An Ingress without annotations gets an annotations mapping with the read timeout."""
    target = tmp_path / "ingress.yaml"
    shutil.copy(DATA / "ingress/without-annotations.yaml", target)
    before = lint_paths([str(target)], heartbeat_s=90)
    assert sorted(f.check for f in before.findings) == ["ING001", "ING003"]
    apply_all(before, target)
    after = lint_paths([str(target)], heartbeat_s=90)
    assert after.findings == []
    assert after.path_timeouts[0].seconds == 3600


@pytest.mark.real
def test_fix_in_an_included_file(tmp_path):
    """A wrong directive that comes from a snippet is corrected in the snippet itself."""
    (tmp_path / "snippets").mkdir()
    (tmp_path / "snippets/ws.conf").write_text("proxy_http_version 1.0;\nproxy_set_header Upgrade $http_upgrade;\n"
                                               "proxy_set_header Connection upgrade;\nproxy_read_timeout 1h;\nproxy_buffering off;\n")
    site = tmp_path / "site.conf"
    site.write_text("server {\n    listen 127.0.0.1:18104;\n    location /ws {\n        proxy_pass http://127.0.0.1:9000;\n"
                    f"        include {tmp_path / 'snippets/ws.conf'};\n    }}\n}}\n")
    (finding,) = lint_paths([str(site)], heartbeat_s=20).findings
    assert finding.check == "NGX001" and finding.line == 3 and "(" + str(tmp_path / "snippets/ws.conf") + ":1)" in finding.message
    assert finding.fix.startswith(f"--- {tmp_path / 'snippets/ws.conf'}\n")
    apply_patch(tmp_path / "snippets/ws.conf", finding.fix)
    assert lint_paths([str(site)], heartbeat_s=20).findings == []
    assert_nginx_accepts(site, tmp_path)


@pytest.mark.real
def test_crlf_config_fix_applies(tmp_path):
    """A config saved with Windows line ends keeps its line numbers and takes its fix."""
    target = tmp_path / "broken.conf"
    target.write_bytes((DATA / "nginx/reference-broken.conf").read_bytes().replace(b"\n", b"\r\n"))
    before = lint_paths([str(target)])
    assert {f.line for f in before.findings} == {9}
    apply_all(before, target)
    assert [f for f in lint_paths([str(target)]).findings if f.severity == "error"] == []
    assert_nginx_accepts(target, tmp_path)
