"""The corpus definition: enough cases, every cause on both stacks and both proxies, and a
calibration/evaluation split that is stratified, stable and the one committed in data/corpus."""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from runbook.diagnosis import Cause
from runbook.errors import ParameterError
from runbook.lab.corpus import (
    CASES,
    CAUSES,
    EVALUATION_SHARE,
    PROXIES,
    SPLIT_FILE,
    CaseSpec,
    apply_overrides,
    probe_seconds_for,
    split_cases,
    split_document,
)
from runbook.lab.scenarios import BACKENDS, get_scenario

CORPUS = Path(__file__).resolve().parents[2] / "data" / "corpus"


def test_at_least_44_cases_with_unique_ids() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) >= 44
    assert len(set(ids)) == len(ids)


def test_every_cause_runs_on_both_stacks_behind_both_proxies() -> None:
    assert set(CAUSES) == {cause.value for cause in Cause}
    assert all(set(case.backends) == set(BACKENDS) for case in CASES)  # python + Node in every case
    single = {(case.true_causes[0], case.proxy) for case in CASES if len(case.true_causes) == 1}
    assert single >= {(cause, proxy) for cause in CAUSES for proxy in PROXIES}
    # proxy is covered through both of its mechanisms, on both proxies
    strata = {(case.stratum, case.proxy) for case in CASES}
    assert strata >= {(s, p) for s in ("proxy_upgrade", "proxy_timeout") for p in PROXIES}


def test_healthy_and_two_fault_cases() -> None:
    healthy = [case for case in CASES if not case.true_causes]
    assert len(healthy) >= 6
    assert {case.proxy for case in healthy} == set(PROXIES)
    # heavy normal churn and many mobile clients are among them
    mixes = [case.scenario().mix for case in healthy]
    assert any(mix.mean_visit_s is not None and mix.mean_visit_s <= 3.0 for mix in mixes)  # scaled
    assert any(mix.mobile_share >= 0.8 for mix in mixes)
    two = [case for case in CASES if len(case.true_causes) == 2]
    assert len(two) >= 4
    assert all(case.stratum == "two_fault" for case in two)


def test_every_case_builds_its_scenario_with_compressed_time() -> None:
    for case in CASES:
        scenario = case.scenario()
        assert scenario.mix.clients == case.clients
        assert 0 < case.time_scale <= 1
        assert set(case.true_causes) <= set(CAUSES)
        # the fault can show: a recording long enough for a few of its timers
        assert case.seconds >= 15
    timeouts = {case.overrides.get("proxy_read_timeout_s") for case in CASES}
    assert {30.0, 60.0, 100.0} <= timeouts


def test_overrides_reach_nested_settings_and_unknown_fields_are_refused() -> None:
    base = get_scenario("network_idle_drop")
    changed = apply_overrides(base, {"middlebox": {"idle_timeout_s": 20.0},
                                     "mix": {"return_after_s": [1.0, 2.0],
                                             "reconnect": {"backoff": False}}})
    assert changed.middlebox.idle_timeout_s == 20.0 and changed.middlebox.name == base.middlebox.name
    assert changed.mix.return_after_s == (1.0, 2.0)
    assert changed.mix.reconnect.backoff is False
    with pytest.raises(ParameterError, match="no field 'proxy_timeout'"):
        apply_overrides(base, {"proxy_timeout": 3})


def test_probe_time_watches_a_few_idle_timeouts_within_the_recording() -> None:
    case = next(case for case in CASES if case.id == "ng-proxy-timeout-30")
    scenario = case.scenario()  # 3 s proxy timeout, 4.5 s heartbeat
    assert probe_seconds_for(scenario, case.seconds) == pytest.approx(2.5 * 4.5)
    for case in CASES:
        seconds = probe_seconds_for(case.scenario(), case.seconds)
        assert 5 <= seconds <= 0.6 * case.seconds + 0.01


