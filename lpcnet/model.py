"""The LPCNet network in Keras 3 (docs/model.md): training model, encoder and decoder.

``build_lpcnet(cfg)`` returns the training model plus the frame-rate encoder and
the sample-rate decoder, all sharing the same layer objects. Layer names and
weight shapes are those of the original ``.h5`` files, so weights move between the
kit and seed checkpoints by layer name. Nothing has a fixed batch size or sequence
length (unlike the seed): the same model trains with any per-replica batch and
decodes one sample at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np

from lpcnet.config import DECAY, LR, ModelConfig
from lpcnet.errors import LpcnetError
from lpcnet.layers import (FastGaussianNoise, FusedGRU, MDense, PCMInit, QuantRegularizer, RepeatFrames,
                           TreeToPdf, WeightClip)

#: Layers holding weights, in the order of docs/model.md.
WEIGHT_LAYERS = ("embed_pitch", "feature_conv1", "feature_conv2", "feature_dense1",
                 "feature_dense2", "embed_sig", "gru_a", "gru_b", "dual_fc")


class LPCNetModels(NamedTuple):
    """The three views of one network (shared layers)."""

    model: keras.Model
    encoder: keras.Model
    decoder: keras.Model


@keras.saving.register_keras_serializable(package="lpcnet")
class LPCNetModel(keras.Model):
    """Functional LPCNet training model with an explicit ``train_step``.

    The step is the Keras default written out (public API only; the loss metric comes from
    :func:`loss_metric`), with two hooks: ``gradient_reducer``
    (None, or a callable ``grads -> grads``) runs between the gradient and the
    optimizer update, where the distributed stage inserts a Horovod allreduce;
    ``metrics_reducer`` (None, or ``logs -> logs``, applied in ``get_metrics_result``)
    averages the logged metrics (loss, accuracy) across Horovod ranks.
    Loss scaling uses ``optimizer.scale_loss`` (a no-op unless the optimizer is a
    ``LossScaleOptimizer``).
    """

    gradient_reducer = None
    metrics_reducer = None

    def train_step(self, data):
        import tensorflow as tf

        x, y = data[0], data[1]
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
            # compute_loss divides by the replicas of a tf.distribute strategy; the metric
            # tracks the per-replica loss itself (as Keras' own train_step does).
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            loss_metric(self).update_state(loss * tf.cast(replicas, loss.dtype),
                                           sample_weight=tf.shape(x[0])[0])
            scaled = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        # Embedding gradients come as IndexedSlices; Keras 3's Adam then squares the slices
        # before summing duplicate rows (v ~ sum g^2 instead of (sum g)^2), which inflates
        # embedding steps far beyond lr. Dense gradients give standard Adam (as Keras 2 and
        # the seed's sparse_as_dense=True), and identical math on 1 and N Horovod processes.
        grads = _dense_gradients(tape.gradient(scaled, variables))
        if self.gradient_reducer is not None:
            grads = self.gradient_reducer(grads)
        self.optimizer.apply(grads, variables)
        return self.compute_metrics(x, y, y_pred)

    def get_metrics_result(self):
        # Used by compute_metrics (inside the compiled step: per-step logs) and by fit at
        # epoch end (eagerly, on every rank alike: the history), so both are averaged.
        logs = super().get_metrics_result()
        if self.metrics_reducer is not None:
            logs = self.metrics_reducer(logs)
        return logs


def loss_metric(model: keras.Model):
    """The ``loss`` Mean that a compiled model reports (``model.metrics``, named "loss").

    Keras creates it in ``compile``; the kit's train step updates it as Keras' own
    train step does. tests/test_model.py checks that it exists and is a Mean, so a
    Keras upgrade that changes this fails there, loudly.
    """
    for m in model.metrics:
        if m.name == "loss":
            return m
    raise RuntimeError("compiled Keras model has no 'loss' metric (Keras changed? see "
                       "lpcnet.model.loss_metric)")


def _dense_gradients(grads):
    import tensorflow as tf

    return [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]


def _policy_kw(dtype_policy):
    return {} if dtype_policy is None else {"dtype": dtype_policy}


def build_lpcnet(cfg: ModelConfig = ModelConfig(), *, training: bool = True, quantize: bool = False,
                 dtype_policy: str | None = None, seed: int | None = None,
                 fused: bool = True) -> LPCNetModels:
    """Build LPCNet and its encoder / decoder (docs/model.md).

    Args:
        cfg: sizes (GRU A / GRU B units, conditioning width, ...).
        training: True: 'valid' feature convolutions (19 feature frames in, 15
            out); False: 'same' padding for whole-utterance inference.
        quantize: add the int8 quantisation regulariser to the GRU weights.
        dtype_policy: e.g. "mixed_bfloat16" or "mixed_float16"; the dual FC layer
            and the probability tree always compute in float32.
        seed: seed of the PCMInit sample-embedding initialiser.
        fused: run the GRU sequence loops with the native fused kernel (FusedGRU);
            False: plain ``keras.layers.GRU`` maths (needed under XLA ``jit_compile``).

    Returns:
        LPCNetModels(model, encoder, decoder). The model maps
        ``[pcm (B,T,3) int32, features (B,F,nb_features), pitch (B,F,1) int32]``
        to the pdf (B,T,256) with ``T = (F - 4) * frame_size`` in training mode.
    """
    kw = _policy_kw(dtype_policy)
    f32 = {"dtype": "float32"} if dtype_policy is not None else {}
    padding = "valid" if training else "same"
    clip = WeightClip(cfg.weight_clip)
    quant = QuantRegularizer() if quantize else None
    L = keras.layers

    pcm = keras.Input((None, 3), dtype="int32", name="pcm")
    feat = keras.Input((None, cfg.nb_features), name="features")
    pitch = keras.Input((None, 1), dtype="int32", name="pitch")

    embed_pitch = L.Embedding(256, cfg.pitch_embed, name="embed_pitch", **kw)
    conv1 = L.Conv1D(cfg.cond_size, 3, padding=padding, activation="tanh", name="feature_conv1", **kw)
    conv2 = L.Conv1D(cfg.cond_size, 3, padding=padding, activation="tanh", name="feature_conv2", **kw)
    dense1 = L.Dense(cfg.cond_size, activation="tanh", name="feature_dense1", **kw)
    dense2 = L.Dense(cfg.cond_size, activation="tanh", name="feature_dense2", **kw)
    embed_sig = L.Embedding(cfg.pcm_levels, cfg.embed_size, embeddings_initializer=PCMInit(seed=seed),
                            name="embed_sig", **kw)
    gru_opts = dict(return_sequences=True, return_state=True, recurrent_activation="sigmoid",
                    reset_after=True, fused=fused, **kw)
    gru_a = FusedGRU(cfg.gru_a, recurrent_constraint=clip, recurrent_regularizer=quant,
                  name="gru_a", **gru_opts)
    gru_b = FusedGRU(cfg.gru_b, kernel_constraint=clip, recurrent_constraint=clip,
                  kernel_regularizer=quant, recurrent_regularizer=quant, name="gru_b", **gru_opts)
    dual_fc = MDense(cfg.pcm_levels, 2, activation="sigmoid", name="dual_fc", **f32)
    tree = TreeToPdf(cfg.pcm_levels, name="tree_to_pdf", **f32)

    # Frame-rate network -> conditioning (B, F-4, cond) in training.
    pe = L.Reshape((-1, cfg.pitch_embed), name="pitch_reshape", **kw)(embed_pitch(pitch))
    x = L.Concatenate(name="feature_concat", **kw)([feat, pe])
    cfeat = dense2(dense1(conv2(conv1(x))))
    encoder = keras.Model([feat, pitch], cfeat, name="encoder")

    # Sample-rate network.
    up = RepeatFrames(cfg.frame_size, name="upsample", **kw)(cfeat)
    cpcm = L.Reshape((-1, 3 * cfg.embed_size), name="pcm_reshape", **kw)(embed_sig(pcm))
    a_out, _ = gru_a(L.Concatenate(name="gru_a_in", **kw)([cpcm, up]))
    a_out = FastGaussianNoise(cfg.noise_std, seed=seed, name="gru_a_noise", **kw)(a_out)
    b_out, _ = gru_b(L.Concatenate(name="gru_b_in", **kw)([a_out, up]))
    pdf = tree(dual_fc(b_out))
    model = LPCNetModel([pcm, feat, pitch], pdf, name="lpcnet")

    # Decoder: explicit states in and out, conditioning already at the sample rate.
    d_pcm = keras.Input((None, 3), dtype="int32", name="dec_pcm")
    d_cond = keras.Input((None, cfg.cond_size), name="dec_cond")
    d_sa = keras.Input((cfg.gru_a,), name="dec_state_a")
    d_sb = keras.Input((cfg.gru_b,), name="dec_state_b")
    d_cpcm = L.Reshape((-1, 3 * cfg.embed_size), name="dec_pcm_reshape", **kw)(embed_sig(d_pcm))
    d_a, d_sa_out = gru_a(L.Concatenate(name="dec_gru_a_in", **kw)([d_cpcm, d_cond]),
                          initial_state=[d_sa])
    d_b, d_sb_out = gru_b(L.Concatenate(name="dec_gru_b_in", **kw)([d_a, d_cond]),
                          initial_state=[d_sb])
    d_pdf = tree(dual_fc(d_b))
    decoder = keras.Model([d_pcm, d_cond, d_sa, d_sb], [d_pdf, d_sa_out, d_sb_out], name="decoder")
    return LPCNetModels(model, encoder, decoder)


def use_native_ops(model: keras.Model, on: bool) -> None:
    """Switch the kit's CPU ops (not XLA ops) on or off in every layer of ``model`` that has one.

    FusedGRU's native loop and FastGaussianNoise's NumPy draws run as ``tf.numpy_function``;
    XLA (``jit_compile``) needs them off (then the layers are exactly keras.layers.GRU and
    GaussianNoise). Takes effect when the train / predict function is next traced.
    """
    for layer in model.layers:
        if isinstance(layer, FusedGRU):
            layer.fused = bool(on)
        elif isinstance(layer, FastGaussianNoise):
            layer.numpy_draws = bool(on)


# --- optimizer and compile (docs/training.md) --------------------------------------
def make_optimizer(lr: float = LR, decay: float = DECAY, loss_scale: bool = False):
    """Adam(beta_2 = 0.99) with the legacy ``lr / (1 + decay * step)`` as InverseTimeDecay."""
    schedule = keras.optimizers.schedules.InverseTimeDecay(
        initial_learning_rate=lr, decay_steps=1, decay_rate=decay)
    opt = keras.optimizers.Adam(learning_rate=schedule, beta_1=0.9, beta_2=0.99, epsilon=1e-7)
    if loss_scale:
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def compile_lpcnet(model: keras.Model, optimizer) -> keras.Model:
    """Sparse categorical cross-entropy on the tree pdf, with accuracy."""
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(name="loss"),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model


def current_lr(optimizer) -> float:
    """Learning rate the optimizer uses at its current step."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    lr = inner.learning_rate
    if callable(lr):
        lr = lr(inner.iterations)
    return float(keras.ops.convert_to_numpy(lr))


