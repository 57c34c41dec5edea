"""The log pipeline: in memory, spread over buckets on disk, and on a Dask LocalCluster, the same
figures and the same diagnosis."""

from __future__ import annotations

import dataclasses
import gzip
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from runbook.diagnosis import diagnose
from runbook.logfiles import load_close_logs, plan_parts
from runbook.logs.metrics import observe_logs
from runbook.logs.pipeline import OUTLIERS_KEPT, _joined_parts, observe_close_logs
from runbook.observations import LogMetrics, Observations

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
SAMPLE_DIRS = sorted(p for p in SAMPLES.iterdir() if p.is_dir())
# Buckets small enough that each sample spreads over several of them.
SPREAD = {"memory_bytes": 0, "bucket_bytes": 20_000}


def sample_logs(folder: Path) -> list[str]:
    """The files of a sample that the runbook reads as close logs (not its config or notes)."""
    return [str(p) for p in sorted(folder.iterdir()) if p.suffix in (".log", ".jsonl", ".csv")]


def assert_same_metrics(expected: LogMetrics | None, actual: LogMetrics | None) -> None:
    assert (expected is None) == (actual is None)
    if expected is None:
        return
    for item in dataclasses.fields(LogMetrics):
        a, b = getattr(expected, item.name), getattr(actual, item.name)
        if isinstance(a, pd.DataFrame):
            if item.name == "reconnect_clients":  # one client per row, ties in any order
                a, b = a.sort_values("client", ignore_index=True), b.sort_values("client", ignore_index=True)
            if item.name == "reconnect_gaps":
                a, b = (t.sort_values(["client", "attempt"], ignore_index=True) for t in (a, b))
            pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False,
                                          obj=item.name)
        elif item.name == "lifetimes":
            assert np.array_equal(a.values, b.values) and np.array_equal(a.counts, b.counts)
        elif item.name in ("mobile", "turnover"):  # sums over parts: equal to rounding
            assert a == b or all(math.isclose(x, y, rel_tol=1e-9) for x, y in
                                 zip(dataclasses.astuple(a) if dataclasses.is_dataclass(a) else a,
                                     dataclasses.astuple(b) if dataclasses.is_dataclass(b) else b, strict=True)), item.name
        else:
            assert a == b, item.name


def ranking(metrics: LogMetrics | None) -> list[tuple[str, float]]:
    diagnosis = diagnose(Observations(logs=metrics))
    return [(r.cause.value, round(r.probability, 9)) for r in diagnosis.ranked]


@pytest.mark.parametrize("folder", SAMPLE_DIRS, ids=lambda p: p.name)
def test_pipeline_in_memory_matches_the_whole_frame_summary(folder: Path) -> None:
    """One bucket in memory: the same figures as summarizing the combined frame at once."""
    files = sample_logs(folder)
    whole = observe_logs(load_close_logs(files))
    piped = observe_close_logs(files)
    assert_same_metrics(whole.logs, piped.logs)
    assert piped.records == len(whole.frame) == len(piped.frame)
    assert [s.source for s in piped.sources] == [s.source for s in whole.sources]
    assert [(s.lines_total, s.records, s.malformed_count, s.ignored_lines) for s in piped.sources] == \
        [(s.lines_total, s.records, s.malformed_count, s.ignored_lines) for s in whole.sources]


@pytest.mark.parametrize("folder", SAMPLE_DIRS, ids=lambda p: p.name)
def test_buckets_on_disk_give_the_same_figures_and_diagnosis(folder: Path) -> None:
    """Spread over buckets written to disk, as a log larger than memory is: nothing changes."""
    files = sample_logs(folder)
    in_memory = observe_close_logs(files)
    spread = observe_close_logs(files, **SPREAD)
    assert spread.frame is None and spread.records == in_memory.records
    assert_same_metrics(in_memory.logs, spread.logs)
    assert ranking(spread.logs) == ranking(in_memory.logs)


def test_outliers_are_counted_and_the_first_ones_kept(tmp_path: Path) -> None:
    """Thousands of records with a clock in 1970 are all counted, the first OUTLIERS_KEPT kept."""
    good = (SAMPLES / "proxy_timeout" / "close-log.jsonl").read_text().splitlines() * 10
    bad = [line.replace('"ts": "2026', '"ts": "1970', 1) for line in good][: OUTLIERS_KEPT + 200]
    assert all('"1970' in line for line in bad)
    log = tmp_path / "mixed.jsonl"
    log.write_text("\n".join(good + bad + good[:5]) + "\n")
    for options in ({}, SPREAD):
        observed = observe_close_logs([str(log)], **options)
        assert observed.outlier_count == len(bad)
        assert len(observed.outliers) == OUTLIERS_KEPT
        assert observed.outliers["ts"].dt.year.eq(1970).all()
        assert observed.logs.window_start.year == 2026


