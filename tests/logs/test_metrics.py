"""Tests of runbook.logs.metrics on frames with known figures."""

import math

import numpy as np
import pandas as pd
import pytest

from runbook.logs import metrics
from runbook.logs.metrics import close_code_label, find_duration_peaks, summarize_logs
from runbook.observations import LOG_COLUMNS, STATE_COLUMNS, Lifetimes, empty_log_frame, empty_state_frame
from tests.frames import MOBILE, T0, frame, sessions


def test_empty_frame_gives_empty_metrics():
    """An empty log yields empty tables, no window and no peaks."""
    metrics = summarize_logs(empty_log_frame())
    assert metrics.window_start is None
    assert metrics.per_minute.empty and metrics.codes.empty
    assert metrics.duration_peaks == [] and metrics.mobile is None


def test_per_minute_rate_counts_open_connections():
    """100 long connections with 10 dropping in one minute give a 10% rate in that minute."""
    rows = sessions(100, 1, lifetime=lambda rng, c, k: 150.0 if c < 10 else 600.0, start_spread=0.0)
    # The 90 long connections are still open when the log ends: keep only their connect records.
    rows = [r for r in rows if r["event"] == "connect" or r["duration_s"] == 150.0]
    rows.append(dict(ts=T0 + pd.Timedelta(seconds=400), event="error", reason="unrelated"))
    metrics = summarize_logs(frame(rows))
    minute = metrics.per_minute.set_index("minute").loc[(T0 + pd.Timedelta(seconds=150)).floor("min")]
    assert minute["open"] == 100
    assert minute["disconnects"] == 10
    assert minute["rate"] == pytest.approx(0.10)
    assert bool(minute["flagged"])
    assert metrics.per_minute["flagged"].sum() == 1


def test_small_minutes_are_not_counted():
    """Minutes with fewer than 20 open connections are shown but do not decide the symptom."""
    metrics = summarize_logs(frame(sessions(5, 3, lifetime=30.0)))
    assert not metrics.per_minute["counted"].any()
    assert not metrics.per_minute["flagged"].any()


def test_connections_join_connect_and_disconnect_without_duration():
    """Without a logged duration the lifetime is measured from the connect record."""
    rows = sessions(3, 1, lifetime=42.0)
    for row in rows:
        row.pop("duration_s", None)
        if row["event"] == "disconnect":
            row.pop("client_ip"), row.pop("user_agent")
    metrics = summarize_logs(frame(rows))
    assert metrics.lifetimes.values.tolist() == pytest.approx([42.0]) and metrics.lifetimes.total == 3
    # The client is known from the connect record only, as in the Node monitor format.
    assert metrics.has_client_identity and metrics.affected_clients["client_ip"].notna().all()


def test_duration_peak_found_at_fixed_lifetime():
    """Lifetimes piling up at 60 s give one sharp peak there, spread ones give none."""
    sharp = summarize_logs(frame(sessions(40, 4, lifetime=lambda rng, c, k: 60 + rng.uniform(0, 1))))
    assert len(sharp.duration_peaks) >= 1
    assert sharp.duration_peaks[0].center_s == pytest.approx(60.5, abs=0.6)
    assert sharp.duration_peaks[0].share > 0.9
    spread = summarize_logs(frame(sessions(40, 4, lifetime=lambda rng, c, k: rng.uniform(5, 900))))
    assert spread.duration_peaks == []


def test_duration_peak_scales_with_value():
    """A peak at a long timeout (350 s) is found with the same relative tolerance."""
    values = pd.Series([350 + i * 0.3 for i in range(20)] + [10, 500, 900, 1200])
    peaks = find_duration_peaks(values)
    assert peaks and peaks[0].count == 20 and 350 <= peaks[0].center_s <= 356


def test_reconnect_patterns_loop_and_backoff():
    """Flat one-second gaps after short drops are a loop (a storm when sessions die at once);
    doubling gaps are backoff."""
    loop = sessions(3, 8, lifetime=10.0, gap=1.0, ip_base="10.2")
    storm = sessions(3, 8, lifetime=0.05, gap=0.3, ip_base="10.4", code=1013)
    backoff = sessions(3, 8, lifetime=2.0, gap=lambda rng, c, k: 0.5 * 2**k, ip_base="10.3")
    metrics = summarize_logs(frame(loop + backoff + storm))
    patterns = metrics.reconnect_clients.set_index("client")["pattern"]
    assert sorted(patterns[patterns.index.str.startswith("10.2")]) == ["loop"] * 3
    assert sorted(patterns[patterns.index.str.startswith("10.4")]) == ["storm"] * 3
    assert sorted(patterns[patterns.index.str.startswith("10.3")]) == ["backoff"] * 3


