"""`python -m bench run`: measure a matrix of models x datasets x tasks x engines x batch sizes x
precisions into out/NAME by default (results.csv, results.json, environment.json, report.md, PNG
plots); the committed results/NAME is refreshed only when asked for (--out results/NAME).

Everything is validated before anything is measured. Rows are appended and flushed as each cell
finishes; after an interrupt, `--resume` skips the finished cells and `--fresh` starts again.
"""
from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import threading
import tempfile
import time
from pathlib import Path

from bench.harness import matrix as mx
from bench.harness.results import ResultsFile, now
from bench.plumbing.files import OutputPathError, atomic_write_json, check_output_dir


def _csv(kind=str):
    def parse(text: str):
        items = [t.strip() for t in text.split(",") if t.strip()]
        try:
            return [kind(t) for t in items]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind.__name__}, got {text!r}")
    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--profile", help=f"named profile: {', '.join(mx.profile_names())} (default quick)")
    src.add_argument("--matrix", type=Path, help="a TOML matrix file (same keys as bench/harness/profiles/*.toml)")
    p.add_argument("--models", type=_csv(), help="comma-separated: zoo names, package.module:function (e.g. "
                   "keras.applications:ResNet50), trained .keras files, or exported artifact directories")
    p.add_argument("--datasets", type=_csv(), help="dataset names or image-folder paths")
    p.add_argument("--tasks", type=_csv(), help=f"any of {', '.join(mx.TASKS)}")
    p.add_argument("--batch-sizes", type=_csv(int), help="inference batch sizes, e.g. 1,8,32")
    p.add_argument("--train-batch-sizes", type=_csv(int), help="training batch sizes")
    p.add_argument("--engines", type=_csv(), help="inference engines: keras_predict, tf_function, xla, savedmodel, "
                   "onnxruntime, onnxruntime_cuda, openvino, litert")
    p.add_argument("--precisions", type=_csv(), help="what the engines compute in: float32, float16, bfloat16, int8 "
                   "(artifact engines), mixed_float16, mixed_bfloat16 (TensorFlow engines); each engine runs those it can")
    p.add_argument("--threads", type=_csv(int), help="runtime threads, e.g. 1,0 (0 = every core)")
    p.add_argument("--verify-images", type=int, help="real test images each engine is checked on before it is timed")
    p.add_argument("--xla", type=_csv(), help="training with XLA: on,off")
    p.add_argument("--device", choices=mx.DEVICES, help="cpu, gpu or auto (gpu when one is present)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--repeats", type=int, help="timed calls per inference cell")
    budget.add_argument("--time-budget", type=float, help="seconds of timed calls per inference cell")
    p.add_argument("--warmup", type=int, help="untimed warm-up calls per shape")
    p.add_argument("--checkpoint", help="a trained .keras model for the accuracy task")
    p.add_argument("--out", type=Path, help="output directory (default out/PROFILE, untracked; "
                   "results/PROFILE holds the committed results)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="keep finished rows in --out and run the rest")
    again.add_argument("--fresh", action="store_true", help="delete earlier results in --out and start clean")
    p.add_argument("--no-overhead-check", action="store_true", help="skip the harness-overhead measurement")
    p.add_argument("--report-only", action="store_true", help="only re-render report.md and plots from --out")
    p.add_argument("--strategy", default="default", choices=("default", "mirrored", "multiworker"),
                   help="tf.distribute strategy for the train cells; batch sizes are per replica")
    p.add_argument("--cpu-devices", type=int, help="--strategy mirrored without GPUs: N logical CPU devices")
    p.add_argument("--dry-run", action="store_true", help="validate, list the cells and estimate the time; measure nothing")
    # internal: the child process that runs the TensorFlow cells of another thread count
    p.add_argument("--tf-threads", type=int, help=argparse.SUPPRESS)
    return p


def build_matrix(args: argparse.Namespace) -> mx.Matrix:
    matrix = mx.load_matrix(args.matrix) if args.matrix else mx.load_profile(args.profile or "quick")
    overrides = dict(models=args.models, datasets=args.datasets, tasks=args.tasks, batch_sizes=args.batch_sizes,
                     train_batch_sizes=args.train_batch_sizes, engines=args.engines, precisions=args.precisions,
                     device=args.device, warmup=args.warmup, checkpoint=args.checkpoint, threads=args.threads,
                     verify_images=args.verify_images)
    if args.precisions:
        overrides["explicit_precisions"] = True
    if args.xla:
        overrides["xla"] = [mx.parse_bool(v) for v in args.xla]
    if args.repeats is not None:
        overrides.update(repeats=args.repeats, time_budget_s=None)
    if args.time_budget is not None:
        overrides.update(time_budget_s=args.time_budget, repeats=None)
    if args.no_overhead_check:
        overrides["overhead_check"] = False
    return mx.with_overrides(matrix, **overrides)


def resolve_device(requested: str) -> str:
    """'cpu', or 'gpu' with memory growth enabled (set before TensorFlow touches the GPU)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    if requested == "gpu" and not gpus:
        raise mx.MatrixError("--device gpu but TensorFlow sees no GPU (CUDA build and driver needed); use --device cpu")
    return "gpu" if gpus and requested in ("gpu", "auto") else "cpu"


def measure_peaks(cells: list, device: str, earlier: dict[str, float], n: int, workdir: Path) -> dict[str, float]:
    """The roofs of these cells' rows (engine family x precision x threads); a resumed run keeps
    the figures its first rows used."""
    from bench.harness.cells import roofs_needed, tf_threads
    from bench.measure.roofline import peak_rates, roof_key

    todo = [r for r in roofs_needed(cells, tf_threads()) if roof_key(*r) not in earlier]
    peaks = dict(earlier)
    if todo:
        rates, missing = peak_rates(todo, device, n=n, workdir=workdir)
        peaks.update(rates)
        for key, why in missing.items():
            print(f"note: roof {key} not measured ({why}); peak_fraction stays empty for its rows", file=sys.stderr)
    return peaks


def _duration(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    if args.tf_threads:  # a child of another run: TensorFlow's threads are fixed before it starts
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.tf_threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    from bench.distribute.strategy import make_strategy
    try:  # first: logical devices and the cluster are fixed when TensorFlow starts
        strategy = make_strategy(args.strategy, cpu_devices=args.cpu_devices)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        matrix = build_matrix(args)
        out = args.out or Path("out") / matrix.name
        if args.report_only:
            from bench.harness import report

            print(f"report: {report.write(out)}")
            return 0
        mx.validate(matrix)
        check_output_dir(out)  # before the roofs are measured: a bad --out fails in a second, not minutes
        if args.dry_run:
            from bench.harness.estimate import describe

            todo = mx.cells(matrix, matrix.device if matrix.device != "auto" else "cpu")
            for i, cell in enumerate(todo, 1):
                print(f"[{i}/{len(todo)}] {cell.label()}")
            print(describe(matrix, todo))
            print(f"{len(todo)} cells; results would go to {out}")
            return 0
        results = ResultsFile(out)
        if results.exists() and not (args.resume or args.fresh):
            raise mx.MatrixError(f"{results.csv_path} already has results: add --resume to continue that run "
                                 f"or --fresh to start it again (or choose another --out)")
        if args.resume:
            try:
                results.read()  # fails early if the columns differ
            except ValueError as exc:
                raise mx.MatrixError(str(exc)) from None
        device = resolve_device(matrix.device)
    except (mx.MatrixError, OutputPathError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from bench.distribute.strategy import chief_only_path
    scratch = Path(chief_only_path(out, strategy))  # multiworker: only the chief writes into --out
    if args.tf_threads:
        return run_child(matrix, out, device, args.tf_threads)
    if scratch == Path(out):
        return run(matrix, out, device, argv, fresh=args.fresh, strategy=strategy, strategy_name=args.strategy)
    try:  # another worker: joins the chief's training cells, keeps nothing
        return run(matrix, scratch, device, argv, fresh=args.fresh, strategy=strategy,
                   strategy_name=args.strategy, chief_out=Path(out))
    finally:
        shutil.rmtree(scratch.parent, ignore_errors=True)


def run(matrix: mx.Matrix, out: Path, device: str, argv: list[str], fresh: bool = False,
        strategy=None, strategy_name: str = "default", chief_out: Path | None = None) -> int:
    """`chief_out`: on a non-chief worker, the chief's --out; the worker then runs exactly the
    training cells the chief still has to run (their steps are collective) and nothing else."""
    results = ResultsFile(out)
    previous = _catch_interrupts()
    try:
        return _run(matrix, out, device, argv, fresh, results, strategy, strategy_name, chief_out)
    except KeyboardInterrupt:
        kept = len(results.read()) if results.exists() else 0
        print(f"\ninterrupted: {kept} rows kept in {results.csv_path}; "
              f"rerun with --resume to finish or --fresh to start again", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


_INTERRUPTED = threading.Event()


def _catch_interrupts():
    """Ctrl-C also sets a flag that the cell loop checks: a KeyboardInterrupt raised while Python runs
    a finaliser (a `__del__` of TensorFlow's or onnxruntime's objects) is printed and swallowed, and
    the run would go on to the end. Returns the previous handler (None off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    _INTERRUPTED.clear()

    def on_sigint(signum, frame):
        _INTERRUPTED.set()
        raise KeyboardInterrupt

    return signal.signal(signal.SIGINT, on_sigint)


def _run(matrix: mx.Matrix, out: Path, device: str, argv: list[str], fresh: bool, results: ResultsFile,
         strategy=None, strategy_name: str = "default", chief_out: Path | None = None) -> int:
    from bench.harness import report
    from bench.harness.cells import tf_threads
    from bench.plumbing import environment

    env_path = out / "environment.json"
    if fresh:  # nothing of the earlier run may stay looking current
        results.clear()
        for old in [env_path, out / "report.md", *out.glob("*.png"), *out.glob(".roofs-*.json")]:
            old.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    earlier = json.loads(env_path.read_text()) if env_path.exists() else {}
    env = environment.collect(argv)
    env["profile"] = matrix.name
    env["started"] = now()
    env["earlier_runs"] = earlier.get("earlier_runs", []) + ([{k: earlier.get(k) for k in ("command", "started", "env_id")}]
                                                             if earlier else [])
    print(f"bench run {matrix.name}: device {device}, results in {out}", file=sys.stderr)

    todo = mx.cells(matrix, device)
    finished = ResultsFile(chief_out).finished_keys() if chief_out and not fresh else results.finished_keys()
    pending = [c for c in todo if c.key() not in finished and (chief_out is None or c.task == "train")]
    if finished:
        print(f"resuming: {len(todo) - len(pending)} of {len(todo)} cells already on disk", file=sys.stderr)
    # TensorFlow's threads are the process's: cells asking for another count run in a child process
    here = [c for c in pending if not (c.tf_threads and c.threads not in (0, tf_threads()))]
    elsewhere = sorted({c.threads for c in pending if c not in here})
    with tempfile.TemporaryDirectory(prefix="bench-artifacts-") as workdir:
        env["peak_matmul_flops_per_sec"] = measure_peaks(here, device, earlier.get("peak_matmul_flops_per_sec", {}),
                                                         matrix.matmul_n, Path(workdir))
        env["matmul_n"] = matrix.matmul_n
        if matrix.accuracy_evidence:
            from bench.harness import evidence

            env["accuracy_evidence"] = evidence.collect(matrix.accuracy_evidence)
        if matrix.overhead_check and "infer" in matrix.tasks:
            from bench.measure.overhead import harness_overhead

            env["harness_overhead"] = earlier.get("harness_overhead") or harness_overhead(device)
        atomic_write_json(env_path, env)
        started = time.perf_counter()
        try:
            _measure(matrix, here, todo, env, results, device, Path(workdir), strategy, strategy_name, started)
            for threads in elsewhere:
                _run_in_child(argv, out, threads, env)
        finally:
            env["finished"] = now()
            atomic_write_json(env_path, env)
    path = report.write(out)
    print(f"done in {_duration(time.perf_counter() - started)}: {results.csv_path}, {path}", file=sys.stderr)
    return 0


def _measure(matrix: mx.Matrix, pending: list, todo: list, env: dict, results: ResultsFile, device: str,
             workdir: Path, strategy, strategy_name: str, started: float) -> None:
    """Runs `pending` cells in this process, appending each row as it finishes."""
    from bench.harness.cells import CellRunner, needed_formats
    from bench.plumbing.environment import row_fields

    common = row_fields(env)
    runner = CellRunner(matrix, env["peak_matmul_flops_per_sec"], workdir, strategy=strategy,
                        strategy_name=strategy_name, needed_formats=needed_formats(pending))
    done_before = len(todo) - len(pending)
    for i, cell in enumerate(pending, 1):
        row = runner.run(cell)
        # Ctrl-C arrived and was swallowed inside the cell (a finaliser, or a library turning it into
        # its own error, which the cell then records as a failure): the cell did not finish, so its
        # row is not kept and --resume measures it again.
        if _INTERRUPTED.is_set():
            raise KeyboardInterrupt
        row.update(common, timestamp=now())
        results.append(row)
        elapsed = time.perf_counter() - started
        eta = elapsed / i * (len(pending) - i)
        detail = (f"p50 {row['latency_ms_p50']:.2f} ms, {row['images_per_sec']:.1f} img/s"
                  if row.get("latency_ms_p50") is not None else
                  f"top1 {row['top1']:.4f}" if row.get("top1") is not None else row.get("reason", ""))
        print(f"[{done_before + i}/{len(todo)}] {cell.label()}: {row['status']} {detail} "
              f"| elapsed {_duration(elapsed)}, ETA {_duration(eta)}", file=sys.stderr, flush=True)


def _run_in_child(argv: list[str], out: Path, threads: int, env: dict) -> None:
    """The TensorFlow cells of `threads` threads, in a child process started with them; its roofs
    join this run's environment.json."""
    import subprocess

    child = [a for a in argv if a not in ("--fresh", "--resume")]
    if "--out" not in child:
        child += ["--out", str(out)]
    command = [sys.executable, "-m", "bench", "run", *child, "--resume", "--tf-threads", str(threads)]
    print(f"running the TensorFlow cells with {threads} thread(s) in a child process", file=sys.stderr, flush=True)
    code = subprocess.run(command).returncode
    roofs = out / f".roofs-tf{threads}.json"
    if roofs.exists():
        env["peak_matmul_flops_per_sec"].update(json.loads(roofs.read_text()))
        roofs.unlink()
    if code != 0:
        raise RuntimeError(f"the child run with {threads} TensorFlow threads failed (exit status {code})")


def run_child(matrix: mx.Matrix, out: Path, device: str, threads: int) -> int:
    """In the child: the pending TensorFlow cells of exactly this thread count."""
    results = ResultsFile(out)
    env = json.loads((out / "environment.json").read_text())
    todo = mx.cells(matrix, device)
    finished = results.finished_keys()
    pending = [c for c in todo if c.tf_threads and c.threads == threads and c.key() not in finished]
    previous = _catch_interrupts()
    try:
        return _run_child(matrix, pending, todo, env, results, device, out, threads)
    except KeyboardInterrupt:
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _run_child(matrix: mx.Matrix, pending: list, todo: list, env: dict, results: ResultsFile, device: str,
               out: Path, threads: int) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-artifacts-") as workdir:
        peaks = measure_peaks(pending, device, env.get("peak_matmul_flops_per_sec", {}), matrix.matmul_n, Path(workdir))
        atomic_write_json(out / f".roofs-tf{threads}.json", {k: v for k, v in peaks.items()
                                                              if k not in env.get("peak_matmul_flops_per_sec", {})})
        env["peak_matmul_flops_per_sec"] = peaks
        _measure(matrix, pending, todo, env, results, device, Path(workdir), None, "default", time.perf_counter())
    return 0


if __name__ == "__main__":
    from bench.plumbing.console import run_command

    sys.exit(run_command(main))
