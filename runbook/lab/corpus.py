"""The labeled incident corpus: lab recordings with known causes, for measuring the diagnosis.

Every case is data (:class:`CaseSpec`): a base scenario of :mod:`runbook.lab.scenarios` plus
overrides of its knobs, the proxy (real nginx or real HAProxy), the time scale, the population,
the seed and the true causes (DESIGN.md ids; empty for a healthy service). Both server stacks run
in every case, behind the one proxy, each with its own log: the python ``websockets`` server
(``close-log.jsonl``) on ``/ws/chat`` and the Node ``ws`` server (``server.log``) on ``/ws/live``.

:func:`record_case` records one case with :func:`runbook.lab.record.record` and then, right
after the logs were copied and while the clients and servers still run, runs the real live
probes (:func:`runbook.probes.probe_url`) against the case's proxied URL, its direct URL and the
python server's port and pid: the probes meet the same fault as the clients, and the logs hold
none of the probes' own connections (a responder who grabbed the logs, then probed), so the
"logs only" input is not coloured by the probes. Each case folder ``<out>/<id>/`` gets the servers'
logs, the proxy's logs and config, ``server-state.csv``, ``probes.json`` (the ProbeReport,
:mod:`runbook.probes.serialize`) and ``case.json`` (truth, split, settings, what the probes were
given). ``<out>/split.json`` holds the calibration / evaluation split (:func:`split_cases`).

Run ``ws-runbook lab corpus --out data/corpus [--only ID ...]`` or
``python -m runbook.lab.corpus --out data/corpus``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbook.errors import ParameterError
from runbook.lab.processes import LabError
from runbook.lab.record import LiveJob, Recording, record
from runbook.lab.scenarios import (
    BACKENDS,
    NODE_BACKEND,
    PYTHON_BACKEND,
    ROUTES,
    Scenario,
    ScenarioLab,
    get_scenario,
    install_interrupt_handler,
)

CAUSES = ("proxy", "heartbeat", "network", "resource_leak", "client")
PROXIES = ("nginx", "haproxy")
STACKS = {PYTHON_BACKEND: "python websockets", NODE_BACKEND: "Node ws"}
CASE_FILE = "case.json"
PROBES_FILE = "probes.json"
SPLIT_FILE = "split.json"
SPLITS = ("calibration", "evaluation")
# About 40% of each stratum is held out for evaluation (rounded, at least one when n >= 2).
EVALUATION_SHARE = 0.4
SPLIT_RULE = (
    "stratum = the case's mechanism ('healthy', 'two_fault', or the single fault: "
    "'proxy_upgrade', 'proxy_timeout', 'heartbeat', 'network', 'resource_leak', 'client'); "
    "within a stratum, cases are ordered by sha256(id) and the first round(0.4 * n) "
    "(at least 1 when n >= 2) go to evaluation, the rest to calibration. Fixed before any "
    "tuning; tune only on calibration. Cases added after the split was fixed "
    "(added_after_split) all go to calibration and take no part in the ordering, so the "
    "evaluation set never changes."
)
DEFAULT_TIME_SCALE = 0.1
PROBE_CONNECTIONS = 10
# Probes watch about 2.5 idle timeouts, within these bounds (seconds of wall time).
PROBE_TIMEOUTS = 2.5
MIN_PROBE_S = 5.0
PROBE_SHARE_OF_RECORDING = 0.6

# A client reconnect loop at time scale 0.1: 2.5 s scaled is 0.25 s between attempts.
FIXED_RETRY_AT_TENTH = {"backoff": False, "base_delay_s": 2.5, "max_delay_s": 2.5, "jitter": 0.0,
                        "max_attempts": 1000}


@dataclass(frozen=True)
class CaseSpec:
    """One corpus case as data; :meth:`scenario` builds the scenario it records."""

    id: str
    stratum: str  # the split's stratum (see SPLIT_RULE)
    base: str  # scenario name in runbook.lab.scenarios
    proxy: str  # "nginx" or "haproxy"
    true_causes: tuple[str, ...]
    seconds: float  # wall-clock recording length
    clients: int
    seed: int
    time_scale: float = DEFAULT_TIME_SCALE
    # Scenario fields to change (durations in real-time seconds, before scaling); nested
    # dataclasses (mix, mix.reconnect, python_faults, middlebox) take a dict of their fields.
    overrides: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    backends: tuple[str, ...] = BACKENDS
    # Recorded after the split was fixed: calibration only, never moves another case (SPLIT_RULE).
    added_after_split: bool = False

    def scenario(self) -> Scenario:
        """The base scenario with the overrides, scaled, with this case's population."""
        base = apply_overrides(get_scenario(self.base), self.overrides)
        return base.scaled(self.time_scale).with_clients(self.clients)


