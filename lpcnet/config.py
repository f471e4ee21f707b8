"""Configuration dataclasses: one source for model sizes and training options.

``ModelConfig`` fixes the shapes of the network (spec C.2); it is saved as JSON
next to every checkpoint so that later stages (export, synthesis) rebuild the
same model without hard-coded sizes. ``TrainConfig`` holds the options of
``lpcnet train`` (spec D.2, D.6). Both are frozen and round-trip through
``to_dict`` / ``from_dict``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from lpcnet.errors import LpcnetError
from lpcnet.formats import FRAME_SIZE, NB_FEATURES

#: Frames of audio per training sequence and frames of feature context (spec 0.2, C.7).
SEQ_FRAMES = 15
FEATURE_CONTEXT = 2          # frames on each side consumed by the two 'valid' 3-tap convs
SEQ_FEATURE_FRAMES = SEQ_FRAMES + 2 * FEATURE_CONTEXT   # 19
SEQ_SAMPLES = SEQ_FRAMES * FRAME_SIZE                   # 2400


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
    """Sizes of the LPCNet network (spec C.2).

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
    """

    gru_a: int = 384
    gru_b: int = 16
    cond_size: int = 128
    nb_features: int = NB_FEATURES
    frame_size: int = FRAME_SIZE
    embed_size: int = 128
    pitch_embed: int = 64
    pcm_levels: int = 256
    noise_std: float = 0.005
    weight_clip: float = 0.992

    def __post_init__(self):
        for name in ("gru_a", "gru_b"):
            v = getattr(self, name)
            if v <= 0 or v % 8:
                raise LpcnetError(f"{name} size must be a positive multiple of 8 "
                                  f"(4x8 sparse blocks), got {v}")
        for name in ("cond_size", "embed_size", "pitch_embed", "frame_size", "nb_features"):
            if getattr(self, name) <= 0:
                raise LpcnetError(f"{name} must be positive, got {getattr(self, name)}")
        if self.pcm_levels != 256:
            raise LpcnetError("pcm_levels must be 256 (8-bit µ-law binary tree)")


@dataclass(frozen=True)
class TrainConfig(_Dictable):
    """Options of ``lpcnet train`` (spec D.2 / D.6). Paths are strings."""

    features: str = ""
    data: str = ""
    output: str = "lpcnet"
    model_dir: str = "lpcnet_model"
    batch_size: int = 128
    epochs: int = 120
    steps_per_epoch: int = 0
    lr: float | None = None
    decay: float | None = None
    density_split: tuple = (0.05, 0.05, 0.2)
    grub_density_split: tuple = (1.0, 1.0, 1.0)
    finetune: str | None = None
    retrain: str | None = None
    quantize: str | None = None
    start_epoch: int = 0
    resume: bool = False
    use_amp: bool = False
    amp_dtype: str | None = None
    enable_tensorboard: bool = False
    use_horovod: bool = False
    use_performance: bool = False
    num_gpus: int = 0
    num_mlus: int = 0
    seed: int | None = None
    progress: bool = True
    #: Sparsify schedule (t_start, t_end, interval); None -> chosen from the mode (spec D.2).
    sparsify_schedule: tuple | None = None
    log_every: int = 10
    #: Compile the train step with XLA (faster for small models on CPU; see docs/training.md).
    jit_compile: bool = False
    #: With Horovod: multiply the learning rate by the world size (off, as in the seed).
    scale_lr: bool = False

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        return 3e-5 if self.quantize else 1e-3

    @property
    def lr_decay(self) -> float:
        if self.decay is not None:
            return self.decay
        return 0.0 if self.quantize else 2.5e-5

    @property
    def schedule(self) -> tuple:
        """(t_start, t_end, interval) of Sparsify / SparsifyGRUB (spec D.2)."""
        if self.sparsify_schedule is not None:
            return tuple(self.sparsify_schedule)
        if self.quantize:
            return (10000, 30000, 100)
        if self.retrain or self.finetune:
            return (0, 0, 1)
        return (2000, 40000, 400)


def density_split(density: float | None, split, default) -> tuple:
    """Per-gate (update, reset, state) densities from ``--density d`` -> (d/2, d/2, 2d)."""
    if density is not None:
        if not 0 < density <= 1:
            raise LpcnetError(f"density must lie in (0, 1], got {density}")
        return (density / 2, density / 2, min(1.0, 2 * density))
    if split is not None:
        split = tuple(float(s) for s in split)
        if len(split) != 3 or not all(0 <= s <= 1 for s in split):
            raise LpcnetError(f"density split must be 3 values in [0, 1], got {split}")
        return split
    return tuple(default)


def save_config(path, model_cfg: ModelConfig, train_cfg: TrainConfig | None = None) -> Path:
    """Write ``{"model": ..., "train": ...}`` as JSON (atomically)."""
    from lpcnet.formats import atomic_output

    d = {"model": model_cfg.to_dict()}
    if train_cfg is not None:
        d["train"] = train_cfg.to_dict()
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
           "SEQ_FRAMES", "SEQ_FEATURE_FRAMES", "SEQ_SAMPLES", "FEATURE_CONTEXT"]
