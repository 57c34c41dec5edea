"""Server-side sampling with psutil: TCP states on the server port, memory/fds/threads of its process.

No netstat or ss binary: psutil reads the kernel's socket tables (/proc/net/tcp{,6} on Linux).
:class:`ServerSampler` samples once when it starts (before the other probes open anything),
then every ``interval_s`` while they run, then once more after they have closed everything and
the server had ``settle_s`` to clean up, so the first and last samples bracket what our
connections left behind. Sampling runs in a worker thread (psutil calls block) and is bounded
in count (``max_samples``) and time. Failures (no such process, nothing listening, access
denied) become results with ``ok=False`` and the reason.

The server's process is ``server_pid`` or else the process that listens on ``server_port``;
its children are summed in (nginx's workers hold the connections, not its master).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable

import psutil

from runbook.observations import ProcessResult, ProcessSample, SocketSample, SocketStatesResult

DEFAULT_INTERVAL_S = 1.0
DEFAULT_SETTLE_S = 1.0
DEFAULT_MAX_SAMPLES = 3600


def _tcp_table() -> list:
    return psutil.net_connections(kind="tcp")


def find_listener(port: int) -> tuple[int | None, str | None]:
    """The pid of the process listening on TCP ``port`` and None, or None and the reason.

    With several holders of the listening socket (a master and its workers) the one whose
    parent is not among them is taken.
    """
    try:
        table = _tcp_table()
    except (psutil.Error, OSError) as exc:
        return None, f"could not read the TCP socket table: {exc}"
    listeners = [c for c in table if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port]
    if not listeners:
        return None, f"nothing listens on TCP port {port}"
    pids = {c.pid for c in listeners if c.pid}
    if not pids:
        return None, (f"a socket listens on port {port} but its process is not visible to this user "
                      "(run the probe as the server's user or pass server_pid)")
    for pid in sorted(pids):
        try:
            if psutil.Process(pid).ppid() not in pids:
                return pid, None
        except psutil.Error:
            continue
    return min(pids), None


class _Process:
    """A psutil handle on the server process; sums it with its children."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)

    def measure(self) -> tuple[int | None, int | None, int | None]:
        members = [self.process]
        with contextlib.suppress(psutil.Error):
            members += self.process.children(recursive=True)
        rss = fds = threads = 0
        seen_rss = seen_fds = seen_threads = False
        for member in members:
            with contextlib.suppress(psutil.Error):
                rss += member.memory_info().rss
                seen_rss = True
            with contextlib.suppress(psutil.Error):
                fds += member.num_fds()
                seen_fds = True
            with contextlib.suppress(psutil.Error):
                threads += member.num_threads()
                seen_threads = True
        return (rss if seen_rss else None, fds if seen_fds else None, threads if seen_threads else None)


