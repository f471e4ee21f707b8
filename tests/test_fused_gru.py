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


def _training_runs(pair, variants, steps, policy=None, batch=2):
    """Per variant (fused, fold_inputs): the losses of ``steps`` train_on_batch steps on real speech
    from the same initial weights and batches, and the weights after them."""
    from lpcnet.config import ModelConfig
    from lpcnet.data import TrainingLoader
    from lpcnet.model import build_lpcnet, compile_lpcnet, make_optimizer, model_weights

    loader = TrainingLoader(*pair, batch, seed=0)
    cfg = ModelConfig(gru_a=24, gru_b=16, noise_std=0.0)
    out = {}
    for fused, fold in variants:
        keras.utils.set_random_seed(3)
        model = build_lpcnet(cfg, seed=3, fused=fused, dtype_policy=policy).model
        model.fold_inputs = fold
        compile_lpcnet(model, make_optimizer())
        losses = [model.train_on_batch(*loader.batch(i), return_dict=True)["loss"] for i in range(steps)]
        out[fused, fold] = (np.array(losses), model_weights(model))
    return out


def test_training_model_fused_and_plain_take_the_same_step(slice_training_pair):
    """One optimizer step on real speech: the functional graph with Keras GRUs == the kit's step
    (folded GRU inputs, native GRU loops, native output head) == the folded step without native ops."""
    runs = _training_runs(slice_training_pair, [(False, False), (True, True), (False, True)], 1)
    loss_plain, w_plain = runs[False, False]
    for key in ((True, True), (False, True)):
        loss, w = runs[key]
        assert abs(loss_plain[0] - loss[0]) < 1e-5 * abs(loss_plain[0]), key
        for layer, vs in w_plain.items():
            for k, v in vs.items():
                # Adam's first step moves each weight by ~lr = 1e-3; a wrong gradient shows as ~1e-3.
                assert np.abs(v - w[layer][k]).max() < 2e-5, f"{key} {layer}/{k}"


@pytest.mark.parametrize("policy,tol", [(None, 2e-5), ("mixed_bfloat16", 2e-3)])
def test_loss_curves_of_the_folded_step_follow_the_plain_graph(slice_training_pair, policy, tol):
    """Six steps on real speech, same seed and batches: the kit's step (embedding fold, native ops)
    and the plain functional graph give the same loss curve (float32: to rounding; bfloat16:
    within its precision, the products rounded in other places)."""
    runs = _training_runs(slice_training_pair, [(False, False), (True, True)], 6, policy=policy)
    plain, ours = runs[False, False][0], runs[True, True][0]
    assert plain[-1] < plain[0]                      # the curve goes down: it measures learning
    np.testing.assert_allclose(ours, plain, rtol=tol)


def _concat_input(codes, embeddings, dense, frames, frame_size):
    parts = []
    if codes is not None:
        e = tf.gather(embeddings, codes)                               # (B, T, k, width)
        parts.append(tf.reshape(e, tf.concat([tf.shape(codes)[:2], [-1]], 0)))
    if dense is not None:
        parts.append(dense)
    parts.append(tf.repeat(frames, frame_size, axis=1))
    return tf.concat(parts, axis=-1)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("kind", ["codes", "dense"])
