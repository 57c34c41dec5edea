"""The ``ws-runbook`` command: a thin click wrapper over runbook.execute and runbook.steps.

Exit codes: 0 ran, 1 degraded (with --fail-on degraded), 2 bad usage or parameters, 3 the
runbook itself failed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import yaml

from runbook.errors import RunbookError
from runbook.params import PARAMS

EXIT_DEGRADED, EXIT_USAGE, EXIT_FAILED = 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


def _echo(text: str, secrets: tuple[str, ...] = (), err: bool = False) -> None:
    """Print one line with every secret redacted: terminals end up in chat and tickets too."""
    from runbook.report.redact import redact_text

    click.echo(redact_text(text, secrets), err=err)


def _load_yaml(text: str, where: str) -> dict:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise click.UsageError(f"{where} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise click.UsageError(f"{where} must be a mapping of parameter names to values")
    return data


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ws-runbook")
def cli() -> None:
    """Jupyter incident runbooks for WebSocket disconnects."""


@cli.command()
@click.argument("notebook", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-p", "--parameters", "pairs", nargs=2, multiple=True, metavar="NAME VALUE", help="Set a parameter (repeatable).")
@click.option("-y", "--parameters-yaml", "yaml_text", help="Parameters as a YAML string.")
@click.option("-f", "--parameters-file", "yaml_file", type=click.File("rb"), help="Parameters from a YAML file.")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), help="Where report.ipynb, report.html and diagnosis.json go.")
@click.option("--timeout", "timeout_s", type=click.IntRange(min=10), default=600, show_default=True, help="Execution timeout per cell, seconds.")
@click.option("--fail-on", type=click.Choice(["degraded", "never"]), default="never", show_default=True, help="Exit 1 when the verdict is degraded.")
def run(notebook, pairs, yaml_text, yaml_file, output_dir, timeout_s, fail_on) -> None:
    """Execute the runbook headless with papermill and write the report."""
    from runbook.execute import DEFAULT_NOTEBOOK, RunInterrupted, execute_runbook

    if notebook is not None and notebook.suffix not in (".ipynb", ".py"):
        raise click.UsageError(
            f"{notebook} is not a notebook: -p takes one NAME VALUE pair, so a second value became the notebook "
            """argument. Pass a list as JSON, -p close_logs '["a.log","b.log"]', or as one glob, -p close_logs 'logs/*.log'"""
        )
    params: dict = {}
    if yaml_file is not None:
        try:
            text = yaml_file.read().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise click.UsageError(f"{yaml_file.name} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
        params.update(_load_yaml(text, yaml_file.name))
    if yaml_text:
        params.update(_load_yaml(yaml_text, "-y"))
    params.update(dict(pairs))
    try:
        outcome = execute_runbook(params, notebook or DEFAULT_NOTEBOOK, timeout_s, output_dir)
    except RunInterrupted as stop:
        _print_outcome(stop.outcome)
        click.echo("interrupted by Ctrl-C: the outputs above hold what finished, marked unfinished", err=True)
        sys.exit(EXIT_INTERRUPTED)
    _print_outcome(outcome)
    if not outcome.ok:
        sys.exit(EXIT_FAILED)
    if fail_on == "degraded" and outcome.verdict == "degraded":
        sys.exit(EXIT_DEGRADED)


def _print_outcome(outcome) -> None:
    if getattr(outcome, "sample", False):
        from runbook.steps import SAMPLE_INCIDENT

        click.echo(
            f"sample: no input was given, so this ran on the bundled sample incident '{SAMPLE_INCIDENT}' "
            "(data/samples/), not on your service; set close_logs, target_url, proxy_config or server_port",
            err=True,
        )
    for name, why in getattr(outcome, "failed_steps", None) or []:  # diagnosis.json is redacted
        click.echo(f"step {name} failed: {why}", err=True)
    if outcome.failure:  # already redacted
        click.echo(f"runbook failed: {outcome.failure}", err=True)
    if outcome.verdict and outcome.failure:
        click.echo(f"verdict: {outcome.verdict} (unfinished run: from the steps that finished only)")
    else:
        click.echo(f"verdict: {outcome.verdict or 'none (diagnosis.json not written)'}")
    if getattr(outcome, "cause", None):
        click.echo(f"cause: {outcome.cause}")
    click.echo(f"report: {outcome.html}")
    click.echo(f"notebook: {outcome.notebook}")
    if outcome.verdict:
        click.echo(f"diagnosis: {outcome.diagnosis}")


@cli.command()
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("reports/demo"), show_default=True)
@click.option("--scenario", "scenario_name", default="proxy_timeout", show_default=True, help="The incident to stage (see `ws-runbook lab list`).")
@click.option("--lab-seconds", type=click.FloatRange(min=1, max=120), default=15.0, show_default=True, help="How long clients run before the runbook reads the logs.")
@click.option("--proxy", type=click.Choice(["auto", "nginx", "relay"]), default="auto", show_default=True, help="auto: nginx when installed, else the built-in relay.")
def demo(output_dir: Path, scenario_name: str, lab_seconds: float, proxy: str) -> None:
    """Stage an incident in the lab, run the runbook on it live and on its logs, stop it all.

    The lab runs the scenario compressed (60 s timeouts take 3 s) on 127.0.0.1 only; no root,
    nothing downloaded. Prints the report's path and which proxy ran.
    """
    from runbook.execute import execute_runbook
    from runbook.lab.session import run_demo

    result = run_demo(lambda params, out: execute_runbook(params, output_dir=out), output_dir, scenario_name=scenario_name, lab_seconds=lab_seconds, proxy=proxy, echo=click.echo)
    click.echo(f"  {result.clients}")
    click.echo(f"proxy: {result.proxy_used}")
    click.echo(f"lab logs: {result.lab_dir}")
    _print_outcome(result.outcome)
    click.echo(f"demo took {result.wall_s:.1f} s; every lab process was stopped")
    if not result.outcome.ok:
        sys.exit(EXIT_FAILED)


class _LabGroup(click.Group):
    """``ws-runbook lab SCENARIO ...`` is short for ``ws-runbook lab serve SCENARIO ...``."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["serve", *args]  # serve names the known scenarios if this is none of them
        return super().resolve_command(ctx, args)


