"""From close-log paths to observations, part by part: the one entry point the runbook step, the
benchmarks and the accuracy corpus use.

A day of fleet logs does not fit in memory, and logs from hundreds of gateways should not be read
by one process. So the work runs as map and reduce tasks over parts, each holding about a part of
the input at a time (``runbook.logs.metrics`` explains the digests they return):

1. map, per part of a file (``runbook.logfiles.plan_parts``): parse it, count its lines, note how
   many records fell in each second (the incident window is decided from these), and hand its
   records to *connection buckets* by connection (every record of a connection in one bucket);
2. reduce, per connection bucket: set records outside the window apart, join each connection's
   records, and digest them; hand the connections to *client buckets* by client;
3. reduce, per client bucket: reconnects, lingering peers, affected clients;
4. add the digests up (``metrics.finish_metrics``).

Input up to ``MEMORY_BYTES`` (256 MiB) runs in one bucket held in memory (the frame of every record stays
available in the notebook as ``run.frame``); larger input spreads over buckets of about
``BUCKET_BYTES`` written as Parquet files in a scratch folder, deleted afterwards. With Dask
(``dask_scheduler``: a scheduler address, or "local" for a LocalCluster on this machine) the same
tasks run on the cluster's workers; the scratch folder and the log files must then be reachable
by the workers under the same paths (a shared file system; a LocalCluster always is).

Without Dask, input held in memory is read on one thread per CPU (up to ``LOCAL_THREADS``), in
parts of ``PART_BYTES`` shared among them; results come back in the tasks' order, so a run
gives the same frame and figures on any number of threads. Input spread over buckets on disk is
read on one thread, in parts of ``PART_BYTES``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from runbook.logfiles import PART_BYTES, PartSpec, count_notes, plan_parts, read_part
from runbook.logs import nginx
from runbook.logs.common import select_rows
from runbook.logs.metrics import (
    ClientDigest,
    ConnectionDigest,
    LogObservation,
    Window,
    finish_metrics,
    concat_tables,
    mass_candidates,
    merge_client_digests,
    merge_digests,
    no_connections,
    summarize_connections,
    summarize_clients,
    summarize_state,
)
from runbook.logs.registry import LogFormat
from runbook.logs.window import NS_PER_S, window_bounds
from runbook.observations import LOG_COLUMNS, STATE_COLUMNS, MalformedLine, ParsedLog, empty_log_frame, empty_state_frame

# Input (bytes on disk, a .gz counted at an assumed 8:1) up to this size is summarized in memory.
MEMORY_BYTES = 256 << 20
# Input bytes per bucket when larger: a bucket's records must fit in memory with room to spare.
BUCKET_BYTES = 64 << 20
GZIP_RATIO = 8
MALFORMED_EXAMPLES = 5  # per file, as the parsers keep them
OUTLIERS_KEPT = 1_000  # records dated far outside the window: all counted, this many kept to show
LOCAL_THREADS = 4  # more would hold more parts in memory at once for little gain
HEAD_RECORDS = 20  # first records of each file kept with its summary (the report quotes generic ones)


@dataclass
class PartResult:
    """What the map task of one part returns: small, whatever the size of the part."""

    spec: PartSpec
    lines: int = 0
    records: int = 0
    malformed: int = 0
    ignored: int = 0
    record_lines: int | None = 0
    examples: list[MalformedLine] = field(default_factory=list)  # line numbers relative to the part
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    bad_utf8: int = 0
    repeated: int = 0  # records repeating one of the same piece
    seconds: pd.DataFrame = field(default_factory=lambda: _seconds_table(np.array([], dtype=np.int64)))
    state: pd.DataFrame | None = None
    head: pd.DataFrame = field(default_factory=empty_log_frame)


@dataclass
class BucketResult:
    """What the reduce task of one connection bucket returns."""

    digest: ConnectionDigest
    kept: int  # records inside the window
    outliers: pd.DataFrame  # the first OUTLIERS_KEPT records outside it
    outlier_count: int
    frame: pd.DataFrame | None  # the bucket's records inside the window (in-memory runs only)


# --- where buckets live -----------------------------------------------------------------------


class MemoryStore:
    """Buckets held in this process: for input that fits in memory."""

    def __init__(self) -> None:
        self._frames: dict[tuple[str, int], list[tuple[int, pd.DataFrame]]] = {}

    def put(self, kind: str, bucket: int, order: int, frame: pd.DataFrame) -> None:
        self._frames.setdefault((kind, bucket), []).append((order, frame))

    def take(self, kind: str, bucket: int) -> list[pd.DataFrame]:
        return [frame for _, frame in sorted(self._frames.pop((kind, bucket), []), key=lambda item: item[0])]


@dataclass
class ParquetStore:
    """Buckets as Parquet files under ``root``: each task writes a file of its own per bucket,
    named by its order, and the reduce reads them in that order.

    No writer stays open across tasks: an open ParquetWriter keeps the metadata of every row
    group it wrote, which over 160 parts x 160 buckets of a 10 GB log grew by ~1 GiB.
    """

    root: str

    def put(self, kind: str, bucket: int, order: int, frame: pd.DataFrame) -> None:
        folder = Path(self.root) / kind / f"{bucket:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / f"{order:012d}.parquet",
                       compression="lz4")

    def take(self, kind: str, bucket: int) -> list[pd.DataFrame]:
        folder = Path(self.root) / kind / f"{bucket:05d}"
        frames = [pq.read_table(path).to_pandas() for path in sorted(folder.glob("*.parquet"))]
        shutil.rmtree(folder, ignore_errors=True)
        return frames


# --- the tasks ---------------------------------------------------------------------------------


def map_part(spec: PartSpec, order: int, buckets: int, store: MemoryStore | ParquetStore) -> PartResult:
    """Parse one part and hand its records to the connection buckets."""
    result = PartResult(spec)
    heads = []
    for piece_no, piece in enumerate(read_part(spec, notes_of_counts=False)):
        result.lines += piece.lines_total
        result.malformed += piece.malformed_count
        result.ignored += piece.ignored_lines
        result.record_lines = None if result.record_lines is None or piece.record_lines is None else result.record_lines + piece.record_lines
        result.examples.extend(piece.malformed_examples)
        result.notes.extend(piece.notes)
        result.error = result.error or piece.error
        result.bad_utf8 += piece.bad_utf8
        result.repeated += piece.repeated
        if piece.state is not None and len(piece.state):
            result.state = piece.state if result.state is None else pd.concat([result.state, piece.state], ignore_index=True)
        frame = piece.frame
        result.records += len(frame)
        if not len(frame):
            continue
        ns = frame["ts"].dropna().astype("int64").to_numpy()
        result.seconds = _add_seconds([result.seconds, _seconds_table(ns)])
        # a copy, not head: a head is a slice that keeps the whole piece's Arrow buffers alive
        heads.append(select_rows(frame, np.arange(len(frame)) < HEAD_RECORDS))
        frame = frame.assign(part=np.int32(order))
        for bucket, rows in _split(frame, buckets, spec.format):
            store.put("records", bucket, order * 10_000 + piece_no, rows)
    result.examples = result.examples[:MALFORMED_EXAMPLES]
    if heads:
        result.head = pd.concat(heads, ignore_index=True).head(HEAD_RECORDS)
    return result


def reduce_connections(bucket: int, store: MemoryStore | ParquetStore, low: int, high: int, window: Window,
                       join_nginx: bool, client_buckets: int, line_offsets: dict[int, int], keep_frame: bool) -> BucketResult:
    """Window, join and digest the records of one connection bucket; hand its connections on."""
    frames = store.take("records", bucket)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0] if frames else empty_log_frame().assign(part=np.int32(0))
    offsets = frame["part"].map(line_offsets).to_numpy(dtype=np.int64)
    frame = frame.drop(columns="part")
    if offsets.any():
        frame["line_no"] = frame["line_no"] + offsets
    if join_nginx:  # one session seen by the access and the error log is one row (see combine_logs)
        frame = nginx.join_error_closes(frame).reset_index(drop=True)
    ns = pd.DatetimeIndex(frame["ts"]).as_unit("ns").asi8
    known = frame["ts"].notna().to_numpy()
    outside = known & ((ns < low) | (ns > high))
    outliers = frame.head(0)
    if outside.any():
        outliers = select_rows(frame, outside).sort_values("ts", kind="stable").head(OUTLIERS_KEPT)
        frame = select_rows(frame, ~outside)
    # In ts order, records without one last (as combine_logs leaves them); most logs already are.
    if not (known.all() and frame["ts"].is_monotonic_increasing):
        frame = frame.sort_values("ts", kind="stable", na_position="last")
    frame = frame.reset_index(drop=True).astype(LOG_COLUMNS)
    timed = frame if known.all() else frame.dropna(subset=["ts"])
    digest, connections, attempts = summarize_connections(timed, window)
    for kind, table in (("connections", connections), ("attempts", attempts)):
        for target, rows in _split_clients(table, client_buckets):
            store.put(kind, target, bucket, rows)
    return BucketResult(digest, int((~outside).sum()), outliers.astype(LOG_COLUMNS),
                        int(outside.sum()), frame if keep_frame else None)


def reduce_clients(bucket: int, store: MemoryStore | ParquetStore, candidates: list[int]) -> ClientDigest:
    frames = store.take("connections", bucket)
    connections = concat_tables(frames) if frames else no_connections()
    attempts = store.take("attempts", bucket)
    return summarize_clients(connections, candidates, concat_tables(attempts) if attempts else None)


# --- splitting records and connections into buckets ---------------------------------------------


def _split(frame: pd.DataFrame, buckets: int, format_id: str | None) -> Iterator[tuple[int, pd.DataFrame]]:
    """Records by connection bucket: a connection's records share one bucket. nginx access and
    error lines are bucketed by client address instead, which joins them (combine_logs)."""
    if buckets == 1:
        yield 0, frame
        return
    by_address = format_id is not None and format_id.startswith((nginx.ACCESS_NAME, nginx.ERROR_NAME))
    key = frame["client_ip"] if by_address else frame["connection_id"]
    target = _hash_strings(key) % buckets
    alone = key.isna().to_numpy()
    target[alone] = np.arange(alone.sum()) % buckets  # without a key a record is its own connection
    yield from _groups(frame, target)


def _split_clients(connections: pd.DataFrame, buckets: int) -> Iterator[tuple[int, pd.DataFrame]]:
    """Connections (or failed handshakes) by client bucket: a client's rows share one bucket (its
    id, else its address and user agent, as metrics._client_key names it)."""
    if buckets == 1:
        yield 0, connections
        return
    # Hashed column by column (each distinct text once): the columns are categorical, and joining
    # them into one text per connection would make a Python string of every row.
    has_id = connections["client_id"].notna().to_numpy(dtype=bool)
    agents = _hash_strings(connections["user_agent"])
    agents[connections["user_agent"].isna().to_numpy(dtype=bool)] = _hash_strings(pd.Series([""]))[0]  # as _client_key
    by_address = _hash_strings(connections["client_ip"]) * np.uint64(0x9E3779B97F4A7C15) ^ agents
    target = np.where(has_id, _hash_strings(connections["client_id"]), by_address) % np.uint64(buckets)
    alone = ~has_id & connections["client_ip"].isna().to_numpy(dtype=bool)
    target[alone] = np.arange(alone.sum()) % buckets
    texts = [c for c in connections.columns if isinstance(connections[c].dtype, pd.CategoricalDtype)]
    for bucket, rows in _groups(connections, target):
        # Each text column carries every distinct value of its connection bucket: handed on whole,
        # the 149 client buckets of a 10 GB log each got all of them (1.2 GiB to unite, per bucket).
        yield bucket, rows.assign(**{c: rows[c].cat.remove_unused_categories() for c in texts})


def _hash_strings(values: pd.Series) -> np.ndarray:
    """A stable 64-bit hash per value (the same in every process), hashing each distinct value once."""
    codes, uniques = pd.factorize(values)
    hashed = pd.util.hash_array(np.asarray(uniques, dtype=object), categorize=False) if len(uniques) else np.array([], dtype=np.uint64)
    out = np.zeros(len(codes), dtype=np.uint64)
    out[codes >= 0] = hashed[codes[codes >= 0]]
    return out


def _groups(frame: pd.DataFrame, target: np.ndarray) -> Iterator[tuple[int, pd.DataFrame]]:
    target = target.astype(np.int64)
    order = np.argsort(target, kind="stable")  # stable: each bucket keeps the records' order
    bounds = np.searchsorted(target[order], np.arange(target.max(initial=0) + 2))
    for bucket in range(len(bounds) - 1):
        rows = order[bounds[bucket]:bounds[bucket + 1]]
        if len(rows):
            yield bucket, frame.iloc[rows]


def _seconds_table(ns: np.ndarray) -> pd.DataFrame:
    """Records per epoch second, with the first and last timestamp in it (the window's exact ends)."""
    table = pd.DataFrame({"second": ns // NS_PER_S, "ns": ns}).groupby("second", sort=True)["ns"].agg(["size", "min", "max"])
    return pd.DataFrame({"second": table.index.to_numpy(dtype=np.int64), "count": table["size"].to_numpy(dtype=np.int64),
                         "first_ns": table["min"].to_numpy(dtype=np.int64), "last_ns": table["max"].to_numpy(dtype=np.int64)})


def _add_seconds(tables: list[pd.DataFrame]) -> pd.DataFrame:
    tables = [t for t in tables if len(t)]
    if not tables:
        return _seconds_table(np.array([], dtype=np.int64))
    if len(tables) == 1:
        return tables[0]
    return (pd.concat(tables).groupby("second", as_index=False, sort=True)
            .agg(count=("count", "sum"), first_ns=("first_ns", "min"), last_ns=("last_ns", "max")))


# --- running the tasks --------------------------------------------------------------------------


class _Runner:
    """Runs tasks here, on ``threads`` threads (one: one after the other), or on a Dask cluster
    (``client``). Threads pay off because most of a parser's work (NumPy, Arrow) runs outside
    the GIL."""

    def __init__(self, client: Any = None, threads: int = 1) -> None:
        self.client = client
        self.threads = threads

    def run(self, calls: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> list[Any]:
        return list(self._results(calls, in_order=True))

    def fold(self, calls: list[tuple[Callable[..., Any], tuple[Any, ...]]], combine: Callable[[Any, Any], Any]) -> Any:
        """The results combined one by one (on Dask as they finish, so ``combine`` must not care
        about their order); one is held at a time, not one per task."""
        total = None
        for result in self._results(calls, in_order=False):
            total = result if total is None else combine(total, result)
        return total

    def _results(self, calls: list[tuple[Callable[..., Any], tuple[Any, ...]]], in_order: bool) -> Iterator[Any]:
        if self.client is not None:
            from dask.distributed import as_completed

            futures = [self.client.submit(function, *args, pure=False) for function, args in calls]
            yield from (self.client.gather(futures) if in_order else (f.result() for f in as_completed(futures)))
        elif self.threads <= 1 or len(calls) <= 1:
            yield from (function(*args) for function, args in calls)
        else:  # in the tasks' order, whatever finishes first: a local run gives the same result every time
            with concurrent.futures.ThreadPoolExecutor(self.threads, thread_name_prefix="ws-runbook-logs") as pool:
                futures = [pool.submit(function, *args) for function, args in calls]
                for at in range(len(futures)):
                    future, futures[at] = futures[at], None  # let go once handed on: results are not all held
                    yield future.result()


@contextlib.contextmanager
def _dask_client(scheduler: str) -> Iterator[Any]:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - dask is a dependency; a broken install says so
        raise RuntimeError(f"dask_scheduler is set but dask.distributed cannot be imported ({exc})") from exc
    if scheduler == "local":
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            yield client
    else:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise RuntimeError(f"cannot reach the Dask scheduler at {scheduler} ({exc}): check dask_scheduler, "
                               "or leave it empty to read the logs here") from exc
        with client:
            yield client


def observe_close_logs(
    patterns: list[str],
    *,
    log_format: str | Mapping[str, str] | None = None,
    log_timezone: str | None = None,
    extra_formats: Sequence[LogFormat] = (),
    dask_scheduler: str = "",
    memory_bytes: int = MEMORY_BYTES,
    bucket_bytes: int = BUCKET_BYTES,
    scratch_dir: str | None = None,
    part_bytes: int | None = None,
    threads: int | None = None,
) -> LogObservation:
    """Read, combine and summarize the close logs ``patterns`` name (paths or globs).

    Never raises on a bad file: each source comes back in ``LogObservation.sources`` with its
    counts, notes and error. ``dask_scheduler``: run the tasks on that Dask scheduler ("local":
    a LocalCluster of two worker processes); empty runs them in this process on ``threads``
    threads (default: one per CPU, up to LOCAL_THREADS). Parts are ``part_bytes`` long (default:
    PART_BYTES shared among the threads, so the bytes being parsed at once stay the same).
    """
    _use_jemalloc()
    threads = threads or local_threads()
    specs, sources = plan_parts(patterns, log_format=log_format, log_timezone=log_timezone, extra_formats=extra_formats,
                                part_bytes=part_bytes or max(PART_BYTES // threads, 1 << 20))
    size = sum(_input_bytes(spec) for spec in specs)
    buckets = 1 if size <= memory_bytes and not dask_scheduler else max(1, math.ceil(size / bucket_bytes))
    in_memory = buckets == 1 and not dask_scheduler
    if not in_memory:
        # Measured on 600 MB of JSON lines: threads gained nothing here (the Parquet round trips)
        # and held half as much memory again, and smaller parts only made more files.
        threads = 1
        if part_bytes is None:
            specs = _joined_parts(specs, PART_BYTES)
    with contextlib.ExitStack() as stack:
        if in_memory:
            store: MemoryStore | ParquetStore = MemoryStore()
        else:
            root = stack.enter_context(tempfile.TemporaryDirectory(prefix="ws-runbook-", dir=scratch_dir))
            store = ParquetStore(root)
        runner = _Runner(stack.enter_context(_dask_client(dask_scheduler)) if dask_scheduler else None, threads)
        parts = _map_parts(runner, specs, buckets, store)
        return _reduce(runner, parts, sources, store, buckets, keep_frame=in_memory)


def _joined_parts(specs: list[PartSpec], part_bytes: int) -> list[PartSpec]:
    """Neighbouring parts of a plain file joined up to about ``part_bytes``: every part begins
    where a record may begin, so dropping a cut between two of them is safe."""
    joined: list[PartSpec] = []
    for spec in specs:
        last = joined[-1] if joined else None
        if (last is not None and not spec.streamed and not last.streamed and last.source == spec.source
                and last.end == spec.start and last.end - last.start < part_bytes):
            joined[-1] = dataclasses.replace(last, end=spec.end)
        else:
            joined.append(dataclasses.replace(spec, index=len(joined), part_bytes=max(spec.part_bytes, part_bytes)))
    return joined


def _use_jemalloc() -> None:
    """Arrow's jemalloc pool for this process, unless ARROW_DEFAULT_MEMORY_POOL chose one or this
    pyarrow has none. Measured on 1M lines of each major format against pyarrow's default here
    (mimalloc): 9-20% less time and 20-55 MiB less peak RSS (benchmarks/README.md). It is a
    process-wide setting: the kernel's later Arrow work uses the same pool."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL") or pa.default_memory_pool().backend_name == "jemalloc":
        return
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:  # a build without jemalloc keeps its default
        pass


def local_threads() -> int:
    """The threads a local run uses: one per CPU this process may run on, up to LOCAL_THREADS."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, LOCAL_THREADS))


def _map_parts(runner: _Runner, specs: list[PartSpec], buckets: int, store: MemoryStore | ParquetStore) -> list[PartResult]:
    return runner.run([(map_part, (spec, order, buckets, store)) for order, spec in enumerate(specs)])


def _reduce(runner: _Runner, parts: list[PartResult], sources: list[ParsedLog], store: MemoryStore | ParquetStore,
            buckets: int, keep_frame: bool) -> LogObservation:
    seconds = _add_seconds([p.seconds for p in parts])
    offsets = _line_offsets(parts)
    _fill_sources(sources, parts, offsets)
    state = _states(parts)
    formats = sorted({s.format for s in sources if s.ok and s.format})
    if seconds.empty:
        low = high = 0
        window = Window(None, None)
    else:
        low, high = window_bounds(seconds["second"].to_numpy(), seconds["count"].to_numpy())
        inside = seconds[(seconds["second"] * NS_PER_S >= low) & (seconds["second"] * NS_PER_S <= high)]
        window = Window(pd.Timestamp(int(inside["first_ns"].iloc[0]), tz="UTC"),
                        pd.Timestamp(int(inside["last_ns"].iloc[-1]), tz="UTC"))
    join_nginx = {nginx.ERROR_NAME} <= set(formats) and any(f.startswith(nginx.ACCESS_NAME) for f in formats)
    order = list(range(buckets))
    reduced: BucketResult = runner.fold(
        [(reduce_connections, (b, store, low, high, window, join_nginx, buckets, offsets, keep_frame)) for b in order],
        _merge_buckets)
    candidates = mass_candidates([reduced.digest])
    clients: ClientDigest = runner.fold([(reduce_clients, (b, store, list(candidates))) for b in order],
                                        merge_client_digests)
    return LogObservation(
        frame=reduced.frame if keep_frame else None,
        outliers=reduced.outliers.reset_index(drop=True).astype(LOG_COLUMNS),
        logs=finish_metrics(window, [reduced.digest], [clients], candidates) if reduced.kept else None,
        state=summarize_state(state),
        formats=formats,
        sources=sources,
        records=reduced.kept,
        outlier_count=reduced.outlier_count,
    )


def _merge_buckets(a: BucketResult, b: BucketResult) -> BucketResult:
    outliers = pd.concat([t for t in (a.outliers, b.outliers) if len(t)] or [a.outliers], ignore_index=True)
    frame = None if a.frame is None or b.frame is None else pd.concat([a.frame, b.frame], ignore_index=True)
    return BucketResult(merge_digests(a.digest, b.digest), a.kept + b.kept,
                        outliers.sort_values("ts", kind="stable").head(OUTLIERS_KEPT), a.outlier_count + b.outlier_count, frame)


def _input_bytes(spec: PartSpec) -> int:
    if spec.end < 0:  # a .gz, read whole as a stream
        try:
            return Path(spec.source).stat().st_size * GZIP_RATIO
        except OSError:
            return 0
    return spec.end - spec.start


def _line_offsets(parts: list[PartResult]) -> dict[int, int]:
    """Lines before each part in its file, by the part's order: records are numbered per file."""
    offsets, before = {}, {}
    for order, part in enumerate(parts):
        offsets[order] = before.get(part.spec.source, 0)
        before[part.spec.source] = offsets[order] + part.lines
    return offsets


def _fill_sources(sources: list[ParsedLog], parts: list[PartResult], offsets: dict[int, int]) -> None:
    """Add each file's parts up into the summary ParsedLog ``plan_parts`` made for it."""
    by_source = {s.source: s for s in sources}
    counts: dict[str, list[int]] = {}
    for order, part in enumerate(parts):
        summary = by_source.get(part.spec.source)
        if summary is None:
            continue
        summary.lines_total += part.lines
        summary.record_count = (summary.record_count or 0) + part.records
        summary.malformed_count += part.malformed
        summary.ignored_lines += part.ignored
        summary.record_lines = None if summary.record_lines is None or part.record_lines is None else summary.record_lines + part.record_lines
        room = MALFORMED_EXAMPLES - len(summary.malformed_examples)
        summary.malformed_examples.extend(
            MalformedLine(example.line_no + offsets[order], example.text, example.problem) for example in part.examples[:max(room, 0)])
        summary.notes.extend(note for note in part.notes if note not in summary.notes)
        summary.error = summary.error or part.error
        total = counts.setdefault(part.spec.source, [0, 0, 0])
        total[0] += part.bad_utf8
        total[1] += part.repeated
        total[2] += 1
        if len(part.head) and len(summary.frame) < HEAD_RECORDS:
            head = part.head.assign(line_no=part.head["line_no"] + offsets[order])
            summary.frame = pd.concat([summary.frame, head], ignore_index=True).head(HEAD_RECORDS).astype(LOG_COLUMNS)
    for source, (bad_utf8, repeated, pieces) in counts.items():
        by_source[source].notes.extend(count_notes(bad_utf8, repeated, within_parts=pieces > 1))


def _states(parts: list[PartResult]) -> pd.DataFrame:
    frames = [p.state for p in parts if p.state is not None and len(p.state)]
    if not frames:
        return empty_state_frame()
    frame = pd.concat(frames, ignore_index=True)
    return frame.sort_values("ts", kind="stable", na_position="last").reset_index(drop=True).astype(STATE_COLUMNS)
