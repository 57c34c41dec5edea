"""Keep secrets out of reports, executed notebooks and logs.

Pure functions: text or a notebook in, a redacted copy out. Every secret found is replaced by
``[REDACTED]``; the surrounding text (header names, URL scheme and host, query keys) stays so a
reader still sees *what* was there.

What is redacted:

- values of the ``Authorization``, ``Proxy-Authorization``, ``Cookie``, ``Set-Cookie`` and
  ``X-Api-Key`` headers, as header lines (``Cookie: a=b``, ``-H "Cookie: a=b"``) and as quoted
  key/value pairs (``{"Cookie": "a=b"}``, ``('Cookie', 'a=b')``);
- ``Bearer <token>`` anywhere (RFC 6750 section 2.1 token syntax);
- the userinfo of URLs (``wss://user:pass@host`` becomes ``wss://[REDACTED]@host``);
- query-string values whose key looks like a credential: any word of the key (split at ``_``,
  ``-``, ``.`` and camelCase humps, any case) is one of ``runbook.credentials.CREDENTIAL_WORDS`` (``accessToken``,
  ``authToken``, ``api_key``, ``APIKey``, ``sig``, ``X-Amz-Signature``, ``client_secret``,
  ``sessionId``...), while ``monkey`` or ``keyboard`` are not;
- every exact secret value the caller passes (for example the values of the environment
  variables named by the ``header_env`` parameter), also in its HTML-, JSON- and URL-escaped
  forms, since that is how a value shows up inside ``text/html`` outputs and plotly figures.
"""

from __future__ import annotations

import base64
import copy
import html
import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

from runbook.credentials import is_credential_key

REDACTED = "[REDACTED]"

# Exact secrets shorter than this are ignored: replacing a value like "1" everywhere would wreck
# every figure and table in the report while protecting nothing worth protecting.
MIN_SECRET_LENGTH = 4

# Longest names first so "proxy-authorization" wins over "authorization" at the same position.
_HEADER_NAMES = r"proxy-authorization|authorization|set-cookie|cookie|x-api-key"
_NOT_DONE = r"(?!\[REDACTED\])"  # keeps redaction idempotent

# A quoted header name and its quoted value: JSON, Python dicts and tuples, HTML-escaped JSON.
_QUOTED_HEADER = re.compile(
    rf"""(?P<q1>"|'|&quot;|&\#x27;|&\#39;)(?P<name>{_HEADER_NAMES})(?P=q1)"""
    rf"""(?P<sep>\s*[:,=]\s*)(?P<q2>"|'|&quot;|&\#x27;|&\#39;){_NOT_DONE}"""
    r"""(?P<value>(?:\\.|(?!(?P=q2))[^\\\r\n<])+)(?P=q2)""",
    re.IGNORECASE,
)

# A header line "Name: value". When the name follows a quote (curl -H "Cookie: a=b", a JSON
# string) the value ends at that quote; otherwise at the end of the line, a tag, or a quote that
# is not part of a quoted cookie value (so a figure's one-line JSON is never swallowed whole).
# A value that starts with a quote must end the line (YAML), so script code such as
# {COOKIE:"D, dd M yyyy",...} in an inlined library is left alone.
_HEADER_LINE = re.compile(
    rf"""(?P<q>["'])?\b(?P<name>{_HEADER_NAMES})(?P<sep>[ \t]*:[ \t]*){_NOT_DONE}"""
    r"""(?P<value>(?(q)(?:(?!(?P=q))[^\r\n<])+"""
    r"""|(?:"[^"\r\n<]*"(?=[ \t]*$)"""
    r"""|[^\s<"](?:[^\r\n<"]|"[^"\r\n<]*"(?=[\s;,]|$))*)))""",
    re.IGNORECASE | re.MULTILINE,
)

# RFC 6750 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_BEARER = re.compile(r"\b(?P<scheme>bearer)(?P<sep>\s+)(?P<token>[A-Za-z0-9\-._~+/]+=*)", re.I)

# RFC 3986 3.2.1 userinfo; the scheme separator also in its JSON-escaped forms, as plotly writes
# "/" as \u002f inside figure scripts.
_URL_USERINFO = re.compile(
    r"(?P<scheme>\b[a-z][a-z0-9+.\-]*:(?://|\\u002f\\u002f|\\/\\/))"
    rf"{_NOT_DONE}(?P<userinfo>[^\s/?#@<>\"'\\\[\]]+)@",
    re.IGNORECASE,
)

