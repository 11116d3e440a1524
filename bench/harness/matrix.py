"""Benchmark matrices: named profiles (bench/harness/profiles/NAME.toml) or a user's TOML file, command-line
overrides, validation of every name before anything runs, and expansion into cells."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.measure.engines import ENGINES, TF_ENGINES
from bench.measure.train_step import PIPELINES
from bench.plumbing.precision import KERAS_POLICIES, PRECISIONS

PROFILES_DIR = Path(__file__).parent / "profiles"
TASKS = ("infer", "train", "accuracy")
DEVICES = ("cpu", "gpu", "auto")


class MatrixError(ValueError):
    """A matrix or option that cannot run; the message says what is wrong and what is valid."""


@dataclass(frozen=True)
class ModelEntry:
    """What a row measures. `name` is one of:
    - a name `zoo.build` resolves (a zoo name, or `package.module:function` such as
      `keras.applications:ResNet50`), built untrained with `options` for the dataset's classes
      (or `classes`) at the dataset's image size (or `image_size`);
    - a trained `.keras` file (its own input size and classes; verified by the accuracy rule);
    - an exported artifact directory (its manifest's formats, verified when it was exported).
    `threads` overrides the matrix's thread axis for this model; `tasks` limits its tasks."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    image_size: int | None = None
    channels: int | None = None
    tasks: tuple[str, ...] | None = None  # only these tasks for this model (default: the matrix's)
    classes: int | None = None  # output classes of a built model (default: the dataset's)
    threads: tuple[int, ...] | None = None  # thread counts for this model (default: the matrix's)
    label: str | None = None  # the row's model name (default: the zoo name or the file's name)
    dataset: str | None = None  # run on this dataset only (default: the matrix's; a checkpoint: its recipe's)
    produce: str | None = None  # how to make a missing checkpoint (its rows are skipped and say so)

    def __hash__(self) -> int:
        return hash((self.name, repr(sorted(self.options.items())), self.image_size, self.channels, self.classes))

    def runs(self, task: str, tasks: list[str]) -> bool:
        return task in tasks and (self.tasks is None or task in self.tasks)

    @property
    def source(self) -> str:
        """zoo | checkpoint | artifact"""
        if self.name.endswith((".keras", ".h5")):
            return "checkpoint"
        if (Path(self.name) / "manifest.json").is_file() or Path(self.name).is_dir():
            return "artifact"
        return "zoo"

    @property
    def row_name(self) -> str:
        if self.label:
            return self.label
        if self.source == "checkpoint":  # runs/NAME/model.keras is the run NAME
            path = Path(self.name)
            return path.parent.name if path.stem == "model" and path.parent.name else path.stem
        return Path(self.name).name if self.source == "artifact" else self.name


@dataclass
class Matrix:
    name: str = "custom"
    description: str = ""
    models: list[ModelEntry] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=lambda: ["infer"])
    # engine names; "engine:precision" runs that engine in that precision only (e.g. "keras_predict:float32")
    engines: list[str] = field(default_factory=lambda: ["keras_predict", "tf_function"])
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 32])
    # each engine runs the precisions it can compute in (bench.measure.engines); the rest are not cells
    precisions: list[str] = field(default_factory=lambda: ["float32"])
    # precisions named by the user (command line): a pair an engine cannot compute is then a skipped
    # row that says so; from a profile it is simply not a cell
    explicit_precisions: bool = False
    threads: list[int] = field(default_factory=lambda: [0])  # runtime threads; 0 = every core
    verify_images: int = 256  # real test images every engine is checked on before it is timed
    calibration_images: int = 256  # training images the int8 formats are calibrated on
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
    # verified exports of trained checkpoints whose measured costs stand in for their architectures
    # (bench.harness.evidence): tables with `artifact`, and optionally `architecture`, `produce`
    accuracy_evidence: list[dict[str, str]] = field(default_factory=list)
    # run-level measurements
    overhead_check: bool = True
    matmul_n: int = 1024


