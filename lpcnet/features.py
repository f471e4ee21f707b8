"""Native LPCNet feature extraction: ``lpcnet dump-data`` (docs/features.md), Python API.

The C library in ``native/`` computes, per 160-sample frame, the 36 floats of
``features.f32`` (18 cepstra, pitch, pitch correlation, 16 LPCs) and, in training mode,
the 160 four-byte ``data.u8`` records (docs/formats.md). It is loaded with
ctypes (the call releases the GIL) and fed NumPy buffers without copies.

Timing (docs/features.md): record k describes input frame k-1 (record 0 is an
all-zero frame); N complete input frames give N records. ``-test`` dithers
with a fixed seed by default, so the same input always gives the same
features. Deviations from the original tool are listed in docs/features.md.
"""

from __future__ import annotations

import ctypes
import secrets
import time
from pathlib import Path

import numpy as np

from lpcnet import native
from lpcnet.errors import FormatError, LpcnetError
from lpcnet.formats import (DATA_CHANNELS, FRAME_SIZE, LAYOUT, NB_TOTAL_FEATURES,  # noqa: F401
                            RAW_PCM_SUFFIXES, SAMPLE_RATE, atomic_output, check_outputs,
                            check_s16, float_to_int16, to_int16)

MODES = {"test": 0, "train": 1}
#: Native mode of ``-train -end2end`` (LPCNET_MODE_TRAIN_END2END): byte 3 = µ-law of s[n].
_MODE_TRAIN_END2END = 2
#: Seed of the ``-test`` dither when none is given (reproducible features).
DEFAULT_TEST_SEED = 0
#: Frames per native call when streaming a file (~2.6 MB of int16 input).
CHUNK_FRAMES = 8192


# --- native library ----------------------------------------------------------
_SIGNATURES = {
    "lpcnet_feat_get_size": ([], ctypes.c_size_t),
    "lpcnet_feat_init": ([ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64], ctypes.c_int),
    "lpcnet_feat_process": ([ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long, ctypes.c_void_p,
                             ctypes.c_void_p], None),
    "lpcnet_simd_level": ([], ctypes.c_int),
    "lpcnet_set_simd_level": ([ctypes.c_int], ctypes.c_int),
    "lpcnet_lin2ulaw": ([ctypes.c_double], ctypes.c_int),
    "lpcnet_ulaw2lin": ([ctypes.c_int], ctypes.c_double),
}


def load_library() -> ctypes.CDLL:
    """Load (once) the native feature library and declare its functions (lpcnet.native)."""
    return native.load("features", _SIGNATURES)


def simd_level() -> str:
    """Name of the SIMD path of the pitch cross-correlation kernel."""
    return {0: "scalar", 2: "avx2", 3: "avx512"}[load_library().lpcnet_simd_level()]


def set_simd_level(level: str) -> str:
    """Force ``scalar``, ``avx2``, ``avx512`` or ``auto`` for states created afterwards."""
    code = {"scalar": 0, "avx2": 2, "avx512": 3, "auto": -1}[level]
    load_library().lpcnet_set_simd_level(code)
    return simd_level()


def random_seed() -> int:
    """A fresh 63-bit seed (printed by the CLI so a run can be repeated)."""
    return secrets.randbits(63)


