"""nginx lint: find the locations that carry WebSockets and check what nginx does to them.

Inheritance follows ngx_http_proxy_module: a directive set at ``http`` applies to every server
and location below it unless a lower level sets it again; ``proxy_set_header`` is inherited only
by a level that sets no ``proxy_set_header`` of its own (one line there drops all inherited ones).
Defaults (nginx docs): ``proxy_http_version 1.0``, ``proxy_read_timeout 60s``,
``proxy_send_timeout 60s``, ``proxy_buffering on``, headers ``Host $proxy_host`` and
``Connection close``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from runbook.configs.base import Edit, LintResult, finding, fix_timeout_s, indent_of, text_lines, timeout_verdict, unified_diff
from runbook.configs.nginx_parse import NginxTree, Stmt, walk
from runbook.observations import ConfigFinding, PathTimeout

DEFAULTS = {"proxy_http_version": "1.0", "proxy_read_timeout": "60s", "proxy_send_timeout": "60s",
            "proxy_buffering": "on"}
INHERITED = tuple(DEFAULTS)
DEFAULT_TIMEOUT_S = 60.0  # proxy_read_timeout / proxy_send_timeout when not set

# Paths WebSocket endpoints commonly live under (Socket.IO, SockJS, Rails ActionCable, SignalR,
# GraphQL subscriptions, plain /ws).
COMMON_WS_PATHS = re.compile(
    r"(?<![a-z0-9_-])(ws|wss|websockets?|socket\.io|sockjs(-node)?|cable|signalr|hubs?|graphql-ws|subscriptions|realtime)(?![a-z0-9_-])",
    re.IGNORECASE)

_TIME_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|M|y)?")
_TIME_UNITS = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000, "y": 31536000}


def nginx_seconds(value: str) -> float | None:
    """An nginx time value (``90``, ``90s``, ``1m30s``, ``500ms``) in seconds; None if invalid."""
    if not value or not re.fullmatch(r"(\d+(ms|s|m|h|d|w|M|y)?)+", value):
        return None
    return sum(int(n) * _TIME_UNITS[u or None] for n, u in _TIME_PART.findall(value))


@dataclass
class Level:
    """One block of the http > server > location chain and what it sets directly."""

    stmt: Stmt | None  # None for a fragment's implicit top level
    scalars: dict[str, Stmt] = field(default_factory=dict)
    headers: list[Stmt] = field(default_factory=list)
    sets: dict[str, str] = field(default_factory=dict)  # set $var value;
    proxy_pass: Stmt | None = None


def _level(stmt: Stmt | None, children: list[Stmt]) -> Level:
    level = Level(stmt)
    for child in children:
        if child.name in INHERITED and child.args:
            level.scalars[child.name] = child
        elif child.name == "proxy_set_header" and len(child.args) >= 2:
            level.headers.append(child)
        elif child.name == "proxy_set_header" and len(child.args) == 1:
            level.headers.append(Stmt(child.name, [child.args[0], ""], child.file, child.line))
        elif child.name == "set" and len(child.args) >= 2:
            level.sets[child.args[0]] = child.args[1]
        elif child.name == "proxy_pass" and child.args:
            level.proxy_pass = child
    return level


@dataclass
class Location:
    stmt: Stmt
    chain: list[Level]  # http, server, enclosing locations, this location (outermost first)
    server: Stmt | None

    @property
    def own(self) -> Level:
        return self.chain[-1]

    @property
    def pattern(self) -> str:
        return " ".join(self.stmt.args)

    def setting(self, name: str) -> tuple[str, Stmt | None]:
        """The effective value of an inherited scalar and the statement that set it (None: default)."""
        for level in reversed(self.chain):
            if name in level.scalars:
                return level.scalars[name].args[0], level.scalars[name]
        return DEFAULTS[name], None

    def headers(self) -> tuple[list[Stmt], Level | None]:
        """The proxy_set_header lines in force and the level they come from (nearest that sets any)."""
        for level in reversed(self.chain):
            if level.headers:
                return level.headers, level
        return [], None

    def header(self, name: str) -> Stmt | None:
        found = [h for h in self.headers()[0] if h.args[0].lower() == name.lower()]
        return found[-1] if found else None

    def variable(self, name: str) -> str | None:
        for level in reversed(self.chain):
            if name in level.sets:
                return level.sets[name]
        return None


@dataclass
class Map:
    stmt: Stmt
    source: str
    target: str
    default: str
    entries: list[tuple[str, str]]  # (key, value) in order; regex keys start with ~

    def lookup(self, value: str) -> str:
        """What nginx's map gives for ``value``: exact keys first, then regexes in order, else default."""
        for key, result in self.entries:
            if not key.startswith("~") and key.lower() == value.lower():
                return result
        for key, result in self.entries:
            if key.startswith("~*") and re.search(key[2:], value, re.IGNORECASE):
                return result
            if key.startswith("~") and not key.startswith("~*") and re.search(key[1:], value):
                return result
        return self.default


