"""The LPCNet Keras model (docs/model.md): names, shapes, size, tree, encoder/decoder, weights I/O."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lpcnet.config import ModelConfig  # noqa: E402
from lpcnet.errors import LpcnetError  # noqa: E402
from lpcnet.layers import tree_to_pdf_numpy  # noqa: E402
from lpcnet.model import (  # noqa: E402
    assign_weights, build_lpcnet, compile_lpcnet, config_from_weights, make_optimizer, model_weights,
    read_checkpoint_weights, save_seed_h5)

TINY = ModelConfig(gru_a=16, gru_b=8)

#: Weight shapes of docs/model.md (Layers) at GRU A 384 / GRU B 16.
FULL_SHAPES = {
    "embed_pitch": [(256, 64)],
    "feature_conv1": [(3, 84, 128), (128,)],
    "feature_conv2": [(3, 128, 128), (128,)],
    "feature_dense1": [(128, 128), (128,)],
    "feature_dense2": [(128, 128), (128,)],
    "embed_sig": [(256, 128)],
    "gru_a": [(512, 1152), (384, 1152), (2, 1152)],
    "gru_b": [(512, 48), (16, 48), (2, 48)],
    "dual_fc": [(256, 16, 2), (256, 2), (256, 2)],
}


def _inputs(batch=2, frames=19, seed=0):
    rng = np.random.default_rng(seed)
    pcm = rng.integers(0, 256, (batch, (frames - 4) * 160, 3)).astype(np.int32)
    feat = rng.standard_normal((batch, frames, 20)).astype(np.float32)
    pitch = rng.integers(33, 256, (batch, frames, 1)).astype(np.int32)
    return [pcm, feat, pitch]


def test_full_size_names_shapes_and_parameter_count():
    model = build_lpcnet(ModelConfig()).model
    got = {layer.name: [tuple(v.shape) for v in layer.weights] for layer in model.layers if layer.weights}
    assert got == FULL_SHAPES
    assert model.count_params() == 1_232_992            # ~1.233 M (docs/model.md)
    assert model.get_layer("gru_a").count_params() == 1_034_496
    gru_a = model.get_layer("gru_a")
    assert gru_a.cell.reset_after and gru_a.cell.recurrent_activation.__name__ == "sigmoid"
    assert type(gru_a.cell.recurrent_constraint).__name__ == "WeightClip"
    gru_b = model.get_layer("gru_b")
    assert type(gru_b.cell.kernel_constraint).__name__ == "WeightClip"
    assert type(gru_b.cell.recurrent_constraint).__name__ == "WeightClip"
    assert type(model.get_layer("embed_sig").embeddings_initializer).__name__ == "PCMInit"
    # No fixed batch or sequence length (the seed's models had one; docs/model.md).
    assert all(s is None for inp in model.inputs for s in inp.shape[:2])


def test_forward_pdf_matches_tree_and_any_batch_or_length():
    m = build_lpcnet(TINY, seed=0)
    x = _inputs(batch=2, frames=19)
    pdf = m.model.predict(x, verbose=0)          # graph mode: eager GRU loops are slow
    assert pdf.shape == (2, 2400, 256)
    np.testing.assert_allclose(pdf.sum(-1), 1.0, rtol=1e-4)
    # Tree maths: the pdf equals the NumPy tree applied to the dual_fc output.
    q_model = keras.Model(m.model.inputs, m.model.get_layer("dual_fc").output)
    q = q_model.predict(x, verbose=0)
    np.testing.assert_allclose(pdf, tree_to_pdf_numpy(q), rtol=1e-4, atol=1e-9)
    # Other batch sizes and lengths through the same model.
    assert m.model.predict(_inputs(batch=3, frames=7), verbose=0).shape == (3, 480, 256)


def test_encoder_decoder_reproduce_training_model():
    m = build_lpcnet(TINY, seed=1)
    pcm, feat, pitch = _inputs(batch=1, frames=6, seed=2)
    pdf = np.asarray(m.model([pcm, feat, pitch], training=False))
    cfeat = np.asarray(m.encoder([feat, pitch]))
    assert cfeat.shape == (1, 2, 128)
    cond = np.repeat(cfeat, 160, axis=1)
    sa, sb = np.zeros((1, 16), np.float32), np.zeros((1, 8), np.float32)
    # Whole sequence in one decoder call, then sample by sample for the first 5 samples.
    out, _, _ = m.decoder([pcm, cond, sa, sb])
    np.testing.assert_allclose(np.asarray(out), pdf, rtol=1e-4, atol=1e-7)
    for t in range(5):
        p, sa, sb = (np.asarray(o) for o in m.decoder([pcm[:, t:t + 1], cond[:, t:t + 1], sa, sb]))
        np.testing.assert_allclose(np.asarray(p)[:, 0], pdf[:, t], rtol=1e-4, atol=1e-7)


def test_inference_build_loads_weights_by_name():
    train = build_lpcnet(TINY, seed=3)
    infer = build_lpcnet(TINY, training=False, seed=4)
    assign_weights(infer.model, model_weights(train.model))
    _, feat, pitch = _inputs(batch=1, frames=9)
    valid = np.asarray(train.encoder([feat, pitch]))
    same = np.asarray(infer.encoder([feat, pitch]))
    assert same.shape == (1, 9, 128) and valid.shape == (1, 5, 128)
    np.testing.assert_allclose(same[:, 2:7], valid, rtol=1e-5, atol=1e-6)   # 'same' centre = 'valid'


def test_keras_roundtrip_and_seed_h5(tmp_path):
    m = build_lpcnet(TINY, seed=5).model
    compile_lpcnet(m, make_optimizer())
    m.optimizer.build(m.trainable_variables)
    x = _inputs(batch=1, frames=5)
    ref = np.asarray(m(x, training=False))
    m.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded).__name__ == "LPCNetModel"
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), ref, rtol=1e-6)
    # Seed-style .h5 as Keras 2 writes it (model_weights/<layer>/<layer>/gru_cell/<var>:0 for the
    # GRUs) and the variant without gru_cell/ that other TensorFlow versions wrote (docs/model.md).
    save_seed_h5(m, tmp_path / "seed.h5")
    with h5py.File(tmp_path / "seed.h5", "r") as f:
        # The seed's test and dump scripts: gru_cell under gru_a means GRU B under gru_cell_1.
        w = f["model_weights"]
        assert "gru_cell" in w["gru_a"]["gru_a"]
        units = [min(w[p].shape) for p in ("gru_a/gru_a/gru_cell/recurrent_kernel:0",
                                           "gru_b/gru_b/gru_cell_1/recurrent_kernel:0")]
        assert units == [16, 8]
    with h5py.File(tmp_path / "nocell.h5", "w") as f:
        for layer, vars_ in model_weights(m).items():
            g = f.create_group(f"model_weights/{layer}/{layer}")
            for k, v in vars_.items():
                g.create_dataset(f"{k}:0", data=v)
    for name in ("m.keras", "seed.h5", "nocell.h5"):
        w = read_checkpoint_weights(tmp_path / name)
        cfg = config_from_weights(w)
        assert (cfg.gru_a, cfg.gru_b, cfg.cond_size) == (16, 8, 128)
        fresh = build_lpcnet(cfg, seed=9).model
        assign_weights(fresh, w)
        np.testing.assert_allclose(np.asarray(fresh(x, training=False)), ref, rtol=1e-6)


def _keras2_predecessor(cfg: ModelConfig):
    """The predecessor's network in Keras 2 (tf_keras): its layer names, layer types and weight
    shapes (docs/model.md), untrained. Its dual FC is the predecessor's MDense: weights kernel
    (256, in, 2), bias (256, 2), factor (256, 2) in that order."""
    import tensorflow as tf
    import tf_keras

    L = tf_keras.layers

    class MDense(L.Layer):
        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(256, input_shape[-1], 2), name="kernel")
            self.bias = self.add_weight(shape=(256, 2), name="bias")
            self.factor = self.add_weight(shape=(256, 2), name="factor", initializer="ones")

        def call(self, x):
            return tf.reduce_sum(tf.tanh(tf.tensordot(x, self.kernel, [[-1], [1]]) + self.bias)
                                 * self.factor, -1)

    pcm, feat = L.Input((None, 3), dtype="int32"), L.Input((None, cfg.nb_features))
    pitch = L.Input((None, 1), dtype="int32")
    pe = L.Reshape((-1, 64))(L.Embedding(256, 64, name="embed_pitch")(pitch))
    x = L.Concatenate()([feat, pe])
    for name in ("feature_conv1", "feature_conv2"):
        x = L.Conv1D(cfg.cond_size, 3, padding="same", activation="tanh", name=name)(x)
    for name in ("feature_dense1", "feature_dense2"):
        x = L.Dense(cfg.cond_size, activation="tanh", name=name)(x)
    up = L.Lambda(lambda c: tf.repeat(c, 160, axis=1))(x)
    cpcm = L.Reshape((-1, 3 * 128))(L.Embedding(256, 128, name="embed_sig")(pcm))
    a = L.GRU(cfg.gru_a, return_sequences=True, reset_after=True, name="gru_a")(L.Concatenate()([cpcm, up]))
    b = L.GRU(cfg.gru_b, return_sequences=True, reset_after=True, name="gru_b")(L.Concatenate()([a, up]))
    return tf_keras.Model([pcm, feat, pitch], MDense(name="dual_fc")(b))


def _assert_keras2_loads_by_name(path, weights: dict, cfg: ModelConfig):
    """``load_weights(path, by_name=True)`` of Keras 2 fills every layer with exactly ``weights``."""
    from lpcnet.model import SEED_WEIGHT_ORDER, WEIGHT_LAYERS

    old = _keras2_predecessor(cfg)
    rng = np.random.default_rng(0)
    for w in old.weights:           # values no file holds: a load that does nothing would show
        w.assign(rng.normal(size=w.shape).astype(np.float32) + 100.0)
    old.load_weights(str(path), by_name=True)
    for name in WEIGHT_LAYERS:
        layer = old.get_layer(name)
        assert len(layer.weights) == len(SEED_WEIGHT_ORDER[name])
        for var, w in zip(SEED_WEIGHT_ORDER[name], layer.weights):
            np.testing.assert_array_equal(w.numpy(), weights[name][var], err_msg=f"{name}/{var}")
    return old


def _string_attrs(group) -> dict:
    return {k: (h5py.check_string_dtype(group.attrs.get_id(k).dtype), np.asarray(group.attrs[k]).tolist())
            for k in group.attrs}


def test_seed_h5_is_read_by_keras2_load_weights_by_name(tmp_path):
    """The predecessor's tools load our .h5 by name (before: no layer_names, nothing loaded)."""
    from lpcnet.model import WEIGHT_LAYERS

    m = build_lpcnet(TINY, seed=5).model
    save_seed_h5(m, tmp_path / "seed.h5")
    old = _assert_keras2_loads_by_name(tmp_path / "seed.h5", model_weights(m), TINY)
    # Attributes and names exactly as Keras 2 writes them for the same network (its
    # save_weights_to_hdf5_group, which writes the root of a weights file and the
    # model_weights group of a model file).
    old.save_weights(str(tmp_path / "keras2.h5"))
    with h5py.File(tmp_path / "seed.h5", "r") as ours, h5py.File(tmp_path / "keras2.h5", "r") as theirs:
        mine, ref = _string_attrs(ours["model_weights"]), _string_attrs(theirs)
        assert set(mine) == set(ref) == {"backend", "keras_version", "layer_names"}
        assert mine["backend"] == ref["backend"] and mine["keras_version"] == ref["keras_version"]
        assert mine["layer_names"][0] == ref["layer_names"][0]          # same string type
        assert set(mine["layer_names"][1]) == set(WEIGHT_LAYERS) <= set(ref["layer_names"][1])
        for name in WEIGHT_LAYERS:
            a, b = _string_attrs(ours["model_weights"][name]), _string_attrs(theirs[name])
            assert a["weight_names"][0] == b["weight_names"][0]              # same string type
            # tf_keras 2.18 names GRU B's cell gru_cell; the seed's TensorFlow wrote gru_cell_1
            assert [w.replace("gru_cell_1/", "gru_cell/") for w in a["weight_names"][1]] == b["weight_names"][1]
            for wa, wb in zip(a["weight_names"][1], b["weight_names"][1]):
                assert ours["model_weights"][name][wa].shape == theirs[name][wb].shape
        assert {k: ours.attrs[k] for k in ours.attrs} == {"backend": "tensorflow", "keras_version": "2.18.0"}


