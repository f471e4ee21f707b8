"""Weight export: paired dump/load round trips, block packing, int8, blob validation, CLI."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lpcnet import export as E
from lpcnet.errors import FormatError

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(0)


def _rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def test_dense_round_trip():
    k, b = _rand(7, 5), _rand(5)
    got = E.load_dense(E.dump_dense("d", k, b), "d")
    np.testing.assert_allclose(got[0], k)
    np.testing.assert_allclose(got[1], b)


def test_conv1d_round_trip():
    k, b = _rand(3, 6, 4), _rand(4)
    t = E.dump_conv1d("c", k, b)
    assert t["c_w"].shape == (18, 4)            # rows = [x_{t-2}, x_{t-1}, x_t]
    got = E.load_conv1d(t, "c")
    np.testing.assert_allclose(got[0], k)
    np.testing.assert_allclose(got[1], b)


def test_embedding_round_trip():
    table = _rand(256, 3)
    np.testing.assert_allclose(E.load_embedding(E.dump_embedding("e", table), "e"), table)


def test_mdense_round_trip():
    k, b, f = _rand(256, 16, 2), _rand(256, 2), _rand(256, 2)
    t = E.dump_mdense("md", k, b, f)
    assert t["md_w"].shape == (256, 2, 16)
    for got, want in zip(E.load_mdense(t, "md"), (k, b, f)):
        np.testing.assert_allclose(got, want)


def _sparse(rows, cols, density):
    w = _rand(rows, cols)
    keep = RNG.random((rows // 4, cols // 8)) < density
    return w * np.repeat(np.repeat(keep, 4, 0), 8, 1)


def test_pack_blocks_round_trip_and_index_format():
    w = _sparse(16, 24, 0.4)
    idx, blocks = E.pack_blocks(w, False)
    np.testing.assert_allclose(E.unpack_blocks(idx, blocks, 16, 24), w)
    pos = 0
    for _ in range(3):                           # per 8-column group: count, then row starts
        count = idx[pos]
        assert all(r % 4 == 0 and 0 <= r < 16 for r in idx[pos + 1:pos + 1 + count])
        pos += 1 + count
    assert pos == len(idx) and blocks.shape == (int(np.sum(np.abs(w).reshape(4, 4, 3, 8).sum((1, 3)) > 0)), 4, 8)


@pytest.mark.parametrize("sparse_recurrent", [True, False])
def test_gru_round_trip(sparse_recurrent):
    n, rows_in, cond = 8, 16, 4
    kernel = np.concatenate([_sparse(rows_in, 3 * n, 0.5), _rand(cond, 3 * n)])
    rk = _sparse(n, 3 * n, 0.5) + np.tile(np.diag(_rand(n)), 3) if sparse_recurrent else _rand(n, 3 * n)
    bias = _rand(2, 3 * n)
    t = E.dump_gru("g", kernel, rk, bias, input_rows=rows_in, sparse_recurrent=sparse_recurrent)
    k2, rk2, b2 = E.load_gru(t, "g", n, input_rows=rows_in)
    np.testing.assert_allclose(k2, kernel)
    np.testing.assert_allclose(rk2, rk)
    np.testing.assert_allclose(b2, bias)


def test_int8_blocks_and_subias():
    n = 8
    rk = np.clip(_sparse(n, 3 * n, 0.6) * 0.3, -0.99, 0.99)
    bias = _rand(2, 3 * n)
    t = E.dump_gru("g", _rand(4, 3 * n), rk, bias, sparse_recurrent=True, int8=True)
    q, blocks = t["g_rec_wq"], t["g_rec_w"]
    assert q.dtype == np.int8 and q.shape == (len(blocks), 8, 4)       # output-major blocks
    np.testing.assert_array_equal(q, np.clip(np.round(128 * blocks), -128, 127).transpose(0, 2, 1))
    dense_q = E.unpack_blocks(t["g_rec_idx"], q.transpose(0, 2, 1).astype(np.float32), n, 3 * n)
    np.testing.assert_allclose(t["g_subias"], bias[1] - dense_q.sum(0) / 128, atol=1e-5)


def test_blob_round_trip_all_dtypes():
    tensors = {"a": _rand(3, 4), "b": np.arange(-5, 5, dtype=np.int8).reshape(2, 5),
               "c": np.array([1, 2, 3], np.int32), "d": _rand(2, 3, 4, 5)}
    sizes = {k: i + 1 for i, k in enumerate(E.SIZE_KEYS)}
    raw = E.blob_to_bytes(E.WeightBlob(sizes, tensors, E.FLAG_INT8))
    back = E.blob_from_bytes(raw)
    assert back.sizes == sizes and back.has_int8
    for name, value in tensors.items():
        assert back.tensors[name].dtype == value.dtype
        np.testing.assert_array_equal(back.tensors[name], value)


def test_blob_rejects_bad_bytes():
    raw = E.blob_to_bytes(E.WeightBlob({k: 8 for k in E.SIZE_KEYS}, {"a": _rand(40, 8)}))
    for n in (0, 10, 51, len(raw) // 2, len(raw) - 1):
        with pytest.raises(FormatError):
            E.blob_from_bytes(raw[:n])
    for pos in range(0, len(raw), 97):
        bad = bytearray(raw)
        bad[pos] ^= 0x10
        with pytest.raises(FormatError):
            E.blob_from_bytes(bytes(bad))
    with pytest.raises(FormatError, match="magic"):
        E.blob_from_bytes(b"NOTLPCNT" + raw[8:])
    body = bytearray(raw[:-4])
    body[8:12] = struct.pack("<I", 99)
    import zlib

    with pytest.raises(FormatError, match="version"):
        E.blob_from_bytes(bytes(body) + struct.pack("<I", zlib.crc32(body)))


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """A random-init tiny model saved as .keras and as a seed-style .h5."""
    from lpcnet.config import ModelConfig
    from lpcnet.model import build_lpcnet, model_weights, save_seed_h5

    tmp = tmp_path_factory.mktemp("exp")
    cfg = ModelConfig(gru_a=16, gru_b=8)
    model = build_lpcnet(cfg, seed=3).model
    model.save(tmp / "tiny.keras")
    save_seed_h5(model, tmp / "tiny.h5")
    return tmp, cfg, model_weights(model)


def _cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "lpcnet", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_export_cli_full_model_round_trip(tiny_files):
    tmp, cfg, w = tiny_files
    for src in ("tiny.keras", "tiny.h5"):
        out = tmp / f"{src}.bin"
        r = _cli("export", str(tmp / src), str(out), "--int8")
        assert r.returncode == 0, r.stderr
        blob = E.read_blob(out)
        t = blob.tensors
        assert blob.has_int8 and blob.sizes["gru_a"] == 16 and blob.sizes["gru_b"] == 8
        np.testing.assert_allclose(E.load_embedding(t, "embed_pitch"), w["embed_pitch"]["embeddings"])
        np.testing.assert_allclose(E.load_conv1d(t, "conv1")[0], w["feature_conv1"]["kernel"])
        np.testing.assert_allclose(E.load_dense(t, "dense2")[0], w["feature_dense2"]["kernel"])
        ka, rka, ba = E.load_gru(t, "gru_a", 16)
        np.testing.assert_allclose(ka, w["gru_a"]["kernel"][3 * cfg.embed_size:])
        np.testing.assert_allclose(rka, w["gru_a"]["recurrent_kernel"])
        np.testing.assert_allclose(ba, w["gru_a"]["bias"])
        kb, rkb, bb = E.load_gru(t, "gru_b", 8, input_rows=16)
        np.testing.assert_allclose(kb, w["gru_b"]["kernel"])
        np.testing.assert_allclose(rkb, w["gru_b"]["recurrent_kernel"])
        emb, ka_full = w["embed_sig"]["embeddings"], w["gru_a"]["kernel"]
        np.testing.assert_allclose(t["gru_a_embed"][1], emb @ ka_full[128:256], rtol=1e-5, atol=1e-6)
        for got, want in zip(E.load_mdense(t, "md"), w["dual_fc"].values()):
            np.testing.assert_allclose(got, want)


def test_export_cli_bad_checkpoint(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"garbage")
    for src in (tmp_path / "missing.keras", bad):
        out = tmp_path / "o.bin"
        r = _cli("export", str(src), str(out))
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not out.exists()


def test_export_of_a_file_that_is_no_checkpoint_says_what_was_expected(tiny_files, tmp_path, capsys):
    """A zeroed or text checkpoint, and an exported blob given as the checkpoint: one line naming
    the file and what export reads, no HDF5 jargon; nothing written."""
    tmp = tiny_files[0]
    blob = tmp_path / "exported.bin"
    assert E.main([str(tmp / "tiny.keras"), str(blob)]) == 0
    (tmp_path / "zero.bin").write_bytes(b"\0" * 4096)
    (tmp_path / "text.h5").write_text("not weights\n")
    capsys.readouterr()
    for src, words in ((tmp_path / "zero.bin", "expected a Keras checkpoint (.keras zip archive) or "
                        "seed-style weights (.h5, an HDF5 file)"),
                       (tmp_path / "text.h5", "expected a Keras checkpoint"),
                       (blob, "is an exported weight blob; lpcnet export needs the .keras or .h5")):
        assert E.main([str(src), str(tmp_path / "o.bin")]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{src}: {words}" in err[0] and "signature" not in err[0], err
        assert not (tmp_path / "o.bin").exists()


def test_export_h5_writes_the_checkpoints_weights_beside_the_blob(tiny_files, capsys):
    """``lpcnet export --h5``: the .keras checkpoint's weights as a seed-style .h5 (equal to the
    last bit) next to the blob; a missing checkpoint or an --h5 equal to the output writes nothing."""
    from lpcnet.model import read_checkpoint_weights

    tmp, _, w = tiny_files
    assert E.main([str(tmp / "tiny.keras"), str(tmp / "k.bin"), "--h5", str(tmp / "k.h5")]) == 0
    assert "seed-style" in capsys.readouterr().out
    back = read_checkpoint_weights(tmp / "k.h5")
    assert back.keys() == w.keys()
    for layer, variables in w.items():
        for var, value in variables.items():
            np.testing.assert_array_equal(back[layer][var], value)
    assert E.read_blob(tmp / "k.bin").sizes["gru_a"] == 16
    assert E.main([str(tmp / "missing.keras"), str(tmp / "m.bin"), "--h5", str(tmp / "m.h5")]) == 1
    assert "not found" in capsys.readouterr().err
    assert not (tmp / "m.h5").exists() and not (tmp / "m.bin").exists()
    assert E.main([str(tmp / "tiny.keras"), str(tmp / "s.h5"), "--h5", str(tmp / "s.h5")]) == 1
    assert "same file" in capsys.readouterr().err and not (tmp / "s.h5").exists()


def test_export_h5_must_end_in_h5_and_never_replaces_another_kind_of_file(tiny_files, tmp_path, capsys,
                                                                          slice_training_pair):
    """``--h5 X`` with X not ending in .h5 (a features .f32, a weight blob, a text file, a .keras
    checkpoint) is refused in one line before any work: X and the blob output are untouched."""
    tmp = tiny_files[0]
    feats = slice_training_pair[0]
    blob = tmp_path / "exported.bin"
    assert E.main([str(tmp / "tiny.keras"), str(blob)]) == 0
    text = tmp_path / "notes.txt"
    text.write_text("keep me\n")
    capsys.readouterr()
    for target in (feats, blob, text, tmp / "tiny.keras", tmp_path / "new.hdf"):
        before = target.read_bytes() if target.exists() else None
        assert E.main([str(tmp / "tiny.keras"), str(tmp_path / "o.bin"), "--h5", str(target)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"--h5 {target}" in err[0] and "ending in .h5" in err[0], err
        assert (target.read_bytes() if target.exists() else None) == before
        assert not (tmp_path / "o.bin").exists()