@dataclass
class NginxModel:
    locations: list[Location]
    maps: dict[str, Map]
    upstreams: dict[str, Stmt]  # name -> upstream block


def build_model(tree: NginxTree) -> NginxModel:
    """Locations with their inheritance chains, maps and upstreams of a parsed config."""
    locations: list[Location] = []
    maps: dict[str, Map] = {}
    upstreams: dict[str, Stmt] = {}
    if tree.context == ():
        http_blocks = [s for s in tree.stmts if s.name == "http" and s.block is not None]
        roots = [(_level(s, s.block), s.block) for s in http_blocks]
    else:
        roots = [(_level(None, tree.stmts), tree.stmts)]
    for http_level, children in roots:
        for stmt in walk(children):
            if stmt.name == "map" and stmt.block is not None and len(stmt.args) == 2:
                maps[stmt.args[1]] = _map(stmt)
            elif stmt.name == "upstream" and stmt.block is not None and stmt.args:
                upstreams[stmt.args[0]] = stmt
        if tree.context == ("http", "server"):
            _collect_locations(children, [http_level], None, locations)
            continue
        for server in (s for s in children if s.name == "server" and s.block is not None):
            _collect_locations(server.block, [http_level, _level(server, server.block)], server, locations)
    return NginxModel(locations, maps, upstreams)


def _collect_locations(children: list[Stmt], chain: list[Level], server: Stmt | None, out: list[Location]) -> None:
    for stmt in children:
        if stmt.name == "location" and stmt.block is not None:
            level = _level(stmt, stmt.block)
            # directives inside "if" blocks of the location apply to it too (proxy_pass in if)
            for inner in stmt.block:
                if inner.name == "if" and inner.block:
                    level.proxy_pass = level.proxy_pass or _level(inner, inner.block).proxy_pass
            out.append(Location(stmt, [*chain, level], server))
            _collect_locations(stmt.block, [*chain, level], server, out)


def _map(stmt: Stmt) -> Map:
    default, entries = "", []
    for entry in stmt.block or []:
        key, value = entry.name, entry.args[0] if entry.args else ""
        if key == "default":
            default = value
        elif key in ("hostnames", "volatile", "include"):
            continue
        else:
            entries.append((key.removeprefix("\\"), value))
    return Map(stmt, stmt.args[0], stmt.args[1], default, entries)


# --- which locations carry WebSockets ------------------------------------------------------------

def _uses_http_upgrade(location: Location, maps: dict[str, Map]) -> bool:
    for header in location.headers()[0]:
        value = header.args[1]
        if "$http_upgrade" in value:
            return True
        var = value if value.startswith("$") else None
        if var and var in maps and maps[var].source == "$http_upgrade":
            return True
    return False


def _nginx_pick(locations: list[Location], path: str) -> Location | None:
    """The top-level location of one server nginx would choose for ``path`` (exact, ^~/longest prefix, regex)."""
    exact = [loc for loc in locations if len(loc.stmt.args) == 2 and loc.stmt.args[0] == "=" and loc.stmt.args[1] == path]
    if exact:
        return exact[0]
    prefixes = [(loc.stmt.args[-1], loc) for loc in locations
                if (len(loc.stmt.args) == 1 or loc.stmt.args[0] == "^~") and path.startswith(loc.stmt.args[-1])]
    best = max(prefixes, key=lambda item: len(item[0]), default=(None, None))[1]
    if best is not None and best.stmt.args[0] == "^~":
        return best
    for loc in locations:
        if len(loc.stmt.args) == 2 and loc.stmt.args[0] in ("~", "~*"):
            flags = re.IGNORECASE if loc.stmt.args[0] == "~*" else 0
            try:
                if re.search(loc.stmt.args[1], path, flags):
                    return loc
            except re.error:
                continue
    return best


