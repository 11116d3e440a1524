"""Run the benchmark suite against two code trees in interleaved rounds, on the same machine.

The suite (this checkout's `benchmarks/`) is the same for both sides; only the code under test
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
BENCHMARKS_DIR = REPO_ROOT / "benchmarks"
# Read by benchmarks/perf_systems.py; the gate passes it to the candidate side only.
SLOWDOWN_ENV = "IMGCLS_PERF_INJECT_SLOWDOWN"


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
    jsons: list[Path] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop(SLOWDOWN_ENV, None)
        if self.inject_slowdown:
            env[SLOWDOWN_ENV] = self.inject_slowdown
        env["PYTHONPATH"] = os.pathsep.join([str(self.code_root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        return env


def pytest_command(json_path: Path, cache_dir: Path, selection: list[str], perf_seconds: float) -> list[str]:
    return [
        sys.executable, "-m", "pytest", *selection, "-q", "-p", "no:cacheprovider",
        "--benchmark-enable", "--benchmark-only", f"--benchmark-json={json_path}",
        "--benchmark-disable-gc", f"--perf-seconds={perf_seconds}", f"--perf-cache={cache_dir}",
    ]


def run_round(side: Side, round_index: int, selection: list[str], perf_seconds: float) -> Path:
    """One pytest-benchmark subprocess for `side`; returns its JSON file."""
    json_path = side.out_dir / f"{side.label}-round{round_index:02d}.json"
    cache_dir = side.out_dir / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = subprocess.run(
        pytest_command(json_path, cache_dir, selection, perf_seconds),
        cwd=side.code_root, env=side.env(), capture_output=True, text=True,
    )
    side.seconds.append(time.perf_counter() - start)
    if result.returncode != 0 or not json_path.exists():
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise GateError(
            f"the benchmark run of the {side.label} ({side.code_root}) failed in round {round_index} "
            f"(exit {result.returncode}); rerun it by hand with\n  cd {side.code_root} && "
            f"PYTHONPATH={side.code_root} {' '.join(pytest_command(json_path, cache_dir, selection, perf_seconds))}\n"
            f"last output:\n{tail}"
        )
    side.jsons.append(json_path)
    return json_path


def _say(text: str) -> None:
    print(text, flush=True)


def interleaved_rounds(a: Side, b: Side, rounds: int, selection: list[str], perf_seconds: float,
                       progress=None) -> None:
    """Rounds A B, B A, A B, ...: each pair back to back, order alternating between pairs."""
    for r in range(rounds):
        order = (a, b) if r % 2 == 0 else (b, a)
        for side in order:
            run_round(side, r, selection, perf_seconds)
            (progress or _say)(f"  round {r + 1}/{rounds} {side.label:<9} {side.seconds[-1]:5.1f} s")


def single_rounds(side: Side, rounds: int, selection: list[str], perf_seconds: float, progress=None) -> None:
    for r in range(rounds):
        run_round(side, r, selection, perf_seconds)
        (progress or _say)(f"  round {r + 1}/{rounds} {side.label:<9} {side.seconds[-1]:5.1f} s")
