"""The end-to-end variant (``--end2end``, docs/model.md): rc2lpc / lpc2preds / continuous codes /
interpolating embedding and the loss against their NumPy references, LPC round trips on real
speech (librosa, scipy), finite-difference gradients, the loss by hand, training on
``dump-data --end2end`` data, checkpoints that keep the variant, mismatch errors, and the Keras
synthesis engine taking its LPCs from the network."""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from lpcnet import cli  # noqa: E402
from lpcnet import end2end as E  # noqa: E402
from lpcnet.config import ModelConfig, TrainConfig, save_config  # noqa: E402
from lpcnet.errors import LpcnetError  # noqa: E402
from lpcnet.formats import FRAME_SIZE, LPC, lin2ulaw, ulaw2lin  # noqa: E402
from lpcnet.model import (  # noqa: E402
    _fold_layers, assign_weights, build_lpcnet, compile_lpcnet, config_from_weights, is_end2end,
    is_end2end_model, make_optimizer, model_weights, read_checkpoint_weights, save_seed_h5,
    write_seed_h5)
from lpcnet.train import train  # noqa: E402

TINY = ModelConfig(gru_a=16, gru_b=8)
TINY_E2E = TINY.replace(end2end=True)
LN256 = np.log(256.0)


@pytest.fixture(scope="module")
def speech(train_wav) -> np.ndarray:
    """The training utterance as int16-scale float64 samples."""
    from lpcnet.audio import load_speech
    from lpcnet.formats import float_to_int16

    x, _ = load_speech(train_wav)
    return float_to_int16(x).astype(np.float64)


@pytest.fixture(scope="module")
def e2e_pair(tmp_path_factory, train_s16):
    """``(features.f32, data.u8)`` of ``dump-data --end2end -train`` (byte 3 = µ-law of s[n])."""
    from lpcnet.features import dump_data

    out = tmp_path_factory.mktemp("e2e_pair")
    feats, data = out / "features.f32", out / "data.u8"
    dump_data(train_s16, feats, data, mode="train", seed=0, progress=False, end2end=True)
    return feats, data


def _speech_lpcs(speech, starts, order=16):
    """librosa LPCs a_1..a_order (A(z) = 1 + sum a z^-k) of Hann-windowed 20 ms frames."""
    import librosa

    win = np.hanning(2 * FRAME_SIZE)
    return np.stack([librosa.lpc(speech[s:s + 2 * FRAME_SIZE] * win, order=order)[1:] for s in starts])


# --- the recursion and the prediction ------------------------------------------------------
def test_step_up_recursion_matches_reference_and_hand_values(rng):
    k = rng.uniform(-0.95, 0.95, (3, 5, 16))
    cond = np.concatenate([k, rng.uniform(-1, 1, (3, 5, 112))], axis=-1)   # 16 of the 128 values
    got = np.asarray(E.RC2LPC(dtype="float64")(cond))
    np.testing.assert_allclose(got, E.rc2lpc_numpy(k), rtol=0, atol=1e-13)
    # Order 2 and 3 by hand: a^(2) = [k1 + k2 k1, k2]; a^(3) = [a1 + k3 a2, a2 + k3 a1, k3].
    k1, k2, k3 = 0.5, -0.3, 0.2
    a2 = [k1 + k2 * k1, k2]
    np.testing.assert_allclose(E.rc2lpc_numpy([k1, k2]), a2)
    np.testing.assert_allclose(np.asarray(E.RC2LPC(3, dtype="float64")(np.array([[k1, k2, k3]]))),
                               [[a2[0] + k3 * a2[1], a2[1] + k3 * a2[0], k3]], atol=1e-15)
    np.testing.assert_allclose(E.lpc2rc_numpy(E.rc2lpc_numpy(k)), k, atol=1e-10)


def test_lpc_round_trip_on_real_speech(speech):
    """librosa LPCs of real speech -> reflection coefficients (step-down) -> rc2lpc gives them back."""
    starts = np.arange(4000, len(speech) - 2 * FRAME_SIZE, 3000)
    a = _speech_lpcs(speech, starts)
    k = E.lpc2rc_numpy(a)
    assert np.all(np.abs(k) < 1) and np.abs(k).max() > 0.9        # minimum phase, strongly resonant
    np.testing.assert_allclose(E.rc2lpc_numpy(k), a, atol=1e-9)
    got32 = np.asarray(E.RC2LPC()(k.astype(np.float32)))           # the float32 layer of training
    np.testing.assert_allclose(got32, a, atol=2e-4 * np.abs(a).max())