def apply_overrides(value: Any, overrides: dict[str, Any]) -> Any:
    """``value`` (a dataclass) with ``overrides`` applied; dicts recurse into nested dataclasses.

    Raises ParameterError naming an unknown field.
    """
    names = {f.name for f in dataclasses.fields(value)}
    changes = {}
    for name, new in overrides.items():
        if name not in names:
            raise ParameterError("overrides", f"{type(value).__name__} has no field {name!r}")
        current = getattr(value, name)
        if isinstance(new, dict) and dataclasses.is_dataclass(current):
            new = apply_overrides(current, new)
        elif isinstance(new, list) and isinstance(current, tuple):
            new = tuple(new)
        changes[name] = new
    return dataclasses.replace(value, **changes)


def _cases() -> list[CaseSpec]:
    """The corpus, in the order it is recorded."""
    cases: list[CaseSpec] = []
    seed = iter(range(101, 1000))

    def add(id_: str, stratum: str, base: str, proxy: str, causes: tuple[str, ...], *,
            seconds: float = 36.0, clients: int = 60, time_scale: float = DEFAULT_TIME_SCALE,
            note: str = "", added_after_split: bool = False, **overrides: Any) -> None:
        cases.append(CaseSpec(id=id_, stratum=stratum, base=base, proxy=proxy, true_causes=causes,
                              seconds=seconds, clients=clients, seed=next(seed),
                              time_scale=time_scale, overrides=overrides, note=note,
                              added_after_split=added_after_split))

    for proxy in PROXIES:
        p = proxy[:2]  # "ng" / "ha" in ids
        no_upgrade = ("the upgrade is not forwarded (nginx: bare proxy_pass, HTTP/1.0 upstream)"
                      if proxy == "nginx" else
                      "the upgrade is not forwarded (HAProxy: `http-request del-header Upgrade`)")
        # --- healthy: heartbeats shorter than every idle timeout ---------------------------
        add(f"{p}-healthy-baseline", "healthy", "healthy", proxy, (), clients=60,
            note="default heartbeats (20 s python, 30 s Node) under a 60 s proxy timeout")
        add(f"{p}-healthy-churn", "healthy", "healthy", proxy, (), clients=80,
            mix={"mean_visit_s": 25.0, "return_after_s": [2.0, 20.0], "idle_share": 0.5},
            note="heavy normal churn: short visits, users leave with 1000/1001 at all ages")
        add(f"{p}-healthy-mobile", "healthy", "healthy", proxy, (), clients=70,
            mix={"mobile_share": 0.85, "mean_visit_s": 90.0, "return_after_s": [5.0, 40.0]},
            python_ping_interval_s=15.0, node_ping_interval_s=25.0,
            note="mostly mobile clients that come and go; heartbeat 15/25 s")
        add(f"{p}-healthy-long", "healthy", "healthy", proxy, (), clients=50, seconds=40.0,
            mix={"idle_share": 0.75, "mean_visit_s": None},
            proxy_read_timeout_s=100.0, python_ping_interval_s=25.0, node_ping_interval_s=25.0,
            note="long idle sessions nobody leaves; 100 s proxy timeout, 25 s heartbeat")

        # --- proxy: the upgrade is not forwarded ------------------------------------------
        add(f"{p}-proxy-upgrade-a", "proxy_upgrade", "proxy_missing_upgrade", proxy, ("proxy",),
            seconds=20.0, clients=40, note=no_upgrade)
        add(f"{p}-proxy-upgrade-b", "proxy_upgrade", "proxy_missing_upgrade", proxy, ("proxy",),
            seconds=20.0, clients=70, mix={"mobile_share": 0.7},
            note=f"{no_upgrade}; mostly mobile users")

        # --- proxy: idle timeout shorter than the heartbeat --------------------------------
        for timeout, ping, clients, idle in ((30.0, 45.0, 60, 0.55), (60.0, 90.0, 70, 0.5),
                                             (100.0, 150.0, 50, 0.6)):
            add(f"{p}-proxy-timeout-{timeout:.0f}", "proxy_timeout", "proxy_timeout", proxy,
                ("proxy",), clients=clients, seconds=44.0 if timeout > 60 else 36.0,
                proxy_read_timeout_s=timeout, python_ping_interval_s=ping,
                node_ping_interval_s=ping, mix={"idle_share": idle},
                note=f"proxy idle timeout {timeout:g} s, heartbeat {ping:g} s")
        if proxy == "haproxy":
            add("ha-proxy-tunnel-40", "proxy_timeout", "proxy_timeout", proxy, ("proxy",),
                clients=60, proxy_read_timeout_s=50.0, haproxy_timeout_tunnel_s=40.0,
                python_ping_interval_s=60.0, node_ping_interval_s=60.0,
                note="`timeout tunnel 40s` set, shorter than the 60 s heartbeat")

        # --- heartbeat: none at all -------------------------------------------------------
        for timeout, clients, mobile in ((30.0, 60, 0.4), (60.0, 70, 0.6), (100.0, 50, 0.3)):
            add(f"{p}-heartbeat-{timeout:.0f}", "heartbeat", "heartbeat_missing", proxy,
                ("heartbeat",), clients=clients, seconds=44.0 if timeout > 60 else 36.0,
                proxy_read_timeout_s=timeout, mix={"mobile_share": mobile},
                note=f"no heartbeat; proxy idle timeout {timeout:g} s; L4 LB path for phones")

        # --- network: a silent idle drop on the users' path -------------------------------
        for box, ping, clients in ((20.0, 30.0, 60), (30.0, 45.0, 70), (45.0, 60.0, 50)):
            add(f"{p}-network-{box:.0f}", "network", "network_idle_drop", proxy, ("network",),
                clients=clients, python_ping_interval_s=ping, node_ping_interval_s=ping,
                middlebox={"idle_timeout_s": box},
                note=f"firewall forgets flows idle {box:g} s; heartbeat {ping:g} s")

        # --- resource leak ------------------------------------------------------------------
        for share, visit, clients in ((0.3, 30.0, 60), (0.1, 20.0, 50), (0.5, 45.0, 70)):
            add(f"{p}-leak-{round(share * 100)}", "resource_leak", "resource_leak", proxy,
                ("resource_leak",), clients=clients,
                python_faults={"leak": True, "leak_socket_share": share},
                mix={"mean_visit_s": visit, "return_after_s": [2.0, 10.0]},
                note=f"both servers leak; {share:.0%} of python sockets left in CLOSE_WAIT; "
                     f"visits {visit:g} s")

        # --- client: reconnect storm (real time: the loop is 0.25 s) -----------------------
        for capacity, clients, seconds in ((20, 50, 15.0), (10, 40, 15.0)):
            add(f"{p}-client-storm-{capacity}", "client", "client_reconnect_storm", proxy,
                ("client",), time_scale=1.0, seconds=seconds, clients=clients,
                python_faults={"max_connections": capacity}, node_max_connections=capacity,
                note=f"servers shed beyond {round(capacity * clients / 60)} open with 1013; "
                     "clients retry every 0.25 s with no backoff")

        # --- two faults at once -------------------------------------------------------------
        add(f"{p}-two-timeout-leak", "two_fault", "proxy_timeout", proxy,
            ("proxy", "resource_leak"), clients=60,
            python_faults={"leak": True, "leak_socket_share": 0.3}, node_leak=True,
            mix={"idle_share": 0.55, "mean_visit_s": 30.0, "return_after_s": [2.0, 10.0]},
            note="proxy timeout 60 s before a 90 s heartbeat, and both servers leak")
        add(f"{p}-two-nohb-storm", "two_fault", "heartbeat_missing", proxy,
            ("heartbeat", "client"), clients=40, seconds=30.0,
            # capacities are given for the base's 150 users: 30 -> 8 per server at 40 users
            python_faults={"max_connections": 30, "shed_code": 1013}, node_max_connections=30,
            mix={"reconnect": FIXED_RETRY_AT_TENTH, "max_sessions": 300},
            note="no heartbeat (idle cuts at 60 s) and clients retry every 0.25 s with no "
                 "backoff against servers that shed beyond 8 open")
        add(f"{p}-two-network-leak", "two_fault", "network_idle_drop", proxy,
            ("network", "resource_leak"), clients=60,
            python_faults={"leak": True, "leak_socket_share": 0.3}, node_leak=True,
            mix={"idle_share": 0.55, "mean_visit_s": 40.0, "return_after_s": [2.0, 10.0]},
            note="firewall drops flows idle 30 s before the 45 s heartbeat, and both servers leak")
        add(f"{p}-two-upgrade-storm", "two_fault", "proxy_missing_upgrade", proxy,
            ("proxy", "client"), seconds=20.0, clients=40,
            mix={"reconnect": FIXED_RETRY_AT_TENTH},
            note=f"{no_upgrade}, and clients retry every 0.25 s with no backoff")

    # --- added after the split (calibration only): the upgrade failure with a retry loop had no
    # calibration case, so nothing could be tuned for it without looking at evaluation cases.
    for proxy in PROXIES:
        p = proxy[:2]
        no_upgrade = ("the upgrade is not forwarded (nginx: bare proxy_pass, HTTP/1.0 upstream)"
                      if proxy == "nginx" else
                      "the upgrade is not forwarded (HAProxy: `http-request del-header Upgrade`)")
        add(f"{p}-two-upgrade-loop", "two_fault", "proxy_missing_upgrade", proxy,
            ("proxy", "client"), seconds=20.0, clients=60, added_after_split=True,
            mix={"reconnect": {**FIXED_RETRY_AT_TENTH, "base_delay_s": 5.0, "max_delay_s": 5.0},
                 "mobile_share": 0.6},
            note=f"{no_upgrade}, and mostly mobile clients retry every 0.5 s with no backoff")
    return cases