def failed_handshakes(clients, tries, gap, source="server.jsonl", ip_base="10.6", seed=0, whole_seconds=False):
    """Error rows of clients whose upgrade fails, each retrying after ``gap(rng, k)`` seconds."""
    rng = np.random.default_rng(seed)
    rows = []
    for client in range(clients):
        at = T0 + pd.Timedelta(seconds=float(rng.uniform(0, 5)))
        for k in range(tries):
            ts = at.floor("s") if whole_seconds else at
            rows.append(dict(ts=ts, event="error", reason="handshake failed: HTTP 426 on /ws/chat", source=source,
                             connection_id=f"{source}-{client}-{k}", client_ip=f"{ip_base}.0.{client}",
                             user_agent="agent-" + str(client)))
            at += pd.Timedelta(seconds=gap(rng, k))
    return rows


def test_failed_handshakes_retried_at_once_are_a_storm():
    """No connection ever opens, yet clients retrying a failing upgrade every 0.25 s are
    reconnecting: each failed handshake counts as a session of 0 s that dropped."""
    metrics = summarize_logs(frame(failed_handshakes(5, 20, lambda rng, k: 0.25)))
    clients = metrics.reconnect_clients
    assert metrics.connection_count == 0 and metrics.has_client_identity
    assert list(clients["pattern"]) == ["storm"] * 5
    assert (clients["reconnects"] == 19).all() and (clients["after_failed_handshake"] == 19).all()


def test_failed_handshakes_seen_by_two_logs_are_counted_once():
    """The proxy's access log (whole seconds) and the server's log record the same attempts: each
    client's attempts are read from one log only, the one with sub-second times on a tie."""
    server = failed_handshakes(4, 12, lambda rng, k: 0.4)
    proxy = failed_handshakes(4, 12, lambda rng, k: 0.4, source="access.log", whole_seconds=True)
    clients = summarize_logs(frame(server + proxy)).reconnect_clients
    assert (clients["reconnects"] == 11).all() and set(clients["pattern"]) == {"storm"}
    assert clients["median_gap_s"].between(0.39, 0.41).all()


def test_failed_handshakes_retried_with_backoff_are_backoff():
    """Doubling delays with +-50% jitter up to a 3 s cap (the lab's compressed backoff), in a
    log with exact times or with whole seconds: backoff, never a storm."""
    jittered = lambda rng, k: min(0.1 * 2**k, 3.0) * rng.uniform(0.5, 1.5)  # noqa: E731
    for whole in (False, True):
        rows = failed_handshakes(8, 10, jittered, seed=3, whole_seconds=whole)
        patterns = set(summarize_logs(frame(rows)).reconnect_clients["pattern"])
        assert "storm" not in patterns and "backoff" in patterns, (whole, patterns)


def test_reconnect_after_long_session_is_not_a_loop():
    """Clients reconnecting once a minute after a 60 s cut are not looping."""
    metrics = summarize_logs(frame(sessions(5, 6, lifetime=60.0, gap=1.0)))
    assert set(metrics.reconnect_clients["pattern"]) == {"occasional"}


def test_mobile_rate_per_connection_hour():
    """Mobile connections dropping every 60 s against desktop ones living 10 min: ratio 10."""
    mobile = sessions(20, 10, lifetime=60.0, agent=MOBILE, ip_base="10.4")
    desktop = sessions(20, 1, lifetime=600.0, ip_base="10.5")
    stats = summarize_logs(frame(mobile + desktop)).mobile
    assert stats.mobile_disconnects == 200 and stats.desktop_disconnects == 20
    assert stats.ratio == pytest.approx(10.0, rel=0.01)


def test_close_code_labels():
    """Known, private and missing codes get readable labels."""
    assert close_code_label(1006) == "1006 abnormal (no close frame)"
    assert close_code_label(4401) == "4401 application"
    assert close_code_label(pd.NA) == "no code"


def test_handshake_and_keepalive_reasons_counted():
    """Reasons naming a failed upgrade or a ping timeout are counted."""
    rows = sessions(4, 1, lifetime=10.0, code=1011, reason="keepalive ping timeout")
    rows.append(dict(ts=T0, event="error", reason="Unexpected server response: 502"))
    metrics = summarize_logs(frame(rows))
    assert metrics.keepalive_timeouts == 4
    assert metrics.handshake_failures == 1
    assert metrics.errors == 1


