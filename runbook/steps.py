"""The runbook's steps, one function per checklist step, shared by the notebook and the tests.

Each step takes the ``Run`` and returns nothing: it records its outcome in ``run.steps`` (ok,
skipped with the reason, or error with the message) and shows its result when the run is
interactive. A step that fails never stops the runbook: the next step runs and the report renders.

    run = start_run(close_logs=["/var/log/ws/*.log"])
    check_inputs(run); read_close_logs(run); ...
    # or all at once, without display:
    run = run_all({"close_logs": [...]})
"""

from __future__ import annotations

import functools
import glob
import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from runbook.diagnosis import TITLES, Diagnosis, SymptomId, SymptomStatus, Verdict, counted_signals, diagnose
from runbook.diagnosis.compare import compare
from runbook.diagnosis.probe_rules import probe_signals
from runbook.errors import ParameterError, RunbookError
from runbook.logs.pipeline import observe_close_logs
from runbook.observations import Event, Observations, ParsedLog, ProbeReport, empty_log_frame
from runbook.params import INPUT_PARAMS, has_inputs, validate_params
from runbook.probes import probe_server, probe_url, run_sync
from runbook.probes.churn import ChurnProgress
from runbook.probes.summary import summary_rows
from runbook.report import figures
from runbook.report.display import LiveLine, escape, show_figure, show_html, show_notebook_only, show_table
from runbook.report.document import diagnosis_document
from runbook.report.outputs import write_diagnosis_json
from runbook.report.redact import header_env_secrets, redact_value, url_secrets

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLES_DIR = REPO_ROOT / "data" / "samples"
# The bundled incident shown when no input is given: nginx's 60 s default read timeout.
SAMPLE_INCIDENT = "proxy_timeout"
SAMPLE_LOGS = ("close-log.jsonl", "server.log")
GENERIC_SHOWN = 10  # records of the generic log fallback listed, per file
SAMPLE_HEARTBEAT_S = 90.0  # the sample's servers ping every 90 s (its lab-run.json settings)


class SkipStep(Exception):
    """Raised by a step whose input was not given: recorded as skipped with the reason."""


class StepProblem(Exception):
    """Raised by a step that could not do its job for a reason the responder can fix.

    ``str(problem)`` says why; ``fix`` says what to do. Shown in the step's error box.
    """

    def __init__(self, why: str, fix: str) -> None:
        super().__init__(why)
        self.fix = fix


@dataclass
class StepRecord:
    step: str
    status: str  # ok, error, skipped; "not_run" only in diagnosis.json of an unfinished run
    detail: str
    duration_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"step": self.step, "status": self.status, "detail": self.detail}
        if self.duration_s is not None:
            record["duration_s"] = round(self.duration_s, 3)
        return record


@dataclass
class Run:
    """The state of one runbook run: parameters, what was observed, what each step did."""

    params: dict[str, Any]
    sample: bool  # running on the bundled sample incident because no input was given
    started_at: datetime
    interactive: bool = True
    # The box at the top of the report that write_postmortem fills with the verdict and the fix.
    summary_line: LiveLine | None = None
    parsed_logs: list[ParsedLog] = field(default_factory=list)
    frame: pd.DataFrame | None = field(default_factory=empty_log_frame)  # None: too large to hold (see read_close_logs)
    # Records whose timestamps fall far outside the incident window (a clock that was off).
    outliers: pd.DataFrame = field(default_factory=empty_log_frame)
    observations: Observations = field(default_factory=Observations)
    steps: list[StepRecord] = field(default_factory=list)
    # Before/after rows against a previous run's diagnosis.json (the baseline step), and its path.
    comparison: list[dict[str, str]] = field(default_factory=list)
    comparison_source: str = ""

    @property
    def incident_id(self) -> str:
        return self.params["incident_id"] or f"ws-{self.started_at:%Y%m%d-%H%M%S}"

    @property
    def output_dir(self) -> Path:
        return Path(self.params["output_dir"]).expanduser()

    @property
    def diagnosis(self) -> Diagnosis:
        """Recomputed from the current observations: pure and cheap."""
        return diagnose(self.observations)

    def show(self, render: Callable[[], None]) -> None:
        if self.interactive:
            render()


def start_run(interactive: bool = True, **params: Any) -> Run:
    """Validate the parameters (ParameterError names the bad one) and start a run.

    With no input at all the run uses the bundled sample incident; once any input is given,
    nothing of the sample is used.
    """
    values = validate_params(params)
    sample = not has_inputs(values)
    if sample:
        values["close_logs"] = [str(SAMPLES_DIR / SAMPLE_INCIDENT / name) for name in SAMPLE_LOGS]
        values["proxy_config"] = str(SAMPLES_DIR / SAMPLE_INCIDENT / "nginx.conf")
        if not values["heartbeat_interval_s"]:
            values["heartbeat_interval_s"] = SAMPLE_HEARTBEAT_S
    run = Run(params=values, sample=sample, started_at=datetime.now(UTC), interactive=interactive)
    run.observations.heartbeat_interval_s = values["heartbeat_interval_s"] or None
    return run


