"""Elastic Horovod training: ``lpcnet train --elastic`` (docs/distributed.md, Elastic training).

Workers may leave (a lost or preempted machine) and join (a machine that comes back)
while a run goes on. The run keeps one **global batch** ``G = --batch_size x --max-np``
whatever the number of workers ``W``: global step ``g`` trains on the same ``G``
sequences (:class:`ShardLoader`), rank ``k`` taking its share (``G // W``, the first
``G % W`` ranks one more) and the gradients averaged with share weights. So the
optimisation does not depend on how many workers took part in a step: the learning-rate
schedule, the sparsification schedule and the data order run on as in a fixed-size run
(which a test checks to within float rounding), and losing a worker only slows the run.

Every ``--commit-every`` steps and at each epoch end the workers commit the training state
in memory (``TrainingState``: NumPy copies of the weights and optimizer variables,
which hold the step counter; the per-epoch history and step times). When a worker is lost,
the survivors' collective fails, they restore the last commit, Horovod re-forms the world
(``hvd.shutdown(); hvd.init()``) and training continues from that step; a worker that joins
receives the committed state from rank 0 at the next commit. Horovod's own
``TensorFlowKerasState`` and Keras callbacks do not fit Keras 3 (its variables are not
``tf.Variable``, and ``fit`` cannot start mid-epoch), so the state and the loop are the
kit's, on ``horovod.common.elastic``'s ``ObjectState`` and ``run_fn``.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from lpcnet import distributed as D
from lpcnet.data import TrainingLoader
from lpcnet.errors import LpcnetError


class ShardLoader(TrainingLoader):
    """Rank ``rank``'s share of a constant global batch of ``global_batch`` sequences.

    Global step ``g`` is batch ``i = g % steps`` of data epoch ``g // steps`` (``steps =
    N / global_batch``, ``N`` rounded down to a multiple of ``global_batch``): the sequences
    ``perm[i*G : (i+1)*G]`` of the epoch's permutation, whatever the world size. Rank ``k``
    of ``W`` takes the ``k``-th of ``W`` contiguous shares (sizes differ by at most one).
    With ``W`` dividing ``G`` this is exactly :class:`lpcnet.data.TrainingLoader` at batch
    ``G / W`` on ``W`` ranks.
    """

    def __init__(self, features_path, data_path, global_batch: int, *, seed: int = 0, rank: int = 0,
                 world_size: int = 1, nb_features: int = 20, end2end: bool = False):
        if not 0 <= rank < world_size:
            raise LpcnetError(f"rank {rank} outside world size {world_size}")
        if world_size > global_batch:
            raise LpcnetError(f"{world_size} workers cannot share a global batch of {global_batch}")
        super().__init__(features_path, data_path, global_batch, seed=seed, nb_features=nb_features,
                         end2end=end2end)
        self.global_batch = int(global_batch)
        base, extra = divmod(self.global_batch, world_size)
        self.rank, self.world_size = int(rank), int(world_size)
        self.batch_size = base + (rank < extra)
        self.offset = rank * base + min(rank, extra)

    @property
    def share(self) -> float:
        """This rank's weight in the gradient average: ``world * share / global_batch``."""
        return self.world_size * self.batch_size / self.global_batch

    def indices(self, step: int) -> np.ndarray:
        epoch, i = divmod(int(step), self.batches_per_rank)
        lo = i * self.global_batch + self.offset
        return self.permutation(epoch)[lo:lo + self.batch_size]


def training_state(desc, own_flags: dict, builder):
    """The :class:`TrainingState` of a run (the class needs Horovod, so it is made on first use)."""
    global TrainingState
    if TrainingState is None:
        TrainingState = _state_class()
    return TrainingState(desc, own_flags, builder)


TrainingState = None


