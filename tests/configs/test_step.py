"""The runbook's proxy_config step and the config parameters, through the same functions the notebook calls."""

from __future__ import annotations

import pytest

import runbook.steps as rb
from runbook.errors import ParameterError
from runbook.params import has_inputs, validate_params
from tests.configs.conftest import DATA, SAMPLES


def steps_of(run):
    return {s.step: s for s in run.steps}


def test_only_proxy_config_is_linted_not_the_sample(tmp_path):
    """Given only proxy_config, the run is not the sample and the step checks that config."""
    path = str(SAMPLES / "proxy_missing_upgrade" / "nginx.conf")
    run = rb.start_run(interactive=False, proxy_config=path, output_dir=str(tmp_path))
    assert not run.sample and run.params["close_logs"] == []
    rb.lint_proxy_config(run)
    step = steps_of(run)["proxy_config"]
    assert step.status == "ok" and "upgrade NOT forwarded" in step.detail
    report = run.observations.config
    assert report.files == [path] and report.upgrade_forwarded is False
    assert {f.check for f in report.findings if f.severity == "error"} == {"NGX001", "NGX002", "NGX003"}


def test_heartbeat_and_target_path_reach_the_lint(tmp_path):
    """heartbeat_interval_s is what timeouts are compared with; target_url's path picks the location."""
    run = rb.start_run(interactive=False, proxy_config=str(SAMPLES / "healthy" / "nginx.conf"), heartbeat_interval_s=90,
                       target_url="ws://127.0.0.1:9/ws/chat", output_dir=str(tmp_path))
    rb.lint_proxy_config(run)
    report = run.observations.config
    assert report.heartbeat_s == 90
    assert report.websocket_locations[0].endswith("location /ws/chat (matched by the path of target_url (/ws/chat))")
    assert {f.check for f in report.findings if f.severity == "error"} == {"NGX004"}


def test_glob_and_lb_preset(tmp_path):
    """proxy_config may be a glob; lb_preset adds the load balancer's idle timeout to the path."""
    run = rb.start_run(interactive=False, proxy_config=str(DATA / "haproxy" / "with-*.cfg"), lb_preset="aws-alb",
                       heartbeat_interval_s=75, output_dir=str(tmp_path))
    rb.lint_proxy_config(run)
    report = run.observations.config
    assert report.kind == "mixed"
    assert [(t.component, t.seconds) for t in report.path_timeouts] == [("haproxy", 3600), ("aws-alb", 60)]
    assert [f.check for f in report.findings] == ["LB001"]


def test_unusable_config_is_a_failed_step(tmp_path):
    """A missing file fails the step with a message naming the file; the run goes on."""
    run = rb.start_run(interactive=False, proxy_config=str(tmp_path / "nope.conf"), output_dir=str(tmp_path))
    rb.lint_proxy_config(run)
    step = steps_of(run)["proxy_config"]
    assert step.status == "error" and "nope.conf: cannot read: no such file or directory" in step.detail
    assert run.observations.config.ok is False


def test_skipped_without_config(tmp_path):
    """Without proxy_config or a load balancer, the step says so and is skipped."""
    run = rb.start_run(interactive=False, target_url="ws://127.0.0.1:9/ws", output_dir=str(tmp_path))
    rb.lint_proxy_config(run)
    step = steps_of(run)["proxy_config"]
    assert step.status == "skipped" and "proxy_config not provided" in step.detail
    assert run.observations.config is None


def test_sample_run_lints_the_sample_config(tmp_path):
    """On the bundled sample, its nginx.conf is linted against its 90 s heartbeat."""
    run = rb.start_run(interactive=False, output_dir=str(tmp_path))
    assert run.sample
    rb.lint_proxy_config(run)
    report = run.observations.config
    assert report.heartbeat_s == 90 and {f.check for f in report.findings if f.severity == "error"} == {"NGX004"}


def test_config_parameters_validate():
    """lb_preset must be a known preset; timeouts 0..86400; an LB alone is an input."""
    assert has_inputs(validate_params({"lb_preset": "heroku"}))
    assert has_inputs(validate_params({"lb_idle_timeout_s": "350"}))
    assert not has_inputs(validate_params({"heartbeat_interval_s": 30}))
    with pytest.raises(ParameterError, match="lb_preset.*known presets: aws-alb"):
        validate_params({"lb_preset": "aws"})
    assert validate_params({"heartbeat_interval_s": -1})["heartbeat_interval_s"] == -1  # sends no pings
    with pytest.raises(ParameterError, match="heartbeat_interval_s"):
        validate_params({"heartbeat_interval_s": -2})
