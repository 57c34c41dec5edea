"""What the notebook's outputs carry that the HTML export must know.

Here rather than in ``display``: the export runs in the ``ws-runbook run`` process, which then
never imports pandas and plotly's figure classes (0.15 s of every run).
"""

PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"

# Outputs tagged so are kept in the executed notebook and dropped from report.html
# (runbook.report.export removes them with nbconvert's TagRemovePreprocessor).
NOTEBOOK_ONLY_TAG = "ws-runbook-notebook-only"
