"""Find the incident's time window in a close-log frame and set outlying timestamps apart.

Pure: a frame with the LOG_COLUMNS in, the frame inside the window and the rows outside it out.
A clock that was off (a record dated 1970, 2099, or a year ahead) must not stretch the window:
every per-minute figure is computed over the window, and one such record would otherwise span
decades. The window is where the records are dense:

1. the core is the span between the ``CORE_QUANTILE`` and ``1 - CORE_QUANTILE`` quantiles of the
   timestamps (robust while fewer than that share of records are off on each side);
2. records within a margin of the core are kept: the core's own length, at least ``MIN_MARGIN``;
   anything farther out is an outlier;
3. if what is kept still spans more than ``MAX_WINDOW`` (the clock was off for many records),
   the ``MAX_WINDOW``-long span holding the most records is kept instead.

Records without a timestamp are neither: they stay in the frame (the metrics skip them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

CORE_QUANTILE = 0.05
# A quiet stretch this long next to the incident is still part of it.
MIN_MARGIN = pd.Timedelta(hours=1)
# No window is longer: 31 days of minutes is 44,640 rows, a bound on every per-minute table.
MAX_WINDOW = pd.Timedelta(days=31)


@dataclass(frozen=True)
class IncidentWindow:
    """The records inside the incident window and the ones whose timestamps fall far outside."""

    start: pd.Timestamp | None  # first and last timestamp kept; None when no record has one
    end: pd.Timestamp | None
    kept: pd.DataFrame  # the input rows inside the window, and the rows with no timestamp
    outliers: pd.DataFrame  # the input rows outside it, same columns, in timestamp order, numbered 0..n-1


def incident_window(frame: pd.DataFrame) -> IncidentWindow:
    """Split ``frame`` (LOG_COLUMNS, any order) into the window's records and the outliers.

    Keeps the input's row order in ``kept``. Never raises on content; an empty frame or one
    without timestamps comes back whole with no outliers.
    """
    ts = frame["ts"]
    known = ts.notna().to_numpy()
    if not known.any():
        return IncidentWindow(None, None, frame, frame.iloc[0:0])
    ns = ts[known].astype("int64").to_numpy()
    low, high = window_bounds(*np.unique(ns // NS_PER_S, return_counts=True))
    keep = np.ones(len(frame), dtype=bool)
    keep[known] = (ns >= low) & (ns <= high)
    kept, outliers = frame[keep], frame[~keep].sort_values("ts", kind="stable").reset_index(drop=True)
    kept_ts = kept["ts"].dropna()
    return IncidentWindow(kept_ts.min(), kept_ts.max(), kept, outliers)


NS_PER_S = 1_000_000_000


def window_bounds(seconds: np.ndarray, counts: np.ndarray) -> tuple[int, int]:
    """The window (first and last nanosecond kept) from how many records fell in each epoch
    second (``seconds`` sorted, distinct): what a log too large to hold in memory is windowed by.
    """
    cumulative = np.cumsum(counts)
    total = int(cumulative[-1])

    def nearest(q: float) -> int:  # the record at that quantile, to the second
        return int(seconds[np.searchsorted(cumulative, round(q * (total - 1)) + 1)])

    low, high = nearest(CORE_QUANTILE) * NS_PER_S, (nearest(1 - CORE_QUANTILE) + 1) * NS_PER_S - 1
    margin = max(high - low, MIN_MARGIN.value)
    low, high = low - margin, high + margin
    if high - low > MAX_WINDOW.value:
        inside = (seconds * NS_PER_S >= low) & (seconds * NS_PER_S <= high)
        if inside.any():
            seconds, counts = seconds[inside], counts[inside]
        low, high = _densest_span(seconds, counts, MAX_WINDOW.value // NS_PER_S)
        low, high = low * NS_PER_S, (high + 1) * NS_PER_S - 1
    return low, high


def _densest_span(seconds: np.ndarray, counts: np.ndarray, length: int) -> tuple[int, int]:
    """The ``[start, start + length]`` span of seconds, starting at a record, holding the most records."""
    cumulative = np.concatenate([[0], np.cumsum(counts)])
    ends = np.searchsorted(seconds, seconds + length, side="right")
    best = int(np.argmax(cumulative[ends] - cumulative[:-1]))
    return int(seconds[best]), int(seconds[best]) + length