def test_carried_demo_weights_load_in_keras2():
    from lpcnet.demo import DEMO_CHECKPOINT

    if not DEMO_CHECKPOINT.is_file():
        pytest.skip("no demo model in models/demo")
    weights = read_checkpoint_weights(DEMO_CHECKPOINT)
    cfg = config_from_weights(weights)
    _assert_keras2_loads_by_name(DEMO_CHECKPOINT, weights, cfg)


def test_non_finite_weights_are_refused(tmp_path):
    m = build_lpcnet(TINY, seed=5).model
    w = m.get_layer("gru_b").cell.recurrent_kernel
    w.assign(np.where(np.eye(*w.shape, dtype=bool), np.nan, keras.ops.convert_to_numpy(w)))
    m.save(tmp_path / "nan.keras")
    with pytest.raises(LpcnetError, match=r"gru_b/recurrent_kernel holds 8 NaN/Inf value\(s\) of 192"):
        read_checkpoint_weights(tmp_path / "nan.keras")
    with pytest.raises(LpcnetError, match="NaN/Inf"):
        save_seed_h5(m, tmp_path / "nan.h5")
    assert not list(tmp_path.glob("*.h5"))


def test_bad_checkpoints(tmp_path):
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(LpcnetError, match="cannot read checkpoint"):
        read_checkpoint_weights(tmp_path / "junk.keras")
    (tmp_path / "junk.h5").write_bytes(b"\x00" * 100)
    with pytest.raises(LpcnetError, match="cannot read checkpoint"):
        read_checkpoint_weights(tmp_path / "junk.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("model_weights/dense/dense/kernel:0", data=np.zeros((2, 2)))
    with pytest.raises(LpcnetError, match="not an LPCNet checkpoint"):
        read_checkpoint_weights(tmp_path / "other.h5")
    big = model_weights(build_lpcnet(ModelConfig(gru_a=24, gru_b=8)).model)
    small = build_lpcnet(TINY).model
    before = model_weights(small)
    with pytest.raises(LpcnetError, match="different architecture"):
        assign_weights(small, big)
    after = model_weights(small)
    assert all(np.array_equal(before[k][v], after[k][v]) for k in before for v in before[k])


def test_config_roundtrip_and_validation(tmp_path):
    from lpcnet.config import load_model_config, save_config

    cfg = ModelConfig(gru_a=32, gru_b=16, cond_size=64)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    save_config(tmp_path / "c.json", cfg)
    assert load_model_config(tmp_path / "c.json") == cfg
    with pytest.raises(LpcnetError, match="multiple of 8"):
        ModelConfig(gru_a=20)
    with pytest.raises(Exception):
        cfg.gru_a = 8     # frozen


def test_mixed_precision_keeps_tree_in_float32():
    m = build_lpcnet(TINY, dtype_policy="mixed_bfloat16").model
    assert m.get_layer("gru_a").compute_dtype == "bfloat16"
    assert m.get_layer("dual_fc").compute_dtype == "float32"
    assert m.get_layer("tree_to_pdf").compute_dtype == "float32"
    assert all(v.dtype == "float32" for v in m.weights)
    out = m(_inputs(batch=1, frames=5), training=False)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"


def test_train_step_uses_only_public_keras_api_and_matches_keras_default():
    """LPCNetModel.train_step == Keras' default step on one batch; its loss metric is Keras' own.

    The step reaches Keras' loss tracker through ``lpcnet.model.loss_metric`` (public
    ``model.metrics``). If a Keras upgrade renames or drops that metric, this fails here.
    """
    from lpcnet.model import LPCNetModel, compile_lpcnet, loss_metric, make_optimizer

    cfg = ModelConfig(gru_a=16, gru_b=8, noise_std=0.0)
    x, y = _inputs(batch=2, frames=5), np.random.default_rng(1).integers(0, 256, (2, 160, 1))
    logs, weights = [], []
    for plain in (False, True):
        keras.utils.set_random_seed(3)
        m = build_lpcnet(cfg, seed=3).model
        if plain:                                    # Keras' own Model.train_step, same graph
            m = keras.Model(m.inputs, m.outputs)
        else:
            assert isinstance(m, LPCNetModel)
            # the step itself; the folded forward and native head: tests/test_fused_gru.py
            m.fold_inputs = False
        compile_lpcnet(m, make_optimizer())
        metric = loss_metric(m)
        assert isinstance(metric, keras.metrics.Mean) and metric in m.metrics
        logs.append(m.train_on_batch(x, y, return_dict=True))
        weights.append(model_weights(m))
    assert logs[0]["loss"] == pytest.approx(logs[1]["loss"], rel=1e-6)
    assert logs[0]["accuracy"] == pytest.approx(logs[1]["accuracy"])
    # Same update everywhere but in the embeddings, whose gradients the kit makes dense
    # (Keras' Adam on sparse slices differs: docs/training.md, Data).
    for layer in set(weights[0]) - {"embed_sig", "embed_pitch"}:
        for k, v in weights[0][layer].items():
            np.testing.assert_allclose(v, weights[1][layer][k], rtol=1e-5, atol=1e-7,
                                       err_msg=f"{layer}/{k}")


def test_checkpoint_names_of_the_model_class():
    """Checkpoints store the model class as "lpcnet>LPCNetModel": keep the name."""
    from lpcnet.model import LPCNetModel

    assert keras.saving.get_registered_name(LPCNetModel) == "lpcnet>LPCNetModel"
