"""Audio input: any file soundfile or PyAV reads -> float samples at 16 kHz mono.

Never reads a container header as samples (the seed's tools read a WAV header as 22 samples):
WAV/FLAC/OGG/MP3 go through soundfile, raw G.722 (Asterisk prompts) and anything else through
PyAV (FFmpeg), headerless ``.s16`` as 16 kHz mono int16. Every command decodes audio here, so
NaN/Inf samples are refused here (:func:`check_finite`).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from lpcnet.errors import AudioError, FormatError, LpcnetWarning
from lpcnet.formats import PCM_SCALE, RAW_PCM_SUFFIXES, SAMPLE_RATE, read_s16

#: Extensions decoded with PyAV using an explicit raw container format.
RAW_CODEC_FORMATS = {".g722": "g722"}

#: Extensions looked at when a folder is scanned.
AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au",
                    ".caf", ".w64", ".rf64", ".g722", ".m4a", ".webm"}


def _decode_pyav(path: Path, fmt: str | None) -> tuple[np.ndarray, int]:
    import av

    try:
        with av.open(str(path), format=fmt) as container:
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate
            chunks = []
            for frame in container.decode(stream):
                x = frame.to_ndarray()
                if frame.format.is_planar:          # (channels, n)
                    x = x.T
                else:                               # (1, n*channels) interleaved
                    x = x.reshape(-1, len(frame.layout.channels))
                chunks.append(x)
    except (av.error.FFmpegError, IndexError) as exc:
        raise AudioError(f"{path}: cannot decode audio ({exc})") from None
    if not chunks:
        raise AudioError(f"{path}: no audio frames decoded")
    x = np.concatenate(chunks, axis=0)
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / float(-np.iinfo(x.dtype).min)
    return x.astype(np.float32), int(rate)


def check_finite(x: np.ndarray, name) -> None:
    """Refuse audio holding NaN or Inf: AudioError naming ``name`` and the count of bad samples.

    ``x``: ``(samples,)`` or ``(samples, channels)``; a sample is bad when any channel is.
    """
    x = np.asarray(x)
    bad = ~np.isfinite(x)
    n_bad = int(np.count_nonzero(bad.any(axis=1) if bad.ndim == 2 else bad))
    if n_bad:
        raise AudioError(f"{name}: {n_bad} of {len(x)} samples are NaN or Inf (expected finite audio)")


#: libsndfile's log line of a chunk whose header claims more bytes than the file holds.
_SHORT_CHUNK_RE = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.M)
_BLOCK_ALIGN_RE = re.compile(r"Block Align\s*:\s*(\d+)")


def _warn_if_truncated(path: Path, log: str, frames: int, rate: int) -> None:
    """LpcnetWarning when libsndfile's ``log`` shows a data chunk shorter than its header says."""
    m = _SHORT_CHUNK_RE.search(log)
    if not m or rate <= 0:
        return
    claimed, present = int(m[1]), int(m[2])
    if claimed <= present:
        return
    if present > 0 and frames > 0:
        claimed_frames = frames * claimed / present
    else:
        align = _BLOCK_ALIGN_RE.search(log)
        if not align or int(align[1]) == 0:
            return
        claimed_frames = claimed / int(align[1])
    warnings.warn(f"{path}: truncated: its header claims {claimed_frames / rate:.2f} s of audio, the "
                  f"file holds {frames / rate:.2f} s; using the {frames / rate:.2f} s present",
                  LpcnetWarning, stacklevel=3)


def _decode_raw_pcm(path: Path) -> tuple[np.ndarray, int]:
    """Headerless int16 (the kit's ``.s16``, docs/formats.md) -> ``((samples, 1) float32, 16000)``."""
    try:
        pcm = read_s16(path, mmap=False)
    except FormatError as exc:
        raise AudioError(str(exc)) from None
    return (pcm.astype(np.float32) / PCM_SCALE)[:, None], SAMPLE_RATE


def _decode(path: Path) -> tuple[np.ndarray, int]:
    suffix = path.suffix.lower()
    if suffix in RAW_PCM_SUFFIXES:
        return _decode_raw_pcm(path)
    if suffix in RAW_CODEC_FORMATS:
        return _decode_pyav(path, RAW_CODEC_FORMATS[suffix])
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            x = f.read(dtype="float32", always_2d=True)
            rate = int(f.samplerate)
            _warn_if_truncated(path, f.extra_info, len(x), rate)
        return x, rate
    except (sf.LibsndfileError, RuntimeError, TypeError):
        pass
    # Containers libsndfile does not know (m4a, webm, ...): let FFmpeg try.
    return _decode_pyav(path, None)


def read_audio(path) -> tuple[np.ndarray, int]:
    """Read an audio file -> ``((samples, channels) float32 in [-1, 1], sample rate in Hz)``.

    Headerless ``.s16``/``.sw``/``.pcm``/``.raw`` files are read as 16 kHz mono int16 (the
    kit's own format). Raises AudioError (one line naming the file) for a missing or
    undecodable file, one holding no samples, or samples that are NaN or Inf
    (docs/promises.md, Implausible inputs); warns (LpcnetWarning) about a WAV whose data is
    shorter than its header says.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: file not found (expected an audio file)")
    x, rate = _decode(path)
    if len(x) == 0:
        raise AudioError(f"{path}: holds no audio samples")
    check_finite(x, path)
    return x, rate


def to_mono(x: np.ndarray) -> np.ndarray:
    """``(samples, channels)`` -> ``(samples,)`` by averaging channels."""
    return x.mean(axis=1) if x.ndim == 2 else x


def resample(x: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Resample ``(samples,)`` float audio with soxr's high-quality filter (via librosa)."""
    if rate == target:
        return x.astype(np.float32, copy=False)
    import librosa

    return librosa.resample(x.astype(np.float32), orig_sr=rate, target_sr=target,
                            res_type="soxr_hq").astype(np.float32)


def load_speech(path, target_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, dict]:
    """Read any audio file -> ``((samples,) float32 in [-1, 1] at target_rate, info)``.

    ``info`` holds the source ``sample_rate``, ``channels`` and ``duration_s``.
    """
    x, rate = read_audio(path)
    info = {"sample_rate": rate, "channels": int(x.shape[1]), "duration_s": len(x) / rate}
    return resample(to_mono(x), rate, target_rate), info


def write_wav(path, samples, rate: int = SAMPLE_RATE) -> Path:
    """Write int16 or float ([-1, 1]) samples as a 16-bit PCM WAV, atomically."""
    import soundfile as sf

    from lpcnet.formats import atomic_output

    samples = np.asarray(samples)
    if np.issubdtype(samples.dtype, np.floating):
        samples = np.clip(np.round(samples * PCM_SCALE), -32768, 32767).astype(np.int16)
    with atomic_output(path) as f:
        sf.write(f, samples, rate, subtype="PCM_16", format="WAV")
    return Path(path)
