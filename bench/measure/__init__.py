"""Measurement building blocks: the timer, the systems under test, and what is recorded around them.

- `timing`: warm-up then timed calls (perf_counter_ns), percentiles; knows nothing of engines.
- `engines`: systems under test (keras_predict, tf_function, xla, savedmodel, onnxruntime[_cuda]),
  kept apart from the timer as in MLPerf LoadGen.
- `train_step`: a compiled train step fed synthetic or real-pipeline batches.
- `accuracy` (top-1/top-5 through any engine), `roofline` (peak matmul rate), `memory` (peak RSS /
  GPU memory), `overhead` (harness vs bare loop).
The harness (bench.harness) composes these into rows; nothing here imports it.
"""
