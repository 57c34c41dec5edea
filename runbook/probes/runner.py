"""Run a probe coroutine to completion from synchronous code, with or without a running loop.

From a plain script or the CLI there is no event loop: :func:`run_sync` uses ``asyncio.run``
(which also turns Ctrl-C into a cancellation of the probe). Inside Jupyter a loop is already
running in this thread and ``asyncio.run`` refuses to start: the coroutine then runs in a worker
thread with its own loop, and a kernel interrupt (KeyboardInterrupt while we wait) cancels it
there, waits for its clean-up, and re-raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# How long an interrupted probe gets to close its sockets before we stop waiting for it.
CANCEL_GRACE_S = 10.0


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` and return its result (or raise its exception), whatever the caller's context."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    return _run_in_thread(coro)


def _run_in_thread(coro: Coroutine[Any, Any, T]) -> T:
    box: dict[str, Any] = {}
    ready = threading.Event()

    async def main() -> T:
        box["loop"] = asyncio.get_running_loop()
        box["task"] = asyncio.current_task()
        ready.set()
        return await coro

    def worker() -> None:
        try:
            box["result"] = asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            box["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=worker, name="ws-runbook-probe", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.1)
    except KeyboardInterrupt:
        ready.wait(CANCEL_GRACE_S)
        loop, task = box.get("loop"), box.get("task")
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop may have just finished
                loop.call_soon_threadsafe(task.cancel)
        thread.join(CANCEL_GRACE_S)
        raise
    if "error" in box:
        raise box["error"]
    return box["result"]
