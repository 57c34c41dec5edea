"""Tests of runbook.logs.node_monitor on real util.inspect output printed by Node."""

from __future__ import annotations

import json
import math
import random
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from runbook.logs import node_monitor
from runbook.logs.common import to_lines, to_log_text
from runbook.logs.node_monitor import Buffer, ErrorValue, InspectSyntaxError, Opaque, parse_inspect
from runbook.observations import LOG_COLUMNS
from tests.conftest import require_real

# Every script gets a clock (one second per record from 2026-11-28T03:00:00Z), `log(kind, obj)`
# printing a record exactly as the reference runbook's WebSocketMonitor does, and `expect(v)`
# writing the JavaScript value as JSON on stderr for the test to compare with.
PRELUDE = r"""
let clock = Date.UTC(2026, 10, 28, 3, 0, 0, 0);
const stamp = () => new Date(clock += 1000).toISOString();
const log = (kind, obj) => console.log(stamp(), `WebSocket ${kind}:`, obj);
const expect = (value) => process.stderr.write(JSON.stringify(value) + "\n");
"""

T0 = pd.Timestamp("2026-11-28T03:00:00Z")
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)


def run_node(script: str) -> tuple[str, list]:
    """stdout of ``script`` run by the real node, and the values it passed to ``expect``."""
    node = require_real("node")
    result = subprocess.run(
        [node, "-e", PRELUDE + script], capture_output=True, text=True, timeout=60, check=True
    )
    # split on "\n" only: JSON.stringify leaves U+2028 raw, and str.splitlines() would split there
    return result.stdout, [json.loads(line) for line in result.stderr.split("\n") if line]


def parse(text: str | list[str], *, fast_path: bool = True):
    return node_monitor.parse(text, "server.log", fast_path=fast_path)


def only_row(result) -> dict:
    assert result.malformed_count == 0, result.malformed_examples
    assert len(result.frame) == 1, result.frame
    return {name: result.frame[name].iloc[0] for name in result.frame.columns}  # <NA> stays <NA>


# --- records as the WebSocketMonitor prints them -------------------------------------------------


def test_single_line_disconnect_maps_every_field():
    """A short disconnect object prints on one line and fills the normalized columns."""
    out, _ = run_node("log('disconnect', { connectionId: 'a1', code: 1006, reason: '', duration: 60012 });")
    assert "\n" not in out.strip()
    result = parse(out)
    row = only_row(result)
    assert row["ts"] == T0 + pd.Timedelta(seconds=1)
    assert (row["connection_id"], row["event"], row["code"], row["reason"]) == ("a1", "disconnect", 1006, "")
    assert row["duration_s"] == pytest.approx(60.012)
    assert row["client_ip"] is pd.NA and row["user_agent"] is pd.NA and row["is_mobile"] is pd.NA
    assert (row["source"], row["line_no"]) == ("server.log", 1)
    assert result.format == "node_monitor" and result.lines_total == 1 and result.ignored_lines == 0


def test_frame_has_exact_schema_dtypes():
    """The frame carries exactly LOG_COLUMNS with their dtypes, ts in UTC."""
    out, _ = run_node("log('disconnect', { connectionId: 'a1', code: 1006, reason: '', duration: 1 });")
    frame = parse(out).frame
    assert list(frame.columns) == list(LOG_COLUMNS)
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == LOG_COLUMNS


def test_long_connect_record_prints_over_lines_and_parses():
    """A connect record with a real user agent spans several lines and keeps ip and user agent."""
    out, _ = run_node(f"log('connected', {{ connectionId: 'a1', ip: '::ffff:127.0.0.1', userAgent: '{IPHONE}' }});")
    assert out.count("\n") == 5  # "{", three entries, "}"
    row = only_row(parse(out))
    assert (row["event"], row["client_ip"], row["user_agent"]) == ("connect", "::ffff:127.0.0.1", IPHONE)
    assert row["is_mobile"] == True and row["code"] is pd.NA and row["line_no"] == 1  # noqa: E712


def test_quotes_pick_node_quote_style_and_round_trip():
    """Strings with single quotes print in double quotes or backticks and come back exact."""
    out, expected = run_node(r"""
for (const reason of ["it's", `it's "x"`, `it's "x" and \`y\``, 'plain "double"']) {
  log('disconnect', { connectionId: 'q', code: 1000, reason, duration: 5 });
  expect(reason);
}
""")
    assert '"it\'s"' in out and "`it's \"x\"`" in out and "'it\\'s \"x\" and `y`'" in out
    assert parse(out).frame["reason"].tolist() == expected


def test_escapes_decode_like_javascript():
    """Escaped newlines, tabs, control bytes, backslashes and non-ASCII text decode exactly."""
    out, expected = run_node(r"""
const reason = 'a\nb\tc\x01\x7f\\d "é" 😀 \u2028 end';
log('disconnect', { connectionId: 'e', code: 1000, reason, duration: 5 });
expect(reason);
""")
    assert only_row(parse(out))["reason"] == expected[0]