class FeatureExtractor:
    """Streaming extractor: feed consecutive frames, get one record per frame.

    Args:
        mode: ``"test"`` (features only) or ``"train"`` (augmentation + data.u8).
        seed: seed of every random draw; ``None`` gives 0 in test mode and a
            random seed in train mode (see ``self.seed``).
        end2end: train mode: byte 3 of each data.u8 record is µ-law(s[n]), the clean
            signal, instead of the target excitation (training data of the end-to-end
            model); features, bytes 0-2 and every random draw are unchanged.
    """

    def __init__(self, mode: str = "test", seed: int | None = None, end2end: bool = False):
        if mode not in MODES:
            raise LpcnetError(f"mode must be 'test' or 'train', got {mode!r}")
        if end2end and mode != "train":
            raise LpcnetError("--end2end applies to -train only (it changes the data.u8 targets)")
        self.lib = load_library()
        self.mode, self.end2end = mode, bool(end2end)
        if seed is None:
            seed = DEFAULT_TEST_SEED if mode == "test" else random_seed()
        self.seed = int(seed) & (2**64 - 1)
        self._state = np.zeros(self.lib.lpcnet_feat_get_size(), dtype=np.uint8)
        code = _MODE_TRAIN_END2END if self.end2end else MODES[mode]
        if self.lib.lpcnet_feat_init(self._state.ctypes.data, code, self.seed):
            raise LpcnetError("native state initialisation failed")

    def process(self, frames: np.ndarray, features: np.ndarray | None = None,
                data: np.ndarray | None = None):
        """Process ``(n*160,)`` int16 samples -> ``(n, 36)`` float32 [, ``(n*160, 4)`` uint8].

        Output arrays may be passed in (C-contiguous, right shape) to avoid allocation.
        """
        pcm = np.ascontiguousarray(frames, dtype=np.int16).reshape(-1)
        if len(pcm) % FRAME_SIZE:
            raise ValueError(f"expected a multiple of {FRAME_SIZE} samples, got {len(pcm)}")
        n = len(pcm) // FRAME_SIZE
        if features is None:
            features = np.empty((n, NB_TOTAL_FEATURES), dtype=np.float32)
        train = self.mode == "train"
        if train and data is None:
            data = np.empty((n * FRAME_SIZE, DATA_CHANNELS), dtype=np.uint8)
        for arr, dtype, shape in ((features, np.float32, (n, NB_TOTAL_FEATURES)),
                                  (data if train else None, np.uint8, (n * FRAME_SIZE, DATA_CHANNELS))):
            if arr is not None and (arr.dtype != dtype or arr.shape != shape
                                    or not arr.flags.c_contiguous or not arr.flags.writeable):
                raise ValueError(f"output buffer must be C-contiguous writable {dtype} {shape}")
        if n:
            self.lib.lpcnet_feat_process(self._state.ctypes.data, pcm.ctypes.data, n,
                                         features.ctypes.data, data.ctypes.data if train else None)
        return (features, data) if train else features


# --- in-memory API -------------------------------------------------------------
def _as_int16(samples) -> np.ndarray:
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(f"expected mono samples of shape (n,), got {x.shape}")
    return x if x.dtype == np.int16 else to_int16(x)


def extract(samples, mode: str = "test", seed: int | None = None) -> np.ndarray:
    """Speech samples (int16, or float at int16 scale) -> ``(frames, 36)`` float32 features.

    ``frames = len(samples) // 160``; record 0 describes an all-zero frame
    (docs/features.md, Timing). ``mode="train"`` applies the training augmentation too.
    """
    pcm = _as_int16(samples)
    n = len(pcm) // FRAME_SIZE
    out = FeatureExtractor(mode, seed).process(pcm[:n * FRAME_SIZE])
    return out[0] if mode == "train" else out


def extract_training(samples, seed: int | None = None, max_frames: int | None = None,
                     end2end: bool = False):
    """Training mode: -> ``(features (frames, 36) float32, data (frames*160, 4) uint8)``.

    The input wraps around until ``max_frames`` records are
    made; the default is one pass (``len(samples) // 160`` records). ``end2end``: byte 3
    holds µ-law(s[n]) instead of the excitation (:class:`FeatureExtractor`).
    """
    pcm = _as_int16(samples)
    n = len(pcm) // FRAME_SIZE
    if n == 0:
        raise FormatError(f"input holds {len(pcm)} samples; at least one frame "
                          f"({FRAME_SIZE} samples) is needed")
    total = n if max_frames is None else int(max_frames)
    ext = FeatureExtractor("train", seed, end2end=end2end)
    feats = np.empty((total, NB_TOTAL_FEATURES), dtype=np.float32)
    data = np.empty((total * FRAME_SIZE, DATA_CHANNELS), dtype=np.uint8)
    done = 0
    while done < total:
        k = min(n, total - done)
        ext.process(pcm[:k * FRAME_SIZE], feats[done:done + k],
                    data[done * FRAME_SIZE:(done + k) * FRAME_SIZE])
        done += k
    return feats, data


# --- files -------------------------------------------------------------------------
class _S16Source:
    """Frames of a headerless int16 file, read in chunks (constant memory)."""

    def __init__(self, path: Path):
        size = check_s16(path)
        self.path = path
        self.frames = size // 2 // FRAME_SIZE

    def chunks(self, start: int, count: int):
        with open(self.path, "rb") as f:
            f.seek(start * FRAME_SIZE * 2)
            while count > 0:
                k = min(count, CHUNK_FRAMES)
                block = np.fromfile(f, dtype="<i2", count=k * FRAME_SIZE)
                yield block.astype(np.int16, copy=False)
                count -= k


