"""Tests of the Bayesian ranking."""

import pytest

from runbook.diagnosis import PRIORS, Cause, Signal, leading_cause, rank_causes


def test_no_evidence_gives_priors_exactly():
    """With no signal the ranking equals the reference shares exactly, in their order."""
    ranked = rank_causes([])
    assert [(r.cause, r.probability) for r in ranked] == list(PRIORS.items())
    assert [r.probability for r in ranked] == [0.40, 0.30, 0.20, 0.07, 0.03]
    assert all(r.evidence == [] for r in ranked)


def test_posterior_is_prior_times_ratio_normalized():
    """One signal multiplying client by 10 gives 0.3 / 1.27 to client."""
    signal = Signal("s", "seen", "why", {Cause.CLIENT: 10.0})
    ranked = {r.cause: r for r in rank_causes([signal])}
    assert ranked[Cause.CLIENT].probability == pytest.approx(0.30 / 1.27)
    assert ranked[Cause.PROXY].probability == pytest.approx(0.40 / 1.27)
    assert [e.signal for e in ranked[Cause.CLIENT].evidence] == ["s"]
    assert ranked[Cause.PROXY].evidence == []


def test_ranking_is_sorted_and_complete():
    """All five causes, sorted by probability, summing to one."""
    signals = [Signal("a", "", "", {Cause.NETWORK: 4.0}), Signal("b", "", "", {Cause.PROXY: 0.5})]
    ranked = rank_causes(signals)
    assert {r.cause for r in ranked} == set(Cause)
    probabilities = [r.probability for r in ranked]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0)
    assert ranked[0].cause is Cause.NETWORK


def test_leading_cause_needs_a_clear_lead():
    """A cause is named only with >= 50% and twice the runner-up; priors alone name none."""
    assert leading_cause(rank_causes([]), []) is None
    weak = [Signal("w", "", "", {Cause.PROXY: 1.3})]
    assert leading_cause(rank_causes(weak), weak) is None
    strong = [Signal("s", "", "", {Cause.PROXY: 6.0})]
    assert leading_cause(rank_causes(strong), strong).cause is Cause.PROXY


def test_signal_rejects_non_positive_ratio():
    """A likelihood ratio of zero would erase a cause for good: refused at construction."""
    with pytest.raises(ValueError, match="must be > 0"):
        Signal("bad", "", "", {Cause.PROXY: 0.0})
