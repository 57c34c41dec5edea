"""Every check of the config lint, in one table: stable id, severity, what, why and the fix.

Read it top to bottom like ruff's rule registry: the linters look checks up here by id, so a
message, its severity and its explanation never live in two places. Ids never change meaning;
a retired check keeps its id unused.

Severity: ``error`` breaks WebSockets (handshake fails, or idle connections are cut before the
heartbeat); ``warning`` likely breaks them or hides a fault; ``info`` worth knowing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Check:
    id: str
    name: str
    severity: Severity
    what: str  # what the check finds
    why: str  # why it breaks (or endangers) WebSockets
    fix: str  # what the corrected config does


_E, _W, _I = Severity.ERROR, Severity.WARNING, Severity.INFO

CHECKS_LIST: tuple[Check, ...] = (
    # --- any config file ------------------------------------------------------------------------
    Check("CFG001", "parse-error", _E, "the config does not parse",
          "the server refuses to start or reload with it, so what runs is some other config",
          "correct the syntax at the line the parser names"),
    Check("CFG002", "include-missing", _E, "an include names a file that does not exist",
          "nginx -t fails on it (a glob with no match is allowed and includes nothing)",
          "give the file, or correct the include path"),
    Check("CFG003", "no-websocket-location", _W, "no location proxies anything (no proxy_pass)",
          "the WebSocket path is served elsewhere: this file is not the one in front of the service",
          "lint the config that proxies the WebSocket path"),
    Check("CFG004", "unusable-file", _E, "a file is empty, binary or not a proxy config",
          "nothing in it could be checked",
          "give an nginx or HAProxy config, an Ingress/ConfigMap YAML or ALB attributes JSON"),
    Check("CFG005", "bad-time-value", _E, "a timeout value that is not a valid time",
          "the proxy refuses the config (nginx -t: invalid value)",
          "write the time as the proxy's documentation says (e.g. 3600s, 1h)"),
    # --- nginx (ngx_http_proxy_module) ----------------------------------------------------------
    Check("NGX001", "upstream-http-1.0", _E, "a WebSocket location proxies with HTTP/1.0 (nginx's default)",
          "the Upgrade handshake needs HTTP/1.1 to the upstream; with 1.0 the backend answers 400/426",
          "proxy_http_version 1.1;"),
    Check("NGX002", "upgrade-not-forwarded", _E, "Upgrade is not forwarded from $http_upgrade",
          "Upgrade is a hop-by-hop header nginx drops unless told: the backend never sees the upgrade",
          "proxy_set_header Upgrade $http_upgrade;"),
    Check("NGX003", "connection-not-upgrade", _E, "Connection is not set to upgrade",
          "nginx sends 'Connection: close' by default, so the backend refuses the upgrade",
          'proxy_set_header Connection "upgrade"; (or $connection_upgrade from the map $http_upgrade idiom)'),
    Check("NGX004", "read-timeout-below-heartbeat", _E, "proxy_read_timeout is not longer than the heartbeat",
          "nginx closes an upgraded connection when the upstream sends nothing for proxy_read_timeout "
          "(error.log: upstream timed out while proxying upgraded connection); the client sees 1006",
          "proxy_read_timeout well above the heartbeat interval"),
    Check("NGX005", "read-timeout-default", _W, "proxy_read_timeout is nginx's 60 s default and the heartbeat is unknown",
          "every WebSocket idle for 60 s is cut unless something pings more often",
          "set proxy_read_timeout well above the server's ping interval"),
    Check("NGX006", "send-timeout-below-heartbeat", _W, "proxy_send_timeout is not longer than the heartbeat",
          "a write to the upstream that stalls for proxy_send_timeout closes the connection",
          "proxy_send_timeout well above the heartbeat interval"),
    Check("NGX007", "proxy-buffering-on", _I, "proxy_buffering is on for a WebSocket location",
          "upgraded connections are not buffered, but the HTTP long-polling fallbacks of Socket.IO/SockJS are delayed",
          "proxy_buffering off;"),
    Check("NGX008", "proxy-set-header-not-inherited", _W,
          "proxy_set_header in this block drops every proxy_set_header of the enclosing levels",
          "nginx inherits proxy_set_header only when the block sets none of its own",
          "repeat the enclosing headers in the block"),
    Check("NGX009", "connection-cleared", _E, 'Connection is cleared (proxy_set_header Connection "")',
          "the idiom for upstream keepalive removes the upgrade token: the backend refuses the handshake",
          "send $connection_upgrade (map $http_upgrade: default upgrade; '' '') to the WebSocket location"),
    Check("NGX010", "stream-timeout-below-heartbeat", _E, "a stream (TCP) proxy_timeout is not longer than the heartbeat",
          "ngx_stream_proxy_module closes a connection idle for proxy_timeout (default 10m): WebSockets carried "
          "over TCP are cut before the next ping",
          "proxy_timeout well above the heartbeat interval in the stream server"),
    # --- HAProxy --------------------------------------------------------------------------------
    Check("HAP001", "no-tunnel-timeout", _W, "no timeout tunnel: timeout client/server apply after the upgrade",
          "an upgraded connection idle for the shorter of timeout client/server is cut (log: cD/sD)",
          "timeout tunnel 1h in the backend (or defaults)"),
    Check("HAP002", "tunnel-timeout-below-heartbeat", _E, "the idle timeout of upgraded connections is not longer than the heartbeat",
          "HAProxy closes the tunnel after that much silence; the client sees 1006",
          "timeout tunnel well above the heartbeat interval"),
    Check("HAP003", "no-fin-timeouts", _I, "a long timeout tunnel without timeout client-fin / server-fin",
          "half-closed connections (one side gone) are kept for the whole tunnel timeout",
          "timeout client-fin 30s and timeout server-fin 30s"),
    Check("HAP004", "http-keep-alive-misuse", _W, "timeout http-keep-alive set but no timeout tunnel",
          "http-keep-alive only bounds the wait for the next HTTP request; it does not keep WebSockets open",
          "set timeout tunnel for upgraded connections"),
    Check("HAP005", "mode-tcp", _I, "the proxy runs in mode tcp",
          "WebSockets pass as raw TCP (no HTTP routing or logging of the upgrade); the same timeouts apply",
          "mode http forwards the upgrade and logs it; keep tcp only on purpose"),
    Check("HAP006", "removed-option", _E, "option forceclose or option http-tunnel",
          "HAProxy 2.0 / 2.1 and later refuse the config (haproxy -c: 'not supported any more'); "
          "on old versions forceclose closes the connection right after the 101",
          "remove the option (HAProxy 1.5+ tunnels upgraded connections by itself)"),
    Check("HAP007", "tunnel-timeout-in-frontend", _W, "timeout tunnel in a frontend",
          "HAProxy ignores it there (a backend setting): the tunnel timeout never applies",
          "move timeout tunnel to the backend or defaults"),
    Check("HAP008", "close-option", _I, "option httpclose or option http-server-close",
          "HAProxy 1.5 and later switch an upgraded connection to tunnel mode whatever the close option; "
          "on older versions, check that upgraded connections survive it",
          "on HAProxy 1.5+ nothing to do; on older versions remove the option"),
    Check("HAP009", "upgrade-header-removed", _E, "http-request del-header/set-header removes the upgrade headers",
          "without Upgrade (or with Connection not naming upgrade) the backend never sees a WebSocket handshake: "
          "it answers 400/426 and HAProxy never switches to tunnel mode",
          "remove the rule, or limit it to non-WebSocket requests with an acl"),
    # --- ingress-nginx --------------------------------------------------------------------------
    Check("ING001", "ingress-read-timeout-below-heartbeat", _E, "the ingress proxy-read-timeout is not longer than the heartbeat",
          "ingress-nginx is nginx: the upgraded connection is cut after that much silence (1006)",
          'nginx.ingress.kubernetes.io/proxy-read-timeout: "3600"'),
    Check("ING002", "ingress-read-timeout-default", _W, "the ingress proxy-read-timeout is the 60 s default and the heartbeat is unknown",
          "every WebSocket idle for 60 s is cut unless something pings more often",
          'nginx.ingress.kubernetes.io/proxy-read-timeout: "3600"'),
    Check("ING003", "ingress-send-timeout-below-heartbeat", _W, "the ingress proxy-send-timeout is not longer than the heartbeat",
          "a stalled write to the upstream closes the connection",
          'nginx.ingress.kubernetes.io/proxy-send-timeout: "3600"'),
    Check("ING004", "ingress-http-1.0", _E, "proxy-http-version is 1.0",
          "the upgrade needs HTTP/1.1 to the upstream", 'proxy-http-version: "1.1"'),
    Check("ING005", "ingress-reload-drops", _I, "worker-shutdown-timeout: WebSockets are dropped that long after every reload",
          "each config reload starts new workers; old ones close their WebSockets after this (default 240 s)",
          "reload less often; clients reconnect with backoff and jitter"),
    Check("ING006", "nginx-inc-websocket-services", _E, "an NGINX Inc ingress (nginx.org/ annotations) whose service is not in nginx.org/websocket-services",
          "the NGINX Inc Ingress Controller forwards the upgrade only for the services listed there: the handshake fails",
          'nginx.org/websocket-services: "<every WebSocket service of the Ingress>"'),
    # --- cloud load balancers and CDNs ----------------------------------------------------------
    Check("LB001", "lb-idle-below-heartbeat", _E, "a load balancer idle timeout is not longer than the heartbeat",
          "the LB cuts connections idle that long; TCP keepalive does not count, only data does",
          "raise the LB idle timeout, or ping more often than it"),
    Check("LB002", "lb-idle-timeout", _W, "a load balancer idle timeout applies and the heartbeat is unknown",
          "connections idle longer than it are cut",
          "make sure the server pings more often than the LB idle timeout"),
    Check("LB003", "lb-lifetime-cap", _W, "a load balancer caps the lifetime of every connection",
          "connections are closed at that age even with traffic: clients must reconnect",
          "raise the cap (GCP BackendConfig timeoutSec) and reconnect with backoff"),
)

CHECKS: dict[str, Check] = {check.id: check for check in CHECKS_LIST}