def test_lpc2preds_is_the_lpc_predictor_of_the_past_signal(speech):
    """The prediction of sample n uses the 16 samples before it (byte 0 of record n is the previous
    sample): scipy's lfilter with b = [0, -a_1, ..., -a_16] on the same signal gives it, and on
    real speech it removes most of the energy."""
    from scipy.signal import lfilter

    frames = 12
    seg = speech[16000:16000 + frames * FRAME_SIZE]
    codes = lin2ulaw(seg)                                           # the signal at n
    sig = np.concatenate([[128], codes[:-1]])[None]                 # byte 0: the previous sample
    a = _speech_lpcs(speech, [15920])[0]
    lpc = np.tile(a, (1, frames, 1))
    pred = np.asarray(E.LPC2Preds(FRAME_SIZE, dtype="float64")([sig[..., None], lpc]))[0, :, 0]
    want = lfilter(np.concatenate([[0.0], -a]), [1.0], ulaw2lin(codes))
    np.testing.assert_allclose(pred, want, rtol=1e-9, atol=1e-6)
    residual = ulaw2lin(codes) - pred
    assert np.sum(residual ** 2) < 0.2 * np.sum(ulaw2lin(codes) ** 2)
    # Per-frame LPCs: each frame's samples use that frame's coefficients (NumPy reference).
    lpcs = _speech_lpcs(speech, 15920 + FRAME_SIZE * np.arange(frames))[None]
    pred = np.asarray(E.LPC2Preds(FRAME_SIZE, dtype="float64")([sig[..., None], lpcs]))[..., 0]
    np.testing.assert_allclose(pred, E.lpc2preds_numpy(sig, lpcs, FRAME_SIZE), rtol=1e-12, atol=1e-8)
    j = 5 * FRAME_SIZE + 7
    x = ulaw2lin(sig[0])
    assert pred[0, j] == pytest.approx(-np.dot(lpcs[0, 5], x[j - np.arange(16)]), rel=1e-12)


def test_excitation_codes_shift_with_zero_fill(rng, e2e_pair):
    from lpcnet.formats import read_data

    data = np.asarray(read_data(e2e_pair[1]))[5000:5000 + 2 * 640].reshape(2, 640, 4)
    sig = data[..., 0].astype(np.float64)
    pred = rng.normal(0, 3000, (2, 640, 1))
    got = np.asarray(E.ExcitationCodes(dtype="float64")([data.astype(np.int32), pred]))
    ref = E.excitation_codes_numpy(sig, pred[..., 0])
    np.testing.assert_allclose(got, ref, atol=1e-9)
    np.testing.assert_array_equal(got[..., 0], sig)
    np.testing.assert_allclose(got[..., 1], E.lin2ulaw_continuous_numpy(pred[..., 0]), atol=1e-9)
    # Sample 0 has no previous prediction (0, not the wrap-around pred[T-1]); sample 1 uses pred[0].
    np.testing.assert_allclose(got[:, 0, 2], sig[:, 0], atol=1e-9)
    np.testing.assert_allclose(got[:, 1, 2], E.lin2ulaw_continuous_numpy(ulaw2lin(sig[:, 1]) - pred[:, 0, 0]),
                               atol=1e-9)
    # Continuous µ-law: the exact codes at integers (formats), no rounding in between.
    u = np.arange(256)
    np.testing.assert_allclose(E.ulaw2lin_continuous_numpy(u), ulaw2lin(u), rtol=1e-12)
    x = ulaw2lin(u[1:]) * 0.999
    assert np.all(np.abs(E.lin2ulaw_continuous_numpy(x) - lin2ulaw(x)) <= 0.5)
    np.testing.assert_allclose(np.asarray(E.lin2ulaw_continuous(tf.constant(x))),
                               E.lin2ulaw_continuous_numpy(x), atol=1e-9)
    np.testing.assert_allclose(np.asarray(E.ulaw2lin_continuous(tf.constant(u + 0.3))),
                               E.ulaw2lin_continuous_numpy(u + 0.3), rtol=1e-9)


def test_interpolating_embedding_equals_lookup_at_integer_codes(rng):
    layer = E.InterpEmbedding(256, 8)
    codes = np.arange(256).reshape(1, 256, 1)
    out = np.asarray(layer(codes.astype(np.int32)))
    table = np.asarray(layer.embeddings)
    np.testing.assert_array_equal(out[0, :, 0], table)               # exactly the plain lookup
    plain = keras.layers.Embedding(256, 8)
    plain.build((None,))
    plain.embeddings.assign(table)
    np.testing.assert_array_equal(np.asarray(plain(codes)), out)
    c = np.array([[[3.25, 254.5, 255.0, 0.0]]])
    got = np.asarray(layer(c))[0, 0]
    np.testing.assert_allclose(got[0], 0.75 * table[3] + 0.25 * table[4], rtol=1e-6)
    np.testing.assert_allclose(got[1], 0.5 * table[254] + 0.5 * table[255], rtol=1e-6)
    np.testing.assert_allclose(got[2], table[255], rtol=1e-6)
    c = rng.uniform(0, 255, (2, 7, 3))
    np.testing.assert_allclose(np.asarray(layer(c)), E.interp_lookup_numpy(c, table), rtol=1e-5, atol=2e-6)


