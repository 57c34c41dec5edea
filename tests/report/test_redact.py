"""Redaction: secrets never reach a report, an executed notebook or a log."""

from __future__ import annotations

import copy
import json

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from runbook.report.display import figure_bundle, table_bundle
from runbook.report.redact import REDACTED, header_values, redact_notebook, redact_text

R = REDACTED


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def.ghi", f"Authorization: {R}"),
        ("authorization:Basic dXNlcjpwYXNz", f"authorization:{R}"),
        ("Proxy-Authorization: Basic Zm9vOmJhcg==", f"Proxy-Authorization: {R}"),
        ("Cookie: sid=abc123; theme=dark", f"Cookie: {R}"),
        ('Cookie: a="b c"; d=e', f"Cookie: {R}"),
        ("Set-Cookie: sid=abc; Path=/; HttpOnly\nServer: nginx", f"Set-Cookie: {R}\nServer: nginx"),
        ("X-Api-Key: 9f8e7d", f"X-Api-Key: {R}"),
        ('Cookie: "sid=abc"', f"Cookie: {R}"),
        ("x-api-key:\t9f8e7d", f"x-api-key:\t{R}"),
        ('curl -H "Cookie: sid=1" https://h/ws', f'curl -H "Cookie: {R}" https://h/ws'),
        ("curl -H 'Authorization: Bearer t0k' url", f"curl -H 'Authorization: {R}' url"),
    ],
)
def test_header_lines(text, expected):
    """Values of secret headers are redacted up to the end of the line or the quote."""
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"Authorization": "Bearer x", "n": 1}', f'{{"Authorization": "{R}", "n": 1}}'),
        ("{'Cookie': 'sid=abc123', 'X-Api-Key': 'k'}", f"{{'Cookie': '{R}', 'X-Api-Key': '{R}'}}"),
        ("[('Set-Cookie', 'a=b')]", f"[('Set-Cookie', '{R}')]"),
        ('{"Cookie": "a=\\"q\\"", "n": 1}', f'{{"Cookie": "{R}", "n": 1}}'),
        (
            "&quot;Authorization&quot;: &quot;Bearer x&quot;, &quot;y&quot;",
            f"&quot;Authorization&quot;: &quot;{R}&quot;, &quot;y&quot;",
        ),
    ],
)
def test_quoted_header_pairs(text, expected):
    """Header/value pairs in JSON, Python literals and escaped HTML are redacted in place."""
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<td>Cookie: a=b</td><td>ok</td>", f"<td>Cookie: {R}</td><td>ok</td>"),
        ('["Cookie: a=b","next"]', f'["Cookie: {R}","next"]'),
        ('{"msg":"Authorization: Basic Zm9v","code":1006}', f'{{"msg":"Authorization: {R}","code":1006}}'),
    ],
)
def test_header_values_stop_at_markup_and_json(text, expected):
    """A header value never swallows the tags or JSON that follow it."""
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sent Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig1", f"sent Bearer {R}"),
        ("bearer abcdefghijklmnopqrstuvwxyz", f"bearer {R}"),
        ("token Bearer t0k3n.", f"token Bearer {R}."),
        ("the bearer of bad news", "the bearer of bad news"),
        ("Bearer tokens expire; Bearer well-known", "Bearer tokens expire; Bearer well-known"),
    ],
)
def test_bearer_tokens(text, expected):
    """Bearer tokens are redacted anywhere; prose about bearers is left alone."""
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("wss://user:hunter2@example.com/ws", f"wss://{R}@example.com/ws"),
        ("https://ghp_abc123@github.com/o/r.git", f"https://{R}@github.com/o/r.git"),
        ("redis://:pw@10.0.0.1:6379/0", f"redis://{R}@10.0.0.1:6379/0"),
        ('"wss:\\u002f\\u002fu:p@h\\u002fws"', f'"wss:\\u002f\\u002f{R}@h\\u002fws"'),
        ("https://example.com/team/a@b.com", "https://example.com/team/a@b.com"),
        ("mail ops@example.com or mailto:ops@example.com", "mail ops@example.com or mailto:ops@example.com"),
    ],
)
def test_url_credentials(text, expected):
    """URL userinfo is redacted, also JSON-escaped; e-mail addresses are not userinfo."""
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("wss://h/ws?token=abc&room=1", f"wss://h/ws?token={R}&room=1"),
        ("/ws?Access_Token=x1#frag", f"/ws?Access_Token={R}#frag"),
        ("?a=1&amp;sig=xyz&amp;b=2", f"?a=1&amp;sig={R}&amp;b=2"),
        ("GET /ws?auth=1&key=2&apikey=3&api_key=4 HTTP/1.1", f"GET /ws?auth={R}&key={R}&apikey={R}&api_key={R} HTTP/1.1"),
        ("?password=p&secret=s&signature=g&jwt=j", f"?password={R}&secret={R}&signature={R}&jwt={R}"),
        ("?SESSION=s&ticket=t&refresh_token=r", f"?SESSION={R}&ticket={R}&refresh_token={R}"),
        ("?X-Amz-Signature=abc&X-Amz-Date=1", f"?X-Amz-Signature={R}&X-Amz-Date=1"),
        ("[logs](https://h/?jwt=abc)", f"[logs](https://h/?jwt={R})"),
        ('<a href="/x?token=abc">', f'<a href="/x?token={R}">'),
    ],
)
def test_query_string_values(text, expected):
    """Secret query parameters lose their values; the rest of the URL stays."""
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "keyboard",
        "monkey=1",
        "?monkey=1&hotkey=2&keyring=3&tokens=4",
        "key=3 token=4 session=5",
        "Cookies expired; authorization failed",
        "the cookie jar: empty",
        "close code 1006 (abnormal closure) after 60s idle, see nginx proxy_read_timeout",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
        "ws://example.com:8080/socket?room=lobby&v=2",
        "Cookie:\n",
    ],
)
def test_no_false_positives(text):
    """Ordinary text, logs and URLs without secrets come back unchanged."""
    assert redact_text(text) == text


