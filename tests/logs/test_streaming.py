"""Issue 11, any size: files read in parts (``runbook.logfiles``) parse exactly as read whole.

Every registered format's real-format sample (``data/samples``, ``data/formats``; the documented
formats of the other tests where no real one exists) is tiled until it spans several 4 KiB
parts, then read in parts and read whole: the records, counts, malformed examples, line numbers
and server state must be the same, plain, with a log prefix on every line, with malformed lines
everywhere (so at the cuts too), as UTF-16, gzipped and gzipped then truncated. Then the plan
(cuts at record starts, detection from the head, windows only), the notes, and peak memory on a
~200 MB file in a fresh process.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pandas as pd
import pytest

import runbook.logfiles as logfiles
from runbook.logfiles import PartSpec, iter_log_parts, load_close_logs, plan_parts, read_part
from runbook.logs import FORMATS, nginx, parse_log
from runbook.logs.common import concat_frames
from tests.logs.test_balancers import ENVOY, TRAEFIK, _alb
from tests.logs.test_phrases import GO_LOG

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "data" / "samples"
FORMATS_DIR = ROOT / "data" / "formats"
PART = 4096

GENERIC_LOG = """\
Nov 30 16:00:00 host app[12]: starting
2026-11-30T16:00:01Z conn_id=a1b2c3 ws closed code=1006 duration=61.5s
[2026-11-30 16:00:02] socket 7f3e9a01 closed (1011) after 60012ms
2026-11-30T16:00:03Z client 10.0.0.9 pong timeout, terminating
  at handler (app.js:10) ws closed code=1001
