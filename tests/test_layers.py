"""Custom layers, initialiser, constraint, regulariser (docs/model.md) and the block sparsifiers
(lpcnet.sparsity, lpcnet.callbacks; docs/training.md)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lpcnet import callbacks as Cb  # noqa: E402
from lpcnet import layers as Ly  # noqa: E402
from lpcnet import sparsity as Sp  # noqa: E402


def test_pcminit_ramp_noise_and_seed():
    w = np.asarray(Ly.PCMInit(seed=0)((256, 128)))
    assert w.shape == (256, 128) and w.dtype == np.float32
    assert np.array_equal(w, np.asarray(Ly.PCMInit(seed=0)((256, 128))))
    ramp = 0.1 * np.sqrt(12) * (np.arange(256) - 127.5) / 256
    noise = w - ramp[:, None]
    assert np.abs(noise).max() <= 0.1 * 1.7321 + 1e-6
    assert abs(noise.std() - 0.1) < 0.005           # unit-variance uniform noise x gain
    assert Ly.PCMInit.from_config(Ly.PCMInit(0.2, 5).get_config()).get_config() == {"gain": 0.2, "seed": 5}


def test_weightclip_pairs():
    rng = np.random.default_rng(0)
    w = rng.uniform(-1, 1, (6, 8)).astype(np.float32)
    out = np.asarray(Ly.WeightClip(0.992)(keras.ops.convert_to_tensor(w)))
    pair_sum = np.abs(out).reshape(6, 4, 2).sum(-1)
    assert pair_sum.max() <= 0.992 + 1e-6
    small = w * 0.1
    np.testing.assert_allclose(np.asarray(Ly.WeightClip()(keras.ops.convert_to_tensor(small))), small, rtol=1e-6)
    # Pairs over the bound are scaled to exactly c, keeping their ratio.
    big = pair_sum.argmax()
    r, k = divmod(big, 4)
    np.testing.assert_allclose(out[r, 2 * k] / out[r, 2 * k + 1], w[r, 2 * k] / w[r, 2 * k + 1], rtol=1e-5)


def test_quant_regularizer():
    reg = Ly.QuantRegularizer()
    on_grid = np.arange(-10, 10, dtype=np.float32) / 128
    assert float(reg(on_grid)) == pytest.approx(0.01 * 1e-4 ** 0.25, rel=1e-3)
    off_grid = on_grid + 0.5 / 128
    assert float(reg(off_grid)) == pytest.approx(0.01 * 2.0001 ** 0.25, rel=1e-3)


def test_mdense_matches_numpy_and_serialises():
    rng = np.random.default_rng(1)
    layer = Ly.MDense(256, 2, name="dual_fc")
    v = rng.standard_normal((2, 3, 16)).astype(np.float32)
    out = np.asarray(layer(v))
    k, b, f = (np.asarray(x) for x in (layer.kernel, layer.bias, layer.factor))
    assert k.shape == (256, 16, 2) and b.shape == (256, 2) and f.shape == (256, 2)
    t = np.tanh(np.einsum("bti,uic->btuc", v, k) + b)
    ref = 1 / (1 + np.exp(-(t * f).sum(-1)))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    clone = Ly.MDense.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    # Keras glorot rule on the 3-D kernel: limit sqrt(6 / (16*256 + 2*256)).
    assert np.abs(k).max() <= np.sqrt(6 / 4608) + 1e-7


def test_tree_matches_direct_numpy():
    rng = np.random.default_rng(2)
    q = rng.uniform(0.01, 0.99, (2, 5, 256)).astype(np.float32)
    pdf = np.asarray(Ly.TreeToPdf()(q))
    # Direct: walk the tree for each code, MSB first.
    direct = np.ones((2, 5, 256))
    q64 = q.astype(np.float64)
    for v in range(256):
        for b in range(8):
            node = 2 ** b + (v >> (8 - b))
            bit = (v >> (7 - b)) & 1
            direct[..., v] *= q64[..., node] if bit else 1 - q64[..., node]
    np.testing.assert_allclose(pdf, direct, rtol=2e-5)
    np.testing.assert_allclose(Ly.tree_to_pdf_numpy(q), direct, rtol=1e-12)
    np.testing.assert_allclose(pdf.sum(-1), 1.0, rtol=1e-5)
    assert Ly.TreeToPdf.from_config(Ly.TreeToPdf().get_config()).levels == 256


def test_repeat_frames():
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    y = np.asarray(Ly.RepeatFrames(160)(x))
    assert y.shape == (1, 480, 4)
    np.testing.assert_array_equal(y[0, 160:320], np.tile(x[0, 1], (160, 1)))


@pytest.mark.parametrize("layer_fn", [lambda p: Ly.MDense(256, dtype=p), lambda p: Ly.TreeToPdf(dtype=p),
                                      lambda p: Ly.RepeatFrames(160, dtype=p)])
def test_precision_policy(layer_fn):
    """keras-hub style check: output in the compute dtype, variables float32."""
    layer = layer_fn("mixed_bfloat16")
    x = np.random.default_rng(3).uniform(0, 1, (2, 4, 16 if isinstance(layer, Ly.MDense) else 256))
    out = layer(x.astype(np.float32))
    assert keras.backend.standardize_dtype(out.dtype) == layer.compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in layer.weights)


#: Every serialisable object of lpcnet.layers with constructor arguments that differ from the defaults.
CONFIGURED = {
    "PCMInit": lambda: Ly.PCMInit(0.2, seed=5),
    "WeightClip": lambda: Ly.WeightClip(0.5),
    "QuantRegularizer": lambda: Ly.QuantRegularizer(0.02),
    "MDense": lambda: Ly.MDense(64, 3, activation="tanh", name="m"),
    "TreeToPdf": lambda: Ly.TreeToPdf(64, name="t"),
    "RepeatFrames": lambda: Ly.RepeatFrames(80, name="r"),
    "FusedGRU": lambda: Ly.FusedGRU(24, fused=False, return_sequences=True, name="g"),
    "FastGaussianNoise": lambda: Ly.FastGaussianNoise(0.3, seed=7, numpy_draws=False, name="n"),
}


@pytest.mark.parametrize("name", sorted(CONFIGURED))
def test_full_get_config_and_checkpoint_names(name):
    """Each object rebuilds from its config alone, under the name checkpoints store."""
    obj = CONFIGURED[name]()
    config = obj.get_config()
    clone = type(obj).from_config(config)
    assert clone.get_config() == config
    # .keras checkpoints refer to "lpcnet>Name": renaming a class or its package breaks old files.
    assert keras.saving.get_registered_name(type(obj)) == f"lpcnet>{name}"
    assert keras.saving.get_registered_object(f"lpcnet>{name}") is type(obj)


def test_every_serialisable_object_of_the_module_is_covered():
    import inspect

    registered = {n for n, c in inspect.getmembers(Ly, inspect.isclass)
                  if c.__module__ == Ly.__name__ and keras.saving.get_registered_name(c).startswith("lpcnet>")}
    assert registered == set(CONFIGURED)


# --- block sparsification ------------------------------------------------------------
def _blocks_aligned(a, diag=True):
    """Every 4x8 block (diagonal removed) is either all zero or untouched by the mask."""
    eye = np.eye(*a.shape, dtype=bool) if diag else np.zeros(a.shape, bool)
    r, c = a.shape
    nz = ((a != 0) & ~eye).reshape(r // 4, 4, c // 8, 8)
    full = ((a != 0) | eye).reshape(r // 4, 4, c // 8, 8)
    return nz.any(axis=(1, 3)), full.all(axis=(1, 3))


def test_block_mask_density_alignment_and_diagonal():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((32, 32))
    for d in (1.0, 0.5, 0.25, 0.1):
        m = Sp.block_mask(a, d, keep_diagonal=True)
        assert np.all(np.diag(m) == 1)
        pruned = a * m
        assert abs(Sp.block_density(pruned, True) - d) <= 1 / 32 + 1e-9   # 32 blocks of 4x8
        any_, _ = _blocks_aligned(pruned)
        # Aligned: off-diagonal non-zeros only inside kept blocks, which keep all their weights.
        keep = Sp.block_mask(a, d, keep_diagonal=True) * (1 - np.eye(32))
        np.testing.assert_array_equal(pruned * (1 - np.eye(32)), a * keep)
    # Orientation: 4 rows (inputs) x 8 columns (outputs); a strong 4x8 block survives intact.
    a = rng.standard_normal((32, 32)) * 1e-3
    a[8:12, 16:24] = 5.0
    m = Sp.block_mask(a, 1 / 32, keep_diagonal=False)
    assert m[8:12, 16:24].all() and m.sum() == 32


def test_schedule_and_quantize():
    assert Sp.schedule_density(2000, 2000, 40000, 0.05, False) == pytest.approx(1.0)
    assert Sp.schedule_density(40000, 2000, 40000, 0.05, False) == pytest.approx(0.05)
    mid = Sp.schedule_density(21000, 2000, 40000, 0.05, False)
    assert mid == pytest.approx(1 - 0.95 * (1 - 0.5 ** 3))
    w = np.array([3.05 / 128, 3.4 / 128, -2.96 / 128], dtype=np.float32)
    q = Sp.quantize_weights(w, 0.1)
    np.testing.assert_allclose(q, [3 / 128, 3.4 / 128, -3 / 128], rtol=1e-6)
    np.testing.assert_allclose(Sp.quantize_weights(w, 0.5) * 128, [3, 3, -3], atol=1e-5)


def _tiny_model(na=32, nb=16):
    from lpcnet.config import ModelConfig
    from lpcnet.model import build_lpcnet, compile_lpcnet, make_optimizer

    m = build_lpcnet(ModelConfig(gru_a=na, gru_b=nb), seed=0).model
    return compile_lpcnet(m, make_optimizer())


def test_sparsify_callbacks_reach_target_density():
    model = _tiny_model()
    gru_a, gru_b = model.get_layer("gru_a"), model.get_layer("gru_b")
    # Random dense recurrent weights so pruning has something to do.
    rng = np.random.default_rng(5)
    gru_a.cell.recurrent_kernel.assign(rng.uniform(-0.3, 0.3, (32, 96)))
    gru_b.cell.kernel.assign(rng.uniform(-0.3, 0.3, (32 + 128, 48)))
    sp = Cb.Sparsify(0, 6, 2, (0.25, 0.5, 0.75))
    spb = Cb.SparsifyGRUB(0, 6, 2, (0.5, 0.5, 1.0), grua_units=32)
    cond = np.asarray(gru_b.cell.kernel)[32:].copy()
    for cb in (sp, spb):
        cb.set_model(model)
        cb.on_train_begin()
    for step in range(8):
        for cb in (sp, spb):
            cb.on_train_batch_end(step)
    nblocks_a, nblocks_b = 32 * 32 // 32, 32 * 16 // 32
    for got, want in zip(sp.densities(), (0.25, 0.5, 0.75)):
        assert abs(got - want) <= 1 / nblocks_a + 1e-9
    for got, want in zip(spb.densities(), (0.5, 0.5, 1.0)):
        assert abs(got - want) <= 1 / nblocks_b + 1e-9
    rk = np.asarray(gru_a.cell.recurrent_kernel)
    for g in range(3):
        gate = rk[:, g * 32:(g + 1) * 32]
        assert np.all(np.diag(gate) != 0)                   # diagonal always kept
        any_, all_ = _blocks_aligned(gate)
        assert np.array_equal(any_, all_)                    # whole 4x8 blocks pruned
    np.testing.assert_array_equal(np.asarray(gru_b.cell.kernel)[32:], cond)   # conditioning rows untouched


def test_sparsify_quantize_mode_rounds_weights():
    model = _tiny_model(16, 8)
    rng = np.random.default_rng(6)
    model.get_layer("gru_a").cell.recurrent_kernel.assign(rng.uniform(-0.3, 0.3, (16, 48)))
    sp = Cb.Sparsify(0, 2, 1, (1.0, 1.0, 1.0), quantize=True)
    sp.set_model(model)
    sp.on_train_begin()
    for step in range(3):
        sp.on_train_batch_end(step)
    w = np.asarray(model.get_layer("gru_a").cell.recurrent_kernel) * 128
    np.testing.assert_allclose(w, np.round(w), atol=1e-4)    # t >= t_end: threshold 0.5, all snapped
