"""`ws-runbook lint`: the real command, its JSON contract and its exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from tests.configs.conftest import DATA, SAMPLES, apply_patch

WS_RUNBOOK = [sys.executable, "-m", "runbook", "lint"]


def lint(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*WS_RUNBOOK, *args], capture_output=True, text=True, timeout=60, check=False)


def test_json_contract_and_exit_1_on_errors():
    """--json prints {"findings": [...]} with the DESIGN.md keys; an error finding exits 1."""
    path = str(SAMPLES / "proxy_missing_upgrade" / "nginx.conf")
    done = lint(path, "--json")
    assert done.returncode == 1, done.stderr
    findings = json.loads(done.stdout)["findings"]
    assert findings and all(set(f) == {"file", "line", "severity", "check", "message", "fix"} for f in findings)
    assert {(f["check"], f["line"]) for f in findings if f["severity"] == "error"} >= {("NGX001", 38), ("NGX002", 47)}


def test_clean_config_exits_0_and_prints_the_path():
    done = lint(str(DATA / "multi/nginx.conf"), "--heartbeat-s", "25")
    assert done.returncode == 0, done.stderr
    assert "no findings" in done.stdout and "location /ws/ (matched by forwards $http_upgrade)" in done.stdout
    assert "nginx proxy_read_timeout 300 s" in done.stdout


def test_heartbeat_target_url_and_preset_options():
    """--heartbeat-s turns the 60 s default into an error; --target-url narrows; --lb-preset adds the ALB."""
    path = str(SAMPLES / "healthy" / "nginx.conf")
    done = lint(path, "--json", "--heartbeat-s", "90", "--target-url", "ws://127.0.0.1:1/ws/live", "--lb-preset", "aws-alb")
    assert done.returncode == 1
    checks = {(f["check"], f["line"]) for f in json.loads(done.stdout)["findings"] if f["severity"] == "error"}
    assert checks == {("NGX004", 43), ("NGX004", 55), ("LB001", None)}  # /ws/chat forwards $http_upgrade too
    assert "location /ws/live (matched by the path of target_url (/ws/live))" in lint(path, "--target-url", "ws://h/ws/live").stdout


def test_text_fix_applies(tmp_path):
    """The diff printed under 'fix 1' is the one the JSON carries, and patch applies it."""
    target = tmp_path / "broken.conf"
    shutil.copy(DATA / "nginx/reference-broken.conf", target)
    text = lint(str(target)).stdout
    assert "fix 1 (NGX001, NGX002, NGX003, NGX005, NGX007):" in text
    (fix,) = {f["fix"] for f in json.loads(lint(str(target), "--json").stdout)["findings"]}
    assert fix.rstrip("\n") in text
    apply_patch(target, fix)
    assert lint(str(target)).returncode == 0


def test_bad_usage_exits_2():
    """A missing file, an unknown preset or a non-WebSocket URL: exit 2 with the reason on stderr."""
    missing = lint("/nonexistent/nginx.conf")
    assert missing.returncode == 2 and "cannot read: no such file or directory" in missing.stderr
    preset = lint(str(DATA / "multi/nginx.conf"), "--lb-preset", "alb")
    assert preset.returncode == 2 and "known presets: aws-alb" in preset.stderr
    url = lint(str(DATA / "multi/nginx.conf"), "--target-url", "http://example.test/ws")
    assert url.returncode == 2 and "did you mean ws://example.test/ws" in url.stderr
