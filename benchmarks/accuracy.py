"""How often the diagnosis is right, measured on the labeled corpus (data/corpus).

For every case of a split and every input mode it builds ``runbook.observations.Observations``
the way the runbook does and calls ``runbook.diagnosis.diagnose``:

- ``logs``: the case's logs (servers' close logs, the proxy's logs, server-state.csv: every file
  but the proxy config, probes.json and case.json), through the runbook's own
  ``runbook.steps.load_close_logs`` and ``runbook.logs.metrics.observe_logs``;
- ``logs+config``: plus the proxy config through the config lint (``runbook.configs``);
- ``logs+probes``: plus the live probes recorded during the case (probes.json);
- ``everything``: all of them.

Per mode it prints the confusion matrix (truth: a cause id, ``a+b`` for two faults, or
``healthy``; predicted: the leading cause, ``healthy`` or ``inconclusive``), accuracy (truth
first; healthy called healthy), the share "not wrong" (right, or an honest ``inconclusive`` with
every true cause in the top two), mean P(truth) and the Brier score over the faulty cases
(one-hot over the five causes; a two-fault case's truth is 0.5 on each), a reliability table of
the causes the runbook named (top probability binned, share right), the two-fault cases (both
causes in the top two?) and the healthy cases (verdict healthy with no symptom present?).
``--verbose`` adds one row per case; ``--json FILE`` writes every figure.

    python benchmarks/accuracy.py [--corpus data/corpus] [--split evaluation|calibration|all]
                                  [--modes logs logs+probes ...] [--verbose] [--json FILE]

Parsed logs, probes and config findings are computed once per case and reused by every mode.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from runbook.diagnosis import Cause, Diagnosis, SymptomStatus, Verdict, diagnose  # noqa: E402
from runbook.logs.metrics import observe_logs  # noqa: E402
from runbook.observations import Observations  # noqa: E402
from runbook.params import NO_HEARTBEAT  # noqa: E402

DEFAULT_CORPUS = ROOT / "data" / "corpus"
MODES = ("logs", "logs+config", "logs+probes", "everything")
SPLIT_CHOICES = ("evaluation", "calibration", "all")
CAUSES = tuple(cause.value for cause in Cause)
HEALTHY = "healthy"
INCONCLUSIVE = "inconclusive"
PREDICTIONS = (HEALTHY, *CAUSES, INCONCLUSIVE)
# Files of a case that are not logs: the proxy config goes to the lint, the rest is ground truth.
CONFIG_FILES = ("nginx.conf", "haproxy.cfg")
NOT_LOGS = (*CONFIG_FILES, "probes.json", "case.json")
# Reliability bins of the named cause's probability: [low, high), the last one closed.
BINS = ((0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.0))
CONFIDENT = 0.8


# --- cases ---------------------------------------------------------------------------------------


@dataclass
class Case:
    """One recorded corpus case: its truth and where its inputs are."""

    id: str
    split: str
    truth: tuple[str, ...]  # cause ids; () when healthy
    folder: Path
    log_files: list[Path]
    config: Path | None
    probes: Path | None
    target_url: str | None  # what the probes were given (its path picks the config location)
    # The python server's ping interval as configured (seconds, scaled with the case), or
    # NO_HEARTBEAT when it sends none: what a responder knows of their own server.
    heartbeat_s: float

    @property
    def truth_label(self) -> str:
        return "+".join(self.truth) if self.truth else HEALTHY


def load_case(folder: Path) -> Case:
    """The case recorded in ``folder`` (its case.json and files); ValueError if it is not one."""
    try:
        data = json.loads((folder / "case.json").read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{folder}: no readable case.json ({error})") from None
    unknown = set(data["true_causes"]) - set(CAUSES)
    if unknown:
        raise ValueError(f"{folder}: unknown true causes {sorted(unknown)}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name not in NOT_LOGS)
    config = next((folder / name for name in CONFIG_FILES if (folder / name).is_file()), None)
    probes = folder / "probes.json"
    given = (data.get("probes") or {}).get("given") or {}
    interval = (data.get("settings") or {}).get("python_ping_interval_s")
    return Case(id=data["id"], split=data["split"], truth=tuple(data["true_causes"]), folder=folder,
                log_files=files, config=config, probes=probes if probes.is_file() else None,
                target_url=given.get("target_url"), heartbeat_s=interval if interval else NO_HEARTBEAT)


def load_cases(corpus: Path, split: str = "evaluation", only: Iterable[str] = ()) -> list[Case]:
    """Every recorded case of ``split`` ("all": both), in id order; ``only`` narrows to those ids."""
    if split not in SPLIT_CHOICES:
        raise ValueError(f"split must be one of {', '.join(SPLIT_CHOICES)}, got {split!r}")
    wanted = set(only)
    cases = [load_case(path.parent) for path in sorted(Path(corpus).glob("*/case.json"))]
    return [case for case in cases
            if (split == "all" or case.split == split) and (not wanted or case.id in wanted)]


# --- observations, the way the runbook builds them ----------------------------------------------


class Inputs:
    """Each case's parsed logs, probe report and config findings, computed once per run."""

    def __init__(self) -> None:
        self._logs: dict[str, Any] = {}
        self._probes: dict[str, Any] = {}
        self._config: dict[str, Any] = {}

    def logs(self, case: Case) -> Any:
        if case.id not in self._logs:
            from runbook.logfiles import load_close_logs

            self._logs[case.id] = observe_logs(load_close_logs([str(path) for path in case.log_files]))
        return self._logs[case.id]

    def probes(self, case: Case) -> Any:
        if case.id not in self._probes:
            from runbook.probes.serialize import report_from_dict

            self._probes[case.id] = (None if case.probes is None
                                     else report_from_dict(json.loads(case.probes.read_text())))
        return self._probes[case.id]

    def config(self, case: Case, with_target: bool) -> Any:
        key = f"{case.id}:{with_target}"
        if key not in self._config:
            from runbook.configs import lint_paths

            path = urlsplit(case.target_url).path if with_target and case.target_url else None
            heartbeat = case.heartbeat_s if case.heartbeat_s > 0 else None
            self._config[key] = (None if case.config is None
                                 else lint_paths([str(case.config)], target_path=path or None, heartbeat_s=heartbeat))
        return self._config[key]

    def observations(self, case: Case, mode: str) -> Observations:
        """What the runbook would see given this mode's inputs of ``case``."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        seen = self.logs(case)
        obs = Observations(logs=seen.logs, state=seen.state, log_formats=list(seen.formats))
        if mode in ("logs+probes", "everything"):
            obs.probes = self.probes(case)
        if mode in ("logs+config", "everything"):
            # Without the probes the runbook has no target_url: the lint picks locations itself.
            # The config modes also know the server's ping interval (heartbeat_interval_s), as a
            # responder who reads their proxy config knows their own server's.
            obs.config = self.config(case, with_target=mode == "everything")
            obs.heartbeat_interval_s = case.heartbeat_s
        return obs


# --- outcomes and figures --------------------------------------------------------------------------


@dataclass
class Outcome:
    """What the diagnosis said about one case in one mode, reduced to what the figures need."""

    case_id: str
    truth: tuple[str, ...]
    predicted: str  # a cause id, "healthy" or "inconclusive"
    probabilities: dict[str, float]  # cause id -> probability (all five)
    verdict: str
    symptoms_present: list[str] = field(default_factory=list)

    @property
    def ranked(self) -> list[str]:
        return sorted(CAUSES, key=lambda cause: -self.probabilities.get(cause, 0.0))

    @property
    def right(self) -> bool:
        if not self.truth:
            return self.predicted == HEALTHY
        return self.predicted in self.truth

    @property
    def truth_in_top_two(self) -> bool:
        return bool(self.truth) and set(self.truth) <= set(self.ranked[:2])

    @property
    def not_wrong(self) -> bool:
        return self.right or (self.predicted == INCONCLUSIVE and self.truth_in_top_two)

    @property
    def p_truth(self) -> float:
        """Probability given to the truth: the true cause's, or the sum over both true causes."""
        return sum(self.probabilities.get(cause, 0.0) for cause in self.truth)

    @property
    def brier(self) -> float:
        """Squared error of the five probabilities against the truth (two faults: 0.5 each)."""
        weight = 1 / len(self.truth)
        return sum((self.probabilities.get(cause, 0.0) - (weight if cause in self.truth else 0.0)) ** 2
                   for cause in CAUSES)

    @property
    def truth_label(self) -> str:
        return "+".join(self.truth) if self.truth else HEALTHY


