"""Issue 10, never wrong in silence: hostile input, interruptions, concurrent runs and leaks.

Every case runs the real CLI (``python -m runbook``) in a subprocess: real papermill, a real
kernel, real files (a corrupt .gz, a FIFO, UTF-16), a real echoing server on loopback, real
signals. ``python -m tests.hostile`` runs the same hostile script outside pytest and prints a
checklist; the tests below assert each of its checks, grouped so papermill runs stay few.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from tests import hostile
from tests.conftest import require_real

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "samples" / "proxy_timeout"


def cli(*args: str, cwd: Path = ROOT, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return hostile.cli(*args, cwd=cwd, env=env, timeout=timeout)


def no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-2000:]


# --- bad parameters: exit 2 before anything runs ------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-p", "close_logs", ""], "'close_logs': was given but is empty"),
        (["-p", "close_logs", "/nonexistent/ws-close.log"], "/nonexistent/ws-close.log does not exist"),
        (["-p", "close_logs", "/nonexistent/*.log"], "no file matches /nonexistent/*.log"),
        (["-p", "close_logs", "ws://example.test/not-a-path"], "does not exist"),
        (["-p", "target_url", "ws://[::1"], "'target_url': is not a valid URL"),
        (["-p", "target_url", "ws://127.0.0.1:9/", "-p", "header_env", '["WS_HARDENING_UNSET"]'], "WS_HARDENING_UNSET is not set"),
        (["-p", "close_logs", "a.log", "b.log"], """-p close_logs '["a.log","b.log"]'"""),
        (["-p", "target_url", "ws://127.0.0.1:9/", "-p", "probe_seconds", "600", "--timeout", "300"], "raise --timeout to at least 630"),
    ],
    ids=["empty", "missing-file", "glob-matches-nothing", "not-a-path", "bad-ipv6", "unset-header-env", "list-as-two-values", "probes-exceed-timeout"],
)
def test_bad_input_exits_2_naming_it(tmp_path, args, expected):
    """Each bad input stops with exit 2 and a message naming what to fix; no sample, no traceback."""
    out = tmp_path / "out"
    result = cli("run", *args, "--output-dir", str(out), env={"WS_HARDENING_UNSET": ""})
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr, result.stderr
    assert "verdict" not in result.stdout
    assert not (out / "report.html").exists()  # nothing was executed
    no_traceback(result)


def test_unusable_output_folders_are_refused_first(tmp_path):
    """An output folder under a file, in /proc, not writable, or with report.html or diagnosis.json
    as folders: exit 2 naming it, before anything runs (no verdict printed)."""
    (tmp_path / "a-file").write_text("x")
    for name in ("report.html", "diagnosis.json"):
        (tmp_path / f"has-{name}" / name).mkdir(parents=True)
    cases = {
        str(tmp_path / "a-file" / "out"): "a-file is a file",
        "/proc/ws-runbook-out": "cannot be created",
        "/proc/self": "is not writable",
        str(tmp_path / "has-report.html"): "report.html is a folder",
        str(tmp_path / "has-diagnosis.json"): "diagnosis.json is a folder",
    }
    for folder, expected in cases.items():
        result = cli("run", "-p", "close_logs", str(SAMPLE / "close-log.jsonl"), "--output-dir", folder)
        assert result.returncode == 2 and expected in result.stderr, (folder, result.stderr)
        assert result.stdout == "", "checked only after the analysis ran"
        no_traceback(result)


def test_params_file_not_utf8(tmp_path):
    """A params file in another encoding is a usage error naming the file, not a traceback."""
    params = tmp_path / "params.yaml"
    params.write_bytes("close_logs: /var/log/caf\u00e9.log\n".encode("latin-1"))
    result = cli("run", "-f", str(params), "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 2 and "params.yaml is not UTF-8" in result.stderr
    no_traceback(result)


# --- one bad file never costs the good ones (parse CLI) -----------------------------------------


def test_parse_reads_the_good_files_beside_the_bad(tmp_path):
    """Corrupt and truncated .gz, a FIFO, a folder, the same file twice, UTF-16 with and without a
    BOM, duplicated lines and a second format inside a file: each named, the good records kept."""
    logs = hostile.write_bad_files(tmp_path)
    result = cli("parse", "--json", str(tmp_path / "*"), str(logs["good"]), timeout=120)  # a FIFO must not block
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    rows = {Path(row["source"]).name: row for row in map(json.loads, result.stdout.splitlines())}
    good = rows["good.jsonl"]
    assert good["records"] == 489 and good["error"] is None
    assert any("given again" in note for note in good["notes"])
    assert "gzip data is corrupt" in rows["corrupt.jsonl.gz"]["error"]
    truncated = rows["truncated.jsonl.gz"]
    assert 0 < truncated["records"] < 489 and "ends early" in truncated["notes"][0]
    assert "named pipe (FIFO)" in rows["pipe.log"]["error"]
    assert "is a folder" in rows["folder"]["error"]
    assert rows["utf16.jsonl"]["records"] == 489 and "UTF-16" in rows["utf16.jsonl"]["notes"][0]
    assert rows["utf16-no-bom.jsonl"]["records"] == 489
    assert any("repeat an earlier record" in note for note in rows["twice.jsonl"]["notes"])
    assert any("second format inside one file" in note for note in rows["mixed.log"]["notes"])


def test_parse_without_any_good_file_exits_2(tmp_path):
    """Only a corrupt .gz: exit 2, the file and the problem named, no zlib traceback."""
    logs = hostile.write_bad_files(tmp_path)
    result = cli("parse", str(logs["corrupt"]))
    assert result.returncode == 2
    assert "corrupt.jsonl.gz" in result.stdout and "gzip data is corrupt" in result.stdout
    no_traceback(result)


def test_huge_file_is_read_whole(tmp_path):
    """A file of many parts is read whole, part by part: nothing left out, every record numbered by
    its line in the file (4 KiB parts stand in for the 64 MiB ones: no 512 MiB cap any more)."""
    from runbook.logfiles import load_close_logs

    lines = (SAMPLE / "close-log.jsonl").read_bytes().splitlines(keepends=True)
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"".join(lines) * 3)
    (parsed,) = load_close_logs([str(path)], part_bytes=4096)
    assert parsed.ok and parsed.records == 3 * len(lines) and parsed.malformed_count == 0
    assert parsed.frame["line_no"].tolist() == list(range(1, 3 * len(lines) + 1))
    assert parsed.frame["ts"].iloc[-1] == pd.Timestamp(json.loads(lines[-1])["ts"])
    assert not any("left out" in note for note in parsed.notes)


def test_values_out_of_range_are_malformed_records(tmp_path):
    """A duration of 1e20 ms, a negative one, code 99999 and -1: four malformed records, the rest kept."""
    path = tmp_path / "close-log.jsonl"
    path.write_text(hostile.with_out_of_range_values((SAMPLE / "close-log.jsonl").read_text()))
    result = cli("parse", "--json", str(path))
    (row,) = map(json.loads, result.stdout.splitlines())
    assert row["records"] == 485 and row["malformed"] == 4 and row["error"] is None


# --- time window ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    """The sample's 489 JSON-lines records as they are, run in-process, timed."""
    import runbook.steps as rb

    folder = tmp_path_factory.mktemp("clean")
    (folder / "clean.jsonl").write_text((SAMPLE / "close-log.jsonl").read_text())
    started = time.monotonic()
    run = rb.run_all({"close_logs": [str(folder / "clean.jsonl")], "output_dir": str(folder / "out")})
    return run, time.monotonic() - started


