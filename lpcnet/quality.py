"""Objective speech quality of synthesis against its reference (``lpcnet eval``).

Per reference/synthesis pair (16 kHz mono; wav paths or arrays, float in [-1, 1]
or int16), after aligning the pair:

* ``pesq_wb``      ITU-T P.862.2 wide-band PESQ, MOS-LQO 1.04..4.64 (``pesq``), higher is better;
* ``stoi``         short-time objective intelligibility 0..1 (``pystoi``), higher is better;
* ``lsd_db``       log-spectral distance in dB over active frames (0 = identical), lower is better;
* ``gpe_pct``      gross pitch error: % of frames voiced in both whose f0 differs by > 20 %;
* ``f0_rmse_cents`` RMS f0 difference in cents on frames voiced in both (f0: WORLD
  DIO + StoneMask, ``pyworld``, 10 ms frames); ``vde_pct`` voicing decision error in %;
* ``dnsmos_*``     non-intrusive DNSMOS P.835 (sig, bak, ovrl) and P.808 of the synthesis alone,
  1..5 (``speechmos``, ONNX models shipped in the wheel, run offline); skipped with
  the reason when speechmos or onnxruntime is missing.

Alignment: the lag of the synthesis against the reference is the peak of their
cross-correlation within +-``max_lag_ms`` (default 50 ms); when that peak is weak
(normalised < 0.3: a vocoder need not reproduce the waveform's phase) the lag comes
from the cross-correlation of 1 ms log-energy envelopes instead. The pair is shifted
and trimmed to the overlap and the lag is reported. A pair is refused (LpcnetError)
when the sample rates differ or when the 10 ms log-energy contours of the aligned
signals correlate below ``MIN_ENVELOPE_CORR`` (not the same speech). The envelope
rather than the waveform is checked because vocoded speech need not be phase-aligned.

Long pairs: the metrics score the aligned pair in segments of about ``SEGMENT_S`` seconds
(a pair up to 1.5 ``SEGMENT_S`` is one segment) and combine them: PESQ, STOI, LSD and DNSMOS
as the mean over segments weighted by their length (P.862 is specified for speech of 8-30 s),
the pitch errors from the frame counts of all segments (exactly the whole-file values). The
alignment correlates in blocks. So memory beyond the two signals themselves (8 bytes a
sample each) does not grow with the length (docs/promises.md, Memory).

Never a score for a pair not fully scored (docs/promises.md, Truthful evaluation): a pair is
also refused when either signal is silent (peak below ``SILENCE_DBFS``) or holds NaN/Inf, or
when the lengths differ by more than ``MAX_LENGTH_DIFF_MS`` (the metrics would cover only the
overlap), whatever ``min_envelope_corr`` is. :func:`evaluate` keeps such a pair as a flagged
row (``not_scored``: the reason) outside the means; ``lpcnet eval`` then exits with status 1.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from lpcnet.errors import LpcnetError
from lpcnet.formats import PCM_SCALE, SAMPLE_RATE, atomic_output

MIN_ENVELOPE_CORR = 0.6
#: long pairs are scored in segments of about this many seconds (module docstring)
SEGMENT_S = 30.0
#: most a synthesis may differ in length from its reference (frame rounding < 10 ms, copy-synthesis
#: lag 15 ms, alignment range +-50 ms)
MAX_LENGTH_DIFF_MS = 100.0
#: a signal whose peak stays below this level (dBFS) is silent and not scored
SILENCE_DBFS = -60.0
#: below this normalised waveform cross-correlation peak the lag comes from the energy envelopes
WAVEFORM_PEAK_MIN = 0.3
#: metric -> True when higher is better (display order of tables and plots).
METRICS = {"pesq_wb": True, "stoi": True, "lsd_db": False, "gpe_pct": False,
           "f0_rmse_cents": False, "vde_pct": False, "dnsmos_ovrl": True, "dnsmos_sig": True,
           "dnsmos_bak": True, "dnsmos_p808": True}


# --- input -------------------------------------------------------------------------------------
def _read(source, rate, name) -> tuple[np.ndarray, int]:
    """Path or array -> ``((samples,) float64 in [-1, 1], rate in Hz)`` at the source's rate."""
    if isinstance(source, (str, Path)):
        from lpcnet.audio import read_audio, to_mono

        try:
            x, r = read_audio(source)        # refuses NaN/Inf samples, naming the file
        except LpcnetError as exc:
            raise LpcnetError(f"{name} {exc}; not scored") from None
        x = to_mono(x).astype(np.float64)
        _check_usable(x, f"{name} {source}")
        return x, int(r)
    x = np.asarray(source)
    if x.ndim != 1 or len(x) == 0:
        raise LpcnetError(f"{name}: expected mono audio of shape (samples>0,), got {x.shape}")
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float64) / PCM_SCALE
    x = x.astype(np.float64)
    _check_usable(x, name)
    return x, int(rate)


