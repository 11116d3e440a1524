"""Benchmark matrices: named profiles (bench/profiles/NAME.toml) or a user's TOML file, command-line
overrides, validation of every name before anything runs, and expansion into cells."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.measure.engines import ENGINES
from bench.measure.train_step import PIPELINES
from bench.plumbing.precision import KERAS_POLICIES

PROFILES_DIR = Path(__file__).parent / "profiles"
TASKS = ("infer", "train", "accuracy")
DEVICES = ("cpu", "gpu", "auto")


class MatrixError(ValueError):
    """A matrix or option that cannot run; the message says what is wrong and what is valid."""


@dataclass(frozen=True)
class ModelEntry:
    """A name `zoo.build` resolves (a zoo name or `package.module:function`), its build options and
    an optional input size override (default: the dataset's own image size)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    image_size: int | None = None
    channels: int | None = None
    tasks: tuple[str, ...] | None = None  # only these tasks for this model (default: the matrix's)

    def __hash__(self) -> int:
        return hash((self.name, repr(sorted(self.options.items())), self.image_size, self.channels))

    def runs(self, task: str, tasks: list[str]) -> bool:
        return task in tasks and (self.tasks is None or task in self.tasks)


@dataclass
class Matrix:
    name: str = "custom"
    description: str = ""
    models: list[ModelEntry] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=lambda: ["infer"])
    engines: list[str] = field(default_factory=lambda: ["keras_predict", "tf_function"])
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 32])
    precisions: list[str] = field(default_factory=lambda: ["float32"])
    xla: list[bool] = field(default_factory=lambda: [False])  # training: compile with jit_compile
    device: str = "cpu"
    warmup: int = 5
    repeats: int | None = None
    time_budget_s: float | None = 1.0
    min_repeats: int = 10
    # training
    train_batch_sizes: list[int] = field(default_factory=lambda: [32])
    train_pipelines: list[str] = field(default_factory=lambda: list(PIPELINES))
    train_warmup_steps: int = 3
    train_steps: int | None = None
    train_time_budget_s: float | None = 5.0
    train_min_steps: int = 5
    # accuracy
    checkpoint: str | None = None
    accuracy_engines: list[str] = field(default_factory=lambda: ["tf_function", "onnxruntime"])
    accuracy_fit_steps: int = 100
    accuracy_batch_size: int = 256
    accuracy_limit: int | None = None
    # run-level measurements
    overhead_check: bool = True
    matmul_n: int = 1024


# TOML layout: top-level keys are Matrix fields, plus the tables below mapped onto prefixed fields.
_TABLES = {
    "train": {"batch_sizes": "train_batch_sizes", "pipelines": "train_pipelines",
              "warmup_steps": "train_warmup_steps", "steps": "train_steps",
              "time_budget_s": "train_time_budget_s", "min_steps": "train_min_steps"},
    "accuracy": {"checkpoint": "checkpoint", "engines": "accuracy_engines", "fit_steps": "accuracy_fit_steps",
                 "batch_size": "accuracy_batch_size", "limit": "accuracy_limit"},
}
_TOP = {f for f in Matrix.__dataclass_fields__ if not f.startswith(("train_", "accuracy_")) and f != "checkpoint"}


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


def load_profile(name: str) -> Matrix:
    path = PROFILES_DIR / f"{name}.toml"
    if not path.exists():
        raise MatrixError(f"unknown profile {name!r}; valid: {', '.join(profile_names())}")
    return load_matrix(path)


