"""A killed export leaves its hidden `.NAME.pidPID.*.tmp` beside --out (issue 16: later runs never
removed it). The next export into the folder removes those of dead processes and leaves a running
export's alone. Real processes: one killed with SIGKILL mid-export, one still running."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from export.package import atomic_directory

REPO = Path(__file__).resolve().parents[1]
# an export's packaging step, stopped inside the block (as conversion would be)
HOLD = ("import sys, time\nfrom export.package import atomic_directory\n"
        "with atomic_directory(sys.argv[1]) as tmp:\n    (tmp / 'model.onnx').write_bytes(b'partial')\n"
        "    print(tmp, flush=True)\n    time.sleep(120)\n")


def _start(out: Path) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    return proc, Path(proc.stdout.readline().strip())


def test_stale_temp_dirs_of_killed_exports_are_removed_live_ones_kept(tmp_path, capsys):
    out = tmp_path / "art"
    killed, stale = _start(out)
    live, running = _start(out)
    other, others = _start(tmp_path / "artifact")  # another artifact's name: not ours to judge
    try:
        assert stale.name.startswith(f".art.pid{killed.pid}.") and stale.name.endswith(".tmp")
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        other.send_signal(signal.SIGKILL)
        other.wait()
        assert (stale / "model.onnx").is_file()  # what a killed export leaves
        with atomic_directory(out) as tmp:
            (tmp / "model.onnx").write_bytes(b"complete")
        assert not stale.exists()
        assert (running / "model.onnx").read_bytes() == b"partial"  # the concurrent export's, untouched
        assert others.exists()
        assert (out / "model.onnx").read_bytes() == b"complete"
        assert f"removed {stale}" in capsys.readouterr().err
    finally:
        live.kill()
        live.wait()
    # once that export is gone too, the next one removes its directory
    with atomic_directory(out, overwrite=True):
        pass
    assert not running.exists() and others.exists()