def test_inlined_javascript_is_left_alone():
    """Script code that merely looks like headers or queries (plotly.js) is not rewritten."""
    from plotly.offline import get_plotlyjs

    plotly_js = get_plotlyjs()
    assert redact_text(plotly_js) == plotly_js
    assert redact_text('a&&b.key===c;d.key=e;f={COOKIE:"D, dd M yyyy",x:1}') == (
        'a&&b.key===c;d.key=e;f={COOKIE:"D, dd M yyyy",x:1}'
    )


def test_exact_secrets_in_all_their_escaped_forms():
    """A given secret is removed raw, HTML-, JSON-, plotly- and URL-escaped."""
    secret = 's3cr3t/<&>"x'
    forms = [
        secret,
        "s3cr3t/&lt;&amp;&gt;&quot;x",
        "s3cr3t/&lt;&amp;&gt;\"x",
        's3cr3t/<&>\\"x',
        's3cr3t\\u002f\\u003c&\\u003e\\"x',
        "s3cr3t%2F%3C%26%3E%22x",
    ]
    text = " | ".join(forms)
    assert redact_text(text, [secret]) == " | ".join([R] * len(forms))


def test_header_secret_also_redacts_its_value_and_credentials():
    """A 'Name: value' secret removes the line, the value and the bare credentials."""
    secret = "X-Probe-Auth: Token abcd-1234"
    text = "line X-Probe-Auth: Token abcd-1234; value Token abcd-1234; bare abcd-1234"
    assert redact_text(text, [secret]) == f"line {R}; value {R}; bare {R}"


def test_short_and_empty_secrets_are_ignored():
    """Empty secrets and secrets under four characters do not blank ordinary text."""
    assert redact_text("code 1006 at 10:01", ["", "  ", "1", "10"]) == "code 1006 at 10:01"


def test_header_values_for_header_env():
    """header_values returns each header line, its value and its credentials."""
    assert header_values(["Authorization: Bearer abc123", "not a header"]) == (
        "Authorization: Bearer abc123",
        "Bearer abc123",
        "abc123",
        "not a header",
    )


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer abc.def.ghi",
        '{"Cookie": "a=b"}',
        "wss://u:p@h/ws?token=t&sig=s",
        "Bearer t0k3n",
    ],
)
def test_idempotent(text):
    """Redacting twice gives the same text as redacting once."""
    once = redact_text(text)
    assert redact_text(once) == once


def _notebook(secret: str):
    nb = new_notebook(metadata={"papermill": {"parameters": {
        "target_url": "wss://u:pw1@h/ws", "api_token": secret, "header_env": ["WS_AUTH"],
        "connections": 8,
    }}})
    nb.cells = [
        new_code_cell('target_url = ""\napi_token = ""', metadata={"tags": ["parameters"]}),
        new_code_cell(f'# Parameters\ntarget_url = "wss://u:pw1@h/ws"\napi_token = "{secret}"\nconnections = 8\n',
                      metadata={"tags": ["injected-parameters"]}),
        new_markdown_cell(f"Endpoint: wss://h/ws?token={secret}"),
        new_code_cell("probe()", outputs=[
            new_output("stream", name="stdout", text=f"sent Authorization: Bearer {secret}\n"),
            new_output("display_data", data={
                "text/html": f"<p>Cookie: sid={secret}</p>",
                "text/plain": f"Cookie: sid={secret}",
                "application/json": {"headers": {"X-Api-Key": secret}, "n": [1, f"?key={secret}"]},
                "image/png": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB",
            }, metadata={"note": f"?jwt={secret}"}),
            new_output("error", ename="ProbeError", evalue=f"bad Bearer {secret}",
                       traceback=[f"url wss://u:{secret}@h"]),
        ]),
    ]
    return nb


