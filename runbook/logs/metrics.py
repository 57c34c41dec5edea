"""Reduce a normalized close-log frame to the figures the checklist and the evidence rules use.

Pure: a DataFrame with the LOG_COLUMNS in, a LogMetrics out. No clock: the observation window is
the span of the log itself.
"""

from __future__ import annotations

import re
from pathlib import PurePath

import numpy as np
import pandas as pd

from runbook.observations import DurationPeak, LogMetrics, MobileStats

# The reference runbook's symptom: more than 5% of connections dropping per minute.
DISCONNECT_RATE_THRESHOLD = 0.05
# Below this many open connections one drop swings the rate by more than the threshold.
MIN_OPEN_PER_MINUTE = 20
# A reconnect is a new connection of the same client within this many seconds of the last close.
RECONNECT_WINDOW_S = 60.0
# A lifetime peak needs this many connections and this share of the lifetimes to count as sharp.
PEAK_MIN_COUNT = 5
PEAK_MIN_SHARE = 0.2

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
    """Connections, per-minute rates, close codes, lifetime peaks, reconnect patterns."""
    frame = frame.dropna(subset=["ts"]).sort_values("ts", kind="stable")
    window_start = frame["ts"].min() if len(frame) else None
    window_end = frame["ts"].max() if len(frame) else None
    connections = _connections(frame, window_start)
    disconnected = connections.loc[connections["closed"].astype(bool)]
    reasons = frame["reason"].fillna("")
    errors = frame[frame["event"] == "error"]
    return LogMetrics(
        window_start=window_start,
        window_end=window_end,
        connections=connections,
        per_minute=_per_minute(connections, window_start, window_end),
        codes=_codes(disconnected),
        duration_peaks=find_duration_peaks(disconnected["duration_s"]),
        reconnect_gaps=(gaps := _reconnect_gaps(connections)),
        reconnect_clients=_reconnect_clients(gaps),
        mobile=_mobile(connections, window_end),
        connects=int((frame["event"] == "connect").sum()),
        disconnects=int((frame["event"] == "disconnect").sum()),
        errors=len(errors),
        handshake_failures=int(reasons.str.contains(_HANDSHAKE_FAILURE).sum()),
        keepalive_timeouts=int(reasons.str.contains(_KEEPALIVE_TIMEOUT).sum()),
        error_examples=errors["reason"].dropna().astype(str).unique()[:5].tolist(),
    )


def _log_family(source: str) -> str:
    """server.log.1 and server.log are one server's log: ids are unique within a family."""
    return _ROTATION_SUFFIX.sub("", PurePath(str(source)).name)


def _connections(frame: pd.DataFrame, window_start: pd.Timestamp | None) -> pd.DataFrame:
    """One row per connection, joining its connect and disconnect records by connection id."""
    columns = ["start", "end", "duration_s", "code", "reason", "client_ip", "user_agent", "is_mobile", "closed"]
    if frame.empty:
        return pd.DataFrame(columns=["key", *columns]).astype({"closed": bool, "duration_s": float})
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
    for column in ("code", "reason"):
        out[column] = closes[column].reindex(keys)
    for column in ("client_ip", "user_agent", "is_mobile"):
        # The Node monitor logs the client on connect only; JSON logs may carry it on both.
        out[column] = closes[column].reindex(keys).fillna(connects[column].reindex(keys))
    out = out.sort_values("start", kind="stable").reset_index(names="key")
    return out[["key", *columns]]