# TOML layout: top-level keys are Matrix fields, plus the tables below mapped onto prefixed fields.
_TABLES = {
    "train": {"batch_sizes": "train_batch_sizes", "pipelines": "train_pipelines",
              "warmup_steps": "train_warmup_steps", "steps": "train_steps",
              "time_budget_s": "train_time_budget_s", "min_steps": "train_min_steps"},
    "accuracy": {"checkpoint": "checkpoint", "engines": "accuracy_engines", "fit_steps": "accuracy_fit_steps",
                 "batch_size": "accuracy_batch_size", "limit": "accuracy_limit", "evidence": "accuracy_evidence"},
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
        keys = ("name", "options", "image_size", "channels", "tasks", "classes", "threads", "label", "dataset",
                "produce")
        unknown = set(item) - set(keys)
        if unknown:
            raise MatrixError(f"{source}: unknown model keys {sorted(unknown)}; valid: {', '.join(keys)}")
        tasks = tuple(item["tasks"]) if "tasks" in item else None
        threads = tuple(item["threads"]) if "threads" in item else None
        return ModelEntry(item["name"], dict(item.get("options", {})), item.get("image_size"), item.get("channels"),
                          tasks, item.get("classes"), threads, item.get("label"), item.get("dataset"),
                          item.get("produce"))
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
    zoo_models = [m.name for m in matrix.models if m.source == "zoo" and ":" not in m.name]
    if zoo_models:
        bad = [n for n in zoo_models if n not in zoo_names()]
        if bad:
            problems.append(f"unknown model {', '.join(map(repr, bad))}; valid: a zoo name ({', '.join(zoo_names())}), "
                            f"package.module:function (e.g. keras.applications:ResNet50), a .keras file or an "
                            f"exported artifact directory")
    for m in matrix.models:
        if ":" in m.name and m.source == "zoo" and (why := check_constructor(m.name)):
            problems.append(why)
        if m.source == "checkpoint" and not Path(m.name).is_file() and not m.produce:
            problems.append(f"checkpoint {m.name} does not exist (train one with `imgcls train`, e.g. make train)")
        if m.source == "artifact" and not (Path(m.name) / "manifest.json").is_file():
            problems.append(f"{m.name} is a folder but not an exported artifact (no manifest.json); "
                            f"make one with `imgcls export CHECKPOINT --out {m.name}`")
        bad_threads = [t for t in (m.threads or ()) if not isinstance(t, int) or t < 0]
        if bad_threads:
            problems.append(f"model {m.name}: threads must be integers >= 0 (0 = every core), got {bad_threads}")
        check(f"task of model {m.name}", m.tasks or (), TASKS)
        if m.image_size is not None and (not isinstance(m.image_size, int) or m.image_size < 1):
            problems.append(f"model {m.name}: image_size must be a positive integer, got {m.image_size!r}")
    folders = [d for d in matrix.datasets if Path(d).is_dir()]
    check("dataset", [d for d in matrix.datasets if d not in folders], known_datasets() + ["(or an image-folder path)"])
    check("task", matrix.tasks, TASKS)
    check("engine", [e.partition(":")[0] for e in matrix.engines], list(ENGINES))
    for name, only in engine_specs(matrix.engines):
        if name in ENGINES and only and only not in ENGINES[name].precisions:
            problems.append(f"engine {name} computes in {', '.join(ENGINES[name].precisions)}, not {only}")
    check("accuracy engine", matrix.accuracy_engines, list(ENGINES))
    for entry in matrix.accuracy_evidence:
        if not isinstance(entry, dict) or not isinstance(entry.get("artifact"), str) \
                or set(entry) - {"artifact", "architecture", "produce"}:
            problems.append(f"accuracy.evidence entries are tables with `artifact` (an export's directory) and "
                            f"optionally `architecture` and `produce`; got {entry!r}")
    check("precision", matrix.precisions, list(PRECISIONS))
    specs = [(e, only) for e, only in engine_specs(matrix.engines) if e in ENGINES]
    if "infer" in matrix.tasks and not matrix.explicit_precisions:
        for engine, only in specs:
            if not runs_in(engine, only, matrix.precisions):
                problems.append(f"engine {engine} computes in {only or ', '.join(ENGINES[engine].precisions)}, none "
                                f"of the precisions asked for ({', '.join(matrix.precisions)})")
    if any(not isinstance(t, int) or isinstance(t, bool) or t < 0 for t in matrix.threads):
        problems.append(f"threads must be integers >= 0 (0 = every core), got {matrix.threads}")
    if matrix.verify_images < 1:
        problems.append(f"verify_images must be >= 1 (every engine is checked before it is timed), got "
                        f"{matrix.verify_images}")
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
    threads: int = 0  # as asked (0 = every core); the row records the count the engine ran with

    def key(self) -> tuple[str, ...]:
        from bench.harness.results import cell_key

        return cell_key(self.row_id())

    def row_id(self) -> dict[str, object]:
        return {"model": self.model.row_name, "dataset": self.dataset, "task": self.task, "engine": self.engine,
                "device": self.device, "precision": self.precision, "xla": self.xla,
                "batch_size": self.batch_size, "pipeline": self.pipeline, "threads": self.threads}

    @property
    def tf_threads(self) -> bool:
        """TensorFlow's threads are the process's: a cell of another count runs in a child process."""
        return self.engine in TF_ENGINES or self.task == "train"

    def label(self) -> str:
        parts = [self.task, self.model.row_name, self.dataset, self.engine, self.precision, f"bs={self.batch_size}"]
        if self.threads:
            parts.append(f"threads={self.threads}")
        if self.task == "train":
            parts += [f"xla={'on' if self.xla else 'off'}", self.pipeline]
        return " ".join(parts)


def engine_specs(engines: list[str]) -> list[tuple[str, str | None]]:
    """"engine" or "engine:precision" -> (engine, the one precision or None)."""
    return [(e.partition(":")[0], e.partition(":")[2] or None) for e in engines]


def runs_in(engine: str, only: str | None, precisions: list[str], explicit: bool = False) -> list[str]:
    """The precisions of `precisions` this engine (limited to `only`) computes in; with `explicit`,
    all of them (those it cannot compute become skipped rows that say so)."""
    return [p for p in precisions if (explicit or p in ENGINES[engine].precisions) and (only is None or p == only)]


def datasets_of(model: ModelEntry, datasets: list[str]) -> list[str]:
    """A model's own dataset if it has one (a checkpoint: the one its recipe.json names), else the matrix's."""
    if model.dataset:
        return [model.dataset]
    if model.source == "checkpoint":
        from export.job import RecipeInfo

        recipe = RecipeInfo.beside(Path(model.name))
        if recipe.dataset:
            return [recipe.dataset]
    return list(datasets)


def cells(matrix: Matrix, device: str) -> list[Cell]:
    """Cells grouped by (model, dataset) so a model is built, converted and verified once. An engine
    runs only the precisions it computes in; artifact directories run only artifact engines."""
    out: list[Cell] = []
    for model in matrix.models:
        for dataset in datasets_of(model, matrix.datasets):
            threads = list(model.threads or matrix.threads)
            engines = [(e, only) for e, only in engine_specs(matrix.engines)
                       if model.source != "artifact" or ENGINES[e].artifact]
            if model.runs("infer", matrix.tasks):
                for engine, only in engines:
                    for precision in runs_in(engine, only, matrix.precisions, matrix.explicit_precisions):
                        for t in threads:
                            for bs in matrix.batch_sizes:
                                out.append(Cell("infer", model, dataset, engine, engine_device(engine, device),
                                                precision, engine == "xla", bs, threads=t))
            if model.runs("train", matrix.tasks) and model.source == "zoo":
                for precision in [p for p in matrix.precisions if p in KERAS_POLICIES]:
                    for xla in matrix.xla:
                        for bs in matrix.train_batch_sizes:
                            for pipeline in matrix.train_pipelines:
                                out.append(Cell("train", model, dataset, "keras_train_step", device, precision,
                                                xla, bs, pipeline))
            if model.runs("accuracy", matrix.tasks) and not matrix.checkpoint:
                out += _accuracy_cells(matrix, model, dataset, device)
    if "accuracy" in matrix.tasks and matrix.checkpoint:  # the given checkpoint, on its dataset
        entry = checkpoint_entry(matrix.checkpoint)
        for dataset in datasets_of(entry, matrix.datasets):
            out += _accuracy_cells(matrix, entry, dataset, device)
    return out


def _accuracy_cells(matrix: Matrix, model: ModelEntry, dataset: str, device: str) -> list[Cell]:
    """Top-1 of a trained model (a checkpoint, or a zoo model trained briefly here) through each
    accuracy engine in each precision it computes in: what each precision costs."""
    out = []
    for engine in matrix.accuracy_engines:
        if model.source == "artifact" and not ENGINES[engine].artifact:
            continue
        for precision in [p for p in matrix.precisions if p in ENGINES[engine].precisions]:
            out.append(Cell("accuracy", model, dataset, engine, engine_device(engine, device), precision,
                            engine == "xla", matrix.accuracy_batch_size))
    return out


def engine_device(engine: str, device: str) -> str:
    """Where an engine really runs: the CPU runtimes on the CPU even on a GPU machine."""
    if engine == "onnxruntime_cuda":
        return "gpu"
    return "cpu" if ENGINES[engine].artifact else device


def checkpoint_entry(path: str) -> ModelEntry:
    """A checkpoint given with --checkpoint stands in for a model: named after its run, loaded instead of built."""
    return ModelEntry(str(path))
