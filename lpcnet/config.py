"""Configuration dataclasses: one source for model sizes, training options and their flags.

``ModelConfig`` fixes the shapes of the network (docs/model.md); it is saved as JSON next
to every checkpoint so that later stages (export, synthesis) rebuild the same model without
hard-coded sizes. ``TrainConfig`` holds the options of ``lpcnet train`` (docs/training.md).
Both are frozen and round-trip through ``to_dict`` / ``from_dict``.

The command line of ``lpcnet train`` is generated from the fields: a field made with
:func:`option` is a flag, and its metadata holds the flag's spelling, help, group and
argparse details. :func:`add_flags` builds the parser, :func:`from_flags` turns the parsed
arguments back into a config. Defaults live in the field (shown by ``--help``) or, where
they depend on the training mode, in the constants below. A new flag is one field.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

from lpcnet.argtypes import nonnegative_int, positive_int, unit_interval, within
from lpcnet.errors import LpcnetError
from lpcnet.formats import FRAME_SIZE, NB_FEATURES

#: Frames of audio per training sequence and frames of feature context (docs/training.md, Data).
SEQ_FRAMES = 15
FEATURE_CONTEXT = 2          # frames on each side consumed by the two 'valid' 3-tap convs
SEQ_FEATURE_FRAMES = SEQ_FRAMES + 2 * FEATURE_CONTEXT   # 19
SEQ_SAMPLES = SEQ_FRAMES * FRAME_SIZE                   # 2400

#: Defaults of the seed's training (docs/training.md): learning rate and inverse-time decay per
#: step, from scratch and in quantisation-aware mode.
LR, DECAY = 1e-3, 2.5e-5
QUANTIZE_LR, QUANTIZE_DECAY = 3e-5, 0.0
#: Sparsification schedules (t_start, t_end, interval) in steps, by training mode.
SCHEDULES = {"scratch": (2000, 40000, 400), "finetune": (0, 0, 1), "quantize": (10000, 30000, 100)}
#: Final per-gate (update, reset, state) block densities of GRU A's recurrent kernel and of
#: GRU B's input kernel (rows fed by GRU A).
GRU_A_DENSITY = (0.05, 0.05, 0.2)
GRU_B_DENSITY = (1.0, 1.0, 1.0)
#: Weight of the end-to-end loss's excitation-size term when --gamma is not given (the seed's).
END2END_GAMMA = 2.0

#: Help groups of ``lpcnet train --help``, in order.
GROUPS = ("data and output", "model", "training", "devices and precision")


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


#: GRU sizes are multiples of this (the 4x8 blocks of sparsity and the int8 kernels; docs/model.md).
GRU_MULTIPLE = 8
GRU_RULE = f"a positive multiple of {GRU_MULTIPLE} (4x8 sparse blocks)"
#: Seeds of the random generators (NumPy's legacy seeding takes 0 .. 2**32 - 1).
SEED_LIMIT = 2 ** 32


#: argparse type of a GRU size (``--grua-size``, ``--gru-a``): :data:`GRU_RULE`, the rule
#: ModelConfig checks.
gru_units = within(positive_int, lambda v: v % GRU_MULTIPLE == 0, GRU_RULE, "gru_units")
#: argparse type of ``--seed``: a whole number from 0 to 2**32 - 1.
seed_value = within(nonnegative_int, lambda v: v < SEED_LIMIT,
                    f"a whole number from 0 to {SEED_LIMIT - 1}", "seed_value")


def option(default, help: str, *names: str, group: str = "training", kind: str = "value", **argparse_kw):
    """A dataclass field that is also a flag of ``lpcnet train``.

    Args:
        default: the field's default (``--help`` shows it).
        help: one line; mode-dependent defaults are spelt out here.
        names: option strings (default ``--<field name>``).
        group: one of :data:`GROUPS`.
        kind: ``"value"`` (an option with a value), ``"bool"`` (the seed's ``--flag [BOOL]``,
            parsed by :func:`str2bool`) or ``"negate"`` (a switch that sets the field False).
        argparse_kw: ``type``, ``nargs``, ``metavar``, ``choices``, ``required``, and two of ours:
            ``exclusive`` (name of a mutually exclusive set of flags) and ``shortcut`` (the
            option of a one-number density ``d`` standing for ``(d/2, d/2, 2d)``).
    """
    meta = {"names": names, "help": help, "group": group, "kind": kind, **argparse_kw}
    return dataclasses.field(default=default, metadata={"flag": meta})


class _Dictable:
    """to_dict / from_dict / JSON helpers shared by the config dataclasses."""

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise LpcnetError(f"{cls.__name__}: unknown keys {sorted(unknown)}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kwargs)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


@dataclass(frozen=True)
class ModelConfig(_Dictable):
    """Sizes of the LPCNet network (docs/model.md).

    Args:
        gru_a: units of GRU A (384 in the paper); a multiple of 8 (4x8 sparse blocks).
        gru_b: units of GRU B (16); a multiple of 8.
        cond_size: width of the frame-rate conditioning vector (128).
        nb_features: network input features per frame (20).
        frame_size: samples per frame (160).
        embed_size: width of the µ-law sample embedding (128).
        pitch_embed: width of the pitch-period embedding (64).
        pcm_levels: µ-law levels (256).
        noise_std: GaussianNoise on GRU A's output during training (0.005).
        weight_clip: WeightClip constant (0.992).
        end2end: the end-to-end variant: LPCs computed by the network from the conditioning,
            trained on ``dump-data --end2end`` data (docs/model.md, End-to-end variant).
    """

    gru_a: int = option(384, "GRU A units", "--grua-size", group="model", type=gru_units)
    gru_b: int = option(16, "GRU B units", "--grub-size", group="model", type=gru_units)
    cond_size: int = option(128, "conditioning width", "--cond-size", group="model",
                               type=positive_int)
    nb_features: int = NB_FEATURES
    frame_size: int = FRAME_SIZE
    embed_size: int = 128
    pitch_embed: int = 64
    pcm_levels: int = 256
    noise_std: float = option(0.005, "GaussianNoise on GRU A's output in training (0 = off, for exact "
                              "comparisons; at most 1)", "--noise-std", group="model",
                              type=unit_interval)
    weight_clip: float = 0.992
    end2end: bool = option(False, "end-to-end variant: the network computes the LPCs from its "
                           "conditioning (needs `lpcnet dump-data --end2end` data; with "
                           "--finetune/--retrain/--resume taken from the checkpoint)", "--end2end",
                           group="model", kind="bool")

    def __post_init__(self):
        for name in ("gru_a", "gru_b"):
            v = getattr(self, name)
            if v <= 0 or v % GRU_MULTIPLE:
                raise LpcnetError(f"{name} size must be {GRU_RULE}, got {v}")
        for name in ("cond_size", "embed_size", "pitch_embed", "frame_size", "nb_features"):
            if getattr(self, name) <= 0:
                raise LpcnetError(f"{name} must be positive, got {getattr(self, name)}")
        if self.pcm_levels != 256:
            raise LpcnetError("pcm_levels must be 256 (8-bit µ-law binary tree)")
        if not 0 <= self.noise_std <= 1:          # NaN too; Keras' GaussianNoise takes [0, 1]
            raise LpcnetError(f"--noise-std must be a number from 0 to 1, got {self.noise_std}")


def _schedule_help() -> str:
    s = {k: " ".join(map(str, v)) for k, v in SCHEDULES.items()}
    return (f"sparsification schedule in steps (default {s['scratch']}; {s['finetune']} with "
            f"--retrain/--finetune; {s['quantize']} with --quantize)")


_IO, _MODEL, _TRAIN, _DEV = GROUPS


@dataclass(frozen=True)
class TrainConfig(_Dictable):
    """Options of ``lpcnet train`` (docs/training.md, Flags). Paths are strings."""

    features: str = option("", "features.f32 (36 float32 per frame)", group=_IO, required=True)
    data: str = option("", "data.u8 (4 µ-law bytes per sample)", group=_IO, required=True)
    output: str = option("lpcnet", "checkpoint file-name prefix", group=_IO)
    model_dir: str = option("lpcnet_model", "checkpoints, config, logs, summary/", group=_IO)
    batch_size: int = option(128, "sequences per batch per process", type=positive_int)
    epochs: int = option(120, "number of epochs", type=positive_int)
    steps_per_epoch: int = option(0, "steps per epoch (0 = one pass over the data)",
                                 type=nonnegative_int)
    lr: float | None = option(None, f"learning rate (default {LR:g}; {QUANTIZE_LR:g} with --quantize)",
                              type=float)
    decay: float | None = option(None, f"inverse-time decay per step (default {DECAY:g}; "
                                       f"{QUANTIZE_DECAY:g} with --quantize)", type=float)
    density_split: tuple = option(GRU_A_DENSITY, "GRU A per-gate densities", "--density-split",
                                  group=_MODEL, type=float, nargs=3, metavar=("Z", "R", "H"),
                                  shortcut="--density")
    grub_density_split: tuple = option(GRU_B_DENSITY, "GRU B per-gate input densities",
                                       "--grub-density-split", group=_MODEL, type=float, nargs=3,
                                       metavar=("Z", "R", "H"), shortcut="--grub-density")
    finetune: str | None = option(None, "start from this model (.keras or .h5; sizes from the file) "
                                  "with a fresh optimizer", metavar="CKPT", exclusive="init")
    retrain: str | None = option(None, "start from these weights", metavar="CKPT", exclusive="init")
    quantize: str | None = option(None, "quantisation-aware training from these weights",
                                  metavar="CKPT", exclusive="init")
    start_epoch: int = option(0, "first epoch (with --finetune)", type=nonnegative_int)
    resume: bool = option(False, "continue the run in model_dir from its last checkpoint",
                          kind="bool", exclusive="init")
    use_amp: bool = option(False, "mixed precision", group=_DEV, kind="bool")
    amp_dtype: str | None = option(None, "AMP compute dtype (default bfloat16 on CPU, float16 on GPU)",
                                   group=_DEV, choices=("float16", "bfloat16"))
    enable_tensorboard: bool = option(False, "TensorBoard logs in model_dir/tensorboard", group=_DEV,
                                      kind="bool")
    use_horovod: bool = option(False, "Horovod data parallel (launch with horovodrun or "
                               "lpcnet.distributed.launch)", group=_DEV, kind="bool")
    use_performance: bool = option(False, "write model_dir/summary/summary.json (and "
                                   "./summary/summary.json)", group=_DEV, kind="bool")
    num_gpus: int = option(0, "GPUs to use (0 = CPU)", group=_DEV, type=nonnegative_int)
    num_mlus: int = option(0, "Cambricon MLUs (not supported)", group=_DEV,
                           type=nonnegative_int)
    seed: int | None = option(None, "seed of weights and data order (default random)",
                             type=seed_value)
    progress: bool = option(True, "hide progress bars", "--no-progress", group=_DEV, kind="negate")
    sparsify_schedule: tuple | None = option(None, _schedule_help(), "--sparsify-schedule",
                                             group=_MODEL, type=nonnegative_int, nargs=3,
                                             metavar=("T_START", "T_END", "INTERVAL"))
    #: Steps between TensorBoard batch scalars.
    log_every: int = 10
    jit_compile: bool = option(False, "compile the train step with XLA (helps small models on CPU)",
                               group=_DEV, kind="bool")
    scale_lr: bool = option(False, "multiply --lr by the Horovod world size (off, as in the seed)",
                            group=_DEV, kind="bool")
    elastic: bool = option(False, "Horovod elastic training: workers may leave and join, the global batch "
                           "stays --batch_size x --max-np (docs/distributed.md; start it with "
                           "`lpcnet launch --elastic`)", group=_DEV, kind="bool")
    min_np: int = option(1, "elastic: fewest workers to continue with", "--min-np", group=_DEV,
                         type=positive_int)
    max_np: int = option(0, "elastic: most workers (required with --elastic)", "--max-np", group=_DEV,
                         type=nonnegative_int)
    commit_every: int = option(20, "elastic: commit the training state every N steps (a lost worker costs "
                               "at most N steps)", "--commit-every", group=_DEV, type=positive_int,
                               metavar="N")
    eval_audio: tuple = option((), "held-out speech (wavs or folders) copy-synthesised and scored while "
                               "training (rank 0, beside training; docs/training.md, Quality)",
                               "--eval-audio", nargs="+", metavar="WAV")
    eval_every: int = option(0, "score --eval-audio every N steps (0 = at epoch ends only)",
                             "--eval-every", type=nonnegative_int, metavar="N")
    eval_dnsmos: bool = option(True, "include DNSMOS in the training-time scores", "--eval-dnsmos",
                               kind="bool")
    callbacks_module: str | None = option(None, "import this module and add the Keras callbacks its "
                                          "callbacks(rank, world) returns", "--callbacks-module",
                                          metavar="MODULE")
    gamma: float | None = option(None, f"end-to-end loss: weight of the excitation-size term (default "
                                 f"{END2END_GAMMA:g}; only with --end2end)", type=float)

    def __post_init__(self):
        # Refused at start: a NaN, infinite or non-positive rate would train to garbage silently.
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise LpcnetError(f"--lr must be a finite number > 0, got {self.lr}")
        if self.decay is not None and not (math.isfinite(self.decay) and self.decay >= 0):
            raise LpcnetError(f"--decay must be a finite number >= 0 (0: constant rate), got {self.decay}")
        if self.gamma is not None and not (math.isfinite(self.gamma) and self.gamma >= 0):
            raise LpcnetError(f"--gamma must be a finite number >= 0, got {self.gamma}")
        if self.sparsify_schedule is not None:
            t_start, t_end, interval = self.sparsify_schedule
            # docs/training.md, Sparsification: the ramp runs from step T_START to T_END,
            # acting every INTERVAL steps (T_END = T_START: the final densities at once).
            if not 0 <= t_start <= t_end or interval < 1:
                raise LpcnetError(f"--sparsify-schedule {t_start} {t_end} {interval}: expected "
                                  f"0 <= T_START <= T_END and INTERVAL >= 1 (steps)")

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        return QUANTIZE_LR if self.quantize else LR

    @property
    def loss_gamma(self) -> float:
        """Weight of the end-to-end loss's excitation-size term (``--gamma``, default 2)."""
        return END2END_GAMMA if self.gamma is None else self.gamma

    @property
    def lr_decay(self) -> float:
        if self.decay is not None:
            return self.decay
        return QUANTIZE_DECAY if self.quantize else DECAY

    @property
    def schedule(self) -> tuple:
        """(t_start, t_end, interval) of Sparsify / SparsifyGRUB."""
        if self.sparsify_schedule is not None:
            return tuple(self.sparsify_schedule)
        if self.quantize:
            return SCHEDULES["quantize"]
        if self.retrain or self.finetune:
            return SCHEDULES["finetune"]
        return SCHEDULES["scratch"]


