"""From close-log paths to observations: the one entry point the runbook step and the benchmarks use.

``observe_close_logs`` reads every file the patterns name, combines them on one timeline and
summarizes them (``runbook.logs.metrics``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from runbook.logfiles import load_close_logs
from runbook.logs.metrics import LogObservation, observe_logs
from runbook.logs.registry import LogFormat


def observe_close_logs(
    patterns: list[str],
    *,
    log_format: str | Mapping[str, str] | None = None,
    log_timezone: str | None = None,
    extra_formats: Sequence[LogFormat] = (),
) -> LogObservation:
    """Read, combine and summarize the close logs ``patterns`` name (paths or globs).

    Never raises on a bad file: each source comes back in ``LogObservation.sources`` with its
    counts, notes and error.
    """
    parsed = load_close_logs(patterns, log_format=log_format, log_timezone=log_timezone, extra_formats=extra_formats)
    return observe_logs(parsed)
