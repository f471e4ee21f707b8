"""``lpcnet train`` / ``python -m lpcnet.train``: train LPCNet on features.f32 + data.u8.

Flags are those of the Cambricon seed's ``lpcnet_train.py`` (spec D.6, str2bool
booleans) plus ``--resume``, ``--seed`` and ``--amp_dtype``. Checkpoints are full
Keras 3 models (weights, optimizer state, step counter) written atomically as
``<model_dir>/<output>_<grua>_<epoch:02d>.keras`` with the model/training config
beside them in ``<output>_<grua>_config.json``. ``--finetune`` / ``--retrain`` /
``--quantize`` also read seed-style ``.h5`` weights by layer name.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import time
from pathlib import Path

from lpcnet.config import ModelConfig, TrainConfig, density_split, save_config
from lpcnet.errors import LpcnetError

CHECKPOINT_EXT = ".keras"


def str2bool(v) -> bool:
    """The seed's boolean parser: yes/true/t/y/1 and no/false/f/n/0, any case."""
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("yes", "true", "t", "y", "1"):
        return True
    if s in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"boolean value expected, got {v!r}")


# --- command line ----------------------------------------------------------------
def add_arguments(p) -> None:
    d = TrainConfig()
    io = p.add_argument_group("data and output")
    io.add_argument("--features", required=True, help="features.f32 (36 float32 per frame)")
    io.add_argument("--data", required=True, help="data.u8 (4 µ-law bytes per sample)")
    io.add_argument("--output", default=d.output, help="checkpoint file-name prefix")
    io.add_argument("--model_dir", default=d.model_dir, help="checkpoints, config, logs, summary/")
    m = p.add_argument_group("model")
    m.add_argument("--grua-size", dest="grua_size", type=int, default=ModelConfig.gru_a,
                   help="GRU A units")
    m.add_argument("--grub-size", dest="grub_size", type=int, default=ModelConfig.gru_b,
                   help="GRU B units")
    m.add_argument("--cond-size", dest="cond_size", type=int, default=ModelConfig.cond_size,
                   help="conditioning width")
    m.add_argument("--density", type=float, default=None, help="GRU A density d -> (d/2, d/2, 2d)")
    m.add_argument("--density-split", dest="density_split", type=float, nargs=3, default=None,
                   metavar=("Z", "R", "H"), help="GRU A per-gate densities (default 0.05 0.05 0.2)")
    m.add_argument("--grub-density", dest="grub_density", type=float, default=None,
                   help="GRU B input density d -> (d/2, d/2, 2d)")
    m.add_argument("--grub-density-split", dest="grub_density_split", type=float, nargs=3,
                   default=None, metavar=("Z", "R", "H"),
                   help="GRU B per-gate input densities (default 1 1 1)")
    m.add_argument("--noise-std", dest="noise_std", type=float, default=ModelConfig.noise_std,
                   help="GaussianNoise on GRU A's output in training (0 = off, for exact comparisons)")
    m.add_argument("--sparsify-schedule", dest="sparsify_schedule", type=int, nargs=3, default=None,
                   metavar=("T_START", "T_END", "INTERVAL"),
                   help="sparsification schedule in steps (default 2000 40000 400; 0 0 1 with "
                        "--retrain/--finetune; 10000 30000 100 with --quantize)")
    t = p.add_argument_group("training")
    t.add_argument("--batch_size", type=int, default=d.batch_size, help="sequences per batch per process")
    t.add_argument("--epochs", type=int, default=d.epochs, help="number of epochs")
    t.add_argument("--steps_per_epoch", type=int, default=d.steps_per_epoch,
                   help="steps per epoch (0 = one pass over the data)")
    t.add_argument("--lr", type=float, default=None, help="learning rate (default 1e-3; 3e-5 with --quantize)")
    t.add_argument("--decay", type=float, default=None,
                   help="inverse-time decay per step (default 2.5e-5; 0 with --quantize)")
    t.add_argument("--seed", type=int, default=None, help="seed of weights and data order (default random)")
    init = t.add_mutually_exclusive_group()
    init.add_argument("--finetune", default=None, metavar="CKPT",
                      help="start from this model (.keras or .h5; sizes from the file) with a fresh optimizer")
    init.add_argument("--retrain", default=None, metavar="CKPT", help="start from these weights")
    init.add_argument("--quantize", default=None, metavar="CKPT",
                      help="quantisation-aware training from these weights")
    init.add_argument("--resume", type=str2bool, nargs="?", const=True, default=False,
                      help="continue the run in model_dir from its last checkpoint")
    t.add_argument("--end2end", action="store_true",
                   help="end-to-end LPC variant of the seed (spec C.10): not supported, refused")
    t.add_argument("--gamma", type=float, default=None, help="end-to-end loss weight (only with --end2end)")
    t.add_argument("--start_epoch", type=int, default=0, help="first epoch (with --finetune)")
    x = p.add_argument_group("devices and precision")
    x.add_argument("--use_amp", type=str2bool, nargs="?", const=True, default=False,
                   help="mixed precision")
    x.add_argument("--amp_dtype", choices=("float16", "bfloat16"), default=None,
                   help="AMP compute dtype (default bfloat16 on CPU, float16 on GPU)")
    x.add_argument("--num_gpus", type=int, default=0, help="GPUs to use (0 = CPU)")
    x.add_argument("--num_mlus", type=int, default=0, help="Cambricon MLUs (not supported)")
    x.add_argument("--use_horovod", type=str2bool, nargs="?", const=True, default=False,
                   help="Horovod data parallel (launch with horovodrun or lpcnet.distributed.launch)")
    x.add_argument("--scale_lr", type=str2bool, nargs="?", const=True, default=False,
                   help="multiply --lr by the Horovod world size (off, as in the seed)")
    x.add_argument("--enable_tensorboard", type=str2bool, nargs="?", const=True, default=False,
                   help="TensorBoard logs in model_dir/tensorboard")
    x.add_argument("--use_performance", type=str2bool, nargs="?", const=True, default=False,
                   help="write model_dir/summary/summary.json (and ./summary/summary.json)")
    x.add_argument("--jit_compile", type=str2bool, nargs="?", const=True, default=False,
                   help="compile the train step with XLA (helps small models on CPU)")
    x.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")


