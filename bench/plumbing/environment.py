"""The machine and software a result was measured on: package versions, CPU, GPUs, commit, load.

A benchmark run writes `collect()` to environment.json and copies `row_fields()` onto every row
(the `env_id` joins a row to its full record); a training run keeps `training_environment()` in its
recipe.json; an export manifest lists `tool_versions()`.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

PACKAGES = ("tensorflow", "keras", "onnxruntime", "onnxruntime-gpu", "onnx", "tf2onnx", "openvino", "ai-edge-litert",
            "numpy")
REPO = Path(__file__).resolve().parents[2]


def version(package: str) -> str | None:
    """The installed version of a distribution, None when it is not installed."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def tool_versions(packages=PACKAGES) -> dict[str, str | None]:
    return {p: version(p) for p in packages}


def load_average_1m() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# The instruction-set extensions that decide which engine and precision win on a CPU: AVX-512 and
# VNNI (int8 dot products: without them int8 GEMMs use AVX2's saturating vpmaddubsw), BF16 and
# AMX (bfloat16 and int8 tiles), AVX-512 FP16.
ISA_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
             "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")


def cpu_flags() -> list[str]:
    """The ISA_FLAGS this CPU has, from /proc/cpuinfo (Linux) or py-cpuinfo elsewhere."""
    found: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                found = set(line.split(":", 1)[1].split())
                break
    except OSError:
        try:
            import cpuinfo

            found = set(cpuinfo.get_cpu_info().get("flags", []))
        except Exception:  # no way to read them: say nothing rather than something wrong
            return []
    return [f for f in ISA_FLAGS if f in found]


def has_int8_dot_product() -> bool:
    """VNNI or AMX: int8 GEMMs without the 16-bit saturation of AVX2's int8 path."""
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & set(cpu_flags()))


def git_commit() -> dict[str, object]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain", "-uno"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def gpus() -> list[dict[str, object]]:
    import tensorflow as tf

    found = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        found.append({"device": gpu.name, "name": details.get("device_name"),
                      "compute_capability": details.get("compute_capability")})
    if found and shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout.split()
        for gpu, driver in zip(found, out):
            gpu["driver"] = driver
    return found


def collect(argv: list[str] | None = None) -> dict[str, object]:
    import tensorflow as tf

    record: dict[str, object] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        # 0 means "the runtime picks": TensorFlow and onnxruntime then use every core they see.
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "ort_intra_op_threads": 0,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": tool_versions(),
        "tf_built_with_cuda": tf.test.is_built_with_cuda(),
        "gpus": gpus(),
        "git": git_commit(),
        "command": [sys.executable, "-m", "bench", "run", *(argv or [])],
    }
    import onnxruntime as ort

    record["onnxruntime_providers"] = ort.get_available_providers()
    record["env_id"] = env_id(record)
    return record


def env_id(record: dict) -> str:
    """Short hash of what makes two runs comparable: machine, versions, commit."""
    key = {k: record.get(k) for k in ("hostname", "cpu_model", "cpu_flags", "cpu_count", "versions", "gpus")}
    key["commit"] = (record.get("git") or {}).get("commit")
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


def row_fields(record: dict) -> dict[str, object]:
    """The columns every results row carries."""
    versions = record["versions"]
    gpu_list = record.get("gpus") or []
    return {
        "env_id": record["env_id"],
        "hostname": record["hostname"],
        "cpu_model": record["cpu_model"],
        "cpu_flags": " ".join(record.get("cpu_flags") or []),
        "gpu_name": gpu_list[0]["name"] if gpu_list else "",
        "tf_version": versions.get("tensorflow"),
        "keras_version": versions.get("keras"),
        "ort_version": versions.get("onnxruntime") or versions.get("onnxruntime-gpu"),
        "git_commit": ((record.get("git") or {}).get("commit") or "")[:12],
    }


# The development machines' class: a 2-core CPU with AVX-512 that multiplies 1024x1024 float32
# matrices at about 450 GFLOP/s through TensorFlow. Time targets are stated for it and scaled by the
# measured rate elsewhere (a machine at 150 GFLOP/s gets three times the time).
REFERENCE_RATE = 450e9
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # the CPU computes bfloat16 itself (not emulated)


def matmul_rate(n: int = 1024, seconds: float = 1.0, max_calls: int = 50) -> float:
    """This machine's float32 matmul rate through TensorFlow (FLOP/s): the best of repeated
    n x n matmuls within about `seconds` (at least 5 calls). Best, not mean: other work on a shared
    machine only slows calls down, so the fastest call is the closest to what the CPU can do."""
    import numpy as np
    import tensorflow as tf

    a = tf.constant(np.random.default_rng(0).random((n, n), dtype=np.float32))
    mm = tf.function(lambda x: tf.matmul(x, x))
    mm(a).numpy()  # trace and warm up
    best, start, calls = float("inf"), time.perf_counter(), 0
    while calls < 5 or (time.perf_counter() - start < seconds and calls < max_calls):
        t0 = time.perf_counter()
        mm(a).numpy()
        best = min(best, time.perf_counter() - t0)
        calls += 1
    return 2.0 * n**3 / best


def machine_speed(n: int = 1024, seconds: float = 1.0) -> dict[str, object]:
    """What a training record keeps about the machine's speed: the measured matmul rate, the
    reference class's, their ratio, and the load while it was measured."""
    rate = matmul_rate(n, seconds)
    return {"matmul_gflops": round(rate / 1e9, 1), "matmul_n": n,
            "reference_gflops": round(REFERENCE_RATE / 1e9, 1),
            "speed_vs_reference": round(rate / REFERENCE_RATE, 4), "load_avg_1m": load_average_1m()}


def has_bf16_hardware(flags: list[str] | None = None) -> bool:
    """The CPU computes bfloat16 (AVX512-BF16 or AMX-BF16); without them TensorFlow emulates it,
    which on an AVX2-only CPU trains about 9x slower than float32."""
    return bool(set(BF16_FLAGS) & set(cpu_flags() if flags is None else flags))


def training_environment() -> dict[str, object]:
    """What a training record keeps: versions, machine, and how busy the machine was."""
    import keras
    import numpy as np
    import tensorflow as tf

    return {"python": sys.version.split()[0], "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "platform": platform.platform(), "cpu": cpu_model(), "cpu_flags": cpu_flags(),
            "cpu_count": os.cpu_count(), "gpus": len(tf.config.list_physical_devices("GPU")),
            # other work on the machine slows a run down: say how busy it was
            "load_avg_1m": load_average_1m()}
