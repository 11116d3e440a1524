"""Peak memory of the measured process during one cell.

Host: `ru_maxrss` is a high-water mark for the whole process life, so it cannot separate cells run
one after another in the same process. Instead a daemon thread samples the resident set size from
/proc/self/statm every few milliseconds while the cell runs; `peak_mb` is the largest sample (the
whole process's RSS, not an increment). Where /proc is missing it falls back to ru_maxrss.
GPU: TensorFlow's own allocator statistics (`get_memory_info(...)["peak"]`), reset per cell.
"""
from __future__ import annotations

import os
import resource
import sys
import threading

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss if sys.platform == "darwin" else rss * 1024  # Linux reports KiB, macOS bytes


class PeakRSS:
    """`with PeakRSS() as peak: ...; peak.peak_mb` — sampled peak RSS while the block ran."""

    def __init__(self, interval_s: float = 0.005):
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak_bytes = max(self.peak_bytes, current_rss_bytes())
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> "PeakRSS":
        self.peak_bytes = current_rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, current_rss_bytes())

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20


def _has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def reset_gpu_peak(device: str) -> None:
    if device == "gpu" and _has_gpu():
        import tensorflow as tf

        tf.config.experimental.reset_memory_stats("GPU:0")


def gpu_peak_mb(device: str) -> float | None:
    """TensorFlow's peak GPU allocation since the last reset (onnxruntime's CUDA arena is not seen)."""
    if device != "gpu" or not _has_gpu():
        return None
    import tensorflow as tf

    return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