class ServerSampler:
    """Samples socket states on ``port`` and/or the server process while other probes run.

    Use ``await sampler.start()`` before the probes and ``await sampler.stop()`` after them;
    ``stop`` returns ``(SocketStatesResult | None, ProcessResult | None)`` (None for what was
    not asked: no port, or neither port nor pid). ``served`` returns how many connections our
    probes have opened so far; it is recorded with every process sample.
    """

    def __init__(self, port: int | None = None, pid: int | None = None, *,
                 interval_s: float = DEFAULT_INTERVAL_S, max_samples: int = DEFAULT_MAX_SAMPLES,
                 served: Callable[[], int] | None = None) -> None:
        self.port = port or None
        self.pid = pid or None
        self.interval_s = interval_s
        self.max_samples = max_samples
        self.served = served or (lambda: 0)
        self.started = time.monotonic()
        self.socket_samples: list[SocketSample] = []
        self.process_samples: list[ProcessSample] = []
        self.socket_error: str | None = None
        self.process_error: str | None = None
        self.listening: bool | None = None
        self.process: _Process | None = None
        self.process_name: str | None = None
        self.found_by = ""
        self._task: asyncio.Task | None = None
        # A cancelled to_thread call keeps running: samples are taken one at a time.
        self._lock = threading.Lock()

    def _resolve(self) -> None:
        pid = self.pid
        if pid is not None:
            self.found_by = "server_pid"
        elif self.port is not None:
            pid, problem = find_listener(self.port)
            if pid is None:
                self.process_error = problem
                return
            self.found_by = f"listening on port {self.port}"
        if pid is None:
            return
        try:
            self.process = _Process(pid)
            self.pid = pid
            self.process_name = self.process.process.name()
        except psutil.NoSuchProcess:
            self.process_error = f"no process with pid {pid}"
        except psutil.Error as exc:
            self.process_error = f"cannot inspect process {pid}: {type(exc).__name__}"

    def _sample(self) -> None:
        """Take one sample of everything asked for (blocking: run in a worker thread)."""
        with self._lock:
            self._sample_locked()

    def _sample_locked(self) -> None:
        at = time.monotonic() - self.started
        established = 0
        if self.port is not None and self.socket_error is None:
            try:
                table = _tcp_table()
            except (psutil.Error, OSError) as exc:
                self.socket_error = f"could not read the TCP socket table: {exc}"
            else:
                mine = [c for c in table if c.laddr and c.laddr.port == self.port]
                self.listening = bool(self.listening) or any(c.status == psutil.CONN_LISTEN for c in mine)
                counts = Counter(c.status for c in mine if c.status != psutil.CONN_LISTEN)
                established = counts.get(psutil.CONN_ESTABLISHED, 0)
                self.socket_samples.append(SocketSample(t_s=at, counts=dict(counts)))
        if self.process is not None:
            try:
                if not self.process.process.is_running():
                    raise psutil.NoSuchProcess(self.process.process.pid)
                rss, fds, threads = self.process.measure()
            except psutil.Error:
                self.process_error = self.process_error or f"process {self.pid} exited during the probe"
                self.process = None
                return
            if self.port is None:
                with contextlib.suppress(psutil.Error):
                    established = sum(1 for c in self.process.process.net_connections(kind="tcp")
                                      if c.status == psutil.CONN_ESTABLISHED)
            self.process_samples.append(ProcessSample(t_s=at, rss_bytes=rss, fds=fds, threads=threads,
                                                      connections=established, served=self.served()))

    async def start(self) -> ServerSampler:
        """Find the process, take the baseline sample and start sampling in the background."""
        self.started = time.monotonic()
        await asyncio.to_thread(self._resolve)
        await asyncio.to_thread(self._sample)
        self._task = asyncio.create_task(self._loop())
        return self

    async def _loop(self) -> None:
        for _ in range(self.max_samples):
            await asyncio.sleep(self.interval_s)
            await asyncio.to_thread(self._sample)

    async def stop(self, settle_s: float = DEFAULT_SETTLE_S) -> tuple[SocketStatesResult | None, ProcessResult | None]:
        """Stop sampling, wait ``settle_s``, take the final sample and return the results."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if settle_s > 0:
            await asyncio.sleep(settle_s)
        await asyncio.to_thread(self._sample)
        return self._socket_result(), self._process_result()

    def _socket_result(self) -> SocketStatesResult | None:
        if self.port is None:
            return None
        error = self.socket_error
        if error is None and not self.listening:
            error = f"nothing listens on TCP port {self.port}"
        return SocketStatesResult(port=self.port, ok=error is None, error=error,
                                  elapsed_s=time.monotonic() - self.started,
                                  samples=tuple(self.socket_samples), listening=self.listening)

    def _process_result(self) -> ProcessResult | None:
        if self.pid is None and self.port is None:
            return None
        error = self.process_error
        if error is None and len(self.process_samples) < 2:
            error = "fewer than two samples of the process were taken"
        return ProcessResult(pid=self.pid, ok=error is None, error=error,
                             elapsed_s=time.monotonic() - self.started, name=self.process_name,
                             found_by=self.found_by, samples=tuple(self.process_samples))


async def probe_server(port: int | None = None, pid: int | None = None, *, duration_s: float = 10.0,
                       interval_s: float = DEFAULT_INTERVAL_S,
                       ) -> tuple[SocketStatesResult | None, ProcessResult | None]:
    """Sample the server's sockets (``port``) and process (``pid``, else the listener on ``port``)
    for ``duration_s`` with no traffic of our own: the background trend on its own."""
    sampler = ServerSampler(port, pid, interval_s=interval_s,
                            max_samples=max(1, int(duration_s / interval_s)))
    await sampler.start()
    await asyncio.sleep(duration_s)
    return await sampler.stop(settle_s=0)
