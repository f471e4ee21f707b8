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
from lpcnet.formats import LPC_ORDER
# Imported for its registrations: .keras checkpoints of the end-to-end model name its layers and loss.
from lpcnet import end2end as _end2end  # noqa: F401,E402
from lpcnet.layers import (FastGaussianNoise, FusedGRU, MDense, PCMInit, QuantRegularizer, RepeatFrames,
                           TreeToPdf, WeightClip)

#: Layers holding weights, in the order of docs/model.md.
WEIGHT_LAYERS = ("embed_pitch", "feature_conv1", "feature_conv2", "feature_dense1",
                 "feature_dense2", "embed_sig", "gru_a", "gru_b", "dual_fc")
#: The layer that makes a model end-to-end (docs/model.md, End-to-end variant): weights dicts
#: of such a model hold this key (value ``{}``: the layer has no variables), seed-style .h5
#: files an (empty) ``model_weights/rc2lpc`` group.
END2END_LAYER = "rc2lpc"


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

    ``call`` computes the network of the functional graph with GRU A's and GRU B's input
    projections folded (:meth:`FusedGRU.call_parts`: the µ-law embeddings times GRU A's
    kernel as table lookups, the conditioning projected once per frame) on the CPU;
    ``fold_inputs = False`` (or a GPU, or a graph that is not LPCNet's) runs the
    functional graph itself. With the native ops on, the training step also computes the
    dual FC, the tree and the compiled loss in one native op (:func:`lpcnet.fused_gru.tree_head`).
    Same weights, same maths (docs/training.md, Speed).
    """

    gradient_reducer = None
    metrics_reducer = None
    #: None, or ``(grads, logs) -> (grads, logs)``: both reductions in one collective (Horovod: one
    #: allreduce and one wait for the other ranks per step instead of two); then the metrics are
    #: computed before the update (from the same predictions) and the two hooks above are not used
    #: in the step (``metrics_reducer`` still averages the epoch-end logs).
    step_reducer = None
    #: Fold the GRU input projections in ``call`` (read when the step is traced).
    fold_inputs = True

    def call(self, inputs, training=None, mask=None):
        no_mask = mask is None or all(m is None for m in keras.tree.flatten(mask))
        parts = self._folded_layers(inputs) if no_mask else None
        if parts is None:
            return super().call(inputs, training=training, mask=mask)
        return parts["tree_to_pdf"](parts["dual_fc"](self._folded_gru_b(parts, inputs, training)))

    def _folded_layers(self, inputs):
        """The layers of the folded path for ``inputs``, or None (then the graph runs)."""
        if not self.fold_inputs or not isinstance(inputs, (list, tuple)) or len(inputs) != 3:
            return None
        return _fold_layers(self)

    def _folded_gru_b(self, p, inputs, training):
        """GRU B's outputs (B, T, N_B) with both GRU input projections folded (``call``)."""
        pcm, feat, pitch = (keras.ops.convert_to_tensor(x, dtype=t.dtype)
                            for x, t in zip(inputs, self.inputs))
        pe = p["pitch_reshape"](p["embed_pitch"](pitch))
        x = p["feature_concat"]([feat, pe])
        cond = p["feature_dense2"](p["feature_dense1"](p["feature_conv2"](p["feature_conv1"](x))))
        frame_size = p["upsample"].frame_size
        a = p["gru_a"].call_parts(codes=pcm, embeddings=p["embed_sig"].embeddings, frames=cond,
                                  frame_size=frame_size, training=training)
        a = p["gru_a_noise"](a, training=training)
        return p["gru_b"].call_parts(dense=a, frames=cond, frame_size=frame_size, training=training)

    def _forward_and_loss(self, data):
        """``(y_pred, loss)`` of a training step: ``self(x)`` and ``compute_loss``, or the same
        through the native output head (:func:`lpcnet.fused_gru.tree_head`: dual FC, tree
        and the compiled SparseCategoricalCrossentropy in one op) where it applies."""
        import tensorflow as tf

        x, y = data[0], data[1]
        weighted = len(data) > 2 and data[2] is not None
        parts = None if weighted else self._folded_layers(x)
        if parts is None or not _native_head_applies(self, parts):
            y_pred = self(x, training=True)
            return y_pred, self.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
        from lpcnet.fused_gru import tree_head

        dual_fc = parts["dual_fc"]
        b = self._folded_gru_b(parts, x, True)
        y_pred, per_sample = tree_head(b, dual_fc.kernel, dual_fc.bias, dual_fc.factor, y,
                                       eps=keras.config.epsilon())
        # What compute_loss does with the compiled loss ("sum_over_batch_size": the mean, then
        # divided by the replicas of a tf.distribute strategy) plus the regularisation losses.
        loss = tf.reduce_mean(per_sample)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            loss = loss / replicas
        for extra in self.losses:
            loss = loss + tf.reduce_sum(tf.cast(extra, loss.dtype))
        return y_pred, loss

    def train_step(self, data):
        import tensorflow as tf

        x, y = data[0], data[1]
        with tf.GradientTape() as tape:
            y_pred, loss = self._forward_and_loss(data)
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
        if self.step_reducer is not None:
            reducer, self.metrics_reducer = self.metrics_reducer, None    # (while tracing)
            try:
                logs = self.compute_metrics(x, y, y_pred)
            finally:
                self.metrics_reducer = reducer
            grads, logs = self.step_reducer(grads, logs)
            self._apply_counted(grads, variables)
            return logs
        if self.gradient_reducer is not None:
            grads = self.gradient_reducer(grads)
        self._apply_counted(grads, variables)
        return self.compute_metrics(x, y, y_pred)

    def _apply_counted(self, grads, variables):
        """Apply the gradients; ``optimizer.iterations`` counts every batch.

        Keras 3's LossScaleOptimizer (float16 AMP) leaves ``iterations`` unchanged on a step it
        skips for non-finite gradients (Keras 2's, the seed's, counted it). The kit's step
        counter is ``iterations`` (LR decay, sparsify schedule, data position of ``--resume``:
        docs/training.md), so a skipped step is counted here.
        """
        import tensorflow as tf

        opt = self.optimizer
        if not isinstance(opt, keras.optimizers.LossScaleOptimizer):
            opt.apply(grads, variables)
            return
        skipped = tf.logical_not(opt.check_finite(grads))
        opt.apply(grads, variables)
        opt.inner_optimizer.iterations.assign_add(tf.cast(skipped, opt.inner_optimizer.iterations.dtype))

    def get_metrics_result(self):
        # Used by compute_metrics (inside the compiled step: per-step logs) and by fit at
        # epoch end (eagerly, on every rank alike: the history), so both are averaged.
        logs = super().get_metrics_result()
        if self.metrics_reducer is not None:
            logs = self.metrics_reducer(logs)
        return logs


#: The layers ``LPCNetModel.call`` wires by name when it folds the GRU inputs, and their types.
_FOLD_LAYERS = {"embed_pitch": keras.layers.Embedding, "pitch_reshape": keras.layers.Reshape,
                "feature_concat": keras.layers.Concatenate, "feature_conv1": keras.layers.Conv1D,
                "feature_conv2": keras.layers.Conv1D, "feature_dense1": keras.layers.Dense,
                "feature_dense2": keras.layers.Dense, "upsample": RepeatFrames,
                "embed_sig": keras.layers.Embedding, "gru_a": FusedGRU,
                "gru_a_noise": keras.layers.GaussianNoise, "gru_b": FusedGRU,
                "dual_fc": MDense, "tree_to_pdf": TreeToPdf}


def _fold_layers(model: keras.Model):
    """``{name: layer}`` for LPCNetModel.call's folded path, or None where it does not apply.

    None on a GPU (Keras' cuDNN GRU is the fast path there), on another backend, for the
    end-to-end model (its codes are continuous: no table lookups), or when the model is not
    build_lpcnet's standard graph (a layer missing or of another type, or GRU A's kernel rows
    not 3 embeddings + the conditioning).
    """
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        return None
    found = {layer.name: layer for layer in model.layers}
    if END2END_LAYER in found:
        return None
    if not all(isinstance(found.get(name), kind) for name, kind in _FOLD_LAYERS.items()):
        return None
    gru_a, gru_b, cond = found["gru_a"], found["gru_b"], found["feature_dense2"].units
    rows_a = 3 * found["embed_sig"].output_dim + cond
    rows_b = gru_a.units + cond
    if (gru_a.cell.kernel.shape[0] != rows_a or gru_b.cell.kernel.shape[0] != rows_b
            or not gru_a.can_call_parts() or not gru_b.can_call_parts()):
        return None
    return found


def _native_head_applies(model, parts) -> bool:
    """True when the training step can use the native output head: the native ops are on (the
    GRUs fused, e.g. not under XLA) and built, the head is MDense (sigmoid) + TreeToPdf, and the
    compiled loss is a default SparseCategoricalCrossentropy on probabilities."""
    from lpcnet import fused_gru

    dual_fc, tree, loss = parts["dual_fc"], parts["tree_to_pdf"], getattr(model, "loss", None)
    if not (parts["gru_b"].fused and fused_gru.available()):
        return False
    if dual_fc.activation is not keras.activations.sigmoid or tree.levels != dual_fc.units:
        return False
    if type(loss) is not keras.losses.SparseCategoricalCrossentropy:
        return False
    cfg = loss.get_config()
    return (not cfg.get("from_logits") and cfg.get("ignore_class") is None
            and cfg.get("reduction") == "sum_over_batch_size")


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
        With ``cfg.end2end`` (docs/model.md, End-to-end variant) only pcm[..., 0] is read,
        the output is (B,T,257) = [continuous µ-law prediction, pdf], and the encoder also
        returns the LPCs (B,F,16); the decoder is the standard one.
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
    if cfg.end2end:
        from lpcnet.end2end import InterpEmbedding

        embed_sig = InterpEmbedding(cfg.pcm_levels, cfg.embed_size,
                                    embeddings_initializer=PCMInit(seed=seed), name="embed_sig", **kw)
    else:
        embed_sig = L.Embedding(cfg.pcm_levels, cfg.embed_size,
                                embeddings_initializer=PCMInit(seed=seed), name="embed_sig", **kw)
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
    if cfg.end2end:       # LPCs from the conditioning; continuous codes (lpcnet.end2end)
        from lpcnet.end2end import E2EOutput, ExcitationCodes, LPC2Preds, RC2LPC

        # The prediction maths runs in float32 (or wider) under mixed precision.
        e2e_kw = {"dtype": "float32"} if dtype_policy is not None else {}
        lpc = RC2LPC(LPC_ORDER, name=END2END_LAYER, **e2e_kw)(cfeat)
        encoder = keras.Model([feat, pitch], [cfeat, lpc], name="encoder")
        pred = LPC2Preds(cfg.frame_size, name="lpc2preds", **e2e_kw)([pcm, lpc])
        codes = ExcitationCodes(name="e2e_codes", **e2e_kw)([pcm, pred])
    else:
        encoder = keras.Model([feat, pitch], cfeat, name="encoder")
        codes = pcm

    # Sample-rate network.
    up = RepeatFrames(cfg.frame_size, name="upsample", **kw)(cfeat)
    cpcm = L.Reshape((-1, 3 * cfg.embed_size), name="pcm_reshape", **kw)(embed_sig(codes))
    a_out, _ = gru_a(L.Concatenate(name="gru_a_in", **kw)([cpcm, up]))
    a_out = FastGaussianNoise(cfg.noise_std, seed=seed, name="gru_a_noise", **kw)(a_out)
    b_out, _ = gru_b(L.Concatenate(name="gru_b_in", **kw)([a_out, up]))
    pdf = tree(dual_fc(b_out))
    if cfg.end2end:
        pdf = E2EOutput(name="e2e_output", **e2e_kw)([codes, pdf])
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

    FusedGRU's native loop, FastGaussianNoise's host draws and (following the GRUs) the
    native output head of the training step run as ``tf.numpy_function``; XLA
    (``jit_compile``) needs them off (then the layers are exactly keras.layers.GRU and
    GaussianNoise; the folded GRU inputs stay, as TensorFlow ops). Takes effect when the
    train / predict function is next traced.
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


def compile_lpcnet(model: keras.Model, optimizer, gamma: float | None = None) -> keras.Model:
    """Sparse categorical cross-entropy on the tree pdf, with accuracy.

    The end-to-end model (:func:`is_end2end_model`) gets the interpolated µ-law loss with weight
    ``gamma`` (None: 2) and its metrics (:mod:`lpcnet.end2end`); ``gamma`` is refused for the
    standard model.
    """
    if is_end2end_model(model):
        from lpcnet.end2end import DEFAULT_GAMMA, InterpMulawLoss, e2e_metrics

        model.compile(optimizer=optimizer,
                      loss=InterpMulawLoss(DEFAULT_GAMMA if gamma is None else gamma),
                      metrics=e2e_metrics())
        return model
    if gamma is not None:
        raise LpcnetError("gamma (--gamma) applies to the end-to-end model only (--end2end)")
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(name="loss"),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model


def is_end2end(weights: dict) -> bool:
    """True for the weights (``{layer: {variable: array}}``) of an end-to-end model."""
    return END2END_LAYER in weights


def variant_name(end2end: bool) -> str:
    """"end-to-end" or "standard" (for messages)."""
    return "end-to-end" if end2end else "standard"


def is_end2end_model(model: keras.Model) -> bool:
    """True when ``model`` is an end-to-end LPCNet (it has the ``rc2lpc`` layer)."""
    return any(layer.name == END2END_LAYER for layer in model.layers)


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
        elif layer.name == END2END_LAYER:
            out[END2END_LAYER] = {}
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
            order = SEED_WEIGHT_ORDER[lname]
            if len(order) == 1 and len(found) == 1 and order[0] not in found:
                # The seed's end-to-end embed_sig (its interpolating embedding) holds its table
                # in a plain tf.Variable, which Keras 2 saves as Variable:0.
                found = {order[0]: next(iter(found.values()))}
            out[lname] = found
        if isinstance(root.get(END2END_LAYER), h5py.Group):
            out[END2END_LAYER] = {}
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
    check_weights_finite(weights, path)
    return weights


def check_weights_finite(weights: dict, source="checkpoint") -> None:
    """Raise LpcnetError naming the first ``{layer: {variable: array}}`` weight holding NaN/Inf."""
    for layer, variables in weights.items():
        for key, value in variables.items():
            value = np.asarray(value)
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                n = int(np.count_nonzero(~np.isfinite(value)))
                raise LpcnetError(f"{source}: weight {layer}/{key} holds {n} NaN/Inf value(s) of "
                                  f"{value.size} (a diverged model?); refusing to use it")


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
                        embed_size=int(embed), nb_features=int(nfeat), end2end=is_end2end(weights))


