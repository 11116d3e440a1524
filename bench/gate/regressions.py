"""Real regressions in the toolkit's code, for proving what the perf gate catches.

Each is a small edit to a source file that a developer could plausibly commit, applied to a
temporary worktree of the revision under test and committed there (a throwaway commit on a
detached HEAD, removed with the worktree), so the gate measures exactly what it would measure in
a pull request: the unpatched parent against the patched child. `hits` names the gated
benchmarks whose code the edit is on; a flag on any other benchmark is a false alarm.
"""
from __future__ import annotations

import contextlib
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from bench.gate.interleave import GateError, worktree


@dataclass(frozen=True)
class Regression:
    name: str
    what: str
    path: str  # relative to the repository root
    old: str   # must occur exactly once
    new: str
    hits: tuple[str, ...]


TF_INFER = ("tf_infer[resnet18-b1]", "tf_infer[resnet18-b32]", "tf_infer[googlenet-b1]", "tf_infer[googlenet-b32]")
ORT_INFER = ("ort_infer[resnet18-b1]", "ort_infer[resnet18-b32]")

REGRESSIONS: tuple[Regression, ...] = (
    Regression(
        "ort_graph_optimisation_off",
        "the one onnxruntime session factory defaults to no graph optimisation (no Conv+BN/activation fusion)",
        "export/runtimes.py", 'optimization: str = "all", quiet', 'optimization: str = "disable", quiet',
        ORT_INFER),
    Regression(
        "tf_retrace_every_call",
        "the tf_function engine wraps its traced function in a new tf.function on every call: one retrace per call",
        "bench/measure/engines.py", "            return self._fn(batch).numpy()",
        "            return tf.function(self._fn.python_function)(batch).numpy()",
        TF_INFER),
    Regression(
        "tf_copy_every_batch",
        "the tf_function engine copies every batch before the call (a defensive copy)",
        "bench/measure/engines.py", "            return self._fn(batch).numpy()",
        "            return self._fn(batch.copy()).numpy()",
        TF_INFER),
    Regression(
        "train_step_eager",
        "the training step loses its tf.function (left eager after debugging)",
        "bench/measure/train_step.py",
        "    @tf.function(input_signature=specs, jit_compile=jit_compile, reduce_retracing=False)\n    def step(",
        "    def step(",
        ("train_step[resnet18-b32]",)),
    Regression(
        "tf2onnx_defensive_copies",
        "export lets tf2onnx deep-copy the graph before each optimizer pass again (TF2ONNX_CATCH_ERRORS)",
        "export/convert.py", 'os.environ[_CATCH_ERRORS] = "FALSE"', 'os.environ[_CATCH_ERRORS] = "TRUE"',
        ("export_onnx",)),
    Regression(
        "onnx_full_check",
        "export runs the ONNX checker with full shape inference on every conversion",
        "export/convert.py", "    onnx.checker.check_model(proto)\n", "    onnx.checker.check_model(proto, full_check=True)\n",
        ("export_onnx",)),
)
BY_NAME = {r.name: r for r in REGRESSIONS}


def apply(tree: Path, regression: Regression) -> None:
    """Edit `tree` in place; refuse when the code no longer reads as the regression expects."""
    path = tree / regression.path
    text = path.read_text()
    count = text.count(regression.old)
    if count != 1:
        raise GateError(f"regression {regression.name!r} does not apply: {regression.path} contains its "
                        f"original text {count} times, not once; update bench/gate/regressions.py to the "
                        f"code as it is now")
    path.write_text(text.replace(regression.old, regression.new))


@contextlib.contextmanager
def regressed_tree(repo: Path, rev: str, regression: Regression) -> Iterator[Path]:
    """A temporary worktree of `rev` with `regression` committed on top (a throwaway commit)."""
    with worktree(repo, rev) as tree:
        apply(tree, regression)
        result = subprocess.run(
            ["git", "-C", str(tree), "-c", "user.name=perf-proof", "-c", "user.email=perf-proof@localhost",
             "commit", "--quiet", "--no-verify", "-am", f"regression for the perf-gate proof: {regression.name}"],
            capture_output=True, text=True)
        if result.returncode != 0:
            raise GateError(f"could not commit regression {regression.name!r}: {result.stderr.strip()}")
        yield tree
