"""The machine-readable diagnosis (diagnosis.json, schema version 1) of one run."""

from __future__ import annotations

import math
from typing import Any

from runbook.diagnosis import Diagnosis

SCHEMA_VERSION = 1


def _clean(value: Any) -> Any:
    """JSON-safe figures: numpy scalars to Python, NaN to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def diagnosis_document(
    diagnosis: Diagnosis, steps: list[dict[str, str]], incident_id: str, generated_at: str
) -> dict[str, Any]:
    """The diagnosis.json document as DESIGN.md defines it."""
    return {
        "schema_version": SCHEMA_VERSION,
        "incident_id": incident_id,
        "generated_at": generated_at,
        "verdict": diagnosis.verdict.value,
        "symptoms": [
            {"id": s.id.value, "status": s.status.value, "summary": s.summary, "figures": _clean(s.figures)}
            for s in diagnosis.symptoms
        ],
        "ranked_causes": [
            {
                "cause": r.cause.value,
                "prior": r.prior,
                "probability": round(r.probability, 6),
                "evidence": [
                    {"signal": e.signal, "detail": e.detail, "likelihood_ratio": e.likelihood_ratio}
                    for e in r.evidence
                ],
            }
            for r in diagnosis.ranked
        ],
        "recommendations": [
            {"cause": rec.cause.value, "title": rec.title, "snippet": rec.snippet, "language": rec.language}
            for rec in diagnosis.recommendations
        ],
        "steps": [dict(step) for step in steps],
        "leading_cause": diagnosis.leading.cause.value if diagnosis.leading is not None else None,
        "findings": list(diagnosis.findings),
        "measurements": _clean(diagnosis.measurements),
        "next_checks": [{"cause": c.cause.value, "check": c.check, "why": c.why} for c in diagnosis.next_checks],
    }