_SECRET_KEYS = (
    r"token|access_token|auth|key|apikey|api_key|password|secret|sig|signature|jwt|session|ticket"
)
# A query parameter: after "?", "&" or ";" (the end of "&amp;" in HTML), with an optional
# prefix such as "refresh_", "client_" or "X-Amz-" so "monkey=1" or "keyboard" never match.
# No "." in the prefix and no "=" opening the value: script code (a&&b.key===c) is no query.
_QUERY = re.compile(
    r"(?P<lead>[?&;])(?P<key>[A-Za-z0-9][A-Za-z0-9_\-]*)="
    rf"{_NOT_DONE}(?P<value>[^=&#\s\"'<>;\\)\[\]][^&#\s\"'<>;\\)\[\]]*)",
    re.IGNORECASE,
)

# Identifiers in papermill's parameter cells and metadata whose values are secrets outright.
_SECRET_NAME = re.compile(
    rf"(?:\w+_)?(?:{_SECRET_KEYS}|passwd|credentials?|cookie|authorization)", re.IGNORECASE
)
_EMPTY_LITERALS = frozenset({'""', "''", "None", "[]", "{}", "()"})
_ASSIGNMENT = re.compile(r"^(?P<lhs>[ \t]*(?P<name>[A-Za-z_]\w*)[ \t]*=[ \t]*)(?P<rhs>\S.*)$", re.M)

# A header given as "Name: value" (RFC 9110 5.1 token for the name).
_HEADER_SECRET = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+[ \t]*:[ \t]*(?P<value>.+?)\s*$")
_AUTH_SCHEME_SECRET = re.compile(r"^[A-Za-z][A-Za-z0-9\-]*[ \t]+(?P<credentials>\S+)$")

