"""HAR files (browser DevTools / Playwright exports) with WebSocket entries.

A HAR is one JSON document (``{"log": {"entries": [...]}}``), not a line log. An entry is a
WebSocket when its ``_resourceType`` is ``websocket`` or its URL is ``ws://``/``wss://``:

- status 101: a ``connect`` at ``startedDateTime``; when Chrome kept its frames
  (``_webSocketMessages``, times in epoch seconds) the last frame's time is the last sign of life,
  recorded in the reason (epoch seconds from Chrome, milliseconds from Playwright; HAR keeps no close event, so no ``disconnect`` is invented).
- any other status (Playwright writes -1 when no response came): ``handshake failed: HTTP 502
  on /ws/chat``, or ``connection failed: no HTTP response (ws://...)``.

Nothing lost: a HAR that parses counts all its lines as record lines; one that does not parse
is one malformed line (with the JSON error) and the rest ignored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from urllib.parse import urlsplit

import orjson

from runbook.logs.common import MalformedCollector, to_lines
from runbook.logs.lines import Record, parse_lines

NAME = "har"


def _records(document: object) -> list[Record]:
    entries = document.get("log", {}).get("entries", []) if isinstance(document, dict) else []
    records = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        request = entry.get("request") if isinstance(entry.get("request"), dict) else {}
        url = str(request.get("url", ""))
        if entry.get("_resourceType") != "websocket" and not url.startswith(("ws://", "wss://")):
            continue
        status = (entry.get("response") or {}).get("status") if isinstance(entry.get("response"), dict) else None
        agent = next((h.get("value") for h in request.get("headers", []) if isinstance(h, dict)
                      and str(h.get("name", "")).lower() == "user-agent"), None)
        record = Record(event="connect", ts=entry.get("startedDateTime"), user_agent=agent,
                        client_ip=None, connection_id=entry.get("_requestId") or entry.get("_id"))
        if status == 101:
            messages = entry.get("_webSocketMessages") or []
            times = [m.get("time") for m in messages if isinstance(m, dict) and isinstance(m.get("time"), (int, float))]
            if times:
                latest = max(times)  # Chrome writes epoch seconds, Playwright milliseconds
                last = dt.datetime.fromtimestamp(latest / 1000 if latest > 1e11 else latest, dt.timezone.utc).isoformat()
                record.reason = f"{len(messages)} frames, the last at {last}"
        elif isinstance(status, int) and status >= 100:
            record.event, record.reason = "error", f"handshake failed: HTTP {status} on {urlsplit(url).path or '/'}"
        else:
            record.event, record.reason = "error", f"connection failed: no HTTP response ({url.split('?', 1)[0]})"
        records.append(record)
    return records


class HarFormat:
    NAME = NAME
    STRUCTURAL = True
    WHOLE_FILE = True  # one JSON document: runbook.logfiles never cuts it into parts
    description = "HAR export with WebSocket entries (Chrome DevTools, Playwright)"

    def detect(self, sample: list[str]) -> float:
        head = "".join(sample[:20])
        return 0.95 if '"log"' in head and ('"entries"' in "".join(sample) or '"creator"' in head) else 0.0

    def parse(self, lines: Iterable[str], source: str, *, timezone=None) -> object:
        lines = to_lines(lines)
        text = "\n".join(lines)
        if not text.strip():
            result = parse_lines(NAME, lambda line: None, lines, source, timezone=timezone)
            result.record_lines = 0
            return result
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            result = parse_lines(NAME, lambda line: None, [], source, timezone=timezone)
            malformed = MalformedCollector()
            malformed.add(1, text, f"not a HAR (JSON does not parse: {exc})")
            nonblank = sum(1 for line in lines if line.strip())
            result.lines_total, result.malformed_count, result.malformed_examples = len(lines), 1, malformed.examples
            result.ignored_lines, result.record_lines = max(nonblank - 1, 0), 0
            return result
        records = _records(document)
        iterator = iter(records)
        # One pseudo-line per record through the shared frame builder, then the real line counts.
        result = parse_lines(NAME, lambda _line: next(iterator), ["entry"] * len(records), source, timezone=timezone)
        result.lines_total = len(lines)
        result.record_lines = sum(1 for line in lines if line.strip())
        result.ignored_lines = 0
        result.frame["line_no"] = 1
        return result


HAR = HarFormat()
