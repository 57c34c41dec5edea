"""End to end: `ws-runbook run` executes the notebook with papermill and writes the three outputs.

These run the real notebook in a real kernel on the bundled samples (recorded from real servers)
and open the HTML report in real headless Chromium.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runbook.params import PARAMS
from runbook.report.outputs import validate_diagnosis

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data" / "samples"
WS_RUNBOOK = [sys.executable, "-m", "runbook"]

XSS_REASON = '<img src=x onerror="window.__xss=1">'
XSS_AGENT = "<script>window.__xss=2</script>Mozilla/5.0"


def ws_runbook(*args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*WS_RUNBOOK, *args], capture_output=True, text=True, timeout=600, cwd=cwd, env={**os.environ, **(env or {})}
    )


def load(out: Path) -> dict:
    document = json.loads((out / "diagnosis.json").read_text())
    validate_diagnosis(document)
    return document


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """One run with no input at all: the bundled sample incident."""
    out = tmp_path_factory.mktemp("sample")
    result = ws_runbook("run", "--output-dir", str(out))
    assert result.returncode == 0, result.stderr
    return out, result


def test_sample_run_diagnoses_the_proxy_timeout(sample_run):
    """With no input the runbook diagnoses the bundled proxy-timeout incident: degraded, proxy first."""
    out, result = sample_run
    document = load(out)
    assert document["verdict"] == "degraded"
    assert document["ranked_causes"][0]["cause"] == "proxy"
    assert [c["cause"] for c in document["ranked_causes"]][:2] == ["proxy", "heartbeat"]
    symptoms = {s["id"]: s["status"] for s in document["symptoms"]}
    assert symptoms["high_disconnect_rate"] == "present"
    assert symptoms["timeouts_failed_upgrades"] == "present"
    assert symptoms["abandoned_connection_leaks"] == "unknown"
    steps = {s["step"]: s["status"] for s in document["steps"]}
    assert steps["close_logs"] == "ok" and steps["live_probes"] == "skipped"
    assert "error" not in steps.values()
    assert document["recommendations"][0]["language"] == "nginx"
    assert "report.html" in result.stdout


def test_sample_report_says_it_is_the_sample(sample_run):
    """The report carries the sample banner naming the parameters to set."""
    out, _ = sample_run
    html = (out / "report.html").read_text()
    assert "SAMPLE INCIDENT" in html and "close_logs" in html


def test_sample_report_renders_offline_in_chromium(sample_run, browser_page):
    """The report opens in Chromium with no console error, every figure drawn, nothing fetched."""
    out, _ = sample_run
    page = browser_page(out / "report.html")
    assert page.console_errors == []
    assert page.nonlocal_requests() == []
    assert page.plots >= 5 and page.plots_with_svg == page.plots
    assert "Root causes" in page.text


def test_healthy_sample_is_healthy(tmp_path):
    """The healthy sample's logs give a healthy verdict and no fix."""
    logs = json.dumps([str(SAMPLES / "healthy" / "close-log.jsonl"), str(SAMPLES / "healthy" / "server.log")])
    result = ws_runbook("run", "-p", "close_logs", logs, "--output-dir", str(tmp_path), "--fail-on", "degraded")
    assert result.returncode == 0, result.stderr
    document = load(tmp_path)
    assert document["verdict"] == "healthy"
    assert document["recommendations"] == []


def test_fail_on_degraded_exits_1(tmp_path):
    """--fail-on degraded turns a degraded verdict into exit code 1."""
    logs = str(SAMPLES / "proxy_timeout" / "*.jsonl")
    result = ws_runbook("run", "-p", "close_logs", logs, "--output-dir", str(tmp_path), "--fail-on", "degraded")
    assert result.returncode == 1, result.stderr
    assert load(tmp_path)["verdict"] == "degraded"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["-p", "close_log", "x.log"], "close_log"),
        (["-p", "target_url", "https://chat.example.com/ws"], "target_url"),
        (["-p", "server_port", "eighty"], "server_port"),
        (["-y", "close_logs: [1, 2"], "-y"),
    ],
)
def test_bad_parameters_exit_2_naming_the_parameter(tmp_path, args, named):
    """A bad parameter stops before execution with exit 2 and a message naming it."""
    result = ws_runbook("run", *args, "--output-dir", str(tmp_path))
    assert result.returncode == 2
    assert named in result.stderr
    assert not (tmp_path / "report.html").exists()


def test_missing_log_stops_before_running(tmp_path):
    """A log glob that matches nothing is a bad parameter: exit 2 naming it, nothing executed.
    (A log that exists but cannot be read fails its step and the rest runs: test_hardening.)"""
    result = ws_runbook("run", "-p", "close_logs", str(tmp_path / "nope-*.log"), "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "no file matches" in result.stderr and "nope-*.log" in result.stderr
    assert not (tmp_path / "out" / "report.html").exists()


def test_hostile_log_strings_stay_text_in_chromium(tmp_path, browser_page):
    """A close reason and a user agent carrying markup show as text and run nothing."""
    log = tmp_path / "hostile.jsonl"
    lines = []
    for i in range(30):
        lines.append(json.dumps({"ts": f"2026-11-28T03:00:{i:02d}.000Z", "event": "connect", "connectionId": f"c{i}", "ip": "203.0.113.9", "userAgent": XSS_AGENT}))
        lines.append(json.dumps({"ts": f"2026-11-28T03:01:{i:02d}.000Z", "event": "disconnect", "connectionId": f"c{i}", "code": 4000, "reason": XSS_REASON, "duration": 60000, "ip": "203.0.113.9", "userAgent": XSS_AGENT}))
    log.write_text("\n".join(lines) + "\n")
    result = ws_runbook("run", "-p", "close_logs", str(log), "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert all(step["status"] != "error" for step in load(tmp_path / "out")["steps"])
    page = browser_page(tmp_path / "out" / "report.html")
    assert not page.xss_fired()
    assert XSS_REASON in page.text
    assert "<script>window.__xss=2</script>" in page.text
    assert page.console_errors == []


def test_secrets_never_reach_the_outputs(tmp_path):
    """A token in a URL and header values from header_env appear in no output file."""
    env = {"WS_AUTH": "Authorization: Bearer s3cr3t-bearer-value"}
    result = ws_runbook(
        "run",
        "-p", "target_url", "ws://127.0.0.1:9/ws?token=s3cr3t-query-value",
        "-p", "header_env", '["WS_AUTH"]',
        "--output-dir", str(tmp_path),
        env=env,
    )
    assert result.returncode == 0, result.stderr
    for path in tmp_path.iterdir():
        text = path.read_text()
        assert "s3cr3t" not in text, path.name
    assert "s3cr3t" not in result.stdout + result.stderr
    assert "target_url" in (tmp_path / "report.html").read_text()


def test_params_lists_every_parameter():
    """`ws-runbook params` prints the parameters cell lines."""
    result = ws_runbook("params")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0].startswith("target_url: str")
    assert result.stdout.splitlines() == [spec.cell_line() for spec in PARAMS]


def test_parse_reports_formats_and_malformed_lines(tmp_path):
    """`ws-runbook parse` names each file's format and counts its malformed lines."""
    log = tmp_path / "mixed.jsonl"
    log.write_text('{"ts": "2026-11-28T03:00:00Z", "event": "disconnect", "code": 1006}\n{"ts": "2026-11-28T03:00:01Z", "code": \n')
    result = ws_runbook("parse", str(log), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["format"] == "jsonlines" and summary["records"] == 1 and summary["malformed"] == 1
