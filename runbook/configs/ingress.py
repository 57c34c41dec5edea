"""Kubernetes ingress lint: ingress-nginx Ingress annotations and controller ConfigMap, AWS ALB ingresses.

ingress-nginx sends Upgrade/Connection for WebSockets by itself; what cuts them is nginx's
timeouts: annotation ``nginx.ingress.kubernetes.io/proxy-read-timeout`` (seconds) on the
Ingress, else the controller ConfigMap's ``proxy-read-timeout``, else 60 s. The ConfigMap's
``worker-shutdown-timeout`` (default 240 s) is how long old workers keep WebSockets after a
reload. An AWS Load Balancer Controller ingress states its idle timeout in the
``alb.ingress.kubernetes.io/load-balancer-attributes`` annotation (default 60 s).
"""

from __future__ import annotations

import re

import yaml

from runbook.configs import cloud
from runbook.configs.base import Edit, LintResult, finding, fix_timeout_s, indent_of, text_lines, timeout_verdict, unified_diff
from runbook.configs.nginx import nginx_seconds
from runbook.observations import PathTimeout

PREFIX = "nginx.ingress.kubernetes.io/"
# The NGINX Inc Ingress Controller (nginxinc/kubernetes-ingress) uses nginx.org/ annotations, nginx
# time values ("60s"), and forwards the upgrade only for services in nginx.org/websocket-services.
NGINX_INC_PREFIX = "nginx.org/"
ALB_ATTRIBUTES = "alb.ingress.kubernetes.io/load-balancer-attributes"
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_SHUTDOWN_S = 240.0
CONFIGMAP_KEYS = ("proxy-read-timeout", "proxy-send-timeout", "proxy-http-version", "worker-shutdown-timeout",
                  "upstream-keepalive-connections", "use-http2")


def looks_like(text: str) -> bool:
    """Whether ``text`` is Kubernetes YAML (an apiVersion and a kind at the top level)."""
    return bool(re.search(r"^apiVersion\s*:", text, re.MULTILINE) and re.search(r"^kind\s*:", text, re.MULTILINE))


class _Doc:
    """One YAML document as nodes, so keys keep their line numbers."""

    def __init__(self, node: yaml.MappingNode) -> None:
        self.node = node

    @staticmethod
    def get(node, key: str):
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == key:
                    return k, v
        return None, None

    def path(self, *keys: str):
        node, key_node = self.node, None
        for key in keys:
            key_node, node = self.get(node, key)
            if node is None:
                return None, None
        return key_node, node

    def scalar(self, *keys: str) -> str | None:
        _, node = self.path(*keys)
        return node.value if isinstance(node, yaml.ScalarNode) else None


def lint_ingress(path: str, text: str, heartbeat_s: float | None = None) -> LintResult | None:
    """Findings and timeouts of the Ingress / ConfigMap documents in ``text``; None if it has neither."""
    result = LintResult(kind="ingress", files=[path])
    try:
        docs = [_Doc(node) for node in yaml.compose_all(text) if isinstance(node, yaml.MappingNode)]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        result.findings.append(finding("CFG001", path, mark.line + 1 if mark else None, f"YAML does not parse: {getattr(exc, 'problem', None) or exc}"))
        return result
    configmaps = [d for d in docs if d.scalar("kind") == "ConfigMap" and _is_controller_configmap(d)]
    ingresses = [d for d in docs if d.scalar("kind") == "Ingress"]
    if not configmaps and not ingresses:
        return None
    global_values = {}
    for cm in configmaps:
        for key in CONFIGMAP_KEYS:
            key_node, node = cm.path("data", key)
            if isinstance(node, yaml.ScalarNode):
                global_values[key] = (node.value, key_node.start_mark.line + 1, cm)
    lines = list(text_lines(text))
    new_timeout = fix_timeout_s(heartbeat_s)
    if ingresses:
        for ing in ingresses:
            if _is_alb(ing):
                _lint_alb_ingress(result, path, ing, heartbeat_s)
                continue
            if _is_nginx_inc(ing):
                _lint_nginx_values(result, path, text, lines, ing, ("metadata", "annotations"), NGINX_INC_PREFIX, {}, heartbeat_s,
                                   new_timeout, nginx_inc=True)
                continue
            _lint_nginx_values(result, path, text, lines, ing, ("metadata", "annotations"), PREFIX, global_values, heartbeat_s, new_timeout)
    else:
        for cm in configmaps:
            _lint_nginx_values(result, path, text, lines, cm, ("data",), "", {}, heartbeat_s, new_timeout)
    if "worker-shutdown-timeout" in global_values:
        value, line, _ = global_values["worker-shutdown-timeout"]
        result.findings.append(finding("ING005", path, line, f"worker-shutdown-timeout {value}: after every reload, WebSockets are dropped "
                                                             "when the old workers stop"))
    elif configmaps:
        result.findings.append(finding("ING005", path, None, f"worker-shutdown-timeout is the {DEFAULT_SHUTDOWN_S:g} s default: after every "
                                                             "reload, WebSockets are dropped when the old workers stop"))
    return result


