"""A ConfigReport as plain text (the CLI) and as the DESIGN.md JSON (``ws-runbook lint --json``)."""

from __future__ import annotations

from runbook.observations import ConfigReport


def to_json(report: ConfigReport) -> dict:
    """``{"findings": [{"file", "line", "severity", "check", "message", "fix"}]}`` (+ ``error`` when set)."""
    data: dict = {"findings": [{"file": f.file, "line": f.line, "severity": f.severity, "check": f.check,
                                "message": f.message, "fix": f.fix} for f in report.findings]}
    if report.error:
        data["error"] = report.error
    return data


def format_text(report: ConfigReport) -> str:
    """Findings one per line, then each distinct fix once, then what the lint saw on the path."""
    if report.error:
        return f"error: {report.error}"
    lines = [str(f) for f in report.findings] or ["no findings"]
    fixes = list(dict.fromkeys(f.fix for f in report.findings if f.fix))
    for number, diff in enumerate(fixes, 1):
        checks = ", ".join(sorted({f.check for f in report.findings if f.fix == diff}))
        lines += ["", f"fix {number} ({checks}):", diff.rstrip("\n")]
    if report.websocket_locations:
        lines += ["", "WebSocket locations:", *(f"  {label}" for label in report.websocket_locations)]
    if report.path_timeouts:
        lines += ["", "timeouts on the WebSocket path:", *(f"  {timeout}" for timeout in report.path_timeouts)]
    upgrade = {True: "forwarded in every WebSocket location", False: "NOT forwarded in at least one location",
               None: "cannot tell"}[report.upgrade_forwarded]
    lines += ["", f"upgrade: {upgrade}; heartbeat compared: {f'{report.heartbeat_s:g} s' if report.heartbeat_s else 'unknown'}",
              f"{report.count('error')} error(s), {report.count('warning')} warning(s), {report.count('info')} info"]
    return "\n".join(lines)
