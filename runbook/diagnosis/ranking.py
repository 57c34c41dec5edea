"""Bayesian ranking of the root causes from the priors and the evidence signals.

Signals of one family report one mechanism (``evidence.Family``), so the ranking counts at most
one per family: the strongest that fired. The others are kept and shown as "same fact, not
counted again", never multiplied in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runbook.diagnosis.causes import PRIORS, Cause
from runbook.diagnosis.evidence import Family, Signal

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


def counted_signals(signals: list[Signal]) -> list[Signal]:
    """The signals the ranking multiplies: the strongest of each family, in the order given.

    Ties go to the signal that fired first (rules run logs, then probes, then config).
    """
    best: dict[Family, Signal] = {}
    for signal in signals:
        held = best.get(signal.family)
        if held is None or signal.spec.strength > held.spec.strength:
            best[signal.family] = signal
    chosen = {id(s) for s in best.values()}
    return [s for s in signals if id(s) in chosen]


def rank_causes(signals: list[Signal]) -> list[RankedCause]:
    """Posterior of each cause: prior times the ratios of the counted signals, normalized.

    Sorted by probability, ties in prior order; always all five causes. With no signal the
    posterior is exactly the priors.
    """
    counted = counted_signals(signals)
    weights = {}
    for cause, prior in PRIORS.items():
        weight = prior
        for signal in counted:
            weight *= signal.ratio(cause)
        weights[cause] = weight
    total = sum(weights.values())
    posterior = {c: (weights[c] / total if counted else PRIORS[c]) for c in PRIORS}
    ranked = [
        RankedCause(
            cause=cause,
            prior=PRIORS[cause],
            probability=posterior[cause],
            evidence=[
                EvidenceItem(s.name, s.detail, s.ratio(cause), s.rationale)
                for s in counted
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
