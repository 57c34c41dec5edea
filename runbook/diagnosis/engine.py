"""From observations to a diagnosis: symptoms, evidence, ranked causes, verdict, fixes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from runbook.diagnosis.causes import Cause
from runbook.diagnosis.evidence import Signal
from runbook.diagnosis.ranking import RankedCause, leading_cause, rank_causes
from runbook.diagnosis.remedies import Recommendation, recommend
from runbook.diagnosis.rules import collect_signals
from runbook.diagnosis.symptoms import Symptom, SymptomId, SymptomStatus, evaluate_symptoms
from runbook.observations import Observations

# Fixes are offered for every cause at least this probable, and always for the top one.
RECOMMEND_FROM = 0.2


class Verdict(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    INCONCLUSIVE = "inconclusive"


@dataclass
class Diagnosis:
    symptoms: list[Symptom]
    signals: list[Signal]
    ranked: list[RankedCause]
    leading: RankedCause | None  # None while no cause stands out
    verdict: Verdict
    recommendations: list[Recommendation]


def decide_verdict(symptoms: list[Symptom]) -> Verdict:
    """Degraded when any symptom is present; healthy only when the disconnect rate was measured
    and nothing is present; inconclusive otherwise."""
    if any(s.status is SymptomStatus.PRESENT for s in symptoms):
        return Verdict.DEGRADED
    rate = next(s for s in symptoms if s.id is SymptomId.HIGH_DISCONNECT_RATE)
    return Verdict.HEALTHY if rate.status is SymptomStatus.ABSENT else Verdict.INCONCLUSIVE


def diagnose(obs: Observations) -> Diagnosis:
    symptoms = evaluate_symptoms(obs)
    signals = collect_signals(obs)
    ranked = rank_causes(signals)
    verdict = decide_verdict(symptoms)
    to_fix: list[Cause] = []
    if verdict is not Verdict.HEALTHY:
        to_fix = [r.cause for r in ranked if r.probability >= RECOMMEND_FROM] or [ranked[0].cause]
    return Diagnosis(
        symptoms=symptoms,
        signals=signals,
        ranked=ranked,
        leading=leading_cause(ranked, signals),
        verdict=verdict,
        recommendations=recommend(obs, to_fix),
    )