def test_lone_surrogate_becomes_replacement_character():
    """A lone UTF-16 surrogate (printed as \\ud800) becomes U+FFFD instead of breaking the frame."""
    out, _ = run_node(r"log('disconnect', { connectionId: 's', code: 1000, reason: 'x\ud800y', duration: 5 });")
    assert only_row(parse(out))["reason"] == "x\ufffdy"


def test_buffer_reason_is_decoded_as_utf8():
    """A Buffer reason (<Buffer 6f 6b>) is decoded; a long one keeps the 50 bytes Node shows."""
    out, _ = run_node(r"""
log('disconnect', { connectionId: 'b', code: 1000, reason: Buffer.from('ok'), duration: 5 });
log('disconnect', { connectionId: 'b', code: 1000, reason: Buffer.from('né'), duration: 5 });
log('disconnect', { connectionId: 'b', code: 1000, reason: Buffer.from('x'.repeat(100)), duration: 5 });
""")
    assert "<Buffer 6f 6b>" in out and "... 50 more bytes>" in out
    assert parse(out).frame["reason"].tolist() == ["ok", "né", "x" * 50]


def test_numbers_undefined_and_null():
    """NaN/Infinity durations are unknown, decimals kept, undefined/null codes are <NA>; a negative or
    centuries-long lifetime is a malformed record (issue 10)."""
    out, _ = run_node(r"""
log('disconnect', { connectionId: 'n1', code: undefined, reason: '', duration: NaN });
log('disconnect', { connectionId: 'n2', code: null, reason: '', duration: Infinity });
log('disconnect', { connectionId: undefined, code: 4000, reason: '', duration: 1.5 });
log('disconnect', { connectionId: 42, code: 999, reason: '', duration: -5 });
log('disconnect', { connectionId: 'n5', code: 65535, reason: '', duration: 1e21 });
""")
    result = parse(out)
    frame = result.frame
    assert frame["code"].tolist() == [pd.NA, pd.NA, 4000]
    assert frame["connection_id"].tolist() == ["n1", "n2", pd.NA]
    durations = frame["duration_s"].tolist()
    assert math.isnan(durations[0]) and math.isnan(durations[1])
    assert durations[2:] == [0.0015]
    assert [m.problem for m in result.malformed_examples] == ["negative duration -0.005 s", "duration 1e+18 s is longer than a year"]


def test_exotic_values_do_not_break_parsing():
    """Dates, nested objects, [Object], [Circular *1], <ref *1>, Maps, Symbols and more are skipped over."""
    out, _ = run_node(r"""
class Session { constructor() { this.id = 7; } }
const info = {
  connectionId: 'x1', 'user-agent': 'curl/8.5', code: 1001, reason: 'going away', duration: 30000,
  connectedAt: new Date(Date.UTC(2026, 10, 28, 2, 59, 30)), bad: new Date(NaN),
  nested: { a: { b: { c: { d: 1 } } }, list: [1, [2, [3, [4]]]] },
  big: Array.from({ length: 130 }, (_, i) => i), sparse: [1, , 3], empty: {}, none: [],
  fn: function handler() {}, arrow: () => 1, cls: Session, session: new Session(),
  sym: Symbol('tag'), [Symbol('key')]: 'hidden', map: new Map([['k', { v: 1 }]]), set: new Set(['s']),
  re: /a[}\]]+b/gi, big_int: 10n ** 20n, proto: Object.create(null), err: new RangeError('nested'),
};
info.self = info;
log('disconnect', info);
""")
    for label in ("<ref *1>", "[Object]", "[Array]", "[Circular *1]", "more items", "Map(1)", "[Symbol(key)]"):
        assert label in out
    result = parse(out)
    row = only_row(result)
    assert (row["connection_id"], row["code"], row["reason"], row["user_agent"]) == ("x1", 1001, "going away", "curl/8.5")
    assert row["duration_s"] == 30.0 and result.ignored_lines == 0


def test_long_string_split_over_lines_is_joined():
    """util.inspect prints a long multi-line string as 'a\\n' + 'b'; the parts are joined."""
    out, expected = run_node(r"""
const reason = 'line one of a long close reason\nline two of the same long reason\nline three of it';
log('disconnect', { connectionId: 'm', code: 1011, reason, duration: 5 });
expect(reason);
""")
    assert "' +\n" in out
    assert only_row(parse(out))["reason"] == expected[0]


def test_very_long_string_keeps_the_shown_part():
    """A string over 10000 characters prints truncated ('... N more characters'); the shown part is kept."""
    out, _ = run_node("log('disconnect', { connectionId: 'l', code: 1009, reason: 'y'.repeat(25000), duration: 5 });")
    assert "... 15000 more characters" in out
    assert only_row(parse(out))["reason"] == "y" * 10000


