"""Synthesis of files with the native engine: long inputs in blocks, many files at once.

Used by ``lpcnet synth`` (docs/synthesis.md, "Long inputs" and "Many files"):

* One input: features are read, synthesised and written in blocks of
  :data:`BLOCK_FRAMES` frames (:class:`FeatureSource`, :class:`OutputWriter`), so memory does
  not grow with the length of the input; the samples are those of the whole-utterance call.
* Several inputs: ``workers`` threads (one per core; the C calls release the GIL), each
  synthesising ``streams`` files at once, interleaved on its core with
  :class:`lpcnet.synth.NativeMulti`; a stream whose file ends takes the next file. Every
  file's samples are those of a single stream with the same seed.

Outputs are written atomically (:func:`lpcnet.formats.atomic_path`): a file appears only
when complete; an error leaves no partial output.
"""

from __future__ import annotations

import math
import os
import queue
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lpcnet.errors import FormatError, LpcnetError
from lpcnet.formats import (FEATURE_BYTES_PER_FRAME, FRAME_SIZE, NB_TOTAL_FEATURES,
                            RAW_PCM_SUFFIXES, SAMPLE_RATE, atomic_path, check_feature_values,
                            read_features, read_list_file)

#: Frames per block of a single stream (10 s of audio): what is held in memory at a time.
BLOCK_FRAMES = 1000
#: Most steps per call of NativeMulti.step (0.32 s of audio per stream); a call ends earlier
#: when a stream finishes its file, so that the stream takes the next file at once.
MULTI_STEPS = 32
#: Streams per worker chosen when none is given: int8 synthesis with the multi-stream kernel
#: (AVX-512 VNNI) gains from several streams per core (docs/benchmarks.md#synth); float
#: synthesis, whose products are not shared between streams, runs one.
AUTO_STREAMS_INT8 = 8
#: Suffixes of feature files (anything else given as an input is speech for copy synthesis).
FEATURE_SUFFIXES = frozenset({".f32"})
#: The WAV header of 16-bit mono PCM at 16 kHz (sizes filled in when the file is complete).
_WAV_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")
_WAV_MAX_SAMPLES = (2 ** 32 - 1 - 36) // 2


def _wav_header(samples: int) -> bytes:
    data = 2 * samples
    return _WAV_HEADER.pack(b"RIFF", 36 + data, b"WAVE", b"fmt ", 16, 1, 1, SAMPLE_RATE,
                            2 * SAMPLE_RATE, 2, 16, b"data", data)


