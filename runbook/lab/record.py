"""Record a scenario: run it for a bounded time and keep a snapshot of its real logs.

``record(scenario, out_dir, duration_s=...)`` starts the scenario's servers and nginx
(:class:`~runbook.lab.scenarios.ScenarioLab`), lets a client population use them for
``duration_s`` seconds, then copies the live logs into ``out_dir`` *while everything is still
running*, the way a responder grabs logs during an incident, and only then tears it all down.
The files are what the real servers wrote; nothing is edited except that a line still being
written at the snapshot instant is left out.

``out_dir`` receives:

- ``close-log.jsonl``: the python websockets server's JSON-lines close log;
- ``server.log``: the Node ``ws`` server's WebSocketMonitor output;
- ``access.log``, ``error.log`` (info level) and ``nginx.conf``: nginx's logs and its config;
- ``lab-run.json``: the ground truth: scenario settings, versions, the window, every client
  (address, user agent, device, idle or chatty, which server) and what each client saw;
- ``README.md``: what produced the folder, the setup, what the logs show and the true cause.

Run it as ``python -m runbook.lab.record SCENARIO --out DIR [--seconds N] [--time-scale F]``;
``all`` records every scenario, each into ``DIR/<name>``.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import math
import re
import signal
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import websockets

from runbook.errors import ParameterError
from runbook.lab.clients import ClientPopulation, ClientSpec, ClientStats, build_population
from runbook.lab.nginx import nginx_version
from runbook.lab.processes import LabError, find_binary, node_cache_dir, ws_package_version
from runbook.lab.scenarios import (
    NODE_BACKEND,
    PYTHON_BACKEND,
    ROUTES,
    SCENARIOS,
    Scenario,
    ScenarioLab,
    get_scenario,
)

DEFAULT_SEED = 2
RUN_MANIFEST = "lab-run.json"
README = "README.md"
# Width of the duration histogram bins, in seconds of real time (scaled with the scenario).
DURATION_BIN_S = 5.0


@dataclass
class LogSummary:
    """Counts read back from one close log (for the README and for quick checks)."""

    connects: int = 0
    disconnects: int = 0
    errors: int = 0
    codes: Counter[int] = field(default_factory=Counter)
    duration_peak: tuple[float, float, int] | None = None  # (from_s, to_s, disconnects)
    duration_median_s: float | None = None
    per_minute: list[tuple[int, float]] = field(default_factory=list)  # (disconnects, mean open)
    by_activity: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def max_rate(self) -> float | None:
        rates = [d / o for d, o in self.per_minute if o > 0]
        return max(rates) if rates else None

    @property
    def mean_rate(self) -> float | None:
        rates = [d / o for d, o in self.per_minute if o > 0]
        return statistics.fmean(rates) if rates else None


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
    clients: list[ClientSpec]
    client_stats: dict[str, ClientStats]
    pids: set[int]  # every process the lab started; all stopped when record() returns
    summaries: dict[str, LogSummary]


# --- snapshot -----------------------------------------------------------------------------


def snapshot_file(source: Path, target: Path) -> Path:
    """Copy ``source`` (possibly still being written) up to its last complete line."""
    data = source.read_bytes()
    end = data.rfind(b"\n")
    target.write_bytes(data[: end + 1] if end >= 0 else b"")
    return target


# --- reading the logs back (deliberately small: the real parsers live in runbook.logs) -------

NODE_RECORD = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) WebSocket (?P<kind>connected|disconnect|error): "
    r"(?P<body>.*?)(?=^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z |\Z)",
    re.MULTILINE | re.DOTALL,
)
NODE_EVENTS = {"connected": "connect", "disconnect": "disconnect", "error": "error"}


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def _field(body: str, name: str) -> str | None:
    match = re.search(rf"\b{name}: (?:'((?:[^'\\]|\\.)*)'|(\d+))", body)
    if not match:
        return None
    return match.group(1) if match.group(1) is not None else match.group(2)


def read_jsonl_events(text: str) -> list[dict[str, Any]]:
    """Events of a JSON-lines close log as dicts with epoch ``t`` and ``duration_s``."""
    events = []
    for line in text.splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        duration = record.get("duration")
        events.append({"t": _epoch(record["ts"]), "event": record["event"],
                       "id": record["connectionId"], "code": record.get("code"),
                       "duration_s": None if duration is None else duration / 1000,
                       "ip": record.get("ip")})
    return events


def read_node_events(text: str) -> list[dict[str, Any]]:
    """Events of a Node monitor log; disconnects get the ip of their connected record."""
    events = []
    ip_of: dict[str, str | None] = {}
    for match in NODE_RECORD.finditer(text):
        body = match["body"]
        connection_id = _field(body, "connectionId")
        event = NODE_EVENTS[match["kind"]]
        if event == "connect":
            ip_of[connection_id] = _field(body, "ip")
        code = _field(body, "code")
        duration = _field(body, "duration")
        events.append({"t": _epoch(match["ts"]), "event": event, "id": connection_id,
                       "code": None if code is None else int(code),
                       "duration_s": None if duration is None else int(duration) / 1000,
                       "ip": ip_of.get(connection_id)})
    return events


def summarize_events(events: list[dict[str, Any]], *, window: tuple[float, float],
                     activity_of_ip: dict[str, str], time_scale: float = 1.0) -> LogSummary:
    """Counts, code mix, duration peak and per-minute disconnect rates of one close log.

    The per-minute rate of minute k is its disconnects divided by the mean number of open
    connections during that minute (sampled every second); only whole minutes of ``window``
    count. A minute is 60 s of scenario time (scaled with ``time_scale``).
    """
    summary = LogSummary()
    durations = []
    for event in events:
        kind = event["event"]
        activity = activity_of_ip.get(event["ip"] or "", "unknown")
        slot = summary.by_activity.setdefault(activity, {"connects": 0, "disconnects": 0,
                                                         "codes": Counter()})
        if kind == "connect":
            summary.connects += 1
            slot["connects"] += 1
        elif kind == "disconnect":
            summary.disconnects += 1
            summary.codes[event["code"]] += 1
            slot["disconnects"] += 1
            slot["codes"][event["code"]] += 1
            if event["duration_s"] is not None:
                durations.append(event["duration_s"])
        else:
            summary.errors += 1
    if durations:
        # Bins centred on multiples of the width: a timeout of exactly 60 s fires a few ms
        # either side of 60 (nginx timers are lazy by up to 300 ms), which edges at 60 would split.
        width = DURATION_BIN_S * time_scale
        bins = Counter(math.floor(d / width + 0.5) for d in durations)
        peak, count = max(bins.items(), key=lambda item: (item[1], -item[0]))
        summary.duration_peak = ((peak - 0.5) * width, (peak + 0.5) * width, count)
        summary.duration_median_s = statistics.median(durations)
    minute = 60.0 * time_scale
    start, end = window
    step = minute / 60
    timeline = sorted((e["t"], e["event"]) for e in events if e["event"] != "error")
    for k in range(int((end - start) // minute)):
        lo, hi = start + k * minute, start + (k + 1) * minute
        disconnects = sum(1 for t, kind in timeline if kind == "disconnect" and lo <= t < hi)
        samples = [_open_at(timeline, lo + (i + 0.5) * step) for i in range(60)]
        summary.per_minute.append((disconnects, statistics.fmean(samples)))
    return summary


def _open_at(timeline: list[tuple[float, str]], when: float) -> int:
    opened = sum(1 for t, kind in timeline if t <= when and kind == "connect")
    closed = sum(1 for t, kind in timeline if t <= when and kind == "disconnect")
    return opened - closed


# --- record -------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    node = find_binary("node", "install the Debian package nodejs")
    node_version = subprocess.run([node, "--version"], capture_output=True, text=True,  # noqa: S603
                                  timeout=10, check=False).stdout.strip()
    return {
        "nginx": nginx_version(),
        "python": sys.version.split()[0],
        "websockets": websockets.__version__,
        "node": node_version,
        "ws": ws_package_version(node_cache_dir() / "node_modules"),
    }


async def _drive(specs: list[ClientSpec], scenario: Scenario, duration_s: float,
                 check_running: Callable[[], None],
                 take_snapshot: Callable[[], None]) -> tuple[str, str, dict[str, ClientStats]]:
    """Run the population for duration_s, snapshot while it is live, then stop it.

    ``check_running`` is called about once a second and raises if a server died, so a broken
    run stops early instead of recording a scenario that is no longer the one asked for.
    """
    started_at = _now()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration_s
    async with ClientPopulation(specs, scenario.mix) as population:
        while (remaining := deadline - loop.time()) > 0:
            await asyncio.sleep(min(1.0, remaining))
            check_running()
        snapshot_at = _now()
        take_snapshot()
        stats = copy.deepcopy(population.stats)
    return started_at, snapshot_at, stats


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record(scenario: str | Scenario, out_dir: Path | str, *, duration_s: float | None = None,
           time_scale: float = 1.0, clients: int | None = None, seed: int = DEFAULT_SEED,
           write_readme: bool = True) -> Recording:
    """Run ``scenario`` for ``duration_s`` seconds and write its logs into ``out_dir``.

    ``time_scale`` multiplies every duration of the scenario (0.05 turns the 60 s nginx timeout
    into 3 s); ``duration_s`` defaults to the scenario's record length times ``time_scale``;
    ``clients`` overrides the population size. Files in ``out_dir`` with the names listed in
    the module docstring are overwritten, others are left alone.

    Every process started is stopped before this returns, on success, error or Ctrl-C. It runs
    its own event loop, so call it from synchronous code (not from inside a running loop).
    Raises ParameterError for bad arguments, MissingBinaryError when nginx or node is missing,
    LabError when a server does not start.
    """
    base = get_scenario(scenario) if isinstance(scenario, str) else scenario
    chosen = base.scaled(time_scale)
    if clients is not None:
        if clients < 1:
            raise ParameterError("clients", f"must be at least 1, got {clients}")
        chosen = replace(chosen, mix=replace(chosen.mix, clients=clients))
    duration = chosen.record_seconds if duration_s is None else float(duration_s)
    if duration <= 0:
        raise ParameterError("duration_s", f"must be positive, got {duration_s}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    files: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="ws-runbook-lab-") as run_dir:
        # Traversable for nginx workers, which run as `nobody` when the lab runs as root.
        Path(run_dir).chmod(0o755)
        lab = ScenarioLab(chosen, Path(run_dir))
        try:
            with lab:
                specs = build_population(lab.targets, chosen.mix, seed)

                def take_snapshot() -> None:
                    for name, live in lab.log_files.items():
                        files[name] = snapshot_file(live, out / name)

                started_at, snapshot_at, stats = asyncio.run(
                    _drive(specs, chosen, duration, lab.check_running, take_snapshot))
        finally:
            pids = lab.seen_pids

    activity_of_ip = {spec.ip: str(spec.activity) for spec in specs}
    window = (_epoch(started_at), _epoch(snapshot_at))
    summaries = {
        "close-log.jsonl": summarize_events(
            read_jsonl_events(files["close-log.jsonl"].read_text(encoding="utf-8")),
            window=window, activity_of_ip=activity_of_ip, time_scale=chosen.time_scale),
        "server.log": summarize_events(
            read_node_events(files["server.log"].read_text(encoding="utf-8")),
            window=window, activity_of_ip=activity_of_ip, time_scale=chosen.time_scale),
    }
    recording = Recording(scenario=chosen, out_dir=out, files=files, started_at=started_at,
                          snapshot_at=snapshot_at, duration_s=duration, seed=seed, clients=specs,
                          client_stats=stats, pids=pids, summaries=summaries)
    manifest = _manifest(recording)
    files[RUN_MANIFEST] = out / RUN_MANIFEST
    files[RUN_MANIFEST].write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    if write_readme:
        files[README] = out / README
        files[README].write_text(render_readme(recording, manifest), encoding="utf-8")
    return recording


def equivalent_command(recording: Recording) -> str:
    """The ``python -m runbook.lab.record`` command that records this folder again."""
    out = recording.out_dir
    try:
        out = out.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        pass
    scenario = recording.scenario
    parts = ["python -m runbook.lab.record", scenario.name, "--out", str(out),
             "--seconds", f"{recording.duration_s:g}"]
    if scenario.time_scale != 1:
        parts += ["--time-scale", f"{scenario.time_scale:g}"]
    if scenario.mix.clients != get_scenario(scenario.name).mix.clients:
        parts += ["--clients", str(scenario.mix.clients)]
    if recording.seed != DEFAULT_SEED:
        parts += ["--seed", str(recording.seed)]
    return " ".join(parts)


def _manifest(recording: Recording) -> dict[str, Any]:
    scenario = recording.scenario
    stats = recording.client_stats
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
        "settings": scenario.settings(),
        "versions": _versions(),
        "routes": {
            ROUTES[backend][0]: {"backend": backend, "log": ROUTES[backend][2]}
            for backend in (PYTHON_BACKEND, NODE_BACKEND)
        },
        "clients": [
            {**spec.as_dict(),
             "seen": {"connects": stats[spec.client_id].connects,
                      "leaves": stats[spec.client_id].leaves,
                      "drops": stats[spec.client_id].drops,
                      "dropCodes": {str(k): v for k, v in sorted(stats[spec.client_id].drop_codes.items())},
                      "failedConnects": stats[spec.client_id].failed_connects}}
            for spec in recording.clients
        ],
    }


# --- README ---------------------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    if value is None:
        return "none"
    return f"{value:g} s" if value >= 1 else f"{value * 1000:g} ms"


def _codes(codes: Counter[int]) -> str:
    return ", ".join(f"{code}: {count}" for code, count in sorted(codes.items())) or "none"


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def render_readme(recording: Recording, manifest: dict[str, Any]) -> str:
    """The sample folder's README: command, setup, what the logs show, the true cause."""
    scenario = recording.scenario
    mix = scenario.mix
    policy = mix.reconnect
    specs = recording.clients
    devices = Counter(str(spec.device) for spec in specs)
    activities = Counter(str(spec.activity) for spec in specs)
    versions = manifest["versions"]
    python_location, _, python_log = ROUTES[PYTHON_BACKEND]
    node_location, _, node_log = ROUTES[NODE_BACKEND]
    if scenario.proxy_read_timeout_s == 60 and scenario.time_scale == 1:
        nginx_timeout = "`proxy_read_timeout` not set: nginx's default 60 s applies"
    else:
        nginx_timeout = f"`proxy_read_timeout {_seconds(scenario.proxy_read_timeout_s)}`"
    python_ping = ("no heartbeat (`ping_interval=None`)" if scenario.python_ping_interval_s is None
                   else f"pings every {_seconds(scenario.python_ping_interval_s)} "
                        f"(pong timeout {_seconds(scenario.python_ping_timeout_s)})")
    node_ping = ("no heartbeat (the ws default)" if scenario.node_ping_interval_s is None
                 else f"pings every {_seconds(scenario.node_ping_interval_s)}, terminates peers "
                      f"that missed the previous pong")
    leave = ("nobody leaves" if mix.mean_visit_s is None else
             f"a user leaves normally (1000/1001) after an exponential stay with mean "
             f"{mix.mean_visit_s / 60:g} min and comes back {mix.return_after_s[0]:g}-"
             f"{mix.return_after_s[1]:g} s later")
    reconnect = (f"exponential backoff {policy.base_delay_s:g} s x{policy.factor:g} up to "
                 f"{policy.max_delay_s:g} s, minus up to {policy.jitter:.0%} jitter, "
                 f"{policy.max_attempts} failed attempts max" if policy.backoff else
                 f"fixed {policy.base_delay_s:g} s delay, no backoff")
    lines = [
        f"# Sample `{scenario.name}`: {scenario.title}",
        "",
        "Recorded by really running a python `websockets` server, a Node `ws` server and nginx "
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
        f"seed {recording.seed}; {versions['nginx']}, Python {versions['python']} with "
        f"websockets {versions['websockets']}, Node {versions['node']} with ws {versions['ws']}. "
        "The logs were copied while everything was still running (an in-incident snapshot), "
        "so connections still open at the end have a connect record but no disconnect yet.",
        "",
        "## Setup",
        "",
        "| part | setting |",
        "|---|---|",
        f"| nginx (`nginx.conf`) | reference WebSocket proxy config (HTTP/1.1, Upgrade/Connection "
        f"forwarded, buffering off); {nginx_timeout}; `error_log ... info` |",
        f"| python websockets server, `{python_location}` -> `{python_log}` | {python_ping} |",
        f"| Node ws server + WebSocketMonitor, `{node_location}` -> `{node_log}` | {node_ping} |",
        f"| clients | {len(specs)} ({len(specs) // 2} per server, round-robin): "
        f"{devices['desktop']} desktop / {devices['mobile']} mobile user agents; "
        f"{activities['idle']} idle (subscribe once, then silent) / {activities['chatty']} chatty "
        f"(a message every {mix.chatty_gap_s[0]:g}-{mix.chatty_gap_s[1]:g} s); first connects "
        f"spread over {mix.ramp_up_s:g} s; no client pings (like browsers) |",
        f"| leaving | {leave} |",
        f"| reconnect after a drop | {reconnect} |",
        "",
        "Client addresses are RFC 5737 documentation addresses sent in `X-Forwarded-For` (as an "
        "edge load balancer would); nginx's realip module trusts it from 127.0.0.1. "
        "`lab-run.json` is the ground truth: every client's address, user agent, device, "
        "activity and server, and what it saw.",
        "",
        "## Files",
        "",
        "| file | format |",
        "|---|---|",
        f"| `{python_log}` | JSON lines from the python server: ts, event (connect/disconnect/error), "
        "connectionId, code, reason, duration (ms), ip, userAgent |",
        f"| `{node_log}` | Node monitor: ISO timestamp + `WebSocket connected:` / `WebSocket "
        "disconnect:` / `WebSocket error:` + util.inspect object (multi-line when long) |",
        "| `access.log` | nginx `upstream_time` format (combined + `rt=$request_time` and upstream "
        "times); an upgraded session logs 101 when it ends, `rt` = session length |",
        "| `error.log` | nginx error log at `info` level |",
        "| `nginx.conf` | the configuration nginx ran with (paths point into the run folder) |",
        f"| `{RUN_MANIFEST}` | ground truth: settings, versions, clients |",
        "",
        "## What the logs show",
        "",
        "| | connects | disconnects | codes | errors | disconnect duration peak | median duration "
        "| disconnects/min ÷ open (max, mean) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, summary in recording.summaries.items():
        peak = ("n/a" if summary.duration_peak is None else
                f"{summary.duration_peak[0]:g}-{summary.duration_peak[1]:g} s "
                f"({summary.duration_peak[2]} of {summary.disconnects})")
        lines.append(
            f"| `{name}` | {summary.connects} | {summary.disconnects} | {_codes(summary.codes)} "
            f"| {summary.errors} | {peak} | {_seconds(summary.duration_median_s)} "
            f"| {_rate(summary.max_rate)}, {_rate(summary.mean_rate)} |")
    lines += ["", "By user activity (both servers):", "",
              "| activity | connects | disconnects | codes |", "|---|---|---|---|"]
    merged: dict[str, dict[str, Any]] = {}
    for summary in recording.summaries.values():
        for activity, slot in summary.by_activity.items():
            into = merged.setdefault(activity, {"connects": 0, "disconnects": 0, "codes": Counter()})
            into["connects"] += slot["connects"]
            into["disconnects"] += slot["disconnects"]
            into["codes"] += slot["codes"]
    for activity, slot in sorted(merged.items()):
        lines.append(f"| {activity} | {slot['connects']} | {slot['disconnects']} "
                     f"| {_codes(slot['codes'])} |")
    access = recording.files["access.log"].read_text(errors="replace").splitlines()
    error = recording.files["error.log"].read_text(errors="replace").splitlines()
    upgraded = sum(1 for line in access if '" 101 ' in line)
    timed_out = sum(1 for line in error if "timed out" in line
                    and "while proxying upgraded connection" in line)
    lines += [
        "",
        f"nginx: `access.log` has {len(access)} lines, {upgraded} of them status 101 (upgraded "
        f"sessions that ended during the window); `error.log` has {timed_out} "
        "`... timed out ... while proxying upgraded connection` lines.",
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


def _print_recording(recording: Recording) -> None:
    print(f"{recording.scenario.name}: {recording.out_dir} "
          f"({recording.started_at} to {recording.snapshot_at})")
    for name, summary in recording.summaries.items():
        print(f"  {name}: {summary.connects} connects, {summary.disconnects} disconnects "
              f"({_codes(summary.codes)}), {summary.errors} errors, max rate "
              f"{_rate(summary.max_rate)}/min")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runbook.lab.record",
        description="Run a fault scenario on loopback and keep its real logs as a sample.")
    parser.add_argument("scenario", choices=[*sorted(SCENARIOS), "all"],
                        help="scenario to record, or 'all' (each into OUT/<name>)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seconds", type=float, default=None,
                        help="how long to record (default: the scenario's length x time scale)")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="multiply every scenario duration (0.05: 60 s timeout -> 3 s)")
    parser.add_argument("--clients", type=int, default=None, help="population size override")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(None if argv is None else list(argv))
    # `kill PID` should tear the lab down like Ctrl-C does, not orphan its servers.
    signal.signal(signal.SIGTERM, _interrupt)
    names = sorted(SCENARIOS) if args.scenario == "all" else [args.scenario]
    try:
        for name in names:
            out = args.out / name if args.scenario == "all" else args.out
            recording = record(name, out, duration_s=args.seconds, time_scale=args.time_scale,
                               clients=args.clients, seed=args.seed)
            _print_recording(recording)
    except ParameterError as error:
        parser.error(str(error))
    except LabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: every lab process was stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
