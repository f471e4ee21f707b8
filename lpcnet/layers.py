"""Custom Keras 3 layers, initialiser, constraint and regulariser of LPCNet (docs/model.md).

Everything here is registered for serialisation under the ``lpcnet`` package, so
``keras.saving.load_model`` restores checkpoints without ``custom_objects`` (the
registered names are part of the checkpoint format: never rename them). Layers compute
in ``self.compute_dtype`` (mixed precision safe); variables stay float32. Each has a
full ``get_config``.

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

from lpcnet.formats import INT8_WEIGHT_SCALE

#: Registration package of every serialisable object here (checkpoints store "lpcnet>Name").
PACKAGE = "lpcnet"


def tree_tables(levels: int = 256):
    """(nodes, bits) int arrays of shape (depth, levels) for the binary tree (docs/model.md).

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
    nodes, bits = tree_tables(q.shape[-1])
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
    for an (R, C) matrix, i.e. ``(i - 127.5) / 256`` for the 256 codes.

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
    """Pairwise column clip: ``|w[r, 2k]| + |w[r, 2k+1]| <= c`` for every row r.

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
    """Pulls weights towards multiples of 1/128 for int8 export (quantisation-aware training).

    ``strength * mean((1.0001 - cos(2 pi (128 w - round(128 w))))**(1/4))``.

    Args:
        strength: weight of the penalty (0.01).
    """

    def __init__(self, strength: float = 0.01):
        self.strength = float(strength)

    def __call__(self, x):
        x = ops.cast(x, "float32")
        frac = INT8_WEIGHT_SCALE * x - ops.round(INT8_WEIGHT_SCALE * x)
        return self.strength * ops.mean(ops.power(1.0001 - ops.cos(2.0 * np.pi * frac), 0.25))

    def get_config(self):
        return {"strength": self.strength}


# --- layers ----------------------------------------------------------------------
@keras.saving.register_keras_serializable(package=PACKAGE)
class MDense(keras.layers.Layer):
    """Dual fully-connected layer (LPCNet paper eq. 3-4; docs/model.md).

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
    """Binary-tree conditional bit probabilities -> pdf over the 256 µ-law codes (docs/model.md).

    Input ``q[..., 1:256]`` holds P(bit = 1) of each tree node (``q[..., 0]`` is
    unused); output ``P(v) = prod_{b=0..7} (bit_b(v) ? q[node_b(v)] : 1 - q[node_b(v)])``.
    Works for any leading shape (no hard-coded sequence length, fixing the
    training/inference split of the original Lambda). Use ``dtype="float32"``
    under mixed precision so that small probabilities do not underflow.

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
        # products f_0 * f_1 * ... * f_7 as tree_tables gives, with slices and reshapes
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

    :meth:`call_parts` runs the same layer on an input given in parts (embedded codes,
    a dense sequence, frame-rate conditioning) without forming it: the embedding fold
    of the training model (``LPCNetModel.call``, docs/training.md).
    """

    def __init__(self, units, fused: bool = True, **kwargs):
        super().__init__(units, **kwargs)
        self.fused = bool(fused)

    def can_call_parts(self) -> bool:
        """True when the layer is the GRU that the fused kernel and :meth:`call_parts` compute."""
        cell = self.cell
        return (not self.go_backwards and cell.reset_after and not cell.dropout
                and not cell.recurrent_dropout and not self.stateful and cell.use_bias
                and keras.backend.backend() == "tensorflow"
                and cell.activation is keras.activations.tanh
                and cell.recurrent_activation is keras.activations.sigmoid)

    def _can_fuse(self, mask) -> bool:
        if not (self.fused and mask is None and self.can_call_parts()):
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
        outputs = gru_sequence(xp, cell.recurrent_kernel, cell.bias[1], initial_state,
                               grad_dtype=self._grad_dtype())
        last = outputs[:, -1, :]
        return last, outputs, [last]

    def _grad_dtype(self):
        """dtype of the native op's dL/dU matmul and per-step products: bf16 under AMP, else None."""
        low = keras.backend.standardize_dtype(self.compute_dtype) != "float32"
        return self.compute_dtype if low else None

    def call_parts(self, *, codes=None, embeddings=None, dense=None, frames=None,
                   frame_size: int = 1, training=False):
        """Whole-sequence outputs (B, T, H) for an input given in parts, zero initial state.

        The input, in kernel-row order, is ``[embeddings[codes[..., 0]], ...,
        embeddings[codes[..., k-1]], dense, frames repeated frame_size times]`` (codes or
        dense required, frames optional); the result equals calling the layer on that
        concatenation (the tests check it), but the input is never formed (docs/training.md,
        Speed):

        - embedded codes: ``E[c] W_j = (E W_j)[c]``, so code slot j takes rows of a table
          ``E W_j`` (V, 3H) instead of a (B*T, width) x (width, 3H) matmul; the gradients
          reach ``E`` and ``W_j`` through the tables (the table gradient is the sum of
          dL/dxp over the steps of each code: dense tensors);
        - frames: projected once per frame (B, F, 3H), with the input bias, and added to
          each of the frame's ``frame_size`` steps (T = F * frame_size);
        - dense: one matmul in the layer's compute dtype, as the plain layer.

        With the native kernel the parts are summed per step in C (native/src/gru_train.c);
        otherwise (``fused=False``, e.g. under XLA) by TensorFlow gathers, then
        :func:`gru_scan`. Tables and frame projections are float32 (also under mixed
        precision). Args: ``codes`` (B, T, k) int, ``embeddings`` (V, width) (the embedding
        matrix itself, e.g. ``embed_sig.embeddings``), ``dense`` (B, T, d), ``frames``
        (B, F, f). Returns the outputs in the layer's compute dtype.
        """
        import tensorflow as tf

        if not self.can_call_parts():
            raise ValueError(f"{self.name}: call_parts needs a reset_after sigmoid/tanh GRU "
                             "with biases, no dropout, forwards, on TensorFlow")
        cell = self.cell
        f32 = tf.float32
        kernel = tf.convert_to_tensor(cell.kernel)
        h3 = 3 * self.units
        row, tables, xp, steps = 0, None, None, None
        if codes is not None:
            codes = tf.cast(codes, tf.int32)
            slots, width = int(codes.shape[-1]), int(embeddings.shape[-1])
            table_e = tf.cast(tf.convert_to_tensor(embeddings), f32)
            w = tf.reshape(kernel[:slots * width], [slots, width, h3])
            tables = tf.matmul(table_e[None], w)                             # (k, V, 3H)
            row, steps = slots * width, tf.shape(codes)[1]
        if dense is not None:
            width = int(dense.shape[-1])
            low = self.compute_dtype
            xp = tf.cast(tf.matmul(tf.cast(dense, low), tf.cast(kernel[row:row + width], low)), f32)
            row, steps = row + width, tf.shape(dense)[1]
        if steps is None:
            raise ValueError(f"{self.name}: call_parts needs codes or dense")
        batch = tf.shape(codes if codes is not None else dense)[0]
        bias = tf.cast(cell.bias[0], f32)
        per_frame = None
        if frames is not None:
            width = int(frames.shape[-1])
            per_frame = tf.matmul(tf.cast(frames, f32), kernel[row:row + width]) + bias
            row += width
        elif xp is not None:                    # the input bias goes with one part of each step
            xp = xp + bias
        else:
            tables = tf.concat([tables[:1] + bias, tables[1:]], axis=0)
        if row != kernel.shape[0]:
            raise ValueError(f"{self.name}: the parts give {row} input rows, the kernel has "
                             f"{kernel.shape[0]}")
        h0 = tf.zeros([batch, self.units], f32)
        if self._can_fuse(None):
            from lpcnet.fused_gru import gru_sequence

            self.supports_jit = False
            outputs = gru_sequence(xp, cell.recurrent_kernel, cell.bias[1], h0,
                                   grad_dtype=self._grad_dtype(), codes=codes, tables=tables,
                                   frames=per_frame, frame_size=frame_size)
        else:
            terms = [] if xp is None else [xp]
            if codes is not None:
                terms += [tf.gather(tables[j], codes[..., j]) for j in range(int(codes.shape[-1]))]
            xp = tf.add_n(terms) if len(terms) > 1 else terms[0]
            if per_frame is not None:
                static = xp.shape
                xp = tf.reshape(tf.reshape(xp, [batch, -1, frame_size, h3]) + per_frame[:, :, None, :],
                                [batch, steps, h3])
                xp = tf.ensure_shape(xp, static)
            outputs = gru_scan(xp, tf.convert_to_tensor(cell.recurrent_kernel),
                               tf.cast(cell.bias[1], f32), h0)
        return tf.cast(outputs, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"fused": self.fused})
        return config