# --- inputs -------------------------------------------------------------------------------
class FeatureSource:
    """The frames of one input, read in blocks.

    A feature file (``.f32``, 36 float32 per frame) is checked as :func:`read_features`
    checks it, block by block, without mapping the whole file; any other path is speech,
    whose features are extracted (``-test`` mode, as copy synthesis does) into memory first.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.pos = 0
        self._file = self._features = None
        if self.path.suffix.lower() in FEATURE_SUFFIXES:
            # size, emptiness and the older 55-float generation (no values are read beyond that)
            self.frames = len(read_features(self.path, mmap=True, check_finite=False))
            _check_generation(self.path)
            self._file = open(self.path, "rb")
        else:
            from lpcnet.audio import load_speech
            from lpcnet.features import extract
            from lpcnet.formats import float_to_int16

            pcm = float_to_int16(load_speech(self.path)[0])
            if len(pcm) < FRAME_SIZE:
                raise FormatError(f"{self.path}: shorter than one frame ({FRAME_SIZE} samples)")
            self._features = extract(pcm)
            self.frames = len(self._features)

    def read(self, n: int) -> np.ndarray:
        """The next ``min(n, frames left)`` frames, ``(count, 36)`` float32."""
        n = max(0, min(int(n), self.frames - self.pos))
        if self._features is not None:
            block = self._features[self.pos:self.pos + n]
        else:
            block = np.fromfile(self._file, np.float32, n * NB_TOTAL_FEATURES)
            if len(block) != n * NB_TOTAL_FEATURES:
                raise FormatError(f"{self.path}: file shrank while being read")
            block = block.reshape(n, NB_TOTAL_FEATURES)
            check_feature_values(block, self.path, first_frame=self.pos)
        self.pos += n
        return block

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _check_generation(path: Path) -> None:
    """The 55-float check of read_features (its first frames only)."""
    from lpcnet.formats import check_not_55_float

    check_not_55_float(path, path.stat().st_size)


# --- outputs ------------------------------------------------------------------------------
class OutputWriter:
    """int16 samples appended block by block to ``path``, written atomically: raw s16 for
    .s16/.sw/.pcm/.raw, else a 16-bit mono WAV at 16 kHz (its sizes written on close).
    Nothing appears at ``path`` before :meth:`close`; :meth:`abort` removes the partial file."""

    def __init__(self, path):
        self.path = Path(path)
        self.samples = 0
        self.wav = self.path.suffix.lower() not in RAW_PCM_SUFFIXES
        self._cm = atomic_path(self.path)
        tmp = self._cm.__enter__()
        try:
            self._file = open(tmp, "wb")
            if self.wav:
                self._file.write(_wav_header(0))
        except BaseException as exc:
            self._cm.__exit__(type(exc), exc, exc.__traceback__)
            raise

    def write(self, samples) -> None:
        samples = np.asarray(samples, dtype="<i2")
        self.samples += len(samples)
        if self.wav and self.samples > _WAV_MAX_SAMPLES:
            raise LpcnetError(f"{self.path}: more than {_WAV_MAX_SAMPLES} samples do not fit a WAV "
                              f"file; write raw .s16 instead")
        self._file.write(samples.tobytes())

    def close(self) -> None:
        """Complete the file and rename it into place."""
        try:
            if self.wav:
                self._file.seek(0)
                self._file.write(_wav_header(self.samples))
            self._file.close()
        except BaseException as exc:
            self._file.close()
            self._cm.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._cm.__exit__(None, None, None)

    def abort(self) -> None:
        """Discard the partial file (a previous file at ``path`` is left as it was)."""
        self._file.close()
        err = LpcnetError(f"{self.path}: not written")
        try:
            self._cm.__exit__(LpcnetError, err, None)
        except LpcnetError:
            pass


# --- one input, in blocks -------------------------------------------------------------------
def synthesize_file(source, output, model, *, seed: int = 0, block: int = BLOCK_FRAMES,
                    **options) -> int:
    """Synthesise one input into ``output`` in blocks of ``block`` frames; returns the sample count.

    Args:
        source: a feature file / speech path, or a :class:`FeatureSource`.
        output: output path (.wav or raw .s16).
        model: :class:`lpcnet.synth.NativeModel`.
        seed, options: those of :class:`lpcnet.synth.NativeStream` (int8, sharpen, argmax,
            lpc_from_cepstrum).
    """
    from lpcnet.synth import NativeStream

    src = source if isinstance(source, FeatureSource) else FeatureSource(source)
    stream = NativeStream(model, seed, **options)
    writer = OutputWriter(output)
    try:
        while src.pos < src.frames:
            writer.write(stream.frames(src.read(block)))
        writer.write(stream.flush())
    except BaseException:
        writer.abort()
        raise
    finally:
        src.close()
    writer.close()
    return writer.samples


# --- many inputs ----------------------------------------------------------------------------
@dataclass
class _Active:
    """A file being synthesised on one stream of a NativeMulti."""

    source: FeatureSource
    writer: OutputWriter
    ended: int = 0          # end-of-stream steps done

    def steps_left(self) -> int:
        from lpcnet.synth import DELAY_FRAMES

        return self.source.frames - self.source.pos + DELAY_FRAMES - self.ended

    def fill(self, features: np.ndarray, commands: np.ndarray) -> None:
        """The stream's rows of the next call: its next frames, then its end steps."""
        from lpcnet.synth import DELAY_FRAMES, END, FEED

        block = self.source.read(len(commands))
        features[:len(block)] = block
        commands[:len(block)] = FEED
        end = min(len(commands) - len(block), DELAY_FRAMES - self.ended)
        commands[len(block):len(block) + end] = END
        self.ended += end

    def finish(self) -> None:
        self.source.close()
        self.writer.close()

    def abort(self) -> None:
        self.source.close()
        self.writer.abort()


