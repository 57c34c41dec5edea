"""The runbook's parameters: one spec shared by the notebook's parameters cell and the CLI.

Values arrive from papermill ``-p`` (strings guessed into ints/bools), from ``-y``/``-f`` YAML, or
from the notebook itself. ``validate_params`` turns any of those into clean Python values or
raises ``ParameterError`` naming the parameter and what to fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from runbook.errors import ParameterError

# Kept free of pandas (runbook.observations imports it): `ws-runbook run` validates its parameters
# in a process that never needs pandas, whose import alone took 0.2 s of every run.
NO_HEARTBEAT = -1.0  # heartbeat_interval_s of a server that sends no pings at all


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: type
    default: Any
    help: str

    def cell_line(self) -> str:
        """The ``name: type = default  # help`` line papermill's --help-notebook reads."""
        default = json.dumps(self.default) if isinstance(self.default, (str, list)) else repr(self.default)
        return f"{self.name}: {self.type.__name__} = {default}  # {self.help}"


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("target_url", str, "", "ws:// or wss:// URL as users reach it (through proxies)"),
    ParamSpec("direct_url", str, "", "the same service bypassing proxies/LBs, to compare"),
    ParamSpec("close_logs", list, [], "close-log paths or globs, any supported format"),
    ParamSpec("log_format", str, "", "force a log format: one format id, or {path or glob: format id} ('': detect)"),
    ParamSpec("log_timezone", str, "UTC", "time zone of log times that carry none: UTC, +02:00 or Europe/Berlin"),
    ParamSpec("proxy_config", str, "", "nginx or HAProxy config file in front of the service"),
    ParamSpec("heartbeat_interval_s", float, 0.0, "the server's ping interval, seconds (0: unknown, -1: it sends none)"),
    ParamSpec("lb_preset", str, "", "cloud LB/CDN in the path, e.g. aws-alb, gcp-https-lb, cloudflare ('': none)"),
    ParamSpec("lb_idle_timeout_s", float, 0.0, "idle timeout of a load balancer in the path, seconds (0: none)"),
    ParamSpec("server_port", int, 0, "local server port to sample TCP socket states (0: none)"),
    ParamSpec("server_pid", int, 0, "local server process to sample memory/fds (0: none)"),
    # 75 s outlasts the most common idle cut (nginx/ALB 60 s) with room to see it happen.
    ParamSpec("probe_seconds", float, 75.0, "time budget of the live probes, seconds (3-3600)"),
    ParamSpec("connections", int, 20, "concurrent connections of the churn probe"),
    ParamSpec("header_env", list, [], "env var names holding 'Name: value' headers to send"),
    ParamSpec("insecure_tls", bool, False, "skip TLS certificate verification of probes"),
    ParamSpec("incident_id", str, "", "incident id for the report (default: from the clock)"),
    ParamSpec("output_dir", str, "reports", "folder for report.ipynb, report.html, diagnosis.json"),
    ParamSpec("events", list, [], "deploys/reloads: [{'ts': ISO time, 'label': ...}], 'TIME label' strings or files"),
    ParamSpec("baseline", str, "", "a previous run's output folder: compare before/after the fix"),
    ParamSpec("dask_scheduler", str, "", "read fleet-size logs on Dask: scheduler address (tcp://host:8786) or 'local'"),
)
PARAMS_BY_NAME = {spec.name: spec for spec in PARAMS}

# Inputs whose presence switches the runbook off the bundled sample incident.
INPUT_PARAMS = ("target_url", "direct_url", "close_logs", "proxy_config", "server_port", "server_pid", "lb_preset",
                "lb_idle_timeout_s")

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off", ""}