def density_split(density: float | None, split, default) -> tuple:
    """Per-gate (update, reset, state) densities: ``split`` if given (it wins, as in the seed),
    else ``--density d`` -> (d/2, d/2, min(1, 2d)) (the seed's 2d above 1 indexed from the
    end of its sorted scores: capped here), else ``default``."""
    if split is not None:
        split = tuple(float(s) for s in split)
        if len(split) != 3 or not all(0 <= s <= 1 for s in split):
            raise LpcnetError(f"density split must be 3 values in [0, 1], got {split}")
        return split
    if density is not None:
        if not 0 < density <= 1:
            raise LpcnetError(f"density must lie in (0, 1], got {density}")
        return (density / 2, density / 2, min(1.0, 2 * density))
    return tuple(default)


# --- the command line, generated from the fields -----------------------------------------------
def _dest(option_string: str) -> str:
    return option_string.lstrip("-").replace("-", "_")


def _flag_fields(cls):
    """(field, flag metadata) in field order, the members of an exclusive set pulled together."""
    fields = [(f, f.metadata["flag"]) for f in dataclasses.fields(cls) if "flag" in f.metadata]
    out = []
    for f, meta in fields:
        key = meta.get("exclusive")
        if key is None:
            out.append((f, meta))
        elif not any(m.get("exclusive") == key for _, m in out):
            out += [(g, m) for g, m in fields if m.get("exclusive") == key]
    return out


