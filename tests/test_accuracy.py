"""benchmarks/accuracy.py: its figures on a hand-made set of outcomes (exact values), and a real
run of its functions on three corpus cases (the path works; the accuracy itself is not asserted,
it changes as the evidence model is tuned)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "data" / "corpus"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("accuracy_benchmark", ROOT / "benchmarks" / "accuracy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


A = _load_benchmark()
CAUSES = A.CAUSES


def outcome(case_id: str, truth: tuple[str, ...], predicted: str, **probabilities: float):
    full = dict.fromkeys(CAUSES, 0.0)
    full.update(probabilities)
    verdict = "healthy" if predicted == "healthy" else "degraded"
    return A.Outcome(case_id, truth, predicted, full, verdict)


# --- figures on hand-made outcomes ---------------------------------------------------------------


def test_perfect_prediction_has_brier_zero_and_p_truth_one() -> None:
    perfect = outcome("a", ("proxy",), "proxy", proxy=1.0)
    assert perfect.brier == 0
    assert perfect.p_truth == 1
    assert perfect.right and perfect.not_wrong
    figures = A.figures([perfect])
    assert figures["brier"] == 0 and figures["mean_p_truth"] == 1 and figures["accuracy"] == 1


def test_brier_of_uniform_and_of_two_faults() -> None:
    uniform = outcome("u", ("network",), "inconclusive", **dict.fromkeys(CAUSES, 0.2))
    assert uniform.brier == pytest.approx(0.8 ** 2 + 4 * 0.2 ** 2)
    both_halves = outcome("t", ("proxy", "resource_leak"), "proxy", proxy=0.5, resource_leak=0.5)
    assert both_halves.brier == pytest.approx(0)
    assert both_halves.p_truth == pytest.approx(1)
    assert both_halves.truth_in_top_two
    one_missed = outcome("t1", ("proxy", "resource_leak"), "proxy", proxy=0.9, heartbeat=0.1)
    assert one_missed.brier == pytest.approx(0.4 ** 2 + 0.1 ** 2 + 0.5 ** 2)
    assert one_missed.ranked[:2] == ["proxy", "heartbeat"]
    assert not one_missed.truth_in_top_two


def test_right_not_wrong_and_wrong() -> None:
    cases = [
        outcome("right", ("heartbeat",), "heartbeat", heartbeat=0.7, proxy=0.3),
        outcome("honest", ("heartbeat",), "inconclusive", proxy=0.45, heartbeat=0.4, network=0.15),
        outcome("buried", ("client",), "inconclusive", proxy=0.5, heartbeat=0.3, client=0.2),
        outcome("wrong", ("network",), "proxy", proxy=0.9, network=0.1),
        outcome("calm", (), "healthy", proxy=0.4, heartbeat=0.3, network=0.2, resource_leak=0.07, client=0.03),
        outcome("alarm", (), "inconclusive", proxy=0.4, heartbeat=0.3, network=0.2, resource_leak=0.07, client=0.03),
    ]
    assert [c.right for c in cases] == [True, False, False, False, True, False]
    assert [c.not_wrong for c in cases] == [True, True, False, False, True, False]
    figures = A.figures(cases)
    assert figures["accuracy"] == pytest.approx(2 / 6)
    assert figures["not_wrong"] == pytest.approx(3 / 6)
    assert figures["faulty_truth_first"] == pytest.approx(1 / 4)
    assert figures["mean_p_truth"] == pytest.approx((0.7 + 0.4 + 0.2 + 0.1) / 4)
    confusion = figures["confusion"]
    assert list(confusion) == ["healthy", "heartbeat", "network", "client"]  # healthy, then cause order
    assert confusion["heartbeat"]["heartbeat"] == 1 and confusion["heartbeat"]["inconclusive"] == 1
    assert confusion["network"]["proxy"] == 1
    assert confusion["healthy"] == {**dict.fromkeys(A.PREDICTIONS, 0), "healthy": 1, "inconclusive": 1}
    assert [row["ok"] for row in figures["healthy"]] == [True, False]


def test_reliability_bins_only_named_causes() -> None:
    cases = [
        outcome("a", ("proxy",), "proxy", proxy=0.85, heartbeat=0.15),  # 0.8-0.9, right
        outcome("b", ("network",), "proxy", proxy=0.95, network=0.05),  # 0.9-1.0, wrong
        outcome("c", ("heartbeat",), "heartbeat", heartbeat=1.0),  # 1.0 falls in the last bin
        outcome("d", ("proxy",), "proxy", proxy=0.55, heartbeat=0.45),  # 0.5-0.6, right
        outcome("e", ("proxy",), "inconclusive", proxy=0.45, heartbeat=0.45, network=0.1),  # not named
        outcome("f", ("client",), "client", client=0.4, proxy=0.35, network=0.25),  # below 0.5
    ]
    rows = {row["bin"]: row for row in A.reliability(cases)}
    assert (rows["0.8-0.9"]["count"], rows["0.8-0.9"]["right"]) == (1, 1)
    assert (rows["0.9-1.0"]["count"], rows["0.9-1.0"]["right"]) == (2, 1)
    assert (rows["0.5-0.6"]["count"], rows["0.5-0.6"]["share_right"]) == (1, 1.0)
    assert rows["0.6-0.7"]["count"] == 0 and rows["0.6-0.7"]["share_right"] is None
    assert rows["<0.5"]["count"] == 1
    assert rows["0.8-0.9"]["confident"] and not rows["0.7-0.8"]["confident"]
    figures = A.figures(cases)
    assert figures["confident_named"] == 3
    assert figures["confident_right"] == pytest.approx(2 / 3)


def test_two_fault_cases_report_both_in_top_two() -> None:
    cases = [outcome("x", ("heartbeat", "client"), "client", client=0.5, heartbeat=0.3, proxy=0.2),
             outcome("y", ("network", "resource_leak"), "network", network=0.6, proxy=0.3, resource_leak=0.1)]
    rows = A.figures(cases)["two_fault"]
    assert [row["both_in_top_two"] for row in rows] == [True, False]
    assert rows[0]["top_two"] == ["client", "heartbeat"]


def test_config_modes_know_the_server_heartbeat() -> None:
    """The config modes give the lint and the ranking the server's configured ping interval; a
    server without pings is NO_HEARTBEAT; the logs mode knows nothing of it."""
    cases = {c.id: c for c in A.load_cases(CORPUS, "all")}
    silent = next(c for c in cases.values() if "heartbeat" in c.truth and len(c.truth) == 1)
    assert silent.heartbeat_s == A.NO_HEARTBEAT
    inputs = A.Inputs()
    assert inputs.observations(silent, "logs").heartbeat_interval_s is None
    assert inputs.observations(silent, "logs+config").heartbeat_interval_s == A.NO_HEARTBEAT
    pinging = next(c for c in cases.values() if not c.truth)
    assert inputs.observations(pinging, "everything").config.heartbeat_s == pinging.heartbeat_s > 0


def test_unknown_mode_and_split_are_refused() -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        A.evaluate([], ["guess"])
    with pytest.raises(ValueError, match="split must be one of"):
        A.load_cases(CORPUS, "training")


# --- the real path on three recorded cases -------------------------------------------------------


def _three_cases():
    cases = A.load_cases(CORPUS, "all")
    if not cases:
        pytest.fail("data/corpus has no recorded case: record it with `ws-runbook lab corpus --out data/corpus`")
    wanted = [next((c for c in cases if not c.truth), None),
              next((c for c in cases if len(c.truth) == 1), None),
              next((c for c in cases if len(c.truth) == 2), None)]
    return [c for c in wanted if c is not None]


def test_cases_feed_every_log_but_config_and_probes() -> None:
    for case in _three_cases():
        names = {path.name for path in case.log_files}
        assert "server-state.csv" in names and "close-log.jsonl" in names
        assert not names & {"nginx.conf", "haproxy.cfg", "probes.json", "case.json"}
        assert case.config is not None and case.config.name in ("nginx.conf", "haproxy.cfg")


def test_benchmark_runs_on_three_corpus_cases(tmp_path: Path) -> None:
    cases = _three_cases()
    inputs = A.Inputs()
    results = A.evaluate(cases, ["logs", "logs+probes"], inputs)
    for mode, outcomes in results.items():
        assert [o.case_id for o in outcomes] == [c.id for c in cases], mode
        for o in outcomes:
            assert o.predicted in A.PREDICTIONS
            assert sum(o.probabilities.values()) == pytest.approx(1, abs=1e-6)
            assert set(o.probabilities) == set(CAUSES)
    # logs+probes really carries the probes; logs does not
    assert inputs.observations(cases[1], "logs").probes is None
    assert inputs.observations(cases[1], "logs+probes").probes is not None
    out = tmp_path / "figures.json"
    assert A.main(["--corpus", str(CORPUS), "--split", "all", "--only", *(c.id for c in cases),
                   "--modes", "logs", "logs+probes", "--json", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["cases"] == sorted(c.id for c in cases)
    assert written["modes"]["logs"]["measured"] and written["modes"]["logs"]["cases"] == len(cases)
