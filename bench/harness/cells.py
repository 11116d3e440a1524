"""Measure one cell of the matrix into one row.

Cells come grouped by (dataset, model). For each group the runner builds (or loads) the float32
model once, makes the files the artifact engines need with export's own converters (one artifact
per model, every format from the same conversion), and computes the float32 model's outputs on
real test images once; then each engine, at the precision it computes in, is checked against them
with export's rules before it is timed (bench.measure.verify). A cell whose check fails, whose
format could not be made, or whose precision this machine cannot compute becomes a row with a
status and the measured reason, never a number.
"""
from __future__ import annotations

import gc
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import zoo
from bench.harness.matrix import Cell, Matrix, ModelEntry
from bench.measure import accuracy, memory
from bench.measure.engines import ENGINES, Engine, tf_device_name
from bench.measure.roofline import MIXED, roof_key
from bench.measure.timing import time_calls
from bench.measure.verify import Verdict, Verifier
from bench.plumbing.precision import dtype_policy

# A training step costs about 3 forward passes (forward, gradient w.r.t. activations and w.r.t. weights).
TRAIN_FLOPS_FACTOR = 3.0


def tf_threads() -> int:
    """The intra-op threads TensorFlow runs with in this process (its default: every core)."""
    import tensorflow as tf

    return tf.config.threading.get_intra_op_parallelism_threads() or available_cores()


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def roof_for(engine: str, precision: str, threads: int) -> str:
    """The key of the roof a row of this engine, precision and thread count is measured against."""
    cls = ENGINES[engine]
    return roof_key(cls.peak_family, MIXED.get(precision, precision) if not cls.artifact else precision, threads)


@dataclass
class Artifact:
    """The files export made for one model (or an artifact directory given as a model)."""

    root: Path
    files: dict[str, str]                     # format -> path inside root
    output_names: list[str]
    seconds: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)        # format -> why it could not be made
    verified: dict[str, dict[str, str]] | None = None            # from a manifest: format -> {precision: rule}
    unavailable: dict[str, dict[str, str]] = field(default_factory=dict)

    def path(self, fmt: str) -> Path:
        return self.root / self.files[fmt]

    @classmethod
    def from_manifest(cls, root: Path) -> "Artifact":
        manifest = json.loads((root / "manifest.json").read_text())
        if manifest.get("status") != "passed":
            raise ValueError(f"{root} is not a verified artifact (status {manifest.get('status')!r}); export it again")
        formats = manifest.get("formats", {})
        return cls(root=root, files={f: e["file"] for f, e in formats.items()},
                   output_names=[o["name"] for o in manifest["outputs"]],
                   seconds=manifest.get("conversion_seconds", {}),
                   verified={f: e.get("precisions", {"float32": "parity"}) for f, e in formats.items()},
                   unavailable={f: e.get("unavailable", {}) for f, e in formats.items()})


@dataclass
class Group:
    """Everything the cells of one (dataset, model) share."""

    entry: ModelEntry
    dataset: str
    model: Any = None                      # float32 keras.Model (None for an artifact directory)
    input_shape: tuple[int, int, int] = (0, 0, 0)
    num_classes: int = 0
    trained: bool = False
    info: dict[str, Any] = field(default_factory=dict)     # params, flops_per_image
    data: Any = None                       # export.job.ExportData at the model's input size
    verifier: Verifier | None = None
    artifact: Artifact | None = None
    variants: dict[str, Any] = field(default_factory=dict)  # Keras dtype policy -> model with the same weights
    engines: dict[tuple, Engine] = field(default_factory=dict)
    verdicts: dict[tuple, Verdict] = field(default_factory=dict)


