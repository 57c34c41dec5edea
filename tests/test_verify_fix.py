"""Verify the fix (baseline) and deploys/reloads on the timeline (events), through the real steps."""

import json

import pandas as pd

from runbook.diagnosis import diagnose
from runbook.diagnosis.compare import compare
from runbook.diagnosis.rules import mass_disconnects
from runbook.logs.metrics import summarize_logs
from runbook.observations import Event, Observations
from runbook.steps import SAMPLES_DIR, run_all
from tests.frames import T0, frame, sessions


def sample_logs(name):
    return [str(SAMPLES_DIR / name / "close-log.jsonl"), str(SAMPLES_DIR / name / "server.log")]


def test_baseline_shows_what_the_fix_resolved(tmp_path):
    """The incident, then the healthy service compared with it: the cut and the symptoms resolved."""
    before = run_all({"close_logs": sample_logs("proxy_timeout"), "output_dir": str(tmp_path / "before")})
    assert before.diagnosis.verdict.value == "degraded"
    after = run_all({"close_logs": sample_logs("healthy"), "output_dir": str(tmp_path / "after"),
                     "baseline": str(tmp_path / "before")})
    document = json.loads((tmp_path / "after" / "diagnosis.json").read_text())
    rows = {row["what"]: row for row in document["comparison"]["rows"]}
    assert rows["verdict"]["outcome"] == "better"
    assert rows["connections cut at one age"] == {"what": "connections cut at one age", "before": "at 60 s",
                                                  "after": "no", "outcome": "resolved"}
    assert rows["symptom high_disconnect_rate"]["outcome"] == "resolved"
    assert next(s for s in after.steps if s.step == "baseline").status == "ok"


def test_unreadable_baseline_is_a_step_error_not_a_crash(tmp_path):
    """A baseline folder without diagnosis.json fails its step with a message; outputs are still written."""
    run = run_all({"close_logs": sample_logs("healthy"), "output_dir": str(tmp_path / "out"),
                   "baseline": str(tmp_path / "nothing-here")})
    record = next(s for s in run.steps if s.step == "baseline")
    assert record.status == "error" and "cannot read the baseline" in record.detail
    assert (tmp_path / "out" / "diagnosis.json").is_file()


def test_compare_outcomes():
    """Rates that fall are better, a symptom that appears is new."""
    rows = compare({"verdict": "healthy", "measurements": {"unexpected_rate_median": 0.01, "present": []}},
                   {"verdict": "degraded", "measurements": {"unexpected_rate_median": 0.2, "present": ["reconnect_loops"]}})
    outcomes = {row["what"]: row["outcome"] for row in rows}
    assert outcomes["verdict"] == "worse"
    assert outcomes["unexpected disconnects per minute (median)"] == "worse"
    assert outcomes["symptom reconnect_loops"] == "new"


def burst_rows():
    """200 long-lived users who connected over nine minutes, 120 of them dropped (1006) in the same
    second at 03:10:00 whatever their age."""
    rows = sessions(200, 1, lifetime=lambda rng, c, k: 600 + rng.uniform(0, 600), code=1000, start_spread=540)
    for row in rows:
        if row["event"] == "disconnect" and int(row["connection_id"].split("-")[1]) < 120:
            row["ts"] = T0 + pd.Timedelta(minutes=10, milliseconds=int(row["connection_id"].split("-")[1]))
            row["code"], row["duration_s"] = 1006, None
    return rows


def test_a_cohort_meeting_one_timer_is_no_mass_disconnect():
    """Clients that connected in the same second and were cut by one idle timeout together are a
    timer's cohort, not a reload: no mass_disconnect."""
    rows = sessions(60, 1, lifetime=60.0, start_spread=0.5)
    assert mass_disconnects(Observations(logs=summarize_logs(frame(rows)))) == []


def test_mass_disconnect_is_matched_to_the_reload():
    """A burst a few seconds after an nginx reload names the reload."""
    logs = summarize_logs(frame(burst_rows()))
    reload = Event(T0 + pd.Timedelta(minutes=9, seconds=55), "nginx reload")
    (signal,) = mass_disconnects(Observations(logs=logs, events=[reload]))
    assert signal.name == "mass_disconnect" and "nginx reload" in signal.detail
    assert signal.figures["matched_events"] == 1
    (unmatched,) = mass_disconnects(Observations(logs=logs))
    assert unmatched.figures["matched_events"] == 0
    assert diagnose(Observations(logs=logs)).verdict.value == "degraded"


def test_events_parameter_from_a_file(tmp_path):
    """A file of 'TIME label' lines puts the events on the run's timeline."""
    events = tmp_path / "deploys.txt"
    events.write_text("2026-11-28T06:24:00Z deploy api v2\n2026-11-28T06:25:30Z nginx reload\n")
    run = run_all({"close_logs": sample_logs("healthy"), "events": [str(events)], "output_dir": str(tmp_path / "o")})
    assert [e.label for e in run.observations.events] == ["deploy api v2", "nginx reload"]
    bad = tmp_path / "bad.txt"
    bad.write_text("yesterday-ish deploy\n")
    run = run_all({"close_logs": sample_logs("healthy"), "events": [str(bad)], "output_dir": str(tmp_path / "p")})
    record = next(s for s in run.steps if s.step == "events")
    assert record.status == "error" and "bad.txt" in record.detail
