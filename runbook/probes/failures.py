"""Network faults as data: one exception in, a FailureKind and a precise lowercase reason out.

Every probe catches what the network and the OS throw at it (refused, reset, DNS, TLS, timeout,
EMFILE) and turns it into ``(kind, reason)`` with :func:`describe_failure`. Reasons name the
host and the phase, never a header value.
"""

from __future__ import annotations

import asyncio
import errno
import re
import socket
import ssl

from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
)

from runbook.observations import FailureKind

_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL, errno.ENETDOWN,
                errno.EHOSTDOWN}
_TOO_MANY_FILES = {errno.EMFILE, errno.ENFILE}


def describe_failure(exc: BaseException, *, where: str, phase: str,
                     timeout_s: float | None = None) -> tuple[FailureKind, str]:
    """Classify ``exc`` raised while talking to ``where`` (host:port) during ``phase``.

    ``phase`` is a short noun such as "DNS lookup", "TCP connect", "TLS handshake" or
    "WebSocket upgrade". Never raises; unknown exceptions become OS_ERROR with their type name.
    """
    # websockets wraps the socket error that ended a handshake: look at the original one.
    if isinstance(exc, InvalidMessage) and isinstance(exc.__cause__, (OSError, EOFError)):
        inner = exc.__cause__
        if isinstance(inner, EOFError):
            return FailureKind.CLOSED, f"{where} closed the connection during the {phase} without an answer"
        return describe_failure(inner, where=where, phase=phase, timeout_s=timeout_s)
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        bound = f" within {timeout_s:g} s" if timeout_s is not None else ""
        return FailureKind.TIMEOUT, f"no answer from {where}{bound} during the {phase}"
    if isinstance(exc, socket.gaierror):
        return FailureKind.DNS, f"DNS lookup of {where} failed: {_lower(exc.strerror or str(exc))}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = getattr(exc, "verify_message", None) or _ssl_text(exc)
        return (FailureKind.TLS, f"TLS certificate of {where} failed verification: {_lower(message)} "
                                 "(fix the certificate, trust its CA via SSL_CERT_FILE, or set "
                                 "insecure_tls to skip verification)")
    if isinstance(exc, ssl.SSLError):
        hint = ""
        if getattr(exc, "reason", None) in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE"):
            hint = " (the server did not answer in TLS: is this a ws:// port?)"
        return FailureKind.TLS, f"TLS handshake with {where} failed: {_lower(_ssl_text(exc))}{hint}"
    if isinstance(exc, ConnectionRefusedError):
        return FailureKind.REFUSED, f"connection to {where} refused: nothing listens on that port"
    if isinstance(exc, ConnectionResetError):
        return FailureKind.RESET, f"{where} reset the connection during the {phase}"
    if isinstance(exc, (ConnectionAbortedError, BrokenPipeError, EOFError, asyncio.IncompleteReadError)):
        return FailureKind.CLOSED, f"{where} closed the connection during the {phase}"
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        return FailureKind.HTTP_STATUS, f"{where} answered the upgrade with HTTP {status}, not 101"
    if isinstance(exc, ConnectionClosed):
        return FailureKind.CLOSED, f"{where} closed the connection during the {phase}"
    if isinstance(exc, (InvalidHandshake, InvalidURI)):
        return FailureKind.PROTOCOL, f"invalid WebSocket handshake from {where}: {_lower(str(exc))}"
    if isinstance(exc, OSError):
        code = exc.errno
        text = _lower(exc.strerror or str(exc))
        if code in _TOO_MANY_FILES:
            name = errno.errorcode.get(code, str(code))
            return (FailureKind.TOO_MANY_FILES, f"too many open files ({name}) in this process during "
                                                f"the {phase}: raise `ulimit -n` or probe with fewer "
                                                "connections")
        if code in _UNREACHABLE:
            return FailureKind.UNREACHABLE, f"{where} is unreachable: {text}"
        if code == errno.ETIMEDOUT:
            return FailureKind.TIMEOUT, f"no answer from {where} during the {phase} ({text})"
        name = errno.errorcode.get(code, "") if code is not None else ""
        return FailureKind.OS_ERROR, f"{phase} with {where} failed: {text}" + (f" ({name})" if name else "")
    return FailureKind.OS_ERROR, f"{phase} with {where} failed: {type(exc).__name__}: {_lower(str(exc))}"


def _ssl_text(exc: BaseException) -> str:
    """OpenSSL's message without the "[SSL: CODE]" prefix and the "(_ssl.c:N)" suffix."""
    text = re.sub(r"^\[[A-Z0-9_: ]+\]\s*", "", str(exc))
    return re.sub(r"\s*\(_ssl\.c:\d+\)$", "", text) or str(exc)


def _lower(text: str) -> str:
    """OpenSSL and libc messages, with the first letter lowercased to fit our sentences."""
    text = " ".join(str(text).split())
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text
