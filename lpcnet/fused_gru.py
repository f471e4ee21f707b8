"""Fused GRU recurrence for training: the native kernel (native/src/gru_train.c) as a TF op.

A Keras GRU on the CPU runs its 2400-step loop as thousands of small TensorFlow ops
per batch, and recomputes the input projection ``x . W`` inside every step. Here the
projection of all steps is one large matmul (where oneDNN and bfloat16 pay off), and
only the recurrent part runs in C, forward and backward, one call per batch. The
gradient of the recurrent matrix is one more large matmul. Same maths as
``keras.layers.GRU(reset_after=True)`` with sigmoid / tanh (checked by the tests).
"""

from __future__ import annotations

import ctypes
import os

import numpy as np

from lpcnet import native
from lpcnet.errors import LpcnetError

_i, _p = ctypes.c_int, ctypes.c_void_p
_SIGNATURES = {
    "lpcnet_gru_forward": ([_i, _i, _i, _p, _p, _p, _p, _p, _p, _i, _i], _i),
    "lpcnet_gru_backward": ([_i, _i, _i, _p, _p, _p, _p, _p, _p, _p, _p, _i, _i], _i),
    "lpcnet_gru_simd_level": ([], _i),
    "lpcnet_gru_set_simd_level": ([_i], _i),
}


def load_library() -> ctypes.CDLL:
    """Load (once) the native GRU kernel library (lpcnet.native)."""
    return native.load("gru", _SIGNATURES)


def available() -> bool:
    """True if the native kernel can be loaded."""
    try:
        load_library()
        return True
    except (LpcnetError, OSError):
        return False


def kernel_threads() -> int:
    """Threads for the kernel: TensorFlow's intra-op count, else the usable cores."""
    env = os.environ.get("TF_NUM_INTRAOP_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _ptr(a: np.ndarray):
    return a.ctypes.data_as(ctypes.c_void_p)


def _f32(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def forward(xp, U, b_rec, h0, bf16=False):
    """Forward over T steps.

    Args: ``xp`` (B, T, 3H) input projections incl. the input bias; ``U`` (H, 3H)
    recurrent kernel; ``b_rec`` (3H,) recurrent bias; ``h0`` (B, H) initial state;
    ``bf16``: bfloat16 operands for the per-step products (see lpcnet_gru.h).
    Returns ``(h_out (B, T, H), cache (B, T, 4H))``, float32.
    """
    xp, U, b_rec, h0 = _f32(xp), _f32(U), _f32(b_rec), _f32(h0)
    B, T, H3 = xp.shape
    H = H3 // 3
    h_out = np.empty((B, T, H), np.float32)
    cache = np.empty((B, T, 4 * H), np.float32)
    if load_library().lpcnet_gru_forward(B, T, H, _ptr(xp), _ptr(U), _ptr(b_rec), _ptr(h0),
                                         _ptr(h_out), _ptr(cache), kernel_threads(), int(bool(bf16))):
        raise MemoryError("lpcnet_gru_forward failed")
    return h_out, cache


def backward(dh_out, h_out, h0, cache, U, bf16=False):
    """Backward: returns ``(dxp (B, T, 3H), dhn (B, T, H), dh0 (B, H))`` (see lpcnet_gru.h)."""
    dh_out, h_out, h0, cache, U = (_f32(a) for a in (dh_out, h_out, h0, cache, U))
    B, T, H = h_out.shape
    dxp = np.empty((B, T, 3 * H), np.float32)
    dhn = np.empty((B, T, H), np.float32)
    dh0 = np.empty((B, H), np.float32)
    if load_library().lpcnet_gru_backward(B, T, H, _ptr(dh_out), _ptr(h_out), _ptr(h0), _ptr(cache),
                                          _ptr(U), _ptr(dxp), _ptr(dhn), _ptr(dh0), kernel_threads(),
                                          int(bool(bf16))):
        raise MemoryError("lpcnet_gru_backward failed")
    return dxp, dhn, dh0


def gru_sequence(xp, U, b_rec, h0, grad_dtype=None):
    """TensorFlow op: GRU outputs (B, T, H) float32 from projections ``xp`` (B, T, 3H).

    Differentiable in all four inputs. ``grad_dtype`` (e.g. ``bfloat16`` under AMP) is
    the dtype of the large matmul that forms dL/dU; with ``bfloat16`` the kernel's per-step
    products take bfloat16 operands too (float32 sums, gates and states).
    """
    import tensorflow as tf

    f32 = tf.float32
    bf16 = grad_dtype is not None and tf.as_dtype(grad_dtype) == tf.bfloat16

    @tf.custom_gradient
    def op(xp, U, b_rec, h0):
        h_out, cache = tf.numpy_function(lambda *a: forward(*a, bf16=bf16), [xp, U, b_rec, h0],
                                         [f32, f32], stateful=False,
                                         name="lpcnet_gru_forward")
        H = tf.shape(U)[0]
        h_out = tf.ensure_shape(h_out, xp.shape[:-1].concatenate([U.shape[0]]))

        def grad(dh):
            dxp, dhn, dh0 = tf.numpy_function(lambda *a: backward(*a, bf16=bf16),
                                              [dh, h_out, h0, cache, U], [f32, f32, f32],
                                              stateful=False, name="lpcnet_gru_backward")
            dxp = tf.ensure_shape(dxp, xp.shape)
            dh0 = tf.ensure_shape(dh0, h0.shape)
            dhr = tf.concat([dxp[..., :2 * H], dhn], axis=-1)
            h_prev = tf.concat([h0[:, None, :], h_out[:, :-1, :]], axis=1)
            a, b = tf.reshape(h_prev, [-1, H]), tf.reshape(dhr, [-1, 3 * H])
            if grad_dtype is not None:
                a, b = tf.cast(a, grad_dtype), tf.cast(b, grad_dtype)
            dU = tf.cast(tf.matmul(a, b, transpose_a=True), f32)
            return dxp, dU, tf.reduce_sum(dhr, axis=[0, 1]), dh0

        return h_out, grad

    return op(tf.cast(xp, f32), tf.cast(U, f32), tf.cast(b_rec, f32), tf.cast(h0, f32))
