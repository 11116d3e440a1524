"""`python -m bench data fetch|info|preview` as a user runs it."""
from __future__ import annotations

import subprocess
import sys

from PIL import Image

from bench.data import cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_preview_writes_a_png_grid(tmp_path, mnist):
    out = tmp_path / "preview" / "mnist.png"
    assert cli.main(["preview", "mnist", "--out", str(out), "--image-size", "227", "--resize", "pad"]) == 0
    data = out.read_bytes()
    assert data[:8] == PNG_SIGNATURE and 20_000 < len(data) < 2_000_000
    with Image.open(out) as img:
        assert img.width >= 500 and img.height >= 500  # a 3x3 grid of titled samples


def test_preview_rejects_a_non_png_name(tmp_path, capsys, mnist):
    assert cli.main(["preview", "mnist", "--out", str(tmp_path / "x.jpg")]) == 1
    assert "--out must name a .png file" in capsys.readouterr().err


def test_info_lists_class_names_shape_and_sizes(capsys, cifar10):
    assert cli.main(["info", "cifar10"]) == 0
    out = capsys.readouterr().out
    assert "image_shape: (32, 32, 3)" in out and "'train': 50000" in out and "airplane, automobile" in out


def test_fetch_reports_unavailable_and_unknown_datasets(isolated_cache, capsys):
    assert cli.main(["fetch", "cifar100", "nosuchset"]) == 1
    err = capsys.readouterr().err
    assert "dataset 'cifar100' is not available" in err and "cifar-100-python.tar.gz" in err
    assert "unknown dataset 'nosuchset'" in err


def test_module_entry_point(mnist):
    proc = subprocess.run([sys.executable, "-m", "bench", "data", "info", "mnist"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "split_sizes: {'train': 60000, 'test': 10000}" in proc.stdout
