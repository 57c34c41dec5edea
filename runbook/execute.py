"""Execute the runbook notebook headless and write the run's outputs.

papermill runs the notebook in a fresh kernel with an execution timeout; the executed notebook is
redacted before it is written as report.ipynb; nbconvert renders report.html from it; the
notebook's last step has written diagnosis.json. A runbook whose kernel died still gets a report.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import papermill

from runbook.errors import RunbookError
from runbook.params import validate_params
from runbook.report.export import export_html
from runbook.report.redact import header_env_secrets, redact_notebook, redact_text

DEFAULT_NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "websocket_disconnects.ipynb"
DEFAULT_TIMEOUT_S = 600
# Parameters that name files: resolved against the caller's folder before the kernel sees them.
_PATH_PARAMS = ("close_logs", "proxy_config", "output_dir")


@dataclass
class RunOutcome:
    output_dir: Path
    notebook: Path
    html: Path
    diagnosis: Path
    verdict: str | None  # None when diagnosis.json was not written
    failure: str | None  # why the notebook itself failed (kernel died, timeout); None if it ran

    @property
    def ok(self) -> bool:
        return self.failure is None and self.verdict is not None


def _absolute(values: dict[str, Any]) -> dict[str, Any]:
    cwd = Path.cwd()
    out = dict(values)
    for name in _PATH_PARAMS:
        value = out[name]
        if isinstance(value, list):
            out[name] = [str(cwd / os.path.expanduser(v)) for v in value]
        elif value:
            out[name] = str(cwd / os.path.expanduser(value))
    return out


def execute_runbook(
    params: dict[str, Any],
    notebook: Path = DEFAULT_NOTEBOOK,
    timeout_s: int = DEFAULT_TIMEOUT_S,
    output_dir: Path | None = None,
) -> RunOutcome:
    """Run the notebook with ``params``; raise ParameterError before executing if one is bad."""
    raw = dict(params)
    if output_dir is not None:
        raw["output_dir"] = str(output_dir)
    values = validate_params(raw)
    if not Path(notebook).is_file():
        raise RunbookError(f"notebook not found: {notebook}")
    values = _absolute(values)
    out = Path(values["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    diagnosis_path = out / "diagnosis.json"
    diagnosis_path.unlink(missing_ok=True)  # a stale verdict from an earlier run must not survive
    # Pass only what differs from the notebook's defaults, so the report shows what was set.
    injected = {name: value for name, value in values.items() if name in raw or name == "output_dir"}
    failure = None
    secrets = header_env_secrets(values["header_env"])
    scratch = Path(tempfile.mkdtemp(prefix="ws-runbook-"))
    raw_notebook = scratch / "executed.ipynb"
    try:
        try:
            papermill.execute_notebook(
                str(notebook),
                str(raw_notebook),
                parameters=injected,
                kernel_name="python3",
                progress_bar=False,
                request_save_on_cell_execute=False,
                execution_timeout=timeout_s,
                cwd=str(Path.cwd()),
            )
        except Exception as exc:  # noqa: BLE001 - papermill raises many kinds; all mean "it failed"
            last_line = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
            failure = redact_text(f"{type(exc).__name__}: {last_line}", secrets)
        report_ipynb = out / "report.ipynb"
        if raw_notebook.exists():
            executed = nbformat.read(raw_notebook, as_version=4)
            nbformat.write(redact_notebook(executed, secrets=secrets), report_ipynb)
        else:
            failure = failure or "the notebook produced no output"
            nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"Runbook failed: {failure}")]), report_ipynb)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    html = export_html(report_ipynb, out / "report.html", title=f"WebSocket disconnects: {values['incident_id'] or 'runbook'}", secrets=secrets)
    verdict = None
    if diagnosis_path.exists():
        verdict = json.loads(diagnosis_path.read_text(encoding="utf-8")).get("verdict")
    return RunOutcome(out, report_ipynb, html, diagnosis_path, verdict, failure)