def _is_controller_configmap(doc: _Doc) -> bool:
    name = doc.scalar("metadata", "name") or ""
    _, data = doc.path("data")
    has_keys = isinstance(data, yaml.MappingNode) and any(k.value in CONFIGMAP_KEYS for k, _ in data.value)
    return has_keys or "ingress" in name or "nginx" in name


def _is_nginx_inc(doc: _Doc) -> bool:
    _, annotations = doc.path("metadata", "annotations")
    return isinstance(annotations, yaml.MappingNode) and any(k.value.startswith(NGINX_INC_PREFIX) for k, _ in annotations.value)


def _services(doc: _Doc) -> list[str]:
    """Backend service names of an Ingress (networking.k8s.io/v1 and the older serviceName form)."""
    names: list[str] = []
    data = yaml.safe_load(yaml.serialize(doc.node)) or {}
    spec = data.get("spec") or {}
    backends = [spec.get("defaultBackend") or spec.get("backend")]
    for rule in spec.get("rules") or []:
        for item in ((rule or {}).get("http") or {}).get("paths") or []:
            backends.append((item or {}).get("backend"))
    for backend in backends:
        if isinstance(backend, dict):
            name = (backend.get("service") or {}).get("name") if isinstance(backend.get("service"), dict) else backend.get("serviceName")
            if name and name not in names:
                names.append(str(name))
    return names


def _is_alb(doc: _Doc) -> bool:
    cls = doc.scalar("spec", "ingressClassName") or doc.scalar("metadata", "annotations", "kubernetes.io/ingress.class") or ""
    _, annotations = doc.path("metadata", "annotations")
    alb_annotations = isinstance(annotations, yaml.MappingNode) and any(k.value.startswith("alb.ingress.kubernetes.io/") for k, _ in annotations.value)
    return cls == "alb" or alb_annotations


def _seconds(value: str) -> float | None:
    """ingress-nginx timeouts are whole seconds; nginx.org ones nginx times ("60s", "1h")."""
    value = str(value).strip().strip('"')
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    return nginx_seconds(value)


def _lint_nginx_values(result: LintResult, path: str, text: str, lines: list[str], doc: _Doc, where: tuple[str, ...],
                       prefix: str, global_values: dict, heartbeat_s: float | None, new_timeout: int, nginx_inc: bool = False) -> None:
    """Timeouts and HTTP version of one Ingress (annotations over the ConfigMap) or of the ConfigMap itself;
    for an NGINX Inc ingress (``nginx_inc``), its nginx.org/websocket-services too.

    All findings of one document share one diff that sets every key they need.
    """
    name = f"{doc.scalar('kind')} {doc.scalar('metadata', 'name') or '(unnamed)'}"
    doc_line = doc.node.start_mark.line + 1
    controller = "the NGINX Inc Ingress Controller" if nginx_inc else "ingress-nginx"
    pending: list[tuple[str, int, str]] = []
    sets: list[tuple[str, str, int | None]] = []  # (key, value, line of the key in this document or None)
    upgrade_ok = True
    if nginx_inc:
        services = _services(doc)
        ws_line, ws_node = doc.path(*where, NGINX_INC_PREFIX + "websocket-services")
        listed = [s.strip() for s in ws_node.value.split(",")] if isinstance(ws_node, yaml.ScalarNode) else []
        missing = [s for s in services if s not in listed]
        if missing:
            upgrade_ok = False
            line = ws_line.start_mark.line + 1 if ws_line is not None else doc_line
            pending.append(("ING006", line, f"{name}: service {', '.join(missing)} not in nginx.org/websocket-services: "
                                            "the WebSocket upgrade is not forwarded"))
            sets.append((NGINX_INC_PREFIX + "websocket-services", '"' + ",".join([*[s for s in listed if s], *missing]) + '"',
                         line if ws_line is not None else None))
        result.websocket_locations.append(f"{path}:{doc_line} {name} (matched by {controller}: services {', '.join(services) or 'none'})")
    else:
        result.websocket_locations.append(f"{path}:{doc_line} {name} (matched by ingress-nginx proxies every path with WebSocket upgrades)")
    for key, below, default_check in (("proxy-read-timeout", "ING001", "ING002"), ("proxy-send-timeout", "ING003", None)):
        value, line, own = _value(doc, where, prefix + key, key, global_values)
        seconds = DEFAULT_TIMEOUT_S if value is None else _seconds(value)
        origin = "default" if value is None else f"line {line}"
        if seconds is None:
            pending.append(("CFG005", line, f"{name}: {prefix + key} {value!r} is not a number of seconds"))
            sets.append((prefix + key, f'"{new_timeout}s"' if nginx_inc else f'"{new_timeout}"', line if own else None))
            continue
        if key == "proxy-read-timeout":
            result.path_timeouts.append(PathTimeout("nginx-ingress" if nginx_inc else "ingress-nginx", key, seconds, path if value is not None else None,
                                                    line if value is not None else None, value is None, "idle"))
        if heartbeat_s is not None and seconds <= heartbeat_s:
            check = below
        elif heartbeat_s is None and default_check and seconds <= DEFAULT_TIMEOUT_S:
            check = default_check
        else:
            continue
        pending.append((check, line or doc_line,
                        f"{name}: {key} is {timeout_verdict(seconds, heartbeat_s)} ({origin}): idle WebSockets are cut "
                        + ("before the next ping" if heartbeat_s else "after that long unless the server pings more often")))
        sets.append((prefix + key, f'"{new_timeout}s"' if nginx_inc else f'"{new_timeout}"', line if own else None))
    value, line, own = _value(doc, where, prefix + "proxy-http-version", "proxy-http-version", global_values)
    if value is not None and value.strip('"') == "1.0":
        upgrade_ok = False
        pending.append(("ING004", line, f"{name}: proxy-http-version is 1.0: the WebSocket upgrade fails"))
        sets.append((prefix + "proxy-http-version", '"1.1"', line if own else None))
    result.upgrade_forwarded = upgrade_ok and result.upgrade_forwarded is not False
    diff = unified_diff(path, text, _mapping_edits(lines, doc, where, sets)) if sets else None
    result.findings.extend(finding(check, path, line, message, fix=diff) for check, line, message in pending)


