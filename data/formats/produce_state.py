"""Record data/formats/ss-snapshots.txt, netstat-snapshots.txt and server-state.csv from a real leak.

    .venv/bin/python data/formats/produce_state.py

A child python process listens on loopback and never closes the sockets it accepts (the
leak: each client's close leaves the server's socket in CLOSE_WAIT) and keeps 64 KiB per
connection. Clients connect in three waves and close; after each wave the script saves
``date -u`` + ``ss -tan`` and ``netstat -tan`` filtered to the server's port (the real tools'
output) and samples the child's RSS, fds and threads with psutil into the CSV, in the lab corpus
layout (``ts,port,rss_bytes,fds,threads,tcp_ESTABLISHED,tcp_CLOSE_WAIT``).
"""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
LEAKY_SERVER = """
import socket, sys
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", 0))
listener.listen(512)
print(listener.getsockname()[1], flush=True)
kept = []
while True:
    conn, _ = listener.accept()
    kept.append((conn, bytearray(64 * 1024)))  # never closed, never freed
"""


def snapshot(port: int) -> tuple[str, str, dict[str, int]]:
    stamp = subprocess.run(["date", "-u"], capture_output=True, text=True, check=True).stdout
    ss = subprocess.run(["ss", "-tan", f"( sport = :{port} )"], capture_output=True, text=True, check=True).stdout
    netstat = subprocess.run(["netstat", "-tan"], capture_output=True, text=True, check=True).stdout
    lines = netstat.splitlines()
    netstat = "\n".join(lines[:2] + [line for line in lines[2:] if f":{port} " in line]) + "\n"
    counts = {"ESTAB": 0, "CLOSE-WAIT": 0}
    for line in ss.splitlines()[1:]:
        state = line.split()[0]
        if state in counts:
            counts[state] += 1
    return stamp + ss, stamp + netstat, counts


def main() -> None:
    child = subprocess.Popen([sys.executable, "-c", LEAKY_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(child.stdout.readline())
        process = psutil.Process(child.pid)
        ss_text, netstat_text = [], []
        csv_rows = ["ts,port,rss_bytes,fds,threads,tcp_ESTABLISHED,tcp_CLOSE_WAIT"]
        held = []
        for wave in range(3):
            for _ in range(40):
                client = socket.create_connection(("127.0.0.1", port))
                client.close()  # the server never closes its side: CLOSE_WAIT
            for _ in range(5):
                held.append(socket.create_connection(("127.0.0.1", port)))  # stay ESTABLISHED
            time.sleep(0.5)
            ss_out, netstat_out, counts = snapshot(port)
            ss_text.append(ss_out)
            netstat_text.append(netstat_out)
            ts = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            csv_rows.append(
                f"{ts},{port},{process.memory_info().rss},{process.num_fds()},{process.num_threads()},"
                f"{counts['ESTAB']},{counts['CLOSE-WAIT']}"
            )
            time.sleep(1.0)
        (HERE / "ss-snapshots.txt").write_text("".join(ss_text))
        (HERE / "netstat-snapshots.txt").write_text("".join(netstat_text))
        (HERE / "server-state.csv").write_text("\n".join(csv_rows) + "\n")
        for sock in held:
            sock.close()
    finally:
        child.terminate()
        child.wait(timeout=10)


if __name__ == "__main__":
    main()
