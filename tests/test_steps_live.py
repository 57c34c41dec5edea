"""The runbook's live steps against real python-websockets servers on loopback."""

from __future__ import annotations

import json
import os
import socket

import pytest

import runbook.steps as rb
from tests.probes.servers import ServerThread


@pytest.fixture(scope="module")
def servers():
    with ServerThread() as thread:
        yield thread


def statuses(run):
    return {s.id.value: s.status.value for s in run.diagnosis.symptoms}


def test_server_with_a_hard_lifetime_is_degraded(servers, tmp_path):
    """Connections cut at 2 s with no close frame: timeouts present and the probes' evidence shown."""
    port = servers.start_websocket(lifetime_s=2.0)
    run = rb.run_all({"target_url": f"ws://127.0.0.1:{port}/", "probe_seconds": 6, "connections": 4, "output_dir": str(tmp_path)})
    steps = {s.step: s for s in run.steps}
    assert steps["live_probes"].status == "ok", steps["live_probes"].detail
    assert statuses(run)["timeouts_failed_upgrades"] == "present"
    names = {s.name for s in run.diagnosis.signals}
    assert "hard_connection_lifetime" in names or "probe_connections_die" in names
    document = json.loads((tmp_path / "diagnosis.json").read_text())
    assert document["verdict"] == "degraded"
    assert any(e["signal"] in names for c in document["ranked_causes"] for e in c["evidence"])


def test_healthy_server_clears_the_live_symptoms(servers, tmp_path):
    """A pinging server that keeps connections: upgrade and proxy symptoms absent, leaks sampled."""
    port = servers.start_websocket(ping_interval=1.0)
    run = rb.run_all(
        {"target_url": f"ws://127.0.0.1:{port}/", "probe_seconds": 5, "connections": 4, "server_port": port, "output_dir": str(tmp_path)}
    )
    found = statuses(run)
    assert found["timeouts_failed_upgrades"] == "absent"
    assert found["proxy_lb_issues"] == "absent"
    assert found["abandoned_connection_leaks"] in ("absent", "unknown")
    steps = {s.step: s for s in run.steps}
    assert steps["server_sockets"].status == "ok"
    assert "server sockets" in steps["server_sockets"].detail
    assert run.diagnosis.verdict.value in ("healthy", "inconclusive")


def test_unreachable_target_is_evidence_not_a_crash(tmp_path):
    """A closed port gives a failed handshake as evidence; the rest of the runbook runs."""
    with socket.socket() as bound:  # bound a moment ago, then released: nothing listens
        bound.bind(("127.0.0.1", 0))
        closed_port = bound.getsockname()[1]
    run = rb.run_all({"target_url": f"ws://127.0.0.1:{closed_port}/ws", "probe_seconds": 3, "output_dir": str(tmp_path)})
    steps = {s.step: s for s in run.steps}
    assert steps["live_probes"].status == "ok" and "failed" in steps["live_probes"].detail
    assert "target_connection_refused" in {s.name for s in run.diagnosis.signals}
    assert steps["outputs"].status == "ok"


def test_server_only_sampling_without_target(servers, tmp_path):
    """server_port alone samples the server's sockets for probe_seconds, with no probe traffic."""
    port = servers.start_websocket()
    run = rb.run_all({"server_port": port, "probe_seconds": 3, "output_dir": str(tmp_path)})
    steps = {s.step: s for s in run.steps}
    assert steps["live_probes"].status == "skipped"
    assert steps["server_sockets"].status == "ok"
    assert run.observations.probes.sockets is not None and run.observations.probes.sockets.ok


def test_header_values_never_reach_the_outputs(servers, tmp_path):
    """A header sent from header_env reaches the server but not diagnosis.json."""
    port = servers.start_websocket(require_header=("Authorization", "Bearer s3cr3t-live-token"))
    os.environ["WS_TEST_AUTH"] = "Authorization: Bearer s3cr3t-live-token"
    try:
        run = rb.run_all(
            {"target_url": f"ws://127.0.0.1:{port}/", "header_env": ["WS_TEST_AUTH"], "probe_seconds": 3, "connections": 2, "output_dir": str(tmp_path)}
        )
    finally:
        del os.environ["WS_TEST_AUTH"]
    assert run.observations.probes.handshake_target.ok
    assert "s3cr3t" not in (tmp_path / "diagnosis.json").read_text()