def test_error_records_in_all_their_shapes():
    """Error records: an error string, a bare message, an Error with its stack, an Error inside an object."""
    out, _ = run_node(r"""
log('error', { connectionId: 'e1', error: 'Invalid WebSocket frame: invalid status code 1005' });
log('error', 'Invalid WebSocket frame: RSV1 must be clear');
const err = new RangeError('Invalid WebSocket frame: invalid status code 1005');
err.code = 'WS_ERR_INVALID_CLOSE_CODE';
err[Symbol('status-code')] = 1002;
log('error', err);
log('error', { connectionId: 'e4', error: err });
log('error', new Error('no props'));
""")
    result = parse(out)
    assert result.malformed_count == 0 and result.ignored_lines == 0  # stack lines belong to their record
    frame = result.frame
    assert frame["event"].tolist() == ["error"] * 5
    assert frame["connection_id"].tolist() == ["e1", pd.NA, pd.NA, "e4", pd.NA]
    assert frame["reason"].tolist() == [
        "Invalid WebSocket frame: invalid status code 1005",
        "Invalid WebSocket frame: RSV1 must be clear",
        "RangeError: Invalid WebSocket frame: invalid status code 1005",
        "RangeError: Invalid WebSocket frame: invalid status code 1005",
        "Error: no props",
    ]
    starts = [k + 1 for k, line in enumerate(out.splitlines()) if "WebSocket error:" in line]
    assert frame["line_no"].tolist() == starts


def test_unrelated_output_is_counted_as_ignored():
    """Lines that are not WebSocket records are counted in ignored_lines, blank lines are not."""
    out, _ = run_node(r"""
console.log('Server listening on :8080');
log('disconnect', { connectionId: 'a', code: 1006, reason: '', duration: 1 });
console.log('');
console.log({ heapUsed: 123, rss: 456, arrayBuffers: 1, external: 2, heapTotal: 3, extra: 'x'.repeat(60) });
""")
    result = parse(out)
    assert len(result.frame) == 1 and result.frame["line_no"].tolist() == [2]
    assert result.ignored_lines == out.count("\n") - 2  # all but the record and the blank line


# --- log prefixes -----------------------------------------------------------------------------------

MIXED_SCRIPT = r"""
log('disconnect', { connectionId: 'a1', code: 1006, reason: '', duration: 60012 });
log('connected', { connectionId: 'b2', ip: '::ffff:10.0.0.7', userAgent: 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36' });
log('disconnect', { connectionId: 'c3', code: 1001, reason: 'server restarting for deploy', duration: 1500 });
console.log('GC pause 12ms');
log('error', { connectionId: 'b2', error: 'read ECONNRESET' });
"""


def prefixed(lines: list[str], prefix_of) -> list[str]:
    """Every physical line behind the prefix a log shipper would put there (prefix_of(line_index))."""
    return [prefix_of(k) + line for k, line in enumerate(lines)]


PREFIXES = {
    # containerd/CRI: RFC 3339 nano stamp (trailing zeros trimmed), stream, full-line tag
    "containerd": lambda k: f"2026-11-28T03:00:0{k}.{'12345678' if k % 2 else '1'}Z stdout F ",
    "syslog": lambda k: f"Nov 28 03:00:0{k} web-1 node[4242]: ",
    "compose": lambda k: "app-1  | ",
    "python-logging": lambda k: f"[2026-11-28 03:00:0{k},{k}23] INFO ",
}


@pytest.mark.parametrize("shipper", PREFIXES)
def test_prefix_on_every_line_is_tolerated(shipper):
    """Each physical line carries a shipper prefix; records, multi-line ones included, still parse."""
    out, _ = run_node(MIXED_SCRIPT)
    plain = parse(out)
    result = parse(prefixed(out.splitlines(), PREFIXES[shipper]))
    assert result.malformed_count == 0, result.malformed_examples
    assert result.ignored_lines == plain.ignored_lines == 1
    columns = ["ts", "connection_id", "event", "code", "reason", "duration_s", "client_ip", "user_agent", "line_no"]
    pd.testing.assert_frame_equal(result.frame[columns], plain.frame[columns])


def test_prefix_time_is_used_when_the_record_has_none():
    """Without Node's own stamp the prefix's time is the record's; a yearless syslog stamp gives NaT."""
    record = "WebSocket disconnect: { connectionId: 'a', code: 1006, reason: '', duration: 1 }"
    lines = [
        f"2026-11-28T03:00:05.5Z stdout F {record}",
        f"[2026-11-28 03:00:06,250] INFO {record}",
        f"2026-11-28 04:00:07+01:00 host app: {record}",
        f"Nov 28 03:00:08 host app[1]: {record}",
    ]
    frame = parse(lines).frame
    assert frame["ts"].tolist()[:3] == [
        pd.Timestamp("2026-11-28T03:00:05.5Z"),
        pd.Timestamp("2026-11-28T03:00:06.25Z"),
        pd.Timestamp("2026-11-28T03:00:07Z"),
    ]
    assert frame["ts"].isna().tolist() == [False, False, False, True]


def test_shipper_stamp_alone_before_the_marker():
    """kubectl logs --timestamps on an app that prints no stamp: every line starts with the shipper's."""
    out, _ = run_node(f"""
console.log('WebSocket connected:', {{ connectionId: 'k', ip: '10.2.2.2', userAgent: '{IPHONE}' }});
console.log('WebSocket disconnect:', {{ connectionId: 'k', code: 1006, reason: '', duration: 60000 }});
""")
    lines = [f"2026-11-28T03:00:0{k}.{k}00000001Z {line}" for k, line in enumerate(out.splitlines())]
    result = parse(lines)
    assert result.malformed_count == 0 and result.ignored_lines == 0
    assert result.frame["user_agent"].tolist() == [IPHONE, pd.NA]
    assert result.frame["ts"].tolist() == [pd.Timestamp("2026-11-28T03:00:00.000000001Z"), pd.Timestamp("2026-11-28T03:00:05.500000001Z")]


