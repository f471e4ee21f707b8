"""Custom Keras 3 layers, initialiser, constraint and regulariser of LPCNet (spec C.4-C.6).

Everything here is registered for serialisation under the ``lpcnet`` package,
so ``keras.saving.load_model`` restores checkpoints without ``custom_objects``.
Layers compute in ``self.compute_dtype`` (mixed precision safe); variables stay
float32.

References:
    J.-M. Valin, J. Skoglund, "LPCNet: improving neural speech synthesis through
    linear prediction", ICASSP 2019 (eq. 3-4: dual fully-connected layer);
    J.-M. Valin et al., "Neural speech synthesis on a shoestring", ICASSP 2022
    (hierarchical / binary-tree probability output).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

PACKAGE = "lpcnet"


def _tree_tables(levels: int = 256):
    """(nodes, bits) int arrays of shape (depth, levels) for the binary tree of spec C.5.

    At depth b the node of code v is ``2**b + (v >> (depth - b))`` and the bit
    taken is ``(v >> (depth - 1 - b)) & 1`` (MSB first).
    """
    depth = int(round(math.log2(levels)))
    v = np.arange(levels)
    nodes = np.stack([(1 << b) + (v >> (depth - b)) for b in range(depth)])
    bits = np.stack([(v >> (depth - 1 - b)) & 1 for b in range(depth)])
    return nodes.astype(np.int32), bits.astype(np.int32)


def tree_to_pdf_numpy(q: np.ndarray) -> np.ndarray:
    """Reference binary tree -> pdf in NumPy (float64): P(v) = prod_b (bit ? q[node] : 1 - q[node])."""
    q = np.asarray(q, dtype=np.float64)
    nodes, bits = _tree_tables(q.shape[-1])
    p = np.ones(q.shape, dtype=np.float64)
    for b in range(nodes.shape[0]):
        g = q[..., nodes[b]]
        p = p * np.where(bits[b] == 1, g, 1.0 - g)
    return p


# --- initialiser, constraint, regulariser ----------------------------------------
@keras.saving.register_keras_serializable(package=PACKAGE)
class PCMInit(keras.initializers.Initializer):
    """Embedding initialiser for µ-law codes: a linear ramp plus unit-variance noise.

    ``W[i, j] = gain * (U(-sqrt 3, sqrt 3) + sqrt(12) * (i - (R - 1) / 2) / R)``
    for an (R, C) matrix, i.e. ``(i - 127.5) / 256`` for the 256 codes (spec C.6).

    Args:
        gain: overall scale (0.1).
        seed: integer seed for reproducible draws (None: NumPy's global generator).

    Example:
        >>> w = PCMInit(seed=0)((256, 128))
    """

    def __init__(self, gain: float = 0.1, seed: int | None = None):
        self.gain = float(gain)
        self.seed = seed

    def __call__(self, shape, dtype=None):
        rows = int(shape[0])
        cols = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        rng = np.random.default_rng(self.seed if self.seed is not None
                                    else np.random.randint(0, 2**31 - 1))
        a = rng.uniform(-1.7321, 1.7321, (rows, cols))
        a += np.sqrt(12.0) * (np.arange(rows)[:, None] - (rows - 1) / 2.0) / rows
        w = (self.gain * a).reshape(tuple(int(s) for s in shape)).astype(np.float32)
        return ops.convert_to_tensor(w, dtype=dtype or "float32")

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class WeightClip(keras.constraints.Constraint):
    """Pairwise column clip: ``|w[r, 2k]| + |w[r, 2k+1]| <= c`` for every row r (spec C.6).

    Both entries of a pair are scaled by ``c / max(c, |w[r, 2k]| + |w[r, 2k+1]|)``,
    which keeps the int8 SIMD dot products of the C decoder from saturating.

    Args:
        c: the bound (0.992).
    """

    def __init__(self, c: float = 0.992, **kwargs):
        self.c = float(c)

    def __call__(self, w):
        shape = tuple(w.shape)
        pairs = ops.reshape(w, shape[:-1] + (shape[-1] // 2, 2))
        total = ops.sum(ops.abs(pairs), axis=-1, keepdims=True)
        scale = self.c / ops.maximum(self.c, total)
        return ops.reshape(pairs * ops.cast(scale, pairs.dtype), shape)

    def get_config(self):
        return {"c": self.c}


@keras.saving.register_keras_serializable(package=PACKAGE)
class QuantRegularizer(keras.regularizers.Regularizer):
    """Pulls weights towards multiples of 1/128 for int8 export (spec C.6).

    ``strength * mean((1.0001 - cos(2 pi (128 w - round(128 w))))**(1/4))``.

    Args:
        strength: weight of the penalty (0.01).
    """

    def __init__(self, strength: float = 0.01):
        self.strength = float(strength)

    def __call__(self, x):
        x = ops.cast(x, "float32")
        frac = 128.0 * x - ops.round(128.0 * x)
        return self.strength * ops.mean(ops.power(1.0001 - ops.cos(2.0 * np.pi * frac), 0.25))

    def get_config(self):
        return {"strength": self.strength}


# --- layers ----------------------------------------------------------------------
@keras.saving.register_keras_serializable(package=PACKAGE)
class MDense(keras.layers.Layer):
    """Dual fully-connected layer (LPCNet paper eq. 3-4, spec C.4).

    ``t[u, c] = tanh(sum_i v_i K[u, i, c] + bias[u, c])``;
    ``out[u] = act(sum_c factor[u, c] t[u, c])``.

    Args:
        units: number of outputs (256).
        channels: number of tanh branches per output (2).
        activation: output activation ("sigmoid" for the binary tree).
        kernel_initializer, bias_initializer, factor_initializer: initialisers
            of ``kernel`` (units, input_dim, channels), ``bias`` and ``factor``
            (units, channels).

    Call arguments:
        inputs: tensor (..., input_dim).

    Returns:
        Tensor (..., units) in the layer's compute dtype.

    Example:
        >>> MDense(256)(np.zeros((2, 5, 16), "float32")).shape
        (2, 5, 256)
    """

    def __init__(self, units: int, channels: int = 2, activation="sigmoid",
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 factor_initializer="ones", **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.channels = int(channels)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.factor_initializer = keras.initializers.get(factor_initializer)

    def build(self, input_shape):
        in_dim = int(input_shape[-1])
        self.kernel = self.add_weight(name="kernel", shape=(self.units, in_dim, self.channels),
                                      initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=(self.units, self.channels),
                                    initializer=self.bias_initializer)
        self.factor = self.add_weight(name="factor", shape=(self.units, self.channels),
                                      initializer=self.factor_initializer)

    def call(self, inputs):
        # One (input_dim, units) matmul per channel: the einsum "...i,uic->...uc" written
        # out, because TensorFlow's einsum gradient transposes big tensors (slow on the CPU).
        out = None
        for c in range(self.channels):
            t = ops.tanh(ops.matmul(inputs, ops.transpose(self.kernel[:, :, c])) + self.bias[:, c])
            out = t * self.factor[:, c] if out is None else out + t * self.factor[:, c]
        return self.activation(out)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units,
            "channels": self.channels,
            "activation": keras.activations.serialize(self.activation),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "factor_initializer": keras.initializers.serialize(self.factor_initializer),
        })
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class TreeToPdf(keras.layers.Layer):
    """Binary-tree conditional bit probabilities -> pdf over the 256 µ-law codes (spec C.5).

    Input ``q[..., 1:256]`` holds P(bit = 1) of each tree node (``q[..., 0]`` is
    unused); output ``P(v) = prod_{b=0..7} (bit_b(v) ? q[node_b(v)] : 1 - q[node_b(v)])``.
    Works for any leading shape (no hard-coded sequence length, fixing the
    training/inference split of the original Lambda). Use ``dtype="float32"``
    under mixed precision so that small probabilities do not underflow (spec G.15).

    Call arguments:
        inputs: tensor (..., 256) of probabilities in [0, 1].

    Returns:
        Tensor (..., 256) summing to 1 over the last axis.
    """

    def __init__(self, levels: int = 256, **kwargs):
        super().__init__(**kwargs)
        self.levels = int(levels)
        self.depth = int(round(math.log2(self.levels)))

    def call(self, inputs):
        # Level by level: the pdf over the 2^b prefixes seen so far times (1 - q, q) of their
        # nodes q[2^b : 2^(b+1)] gives the pdf over 2^(b+1) prefixes (MSB first), i.e. the same
        # products f_0 * f_1 * ... * f_7 as the tables of spec C.5, with slices and reshapes
        # instead of gathers (whose gradients are slow scatters on the CPU).
        lead = tuple(ops.shape(inputs)[:-1])
        pdf = None
        for b in range(self.depth):
            q = inputs[..., (1 << b):(2 << b)]
            parts = [1.0 - q, q] if pdf is None else [pdf * (1.0 - q), pdf * q]
            pdf = ops.reshape(ops.stack(parts, axis=-1), lead + (2 << b,))
        return pdf

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"levels": self.levels})
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class RepeatFrames(keras.layers.Layer):
    """Upsample frame-rate conditioning to the sample rate: repeat each frame ``frame_size`` times.

    Call arguments:
        inputs: tensor (batch, frames, dim).

    Returns:
        Tensor (batch, frames * frame_size, dim).
    """

    def __init__(self, frame_size: int = 160, **kwargs):
        super().__init__(**kwargs)
        self.frame_size = int(frame_size)

    def call(self, inputs):
        return ops.repeat(inputs, self.frame_size, axis=1)

    def compute_output_shape(self, input_shape):
        t = None if input_shape[1] is None else input_shape[1] * self.frame_size
        return (input_shape[0], t) + tuple(input_shape[2:])

    def get_config(self):
        config = super().get_config()
        config.update({"frame_size": self.frame_size})
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class FusedGRU(keras.layers.GRU):
    """``keras.layers.GRU`` (reset_after=True) whose sequence loop is the native fused kernel.

    Same weights (``kernel`` (in, 3H), ``recurrent_kernel`` (H, 3H), ``bias`` (2, 3H)),
    same maths and the same cell for step-by-step decoding; only the whole-sequence
    call differs: ``x . kernel`` for all T steps as one matmul in the layer's compute
    dtype, then the recurrence forward/backward in C (``lpcnet.fused_gru``). With
    ``fused=False``, with a mask, dropout, ``go_backwards`` or another activation, on a
    GPU (cuDNN), or when the kernel is not built, it is exactly ``keras.layers.GRU``. The
    native op is not an XLA op: the layer reports ``supports_jit = False`` when it takes
    the fused path.
    """

    def __init__(self, units, fused: bool = True, **kwargs):
        super().__init__(units, **kwargs)
        self.fused = bool(fused)

    def _can_fuse(self, mask) -> bool:
        cell = self.cell
        if not (self.fused and mask is None and not self.go_backwards and cell.reset_after
                and not cell.dropout and not cell.recurrent_dropout and not self.stateful
                and cell.use_bias and keras.backend.backend() == "tensorflow"
                and cell.activation is keras.activations.tanh
                and cell.recurrent_activation is keras.activations.sigmoid):
            return False
        import tensorflow as tf

        from lpcnet import fused_gru

        # On a GPU, Keras' cuDNN GRU is the fast path (and the native op would run on the host).
        return not tf.config.list_logical_devices("GPU") and fused_gru.available()

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if isinstance(initial_state, (list, tuple)):
            initial_state = initial_state[0]
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if not self._can_fuse(mask):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        from lpcnet.fused_gru import gru_sequence

        self.supports_jit = False
        cell = self.cell
        xp = ops.matmul(sequences, ops.cast(cell.kernel, sequences.dtype))
        xp = xp + ops.cast(cell.bias[0], xp.dtype)
        low = keras.backend.standardize_dtype(self.compute_dtype) != "float32"
        outputs = gru_sequence(xp, cell.recurrent_kernel, cell.bias[1], initial_state,
                               grad_dtype=self.compute_dtype if low else None)
        last = outputs[:, -1, :]
        return last, outputs, [last]

    def get_config(self):
        config = super().get_config()
        config.update({"fused": self.fused})
        return config


def _normal_noise(shape, seed, stddev) -> np.ndarray:
    """float32 N(0, stddev^2) of ``shape`` from NumPy's PCG64 / ziggurat, seeded by ``seed``."""
    rng = np.random.default_rng([int(x) & 0xFFFFFFFF for x in np.ravel(seed)])
    noise = rng.standard_normal(tuple(int(d) for d in shape), dtype=np.float32)
    noise *= np.float32(stddev)
    return noise


@keras.saving.register_keras_serializable(package=PACKAGE)
class FastGaussianNoise(keras.layers.GaussianNoise):
    """``keras.layers.GaussianNoise`` with its normal draws made by NumPy on the CPU.

    TensorFlow's CPU normal sampler costs ~40 ns per value: 0.56 s per step for GRU A's
    output at 384 units x batch 16 x 2400 samples, a seventh of a training step; NumPy's
    ziggurat is ~10x faster. Same distribution N(0, stddev^2), same seed generator state
    (saved in checkpoints, so resumed runs continue the stream); a different random stream
    from Keras' for a given seed. On a GPU, or with ``numpy_draws = False`` (what
    ``lpcnet.model.use_native_ops(model, False)`` sets for XLA), it is ``keras.layers.GaussianNoise``.
    """

    numpy_draws = True     # False: keras.layers.GaussianNoise's draws (e.g. under XLA)

    def call(self, inputs, training=False):
        if not (training and self.stddev > 0):
            return inputs
        import tensorflow as tf

        if (not self.numpy_draws or keras.backend.backend() != "tensorflow"
                or tf.config.list_logical_devices("GPU")):
            return super().call(inputs, training=training)
        noise = tf.numpy_function(_normal_noise, [tf.shape(inputs), self.seed_generator.next(),
                                                  self.stddev], tf.float32, stateful=False,
                                  name="numpy_normal")
        noise = tf.ensure_shape(noise, inputs.shape)
        return inputs + ops.cast(noise, inputs.dtype)


# --- straightforward versions: the benchmark's plain-Keras baseline and test oracles ---
class EinsumMDense(MDense):
    """MDense written the straightforward way: one einsum over (units, input, channels)."""

    def call(self, inputs):
        t = ops.tanh(ops.einsum("...i,uic->...uc", inputs, self.kernel) + self.bias)
        return self.activation(ops.sum(t * self.factor, axis=-1))


class GatherTreeToPdf(TreeToPdf):
    """TreeToPdf written the straightforward way: gather each level's node with spec C.5's tables."""

    def call(self, inputs):
        nodes, bits = _tree_tables(self.levels)
        pdf = None
        for b in range(self.depth):
            g = ops.take(inputs, nodes[b].tolist(), axis=-1)
            bit = ops.convert_to_tensor(bits[b].astype(np.float32), dtype=self.compute_dtype)
            f = (1.0 - bit) + g * (2.0 * bit - 1.0)    # bit ? g : 1 - g
            pdf = f if pdf is None else pdf * f
        return pdf


# --- block sparsification of the GRU weights (spec D.3, D.4) ---------------------
BLOCK = (4, 8)   # rows (inputs) x columns (outputs) of the logical (input, output) matrix


def block_scores(a: np.ndarray, block=BLOCK) -> np.ndarray:
    """Sum of squares of each (4 x 8) block of an (inputs, outputs) matrix."""
    r, c = block
    rows, cols = a.shape
    return np.square(a.astype(np.float64)).reshape(rows // r, r, cols // c, c).sum(axis=(1, 3))


def block_mask(a: np.ndarray, density: float, keep_diagonal: bool, block=BLOCK) -> np.ndarray:
    """0/1 mask keeping the strongest blocks of ``a`` (spec D.3 steps 1-5, no transpose).

    Blocks are 4 consecutive rows (inputs) by 8 consecutive columns (outputs) of
    the Keras kernel as stored, which is the orientation the C export packs (fixes
    spec G.6). With ``keep_diagonal`` the diagonal is excluded from the scores and
    always kept. ``thresh = sorted(scores)[round(nblocks * (1 - density))]``;
    blocks scoring >= thresh are kept.
    """
    r, c = block
    a = np.asarray(a)
    if keep_diagonal:
        a = a * (1.0 - np.eye(a.shape[0], a.shape[1], dtype=a.dtype))
    scores = block_scores(a, block)
    k = int(round(scores.size * (1.0 - density)))
    thresh = np.inf if k >= scores.size else np.sort(scores, axis=None)[k]
    keep = (scores >= thresh).astype(a.dtype)
    mask = np.repeat(np.repeat(keep, r, axis=0), c, axis=1)
    if keep_diagonal:
        mask = np.maximum(mask, np.eye(a.shape[0], a.shape[1], dtype=a.dtype))
    return mask


def block_density(a: np.ndarray, exclude_diagonal: bool, block=BLOCK) -> float:
    """Fraction of (4 x 8) blocks of ``a`` holding any non-zero weight."""
    a = np.asarray(a)
    if exclude_diagonal:
        a = a * (1.0 - np.eye(a.shape[0], a.shape[1], dtype=a.dtype))
    return float(np.mean(block_scores(a, block) > 0))


def quantize_weights(w: np.ndarray, threshold: float) -> np.ndarray:
    """Snap weights within ``threshold`` of a multiple of 1/128 onto it (spec D.3)."""
    q = np.round(128.0 * w)
    return np.where(np.abs(128.0 * w - q) <= threshold, q / 128.0, w).astype(w.dtype)


def schedule_density(t: int, t_start: int, t_end: int, target: float, quantize: bool) -> float:
    """Density at batch ``t``: cubic ramp from 1 to ``target`` between t_start and t_end."""
    if t < t_end and not quantize:
        r = 1.0 - (t - t_start) / (t_end - t_start)
        return 1.0 - (1.0 - target) * (1.0 - r ** 3)
    return float(target)


def gate_matrices(layer, which: str, rows: int | None = None):
    """The per-gate (z, r, h) logical (input, output) blocks of a GRU weight, as NumPy."""
    var = layer.cell.recurrent_kernel if which == "recurrent" else layer.cell.kernel
    w = keras.ops.convert_to_numpy(var)
    n = layer.cell.units
    w = w if rows is None else w[:rows]
    return [w[:, g * n:(g + 1) * n] for g in range(3)]


class _SparsifyBase(keras.callbacks.Callback):
    """Shared schedule of Sparsify / SparsifyGRUB (spec D.3).

    The counter ``t`` is the number of finished batches of the whole run: it
    starts from ``optimizer.iterations`` (so a resumed run continues the
    schedule) and is incremented before each test (the first batch has t = 1).
    """

    layer_name = ""

    def __init__(self, t_start: int, t_end: int, interval: int, density, quantize: bool = False):
        super().__init__()
        self.t_start, self.t_end, self.interval = int(t_start), int(t_end), max(1, int(interval))
        self.density = tuple(float(d) for d in density)
        self.quantize = bool(quantize)
        self.t = 0

    def on_train_begin(self, logs=None):
        self.t = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def _acts(self, t: int) -> bool:
        return (self.quantize or (t > self.t_start and (t - self.t_start) % self.interval == 0)
                or t >= self.t_end)

    def _quant_threshold(self, t: int):
        if (t > self.t_start and (t - self.t_start) % self.interval == 0) or t >= self.t_end:
            return 0.5 if t >= self.t_end else 0.5 * (t - self.t_start) / (self.t_end - self.t_start)
        return None

    def on_train_batch_end(self, batch, logs=None):
        self.t += 1
        if self._acts(self.t):
            self.apply(self.t)

    def apply(self, t: int) -> None:
        raise NotImplementedError

    def densities(self) -> list:
        raise NotImplementedError


class Sparsify(_SparsifyBase):
    """Block-sparsify GRU A's recurrent kernel per gate, diagonal kept (spec D.3).

    Args:
        t_start, t_end, interval: schedule in batches (2000, 40000, 400 from scratch).
        density: final (z, r, h) densities, e.g. (0.05, 0.05, 0.2).
        quantize: quantisation-aware mode (act every batch; snap weights to 1/128).
        layer_name: the GRU layer ("gru_a").
    """

    def __init__(self, t_start, t_end, interval, density, quantize=False, layer_name="gru_a"):
        super().__init__(t_start, t_end, interval, density, quantize)
        self.layer_name = layer_name

    def apply(self, t: int) -> None:
        layer = self.model.get_layer(self.layer_name)
        var = layer.cell.recurrent_kernel
        w = keras.ops.convert_to_numpy(var).copy()
        n = layer.cell.units
        for g in range(3):
            d = schedule_density(t, self.t_start, self.t_end, self.density[g], self.quantize)
            cols = slice(g * n, (g + 1) * n)
            w[:, cols] *= block_mask(w[:, cols], d, keep_diagonal=True)
        th = self._quant_threshold(t) if self.quantize else None
        if th is not None:
            w = quantize_weights(w, th)
        var.assign(w)

    def densities(self) -> list:
        return [block_density(a, True) for a in gate_matrices(self.model.get_layer(self.layer_name),
                                                              "recurrent")]


class SparsifyGRUB(_SparsifyBase):
    """Block-sparsify the GRU-A rows of GRU B's input kernel per gate (spec D.4).

    Only rows ``0 .. grua_units - 1`` (the GRU A input) are masked; the
    conditioning rows are untouched; no diagonal handling. Quantise mode snaps
    the whole kernel.

    Args:
        t_start, t_end, interval, density, quantize: as :class:`Sparsify`
            (default density (1, 1, 1): nothing pruned).
        grua_units: rows of the kernel fed by GRU A.
        layer_name: the GRU layer ("gru_b").
    """

    def __init__(self, t_start, t_end, interval, density, grua_units: int, quantize=False,
                 layer_name="gru_b"):
        super().__init__(t_start, t_end, interval, density, quantize)
        self.grua_units = int(grua_units)
        self.layer_name = layer_name

    def apply(self, t: int) -> None:
        layer = self.model.get_layer(self.layer_name)
        var = layer.cell.kernel
        w = keras.ops.convert_to_numpy(var).copy()
        n, rows = layer.cell.units, self.grua_units
        for g in range(3):
            d = schedule_density(t, self.t_start, self.t_end, self.density[g], self.quantize)
            cols = slice(g * n, (g + 1) * n)
            if d < 1.0:
                w[:rows, cols] *= block_mask(w[:rows, cols], d, keep_diagonal=False)
        th = self._quant_threshold(t) if self.quantize else None
        if th is not None:
            w = quantize_weights(w, th)
        var.assign(w)

    def densities(self) -> list:
        return [block_density(a, False) for a in gate_matrices(self.model.get_layer(self.layer_name),
                                                               "kernel", self.grua_units)]