class CellRunner:
    def __init__(self, matrix: Matrix, peaks: dict[str, float], workdir: Path, log=sys.stderr,
                 strategy=None, strategy_name: str = "default", needed_formats: dict | None = None):
        self.matrix = matrix
        # tf.distribute strategy for training cells (bench.distribute.strategy.make_strategy); None: one device
        self.strategy, self.strategy_name = strategy, strategy_name
        self.peaks = peaks
        self.workdir = workdir
        self.log = log
        # (dataset, model) -> the artifact formats its cells need (all made in one conversion)
        self.needed_formats = needed_formats or {}
        self._datasets: dict[str, Any] = {}
        self._group: Group | None = None
        self._trained: dict[tuple, Any] = {}

    # ------------------------------------------------------------ shared objects

    def dataset(self, name: str):
        if name not in self._datasets:
            from bench.data import load_dataset

            self._datasets[name] = load_dataset(name)
        return self._datasets[name]

    def input_shape(self, cell: Cell) -> tuple[int, int, int]:
        h, w, c = self.dataset(cell.dataset).image_shape
        size = cell.model.image_size
        return (size or h, size or w, cell.model.channels or c)

    def build(self, cell: Cell, policy: str = "float32"):
        ds = self.dataset(cell.dataset)
        with dtype_policy(policy):
            return zoo.build(cell.model.name, input_shape=self.input_shape(cell),
                             num_classes=cell.model.classes or ds.num_classes, **cell.model.options)

    def release(self) -> None:
        import keras

        self._group = None
        keras.backend.clear_session()
        gc.collect()

    def group(self, cell: Cell) -> Group:
        """The cell's (dataset, model) group, made on its first cell."""
        if self._group is None or (self._group.dataset, self._group.entry) != (cell.dataset, cell.model):
            self.release()
            self._group = self._make_group(cell)
        return self._group

    def _make_group(self, cell: Cell, with_artifact: bool = True) -> Group:
        from export.convert import output_kind
        from export.job import ExportData, RecipeInfo

        entry = cell.model
        group = Group(entry, cell.dataset)
        if entry.source == "artifact":
            group.artifact = Artifact.from_manifest(Path(entry.name))
            manifest = json.loads((Path(entry.name) / "manifest.json").read_text())
            h, w, c = manifest["input"]["shape"][1:]
            group.input_shape, group.num_classes = (h, w, c), len(manifest["class_names"])
            group.info = {"architecture": manifest.get("architecture", "")}
            group.trained = True
            return group
        recipe = RecipeInfo()
        if entry.source == "checkpoint" and not Path(entry.name).is_file():
            raise CellUnusable("skipped", f"checkpoint {entry.name} does not exist; produce it with: {entry.produce}")
        if entry.source == "checkpoint":
            from zoo.inference import as_float32, inference_outputs

            group.model = inference_outputs(as_float32(zoo.load_model(entry.name)))
            recipe = RecipeInfo.beside(Path(entry.name))
            group.trained = True
        else:
            group.model = self.build(cell)
        group.input_shape = tuple(int(d) for d in group.model.inputs[0].shape[1:])
        group.num_classes = int(group.model.outputs[0].shape[-1])
        group.info = {"architecture": group.model.name, "params": int(group.model.count_params()),
                      "flops_per_image": flops_of(group.model)}
        # a built model with its own classes (an ImageNet backbone given CIFAR-10 photos): the photos
        # calibrate and check it, their labels cannot judge it
        group.data = ExportData(cell.dataset, group.input_shape, group.num_classes, recipe.resize_method or "resize",
                                recipe.train_classes, foreign_labels=entry.source != "checkpoint")
        unjudged = "untrained weights"
        if not group.data.labels_match:
            group.trained = False
            unjudged = f"{group.num_classes} classes of its own, not {cell.dataset}'s"
        batches = list(group.data.batches("test", 64, self.matrix.verify_images))
        group.verifier = Verifier(group.model, batches, output_kind(group.model), group.trained, unjudged)
        formats = self.needed_formats.get((cell.dataset, entry), set())
        if formats and with_artifact:
            group.artifact = self._make_artifact(group, sorted(formats), recipe)
        return group

    def _make_artifact(self, group: Group, formats: list[str], recipe) -> Artifact:
        """The formats this model's cells run, made by export's converters in a child process (a
        converter's memory cannot take the run down); a format that cannot be made is recorded."""
        from export.convert import output_kind, output_names
        from export.formats import FORMATS
        from export.isolated import convert_isolated
        from export.pipeline import ordered

        root = self.workdir / f"artifact-{group.entry.row_name}-{abs(hash((group.dataset, group.entry))):x}"
        print(f"converting {group.entry.row_name} to {', '.join(ordered(formats))}", file=self.log, flush=True)
        seconds, _, failed = convert_isolated(group.model, formats, root, dataset=group.data.source,
                                              resize_method=group.data.resize_method,
                                              train_classes=tuple(group.data.subset) if group.data.subset else None,
                                              calibration_images=self.matrix.calibration_images,
                                              foreign_labels=not group.data.labels_match)
        for fmt, why in failed.items():
            print(f"  {fmt}: {why}", file=self.log, flush=True)
        return Artifact(root=root, files={f: FORMATS[f].file for f in formats},
                        output_names=output_names(group.model, output_kind(group.model)), seconds=seconds, failed=failed)

    def variant(self, group: Group, precision: str):
        """The group's model under a Keras dtype policy, with the float32 model's weights."""
        if precision not in group.variants:
            from zoo.inference import with_policy

            group.variants[precision] = with_policy(group.model, precision)
        return group.variants[precision]

    def engine(self, group: Group, cell: Cell) -> Engine:
        key = (cell.engine, cell.precision, cell.threads)
        if key not in group.engines:
            group.engines[key] = ENGINES[cell.engine](cell.device, self.workdir, precision=cell.precision,
                                                      threads=cell.threads)
        return group.engines[key]

    def prepared(self, group: Group, cell: Cell, batch_shape) -> Engine:
        """The cell's engine prepared for `batch_shape` on the model (TF engines) or the file."""
        engine = self.engine(group, cell)
        if ENGINES[cell.engine].artifact:
            fmt = ENGINES[cell.engine].formats[cell.precision]
            if fmt in group.artifact.failed:
                raise CellUnusable("failed", f"{fmt} could not be made: {group.artifact.failed[fmt]}")
            if fmt not in group.artifact.files:
                raise CellUnusable("skipped", f"the artifact has no {fmt} model; export it with --formats ...,{fmt}")
            from export.runtimes import PrecisionUnavailable

            try:
                engine.prepare(group.artifact, batch_shape)
            except PrecisionUnavailable as exc:
                raise CellUnusable("skipped", str(exc)) from None
        else:
            engine.prepare(self.variant(group, cell.precision), batch_shape)
        return engine

    def verdict(self, group: Group, cell: Cell, engine: Engine, batch_size: int) -> Verdict:
        """The engine's check at this precision (once per engine, precision and thread count)."""
        key = (cell.engine, cell.precision, cell.threads)
        if key not in group.verdicts:
            if group.verifier is None:  # an artifact directory: export verified it when it made it
                group.verdicts[key] = _manifest_verdict(group.artifact, ENGINES[cell.engine].formats[cell.precision],
                                                        cell.precision)
            else:
                fixed = None if ENGINES[cell.engine].artifact else batch_size  # TF engines have one traced shape
                group.verdicts[key] = group.verifier.judge(group.verifier.outputs(engine, fixed), cell.precision)
        return group.verdicts[key]

    # ------------------------------------------------------------ cells

    def run(self, cell: Cell) -> dict[str, Any]:
        """One row; a cell that fails becomes a failed row and the run goes on."""
        row: dict[str, Any] = {**cell.row_id(), "status": "ok", "reason": "", "repeats": 0, "warmup": 0}
        started = time.perf_counter()
        memory.reset_gpu_peak(cell.device)
        try:
            if cell.task != "train" and cell.precision not in ENGINES[cell.engine].precisions:
                row.update(status="skipped", reason=f"{cell.engine} computes in "
                           f"{', '.join(ENGINES[cell.engine].precisions)}; not {cell.precision}")
                return row
            if cell.task != "train":
                available, why = ENGINES[cell.engine].availability(cell.device, cell.precision)
                if not available:
                    row.update(status="skipped", reason=why)
                    return row
            with memory.PeakRSS() as rss:
                import tensorflow as tf

                with tf.device(tf_device_name(cell.device)):  # training and any op outside the engines
                    row.update(getattr(self, f"_{cell.task}")(cell))
            row["peak_memory_mb"] = rss.peak_mb
            row["gpu_peak_memory_mb"] = memory.gpu_peak_mb(cell.device)
        except CellUnusable as exc:  # what ran and how it was checked stays; no measured number does
            row.update({k: v for k, v in exc.row.items() if k not in MEASURED})
            row.update(status=exc.status, reason=exc.reason)
        except (MemoryError, *_oom_errors()) as exc:
            row.update(status="failed", reason=f"out of memory at batch size {cell.batch_size} "
                                               f"({type(exc).__name__}); try smaller batch sizes")
        except Exception as exc:  # one broken cell must not end the run
            traceback.print_exc(file=self.log)
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            row.update(status="failed", reason=f"{type(exc).__name__}: {first}")
        finally:
            row["duration_s"] = round(time.perf_counter() - started, 3)
        return row

    def _timing_kwargs(self) -> dict[str, Any]:
        m = self.matrix
        return {"warmup": m.warmup, "repeats": m.repeats, "time_budget_s": m.time_budget_s, "min_repeats": m.min_repeats}

    def _infer(self, cell: Cell) -> dict[str, Any]:
        group = self.group(cell)
        shape = (cell.batch_size, *group.input_shape)
        engine = self.prepared(group, cell, shape)
        verdict = self.verdict(group, cell, engine, cell.batch_size)
        info = self._identity(group, cell, engine, verdict)
        if not verdict.ok:
            raise CellUnusable("failed", f"{verdict.check}", info)
        engine = self.prepared(group, cell, shape)  # the verification may have resized it
        batch = np.random.default_rng(0).random(shape, dtype=np.float32)
        traces: list[int | None] = []
        timing = time_calls(engine, batch, on_warmed_up=lambda: traces.append(engine.tracing_count()),
                            **self._timing_kwargs())
        traces.append(engine.tracing_count())
        row = {**info, **timing.summary(cell.batch_size), "repeats": timing.repeats, "warmup": timing.warmup}
        row.update(self._efficiency(row.get("flops_per_image"), row["images_per_sec"],
                                    roof_for(cell.engine, cell.precision, row["threads_used"])))
        if traces[0] is not None and traces[1] != traces[0]:
            raise CellUnusable("failed", f"retraced {traces[1] - traces[0]}x inside the timed loop; "
                                         f"the input signature is not fixed", row)
        return row

    def _identity(self, group: Group, cell: Cell, engine: Engine, verdict: Verdict) -> dict[str, Any]:
        """What every inference or accuracy row says about what ran and how it was checked."""
        artifact = ENGINES[cell.engine].artifact
        return {"input_shape": "x".join(map(str, group.input_shape)), **group.info,
                "threads_used": engine.threads if artifact else tf_threads(),
                "conversion_s": engine.conversion_s, "verified": verdict.verified, "check": verdict.check,
                "artifact_format": ENGINES[cell.engine].formats[cell.precision] if artifact else "",
                "executed_precision": engine.executed}

    def _train(self, cell: Cell) -> dict[str, Any]:
        from bench.measure.train_step import batch_source, compile_for_training, compiled_train_step, measure_training

        m = self.matrix
        self.release()  # a fresh model per cell: compile options and optimizer state differ
        if self.strategy_name != "default":
            return self._train_distributed(cell)
        with dtype_policy(cell.precision):
            model = self.build(cell, cell.precision)
            compile_for_training(model, jit_compile=cell.xla)
            step = compiled_train_step(model, cell.batch_size, self.input_shape(cell), jit_compile=cell.xla)
            next_batch = batch_source(cell.pipeline, dataset=self.dataset(cell.dataset), batch_size=cell.batch_size,
                                      input_shape=self.input_shape(cell))
            timing, retraces = measure_training(step, next_batch, warmup_steps=m.train_warmup_steps,
                                                steps=m.train_steps, time_budget_s=m.train_time_budget_s,
                                                min_steps=m.train_min_steps)
        return self._train_row(cell, model, timing, "default", 1, cell.batch_size, retraces)

    def _train_row(self, cell: Cell, model, timing, strategy: str, replicas: int, global_batch: int,
                   retraces: int = 0) -> dict[str, Any]:
        info = {"architecture": model.name, "params": int(model.count_params()), "flops_per_image": flops_of(model)}
        row = {**timing.summary(global_batch), "repeats": timing.repeats, "warmup": timing.warmup, **info,
               "input_shape": "x".join(map(str, self.input_shape(cell))), "threads_used": tf_threads(),
               "strategy": strategy, "replicas": replicas, "global_batch": global_batch}
        flops = info["flops_per_image"] * TRAIN_FLOPS_FACTOR if info["flops_per_image"] else None
        row.update(self._efficiency(flops, row["images_per_sec"],
                                    roof_for("xla" if cell.xla else "tf_function", cell.precision, row["threads_used"])))
        if retraces:
            raise CellUnusable("failed", f"train step retraced {retraces}x inside the timed steps", row)
        return row

    def _train_distributed(self, cell: Cell) -> dict[str, Any]:
        """Training throughput under the strategy: the cell's batch size per replica, the global batch
        split across replicas, gradients all-reduced. A fixed step count (train_steps, else min_steps):
        under multiworker every worker must run exactly as many collective steps."""
        import tensorflow as tf

        from bench.distribute.step import distributed_train_step
        from bench.measure.train_step import batch_source, compile_for_training

        m, strategy = self.matrix, self.strategy
        replicas = strategy.num_replicas_in_sync
        global_batch = cell.batch_size * replicas
        shape = self.input_shape(cell)
        with dtype_policy(cell.precision):
            with strategy.scope():
                model = self.build(cell, cell.precision)
                compile_for_training(model, jit_compile=cell.xla)
            if cell.pipeline == "synthetic":
                ds = tf.data.Dataset.from_tensors(batch_source("synthetic", dataset=self.dataset(cell.dataset),
                                                               batch_size=global_batch, input_shape=shape)())
            else:
                ds = self.dataset(cell.dataset).pipeline("train", global_batch, image_size=shape[:2], channels=shape[2],
                                                         shuffle=True, seed=0, drop_remainder=True)
            step = distributed_train_step(strategy, model, ds)
            timing = time_calls(lambda _: step(), None, warmup=max(m.train_warmup_steps, 1),
                                repeats=m.train_steps or m.train_min_steps)
        return self._train_row(cell, model, timing, self.strategy_name, replicas, global_batch)

    def _accuracy(self, cell: Cell) -> dict[str, Any]:
        """Top-1/top-5 on the test split through the engine at the cell's precision, after its check."""
        group, checkpoint = self._trained_group(cell)
        batch = cell.batch_size
        engine = self.prepared(group, cell, (batch, *group.input_shape))
        verdict = self.verdict(group, cell, engine, batch)
        info = self._identity(group, cell, engine, verdict)
        if not verdict.ok:
            raise CellUnusable("failed", verdict.check, info)
        engine = self.prepared(group, cell, (batch, *group.input_shape))
        fixed = not ENGINES[cell.engine].artifact
        batches = group.data.batches("test", batch, self.matrix.accuracy_limit)
        t0 = time.perf_counter_ns()
        scores = accuracy.evaluate(_padded(engine, batch) if fixed else engine, batches, group.num_classes)
        seconds = (time.perf_counter_ns() - t0) / 1e9
        return {**info, "top1": scores["top1"], "top5": scores["top5"], "examples": scores["examples"],
                "repeats": scores["batches"], "images_per_sec": scores["examples"] / seconds, "checkpoint": checkpoint}

    def _trained_group(self, cell: Cell) -> tuple[Group, str]:
        """A checkpoint's group as it is; a zoo model trained briefly here first (its row says so),
        then checked and converted with its trained weights."""
        if cell.model.source != "zoo":
            return self.group(cell), cell.model.name
        key = (cell.dataset, cell.model)
        if key not in self._trained or self._group is None or self._group.entry != cell.model:
            from export.job import RecipeInfo

            self.release()
            group = self._make_group(cell, with_artifact=False)
            steps = self.matrix.accuracy_fit_steps
            accuracy.fit_briefly(group.model, self.dataset(cell.dataset), input_shape=group.input_shape, steps=steps)
            group.trained = True
            group.verifier = Verifier(group.model, group.verifier.batches, group.verifier.kind, True)
            formats = self.needed_formats.get(key, set())
            if formats:
                group.artifact = self._make_artifact(group, sorted(formats), RecipeInfo())
            self._group = group
            self._trained = {key: f"trained here for {steps} steps"}
        return self._group, self._trained[key]

    def _efficiency(self, flops_per_image: float | None, images_per_sec: float, roof: str) -> dict[str, Any]:
        if not flops_per_image:
            return {}
        achieved = flops_per_image * images_per_sec
        peak = self.peaks.get(roof)
        return {"achieved_flops_per_sec": achieved, "peak_flops_per_sec": peak,
                "peak_fraction": achieved / peak if peak else None}


