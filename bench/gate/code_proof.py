"""Prove the perf gate on real code regressions and on identity runs, trial by trial.

    python -m bench.gate.code_proof --identity 40 --per-regression 3 --quick --out results/gate/code_proof

A regression trial measures the revision (base) against the same revision with one edit of
`bench.gate.regressions` committed on top (candidate): caught when the gate flags a benchmark the
edit is on. An identity trial measures the revision against itself: any flag is a false alarm.
Trials alternate (identity, regression, identity, ...) so both kinds meet the same machine load
over the whole run; every trial has its own seed (the benchmarks' random inputs and the bootstrap).
Each trial is appended to trials.csv (and each benchmark's ratio to benchmarks.csv) as soon as it
ends, with the machine it ran on; `--append` adds trials from another session or machine, and
proof.md summarises everything in the files: catch rate per regression, the false-alarm rate with
its exact 95% interval, and every benchmark ever flagged falsely.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import socket
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bench.gate import perf
from bench.gate.compare import DEFAULT_THRESHOLD
from bench.gate.interleave import REPO_ROOT, GateError, resolve_revision, worktree
from bench.gate.regressions import BY_NAME, REGRESSIONS, regressed_tree
from bench.plumbing.tables import render

TRIAL_FIELDS = ["trial", "kind", "regression", "seed", "revision", "machine", "cpu", "matmul_gflops", "started_utc",
                "gate_seconds",
                "load_1min", "flagged", "caught", "false_alarm", "false_flags"]
BENCH_FIELDS = ["trial", "kind", "regression", "machine", "benchmark", "on_edited_code", "ratio", "ratio_low",
                "threshold", "verdict"]
# The gate may fail a submission only below this false-alarm rate, measured on enough machines.
ALLOWED_FALSE_ALARMS, REQUIRED_IDENTITY, REQUIRED_MACHINES = 1, 40, 2


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for k successes in n trials (bisection on the binomial tails)."""
    if n <= 0:
        return 0.0, 1.0
    alpha = (1.0 - confidence) / 2

    def at_least(j: int, p: float) -> float:  # P(X >= j | p), increasing in p
        return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(j, n + 1))

    def solve(j: int, target: float) -> float:  # the p where P(X >= j | p) = target
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if at_least(j, mid) < target else (lo, mid)
        return (lo + hi) / 2

    lower = 0.0 if k == 0 else solve(k, alpha)
    upper = 1.0 if k == n else solve(k + 1, 1.0 - alpha)  # P(X <= k | upper) = alpha
    return lower, upper


def machine() -> tuple[str, str]:
    """(host/boot, cpu): these VMs all call themselves "vm", so the kernel's boot id tells two
    machines apart (a reboot of one machine would count as another: check the matmul rates)."""
    from bench.plumbing.environment import cpu_model

    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        boot = "?"
    return f"{socket.gethostname()}/{boot}", f"{cpu_model()} x{len(os.sched_getaffinity(0))}"


