"""The end-to-end LPCNet variant (``--end2end``, docs/model.md): LPCs learnt by the network.

The standard model predicts each sample with the LPCs of the features (computed from the
cepstrum by the feature extractor). The end-to-end model computes them itself: the first 16
values of each frame's conditioning vector (``feature_dense2``, tanh, so |k| < 1) are
reflection coefficients, turned into LPCs by the step-up recursion (:class:`RC2LPC`, layer
``rc2lpc``); :class:`LPC2Preds` (layer ``lpc2preds``) predicts every sample from the 16 samples
before it; :class:`ExcitationCodes` forms the three µ-law inputs of the sample-rate network as
*continuous* codes (no rounding), which :class:`InterpEmbedding` (layer ``embed_sig``) embeds by
linear interpolation between table rows, so that the loss reaches the LPCs through the
prediction. The training target is the µ-law code of the clean signal (``dump-data -end2end``,
byte 3 of ``data.u8``); :class:`InterpMulawLoss` scores the pdf at the excitation that target
implies.

Conventions (docs/formats.md): A(z) = 1 + sum_{k=1..16} a_k z^-k, prediction
p[n] = -sum_k a_k x[n-k]; µ-law with scale 255/32768 as :func:`lpcnet.formats.lin2ulaw`, here
without rounding. Each layer and the loss have a NumPy reference (``*_numpy``, float64) that
the tests compare against. Everything is registered under ``lpcnet>`` (part of the ``.keras``
checkpoint format: never rename).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from lpcnet.config import END2END_GAMMA as DEFAULT_GAMMA
from lpcnet.formats import LPC_ORDER, PCM_SCALE

PACKAGE = "lpcnet"
#: Number of µ-law levels.
LEVELS = 256
_SCALE = 255.0 / PCM_SCALE
_LN256 = float(np.log(256.0))


# =============================================================================================
# NumPy references (float64)
# =============================================================================================
def lin2ulaw_continuous_numpy(x) -> np.ndarray:
    """Linear values (int16 scale) -> continuous µ-law codes in [0, 255] (no rounding)."""
    x = np.asarray(x, np.float64)
    return np.clip(128.0 + np.sign(x) * 128.0 * np.log1p(_SCALE * np.abs(x)) / _LN256, 0.0, 255.0)


def ulaw2lin_continuous_numpy(u) -> np.ndarray:
    """Continuous µ-law codes -> linear values (int16 scale); equals formats.ulaw2lin on integers."""
    d = np.asarray(u, np.float64) - 128.0
    return np.sign(d) / _SCALE * np.expm1(np.abs(d) / 128.0 * _LN256)


def rc2lpc_numpy(k) -> np.ndarray:
    """Reflection coefficients (..., p) -> LPCs a_1..a_p (..., p) by the step-up recursion.

    a^(1) = [k_1]; for i = 2..p: a_j^(i) = a_j^(i-1) + k_i a_{i-j}^(i-1) (j < i), a_i^(i) = k_i.
    """
    k = np.asarray(k, np.float64)
    a = k[..., :1]
    for i in range(1, k.shape[-1]):
        ki = k[..., i:i + 1]
        a = np.concatenate([a + ki * a[..., ::-1], ki], axis=-1)
    return a


def lpc2rc_numpy(a) -> np.ndarray:
    """LPCs a_1..a_p (..., p) -> reflection coefficients by the step-down recursion (inverse
    of :func:`rc2lpc_numpy`; needs |k_i| < 1, i.e. a minimum-phase A(z))."""
    a = np.array(a, np.float64)
    p = a.shape[-1]
    k = np.zeros_like(a)
    for i in range(p, 0, -1):
        ki = a[..., i - 1].copy()
        k[..., i - 1] = ki
        if i > 1:
            prev = a[..., :i - 1]
            a = (prev - ki[..., None] * prev[..., ::-1]) / (1.0 - ki[..., None] ** 2)
    return k


def lpc2preds_numpy(sig_codes, lpc, frame_size: int) -> np.ndarray:
    """Predictions (B, T) from signal codes (B, T) and per-frame LPCs (B, F, p), T = F * frame_size.

    ``pred[n] = -sum_{j=0..p-1} a_{j+1}[frame(n)] * x[n-j]`` with ``x = ulaw2lin(sig_codes)``:
    the signal code at sample n is that of the previous sample (``data.u8`` byte 0), so
    x[n-j] is the signal j+1 samples back. Samples before the sequence count as 0.
    """
    x = ulaw2lin_continuous_numpy(sig_codes)
    lpc = np.asarray(lpc, np.float64)
    b, t = x.shape
    p = lpc.shape[-1]
    padded = np.concatenate([np.zeros((b, p - 1)), x], axis=1)
    windows = np.stack([padded[:, p - 1 - j:p - 1 - j + t] for j in range(p)], axis=-1)
    per_sample = np.repeat(lpc, frame_size, axis=1)
    return -np.sum(windows * per_sample, axis=-1)


def excitation_codes_numpy(sig_codes, pred) -> np.ndarray:
    """The sample-rate network's three continuous codes (B, T, 3): [signal, µ-law(prediction),
    previous excitation ``lin2ulaw(ulaw2lin(signal) - pred[n-1])``] (pred[-1] = 0)."""
    sig = np.asarray(sig_codes, np.float64)
    pred = np.asarray(pred, np.float64)
    prev = np.concatenate([np.zeros_like(pred[:, :1]), pred[:, :-1]], axis=1)
    err = lin2ulaw_continuous_numpy(ulaw2lin_continuous_numpy(sig) - prev)
    return np.stack([sig, lin2ulaw_continuous_numpy(pred), err], axis=-1)


def interp_lookup_numpy(codes, table) -> np.ndarray:
    """Rows of ``table`` (V, D) at continuous positions ``codes`` (...): linear interpolation
    between rows i = clip(floor(c), 0, V-2) and i+1 with weight c - i -> (..., D)."""
    c = np.asarray(codes, np.float64)
    table = np.asarray(table, np.float64)
    lo = np.clip(np.floor(c), 0, len(table) - 2).astype(np.int64)
    frac = (c - lo)[..., None]
    return (1.0 - frac) * table[lo] + frac * table[lo + 1]


def excitation_target_numpy(y_true, pred_code) -> np.ndarray:
    """Continuous excitation code e = lin2ulaw(ulaw2lin(y) - ulaw2lin(pred_code))."""
    return lin2ulaw_continuous_numpy(ulaw2lin_continuous_numpy(y_true)
                                     - ulaw2lin_continuous_numpy(pred_code))


def interp_mulaw_numpy(y_true, y_pred, gamma: float = DEFAULT_GAMMA, eps: float = 1e-7) -> np.ndarray:
    """Per-sample loss of :class:`InterpMulawLoss`: y_true (...,) or (..., 1) signal codes,
    y_pred (..., 257) = [µ-law prediction, pdf]."""
    y_pred = np.asarray(y_pred, np.float64)
    y = np.asarray(y_true, np.float64).reshape(y_pred.shape[:-1])
    e = excitation_target_numpy(y, y_pred[..., 0])
    p = interp_lookup_numpy(e, np.eye(LEVELS))               # (..., 256) interpolation weights
    prob = np.sum(p * y_pred[..., 1:], axis=-1)
    ce = -np.log(np.clip(prob, eps, 1.0 - eps))
    return ce + gamma * np.abs(e - 128.0) / 128.0 * _LN256


# =============================================================================================
# TensorFlow / Keras ops
# =============================================================================================
def lin2ulaw_continuous(x):
    """Linear (int16 scale) -> continuous µ-law code in [0, 255], differentiable (no rounding)."""
    u = ops.sign(x) * (128.0 / _LN256) * ops.log1p(_SCALE * ops.abs(x))
    return ops.clip(128.0 + u, 0.0, 255.0)


def ulaw2lin_continuous(u):
    """Continuous µ-law code -> linear value (int16 scale), differentiable."""
    d = u - 128.0
    return ops.sign(d) * (1.0 / _SCALE) * ops.expm1(ops.abs(d) * (_LN256 / 128.0))


def _wide(dtype) -> str:
    """float64 stays float64 (gradient checks); anything else computes in float32."""
    return "float64" if keras.backend.standardize_dtype(dtype) == "float64" else "float32"


def excitation_target(y_true, pred_code):
    """Continuous excitation code e (..., ) of signal codes ``y_true`` given the µ-law prediction."""
    return lin2ulaw_continuous(ulaw2lin_continuous(y_true) - ulaw2lin_continuous(pred_code))


def _interp_prob(e, pdf):
    """pdf (..., V) read at continuous codes e (...): (1 - f) P[i] + f P[i+1], i = clip(floor e, 0, V-2)."""
    levels = pdf.shape[-1]
    lo = ops.clip(ops.floor(e), 0.0, levels - 2.0)
    frac = e - lo
    i = ops.cast(lo, "int32")[..., None]
    p_lo = ops.take_along_axis(pdf, i, axis=-1)[..., 0]
    p_hi = ops.take_along_axis(pdf, i + 1, axis=-1)[..., 0]
    return (1.0 - frac) * p_lo + frac * p_hi


def _split(y_true, y_pred):
    """(y (B, T) signal codes, prediction code (B, T), pdf (B, T, 256)) in y_pred's dtype."""
    y_pred = ops.convert_to_tensor(y_pred)
    y = ops.cast(ops.reshape(y_true, ops.shape(y_pred)[:-1]), y_pred.dtype)
    return y, y_pred[..., 0], y_pred[..., 1:]


