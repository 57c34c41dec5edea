"""Tests of runbook.logs.jsonlines on JSON-lines close logs as real producers write them."""

from __future__ import annotations

import json
import math

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from runbook.logs import jsonlines
from runbook.logs.common import parse_timestamps, to_lines
from runbook.logs.jsonlines import classify_event, epoch_to_ns
from runbook.observations import LOG_COLUMNS

TS = "2026-11-28T03:00:01.123Z"
ANDROID = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36"


def parse(lines):
    return jsonlines.parse(lines, "close-log.jsonl")


def dumps(record: dict) -> str:
    return json.dumps(record)


def rows(result) -> list[dict]:
    """The frame's rows as dicts of typed scalars (<NA> stays <NA>)."""
    frame = result.frame
    return [{name: frame[name].iloc[k] for name in frame.columns} for k in range(len(frame))]


def test_usual_record_fills_every_column():
    """A connect and a disconnect with the usual names fill the normalized columns, in file order."""
    result = parse([
        dumps({"ts": TS, "event": "connect", "connectionId": "a1", "ip": "10.0.0.7", "userAgent": ANDROID}),
        dumps({"ts": TS, "event": "disconnect", "connectionId": "a1", "code": 1006, "reason": "", "duration": 60012}),
    ])
    connect, disconnect = rows(result)
    assert connect["event"] == "connect" and connect["client_ip"] == "10.0.0.7" and connect["user_agent"] == ANDROID
    assert connect["is_mobile"] == True and connect["code"] is pd.NA  # noqa: E712
    assert disconnect["code"] == 1006 and disconnect["reason"] == "" and disconnect["duration_s"] == pytest.approx(60.012)
    assert disconnect["ts"] == pd.Timestamp(TS) and disconnect["line_no"] == 2 and disconnect["source"] == "close-log.jsonl"
    assert result.format == "jsonlines" and result.ignored_lines == 0 and result.malformed_count == 0
    assert {name: str(dtype) for name, dtype in result.frame.dtypes.items()} == LOG_COLUMNS


@pytest.mark.parametrize(
    "record",
    [
        {"ts": TS, "event": "disconnect", "connectionId": "c", "code": 1001, "reason": "bye", "duration": 1500, "ip": "1.2.3.4", "userAgent": "ua"},
        {"timestamp": TS, "type": "close", "connection_id": "c", "closeCode": 1001, "closeReason": "bye", "duration_ms": 1500, "remoteAddress": "1.2.3.4", "user_agent": "ua"},
        {"time": TS, "msg": "connection closed", "id": "c", "close_code": 1001, "close_reason": "bye", "duration_s": 1.5, "client_ip": "1.2.3.4", "ua": "ua"},
        {"@timestamp": TS, "message": "WebSocket disconnect:", "connId": "c", "code": "1001", "reason": "bye", "durationMs": 1500, "remote_addr": "1.2.3.4", "ua": "ua"},
        {"ts": TS, "connectionId": "c", "code": 1001, "reason": "bye", "duration": 1500.0, "ip": "1.2.3.4", "ua": "ua"},
    ],
    ids=["camel", "snake-close", "msg", "message", "no-event"],
)
def test_field_name_variants_give_the_same_row(record):
    """Every supported spelling of the fields gives the same normalized row."""
    (row,) = rows(parse([dumps(record)]))
    assert (row["ts"], row["event"], row["connection_id"], row["code"], row["reason"]) == (
        pd.Timestamp(TS), "disconnect", "c", 1001, "bye"
    )
    assert (row["duration_s"], row["client_ip"], row["user_agent"]) == (1.5, "1.2.3.4", "ua")


@pytest.mark.parametrize(
    "text, event",
    [
        ("disconnect", "disconnect"), ("close", "disconnect"), ("closed", "disconnect"),
        ("connection closed", "disconnect"), ("socket_closed", "disconnect"), ("WebSocket disconnect:", "disconnect"),
        ("connect", "connect"), ("open", "connect"), ("connected", "connect"), ("onopen", "connect"),
        ("error", "error"), ("handshake failed", "error"), ("message", None), ("ping", None),
    ],
)
def test_event_words(text, event):
    """Event names and messages map to connect, disconnect or error ("disconnect" is not "connect")."""
    assert classify_event(text) == event


