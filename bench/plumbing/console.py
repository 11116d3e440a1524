"""What every command line of the toolkit does around its work, in one place: TensorFlow's start-up
noise filtered out, Ctrl-C answered with one line and exit code 130, one-line warnings.

Every entry point (`imgcls`, `python -m bench`, `python -m zoo`, `python -m export`, `python -m
bench.distribute.worker` and each module's `__main__`) runs its `main` through `run_command`:

    if __name__ == "__main__":
        sys.exit(run_command(main))

Nothing here imports TensorFlow: `--help` stays fast.
"""
from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import re
import signal
import sys
import tempfile
import threading
from typing import Callable, Iterator

INTERRUPTED = 130  # the shell's code for a process ended by SIGINT
NOTHING_KEPT = "nothing partial was kept"


@contextlib.contextmanager
def interrupt_note(note: str | Callable[[], str]) -> Iterator[None]:
    """While the block runs, Ctrl-C reports `interrupted: <note>` instead of the default
    `interrupted: nothing partial was kept`: say what was kept and how to go on. A callable is
    asked at the moment of the interrupt (what is kept may change as the work goes on). The
    innermost note wins."""
    try:
        yield
    except KeyboardInterrupt as exc:
        _attach(exc, note)
        raise
    except Exception as exc:
        if not interrupted():
            raise
        # Ctrl-C came out of a library as its own error: it is still an interrupt, with this note
        stop = KeyboardInterrupt()
        _attach(stop, note)
        raise stop from exc


def _attach(exc: KeyboardInterrupt, note: str | Callable[[], str]) -> None:
    if not hasattr(exc, "imgcls_note"):
        try:
            exc.imgcls_note = note() if callable(note) else note
        except Exception:  # the message must not fail: the general promise stands
            exc.imgcls_note = NOTHING_KEPT


def interrupted_message(exc: KeyboardInterrupt | None = None) -> str:
    return f"interrupted: {getattr(exc, 'imgcls_note', NOTHING_KEPT)}"


_CTRL_C = threading.Event()


def interrupted() -> bool:
    """Whether Ctrl-C reached the command `run_command` is running (False outside one, and in a
    command that handles SIGINT itself, as `bench run` does). A KeyboardInterrupt raised inside a library can come
    out as that library's own error (a cleanup that fails on half-done state replaces it); a command
    that turns errors into exit codes asks this first, so an interrupt still ends as one."""
    return _CTRL_C.is_set()


def _on_ctrl_c(signum, frame):
    _CTRL_C.set()
    raise KeyboardInterrupt


def run_command(main: Callable[[], int | None]) -> int:
    """Runs a command's `main()` and returns its exit code; a Ctrl-C anywhere inside becomes one
    line on stderr and exit code 130 instead of a traceback, even when a library turned the
    interrupt into its own error on the way out. Files the toolkit keeps are written whole or not at
    all (`bench.plumbing.files.atomic_path`), so the default note is true unless a command says
    otherwise with `interrupt_note`."""
    quiet_tensorflow()
    _CTRL_C.clear()
    previous = None
    # only where Ctrl-C raises KeyboardInterrupt already (not where the shell made us ignore it)
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous = signal.signal(signal.SIGINT, _on_ctrl_c)
    try:
        code = int(main() or 0)
        return INTERRUPTED if code and interrupted() else code
    except KeyboardInterrupt as exc:
        _say_interrupted(exc)
        return INTERRUPTED
    except Exception:
        if not interrupted():
            raise
        _say_interrupted(None)
        return INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        _CTRL_C.clear()  # the record is this command's: code run later in the process must not see it


def _say_interrupted(exc: KeyboardInterrupt | None) -> None:
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    # after the terminal's ^C the cursor is mid-line; a pipe or log file needs no blank line
    lead = "\n" if sys.stderr.isatty() else ""
    print(f"{lead}{interrupted_message(exc)}", file=sys.stderr, flush=True)


