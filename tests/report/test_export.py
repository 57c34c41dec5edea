"""HTML export: a real papermill run, nbconvert with our template, then real headless Chromium."""

from __future__ import annotations

import os
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from plotly.offline import get_plotlyjs

from runbook.errors import RunbookError
from runbook.report.export import export_html, external_references, has_figures
from runbook.report.redact import header_values

REPO_ROOT = Path(__file__).resolve().parents[2]

CLOSE_REASON = '<img src=x onerror="window.__xss=1">'
USER_AGENT = "<script>window.__xss=2</script>"
FIGURE_LABEL = '<img src=x onerror="window.__xss=3">'
FIGURE_TITLE = "<script>window.__xss=4</script>"
TARGET_URL = "wss://ops:hunter2pass@ws.example.test/live?token=qs-secret-77&room=1"
AUTH_HEADER = "Authorization: Bearer envtoken-4f1c2a9e"
FIGURE_COUNT = 3

PARAMETERS_SOURCE = 'target_url = ""\nheader_env = []\nincident_id = "INC-0"'

FIGURES_SOURCE = f"""\
import plotly.graph_objects as go
from runbook.report.display import show_figure
show_figure(go.Figure(go.Bar(x=["1000", "1001", "1006"], y=[40, 12, 88]),
                      layout={{"title": {{"text": {FIGURE_TITLE!r}}}}}))
show_figure(go.Figure(go.Scatter(x=[{FIGURE_LABEL!r}, "ok"], y=[3, 1], mode="markers")))
show_figure(go.Figure(go.Scatter(x=[0, 30, 60, 90], y=[0.01, 0.02, 0.09, 0.12])))
"""

TABLE_SOURCE = f"""\
import os
import pandas as pd
from runbook.report.display import escape, show_html, show_table
show_table(pd.DataFrame({{"code": [1006, 1001], "reason": [{CLOSE_REASON!r}, "going away"],
                          "user_agent": [{USER_AGENT!r}, "Mozilla/5.0"]}}))
show_html("<p>Latest close reason: <code>" + escape({CLOSE_REASON!r}) + "</code></p>")
show_html("<p>Target: " + escape(target_url) + "</p>")
token = os.environ[header_env[0]].split()[-1]
show_html("<p>Probe credential in use: " + escape(token) + "</p>")
"""

KERNEL_SOURCE = "import sys\nprint(sys.prefix)"


def _build_notebook() -> nbformat.NotebookNode:
    nb = new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        }
    )
    nb.cells = [
        new_code_cell(PARAMETERS_SOURCE, metadata={"tags": ["parameters"]}),
        new_markdown_cell("# Incident INC-0\n\nDisconnects *spiked* at 03:12 UTC."),
        new_code_cell(FIGURES_SOURCE),
        new_code_cell(TABLE_SOURCE),
        new_code_cell(KERNEL_SOURCE, metadata={"tags": ["remove-cell"]}),
    ]
    return nb


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Run the notebook with papermill in the venv's python3 kernel and export it once."""
    papermill = pytest.importorskip("papermill")
    tmp = tmp_path_factory.mktemp("export")
    source, executed = tmp / "runbook.ipynb", tmp / "report.ipynb"
    nbformat.write(_build_notebook(), source)
    with pytest.MonkeyPatch.context() as mp:
        # The kernel imports runbook from this checkout, wherever pytest was started from.
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
        mp.setenv("WS_RUNBOOK_TEST_AUTH", AUTH_HEADER)
        papermill.execute_notebook(
            str(source),
            str(executed),
            kernel_name="python3",
            parameters={"target_url": TARGET_URL, "header_env": ["WS_RUNBOOK_TEST_AUTH"]},
            cwd=str(tmp),
            progress_bar=False,
            execution_timeout=120,
        )
    html_path = export_html(
        executed,
        tmp / "out" / "report.html",
        title="INC-0 <postmortem>",
        secrets=header_values([AUTH_HEADER]),
    )
    return executed, html_path, html_path.read_text(encoding="utf-8")


def test_papermill_uses_this_venv_kernel(exported):
    """The python3 kernel papermill started runs this interpreter's environment."""
    executed, _, _ = exported
    nb = nbformat.read(executed, as_version=4)
    (cell,) = [c for c in nb.cells if c.source == KERNEL_SOURCE]
    assert cell.outputs[0]["text"].strip() == sys.prefix


def test_every_figure_output_has_text_html(exported):
    """Each show_figure output carries text/html besides the plotly mimetype."""
    executed, _, _ = exported
    nb = nbformat.read(executed, as_version=4)
    figures = [
        o for c in nb.cells for o in c.get("outputs", [])
        if "application/vnd.plotly.v1+json" in o.get("data", {})
    ]
    assert len(figures) == FIGURE_COUNT
    assert all("plotly-graph-div" in o["data"]["text/html"] for o in figures)


def test_plotly_js_is_inlined_exactly_once(exported):
    """The report holds one copy of the installed plotly.js and loads no script by URL."""
    _, _, html = exported
    plotly_js = get_plotlyjs()
    assert html.count(plotly_js[:2000]) == 1
    scripts = _tags(html, "script")
    assert [s for s in scripts if "src" in s] == []


def test_no_require_js_mathjax_or_cdn(exported):
    """Nothing of require.js, MathJax or a CDN remains outside the inlined plotly.js."""
    _, _, html = exported
    rest = html.replace(get_plotlyjs(), "").lower()
    for needle in ("require.js", "require.min.js", "requirejs", "mathjax", "cdnjs", "jsdelivr", "unpkg"):
        assert needle not in rest, needle


