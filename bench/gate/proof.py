"""Prove the perf gate on this machine: it passes a revision compared with itself, and it fails
when one benchmark is made 25% slower by the deliberate-slowdown switch.

    python -m bench.gate.proof --trials 20 --out results/gate [--quick]

Both sides are worktrees of the same revision, so any verdict other than "pass" in an identity
trial is a false alarm. Identity and slowdown trials alternate, so both kinds meet the same
machine load; the slowed benchmark rotates over the gated ones. Each trial is appended to
proof_trials.csv (and every benchmark's ratio to proof_benchmarks.csv) as soon as it ends, and
proof.md summarises whatever has run, so an interrupted proof still reports its trials.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bench.gate import perf
from bench.gate.compare import CALIBRATION, DEFAULT_THRESHOLD
from bench.gate.interleave import REPO_ROOT, GateError, resolve_revision, worktree
from bench.plumbing.tables import render

GATED = ["tf_infer[resnet18-b1]", "tf_infer[resnet18-b32]", "tf_infer[googlenet-b1]",
         "tf_infer[googlenet-b32]", "ort_infer[resnet18-b1]", "ort_infer[resnet18-b32]",
         "train_step[resnet18-b32]", "export_onnx"]
TRIAL_FIELDS = ["trial", "kind", "injected", "started_utc", "gate_seconds", "load_1min", "gate_passed",
                "regressed", "injected_ratio", "injected_ratio_low", "caught", "false_alarm"]
BENCH_FIELDS = ["trial", "kind", "injected", "benchmark", "ratio", "ratio_low", "threshold", "verdict"]


def _append(path: Path, fields: list[str], rows: list[dict]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        if new:
            writer.writeheader()
        writer.writerows(rows)


def run_trial(index: int, kind: str, target: str, base: Path, cand: Path, options, rounds: int,
              fraction: float, work: Path, out: Path) -> dict:
    """One gate run. ONNX conversions of each tree are cached across trials (setup, not measured)."""
    inject = f"{target}:{fraction}" if kind == "slowdown" else ""
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load = os.getloadavg()[0]
    result = perf.run_interleaved(base, cand, work / f"trial{index:03d}", rounds=rounds, options=options,
                                  inject=inject, progress=lambda _: None,
                                  caches=(work / "cache-base", work / "cache-candidate"))
    by_name = {c.name: c for c in result.comparisons}
    regressed = [c.name for c in result.failed]
    hit = by_name.get(target) if kind == "slowdown" else None
    if kind == "slowdown" and hit is None:
        raise GateError(f"no benchmark {target!r} in this run (measured: {', '.join(sorted(by_name))}); "
                        "check --targets")
    row = {
        "trial": index, "kind": kind, "injected": inject, "started_utc": started,
        "gate_seconds": round(result.seconds, 1), "load_1min": round(load, 2),
        "gate_passed": not regressed, "regressed": " ".join(regressed),
        "injected_ratio": round(hit.ratio, 4) if hit else "", "injected_ratio_low": round(hit.ratio_low, 4) if hit else "",
        "caught": bool(hit and hit.failed) if kind == "slowdown" else "",
        # any benchmark flagged that was not slowed on purpose
        "false_alarm": any(name != (target if kind == "slowdown" else None) for name in regressed),
    }
    _append(out / "proof_trials.csv", TRIAL_FIELDS, [row])
    _append(out / "proof_benchmarks.csv", BENCH_FIELDS, [
        {"trial": index, "kind": kind, "injected": inject, "benchmark": c.name, "ratio": round(c.ratio, 4),
         "ratio_low": round(c.ratio_low, 4), "threshold": c.threshold, "verdict": c.verdict}
        for c in result.comparisons])
    return row


def summarise(out: Path, settings: dict) -> str:
    with open(out / "proof_trials.csv") as f:
        trials = list(csv.DictReader(f))
    with open(out / "proof_benchmarks.csv") as f:
        benches = list(csv.DictReader(f))
    identity = [t for t in trials if t["kind"] == "identity"]
    slowdown = [t for t in trials if t["kind"] == "slowdown"]
    passed = sum(t["gate_passed"] == "True" for t in identity)
    caught = sum(t["caught"] == "True" for t in slowdown)
    extra = sum(t["false_alarm"] == "True" for t in slowdown)
    seconds = [float(t["gate_seconds"]) for t in trials]
    loads = [float(t["load_1min"]) for t in trials]
    lines = [
        "# Perf gate proof",
        "",
        f"Measured {trials[0]['started_utc']} .. {trials[-1]['started_utc']} UTC on this machine "
        f"({os.cpu_count()} CPUs), `python -m bench.gate.proof`.",
        "",
        "| claim | result | required |",
        "|---|---|---|",
        f"| a revision compared with itself passes | **{passed} / {len(identity)}** | >= 19 / 20 |",
        f"| a 25% slowdown of one benchmark is caught | **{caught} / {len(slowdown)}** | >= 19 / 20 |",
        f"| other benchmarks flagged during slowdown trials | {extra} / {len(slowdown)} | (false alarms) |",
        "",
        "Settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()) + ".",
        f"Gate run time: median {np.median(seconds):.0f} s (min {min(seconds):.0f}, max {max(seconds):.0f}); "
        f"1-minute load average at trial start: median {np.median(loads):.1f} (max {max(loads):.1f}).",
        "",
        "## Ratio candidate / base per benchmark",
        "",
        "Identity trials: the spread the thresholds must absorb. Slowdown trials: the ratio of the "
        "benchmark that was slowed (true value 1.25).",
        "",
    ]
    rows = []
    for name in sorted({b["benchmark"] for b in benches}):
        same = np.array([float(b["ratio"]) for b in benches if b["benchmark"] == name and b["kind"] == "identity"])
        hit = np.array([float(b["ratio"]) for b in benches if b["benchmark"] == name and b["kind"] == "slowdown"
                        and b["injected"].startswith(name + ":")])
        threshold = next(float(b["threshold"]) for b in benches if b["benchmark"] == name)
        flagged = sum(b["verdict"] == "REGRESSED" and not b["injected"].startswith(name + ":")
                      for b in benches if b["benchmark"] == name)
        rows.append([name, "not gated" if name == CALIBRATION else f"+{threshold * 100:.0f}%",
                     f"{np.median(same):.3f}" if same.size else "-",
                     f"{same.min():.3f} .. {same.max():.3f}" if same.size else "-",
                     str(flagged),
                     f"{hit.size}", f"{np.median(hit):.3f}" if hit.size else "-",
                     f"{hit.min():.3f}" if hit.size else "-"])
    lines.append(render(["benchmark", "threshold", "identity_median", "identity_range", "false_flags",
                         "slowed_trials", "slowed_median", "slowed_min"], rows))
    text = "\n".join(lines) + "\n"
    (out / "proof.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gate.proof", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=20, help="trials of each kind (default 20)")
    p.add_argument("--rev", default="HEAD", help="revision compared with itself (default HEAD)")
    p.add_argument("--fraction", type=float, default=0.25, help="injected slowdown (default 0.25)")
    p.add_argument("--targets", nargs="+", default=GATED, help="benchmarks slowed in turn")
    p.add_argument("--quick", action="store_true", help="prove the CI configuration (perf-check --quick)")
    p.add_argument("--rounds", type=int)
    p.add_argument("--seconds", type=float)
    p.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "gate")
    p.add_argument("--append", action="store_true", help="add trials to existing CSVs instead of starting over")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    rounds = args.rounds or (perf.QUICK_ROUNDS if args.quick else perf.ROUNDS)
    seconds = args.seconds or (perf.QUICK_SECONDS if args.quick else perf.SECONDS)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.append:
        for name in ("proof_trials.csv", "proof_benchmarks.csv"):
            (args.out / name).unlink(missing_ok=True)
    try:
        commit = resolve_revision(REPO_ROOT, args.rev)
    except GateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = {"revision": f"{args.rev} ({commit[:10]})", "rounds": rounds, "seconds per benchmark and round": seconds,
                "threads": 1, "timer": "cpu", "injected slowdown": f"{args.fraction:.0%}",
                "default threshold": f"{DEFAULT_THRESHOLD:.0%}"}
    try:
        with ExitStack() as stack:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="imgcls-proof-")))
            base = stack.enter_context(worktree(REPO_ROOT, commit))
            cand = stack.enter_context(worktree(REPO_ROOT, commit))
            options = perf.suite(perf.snapshot_suite(work), seconds=seconds)
            for i in range(2 * args.trials):
                kind = "identity" if i % 2 == 0 else "slowdown"
                target = args.targets[(i // 2) % len(args.targets)]
                start = time.perf_counter()
                row = run_trial(i, kind, target, base, cand, options, rounds, args.fraction, work, args.out)
                verdict = ("caught" if row["caught"] else "MISSED") if kind == "slowdown" else \
                    ("pass" if row["gate_passed"] else "FALSE ALARM")
                print(f"trial {i + 1}/{2 * args.trials} {kind:<8} {row['injected'] or '-':<34} "
                      f"{verdict:<11} regressed: {row['regressed'] or '-'}  ({time.perf_counter() - start:.0f} s, "
                      f"load {row['load_1min']})", flush=True)
                summarise(args.out, settings)
    except GateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summarise(args.out, settings))
    return 0


if __name__ == "__main__":
    from bench.plumbing.console import run_command

    sys.exit(run_command(main))
