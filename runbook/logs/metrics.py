"""Reduce a normalized close-log frame to the figures the checklist and the evidence rules use.

Pure: a DataFrame with the LOG_COLUMNS in, a LogMetrics out. No clock: the observation window is
the span of the log itself.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np
import pandas as pd

from runbook.logs.registry import combine_logs, combine_states
from runbook.logs.window import incident_window
from runbook.observations import DurationPeak, LogMetrics, MobileStats, ParsedLog, StateMetrics, StateTrend

# The reference runbook's symptom: more than 5% of connections dropping per minute.
DISCONNECT_RATE_THRESHOLD = 0.05
# Below this many open connections one drop swings the rate by more than the threshold.
MIN_OPEN_PER_MINUTE = 20
# A reconnect is a new connection of the same client within this many seconds of the last close.
RECONNECT_WINDOW_S = 60.0
# A lifetime peak (a timer) needs this many connections in its band, this many times the
# background density of lifetimes on either side of it, and a chance of arising from that
# background below PEAK_MAX_LOG_P (natural log; a Chernoff bound on the Poisson tail).
PEAK_MIN_COUNT = 5
PEAK_MIN_EXCESS = 3.0
PEAK_MAX_LOG_P = math.log(1e-6)
# Connections closed younger than this were refused or shed at once: not a timer.
PEAK_MIN_AGE_S = 1.0
# The per-minute table never has more rows than this: longer windows get wider bins.
MAX_RATE_BINS = 20_000
# A reconnect storm: back within this many seconds after a session this short, over and over.
STORM_GAP_S = 2.0
STORM_MIN_RECONNECTS = 5
# Many clients dropped within one second, whatever their age (a reload, a deploy, a blip).
MASS_MIN_CLIENTS = 10
MASS_MIN_SHARE_OF_OPEN = 0.3

CLOSE_CODE_NAMES = {
    1000: "normal",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status",
    1006: "abnormal (no close frame)",
    1007: "invalid payload",
    1008: "policy violation",
    1009: "message too big",
    1010: "mandatory extension",
    1011: "internal error",
    1012: "service restart",
    1013: "try again later",
    1014: "bad gateway",
    1015: "TLS handshake",
}

# Reasons that name a failed opening handshake (facts.md, "Log signatures").
_HANDSHAKE_FAILURE = re.compile(
    r"unexpected server response|handshake|upgrade required|server rejected websocket"
    r"|bad gateway|gateway time-?out|\b(?:400|426|502|503|504)\b",
    re.IGNORECASE,
)
_KEEPALIVE_TIMEOUT = re.compile(r"keepalive ping timeout|ping timeout|pong timeout", re.IGNORECASE)
_ROTATION_SUFFIX = re.compile(r"(?:\.\d+)?(?:\.gz)?$")


# How each close counts (DESIGN.md "Closes, evidence and accuracy"): normal churn never makes a
# service degraded; everything else is an unexpected disconnect.
NORMAL, ABNORMAL, SHED, APPLICATION, UNKNOWN = "normal", "abnormal", "shed", "application", "unknown"
CLOSE_CLASSES = (NORMAL, ABNORMAL, SHED, APPLICATION, UNKNOWN)
_NORMAL_CODES = (1000, 1001, 1005)  # 1005: a close frame without a code is still a deliberate close
_SHED_CODES = (1012, 1013, 1014)
_UNDER_LOAD = re.compile(r"overload|capacity|too many|busy|try again|server full|shed", re.IGNORECASE)


def classify_closes(code: pd.Series, reason: pd.Series) -> pd.Series:
    """normal / abnormal / shed / application / unknown for each close.

    1000, 1001 (and 1005) are normal; 1012-1014 are shedding, and so are 1008 and 1011 when the
    server sent them naming load; 3000-4999 are application codes (shown as is, not normal);
    every other code is abnormal, 1006 (no close frame) and 1011 keepalive timeouts included.
    A close without a code is unknown: it is neither counted as normal nor as a drop.
    """
    codes = pd.to_numeric(code, errors="coerce")
    under_load = reason.astype("string").fillna("").str.contains(_UNDER_LOAD).to_numpy(dtype=bool)
    value = codes.to_numpy(dtype=float, na_value=np.nan)
    out = np.full(len(value), ABNORMAL, dtype=object)
    out[np.isin(value, _NORMAL_CODES)] = NORMAL
    out[np.isin(value, _SHED_CODES) | (np.isin(value, (1008, 1011)) & under_load)] = SHED
    out[(value >= 3000) & (value <= 4999)] = APPLICATION
    out[np.isnan(value)] = UNKNOWN
    return pd.Series(out, index=code.index, dtype="string")


def close_code_label(code: object) -> str:
    if code is None or pd.isna(code):
        return "no code"
    code = int(code)
    if code in CLOSE_CODE_NAMES:
        return f"{code} {CLOSE_CODE_NAMES[code]}"
    if 4000 <= code <= 4999:
        return f"{code} application"
    if 3000 <= code <= 3999:
        return f"{code} library"
    return str(code)


def summarize_logs(frame: pd.DataFrame) -> LogMetrics:
    """Connections, per-minute rates, close classes and codes, timers, reconnects, mass drops."""
    frame = frame.dropna(subset=["ts"]).sort_values("ts", kind="stable")
    window_start = frame["ts"].min() if len(frame) else None
    window_end = frame["ts"].max() if len(frame) else None
    connections = _connections(frame, window_start)
    disconnected = connections.loc[connections["closed"].astype(bool)]
    reasons = frame["reason"].fillna("")
    errors = frame[frame["event"] == "error"]
    classes = disconnected["close_class"].value_counts()
    gaps = _reconnect_gaps(connections)
    return LogMetrics(
        window_start=window_start,
        window_end=window_end,
        connections=connections,
        per_minute=_per_minute(connections, window_start, window_end),
        codes=_codes(disconnected),
        duration_peaks=find_duration_peaks(disconnected["duration_s"]),
        reconnect_gaps=gaps,
        reconnect_clients=_reconnect_clients(gaps),
        mobile=_mobile(connections, window_end),
        connects=int((frame["event"] == "connect").sum()),
        disconnects=int((frame["event"] == "disconnect").sum()),
        errors=len(errors),
        handshake_failures=int(reasons.str.contains(_HANDSHAKE_FAILURE).sum()),
        keepalive_timeouts=int(reasons.str.contains(_KEEPALIVE_TIMEOUT).sum()),
        error_examples=errors["reason"].dropna().astype(str).unique()[:5].tolist(),
        close_classes={name: int(classes.get(name, 0)) for name in CLOSE_CLASSES},
        turnover=turnover(connections, window_start, window_end),
        lingering=_lingering(connections),
        mass_disconnects=find_mass_disconnects(connections),
    )


def _log_family(source: str) -> str:
    """server.log.1 and server.log are one server's log: ids are unique within a family."""
    return _ROTATION_SUFFIX.sub("", PurePath(str(source)).name)


