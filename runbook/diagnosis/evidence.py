"""Evidence signals: named observations with a likelihood ratio per root cause."""

from __future__ import annotations

from dataclasses import dataclass, field

from runbook.diagnosis.causes import Cause


@dataclass(frozen=True)
class Signal:
    """One piece of evidence.

    ``likelihood_ratios[c]`` is how much more likely this observation is when ``c`` is the root
    cause than on average; causes not listed have 1.0 (the signal says nothing about them).
    """

    name: str  # stable id, e.g. "lifetime_peak_at_known_timeout"
    detail: str  # what was measured, with the figures
    rationale: str  # one line: why it moves the ranking this way
    likelihood_ratios: dict[Cause, float] = field(default_factory=dict)
    source: str = "logs"  # which input produced it: logs, probe, config, server

    def __post_init__(self) -> None:
        for cause, ratio in self.likelihood_ratios.items():
            if not isinstance(cause, Cause) or not ratio > 0:
                raise ValueError(f"signal {self.name}: likelihood ratio for {cause!r} must be > 0")

    def ratio(self, cause: Cause) -> float:
        return self.likelihood_ratios.get(cause, 1.0)

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}"