def _state_class():
    from horovod.common.elastic import ObjectState

    class TrainingState(ObjectState):
        """What the workers commit and restore: model + optimizer variables, position, history.

        ``sync()`` (at the start and after every reset) checks that all ranks were given the
        same flags, takes rank 0's run description (configs with the seed, resume point),
        builds the model on a worker that has none (``builder(desc) -> (model, initial epoch,
        model config)``), then broadcasts rank 0's variables and committed attributes:
        ``start`` ((initial epoch, optimizer step) of the run), ``history`` (per-epoch logs),
        ``times`` / ``losses`` (per step), ``worlds`` ([[step, world size], ...]). ``save()``
        (on commit) copies the variables to NumPy, ``restore()`` assigns them back.
        """

        def __init__(self, desc, own_flags: dict, builder):
            self.desc, self.own_flags, self.builder = desc, own_flags, builder
            self.model, self.mcfg, self.initial_epoch, self._values = None, None, 0, None
            self.t_start = time.perf_counter()
            super().__init__(bcast_object=D.broadcast_object, get_rank=D.rank, start=None, history={},
                             times=[], losses=[], worlds=[])

        def _variables(self) -> list:
            return list(self.model.weights) + list(self.model.optimizer.variables)

        def save(self) -> None:
            import keras

            self._values = [np.array(keras.ops.convert_to_numpy(v)) for v in self._variables()]
            super().save()

        def restore(self) -> None:
            for v, value in zip(self._variables(), self._values):
                v.assign(value)
            super().restore()

        def sync(self) -> None:
            D.check_same_flags(self.own_flags)
            self.desc = D.broadcast_object(self.desc, 0)
            if self.model is None:
                self.model, self.initial_epoch, self.mcfg = self.builder(self.desc)
            D.broadcast_variables(self._variables(), 0)
            if self.start is None:         # first sync of the run: rank 0's value is broadcast below
                self.start = (self.initial_epoch, _iterations(self.model))
            self.save()
            super().sync()

    return TrainingState


def _iterations(model) -> int:
    import keras

    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


# --- the loop -----------------------------------------------------------------------------
def _callback_classes():
    import keras

    class Recorder(keras.callbacks.Callback):
        """Keeps the state's times, losses and history; commits every ``every`` steps and at epoch end."""

        def __init__(self, state, timer, every: int):
            super().__init__()
            self.state, self.timer, self.every = state, timer, max(1, int(every))
            self.base_times, self.base_losses = list(state.times), list(state.losses)
            self.n = 0

        def _take(self):
            self.state.times = self.base_times + self.timer.times
            self.state.losses = self.base_losses + self.timer.losses

        def on_train_batch_end(self, batch, logs=None):
            self.n += 1
            if self.n % self.every == 0:
                self._take()
                self.state.commit()

        def on_epoch_end(self, epoch, logs=None):
            history = {k: list(v) for k, v in self.state.history.items()}
            for k, v in (logs or {}).items():
                history.setdefault(k, []).append(float(v))
            self.state.history = history
            self._take()
            self.state.commit()

    class StopAfterEpoch(keras.callbacks.Callback):
        """Ends ``fit`` after the (partial) epoch it started with."""

        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    return Recorder, StopAfterEpoch


#: A collective that lost its peer: TensorFlow wraps Horovod's error in an OpError.
_LOST_PEER = re.compile(r"Horovod|gloo|Connection reset|Connection closed|shut down", re.IGNORECASE)


def _run_elastic(fn, state):
    """``fn(state)`` under ``horovod.common.elastic.run_fn``; lost peers become HorovodInternalError.

    (``horovod.tensorflow.elastic.run`` only recognises ``HorovodAllreduce`` in the error, not
    the grouped allreduce the kit uses.)
    """
    import tensorflow as tf
    from horovod.common.elastic import run_fn
    from horovod.common.exceptions import HorovodInternalError

    def guarded(st):
        try:
            return fn(st)
        except tf.errors.OpError as exc:
            if _LOST_PEER.search(str(exc.message)):
                why = next((ln.strip() for ln in str(exc.message).splitlines() if _LOST_PEER.search(ln)), "")
                print(f"elastic: a collective failed on rank {D.rank()} ({why[:160]}); restoring the "
                      f"last commit", file=sys.stderr, flush=True)
                raise HorovodInternalError(exc) from None
            raise

    return run_fn(guarded, D.reinit)(state)


def _validate(tcfg) -> None:
    if tcfg.max_np < 1:
        raise LpcnetError("--elastic needs --max-np N (the most workers; the global batch is "
                          "--batch_size x N)")
    if not 1 <= tcfg.min_np <= tcfg.max_np:
        raise LpcnetError(f"--elastic: need 1 <= --min-np ({tcfg.min_np}) <= --max-np ({tcfg.max_np})")
    if tcfg.commit_every < 1:
        raise LpcnetError(f"--commit-every must be >= 1, got {tcfg.commit_every}")
    if tcfg.num_gpus > 1:
        raise LpcnetError("--elastic runs one process per GPU: pass --num_gpus 0 or 1")


