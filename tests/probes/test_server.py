"""Socket states and process sampling of a real server process: the lab's leaking server and a clean one.

Both run as child processes (``python -m runbook.lab.server``) and get the same probe run at once,
with all 50 churn slots cycling every ~0.2 s so each serves a few hundred connections in 4 s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook.diagnosis.probe_rules import probe_signals
from runbook.lab.processes import free_port
from runbook.lab.server import ServerFaults, python_server
from runbook.observations import ProbeReport
from runbook.probes import probe_all, probe_server, run_sync

WINDOW_S = 4.0


@pytest.fixture(scope="module")
def lab_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    folder = Path(tmp_path_factory.mktemp("lab-servers"))
    ports = {"leaky": free_port(), "clean": free_port()}
    faults = {"leaky": ServerFaults(leak=True, leak_socket_share=1.0), "clean": None}
    handles = [python_server(port, folder / f"{name}.jsonl", folder / f"{name}.out", ping_interval=None,
                             faults=faults[name]) for name, port in ports.items()]
    try:
        for handle, port in zip(handles, ports.values()):
            handle.start()
            handle.wait_listening(port)
        yield ports
    finally:
        for handle in handles:
            handle.stop()


@pytest.fixture(scope="module")
def reports(lab_servers: dict[str, int]) -> dict[str, ProbeReport]:
    async def both() -> dict[str, ProbeReport]:
        names = list(lab_servers)
        done = await asyncio.gather(*(
            probe_all(f"ws://127.0.0.1:{lab_servers[n]}/", probe_seconds=WINDOW_S, connections=50,
                      churn_hold_s=0.2, churn_cycling_slots=50, server_port=lab_servers[n])
            for n in names))
        return dict(zip(names, done))

    return run_sync(both())


def test_leaking_server_piles_up_close_wait_and_descriptors(reports: dict[str, ProbeReport]) -> None:
    """The leaking server keeps every socket: CLOSE_WAIT grows, fds and RSS stay after the closes."""
    report = reports["leaky"]
    sockets, process = report.sockets, report.process
    assert sockets.ok and process.ok and process.found_by.startswith("listening on port")
    assert sockets.last("CLOSE_WAIT") >= 50 and sockets.trend_per_minute("CLOSE_WAIT") > 0
    assert process.retained_fds >= 0.9 * process.served
    assert process.per_1k_served(process.retained_rss_bytes) > 50 * 2**20
    names = {s.name for s in probe_signals(report)}
    assert {"close_wait_growing", "server_keeps_descriptors", "server_memory_grows"} <= names


def test_clean_server_gives_resources_back(reports: dict[str, ProbeReport]) -> None:
    """The same churn on the clean server leaves no CLOSE_WAIT and no extra descriptors."""
    report = reports["clean"]
    sockets, process = report.sockets, report.process
    assert sockets.ok and process.ok and process.served >= 200
    assert sockets.peak("CLOSE_WAIT") == 0 and abs(process.retained_fds) <= 1
    assert process.samples[0].served == 0 and max(s.connections for s in process.samples) > 0
    names = {s.name for s in probe_signals(report)}
    assert "server_releases_resources" in names
    assert not names & {"close_wait_growing", "server_keeps_descriptors", "server_memory_grows"}


def test_nothing_listening_is_a_result(closed_port: int) -> None:
    """Sampling a port nobody listens on says so, for sockets and for the process."""
    sockets, process = run_sync(probe_server(closed_port, duration_s=0.2, interval_s=0.1))
    assert not sockets.ok and "nothing listens" in sockets.error
    assert not process.ok and "nothing listens" in process.error


def test_unknown_pid_is_a_result() -> None:
    """A pid that does not exist gives ok=False naming it."""
    _sockets, process = run_sync(probe_server(pid=2**22 + 12345, duration_s=0.1, interval_s=0.1))
    assert not process.ok and str(2**22 + 12345) in process.error
