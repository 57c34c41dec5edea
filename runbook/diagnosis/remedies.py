"""Concrete fixes per root cause, adapted to what was measured.

A fix names the measured timeout and the heartbeat interval that beats it; the snippet is in the
language of the stack the logs came from (Node ``ws`` for the Node monitor format, python
``websockets`` otherwise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from runbook.diagnosis.causes import Cause
from runbook.diagnosis.rules import timer_peak
from runbook.observations import Observations

# The reference runbook's heartbeat: a ping every 30 s, terminate after a missed pong.
DEFAULT_PING_S = 30


@dataclass(frozen=True)
class Recommendation:
    cause: Cause
    title: str
    snippet: str
    language: str  # nginx, javascript, python, text


def measured_timeout(obs: Observations) -> float | None:
    """The fixed age at which an intermediary cuts connections, when the logs show one."""
    peak = timer_peak(obs.logs) if obs.logs else None
    return peak.center_s if peak else None


def heartbeat_interval(timeout_s: float | None) -> int:
    """A ping interval that keeps a connection busy well inside an idle timeout.

    Half the timeout leaves room for one lost ping; never above the reference's 30 s.
    """
    if timeout_s is None:
        return DEFAULT_PING_S
    return max(1, min(DEFAULT_PING_S, math.floor(timeout_s / 2)))


def _node_stack(obs: Observations) -> bool:
    return "node_monitor" in obs.log_formats


def proxy_fix(obs: Observations) -> Recommendation:
    timeout = measured_timeout(obs)
    note = f"# connections were cut at ~{timeout:.0f} s: the read timeout below must exceed the heartbeat\n" if timeout else ""
    snippet = (
        "# http {} block: send Connection: upgrade only when the client asked for it\n"
        "map $http_upgrade $connection_upgrade {\n"
        "    default upgrade;\n"
        "    ''      close;\n"
        "}\n\n"
        "location /ws {\n"
        "    proxy_pass http://backend;\n"
        "    proxy_http_version 1.1;                      # the default 1.0 cannot upgrade\n"
        "    proxy_set_header Upgrade $http_upgrade;      # hop-by-hop: not forwarded unless set\n"
        "    proxy_set_header Connection $connection_upgrade;\n"
        "    proxy_set_header Host $host;\n"
        "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        "    proxy_buffering off;\n"
        f"{note}"
        "    proxy_read_timeout 3600s;                    # default 60 s kills idle sockets\n"
        "    proxy_send_timeout 3600s;\n"
        "}\n"
    )
    title = "Forward the upgrade over HTTP/1.1 and raise the proxy timeouts above the heartbeat"
    return Recommendation(Cause.PROXY, title, snippet, "nginx")


def heartbeat_fix(obs: Observations) -> Recommendation:
    timeout = measured_timeout(obs)
    interval = heartbeat_interval(timeout)
    why = f"connections die at ~{timeout:.0f} s idle, so ping every {interval} s" if timeout else f"ping every {interval} s"
    if _node_stack(obs):
        snippet = (
            f"// {why}; terminate peers that miss a pong\n"
            "const HEARTBEAT_MS = " + str(interval * 1000) + ";\n"
            "wss.on('connection', (ws) => {\n"
            "  ws.isAlive = true;\n"
            "  ws.on('pong', () => { ws.isAlive = true; });\n"
            "});\n"
            "const heartbeat = setInterval(() => {\n"
            "  for (const ws of wss.clients) {\n"
            "    if (!ws.isAlive) { ws.terminate(); continue; }\n"
            "    ws.isAlive = false;\n"
            "    ws.ping();\n"
            "  }\n"
            "}, HEARTBEAT_MS);\n"
            "wss.on('close', () => clearInterval(heartbeat));\n"
        )
        return Recommendation(Cause.HEARTBEAT, f"Ping every {interval} s from the server, drop peers that miss a pong", snippet, "javascript")
    snippet = (
        f"# {why}; python-websockets closes with 1011 when a pong is late\n"
        "from websockets.asyncio.server import serve\n\n"
        f"async with serve(handler, host, port, ping_interval={interval}, ping_timeout={interval}) as server:\n"
        "    await server.serve_forever()\n"
    )
    return Recommendation(Cause.HEARTBEAT, f"Ping every {interval} s from the server, drop peers that miss a pong", snippet, "python")


def network_fix(obs: Observations) -> Recommendation:
    interval = heartbeat_interval(measured_timeout(obs))
    snippet = (
        f"// NAT gateways and firewalls drop idle flows silently (AWS NAT/NLB: 350 s, Azure: 4 min);\n"
        f"// application pings every {interval} s keep the flow alive, TCP keepalive backs it up.\n"
        "wss.on('connection', (ws, req) => {\n"
        "  ws._socket.setKeepAlive(true, 60000);\n"
        "  ws._socket.setTimeout(0);   // no aggressive socket timeout on live connections\n"
        "});\n\n"
        "// Mobile: the OS suspends sockets of backgrounded apps; reconnect when the app returns.\n"
        "document.addEventListener('visibilitychange', () => {\n"
        "  if (document.visibilityState === 'visible' && client.ws.readyState !== WebSocket.OPEN) {\n"
        "    client.connect();\n"
        "  }\n"
        "});\n"
    )
    return Recommendation(Cause.NETWORK, "Keep flows alive through NAT/firewalls and reconnect mobile clients on resume", snippet, "javascript")


def resource_leak_fix(obs: Observations) -> Recommendation:
    snippet = (
        "// Tie every timer and listener to the connection and release them on close/error.\n"
        "wss.on('connection', (ws) => {\n"
        "  const timer = setInterval(() => ws.send('tick'), 30000);\n"
        "  const cleanup = () => {\n"
        "    clearInterval(timer);\n"
        "    ws.removeAllListeners();\n"
        "    connections.delete(ws);\n"
        "  };\n"
        "  ws.once('close', cleanup);\n"
        "  ws.once('error', cleanup);\n"
        "  connections.add(ws);\n"
        "});\n"
    )
    return Recommendation(Cause.RESOURCE_LEAK, "Release timers, listeners and sockets when a connection closes", snippet, "javascript")


def client_fix(obs: Observations) -> Recommendation:
    snippet = (
        "// Exponential backoff with full jitter: no thundering herd after a proxy restart.\n"
        "scheduleReconnect() {\n"
        "  if (this.isIntentionallyClosed) return;\n"
        "  const cap = Math.min(30000, 1000 * 2 ** this.reconnectAttempts);\n"
        "  const delay = Math.random() * cap;\n"
        "  this.reconnectAttempts++;\n"
        "  setTimeout(() => this.connect(), delay);\n"
        "}\n"
        "// and reset reconnectAttempts = 0 in onopen\n"
    )
    return Recommendation(Cause.CLIENT, "Reconnect with exponential backoff and jitter", snippet, "javascript")


FIXES = {
    Cause.PROXY: proxy_fix,
    Cause.HEARTBEAT: heartbeat_fix,
    Cause.NETWORK: network_fix,
    Cause.RESOURCE_LEAK: resource_leak_fix,
    Cause.CLIENT: client_fix,
}


def recommend(obs: Observations, causes: list[Cause]) -> list[Recommendation]:
    """The fixes for ``causes``, in the order given (most probable first)."""
    return [FIXES[cause](obs) for cause in causes]
