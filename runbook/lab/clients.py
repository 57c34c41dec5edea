"""A population of WebSocket clients that behave like browser and mobile-app users.

Each simulated user is a :class:`ClientSpec`: a realistic desktop (Chrome, Firefox, Safari,
Edge) or mobile (iPhone, Android) user agent, an address from the RFC 5737 documentation ranges
presented in ``X-Forwarded-For`` (as an edge load balancer in front of nginx would), and an
activity:

- ``idle``: subscribes once after connecting, then sends nothing (a backgrounded tab or app);
- ``chatty``: sends a small JSON message every few seconds, which the servers acknowledge.

Like browsers, the clients never send pings of their own (there is no ping API in browsers),
though they answer the server's pings. Now and then a user leaves normally (1000/1001, as a
closed tab or a backgrounded app would) and comes back a while later. A connection that ends
without the user leaving is a drop: the client reconnects according to its
:class:`ReconnectPolicy`, with exponential backoff and jitter or (for reconnect-loop scenarios)
a fixed delay.

:class:`ClientPopulation` runs the specs concurrently; everything is bounded: each client stops
when the population's stop event is set, gives up after ``max_attempts`` failed connects in a
row, and never runs more than ``max_sessions`` sessions. :class:`BackgroundPopulation` runs one
in a thread of its own, for synchronous callers (the CLI, the recorder, tests, the demo).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import math
import random
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import TracebackType

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

# Seconds a connect may take (the python-websockets default open_timeout).
OPEN_TIMEOUT_S = 10.0
# Seconds to wait for the peer's close frame before dropping TCP (kept short: bounded teardown).
CLOSE_TIMEOUT_S = 2.0
# Seconds stop() waits for clients to say goodbye before cancelling them.
STOP_TIMEOUT_S = 10.0
# Seconds a BackgroundPopulation waits for its thread on top of STOP_TIMEOUT_S.
THREAD_JOIN_MARGIN_S = 5.0

DESKTOP_USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
)
MOBILE_USER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
)

# RFC 5737 documentation networks: realistic-looking client addresses that belong to nobody.
DOCUMENTATION_NETWORKS = ("192.0.2", "198.51.100", "203.0.113")

# Why users leave, as browsers and apps close: (code, reason). RFC 6455 §7.4.1: 1000 normal,
# 1001 going away (page unload sends 1001 with no reason).
DESKTOP_LEAVES = ((1001, ""), (1001, ""), (1000, "user logged out"), (1000, ""))
MOBILE_LEAVES = ((1000, "app backgrounded"), (1001, ""), (1000, "user logged out"))

CHANNELS = ("general", "support", "ops-alerts", "random", "release-2024")
CHAT_LINES = ("on it", "deploy finished", "can you check the dashboard?", "thanks!",
              "looks good to me", "brb", "ticket updated", "lunch?")


class Device(StrEnum):
    DESKTOP = "desktop"
    MOBILE = "mobile"


class Activity(StrEnum):
    IDLE = "idle"
    CHATTY = "chatty"


class Outcome(StrEnum):
    """How one session ended, from the client's side."""

    LEFT = "left"  # the user closed it normally
    DROPPED = "dropped"  # it ended without the user asking
    STOPPED = "stopped"  # the population was stopped