def test_no_http_in_any_src_or_href(exported):
    """No src or href attribute names an http(s) URL."""
    _, _, html = exported
    refs = [value for attrs in _tags(html, None) for name, value in attrs.items()
            if name in ("src", "href") and value]
    assert [r for r in refs if "http://" in r or "https://" in r] == []
    assert external_references(html) == []


def test_input_code_is_hidden(exported):
    """No code cell source, prompt or removed cell reaches the report."""
    _, _, html = exported
    for needle in (
        "show_figure", "show_table", "import pandas", "header_env",
        "In&nbsp;[", 'class="jp-InputPrompt', 'class="jp-OutputPrompt', 'class="jp-CodeMirrorEditor',
    ):
        assert needle not in html, needle
    assert sys.prefix not in html  # output of the remove-cell cell
    assert "Disconnects <em>spiked</em> at 03:12 UTC." in html


def test_attacker_strings_are_escaped_in_markup(exported):
    """Close reasons and user agents appear only escaped in the HTML."""
    _, _, html = exported
    without_plotly = html.replace(get_plotlyjs(), "")
    for raw in (CLOSE_REASON, USER_AGENT):
        assert raw not in without_plotly
    assert "&lt;img src=x onerror=" in without_plotly
    assert "&lt;script&gt;window.__xss=2&lt;/script&gt;" in without_plotly


def test_secrets_do_not_reach_the_report(exported):
    """URL credentials, query tokens and header_env values are redacted in the HTML."""
    _, _, html = exported
    for secret in ("hunter2pass", "qs-secret-77", "envtoken-4f1c2a9e"):
        assert secret not in html
    assert "wss://[REDACTED]@ws.example.test/live?token=[REDACTED]&amp;room=1" in html


def test_title_is_escaped(exported):
    """The given title becomes the escaped page title."""
    _, _, html = exported
    assert "<title>INC-0 &lt;postmortem&gt;</title>" in html


@pytest.mark.real
def test_report_renders_offline_in_chromium(exported, browser_page):
    """In Chromium every figure draws, nothing but file:/data: loads and no console error."""
    _, html_path, _ = exported
    page = browser_page(html_path)
    assert page.console_errors == []
    assert page.figure_divs == FIGURE_COUNT
    assert page.plots == FIGURE_COUNT
    assert page.plots_with_svg == FIGURE_COUNT
    assert page.nonlocal_requests() == [] and page.blocked == []
    assert page.requests and all(url.startswith(("file:", "data:")) for url in page.requests)


@pytest.mark.real
def test_injected_markup_shows_as_text_in_chromium(exported, browser_page):
    """The XSS payloads are visible as text and none of them runs."""
    _, html_path, _ = exported
    page = browser_page(html_path)
    assert not page.xss_fired(), (page.xss, page.dialogs)
    for text in (CLOSE_REASON, USER_AGENT, FIGURE_TITLE, FIGURE_LABEL, "Incident INC-0"):
        assert text in page.text


def test_report_without_figures_has_no_plotly_js(tmp_path):
    """A notebook with no figure output gets no plotly.js."""
    nb = new_notebook(cells=[new_markdown_cell("# Nothing to plot")])
    nbformat.write(nb, tmp_path / "plain.ipynb")
    assert not has_figures(nb)
    html = export_html(tmp_path / "plain.ipynb", tmp_path / "plain.html").read_text()
    assert get_plotlyjs()[:2000] not in html
    assert "<title>plain</title>" in html and external_references(html) == []


def test_unreadable_notebook_raises_runbook_error(tmp_path):
    """A missing or corrupt notebook raises RunbookError naming the file."""
    (tmp_path / "bad.ipynb").write_text("{not json")
    for name in ("missing.ipynb", "bad.ipynb"):
        with pytest.raises(RunbookError, match=name):
            export_html(tmp_path / name, tmp_path / "x.html")


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ('<a href="#top">x</a><img src="data:image/png;base64,AA"><a href="other.html">', []),
        ('<script src="https://cdn.example/x.js"></script>', ["https://cdn.example/x.js"]),
        ('<link rel="stylesheet" href="//cdn.example/x.css">', ["//cdn.example/x.css"]),
        ('<img src="file:///etc/passwd">', ["file:///etc/passwd"]),
        ("<script>var s = '<img src=\"http://x\">';</script>", []),
    ],
)
def test_external_references(markup, expected):
    """external_references lists exactly the attributes that leave the document."""
    assert external_references(markup) == expected


def _tags(html: str, name: str | None) -> list[dict[str, str | None]]:
    """Attributes of every start tag called ``name`` (every tag when ``None``)."""

    class Collector(HTMLParser):
        found: list[dict[str, str | None]] = []

        def handle_starttag(self, tag, attrs):
            if name is None or tag == name:
                self.found.append(dict(attrs))

    collector = Collector()
    collector.found = []
    collector.feed(html)
    return collector.found


def test_notebook_only_outputs_stay_out_of_the_report(tmp_path):
    """A traceback shown with show_notebook_only is in the notebook, folded, and not in report.html."""
    from nbformat.v4 import new_output

    from runbook.report.display import notebook_only_bundle

    bundle, metadata = notebook_only_bundle("traceback (for a bug report)", "Traceback (most recent call last):\n  boom")
    cell = new_code_cell("x", outputs=[
        new_output("display_data", data={"text/html": "<b>STEP FAILED</b>"}),
        new_output("display_data", data=bundle, metadata=metadata),
    ])
    path = tmp_path / "nb.ipynb"
    nbformat.write(new_notebook(cells=[cell]), path)
    html = export_html(path, tmp_path / "report.html").read_text()
    assert "STEP FAILED" in html
    assert "most recent call last" not in html and "for a bug report" not in html
    assert "<details>" in bundle["text/html"] and "most recent call last" in bundle["text/plain"]
