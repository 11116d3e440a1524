"""The machine and software a run measured on: written to environment.json, and its key fields
copied onto every results row (the `env_id` joins a row to its full record)."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("tensorflow", "keras", "onnxruntime", "onnxruntime-gpu", "onnx", "tf2onnx", "numpy")
REPO = Path(__file__).resolve().parents[2]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        # 0 means "the runtime picks": TensorFlow and onnxruntime then use every core they see.
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "ort_intra_op_threads": 0,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": {p: _version(p) for p in PACKAGES},
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
    key = {k: record.get(k) for k in ("hostname", "cpu_model", "cpu_count", "versions", "gpus")}
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
        "gpu_name": gpu_list[0]["name"] if gpu_list else "",
        "tf_version": versions.get("tensorflow"),
        "keras_version": versions.get("keras"),
        "ort_version": versions.get("onnxruntime") or versions.get("onnxruntime-gpu"),
        "git_commit": ((record.get("git") or {}).get("commit") or "")[:12],
    }
