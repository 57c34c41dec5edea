"""Display helpers for the runbook's step functions: figures, HTML and tables in a notebook.

Every helper has a ``*_bundle`` twin that returns the mimebundle instead of publishing it, so
tests can check what a cell would show without a kernel.

Anything attacker-controlled (close reasons, user agents, URLs from logs) must pass through
``escape`` or ``show_table`` before it reaches HTML; ``show_html`` trusts its argument.
"""

from __future__ import annotations

import html
import json
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from runbook.report.mime import NOTEBOOK_ONLY_TAG, PLOTLY_MIMETYPE

# No "Produced with Plotly" link to plotly.com: the report must not invite a click to the net.
FIGURE_CONFIG: dict[str, Any] = {"displaylogo": False, "responsive": True}

# Same height as plotly's notebook renderer: a percentage height collapses in the exported report
# because the output area around the figure has no height of its own.
FIGURE_HEIGHT_PX = 525

DEFAULT_MAX_ROWS = 50


def figure_bundle(fig: go.Figure) -> dict[str, Any]:
    """Return the mimebundle that shows ``fig`` both in JupyterLab and in the HTML report.

    ``application/vnd.plotly.v1+json`` is what JupyterLab's plotly renderer draws; nbconvert
    drops that mimetype, so ``text/html`` carries a div and a script calling ``Plotly.newPlot``
    without plotly.js itself, which ``runbook.report.export`` inlines once per report.
    ``text/plain`` names the figure for consoles and logs. Text inside the figure is JSON-encoded
    script-safe by plotly and drawn by plotly.js as SVG text, never parsed as HTML.
    """
    # A Figure was validated as it was built; a dict is validated here. Either way this is a
    # copy, so the caller's figure is left alone, and it is encoded once for both mimetypes.
    figure = (fig if isinstance(fig, go.Figure) else go.Figure(fig)).to_dict()
    spec = json.loads(pio.to_json(figure, validate=False, remove_uids=False))
    spec["config"] = dict(FIGURE_CONFIG)
    fig_html = pio.to_html(
        figure,
        config=FIGURE_CONFIG,
        include_plotlyjs=False,
        include_mathjax=False,
        full_html=False,
        default_width="100%",
        default_height=FIGURE_HEIGHT_PX,
        validate=False,
    )
    return {
        PLOTLY_MIMETYPE: spec,
        "text/html": fig_html,
        "text/plain": f"<Figure: {_figure_title(figure)}>",
    }


def show_figure(fig: go.Figure) -> None:
    """Display ``fig`` in the running notebook (see ``figure_bundle`` for what is published)."""
    _publish(figure_bundle(fig))


def escape(text: Any) -> str:
    """Return ``text`` (any object, via ``str``) escaped for HTML text and attribute values."""
    return html.escape(str(text), quote=True)


def html_bundle(markup: str) -> dict[str, str]:
    """Return the mimebundle for a trusted HTML fragment; escape every untrusted part first."""
    return {"text/html": markup}


def show_html(markup: str) -> None:
    """Display a trusted HTML fragment; build it with ``escape`` around every untrusted value."""
    _publish(html_bundle(markup))


def table_bundle(df: pd.DataFrame, max_rows: int = DEFAULT_MAX_ROWS) -> dict[str, str]:
    """Return the mimebundle of ``df`` as an escaped HTML table of at most ``max_rows`` rows.

    Cells, column names and index labels are HTML-escaped. Longer frames show their first
    ``max_rows`` rows and a line saying how many were left out. Raises ``ValueError`` when
    ``max_rows`` is below 1.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    shown = df.head(max_rows)
    # A 0, 1, 2... index tells the responder nothing; a meaningful (labelled) one is kept.
    index = not isinstance(df.index, pd.RangeIndex)
    table = shown.to_html(escape=True, border=0, classes="ws-runbook-table", na_rep="", index=index)
    plain = shown.to_string(index=index)
    left_out = len(df) - len(shown)
    if left_out > 0:
        note = f"showing the first {len(shown)} of {len(df)} rows ({left_out} more not shown)"
        table += f'\n<p class="ws-runbook-table-note">{escape(note)}</p>'
        plain += f"\n{note}"
    return {"text/html": table, "text/plain": plain}


def show_table(df: pd.DataFrame, max_rows: int = DEFAULT_MAX_ROWS) -> None:
    """Display ``df`` as an escaped HTML table of at most ``max_rows`` rows."""
    _publish(table_bundle(df, max_rows))


def notebook_only_bundle(summary: str, text: str) -> tuple[dict[str, str], dict[str, Any]]:
    """A folded ``<details>`` block (escaped) and the output metadata that keeps it out of the report."""
    markup = f"<details><summary>{escape(summary)}</summary><pre>{escape(text)}</pre></details>"
    return {"text/html": markup, "text/plain": f"{summary}\n{text}"}, {"tags": [NOTEBOOK_ONLY_TAG]}


def show_notebook_only(summary: str, text: str) -> None:
    """Show ``text`` folded under ``summary`` in the notebook, never in report.html (a traceback)."""
    from IPython.display import publish_display_data

    bundle, metadata = notebook_only_bundle(summary, text)
    publish_display_data(bundle, metadata=metadata)


def _figure_title(figure: dict[str, Any]) -> str:
    title = figure.get("layout", {}).get("title")
    text = title.get("text") if isinstance(title, dict) else title
    return str(text) if text else "plotly figure"


def _publish(bundle: dict[str, Any]) -> None:
    # Imported here so the report layer stays importable (and testable) without IPython.
    from IPython.display import publish_display_data

    publish_display_data(bundle)


class LiveLine:
    """One line of HTML in the notebook that is replaced in place: a progress display that also
    leaves its final state in an executed (papermill) notebook, with no widget library."""

    def __init__(self, markup: str) -> None:
        from IPython.display import HTML, display

        self._html = HTML
        self._handle = display(HTML(markup), display_id=True)

    def update(self, markup: str) -> None:
        if self._handle is not None:
            self._handle.update(self._html(markup))
