"""`python -m export CHECKPOINT ...` exports; `python -m export predict DIR IMAGE...` classifies.

`predict` is dispatched before anything imports TensorFlow: deployment needs onnxruntime only.
"""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "predict":
        from export.predict import main as predict

        return predict(argv[1:])
    from export.cli import main as export

    return export(argv)


if __name__ == "__main__":
    from bench.plumbing.console import run_command

    sys.exit(run_command(main))