# --- gradients --------------------------------------------------------------------------------
def _check_gradient(fn, x, rng, h=1e-6, rtol=1e-5, atol=1e-7, at=None):
    """d fn(x) . w / dx by GradientTape against central differences (float64), at every entry of
    x or at the index tuples ``at``."""
    x = np.asarray(x, np.float64)
    xt = tf.Variable(x)
    w = rng.standard_normal(np.shape(fn(tf.constant(x))))
    with tf.GradientTape() as tape:
        scalar = tf.reduce_sum(fn(xt) * w)
    grad = tape.gradient(scalar, xt)
    grad = np.asarray(tf.convert_to_tensor(grad))
    at = list(np.ndindex(x.shape)) if at is None else [tuple(i) for i in at]
    num = np.zeros(len(at))
    for n, i in enumerate(at):
        d = np.zeros_like(x)
        d[i] = h
        num[n] = (np.sum(np.asarray(fn(tf.constant(x + d))) * w)
                  - np.sum(np.asarray(fn(tf.constant(x - d))) * w)) / (2 * h)
    got = np.array([grad[i] for i in at])
    np.testing.assert_allclose(got, num, rtol=rtol, atol=atol)
    assert np.abs(got).max() > 0


def test_gradients_by_finite_differences(rng):
    f64 = {"dtype": "float64"}
    # µ-law (away from the kink at 0 / 128 and the clip).
    _check_gradient(E.lin2ulaw_continuous, rng.uniform(50, 20000, 6) * rng.choice([-1, 1], 6), rng)
    _check_gradient(E.ulaw2lin_continuous, rng.uniform(130, 250, 6), rng, h=1e-5, rtol=1e-6)
    # rc2lpc.
    _check_gradient(E.RC2LPC(**f64), rng.uniform(-0.9, 0.9, (2, 3, 20)), rng)
    # lpc2preds with respect to the LPCs (the signal codes are data).
    sig = rng.integers(0, 256, (2, 2 * 32, 1))
    lpc2preds = E.LPC2Preds(32, **f64)
    _check_gradient(lambda a: lpc2preds([sig, a]) / 1000.0, rng.uniform(-1, 1, (2, 2, 16)), rng)
    # The three codes with respect to the prediction.
    codes = E.ExcitationCodes(**f64)
    _check_gradient(lambda p: codes([sig, p]), rng.normal(0, 2000, (2, 64, 1)), rng, h=1e-3, rtol=1e-5)
    # Interpolating embedding: positions and table.
    emb = E.InterpEmbedding(256, 4, **f64)
    table = rng.standard_normal((256, 4))
    emb.build(None)
    emb.embeddings.assign(table)
    pos = rng.integers(0, 255, (2, 5)) + rng.uniform(0.1, 0.9, (2, 5))    # off the kinks at integers
    _check_gradient(emb, pos, rng)
    # The loss, with respect to the prediction code and the pdf.
    y = rng.integers(20, 236, (2, 6, 1))
    pdf = rng.uniform(0.1, 1, (2, 6, 256))
    pdf /= pdf.sum(-1, keepdims=True)
    pred_code = rng.uniform(100, 156, (2, 6, 1))
    loss = E.InterpMulawLoss(gamma=2.0, reduction=None, dtype="float64")
    _check_gradient(lambda p: loss(y, tf.concat([p, pdf], -1)), pred_code, rng, h=1e-6, rtol=1e-4)
    # The pdf: the entries at floor(e) and floor(e) + 1 of every sample, and a few others (0).
    lo = np.clip(np.floor(E.excitation_target_numpy(y[..., 0], pred_code[..., 0])), 0, 254).astype(int)
    at = [(b, t, i + o) for (b, t), i in np.ndenumerate(lo) for o in (0, 1)]
    at += [tuple(i) for i in rng.integers(0, [2, 6, 256], (10, 3))]
    _check_gradient(lambda q: loss(y, tf.concat([pred_code, q], -1)), pdf, rng, h=1e-8, rtol=1e-4,
                    atol=1e-5, at=at)


def test_interpolating_embedding_gradient_reaches_both_rows():
    emb = E.InterpEmbedding(256, 2, dtype="float64")
    emb.build(None)
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(emb(tf.constant([[10.25]], tf.float64)))
    g = np.asarray(tf.convert_to_tensor(tape.gradient(out, emb.embeddings)))
    np.testing.assert_allclose(g[10], [0.75, 0.75])
    np.testing.assert_allclose(g[11], [0.25, 0.25])
    assert np.count_nonzero(g) == 4