def _cross_entropy(prob):
    eps = keras.config.epsilon()
    return -ops.log(ops.clip(prob, eps, 1.0 - eps))


def interp_mulaw(y_true, y_pred, gamma: float = DEFAULT_GAMMA):
    """Per-sample loss (B, T): cross-entropy of the pdf interpolated at the continuous excitation
    e = lin2ulaw(ulaw2lin(y) - ulaw2lin(prediction)), plus ``gamma * |e - 128| / 128 * ln 256``
    (which rewards small excitations, i.e. good predictions)."""
    y, pred_code, pdf = _split(y_true, y_pred)
    e = excitation_target(y, pred_code)
    return _cross_entropy(_interp_prob(e, pdf)) + gamma * ops.abs(e - 128.0) * (_LN256 / 128.0)


@keras.saving.register_keras_serializable(package=PACKAGE)
def e2e_cross_entropy(y_true, y_pred):
    """Metric: cross-entropy at the excitation code rounded to an integer (0..255)."""
    y, pred_code, pdf = _split(y_true, y_pred)
    code = ops.cast(ops.clip(ops.round(excitation_target(y, pred_code)), 0.0, 255.0), "int32")
    return _cross_entropy(ops.take_along_axis(pdf, code[..., None], axis=-1)[..., 0])


