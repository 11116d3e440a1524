"""Scale training out with tf.distribute: one small layer the trainer and the benchmarks call.

- `strategy`: build `default | mirrored | multiworker` by name, logical CPU devices,
  TF_CONFIG / SLURM cluster resolvers, chief and worker topology, batch and LR scaling,
  per-worker dataset sharding, chief-only output paths.
- `backup`: `keras.callbacks.BackupAndRestore` that only the chief writes, atomically.
- `launch`: start N local workers on 127.0.0.1 (`python -m bench.distribute.launch`).
- `worker`: a minimal self-contained MNIST training entry used to prove the above.
- `scaling`: scaling-efficiency measurement into `results/distribute/`.
"""