def auto_streams(int8: bool) -> int:
    """Streams per worker when none is given: :data:`AUTO_STREAMS_INT8` for int8 synthesis on
    a CPU with the multi-stream int8 kernel (AVX-512 VNNI), else 1."""
    from lpcnet.synth import load_library

    return AUTO_STREAMS_INT8 if int8 and load_library().lpcnet_synth_simd_level() >= 3 else 1


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class _Batch:
    """Shared state of the workers of :func:`synthesize_files`."""

    def __init__(self, jobs, progress):
        self.jobs: queue.Queue = queue.Queue()
        for job in jobs:
            self.jobs.put(job)
        self.stop = threading.Event()
        self.errors: list = []
        self.samples = 0
        self.lock = threading.Lock()
        self.progress = progress

    def next_job(self):
        if self.stop.is_set():
            return None
        try:
            return self.jobs.get_nowait()
        except queue.Empty:
            return None

    def done(self, samples: int) -> None:
        with self.lock:
            self.samples += samples
            if self.progress is not None:
                self.progress.update(1)

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            self.errors.append(exc)
        self.stop.set()


def _worker_single(batch: _Batch, model, seed: int, options: dict) -> None:
    while (job := batch.next_job()) is not None:
        batch.done(synthesize_file(job[0], job[1], model, seed=seed, **options))


def _worker_multi(batch: _Batch, model, streams: int, seed: int, options: dict) -> None:
    from lpcnet.synth import NativeMulti

    multi = NativeMulti(model, streams, **options)
    slots: list = [None] * streams
    try:
        while not batch.stop.is_set():
            for s in range(streams):
                if slots[s] is None and (job := batch.next_job()) is not None:
                    source = FeatureSource(job[0])
                    try:
                        slots[s] = _Active(source, OutputWriter(job[1]))
                    except BaseException:
                        source.close()
                        raise
                    multi.start(s, seed)
            active = [s for s in range(streams) if slots[s] is not None]
            if not active:
                return
            left = [slots[s].steps_left() for s in active]
            # end the call when the first stream finishes (it then takes the next file at once)
            steps = max(1, min(MULTI_STEPS, min(left) if not batch.jobs.empty() else max(left)))
            features = np.zeros((steps, streams, NB_TOTAL_FEATURES), np.float32)
            commands = np.zeros((steps, streams), np.int8)
            for s in active:
                slots[s].fill(features[:, s], commands[:, s])
            out, counts = multi.step(features, commands)
            for s in active:
                made = counts[:, s] > 0
                slots[s].writer.write(out[made, s].reshape(-1))
                if slots[s].steps_left() == 0:
                    active_job, slots[s] = slots[s], None
                    active_job.finish()
                    batch.done(active_job.writer.samples)
    except BaseException:
        for job in slots:
            if job is not None:
                job.abort()
        raise


def _run_worker(batch: _Batch, target, *args) -> None:
    try:
        target(batch, *args)
    except BaseException as exc:       # reported by the main thread
        batch.fail(exc)