def gru_scan(xp, recurrent_kernel, recurrent_bias, h0):
    """The GRU recurrence (reset_after, sigmoid / tanh) over precomputed input projections.

    ``xp`` (B, T, 3H) = x W + b_in, ``recurrent_kernel`` (H, 3H), ``recurrent_bias`` (3H,),
    ``h0`` (B, H) -> outputs (B, T, H): the maths of docs/model.md as a ``tf.scan``
    (differentiable; XLA-compilable, its loop bounded by T: what FusedGRU runs when the
    native kernel is off).
    """
    import tensorflow as tf

    units = int(recurrent_kernel.shape[0])

    def step(h, x_t):
        hr = tf.matmul(h, recurrent_kernel) + recurrent_bias
        z = tf.sigmoid(x_t[:, :units] + hr[:, :units])
        r = tf.sigmoid(x_t[:, units:2 * units] + hr[:, units:2 * units])
        n = tf.tanh(x_t[:, 2 * units:] + r * hr[:, 2 * units:])
        return z * h + (1.0 - z) * n

    outputs = tf.scan(step, tf.transpose(xp, (1, 0, 2)), initializer=h0)
    return tf.transpose(outputs, (1, 0, 2))


def _normal_noise(shape, seed, stddev) -> np.ndarray:
    """float32 N(0, stddev^2) of ``shape`` seeded by ``seed``: the native counter-based stream
    (``fused_gru.normal_noise``), or NumPy's PCG64 / ziggurat where the kernel is not built."""
    from lpcnet import fused_gru

    if fused_gru.available():
        return fused_gru.normal_noise(shape, seed, stddev)
    rng = np.random.default_rng([int(x) & 0xFFFFFFFF for x in np.ravel(seed)])
    noise = rng.standard_normal(tuple(int(d) for d in shape), dtype=np.float32)
    noise *= np.float32(stddev)
    return noise


