"""Reduce a normalized close-log frame to the figures the checklist and the evidence rules use.

Pure: a DataFrame with the LOG_COLUMNS in, a LogMetrics out. No clock: the observation window is
the span of the log itself.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import PurePath

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from runbook.logs.common import select_rows
from runbook.logs.registry import combine_logs, combine_states
from runbook.logs.window import NS_PER_S, incident_window
from runbook.observations import DurationPeak, Lifetimes, LogMetrics, MobileStats, ParsedLog, StateMetrics, StateTrend

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
    value = pd.to_numeric(code, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    maybe_shed = np.flatnonzero(np.isin(value, (1008, 1011)))  # the reason decides only for these
    under_load = np.zeros(len(value), dtype=bool)
    under_load[maybe_shed] = reason.iloc[maybe_shed].astype("string").fillna("").str.contains(_UNDER_LOAD).to_numpy(dtype=bool)
    out = np.full(len(value), CLOSE_CLASSES.index(ABNORMAL), dtype=np.int8)
    out[np.isin(value, _NORMAL_CODES)] = CLOSE_CLASSES.index(NORMAL)
    out[np.isin(value, _SHED_CODES) | (np.isin(value, (1008, 1011)) & under_load)] = CLOSE_CLASSES.index(SHED)
    out[(value >= 3000) & (value <= 4999)] = CLOSE_CLASSES.index(APPLICATION)
    out[np.isnan(value)] = CLOSE_CLASSES.index(UNKNOWN)
    # A categorical: five names, an int8 per close.
    return pd.Series(pd.Categorical.from_codes(out, categories=pd.Index(CLOSE_CLASSES, dtype="string")), index=code.index)


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


# --- summarizing in parts ----------------------------------------------------------------------
#
# A day of fleet logs does not fit in memory, so the summary is built in two passes over parts,
# each pass producing partial results that add up (runbook.logs.pipeline runs them, locally or
# on Dask; a small log is one part of each):
#
# 1. ``summarize_connections`` takes the records of one *connection part* (every record of a
#    connection lands in the same part) and returns a ``ConnectionDigest``: counts, per-minute
#    bins, lifetimes, close codes, drops per second. It also returns the part's connection rows
#    and its failed handshakes that name their client (``handshake_attempts``).
# 2. ``summarize_clients`` takes the connection rows and failed handshakes of one *client part*
#    (everything of a client lands in the same part) and returns a ``ClientDigest``: reconnect
#    patterns, lingering peers, the most affected clients, the ages of the drops in busy seconds.
#
# ``finish_metrics`` adds the digests up into one LogMetrics. ``summarize_logs`` does all three
# for one frame in memory.

# Reconnect gaps kept: of this many clients with the most reconnects, this many attempts each.
BUSIEST_CLIENTS = 30
ATTEMPTS_KEPT = 300
# Close reasons kept per part for the "most frequent reasons" table; the rest are counted as other.
MAX_REASONS_PER_PART = 1_000
ERROR_EXAMPLES = 5


@dataclass
class ConnectionDigest:
    """What one connection part adds to the summary (every field adds up across parts)."""

    connects: int = 0
    disconnects: int = 0
    errors: int = 0
    handshake_failures: int = 0
    keepalive_timeouts: int = 0
    error_examples: list[tuple[int, str]] = field(default_factory=list)  # (ts ns, reason), earliest first
    reasons: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["event", "code", "reason", "count"]))
    connections: int = 0
    abnormal: int = 0  # closes without a code or with one other than 1000/1001 (the postmortem's impact)
    abnormal_addresses: np.ndarray = field(default_factory=lambda: np.array([], dtype=object))
    has_identity: bool = False  # some connection carries a client address or id
    bins: np.ndarray = field(default_factory=lambda: np.zeros((4, 0), dtype=np.int64))  # starts, ends, unexpected, unknown
    starts_before: int = 0  # connections that started before the first bin
    codes: dict[int | None, int] = field(default_factory=dict)  # close code (None: none) -> closes
    close_classes: dict[str, int] = field(default_factory=dict)
    lifetimes: Lifetimes = field(default_factory=lambda: Lifetimes.of(np.array([])))
    dropped_lifetimes: Lifetimes = field(default_factory=lambda: Lifetimes.of(np.array([])))
    lived_s: float = 0.0  # connection-seconds inside the window
    opened: int = 0
    mobile: MobileStats | None = None
    # epoch second -> unexpected drops (abnormal, shed), connections started, connections ended
    drops_per_second: pd.Series = field(default_factory=lambda: pd.Series(dtype=np.int64))
    starts_per_second: pd.Series = field(default_factory=lambda: pd.Series(dtype=np.int64))
    ends_per_second: pd.Series = field(default_factory=lambda: pd.Series(dtype=np.int64))


def merge_digests(a: ConnectionDigest, b: ConnectionDigest) -> ConnectionDigest:
    """Two connection digests as one: what lets the parts be added up as they finish, holding one."""
    examples = sorted(a.error_examples + b.error_examples)
    seen: dict[str, tuple[int, str]] = {}
    for example in examples:
        seen.setdefault(example[1], example)
    reasons = [r for r in (a.reasons, b.reasons) if len(r)]
    return ConnectionDigest(
        connects=a.connects + b.connects,
        disconnects=a.disconnects + b.disconnects,
        errors=a.errors + b.errors,
        handshake_failures=a.handshake_failures + b.handshake_failures,
        keepalive_timeouts=a.keepalive_timeouts + b.keepalive_timeouts,
        error_examples=list(seen.values())[:ERROR_EXAMPLES],
        reasons=_reason_counts_of(pd.concat(reasons, ignore_index=True)) if len(reasons) == 2 else (reasons or [a.reasons])[0],
        connections=a.connections + b.connections,
        abnormal=a.abnormal + b.abnormal,
        abnormal_addresses=pd.unique(np.concatenate([a.abnormal_addresses, b.abnormal_addresses])),
        has_identity=a.has_identity or b.has_identity,
        bins=a.bins + b.bins if a.bins.shape == b.bins.shape else (a.bins if a.bins.size else b.bins),
        starts_before=a.starts_before + b.starts_before,
        codes={code: a.codes.get(code, 0) + b.codes.get(code, 0) for code in {**a.codes, **b.codes}},
        close_classes={name: a.close_classes.get(name, 0) + b.close_classes.get(name, 0) for name in CLOSE_CLASSES},
        lifetimes=Lifetimes.merge([a.lifetimes, b.lifetimes]),
        dropped_lifetimes=Lifetimes.merge([a.dropped_lifetimes, b.dropped_lifetimes]),
        lived_s=a.lived_s + b.lived_s,
        opened=a.opened + b.opened,
        mobile=_add_mobile([a, b]),
        drops_per_second=_add_series([a.drops_per_second, b.drops_per_second]),
        starts_per_second=_add_series([a.starts_per_second, b.starts_per_second]),
        ends_per_second=_add_series([a.ends_per_second, b.ends_per_second]),
    )


@dataclass
class ClientDigest:
    """What one client part adds: reconnects, lingering peers, affected clients, busy seconds."""

    reconnect_gaps: pd.DataFrame
    reconnect_clients: pd.DataFrame
    lingering: int
    affected: pd.DataFrame  # client, client_ip, user_agent, abnormal disconnects (this part's top ones)
    busy: dict[int, np.ndarray]  # ages of the drops in each mass-disconnect candidate second


@dataclass(frozen=True)
class Window:
    """The incident window: first and last kept timestamp, and the per-minute bins over it."""

    start: pd.Timestamp | None
    end: pd.Timestamp | None

    @property
    def bins(self) -> tuple[np.ndarray, int]:
        """Left edges of the per-minute bins (ns) and their width (ns); MAX_RATE_BINS at most."""
        if self.start is None:
            return np.array([], dtype=np.int64), 60_000_000_000
        first, last = self.start.floor("min"), self.end.floor("min")
        span = int((last - first) / pd.Timedelta(minutes=1)) + 1
        width = max(1, math.ceil(span / MAX_RATE_BINS))
        return pd.date_range(first, last, freq=f"{width}min").as_unit("ns").asi8, pd.Timedelta(minutes=width).value


def summarize_logs(frame: pd.DataFrame) -> LogMetrics:
    """Every figure the checklist and the rules use, for one frame of records held in memory."""
    if frame["ts"].hasnans:
        frame = frame.dropna(subset=["ts"])
    if not frame["ts"].is_monotonic_increasing:
        frame = frame.sort_values("ts", kind="stable")
    window = Window(frame["ts"].min(), frame["ts"].max()) if len(frame) else Window(None, None)
    digest, connections, attempts = summarize_connections(frame, window)
    candidates = mass_candidates([digest])
    clients = summarize_clients(connections, list(candidates), attempts)
    return finish_metrics(window, [digest], [clients], candidates)


def summarize_connections(frame: pd.DataFrame, window: Window) -> tuple[ConnectionDigest, pd.DataFrame, pd.DataFrame]:
    """One connection part (records in ts order, inside the window): its digest, its connections
    and its failed handshakes that name their client (``handshake_attempts``)."""
    connections = _connections(frame, window.start)
    closed_mask = connections["closed"].to_numpy(dtype=bool)
    closed = connections.loc[closed_mask, ["end", "duration_s", "code", "close_class", "client_ip"]]
    events = frame["event"]
    reasons = frame["reason"]
    has_reason = reasons.notna().to_numpy(dtype=bool)
    with_reason = reasons[has_reason]
    is_error = (events == "error").to_numpy(dtype=bool)
    failed_handshake = np.zeros(len(frame), dtype=bool)
    failed_handshake[has_reason] = with_reason.str.contains(_HANDSHAKE_FAILURE).to_numpy(dtype=bool)
    examples = select_rows(frame[["ts", "reason"]], is_error).dropna().drop_duplicates("reason").head(ERROR_EXAMPLES)
    texts = np.zeros(len(frame), dtype=bool)
    texts[has_reason] = (with_reason.str.len() > 0).to_numpy(dtype=bool)
    attempts = handshake_attempts(select_rows(frame, failed_handshake & is_error))
    classes = closed["close_class"].value_counts()
    codes = closed["code"].astype("Float64").value_counts(dropna=False)
    dropped = closed.loc[~closed["close_class"].eq(NORMAL).fillna(False).to_numpy(dtype=bool)]
    abnormal = closed.loc[(closed["code"].isna() | ~closed["code"].isin([1000, 1001])).to_numpy(dtype=bool)]
    digest = ConnectionDigest(
        connects=int((events == "connect").sum()),
        disconnects=int((events == "disconnect").sum()),
        errors=int(is_error.sum()),
        handshake_failures=int(failed_handshake.sum()),
        keepalive_timeouts=int(with_reason.str.contains(_KEEPALIVE_TIMEOUT).sum()),
        error_examples=[(pd.Timestamp(ts).value, str(reason)) for ts, reason in examples.itertuples(index=False)],
        reasons=_reason_counts(frame, texts),
        connections=len(connections),
        abnormal=len(abnormal),
        abnormal_addresses=_distinct_texts(abnormal["client_ip"]),
        has_identity=bool(len(attempts)) or not connections[["client_ip", "client_id"]].isna().all(axis=None),
        codes={(None if pd.isna(code) else int(code)): int(count) for code, count in codes.items()},
        close_classes={name: int(classes.get(name, 0)) for name in CLOSE_CLASSES},
        lifetimes=Lifetimes.of(closed["duration_s"]),
        dropped_lifetimes=Lifetimes.of(dropped["duration_s"]),
        mobile=_mobile(connections, window.end),
        drops_per_second=_per_second(_drops(closed)["end"]),
        starts_per_second=_per_second(connections["start"].dropna()),
        ends_per_second=_per_second(closed["end"]),
    )
    _bin_connections(digest, connections, closed, window)
    if window.start is not None and len(connections):
        lived = (connections["end"].fillna(window.end) - connections["start"]).dt.total_seconds().clip(lower=0)
        digest.lived_s, digest.opened = float(lived.sum()), int(connections["start"].notna().sum())
    return digest, connections, attempts


def _distinct_texts(values: pd.Series) -> np.ndarray:
    """The distinct values of a text column (categorical or not) as Python strings, NA left out."""
    return np.asarray(values.dropna().unique(), dtype=object).astype(str)


def handshake_attempts(errors: pd.DataFrame) -> pd.DataFrame:
    """Failed opening handshakes that name their client, as rows of the connections table that
    closed the moment they began, plus the log family that saw them.

    A client that keeps retrying a handshake that fails (an upgrade the proxy does not forward, a
    server that refuses) never gets a connection, yet it is reconnecting: ``summarize_clients``
    follows these attempts as it follows drops.
    """
    named = errors.loc[(errors["client_id"].notna() | errors["client_ip"].notna()).to_numpy(dtype=bool)]
    at = pd.to_datetime(named["ts"].to_numpy(), utc=True)
    family = pd.Categorical(named["source"].fillna(""))
    out = pd.DataFrame({"start": at, "end": at, "duration_s": 0.0, "code": pd.array([pd.NA] * len(named), dtype="Int64"),
                        "close_class": ABNORMAL, "closed": True})
    for column in ("client_id", "client_ip", "user_agent"):  # categorical, as the connections table has them
        out[column] = _as_category(named[column])
    out["family"] = pd.Series(family.categories.map(_log_family), dtype="string").to_numpy()[family.codes]
    out["failed_handshake"] = True
    return out


def _reason_counts(frame: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """The (event, code, reason, count) triples of the ``rows`` of ``frame``: counted on integer
    codes, each triple's values taken from its first row only."""
    columns = ["event", "code", "reason"]
    key = np.zeros(len(frame), dtype=np.int64)
    for column in columns:
        codes, uniques = pd.factorize(frame[column])
        key = key * (len(uniques) + 1) + codes + 1
    _, first, count = np.unique(key[rows], return_index=True, return_counts=True)
    positions = np.flatnonzero(rows)[first]  # each triple's first row, in key order
    chosen = np.zeros(len(frame), dtype=bool)
    chosen[positions] = True
    table = select_rows(frame[columns], chosen)  # in row order: the counts follow it
    return _reason_counts_of(table.assign(count=count[np.argsort(positions)]))


