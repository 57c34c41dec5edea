"""Record the proxy_timeout scenario with its 60 s nginx timeout compressed to 3 s, then check
the written files from the outside: only the json module and plain text, never runbook.logs."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path

import psutil
import pytest
from websockets.asyncio.client import connect

from runbook.lab.record import SERVER_STATE_HEADER, LiveJob, Recording, record
from tests.lab.conftest import need_full_lab

pytestmark = pytest.mark.real

TIME_SCALE = 0.05  # 60 s proxy_read_timeout -> 3 s
TIMEOUT_S = 60 * TIME_SCALE
RECORD_S = 10.0
CLIENTS = 24


JOB_AGENT = "live-job-test/1.0"


def _live_job(lab) -> dict:
    """What the corpus's probes do, in small: reach the live lab through the proxy, after the
    snapshot, while the clients still run."""

    async def visit() -> int:
        async with connect(lab.url(), user_agent_header=JOB_AGENT, ping_interval=None) as ws:
            await ws.send('{"type": "subscribe", "channel": "general"}')
            await ws.recv()
        return sum(1 for seen in lab.clients.stats().values() if seen.connects)

    return {"port": lab.server_ports["python"], "clients_running": asyncio.run(visit())}


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Recording, LiveJob]:
    need_full_lab()
    out = tmp_path_factory.mktemp("proxy_timeout")
    live = LiveJob(_live_job)  # at_s None: right after the snapshot, as the corpus probes
    recording = record("proxy_timeout", out, duration_s=RECORD_S, time_scale=TIME_SCALE,
                       clients=CLIENTS, seed=7, live_job=live)
    return recording, live


@pytest.fixture(scope="module")
def recorded(recording: tuple[Recording, LiveJob]) -> tuple[Path, set[int]]:
    return recording[0].out_dir, recording[0].pids


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _activity_by_ip(out: Path) -> dict[str, str]:
    manifest = json.loads((out / "lab-run.json").read_text())
    return {client["ip"]: client["activity"] for client in manifest["clients"]}


def test_idle_connections_cut_near_timeout_with_1006(recorded: tuple[Path, set[int]]) -> None:
    """Idle users of the python server are disconnected with 1006 about 3 s after connecting."""
    out, _pids = recorded
    activity = _activity_by_ip(out)
    idle_drops = [r for r in _jsonl(out / "close-log.jsonl")
                  if r["event"] == "disconnect" and activity.get(r["ip"]) == "idle"]
    assert len(idle_drops) >= 5, idle_drops
    cut = [r for r in idle_drops if r["code"] == 1006]
    # A rare normal leave (1000/1001) may happen; the timeout cuts are the overwhelming rest.
    assert len(cut) >= 0.8 * len(idle_drops)
    for drop in cut:
        assert drop["reason"] == ""
        # nginx timers fire up to 300 ms early (NGX_TIMER_LAZY_DELAY); the rest is scheduling.
        assert TIMEOUT_S - 0.5 <= drop["duration"] / 1000 <= TIMEOUT_S + 1.0, drop


def test_chatty_connections_survive(recorded: tuple[Path, set[int]]) -> None:
    """Chatty users connect once and are never cut by the proxy timeout."""
    out, _pids = recorded
    activity = _activity_by_ip(out)
    records = _jsonl(out / "close-log.jsonl")
    chatty_connects = [r for r in records
                       if r["event"] == "connect" and activity.get(r["ip"]) == "chatty"]
    chatty_cut = [r for r in records if r["event"] == "disconnect"
                  and activity.get(r["ip"]) == "chatty" and r["code"] == 1006]
    assert chatty_connects
    assert chatty_cut == []


def test_jsonl_records_have_the_contract_fields(recorded: tuple[Path, set[int]]) -> None:
    """Every JSON-lines record carries the documented fields, timestamps in UTC with ms."""
    out, _pids = recorded
    for record_ in _jsonl(out / "close-log.jsonl"):
        assert set(record_) == {"ts", "event", "connectionId", "code", "reason", "duration",
                                "ip", "userAgent"}
        assert record_["event"] in {"connect", "disconnect", "error"}
        assert record_["ts"].endswith("Z") and len(record_["ts"]) == 24
        assert record_["userAgent"].startswith("Mozilla/5.0 (")


def test_node_and_nginx_logs_show_the_same_cut(recorded: tuple[Path, set[int]]) -> None:
    """The Node monitor logs 1006 disconnects, nginx logs 101 sessions and upgrade timeouts."""
    out, _pids = recorded
    server_log = (out / "server.log").read_text()
    assert "WebSocket connected: {" in server_log
    assert "code: 1006" in server_log
    access = (out / "access.log").read_text().splitlines()
    assert any('" 101 ' in line and f"rt={TIMEOUT_S:.0f}." in line for line in access)
    error_log = (out / "error.log").read_text()
    assert "upstream timed out (110: Connection timed out) while proxying upgraded connection" \
        in error_log
    assert "proxy_read_timeout 3s;" in (out / "nginx.conf").read_text()
    assert (out / "README.md").read_text().startswith("# Sample `proxy_timeout`")


def test_no_lab_process_left_running(recorded: tuple[Path, set[int]]) -> None:
    """Every process the lab started (nginx master and workers, both servers) is gone."""
    _out, pids = recorded
    assert len(pids) >= 4  # python server, node server, nginx master and worker
    alive = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append((pid, process.name()))
        except psutil.NoSuchProcess:
            pass
    assert alive == []
    assert psutil.Process().children(recursive=True) == []


def test_server_state_csv_samples_the_python_server(recording: tuple[Recording, LiveJob]) -> None:
    """server-state.csv: the exact header, one row a second for the python server's port, ISO
    UTC timestamps with ms, and the idle cuts visible as connections coming and going."""
    recorded_, live = recording
    lines = (recorded_.out_dir / "server-state.csv").read_text().splitlines()
    assert lines[0] == SERVER_STATE_HEADER == "ts,port,rss_bytes,fds,threads,tcp_ESTABLISHED,tcp_CLOSE_WAIT"
    rows = [line.split(",") for line in lines[1:]]
    assert RECORD_S - 1 <= len(rows) <= RECORD_S + 2  # sampled every second
    python_port = live.result["port"]
    times = []
    for ts, port, rss, fds, threads, established, close_wait in rows:
        assert ts.endswith("Z") and len(ts) == 24
        times.append(datetime.fromisoformat(ts.replace("Z", "+00:00")))
        assert int(port) == python_port
        assert int(rss) > 10 * 2**20 and int(fds) > 0 and int(threads) >= 1
        assert int(established) >= 0 and int(close_wait) >= 0
    assert times == sorted(times)
    assert max(int(row[5]) for row in rows) > 0  # clients were connected


def test_live_job_meets_the_live_lab_but_stays_out_of_the_logs(
        recording: tuple[Recording, LiveJob]) -> None:
    """The job ran after the snapshot with the clients still running; its own connection went
    through the proxy to the python server, yet no copied log holds it."""
    recorded_, live = recording
    assert live.error is None
    assert live.result["clients_running"] > 0
    for name in ("close-log.jsonl", "access.log"):
        assert JOB_AGENT not in (recorded_.out_dir / name).read_text()
