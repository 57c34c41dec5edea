"""Tests of the symptoms checklist, the verdict and the recommendations."""

from runbook.diagnosis import Cause, SymptomId, SymptomStatus, Verdict, collect_signals, diagnose
from runbook.diagnosis import evaluate_symptoms as evaluate
from runbook.logs.metrics import summarize_logs
from runbook.observations import Observations
import pandas as pd

from tests.frames import T0, frame, sessions


def evaluate_symptoms(obs):
    return evaluate(obs, collect_signals(obs))


def statuses(obs):
    return {s.id: s.status for s in evaluate_symptoms(obs)}


def test_checklist_order_and_unknown_without_data():
    """The five symptoms come in the reference order, all unknown without input."""
    symptoms = evaluate_symptoms(Observations())
    assert [s.id.value for s in symptoms] == [
        "high_disconnect_rate", "timeouts_failed_upgrades", "reconnect_loops", "proxy_lb_issues", "abandoned_connection_leaks",
    ]
    assert {s.status for s in symptoms} == {SymptomStatus.UNKNOWN}
    assert all(s.summary for s in symptoms)
    assert diagnose(Observations()).verdict is Verdict.INCONCLUSIVE


def test_proxy_timeout_incident_is_degraded():
    """Everyone cut at 60 s: high rate, timeouts and proxy issues present; verdict degraded."""
    obs = Observations(logs=summarize_logs(frame(sessions(40, 4, lifetime=lambda rng, c, k: 60 + rng.uniform(0, 1)))))
    found = statuses(obs)
    assert found[SymptomId.HIGH_DISCONNECT_RATE] is SymptomStatus.PRESENT
    assert found[SymptomId.TIMEOUTS_FAILED_UPGRADES] is SymptomStatus.PRESENT
    assert found[SymptomId.PROXY_LB_ISSUES] is SymptomStatus.PRESENT
    assert found[SymptomId.RECONNECT_LOOPS] is SymptomStatus.ABSENT
    assert found[SymptomId.ABANDONED_CONNECTION_LEAKS] is SymptomStatus.UNKNOWN
    diagnosis = diagnose(obs)
    assert diagnosis.verdict is Verdict.DEGRADED
    assert diagnosis.recommendations[0].cause is Cause.PROXY
    assert "~61 s" in diagnosis.recommendations[0].snippet


def test_quiet_service_is_healthy():
    """Long-lived connections with rare clean closes: rate absent, verdict healthy, no fix."""
    rows = sessions(300, 1, lifetime=lambda rng, c, k: rng.uniform(60, 1800), code=1001)
    # Only 20 of the 300 leave during the half hour; the rest are still connected at the end.
    leaving = {r["connection_id"] for r in rows if r["event"] == "disconnect"}
    leaving = set(sorted(leaving)[:20])
    rows = [r for r in rows if r["event"] == "connect" or r["connection_id"] in leaving]
    rows.append(dict(ts=T0 + pd.Timedelta(minutes=30), event="connect", connection_id="late"))
    obs = Observations(logs=summarize_logs(frame(rows)))
    rate = evaluate_symptoms(obs)[0]
    assert rate.status is SymptomStatus.ABSENT, rate.summary
    diagnosis = diagnose(obs)
    assert diagnosis.verdict is Verdict.HEALTHY
    assert diagnosis.recommendations == []


def test_heartbeat_fix_follows_the_stack():
    """A Node monitor log gets a Node ws heartbeat; JSON lines get python-websockets."""
    rows = sessions(40, 4, lifetime=lambda rng, c, k: 20 + rng.uniform(0, 0.5))
    logs = summarize_logs(frame(rows))
    node = diagnose(Observations(logs=logs, log_formats=["node_monitor"]))
    python = diagnose(Observations(logs=logs, log_formats=["jsonlines"]))
    node_fix = next(r for r in node.recommendations if r.cause is Cause.HEARTBEAT)
    python_fix = next(r for r in python.recommendations if r.cause is Cause.HEARTBEAT)
    assert node_fix.language == "javascript" and "HEARTBEAT_MS = 10000" in node_fix.snippet
    assert python_fix.language == "python" and "ping_interval=10" in python_fix.snippet
