"""Proxy and load-balancer config lint: nginx, HAProxy, ingress-nginx, cloud LB presets.

Pure: text in, findings out. ``lint_paths`` reads files only through the ``read`` and ``glob``
callables it is given; ``read_file`` and ``glob_files`` are the local-disk ones the CLI, the
notebook step and the benchmark pass (or leave as the defaults). The checks live in one table,
``runbook.configs.checks.CHECKS``.
"""

from __future__ import annotations

import glob as _glob
import json
from collections.abc import Iterable

from runbook.configs import cloud, haproxy, ingress, nginx, nginx_parse
from runbook.configs.base import Files, Glob, LintResult, Read, finding, in_memory
from runbook.configs.checks import CHECKS, Severity
from runbook.observations import ConfigReport

__all__ = ["CHECKS", "Severity", "Files", "in_memory", "lint_paths", "read_file", "glob_files", "detect_kind",
           "EXPECTED"]

EXPECTED = "an nginx or HAProxy config, an ingress-nginx Ingress/ConfigMap YAML, or ALB attributes JSON"

# Files larger than this are not proxy configs (the biggest real nginx.conf trees are well under).
MAX_CONFIG_BYTES = 8 * 1024 * 1024


def read_file(path: str) -> str:
    """Read a config from local disk (the default ``read``): UTF-8, bad bytes replaced.

    Raises OSError for a missing or unreadable file and ValueError for a binary or huge one.
    """
    with open(path, "rb") as handle:
        data = handle.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ValueError(f"larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB: not a proxy config")
    if b"\0" in data[:65536]:
        raise ValueError("binary file (NUL bytes)")
    return data.decode("utf-8", errors="replace")


def glob_files(pattern: str) -> list[str]:
    """Local files matching ``pattern`` (the default ``glob``), sorted as nginx sorts includes."""
    return sorted(_glob.glob(pattern))


def lint_paths(paths: Iterable[str] | str, read: Read = read_file, glob: Glob = glob_files, *,
               heartbeat_s: float | None = None, target_path: str | None = None,
               lb_preset: str | None = None, lb_idle_timeout_s: float | None = None) -> ConfigReport:
    """Lint the proxy/LB configs at ``paths`` (paths or globs) and the LB named by the parameters.

    ``heartbeat_s``: the server's ping interval, when known: timeouts are compared with it.
    ``target_path``: the path of target_url, to find the WebSocket location. ``lb_preset`` /
    ``lb_idle_timeout_s``: a cloud LB or CDN in the path (see runbook.configs.cloud.PRESETS).
    Never raises for bad input: a file that does not parse gives findings; nothing usable at
    all gives ``error``. Unknown ``lb_preset`` raises ValueError (a bad parameter).
    """
    files = Files(read, glob)
    heartbeat_s = heartbeat_s or None
    if isinstance(paths, str):
        paths = [paths]
    results: list[LintResult] = []
    problems: list[str] = []
    names = _expand(list(paths), files, problems)
    results.extend(_lint_files(names, files, heartbeat_s, target_path, problems))
    if lb_preset or lb_idle_timeout_s:
        results.append(cloud.lint_preset(lb_preset or None, lb_idle_timeout_s or None, heartbeat_s))
    return _merge(results, problems, heartbeat_s)


def _expand(paths: list[str], files: Files, problems: list[str]) -> list[str]:
    names: list[str] = []
    for path in paths:
        if any(ch in path for ch in "*?["):
            matched = files.glob(path)
            if not matched:
                problems.append(f"{path}: no file matches this pattern")
            names.extend(name for name in matched if name not in names)
        elif path not in names:
            names.append(path)
    return names


def detect_kind(text: str) -> str | None:
    """"nginx", "haproxy", "ingress" (Kubernetes YAML), "alb-json", or None for anything else."""
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if data is not None:
            return "alb-json" if isinstance(data, dict) and isinstance(data.get("Attributes"), list) else None
    if ingress.looks_like(text):
        return "ingress"
    if haproxy.looks_like(text):
        return "haproxy"
    return "nginx"


def _lint_files(names: list[str], files: Files, heartbeat_s, target_path, problems: list[str]) -> list[LintResult]:
    texts: dict[str, str] = {}
    for name in names:
        try:
            text = files.read(name)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            problems.append(f"{name}: cannot read: {reason.lower()}")
            continue
        if not text.strip():
            problems.append(f"{name}: empty file; expected {EXPECTED}")
            continue
        if "\0" in text or text.count("\ufffd") > max(8, len(text) // 100):
            problems.append(f"{name}: binary file; expected {EXPECTED}")
            continue
        texts[name] = text
    trees = {}
    results: list[LintResult] = []
    for name, text in texts.items():
        kind = detect_kind(text)
        if kind == "nginx":
            tree = nginx_parse.parse_nginx(name, files, text)
            if tree.known_directives == 0:
                problems.append(f"{name}: not an nginx config (no nginx directive found); expected {EXPECTED}")
                continue
            trees[name] = tree
        elif kind == "haproxy":
            results.append(haproxy.lint_haproxy(name, text, heartbeat_s, target_path))
        elif kind == "ingress":
            result = ingress.lint_ingress(name, text, heartbeat_s)
            if result is None:
                problems.append(f"{name}: YAML without an Ingress or ingress-nginx ConfigMap; expected {EXPECTED}")
            else:
                results.append(result)
        elif kind == "alb-json":
            results.append(cloud.lint_alb_attributes(name, text, heartbeat_s))
        else:
            problems.append(f"{name}: JSON that is not ALB attributes (no \"Attributes\" list); expected {EXPECTED}")
    # A file another given nginx file includes is linted as part of that one, not again on its own.
    included = {path for root, tree in trees.items() for path in tree.texts if path != root}
    for name, tree in trees.items():
        if name not in included:
            results.append(nginx.lint_nginx(tree, heartbeat_s, target_path))
    return results


def _merge(results: list[LintResult], problems: list[str], heartbeat_s: float | None) -> ConfigReport:
    kinds = sorted({r.kind for r in results})
    files = [f for r in results for f in r.files]
    report = ConfigReport(files=list(dict.fromkeys(files)), kind=kinds[0] if len(kinds) == 1 else ("mixed" if kinds else None),
                          heartbeat_s=heartbeat_s)
    for result in results:
        report.findings.extend(result.findings)
        report.websocket_locations.extend(result.websocket_locations)
        report.path_timeouts.extend(result.path_timeouts)
    verdicts = [r.upgrade_forwarded for r in results if r.upgrade_forwarded is not None]
    report.upgrade_forwarded = None if not verdicts else all(verdicts)
    if not results:
        report.error = "; ".join(problems) if problems else f"no config given; expected {EXPECTED}"
    else:
        for problem in problems:
            path = problem.split(": ", 1)[0]
            report.findings.insert(0, finding("CFG004", path, None, problem))
    order = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
    report.findings.sort(key=lambda f: order[Severity(f.severity)])
    return report