class CellUnusable(Exception):
    """The cell cannot give a number: its row gets this status and reason (and what it measured)."""

    def __init__(self, status: str, reason: str, row: dict | None = None):
        super().__init__(reason)
        self.status, self.reason, self.row = status, reason, row or {}


def _manifest_verdict(artifact: Artifact, fmt: str, precision: str) -> Verdict:
    verified = (artifact.verified or {}).get(fmt)
    if verified is None:
        return Verdict("failed", "none", f"the artifact has no {fmt} model")
    if precision not in verified:
        why = artifact.unavailable.get(fmt, {}).get(precision, "the export did not verify it")
        return Verdict("failed", "none", f"{fmt} was not verified in {precision}: {why}")
    return Verdict("ok", verified[precision], f"{verified[precision]} verified by export (manifest.json)")


def _padded(engine: Engine, batch_size: int):
    """A fixed-shape engine called on a last, smaller batch: padded, and the padding dropped."""
    def run(x):
        n = len(x)
        if n == batch_size:
            return engine(x)
        return engine(np.concatenate([x, np.repeat(x[:1], batch_size - n, axis=0)]))[:n]
    return run


def _oom_errors() -> tuple[type[BaseException], ...]:
    import tensorflow as tf

    return (tf.errors.ResourceExhaustedError,)