def test_call_parts_is_the_layer_on_the_concatenated_input(fused, kind):
    """FusedGRU.call_parts (tables gathered by code, frames projected once per frame) gives the
    outputs and the gradients (embeddings, kernel, recurrent kernel, biases, frames, dense) of
    the same layer called on the concatenated input, with the native kernel and without."""
    rng = np.random.default_rng(7)
    B, F, fs, units, width, cond = 3, 4, 5, 12, 6, 5
    codes = tf.constant(rng.integers(0, 16, (B, F * fs, 3)).astype("int32")) if kind == "codes" else None
    emb = tf.Variable(rng.standard_normal((16, width)).astype("float32"))
    dense = tf.constant(rng.standard_normal((B, F * fs, 7)).astype("float32")) if kind == "dense" else None
    frames = tf.constant(rng.standard_normal((B, F, cond)).astype("float32"))
    in_dim = (3 * width if kind == "codes" else 7) + cond
    layer = FusedGRU(units, return_sequences=True, return_state=True, fused=fused)
    layer.build((None, None, in_dim))
    for w in layer.weights:
        w.assign((0.4 * rng.standard_normal(w.shape)).astype("float32"))
    w_out = tf.constant(rng.standard_normal((B, F * fs, units)).astype("float32"))
    watched = [x for x in (dense, frames) if x is not None]
    results = []
    for folded in (False, True):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(watched)
            if folded:
                out = layer.call_parts(codes=codes, embeddings=emb if codes is not None else None,
                                       dense=dense, frames=frames, frame_size=fs)
            else:
                out = layer(_concat_input(codes, emb, dense, frames, fs))[0]
            loss = tf.reduce_sum(out * w_out)
        grads = tape.gradient(loss, [*layer.trainable_weights, emb, *watched])
        results.append((out.numpy(), [None if g is None else tf.convert_to_tensor(g).numpy() for g in grads]))
    (o1, g1), (o2, g2) = results
    assert o1.shape == (B, F * fs, units) and np.abs(o1 - o2).max() < 2e-6
    for i, (a, b) in enumerate(zip(g1, g2)):
        if a is None:                                   # the embeddings without codes
            assert b is None
            continue
        assert np.abs(a - b).max() <= 2e-5 * max(1.0, np.abs(a).max()), i


def test_folded_model_gives_the_graph_pdf_and_dense_gradients(slice_training_pair):
    """LPCNetModel.call with the GRU inputs folded == the functional graph, on real speech: the
    pdf and the gradient of every weight, float32 and bfloat16; the gradients of the embedding
    and of GRU A's kernel are dense tensors (what Horovod's allreduce and Adam get)."""
    from lpcnet.config import ModelConfig
    from lpcnet.data import TrainingLoader
    from lpcnet.model import build_lpcnet

    x, y = TrainingLoader(*slice_training_pair, 2, seed=0).batch(3)
    for policy, tol in ((None, 1e-5), ("mixed_bfloat16", 0.03)):
        model = build_lpcnet(ModelConfig(gru_a=24, gru_b=16, noise_std=0.0), seed=2, dtype_policy=policy).model
        out = {}
        for fold in (False, True):
            model.fold_inputs = fold
            with tf.GradientTape() as tape:
                pdf = model(x, training=True)
                p_y = tf.gather(tf.reshape(pdf, [-1, 256]), tf.reshape(y, [-1]), batch_dims=1)
                loss = -tf.reduce_mean(tf.math.log(p_y))
            grads = tape.gradient(loss, model.trainable_variables)
            out[fold] = (pdf.numpy(), grads)
        assert np.abs(out[False][0] - out[True][0]).max() < tol * 0.01, policy
        for v, a, b in zip(model.trainable_variables, out[False][1], out[True][1]):
            if v.path.startswith(("embed_sig", "gru_a")):
                assert isinstance(b, tf.Tensor), v.path
            a, b = tf.convert_to_tensor(a).numpy(), tf.convert_to_tensor(b).numpy()
            assert np.abs(a - b).max() <= tol * np.abs(a).max(), (policy, v.path)


