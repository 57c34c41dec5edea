"""Build normalized close-log frames for unit tests of the metrics and the rules."""

from __future__ import annotations

import numpy as np
import pandas as pd

from runbook.observations import LOG_COLUMNS

T0 = pd.Timestamp("2026-11-28T03:00:00Z")
DESKTOP = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"
MOBILE = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) Mobile/15E148"


def frame(rows: list[dict]) -> pd.DataFrame:
    """A frame with exactly the LOG_COLUMNS dtypes from partial row dicts."""
    table = pd.DataFrame(rows)
    for column, dtype in LOG_COLUMNS.items():
        if column not in table:
            table[column] = None
        table[column] = table[column].astype(dtype)
    if "user_agent" in table:
        agents = table["user_agent"]
        table["is_mobile"] = agents.str.contains("Mobile|Android|iPhone|iPad", regex=True).astype("boolean")
    table["source"] = table["source"].fillna("test.log")
    table["line_no"] = pd.array(range(1, len(table) + 1), dtype="Int64")
    return table[list(LOG_COLUMNS)]


def sessions(
    clients: int,
    per_client: int,
    lifetime,
    gap=1.0,
    code=1006,
    reason="",
    agent=DESKTOP,
    ip_base="10.1",
    seed=0,
    start_spread=30.0,
) -> list[dict]:
    """Connect/disconnect rows: each client opens ``per_client`` connections one after another.

    ``lifetime`` and ``gap`` are numbers or callables ``(rng, client, k) -> seconds``.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for client in range(clients):
        start = T0 + pd.Timedelta(seconds=float(rng.uniform(0, start_spread)))
        for k in range(per_client):
            life = lifetime(rng, client, k) if callable(lifetime) else lifetime
            cid = f"{ip_base}-{client}-{k}"
            ip = f"{ip_base}.{client // 250}.{client % 250}"
            end = start + pd.Timedelta(seconds=life)
            rows.append(dict(ts=start, connection_id=cid, event="connect", client_ip=ip, user_agent=agent))
            rows.append(
                dict(ts=end, connection_id=cid, event="disconnect", code=code, reason=reason, duration_s=life, client_ip=ip, user_agent=agent)
            )
            pause = gap(rng, client, k) if callable(gap) else gap
            start = end + pd.Timedelta(seconds=pause)
    return rows
