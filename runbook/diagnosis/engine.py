"""From observations to a diagnosis: symptoms, evidence, ranked causes, verdict, fixes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from runbook.diagnosis.causes import Cause
from runbook.diagnosis.evidence import Family, Signal
from runbook.diagnosis.next_checks import NextCheck, next_checks
from runbook.diagnosis.ranking import RankedCause, counted_signals, leading_cause, rank_causes
from runbook.diagnosis.remedies import Recommendation, recommend
from runbook.diagnosis.compare import measure
from runbook.diagnosis.config_rules import config_signals
from runbook.diagnosis.probe_rules import probe_signals
from runbook.diagnosis.rules import RULES
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
    next_checks: list[NextCheck]
    findings: list[str]  # plain sentences for the mechanisms the evidence shows
    measurements: dict  # the figures a later run compares against (diagnosis.compare)

    @property
    def counted(self) -> list[Signal]:
        """The signals the ranking multiplied (one per family)."""
        return counted_signals(self.signals)


def decide_verdict(symptoms: list[Symptom]) -> Verdict:
    """Degraded when any symptom is present; healthy only when the disconnect rate was measured
    and nothing is present; inconclusive otherwise."""
    if any(s.status is SymptomStatus.PRESENT for s in symptoms):
        return Verdict.DEGRADED
    rate = next(s for s in symptoms if s.id is SymptomId.HIGH_DISCONNECT_RATE)
    return Verdict.HEALTHY if rate.status is SymptomStatus.ABSENT else Verdict.INCONCLUSIVE


def collect_signals(obs: Observations) -> list[Signal]:
    """Every rule in order, logs, probes, then the config: the ranking's evidence."""
    signals = [signal for rule in RULES for signal in rule(obs)]
    if obs.probes is not None:
        signals += probe_signals(obs.probes)
    return signals + config_signals(obs)


def causes_to_fix(ranked: list[RankedCause], verdict: Verdict) -> list[Cause]:
    """Causes whose fix is worth offering: probable enough AND raised by some counted evidence.

    Never from the priors alone: a cause no signal points to gets no fix, however large its
    reference share.
    """
    if verdict is Verdict.HEALTHY:
        return []
    raised = [r for r in ranked if any(e.likelihood_ratio > 1 for e in r.evidence)]
    if not raised:
        return []
    chosen = [r.cause for r in raised if r.probability >= RECOMMEND_FROM]
    return chosen or [raised[0].cause]


def describe_findings(signals: list[Signal]) -> list[str]:
    """Plain sentences for the mechanisms at work, before any cause is named."""
    findings = []
    timer = next((s for s in counted_signals(signals) if s.family is Family.IDLE_TIMER), None)
    seconds = timer.figures.get("timer_s") or timer.figures.get("age_s") if timer is not None else None
    at = f" at about {seconds:g} s" if seconds else ""
    if timer is None:
        pass
    elif timer.name == "hard_connection_lifetime":
        findings.append(f"connections end{at} whether or not they carry traffic: a maximum connection lifetime "
                        "in the path, which no heartbeat fixes")
    elif timer.name == "idle_connection_blackholed":
        findings.append(f"idle connections go silent{at} with no FIN or RST: a NAT or firewall forgets idle flows; "
                        "a heartbeat shorter than its timeout keeps them alive")
    else:
        findings.append(f"idle connections are cut{at}: a proxy or load-balancer timeout shorter than the "
                        "heartbeat, or no heartbeat at all; the evidence below separates the two")
    return findings


def diagnose(obs: Observations) -> Diagnosis:
    signals = collect_signals(obs)
    symptoms = evaluate_symptoms(obs, signals)
    ranked = rank_causes(signals)
    verdict = decide_verdict(symptoms)
    leading = leading_cause(ranked, signals)
    return Diagnosis(
        symptoms=symptoms,
        signals=signals,
        ranked=ranked,
        leading=leading,
        verdict=verdict,
        recommendations=recommend(obs, causes_to_fix(ranked, verdict)),
        next_checks=[] if verdict is Verdict.HEALTHY else next_checks(obs, ranked),
        findings=describe_findings(signals),
        measurements=measure(obs, symptoms, signals),
    )
