"""The runbook as a plain function: the same steps the notebook calls, without a kernel."""

from __future__ import annotations

import json

import pytest

import runbook.steps as rb
from runbook.logfiles import load_close_logs
from runbook.report.outputs import validate_diagnosis


def test_run_all_on_sample(tmp_path):
    """With no input the steps run on the sample incident and write a valid diagnosis.json."""
    run = rb.run_all({"output_dir": str(tmp_path)})
    assert run.sample
    assert [s.step for s in run.steps] == [f.step_name for f in rb.STEPS]
    document = json.loads((tmp_path / "diagnosis.json").read_text())
    validate_diagnosis(document)
    assert document["verdict"] == "degraded"
    assert document["steps"][-1] == {"step": "outputs", "status": "ok", "detail": "diagnosis.json written"}


def test_any_input_turns_the_sample_off(tmp_path):
    """Given only a target URL, no sample log is read: the log steps say not provided."""
    run = rb.run_all({"target_url": "ws://127.0.0.1:9/ws", "output_dir": str(tmp_path)})
    assert not run.sample and run.params["close_logs"] == []
    steps = {s.step: s for s in run.steps}
    assert steps["close_logs"].status == "skipped" and "not provided" in steps["close_logs"].detail
    # Nothing listens on port 9: the refused handshake is evidence, not a failed step.
    assert steps["live_probes"].status == "ok" and "failed: handshake (target)" in steps["live_probes"].detail
    assert run.diagnosis.verdict.value == "inconclusive"


def test_failing_step_is_recorded_and_the_rest_runs(tmp_path, monkeypatch):
    """An exception inside one step is recorded as its error; later steps and the outputs run."""

    def broken(*args, **kwargs):
        raise RuntimeError("metrics exploded")

    monkeypatch.setattr(rb, "observe_close_logs", broken)
    run = rb.run_all({"output_dir": str(tmp_path)})
    steps = {s.step: s for s in run.steps}
    assert steps["close_logs"].status == "error"
    assert "RuntimeError: metrics exploded" in steps["close_logs"].detail
    assert steps["ranked_causes"].status == "ok" and steps["outputs"].status == "ok"
    document = json.loads((tmp_path / "diagnosis.json").read_text())
    recorded = next(s for s in document["steps"] if s["step"] == "close_logs")
    assert (recorded["status"], recorded["detail"]) == ("error", "RuntimeError: metrics exploded")
    assert recorded["duration_s"] >= 0


def test_unreadable_and_unknown_logs_are_data(tmp_path):
    """A missing file and a file in no known format are reported per source, never raised."""
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\nworld\n")
    parsed = load_close_logs([str(tmp_path / "missing.log"), str(junk), str(tmp_path / "none-*.log")])
    assert [p.ok for p in parsed] == [False, False, False]
    assert "missing.log does not exist" in parsed[0].error
    assert parsed[1].ignored_lines == 2 and parsed[1].error
    assert "no file matches" in parsed[2].error


def test_gzip_logs_are_read(tmp_path):
    """Rotated .gz logs are read like plain ones."""
    import gzip

    path = tmp_path / "close.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write('{"ts": "2026-11-28T03:00:00Z", "event": "disconnect", "code": 1006, "duration": 60000}\n')
    (parsed,) = load_close_logs([str(path)])
    assert parsed.ok and parsed.records == 1


@pytest.mark.parametrize("bad", [{"close_log": ["x"]}, {"server_port": -1}])
def test_bad_parameters_raise_before_any_step(bad):
    """start_run validates the parameters first, as the notebook's first cell does."""
    from runbook.errors import ParameterError

    with pytest.raises(ParameterError):
        rb.start_run(interactive=False, **bad)


def test_step_details_are_redacted_in_diagnosis_json(tmp_path):
    """A token quoted in a step's detail (here a log path) is redacted before diagnosis.json is written."""
    rb.run_all({"close_logs": [str(tmp_path / "x.log?token=s3cr3t-in-path")], "output_dir": str(tmp_path)})
    text = (tmp_path / "diagnosis.json").read_text()
    assert "s3cr3t" not in text and "[REDACTED]" in text