def test_which_objects_are_records():
    """A close code without an event is a disconnect; other application objects are ignored lines."""
    result = parse([
        dumps({"ts": TS, "code": 1000}),
        dumps({"ts": TS, "event": "message", "code": 200}),
        dumps({"level": "info", "msg": "server started", "port": 8080}),
        dumps({"ts": TS, "type": "ws", "msg": "connection opened", "connectionId": "o"}),
        "Listening on {port: 8080}",
        "plain text",
        "",
        "   ",
    ])
    assert result.frame["event"].tolist() == ["disconnect", "connect"]
    assert result.frame["line_no"].tolist() == [1, 4]
    assert result.ignored_lines == 4 and result.malformed_count == 0 and result.lines_total == 8


def test_prose_with_braces_is_ignored_not_malformed():
    """A line like "{port: 8080}" is application prose, ignored whether or not other lines have prefixes."""
    good = dumps({"ts": TS, "event": "close", "code": 1000})
    for lines in ([good, "{port: 8080}"], [good, "{port: 8080}", "x {port: 8080}"]):
        result = parse(lines)
        assert len(result.frame) == 1 and result.malformed_count == 0 and result.ignored_lines == len(lines) - 1


def test_null_code_is_na_and_odd_codes_are_kept():
    """A null or absent code is <NA>, never 0; unused codes are kept as logged, impossible ones malformed."""
    result = parse([dumps({"ts": TS, "event": "close", "code": c}) for c in (None, 0, 999, 65535, 2**40, -1, 99999)])
    assert result.frame["code"].tolist() == [pd.NA, 0, 999, 65535]
    assert result.malformed_count == 3
    assert [m.line_no for m in result.malformed_examples] == [5, 6, 7]
    assert "outside 0-65535" in result.malformed_examples[0].problem


def test_timestamps_iso_and_epochs_of_every_unit():
    """ISO texts (offsets, no zone, comma fractions) and epoch s/ms/us/ns numbers all land in UTC."""
    moment = pd.Timestamp("2026-11-28T03:00:01.5Z")
    seconds = moment.value / 1e9
    values = [
        "2026-11-28T03:00:01.5Z", "2026-11-28T04:00:01.500+01:00", "2026-11-28 03:00:01,500", "2026-11-28T03:00:01.5",
        seconds, int(seconds * 1e3), int(seconds * 1e6), moment.value, str(seconds),
    ]
    result = parse([dumps({"ts": value, "event": "close", "code": 1000}) for value in values])
    assert result.malformed_count == 0, result.malformed_examples
    assert result.frame["ts"].tolist() == [moment] * len(values)


