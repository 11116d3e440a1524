"""tf.distribute for training: strategies, chief-only backups, the distributed step, local workers.

- `strategy`: build `default | mirrored | multiworker` by name, logical CPU devices,
  TF_CONFIG / SLURM cluster resolvers, chief and worker topology, batch and LR scaling,
  per-worker dataset sharding, chief-only output paths.
- `backup`: `keras.callbacks.BackupAndRestore` that only the chief writes, atomically.
- `step`: one synchronous training step under a strategy, for timing.
- `launch`: start N local workers on 127.0.0.1 (`imgcls distribute launch`).
- `worker`: a minimal self-contained MNIST training entry used to prove the above.
Part of the training layer: it imports data, zoo and plumbing, never the harness above it
(the scaling measurement lives in bench.harness.scaling).
"""