def step(name: str) -> Callable[[Callable[[Run], str]], Callable[[Run], None]]:
    """Make a step function isolated: its outcome is recorded, its exception shown, not raised."""

    def decorate(function: Callable[[Run], str]) -> Callable[[Run], None]:
        @functools.wraps(function)
        def wrapper(run: Run) -> None:
            started = time.monotonic()
            trace = None
            try:
                status, detail = "ok", function(run) or ""
            except SkipStep as skip:
                status, detail = "skipped", str(skip)
                run.show(lambda: show_html(_box("skipped", f"{name}: {detail}", "#777")))
            except Exception as exc:  # noqa: BLE001 - a failing step must not stop the runbook
                status, detail, trace = "error", _error_text(exc), traceback.format_exc()
                run.show(lambda failure=exc: _show_failure(name, failure, trace))
            elapsed = time.monotonic() - started
            run.steps.append(StepRecord(name, status, detail, elapsed))
            run.show(lambda: show_html(f'<p style="color:#777;font-size:smaller">step {escape(name)}: {status}, {elapsed:.1f} s</p>'))
            if name != "outputs":
                save_progress(run)

        wrapper.step_name = name  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _error_text(exc: Exception) -> str:
    return str(exc) if isinstance(exc, (StepProblem, RunbookError)) else f"{type(exc).__name__}: {exc}"


def _what_to_do(exc: Exception) -> str:
    if isinstance(exc, StepProblem):
        return exc.fix
    if isinstance(exc, ParameterError):
        return "fix the parameter named above (parameters cell, or -p NAME VALUE) and run again"
    if isinstance(exc, MemoryError):
        return "the input is too large for this machine: give fewer or smaller files (the incident's hours)"
    if isinstance(exc, OSError):
        return "check that the file or folder named above exists and can be read or written, then run again"
    if isinstance(exc, RunbookError):
        return "fix what the message names and run again"
    return ("the other steps ran without this one; this is a bug in ws-runbook: report it with the traceback "
            "(folded under this box in the notebook, report.ipynb)")


def _show_failure(name: str, exc: Exception, trace: str) -> None:
    """What failed, why and what to do; the traceback folded, in the notebook only."""
    show_html(
        '<div style="border-left:4px solid #d62728;padding:6px 10px;margin:6px 0;background:#fafafa">'
        f"<b>STEP FAILED: {escape(name)}</b><br>why: {escape(_error_text(exc))}<br>"
        f"what to do: {escape(_what_to_do(exc))}</div>"
    )
    show_notebook_only("traceback (for a bug report)", trace)


def save_progress(run: Run) -> None:
    """Write diagnosis.json as it stands, steps not yet run marked not_run, so a run that stops
    (cell timeout, dead kernel, Ctrl-C) still leaves what finished. Best effort: the outputs
    step reports a folder that cannot be written."""
    try:
        write_diagnosis_json(_redacted(run, diagnosis_json(run, complete=False)), run.output_dir / "diagnosis.json")
    except (OSError, RunbookError):
        pass


def _redacted(run: Run, document: dict[str, Any]) -> dict[str, Any]:
    # Step details and probe errors can quote URLs and server answers.
    secrets = (*header_env_secrets(run.params["header_env"]), *url_secrets([run.params["target_url"], run.params["direct_url"]]))
    return redact_value(document, secrets)


def show_summary(run: Run) -> None:
    """Reserve the top of the report for the verdict, the leading cause and the one fix.

    ``write_postmortem`` fills it in; until then it says the run has not reached its end, which
    is what a report cut short keeps showing.
    """
    if run.interactive:
        run.summary_line = LiveLine(_box("summary", "the verdict, the leading cause and the fix appear here when the run reaches its end; if this stays, the run stopped before it", "#777"))


def summary_html(run: Run) -> str:
    """The verdict, the leading cause (or what it is between) and the one fix, as HTML."""
    diagnosis = run.diagnosis
    verdict = diagnosis.verdict
    color = {Verdict.DEGRADED: "#d62728", Verdict.HEALTHY: "#2ca02c"}.get(verdict, "#777")
    parts = [f"<b>verdict: {escape(verdict.value)}</b>"]
    if run.sample:
        parts.append(f"(bundled sample incident '{escape(SAMPLE_INCIDENT)}', not your service)")
    if no_evidence(run):
        parts.append("<br>no evidence: nothing could be read, so no cause can be named. " + escape(_what_to_give(run)))
    elif diagnosis.leading is not None:
        leading = diagnosis.leading
        parts.append(f"<br>leading cause: <b>{escape(leading.cause.value)}</b> ({leading.probability:.0%}): {escape(TITLES[leading.cause])}")
    elif verdict is not Verdict.HEALTHY:
        first, second = diagnosis.ranked[0], diagnosis.ranked[1]
        parts.append(f"<br>inconclusive between {escape(first.cause.value)} ({first.probability:.0%}) and {escape(second.cause.value)} ({second.probability:.0%})")
    if diagnosis.recommendations and diagnosis.signals:
        fix = diagnosis.recommendations[0]
        parts.append(f"<br>the fix: {escape(fix.title)}<pre><code>{escape(fix.snippet)}</code></pre>")
    failed = [s.step for s in run.steps if s.status == "error"]
    if failed:
        parts.append(f"<br>steps that failed: {escape(', '.join(failed))} (see their boxes below)")
    return f'<div style="border-left:6px solid {color};padding:8px 12px;margin:6px 0;background:#fafafa">{" ".join(parts)}</div>'


