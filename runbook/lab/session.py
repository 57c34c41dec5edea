"""Interactive uses of the lab: serve a scenario until Ctrl-C, and the demo.

Both are synchronous functions (the lab's event loops run in threads), so they work from the
CLI, a script, a thread or a notebook. They write to an ``echo`` callable (``print`` by
default) and stop every process they started on every exit path: normal end, error, Ctrl-C or
SIGTERM (turned into Ctrl-C in the main thread).

The demo needs the runbook itself, which the lab must not import (DESIGN.md: the lab sits
below the steps and the CLI): its caller passes the function that runs the runbook.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runbook.errors import ParameterError
from runbook.lab.clients import ClientStats
from runbook.lab.scenarios import (
    ScenarioLab,
    get_scenario,
    install_interrupt_handler,
)

DEFAULT_SEED = 2
# `lab serve` stops by itself after this long: every client loop is bounded in time.
DEFAULT_MAX_SERVE_S = 3600.0
# Seconds between liveness checks of the lab's parts while it runs.
CHECK_EVERY_S = 0.5
# The demo's incident: the one a responder meets most (facts.md: "disconnects every minute").
DEMO_SCENARIO = "proxy_timeout"
# Seconds the demo lets clients run before the runbook reads the logs: at the compressed scale
# (60 s -> 3 s) that is five read timeouts, enough for the lifetime peak to stand out.
DEMO_LAB_SECONDS = 15.0
DEMO_CLIENTS = 40
# Probe budgets the demo passes to the runbook (probes, when wired, must fit the demo's minute).
DEMO_PROBE_SECONDS = 8.0
DEMO_CONNECTIONS = 10


def run_for(lab: ScenarioLab, seconds: float) -> None:
    """Let the lab run for ``seconds``, raising LabError as soon as one of its parts died."""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        time.sleep(min(CHECK_EVERY_S, remaining))
        lab.check_running()


def summarize_clients(stats: dict[str, ClientStats]) -> str:
    """One line: what the population saw (sessions, drops by close code, failed connects)."""
    total = Counter()
    codes: Counter[int] = Counter()
    for seen in stats.values():
        total.update(connects=seen.connects, leaves=seen.leaves, drops=seen.drops,
                     failed=seen.failed_connects, gave_up=int(seen.gave_up))
        codes.update({int(code): count for code, count in seen.drop_codes.items()})
    by_code = ", ".join(f"{code}: {count}" for code, count in sorted(codes.items())) or "none"
    return (f"{len(stats)} clients: {total['connects']} sessions, {total['leaves']} left normally, "
            f"{total['drops']} dropped (codes {by_code}), {total['failed']} failed connects, "
            f"{total['gave_up']} gave up")


def serve(scenario_name: str, *, time_scale: float | None = None, fast: bool = False,
          clients: int | None = None, seed: int = DEFAULT_SEED, proxy: str = "auto",
          run_dir: Path | None = None, max_seconds: float = DEFAULT_MAX_SERVE_S,
          echo: Callable[[str], Any] = print, ready: Callable[[ScenarioLab], Any] | None = None,
          ) -> ScenarioLab:
    """Run a scenario with its clients until Ctrl-C (or ``max_seconds``), printing its parameters.

    ``fast`` uses the scenario's own compressed time scale, ``time_scale`` any other;
    ``clients`` 0 runs the servers and proxy with no population (a quiet target for probes).
    The logs stay in ``run_dir`` (a new temporary folder when None), which is printed. ``ready``
    is called with the running lab once everything listens (tests use it). Returns the stopped
    lab. Raises ParameterError for bad arguments, LabError when a part fails.
    """
    if max_seconds <= 0:
        raise ParameterError("max_seconds", f"must be positive, got {max_seconds}")
    scenario = get_scenario(scenario_name)
    scenario = scenario.compressed() if fast else scenario.scaled(time_scale or 1.0)
    if clients:
        scenario = scenario.with_clients(clients)
    folder = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix=f"ws-runbook-lab-{scenario.name}-"))
    folder = folder.resolve()  # printed parameters must work from any folder
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(folder.stat().st_mode | 0o755)  # nginx workers run as `nobody` under root
    restore = install_interrupt_handler()
    lab = ScenarioLab(scenario, folder, proxy=proxy)
    try:
        with lab:
            for line in lab.describe():
                echo(line)
            echo("")
            echo("runbook parameters (paste into a shell):")
            echo(f"  {lab.run_command()}")
            echo("")
            if clients != 0:
                population = lab.start_clients(seed)
                echo(f"clients: {len(population.specs)} running; Ctrl-C stops everything "
                     f"(it stops by itself after {max_seconds:g} s)")
            else:
                echo(f"clients: none; Ctrl-C stops everything (it stops by itself after "
                     f"{max_seconds:g} s)")
            if ready is not None:
                ready(lab)
            try:
                run_for(lab, max_seconds)
                echo(f"stopping: {max_seconds:g} s are up")
            except KeyboardInterrupt:
                echo("stopping: interrupted")
            if lab.clients is not None:
                echo(summarize_clients(lab.clients.stop()))
    finally:
        restore()
    echo(f"stopped every lab process; logs kept in {folder}")
    return lab


@dataclass
class DemoResult:
    """What ``run_demo`` did: the lab's parameters, the runbook's outcome, how long it took."""

    scenario: str
    proxy_used: str
    params: dict[str, Any]
    outcome: Any  # whatever ``run_runbook`` returned (runbook.execute.RunOutcome from the CLI)
    lab_dir: Path
    wall_s: float
    clients: str


def run_demo(run_runbook: Callable[[dict[str, Any], Path], Any], output_dir: Path, *,
             scenario_name: str = DEMO_SCENARIO, lab_seconds: float = DEMO_LAB_SECONDS,
             proxy: str = "auto", echo: Callable[[str], Any] = print) -> DemoResult:
    """Start a compressed scenario, let it misbehave, run the runbook on it live, stop it all.

    ``run_runbook(params, output_dir)`` runs the runbook with the lab's parameters (target,
    direct URL, server port and pid, the live close logs, nginx's config) while the lab and its
    clients keep running. The lab's files stay in ``output_dir/lab`` next to the report, so the
    paths in the report still open afterwards; that folder is replaced on each run. Only
    loopback is used and nothing is downloaded (the Node server runs only when the ws package is
    already installed). Raises LabError when a part of the lab fails.
    """
    started = time.monotonic()
    scenario = get_scenario(scenario_name).compressed().with_clients(DEMO_CLIENTS)
    output_dir = Path(output_dir)
    lab_dir = (output_dir / "lab").resolve()  # the report names these paths: make them absolute
    shutil.rmtree(lab_dir, ignore_errors=True)
    lab_dir.mkdir(parents=True)
    lab_dir.chmod(0o755)  # nginx workers run as `nobody` under root
    restore = install_interrupt_handler()
    try:
        with ScenarioLab(scenario, lab_dir, proxy=proxy, install_node=False) as lab:
            echo(f"demo: {scenario.name} - {scenario.title}")
            echo(f"  time scale {scenario.time_scale:g}: every timeout compressed; "
                 f"true cause: {', '.join(scenario.true_causes) or 'none'}")
            echo(f"  proxy: {lab.proxy_used}")
            for note in lab.notes:
                echo(f"  note: {note}")
            echo(f"  proxy URL {lab.url()}, direct URL {lab.url(direct=True)}, server port "
                 f"{lab.server_ports['python']}, pid {lab.servers['python'].pid}")
            population = lab.start_clients(DEFAULT_SEED)
            echo(f"  {len(population.specs)} clients running for {lab_seconds:g} s ...")
            run_for(lab, lab_seconds)
            params: dict[str, Any] = {
                **lab.runbook_params(),
                "incident_id": f"demo-{scenario.name.replace('_', '-')}",
                "probe_seconds": DEMO_PROBE_SECONDS,
                "connections": DEMO_CONNECTIONS,
            }
            echo("  running the runbook on the live lab and its logs ...")
            outcome = run_runbook(params, output_dir)
            clients = summarize_clients(population.stop())
            proxy_used = lab.proxy_used
    finally:
        restore()
    return DemoResult(scenario.name, proxy_used, params, outcome, lab_dir,
                      time.monotonic() - started, clients)
