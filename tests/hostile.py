"""The hostile script of issue 10: what a responder's worst night feeds ``ws-runbook``.

Helpers for tests/test_hardening.py (bad files, outlying and out-of-range records, planted
secrets, a server that echoes them back, notebooks that stop mid-run), and a script:

    .venv/bin/python -m tests.hostile

runs the whole hostile sequence with the real CLI (1970 and future records, a corrupt .gz beside
a good log, an empty parameter, a missing file, secrets in five spellings with an echoing server,
two runs into one folder, a bad IPv6 URL, unusable output folders, Ctrl-C mid-run) and prints
one line per check, exiting 1 if any fails.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "samples" / "proxy_timeout"
NOTEBOOK = ROOT / "notebooks" / "websocket_disconnects.ipynb"

# --- the real CLI -----------------------------------------------------------------------------------


def cli(*args: str, cwd: Path = ROOT, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m runbook ARGS`` and wait for it (bounded)."""
    return subprocess.run([sys.executable, "-m", "runbook", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env={**os.environ, **(env or {})})


def start_cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    """Start ``python -m runbook ARGS`` with Ctrl-C (SIGINT) delivered as in a terminal."""
    return subprocess.Popen([sys.executable, "-m", "runbook", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env={**os.environ, **(env or {})},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"condition not met within {timeout} s")


def step_written(out: Path, step: str) -> bool:
    """Whether this run's diagnosis.json already records ``step`` as done."""
    document = json.loads((out / "diagnosis.json").read_text())
    return any(s["step"] == step and s["status"] != "not_run" for s in document["steps"]) and not document.get("complete", True)


def notebook_with_cell(path: Path, source: str) -> Path:
    """The runbook notebook with one extra code cell right after the close-logs step."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    at = next(i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and "read_close_logs" in cell.source)
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(source))
    nbformat.write(nb, path)
    return path


# --- bad files ----------------------------------------------------------------------------------------


def write_bad_files(folder: Path) -> dict[str, Path]:
    """Good and bad close logs side by side in ``folder``; returns them by role."""
    good = (SAMPLE / "close-log.jsonl").read_bytes()
    node = (SAMPLE / "server.log").read_bytes()
    packed = gzip.compress(good)
    files = {
        "good": ("good.jsonl", good),
        "corrupt": ("corrupt.jsonl.gz", packed[:40] + bytes(64) + packed[104:]),
        "truncated": ("truncated.jsonl.gz", packed[: len(packed) // 2]),
        "utf16": ("utf16.jsonl", good.decode().encode("utf-16")),
        "utf16_no_bom": ("utf16-no-bom.jsonl", good.decode().encode("utf-16-le")),
        "twice": ("twice.jsonl", good + good),
        "mixed": ("mixed.log", good + node),
    }
    paths = {}
    for role, (name, data) in files.items():
        paths[role] = folder / name
        paths[role].write_bytes(data)
    paths["pipe"] = folder / "pipe.log"
    os.mkfifo(paths["pipe"])
    paths["folder"] = folder / "folder"
    paths["folder"].mkdir()
    return paths


def _records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def with_out_of_range_values(text: str) -> str:
    """The JSON-lines log with four disconnects made impossible: 1e20 ms, -5 ms, code 99999, code -1."""
    records = _records(text)
    disconnects = [r for r in records if r["event"] == "disconnect"][:4]
    for record, change in zip(disconnects, ({"duration": 1e20}, {"duration": -5}, {"code": 99999}, {"code": -1})):
        record.update(change)
    return "".join(json.dumps(r) + "\n" for r in records)


CLOCKS_OFF = ("1970", "2099", "year-ahead")


def with_outlying_timestamps(text: str, clocks: tuple[str, ...] = CLOCKS_OFF) -> str:
    """The JSON-lines log plus one record per clock that was off: dated 1970, 2099, a year ahead."""
    records = _records(text)
    last = max(r["ts"] for r in records)
    dates = {"1970": "1970-01-01T00:00:00.000Z", "2099": "2099-01-01T00:00:00.000Z", "year-ahead": f"{int(last[:4]) + 1}{last[4:]}"}
    template = next(r for r in records if r["event"] == "connect")
    for n, clock in enumerate(clocks):
        records.insert(10 * (n + 1), {**template, "ts": dates[clock], "connectionId": f"clock-off-{n}"})
    return "".join(json.dumps(r) + "\n" for r in records)


# --- secrets and a server that echoes them -----------------------------------------------------------

SECRET_QUERY_KEYS = ("accessToken", "authToken", "api_key", "sig", "X-Amz-Signature")
_QUERY_SECRETS = {key: f"q{n}-{key[:3].lower()}-7f3a9c2e" for n, key in enumerate(SECRET_QUERY_KEYS)}
USERINFO = ("hostile-user", "pw-Hunter2-9d81")
BASIC = base64.b64encode(":".join(USERINFO).encode()).decode()
HEADER_ENV = "WS_HOSTILE_HEADER"
HEADER_SECRET = "hdr-secret-5be0c4d1a2"
SECRETS = (*_QUERY_SECRETS.values(), USERINFO[1], ":".join(USERINFO), BASIC, HEADER_SECRET)


def secret_env() -> dict[str, str]:
    return {HEADER_ENV: f"X-Service-Token: {HEADER_SECRET}"}


def assert_no_secrets(texts: dict[str, str]) -> None:
    """Fail naming the output and the secret when any planted secret shows in any text."""
    leaks = [(where, secret) for where, text in texts.items() for secret in SECRETS if secret in text]
    assert not leaks, f"secrets leaked: {leaks}"


class EchoServer:
    """A loopback HTTP server answering every request with 401 and a body quoting it back: the
    request line (query string), every header, and the Basic credentials on a line of their own."""

    def __init__(self) -> None:
        from tests.probes.servers import ServerThread

        self.requests: list[bytes] = []
        self._thread = ServerThread()
        self.port = 0

    def __enter__(self) -> EchoServer:
        self._thread.__enter__()
        self.port = self._thread.start_tcp(self._respond)
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.__exit__(None, None, None)

    def _respond(self, head: bytes) -> bytes:
        self.requests.append(head)
        basic = re.search(rb"(?im)^authorization:\s*basic\s+(\S+)", head)
        body = b"basic credentials seen: " + (basic.group(1) if basic else b"none") + b"\nyour request was:\n" + head
        return (b"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)

    def url_with_secrets(self) -> str:
        query = "&".join(f"{key}={value}" for key, value in _QUERY_SECRETS.items())
        return f"ws://{USERINFO[0]}:{USERINFO[1]}@127.0.0.1:{self.port}/ws?room=7&{query}"


# --- the hostile papermill run ------------------------------------------------------------------------


@dataclass
class HostileRun:
    result: subprocess.CompletedProcess
    out: Path
    html: str
    document: dict
    wall_s: float
    echo_requests: list[bytes]


def run_hostile(folder: Path, server: EchoServer) -> HostileRun:
    """Everything at once through `ws-runbook run` (see tests/test_hardening.py::hostile_run)."""
    logs = folder / "logs"
    logs.mkdir(parents=True)
    bad = write_bad_files(folder)
    (logs / "close-log.jsonl").write_text(with_outlying_timestamps(with_out_of_range_values((SAMPLE / "close-log.jsonl").read_text())))
    (logs / "server.log").write_bytes((SAMPLE / "server.log").read_bytes())
    for role in ("corrupt", "truncated"):
        bad[role].rename(logs / bad[role].name)
    close_logs = [str(logs / "*.jsonl"), str(logs / "*.gz"), str(logs / "server.log"), str(logs / "server.log")]
    out = folder / "out"
    started = time.monotonic()
    result = cli("run", "-p", "close_logs", json.dumps(close_logs), "-p", "target_url", server.url_with_secrets(),
                 "-p", "header_env", json.dumps([HEADER_ENV]), "-p", "probe_seconds", "3", "-p", "connections", "2",
                 "--output-dir", str(out), env=secret_env())
    wall_s = time.monotonic() - started
    html = (out / "report.html").read_text() if (out / "report.html").exists() else ""
    document = json.loads((out / "diagnosis.json").read_text()) if (out / "diagnosis.json").exists() else {}
    return HostileRun(result, out, html, document, wall_s, list(server.requests))


# --- the script ---------------------------------------------------------------------------------------


def main() -> int:
    """Run every hostile case once with the real CLI; print PASS/FAIL per check."""
    checks: list[tuple[str, bool, str]] = []

    def check(name: str, ok: bool, detail: str = "") -> None:
        checks.append((name, bool(ok), detail))
        print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  ({detail})" if detail and not ok else ""), flush=True)

    with tempfile.TemporaryDirectory(prefix="ws-runbook-hostile-") as tmp:
        folder = Path(tmp)
        with EchoServer() as server:
            run = run_hostile(folder / "hostile", server)
        check("1970/2099/year-ahead records, corrupt and truncated .gz, secrets: run ends with exit 0", run.result.returncode == 0, run.result.stderr[-500:])
        check("outlying records set apart and shown", "3 records dated far outside the incident window" in run.html)
        check("high_disconnect_rate still present", {s["id"]: s["status"] for s in run.document.get("symptoms", [])}.get("high_disconnect_rate") == "present")
        check("corrupt .gz named beside the good logs", "corrupt.jsonl.gz" in run.html and "gzip data is corrupt" in run.html)
        check("report stays small (< 8 MB)", (run.out / "report.html").stat().st_size < 8_000_000)
        texts = {"report.html": run.html, "report.ipynb": (run.out / "report.ipynb").read_text(),
                 "diagnosis.json": (run.out / "diagnosis.json").read_text(), "terminal": run.result.stdout + run.result.stderr}
        leaks = [(where, s) for where, text in texts.items() for s in SECRETS if s in text]
        check("no secret in any output or on the terminal (five query spellings, userinfo, Basic, header_env)", not leaks and run.echo_requests, str(leaks))
        for label, args, expected in (
            ("empty parameter", ["-p", "close_logs", ""], "was given but is empty"),
            ("missing file", ["-p", "close_logs", str(folder / "missing.log")], "does not exist"),
            ("bad IPv6 URL", ["-p", "target_url", "ws://[::1"], "is not a valid URL"),
            ("output folder under a file", ["--output-dir", str(folder / "logs-file" / "out")], "logs-file is a file"),
            ("output folder in /proc", ["--output-dir", "/proc/ws-runbook-out"], "cannot be created"),
            ("output folder not writable", ["--output-dir", "/proc/self"], "is not writable"),
        ):
            (folder / "logs-file").write_text("x")
            result = cli("run", *args, *([] if "--output-dir" in args else ["--output-dir", str(folder / "bad-out")]))
            check(f"{label}: exit 2 naming it, no traceback", result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr, result.stderr[-300:])
        out = folder / "shared"
        slow = notebook_with_cell(folder / "slow.ipynb", "import time\ntime.sleep(4)")
        first = start_cli("run", str(slow), "-p", "close_logs", str(SAMPLE / "close-log.jsonl"), "--output-dir", str(out))
        wait_for(lambda: (out / ".ws-runbook.lock").read_text().startswith("pid"), timeout=60)
        second = cli("run", "-p", "close_logs", str(ROOT / "data" / "samples" / "healthy" / "close-log.jsonl"), "--output-dir", str(out))
        stdout, _ = first.communicate(timeout=120)
        check("two runs into one folder: the second refused, the first keeps its own verdict", second.returncode == 2 and "verdict: degraded" in stdout)
        stuck = notebook_with_cell(folder / "stuck.ipynb", "import time\ntime.sleep(120)")
        process = start_cli("run", str(stuck), "-p", "close_logs", str(SAMPLE / "close-log.jsonl"), "--output-dir", str(out))
        wait_for(lambda: step_written(out, "close_logs"), timeout=60)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
        report = (out / "report.html").read_text()
        check("Ctrl-C mid-run: exit 130, the report says it did not finish, no traceback",
              process.returncode == 130 and "This run did not finish" in report and "Traceback" not in stdout + stderr, stderr[-300:])
    failed = [name for name, ok, _ in checks if not ok]
    print(f"\n{len(checks) - len(failed)} of {len(checks)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