def test_a_gzip_log_is_read_whole_in_buckets(tmp_path: Path) -> None:
    source = SAMPLES / "proxy_timeout" / "close-log.jsonl"
    packed = tmp_path / "close-log.jsonl.gz"
    packed.write_bytes(gzip.compress(source.read_bytes()))
    plain = observe_close_logs([str(source)])
    spread = observe_close_logs([str(packed)], **SPREAD)
    assert_same_metrics(plain.logs, spread.logs)


@pytest.mark.timeout(180)
def test_dask_local_cluster_gives_the_same_figures_and_diagnosis() -> None:
    """Two worker processes on a LocalCluster: the same frames and the same diagnosis as here."""
    pytest.importorskip("dask.distributed")
    files = [f for folder in SAMPLE_DIRS for f in sample_logs(folder) if "proxy_timeout" in f or "client_reconnect" in f]
    local = observe_close_logs(files)
    on_dask = observe_close_logs(files, dask_scheduler="local")
    assert on_dask.records == local.records
    assert_same_metrics(local.logs, on_dask.logs)
    assert ranking(on_dask.logs) == ranking(local.logs)
    pd.testing.assert_frame_equal(local.logs.per_minute, on_dask.logs.per_minute, check_dtype=False)


FORMATS = SAMPLES.parent / "formats"


@pytest.mark.parametrize("name", ["haproxy-http.log", "haproxy-tcp.log", "node-ws.log", "python-websockets.log",
                                  "tornado.log", "chrome-console.log"])
def test_real_format_samples_cut_into_small_parts(name: str, tmp_path: Path) -> None:
    """Records with an address and no user agent, multi-line records, malformed lines at the cuts:
    many tiny parts over buckets give the figures, counts and line numbers of one whole read."""
    log = tmp_path / name
    log.write_text((FORMATS / name).read_text() * 3 + "garbage that is no record\n{\"truncated\": \n")
    whole = observe_logs(load_close_logs([str(log)]))
    parts = observe_close_logs([str(log)], part_bytes=4096, **SPREAD)
    assert_same_metrics(whole.logs, parts.logs)
    (expected,), (actual,) = whole.sources, parts.sources
    assert (actual.lines_total, actual.records, actual.malformed_count, actual.ignored_lines) == \
        (expected.lines_total, expected.records, expected.malformed_count, expected.ignored_lines)
    assert [m.line_no for m in actual.malformed_examples] == [m.line_no for m in expected.malformed_examples]