def websocket_locations(model: NginxModel, target_path: str | None) -> list[tuple[Location, str]]:
    """The proxying locations that carry WebSockets, each with the rule that matched it.

    Rules in order: the location nginx picks for target_url's path; any location forwarding
    $http_upgrade; without a target path, common WebSocket paths; when none of these matched,
    every proxy_pass location.
    """
    proxying = [loc for loc in model.locations if loc.own.proxy_pass is not None]
    picked: dict[int, str] = {}
    if target_path:
        by_server: dict[int, list[Location]] = {}
        for loc in model.locations:
            if len(loc.chain) == (2 if loc.server is not None else 1) + 1:  # top-level locations only
                by_server.setdefault(id(loc.server), []).append(loc)
        for locs in by_server.values():
            chosen = _nginx_pick(locs, target_path)
            if chosen is not None and chosen.own.proxy_pass is not None:
                picked[id(chosen)] = f"the path of target_url ({target_path})"
    for loc in proxying:
        if id(loc) in picked:
            continue
        if _uses_http_upgrade(loc, model.maps):
            picked[id(loc)] = "forwards $http_upgrade"
        elif not target_path and COMMON_WS_PATHS.search(loc.pattern.replace("\\", "")):
            picked[id(loc)] = f"common WebSocket path {loc.pattern}"
    if not picked:
        for loc in proxying:
            picked[id(loc)] = "proxies (proxy_pass) and nothing narrows the WebSocket path"
    return [(loc, picked[id(loc)]) for loc in proxying if id(loc) in picked]


# --- checks --------------------------------------------------------------------------------------

def _where(stmt: Stmt | None) -> str:
    return f"{stmt.file}:{stmt.line}" if stmt is not None else "nginx default"


def _connection_state(location: Location, model: NginxModel) -> tuple[str, str]:
    """("ok" | "missing" | "cleared" | "wrong", explanation) for the Connection header sent upstream."""
    header = location.header("Connection")
    if header is None:
        return "missing", "not set, so nginx sends 'Connection: close'"
    value = header.args[1]
    resolved, via = value, ""
    if value.startswith("$"):
        if value == "$http_connection":
            return "ok", "the client's own Connection header"
        if value in model.maps:
            table = model.maps[value]
            source_value = "websocket" if table.source == "$http_upgrade" else None
            if source_value is None:
                return "wrong", f"{value} from map {table.source} at {_where(table.stmt)}, which does not follow $http_upgrade"
            resolved = table.lookup(source_value)
            via = f" ({value} from the map at {_where(table.stmt)} gives {resolved!r} for an upgrade request)"
        elif location.variable(value) is not None:
            resolved = location.variable(value)
            via = f" ({value} is set to {resolved!r})"
        else:
            return "wrong", f"{value}, which nothing in this config defines"
    if resolved == "":
        return "cleared", f"set to an empty value at {_where(header)}{via}"
    if "upgrade" in resolved.lower().replace(",", " ").split():
        return "ok", f"upgrade{via}"
    return "wrong", f"{resolved!r} at {_where(header)}{via}"


def _upgrade_map(model: NginxModel) -> str | None:
    """A map variable that gives 'upgrade' for an upgrade request (the $connection_upgrade idiom)."""
    for name, table in model.maps.items():
        if table.source == "$http_upgrade" and table.lookup("websocket").lower() == "upgrade":
            return name
    return None


