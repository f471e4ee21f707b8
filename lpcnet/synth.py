"""Speech synthesis from LPCNet features: ``lpcnet synth`` and the ``lpcnet.synth`` API.

Two engines with the same semantics (docs/synthesis.md):

* ``native`` (default): the C engine in ``native/`` (sparse GRU A, SIMD kernels
  chosen at run time, optional int8), loaded with ctypes; its calls release the
  GIL and read/write NumPy buffers in place.
* ``keras``: the reference engine, written for clarity. The frame-rate network
  (encoder) runs once per utterance; the sample-rate network runs one frame at
  a time in a compiled ``tf.function`` whose ``tf.while_loop`` steps the 160
  samples with explicit GRU states. It is the ground truth of the native engine's tests.

Both produce exactly ``frames x 160`` int16 samples, sample ``t`` belonging to
feature frame ``t // 160`` (unlike the seed: no frame dropped, no 17-sample skip,
output clipped to int16).

``lpcnet synth`` streams long inputs through the native engine in blocks and synthesises
several inputs at once, K streams per core on all cores (:mod:`lpcnet.synth_batch`,
:class:`NativeMulti`); every output equals the single-stream synthesis of its input.

Sampling rule (both engines, docs/synthesis.md): each of the 8 bits of the µ-law code
is drawn MSB first down the probability tree; with ``k`` the next 8-bit value
of a counter-based splitmix64 stream (seeded by ``--seed``), the bit is 1 iff
``P(bit = 1) > 0.025 + 0.95 k / 255``. ``argmax`` makes every bit 1 iff its
probability exceeds 0.5. ``sharpen`` multiplies the bit logits by
``1 + max(0, 1.5 c - 0.5)`` with ``c`` the frame's raw pitch correlation
(feature 19 + 0.5).
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import numpy as np

from lpcnet import native
from lpcnet.errors import FormatError, LpcnetError
from lpcnet.formats import (FRAME_SIZE, LPC, NB_TOTAL_FEATURES, NETWORK_FEATURES, PCM_SCALE,
                            PITCH_CORR_INDEX, PITCH_INDEX, PRE_EMPHASIS, RAW_PCM_SUFFIXES,
                            SAMPLE_RATE, decode_pitch, ulaw2lin)

LEVELS = 256
FLAG_INT8, FLAG_SHARPEN, FLAG_LPC_CEPSTRUM, FLAG_ARGMAX = 1, 2, 4, 8
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


# --- random stream and thresholds shared by both engines ------------------------------
def random_bytes(seed: int, start: int, count: int) -> np.ndarray:
    """Values ``start+1 .. start+count`` of the splitmix64 stream, top 8 bits (uint8).

    Counter-based, so any slice is computed directly; the C engine draws value
    ``8 t + b + 1`` for bit ``b`` of sample ``t``.
    """
    with np.errstate(over="ignore"):
        c = np.arange(start + 1, start + count + 1, dtype=np.uint64)
        z = np.uint64(seed % (1 << 64)) + c * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(56)).astype(np.uint8)


def bit_thresholds() -> np.ndarray:
    """Per-bit probability thresholds ``0.025 + 0.95 k / 255`` in float32 (docs/synthesis.md)."""
    k = np.arange(LEVELS, dtype=np.float32)
    return np.float32(0.025) + np.float32(0.95) * k / np.float32(255.0)


def sharpen_gain(features: np.ndarray, enabled: bool) -> np.ndarray:
    """Per-frame logit gain ``1 + max(0, 1.5 (f19 + 0.5) - 0.5)`` (1 when disabled)."""
    if not enabled:
        return np.ones(len(features), np.float32)
    corr = features[:, PITCH_CORR_INDEX].astype(np.float32) + np.float32(0.5)
    return (1.0 + np.maximum(0.0, 1.5 * corr - 0.5)).astype(np.float32)


# --- inputs ---------------------------------------------------------------------------
def check_features(features, name="features") -> np.ndarray:
    """Validate ``(frames, 36)`` float features -> contiguous float32 copy."""
    f = np.asarray(features)
    if f.ndim != 2 or f.shape[1] != NB_TOTAL_FEATURES or len(f) == 0:
        raise FormatError(f"{name}: expected features of shape (frames>0, {NB_TOTAL_FEATURES}), "
                          f"got {f.shape}")
    f = np.ascontiguousarray(f, dtype=np.float32)
    if not np.all(np.isfinite(f)):
        raise FormatError(f"{name}: features hold NaN or Inf values")
    return f


def load_weights(checkpoint, user: str = "the Keras engine"):
    """Checkpoint (.keras / seed .h5) -> (weights dict, ModelConfig). ``user``: who needs the
    weights, for the message refusing an exported blob."""
    from lpcnet.export import check_checkpoint_kind
    from lpcnet.model import config_from_weights, read_checkpoint_weights

    check_checkpoint_kind(checkpoint, ("keras", "h5"), user)
    weights = read_checkpoint_weights(checkpoint)
    return weights, config_from_weights(weights)


def blob_bytes(checkpoint, int8: bool = False) -> bytes:
    """Weight blob for the native engine: a ``.bin`` from ``lpcnet export`` or exported now."""
    from lpcnet.export import blob_from_bytes, blob_from_weights, blob_to_bytes, check_checkpoint_kind

    path = Path(checkpoint)
    if not path.is_file():
        raise LpcnetError(f"{path}: checkpoint not found")
    if check_checkpoint_kind(path, ("blob", "keras", "h5")) == "blob":
        raw = path.read_bytes()
        blob_from_bytes(raw, str(path))      # validates it; refuses NaN/Inf weights (one line)
        return raw
    weights, cfg = load_weights(path)
    return blob_to_bytes(blob_from_weights(weights, cfg, int8=int8))


# --- native engine ----------------------------------------------------------------------
_vp, _int, _long = ctypes.c_void_p, ctypes.c_int, ctypes.c_long
_SIGNATURES = {
    "lpcnet_synth_model_load": ([ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                 ctypes.c_size_t], _vp),
    "lpcnet_synth_model_free": ([_vp], None),
    "lpcnet_synth_model_sizes": ([_vp, _vp], None),
    "lpcnet_synth_create": ([_vp, _int, ctypes.c_uint64], _vp),
    "lpcnet_synth_destroy": ([_vp], None),
    "lpcnet_synth_frame": ([_vp, _vp, _vp], _int),
    "lpcnet_synth_flush": ([_vp, _vp], _int),
    "lpcnet_synth_run": ([_vp, _vp, _long, _vp, _vp, _vp], _long),
    "lpcnet_synth_trace": ([_vp, _vp, _vp], None),
    "lpcnet_synth_frames": ([_vp, _vp, _long, _vp], _long),
    "lpcnet_synth_multi_create": ([_vp, _int, _int], _vp),
    "lpcnet_synth_multi_destroy": ([_vp], None),
    "lpcnet_synth_multi_start": ([_vp, _int, ctypes.c_uint64], _int),
    "lpcnet_synth_multi_step": ([_vp, _int, _vp, _vp, _vp, _vp], _long),
    "lpcnet_synth_simd_level": ([], _int),
    "lpcnet_synth_set_simd_level": ([_int], _int),
}


def load_library() -> ctypes.CDLL:
    """Load (once) the native synthesis library (lpcnet.native; built with make in a source tree)."""
    return native.load("synth", _SIGNATURES)


SIMD_LEVELS = {"scalar": 0, "avx2": 2, "avx512": 3, "auto": -1}


def set_simd_level(level: str) -> str:
    """Force ``scalar``/``avx2``/``avx512``/``auto`` for native states created afterwards."""
    got = load_library().lpcnet_synth_set_simd_level(SIMD_LEVELS[level])
    return {v: k for k, v in SIMD_LEVELS.items()}[got]


class NativeModel:
    """Weights loaded into the C engine (validated there: bad blobs raise FormatError).

    Attributes: ``gru_a``, ``gru_b``, ``cond_size``, ``has_int8`` and ``end2end`` (the
    end-to-end model: each frame's LPC is made from its first 16 conditioning values by the
    step-up recursion, features 20..35 are not read; docs/synthesis.md).
    """

    def __init__(self, blob: bytes, name: str = "weights"):
        self.name = name
        self.lib = load_library()
        err = ctypes.create_string_buffer(256)
        self._ptr = self.lib.lpcnet_synth_model_load(blob, len(blob), err, len(err))
        if not self._ptr:
            raise FormatError(f"{name}: {err.value.decode(errors='replace')}")
        sizes = np.zeros(5, np.int32)
        self.lib.lpcnet_synth_model_sizes(self._ptr, sizes.ctypes.data)
        self.gru_a, self.gru_b, self.cond_size, self.has_int8 = (int(s) for s in sizes[:4])
        self.end2end = bool(sizes[4])

    @classmethod
    def from_checkpoint(cls, checkpoint, int8: bool = False) -> "NativeModel":
        model = cls(blob_bytes(checkpoint, int8=int8), str(checkpoint))
        _flags(model, int8, False, False, False)      # int8 of a float blob: refused now, naming it
        return model

    def __del__(self):
        if getattr(self, "_ptr", None):
            self.lib.lpcnet_synth_model_free(self._ptr)
            self._ptr = None


def _flags(model: NativeModel, int8: bool, sharpen: bool, argmax: bool, lpc_from_cepstrum: bool) -> int:
    if int8 and not model.has_int8:
        raise LpcnetError(f"{model.name}: a float weight blob without int8 copies; int8 synthesis needs "
                          f"a blob exported with `lpcnet export --int8` (or give the .keras / .h5 checkpoint)")
    if lpc_from_cepstrum and model.end2end:
        raise LpcnetError("--lpc-from-cepstrum has no meaning for an end-to-end model: its LPC "
                          "comes from the network's conditioning, not from the features")
    return ((FLAG_INT8 if int8 else 0) | (FLAG_SHARPEN if sharpen else 0)
            | (FLAG_ARGMAX if argmax else 0) | (FLAG_LPC_CEPSTRUM if lpc_from_cepstrum else 0))


class NativeStream:
    """Frame-at-a-time native synthesis: ``frame(features36)`` -> 0 or 160 samples,
    ``frames(block)`` -> the samples of a block of frames, ``flush()`` -> the last frames.

    Feeding a long input block by block gives exactly the samples of :meth:`run` on the whole
    of it, with memory that does not grow with its length.
    """

    def __init__(self, model: NativeModel, seed: int = 0, int8: bool = False, sharpen: bool = False,
                 argmax: bool = False, lpc_from_cepstrum: bool = False):
        flags = _flags(model, int8, sharpen, argmax, lpc_from_cepstrum)
        self.model, self.lib = model, model.lib
        self._ptr = self.lib.lpcnet_synth_create(model._ptr, flags, int(seed) % (1 << 64))
        if not self._ptr:
            raise LpcnetError("cannot create a native synthesis state")
        self._buf = np.zeros(2 * FRAME_SIZE, np.int16)

    def frame(self, features) -> np.ndarray:
        f = np.ascontiguousarray(features, dtype=np.float32).reshape(NB_TOTAL_FEATURES)
        n = self.lib.lpcnet_synth_frame(self._ptr, f.ctypes.data, self._buf.ctypes.data)
        return self._buf[:n].copy()

    def frames(self, features) -> np.ndarray:
        """A block ``(n, 36)`` of the stream's next frames -> their int16 samples (160 per frame,
        none for the first two frames of the stream: the network looks two frames ahead)."""
        f = np.ascontiguousarray(features, dtype=np.float32).reshape(-1, NB_TOTAL_FEATURES)
        out = np.empty(len(f) * FRAME_SIZE, np.int16)
        n = self.lib.lpcnet_synth_frames(self._ptr, f.ctypes.data, len(f), out.ctypes.data)
        if n < 0:
            raise LpcnetError("native synthesis state refused the frames")
        return out[:n]

    def flush(self) -> np.ndarray:
        n = self.lib.lpcnet_synth_flush(self._ptr, self._buf.ctypes.data)
        return self._buf[:n].copy()

    def run(self, features, probs: bool = False, forced=None, trace: bool = False):
        """Whole utterance on a fresh state -> samples (and bit probabilities (T, 256)).

        ``trace`` (tests) also returns ``(cond (F, cond_size), lpc (F, 16))``: each frame's
        conditioning vector (dense2's output) and the LPC its samples were predicted with,
        as the last element of the returned tuple.
        """
        f = check_features(features)
        out = np.zeros(len(f) * FRAME_SIZE, np.int16)
        q = np.zeros((len(out), LEVELS), np.float32) if probs else None
        fc = None if forced is None else np.ascontiguousarray(forced, dtype=np.uint8)
        if fc is not None and fc.shape != (len(out),):
            raise LpcnetError(f"forced codes must have shape ({len(out)},)")
        cond = np.zeros((len(f), self.model.cond_size), np.float32) if trace else None
        lpc = np.zeros((len(f), 16), np.float32) if trace else None
        if trace:
            self.lib.lpcnet_synth_trace(self._ptr, cond.ctypes.data, lpc.ctypes.data)
        n = self.lib.lpcnet_synth_run(self._ptr, f.ctypes.data, len(f), out.ctypes.data,
                                      None if q is None else q.ctypes.data,
                                      None if fc is None else fc.ctypes.data)
        if trace:
            self.lib.lpcnet_synth_trace(self._ptr, None, None)
        if n != len(out):
            raise LpcnetError("native state already used; create a new NativeStream")
        extra = ((q,) if probs else ()) + (((cond, lpc),) if trace else ())
        return (out, *extra) if extra else out

    def __del__(self):
        if getattr(self, "_ptr", None):
            self.lib.lpcnet_synth_destroy(self._ptr)
            self._ptr = None


#: Commands of :meth:`NativeMulti.step` (LPCNET_SYNTH_* of lpcnet_synth.h).
IDLE, FEED, END = 0, 1, 2
#: Steps of end-of-stream padding after a stream's last frame (the network's lookahead).
DELAY_FRAMES = 2
#: Most streams of one NativeMulti (LPCNET_SYNTH_MAX_STREAMS).
MAX_STREAMS = 64


class NativeMulti:
    """``streams`` native synthesis streams stepped together on one core (docs/synthesis.md).

    The matrix products of all streams read the weights once (int8: a 512-bit VNNI kernel
    over the streams); each stream's samples are exactly those of a :class:`NativeStream`
    with the same options and seed fed the same frames. :meth:`start` begins a new utterance
    on a stream; :meth:`step` runs blocks of steps.
    """

    def __init__(self, model: NativeModel, streams: int, int8: bool = False, sharpen: bool = False,
                 argmax: bool = False, lpc_from_cepstrum: bool = False):
        if not 1 <= int(streams) <= MAX_STREAMS:
            raise LpcnetError(f"--streams: expected 1..{MAX_STREAMS} streams, got {streams}")
        flags = _flags(model, int8, sharpen, argmax, lpc_from_cepstrum)
        self.model, self.lib, self.streams = model, model.lib, int(streams)
        self._ptr = self.lib.lpcnet_synth_multi_create(model._ptr, flags, self.streams)
        if not self._ptr:
            raise LpcnetError("cannot create native synthesis streams (out of memory)")

    def start(self, stream: int, seed: int = 0) -> None:
        """Begin a new utterance on ``stream`` (a fresh state with this sampling seed)."""
        if self.lib.lpcnet_synth_multi_start(self._ptr, int(stream), int(seed) % (1 << 64)):
            raise LpcnetError(f"cannot start stream {stream} of {self.streams}")

    def step(self, features: np.ndarray, commands: np.ndarray) -> tuple:
        """Run ``len(commands)`` steps.

        Args:
            features: ``(steps, streams, 36)`` float32; row ``[t, s]`` is read when
                ``commands[t, s] == FEED``.
            commands: ``(steps, streams)`` int8: ``IDLE``, ``FEED`` (the stream's next frame) or
                ``END`` (one of the :data:`DELAY_FRAMES` steps that end an utterance).
        Returns:
            ``(samples (steps, streams, 160) int16, counts (steps, streams))``: stream ``s``
            produced ``counts[t, s]`` (0 or 160) samples at step ``t``.
        """
        cmd = np.ascontiguousarray(commands, dtype=np.int8)
        steps = cmd.shape[0]
        if cmd.shape != (steps, self.streams):
            raise LpcnetError(f"commands must have shape (steps, {self.streams}), got {cmd.shape}")
        f = np.ascontiguousarray(features, dtype=np.float32)
        if f.shape != (steps, self.streams, NB_TOTAL_FEATURES):
            raise LpcnetError(f"features must have shape ({steps}, {self.streams}, {NB_TOTAL_FEATURES})")
        out = np.empty((steps, self.streams, FRAME_SIZE), np.int16)
        counts = np.empty((steps, self.streams), np.int16)
        if self.lib.lpcnet_synth_multi_step(self._ptr, steps, f.ctypes.data, cmd.ctypes.data,
                                            out.ctypes.data, counts.ctypes.data) < 0:
            raise LpcnetError("native synthesis refused a step command")
        return out, counts

    def __del__(self):
        if getattr(self, "_ptr", None):
            self.lib.lpcnet_synth_multi_destroy(self._ptr)
            self._ptr = None


# --- Keras reference engine -------------------------------------------------------------
class KerasEngine:
    """Reference synthesis with the Keras layers (encoder once, decoder step per sample).

    For an end-to-end model (``cfg.end2end``) each frame's LPCs are those the network computes
    from the frame's conditioning (the encoder's second output, layer ``rc2lpc``), not the
    features' (docs/model.md, End-to-end variant); everything else is the same.

    Args:
        weights, cfg: from :func:`load_weights`.
        seed: seed of the sampling stream (same stream as the native engine).
        sharpen, argmax: sampling options (module docstring).
    """

    def __init__(self, weights, cfg, seed: int = 0, sharpen: bool = False, argmax: bool = False):
        import tensorflow as tf

        from lpcnet.model import assign_weights, build_lpcnet

        self.cfg, self.seed, self.sharpen, self.argmax = cfg, int(seed), sharpen, argmax
        models = build_lpcnet(cfg, training=False)
        assign_weights(models.model, weights)
        self.encoder = models.encoder
        m = models.model
        self.embed_sig = m.get_layer("embed_sig")
        self.cell_a = m.get_layer("gru_a").cell
        self.cell_b = m.get_layer("gru_b").cell
        md = m.get_layer("dual_fc")
        self.md_kernel, self.md_bias, self.md_factor = md.kernel, md.bias, md.factor
        self.ulaw_table = tf.constant(ulaw2lin(np.arange(LEVELS)), tf.float64)
        self.thresholds = tf.constant(bit_thresholds())
        self._frame_fn = tf.function(self._frame, reduce_retracing=True)

    # µ-law in TensorFlow, the exact formula of docs/formats.md (tf.round is half-to-even)
    @staticmethod
    def _lin2ulaw(x):
        import tensorflow as tf

        u = 128.0 * tf.math.log1p(tf.abs(x) * (255.0 / PCM_SCALE)) / np.log(256.0)
        return tf.cast(tf.clip_by_value(128.0 + tf.round(tf.sign(x) * u), 0.0, 255.0), tf.int32)

    def _frame(self, cond, lpc, gain, rnd, forced, use_forced, state):
        """160 samples of one frame; ``state`` = (hist, deemph, sig, exc, ha, hb)."""
        import tensorflow as tf

        lpc64 = tf.cast(lpc, tf.float64)
        cond = cond[None, :]

        def step(i, hist, deemph, sig, exc, ha, hb, out, probs):
            pred = -tf.reduce_sum(lpc64 * hist)
            codes = tf.stack([sig, self._lin2ulaw(pred), exc])[None, :]
            emb = tf.reshape(self.embed_sig(codes), (1, -1))
            ha, _ = self.cell_a(tf.concat([emb, cond], -1), [ha])     # GRUCell -> (h, [h])
            hb, _ = self.cell_b(tf.concat([ha, cond], -1), [hb])
            t = tf.tanh(tf.einsum("i,uic->uc", hb[0], self.md_kernel) + self.md_bias)
            logits = tf.reduce_sum(t * self.md_factor, -1)           # pre-sigmoid, (256,)
            v = tf.constant(0, tf.int32)
            for b in range(8):
                x = gain * logits[(1 << b) + v]
                if self.argmax:
                    bit = x > 0.0
                else:
                    bit = tf.sigmoid(x) > self.thresholds[tf.cast(rnd[i, b], tf.int32)]
                v = 2 * v + tf.cast(bit, tf.int32)
            v = tf.where(use_forced, forced[i], v)
            pcm = pred + tf.gather(self.ulaw_table, v)
            deemph = PRE_EMPHASIS * deemph + pcm
            y = tf.clip_by_value(tf.round(deemph), -32768.0, 32767.0)
            hist = tf.concat([pcm[None], hist[:-1]], 0)
            return (i + 1, hist, deemph, self._lin2ulaw(pcm), v, ha, hb,
                    out.write(i, tf.cast(y, tf.int16)), probs.write(i, tf.sigmoid(logits)))

        hist, deemph, sig, exc, ha, hb = state
        out = tf.TensorArray(tf.int16, size=FRAME_SIZE)
        probs = tf.TensorArray(tf.float32, size=FRAME_SIZE)
        res = tf.while_loop(lambda i, *_: i < FRAME_SIZE, step,
                            (tf.constant(0), hist, deemph, sig, exc, ha, hb, out, probs))
        _, hist, deemph, sig, exc, ha, hb, out, probs = res
        return out.stack(), probs.stack(), (hist, deemph, sig, exc, ha, hb)

    def conditioning(self, features: np.ndarray) -> np.ndarray:
        """Frame-rate network over the whole utterance ('same' padding) -> (frames, cond)."""
        return self._encode(features)[0]

    def frame_lpcs(self, features: np.ndarray) -> np.ndarray:
        """(frames, 16) LPCs of the prediction: the features' (standard model) or the network's
        (end-to-end model: rc2lpc of each frame's conditioning)."""
        return self._encode(features)[1]

    def _encode(self, features: np.ndarray) -> tuple:
        f = features[None, :, NETWORK_FEATURES].astype(np.float32)
        p = decode_pitch(features[:, PITCH_INDEX])[None, :, None].astype(np.int32)
        out = self.encoder([f, p], training=False)
        if self.cfg.end2end:
            return np.asarray(out[0])[0], np.asarray(out[1], np.float32)[0]
        return np.asarray(out)[0], np.ascontiguousarray(features[:, LPC], np.float32)

    def run(self, features, probs: bool = False, forced=None):
        """Whole utterance -> int16 samples (frames*160) [and bit probabilities (T, 256)]."""
        import tensorflow as tf

        f = check_features(features)
        cond, lpcs = self._encode(f)
        gains = sharpen_gain(f, self.sharpen)
        state = (tf.zeros(16, tf.float64), tf.constant(0.0, tf.float64), tf.constant(128),
                 tf.constant(128), tf.zeros((1, self.cfg.gru_a)), tf.zeros((1, self.cfg.gru_b)))
        n = len(f) * FRAME_SIZE
        rnd_all = random_bytes(self.seed, 0, 8 * n).reshape(n, 8)
        forced_all = np.zeros(n, np.int32) if forced is None else np.asarray(forced, np.int32)
        outs, qs = [], []
        for j in range(len(f)):
            sl = slice(j * FRAME_SIZE, (j + 1) * FRAME_SIZE)
            o, q, state = self._frame_fn(tf.constant(cond[j]), tf.constant(lpcs[j]),
                                         tf.constant(gains[j]), tf.constant(rnd_all[sl]),
                                         tf.constant(forced_all[sl]), tf.constant(forced is not None),
                                         state)
            outs.append(o.numpy())
            if probs:
                qs.append(q.numpy())
        out = np.concatenate(outs)
        return (out, np.concatenate(qs)) if probs else out


# --- public API ------------------------------------------------------------------------
def synthesize(features, checkpoint, engine: str = "native", seed: int = 0, int8: bool = False,
               sharpen: bool = False, argmax: bool = False,
               lpc_from_cepstrum: bool = False) -> np.ndarray:
    """Features ``(frames, 36)`` -> int16 speech of ``frames * 160`` samples.

    Args:
        features: array, or a path to a ``-test`` feature file (.f32).
        checkpoint: kit checkpoint (.keras), seed-style .h5, or (native) a blob from
            ``lpcnet export``.
        engine: "native" (C) or "keras" (reference).
        seed: sampling stream seed; int8 / sharpen / argmax / lpc_from_cepstrum:
            options (int8 and lpc_from_cepstrum: native only).
    """
    from lpcnet.formats import read_features

    if isinstance(features, (str, os.PathLike)):
        features = np.asarray(read_features(features, mmap=False))
    features = check_features(features)
    if engine == "native":
        model = NativeModel.from_checkpoint(checkpoint, int8=int8)
        return NativeStream(model, seed, int8=int8, sharpen=sharpen, argmax=argmax,
                            lpc_from_cepstrum=lpc_from_cepstrum).run(features)
    if engine == "keras":
        if int8 or lpc_from_cepstrum:
            raise LpcnetError("--int8 and --lpc-from-cepstrum are options of the native engine")
        weights, cfg = load_weights(checkpoint)
        return KerasEngine(weights, cfg, seed, sharpen=sharpen, argmax=argmax).run(features)
    raise LpcnetError(f"unknown engine '{engine}' (expected native or keras)")


#: Copy-synthesis output sample t reproduces input sample t - COPY_SYNTHESIS_LAG: the
#: extractor's one-frame read lag plus the half-frame delay of the training PCM (docs/features.md).
COPY_SYNTHESIS_LAG = 240


def copy_synthesis(wav, checkpoint, engine: str = "native", align: bool = False,
                   **options) -> np.ndarray:
    """Speech file -> features (``-test`` mode) -> synthesised int16 speech.

    Returns ``floor(len / 160) * 160`` samples, one frame per feature record.
    The model reproduces input sample ``t - COPY_SYNTHESIS_LAG`` at output
    sample ``t``; ``align=True`` removes that lag (the output is
    shifted left and zero-padded at the end, same length), for plots against
    the input. ``options``: those of :func:`synthesize`.
    """
    from lpcnet.audio import load_speech
    from lpcnet.features import extract
    from lpcnet.formats import float_to_int16

    samples, _ = load_speech(wav)
    pcm = float_to_int16(samples)
    if len(pcm) < FRAME_SIZE:
        raise FormatError(f"{wav}: shorter than one frame ({FRAME_SIZE} samples)")
    out = synthesize(extract(pcm), checkpoint, engine=engine, **options)
    if align:
        out = np.concatenate([out[COPY_SYNTHESIS_LAG:], np.zeros(min(len(out), COPY_SYNTHESIS_LAG),
                                                                  np.int16)])
    return out


#: Extensions of the outputs synthesis writes: 16-bit WAV, or raw 16 kHz int16 (docs/synthesis.md).
OUTPUT_SUFFIXES = (".wav", *sorted(RAW_PCM_SUFFIXES))


def check_output_suffix(path, flag: str = "--output") -> Path:
    """Refuse (one line) an output name :func:`write_output` would not write as asked (e.g.
    ``x.mp3`` or no extension: it would silently hold WAV)."""
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise LpcnetError(f"{flag} {path}: expected a file name ending in "
                          f"{', '.join(OUTPUT_SUFFIXES[:-1])} or {OUTPUT_SUFFIXES[-1]} "
                          f"(synthesis writes 16-bit WAV or raw 16 kHz int16)")
    return path


def write_output(path, samples) -> Path:
    """Write int16 samples: raw s16 for .s16/.sw/.pcm/.raw, else 16-bit WAV; atomic."""
    from lpcnet.audio import write_wav
    from lpcnet.formats import write_s16

    path = Path(path)
    if path.suffix.lower() in RAW_PCM_SUFFIXES:
        return write_s16(path, np.asarray(samples, np.int16))
    return write_wav(path, np.asarray(samples, np.int16))


# --- plotting helper (demo, notebooks) ----------------------------------------------------
def plot_spectrograms(signals: dict, rate: int = SAMPLE_RATE):
    """Log-magnitude spectrograms of ``{label: samples}``, one row each; returns the figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(signals), 1, figsize=(10, 2.5 * len(signals)), squeeze=False)
    for ax, (label, s) in zip(axes[:, 0], signals.items()):
        ax.specgram(np.asarray(s, np.float32) / PCM_SCALE, NFFT=512, Fs=rate, noverlap=384, cmap="magma")
        ax.set_title(label)
        ax.set_ylabel("Hz")
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    return fig
