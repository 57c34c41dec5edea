"""Fault scenarios: what each one runs, and :class:`ScenarioLab`, which runs it on loopback.

A :class:`Scenario` is data: the nginx timeout, each server's heartbeat, the client population
and the root cause it reproduces (ids from DESIGN.md). Every duration is in seconds of real time;
:meth:`Scenario.scaled` compresses all of them by one factor, so a test can replay a 60 s
timeout in 3 s with the same shape.

:class:`ScenarioLab` starts the real parts of a scenario behind one real nginx:

    client ──► nginx 127.0.0.1:P ──/ws/chat──► python websockets server  ──► close-log.jsonl
                                 └─/ws/live──► Node ws + WebSocketMonitor ──► server.log
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import TracebackType

from runbook.errors import ParameterError
from runbook.lab.clients import PopulationMix
from runbook.lab.nginx import NGINX_DEFAULT_PROXY_READ_TIMEOUT_S, Nginx, ProxySite, Route
from runbook.lab.processes import LOOPBACK, ChildProcess, free_port, node_monitor_server
from runbook.lab.server import DEFAULT_PING_INTERVAL_S, DEFAULT_PING_TIMEOUT_S, python_server

PYTHON_BACKEND = "python"
NODE_BACKEND = "node"
BACKENDS = (PYTHON_BACKEND, NODE_BACKEND)

# Which location each backend sits behind, its nginx upstream name and the log it writes.
ROUTES = {
    PYTHON_BACKEND: ("/ws/chat", "chat_python", "close-log.jsonl"),
    NODE_BACKEND: ("/ws/live", "live_node", "server.log"),
}


@dataclass(frozen=True)
class Scenario:
    """One reproducible situation: the proxy, the servers' heartbeats and the users."""

    name: str
    title: str
    true_causes: tuple[str, ...]  # root cause ids (DESIGN.md); empty when healthy
    story: str  # what happens and why, for the sample's README
    fix: str
    proxy_read_timeout_s: float = NGINX_DEFAULT_PROXY_READ_TIMEOUT_S
    python_ping_interval_s: float | None = DEFAULT_PING_INTERVAL_S
    python_ping_timeout_s: float | None = DEFAULT_PING_TIMEOUT_S
    node_ping_interval_s: float | None = 30.0
    mix: PopulationMix = field(default_factory=PopulationMix)
    record_seconds: float = 360.0
    time_scale: float = 1.0  # 1.0 = real time; set by scaled()

    def scaled(self, factor: float) -> Scenario:
        """This scenario with every duration multiplied by ``factor`` (0 < factor)."""
        if factor <= 0:
            raise ParameterError("time_scale", f"must be positive, got {factor}")
        if factor == 1:
            return self

        def times(value: float | None) -> float | None:
            return None if value is None else value * factor

        return replace(
            self,
            proxy_read_timeout_s=self.proxy_read_timeout_s * factor,
            python_ping_interval_s=times(self.python_ping_interval_s),
            python_ping_timeout_s=times(self.python_ping_timeout_s),
            node_ping_interval_s=times(self.node_ping_interval_s),
            mix=self.mix.scaled(factor),
            record_seconds=self.record_seconds * factor,
            time_scale=self.time_scale * factor,
        )

    def settings(self) -> dict[str, object]:
        """The knobs of this scenario as plain data (for lab-run.json)."""
        data = asdict(self)
        for key in ("name", "title", "story", "fix", "true_causes"):
            data.pop(key)
        return data


HEALTHY = Scenario(
    name="healthy",
    title="healthy service: heartbeats shorter than the proxy timeout",
    true_causes=(),
    story=(
        "nginx proxies WebSockets with a correct configuration and its default 60 s "
        "proxy_read_timeout. Both applications keep idle connections alive with a heartbeat "
        "shorter than that timeout: python-websockets pings every 20 s (its default) and the "
        "Node server pings every 30 s and terminates peers that miss a pong (the reference "
        "runbook's HeartbeatWebSocketServer). Idle and chatty users alike stay connected; the "
        "only disconnects are users leaving normally (1000/1001) now and then."
    ),
    fix="nothing to fix: this is the baseline to compare incidents against.",
)

PROXY_TIMEOUT = Scenario(
    name="proxy_timeout",
    title="nginx cuts idle WebSockets at its 60 s proxy_read_timeout (no heartbeat)",
    true_causes=("proxy", "heartbeat"),
    story=(
        "The same nginx configuration as the healthy sample (correct WebSocket headers, "
        "proxy_read_timeout left at its 60 s default), but neither application sends a "
        "heartbeat: the python-websockets server runs with ping_interval=None and the Node ws "
        "server without its ping loop (the ws default). A connection with no traffic in either "
        "direction for 60 s is closed by nginx, which logs `upstream timed out (110: Connection "
        "timed out) while proxying upgraded connection` at info level and simply closes both TCP "
        "connections: no close frame, so the servers record 1006 after ~60 s. Idle users "
        "(backgrounded tabs, phones in a pocket) are cut every minute and reconnect with "
        "backoff; chatty users, whose messages reset the timer, survive."
    ),
    fix=(
        "send a heartbeat more often than the proxy timeout (python-websockets: leave "
        "ping_interval at 20 s; Node ws: ping every 30 s and terminate peers that miss a pong), "
        "or raise proxy_read_timeout above the longest expected idle time (e.g. 3600s) - "
        "ideally both, since other intermediaries (load balancers, NAT) have idle timeouts too."
    ),
    python_ping_interval_s=None,
    python_ping_timeout_s=None,
    node_ping_interval_s=None,
    mix=PopulationMix(idle_share=0.55),
)

