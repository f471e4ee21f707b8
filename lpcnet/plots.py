"""Figures for the data-preparation notebook: each function returns a matplotlib Figure.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot global state), so
they can be made in tests and scripts without a display and shown in notebooks.
Time axes follow the feature timing of docs/features.md: record k analyses the window
``s[160(k-2):160k]``, centred on sample ``160k - 160``.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from lpcnet.formats import (CEPSTRUM, DATA_EXC_OUT, DATA_FIELDS, FRAME_SIZE, LPC, PCM_SCALE,
                            PITCH_CORR_INDEX, PITCH_INDEX, PRE_EMPHASIS, SAMPLE_RATE, decode_pitch,
                            ulaw2lin)


def frame_times(n_frames: int) -> np.ndarray:
    """Centre time in seconds of each feature record's analysis window."""
    return (np.arange(n_frames) * FRAME_SIZE - FRAME_SIZE) / SAMPLE_RATE


def waveform(samples, rate: int = SAMPLE_RATE, title: str = "waveform") -> Figure:
    """Waveform of int16 (or float) speech against time."""
    x = np.asarray(samples, dtype=np.float64)
    fig = Figure(figsize=(10, 2.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(np.arange(len(x)) / rate, x, lw=0.4)
    ax.set(xlabel="time (s)", ylabel="amplitude", title=title, xlim=(0, len(x) / rate))
    return fig


def cepstrogram(features) -> Figure:
    """The 18 cepstral coefficients (features 0..17) over time."""
    f = np.asarray(features)
    c = f[:, CEPSTRUM].T
    t = frame_times(len(f))
    fig = Figure(figsize=(10, 3), layout="constrained")
    ax = fig.add_subplot()
    lim = np.percentile(np.abs(c[1:]), 99)
    im = ax.imshow(c, aspect="auto", origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim,
                   extent=(t[0], t[-1] + FRAME_SIZE / SAMPLE_RATE, -0.5, c.shape[0] - 0.5),
                   interpolation="nearest")
    ax.set(xlabel="time (s)", ylabel="cepstral index", title="18-band cepstrum (c0 clipped)")
    fig.colorbar(im, ax=ax, label="value")
    return fig


def pitch_track(samples, features, corr_threshold: float = 0.0) -> Figure:
    """Spectrogram (0-1 kHz) with the pitch track f0 = SAMPLE_RATE / period overlaid.

    Frames whose pitch correlation feature (corr - 0.5) is below
    ``corr_threshold`` are drawn as unvoiced (gaps).
    """
    x = np.asarray(samples, dtype=np.float64)
    f = np.asarray(features)
    fig = Figure(figsize=(10, 3.5), layout="constrained")
    ax = fig.add_subplot()
    ax.specgram(x, NFFT=1024, Fs=SAMPLE_RATE, noverlap=1024 - FRAME_SIZE, cmap="magma",
                scale="dB", vmin=None)
    f0 = SAMPLE_RATE / decode_pitch(f[:, PITCH_INDEX]).astype(np.float64)
    f0[f[:, PITCH_CORR_INDEX] < corr_threshold] = np.nan
    ax.plot(frame_times(len(f)), f0, color="cyan", lw=1.2, label="f0 from features")
    ax.set(ylim=(0, 1000), xlabel="time (s)", ylabel="frequency (Hz)",
           title="pitch track over the spectrogram")
    ax.legend(loc="upper right")
    return fig


def lpc_envelope(samples, features, frame: int) -> Figure:
    """One record's windowed spectrum (pre-emphasised) against its LPC envelope 1/|A|^2."""
    from lpcnet.features_reference import half_window

    x = np.asarray(samples, dtype=np.float64)
    start = FRAME_SIZE * (frame - 2)
    seg = np.zeros(2 * FRAME_SIZE)
    lo, hi = max(start, 0), min(start + 2 * FRAME_SIZE, len(x))
    if hi > lo:
        seg[lo - start:hi - start] = x[lo:hi]
    seg = np.append(seg[0], seg[1:] - PRE_EMPHASIS * seg[:-1])
    w = np.concatenate([half_window(), half_window()[::-1]])
    spec = np.abs(np.fft.rfft(w * seg) / len(seg)) ** 2
    a = np.concatenate([[1.0], np.asarray(features)[frame, LPC]])
    env = 1.0 / np.abs(np.fft.rfft(a, 2 * FRAME_SIZE)) ** 2
    spec_db = 10 * np.log10(spec + 1e-9)
    env_db = 10 * np.log10(env)
    env_db += np.median(spec_db - env_db)                           # envelopes are gain-free
    freqs = np.fft.rfftfreq(2 * FRAME_SIZE, 1 / SAMPLE_RATE)
    fig = Figure(figsize=(8, 3.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(freqs, spec_db, lw=0.8, label="|X|^2 (windowed, pre-emphasised)")
    ax.plot(freqs, env_db, lw=2, label="LPC envelope 1/|A|^2 (features 20..35)")
    ax.set(xlabel="frequency (Hz)", ylabel="dB", title=f"record {frame}: spectrum vs LPC envelope")
    ax.legend()
    return fig


def ulaw_histogram(data, field: int = DATA_EXC_OUT) -> Figure:
    """Histogram of one data.u8 field (default: the target excitation, byte 3)."""
    d = np.asarray(data)[:, field]
    counts = np.bincount(d, minlength=256)
    fig = Figure(figsize=(8, 3), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(np.arange(256), counts, width=1.0)
    ax.set_yscale("log")
    ax.set(xlabel="mu-law code (128 = 0)", ylabel="count",
           title=f"data.u8 {DATA_FIELDS[field]} (byte {field})", xlim=(-0.5, 255.5))
    return fig


def excitation_audio(data, field: int = DATA_EXC_OUT) -> np.ndarray:
    """A data.u8 field decoded to float audio in [-1, 1] (for listening)."""
    return (ulaw2lin(np.asarray(data)[:, field]) / PCM_SCALE).astype(np.float32)