def assign_weights(model: keras.Model, weights: dict, source="checkpoint") -> None:
    """Copy ``{layer: {variable: array}}`` into ``model`` by layer and variable name.

    Every LPCNet weight must be present with the same shape, and the weights must be of the
    same variant (standard or end-to-end); otherwise an LpcnetError names the first mismatch
    and nothing is assigned.
    """
    if is_end2end(weights) != is_end2end_model(model):
        raise LpcnetError(f"{source}: weights of the {variant_name(is_end2end(weights))} LPCNet, "
                          f"the model is the {variant_name(is_end2end_model(model))} one (--end2end)")
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


#: Variables of each weight layer in the order Keras 2 lists them (``layer.weights``).
SEED_WEIGHT_ORDER = {"embed_pitch": ("embeddings",), "feature_conv1": ("kernel", "bias"),
                     "feature_conv2": ("kernel", "bias"), "feature_dense1": ("kernel", "bias"),
                     "feature_dense2": ("kernel", "bias"), "embed_sig": ("embeddings",),
                     "gru_a": ("kernel", "recurrent_kernel", "bias"),
                     "gru_b": ("kernel", "recurrent_kernel", "bias"),
                     "dual_fc": ("kernel", "bias", "factor")}
#: ``keras_version`` written into seed-style files: the Keras 2 (tf_keras) release whose HDF5
#: layout :func:`write_seed_h5` reproduces and whose ``load_weights`` the tests run on it.
KERAS2_VERSION = "2.18.0"


