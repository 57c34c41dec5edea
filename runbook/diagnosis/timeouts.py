"""Default timeouts of intermediaries that silently kill idle or long-lived WebSockets.

Source: shared/reference/facts.md ("Default timeouts ..."), which cites each vendor's docs.
A sharp peak of connection lifetimes at one of these values names the likely component.
"""

from __future__ import annotations

from dataclasses import dataclass

from runbook.diagnosis.causes import Cause


@dataclass(frozen=True)
class KnownTimeout:
    seconds: float
    component: str
    setting: str
    cause: Cause  # which root cause a cut at this value points to

    def __str__(self) -> str:
        return f"{self.component} {self.setting} ({self.seconds:g} s)"


KNOWN_TIMEOUTS: tuple[KnownTimeout, ...] = (
    KnownTimeout(30, "GCP HTTP(S) LB", "backend timeoutSec (a maximum lifetime)", Cause.PROXY),
    KnownTimeout(55, "Heroku router", "rolling 55 s window", Cause.PROXY),
    KnownTimeout(60, "nginx", "proxy_read_timeout default", Cause.PROXY),
    KnownTimeout(60, "AWS ALB / ELB", "idle timeout default", Cause.PROXY),
    KnownTimeout(60, "ingress-nginx", "proxy-read-timeout default", Cause.PROXY),
    KnownTimeout(100, "Cloudflare", "idle timeout (about 100 s)", Cause.PROXY),
    KnownTimeout(180, "Traefik v2", "idleTimeout default", Cause.PROXY),
    KnownTimeout(240, "Azure LB / SNAT", "idle timeout (4 min)", Cause.NETWORK),
    KnownTimeout(240, "ingress-nginx", "worker-shutdown-timeout after a reload", Cause.PROXY),
    KnownTimeout(300, "Envoy", "stream_idle_timeout (5 min)", Cause.PROXY),
    KnownTimeout(300, "Azure Front Door", "idle timeout (5 min)", Cause.PROXY),
    KnownTimeout(350, "AWS NLB / NAT gateway", "TCP idle timeout", Cause.NETWORK),
    KnownTimeout(600, "AWS API Gateway WebSocket", "idle timeout (10 min)", Cause.PROXY),
    KnownTimeout(7200, "AWS API Gateway WebSocket", "maximum connection duration (2 h)", Cause.PROXY),
)


def timeouts_matching(lifetime_s: float) -> list[KnownTimeout]:
    """Known timeouts a connection lifetime of ``lifetime_s`` is consistent with.

    An idle timer fires at T after the last frame, so the lifetime of an idle connection is T
    plus the handshake and scheduling slack: accept T - 2% - 0.5 s .. T + 5% + 1 s, nearest first.
    """
    matches = [t for t in KNOWN_TIMEOUTS if t.seconds * 0.98 - 0.5 <= lifetime_s <= t.seconds * 1.05 + 1]
    return sorted(matches, key=lambda t: abs(t.seconds - lifetime_s))