def _per_minute(connections: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.DataFrame:
    """Disconnects in each minute as a share of the connections open during that minute."""
    columns = ["minute", "open", "connects", "disconnects", "rate", "counted", "flagged"]
    if start is None or connections.empty:
        return pd.DataFrame(columns=columns)
    minutes = pd.date_range(start.floor("min"), end.floor("min"), freq="min")
    edges = minutes.as_unit("ns").asi8
    step = pd.Timedelta(minutes=1).value
    starts = np.sort(_nanoseconds(connections["start"].dropna()))
    ends = np.sort(_nanoseconds(connections.loc[connections["closed"].astype(bool), "end"]))
    started_before_end = np.searchsorted(starts, edges + step, side="left")
    ended_before_start = np.searchsorted(ends, edges, side="left")
    ended_before_end = np.searchsorted(ends, edges + step, side="left")
    started_before_start = np.searchsorted(starts, edges, side="left")
    table = pd.DataFrame({"minute": minutes})
    table["open"] = started_before_end - ended_before_start
    table["connects"] = started_before_end - started_before_start
    table["disconnects"] = ended_before_end - ended_before_start
    table["rate"] = np.where(table["open"] > 0, table["disconnects"] / table["open"].clip(lower=1), 0.0)
    table["counted"] = table["open"] >= MIN_OPEN_PER_MINUTE
    table["flagged"] = table["counted"] & (table["rate"] > DISCONNECT_RATE_THRESHOLD)
    return table


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
    """Sharp clusters of lifetimes: at least PEAK_MIN_SHARE of them within a narrow band.

    The band is +-3% of its centre plus one second: a timer in the path fires at a fixed time
    after the last frame, so its victims die within seconds of one another whatever the value.
    """
    values = np.sort(pd.to_numeric(durations, errors="coerce").dropna().to_numpy(dtype=float))
    values = values[values > 0]
    total = len(values)
    peaks: list[DurationPeak] = []
    remaining = values
    while len(remaining) >= PEAK_MIN_COUNT and len(peaks) < max_peaks:
        upper = remaining * 1.06 + 2.0  # a window starting at each value, width ~6% + 2 s
        counts = np.searchsorted(remaining, upper, side="right") - np.arange(len(remaining))
        best = int(np.argmax(counts))
        count = int(counts[best])
        if count < PEAK_MIN_COUNT or count / total < PEAK_MIN_SHARE:
            break
        members = remaining[best : best + count]
        peaks.append(
            DurationPeak(
                center_s=float(np.median(members)),
                low_s=float(members[0]),
                high_s=float(members[-1]),
                count=count,
                share=count / total,
            )
        )
        remaining = np.concatenate([remaining[:best], remaining[best + count :]])
    return peaks


def _client_key(connections: pd.DataFrame) -> pd.Series:
    """A client is an address and a user agent: NAT puts many users behind one address."""
    ip = connections["client_ip"].astype("string")
    agent = connections["user_agent"].astype("string").fillna("")
    return (ip + " | " + agent).where(ip.notna())


def _reconnect_gaps(connections: pd.DataFrame) -> pd.DataFrame:
    """For each client, the pause between a close and its next connection."""
    columns = ["client", "attempt", "gap_s", "lifetime_s"]
    if connections.empty:
        return pd.DataFrame(columns=columns)
    table = connections.assign(client=_client_key(connections)).dropna(subset=["client"])
    table = table.sort_values(["client", "start"], kind="stable")
    previous_end = table.groupby("client")["end"].shift(1)
    previous_life = table.groupby("client")["duration_s"].shift(1)
    gaps = (table["start"] - previous_end).dt.total_seconds()
    table = table.assign(gap_s=gaps, lifetime_s=previous_life)
    table = table[(table["gap_s"] >= 0) & (table["gap_s"] <= RECONNECT_WINDOW_S)]
    table = table.assign(attempt=table.groupby("client").cumcount() + 1)
    return table[columns].reset_index(drop=True)


def _reconnect_clients(gaps: pd.DataFrame) -> pd.DataFrame:
    """Per client: how often it came back, how fast, and whether its pauses grew (backoff).

    Backoff shows as gaps that grow from one attempt to the next (the reference client doubles
    the delay); a loop as many quick reconnects whose gaps stay flat.
    """
    columns = ["client", "reconnects", "median_gap_s", "growth", "per_minute", "pattern"]
    if gaps.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for client, group in gaps.groupby("client", sort=False):
        gap = group["gap_s"].to_numpy(dtype=float)
        reconnects = len(gap)
        median_gap = float(np.median(gap))
        ratios = gap[1:] / np.maximum(gap[:-1], 0.05) if reconnects >= 2 else np.array([])
        growth = float(np.median(ratios)) if len(ratios) else float("nan")
        lifetimes = group["lifetime_s"].fillna(0).to_numpy(dtype=float)
        span_min = max((lifetimes.sum() + gap.sum()) / 60.0, 1 / 60)
        per_minute = reconnects / span_min
        if reconnects >= 5 and growth >= 1.4:
            pattern = "backoff"
        elif reconnects >= 5 and median_gap <= 5.0 and growth < 1.4 and per_minute >= 2.0:
            pattern = "loop"
        else:
            pattern = "occasional"
        rows.append((client, reconnects, median_gap, growth, per_minute, pattern))
    return pd.DataFrame(rows, columns=columns).sort_values("reconnects", ascending=False, ignore_index=True)


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