class _ArraySource:
    def __init__(self, pcm: np.ndarray):
        self.pcm = pcm
        self.frames = len(pcm) // FRAME_SIZE

    def chunks(self, start: int, count: int):
        for s in range(start, start + count, CHUNK_FRAMES):
            k = min(CHUNK_FRAMES, start + count - s)
            yield self.pcm[s * FRAME_SIZE:(s + k) * FRAME_SIZE]


def _open_source(path: Path):
    if path.suffix.lower() in RAW_PCM_SUFFIXES:
        return _S16Source(path)
    from lpcnet.audio import load_speech

    if not path.is_file():
        raise FormatError(f"{path}: file not found (expected an audio file or headerless .s16)")
    x, _ = load_speech(path)
    return _ArraySource(float_to_int16(x))


def dump_data(input_path, features_path, data_path=None, mode: str = "test",
              seed: int | None = None, max_frames: int | None = None,
              progress: bool = True, end2end: bool = False) -> dict:
    """``dump_data -test|-train``: speech file -> ``features.f32`` [+ ``data.u8``].

    Args:
        input_path: headerless int16 ``.s16`` (streamed) or any audio file
            (wav/flac/... at any rate, decoded and resampled to 16 kHz).
        features_path: output ``features.f32`` (36 float32 per frame).
        data_path: output ``data.u8``; required for ``mode="train"``, unused otherwise.
        mode: ``"test"`` or ``"train"``.
        seed: random seed (default: 0 for test, a fresh random seed for train).
        max_frames: train mode: number of records, wrapping around the input
            (default one pass = number of complete input frames).
        progress: show a tqdm bar on long inputs.
        end2end: train mode: byte 3 of data.u8 = µ-law of the clean signal s[n] (data of
            the end-to-end model, ``lpcnet train --end2end``) instead of the excitation;
            everything else is what the same seed gives without it.

    Returns:
        Summary dict (frames, seconds, seed, speed). Outputs are written
        atomically: on any error no partial file is left.
    """
    if mode not in MODES:
        raise LpcnetError(f"mode must be 'test' or 'train', got {mode!r}")
    if mode == "train" and data_path is None:
        raise LpcnetError("train mode needs a data.u8 output path")
    if mode == "test" and max_frames is not None:
        raise LpcnetError("--max-frames applies to -train only")
    if mode == "test" and end2end:
        raise LpcnetError("--end2end applies to -train only (it changes the data.u8 targets)")
    t0 = time.perf_counter()
    input_path = Path(input_path)
    check_outputs({f"input {input_path}": input_path},
                  {f"features output {features_path}": features_path,
                   f"data output {data_path}": data_path if mode == "train" else None})
    src = _open_source(input_path)
    if src.frames == 0:
        raise FormatError(f"{input_path}: shorter than one frame ({FRAME_SIZE} samples = 10 ms); "
                          f"nothing to analyse")
    total = src.frames if max_frames is None else int(max_frames)
    if total <= 0:
        raise LpcnetError(f"--max-frames must be positive, got {max_frames}")
    if mode == "train" and total < AUGMENT_PERIOD_FRAMES:
        import warnings

        from lpcnet.errors import LpcnetWarning

        warnings.warn(f"{input_path}: {total} records, fewer than {AUGMENT_PERIOD_FRAMES}: the first "
                      f"augmentation (gain, spectral shaping, excitation noise) is drawn at record "
                      f"{AUGMENT_PERIOD_FRAMES}, so these records have none; --max-frames "
                      f"{AUGMENT_PERIOD_FRAMES} or more wraps around the input", LpcnetWarning, stacklevel=2)
    ext = FeatureExtractor(mode, seed, end2end=end2end)
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="frame", desc=f"dump-data -{mode}", unit_scale=True,
               disable=not progress or total < 60_000)
    train = mode == "train"
    current = features_path
    try:
        with atomic_output(features_path) as ff:
            current = data_path
            with atomic_output(data_path) if train else _null() as fd:
                current = features_path
                done = 0
                while done < total:
                    k = min(src.frames, total - done)
                    for block in src.chunks(0, k):
                        out = ext.process(block)
                        feats, data = out if train else (out, None)
                        feats.tofile(ff)
                        if train:
                            data.tofile(fd)
                        bar.update(len(feats))
                    done += k
    except OSError as exc:
        raise LpcnetError(f"{current}: cannot write output ({exc.strerror or exc}); "
                          f"nothing was written") from None
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    seconds = total * FRAME_SIZE / SAMPLE_RATE
    return {"input": str(input_path), "features": str(features_path),
            "data": str(data_path) if train else None, "mode": mode, "seed": ext.seed,
            "end2end": ext.end2end,
            "frames": total, "input_frames": src.frames, "seconds": seconds,
            "elapsed_s": elapsed, "x_realtime": seconds / elapsed if elapsed > 0 else float("inf"),
            "simd": simd_level()}


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