@pytest.mark.timeout(120)
def test_an_unreachable_dask_scheduler_is_named() -> None:
    pytest.importorskip("dask.distributed")
    files = sample_logs(SAMPLES / "proxy_timeout")
    with pytest.raises(RuntimeError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9.*dask_scheduler"):
        observe_close_logs(files, dask_scheduler="tcp://127.0.0.1:9")


def test_a_client_lands_in_one_bucket_whatever_table_it_comes_from() -> None:
    """Client buckets hash the client's id, else its address and agent, value by value: two
    connection tables with different categories still send one client to one bucket, and a
    missing agent goes where an empty one does (metrics._client_key makes them one client)."""
    from runbook.logs.metrics import _client_key
    from runbook.logs.pipeline import _split_clients

    def table(rows: list[tuple[str | None, str | None, str | None]]) -> pd.DataFrame:
        columns = {name: pd.Categorical(pd.array(values, dtype="string"))
                   for name, values in zip(("client_id", "client_ip", "user_agent"), zip(*rows), strict=True)}
        return pd.DataFrame({"start": pd.Timestamp("2026-11-28", tz="UTC"), **columns})

    first = table([("u1", "10.0.0.1", "A"), (None, "10.0.0.2", "B"), (None, "10.0.0.3", None), (None, "10.0.0.4", "C")])
    second = table([(None, "10.0.0.4", "C"), ("u1", "10.0.0.9", "Z"), (None, "10.0.0.3", ""), (None, "10.0.0.2", "B"),
                    (None, None, None)])
    where: dict[str, set[int]] = {}
    for connections in (first, second):
        for bucket, rows in _split_clients(connections, 997):
            for key in _client_key(rows).dropna():
                where.setdefault(key, set()).add(bucket)
    assert set(where) == {"id u1", "10.0.0.2 | B", "10.0.0.3 | ", "10.0.0.4 | C"}
    assert all(len(buckets) == 1 for buckets in where.values()), where


def test_a_client_bucket_gets_only_the_text_its_rows_use() -> None:
    """A connection bucket's text columns know every address of the bucket; each client bucket
    is handed only the ones its rows use (else a 10 GB log's client buckets each united the
    addresses of every connection bucket: 1.2 GiB at a time)."""
    from runbook.logs.pipeline import _split_clients

    addresses = [f"10.0.{k // 250}.{k % 250}" for k in range(5_000)]
    connections = pd.DataFrame({"start": pd.Timestamp("2026-11-28", tz="UTC"),
                                "client_id": pd.Categorical(pd.array([None] * 5_000, dtype="string")),
                                "client_ip": pd.Categorical(pd.array(addresses, dtype="string")),
                                "user_agent": pd.Categorical(pd.array(["A", "B"] * 2_500, dtype="string"))})
    pieces = dict(_split_clients(connections, 50))
    assert len(pieces) > 40 and sum(len(rows) for rows in pieces.values()) == 5_000
    for rows in pieces.values():
        for column in ("client_ip", "user_agent"):
            assert set(rows[column].cat.categories) == set(rows[column].dropna()), column


def test_parts_on_threads_give_the_frame_and_figures_of_one_thread(tmp_path: Path) -> None:
    """Many small parts of several files parsed on three threads: the same frame, in the same
    order, the same figures and the same line numbers as one part after the other."""
    files = []
    for name in ("node-ws.log", "haproxy-http.log"):
        log = tmp_path / name
        log.write_text((FORMATS / name).read_text() * 4)
        files.append(str(log))
    files += sample_logs(SAMPLES / "client_reconnect_storm")
    one = observe_close_logs(files, part_bytes=4096, threads=1)
    three = observe_close_logs(files, part_bytes=4096, threads=3)
    assert len(plan_parts(files, part_bytes=4096)[0]) > 6
    pd.testing.assert_frame_equal(one.frame, three.frame)
    assert_same_metrics(one.logs, three.logs)
    assert [(s.lines_total, s.records, [m.line_no for m in s.malformed_examples]) for s in one.sources] == \
        [(s.lines_total, s.records, [m.line_no for m in s.malformed_examples]) for s in three.sources]


def test_parts_cut_for_threads_are_joined_again_for_buckets_on_disk(tmp_path: Path) -> None:
    """A run spread over buckets reads on one thread, in parts of PART_BYTES: the smaller parts
    planned for threads are joined at their cuts, which still begin records."""
    log = tmp_path / "node-ws.log"
    log.write_text((FORMATS / "node-ws.log").read_text() * 20)
    specs, _ = plan_parts([str(log)], part_bytes=4096)
    joined = _joined_parts(specs, 16_384)
    assert 1 < len(joined) < len(specs)
    assert [s.index for s in joined] == list(range(len(joined)))
    assert joined[0].start == 0 and joined[-1].end == specs[-1].end
    assert all(a.end == b.start for a, b in zip(joined, joined[1:]))
    assert {s.start for s in joined} <= {s.start for s in specs}
    assert all(s.end - s.start >= 16_384 for s in joined[:-1])
    whole = observe_close_logs([str(log)], threads=1)
    spread = observe_close_logs([str(log)], **SPREAD)  # default parts: planned small, joined
    assert_same_metrics(whole.logs, spread.logs)


@pytest.mark.parametrize("chosen", ["", "mimalloc", "system"])
def test_arrow_memory_pool_is_jemalloc_unless_chosen(chosen: str, tmp_path: Path) -> None:
    """Reading logs switches Arrow to its jemalloc pool (faster here, less memory), but a pool
    the user chose with ARROW_DEFAULT_MEMORY_POOL stays."""
    import os
    import subprocess
    import sys

    import pyarrow as pa

    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        pytest.skip("this pyarrow has no jemalloc pool")
    log = tmp_path / "close-log.jsonl"
    log.write_text('{"ts": "2026-11-28T03:00:01Z", "event": "connect", "connectionId": "a"}\n')
    script = ("import sys, pyarrow as pa; from runbook.logs.pipeline import observe_close_logs; "
              "observe_close_logs([sys.argv[1]]); print(pa.default_memory_pool().backend_name)")
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"} | (
        {"ARROW_DEFAULT_MEMORY_POOL": chosen} if chosen else {})
    out = subprocess.run([sys.executable, "-c", script, str(log)], env=env, capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert out.stdout.split()[-1] == (chosen or "jemalloc")