def test_multiline_record_without_prefix_on_continuations():
    """Python logging prefixes only the first line of a message; bare continuation lines are read too."""
    out, _ = run_node(f"log('connected', {{ connectionId: 'p', ip: '10.1.1.1', userAgent: '{IPHONE}' }});")
    lines = out.splitlines()
    lines[0] = "[2026-11-28 03:00:01,000] INFO " + lines[0]
    row = only_row(parse(lines))
    assert (row["connection_id"], row["user_agent"]) == ("p", IPHONE)


# --- malformed input --------------------------------------------------------------------------------


def test_malformed_records_are_counted_and_shown():
    """Truncated objects, bad codes and impossible timestamps are malformed, with line and excerpt."""
    out, _ = run_node(f"log('connected', {{ connectionId: 'cut', ip: '10.0.0.1', userAgent: '{IPHONE}' }});")
    cut = out.splitlines()[:3]  # the process died while writing
    lines = [
        "2026-11-28T03:00:01.000Z WebSocket disconnect: { connectionId: 'a', code: 'abc', reason: '', duration: 1 }",
        *cut,
        "2026-11-28T03:00:02.000Z WebSocket disconnect: { connectionId: 'ok', code: 1000, reason: '', duration: 1 }",
        "2026-13-45T03:00:03.000Z WebSocket disconnect: { connectionId: 'b', code: 1000, reason: '', duration: 1 }",
        "2026-11-28T03:00:04.000Z WebSocket disconnect: { connectionId: 'c', code: 1000, reason: '', duration: 1 } junk",
        f"2026-11-28T03:00:05.000Z WebSocket disconnect: {{ connectionId: 'd', code: 1000, reason: '{'y' * 400}',",
        "2026-11-28T03:00:06.000Z WebSocket disconnect: { connectionId: 'e', code: true, reason: '', duration: 1 }",
        *cut,  # cut off at the end of the log
    ]
    result = parse(lines)
    assert result.frame["connection_id"].tolist() == ["ok"]
    assert result.malformed_count == 7
    examples = result.malformed_examples
    assert [e.line_no for e in examples] == [1, 2, 6, 7, 8]  # the first five, by line
    assert "invalid close code 'abc'" in examples[0].problem
    assert "truncated" in examples[1].problem and "line 5" in examples[1].problem
    assert "does not parse" in examples[2].problem
    assert examples[0].text == lines[0]
    assert len(examples[4].text) <= 201 and examples[4].text.endswith("…")
    assert result.ignored_lines == 0


def test_record_cut_at_end_of_input_is_malformed():
    """A multi-line object whose closing brace never came is malformed, not dropped."""
    result = parse(["2026-11-28T03:00:01.000Z WebSocket disconnect: {", "  connectionId: 'a',", "  code: 1006,"])
    assert len(result.frame) == 0 and result.malformed_count == 1
    assert "end of input" in result.malformed_examples[0].problem


# --- robustness -------------------------------------------------------------------------------------


def test_crlf_bom_and_binary_junk():
    """CRLF line ends, a UTF-8 BOM and undecodable bytes around records do not disturb parsing."""
    out, _ = run_node(MIXED_SCRIPT)
    data = b"\xef\xbb\xbf" + out.replace("\n", "\r\n").encode() + b"\x00\xff\xfe\x80garbage\r\n\x1b[31mred\r\n"
    result = parse(to_lines(data))
    assert len(result.frame) == 4 and result.malformed_count == 0
    assert result.ignored_lines == 3


def test_empty_input():
    """An empty log gives an empty frame with the schema and zero counts."""
    for empty in ("", [], b""):
        result = node_monitor.parse(empty, "empty.log")
        assert len(result.frame) == 0 and list(result.frame.columns) == list(LOG_COLUMNS)
        assert (result.lines_total, result.ignored_lines, result.malformed_count) == (0, 0, 0)


def test_one_megabyte_lines():
    """A 1 MB junk line is ignored and a record with a 1 MB reason is parsed."""
    huge_reason = "r" * 1_000_000
    lines = [
        "x" * 1_000_000,
        f"2026-11-28T03:00:01.000Z WebSocket disconnect: {{ connectionId: 'a', code: 1009, reason: '{huge_reason}', duration: 1 }}",
        "WebSocket error: " + "{" * 100_000,
    ]
    for fast_path in (True, False):
        result = parse(lines, fast_path=fast_path)
        assert result.frame["reason"].tolist() == [huge_reason]
        assert result.ignored_lines == 1 and result.malformed_count == 1


# --- the fast path is the tokenizer, faster ---------------------------------------------------------


