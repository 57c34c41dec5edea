"""Display helpers: the mimebundles they build and what they publish."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import pytest
from plotly.offline import get_plotlyjs

from runbook.report.display import (
    DEFAULT_MAX_ROWS,
    PLOTLY_MIMETYPE,
    escape,
    figure_bundle,
    html_bundle,
    show_figure,
    show_html,
    show_table,
    table_bundle,
)

XSS_REASON = '<img src=x onerror="window.__xss=1">'
XSS_AGENT = "<script>window.__xss=2</script>"


@pytest.fixture
def figure() -> go.Figure:
    return go.Figure(go.Bar(x=["1000", "1006"], y=[3, 9]), layout={"title": {"text": "Close codes"}})


@pytest.fixture
def captured():
    """Collect what the helpers publish through an in-process IPython shell."""
    interactiveshell = pytest.importorskip("IPython.core.interactiveshell")
    from IPython.utils.capture import capture_output

    interactiveshell.InteractiveShell.instance()
    with capture_output() as cap:
        yield cap


def test_figure_bundle_has_plotly_mimetype_html_and_text(figure):
    """The bundle serves JupyterLab, the HTML report and plain consoles."""
    bundle = figure_bundle(figure)
    assert set(bundle) == {PLOTLY_MIMETYPE, "text/html", "text/plain"}
    spec = bundle[PLOTLY_MIMETYPE]
    assert spec["data"][0]["type"] == "bar" and spec["layout"]["title"]["text"] == "Close codes"
    assert spec["config"]["displaylogo"] is False
    assert bundle["text/plain"] == "<Figure: Close codes>"


def test_figure_html_draws_with_a_global_plotly_and_loads_nothing(figure):
    """The text/html part is a div and an inline newPlot call, without plotly.js or URLs."""
    fig_html = figure_bundle(figure)["text/html"]
    assert 'class="plotly-graph-div"' in fig_html and "Plotly.newPlot(" in fig_html
    assert get_plotlyjs()[:2000] not in fig_html
    assert "<script src" not in fig_html and "require(" not in fig_html
    assert "http://" not in fig_html and "https://" not in fig_html
    assert "height:525px" in fig_html


def test_figure_text_cannot_close_the_script(figure):
    """Attacker text in a figure stays inside its script as escaped JSON."""
    figure.update_layout(title_text="</script>" + XSS_AGENT)
    fig_html = figure_bundle(figure)["text/html"]
    assert fig_html.count("</script>") == 1
    assert XSS_AGENT not in fig_html


def test_figure_bundle_accepts_a_dict_and_leaves_the_figure_alone(figure):
    """A figure dict works and the caller's figure is not modified."""
    before = figure.to_json()
    figure_bundle(figure)
    assert figure.to_json() == before
    assert figure_bundle(figure.to_dict())[PLOTLY_MIMETYPE]["data"][0]["type"] == "bar"


def test_untitled_figure_plain_text():
    """An untitled figure is named generically in text/plain."""
    assert figure_bundle(go.Figure())["text/plain"] == "<Figure: plotly figure>"


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        (XSS_REASON, "&lt;img src=x onerror=&quot;window.__xss=1&quot;&gt;"),
        ("it's & <b>", "it&#x27;s &amp; &lt;b&gt;"),
        (1006, "1006"),
        (None, "None"),
    ],
)
def test_escape(raw, escaped):
    """escape handles markup, quotes, ampersands and non-strings."""
    assert escape(raw) == escaped


def test_table_bundle_escapes_cells_headers_and_index():
    """Every cell, column name and index label of the table is escaped."""
    df = pd.DataFrame({"<b>reason</b>": [XSS_REASON], "user_agent": [XSS_AGENT]}, index=["<i>row</i>"])
    table = table_bundle(df)["text/html"]
    assert "<img" not in table and "<script" not in table and "<b>" not in table and "<i>" not in table
    assert "&lt;img src=x onerror=" in table and "&lt;script&gt;window.__xss=2&lt;/script&gt;" in table
    assert "&lt;b&gt;reason&lt;/b&gt;" in table and "&lt;i&gt;row&lt;/i&gt;" in table


def test_table_bundle_caps_rows_and_says_so():
    """A long frame shows max_rows rows and a note on how many were left out."""
    df = pd.DataFrame({"code": range(120)})
    bundle = table_bundle(df, max_rows=10)
    assert bundle["text/html"].split("<tbody>")[1].count("<tr>") == 10
    assert "showing the first 10 of 120 rows (110 more not shown)" in bundle["text/html"]
    assert "110 more not shown" in bundle["text/plain"]


def test_table_bundle_short_frame_has_no_note():
    """A frame within the limit is shown whole, with no note."""
    bundle = table_bundle(pd.DataFrame({"code": [1000, 1006]}))
    assert "not shown" not in bundle["text/html"]
    assert DEFAULT_MAX_ROWS == 50


def test_table_bundle_rejects_nonpositive_max_rows():
    """max_rows below 1 is a programmer error."""
    with pytest.raises(ValueError, match="max_rows"):
        table_bundle(pd.DataFrame({"a": [1]}), max_rows=0)


def test_html_bundle_passes_trusted_markup():
    """show_html's bundle is the markup as given."""
    assert html_bundle("<p>ok</p>") == {"text/html": "<p>ok</p>"}


def test_show_helpers_publish_their_bundles(captured, figure):
    """show_figure, show_html and show_table publish display data in a kernel."""
    show_figure(figure)
    show_html("<p>" + escape(XSS_REASON) + "</p>")
    show_table(pd.DataFrame({"reason": [XSS_REASON]}))
    figure_out, html_out, table_out = captured.outputs
    assert PLOTLY_MIMETYPE in figure_out.data and "text/html" in figure_out.data
    assert html_out.data == {"text/html": "<p>&lt;img src=x onerror=&quot;window.__xss=1&quot;&gt;</p>"}
    assert "&lt;img" in table_out.data["text/html"]