2026-11-30T16:00:04Z user logged in
websocket connection closed: close 1000
2026-11-30T16:00:05Z heroku[router]: at=info method=GET path="/ws" host=a.example.com fwd="203.0.113.4" service=61000ms status=101
"""

# One sample per registered format: a real recording where there is one.
SAMPLE_OF: dict[str, Path | str] = {
    "node_monitor": SAMPLES / "proxy_timeout" / "server.log",
    "jsonlines": SAMPLES / "proxy_timeout" / "close-log.jsonl",
    "nginx_access": SAMPLES / "proxy_timeout" / "access.log",
    "nginx_error": SAMPLES / "proxy_timeout" / "error.log",
    "haproxy": FORMATS_DIR / "haproxy-http.log",
    "envoy": ENVOY + "\n",
    "traefik": TRAEFIK + "\n",
    "aws_alb": "\n".join([
        _alb("wss", "2026-11-30T16:01:00.000000Z", 101, "/ws", "2026-11-30T16:00:00.000000Z"),
        _alb("https", "2026-11-30T16:01:01.000000Z", 502, "/ws", "2026-11-30T16:01:01.000000Z"),
        _alb("https", "2026-11-30T16:01:02.000000Z", 200, "/index.html", "2026-11-30T16:01:02.000000Z"),
        "wss 2026-11-30T16:01:03.000000Z app/my-lb/1 truncated",
    ]) + "\n",
    "har": FORMATS_DIR / "chrome.har",
    "sockets": FORMATS_DIR / "ss-snapshots.txt",
    "state_csv": SAMPLES / "heartbeat_missing" / "server-state.csv",
    "python_websockets": FORMATS_DIR / "python-websockets.log",
    "tornado": FORMATS_DIR / "tornado.log",
    "node_ws": FORMATS_DIR / "node-ws.log",
    "go_websocket": GO_LOG,
    "browser_console": FORMATS_DIR / "chrome-console.log",
    "generic": GENERIC_LOG,
}
WHOLE_FILE = sorted(name for name in FORMATS if getattr(FORMATS[name], "WHOLE_FILE", False))
CONTAINER = "2026-11-30T16:00:00.123456789Z stdout F "


def sample_bytes(name: str) -> bytes:
    sample = SAMPLE_OF[name]
    return sample.read_bytes() if isinstance(sample, Path) else sample.encode()


def tiled(data: bytes, size: int = 40_000) -> bytes:
    """``data`` repeated until it spans ``size`` bytes (a format read whole is never tiled)."""
    data = data if data.endswith(b"\n") else data + b"\n"
    return data * max(1, -(-size // len(data)))


def variant(data: bytes, kind: str) -> bytes:
    if kind == "prefixed":  # what containerd writes before every line
        return b"".join(CONTAINER.encode() + line for line in data.splitlines(keepends=True))
    if kind == "malformed":  # half of every other line after it, between records: broken lines beside every cut
        lines = data.splitlines(keepends=True)
        out = []
        for number, line in enumerate(lines):
            out.append(line)
            if number % 2 and not lines[min(number + 1, len(lines) - 1)].startswith((b" ", b"\t", b"}")):
                out.append(line[: len(line) // 2].rstrip(b"\r\n") + b"\n")
        return b"".join(out)
    return data


def pieces_of(path: Path, name: str, part_bytes: int = PART) -> list:
    pieces = list(iter_log_parts([str(path)], log_format=name, part_bytes=part_bytes))
    assert all(p.error is None for p in pieces), [p.error for p in pieces]
    return pieces


def assert_same(whole, pieces) -> None:
    """The pieces, put together, are what the whole text parsed at once gave."""
    frame = concat_frames([p.frame for p in pieces])
    pd.testing.assert_frame_equal(frame.reset_index(drop=True), whole.frame.reset_index(drop=True))
    assert sum(p.lines_total for p in pieces) == whole.lines_total
    assert sum(p.malformed_count for p in pieces) == whole.malformed_count
    assert sum(p.ignored_lines for p in pieces) == whole.ignored_lines
    record_lines = None if any(p.record_lines is None for p in pieces) else sum(p.record_lines for p in pieces)
    assert record_lines == whole.record_lines
    assert [e for p in pieces for e in p.malformed_examples][:5] == whole.malformed_examples
    states = [p.state for p in pieces if p.state is not None and len(p.state)]
    if whole.state is None or not len(whole.state):
        assert not states
    else:
        pd.testing.assert_frame_equal(pd.concat(states, ignore_index=True), whole.state.reset_index(drop=True))
    for before, after in zip(pieces, pieces[1:]):  # pieces follow each other, line by line
        assert after.first_line == before.first_line + before.line_span
    assert pieces[0].first_line == 1


def test_every_format_has_a_sample():
    """The tests below cover every format of the registry."""
    assert set(SAMPLE_OF) == set(FORMATS)


@pytest.mark.parametrize("kind", ["plain", "prefixed", "malformed"])
@pytest.mark.parametrize("name", sorted(FORMATS))
def test_parts_parse_as_the_whole_file(tmp_path, name, kind):
    """A file in 4 KiB parts gives what it gives read at once: records, counts, examples, lines."""
    data = sample_bytes(name) if name in WHOLE_FILE else tiled(sample_bytes(name))
    data = variant(data, kind)
    path = tmp_path / f"{name}.log"
    path.write_bytes(data)
    whole = parse_log(data, str(path), format=name)
    pieces = pieces_of(path, name)
    assert_same(whole, pieces)
    if name in WHOLE_FILE:
        assert len(pieces) == 1  # never cut
    else:
        assert len(pieces) >= 4
        assert whole.records > 0 or kind == "prefixed"  # a prefix some formats do not read
        assert whole.malformed_count + whole.ignored_lines > 0 or kind != "malformed"
    (loaded,) = load_close_logs([str(path)], log_format=name, part_bytes=PART)
    pd.testing.assert_frame_equal(loaded.frame, whole.frame)
    counts = ("lines_total", "malformed_count", "ignored_lines", "record_lines")
    assert [getattr(loaded, c) for c in counts] == [getattr(whole, c) for c in counts]


@pytest.mark.parametrize("kind", ["gzip", "truncated gzip", "utf-16"])
@pytest.mark.parametrize("name", sorted(FORMATS))
def test_streams_parse_as_the_whole_file(tmp_path, name, kind):
    """A .gz (whole or cut short) and a UTF-16 file, read as a stream in 4 KiB pieces, give what
    their text gives parsed at once; a truncated .gz says where it broke."""
    text = sample_bytes(name) if name in WHOLE_FILE else tiled(sample_bytes(name))
    if kind == "utf-16":
        path = tmp_path / f"{name}.log"
        path.write_bytes(text.decode("utf-8").encode("utf-16"))
        reference = text.decode("utf-8")
    else:
        packed = gzip.compress(text, mtime=0, compresslevel=0 if kind == "truncated gzip" else 9)
        if kind == "truncated gzip":  # stored, not compressed: two thirds of the bytes are two thirds of the text
            packed = packed[: len(packed) * 2 // 3]
            reference = zlib.decompressobj(wbits=31).decompress(packed)
        else:
            reference = text
        path = tmp_path / f"{name}.log.gz"
        path.write_bytes(packed)
    whole = parse_log(reference, str(path), format=name)
    pieces = pieces_of(path, name)
    assert_same(whole, pieces)
    assert len(pieces) == 1 if name in WHOLE_FILE else len(pieces) >= 3
    (spec,), _ = plan_parts([str(path)], log_format=name, part_bytes=PART)
    if kind == "utf-16":
        assert (spec.start, spec.end, spec.encoding) == (0, path.stat().st_size, "utf-16")
        assert "decoded as UTF-16 (byte order mark)" in pieces[0].notes
    else:
        assert (spec.start, spec.end) == (0, -1)
    if kind == "truncated gzip":
        assert "the gzip stream ends early" in pieces[-1].notes[0]
        (loaded,) = load_close_logs([str(path)], log_format=name, part_bytes=PART)
        assert loaded.notes[0].startswith("the gzip stream ends early") and loaded.lines_total == whole.lines_total


@pytest.mark.parametrize("name", sorted(set(FORMATS) - set(WHOLE_FILE)))
def test_detection_from_the_head_is_the_whole_files(tmp_path, name):
    """plan_parts decides the format once, from the head: the same format and confidence as
    detection over the whole file."""
    data = tiled(sample_bytes(name), 1_500_000)  # more than the head read first (1 MiB)
    path = tmp_path / "big.log"
    path.write_bytes(data)
    whole = parse_log(data, str(path))
    specs, (summary,) = plan_parts([str(path)], part_bytes=1 << 19)
    assert (summary.format, summary.confidence) == (whole.format, whole.confidence)
    assert {spec.format for spec in specs} == {whole.format} and len(specs) >= 2


def test_cuts_fall_at_record_starts_about_a_part_apart(tmp_path):
    """The parts of a plain file follow each other, cover it, begin at a line where the format's
    records may begin, and are about part_bytes long."""
    path = tmp_path / "server.log"
    path.write_bytes(tiled(sample_bytes("node_monitor"), 400_000))
    data = path.read_bytes()
    specs, _ = plan_parts([str(path)], part_bytes=16_384)
    assert specs[0].start == 0 and specs[-1].end == len(data) and len(specs) > 15
    assert [s.index for s in specs] == list(range(len(specs)))
    for before, after in zip(specs, specs[1:]):
        assert before.end == after.start and data[after.start - 1 : after.start] == b"\n"
        line = data[after.start : data.index(b"\n", after.start)].decode()
        assert FORMATS["node_monitor"].RECORD_START.match(line), line
        assert 16_384 <= after.start - before.start < 16_384 + 4096
    continuation = next(i for i, line in enumerate(data.decode().split("\n")) if line.startswith("  "))
    assert not FORMATS["node_monitor"].RECORD_START.match(data.decode().split("\n")[continuation])


def test_library_logs_cut_only_where_nothing_waits(tmp_path):
    """A python websockets log is never cut between a keepalive timeout and the close text that
    completes it, nor before a line without a time of its own (a traceback)."""
    lines = sample_bytes("python_websockets").decode().split("\n")
    rule = FORMATS["python_websockets"].record_start
    waiting = next(i for i, line in enumerate(lines) if "timed out waiting for keepalive pong" in line)
    completed = next(i for i, line in enumerate(lines) if "ConnectionClosedError: sent 1011" in line)
    start = rule(lines, waiting + 1)
    assert start is not None and start > completed
    traceback = next(i for i, line in enumerate(lines) if line.startswith("Traceback"))
    assert rule(lines, traceback) > traceback


def test_plan_reads_windows_not_whole_files(tmp_path, monkeypatch):
    """Planning a 20 MB file reads its head, a window around each cut and its end: not the file."""
    path = tmp_path / "close-log.jsonl"
    path.write_bytes(tiled(sample_bytes("jsonlines"), 20_000_000))
    read = []

    class Counting:
        def __init__(self, *args, **kwargs):
            self.handle = open(*args, **kwargs)  # noqa: SIM115 - closed by __exit__

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def read(self, size=-1):
            data = self.handle.read(size)
            read.append(len(data))
            return data

        def seek(self, *args):
            return self.handle.seek(*args)

    monkeypatch.setattr(logfiles, "open", Counting, raising=False)
    specs, _ = plan_parts([str(path)], part_bytes=1 << 20)
    assert len(specs) >= 19
    assert sum(read) < path.stat().st_size / 5


def test_file_larger_than_the_old_cap_is_read_whole(tmp_path):
    """Nothing is left out any more: every record of a file many parts long, numbered by its line."""
    data = tiled(sample_bytes("jsonlines"), 1_000_000)
    path = tmp_path / "close-log.jsonl"
    path.write_bytes(data)
    (parsed,) = load_close_logs([str(path)], part_bytes=PART)
    lines = data.count(b"\n")
    assert parsed.records == lines and parsed.frame["line_no"].tolist() == list(range(1, lines + 1))
    assert not any("left out" in note for note in parsed.notes)


def test_a_cap_is_still_there_for_who_asks(tmp_path):
    """max_bytes keeps the newest bytes of a file from a record start, and says what was left out."""
    lines = sample_bytes("jsonlines").splitlines(keepends=True)
    path = tmp_path / "close-log.jsonl"
    path.write_bytes(b"".join(lines))
    cap = sum(len(line) for line in lines[-100:]) + 10
    (parsed,) = load_close_logs([str(path)], max_bytes=cap)
    assert parsed.records == 100 and parsed.frame["line_no"].max() == 100
    assert "read only its newest" in parsed.notes[0]
    gz = tmp_path / "close-log.jsonl.gz"
    gz.write_bytes(gzip.compress(b"".join(lines)))
    (parsed,) = load_close_logs([str(gz)], max_bytes=cap * 4)
    assert 0 < parsed.records < len(lines) and parsed.frame["line_no"].min() == 1
    assert parsed.frame["ts"].max() == pd.Timestamp(json.loads(lines[-1])["ts"])
    assert parsed.notes[0].startswith("decompresses to over")


def test_a_document_too_big_to_read_whole_fails_naming_its_size(tmp_path, monkeypatch):
    """A HAR is never cut; one over WHOLE_FILE_MAX_BYTES is an error naming its size, plain or .gz."""
    monkeypatch.setattr(logfiles, "WHOLE_FILE_MAX_BYTES", 4096)
    path = tmp_path / "chrome.har"
    path.write_bytes(sample_bytes("har"))
    specs, (summary,) = plan_parts([str(path)])
    assert specs == [] and "is 9301 bytes: a har file is read whole" in summary.error
    packed = tmp_path / "chrome.har.gz"
    packed.write_bytes(gzip.compress(sample_bytes("har")))
    (parsed,) = load_close_logs([str(packed)])
    assert parsed.records == 0 and "decompresses to over" in parsed.error and "a har file is read whole" in parsed.error


def test_utf16_without_a_byte_order_mark_is_streamed(tmp_path):
    """UTF-16 guessed from its zero bytes is decoded piece by piece as it is read."""
    text = tiled(sample_bytes("jsonlines"), 60_000).decode()
    path = tmp_path / "close-log.jsonl"
    path.write_bytes(text.encode("utf-16-le"))
    pieces = list(iter_log_parts([str(path)], part_bytes=PART))
    assert_same(parse_log(text, str(path), format="jsonlines"), pieces)
    assert len(pieces) > 10 and pieces[0].notes[0].startswith("decoded as UTF-16-LE")


def test_repeated_records_are_exact_repeats_only():
    """A record repeats another only when every field is the same: records sharing a time but
    not their reason or lifetime are not repeats; the count equals comparing whole records."""
    from runbook.logfiles import _RECORD_COLUMNS, _repeated
    from tests.frames import T0, frame

    rows = [dict(ts=T0 + pd.Timedelta(seconds=k % 10), event="disconnect", code=1006, duration_s=float(k % 4),
                 reason=f"r{k % 3}") for k in range(200)]  # the same record every 60
    # ...and records alone in their second, which the check leaves out before comparing
    rows += [dict(ts=T0 + pd.Timedelta(hours=1, seconds=k), event="disconnect", code=1006) for k in range(50)]
    records = frame(rows)
    expected = int(records[list(_RECORD_COLUMNS)].duplicated().sum())
    assert expected == 140  # 60 distinct records, many sharing a time
    assert _repeated(records) == expected
    assert _repeated(records.drop_duplicates(list(_RECORD_COLUMNS))) == 0


def test_notes_per_part_and_per_file(tmp_path):
    """Bad bytes are counted per piece and added up per file; repeated records are counted within
    a part by read_part and over the whole file by load_close_logs; a second format at the end is
    flagged by the plan (a plain file) or by the last piece (a .gz)."""
    lines = sample_bytes("jsonlines").splitlines(keepends=True)[:200]
    body = b"".join(lines[:100]) + b'{"event": "x", "reason": "caf\xe9"}\n' + lines[100] * 3 + b"".join(lines[101:])
    path = tmp_path / "close-log.jsonl"
    path.write_bytes(body * 2)
    pieces = list(iter_log_parts([str(path)], part_bytes=PART))
    assert sum(p.bad_utf8 for p in pieces) == 2
    assert sum("byte sequences are not UTF-8" in note for p in pieces for note in p.notes) == 2
    assert sum("of the same part of the file" in note for p in pieces for note in p.notes) == 2  # the 3 copies
    (loaded,) = load_close_logs([str(path)], part_bytes=PART)
    assert "2 byte sequences are not UTF-8: shown as \ufffd" in loaded.notes
    assert f"{loaded.records - 200} records repeat an earlier record exactly" in " ".join(loaded.notes)

    mixed = tiled(sample_bytes("jsonlines"), 300_000) + tiled(sample_bytes("nginx_access"), 150_000)
    plain = tmp_path / "mixed.log"
    plain.write_bytes(mixed)
    _, (summary,) = plan_parts([str(plain)], part_bytes=PART)
    assert summary.notes == [
        "the end of the file looks like nginx_access, not jsonlines: a second format inside one file; "
        "only its jsonlines records were read (split the file, one format each)"
    ]
    packed = tmp_path / "mixed.log.gz"
    packed.write_bytes(gzip.compress(mixed))
    pieces = list(iter_log_parts([str(packed)], part_bytes=1 << 16))
    assert len(pieces) > 3 and summary.notes[0] in pieces[-1].notes
    assert not any(summary.notes[0] in p.notes for p in pieces[:-1])


def test_iter_log_parts_keeps_the_order_and_the_failures(tmp_path):
    """Sources come in load_close_logs order; a failed one as its summary, a file given twice once
    (its first piece says so), line numbers per file."""
    first = tmp_path / "a.jsonl"
    first.write_bytes(tiled(sample_bytes("jsonlines"), 20_000))
    second = tmp_path / "b.log"
    second.write_bytes(tiled(sample_bytes("nginx_access"), 20_000))
    (tmp_path / "folder").mkdir()
    pieces = list(iter_log_parts([str(first), str(tmp_path / "missing.log"), str(tmp_path / "folder"), str(second),
                                  str(first)], part_bytes=PART))
    order = list(dict.fromkeys(p.source for p in pieces))
    assert order == [str(first), str(tmp_path / "missing.log"), str(tmp_path / "folder"), str(second)]
    assert "given again: read once" in pieces[0].notes
    failed = [p for p in pieces if p.error]
    assert len(failed) == 2 and "does not exist" in failed[0].error and "is a folder" in failed[1].error
    for source in (str(first), str(second)):
        frame = concat_frames([p.frame for p in pieces if p.source == source])
        assert frame["line_no"].is_monotonic_increasing and frame["line_no"].iloc[0] == 1
    assert [s.source for s in load_close_logs([str(first), str(tmp_path / "missing.log"), str(tmp_path / "folder"),
                                               str(second), str(first)], part_bytes=PART)] == order


def test_a_spec_travels_to_another_process(tmp_path):
    """A PartSpec pickles, with an nginx log_format compiled from the proxy config, and reads the
    same there."""
    custom = nginx.access_format('$remote_addr [$time_local] "$request" $status $request_time', "nginx_access:short")
    lines = [f'203.0.113.{i % 200} [30/Nov/2026:16:00:{i % 60:02d} +0000] "GET /live HTTP/1.1" 101 {i / 10:.1f}\n'
             for i in range(400)]
    path = tmp_path / "access.log"
    path.write_text("".join(lines))
    specs, (summary,) = plan_parts([str(path)], extra_formats=[custom], part_bytes=PART)
    assert summary.format == "nginx_access:short" and len(specs) > 3
    copies = pickle.loads(pickle.dumps(specs))
    assert all(isinstance(spec, PartSpec) and spec.parser is not None for spec in copies)
    records = sum(piece.records for spec in copies for piece in read_part(spec))
    assert records == 400


def test_peak_memory_stays_bounded_on_a_200_mb_file(tmp_path):
    """~200 MB of JSON lines read with iter_log_parts, each piece dropped once counted: peak RSS
    of a fresh process (os.wait4) stays under 600 MiB, and no record is lost (about 10-20 s)."""
    line = (b'{"ts": "2026-11-28T03:00:01.123Z", "event": "disconnect", "connectionId": "c%07d", "code": 1006, '
            b'"reason": "", "duration": 60012, "ip": "203.0.113.7", "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone '
            b'OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"}\n')
    block = b"".join(line % i for i in range(100_000))
    path = tmp_path / "big.jsonl"
    with open(path, "wb") as handle:
        for _ in range(200_000_000 // len(block) + 1):
            handle.write(block)
    expected = (200_000_000 // len(block) + 1) * 100_000
    reader = textwrap.dedent(f"""
        from runbook.logfiles import iter_log_parts
        records = lines = 0
        for piece in iter_log_parts([{str(path)!r}]):
            records += piece.records
            lines += piece.line_span
            del piece
        print(records, lines)
    """)
    # A small launcher process: Linux carries a parent's peak RSS into a child's ru_maxrss, so
    # the reader must not be a child of pytest.
    launcher = textwrap.dedent(f"""
        import os, subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", {reader!r}], stdout=subprocess.PIPE, cwd={str(ROOT)!r})
        out = child.stdout.read().decode()
        _, status, usage = os.wait4(child.pid, 0)
        print(out.strip(), status, usage.ru_maxrss)
    """)
    result = subprocess.run([sys.executable, "-c", launcher], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    records, lines, status, peak_kib = map(int, result.stdout.split())
    assert status == 0, result.stderr
    assert records == lines == expected
    assert peak_kib < 600 * 1024, f"peak RSS {peak_kib // 1024} MiB"
