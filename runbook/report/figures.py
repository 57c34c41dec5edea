"""Plotly figures of the runbook. Pure: data in, ``go.Figure`` out (display is elsewhere).

Every text that came from a log (close reasons, client names) is passed to plotly as data,
which renders it as text, never as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from runbook.diagnosis.ranking import RankedCause
from runbook.diagnosis.timeouts import KNOWN_TIMEOUTS
from runbook.logs.metrics import DISCONNECT_RATE_THRESHOLD
from runbook.observations import Event, LogMetrics

BASE_TEMPLATE = "plotly_white"
TRACE_TYPES = ("bar", "scatter")  # every trace type the figures below draw
_RED, _BLUE, _GREY = "#d62728", "#1f77b4", "#7f7f7f"


# Figures carry aggregates, never a point per record: the report stays a few MiB whatever the log size.
MAX_BARS = 1_000  # bars of the per-minute figure; a longer window gets wider bars
MAX_ATTEMPTS_SHOWN = 300  # reconnects drawn per client


@cache
def lean_template() -> go.layout.Template:
    """``BASE_TEMPLATE`` as these figures use it: its layout and its defaults for TRACE_TYPES.
    The whole template holds defaults for two dozen trace types, which plotly validates and
    copies into every figure: ~10 ms and ~4 KB of the report per figure, for nothing drawn."""
    base = pio.templates[BASE_TEMPLATE]
    return go.layout.Template(layout=base.layout, data={kind: base.data[kind] for kind in TRACE_TYPES})


def _layout() -> dict:
    return dict(template=lean_template(), height=360, margin=dict(l=60, r=20, t=60, b=50))


def _coarser(table: pd.DataFrame, max_rows: int) -> pd.DataFrame:
    """The per-minute table in at most ``max_rows`` bins: counts added, rates per minute again."""
    if len(table) <= max_rows:
        return table
    group = np.arange(len(table)) // -(-len(table) // max_rows)
    grouped = table.groupby(group)
    out = grouped.agg(minute=("minute", "first"), bin_minutes=("bin_minutes", "sum"), open=("open", "mean"),
                      unexpected=("unexpected", "sum"), disconnects=("disconnects", "sum"),
                      counted=("counted", "all"), flagged=("flagged", "any"))
    open_ = out["open"].clip(lower=1)
    out["rate"] = np.where(out["open"] > 0, out["unexpected"] / open_ / out["bin_minutes"], 0.0)
    out["churn_rate"] = np.where(out["open"] > 0, out["disconnects"] / open_ / out["bin_minutes"], 0.0)
    out["open"] = out["open"].round().astype(int)
    return out.reset_index(drop=True)


def disconnect_rate_figure(logs: LogMetrics, events: Sequence[Event] = ()) -> go.Figure:
    """Unexpected disconnects per minute as a share of open connections, with the 5% line.

    Normal churn (1000/1001, users leaving) is drawn beside it as a line: shown, never flagged.
    Deploys and reloads given as ``events`` are marked on the timeline. Over MAX_BARS minutes the
    bars widen (a bar is red when any minute in it was over the line).
    """
    table = _coarser(logs.per_minute, MAX_BARS)
    colors = [_RED if flagged else (_BLUE if counted else _GREY) for flagged, counted in zip(table["flagged"], table["counted"])]
    fig = go.Figure(
        go.Bar(
            x=table["minute"],
            y=table["rate"] * 100,
            marker_color=colors,
            customdata=table[["unexpected", "open"]],
            hovertemplate="%{x}<br>%{y:.1f}% (%{customdata[0]} of %{customdata[1]} open)<extra></extra>",
            name="unexpected disconnects / open",
        )
    )
    fig.add_trace(go.Scatter(x=table["minute"], y=table["churn_rate"] * 100, mode="lines", line_color=_GREY,
                             name="all closes incl. normal churn / open"))
    fig.add_hline(y=DISCONNECT_RATE_THRESHOLD * 100, line_dash="dash", line_color=_RED, annotation_text="5% per minute")
    for event in events:
        fig.add_vline(x=event.ts, line_dash="dot", line_color=_GREY)
        fig.add_annotation(x=event.ts, y=1, yref="paper", text=event.label, showarrow=False, textangle=-90,
                           xanchor="right", yanchor="top")
    fig.update_layout(title="Unexpected disconnects per minute (% of open connections; grey bars: under 20 open)",
                      yaxis_title="% of open", **_layout())
    return fig


def close_codes_figure(logs: LogMetrics) -> go.Figure:
    codes = logs.codes.sort_values("count")
    fig = go.Figure(go.Bar(x=codes["count"], y=codes["label"].astype(str), orientation="h", marker_color=_BLUE))
    fig.update_layout(title=f"Close codes of {logs.disconnects} disconnects", xaxis_title="disconnects", **_layout())
    return fig


def durations_figure(logs: LogMetrics) -> go.Figure:
    """Connection lifetimes at disconnect, with the known intermediary timeouts marked."""
    lifetimes = logs.lifetimes
    top = float(lifetimes.values[-1]) if len(lifetimes.values) else 0.0
    # Counted into 120 bins here: the figure carries bins, never a point per connection.
    counts, edges = np.histogram(lifetimes.values, bins=120, range=(0.0, top or 1.0), weights=lifetimes.counts)
    fig = go.Figure(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=edges[1] - edges[0], marker_color=_BLUE,
                           name="lifetimes"))
    shapes, notes = [], []
    marked = set()
    for timeout in KNOWN_TIMEOUTS:
        if timeout.seconds <= top * 1.1 and timeout.seconds not in marked:
            marked.add(timeout.seconds)
            names = ", ".join(t.component for t in KNOWN_TIMEOUTS if t.seconds == timeout.seconds)
            shapes.append(_across_y("line", timeout.seconds, timeout.seconds, line=dict(dash="dot", color=_GREY)))
            notes.append(_top_note(timeout.seconds, f"{timeout.seconds:g} s {names}", "left", textangle=-90))
    for peak in logs.duration_peaks[:1]:
        shapes.append(_across_y("rect", peak.low_s, peak.high_s, fillcolor=_RED, opacity=0.2, line=dict(width=0)))
        notes.append(_top_note(peak.high_s, f"peak {peak.center_s:.1f} s", "right"))
    fig.update_layout(shapes=shapes, annotations=notes, title="Connection lifetimes at disconnect (dotted: known proxy/LB/NAT timeouts)",
                      xaxis_title="seconds", yaxis_title="connections", **_layout())
    return fig


def _across_y(kind: str, x0: float, x1: float, **style: object) -> dict:
    """A line or band at x spanning the plot's height, as ``add_vline``/``add_vrect`` draw it.
    Given as layout dicts in one update: each add_* call re-reads the whole figure (10 lines
    took 0.15 s)."""
    return dict(type=kind, x0=x0, x1=x1, xref="x", y0=0, y1=1, yref="y domain", **style)


def _top_note(x: float, text: str, xanchor: str, **style: object) -> dict:
    """The label ``add_vline``/``add_vrect`` put at the top of a line (left of it) or band (right)."""
    return dict(x=x, xref="x", y=1, yref="y domain", text=text, showarrow=False, xanchor=xanchor, yanchor="top", **style)


def reconnect_gaps_figure(logs: LogMetrics, max_clients: int = 30) -> go.Figure:
    """Pause before each reconnect, per client: flat lines are loops, rising ones back off.

    Clients are numbered as in the busiest-clients table; their user agents stay out of the figure.
    The first MAX_ATTEMPTS_SHOWN reconnects of each client are drawn.
    """
    gaps = logs.reconnect_gaps
    patterns = logs.reconnect_clients.set_index("client")["pattern"] if not logs.reconnect_clients.empty else pd.Series(dtype=str)
    busiest = logs.reconnect_clients["client"].head(max_clients) if not logs.reconnect_clients.empty else []
    shown = gaps[gaps["client"].isin(list(busiest))]
    rows_of = {client: rows.head(MAX_ATTEMPTS_SHOWN) for client, rows in shown.groupby("client", sort=False)}
    traces = []
    for index, client in enumerate(busiest):
        rows = rows_of.get(client, shown.head(0))
        pattern = patterns.get(client, "occasional")
        traces.append(
            go.Scatter(
                x=rows["attempt"],
                y=rows["gap_s"],
                mode="lines+markers",
                name=f"client {index + 1} ({pattern})",
                line_color=_RED if pattern == "loop" else (_BLUE if pattern == "backoff" else _GREY),
            )
        )
    fig = go.Figure(traces)  # in one call: each add_trace validates the whole figure again
    fig.update_layout(title=f"Reconnect gaps of the {len(busiest)} busiest clients (red: loop, blue: backoff)", xaxis_title="reconnect #", yaxis_title="seconds before reconnecting", showlegend=len(busiest) <= 10, **_layout())
    return fig


def ranking_figure(ranked: list[RankedCause]) -> go.Figure:
    """Prior (reference share) against posterior for each cause."""
    causes = [r.cause.value for r in ranked]
    fig = go.Figure(
        [
            go.Bar(x=causes, y=[r.prior for r in ranked], name="prior (reference share)", marker_color=_GREY),
            go.Bar(x=causes, y=[r.probability for r in ranked], name="after the evidence", marker_color=_RED),
        ]
    )
    fig.update_layout(title="Root causes: reference share and probability given the evidence", yaxis_tickformat=".0%", barmode="group", **_layout())
    return fig