def _reason_counts_of(table: pd.DataFrame) -> pd.DataFrame:
    """(event, code, reason, count) rows added up per triple, most frequent first, capped."""
    counts = table.groupby(["event", "code", "reason"], dropna=False, observed=True, sort=True)["count"].sum().reset_index()
    counts = counts.sort_values("count", ascending=False, kind="stable")
    if len(counts) > MAX_REASONS_PER_PART:
        other = pd.DataFrame({"event": ["(other)"], "code": [pd.NA], "reason": ["(other reasons)"],
                              "count": [int(counts["count"].iloc[MAX_REASONS_PER_PART:].sum())]})
        counts = pd.concat([counts.head(MAX_REASONS_PER_PART), other], ignore_index=True)
    return counts.reset_index(drop=True)


def _drops(closed: pd.DataFrame) -> pd.DataFrame:
    """The unexpected closes a mass disconnect is made of (abnormal, shed)."""
    return closed.loc[closed["close_class"].isin([ABNORMAL, SHED]).fillna(False).to_numpy(dtype=bool)]


def _per_second(times: pd.Series) -> pd.Series:
    seconds, counts = np.unique(_nanoseconds(times) // 1_000_000_000, return_counts=True)
    return pd.Series(counts, index=seconds, dtype=np.int64)


def _bin_connections(digest: ConnectionDigest, connections: pd.DataFrame, closed: pd.DataFrame, window: Window) -> None:
    edges, step = window.bins
    if not len(edges):
        return
    unexpected = closed["close_class"].isin([ABNORMAL, SHED, APPLICATION]).to_numpy(dtype=bool)
    unknown = closed["close_class"].eq(UNKNOWN).fillna(False).to_numpy(dtype=bool)
    starts = _nanoseconds(connections["start"].dropna())
    ends = _nanoseconds(closed["end"])

    def count(ns: np.ndarray) -> np.ndarray:
        index = (ns - edges[0]) // step
        return np.bincount(index[(index >= 0) & (index < len(edges))], minlength=len(edges))

    digest.bins = np.vstack([count(starts), count(ends), count(ends[unexpected]), count(ends[unknown])]).astype(np.int64)
    digest.starts_before = int((starts < edges[0]).sum())


def mass_candidates(digests: list[ConnectionDigest]) -> dict[int, tuple[int, int]]:
    """Seconds in which at least MASS_MIN_CLIENTS connections and MASS_MIN_SHARE_OF_OPEN of the
    connections open at its start were dropped: second -> (dropped, open)."""
    drops = _add_series([d.drops_per_second for d in digests])
    busy = drops[drops.to_numpy() >= MASS_MIN_CLIENTS]
    if busy.empty:
        return {}
    starts, ends = (_add_series([getattr(d, name) for d in digests]) for name in ("starts_per_second", "ends_per_second"))
    started = np.cumsum(starts.to_numpy())
    ended = np.cumsum(ends.to_numpy())
    seconds = busy.index.to_numpy()
    before_start = np.searchsorted(starts.index.to_numpy(), seconds, side="left")
    before_end = np.searchsorted(ends.index.to_numpy(), seconds, side="left")
    open_then = (np.where(before_start > 0, started[before_start - 1], 0)
                 - np.where(before_end > 0, ended[before_end - 1], 0))
    count = busy.to_numpy()
    share = count / np.maximum(open_then, count)
    return {int(s): (int(c), int(o)) for s, c, o, keep in zip(seconds, count, open_then, share >= MASS_MIN_SHARE_OF_OPEN,
                                                               strict=True) if keep}


def _add_series(parts: list[pd.Series]) -> pd.Series:
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.Series(dtype=np.int64)
    return pd.concat(parts).groupby(level=0).sum().sort_index()


def summarize_clients(connections: pd.DataFrame, candidates: list[int], attempts: pd.DataFrame | None = None) -> ClientDigest:
    """One client part (all connections and failed handshakes of its clients): reconnects,
    lingering, affected, busy seconds. Failed handshakes count as reconnect attempts only."""
    attempts = _one_family_per_client(attempts) if attempts is not None and len(attempts) else None
    # One ordering serves both: the connections alone are the attempts' rows taken out of it.
    with_attempts = _ByClient.of(connections if attempts is None else concat_tables([connections, attempts]))
    by_client = with_attempts.without_failed_handshakes()
    gaps = _reconnect_gaps(with_attempts)
    reconnecting = _reconnect_clients(gaps)
    return ClientDigest(
        reconnect_gaps=_busiest_gaps(gaps, reconnecting),
        reconnect_clients=reconnecting,
        lingering=_lingering(by_client),
        affected=most_affected_clients(by_client),
        busy=_busy_ages(connections, candidates),
    )


def concat_tables(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Connection tables (or failed handshakes) one after the other, their text columns kept
    categorical: ``pd.concat`` turns categoricals of different categories into a column of
    Python strings, a million of them for a busy day."""
    tables = [t for t in tables if len(t)] or tables[:1]
    if len(tables) == 1:
        return tables[0].reset_index(drop=True)
    texts = [c for c in dict.fromkeys(c for t in tables for c in t.columns)
             if any(isinstance(t[c].dtype, pd.CategoricalDtype) for t in tables if c in t)]
    out = pd.concat([t.drop(columns=[c for c in texts if c in t]) for t in tables], ignore_index=True)
    for column in texts:
        out[column] = union_categoricals([_as_category(t[column]) if column in t else _as_category(pd.Series([None] * len(t)))
                                          for t in tables], ignore_order=True)
    return out[list(dict.fromkeys(c for t in tables for c in t.columns))]


def _as_category(values: pd.Series) -> pd.Categorical:
    """Text as a categorical whose categories are ``string`` (a Parquet round trip makes them objects)."""
    values = values.array if isinstance(values.dtype, pd.CategoricalDtype) else pd.Categorical(values.astype("string"))
    return pd.Categorical.from_codes(values.codes, categories=pd.Index(values.categories, dtype="string"))


def _one_family_per_client(attempts: pd.DataFrame) -> pd.DataFrame:
    """Each client's failed handshakes as one log saw them: a proxy and the server behind it log
    the same attempt, and counting both would halve every gap. The log with the most of the
    client's attempts is kept; on a tie, one with sub-second times (access logs often have whole
    seconds), then the first family."""
    client = _client_key(attempts).to_numpy()
    ns = _nanoseconds(attempts["start"])
    table = pd.DataFrame({"client": client, "family": attempts["family"].to_numpy(), "fine": ns % NS_PER_S != 0})
    per_family = table.groupby(["client", "family"], sort=True).agg(count=("fine", "size"), fine=("fine", "any")).reset_index()
    best = (per_family.sort_values(["client", "count", "fine", "family"], ascending=[True, False, False, True], kind="stable")
            .drop_duplicates("client"))
    chosen = table.merge(best[["client", "family"]], on=["client", "family"], how="left", indicator=True)["_merge"].eq("both")
    return attempts.loc[chosen.to_numpy(dtype=bool)].drop(columns="family")


def _busiest_gaps(gaps: pd.DataFrame, clients: pd.DataFrame) -> pd.DataFrame:
    """The gaps of the BUSIEST_CLIENTS clients with the most reconnects, their first
    ATTEMPTS_KEPT each: what the report draws, whatever the number of clients."""
    busiest = clients["client"].head(BUSIEST_CLIENTS)
    kept = gaps[gaps["client"].isin(busiest).to_numpy(dtype=bool) & (gaps["attempt"] <= ATTEMPTS_KEPT).to_numpy(dtype=bool)]
    return kept.reset_index(drop=True)


def merge_client_digests(a: ClientDigest, b: ClientDigest) -> ClientDigest:
    """Two client digests as one (the busiest clients' gaps, the most affected clients kept)."""
    clients = _busiest_first(pd.concat([t for t in (a.reconnect_clients, b.reconnect_clients) if len(t)]
                                       or [a.reconnect_clients], ignore_index=True))
    gaps = pd.concat([t for t in (a.reconnect_gaps, b.reconnect_gaps) if len(t)] or [a.reconnect_gaps], ignore_index=True)
    affected = pd.concat([t for t in (a.affected, b.affected) if len(t)] or [a.affected], ignore_index=True)
    busy = dict(a.busy)
    for second, ages in b.busy.items():
        busy[second] = np.concatenate([busy[second], ages]) if second in busy else ages
    return ClientDigest(
        reconnect_gaps=_busiest_gaps(gaps, clients),
        reconnect_clients=clients,
        lingering=a.lingering + b.lingering,
        affected=_most_affected_first(affected),
        busy=busy,
    )


def _most_affected_first(table: pd.DataFrame, limit: int = 10) -> pd.DataFrame:
    return (table.sort_values(["abnormal disconnects", "client"], ascending=[False, True], kind="stable")
            .head(limit).reset_index(drop=True))


def most_affected_clients(by_client: _ByClient, limit: int = 10) -> pd.DataFrame:
    """The clients (by id, else address and user agent) with the most abnormal (not 1000/1001)
    disconnects; ties in client order, so the table is the same however the work was split."""
    columns = ["client", "client_ip", "user_agent", "abnormal disconnects"]
    rows = by_client.rows
    closed = rows["closed"].to_numpy(dtype=bool)
    abnormal = closed & (rows["code"].isna() | ~rows["code"].isin([1000, 1001])).to_numpy(dtype=bool)
    if not abnormal.any():
        return pd.DataFrame(columns=columns)
    client = by_client.client[abnormal]
    counts = np.bincount(client)
    # Only clients that can make the first ``limit`` get a label: those with at least the
    # limit-th largest count (ties there are broken by label).
    threshold = np.partition(counts, len(counts) - limit)[len(counts) - limit] if len(counts) > limit else 1
    chosen = np.flatnonzero(counts >= max(threshold, 1))
    first_row = np.full(len(counts), -1)
    seen, first = np.unique(client, return_index=True)  # each client's earliest abnormal row
    first_row[seen] = np.flatnonzero(abnormal)[first]
    shown = rows.iloc[first_row[chosen]]
    table = shown[["client_ip", "user_agent"]].astype("string").reset_index(drop=True)
    table.insert(0, "client", _client_key(shown).to_numpy())
    table["abnormal disconnects"] = counts[chosen]
    return _most_affected_first(table, limit)


def _busy_ages(connections: pd.DataFrame, seconds: list[int]) -> dict[int, np.ndarray]:
    if not seconds:
        return {}
    dropped = _drops(connections.loc[connections["closed"].astype(bool)])
    at = _nanoseconds(dropped["end"]) // 1_000_000_000
    inside = np.isin(at, seconds)
    ages = dropped["duration_s"].to_numpy(dtype=float, na_value=np.nan)[inside]
    return {int(second): group for second, group in pd.Series(ages).groupby(at[inside]).agg(lambda g: g.to_numpy()).items()}


def finish_metrics(window: Window, digests: list[ConnectionDigest], clients: list[ClientDigest],
                   candidates: dict[int, tuple[int, int]]) -> LogMetrics:
    """Add the parts' digests up into the LogMetrics the checklist and the rules read."""
    lifetimes = Lifetimes.merge([d.lifetimes for d in digests])
    classes = {name: sum(d.close_classes.get(name, 0) for d in digests) for name in CLOSE_CLASSES}
    examples = sorted(example for d in digests for example in d.error_examples)
    gaps = pd.concat([c.reconnect_gaps for c in clients if len(c.reconnect_gaps)] or [_reconnect_gaps(_ByClient.of(no_connections()))], ignore_index=True)
    reconnecting = [c.reconnect_clients for c in clients if len(c.reconnect_clients)]
    reconnect_clients = (_busiest_first(pd.concat(reconnecting, ignore_index=True))
                         if reconnecting else _reconnect_clients(pd.DataFrame()))
    gaps = _busiest_gaps(gaps, reconnect_clients)
    affected = [c.affected for c in clients if len(c.affected)]
    return LogMetrics(
        window_start=window.start,
        window_end=window.end,
        per_minute=_per_minute(window, digests),
        codes=_codes(digests),
        duration_peaks=find_duration_peaks(lifetimes),
        reconnect_gaps=gaps,
        reconnect_clients=reconnect_clients,
        mobile=_add_mobile(digests),
        connects=sum(d.connects for d in digests),
        disconnects=sum(d.disconnects for d in digests),
        errors=sum(d.errors for d in digests),
        handshake_failures=sum(d.handshake_failures for d in digests),
        keepalive_timeouts=sum(d.keepalive_timeouts for d in digests),
        error_examples=list(dict.fromkeys(reason for _, reason in examples))[:ERROR_EXAMPLES],
        close_classes=classes,
        turnover=turnover(window, digests),
        lingering=sum(c.lingering for c in clients),
        mass_disconnects=find_mass_disconnects(candidates, clients),
        lifetimes=lifetimes,
        connection_count=sum(d.connections for d in digests),
        abnormal_closes=sum(d.abnormal for d in digests),
        abnormal_addresses=len(pd.unique(np.concatenate([d.abnormal_addresses for d in digests]))) if digests else 0,
        has_client_identity=any(d.has_identity for d in digests),
        affected_clients=(_most_affected_first(pd.concat(affected, ignore_index=True))
                          if affected else most_affected_clients(_ByClient.of(no_connections()))),
        top_reasons=_top_reasons(digests),
    )


def _top_reasons(digests: list[ConnectionDigest], limit: int = 10) -> pd.DataFrame:
    """The most frequent (event, code, reason) triples with a non-empty reason."""
    parts = [d.reasons for d in digests if len(d.reasons)]
    if not parts:
        return pd.DataFrame(columns=["event", "code", "reason", "count"])
    counts = pd.concat(parts, ignore_index=True).groupby(["event", "code", "reason"], dropna=False, sort=True)["count"].sum()
    # sorted by count, ties in key order: the same whatever order the parts came in
    return counts.reset_index().sort_values("count", ascending=False, kind="stable").head(limit).reset_index(drop=True)


def _add_mobile(digests: list[ConnectionDigest]) -> MobileStats | None:
    known = [d.mobile for d in digests if d.mobile is not None]
    if not known:
        return None
    return MobileStats(
        mobile_disconnects=sum(m.mobile_disconnects for m in known),
        mobile_hours=sum(m.mobile_hours for m in known),
        desktop_disconnects=sum(m.desktop_disconnects for m in known),
        desktop_hours=sum(m.desktop_hours for m in known),
    )


def _log_family(source: str) -> str:
    """server.log.1 and server.log are one server's log: ids are unique within a family."""
    return _ROTATION_SUFFIX.sub("", PurePath(str(source)).name)


def _connections(frame: pd.DataFrame, window_start: pd.Timestamp | None) -> pd.DataFrame:
    """One row per connection (in no particular order), joining its connect and disconnect
    records by connection id.

    ``frame``: records in ts order. The first connect and the last disconnect of an id within a
    log family are the connection's; a record without an id is a connection of its own.
    """
    columns = ["start", "end", "duration_s", "code", "reason", "close_class", "closed_by", "client_id", "client_ip",
               "user_agent", "is_mobile", "closed"]
    if frame.empty or "connection_id" not in frame:
        return pd.DataFrame(columns=["key", *columns]).astype(
            {"key": np.int64, "closed": bool, "duration_s": float, "close_class": "string"})
    event = frame["event"]
    is_connect = (event == "connect").to_numpy(dtype=bool)
    is_close = (event == "disconnect").to_numpy(dtype=bool)
    if frame["connection_id"].isna().all():
        # No ids (an access log's sessions): every record is a connection of its own, nothing to
        # join. The same rows, in the same key order, as the join below would give.
        rows = np.flatnonzero(is_connect | is_close)[::-1]
        index = -1 - rows
        at_connect = np.where(is_connect[rows], rows, -1)
        at_close = np.where(is_close[rows], rows, -1)
    else:
        keys = _connection_keys(frame)
        connect_rows = np.flatnonzero(is_connect)
        close_rows = np.flatnonzero(is_close)[::-1]  # last one first: the last close counts
        connect_keys, first_connect = np.unique(keys[connect_rows], return_index=True)
        close_keys, last_close = np.unique(keys[close_rows], return_index=True)
        index = np.sort(np.concatenate([connect_keys, close_keys]), kind="stable")  # two sorted runs: a merge
        index = index[np.concatenate([[True], index[1:] != index[:-1]])[: len(index)]]
        # For each connection, the row of its connect and of its close in ``events`` (-1: none).
        at_connect = _rows_for(index, connect_keys, connect_rows[first_connect])
        at_close = _rows_for(index, close_keys, close_rows[last_close])

    def pick(column: str, rows: np.ndarray) -> pd.Series:
        values = pd.api.extensions.take(frame[column].array, rows, allow_fill=True)
        return pd.Series(values, index=index, name=column)

    def pick_category(column: str, rows: np.ndarray) -> pd.Series:
        """Text as a categorical: its distinct values once, and an int per connection (cheap to move)."""
        codes, uniques = pd.factorize(frame[column])
        picked = np.where(rows >= 0, codes[rows], -1)
        return pd.Series(pd.Categorical.from_codes(picked, categories=pd.Index(uniques, dtype="string")), index=index,
                         name=column)

    # Times as int64 nanoseconds (NaT is the smallest int64), typed back into timestamps at the end.
    ns = pd.DatetimeIndex(frame["ts"]).as_unit("ns").asi8
    connect_ns = np.where(at_connect >= 0, ns[at_connect], _NAT)
    end_ns = np.where(at_close >= 0, ns[at_close], _NAT)
    has_connect, has_end = connect_ns != _NAT, end_ns != _NAT
    logged = frame["duration_s"].to_numpy(dtype=float, na_value=np.nan)[at_close]
    logged[at_close < 0] = np.nan
    measured = np.where(has_connect & has_end, (end_ns - connect_ns) / 1e9, np.nan)
    duration = np.where(np.isnan(logged), measured, logged)
    from_duration = np.where(has_end & ~np.isnan(duration),
                             end_ns - _seconds_to_ns(np.nan_to_num(duration)), _NAT)
    start_ns = np.where(has_connect, connect_ns, from_duration)
    if window_start is not None:
        start_ns = np.where(start_ns == _NAT, window_start.as_unit("ns").value, start_ns)
    out = pd.DataFrame(index=pd.Index(index, dtype=np.int64))
    out["end"] = _utc(end_ns, out.index)
    out["closed"] = at_close >= 0
    out["duration_s"] = duration
    out["start"] = _utc(start_ns, out.index)
    out["code"] = pick("code", at_close)
    for column in ("reason", "closed_by"):
        out[column] = pick_category(column, at_close)
    out["close_class"] = classify_closes(out["code"], out["reason"]).where(out["closed"])
    for column in ("client_id", "client_ip", "user_agent", "is_mobile"):
        # The Node monitor logs the client on connect only; JSON logs may carry it on both.
        missing = frame[column].isna().to_numpy()
        on_close = (at_close >= 0) & ~missing[at_close]
        rows = np.where(on_close, at_close, at_connect)
        out[column] = pick(column, rows) if column == "is_mobile" else pick_category(column, rows)
    return out.reset_index(names="key")[["key", *columns]]


_NAT = np.iinfo(np.int64).min


def _seconds_to_ns(seconds: np.ndarray) -> np.ndarray:
    """Seconds as int64 nanoseconds, exactly as ``pd.to_timedelta(seconds, unit="s")`` gives them
    (whole seconds, then the fraction rounded to 9 digits), at a tenth of its cost."""
    whole = seconds.astype(np.int64)
    return whole * 1_000_000_000 + (np.round(seconds - whole, 9) * 1e9).astype(np.int64)


def _utc(ns: np.ndarray, index: pd.Index) -> pd.Series:
    return pd.Series(pd.DatetimeIndex(ns.view("M8[ns]")).tz_localize("UTC"), index=index)


def _rows_for(index: np.ndarray, keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Row of each ``index`` key among (``keys``, ``rows``), both sorted by key; -1 where absent."""
    position = np.searchsorted(keys, index)
    found = position < len(keys)
    found[found] = keys[position[found]] == index[found]
    return np.where(found, rows[np.minimum(position, len(rows) - 1)] if len(rows) else -1, -1)


def connection_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per connection of a frame of records held in memory (the lab's own tables)."""
    frame = frame.dropna(subset=["ts"]).sort_values("ts", kind="stable")
    return _connections(frame, frame["ts"].min() if len(frame) else None)


def no_connections() -> pd.DataFrame:
    """The connections table with no row (its columns and types)."""
    return _connections(pd.DataFrame(), None)


def _connection_keys(events: pd.DataFrame) -> np.ndarray:
    """An int64 per record naming its connection: (log family, id), or the record itself without an id."""
    family = pd.Categorical(events["source"].fillna(""))
    family_codes = pd.Categorical(family.categories.map(_log_family)).codes[family.codes]
    ids, _ = pd.factorize(events["connection_id"], use_na_sentinel=True)
    keys = family_codes.astype(np.int64) * (int(ids.max(initial=0)) + 1) + ids
    alone = ids < 0
    keys[alone] = -1 - np.flatnonzero(alone)  # each record without an id is its own connection
    return keys


def _per_minute(window: Window, digests: list[ConnectionDigest]) -> pd.DataFrame:
    """Unexpected disconnects per minute as a share of the connections open in that minute.

    ``rate`` counts unexpected closes (abnormal, shed, application); ``churn_rate`` counts every
    close, normal ones included, and is shown beside it, never flagged. ``unknown`` closes carry no
    code (an access log's sessions): they count in neither. A window longer than MAX_RATE_BINS
    minutes gets bins of several minutes (``bin_minutes``), rates still per minute.
    """
    columns = ["minute", "bin_minutes", "open", "connects", "disconnects", "unexpected", "unknown",
               "rate", "churn_rate", "counted", "flagged"]
    edges, step = window.bins
    counted = [d.bins for d in digests if d.bins.shape[1] == len(edges)]
    if not len(edges) or not counted:
        return pd.DataFrame(columns=columns)
    starts, ends, unexpected, unknown = np.sum(counted, axis=0)
    before = sum(d.starts_before for d in digests)
    width = step // pd.Timedelta(minutes=1).value
    table = pd.DataFrame({"minute": pd.DatetimeIndex(edges, tz="UTC"), "bin_minutes": width})
    # Open in a bin: started before its end, less ended before its start.
    table["open"] = before + np.cumsum(starts) - (np.cumsum(ends) - ends)
    table["connects"] = starts
    table["disconnects"] = ends
    table["unexpected"] = unexpected
    table["unknown"] = unknown
    open_ = table["open"].clip(lower=1)
    table["rate"] = np.where(table["open"] > 0, table["unexpected"] / open_ / width, 0.0)
    table["churn_rate"] = np.where(table["open"] > 0, table["disconnects"] / open_ / width, 0.0)
    table["counted"] = table["open"] >= MIN_OPEN_PER_MINUTE
    table["flagged"] = table["counted"] & (table["rate"] > DISCONNECT_RATE_THRESHOLD)
    return table[columns]


def _nanoseconds(times: pd.Series) -> np.ndarray:
    return pd.DatetimeIndex(times).as_unit("ns").asi8


def _codes(digests: list[ConnectionDigest]) -> pd.DataFrame:
    counts: dict[int | None, int] = {}
    for digest in digests:
        for code, count in digest.codes.items():
            counts[code] = counts.get(code, 0) + count
    if not counts:
        return pd.DataFrame(columns=["code", "label", "count", "share"])
    ordered = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))  # ties by code: the same in any part order
    table = pd.DataFrame({"code": pd.array([c for c, _ in ordered], dtype="Int64"),
                          "count": [n for _, n in ordered]})
    table["label"] = table["code"].map(close_code_label)
    table["share"] = table["count"] / table["count"].sum()
    return table[["code", "label", "count", "share"]].reset_index(drop=True)


def find_duration_peaks(durations: pd.Series | np.ndarray | Lifetimes, max_peaks: int = 3) -> list[DurationPeak]:
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
    remaining = durations if isinstance(durations, Lifetimes) else Lifetimes.of(durations)
    total = remaining.total
    whole_seconds = total > 0 and bool(np.all(remaining.values == np.round(remaining.values)))
    peaks: list[DurationPeak] = []
    while len(peaks) < max_peaks:
        peak = _strongest_band(remaining, whole_seconds)
        if peak is None:
            break
        lo, hi = peak
        members = Lifetimes(remaining.values[lo:hi], remaining.counts[lo:hi])
        count = members.total
        peaks.append(DurationPeak(center_s=members.quantile(0.5), low_s=float(members.values[0]),
                                  high_s=float(members.values[-1]), count=count, share=count / total))
        keep = np.r_[0:lo, hi:len(remaining.values)]
        remaining = Lifetimes(remaining.values[keep], remaining.counts[keep])
    return peaks


def _strongest_band(lifetimes: Lifetimes, whole_seconds: bool) -> tuple[int, int] | None:
    """(first, end) indexes into ``lifetimes.values`` of the most significant band, or None."""
    values = lifetimes.values
    if lifetimes.total < PEAK_MIN_COUNT:
        return None
    first_start = int(np.searchsorted(values, PEAK_MIN_AGE_S, side="left"))
    starts = values[first_start:]
    if not len(starts):
        return None
    below_count = np.concatenate([[0], np.cumsum(lifetimes.counts)])  # lifetimes below values[i]

    def under(x: np.ndarray) -> np.ndarray:
        return below_count[np.searchsorted(values, x, side="left")]

    width = 0.02 * starts + 0.3
    if whole_seconds:
        width = np.maximum(np.ceil(width), 1.0)
    at_start = below_count[first_start:-1]  # under(starts): the values are distinct and sorted
    at_end = under(starts + width)
    inside = at_end - at_start
    below = at_start - under(starts - 5 * width)
    above = under(starts + 6 * width) - at_end
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
    return first, int(np.searchsorted(values, starts[best] + width[best], side="left"))


def _client_key(connections: pd.DataFrame) -> pd.Series:
    """Who a connection belongs to: the logged client id when there is one, else the address and
    the user agent (NAT puts many users behind one address; the agent splits most of them)."""
    ip = connections["client_ip"].astype("string")
    agent = connections["user_agent"].astype("string").fillna("")
    by_address = (ip + " | " + agent).where(ip.notna())
    return ("id " + connections["client_id"].astype("string")).fillna(by_address)


@dataclass
class _ByClient:
    """Connections that name their client, ordered by client then start (the label of each
    client is made only for the rows shown)."""

    rows: pd.DataFrame  # the connections, in that order
    client: np.ndarray  # int code of the client of each row

    @classmethod
    def of(cls, connections: pd.DataFrame) -> _ByClient:
        has_id = connections["client_id"].notna().to_numpy(dtype=bool)
        has_ip = connections["client_ip"].notna().to_numpy(dtype=bool)
        columns = ["start", "end", "duration_s", "code", "close_class", "closed", "client_id", "client_ip", "user_agent"]
        known = connections.loc[has_id | has_ip, [*columns, *(["failed_handshake"] if "failed_handshake" in connections else [])]]
        ids, _ = pd.factorize(known["client_id"])
        address, _ = pd.factorize(known["client_ip"])
        agent, agents = pd.factorize(known["user_agent"])  # a missing agent is one more value (-1)
        addresses, _ = pd.factorize(address.astype(np.int64) * (len(agents) + 1) + agent + 1)
        client = np.where(ids >= 0, ids, ids.max(initial=-1) + 1 + addresses).astype(np.int64)
        order = _client_order(client, _nanoseconds(known["start"]), known)
        return cls(known.iloc[order].reset_index(drop=True), client[order])

    @property
    def same_as_previous(self) -> np.ndarray:
        """Row i has the client of row i-1."""
        same = np.zeros(len(self.client), dtype=bool)
        same[1:] = self.client[1:] == self.client[:-1]
        return same

    def without_failed_handshakes(self) -> _ByClient:
        """The connections alone, in the same order (failed handshakes are no connection)."""
        if "failed_handshake" not in self.rows:
            return self
        keep = ~self.rows["failed_handshake"].eq(True).to_numpy(dtype=bool)
        return _ByClient(self.rows.loc[keep].drop(columns="failed_handshake").reset_index(drop=True), self.client[keep])


def _client_order(client: np.ndarray, start: np.ndarray, rows: pd.DataFrame) -> np.ndarray:
    """Rows by client, then start, then everything the gaps read (end, lifetime, close class, a
    failed handshake last), so connections that start together come in one order whatever order
    the buckets handed them in. Such ties are rare: only their rows are sorted on every key."""
    order = np.lexsort((start, client))
    tied = np.zeros(len(order), dtype=bool)
    tied[1:] = (client[order[1:]] == client[order[:-1]]) & (start[order[1:]] == start[order[:-1]])
    if not tied.any():
        return order
    tied[:-1] |= tied[1:]  # the first row of each run of ties too
    at = order[tied]  # in (client, start) order: sorted again on every key, they fill the same places
    tie_breaks = (rows["failed_handshake"].eq(True).to_numpy(dtype=bool)[at] if "failed_handshake" in rows
                  else np.zeros(len(at), dtype=bool),
                  pd.Categorical(rows["close_class"].iloc[at], categories=CLOSE_CLASSES).codes,
                  rows["duration_s"].to_numpy(dtype=float, na_value=np.nan)[at], _nanoseconds(rows["end"])[at])
    order[tied] = at[np.lexsort((*tie_breaks, start[at], client[at]))]
    return order


def _reconnect_gaps(by_client: _ByClient) -> pd.DataFrame:
    """For each client, the pause between an unexpected close (a drop, or a failed handshake) and
    its next connection or attempt."""
    columns = ["client", "attempt", "gap_s", "lifetime_s", "after_failed_handshake"]
    table = by_client.rows
    if table.empty:
        return pd.DataFrame(columns=columns)
    same = by_client.same_as_previous
    end = _nanoseconds(table["end"]).astype(float)
    end[table["end"].isna().to_numpy()] = np.nan
    start = _nanoseconds(table["start"]).astype(float)
    gap = np.full(len(table), np.nan)
    gap[1:] = (start[1:] - end[:-1]) / 1e9
    life = np.full(len(table), np.nan)
    life[1:] = table["duration_s"].to_numpy(dtype=float, na_value=np.nan)[:-1]
    # A user who closed the tab (1000/1001) and came back is not reconnecting; neither is one whose
    # close carried no code (an access log's session end): only drops are followed.
    dropped = table["close_class"].isin([ABNORMAL, SHED, APPLICATION]).fillna(False).to_numpy(dtype=bool)
    after_drop = np.zeros(len(table), dtype=bool)
    after_drop[1:] = dropped[:-1]
    failed = (table["failed_handshake"].eq(True).to_numpy(dtype=bool) if "failed_handshake" in table
              else np.zeros(len(table), dtype=bool))
    after_failed = np.zeros(len(table), dtype=bool)
    after_failed[1:] = failed[:-1]
    keep = same & after_drop & (gap >= 0) & (gap <= RECONNECT_WINDOW_S)
    rows = np.flatnonzero(keep)
    client = by_client.client[rows]
    # One label per client (not per reconnect): the rows are grouped by client already.
    first = np.concatenate([[True], client[1:] != client[:-1]]) if len(rows) else np.array([], dtype=bool)
    labels = _client_key(table.iloc[rows[first]]).to_numpy()
    group = np.cumsum(first) - 1
    out = pd.DataFrame({"client": labels[group], "gap_s": gap[rows], "lifetime_s": life[rows],
                        "after_failed_handshake": after_failed[rows]})
    starts = np.flatnonzero(first)
    out["attempt"] = np.arange(len(rows)) - starts[group] + 1
    return out[columns]


def _reconnect_clients(gaps: pd.DataFrame) -> pd.DataFrame:
    """Per client: how often it came back, how fast, after how long a session, and the pattern.

    ``storm``: 5+ reconnects, each within STORM_GAP_S of a session shorter than STORM_GAP_S, the
    pauses not growing: a client hammering a server that drops it at once. ``backoff``: pauses
    that grow over the attempts (``_growth``; the reference client doubles its delay). ``loop``:
    5+ quick reconnects with flat pauses after longer sessions. Else ``occasional``.
    """
    columns = ["client", "reconnects", "after_failed_handshake", "median_gap_s", "median_lifetime_s", "growth",
               "per_minute", "pattern"]
    if gaps.empty:
        return pd.DataFrame(columns=columns)
    codes, clients = pd.factorize(gaps["client"])
    order = np.argsort(codes, kind="stable")  # each client's attempts, in their order
    code = codes[order]
    gap = gaps["gap_s"].to_numpy(dtype=float)[order]
    life = gaps["lifetime_s"].to_numpy(dtype=float, na_value=np.nan)[order]
    per = pd.DataFrame({"code": code, "gap": gap, "life": life, "whole": gap == np.round(gap),
                        "failed": gaps["after_failed_handshake"].to_numpy(dtype=bool)[order]})
    by = per.groupby("code", sort=True)
    reconnects = by.size().to_numpy()
    median_gap = by["gap"].median().to_numpy()
    median_life = by["life"].median().to_numpy()  # NaN when no lifetime is known
    growth = _growth(per, reconnects)
    span_min = np.maximum((by["life"].sum().to_numpy() + by["gap"].sum().to_numpy()) / 60.0, 1 / 60)
    per_minute = reconnects / span_min
    flat = ~(growth >= 1.4)  # nan (a single reconnect) is not growth either
    storm = (reconnects >= STORM_MIN_RECONNECTS) & (median_gap <= STORM_GAP_S) & flat & (median_life <= STORM_GAP_S)
    backoff = (reconnects >= 5) & (growth >= 1.4)
    loop = (reconnects >= 5) & (median_gap <= 5.0) & flat & (per_minute >= 2.0)
    pattern = np.select([storm, backoff, loop], ["storm", "backoff", "loop"], "occasional")
    table = pd.DataFrame({"client": np.asarray(clients, dtype=object), "reconnects": reconnects,
                          "after_failed_handshake": by["failed"].sum().to_numpy(), "median_gap_s": median_gap,
                          "median_lifetime_s": median_life, "growth": growth, "per_minute": per_minute,
                          "pattern": pattern})
    return _busiest_first(table[columns])


def _growth(per: pd.DataFrame, counts: np.ndarray) -> np.ndarray:
    """How much longer each client's last pauses are than its first: the median of the last third
    over the median of the first third (NaN below two pauses). Backoff doubles the pause at every
    attempt, so even with jitter the late pauses are several times the early ones; a loop's stay
    flat. Thirds rather than attempt-to-attempt ratios, which jitter alone swings above and below
    1.4. A log with whole-second times (most access logs) cannot tell 0 s from 0.9 s: its pauses
    are compared from 1 s up.

    ``per``: code (client, sorted), gap (in attempt order within the client), whole (gap is a
    whole number of seconds); ``counts``: pauses per client, in code order.
    """
    code = per["code"].to_numpy()
    first_of = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(len(code)) - first_of[code]
    third = np.maximum(1, counts // 3)
    early = per.loc[position < third[code]].groupby("code", sort=True)["gap"].median().to_numpy()
    late = per.loc[position >= (counts - third)[code]].groupby("code", sort=True)["gap"].median().to_numpy()
    floor = np.where(per.groupby("code", sort=True)["whole"].all().to_numpy(), 1.0, 0.05)
    growth = late / np.maximum(early, floor)
    growth[counts < 2] = np.nan
    return growth


def _busiest_first(clients: pd.DataFrame) -> pd.DataFrame:
    """Most reconnects first, ties by client: the same order however the work was split."""
    return clients.sort_values(["reconnects", "client"], ascending=[False, True], kind="stable", ignore_index=True)


def turnover(window: Window, digests: list[ConnectionDigest]) -> tuple[float, float] | None:
    """Population-level churn, for logs that carry no client identity at all.

    Returns (connections opened per minute per connection open on average, the median lifetime
    of the unexpected closes), or None with fewer than 20 such closes. A reconnect storm replaces
    every open connection many times a minute with sessions that barely live; users coming and
    going, or an idle cut every minute, turn each connection over about once a minute or less.
    """
    dropped = Lifetimes.merge([d.dropped_lifetimes for d in digests]) if digests else Lifetimes.of(np.array([]))
    start, end = window.start, window.end
    if dropped.total < 20 or start is None or end is None or end <= start:
        return None
    window_s = (end - start).total_seconds()
    mean_open = max(sum(d.lived_s for d in digests) / window_s, 1.0)  # connection-seconds per second
    opened = sum(d.opened for d in digests)
    return opened / (window_s / 60) / mean_open, dropped.quantile(0.5)


def _lingering(by_client: _ByClient) -> int:
    """Clients whose old connection is still open on the server after 2+ newer ones opened.

    A client that came back twice while its first connection never closed left dead peers the
    server did not notice (a heartbeat finds them within one interval). One overlap is a second
    tab; two returns on top of a never-closed connection are not.
    """
    client = by_client.client
    if not len(client):
        return 0
    later = np.searchsorted(client, client, side="right") - 1 - np.arange(len(client))  # newer ones of the client
    still_open = ~by_client.rows["closed"].to_numpy(dtype=bool)
    return len(np.unique(client[still_open & (later >= 2)]))


def find_mass_disconnects(candidates: dict[int, tuple[int, int]], clients: list[ClientDigest]) -> pd.DataFrame:
    """Seconds in which many clients of all ages were dropped together (unexpected closes).

    ``candidates`` (``mass_candidates``) have enough drops and a large enough share of the open
    connections; a burst counts when the ages of its drops are also spread widely: a reload,
    deploy or blip cuts everyone at once whatever their age, whereas a timer cuts each connection
    at its own age (clients that connected together meet it together, all of one age).
    """
    columns = ["second", "dropped", "open", "share", "median_age_s"]
    rows = []
    for second, (count, open_then) in sorted(candidates.items()):
        ages = pd.Series(np.concatenate([c.busy[second] for c in clients if second in c.busy] or [np.array([])])).dropna()
        if not ages.median() >= PEAK_MIN_AGE_S:  # shed at once, not connections of all ages
            continue
        spread = ages.quantile(0.9) - ages.quantile(0.1)
        if spread < max(PEAK_MIN_AGE_S, 0.5 * ages.median()):
            continue  # a cohort that connected together and met one timer together: not a mass drop
        rows.append((pd.Timestamp(second, unit="s", tz="UTC"), count, open_then, count / max(open_then, count),
                     float(ages.median())))
    return pd.DataFrame(rows, columns=columns)


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

    # The records inside the incident window (LOG_COLUMNS); None when the input was too large to
    # hold and was summarized in parts (runbook.logs.pipeline).
    frame: pd.DataFrame | None
    outliers: pd.DataFrame  # records dated far outside it, set apart (the first ones when many)
    logs: LogMetrics | None  # None when no record was read
    state: StateMetrics | None  # None when no snapshot was read
    formats: list[str]
    # One per file read (or pattern that matched nothing): counts, notes, errors; its frame holds
    # the file's first records when read in parts.
    sources: list[ParsedLog]
    records: int = 0  # inside the window
    outlier_count: int = 0


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
        records=len(frame),
        outlier_count=len(window.outliers),
    )
