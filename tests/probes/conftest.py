"""Fixtures of the probe tests: servers on a background loop, certificates, free ports."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.conftest import require_real
from tests.probes.servers import Certificates, ServerThread, make_certificates


@pytest.fixture(scope="module")
def servers() -> Iterator[ServerThread]:
    with ServerThread() as thread:
        yield thread


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    openssl = require_real("openssl")
    return make_certificates(openssl, tmp_path_factory.mktemp("certs"))


@pytest.fixture
def closed_port() -> int:
    """A port that nothing listens on: bound by us a moment ago, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
