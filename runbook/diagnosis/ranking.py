"""Bayesian ranking of the root causes from the priors and the evidence signals."""

from __future__ import annotations

from dataclasses import dataclass, field

from runbook.diagnosis.causes import PRIORS, Cause
from runbook.diagnosis.evidence import Signal

# A leading cause needs at least this posterior, and this lead over the runner-up, to be named.
CONFIDENT_PROBABILITY = 0.5
CONFIDENT_LEAD = 2.0


@dataclass(frozen=True)
class EvidenceItem:
    signal: str
    detail: str
    likelihood_ratio: float
    rationale: str


@dataclass(frozen=True)
class RankedCause:
    cause: Cause
    prior: float
    probability: float
    evidence: list[EvidenceItem] = field(default_factory=list)


def rank_causes(signals: list[Signal]) -> list[RankedCause]:
    """Posterior of each cause: prior times the product of its likelihood ratios, normalized.

    Signals are treated as independent (naive Bayes); rules keep their ratios modest for that
    reason. Sorted by probability, ties in prior order; always all five causes.
    """
    weights = {}
    for cause, prior in PRIORS.items():
        weight = prior
        for signal in signals:
            weight *= signal.ratio(cause)
        weights[cause] = weight
    total = sum(weights.values())
    # No evidence: the reference shares themselves, not a float round trip through them.
    posterior = {c: (weights[c] / total if signals else PRIORS[c]) for c in PRIORS}
    ranked = [
        RankedCause(
            cause=cause,
            prior=PRIORS[cause],
            probability=posterior[cause],
            evidence=[
                EvidenceItem(s.name, s.detail, s.ratio(cause), s.rationale)
                for s in signals
                if s.ratio(cause) != 1.0
            ],
        )
        for cause in PRIORS
    ]
    order = list(PRIORS)
    return sorted(ranked, key=lambda r: (-r.probability, order.index(r.cause)))


def leading_cause(ranked: list[RankedCause], signals: list[Signal]) -> RankedCause | None:
    """The top cause when the evidence singles it out; None when it is still a guess."""
    if not signals or len(ranked) < 2:
        return None
    top, runner_up = ranked[0], ranked[1]
    if top.probability >= CONFIDENT_PROBABILITY and top.probability >= CONFIDENT_LEAD * runner_up.probability:
        return top
    return None
