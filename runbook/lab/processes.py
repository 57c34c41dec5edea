"""Child processes of the lab: loopback ports, a stoppable process handle, the Node launcher.

Every server the lab runs (nginx, the python ``websockets`` server, the Node ``ws`` server) is a
real child process started with :class:`subprocess.Popen` and stopped through that same handle,
also on exceptions and Ctrl-C. Nothing here ever looks processes up or kills them by name.

    LabError                  root of the lab's own failures (a RunbookError)
    └── MissingBinaryError    nginx, node or npm is not installed

The Node ``ws`` package is installed on first use into a cache folder outside the repository
(``$XDG_CACHE_HOME/ws-runbook/node``, by default ``~/.cache/ws-runbook/node``) with the ordinary
``npm install --prefix``; the server script itself ships in this package.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psutil

from runbook.errors import RunbookError

LOOPBACK = "127.0.0.1"

# Seconds a server gets to open its listening socket; nginx and node start well under 1 s.
READY_TIMEOUT_S = 15.0
# Seconds between SIGTERM and SIGKILL when stopping a child.
STOP_GRACE_S = 5.0
# npm install of a single small package; bounded so a dead registry cannot hang a test run.
NPM_INSTALL_TIMEOUT_S = 300.0

# The ws release line the Node monitor server is written against.
WS_NPM_SPEC = "ws@8"
NODE_MONITOR_SCRIPT = Path(__file__).with_name("node_monitor_server.js")


# Every pid a ChildProcess saw and every port a lab part listened on, in this interpreter: what
# a test session (or any caller) checks is gone once the labs have stopped.
_STARTED_PIDS: dict[int, psutil.Process] = {}
_LISTEN_PORTS: set[int] = set()


def register_listen_port(port: int) -> None:
    """Remember that a lab part listened on ``port`` (see :func:`leftovers`)."""
    _LISTEN_PORTS.add(port)


def leftovers() -> tuple[list[tuple[int, str]], list[int]]:
    """Lab processes still running and lab ports still listening, in this interpreter.

    Returns ``([(pid, name), ...], [port, ...])``; both empty once every lab was stopped.
    Zombies count as gone (only the parent's wait() is missing, nothing runs).
    """
    alive = []
    for pid, process in sorted(_STARTED_PIDS.items()):
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append((pid, process.name()))
        except psutil.Error:
            pass
    listening = set()
    with contextlib.suppress(psutil.Error):
        for conn in psutil.net_connections(kind="tcp"):
            if (conn.status == psutil.CONN_LISTEN and conn.laddr
                    and conn.laddr.port in _LISTEN_PORTS):
                listening.add(conn.laddr.port)
    return alive, sorted(listening)


class LabError(RunbookError):
    """A lab environment could not be set up or run (a server failed to start, npm failed)."""


class MissingBinaryError(LabError):
    """A system binary the lab needs (nginx, node, npm) is not on this machine."""

    def __init__(self, binary: str, hint: str) -> None:
        super().__init__(binary, hint)
        self.binary = binary
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.binary} not found: {self.hint}"


def find_binary(name: str, hint: str, candidates: Sequence[str] = ()) -> str:
    """Return the path of ``name`` from PATH or ``candidates``; raise MissingBinaryError if absent."""
    found = shutil.which(name)
    if found:
        return found
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    raise MissingBinaryError(name, hint)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def has_listening_socket(pid: int, port: int) -> bool:
    """True when process ``pid`` holds a TCP socket listening on ``port``.

    Asked of the kernel rather than by connecting, so readiness checks leave no trace (no
    "client closed connection" line in nginx's error log, no failed handshake in a server's).
    """
    try:
        sockets = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return False
    return any(s.status == psutil.CONN_LISTEN and s.laddr and s.laddr.port == port
               for s in sockets)


def _die_with_parent(stop_signal: signal.Signals):
    """A preexec_fn that has the kernel send ``stop_signal`` to the child when the launcher dies.

    ``lab serve`` killed with SIGKILL runs no cleanup, and its nginx, Node and Python servers
    would go on listening: prctl(2) PR_SET_PDEATHSIG ties their lifetime to the launcher (the
    stop signal, not SIGKILL, so an nginx master still takes its workers down). The signal fires
    when the launching *thread* ends, so only children started from the main thread get it; on
    systems without prctl (not Linux) nothing is set.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(stop_signal), 0, 0, 0)
        if os.getppid() != parent:  # the launcher died before prctl took effect
            os.kill(os.getpid(), stop_signal)

    return preexec


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class ChildProcess:
    """One child process started with Popen and stopped only through this handle.

    ``start()`` launches it with stdout and stderr appended to ``log_path``; ``wait_listening()``
    waits (bounded) until it holds a socket listening on the port and raises LabError with the
    tail of its log if it exited instead; ``stop()`` sends ``stop_signal``, waits, then SIGKILLs
    the process and any of its own children still alive. Use it as a context manager so ``stop()`` runs on
    every exit path.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = Path(log_path)
        self.env = env
        self.cwd = cwd
        self.stop_signal = stop_signal
        self.popen: subprocess.Popen[bytes] | None = None
        # Every process seen under this handle (the child and its children, e.g. nginx workers),
        # so stop() can reap leftovers and callers can check that none is left. psutil handles
        # remember the start time, which guards against a recycled pid.
        self._seen: dict[int, psutil.Process] = {}

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def start(self) -> ChildProcess:
        if self.popen is not None:
            raise LabError(f"{self.name} already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(  # noqa: S603 - argv built by the lab, no shell
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                preexec_fn=_die_with_parent(self.stop_signal),
            )
        with contextlib.suppress(psutil.Error):
            self._remember(psutil.Process(self.popen.pid))
        return self

    @property
    def seen_pids(self) -> set[int]:
        """Pids of every process seen under this handle: the child and its children."""
        return set(self._seen)

    def _remember(self, process: psutil.Process) -> None:
        self._seen.setdefault(process.pid, process)
        _STARTED_PIDS.setdefault(process.pid, process)

    def wait_listening(self, port: int, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Block until the child listens on ``port`` (bounded by timeout_s); LabError if not."""
        if self.popen is None:
            raise LabError(f"{self.name} was never started")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise LabError(
                    f"{self.name} exited with status {self.popen.returncode} before listening on "
                    f"port {port}: {self.log_tail()}"
                )
            if has_listening_socket(self.popen.pid, port):
                self.remember_children()
                register_listen_port(port)
                return
            time.sleep(0.05)
        raise LabError(f"{self.name} did not listen on port {port} within {timeout_s:g} s")

    def check_running(self) -> None:
        """Raise LabError (with the tail of its output) if the child has exited."""
        if self.popen is None:
            raise LabError(f"{self.name} was never started")
        if self.popen.poll() is not None:
            raise LabError(f"{self.name} exited with status {self.popen.returncode} while the lab "
                           f"was running: {self.log_tail()}")

    def remember_children(self) -> None:
        """Record the pids of the child's own children (nginx workers) for the final check."""
        if self.popen is None:
            return
        try:
            children = psutil.Process(self.popen.pid).children(recursive=True)
        except psutil.Error:
            return
        for child in children:
            self._remember(child)

    def log_tail(self, limit: int = 800) -> str:
        """The last ``limit`` characters of the child's output, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no output)"
        return text[-limit:].strip() or "(no output)"

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop the child and its own children; idempotent, never raises for a dead process."""
        if self.popen is None:
            return
        self.remember_children()
        try:
            if self.popen.poll() is None:
                self.popen.send_signal(self.stop_signal)
                self.popen.wait(timeout=grace_s)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass
        finally:
            # Also reached when Ctrl-C interrupts the graceful wait.
            if self.popen.poll() is None:
                self.popen.kill()
                self.popen.wait(timeout=grace_s)
        # A master that died abruptly can leave workers behind: reap the ones we saw ourselves.
        for pid, leftover in self._seen.items():
            if pid == self.popen.pid:
                continue
            try:
                if leftover.is_running():
                    leftover.kill()
                    leftover.wait(timeout=grace_s)
            except (psutil.Error, psutil.TimeoutExpired):
                pass

    def __enter__(self) -> ChildProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --- the Node `ws` monitor server ------------------------------------------------------------