CASES: tuple[CaseSpec, ...] = tuple(_cases())


def get_case(case_id: str) -> CaseSpec:
    for case in CASES:
        if case.id == case_id:
            return case
    raise ParameterError("only", f"unknown case {case_id!r}; see data/corpus/README.md")


# --- the split ------------------------------------------------------------------------------


def _order_key(case_id: str) -> str:
    return hashlib.sha256(case_id.encode()).hexdigest()


def split_cases(cases: Sequence[CaseSpec] = CASES) -> dict[str, str]:
    """Case id -> "calibration" or "evaluation", by SPLIT_RULE (deterministic, stratified)."""
    by_stratum: dict[str, list[str]] = defaultdict(list)
    split = {}
    for case in cases:
        if case.added_after_split:
            split[case.id] = "calibration"
        else:
            by_stratum[case.stratum].append(case.id)
    for ids in by_stratum.values():
        ordered = sorted(ids, key=_order_key)
        held_out = round(EVALUATION_SHARE * len(ordered))
        if len(ordered) >= 2:
            held_out = max(1, min(held_out, len(ordered) - 1))
        for index, case_id in enumerate(ordered):
            split[case_id] = "evaluation" if index < held_out else "calibration"
    return {case.id: split[case.id] for case in cases}


def split_document(cases: Sequence[CaseSpec] = CASES) -> dict[str, Any]:
    """What split.json holds: the rule and both lists of case ids."""
    split = split_cases(cases)
    return {"rule": SPLIT_RULE,
            **{name: [case_id for case_id, chosen in split.items() if chosen == name]
               for name in SPLITS}}