# --- loss and metrics -------------------------------------------------------------------------
def test_loss_hand_computed():
    """e = 130 exactly (prediction 0): -ln P[130] + gamma (2/128) ln 256; a fractional e."""
    pdf = np.full(256, 1 / 256)
    y_pred = np.concatenate([[128.0], pdf])[None, None]              # prediction code 128 = 0
    loss = E.InterpMulawLoss(gamma=2.0)
    got = float(loss(np.array([[[130]]]), y_pred.astype(np.float32)))
    assert got == pytest.approx(LN256 + 2.0 * (2 / 128) * LN256, rel=1e-6)
    # e = 130.25: the signal code 131 and a prediction chosen so that the excitation is 130.25.
    p = float(ulaw2lin(131)) - float(E.ulaw2lin_continuous_numpy(130.25))
    p_code = float(E.lin2ulaw_continuous_numpy(p))
    pdf = np.full(256, (1 - 0.4) / 254)
    pdf[130], pdf[131] = 0.3, 0.1                                    # interpolated: 0.75*0.3 + 0.25*0.1
    y_pred = np.concatenate([[p_code], pdf])[None, None]
    want = -np.log(0.25) + 1.5 * (2.25 / 128) * LN256
    assert float(E.InterpMulawLoss(gamma=1.5)(np.array([[[131]]]), y_pred)) == pytest.approx(want, rel=1e-5)
    assert E.interp_mulaw_numpy([[131]], y_pred, gamma=1.5)[0, 0] == pytest.approx(want, rel=1e-9)
    # Metrics on the same sample: e rounds to 130 -> -ln 0.3; variance 2.25^2; gamma 1.
    cases = {"cross_entropy": -np.log(0.3), "interp_cross_entropy": -np.log(0.25),
             "excitation_variance": 2.25 ** 2, "loss_gamma1": -np.log(0.25) + (2.25 / 128) * LN256,
             "accuracy": 1.0}
    for name, value in cases.items():
        assert float(E.METRICS[name](np.array([[[131]]]), y_pred)[0, 0]) == pytest.approx(value, rel=1e-4)


def test_loss_and_metrics_match_numpy_reference(rng):
    y = rng.integers(0, 256, (3, 50, 1))
    pdf = rng.dirichlet(np.ones(256), (3, 50))
    y_pred = np.concatenate([rng.uniform(0, 255, (3, 50, 1)), pdf], -1)
    for gamma in (0.0, 2.0):
        got = float(E.InterpMulawLoss(gamma, dtype="float64")(y, y_pred))
        assert got == pytest.approx(E.interp_mulaw_numpy(y, y_pred, gamma).mean(), rel=1e-9)
    e = E.excitation_target_numpy(y[..., 0], y_pred[..., 0])
    np.testing.assert_allclose(np.asarray(E.e2e_excitation_variance(y, y_pred)), (e - 128) ** 2, rtol=1e-9)
    rounded = np.clip(np.round(e), 0, 255).astype(int)
    ce = -np.log(np.clip(np.take_along_axis(pdf, rounded[..., None], -1)[..., 0], 1e-7, 1 - 1e-7))
    np.testing.assert_allclose(np.asarray(E.e2e_cross_entropy(y, y_pred)), ce, rtol=1e-9)


# --- the model --------------------------------------------------------------------------------
def _inputs(batch=2, frames=19, seed=0):
    r = np.random.default_rng(seed)
    pcm = r.integers(0, 256, (batch, (frames - 4) * FRAME_SIZE, 3)).astype(np.int32)
    feat = r.standard_normal((batch, frames, 20)).astype(np.float32)
    pitch = r.integers(33, 256, (batch, frames, 1)).astype(np.int32)
    return [pcm, feat, pitch]


def test_model_weights_like_the_standard_and_output_is_prediction_plus_pdf():
    std, e2e = build_lpcnet(TINY, seed=0), build_lpcnet(TINY_E2E, seed=0)
    def shapes(model):
        return {layer.name: [tuple(v.shape) for v in layer.weights] for layer in model.layers if layer.weights}

    assert shapes(e2e.model) == shapes(std.model)
    assert {"rc2lpc", "lpc2preds"} <= {layer.name for layer in e2e.model.layers}
    assert is_end2end_model(e2e.model) and not is_end2end_model(std.model)
    assert _fold_layers(e2e.model) is None and _fold_layers(std.model) is not None
    x = _inputs(batch=2, frames=7, seed=1)
    out = np.asarray(e2e.model(x, training=False))
    assert out.shape == (2, 3 * FRAME_SIZE, 257)
    np.testing.assert_allclose(out[..., 1:].sum(-1), 1.0, rtol=1e-4)
    # Channel 0 is µ-law(prediction) with the encoder's LPCs (rc2lpc of the conditioning) and
    # only pcm[..., 0]: the other two input codes are not read.
    cond, lpc = (np.asarray(t) for t in e2e.encoder(x[1:]))
    np.testing.assert_allclose(lpc, E.rc2lpc_numpy(cond[..., :16]), atol=1e-5)
    pred = E.lpc2preds_numpy(x[0][..., 0], lpc, FRAME_SIZE)
    np.testing.assert_allclose(out[..., 0], E.lin2ulaw_continuous_numpy(pred), atol=2e-3)
    other_codes = np.random.default_rng(9).integers(0, 256, x[0][..., 1:].shape)
    scrambled = [np.concatenate([x[0][..., :1], other_codes], -1).astype(np.int32), *x[1:]]
    np.testing.assert_allclose(np.asarray(e2e.model(scrambled, training=False)), out, rtol=1e-5, atol=1e-6)
    # Weights move between the variants only where the variant agrees.
    with pytest.raises(LpcnetError, match="end-to-end"):
        assign_weights(std.model, model_weights(e2e.model), "e2e.keras")
    with pytest.raises(LpcnetError, match="standard"):
        assign_weights(e2e.model, model_weights(std.model), "std.keras")


