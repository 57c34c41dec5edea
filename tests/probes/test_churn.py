"""The churn probe against python-websockets servers on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runbook.observations import FailureKind
from runbook.probes import ChurnProgress, probe_churn, run_sync
from tests.probes.servers import ServerThread

REPO = Path(__file__).resolve().parents[2]


def test_holds_connections_for_the_window(servers: ServerThread) -> None:
    """30 connections held to the end: all opened once, closed by us, latencies and a timeline."""
    port = servers.start_websocket()
    result = run_sync(probe_churn(f"ws://127.0.0.1:{port}/", connections=30, duration_s=2.0))
    assert result.ok, result.error
    assert (result.opened, result.closed_by_us, result.closed_by_peer, result.failed) == (30, 30, 0, 0)
    assert result.peak_open == 30 and result.close_rate_per_open_per_minute == 0.0
    assert 0 < result.latency_p50_s <= result.latency_p99_s <= result.latency_max_s
    assert result.connection_seconds == pytest.approx(60, rel=0.15)
    opened = [sample.opened for sample in result.timeline]
    assert opened == sorted(opened) and result.timeline[-1].open == 0
    assert result.elapsed_s < 4


def test_counts_connections_the_server_ends(servers: ServerThread) -> None:
    """A server ending every connection at 0.5 s: peer closes with 1006 by FIN, far above 5%/min."""
    port = servers.start_websocket(lifetime_s=0.5)
    result = run_sync(probe_churn(f"ws://127.0.0.1:{port}/", connections=10, duration_s=2.0))
    assert result.ok and result.closed_by_peer >= 10
    assert set(result.close_codes) == {1006} and set(result.end_kinds) == {"fin"}
    assert result.close_rate_per_open_per_minute > 0.05
    assert result.opened == result.closed_by_peer + result.closed_by_us


def test_cycles_connections_with_hold(servers: ServerThread) -> None:
    """hold_s=0 opens and closes at once, over and over: many handshakes per slot."""
    port = servers.start_websocket()
    result = run_sync(probe_churn(f"ws://127.0.0.1:{port}/", connections=10, duration_s=1.5, hold_s=0))
    assert result.ok and result.opened > 50 and result.closed_by_peer == 0
    assert result.closed_by_us == result.opened and result.cycling_slots == 10


def test_mixes_held_and_cycling_slots(servers: ServerThread) -> None:
    """Two cycling slots reopen every ~0.2 s while four hold theirs for the whole window."""
    port = servers.start_websocket()
    result = run_sync(probe_churn(f"ws://127.0.0.1:{port}/", connections=6, duration_s=2.0, hold_s=0.2,
                                  cycling_slots=2))
    assert result.ok and result.cycling_slots == 2 and result.hold_s == 0.2
    assert 4 + 2 * 5 <= result.opened <= 4 + 2 * 25
    assert min(sample.open for sample in result.timeline[1:-1]) >= 4


def test_caps_handshakes_in_flight(servers: ServerThread) -> None:
    """With max_in_flight 4, a server holding each handshake 0.3 s never sees more than 4 at once."""
    seen: dict[str, int] = {}
    port = servers.start_websocket(handshake_delay_s=0.3, handshakes=seen)
    result = run_sync(probe_churn(f"ws://127.0.0.1:{port}/", connections=12, duration_s=2.0,
                                  max_in_flight=4))
    assert result.ok and result.opened == 12 and result.max_in_flight == 4
    assert seen["peak"] == 4


def test_progress_is_reported(servers: ServerThread) -> None:
    """The progress callback sees the window advance and the counters grow."""
    port = servers.start_websocket()
    updates: list[ChurnProgress] = []
    run_sync(probe_churn(f"ws://127.0.0.1:{port}/", connections=5, duration_s=1.0, progress=updates.append))
    assert len(updates) >= 4 and updates[-1].opened == 5
    assert [u.elapsed_s for u in updates] == sorted(u.elapsed_s for u in updates)


def test_refused_port_is_a_result(closed_port: int) -> None:
    """Nothing listening: ok=False, every failure counted with its reason, no traceback."""
    result = run_sync(probe_churn(f"ws://127.0.0.1:{closed_port}/", connections=3, duration_s=1.0))
    assert not result.ok and result.error_kind is FailureKind.REFUSED
    assert result.opened == 0 and result.failed == result.attempts >= 3
    assert "refused" in result.error


_EMFILE_SCRIPT = """
import json, os, resource, sys
from runbook.probes import probe_churn, run_sync
open_now = len(os.listdir("/proc/self/fd"))
resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 25, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
r = run_sync(probe_churn(sys.argv[1], connections=60, duration_s=1.5))
print(json.dumps({"ok": r.ok, "kind": r.error_kind, "error": r.error, "opened": r.opened}))
"""


def test_file_descriptor_limit_is_a_result(servers: ServerThread) -> None:
    """Run out of descriptors (a low RLIMIT_NOFILE in a child process): EMFILE is reported, not raised."""
    port = servers.start_websocket()
    done = subprocess.run([sys.executable, "-c", _EMFILE_SCRIPT, f"ws://127.0.0.1:{port}/"],
                          capture_output=True, text=True, timeout=60, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["ok"] is False and outcome["kind"] == "too_many_files"
    assert "ulimit -n" in outcome["error"] and 0 < outcome["opened"] < 60
