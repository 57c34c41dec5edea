"""diagnosis.json: the schema, validate_diagnosis and write_diagnosis_json."""

from __future__ import annotations

import copy
import json

import pytest
from jsonschema import Draft202012Validator, ValidationError

from runbook.errors import RunbookError
from runbook.report.outputs import (
    SCHEMA_PATH,
    diagnosis_schema,
    validate_diagnosis,
    write_diagnosis_json,
)

SYMPTOMS = [
    "high_disconnect_rate",
    "timeouts_failed_upgrades",
    "reconnect_loops",
    "proxy_lb_issues",
    "abandoned_connection_leaks",
]
PRIORS = {"proxy": 0.40, "heartbeat": 0.30, "network": 0.20, "resource_leak": 0.07, "client": 0.03}


@pytest.fixture
def doc() -> dict:
    """A valid diagnosis: proxy found, evidence shown, one step skipped."""
    symptoms = [{"id": s, "status": "unknown", "summary": "no data", "figures": {}} for s in SYMPTOMS]
    symptoms[0].update(
        status="present",
        summary="12% of connections closed per minute (threshold 5%)",
        figures={"disconnect_rate_per_min": 0.12, "threshold": 0.05},
    )
    posteriors = {"proxy": 0.83, "heartbeat": 0.09, "network": 0.05, "resource_leak": 0.02, "client": 0.01}
    causes = [
        {"cause": c, "prior": PRIORS[c], "probability": p, "evidence": []} for c, p in posteriors.items()
    ]
    causes[0]["evidence"].append(
        {"signal": "idle_close_at_60s", "detail": "1006 after 60 s idle", "likelihood_ratio": 12.0}
    )
    return {
        "schema_version": 1,
        "incident_id": "INC-2024-0312",
        "generated_at": "2024-03-12T03:14:15.926+00:00",
        "verdict": "degraded",
        "symptoms": symptoms,
        "ranked_causes": causes,
        "recommendations": [
            {"cause": "proxy", "title": "Raise proxy_read_timeout above the ping interval",
             "snippet": "proxy_read_timeout 3600s;", "language": "nginx"},
        ],
        "steps": [
            {"step": "parse_close_logs", "status": "ok", "detail": "2 files, 1,204 events"},
            {"step": "probe_heartbeat", "status": "skipped", "detail": "target_url not given"},
        ],
    }


def test_schema_is_valid_draft_2020_12():
    """The shipped schema is itself a valid draft 2020-12 schema."""
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert diagnosis_schema() == schema


def test_valid_document_passes(doc):
    """A complete, sorted, normalized diagnosis validates."""
    assert validate_diagnosis(doc) is None


def test_priors_alone_pass(doc):
    """With no evidence the ranking equals the priors and still validates."""
    for cause in doc["ranked_causes"]:
        cause["probability"], cause["evidence"] = cause["prior"], []
    validate_diagnosis(doc)


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda d: d.update(schema_version=2), "schema_version"),
        (lambda d: d.pop("steps"), "(root)"),
        (lambda d: d.update(surprise=True), "(root)"),
        (lambda d: d.update(incident_id=""), "incident_id"),
        (lambda d: d.update(verdict="broken"), "verdict"),
        (lambda d: d.update(generated_at="yesterday"), "generated_at"),
        (lambda d: d.update(generated_at="2024-03-12T03:14:15"), "generated_at"),  # no offset
        (lambda d: d.update(generated_at="2024-02-30T03:14:15Z"), "generated_at"),
        (lambda d: d["symptoms"][1].update(id="slow_pings"), "symptoms[1].id"),
        (lambda d: d["symptoms"][2].update(status="maybe"), "symptoms[2].status"),
        (lambda d: d["symptoms"][0].update(figures=[0.12]), "symptoms[0].figures"),
        (lambda d: d["symptoms"].pop(), "symptoms"),
        (lambda d: d["ranked_causes"][1].update(cause="dns"), "ranked_causes[1].cause"),
        (lambda d: d["ranked_causes"][4].update(cause="proxy"), "ranked_causes"),
        (lambda d: d["ranked_causes"].pop(), "ranked_causes"),
        (lambda d: d["ranked_causes"][0].update(probability=1.2), "ranked_causes[0].probability"),
        (lambda d: d["ranked_causes"][3].update(prior=-0.1), "ranked_causes[3].prior"),
        (lambda d: d["ranked_causes"][0]["evidence"][0].update(likelihood_ratio=0),
         "ranked_causes[0].evidence[0].likelihood_ratio"),
        (lambda d: d["ranked_causes"][0]["evidence"][0].pop("signal"), "ranked_causes[0].evidence[0]"),
        (lambda d: d["recommendations"][0].update(cause="dns"), "recommendations[0].cause"),
        (lambda d: d["recommendations"][0].pop("language"), "recommendations[0]"),
        (lambda d: d["steps"][1].update(status="done"), "steps[1].status"),
    ],
)
def test_schema_violations_name_the_path(doc, mutate, path):
    """Each schema violation raises RunbookError naming where, chained from jsonschema."""
    mutate(doc)
    with pytest.raises(RunbookError) as info:
        validate_diagnosis(doc)
    assert f"diagnosis.json invalid at {path}:" in str(info.value)
    assert isinstance(info.value.__cause__, ValidationError)


