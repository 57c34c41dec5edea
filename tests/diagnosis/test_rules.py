"""Tests of the evidence rules, each called directly on observations with known figures."""

import pytest

from runbook.diagnosis import Cause, collect_signals, diagnose
from runbook.diagnosis.remedies import heartbeat_interval
from runbook.diagnosis.rules import (
    abnormal_closures,
    failed_handshakes,
    keepalive_timeouts,
    lifetime_peaks,
    mobile_disconnects,
    reconnect_patterns,
    spread_abnormal_lifetimes,
)
from runbook.logs.metrics import summarize_logs
from runbook.observations import Observations
from tests.frames import MOBILE, T0, frame, sessions


def observe(rows, formats=("jsonlines",)):
    return Observations(logs=summarize_logs(frame(rows)), log_formats=list(formats))


def names(signals):
    return [s.name for s in signals]


def test_no_logs_no_signals():
    """Without logs no rule fires and the diagnosis keeps the priors."""
    obs = Observations()
    assert collect_signals(obs) == []
    assert diagnose(obs).ranked[0].probability == 0.40


def test_cut_at_nginx_default_points_to_proxy():
    """1006 closes piling up at ~60 s name nginx/ALB and make proxy the leading cause."""
    obs = observe(sessions(40, 4, lifetime=lambda rng, c, k: 60 + rng.uniform(0, 1.5)))
    fired = names(collect_signals(obs))
    assert fired == ["abnormal_closures_dominate", "lifetime_peak", "lifetime_at_known_timeout"]
    known = next(s for s in collect_signals(obs) if s.name == "lifetime_at_known_timeout")
    assert "nginx" in known.detail
    diagnosis = diagnose(obs)
    assert diagnosis.ranked[0].cause is Cause.PROXY
    assert diagnosis.leading is not None and diagnosis.leading.cause is Cause.PROXY


def test_cut_at_unknown_fixed_age_still_a_timer():
    """A sharp peak at an unusual value (7 s) is a timer in the path without a named default."""
    obs = observe(sessions(40, 4, lifetime=lambda rng, c, k: 7 + rng.uniform(0, 0.3)))
    fired = names(lifetime_peaks(obs))
    assert fired == ["lifetime_peak"]


def test_cut_at_nat_timeout_points_to_network():
    """A peak at 350 s matches the AWS NAT gateway/NLB idle timeout, a network cause."""
    obs = observe(sessions(30, 2, lifetime=lambda rng, c, k: 350 + rng.uniform(0, 3)))
    known = [s for s in lifetime_peaks(obs) if s.name == "lifetime_at_known_timeout"]
    assert known and known[0].ratio(Cause.NETWORK) > known[0].ratio(Cause.PROXY)


def test_random_abnormal_lifetimes_point_to_network():
    """1006 at random ages (no peak) raises network, not proxy."""
    obs = observe(sessions(40, 4, lifetime=lambda rng, c, k: rng.uniform(5, 3000)))
    signals = spread_abnormal_lifetimes(obs)
    assert names(signals) == ["abnormal_closures_at_random_ages"]
    assert signals[0].ratio(Cause.NETWORK) > 1 > signals[0].ratio(Cause.PROXY)


def test_clean_closes_fire_nothing():
    """Normal 1000 closes at random ages fire no rule at all."""
    obs = observe(sessions(40, 2, lifetime=lambda rng, c, k: rng.uniform(5, 3000), code=1000))
    assert collect_signals(obs) == []


def test_too_few_disconnects_fire_nothing():
    """Three 1006 closes are not enough to read a pattern into."""
    obs = observe(sessions(3, 1, lifetime=60.0))
    assert abnormal_closures(obs) == [] and lifetime_peaks(obs) == []


def test_keepalive_timeouts_lower_heartbeat():
    """1011 keepalive ping timeouts show the heartbeat exists: heartbeat goes down, network up."""
    obs = observe(sessions(10, 1, lifetime=lambda rng, c, k: rng.uniform(5, 500), code=1011, reason="keepalive ping timeout"))
    (signal,) = keepalive_timeouts(obs)
    assert signal.ratio(Cause.HEARTBEAT) < 1 < signal.ratio(Cause.NETWORK)


def test_failed_handshakes_point_to_proxy():
    """Errors quoting 'Unexpected server response: 426' are the proxy signature."""
    rows = sessions(10, 1, lifetime=30.0, code=1000)
    rows += [dict(ts=T0, event="error", reason="Unexpected server response: 426")] * 4
    (signal,) = failed_handshakes(observe(rows))
    assert signal.ratio(Cause.PROXY) >= 3


def test_mobile_dropping_more_points_to_network():
    """Mobile connections dropping ten times as often per hour raise network."""
    rows = sessions(20, 10, lifetime=60.0, agent=MOBILE, ip_base="10.4") + sessions(20, 1, lifetime=600.0, ip_base="10.5")
    (signal,) = mobile_disconnects(observe(rows))
    assert "10.0x" in signal.detail and signal.ratio(Cause.NETWORK) > 2


def test_reconnect_loop_points_to_client():
    """Flat one-second reconnects after short connections raise client; backoff lowers it."""
    (loop,) = reconnect_patterns(observe(sessions(3, 8, lifetime=2.0, gap=1.0, code=1000)))
    assert loop.name == "reconnect_loops" and loop.ratio(Cause.CLIENT) > 1
    backoff_rows = sessions(3, 8, lifetime=2.0, gap=lambda rng, c, k: 0.5 * 2**k, code=1000)
    (backoff,) = reconnect_patterns(observe(backoff_rows))
    assert backoff.name == "reconnect_backoff_seen" and backoff.ratio(Cause.CLIENT) < 1


@pytest.mark.parametrize(("timeout", "interval"), [(None, 30), (60.0, 30), (55.0, 27), (7.0, 3), (1.5, 1), (350.0, 30)])
def test_heartbeat_interval_beats_the_timeout(timeout, interval):
    """The recommended ping interval is half the measured timeout, at most 30 s."""
    assert heartbeat_interval(timeout) == interval