def configs_from_args(args) -> tuple[ModelConfig, TrainConfig]:
    if getattr(args, "end2end", False):
        raise LpcnetError("--end2end: the end-to-end LPC variant (spec C.10) is not implemented; "
                          "train the standard model (features carry the LPCs)")
    mcfg = ModelConfig(gru_a=args.grua_size, gru_b=args.grub_size, cond_size=args.cond_size,
                       noise_std=getattr(args, "noise_std", ModelConfig.noise_std))
    schedule = getattr(args, "sparsify_schedule", None)
    tcfg = TrainConfig(
        features=str(args.features), data=str(args.data), output=args.output,
        model_dir=str(args.model_dir), batch_size=args.batch_size, epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch, lr=args.lr, decay=args.decay,
        density_split=density_split(args.density, args.density_split, (0.05, 0.05, 0.2)),
        grub_density_split=density_split(args.grub_density, args.grub_density_split, (1.0, 1.0, 1.0)),
        finetune=args.finetune, retrain=args.retrain, quantize=args.quantize,
        start_epoch=args.start_epoch, resume=bool(args.resume), use_amp=args.use_amp,
        amp_dtype=args.amp_dtype, enable_tensorboard=bool(args.enable_tensorboard),
        use_horovod=bool(args.use_horovod), use_performance=bool(args.use_performance),
        num_gpus=args.num_gpus, num_mlus=args.num_mlus, seed=args.seed, progress=args.progress,
        jit_compile=bool(args.jit_compile), scale_lr=bool(getattr(args, "scale_lr", False)),
        sparsify_schedule=tuple(schedule) if schedule else None)
    return mcfg, tcfg


def run(args) -> int:
    mcfg, tcfg = configs_from_args(args)
    result = train(mcfg, tcfg)
    if result.get("rank", 0) != 0:
        return 0
    print(f"trained epochs {result['initial_epoch'] + 1}..{result['epochs']}: "
          f"loss {result['loss']:.4f}, accuracy {result['accuracy']:.4f}; "
          f"last checkpoint {result['checkpoint']}")
    return 0