def test_mixed_precision_keeps_codes_and_prediction_in_float32():
    m = build_lpcnet(TINY_E2E, dtype_policy="mixed_bfloat16", seed=0).model
    for name in ("rc2lpc", "lpc2preds", "e2e_codes", "e2e_output", "dual_fc", "tree_to_pdf"):
        assert m.get_layer(name).compute_dtype == "float32", name
    emb = m.get_layer("embed_sig")
    assert emb.compute_dtype == "bfloat16"
    table = np.asarray(emb.embeddings)
    got = np.asarray(tf.cast(emb(np.array([[200.25]], np.float32)), tf.float32))[0, 0]
    # The position's fraction survives (bfloat16 would round 200.25 to 200): only the output is bf16.
    np.testing.assert_allclose(got, 0.75 * table[200] + 0.25 * table[201], rtol=1e-2, atol=1e-3)
    x = _inputs(batch=1, frames=6)
    out = np.asarray(m(x, training=False))
    assert out.dtype == np.float32 and out.shape == (1, 2 * FRAME_SIZE, 257)


def test_checkpoint_formats_keep_the_variant(tmp_path):
    m = build_lpcnet(TINY_E2E, seed=2).model
    compile_lpcnet(m, make_optimizer(), gamma=1.5)
    m.optimizer.build(m.trainable_variables)
    x = _inputs(batch=1, frames=5)
    ref = np.asarray(m(x, training=False))
    m.save(tmp_path / "e2e.keras")
    loaded = keras.saving.load_model(tmp_path / "e2e.keras")
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), ref, rtol=1e-6)
    assert isinstance(loaded.loss, E.InterpMulawLoss) and loaded.loss.gamma == 1.5
    w = read_checkpoint_weights(tmp_path / "e2e.keras")
    assert w["rc2lpc"] == {} and is_end2end(w) and config_from_weights(w).end2end
    save_seed_h5(m, tmp_path / "e2e.h5")
    with h5py.File(tmp_path / "e2e.h5", "r") as f:
        assert isinstance(f["model_weights/rc2lpc"], h5py.Group) and len(f["model_weights/rc2lpc"]) == 0
        names = [n.decode() if isinstance(n, bytes) else n for n in f["model_weights"].attrs["layer_names"]]
        assert names[-1] == "rc2lpc"
    w2 = read_checkpoint_weights(tmp_path / "e2e.h5")
    assert w2["rc2lpc"] == {} and config_from_weights(w2) == TINY_E2E
    # The seed's end-to-end embed_sig is a plain tf.Variable: Keras 2 saves it as Variable:0.
    with h5py.File(tmp_path / "e2e.h5", "r+") as f:
        g = f["model_weights/embed_sig/embed_sig"]
        g.move("embeddings:0", "Variable:0")
        f["model_weights/embed_sig"].attrs["weight_names"] = [b"embed_sig/Variable:0"]
    w3 = read_checkpoint_weights(tmp_path / "e2e.h5")
    np.testing.assert_array_equal(w3["embed_sig"]["embeddings"], w["embed_sig"]["embeddings"])
    assert config_from_weights(w3) == TINY_E2E
    # A standard model's files stay standard.
    std = build_lpcnet(TINY, seed=2).model
    write_seed_h5(model_weights(std), tmp_path / "std.h5")
    with h5py.File(tmp_path / "std.h5", "r") as f:
        assert "rc2lpc" not in f["model_weights"]
    assert not config_from_weights(read_checkpoint_weights(tmp_path / "std.h5")).end2end
    with pytest.raises(LpcnetError, match="end-to-end model only"):
        compile_lpcnet(std, make_optimizer(), gamma=1.0)


def test_registered_names():
    for name in E.REGISTERED:
        obj = keras.saving.get_registered_object(f"lpcnet>{name}")
        assert obj is getattr(E, name), name


