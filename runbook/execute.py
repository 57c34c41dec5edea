"""Execute the runbook notebook headless and write the run's outputs.

Before anything runs, everything that can be checked is: the parameters, the files they name,
the header_env variables, the probe budget against the cell timeout, and the output folder
(created, writable, its outputs not folders). A bad one raises ``ParameterError`` or
``RunbookError`` naming it; nothing is executed.

Then the output folder is locked for the run (a second run into it stops with a message), the
previous run's outputs are replaced by an "in progress" page, and papermill runs the notebook in
a fresh kernel with an execution timeout. The notebook writes diagnosis.json after every step,
so a timeout, a dead kernel or Ctrl-C still leaves what finished. The executed notebook is
redacted and written as report.ipynb, nbconvert renders report.html from it; both are written
atomically (temporary file, then rename). A run that did not finish says so at the top of both.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runbook.errors import ParameterError, RunbookError
from runbook.params import INPUT_PARAMS, has_inputs, validate_params
from runbook.report.outputs import write_atomic
from runbook.report.redact import header_env_secrets, redact_notebook, redact_text, url_secrets

# papermill, nbformat, jupyter_client and nbconvert are imported when a run starts: a bad
# parameter is then reported in a fraction of a second, not after seconds of imports.

DEFAULT_NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "websocket_disconnects.ipynb"
DEFAULT_TIMEOUT_S = 600
# Parameters that name files: resolved against the caller's folder before the kernel sees them.
_PATH_PARAMS = ("close_logs", "proxy_config", "output_dir")
# Time the probe cell needs beyond probe_seconds: handshakes, connection setup, server sampling.
PROBE_CELL_MARGIN_S = 30
OUTPUT_FILES = ("report.ipynb", "report.html", "diagnosis.json")
LOCK_FILE = ".ws-runbook.lock"


class RunInterrupted(RunbookError):
    """The run was stopped with Ctrl-C; what finished is in the outputs, marked unfinished."""

    def __init__(self, outcome: RunOutcome) -> None:
        super().__init__("interrupted by Ctrl-C")
        self.outcome = outcome


@dataclass
class RunOutcome:
    output_dir: Path
    notebook: Path
    html: Path
    diagnosis: Path
    verdict: str | None  # None when diagnosis.json was not written
    failure: str | None  # why the notebook itself failed (kernel died, timeout); None if it ran
    sample: bool = False  # ran on the bundled sample incident because no input was given
    unfinished_steps: list[str] | None = None  # steps diagnosis.json lists as not run
    failed_steps: list[tuple[str, str]] | None = None  # (step, why) of the steps that failed
    cause: str | None = None  # the leading cause, or what it is inconclusive between (terminal line)

    @property
    def ok(self) -> bool:
        return self.failure is None and self.verdict is not None


def cause_line(document: dict[str, Any] | None) -> str | None:
    """The leading cause with its probability, or the two causes it is inconclusive between."""
    if not document or document.get("verdict") == "healthy" or not document.get("ranked_causes"):
        return None
    ranked = document["ranked_causes"]
    leading = document.get("leading_cause")
    if leading:
        top = next(r for r in ranked if r["cause"] == leading)
        return f"{leading} ({top['probability']:.0%})"
    if not any(r["evidence"] for r in ranked):
        return "none: no evidence signal fired (give close logs, target_url or proxy_config)"
    first, second = ranked[0], ranked[1]
    return (f"inconclusive between {first['cause']} ({first['probability']:.0%}) and "
            f"{second['cause']} ({second['probability']:.0%})")


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


def check_given_inputs(raw: dict[str, Any], values: dict[str, Any], timeout_s: int) -> None:
    """Raise ParameterError for input that was given but cannot work; check nothing else.

    An input given explicitly empty (``-p close_logs ""``: an unset shell variable) when no other
    input is given would silently run the bundled sample; a path that does not exist, a glob
    that matches nothing, an unset header_env variable, or a probe budget that cannot fit in the
    cell timeout would only show up after the run.
    """
    empty = [name for name in INPUT_PARAMS if name in raw and raw[name] in ("", [], None, 0, "0", "[]")]
    if empty and not has_inputs(values):
        raise ParameterError(
            empty[0],
            "was given but is empty (an unset shell variable?): give a value, or leave every input "
            "out to see the bundled sample incident",
        )
    _check_paths(values)
    if values["header_env"]:
        from runbook.probes.target import read_header_env  # raises ParameterError naming the variable

        read_header_env(values["header_env"])
    probing = values["target_url"] or values["server_port"] or values["server_pid"]
    if probing and values["probe_seconds"] + PROBE_CELL_MARGIN_S > timeout_s:
        raise ParameterError(
            "probe_seconds",
            f"{values['probe_seconds']:g} s of probes do not fit in --timeout {timeout_s} s per cell: "
            f"raise --timeout to at least {values['probe_seconds'] + PROBE_CELL_MARGIN_S:.0f} or lower probe_seconds",
        )


def _check_paths(values: dict[str, Any]) -> None:
    matched_any = False
    for pattern in values["close_logs"]:
        expanded = os.path.expanduser(pattern)
        if glob.has_magic(expanded):
            matched_any |= bool(glob.glob(expanded))
            continue
        if not os.path.exists(expanded):
            raise ParameterError("close_logs", f"{pattern} does not exist: give the path of a close log (or a glob)")
        matched_any = True
    if values["close_logs"] and not matched_any:
        raise ParameterError("close_logs", f"no file matches {', '.join(values['close_logs'])}: check the globs and the folder")
    config = os.path.expanduser(values["proxy_config"])
    if config and not (glob.glob(config) if glob.has_magic(config) else os.path.exists(config)):
        raise ParameterError("proxy_config", f"{values['proxy_config']} matches no file: give the nginx or HAProxy config (a path or a glob)")


def prepare_output_dir(out: Path) -> Path:
    """Create ``out`` and make sure the run can write its outputs there; RunbookError if not."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), out)
        raise RunbookError(f"output folder {out} cannot be created: {blocker} is a file; give another --output-dir") from None
    except OSError as exc:
        raise RunbookError(f"output folder {out} cannot be created: {exc.strerror or exc}; give another --output-dir") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".ws-runbook-write-test-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise RunbookError(f"output folder {out} is not writable: {exc.strerror or exc}; give another --output-dir") from None
    for name in OUTPUT_FILES:
        if (out / name).is_dir():
            raise RunbookError(f"{out / name} is a folder, so the run cannot write its {name}: remove it or give another --output-dir")
    return out


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on the output folder for one run; RunbookError when another holds it.

    flock(2) locks are released by the kernel when the holder dies, so a killed run never leaves
    the folder locked.
    """
    path = out / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another run"
            raise RunbookError(
                f"output folder {out} is in use by another ws-runbook run ({holder}): wait for it to finish "
                "or give another --output-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, started {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC".encode(), 0)
        yield
    finally:
        os.close(fd)


def _quiet_loggers() -> None:
    """Keep what papermill, nbclient and asyncio log ("Kernel died while waiting for execute
    reply", "Task exception was never retrieved" after Ctrl-C) off the terminal: the CLI prints
    the outcome itself, from the exception and diagnosis.json. For the rest of this process,
    which is one CLI command (asyncio may still log at interpreter exit)."""
    for name in ("papermill", "nbclient", "asyncio", "traitlets"):
        logger = logging.getLogger(name)
        logger.handlers = [logging.NullHandler()]
        logger.propagate = False


def _quiet_kernel_manager(stderr_path: Path) -> type:
    """A kernel manager class whose kernel's own stderr (IPKernelApp's "running over TCP without
    encryption" warning, zmq noise at shutdown) goes to ``stderr_path``, not the responder's
    terminal. Cell output still reaches the notebook: ipykernel sends it over iopub, not fd 2."""
    from jupyter_client import AsyncKernelManager

    class QuietKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            kw["stderr"] = open(stderr_path, "ab")  # noqa: SIM115 - the kernel process owns it
            return await super()._async_launch_kernel(kernel_cmd, **kw)

    return QuietKernelManager


ENGINE_NAME = "ws-runbook"


def _register_engine() -> None:
    """papermill's nbclient engine, writing the executed notebook once, when the run ends.

    papermill saves the whole notebook as every cell starts and ends: ~60 JSON encodings of a
    notebook that carries plotly figures, seconds per run. Ours lives in a scratch folder read
    only after papermill returns or raises, and papermill's own ``finally`` saves it once more
    then (Ctrl-C, a timeout and a dead kernel included), so that last save is the one kept.
    """
    from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines

    class SaveAtEnd(NotebookExecutionManager):
        ending = False

        def save(self, **kwargs: Any) -> None:
            if self.ending:
                super().save(**kwargs)

        def notebook_complete(self, **kwargs: Any) -> None:
            self.ending = True
            super().notebook_complete(**kwargs)

    class Engine(NBClientEngine):
        @classmethod
        def execute_notebook(cls, nb: Any, kernel_name: str, output_path: str | None = None, progress_bar: bool = True,
                             log_output: bool = False, autosave_cell_every: int = 30, **kwargs: Any) -> Any:
            manager = SaveAtEnd(nb, output_path=output_path, progress_bar=progress_bar, log_output=log_output,
                                autosave_cell_every=autosave_cell_every)
            manager.notebook_start()
            try:
                cls.execute_managed_notebook(manager, kernel_name, log_output=log_output, **kwargs)
            finally:
                manager.cleanup_pbar()
                manager.notebook_complete()
            return manager.nb

    papermill_engines.register(ENGINE_NAME, Engine)


def execute_runbook(
    params: dict[str, Any],
    notebook: Path = DEFAULT_NOTEBOOK,
    timeout_s: int = DEFAULT_TIMEOUT_S,
    output_dir: Path | None = None,
) -> RunOutcome:
    """Run the notebook with ``params``; raise ParameterError/RunbookError before executing if
    anything is wrong (see the module docstring), RunInterrupted on Ctrl-C once the outputs say so.
    """
    raw = dict(params)
    if output_dir is not None:
        raw["output_dir"] = str(output_dir)
    values = validate_params(raw)
    check_given_inputs(raw, values, timeout_s)
    if not Path(notebook).is_file():
        raise RunbookError(f"notebook not found: {notebook}")
    values = _absolute(values)
    out = prepare_output_dir(Path(values["output_dir"]))
    sample = not has_inputs(values)
    with output_lock(out):
        return _execute_locked(raw, values, Path(notebook), timeout_s, out, sample)


def _execute_locked(raw: dict, values: dict, notebook: Path, timeout_s: int, out: Path, sample: bool) -> RunOutcome:
    import nbformat
    import papermill

    from runbook.report.export import export_html

    started = time.time()
    diagnosis_path, report_ipynb, report_html = out / "diagnosis.json", out / "report.ipynb", out / "report.html"
    # The previous run's outputs must not survive looking like this run's.
    diagnosis_path.unlink(missing_ok=True)
    report_ipynb.unlink(missing_ok=True)
    write_atomic(report_html, _placeholder_html(datetime.now(UTC)).encode("utf-8"))
    # Pass only what differs from the notebook's defaults, so the report shows what was set.
    injected = {name: value for name, value in values.items() if name in raw or name == "output_dir"}
    secrets = [*header_env_secrets(values["header_env"]), *url_secrets([values["target_url"], values["direct_url"]])]
    failure = None
    interrupted = False
    scratch = Path(tempfile.mkdtemp(prefix="ws-runbook-"))
    raw_notebook = scratch / "executed.ipynb"
    try:
        try:
            _quiet_loggers()
            _register_engine()
            papermill.execute_notebook(
                str(notebook),
                str(raw_notebook),
                parameters=injected,
                engine_name=ENGINE_NAME,
                kernel_name="python3",
                progress_bar=False,
                # Given the path, the engine saves once as the run ends, however it ends: a run
                # stopped by Ctrl-C keeps what it showed.
                request_save_on_cell_execute=True,
                execution_timeout=timeout_s,
                cwd=str(Path.cwd()),
                kernel_manager_class=_quiet_kernel_manager(scratch / "kernel-stderr.log"),
                # When the steps are done the kernel holds nothing to save (diagnosis.json is
                # written, every output received): it is killed, not asked to exit. Asked, it
                # took 0.1-0.3 s, and about one run in 6-20 here missed the request and waited
                # for jupyter_client's SIGTERM (2.5 s by default).
                shutdown_kernel="immediate",
            )
        except KeyboardInterrupt:
            interrupted = True
            failure = "interrupted by Ctrl-C before the last step"
        except Exception as exc:  # noqa: BLE001 - papermill raises many kinds; all mean "it failed"
            failure = redact_text(_failure_text(exc, timeout_s), secrets)
        document = _read_own_diagnosis(diagnosis_path, started)
        unfinished = _unfinished(document)
        if document is not None and unfinished and failure is None:
            failure = "the run stopped before these steps: " + ", ".join(unfinished)
        if raw_notebook.exists():
            executed = nbformat.read(raw_notebook, as_version=4)
        else:
            failure = failure or "the notebook produced no output"
            executed = nbformat.v4.new_notebook()
        if failure is not None:
            executed.cells.insert(0, nbformat.v4.new_markdown_cell(_unfinished_banner(failure, document, unfinished)))
        tmp_ipynb = scratch / "report.ipynb"
        nbformat.write(redact_notebook(executed, secrets=secrets), tmp_ipynb)
        tmp_html = export_html(tmp_ipynb, scratch / "report.html", title=f"WebSocket disconnects: {values['incident_id'] or 'runbook'}", secrets=secrets)
        write_atomic(report_ipynb, tmp_ipynb.read_bytes())
        write_atomic(report_html, tmp_html.read_bytes())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    verdict = document.get("verdict") if document is not None else None
    failed = [(s["step"], s["detail"]) for s in (document or {}).get("steps", []) if s.get("status") == "error"]
    outcome = RunOutcome(out, report_ipynb, report_html, diagnosis_path, verdict, failure, sample, unfinished, failed,
                         cause_line(document))
    if interrupted:
        raise RunInterrupted(outcome)
    return outcome


def _failure_text(exc: Exception, timeout_s: int) -> str:
    """What stopped the run, by the exception's type (nbclient's documented classes), never by
    the wording of its message."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    if isinstance(exc, CellTimeoutError):
        return f"a cell ran longer than --timeout {timeout_s} s and was stopped"
    if isinstance(exc, DeadKernelError):
        return "the kernel died (out of memory?) while running a step"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[-1] if text else ''}"