@dataclass(frozen=True)
class ReconnectPolicy:
    """When to reconnect after a drop or a failed connect.

    With ``backoff`` the n-th consecutive attempt waits ``base_delay_s * factor**(n-1)``, capped
    at ``max_delay_s``, minus up to ``jitter`` of it at random (so a crowd dropped at once does
    not come back at once). Without ``backoff`` every attempt waits ``base_delay_s``: the
    reconnect loop the reference runbook warns about. A successful connect resets the count;
    ``max_attempts`` failed connects in a row make the client give up.
    """

    backoff: bool = True
    base_delay_s: float = 1.0
    factor: float = 2.0
    max_delay_s: float = 30.0
    jitter: float = 0.5
    max_attempts: int = 10

    def __post_init__(self) -> None:
        if self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("reconnect delays must satisfy 0 <= base_delay_s <= max_delay_s")
        if not 0 <= self.jitter <= 1 or self.factor < 1 or self.max_attempts < 1:
            raise ValueError("need 0 <= jitter <= 1, factor >= 1 and max_attempts >= 1")

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before the ``attempt``-th consecutive attempt (1-based)."""
        if not self.backoff:
            return self.base_delay_s
        delay = min(self.max_delay_s, self.base_delay_s * self.factor ** max(0, attempt - 1))
        return delay * (1 - self.jitter * rng.random())

    def scaled(self, factor: float) -> ReconnectPolicy:
        return replace(self, base_delay_s=self.base_delay_s * factor,
                       max_delay_s=self.max_delay_s * factor)


# The reference runbook's RobustWebSocketClient: 1 s doubling to 30 s, here with jitter.
BACKOFF_WITH_JITTER = ReconnectPolicy()
# A naive client: reconnect after a fixed short delay, forever (bounded only by max_attempts).
FIXED_DELAY = ReconnectPolicy(backoff=False, base_delay_s=0.25, max_delay_s=0.25, jitter=0.0,
                              max_attempts=1000)


@dataclass(frozen=True)
class PopulationMix:
    """Who the users are and how they behave; every duration in seconds of real time."""

    clients: int = 150
    mobile_share: float = 0.4
    idle_share: float = 0.5
    chatty_gap_s: tuple[float, float] = (2.0, 15.0)  # pause between a chatty user's messages
    # Mean time a user stays before leaving normally (exponential); None: nobody leaves.
    mean_visit_s: float | None = 2.5 * 3600.0
    return_after_s: tuple[float, float] = (5.0, 60.0)  # a user who left comes back after this
    ramp_up_s: float = 10.0  # first connects spread over this window
    reconnect: ReconnectPolicy = BACKOFF_WITH_JITTER
    max_sessions: int = 10_000  # per client, a safety bound on top of the run's duration

    def __post_init__(self) -> None:
        if self.clients < 1:
            raise ValueError("a population needs at least one client")
        if not (0 <= self.mobile_share <= 1 and 0 <= self.idle_share <= 1):
            raise ValueError("mobile_share and idle_share are fractions between 0 and 1")

    def scaled(self, factor: float) -> PopulationMix:
        """The same behaviour with every duration multiplied by ``factor`` (compressed runs)."""
        return replace(
            self,
            chatty_gap_s=(self.chatty_gap_s[0] * factor, self.chatty_gap_s[1] * factor),
            mean_visit_s=None if self.mean_visit_s is None else self.mean_visit_s * factor,
            return_after_s=(self.return_after_s[0] * factor, self.return_after_s[1] * factor),
            ramp_up_s=self.ramp_up_s * factor,
            reconnect=self.reconnect.scaled(factor),
        )


@dataclass(frozen=True)
class ClientSpec:
    """One simulated user: where it connects and how it behaves."""

    client_id: str
    backend: str  # label of the server it reaches (e.g. "python", "node")
    url: str
    device: Device
    activity: Activity
    user_agent: str
    ip: str  # presented in X-Forwarded-For
    seed: int
    route: str = "proxy"  # which path it takes to the server (e.g. "proxy", "firewall -> proxy")

    def as_dict(self) -> dict[str, str]:
        return {"clientId": self.client_id, "backend": self.backend, "url": self.url,
                "route": self.route, "device": str(self.device), "activity": str(self.activity),
                "userAgent": self.user_agent, "ip": self.ip}


@dataclass
class ClientStats:
    """What one client saw: sessions opened, how they ended, connects that failed."""

    connects: int = 0
    leaves: int = 0
    drops: int = 0
    failed_connects: int = 0
    gave_up: bool = False
    drop_codes: Counter[int] = field(default_factory=Counter)


def build_population(targets: Sequence[tuple[str, ...]], mix: PopulationMix,
                     seed: int) -> list[ClientSpec]:
    """``mix.clients`` specs spread round-robin over ``targets``.

    A target is ``(backend label, url)`` or ``(backend label, url, route label)``; targets must
    differ from one another.

    Deterministic for a given seed. Each backend gets the mix's shares of mobile and idle users
    (rounded), drawn independently of each other, so every server sees idle and chatty users on
    both kinds of device.
    """
    if not targets:
        raise ValueError("build_population needs at least one (backend, url) target")
    rng = random.Random(seed)
    addresses = [f"{net}.{host}" for net in DOCUMENTATION_NETWORKS for host in range(1, 255)]
    if mix.clients > len(addresses):
        raise ValueError(f"at most {len(addresses)} clients (one documentation address each)")
    chosen = iter(rng.sample(addresses, mix.clients))
    slots = [(index, targets[index % len(targets)]) for index in range(mix.clients)]
    specs: dict[int, ClientSpec] = {}
    for target in targets:
        mine = [index for index, assigned in slots if assigned == target]
        mobile = set(rng.sample(mine, round(len(mine) * mix.mobile_share)))
        idle = set(rng.sample(mine, round(len(mine) * mix.idle_share)))
        for index in mine:
            device = Device.MOBILE if index in mobile else Device.DESKTOP
            agents = MOBILE_USER_AGENTS if device is Device.MOBILE else DESKTOP_USER_AGENTS
            specs[index] = ClientSpec(
                client_id=f"c{index + 1:03d}",
                backend=target[0],
                url=target[1],
                device=device,
                activity=Activity.IDLE if index in idle else Activity.CHATTY,
                user_agent=rng.choice(agents),
                ip=next(chosen),
                seed=rng.randrange(2**32),
                route=target[2] if len(target) > 2 else "proxy",
            )
    return [specs[index] for index in range(mix.clients)]


async def _wait_for(event: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; True if ``event`` was set meanwhile (sleep cut short)."""
    if event.is_set():
        return True
    if seconds <= 0:
        return False
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