def _append(path: Path, fields: list[str], rows: list[dict]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        if new:
            writer.writeheader()
        writer.writerows(rows)
        f.flush()
        os.fsync(f.fileno())


def run_trial(index: int, regression: str, seed: int, base: Path, cand: Path, options, rounds: int, work: Path,
              caches: tuple[Path, Path], out: Path, revision: str, gflops: float) -> dict:
    hits = set(BY_NAME[regression].hits) if regression else set()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load = os.getloadavg()[0]
    result = perf.run_interleaved(base, cand, work / f"trial{index:03d}", rounds=rounds, options=options,
                                  progress=lambda _: None, caches=caches, seed=seed)
    flagged = [c.name for c in result.failed]
    false_flags = [name for name in flagged if name not in hits]
    host, cpu = machine()
    kind = "regression" if regression else "identity"
    row = {"trial": index, "kind": kind, "regression": regression, "seed": seed, "revision": revision,
           "machine": host, "cpu": cpu, "matmul_gflops": gflops, "started_utc": started, "gate_seconds": round(result.seconds, 1),
           "load_1min": round(load, 2), "flagged": " ".join(flagged),
           "caught": bool(hits & set(flagged)) if regression else "",
           "false_alarm": bool(false_flags), "false_flags": " ".join(false_flags)}
    _append(out / "trials.csv", TRIAL_FIELDS, [row])
    _append(out / "benchmarks.csv", BENCH_FIELDS, [
        {"trial": index, "kind": kind, "regression": regression, "machine": host, "benchmark": c.name,
         "on_edited_code": c.name in hits, "ratio": round(c.ratio, 4), "ratio_low": round(c.ratio_low, 4),
         "threshold": c.threshold, "verdict": c.verdict} for c in result.comparisons])
    return row


def _read(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def summarise(out: Path) -> str:
    trials, benches = _read(out / "trials.csv"), _read(out / "benchmarks.csv")
    identity = [t for t in trials if t["kind"] == "identity"]
    machines = sorted({t["machine"] for t in identity})
    alarms = sum(t["false_alarm"] == "True" for t in identity)
    low, high = clopper_pearson(alarms, len(identity))
    enough = len(identity) >= REQUIRED_IDENTITY and len(machines) >= REQUIRED_MACHINES
    may_block = enough and alarms <= ALLOWED_FALSE_ALARMS
    lines = [
        "# Perf gate proof on real code regressions",
        "",
        f"Trials {trials[0]['started_utc']} .. {trials[-1]['started_utc']} UTC; written by "
        "`python -m bench.gate.code_proof` (trials.csv, benchmarks.csv beside this file).",
        "",
        "## Identity runs (a revision against itself: every flag is a false alarm)",
        "",
        f"**{alarms} false alarm(s) in {len(identity)} identity runs** "
        f"(95% interval of the rate: {low:.1%} .. {high:.1%}), on {len(machines)} machine(s).",
        f"The CI gate may fail a submission once it shows at most {ALLOWED_FALSE_ALARMS} in "
        f"{REQUIRED_IDENTITY} on at least {REQUIRED_MACHINES} machines: "
        + ("**met**." if may_block else "**not met**; it reports without failing."),
        "",
    ]
    per_machine = []
    for host in machines:
        mine = [t for t in identity if t["machine"] == host]
        k = sum(t["false_alarm"] == "True" for t in mine)
        per_machine.append([host, mine[0]["cpu"], mine[0].get("matmul_gflops", ""), str(len(mine)), str(k),
                            mine[0]["started_utc"], mine[-1]["started_utc"]])
    lines += [render(["machine (host/boot)", "cpu", "matmul GFLOP/s", "identity_runs", "false_alarms", "first", "last"],
                     per_machine), ""]

    lines += ["## Regressions (the unpatched parent against the patched child)", ""]
    rows = []
    for regression in REGRESSIONS:
        mine = [t for t in trials if t["regression"] == regression.name]
        if not mine:
            continue
        caught = sum(t["caught"] == "True" for t in mine)
        ratios = [float(b["ratio"]) for b in benches if b["regression"] == regression.name
                  and b["on_edited_code"] == "True"]
        rows.append([regression.name, regression.what, " ".join(regression.hits), f"{caught} / {len(mine)}",
                     f"{min(ratios):.3f} .. {max(ratios):.3f}" if ratios else "-",
                     str(sum(t["false_alarm"] == "True" for t in mine))])
    lines += [render(["regression", "edit", "benchmarks_on_edited_code", "caught", "their_ratio_range",
                      "false_alarms_elsewhere"], rows), ""]

    lines += ["## Every benchmark ever flagged falsely", ""]
    false = [b for b in benches if b["verdict"] == "REGRESSED" and b["on_edited_code"] == "False"]
    if false:
        lines.append(render(["trial", "kind", "regression", "machine", "benchmark", "ratio", "ratio_low95"],
                            [[b["trial"], b["kind"], b["regression"] or "-", b["machine"], b["benchmark"],
                              b["ratio"], b["ratio_low"]] for b in false]))
    else:
        lines.append("None.")
    lines += ["", "## Spread of each benchmark in identity runs", "",
              "The ratio a benchmark shows when nothing changed: a threshold below its spread cries wolf.", ""]
    spread = []
    for name in sorted({b["benchmark"] for b in benches}):
        same = np.array([float(b["ratio"]) for b in benches if b["benchmark"] == name and b["kind"] == "identity"])
        if same.size:
            threshold = next(float(b["threshold"]) for b in benches if b["benchmark"] == name)
            spread.append([name, f"+{threshold:.0%}", f"{np.median(same):.3f}",
                           f"{np.percentile(same, 5):.3f} .. {np.percentile(same, 95):.3f}",
                           f"{same.min():.3f} .. {same.max():.3f}"])
    lines.append(render(["benchmark", "threshold", "median", "5th .. 95th percentile", "range"], spread))
    seconds = [float(t["gate_seconds"]) for t in trials]
    lines += ["", f"Gate run time per trial: median {np.median(seconds):.0f} s; default threshold "
              f"{DEFAULT_THRESHOLD:.0%}; Python {platform.python_version()}."]
    text = "\n".join(lines) + "\n"
    (out / "proof.md").write_text(text)
    return text


def schedule(identity: int, per_regression: int, names: list[str]) -> list[str]:
    """Identity and regression trials alternating; '' is an identity trial."""
    regressions = [name for _ in range(per_regression) for name in names]
    order: list[str] = []
    while identity or regressions:
        if identity:
            order.append("")
            identity -= 1
        if regressions:
            order.append(regressions.pop(0))
    return order


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gate.code_proof", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--identity", type=int, default=40, help="identity trials (default 40)")
    p.add_argument("--per-regression", type=int, default=3, help="trials of each regression (default 3)")
    p.add_argument("--regressions", default=",".join(BY_NAME), help="comma-separated (default: all)")
    p.add_argument("--rev", default="HEAD")
    p.add_argument("--quick", action="store_true", help="prove the CI configuration (perf-check --quick)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "gate" / "code_proof")
    p.add_argument("--append", action="store_true", help="add to the trials already in --out")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    names = [n.strip() for n in args.regressions.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        p.error(f"unknown regression(s) {unknown}; valid: {', '.join(BY_NAME)}")
    if args.identity < 0 or args.per_regression < 0:
        p.error("--identity and --per-regression must be >= 0")
    rounds = perf.QUICK_ROUNDS if args.quick else perf.ROUNDS
    seconds = perf.QUICK_SECONDS if args.quick else perf.SECONDS
    args.out.mkdir(parents=True, exist_ok=True)
    first = 0
    if args.append and (args.out / "trials.csv").exists():
        first = 1 + max(int(t["trial"]) for t in _read(args.out / "trials.csv"))
    elif not args.append:
        for name in ("trials.csv", "benchmarks.csv", "proof.md"):
            (args.out / name).unlink(missing_ok=True)
    from bench.plumbing.environment import matmul_rate

    gflops = round(matmul_rate() / 1e9, 1)  # once, before any trial: the speed beside every trial's times
    try:
        commit = resolve_revision(REPO_ROOT, args.rev)
        with ExitStack() as stack:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="imgcls-code-proof-")))
            base = stack.enter_context(worktree(REPO_ROOT, commit))
            trees = {"": stack.enter_context(worktree(REPO_ROOT, commit))}
            for name in names:
                trees[name] = stack.enter_context(regressed_tree(REPO_ROOT, commit, BY_NAME[name]))
            options = perf.suite(perf.snapshot_suite(work), seconds=seconds)
            order = schedule(args.identity, args.per_regression, names)
            for i, regression in enumerate(order):
                index = first + i
                seed = int(time.time()) % 100_000 + index  # differs between trials and between sessions
                start = time.perf_counter()
                row = run_trial(index, regression, seed, base, trees[regression], options, rounds, work,
                                (work / "cache-base", work / f"cache-{regression or 'identity'}"), args.out,
                                commit[:10], gflops)
                verdict = ("caught" if row["caught"] else "missed") if regression else \
                    ("FALSE ALARM" if row["false_alarm"] else "pass")
                print(f"trial {i + 1}/{len(order)} {regression or 'identity':<28} {verdict:<11} "
                      f"flagged: {row['flagged'] or '-'}  ({time.perf_counter() - start:.0f} s, load {row['load_1min']})",
                      flush=True)
                summarise(args.out)
    except GateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summarise(args.out))
    return 0


if __name__ == "__main__":
    from bench.plumbing.console import run_command

    sys.exit(run_command(main))
