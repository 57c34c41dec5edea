"""The handshake probe: one raw HTTP/1.1 upgrade request, timed phase by phase.

Raw asyncio streams rather than a WebSocket client, so we see the exact status line, headers
and body a proxy sends back, and time DNS, TCP, TLS and the upgrade separately::

    DNS (loop.getaddrinfo) -> TCP (loop.sock_connect) -> TLS (open_connection ssl=)
        -> upgrade (request written .. response head read)

A valid 101 (RFC 6455 4.1: status 101, ``Upgrade: websocket``, ``Connection: Upgrade``, the
right ``Sec-WebSocket-Accept``) is followed by a masked close frame so the server logs a clean
1000 rather than an abnormal closure. Any other answer keeps its status, headers and the start
of its body. Every fault becomes a HandshakeResult with ``ok=False``: nothing here raises except
ParameterError for a malformed URL or header variable.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import socket
import struct
import time
from contextlib import suppress

from runbook.observations import FailureKind, HandshakeResult
from runbook.probes.failures import describe_failure
from runbook.probes.target import USER_AGENT, Target, prepare_target

DEFAULT_TIMEOUT_S = 10.0
# RFC 6455 1.3: the GUID the server appends to the key before hashing it into the accept value.
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEAD_BYTES = 64 * 1024  # a response head longer than this is not a real server's
MAX_BODY_BYTES = 2048  # body kept from a non-101 answer
BODY_WAIT_S = 1.0  # how long we wait for that body after the head
CLOSE_WAIT_S = 1.0  # how long we wait for the server's close frame after ours
MAX_ADDRESSES = 4  # addresses tried from the DNS answer, in order
_STATUS_LINE = re.compile(r"^HTTP/(\d)\.(\d) (\d{3})(?: (.*))?$")
# Response headers whose values are credentials issued to us: kept by name only.
_SECRET_RESPONSE_HEADERS = {"set-cookie", "set-cookie2"}

_HINTS = {
    400: "often a backend that received the request without its Upgrade header",
    401: "the endpoint wants credentials: see header_env",
    403: "refused: an Origin or authentication check",
    404: "no WebSocket endpoint at this path",
    405: "the endpoint does not accept GET",
    426: "Upgrade Required: the Upgrade/Connection headers did not reach the server",
    429: "rate limited",
    500: "the server failed while handling the upgrade",
    502: "a gateway got no valid answer from the backend",
    503: "no backend available, or the server is shedding load",
    504: "a gateway timed out waiting for the backend",
    505: "the backend refuses HTTP/1.0: a proxy speaking HTTP/1.0 upstream (nginx's default)",
}


def accept_value(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server must answer to ``key`` (RFC 6455 4.2.2 item 5.4)."""
    return base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()  # noqa: S324


def new_key() -> str:
    """A ``Sec-WebSocket-Key``: 16 random bytes, base64-encoded (RFC 6455 4.1 item 7)."""
    return base64.b64encode(os.urandom(16)).decode()


def upgrade_request(target: Target, key: str) -> bytes:
    """The opening handshake request (RFC 6455 4.1), our extra headers included."""
    lines = [
        f"GET {target.resource} HTTP/1.1",
        f"Host: {target.host_header}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"User-Agent: {USER_AGENT}",
    ]
    if target.origin:
        lines.append(f"Origin: {target.origin}")
    lines.extend(f"{name}: {value}" for name, value in target.extra_headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def request_header_names(target: Target) -> tuple[str, ...]:
    base = ("Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "User-Agent")
    return base + (("Origin",) if target.origin else ()) + target.header_names


def close_frame(code: int = 1000, reason: bytes = b"") -> bytes:
    """A masked close frame (RFC 6455 5.5.1; clients mask every frame, 5.3)."""
    payload = struct.pack("!H", code) + reason
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    # FIN + opcode 0x8; MASK bit + 7-bit length (a control frame payload is at most 125, 5.5).
    return bytes([0x88, 0x80 | len(payload)]) + mask + masked


class _Head:
    """A parsed HTTP response head."""

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]]) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers

    def get(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)

    def tokens(self, name: str) -> set[str]:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return {t.strip().lower() for v in values for t in v.split(",") if t.strip()}


class _NotHttp(Exception):
    """The peer answered, but not with an HTTP/1.x response head."""


def parse_head(raw: bytes) -> _Head:
    """Parse a response head (status line and header fields, RFC 7230 3); _NotHttp if it is not one."""
    text = raw.decode("latin-1")
    lines = text.split("\r\n")
    match = _STATUS_LINE.match(lines[0])
    if not match:
        raise _NotHttp(lines[0][:80])
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if sep and name.strip():
            headers.append((name.strip(), value.strip()))
    return _Head(int(match.group(3)), (match.group(4) or "").strip(), headers)