@keras.saving.register_keras_serializable(package=PACKAGE)
class FastGaussianNoise(keras.layers.GaussianNoise):
    """``keras.layers.GaussianNoise`` with its normal draws made on the host, outside TensorFlow.

    TensorFlow's CPU normal sampler costs ~40 ns per value: 0.56 s per step for GRU A's
    output at 384 units x batch 16 x 2400 samples, a seventh of a training step. The draws
    come from the native counter-based generator (``fused_gru.normal_noise``: SplitMix64 +
    Box-Muller, ~0.6 ns per value with AVX-512), or from NumPy's ziggurat (~8 ns) where the
    native library is not built. Same distribution N(0, stddev^2), same seed generator state
    (saved in checkpoints, so resumed runs continue the stream); a different random stream
    from Keras' for a given seed. On a GPU, or with ``numpy_draws=False`` (what
    ``lpcnet.model.use_native_ops(model, False)`` sets for XLA), it is ``keras.layers.GaussianNoise``.

    Args:
        stddev, seed: as ``keras.layers.GaussianNoise``.
        numpy_draws: draw on the host (True; the name is kept for old checkpoints) or with
            Keras' sampler (False, e.g. under XLA).
    """

    def __init__(self, stddev, seed=None, numpy_draws: bool = True, **kwargs):
        super().__init__(stddev, seed=seed, **kwargs)
        self.numpy_draws = bool(numpy_draws)

    def call(self, inputs, training=False):
        if not (training and self.stddev > 0):
            return inputs
        import tensorflow as tf

        if (not self.numpy_draws or keras.backend.backend() != "tensorflow"
                or tf.config.list_logical_devices("GPU")):
            return super().call(inputs, training=training)
        noise = tf.numpy_function(_normal_noise, [tf.shape(inputs), self.seed_generator.next(),
                                                  self.stddev], tf.float32, stateful=False,
                                  name="host_normal")
        noise = tf.ensure_shape(noise, inputs.shape)
        return inputs + ops.cast(noise, inputs.dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"numpy_draws": self.numpy_draws})
        return config