def _read_own_diagnosis(path: Path, started: float) -> dict | None:
    """diagnosis.json if this run wrote it (after it started), else None."""
    try:
        if path.stat().st_mtime < started - 1:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _unfinished(document: dict | None) -> list[str]:
    if document is None:
        return []
    return [s["step"] for s in document.get("steps", []) if s.get("status") == "not_run"]


def _unfinished_banner(failure: str, document: dict | None, unfinished: list[str]) -> str:
    lines = [f"# This run did not finish\n\n**{failure}.**\n"]
    if document is not None:
        done = [f"{s['step']} ({s['status']})" for s in document.get("steps", []) if s.get("status") != "not_run"]
        lines.append(f"Finished: {', '.join(done) or 'none'}.\n")
        lines.append(f"Not run: {', '.join(unfinished) or 'none'}.\n")
        lines.append(f"The verdict so far ({document.get('verdict')}) covers only the finished steps.")
    else:
        lines.append("No step result was written: nothing below is a diagnosis.")
    return "\n".join(lines)


def _placeholder_html(when: datetime) -> str:
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>ws-runbook: run in progress</title></head>"
        f"<body><h1>Run in progress (started {when:%Y-%m-%d %H:%M:%S} UTC)</h1>"
        "<p>If you read this after the run ended, it was stopped before it could write its report: "
        "no diagnosis here. See diagnosis.json, if present, for the steps that finished.</p></body></html>\n"
    )