def flops_of(model) -> float | None:
    """FLOPs per image from the zoo's graph profiler (a multiply-add counts 2); None if unavailable."""
    try:
        return float(zoo.flops_per_image(model))
    except Exception as exc:  # e.g. a layer the profiler cannot freeze: efficiency columns stay empty
        print(f"warning: FLOPs not counted for {model.name}: {exc}", file=sys.stderr)
        return None


def needed_formats(cells: list[Cell]) -> dict[tuple, set[str]]:
    """(dataset, model) -> the artifact formats its inference and accuracy cells run."""
    out: dict[tuple, set[str]] = {}
    for cell in cells:
        cls = ENGINES.get(cell.engine)
        if cell.task in ("infer", "accuracy") and cls is not None and cls.artifact and cell.model.source != "artifact":
            out.setdefault((cell.dataset, cell.model), set()).add(cls.formats[cell.precision])
    from export.formats import FORMATS

    for formats in out.values():  # a file is converted from its source (openvino_int8 from openvino)
        formats |= {FORMATS[f].made_from for f in list(formats) if FORMATS[f].made_from}
    return out


def roofs_needed(cells: list[Cell], process_threads: int) -> list[tuple[str, str, int]]:
    """(family, precision, threads) of the roofs the rows of `cells` are measured against."""
    roofs = set()
    for cell in cells:
        if cell.task == "train":
            family, precision, threads = ("xla" if cell.xla else "tf"), MIXED.get(cell.precision, cell.precision), process_threads
        else:
            cls = ENGINES[cell.engine]
            threads = (cell.threads or available_cores()) if cls.artifact else process_threads
            family = cls.peak_family
            precision = cell.precision if cls.artifact else MIXED.get(cell.precision, cell.precision)
        roofs.add((family, precision, threads))
    return sorted(roofs)


# Columns of a measurement: a row that could not be checked or timed keeps none of them.
MEASURED = ("images_per_sec", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "latency_ms_mean",
            "latency_ms_std", "latency_ms_min", "top1", "top5", "achieved_flops_per_sec", "peak_fraction")
