"""Record a scenario: run it for a bounded time and keep a snapshot of its real logs.

``record(scenario, out_dir, duration_s=...)`` starts the scenario's servers, proxy and network
(:class:`~runbook.lab.scenarios.ScenarioLab`), lets its client population use them for
``duration_s`` seconds while sampling the servers' memory and sockets, then copies the live
logs into ``out_dir`` *while everything is still running*, the way a responder grabs logs during
an incident, and only then tears it all down. The files are what the real servers wrote; nothing
is edited except that a line still being written at the snapshot instant is left out, and a log
that stayed empty is not copied.

``out_dir`` receives:

- ``close-log.jsonl``: the python websockets server's JSON-lines close log;
- ``server.log``: the Node ``ws`` server's WebSocketMonitor output;
- ``access.log``, ``error.log`` (info level) and ``nginx.conf``: nginx's logs and its config
  (when nginx was the proxy); ``haproxy.log`` and ``haproxy.cfg`` when HAProxy was;
- ``server-state.csv``: the python server's RSS, descriptors, threads and TCP states on its port,
  sampled every second (``ts,port,rss_bytes,fds,threads,tcp_ESTABLISHED,tcp_CLOSE_WAIT``);
- ``lab-run.json``: the ground truth: scenario settings, proxy used, versions, the window, every
  client (address, user agent, device, idle or chatty, server, route) and what each saw, the
  servers' memory and socket samples (taken every second, at most 60 per server kept), the
  middlebox's flows;
- ``README.md``: what produced the folder, the setup, what the logs show and the true cause.

The README's figures come from the project's own parsers and metrics (``runbook.logs``), the
same code the runbook runs. ``ws-runbook lab record SCENARIO --out DIR`` (or
``python -m runbook.lab.record``) runs it; ``all`` records every scenario into ``DIR/<name>``,
which is how ``data/samples/`` is regenerated.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import websockets

from runbook.errors import ParameterError
from runbook.lab.clients import ClientSpec, ClientStats
from runbook.lab.processes import LabError, find_binary, node_cache_dir, ws_package_version
from runbook.lab.scenarios import (
    NODE_BACKEND,
    PYTHON_BACKEND,
    ROUTES,
    SCENARIOS,
    Scenario,
    ScenarioLab,
    get_scenario,
    install_interrupt_handler,
)
from runbook.logs import combine_logs, parse_log
from runbook.logs.metrics import connection_table, summarize_logs
from runbook.observations import LogMetrics

DEFAULT_SEED = 2
RUN_MANIFEST = "lab-run.json"
README = "README.md"
CLOSE_LOG_NAMES = tuple(ROUTES[backend][2] for backend in (PYTHON_BACKEND, NODE_BACKEND))
# Seconds between samples of the servers' memory and sockets (real time, whatever the scale).
SAMPLE_EVERY_S = 1.0
# Samples per server kept in lab-run.json (evenly spread, first and last included).
MANIFEST_SAMPLES = 60
# Seconds a recording waits for its live job (the live probes) to end.
LIVE_JOB_JOIN_S = 180.0


# server-state.csv: the python server's samples, the layout runbook.logs reads as socket and
# memory snapshots (header exactly this; ts ISO-8601 UTC with milliseconds).
SERVER_STATE = "server-state.csv"
SERVER_STATE_HEADER = "ts,port,rss_bytes,fds,threads,tcp_ESTABLISHED,tcp_CLOSE_WAIT"


@dataclass(frozen=True)
class ServerSample:
    """One look at a server process from the outside (psutil), as a probe would take it."""

    at_s: float  # seconds since the clients started
    backend: str
    rss_bytes: int
    fds: int
    established: int  # TCP connections on its port
    close_wait: int
    threads: int = 0
    ts: str = ""  # wall clock of the sample, ISO-8601 UTC with milliseconds
    port: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"atSeconds": round(self.at_s, 2), "backend": self.backend,
                "rssBytes": self.rss_bytes, "fds": self.fds, "established": self.established,
                "closeWait": self.close_wait}


def sample_server(pid: int, port: int, backend: str, at_s: float) -> ServerSample | None:
    """RSS, descriptors and TCP states of the process ``pid`` on ``port``; None if it is gone."""
    try:
        process = psutil.Process(pid)
        rss = process.memory_info().rss
        fds = process.num_fds()
        threads = process.num_threads()
        connections = process.net_connections(kind="tcp")
    except psutil.Error:
        return None
    on_port = [c for c in connections if c.laddr and c.laddr.port == port]
    return ServerSample(at_s, backend, rss, fds,
                        sum(1 for c in on_port if c.status == psutil.CONN_ESTABLISHED),
                        sum(1 for c in on_port if c.status == psutil.CONN_CLOSE_WAIT),
                        threads=threads, ts=_now(), port=port)


def server_state_csv(samples: list[ServerSample], backend: str = PYTHON_BACKEND) -> str:
    """The ``server-state.csv`` text: every sample of ``backend``, header SERVER_STATE_HEADER."""
    rows = [SERVER_STATE_HEADER]
    rows += [f"{s.ts},{s.port},{s.rss_bytes},{s.fds},{s.threads},{s.established},{s.close_wait}"
             for s in samples if s.backend == backend]
    return "\n".join(rows) + "\n"


def thin(samples: list[ServerSample], per_backend: int = MANIFEST_SAMPLES) -> list[ServerSample]:
    """At most ``per_backend`` samples of each server, evenly spread, first and last kept."""
    kept = []
    for backend in dict.fromkeys(sample.backend for sample in samples):
        mine = [sample for sample in samples if sample.backend == backend]
        if len(mine) > per_backend:
            step = (len(mine) - 1) / (per_backend - 1)
            mine = [mine[round(i * step)] for i in range(per_backend)]
        kept += mine
    return sorted(kept, key=lambda sample: sample.at_s)


@dataclass
class Recording:
    """The outcome of :func:`record`: where the files are and what happened."""

    scenario: Scenario
    out_dir: Path
    files: dict[str, Path]
    started_at: str
    snapshot_at: str
    duration_s: float
    seed: int
    proxy_used: str
    notes: list[str]
    clients: list[ClientSpec]
    client_stats: dict[str, ClientStats]
    pids: set[int]  # every process the lab started; all stopped when record() returns
    metrics: dict[str, LogMetrics]  # close-log file name -> what runbook.logs made of it
    server_samples: list[ServerSample] = field(default_factory=list)
    middlebox_flows: dict[str, int] = field(default_factory=dict)  # flow state -> count
    empty_logs: list[str] = field(default_factory=list)  # written by nobody: not copied
    versions: dict[str, str] = field(default_factory=dict)  # proxy, python, websockets, node, ws


# --- snapshot -----------------------------------------------------------------------------


def snapshot_file(source: Path, target: Path) -> Path | None:
    """Copy ``source`` (possibly still being written) up to its last complete line.

    Returns the target, or None (and no file) when nothing complete was written yet.
    """
    data = source.read_bytes()
    end = data.rfind(b"\n")
    target.unlink(missing_ok=True)
    if end < 0:
        return None
    target.write_bytes(data[: end + 1])
    return target


def summarize_file(path: Path) -> LogMetrics | None:
    """``runbook.logs`` metrics of one close log; None when it cannot be parsed."""
    parsed = parse_log(path.read_bytes(), source=path.name)
    if not parsed.ok:
        return None
    return summarize_logs(combine_logs([parsed]))


# --- record -------------------------------------------------------------------------------


def _versions(lab: ScenarioLab) -> dict[str, str]:
    versions = {
        "proxy": lab.proxy_used,
        "python": sys.version.split()[0],
        "websockets": websockets.__version__,
    }
    if NODE_BACKEND in lab.backends:
        node = find_binary("node", "install the Debian package nodejs")
        versions["node"] = subprocess.run([node, "--version"], capture_output=True, text=True,  # noqa: S603
                                          timeout=10, check=False).stdout.strip()
        versions["ws"] = ws_package_version(node_cache_dir() / "node_modules")
    return versions


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LiveJob:
    """A job run in a thread while a recording's lab is live (the live probes), and its outcome.

    ``job(lab)`` must end on its own. With ``at_s`` it starts that many seconds after the
    clients and the recording waits for it (at most ``join_s``) before the snapshot, so its
    traffic is in the logs. With ``at_s`` None it starts right after the snapshot, while the
    clients and every server still run, and the lab is torn down once it ended: it meets the
    same fault, and the logs hold none of its own connections (a responder who grabbed the logs,
    then probed). ``result`` is what it returned, ``error`` what it raised (as text).
    """

    def __init__(self, job: Callable[[ScenarioLab], Any], at_s: float | None = None,
                 join_s: float = LIVE_JOB_JOIN_S) -> None:
        if at_s is not None and at_s < 0:
            raise ParameterError("at_s", f"must be zero or positive, got {at_s}")
        self.job = job
        self.at_s = at_s
        self.join_s = join_s
        self.result: Any = None
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    def start(self, lab: ScenarioLab) -> None:
        def run() -> None:
            try:
                self.result = self.job(lab)
            except Exception as error:  # noqa: BLE001 - reported in the recording, not raised
                self.error = f"{type(error).__name__}: {error}"

        self._thread = threading.Thread(target=run, name="lab-live-job", daemon=True)
        self._thread.start()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def join(self) -> None:
        if self._thread is None:
            return
        self._thread.join(self.join_s)
        if self._thread.is_alive():
            self.error = f"still running after {self.join_s:g} s; its outcome is not recorded"


def _drive(lab: ScenarioLab, seed: int, duration_s: float, take_snapshot: Callable[[], None],
           live_job: LiveJob | None = None) -> tuple[str, str, list[ClientSpec],
                                                     dict[str, ClientStats], list[ServerSample]]:
    """Run the population for duration_s, sampling the servers; snapshot while it is live.

    ``lab.check_running`` is called every sample and raises if a part died, so a broken run
    stops early instead of recording a scenario that is no longer the one asked for. A
    ``live_job`` runs at its time (see :class:`LiveJob`).
    """
    started_at = _now()
    population = lab.start_clients(seed)
    start = time.monotonic()
    deadline = start + duration_s
    samples: list[ServerSample] = []
    while True:
        now = time.monotonic()
        if (live_job is not None and live_job.at_s is not None and not live_job.started
                and now - start >= live_job.at_s):
            live_job.start(lab)
        for backend, process in lab.servers.items():
            sample = sample_server(process.pid or 0, lab.server_ports[backend], backend, now - start)
            if sample is not None:
                samples.append(sample)
        if now >= deadline:
            break
        time.sleep(min(SAMPLE_EVERY_S, deadline - now))
        lab.check_running()
    if live_job is not None and live_job.at_s is not None:
        live_job.join()
    snapshot_at = _now()
    take_snapshot()
    if live_job is not None and live_job.at_s is None:
        live_job.start(lab)
        live_job.join()
    stats = population.stop()
    return started_at, snapshot_at, population.specs, stats, samples


def record(scenario: str | Scenario, out_dir: Path | str, *, duration_s: float | None = None,
           time_scale: float = 1.0, clients: int | None = None, seed: int = DEFAULT_SEED,
           proxy: str = "auto", write_readme: bool = True, write_manifest: bool = True,
           live_job: LiveJob | None = None) -> Recording:
    """Run ``scenario`` for ``duration_s`` seconds and write its logs into ``out_dir``.

    ``time_scale`` multiplies every duration of the scenario (0.05 turns the 60 s nginx timeout
    into 3 s); ``duration_s`` defaults to the scenario's record length times ``time_scale``;
    ``clients`` overrides the population size (server capacities follow); ``proxy`` is
    ``auto`` (nginx when installed), ``nginx``, ``haproxy`` or ``relay``. ``live_job`` runs a job
    (the live probes) in a thread while the lab runs (:class:`LiveJob`);
    ``write_manifest``/``write_readme`` False leave out lab-run.json/README.md (the corpus keeps
    its own case.json). Files in ``out_dir`` with the names
    listed in the module docstring are overwritten (or removed when the run left them empty),
    others are left alone.

    Every process started is stopped before this returns, on success, error or Ctrl-C. It is
    synchronous and runs its event loops in threads, so it works from a script, a CLI, a thread
    or a notebook. Raises ParameterError for bad arguments, MissingBinaryError when nginx (with
    ``proxy="nginx"``) is missing, LabError when a part does not start or dies.
    """
    base = get_scenario(scenario) if isinstance(scenario, str) else scenario
    chosen = base.scaled(time_scale)
    if clients is not None:
        chosen = chosen.with_clients(clients)
    duration = chosen.record_seconds if duration_s is None else float(duration_s)
    if duration <= 0:
        raise ParameterError("duration_s", f"must be positive, got {duration_s}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    files: dict[str, Path] = {}
    empty: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ws-runbook-lab-") as run_dir:
        # Traversable for nginx workers, which run as `nobody` when the lab runs as root.
        Path(run_dir).chmod(0o755)
        lab = ScenarioLab(chosen, Path(run_dir), proxy=proxy)
        try:
            with lab:
                versions = _versions(lab)

                flows: Counter[str] = Counter()

                def take_snapshot() -> None:
                    for name, live in lab.log_files.items():
                        copied = snapshot_file(live, out / name)
                        if copied is None:
                            empty.append(name)
                        else:
                            files[name] = copied
                    flows.update(str(flow.state) for relay in lab.middleboxes
                                 for flow in relay.flows())

                started_at, snapshot_at, specs, stats, samples = _drive(
                    lab, seed, duration, take_snapshot, live_job)
                proxy_used, notes = lab.proxy_used, list(lab.notes)
        finally:
            pids = lab.seen_pids

    metrics = {}
    for name in CLOSE_LOG_NAMES:
        if name in files:
            summary = summarize_file(files[name])
            if summary is not None:
                metrics[name] = summary
    recording = Recording(scenario=chosen, out_dir=out, files=files, started_at=started_at,
                          snapshot_at=snapshot_at, duration_s=duration, seed=seed,
                          proxy_used=proxy_used, notes=notes, clients=specs, client_stats=stats,
                          pids=pids, metrics=metrics, server_samples=samples,
                          middlebox_flows=dict(flows), empty_logs=empty, versions=versions)
    files[SERVER_STATE] = out / SERVER_STATE
    files[SERVER_STATE].write_text(server_state_csv(samples))
    manifest = _manifest(recording, versions)
    if write_manifest:
        files[RUN_MANIFEST] = out / RUN_MANIFEST
        files[RUN_MANIFEST].write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    if write_readme:
        files[README] = out / README
        files[README].write_text(render_readme(recording, manifest), encoding="utf-8")
    return recording


def equivalent_command(recording: Recording) -> str:
    """The ``ws-runbook lab record`` command that records this folder again."""
    out = recording.out_dir
    try:
        out = out.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        pass
    scenario = recording.scenario
    parts = ["ws-runbook lab record", scenario.name, "--out", str(out),
             "--seconds", f"{recording.duration_s:g}"]
    if scenario.time_scale != 1:
        parts += ["--time-scale", f"{scenario.time_scale:g}"]
    if scenario.mix.clients != get_scenario(scenario.name).mix.clients:
        parts += ["--clients", str(scenario.mix.clients)]
    if recording.seed != DEFAULT_SEED:
        parts += ["--seed", str(recording.seed)]
    return " ".join(parts)


def _manifest(recording: Recording, versions: dict[str, str]) -> dict[str, Any]:
    scenario = recording.scenario
    stats = recording.client_stats
    empty_stats = ClientStats()
    return {
        "scenario": scenario.name,
        "title": scenario.title,
        "trueCauses": list(scenario.true_causes),
        "command": equivalent_command(recording),
        "recordedFrom": recording.started_at,
        "snapshotAt": recording.snapshot_at,
        "durationSeconds": recording.duration_s,
        "timeScale": scenario.time_scale,
        "seed": recording.seed,
        "proxyUsed": recording.proxy_used,
        "notes": recording.notes,
        "settings": scenario.settings(),
        "versions": versions,
        "routes": {
            ROUTES[backend][0]: {"backend": backend, "log": ROUTES[backend][2]}
            for backend in (PYTHON_BACKEND, NODE_BACKEND)
        },
        "emptyLogs": recording.empty_logs,
        "middleboxFlows": recording.middlebox_flows,
        "serverSamples": [sample.as_dict() for sample in thin(recording.server_samples)],
        "clients": [
            {**spec.as_dict(),
             "seen": {"connects": (seen := stats.get(spec.client_id, empty_stats)).connects,
                      "leaves": seen.leaves,
                      "drops": seen.drops,
                      "dropCodes": {str(k): v for k, v in sorted(seen.drop_codes.items())},
                      "failedConnects": seen.failed_connects,
                      "gaveUp": seen.gave_up}}
            for spec in recording.clients
        ],
    }


# --- README ---------------------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    if value is None or pd.isna(value):
        return "n/a"
    return f"{value:.3g} s" if value >= 1 else f"{value * 1000:.3g} ms"


def _codes(codes: Counter[Any]) -> str:
    return ", ".join(f"{code}: {count}" for code, count in sorted(codes.items(), key=str)) or "none"


def _rate(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.1%}"


def _code_counter(metrics: LogMetrics) -> Counter[Any]:
    codes: Counter[Any] = Counter()
    for row in metrics.codes.itertuples():
        codes["none" if pd.isna(row.code) else int(row.code)] += int(row.count)
    return codes


def log_row(name: str, metrics: LogMetrics) -> str:
    """One row of the README's "What the logs show" table."""
    peak = ("n/a" if not metrics.duration_peaks else
            f"{metrics.duration_peaks[0].low_s:.1f}-{metrics.duration_peaks[0].high_s:.1f} s "
            f"({metrics.duration_peaks[0].count} of {metrics.disconnects})")
    median = metrics.lifetimes.quantile(0.5) if metrics.lifetimes.total else None
    open_minutes = metrics.per_minute[metrics.per_minute["open"] > 0] if len(metrics.per_minute) else metrics.per_minute
    rates = open_minutes["rate"].astype(float) if len(open_minutes) else pd.Series(dtype=float)
    return (f"| `{name}` | {metrics.connects} | {metrics.disconnects} | "
            f"{_codes(_code_counter(metrics))} | {metrics.errors} | {peak} | {_seconds(median)} "
            f"| {_rate(rates.max() if len(rates) else None)}, "
            f"{_rate(rates.mean() if len(rates) else None)} |")


