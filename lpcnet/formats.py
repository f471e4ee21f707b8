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
import errno
import fcntl
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from lpcnet.errors import FormatError, LpcnetError

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
PITCH_INDEX = 18             # pitch feature f_p = 0.01 * (clamp(P0 + P1, 66, 510) - 200)
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


# --- outputs: checked, atomic, durable (docs/promises.md) ----------------------------------
#: errno values of a write that failed for lack of room or a broken device (reported in one line).
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS}


def _named(items) -> list[tuple[str, Path]]:
    """``{label: path}`` or an iterable of paths -> ``[(label, Path)]``; None entries skipped."""
    pairs = items.items() if isinstance(items, dict) else ((None, p) for p in items)
    return [(str(label) if label else str(p), Path(p)) for label, p in pairs if p is not None]


def _identity(path: Path):
    """(resolved path, (device, inode) or None): what makes two paths the same file."""
    resolved = Path(os.path.realpath(path))
    try:
        st = os.stat(path)
        return resolved, (st.st_dev, st.st_ino)
    except OSError:
        return resolved, None


def check_outputs(inputs, outputs) -> None:
    """Refuse, before anything is written, outputs that are an input or another output.

    ``inputs`` / ``outputs``: ``{label: path}`` (labels such as ``"--output"`` name the path
    in the message) or iterables of paths; None entries are skipped. Two paths are the same
    file when their resolved paths agree (symbolic links, ``..``, relative paths) or, for
    existing files, their device and inode agree (hard links, bind mounts).

    Each output path is also checked with :func:`check_output_path`, so a command that
    calls this first fails before any work. Raises LpcnetError (one line) naming the paths.
    """
    ins = [(label, p, *_identity(p)) for label, p in _named(inputs)]
    seen: list = []
    for label, p in _named(outputs):
        check_output_path(p)
        real, inode = _identity(p)
        for in_label, _, in_real, in_inode in ins:
            if real == in_real or (inode is not None and inode == in_inode):
                raise LpcnetError(f"{label}: is the same file as the input {in_label}; refusing to "
                                  f"overwrite an input (choose another output path)")
        for out_label, out_real, out_inode in seen:
            if real == out_real or (inode is not None and inode == out_inode):
                raise LpcnetError(f"{label}: is the same file as the output {out_label}; two outputs "
                                  f"cannot share one file")
        seen.append((label, real, inode))


def check_output_path(path) -> Path:
    """Refuse (one line) an output path that cannot become a regular file.

    Refused: an existing folder, device, pipe or socket at ``path`` (a rename would replace
    it), and a regular file where a folder on the way should be. Creates nothing.
    """
    path = Path(path)
    if path.is_dir():
        raise LpcnetError(f"{path}: is a folder; expected the path of an output file")
    if path.exists() and not path.is_file():
        raise LpcnetError(f"{path}: exists and is not a regular file (device, pipe or socket); "
                          f"refusing to replace it")
    for folder in (path.parent, *path.parent.parents):
        if folder.exists():
            if not folder.is_dir():
                raise LpcnetError(f"{path}: cannot be written: {folder} is a file, not a folder")
            break
    return path