def warn(text: str) -> None:
    """One line on stderr, `warning: ...`, for input that is usable but probably not what was meant."""
    print(f"warning: {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- TensorFlow's start-up noise

# Lines TensorFlow's C++ side prints on every start that tell a user nothing actionable. Matched
# whole, so any other line (a real error) still reaches stderr. TF_CPP_MIN_LOG_LEVEL=2 hides
# TensorFlow's own INFO and WARNING logs, but the lines below are written before that setting is
# read (shared-library initialisers logging through absl) or at ERROR level.
HARMLESS = [
    # absl's notice that it has not been initialised, printed before each early log line
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    # CPU build notes (INFO; also hidden by TF_CPP_MIN_LOG_LEVEL, kept here for level 0/1 users)
    r"I\d{4} [\d:. ]+\d+ cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized to use .*",
    r"To enable the following instructions: .* in other operations, rebuild TensorFlow with the appropriate compiler flags\.",
    r"I\d{4} [\d:. ]+\d+ port\.cc:\d+\] oneDNN custom operations are on\. .*",
    # GPU machines: CUDA plugins registered twice by TensorFlow's own libraries (a known TF issue)
    r"E\d{4} [\d:. ]+\d+ cuda_(dnn|fft|blas)\.cc:\d+\] Unable to register cu(DNN|FFT|BLAS) factory: "
    r"Attempting to register factory for plugin cu(DNN|FFT|BLAS) when one has already been registered",
    r"W\d{4} [\d:. ]+\d+ computation_placer\.cc:\d+\] computation placer already registered\. .*",
]
# Only on machines without an NVIDIA driver: there they state the obvious (no GPU). Where a driver
# is present the same lines explain why a GPU is not used, so they are kept.
NO_DRIVER_HARMLESS = [
    r"I\d{4} [\d:. ]+\d+ cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine, GPU will not be used\.",
    r"E\d{4} [\d:. ]+\d+ cuda_platform\.cc:\d+\] failed call to cuInit: .*",
    r"E\d{4} [\d:. ]+\d+ cuda_executor\.cc:\d+\] failed call to cuInit: .*",
]


def nvidia_driver_present() -> bool:
    """An NVIDIA kernel driver (Linux) or WSL's GPU bridge is there."""
    return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/dxg")


def harmless_line_pattern(gpu_driver: bool | None = None) -> re.Pattern:
    gpu_driver = nvidia_driver_present() if gpu_driver is None else gpu_driver
    patterns = HARMLESS + ([] if gpu_driver else NO_DRIVER_HARMLESS)
    return re.compile("|".join(f"(?:{p})" for p in patterns))


def drop_harmless(text: str, pattern: re.Pattern | None = None) -> str:
    """`text` without the lines that match `pattern` whole (default: `harmless_line_pattern()`)."""
    pattern = pattern or harmless_line_pattern()
    return "".join(line for line in text.splitlines(keepends=True) if not pattern.fullmatch(line.rstrip("\r\n")))


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Everything written to file descriptor 2 inside the block (by C++ or Python) is held in a
    temporary file and written out afterwards without the harmless lines; output is never lost,
    only delayed until the block ends."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable stderr: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            rest = drop_harmless(held.read().decode(errors="replace"))
            if rest:
                sys.stderr.write(rest)
                sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    """Runs TensorFlow's import, and its first look for devices (where CUDA is probed), inside
    `filtered_stderr`; then steps aside (the module keeps its own loader)."""

    def __init__(self, inner: importlib.abc.Loader):
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = self.inner
        if module.__spec__ is not None:
            module.__spec__.loader = self.inner
        with filtered_stderr():
            self.inner.exec_module(module)
            # CUDA is probed on the first device query, which lists devices only: logical devices
            # and memory growth can still be configured afterwards.
            with contextlib.suppress(Exception):
                module.config.list_physical_devices()


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        _remove_finder()
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def _remove_finder() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietTensorFlowFinder)]


def quiet_tensorflow() -> None:
    """Before TensorFlow loads: its INFO and WARNING logs off (`TF_CPP_MIN_LOG_LEVEL=2` unless set)
    and the harmless start-up lines filtered from its import. `TF_CPP_MIN_LOG_LEVEL=0` shows
    everything TensorFlow prints. GPUs are never hidden: CUDA_VISIBLE_DEVICES is not touched."""
    level = os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if level == "0" or "tensorflow" in sys.modules:
        return
    if not any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())