@dataclass
class _BlockFix:
    """Edits to one location block; all of a location's findings share its corrected block.

    A directive the block gets from an included file is corrected in that file, so the diff can
    span files (``patch -p0`` from the config's folder applies it).
    """

    location: Location
    texts: dict[str, str]
    edits: dict[str, list[Edit]] = field(default_factory=dict)  # file -> edits
    inserts: list[str] = field(default_factory=list)
    manual: list[str] = field(default_factory=list)  # changes a diff cannot make (line shared with others)

    def set_directive(self, current: Stmt | None, line: str) -> None:
        """Write ``line`` in the location block: over ``current`` when the block itself sets it
        (alone on its line, in whatever file), else added to the block (overriding an inherited value)."""
        own = self.location.own
        in_block = current is not None and any(current is s for s in [*own.scalars.values(), *own.headers])
        if not in_block:
            self.inserts.append(line)
            return
        original = text_lines(self.texts[current.file])[current.line - 1]
        if original.strip().startswith(current.name) and original.count(";") == 1 and original.rstrip().endswith(";"):
            self.edits.setdefault(current.file, []).append(Edit(current.line - 1, current.line, (indent_of(original) + line,)))
        else:
            self.manual.append(f"{_where(current)}: {line}")

    def diff(self) -> str | None:
        file = self.location.stmt.file
        lines = text_lines(self.texts[file])
        edits = dict(self.edits)
        if self.inserts:
            anchor = self.location.own.proxy_pass
            if anchor is not None and anchor.file == file:
                after, indent = anchor.line, indent_of(lines[anchor.line - 1])
            else:
                after = self.location.stmt.line
                while after <= len(lines) and "{" not in lines[after - 1]:
                    after += 1
                indent = indent_of(lines[self.location.stmt.line - 1]) + "    "
            edits.setdefault(file, []).append(Edit(after, after, tuple(indent + line for line in self.inserts)))
        diffs = [unified_diff(name, self.texts[name], file_edits) for name, file_edits in edits.items()]
        return "".join(d for d in diffs if d) or None


STREAM_DEFAULT_TIMEOUT = "10m"  # ngx_stream_proxy_module proxy_timeout


def _lint_stream(tree: NginxTree, heartbeat_s: float | None, result: LintResult) -> None:
    """TCP proxies (stream > server with proxy_pass): WebSockets pass through, cut at proxy_timeout of silence."""
    for stream in (s for s in tree.stmts if s.name == "stream" and s.block is not None):
        stream_timeout = next((s for s in stream.block if s.name == "proxy_timeout" and s.args), None)
        for server in (s for s in walk(stream.block) if s.name == "server" and s.block is not None):
            proxy_pass = next((s for s in server.block if s.name == "proxy_pass" and s.args), None)
            if proxy_pass is None:
                continue
            listen = next((" ".join(s.args) for s in server.block if s.name == "listen"), "?")
            result.websocket_locations.append(f"{server.file}:{server.line} stream server listen {listen} "
                                              "(matched by a stream (TCP) proxy: every connection passes through)")
            own = next((s for s in server.block if s.name == "proxy_timeout" and s.args), None)
            setting = own or stream_timeout
            value = setting.args[0] if setting else STREAM_DEFAULT_TIMEOUT
            seconds = nginx_seconds(value)
            if seconds is None:
                result.findings.append(finding("CFG005", setting.file, setting.line, f"proxy_timeout {value!r} is not an nginx time"))
                continue
            result.path_timeouts.append(PathTimeout("nginx", "proxy_timeout (stream)", seconds, setting.file if setting else None,
                                                    setting.line if setting else None, setting is None, "idle"))
            if heartbeat_s is not None and seconds <= heartbeat_s:
                text = tree.texts[server.file]
                lines = text_lines(text)
                new_line = f"proxy_timeout {fix_timeout_s(heartbeat_s)}s;"
                if own is not None and own.file == server.file and lines[own.line - 1].strip().startswith("proxy_timeout") \
                        and lines[own.line - 1].count(";") == 1:
                    edit = Edit(own.line - 1, own.line, (indent_of(lines[own.line - 1]) + new_line,))
                elif proxy_pass.file == server.file:
                    edit = Edit(proxy_pass.line, proxy_pass.line, (indent_of(lines[proxy_pass.line - 1]) + new_line,))
                else:
                    edit = None
                origin = "nginx default" if setting is None else _where(setting)
                result.findings.append(finding("NGX010", server.file, server.line,
                                               f"stream server listen {listen}: proxy_timeout is {timeout_verdict(seconds, heartbeat_s)} "
                                               f"({origin}): idle WebSockets are cut before the next ping",
                                               fix=unified_diff(server.file, text, [edit]) if edit else None))