def write_split(out: Path, cases: Sequence[CaseSpec] = CASES) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / SPLIT_FILE
    path.write_text(json.dumps(split_document(cases), indent=2) + "\n")
    return path


# --- probes -----------------------------------------------------------------------------------


def probe_seconds_for(scenario: Scenario, seconds: float) -> float:
    """About 2.5 x the longest idle timer that can fire during the recording (proxy timeout,
    middlebox timeout, server ping interval), within [MIN_PROBE_S, 60% of the recording]."""
    timers = [scenario.proxy_read_timeout_s]
    if scenario.haproxy_timeout_tunnel_s is not None:
        timers.append(scenario.haproxy_timeout_tunnel_s)
    if scenario.middlebox is not None:
        timers.append(scenario.middlebox.idle_timeout_s)
    timers += [t for t in (scenario.python_ping_interval_s, scenario.node_ping_interval_s) if t]
    # A timer longer than half the recording cannot be watched twice: leave it out.
    fitting = [t for t in timers if t <= seconds / 2] or [MIN_PROBE_S / PROBE_TIMEOUTS]
    wanted = PROBE_TIMEOUTS * max(fitting)
    return round(min(max(wanted, MIN_PROBE_S), PROBE_SHARE_OF_RECORDING * seconds), 2)