def _connections(frame: pd.DataFrame, window_start: pd.Timestamp | None) -> pd.DataFrame:
    """One row per connection, joining its connect and disconnect records by connection id."""
    columns = ["start", "end", "duration_s", "code", "reason", "close_class", "closed_by", "client_id", "client_ip",
               "user_agent", "is_mobile", "closed"]
    if frame.empty:
        return pd.DataFrame(columns=["key", *columns]).astype(
            {"closed": bool, "duration_s": float, "close_class": "string"})
    events = frame[frame["event"].isin(["connect", "disconnect"])].copy()
    family = events["source"].astype(str).map(_log_family)
    has_id = events["connection_id"].notna()
    # Records without an id cannot be joined: each is a connection of its own.
    events["key"] = np.where(has_id, family + "\x00" + events["connection_id"].astype(str), "row" + events.index.astype(str))
    connects = events[events["event"] == "connect"].drop_duplicates("key", keep="first").set_index("key")
    closes = events[events["event"] == "disconnect"].drop_duplicates("key", keep="last").set_index("key")
    keys = connects.index.union(closes.index)
    out = pd.DataFrame(index=keys)
    out["connect_ts"] = connects["ts"].reindex(keys)
    out["end"] = closes["ts"].reindex(keys)
    out["closed"] = out["end"].notna()
    logged = closes["duration_s"].reindex(keys)
    measured = (out["end"] - out["connect_ts"]).dt.total_seconds()
    out["duration_s"] = logged.fillna(measured)
    from_duration = out["end"] - pd.to_timedelta(out["duration_s"], unit="s")
    out["start"] = out["connect_ts"].fillna(from_duration).fillna(window_start)
    for column in ("code", "reason", "closed_by"):
        out[column] = closes[column].reindex(keys)
    out["close_class"] = classify_closes(out["code"], out["reason"]).where(out["closed"])
    for column in ("client_id", "client_ip", "user_agent", "is_mobile"):
        # The Node monitor logs the client on connect only; JSON logs may carry it on both.
        out[column] = closes[column].reindex(keys).fillna(connects[column].reindex(keys))
    out = out.sort_values("start", kind="stable").reset_index(names="key")
    return out[["key", *columns]]