@cli.group(cls=_LabGroup)
def lab() -> None:
    """Local fault scenarios on 127.0.0.1: serve one, record its logs, list them.

    `ws-runbook lab SCENARIO` is short for `ws-runbook lab serve SCENARIO`.
    """


_proxy_option = click.option("--proxy", type=click.Choice(["auto", "nginx", "haproxy", "relay"]), default="auto", show_default=True, help="auto: nginx when installed, else the built-in relay.")
_scale_option = click.option("--time-scale", type=click.FloatRange(min=0.001, max=10, min_open=False), default=None, help="Multiply every duration (0.05: a 60 s timeout takes 3 s). Default: real time.")
_fast_option = click.option("--fast", is_flag=True, help="Use the scenario's own compressed time scale (the fault shows within seconds).")


@lab.command("serve")
@click.argument("scenario")
@_fast_option
@_scale_option
@click.option("--clients", type=click.IntRange(min=0), default=None, help="Population size (0: servers and proxy only).")
@click.option("--seed", type=int, default=2, show_default=True)
@_proxy_option
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help="Where logs, nginx.conf and pids go (default: a new temporary folder, kept).")
@click.option("--max-seconds", type=click.FloatRange(min=1), default=3600.0, show_default=True, help="Stop by itself after this long.")
def lab_serve(scenario, fast, time_scale, clients, seed, proxy, run_dir, max_seconds) -> None:
    """Serve SCENARIO with its clients until Ctrl-C; print the runbook's parameters for it.

    SCENARIO is one of `ws-runbook lab list`.
    """
    from runbook.lab.session import serve

    if fast and time_scale is not None:
        raise click.UsageError("use --fast or --time-scale, not both")
    serve(scenario, time_scale=time_scale, fast=fast, clients=clients, seed=seed, proxy=proxy, run_dir=run_dir, max_seconds=max_seconds, echo=click.echo)


