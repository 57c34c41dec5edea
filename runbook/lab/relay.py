"""A TCP relay on loopback that stands for a network device between a client and a server.

One :class:`Relay` listens on 127.0.0.1 and forwards every accepted connection (a *flow*) to one
upstream address. What it does with a flow that carries no bytes in either direction for
``idle_timeout_s`` seconds is its ``mode``:

- ``forward``: nothing; it is a plain TCP forwarder (``idle_timeout_s`` must be None).
- ``close``: it closes both TCP connections (FIN to each side), the way a proxy or a load
  balancer ends an idle session: nginx after ``proxy_read_timeout``, an ALB after its idle
  timeout. The WebSocket peers see the TCP connection end with no close frame (1006).
- ``blackhole``: it silently stops forwarding the flow and keeps both TCP connections open: no
  FIN, no RST, and every later byte from either side is read and dropped, as a NAT or stateful
  firewall does once it has forgotten an idle flow. A FIN from one side is not passed on either:
  the relay closes only that side, so the other one never learns (a dead peer). Pings then go
  unanswered and each end keeps a socket it believes is open.

In every mode, a side that ends an *active* flow (EOF) ends it for both, like nginx does for an
upgraded connection. With ``strip_upgrade`` the relay rewrites each flow's first request the way
nginx forwards it when a location lacks ``proxy_http_version 1.1`` and the Upgrade/Connection
headers (the nginx defaults): HTTP/1.0, hop-by-hop headers dropped, ``Connection: close``; the
backend then refuses the WebSocket handshake (426), which is the ``proxy_missing_upgrade`` fault.

The relay runs its own event loop in a thread, so it works the same from a script, a CLI, a test
or code already inside an event loop; it is a context manager::

    with Relay(upstream_port=8765, mode="blackhole", idle_timeout_s=2.0) as relay:
        connect(f"{relay.url}/ws/chat")   # relay.url == "ws://127.0.0.1:<relay.port>"
        relay.flows()                     # what happened to each flow

It binds 127.0.0.1 only, holds no state on disk and leaves no thread or socket behind once
stopped (``stop()`` is idempotent and bounded).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType

from runbook.errors import ParameterError
from runbook.lab.processes import LOOPBACK, LabError, register_listen_port

# Seconds start() waits for the listening socket; stop() waits for the thread.
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
CHUNK = 65536
# Largest request head the strip_upgrade rewrite reads before giving up on a flow (nginx's
# large_client_header_buffers default is 4 x 8k).
MAX_REQUEST_HEAD = 32 * 1024
# Headers nginx does not forward upstream by default (hop-by-hop, RFC 9110 §7.6.1), and
# with them the WebSocket upgrade request.
HOP_BY_HOP = frozenset({"connection", "upgrade", "keep-alive", "proxy-connection", "te",
                        "trailer", "transfer-encoding"})


class RelayMode(StrEnum):
    FORWARD = "forward"
    CLOSE = "close"
    BLACKHOLE = "blackhole"


class FlowState(StrEnum):
    ACTIVE = "active"  # bytes are forwarded
    BLACKHOLED = "blackholed"  # bytes are dropped, both sockets kept open
    CLOSED = "closed"  # both sides closed (by a peer, by the idle timeout or by stop())


@dataclass
class Flow:
    """One relayed TCP connection, as the relay sees it."""

    flow_id: int
    client_port: int  # the client's source port on 127.0.0.1
    opened_at: float  # time.monotonic()
    last_activity: float
    state: FlowState = FlowState.ACTIVE
    bytes_up: int = 0  # client -> server, forwarded
    bytes_down: int = 0  # server -> client, forwarded
    bytes_dropped: int = 0  # read while blackholed
    ended_by: str = ""  # "client", "server", "idle timeout", "upstream refused", "relay stopped"
    state_changed_at: float | None = None

    def snapshot(self) -> Flow:
        return Flow(**vars(self))


class Relay:
    """A TCP relay 127.0.0.1:``port`` -> ``upstream_host``:``upstream_port`` (see module docstring).

    ``listen_port`` 0 lets the OS pick a free port (read ``.port`` after ``start()``).
    Raises ParameterError for an unknown mode or a timeout that does not fit it.
    """

    def __init__(self, upstream_port: int, *, upstream_host: str = LOOPBACK,
                 mode: RelayMode | str = RelayMode.FORWARD, idle_timeout_s: float | None = None,
                 strip_upgrade: bool = False, listen_port: int = 0, name: str = "relay") -> None:
        try:
            self.mode = RelayMode(mode)
        except ValueError:
            raise ParameterError("mode", f"choose forward, close or blackhole, got {mode!r}") from None
        if self.mode is RelayMode.FORWARD and idle_timeout_s is not None:
            raise ParameterError("idle_timeout_s", "a forward relay has no idle timeout: use None")
        if self.mode is not RelayMode.FORWARD and (idle_timeout_s is None or idle_timeout_s <= 0):
            raise ParameterError("idle_timeout_s", f"a {self.mode} relay needs a positive idle "
                                                   f"timeout, got {idle_timeout_s}")
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.idle_timeout_s = idle_timeout_s
        self.strip_upgrade = strip_upgrade
        self.name = name
        self._listen_port = listen_port
        self._port: int | None = None
        self._flows: dict[int, Flow] = {}
        self._writers: dict[int, list[asyncio.StreamWriter]] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._next_id = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._half_closed: dict[int, set[str]] = {}
        self._done: dict[int, asyncio.Event] = {}

    # --- public surface -------------------------------------------------------------------

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        if self._port is None:
            raise LabError(f"{self.name} is not running")
        return self._port

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:<port>``: append the WebSocket path."""
        return f"ws://{LOOPBACK}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def describe(self) -> str:
        """One line for outputs: what this relay does to idle flows."""
        what = {RelayMode.FORWARD: "forwards",
                RelayMode.CLOSE: f"closes flows idle for {self.idle_timeout_s:g} s",
                RelayMode.BLACKHOLE: f"silently drops flows idle for {self.idle_timeout_s:g} s "
                                     "(no FIN, no RST)"}[self.mode]
        strip = "; forwards requests as HTTP/1.0 without Upgrade/Connection" if self.strip_upgrade else ""
        return f"{self.name} {LOOPBACK}:{self._port} -> {self.upstream_host}:{self.upstream_port}: {what}{strip}"

    def flows(self) -> list[Flow]:
        """A snapshot of every flow so far, oldest first."""
        with self._lock:
            return [flow.snapshot() for flow in self._flows.values()]

    def start(self) -> Relay:
        """Bind and start forwarding; returns once listening. LabError if it cannot bind."""
        if self._thread is not None:
            raise LabError(f"{self.name} already started")
        self._thread = threading.Thread(target=self._run_thread, name=f"lab-{self.name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise LabError(f"{self.name} did not start within {START_TIMEOUT_S:g} s")
        if self._error is not None:
            self._thread.join(STOP_TIMEOUT_S)
            raise LabError(f"{self.name} could not listen on {LOOPBACK}:{self._listen_port}: "
                           f"{self._error}") from self._error
        return self

    def stop(self) -> None:
        """Close the listener and every flow (FIN to both sides), end the thread; idempotent."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(stop.set)
        thread.join(STOP_TIMEOUT_S)

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # --- the event loop thread --------------------------------------------------------------

    def _run_thread(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # noqa: BLE001 - reported to start() or dropped at exit
            self._error = self._error or error
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            server = await asyncio.start_server(self._handle, LOOPBACK, self._listen_port)
        except OSError as error:
            self._error = error
            return
        self._port = server.sockets[0].getsockname()[1]
        register_listen_port(self._port)
        tasks = self._tasks
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            # End each flow through its own handler (cancelling a handler task from outside
            # makes asyncio's stream callback log a spurious CancelledError).
            for done in list(self._done.values()):
                done.set()
            if tasks:
                await asyncio.wait(list(tasks), timeout=STOP_TIMEOUT_S / 2)
            for task in list(tasks):
                task.cancel()
            for writers in list(self._writers.values()):
                for writer in writers:
                    writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await server.wait_closed()
            with self._lock:
                for flow in self._flows.values():
                    if flow.state is not FlowState.CLOSED:
                        self._set_state(flow, FlowState.CLOSED, "relay stopped")

    def _set_state(self, flow: Flow, state: FlowState, ended_by: str = "") -> None:
        flow.state = state
        flow.state_changed_at = time.monotonic()
        if ended_by and not flow.ended_by:
            flow.ended_by = ended_by

    async def _handle(self, client_reader: asyncio.StreamReader,
                      client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._relay(client_reader, client_writer)
        except asyncio.CancelledError:
            pass  # stop() gave up waiting for this flow; its sockets are closed below
        finally:
            self._tasks.discard(task)

    async def _relay(self, client_reader: asyncio.StreamReader,
                     client_writer: asyncio.StreamWriter) -> None:
        now = time.monotonic()
        peer = client_writer.get_extra_info("peername") or ("", 0)
        with self._lock:
            self._next_id += 1
            flow = Flow(self._next_id, int(peer[1]), now, now)
            self._flows[flow.flow_id] = flow
        self._writers[flow.flow_id] = [client_writer]
        done = self._done[flow.flow_id] = asyncio.Event()
        if self._stop is not None and self._stop.is_set():
            done.set()
        try:
            first = b""
            if self.strip_upgrade:
                first = await self._read_request_head(client_reader)
            try:
                server_reader, server_writer = await asyncio.open_connection(
                    self.upstream_host, self.upstream_port)
            except OSError:
                with self._lock:
                    self._set_state(flow, FlowState.CLOSED, "upstream refused")
                return
            self._writers[flow.flow_id].append(server_writer)
            if first:
                server_writer.write(strip_upgrade_request(first))
                flow.bytes_up += len(first)
            pumps = [
                asyncio.create_task(self._pump(flow, client_reader, server_writer, client_writer,
                                               "client", done)),
                asyncio.create_task(self._pump(flow, server_reader, client_writer, server_writer,
                                               "server", done)),
            ]
            watchdog = (asyncio.create_task(self._watch_idle(flow, done))
                        if self.idle_timeout_s is not None else None)
            try:
                await done.wait()
            finally:
                for task in [*pumps, *([watchdog] if watchdog else [])]:
                    task.cancel()
                await asyncio.gather(*pumps, *([watchdog] if watchdog else []),
                                     return_exceptions=True)
        finally:
            self._done.pop(flow.flow_id, None)
            self._half_closed.pop(flow.flow_id, None)
            for writer in self._writers.pop(flow.flow_id, []):
                writer.close()
            with self._lock:
                if flow.state is not FlowState.CLOSED:
                    self._set_state(flow, FlowState.CLOSED, "relay stopped")

    async def _read_request_head(self, reader: asyncio.StreamReader) -> bytes:
        """The client's first bytes up to the end of the request head (bounded)."""
        data = b""
        while b"\r\n\r\n" not in data and len(data) < MAX_REQUEST_HEAD:
            chunk = await reader.read(CHUNK)
            if not chunk:
                break
            data += chunk
        return data

    async def _pump(self, flow: Flow, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    own_writer: asyncio.StreamWriter, side: str, done: asyncio.Event) -> None:
        """Move bytes from one side to the other until EOF; drop them once blackholed."""
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                flow.last_activity = time.monotonic()
                if flow.state is FlowState.BLACKHOLED:
                    flow.bytes_dropped += len(data)
                    continue
                writer.write(data)
                if side == "client":
                    flow.bytes_up += len(data)
                else:
                    flow.bytes_down += len(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        if flow.state is FlowState.BLACKHOLED:
            # The FIN stops here: close only the side that sent it; the other keeps its socket.
            own_writer.close()
            flow_closed = self._half_closed.setdefault(flow.flow_id, set())
            flow_closed.add(side)
            if len(flow_closed) == 2:
                with self._lock:
                    self._set_state(flow, FlowState.CLOSED, "both sides gone")
                done.set()
            return
        with self._lock:
            if flow.state is FlowState.ACTIVE:
                self._set_state(flow, FlowState.CLOSED, side)
        done.set()

    async def _watch_idle(self, flow: Flow, done: asyncio.Event) -> None:
        """Act on the flow once it has carried no byte for idle_timeout_s."""
        assert self.idle_timeout_s is not None
        while True:
            idle_for = time.monotonic() - flow.last_activity
            if idle_for < self.idle_timeout_s:
                await asyncio.sleep(self.idle_timeout_s - idle_for)
                continue
            with self._lock:
                if self.mode is RelayMode.CLOSE:
                    self._set_state(flow, FlowState.CLOSED, "idle timeout")
                else:
                    self._set_state(flow, FlowState.BLACKHOLED)
            if self.mode is RelayMode.CLOSE:
                done.set()
            return


def strip_upgrade_request(head: bytes) -> bytes:
    """The request as nginx forwards it by default: HTTP/1.0, hop-by-hop headers dropped.

    nginx's ``proxy_http_version`` defaults to 1.0 and, unless told with ``proxy_set_header``,
    it does not pass the hop-by-hop Upgrade and Connection headers; it adds
    ``Connection: close``. Bytes after the head (none, for a handshake) are kept.
    """
    end = head.find(b"\r\n\r\n")
    if end < 0:
        return head
    lines = head[:end].split(b"\r\n")
    rest = head[end + 4:]
    request_line = lines[0]
    method, _, remainder = request_line.partition(b" ")
    target, _, _version = remainder.rpartition(b" ")
    kept = [line for line in lines[1:]
            if line.split(b":", 1)[0].strip().lower().decode("latin-1") not in HOP_BY_HOP]
    return b"\r\n".join([method + b" " + target + b" HTTP/1.0", *kept, b"Connection: close"]) \
        + b"\r\n\r\n" + rest