def load_matrix(path: str | Path) -> Matrix:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise MatrixError(f"matrix file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise MatrixError(f"matrix file {path} is not valid TOML: {exc}") from None
    return from_dict(data, source=str(path))


def from_dict(data: dict[str, Any], source: str = "matrix") -> Matrix:
    values: dict[str, Any] = {"name": Path(source).stem}
    for key, value in data.items():
        if key in _TABLES:
            if not isinstance(value, dict):
                raise MatrixError(f"{source}: [{key}] must be a table")
            for sub, sub_value in value.items():
                if sub not in _TABLES[key]:
                    raise MatrixError(f"{source}: unknown key {key}.{sub}; valid: {', '.join(_TABLES[key])}")
                values[_TABLES[key][sub]] = sub_value
        elif key == "models":
            values["models"] = [_model_entry(m, source) for m in value]
        elif key in _TOP:
            values[key] = value
        else:
            raise MatrixError(f"{source}: unknown key {key!r}; valid: {', '.join(sorted(_TOP | set(_TABLES)))}")
    for key in ("repeats", "train_steps", "accuracy_limit", "checkpoint"):
        if values.get(key) in (0, ""):  # TOML has no null: 0 / "" mean "not set"
            values[key] = None
    if "xla" in values:
        values["xla"] = [parse_bool(v) for v in _as_list(values["xla"])]
    return Matrix(**values)


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def parse_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("on", "true", "1", "yes"):
        return True
    if text in ("off", "false", "0", "no"):
        return False
    raise MatrixError(f"xla must be on/off (or true/false), got {value!r}")


def _model_entry(item, source: str) -> ModelEntry:
    if isinstance(item, str):
        return ModelEntry(item)
    if isinstance(item, dict) and "name" in item:
        unknown = set(item) - {"name", "options", "image_size", "channels", "tasks"}
        if unknown:
            raise MatrixError(f"{source}: unknown model keys {sorted(unknown)}; "
                              f"valid: name, options, image_size, channels, tasks")
        tasks = tuple(item["tasks"]) if "tasks" in item else None
        return ModelEntry(item["name"], dict(item.get("options", {})), item.get("image_size"), item.get("channels"), tasks)
    raise MatrixError(f"{source}: each model is a name or a table with 'name', got {item!r}")


def with_overrides(matrix: Matrix, **overrides: Any) -> Matrix:
    """Command-line values replace the profile's; a model named on the command line keeps the options
    the profile gives it."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if "models" in overrides:
        known = {m.name: m for m in matrix.models}
        overrides["models"] = [known.get(name, ModelEntry(name)) for name in overrides["models"]]
    return replace(matrix, **overrides)


# ---------------------------------------------------------------- validation


def zoo_names() -> list[str]:
    import zoo

    return list(zoo.names())


def known_datasets() -> list[str]:
    from bench.data import dataset_names

    return list(dataset_names())


def check_constructor(name: str) -> str | None:
    """Why `package.module:function` cannot be imported, or None when it can."""
    import importlib

    module_name, _, attr = name.partition(":")
    try:
        getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        return f"model constructor {name!r} cannot be loaded: {exc}"
    return None


def validate(matrix: Matrix) -> None:
    """Every problem at once, before anything is measured."""
    problems: list[str] = []

    def check(kind: str, given, valid) -> None:
        bad = [g for g in given if g not in valid]
        if bad:
            problems.append(f"unknown {kind} {', '.join(map(repr, bad))}; valid: {', '.join(map(str, valid))}")

    if not matrix.models:
        problems.append("no models: give --models or a profile/matrix with models")
    if not matrix.datasets:
        problems.append("no datasets: give --datasets or a profile/matrix with datasets")
    zoo_models = [m.name for m in matrix.models if ":" not in m.name]
    if zoo_models:
        try:
            check("model", zoo_models, zoo_names())
        except MatrixError as exc:
            problems.append(str(exc))
    for m in matrix.models:
        if ":" in m.name and (why := check_constructor(m.name)):
            problems.append(why)
        check(f"task of model {m.name}", m.tasks or (), TASKS)
        if m.image_size is not None and (not isinstance(m.image_size, int) or m.image_size < 1):
            problems.append(f"model {m.name}: image_size must be a positive integer, got {m.image_size!r}")
    folders = [d for d in matrix.datasets if Path(d).is_dir()]
    check("dataset", [d for d in matrix.datasets if d not in folders], known_datasets() + ["(or an image-folder path)"])
    check("task", matrix.tasks, TASKS)
    check("engine", matrix.engines, list(ENGINES))
    check("accuracy engine", matrix.accuracy_engines, list(ENGINES))
    check("precision", matrix.precisions, list(KERAS_POLICIES))
    check("training pipeline", matrix.train_pipelines, PIPELINES)
    check("device", [matrix.device], DEVICES)
    for label, sizes in (("batch size", matrix.batch_sizes), ("training batch size", matrix.train_batch_sizes)):
        bad = [b for b in sizes if not isinstance(b, int) or isinstance(b, bool) or b < 1]
        if bad:
            problems.append(f"{label}s must be positive integers, got {bad}")
    if matrix.repeats is not None and matrix.repeats < 1:
        problems.append(f"repeats must be >= 1, got {matrix.repeats}")
    elif matrix.repeats is None and not (matrix.time_budget_s and matrix.time_budget_s > 0):
        problems.append("give repeats or a time budget (time_budget_s > 0)")
    if matrix.warmup < 1:
        problems.append(f"warmup must be >= 1 (the first call of every shape traces/compiles), got {matrix.warmup}")
    if "accuracy" in matrix.tasks and matrix.checkpoint and not Path(matrix.checkpoint).exists():
        problems.append(f"checkpoint {matrix.checkpoint} does not exist (train one with `python -m bench train`)")
    if problems:
        raise MatrixError("invalid benchmark matrix:\n  - " + "\n  - ".join(problems))


# ---------------------------------------------------------------- cells


@dataclass(frozen=True)
class Cell:
    task: str
    model: ModelEntry
    dataset: str
    engine: str
    device: str
    precision: str
    xla: bool
    batch_size: int
    pipeline: str = ""

    def key(self) -> tuple[str, ...]:
        from bench.harness.results import cell_key

        return cell_key(self.row_id())

    def row_id(self) -> dict[str, object]:
        return {"model": self.model.name, "dataset": self.dataset, "task": self.task, "engine": self.engine,
                "device": self.device, "precision": self.precision, "xla": self.xla,
                "batch_size": self.batch_size, "pipeline": self.pipeline}

    def label(self) -> str:
        parts = [self.task, self.model.name, self.dataset, self.engine, self.precision, f"bs={self.batch_size}"]
        if self.task == "train":
            parts += [f"xla={'on' if self.xla else 'off'}", self.pipeline]
        return " ".join(parts)


def cells(matrix: Matrix, device: str) -> list[Cell]:
    """Cells grouped by (dataset, model, precision) so a model is built once per group."""
    out: list[Cell] = []
    for dataset in matrix.datasets:
        for model in matrix.models:
            for precision in matrix.precisions:
                if model.runs("infer", matrix.tasks):
                    for engine in matrix.engines:
                        for bs in matrix.batch_sizes:
                            out.append(Cell("infer", model, dataset, engine, engine_device(engine, device),
                                            precision, engine == "xla", bs))
                if model.runs("train", matrix.tasks):
                    for xla in matrix.xla:
                        for bs in matrix.train_batch_sizes:
                            for pipeline in matrix.train_pipelines:
                                out.append(Cell("train", model, dataset, "keras_train_step", device, precision,
                                                xla, bs, pipeline))
            if model.runs("accuracy", matrix.tasks) and not matrix.checkpoint:  # briefly trained here, in float32
                for engine in matrix.accuracy_engines:
                    out.append(Cell("accuracy", model, dataset, engine, engine_device(engine, device), "float32",
                                    engine == "xla", matrix.accuracy_batch_size))
        if "accuracy" in matrix.tasks and matrix.checkpoint:  # the given checkpoint, on each dataset
            model = checkpoint_entry(matrix.checkpoint)
            for engine in matrix.accuracy_engines:
                out.append(Cell("accuracy", model, dataset, engine, engine_device(engine, device), "float32",
                                engine == "xla", matrix.accuracy_batch_size))
    return out


def engine_device(engine: str, device: str) -> str:
    """Where an engine really runs: onnxruntime's CPU provider on the CPU even on a GPU machine."""
    return {"onnxruntime": "cpu", "onnxruntime_cuda": "gpu"}.get(engine, device)


def checkpoint_entry(path: str) -> ModelEntry:
    """A checkpoint stands in for a model: named after its file, loaded instead of built."""
    return ModelEntry(Path(path).stem, {"checkpoint": str(path)})
