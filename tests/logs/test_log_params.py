"""The log_format and log_timezone parameters, end to end: params, file loading, the step, one timeline."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pandas as pd
import pytest

from runbook.errors import ParameterError
from runbook.logfiles import format_for, load_close_logs
from runbook.logs import combine_logs, combine_states
from runbook.params import validate_params

ROOT = Path(__file__).resolve().parents[2]
FORMATS_DIR = ROOT / "data" / "formats"
SAMPLES = ROOT / "data" / "samples"


def test_params_accept_an_id_a_mapping_and_json():
    """log_format: one id, a mapping, or a JSON object from -p; log_timezone: UTC, offsets, IANA names."""
    assert validate_params({"log_format": "haproxy"})["log_format"] == "haproxy"
    assert validate_params({"log_format": '{"*.log": "generic"}'})["log_format"] == {"*.log": "generic"}
    assert validate_params({})["log_format"] == "" and validate_params({})["log_timezone"] == "UTC"
    assert validate_params({"log_timezone": "Europe/Berlin"})["log_timezone"] == "Europe/Berlin"
    with pytest.raises(ParameterError, match="'log_format': unknown log format 'apache'; known formats: node_monitor"):
        validate_params({"log_format": {"a.log": "apache"}})
    with pytest.raises(ParameterError, match="'log_format': looks like a JSON object"):
        validate_params({"log_format": "{a.log: x"})
    with pytest.raises(ParameterError, match="'log_timezone': unknown time zone 'Mars/Olympus'"):
        validate_params({"log_timezone": "Mars/Olympus"})
    with pytest.raises(ParameterError, match="'log_timezone': offset"):
        validate_params({"log_timezone": "+15:00"})


def test_format_for_matches_pattern_path_or_name():
    """A mapping key names a file by the pattern it came from, its path or its file name."""
    mapping = {"/var/log/app/*.log": "generic", "edge.txt": "haproxy"}
    assert format_for("/var/log/app/x.log", mapping, "/var/log/app/*.log") == "generic"
    assert format_for("/tmp/edge.txt", mapping, "/tmp/*") == "haproxy"
    assert format_for("/tmp/other.txt", mapping, "/tmp/*") is None
    assert format_for("/tmp/other.txt", "tornado") == "tornado"
    assert format_for("/tmp/other.txt", None) is None


def test_forced_format_and_timezone_reach_the_parser(tmp_path):
    """A forced format reads a file detection would not claim; naive times move with log_timezone."""
    app = tmp_path / "app.log"
    app.write_text("2026-11-30 12:00:00 ws closed code=1006\n")  # too little for detection alone? forced anyway
    (parsed,) = load_close_logs([str(app)], log_format={"*.log": "generic"}, log_timezone="America/New_York")
    assert parsed.format == "generic" and parsed.confidence is None
    assert parsed.frame["ts"].iloc[0] == pd.Timestamp("2026-11-30T17:00:00Z")
    (utc,) = load_close_logs([str(app)], log_format="generic")
    assert utc.frame["ts"].iloc[0] == pd.Timestamp("2026-11-30T12:00:00Z")


def test_a_folder_of_mixed_sources_combines_on_one_timeline(tmp_path):
    """Proxy, server, client and socket snapshots (one gzipped, one rotated) each keep their source."""
    shutil.copy(SAMPLES / "proxy_timeout" / "access.log", tmp_path / "access.log.1")
    with gzip.open(tmp_path / "error.log.gz", "wb") as handle:
        handle.write((SAMPLES / "heartbeat_missing" / "error.log").read_bytes())
    for name in ("python-websockets.log", "chrome-console.log", "ss-snapshots.txt", "haproxy-http.log"):
        shutil.copy(FORMATS_DIR / name, tmp_path / name)
    parsed = load_close_logs([str(tmp_path / "*")])
    formats = {Path(p.source).name: p.format for p in parsed}
    assert formats == {
        "access.log.1": "nginx_access",
        "error.log.gz": "nginx_error",
        "python-websockets.log": "python_websockets",
        "chrome-console.log": "browser_console",
        "ss-snapshots.txt": "sockets",
        "haproxy-http.log": "haproxy",
    }
    assert all(p.confidence and p.confidence >= 0.5 for p in parsed)
    timeline = combine_logs(parsed)
    assert len(timeline) == sum(p.records for p in parsed)
    assert timeline["ts"].dropna().is_monotonic_increasing
    assert set(timeline["source"].map(lambda s: Path(s).name)) == set(formats) - {"ss-snapshots.txt"}
    assert len(combine_states(parsed)) == len(next(p for p in parsed if p.format == "sockets").state)


def test_the_close_logs_step_uses_both_parameters(tmp_path):
    """The runbook's close_logs step passes log_format and log_timezone through, and shows detection."""
    import runbook.steps as rb

    log = tmp_path / "go.log"
    log.write_text("2026/11/30 12:00:01 read: websocket: close 1006 (abnormal closure): unexpected EOF\n")
    run = rb.start_run(interactive=False, close_logs=[str(log)], log_format="go_websocket", log_timezone="+01:00")
    rb.read_close_logs(run)
    (parsed,) = run.parsed_logs
    assert parsed.format == "go_websocket" and parsed.confidence is None
    assert run.frame["ts"].iloc[0] == pd.Timestamp("2026-11-30T11:00:01Z")


def test_parse_command_shows_detection_and_takes_both_options(tmp_path):
    """`ws-runbook parse` prints how each format was chosen; --log-format/--log-timezone reach the parser."""
    import json

    from click.testing import CliRunner

    from runbook.cli import cli

    log = tmp_path / "go.log"
    log.write_text("2026/11/30 12:00:01 read: websocket: close 1006 (abnormal closure): unexpected EOF\n")
    runner = CliRunner()
    detected = runner.invoke(cli, ["parse", str(FORMATS_DIR / "haproxy-http.log")])
    assert detected.exit_code == 0 and "haproxy (detected, 95%)" in detected.output
    forced = runner.invoke(cli, ["parse", str(log), "--json", "--log-format", "go_websocket", "--log-timezone", "+01:00"])
    summary = json.loads(forced.output)
    assert summary["format"] == "go_websocket" and summary["confidence"] is None and summary["records"] == 1
    import subprocess
    import sys

    bad = subprocess.run([sys.executable, "-m", "runbook", "parse", str(log), "--log-format", "apache"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "parameter 'log_format': unknown log format 'apache'" in bad.stderr


def test_the_close_logs_step_lists_what_the_generic_fallback_read(tmp_path, monkeypatch):
    """Records the generic fallback took are listed with their line numbers in the step's output."""
    import runbook.report.display as display
    import runbook.steps as rb

    published = []
    monkeypatch.setattr(display, "_publish", published.append)

    log = tmp_path / "app.log"
    log.write_text("2026-11-30T12:00:00Z boot\n2026-11-30T12:00:01Z ws closed code=1006 conn_id=abc123x\n")
    run = rb.start_run(interactive=True, close_logs=[str(log)])
    rb.read_close_logs(run)
    (parsed,) = run.parsed_logs
    assert parsed.format == "generic" and parsed.frame["line_no"].tolist() == [2]
    html = "".join(bundle.get("text/html", "") for bundle in published)
    assert "Read by the generic fallback" in html and "[generic]" in html and "app.log" in html
