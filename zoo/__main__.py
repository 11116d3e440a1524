"""`python -m zoo list` and `python -m zoo summary NAME --input-shape 224,224,3 --classes 10`."""
from __future__ import annotations

import argparse
import ast
import sys


def _input_shape(text: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected H,W,C such as 224,224,3; got {text!r}")
    return shape  # type: ignore[return-value]


def _option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE such as small_input=True; got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value  # a plain string


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m zoo", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="architectures with default and smallest input sizes")
    summary = commands.add_parser("summary", help="layer table, parameter count, FLOPs per image")
    summary.add_argument("name")
    summary.add_argument(
        "--input-shape", type=_input_shape, default=None, help="H,W,C (default: the architecture's)"
    )
    summary.add_argument("--classes", type=int, default=1000)
    summary.add_argument(
        "--option", type=_option, action="append", default=[], metavar="KEY=VALUE",
        help="builder option, e.g. small_input=True or 'conv_arch=((1,64),(1,128))' (repeatable)",
    )
    summary.add_argument("--no-flops", action="store_true", help="skip the FLOPs count (freezes the graph)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import zoo  # TensorFlow loads only once the arguments are valid

    if args.command == "list":
        print(f"{'name':<16}{'family':<12}{'default input':<16}{'smallest':<10}paper")
        for name in zoo.names():
            s = zoo.spec(name)
            shape = "x".join(map(str, s.default_input_shape))
            print(f"{name:<16}{s.family:<12}{shape:<16}{s.min_input_size:<10}{s.paper}")
        return 0

    try:
        model = zoo.build(args.name, args.input_shape, args.classes, **dict(args.option))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    info = zoo.spec(args.name)
    print(f"{info.name} ({info.family}): {info.paper}\n{info.notes}\n")
    model.summary()  # as wide as the terminal (COLUMNS when piped)
    trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    print(f"parameters: {model.count_params():,} ({trainable:,} trainable)")
    if not args.no_flops:
        flops = zoo.flops_per_image(model)
        print(f"FLOPs per image: {flops:,} ({flops / 1e9:.3f} GFLOPs; a multiply-add counts as 2)")
    return 0


if __name__ == "__main__":
    from bench.plumbing.console import run_command

    sys.exit(run_command(main))
