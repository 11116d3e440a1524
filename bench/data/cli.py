"""`python -m bench data fetch|info|preview ...`."""
from __future__ import annotations

import argparse
import sys
import time

from bench.data.api import dataset_names, load_dataset
from bench.data.errors import DataError
from bench.plumbing import progress
from bench.plumbing.console import interrupt_note


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench data", description="fetch, verify, describe and preview datasets")
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="fetch and verify datasets into the cache ($IMGCLS_CACHE)")
    f.add_argument("names", nargs="+", metavar="NAME", help=f"one of {dataset_names()} or an image-folder path")
    i = sub.add_parser("info", help="class names, image shape and split sizes")
    i.add_argument("name", metavar="NAME")
    v = sub.add_parser("preview", help="write a 3x3 PNG grid of samples with their class names")
    v.add_argument("name", metavar="NAME")
    v.add_argument("--out", required=True, help="PNG file to write")
    v.add_argument("--split", default="train")
    v.add_argument("--image-size", type=int, default=None, help="resize to SIZE x SIZE first, as a model sees it")
    v.add_argument("--resize", choices=("resize", "pad"), default="resize", help="stretch, or letterbox keeping aspect")
    for sp in (f, i, v):
        sp.add_argument("--label-mode", choices=("fine", "coarse"), default="fine", help="CIFAR-100 labels")
        sp.add_argument("--quiet", action="store_true", help="no progress display (none is drawn when "
                        "stderr is not a terminal)")
    return p


def _fetch_kept(done: list[str], current: str) -> str:
    """What an interrupted fetch leaves: the datasets finished before it, none of the current one
    (every file enters the cache through a temporary name and is renamed only when verified)."""
    before = f"{', '.join(done)} fetched and verified; " if done else ""
    return f"{before}nothing partial of {current} was kept; run the same command again to fetch it"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    progress.set_quiet(args.quiet)
    try:
        if args.command == "fetch":
            failed, done = 0, []
            for name in args.names:
                start = time.perf_counter()
                try:
                    with interrupt_note(lambda: _fetch_kept(done, name)):
                        ds = load_dataset(name, label_mode=args.label_mode)
                except (DataError, ValueError) as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    failed += 1
                    continue
                done.append(name)
                print(f"{ds.describe()} [{time.perf_counter() - start:.1f} s]")
            return 1 if failed else 0
        ds = load_dataset(args.name, label_mode=args.label_mode)
        if args.command == "info":
            print(f"name: {ds.name}\nsource: {ds.source}\nimage_shape: {ds.image_shape}\n"
                  f"num_classes: {ds.num_classes}\nsplit_sizes: {ds.split_sizes}\n"
                  f"class_names: {', '.join(ds.class_names)}")
            return 0
        from bench.data.preview import write_preview

        out = write_preview(ds, args.out, split=args.split, image_size=args.image_size, resize_method=args.resize)
        print(f"wrote {out}")
        return 0
    except (DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    from bench.plumbing.console import run_command

    sys.exit(run_command(main))