def node_cache_dir() -> Path:
    """Where the lab keeps its npm packages: outside the repository, per user."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ws-runbook" / "node"


def ensure_ws_installed(cache_dir: Path | None = None) -> Path:
    """Install the npm ``ws`` package into ``cache_dir`` once; return its ``node_modules`` folder.

    The install goes to a private temporary prefix that is then renamed into place, so two runs
    starting at once never see a half-installed package. Raises MissingBinaryError without npm
    and LabError when npm fails (for example with no registry access).
    """
    cache_dir = cache_dir or node_cache_dir()
    modules = cache_dir / "node_modules"
    if (modules / "ws" / "package.json").is_file():
        return modules
    npm = find_binary("npm", "install the Debian package npm (the lab installs ws with it)")
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = cache_dir.with_name(f"{cache_dir.name}.install-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund",
             "--loglevel=error", WS_NPM_SPEC],
            capture_output=True,
            text=True,
            timeout=NPM_INSTALL_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0 or not (staging / "node_modules" / "ws").is_dir():
            raise LabError(f"npm install {WS_NPM_SPEC} failed: {(done.stderr or done.stdout)[-800:]}")
        try:
            staging.rename(cache_dir)
        except OSError:
            # Another run finished first; its copy is as good as ours.
            if not (modules / "ws" / "package.json").is_file():
                raise
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"npm install {WS_NPM_SPEC} took longer than {exc.timeout:g} s") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return modules


def ws_package_version(node_modules: Path) -> str:
    """The installed ``ws`` version, read from its package.json ("unknown" if unreadable)."""
    import json

    try:
        return json.loads((node_modules / "ws" / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return "unknown"


def node_monitor_server(
    port: int,
    log_path: Path,
    *,
    ping_interval_s: float | None,
    node_modules: Path | None = None,
    leak: bool = False,
    max_connections: int | None = None,
) -> ChildProcess:
    """A (not yet started) handle on the Node ``ws`` server instrumented with WebSocketMonitor.

    It listens on 127.0.0.1:port; ``ping_interval_s`` None runs it without heartbeat (the ``ws``
    default), otherwise it pings every interval and terminates peers that missed a pong (the
    reference runbook's HeartbeatWebSocketServer). ``leak`` keeps a listener, an interval and a
    buffer per connection for ever; ``max_connections`` closes connections beyond that many
    open with 1013. Its console output, the "Node monitor" log format, goes to ``log_path``.
    Raises MissingBinaryError when node is missing.
    """
    node = find_binary("node", "install the Debian package nodejs")
    modules = node_modules or ensure_ws_installed()
    ping_ms = 0 if ping_interval_s is None else max(1, round(ping_interval_s * 1000))
    env = dict(os.environ)
    # require('ws') resolves through NODE_PATH: the package stays out of the repository.
    env["NODE_PATH"] = str(modules)
    argv = [node, str(NODE_MONITOR_SCRIPT), "--host", LOOPBACK, "--port", str(port),
            "--ping-interval-ms", str(ping_ms)]
    if leak:
        argv += ["--leak", "1"]
    if max_connections is not None:
        argv += ["--max-connections", str(max_connections)]
    return ChildProcess("node ws server", argv, log_path, env=env)


class ForegroundProxy:
    """A proxy (nginx, HAProxy) run in the foreground from a run folder; a context manager.

    Subclasses set ``name`` and provide ``prepare()`` (write and check the config), ``argv()``
    (the command line) and ``output`` (where its stdout/stderr go), and set ``site`` (with its
    ``listen_port``). Entering prepares, starts the process and waits until it listens; leaving
    stops it through its own handle (SIGTERM: both proxies end their workers before exiting).
    """

    name = "proxy"
    site: Any
    output: Path

    def __init__(self) -> None:
        self.process: ChildProcess | None = None

    @property
    def url(self) -> str:
        return f"ws://{LOOPBACK}:{self.site.listen_port}"

    def prepare(self) -> None:
        raise NotImplementedError

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> Self:
        self.prepare()
        self.process = ChildProcess(self.name, self.argv(), self.output, stop_signal=signal.SIGTERM)
        self.process.start()
        try:
            self.process.wait_listening(self.site.listen_port)
        except BaseException:
            self.process.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    @property
    def seen_pids(self) -> set[int]:
        return self.process.seen_pids if self.process else set()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
