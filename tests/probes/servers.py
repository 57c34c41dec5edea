"""Real servers on loopback for the probe tests, run on an event loop in a background thread.

The probes under test run in the test's own thread (through ``run_sync``, as from the CLI), so
these servers must not share their loop. :class:`ServerThread` hosts any number of them and
stops them all on exit. Certificates come from the openssl binary (no Python dependency):
:func:`make_certificates` writes a CA, a leaf it signed, an expired leaf it signed and a
self-signed leaf.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Opcode
from websockets.http11 import Request, Response

LOOPBACK = "127.0.0.1"


class ServerThread:
    """An asyncio loop in a daemon thread; ``start_*`` methods return the port of a new server."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-servers", daemon=True)
        self.closers: list[Callable[[], Awaitable[Any]]] = []

    def __enter__(self) -> ServerThread:
        self.thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        async def close_all() -> None:
            for closer in reversed(self.closers):
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(5):
                        await closer()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        with contextlib.suppress(Exception):
            self.run(close_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def run(self, coro: Awaitable[Any], timeout: float = 15.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def _keep(self, server: asyncio.AbstractServer | Any) -> int:
        async def closer() -> None:
            server.close()
            await server.wait_closed()

        self.closers.append(closer)
        return server.sockets[0].getsockname()[1]

    # --- WebSocket servers ----------------------------------------------------------------

    def start_websocket(self, *, ping_interval: float | None = None, deaf: bool = False,
                        lifetime_s: float | None = None, require_header: tuple[str, str] | None = None,
                        ssl_context: ssl.SSLContext | None = None, handshake_delay_s: float = 0.0,
                        handshakes: dict[str, int] | None = None) -> int:
        """A python-websockets server holding every connection open.

        ``ping_interval`` turns its keepalive on; ``deaf`` makes it ignore our pings (no pong,
        against RFC 6455 5.5.2) while still answering a close frame; ``lifetime_s`` ends every
        connection at that age with a FIN and no close frame; ``require_header`` answers 401
        to a handshake without that exact header; ``handshake_delay_s`` holds every opening
        handshake that long, counting the most held at once in ``handshakes["peak"]``.
        """

        async def handler(connection: ServerConnection) -> None:
            if lifetime_s is None:
                await connection.wait_closed()
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(lifetime_s):
                    await connection.wait_closed()
            connection.transport.close()  # TCP FIN, no close frame: a hard lifetime

        async def check(connection: ServerConnection, request: Request) -> Response | None:
            if handshake_delay_s:
                counts = handshakes if handshakes is not None else {}
                counts["now"] = counts.get("now", 0) + 1
                counts["peak"] = max(counts.get("peak", 0), counts["now"])
                try:
                    await asyncio.sleep(handshake_delay_s)
                finally:
                    counts["now"] -= 1
            if require_header is None:
                return None
            name, value = require_header
            if request.headers.get(name) == value:
                return None
            return connection.respond(401, "missing credentials\n")

        async def start() -> int:
            server = await serve(handler, LOOPBACK, 0, ping_interval=ping_interval,
                                 ping_timeout=ping_interval, close_timeout=2, compression=None,
                                 process_request=check, ssl=ssl_context,
                                 create_connection=_DeafConnection if deaf else None)
            return self._keep(server)

        return self.run(start())

    # --- plain TCP servers ----------------------------------------------------------------

    def start_tcp(self, respond: Callable[[bytes], bytes | None]) -> int:
        """A TCP server that reads a request head and writes ``respond(head)`` (None: nothing,
        the connection then stays open and silent until the client leaves)."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                answer = respond(head)
                if answer is None:
                    await reader.read()  # until the client gives up
                    return
                writer.write(answer)
                await writer.drain()
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                pass
            finally:
                writer.close()

        async def start() -> int:
            return self._keep(await asyncio.start_server(handle, LOOPBACK, 0))

        return self.run(start())


class _DeafConnection(ServerConnection):
    """A server connection whose protocol drops incoming pings instead of answering them."""

    def __init__(self, protocol: Any, *args: Any, **kwargs: Any) -> None:
        answer = protocol.recv_frame

        def recv_frame(frame: Any) -> None:
            if frame.opcode is Opcode.PING:
                return  # no pong: the misbehaviour under test
            answer(frame)

        protocol.recv_frame = recv_frame
        super().__init__(protocol, *args, **kwargs)


HTML_PAGE = b"<!doctype html><title>shop</title><h1>Welcome</h1>\n"


def html_response(_head: bytes) -> bytes:
    """An ordinary web page: what a URL that is not a WebSocket endpoint answers."""
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
            b"Content-Length: " + str(len(HTML_PAGE)).encode() + b"\r\nConnection: close\r\n\r\n"
            + HTML_PAGE)


def wrong_accept_response(_head: bytes) -> bytes:
    """A 101 whose Sec-WebSocket-Accept does not belong to the request's key."""
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")


# --- certificates ------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    ca: Path  # the test CA, to trust through SSL_CERT_FILE
    valid: tuple[Path, Path]  # (cert, key) signed by the CA for 127.0.0.1 and localhost
    expired: tuple[Path, Path]  # signed by the CA, valid in 2020 only
    self_signed: tuple[Path, Path]  # signed by itself

    def server_context(self, which: tuple[Path, Path]) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*which)
        return context


_SAN = "subjectAltName=IP:127.0.0.1,DNS:localhost"
_CA_CONFIG = """\
[ ca ]
default_ca = test_ca
[ test_ca ]
database = {folder}/index.txt
new_certs_dir = {folder}
serial = {folder}/serial
default_md = sha256
policy = any_name
copy_extensions = copy
unique_subject = no
[ any_name ]
commonName = supplied
[ ca_ext ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ leaf_ext ]
basicConstraints = CA:FALSE
keyUsage = digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
"""


def _openssl(openssl: str, *args: str) -> None:
    subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60)  # noqa: S603


def make_certificates(openssl: str, folder: Path) -> Certificates:
    """A CA, a valid leaf, an expired leaf (2020-01-01 to 2020-01-02) and a self-signed leaf."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "ca.cnf"
    config.write_text(_CA_CONFIG.format(folder=folder))
    (folder / "index.txt").write_text("")
    (folder / "serial").write_text("01\n")
    ca_key, ca_cert = folder / "ca.key", folder / "ca.pem"
    _openssl(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
             "-out", str(ca_cert), "-days", "2", "-subj", "/CN=ws-runbook test CA",
             "-config", str(config), "-extensions", "ca_ext")

    def leaf(name: str, *dates: str) -> tuple[Path, Path]:
        key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.pem"
        _openssl(openssl, "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                 "-out", str(csr), "-subj", "/CN=localhost", "-addext", _SAN)
        _openssl(openssl, "ca", "-batch", "-config", str(config), "-cert", str(ca_cert),
                 "-keyfile", str(ca_key), "-in", str(csr), "-out", str(cert), "-notext",
                 "-extensions", "leaf_ext", *dates)
        return cert, key

    valid = leaf("valid", "-days", "2")
    expired = leaf("expired", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z")
    own_key, own_cert = folder / "self.key", folder / "self.pem"
    _openssl(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(own_key),
             "-out", str(own_cert), "-days", "2", "-subj", "/CN=localhost", "-addext", _SAN)
    return Certificates(ca=ca_cert, valid=valid, expired=expired, self_signed=(own_cert, own_key))