@pytest.mark.parametrize("pdf_term", [False, True])
def test_native_head_is_mdense_tree_and_keras_loss(pdf_term):
    """fused_gru.tree_head == MDense -> TreeToPdf -> SparseCategoricalCrossentropy: the pdf, the
    per-sample loss (with pdf values below the clip at 1e-7) and the gradients: of the mean loss
    (the forward pass's own gradients) and with a term in the pdf too (a second native pass)."""
    from lpcnet.fused_gru import tree_head
    from lpcnet.layers import MDense, TreeToPdf

    rng = np.random.default_rng(0)
    dual = MDense(256, 2, activation="sigmoid")
    dual.build((None, None, 16))
    for w in dual.weights:
        w.assign((rng.standard_normal(w.shape) * (2.0 if "kernel" in w.path else 1.0)).astype("float32"))
    v = tf.constant(rng.standard_normal((3, 40, 16)).astype("float32"))
    y = tf.constant(rng.integers(0, 256, (3, 40, 1)).astype("int32"))
    w_pdf = tf.constant(rng.standard_normal((3, 40, 256)).astype("float32"))
    results = []
    for native in (False, True):
        with tf.GradientTape() as tape:
            tape.watch(v)
            if native:
                pdf, per_sample = tree_head(v, dual.kernel, dual.bias, dual.factor, y)
                loss = tf.reduce_mean(per_sample)
            else:
                pdf = TreeToPdf(256)(dual(v))
                loss = keras.losses.SparseCategoricalCrossentropy()(y, pdf)
            total = loss + 0.01 * tf.reduce_sum(pdf * w_pdf) if pdf_term else loss
        grads = tape.gradient(total, [v, *dual.trainable_weights])
        results.append((pdf.numpy(), float(loss), [g.numpy() for g in grads]))
    (p1, l1, g1), (p2, l2, g2) = results
    assert p1.min() < 1e-7                              # the clip is active somewhere
    assert np.abs(p1 - p2).max() < 1e-6 and abs(l1 - l2) < 1e-5 * l1
    for a, b in zip(g1, g2):
        assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max()


def test_old_checkpoint_graph_loads_on_the_folded_path_and_resumes(tmp_path, slice_training_pair):
    """The fold changes no weight, layer or graph: a .keras checkpoint (the graph every earlier
    checkpoint stores) loads as an LPCNetModel whose call folds, gives the graph's pdf, and
    continues training from its optimizer step."""
    from lpcnet.config import ModelConfig
    from lpcnet.data import TrainingLoader
    from lpcnet.model import WEIGHT_LAYERS, build_lpcnet, compile_lpcnet, make_optimizer, model_weights

    loader = TrainingLoader(*slice_training_pair, 2, seed=0)
    model = build_lpcnet(ModelConfig(gru_a=16, gru_b=16), seed=1).model
    compile_lpcnet(model, make_optimizer())
    model.train_on_batch(*loader.batch(0))
    model.save(tmp_path / "run_16_01.keras")
    loaded = keras.saving.load_model(tmp_path / "run_16_01.keras")
    assert type(loaded) is type(model) and int(loaded.optimizer.iterations.numpy()) == 1
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert set(model_weights(loaded)) == set(WEIGHT_LAYERS)
    x, y = loader.batch(1)
    pdfs = []
    for fold in (False, True):
        loaded.fold_inputs = fold
        pdfs.append(loaded(x, training=False).numpy())
    np.testing.assert_allclose(pdfs[1], pdfs[0], atol=1e-6)
    loss = loaded.train_on_batch(x, y, return_dict=True)["loss"]
    assert np.isfinite(loss) and int(loaded.optimizer.iterations.numpy()) == 2


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


@pytest.mark.slow
def test_bench_train_prints_both_ratios(slice_training_pair, capsys):
    """`lpcnet bench train` on a tiny model: the three variants, and the two ratios of issue 11
    (ours / plain Keras fit, bf16 AMP / FP32) by wall time and by CPU time."""
    from lpcnet.bench import bench_train

    r = bench_train(gru_a=16, gru_b=8, batch=2, steps=2, warmup=1, rounds=2,
                    features=slice_training_pair[0], data=slice_training_pair[1])
    assert set(r["ratios"]) == set(r["cpu_ratios"]) == {"ours_over_plain_fp32", "amp_bf16_over_fp32"}
    v = r["variants"]
    assert r["cpu_ratios"]["amp_bf16_over_fp32"] == pytest.approx(
        v["ours_fp32"]["cpu_s_per_step_median"] / v["ours_amp_bf16"]["cpu_s_per_step_median"])
    out = capsys.readouterr().out
    assert "ours_fp32 / keras_fit_fp32:" in out and "ours_amp_bf16 / ours_fp32:" in out
    assert out.count("x CPU time (issue 11 target >=") == 2
