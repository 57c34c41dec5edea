"""What a probe connects to: the parsed URL, the headers to send, the TLS context.

:func:`prepare_target` checks the URL and reads the ``header_env`` variables once; it raises
ParameterError for a malformed URL, an unset variable or a value that is not ``Name: value``
(bad parameters), and nothing else. A :class:`Target` never shows a header value: its repr, its
``display_url`` and every result built from it carry header *names* only.
"""

from __future__ import annotations

import base64
import os
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from runbook.credentials import is_credential_key
from runbook.errors import ParameterError
from runbook.params import check_ws_url

USER_AGENT = "ws-runbook-probe/0.1"
DEFAULT_PORTS = {"ws": 80, "wss": 443}

# RFC 7230 3.2.6 token: what a header name may consist of.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Headers the handshake itself owns (RFC 6455 4.1); a header_env must not override them.
_RESERVED = {"host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
             "sec-websocket-extensions", "content-length", "transfer-encoding"}


def display_url(url: str) -> str:
    """``url`` without userinfo and with secret-looking query values replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        # Tokens in the query string are common for WebSocket auth: browsers cannot set headers
        # on the upgrade. The URLs we keep mask them (runbook.credentials, as the report does).
        query = urlencode([(k, "***" if is_credential_key(k) else v) for k, v in pairs],
                          safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


@dataclass(frozen=True)
class Target:
    """A checked ws:// or wss:// URL plus what every probe sends to it."""

    url: str  # the URL as given (may hold userinfo or tokens: never stored in results)
    secure: bool
    host: str  # without brackets for IPv6
    port: int
    resource: str  # path and query, at least "/"
    origin: str | None
    insecure_tls: bool
    # (name, value) pairs from header_env; values are secrets, kept out of repr.
    extra_headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def display_url(self) -> str:
        return display_url(self.url)

    @property
    def connect_url(self) -> str:
        """The URL to open, userinfo removed (it travels as an Authorization header instead)."""
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, parts.query, ""))

    @property
    def host_header(self) -> str:
        """The Host header (RFC 7230 5.4): the port only when it is not the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == DEFAULT_PORTS["wss" if self.secure else "ws"]:
            return host
        return f"{host}:{self.port}"

    @property
    def header_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.extra_headers)

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client TLS context for wss:// (verifying unless insecure_tls), None for ws://.

        Verification uses the system's trust store; ``SSL_CERT_FILE`` points it elsewhere.
        """
        if not self.secure:
            return None
        context = ssl.create_default_context()
        if self.insecure_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def read_header_env(names: Sequence[str], *, parameter: str = "header_env") -> tuple[tuple[str, str], ...]:
    """The headers held by the environment variables ``names``, as (name, value) pairs.

    Raises ParameterError naming the variable (never its value) when one is unset or empty, is
    not ``Name: value``, or would replace a header the WebSocket handshake owns.
    """
    headers = []
    for variable in names:
        raw = os.environ.get(variable, "")
        if not raw.strip():
            raise ParameterError(parameter, f"environment variable {variable} is not set or empty")
        name, sep, value = raw.partition(":")
        name = name.strip()
        if not sep or not _HEADER_NAME.match(name):
            raise ParameterError(parameter, f"environment variable {variable} must hold 'Name: value'")
        if name.lower() in _RESERVED:
            raise ParameterError(parameter, f"environment variable {variable} sets {name}, which the "
                                            "WebSocket handshake itself sends")
        value = value.strip()
        if "\r" in value or "\n" in value:
            raise ParameterError(parameter, f"environment variable {variable} holds a line break")
        headers.append((name, value))
    return tuple(headers)


def prepare_target(url: str, *, header_env: Sequence[str] = (), origin: str | None = None,
                   insecure_tls: bool = False, parameter: str = "target_url") -> Target:
    """Check ``url`` (ws:// or wss:// with a host) and read the header variables.

    ``origin`` defaults to the http(s) origin of the URL itself, as a browser on that site would
    send it. Raises ParameterError (naming ``parameter`` or ``header_env``) for bad input.
    """
    if not isinstance(url, str) or not url.strip():
        raise ParameterError(parameter, "must be a ws:// or wss:// URL")
    check_ws_url(parameter, url.strip())
    parts = urlsplit(url.strip())
    port = parts.port
    secure = parts.scheme == "wss"
    port = port or DEFAULT_PORTS[parts.scheme]
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in resource):
        raise ParameterError(parameter, "has spaces or control characters in its path")
    host = parts.hostname
    extra = read_header_env(header_env)
    if parts.username is not None and not any(n.lower() == "authorization" for n, _ in extra):
        # RFC 7617 Basic credentials from the URL's userinfo, as browsers and websockets send them.
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        extra = (("Authorization", "Basic " + base64.b64encode(pair.encode()).decode()), *extra)
    if origin is None:
        shown = f"[{host}]" if ":" in host else host
        default = DEFAULT_PORTS[parts.scheme]
        origin = f"{'https' if secure else 'http'}://{shown}" + ("" if port == default else f":{port}")
    return Target(url=url.strip(), secure=secure, host=host, port=port, resource=resource,
                  origin=origin or None, insecure_tls=insecure_tls,
                  extra_headers=extra)
