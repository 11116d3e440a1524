"""`python -m bench COMMAND ...`: one entry point, one module per command."""
from __future__ import annotations

import importlib
import sys

# command -> module exposing main(argv: list[str]) -> int
COMMANDS = {
    "data": ("bench.data.cli", "fetch, verify, describe and preview datasets"),
    "run": ("bench.run", "run a benchmark matrix or profile into results/NAME"),
    "train": ("bench.train.cli", "train a zoo model with a recipe"),
    "perf-check": ("bench.gate.perf", "performance-regression gate"),
    "accuracy-check": ("bench.gate.accuracy", "accuracy gate on trained checkpoints"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m bench COMMAND [options]\n\ncommands:")
        for name, (_, text) in COMMANDS.items():
            print(f"  {name:<16}{text}")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; valid: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(COMMANDS[name][0])
    except ModuleNotFoundError as exc:
        if exc.name and COMMANDS[name][0].startswith(exc.name):
            print(f"error: command {name!r} is not available in this checkout", file=sys.stderr)
            return 2
        raise
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
