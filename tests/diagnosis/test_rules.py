"""Tests of the evidence rules, each called directly on observations with known figures."""

import numpy as np
import pandas as pd
import pytest

from runbook.diagnosis import Cause, Verdict, collect_signals, diagnose
from runbook.diagnosis.remedies import heartbeat_interval
from runbook.diagnosis.rules import (
    abnormal_share,
    failed_handshakes,
    heartbeat_against_cut,
    keepalive_timeouts,
    lifetime_timer,
    lingering_peers,
    mobile_disconnects,
    reconnects,
    server_state,
    shedding,
)
from runbook.logs.metrics import summarize_logs, summarize_state
from runbook.observations import STATE_COLUMNS, Observations
from tests.frames import MOBILE, T0, frame, sessions


def observe(rows, formats=("jsonlines",), **extra):
    return Observations(logs=summarize_logs(frame(rows)), log_formats=list(formats), **extra)


def names(signals):
    return [s.name for s in signals]


def test_no_logs_no_signals():
    """Without logs no rule fires and the diagnosis keeps the priors and offers no fix."""
    obs = Observations()
    assert collect_signals(obs) == []
    diagnosis = diagnose(obs)
    assert diagnosis.ranked[0].probability == 0.40
    assert diagnosis.recommendations == []


def test_cut_at_nginx_default_is_an_idle_cut_at_a_proxy_default():
    """1006 closes piling up at ~60 s name nginx/ALB; proxy and heartbeat both stay in the running."""
    obs = observe(sessions(40, 4, lifetime=lambda rng, c, k: 60 + rng.uniform(0, 1.5)))
    fired = collect_signals(obs)
    assert names(fired) == ["lifetime_timer_at_proxy_default", "abnormal_closes_dominate"]
    assert "nginx" in fired[0].detail
    diagnosis = diagnose(obs)
    assert {r.cause for r in diagnosis.ranked[:2]} == {Cause.PROXY, Cause.HEARTBEAT}
    assert diagnosis.findings and "cut at about 60" in diagnosis.findings[0]
    assert {c.cause for c in diagnosis.next_checks} >= {Cause.PROXY, Cause.HEARTBEAT}


def test_cut_at_unknown_fixed_age_still_a_timer():
    """A sharp peak at an unusual value (7 s) is a timer in the path without a named default."""
    obs = observe(sessions(40, 4, lifetime=lambda rng, c, k: 7 + rng.uniform(0, 0.3)))
    assert names(lifetime_timer(obs)) == ["lifetime_timer"]


def test_a_timer_whatever_the_close_code():
    """Idle sockets closed with 1001 at one age (Jetty's idle timeout) are still a timer."""
    obs = observe(sessions(40, 4, lifetime=lambda rng, c, k: 300 + rng.uniform(0, 2), code=1001))
    assert names(lifetime_timer(obs)) == ["lifetime_timer_at_proxy_default"]


def test_cut_at_nat_timeout_points_to_network():
    """A peak at 350 s matches the AWS NAT gateway/NLB idle timeout, a network cause."""
    obs = observe(sessions(30, 2, lifetime=lambda rng, c, k: 350 + rng.uniform(0, 3)))
    (signal,) = lifetime_timer(obs)
    assert signal.name == "lifetime_timer_at_network_default"
    assert signal.ratio(Cause.NETWORK) > signal.ratio(Cause.PROXY)


def test_random_abnormal_lifetimes_point_to_network():
    """1006 at random ages (no peak) raises network, not proxy."""
    obs = observe(sessions(40, 4, lifetime=lambda rng, c, k: rng.uniform(5, 3000)))
    (signal,) = abnormal_share(obs)
    assert signal.name == "abnormal_closes_at_random_ages"
    assert signal.ratio(Cause.NETWORK) > 1 > signal.ratio(Cause.PROXY)