@pytest.mark.parametrize("clocks", [("1970",), ("1970", "2099"), hostile.CLOCKS_OFF], ids="+".join)
def test_outlying_timestamps_leave_the_diagnosis_and_its_cost_unchanged(tmp_path, clean_run, clocks):
    """One record dated 1970 among 489, 1970 and 2099, and a year ahead too: set apart and shown;
    the run is as fast and its per-minute table as small as without them; high_disconnect_rate is
    unchanged."""
    import runbook.steps as rb

    clean, clean_s = clean_run
    dirty = tmp_path / "dirty.jsonl"
    dirty.write_text(hostile.with_outlying_timestamps((SAMPLE / "close-log.jsonl").read_text(), clocks))
    started = time.monotonic()
    run = rb.run_all({"close_logs": [str(dirty)], "output_dir": str(tmp_path / "out")})
    elapsed = time.monotonic() - started
    assert len(run.outliers) == len(clocks) and len(run.frame) == len(clean.frame)
    assert run.outliers["ts"].dt.year.min() == 1970
    assert len(run.observations.logs.per_minute) == len(clean.observations.logs.per_minute)
    rate = [next(s for s in r.diagnosis.symptoms if s.id.value == "high_disconnect_rate").status for r in (clean, run)]
    assert rate[0] == rate[1]
    assert elapsed < 2 * clean_s + 2


