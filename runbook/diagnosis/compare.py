"""Verify the fix: the figures of one run, and how they moved since a previous run (``baseline``).

Pure: the measurements are plain data (they travel in diagnosis.json), so a run can be compared
with any earlier run's output folder.
"""

from __future__ import annotations

from typing import Any

from runbook.diagnosis.evidence import Family, Signal
from runbook.diagnosis.symptoms import Symptom, SymptomId, SymptomStatus
from runbook.observations import Observations


def measure(obs: Observations, symptoms: list[Symptom], signals: list[Signal]) -> dict[str, Any]:
    """The figures a later run is compared on: rates, the timer, idle survival, what was present."""
    rate = next(s for s in symptoms if s.id is SymptomId.HIGH_DISCONNECT_RATE)
    timer = next((s for s in signals if s.family is Family.IDLE_TIMER), None)
    heartbeat = obs.probes.heartbeat if obs.probes is not None else None
    idle = None
    if heartbeat is not None and heartbeat.ok and heartbeat.idle is not None:
        fate = heartbeat.idle
        idle = (f"survived {fate.observed_s:.0f} s" if fate.alive_at_end
                else f"died at {fate.lifetime_s or fate.observed_s:.1f} s")
    return {
        "unexpected_rate_median": rate.figures.get("median_rate"),
        "unexpected_rate_peak": rate.figures.get("peak_rate"),
        "timer_s": (timer.figures.get("timer_s") or timer.figures.get("age_s")) if timer else None,
        "idle_probe": idle,
        "present": sorted(s.id.value for s in symptoms if s.status is SymptomStatus.PRESENT),
        "signals": sorted({s.name for s in signals}),
    }


def _number(value: Any) -> str:
    if value is None:
        return "not measured"
    return f"{value:.1%}" if isinstance(value, float) and value <= 1 else str(value)


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, str]]:
    """Rows ``{what, before, after, outcome}`` from two runs' diagnosis.json documents.

    Outcomes: "better", "worse", "same", "resolved", "still present", "new", "not comparable".
    """
    was, now = before.get("measurements") or {}, after.get("measurements") or {}
    rows = [{"what": "verdict", "before": before.get("verdict", "?"), "after": after.get("verdict", "?"),
             "outcome": _verdict_outcome(before.get("verdict"), after.get("verdict"))}]
    for key, what in (("unexpected_rate_median", "unexpected disconnects per minute (median)"),
                      ("unexpected_rate_peak", "unexpected disconnects per minute (peak)")):
        a, b = was.get(key), now.get(key)
        outcome = ("not comparable" if a is None or b is None else
                   "better" if b < a * 0.8 else "worse" if b > a * 1.25 + 0.001 else "same")
        rows.append({"what": what, "before": _number(a), "after": _number(b), "outcome": outcome})
    a, b = was.get("timer_s"), now.get("timer_s")
    rows.append({"what": "connections cut at one age", "before": f"at {a:g} s" if a else "no",
                 "after": f"at {b:g} s" if b else "no",
                 "outcome": "resolved" if a and not b else "new" if b and not a else "still present" if a else "same"})
    a, b = was.get("idle_probe"), now.get("idle_probe")
    if a or b:
        outcome = ("resolved" if a and b and a.startswith("died") and b.startswith("survived") else
                   "worse" if a and b and a.startswith("survived") and b.startswith("died") else
                   "not comparable" if not (a and b) else "same")
        rows.append({"what": "idle probe connection", "before": a or "not run", "after": b or "not run",
                     "outcome": outcome})
    before_present, after_present = set(was.get("present", [])), set(now.get("present", []))
    for symptom in sorted(before_present | after_present):
        outcome = ("resolved" if symptom not in after_present else
                   "new" if symptom not in before_present else "still present")
        rows.append({"what": f"symptom {symptom}", "before": "present" if symptom in before_present else "absent",
                     "after": "present" if symptom in after_present else "absent", "outcome": outcome})
    return rows


def _verdict_outcome(before: str | None, after: str | None) -> str:
    order = {"healthy": 0, "inconclusive": 1, "degraded": 2}
    if before not in order or after not in order:
        return "not comparable"
    if before == after:
        return "same"
    return "better" if order[after] < order[before] else "worse"
