"""Fault lab: local, real environments that reproduce WebSocket disconnect root causes.

Everything runs on 127.0.0.1 as ordinary processes and threads started and stopped through
their own handles: a real nginx (:mod:`runbook.lab.nginx`), a python ``websockets`` server with
fault modes writing a JSON-lines close log (:mod:`runbook.lab.server`), a Node ``ws`` server
running the reference runbook's WebSocketMonitor (:mod:`runbook.lab.processes`,
``node_monitor_server.js``), a TCP relay standing for proxies and network devices
(:mod:`runbook.lab.relay`: forward, close on idle, silent blackhole) and a population of
browser-like clients (:mod:`runbook.lab.clients`). :mod:`runbook.lab.scenarios` defines what
each scenario runs and :class:`ScenarioLab` runs one; ``runbook.lab.record.record`` keeps its
logs (the samples in ``data/samples/`` come from it); :mod:`runbook.lab.session` serves a
scenario until Ctrl-C and stages the demo. ``record`` is not re-exported here: its name is also
its module's, and a package attribute cannot reliably be both.

The lab is a testing helper for the runbook (DESIGN.md: ``lab`` is never used by the core).
"""

from __future__ import annotations

import importlib
from typing import Any

# Public names and the module that defines each. Imported lazily (PEP 562) so that running a
# submodule as a program (``python -m runbook.lab.server``, ``-m runbook.lab.record``) does not
# import it twice.
_EXPORTS = {
    "Activity": "clients",
    "BackgroundPopulation": "clients",
    "ClientPopulation": "clients",
    "ClientSpec": "clients",
    "Device": "clients",
    "PopulationMix": "clients",
    "ReconnectPolicy": "clients",
    "build_population": "clients",
    "Nginx": "nginx",
    "ProxySite": "nginx",
    "Route": "nginx",
    "render_nginx_conf": "nginx",
    "ChildProcess": "processes",
    "LabError": "processes",
    "MissingBinaryError": "processes",
    "leftovers": "processes",
    "Recording": "record",
    "FlowState": "relay",
    "Relay": "relay",
    "RelayMode": "relay",
    "SCENARIOS": "scenarios",
    "Middlebox": "scenarios",
    "Scenario": "scenarios",
    "ScenarioLab": "scenarios",
    "get_scenario": "scenarios",
    "ServerFaults": "server",
    "run_demo": "session",
    "serve": "session",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'runbook.lab' has no attribute {name!r}")
    return getattr(importlib.import_module(f"runbook.lab.{module}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