#: The GRU cells' names in seed-style files: TensorFlow releases of the seed's time made cell
#: names unique within the model, so GRU B's weights are under ``gru_cell_1``, where the seed's
#: test and dump scripts open them (tf_keras 2.18 names both ``gru_cell``; its ``load_weights``
#: follows the ``weight_names`` attribute and reads either).
SEED_GRU_CELLS = {"gru_a": "gru_cell", "gru_b": "gru_cell_1"}


def _seed_weight_name(layer: str, var: str) -> str:
    """Keras 2's variable name: GRU weights live in the layer's cell (:data:`SEED_GRU_CELLS`)."""
    return f"{layer}/{SEED_GRU_CELLS[layer]}/{var}:0" if layer in SEED_GRU_CELLS else f"{layer}/{var}:0"


def write_seed_h5(weights: dict, path) -> Path:
    """Write ``{layer: {variable: array}}`` as a seed-style ``.h5`` file, atomically.

    The layout and attributes are those Keras 2 (tf_keras) writes for a model saved as
    ``.h5`` (docs/promises.md, Seed-style .h5 files): root attributes ``backend``, ``keras_version``;
    group ``model_weights`` with ``layer_names``, ``backend``, ``keras_version``; per
    layer a group ``<layer>`` with ``weight_names`` (in Keras 2's order) and the datasets
    ``<layer>/<layer>[/gru_cell|/gru_cell_1]/<variable>:0``. So the predecessor's
    ``model.load_weights(path, by_name=True)`` finds every weight, and this kit reads it
    back by layer name. There is no ``model_config``: the file holds weights, not a model.
    End-to-end weights (:func:`is_end2end`) add an ``rc2lpc`` group without weights (Keras 2
    writes one for every layer; the seed recognises the variant by it).
    """
    import h5py

    from lpcnet.formats import atomic_output

    check_weights_finite(weights, path)
    backend, version = b"tensorflow", KERAS2_VERSION.encode("utf8")
    layers = WEIGHT_LAYERS + ((END2END_LAYER,) if is_end2end(weights) else ())
    with atomic_output(path) as f:
        with h5py.File(f, "w") as h5:
            # Keras 2 stores the root pair as str (UTF-8), the model_weights pair as bytes (ASCII)
            h5.attrs["backend"], h5.attrs["keras_version"] = backend.decode(), version.decode()
            root = h5.create_group("model_weights")
            # lists of bytes, stored as Keras 2's save_attributes_to_hdf5_group stores them
            root.attrs["layer_names"] = [n.encode("utf8") for n in layers]
            root.attrs["backend"], root.attrs["keras_version"] = backend, version
            for lname in sorted(layers):                 # Keras 2 creates the groups sorted by name
                g = root.create_group(lname)
                order = SEED_WEIGHT_ORDER.get(lname, ())
                names = [_seed_weight_name(lname, v).encode("utf8") for v in order]
                g.attrs["weight_names"] = names
                for name, var in zip(names, order):
                    value = np.asarray(weights[lname][var])
                    g.create_dataset(name.decode("utf8"), value.shape, dtype=value.dtype)[...] = value
            root.create_group("top_level_model_weights").attrs["weight_names"] = []
    return Path(path)


def save_seed_h5(model: keras.Model, path) -> Path:
    """Write ``model``'s LPCNet weights as a seed-style ``.h5`` file (:func:`write_seed_h5`)."""
    return write_seed_h5(model_weights(model), path)