def test_split_is_stratified_about_40_percent() -> None:
    split = split_cases()
    by_stratum: dict[str, Counter[str]] = defaultdict(Counter)
    for case in CASES:
        if not case.added_after_split:
            by_stratum[case.stratum][split[case.id]] += 1
    for stratum, counts in by_stratum.items():
        total = sum(counts.values())
        assert counts["evaluation"] >= 1 and counts["calibration"] >= 1, stratum
        assert abs(counts["evaluation"] - EVALUATION_SHARE * total) <= 1, (stratum, counts)
    original = [case.id for case in CASES if not case.added_after_split]
    share = sum(1 for case_id in original if split[case_id] == "evaluation") / len(original)
    assert 0.3 <= share <= 0.45


def test_cases_added_after_the_split_are_calibration_and_move_nothing() -> None:
    added = [case for case in CASES if case.added_after_split]
    assert added, "the corpus has cases recorded after the split"
    original = [case for case in CASES if not case.added_after_split]
    split, before = split_cases(), split_cases(original)
    assert all(split[case.id] == "calibration" for case in added)
    assert all(split[case.id] == before[case.id] for case in original)
    # However many are added to a stratum, the evaluation set stays the same.
    more = [dataclasses.replace(added[0], id=f"zz-added-{i}") for i in range(10)]
    assert {k: v for k, v in split_cases([*CASES, *more]).items() if not k.startswith("zz-")} == split


def test_split_is_stable_under_reordering_and_new_cases() -> None:
    split = split_cases()
    shuffled = list(CASES)
    random.Random(1).shuffle(shuffled)
    assert split_cases(shuffled) == split
    # A case added to one stratum never moves a case of another stratum.
    extra = dataclasses.replace(CASES[0], id="zz-new-healthy-case")
    grown = split_cases([*CASES, extra])
    assert all(grown[case.id] == split[case.id] for case in CASES if case.stratum != extra.stratum)


def test_committed_split_is_the_rule() -> None:
    committed = json.loads((CORPUS / SPLIT_FILE).read_text())
    assert committed == split_document()


def test_recorded_cases_carry_their_split_and_truth() -> None:
    """Every case folder already recorded says what the definition says (none: nothing to check)."""
    split = split_cases()
    specs: dict[str, CaseSpec] = {case.id: case for case in CASES}
    for case_file in sorted(CORPUS.glob("*/case.json")):
        data = json.loads(case_file.read_text())
        spec = specs[data["id"]]
        assert data["split"] == split[spec.id]
        assert data["true_causes"] == list(spec.true_causes)
        assert data["proxy"] == spec.proxy
        assert (case_file.parent / "server-state.csv").is_file()


@pytest.mark.real
def test_record_case_writes_logs_state_probes_and_truth(tmp_path: Path) -> None:
    """One short real case end to end: HAProxy stripping the upgrade. The probes, run after the
    snapshot, see the fault (non-101 through the proxy, 101 direct); the logs are HAProxy's and
    the python server's; case.json carries the truth and the split."""
    from runbook.lab.corpus import record_case
    from runbook.probes.serialize import report_from_dict
    from tests.lab.conftest import need_haproxy, need_node

    need_haproxy()
    need_node()
    tmp_path.chmod(0o755)
    case = dataclasses.replace(next(c for c in CASES if c.id == "ha-proxy-upgrade-a"), seconds=8.0, clients=10)
    data = record_case(case, tmp_path, "calibration")
    folder = tmp_path / case.id
    names = {path.name for path in folder.iterdir()}
    assert {"case.json", "probes.json", "server-state.csv", "close-log.jsonl", "haproxy.log", "haproxy.cfg"} <= names
    assert "server.log" not in names and data["empty_logs"] == ["server.log"]  # nothing reached Node
    assert "opening handshake failed: HTTP 4" in (folder / "close-log.jsonl").read_text()
    written = json.loads((folder / "case.json").read_text())
    assert written == data
    assert (written["true_causes"], written["split"], written["proxy"]) == (["proxy"], "calibration", "haproxy")
    assert written["stack"] == ["python websockets", "Node ws"]
    assert written["probes"]["error"] is None and written["probes"]["given"]["connections"] == 10
    report = report_from_dict(json.loads((folder / "probes.json").read_text()))
    assert report.handshake_target is not None and not report.handshake_target.ok
    assert 400 <= (report.handshake_target.status or 0) < 500
    assert report.handshake_direct is not None and report.handshake_direct.status == 101
    assert report.target_url == written["probes"]["given"]["target_url"]
