"""A real nginx, run in the foreground from a run folder, as a WebSocket reverse proxy.

:func:`render_nginx_conf` is pure: a :class:`ProxySite` in, the text of ``nginx.conf`` out.
:class:`Nginx` runs ``nginx -p RUN/ -c RUN/nginx.conf -e RUN/logs/error.log`` with
``daemon off``: the pid file, both logs and every temp path stay inside the run folder, the
master is our own Popen child, and it is stopped through that handle (SIGTERM, nginx's fast
shutdown, which also ends its workers), never by name. No root needed. The configuration has no
``user`` directive: as an ordinary user nginx ignores it anyway, and as root the workers switch
to ``nobody``, so the run folder is made world-traversable (the master opens the logs before
switching; nginx itself chowns its temp folders to the worker user).

The configuration is the reference runbook's "proper WebSocket proxy configuration"
(``proxy_http_version 1.1``, Upgrade and Connection forwarded through the
``map $http_upgrade $connection_upgrade`` idiom, ``proxy_buffering off``) with the error log at
``info``, the level at which nginx reports ``upstream timed out (110: Connection timed out)
while proxying upgraded connection``. ``ProxySite.websocket_headers=False`` leaves out the first
three lines, the misconfiguration behind failed upgrades.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from runbook.lab.processes import LOOPBACK, ForegroundProxy, LabError, find_binary

# nginx's own default (ngx_http_proxy_module docs: "Default: proxy_read_timeout 60s;").
NGINX_DEFAULT_PROXY_READ_TIMEOUT_S = 60.0
NGINX_HINT = "install the Debian package nginx (or nginx-light)"
TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")

# The NGINX blog's "upstream_time" format: combined plus request and upstream timings. For an
# upgraded WebSocket session the line is written when the session ends, with status 101, and
# $request_time is how long the session lasted.
ACCESS_LOG_FORMAT = (
    "'$remote_addr - $remote_user [$time_local] '\n"
    "                             '\"$request\" $status $body_bytes_sent '\n"
    "                             '\"$http_referer\" \"$http_user_agent\" '\n"
    "                             'rt=$request_time uct=\"$upstream_connect_time\" "
    "uht=\"$upstream_header_time\" urt=\"$upstream_response_time\"'"
)


@dataclass(frozen=True)
class Route:
    """One ``location`` proxied to one upstream WebSocket server on loopback."""

    location: str  # e.g. "/ws/chat"
    upstream_name: str  # nginx upstream block name, e.g. "chat_python"
    upstream_port: int


@dataclass(frozen=True)
class ProxySite:
    """What the generated nginx.conf serves: a loopback listener and its WebSocket routes.

    ``proxy_read_timeout_s`` equal to nginx's default (60 s) leaves the directive out, as most
    real configurations do; any other value is written in milliseconds so compressed test runs
    can use fractions of a second.
    """

    listen_port: int
    routes: tuple[Route, ...]
    proxy_read_timeout_s: float = NGINX_DEFAULT_PROXY_READ_TIMEOUT_S
    # False renders the broken location many WebSocket outages start from: a bare proxy_pass,
    # so nginx talks HTTP/1.0 upstream and drops the hop-by-hop Upgrade and Connection headers.
    websocket_headers: bool = True
    server_name: str = "localhost"
    # Clients present their address in X-Forwarded-For the way an edge load balancer in front
    # would; the realip module trusts it from loopback only.
    trusted_proxy: str = LOOPBACK

    def __post_init__(self) -> None:
        if not self.routes:
            raise LabError("a proxy site needs at least one route")
        if self.proxy_read_timeout_s <= 0:
            raise LabError(f"proxy_read_timeout_s must be positive, got {self.proxy_read_timeout_s}")


@dataclass(frozen=True)
class RunPaths:
    """Where one nginx run keeps its files, all under ``root``."""

    root: Path
    conf: Path = field(init=False)
    pid: Path = field(init=False)
    logs: Path = field(init=False)
    access_log: Path = field(init=False)
    error_log: Path = field(init=False)
    temp: Path = field(init=False)
    output: Path = field(init=False)

    def __post_init__(self) -> None:
        root = Path(self.root).resolve()
        object.__setattr__(self, "root", root)
        object.__setattr__(self, "conf", root / "nginx.conf")
        object.__setattr__(self, "pid", root / "nginx.pid")
        object.__setattr__(self, "logs", root / "logs")
        object.__setattr__(self, "access_log", root / "logs" / "access.log")
        object.__setattr__(self, "error_log", root / "logs" / "error.log")
        object.__setattr__(self, "temp", root / "temp")
        object.__setattr__(self, "output", root / "nginx.out")


def _duration(seconds: float) -> str:
    """An nginx time value: whole seconds as "60s", anything finer in milliseconds."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{max(1, round(seconds * 1000))}ms"