async def _read_head(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """Read up to the blank line that ends a response head; return (head, bytes after it).

    Raises _NotHttp as soon as the first bytes cannot start ``HTTP/``, EOFError (with the
    bytes received so far in its args) when the peer closes first.
    """
    buffer = b""
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            return buffer[:end], buffer[end + 4:]
        if len(buffer) >= 5 and not buffer.startswith(b"HTTP/"):
            raise _NotHttp(buffer[:80].decode("latin-1"))
        if len(buffer) > MAX_HEAD_BYTES:
            raise _NotHttp(f"a response head longer than {MAX_HEAD_BYTES} bytes")
        chunk = await reader.read(4096)
        if not chunk:
            raise EOFError(len(buffer))
        buffer += chunk


async def _read_body(reader: asyncio.StreamReader, head: _Head, already: bytes) -> bytes:
    """The start of a non-101 answer's body: what arrives within BODY_WAIT_S, at most MAX_BODY_BYTES."""
    try:
        length = int(head.get("Content-Length") or -1)
    except ValueError:
        length = -1
    want = MAX_BODY_BYTES if length < 0 else min(length, MAX_BODY_BYTES)
    body = already[:want]
    with suppress(TimeoutError, OSError, EOFError):
        async with asyncio.timeout(BODY_WAIT_S):
            while len(body) < want:
                chunk = await reader.read(want - len(body))
                if not chunk:
                    break
                body += chunk
    return body


async def _connect_first(infos: list, loop: asyncio.AbstractEventLoop) -> tuple[socket.socket, str]:
    """TCP-connect to the first address that accepts; raise the first address's error if none does."""
    first_error: OSError | None = None
    for family, type_, proto, _name, sockaddr in infos[:MAX_ADDRESSES]:
        sock = socket.socket(family, type_, proto)  # EMFILE surfaces here
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, sockaddr)
        except OSError as exc:
            sock.close()
            first_error = first_error or exc
            continue
        except BaseException:
            sock.close()
            raise
        host, port = sockaddr[0], sockaddr[1]
        return sock, (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    raise first_error or OSError("the DNS answer held no address")


def _status_error(where: str, head: _Head) -> str:
    text = f"{where} answered HTTP {head.status}"
    if head.reason:
        text += f" {_printable(head.reason)}"
    text += ", not 101 Switching Protocols"
    hint = _HINTS.get(head.status)
    if head.status == 200:
        hint = "an ordinary HTTP resource: not a WebSocket endpoint, or the proxy serves a page here"
    elif 300 <= head.status < 400:
        location = head.get("Location")
        hint = f"a redirect{f' to {_printable(location)}' if location else ''}; WebSocket clients do not follow it"
    return f"{text} ({hint})" if hint else text


def _printable(text: str, limit: int = 200) -> str:
    """Server-provided text with control characters replaced, cut to ``limit`` characters."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in text)
    return cleaned[:limit] + ("…" if len(cleaned) > limit else "")


def _check_101(head: _Head, key: str) -> tuple[bool, bool, bool, list[str]]:
    """RFC 6455 4.1: the client's checks of a 101 answer; (accept, upgrade, connection, problems)."""
    problems = []
    upgrade_ok = (head.get("Upgrade") or "").strip().lower() == "websocket"
    if not upgrade_ok:
        problems.append("the Upgrade header is not 'websocket'")
    connection_ok = "upgrade" in head.tokens("Connection")
    if not connection_ok:
        problems.append("the Connection header lacks the 'Upgrade' token")
    accept = head.get("Sec-WebSocket-Accept")
    accept_ok = accept is not None and accept.strip() == accept_value(key)
    if not accept_ok:
        problems.append("Sec-WebSocket-Accept is missing" if accept is None
                        else "Sec-WebSocket-Accept does not match our key (RFC 6455 4.2.2)")
    return accept_ok, upgrade_ok, connection_ok, problems


async def handshake_target(target: Target, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> HandshakeResult:
    """Run the handshake probe on a prepared target; never raises on network faults."""
    loop = asyncio.get_running_loop()
    where = f"{target.host}:{target.port}" if ":" not in target.host else f"[{target.host}]:{target.port}"
    found: dict = {"request_header_names": request_header_names(target)}
    started = time.monotonic()
    phase = "DNS lookup"
    sock: socket.socket | None = None
    writer: asyncio.StreamWriter | None = None
    key = new_key()

    def done(ok: bool, error: str | None = None, kind: FailureKind | None = None) -> HandshakeResult:
        return HandshakeResult(url=target.display_url, ok=ok, error=error, error_kind=kind,
                               elapsed_s=time.monotonic() - started, **found)

    try:
        async with asyncio.timeout(timeout_s):
            mark = time.monotonic()
            try:
                infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM,
                                               proto=socket.IPPROTO_TCP)
            except UnicodeError as exc:  # a label the IDNA codec refuses: no lookup possible
                raise socket.gaierror(socket.EAI_NONAME, f"invalid host name ({exc.reason})") from None
            found["dns_s"] = time.monotonic() - mark

            phase, mark = "TCP connect", time.monotonic()
            sock, found["address"] = await _connect_first(infos, loop)
            found["tcp_s"] = time.monotonic() - mark

            context = target.ssl_context()
            phase, mark = ("TLS handshake" if context else "WebSocket upgrade"), time.monotonic()
            reader, writer = await asyncio.open_connection(
                sock=sock, ssl=context, server_hostname=target.host if context else None,
                limit=MAX_HEAD_BYTES)
            sock = None  # the transport owns it now
            if context:
                found["tls_s"] = time.monotonic() - mark
                ssl_object = writer.get_extra_info("ssl_object")
                found["tls_version"] = ssl_object.version() if ssl_object else None

            phase, mark = "WebSocket upgrade", time.monotonic()
            writer.write(upgrade_request(target, key))
            await writer.drain()
            raw_head, rest = await _read_head(reader)
            found["upgrade_s"] = time.monotonic() - mark
            head = parse_head(raw_head)
            found["status"], found["reason"] = head.status, _printable(head.reason)
            found["headers"] = tuple(
                (name, "[REDACTED]" if name.lower() in _SECRET_RESPONSE_HEADERS else value)
                for name, value in head.headers)

            if head.status != 101:
                phase = "response body"
                body = await _read_body(reader, head, rest)
                found["body_excerpt"] = body.decode("utf-8", errors="replace")
                return done(False, _status_error(where, head), FailureKind.HTTP_STATUS)

            accept_ok, upgrade_ok, connection_ok, problems = _check_101(head, key)
            found.update(accept_ok=accept_ok, upgrade_header_ok=upgrade_ok,
                         connection_header_ok=connection_ok)
            # 7.1.2: start the closing handshake so the server logs a clean close.
            with suppress(OSError, TimeoutError, EOFError):
                writer.write(close_frame(1000))
                await writer.drain()
                async with asyncio.timeout(CLOSE_WAIT_S):
                    while await reader.read(1024):
                        pass
            if problems:
                return done(False, f"{where} answered 101 but " + "; ".join(problems),
                            FailureKind.PROTOCOL)
            return done(True)
    except _NotHttp as exc:
        return done(False, f"{where} did not answer with HTTP: {_printable(str(exc), 80)!r}",
                    FailureKind.PROTOCOL)
    except EOFError as exc:
        received = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        after = f" after {received} bytes of an incomplete response" if received else " without an answer"
        return done(False, f"{where} closed the connection during the {phase}{after}", FailureKind.CLOSED)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        kind, reason = describe_failure(exc, where=where if phase != "DNS lookup" else target.host,
                                        phase=phase, timeout_s=timeout_s)
        if phase == "TLS handshake" and kind in (FailureKind.RESET, FailureKind.CLOSED):
            reason += " (the server may not speak TLS on this port: a ws:// port?)"
        return done(False, reason, kind)
    finally:
        if sock is not None:
            sock.close()
        if writer is not None:
            writer.close()
            with suppress(Exception):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()


async def probe_handshake(url: str, *, header_env: tuple[str, ...] | list[str] = (),
                          origin: str | None = None, insecure_tls: bool = False,
                          timeout_s: float = DEFAULT_TIMEOUT_S, parameter: str = "target_url") -> HandshakeResult:
    """Send one WebSocket upgrade to ``url`` and report what came back, phase by phase.

    Bounded by ``timeout_s`` in total (plus at most a second to read a body or the closing
    handshake). ``header_env`` names environment variables holding ``Name: value`` headers;
    ``origin`` defaults to the URL's own origin. Raises ParameterError (naming ``parameter``)
    for a malformed URL or header variable; network faults come back as ``ok=False`` results.
    """
    target = prepare_target(url, header_env=header_env, origin=origin, insecure_tls=insecure_tls,
                            parameter=parameter)
    return await handshake_target(target, timeout_s=timeout_s)


async def probe_handshakes(target_url: str, direct_url: str | None = None, *,
                           header_env: tuple[str, ...] | list[str] = (), origin: str | None = None,
                           insecure_tls: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S,
                           ) -> tuple[HandshakeResult, HandshakeResult | None]:
    """Probe ``target_url`` and, when given, ``direct_url`` side by side (concurrently).

    101 direct but 400/426/502 through the target is the signature of a proxy that does not
    pass the upgrade on. The Origin defaults to the target's for both, as the same browser page
    would send it.
    """
    target = prepare_target(target_url, header_env=header_env, origin=origin,
                            insecure_tls=insecure_tls, parameter="target_url")
    if not direct_url:
        return await handshake_target(target, timeout_s=timeout_s), None
    direct = prepare_target(direct_url, header_env=header_env, origin=target.origin,
                            insecure_tls=insecure_tls, parameter="direct_url")
    via, straight = await asyncio.gather(handshake_target(target, timeout_s=timeout_s),
                                         handshake_target(direct, timeout_s=timeout_s))
    return via, straight