# --- weights by layer name: .keras and seed-style .h5 -----------------------------
def _var_key(name: str) -> str:
    return name.rsplit("/", 1)[-1].split(":")[0]


def model_weights(model: keras.Model) -> dict:
    """``{layer: {variable: array}}`` for the LPCNet weight layers of ``model``."""
    out = {}
    for layer in model.layers:
        if layer.name in WEIGHT_LAYERS:
            out[layer.name] = {_var_key(v.path): keras.ops.convert_to_numpy(v) for v in layer.weights}
    return out


def _read_h5(path) -> dict:
    import h5py

    out: dict = {}
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        for lname in WEIGHT_LAYERS:
            if lname not in root:
                continue
            found = {}
            root[lname].visititems(lambda n, obj: found.__setitem__(_var_key(n), np.asarray(obj))
                                   if isinstance(obj, h5py.Dataset) else None)
            out[lname] = found
    return out


def read_checkpoint_weights(path) -> dict:
    """Read LPCNet weights from a ``.keras`` model or a (seed-style) ``.h5`` file.

    Returns ``{layer: {variable: array}}``. Raises LpcnetError for a missing,
    unreadable or non-LPCNet file.
    """
    path = Path(path)
    if not path.is_file():
        raise LpcnetError(f"{path}: checkpoint not found")
    try:
        if path.suffix == ".keras":
            import zipfile

            if not zipfile.is_zipfile(path):
                raise ValueError("not a .keras zip archive")
            model = keras.saving.load_model(path, compile=False)
            weights = model_weights(model)
        else:
            weights = _read_h5(path)
    except LpcnetError:
        raise
    except Exception as exc:  # corrupt archives raise many types; report them as one line
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LpcnetError(f"{path}: cannot read checkpoint ({msg[:200]})") from None
    missing = [n for n in WEIGHT_LAYERS if not weights.get(n)]
    if missing:
        raise LpcnetError(f"{path}: not an LPCNet checkpoint (missing layers {missing})")
    return weights


