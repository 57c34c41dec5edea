'use strict';
// A Node `ws` server instrumented with the reference runbook's WebSocketMonitor.
//
// It writes the "Node monitor" log format to stdout: every record starts with an ISO-8601 UTC
// timestamp (new Date().toISOString()), then the runbook's label and the object util.inspect
// prints for it, over several lines when it is long (connected records with a user agent are):
//
//   2026-05-09T07:35:25.123Z WebSocket connected: {
//     connectionId: '…', ip: '203.0.113.7', userAgent: 'Mozilla/5.0 …' }
//   2026-05-09T07:36:25.130Z WebSocket disconnect: { connectionId: '…', code: 1006, reason: '', duration: 60007 }
//   2026-05-09T07:36:25.130Z WebSocket error: { connectionId: '…', error: 'Invalid WebSocket frame: …' }
//
// Usage: node node_monitor_server.js --host 127.0.0.1 --port N --ping-interval-ms N
//        [--leak 1] [--leak-max N] [--max-connections N]
// --ping-interval-ms 0 runs without heartbeat, the ws default: idle connections then die
// silently at the first intermediary idle timeout. Any other value pings at that interval and
// terminates peers that did not answer the previous ping (the runbook's HeartbeatWebSocketServer).
// Each message a client sends is acknowledged, so chatty clients keep traffic flowing both ways.
// SIGTERM or SIGINT closes every connection with 1001 and exits.
//
// Faults: --leak 1 is the classic leaky handler: every connection registers a listener on a
// shared event bus and a presence interval, keeps a 128 KiB buffer, and none of it is removed
// when the socket closes (up to --leak-max connections). --max-connections N accepts
// connections beyond N open, then closes them at once with 1013 "try again later".

const crypto = require('crypto');
const WebSocket = require('ws');

function parseArgs(argv) {
  const options = { host: '127.0.0.1', port: 0, pingIntervalMs: 0, leak: false, leakMax: 1500,
    maxConnections: -1 };
  for (let i = 2; i < argv.length; i += 2) {
    const [name, value] = [argv[i], argv[i + 1]];
    if (name === '--host') options.host = value;
    else if (name === '--port') options.port = Number(value);
    else if (name === '--ping-interval-ms') options.pingIntervalMs = Number(value);
    else if (name === '--leak') options.leak = value === '1';
    else if (name === '--leak-max') options.leakMax = Number(value);
    else if (name === '--max-connections') options.maxConnections = Number(value);
    else throw new Error(`unknown argument ${name}`);
  }
  if (!Number.isInteger(options.port) || options.port <= 0) throw new Error('--port is required');
  return options;
}

const stamp = () => new Date().toISOString();

class WebSocketMonitor {
  constructor(wss) {
    this.wss = wss;
    this.connections = new Map();
    this.metrics = { totalConnections: 0, activeConnections: 0, disconnects: 0, errors: 0 };
    this.setupMonitoring();
  }

  generateId() {
    return crypto.randomUUID();
  }

  setupMonitoring() {
    this.wss.on('connection', (ws, req) => {
      const connectionId = this.generateId();
      // Behind nginx the socket peer is the proxy; the client address comes from its header.
      const forwarded = (req.headers['x-forwarded-for'] || '').split(',')[0].trim();
      const connectionInfo = {
        id: connectionId,
        ip: req.headers['x-real-ip'] || forwarded || req.socket.remoteAddress,
        userAgent: req.headers['user-agent'],
        connectedAt: new Date(),
        lastPing: new Date(),
      };

      this.connections.set(ws, connectionInfo);
      this.metrics.totalConnections++;
      this.metrics.activeConnections++;

      console.log(stamp(), 'WebSocket connected:', {
        connectionId,
        ip: connectionInfo.ip,
        userAgent: connectionInfo.userAgent,
      });

      ws.on('close', (code, reason) => {
        this.handleDisconnect(ws, code, reason);
      });

      ws.on('error', (error) => {
        this.handleError(ws, error);
      });

      ws.on('pong', () => {
        const info = this.connections.get(ws);
        if (info) info.lastPing = new Date();
      });
    });
  }

  handleDisconnect(ws, code, reason) {
    const info = this.connections.get(ws);
    this.metrics.activeConnections--;
    this.metrics.disconnects++;

    console.log(stamp(), 'WebSocket disconnect:', {
      connectionId: info?.id,
      code,
      reason: reason.toString(),
      duration: info ? Date.now() - info.connectedAt : 0,
    });

    this.connections.delete(ws);
  }

  handleError(ws, error) {
    const info = this.connections.get(ws);
    this.metrics.errors++;
    console.log(stamp(), 'WebSocket error:', {
      connectionId: info?.id,
      error: error.message,
    });
  }
}

function setupHeartbeat(wss, pingIntervalMs) {
  wss.on('connection', (ws) => {
    ws.isAlive = true;
    ws.on('pong', () => {
      ws.isAlive = true;
    });
    ws.pingTimer = setInterval(() => {
      if (!ws.isAlive) {
        ws.terminate();
        return;
      }
      ws.isAlive = false;
      ws.ping();
    }, pingIntervalMs);
    ws.on('close', () => clearInterval(ws.pingTimer));
  });
}

function setupLeak(wss, leakMax) {
  const EventEmitter = require('events');
  const bus = new EventEmitter();
  // Someone silenced the MaxListenersExceededWarning instead of fixing the leak (it would also
  // land in the log).
  bus.setMaxListeners(0);
  const sessions = [];
  wss.on('connection', (ws) => {
    if (sessions.length >= leakMax) return;
    const session = { ws, cache: Buffer.alloc(128 * 1024, 'x'), ticks: 0 };
    bus.on('broadcast', (message) => { session.last = message; });
    session.timer = setInterval(() => { session.ticks += 1; }, 1000);
    sessions.push(session);
  });
}

function setupShedding(wss, maxConnections) {
  wss.on('connection', (ws) => {
    if (wss.clients.size > maxConnections) ws.close(1013, 'try again later');
  });
}

function main() {
  const options = parseArgs(process.argv);
  const wss = new WebSocket.Server({ host: options.host, port: options.port });
  new WebSocketMonitor(wss);
  if (options.pingIntervalMs > 0) setupHeartbeat(wss, options.pingIntervalMs);
  if (options.leak) setupLeak(wss, options.leakMax);
  if (options.maxConnections >= 0) setupShedding(wss, options.maxConnections);

  let seq = 0;
  wss.on('connection', (ws) => {
    ws.on('message', () => {
      seq += 1;
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'ack', seq }));
    });
  });

  const shutdown = () => {
    for (const ws of wss.clients) ws.close(1001, 'server shutting down');
    // Bounded: peers that do not answer the close within 2 s are dropped with the process.
    setTimeout(() => process.exit(0), 2000).unref();
    wss.close(() => process.exit(0));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main();
