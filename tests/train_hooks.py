"""Test-only callbacks for ``lpcnet train --callbacks-module train_hooks`` (tests/ on PYTHONPATH).

Driven by environment variables, so that every rank of a ``horovodrun`` run gets them:

* ``LPCNET_TEST_FAIL_AT="RANK:STEP"``: that rank raises RuntimeError after STEP train steps;
  ``"RANK:STEP:kill"``: it kills itself with SIGKILL instead (a crashed / OOM-killed process).
* ``LPCNET_TEST_FAIL_ONCE=PATH``: with ``LPCNET_TEST_FAIL_AT``, fail only if PATH does not exist
  (it is created first): a worker that rejoins an elastic run with the same environment lives.
* ``LPCNET_TEST_SLOW_ALONE=SECONDS``: while a rank trains in a world of one (an elastic run
  after a loss), it sleeps SECONDS after each step, so that a rejoining worker has time to start
  before the run ends, however fast the machine.
* ``LPCNET_TEST_WEIGHTS_DIR=DIR``: at the end of training every rank saves its final weights to
  ``DIR/rank<R>.npz`` and its logged history (loss, accuracy per epoch) to ``DIR/rank<R>.json``.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import keras
import numpy as np

FAIL_ENV = "LPCNET_TEST_FAIL_AT"
FAIL_ONCE_ENV = "LPCNET_TEST_FAIL_ONCE"
WEIGHTS_ENV = "LPCNET_TEST_WEIGHTS_DIR"
SLOW_ALONE_ENV = "LPCNET_TEST_SLOW_ALONE"


class FailAt(keras.callbacks.Callback):
    """Raise (or SIGKILL this process) after ``step`` finished train steps."""

    def __init__(self, rank: int, step: int, kill: bool):
        super().__init__()
        self.rank, self.step, self.kill, self.n = rank, step, kill, 0

    def on_train_batch_end(self, batch, logs=None):
        self.n += 1
        if self.n < self.step:
            return
        once = os.environ.get(FAIL_ONCE_ENV, "").strip()
        if once:
            if Path(once).exists():
                return
            Path(once).touch()
        if self.kill:
            print(f"{FAIL_ENV}: rank {self.rank} kills itself after {self.n} steps (test hook)",
                  flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        raise RuntimeError(f"{FAIL_ENV}: rank {self.rank} fails on purpose after {self.n} steps "
                           f"(test hook)")


class SleepAfterStep(keras.callbacks.Callback):
    """Sleep ``seconds`` after each train step."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(self.seconds)


class DumpWeights(keras.callbacks.Callback):
    """At the end of training: ``DIR/rank<R>.npz`` (weights by layer/variable), ``DIR/rank<R>.json``."""

    def __init__(self, out_dir, rank: int):
        super().__init__()
        self.out_dir, self.rank = Path(out_dir), rank
        self.history: dict[str, list] = {}

    def on_epoch_end(self, epoch, logs=None):
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(float(v))

    def on_train_end(self, logs=None):
        from lpcnet.model import model_weights

        self.out_dir.mkdir(parents=True, exist_ok=True)
        flat = {f"{layer}/{name}": value for layer, vs in model_weights(self.model).items()
                for name, value in vs.items()}
        np.savez(self.out_dir / f"rank{self.rank}.npz", **flat)
        (self.out_dir / f"rank{self.rank}.json").write_text(json.dumps(self.history))


def callbacks(rank: int, world: int) -> list:
    """The hooks the environment asks for, for this rank."""
    out = []
    spec = os.environ.get(FAIL_ENV, "").strip()
    if spec:
        parts = spec.split(":")
        if int(parts[0]) == rank:
            out.append(FailAt(rank, int(parts[1]), len(parts) > 2 and parts[2] == "kill"))
    slow = os.environ.get(SLOW_ALONE_ENV, "").strip()
    if slow and world == 1:
        out.append(SleepAfterStep(float(slow)))
    weights_dir = os.environ.get(WEIGHTS_ENV, "").strip()
    if weights_dir:
        out.append(DumpWeights(weights_dir, rank))
    return out
