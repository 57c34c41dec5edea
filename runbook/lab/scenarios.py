"""Fault scenarios: what each one runs, and :class:`ScenarioLab`, which runs it on loopback.

A :class:`Scenario` is data: the proxy's timeout and headers, each server's heartbeat and faults,
an optional network device on the clients' path, the client population and the root cause it
reproduces (ids from DESIGN.md). Every duration is in seconds of real time;
:meth:`Scenario.scaled` compresses all of them by one factor, so a test can replay a 60 s
timeout in 3 s with the same shape, and :meth:`Scenario.compressed` applies the factor chosen
for each scenario so that its fault shows within seconds.

:class:`ScenarioLab` starts the real parts of a scenario on 127.0.0.1::

    client ─[middlebox]─► proxy 127.0.0.1:P ──/ws/chat──► python websockets ──► close-log.jsonl
                                             └─/ws/live──► Node ws + monitor  ──► server.log

The proxy is a real nginx when one is installed, else (or when asked) the built-in relay of
:mod:`runbook.lab.relay` emulating nginx's idle timeout and, for ``proxy_missing_upgrade``, its
default HTTP/1.0 upstream requests; every output names which one ran (``proxy_used``). A
middlebox is a relay too: in front of the proxy (a firewall on every user's path) or beside it
(a second path straight to the python server, e.g. an L4 load balancer for mobile apps).
"""

from __future__ import annotations

import contextlib
import json
import shlex
import signal
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import TracebackType

from runbook.errors import ParameterError
from runbook.lab.clients import FIXED_DELAY, BackgroundPopulation, PopulationMix, build_population
from runbook.lab.haproxy import Haproxy, HaproxySite, find_haproxy, haproxy_version
from runbook.lab.nginx import (
    NGINX_DEFAULT_PROXY_READ_TIMEOUT_S,
    NGINX_HINT,
    Nginx,
    ProxySite,
    Route,
    find_nginx,
    nginx_version,
)
from runbook.lab.processes import (
    LOOPBACK,
    ChildProcess,
    LabError,
    MissingBinaryError,
    ensure_ws_installed,
    find_binary,
    free_port,
    node_cache_dir,
    node_monitor_server,
)
from runbook.lab.relay import Relay, RelayMode
from runbook.lab.server import (
    DEFAULT_PING_INTERVAL_S,
    DEFAULT_PING_TIMEOUT_S,
    ServerFaults,
    python_server,
)

PYTHON_BACKEND = "python"
NODE_BACKEND = "node"
BACKENDS = (PYTHON_BACKEND, NODE_BACKEND)

# Which location each backend sits behind, its nginx upstream name and the log it writes.
ROUTES = {
    PYTHON_BACKEND: ("/ws/chat", "chat_python", "close-log.jsonl"),
    NODE_BACKEND: ("/ws/live", "live_node", "server.log"),
}

PROXY_CHOICES = ("auto", "nginx", "haproxy", "relay")


@dataclass(frozen=True)
class Middlebox:
    """A network device on some clients' path, played by a :class:`~runbook.lab.relay.Relay`.

    ``in_front_of="proxy"`` puts it on every user's path, before the proxy; ``"python"`` opens a
    second path beside the proxy, straight to the python server, which the population then
    shares round-robin with the proxied routes.
    """

    name: str  # e.g. "stateful firewall"
    mode: RelayMode
    idle_timeout_s: float
    in_front_of: str = "proxy"

    def __post_init__(self) -> None:
        if self.in_front_of not in ("proxy", PYTHON_BACKEND):
            raise ValueError("a middlebox stands in front of 'proxy' or 'python'")

    def describe(self) -> str:
        verb = ("silently stops forwarding (no FIN, no RST)" if self.mode is RelayMode.BLACKHOLE
                else "closes")
        where = ("on every user's path, in front of the proxy" if self.in_front_of == "proxy"
                 else "on a second path straight to the python server")
        return f"{self.name} {where}: {verb} flows idle for {_seconds(self.idle_timeout_s)}"