@keras.saving.register_keras_serializable(package=PACKAGE)
def e2e_interp_cross_entropy(y_true, y_pred):
    """Metric: the interpolated cross-entropy alone (the loss at gamma = 0)."""
    return interp_mulaw(y_true, y_pred, gamma=0.0)


@keras.saving.register_keras_serializable(package=PACKAGE)
def e2e_excitation_variance(y_true, y_pred):
    """Metric: (e - 128)^2 in µ-law codes (mean: the excitation's variance about zero)."""
    y, pred_code, _ = _split(y_true, y_pred)
    return ops.square(excitation_target(y, pred_code) - 128.0)


@keras.saving.register_keras_serializable(package=PACKAGE)
def e2e_loss_gamma1(y_true, y_pred):
    """Metric: the loss with gamma = 1 (comparable across runs with different --gamma)."""
    return interp_mulaw(y_true, y_pred, gamma=1.0)


@keras.saving.register_keras_serializable(package=PACKAGE)
def e2e_accuracy(y_true, y_pred):
    """Metric: 1 where the pdf's most likely code is the rounded excitation code, else 0."""
    y, pred_code, pdf = _split(y_true, y_pred)
    code = ops.clip(ops.round(excitation_target(y, pred_code)), 0.0, 255.0)
    return ops.cast(ops.equal(ops.cast(ops.argmax(pdf, axis=-1), code.dtype), code), pdf.dtype)


#: Metric name -> per-sample function: what ``lpcnet train`` logs for the end-to-end model
#: (``accuracy`` keeps the standard model's key).
METRICS = {"accuracy": e2e_accuracy, "cross_entropy": e2e_cross_entropy,
           "interp_cross_entropy": e2e_interp_cross_entropy,
           "excitation_variance": e2e_excitation_variance, "loss_gamma1": e2e_loss_gamma1}


