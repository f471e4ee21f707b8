"""Readable NumPy reference of ``dump-data -test`` (docs/features.md, Algorithm), for checking the C code.

Written for clarity, not speed: float64 throughout, whole-signal filters with
SciPy, one FFT per frame, and the pitch tracker's dynamic programming as a
masked matrix. It draws the same dither as the C library (PCG32 below), so the
two agree frame by frame up to float32 rounding (see tests/test_features.py).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from lpcnet.formats import (FRAME_SIZE, LPC_ORDER, NB_BANDS, NB_TOTAL_FEATURES, PITCH_MAX_PERIOD,
                            PITCH_MIN_PERIOD, PRE_EMPHASIS)

WINDOW_SIZE = 2 * FRAME_SIZE
PITCH_MIN, PITCH_MAX = PITCH_MIN_PERIOD, PITCH_MAX_PERIOD
NB_CANDIDATES = PITCH_MAX - PITCH_MIN          # 224 candidate lags: 256 down to 33
EBAND5MS = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 34, 40])
COMPENSATION = np.array([0.8, 1, 1, 1, 1, 1, 1, 1, 0.666667, 0.5, 0.5, 0.5, 0.333333, 0.25,
                         0.25, 0.2, 0.166667, 0.173913])

_MASK64 = (1 << 64) - 1
_PCG_MULT = 6364136223846793005
_PCG_INC = ((0x4C504E6574 << 1) | 1) & _MASK64


# --- the C library's PCG32 (native/src/rng.h) ---------------------------------------
def pcg32_uniform(seed: int, n: int) -> np.ndarray:
    """The first ``n`` uniforms ``(r >> 8) / 2^24`` of the C generator seeded with ``seed``."""
    def step(state):
        return (state * _PCG_MULT + _PCG_INC) & _MASK64

    state = step(0)
    state = step((state + seed) & _MASK64)
    out = np.empty(n, dtype=np.float64)
    for k in range(n):
        old = state
        state = step(old)
        xorshifted = (((old >> 18) ^ old) >> 27) & 0xFFFFFFFF
        rot = old >> 59
        r = ((xorshifted >> rot) | (xorshifted << ((32 - rot) & 31))) & 0xFFFFFFFF
        out[k] = (r >> 8) / 16777216.0
    return out


# --- spectral tables -------------------------------------------------------------------
def half_window() -> np.ndarray:
    """Vorbis power-complementary window, first half (Algorithm step 5)."""
    s = np.sin(0.5 * np.pi * (np.arange(FRAME_SIZE) + 0.5) / FRAME_SIZE)
    return np.sin(0.5 * np.pi * s * s)


def band_matrix() -> np.ndarray:
    """(18, 160) triangular band weights over FFT bins 0..159 (step 6), edges doubled."""
    m = np.zeros((NB_BANDS, WINDOW_SIZE // 2))
    for i in range(NB_BANDS - 1):
        width = 4 * (EBAND5MS[i + 1] - EBAND5MS[i])
        frac = np.arange(width) / width
        bins = 4 * EBAND5MS[i] + np.arange(width)
        m[i, bins] += 1 - frac
        m[i + 1, bins] += frac
    m[0] *= 2
    m[-1] *= 2
    return m


def dct_matrix() -> np.ndarray:
    """Orthonormal DCT-II: ``c = D @ L`` (step 7); its transpose is the inverse (step 8)."""
    k, i = np.meshgrid(np.arange(NB_BANDS), np.arange(NB_BANDS), indexing="ij")
    d = np.sqrt(2.0 / NB_BANDS) * np.cos(np.pi * (i + 0.5) * k / NB_BANDS)
    d[0] *= np.sqrt(0.5)
    return d


def interp_matrix() -> np.ndarray:
    """(160, 18) linear interpolation of band values to bins 0..159 (step 8)."""
    m = np.zeros((WINDOW_SIZE // 2, NB_BANDS))
    for i in range(NB_BANDS - 1):
        width = 4 * (EBAND5MS[i + 1] - EBAND5MS[i])
        frac = np.arange(width) / width
        bins = 4 * EBAND5MS[i] + np.arange(width)
        m[bins, i] = 1 - frac
        m[bins, i + 1] = frac
    return m


# --- per-frame pieces ------------------------------------------------------------------
def cepstrum(band_energy: np.ndarray) -> np.ndarray:
    """Band energies -> 18 cepstra: log10 with floor, DCT, c0 -= 4 (step 7)."""
    ly = np.log10(1e-2 + band_energy)
    log_max = follow = -2.0
    for i in range(NB_BANDS):
        ly[i] = max(log_max - 8, follow - 2.5, ly[i])
        log_max = max(log_max, ly[i])
        follow = max(follow - 2.5, ly[i])
    c = dct_matrix() @ ly
    c[0] -= 4
    return c


def levinson(ac: np.ndarray, order: int = LPC_ORDER) -> np.ndarray:
    """Levinson-Durbin with the reference's 30 dB early stop (step 8)."""
    a = np.zeros(order)
    if ac[0] == 0:
        return a
    err = ac[0]
    for i in range(order):
        k = -(ac[i + 1] + np.dot(a[:i], ac[i:0:-1])) / err
        a[:i] = a[:i] + k * a[:i][::-1]
        a[i] = k
        err *= 1 - k * k
        if err < 0.001 * ac[0]:
            break
    return a