@dataclass(frozen=True)
class Scenario:
    """One reproducible situation: the proxy, the servers, the network and the users."""

    name: str
    title: str
    true_causes: tuple[str, ...]  # root cause ids (DESIGN.md); empty when healthy
    story: str  # what happens and why, for the sample's README
    fix: str
    shows: str  # what a responder sees, one line (for `ws-runbook lab list`)
    # The proxy's idle timeout: nginx's proxy_read_timeout; with HAProxy its `timeout client`
    # and `timeout server`, which apply to upgraded connections unless `timeout tunnel` is set.
    proxy_read_timeout_s: float = NGINX_DEFAULT_PROXY_READ_TIMEOUT_S
    proxy_websocket_headers: bool = True
    haproxy_timeout_tunnel_s: float | None = None  # HAProxy only; None: not set
    python_ping_interval_s: float | None = DEFAULT_PING_INTERVAL_S
    python_ping_timeout_s: float | None = DEFAULT_PING_TIMEOUT_S
    python_faults: ServerFaults = field(default_factory=ServerFaults)
    node_ping_interval_s: float | None = 30.0
    node_leak: bool = False
    node_max_connections: int | None = None
    middlebox: Middlebox | None = None
    mix: PopulationMix = field(default_factory=PopulationMix)
    record_seconds: float = 360.0
    # The factor compressed runs use (tests, the demo, `ws-runbook lab --fast`): the fault shows
    # within seconds while every timer keeps its order relative to the others.
    fast_time_scale: float = 0.05
    time_scale: float = 1.0  # 1.0 = real time; set by scaled()

    def scaled(self, factor: float) -> Scenario:
        """This scenario with every duration multiplied by ``factor`` (0 < factor)."""
        if factor <= 0:
            raise ParameterError("time_scale", f"must be positive, got {factor}")
        if factor == 1:
            return self

        def times(value: float | None) -> float | None:
            return None if value is None else value * factor

        middlebox = (None if self.middlebox is None else
                     replace(self.middlebox, idle_timeout_s=self.middlebox.idle_timeout_s * factor))
        return replace(
            self,
            proxy_read_timeout_s=self.proxy_read_timeout_s * factor,
            haproxy_timeout_tunnel_s=times(self.haproxy_timeout_tunnel_s),
            python_ping_interval_s=times(self.python_ping_interval_s),
            python_ping_timeout_s=times(self.python_ping_timeout_s),
            node_ping_interval_s=times(self.node_ping_interval_s),
            middlebox=middlebox,
            mix=self.mix.scaled(factor),
            record_seconds=self.record_seconds * factor,
            time_scale=self.time_scale * factor,
        )

    def compressed(self) -> Scenario:
        """This scenario at its own ``fast_time_scale``: the fault shows within seconds."""
        return self.scaled(self.fast_time_scale)

    def with_clients(self, clients: int) -> Scenario:
        """The same scenario with ``clients`` users; server capacities scale along with them."""
        if clients < 1:
            raise ParameterError("clients", f"must be at least 1, got {clients}")

        def capacity(value: int | None) -> int | None:
            return None if value is None else max(1, round(value * clients / self.mix.clients))

        faults = replace(self.python_faults,
                         max_connections=capacity(self.python_faults.max_connections))
        return replace(self, mix=replace(self.mix, clients=clients), python_faults=faults,
                       node_max_connections=capacity(self.node_max_connections))

    def settings(self) -> dict[str, object]:
        """The knobs of this scenario as plain data (for lab-run.json)."""
        data = asdict(self)
        for key in ("name", "title", "story", "fix", "true_causes", "shows"):
            data.pop(key)
        return data

    def describe_setup(self) -> list[tuple[str, str]]:
        """(part, setting) rows describing what runs, in words."""
        if not self.proxy_websocket_headers:
            headers = ("bare `proxy_pass`: no `proxy_http_version 1.1`, Upgrade and Connection "
                       "not forwarded (nginx's defaults)")
        else:
            headers = ("reference WebSocket proxy config (HTTP/1.1, Upgrade/Connection "
                       "forwarded, buffering off)")
        if self.proxy_read_timeout_s == NGINX_DEFAULT_PROXY_READ_TIMEOUT_S and self.time_scale == 1:
            timeout = "`proxy_read_timeout` not set: nginx's default 60 s applies"
        else:
            timeout = f"`proxy_read_timeout {_seconds(self.proxy_read_timeout_s)}`"
        python_ping = ("no heartbeat (`ping_interval=None`)" if self.python_ping_interval_s is None
                       else f"pings every {_seconds(self.python_ping_interval_s)} "
                            f"(pong timeout {_seconds(self.python_ping_timeout_s)})")
        node_ping = ("no heartbeat (the ws default)" if self.node_ping_interval_s is None
                     else f"pings every {_seconds(self.node_ping_interval_s)}, terminates peers "
                          f"that missed the previous pong")
        node_faults = []
        if self.node_leak:
            node_faults.append("keeps a listener, an interval and a 128 KiB buffer per "
                               "connection for ever")
        if self.node_max_connections is not None:
            node_faults.append(f"closes connections beyond {self.node_max_connections} open with "
                               "1013 (try again later)")
        rows = [
            ("proxy (nginx)", f"{headers}; {timeout}; `error_log ... info`"),
            (f"python websockets server, `{ROUTES[PYTHON_BACKEND][0]}`",
             f"{python_ping}; faults: {self.python_faults.describe()}"),
            (f"Node ws server + WebSocketMonitor, `{ROUTES[NODE_BACKEND][0]}`",
             f"{node_ping}; faults: {'; '.join(node_faults) or 'none'}"),
        ]
        if self.middlebox is not None:
            rows.append(("network", self.middlebox.describe()))
        return rows


