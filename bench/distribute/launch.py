"""Start N local workers on 127.0.0.1, each with its TF_CONFIG, and supervise them.

    python -m bench.distribute.launch --workers 2 [--log-dir DIR] -- python -m bench.distribute.worker ...

Each worker gets `TF_CONFIG={"cluster": {"worker": [127.0.0.1:P0, ...]}, "task": {"type": "worker",
"index": i}}` on free ports. If a worker fails, the others get `--grace` seconds to stop by
themselves (MultiWorkerMirroredStrategy aborts its collectives when a peer is gone), then are
terminated; the launcher names the worker that failed first, shows the end of its log and exits
non-zero. The whole job is bounded by `--timeout`. For trying things on one machine only: on a
real cluster a scheduler starts one process per host (docs/distributed.md).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

HOST = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """Ports the OS reports free on 127.0.0.1 (held open together so they are distinct)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((HOST, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(addresses: list[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


# TensorFlow start-up chatter that would push the real error out of the tail.
NOISE = ("I0000 ", "W0000 ", "E0000 ", "WARNING: All log messages", "To enable the following")


def tail(path: str, lines: int = 12) -> str:
    try:
        with open(path, errors="replace") as f:
            kept = [line for line in f if line.strip() and not line.startswith(NOISE)]
    except OSError:
        return ""
    return "".join(kept[-lines:])


@dataclass
class LaunchResult:
    returncodes: list[int | None]
    failed_worker: int | None = None  # first worker seen failing
    log_paths: list[str] = field(default_factory=list)
    timed_out: bool = False
    message: str = ""

    @property
    def ok(self) -> bool:
        return not self.timed_out and self.failed_worker is None and all(c == 0 for c in self.returncodes)


def _stop(proc: subprocess.Popen, wait_s: float) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGCONT)  # a stopped (frozen) process acts on SIGTERM only once resumed
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(wait_s)


def launch(
    command: list[str],
    workers: int,
    *,
    log_dir: str,
    timeout_s: float = 1800.0,
    grace_s: float = 60.0,
    env: dict[str, str] | None = None,
    poll_s: float = 0.2,
) -> LaunchResult:
    """Run `command` as `workers` local processes, wait for all of them, stop all if one fails."""
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if not command:
        raise ValueError("no worker command given: put it after '--', e.g. -- python -m bench.distribute.worker ...")
    os.makedirs(log_dir, exist_ok=True)
    addresses = [f"{HOST}:{p}" for p in free_ports(workers)]
    procs, logs = [], []
    try:
        for i in range(workers):
            path = os.path.join(log_dir, f"worker-{i}.log")
            log = open(path, "w")
            logs.append(path)
            worker_env = {**os.environ, **(env or {}), "TF_CONFIG": tf_config(addresses, i)}
            procs.append(subprocess.Popen(command, env=worker_env, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL))
            log.close()  # the child holds its own descriptor
        print(f"launched {workers} workers on {', '.join(addresses)}; logs in {log_dir}", flush=True)

        deadline = time.monotonic() + timeout_s
        failed: int | None = None
        timed_out = False
        stop_by: float | None = None
        while True:
            codes = [p.poll() for p in procs]
            if failed is None:
                for i, code in enumerate(codes):
                    if code not in (None, 0):
                        failed = i
                        stop_by = time.monotonic() + grace_s
                        print(f"worker {i} failed ({describe_exit(code)}); waiting up to {grace_s:.0f}s "
                              "for the others to stop", flush=True)
                        break
            if all(c is not None for c in codes):
                break
            now = time.monotonic()
            if now > deadline or (stop_by is not None and now > stop_by):
                running = [i for i, c in enumerate(codes) if c is None]
                timed_out = failed is None
                reason = f"job timed out after {timeout_s:.0f}s" if timed_out else "grace period over"
                print(f"{reason}: terminating workers {running}", flush=True)
                for i in running:
                    _stop(procs[i], 10.0)
                break
            time.sleep(poll_s)
    finally:
        for p in procs:  # never leave orphans behind, whatever happened above
            _stop(p, 10.0)

    codes = [p.returncode for p in procs]
    result = LaunchResult(codes, failed, logs, timed_out=timed_out)
    if result.ok:
        result.message = f"all {workers} workers finished"
    elif timed_out:
        result.message = (
            f"error: the job did not finish within --timeout {timeout_s:.0f}s; all workers were stopped "
            f"({', '.join(describe_exit(c) for c in codes)}). Logs: {log_dir}. A worker that never "
            "reached its peers usually means a wrong address or a firewalled port."
        )
    else:
        i = failed if failed is not None else next(i for i, c in enumerate(codes) if c != 0)
        result.failed_worker = i
        others = ", ".join(f"worker {j}: {describe_exit(c)}" for j, c in enumerate(codes) if j != i)
        result.message = (
            f"error: worker {i} failed first ({describe_exit(codes[i])}); {others or 'no other workers'}.\n"
            f"--- end of {logs[i]} ---\n{tail(logs[i])}"
            "Restart the same command to resume from the last checkpoint (BackupAndRestore)."
        )
    return result


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="imgcls distribute launch", description=__doc__.split("\n\n")[0],
                                usage="%(prog)s [--workers N] [options] -- COMMAND ...")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--log-dir", default="runs/distribute/logs")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds for the whole job")
    p.add_argument("--grace", type=float, default=60.0,
                   help="seconds the others get to stop by themselves after one worker fails")
    if "--" not in argv:
        if {"-h", "--help"} & set(argv):
            p.parse_args(argv)  # prints the help and exits
        print(f"{p.format_usage()}error: no worker command: put it after '--', e.g. "
              f"-- python -m bench.distribute.worker ...", file=sys.stderr)
        return 2
    split = argv.index("--")
    args = p.parse_args(argv[:split])
    try:
        result = launch(argv[split + 1:], args.workers, log_dir=args.log_dir,
                        timeout_s=args.timeout, grace_s=args.grace)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.message, file=sys.stdout if result.ok else sys.stderr, flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    from bench.plumbing.console import run_command

    sys.exit(run_command(main))
