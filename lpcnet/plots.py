"""Figures for the notebooks: each function returns a matplotlib Figure.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot global state), so
they can be made in tests and scripts without a display and shown in notebooks.
Time axes follow the feature timing of docs/features.md: record k analyses the window
``s[160(k-2):160k]``, centred on sample ``160k - 160``.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from lpcnet.errors import LpcnetError
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


def lpc_envelopes(lpcs: dict, n_fft: int = 2 * FRAME_SIZE) -> Figure:
    """Gain-free LPC envelopes 1/|A(e^jw)|^2 in dB, one curve per labelled set of LPCs.

    Args:
        lpcs: ``{label: (p,) LPCs a_1..a_p}``, A(z) = 1 + sum a_k z^-k (docs/formats.md), e.g.
            the features' LPCs (indices 20..35) and the ``rc2lpc`` output of a network.
        n_fft: FFT size; the curves have ``n_fft // 2 + 1`` points from 0 to 8 kHz.
    Raises:
        LpcnetError: no LPC set, or one that is not a finite 1-D vector.
    """
    if not lpcs:
        raise LpcnetError("lpc_envelopes: no LPCs given (expected {label: (16,) LPCs})")
    fig = Figure(figsize=(8, 3), layout="constrained")
    ax = fig.add_subplot()
    freqs = np.fft.rfftfreq(n_fft, 1 / SAMPLE_RATE)
    for i, (label, a) in enumerate(lpcs.items()):
        a = np.asarray(a, np.float64)
        if a.ndim != 1 or not np.isfinite(a).all():
            raise LpcnetError(f"lpc_envelopes: {label!r} has shape {a.shape}; expected finite (p,) LPCs")
        inverse = np.fft.rfft(np.concatenate([[1.0], a]), n_fft)
        ax.plot(freqs, -20 * np.log10(np.abs(inverse)), ("-", "--", ":", "-.")[i % 4],
                lw=2.5 if i == 0 else 1.5, label=label)          # dashes show curves that coincide
    ax.set(xlabel="frequency (Hz)", ylabel="dB", title="LPC envelopes 1/|A|^2 (gain-free)")
    ax.legend()
    return fig


def _numeric(values) -> bool:
    """True for a list or array of numbers (what a Keras history holds per key)."""
    try:
        np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return True


def variant_losses(standard: dict, end2end: dict) -> Figure:
    """Per-epoch training curves of the standard and the end-to-end model, side by side.

    Left: each model's own loss, two different quantities (the standard cross-entropy of the
    target excitation code; the end-to-end ``interp_mulaw`` = interpolated cross-entropy + the
    gamma term, docs/model.md). Right: the comparable pair, the cross-entropy (nats per sample)
    of the pdf at the excitation code: the standard ``loss`` and the end-to-end
    ``cross_entropy`` (its excitation code rounded).

    Args:
        standard: the standard model's Keras history (``train(...)["history"]``).
        end2end: the end-to-end model's history (it has ``cross_entropy``).
    Raises:
        LpcnetError: histories of the wrong variants (or swapped).
    """
    for which, h in (("first", standard), ("second", end2end)):
        if not isinstance(h, dict):
            raise LpcnetError(f"variant_losses: the {which} history is {type(h).__name__}; expected a "
                              f"Keras history dict (train(...)['history'])")
    if "cross_entropy" in standard or "loss" not in standard:
        raise LpcnetError("variant_losses: the first history is not a standard model's "
                          "(expected 'loss' and no 'cross_entropy')")
    if not {"loss", "cross_entropy"} <= set(end2end):
        raise LpcnetError("variant_losses: the second history is not an end-to-end model's "
                          "(expected 'loss' and 'cross_entropy')")
    for which, h, keys in (("first", standard, ("loss",)), ("second", end2end, ("loss", "cross_entropy"))):
        for k in keys:
            v = np.asarray(h[k], dtype=np.float64).ravel() if _numeric(h[k]) else None
            if v is None or not np.isfinite(v).any():
                raise LpcnetError(f"variant_losses: the {which} history's {k!r} has no finite value "
                                  f"(expected one loss per epoch)")
    fig = Figure(figsize=(11, 3), layout="constrained")
    own, same = fig.subplots(1, 2)
    for ax, e2e_key, e2e_label, title in (
            (own, "loss", "end-to-end: interp_mulaw loss", "each model's own loss (different quantities)"),
            (same, "cross_entropy", "end-to-end: cross_entropy",
             "comparable: cross-entropy at the excitation code")):
        ax.plot(np.arange(1, len(standard["loss"]) + 1), standard["loss"], "o-",
                label="standard: cross-entropy loss")
        ax.plot(np.arange(1, len(end2end[e2e_key]) + 1), end2end[e2e_key], "s-", label=e2e_label)
        ax.set(xlabel="epoch", ylabel="nats per sample", title=title)
        ax.legend()
    return fig
