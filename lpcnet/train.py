"""``lpcnet train`` / ``python -m lpcnet.train``: train LPCNet on features.f32 + data.u8.

Flags are those of the Cambricon seed's ``lpcnet_train.py`` (str2bool booleans) plus
``--resume``, ``--seed``, ``--amp_dtype`` and a few more, generated from the fields of
:class:`lpcnet.config.TrainConfig` (docs/training.md, Flags). Checkpoints are full Keras 3
models (weights, optimizer state, step counter) written atomically as
``<model_dir>/<output>_<grua>_<epoch:02d>.keras`` with the model/training config beside them
in ``<output>_<grua>_config.json``. ``--finetune`` / ``--retrain`` / ``--quantize`` also read
seed-style ``.h5`` weights by layer name.

:func:`train` reads as four steps: resolve the run (resume point, seed, the same on every
Horovod rank), build or restore the model, assemble the callbacks, fit and summarise.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lpcnet.config import ModelConfig, TrainConfig, add_flags, from_flags, save_config
from lpcnet.config import str2bool  # noqa: F401  (the seed's boolean parser, kept importable here)
from lpcnet.errors import LpcnetError

CHECKPOINT_EXT = ".keras"


# --- command line ----------------------------------------------------------------
def add_arguments(p) -> None:
    add_flags(p, ModelConfig, TrainConfig)


def configs_from_args(args) -> tuple[ModelConfig, TrainConfig]:
    mcfg, tcfg = from_flags(ModelConfig, args), from_flags(TrainConfig, args)
    if not (tcfg.finetune or tcfg.retrain or tcfg.quantize or tcfg.resume):
        _check_gamma(mcfg, tcfg)      # else the checkpoint may make the run end-to-end (train)
    return mcfg, tcfg


def _check_gamma(mcfg: ModelConfig, tcfg: TrainConfig) -> None:
    if tcfg.gamma is not None and not mcfg.end2end:
        raise LpcnetError(f"--gamma {tcfg.gamma:g}: the loss weight of the end-to-end variant; add "
                          f"--end2end (or start from an end-to-end checkpoint), or drop --gamma")


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


# --- files of a run ------------------------------------------------------------------
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


# --- checks done before anything is written -------------------------------------
#: Set in every rank's environment by horovodrun (gloo) or an MPI launcher.
_LAUNCHER_RANK_VARS = ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK")


def _validate_horovod(tcfg: TrainConfig) -> None:
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


def _launcher_rank() -> int:
    """This process's rank as its launcher set it (0 when not started by a launcher)."""
    for var in _LAUNCHER_RANK_VARS:
        value = os.environ.get(var, "").strip()
        if value.isdigit():
            return int(value)
    return 0


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
        _validate_horovod(tcfg)
    elif tcfg.scale_lr:
        raise LpcnetError("--scale_lr only applies with --use_horovod")
    if tcfg.callbacks_module:
        from lpcnet.callbacks import callbacks_factory

        callbacks_factory(tcfg.callbacks_module)      # importable, with callbacks(rank, world)
    if tcfg.eval_audio and _launcher_rank() == 0:     # rank 0 alone scores (and reads) them
        from lpcnet.train_eval import check_eval_audio

        check_eval_audio(tcfg.eval_audio)


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


# --- step 1: resolve the run ----------------------------------------------------------
@dataclass(frozen=True)
class _Run:
    """Who this process is and what it continues: the same configs on every rank."""

    rank: int
    world: int
    mcfg: ModelConfig
    tcfg: TrainConfig
    resume_from: tuple | None      # (epoch, grua, checkpoint path) or None

    @property
    def chief(self) -> bool:
        return self.rank == 0