#: Frames between augmentation draws in -train mode; the first draw is at record 2822
#: (LPCNET_GAIN_CHANGE_FRAMES in native/include/lpcnet.h; docs/features.md, Modes).
AUGMENT_PERIOD_FRAMES = 2822


# --- CLI -----------------------------------------------------------------------------
_UNSUPPORTED = ("-qtrain", "-qtest", "-encode", "-decode")


USAGE = ("usage: lpcnet dump-data -train <speech> <features out> <data out> [--end2end]  or  "
         "lpcnet dump-data -test <speech> <features out>")


def _one_line_usage_errors(p) -> None:
    """Argument errors of this command (unknown option, two modes) as one stderr line, exit 2."""
    def error(message):
        import sys

        sys.stderr.write(f"{p.prog}: error: {message}; {USAGE}\n")
        sys.exit(2)

    parse_known = p.parse_known_args

    def strict_parse_known_args(args=None, namespace=None):
        ns, extras = parse_known(args, namespace)
        if extras:
            error(f"unrecognized arguments: {' '.join(extras)}")
        return ns, extras

    p.error = error
    p.parse_known_args = strict_parse_known_args


def add_arguments(p) -> None:
    _one_line_usage_errors(p)
    modes = p.add_mutually_exclusive_group()
    modes.add_argument("-train", dest="mode", action="store_const", const="train",
                       help="training mode: FILES = speech features.f32 data.u8")
    modes.add_argument("-test", dest="mode", action="store_const", const="test",
                       help="test mode: FILES = speech features.f32")
    for flag in _UNSUPPORTED:
        modes.add_argument(flag, dest="mode", action="store_const", const=flag,
                           help="not supported (quantised codec modes)")
    p.add_argument("files", nargs="*", metavar="FILES",
                   help="input speech (.s16 headerless int16 16 kHz, or any audio file) and outputs")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of every random draw (default: 0 for -test, random for -train)")
    p.add_argument("--max-frames", type=int, default=None,
                   help="-train: records to write, wrapping around the input (default: one pass)")
    p.add_argument("--end2end", "-end2end", action="store_true",
                   help="-train: byte 3 of data.u8 = µ-law of the clean signal instead of the "
                        "excitation (training data of `lpcnet train --end2end`)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    usage = USAGE
    if args.mode in _UNSUPPORTED:
        raise LpcnetError(f"mode {args.mode} is not supported (quantised codec modes are not "
                          f"implemented); {usage}")
    if args.mode is None:
        raise LpcnetError(f"missing mode -train or -test; {usage}")
    want = 3 if args.mode == "train" else 2
    if len(args.files) != want:
        raise LpcnetError(f"-{args.mode} takes {want} file arguments, got {len(args.files)}; {usage}")
    summary = dump_data(args.files[0], args.files[1], args.files[2] if want == 3 else None,
                        mode=args.mode, seed=args.seed, max_frames=args.max_frames,
                        progress=not args.no_progress, end2end=args.end2end)
    extra = f" and {summary['data']}" if summary["data"] else ""
    extra += " (end-to-end targets)" if summary["end2end"] else ""
    print(f"wrote {summary['features']}{extra}: {summary['frames']} frames "
          f"({summary['seconds']:.1f} s) in {summary['elapsed_s']:.2f} s "
          f"({summary['x_realtime']:.0f}x real time, {summary['simd']}); seed {summary['seed']}")
    return 0


def main(argv=None) -> int:
    from lpcnet.cli import module_main

    return module_main(__name__, "python -m lpcnet.features", argv)


if __name__ == "__main__":
    raise SystemExit(main())
