"""Tests of the Bayesian ranking and the one-ratio-per-family rule."""

import pytest

from runbook.diagnosis import PRIORS, SIGNALS, Cause, Family, SignalSpec, leading_cause, rank_causes
from runbook.diagnosis.evidence import Input, Signal, fire


def spec(name, ratios, family=Family.MOBILE):
    return SignalSpec(name, family, Input.LOGS, ratios, "why", "test")


def signal(name, ratios, family=Family.MOBILE):
    return Signal(spec(name, ratios, family), "seen")


def test_no_evidence_gives_priors_exactly():
    """With no signal the ranking equals the reference shares exactly, in their order."""
    ranked = rank_causes([])
    assert [(r.cause, r.probability) for r in ranked] == list(PRIORS.items())
    assert [r.probability for r in ranked] == [0.40, 0.30, 0.20, 0.07, 0.03]
    assert all(r.evidence == [] for r in ranked)


def test_posterior_is_prior_times_ratio_normalized():
    """One signal multiplying client by 10 gives 0.3 / 1.27 to client."""
    ranked = {r.cause: r for r in rank_causes([signal("s", {Cause.CLIENT: 10.0})])}
    assert ranked[Cause.CLIENT].probability == pytest.approx(0.30 / 1.27)
    assert ranked[Cause.PROXY].probability == pytest.approx(0.40 / 1.27)
    assert [e.signal for e in ranked[Cause.CLIENT].evidence] == ["s"]
    assert ranked[Cause.PROXY].evidence == []


def test_a_family_never_counts_twice():
    """Two signals of one family count as the stronger alone; another family multiplies in."""
    weak = signal("weak", {Cause.PROXY: 2.0}, Family.IDLE_TIMER)
    strong = signal("strong", {Cause.PROXY: 4.0}, Family.IDLE_TIMER)
    other = signal("other", {Cause.NETWORK: 3.0}, Family.BLACKHOLE)
    alone = {r.cause: r.probability for r in rank_causes([strong, other])}
    both = {r.cause: r.probability for r in rank_causes([weak, strong, other])}
    assert both == pytest.approx(alone)
    evidence = next(r for r in rank_causes([weak, strong, other]) if r.cause is Cause.PROXY).evidence
    assert [e.signal for e in evidence] == ["strong"]


def test_one_idle_cut_seen_three_ways_counts_once():
    """A 60 s idle cut seen in the logs and by the probe moves proxy no more than the stronger alone."""
    logs = fire("lifetime_timer_at_proxy_default", "60 s")
    probe = fire("probe_idle_cut", "idle probe cut at 60 s")
    ranked = {r.cause: r.probability for r in rank_causes([logs, probe])}
    assert ranked == pytest.approx({r.cause: r.probability for r in rank_causes([logs])})


def test_ranking_is_sorted_and_complete():
    """All five causes, sorted by probability, summing to one."""
    signals = [signal("a", {Cause.NETWORK: 4.0}), signal("b", {Cause.PROXY: 0.5}, Family.UPGRADE)]
    ranked = rank_causes(signals)
    assert {r.cause for r in ranked} == set(Cause)
    probabilities = [r.probability for r in ranked]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0)
    assert ranked[0].cause is Cause.NETWORK


def test_leading_cause_needs_a_clear_lead():
    """A cause is named only with >= 50% and twice the runner-up; priors alone name none."""
    assert leading_cause(rank_causes([]), []) is None
    weak = [signal("w", {Cause.PROXY: 1.3})]
    assert leading_cause(rank_causes(weak), weak) is None
    strong = [signal("s", {Cause.PROXY: 6.0})]
    assert leading_cause(rank_causes(strong), strong).cause is Cause.PROXY


def test_client_can_lead_on_a_storm():
    """The storm signal alone lifts client (3% prior) above every other cause."""
    storm = [fire("reconnect_storm", "storm"), fire("server_sheds", "1013")]
    assert leading_cause(rank_causes(storm), storm).cause is Cause.CLIENT


def test_spec_rejects_non_positive_ratio():
    """A likelihood ratio of zero would erase a cause for good: refused at construction."""
    with pytest.raises(ValueError, match="must be > 0"):
        spec("bad", {Cause.PROXY: 0.0})


def test_table_entries_are_complete():
    """Every table entry has a family, an input, a rationale, a basis and where its numbers come from."""
    for entry in SIGNALS.values():
        assert entry.rationale and entry.basis and entry.numbers, entry.id
        assert set(entry.ratios) <= set(Cause)