def test_redact_notebook_covers_sources_outputs_and_metadata():
    """No trace of the secret is left anywhere in the notebook's JSON."""
    secret = "tok3n-9c1d"
    nb = _notebook(secret)
    out = redact_notebook(nb, secrets=[secret])
    dumped = json.dumps(out)
    assert secret not in dumped and "pw1" not in dumped
    assert out.metadata.papermill.parameters == {
        "target_url": f"wss://{R}@h/ws", "api_token": R, "header_env": ["WS_AUTH"], "connections": 8,
    }
    assert out.cells[3].outputs[1].data["image/png"] == nb.cells[3].outputs[1].data["image/png"]


def test_redact_notebook_replaces_secret_assignments_without_being_told():
    """Parameter cells lose the values of secret-looking names even with no secrets given."""
    out = redact_notebook(_notebook("plain-words-only"))
    injected = out.cells[1].source
    assert f'api_token = "{R}"' in injected and "plain-words-only" not in injected
    assert "connections = 8" in injected
    assert out.metadata.papermill.parameters["api_token"] == R
    assert out.cells[0].source == 'target_url = ""\napi_token = ""'  # empty defaults stay


def test_redact_notebook_is_pure():
    """The input notebook is left untouched."""
    nb = _notebook("tok3n-9c1d")
    before = copy.deepcopy(nb)
    redact_notebook(nb, secrets=["tok3n-9c1d"])
    assert nb == before


def test_redact_notebook_keeps_figures_and_tables_intact():
    """Outputs without secrets (figures, tables) come back byte for byte."""
    import pandas as pd
    import plotly.graph_objects as go

    fig = figure_bundle(go.Figure(go.Scatter(x=[1, 2], y=[3, 4], text=["1006 going away", "ok"])))
    table = table_bundle(pd.DataFrame({"code": [1006], "reason": ["keyboard monkey=1"]}))
    nb = new_notebook(cells=[new_code_cell("x", outputs=[
        new_output("display_data", data=fig), new_output("display_data", data=table),
    ])])
    assert redact_notebook(nb, secrets=["unrelated-secret"]) == nb


def test_redact_notebook_accepts_plain_dicts_with_list_sources():
    """A notebook loaded as plain JSON (sources as line lists) is redacted too."""
    nb = {"metadata": {}, "nbformat": 4, "nbformat_minor": 5, "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["see\n", "?token=abc\n"]},
        {"cell_type": "code", "metadata": {}, "execution_count": 1, "source": [],
         "outputs": [{"output_type": "stream", "name": "stdout", "text": ["Cookie: a=b\n"]}]},
    ]}
    out = redact_notebook(nb)
    assert out["cells"][0]["source"] == f"see\n?token={R}\n"
    assert out["cells"][1]["outputs"][0]["text"] == f"Cookie: {R}\n"


def test_url_secrets_cover_userinfo_basic_and_credential_query_values():
    """A URL's userinfo (as written, decoded, and as the Basic credentials sent from it) and its
    credential-looking query values are secrets; other query values and bad URLs give nothing."""
    import base64

    from runbook.report.redact import url_secrets

    found = url_secrets(["wss://bob:pa%21ss-word@h:8443/ws?room=7&accessToken=tok-123&X-Amz-Signature=abc9", "ws://[::1", ""])
    assert "pa!ss-word" in found and "bob:pa%21ss-word" in found
    assert base64.b64encode(b"bob:pa!ss-word").decode() in found
    assert "tok-123" in found and "abc9" in found and "7" not in found


def test_credential_keys_by_word_not_by_substring():
    """Credential words count wherever they stand in a key, but only as whole words."""
    from runbook.report.redact import is_credential_key

    for key in ("accessToken", "authToken", "api_key", "APIKey", "sig", "X-Amz-Signature", "client_secret", "sessionId"):
        assert is_credential_key(key), key
    for key in ("monkey", "keyboard", "design", "page", "tokenizer_mode"):
        assert not is_credential_key(key), key
