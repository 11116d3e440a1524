"""`imgcls COMMAND ...` (or `python -m bench COMMAND ...`): every command of the toolkit, one
module each, imported only when it runs, so `--help` answers without loading TensorFlow."""
from __future__ import annotations

import importlib
import sys

from bench.plumbing.console import run_command

# command -> (module exposing main(argv: list[str]) -> int, or {subcommand: (module, help)}; one line of help)
COMMANDS = {
    "data": ("bench.data.cli", "fetch, verify, describe and preview datasets"),
    "zoo": ("zoo.__main__", "list the architectures, print a model's layers, parameters and FLOPs"),
    "train": ("bench.train.cli", "train a zoo model with a recipe"),
    "export": ("export.cli", "convert a trained model to verified deployment artifacts"),
    "predict": ("export.predict", "classify image files with an exported artifact (no TensorFlow)"),
    "run": ("bench.harness.run", "run a benchmark matrix or profile into a results folder"),
    "streams": ("bench.measure.streams", "throughput at batch 1: one request on every core, or one worker per core"),
    "op-profile": ("bench.measure.op_profile", "onnxruntime kernel time per operator kind, float32 beside int8"),
    "report": ("bench.harness.report", "re-render a results folder's report.md, or compare several machines' folders"),
    "distribute": ({"launch": ("bench.distribute.launch", "start N local workers on 127.0.0.1 with TF_CONFIG set"),
                    "worker": ("bench.distribute.worker", "the MNIST training worker that proves the strategies"),
                    "scaling": ("bench.harness.scaling", "measure scaling efficiency into out/distribute")},
                   "tf.distribute: launch local workers, the proof worker, scaling efficiency"),
    "perf-check": ("bench.gate.perf", "performance-regression gate"),
    "accuracy-check": ("bench.gate.accuracy", "accuracy gate on trained checkpoints"),
    "accuracy-proof": ("bench.gate.accuracy_proof", "the CI accuracy gate on unchanged code and on injected bugs"),
}


def usage(prog: str, commands: dict) -> str:
    lines = [f"usage: {prog} COMMAND [options]   ({prog} COMMAND --help for a command's options)", "",
             "commands:"]
    lines += [f"  {name:<16}{text}" for name, (_, text) in commands.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "imgcls", commands: dict = COMMANDS) -> int:
    """The `imgcls` script and `python -m bench`: TensorFlow's start-up noise filtered, Ctrl-C as
    one line and exit code 130 (bench.plumbing.console)."""
    return run_command(lambda: dispatch(argv, prog, commands))


def dispatch(argv: list[str] | None, prog: str, commands: dict) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(prog, commands))
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in commands:
        print(f"error: unknown command {name!r}; valid: {', '.join(commands)}", file=sys.stderr)
        return 2
    target = commands[name][0]
    if isinstance(target, dict):  # a command with subcommands
        return dispatch(rest, f"{prog} {name}", target)
    return int(importlib.import_module(target).main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