def _per_minute(connections: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.DataFrame:
    """Unexpected disconnects per minute as a share of the connections open in that minute.

    ``rate`` counts unexpected closes (abnormal, shed, application); ``churn_rate`` counts every
    close, normal ones included, and is shown beside it, never flagged. ``unknown`` closes carry no
    code (an access log's sessions): they count in neither. A window longer than MAX_RATE_BINS
    minutes gets bins of several minutes (``bin_minutes``), rates still per minute.
    """
    columns = ["minute", "bin_minutes", "open", "connects", "disconnects", "unexpected", "unknown",
               "rate", "churn_rate", "counted", "flagged"]
    if start is None or connections.empty:
        return pd.DataFrame(columns=columns)
    first, last = start.floor("min"), end.floor("min")
    span = int((last - first) / pd.Timedelta(minutes=1)) + 1
    width = max(1, math.ceil(span / MAX_RATE_BINS))
    minutes = pd.date_range(first, last, freq=f"{width}min")
    edges = minutes.as_unit("ns").asi8
    step = pd.Timedelta(minutes=width).value
    closed = connections.loc[connections["closed"].astype(bool)]
    starts = np.sort(_nanoseconds(connections["start"].dropna()))
    ends = np.sort(_nanoseconds(closed["end"]))
    started_before_end = np.searchsorted(starts, edges + step, side="left")
    ended_before_start = np.searchsorted(ends, edges, side="left")
    started_before_start = np.searchsorted(starts, edges, side="left")
    table = pd.DataFrame({"minute": minutes, "bin_minutes": width})
    table["open"] = started_before_end - ended_before_start
    table["connects"] = started_before_end - started_before_start
    table["disconnects"] = _count_in_bins(ends, edges, step)
    unexpected = closed["close_class"].isin([ABNORMAL, SHED, APPLICATION]).to_numpy(dtype=bool)
    table["unexpected"] = _count_in_bins(np.sort(_nanoseconds(closed.loc[unexpected, "end"])), edges, step)
    unknown = closed["close_class"].eq(UNKNOWN).to_numpy(dtype=bool)
    table["unknown"] = _count_in_bins(np.sort(_nanoseconds(closed.loc[unknown, "end"])), edges, step)
    open_ = table["open"].clip(lower=1)
    table["rate"] = np.where(table["open"] > 0, table["unexpected"] / open_ / width, 0.0)
    table["churn_rate"] = np.where(table["open"] > 0, table["disconnects"] / open_ / width, 0.0)
    table["counted"] = table["open"] >= MIN_OPEN_PER_MINUTE
    table["flagged"] = table["counted"] & (table["rate"] > DISCONNECT_RATE_THRESHOLD)
    return table[columns]


def _count_in_bins(sorted_ns: np.ndarray, edges: np.ndarray, step: int) -> np.ndarray:
    return np.searchsorted(sorted_ns, edges + step, side="left") - np.searchsorted(sorted_ns, edges, side="left")


def _nanoseconds(times: pd.Series) -> np.ndarray:
    return pd.DatetimeIndex(times).as_unit("ns").asi8


def _codes(disconnected: pd.DataFrame) -> pd.DataFrame:
    if disconnected.empty:
        return pd.DataFrame(columns=["code", "label", "count", "share"])
    counts = disconnected["code"].value_counts(dropna=False)
    table = pd.DataFrame({"code": counts.index, "count": counts.to_numpy()})
    table["label"] = table["code"].map(close_code_label)
    table["share"] = table["count"] / len(disconnected)
    return table[["code", "label", "count", "share"]].reset_index(drop=True)


def find_duration_peaks(durations: pd.Series, max_peaks: int = 3) -> list[DurationPeak]:
    """Timers: ages at which clearly more connections end than the lifetimes around them explain.

    A timer in the path (an idle timeout, a lifetime cap) ends its victims within a narrow band,
    ``band(t) = 2% of t + 0.3 s`` (the slack of handshakes and schedulers), however many other
    connections end at other ages. For each band the background is the density of lifetimes in
    the five band-widths just below it or just above it, whichever is denser (so the edge of a
    smooth distribution is no peak). A peak needs PEAK_MIN_COUNT lifetimes in the band, at least
    PEAK_MIN_EXCESS times the background, and a Poisson chance below exp(PEAK_MAX_LOG_P) of
    coming from that background. Smooth distributions (uniform, log-normal, exponential) give
    none at any size; lifetimes under PEAK_MIN_AGE_S (refused or shed at once) are no timer.
    Lifetimes logged in whole seconds get bands of at least one second. Largest peak first.
    """
    values = np.sort(pd.to_numeric(durations, errors="coerce").dropna().to_numpy(dtype=float))
    values = values[np.isfinite(values) & (values >= 0)]
    total = len(values)
    whole_seconds = total > 0 and bool(np.all(values == np.round(values)))
    peaks: list[DurationPeak] = []
    remaining = values
    while len(peaks) < max_peaks:
        peak = _strongest_band(remaining, whole_seconds)
        if peak is None:
            break
        lo, hi = peak
        members = remaining[lo:hi]
        peaks.append(DurationPeak(center_s=float(np.median(members)), low_s=float(members[0]),
                                  high_s=float(members[-1]), count=len(members), share=len(members) / total))
        remaining = np.concatenate([remaining[:lo], remaining[hi:]])
    return peaks


def _strongest_band(values: np.ndarray, whole_seconds: bool) -> tuple[int, int] | None:
    """(first, end) indexes of the most significant band of ``values`` (sorted), or None."""
    if len(values) < PEAK_MIN_COUNT:
        return None
    starts = np.unique(values[values >= PEAK_MIN_AGE_S])
    if not len(starts):
        return None
    width = 0.02 * starts + 0.3
    if whole_seconds:
        width = np.maximum(np.ceil(width), 1.0)
    inside = np.searchsorted(values, starts + width, side="left") - np.searchsorted(values, starts, side="left")
    below = np.searchsorted(values, starts, side="left") - np.searchsorted(values, starts - 5 * width, side="left")
    above = (np.searchsorted(values, starts + 6 * width, side="left")
             - np.searchsorted(values, starts + width, side="left"))
    expected = np.maximum(below, above) / 5.0
    # A band of nothing but itself (no neighbours) has a background of half a lifetime per band.
    expected = np.maximum(expected, 0.5)
    with np.errstate(divide="ignore", invalid="ignore"):
        # Chernoff bound on P(Poisson(expected) >= inside) for inside > expected.
        log_p = -expected + inside * (1 + np.log(expected) - np.log(np.maximum(inside, 1)))
    clear = (inside >= PEAK_MIN_COUNT) & (inside >= PEAK_MIN_EXCESS * expected) & (log_p <= PEAK_MAX_LOG_P)
    if not clear.any():
        return None
    best = int(np.argmin(np.where(clear, log_p, np.inf)))
    first = int(np.searchsorted(values, starts[best], side="left"))
    return first, first + int(inside[best])


def _client_key(connections: pd.DataFrame) -> pd.Series:
    """Who a connection belongs to: the logged client id when there is one, else the address and
    the user agent (NAT puts many users behind one address; the agent splits most of them)."""
    ip = connections["client_ip"].astype("string")
    agent = connections["user_agent"].astype("string").fillna("")
    by_address = (ip + " | " + agent).where(ip.notna())
    return ("id " + connections["client_id"].astype("string")).fillna(by_address)


def _reconnect_gaps(connections: pd.DataFrame) -> pd.DataFrame:
    """For each client, the pause between an unexpected close (a drop) and its next connection."""
    columns = ["client", "attempt", "gap_s", "lifetime_s"]
    if connections.empty:
        return pd.DataFrame(columns=columns)
    table = connections.assign(client=_client_key(connections)).dropna(subset=["client"])
    table = table.sort_values(["client", "start"], kind="stable")
    by_client = table.groupby("client")
    previous_end = by_client["end"].shift(1)
    previous_life = by_client["duration_s"].shift(1)
    previous_class = by_client["close_class"].shift(1)
    gaps = (table["start"] - previous_end).dt.total_seconds()
    table = table.assign(gap_s=gaps, lifetime_s=previous_life)
    # A user who closed the tab (1000/1001) and came back is not reconnecting; neither is one whose
    # close carried no code (an access log's session end): only drops are followed.
    after_drop = previous_class.isin([ABNORMAL, SHED, APPLICATION]).fillna(False).to_numpy(dtype=bool)
    table = table[(table["gap_s"] >= 0) & (table["gap_s"] <= RECONNECT_WINDOW_S) & after_drop]
    table = table.assign(attempt=table.groupby("client").cumcount() + 1)
    return table[columns].reset_index(drop=True)


def _reconnect_clients(gaps: pd.DataFrame) -> pd.DataFrame:
    """Per client: how often it came back, how fast, after how long a session, and the pattern.

    ``storm``: 5+ reconnects, each within STORM_GAP_S of a session shorter than STORM_GAP_S, the
    pauses not growing: a client hammering a server that drops it at once. ``backoff``: pauses
    that grow from one attempt to the next (the reference client doubles its delay). ``loop``:
    5+ quick reconnects with flat pauses after longer sessions. Else ``occasional``.
    """
    columns = ["client", "reconnects", "median_gap_s", "median_lifetime_s", "growth", "per_minute", "pattern"]
    if gaps.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for client, group in gaps.groupby("client", sort=False):
        gap = group["gap_s"].to_numpy(dtype=float)
        reconnects = len(gap)
        median_gap = float(np.median(gap))
        ratios = gap[1:] / np.maximum(gap[:-1], 0.05) if reconnects >= 2 else np.array([])
        growth = float(np.median(ratios)) if len(ratios) else float("nan")
        lifetimes = group["lifetime_s"].to_numpy(dtype=float)
        median_life = float(np.nanmedian(lifetimes)) if np.isfinite(lifetimes).any() else float("nan")
        span_min = max((np.nan_to_num(lifetimes).sum() + gap.sum()) / 60.0, 1 / 60)
        per_minute = reconnects / span_min
        flat = not growth >= 1.4  # nan (a single reconnect) is not growth either
        if reconnects >= STORM_MIN_RECONNECTS and median_gap <= STORM_GAP_S and flat and median_life <= STORM_GAP_S:
            pattern = "storm"
        elif reconnects >= 5 and growth >= 1.4:
            pattern = "backoff"
        elif reconnects >= 5 and median_gap <= 5.0 and flat and per_minute >= 2.0:
            pattern = "loop"
        else:
            pattern = "occasional"
        rows.append((client, reconnects, median_gap, median_life, growth, per_minute, pattern))
    return pd.DataFrame(rows, columns=columns).sort_values("reconnects", ascending=False, ignore_index=True)


def turnover(connections: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp | None) -> tuple[float, float] | None:
    """Population-level churn, for logs that carry no client identity at all.

    Returns (connections opened per minute per connection open on average, the median lifetime
    of the unexpected closes), or None with fewer than 20 such closes. A reconnect storm replaces
    every open connection many times a minute with sessions that barely live; users coming and
    going, or an idle cut every minute, turn each connection over about once a minute or less.
    """
    closed = connections.loc[connections["closed"].astype(bool)]
    dropped = closed.loc[~closed["close_class"].eq(NORMAL).fillna(False).to_numpy(dtype=bool)]
    if len(dropped) < 20 or start is None or end is None or end <= start:
        return None
    window_s = (end - start).total_seconds()
    lived = (connections["end"].fillna(end) - connections["start"]).dt.total_seconds().clip(lower=0)
    mean_open = max(float(lived.sum()) / window_s, 1.0)  # connection-seconds per second
    opened = int(connections["start"].notna().sum())
    return opened / (window_s / 60) / mean_open, float(dropped["duration_s"].median())


def _lingering(connections: pd.DataFrame) -> int:
    """Clients whose old connection is still open on the server after 2+ newer ones opened.

    A client that came back twice while its first connection never closed left dead peers the
    server did not notice (a heartbeat finds them within one interval). One overlap is a second
    tab; two returns on top of a never-closed connection are not.
    """
    if connections.empty:
        return 0
    table = connections.assign(client=_client_key(connections)).dropna(subset=["client"])
    table = table.sort_values(["client", "start"], kind="stable")
    still_open = ~table["closed"].astype(bool)
    later = table.groupby("client").cumcount(ascending=False)  # connections the client opened after this one
    return int(table.loc[still_open & (later >= 2), "client"].nunique())


def find_mass_disconnects(connections: pd.DataFrame) -> pd.DataFrame:
    """Seconds in which many clients of all ages were dropped together (unexpected closes).

    A burst counts when at least MASS_MIN_CLIENTS connections and MASS_MIN_SHARE_OF_OPEN of the
    connections then open ended unexpectedly within one second, at ages spread widely: a reload,
    deploy or blip cuts everyone at once whatever their age, whereas a timer cuts each connection
    at its own age (clients that connected together meet it together, all of one age).
    """
    columns = ["second", "dropped", "open", "share", "median_age_s"]
    closed = connections.loc[connections["closed"].astype(bool)]
    dropped = closed.loc[closed["close_class"].isin([ABNORMAL, SHED]).fillna(False).to_numpy(dtype=bool)]
    if len(dropped) < MASS_MIN_CLIENTS:
        return pd.DataFrame(columns=columns)
    seconds = dropped["end"].dt.floor("s")
    counts = seconds.value_counts()
    busy = counts[counts >= MASS_MIN_CLIENTS]
    if busy.empty:
        return pd.DataFrame(columns=columns)
    starts = np.sort(_nanoseconds(connections["start"].dropna()))
    ends = np.sort(_nanoseconds(closed["end"]))
    rows = []
    for second, count in busy.items():
        at = pd.Timestamp(second).value
        open_then = int(np.searchsorted(starts, at, side="right") - np.searchsorted(ends, at, side="left"))
        share = count / max(open_then, count)
        if share < MASS_MIN_SHARE_OF_OPEN:
            continue
        ages = dropped.loc[seconds == second, "duration_s"].dropna()
        if not ages.median() >= PEAK_MIN_AGE_S:  # shed at once, not connections of all ages
            continue
        spread = ages.quantile(0.9) - ages.quantile(0.1)
        if spread < max(PEAK_MIN_AGE_S, 0.5 * ages.median()):
            continue  # a cohort that connected together and met one timer together: not a mass drop
        rows.append((second, int(count), open_then, share, float(ages.median())))
    return pd.DataFrame(rows, columns=columns).sort_values("second", ignore_index=True)


def _mobile(connections: pd.DataFrame, window_end: pd.Timestamp | None) -> MobileStats | None:
    known = connections.dropna(subset=["is_mobile"])
    if known.empty or window_end is None:
        return None
    end = known["end"].fillna(window_end)
    hours = (end - known["start"]).dt.total_seconds().clip(lower=0) / 3600
    mobile = known["is_mobile"].astype(bool).to_numpy()
    closed = known["closed"].to_numpy(dtype=bool)
    return MobileStats(
        mobile_disconnects=int((closed & mobile).sum()),
        mobile_hours=float(hours[mobile].sum()),
        desktop_disconnects=int((closed & ~mobile).sum()),
        desktop_hours=float(hours[~mobile].sum()),
    )


def summarize_state(state: pd.DataFrame) -> StateMetrics | None:
    """One trend per (metric, port) of server-state snapshots (STATE_COLUMNS); None when empty.

    Snapshots without a time are ordered as given and spaced one second apart, so a growth can
    still be seen (its rate per minute is then only indicative). Two derived trends separate what
    connections hold from what they leave behind: ``fds_retained`` (descriptors beyond the
    ESTABLISHED sockets) and ``rss_retained`` (RSS less what the open connections explain, from a
    least-squares fit of RSS on ESTABLISHED sockets and time).
    """
    if state is None or state.empty:
        return None
    frame = state.dropna(subset=["value"])
    if frame.empty:
        return None
    frame = frame.assign(port=frame["port"].fillna(-1))
    if frame["ts"].isna().any():
        frame = frame.assign(t=frame.groupby(["metric", "port"]).cumcount().astype(float))
    else:
        frame = frame.assign(t=(frame["ts"] - frame["ts"].min()).dt.total_seconds())
    trends = [_trend(str(metric), int(port), group["t"].to_numpy(float), group["value"].to_numpy(float))
              for (metric, port), group in frame.groupby(["metric", "port"], sort=True)]
    trends += _retained(frame)
    times = frame["ts"].dropna()
    return StateMetrics(trends, times.min() if len(times) else None, times.max() if len(times) else None)


def _trend(metric: str, port: int, t: np.ndarray, v: np.ndarray) -> StateTrend:
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    slope = float(np.polyfit(t, v, 1)[0]) * 60 if len(t) >= 2 and np.ptp(t) > 0 else 0.0
    return StateTrend(metric, None if port == -1 else port, len(v), float(np.ptp(t)) if len(t) else 0.0,
                      float(v[0]), float(v[-1]), float(v.max()), slope)


def _retained(frame: pd.DataFrame) -> list[StateTrend]:
    """fds_retained and rss_retained, from snapshots that carry ESTABLISHED counts beside them."""
    wide = frame.pivot_table(index="t", columns="metric", values="value", aggfunc="sum").sort_index()
    if "tcp_ESTABLISHED" not in wide or len(wide) < 3:
        return []
    established = wide["tcp_ESTABLISHED"]
    out = []
    if "fds" in wide:
        both = wide[["fds"]].assign(open=established).dropna()
        if len(both) >= 3:
            out.append(_trend("fds_retained", -1, both.index.to_numpy(float), (both["fds"] - both["open"]).to_numpy(float)))
    if "rss_bytes" in wide:
        both = wide[["rss_bytes"]].assign(open=established).dropna()
        if len(both) >= 3 and np.ptp(both.index.to_numpy(float)) > 0:
            t = both.index.to_numpy(float)
            design = np.column_stack([np.ones(len(t)), both["open"].to_numpy(float), t])
            coef = np.linalg.lstsq(design, both["rss_bytes"].to_numpy(float), rcond=None)[0]
            explained = coef[1] * both["open"].to_numpy(float)
            out.append(_trend("rss_retained", -1, t, both["rss_bytes"].to_numpy(float) - explained))
    return out


@dataclass
class LogObservation:
    """Everything the runbook takes from the parsed close logs and state snapshots."""

    frame: pd.DataFrame  # the records inside the incident window (LOG_COLUMNS)
    outliers: pd.DataFrame  # records dated far outside it, set apart
    logs: LogMetrics | None  # None when no record was read
    state: StateMetrics | None  # None when no snapshot was read
    formats: list[str]
    sources: list[ParsedLog]  # one per file read (or pattern that matched nothing): counts, notes, errors


def observe_logs(parsed: list[ParsedLog]) -> LogObservation:
    """Combine parsed sources on one timeline, set outlying timestamps apart, summarize.

    The one path from parsed files to observations: the runbook's close-log step and the
    accuracy benchmark both take it.
    """
    window = incident_window(combine_logs(parsed))
    frame = window.kept.reset_index(drop=True)
    state = combine_states(parsed)
    return LogObservation(
        frame=frame,
        outliers=window.outliers,
        logs=summarize_logs(frame) if len(frame) else None,
        state=summarize_state(state),
        formats=sorted({p.format for p in parsed if p.ok and p.format}),
        sources=parsed,
    )