def test_users_coming_and_going_are_healthy():
    """Tabs closed at all ages (1000/1001) with heavy churn: healthy, no symptom, no fix."""
    rows = sessions(200, 6, lifetime=lambda rng, c, k: rng.uniform(5, 30), gap=lambda rng, c, k: rng.uniform(1, 20),
                    code=1000)
    rows += sessions(100, 6, lifetime=lambda rng, c, k: rng.uniform(5, 30), code=1001, ip_base="10.2", seed=1)
    diagnosis = diagnose(observe(rows))
    assert diagnosis.verdict is Verdict.HEALTHY
    assert all(s.status.value != "present" for s in diagnosis.symptoms)
    assert diagnosis.recommendations == [] and diagnosis.next_checks == []
    assert names(diagnosis.signals) == ["closes_clean"]


def test_too_few_disconnects_fire_nothing():
    """Three 1006 closes are not enough to read a pattern into."""
    obs = observe(sessions(3, 1, lifetime=60.0))
    assert abnormal_share(obs) == [] and lifetime_timer(obs) == []


def test_keepalive_timeouts_lower_heartbeat_and_are_no_idle_cut():
    """1011 keepalive ping timeouts: the heartbeat exists; its own timer is not an intermediary's."""
    obs = observe(sessions(10, 3, lifetime=65.0, code=1011, reason="keepalive ping timeout"))
    (signal,) = keepalive_timeouts(obs)
    assert signal.ratio(Cause.HEARTBEAT) < 1 < signal.ratio(Cause.NETWORK)
    assert lifetime_timer(obs) == []


def test_heartbeat_given_separates_proxy_from_heartbeat():
    """A 90 s heartbeat against a 60 s cut points at the proxy's timeout."""
    rows = sessions(40, 4, lifetime=lambda rng, c, k: 60 + rng.uniform(0, 1))
    (slower,) = heartbeat_against_cut(observe(rows, heartbeat_interval_s=90.0))
    assert slower.name == "heartbeat_slower_than_cut" and slower.ratio(Cause.PROXY) > slower.ratio(Cause.HEARTBEAT)
    (faster,) = heartbeat_against_cut(observe(rows, heartbeat_interval_s=20.0))
    assert faster.ratio(Cause.HEARTBEAT) < 1


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


def test_storm_makes_client_lead():
    """Shed at once (1013) and back within 0.25 s, over and over: client leads."""
    rows = sessions(20, 30, lifetime=0.01, gap=0.25, code=1013, reason="try again later")
    obs = observe(rows)
    assert names(reconnects(obs)) == ["reconnect_storm"] and names(shedding(obs)) == ["server_sheds"]
    diagnosis = diagnose(obs)
    assert diagnosis.leading is not None and diagnosis.leading.cause is Cause.CLIENT


def test_tab_closers_coming_back_are_no_loop():
    """Users returning a few seconds after a normal close are not reconnecting."""
    obs = observe(sessions(20, 8, lifetime=20.0, gap=2.0, code=1000))
    assert reconnects(obs) == []


def test_reconnect_backoff_lowers_client():
    """Growing pauses after drops show the clients back off."""
    rows = sessions(3, 8, lifetime=20.0, gap=lambda rng, c, k: 0.5 * 2**k)
    (backoff,) = reconnects(observe(rows))
    assert backoff.name == "reconnect_backoff_seen" and backoff.ratio(Cause.CLIENT) < 1


def test_lingering_dead_peers_point_to_heartbeat():
    """Clients back twice while their first connection never closed: no heartbeat noticed them."""
    rows = []
    for client in range(5):
        ip = f"10.9.0.{client}"
        for k in range(3):
            rows.append(dict(ts=T0 + pd.Timedelta(seconds=60 * k + client), connection_id=f"c{client}-{k}",
                             event="connect", client_ip=ip, user_agent=MOBILE))
    rows += sessions(20, 1, lifetime=30.0, code=1000, ip_base="10.3")
    (signal,) = lingering_peers(observe(rows))
    assert signal.ratio(Cause.HEARTBEAT) > 2