def test_missing_cause_is_named(doc):
    """A duplicated cause is reported by the cause that is missing."""
    doc["ranked_causes"][4]["cause"] = "proxy"
    with pytest.raises(RunbookError, match="no item has cause 'client'"):
        validate_diagnosis(doc)


def test_unsorted_causes_are_rejected(doc):
    """ranked_causes out of probability order raises, naming the first misplaced entry."""
    causes = doc["ranked_causes"]
    causes[1], causes[2] = causes[2], causes[1]
    with pytest.raises(RunbookError, match=r"ranked_causes\[2\]\.probability: 0\.09 is above"):
        validate_diagnosis(doc)


def test_ties_are_sorted(doc):
    """Equal probabilities in a row count as sorted."""
    for cause, p in zip(doc["ranked_causes"], [0.4, 0.2, 0.2, 0.1, 0.1]):
        cause["probability"] = p
    validate_diagnosis(doc)


@pytest.mark.parametrize("key", ["probability", "prior"])
def test_unnormalized_distributions_are_rejected(doc, key):
    """Probabilities or priors that do not sum to 1 raise."""
    for cause in doc["ranked_causes"]:
        cause[key] = cause[key] / 2
    with pytest.raises(RunbookError, match=rf"ranked_causes\[\*\]\.{key}: sums to 0\.5"):
        validate_diagnosis(doc)


@pytest.mark.parametrize(
    ("bad", "problem"),
    [(float("nan"), "nan is not a finite number"), (float("inf"), "inf is not a finite number")],
)
def test_non_finite_numbers_are_rejected(doc, bad, problem):
    """NaN and infinity, which the schema's bounds let through, raise."""
    doc["symptoms"][0]["figures"]["disconnect_rate_per_min"] = bad
    with pytest.raises(RunbookError, match=rf"symptoms\[0\]\.figures\.disconnect_rate_per_min: {problem}"):
        validate_diagnosis(doc)


def test_non_json_values_are_rejected(doc):
    """A value JSON cannot hold raises naming its path and type."""
    doc["steps"][0]["detail"] = {"when": object()}
    with pytest.raises(RunbookError, match=r"steps\[0\]\.detail\.when: object is not a JSON type"):
        validate_diagnosis(doc)


def test_write_diagnosis_json_round_trips(doc, tmp_path):
    """The file is UTF-8 JSON indented by 2 and reads back equal."""
    doc["steps"][0]["detail"] = "Ünïcode close reason «going away»"
    path = write_diagnosis_json(doc, tmp_path / "out" / "diagnosis.json")
    assert path == tmp_path / "out" / "diagnosis.json"
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == doc
    assert text == json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_write_diagnosis_json_writes_nothing_when_invalid(doc, tmp_path):
    """An invalid document raises before any file is created or replaced."""
    path = tmp_path / "diagnosis.json"
    path.write_text("previous", encoding="utf-8")
    bad = copy.deepcopy(doc)
    bad["verdict"] = "unknown"
    with pytest.raises(RunbookError, match="verdict"):
        write_diagnosis_json(bad, path)
    assert path.read_text(encoding="utf-8") == "previous"
