"""Open an HTML file in real headless Chromium and report what happened (a test helper).

Uses playwright's sync API with the system Chromium (``/usr/bin/chromium``, or the path in
``RUNBOOK_CHROMIUM``); playwright's own browser downloads are never needed. Only ``file:`` and
``data:`` URLs may load: any other request is recorded and aborted, so a test can prove that a
report works offline without the test itself touching the network.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = os.environ.get("RUNBOOK_CHROMIUM", "/usr/bin/chromium")

# Headless as root, in a sandbox-less container: without the background-networking flags
# Chromium's own connections (updates, sync, field trials) fail and log noise into the console.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

LOCAL_SCHEMES = ("file:", "data:")

# Figures are drawn when every plotly div holds an SVG; scripts that never ran leave none.
_PLOTS_DRAWN = """() => {
    const divs = [...document.querySelectorAll('.plotly-graph-div')];
    return divs.every(d => d.querySelector('svg.main-svg'));
}"""

_PAGE_FACTS = """() => ({
    figure_divs: document.querySelectorAll('.plotly-graph-div').length,
    plots: document.querySelectorAll('.js-plotly-plot').length,
    plots_with_svg: [...document.querySelectorAll('.js-plotly-plot')]
        .filter(p => p.querySelector('svg.main-svg')).length,
    xss: typeof window.__xss === 'undefined' ? null : String(window.__xss),
    text: document.body ? document.body.innerText : '',
})"""


@dataclass
class PageReport:
    """What a page did while loading in Chromium."""

    url: str
    console_errors: list[str] = field(default_factory=list)  # console "error" + uncaught errors
    requests: list[str] = field(default_factory=list)  # every URL requested, in order
    blocked: list[str] = field(default_factory=list)  # requests aborted for leaving file:/data:
    figure_divs: int = 0  # ".plotly-graph-div" containers in the page
    plots: int = 0  # ".js-plotly-plot": containers plotly.js initialised
    plots_with_svg: int = 0  # of those, how many hold an "svg.main-svg"
    text: str = ""  # the visible text of the body
    xss: str | None = None  # String(window.__xss) when any script set it
    dialogs: list[str] = field(default_factory=list)  # alert/confirm/prompt messages

    def xss_fired(self) -> bool:
        """True when injected script ran: ``window.__xss`` was set or a dialog opened."""
        return self.xss is not None or bool(self.dialogs)

    def nonlocal_requests(self) -> list[str]:
        """Requests for anything but ``file:`` and ``data:`` URLs (blocked or not)."""
        return [url for url in self.requests if not url.startswith(LOCAL_SCHEMES)]


def open_in_chromium(html_path: str | os.PathLike, timeout_s: float = 60.0) -> PageReport:
    """Load ``html_path`` as a ``file://`` URL in a fresh headless Chromium and report on it.

    Waits for the load event and then, up to ``timeout_s``, for every plotly figure to draw;
    a figure that never draws is reported in the counts, not raised. Raises playwright's errors
    when Chromium cannot start or the page cannot load at all.
    """
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    url = Path(html_path).resolve().as_uri()
    report = PageReport(url=url)
    timeout_ms = timeout_s * 1000

    def on_route(route) -> None:
        request_url = route.request.url
        if request_url.startswith(LOCAL_SCHEMES):
            route.continue_()
        else:
            report.blocked.append(request_url)
            route.abort()

    def on_dialog(dialog) -> None:
        report.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    profile_dir = tempfile.TemporaryDirectory(prefix="ws-runbook-chromium-")
    with profile_dir as profile, sync_playwright() as pw:
        # A persistent context is how playwright accepts an explicit, fresh user-data-dir.
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=list(CHROMIUM_ARGS),
            offline=False,  # blocking is done by the route below, which also records the URL
        )
        try:
            context.route("**/*", on_route)
            page = context.new_page()
            page.on("request", lambda request: report.requests.append(request.url))
            page.on("websocket", lambda ws: report.requests.append(ws.url))
            page.on(
                "console",
                lambda msg: report.console_errors.append(msg.text) if msg.type == "error" else None,
            )
            page.on("pageerror", lambda err: report.console_errors.append(f"pageerror: {err}"))
            page.on("dialog", on_dialog)
            page.goto(url, wait_until="load", timeout=timeout_ms)
            try:
                page.wait_for_function(_PLOTS_DRAWN, timeout=timeout_ms)
            except PlaywrightError:
                pass  # the counts below show which figures did not draw
            facts = page.evaluate(_PAGE_FACTS)
        finally:
            context.close()

    report.figure_divs = facts["figure_divs"]
    report.plots = facts["plots"]
    report.plots_with_svg = facts["plots_with_svg"]
    report.xss = facts["xss"]
    report.text = facts["text"]
    return report