def defaults() -> dict[str, Any]:
    return {spec.name: _copy(spec.default) for spec in PARAMS}


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def validate_params(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Return every parameter with a clean value; raise ParameterError on the first bad one.

    Unknown names are errors (a typo must not silently run the runbook on the sample incident).
    """
    unknown = sorted(set(raw) - set(PARAMS_BY_NAME))
    if unknown:
        known = ", ".join(PARAMS_BY_NAME)
        raise ParameterError(unknown[0], f"unknown parameter; known parameters are: {known}")
    values = defaults()
    for name, value in raw.items():
        values[name] = _coerce(PARAMS_BY_NAME[name], value)
    for name in ("target_url", "direct_url"):
        if values[name]:
            check_ws_url(name, values[name])
    for name in ("server_port", "server_pid"):
        if values[name] < 0:
            raise ParameterError(name, f"must be 0 (not given) or a positive number, got {values[name]}")
    if values["server_port"] > 65535:
        raise ParameterError("server_port", f"must be at most 65535, got {values['server_port']}")
    if not 3 <= values["probe_seconds"] <= 3600:
        raise ParameterError("probe_seconds", "must be between 3 and 3600 seconds")
    if not 1 <= values["connections"] <= 10_000:
        raise ParameterError("connections", "must be between 1 and 10000")
    if not values["output_dir"].strip():
        raise ParameterError("output_dir", "must name a folder")
    if values["heartbeat_interval_s"] == NO_HEARTBEAT:
        pass  # the server sends no pings: evidence in its own right
    elif not 0 <= values["heartbeat_interval_s"] <= 86400:
        raise ParameterError("heartbeat_interval_s", "must be 0 (unknown), -1 (the server sends no pings) or a number "
                             f"of seconds up to 86400, got {values['heartbeat_interval_s']:g}")
    for name in ("lb_idle_timeout_s",):
        if not 0 <= values[name] <= 86400:
            raise ParameterError(name, f"must be 0 (not given) or a number of seconds up to 86400, got {values[name]:g}")
    scheduler = values["dask_scheduler"].strip()
    if scheduler and scheduler != "local" and not re.fullmatch(r"(tcp|tls|inproc|ucx)://[^\s/]+(:\d+)?/?", scheduler):
        raise ParameterError("dask_scheduler", f"must be a Dask scheduler address such as tcp://10.0.0.5:8786, or 'local' "
                             f"for a cluster on this machine; got {scheduler!r}")
    values["dask_scheduler"] = scheduler
    if values["log_timezone"] != "UTC":
        from runbook.logs.lines import parse_timezone

        parse_timezone(values["log_timezone"])  # raises ParameterError naming log_timezone
    if values["lb_preset"]:
        from runbook.configs.cloud import PRESETS

        if values["lb_preset"] not in PRESETS:
            raise ParameterError("lb_preset", f"unknown preset {values['lb_preset']!r}; known presets: {', '.join(PRESETS)}")
    return values


def has_inputs(values: Mapping[str, Any]) -> bool:
    """Whether the user gave any input at all (else the runbook shows the bundled sample)."""
    return any(values.get(name) for name in INPUT_PARAMS)


def _coerce(spec: ParamSpec, value: Any) -> Any:
    if value is None:
        return _copy(spec.default)
    if spec.name == "events":
        return _coerce_events(value)
    if spec.name == "log_format":
        return _coerce_log_format(value)
    if spec.type is list:
        return _coerce_list(spec.name, value)
    if spec.type is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ParameterError(spec.name, f"must be true or false, got {value!r}")
    if spec.type is int:
        if isinstance(value, bool) or not _is_integral(value):
            raise ParameterError(spec.name, f"must be a whole number, got {value!r}")
        return int(str(value).strip()) if isinstance(value, str) else int(value)
    if spec.type is float:
        try:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        except (TypeError, ValueError):
            raise ParameterError(spec.name, f"must be a number of seconds, got {value!r}") from None
    if not isinstance(value, str):
        # papermill -p guesses types: `-p incident_id 1234` arrives as an int.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ParameterError(spec.name, f"must be a string, got {type(value).__name__} {value!r}")
    return value.strip()


def _is_integral(value: Any) -> bool:
    if isinstance(value, int):
        return True
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, str) and value.strip().lstrip("-").isdigit()


def _coerce_list(name: str, value: Any) -> list[str]:
    """A real list, a JSON list string (`-p close_logs '["a.log","b.log"]'`) or one path/glob."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ParameterError(name, f"looks like a JSON list but does not parse: {exc.msg}") from None
        else:
            return [text]
    if isinstance(value, (list, tuple)):
        items = []
        for item in value:
            if not isinstance(item, str):
                raise ParameterError(name, f"items must be strings, got {type(item).__name__} {item!r}")
            if item.strip():
                items.append(item.strip())
        return items
    raise ParameterError(name, f"must be a list of strings, a JSON list or one value, got {value!r}")


def _coerce_log_format(value: Any) -> str | dict[str, str]:
    """One format id for every file, or a mapping of path/glob to format id (a dict, or a JSON
    object string from ``-p``); each id must be a known format."""
    from runbook.logs.registry import FORMATS

    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ParameterError("log_format", f"looks like a JSON object but does not parse: {exc.msg}") from None
    if isinstance(value, str):
        ids = [value.strip()] if value.strip() else []
    elif isinstance(value, Mapping):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ParameterError("log_format", f"a mapping needs path/glob strings to format id strings, got {dict(value)!r}")
        value = {k.strip(): v.strip() for k, v in value.items()}
        ids = list(value.values())
    else:
        raise ParameterError("log_format", f"must be a format id or a mapping of path/glob to format id, got {value!r}")
    for format_id in ids:
        if format_id not in FORMATS:
            raise ParameterError("log_format", f"unknown log format {format_id!r}; known formats: {', '.join(FORMATS)}")
    return value.strip() if isinstance(value, str) else value


def _coerce_events(value: Any) -> list[Any]:
    """Events as ``{"ts": ISO time, "label": text}`` dicts; strings are "TIME label" or a file path.

    Inline events are checked here (a time that does not parse names the event); files are read
    by the runbook's events step, which names a file it cannot use.
    """
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ParameterError("events", f"looks like a JSON list but does not parse: {exc.msg}") from None
    items = value if isinstance(value, (list, tuple)) else [value]
    events: list[Any] = []
    for item in items:
        if isinstance(item, dict):
            if "ts" not in item:
                raise ParameterError("events", f"an event needs 'ts' (and 'label'), got {item!r}")
            events.append({"ts": _event_time(item["ts"], item), "label": str(item.get("label", "event"))})
        elif isinstance(item, str) and item.strip():
            first, _, rest = item.strip().partition(" ")
            try:
                events.append({"ts": _event_time(first, item), "label": rest.strip() or "event"})
            except ParameterError:
                events.append(item.strip())  # not "TIME label": a file of events
        elif not (isinstance(item, str) and not item.strip()):
            raise ParameterError("events", f"items are {{'ts', 'label'}} mappings or strings, got {item!r}")
    return events


def _event_time(value: Any, item: Any) -> str:
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ParameterError("events", f"the time of {item!r} does not parse; use ISO 8601, e.g. 2026-11-28T03:10:00Z") from None
    if ts is pd.NaT:
        raise ParameterError("events", f"the time of {item!r} is empty")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.isoformat()


def check_ws_url(name: str, url: str) -> None:
    """Raise ParameterError naming ``name`` unless ``url`` is ws:// or wss:// with a host and a valid port."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "Invalid IPv6 URL": an unclosed [ in the host
        raise ParameterError(name, f"is not a valid URL ({exc}); an IPv6 host is written ws://[::1]:8080/") from None
    if parts.scheme not in ("ws", "wss"):
        hint = ""
        if parts.scheme in ("http", "https"):
            hint = f" (did you mean {'wss' if parts.scheme == 'https' else 'ws'}://{url.split('://', 1)[1]}?)"
        raise ParameterError(name, f"must start with ws:// or wss://{hint}")
    try:
        port = parts.port
    except ValueError:
        raise ParameterError(name, "has a port that is not a number between 0 and 65535") from None
    if not parts.hostname:
        raise ParameterError(name, "has no host name")
    if port == 0:
        raise ParameterError(name, "has port 0")
