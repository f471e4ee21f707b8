"""Training loader (docs/training.md, Data): alignment, per-epoch shuffling, sharding, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from lpcnet.data import TrainingLoader
from lpcnet.errors import LpcnetError
from lpcnet.formats import decode_pitch, read_data, read_features, write_data, write_features


@pytest.fixture(scope="module")
def pair(slice_training_pair):
    return slice_training_pair


def test_sequence_alignment_matches_spec(pair):
    feats_path, data_path = pair
    feats, data = read_features(feats_path), read_data(data_path)
    loader = TrainingLoader(feats_path, data_path, batch_size=4, seed=0)
    frames = len(feats)
    assert loader.nb_sequences == (frames // 15 - 1) // 4 * 4
    idx = np.array([0, 1, loader.nb_sequences - 1])
    (pcm, f, pitch), target = loader.sequences(idx)
    assert pcm.shape == (3, 2400, 3) and target.shape == (3, 2400, 1)
    assert f.shape == (3, 19, 20) and pitch.shape == (3, 19, 1)
    for row, s in enumerate(idx):
        audio = data[(15 * s + 2) * 160:(15 * s + 17) * 160]          # frames 15s+2 .. 15s+16
        np.testing.assert_array_equal(pcm[row], audio[:, :3])
        np.testing.assert_array_equal(target[row, :, 0], audio[:, 3])
        np.testing.assert_array_equal(f[row], feats[15 * s:15 * s + 19, :20])   # frames 15s .. 15s+18
        np.testing.assert_array_equal(pitch[row, :, 0], decode_pitch(feats[15 * s:15 * s + 19, 18]))
    assert pitch.min() >= 33 and pitch.max() <= 255
    # Neighbouring sequences share 4 feature frames.
    np.testing.assert_array_equal(f[0, 15:19], f[1, 0:4])


def test_memory_mapped_views(pair):
    loader = TrainingLoader(*pair, batch_size=4)
    for view in (loader._audio, loader._feats):
        assert not view.flags.owndata
        base = view
        while getattr(base, "base", None) is not None and not isinstance(base, np.memmap):
            base = base.base
        assert isinstance(base, np.memmap) or "mmap" in type(base).__name__


def test_epoch_permutations_and_shards(pair):
    a = TrainingLoader(*pair, batch_size=2, seed=7)
    b = TrainingLoader(*pair, batch_size=2, seed=7)
    np.testing.assert_array_equal(a.permutation(3), b.permutation(3))
    assert not np.array_equal(a.permutation(0), a.permutation(1))
    assert not np.array_equal(a.permutation(0), TrainingLoader(*pair, batch_size=2, seed=8).permutation(0))
    # Global step -> (epoch, batch): each epoch visits every sequence once on one rank.
    seen = np.concatenate([a.indices(s) for s in range(len(a))])
    assert sorted(seen) == list(range(a.nb_sequences))
    np.testing.assert_array_equal(a.indices(len(a)), a.permutation(1)[:2])
    # Two ranks: disjoint shards of the same per-epoch permutation.
    r0 = TrainingLoader(*pair, batch_size=2, seed=7, rank=0, world_size=2)
    r1 = TrainingLoader(*pair, batch_size=2, seed=7, rank=1, world_size=2)
    assert len(r0) == len(r1) == a.nb_sequences // 2 // 2
    s0 = np.concatenate([r0.indices(s) for s in range(len(r0))])
    s1 = np.concatenate([r1.indices(s) for s in range(len(r1))])
    assert not set(s0) & set(s1)
    assert len(set(s0) | set(s1)) == 2 * 2 * len(r0)


def test_dataset_shapes_and_resume_position(pair):
    loader = TrainingLoader(*pair, batch_size=2, seed=1)
    it = iter(loader.as_dataset(start_step=5))
    (pcm, f, pitch), target = next(it)
    assert tuple(pcm.shape) == (2, 2400, 3) and pcm.dtype.name == "int32"
    assert tuple(f.shape) == (2, 19, 20) and f.dtype.name == "float32"
    assert tuple(pitch.shape) == (2, 19, 1) and tuple(target.shape) == (2, 2400, 1)
    (pcm5, _, _), _ = loader.batch(5)
    np.testing.assert_array_equal(pcm.numpy(), pcm5)


def test_bad_inputs(pair, tmp_path):
    feats, data = read_features(pair[0]), read_data(pair[1])
    # Files that disagree in length.
    write_data(tmp_path / "short.u8", data[:-160 * 3])
    with pytest.raises(LpcnetError, match="frames"):
        TrainingLoader(pair[0], tmp_path / "short.u8", batch_size=2)
    # Too short for one batch.
    write_features(tmp_path / "f.f32", feats[:40])
    write_data(tmp_path / "d.u8", data[:40 * 160])
    with pytest.raises(LpcnetError, match="too short for one batch"):
        TrainingLoader(tmp_path / "f.f32", tmp_path / "d.u8", batch_size=4)
    # NaN in features.
    bad = np.array(feats)
    bad[17, 3] = np.nan
    bad.tofile(tmp_path / "nan.f32")
    with pytest.raises(LpcnetError, match="non-finite"):
        TrainingLoader(tmp_path / "nan.f32", pair[1], batch_size=2)
    with pytest.raises(LpcnetError, match="rank"):
        TrainingLoader(*pair, batch_size=2, rank=2, world_size=2)