def test_fast_path_equals_tokenizer_on_a_mixed_log():
    """On a log mixing every shape, prefixes and malformed lines, both paths give identical results."""
    out, _ = run_node(MIXED_SCRIPT + r"""
for (let k = 0; k < 40; k++) {
  log('disconnect', { connectionId: 'id' + k, code: 1000 + k, reason: k % 3 ? '' : 'bye ' + k, duration: k * 1000.25 });
}
log('disconnect', { connectionId: "it's", code: 1000, reason: 'x\ny', duration: 1 });
log('disconnect', { code: 1006, connectionId: 'order', reason: '', duration: 1 });
log('error', { connectionId: 'e', error: 'boom', code: 1011 });
log('disconnect', { connectionId: 'e2', error: 'not an error event' });
log('connected', { connectionId: 'c', code: 1000, reason: 'odd', duration: 3 });
log('error', new Error('bare'));
""")
    lines = out.splitlines()
    lines += prefixed(lines, PREFIXES["containerd"])
    lines += prefixed(lines[:40], PREFIXES["compose"])
    lines += [
        "2026-11-28T03:00:01.000Z WebSocket disconnect: { connectionId: 'a', code: 'abc', reason: '', duration: 1 }",
        "2026-13-45T03:00:03.000Z WebSocket disconnect: { connectionId: 'b', code: 1000, reason: '', duration: 1 }",
        "x2026-11-28T03:00:03.000Z WebSocket disconnect: { connectionId: 'g', code: 1000, reason: '', duration: 1 }",
        "12026-11-28T03:00:03.000Z WebSocket disconnect: { connectionId: 'h', code: 1000, reason: '', duration: 1 }",
        "WebSocket error: early 2026-11-28T03:00:03.000Z WebSocket disconnect: { connectionId: 'i', code: 1000, reason: '', duration: 1 }",
        "2026-11-28T03:00:03.000Z WebSocket disconnect: {",
    ]
    fast, slow = parse(lines), parse(lines, fast_path=False)
    pd.testing.assert_frame_equal(fast.frame, slow.frame)
    assert (fast.ignored_lines, fast.malformed_count) == (slow.ignored_lines, slow.malformed_count)
    assert fast.malformed_examples == slow.malformed_examples
    assert len(fast.frame) > 100


# --- the util.inspect parser itself -----------------------------------------------------------------


def test_parse_inspect_round_trips_json_compatible_values():
    """For JSON-compatible values, parsing Node's util.inspect text gives what JSON.stringify gives."""
    out, expected = run_node(r"""
const util = require('util');
const values = [
  { a: 1, 'b-c': 'it\'s', d: [1, 2.5, -3, null, true, false], e: { f: { g: 'deep' } } },
  ['a', "b'c", 'd"e', `f'g"h\`i`, '\\', '\n\t\r\b\f\v\0', 'é😀'],
  { long: 'word '.repeat(40), list: Array.from({ length: 30 }, (_, i) => ({ i })) },
  { n: -0.5, big: 12345678901234567890, small: 1e-7, exp: 1.5e300 },
  [],
  {},
];
for (const value of values) {
  console.log(util.inspect(value, { depth: Infinity, maxArrayLength: Infinity, breakLength: 80 }));
  console.log('\u0000');
  expect(value);
}
""")
    texts = out.split("\n\x00\n")[:-1]
    assert len(texts) == len(expected)
    for text, value in zip(texts, expected):
        assert parse_inspect(text) == value


def test_parse_inspect_special_values():
    """Buffers, Errors and labels come back as typed values; never evaluated."""
    assert parse_inspect("<Buffer 6f 6b ... 3 more bytes>") == Buffer(b"ok", 3)
    assert parse_inspect("[Circular *1]") == Opaque("[Circular *1]")
    assert parse_inspect("2026-11-28T03:00:00.000Z") == Opaque("2026-11-28T03:00:00.000Z")
    assert parse_inspect("<ref *1> { a: [Circular *1] }") == {"a": Opaque("[Circular *1]")}
    assert parse_inspect("Map(1) { 'k' => 1 }") == {"k": 1}
    assert parse_inspect("[ 1, <2 empty items>, ... 5 more items ]") == [1, Opaque("<2 empty items>")]
    assert parse_inspect("10n") == 10 and math.isnan(parse_inspect("NaN")) and parse_inspect("-Infinity") == -math.inf
    error = parse_inspect("Error: boom\n    at f (x.js:1:1) {\n  code: 'E'\n}")
    assert error == ErrorValue("Error: boom", {"code": "E"})
    assert parse_inspect("{ fn: [Function: require], x: 1 }") == {"fn": Opaque("[Function: require]"), "x": 1}


@pytest.mark.parametrize(
    "text, truncated",
    [
        ("{ a: 1", True),
        ("{ a: 'unterminated }", False),
        ("{ a: 1 } trailing", False),
        ("{ a: 1,, }", False),
        ("", True),
        ("[" * 5000, False),  # nested too deeply
        ("{ a: __import__('os').system('true') }", False),
    ],
)
def test_parse_inspect_rejects_broken_text(text, truncated):
    """Broken or hostile text raises InspectSyntaxError (truncated when it ends inside a value)."""
    with pytest.raises(InspectSyntaxError) as info:
        parse_inspect(text)
    assert info.value.truncated is truncated


