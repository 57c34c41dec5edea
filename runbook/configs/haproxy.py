"""HAProxy lint: a small section-aware reader of haproxy.cfg and the timeouts of upgraded connections.

No maintained Python parser of haproxy.cfg exists on PyPI (the only one, pyhaproxy, had its last
release in 2019), and the format is line-based: a section keyword at the start of a line opens a
section, the lines after it are its directives; we keep every line number for the findings.

HAProxy semantics used here (configuration manual, "timeout tunnel"): once a connection is
upgraded, ``timeout tunnel`` replaces ``timeout client`` and ``timeout server``; without it the
shorter of those two cuts an idle WebSocket. ``timeout tunnel`` is a backend setting (ignored in a
frontend); proxies take missing settings from the last ``defaults`` section before them (or the
one named with ``from``). The default mode is tcp; times without a unit are milliseconds.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from runbook.configs.base import Edit, LintResult, finding, fix_timeout_s, indent_of, text_lines, timeout_verdict, unified_diff

SECTIONS = ("global", "defaults", "frontend", "backend", "listen", "resolvers", "peers", "userlist", "mailers",
            "program", "http-errors", "ring", "cache", "fcgi-app", "crt-store", "traces")
_SECTION_LINE = re.compile(r"^(%s)(\s|$)" % "|".join(re.escape(s) for s in SECTIONS))
_TIME = re.compile(r"(\d+)(us|ms|s|m|h|d)?")
_UNITS = {"us": 1e-6, "ms": 1e-3, None: 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}
_TUNNEL_LONG_S = 300  # beyond this, half-closed connections held for the tunnel timeout matter


def looks_like(text: str) -> bool:
    """Whether ``text`` reads as haproxy.cfg: a proxy section keyword at a line start, no braces after it."""
    for line in text.splitlines():
        if _SECTION_LINE.match(line) and line.split()[0] in ("defaults", "frontend", "backend", "listen", "global"):
            if "{" not in line:
                return True
    return False


def haproxy_seconds(value: str) -> float | None:
    """An HAProxy time (``30s``, ``1h``, ``5000`` = 5000 ms) in seconds; None if invalid."""
    match = re.fullmatch(r"(\d+)(us|ms|s|m|h|d)?", value or "")
    if not match:
        return None
    return int(match.group(1)) * _UNITS[match.group(2)]


@dataclass
class Directive:
    words: list[str]
    line: int


@dataclass
class Section:
    kind: str
    name: str
    line: int
    args: list[str]
    directives: list[Directive] = field(default_factory=list)
    defaults: Section | None = None

    def own(self, *words: str) -> Directive | None:
        """The last directive starting with ``words`` in this section."""
        found = [d for d in self.directives if d.words[: len(words)] == list(words)]
        return found[-1] if found else None

    def setting(self, *words: str) -> tuple[Directive | None, Section | None]:
        """The directive in force (own, else from its defaults section) and where it is."""
        own = self.own(*words)
        if own is not None:
            return own, self
        if self.defaults is not None:
            inherited = self.defaults.own(*words)
            if inherited is not None:
                return inherited, self.defaults
        return None, None

    def label(self) -> str:
        return f"{self.kind} {self.name}".strip()


def parse_haproxy(text: str) -> tuple[list[Section], list[tuple[int, str]]]:
    """Sections with their directives, and (line, problem) for lines that cannot be split."""
    sections: list[Section] = []
    problems: list[tuple[int, str]] = []
    last_defaults: Section | None = None
    named_defaults: dict[str, Section] = {}
    for number, raw in enumerate(text_lines(text), 1):
        line = _strip_comment(raw).strip()
        if not line:
            continue
        try:
            words = shlex.split(line, posix=True)
        except ValueError as exc:
            problems.append((number, f"cannot split the line: {exc}"))
            continue
        if _SECTION_LINE.match(raw.lstrip()) and words[0] in SECTIONS:
            args = words[1:]
            section = Section(words[0], args[0] if args else "", number, args)
            if section.kind == "defaults":
                last_defaults = section
                if section.name:
                    named_defaults[section.name] = section
            else:
                section.defaults = last_defaults
                if "from" in args and args.index("from") + 1 < len(args):
                    section.defaults = named_defaults.get(args[args.index("from") + 1], last_defaults)
            sections.append(section)
        elif sections:
            sections[-1].directives.append(Directive(words, number))
        else:
            problems.append((number, f"directive outside any section: {words[0]}"))
    return sections, problems


def _strip_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if ch in "\"'" and (i == 0 or line[i - 1] != "\\"):
            quote = None if quote == ch else (quote or ch)
        elif ch == "#" and quote is None and (i == 0 or line[i - 1] != "\\"):
            return line[:i]
    return line


def lint_haproxy(path: str, text: str, heartbeat_s: float | None = None, target_path: str | None = None) -> LintResult:
    """Findings and the idle timeouts of upgraded connections, per backend/listen section.

    The backends checked are those a frontend routes WebSockets to (an acl on the Upgrade header,
    or the path of target_url), else every backend with servers.
    """
    result = LintResult(kind="haproxy", files=[path])
    sections, problems = parse_haproxy(text)
    for number, problem in problems:
        result.findings.append(finding("CFG001", path, number, f"haproxy config does not parse: {problem}"))
    proxies = [s for s in sections if s.kind in ("frontend", "backend", "listen")]
    if not proxies:
        result.findings.append(finding("CFG003", path, None, "no frontend, backend or listen section: nothing proxies"))
        return result
    lines = list(text_lines(text))
    new_timeout = fix_timeout_s(heartbeat_s)
    for section in sections:
        for directive in section.directives:
            _option_checks(result, path, text, section, directive)
        if section.kind == "frontend" and (tunnel := section.own("timeout", "tunnel")) is not None:
            result.findings.append(finding("HAP007", path, tunnel.line,
                                           f"timeout tunnel in {section.label()} is ignored (no backend capability); "
                                           "it never applies to upgraded connections"))
    # A backend without servers (a deny or a redirect target) carries no WebSocket.
    with_servers = [s for s in proxies if s.kind in ("backend", "listen")
                    and any(d.words[0] in ("server", "server-template", "use-server") for d in s.directives)]
    routed = _websocket_backends(proxies, target_path)
    carriers = [(s, routed[s.name]) for s in with_servers if s.name in routed] or \
               [(s, "a backend with servers: HAProxy tunnels every upgrade") for s in with_servers]
    for section, _ in carriers:
        mode, _ = section.setting("mode")
        if mode is not None and mode.words[1:2] == ["tcp"] or mode is None:
            result.findings.append(finding("HAP005", path, (mode.line if mode else section.line),
                                           f"{section.label()} runs in mode tcp{'' if mode else ' (the default: no mode set)'}: "
                                           "WebSockets pass as raw TCP"))
        result.path_timeouts.extend(_tunnel_checks(result, path, text, lines, section, proxies, heartbeat_s, new_timeout))
    result.upgrade_forwarded = not any(f.check in ("HAP006", "HAP009") for f in result.findings)
    result.websocket_locations = [f"{path}:{s.line} {s.label()} (matched by {rule})" for s, rule in carriers]
    return result


_PATH_FETCHES = {"path": lambda p, v: p == v, "path_beg": lambda p, v: p.startswith(v), "path_end": lambda p, v: p.endswith(v),
                 "path_sub": lambda p, v: v in p, "path_dir": lambda p, v: v.strip("/") in p.strip("/").split("/"),
                 "path_reg": lambda p, v: _search(v, p)}


def _search(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def _websocket_backends(proxies: list[Section], target_path: str | None) -> dict[str, str]:
    """Backends a frontend routes WebSockets to: by an Upgrade-header acl, or for target_url's path.

    Conditions are read simply: acl names (``!`` negates) and inline ``{ fetch value }`` terms,
    all required; ``||``/``or`` alternatives are each tried.
    """
    found: dict[str, str] = {}
    for frontend in (p for p in proxies if p.kind in ("frontend", "listen")):
        acls: dict[str, list[list[str]]] = {}
        for d in frontend.directives:
            if d.words[0] == "acl" and len(d.words) >= 3:
                acls.setdefault(d.words[1], []).append(d.words[2:])
        target_backend = None
        for d in frontend.directives:
            if d.words[0] != "use_backend" or len(d.words) < 4 or d.words[2] not in ("if", "unless"):
                continue
            backend, terms = d.words[1], d.words[3:]
            if any(_is_upgrade_test(t) for t in _tests(terms, acls)):
                found.setdefault(backend, "an acl on the Upgrade header")
            if target_path and target_backend is None and (_holds(terms, acls, target_path) == (d.words[2] == "if")):
                target_backend = backend
        if target_path:
            default = next((d.words[1] for d in frontend.directives if d.words[0] == "default_backend" and len(d.words) > 1), None)
            chosen = target_backend or default or (frontend.name if frontend.kind == "listen" else None)
            if chosen:
                found[chosen] = f"the path of target_url ({target_path})"
    return found


def _tests(terms: list[str], acls: dict[str, list[list[str]]]) -> list[list[str]]:
    """The fetch tests a condition uses: inline ``{ ... }`` ones and those of the acls it names."""
    tests, inline = [], None
    for term in terms:
        if term == "{":
            inline = []
        elif term == "}" and inline is not None:
            tests.append(inline)
            inline = None
        elif inline is not None:
            inline.append(term)
        else:
            tests.extend(acls.get(term.lstrip("!"), []))
    return tests


def _is_upgrade_test(test: list[str]) -> bool:
    return bool(test) and re.match(r"(req\.)?hdr(_beg|_sub|_reg|_end)?\(upgrade\)", test[0], re.IGNORECASE) is not None


def _test_holds(test: list[str], path: str) -> bool | None:
    """Whether a path fetch test matches ``path``; None for tests of anything else."""
    if not test or test[0] not in _PATH_FETCHES:
        return None
    values = [v for v in test[1:] if not v.startswith("-")]
    return any(_PATH_FETCHES[test[0]](path, value) for value in values)


def _holds(terms: list[str], acls: dict[str, list[list[str]]], path: str) -> bool:
    """Whether a condition holds for a request to ``path`` (tests on anything but the path count as true)."""
    for alternative in _split_or(terms):
        ok = True
        index = 0
        while index < len(alternative):
            term = alternative[index]
            if term == "{":
                end = alternative.index("}", index) if "}" in alternative[index:] else len(alternative)
                result = _test_holds(alternative[index + 1:end], path)
                index = end + 1
            else:
                negate = term.startswith("!")
                results = [_test_holds(test, path) for test in acls.get(term.lstrip("!"), [])]
                known = [r for r in results if r is not None]
                result = (any(known) if known else None)
                if result is not None and negate:
                    result = not result
                index += 1
            if result is False:
                ok = False
        if ok:
            return True
    return False


def _split_or(terms: list[str]) -> list[list[str]]:
    alternatives, current = [], []
    for term in terms:
        if term in ("||", "or"):
            alternatives.append(current)
            current = []
        else:
            current.append(term)
    return [*alternatives, current]


def _frontends_of(backend: Section, proxies: list[Section]) -> list[Section]:
    if backend.kind == "listen":
        return [backend]
    users = []
    for proxy in proxies:
        if proxy.kind not in ("frontend", "listen"):
            continue
        for directive in proxy.directives + (proxy.defaults.directives if proxy.defaults else []):
            if directive.words[0] in ("default_backend", "use_backend") and backend.name in directive.words[1:2]:
                users.append(proxy)
                break
    return users


def _timeout(section: Section, name: str) -> tuple[float | None, object, Section | None]:
    directive, where = section.setting("timeout", name)
    if directive is None or len(directive.words) < 3:
        return None, None, None
    return haproxy_seconds(directive.words[2]), directive, where


def _tunnel_checks(result: LintResult, path: str, text: str, lines: list[str], section: Section,
                   proxies: list[Section], heartbeat_s: float | None, new_timeout: int):
    from runbook.observations import PathTimeout

    tunnel_s, tunnel, tunnel_in = _timeout(section, "tunnel")
    for name, (seconds, directive) in {"tunnel": (tunnel_s, tunnel)}.items():
        if directive is not None and seconds is None:
            result.findings.append(finding("CFG005", path, directive.line, f"timeout {name} {directive.words[2]!r} is not an HAProxy time"))
            return []
    if tunnel is not None and tunnel_s is not None:
        origin = f"{tunnel_in.label()} line {tunnel.line}"
        if heartbeat_s is not None and tunnel_s <= heartbeat_s:
            fix = _set_timeout_fix(path, text, lines, section, tunnel if tunnel_in is section else None, "tunnel", new_timeout)
            result.findings.append(finding("HAP002", path, tunnel.line,
                                           f"{section.label()}: timeout tunnel is {timeout_verdict(tunnel_s, heartbeat_s)} ({origin}): "
                                           "idle WebSockets are cut before the next ping", fix=fix))
        if tunnel_s > _TUNNEL_LONG_S:
            client_fin, _ = section.setting("timeout", "client-fin")
            server_fin, _ = section.setting("timeout", "server-fin")
            if client_fin is None and server_fin is None:
                fix = None
                if tunnel_in.kind in ("defaults", "listen"):
                    fix = unified_diff(path, text, [Edit(tunnel.line, tunnel.line, (
                        indent_of(lines[tunnel.line - 1]) + "timeout client-fin 30s",
                        indent_of(lines[tunnel.line - 1]) + "timeout server-fin 30s"))])
                result.findings.append(finding("HAP003", path, tunnel.line,
                                               f"{section.label()}: timeout tunnel {tunnel.words[2]} without timeout client-fin / server-fin: "
                                               "a connection whose one side closed is kept that long", fix=fix))
        return [PathTimeout("haproxy", "timeout tunnel", tunnel_s, path, tunnel.line, False, "idle")]
    # No tunnel timeout: the shorter of timeout client (frontends) and timeout server applies.
    candidates = []
    server_s, server, _ = _timeout(section, "server")
    if server_s is not None:
        candidates.append((server_s, "timeout server", server))
    for frontend in _frontends_of(section, proxies) or [section]:
        client_s, client, _ = _timeout(frontend, "client")
        if client_s is not None:
            candidates.append((client_s, "timeout client", client))
    keep_alive, _ = section.setting("timeout", "http-keep-alive")
    if keep_alive is not None:
        result.findings.append(finding("HAP004", path, keep_alive.line,
                                       f"{section.label()}: timeout http-keep-alive {keep_alive.words[2] if len(keep_alive.words) > 2 else ''} "
                                       "does not apply to upgraded connections; without timeout tunnel they follow timeout client/server"))
    fix = _set_timeout_fix(path, text, lines, section, None, "tunnel", new_timeout)
    if not candidates:
        result.findings.append(finding("HAP001", path, section.line,
                                       f"{section.label()}: no timeout tunnel and no timeout client/server: upgraded connections never "
                                       "time out, so dead peers are held forever", fix=fix))
        return []
    seconds, setting, directive = min(candidates, key=lambda c: c[0])
    if heartbeat_s is not None and seconds <= heartbeat_s:
        result.findings.append(finding("HAP002", path, section.line,
                                       f"{section.label()}: no timeout tunnel, so {setting} (line {directive.line}) cuts idle WebSockets: "
                                       f"{timeout_verdict(seconds, heartbeat_s)}", fix=fix))
    else:
        result.findings.append(finding("HAP001", path, section.line,
                                       f"{section.label()}: no timeout tunnel, so {setting} (line {directive.line}, {seconds:g} s) "
                                       "cuts idle WebSockets", fix=fix))
    return [PathTimeout("haproxy", setting, seconds, path, directive.line, False, "idle")]


def _set_timeout_fix(path: str, text: str, lines: list[str], section: Section, own, name: str, seconds: int) -> str | None:
    """A diff writing ``timeout <name> <seconds>s`` in ``section``: over its own line, else after the header."""
    if own is not None:
        return unified_diff(path, text, [Edit(own.line - 1, own.line, (indent_of(lines[own.line - 1]) + f"timeout {name} {seconds}s",))])
    indent = indent_of(lines[section.directives[0].line - 1]) if section.directives else "    "
    return unified_diff(path, text, [Edit(section.line, section.line, (indent + f"timeout {name} {seconds}s",))])


def _header_checks(result: LintResult, path: str, text: str, section: Section, directive: Directive) -> None:
    """http-request rules that strip Upgrade or overwrite Connection on the way to the backend."""
    words = directive.words
    if words[0] != "http-request" or len(words) < 3 or words[1] not in ("del-header", "set-header", "replace-header"):
        return
    header = words[2].lower()
    if header not in ("upgrade", "connection"):
        return
    if words[1] == "set-header" and len(words) > 3 and ("upgrade" in words[3].lower() or header == "upgrade"):
        return
    condition = f" ({' '.join(words[3 + (words[1] != 'del-header'):])})" if len(words) > 3 + (words[1] != "del-header") else ""
    result.findings.append(finding("HAP009", path, directive.line,
                                   f"{section.label()}: http-request {words[1]} {words[2]}{condition} removes the upgrade "
                                   "on the way to the backend: the WebSocket handshake fails",
                                   fix=unified_diff(path, text, [Edit(directive.line - 1, directive.line, ())])))


def _option_checks(result: LintResult, path: str, text: str, section: Section, directive: Directive) -> None:
    _header_checks(result, path, text, section, directive)
    words = directive.words
    if words[0] != "option" or len(words) < 2:
        return
    delete = unified_diff(path, text, [Edit(directive.line - 1, directive.line, ())])
    if words[1] in ("forceclose", "http-tunnel"):
        since = "2.0" if words[1] == "forceclose" else "2.1"
        result.findings.append(finding("HAP006", path, directive.line,
                                       f"{section.label()}: option {words[1]} is not supported any more since HAProxy {since} "
                                       "(haproxy -c refuses the config)", fix=delete))
    elif words[1] in ("httpclose", "http-server-close"):
        result.findings.append(finding("HAP008", path, directive.line,
                                       f"{section.label()}: option {words[1]}: fine for WebSockets on HAProxy 1.5 and later "
                                       "(upgraded connections become tunnels); on older versions check it"))
