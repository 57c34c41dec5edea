"""Record data/formats/chrome-console.log and chrome.har from a real headless Chromium.

    .venv/bin/python data/formats/produce_browser.py

A page (served from loopback) opens WebSockets to: a python-websockets echo server (a session
the page closes with 1000, and one the server drops at once), a gateway that answers 502, and a
port where nothing listens; app code logs each CloseEvent as many apps do. The console
messages Chromium printed are saved as a DevTools console export reads
(``file:line message``), and Playwright records the HAR of the page.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PAGE = """<!doctype html><title>ws</title><script>
function open(url, closeAfterMs) {
  const ws = new WebSocket(url);
  ws.onopen = () => { ws.send('hello'); if (closeAfterMs) setTimeout(() => ws.close(1000, 'bye'), closeAfterMs); };
  ws.onclose = (event) => console.log('socket closed', url, 'code:', event.code, 'reason:', event.reason, 'wasClean:', event.wasClean);
}
open('ws://127.0.0.1:%(echo)d/ws/chat', 300);
open('ws://127.0.0.1:%(echo)d/ws/drop', 0);
open('ws://127.0.0.1:%(gateway)d/ws/chat', 0);
open('ws://127.0.0.1:%(closed)d/ws/chat', 0);
const early = new WebSocket('ws://127.0.0.1:%(echo)d/ws/chat'); early.close();
</script>"""


def serve_forever(ports: dict[str, int], ready: threading.Event, stop: threading.Event) -> None:
    import websockets
    from websockets.asyncio.server import serve

    async def handler(ws):
        if ws.request.path == "/ws/drop":
            ws.transport.abort()  # no close frame: the page sees 1006
            return
        async for message in ws:
            await ws.send(message)

    async def gateway(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    async def page(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        body = (PAGE % ports).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        writer.close()

    async def main():
        async with serve(handler, "127.0.0.1", ports["echo"]):
            gateway_server = await asyncio.start_server(gateway, "127.0.0.1", ports["gateway"])
            page_server = await asyncio.start_server(page, "127.0.0.1", ports["page"])
            async with gateway_server, page_server:
                ready.set()
                while not stop.is_set():
                    await asyncio.sleep(0.05)

    assert websockets
    asyncio.run(main())


def main() -> None:
    from playwright.sync_api import sync_playwright

    ports = {"echo": free_port(), "gateway": free_port(), "closed": free_port(), "page": free_port()}
    ready, stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=serve_forever, args=(ports, ready, stop), daemon=True)
    thread.start()
    ready.wait(10)
    lines = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            context = browser.new_context(record_har_path=str(HERE / "chrome.har"))
            page = context.new_page()

            def on_console(message):
                location = message.location or {}
                where = f"{Path(location.get('url', '')).name or 'page'}:{location.get('lineNumber', 0) + 1}"
                lines.append(f"{where} {message.text}")

            page.on("console", on_console)
            page.goto(f"http://127.0.0.1:{ports['page']}/")
            page.wait_for_timeout(2000)
            context.close()
            browser.close()
    finally:
        stop.set()
        thread.join(10)
    (HERE / "chrome-console.log").write_text("\n".join(lines) + "\n")
    print(len(lines), "console lines")


if __name__ == "__main__":
    main()
