"""One report for several machines: `python -m bench report DIR DIR ... [--out DIR]`.

Each DIR is a results folder of `bench run` (results.csv and environment.json). Rows are grouped by
their environment id (`env_id`: machine, versions and commit; see bench.plumbing.environment), so
two folders from the same machine and commit are one column and a GPU box, a laptop or two CPU
types are separate ones. The same cell (model, dataset, task, engine, precision, batch size,
threads; for training also the input pipeline and XLA) is compared across machines in
comparison.md: one column per machine and the ratio to the first machine. timm_benchmark.csv
holds every ok infer/train row in the column names of timm's benchmark.py and its published
results CSVs (model, infer_samples_per_sec, infer_step_time in ms, infer_batch_size,
infer_img_size, infer_gmacs, train_*, param_count in millions), followed by the columns timm has
no name for (engine, precision, threads, dataset, device, machine, env_id).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.plumbing.files import atomic_write_text, check_output_dir
from bench.plumbing.tables import frame_table

CELL = ["model", "dataset", "task", "engine", "precision", "batch_size", "threads", "pipeline", "xla"]
METRIC = {"infer": "images_per_sec", "train": "images_per_sec", "accuracy": "top1"}
TIMM = ["model", "infer_samples_per_sec", "infer_step_time", "infer_batch_size", "infer_img_size", "infer_gmacs",
        "train_samples_per_sec", "train_step_time", "train_batch_size", "train_img_size", "param_count"]
OURS = ["engine", "precision", "threads", "dataset", "device", "machine", "env_id"]


class CompareError(ValueError):
    """A folder that cannot be merged; the message says which and why."""


@dataclass
class Machine:
    env_id: str
    label: str = ""
    hostname: str = ""
    cpu: str = ""
    cores: object = ""
    gpu: str = ""
    versions: str = ""
    commit: str = ""
    folders: list[str] = field(default_factory=list)


def load_folders(dirs: list[Path]) -> tuple[pd.DataFrame, dict[str, Machine]]:
    """Every row of every folder, with its env_id (a row without one takes its folder's)."""
    from bench.harness.report import load
    from bench.harness.results import COLUMNS

    frames, machines = [], {}
    for folder in dirs:
        if not (folder / "results.csv").is_file():
            raise CompareError(f"{folder} has no results.csv: pass folders written by `python -m bench run --out DIR`")
        env_path = folder / "environment.json"
        try:
            env = json.loads(env_path.read_text()) if env_path.is_file() else {}
        except json.JSONDecodeError as exc:
            raise CompareError(f"{env_path} is not valid JSON ({exc}); rerun `bench run` into that folder") from None
        try:
            df = load(folder)
        except (ValueError, KeyError) as exc:
            raise CompareError(f"{folder}/results.csv cannot be read ({exc})") from None
        for column in COLUMNS:
            if column not in df:
                df[column] = np.nan  # a folder written by an older version
        folder_id = env.get("env_id") or f"folder:{folder}"
        df["env_id"] = df["env_id"].fillna(folder_id).replace("", folder_id)
        df["source"] = str(folder)
        for env_id in df["env_id"].unique():
            m = machines.setdefault(env_id, Machine(env_id=env_id))
            if str(folder) not in m.folders:
                m.folders.append(str(folder))
            rows = df[df["env_id"] == env_id]
            first = rows.iloc[0]
            same = env.get("env_id") == env_id
            versions = env.get("versions") or {}
            m.hostname = m.hostname or (env.get("hostname") if same else None) or _s(first["hostname"])
            m.cpu = m.cpu or (env.get("cpu_model") if same else None) or _s(first["cpu_model"])
            m.cores = m.cores or (env.get("cpu_count") if same else "") or ""
            gpus = ", ".join(g.get("name", "?") for g in env.get("gpus") or []) if same else ""
            m.gpu = m.gpu or gpus or _s(first["gpu_name"])
            m.versions = m.versions or (f"TF {versions.get('tensorflow')}, ORT "
                                        f"{versions.get('onnxruntime') or versions.get('onnxruntime-gpu')}"
                                        if same and versions else f"TF {_s(first['tf_version'])}, ORT "
                                        f"{_s(first['ort_version'])}")
            m.commit = m.commit or (((env.get("git") or {}).get("commit") or "")[:12] if same else "") or \
                _s(first["git_commit"])
        frames.append(df)
    data = pd.concat(frames, ignore_index=True)
    data["model"] = data["model"].astype("string").str.split(":").str[-1]
    for m in machines.values():
        what = m.gpu if m.gpu else m.cpu
        m.label = f"{m.hostname or '?'} ({what or 'unknown CPU'}) [{m.env_id[:8]}]"
    return data, machines


def _s(value) -> str:
    return "" if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)) else str(value)