def outcome_of(case_id: str, truth: Sequence[str], diagnosis: Diagnosis) -> Outcome:
    """Reduce a Diagnosis: the verdict healthy wins, else the leading cause, else inconclusive."""
    if diagnosis.verdict is Verdict.HEALTHY:
        predicted = HEALTHY
    elif diagnosis.leading is None:
        predicted = INCONCLUSIVE
    else:
        predicted = diagnosis.leading.cause.value
    return Outcome(case_id=case_id, truth=tuple(truth), predicted=predicted,
                   probabilities={r.cause.value: float(r.probability) for r in diagnosis.ranked},
                   verdict=diagnosis.verdict.value,
                   symptoms_present=[s.id.value for s in diagnosis.symptoms
                                     if s.status is SymptomStatus.PRESENT])


def confusion(outcomes: Sequence[Outcome]) -> dict[str, dict[str, int]]:
    """truth label -> predicted -> count (every prediction column present)."""
    table: dict[str, dict[str, int]] = {}
    for outcome in outcomes:
        row = table.setdefault(outcome.truth_label, dict.fromkeys(PREDICTIONS, 0))
        row[outcome.predicted] += 1
    return dict(sorted(table.items(), key=lambda item: _truth_order(item[0])))


def _truth_order(label: str) -> tuple[int, str]:
    if label == HEALTHY:
        return (0, label)
    if label in CAUSES:
        return (1 + CAUSES.index(label), label)
    return (10, label)


