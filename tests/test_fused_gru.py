"""The fused native GRU loop (lpcnet.fused_gru, layers.FusedGRU) against keras.layers.GRU."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from lpcnet import fused_gru
from lpcnet.layers import FusedGRU


def _pair(units, in_dim, seed):
    """A keras.layers.GRU and a FusedGRU with the same random weights."""
    rng = np.random.default_rng(seed)
    opts = dict(return_sequences=True, return_state=True, reset_after=True)
    ref, fused = keras.layers.GRU(units, **opts), FusedGRU(units, **opts)
    ref.build((None, None, in_dim))
    fused.build((None, None, in_dim))
    for a, b in zip(ref.weights, fused.weights):
        value = (0.4 * rng.standard_normal(a.shape)).astype("float32")
        a.assign(value)
        b.assign(value)
    return ref, fused


def _outputs_and_grads(layer, x, h0, w):
    with tf.GradientTape() as tape:
        tape.watch([x, h0])
        out, state = layer(x, initial_state=[h0])
        # Gradients reach every output step and the final state.
        loss = tf.reduce_sum(out * w) + tf.reduce_sum(state ** 2)
    grads = tape.gradient(loss, [x, h0, *layer.trainable_weights])
    return out.numpy(), state.numpy(), [g.numpy() for g in grads]


@pytest.mark.parametrize("simd", [0, 3])   # LPCNET_SIMD_SCALAR, LPCNET_SIMD_AVX512
@pytest.mark.parametrize("batch,steps,in_dim,units", [(3, 40, 20, 16), (5, 25, 33, 37), (19, 12, 8, 24)])
def test_fused_gru_matches_keras_gru_forward_and_gradients(simd, batch, steps, in_dim, units):
    lib = fused_gru.load_library()
    level = lib.lpcnet_gru_set_simd_level(simd)
    try:
        rng = np.random.default_rng(batch)
        x = tf.constant(rng.standard_normal((batch, steps, in_dim)).astype("float32"))
        h0 = tf.constant(0.5 * rng.standard_normal((batch, units)).astype("float32"))
        w = tf.constant(rng.standard_normal((batch, steps, units)).astype("float32"))
        ref, fused = _pair(units, in_dim, seed=units)
        o1, s1, g1 = _outputs_and_grads(ref, x, h0, w)
        o2, s2, g2 = _outputs_and_grads(fused, x, h0, w)
        assert level == simd or simd == 3          # level 3 only where the CPU has AVX-512
        assert np.abs(o1 - o2).max() < 2e-6 and np.abs(s1 - s2).max() < 2e-6
        names = ["x", "h0", "kernel", "recurrent_kernel", "bias"]
        for name, a, b in zip(names, g1, g2):
            assert a.shape == b.shape, name
            assert np.abs(a - b).max() <= 1e-5 * max(1.0, np.abs(a).max()), name
    finally:
        lib.lpcnet_gru_set_simd_level(-1)         # back to the best the CPU has


def test_fused_gru_threads_give_identical_results(monkeypatch):
    rng = np.random.default_rng(1)
    B, T, H = 7, 30, 20
    xp = rng.standard_normal((B, T, 3 * H)).astype("float32")
    U = (0.3 * rng.standard_normal((H, 3 * H))).astype("float32")
    b = rng.standard_normal(3 * H).astype("float32")
    h0 = rng.standard_normal((B, H)).astype("float32")
    dh = rng.standard_normal((B, T, H)).astype("float32")
    results = []
    for threads in ("1", "3"):
        monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", threads)
        h, cache = fused_gru.forward(xp, U, b, h0)
        results.append((h, *fused_gru.backward(dh, h, h0, cache, U)))
    for a, b_ in zip(*results):
        np.testing.assert_array_equal(a, b_)
    # Sequences are independent: one row alone gives the same outputs as in the batch.
    h1, _ = fused_gru.forward(xp[2:3], U, b, h0[2:3])
    np.testing.assert_array_equal(h1[0], results[0][0][2])


def test_training_model_fused_and_plain_take_the_same_step(slice_training_pair):
    """One optimizer step of the LPCNet training model on real speech: fused == Keras GRU."""
    from lpcnet.config import ModelConfig
    from lpcnet.data import TrainingLoader
    from lpcnet.model import build_lpcnet, compile_lpcnet, make_optimizer, model_weights

    features, data = slice_training_pair
    loader = TrainingLoader(features, data, 2, seed=0)
    batch = loader.batch(0)
    cfg = ModelConfig(gru_a=24, gru_b=16, noise_std=0.0)
    results = []
    for fused in (False, True):
        keras.utils.set_random_seed(3)
        model = build_lpcnet(cfg, seed=3, fused=fused).model
        assert {type(layer).__name__ for layer in model.layers if layer.name in ("gru_a", "gru_b")} == {"FusedGRU"}
        compile_lpcnet(model, make_optimizer())
        logs = model.train_on_batch(*batch, return_dict=True)
        results.append((logs["loss"], model_weights(model)))
    (loss_plain, w_plain), (loss_fused, w_fused) = results
    assert abs(loss_plain - loss_fused) < 1e-4 * abs(loss_plain)
    for layer, vs in w_plain.items():
        for k, v in vs.items():
            # Adam's first step moves each weight by ~lr = 1e-3; a wrong gradient shows as ~1e-3.
            assert np.abs(v - w_fused[layer][k]).max() < 2e-5, f"{layer}/{k}"


def test_fused_gru_round_trips_through_a_keras_checkpoint(tmp_path):
    layer = FusedGRU(8, return_sequences=True, fused=False, name="g")
    model = keras.Sequential([keras.Input((None, 4)), layer])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    g = loaded.get_layer("g")
    assert isinstance(g, FusedGRU) and g.fused is False
    x = np.random.default_rng(0).standard_normal((2, 5, 4)).astype("float32")
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)


def test_benchmark_baseline_is_the_same_network_written_plainly(slice_training_pair):
    """`lpcnet bench train` compares like with like: the plain model gives our loss."""
    from lpcnet.config import ModelConfig
    from lpcnet.data import TrainingLoader
    from lpcnet.bench.baselines import EinsumMDense, GatherTreeToPdf, plain_keras_model
    from lpcnet.model import build_lpcnet, compile_lpcnet, make_optimizer

    features, data = slice_training_pair
    x, y = TrainingLoader(features, data, 2, seed=0).batch(1)
    ours = build_lpcnet(ModelConfig(gru_a=24, gru_b=16, noise_std=0.0), seed=5).model
    plain = plain_keras_model(ours)
    kinds = {layer.name: type(layer) for layer in plain.layers}
    assert kinds["gru_a"] is keras.layers.GRU and kinds["gru_b"] is keras.layers.GRU
    assert kinds["dual_fc"] is EinsumMDense and kinds["tree_to_pdf"] is GatherTreeToPdf
    losses = []
    for model in (ours, plain):
        compile_lpcnet(model, make_optimizer())
        losses.append(model.evaluate(x, y, verbose=0, return_dict=True)["loss"])
    assert abs(losses[0] - losses[1]) < 1e-5 * losses[0], losses


def test_fast_gaussian_noise_is_seeded_normal_noise_only_in_training():
    from lpcnet.layers import FastGaussianNoise

    x = np.zeros((4, 600, 32), "float32")
    draws = []
    for _ in range(2):
        layer = FastGaussianNoise(0.5, seed=11)
        draws.append([np.asarray(layer(x, training=True)) for _ in range(2)])
    (a1, a2), (b1, b2) = draws
    np.testing.assert_array_equal(a1, b1)               # same seed, same stream
    assert not np.array_equal(a1, a2)                  # the stream advances per call
    assert abs(a1.std() - 0.5) < 0.01 and abs(a1.mean()) < 0.01
    np.testing.assert_array_equal(np.asarray(FastGaussianNoise(0.5, seed=11)(x + 1, training=False)), x + 1)
    # Gradients pass straight through the additive noise.
    t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(t)
        y = tf.reduce_sum(FastGaussianNoise(0.1, seed=1)(t, training=True) * 3.0)
    np.testing.assert_array_equal(tape.gradient(y, t).numpy(), np.full_like(x, 3.0))


def test_bf16_products_stay_close_to_float32():
    """AMP path: bfloat16 operands in the per-step products (AVX512-BF16), float32 sums."""
    lib = fused_gru.load_library()
    if lib.lpcnet_gru_simd_level() < 4:        # LPCNET_SIMD_AVX512_BF16
        pytest.skip("this CPU has no AVX512-BF16: the bf16 flag falls back to float32")
    rng = np.random.default_rng(4)
    B, T, H = 5, 200, 37                          # odd H: pair padding of the K dimension
    xp = rng.standard_normal((B, T, 3 * H)).astype("float32")
    U = (0.3 * rng.standard_normal((H, 3 * H))).astype("float32")
    b = (0.1 * rng.standard_normal(3 * H)).astype("float32")
    h0 = (0.5 * rng.standard_normal((B, H))).astype("float32")
    dh = rng.standard_normal((B, T, H)).astype("float32")
    out = {}
    for bf16 in (False, True):
        h, cache = fused_gru.forward(xp, U, b, h0, bf16=bf16)
        out[bf16] = (h, *fused_gru.backward(dh, h, h0, cache, U, bf16=bf16))
    assert not np.array_equal(out[False][0], out[True][0])      # the flag takes effect
    for a, c in zip(out[False], out[True]):
        # bfloat16 keeps 8 significant bits: ~0.4 % per product, sums in float32.
        assert np.abs(a - c).max() <= 0.03 * np.abs(a).max()


def test_kernel_under_address_and_undefined_behaviour_sanitizers(tmp_path):
    """native/tests/test_gru_asan.c: all SIMD levels, bf16, threads, odd sizes vs a double reference."""
    import subprocess
    from pathlib import Path

    native = Path(__file__).resolve().parents[1] / "native"
    res = subprocess.run(["make", "-s", "-C", str(native), "asan-gru", f"BUILD={tmp_path}"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert res.stdout.strip().endswith("ok")
