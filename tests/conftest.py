"""Shared fixtures: the real speech slice (CMU ARCTIC, data/slice) and files our tools write."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SLICE_DIR = ROOT / "data" / "slice"
#: Training speaker for tests (female, slt) and the held-out speaker (male, bdl).
TRAIN_WAV = SLICE_DIR / "arctic_a0009.wav"
HELDOUT_WAV = SLICE_DIR / "arctic_a0007.wav"


@pytest.fixture(scope="session")
def slice_dir() -> Path:
    return SLICE_DIR


@pytest.fixture(scope="session")
def train_wav() -> Path:
    return TRAIN_WAV


@pytest.fixture(scope="session")
def heldout_wav() -> Path:
    return HELDOUT_WAV


@pytest.fixture(scope="session")
def slice_s16(tmp_path_factory) -> Path:
    """Both slice utterances prepared by ``lpcnet.data.prepare`` into one 16 kHz input.s16."""
    from lpcnet.data import prepare

    out = tmp_path_factory.mktemp("slice") / "input.s16"
    prepare([TRAIN_WAV, HELDOUT_WAV], out, progress=False)
    return out


@pytest.fixture(scope="session")
def train_s16(tmp_path_factory) -> Path:
    """The training speaker only (held-out speaker excluded), as input.s16."""
    from lpcnet.data import prepare

    out = tmp_path_factory.mktemp("train") / "input.s16"
    prepare([TRAIN_WAV], out, progress=False)
    return out


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def slice_training_pair(tmp_path_factory, train_s16) -> tuple[Path, Path]:
    """``(features.f32, data.u8)`` of the training speaker, ``dump-data -train`` with seed 0."""
    from lpcnet.features import dump_data

    out = tmp_path_factory.mktemp("training_pair")
    feats, data = out / "features.f32", out / "data.u8"
    dump_data(train_s16, feats, data, mode="train", seed=0, progress=False)
    return feats, data