def reliability(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """For the cases where a cause was named: per bin of its probability, count and share right."""
    named = [o for o in outcomes if o.predicted in CAUSES]
    rows = []
    for low, high in BINS:
        inside = [o for o in named
                  if low <= o.probabilities[o.predicted] < high
                  or (high == BINS[-1][1] and o.probabilities[o.predicted] == high)]
        rows.append({"bin": f"{low:.1f}-{high:.1f}", "confident": low >= CONFIDENT,
                     "count": len(inside),
                     "right": sum(o.right for o in inside),
                     "share_right": (sum(o.right for o in inside) / len(inside)) if inside else None})
    below = [o for o in named if o.probabilities[o.predicted] < BINS[0][0]]
    if below:
        rows.insert(0, {"bin": f"<{BINS[0][0]:.1f}", "confident": False, "count": len(below),
                        "right": sum(o.right for o in below),
                        "share_right": sum(o.right for o in below) / len(below)})
    return rows


def figures(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Every figure of one mode (see the module docstring)."""
    faulty = [o for o in outcomes if o.truth]
    healthy = [o for o in outcomes if not o.truth]
    two = [o for o in outcomes if len(o.truth) == 2]
    confident = [o for o in outcomes if o.predicted in CAUSES and o.probabilities[o.predicted] >= CONFIDENT]
    n = len(outcomes)
    return {
        "cases": n,
        "accuracy": sum(o.right for o in outcomes) / n if n else None,
        "not_wrong": sum(o.not_wrong for o in outcomes) / n if n else None,
        "faulty_truth_first": sum(o.right for o in faulty) / len(faulty) if faulty else None,
        "mean_p_truth": sum(o.p_truth for o in faulty) / len(faulty) if faulty else None,
        "brier": sum(o.brier for o in faulty) / len(faulty) if faulty else None,
        "confident_named": len(confident),
        "confident_right": (sum(o.right for o in confident) / len(confident)) if confident else None,
        "confusion": confusion(outcomes),
        "reliability": reliability(outcomes),
        "two_fault": [{"case": o.case_id, "truth": list(o.truth), "top_two": o.ranked[:2],
                       "both_in_top_two": o.truth_in_top_two} for o in two],
        "healthy": [{"case": o.case_id, "verdict": o.verdict, "symptoms_present": o.symptoms_present,
                     "ok": o.verdict == HEALTHY and not o.symptoms_present} for o in healthy],
    }


# --- the run ----------------------------------------------------------------------------------------


def evaluate(cases: Sequence[Case], modes: Sequence[str] = MODES,
             inputs: Inputs | None = None) -> dict[str, list[Outcome] | str]:
    """mode -> the outcome of every case, or the reason the mode could not be measured."""
    inputs = inputs or Inputs()
    results: dict[str, list[Outcome] | str] = {}
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        results[mode] = [outcome_of(case.id, case.truth, diagnose(inputs.observations(case, mode)))
                         for case in cases]
    return results


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def render(mode: str, outcomes: Sequence[Outcome], verbose: bool = False) -> list[str]:
    """The printed report of one mode."""
    data = figures(outcomes)
    short = {HEALTHY: "healthy", INCONCLUSIVE: "inconcl.", "resource_leak": "leak"}
    columns = [short.get(p, p) for p in PREDICTIONS]
    corner = "truth \\ predicted"
    width = max([len(corner), *(len(label) for label in data["confusion"])])
    lines = [f"== {mode}: {data['cases']} cases", "",
             f"{corner:<{width}}  " + "  ".join(f"{c:>9}" for c in columns)]
    for label, row in data["confusion"].items():
        lines.append(f"{label:<{width}}  " + "  ".join(f"{row[p]:>9}" for p in PREDICTIONS))
    lines += [
        "",
        f"accuracy (truth first; healthy called healthy): {_pct(data['accuracy'])}",
        f"not wrong (right, or inconclusive with the truth in the top two): {_pct(data['not_wrong'])}",
        f"faulty cases, truth first: {_pct(data['faulty_truth_first'])}",
        f"mean P(truth), faulty cases: {_num(data['mean_p_truth'])}",
        f"Brier score, faulty cases (0 = perfect, one-hot over five causes): {_num(data['brier'])}",
        "",
        "reliability of the named cause (its probability; * = >= 0.8):",
    ]
    for row in data["reliability"]:
        mark = "*" if row["confident"] else " "
        lines.append(f"  {mark} {row['bin']:>8}: {row['count']:>3} named, {row['right']:>3} right "
                     f"({_pct(row['share_right'])})")
    lines.append(f"  top cause at >= {CONFIDENT}: {data['confident_named']} named, right "
                 f"{_pct(data['confident_right'])}")
    if data["two_fault"]:
        both = sum(row["both_in_top_two"] for row in data["two_fault"])
        lines += ["", f"two-fault cases: both causes in the top two in {both} of {len(data['two_fault'])}"]
        lines += [f"  {row['case']}: truth {'+'.join(row['truth'])}, top two {', '.join(row['top_two'])}"
                  f" -> {'yes' if row['both_in_top_two'] else 'NO'}" for row in data["two_fault"]]
    if data["healthy"]:
        good = sum(row["ok"] for row in data["healthy"])
        lines += ["", f"healthy cases: verdict healthy with no symptom present in {good} of "
                      f"{len(data['healthy'])}"]
        lines += [f"  {row['case']}: {row['verdict']}"
                  + (f", present: {', '.join(row['symptoms_present'])}" if row["symptoms_present"] else "")
                  for row in data["healthy"] if not row["ok"]]
    if verbose:
        lines += ["", f"{'case':<22} {'truth':<24} {'predicted':<14} {'P(truth)':>8}  top two"]
        for o in outcomes:
            top = ", ".join(f"{c} {o.probabilities[c]:.2f}" for c in o.ranked[:2])
            flag = "" if o.right else ("  (inconclusive, not wrong)" if o.not_wrong else "  WRONG")
            lines.append(f"{o.case_id:<22} {o.truth_label:<24} {o.predicted:<14} "
                         f"{o.p_truth if o.truth else float('nan'):>8.2f}  {top}{flag}")
    return lines


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Accuracy of the diagnosis on the labeled corpus.")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--split", choices=SPLIT_CHOICES, default="evaluation")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--only", nargs="*", default=[], metavar="ID", help="only these case ids")
    parser.add_argument("--verbose", action="store_true", help="one row per case")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the figures here")
    args = parser.parse_args(None if argv is None else list(argv))
    started = time.monotonic()
    try:
        cases = load_cases(args.corpus, args.split, args.only)
    except ValueError as error:
        parser.error(str(error))
    if not cases:
        print(f"error: no recorded case of split {args.split!r} in {args.corpus} "
              "(record it: ws-runbook lab corpus --out data/corpus)", file=sys.stderr)
        return 2
    print(f"corpus {args.corpus}: {len(cases)} cases of split {args.split} "
          f"({Counter(case.truth_label for case in cases).most_common()})")
    results = evaluate(cases, args.modes)
    report: dict[str, Any] = {"corpus": str(args.corpus), "split": args.split,
                              "cases": [case.id for case in cases], "modes": {}}
    for mode, outcomes in results.items():
        print()
        if isinstance(outcomes, str):
            print(f"== {mode}: {outcomes}")
            report["modes"][mode] = {"measured": False, "reason": outcomes}
            continue
        print("\n".join(render(mode, outcomes, args.verbose)))
        report["modes"][mode] = {"measured": True, **figures(outcomes),
                                 "outcomes": [asdict(o) for o in outcomes]}
    elapsed = time.monotonic() - started
    print(f"\n{len(cases)} cases x {len(results)} modes in {elapsed:.1f} s")
    report["elapsed_s"] = round(elapsed, 2)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
