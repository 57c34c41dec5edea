"""End-to-end: `ws-runbook run` on the bundled samples against papermill on an empty notebook.

Both run in fresh processes in the same session, alternating, so machine noise hits both alike.
Printed as a table; the bar (issue 2) is a ratio of at most 2.5.

    python benchmarks/bench_run.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.ipynb"
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("")])
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(notebook, empty)
        baseline = [BIN / "papermill", str(empty), str(Path(tmp) / "out.ipynb"), "-k", "python3", "--no-progress-bar"]
        ours = [BIN / "ws-runbook", "run", "--output-dir", str(Path(tmp) / "report")]
        times: dict[str, list[float]] = {"papermill, empty notebook": [], "ws-runbook run, samples": []}
        for _ in range(args.repeat):
            times["papermill, empty notebook"].append(timed([str(c) for c in baseline]))
            times["ws-runbook run, samples"].append(timed([str(c) for c in ours]))
    base = statistics.median(times["papermill, empty notebook"])
    print(f"{'command':<28} {'median s':>9} {'min s':>7} {'ratio':>6}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<28} {median:>9.2f} {min(values):>7.2f} {median / base:>6.2f}")
    print(f"bar: ratio <= 2.5 (repeat={args.repeat})")


if __name__ == "__main__":
    main()