def lint_nginx(tree: NginxTree, heartbeat_s: float | None = None, target_path: str | None = None) -> LintResult:
    """Findings, WebSocket locations, upgrade verdict and path timeouts of one parsed nginx config."""
    result = LintResult(kind="nginx", files=list(tree.texts), findings=list(tree.findings))
    _lint_stream(tree, heartbeat_s, result)
    model = build_model(tree)
    found = websocket_locations(model, target_path)
    if not found and not result.websocket_locations and not any(f.check == "CFG001" for f in tree.findings):
        result.findings.append(finding("CFG003", tree.root, None, "no location proxies anything (no proxy_pass): no WebSocket path to check"))
    if not found:
        return result
    broken = False
    seen_timeouts: set[tuple] = set()
    for location, rule in found:
        label = f"{location.stmt.file}:{location.stmt.line} location {location.pattern} (matched by {rule})"
        result.websocket_locations.append(label)
        findings, upgrade_ok = _check_location(location, model, tree, heartbeat_s)
        broken |= not upgrade_ok
        result.findings.extend(findings)
        value, stmt = location.setting("proxy_read_timeout")
        seconds = nginx_seconds(value)
        key = (seconds, stmt.file if stmt else None, stmt.line if stmt else None)
        if seconds is not None and key not in seen_timeouts:
            seen_timeouts.add(key)
            result.path_timeouts.append(PathTimeout("nginx", "proxy_read_timeout", seconds, key[1], key[2],
                                                    is_default=stmt is None, kind="idle"))
    result.upgrade_forwarded = not broken  # a stream proxy alone says nothing about the upgrade: stays None
    return result