def render_nginx_conf(site: ProxySite, paths: RunPaths) -> str:
    """The complete nginx.conf text for ``site``, with every path inside ``paths.root``."""
    temp_lines = "".join(
        f"    {kind}_temp_path {paths.temp / kind};\n" for kind in TEMP_DIRS
    )
    upstreams = "".join(
        f"    upstream {route.upstream_name} {{\n"
        f"        server {LOOPBACK}:{route.upstream_port};\n"
        f"    }}\n\n"
        for route in site.routes
    )
    read_timeout = (
        ""
        if site.proxy_read_timeout_s == NGINX_DEFAULT_PROXY_READ_TIMEOUT_S
        else f"            proxy_read_timeout {_duration(site.proxy_read_timeout_s)};\n"
    )
    upgrade = (
        "            proxy_http_version 1.1;\n"
        "            proxy_set_header Upgrade $http_upgrade;\n"
        "            proxy_set_header Connection $connection_upgrade;\n"
        if site.websocket_headers else ""
    )
    upgrade_map = (
        "    map $http_upgrade $connection_upgrade {\n"
        "        default upgrade;\n"
        "        ''      close;\n"
        "    }\n"
        "\n"
        if site.websocket_headers else ""
    )
    locations = "".join(
        f"        location {route.location} {{\n"
        f"            proxy_pass http://{route.upstream_name};\n"
        f"{upgrade}"
        f"            proxy_set_header Host $host;\n"
        f"            proxy_set_header X-Real-IP $remote_addr;\n"
        f"            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        f"            proxy_set_header X-Forwarded-Proto $scheme;\n"
        f"            proxy_buffering off;\n"
        f"{read_timeout}"
        f"        }}\n\n"
        for route in site.routes
    )
    return (
        f"worker_processes 1;\n"
        f"daemon off;\n"
        f"pid {paths.pid};\n"
        f"error_log {paths.error_log} info;\n"
        f"\n"
        f"events {{\n"
        f"    worker_connections 1024;\n"
        f"}}\n"
        f"\n"
        f"http {{\n"
        f"    log_format upstream_time {ACCESS_LOG_FORMAT};\n"
        f"    access_log {paths.access_log} upstream_time;\n"
        f"\n"
        f"{temp_lines}"
        f"\n"
        f"    set_real_ip_from {site.trusted_proxy};\n"
        f"    real_ip_header X-Forwarded-For;\n"
        f"\n"
        f"{upgrade_map}"
        f"{upstreams}"
        f"    server {{\n"
        f"        listen {LOOPBACK}:{site.listen_port};\n"
        f"        server_name {site.server_name};\n"
        f"\n"
        f"{locations}"
        f"        location / {{\n"
        f"            return 404;\n"
        f"        }}\n"
        f"    }}\n"
        f"}}\n"
    )


def find_nginx() -> str:
    """The nginx binary (PATH, then /usr/sbin); MissingBinaryError names the package to install."""
    return find_binary("nginx", NGINX_HINT, candidates=("/usr/sbin/nginx", "/usr/local/sbin/nginx"))


def nginx_version(binary: str | None = None) -> str:
    """``nginx/1.22.1``-style version string of the binary."""
    done = subprocess.run([binary or find_nginx(), "-v"], capture_output=True, text=True,  # noqa: S603
                          timeout=10, check=False)
    return (done.stderr or done.stdout).strip().removeprefix("nginx version: ")


class Nginx(ForegroundProxy):
    """One nginx master running ``site`` from ``run_dir``; a context manager.

    Entering writes the configuration, checks it with ``nginx -t`` (LabError with nginx's own
    message if it is rejected), starts the master in the foreground and waits until it listens.
    Leaving stops it through its Popen handle. Raises MissingBinaryError when nginx is missing.
    """

    name = "nginx"

    def __init__(self, site: ProxySite, run_dir: Path, *, binary: str | None = None) -> None:
        self.site = site
        self.paths = RunPaths(Path(run_dir))
        self.binary = binary or find_nginx()
        self.conf_text = render_nginx_conf(site, self.paths)
        self.output = self.paths.output
        super().__init__()

    def argv(self, *extra: str) -> list[str]:
        # -p keeps relative paths inside the run folder, -e moves even the startup error log
        # there (the compiled-in one may be a root-owned file elsewhere).
        return [self.binary, "-p", f"{self.paths.root}/", "-c", str(self.paths.conf),
                "-e", str(self.paths.error_log), *extra]

    def prepare(self) -> None:
        """Create the run folder, write nginx.conf and validate it with ``nginx -t``."""
        self.paths.logs.mkdir(parents=True, exist_ok=True)
        # Run as root, the workers are `nobody`: they must be able to reach the temp folders.
        for folder in (self.paths.root, self.paths.logs):
            folder.chmod(folder.stat().st_mode | 0o755)
        for kind in TEMP_DIRS:
            (self.paths.temp / kind).mkdir(parents=True, exist_ok=True)
        self.paths.conf.write_text(self.conf_text)
        check = subprocess.run(self.argv("-t", "-q"), capture_output=True, text=True,  # noqa: S603
                               timeout=30, check=False)
        if check.returncode != 0:
            raise LabError(f"nginx rejected the generated configuration: {check.stderr.strip()}")