def e2e_metrics() -> list:
    """Fresh Keras metrics (means over samples) of :data:`METRICS`, for ``compile``."""
    return [keras.metrics.MeanMetricWrapper(fn, name=name) for name, fn in METRICS.items()]


@keras.saving.register_keras_serializable(package=PACKAGE)
class InterpMulawLoss(keras.losses.Loss):
    """The end-to-end loss (:func:`interp_mulaw`), mean over samples.

    ``y_true`` (B, T, 1): µ-law codes of the clean signal (``data.u8`` byte 3 of
    ``dump-data -end2end``); ``y_pred`` (B, T, 257): the model's output [µ-law prediction, pdf].
    The interpolation index is clip(floor(e), 0, 254) with weight e - index, so e = 255 reads
    P[255] (the seed's roll read P[254] there).

    Args:
        gamma: weight of the excitation-size term (2).
    """

    def __init__(self, gamma: float = DEFAULT_GAMMA, name: str = "interp_mulaw",
                 reduction: str = "sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.gamma = float(gamma)

    def call(self, y_true, y_pred):
        return interp_mulaw(y_true, y_pred, self.gamma)

    def get_config(self):
        config = super().get_config()
        config.update({"gamma": self.gamma})
        return config


# =============================================================================================
# Layers
# =============================================================================================
@keras.saving.register_keras_serializable(package=PACKAGE)
class InterpEmbedding(keras.layers.Layer):
    """Embedding of continuous codes (layer ``embed_sig`` of the end-to-end model).

    Row position c in [0, V-1] reads ``(1 - f) W[i] + f W[i+1]`` with i = clip(floor(c), 0, V-2),
    f = c - i: at integer codes exactly ``W[c]`` (so the decoder and synthesis, which feed
    integer codes, see the plain embedding), and differentiable in c. Weight ``embeddings``
    (V, D), the standard ``embed_sig`` shape. Positions are taken in float32 whatever the
    dtype policy (bfloat16 cannot hold a code's fraction); the output is in the compute dtype.

    Call arguments:
        inputs: codes (..., k), int or float, in [0, V-1].

    Returns:
        (..., k, D).
    """

    def __init__(self, input_dim: int = LEVELS, output_dim: int = 128,
                 embeddings_initializer="uniform", **kwargs):
        kwargs["autocast"] = False            # keep float positions in float32 under AMP
        super().__init__(**kwargs)
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    def build(self, input_shape):
        self.embeddings = self.add_weight(name="embeddings", shape=(self.input_dim, self.output_dim),
                                          initializer=self.embeddings_initializer)

    def call(self, inputs):
        wide = _wide(self.compute_dtype)
        c = ops.cast(inputs, wide)
        lo = ops.clip(ops.floor(c), 0.0, self.input_dim - 2.0)
        frac = ops.expand_dims(c - lo, -1)
        i = ops.cast(lo, "int32")
        table = ops.cast(self.embeddings, wide)
        out = (1.0 - frac) * ops.take(table, i, axis=0) + frac * ops.take(table, i + 1, axis=0)
        return ops.cast(out, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        config = super().get_config()
        config.update({"input_dim": self.input_dim, "output_dim": self.output_dim,
                       "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer)})
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class RC2LPC(keras.layers.Layer):
    """Reflection coefficients -> LPCs by the step-up recursion (layer ``rc2lpc``; no weights).

    k = the first ``order`` values of the input; a^(1) = [k_1]; for i = 2..order:
    a_j^(i) = a_j^(i-1) + k_i a_{i-j}^(i-1) (j = 1..i-1), a_i^(i) = k_i. With |k_i| < 1 (the
    conditioning is a tanh output) A(z) = 1 + sum a_j z^-j is minimum phase. A model holding a
    layer of this name is an end-to-end model (checkpoints, weight blobs: docs/model.md).

    Call arguments:
        inputs: (..., C) with C >= order.

    Returns:
        (..., order) LPCs a_1..a_order.
    """

    def __init__(self, order: int = LPC_ORDER, **kwargs):
        super().__init__(**kwargs)
        self.order = int(order)

    def call(self, inputs):
        k = ops.cast(inputs[..., :self.order], self.compute_dtype)
        a = k[..., :1]
        for i in range(1, self.order):
            ki = k[..., i:i + 1]
            a = ops.concatenate([a + ki * ops.flip(a, axis=-1), ki], axis=-1)
        return a

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.order,)

    def get_config(self):
        config = super().get_config()
        config.update({"order": self.order})
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class LPC2Preds(keras.layers.Layer):
    """Per-sample linear prediction from the past signal and the frame's LPCs (layer ``lpc2preds``).

    ``pred[n] = -sum_{j=0..p-1} a_{j+1} x[n-j]``, x = ulaw2lin(pcm[..., 0]) (the signal code at
    sample n is the previous sample's, ``data.u8`` byte 0), a = the LPCs of frame
    ``n // frame_size``; samples before the sequence are 0 (as the synthesis' initial history).

    Call arguments:
        inputs: ``[pcm (B, T, k) codes, lpc (B, F, p)]`` with T = F * frame_size.

    Returns:
        (B, T, 1) predictions, linear (int16 scale).
    """

    def __init__(self, frame_size: int = 160, **kwargs):
        super().__init__(**kwargs)
        self.frame_size = int(frame_size)

    def call(self, inputs):
        pcm, lpc = inputs
        dt = self.compute_dtype
        lpc = ops.cast(lpc, dt)
        order = int(lpc.shape[-1])
        x = ulaw2lin_continuous(ops.cast(pcm[..., 0], dt))                  # (B, T)
        batch, steps = ops.shape(x)[0], ops.shape(x)[1]
        padded = ops.pad(x, [[0, 0], [order - 1, 0]])
        windows = ops.stack([padded[:, order - 1 - j:order - 1 - j + steps] for j in range(order)],
                            axis=-1)                                        # (B, T, p): x[n - j]
        windows = ops.reshape(windows, (batch, -1, self.frame_size, order))
        pred = -ops.matmul(windows, ops.expand_dims(lpc, -1))               # (B, F, fs, 1)
        return ops.reshape(pred, (batch, steps, 1))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0][:2]) + (1,)

    def get_config(self):
        config = super().get_config()
        config.update({"frame_size": self.frame_size})
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class ExcitationCodes(keras.layers.Layer):
    """The three continuous µ-law inputs of the sample-rate network (layer ``e2e_codes``).

    ``[signal, lin2ulaw(pred[n]), lin2ulaw(ulaw2lin(signal) - pred[n-1])]``: the signal code
    (``pcm[..., 0]``, the previous sample), the prediction of this sample and the previous
    sample's excitation. ``pred[n-1]`` is a shift by one sample with pred[-1] = 0 (zero fill, no
    wrap-around: the prediction of the sample before the sequence from a zero history).

    Call arguments:
        inputs: ``[pcm (B, T, k) codes, pred (B, T, 1) linear]``.

    Returns:
        (B, T, 3) codes in [0, 255], not rounded.
    """

    def call(self, inputs):
        pcm, pred = inputs
        dt = self.compute_dtype
        sig = ops.cast(pcm[..., :1], dt)
        pred = ops.cast(pred, dt)
        prev = ops.pad(pred[:, :-1], [[0, 0], [1, 0], [0, 0]])
        err = lin2ulaw_continuous(ulaw2lin_continuous(sig) - prev)
        return ops.concatenate([sig, lin2ulaw_continuous(pred), err], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0][:2]) + (3,)


@keras.saving.register_keras_serializable(package=PACKAGE)
class E2EOutput(keras.layers.Layer):
    """Model output of the end-to-end variant (layer ``e2e_output``): ``[codes[..., 1:2], pdf]``,
    the continuous µ-law prediction then the pdf (B, T, 1 + 256)."""

    def call(self, inputs):
        codes, pdf = inputs
        return ops.concatenate([ops.cast(codes[..., 1:2], self.compute_dtype),
                                ops.cast(pdf, self.compute_dtype)], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1][:-1]) + (1 + input_shape[1][-1],)


#: Registered names of this module (part of the .keras format; tests pin them).
REGISTERED = ("InterpEmbedding", "RC2LPC", "LPC2Preds", "ExcitationCodes", "E2EOutput",
              "InterpMulawLoss", "e2e_cross_entropy", "e2e_interp_cross_entropy",
              "e2e_excitation_variance", "e2e_loss_gamma1", "e2e_accuracy")