def _seconds(value: float | None) -> str:
    if value is None:
        return "none"
    return f"{value:g} s" if value >= 1 else f"{value * 1000:g} ms"


HEALTHY = Scenario(
    name="healthy",
    title="healthy service: heartbeats shorter than the proxy timeout",
    true_causes=(),
    shows="only users leaving normally (1000/1001) now and then",
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

PROXY_MISSING_UPGRADE = Scenario(
    name="proxy_missing_upgrade",
    title="nginx does not forward the WebSocket upgrade: every handshake fails through the proxy",
    true_causes=("proxy",),
    shows="non-101 answers through nginx (505 from python, 426 from Node), 101 direct",
    story=(
        "The WebSocket locations are a bare `proxy_pass`, as for any HTTP API: no "
        "`proxy_http_version 1.1` and no `proxy_set_header Upgrade`/`Connection`. nginx then "
        "talks HTTP/1.0 to the backends and drops the hop-by-hop Upgrade and Connection "
        "headers, so no backend ever sees a WebSocket handshake: python-websockets answers "
        "505 (it refuses HTTP/1.0 before looking for Upgrade) and Node ws 426 Upgrade "
        "Required, and nginx passes those answers to the clients. The same servers answer 101 "
        "when reached directly. Clients retry with backoff and give up after 10 failures in a "
        "row; the access log is full of non-101 answers on the WebSocket paths and the python "
        "server logs each refused handshake."
    ),
    fix=(
        "in every WebSocket location: `proxy_http_version 1.1;`, `proxy_set_header Upgrade "
        "$http_upgrade;`, `proxy_set_header Connection $connection_upgrade;` with the "
        "`map $http_upgrade $connection_upgrade { default upgrade; '' close; }` idiom."
    ),
    proxy_websocket_headers=False,
    record_seconds=180.0,
)

PROXY_TIMEOUT = Scenario(
    name="proxy_timeout",
    title="nginx cuts idle WebSockets at its 60 s proxy_read_timeout, before the 90 s heartbeat",
    true_causes=("proxy",),
    shows="idle sockets cut at the proxy's read timeout with 1006; chatty ones survive",
    story=(
        "The same nginx configuration as the healthy sample (correct WebSocket headers, "
        "proxy_read_timeout left at its 60 s default), and both applications do send a "
        "heartbeat, but a slower one: the python-websockets server pings every 90 s and the "
        "Node ws server every 90 s. A connection with no traffic in either direction for 60 s "
        "is closed by nginx before its first ping: nginx logs `upstream timed out (110: "
        "Connection timed out) while proxying upgraded connection` at info level and closes "
        "both TCP connections without a close frame, so servers and clients record 1006 after "
        "~60 s. Idle users (backgrounded tabs, phones in a pocket) are cut every minute and "
        "reconnect with backoff; chatty users, whose messages reset the timer, survive."
    ),
    fix=(
        "make the heartbeat shorter than every idle timeout on the path (python-websockets: "
        "its default ping_interval of 20 s; Node ws: ping every 30 s and terminate peers that "
        "miss a pong), or raise proxy_read_timeout above the heartbeat (e.g. 3600s) - ideally "
        "both, since other intermediaries (load balancers, NAT) have idle timeouts too."
    ),
    python_ping_interval_s=90.0,
    node_ping_interval_s=90.0,
    mix=PopulationMix(idle_share=0.55),
)

HEARTBEAT_MISSING = Scenario(
    name="heartbeat_missing",
    title="no heartbeat: idle sockets die at the first idle timeout, dead peers linger",
    true_causes=("heartbeat",),
    shows=("idle sockets cut at nginx's timeout with 1006; connections from vanished mobile "
           "clients stay open on the server"),
    story=(
        "Neither application sends a heartbeat (python-websockets with ping_interval=None, "
        "Node ws without its ping loop, the ws default). Browsers reach them through nginx with "
        "its default 60 s proxy_read_timeout, which cuts every connection idle for 60 s: 1006 "
        "on both sides, `upstream timed out` in nginx's error log. The mobile app reaches the "
        "python server on a second path, an L4 load balancer that forgets flows idle for 30 s "
        "without telling either end. When a phone on that path leaves (app closed, network "
        "lost) its goodbye never arrives: the server, which never pings, keeps the dead "
        "connection open for ever, and its count of open connections grows beyond the number "
        "of users actually connected."
    ),
    fix=(
        "turn the heartbeat on (python-websockets: ping_interval 20 s, ping_timeout 20 s; Node "
        "ws: ping every 30 s and terminate peers that missed the previous pong), shorter than "
        "every idle timeout on every path; the server then detects and closes dead peers."
    ),
    python_ping_interval_s=None,
    python_ping_timeout_s=None,
    node_ping_interval_s=None,
    middlebox=Middlebox("L4 load balancer", RelayMode.BLACKHOLE, 30.0, in_front_of=PYTHON_BACKEND),
    mix=PopulationMix(idle_share=0.55, mean_visit_s=240.0, return_after_s=(5.0, 30.0)),
)

NETWORK_IDLE_DROP = Scenario(
    name="network_idle_drop",
    title="a firewall silently drops flows idle for 30 s; the 45 s heartbeat comes too late",
    true_causes=("network",),
    shows=("pings after 30 s idle go unanswered with no FIN or RST; python closes with 1011 "
           "keepalive ping timeout, Node terminates (1006); idle clients never notice"),
    story=(
        "A stateful firewall on the users' path forgets TCP flows idle for 30 s and from then "
        "on drops their packets without a FIN or RST, as NAT gateways and cloud load balancers "
        "with silent idle timeouts do. nginx behind it is fine (proxy_read_timeout raised to "
        "3600s). The applications ping, but every 45 s: the first ping of an idle connection "
        "arrives after the firewall has forgotten the flow and is never answered. "
        "python-websockets gives up 20 s later and closes with 1011 `keepalive ping timeout`; "
        "the Node server terminates the peer at its next tick (1006). Neither the FIN nor the "
        "close frame reaches the clients: an idle browser tab keeps a socket it believes is "
        "open and learns otherwise only when it sends."
    ),
    fix=(
        "ping more often than the shortest idle timeout on the path (python-websockets' 20 s "
        "default; Node ws 20-25 s), or raise the device's idle timeout / enable TCP reset on "
        "idle; clients should ping too and reconnect when a pong is late."
    ),
    proxy_read_timeout_s=3600.0,
    python_ping_interval_s=45.0,
    node_ping_interval_s=45.0,
    middlebox=Middlebox("stateful firewall", RelayMode.BLACKHOLE, 30.0),
    mix=PopulationMix(idle_share=0.55),
    record_seconds=180.0,
    fast_time_scale=0.1,
)

RESOURCE_LEAK = Scenario(
    name="resource_leak",
    title="the servers keep timers, listeners and sockets of closed connections",
    true_causes=("resource_leak",),
    shows="server RSS and CLOSE_WAIT sockets grow with every connection that comes and goes",
    story=(
        "Users come and go every half minute or so (short visits). Both servers leak what each "
        "connection allocated: the python server keeps the connection object, a 128 KiB "
        "per-connection cache and a presence timer task it never cancels, and for 30% of "
        "connections a second descriptor on the TCP socket that it never closes, so when the "
        "peer closes, the socket stays in CLOSE_WAIT; the Node server keeps a listener on a "
        "shared event bus, an interval and a 128 KiB buffer per connection. Heartbeats and "
        "the proxy are healthy and disconnects are normal (1000/1001): the incident shows in "
        "the servers' memory and socket tables, which grow with churn and never shrink."
    ),
    fix=(
        "release everything a connection allocated when it closes: cancel its timers, remove "
        "its listeners, drop it from every registry, close its socket; watch RSS and CLOSE_WAIT "
        "per connection churned."
    ),
    python_faults=ServerFaults(leak=True, leak_socket_share=0.3),
    node_leak=True,
    mix=PopulationMix(mean_visit_s=30.0, return_after_s=(2.0, 10.0)),
    record_seconds=180.0,
    fast_time_scale=0.2,
)

CLIENT_RECONNECT_STORM = Scenario(
    name="client_reconnect_storm",
    title="clients reconnect at once, forever, each time the overloaded server sheds them",
    true_causes=("client",),
    shows="the same clients reconnecting every ~0.3 s, gaps flat (no backoff), 1013 closes",
    story=(
        "Each server accepts 20 concurrent connections and sheds the rest: it completes the "
        "handshake, then closes at once with 1013 `try again later`. That alone would be "
        "harmless, but the clients reconnect 0.25 s after every close, with no backoff and no "
        "jitter, forever: a third of the users hammer the servers several times a second, the "
        "logs fill with connect/1013 pairs whose reconnect gaps stay flat, and the load that "
        "made the server shed never goes away."
    ),
    fix=(
        "reconnect with exponential backoff and jitter (e.g. 1 s doubling to 30 s, +-50%), "
        "honour 1013 with a longer pause, cap the attempts; server side, shed before the "
        "handshake (HTTP 503 with Retry-After)."
    ),
    python_faults=ServerFaults(max_connections=20, shed_code=1013),
    node_max_connections=20,
    # Fewer users than the other scenarios: each looping client writes ~4 connections a second.
    mix=PopulationMix(clients=60, reconnect=FIXED_DELAY, ramp_up_s=2.0, max_sessions=2000),
    record_seconds=20.0,
    fast_time_scale=1.0,
)

SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (HEALTHY, PROXY_MISSING_UPGRADE, PROXY_TIMEOUT, HEARTBEAT_MISSING,
                     NETWORK_IDLE_DROP, RESOURCE_LEAK, CLIENT_RECONNECT_STORM)
}


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name``; ParameterError lists the known ones otherwise."""
    try:
        return SCENARIOS[name]
    except KeyError:
        known = ", ".join(SCENARIOS)
        raise ParameterError("scenario", f"unknown scenario {name!r}; choose one of {known}") from None


def node_backend_available(install: bool = True) -> tuple[bool, str]:
    """Whether the Node backend can run here, and if not why (for outputs).

    With ``install`` False nothing is downloaded: the npm ``ws`` package must already be in
    the lab's cache (the demo promises no network beyond loopback).
    """
    try:
        find_binary("node", "install the Debian package nodejs")
    except MissingBinaryError as error:
        return False, str(error)
    if (node_cache_dir() / "node_modules" / "ws" / "package.json").is_file():
        return True, ""
    if not install:
        return False, (f"the npm ws package is not in {node_cache_dir()} and this command does "
                       "not download (run `ws-runbook lab serve healthy` once to install it)")
    try:
        ensure_ws_installed()
    except LabError as error:
        return False, str(error)
    return True, ""


class ScenarioLab:
    """The servers, proxy and network devices of one scenario on loopback; a context manager.

    Entering starts each backend server on a free port, then the proxy (``proxy``: ``"nginx"``,
    ``"haproxy"``, ``"relay"`` or ``"auto"``: nginx when installed, else the built-in relay), then the
    middlebox, and waits until all listen; if any part fails, the parts already started are
    stopped before the error propagates. :meth:`start_clients` adds a client population. Leaving
    stops everything through its own handle (clients first, then network, proxy, servers).
    ``backends`` None runs the Node server too when it can (see
    :func:`node_backend_available`; ``install_node`` False never downloads it).

    Raises MissingBinaryError when a part asked for explicitly is missing (nginx with
    ``proxy="nginx"``, haproxy with ``proxy="haproxy"``, node in ``backends``), LabError when a part does not start.
    """

    def __init__(self, scenario: Scenario, run_dir: Path, backends: tuple[str, ...] | None = None,
                 *, proxy: str = "auto", install_node: bool = True) -> None:
        if backends is not None:
            unknown = set(backends) - set(BACKENDS)
            if unknown or PYTHON_BACKEND not in backends:
                raise ParameterError("backends", f"need 'python', optionally 'node'; got {backends}")
        if proxy not in PROXY_CHOICES:
            raise ParameterError("proxy", f"choose one of {', '.join(PROXY_CHOICES)}, got {proxy!r}")
        self.scenario = scenario
        self.run_dir = Path(run_dir)
        self.requested_backends = backends
        self.backends: tuple[str, ...] = ()
        self.proxy_choice = proxy
        self.install_node = install_node
        self.notes: list[str] = []  # what ran differently from the scenario, for every output
        self.nginx: Nginx | None = None
        self.haproxy: Haproxy | None = None
        self.proxy_relays: dict[str, Relay] = {}  # backend -> relay, when the relay is the proxy
        self.middleboxes: list[Relay] = []
        self.servers: dict[str, ChildProcess] = {}
        self.server_ports: dict[str, int] = {}
        self.server_logs: dict[str, Path] = {}
        self.clients: BackgroundPopulation | None = None
        self._targets: list[tuple[str, str, str]] = []
        self._user_urls: dict[str, str] = {}
        self._proxy_label = ""
        self._stack = contextlib.ExitStack()

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> ScenarioLab:
        with contextlib.ExitStack() as stack:
            self.backends = self._choose_backends()
            for backend in self.backends:
                self._start_server(stack, backend)
            proxy_urls = self._start_proxy(stack)
            self._start_network(stack, proxy_urls)
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
        """Stop clients, network, proxy and servers (reverse start order); safe to call twice."""
        self._stack.close()

    def _choose_backends(self) -> tuple[str, ...]:
        if self.requested_backends is not None:
            return tuple(b for b in BACKENDS if b in self.requested_backends)
        available, why = node_backend_available(install=self.install_node)
        if available:
            return BACKENDS
        self.notes.append(f"Node ws server not started: {why}")
        return (PYTHON_BACKEND,)

    def _start_server(self, stack: contextlib.ExitStack, backend: str) -> None:
        scenario = self.scenario
        port = free_port()
        folder = self.run_dir / backend
        folder.mkdir(parents=True, exist_ok=True)
        log_path = folder / ROUTES[backend][2]
        if backend == PYTHON_BACKEND:
            log_path.touch()
            process = python_server(
                port, log_path, folder / "process.out",
                ping_interval=scenario.python_ping_interval_s,
                ping_timeout=scenario.python_ping_timeout_s,
                faults=scenario.python_faults,
            )
        else:
            # The Node monitor writes its format to stdout: the process log is the log.
            process = node_monitor_server(
                port, log_path, ping_interval_s=scenario.node_ping_interval_s,
                leak=scenario.node_leak, max_connections=scenario.node_max_connections)
        stack.enter_context(process.start())
        process.wait_listening(port)
        self.servers[backend] = process
        self.server_ports[backend] = port
        self.server_logs[backend] = log_path

    def _use_nginx(self) -> bool:
        if self.proxy_choice == "haproxy":
            return False
        if self.proxy_choice == "relay":
            self.notes.append("proxy: the built-in relay was asked for instead of nginx")
            return False
        try:
            find_nginx()
        except MissingBinaryError as error:
            if self.proxy_choice == "nginx":
                raise
            self.notes.append(f"proxy: built-in relay, because {error}")
            return False
        return True

    def _start_proxy(self, stack: contextlib.ExitStack) -> dict[str, str]:
        """Start nginx or the relay; return each backend's proxy base URL (ws://host:port)."""
        scenario = self.scenario
        routes = tuple(Route(ROUTES[b][0], ROUTES[b][1], self.server_ports[b]) for b in self.backends)
        if self.proxy_choice == "haproxy":
            find_haproxy()  # MissingBinaryError names the package: asked for explicitly
            site = HaproxySite(listen_port=free_port(), routes=routes,
                               timeout_client_s=scenario.proxy_read_timeout_s,
                               timeout_server_s=scenario.proxy_read_timeout_s,
                               timeout_tunnel_s=scenario.haproxy_timeout_tunnel_s,
                               websocket_upgrade=scenario.proxy_websocket_headers)
            self.haproxy = stack.enter_context(Haproxy(site, self.run_dir / "haproxy"))
            self._proxy_label = f"{haproxy_version(self.haproxy.binary)} (real)"
            return {backend: self.haproxy.url for backend in self.backends}
        if self._use_nginx():
            site = ProxySite(listen_port=free_port(), routes=routes,
                             proxy_read_timeout_s=scenario.proxy_read_timeout_s,
                             websocket_headers=scenario.proxy_websocket_headers)
            self.nginx = stack.enter_context(Nginx(site, self.run_dir / "nginx"))
            self._proxy_label = f"nginx ({nginx_version(self.nginx.binary)}, real)"
            return {backend: self.nginx.url for backend in self.backends}
        # The relay cannot route by path: one per backend, each with nginx's idle timeout.
        urls = {}
        for backend in self.backends:
            relay = Relay(self.server_ports[backend], mode=RelayMode.CLOSE,
                          idle_timeout_s=scenario.proxy_read_timeout_s,
                          strip_upgrade=not scenario.proxy_websocket_headers,
                          name=f"proxy relay ({backend})")
            stack.enter_context(relay)
            self.proxy_relays[backend] = relay
            urls[backend] = relay.url
        self._proxy_label = ("built-in relay (not nginx): closes flows idle for "
                             f"{_seconds(scenario.proxy_read_timeout_s)}"
                             + ("; forwards the handshake as HTTP/1.0 without Upgrade/Connection"
                                if not scenario.proxy_websocket_headers else ""))
        return urls

    def _start_network(self, stack: contextlib.ExitStack, proxy_urls: dict[str, str]) -> None:
        """Start the middlebox, if any, and settle which URL each kind of user dials."""
        proxy_route = self.proxy_kind
        box = self.scenario.middlebox
        user_urls = dict(proxy_urls)
        routes = {backend: proxy_route for backend in self.backends}
        extra: list[tuple[str, str, str]] = []
        if box is not None and box.in_front_of == "proxy":
            by_port: dict[str, Relay] = {}
            for backend in self.backends:
                upstream = proxy_urls[backend]
                if upstream not in by_port:
                    port = int(upstream.rsplit(":", 1)[1])
                    relay = Relay(port, mode=box.mode, idle_timeout_s=box.idle_timeout_s,
                                  name=box.name)
                    stack.enter_context(relay)
                    self.middleboxes.append(relay)
                    by_port[upstream] = relay
                user_urls[backend] = by_port[upstream].url
                routes[backend] = f"{box.name} -> {proxy_route}"
        elif box is not None:
            relay = Relay(self.server_ports[PYTHON_BACKEND], mode=box.mode,
                          idle_timeout_s=box.idle_timeout_s, name=box.name)
            stack.enter_context(relay)
            self.middleboxes.append(relay)
            extra.append((PYTHON_BACKEND, relay.url + ROUTES[PYTHON_BACKEND][0],
                          f"{box.name} -> python"))
        self._user_urls = user_urls
        self._targets = [(backend, user_urls[backend] + ROUTES[backend][0], routes[backend])
                         for backend in self.backends] + extra

    def start_clients(self, seed: int) -> BackgroundPopulation:
        """Start the scenario's client population (in a thread); stopped when the lab closes."""
        if self.clients is not None:
            raise LabError("the clients are already running")
        specs = build_population(self.targets, self.scenario.mix, seed)
        population = BackgroundPopulation(specs, self.scenario.mix)
        self._stack.enter_context(population)
        self.clients = population
        return population

    def check_running(self) -> None:
        """Raise LabError if a server, nginx or a relay has stopped: logs would mislead."""
        for process in self.servers.values():
            process.check_running()
        for proxy in (self.nginx, self.haproxy):
            if proxy is not None and proxy.process is not None:
                proxy.process.check_running()
        for relay in [*self.proxy_relays.values(), *self.middleboxes]:
            if not relay.running:
                raise LabError(f"{relay.name} stopped while the lab was running")

    # --- what callers read ----------------------------------------------------------------

    def _require_running(self) -> None:
        if not self.servers:
            raise LabError("the lab is not running")

    @property
    def proxy_used(self) -> str:
        """Which proxy ran, in words: every output of the lab says it."""
        return self._proxy_label

    @property
    def proxy_kind(self) -> str:
        """"nginx", "haproxy" or "relay": which proxy runs."""
        if self.nginx is not None:
            return "nginx"
        return "haproxy" if self.haproxy is not None else "relay"

    @property
    def targets(self) -> list[tuple[str, str, str]]:
        """(backend, ws:// URL as its users dial it, route label) for each path users take."""
        self._require_running()
        return list(self._targets)

    def url(self, backend: str = PYTHON_BACKEND, *, direct: bool = False) -> str:
        """A backend's URL as its users reach it (through proxy and network), or direct."""
        self._require_running()
        if direct:
            return f"ws://{LOOPBACK}:{self.server_ports[backend]}{ROUTES[backend][0]}"
        return self._user_urls[backend] + ROUTES[backend][0]

    def proxy_url(self, backend: str = PYTHON_BACKEND) -> str:
        """A backend's URL at the proxy itself, past any middlebox in front of it."""
        self._require_running()
        if self.nginx is not None:
            return self.nginx.url + ROUTES[backend][0]
        if self.haproxy is not None:
            return self.haproxy.url + ROUTES[backend][0]
        return self.proxy_relays[backend].url + ROUTES[backend][0]

    @property
    def log_files(self) -> dict[str, Path]:
        """Sample file name -> live file: the servers' logs, nginx's logs and its config."""
        self._require_running()
        files = {ROUTES[backend][2]: path for backend, path in self.server_logs.items()}
        if self.nginx is not None:
            files["access.log"] = self.nginx.paths.access_log
            files["error.log"] = self.nginx.paths.error_log
            files["nginx.conf"] = self.nginx.paths.conf
        if self.haproxy is not None:
            files["haproxy.log"] = self.haproxy.log
            files["haproxy.cfg"] = self.haproxy.conf
        return files

    @property
    def close_logs(self) -> list[Path]:
        """The servers' close logs (JSON lines, Node monitor), live."""
        self._require_running()
        return [self.server_logs[backend] for backend in self.backends]

    def runbook_params(self) -> dict[str, object]:
        """The runbook parameters that point at this lab (DESIGN.md names)."""
        self._require_running()
        params: dict[str, object] = {
            "target_url": self.url(),
            "direct_url": self.url(direct=True),
            "server_port": self.server_ports[PYTHON_BACKEND],
            "server_pid": self.servers[PYTHON_BACKEND].pid,
            "close_logs": [str(path) for path in self.close_logs],
        }
        if self.nginx is not None:
            params["proxy_config"] = str(self.nginx.paths.conf)
        if self.haproxy is not None:
            params["proxy_config"] = str(self.haproxy.conf)
        return params

    def run_command(self) -> str:
        """A ``ws-runbook run`` command line with :meth:`runbook_params`, ready to paste."""
        parts = ["ws-runbook", "run"]
        for name, value in self.runbook_params().items():
            text = json.dumps(value) if isinstance(value, list) else str(value)
            parts += ["-p", name, shlex.quote(text)]
        return " ".join(parts)

    def describe(self) -> list[str]:
        """Lines for a terminal: the scenario, what runs where, the runbook parameters."""
        self._require_running()
        scenario = self.scenario
        lines = [
            f"scenario: {scenario.name} - {scenario.title}",
            f"true cause: {', '.join(scenario.true_causes) or 'none (healthy)'}",
            f"time scale: {scenario.time_scale:g}"
            + (" (real time)" if scenario.time_scale == 1 else " (every timeout compressed)"),
            f"proxy: {self.proxy_used}",
        ]
        lines += [f"note: {note}" for note in self.notes]
        lines += [f"network: {relay.describe()}" for relay in self.middleboxes]
        lines += [
            f"proxy URL:   {self.url()}",
            f"direct URL:  {self.url(direct=True)}",
            f"server port: {self.server_ports[PYTHON_BACKEND]}",
            f"server pid:  {self.servers[PYTHON_BACKEND].pid}",
        ]
        if NODE_BACKEND in self.servers:
            lines.append(f"node server: {self.url(NODE_BACKEND)} (direct "
                         f"{self.url(NODE_BACKEND, direct=True)}, pid "
                         f"{self.servers[NODE_BACKEND].pid})")
        for backend, url, route in self.targets[len(self.backends):]:
            lines.append(f"also reached via {route}: {url}")
        lines += [f"log: {path}" for path in self.log_files.values()]
        return lines

    @property
    def seen_pids(self) -> set[int]:
        """Every process this lab started or saw under its children (nginx workers)."""
        pids = set().union(*(server.seen_pids for server in self.servers.values()))
        if self.nginx is not None:
            pids |= self.nginx.seen_pids
        if self.haproxy is not None:
            pids |= self.haproxy.seen_pids
        return pids

    @property
    def ports(self) -> list[int]:
        """Every port a part of this lab listens on."""
        self._require_running()
        ports = list(self.server_ports.values())
        if self.nginx is not None:
            ports.append(self.nginx.site.listen_port)
        if self.haproxy is not None:
            ports.append(self.haproxy.site.listen_port)
        ports += [relay.port for relay in [*self.proxy_relays.values(), *self.middleboxes]]
        return ports


def install_interrupt_handler() -> Callable[[], None]:
    """Make SIGTERM stop a lab like Ctrl-C does (main thread only); returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)


__all__ = [
    "BACKENDS",
    "NGINX_HINT",
    "NODE_BACKEND",
    "PYTHON_BACKEND",
    "ROUTES",
    "SCENARIOS",
    "Middlebox",
    "Scenario",
    "ScenarioLab",
    "get_scenario",
    "install_interrupt_handler",
    "node_backend_available",
]
