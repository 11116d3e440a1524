"""`--out` that cannot hold results (issue 16): `bench run --out /proc/x` ended in a traceback, a
read-only directory failed only after the matmul roofs were measured, and `export --out /proc/x/art`
said partial files were in `/proc/x/art.failed`. Each is now one line, exit code 2, before any work."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from bench.harness.run import main as bench_run
from export.__main__ import main as export


@pytest.fixture
def read_only_dir(tmp_path):
    """A real read-only directory: permission bits for a user, a read-only tmpfs for root (whom the
    bits do not stop)."""
    path = tmp_path / "readonly"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"root cannot mount a read-only tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_bench_run_checks_out_before_measuring(tmp_path, read_only_dir, capsys):
    a_file = tmp_path / "results.txt"
    a_file.write_text("mine")
    cases = [(a_file, "is a file, not a directory; choose a directory path for --out"),
             (Path("/proc/x"), "--out /proc/x cannot be created: /proc does not accept new files"),
             (read_only_dir, f"--out {read_only_dir} is a directory this process cannot write to")]
    for out, message in cases:
        start = time.perf_counter()
        rc = bench_run(["--models", "small_cnn", "--datasets", "mnist", "--tasks", "infer", "--engines",
                        "tf_function", "--batch-sizes", "1", "--out", str(out)])
        seconds = time.perf_counter() - start
        line = _one_error_line(capsys)
        assert rc == 2 and message in line, line
        assert seconds < 5, f"{out}: {seconds:.1f} s: something was measured first"
    assert a_file.read_text() == "mine"
    assert list(read_only_dir.iterdir()) == []  # not even environment.json
    # the same request with a usable --out passes the check (only listed: --dry-run)
    assert bench_run(["--models", "small_cnn", "--datasets", "mnist", "--tasks", "infer", "--engines",
                      "tf_function", "--batch-sizes", "1", "--out", str(tmp_path / "new" / "run"),
                      "--dry-run"]) == 0
    assert not (tmp_path / "new").exists()


def test_export_out_that_cannot_exist_claims_no_partial_files(tmp_path, capsys):
    rc = export(["resnet18", "--input-shape", "8,8,3", "--classes", "2", "--formats", "onnx",
                 "--out", "/proc/x/art"])
    line = _one_error_line(capsys)
    assert rc == 2
    assert "--out /proc/x/art cannot be created: /proc does not accept new files" in line
    assert ".failed" not in line
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    rc = export(["resnet18", "--input-shape", "8,8,3", "--classes", "2", "--formats", "onnx",
                 "--out", str(a_file / "art")])
    line = _one_error_line(capsys)
    assert rc == 2 and f"{a_file} is a file, not a directory" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
