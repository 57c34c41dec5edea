"""Export an executed runbook notebook to the offline HTML postmortem (``report.html``).

The report opens from a chat attachment with no network: input cells are hidden, plotly.js is
inlined exactly once, and nothing is loaded from a CDN (no require.js, MathJax, mermaid or widget
manager). The nbconvert template doing this ships in ``runbook/report/templates/ws_report``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from html.parser import HTMLParser
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from plotly.offline import get_plotlyjs
from traitlets.config import Config

from runbook.errors import RunbookError
from runbook.report.mime import NOTEBOOK_ONLY_TAG, PLOTLY_MIMETYPE
from runbook.report.redact import redact_notebook

TEMPLATES_DIR = Path(__file__).parent / "templates"
TEMPLATE_NAME = "ws_report"

# Cells that never belong in a postmortem: papermill's parameter cells (values may be sensitive
# and their input is hidden anyway) and cells an author tagged for removal (jupyter-book's tag).
REMOVED_CELL_TAGS = frozenset({"parameters", "injected-parameters", "remove-cell"})


def export_html(
    notebook_path: str | os.PathLike,
    html_path: str | os.PathLike,
    title: str | None = None,
    secrets: Iterable[str] = (),
) -> Path:
    """Convert the executed notebook at ``notebook_path`` into a self-contained HTML report.

    Code input and prompts are hidden, markdown and outputs are kept; cells tagged as in
    ``REMOVED_CELL_TAGS`` and outputs tagged ``NOTEBOOK_ONLY_TAG`` are dropped. The notebook is passed through ``redact_notebook`` (with
    ``secrets``) first, as a second guard behind the caller's own redaction. ``title`` sets the
    page title (default: the notebook's ``metadata.title`` or its file name). plotly.js, taken
    from the installed plotly package, is inlined once when any output holds a figure.

    Writes UTF-8 HTML to ``html_path`` (creating its directory) and returns it as a ``Path``.
    Raises ``RunbookError`` when the notebook cannot be read.
    """
    notebook_path, html_path = Path(notebook_path), Path(html_path)
    try:
        nb = nbformat.read(notebook_path, as_version=4)
    except (OSError, ValueError) as err:  # nbformat's NotJSONError is a ValueError
        raise RunbookError(f"cannot read notebook {notebook_path}: {err}") from err
    nb = redact_notebook(nb, secrets)
    if title:
        nb.metadata["title"] = title

    exporter = HTMLExporter(
        config=_config(),
        template_name=TEMPLATE_NAME,
        extra_template_basedirs=[str(TEMPLATES_DIR)],
    )
    resources = {
        "metadata": {"name": notebook_path.stem},
        "ws_runbook": {"plotly_js": get_plotlyjs() if has_figures(nb) else ""},
    }
    body, _ = exporter.from_notebook_node(nb, resources=resources)

    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(body, encoding="utf-8")
    return html_path


def has_figures(nb: nbformat.NotebookNode) -> bool:
    """Tell whether any output of ``nb`` is a plotly figure (and so needs plotly.js)."""
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIMETYPE in data or "plotly-graph-div" in str(data.get("text/html", "")):
                return True
    return False


def external_references(html_text: str) -> list[str]:
    """Return every ``src``/``href`` value in ``html_text`` that points off the document.

    Anything but fragments (``#x``), ``data:`` URLs and relative paths counts: ``http:``,
    ``https:``, protocol-relative ``//host`` and other schemes. Script and style contents are
    not markup and are not searched. An offline report returns ``[]``.
    """
    collector = _ReferenceCollector()
    collector.feed(html_text)
    collector.close()
    return collector.external


def _config() -> Config:
    config = Config()
    config.TemplateExporter.exclude_input = True
    config.TemplateExporter.exclude_input_prompt = True
    config.TemplateExporter.exclude_output_prompt = True
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_cell_tags = set(REMOVED_CELL_TAGS)
    # Tracebacks and other notebook-only detail (runbook.report.display.show_notebook_only).
    config.TagRemovePreprocessor.remove_single_output_tags = {NOTEBOOK_ONLY_TAG}
    return config


class _ReferenceCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "srcset", "xlink:href", "action", "poster") and value:
                ref = value.strip()
                if not (ref.startswith(("#", "data:")) or _is_relative(ref)):
                    self.external.append(ref)

    handle_startendtag = handle_starttag


def _is_relative(ref: str) -> bool:
    # A relative path has no scheme ("x:" before any "/") and is not protocol-relative ("//").
    head = ref.split("/", 1)[0]
    return not ref.startswith("//") and ":" not in head