class SimulatedClient:
    """One user's loop of sessions; run() returns when stopped, given up or out of sessions."""

    def __init__(self, spec: ClientSpec, mix: PopulationMix, stop: asyncio.Event) -> None:
        self.spec = spec
        self.mix = mix
        self.stop = stop
        self.rng = random.Random(spec.seed)
        self.stats = ClientStats()
        self._leaving = False  # set once the user starts closing the current session

    async def run(self) -> ClientStats:
        policy = self.mix.reconnect
        if await _wait_for(self.stop, self.rng.uniform(0, self.mix.ramp_up_s)):
            return self.stats
        failures = 0
        for _session in range(self.mix.max_sessions):
            try:
                connection = await connect(
                    self.spec.url,
                    user_agent_header=self.spec.user_agent,
                    additional_headers={"X-Forwarded-For": self.spec.ip},
                    ping_interval=None,  # browsers never ping; they only answer pings
                    open_timeout=OPEN_TIMEOUT_S,
                    close_timeout=CLOSE_TIMEOUT_S,
                )
            except (OSError, InvalidHandshake, TimeoutError):
                failures += 1
                self.stats.failed_connects += 1
                if failures >= policy.max_attempts:
                    self.stats.gave_up = True
                    return self.stats
                if await _wait_for(self.stop, policy.delay_s(failures + 1, self.rng)):
                    return self.stats
                continue
            failures = 0
            self.stats.connects += 1
            outcome = await self._session(connection)
            if outcome is Outcome.STOPPED:
                return self.stats
            if outcome is Outcome.LEFT:
                pause = self.rng.uniform(*self.mix.return_after_s)
            else:
                pause = policy.delay_s(1, self.rng)
            if await _wait_for(self.stop, pause):
                return self.stats
        return self.stats

    async def _session(self, connection: ClientConnection) -> Outcome:
        """Use one connection until the user leaves, it drops or the population stops."""
        self._leaving = False
        reader = asyncio.create_task(self._drain(connection))
        actor = asyncio.create_task(self._act(connection))
        try:
            await asyncio.wait({reader, actor}, return_when=asyncio.FIRST_COMPLETED)
            if self._leaving and not actor.done():
                # The user's close handshake ended the reader first; let the close finish.
                await asyncio.wait({actor}, timeout=CLOSE_TIMEOUT_S + 1)
            if actor.done() and not actor.cancelled() and actor.exception() is None:
                outcome = actor.result()
            else:
                outcome = Outcome.LEFT if self._leaving else Outcome.DROPPED
        finally:
            for task in (reader, actor):
                task.cancel()
            await asyncio.gather(reader, actor, return_exceptions=True)
        if outcome is Outcome.STOPPED:
            # Teardown looks like users closing their tabs.
            with contextlib.suppress(ConnectionClosed, OSError):
                await connection.close(1001)
        elif outcome is Outcome.DROPPED:
            # Normally already closed; close() makes sure, bounded by close_timeout.
            with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S + 1):
                    await connection.close()
            self.stats.drops += 1
            self.stats.drop_codes[connection.close_code or 1006] += 1
        else:
            self.stats.leaves += 1
        return outcome

    async def _drain(self, connection: ClientConnection) -> None:
        """Read (and ignore) what the server sends until the connection closes."""
        with contextlib.suppress(ConnectionClosed):
            async for _message in connection:
                pass

    async def _act(self, connection: ClientConnection) -> Outcome:
        """The user's side: subscribe, chat or idle, leave at the end of the visit."""
        rng = self.rng
        mean_visit = self.mix.mean_visit_s
        stay_s = rng.expovariate(1 / mean_visit) if mean_visit else math.inf
        loop = asyncio.get_running_loop()
        leave_at = loop.time() + stay_s
        try:
            await connection.send(json.dumps({"type": "subscribe", "channel": rng.choice(CHANNELS)}))
            while True:
                remaining = leave_at - loop.time()
                if remaining <= 0:
                    leaves = MOBILE_LEAVES if self.spec.device is Device.MOBILE else DESKTOP_LEAVES
                    code, reason = rng.choice(leaves)
                    self._leaving = True
                    await connection.close(code, reason)
                    return Outcome.LEFT
                if self.spec.activity is Activity.CHATTY:
                    pause = min(remaining, rng.uniform(*self.mix.chatty_gap_s))
                else:
                    pause = remaining
                if await _wait_for(self.stop, min(pause, 1e6)):
                    return Outcome.STOPPED
                if self.spec.activity is Activity.CHATTY and loop.time() < leave_at:
                    await connection.send(self._chat_message())
        except ConnectionClosed:
            return Outcome.DROPPED

    def _chat_message(self) -> str:
        kind = self.rng.choice(("message", "message", "typing", "read"))
        body: dict[str, object] = {"type": kind, "channel": self.rng.choice(CHANNELS)}
        if kind == "message":
            body["text"] = self.rng.choice(CHAT_LINES)
        return json.dumps(body)