# --- the timer (lifetime peak) detector -------------------------------------------------------

_SMOOTH = {
    "uniform 5-30 s": lambda rng, n: rng.uniform(5, 30, n),
    "log-normal": lambda rng, n: rng.lognormal(3.0, 1.0, n),
    "exponential": lambda rng, n: rng.exponential(120.0, n),
}


@pytest.mark.parametrize("size", [20, 300, 5_000, 100_000])
@pytest.mark.parametrize("shape", list(_SMOOTH))
def test_smooth_lifetimes_have_no_timer(shape, size):
    """Uniform, log-normal and exponential lifetimes, 20 to 100,000 of them: never a peak."""
    rng = np.random.default_rng(size)
    assert find_duration_peaks(pd.Series(_SMOOTH[shape](rng, size))) == []


@pytest.mark.parametrize("shape", list(_SMOOTH))
def test_smooth_lifetimes_in_whole_seconds_have_no_timer(shape):
    """Lifetimes logged in whole seconds are no comb of peaks."""
    rng = np.random.default_rng(7)
    assert find_duration_peaks(pd.Series(np.round(_SMOOTH[shape](rng, 50_000)))) == []


@pytest.mark.parametrize("shape", list(_SMOOTH))
def test_a_60s_cut_in_3_percent_of_closes_is_found(shape):
    """A 60 s cut with +-50 ms jitter in 3% of 2,000 closes stands out of any background."""
    rng = np.random.default_rng(3)
    background = _SMOOTH[shape](rng, 1940)
    cut = 60 + rng.uniform(-0.05, 0.05, 60)
    peaks = find_duration_peaks(pd.Series(np.concatenate([background, cut])))
    assert peaks and abs(peaks[0].center_s - 60) < 0.2 and peaks[0].count >= 60


def test_lifetimes_near_zero_are_no_timer():
    """Connections refused or shed at once (2 ms lifetimes) are not a timer."""
    rng = np.random.default_rng(1)
    assert find_duration_peaks(pd.Series(rng.uniform(0.001, 0.003, 500))) == []


def test_connection_tables_concatenate_as_categoricals():
    """Tables from different buckets (different categories, one side's column missing) join into
    the same values pd.concat gives, with the text columns still categorical."""
    from runbook.logs.metrics import concat_tables

    def table(ips, agents):
        return pd.DataFrame({"duration_s": np.arange(len(ips), dtype=float),
                             "client_ip": pd.Categorical(pd.array(ips, dtype="string")),
                             "user_agent": pd.Categorical(pd.array(agents, dtype="string"))})

    first = table(["10.0.0.1", None, "10.0.0.2"], ["A", "B", None])
    second = table(["10.0.0.3", "10.0.0.1"], ["C", "A"]).drop(columns="user_agent").assign(failed_handshake=True)
    joined = concat_tables([first, second])
    expected = pd.concat([first, second], ignore_index=True)
    assert list(joined.columns) == ["duration_s", "client_ip", "user_agent", "failed_handshake"]
    for column in ("client_ip", "user_agent"):
        assert isinstance(joined[column].dtype, pd.CategoricalDtype)
        assert joined[column].astype("string").tolist() == expected[column].astype("string").tolist()
    assert joined["duration_s"].tolist() == [0.0, 1.0, 2.0, 0.0, 1.0]
    assert joined["failed_handshake"].tolist()[3:] == [True, True]


def test_client_figures_do_not_depend_on_the_order_of_connections():
    """Buckets hand a client's connections over in any order. Connections that start at the same
    instant (a storm of reconnects logged in milliseconds) must still give the same gaps."""
    from pathlib import Path

    from runbook.logfiles import load_close_logs
    from runbook.logs.metrics import connection_table, summarize_clients

    folder = Path(__file__).resolve().parents[2] / "data" / "samples" / "client_reconnect_storm"
    logs = [str(p) for p in sorted(folder.iterdir()) if p.suffix in (".log", ".jsonl")]
    records = pd.concat([parsed.frame for parsed in load_close_logs(logs)], ignore_index=True)
    table = connection_table(records)
    tied = table.duplicated(["client_ip", "user_agent", "start"], keep=False)
    assert tied.any()  # the case this test is about
    forward = summarize_clients(table, [])
    backward = summarize_clients(table.iloc[::-1].reset_index(drop=True), [])
    assert len(forward.reconnect_gaps) > 100
    for name in ("reconnect_gaps", "reconnect_clients", "lingering", "affected"):
        a, b = getattr(forward, name), getattr(backward, name)
        if isinstance(a, pd.DataFrame):  # clients as busy as one another come in any order; their rows may not
            a, b = (t.sort_values(list(t.columns), kind="stable", ignore_index=True) for t in (a, b))
            pd.testing.assert_frame_equal(a, b, obj=name)
        else:
            assert a == b, name