@lab.command("record")
@click.argument("scenario")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder ('all': one subfolder per scenario).")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=None, help="How long to record (default: the scenario's length x time scale).")
@_fast_option
@_scale_option
@click.option("--clients", type=click.IntRange(min=1), default=None, help="Population size override.")
@click.option("--seed", type=int, default=2, show_default=True)
@_proxy_option
def lab_record(scenario, out, seconds, fast, time_scale, clients, seed, proxy) -> None:
    """Run SCENARIO for a bounded time and save its logs, config and a README with the true cause.

    SCENARIO is one of `ws-runbook lab list`, or `all` (data/samples/README.md: how the samples
    are regenerated).
    """
    from runbook.lab.record import record_many
    from runbook.lab.scenarios import SCENARIOS, get_scenario, install_interrupt_handler

    if fast and time_scale is not None:
        raise click.UsageError("use --fast or --time-scale, not both")
    names = list(SCENARIOS) if scenario == "all" else [get_scenario(scenario).name]
    restore = install_interrupt_handler()
    try:
        for name in names:
            scale = SCENARIOS[name].fast_time_scale if fast else (time_scale or 1.0)
            record_many([name], out, to_subfolders=scenario == "all", duration_s=seconds, time_scale=scale, clients=clients, seed=seed, proxy=proxy)
    finally:
        restore()


@lab.command("corpus")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Corpus folder (data/corpus).")
@click.option("--only", multiple=True, metavar="ID", help="Record only this case (repeatable).")
def lab_corpus(out, only) -> None:
    """Record the labeled incident corpus (data/corpus/README.md), one case at a time."""
    from runbook.lab.corpus import record_corpus
    from runbook.lab.scenarios import install_interrupt_handler

    restore = install_interrupt_handler()
    try:
        record_corpus(out, only, echo=click.echo)
    finally:
        restore()


@lab.command("list")
def lab_list() -> None:
    """List the scenarios, the root cause each reproduces and what it shows."""
    from runbook.lab.scenarios import SCENARIOS

    for scenario in SCENARIOS.values():
        cause = ", ".join(scenario.true_causes) or "none (healthy)"
        click.echo(f"{scenario.name}: {scenario.title}")
        click.echo(f"  true cause: {cause}; fast time scale {scenario.fast_time_scale:g}")
        click.echo(f"  shows: {scenario.shows}")


@cli.command()
@click.argument("url")
@click.option("--direct-url", default="", help="The same service bypassing proxies, to compare handshakes.")
@click.option("--probe-seconds", type=float, default=75.0, show_default=True, help="Time budget of the live probes.")
@click.option("--connections", type=int, default=20, show_default=True, help="Concurrent connections of the churn probe.")
@click.option("--header-env", multiple=True, help="Name of an env var holding a 'Name: value' header (repeatable).")
@click.option("--insecure-tls", is_flag=True, help="Skip TLS certificate verification.")
@click.option("--server-port", type=int, default=0, help="Local server port to sample TCP states on.")
@click.option("--server-pid", type=int, default=0, help="Local server process to sample memory/fds of.")
def probe(url, direct_url, probe_seconds, connections, header_env, insecure_tls, server_port, server_pid) -> None:
    """Probe a live WebSocket endpoint and print what killed (or would kill) its connections."""
    from runbook.diagnosis.probe_rules import probe_signals
    from runbook.params import validate_params
    from runbook.probes import format_probe_report, probe_url
    from runbook.report.redact import header_env_secrets, url_secrets

    values = validate_params(
        {"target_url": url, "direct_url": direct_url, "probe_seconds": probe_seconds, "connections": connections,
         "header_env": list(header_env), "insecure_tls": insecure_tls, "server_port": server_port, "server_pid": server_pid}
    )
    report = probe_url(
        values["target_url"], values["direct_url"] or None, probe_seconds=values["probe_seconds"],
        connections=values["connections"], header_env=values["header_env"], insecure_tls=values["insecure_tls"],
        server_port=values["server_port"] or None, server_pid=values["server_pid"] or None, progress=True,
    )
    secrets = (*header_env_secrets(values["header_env"]), *url_secrets([values["target_url"], values["direct_url"]]))
    _echo(format_probe_report(report, probe_signals(report)), secrets)


def _format_label(result) -> str:
    """The format and how it was chosen: "nginx_access (detected, 95%)", "haproxy (forced)"."""
    if result.format is None:
        return "unrecognized"
    how = "forced" if result.confidence is None else f"detected, {result.confidence:.0%}"
    return f"{result.format} ({how})"


@cli.command()
@click.argument("logs", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per source instead of a table.")
@click.option("--log-format", "log_format", default="", help="Force a format id (default: detect per file).")
@click.option("--log-timezone", "log_timezone", default="UTC", help="Zone of times that carry none (UTC, +02:00, Europe/Berlin).")
def parse(logs, as_json, log_format, log_timezone) -> None:
    """Parse close logs (paths or globs) and summarize what was read, malformed lines included."""
    from runbook.logs.pipeline import observe_close_logs
    from runbook.params import validate_params

    values = validate_params({"log_format": log_format, "log_timezone": log_timezone})
    # The runbook's own path: a file of any size is read in parts, never held whole.
    parsed = observe_close_logs(list(logs), log_format=values["log_format"] or None,
                                log_timezone=values["log_timezone"]).sources
    for result in parsed:
        summary = {
            "source": result.source,
            "format": result.format,
            "confidence": result.confidence,
            "lines": result.lines_total,
            "records": result.records,
            "malformed": result.malformed_count,
            "other_lines": result.ignored_lines,
            "error": result.error,
            "notes": result.notes,
        }
        if as_json:
            _echo(json.dumps(summary))
            continue
        _echo(f"{result.source}: {_format_label(result)}, {result.records} records from {result.lines_total} lines, {result.malformed_count} malformed, {result.ignored_lines} other")
        if result.error:
            _echo(f"  problem: {result.error}")
        for note in result.notes:
            _echo(f"  note: {note}")
        for bad in result.malformed_examples:  # log lines can quote URLs with tokens
            _echo(f"  {bad}")
    if not any(p.ok for p in parsed):
        sys.exit(EXIT_USAGE)


@cli.command()
@click.argument("configs", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help='{"findings": [{"file", "line", "severity", "check", "message", "fix"}]}')
@click.option("--heartbeat-s", type=click.FloatRange(min=0, min_open=True), default=None, help="The server's ping interval: timeouts must be longer.")
@click.option("--target-url", default="", help="ws:// or wss:// URL as users reach it: its path picks the WebSocket location.")
@click.option("--lb-preset", default=None, help="A cloud LB or CDN in the path (aws-alb, aws-nlb, gcp-https-lb, cloudflare, heroku, ...).")
@click.option("--lb-idle-timeout-s", type=click.FloatRange(min=0, min_open=True), default=None, help="Idle timeout of an LB in the path, seconds.")
def lint(configs, as_json, heartbeat_s, target_url, lb_preset, lb_idle_timeout_s) -> None:
    """Lint nginx/HAProxy configs, ingress YAML or ALB attributes JSON (paths or globs) for WebSockets.

    Exit 1 when any finding is an error, 2 when no config could be used.
    """
    from urllib.parse import urlsplit

    from runbook.configs import lint_paths
    from runbook.configs.cloud import check_preset_name
    from runbook.configs.summary import format_text, to_json
    from runbook.params import check_ws_url

    try:
        if target_url:
            check_ws_url("--target-url", target_url)
        if lb_preset:
            check_preset_name(lb_preset)
    except (RunbookError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    report = lint_paths(list(configs), heartbeat_s=heartbeat_s, target_path=urlsplit(target_url).path or None if target_url else None,
                        lb_preset=lb_preset, lb_idle_timeout_s=lb_idle_timeout_s)
    _echo(json.dumps(to_json(report), indent=2) if as_json else format_text(report), err=bool(report.error) and not as_json)
    if report.error:
        sys.exit(EXIT_USAGE)
    if report.count("error"):
        sys.exit(EXIT_DEGRADED)


@cli.command()
def params() -> None:
    """List the runbook's parameters (the notebook's parameters cell, the -p names)."""
    for spec in PARAMS:
        click.echo(spec.cell_line())


def main() -> None:
    # jsonschema (under nbformat) imports rfc3987_syntax when it is installed (jupyter's
    # jsonschema[format-nongpl] extra brings it), which builds a grammar for 2-3 s, only to check
    # the "iri" format no schema of ours uses. A None entry makes that import fail at once, and
    # jsonschema then leaves the format unchecked (its documented fallback for missing extras).
    sys.modules.setdefault("rfc3987_syntax", None)
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:  # click's form of KeyboardInterrupt (and of EOF at a prompt)
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        from runbook.report.redact import redact_text

        exc.message = redact_text(exc.message)  # usage errors quote what was typed, URLs included
        exc.show()
        sys.exit(EXIT_USAGE)
    except RunbookError as exc:
        from runbook.report.redact import redact_text

        click.echo(f"error: {redact_text(str(exc))}", err=True)
        sys.exit(EXIT_USAGE)
