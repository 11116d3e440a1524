"""`keras.callbacks.BackupAndRestore` for multi-worker runs: only the chief writes, atomically.

Keras 3's callback writes `latest.weights.h5` and `training_metadata.json` in place from every
worker. Here each backup goes into a fresh directory `epoch-NNNN-step-SSSSSSSS/` (weights + metadata),
and only then does the pointer file `checkpoint` switch to it with an atomic `os.replace`. A worker
killed at any moment leaves either the old or the new backup complete, never a mix or a half file.
All workers restore from the chief's pointer, so `backup_dir` must be on storage every worker sees.
"""
from __future__ import annotations

import json
import os
import shutil

import keras

from bench.distribute.strategy import is_chief
from bench.plumbing.files import atomic_write_text

POINTER = "checkpoint"


def latest_backup(root: str) -> dict | None:
    """The metadata (`epoch`, `batch`, `dir`) of the backup the pointer names, or None."""
    pointer = os.path.join(root, POINTER)
    if not os.path.exists(pointer):
        return None
    with open(pointer) as f:
        name = f.read().strip()
    with open(os.path.join(root, name, "training_metadata.json")) as f:
        return {**json.load(f), "dir": name}


class ChiefBackupAndRestore(keras.callbacks.BackupAndRestore):
    def __init__(self, backup_dir: str, save_freq="epoch", delete_checkpoint: bool = True):
        super().__init__(backup_dir, save_freq=save_freq, double_checkpoint=False,
                         delete_checkpoint=delete_checkpoint)
        self.root = os.fspath(backup_dir)

    def _use_dir(self, name: str) -> None:
        # The parent reads and writes these paths; point them at one backup directory.
        self.backup_dir = os.path.join(self.root, name)
        self._weights_path = os.path.join(self.backup_dir, "latest.weights.h5")
        self._training_metadata_path = os.path.join(self.backup_dir, "training_metadata.json")

    def on_train_begin(self, logs=None):
        latest = latest_backup(self.root)
        if latest is not None:
            self._use_dir(latest["dir"])
            self._load_model()  # restores weights, optimizer state and the initial epoch

    def _save_model(self):
        if not is_chief(self.model.distribute_strategy):
            return  # reading mirrored variables needs no collectives, so others can skip the save
        step = int(self.model.optimizer.iterations.numpy())
        name = f"epoch-{self._current_epoch:04d}-step-{step:08d}"
        final = os.path.join(self.root, name)
        self._use_dir(name + ".partial")
        shutil.rmtree(self.backup_dir, ignore_errors=True)
        super()._save_model()
        os.replace(self.backup_dir, final)
        atomic_write_text(os.path.join(self.root, POINTER), name)
        self._use_dir(name)
        for old in os.listdir(self.root):  # keep only the backup the pointer names
            if old not in (name, POINTER) and not old.startswith(POINTER + ".tmp"):
                shutil.rmtree(os.path.join(self.root, old), ignore_errors=True)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and is_chief(self.model.distribute_strategy):
            shutil.rmtree(self.root, ignore_errors=True)