def config_from_weights(weights: dict, base: ModelConfig = ModelConfig()) -> ModelConfig:
    """Infer GRU sizes, conditioning and feature widths from checkpoint weights (docs/model.md)."""
    try:
        na = min(weights["gru_a"]["recurrent_kernel"].shape)
        nb = min(weights["gru_b"]["recurrent_kernel"].shape)
        cond = weights["feature_dense2"]["kernel"].shape[1]
        pitch_embed = weights["embed_pitch"]["embeddings"].shape[1]
        embed = weights["embed_sig"]["embeddings"].shape[1]
        nfeat = weights["feature_conv1"]["kernel"].shape[1] - pitch_embed
    except (KeyError, IndexError) as exc:
        raise LpcnetError(f"checkpoint lacks LPCNet weight {exc}") from None
    return base.replace(gru_a=int(na), gru_b=int(nb), cond_size=int(cond), pitch_embed=int(pitch_embed),
                        embed_size=int(embed), nb_features=int(nfeat))


def assign_weights(model: keras.Model, weights: dict, source="checkpoint") -> None:
    """Copy ``{layer: {variable: array}}`` into ``model`` by layer and variable name.

    Every LPCNet weight must be present with the same shape; otherwise an
    LpcnetError names the first mismatch and nothing is assigned.
    """
    plan = []
    for layer in model.layers:
        if layer.name not in WEIGHT_LAYERS:
            continue
        src = weights.get(layer.name, {})
        for v in layer.weights:
            key = _var_key(v.path)
            if key not in src:
                raise LpcnetError(f"{source}: layer {layer.name} has no weight '{key}'")
            if tuple(src[key].shape) != tuple(v.shape):
                raise LpcnetError(f"{source}: {layer.name}/{key} has shape {tuple(src[key].shape)}, "
                                  f"the model needs {tuple(v.shape)} (different architecture?)")
            plan.append((v, src[key]))
    for v, value in plan:
        v.assign(value.astype(v.dtype) if hasattr(value, "astype") else value)


def save_seed_h5(model: keras.Model, path) -> Path:
    """Write weights in the seed's ``.h5`` layout: ``model_weights/<layer>/<layer>/<var>:0``."""
    import h5py

    from lpcnet.formats import atomic_output

    with atomic_output(path) as f:
        with h5py.File(f, "w") as h5:
            root = h5.create_group("model_weights")
            for lname, vars_ in model_weights(model).items():
                g = root.create_group(lname).create_group(lname)
                for key, value in vars_.items():
                    g.create_dataset(f"{key}:0", data=value)
    return Path(path)