class ProbeJob:
    """The live probes as a recording's live job; remembers what they were given."""

    def __init__(self, probe_seconds: float, connections: int = PROBE_CONNECTIONS) -> None:
        self.probe_seconds = probe_seconds
        self.connections = connections
        self.given: dict[str, Any] = {}

    def __call__(self, lab: ScenarioLab) -> Any:
        from runbook.probes import probe_url

        params = lab.runbook_params()
        self.given = {"target_url": params["target_url"], "direct_url": params["direct_url"],
                      "server_port": params["server_port"], "server_pid": params["server_pid"],
                      "probe_seconds": self.probe_seconds, "connections": self.connections}
        return probe_url(params["target_url"], params["direct_url"],
                         probe_seconds=self.probe_seconds, connections=self.connections,
                         server_port=params["server_port"], server_pid=params["server_pid"],
                         progress=False)


# --- recording ----------------------------------------------------------------------------------


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)  # enums (RelayMode) and the like


def _client_summary(recording: Recording) -> dict[str, int]:
    total: Counter[str] = Counter()
    for seen in recording.client_stats.values():
        total.update(connects=seen.connects, leaves=seen.leaves, drops=seen.drops,
                     failed_connects=seen.failed_connects, gave_up=int(seen.gave_up))
    devices = Counter(str(spec.device) for spec in recording.clients)
    activities = Counter(str(spec.activity) for spec in recording.clients)
    return {"clients": len(recording.clients), **{f"{k}": v for k, v in devices.items()},
            **{f"{k}": v for k, v in activities.items()}, **dict(total)}


def record_case(case: CaseSpec, out: Path, split: str) -> dict[str, Any]:
    """Record ``case`` into ``out/<id>/``, then run the live probes; return its case.json data.

    The folder is emptied first. Raises LabError when a part of the lab fails.
    """
    from runbook.probes.serialize import report_to_dict

    folder = out / case.id
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    scenario = case.scenario()
    probe_s = probe_seconds_for(scenario, case.seconds)
    job = ProbeJob(probe_s)
    live = LiveJob(job)  # right after the log snapshot, clients still running
    started = time.monotonic()
    recording = record(scenario, folder, duration_s=case.seconds, seed=case.seed,
                       proxy=case.proxy, write_readme=False, write_manifest=False, live_job=live)
    probes_written = False
    if live.result is not None:
        (folder / PROBES_FILE).write_text(
            json.dumps(report_to_dict(live.result), indent=1, ensure_ascii=False) + "\n")
        probes_written = True
    data = {
        "id": case.id,
        "true_causes": list(case.true_causes),
        "split": split,
        "stratum": case.stratum,
        "note": case.note,
        "stack": [STACKS[backend] for backend in case.backends],
        "logs": {STACKS[b]: ROUTES[b][2] for b in case.backends},
        "proxy": case.proxy,
        "proxy_used": recording.proxy_used,
        "base_scenario": case.base,
        "overrides": _json_ready(case.overrides),
        "settings": _json_ready(scenario.settings()),
        "seed": case.seed,
        "time_scale": case.time_scale,
        "clients": case.clients,
        "record_seconds": case.seconds,
        "recorded_from": recording.started_at,
        "snapshot_at": recording.snapshot_at,
        "wall_seconds": round(time.monotonic() - started, 1),
        "probes": {"given": job.given, "when": "right after the log snapshot, clients still running",
                   "file": PROBES_FILE if probes_written else None, "error": live.error},
        "client_summary": _client_summary(recording),
        "empty_logs": recording.empty_logs,
        "notes": recording.notes,
        "versions": recording.versions,
        "files": sorted([*(name for name in recording.files), *([PROBES_FILE] if probes_written else []),
                         CASE_FILE]),
    }
    (folder / CASE_FILE).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return data