def _value(doc: _Doc, where: tuple[str, ...], key: str, global_key: str, global_values: dict):
    """(value, line, set in this document) of ``key``, falling back to the controller ConfigMap."""
    key_node, node = doc.path(*where, key)
    if isinstance(node, yaml.ScalarNode):
        return node.value, key_node.start_mark.line + 1, True
    if global_key in global_values:
        value, line, _ = global_values[global_key]
        return value, line, False
    return None, None, False


def _mapping_edits(lines: list[str], doc: _Doc, where: tuple[str, ...], sets: list[tuple[str, str, int | None]]) -> list[Edit]:
    """Edits setting each ``key: value`` in the document's mapping at ``where`` (created when missing)."""
    edits: list[Edit] = []
    added: list[tuple[str, str]] = []
    for key, value, own_line in sets:
        original = lines[own_line - 1] if own_line else ""
        if own_line and original.lstrip().startswith((key, f'"{key}"')):
            edits.append(Edit(own_line - 1, own_line, (f"{indent_of(original)}{key}: {value}",)))
        elif not own_line:
            added.append((key, value))
    if not added:
        return edits
    key_node, mapping = doc.path(*where)
    if isinstance(mapping, yaml.MappingNode) and mapping.value:
        indent = " " * mapping.value[0][0].start_mark.column
        after = key_node.start_mark.line + 1
        edits.append(Edit(after, after, tuple(f"{indent}{key}: {value}" for key, value in added)))
        return edits
    if mapping is not None:  # present but empty or not a mapping ("annotations: {}"): a diff would have to guess
        return edits
    parent_key, parent = doc.path(*where[:-1]) if len(where) > 1 else (None, doc.node)
    if not isinstance(parent, yaml.MappingNode) or not parent.value:
        return edits
    indent = " " * parent.value[0][0].start_mark.column
    after = parent_key.start_mark.line + 1 if parent_key is not None else doc.node.start_mark.line + 1
    edits.append(Edit(after, after, (f"{indent}{where[-1]}:", *(f"{indent}  {key}: {value}" for key, value in added))))
    return edits


def _lint_alb_ingress(result: LintResult, path: str, doc: _Doc, heartbeat_s: float | None) -> None:
    key_node, node = doc.path("metadata", "annotations", ALB_ATTRIBUTES)
    preset = cloud.PRESETS["aws-alb"]
    name = f"Ingress {doc.scalar('metadata', 'name') or '(unnamed)'}"
    result.websocket_locations.append(f"{path}:{doc.node.start_mark.line + 1} {name} (matched by an AWS ALB ingress)")
    if isinstance(node, yaml.ScalarNode):
        match = re.search(r"idle_timeout\.timeout_seconds=(\d+)", node.value)
        if match:
            cloud.check_idle(result, preset, float(match.group(1)), path, is_default=False, heartbeat_s=heartbeat_s,
                        line=key_node.start_mark.line + 1, file=path)
            return
    cloud.check_idle(result, preset, preset.idle_s, path, is_default=True, heartbeat_s=heartbeat_s,
                line=doc.node.start_mark.line + 1, file=path)