def _checkpoint_problem(path) -> str | None:
    """Why a ``.keras`` checkpoint cannot be read back (truncated or corrupt archive), or None."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()                 # reads every member and checks its CRC
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        return f"{str(exc) or type(exc).__name__}"
    return None if bad is None else f"member {bad} fails its CRC check"


def _newest_intact_checkpoint(model_dir: Path, output: str):
    """``(epoch, grua, path)`` of the newest checkpoint that reads back, or None; says which
    newer ones were skipped as truncated or corrupt (e.g. cut short by a full disk or a copy)."""
    size_re = re.compile(rf"^{re.escape(output)}_(\d+)_(\d+){re.escape(CHECKPOINT_EXT)}$")
    found = sorted(((int(mo.group(2)), int(mo.group(1)), p) for p in model_dir.glob(f"*{CHECKPOINT_EXT}")
                    if (mo := size_re.match(p.name))), reverse=True) if model_dir.is_dir() else []
    skipped = []
    for epoch, grua, path in found:
        problem = _checkpoint_problem(path)
        if problem is None:
            if skipped:
                print(f"--resume: skipped {', '.join(skipped)}; resuming from the newest intact "
                      f"checkpoint {path} (epoch {epoch})", flush=True)
            return epoch, grua, path
        skipped.append(f"{path.name} (truncated or corrupt: {problem})")
    if skipped:
        raise LpcnetError(f"--resume: no intact checkpoint in {model_dir}: {'; '.join(skipped)}")
    return None


def _precision(train: dict) -> str:
    """fp32 or amp_<dtype> of a TrainConfig dict (the AMP dtype resolved as _setup_devices does)."""
    if not train.get("use_amp"):
        return "fp32"
    return "amp_" + (train.get("amp_dtype") or ("float16" if train.get("num_gpus") else "bfloat16"))


def _resume_mismatches(mcfg: ModelConfig, tcfg: TrainConfig, saved: dict, world: int) -> list[str]:
    """Settings that must match the resumed run (docs/promises.md, Training) but differ.

    Sizes and ``--end2end`` count only when given on the command line (a value other than the
    default: without ``--end2end`` the run's variant is taken); the batch size, the precision
    and the number of processes always count.
    """
    diffs = []
    run_model, run_train, run_info = saved.get("model", {}), saved.get("train", {}), saved.get("run", {})
    defaults = ModelConfig()
    for name, flag in (("gru_a", "--grua-size"), ("gru_b", "--grub-size"), ("cond_size", "--cond-size")):
        given = getattr(mcfg, name)
        if name in run_model and given != getattr(defaults, name) and given != run_model[name]:
            diffs.append(f"{flag} {given} (run: {run_model[name]})")
    if mcfg.end2end and not run_model.get("end2end", False):
        diffs.append("--end2end (run: the standard model)")
    train_defaults, run_fixed = TrainConfig(), _run_fixed_fields(run_train)
    for name, flag in (("density_split", "--density-split"), ("grub_density_split", "--grub-density-split"),
                       ("sparsify_schedule", "--sparsify-schedule")):
        given, default = getattr(tcfg, name), getattr(train_defaults, name)
        if name in run_fixed and given != default and given != run_fixed[name]:
            ran = run_fixed[name]
            shown = " ".join(f"{v:g}" for v in given)
            was = " ".join(f"{v:g}" for v in ran) if ran is not None else "default"
            diffs.append(f"{flag} {shown} (run: {was})")
    if "batch_size" in run_train and tcfg.batch_size != run_train["batch_size"]:
        diffs.append(f"--batch_size {tcfg.batch_size} (run: {run_train['batch_size']})")
    if run_train and _precision(tcfg.to_dict()) != _precision(run_train):
        diffs.append(f"precision {_precision(tcfg.to_dict())} (run: {_precision(run_train)})")
    if "world_size" in run_info and world != run_info["world_size"]:
        diffs.append(f"{world} process(es) (run: {run_info['world_size']})")
    return diffs


def _resume_point(mcfg: ModelConfig, tcfg: TrainConfig, world: int = 1):
    """(resume_from, mcfg, tcfg) of ``--resume``: the newest intact checkpoint and the run's own
    sizes and seed. Raises LpcnetError for settings that differ from the run's."""
    model_dir = Path(tcfg.model_dir)
    resume_from = _newest_intact_checkpoint(model_dir, tcfg.output)
    if resume_from is None:
        print(f"--resume: no {tcfg.output}_<grua>_<epoch>{CHECKPOINT_EXT} in {model_dir}; "
              f"starting a new run")
        return None, mcfg, tcfg
    # The run's own sizes and seed (so the data order continues), not the flags'.
    cfg_file = config_path(model_dir, tcfg.output, resume_from[1])
    if not cfg_file.is_file():
        return resume_from, mcfg.replace(gru_a=resume_from[1]), tcfg
    import json

    saved = json.loads(cfg_file.read_text())
    diffs = _resume_mismatches(mcfg, tcfg, saved, world)
    if diffs:
        raise LpcnetError(f"--resume: {', '.join(diffs)} differ from the run in {model_dir} "
                          f"({cfg_file.name}); resume with the run's settings, or start a new run "
                          f"in another --model_dir")
    mcfg = ModelConfig.from_dict(saved["model"])
    if tcfg.seed is None:
        tcfg = tcfg.replace(seed=saved.get("train", {}).get("seed"))
    return resume_from, mcfg, tcfg.replace(**_run_fixed_fields(saved.get("train", {})))


#: TrainConfig fields that fix a run's schedules and loss: the initialisation flags choose the
#: sparsify / quantise schedule and the quantisation regulariser; the rates build the optimizer
#: of a rank that resumes without the checkpoint file. ``--resume`` takes them from the run's
#: config JSON, never from the command line (docs/training.md, Flags).
RUN_FIXED_TRAIN_FIELDS = ("finetune", "retrain", "quantize", "density_split", "grub_density_split",
                          "sparsify_schedule", "lr", "decay", "scale_lr", "gamma")


def _run_fixed_fields(run_train: dict) -> dict:
    """The run-fixed fields of the run's saved TrainConfig dict (lists as tuples)."""
    out = {}
    for name in RUN_FIXED_TRAIN_FIELDS:
        if name in run_train:
            value = run_train[name]
            out[name] = tuple(value) if isinstance(value, list) else value
    return out


def _resolve_run(mcfg: ModelConfig, tcfg: TrainConfig) -> _Run:
    """Start Horovod if asked; on rank 0 find the resume point and the seed; share them with all ranks.

    A refusal on rank 0 (settings that differ from the resumed run's, no intact checkpoint) is
    shared too, so that every rank raises the same one-line error.
    """
    from lpcnet import distributed as D

    _setup_threads()
    if tcfg.use_horovod:
        D.init(pin_gpu=tcfg.num_gpus > 0)
    rank, world = D.rank(), D.size()
    if world > 1:   # the same flags on every rank, checked before rank 0's values are shared
        D.check_same_flags(D.flag_values(mcfg, tcfg))
    resume_from, refusal = None, None
    if rank == 0:
        try:
            if tcfg.resume:
                resume_from, mcfg, tcfg = _resume_point(mcfg, tcfg, world)
        except LpcnetError as exc:
            refusal = str(exc)
        if tcfg.seed is None:
            tcfg = tcfg.replace(seed=secrets.randbits(31))
    if world > 1:   # every rank continues the same run with the same seed (shared data order)
        resume_from, mcfg, tcfg, refusal = D.broadcast_object((resume_from, mcfg, tcfg, refusal), 0)
    if refusal:
        raise LpcnetError(refusal)
    return _Run(rank, world, mcfg, tcfg, resume_from)


def _check_run_outputs(run: _Run, mcfg: ModelConfig, initial_epoch: int) -> None:
    """Refuse a run whose checkpoints, config or summary would overwrite one of its inputs."""
    from lpcnet.formats import check_outputs

    tcfg, model_dir = run.tcfg, Path(run.tcfg.model_dir)
    inputs = {f"--{k} {v}": v for k, v in (("features", tcfg.features), ("data", tcfg.data),
                                           ("finetune", tcfg.finetune), ("retrain", tcfg.retrain),
                                           ("quantize", tcfg.quantize)) if v}
    outputs = {f"checkpoint {p}": p for p in (checkpoint_path(model_dir, tcfg.output, mcfg.gru_a, e)
                                              for e in range(initial_epoch + 1, tcfg.epochs + 1))}
    outputs[f"config {config_path(model_dir, tcfg.output, mcfg.gru_a)}"] = \
        config_path(model_dir, tcfg.output, mcfg.gru_a)
    if tcfg.use_performance:
        summaries = {os.path.realpath(p): p for p in (model_dir / "summary" / "summary.json",
                                                      Path("summary") / "summary.json")}
        outputs.update({f"summary {p}": p for p in summaries.values()})   # one file when model_dir is .
    check_outputs(inputs, outputs)


# --- step 2: build or restore the model -------------------------------------------------
def _load_resume(path):
    import keras

    try:
        return keras.saving.load_model(path, compile=True)
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LpcnetError(f"{path}: cannot resume from this checkpoint ({msg[:200]})") from None


def _initial_weights(run: _Run):
    """(weights or None, mcfg): the weights of --finetune / --retrain / --quantize, read and checked.

    The variant (standard or end-to-end) is the checkpoint's; ``--end2end`` with a standard
    checkpoint is refused.
    """
    from lpcnet import model as M

    tcfg, mcfg = run.tcfg, run.mcfg
    source = tcfg.finetune or tcfg.retrain or tcfg.quantize
    if not source or run.resume_from is not None:   # resumed: the run's flags fix only the schedule
        return None, mcfg
    weights = M.read_checkpoint_weights(source)
    end2end = M.is_end2end(weights)
    if mcfg.end2end and not end2end:
        raise LpcnetError(f"{source}: a standard LPCNet checkpoint, but --end2end was given; start the "
                          f"end-to-end variant from an end-to-end checkpoint (or drop --end2end)")
    if end2end and not mcfg.end2end and run.chief:
        print(f"{source}: an end-to-end checkpoint; training the end-to-end variant", flush=True)
    if tcfg.finetune:
        return weights, M.config_from_weights(weights, mcfg)
    return weights, mcfg.replace(end2end=end2end)


def _build_or_restore(run: _Run, mcfg: ModelConfig, init_weights, strategy, amp, lr: float):
    """(model, initial epoch): the resumed checkpoint, or a new model (with initial weights), compiled.

    A non-chief rank resuming without the checkpoint file (e.g. on another node) builds the
    same model; rank 0's weights and optimizer state follow by broadcast.
    """
    from lpcnet import model as M

    tcfg = run.tcfg
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        if run.resume_from is not None and (run.chief or Path(run.resume_from[2]).is_file()):
            initial_epoch, _, ckpt = run.resume_from
            model = _load_resume(ckpt)
            if M.is_end2end_model(model) != mcfg.end2end:
                raise LpcnetError(f"{ckpt}: holds the {M.variant_name(M.is_end2end_model(model))} "
                                  f"LPCNet, the run is the {M.variant_name(mcfg.end2end)} one "
                                  f"(--end2end; {config_path(tcfg.model_dir, tcfg.output, mcfg.gru_a).name})")
            return model, initial_epoch
        initial_epoch = run.resume_from[0] if run.resume_from is not None else (
            tcfg.start_epoch if tcfg.finetune else 0)
        policy = f"mixed_{amp}" if amp else None
        model = M.build_lpcnet(mcfg, quantize=bool(tcfg.quantize), dtype_policy=policy,
                               seed=tcfg.seed + run.rank).model
        if init_weights is not None:
            M.assign_weights(model, init_weights, tcfg.finetune or tcfg.retrain or tcfg.quantize)
        M.compile_lpcnet(model, M.make_optimizer(lr, tcfg.lr_decay, loss_scale=amp == "float16"),
                         gamma=tcfg.loss_gamma if mcfg.end2end else None)
    return model, initial_epoch


def _sync_ranks(model, world: int) -> None:
    """Horovod: give every rank rank 0's weights and optimizer state; average gradients and logs."""
    if world == 1:
        return
    from lpcnet import distributed as D

    # Optimizer slots must exist before they can be broadcast (fresh, finetuned or resumed).
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    D.broadcast_variables(list(model.weights) + list(model.optimizer.variables), 0)
    model.gradient_reducer = D.allreduce_gradients
    model.metrics_reducer = D.average_logs
    model.step_reducer = D.reduce_step         # both in one collective per step


# --- step 3: callbacks ------------------------------------------------------------------
def _callbacks(run: _Run, mcfg: ModelConfig, global_batch: int, steps: int, extra=()) -> tuple:
    """(callbacks in order, step timer, checkpoint callback). Rank 0 alone writes and shows progress."""
    from lpcnet.callbacks import (AtomicCheckpoint, Progress, QualityCallback, Sparsify, SparsifyGRUB,
                                  StepTimer, StopOnNonFinite, TensorBoardLogger, callbacks_factory)

    tcfg, model_dir = run.tcfg, Path(run.tcfg.model_dir)
    t_start, t_end, interval = tcfg.schedule
    quant = bool(tcfg.quantize)
    timer = StepTimer(global_batch)
    sparsify = Sparsify(t_start, t_end, interval, tcfg.density_split, quantize=quant)
    sparsify_b = SparsifyGRUB(t_start, t_end, interval, tcfg.grub_density_split,
                              grua_units=mcfg.gru_a, quantize=quant)
    ckpt = AtomicCheckpoint(lambda e: checkpoint_path(model_dir, tcfg.output, mcfg.gru_a, e),
                            CHECKPOINT_EXT)
    # Before the checkpoint: a diverged model is never saved (docs/promises.md).
    stop = StopOnNonFinite(lambda: ckpt.last or (run.resume_from[2] if run.resume_from else None))
    cbs = [sparsify, sparsify_b, timer, stop, *extra]
    if tcfg.callbacks_module:
        cbs += list(callbacks_factory(tcfg.callbacks_module)(run.rank, run.world))
    if run.chief:
        cbs.append(ckpt)
        if tcfg.enable_tensorboard:
            cbs.append(TensorBoardLogger(model_dir / "tensorboard", timer, [sparsify, sparsify_b],
                                         every=tcfg.log_every))
        if tcfg.progress:
            cbs.append(Progress(steps, timer))
        if tcfg.eval_audio:
            from lpcnet.train_eval import eval_files

            cbs.append(QualityCallback(eval_files(tcfg.eval_audio), model_dir, mcfg, global_batch,
                                       every=tcfg.eval_every, use_dnsmos=tcfg.eval_dnsmos,
                                       tensorboard=tcfg.enable_tensorboard))
    return cbs, timer, ckpt


# --- step 4: summarise ------------------------------------------------------------------
def _summarise(run: _Run, mcfg, hist, timer, ckpt, *, meta: dict, initial_epoch: int, model) -> dict:
    """The result of :func:`train`; rank 0 writes the throughput JSON with ``--use_performance``."""
    from lpcnet.callbacks import write_performance_summary

    tcfg = run.tcfg
    history = {k: [float(x) for x in v] for k, v in hist.history.items()}
    summary = None
    if tcfg.use_performance and run.chief:
        summary = write_performance_summary(timer.times, meta["global_batch"],
                                            {**meta, "history": history},
                                            [Path(tcfg.model_dir) / "summary" / "summary.json",
                                             Path("summary") / "summary.json"])
    return {"initial_epoch": initial_epoch, "epochs": tcfg.epochs,
            "steps_per_epoch": meta["steps_per_epoch"], "loss": history["loss"][-1],
            "accuracy": history["accuracy"][-1], "history": history,
            "checkpoint": str(ckpt.last) if run.chief else None, "model": model, "summary": summary,
            "seed": tcfg.seed, "model_config": mcfg, "train_config": tcfg, "rank": run.rank, **meta}


def train(mcfg: ModelConfig, tcfg: TrainConfig, callbacks=()) -> dict:
    """Train LPCNet; returns a summary dict (loss, accuracy, checkpoint, history, ...).

    With ``tcfg.use_horovod`` (one process per rank, started by ``horovodrun`` or
    :func:`lpcnet.distributed.launch`): gradients are averaged across ranks inside the
    compiled step, the initial weights and optimizer state are broadcast from rank 0,
    logged metrics are averaged, each rank reads its own shard of every epoch, and rank
    0 alone writes files and shows progress. ``callbacks``: extra Keras callbacks for
    ``model.fit`` (as ``--callbacks-module`` adds from the command line).

    Raises LpcnetError (before writing anything) for bad options, bad or too
    short data, an unreadable or mismatching initial checkpoint, or an unwritable
    model_dir.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if tcfg.elastic:    # Horovod elastic: workers leave and join (lpcnet/elastic.py)
        from lpcnet import elastic

        return elastic.train(mcfg, tcfg, callbacks, steps=sys.modules[__name__])
    _validate(tcfg)
    run = _resolve_run(mcfg, tcfg)
    tcfg = run.tcfg
    strategy, devices, amp = _setup_devices(tcfg)    # before anything initialises the TF runtime
    import keras

    from lpcnet import model as M
    from lpcnet.data import TrainingLoader

    # Per-rank seed: reproducible runs; GaussianNoise differs between ranks (weights are
    # broadcast from rank 0, so initialisers do not matter on the others).
    keras.utils.set_random_seed(tcfg.seed + run.rank)
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    init_weights, mcfg = _initial_weights(run)        # read and checked before anything is written
    _check_gamma(mcfg, tcfg)                          # the variant is known now (flag or checkpoint)
    loader = TrainingLoader(tcfg.features, tcfg.data, tcfg.batch_size * replicas, seed=tcfg.seed,
                            rank=run.rank, world_size=run.world, nb_features=mcfg.nb_features,
                            end2end=mcfg.end2end)
    model_dir = Path(tcfg.model_dir)
    if run.chief:
        _check_writable(model_dir)
    _check_run_outputs(run, mcfg, run.resume_from[0] if run.resume_from else
                       (tcfg.start_epoch if tcfg.finetune else 0))
    if run.chief:
        from lpcnet.formats import remove_stale_temps

        removed = remove_stale_temps(model_dir)        # left by a killed run (docs/promises.md)
        if removed:
            print(f"removed {len(removed)} temporary file(s) left in {model_dir} by an interrupted "
                  f"run: {', '.join(p.name for p in removed)}", flush=True)
    lr = tcfg.learning_rate * (run.world if tcfg.scale_lr else 1)
    model, initial_epoch = _build_or_restore(run, mcfg, init_weights, strategy, amp, lr)
    model.jit_compile = tcfg.jit_compile
    M.use_native_ops(model, not tcfg.jit_compile)   # numpy_function ops are not XLA ops
    if initial_epoch >= tcfg.epochs:
        raise LpcnetError(f"{model_dir}: the run already reached epoch {initial_epoch} of "
                          f"{tcfg.epochs}; raise --epochs to train further")
    _sync_ranks(model, run.world)

    steps = tcfg.steps_per_epoch or len(loader)
    start_step = int(keras.ops.convert_to_numpy(model.optimizer.iterations)) if run.resume_from else 0
    if run.chief:
        save_config(config_path(model_dir, tcfg.output, mcfg.gru_a), mcfg, tcfg,
                    run={"world_size": run.world, "replicas": replicas,
                         "precision": f"amp_{amp}" if amp else "fp32"})
    global_batch = loader.batch_size * run.world
    cbs, timer, ckpt = _callbacks(run, mcfg, global_batch, steps, callbacks)

    t0 = time.perf_counter()
    hist = model.fit(loader.as_dataset(start_step), epochs=tcfg.epochs, initial_epoch=initial_epoch,
                     steps_per_epoch=steps, callbacks=cbs, verbose=0, shuffle=False)
    meta = {"precision": f"amp_{amp}" if amp else "fp32", "devices": devices,
            "world_size": run.world, "replicas": replicas, "batch_size_per_replica": tcfg.batch_size,
            "batch_size_per_rank": loader.batch_size, "global_batch": global_batch,
            "gru_a": mcfg.gru_a, "gru_b": mcfg.gru_b, "cond_size": mcfg.cond_size,
            "end2end": mcfg.end2end, "steps_per_epoch": steps, "epochs_trained": tcfg.epochs - initial_epoch,
            "wall_s": time.perf_counter() - t0, "learning_rate": lr,
            "loss_per_step": [float(x) for x in timer.losses]}
    return _summarise(run, mcfg, hist, timer, ckpt, meta=meta, initial_epoch=initial_epoch, model=model)


if __name__ == "__main__":
    raise SystemExit(main())