README_HEAD = """# Labeled incident corpus

Lab recordings with known causes, for measuring how often the diagnosis is right
(`benchmarks/accuracy.py`). Every file was written by real programs running on loopback: a python
`websockets` server (`/ws/chat`, `close-log.jsonl`) and a Node `ws` server with the reference
runbook's WebSocketMonitor (`/ws/live`, `server.log`) behind one real proxy, **nginx** or
**HAProxy**, with a population of real WebSocket clients (desktop and mobile user agents, idle and
chatty users, users leaving with 1000/1001) and, where the case says so, a silent firewall or L4
balancer (a relay) on the users' path. Nothing was edited by hand; record again instead.

Time is compressed (time scale 0.1 unless the table says otherwise: a 60 s proxy timeout takes
6 s, a 20 s heartbeat 2 s), so every case records in well under a minute of wall time while every
timer keeps its order relative to the others. The reconnect-storm cases run in real time (their
clients retry every 0.25 s).

## Regenerate

```
ws-runbook lab corpus --out data/corpus            # all cases, one at a time (~45 min)
ws-runbook lab corpus --out data/corpus --only ha-network-30 ng-leak-10
python -m runbook.lab.corpus --out data/corpus     # the same without the CLI
```

The cases are data in `runbook/lab/corpus.py` (`CASES`: base scenario of
`runbook/lab/scenarios.py` + overrides, proxy, time scale, clients, seed, true causes). A
recording is not bit-for-bit reproducible (real processes, real timers), but the same case gives
the same mechanism, population and seed.

## Layout: one folder per case

| file | what |
|---|---|
| `close-log.jsonl` | the python server's JSON-lines close log (connect / disconnect / error records) |
| `server.log` | the Node server's WebSocketMonitor output (absent when nothing reached it, e.g. the upgrade cases) |
| `access.log`, `error.log`, `nginx.conf` | nginx's logs (`upstream_time` format; error log at `info`) and its config (nginx cases) |
| `haproxy.log`, `haproxy.cfg` | HAProxy's `option httplog` lines and its config (HAProxy cases); HAProxy writes a session's line when the session ends |
| `server-state.csv` | the python server sampled every second from outside: `ts,port,rss_bytes,fds,threads,tcp_ESTABLISHED,tcp_CLOSE_WAIT` |
| `probes.json` | the live probes (`runbook.probes.probe_url`: handshake through the proxy and direct, heartbeat, churn with 10 connections, the python server's sockets and process) run right after the logs were copied, while the clients still ran; `runbook.probes.serialize.report_from_dict` reads it back (header values are never written) |
| `case.json` | the truth (`true_causes`, DESIGN.md ids; `[]` when healthy), `split`, `stratum`, stack, proxy, base scenario, overrides and the full scaled settings, seed, time scale, what the probes were given, client totals, versions |

The logs were copied while everything still ran (an in-incident snapshot): connections still
open at the end have a connect record and no disconnect. A log nothing was written to is absent
and named in `empty_logs` of case.json: both proxies log a WebSocket session when it ends, so the
proxy log of the cases whose sessions all outlived the recording (`*-healthy-baseline`,
`*-healthy-long`) stayed empty, and nothing reached the Node server in the upgrade cases. The probes ran after that copy, so the
logs hold none of the probes' own connections: the "logs only" input is what a responder who
grabbed the logs had, and `probes.json` is what the same responder's probes then measured.

## Calibration / evaluation split

Fixed before any tuning, in `split.json` and in every `case.json`: {rule}

Tune only on the calibration cases; report the evaluation figures.

## Cases
"""


