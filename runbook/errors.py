"""Exceptions raised by ws-runbook.

Only programmer errors and bad parameters raise; network faults and malformed input are data.

    RunbookError              root: catch this to catch everything we raise on purpose
    └── ParameterError        a runbook parameter is missing, of the wrong type or malformed
"""

from __future__ import annotations


class RunbookError(Exception):
    """Root of every exception ws-runbook raises on purpose."""


class ParameterError(RunbookError):
    """A parameter has a wrong type, an unknown name or a malformed value."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(name, problem)
        self.name = name
        self.problem = problem

    def __str__(self) -> str:
        return f"parameter {self.name!r}: {self.problem}"
