"""Measurement: the timer, the systems under test, and what is recorded around them.

- `timing`: warm-up then timed calls (perf_counter_ns), percentiles; knows nothing of engines.
- `engines`: systems under test (keras_predict, tf_function, xla, savedmodel, onnxruntime[_cuda]),
  kept apart from the timer as in MLPerf LoadGen.
- `train_step`: a compiled train step fed synthetic or real-pipeline batches.
- `accuracy`, `roofline` (peak matmul rate), `memory` (peak RSS / GPU memory), `environment`,
  `precision` (dtype policy per cell), `overhead` (harness vs bare loop), `cells` (one cell -> one row).
"""