def _own_train_args() -> list[str] | None:
    """This process's ``lpcnet train`` flags from ``sys.argv``, or None when not started that way."""
    argv = [str(a) for a in sys.argv]
    if argv and Path(argv[0]).name == "train.py":
        return argv[1:]
    if len(argv) > 1 and Path(argv[0]).name == "lpcnet" and argv[1] == "train":
        return argv[2:]
    return None


def _relaunch(tcfg) -> dict:
    """``lpcnet train --elastic`` outside a launcher: start the same flags under horovodrun elastic."""
    args = _own_train_args()
    if args is None:
        raise LpcnetError("--elastic: start the run with lpcnet.launcher.launch(N, args, "
                          "elastic=Elastic(min_np, max_np, ...)), `lpcnet launch --elastic` or "
                          "run_scripts/train_hvd_elastic.sh")
    hosts_file = os.environ.get("LPCNET_HOSTS_FILE") or None
    from lpcnet import launcher

    summary = launcher.launch(tcfg.max_np, args, timeout=None, err=sys.stderr,
                              elastic=launcher.Elastic(tcfg.min_np, tcfg.max_np, hosts_file=hosts_file))
    return {"rank": None, "summary": summary}   # the ranks printed the result; nothing more to show


def train(mcfg, tcfg, callbacks=(), *, steps) -> dict:
    """Elastic training (``tcfg.elastic``); returns what :func:`lpcnet.train.train` returns.

    ``steps``: the module :mod:`lpcnet.train`, whose steps (resolve, build or restore,
    callbacks, summarise) this loop reuses; it calls this function and passes itself, so
    that the two modules do not import each other. In a process not started by Horovod's
    launcher, starts the same command line under ``horovodrun`` elastic instead (with
    ``--max-np`` workers, hosts from the kit's discovery script) and returns when the run ends.
    """
    T = steps
    _validate(tcfg)
    tcfg = tcfg.replace(use_horovod=True)
    if not any(os.environ.get(k) for k in T._LAUNCHER_RANK_VARS):
        return _relaunch(tcfg)
    if os.environ.get("HOROVOD_ELASTIC") != "1":
        raise LpcnetError("--elastic: this process was started by a fixed-size launcher; start it "
                          "with `lpcnet launch --elastic` (horovodrun --min-np/--max-np "
                          "--host-discovery-script)")
    T._validate(tcfg)
    own_flags = D.flag_values(mcfg, tcfg)
    T._setup_threads()
    D.init(pin_gpu=tcfg.num_gpus > 0)
    resume_from = None
    if D.rank() == 0:            # the run's resume point and seed; the others take rank 0's in sync()
        if tcfg.resume:
            resume_from, mcfg, tcfg = T._resume_point(mcfg, tcfg, tcfg.max_np)
        if tcfg.seed is None:
            import secrets

            tcfg = tcfg.replace(seed=secrets.randbits(31))
    _, devices, amp = T._setup_devices(tcfg)
    state = training_state((resume_from, mcfg, tcfg), own_flags, lambda desc: _build(T, desc, amp))
    return _run_elastic(lambda st: _segment(T, st, callbacks, devices, amp), state)


def _lr(tcfg) -> float:
    return tcfg.learning_rate * (tcfg.max_np if tcfg.scale_lr else 1)


def _build(T, desc, amp):
    """(model, initial epoch, model config) from rank 0's run description (once per process)."""
    import keras

    from lpcnet import model as M
    from lpcnet.config import save_config
    from lpcnet.formats import remove_stale_temps

    resume_from, mcfg, tcfg = desc
    run = T._Run(D.rank(), D.size(), mcfg, tcfg, resume_from)
    keras.utils.set_random_seed(tcfg.seed + run.rank)
    init_weights, mcfg = T._initial_weights(run)
    T._check_gamma(mcfg, tcfg)
    model_dir = Path(tcfg.model_dir)
    initial_epoch = resume_from[0] if resume_from else (tcfg.start_epoch if tcfg.finetune else 0)
    if run.chief:
        T._check_writable(model_dir)
        T._check_run_outputs(run, mcfg, initial_epoch)
        removed = remove_stale_temps(model_dir)
        if removed:
            print(f"removed {len(removed)} temporary file(s) left in {model_dir} by an interrupted "
                  f"run: {', '.join(p.name for p in removed)}", flush=True)
    model, initial_epoch = T._build_or_restore(run, mcfg, init_weights, None, amp, _lr(tcfg))
    if initial_epoch >= tcfg.epochs:
        raise LpcnetError(f"{model_dir}: the run already reached epoch {initial_epoch} of "
                          f"{tcfg.epochs}; raise --epochs to train further")
    model.jit_compile = False
    M.use_native_ops(model, True)
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    if run.chief:      # world_size: what --resume compares (the global batch depends on --max-np)
        save_config(T.config_path(model_dir, tcfg.output, mcfg.gru_a), mcfg, tcfg,
                    run={"world_size": tcfg.max_np, "replicas": 1, "elastic": True,
                         "precision": f"amp_{amp}" if amp else "fp32"})
    return model, initial_epoch, mcfg


