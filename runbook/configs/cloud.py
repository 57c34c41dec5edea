"""Cloud load balancers and CDNs whose config is not a file at hand: presets, and ALB attributes JSON.

Preset timeouts come from reference/facts.md ("Default timeouts that silently kill idle or
long-lived WebSockets"); a value marked (?) there is marked uncertain here too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from runbook.configs.base import LintResult, finding, timeout_verdict
from runbook.observations import PathTimeout


@dataclass(frozen=True)
class Preset:
    name: str
    component: str
    label: str
    idle_s: float | None  # cut after this much silence (None: no idle timeout)
    lifetime_s: float | None = None  # cut at this age even with traffic
    setting: str = "idle timeout"
    how_to_change: str = ""
    uncertain: bool = False


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("aws-alb", "aws-alb", "AWS Application Load Balancer", 60,
           how_to_change="aws elbv2 modify-load-balancer-attributes --attributes Key=idle_timeout.timeout_seconds,Value=3600"),
    Preset("aws-elb", "aws-elb", "AWS Classic Load Balancer", 60,
           how_to_change="aws elb modify-load-balancer-attributes (ConnectionSettings IdleTimeout)"),
    Preset("aws-nlb", "aws-nlb", "AWS Network Load Balancer (TCP idle)", 350,
           how_to_change="keep traffic (pings) more often than every 350 s; NLB TCP idle timeout is configurable per listener"),
    Preset("aws-api-gateway", "aws-api-gateway", "AWS API Gateway WebSocket API", 600, lifetime_s=7200,
           how_to_change="fixed by AWS: ping more often than every 10 min and reconnect before 2 h"),
    Preset("gcp-https-lb", "gcp-https-lb", "GCP external HTTP(S) load balancer", None, lifetime_s=30,
           setting="backend service timeout (timeoutSec)",
           how_to_change="BackendConfig spec.timeoutSec (GKE) or gcloud compute backend-services update --timeout"),
    Preset("azure-front-door", "azure-front-door", "Azure Front Door", 300, lifetime_s=4 * 3600,
           how_to_change="ping more often than every 5 min; reconnect before 4 h"),
    Preset("azure-lb", "azure-lb", "Azure Load Balancer / SNAT", 240,
           how_to_change="idleTimeoutInMinutes on the LB rule and enableTcpReset"),
    Preset("cloudflare", "cloudflare", "Cloudflare proxy", 100, uncertain=True,
           how_to_change="ping more often than every 100 s"),
    Preset("heroku", "heroku", "Heroku router (55 s rolling window)", 55,
           how_to_change="send data (a ping) more often than every 55 s"),
)}


def check_preset_name(name: str) -> None:
    """Raise ValueError naming the known presets unless ``name`` is one of them."""
    if name not in PRESETS:
        raise ValueError(f"unknown lb_preset {name!r}; known presets: {', '.join(PRESETS)}")


def lint_preset(name: str | None, idle_s: float | None, heartbeat_s: float | None) -> LintResult:
    """The timeouts of a named preset (``idle_s`` overrides its idle value) or of a bare idle timeout."""
    if name is not None:
        check_preset_name(name)
        preset = PRESETS[name]
    else:
        preset = Preset("lb", "lb", "load balancer", None)
    where = f"lb_preset {name}" if name else "lb_idle_timeout_s"
    result = LintResult(kind="lb", files=[])
    if preset.lifetime_s is not None and preset.idle_s is None and idle_s is not None:
        # GCP's backend timeout is the one number; a given value replaces the default cap.
        _lifetime(result, preset, idle_s, where, is_default=False)
        return result
    idle = idle_s if idle_s is not None else preset.idle_s
    if idle is not None:
        check_idle(result, preset, idle, where, is_default=idle_s is None, heartbeat_s=heartbeat_s, line=None)
    if preset.lifetime_s is not None:
        _lifetime(result, preset, preset.lifetime_s, where, is_default=True)
    return result


def check_idle(result: LintResult, preset: Preset, seconds: float, where: str, *, is_default: bool,
          heartbeat_s: float | None, line: int | None, file: str | None = None) -> None:
    origin = "default" + (", uncertain" if preset.uncertain else "") if is_default else "given"
    result.path_timeouts.append(PathTimeout(preset.component, preset.setting, seconds, file, line, is_default, "idle"))
    advice = f" ({preset.how_to_change})" if preset.how_to_change else ""
    if heartbeat_s is not None and seconds <= heartbeat_s:
        result.findings.append(finding("LB001", file or where, line,
                                       f"{preset.label} {preset.setting} is {timeout_verdict(seconds, heartbeat_s)} ({origin}): "
                                       f"idle WebSockets are cut before the next ping{advice}"))
    elif heartbeat_s is None:
        result.findings.append(finding("LB002", file or where, line,
                                       f"{preset.label} {preset.setting} is {seconds:g} s ({origin}): the server must ping "
                                       f"more often than that (give heartbeat_interval_s to check){advice}"))


def _lifetime(result: LintResult, preset: Preset, seconds: float, where: str, *, is_default: bool) -> None:
    result.path_timeouts.append(PathTimeout(preset.component, "maximum connection lifetime" if preset.idle_s else preset.setting,
                                            seconds, None, None, is_default, "lifetime"))
    origin = "default" if is_default else "given"
    result.findings.append(finding("LB003", where, None,
                                   f"{preset.label} closes every connection at {seconds:g} s ({origin}) even with traffic"
                                   + (f" ({preset.how_to_change})" if preset.how_to_change else "")))


def lint_alb_attributes(path: str, text: str, heartbeat_s: float | None) -> LintResult:
    """``aws elbv2 describe-load-balancer-attributes`` output: the idle timeout it states."""
    result = LintResult(kind="lb", files=[path])
    attributes = {a.get("Key"): a.get("Value") for a in json.loads(text).get("Attributes", []) if isinstance(a, dict)}
    key = "idle_timeout.timeout_seconds"
    line = next((i for i, row in enumerate(text.splitlines(), 1) if f'"{key}"' in row), None)
    preset = PRESETS["aws-alb"]
    if key not in attributes:
        check_idle(result, preset, preset.idle_s, path, is_default=True, heartbeat_s=heartbeat_s, line=None, file=path)
        return result
    try:
        seconds = float(attributes[key])
    except (TypeError, ValueError):
        result.findings.append(finding("CFG005", path, line, f"{key} is {attributes[key]!r}, not a number of seconds"))
        return result
    check_idle(result, preset, seconds, path, is_default=False, heartbeat_s=heartbeat_s, line=line, file=path)
    return result
