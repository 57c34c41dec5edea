"""nginx config text -> a tree of directives, includes followed, with crossplane's lexer and analyzer.

crossplane's own ``parse()`` takes a file name and opens the file and every include itself
(``glob.glob`` + ``open``), so it cannot run on text the caller holds. We drive its tokenizer
(``crossplane.lexer``) and its directive analyzer (context and argument-count checks, the same
ones ``crossplane parse`` makes) over text from ``Files`` and splice includes in where nginx would.
The tokenizer entry points are private in crossplane 0.5.8 (pinned <0.6 in pyproject.toml); the
tests parse real configs through them, so a change there fails loudly.
"""

from __future__ import annotations

import io
import posixpath
from dataclasses import dataclass, field

from crossplane.analyzer import DIRECTIVES, analyze, enter_block_ctx
from crossplane.errors import NgxParserDirectiveError, NgxParserSyntaxError
from crossplane.lexer import _balance_braces, _lex_file_object

from runbook.configs.base import Files, finding
from runbook.observations import ConfigFinding

MAX_INCLUDE_DEPTH = 16  # nginx has no limit; a deeper chain here is a loop in all but name

# Top-level directives that say a file is a fragment meant for inside http {} or server {}.
_HTTP_LEVEL = {"server", "upstream", "map", "geo", "split_clients", "proxy_cache_path", "log_format"}
_SERVER_LEVEL = {"location", "listen", "server_name"}


@dataclass
class Stmt:
    """One directive: name, arguments, where it is written, and its block when it has one."""

    name: str
    args: list[str]
    file: str
    line: int
    block: list[Stmt] | None = None

    def __str__(self) -> str:
        return " ".join([self.name, *self.args])


@dataclass
class NginxTree:
    """A parsed nginx config: the root's statements with includes spliced in."""

    root: str
    context: tuple[str, ...]  # () for a main nginx.conf, ("http",) for a sites file, ...
    stmts: list[Stmt]
    texts: dict[str, str] = field(default_factory=dict)  # every file read, for diffs
    findings: list[ConfigFinding] = field(default_factory=list)  # parse errors, missing includes
    known_directives: int = 0  # statements named like an nginx directive: 0 means "not an nginx config"


def fragment_context(text: str, path: str) -> tuple[str, ...]:
    """Where a file's top-level directives belong: main conf, inside http, or inside a server."""
    names = set()
    depth = 0
    expect_name = True
    try:
        for token, _line, quoted in _lex_file_object(io.StringIO(text)):
            if token.startswith("#") and not quoted:
                continue
            if not quoted and token in ("{", "}", ";"):
                depth += {"{": 1, "}": -1, ";": 0}[token]
                expect_name = True
                continue
            if expect_name and depth == 0:
                names.add(token)
            expect_name = False
    except NgxParserSyntaxError:
        pass
    if names & {"http", "events", "stream"}:
        return ()
    if names & _SERVER_LEVEL and "server" not in names:
        return ("http", "server")
    if names & _HTTP_LEVEL:
        return ("http",)
    return ()


def parse_nginx(root: str, files: Files, text: str | None = None) -> NginxTree:
    """Parse ``root`` (its text given, or read through ``files``) and the files it includes.

    Never raises for bad config: syntax errors, misplaced directives and missing includes become
    findings (CFG001, CFG002) with file and line; reading ``root`` itself may raise OSError.
    """
    if text is None:
        text = files.read(root)
    context = fragment_context(text, root)
    tree = NginxTree(root=root, context=context, stmts=[], texts={root: text})
    tree.stmts = _parse_file(tree, files, root, text, context, stack=(root,))
    return tree


def _parse_file(tree: NginxTree, files: Files, path: str, text: str, ctx: tuple[str, ...],
                stack: tuple[str, ...]) -> list[Stmt]:
    tokens = _balance_braces(_lex_file_object(io.StringIO(text)), path)
    try:
        return _parse_block(tree, files, path, tokens, ctx, stack)
    except NgxParserSyntaxError as exc:
        tree.findings.append(finding("CFG001", path, exc.lineno, f"nginx config does not parse: {exc.strerror}"))
    except StopIteration:
        tree.findings.append(finding("CFG001", path, text.count("\n") + 1,
                                     'nginx config does not parse: unexpected end of file, expecting ";" or "}"'))
    return []


