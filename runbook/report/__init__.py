"""Everything the responder sees: plotly figures, notebook display helpers, the offline HTML
export, diagnosis.json and the redaction of secrets. No probing, no parsing."""
