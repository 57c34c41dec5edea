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
@click.option("-f", "--parameters-file", "yaml_file", type=click.File("r"), help="Parameters from a YAML file.")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), help="Where report.ipynb, report.html and diagnosis.json go.")
@click.option("--timeout", "timeout_s", type=click.IntRange(min=10), default=600, show_default=True, help="Execution timeout per cell, seconds.")
@click.option("--fail-on", type=click.Choice(["degraded", "never"]), default="never", show_default=True, help="Exit 1 when the verdict is degraded.")
def run(notebook, pairs, yaml_text, yaml_file, output_dir, timeout_s, fail_on) -> None:
    """Execute the runbook headless with papermill and write the report."""
    from runbook.execute import DEFAULT_NOTEBOOK, execute_runbook

    params: dict = {}
    if yaml_file is not None:
        params.update(_load_yaml(yaml_file.read(), yaml_file.name))
    if yaml_text:
        params.update(_load_yaml(yaml_text, "-y"))
    params.update(dict(pairs))
    outcome = execute_runbook(params, notebook or DEFAULT_NOTEBOOK, timeout_s, output_dir)
    _print_outcome(outcome)
    if not outcome.ok:
        sys.exit(EXIT_FAILED)
    if fail_on == "degraded" and outcome.verdict == "degraded":
        sys.exit(EXIT_DEGRADED)


def _print_outcome(outcome) -> None:
    if outcome.failure:  # already redacted
        click.echo(f"runbook failed: {outcome.failure}", err=True)
    click.echo(f"verdict: {outcome.verdict or 'none (diagnosis.json not written)'}")
    click.echo(f"report: {outcome.html}")
    click.echo(f"notebook: {outcome.notebook}")
    if outcome.verdict:
        click.echo(f"diagnosis: {outcome.diagnosis}")


@cli.command()
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("reports/demo"), show_default=True)
def demo(output_dir: Path) -> None:
    """Run the runbook on the bundled sample incident and print the report's path.

    No network, no root. (Live probing of a local faulty target joins when the fault lab lands.)
    """
    from runbook.execute import execute_runbook

    outcome = execute_runbook({"incident_id": "demo-proxy-timeout"}, output_dir=output_dir)
    _print_outcome(outcome)
    if not outcome.ok:
        sys.exit(EXIT_FAILED)


@cli.command()
@click.argument("logs", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per source instead of a table.")
def parse(logs, as_json) -> None:
    """Parse close logs (paths or globs) and summarize what was read, malformed lines included."""
    from runbook.steps import load_close_logs

    parsed = load_close_logs(list(logs))
    for result in parsed:
        summary = {
            "source": result.source,
            "format": result.format,
            "lines": result.lines_total,
            "records": result.records,
            "malformed": result.malformed_count,
            "other_lines": result.ignored_lines,
            "error": result.error,
        }
        if as_json:
            click.echo(json.dumps(summary))
            continue
        click.echo(f"{result.source}: {result.format or 'unrecognized'}, {result.records} records from {result.lines_total} lines, {result.malformed_count} malformed, {result.ignored_lines} other")
        if result.error:
            click.echo(f"  problem: {result.error}")
        for bad in result.malformed_examples:
            click.echo(f"  {bad}")
    if not any(p.ok for p in parsed):
        sys.exit(EXIT_USAGE)


@cli.command()
def params() -> None:
    """List the runbook's parameters (the notebook's parameters cell, the -p names)."""
    for spec in PARAMS:
        click.echo(spec.cell_line())


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_FAILED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except RunbookError as exc:
        from runbook.report.redact import redact_text

        click.echo(f"error: {redact_text(str(exc))}", err=True)
        sys.exit(EXIT_USAGE)