def write_readme(out: Path) -> Path:
    """``out/README.md``: layout, split rule, regeneration, and a table of the recorded cases."""
    rows = ["| case | split | true causes | proxy | scale | clients | s | what happens | probes |",
            "|---|---|---|---|---|---|---|---|---|"]
    recorded = [json.loads(path.read_text()) for path in sorted(out.glob(f"*/{CASE_FILE}"))]
    order = {case.id: index for index, case in enumerate(CASES)}
    notes = {case.id: case.note for case in CASES}
    for data in sorted(recorded, key=lambda d: order.get(d["id"], len(order))):
        probes = "ok" if data["probes"]["file"] else f"none: {data['probes']['error']}"
        rows.append(f"| [`{data['id']}`]({data['id']}/{CASE_FILE}) | {data['split']} "
                    f"| {', '.join(data['true_causes']) or 'healthy'} | {data['proxy']} "
                    f"| {data['time_scale']:g} | {data['clients']} | {data['record_seconds']:g} "
                    f"| {notes.get(data['id'], data['note'])} | {probes} |")
    missing = [case.id for case in CASES if case.id not in {d["id"] for d in recorded}]
    tail = ["", f"Not recorded: {', '.join(missing)}."] if missing else []
    strata = Counter((d["stratum"], d["split"]) for d in recorded)
    summary = ["", "Cases per stratum (calibration / evaluation): "
               + "; ".join(f"{stratum} {strata[(stratum, 'calibration')]}/{strata[(stratum, 'evaluation')]}"
                           for stratum in dict.fromkeys(case.stratum for case in CASES)) + "."]
    path = out / "README.md"
    path.write_text(README_HEAD.replace("{rule}", SPLIT_RULE) + "\n" + "\n".join(rows + summary + tail) + "\n")
    return path


def record_corpus(out: Path, only: Iterable[str] = (), echo: Any = print) -> list[dict[str, Any]]:
    """Record every case (or those in ``only``) into ``out``, one at a time; write split.json.

    A case that fails is reported and skipped (its folder removed); the others still run.
    """
    chosen = [get_case(case_id) for case_id in only] if only else list(CASES)
    split = split_cases()
    write_split(out)
    done = []
    for index, case in enumerate(chosen, 1):
        started = time.monotonic()
        try:
            data = record_case(case, out, split[case.id])
        except LabError as error:
            shutil.rmtree(out / case.id, ignore_errors=True)
            echo(f"[{index}/{len(chosen)}] {case.id}: failed: {error}")
            continue
        done.append(data)
        probe_note = data["probes"]["error"] or "probes ok"
        echo(f"[{index}/{len(chosen)}] {case.id} ({data['split']}): "
             f"{time.monotonic() - started:.0f} s, {data['client_summary'].get('connects', 0)} "
             f"sessions, {probe_note}")
    write_readme(out)
    return done


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runbook.lab.corpus",
                                     description="Record the labeled incident corpus.")
    parser.add_argument("--out", type=Path, required=True, help="corpus folder (data/corpus)")
    parser.add_argument("--only", nargs="*", default=[], metavar="ID", help="record only these cases")
    parser.add_argument("--split-only", action="store_true", help="write split.json and stop")
    parser.add_argument("--readme-only", action="store_true",
                        help="write README.md from the recorded case.json files and stop")
    args = parser.parse_args(None if argv is None else list(argv))
    if args.split_only:
        print(write_split(args.out))
        return 0
    if args.readme_only:
        print(write_readme(args.out))
        return 0
    restore = install_interrupt_handler()
    try:
        record_corpus(args.out, args.only, echo=lambda line: print(line, flush=True))
    except ParameterError as error:
        parser.error(str(error))
    except KeyboardInterrupt:
        print("interrupted: every lab process was stopped", file=sys.stderr)
        return 130
    finally:
        restore()
    return 0


if __name__ == "__main__":
    sys.exit(main())
