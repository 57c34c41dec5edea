"""The incident window: outlying timestamps are set apart, the dense span is kept."""

from __future__ import annotations

import pandas as pd

from runbook.logs.window import MAX_WINDOW, incident_window
from runbook.observations import LOG_COLUMNS


def frame(timestamps: list[str | None]) -> pd.DataFrame:
    rows = {name: [None] * len(timestamps) for name in LOG_COLUMNS}
    rows["ts"] = pd.to_datetime(timestamps, utc=True, format="ISO8601")
    rows["event"] = ["connect"] * len(timestamps)
    rows["line_no"] = list(range(1, len(timestamps) + 1))
    return pd.DataFrame(rows).astype(LOG_COLUMNS)


def minutes(start: str, count: int) -> list[str]:
    return [str(t) for t in pd.date_range(start, periods=count, freq="7s")]


def test_no_outlier_keeps_everything_in_order():
    """A log with no clock trouble comes back whole, rows in their input order."""
    stamps = minutes("2026-11-28T06:00:00Z", 300)
    stamps[5], stamps[6] = stamps[6], stamps[5]
    window = incident_window(frame(stamps))
    assert len(window.kept) == 300 and window.outliers.empty
    assert window.kept["line_no"].tolist() == list(range(1, 301))
    assert window.start == pd.Timestamp("2026-11-28T06:00:00Z")


def test_1970_2099_and_a_year_ahead_are_outliers():
    """Three records from clocks that were off are set apart, numbered 0..2 in time order."""
    stamps = minutes("2026-11-28T06:00:00Z", 489)
    stamps[3], stamps[100], stamps[200] = "1970-01-01T00:00:00Z", "2099-01-01T00:00:00Z", "2027-11-28T06:10:00Z"
    window = incident_window(frame(stamps))
    assert window.outliers["ts"].dt.year.tolist() == [1970, 2027, 2099]
    assert window.outliers.index.tolist() == [0, 1, 2]
    assert len(window.kept) == 486
    assert window.end - window.start < pd.Timedelta(hours=1)


def test_quiet_hour_next_to_the_incident_is_kept():
    """A record half an hour after the dense part is still the incident (MIN_MARGIN)."""
    stamps = [*minutes("2026-11-28T06:00:00Z", 200), "2026-11-28T07:00:00Z"]
    window = incident_window(frame(stamps))
    assert window.outliers.empty


def test_many_bad_clocks_still_bound_the_window():
    """When too many records are off for the quantiles (30% at 1970), the window is the densest
    MAX_WINDOW span, never decades."""
    stamps = ["1970-01-01T00:00:00Z"] * 90 + minutes("2026-11-28T06:00:00Z", 210)
    window = incident_window(frame(stamps))
    assert len(window.outliers) == 90 and window.end - window.start <= MAX_WINDOW


def test_rows_without_timestamp_stay():
    """Rows with no timestamp are neither kept out nor counted as outliers."""
    stamps = [*minutes("2026-11-28T06:00:00Z", 50), None]
    window = incident_window(frame(stamps))
    assert len(window.kept) == 51 and window.outliers.empty
    empty = incident_window(frame([None, None]))
    assert empty.start is None and len(empty.kept) == 2