def by_activity(logs: list[Path], activity_of_ip: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Connections, disconnects and codes per user activity (idle/chatty), all logs together."""
    merged: dict[str, dict[str, Any]] = {}
    for path in logs:
        parsed = parse_log(path.read_bytes(), source=path.name)
        if not parsed.ok:
            continue
        for row in connection_table(combine_logs([parsed])).itertuples():
            ip = "" if pd.isna(row.client_ip) else str(row.client_ip)
            slot = merged.setdefault(activity_of_ip.get(ip, "unknown"),
                                     {"connections": 0, "disconnects": 0, "codes": Counter()})
            slot["connections"] += 1
            if row.closed:
                slot["disconnects"] += 1
                slot["codes"]["none" if pd.isna(row.code) else int(row.code)] += 1
    return merged


def _samples_table(samples: list[ServerSample]) -> list[str]:
    if not samples:
        return []
    lines = ["| server | RSS first -> last | descriptors | ESTABLISHED | CLOSE_WAIT |",
             "|---|---|---|---|---|"]
    for backend in (PYTHON_BACKEND, NODE_BACKEND):
        mine = [s for s in samples if s.backend == backend]
        if not mine:
            continue
        first, last = mine[0], mine[-1]
        lines.append(f"| {backend} | {first.rss_bytes / 2**20:.1f} -> {last.rss_bytes / 2**20:.1f} MiB "
                     f"| {first.fds} -> {last.fds} | {first.established} -> {last.established} "
                     f"| {first.close_wait} -> {last.close_wait} |")
    return lines


def render_readme(recording: Recording, manifest: dict[str, Any]) -> str:
    """The sample folder's README: command, setup, what the logs show, the true cause."""
    scenario = recording.scenario
    mix = scenario.mix
    policy = mix.reconnect
    specs = recording.clients
    devices = Counter(str(spec.device) for spec in specs)
    activities = Counter(str(spec.activity) for spec in specs)
    routes = Counter(spec.route for spec in specs)
    versions = manifest["versions"]
    leave = ("nobody leaves" if mix.mean_visit_s is None else
             f"a user leaves normally (1000/1001) after an exponential stay with mean "
             f"{_seconds(mix.mean_visit_s)} and comes back {_seconds(mix.return_after_s[0])}-"
             f"{_seconds(mix.return_after_s[1])} later")
    reconnect = (f"exponential backoff {_seconds(policy.base_delay_s)} x{policy.factor:g} up to "
                 f"{_seconds(policy.max_delay_s)}, minus up to {policy.jitter:.0%} jitter, "
                 f"{policy.max_attempts} failed attempts max" if policy.backoff else
                 f"fixed {_seconds(policy.base_delay_s)} delay, no backoff, no jitter")
    node = (f", Node {versions['node']} with ws {versions['ws']}" if "node" in versions else "")
    setup = scenario.describe_setup()
    if "nginx" not in recording.proxy_used:
        setup[0] = ("proxy (built-in relay)", recording.proxy_used)
    lines = [
        f"# Sample `{scenario.name}`: {scenario.title}",
        "",
        "Recorded by really running a python `websockets` server, a Node `ws` server and a proxy "
        "on loopback with a population of real WebSocket clients; every line in these logs "
        "was written by those servers. Generated by `runbook.lab.record` (do not edit by "
        "hand; record again instead).",
        "",
        "## How it was produced",
        "",
        "```",
        manifest["command"],
        "```",
        "",
        f"Recorded {recording.started_at} to {recording.snapshot_at} "
        f"({recording.duration_s:g} s of real time, time scale {scenario.time_scale:g}), "
        f"seed {recording.seed}; proxy: {recording.proxy_used}; Python {versions['python']} with "
        f"websockets {versions['websockets']}{node}. "
        "The logs were copied while everything was still running (an in-incident snapshot), "
        "so connections still open at the end have a connect record but no disconnect yet.",
        *([""] + [f"Note: {note}." for note in recording.notes] if recording.notes else []),
        "",
        "## Setup",
        "",
        "| part | setting |",
        "|---|---|",
        *[f"| {part} | {setting} |" for part, setting in setup],
        f"| clients | {len(specs)} (round-robin over "
        f"{', '.join(f'{route}: {count}' for route, count in routes.items())}): "
        f"{devices['desktop']} desktop / {devices['mobile']} mobile user agents; "
        f"{activities['idle']} idle (subscribe once, then silent) / {activities['chatty']} chatty "
        f"(a message every {_seconds(mix.chatty_gap_s[0])}-{_seconds(mix.chatty_gap_s[1])}); "
        f"first connects spread over {_seconds(mix.ramp_up_s)}; no client pings (like browsers) |",
        f"| leaving | {leave} |",
        f"| reconnect after a drop | {reconnect} |",
        "",
        "Client addresses are RFC 5737 documentation addresses sent in `X-Forwarded-For` (as an "
        "edge load balancer would); nginx's realip module trusts it from 127.0.0.1. "
        "`lab-run.json` is the ground truth: every client's address, user agent, device, "
        "activity, server and route, and what it saw; the servers' memory and sockets sampled "
        "every second.",
        "",
        "## Files",
        "",
        "| file | format |",
        "|---|---|",
    ]
    file_rows = {
        "close-log.jsonl": "JSON lines from the python server: ts, event (connect/disconnect/error), "
                           "connectionId, code, reason, duration (ms), ip, userAgent",
        "server.log": "Node monitor: ISO timestamp + `WebSocket connected:` / `WebSocket "
                      "disconnect:` / `WebSocket error:` + util.inspect object (multi-line when long)",
        "access.log": "nginx `upstream_time` format (combined + `rt=$request_time` and upstream "
                      "times); an upgraded session logs 101 when it ends, `rt` = session length",
        "error.log": "nginx error log at `info` level",
        "nginx.conf": "the configuration nginx ran with (paths point into the run folder)",
        "haproxy.log": "HAProxy `option httplog` lines (one per session, written when it ends: "
                       "status 101, total time, termination state such as `cD`), and its own "
                       "start/stop messages",
        "haproxy.cfg": "the configuration HAProxy ran with",
        SERVER_STATE: "the python server sampled every second from outside: "
                      f"`{SERVER_STATE_HEADER}`",
    }
    lines += [f"| `{name}` | {text} |" for name, text in file_rows.items() if name in recording.files]
    lines.append(f"| `{RUN_MANIFEST}` | ground truth: settings, versions, clients, server samples |")
    if recording.empty_logs:
        lines += ["", "Not included because nothing was written to them during the run: "
                  + ", ".join(f"`{name}`" for name in recording.empty_logs) + "."]
    lines += [
        "",
        "## What the logs show",
        "",
        "Figures from `runbook.logs` (the parsers and metrics the runbook itself uses); minutes "
        "are wall-clock minutes of the recording.",
        "",
        "| | connects | disconnects | codes | errors | lifetime peak | median lifetime "
        "| disconnects/min ÷ open (max, mean) |",
        "|---|---|---|---|---|---|---|---|",
        *[log_row(name, summary) for name, summary in recording.metrics.items()],
    ]
    activity_of_ip = {spec.ip: str(spec.activity) for spec in specs}
    merged = by_activity([recording.files[name] for name in recording.metrics], activity_of_ip)
    if merged:
        lines += ["", "By user activity (both servers; one connection per row of the logs):", "",
                  "| activity | connections | disconnects | codes |", "|---|---|---|---|"]
        for activity, slot in sorted(merged.items()):
            lines.append(f"| {activity} | {slot['connections']} | {slot['disconnects']} "
                         f"| {_codes(slot['codes'])} |")
    if "access.log" in recording.files or "error.log" in recording.files:
        access = (recording.files["access.log"].read_text(errors="replace").splitlines()
                  if "access.log" in recording.files else [])
        error = (recording.files["error.log"].read_text(errors="replace").splitlines()
                 if "error.log" in recording.files else [])
        statuses = Counter(line.split('"')[2].split()[0] for line in access
                           if line.count('"') >= 3 and line.split('"')[2].split())
        timed_out = sum(1 for line in error if "timed out" in line
                        and "while proxying upgraded connection" in line)
        lines += [
            "",
            f"nginx: `access.log` has {len(access)} lines, by status "
            f"{_codes(statuses)} (an upgraded session is logged with 101 when it ends); "
            f"`error.log` has {timed_out} `... timed out ... while proxying upgraded connection` "
            "lines.",
        ]
    if recording.middlebox_flows and scenario.middlebox is not None:
        lines += ["", f"{scenario.middlebox.name} (the relay): flows by state "
                  f"{_codes(Counter(recording.middlebox_flows))} at the snapshot."]
    table = _samples_table(recording.server_samples)
    if table:
        lines += ["", "Server processes from the outside (psutil, first and last sample):", "",
                  *table]
    lines += [
        "",
        "## True cause",
        "",
        (f"Root cause ids (DESIGN.md): {', '.join(f'`{c}`' for c in scenario.true_causes)}."
         if scenario.true_causes else "None: a healthy service."),
        "",
        scenario.story,
        "",
        f"Fix: {scenario.fix}",
        "",
    ]
    return "\n".join(lines)


# --- command line -------------------------------------------------------------------------


def describe_recording(recording: Recording) -> list[str]:
    """Lines for a terminal: where it went, the proxy, and each close log's figures."""
    lines = [f"{recording.scenario.name}: {recording.out_dir} "
             f"({recording.started_at} to {recording.snapshot_at})",
             f"  proxy: {recording.proxy_used}"]
    lines += [f"  note: {note}" for note in recording.notes]
    for name, metrics in recording.metrics.items():
        lines.append(f"  {name}: {metrics.connects} connects, {metrics.disconnects} disconnects "
                     f"({_codes(_code_counter(metrics))}), {metrics.errors} errors")
    return lines


def record_many(names: Iterable[str], out: Path, *, to_subfolders: bool,
                **options: Any) -> list[Recording]:
    """Record each scenario (into ``out/<name>`` with ``to_subfolders``), printing as it goes."""
    recordings = []
    for name in names:
        recording = record(name, out / name if to_subfolders else out, **options)
        print("\n".join(describe_recording(recording)), flush=True)
        recordings.append(recording)
    return recordings


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runbook.lab.record",
        description="Run a fault scenario on loopback and keep its real logs as a sample.")
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"],
                        help="scenario to record, or 'all' (each into OUT/<name>)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seconds", type=float, default=None,
                        help="how long to record (default: the scenario's length x time scale)")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="multiply every scenario duration (0.05: 60 s timeout -> 3 s)")
    parser.add_argument("--clients", type=int, default=None, help="population size override")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--proxy", choices=["auto", "nginx", "haproxy", "relay"], default="auto")
    args = parser.parse_args(None if argv is None else list(argv))
    # `kill PID` should tear the lab down like Ctrl-C does, not orphan its servers.
    restore = install_interrupt_handler()
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    try:
        record_many(names, args.out, to_subfolders=args.scenario == "all",
                    duration_s=args.seconds, time_scale=args.time_scale, clients=args.clients,
                    seed=args.seed, proxy=args.proxy)
    except ParameterError as error:
        parser.error(str(error))
    except LabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: every lab process was stopped", file=sys.stderr)
        return 130
    finally:
        restore()
    return 0


if __name__ == "__main__":
    sys.exit(main())
