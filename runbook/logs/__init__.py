"""Close-log parsers: text or lines in, the normalized close-log frame (``LOG_COLUMNS``) out.

Formats live in a registry (``FORMATS``): ``node_monitor`` (the reference runbook's Node ``ws``
WebSocketMonitor on stdout), ``jsonlines``, ``nginx_access`` and ``nginx_error``, and the
formats of the other modules here (each names its own). ``parse_log`` detects the format per
file and reports its confidence; the caller opens the files.
"""

from runbook.logs.common import is_mobile_user_agent
from runbook.logs.node_monitor import parse_inspect
from runbook.logs.registry import (
    FORMATS,
    LogFormat,
    combine_logs,
    combine_states,
    detect_format,
    detect_format_scored,
    parse_log,
    register_format,
)

__all__ = [
    "FORMATS",
    "LogFormat",
    "combine_logs",
    "combine_states",
    "detect_format",
    "detect_format_scored",
    "is_mobile_user_agent",
    "parse_inspect",
    "parse_log",
    "register_format",
]