SCENARIOS: dict[str, Scenario] = {scenario.name: scenario for scenario in (HEALTHY, PROXY_TIMEOUT)}


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name``; ParameterError lists the known ones otherwise."""
    try:
        return SCENARIOS[name]
    except KeyError:
        known = ", ".join(sorted(SCENARIOS))
        raise ParameterError("scenario", f"unknown scenario {name!r}; choose one of {known}") from None


class ScenarioLab:
    """The servers and the nginx of one scenario, running on loopback; a context manager.

    Entering starts each backend server on a free port, then nginx in front of them, and waits
    until all listen; if any part fails, the parts already started are stopped before the error
    propagates. Leaving stops everything through its own process handle. ``run_dir`` receives
    the nginx run folder and the servers' logs. Raises MissingBinaryError when nginx (or node,
    for the node backend) is missing, LabError when a part does not start.
    """

    def __init__(self, scenario: Scenario, run_dir: Path,
                 backends: tuple[str, ...] = BACKENDS) -> None:
        unknown = set(backends) - set(BACKENDS)
        if unknown or not backends:
            raise ParameterError("backends", f"choose from {', '.join(BACKENDS)}, got {backends}")
        self.scenario = scenario
        self.run_dir = Path(run_dir)
        self.backends = backends
        self.nginx: Nginx | None = None
        self.servers: dict[str, ChildProcess] = {}
        self.server_logs: dict[str, Path] = {}
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> ScenarioLab:
        with contextlib.ExitStack() as stack:
            routes = []
            for backend in self.backends:
                location, upstream, log_name = ROUTES[backend]
                port = free_port()
                folder = self.run_dir / backend
                folder.mkdir(parents=True, exist_ok=True)
                log_path = folder / log_name
                if backend == PYTHON_BACKEND:
                    log_path.touch()
                    process = python_server(
                        port, log_path, folder / "process.out",
                        ping_interval=self.scenario.python_ping_interval_s,
                        ping_timeout=self.scenario.python_ping_timeout_s,
                    )
                else:
                    # The Node monitor writes its format to stdout: the process log is the log.
                    process = node_monitor_server(
                        port, log_path, ping_interval_s=self.scenario.node_ping_interval_s)
                stack.enter_context(process.start())
                process.wait_listening(port)
                self.servers[backend] = process
                self.server_logs[backend] = log_path
                routes.append(Route(location, upstream, port))
            site = ProxySite(listen_port=free_port(), routes=tuple(routes),
                             proxy_read_timeout_s=self.scenario.proxy_read_timeout_s)
            self.nginx = stack.enter_context(Nginx(site, self.run_dir / "nginx"))
            self._stack = stack.pop_all()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop nginx, then the servers (reverse start order); safe to call twice."""
        self._stack.close()

    def check_running(self) -> None:
        """Raise LabError if a server or nginx has exited: its logs would not show the scenario."""
        for process in self.servers.values():
            process.check_running()
        if self.nginx is None or self.nginx.process is None:
            raise RuntimeError("the lab is not running")
        self.nginx.process.check_running()

    @property
    def targets(self) -> list[tuple[str, str]]:
        """(backend, ws:// URL through nginx) for every backend, in start order."""
        if self.nginx is None:
            raise RuntimeError("the lab is not running")
        return [(backend, f"ws://{LOOPBACK}:{self.nginx.site.listen_port}{ROUTES[backend][0]}")
                for backend in self.backends]

    @property
    def log_files(self) -> dict[str, Path]:
        """Sample file name -> live file: the servers' logs, nginx's logs and its config."""
        if self.nginx is None:
            raise RuntimeError("the lab is not running")
        files = {ROUTES[backend][2]: path for backend, path in self.server_logs.items()}
        files["access.log"] = self.nginx.paths.access_log
        files["error.log"] = self.nginx.paths.error_log
        files["nginx.conf"] = self.nginx.paths.conf
        return files

    @property
    def seen_pids(self) -> set[int]:
        """Every process this lab started or saw under its children (nginx workers)."""
        pids = set().union(*(server.seen_pids for server in self.servers.values()))
        if self.nginx is not None:
            pids |= self.nginx.seen_pids
        return pids