def test_close_wait_growth_in_snapshots_points_to_leak():
    """Offline ss snapshots with CLOSE_WAIT growing make resource_leak lead."""
    times = pd.date_range(T0, periods=10, freq="30s")
    state = pd.DataFrame({"ts": times, "metric": "tcp_CLOSE_WAIT", "value": np.arange(10) * 4.0, "port": 8080,
                          "source": "ss.txt"}).astype(STATE_COLUMNS)
    obs = Observations(state=summarize_state(state))
    assert names(server_state(obs)) == ["close_wait_growing"]
    assert diagnose(obs).ranked[0].cause is Cause.RESOURCE_LEAK


def test_fixes_come_from_evidence_only():
    """A degraded run whose evidence points only at the proxy offers no network fix."""
    rows = sessions(10, 1, lifetime=30.0, code=1000)
    rows += [dict(ts=T0, event="error", reason="Unexpected server response: 426")] * 4
    diagnosis = diagnose(observe(rows))
    assert [r.cause for r in diagnosis.recommendations] == [Cause.PROXY]


@pytest.mark.parametrize(("timeout", "interval"), [(None, 30), (60.0, 30), (55.0, 27), (7.0, 3), (1.5, 1), (350.0, 30)])
def test_heartbeat_interval_beats_the_timeout(timeout, interval):
    """The recommended ping interval is half the measured timeout, at most 30 s."""
    assert heartbeat_interval(timeout) == interval


def test_a_loop_against_a_failing_upgrade_ranks_second_to_the_proxy():
    """Every handshake fails (the proxy does not pass the upgrade) and clients retry every 0.25 s:
    the proxy leads and the loop is named beside it, not as the cause of the outage."""
    rows = []
    for client in range(10):
        for k in range(40):
            rows.append(dict(ts=T0 + pd.Timedelta(seconds=client * 0.01 + k * 0.25), event="error",
                             connection_id=f"c{client}-{k}", reason="handshake failed: HTTP 426 on /ws/chat",
                             client_ip=f"10.9.0.{client}", user_agent="agent"))
    obs = observe(rows)
    (signal,) = reconnects(obs)
    assert signal.name == "handshake_retry_storm" and signal.figures["clients"] == 10
    diagnosis = diagnose(obs)
    assert [r.cause for r in diagnosis.ranked[:2]] == [Cause.PROXY, Cause.CLIENT]


def test_storm_without_client_identity_is_read_over_the_population():
    """Logs with no address or agent: drops followed at once by connects, far above chance."""
    rows = sessions(20, 30, lifetime=0.01, gap=0.25, code=1013, reason="try again later", start_spread=600)
    for row in rows:
        row.pop("client_ip"), row.pop("user_agent")
    (signal,) = reconnects(observe(rows))
    assert signal.name == "reconnect_storm" and "no client identity" in signal.detail
    calm = sessions(20, 3, lifetime=lambda rng, c, k: rng.uniform(60, 600), gap=lambda rng, c, k: rng.uniform(30, 300))
    for row in calm:
        row.pop("client_ip"), row.pop("user_agent")
    assert reconnects(observe(calm)) == []


def test_clients_are_followed_by_their_logged_id():
    """Behind one NAT address with one browser, users are told apart by the clientId they log."""
    rows = sessions(4, 8, lifetime=0.02, gap=0.25, code=1013, reason="try again later", ip_base="10.7")
    for row in rows:
        row["client_id"] = "user-" + row["connection_id"].split("-")[1]
        row["client_ip"] = "198.51.100.1"
    (signal,) = reconnects(observe(rows))
    assert signal.name == "reconnect_storm" and signal.figures["clients"] == 4


def test_a_server_without_pings_separates_heartbeat_from_proxy():
    """heartbeat_interval_s = -1 (no pings) makes an idle cut at 60 s the heartbeat's, not the proxy's."""
    rows = sessions(40, 4, lifetime=lambda rng, c, k: 60 + rng.uniform(0, 1))
    (signal,) = heartbeat_against_cut(observe(rows, heartbeat_interval_s=-1.0))
    assert signal.name == "no_heartbeat_given"
    assert diagnose(observe(rows, heartbeat_interval_s=-1.0)).ranked[0].cause is Cause.HEARTBEAT