def no_evidence(run: Run) -> bool:
    """Nothing at all was read: no log records, no probe, no config."""
    obs = run.observations
    return obs.logs is None and obs.probes is None and getattr(obs, "config", None) is None


def _what_to_give(run: Run) -> str:
    problems = [p.error for p in run.parsed_logs if p.error]
    given = "; ".join(problems[:3])
    return (
        (f"What went wrong: {given}. " if given else "")
        + "Give close_logs (paths or globs of the server's close logs), target_url (the ws:// or wss:// URL users "
        "reach), proxy_config (the nginx or HAProxy config) or server_port."
    )


def _box(label: str, text: str, color: str) -> str:
    return (
        f'<div style="border-left:4px solid {color};padding:6px 10px;margin:6px 0;background:#fafafa">'
        f"<b>{escape(label.upper())}</b> {escape(text)}</div>"
    )


# --- inputs ---------------------------------------------------------------------------------


@step("inputs")
def check_inputs(run: Run) -> str:
    """Say what the run works on; on the sample incident, a banner naming the parameters to set."""
    if run.sample:
        text = (
            f"No input was given, so this runbook shows the bundled sample incident "
            f"'{SAMPLE_INCIDENT}' from data/samples/. Set close_logs (and target_url, direct_url, "
            "proxy_config, server_port or server_pid as you have them) in the parameters cell to "
            "diagnose your own service."
        )
        run.show(lambda: show_html(_box("sample incident", text, "#ff7f0e")))
        return f"sample incident {SAMPLE_INCIDENT}"
    given = [name for name in (*INPUT_PARAMS, "heartbeat_interval_s") if run.params[name]]
    rows = pd.DataFrame({"parameter": given, "value": [_describe(run.params[name]) for name in given]})
    run.show(lambda: show_table(rows))
    return "inputs: " + ", ".join(given)


