"""The pure diagnosis core: evidence signals, priors, Bayesian ranking, checklist, fixes.

No I/O, no clock, no plotting: observations in, a Diagnosis out.
"""

from runbook.diagnosis.causes import PRIORS, TITLES, Cause
from runbook.diagnosis.engine import Diagnosis, Verdict, collect_signals, decide_verdict, diagnose
from runbook.diagnosis.evidence import SIGNALS, Family, Signal, SignalSpec
from runbook.diagnosis.next_checks import NextCheck
from runbook.diagnosis.ranking import RankedCause, counted_signals, leading_cause, rank_causes
from runbook.diagnosis.remedies import Recommendation, recommend
from runbook.diagnosis.rules import RULES
from runbook.diagnosis.symptoms import SYMPTOM_TITLES, Symptom, SymptomId, SymptomStatus, evaluate_symptoms

__all__ = [
    "PRIORS", "RULES", "SIGNALS", "SYMPTOM_TITLES", "TITLES", "Cause", "Diagnosis", "Family", "NextCheck",
    "RankedCause", "Recommendation", "Signal", "SignalSpec", "Symptom", "SymptomId", "SymptomStatus", "Verdict",
    "collect_signals", "counted_signals", "decide_verdict", "diagnose", "evaluate_symptoms", "leading_cause",
    "rank_causes", "recommend",
]
