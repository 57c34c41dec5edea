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
    low, high = np.quantile(ns, [CORE_QUANTILE, 1 - CORE_QUANTILE], method="nearest")
    margin = max(int(high - low), MIN_MARGIN.value)
    low, high = low - margin, high + margin
    if high - low > MAX_WINDOW.value:
        inside = ns[(ns >= low) & (ns <= high)]
        low, high = _densest_span(inside if len(inside) else ns, MAX_WINDOW.value)
    keep = np.ones(len(frame), dtype=bool)
    keep[known] = (ns >= low) & (ns <= high)
    kept, outliers = frame[keep], frame[~keep].sort_values("ts", kind="stable").reset_index(drop=True)
    kept_ts = kept["ts"].dropna()
    return IncidentWindow(kept_ts.min(), kept_ts.max(), kept, outliers)


def _densest_span(ns: np.ndarray, length: int) -> tuple[int, int]:
    """The ``[start, start + length]`` span, starting at a record, that holds the most records."""
    ordered = np.sort(ns)
    ends = np.searchsorted(ordered, ordered + length, side="right")
    best = int(np.argmax(ends - np.arange(len(ordered))))
    return int(ordered[best]), int(ordered[best]) + length