def test_detect_scores_node_output_and_not_json_logs():
    """Node monitor lines score high; a JSON logger's lines that mention the marker do not count."""
    out, _ = run_node(MIXED_SCRIPT)
    assert node_monitor.detect(out.splitlines()) >= 0.9
    pino = ['{"level":30,"time":1764298800000,"msg":"WebSocket disconnect:","connectionId":"a","code":1006}']
    assert node_monitor.detect(pino) == 0.0
    assert node_monitor.detect(["hello", "world"]) == 0.0


def test_naive_prefix_times_take_the_log_timezone():
    """A monitor line stamped without a zone is read in log_timezone; UTC when none is given."""
    from runbook.logs import node_monitor

    lines = [f"2026-11-28T05:00:01.000 WebSocket disconnect: {{ connectionId: 'a{k}', code: 1006, reason: '', "
             "duration: 60012 }" for k in range(12)]
    shifted = node_monitor.parse(lines, "server.log", timezone="Europe/Berlin").frame["ts"]
    assert (shifted == pd.Timestamp("2026-11-28T04:00:01Z")).all()
    assert (node_monitor.parse(lines, "server.log").frame["ts"] == pd.Timestamp("2026-11-28T05:00:01Z")).all()


# --- the fast path read as columns (issue 11) ----------------------------------------------------------
# parse() reads the plain records as columns (node_monitor._parse_columns); columns=False reads every
# line with the line reader (_parse_chunk_fast), the fast path as it was. Both must give the same
# frame, counts and malformed examples for every input.

DATA = Path(__file__).resolve().parents[2] / "data"
STAMP = "2026-11-28T03:00:{:02d}.{:03d}Z"


def assert_same_parse(new, reference) -> None:
    pd.testing.assert_frame_equal(new.frame, reference.frame)
    assert (new.lines_total, new.ignored_lines, new.malformed_count) == (
        reference.lines_total, reference.ignored_lines, reference.malformed_count)
    assert new.malformed_examples == reference.malformed_examples


def assert_columns_read_like_lines(data: bytes, *, timezone: str | None = None, tokenizer: bool = False) -> None:
    """The columnar parse equals the line-by-line fast path for the log as bytes, text and lines
    (and the tokenizer's, when ``tokenizer``)."""
    text = data.decode("utf-8", errors="replace")
    for given in (lambda: to_log_text(data), lambda: data, lambda: text, lambda: text.split("\n")):
        new = node_monitor.parse(given(), "server.log", timezone=timezone)
        assert_same_parse(new, node_monitor.parse(given(), "server.log", timezone=timezone, columns=False))
        if tokenizer:
            assert_same_parse(new, node_monitor.parse(given(), "server.log", timezone=timezone, fast_path=False))


NODE_LOGS = sorted(
    [*DATA.glob("samples/*/server.log"), *DATA.glob("formats/node-ws.log"), *DATA.glob("corpus/*/server.log")]
)


@pytest.mark.parametrize("path", NODE_LOGS, ids=lambda p: str(p.relative_to(DATA)))
def test_columns_read_the_bundled_logs_as_the_line_reader(path):
    """Every Node log of data/ (samples, formats, corpus) gives the same result read as columns."""
    assert_columns_read_like_lines(path.read_bytes())


def test_columns_path_is_the_one_taken(monkeypatch):
    """A log held as UTF-8 is read as columns, not line by line; the result has its records."""
    lines = [
        f"{STAMP.format(1, 0)} WebSocket disconnect: {{ connectionId: 'a', code: 1006, reason: '', duration: 60012 }}",
        f"{STAMP.format(2, 0)} WebSocket connected: {{",
        "  connectionId: 'b',",
        "  ip: '::ffff:10.0.0.7',",
        f"  userAgent: '{IPHONE}'",
        "}",
    ]
    data = ("\n".join(lines) + "\n").encode()
    reference = node_monitor.parse(to_log_text(data), "server.log", columns=False)

    def line_by_line(*args, **kwargs):
        raise AssertionError("read line by line")

    monkeypatch.setattr(node_monitor, "_parse_chunk_fast", line_by_line)
    result = node_monitor.parse(to_log_text(data), "server.log")
    assert_same_parse(result, reference)
    assert result.frame["connection_id"].tolist() == ["a", "b"]
    assert result.frame["is_mobile"].tolist() == [pd.NA, True]
    assert result.frame["line_no"].tolist() == [1, 2]


def _value(rng: random.Random, choices: list[str]) -> str:
    value = rng.choice(choices)
    return "'" + value + "'" if rng.random() < 0.9 else rng.choice(['"' + value + '"', "undefined", "null", "42"])


