"""All probes in one run (:func:`probe_all`, :func:`probe_url`) and its terminal summary.

One run, bounded by about ``probe_seconds`` plus the handshake timeout and a second to settle:

1. the handshake probe on ``target_url`` and ``direct_url`` side by side;
2. if the target answered 101: the heartbeat probe and the churn probe on it, concurrently,
   for ``probe_seconds`` (a failed handshake skips them, with the reason);
3. all along, when ``server_port`` or ``server_pid`` is given: socket states and the server
   process, sampled from before the first connection to a second after the last one closed.

:func:`format_probe_report` renders a ProbeReport (and optionally the signals the probe rules
drew from it) as plain text lines for a terminal; every server-provided string is stripped of
control characters first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from runbook.errors import ParameterError
from runbook.observations import (
    TCP_STATES,
    ChurnResult,
    ConnectionFate,
    HandshakeResult,
    HeartbeatResult,
    ProbeReport,
    ProcessResult,
    SocketStatesResult,
)
from runbook.probes.churn import DEFAULT_CONNECTIONS, ChurnProgress, churn_target
from runbook.probes.handshake import DEFAULT_TIMEOUT_S, handshake_target
from runbook.probes.heartbeat import DEFAULT_PROBE_SECONDS, MIN_PROBE_SECONDS, heartbeat_target
from runbook.probes.runner import run_sync
from runbook.probes.server import DEFAULT_SETTLE_S, ServerSampler
from runbook.probes.target import prepare_target

ProgressArg = bool | Callable[[ChurnProgress], None] | None
DEFAULT_CHURN_HOLD_S = 1.0
MAX_CYCLING_SLOTS = 10


async def probe_all(target_url: str, direct_url: str | None = None, *,
                    probe_seconds: float = DEFAULT_PROBE_SECONDS,
                    connections: int = DEFAULT_CONNECTIONS, header_env: Sequence[str] = (),
                    insecure_tls: bool = False, server_port: int | None = None,
                    server_pid: int | None = None, origin: str | None = None,
                    churn_hold_s: float | None = DEFAULT_CHURN_HOLD_S,
                    churn_cycling_slots: int | None = None, max_in_flight: int | None = None,
                    handshake_timeout_s: float = DEFAULT_TIMEOUT_S,
                    progress: ProgressArg = None) -> ProbeReport:
    """Run every probe the inputs allow and return what they measured (see the module docstring).

    The churn probe holds most connections to the end and cycles ``churn_cycling_slots``
    (default: half of them, at most 10, so the probe adds at most ~10 handshakes per second) every
    ~``churn_hold_s`` seconds (None: no cycling): held ones show what kills long sessions,
    cycling ones time many handshakes and make the server serve (and clean up after) enough
    connections for the per-1,000 growth figures.

    ``progress`` True draws a bar (tqdm; tqdm.auto in a notebook), a callable receives
    ChurnProgress updates, None/False shows nothing. Raises ParameterError for malformed URLs,
    header variables, ``probe_seconds`` (3-3600) or ``connections`` (1-10,000); network faults
    are results.
    """
    if not MIN_PROBE_SECONDS <= probe_seconds <= 3600:
        raise ParameterError("probe_seconds", f"must be between {MIN_PROBE_SECONDS:g} and 3600 seconds "
                                              "for the live probes")
    if not 1 <= connections <= 10_000:
        raise ParameterError("connections", "must be between 1 and 10000")
    target = prepare_target(target_url, header_env=header_env, origin=origin,
                            insecure_tls=insecure_tls, parameter="target_url")
    direct = None
    if direct_url:
        direct = prepare_target(direct_url, header_env=header_env, origin=target.origin,
                                insecure_tls=insecure_tls, parameter="direct_url")
    started = time.monotonic()
    report = ProbeReport(target_url=target.display_url,
                         direct_url=direct.display_url if direct else None, elapsed_s=0.0)
    if direct is None:
        report.skipped["handshake_direct"] = "direct_url not given"
    served = [0]

    def count_open() -> None:
        served[0] += 1

    sampler = None
    if server_port or server_pid:
        sampler = ServerSampler(server_port or None, server_pid or None, served=lambda: served[0])
        await sampler.start()
    else:
        report.skipped["sockets"] = report.skipped["process"] = "server_port / server_pid not given"
    bar = None
    try:
        jobs = [handshake_target(target, timeout_s=handshake_timeout_s)]
        if direct is not None:
            jobs.append(handshake_target(direct, timeout_s=handshake_timeout_s))
        handshakes = await asyncio.gather(*jobs)
        report.handshake_target = handshakes[0]
        report.handshake_direct = handshakes[1] if direct is not None else None
        served[0] += sum(1 for h in handshakes if h.ok)

        if not report.handshake_target.ok:
            reason = f"the handshake through target_url failed: {report.handshake_target.error}"
            report.skipped["heartbeat"] = report.skipped["churn"] = reason
        else:
            callback: Callable[[ChurnProgress], None] | None = None
            if progress is True:
                from runbook.probes.progress import ProgressBar

                bar = ProgressBar(probe_seconds, description="live probes")
                callback = bar
            elif callable(progress):
                callback = progress

            async def heartbeat() -> HeartbeatResult:
                result = await heartbeat_target(target, probe_seconds=probe_seconds)
                if result.ok:
                    served[0] += 2
                return result

            report.heartbeat, report.churn = await asyncio.gather(
                heartbeat(),
                churn_target(target, connections=connections, duration_s=probe_seconds,
                             hold_s=churn_hold_s, max_in_flight=max_in_flight, progress=callback,
                             cycling_slots=(min(connections // 2, MAX_CYCLING_SLOTS)
                                            if churn_cycling_slots is None else churn_cycling_slots),
                             on_open=count_open),
            )
    finally:
        if bar is not None:
            bar.close()
        if sampler is not None:
            # Also on cancellation: the sampler's own task must not outlive the run.
            report.sockets, report.process = await sampler.stop(settle_s=DEFAULT_SETTLE_S)
    report.elapsed_s = time.monotonic() - started
    return report


def probe_url(url: str, direct_url: str | None = None, *, probe_seconds: float = DEFAULT_PROBE_SECONDS,
              connections: int = DEFAULT_CONNECTIONS, header_env: Sequence[str] = (),
              insecure_tls: bool = False, server_port: int | None = None,
              server_pid: int | None = None, origin: str | None = None,
              churn_hold_s: float | None = DEFAULT_CHURN_HOLD_S, churn_cycling_slots: int | None = None,
              progress: ProgressArg = True) -> ProbeReport:
    """:func:`probe_all` from synchronous code: the CLI, a script, or a Jupyter cell (where a loop
    is already running; the probes then run in a worker thread). Same arguments and errors."""
    return run_sync(probe_all(url, direct_url, probe_seconds=probe_seconds, connections=connections,
                              header_env=header_env, insecure_tls=insecure_tls,
                              server_port=server_port, server_pid=server_pid, origin=origin,
                              churn_hold_s=churn_hold_s, churn_cycling_slots=churn_cycling_slots,
                              progress=progress))


# --- the terminal summary -------------------------------------------------------------------------


class SignalLike(Protocol):
    """What the summary shows of an evidence signal (runbook.diagnosis.Signal fits)."""

    name: str
    detail: str
    likelihood_ratios: Any


def clean(text: object, limit: int = 200) -> str:
    """``text`` safe for a terminal: control and format characters (ANSI escapes, CR, bidi
    overrides) replaced by '?', whitespace runs collapsed, cut to ``limit`` characters."""
    raw = " ".join(str(text).split())
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in raw)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _mib(size: float | None) -> str:
    return "-" if size is None else f"{size / 2**20:.1f} MiB"


def _handshake_lines(label: str, result: HandshakeResult | None, skipped: str | None) -> list[str]:
    if result is None:
        return [f"  {label:<7} skipped: {clean(skipped or 'not run')}"]
    phases = "  ".join(f"{name} {_ms(value)}" for name, value in
                       (("dns", result.dns_s), ("tcp", result.tcp_s), ("tls", result.tls_s),
                        ("upgrade", result.upgrade_s)) if value is not None)
    head = f"  {label:<7} {clean(result.url, 80)}"
    if result.ok:
        version = f"  {result.tls_version}" if result.tls_version else ""
        return [f"{head}  101 Switching Protocols, accept key valid  ({phases}){version}"]
    lines = [f"{head}  FAILED ({result.error_kind or 'error'})", f"          {clean(result.error, 300)}"]
    if phases:
        lines.append(f"          reached: {phases}")
    if result.status is not None:
        server = result.header("Server")
        if server:
            lines.append(f"          Server: {clean(server, 80)}")
        if result.body_excerpt:
            lines.append(f"          body: {clean(result.body_excerpt, 160)!s}")
    return lines


def _fate_line(fate: ConnectionFate | None) -> str:
    if fate is None:
        return "not opened"
    text = clean(fate.detail, 200)
    if fate.close_reason:
        text += f" (reason: {clean(fate.close_reason, 60)!r})"
    return text if fate.alive_at_end else f"DIED: {text}"


def _heartbeat_lines(result: HeartbeatResult | None, skipped: str | None) -> list[str]:
    if result is None:
        return [f"  skipped: {clean(skipped or 'not run')}"]
    lines = [f"  window {result.probe_seconds:g} s, our ping every {result.ping_every_s:.3g} s, "
             f"pong timeout {result.pong_timeout_s:.3g} s"]
    if not result.ok:
        return lines + [f"  FAILED: {clean(result.error, 300)}"]
    interval = result.server_ping_interval_s
    if result.server_pings:
        every = f", every {interval:.1f} s" if interval else ""
        lines.append(f"  server pings: {result.server_pings} on the idle connection{every}")
    else:
        lines.append("  server pings: none seen on the idle connection")
    lines.append(f"  idle:    {_fate_line(result.idle)}")
    lines.append(f"  pinging: {_fate_line(result.pinging)}")
    if result.rtt_s:
        lines.append(f"  pong RTT: p50 {_ms(result.rtt_percentile(0.5))}, p90 {_ms(result.rtt_percentile(0.9))}, "
                     f"max {_ms(max(result.rtt_s))} ({len(result.rtt_s)} pongs)")
    return lines


def _churn_lines(result: ChurnResult | None, skipped: str | None) -> list[str]:
    if result is None:
        return [f"  skipped: {clean(skipped or 'not run')}"]
    held = result.connections - result.cycling_slots
    hold = f"{held} held to the end"
    if result.cycling_slots:
        hold += f", {result.cycling_slots} reopened every ~{result.hold_s:g} s"
    lines = [f"  {result.connections} concurrent connections for {result.duration_s:g} s ({hold}, "
             f"at most {result.max_in_flight} handshakes in flight)"]
    if result.error:
        lines.append(f"  FAILED: {clean(result.error, 300)}")
    rate = result.close_rate_per_open_per_minute
    rate_text = "-" if rate is None else f"{rate:.1%} of open connections per minute"
    lines.append(f"  opened {result.opened}, failed handshakes {result.failed}, peer closes "
                 f"{result.closed_by_peer} ({rate_text}), closed by us {result.closed_by_us}")
    if result.opened:
        lines.append(f"  handshake latency: p50 {_ms(result.latency_p50_s)}, p90 {_ms(result.latency_p90_s)}, "
                     f"p99 {_ms(result.latency_p99_s)}, max {_ms(result.latency_max_s)}")
    if result.close_codes:
        codes = ", ".join(f"{code} x{count}" for code, count in result.close_codes.items())
        kinds = ", ".join(f"{kind} x{count}" for kind, count in result.end_kinds.items())
        lines.append(f"  peer closes: codes {codes}; ended by {kinds}")
    for reason, count in list(result.failures.items())[:3]:
        lines.append(f"  failure x{count}: {clean(reason, 200)}")
    return lines


def _sockets_lines(result: SocketStatesResult | None, skipped: str | None) -> list[str]:
    if result is None:
        return [f"  skipped: {clean(skipped or 'not run')}"]
    if not result.ok:
        return [f"  port {result.port}: FAILED: {clean(result.error, 300)}"]
    states = [s for s in TCP_STATES if result.peak(s)] or ["ESTABLISHED"]
    parts = [f"{s} {result.first(s)} -> {result.last(s)} (peak {result.peak(s)}, "
             f"{result.trend_per_minute(s):+.1f}/min)" for s in states]
    return [f"  port {result.port}, {len(result.samples)} samples over {result.elapsed_s:.0f} s"] + \
           [f"  {part}" for part in parts]


def _process_lines(result: ProcessResult | None, skipped: str | None) -> list[str]:
    if result is None:
        return [f"  skipped: {clean(skipped or 'not run')}"]
    if not result.ok:
        return [f"  FAILED: {clean(result.error, 300)}"]
    first, last = result.samples[0], result.samples[-1]
    rss_1k = result.per_1k_served(result.retained_rss_bytes)
    fds_1k = result.per_1k_served(result.retained_fds)
    lines = [f"  pid {result.pid} ({clean(result.name or '?', 40)}, {result.found_by}), "
             f"{result.served} connections served by our probes"]
    lines.append(f"  RSS {_mib(first.rss_bytes)} -> {_mib(last.rss_bytes)}"
                 + (f" ({_mib(rss_1k)} per 1,000 served)" if rss_1k is not None else ""))
    if first.fds is not None and last.fds is not None:
        lines.append(f"  open fds {first.fds} -> {last.fds}"
                     + (f" ({fds_1k:+.0f} per 1,000 served)" if fds_1k is not None else ""))
    if first.threads is not None and last.threads is not None:
        lines.append(f"  threads {first.threads} -> {last.threads}")
    return lines


def _signal_lines(signals: Iterable[SignalLike]) -> list[str]:
    lines = []
    for signal in signals:
        ratios = ", ".join(f"{cause} x{ratio:g}" for cause, ratio in
                           sorted(dict(signal.likelihood_ratios).items(), key=lambda kv: -kv[1]))
        lines.append(f"  - {clean(signal.name, 60)}: {clean(signal.detail, 300)}")
        if ratios:
            lines.append(f"      {ratios}")
    return lines or ["  (no probe evidence moved the ranking)"]


def summary_rows(report: ProbeReport) -> list[dict[str, str]]:
    """One row per probe, ``{"probe", "status", "saw"}``, for a notebook table.

    ``status`` is ok, failed or skipped; ``saw`` is the same text the terminal summary prints for
    that probe, lines joined with "; " (control characters stripped; still escape it for HTML).
    """
    skipped = report.skipped
    sections = [
        ("handshake (target)", report.handshake_target,
         _handshake_lines("target", report.handshake_target, skipped.get("handshake_target"))),
        ("handshake (direct)", report.handshake_direct,
         _handshake_lines("direct", report.handshake_direct, skipped.get("handshake_direct"))),
        ("heartbeat", report.heartbeat, _heartbeat_lines(report.heartbeat, skipped.get("heartbeat"))),
        ("churn", report.churn, _churn_lines(report.churn, skipped.get("churn"))),
        ("server sockets", report.sockets, _sockets_lines(report.sockets, skipped.get("sockets"))),
        ("server process", report.process, _process_lines(report.process, skipped.get("process"))),
    ]
    rows = []
    for name, result, lines in sections:
        status = "skipped" if result is None else ("ok" if result.ok else "failed")
        rows.append({"probe": name, "status": status, "saw": "; ".join(line.strip() for line in lines)})
    return rows


def format_probe_report(report: ProbeReport, signals: Iterable[SignalLike] | None = None) -> str:
    """The terminal summary of one probe run: plain text lines, no control characters from the
    server, no header values. ``signals`` (optional) adds an Evidence section."""
    skipped = report.skipped
    lines = [f"ws-runbook probe: {clean(report.target_url, 120)}  ({report.elapsed_s:.1f} s)", "",
             "Handshake"]
    lines += _handshake_lines("target", report.handshake_target, skipped.get("handshake_target"))
    if report.direct_url or report.handshake_direct is not None:
        lines += _handshake_lines("direct", report.handshake_direct, skipped.get("handshake_direct"))
    lines += ["", "Heartbeat and idle survival"]
    lines += _heartbeat_lines(report.heartbeat, skipped.get("heartbeat"))
    lines += ["", "Churn"]
    lines += _churn_lines(report.churn, skipped.get("churn"))
    lines += ["", "Server sockets"]
    lines += _sockets_lines(report.sockets, skipped.get("sockets"))
    lines += ["", "Server process"]
    lines += _process_lines(report.process, skipped.get("process"))
    if signals is not None:
        lines += ["", "Evidence"]
        lines += _signal_lines(signals)
    return "\n".join(lines) + "\n"