def main(argv=None) -> int:
    from lpcnet.cli import module_main

    return module_main(__name__, "python -m lpcnet.train", argv)


# --- checks done before anything is written -------------------------------------
def checkpoint_path(model_dir, output: str, grua: int, epoch: int) -> Path:
    return Path(model_dir) / f"{output}_{grua}_{epoch:02d}{CHECKPOINT_EXT}"


def config_path(model_dir, output: str, grua: int) -> Path:
    return Path(model_dir) / f"{output}_{grua}_config.json"


def latest_checkpoint(model_dir, output: str, grua: int | None = None):
    """``(epoch, grua, path)`` of the highest-numbered checkpoint ``<output>_<grua>_<epoch>.keras``.

    With ``grua`` None any GRU A size matches (``--resume`` takes the size from the run).
    Returns None when there is none.
    """
    size = r"\d+" if grua is None else str(int(grua))
    pat = re.compile(rf"^{re.escape(output)}_({size})_(\d+){re.escape(CHECKPOINT_EXT)}$")
    if not Path(model_dir).is_dir():
        return None
    found = [(int(mo.group(2)), int(mo.group(1)), p) for p in Path(model_dir).glob(f"*{CHECKPOINT_EXT}")
             if (mo := pat.match(p.name))]
    return max(found) if found else None


def _check_writable(model_dir: Path) -> None:
    import tempfile

    try:
        model_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=model_dir, prefix=".write_test."):
            pass
    except OSError as exc:
        raise LpcnetError(f"--model_dir {model_dir}: not writable ({exc.strerror or exc})") from None


#: Set in every rank's environment by horovodrun (gloo) or an MPI launcher.
_LAUNCHER_RANK_VARS = ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK")


def _validate(tcfg: TrainConfig) -> None:
    if tcfg.epochs < 1:
        raise LpcnetError(f"--epochs must be >= 1, got {tcfg.epochs}")
    if tcfg.start_epoch < 0 or tcfg.start_epoch >= tcfg.epochs:
        raise LpcnetError(f"--start_epoch {tcfg.start_epoch} must be below --epochs {tcfg.epochs} "
                          f"(Keras trains epochs start_epoch..epochs-1; nothing would be trained)")
    if tcfg.start_epoch and not tcfg.finetune:
        raise LpcnetError("--start_epoch is only used with --finetune (use --resume to continue a run)")
    if tcfg.steps_per_epoch < 0:
        raise LpcnetError(f"--steps_per_epoch must be >= 0, got {tcfg.steps_per_epoch}")
    if tcfg.num_mlus:
        raise LpcnetError(f"--num_mlus {tcfg.num_mlus}: Cambricon MLUs are not supported by this kit "
                          f"(use --num_gpus or the CPU)")
    if tcfg.num_gpus < 0:
        raise LpcnetError(f"--num_gpus must be >= 0, got {tcfg.num_gpus}")
    if tcfg.use_horovod:
        try:
            import horovod.tensorflow  # noqa: F401
        except ImportError:
            raise LpcnetError("--use_horovod: Horovod is not installed (build it with "
                              "run_scripts/setup.sh, or train without --use_horovod)") from None
        if not any(os.environ.get(k) for k in _LAUNCHER_RANK_VARS):
            raise LpcnetError("--use_horovod: this process was not started by Horovod's launcher; run "
                              "`horovodrun -np N --gloo python -m lpcnet.train ... --use_horovod True` "
                              "or lpcnet.distributed.launch(N, args)")
        if tcfg.num_gpus > 1:
            raise LpcnetError(f"--use_horovod with --num_gpus {tcfg.num_gpus}: Horovod runs one process "
                              f"per GPU; pass --num_gpus 1 and start one process per GPU (-np)")
        if tcfg.jit_compile:
            raise LpcnetError("--jit_compile with --use_horovod: Horovod's collectives are not XLA ops "
                              "in this build; drop --jit_compile")
    elif tcfg.scale_lr:
        raise LpcnetError("--scale_lr only applies with --use_horovod")