class ClientPopulation:
    """Runs a list of :class:`ClientSpec` concurrently; an async context manager.

    Entering starts one task per client; leaving (or :meth:`stop`) sets the stop event, lets the
    clients close their connections (1001, like closed tabs) for up to ``STOP_TIMEOUT_S``, then
    cancels whatever is left. ``stats`` maps client ids to what each client saw.
    """

    def __init__(self, specs: Sequence[ClientSpec], mix: PopulationMix) -> None:
        self.specs = list(specs)
        self.mix = mix
        self._stop = asyncio.Event()
        self._clients = [SimulatedClient(spec, mix, self._stop) for spec in self.specs]
        self._tasks: list[asyncio.Task[ClientStats]] = []

    @property
    def stats(self) -> dict[str, ClientStats]:
        return {client.spec.client_id: client.stats for client in self._clients}

    def start(self) -> None:
        if self._tasks:
            raise RuntimeError("population already started")
        self._tasks = [asyncio.create_task(client.run(), name=client.spec.client_id)
                       for client in self._clients]

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        self._stop.set()
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(self._tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> ClientPopulation:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class BackgroundPopulation:
    """A :class:`ClientPopulation` running in a thread with its own event loop.

    For synchronous callers: ``start()`` returns once every client task exists; ``stats()``
    snapshots what each client saw so far; ``stop()`` (or leaving the ``with`` block) lets the
    clients close like closed tabs, bounded by ``STOP_TIMEOUT_S``, and joins the thread. Works
    from the main thread, from another thread and from code already running an event loop.
    """

    def __init__(self, specs: Sequence[ClientSpec], mix: PopulationMix) -> None:
        self.specs = list(specs)
        self.mix = mix
        self._loop: asyncio.AbstractEventLoop | None = None
        self._population: ClientPopulation | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread: threading.Thread | None = None
        self._final: dict[str, ClientStats] | None = None
        self._error: BaseException | None = None

    def start(self) -> BackgroundPopulation:
        if self._thread is not None:
            raise RuntimeError("population already started")
        self._thread = threading.Thread(target=self._run, name="lab-clients", daemon=True)
        self._thread.start()
        self._started.wait(STOP_TIMEOUT_S)
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # noqa: BLE001 - handed to start() or stop()
            self._error = error
        finally:
            self._started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._population = ClientPopulation(self.specs, self.mix)
        async with self._population:
            self._started.set()
            await self._stop.wait()
        self._final = copy.deepcopy(self._population.stats)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> dict[str, ClientStats]:
        """What each client saw so far (a copy), or at the end once stopped."""
        if self._final is not None:
            return copy.deepcopy(self._final)
        loop, population = self._loop, self._population
        if loop is None or population is None or not self.running:
            return {}

        async def snapshot() -> dict[str, ClientStats]:
            return copy.deepcopy(population.stats)

        return asyncio.run_coroutine_threadsafe(snapshot(), loop).result(STOP_TIMEOUT_S)

    def stop(self) -> dict[str, ClientStats]:
        """Stop every client (bounded) and return what each saw; idempotent."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return {}
        if loop is not None and stop is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stop.set)
        thread.join(STOP_TIMEOUT_S + THREAD_JOIN_MARGIN_S)
        return self.stats()

    def __enter__(self) -> BackgroundPopulation:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
