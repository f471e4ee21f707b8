"""Audio input: any file soundfile, PyAV or librosa reads -> float samples at 16 kHz mono.

Never reads a container header as samples (the seed's tools read a WAV header as 22 samples):
WAV/FLAC/OGG/MP3 go through
soundfile, raw G.722 (Asterisk prompts) through PyAV, anything else through librosa.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lpcnet.errors import AudioError
from lpcnet.formats import PCM_SCALE, SAMPLE_RATE

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


def read_audio(path) -> tuple[np.ndarray, int]:
    """Read an audio file -> ``((samples, channels) float32 in [-1, 1], sample rate in Hz)``."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: file not found (expected an audio file)")
    suffix = path.suffix.lower()
    if suffix in RAW_CODEC_FORMATS:
        return _decode_pyav(path, RAW_CODEC_FORMATS[suffix])
    import soundfile as sf

    try:
        x, rate = sf.read(str(path), dtype="float32", always_2d=True)
        return x, int(rate)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        pass
    # Containers libsndfile does not know (m4a, webm, ...): let FFmpeg try.
    return _decode_pyav(path, None)


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