# --- secrets --------------------------------------------------------------------------------------


def test_redaction_covers_every_credential_spelling():
    """camelCase, snake, kebab and upper-case credential keys are redacted; ordinary keys are not."""
    from runbook.report.redact import REDACTED, redact_text

    for key in hostile.SECRET_QUERY_KEYS + ("client_secret", "APIKey", "sessionId", "X-Goog-Credential", "password"):
        assert redact_text(f"GET /ws?{key}=s3cr3tvalue&page=2") == f"GET /ws?{key}={REDACTED}&page=2", key
    for key in ("monkey", "keyboard", "code", "page", "signal"):
        assert redact_text(f"/ws?{key}=1006") == f"/ws?{key}=1006"


def test_probe_terminal_is_redacted(tmp_path):
    """`ws-runbook probe` against a server that echoes the request (401 quoting it, the Basic
    credentials in base64): no planted secret reaches the terminal."""
    with hostile.EchoServer() as server:
        url = server.url_with_secrets()
        result = cli("probe", url, "--probe-seconds", "3", "--connections", "2", "--header-env", hostile.HEADER_ENV,
                     env=hostile.secret_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "401" in result.stdout  # the server's answer is reported...
    assert server.requests, "the probe never reached the echoing server"
    hostile.assert_no_secrets({"stdout": result.stdout, "stderr": result.stderr})  # ...its secrets are not


# --- the hostile run through papermill -------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """One full run on everything at once: outlying and out-of-range records, a corrupt and a
    truncated .gz beside good logs, the same log twice, secrets in five query spellings, userinfo and
    a header_env against a server echoing them back."""
    folder = tmp_path_factory.mktemp("hostile")
    with hostile.EchoServer() as server:
        return hostile.run_hostile(folder, server)


def test_hostile_run_keeps_the_good_evidence(hostile_run):
    """The run ends (exit 0), the good logs give the same degraded verdict, every bad file is named."""
    run = hostile_run
    assert run.result.returncode == 0, run.result.stderr
    assert run.document["complete"] is True and run.document["verdict"] == "degraded"
    symptoms = {s["id"]: s["status"] for s in run.document["symptoms"]}
    assert symptoms["high_disconnect_rate"] == "present"
    assert "corrupt.jsonl.gz" in run.html and "truncated.jsonl.gz" in run.html
    assert "3 records dated far outside the incident window" in run.html
    assert "1970-01-01" in run.html and "2099-" in run.html
    close_logs = next(s for s in run.document["steps"] if s["step"] == "close_logs")
    assert close_logs["status"] == "ok" and "3 records outside the incident window" in close_logs["detail"]


def test_hostile_run_is_as_small_and_fast_as_a_clean_one(hostile_run):
    """No per-minute table over decades: the report stays the size of a normal one, the run quick."""
    assert hostile_run.wall_s < 90
    assert (hostile_run.out / "report.html").stat().st_size < 8_000_000
    assert (hostile_run.out / "report.ipynb").stat().st_size < 2_000_000


def test_hostile_run_leaks_no_secret(hostile_run):
    """No planted secret in report.html, report.ipynb, diagnosis.json or on the terminal."""
    run = hostile_run
    assert run.echo_requests, "the probes never reached the echoing server"
    hostile.assert_no_secrets(
        {
            "report.html": run.html,
            "report.ipynb": (run.out / "report.ipynb").read_text(),
            "diagnosis.json": (run.out / "diagnosis.json").read_text(),
            "stdout": run.result.stdout,
            "stderr": run.result.stderr,
        }
    )


def test_hostile_run_report_opens_with_the_verdict(hostile_run):
    """The summary box (verdict, leading cause, the fix) comes before the checklist; tables carry no
    0, 1, 2 index; every step has its duration; the terminal carries no kernel warning."""
    html = hostile_run.html
    summary = html.find("verdict: degraded")
    assert 0 < summary < html.find("High WebSocket disconnect rates")
    assert "the fix:" in html[summary : summary + 5000]
    assert "<th></th>" not in html  # pandas' blank index header
    assert all("duration_s" in s for s in hostile_run.document["steps"] if s["step"] != "outputs")
    assert "without encryption" not in hostile_run.result.stderr
    assert "IPKernelApp" not in hostile_run.result.stderr


# --- what the responder sees first ------------------------------------------------------------------


def test_no_evidence_run_says_so_and_folds_the_traceback(tmp_path):
    """Nothing readable: the close_logs step fails with what/why/what to do, the postmortem says there
    was no evidence and what to give, no fix is drawn from the priors, and the traceback stays in
    report.ipynb (folded) and out of report.html."""
    junk = tmp_path / "notes.txt"
    junk.write_text("nothing to see here\n" * 50)
    out = tmp_path / "out"
    result = cli("run", "-p", "close_logs", str(junk), "--output-dir", str(out))
    assert result.returncode == 0, result.stderr
    assert "step close_logs failed: no close log could be read" in result.stderr and "notes.txt" in result.stderr
    html = (out / "report.html").read_text()
    assert "STEP FAILED: close_logs" in html and "what to do: give close_logs" in html
    assert "no evidence: nothing could be read" in html and "What to give" in html
    assert "Traceback" not in html and "traceback (for a bug report)" not in html
    notebook = (out / "report.ipynb").read_text()
    assert "traceback (for a bug report)" in notebook
    document = json.loads((out / "diagnosis.json").read_text())
    assert document["recommendations"] == [] or document["verdict"] != "inconclusive"
    assert "the fix:" not in html


# --- interruptions and concurrency --------------------------------------------------------------------


def test_ctrl_c_leaves_no_stale_complete_report(tmp_path):
    """An earlier run's complete outputs in the folder, then a run into it stopped with Ctrl-C mid-run:
    exit 130, the report says the run did not finish, diagnosis.json is this run's (complete=false)."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text("<html><body>verdict: healthy STALE-EARLIER-RUN</body></html>")
    (out / "report.ipynb").write_text("{}")
    (out / "diagnosis.json").write_text(json.dumps({"verdict": "healthy", "complete": True, "steps": []}))
    notebook = hostile.notebook_with_cell(tmp_path / "slow.ipynb", "import time\ntime.sleep(120)")
    process = hostile.start_cli("run", str(notebook), "-p", "close_logs", str(SAMPLE / "close-log.jsonl"), "--output-dir", str(out))
    hostile.wait_for(lambda: hostile.step_written(out, "close_logs"), timeout=60)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted by Ctrl-C" in stderr and "Traceback" not in stdout + stderr
    html = (out / "report.html").read_text()
    assert "This run did not finish" in html and "interrupted by Ctrl-C" in html and "STALE-EARLIER-RUN" not in html
    assert "{}" != (out / "report.ipynb").read_text()
    document = json.loads((out / "diagnosis.json").read_text())
    assert document["complete"] is False
    assert {s["step"]: s["status"] for s in document["steps"]}["postmortem"] == "not_run"


@pytest.mark.parametrize(
    ("cell", "options", "expected"),
    [
        # 20 s: the steps before the stuck cell must fit in it on a loaded machine too
        ("import time\ntime.sleep(90)", ["--timeout", "20"], "ran longer than --timeout 20 s"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", [], "the kernel died"),
    ],
    ids=["cell-timeout", "dead-kernel"],
)
def test_a_run_cut_short_keeps_what_finished(tmp_path, cell, options, expected):
    """A cell timeout or a dead kernel after the close logs were read: exit 3, diagnosis.json and the
    report hold the finished steps and name the ones not run."""
    notebook = hostile.notebook_with_cell(tmp_path / "cut.ipynb", cell)
    out = tmp_path / "out"
    result = cli("run", str(notebook), *options, "-p", "close_logs", str(SAMPLE / "close-log.jsonl"), "--output-dir", str(out))
    assert result.returncode == 3, result.stderr
    assert expected in result.stderr and "unfinished run" in result.stdout
    no_traceback(result)
    document = json.loads((out / "diagnosis.json").read_text())
    statuses = {s["step"]: s["status"] for s in document["steps"]}
    assert document["complete"] is False and statuses["close_logs"] == "ok" and statuses["ranked_causes"] == "not_run"
    html = (out / "report.html").read_text()
    assert "This run did not finish" in html and "Not run:" in html


def test_two_runs_into_one_folder(tmp_path):
    """While one run holds the folder, a second one stops with exit 2 naming it; the first prints the
    verdict of its own diagnosis. The first has no input at all: the terminal says it ran on the sample."""
    out = tmp_path / "out"
    notebook = hostile.notebook_with_cell(tmp_path / "slow.ipynb", "import time\ntime.sleep(8)")
    first = hostile.start_cli("run", str(notebook), "--output-dir", str(out))
    hostile.wait_for(lambda: (out / ".ws-runbook.lock").exists() and (out / ".ws-runbook.lock").read_text().startswith("pid"), timeout=60)
    healthy_logs = ROOT / "data" / "samples" / "healthy" / "close-log.jsonl"
    second = cli("run", "-p", "close_logs", str(healthy_logs), "--output-dir", str(out))
    stdout, stderr = first.communicate(timeout=120)
    assert second.returncode == 2 and "is in use by another ws-runbook run" in second.stderr
    assert first.returncode == 0, stderr
    assert "verdict: degraded" in stdout and "bundled sample incident 'proxy_timeout'" in stderr
    assert json.loads((out / "diagnosis.json").read_text())["verdict"] == "degraded"


def test_lab_serve_killed_leaves_no_orphan(tmp_path):
    """`ws-runbook lab serve` killed with SIGKILL: its nginx, Node and Python servers stop too."""
    require_real("nginx")
    require_real("node")
    process = hostile.start_cli("lab", "serve", "healthy", "--fast", "--clients", "0", "--run-dir", str(tmp_path / "lab"))
    try:
        hostile.wait_for(lambda: len(psutil.Process(process.pid).children(recursive=True)) >= 3 and (tmp_path / "lab" / "nginx" / "nginx.conf").exists(), timeout=60)
        time.sleep(1)
        children = psutil.Process(process.pid).children(recursive=True)
        ports = {c.laddr.port for child in children for c in _listening(child)}
    finally:
        process.kill()
        process.communicate(timeout=30)
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, [p.cmdline() for p in alive]
    assert ports and not ports & {c.laddr.port for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN}


def _listening(process: psutil.Process) -> list:
    try:
        return [c for c in process.net_connections("tcp") if c.status == psutil.CONN_LISTEN]
    except psutil.Error:
        return []


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
