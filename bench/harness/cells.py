"""Measure one cell of the matrix into one row. Models, datasets and engines are kept while
consecutive cells share them (cells come grouped by dataset, model and precision)."""
from __future__ import annotations

import gc
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

import zoo
from bench.harness.matrix import Cell, Matrix
from bench.measure import accuracy, memory
from bench.measure.engines import ENGINES, Engine, tf_device_name
from bench.measure.timing import time_calls
from bench.plumbing.precision import dtype_policy
from bench.measure.train_step import batch_source, compile_for_training, compiled_train_step, measure_training

# A training step costs about 3 forward passes (forward, gradient w.r.t. activations and w.r.t. weights).
TRAIN_FLOPS_FACTOR = 3.0


class CellRunner:
    def __init__(self, matrix: Matrix, peaks: dict[str, float], workdir: Path, log=sys.stderr,
                 strategy=None, strategy_name: str = "default"):
        self.matrix = matrix
        # tf.distribute strategy for training cells (bench.distribute.strategy.make_strategy); None: one device
        self.strategy, self.strategy_name = strategy, strategy_name
        self.peaks = peaks
        self.workdir = workdir
        self.log = log
        self._datasets: dict[str, Any] = {}
        self._group: tuple | None = None
        self._model = None
        self._model_info: dict[str, Any] = {}
        self._engines: dict[str, Engine] = {}
        self._trained: dict[tuple, Any] = {}
        self._flops: dict[tuple, float | None] = {}

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

    def build(self, cell: Cell):
        ds = self.dataset(cell.dataset)
        return zoo.build(cell.model.name, input_shape=self.input_shape(cell), num_classes=ds.num_classes,
                         **cell.model.options)

    def model_for(self, cell: Cell):
        """The inference model of the cell's group, built once under the cell's precision."""
        group = (cell.dataset, cell.model, cell.precision)
        if group != self._group:
            self.release()
            with dtype_policy(cell.precision):
                self._model = self.build(cell)
            self._model_info = self.model_info(cell, self._model)
            self._group = group
        return self._model

    def model_info(self, cell: Cell, model) -> dict[str, Any]:
        key = (cell.dataset, cell.model, cell.precision)
        if key not in self._flops:  # profiling the graph takes seconds: once per model
            self._flops[key] = flops_of(model)
        return {"params": int(model.count_params()), "flops_per_image": self._flops[key]}

    def release(self) -> None:
        import keras

        self._model, self._engines, self._group, self._model_info = None, {}, None, {}
        keras.backend.clear_session()
        gc.collect()

    def engine(self, name: str, device: str) -> Engine:
        """One engine per model group: SavedModel export and ONNX conversion happen once per model."""
        if name not in self._engines:
            self._engines[name] = ENGINES[name](device, self.workdir)
        return self._engines[name]

    # ------------------------------------------------------------ cells

    def run(self, cell: Cell) -> dict[str, Any]:
        """One row; a cell that fails becomes a failed row and the run goes on."""
        row: dict[str, Any] = {**cell.row_id(), "status": "ok", "reason": "", "repeats": 0, "warmup": 0}
        started = time.perf_counter()
        memory.reset_gpu_peak(cell.device)
        try:
            row["input_shape"] = "x".join(map(str, self.input_shape(cell)))
            with memory.PeakRSS() as rss:
                if cell.task != "train" and cell.engine in ENGINES:
                    available, why = ENGINES[cell.engine].availability(cell.device, cell.precision)
                    if not available:
                        row.update(status="skipped", reason=why)
                        return row
                import tensorflow as tf

                with tf.device(tf_device_name(cell.device)):  # training and any op outside the engines
                    row.update(getattr(self, f"_{cell.task}")(cell))
            row["peak_memory_mb"] = rss.peak_mb
            row["gpu_peak_memory_mb"] = memory.gpu_peak_mb(cell.device)
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
        model = self.model_for(cell)
        engine = self.engine(cell.engine, cell.device)
        batch = np.random.default_rng(0).random((cell.batch_size, *self.input_shape(cell)), dtype=np.float32)
        engine.prepare(model, batch.shape)
        traces: list[int | None] = []
        timing = time_calls(engine, batch, on_warmed_up=lambda: traces.append(engine.tracing_count()),
                            **self._timing_kwargs())
        traces.append(engine.tracing_count())
        row = {**timing.summary(cell.batch_size), "repeats": timing.repeats, "warmup": timing.warmup,
               "conversion_s": engine.conversion_s, **self._model_info}
        row.update(self._efficiency(row["flops_per_image"], row["images_per_sec"], engine.peak_family))
        if traces[0] is not None and traces[1] != traces[0]:
            row.update(status="failed", reason=f"retraced {traces[1] - traces[0]}x inside the timed loop; "
                                               f"the input signature is not fixed")
        return row

    def _train(self, cell: Cell) -> dict[str, Any]:
        m = self.matrix
        self.release()  # a fresh model per cell: compile options and optimizer state differ
        if self.strategy_name != "default":
            return self._train_distributed(cell)
        with dtype_policy(cell.precision):
            model = self.build(cell)
            compile_for_training(model, jit_compile=cell.xla)
            step = compiled_train_step(model, cell.batch_size, self.input_shape(cell), jit_compile=cell.xla)
            next_batch = batch_source(cell.pipeline, dataset=self.dataset(cell.dataset), batch_size=cell.batch_size,
                                      input_shape=self.input_shape(cell))
            timing, retraces = measure_training(step, next_batch, warmup_steps=m.train_warmup_steps,
                                                steps=m.train_steps, time_budget_s=m.train_time_budget_s,
                                                min_steps=m.train_min_steps)
        info = self.model_info(cell, model)
        row = {**timing.summary(cell.batch_size), "repeats": timing.repeats, "warmup": timing.warmup, **info,
               "strategy": "default", "replicas": 1, "global_batch": cell.batch_size}
        flops = info["flops_per_image"] * TRAIN_FLOPS_FACTOR if info["flops_per_image"] else None
        row.update(self._efficiency(flops, row["images_per_sec"], "xla" if cell.xla else "tf"))
        if retraces:
            row.update(status="failed", reason=f"train step retraced {retraces}x inside the timed steps")
        return row

    def _train_distributed(self, cell: Cell) -> dict[str, Any]:
        """Training throughput under the strategy: the cell's batch size per replica, the global batch
        split across replicas, gradients all-reduced. A fixed step count (train_steps, else min_steps):
        under multiworker every worker must run exactly as many collective steps."""
        import tensorflow as tf

        from bench.distribute.step import distributed_train_step

        m, strategy = self.matrix, self.strategy
        replicas = strategy.num_replicas_in_sync
        global_batch = cell.batch_size * replicas
        shape = self.input_shape(cell)
        with dtype_policy(cell.precision):
            with strategy.scope():
                model = self.build(cell)
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
        info = self.model_info(cell, model)
        row = {**timing.summary(global_batch), "repeats": timing.repeats, "warmup": timing.warmup, **info,
               "strategy": self.strategy_name, "replicas": replicas, "global_batch": global_batch}
        flops = info["flops_per_image"] * TRAIN_FLOPS_FACTOR if info["flops_per_image"] else None
        row.update(self._efficiency(flops, row["images_per_sec"], "xla" if cell.xla else "tf"))
        return row

    def _accuracy(self, cell: Cell) -> dict[str, Any]:
        m = self.matrix
        ds = self.dataset(cell.dataset)
        model, checkpoint = self._trained_model(cell)
        engine = ENGINES[cell.engine](cell.device, self.workdir)
        h, w, c = (int(d) for d in model.inputs[0].shape[1:])  # a checkpoint brings its own input size
        engine.prepare(model, (None, h, w, c))
        batches = ds.pipeline("test", cell.batch_size, image_size=(h, w), channels=c, limit=m.accuracy_limit)
        t0 = time.perf_counter_ns()
        scores = accuracy.evaluate(engine, batches, ds.num_classes)
        seconds = (time.perf_counter_ns() - t0) / 1e9
        return {"top1": scores["top1"], "top5": scores["top5"], "examples": scores["examples"], "input_shape": f"{h}x{w}x{c}",
                "repeats": scores["batches"],
                "images_per_sec": scores["examples"] / seconds, "checkpoint": checkpoint,
                **self.model_info(cell, model)}

    def _trained_model(self, cell: Cell):
        """The checkpoint given, or the model trained briefly here, shared by the TF and ONNX cells."""
        key = (cell.dataset, cell.model)
        if key not in self._trained:
            self.release()
            self._trained.clear()
            path = cell.model.options.get("checkpoint")
            if path:
                self._trained[key] = (zoo.load_model(path), str(path))
            else:
                model = self.build(cell)
                steps = self.matrix.accuracy_fit_steps
                accuracy.fit_briefly(model, self.dataset(cell.dataset), input_shape=self.input_shape(cell), steps=steps)
                self._trained[key] = (model, f"trained here for {steps} steps")
        return self._trained[key]

    def _efficiency(self, flops_per_image: float | None, images_per_sec: float, family: str) -> dict[str, Any]:
        if not flops_per_image:
            return {}
        achieved = flops_per_image * images_per_sec
        peak = self.peaks.get(family)
        return {"achieved_flops_per_sec": achieved, "peak_flops_per_sec": peak,
                "peak_fraction": achieved / peak if peak else None}


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