def add_flags(parser, *classes) -> dict:
    """Add the flags of the config ``classes`` to ``parser``, in :data:`GROUPS`; returns the groups."""
    groups = {name: parser.add_argument_group(name) for name in GROUPS}
    exclusive: dict = {}
    for cls in classes:
        for f, meta in _flag_fields(cls):
            meta = dict(meta)
            names = meta.pop("names") or (f"--{f.name}",)
            group = groups[meta.pop("group")]
            kind, shortcut = meta.pop("kind"), meta.pop("shortcut", None)
            if "exclusive" in meta:
                key = meta.pop("exclusive")
                if key not in exclusive:
                    exclusive[key] = group.add_mutually_exclusive_group()
                group = exclusive[key]
            if kind == "bool":
                meta.update(type=str2bool, nargs="?", const=True)
            elif kind == "negate":
                meta.update(action="store_false")
            # No default shown for required flags and None (the help says what None means);
            # from_flags then takes the field's default.
            # A split with a shortcut: absent unless given, so that from_flags knows which won.
            default = argparse.SUPPRESS if f.default is None or meta.get("required") or shortcut \
                else f.default
            if shortcut:
                meta["help"] += f" (default {' '.join(f'{v:g}' for v in f.default)})"
            group.add_argument(*names, dest=f.name, default=default, **meta)
            if shortcut:
                group.add_argument(shortcut, dest=_dest(shortcut), type=float, default=argparse.SUPPRESS,
                                   help=f"density d -> (d/2, d/2, min(1, 2d)); {names[0]} wins when "
                                        f"both are given (as in the seed)")
    return groups