def comparison(data: pd.DataFrame, machines: dict[str, Machine]) -> pd.DataFrame:
    """One row per cell measured ok on at least two machines: its metric on each machine (the
    latest row of that machine) and each machine's ratio to the first."""
    ok = data[(data["status"] == "ok") & data["task"].isin(list(METRIC))].copy()
    ok["metric"] = ok["task"].map(METRIC)
    ok["value"] = np.where(ok["task"] == "accuracy", ok["top1"], ok["images_per_sec"]).astype("float64")
    ok = ok.dropna(subset=["value"])
    ok["threads"] = ok["threads"].astype("Int64")
    keys = CELL + ["metric"]
    ok[keys] = ok[keys].astype("string").fillna("")
    latest = ok.sort_values("timestamp").groupby(keys + ["env_id"], dropna=False).tail(1)
    wide = latest.pivot_table(index=keys, columns="env_id", values="value", aggfunc="last")
    order = [e for e in machines if e in wide.columns]
    wide = wide[order].dropna(thresh=2)
    if wide.empty:
        return pd.DataFrame()
    first = order[0]
    out = wide.reset_index()
    for env_id in order[1:]:
        ratio = wide[env_id].to_numpy() / wide[first].to_numpy()
        out[f"ratio {machines[env_id].hostname or env_id[:8]} [{env_id[:8]}] / first"] = [
            "" if np.isnan(r) else f"{r:.2f}x" for r in ratio]
    for env_id in order:  # values as text: a table of throughputs reads badly in scientific notation
        out[env_id] = [("" if np.isnan(v) else f"{v:.4f}" if metric == "top1" else f"{v:,.1f}")
                       for v, metric in zip(out[env_id], out["metric"])]
    out = out.rename(columns={e: machines[e].label for e in order})
    out["batch_size"] = out["batch_size"].astype(int)
    out = out.sort_values(["task", "model", "dataset", "engine", "precision", "batch_size", "threads"], kind="stable")
    drop = [c for c in ("pipeline", "xla") if out[c].isin(["", "False"]).all()]  # columns of training only
    return out.drop(columns=drop)


def timm_rows(data: pd.DataFrame, machines: dict[str, Machine]) -> pd.DataFrame:
    """Every ok infer/train row in timm's benchmark column names (then ours)."""
    rows = []
    for _, r in data[(data["status"] == "ok") & data["task"].isin(["infer", "train"])].iterrows():
        prefix = r["task"]
        width = _img_size(r["input_shape"])
        row = {c: None for c in TIMM + OURS}
        row.update({
            "model": r["model"],
            f"{prefix}_samples_per_sec": _round(r["images_per_sec"], 2),
            # timm's step_time: mean milliseconds per batch over the timed steps
            f"{prefix}_step_time": _round(r["latency_ms_mean"], 3),
            f"{prefix}_batch_size": int(r["batch_size"]),
            f"{prefix}_img_size": width,
            "param_count": _round(r["params"] / 1e6, 2),
            "engine": r["engine"], "precision": r["precision"],
            "threads": None if pd.isna(r["threads"]) else int(r["threads"]), "dataset": r["dataset"],
            "device": r["device"], "machine": machines[r["env_id"]].label, "env_id": r["env_id"],
        })
        if prefix == "infer":  # timm: multiply-accumulates of one image (a multiply-add counts 2 FLOPs here)
            row["infer_gmacs"] = _round(r["flops_per_image"] / 2e9, 4)
        rows.append(row)
    table = pd.DataFrame(rows, columns=TIMM + OURS)
    for column in ("infer_batch_size", "infer_img_size", "train_batch_size", "train_img_size", "threads"):
        table[column] = table[column].astype("Int64")
    return table


def _round(value, digits: int):
    return None if value is None or pd.isna(value) else round(float(value), digits)


def _img_size(shape) -> int | None:
    """timm's img_size is the input's last spatial size (its width); ours is HxWxC."""
    try:
        return int(str(shape).split("x")[1])
    except (IndexError, ValueError):
        return None


def write(dirs: list[Path], out: Path) -> tuple[Path, Path]:
    """comparison.md and timm_benchmark.csv in `out` from the results folders `dirs`."""
    check_output_dir(out)
    data, machines = load_folders([Path(d) for d in dirs])
    table = comparison(data, machines)
    lines = ["# Benchmark comparison across machines", "",
             f"{len(dirs)} results folder(s), {len(data)} rows, {len(machines)} environment(s) (machine, "
             "versions and commit: `env_id`).", "", "## Machines", ""]
    lines.append(frame_table(pd.DataFrame([{
        "machine": m.label, "env_id": m.env_id, "cpu": m.cpu, "cores": m.cores, "gpu": m.gpu or "none",
        "versions": m.versions, "commit": m.commit, "folders": ", ".join(m.folders)} for m in machines.values()])))
    lines += ["", "## The same cells on each machine", ""]
    if len(machines) < 2:
        lines.append("Only one environment: nothing to compare. Pass results folders of other machines.")
    elif table.empty:
        lines.append("No cell (model, dataset, task, engine, precision, batch size, threads) was measured ok on "
                     "two machines: run the same profile on each.")
    else:
        lines += ["`images_per_sec` for infer and train cells (higher is faster), `top1` for accuracy cells; each "
                  "machine's latest row of the cell. A ratio above 1 means that machine is faster (or more "
                  "accurate) than the first machine. Cells measured on one machine only are left out.", "",
                  frame_table(table), ""]
    lines += ["", "`timm_benchmark.csv`: every ok infer and train row in the column names of timm's benchmark.py "
              "(`infer_step_time` and `train_step_time` in ms per batch, `param_count` in millions, `infer_gmacs` "
              "per image), then engine, precision, threads, dataset, device, machine and env_id.", ""]
    out.mkdir(parents=True, exist_ok=True)
    md = atomic_write_text(out / "comparison.md", "\n".join(lines))
    csv_path = out / "timm_benchmark.csv"
    atomic_write_text(csv_path, timm_rows(data, machines).to_csv(index=False))
    return md, csv_path