# --- training ---------------------------------------------------------------------------------
def _tcfg(pair, model_dir, **kw) -> TrainConfig:
    base = dict(features=str(pair[0]), data=str(pair[1]), output="m", model_dir=str(model_dir),
                batch_size=4, epochs=1, steps_per_epoch=3, seed=11, progress=False)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def e2e_run(e2e_pair, tmp_path_factory):
    """A tiny end-to-end run: 2 epochs of 6 steps (lr 3e-3), then a seed .h5 of its weights."""
    d = tmp_path_factory.mktemp("e2e_run")
    cwd = os.getcwd()
    os.chdir(d)                 # --use_performance also writes ./summary/summary.json
    try:
        res = train(TINY_E2E, _tcfg(e2e_pair, d / "run", epochs=2, steps_per_epoch=6, lr=3e-3, gamma=1.5,
                                    use_performance=True))
    finally:
        os.chdir(cwd)
    save_seed_h5(res["model"], d / "e2e.h5")
    return res, d


def test_tiny_e2e_model_learns_and_records_the_variant(e2e_run):
    res, d = e2e_run
    hist = res["history"]
    assert hist["loss"][1] < hist["loss"][0]
    # The prediction improves (learnt LPCs): a smaller excitation (measured 3000 -> 1900 codes^2).
    assert hist["excitation_variance"][1] < 0.9 * hist["excitation_variance"][0]
    assert set(E.METRICS) <= set(hist)
    assert all(np.isfinite(v).all() for v in hist.values())
    model = res["model"]
    assert is_end2end_model(model) and model.loss.gamma == 1.5
    # The loss of the last state on a batch equals the NumPy loss of the model's output.
    from lpcnet.data import TrainingLoader

    tcfg = res["train_config"]
    x, y = TrainingLoader(tcfg.features, tcfg.data, 2, end2end=True).batch(0)
    out = np.asarray(model(x, training=False), np.float64)
    keras_loss = float(model.loss(y, out))
    assert keras_loss == pytest.approx(E.interp_mulaw_numpy(y, out, 1.5).mean(), rel=1e-5)
    cfg = json.loads((d / "run" / "m_16_config.json").read_text())
    assert cfg["model"]["end2end"] is True and cfg["train"]["gamma"] == 1.5
    summary = json.loads((d / "run" / "summary" / "summary.json").read_text())
    assert summary["metadata"]["end2end"] is True
    w = read_checkpoint_weights(d / "run" / "m_16_02.keras")
    assert is_end2end(w) and config_from_weights(w).end2end


def test_resume_and_finetune_take_the_variant_from_the_checkpoint(e2e_run, e2e_pair, tmp_path):
    res, d = e2e_run
    import shutil

    shutil.copytree(d / "run", tmp_path / "run")
    # --resume without --end2end: the run's variant and gamma (config JSON and checkpoint).
    r = train(TINY, _tcfg(e2e_pair, tmp_path / "run", epochs=3, steps_per_epoch=2, resume=True))
    assert r["initial_epoch"] == 2 and is_end2end_model(r["model"]) and r["model"].loss.gamma == 1.5
    assert r["model_config"].end2end
    # --finetune / --retrain from the seed .h5 without --end2end: end-to-end from the file.
    r = train(TINY, _tcfg(e2e_pair, tmp_path / "ft", finetune=str(d / "e2e.h5"), steps_per_epoch=2))
    assert is_end2end_model(r["model"]) and r["model"].loss.gamma == 2.0
    r = train(TINY, _tcfg(e2e_pair, tmp_path / "rt", retrain=str(d / "e2e.h5"), steps_per_epoch=2,
                          gamma=0.5))
    assert is_end2end_model(r["model"]) and r["model"].loss.gamma == 0.5
    np.testing.assert_array_equal(read_checkpoint_weights(d / "e2e.h5")["gru_a"]["bias"].shape,
                                  model_weights(r["model"])["gru_a"]["bias"].shape)