def _setup_threads() -> None:
    """Apply TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS from the environment (set per rank
    by the launcher and env.sh) so that N ranks on N cores do not oversubscribe them."""
    import tensorflow as tf

    for var, fn in (("TF_NUM_INTRAOP_THREADS", tf.config.threading.set_intra_op_parallelism_threads),
                    ("TF_NUM_INTEROP_THREADS", tf.config.threading.set_inter_op_parallelism_threads)):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            try:
                fn(int(value))
            except RuntimeError:
                pass  # TensorFlow already initialised (a second run in one process)


def _setup_devices(tcfg: TrainConfig):
    """Pick CPU / GPU(s); return (strategy or None, device names, amp dtype)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if tcfg.num_gpus > len(gpus):
        raise LpcnetError(f"--num_gpus {tcfg.num_gpus}: only {len(gpus)} GPU(s) visible")
    if not tcfg.use_horovod:    # under Horovod, distributed.init() pinned this rank's GPU
        try:
            tf.config.set_visible_devices(gpus[:tcfg.num_gpus], "GPU")
        except RuntimeError:
            pass  # TensorFlow already initialised (e.g. a second run in one process)
    strategy = None
    if tcfg.num_gpus > 1:
        strategy = tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(tcfg.num_gpus)])
        devices = [f"GPU:{i}" for i in range(tcfg.num_gpus)]
    elif tcfg.num_gpus == 1:
        devices = ["GPU:0"]
    else:
        devices = ["CPU:0"]
    amp = None
    if tcfg.use_amp:
        amp = tcfg.amp_dtype or ("float16" if tcfg.num_gpus else "bfloat16")
    if amp == "bfloat16" and tcfg.jit_compile and not tcfg.num_gpus:
        raise LpcnetError("--jit_compile with bfloat16 AMP on the CPU is impractically slow "
                          "(XLA's CPU backend emulates bf16); drop --jit_compile or --use_amp")
    return strategy, devices, amp


# --- training ----------------------------------------------------------------------
def train(mcfg: ModelConfig, tcfg: TrainConfig) -> dict:
    """Train LPCNet; returns a summary dict (loss, accuracy, checkpoint, history, ...).

    With ``tcfg.use_horovod`` (one process per rank, started by ``horovodrun`` or
    :func:`lpcnet.distributed.launch`): gradients are averaged across ranks inside the
    compiled step, the initial weights and optimizer state are broadcast from rank 0,
    logged metrics are averaged, each rank reads its own shard of every epoch, and rank
    0 alone writes files and shows progress.

    Raises LpcnetError (before writing anything) for bad options, bad or too
    short data, an unreadable or mismatching initial checkpoint, or an unwritable
    model_dir.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _validate(tcfg)
    from lpcnet import distributed as D
    from lpcnet.data import TrainingLoader

    _setup_threads()
    if tcfg.use_horovod:
        D.init(pin_gpu=tcfg.num_gpus > 0)
    rank, world = D.rank(), D.size()
    chief = rank == 0
    model_dir = Path(tcfg.model_dir)
    resume_from = None
    if tcfg.resume:
        if chief:
            resume_from = latest_checkpoint(model_dir, tcfg.output)
            if resume_from is None:
                print(f"--resume: no {tcfg.output}_<grua>_<epoch>{CHECKPOINT_EXT} in {model_dir}; "
                      f"starting a new run")
            else:
                # The run's own sizes and seed (so the data order continues), not the flags'.
                cfg_file = config_path(model_dir, tcfg.output, resume_from[1])
                if cfg_file.is_file():
                    import json

                    saved = json.loads(cfg_file.read_text())
                    mcfg = ModelConfig.from_dict(saved["model"])
                    if tcfg.seed is None:
                        tcfg = tcfg.replace(seed=saved.get("train", {}).get("seed"))
                else:
                    mcfg = mcfg.replace(gru_a=resume_from[1])
    if tcfg.seed is None and chief:
        tcfg = tcfg.replace(seed=secrets.randbits(31))
    if world > 1:   # every rank continues the same run with the same seed (shared data order)
        resume_from, mcfg, tcfg = D.broadcast_object((resume_from, mcfg, tcfg), 0)

    strategy, devices, amp = _setup_devices(tcfg)    # before anything initialises the TF runtime
    import keras

    # Per-rank seed: reproducible runs; GaussianNoise differs between ranks (weights are
    # broadcast from rank 0, so initialisers do not matter on the others).
    keras.utils.set_random_seed(tcfg.seed + rank)
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    loader = TrainingLoader(tcfg.features, tcfg.data, tcfg.batch_size * replicas, seed=tcfg.seed,
                            rank=rank, world_size=world, nb_features=mcfg.nb_features)
    global_batch = loader.batch_size * world

    # Initial weights: read and check before anything is written.
    init_weights = None
    from lpcnet import model as M

    if tcfg.finetune:
        init_weights = M.read_checkpoint_weights(tcfg.finetune)
        mcfg = M.config_from_weights(init_weights, mcfg)
    elif tcfg.retrain or tcfg.quantize:
        init_weights = M.read_checkpoint_weights(tcfg.retrain or tcfg.quantize)
    if chief:
        _check_writable(model_dir)

    lr = tcfg.learning_rate * (world if tcfg.scale_lr else 1)
    scope = strategy.scope() if strategy is not None else _nullcontext()
    with scope:
        initial_epoch = tcfg.start_epoch if tcfg.finetune else 0
        if resume_from is not None and (chief or Path(resume_from[2]).is_file()):
            initial_epoch, _, ckpt = resume_from
            model = _load_resume(ckpt)
        else:
            # (Also a non-chief rank resuming without the checkpoint file, e.g. on another
            # node: it builds the same model; rank 0's weights and optimizer state follow.)
            if resume_from is not None:
                initial_epoch = resume_from[0]
            policy = f"mixed_{amp}" if amp else None
            model = M.build_lpcnet(mcfg, quantize=bool(tcfg.quantize), dtype_policy=policy,
                                   seed=tcfg.seed + rank).model
            if init_weights is not None:
                M.assign_weights(model, init_weights, tcfg.finetune or tcfg.retrain or tcfg.quantize)
            M.compile_lpcnet(model, M.make_optimizer(lr, tcfg.lr_decay,
                                                     loss_scale=amp == "float16"))
    model.jit_compile = tcfg.jit_compile
    M.use_native_ops(model, not tcfg.jit_compile)   # numpy_function ops are not XLA ops
    if initial_epoch >= tcfg.epochs:
        raise LpcnetError(f"{model_dir}: the run already reached epoch {initial_epoch} of "
                          f"{tcfg.epochs}; raise --epochs to train further")
    if world > 1:
        # Optimizer slots must exist before they can be broadcast (fresh, finetuned or resumed).
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        D.broadcast_variables(list(model.weights) + list(model.optimizer.variables), 0)
        model.gradient_reducer = D.allreduce_gradients
        model.metrics_reducer = D.average_logs

    steps = tcfg.steps_per_epoch or len(loader)
    start_step = int(keras.ops.convert_to_numpy(model.optimizer.iterations)) if resume_from else 0
    if chief:
        save_config(config_path(model_dir, tcfg.output, mcfg.gru_a), mcfg, tcfg)

    from lpcnet.layers import Sparsify, SparsifyGRUB
    from lpcnet.model import AtomicCheckpoint
    from lpcnet.perf import Progress, StepTimer, TensorBoardLogger, write_performance_summary

    t_start, t_end, interval = tcfg.schedule
    quant = bool(tcfg.quantize)
    timer = StepTimer(global_batch)
    sparsify = Sparsify(t_start, t_end, interval, tcfg.density_split, quantize=quant)
    sparsify_b = SparsifyGRUB(t_start, t_end, interval, tcfg.grub_density_split,
                              grua_units=mcfg.gru_a, quantize=quant)
    ckpt_cb = AtomicCheckpoint(lambda e: checkpoint_path(model_dir, tcfg.output, mcfg.gru_a, e),
                               CHECKPOINT_EXT)
    cbs = [sparsify, sparsify_b, timer]
    hook = _test_failure_hook(rank)
    if hook is not None:
        cbs.append(hook)
    if chief:
        cbs.append(ckpt_cb)
        if tcfg.enable_tensorboard:
            cbs.append(TensorBoardLogger(model_dir / "tensorboard", timer, [sparsify, sparsify_b],
                                         every=tcfg.log_every))
        if tcfg.progress:
            cbs.append(Progress(steps, timer))

    t0 = time.perf_counter()
    hist = model.fit(loader.as_dataset(start_step), epochs=tcfg.epochs, initial_epoch=initial_epoch,
                     steps_per_epoch=steps, callbacks=cbs, verbose=0, shuffle=False)
    wall = time.perf_counter() - t0
    _test_dump_weights(model, rank, hist.history)

    meta = {"precision": f"amp_{amp}" if amp else "fp32", "devices": devices,
            "world_size": world, "replicas": replicas, "batch_size_per_replica": tcfg.batch_size,
            "batch_size_per_rank": loader.batch_size, "global_batch": global_batch,
            "gru_a": mcfg.gru_a, "gru_b": mcfg.gru_b, "cond_size": mcfg.cond_size,
            "steps_per_epoch": steps, "epochs_trained": tcfg.epochs - initial_epoch,
            "wall_s": wall, "learning_rate": lr,
            "loss_per_step": [float(x) for x in timer.losses]}
    summary = None
    history = {k: [float(x) for x in v] for k, v in hist.history.items()}
    if tcfg.use_performance and chief:
        summary = write_performance_summary(timer.times, global_batch,
                                            {**meta, "history": history},
                                            [model_dir / "summary" / "summary.json",
                                             Path("summary") / "summary.json"])
    return {"initial_epoch": initial_epoch, "epochs": tcfg.epochs, "steps_per_epoch": steps,
            "loss": history["loss"][-1], "accuracy": history["accuracy"][-1], "history": history,
            "checkpoint": str(ckpt_cb.last) if chief else None, "model": model, "summary": summary,
            "seed": tcfg.seed, "model_config": mcfg, "train_config": tcfg, "rank": rank, **meta}