def _lock(fd: int) -> bool:
    """Take an exclusive, non-blocking lock on an open temp file; False when another process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:          # file system without locks: behave as if held (never reuse, never sweep)
        return False


def temp_name(path) -> str:
    """Name of the hidden temporary file beside ``path``: ``.<name>.tmp<suffix>``.

    The suffix is kept (Keras needs ``.keras``). The writer holds a lock on it; a temp file
    that no process holds is a leftover of a killed run (see :func:`remove_stale_temps`).
    """
    path = Path(path)
    return f".{path.name}.tmp{path.suffix}"


#: Hidden temporary files of :func:`atomic_path`: ``.<name>.tmp<suffix>`` or, when that one is
#: in use, ``.<name>.<random>.tmp<suffix>`` (``<name>`` ends with ``<suffix>``); and
#: ``.<stem>.<pid>.tmp.keras`` of earlier checkpoint writers.
_TEMP_RE = re.compile(r"^\.(?P<body>.+)\.tmp(?P<suffix>\.[A-Za-z0-9_]+)?$")
_OLD_CHECKPOINT_TEMP_RE = re.compile(r"^\..+\.\d+\.tmp\.keras$")


def _is_temp_name(name: str) -> bool:
    m = _TEMP_RE.match(name)
    if m:
        body, suffix = m["body"], m["suffix"] or ""
        if body.endswith(suffix) or (suffix and "." in body and body.rsplit(".", 1)[0].endswith(suffix)):
            return True
    return bool(_OLD_CHECKPOINT_TEMP_RE.match(name))


def _open_temp(path: Path) -> tuple[int, Path]:
    """Open and lock the temp file of ``path``: the fixed name, reused (truncated) when a killed
    run left it, or a unique name when a live process holds it. Returns ``(fd, temp path)``."""
    tmp = path.with_name(temp_name(path))
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)   # mode follows the umask
    if _lock(fd):
        os.ftruncate(fd, 0)
        return fd, tmp
    os.close(fd)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)          # mkstemp makes 0600; outputs follow the umask like open()
    _lock(fd)
    return fd, Path(name)


def fsync_dir(folder) -> None:
    """Make a rename or unlink in ``folder`` durable (fsync of the folder; no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a locked temporary path beside ``path`` for a writer that opens files by name
    (Keras, h5py); on success fsync it, rename it over ``path`` and fsync the folder.

    On any exception the temp file is removed and a previous ``path`` is left untouched.
    Output-path problems (a folder, a file in the way, no permission, disk full) raise
    LpcnetError with one line.
    """
    path = check_output_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LpcnetError(f"{path}: cannot create its folder {path.parent} "
                          f"({exc.strerror or exc})") from None
    try:
        fd, tmp = _open_temp(path)
    except OSError as exc:
        raise LpcnetError(f"{path}: cannot write ({exc.strerror or exc})") from None
    try:
        yield tmp
        _fsync_path(tmp)                    # data on disk before the name points at it
        os.replace(tmp, path)
        fsync_dir(path.parent)              # the rename on disk before we report success
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and (exc.errno in _WRITE_ERRNOS or exc.filename in (str(tmp), str(path))):
            raise LpcnetError(f"{path}: cannot write ({exc.strerror or exc}); nothing was written, "
                              f"a previous file is unchanged") from None
        raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Open a temp file beside ``path``; rename it over ``path`` only on success.

    A crash or exception leaves any previous ``path`` untouched and removes the temp file,
    so readers never see a half-written output; the file and the rename are fsynced
    (docs/promises.md). Errors of the output path are one-line LpcnetErrors.
    """
    with atomic_path(path) as tmp:
        with open(tmp, mode) as f:
            yield f
            f.flush()


def remove_stale_temps(folder) -> list[Path]:
    """Remove the hidden temp files of :func:`atomic_path` in ``folder`` that no process holds
    (left by a killed run); return their paths. Files held by a running writer are kept."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in os.scandir(folder):
        if not _is_temp_name(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if _lock(fd):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            pass
        finally:
            os.close(fd)
    if removed:
        fsync_dir(folder)
    return removed


def _write_array(path, array: np.ndarray) -> Path:
    with atomic_output(path) as f:
        np.ascontiguousarray(array).tofile(f)
    return Path(path)


# --- readers -----------------------------------------------------------------
def read_text(path, name, expected: str) -> str:
    """The text of a small UTF-8 file (a BOM is dropped), refused in one line when it is not.

    ``name`` starts each message (e.g. ``--list L``), ``expected`` says what the file should
    hold. Raises LpcnetError for a missing file, a folder, bytes that are not UTF-8, and NUL bytes.
    """
    path = Path(path)
    if path.is_dir():
        raise LpcnetError(f"{name}: is a folder; expected {expected}")
    if not path.is_file():
        raise LpcnetError(f"{name}: file not found (expected {expected})")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LpcnetError(f"{name}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                          f"{exc.start}); expected {expected}") from None
    except OSError as exc:
        raise LpcnetError(f"{name}: cannot read it ({exc.strerror or exc})") from None
    if "\x00" in text:
        raise LpcnetError(f"{name}: holds NUL bytes (a binary file?); expected {expected}")
    return text


def read_list_file(path, what: str = "input") -> list[Path]:
    """The files a list file names (``--list`` of ``prepare`` and ``synth``), in order.

    One path per line; blank lines and lines starting with ``#`` are ignored; a relative path
    is relative to the list's folder. Raises LpcnetError (one line, naming ``--list PATH``) for
    a missing list, one that is not UTF-8 text (:func:`read_text`), one naming no ``what``,
    and an entry that is not an existing file.
    """
    lst = Path(path)
    text = read_text(lst, f"--list {lst}", f"a text file, one {what} path per line")
    entries = [(n, ln.strip()) for n, ln in enumerate(text.splitlines(), 1)
               if ln.strip() and not ln.strip().startswith("#")]
    if not entries:
        raise LpcnetError(f"--list {lst}: lists no {what}s (blank lines and # comments only)")
    paths = []
    for k, (line, entry) in enumerate(entries, 1):
        p = Path(entry)
        p = p if p.is_absolute() else lst.parent / p
        if not p.is_file():
            state = "is not a file" if p.exists() else "file not found"
            raise LpcnetError(f"--list {lst}: entry {k} (line {line}: {entry}): {state}")
        paths.append(p)
    return paths


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
        hint = ("; a multiple of 220 bytes: 55-float features of the older generation?"
                if record_bytes == FEATURE_BYTES_PER_FRAME and size % 220 == 0 else "")
        raise FormatError(
            f"{path}: size {size} bytes is not a multiple of {record_bytes} ({what}); "
            f"truncated or wrong file?{hint}")
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
    of 144 bytes, features of the older 55-float generation, any NaN/Inf value or a
    value no LPCNet feature extractor can produce (:func:`check_feature_values`;
    ``check_finite=False`` skips the value checks).
    """
    size = _checked_size(path, FEATURE_BYTES_PER_FRAME,
                         f"{NB_TOTAL_FEATURES} float32 per frame = {FEATURE_BYTES_PER_FRAME} bytes")
    feats = _load(path, np.float32, (size // FEATURE_BYTES_PER_FRAME, NB_TOTAL_FEATURES), mmap)
    if check_finite:
        check_not_55_float(path, size)
        check_feature_values(feats, path)
    return feats


# --- values the extractor can produce (docs/formats.md, Plausible values) ---------------------
#: Pitch feature f_p = 0.01 (clamp(P0 + P1, 66, 510) - 200).
PITCH_FEATURE_RANGE = (-1.34, 3.10)
#: Pitch correlation feature f_c = corr - 0.5 with corr a weighted mean of 2xy / (1 + x^2 + y^2).
PITCH_CORR_RANGE = (-1.5, 0.5)
#: log10 band energies the cepstrum encodes: floored at log10(0.01) = -2; full-scale input
#: reaches about 9, so 12 leaves a factor of 1000 in energy.
BAND_LOG_ENERGY_RANGE = (-2.0, 12.0)
#: Slack on the exact bounds (float32 rounding, other builds of the same extractor).
_RANGE_SLACK = 0.02
_BAND_SLACK = 0.5
#: |a_k| of a minimum-phase A(z) of order 16 is at most binomial(16, k).
LPC_BOUND = np.array([math.comb(LPC_ORDER, k) for k in range(1, LPC_ORDER + 1)], np.float64)


def _dct_basis(n: int = NB_BANDS) -> np.ndarray:
    """Orthonormal DCT-II basis (n, n): cepstrum = basis @ log energies (docs/features.md)."""
    k, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    b = np.sqrt(2.0 / n) * np.cos(np.pi * k * (j + 0.5) / n)
    b[0] *= np.sqrt(0.5)
    return b


_DCT = _dct_basis()


def _value_problems(block: np.ndarray) -> tuple[np.ndarray, list]:
    """Per frame of ``(n, 36)`` features: True where a value is impossible; and per frame the
    first problem as ``(what, value, allowed range)`` (None for good frames)."""
    block = np.asarray(block, np.float64)
    ceps = block[:, CEPSTRUM].copy()
    ceps[:, 0] += 4.0
    log_energy = ceps @ _DCT                                 # inverse of the orthonormal DCT
    lo_e, hi_e = BAND_LOG_ENERGY_RANGE[0] - _BAND_SLACK, BAND_LOG_ENERGY_RANGE[1]
    checks = [
        ("pitch feature (index 18)", block[:, PITCH_INDEX:PITCH_INDEX + 1],
         PITCH_FEATURE_RANGE[0] - _RANGE_SLACK, PITCH_FEATURE_RANGE[1] + _RANGE_SLACK),
        ("pitch correlation (index 19)", block[:, PITCH_CORR_INDEX:PITCH_CORR_INDEX + 1],
         PITCH_CORR_RANGE[0] - _RANGE_SLACK, PITCH_CORR_RANGE[1] + _RANGE_SLACK),
        ("band log-energy encoded by the cepstrum (indices 0-17)", log_energy, lo_e, hi_e),
        ("LPC coefficient / binomial(16, k) (indices 20-35)", block[:, LPC] / LPC_BOUND,
         -1.0 - _RANGE_SLACK, 1.0 + _RANGE_SLACK),
    ]
    bad = np.zeros(len(block), bool)
    first: list = [None] * len(block)
    for what, values, lo, hi in checks:
        out = (values < lo) | (values > hi)
        rows = np.flatnonzero(out.any(axis=1))
        for r in rows:
            if first[r] is None:
                v = values[r][out[r]][0]
                first[r] = (what, float(v), (lo, hi))
        bad[rows] = True
    return bad, first


def check_feature_values(feats: np.ndarray, name="features", chunk_frames: int = 1 << 16,
                         first_frame: int = 0) -> None:
    """Refuse ``(frames, 36)`` features holding NaN/Inf or values no extractor can produce.

    Impossible (docs/formats.md, Plausible values): a pitch feature outside
    [-1.34, 3.10], a pitch correlation outside [-1.5, 0.5], a cepstrum whose band
    log-energies leave [-2, 12], an LPC coefficient a_k beyond binomial(16, k) (the bound
    of a stable predictor), each with a small slack. Raises FormatError naming the first
    bad frame (counted from ``first_frame``: a block's place in its file), the value, the
    allowed range and how many frames are bad.
    """
    check_features_finite(feats, name, chunk_frames, first_frame)
    n_bad, first = 0, None
    for start in range(0, len(feats), chunk_frames):
        bad, problems = _value_problems(np.asarray(feats[start:start + chunk_frames]))
        if bad.any():
            n_bad += int(bad.sum())
            if first is None:
                r = int(np.flatnonzero(bad)[0])
                first = (first_frame + start + r, *problems[r])
    if first is not None:
        frame, what, value, (lo, hi) = first
        raise FormatError(
            f"{name}: {n_bad} of {len(feats)} frames ({100 * n_bad / len(feats):.1f} %) hold values "
            f"no LPCNet feature extractor produces; first at frame {frame}: {what} {value:.4g} "
            f"outside [{lo:.4g}, {hi:.4g}] (not 36-float LPCNet features, or corrupted)")


def check_not_55_float(path, size: int) -> None:
    """Refuse a 55-float file (older generation, 220 bytes per frame) whose size is also a
    multiple of 144: in its records, floats 18..35 are never written (all zero)."""
    old = 55 * 4
    if size % old:
        return
    n = min(size // old, 4096)
    head = np.fromfile(path, dtype=np.float32, count=n * 55).reshape(n, 55)
    if np.any(head) and not np.any(head[:, 18:36]):
        raise FormatError(
            f"{path}: looks like features of the older 55-float generation (size {size} bytes = "
            f"{size // old} frames of 220 bytes, floats 18..35 of every frame zero), not the "
            f"36-float features this kit reads; extract them again with `lpcnet dump-data`")


def check_features_finite(feats: np.ndarray, name="features", chunk_frames: int = 1 << 16,
                          first_frame: int = 0) -> None:
    """Raise FormatError naming the first non-finite value of ``(frames, 36)`` features (its
    frame counted from ``first_frame``)."""
    for start in range(0, len(feats), chunk_frames):
        block = np.asarray(feats[start:start + chunk_frames])
        bad = ~np.isfinite(block)
        if bad.any():
            frame, index = np.argwhere(bad)[0]
            raise FormatError(
                f"{name}: non-finite value {block[frame, index]} at frame {first_frame + start + frame}, "
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