def _describe(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


# --- close logs -----------------------------------------------------------------------------


def nginx_log_formats(proxy_config: str) -> list:
    """The access-log formats an nginx ``proxy_config`` defines (``log_format`` directives, its
    includes followed), so access logs written in them are read; [] without one or on any error."""
    if not proxy_config:
        return []
    from runbook.configs import Files, detect_kind, glob_files, read_file
    from runbook.configs.nginx_parse import parse_nginx, walk
    from runbook.logs.nginx import access_formats_from_directives

    formats = []
    for path in glob_files(proxy_config) if glob.has_magic(proxy_config) else [proxy_config]:
        try:
            text = read_file(path)
            if detect_kind(text) != "nginx":
                continue
            tree = parse_nginx(path, Files(read_file, glob_files), text)
        except (OSError, ValueError):
            continue  # the proxy_config step reports an unreadable config
        formats += access_formats_from_directives((stmt.name, stmt.args) for stmt in walk(tree.stmts))
    return formats


@step("close_logs")
def read_close_logs(run: Run) -> str:
    """Parse the close logs into the normalized frame; show what was read, malformed lines included."""
    if not run.params["close_logs"]:
        raise SkipStep("close_logs not provided: set it to a list of log paths or globs")
    # A clock that was off (1970, 2099) must not stretch the window every per-minute figure spans.
    observed = observe_close_logs(
        run.params["close_logs"],
        log_format=run.params["log_format"] or None,
        log_timezone=run.params["log_timezone"],
        extra_formats=nginx_log_formats(run.params["proxy_config"]),
        dask_scheduler=run.params["dask_scheduler"],
    )
    run.parsed_logs = observed.sources
    # run.frame holds every record for exploring in the notebook, unless the logs were too large
    # to hold and were summarized in parts (then it is None and the figures below are all there is).
    run.frame, run.outliers = observed.frame, observed.outliers
    readable = [p for p in run.parsed_logs if p.ok]
    run.observations.log_formats = observed.formats
    run.observations.logs, run.observations.state = observed.logs, observed.state
    table = pd.DataFrame(
        {
            "source": [_short(p.source) for p in run.parsed_logs],
            "format": [p.format or "-" for p in run.parsed_logs],
            # how sure detection was; "forced" when the log_format parameter named the format
            "detected": [
                "-" if p.format is None else "forced" if p.confidence is None else f"{p.confidence:.0%}"
                for p in run.parsed_logs
            ],
            "lines": [p.lines_total for p in run.parsed_logs],
            "records": [p.records for p in run.parsed_logs],
            "malformed": [p.malformed_count for p in run.parsed_logs],
            "other lines": [p.ignored_lines for p in run.parsed_logs],
            "problem": [p.error or "" for p in run.parsed_logs],
            "notes": ["; ".join(p.notes) for p in run.parsed_logs],
        }
    )
    outliers = pd.DataFrame(
        {
            "source": run.outliers["source"].astype(str).map(_short),
            "line": run.outliers["line_no"],
            "ts": run.outliers["ts"].astype(str),
            "event": run.outliers["event"],
        }
    )
    examples = pd.DataFrame(
        [(_short(p.source), m.line_no, m.problem, m.text) for p in run.parsed_logs for m in p.malformed_examples],
        columns=["source", "line", "problem", "text"],
    )
    # Records the generic fallback took: shown with their lines, so a reader can judge each one.
    generic_rows = [
        (_short(p.source), int(line), event, "" if pd.isna(code) else int(code), reason)
        for p in run.parsed_logs
        if p.format == "generic"
        for line, event, code, reason in p.frame[["line_no", "event", "code", "reason"]].head(GENERIC_SHOWN).itertuples(index=False)
    ]
    generic = pd.DataFrame(generic_rows, columns=["source", "line", "event", "code", "reason"])
    logs = run.observations.logs

    def render() -> None:
        show_table(table)
        if len(generic):
            show_html(
                "<p><b>Read by the generic fallback</b> (no known format matched these files; the lines it used, "
                f"first {GENERIC_SHOWN} per file):</p>"
            )
            show_table(generic)
        if len(examples):
            show_html("<p><b>Malformed lines</b> (counted above; first examples):</p>")
            show_table(examples)
        if len(outliers):
            shown = "" if observed.outlier_count == len(outliers) else f" (the first {len(outliers)} shown)"
            show_html(
                f"<p><b>{observed.outlier_count} records dated far outside the incident window</b> (a clock that was off?): "
                f"counted, shown here{shown} and left out of every figure.</p>"
            )
            show_table(outliers)
        if logs is not None:
            show_html(
                f"<p>{logs.connects} connects, {logs.disconnects} disconnects, {logs.errors} errors "
                f"from {escape(str(logs.window_start))} to {escape(str(logs.window_end))} "
                f"({logs.window_minutes:.1f} min).</p>"
            )
            if not logs.codes.empty:
                show_figure(figures.close_codes_figure(logs))
            reasons = logs.top_reasons
            if len(reasons):
                show_html("<p><b>Most frequent close reasons and errors</b> (as logged):</p>")
                show_table(reasons)

    run.show(render)
    if not readable:
        problems = "; ".join(p.error or "no known format" for p in run.parsed_logs)
        raise StepProblem(
            f"no close log could be read: {problems}",
            "give close_logs that exist and hold close records (paths or globs; the problem column above says what each file lacked)",
        )
    malformed = sum(p.malformed_count for p in run.parsed_logs)
    detail = f"{observed.records} records from {len(readable)} of {len(run.parsed_logs)} sources, {malformed} malformed lines"
    if observed.outlier_count:
        detail += f", {observed.outlier_count} records outside the incident window left out"
    if run.frame is None:
        detail += " (summarized in parts, not kept as one frame: too large, or read on Dask)"
    return detail


def _short(source: str) -> str:
    path = Path(source)
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return source


# --- deploys and reloads -----------------------------------------------------------------------


def load_events(items: list[Any]) -> list[Event]:
    """Events from the validated ``events`` parameter: inline ``{"ts", "label"}`` items and files.

    A file is a JSON or YAML list of ``{"ts", "label"}``, or lines ``TIME label`` (CSV ``ts,label``
    with a header works too). Raises StepProblem naming a file it cannot read or a line whose time
    does not parse.
    """
    events: list[Event] = []
    for item in items:
        if isinstance(item, dict):
            events.append(Event(pd.Timestamp(item["ts"]), item["label"]))
            continue
        path = Path(item).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise StepProblem(f"cannot read the events file {item}: {exc}",
                              "give events as a readable JSON/YAML list or 'TIME label' lines") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            data = None
        if not isinstance(data, list):
            data = [line.replace(",", " ", 1) for line in text.splitlines()
                    if line.strip() and not line.lower().startswith("ts,")]
        try:
            parsed = validate_params({"events": data})["events"]
        except ParameterError as exc:
            raise StepProblem(f"{item}: {exc}", "write one event per line as 'ISO-TIME label'") from None
        unparsed = [e for e in parsed if not isinstance(e, dict)]
        if unparsed:
            raise StepProblem(f"{item}: the time of {unparsed[0]!r} does not parse",
                              "write one event per line as 'ISO-TIME label', e.g. 2026-11-28T03:10:00Z nginx reload")
        events += [Event(pd.Timestamp(e["ts"]), e["label"]) for e in parsed]
    return sorted(events, key=lambda e: e.ts)


@step("events")
def read_events(run: Run) -> str:
    """Deploys and reloads on the incident's timeline; bursts of disconnects are matched to them."""
    if not run.params["events"]:
        raise SkipStep("events not provided: give deploy/reload times to match them to bursts of disconnects")
    run.observations.events = load_events(run.params["events"])
    table = pd.DataFrame({"time (UTC)": [f"{e.ts:%Y-%m-%d %H:%M:%S}" for e in run.observations.events],
                          "event": [e.label for e in run.observations.events]})
    run.show(lambda: show_table(table))
    return f"{len(run.observations.events)} events"


# --- live probes and the server --------------------------------------------------------------


@step("live_probes")
def probe_endpoints(run: Run) -> str:
    """Handshake (target and direct side by side), heartbeat/idle survival and churn, live.

    Also samples the server's sockets and process while the probes run when server_port or
    server_pid is given. Shows what each probe saw and how its evidence moved the ranking.
    """
    p = run.params
    if not p["target_url"]:
        if p["direct_url"]:
            raise SkipStep("direct_url given without target_url: set target_url, the URL users reach")
        raise SkipStep("target_url / direct_url not provided")
    before = run.diagnosis.ranked
    line = LiveLine(f"<p>probing {escape(p['target_url'])} for {p['probe_seconds']:g} s ...</p>") if run.interactive else None

    def progress(state: ChurnProgress) -> None:
        if line is not None:
            line.update(
                f"<p>live probes: {state.elapsed_s:.0f} of {state.duration_s:.0f} s, {state.open} open, "
                f"{state.opened} opened, {state.closed_by_peer} closed by the peer, {state.failed} failed</p>"
            )

    report = probe_url(
        p["target_url"],
        p["direct_url"] or None,
        probe_seconds=p["probe_seconds"],
        connections=p["connections"],
        header_env=p["header_env"],
        insecure_tls=p["insecure_tls"],
        server_port=p["server_port"] or None,
        server_pid=p["server_pid"] or None,
        progress=progress,
    )
    run.observations.probes = report
    signals = probe_signals(report)
    after = run.diagnosis.ranked

    def render() -> None:
        show_table(pd.DataFrame(summary_rows(report)))
        if signals:
            show_table(_signals_table(signals, run.diagnosis.signals))
        show_table(_ranking_shift(before, after))

    run.show(render)
    failed = [row["probe"] for row in summary_rows(report) if row["status"] == "failed"]
    return f"{len(signals)} signals in {report.elapsed_s:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else "")


def _signals_table(signals: list, all_signals: list | None = None) -> pd.DataFrame:
    """Signals with their family and ratios; a signal whose family already counted says so."""
    counted = {id(s) for s in counted_signals(all_signals if all_signals is not None else signals)}
    return pd.DataFrame(
        [(s.name, s.family.value, "yes" if id(s) in counted else "no: same fact as a stronger signal",
          s.detail, s.rationale, ", ".join(f"{c.value} x{s.ratio(c):g}" for c in s.likelihood_ratios))
         for s in signals],
        columns=["signal", "family", "counted", "what was seen", "why it matters", "likelihood ratios"],
    )


def _ranking_shift(before: list, after: list) -> pd.DataFrame:
    """How the live evidence moved each cause."""
    earlier = {r.cause: r.probability for r in before}
    return pd.DataFrame(
        {
            "cause": [r.cause.value for r in after],
            "before the probes": [f"{earlier[r.cause]:.0%}" for r in after],
            "after": [f"{r.probability:.0%}" for r in after],
        }
    )


@step("proxy_config")
def lint_proxy_config(run: Run) -> str:
    """Lint the proxy/LB configs in front of the service: findings with file:line, and a fix diff each.

    ``proxy_config`` is a path or a glob (an nginx root file's includes are followed);
    ``lb_preset`` / ``lb_idle_timeout_s`` add a cloud LB's timeouts; timeouts are compared with
    ``heartbeat_interval_s`` when given. Sets ``run.observations.config``.
    """
    from urllib.parse import urlsplit

    from runbook.configs import lint_paths

    p = run.params
    if not (p["proxy_config"] or p["lb_preset"] or p["lb_idle_timeout_s"]):
        raise SkipStep("proxy_config not provided: set it to the nginx or HAProxy config (a path or glob), ingress YAML or "
                       "ALB attributes JSON in front of the service, or lb_preset for a cloud load balancer")
    target_path = (urlsplit(p["target_url"]).path or None) if p["target_url"] else None
    report = lint_paths([p["proxy_config"]] if p["proxy_config"] else [], heartbeat_s=p["heartbeat_interval_s"] if p["heartbeat_interval_s"] > 0 else None,
                        target_path=target_path, lb_preset=p["lb_preset"] or None, lb_idle_timeout_s=p["lb_idle_timeout_s"] or None)
    run.observations.config = report
    if report.error:
        run.show(lambda: show_html(_box("config not usable", report.error, "#d62728")))
        raise ValueError(f"proxy_config could not be used: {report.error}")
    run.show(lambda: _show_config_report(report))
    upgrade = {True: "upgrade forwarded", False: "upgrade NOT forwarded", None: "upgrade: cannot tell"}[report.upgrade_forwarded]
    return (f"{report.kind} config: {report.count('error')} error(s), {report.count('warning')} warning(s), "
            f"{report.count('info')} info; {upgrade}; {len(report.websocket_locations)} WebSocket location(s)")


def _show_config_report(report) -> None:
    findings = pd.DataFrame({
        "severity": [f.severity for f in report.findings],
        "where": [f"{f.file}:{f.line}" if f.line else f.file for f in report.findings],
        "check": [f.check for f in report.findings],
        "message": [f.message for f in report.findings],
    })
    if findings.empty:
        show_html(_box("config ok", "no finding in " + ", ".join(report.files or ["the given load balancer"]), "#2ca02c"))
    else:
        show_table(findings)
    for diff in dict.fromkeys(f.fix for f in report.findings if f.fix):
        checks = ", ".join(sorted({f.check for f in report.findings if f.fix == diff}))
        show_html(f"<p>fix for {escape(checks)} (apply with <code>patch FILE &lt; fix.diff</code>):</p><pre><code>{escape(diff)}</code></pre>")
    where = report.websocket_locations + [f"timeout on the path: {t}" for t in report.path_timeouts]
    if where:
        show_html("<ul>" + "".join(f"<li>{escape(item)}</li>" for item in where) + "</ul>")


@step("server_sockets")
def sample_server(run: Run) -> str:
    """TCP states on server_port and RSS/fds/threads of the server process, with their trends.

    Sampled during the live probes when target_url is given; on their own otherwise.
    """
    p = run.params
    if not (p["server_port"] or p["server_pid"]):
        raise SkipStep("server_port / server_pid not provided")
    report = run.observations.probes
    if report is None or (report.sockets is None and report.process is None):
        started = time.monotonic()
        sockets, process = run_sync(probe_server(p["server_port"] or None, p["server_pid"] or None, duration_s=p["probe_seconds"]))
        report = ProbeReport(target_url="", direct_url=None, elapsed_s=time.monotonic() - started, sockets=sockets, process=process)
        report.skipped.update({name: "target_url not given" for name in ("handshake_target", "heartbeat", "churn")})
        run.observations.probes = report
    rows = [row for row in summary_rows(report) if row["probe"].startswith("server")]
    run.show(lambda: show_table(pd.DataFrame(rows)))
    return "; ".join(f"{row['probe']}: {row['status']}" for row in rows)


# --- the symptoms checklist -----------------------------------------------------------------

_STATUS_COLORS = {SymptomStatus.PRESENT: "#d62728", SymptomStatus.ABSENT: "#2ca02c", SymptomStatus.UNKNOWN: "#777"}


def _show_symptom(run: Run, symptom_id: SymptomId, figure: Callable[[], Any] | None = None) -> str:
    symptom = next(s for s in run.diagnosis.symptoms if s.id is symptom_id)

    def render() -> None:
        show_html(_box(symptom.status.value, f"{symptom.title}: {symptom.summary}", _STATUS_COLORS[symptom.status]))
        if figure and run.observations.logs is not None:
            show_figure(figure())

    run.show(render)
    return f"{symptom.status.value}: {symptom.summary}"


@step("high_disconnect_rate")
def check_disconnect_rate(run: Run) -> str:
    logs = run.observations.logs
    return _show_symptom(run, SymptomId.HIGH_DISCONNECT_RATE, logs and (lambda: figures.disconnect_rate_figure(logs, run.observations.events)))


@step("timeouts_failed_upgrades")
def check_timeouts(run: Run) -> str:
    logs = run.observations.logs
    return _show_symptom(run, SymptomId.TIMEOUTS_FAILED_UPGRADES, logs and (lambda: figures.durations_figure(logs)))


@step("reconnect_loops")
def check_reconnect_loops(run: Run) -> str:
    logs = run.observations.logs
    has_gaps = logs is not None and not logs.reconnect_gaps.empty
    detail = _show_symptom(run, SymptomId.RECONNECT_LOOPS, has_gaps and (lambda: figures.reconnect_gaps_figure(logs)))
    if has_gaps:
        busiest = logs.reconnect_clients.head(10).round({"median_gap_s": 2, "growth": 2, "per_minute": 2})
        run.show(lambda: show_table(busiest.rename(columns={"client": "client (address | user agent)"})))
    return detail


@step("proxy_lb_issues")
def check_proxy(run: Run) -> str:
    return _show_symptom(run, SymptomId.PROXY_LB_ISSUES)


@step("abandoned_connection_leaks")
def check_leaks(run: Run) -> str:
    return _show_symptom(run, SymptomId.ABANDONED_CONNECTION_LEAKS)


# --- ranking, fixes, postmortem, outputs ----------------------------------------------------


@step("ranked_causes")
def rank_root_causes(run: Run) -> str:
    diagnosis = run.diagnosis
    ranking = pd.DataFrame(
        {
            "cause": [r.cause.value for r in diagnosis.ranked],
            "what it means": [TITLES[r.cause] for r in diagnosis.ranked],
            "prior": [f"{r.prior:.0%}" for r in diagnosis.ranked],
            "probability": [f"{r.probability:.0%}" for r in diagnosis.ranked],
        }
    )
    evidence = _signals_table(diagnosis.signals)
    leading = diagnosis.leading

    healthy = diagnosis.verdict is Verdict.HEALTHY

    def render() -> None:
        for finding in diagnosis.findings:
            show_html(_box("finding", finding, "#1f77b4"))
        if healthy:
            show_html(_box("healthy", "no symptom is present, so no cause is needed", "#2ca02c"))
        elif not diagnosis.counted:
            show_html(_box("no evidence", "no evidence signal fired: the ranking below is only the reference shares; give close logs, target_url or proxy_config", "#777"))
        elif leading is None:
            first, second = diagnosis.ranked[0], diagnosis.ranked[1]
            show_html(_box("inconclusive", f"between {first.cause.value} ({first.probability:.0%}) and {second.cause.value} ({second.probability:.0%}): the checks below decide it", "#777"))
        else:
            show_html(_box("leading cause", f"{leading.cause.value} ({leading.probability:.0%}): {TITLES[leading.cause]}", "#d62728"))
        show_table(ranking)
        if diagnosis.next_checks:
            show_html("<p><b>What would settle it</b></p>")
            show_table(pd.DataFrame([(c.cause.value, c.check, c.why) for c in diagnosis.next_checks],
                                    columns=["cause", "next check", "what it tells"]))
        show_figure(figures.ranking_figure(diagnosis.ranked))
        if len(evidence):
            show_table(evidence)
        else:
            show_html("<p>No evidence signal fired: the ranking equals the reference shares.</p>")

    run.show(render)
    top = diagnosis.ranked[0]
    if healthy:
        return f"healthy: no cause needed ({len(diagnosis.signals)} signals)"
    return f"{top.cause.value} {top.probability:.0%} from {len(diagnosis.signals)} signals" + ("" if leading else " (inconclusive)")


@step("recommendations")
def recommend_fixes(run: Run) -> str:
    recommendations = run.diagnosis.recommendations
    if not recommendations:
        raise SkipStep("nothing to fix: the runbook found the service healthy")

    def render() -> None:
        for rec in recommendations:
            show_html(f"<h4>{escape(rec.cause.value)}: {escape(rec.title)}</h4><pre><code>{escape(rec.snippet)}</code></pre>")

    run.show(render)
    return ", ".join(rec.cause.value for rec in recommendations)


@step("postmortem")
def write_postmortem(run: Run) -> str:
    """Timeline, impact, root cause, fix and follow-ups, in a form to paste into the channel."""
    summary = postmortem_summary(run)
    logs = run.observations.logs
    affected = logs.affected_clients if logs is not None else pd.DataFrame()

    def render() -> None:
        show_html("<dl>" + "".join(f"<dt><b>{escape(k)}</b></dt><dd>{escape(v)}</dd>" for k, v in summary.items()) + "</dl>")
        if len(affected):
            show_html("<p><b>Most affected clients</b> (abnormal disconnects):</p>")
            show_table(affected)

    run.show(render)
    if run.summary_line is not None:
        run.summary_line.update(summary_html(run))
    return summary["Verdict"]


def postmortem_summary(run: Run) -> dict[str, str]:
    diagnosis = run.diagnosis
    logs = run.observations.logs
    summary = {"Incident": run.incident_id, "Verdict": diagnosis.verdict.value}
    if run.sample:
        summary["Data"] = f"bundled sample incident '{SAMPLE_INCIDENT}', not a live service"
    if logs is not None and logs.window_start is not None:
        flagged = logs.per_minute[logs.per_minute["flagged"].astype(bool)]
        timeline = f"logs cover {logs.window_start:%Y-%m-%d %H:%M:%S} to {logs.window_end:%H:%M:%S} UTC"
        if len(flagged):
            worst = flagged.loc[flagged["rate"].idxmax()]
            timeline += (
                f"; first minute over 5% at {flagged['minute'].iloc[0]:%H:%M}, worst at "
                f"{worst['minute']:%H:%M} ({worst['rate']:.0%} of {worst['open']} open connections)"
            )
        summary["Timeline"] = timeline
        clients = logs.abnormal_addresses
        summary["Impact"] = (
            f"{logs.abnormal_closes} of {logs.connection_count} connections ended abnormally"
            + (f", from {clients} client addresses" if clients else "")
        )
    leading = diagnosis.leading
    if no_evidence(run):
        summary["Root cause"] = "no evidence: nothing could be read, so no cause can be named (the ranking shows only the reference shares)"
        summary["What to give"] = _what_to_give(run)
    elif leading is not None:
        evidence = "; ".join(e.detail for e in leading.evidence[:3])
        summary["Root cause"] = f"{leading.cause.value} ({leading.probability:.0%}): {TITLES[leading.cause]}. Evidence: {evidence}"
    elif diagnosis.verdict is Verdict.HEALTHY:
        summary["Root cause"] = "none: no symptom is present in the data given"
    else:
        first, second = diagnosis.ranked[0], diagnosis.ranked[1]
        summary["Root cause"] = (f"inconclusive between {first.cause.value} ({first.probability:.0%}) and "
                                 f"{second.cause.value} ({second.probability:.0%})")
    if diagnosis.recommendations and diagnosis.signals:  # fixes come from evidence, never the priors alone
        summary["Fix"] = "; ".join(rec.title for rec in diagnosis.recommendations)
    unknown = [s.id.value for s in diagnosis.symptoms if s.status is SymptomStatus.UNKNOWN]
    follow_ups = ["alert when disconnects exceed 5% of open connections per minute"]
    if unknown:
        follow_ups.append("collect the data to decide " + ", ".join(unknown))
    skipped = [s.step for s in run.steps if s.status != "ok"]
    if skipped:
        follow_ups.append("steps not run or failed: " + ", ".join(skipped))
    summary["Follow-ups"] = "; ".join(follow_ups)
    return summary


@step("baseline")
def compare_with_baseline(run: Run) -> str:
    """Verify the fix: this run's figures against a previous run's diagnosis.json (``baseline``)."""
    if not run.params["baseline"]:
        raise SkipStep("baseline not provided: after a fix, run again with baseline=<this run's output folder>")
    path = Path(run.params["baseline"]).expanduser() / "diagnosis.json"
    try:
        before = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StepProblem(f"cannot read the baseline {path}: {exc}",
                          "set baseline to the output folder of an earlier run (it holds diagnosis.json)") from None
    if not isinstance(before, dict):
        raise StepProblem(f"{path} is not a diagnosis.json document", "set baseline to an earlier run's output folder")
    diagnosis = run.diagnosis
    run.comparison = compare({"verdict": before.get("verdict"), "measurements": before.get("measurements")},
                             {"verdict": diagnosis.verdict.value, "measurements": diagnosis.measurements})
    run.comparison_source = str(path)
    table = pd.DataFrame(run.comparison)
    run.show(lambda: show_table(table))
    changed = [row["what"] for row in run.comparison if row["outcome"] in ("resolved", "better")]
    return f"compared with {path}: " + (", ".join(changed) + " improved" if changed else "nothing improved")


@step("outputs")
def write_outputs(run: Run) -> str:
    """Write diagnosis.json (validated against the schema) into output_dir."""
    document = _redacted(run, diagnosis_json(run))
    path = write_diagnosis_json(document, run.output_dir / "diagnosis.json")
    run.show(lambda: show_html(f"<p>diagnosis.json written ({escape(document['verdict'])}).</p>"))
    return str(path)


def diagnosis_json(run: Run, complete: bool = True) -> dict[str, Any]:
    """The diagnosis.json document; ``complete=False`` lists the steps not run yet as not_run."""
    steps = [s.as_dict() for s in run.steps]
    if complete:
        # The outputs step records itself as ok before it exists, so the file lists every step.
        steps.append({"step": "outputs", "status": "ok", "detail": "diagnosis.json written"})
    else:
        done = {s.step for s in run.steps}
        steps += [{"step": s.step_name, "status": "not_run", "detail": "the run stopped before this step"}
                  for s in STEPS if s.step_name not in done]
    document = diagnosis_document(run.diagnosis, steps, run.incident_id, run.started_at.isoformat(timespec="seconds"))
    document["complete"] = complete
    if run.comparison:
        document["comparison"] = {"baseline": run.comparison_source, "rows": run.comparison}
    return document


STEPS: tuple[Callable[[Run], None], ...] = (
    check_inputs,
    read_close_logs,
    read_events,
    probe_endpoints,
    lint_proxy_config,
    sample_server,
    check_disconnect_rate,
    check_timeouts,
    check_reconnect_loops,
    check_proxy,
    check_leaks,
    rank_root_causes,
    recommend_fixes,
    compare_with_baseline,
    write_postmortem,
    write_outputs,
)


def run_all(params: dict[str, Any], interactive: bool = False) -> Run:
    """The whole runbook as a plain function: the notebook calls the same steps in the same order."""
    run = start_run(interactive=interactive, **params)
    for run_step in STEPS:
        run_step(run)
    return run