# --- test hooks (environment variables; used by tests/test_distributed.py) ---------
#: ``LPCNET_TEST_FAIL_AT="RANK:STEP"``: that rank raises RuntimeError after STEP train steps;
#: ``"RANK:STEP:kill"``: it kills itself with SIGKILL instead (a crashed / OOM-killed process).
TEST_FAIL_ENV = "LPCNET_TEST_FAIL_AT"
#: ``LPCNET_TEST_WEIGHTS_DIR=DIR``: every rank saves its final weights to DIR/rank<R>.npz and
#: its logged history (loss, accuracy per epoch) to DIR/rank<R>.json.
TEST_WEIGHTS_ENV = "LPCNET_TEST_WEIGHTS_DIR"


def _test_failure_hook(rank: int):
    spec = os.environ.get(TEST_FAIL_ENV, "").strip()
    if not spec:
        return None
    parts = spec.split(":")
    fail_rank, fail_step = int(parts[0]), int(parts[1])
    kill = len(parts) > 2 and parts[2] == "kill"
    if fail_rank != rank:
        return None
    import keras

    class _FailAt(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.n = 0

        def on_train_batch_end(self, batch, logs=None):
            self.n += 1
            if self.n >= fail_step:
                if kill:
                    import signal

                    print(f"{TEST_FAIL_ENV}: rank {rank} kills itself after {self.n} steps "
                          f"(test hook)", flush=True)
                    os.kill(os.getpid(), signal.SIGKILL)
                raise RuntimeError(f"{TEST_FAIL_ENV}: rank {rank} fails on purpose after "
                                   f"{self.n} steps (test hook)")

    return _FailAt()


def _test_dump_weights(model, rank: int, history: dict) -> None:
    out = os.environ.get(TEST_WEIGHTS_ENV, "").strip()
    if not out:
        return
    import numpy as np

    from lpcnet.model import model_weights

    Path(out).mkdir(parents=True, exist_ok=True)
    flat = {f"{layer}/{name}": value for layer, vs in model_weights(model).items()
            for name, value in vs.items()}
    np.savez(Path(out) / f"rank{rank}.npz", **flat)
    import json

    (Path(out) / f"rank{rank}.json").write_text(json.dumps(
        {k: [float(x) for x in v] for k, v in history.items()}))


def _load_resume(path):
    import keras

    try:
        return keras.saving.load_model(path, compile=True)
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LpcnetError(f"{path}: cannot resume from this checkpoint ({msg[:200]})") from None


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    raise SystemExit(main())
