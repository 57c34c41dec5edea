"""`ws-runbook lab` and `ws-runbook demo` as a user runs them: real subprocesses, real signals."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from websockets.asyncio.client import connect

from runbook.lab.session import run_demo
from runbook.logs import parse_log
from tests.lab.conftest import need_full_lab, need_nginx

pytestmark = pytest.mark.real

WS_RUNBOOK = [sys.executable, "-m", "runbook"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def ws_runbook(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*WS_RUNBOOK, *args], capture_output=True, text=True, timeout=timeout,
                          env=ENV, check=False)


def listening(port: int) -> bool:
    return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
               for c in psutil.net_connections(kind="tcp"))


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_lab_list_names_each_scenario_and_its_cause():
    """`lab list` prints every scenario with the root cause it reproduces."""
    result = ws_runbook("lab", "list")
    assert result.returncode == 0, result.stderr
    for name, cause in [("healthy", "none"), ("proxy_missing_upgrade", "proxy"),
                        ("proxy_timeout", "proxy"), ("heartbeat_missing", "heartbeat"),
                        ("network_idle_drop", "network"), ("resource_leak", "resource_leak"),
                        ("client_reconnect_storm", "client")]:
        assert f"{name}: " in result.stdout
        block = result.stdout.split(f"{name}: ", 1)[1]
        assert f"true cause: {cause}" in block.split("\n")[1]


def test_lab_unknown_scenario_exits_2_with_the_list():
    """An unknown scenario is a usage error that lists the known ones."""
    result = ws_runbook("lab", "serve", "nginx_is_sad")
    assert result.returncode == 2
    assert "unknown scenario 'nginx_is_sad'" in result.stderr and "proxy_timeout" in result.stderr


def test_lab_scenario_serves_until_ctrl_c_and_prints_the_runbook_parameters(tmp_path):
    """`lab SCENARIO` prints ready-to-paste runbook parameters for a live lab and stops it all on
    Ctrl-C: the server pid ends and no port stays open."""
    need_full_lab()
    process = subprocess.Popen(
        [*WS_RUNBOOK, "lab", "proxy_timeout", "--fast", "--clients", "4", "--run-dir",
         str(tmp_path / "run"), "--max-seconds", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
            if line.startswith("clients: "):
                break
        command = next(line.strip() for line in lines if line.strip().startswith("ws-runbook run "))
        argv = shlex.split(command)
        params = {argv[i + 1]: argv[i + 2] for i, word in enumerate(argv) if word == "-p"}
        assert set(params) == {"target_url", "direct_url", "server_port", "server_pid",
                               "close_logs", "proxy_config"}
        pid, port = int(params["server_pid"]), int(params["server_port"])
        assert psutil.Process(pid).is_running() and listening(port)
        assert params["direct_url"] == f"ws://127.0.0.1:{port}/ws/chat"
        assert all(Path(log).is_file() for log in json.loads(params["close_logs"]))
        assert "proxy_read_timeout 3s;" in Path(params["proxy_config"]).read_text()
        proxy_port = int(params["target_url"].split(":")[2].split("/")[0])

        async def handshake() -> str:
            async with connect(params["target_url"], open_timeout=3) as ws:
                return ws.response.status_code

        assert asyncio.run(handshake()) == 101
        assert any(line.startswith("proxy: nginx") for line in lines)
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, "".join(lines) + rest
    assert "stopping: interrupted" in rest and "stopped every lab process" in rest
    assert gone(pid) and not listening(port) and not listening(proxy_port)


def test_lab_record_writes_a_sample_folder_with_its_true_cause(tmp_path):
    """`lab record` saves the logs the servers wrote, lab-run.json and a README naming the cause;
    a log nobody wrote to is left out and said so."""
    need_full_lab()
    out = tmp_path / "sample"
    result = ws_runbook("lab", "record", "proxy_missing_upgrade", "--out", str(out), "--fast",
                        "--seconds", "3", "--clients", "6")
    assert result.returncode == 0, result.stderr
    assert "proxy: nginx" in result.stdout
    readme = (out / "README.md").read_text()
    assert readme.startswith("# Sample `proxy_missing_upgrade`")
    assert "Root cause ids (DESIGN.md): `proxy`." in readme
    # The Node server never saw a WebSocket: its monitor wrote nothing.
    assert not (out / "server.log").exists() and "`server.log`" in readme
    parsed = parse_log((out / "close-log.jsonl").read_text(), "close-log.jsonl")
    assert parsed.ok and parsed.malformed_count == 0
    assert (parsed.frame["event"] == "error").sum() > 0
    access = (out / "access.log").read_text()
    assert " 505 " in access and " 426 " in access
    manifest = json.loads((out / "lab-run.json").read_text())
    assert manifest["trueCauses"] == ["proxy"] and manifest["proxyUsed"].startswith("nginx")
    assert manifest["command"].startswith("ws-runbook lab record proxy_missing_upgrade")


def test_demo_runs_the_runbook_on_a_live_lab_well_under_a_minute(tmp_path):
    """`ws-runbook demo` stages the proxy timeout, writes a degraded report ranking the proxy
    first, names the proxy it used and stops every lab process, all well under a minute."""
    need_nginx()
    started = time.monotonic()
    result = ws_runbook("demo", "--output-dir", str(tmp_path / "demo"), timeout=120)
    wall = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert wall < 50, wall
    out = result.stdout
    assert "proxy: nginx" in out and f"report: {tmp_path / 'demo' / 'report.html'}" in out
    document = json.loads((tmp_path / "demo" / "diagnosis.json").read_text())
    assert document["incident_id"] == "demo-proxy-timeout"
    assert document["verdict"] == "degraded"
    assert document["ranked_causes"][0]["cause"] == "proxy"
    # It names the true cause: the logs, the probes and the config together single the proxy out.
    assert document["leading_cause"] == "proxy" and "cause: proxy (" in out
    steps = {step["step"]: step["status"] for step in document["steps"]}
    assert steps["close_logs"] == "ok"
    # The live lab's parameters reached the runbook: the server it ran on is gone now.
    pid = int(out.split(", pid ", 1)[1].split()[0])
    assert gone(pid)
    assert (tmp_path / "demo" / "lab" / "python" / "close-log.jsonl").stat().st_size > 0


def test_demo_flow_falls_back_to_the_relay_and_says_so(tmp_path):
    """With the built-in relay as proxy the demo flow still runs and every line names it."""
    seen: dict = {}

    def fake_runbook(params, output_dir):
        seen.update(params)
        return "ran"

    lines: list[str] = []
    result = run_demo(fake_runbook, tmp_path, lab_seconds=4, proxy="relay", echo=lines.append)
    assert result.outcome == "ran" and result.proxy_used.startswith("built-in relay")
    assert any(line.strip().startswith("proxy: built-in relay") for line in lines)
    assert "proxy_config" not in seen  # no nginx, no nginx.conf
    records = [json.loads(line) for line in Path(seen["close_logs"][0]).read_text().splitlines()]
    cut = [r for r in records if r["event"] == "disconnect" and r["code"] == 1006]
    assert cut and all(2.5 <= r["duration"] / 1000 <= 4.0 for r in cut)
    assert gone(seen["server_pid"]) and not listening(seen["server_port"])
