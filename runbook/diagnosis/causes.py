"""The five root causes and their reference shares (the priors of the ranking)."""

from __future__ import annotations

from enum import StrEnum


class Cause(StrEnum):
    PROXY = "proxy"
    HEARTBEAT = "heartbeat"
    NETWORK = "network"
    RESOURCE_LEAK = "resource_leak"
    CLIENT = "client"


# Shares of cases in the reference runbook; with no evidence the ranking equals these exactly.
PRIORS: dict[Cause, float] = {
    Cause.PROXY: 0.40,
    Cause.HEARTBEAT: 0.30,
    Cause.NETWORK: 0.20,
    Cause.RESOURCE_LEAK: 0.07,
    Cause.CLIENT: 0.03,
}

TITLES: dict[Cause, str] = {
    Cause.PROXY: "Proxy / load balancer not set up for WebSocket",
    Cause.HEARTBEAT: "No ping/pong heartbeat: idle connections die silently",
    Cause.NETWORK: "Network, firewall or NAT idle timeouts; mobile clients backgrounded",
    Cause.RESOURCE_LEAK: "Resources of closed connections never cleaned up",
    Cause.CLIENT: "Client reconnect loops without exponential backoff",
}