def _check_usable(x: np.ndarray, name: str) -> None:
    """Refuse audio holding NaN/Inf or silent audio (peak below SILENCE_DBFS)."""
    from lpcnet.audio import check_finite

    try:
        check_finite(x, name)
    except LpcnetError as exc:
        raise LpcnetError(f"{exc}; not scored") from None
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak < 10 ** (SILENCE_DBFS / 20):
        level = f"peak {20 * math.log10(peak):.1f} dBFS" if peak > 0 else "all zero"
        raise LpcnetError(f"{name}: silent ({level}, below {SILENCE_DBFS:g} dBFS); not scored")


def check_lengths(ref: np.ndarray, syn: np.ndarray, max_length_diff_ms: float = MAX_LENGTH_DIFF_MS,
                  rate: int = SAMPLE_RATE) -> None:
    """Refuse a pair whose lengths differ by more than ``max_length_diff_ms`` (a NaN limit too)."""
    if not max_length_diff_ms >= 0:
        raise LpcnetError(f"max_length_diff_ms must be a number >= 0, got {max_length_diff_ms}")
    diff = len(syn) - len(ref)
    if abs(diff) > rate * max_length_diff_ms / 1000:
        raise LpcnetError(f"synthesis is {len(syn) / rate:.3f} s, reference {len(ref) / rate:.3f} s "
                          f"({1000 * diff / rate:+.0f} ms, more than the {max_length_diff_ms:g} ms "
                          f"allowed): only the overlap would be scored; not scored")


def load_pair(reference, synthesis, rate: int = SAMPLE_RATE, synth_rate: int | None = None):
    """Read a pair at the same rate -> two float64 ``(samples,)`` arrays at 16 kHz."""
    ref, r1 = _read(reference, rate, "reference")
    syn, r2 = _read(synthesis, rate if synth_rate is None else synth_rate, "synthesis")
    if r1 != r2:
        raise LpcnetError(f"sample rates differ: reference {r1} Hz, synthesis {r2} Hz "
                          f"({reference if isinstance(reference, (str, Path)) else 'array'} vs "
                          f"{synthesis if isinstance(synthesis, (str, Path)) else 'array'})")
    if r1 != SAMPLE_RATE:
        from lpcnet.audio import resample

        ref, syn = (resample(x.astype(np.float32), r1).astype(np.float64) for x in (ref, syn))
    return ref, syn


