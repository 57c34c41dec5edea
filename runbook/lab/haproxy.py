"""A real HAProxy, run in the foreground from a run folder, as a WebSocket reverse proxy.

:func:`render_haproxy_cfg` is pure: a :class:`HaproxySite` in, the text of ``haproxy.cfg`` out.
:class:`Haproxy` runs ``haproxy -db -f RUN/haproxy.cfg`` (``-db``: foreground, no daemon), our
own Popen child, stopped through that handle (SIGTERM, HAProxy's hard stop), never by name. No
root needed: the config has no ``user``/``chroot``, and every path stays in the run folder.

The configuration is ``mode http`` with one backend per WebSocket route (``/ws/chat``,
``/ws/live``) chosen by path. HAProxy forwards the WebSocket upgrade natively in ``mode http``
(no extra directive). Once a connection is upgraded, ``timeout tunnel`` applies when it is set;
when it is not, ``timeout client`` and ``timeout server`` keep applying to the tunnel, which is
the classic HAProxy WebSocket outage: idle sockets cut at the client/server timeout
(HAProxy configuration manual, "timeout tunnel"). ``option httplog`` writes one line per
session when it ends, to stdout (``log stdout format raw local0``, HAProxy >= 1.9), which the
handle captures into ``haproxy.log``; an upgraded session is logged with status 101, its total
time ``Tt`` = the session's length and its termination state (``cD``: client-side timeout
during the data phase, ``sD``: server side, ``CD``/``SD``: closed by the client/server).

``HaproxySite.websocket_upgrade=False`` adds a header-sanitizing rule that deletes the
hop-by-hop ``Upgrade`` header before the request reaches the backends, so no backend ever sees
a WebSocket handshake (python-websockets then answers 426, Node ws 400), the upgrade failure of
a proxy that was set up for plain HTTP.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from runbook.lab.nginx import Route
from runbook.lab.processes import LOOPBACK, ForegroundProxy, LabError, find_binary

HAPROXY_HINT = "install the Debian package haproxy"
# Common HAProxy defaults in real configurations (the packaged haproxy.cfg: client/server 50 s).
HAPROXY_DEFAULT_CLIENT_TIMEOUT_S = 50.0
CONNECT_TIMEOUT_S = 5.0
# The captured X-Forwarded-For shows the user's address in the log (the socket peer is loopback).
CAPTURE_XFF_LEN = 64


@dataclass(frozen=True)
class HaproxySite:
    """What the generated haproxy.cfg serves: a loopback listener and its WebSocket routes.

    ``timeout_client_s`` / ``timeout_server_s``: the inactivity timeouts of each side; with
    ``timeout_tunnel_s`` None they also apply after the upgrade. Values are written in
    milliseconds so compressed runs can use fractions of a second.
    """

    listen_port: int
    routes: tuple[Route, ...]
    timeout_client_s: float = HAPROXY_DEFAULT_CLIENT_TIMEOUT_S
    timeout_server_s: float = HAPROXY_DEFAULT_CLIENT_TIMEOUT_S
    timeout_tunnel_s: float | None = None
    websocket_upgrade: bool = True

    def __post_init__(self) -> None:
        if not self.routes:
            raise LabError("a proxy site needs at least one route")
        for name in ("timeout_client_s", "timeout_server_s", "timeout_tunnel_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise LabError(f"{name} must be positive, got {value}")


def _ms(seconds: float) -> str:
    """An HAProxy time value: whole seconds as "60s", anything finer in milliseconds."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{max(1, round(seconds * 1000))}ms"


def render_haproxy_cfg(site: HaproxySite) -> str:
    """The complete haproxy.cfg text for ``site``."""
    tunnel = ("" if site.timeout_tunnel_s is None
              else f"    timeout tunnel {_ms(site.timeout_tunnel_s)}\n")
    strip = ("" if site.websocket_upgrade else
             "    # header sanitizing copied from the HTTP API frontend: drops the upgrade\n"
             "    http-request del-header Upgrade\n")
    acls = "".join(f"    acl is_{route.upstream_name} path_beg {route.location}\n"
                   f"    use_backend {route.upstream_name} if is_{route.upstream_name}\n"
                   for route in site.routes)
    backends = "".join(f"backend {route.upstream_name}\n"
                       f"    server s1 {LOOPBACK}:{route.upstream_port}\n\n"
                       for route in site.routes)
    return (
        "global\n"
        "    log stdout format raw local0 info\n"
        "    maxconn 4096\n"
        "\n"
        "defaults\n"
        "    mode http\n"
        "    log global\n"
        "    option httplog\n"
        "    option forwardfor\n"
        f"    timeout connect {_ms(CONNECT_TIMEOUT_S)}\n"
        f"    timeout client {_ms(site.timeout_client_s)}\n"
        f"    timeout server {_ms(site.timeout_server_s)}\n"
        f"{tunnel}"
        "\n"
        "frontend ws_front\n"
        f"    bind {LOOPBACK}:{site.listen_port}\n"
        f"    capture request header X-Forwarded-For len {CAPTURE_XFF_LEN}\n"
        f"{strip}"
        f"{acls}"
        "    default_backend not_found\n"
        "\n"
        f"{backends}"
        "backend not_found\n"
        "    http-request deny deny_status 404\n"
    )


def find_haproxy() -> str:
    """The haproxy binary (PATH, then /usr/sbin); MissingBinaryError names the package."""
    return find_binary("haproxy", HAPROXY_HINT,
                       candidates=("/usr/sbin/haproxy", "/usr/local/sbin/haproxy"))


def haproxy_version(binary: str | None = None) -> str:
    """``HAProxy 2.6.12-1+deb12u4``-style version string of the binary."""
    done = subprocess.run([binary or find_haproxy(), "-v"], capture_output=True, text=True,  # noqa: S603
                          timeout=10, check=False)
    first = (done.stdout or done.stderr).strip().splitlines()[:1]
    words = first[0].split() if first else []
    return f"HAProxy {words[2]}" if len(words) >= 3 else "HAProxy (unknown version)"


class Haproxy(ForegroundProxy):
    """One HAProxy process running ``site`` from ``run_dir``; a context manager.

    Entering writes ``haproxy.cfg``, checks it with ``haproxy -c`` (LabError with HAProxy's own
    message if it is rejected), starts it in the foreground with its output going to
    ``haproxy.log`` and waits until it listens. Leaving stops it through its Popen handle.
    Raises MissingBinaryError when haproxy is missing.
    """

    name = "haproxy"

    def __init__(self, site: HaproxySite, run_dir: Path, *, binary: str | None = None) -> None:
        self.site = site
        self.root = Path(run_dir).resolve()
        self.conf = self.root / "haproxy.cfg"
        self.log = self.root / "haproxy.log"
        self.binary = binary or find_haproxy()
        self.conf_text = render_haproxy_cfg(site)
        self.output = self.log
        super().__init__()

    def prepare(self) -> None:
        """Create the run folder, write haproxy.cfg and validate it with ``haproxy -c``."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(self.conf_text)
        check = subprocess.run([self.binary, "-c", "-q", "-f", str(self.conf)],  # noqa: S603
                               capture_output=True, text=True, timeout=30, check=False)
        if check.returncode != 0:
            raise LabError("haproxy rejected the generated configuration: "
                           f"{(check.stderr or check.stdout).strip()}")

    def argv(self) -> list[str]:
        return [self.binary, "-db", "-f", str(self.conf)]