def lpc_from_cepstrum(c: np.ndarray) -> np.ndarray:
    """Cepstrum -> 16 LPCs via band energies, interpolated spectrum, autocorrelation (step 8)."""
    c = c.copy()
    c[0] += 4
    bands = 10.0 ** (dct_matrix().T @ c) * COMPENSATION
    power = interp_matrix() @ bands                       # bins 0..159, bin 160 = 0
    m = np.arange(LPC_ORDER + 1)[:, None]
    k = np.arange(1, WINDOW_SIZE // 2)[None, :]
    ac = power[0] + 2 * (power[1:] * np.cos(2 * np.pi * k * m / WINDOW_SIZE)).sum(axis=1)
    ac[0] += ac[0] * 1e-4 + 26 / 38.0                     # noise floor (integer 320/12)
    ac[1:] *= 1 - 6e-5 * np.arange(1, LPC_ORDER + 1) ** 2  # lag window
    return levinson(ac)


def normalized_xcorr(exc: np.ndarray, offset: int):
    """Half-frame normalised correlations xc[0..255] and weight (step 9).

    ``exc`` is the 416-sample excitation buffer; lag L = 256 - i.
    """
    x = exc[PITCH_MAX + offset:PITCH_MAX + offset + FRAME_SIZE // 2]
    windows = np.lib.stride_tricks.sliding_window_view(exc[offset:], FRAME_SIZE // 2)[:PITCH_MAX]
    xcorr = windows @ x
    energy = np.dot(x, x)
    return 2 * xcorr / (1 + energy + (windows ** 2).sum(axis=1)), energy


class PitchTracker:
    """Online Viterbi-like pitch tracker over half-frames (step 10), state carried."""

    def __init__(self):
        self.path = np.zeros(NB_CANDIDATES)   # renormalised scores (max 0)
        self.path_max = 0.0                   # previous maximum before renormalisation
        self.best = 0                         # previous argmax
        i = np.arange(NB_CANDIDATES)[:, None]
        k = np.arange(NB_CANDIDATES)[None, :]
        j = k - i
        # allowed transitions k = i + j with j from min(0, 4 - i) to 4 (asymmetric, as the original)
        self.allowed = (j >= np.minimum(0, 4 - i)) & (j <= 4)
        self.penalty = 0.02 * j ** 2

    @staticmethod
    def octave_penalty(xc: np.ndarray) -> np.ndarray:
        xc = xc.copy()
        for i in range(PITCH_MAX - 2 * PITCH_MIN):
            m = max(xc[(PITCH_MAX + i) // 2], xc[(PITCH_MAX + i + 2) // 2],
                    xc[(PITCH_MAX + i - 1) // 2])
            if xc[i] < 1.1 * m:
                xc[i] *= 0.8
        return xc

    def step(self, xc: np.ndarray, weight: float) -> np.ndarray:
        """One half-frame; returns the back-pointers."""
        scores = np.where(self.allowed, self.path[None, :] - self.penalty, -np.inf)
        origin = np.argmax(scores, axis=1)            # first maximum, as the strict '>' scan
        best = scores[np.arange(NB_CANDIDATES), origin]
        jump = self.path_max - 6.0
        keep = best > jump
        prev = np.where(keep, origin, self.best)
        path = np.where(keep, best, jump) + weight * xc[:NB_CANDIDATES]
        self.best = int(np.argmax(path))
        self.path_max = path[self.best]
        self.path = path - self.path_max
        return prev

    def frame(self, xcs, weights):
        """Two half-frames -> (pitch feature, correlation feature)."""
        weights = np.asarray(weights) * 2 / (1e-15 + weights[0] + weights[1])
        xcs = [self.octave_penalty(xc) for xc in xcs]
        prevs = [self.step(xcs[h], weights[h]) for h in range(2)]
        i1 = self.best
        i0 = prevs[1][i1]
        periods = (PITCH_MAX - i0, PITCH_MAX - i1)
        corr = (weights[0] * xcs[0][i0] + weights[1] * xcs[1][i1]) / 2
        return 0.01 * (np.clip(sum(periods), 66, 510) - 200), corr - 0.5


# --- whole signal ------------------------------------------------------------------------
HP_B = (1.0, -2.0, 1.0)
HP_A = (1.0, -1.99599, 0.99600)


def dc_block_float32(x: np.ndarray) -> np.ndarray:
    """The DC-blocking biquad as the original computes it: float32 state, double products.

    Its poles sit at radius 0.998, so float32 rounding of the state is amplified
    into low-frequency noise that moves the cepstrum by up to ~5e-3 against an
    exact float64 filter; emulating it lets tests compare with tight tolerances.
    """
    f = np.float32
    b0, b1 = float(f(HP_B[1])), float(f(HP_B[2]))
    a0, a1 = float(f(HP_A[1])), float(f(HP_A[2]))
    m0 = m1 = f(0)
    y = np.empty(len(x), dtype=np.float32)
    for n, xi in enumerate(x.astype(np.float32).tolist()):
        yi = f(xi + m0)
        m0 = f(float(m1) + (b0 * xi - a0 * float(yi)))
        m1 = f(b1 * xi - a1 * float(yi))
        y[n] = yi
    return y.astype(np.float64)


def preprocess(samples: np.ndarray, seed: int = 0, float32_dc_block: bool = True) -> np.ndarray:
    """int16 speech -> DC-blocked, pre-emphasised, dithered float signal (steps 2-4)."""
    x = samples.astype(np.float64)
    x = dc_block_float32(x) if float32_dc_block else lfilter(HP_B, HP_A, x)
    x = lfilter([1.0, -PRE_EMPHASIS], [1.0], x)
    return x + (pcg32_uniform(seed, len(x)) - 0.5)


def reference_features(samples, seed: int = 0, float32_dc_block: bool = True) -> np.ndarray:
    """``dump-data -test`` in NumPy: int16 samples -> ``(len // 160, 36)`` float32.

    Realises the one-frame read lag (record 0 analyses a zero frame).
    ``float32_dc_block=False`` uses an exact float64 DC-blocking filter instead
    of the original's float32 one (see :func:`dc_block_float32`).
    """
    pcm = np.asarray(samples, dtype=np.int16)
    frames = len(pcm) // FRAME_SIZE
    # Record k processes input frame k-1: prepend a zero frame, drop the last one.
    lagged = np.concatenate([np.zeros(FRAME_SIZE, np.int16), pcm[:(frames - 1) * FRAME_SIZE]])
    x = preprocess(lagged, seed, float32_dc_block)
    window = np.concatenate([half_window(), half_window()[::-1]])
    bands = band_matrix()
    tracker = PitchTracker()
    padded = np.concatenate([np.zeros(FRAME_SIZE), x])      # previous frame of frame 0 = 0
    aligned_all = np.concatenate([np.zeros(FRAME_SIZE // 2), x])
    residual_hist = np.zeros(LPC_ORDER)
    exc = np.zeros(PITCH_MAX + FRAME_SIZE)
    prev_r = 0.0
    out = np.zeros((frames, NB_TOTAL_FEATURES))
    for k in range(frames):
        spectrum = np.fft.fft(window * padded[k * FRAME_SIZE:k * FRAME_SIZE + WINDOW_SIZE]) / WINDOW_SIZE
        energy = bands @ (np.abs(spectrum[:WINDOW_SIZE // 2]) ** 2)
        c = cepstrum(energy)
        lpc = lpc_from_cepstrum(c)
        # LPC residual of the half-frame-aligned input, then ex = r + 0.7 r[n-1] (step 9)
        a_in = aligned_all[k * FRAME_SIZE:(k + 1) * FRAME_SIZE]
        hist = np.concatenate([residual_hist, a_in])
        r = a_in + np.array([np.dot(lpc, hist[LPC_ORDER + n - 1::-1][:LPC_ORDER])
                             for n in range(FRAME_SIZE)])
        residual_hist = hist[-LPC_ORDER:]
        ex = r + 0.7 * np.concatenate([[prev_r], r[:-1]])
        prev_r = r[-1]
        exc = np.concatenate([exc[FRAME_SIZE:], ex])
        halves = [normalized_xcorr(exc, h * FRAME_SIZE // 2) for h in range(2)]
        pitch, corr = tracker.frame([h[0] for h in halves], [h[1] for h in halves])
        out[k, :NB_BANDS] = c
        out[k, NB_BANDS:NB_BANDS + 2] = pitch, corr
        out[k, NB_BANDS + 2:] = lpc
    return out.astype(np.float32)
