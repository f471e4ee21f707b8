"""LPCNet file formats (36-float generation, docs/formats.md), shared constants and exact µ-law.

Files handled here:

* ``input.s16``   headerless int16 mono PCM at 16 kHz, native (little) endian.
* ``features.f32`` 36 float32 per 10 ms frame, frame-major: ``(frames, 36)``.
* ``data.u8``     4 uint8 µ-law codes per sample (signal, prediction, input
  excitation, output excitation), 160 records per frame: ``(samples, 4)``.

All readers memory-map by default and validate sizes and contents; every bad
file raises :class:`FormatError` with one line naming the file, its size and
the expected multiple. Writers are atomic (temp file + rename).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from lpcnet.errors import FormatError

# --- global constants (docs/formats.md) --------------------------------------
SAMPLE_RATE = 16000          # Hz
FRAME_SIZE = 160             # samples per 10 ms frame
#: int16 full scale: float speech in [-1, 1) <-> int16 samples.
PCM_SCALE = 32768.0
#: Pre-emphasis x[n] - 0.85 x[n-1] before analysis and in the training data; synthesis undoes it
#: with the de-emphasis y[n] = x[n] + 0.85 y[n-1] (docs/features.md, docs/synthesis.md).
PRE_EMPHASIS = 0.85
#: int8 weights are q = round(128 w): steps of 1/128 (export, quantisation-aware training).
INT8_WEIGHT_SCALE = 128.0
NB_BANDS = 18
LPC_ORDER = 16
NB_TOTAL_FEATURES = 36       # floats per frame in features.f32
NB_FEATURES = 20             # floats per frame fed to the network
PITCH_MIN_PERIOD = 32
PITCH_MAX_PERIOD = 256

# --- feature layout (docs/formats.md) ------------------------------------------
CEPSTRUM = slice(0, 18)      # 18 cepstral coefficients (c0 has 4 subtracted)
PITCH_INDEX = 18             # pitch feature f_p = 0.01 * (P0 + P1 - 200)
PITCH_CORR_INDEX = 19        # pitch correlation f_c = corr - 0.5
LPC = slice(20, 36)          # a_1..a_16, A(z) = 1 + sum a_k z^-k
NETWORK_FEATURES = slice(0, NB_FEATURES)

#: Named layout, shared with native/ and tests: name -> (start, stop).
LAYOUT = {
    "cepstrum": (0, 18),
    "pitch": (18, 19),
    "pitch_corr": (19, 20),
    "lpc": (20, 36),
}

# --- data.u8 layout (docs/formats.md) ------------------------------------------
DATA_CHANNELS = 4
DATA_SIGNAL, DATA_PREDICTION, DATA_EXC_IN, DATA_EXC_OUT = range(4)
DATA_FIELDS = ("signal", "prediction", "input_excitation", "output_excitation")

FEATURE_BYTES_PER_FRAME = NB_TOTAL_FEATURES * 4      # 144
DATA_BYTES_PER_FRAME = FRAME_SIZE * DATA_CHANNELS    # 640
S16_BYTES_PER_SAMPLE = 2
#: File name suffixes of headerless int16 PCM (anything else is decoded as audio).
RAW_PCM_SUFFIXES = frozenset({".s16", ".sw", ".pcm", ".raw"})

# --- µ-law (docs/formats.md): mu = 255, scale = 255/32768, exact log, round-half-even
_ULAW_SCALE = 255.0 / PCM_SCALE
_LN256 = np.log(256.0)


def lin2ulaw(x) -> np.ndarray:
    """Linear sample values (int16 scale) -> µ-law codes 0..255 as int16.

    The exact formula (docs/formats.md): ``clip(128 + round(sign(x) * 128 *
    ln(1 + |x| * 255/32768) / ln 256), 0, 255)`` with NumPy's
    round-half-to-even. Accepts scalars or arrays; returns an int16 array.
    """
    x = np.asarray(x, dtype=np.float64)
    u = np.sign(x) * (128.0 * np.log1p(_ULAW_SCALE * np.abs(x)) / _LN256)
    return np.clip(128 + np.round(u), 0, 255).astype(np.int16)


def ulaw2lin(u) -> np.ndarray:
    """µ-law codes 0..255 -> linear values (float64, int16 scale).

    ``sign(u - 128) * (32768/255) * (exp(|u - 128| / 128 * ln 256) - 1)``;
    ulaw2lin(0) = -32768, ulaw2lin(128) = 0, ulaw2lin(255) = 31373.3 (docs/formats.md).
    """
    d = np.asarray(u, dtype=np.float64) - 128.0
    return np.sign(d) * (1.0 / _ULAW_SCALE) * np.expm1(np.abs(d) / 128.0 * _LN256)


# --- pitch period (docs/formats.md) -------------------------------------------
def decode_pitch(fp) -> np.ndarray:
    """Pitch feature f_p -> period index 33..255 for the pitch embedding (int32).

    ``floor(0.1 + 50 f_p + 100)`` clamped to [33, 255] as the C decoder does;
    identical to the Python truncation for every value data can hold.
    """
    period = np.floor(0.1 + 50.0 * np.asarray(fp, dtype=np.float64) + 100.0)
    return np.clip(period, 33, 255).astype(np.int32)


# --- atomic output -----------------------------------------------------------
@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Open a temp file beside ``path``; rename it over ``path`` only on success.

    A crash or exception leaves any previous ``path`` untouched and removes the
    temp file, so readers never see a half-written output.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs follow the umask like open()
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write_array(path, array: np.ndarray) -> Path:
    with atomic_output(path) as f:
        np.ascontiguousarray(array).tofile(f)
    return Path(path)


# --- readers -----------------------------------------------------------------
def _checked_size(path, record_bytes: int, what: str) -> int:
    """Size in bytes of ``path``, validated as a non-empty multiple of ``record_bytes``."""
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: file not found (expected {what})")
    if not path.is_file():
        raise FormatError(f"{path}: not a regular file (expected {what})")
    size = path.stat().st_size
    if size == 0:
        raise FormatError(f"{path}: file is empty (expected {what}, a multiple of {record_bytes} bytes)")
    if size % record_bytes:
        raise FormatError(
            f"{path}: size {size} bytes is not a multiple of {record_bytes} ({what}); "
            f"truncated or wrong file?")
    return size


def _load(path, dtype, shape, mmap: bool) -> np.ndarray:
    if mmap:
        return np.memmap(path, dtype=dtype, mode="r", shape=shape)
    return np.fromfile(path, dtype=dtype).reshape(shape)


def check_s16(path) -> int:
    """Validate a headerless int16 file (exists, non-empty, even size, not a WAV); return its size."""
    size = _checked_size(path, S16_BYTES_PER_SAMPLE, "headerless int16 PCM, 2 bytes per sample")
    with open(path, "rb") as f:
        if f.read(4) == b"RIFF":
            raise FormatError(f"{path}: is a WAV file, not headerless .s16 "
                              f"(use `lpcnet prepare` to convert it, or give it a .wav name)")
    return size


def read_s16(path, mmap: bool = True) -> np.ndarray:
    """Read ``input.s16`` -> ``(samples,)`` int16 at 16 kHz (memory-mapped)."""
    return _load(path, np.int16, (check_s16(path) // 2,), mmap)


def read_features(path, mmap: bool = True, check_finite: bool = True) -> np.ndarray:
    """Read ``features.f32`` -> ``(frames, 36)`` float32 (memory-mapped).

    Raises FormatError for a missing/empty file, a size that is not a multiple
    of 144 bytes, or any NaN/Inf value (reported with its frame and index).
    """
    size = _checked_size(path, FEATURE_BYTES_PER_FRAME,
                         f"{NB_TOTAL_FEATURES} float32 per frame = {FEATURE_BYTES_PER_FRAME} bytes")
    feats = _load(path, np.float32, (size // FEATURE_BYTES_PER_FRAME, NB_TOTAL_FEATURES), mmap)
    if check_finite:
        check_features_finite(feats, path)
    return feats


def check_features_finite(feats: np.ndarray, name="features", chunk_frames: int = 1 << 16) -> None:
    """Raise FormatError naming the first non-finite value of ``(frames, 36)`` features."""
    for start in range(0, len(feats), chunk_frames):
        block = np.asarray(feats[start:start + chunk_frames])
        bad = ~np.isfinite(block)
        if bad.any():
            frame, index = np.argwhere(bad)[0]
            raise FormatError(
                f"{name}: non-finite value {block[frame, index]} at frame {start + frame}, "
                f"index {index} (features must be finite float32)")


def read_data(path, mmap: bool = True) -> np.ndarray:
    """Read ``data.u8`` -> ``(samples, 4)`` uint8 µ-law codes (memory-mapped).

    The size must be a whole number of frames (640 bytes = 160 samples x 4).
    """
    size = _checked_size(path, DATA_BYTES_PER_FRAME,
                         f"{DATA_CHANNELS} bytes per sample x {FRAME_SIZE} samples per frame "
                         f"= {DATA_BYTES_PER_FRAME} bytes")
    return _load(path, np.uint8, (size // DATA_CHANNELS, DATA_CHANNELS), mmap)


def read_training_pair(features_path, data_path, mmap: bool = True):
    """Read and cross-check ``features.f32`` and ``data.u8``.

    Returns ``(features (frames, 36) float32, data (frames*160, 4) uint8)``;
    raises FormatError when the two frame counts disagree.
    """
    feats = read_features(features_path, mmap=mmap)
    data = read_data(data_path, mmap=mmap)
    data_frames = len(data) // FRAME_SIZE
    if data_frames != len(feats):
        raise FormatError(
            f"{data_path}: holds {data_frames} frames ({len(data) * DATA_CHANNELS} bytes) but "
            f"{features_path} holds {len(feats)} frames; expected "
            f"{len(feats) * DATA_BYTES_PER_FRAME} bytes ({DATA_BYTES_PER_FRAME} per feature frame)")
    return feats, data


# --- writers -----------------------------------------------------------------
def write_s16(path, samples) -> Path:
    """Write ``(samples,)`` int16 (or float already at int16 scale) as headerless s16.

    Floats are rounded and clipped to [-32768, 32767]; written atomically.
    """
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise FormatError(f"{path}: expected mono samples of shape (n,), got {samples.shape}")
    if samples.dtype != np.int16:
        samples = to_int16(samples)
    return _write_array(path, samples.astype("<i2", copy=False))


def to_int16(samples) -> np.ndarray:
    """Float samples at int16 scale -> int16, rounded and clipped."""
    return np.clip(np.round(np.asarray(samples, dtype=np.float64)), -32768, 32767).astype(np.int16)


def float_to_int16(samples) -> np.ndarray:
    """Float speech in [-1, 1) (e.g. from :func:`lpcnet.audio.load_speech`) -> int16, rounded, clipped."""
    return to_int16(np.asarray(samples, dtype=np.float64) * PCM_SCALE)


def write_features(path, feats) -> Path:
    """Write ``(frames, 36)`` float features as ``features.f32`` (atomically)."""
    feats = np.asarray(feats, dtype=np.float32)
    if feats.ndim != 2 or feats.shape[1] != NB_TOTAL_FEATURES or len(feats) == 0:
        raise FormatError(f"{path}: expected features of shape (frames>0, {NB_TOTAL_FEATURES}), "
                          f"got {feats.shape}")
    check_features_finite(feats, path)
    return _write_array(path, feats)


def write_data(path, data) -> Path:
    """Write ``(samples, 4)`` µ-law codes 0..255 as ``data.u8`` (atomically).

    ``samples`` must be a multiple of 160 (whole frames).
    """
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[1] != DATA_CHANNELS or len(data) == 0 or len(data) % FRAME_SIZE:
        raise FormatError(f"{path}: expected data of shape (frames*{FRAME_SIZE}, {DATA_CHANNELS}), "
                          f"got {data.shape}")
    if data.dtype != np.uint8:
        if data.min() < 0 or data.max() > 255:
            raise FormatError(f"{path}: µ-law codes must lie in 0..255, got "
                              f"{data.min()}..{data.max()}")
        data = data.astype(np.uint8)
    return _write_array(path, data)


def describe(path) -> dict:
    """Identify and validate a kit file by extension; return a small summary dict."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".f32":
        f = read_features(path)
        return {"file": str(path), "kind": "features", "frames": len(f),
                "seconds": len(f) * FRAME_SIZE / SAMPLE_RATE,
                "pitch_period_range": [int(decode_pitch(f[:, PITCH_INDEX]).min()),
                                       int(decode_pitch(f[:, PITCH_INDEX]).max())]}
    if suffix == ".u8":
        d = read_data(path)
        return {"file": str(path), "kind": "data", "frames": len(d) // FRAME_SIZE,
                "samples": len(d), "seconds": len(d) / SAMPLE_RATE}
    if suffix in RAW_PCM_SUFFIXES:
        s = read_s16(path)
        return {"file": str(path), "kind": "s16", "samples": len(s),
                "seconds": len(s) / SAMPLE_RATE,
                "peak_dbfs": float(20 * np.log10(max(1, int(np.abs(s.astype(np.int32)).max())) / PCM_SCALE))}
    raise FormatError(f"{path}: unknown kit file type '{suffix}' (expected .s16, .f32 or .u8)")
