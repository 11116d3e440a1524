"""`python -m bench perf-check`: fail when a critical path got slower than its baseline.

Baselines, most trustworthy first:
  --base REV          the base revision, checked out in a temporary git worktree and measured
                      in the same run, in rounds interleaved with the candidate (A B, B A, ...);
  --baseline FILE     a stored baseline (`--save-baseline FILE` writes one), compared after
                      normalising both sides by the calibration benchmark (machine speed);
  neither             results/baselines/perf.json.
The candidate is this working tree, or `--candidate REV` (a second worktree: the proof that the
gate does not cry wolf compares a revision with itself). Exit status: 0 pass, 1 regression,
2 bad input or a failed benchmark run.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bench.gate import compare as cmp
from bench.gate.compare import perf_table
from bench.gate.interleave import (SUITE_DIR, REPO_ROOT, SLOWDOWN_ENV, TIMERS, GateError, Side,
                                   SuiteOptions, interleaved_rounds, single_rounds, worktree)

DEFAULT_BASELINE = REPO_ROOT / "results" / "baselines" / "perf.json"
BASELINE_FORMAT = "imgcls-perf-baseline/1"
# Full gate: 5 interleaved rounds (10 subprocesses, ~2 min on 2 quiet cores). Quick (CI, and what
# results/gate proves): 3 rounds (A B, B A, A B) with shorter timing windows, ~1 min. Three
# rounds is the fewest whose median ignores one round disturbed by another process.
ROUNDS, QUICK_ROUNDS = 5, 3
SECONDS, QUICK_SECONDS = 0.3, 0.2


@dataclass
class GateResult:
    mode: str  # "interleaved" or "stored"
    comparisons: list[cmp.Comparison]
    seconds: float

    @property
    def failed(self) -> list[cmp.Comparison]:
        return [c for c in self.comparisons if c.failed]


def snapshot_suite(work_dir: Path) -> Path:
    """A copy of the suite taken at the start, so edits made while the gate runs change nothing."""
    target = work_dir / "perf_suite"
    if target.resolve() == SUITE_DIR.resolve():
        raise GateError(f"--out {work_dir} would put the suite's snapshot over the suite itself; "
                        "choose another --out")
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(SUITE_DIR, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def suite(suite_dir: Path = SUITE_DIR, keyword: str | None = None, seconds: float = SECONDS,
          threads: int = 1, timer: str = "cpu") -> SuiteOptions:
    return SuiteOptions(tuple([str(suite_dir)] + (["-k", keyword] if keyword else [])), seconds, threads, timer)


def _check_code_root(side: Side, run: cmp.SideRun) -> None:
    """Each side must have measured its own tree, not whatever `import zoo` found first."""
    want = str(side.code_root.resolve())
    for name, info in run.info.items():
        got = info.get("code_root")
        if got is not None and str(Path(got).resolve()) != want:
            raise GateError(f"the {side.label} run of {name} imported the toolkit from {got}, not from "
                            f"{want}; install the project in editable mode (pip install -e .) so the "
                            f"working directory's packages take precedence")


def run_interleaved(base_root: Path, cand_root: Path, work_dir: Path, *, rounds: int, options: SuiteOptions,
                    inject: str = "", threshold: float = cmp.DEFAULT_THRESHOLD, progress=None,
                    caches: tuple[Path, Path] | None = None, seed: int = 0) -> GateResult:
    """`caches`: (base, candidate) setup-artifact directories to reuse, e.g. across proof trials.
    `seed`: of the benchmarks' random inputs (the same on both sides) and of the bootstrap."""
    start = time.perf_counter()
    base_cache, cand_cache = caches or (None, None)
    base = Side("base", base_root, work_dir / "base", cache_dir=base_cache, seed=seed)
    cand = Side("candidate", cand_root, work_dir / "candidate", inject_slowdown=inject, cache_dir=cand_cache,
                seed=seed)
    interleaved_rounds(base, cand, rounds, options, progress)
    base_run, cand_run = cmp.collect_rounds(base.jsons), cmp.collect_rounds(cand.jsons)
    _check_code_root(base, base_run)
    _check_code_root(cand, cand_run)
    comparisons = cmp.compare(base_run, cand_run, paired=True, default_threshold=threshold, seed=seed)
    return GateResult("interleaved", comparisons, time.perf_counter() - start)