def from_flags(cls, args):
    """``cls`` from parsed arguments (missing attributes keep the field defaults)."""
    values = {}
    for f, meta in _flag_fields(cls):
        value = getattr(args, f.name, None if meta.get("shortcut") else f.default)
        if isinstance(value, list):
            value = tuple(value)
        if meta.get("shortcut"):
            value = density_split(getattr(args, _dest(meta["shortcut"]), None), value, f.default)
        values[f.name] = value
    return cls(**values)


# --- files ---------------------------------------------------------------------------------------
def save_config(path, model_cfg: ModelConfig, train_cfg: TrainConfig | None = None,
                run: dict | None = None) -> Path:
    """Write ``{"model": ..., "train": ..., "run": ...}`` as JSON (atomically).

    ``run``: facts of the training run that ``--resume`` must match (``world_size``,
    ``replicas``, ``precision``).
    """
    from lpcnet.formats import atomic_output

    d = {"model": model_cfg.to_dict()}
    if train_cfg is not None:
        d["train"] = train_cfg.to_dict()
    if run is not None:
        d["run"] = dict(run)
    with atomic_output(path, "w") as f:
        json.dump(d, f, indent=1)
    return Path(path)


def load_model_config(path) -> ModelConfig:
    """Read the ``model`` part of a config JSON written by :func:`save_config`."""
    try:
        d = json.loads(Path(path).read_text())
        return ModelConfig.from_dict(d["model"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LpcnetError(f"{path}: not a readable LPCNet config ({exc})") from None


__all__ = ["ModelConfig", "TrainConfig", "density_split", "save_config", "load_model_config",
           "add_flags", "from_flags", "option", "str2bool", "SEQ_FRAMES", "SEQ_FEATURE_FRAMES",
           "SEQ_SAMPLES", "FEATURE_CONTEXT", "GRU_A_DENSITY", "GRU_B_DENSITY", "SCHEDULES", "END2END_GAMMA"]
