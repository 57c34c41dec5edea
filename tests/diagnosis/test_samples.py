"""Every bundled sample incident is diagnosed right, through the same path as the runbook."""

import json

import pytest

from runbook.configs import lint_paths
from runbook.diagnosis import SymptomStatus, Verdict, diagnose
from runbook.logfiles import load_close_logs
from runbook.logs.metrics import observe_logs
from runbook.observations import Observations
from runbook.steps import SAMPLES_DIR

SAMPLES = sorted(p.name for p in SAMPLES_DIR.iterdir() if (p / "lab-run.json").is_file())
NOT_LOGS = {"README.md", "lab-run.json", "nginx.conf"}


def observe(name: str, with_config: bool = False) -> tuple[Observations, list[str]]:
    folder = SAMPLES_DIR / name
    files = [str(p) for p in sorted(folder.iterdir()) if p.name not in NOT_LOGS]
    observed = observe_logs(load_close_logs(files))
    obs = Observations(logs=observed.logs, state=observed.state, log_formats=observed.formats)
    if with_config:
        obs.config = lint_paths([str(folder / "nginx.conf")])
    truth = json.loads((folder / "lab-run.json").read_text())["trueCauses"]
    return obs, truth


def test_every_scenario_has_a_sample():
    """The seven lab scenarios are all bundled (a missing one would silently drop out of the test)."""
    assert len(SAMPLES) == 7


@pytest.mark.parametrize("with_config", [False, True], ids=["logs", "logs+config"])
@pytest.mark.parametrize("name", SAMPLES)
def test_sample_is_diagnosed_right(name, with_config):
    """Healthy is healthy with no symptom; otherwise the truth leads, or an honest inconclusive has it
    in the top two (logs alone cannot always tell a proxy timeout from a missing heartbeat)."""
    obs, truth = observe(name, with_config)
    diagnosis = diagnose(obs)
    if not truth:
        assert diagnosis.verdict is Verdict.HEALTHY
        assert all(s.status is not SymptomStatus.PRESENT for s in diagnosis.symptoms)
        return
    assert diagnosis.verdict is Verdict.DEGRADED
    top_two = [r.cause.value for r in diagnosis.ranked[:2]]
    if diagnosis.leading is not None:
        assert diagnosis.leading.cause.value == truth[0], [(r.cause.value, r.probability) for r in diagnosis.ranked]
    else:
        assert truth[0] in top_two
    assert diagnosis.recommendations and truth[0] in [r.cause.value for r in diagnosis.recommendations]