# --- alignment ---------------------------------------------------------------------------------
def log_energy(x, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Log energy in dB of 20 ms frames every 10 ms -> ``(frames,)``."""
    hop = rate // 100
    n = len(x) // hop
    half = hop // 2                       # frame k covers samples [k hop - hop/2, k hop + 3 hop/2)
    x = np.pad(np.asarray(x, np.float64), (half, 2 * hop))
    quarter = np.square(x[:(len(x) // half) * half]).reshape(-1, half).sum(axis=1)
    frames = sum(quarter[j:j + 2 * n:2] for j in range(4))[:n]
    return 10 * np.log10(frames / (2 * hop) + 1e-10)


def align(reference, synthesis, rate: int = SAMPLE_RATE, max_lag_ms: float = 50.0,
          min_envelope_corr: float = MIN_ENVELOPE_CORR):
    """Align ``synthesis`` to ``reference`` (both ``(samples,)``) by bounded cross-correlation.

    Returns ``(ref, syn, info)``: the overlapping parts and ``info`` with ``lag_samples``
    (> 0: the synthesis is late), ``lag_ms``, ``corr`` (normalised waveform correlation
    after alignment) and ``envelope_corr``. Raises LpcnetError for a pair that is not
    the same speech.
    """
    ref, syn = np.asarray(reference, np.float64), np.asarray(synthesis, np.float64)
    if len(ref) < rate // 10 or len(syn) < rate // 10:
        raise LpcnetError(f"audio too short to score ({len(ref)} and {len(syn)} samples; need 100 ms)")
    if not 0 <= max_lag_ms < math.inf:
        raise LpcnetError(f"max_lag_ms must be a finite number >= 0, got {max_lag_ms}")
    # a lag beyond the longer signal leaves no overlap: search no further (bounded memory)
    max_lag = min(int(round(rate * max_lag_ms / 1000)), max(len(ref), len(syn)))
    c = bounded_xcorr(syn, ref, max_lag)
    lag = int(np.argmax(c)) - max_lag
    peak = float(c.max()) / (math.sqrt(float(np.dot(ref, ref)) * float(np.dot(syn, syn))) or 1.0)
    method = "waveform"
    if peak < WAVEFORM_PEAK_MIN:    # not phase-coherent (e.g. a vocoder): align 1 ms energy envelopes
        lag, method = _envelope_lag(ref, syn, rate, max_lag), "envelope"
    if lag > 0:
        syn = syn[lag:]
    elif lag < 0:
        ref = ref[-lag:]
    n = min(len(ref), len(syn))
    ref, syn = ref[:n], syn[:n]
    denom = math.sqrt(float(np.dot(ref, ref)) * float(np.dot(syn, syn)))
    corr = float(np.dot(ref, syn) / denom) if denom > 0 else 0.0
    e1, e2 = log_energy(ref, rate), log_energy(syn, rate)
    env = float(np.corrcoef(e1, e2)[0, 1]) if e1.std() > 0 and e2.std() > 0 else 0.0
    if not env >= min_envelope_corr:
        raise LpcnetError(f"reference and synthesis do not look like the same speech (energy-contour "
                          f"correlation {env:.2f} < {min_envelope_corr} after aligning by "
                          f"{lag} samples)")
    return ref, syn, {"lag_samples": lag, "lag_ms": 1000.0 * lag / rate, "lag_method": method,
                      "corr": corr, "envelope_corr": env}


def bounded_xcorr(y, x, max_lag: int, block: int = 1 << 16) -> np.ndarray:
    """``c[max_lag + k] = sum_t y[t + k] x[t]`` for ``|k| <= max_lag`` (y zero outside its length).

    Computed block by block of ``x`` (FFT correlation of each block with the matching stretch of
    ``y``), so memory does not grow with the length of the signals.
    """
    from scipy.signal import correlate

    y = np.pad(np.asarray(y, np.float64), (max_lag, max_lag + max(0, len(x) - len(y))))
    c = np.zeros(2 * max_lag + 1)
    for start in range(0, len(x), block):
        part = x[start:start + block]
        c += correlate(y[start:start + len(part) + 2 * max_lag], part, mode="valid", method="fft")
    return c


def _envelope_lag(ref, syn, rate, max_lag) -> int:
    """Lag in samples (1 ms resolution) maximising the correlation of log-energy envelopes."""
    from scipy.signal import correlate, correlation_lags

    hop = rate // 1000

    def env(x):
        n = len(x) // hop
        e = np.log10(np.mean(x[:n * hop].reshape(n, hop) ** 2, axis=1) + 1e-10)
        return e - e.mean()

    er, es = env(ref), env(syn)
    c = correlate(es, er, mode="full", method="fft")
    lags = correlation_lags(len(es), len(er), mode="full")
    keep = np.abs(lags) <= max_lag // hop
    return int(lags[keep][np.argmax(c[keep])]) * hop


# --- metrics -----------------------------------------------------------------------------------
def pesq_wb(ref, syn, rate: int = SAMPLE_RATE) -> float:
    """Wide-band PESQ (P.862.2) MOS-LQO of aligned float signals."""
    from pesq import pesq
    from pesq.cypesq import PesqError

    try:
        return float(pesq(rate, ref.astype(np.float32), syn.astype(np.float32), "wb"))
    except PesqError as exc:
        raise LpcnetError(f"PESQ failed: {type(exc).__name__} ({exc})") from None


def stoi(ref, syn, rate: int = SAMPLE_RATE) -> float:
    """STOI (0..1) of aligned signals."""
    from pystoi import stoi as _stoi

    return float(_stoi(ref, syn, rate, extended=False))


def log_spectral_distance(ref, syn, n_fft: int = 512, hop: int = 160, floor_db: float = -80.0,
                          active_db: float = 40.0) -> float:
    """Mean over active frames of the RMS log-power difference in dB.

    Power spectra (Hann, ``n_fft`` samples, ``hop`` 10 ms) are floored ``floor_db``
    below the reference's peak; active frames lie within ``active_db`` of the loudest.
    """
    import librosa

    pr = np.abs(librosa.stft(ref, n_fft=n_fft, hop_length=hop)) ** 2
    ps = np.abs(librosa.stft(syn, n_fft=n_fft, hop_length=hop)) ** 2
    floor = pr.max() * 10 ** (floor_db / 10)
    d = 10 * np.log10(np.maximum(pr, floor)) - 10 * np.log10(np.maximum(ps, floor))
    frame_db = 10 * np.log10(pr.sum(axis=0) + 1e-20)
    active = frame_db > frame_db.max() - active_db
    return float(np.mean(np.sqrt(np.mean(d[:, active] ** 2, axis=0))))


def f0_contour(x, rate: int = SAMPLE_RATE, f0_floor: float = 50.0, f0_ceil: float = 500.0):
    """WORLD DIO + StoneMask f0 in Hz every 10 ms -> ``(frames,)``; 0 = unvoiced."""
    import pyworld

    x = np.ascontiguousarray(x, np.float64)
    f0, t = pyworld.dio(x, rate, f0_floor=f0_floor, f0_ceil=f0_ceil, frame_period=10.0)
    return pyworld.stonemask(x, f0, t, rate)


def pitch_counts(ref, syn, rate: int = SAMPLE_RATE, told_f0=None) -> np.ndarray:
    """Frame counts of aligned signals: ``[frames, voicing mismatches, voiced in both, gross
    errors (f0 off by > 20 %), sum of squared f0 differences in cents]`` (float64). With
    ``told_f0`` (Hz per 10 ms frame of ``ref``: the pitch the vocoder was given) two more: the
    frames voiced in both where it is off by > 20 % from the reference's f0, and the gross
    errors of the synthesis among those."""
    f_r, f_s = f0_contour(ref, rate), f0_contour(syn, rate)
    n = min(len(f_r), len(f_s))
    f_r, f_s = f_r[:n], f_s[:n]
    both = (f_r > 0) & (f_s > 0)
    ratio = f_s[both] / f_r[both]
    gross = np.abs(ratio - 1) > 0.2
    counts = [n, np.sum((f_r > 0) != (f_s > 0)), both.sum(), gross.sum(),
              np.sum((1200 * np.log2(ratio)) ** 2)]
    if told_f0 is not None:
        told = np.full(n, np.nan)                        # a frame past the told pitch: not off
        m = min(n, len(told_f0))
        told[:m] = np.asarray(told_f0, np.float64)[:m]
        told_gross = np.abs(told[both] / f_r[both] - 1) > 0.2
        counts += [told_gross.sum(), (gross & told_gross).sum()]
    return np.array(counts, np.float64)


def feature_f0(features, rate: int = SAMPLE_RATE) -> np.ndarray:
    """The pitch feature (feature 18, docs/formats.md) of ``(frames, >= 19)`` features in Hz."""
    period = 50.0 * np.asarray(features, np.float64)[:, 18] + 100.0
    return rate / np.maximum(period, 1.0)


def pitch_errors_from_counts(counts) -> dict:
    """``gpe_pct``, ``f0_rmse_cents`` (frames voiced in both), ``vde_pct`` from :func:`pitch_counts`
    (summed over segments); with its two ``told_f0`` counts also ``feature_gpe_pct`` (the told
    pitch's own gross error on those frames) and ``told_gross_pct`` (the share of the synthesis's
    gross errors where the told pitch was off too; NaN when there are none)."""
    frames, mismatched, both, gross, sq_cents = (float(v) for v in counts[:5])
    out = {"vde_pct": 100 * mismatched / max(frames, 1.0), "voiced_frames": int(both)}
    out["gpe_pct"] = 100 * gross / both if both else float("nan")
    out["f0_rmse_cents"] = math.sqrt(sq_cents / both) if both else float("nan")
    if len(counts) > 5:
        told, told_and_gross = float(counts[5]), float(counts[6])
        out["feature_gpe_pct"] = 100 * told / both if both else float("nan")
        out["told_gross_pct"] = 100 * told_and_gross / gross if gross else float("nan")
    return out


def pitch_errors(ref, syn, rate: int = SAMPLE_RATE) -> dict:
    """``gpe_pct``, ``f0_rmse_cents`` (frames voiced in both) and ``vde_pct`` of aligned signals."""
    return pitch_errors_from_counts(pitch_counts(ref, syn, rate))


_DNSMOS_STATE: dict = {}


def dnsmos_status() -> tuple[bool, str]:
    """``(available, reason)`` for DNSMOS (speechmos with onnxruntime, models in the wheel)."""
    if "status" not in _DNSMOS_STATE:
        try:
            from speechmos import dnsmos  # noqa: F401  (imports onnxruntime, librosa)

            _DNSMOS_STATE["status"] = (True, "speechmos DNSMOS (local ONNX models)")
        except ImportError as exc:
            _DNSMOS_STATE["status"] = (False, f"DNSMOS skipped: {exc.name or exc} is not installed "
                                              f"(pip install speechmos onnxruntime)")
    return _DNSMOS_STATE["status"]


def dnsmos(x, rate: int = SAMPLE_RATE) -> dict:
    """Non-intrusive DNSMOS of ``(samples,)`` speech -> ``dnsmos_{ovrl,sig,bak,p808}`` (1..5).

    Speech longer than 1.5 ``SEGMENT_S`` is scored per segment (:func:`segments`) and the
    scores averaged, weighted by length (module docstring, long pairs).
    """
    ok, reason = dnsmos_status()
    if not ok:
        raise LpcnetError(reason)
    from speechmos import dnsmos as _dnsmos

    x = np.clip(np.asarray(x, np.float32), -1.0, 1.0)
    keys = ("ovrl_mos", "sig_mos", "bak_mos", "p808_mos")
    out = dict.fromkeys((f"dnsmos_{k.split('_')[0]}" for k in keys), 0.0)
    for a, b in segments(len(x), rate):
        r = _dnsmos.run(x[a:b], rate)
        for k in keys:
            out[f"dnsmos_{k.split('_')[0]}"] += (b - a) / len(x) * float(r[k])
    return out


def score_pair(reference, synthesis, rate: int = SAMPLE_RATE, synth_rate: int | None = None,
               use_dnsmos: bool = True, max_lag_ms: float = 50.0,
               min_envelope_corr: float = MIN_ENVELOPE_CORR,
               max_length_diff_ms: float = MAX_LENGTH_DIFF_MS, features=None) -> dict:
    """All metrics of one pair (paths or arrays) -> dict of floats plus the alignment info.

    ``min_envelope_corr`` = -1 scores any pair of speech-length, non-silent, finite signals
    (e.g. an early checkpoint's output); silence, NaN/Inf and a length difference beyond
    ``max_length_diff_ms`` are refused (LpcnetError) in any case. ``features``: the
    reference's ``(frames, >= 19)`` features (what a copy synthesis was given); adds
    ``feature_gpe_pct`` and ``told_gross_pct`` (:func:`pitch_errors_from_counts`).
    """
    ref, syn = load_pair(reference, synthesis, rate, synth_rate)
    check_lengths(ref, syn, max_length_diff_ms)
    ref, syn, info = align(ref, syn, SAMPLE_RATE, max_lag_ms, min_envelope_corr)
    told = None if features is None else feature_f0(features)
    start = max(0, -info["lag_samples"])                 # the aligned reference's first sample
    means: dict[str, float] = {}
    counts = np.zeros(5 if told is None else 7)
    cuts = segments(len(ref))
    for a, b in cuts:
        r, y, w = ref[a:b], syn[a:b], (b - a) / len(ref)
        part = {"pesq_wb": pesq_wb(r, y), "stoi": stoi(r, y), "lsd_db": log_spectral_distance(r, y)}
        for k, v in part.items():
            means[k] = means.get(k, 0.0) + w * v
        first = int(round((a + start) / (SAMPLE_RATE // 100)))
        counts += pitch_counts(r, y, told_f0=None if told is None else told[first:])
    out = dict(info)
    out.update(means)
    out.update(pitch_errors_from_counts(counts))
    if use_dnsmos and dnsmos_status()[0]:
        out.update(dnsmos(syn))              # the same segments, weighted alike
    out["segments"] = len(cuts)
    return out


def segments(n: int, rate: int = SAMPLE_RATE, seconds: float | None = None) -> list[tuple[int, int]]:
    """``[(start, end)]`` sample ranges cutting ``n`` samples into equal segments of about
    ``seconds`` (one segment up to 1.5 ``seconds``; a segment ends on a 10 ms frame boundary)."""
    k = max(1, int(round(n / (rate * (seconds or SEGMENT_S)))))
    hop = rate // 100
    cuts = [0] + [int(round(i * n / k / hop)) * hop for i in range(1, k)] + [n]
    return list(zip(cuts[:-1], cuts[1:]))


# --- tables ------------------------------------------------------------------------------------
def evaluate(references: dict, conditions: dict, use_dnsmos: bool = True,
             max_lag_ms: float = 50.0, min_envelope_corr: float = MIN_ENVELOPE_CORR,
             max_length_diff_ms: float = MAX_LENGTH_DIFF_MS) -> dict:
    """Score ``{condition: {utterance: synthesis}}`` against ``{utterance: reference}``.

    Returns ``{"pairs": [per-pair dicts], "table": [per-condition means], "dnsmos": status,
    "not_scored": count}``. A pair :func:`score_pair` refuses is kept as
    ``{"condition", "utterance", "not_scored": reason}`` and left out of the means; table
    rows hold ``condition``, ``n`` (pairs scored), ``not_scored`` (pairs refused) and the
    mean of each metric over the scored pairs.
    """
    ok, reason = dnsmos_status()
    pairs = []
    for cond, by_utt in conditions.items():
        for utt, syn in by_utt.items():
            if utt not in references:
                raise LpcnetError(f"condition '{cond}': no reference for utterance '{utt}'")
            row = {"condition": cond, "utterance": utt}
            try:
                row.update(score_pair(references[utt], syn, use_dnsmos=use_dnsmos,
                                      max_lag_ms=max_lag_ms, min_envelope_corr=min_envelope_corr,
                                      max_length_diff_ms=max_length_diff_ms))
            except LpcnetError as exc:
                row["not_scored"] = str(exc)
            pairs.append(row)
    return {"pairs": pairs, "table": condition_table(pairs),
            "dnsmos": reason if (use_dnsmos or not ok) else "DNSMOS skipped: disabled",
            "not_scored": sum("not_scored" in p for p in pairs)}


def condition_table(pairs: list[dict]) -> list[dict]:
    """Per-pair dicts -> one row per condition with the mean of each metric over the scored
    utterances (``n``); ``not_scored`` counts the condition's refused pairs."""
    rows = []
    for cond in dict.fromkeys(p["condition"] for p in pairs):
        mine = [p for p in pairs if p["condition"] == cond and "not_scored" not in p]
        row = {"condition": cond, "n": len(mine),
               "not_scored": sum(p["condition"] == cond and "not_scored" in p for p in pairs)}
        for m in list(METRICS) + ["lag_ms"]:
            vals = [p[m] for p in mine if m in p and np.isfinite(p[m])]
            if vals:
                row[m] = float(np.mean(vals))
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """Plain-text table of :func:`condition_table` rows (arrows: better direction)."""
    metrics = [m for m in METRICS if any(m in r for r in rows)]
    refused = any(r.get("not_scored") for r in rows)
    head = f"{'condition':22s} {'n':>3s} " + " ".join(
        f"{m + ('↑' if METRICS[m] else '↓'):>14s}" for m in metrics) + f" {'lag_ms':>7s}"
    lines = [head + (f" {'not scored':>10s}" if refused else "")]
    for r in rows:
        cells = " ".join(f"{r[m]:14.3f}" if m in r else f"{'-':>14s}" for m in metrics)
        line = f"{r['condition']:22s} {r['n']:3d} {cells} {r.get('lag_ms', float('nan')):7.2f}"
        lines.append(line + (f" {r.get('not_scored', 0):10d}" if refused else ""))
    return "\n".join(lines)


def plot_over_epochs(history: dict, metrics=None):
    """``{epoch: {metric: value}}`` (e.g. a condition-table row per epoch) -> Figure.

    One panel per metric present, value against epoch.
    """
    from matplotlib.figure import Figure

    if not history or not isinstance(history, dict):
        raise LpcnetError("plot_over_epochs: no epochs to plot (expected {epoch: {metric: value}})")
    bad = [e for e in history if isinstance(e, bool) or not isinstance(e, (int, float))]
    if bad:
        raise LpcnetError(f"plot_over_epochs: epoch keys {bad[:3]!r} are not numbers "
                          f"(expected {{epoch: {{metric: value}}}} with numeric epochs)")
    epochs = sorted(history)
    if not all(isinstance(history[e], dict) for e in epochs):
        raise LpcnetError("plot_over_epochs: expected {epoch: {metric: value}}, with a dict per epoch")

    def finite(v):
        return isinstance(v, (int, float)) and math.isfinite(v)

    metrics = [m for m in (metrics or METRICS) if m in METRICS
               and any(finite(history[e].get(m)) for e in epochs)]
    if not metrics:
        raise LpcnetError("plot_over_epochs: none of the known metrics has a finite value in the history")
    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig = Figure(figsize=(4 * cols, 2.6 * rows), layout="constrained")
    for i, m in enumerate(metrics):
        ax = fig.add_subplot(rows, cols, i + 1)
        xs = [e for e in epochs if finite(history[e].get(m))]
        ax.plot(xs, [history[e][m] for e in xs], "o-")
        ax.set(xlabel="epoch", title=f"{m} ({'higher' if METRICS[m] else 'lower'} is better)")
        ax.grid(alpha=0.3)
    return fig


# --- CLI ---------------------------------------------------------------------------------------
def add_arguments(p) -> None:
    from lpcnet.argtypes import correlation, nonnegative_float

    p.add_argument("--reference", nargs="+", metavar="REF.wav",
                   help="reference recordings (the k-th synthesis of each condition pairs with the k-th)")
    p.add_argument("--synth", nargs="+", action="extend", metavar="NAME=SYN.wav",
                   help="synthesised speech as condition=file, repeated per utterance")
    p.add_argument("--pairs", metavar="PAIRS.csv",
                   help="CSV with header condition,reference,synthesis (instead of --reference/--synth); "
                        "every condition must cover the same references, each once")
    p.add_argument("--json", metavar="OUT.json", help="also write pairs and table as JSON (atomic)")
    p.add_argument("--no-dnsmos", action="store_true", help="skip DNSMOS (the slowest metric)")
    p.add_argument("--max-lag-ms", type=nonnegative_float, default=50.0,
                   help="alignment search range in ms (+-)")
    p.add_argument("--min-envelope-corr", type=correlation, default=MIN_ENVELOPE_CORR,
                   help="refuse pairs whose energy contours correlate less, -1..1 (-1: score any "
                        "pair, e.g. an early checkpoint; silent or NaN audio is refused anyway)")
    p.add_argument("--max-length-diff-ms", type=nonnegative_float, default=MAX_LENGTH_DIFF_MS,
                   help="refuse pairs whose lengths differ by more (the metrics would cover only "
                        "the overlap)")


def _pairs_from_csv(path: Path) -> tuple[dict, dict]:
    """``--pairs``: refuses a repeated (condition, reference) row and conditions that do not
    cover the same references (their means would not be comparable)."""
    from lpcnet.formats import read_text

    text = read_text(path, path, "a CSV with header condition,reference,synthesis")
    refs, conds, first_line = {}, {}, {}
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise LpcnetError(f"{path}: line {reader.line_num}: not valid CSV ({exc})") from None
    if not {"condition", "reference", "synthesis"} <= set(reader.fieldnames or []):
        raise LpcnetError(f"{path}: header must hold condition,reference,synthesis")
    for line, row in enumerate(rows, 2):
        if not all(row.get(k) for k in ("condition", "reference", "synthesis")):
            raise LpcnetError(f"{path}: line {line}: expected condition,reference,synthesis, "
                              f"each non-empty")
        ref = (path.parent / row["reference"]).resolve()
        syn = (path.parent / row["synthesis"]).resolve()
        key = (row["condition"], str(ref))
        if key in first_line:
            raise LpcnetError(f"{path}: line {line} repeats condition '{row['condition']}' with "
                              f"reference {row['reference']} (first on line {first_line[key]}); "
                              f"each pair must appear once")
        first_line[key] = line
        refs[str(ref)] = ref
        conds.setdefault(row["condition"], {})[str(ref)] = syn
    if not conds:
        raise LpcnetError(f"{path}: no pairs")
    for cond, by_ref in conds.items():
        missing = [Path(r).name for r in refs if r not in by_ref]
        if missing:
            raise LpcnetError(f"{path}: condition '{cond}' has {len(by_ref)} synthesis file(s) for "
                              f"{len(refs)} reference(s) (none for {', '.join(missing[:3])}"
                              f"{' ...' if len(missing) > 3 else ''}); every condition must cover "
                              f"the same references")
    return refs, conds


def _pairs_from_args(args) -> tuple[dict, dict]:
    if args.pairs:
        refs, conds = _pairs_from_csv(Path(args.pairs))
    else:
        if not args.reference or not args.synth:
            raise LpcnetError("give --reference and --synth NAME=FILE, or --pairs PAIRS.csv")
        refs, conds = {}, {}
        for r in args.reference:
            if r in refs:
                raise LpcnetError(f"--reference {r} is given twice; each reference once")
            refs[r] = Path(r)
        files = {}
        for item in args.synth:
            name, sep, file = item.partition("=")
            if not sep or not name or not file:
                raise LpcnetError(f"--synth '{item}': expected NAME=FILE")
            files.setdefault(name, []).append(Path(file))
        for name, lst in files.items():
            if len(lst) != len(refs):
                raise LpcnetError(f"condition '{name}' has {len(lst)} file(s) for {len(refs)} reference(s)")
            conds[name] = dict(zip(refs, lst))
    for label, path in [("reference", r) for r in refs.values()] + [
            (f"synthesis of '{c}'", s) for c, by in conds.items() for s in by.values()]:
        if not Path(path).is_file():
            raise LpcnetError(f"{path}: file not found ({label})")
    return refs, conds


def run(args) -> int:
    from lpcnet.formats import check_outputs

    refs, conds = _pairs_from_args(args)
    if args.json:
        inputs = {**{f"reference {r}": r for r in refs.values()},
                  **{f"synthesis {s}": s for by in conds.values() for s in by.values()},
                  **({f"--pairs {args.pairs}": args.pairs} if args.pairs else {})}
        check_outputs(inputs, {f"--json {args.json}": args.json})
    result = evaluate(refs, conds, use_dnsmos=not args.no_dnsmos, max_lag_ms=args.max_lag_ms,
                      min_envelope_corr=args.min_envelope_corr,
                      max_length_diff_ms=args.max_length_diff_ms)
    for p in result["pairs"]:
        if "not_scored" in p:
            print(f"{p['condition']}: {Path(p['utterance']).name}: NOT SCORED: {p['not_scored']}")
            continue
        print(f"{p['condition']}: {Path(p['utterance']).name}: lag {p['lag_samples']} samples, "
              f"PESQ-WB {p['pesq_wb']:.2f}, STOI {p['stoi']:.3f}, LSD {p['lsd_db']:.2f} dB")
    print(format_table(result["table"]))
    print(result["dnsmos"])
    if args.json:
        with atomic_output(args.json, "w") as f:
            json.dump(result, f, indent=1, default=str)
        print(f"wrote {args.json}")
    if result["not_scored"]:
        raise LpcnetError(f"{result['not_scored']} of {len(result['pairs'])} pair(s) not scored (NOT "
                          f"SCORED above); the means cover the scored pairs only")
    return 0


def main(argv=None) -> int:
    from lpcnet.cli import module_main

    return module_main(__name__, "python -m lpcnet.quality", argv)


if __name__ == "__main__":
    raise SystemExit(main())