def _record(rng: random.Random) -> list[str]:
    """One WebSocketMonitor record, mostly in the common shapes, sometimes broken or odd."""
    if rng.random() < 0.85:
        stamp = STAMP.format(rng.randint(0, 59), rng.randint(0, 999))
    else:
        stamp = rng.choice([
            "2026-13-45T03:00:03.000Z", "1899-12-31T23:59:59.999Z", "1900-01-01T00:00:00.000Z", "2199-12-31T23:59:59.999Z",
            "2200-01-01T00:00:00.000Z", "2025-02-29T00:00:00.000Z", "2024-02-29T00:00:00.000Z", "2026-11-28T24:00:00.000Z",
            "2026-11-28T23:59:60.000Z", "0000-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z", "2026-11-28T03:00:00Z",
            "2026-11-28T03:00:00.000+01:00", "2026-11-28 03:00:00.000", "1677-09-21T00:12:43.145Z",
        ])
    ids = ["a1", "", "x y", "it\\'s", "é", "WebSocket disconnect: x", "}", "{", "a\u2028b",
           f"{STAMP.format(0, 0)} WebSocket disconnect: {{ connectionId: 'q', code: 1, reason: '', duration: 1 }}"]
    texts = ["", "bye", "read ECONNRESET", "ü", "x\\ny", "WebSocket error: x", "a}b"]
    number = rng.choice([str(rng.randint(0, 120000)), f"{rng.randint(0, 99999)}.{rng.randint(0, 10**9)}", "0", "0012",
                         "1e5", "-5", "9" * 16, "31622400001", "1" + "0" * 14 + "." + "9" * 15, "NaN", "'12'", "1."])
    code = rng.choice(["1000", "1006", "1011", "4000", "0", "65535", "65536", "999999999", "1234567890", "-1", "'abc'", "true"])
    shape = rng.random()
    if shape < 0.55:
        fields = [("connectionId", _value(rng, ids)), ("code", code), ("reason", _value(rng, texts)), ("duration", number)]
    elif shape < 0.8:
        fields = [("connectionId", _value(rng, ids)), ("ip", _value(rng, ["::ffff:127.0.0.1", "", "é"])),
                  ("userAgent", _value(rng, [IPHONE, "curl/8.0", "", "tab\tua", "Android ü"]))]
    else:
        fields = [("connectionId", _value(rng, ids)), ("error", _value(rng, texts))]
    if rng.random() < 0.1:
        rng.shuffle(fields)
    if rng.random() < 0.05:
        fields = fields[:-1]
    head = f"{stamp}{rng.choice([' '] * 19 + ['  ', '', chr(9)])}WebSocket {rng.choice(['disconnect', 'connected', 'error'])}:"
    kind = rng.random()
    if kind < 0.55:
        tail = rng.choice(["", "", "", " ", "\t", " junk"])
        return [head + " { " + ", ".join(f"{k}: {v}" for k, v in fields) + " }" + tail]
    if kind < 0.9:
        indent = lambda: "  " if rng.random() < 0.95 else rng.choice(["   ", " ", "\t", "  \t", ""])  # noqa: E731
        body = [indent() + f"{k}: {v}" + ("," if n < len(fields) - 1 else "") for n, (k, v) in enumerate(fields)]
        if rng.random() < 0.05:
            body = body[: rng.randint(0, len(body))]
        if rng.random() < 0.03:
            body = body * 25  # past the 64 lines a flat object may span
        if body and rng.random() < 0.05:
            body[0] += ", " + body[-1].strip()
        close = rng.choice(["}"] * 23 + ["} ", "]", " }", ""])
        return [head + " {"] + body + ([close] if close else [])
    if kind < 0.95:
        return [head + " RangeError: Invalid WebSocket frame: invalid status code 1005",
                "    at Receiver.controlMessage (/app/node_modules/ws/lib/receiver.js:1:1)"]
    return [head + " " + rng.choice(["Error: x", "'bare message'", "{ connectionId: 'a', nested: { a: 1 } }", "{", ""])]


_NOISE = ["", " ", "\t", "Server listening on :8080", "  at foo (x.js:1:1)", "}", "  connectionId: 'stray',", "\u00a0",
          "\u2028", "\x0b", "\x1c", "ünïcode noise", "note: WebSocket disconnect happened", "\x1b[31mred", " \t ",
          f"{STAMP.format(0, 0)} Server heartbeat: 3 open connections"]
_PREFIXES = [
    lambda rng: "web-1  | ",
    lambda rng: f"2026-11-28T03:00:0{rng.randint(0, 9)}.{rng.choice(['1', '12345678'])}Z stdout F ",
    lambda rng: f"Nov 28 03:00:0{rng.randint(0, 9)} web-1 node[4242]: ",
    lambda rng: f"[2026-11-28 03:00:0{rng.randint(0, 9)},{rng.randint(0, 9)}23] INFO ",
    lambda rng: rng.choice(["x", "1", "  ", "WebSocket error: early ", "2026-11-28T03:00:00.000Z ",
                            "2026-11-28T03:00:00.000Z WebSocket"]),
]


