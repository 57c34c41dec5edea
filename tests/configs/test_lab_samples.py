"""The lab's recorded scenarios: the lint finds each planted proxy fault and no error in the others.

The heartbeat given to the lint is the slower of the lab servers' ping intervals, as recorded in
each sample's lab-run.json (none for heartbeat_missing: then it is unknown).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbook.configs import lint_paths
from tests.configs.conftest import SAMPLES, assert_haproxy_accepts, assert_nginx_accepts
from tests.configs.test_fixes import lab_copy

CORPUS = SAMPLES.parent / "corpus"

# The planted proxy faults and the error checks that must name them; every other sample: no error.
PLANTED = {"proxy_missing_upgrade": {"NGX001", "NGX002", "NGX003"}, "proxy_timeout": {"NGX004"}}


def heartbeat_of(settings: dict) -> float | None:
    intervals = [settings.get(k) for k in ("python_ping_interval_s", "node_ping_interval_s") if settings.get(k)]
    return max(intervals) if intervals else None


SCENARIOS = sorted(p.name for p in SAMPLES.iterdir() if (p / "nginx.conf").is_file())


def test_every_scenario_has_a_config():
    assert len(SCENARIOS) == 7 and set(PLANTED) <= set(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lab_sample(scenario):
    """Planted faults found with file, line and a diff; nothing of severity error elsewhere."""
    settings = json.loads((SAMPLES / scenario / "lab-run.json").read_text())["settings"]
    path = str(SAMPLES / scenario / "nginx.conf")
    report = lint_paths([path], heartbeat_s=heartbeat_of(settings))
    errors = [f for f in report.findings if f.severity == "error"]
    assert {f.check for f in errors} == PLANTED.get(scenario, set()), [str(f) for f in errors]
    for error in errors:
        assert error.file == path and error.line and error.fix and error.fix.startswith(f"--- {path}\n")
    assert len(report.websocket_locations) == 2  # /ws/chat (python) and /ws/live (node)
    assert report.upgrade_forwarded is (scenario != "proxy_missing_upgrade")


@pytest.mark.real
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lab_sample_is_valid_nginx(scenario, tmp_path):
    """Each lab config (run folder moved to tmp) passes the real nginx -t."""
    assert_nginx_accepts(lab_copy(scenario, tmp_path), tmp_path)


def corpus_cases() -> list[Path]:
    """Finished corpus cases (case.json written last by the recorder) that hold a proxy config."""
    configs = [*CORPUS.glob("*/haproxy.cfg"), *CORPUS.glob("*/nginx.conf")] if CORPUS.is_dir() else []
    return sorted(p.parent for p in configs if (p.parent / "case.json").is_file())


@pytest.mark.parametrize("case", corpus_cases() or [None], ids=lambda case: case.name if case else "none")
def test_corpus_configs(case):
    """Recorded corpus cases: a proxy fault is an error finding; a case whose truth is not proxy has none."""
    if case is None:
        pytest.skip("no corpus case with a proxy config recorded yet (data/corpus/*/haproxy.cfg or nginx.conf)")
    meta = json.loads((case / "case.json").read_text())
    config = next(p for p in (case / "haproxy.cfg", case / "nginx.conf") if p.is_file())
    report = lint_paths([str(config)], heartbeat_s=heartbeat_of(meta["settings"]))
    errors = [f for f in report.findings if f.severity == "error"]
    if str(meta.get("stratum", "")).startswith("proxy"):
        assert errors, f"{case.name}: planted proxy fault not found"
    elif "proxy" not in meta["true_causes"]:
        assert errors == [], [str(f) for f in errors]
    if config.name == "haproxy.cfg":
        assert_haproxy_accepts(config)