def _segment(T, state, callbacks, devices, amp) -> dict:
    """Train from the committed state to the end with the current world (run again after each reset)."""
    import keras

    from lpcnet.callbacks import StepTimer

    rank, world = D.rank(), D.size()
    resume_from, _, tcfg = state.desc
    model, mcfg = state.model, state.mcfg
    run = T._Run(rank, world, mcfg, tcfg, resume_from)
    global_batch = tcfg.batch_size * tcfg.max_np
    loader = ShardLoader(tcfg.features, tcfg.data, global_batch, seed=tcfg.seed, rank=rank,
                         world_size=world, nb_features=mcfg.nb_features, end2end=mcfg.end2end)
    D.set_share_scale(loader.share)
    model.gradient_reducer = D.allreduce_gradients
    model.metrics_reducer = D.average_logs
    model.step_reducer = D.reduce_step
    model.train_function = None                   # retrace: new world size, share and batch shape
    keras.utils.set_random_seed(tcfg.seed + rank + 1009 * len(state.worlds))
    steps = tcfg.steps_per_epoch or len(loader)
    initial_epoch, it0 = state.start
    total = (tcfg.epochs - initial_epoch) * steps
    it = _iterations(model)
    if not state.worlds or state.worlds[-1][1] != world:
        state.worlds = state.worlds + [[it - it0, world]]
        if rank == 0 and len(state.worlds) > 1:
            print(f"elastic: {world} worker(s) from step {it - it0} of {total} (epoch "
                  f"{initial_epoch + (it - it0) // steps + 1}), continuing from the last commit",
                  flush=True)
    Recorder, StopAfterEpoch = _callback_classes()
    cbs, timer, ckpt = T._callbacks(run, mcfg, global_batch, steps, callbacks)
    recorder = Recorder(state, timer, tcfg.commit_every)
    while (done := _iterations(model) - it0) < total:
        epoch, in_epoch = divmod(done, steps)
        extra = [recorder] + ([StopAfterEpoch()] if in_epoch else [])
        model.fit(loader.as_dataset(it0 + done), epochs=tcfg.epochs, initial_epoch=initial_epoch + epoch,
                  steps_per_epoch=steps - in_epoch, callbacks=cbs + extra, verbose=0, shuffle=False)
    all_steps = StepTimer(global_batch)
    all_steps.times, all_steps.losses = list(state.times), list(state.losses)
    meta = {"precision": f"amp_{amp}" if amp else "fp32", "devices": devices, "world_size": world,
            "replicas": 1, "batch_size_per_replica": tcfg.batch_size,
            "batch_size_per_rank": loader.batch_size, "global_batch": global_batch,
            "gru_a": mcfg.gru_a, "gru_b": mcfg.gru_b, "cond_size": mcfg.cond_size,
            "steps_per_epoch": steps, "epochs_trained": tcfg.epochs - initial_epoch,
            "wall_s": time.perf_counter() - state.t_start, "learning_rate": _lr(tcfg),
            "loss_per_step": [float(x) for x in all_steps.losses],
            "step_times_s": [float(x) for x in all_steps.times],
            "elastic": {"min_np": tcfg.min_np, "max_np": tcfg.max_np, "commit_every": tcfg.commit_every,
                        "world_sizes": state.worlds}}
    if ckpt.last is None and run.chief:
        ckpt.last = T.checkpoint_path(tcfg.model_dir, tcfg.output, mcfg.gru_a, tcfg.epochs)
    return T._summarise(run, mcfg, SimpleNamespace(history=state.history), all_steps, ckpt, meta=meta,
                        initial_epoch=initial_epoch, model=model)

