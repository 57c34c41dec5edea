"""Figures carry aggregates: their size does not grow with the log."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.io as pio

from runbook.diagnosis.engine import diagnose
from runbook.diagnosis.timeouts import KNOWN_TIMEOUTS
from runbook.logs.metrics import MAX_RATE_BINS, summarize_logs
from runbook.observations import Observations
from runbook.report import figures
from runbook.report.figures import MAX_ATTEMPTS_SHOWN, MAX_BARS
from tests.frames import frame, sessions


def test_figures_stay_small_for_a_month_of_minutes_and_a_storm() -> None:
    metrics = summarize_logs(frame(sessions(40, 3, lifetime=30.0)))
    minutes = pd.date_range("2026-11-01", periods=MAX_RATE_BINS, freq="2min", tz="UTC")
    rng = np.random.default_rng(1)
    opened = rng.integers(0, 500, len(minutes))
    metrics.per_minute = pd.DataFrame({
        "minute": minutes, "bin_minutes": 2, "open": opened, "connects": 0, "disconnects": opened // 10,
        "unexpected": opened // 20, "unknown": 0, "rate": 0.025, "churn_rate": 0.05, "counted": opened >= 20,
        "flagged": np.arange(len(minutes)) == 777})
    clients = [f"id client-{i}" for i in range(30)]
    metrics.reconnect_gaps = pd.DataFrame({"client": np.repeat(clients, 5_000), "attempt": np.tile(np.arange(1, 5_001), 30),
                                           "gap_s": 0.1, "lifetime_s": 0.01})
    metrics.reconnect_clients = pd.DataFrame({"client": clients, "reconnects": 5_000, "median_gap_s": 0.1,
                                              "median_lifetime_s": 0.01, "growth": 1.0, "per_minute": 600.0, "pattern": "storm"})
    rate = figures.disconnect_rate_figure(metrics)
    assert len(rate.data[0].x) <= MAX_BARS
    # A wider bar that holds the flagged minute is still red.
    assert "#d62728" in list(rate.data[0].marker.color)
    gaps = figures.reconnect_gaps_figure(metrics)
    assert all(len(trace.x) <= MAX_ATTEMPTS_SHOWN for trace in gaps.data)
    for figure in (rate, gaps, figures.durations_figure(metrics)):
        assert len(figure.to_json()) < 300_000


def test_coarser_bins_keep_the_counts_and_the_rate_per_minute() -> None:
    minutes = pd.date_range("2026-11-01", periods=3_000, freq="1min", tz="UTC")
    table = pd.DataFrame({"minute": minutes, "bin_minutes": 1, "open": 100, "connects": 1, "disconnects": 2,
                          "unexpected": 1, "unknown": 0, "rate": 0.01, "churn_rate": 0.02, "counted": True, "flagged": False})
    coarse = figures._coarser(table, MAX_BARS)
    assert len(coarse) == MAX_BARS and coarse["unexpected"].sum() == 3_000
    assert coarse["rate"].round(6).eq(0.01).all() and coarse["bin_minutes"].eq(3).all()


def test_lifetimes_mark_each_known_timeout_once_and_the_peak_across_the_plot() -> None:
    metrics = summarize_logs(frame(sessions(60, 3, lifetime=60.0)))
    top = float(metrics.lifetimes.values[-1])
    figure = figures.durations_figure(metrics).to_plotly_json()["layout"]
    expected = sorted({t.seconds for t in KNOWN_TIMEOUTS if t.seconds <= top * 1.1})
    lines = [s for s in figure["shapes"] if s["type"] == "line"]
    assert [s["x0"] for s in lines] == [s["x1"] for s in lines] and sorted(s["x0"] for s in lines) == expected
    bands = [s for s in figure["shapes"] if s["type"] == "rect"]
    peak = metrics.duration_peaks[0]
    assert [(b["x0"], b["x1"]) for b in bands] == [(peak.low_s, peak.high_s)]
    # As plotly's add_vline/add_vrect draw them: over the whole height, labelled at the top.
    assert all(s["yref"] == "y domain" and (s["y0"], s["y1"]) == (0, 1) for s in figure["shapes"])
    labels = [(note["x"], note["text"]) for note in figure["annotations"]]
    names = {s: ", ".join(t.component for t in KNOWN_TIMEOUTS if t.seconds == s) for s in expected}
    assert sorted(labels) == sorted([(s, f"{s:g} s {names[s]}") for s in expected] + [(peak.high_s, f"peak {peak.center_s:.1f} s")])


def test_reconnect_gaps_draw_the_busiest_clients_in_order_with_their_first_attempts() -> None:
    metrics = summarize_logs(frame(sessions(4, 3, lifetime=5.0)))
    clients = ["id b", "id a", "id quiet"]
    attempts = MAX_ATTEMPTS_SHOWN + 5
    metrics.reconnect_gaps = pd.DataFrame({  # the two clients' rows interleaved
        "client": ["id a", "id b"] * attempts, "attempt": np.repeat(np.arange(1, attempts + 1), 2),
        "gap_s": np.tile([1.0, 2.0], attempts), "lifetime_s": 0.5})
    metrics.reconnect_clients = pd.DataFrame({"client": clients, "reconnects": [attempts, attempts, 0],
                                              "median_gap_s": [2.0, 1.0, 0.0], "median_lifetime_s": 0.5, "growth": 1.0,
                                              "per_minute": 1.0, "pattern": ["loop", "backoff", "occasional"]})
    traces = figures.reconnect_gaps_figure(metrics).data
    assert [t.name for t in traces] == ["client 1 (loop)", "client 2 (backoff)", "client 3 (occasional)"]
    assert list(traces[0].x) == list(range(1, MAX_ATTEMPTS_SHOWN + 1)) and set(traces[0].y) == {2.0}
    assert list(traces[1].x) == list(range(1, MAX_ATTEMPTS_SHOWN + 1)) and set(traces[1].y) == {1.0}
    assert len(traces[2].x) == 0


def test_figures_draw_only_the_trace_types_their_lean_template_styles_as_plotly_white_does() -> None:
    base = pio.templates[figures.BASE_TEMPLATE]
    lean = figures.lean_template()
    assert lean.layout == base.layout
    assert {kind: lean.data[kind] for kind in figures.TRACE_TYPES} == {kind: base.data[kind] for kind in figures.TRACE_TYPES}
    metrics = summarize_logs(frame(sessions(40, 3, lifetime=60.0)))
    ranked = diagnose(Observations(logs=metrics)).ranked
    drawn = [figures.disconnect_rate_figure(metrics), figures.close_codes_figure(metrics), figures.durations_figure(metrics),
             figures.reconnect_gaps_figure(metrics), figures.ranking_figure(ranked)]
    assert {trace.type for figure in drawn for trace in figure.data} <= set(figures.TRACE_TYPES)
    assert all(figure.layout.template == lean for figure in drawn)