def run_stored(baseline: Path, cand_root: Path, work_dir: Path, *, rounds: int, options: SuiteOptions,
               inject: str = "", threshold: float = cmp.DEFAULT_THRESHOLD, progress=None) -> GateResult:
    start = time.perf_counter()
    base_run = load_baseline(baseline)
    cand = Side("candidate", cand_root, work_dir / "candidate", inject_slowdown=inject)
    single_rounds(cand, rounds, options, progress)
    cand_run = cmp.collect_rounds(cand.jsons)
    _check_code_root(cand, cand_run)
    comparisons = cmp.compare(base_run, cand_run, paired=False, default_threshold=threshold,
                              normalise_by=cmp.CALIBRATION)
    return GateResult("stored", comparisons, time.perf_counter() - start)


def load_baseline(path: Path) -> cmp.SideRun:
    if not path.exists():
        raise GateError(
            f"baseline file {path} does not exist. Record one on this machine with "
            f"`python -m bench perf-check --save-baseline {path}`, or measure the baseline in the "
            f"same run from a git revision: `python -m bench perf-check --base HEAD~1`"
        )
    try:
        data = json.loads(path.read_text())
        if data.get("format") != BASELINE_FORMAT:
            raise ValueError(f"format is {data.get('format')!r}, expected {BASELINE_FORMAT!r}")
        samples = {name: [np.asarray(r, dtype=np.float64) for r in b["rounds_s"]]
                   for name, b in data["benchmarks"].items()}
        info = {name: b.get("info", {}) for name, b in data["benchmarks"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise GateError(f"{path} is not a perf baseline written by --save-baseline ({exc}); "
                        f"rewrite it with `python -m bench perf-check --save-baseline {path}`") from None
    if cmp.CALIBRATION not in samples:
        raise GateError(f"{path} has no {cmp.CALIBRATION} benchmark, so machine speed cannot be "
                        f"normalised; rewrite it with --save-baseline")
    return cmp.SideRun(samples, info)


def save_baseline(path: Path, cand_root: Path, work_dir: Path, *, rounds: int, options: SuiteOptions,
                  progress=None) -> dict:
    cand = Side("candidate", cand_root, work_dir / "candidate")
    single_rounds(cand, rounds, options, progress)
    run = cmp.collect_rounds(cand.jsons)
    _check_code_root(cand, run)
    machine = json.loads(cand.jsons[-1].read_text()).get("machine_info", {})
    commit = subprocess.run(["git", "-C", str(cand_root), "rev-parse", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    return write_baseline(path, run, machine=machine, commit=commit, options=options)


def write_baseline(path: Path, run: cmp.SideRun, *, machine: dict, commit: str, options: SuiteOptions) -> dict:
    """Store one side's rounds; samples keep 4 significant digits (far below the noise)."""
    cpu = machine.get("cpu") or {}
    data = {
        "format": BASELINE_FORMAT,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit,
        "machine": {"node": machine.get("node"), "cpu": cpu.get("brand_raw"), "cpu_count": cpu.get("count"),
                    "python": machine.get("python_version")},
        "perf_seconds": options.seconds,
        "threads": options.threads,
        "timer": options.timer,
        "benchmarks": {
            name: {"info": {k: v for k, v in run.info[name].items() if k != "code_root"},
                   "rounds_s": [[float(f"{x:.4g}") for x in r] for r in rounds]}
            for name, rounds in sorted(run.samples.items())
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    return data


def write_report(result: GateResult, out_dir: Path, header: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = cmp.as_rows(result.comparisons)
    with open(out_dir / "comparison.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out_dir / "comparison.md").write_text(f"{header}\n\n{perf_table(result.comparisons)}\n")


def verdict_text(result: GateResult) -> str:
    if not result.failed:
        return f"perf-check PASSED: no benchmark slower than its threshold ({result.mode}, {result.seconds:.0f} s)"
    worst = ", ".join(f"{c.name} +{(c.ratio - 1) * 100:.0f}% (threshold +{c.threshold * 100:.0f}%)"
                      for c in result.failed)
    return f"perf-check FAILED: {len(result.failed)} benchmark(s) regressed: {worst}"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench perf-check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--base", metavar="REV", help="git revision to measure as the baseline, interleaved")
    which.add_argument("--baseline", metavar="FILE", type=Path,
                       help=f"stored baseline JSON (default when --base is not given: {DEFAULT_BASELINE.relative_to(REPO_ROOT)})")
    which.add_argument("--save-baseline", metavar="FILE", type=Path,
                       help="measure the candidate only and write a stored baseline")
    p.add_argument("--candidate", metavar="REV", help="measure REV (in a worktree) instead of the working tree")
    p.add_argument("--quick", action="store_true",
                   help=f"CI version: {QUICK_ROUNDS} rounds of {QUICK_SECONDS} s per benchmark")
    p.add_argument("--rounds", type=int, help=f"rounds per side (default {ROUNDS}, quick {QUICK_ROUNDS})")
    p.add_argument("--seconds", type=float,
                   help=f"timed seconds per benchmark per round (default {SECONDS}, quick {QUICK_SECONDS})")
    p.add_argument("--threshold", type=float, default=cmp.DEFAULT_THRESHOLD,
                   help="allowed slowdown for benchmarks that set none (default 0.15 = 15%%)")
    p.add_argument("-k", dest="keyword", help="pytest -k expression selecting benchmarks")
    p.add_argument("--threads", type=int, default=1,
                   help="intra-op threads of TF and onnxruntime in the benchmarks (default 1; 0: library default)")
    p.add_argument("--timer", choices=sorted(TIMERS), default="cpu",
                   help="cpu: process CPU time (default; robust to a shared machine), wall: elapsed time")
    p.add_argument("--inject-slowdown", metavar="NAME:FRACTION", default="",
                   help=f"add work to the candidate's NAME benchmark (sets {SLOWDOWN_ENV} for the candidate only)")
    p.add_argument("--out", type=Path, help="keep the rounds' JSON and write comparison.csv/.md here")
    p.add_argument("--report-only", action="store_true",
                   help="print the verdict but exit 0 even on a regression or a failed run (CI, until the "
                        "gate's false-alarm rate is proven low enough to block on)")
    args = p.parse_args(argv)
    if args.rounds is None:
        args.rounds = QUICK_ROUNDS if args.quick else ROUNDS
    if args.seconds is None:
        args.seconds = QUICK_SECONDS if args.quick else SECONDS
    if args.rounds < 1 or args.seconds <= 0 or args.threads < 0 or not 0 < args.threshold < 10:
        p.error("--rounds must be >= 1, --seconds > 0, --threads >= 0, and --threshold a fraction such as 0.10")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    status = _gate(args)
    if args.report_only and status != 0:
        print(f"perf-check: report only, exit status {status} not passed on "
              f"({'regression' if status == 1 else 'the gate could not run'})", file=sys.stderr)
        return 0
    return status


def _gate(args: argparse.Namespace) -> int:
    try:
        with contextlib.ExitStack() as stack:
            work = args.out or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="imgcls-perf-")))
            cand_root = stack.enter_context(worktree(REPO_ROOT, args.candidate)) if args.candidate else REPO_ROOT
            work.mkdir(parents=True, exist_ok=True)
            options = suite(snapshot_suite(work), args.keyword, args.seconds, args.threads, args.timer)
            common = dict(rounds=args.rounds, options=options)
            if args.save_baseline:
                print(f"recording a stored baseline of {cand_root}: {args.rounds} rounds", flush=True)
                save_baseline(args.save_baseline, cand_root, work, **common)
                print(f"wrote {args.save_baseline}")
                return 0
            if args.base:
                base_root = stack.enter_context(worktree(REPO_ROOT, args.base))
                print(f"perf-check: {args.base} (worktree {base_root}) vs "
                      f"{args.candidate or 'working tree'}, {args.rounds} interleaved rounds", flush=True)
                result = run_interleaved(base_root, cand_root, work, inject=args.inject_slowdown,
                                         threshold=args.threshold, **common)
                header = f"base {args.base} vs candidate {args.candidate or 'working tree'}, interleaved"
            else:
                baseline = args.baseline or DEFAULT_BASELINE
                load_baseline(baseline)  # fail before measuring anything
                print(f"perf-check: stored baseline {baseline} vs {args.candidate or 'working tree'}, "
                      f"{args.rounds} rounds, normalised by {cmp.CALIBRATION}", flush=True)
                result = run_stored(baseline, cand_root, work, inject=args.inject_slowdown,
                                    threshold=args.threshold, **common)
                header = f"stored baseline {baseline} vs candidate {args.candidate or 'working tree'}"
            print(perf_table(result.comparisons))
            print(verdict_text(result))
            if args.out:
                write_report(result, args.out, header)
            return 1 if result.failed else 0
    except (GateError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    from bench.plumbing.console import run_command

    sys.exit(run_command(main))
