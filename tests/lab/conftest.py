"""Lab test helpers: the real binaries a scenario needs, and the no-leftovers guard."""

from __future__ import annotations

import threading

import pytest

from runbook.lab.haproxy import find_haproxy
from runbook.lab.nginx import find_nginx
from runbook.lab.processes import MissingBinaryError, leftovers, node_cache_dir
from tests.conftest import require_real


def need_nginx() -> str:
    """The nginx binary (also found in /usr/sbin off PATH), else skip, or fail in CI."""
    try:
        return find_nginx()
    except MissingBinaryError:
        return require_real("nginx")


def need_haproxy() -> str:
    """The haproxy binary (also found in /usr/sbin off PATH), else skip, or fail in CI."""
    try:
        return find_haproxy()
    except MissingBinaryError:
        return require_real("haproxy")


def need_node() -> None:
    """node, and npm too unless the ws package is already in the lab's cache."""
    require_real("node")
    if not (node_cache_dir() / "node_modules" / "ws" / "package.json").is_file():
        require_real("npm")


def need_full_lab() -> None:
    """Everything a scenario runs with by default: nginx, node and the ws package."""
    need_nginx()
    need_node()


def lab_threads() -> list[str]:
    """Threads the lab started (relays, client populations) that are still alive."""
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("lab-") and t.is_alive())


@pytest.fixture(scope="session", autouse=True)
def no_lab_leftovers():
    """After the whole session: no lab process alive, no lab port listening, no lab thread."""
    yield
    processes, ports = leftovers()
    assert processes == [], f"lab processes still running: {processes}"
    assert ports == [], f"lab ports still listening: {ports}"
    assert lab_threads() == [], f"lab threads still alive: {lab_threads()}"