# Output mimetypes whose strings are base64 payloads: rewriting them could only corrupt them.
_BINARY_MIMETYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"}
)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with every secret replaced by ``[REDACTED]``.

    ``secrets`` are exact values to remove wherever they appear (a ``Name: value`` header also
    removes its value, and ``Scheme credentials`` its credentials); empty values and values
    shorter than ``MIN_SECRET_LENGTH`` are ignored. The patterns listed in the module docstring
    apply whether or not ``secrets`` is given. Idempotent; never raises on any ``str``.
    """
    for variant in _secret_variants(secrets):
        text = text.replace(variant, REDACTED)
    text = _QUOTED_HEADER.sub(_redact_group("value"), text)
    text = _HEADER_LINE.sub(_redact_group("value"), text)
    text = _BEARER.sub(_redact_bearer, text)
    text = _URL_USERINFO.sub(_redact_group("userinfo"), text)
    return _QUERY.sub(_redact_query, text)


def redact_notebook(nb: Any, secrets: Iterable[str] = ()) -> Any:
    """Return a redacted deep copy of a notebook (an ``nbformat`` node or a plain dict).

    Covers every cell source, every output (stream text, each mimetype of display data and
    results, JSON mimetypes walked value by value, error tracebacks), all notebook and cell
    metadata including papermill's ``metadata.papermill.parameters``, and the assignments in
    the ``parameters`` and ``injected-parameters`` cells, whose values are replaced outright when
    the name looks secret (``api_token``, ``password``...). Base64 image payloads are left as
    they are. The input notebook is not modified.
    """
    secrets = tuple(secrets)
    out = copy.deepcopy(nb)
    out["metadata"] = redact_value(out.get("metadata", {}), secrets)
    papermill = out["metadata"].get("papermill")
    if isinstance(papermill, dict) and isinstance(papermill.get("parameters"), dict):
        papermill["parameters"] = _redact_named(papermill["parameters"])
    for cell in out.get("cells", []):
        _redact_cell(cell, secrets)
    return out


def header_values(headers: Iterable[str]) -> tuple[str, ...]:
    """Return the secret parts of ``Name: value`` header strings, ready for ``secrets=``.

    Meant for the values of the environment variables named by ``header_env``: each header
    yields its whole line and its value; a value such as ``Bearer abc`` also yields ``abc``.
    Strings that are not headers are returned as they are.
    """
    found: list[str] = []
    for header in headers:
        found.extend(_expand_secret(header))
    return tuple(dict.fromkeys(s for s in found if s))


def url_secrets(urls: Iterable[str]) -> tuple[str, ...]:
    """The secrets a URL carries, in every form a server may echo them back.

    Its userinfo (``user:pass`` as written and decoded, the password alone, and the RFC 7617
    Basic credentials the probes build from it, base64) and the values of its query keys that
    look like credentials (``is_credential_key``). Empty and unparsable URLs give nothing.
    """
    found: list[str] = []
    for url in urls:
        if not isinstance(url, str) or not url.strip():
            continue
        try:
            parts = urlsplit(url.strip())
            username, password = parts.username, parts.password
        except ValueError:
            continue
        if username is not None:
            userinfo = parts.netloc.rpartition("@")[0]
            pair = f"{unquote(username)}:{unquote(password or '')}"
            found += [userinfo, pair, base64.b64encode(pair.encode()).decode()]
            if password:
                found += [password, unquote(password)]
        found += [value for key, value in parse_qsl(parts.query, keep_blank_values=True) if is_credential_key(key) and value]
    return tuple(dict.fromkeys(found))


def header_env_secrets(header_env: Iterable[str]) -> tuple[str, ...]:
    """The secret parts of the headers held by the environment variables named in header_env."""
    return header_values(os.environ[name] for name in header_env if os.environ.get(name))


def _redact_cell(cell: Any, secrets: tuple[str, ...]) -> None:
    cell["metadata"] = redact_value(cell.get("metadata", {}), secrets)
    source = _join(cell.get("source", ""))
    tags = cell["metadata"].get("tags", [])
    if "parameters" in tags or "injected-parameters" in tags:
        source = _ASSIGNMENT.sub(_redact_assignment, source)
    cell["source"] = redact_text(source, secrets)
    for output in cell.get("outputs", []):
        _redact_output(output, secrets)
    # Markdown attachments are base64 images: nothing readable to redact there.


def _redact_output(output: Any, secrets: tuple[str, ...]) -> None:
    for key in ("text", "ename", "evalue"):
        if key in output:
            output[key] = redact_text(_join(output[key]), secrets)
    if "traceback" in output:
        output["traceback"] = [redact_text(line, secrets) for line in output["traceback"]]
    if "data" in output:
        for mimetype, value in output["data"].items():
            if mimetype not in _BINARY_MIMETYPES:
                if isinstance(value, list) and all(isinstance(v, str) for v in value):
                    value = _join(value)  # multiline strings as stored on disk
                output["data"][mimetype] = redact_value(value, secrets)
    if "metadata" in output:
        output["metadata"] = redact_value(output["metadata"], secrets)


def redact_value(value: Any, secrets: tuple[str, ...] = ()) -> Any:
    """Redact every string inside a JSON-like value (in place for mappings), keeping its shape."""
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, Mapping):
        for key in list(value):
            value[key] = redact_value(value[key], secrets)
        return value
    if isinstance(value, list):
        return [redact_value(item, secrets) for item in value]
    return value


def _redact_named(params: dict) -> dict:
    for name in params:
        if _SECRET_NAME.fullmatch(str(name)) and params[name] not in (None, "", [], {}):
            params[name] = REDACTED
    return params


def _redact_assignment(match: re.Match) -> str:
    # Empty defaults ("", None, []) stay readable: they are no secret and show the parameter.
    if not _SECRET_NAME.fullmatch(match["name"]) or match["rhs"].strip() in _EMPTY_LITERALS:
        return match[0]
    return f'{match["lhs"]}"{REDACTED}"'


def _redact_group(group: str):
    def replace(match: re.Match) -> str:
        start, end = match.span(group)
        base = match.start()
        whole = match[0]
        return whole[: start - base] + REDACTED + whole[end - base :]

    return replace


def _redact_query(match: re.Match) -> str:
    return _redact_group("value")(match) if is_credential_key(match["key"]) else match[0]


def _redact_bearer(match: re.Match) -> str:
    token = match["token"]
    trail = ""
    while token.endswith("."):  # sentence punctuation, not part of the token
        token, trail = token[:-1], trail + "."
    # Prose says "bearer of" or "Bearer tokens"; real tokens are long or contain digits.
    if not token or not (len(token) >= 20 or any(c.isdigit() for c in token)):
        return match[0]
    return f"{match['scheme']}{match['sep']}{REDACTED}{trail}"


def _expand_secret(secret: str) -> list[str]:
    secret = secret.strip()
    found = [secret]
    header = _HEADER_SECRET.match(secret)
    if header:
        found.append(header["value"])
    value = found[-1]
    auth = _AUTH_SCHEME_SECRET.match(value)
    if auth:
        found.append(auth["credentials"])
    return found


def _secret_variants(secrets: Iterable[str]) -> list[str]:
    """Every form in which a secret may appear in notebook text, longest first."""
    variants: set[str] = set()
    for secret in secrets:
        if not isinstance(secret, str):
            continue
        for value in _expand_secret(secret):
            if len(value) < MIN_SECRET_LENGTH:
                continue
            as_json = json.dumps(value)[1:-1]
            variants.update(
                {
                    value,
                    html.escape(value, quote=True),
                    html.escape(value, quote=False),
                    as_json,
                    # plotly's script-safe JSON (plotly.io.json: < > / as \u003c \u003e \u002f)
                    as_json.replace("<", "\\u003c").replace(">", "\\u003e").replace("/", "\\u002f"),
                    quote(value, safe=""),
                    quote_plus(value, safe=""),
                }
            )
    return sorted(variants, key=len, reverse=True)


def _join(text: Any) -> str:
    return "".join(text) if isinstance(text, list) else str(text)