def synthesize_files(jobs, model, *, streams: int | None = None, workers: int | None = None,
                     seed: int = 0, progress: bool = True, **options) -> dict:
    """Synthesise many inputs, ``streams`` at once on each of ``workers`` threads.

    Args:
        jobs: ``[(input path, output path)]``; inputs are feature files or speech.
        model: :class:`lpcnet.synth.NativeModel` (shared, read-only).
        streams: streams per worker (None: :func:`auto_streams`); 1 runs one file at a time
            per worker (in blocks).
        workers: threads (None: one per CPU), at most one per file.
        seed: sampling seed of every file (each file gets the samples of a single stream with
            this seed); options: int8, sharpen, argmax, lpc_from_cepstrum.
        progress: a progress bar over files on stderr.
    Returns:
        ``{"files", "samples", "audio_seconds", "wall_seconds", "cpu_seconds", "streams",
        "workers"}``.
    Raises:
        The first worker's error (outputs finished before it are kept, the others removed).
    """
    jobs = sorted(jobs, key=lambda j: _input_size(j[0]), reverse=True)   # longest first
    workers = max(1, min(workers or cpu_count(), len(jobs)))
    if streams is None:
        streams = auto_streams(bool(options.get("int8")))
    streams = max(1, min(int(streams), math.ceil(len(jobs) / workers)))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), unit="file", desc="synth", dynamic_ncols=True)
    batch = _Batch(jobs, bar)
    args = (model, streams, seed, options) if streams > 1 else (model, seed, options)
    target = _worker_multi if streams > 1 else _worker_single
    w0, c0 = time.perf_counter(), time.process_time()
    threads = [threading.Thread(target=_run_worker, args=(batch, target, *args), daemon=True)
               for _ in range(workers)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except KeyboardInterrupt:
        batch.stop.set()
        for t in threads:
            t.join()
        raise
    finally:
        if bar is not None:
            bar.close()
    if batch.errors:
        raise batch.errors[0]
    return {"files": len(jobs), "samples": batch.samples,
            "audio_seconds": batch.samples / SAMPLE_RATE,
            "wall_seconds": time.perf_counter() - w0, "cpu_seconds": time.process_time() - c0,
            "streams": streams, "workers": workers}


def _input_size(path) -> float:
    """Sort key: frames of a feature file, bytes of speech (longest first)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        return 0.0
    return size / FEATURE_BYTES_PER_FRAME if path.suffix.lower() in FEATURE_SUFFIXES else size / 64.0


# --- inputs of the command line ---------------------------------------------------------------
def collect_inputs(features=(), audio=(), lists=()) -> tuple:
    """The inputs of ``lpcnet synth``: -> ``(paths, batch)``.

    ``features`` / ``audio``: files or folders (a folder gives its ``.f32`` files, or its
    speech files, sorted); ``lists``: text files with one input per line (``#`` comments and
    blank lines skipped; relative paths are relative to the list's folder; ``.f32`` lines are
    features, others speech). ``batch`` is True when a folder or a list was given or there
    is more than one input. Raises LpcnetError (one line) for a missing input, an empty folder
    or list, or an input given twice.
    """
    from lpcnet.audio import AUDIO_EXTENSIONS

    paths: list = []
    batch = False
    for kind, given in (("features", features), ("audio", audio)):
        for item in given or ():
            p = Path(item)
            if p.is_dir():
                batch = True
                found = sorted(q for q in p.iterdir() if q.is_file() and (
                    q.suffix.lower() in FEATURE_SUFFIXES if kind == "features"
                    else q.suffix.lower() in AUDIO_EXTENSIONS))
                if not found:
                    want = ".f32 feature files" if kind == "features" else "speech files"
                    raise LpcnetError(f"--{kind} {p}: folder holds no {want}")
                paths += found
            elif p.is_file():
                # The kind goes by the name downstream (as in --list): refuse a mismatch here.
                is_features = p.suffix.lower() in FEATURE_SUFFIXES
                if kind == "features" and not is_features:
                    raise LpcnetError(f"--features {p}: expected a feature file named *.f32 (36 float32 "
                                      f"per frame, `lpcnet dump-data -test`); speech goes with --audio")
                if kind == "audio" and is_features:
                    raise LpcnetError(f"--audio {p}: a .f32 feature file; give it with --features")
                paths.append(p)
            else:
                raise LpcnetError(f"--{kind} {p}: file not found")
    for item in lists or ():
        batch = True
        paths += read_list_file(item)
    seen: dict = {}
    for p in paths:
        key = p.resolve()
        if key in seen:
            raise LpcnetError(f"{p}: given twice as an input (also {seen[key]})")
        seen[key] = p
    return paths, batch or len(paths) > 1


def batch_outputs(inputs, output_dir, suffix: str) -> list:
    """Output paths of a batch: ``output_dir / (input stem + suffix)``; one line of error when
    two inputs share a stem or ``output_dir`` is a file."""
    out_dir = Path(output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise LpcnetError(f"--output_dir {out_dir}: is a file, expected a folder (created if missing)")
    outputs, names = [], {}
    for p in inputs:
        name = p.stem + suffix
        if name in names:
            raise LpcnetError(f"{p} and {names[name]}: both would be written to {out_dir / name} "
                              f"(inputs of a batch need different file names)")
        names[name] = p
        outputs.append(out_dir / name)
    return outputs
