"""Record data/formats/node-ws.log from real Node ws and Socket.IO servers and clients on loopback.

    npm install --prefix /tmp/node-formats socket.io@4 socket.io-client@4 ws@8
    NODE_PATH=/tmp/node-formats/node_modules .venv/bin/python data/formats/produce_node.py

The Node script below logs as a typical app does (ISO time, level, message) the errors ``ws``
raises (a gateway answering 502, a server that never answers the handshake, a connection
closed before it was established) and the reason Socket.IO gives each ``disconnect`` (a client
that leaves, a client whose TCP connection is destroyed, a raw engine.io client that never
answers pings); ``DEBUG=socket.io:socket`` adds Socket.IO's own trace lines (stderr, where the
debug module writes them with an ISO time when not on a terminal).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

SCRIPT = r"""
const http = require('http');
const net = require('net');
const WebSocket = require('ws');
const { Server } = require('socket.io');
const ioClient = require('socket.io-client');
const log = (level, message) => console.log(`${new Date().toISOString()} ${level}: ${message}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function wsErrors() {
  const gateway = http.createServer((req, res) => { res.writeHead(502); res.end(); });
  const silent = net.createServer(() => {});  // accepts TCP, never answers the handshake
  await new Promise((r) => gateway.listen(0, '127.0.0.1', r));
  await new Promise((r) => silent.listen(0, '127.0.0.1', r));
  const attempt = (url, options, early) => new Promise((resolve) => {
    const ws = new WebSocket(url, options);
    ws.on('error', (err) => { log('error', `ws client error: ${err.message}`); resolve(); });
    ws.on('close', (code) => { log('info', `ws client close ${code}`); resolve(); });
    if (early) ws.close();
  });
  await attempt(`ws://127.0.0.1:${gateway.address().port}/ws`, {});
  await attempt(`ws://127.0.0.1:${silent.address().port}/ws`, { handshakeTimeout: 300 });
  await attempt(`ws://127.0.0.1:${gateway.address().port}/ws`, {}, true);
  gateway.close(); silent.close();
}

async function socketIo() {
  const server = http.createServer();
  const io = new Server(server, { pingInterval: 300, pingTimeout: 200 });
  io.on('connection', (socket) => {
    log('info', `socket ${socket.id} connected`);
    socket.on('disconnect', (reason) => log('warn', `socket ${socket.id} disconnected: ${reason}`));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}`;
  const leaving = ioClient(url, { transports: ['websocket'] });
  await new Promise((r) => leaving.on('connect', r));
  leaving.disconnect();                                 // client namespace disconnect
  const dropped = ioClient(url, { transports: ['websocket'] });
  await new Promise((r) => dropped.on('connect', r));
  dropped.io.engine.transport.ws._socket.destroy();     // transport close
  const raw = new WebSocket(`ws://127.0.0.1:${server.address().port}/socket.io/?EIO=4&transport=websocket`);
  raw.on('message', (data) => { if (String(data).startsWith('0')) raw.send('40'); });  // then never pong
  await sleep(1500);                                    // ping timeout
  raw.terminate(); dropped.close();
  io.close();
}

(async () => { await wsErrors(); await socketIo(); process.exit(0); })();
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as run:
        script = Path(run) / "produce.js"
        script.write_text(SCRIPT)
        env = dict(os.environ, DEBUG="socket.io:socket", DEBUG_COLORS="0")
        done = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=60, env=env, check=True)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    lines.sort(key=lambda line: line.split(" ", 1)[0])  # stdout and stderr on one timeline
    (HERE / "node-ws.log").write_text("\n".join(lines) + "\n")
    print(len(lines), "lines")


if __name__ == "__main__":
    main()