def test_epoch_units_are_told_apart_by_magnitude():
    """Seconds, milliseconds, microseconds and nanoseconds of the same instant give the same time."""
    ns = pd.Timestamp("2026-11-28T03:00:00Z").value
    assert epoch_to_ns(ns // 10**9) == epoch_to_ns(ns // 10**6) == epoch_to_ns(ns // 10**3) == epoch_to_ns(ns) == ns
    assert epoch_to_ns(float("inf")) is None and epoch_to_ns(1e30) is None


def test_nested_fields_one_level_down():
    """Fields nested one level ({"ws": {"code": 1006}}) are found; top-level fields win."""
    result = parse([
        dumps({"ts": TS, "event": "close", "ws": {"code": 1006, "reason": "gone", "connectionId": "n"}}),
        dumps({"ts": TS, "event": "close", "code": 1000, "ws": {"code": 1006}}),
        dumps({"ts": TS, "data": {"event": "disconnect", "code": 1001}}),
    ])
    assert result.frame["code"].tolist() == [1006, 1000, 1001]
    assert result.frame["connection_id"].tolist() == ["n", pd.NA, pd.NA]


def test_error_reason_from_error_fields():
    """An error event takes its reason from error/err, or from an error object's message."""
    result = parse([
        dumps({"ts": TS, "event": "error", "error": "read ECONNRESET"}),
        dumps({"ts": TS, "event": "error", "err": {"message": "boom", "stack": "..."}}),
        dumps({"ts": TS, "event": "error", "reason": "explicit", "error": "ignored"}),
        dumps({"ts": TS, "event": "close", "code": 1000, "error": "not a reason of a close"}),
    ])
    assert result.frame["reason"].tolist() == ["read ECONNRESET", "boom", "explicit", pd.NA]


def test_non_text_values_become_text():
    """Numeric ids become text; an object where a text is expected keeps its JSON text."""
    (row,) = rows(parse([dumps({"ts": TS, "event": "close", "code": 1000, "connectionId": 42, "reason": {"why": "x"}})]))
    assert row["connection_id"] == "42" and row["reason"] == '{"why":"x"}'


PREFIXES = {
    "containerd": "2026-11-28T03:00:09.000000001Z stdout F ",
    "syslog": "Nov 28 03:00:09 web-1 app[123]: ",
    "compose": "app-1  | ",
    "python-logging": "[2026-11-28 03:00:09,000] INFO ",
}


@pytest.mark.parametrize("shipper", PREFIXES)
def test_prefix_before_the_object_is_tolerated(shipper):
    """The object starts at the first "{" of the line, whatever stands before it."""
    prefix = PREFIXES[shipper]
    result = parse([prefix + dumps({"ts": TS, "event": "close", "code": 1006}), prefix + "starting up"])
    assert result.frame["code"].tolist() == [1006] and result.frame["ts"].tolist() == [pd.Timestamp(TS)]
    assert result.ignored_lines == 1 and result.malformed_count == 0


def test_prefix_time_when_the_record_has_none():
    """A record without a time takes its prefix's; without either the time is NaT, not malformed."""
    result = parse([
        PREFIXES["containerd"] + dumps({"event": "close", "code": 1006}),
        PREFIXES["python-logging"] + dumps({"event": "close", "code": 1006}),
        PREFIXES["syslog"] + dumps({"event": "close", "code": 1006}),
    ])
    assert result.frame["ts"].tolist()[:2] == [pd.Timestamp("2026-11-28T03:00:09.000000001Z"), pd.Timestamp("2026-11-28T03:00:09Z")]
    assert result.frame["ts"].isna().tolist() == [False, False, True] and result.malformed_count == 0


def test_malformed_lines_are_counted_and_shown():
    """Bad JSON, truncated objects, bad codes, durations and timestamps are malformed, with examples."""
    good = dumps({"ts": TS, "event": "close", "code": 1000})
    lines = [
        good,
        '{"ts": "2026-11-28T03:00:01Z", "event": "close", "code": 1000,',
        dumps({"ts": TS, "event": "close", "code": "abc"}),
        dumps({"ts": "2026-13-45T25:00:00Z", "event": "close", "code": 1000}),
        dumps({"ts": TS, "event": "close", "code": 1000, "duration": "long"}),
        dumps({"ts": TS, "event": "close", "code": True}),
        dumps({"ts": [1], "event": "close", "code": 1000}),
        '{"ts": "' + "x" * 500 + '",',
        good,
    ]
    result = parse(lines)
    assert result.frame["line_no"].tolist() == [1, 9]
    assert result.malformed_count == 7
    examples = result.malformed_examples
    assert [e.line_no for e in examples] == [2, 3, 4, 5, 6]
    assert examples[0].problem.startswith("invalid JSON") and examples[0].text == lines[1]
    assert "invalid close code 'abc'" in examples[1].problem
    assert "does not parse" in examples[2].problem
    assert "invalid duration 'long'" in examples[3].problem
    assert "invalid close code True" in examples[4].problem
    assert result.ignored_lines == 0


def test_excerpt_is_short():
    """A malformed 1 MB line is shown as an excerpt of about 200 characters."""
    result = parse(['{"ts": "' + "x" * 1_000_000])
    (example,) = result.malformed_examples
    assert len(example.text) == 201 and example.text.endswith("…")


def test_crlf_bom_binary_junk_and_empty_input():
    """CRLF, a BOM, undecodable bytes and NULs are survived; empty input gives an empty frame."""
    data = b"\xef\xbb\xbf" + orjson.dumps({"ts": TS, "event": "close", "code": 1000}) + b"\r\n\xff\xfe\x00junk\r\n"
    result = parse(to_lines(data))
    assert result.frame["code"].tolist() == [1000] and result.ignored_lines == 1 and result.malformed_count == 0
    for empty in ("", [], b""):
        result = jsonlines.parse(empty, "empty")
        assert len(result.frame) == 0 and list(result.frame.columns) == list(LOG_COLUMNS)


def test_one_megabyte_record():
    """A record with a 1 MB reason parses, alone or between other records (longer than pyarrow's blocks)."""
    reason = "r" * 1_000_000
    (row,) = rows(parse([dumps({"ts": TS, "event": "close", "code": 1009, "reason": reason})]))
    assert row["reason"] == reason
    small = dumps({"ts": TS, "event": "close", "code": 1000})
    result = parse([small, dumps({"ts": TS, "event": "close", "code": 1009, "reason": reason * 3}), small])
    assert result.frame["reason"].str.len().tolist() == [pd.NA, 3_000_000, pd.NA] and result.malformed_count == 0


def test_mixed_types_in_one_column():
    """Codes as ints, digit strings and floats, durations as text: typed per value, not per column."""
    result = parse([
        dumps({"ts": TS, "event": "close", "code": 1000, "duration": 5}),
        dumps({"ts": TS, "event": "close", "code": "1001", "duration": "2500"}),
        dumps({"ts": TS, "event": "close", "code": 1002.0, "duration": None}),
        dumps({"ts": 1764298801, "event": "close", "code": None, "duration": 1.5}),
    ])
    assert result.frame["code"].tolist() == [1000, 1001, 1002, pd.NA]
    durations = result.frame["duration_s"].tolist()
    assert durations[0] == 0.005 and durations[1] == 2.5 and math.isnan(durations[2]) and durations[3] == 0.0015


def test_many_lines_cross_chunks():
    """More lines than one chunk keep their line numbers and order."""
    count = jsonlines.CHUNK_LINES + 10
    lines = [dumps({"ts": TS, "event": "close", "code": 1000 + k % 7, "connectionId": str(k)}) for k in range(count)]
    lines[jsonlines.CHUNK_LINES] = "not json"
    result = parse(lines)
    assert len(result.frame) == count - 1 and result.ignored_lines == 1
    assert result.frame["line_no"].iloc[-1] == count and result.frame["connection_id"].iloc[-1] == str(count - 1)


def test_detect_scores():
    """JSON close records score high; JSON without WebSocket records and plain text score zero."""
    assert jsonlines.detect([dumps({"ts": TS, "event": "close", "code": 1000})] * 3) >= 0.9
    assert jsonlines.detect([dumps({"level": "info", "msg": "started"})] * 3) == 0.0
    assert jsonlines.detect(["hello", "world"]) == 0.0


# --- the Arrow path is the orjson path, faster ---------------------------------------------------

MIXED = [
    dumps({"ts": TS, "event": "connect", "connectionId": "a1", "ip": "10.0.0.7", "userAgent": ANDROID}),
    dumps({"ts": TS, "event": "disconnect", "connectionId": "a1", "code": 1006, "reason": "", "duration": 60012}),
    dumps({"ts": 1764298801123, "type": "close", "id": 42, "closeCode": 1001.0, "duration_s": 1.5, "ua": True}),
    dumps({"ts": 1764298801.25, "msg": "connection closed", "code": "1001", "duration": "2500"}),
    dumps({"ts": "2026-11-28 03:00:01,5", "event": "error", "err": "read ECONNRESET"}),
    dumps({"ts": TS, "event": "error", "error": {"message": "boom"}, "connectionId": "nested-error"}),
    dumps({"ts": TS, "event": "close", "ws": {"code": 4000, "reason": "nested"}}),
    dumps({"ts": TS, "event": "close", "code": "abc"}),  # malformed code
    dumps({"ts": TS, "event": "close", "code": 1001.5}),  # a float among integers: Arrow names no row
    dumps({"ts": "2026-02-30T00:00:00Z", "event": "close", "code": 1000}),  # impossible date
    dumps({"ts": TS, "event": "close", "code": 1000, "reason": 2.5}),  # a float where text goes
    dumps({"ts": 1764298801123456789, "event": "close", "code": 1000, "duration": -0.0}),
    dumps({"ts": TS, "event": "DİSCONNECT", "code": 1000}),  # Python lowercases İ to i + U+0307
    dumps({"ts": TS, "event": "message", "code": 200}),
    dumps({"level": "info", "msg": "server started", "port": 8080, "tags": ["a", "b"]}),
    '{"ts": "2026-11-28T03:00:01Z", "event": "close", "code": 1000, "retry": NaN}',  # orjson rejects NaN
    '{"ts": "2026-11-28T03:00:01Z", "event": "close", "code": 1000, "code": 1001}',  # duplicated key
    '{"ts": "2026-11-28T03:00:01Z", "event": "close", "code": 1000',  # truncated
    '{"event": "close", "code": 1000}{"event": "close", "code": 1001}',  # two objects on a line
    PREFIXES["containerd"] + dumps({"event": "close", "code": 1006}),
    PREFIXES["compose"] + dumps({"ts": TS, "event": "connect", "connectionId": "p"}),
    "Listening on {port: 8080}",
    "",
    "null",
    "[1, 2]",
    '  {"ts": "2026-11-28T03:00:01Z", "event": "close", "code": 1000}  ',
    '{"event": "close", "code": 1000, "path": ' + "[" * 1100 + "]" * 1100 + "}",  # deeper than orjson goes
    '{"event": "close", "code": 1000, "path": ' + "[" * 1000 + "]" * 1000 + "}",
]


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of about 2 KB, so that a short log crosses many chunk boundaries, a rejected chunk
    is halved down to single lines, and event texts are classified with pyarrow.compute rather
    than one by one."""
    monkeypatch.setattr(jsonlines, "CHUNK_BYTES", 2000)
    monkeypatch.setattr(jsonlines, "CHUNK_LINES", 20)
    monkeypatch.setattr(jsonlines, "_MIN_PIECE_LINES", 1)
    monkeypatch.setattr(jsonlines, "_FEW_WORDS", 3)


def assert_same_result(given) -> None:
    fast, slow = jsonlines.parse(given, "mixed.jsonl"), jsonlines.parse(given, "mixed.jsonl", fast_path=False)
    pd.testing.assert_frame_equal(fast.frame, slow.frame, check_exact=True)
    assert (fast.lines_total, fast.ignored_lines, fast.malformed_count) == (slow.lines_total, slow.ignored_lines, slow.malformed_count)
    assert fast.malformed_examples == slow.malformed_examples


def clean_record(k: int, ts) -> str:
    """A well-formed record of one of the usual shapes (spellings, nulls, errors, unique messages);
    from line 100 on, request logs with fields of their own come between them."""
    shape = k % 6 if k >= 100 else k % 5
    if shape == 0:
        return dumps({"ts": ts, "event": "connect", "connectionId": f"c{k}", "ip": "10.0.0.7", "userAgent": ANDROID})
    if shape == 1:
        return dumps({"ts": ts, "event": "disconnect", "connectionId": f"c{k}", "code": 1006, "reason": "", "duration": 60012 + k})
    if shape == 2:
        return dumps({"timestamp": ts, "type": "close", "id": k, "closeCode": 1001, "closeReason": "bye", "duration_ms": 1.5 * k})
    if shape == 3:
        return dumps({"ts": ts, "msg": f"connection closed #{k}", "connId": f"c{k}", "close_code": None, "ua": "Mozilla/5.0 (iPad)"})
    if shape == 4:
        return dumps({"ts": ts, "event": "error", "connectionId": f"c{k}", "error": "read ECONNRESET", "ip": None})
    return dumps({"level": 30, "time": ts, "msg": "request completed", "req": "GET /health", "responseTime": 3})


def mixed_log() -> list[str]:
    """ISO, integer-epoch and float-epoch stretches of clean records, troublemakers among them."""
    stamps = (lambda k: f"2026-11-28T03:{k // 60 % 60:02d}:{k % 60:02d}.{k:03d}Z", lambda k: 1764298801123 + k, lambda k: 1764298801.25 + k)
    lines = [clean_record(k, stamps[k // 200 % 3](k)) for k in range(600)]
    lines += [  # a stretch of odd but consistent types: these rows are left to the orjson path
        dumps({"ts": k % 2 == 0, "event": "close", "code": str(k), "reason": k + 0.5, "duration": str(k), "ua": k % 3 == 0})
        for k in range(40)
    ]
    for k, trouble in enumerate(MIXED):
        lines.insert(17 * k + 5, trouble)
    return lines


@pytest.mark.parametrize("chunking", ["default", "small"])
def test_arrow_path_equals_orjson_path_on_a_mixed_log(chunking, request):
    """Malformed lines, conflicting types, prefixes, nested fields, NaN: both paths give the same
    frame, counts and examples, for text, bytes (with a BOM and CRLF) and lines."""
    if chunking == "small":
        request.getfixturevalue("small_chunks")
    lines = mixed_log()
    text = "\n".join(lines) + "\n"
    for given in (text, text.encode(), "\ufeff" + text.replace("\n", "\r\n"), lines, text.encode() + b"\xff{\n"):
        assert_same_result(given)
    assert len(jsonlines.parse(lines, "x").frame) > 500


def test_bad_lines_arrow_does_not_locate_are_found_by_halving():
    """A float code among integer ones fails Arrow's conversion, which names no line: still found."""
    lines = [dumps({"ts": TS, "event": "close", "code": 1000 + k % 7}) for k in range(300)]
    lines[150] = dumps({"ts": TS, "event": "close", "code": 1001.5})
    assert_same_result(lines)
    assert jsonlines.parse(lines, "x").malformed_examples[0].line_no == 151


def test_arrow_path_types_a_clean_log_in_bulk(monkeypatch):
    """A log of clean records takes the Arrow path (no line goes through orjson) with the same result."""
    lines = [
        dumps({"ts": f"2026-11-28T03:00:{k % 60:02d}.{k:03d}Z", "event": ("connect", "disconnect", "error")[k % 3],
               "connectionId": f"c{k}", "code": 1000 + k % 7 if k % 3 == 1 else None, "duration": k * 10,
               "userAgent": ANDROID if k % 2 else None, "error": "boom" if k % 3 == 2 else None})
        for k in range(2000)
    ]
    slow = jsonlines.parse(lines, "clean.jsonl", fast_path=False)
    orjson_lines = []
    original = jsonlines._parse_lines

    def spy(chunk, *args):
        orjson_lines.extend(chunk)
        return original(chunk, *args)

    monkeypatch.setattr(jsonlines, "_parse_lines", spy)
    fast = jsonlines.parse("\n".join(lines).encode(), "clean.jsonl")
    assert orjson_lines == [] and len(fast.frame) == 2000
    pd.testing.assert_frame_equal(fast.frame, slow.frame, check_exact=True)


def test_strict_iso_texts_cast_by_arrow_as_pandas_parses_them():
    """The ISO 8601 texts the Arrow path casts itself are read exactly as parse_timestamps reads them."""
    texts = [
        f"{date}T{time}{fraction}{zone}"
        for date in ("1900-01-01", "1970-01-01", "2024-02-29", "2026-11-28", "2099-12-31")
        for time in ("00:00:00", "03:00:01", "23:59:59")
        for fraction in ("", ".5", ".123", ".123456", ".123456789")
        for zone in ("Z", "+00:00", "+01:00", "-05:30", "+14:00", "-14:59")
    ]
    strict = pc.match_substring_regex(pa.array(texts), jsonlines._STRICT_ISO).to_pylist()
    assert all(strict)
    cast = pc.cast(pc.cast(pa.array(texts), pa.timestamp("ns", tz="UTC")), pa.int64()).to_pylist()
    ns, bad = parse_timestamps(texts)
    assert not bad.any() and cast == ns.tolist()
    loose = ["2026-11-28 03:00:01Z", "2026-11-28T03:00:01", "2262-04-12T03:00:01Z", "2026-11-28T03:00:60Z", "2026-11-28t03:00:01z"]
    assert not any(pc.match_substring_regex(pa.array(loose), jsonlines._STRICT_ISO).to_pylist())


def test_vectorized_epochs_equal_epoch_to_ns():
    """Integer and float epochs converted in bulk give epoch_to_ns's nanoseconds, or are left to it."""
    edges = [0, 1, -1, 10**11 - 1, 10**11, 10**14 - 1, 10**14, 10**17 - 1, 10**17, 9223372036, 9223372037,
             9223372036854, 9223372036855, 2**63 - 1, -(2**63 - 1), -(2**63), 1764298801, 1764298801123, 1764298801123456, 1764298801123456789]
    ints = np.array(edges + [-v for v in edges if v > 0 and v < 2**63 - 1], np.int64)
    ns, bad = jsonlines._int_epochs_to_ns(ints)
    for value, got, flagged in zip(ints.tolist(), ns.tolist(), bad.tolist()):
        expected = epoch_to_ns(value)
        assert (None if flagged else got) == expected, value
    floats = np.array([0.0, 1.5, -1.5, 1764298801.25, 1764298801123.5, 1764298801123456.5, 99999999999.99, 1e11, 1e14, 1e17, 2.0**62, 1e300, 0.5e-9, 2.5e-9], np.float64)
    ns, bad = jsonlines._float_epochs_to_ns(floats)
    for value, got, flagged in zip(floats.tolist(), ns.tolist(), bad.tolist()):
        if not flagged:  # flagged ones go to the orjson path, which calls epoch_to_ns itself
            assert got == epoch_to_ns(value), value


@pytest.mark.parametrize("field", jsonlines.CLIENT_ID_FIELDS)
def test_client_identity_is_read_on_both_paths(field):
    """clientId/userId/deviceId land in client_id, alike on the Arrow path and the orjson path."""
    lines = [dumps({"ts": TS, "event": "connect", "connectionId": f"c{k}", field: f"u{k % 3}"}) for k in range(30)]
    fast = jsonlines.parse(lines, "close-log.jsonl")
    slow = jsonlines.parse(lines, "close-log.jsonl", fast_path=False)
    assert fast.frame["client_id"].tolist()[:4] == ["u0", "u1", "u2", "u0"]
    pd.testing.assert_frame_equal(fast.frame, slow.frame)


def test_naive_timestamps_take_the_log_timezone_on_both_paths():
    """log_timezone reads zone-less times in the log's zone; times with a zone keep theirs."""
    lines = [dumps({"ts": "2026-11-28 05:00:01", "event": "connect", "connectionId": f"n{k}"}) for k in range(20)]
    lines += [dumps({"ts": "2026-11-28T03:00:01Z", "event": "connect", "connectionId": "z"})]
    for fast in (True, False):
        result = jsonlines.parse(lines, "close-log.jsonl", fast_path=fast, timezone="+02:00")
        ts = result.frame["ts"]
        assert (ts == pd.Timestamp("2026-11-28T03:00:01Z")).all(), fast
    utc = jsonlines.parse(lines, "close-log.jsonl").frame["ts"]
    assert utc.iloc[0] == pd.Timestamp("2026-11-28T05:00:01Z") and utc.iloc[-1] == pd.Timestamp("2026-11-28T03:00:01Z")


class _SilentArrowError(pa.ArrowInvalid):
    """An Arrow error whose message must not be read: reading it fails the test."""

    read = False

    def __str__(self) -> str:
        type(self).read = True
        raise AssertionError("the Arrow path read an Arrow error message")

    __repr__ = __str__

    @property
    def args(self):
        type(self).read = True
        raise AssertionError("the Arrow path read an Arrow error's arguments")


@pytest.mark.parametrize("failing", ["first", "every"])
def test_arrow_errors_are_never_read_their_lines_take_the_orjson_path(monkeypatch, failing):
    """Whatever pyarrow.json's error says, the fast path never reads it: a rejected block goes
    through orjson and the result equals the orjson path's, whether one read fails or all do."""
    lines = [clean_record(k, f"2026-11-28T03:{k // 60 % 60:02d}:{k % 60:02d}.{k % 1000:03d}Z") for k in range(3000)]
    slow = jsonlines.parse(lines, "x.jsonl", fast_path=False)
    original, calls, parsed_by_orjson = jsonlines.pa_json.read_json, [], []

    def read_json(*args, **kwargs):
        calls.append(1)
        if failing == "every" or len(calls) == 1:
            raise _SilentArrowError()
        return original(*args, **kwargs)

    def spy(chunk, *args):
        parsed_by_orjson.extend(chunk)
        return original_parse_lines(chunk, *args)

    original_parse_lines = jsonlines._parse_lines
    monkeypatch.setattr(jsonlines.pa_json, "read_json", read_json)
    monkeypatch.setattr(jsonlines, "_parse_lines", spy)
    fast = jsonlines.parse("\n".join(lines).encode(), "x.jsonl")
    assert not _SilentArrowError.read
    pd.testing.assert_frame_equal(fast.frame, slow.frame, check_exact=True)
    assert (fast.ignored_lines, fast.malformed_count) == (slow.ignored_lines, slow.malformed_count)
    if failing == "every":  # every line went through orjson, after a bounded number of reads
        assert len(parsed_by_orjson) == len(lines) and len(calls) <= jsonlines._MAX_REJECTED_READS + 2
    else:  # the rejected block was read again, in pieces: nothing left to orjson
        assert parsed_by_orjson == [] and len(calls) <= 3000 // jsonlines._PIECE_LINES + 3


def test_a_line_longer_than_a_block_is_read_by_arrow_in_one_go(monkeypatch):
    """pyarrow.json needs a line end in every block: the block size is chosen from the longest
    line, so a 3 MB record among small ones never fails a read and takes the Arrow path too."""
    reason = "r" * (3 * jsonlines._ARROW_BLOCK_BYTES)
    lines = [
        dumps({"ts": TS, "event": "close", "code": 1000 + k % 7, "reason": "", "connectionId": f"c{k}"}) for k in range(5000)
    ]
    lines[2500] = dumps({"ts": TS, "event": "close", "code": 1009, "reason": reason, "connectionId": "big"})
    original, failures, parsed_by_orjson = jsonlines.pa_json.read_json, [], []

    def read_json(*args, **kwargs):
        try:
            return original(*args, **kwargs)
        except pa.ArrowInvalid as exc:
            failures.append(exc)
            raise

    def spy(chunk, *args):
        parsed_by_orjson.extend(chunk)
        return original_parse_lines(chunk, *args)

    original_parse_lines = jsonlines._parse_lines
    monkeypatch.setattr(jsonlines.pa_json, "read_json", read_json)
    monkeypatch.setattr(jsonlines, "_parse_lines", spy)
    result = jsonlines.parse("\n".join(lines).encode(), "x.jsonl")
    assert failures == [] and parsed_by_orjson == []
    assert len(result.frame) == 5000 and result.frame["reason"].iloc[2500] == reason
    assert result.frame["connection_id"].iloc[2501] == "c2501"


def test_types_learned_after_a_rejected_read_widen_and_misfits_take_the_orjson_path():
    """Fields first seen late, an integer column meeting floats, texts and integers past int64
    in a column of integers, a field holding several kinds from its first appearance: both paths
    agree, and the lines Arrow can read stay on the Arrow path."""
    lines = [dumps({"ts": TS, "event": "close", "code": 1000 + k % 7, "connectionId": f"c{k}"}) for k in range(400)]
    lines += [dumps({"ts": TS, "event": "close", "code": 1000.0 + k % 3, "connectionId": f"f{k}"}) for k in range(50)]
    lines += [dumps({"ts": TS, "event": "close", "code": "1001", "clientId": k if k % 2 else f"u{k}"}) for k in range(50)]
    lines += ['{"ts": "2026-11-28T03:00:01Z", "event": "close", "code": 18446744073709551615}']
    lines += [dumps({"ts": TS, "event": "close", "code": 1000, "extra": "field", "reason": "late"}) for k in range(50)]
    assert_same_result(lines)
    fields = jsonlines._Fields()
    misfits = fields.learn([{"code": 1000}, {"code": "1001"}, {"code": 1002.5}, {"code": 2**64 - 1}, {"code": None}])
    assert fields.types["code"] == pa.int64() and misfits.tolist() == [False, True, True, True, False]
    assert not fields.learn([{"code": 1.5}]).any() and fields.types["code"] == pa.float64()  # widened
    assert fields.learn([{"code": 7}, {"code": True}]).tolist() == [False, True]  # never narrowed back
    assert fields.types["code"] == pa.float64() and not fields.others
    fields.learn([{"code": 1, "level": "info"}])
    assert fields.others and fields.plan()[1] == "ignore" and len(fields.plan()[0]) == len(jsonlines._ARROW_FIELDS)


@pytest.mark.parametrize("text", [b"", b"\n", b"\n\n", b"a", b"a\n", b"\na\n\n", b'{"event": "connect"}\n' * 300,
                                  b'{"event": "connect"}\n' * 300 + b"\n", b'{"event": "close"}\n' * 300 + b'{"event": "cl'])
def test_every_line_is_counted_whatever_the_chunks(text, small_chunks) -> None:
    """The Arrow path counts lines as it cuts the log into chunks; blank and unfinished lines at
    either end count as to_lines gives them."""
    assert jsonlines.parse(text, "count.jsonl").lines_total == len(to_lines(text))
