"""Native training kernels (native/src/gru_train.c, train_head.c) as TensorFlow ops.

- :func:`gru_sequence`: the GRU recurrence. A Keras GRU on the CPU runs its 2400-step loop
  as thousands of small TensorFlow ops per batch, and recomputes the input projection
  ``x . W`` inside every step. Here the projection of all steps is one large matmul (where
  oneDNN and bfloat16 pay off), or comes in parts (embedding tables gathered by code,
  frame projections: the embedding fold of docs/training.md) that the kernel sums per
  step; only the recurrent part runs in C, forward and backward, one call per batch. The
  gradient of the recurrent matrix is one more large matmul. Same maths as
  ``keras.layers.GRU(reset_after=True)`` with sigmoid / tanh (checked by the tests).
- :func:`tree_head`: dual FC, probability tree and cross-entropy in one pass per sample.
- :func:`normal_noise`: the Gaussian draws of ``layers.FastGaussianNoise``.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading

import numpy as np

from lpcnet import native
from lpcnet.errors import LpcnetError

_i, _p = ctypes.c_int, ctypes.c_void_p


class GruInput(ctypes.Structure):
    """``LpcnetGruInput`` of native/include/lpcnet_gru.h: the input projections in parts."""

    _fields_ = [("xp", _p), ("ncodes", _i), ("levels", _i), ("codes", _p), ("tables", _p),
                ("frame_size", _i), ("nframes", _i), ("frames", _p)]


_in = ctypes.POINTER(GruInput)
_SIGNATURES = {
    "lpcnet_gru_forward_parts": ([_i, _i, _i, _in, _p, _p, _p, _p, _p, _p, _i, _i], _i),
    "lpcnet_gru_backward_parts": ([_i, _i, _i, _in, _p, _p, _p, _p, _p, _p, _p, _p, _p, _p, _p, _p,
                                   _i, _i], _i),
    "lpcnet_gru_simd_level": ([], _i),
    "lpcnet_gru_set_simd_level": ([_i], _i),
    "lpcnet_normal_noise": ([_p, ctypes.c_size_t, ctypes.c_uint64, ctypes.c_float], None),
    "lpcnet_tree_head_forward": ([_i, _i, _i, _i, _p, _p, _p, _p, _p, ctypes.c_float, _p, _p, _p, _p, _p,
                                  _p, _i], _i),
    "lpcnet_tree_head_backward": ([_i, _i, _i, _i, _p, _p, _p, _p, _p, ctypes.c_float, _p, _p, _p, _p,
                                   _p, _p, _i], _i),
}
#: Code slots the kernel takes at most (LPCNET_GRU_MAX_CODES).
MAX_CODES = 6


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


class _BufferPool:
    """Output buffers reused across training steps, once TensorFlow has let go of them.

    ``tf.numpy_function`` hands an output array to TensorFlow without a copy only when it
    is aligned as Eigen wants (64 bytes; NumPy's large arrays start 16 bytes into their
    pages, so each would be copied once more). A fresh array of hundreds of MB also costs
    its page faults, the kernel zeroing every page (a quarter of a bf16 step at 384 units).
    So outputs are views of pooled raw buffers; a buffer is free again when nothing but
    the pool refers to it (TensorFlow keeps the view, and so the buffer, alive while it
    uses the tensor).
    """

    #: Buffers kept per size; more are allocated (and dropped after use) when all are busy.
    PER_SIZE = 4

    def __init__(self):
        self._buffers: dict[int, list] = {}
        self._lock = threading.Lock()

    def empty(self, shape, dtype=np.float32) -> np.ndarray:
        dtype = np.dtype(dtype)
        shape = tuple(int(d) for d in shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        with self._lock:
            kept = self._buffers.setdefault(nbytes, [])
            raw = next((b for b in kept if sys.getrefcount(b) <= 3), None)  # kept, b, argument
            if raw is None:
                raw = np.empty(nbytes + 64, np.uint8)
                if len(kept) < self.PER_SIZE:
                    kept.append(raw)
            start = (-raw.ctypes.data) % 64
            return raw[start:start + nbytes].view(dtype).reshape(shape)


_pool = _BufferPool()


def empty_aligned(shape, dtype=np.float32) -> np.ndarray:
    """``np.empty`` (64-byte aligned, from the pool of output buffers: :class:`_BufferPool`)."""
    return _pool.empty(shape, dtype)


def normal_noise(shape, seed, stddev: float) -> np.ndarray:
    """float32 N(0, stddev^2) draws of ``shape`` (64-byte aligned) from the native stream ``seed``.

    ``seed``: an int or integers (e.g. Keras' two-word seed state), combined into 64 bits.
    Counter-based SplitMix64 + Box-Muller (``lpcnet_normal_noise``, native/include/lpcnet_gru.h):
    ~0.6 ns per value with AVX-512, the same draws at every SIMD level to float rounding.
    """
    key = 0
    for word in np.ravel(seed):
        key = ((key << 32) | (int(word) & 0xFFFFFFFF)) & 0xFFFFFFFFFFFFFFFF
    out = empty_aligned(tuple(int(d) for d in shape))
    load_library().lpcnet_normal_noise(_ptr(out), out.size, key, float(stddev))
    return out


def _f32(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


class Parts:
    """The input projections (float32) of a batch, whole or in parts (lpcnet_gru.h).

    ``xp`` (B, T, 3H) or None; ``codes`` (B, T, k) int32 with ``tables`` (k, V, 3H):
    step (b, t) adds ``tables[j, codes[b, t, j]]`` for each slot j; ``frames`` (B, F, 3H):
    step t adds ``frames[b, t // frame_size]``. At least one part is given.
    """

    def __init__(self, xp=None, codes=None, tables=None, frames=None, frame_size=1):
        self.xp = None if xp is None else _f32(xp)
        self.codes = None if codes is None else np.ascontiguousarray(codes, dtype=np.int32)
        self.tables = None if tables is None else _f32(tables)
        self.frames = None if frames is None else _f32(frames)
        self.frame_size = int(frame_size)
        slots = None if self.codes is None else self.codes.shape[-1]
        if slots is not None and (self.tables is None or slots != self.tables.shape[0] or slots > MAX_CODES):
            got = None if self.tables is None else self.tables.shape
            raise ValueError(f"codes {self.codes.shape} need tables (k, V, 3H) with k = their last "
                             f"axis (at most {MAX_CODES}), got {got}")
        if self.xp is None and self.codes is None and self.frames is None:
            raise ValueError("the GRU input needs at least one part (xp, codes or frames)")

    def struct(self) -> GruInput:
        """The ``LpcnetGruInput`` pointing into these arrays (keep ``self`` alive while it is used)."""
        k = 0 if self.codes is None else self.codes.shape[-1]
        return GruInput(None if self.xp is None else self.xp.ctypes.data,
                        k, 0 if self.tables is None else self.tables.shape[1],
                        None if self.codes is None else self.codes.ctypes.data,
                        None if self.tables is None else self.tables.ctypes.data,
                        self.frame_size, 0 if self.frames is None else self.frames.shape[1],
                        None if self.frames is None else self.frames.ctypes.data)


def forward(xp, U, b_rec, h0, bf16=False, parts: Parts | None = None, hprev_bf16=False):
    """Forward over T steps.

    Args: ``xp`` (B, T, 3H) input projections incl. the input bias (or ``parts``, a
    :class:`Parts`, with ``xp`` None); ``U`` (H, 3H) recurrent kernel; ``b_rec`` (3H,)
    recurrent bias; ``h0`` (B, H) initial state; ``bf16``: bfloat16 operands for the
    per-step products (see lpcnet_gru.h).
    Returns ``(h_out (B, T, H), cache (B, T, 4H))``, float32, and with ``hprev_bf16`` a third
    array: the states h_prev(t) as bfloat16 bits (B, T, H rounded up to even) uint16.
    """
    parts = parts if parts is not None else Parts(xp=xp)
    U, b_rec, h0 = _f32(U), _f32(b_rec), _f32(h0)
    H = U.shape[0]
    B, T = h0.shape[0], _steps(parts)
    h_out = empty_aligned((B, T, H))
    cache = empty_aligned((B, T, 4 * H))
    hprev = empty_aligned((B, T, H + H % 2), np.uint16) if hprev_bf16 else None
    spec = parts.struct()
    if load_library().lpcnet_gru_forward_parts(B, T, H, ctypes.byref(spec), _ptr(U), _ptr(b_rec),
                                               _ptr(h0), _ptr(h_out), _ptr(cache),
                                               None if hprev is None else _ptr(hprev),
                                               kernel_threads(), int(bool(bf16))):
        raise ValueError(f"lpcnet_gru_forward_parts refused B={B} T={T} H={H} (a code outside "
                         "the tables, frames too few, or out of memory)")
    return (h_out, cache) if hprev is None else (h_out, cache, hprev)


def _steps(parts: Parts) -> int:
    if parts.xp is not None:
        return parts.xp.shape[1]
    if parts.codes is not None:
        return parts.codes.shape[1]
    return parts.frames.shape[1] * parts.frame_size


def backward_parts(dh_out, h_out, h0, cache, U, parts: Parts, bf16=False, dhr_bf16=False):
    """Backward of :func:`forward` with ``parts``.

    Returns ``(dxp, dtables, dframes, dhr, db_rec, dh0)``: dL/dxp (B, T, 3H) where the
    input has an ``xp`` part (else None), its sums per code ``dtables`` (k, V, 3H) and per
    frame ``dframes`` (B, F, 3H) (None without codes / frames), ``dhr`` (B, T, 3H) =
    dL/d(h U + b_rec) (for dL/dU; with ``dhr_bf16`` its bfloat16 bits (B, T, 3H rounded up
    to even) uint16 instead), ``db_rec`` (3H,), ``dh0`` (B, H); see lpcnet_gru.h.
    """
    dh_out, h_out, h0, cache, U = (_f32(a) for a in (dh_out, h_out, h0, cache, U))
    B, T, H = h_out.shape
    dxp = empty_aligned((B, T, 3 * H)) if parts.xp is not None else None
    dtables = empty_aligned(parts.tables.shape) if parts.codes is not None else None
    dframes = empty_aligned(parts.frames.shape) if parts.frames is not None else None
    dhr = empty_aligned((B, T, 3 * H + H % 2), np.uint16) if dhr_bf16 else empty_aligned((B, T, 3 * H))
    db_rec = empty_aligned((3 * H,))
    dh0 = empty_aligned((B, H))
    spec = parts.struct()
    opt = lambda a: None if a is None else _ptr(a)      # noqa: E731
    if load_library().lpcnet_gru_backward_parts(B, T, H, ctypes.byref(spec), _ptr(dh_out), _ptr(h_out),
                                                _ptr(h0), _ptr(cache), _ptr(U), opt(dxp), opt(dtables),
                                                opt(dframes), None if dhr_bf16 else _ptr(dhr),
                                                _ptr(dhr) if dhr_bf16 else None, _ptr(db_rec), _ptr(dh0),
                                                kernel_threads(), int(bool(bf16))):
        raise MemoryError("lpcnet_gru_backward_parts failed")
    return dxp, dtables, dframes, dhr, db_rec, dh0


def backward(dh_out, h_out, h0, cache, U, bf16=False):
    """Backward of :func:`forward` with whole ``xp``: ``(dxp (B, T, 3H), dhn (B, T, H), dh0 (B, H))``.

    ``dhn`` = dL/dhr_n = dn_pre * r (so dL/dhr = [dxp_z, dxp_r, dhn]); see lpcnet_gru.h.
    """
    B, T, H = np.shape(h_out)
    parts = Parts(xp=np.empty((B, T, 0), np.float32))   # only its presence matters backward
    dxp, _, _, dhr, _, dh0 = backward_parts(dh_out, h_out, h0, cache, U, parts, bf16=bf16)
    return dxp, np.ascontiguousarray(dhr[..., 2 * H:]), dh0


def gru_sequence(xp, U, b_rec, h0, grad_dtype=None, *, codes=None, tables=None, frames=None,
                 frame_size: int = 1):
    """TensorFlow op: GRU outputs (B, T, H) float32 from input projections whole or in parts.

    ``xp`` (B, T, 3H) or None, ``codes`` (B, T, k) int with ``tables`` (k, V, 3H), ``frames``
    (B, F, 3H) repeated over ``frame_size`` steps (:class:`Parts`); ``U`` (H, 3H), ``b_rec``
    (3H,), ``h0`` (B, H). Differentiable in everything but the codes: the gradients of the
    tables and frames are the kernel's sums of dL/dxp, dense tensors. ``grad_dtype`` (e.g.
    ``bfloat16`` under AMP) is the dtype of the large matmul that forms dL/dU; with
    ``bfloat16`` the kernel's per-step products take bfloat16 operands too (float32 sums,
    gates and states).
    """
    import tensorflow as tf

    f32 = tf.float32
    bf16 = grad_dtype is not None and tf.as_dtype(grad_dtype) == tf.bfloat16
    has = (xp is not None, codes is not None, frames is not None)

    def make_parts(xp_, codes_, tables_, frames_):
        return Parts(xp=xp_ if has[0] else None, codes=codes_ if has[1] else None,
                     tables=tables_ if has[1] else None, frames=frames_ if has[2] else None,
                     frame_size=frame_size)

    def run_forward(U_, b_, h0_, xp_, codes_, tables_, frames_):
        out = forward(None, U_, b_, h0_, bf16=bf16, parts=make_parts(xp_, codes_, tables_, frames_),
                      hprev_bf16=bf16)
        return out if bf16 else (*out, np.zeros((0,), np.uint16))

    def run_backward(dh, h_out_, h0_, cache_, U_, xp_, codes_, tables_, frames_):
        outs = backward_parts(dh, h_out_, h0_, cache_, U_, make_parts(xp_, codes_, tables_, frames_),
                              bf16=bf16, dhr_bf16=bf16)
        return [np.zeros(0, np.float32) if a is None else a for a in outs]

    empty = tf.zeros([0], f32)
    if has[0]:
        steps = xp.shape[1]
    elif has[1]:
        steps = codes.shape[1]
    else:
        steps = None if frames.shape[1] is None else frames.shape[1] * frame_size

    @tf.custom_gradient
    def op(U, b_rec, h0, xp, codes, tables, frames):
        h_out, cache, hprev16 = tf.numpy_function(
            run_forward, [U, b_rec, h0, xp, codes, tables, frames], [f32, f32, tf.uint16],
            stateful=False, name="lpcnet_gru_forward")
        H = tf.shape(U)[0]
        h_out = tf.ensure_shape(h_out, [h0.shape[0], steps, U.shape[0]])

        def grad(dh):
            dxp, dtables, dframes, dhr, db_rec, dh0 = tf.numpy_function(
                run_backward, [dh, h_out, h0, cache, U, xp, codes, tables, frames],
                [f32, f32, f32, tf.uint16 if bf16 else f32, f32, f32], stateful=False,
                name="lpcnet_gru_backward")
            if bf16:     # the kernel's bfloat16 roundings of h_prev and dL/dhr (rows padded to even)
                a = tf.bitcast(hprev16, tf.bfloat16)[..., :H]
                b = tf.bitcast(dhr, tf.bfloat16)[..., :3 * H]
                a, b = tf.reshape(a, [-1, H]), tf.reshape(b, [-1, 3 * H])
            else:
                h_prev = tf.concat([h0[:, None, :], h_out[:, :-1, :]], axis=1)
                a, b = tf.reshape(h_prev, [-1, H]), tf.reshape(dhr, [-1, 3 * H])
                if grad_dtype is not None:
                    a, b = tf.cast(a, grad_dtype), tf.cast(b, grad_dtype)
            dU = tf.cast(tf.matmul(a, b, transpose_a=True), f32)
            return (dU, tf.ensure_shape(db_rec, b_rec.shape), tf.ensure_shape(dh0, h0.shape),
                    tf.ensure_shape(dxp, xp.shape) if has[0] else None, None,
                    tf.ensure_shape(dtables, tables.shape) if has[1] else None,
                    tf.ensure_shape(dframes, frames.shape) if has[2] else None)

        return h_out, grad

    def arg(t, dtype):
        return empty if t is None else tf.cast(t, dtype)

    return op(tf.cast(U, f32), tf.cast(b_rec, f32), tf.cast(h0, f32), arg(xp, f32),
              tf.zeros([0], tf.int32) if codes is None else tf.cast(codes, tf.int32),
              arg(tables, f32), arg(frames, f32))


def head_forward(v, K, bias, factor, target, eps: float, grads: bool = False):
    """Output head forward (``lpcnet_tree_head_forward``): ``(pdf (N, U), loss (N,))``.

    ``v`` (N, D) dual-FC inputs, ``K`` (U, D, C), ``bias`` / ``factor`` (U, C) (MDense's
    weights), ``target`` (N,) codes; loss = Keras' sparse categorical cross-entropy of the tree
    pdf (clip ``eps``). With ``grads``, also ``(dv, dK, dbias, dfactor)``: the gradients of
    ``loss.sum()`` from the same pass (:func:`head_backward` with dloss = 1).
    """
    v, K, bias, factor = (_f32(a) for a in (v, K, bias, factor))
    target = np.ascontiguousarray(np.reshape(target, -1), dtype=np.int32)
    (N, D), (U, _, C) = v.shape, K.shape
    pdf, loss = empty_aligned((N, U)), empty_aligned((N,))
    g = [empty_aligned(a.shape) for a in (v, K, bias, factor)] if grads else [None] * 4
    opt = lambda a: None if a is None else _ptr(a)      # noqa: E731
    if load_library().lpcnet_tree_head_forward(N, D, U, C, _ptr(v), _ptr(K), _ptr(bias), _ptr(factor),
                                               _ptr(target), float(eps), _ptr(pdf), _ptr(loss),
                                               *(opt(a) for a in g), kernel_threads()):
        raise ValueError(f"lpcnet_tree_head_forward refused N={N} D={D} U={U} C={C} (U not a power "
                         "of 2, a target outside [0, U), or out of memory)")
    return (pdf, loss, *g) if grads else (pdf, loss)


def head_backward(v, K, bias, factor, target, eps: float, dloss, dpdf=None):
    """Gradients ``(dv, dK, dbias, dfactor)`` of the head given dL/dloss (N,) and dL/dpdf (N, U) or None."""
    v, K, bias, factor, dloss = (_f32(a) for a in (v, K, bias, factor, dloss))
    target = np.ascontiguousarray(np.reshape(target, -1), dtype=np.int32)
    (N, D), (U, _, C) = v.shape, K.shape
    dpdf = None if dpdf is None or np.size(dpdf) == 0 else _f32(dpdf)
    dv, dK, dbias, dfactor = (empty_aligned(a.shape) for a in (v, K, bias, factor))
    if load_library().lpcnet_tree_head_backward(N, D, U, C, _ptr(v), _ptr(K), _ptr(bias), _ptr(factor),
                                                _ptr(target), float(eps), _ptr(dloss),
                                                None if dpdf is None else _ptr(dpdf), _ptr(dv), _ptr(dK),
                                                _ptr(dbias), _ptr(dfactor), kernel_threads()):
        raise ValueError(f"lpcnet_tree_head_backward refused N={N} D={D} U={U} C={C}")
    return dv, dK, dbias, dfactor


def tree_head(v, kernel, bias, factor, target, eps: float = 1e-7):
    """TensorFlow op: the training model's output head in one native pass.

    ``MDense`` (sigmoid) -> ``TreeToPdf`` -> Keras' ``SparseCategoricalCrossentropy`` on
    probabilities, per sample: ``v`` (..., D) the dual FC's inputs (GRU B's outputs),
    ``kernel`` (U, D, C), ``bias``, ``factor`` (U, C), ``target`` (...) or (..., 1) int codes.
    Returns ``(pdf (..., U), loss (...))``: the model's output and the per-sample loss (clip
    ``eps``, as Keras). Differentiable in ``v`` and the weights through both; the TensorFlow
    layers would build a (B*T, 256) tensor per tree level and their gradients
    (docs/training.md, Speed). The forward pass also forms the gradients of ``loss.sum()``:
    when the pdf gets no gradient and every sample's loss the same one (a mean, as in a
    training step), the gradient is those times it; otherwise a second native pass.
    """
    import tensorflow as tf

    f32 = tf.float32
    v = tf.cast(v, f32)
    lead = tf.shape(v)[:-1]
    D, U = int(v.shape[-1]), int(kernel.shape[0])
    flat_v = tf.reshape(v, [-1, D])
    flat_t = tf.reshape(tf.cast(target, tf.int32), [-1])

    @tf.custom_gradient
    def op(fv, K, b, f):
        pdf, loss, *once = tf.numpy_function(
            lambda *a: head_forward(*a, eps=eps, grads=True), [fv, K, b, f, flat_t], [f32] * 6,
            stateful=False, name="lpcnet_tree_head_forward")
        pdf = tf.ensure_shape(pdf, [fv.shape[0], U])
        loss = tf.ensure_shape(loss, fv.shape[:1])
        shapes = [fv.shape, K.shape, b.shape, f.shape]

        def second_pass(dloss, dpdf):
            grads = tf.numpy_function(
                lambda *a: head_backward(*a[:5], eps=eps, dloss=a[5], dpdf=a[6]),
                [fv, K, b, f, flat_t, dloss, dpdf], [f32] * 4, stateful=False,
                name="lpcnet_tree_head_backward")
            return [tf.ensure_shape(g, s) for g, s in zip(grads, shapes)]

        def grad(dpdf, dloss):
            # TensorFlow hands zeros (not None) for an output that gets no gradient.
            dloss = tf.zeros_like(loss) if dloss is None else tf.cast(dloss, f32)
            dpdf = tf.zeros_like(pdf) if dpdf is None else tf.cast(dpdf, f32)
            one_pass = tf.logical_and(tf.reduce_all(tf.equal(dloss, dloss[0])),
                                      tf.reduce_all(tf.equal(dpdf, 0.0)))
            return tf.cond(one_pass, lambda: [tf.ensure_shape(g, s) * dloss[0] for g, s in zip(once, shapes)],
                           lambda: second_pass(dloss, dpdf))

        return (pdf, loss), grad

    pdf, loss = op(flat_v, tf.cast(kernel, f32), tf.cast(bias, f32), tf.cast(factor, f32))
    return tf.reshape(pdf, tf.concat([lead, [U]], 0)), tf.reshape(loss, lead)