def _check_location(loc: Location, model: NginxModel, tree: NginxTree, heartbeat_s: float | None) -> tuple[list[ConfigFinding], bool]:
    """The findings of one WebSocket location (sharing one corrected-block diff) and whether the upgrade passes."""
    file, line = loc.stmt.file, loc.stmt.line
    name = f"location {loc.pattern}"
    fix = _BlockFix(loc, tree.texts)
    pending: list[tuple[str, str]] = []  # (check, message)
    upgrade_ok = True

    version, version_stmt = loc.setting("proxy_http_version")
    if version != "1.1":
        upgrade_ok = False
        pending.append(("NGX001", f"{name} proxies with HTTP/{version} ({'nginx default' if version_stmt is None else _where(version_stmt)}): "
                                  "the upgrade needs proxy_http_version 1.1"))
        fix.set_directive(version_stmt, "proxy_http_version 1.1;")

    headers, header_level = loc.headers()
    inherited = header_level is not None and header_level is not loc.own
    upgrade_value = _upgrade_map(model)
    wanted: dict[str, str] = {}
    upgrade = loc.header("Upgrade")
    if upgrade is None or not ("$http_upgrade" in upgrade.args[1] or upgrade.args[1].lower() == "websocket"):
        upgrade_ok = False
        state = "not set" if upgrade is None else f"{upgrade.args[1]!r} at {_where(upgrade)}"
        lost = _lost_note(loc, "Upgrade")
        pending.append(("NGX002", f"{name} does not forward Upgrade from $http_upgrade ({state}){lost}"))
        wanted["Upgrade"] = "$http_upgrade"
    conn_state, conn_why = _connection_state(loc, model)
    if conn_state != "ok":
        upgrade_ok = False
        lost = _lost_note(loc, "Connection")
        if conn_state == "cleared":
            keepalive = _upstream_keepalive(loc, model)
            pending.append(("NGX009", f"{name} clears Connection ({conn_why}){keepalive}: the upgrade token never reaches the backend"))
        else:
            pending.append(("NGX003", f"{name} does not send Connection: upgrade ({conn_why}){lost}"))
        wanted["Connection"] = upgrade_value or '"upgrade"'
    own_names = {h.args[0].lower() for h in loc.own.headers}
    dropped = _dropped_headers(loc)
    reported = {header_name.lower() for header_name in wanted}
    dropped_others = [h for h in dropped if h.args[0].lower() not in reported]
    if dropped_others:
        names = ", ".join(h.args[0] for h in dropped_others)
        pending.append(("NGX008", f"{name} sets its own proxy_set_header, so {names} from {_where(dropped_others[0])} "
                                  "are not sent to this backend"))
        dropped = dropped_others
    if wanted:
        if inherited or (dropped and loc.own.headers):
            # Adding one proxy_set_header here hides the enclosing ones: repeat them in the block.
            for header in (headers if inherited else dropped):
                if header.args[0].lower() not in reported and header.args[0].lower() not in own_names:
                    fix.inserts.append(f"proxy_set_header {header.args[0]} {_quote(header.args[1])};")
        for header_name, value in wanted.items():
            fix.set_directive(loc.header(header_name) if not inherited else None, f"proxy_set_header {header_name} {value};")
    elif dropped and loc.own.headers:
        for header in dropped:
            fix.inserts.append(f"proxy_set_header {header.args[0]} {_quote(header.args[1])};")

    new_timeout = fix_timeout_s(heartbeat_s)
    for setting, below_check in (("proxy_read_timeout", "NGX004"), ("proxy_send_timeout", "NGX006")):
        value, stmt = loc.setting(setting)
        seconds = nginx_seconds(value)
        origin = "nginx default" if stmt is None else _where(stmt)
        if seconds is None:
            pending.append(("CFG005", f"{setting} {value!r} at {origin} is not an nginx time (e.g. 60s, 1h)"))
            fix.set_directive(stmt, f"{setting} {new_timeout}s;")
        elif heartbeat_s is not None and seconds <= heartbeat_s:
            pending.append((below_check, f"{name}: {setting} is {timeout_verdict(seconds, heartbeat_s)} ({origin}): "
                                         "idle WebSockets are cut before the next ping"))
            fix.set_directive(stmt, f"{setting} {new_timeout}s;")
        elif heartbeat_s is None and setting == "proxy_read_timeout" and seconds <= DEFAULT_TIMEOUT_S:
            pending.append(("NGX005", f"{name}: proxy_read_timeout is {seconds:g} s ({origin}) and the heartbeat is unknown: "
                                      "connections idle that long are cut (give heartbeat_interval_s to check)"))
            fix.set_directive(stmt, f"{setting} {new_timeout}s;")

    buffering, buffering_stmt = loc.setting("proxy_buffering")
    if buffering == "on":
        pending.append(("NGX007", f"{name}: proxy_buffering is on ({'nginx default' if buffering_stmt is None else _where(buffering_stmt)})"))
        fix.set_directive(buffering_stmt, "proxy_buffering off;")

    diff = fix.diff() if pending else None
    by_hand = f"; change by hand: {'; '.join(fix.manual)}" if fix.manual else ""
    findings = [finding(check, file, line, message + by_hand, fix=diff) for check, message in pending]
    return findings, upgrade_ok


def _quote(value: str) -> str:
    if value == "" or re.search(r"[\s;{}'\"]", value):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


def _dropped_headers(loc: Location) -> list[Stmt]:
    """Headers of the enclosing levels that this location's own proxy_set_header lines hide."""
    if not loc.own.headers:
        return []
    own = {h.args[0].lower() for h in loc.own.headers}
    for level in reversed(loc.chain[:-1]):
        if level.headers:
            return [h for h in level.headers if h.args[0].lower() not in own]
    return []


def _lost_note(loc: Location, header: str) -> str:
    """Explain an inherited header this location's own proxy_set_header lines hid."""
    for h in _dropped_headers(loc):
        if h.args[0].lower() == header.lower():
            return f"; {header} is set at {_where(h)} but not inherited because this block has its own proxy_set_header"
    return ""


def _upstream_keepalive(loc: Location, model: NginxModel) -> str:
    target = loc.own.proxy_pass.args[0] if loc.own.proxy_pass else ""
    name = re.sub(r"^\w+://", "", target).split("/", 1)[0]
    upstream = model.upstreams.get(name)
    if upstream is None:
        return ""
    keepalive = next((s for s in upstream.block or [] if s.name == "keepalive"), None)
    return f", the upstream keepalive idiom for upstream {name} ({_where(keepalive)})" if keepalive else ""