def generated_log(seed: int, records: int) -> bytes:
    """A log mixing records of every shape, noise, log prefixes, CRLF, a BOM and bytes not UTF-8."""
    rng = random.Random(seed)
    prefixed, prefix = rng.random(), rng.choice(_PREFIXES)
    lines: list[str] = []
    for _ in range(records):
        record = _record(rng) if rng.random() < 0.8 else [rng.choice(_NOISE)]
        if prefixed < 0.3:  # a shipper prefix on (nearly) every physical line
            record = [prefix(rng) + line if k == 0 or rng.random() < 0.8 else line for k, line in enumerate(record)]
        elif prefixed < 0.4 and rng.random() < 0.2:
            record = [rng.choice(_PREFIXES)(rng) + line for line in record]
        lines.extend(record)
    data = ("\n".join(lines) + ("\n" if rng.random() < 0.8 else "")).encode()
    if rng.random() < 0.2:
        data = data.replace(b"\n", b"\r\n")
    if rng.random() < 0.3:
        at = rng.randint(0, len(data))
        data = data[:at] + rng.choice([b"\xff\xfe", b"\x80", b"\xc3", b"\x00"]) + data[at:]
    if rng.random() < 0.1:
        data = b"\xef\xbb\xbf" + data
    return data


@pytest.mark.parametrize("seed", range(40))
def test_columns_read_generated_logs_as_the_line_reader_and_the_tokenizer(seed):
    """Generated logs (every shape, prefixes, broken records, bad times and codes, junk bytes) give
    the same result read as columns, line by line and by the tokenizer."""
    assert_columns_read_like_lines(generated_log(seed, [1, 5, 40, 300][seed % 4]),
                                   timezone="Europe/Paris" if seed % 5 == 0 else None, tokenizer=True)


def test_columns_read_a_long_log_across_chunks_as_the_line_reader(monkeypatch):
    """With the line reader's chunks a few lines long, records cross chunk boundaries: still the same."""
    data = b"".join(generated_log(seed, 200) + b"\n" for seed in range(100, 106))
    expected = node_monitor.parse(to_log_text(data), "server.log")
    monkeypatch.setattr(node_monitor, "CHUNK_LINES", 7)
    assert_same_parse(expected, node_monitor.parse(to_log_text(data), "server.log", columns=False))


FAST = f"{STAMP.format(1, 0)} WebSocket disconnect: {{ connectionId: 'a', code: 1006, reason: '', duration: 5 }}"
BLOCK = [f"{STAMP.format(2, 0)} WebSocket connected: {{", "  connectionId: 'b',", "  ip: '1.2.3.4',",
         f"  userAgent: '{IPHONE}'", "}"]
# a record whose prefix ends in "WebSocket": its continuation lines are lines that start with a stamp
CLAIMING = f"{STAMP.format(0, 0)} WebSocket{STAMP.format(0, 0)} WebSocket connected: {{"


@pytest.mark.parametrize("lines", [
    [CLAIMING, *BLOCK, "  x: 1", "}", FAST],  # the record above claims a flat object's first line
    [CLAIMING, FAST, "  connectionId: 'z'", "}", FAST],  # ... or a single-line record
    [*BLOCK[:3], "  userAgent: 'WebSocket error: x'", "}", FAST],  # a marker inside a flat object
    [*BLOCK[:2], "  " + FAST, "}", FAST],  # a whole record inside an object: not flat
    [*BLOCK[:2], "  reason: '", "  " + FAST.replace("'a'", "'"), "}"],  # a quote across lines
    [*BLOCK, "web-1  | " + FAST, "web-1  | " + BLOCK[0], "web-1  |   connectionId: 'q',", "web-1  | }"],
    BLOCK[:-1],  # cut at the end of the log
    [BLOCK[0], *["  connectionId: 'b',"] * 62, "}"],  # 64 lines: past what a flat object may span
    [BLOCK[0], *["  connectionId: 'b',"] * 61, "  ip: '1', userAgent: 'x'", "}"],  # 63 lines: flat
    [BLOCK[0], "}"],
    ["2026-13-01T00:00:00.000Z WebSocket connected: {", "  connectionId: 'b',", "  code: 99999,", "  reason: '',",
     "  duration: 5", "}", "1899-01-01T00:00:00.000Z WebSocket error: { connectionId: 'e', error: 'x' }"],
    [FAST.replace("1006", "70000"), FAST.replace("duration: 5", "duration: 99999999999999"), *BLOCK],
    [FAST.replace("'a'", "'é'"), *BLOCK[:3], "  userAgent: 'ü'", "}", FAST],  # not ASCII: line by line
    [f"{STAMP.format(1, 0)} WebSocket disconnect: {{ connectionId: 'a', error: 'boom' }}", *BLOCK[:2], "  error: 'x'", "}"],
    ["", " ", "\t"],
    [""],
])
def test_columns_read_odd_neighbours_as_the_line_reader(lines):
    """Records that claim the lines below them, markers inside objects, objects that are not flat,
    bad times and values out of range: the same result read as columns and line by line."""
    for newline in ("\n", "\r\n"):
        assert_columns_read_like_lines((newline.join(lines) + newline).encode())


def test_text_that_is_not_utf8_is_read_line_by_line():
    """Text with a lone surrogate cannot be one UTF-8 buffer: it is read line by line, as before."""
    lines = [FAST.replace("'a'", "'\ud800'"), FAST]
    assert_same_parse(node_monitor.parse(lines, "server.log"), node_monitor.parse(lines, "server.log", columns=False))
    assert node_monitor.parse(lines, "server.log").frame["connection_id"].tolist() == ["\ufffd", "a"]
