"""Server state saved to files: ``ss -tan`` / ``netstat -an`` snapshots and a CSV of RSS/fds.

These are not log rows: they come back in ``ParsedLog.state`` (``STATE_COLUMNS``: ts, metric,
value, port, source), with an empty log frame, as evidence for leaks when no live
``server_pid`` is reachable.

``sockets`` (``ss -tan``, ``ss -tanp``, ``netstat -an``/``-tan`` on Linux, ``netstat -an`` on
macOS and Windows): one or many snapshots in a file. A header line (``State Recv-Q ...``,
``Proto Recv-Q ...``, ``Active Internet connections``) or a line holding only a time (``date``
output, ``=== 2026-11-30T16:00:00Z ===``) starts a snapshot; the time of a snapshot is the last
time seen before its rows (NaT when the file has none). Each snapshot gives, per local port
that listens (or, without any LISTEN row, per local port with at least two sockets), the count of
sockets in every TCP state seen in the file (``tcp_ESTABLISHED``, ``tcp_CLOSE_WAIT``, ...; zero
when none), so CLOSE_WAIT growth shows from one snapshot to the next. ``lsof -i`` rows
(``TCP a:8080->b:51234 (CLOSE_WAIT)``) count too, and so do per-state counts as people paste them
(``CLOSE_WAIT 710`` from awk, ``6038 CLOSE_WAIT`` from ``uniq -c``): those have no port (<NA>).

``state_csv``: ``ts,port,rss_bytes,fds,threads,tcp_ESTABLISHED,tcp_CLOSE_WAIT`` (the lab
corpus) and common variants: ``time``/``timestamp``/``epoch`` (ISO 8601 or epoch s/ms), RSS as
``rss``/``rss_bytes``/``rss_kb``/``rss_kib``/``rss_mb``/``rss_mib``, ``fds``/``open_fds``/
``num_fds``, ``threads``/``num_threads``, ``open_connections``/``connections``/
``active_connections``, ``tcp_<STATE>`` counts; other columns (``pid``, ``cpu``...) are left.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable

import numpy as np

from runbook.logs.common import MalformedCollector, to_lines
from runbook.logs.lines import Malformed, epoch_to_iso, find_timestamp, parse_timezone, state_frame, timestamps_to_ns
from runbook.observations import ParsedLog, empty_log_frame

SOCKETS_NAME = "sockets"
CSV_NAME = "state_csv"

# ss prints "ESTAB", "CLOSE-WAIT", "FIN-WAIT-1"; netstat "ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT1";
# Windows "LISTENING". All become netstat's names.
_STATE_NAMES = {
    "ESTAB": "ESTABLISHED", "LISTENING": "LISTEN", "FIN-WAIT-1": "FIN_WAIT1", "FIN-WAIT-2": "FIN_WAIT2",
    "SYN-SENT": "SYN_SENT", "SYN-RECV": "SYN_RECV", "SYN_RCVD": "SYN_RECV", "CLOSE-WAIT": "CLOSE_WAIT",
    "TIME-WAIT": "TIME_WAIT", "LAST-ACK": "LAST_ACK", "CLOSING": "CLOSING", "FIN_WAIT_1": "FIN_WAIT1",
    "FIN_WAIT_2": "FIN_WAIT2",
}  # fmt: skip
_KNOWN_STATES = {
    "ESTABLISHED", "LISTEN", "FIN_WAIT1", "FIN_WAIT2", "SYN_SENT", "SYN_RECV", "CLOSE_WAIT", "TIME_WAIT",
    "LAST_ACK", "CLOSING", "CLOSED",
}  # fmt: skip
_ENDPOINT = r"(?:\[[0-9A-Fa-f:.%a-z]+\]|[0-9A-Fa-f:.*%a-z]+?)[:.](?:[0-9]+|\*)"
# ss -tan: State Recv-Q Send-Q Local:Port Peer:Port [Process]
_SS_ROW = re.compile(rf"^\s*([A-Z][A-Z0-9-]+)\s+[0-9]+\s+[0-9]+\s+({_ENDPOINT})\s+({_ENDPOINT})(?:\s.*)?$")
# netstat -an (Linux/macOS): Proto Recv-Q Send-Q Local Foreign State ; Windows: Proto Local Foreign State
_NETSTAT_ROW = re.compile(
    rf"^\s*(?:tcp[46]?|TCP)\s+(?:[0-9]+\s+[0-9]+\s+)?({_ENDPOINT})\s+({_ENDPOINT})\s+([A-Z][A-Z0-9_]+)(?:\s.*)?$"
)
# lsof -i: "... TCP 10.0.0.5:8080->10.0.0.9:51234 (ESTABLISHED)", "TCP *:8080 (LISTEN)"
_LSOF_ROW = re.compile(r"\bTCP (\S+?)(?:->(\S+))? \(([A-Z_0-9]+)\)\s*$")
# Counts per state as people paste them: "CLOSE_WAIT 710" (awk) or "   6038 CLOSE_WAIT" (uniq -c)
_SUMMARY_ROW = re.compile(r"^\s*(?:([A-Z][A-Z0-9_-]+)\s+([0-9]+)|([0-9]+)\s+([A-Z][A-Z0-9_-]+))\s*$")
_HEADER = re.compile(r"^\s*(?:State\s+Recv-Q|Netid\s+State|Proto\s+Recv-Q|Proto\s+Local|Active (?:Internet|Connections))")
_OTHER_SOCKET = re.compile(r"^\s*(?:udp[46]?|UDP|unix|raw[46]?|Active UNIX)\b")
_DATE_OUTPUT = re.compile(r"^[A-Z][a-z]{2} [A-Z][a-z]{2} +[0-9]{1,2} [0-9:]{8} (?:[A-Z]{2,5} )?[0-9]{4}$")  # date(1)


def _state_name(raw: str) -> str | None:
    name = _STATE_NAMES.get(raw, raw.replace("-", "_"))
    return name if name in _KNOWN_STATES else None


def _port(endpoint: str) -> int | None:
    tail = re.split(r"[:.]", endpoint)[-1]
    return int(tail) if tail.isdigit() else None


def _date_output_to_iso(line: str) -> str | None:
    if not _DATE_OUTPUT.match(line.strip()):
        return None
    parts = line.split()
    zone = parts[4] if len(parts) == 6 else None
    try:
        when = dt.datetime.strptime(f"{parts[1]} {parts[2]} {parts[3]} {parts[-1]}", "%b %d %H:%M:%S %Y")
    except ValueError:
        raise Malformed("date line is not a real date") from None
    return when.isoformat() + ("Z" if zone in ("UTC", "GMT") else "")


def _socket_row(line: str) -> tuple[str, int | None, int] | None:
    """(state, local port, count) of a TCP socket row or a per-state count line, or None."""
    found = _one_socket(line)
    if found is not None:
        return (*found, 1)
    if match := _SUMMARY_ROW.match(line):
        state = _state_name(match.group(1) or match.group(4))
        count = int(match.group(2) or match.group(3))
        return (state, None, count) if state else None
    return None


def _one_socket(line: str) -> tuple[str, int | None] | None:
    if match := _SS_ROW.match(line):
        state = _state_name(match.group(1))
        return (state, _port(match.group(2))) if state else None
    if match := _NETSTAT_ROW.match(line):
        state = _state_name(match.group(3))
        return (state, _port(match.group(1))) if state else None
    if match := _LSOF_ROW.search(line):
        state = _state_name(match.group(3))
        return (state, _port(match.group(1))) if state else None
    return None


def detect_sockets(sample: list[str]) -> float:
    if not sample:
        return 0.0
    rows = sum(1 for line in sample if _socket_row(line))
    headers = sum(1 for line in sample if _HEADER.match(line))
    if not rows:
        return 0.0
    return min(0.95, (rows + headers) / len(sample))


class SocketsFormat:
    NAME = SOCKETS_NAME
    STRUCTURAL = True
    WHOLE_FILE = True  # the ports that listen and the states seen are the whole file's: never cut into parts
    description = "ss -tan / netstat -an snapshots (socket counts per TCP state and port)"

    def detect(self, sample: list[str]) -> float:
        return detect_sockets(sample)

    def parse(self, lines: Iterable[str], source: str, *, timezone=None) -> ParsedLog:
        """Count sockets per snapshot, state and local port (see the module docstring)."""
        lines = to_lines(lines)
        malformed = MalformedCollector()
        snapshots: list[tuple[str | None, Counter]] = []
        current_ts: str | None = None
        current: Counter | None = None
        listening: set[int] = set()
        ignored = record_lines = 0
        for line_no, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            row = _socket_row(line)
            if row is not None:
                if current is None:
                    current = Counter()
                    snapshots.append((current_ts, current))
                state, port, count = row
                current[(state, port)] += count
                if state == "LISTEN" and port is not None:
                    listening.add(port)
                record_lines += 1
                continue
            try:
                stamp = _date_output_to_iso(line) or (find_timestamp(line) if len(line) < 80 else None)
            except Malformed as exc:
                malformed.add(line_no, line, str(exc))
                continue
            if stamp is not None or _HEADER.match(line):
                if stamp is not None:
                    current_ts = stamp
                current = None  # the next row starts a new snapshot
                record_lines += 1  # a snapshot boundary is part of the format, not unrelated text
            elif re.match(r"^\s*(?:tcp[46]?|TCP|ESTAB|LISTEN|CLOSE-WAIT|TIME-WAIT|SYN-)", line) and not _OTHER_SOCKET.match(line):
                malformed.add(line_no, line, "looks like a socket row but its columns do not parse")
            else:
                ignored += 1
        state = self._frame(snapshots, listening, source, timezone)
        return ParsedLog(
            source=source,
            format=self.NAME,
            frame=empty_log_frame(),
            lines_total=len(lines),
            ignored_lines=ignored,
            malformed_count=malformed.count,
            malformed_examples=malformed.examples,
            state=state,
            record_lines=record_lines,
        )

    @staticmethod
    def _frame(snapshots, listening, source, timezone):
        states = sorted({state for _, counts in snapshots for state, _ in counts})
        rows = []
        for ts, counts in snapshots:
            if listening:
                ports = set(listening)
            else:
                per_port: Counter = Counter()
                for (_, port), count in counts.items():
                    per_port[port] += count
                ports = {port for port, count in per_port.items() if count >= 2 and port is not None}
            if any(port is None for _, port in counts):
                ports.add(None)  # counts per state for the whole host (a pasted summary)
            for port in sorted(ports, key=lambda p: -1 if p is None else p):
                for name in states:
                    rows.append((ts, f"tcp_{name}", counts.get((name, port), 0), port))
        zone = timezone if isinstance(timezone, dt.tzinfo) else parse_timezone(timezone)
        ns, _ = timestamps_to_ns([r[0] for r in rows], zone)  # times were checked when read
        return state_frame(
            ts_ns=ns, metric=[r[1] for r in rows], value=[r[2] for r in rows], port=[r[3] for r in rows], source=source
        )


SOCKETS = SocketsFormat()


# --- the state CSV ---------------------------------------------------------------------------------

_TIME_COLUMNS = ("ts", "time", "timestamp", "datetime", "date", "epoch", "@timestamp")
_RSS_UNITS = {"rss": 1, "rss_bytes": 1, "rss_b": 1, "rss_kb": 1000, "rss_kib": 1024, "rss_k": 1024,
              "rss_mb": 1_000_000, "rss_mib": 1024**2, "rss_m": 1024**2, "memory_rss": 1, "vmrss_kb": 1024}  # fmt: skip
_METRIC_COLUMNS = {
    "fds": "fds", "open_fds": "fds", "num_fds": "fds", "fd_count": "fds", "open_files": "fds",
    "threads": "threads", "num_threads": "threads", "thread_count": "threads",
    "open_connections": "open_connections", "connections": "open_connections",
    "active_connections": "open_connections", "activeconnections": "open_connections",
}  # fmt: skip


def _columns(header: list[str]) -> tuple[int | None, int | None, dict[int, tuple[str, float]]]:
    names = [h.strip().lower() for h in header]
    time_index = next((i for i, n in enumerate(names) if n in _TIME_COLUMNS), None)
    port_index = next((i for i, n in enumerate(names) if n in ("port", "local_port", "server_port")), None)
    metrics: dict[int, tuple[str, float]] = {}
    for index, (name, raw) in enumerate(zip(names, header)):
        if name in _RSS_UNITS:
            metrics[index] = ("rss_bytes", _RSS_UNITS[name])
        elif name in _METRIC_COLUMNS:
            metrics[index] = (_METRIC_COLUMNS[name], 1)
        elif name.startswith("tcp_") and (state := _state_name(raw.strip()[4:].upper())):
            metrics[index] = (f"tcp_{state}", 1)
    return time_index, port_index, metrics


def _csv_fields(line: str) -> list[str]:
    try:
        return next(csv.reader([line]))
    except (csv.Error, StopIteration) as exc:
        raise Malformed(f"not a CSV row: {exc}") from None


def _csv_time(text: str) -> str:
    text = text.strip()
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", text):
        value = float(text)
        return epoch_to_iso(value / 1000 if value > 1e11 else value)  # ms when beyond year 5138 in s
    stamp = find_timestamp(text)
    if stamp is None:
        raise Malformed(f"time {text!r} is not ISO 8601 or epoch seconds")
    return stamp


def detect_csv(sample: list[str]) -> float:
    if len(sample) < 1 or "," not in sample[0]:
        return 0.0
    try:
        header = _csv_fields(sample[0])
    except Malformed:
        return 0.0
    time_index, _, metrics = _columns(header)
    return 0.95 if time_index is not None and metrics else 0.0


class StateCsvFormat:
    NAME = CSV_NAME
    STRUCTURAL = True
    WHOLE_FILE = True  # the header names the columns of every row: never cut into parts
    description = "CSV of server state over time (RSS, fds, threads, socket counts)"

    def detect(self, sample: list[str]) -> float:
        return detect_csv(sample)

    def parse(self, lines: Iterable[str], source: str, *, timezone=None) -> ParsedLog:
        lines = to_lines(lines)
        zone = timezone if isinstance(timezone, dt.tzinfo) else parse_timezone(timezone)
        malformed = MalformedCollector()
        rows: list[tuple[int, str, str, float, int | None]] = []
        header_at = next((i for i, line in enumerate(lines) if line.strip()), None)
        ignored = record_lines = 0
        try:
            header = _csv_fields(lines[header_at]) if header_at is not None else None
        except Malformed as exc:
            malformed.add(header_at + 1, lines[header_at], f"header: {exc}")
            header = None
        if header is not None:
            time_index, port_index, metrics = _columns(header)
            record_lines = 1
            for line_no, line in enumerate(lines[header_at + 1 :], start=header_at + 2):
                if not line.strip():
                    continue
                try:
                    fields = _csv_fields(line)
                    if len(fields) != len(header):
                        raise Malformed(f"{len(fields)} fields where the header has {len(header)}")
                    when = _csv_time(fields[time_index]) if time_index is not None else None
                    port_text = fields[port_index].strip() if port_index is not None else ""
                    port = int(port_text) if port_text.isdigit() else None
                    values = []
                    for index, (metric, factor) in metrics.items():
                        text = fields[index].strip()
                        if text in ("", "-", "NA", "nan"):
                            continue
                        values.append((metric, float(text) * factor))
                except (Malformed, ValueError) as exc:
                    malformed.add(line_no, line, str(exc) if isinstance(exc, Malformed) else f"not a number: {exc}")
                    continue
                record_lines += 1
                for metric, value in values:
                    socket_metric = metric.startswith("tcp_") or metric == "open_connections"
                    rows.append((line_no, when, metric, value, port if socket_metric else None))
        elif header_at is not None:  # no readable header: the rest cannot be read as state
            ignored = sum(1 for line in lines[header_at + 1 :] if line.strip())
        ns, bad = timestamps_to_ns([r[1] for r in rows], zone)
        for line_no in sorted({rows[i][0] for i in np.flatnonzero(bad)}):
            malformed.add(line_no, lines[line_no - 1], "timestamp is not a real date")
            record_lines -= 1
        keep = ~bad
        state = state_frame(
            ts_ns=ns[keep],
            metric=[r[2] for r, k in zip(rows, keep) if k],
            value=[r[3] for r, k in zip(rows, keep) if k],
            port=[r[4] for r, k in zip(rows, keep) if k],
            source=source,
        )
        return ParsedLog(
            source=source,
            format=self.NAME,
            frame=empty_log_frame(),
            lines_total=len(lines),
            ignored_lines=ignored,
            malformed_count=malformed.count,
            malformed_examples=malformed.examples,
            state=state,
            record_lines=record_lines,
        )


STATE_CSV = StateCsvFormat()
