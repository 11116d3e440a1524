"""Run the benchmark suite against two code trees in interleaved rounds, on the same machine.

The suite (this checkout's `bench/gate/perf_suite/`, snapshotted at the start) is the same for both sides; only the code under test
differs: each subprocess runs with its code tree as working directory and first on PYTHONPATH,
so `import zoo, bench, export` resolves to that tree. Rounds go A B, B A, A B, ... so slow drift
of the machine's load falls on both sides equally.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

REPO_ROOT = Path(__file__).resolve().parents[2]
SUITE_DIR = REPO_ROOT / "bench" / "gate" / "perf_suite"
# Read by perf_suite/perf_systems.py; the gate passes it to the candidate side only.
SLOWDOWN_ENV = "IMGCLS_PERF_INJECT_SLOWDOWN"
SEED_ENV = "IMGCLS_PERF_SEED"  # the benchmark inputs' seed (perf_systems.random_images), both sides


class GateError(RuntimeError):
    """Bad input or a failed benchmark run: the message says what and how to fix it."""


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)


def resolve_revision(repo: Path, rev: str) -> str:
    """The commit id of `rev`, or a GateError naming the revision and how to list valid ones."""
    if not rev or rev.startswith("-"):
        raise GateError(f"invalid git revision {rev!r}")
    result = _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if result.returncode != 0:
        raise GateError(
            f"unknown git revision {rev!r} in {repo}: give a commit, branch or tag that exists "
            f"(e.g. HEAD, HEAD~1, main; see `git log --oneline`). In a shallow CI clone, fetch "
            f"more history (`git fetch --deepen=1`) or compare with a stored baseline (--baseline FILE)."
        )
    return result.stdout.strip()


@contextlib.contextmanager
def worktree(repo: Path, rev: str) -> Iterator[Path]:
    """A temporary detached `git worktree` of `rev`, removed afterwards."""
    commit = resolve_revision(repo, rev)
    path = Path(tempfile.mkdtemp(prefix=f"imgcls-gate-{commit[:10]}-"))
    result = _git(repo, "worktree", "add", "--detach", "--quiet", str(path), commit)
    if result.returncode != 0:
        path.rmdir()
        raise GateError(f"git worktree add for {rev!r} failed: {result.stderr.strip()}")
    try:
        yield path
    finally:
        _git(repo, "worktree", "remove", "--force", str(path))
        _git(repo, "worktree", "prune")


@dataclass
class Side:
    """One code tree under test and where its rounds' results go."""

    label: str  # "base" or "candidate"
    code_root: Path
    out_dir: Path
    inject_slowdown: str = ""  # IMGCLS_PERF_INJECT_SLOWDOWN for this side only
    cache_dir: Path | None = None  # setup artifacts of this code tree (default out_dir/cache)
    seed: int = 0  # the benchmark inputs' seed
    jsons: list[Path] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        # A pytest-xdist worker's variables (when the gate runs inside a test suite) would make
        # pytest-benchmark in the round's own pytest disable itself.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
        env.pop(SLOWDOWN_ENV, None)
        if self.inject_slowdown:
            env[SLOWDOWN_ENV] = self.inject_slowdown
        env[SEED_ENV] = str(self.seed)
        env["PYTHONPATH"] = os.pathsep.join([str(self.code_root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        return env


TIMERS = {"cpu": "time.process_time", "wall": "time.perf_counter"}


@dataclass(frozen=True)
class SuiteOptions:
    """How each round runs the suite: which benchmarks, how long, with how many threads, which clock.

    The default clock is the process' CPU time: the time a call spends descheduled on a shared
    machine is not the code's cost, while extra work done by the code (the regressions this gate
    is for) shows up in full. `wall` measures elapsed time instead (waits, I/O, sleeps count).
    """

    selection: tuple[str, ...]
    seconds: float = 0.5
    threads: int = 1
    timer: str = "cpu"
    # With one thread, the whole benchmark process is pinned to this CPU (default: the last one):
    # TensorFlow hands each op from the Python thread to its executor thread, and whether the two
    # share a core or not changed batch-1 latencies by up to 2x from one process to the next.
    cpu: int | None = None

    def __post_init__(self):
        if self.timer not in TIMERS:
            raise GateError(f"unknown timer {self.timer!r}; valid: {', '.join(TIMERS)}")
        available = sorted(os.sched_getaffinity(0))
        if self.cpu is not None and self.cpu not in available:
            raise GateError(f"cannot pin benchmarks to CPU {self.cpu}: this process may use CPUs {available}")

    def pinned_cpu(self) -> int | None:
        if self.threads != 1:
            return None
        return self.cpu if self.cpu is not None else max(os.sched_getaffinity(0))


def pytest_command(json_path: Path, cache_dir: Path, options: SuiteOptions) -> list[str]:
    return [
        sys.executable, "-m", "pytest", *options.selection, "-q", "-p", "no:cacheprovider",
        "--benchmark-enable", "--benchmark-only", f"--benchmark-json={json_path}",
        f"--benchmark-timer={TIMERS[options.timer]}", "--benchmark-disable-gc",
        f"--perf-seconds={options.seconds}", f"--perf-threads={options.threads}", f"--perf-cache={cache_dir}",
    ]


def run_round(side: Side, round_index: int, options: SuiteOptions) -> Path:
    """One pytest-benchmark subprocess for `side`; returns its JSON file."""
    json_path = side.out_dir / f"{side.label}-round{round_index:02d}.json"
    cache_dir = side.cache_dir or side.out_dir / "cache"
    for path in (side.out_dir, cache_dir):
        path.mkdir(parents=True, exist_ok=True)
    command = pytest_command(json_path, cache_dir, options)
    start = time.perf_counter()
    cpu = options.pinned_cpu()
    pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    result = subprocess.run(command, cwd=side.code_root, env=side.env(), capture_output=True, text=True,
                            preexec_fn=pin)
    side.seconds.append(time.perf_counter() - start)
    if result.returncode != 0 or not json_path.exists():
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise GateError(
            f"the benchmark run of the {side.label} ({side.code_root}) failed in round {round_index} "
            f"(exit {result.returncode}); rerun it by hand with\n  cd {side.code_root} && "
            f"PYTHONPATH={side.code_root} {' '.join(command)}\nlast output:\n{tail}"
        )
    side.jsons.append(json_path)
    return json_path


def _say(text: str) -> None:
    print(text, flush=True)


def interleaved_rounds(a: Side, b: Side, rounds: int, options: SuiteOptions, progress=None) -> None:
    """Rounds A B, B A, A B, ...: each pair back to back, order alternating between pairs."""
    for r in range(rounds):
        for side in ((a, b) if r % 2 == 0 else (b, a)):
            run_round(side, r, options)
            (progress or _say)(f"  round {r + 1}/{rounds} {side.label:<9} {side.seconds[-1]:5.1f} s")


def single_rounds(side: Side, rounds: int, options: SuiteOptions, progress=None) -> None:
    for r in range(rounds):
        run_round(side, r, options)
        (progress or _say)(f"  round {r + 1}/{rounds} {side.label:<9} {side.seconds[-1]:5.1f} s")