def _cli_error(capsys, argv) -> str:
    rc = cli.main(["train", *map(str, argv), "--grua-size", "16", "--grub-size", "8", "--batch_size", "4",
                   "--epochs", "1", "--steps_per_epoch", "1", "--no-progress", "--output", "m"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and err[0].startswith("lpcnet train: error:"), err
    return err[0]


def test_variant_mismatches_are_one_line_errors(e2e_run, e2e_pair, slice_training_pair, tmp_path, capsys):
    _, d = e2e_run
    std_h5 = tmp_path / "std.h5"
    save_seed_h5(build_lpcnet(TINY, seed=0).model, std_h5)
    std = ["--features", slice_training_pair[0], "--data", slice_training_pair[1]]
    e2e = ["--features", e2e_pair[0], "--data", e2e_pair[1]]
    out = tmp_path / "out"
    # --end2end with a standard checkpoint, the file named.
    for flag in ("--finetune", "--retrain"):
        err = _cli_error(capsys, [*e2e, "--model_dir", out, flag, std_h5, "--end2end"])
        assert str(std_h5) in err and "standard LPCNet checkpoint" in err and "--end2end" in err
    # An end-to-end checkpoint on standard data (finetuned as a standard model) and the reverse.
    err = _cli_error(capsys, [*std, "--model_dir", out, "--finetune", d / "e2e.h5"])
    assert str(slice_training_pair[1]) in err and "end2end" in err
    err = _cli_error(capsys, [*e2e, "--model_dir", out])
    assert str(e2e_pair[1]) in err and "end2end" in err
    # --gamma without the end-to-end variant.
    err = _cli_error(capsys, [*std, "--model_dir", out, "--gamma", "2"])
    assert "--gamma" in err and "--end2end" in err
    err = _cli_error(capsys, [*std, "--model_dir", out, "--retrain", std_h5, "--gamma", "2"])
    assert "--gamma" in err
    assert not out.exists()
    # --resume --end2end of a standard run.
    run = tmp_path / "std_run"
    m = build_lpcnet(TINY, seed=0).model
    compile_lpcnet(m, make_optimizer())
    m.optimizer.build(m.trainable_variables)
    run.mkdir()
    m.save(run / "m_16_01.keras")
    save_config(run / "m_16_config.json", TINY, _tcfg(slice_training_pair, run))
    err = _cli_error(capsys, [*e2e, "--model_dir", run, "--resume", "--end2end", "--epochs", "2"])
    assert "--end2end (run: the standard model)" in err and str(run) in err
    # A run whose config says end-to-end but whose checkpoint is standard.
    save_config(run / "m_16_config.json", TINY_E2E, _tcfg(e2e_pair, run))
    err = _cli_error(capsys, [*e2e, "--model_dir", run, "--resume", "--epochs", "2"])
    assert "m_16_01.keras" in err and "standard" in err
    assert sorted(p.name for p in run.iterdir()) == ["m_16_01.keras", "m_16_config.json"]


# --- synthesis ----------------------------------------------------------------------------------
def test_keras_engine_takes_the_lpcs_from_the_network(train_wav):
    """The end-to-end engine equals the standard engine (same weights) fed the network's LPCs
    (rc2lpc of each frame's conditioning) in the features' LPC slots; its own features' LPCs
    are not read."""
    from lpcnet.features import extract
    from lpcnet.audio import load_speech
    from lpcnet.formats import float_to_int16
    from lpcnet.synth import KerasEngine

    x, _ = load_speech(train_wav)
    feats = extract(float_to_int16(x))[40:45]
    weights = model_weights(build_lpcnet(TINY_E2E, training=False, seed=3).model)
    engine = KerasEngine(weights, TINY_E2E, seed=4)
    cond, lpcs = engine.conditioning(feats), engine.frame_lpcs(feats)
    np.testing.assert_allclose(lpcs, E.rc2lpc_numpy(cond[:, :16]), atol=1e-5)
    assert np.abs(lpcs - feats[:, LPC]).max() > 0.1
    out = engine.run(feats)
    std_weights = {k: v for k, v in weights.items() if k != "rc2lpc"}
    with_lpcs = feats.copy()
    with_lpcs[:, LPC] = lpcs
    np.testing.assert_array_equal(KerasEngine(std_weights, TINY, seed=4).run(with_lpcs), out)
    other = feats.copy()
    other[:, LPC] = 0.0
    np.testing.assert_array_equal(engine.run(other), out)
    assert out.shape == (5 * FRAME_SIZE,) and np.abs(out.astype(int)).max() > 0


@pytest.mark.slow
def test_bench_train_e2e_smoke():
    from lpcnet.bench import BENCHMARKS

    r = BENCHMARKS["train-e2e"].function(gru_a=16, gru_b=8, batch=2, steps=2, warmup=1, rounds=2,
                                         variants=("standard_fp32", "end2end_fp32"))
    v = r["variants"]
    assert set(v) == {"standard_fp32", "end2end_fp32"} and all(x["steps"] == 2 for x in v.values())
    want = v["end2end_fp32"]["seq_per_s"] / v["standard_fp32"]["seq_per_s"]
    assert r["ratios"] == {"end2end_over_standard_fp32": pytest.approx(want)}


@pytest.mark.horovod
@pytest.mark.skipif(not __import__("lpcnet.distributed").distributed.horovod_available(),
                    reason="Horovod is not installed")
def test_horovod_np2_trains_the_end2end_model_identically_on_both_ranks(e2e_pair, tmp_path, monkeypatch):
    from pathlib import Path

    from lpcnet import launcher as L

    monkeypatch.chdir(tmp_path)
    tests_dir = str(Path(__file__).parent)
    env = {"LPCNET_TEST_WEIGHTS_DIR": str(tmp_path / "w"),
           "PYTHONPATH": os.pathsep.join(p for p in (tests_dir, os.environ.get("PYTHONPATH")) if p)}
    L.launch(2, ["--features", str(e2e_pair[0]), "--data", str(e2e_pair[1]), "--model_dir",
                 str(tmp_path / "m"), "--grua-size", "16", "--grub-size", "8", "--output", "t",
                 "--no-progress", "--end2end", "--gamma", "1", "--batch_size", "2", "--epochs", "1",
                 "--steps_per_epoch", "2", "--seed", "3", "--callbacks-module", "train_hooks"],
             timeout=180, env=env, log_file=tmp_path / "log.txt", out=open(tmp_path / "rank0.txt", "w"))
    with np.load(tmp_path / "w" / "rank0.npz") as w0, np.load(tmp_path / "w" / "rank1.npz") as w1:
        assert set(w0.files) == set(w1.files) and "embed_sig/embeddings" in w0.files
        for k in w0.files:
            np.testing.assert_array_equal(w0[k], w1[k], err_msg=k)
    h0 = json.loads((tmp_path / "w" / "rank0.json").read_text())
    assert set(E.METRICS) <= set(h0) and np.isfinite(h0["loss"]).all()
    assert read_checkpoint_weights(tmp_path / "m" / "t_16_01.keras")["rc2lpc"] == {}


# --- both engines and the command line -------------------------------------------------------
def _heldout_features(heldout_wav):
    from lpcnet.audio import load_speech
    from lpcnet.features import extract
    from lpcnet.formats import to_int16

    return extract(to_int16(load_speech(heldout_wav)[0].astype(np.float64) * 32768.0))


def test_keras_and_native_engines_agree_on_the_variant(e2e_run, heldout_wav):
    """Same forced excitation codes -> the same bit probabilities in both engines (the trained
    tiny e2e checkpoint, held-out male speech); the LPCs come from the network in both."""
    from lpcnet import synth

    _, d = e2e_run
    ckpt = d / "run" / "m_16_02.keras"
    weights, cfg = synth.load_weights(ckpt)
    assert cfg.end2end
    native = synth.NativeModel.from_checkpoint(ckpt, int8=True)
    assert native.end2end
    feats = _heldout_features(heldout_wav)[40:46]
    codes = np.random.default_rng(0).integers(100, 156, len(feats) * FRAME_SIZE).astype(np.uint8)
    ko, kq = synth.KerasEngine(weights, cfg, seed=1).run(feats, probs=True, forced=codes)
    no, nq = synth.NativeStream(native, seed=1).run(feats, probs=True, forced=codes)
    diff = np.abs(nq[:, 1:] - kq[:, 1:])
    # The engines' float32 sums differ in their last bits (~1e-6 in the LPCs): a prediction can
    # round to the neighbouring µ-law code now and then, which moves later probabilities a little.
    # Measured: median 3e-8, max 1.2e-3, output samples within 3.
    assert np.median(diff) < 1e-6 and diff.max() < 5e-3, (np.median(diff), diff.max())
    assert np.abs(no.astype(np.int32) - ko).max() <= 4
    # Not the features' LPCs: an engine that used them would differ far more.
    feats_other = feats.copy()
    feats_other[:, LPC] = 0.0
    _, kq2 = synth.KerasEngine(weights, cfg, seed=1).run(feats_other, probs=True, forced=codes)
    np.testing.assert_array_equal(kq2, kq)


def test_end2end_checkpoint_exports_and_synthesises_from_the_command_line(e2e_run, heldout_wav,
                                                                         tmp_path, capsys):
    """`lpcnet export` -> `lpcnet synth` (native, from the blob) and `lpcnet synth --engine keras`
    (from the .keras checkpoint) on held-out speech: both infer the variant and write speech-length,
    finite, non-silent audio."""
    import soundfile as sf

    from lpcnet.export import FLAG_END2END, read_blob

    _, d = e2e_run
    ckpt, blob = d / "run" / "m_16_02.keras", tmp_path / "e2e.bin"
    assert cli.main(["export", str(ckpt), str(blob), "--int8"]) == 0
    assert read_blob(blob).flags & FLAG_END2END
    ref_len = sf.info(str(heldout_wav)).frames
    for name, args in {"native": ["--checkpoint", str(blob), "--int8"],
                       "keras": ["--checkpoint", str(ckpt), "--engine", "keras"]}.items():
        out = tmp_path / f"{name}.wav"
        assert cli.main(["synth", *args, "--audio", str(heldout_wav), "--output", str(out)]) == 0, name
        y, rate = sf.read(str(out), dtype="int16")
        assert rate == 16000 and abs(len(y) - ref_len) <= 2 * FRAME_SIZE, (name, len(y), ref_len)
        assert np.abs(y.astype(np.int32)).max() > 100, name
    # A fresh process (nothing of lpcnet.end2end imported before) reads the .keras checkpoint.
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", "import sys; from lpcnet.model import read_checkpoint_weights, "
                        "is_end2end; sys.exit(0 if is_end2end(read_checkpoint_weights(sys.argv[1])) else 3)",
                        str(ckpt)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-500:]
    # The .h5 of the same weights synthesises too (the variant read from its rc2lpc group).
    out = tmp_path / "h5.wav"
    assert cli.main(["synth", "--checkpoint", str(d / "e2e.h5"), "--audio", str(heldout_wav),
                     "--output", str(out)]) == 0