def test_lifetimes_become_the_nanoseconds_pandas_gives():
    """A connection's start is its end less its logged lifetime: the fast conversion gives every
    nanosecond pd.to_timedelta gives, for lifetimes logged in s, ms, us and in full precision."""
    from runbook.logs.metrics import _seconds_to_ns

    rng = np.random.default_rng(7)
    raw = rng.exponential(300.0, 200_000)
    seconds = np.concatenate([raw, np.round(raw, 3), np.round(raw, 6), [0.0, 1e-9, 0.1, 0.3, 59.995, 60.007, 86_400.5]])
    assert np.array_equal(_seconds_to_ns(seconds), pd.to_timedelta(seconds, unit="s").as_unit("ns").asi8)


def test_records_without_ids_are_connections_of_their_own():
    """An access log's sessions carry no id: each session record is one connection. That table
    equals the one the join by id gives when every record has an id of its own (in reverse row
    order, the join's key order for records without an id)."""
    from runbook.logs.metrics import connection_table

    rows = [dict(ts=T0 + pd.Timedelta(seconds=k), event="disconnect", duration_s=30.0 + k, code=1006 if k % 3 else None,
                 client_ip=f"10.0.0.{k % 7}", user_agent=MOBILE if k % 2 else None) for k in range(40)]
    rows += [dict(ts=T0 + pd.Timedelta(seconds=5), event="connect", client_ip="10.0.0.9"),
             dict(ts=T0 + pd.Timedelta(seconds=6), event="error", reason="upgrade refused", client_ip="10.0.0.9")]
    records = frame(rows)
    alone = connection_table(records)
    joined = connection_table(records.assign(connection_id=[f"r{k}" for k in range(len(records))]))
    assert len(alone) == 41  # the error is no connection
    pd.testing.assert_frame_equal(alone.drop(columns="key").iloc[::-1].reset_index(drop=True),
                                  joined.drop(columns="key").reset_index(drop=True))


def test_empty_frames_are_typed_and_each_one_a_frame_of_its_own():
    for make, columns in ((empty_log_frame, LOG_COLUMNS), (empty_state_frame, STATE_COLUMNS)):
        first = make()
        first["source"] = first["source"].astype(object)
        first.loc[0, "source"] = "changed.log"
        second = make()
        assert len(second) == 0 and dict(second.dtypes.astype(str)) == columns


def _strongest_band_counted(durations: np.ndarray, whole_seconds: bool) -> tuple[int, int] | None:
    """The band find_duration_peaks takes first, from its docstring, counting every lifetime."""
    distinct = np.unique(durations)
    best, best_log_p = None, math.inf
    for start in distinct[distinct >= metrics.PEAK_MIN_AGE_S]:
        width = 0.02 * start + 0.3
        if whole_seconds:
            width = max(math.ceil(width), 1.0)
        inside = np.sum((durations >= start) & (durations < start + width))
        below = np.sum((durations >= start - 5 * width) & (durations < start))
        above = np.sum((durations >= start + width) & (durations < start + 6 * width))
        expected = max(max(below, above) / 5.0, 0.5)
        log_p = -expected + inside * (1 + math.log(expected) - math.log(max(inside, 1)))
        clear = inside >= metrics.PEAK_MIN_COUNT and inside >= metrics.PEAK_MIN_EXCESS * expected and log_p <= metrics.PEAK_MAX_LOG_P
        if clear and log_p < best_log_p:
            best, best_log_p = (int(np.searchsorted(distinct, start)), int(np.searchsorted(distinct, start + width))), log_p
    return best


@pytest.mark.parametrize("seed", range(40))
def test_the_strongest_band_is_the_one_counting_every_lifetime_gives(seed):
    rng = np.random.default_rng(seed)
    durations = np.concatenate([np.exp(rng.normal(3, 1.5, rng.integers(5, 400))),
                                rng.choice([30.0, 60.0, 100.0]) + rng.normal(0, 0.2, rng.integers(0, 60)),
                                rng.uniform(0, 2, rng.integers(0, 20))])
    whole = seed % 3 == 0
    if whole:
        durations = np.round(durations)
    lifetimes = Lifetimes.of(durations)
    assert metrics._strongest_band(lifetimes, whole) == _strongest_band_counted(durations, whole)