def _parse_block(tree: NginxTree, files: Files, path: str, tokens, ctx: tuple[str, ...],
                 stack: tuple[str, ...], consume: bool = False) -> list[Stmt]:
    """Statements up to the closing brace (or the end), as crossplane.parser._parse reads them."""
    parsed: list[Stmt] = []
    for token, line, quoted in tokens:
        if token == "}" and not quoted:
            break
        if consume:
            if token == "{" and not quoted:
                _parse_block(tree, files, path, tokens, ctx, stack, consume=True)
            continue
        if token.startswith("#") and not quoted:
            continue
        stmt = Stmt(token, [], path, line)
        term, _, term_quoted = next(tokens)
        while term not in ("{", ";", "}") or term_quoted:
            if not (term.startswith("#") and not term_quoted):
                stmt.args.append(term)
            term, _, term_quoted = next(tokens)
        if stmt.name == "if" and stmt.args and stmt.args[0].startswith("(") and stmt.args[-1].endswith(")"):
            stmt.args[0] = stmt.args[0][1:].lstrip()
            stmt.args[-1] = stmt.args[-1][:-1].rstrip()
            stmt.args[:] = [arg for arg in stmt.args if arg]
        if stmt.name in DIRECTIVES:
            tree.known_directives += 1
        try:
            analyze(fname=path, stmt={"directive": stmt.name, "line": line, "args": stmt.args}, term=term, ctx=ctx)
        except NgxParserDirectiveError as exc:
            tree.findings.append(finding("CFG001", path, exc.lineno, f"nginx rejects this directive: {exc.strerror}"))
            # Skip the rejected directive's block whole (crossplane only does so for a missing ";"),
            # so its contents are not read as directives of the enclosing block.
            if term == "{" and not term_quoted:
                _parse_block(tree, files, path, tokens, ctx, stack, consume=True)
            elif term == "}" and not term_quoted:
                break
            continue
        if stmt.name == "include" and stmt.args:
            parsed.extend(_include(tree, files, stmt, ctx, stack))
            continue
        if term == "{" and not term_quoted:
            inner = enter_block_ctx({"directive": stmt.name}, ctx)
            stmt.block = _parse_block(tree, files, path, tokens, inner, stack)
        parsed.append(stmt)
    return parsed


def _include(tree: NginxTree, files: Files, stmt: Stmt, ctx: tuple[str, ...], stack: tuple[str, ...]) -> list[Stmt]:
    """The statements of the files ``stmt`` includes, parsed in the include's context.

    Relative paths are relative to the root file's folder (nginx: the prefix of ``-c``).
    """
    pattern = stmt.args[0]
    if not posixpath.isabs(pattern):
        pattern = posixpath.join(posixpath.dirname(tree.root), pattern)
    if any(ch in pattern for ch in "*?["):
        names = sorted(files.glob(pattern))  # no match is fine for nginx too
    else:
        names = [pattern]
    spliced: list[Stmt] = []
    for name in names:
        if name in stack or len(stack) > MAX_INCLUDE_DEPTH:
            tree.findings.append(finding("CFG001", stmt.file, stmt.line, f"include of {name} loops back to a file that includes it"))
            continue
        try:
            text = tree.texts[name] if name in tree.texts else files.read(name)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            tree.findings.append(finding("CFG002", stmt.file, stmt.line, f"include {stmt.args[0]}: cannot read {name}: {reason.lower()}"))
            continue
        tree.texts[name] = text
        spliced.extend(_parse_file(tree, files, name, text, ctx, stack + (name,)))
    return spliced


def walk(stmts: list[Stmt]):
    """Every statement, depth first."""
    for stmt in stmts:
        yield stmt
        if stmt.block:
            yield from walk(stmt.block)
