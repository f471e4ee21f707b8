"""Training-audio preparation: folders or lists of recordings -> one ``input.s16``.

Replaces the original ``concat.sh`` + sox: every file (any format and rate, mono or
multichannel) is decoded, mixed to mono, resampled to 16 kHz with soxr's
high-quality filter, optionally level-normalised, and appended to one headerless
int16 file. A JSON manifest records each source, its duration and its offset in
the output. Unreadable or silent files are reported and skipped.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lpcnet.audio import AUDIO_EXTENSIONS, load_speech
from lpcnet.errors import AudioError, LpcnetError, LpcnetWarning
from lpcnet.formats import (PCM_SCALE, SAMPLE_RATE, atomic_output, check_outputs, read_list_file,
                            to_int16)

#: Asterisk prompt files that are not speech (silence, beeps, tones).
DEFAULT_EXCLUDES = ("silence/*", "beep*", "*-2tone*", "tt-monkeys*")
DEFAULT_LEVEL_DB = {"peak": -1.0, "rms": -26.0}
#: Lowest --level-db: one int16 step, 20 log10(1/32768) dBFS; any lower gives an all-zero output.
MIN_LEVEL_DB = 20 * math.log10(1 / PCM_SCALE)
#: A file with more than this share of its samples clipped gets a warning (docs/promises.md).
CLIP_WARN_SHARE = 0.001


@dataclass
class SourceEntry:
    """One source file's place in the prepared output (offsets in 16 kHz samples)."""

    path: str
    offset: int
    samples: int
    duration_s: float
    source_rate: int
    source_channels: int
    gain_db: float
    clipped_samples: int


@dataclass
class Manifest:
    """What ``prepare`` wrote: the output file, its sources and what was skipped."""

    output: str
    sample_rate: int = SAMPLE_RATE
    total_samples: int = 0
    normalize: str = "none"
    level_db: float | None = None
    sources: list[SourceEntry] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.total_samples / self.sample_rate

    def to_dict(self) -> dict:
        d = asdict(self)
        d["duration_s"] = self.duration_s
        return d

    @classmethod
    def load(cls, path) -> "Manifest":
        d = json.loads(Path(path).read_text())
        d.pop("duration_s", None)
        d["sources"] = [SourceEntry(**s) for s in d["sources"]]
        return cls(**d)


def _excluded(rel: str, patterns) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)


def collect_inputs(inputs, exclude=DEFAULT_EXCLUDES, list_files=()) -> list[Path]:
    """Expand files, folders (recursively, audio extensions only) and list files.

    A list file holds one path per line (:func:`lpcnet.formats.read_list_file`). Files named
    explicitly are kept even with an unknown extension; folder entries matching an ``exclude``
    glob (on the path relative to the folder, or the file name) are dropped. Order: lists, then
    the inputs as given, folders sorted. Raises LpcnetError (one line) for a missing input and
    a file given twice (named twice, in two lists or folders, or named and in a folder); a
    file reached twice inside one folder (a symbolic link beside its target) is kept twice.
    """
    found: list[Path] = []
    first: dict = {}                 # resolved path -> (path as given, which input gave it)

    def add(p: Path, source: int | None) -> None:
        key = p.resolve()
        if key in first and (source is None or first[key][1] != source):
            raise LpcnetError(f"{p}: given twice as an input (also {first[key][0]}); give each file once")
        first.setdefault(key, (p, source))
        found.append(p)

    for list_file in list_files:
        for p in read_list_file(list_file, "audio file"):
            add(p, None)
    for i, item in enumerate(inputs):
        item = Path(item)
        if item.is_dir():
            for p in sorted(item.rglob("*")):
                rel = p.relative_to(item).as_posix()
                if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS and not _excluded(rel, exclude):
                    add(p, i)
        elif item.exists():
            add(item, None)
        else:
            raise LpcnetError(f"{item}: no such file or folder (expected audio files or folders)")
    return found


def _gain(x: np.ndarray, normalize: str, level_db: float) -> float:
    """Linear gain taking float audio ``x`` to ``level_db`` dBFS (peak or RMS)."""
    if normalize == "none":
        return 1.0
    peak = float(np.max(np.abs(x)))
    if normalize == "peak":
        return 10 ** (level_db / 20) / peak
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    # RMS target, but never push the peak above -0.1 dBFS (no clipping).
    return min(10 ** (level_db / 20) / rms, 10 ** (-0.1 / 20) / peak)


def prepare(inputs, output, *, list_files=(), exclude=DEFAULT_EXCLUDES, normalize: str = "none",
            level_db: float | None = None, silence_db: float = -60.0, manifest_path=None,
            progress: bool = True) -> Manifest:
    """Concatenate audio into one 16 kHz mono int16 ``output`` file plus a JSON manifest.

    Args:
        inputs: files and/or folders (scanned recursively); a headerless ``.s16`` file is
            read as 16 kHz mono int16.
        output: path of the ``.s16`` to write (atomically: temp file + rename).
        list_files: text files listing more inputs, one per line.
        exclude: glob patterns skipped inside folders (default: Asterisk non-speech).
        normalize: ``none``, ``peak`` or ``rms`` (per file).
        level_db: target level in dBFS, MIN_LEVEL_DB..0 (default -1 for peak, -26 for rms).
        silence_db: files whose peak is at most this (dBFS, < 0) are skipped as silent.
        manifest_path: where to write the manifest (default ``<output>.json``).
        progress: show a tqdm progress bar.

    Files that cannot be decoded or hold NaN/Inf samples are skipped with the reason (in the
    manifest's ``skipped``). ``output`` and the manifest appear together or not at all.

    Returns:
        The :class:`Manifest` (also written as JSON). Raises LpcnetError (one line) for bad
        settings, a file given twice, and when no usable audio remains (naming the first
        skipped file and why).
    """
    if normalize not in ("none", "peak", "rms"):
        raise LpcnetError(f"--normalize must be none, peak or rms, got {normalize!r}")
    _check_levels(normalize, level_db, silence_db)
    if level_db is None and normalize != "none":
        level_db = DEFAULT_LEVEL_DB[normalize]
    for flag, path in (("--output", output), ("--manifest", manifest_path)):
        if path is not None and not str(path).strip():
            raise LpcnetError(f"{flag}: empty path; expected the path of an output file")
    files = collect_inputs(inputs, exclude, list_files)
    output = Path(output)
    manifest_path = Path(manifest_path) if manifest_path else output.with_name(output.name + ".json")
    check_outputs({**{str(f): f for f in files}, **{f"--list {f}": f for f in list_files}},
                  {f"--output {output}": output, f"--manifest {manifest_path}": manifest_path})
    if not files:
        raise LpcnetError(f"{output}: no audio files in {', '.join(map(str, inputs))} (folders are "
                          f"scanned for {' '.join(sorted(AUDIO_EXTENSIONS))}); nothing written")
    man = Manifest(output=str(output), normalize=normalize, level_db=level_db)
    from tqdm.auto import tqdm

    # Both outputs go to temp files first: neither appears unless both can be written (a
    # manifest folder that cannot be written fails here, before any work; docs/promises.md).
    with atomic_output(manifest_path, "w") as mf, atomic_output(output) as out:
        for path in tqdm(files, desc="prepare", unit="file", disable=not progress):
            try:
                x, info = _load(path, man)
            except AudioError as exc:
                reason = str(exc)
                reason = reason[len(f"{path}: "):] if reason.startswith(f"{path}: ") else reason
                man.skipped.append({"path": str(path), "reason": reason})
                continue
            peak = float(np.max(np.abs(x))) if len(x) else 0.0
            if peak <= 10 ** (silence_db / 20):
                man.skipped.append({"path": str(path), "reason": f"silent (peak below {silence_db} dBFS)"})
                continue
            gain = _gain(x, normalize, level_db)
            scaled = x.astype(np.float64) * (gain * PCM_SCALE)
            pcm = to_int16(scaled)
            pcm.astype("<i2").tofile(out)
            man.sources.append(SourceEntry(
                path=str(path), offset=man.total_samples, samples=len(pcm),
                duration_s=len(pcm) / SAMPLE_RATE, source_rate=info["sample_rate"],
                source_channels=info["channels"], gain_db=float(20 * np.log10(gain)),
                clipped_samples=int(np.count_nonzero((scaled > 32767.5) | (scaled < -32768.5)))))
            man.total_samples += len(pcm)
        if man.total_samples == 0:
            n = len(man.skipped)
            why = (f"{'' if n == 1 else ', the first'}: {man.skipped[0]['path']}: "
                   f"{man.skipped[0]['reason']}" if n else "")
            raise LpcnetError(f"{output}: no usable audio in {len(files)} input file(s) ({n} skipped"
                              f"{why}); nothing written")
        man.warnings += clipping_warnings(man)
        json.dump(man.to_dict(), mf, indent=1, allow_nan=False)
        mf.flush()                   # only the renames are left once the output is complete
    for w in man.warnings:
        warnings.warn(w, LpcnetWarning, stacklevel=2)
    return man


def _check_levels(normalize: str, level_db: float | None, silence_db: float) -> None:
    """Refuse levels (dBFS) that are not finite or cannot mean anything (one line each)."""
    if not math.isfinite(silence_db) or silence_db >= 0:
        raise LpcnetError(f"--silence-db {silence_db:g}: expected a finite level below 0 dBFS "
                          f"(files whose peak is at most this level are skipped)")
    if level_db is None:
        return
    if normalize == "none":
        raise LpcnetError(f"--level-db {level_db:g} applies only with --normalize peak or rms")
    if not math.isfinite(level_db):
        raise LpcnetError(f"--level-db {level_db:g}: expected a finite level in dBFS")
    if normalize == "peak" and level_db > 0:
        raise LpcnetError(f"--normalize peak --level-db {level_db:g}: a peak above 0 dBFS clips every "
                          f"file; choose a level <= 0 dBFS")
    if level_db > 0:
        raise LpcnetError(f"--normalize rms --level-db {level_db:g}: an RMS above 0 dBFS cannot be "
                          f"reached without clipping; choose a level <= 0 dBFS")
    if level_db < MIN_LEVEL_DB:
        raise LpcnetError(f"--level-db {level_db:g}: below {MIN_LEVEL_DB:.1f} dBFS (one int16 step) "
                          f"the output would be all zeros")


def _load(path: Path, man: Manifest) -> tuple[np.ndarray, dict]:
    """:func:`load_speech`, its LpcnetWarnings (e.g. a truncated WAV) kept for the manifest."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x, info = load_speech(path)
    for w in caught:
        if issubclass(w.category, LpcnetWarning):
            man.warnings.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return x, info


def clipping_warnings(man: Manifest) -> list[str]:
    """One line per source with more than CLIP_WARN_SHARE of its samples clipped, plus a total."""
    heavy = [s for s in man.sources if s.clipped_samples > CLIP_WARN_SHARE * max(1, s.samples)]
    if not heavy:
        return []
    total = sum(s.clipped_samples for s in man.sources)
    worst = max(heavy, key=lambda s: s.clipped_samples / s.samples)
    setting = (f"--normalize {man.normalize} --level-db {man.level_db:g}" if man.normalize != "none"
               else "no normalisation (sources beyond full scale)")
    return [f"{len(heavy)} of {len(man.sources)} file(s) have more than {100 * CLIP_WARN_SHARE:g} % of "
            f"their samples clipped ({total} samples in all, {100 * total / max(1, man.total_samples):.3f} % "
            f"of the output; worst {worst.path}: {worst.clipped_samples} of {worst.samples}, "
            f"{100 * worst.clipped_samples / worst.samples:.2f} %) with {setting}; lower --level-db or "
            f"use --normalize rms, which never clips"]


# --- CLI ---------------------------------------------------------------------
def add_arguments(p) -> None:
    from lpcnet.argtypes import finite_float

    p.add_argument("inputs", nargs="*",
                   help="audio files and/or folders (recursive); headerless .s16 = 16 kHz mono int16")
    p.add_argument("-o", "--output", required=True, help="output .s16 (16 kHz mono int16)")
    p.add_argument("--list", dest="list_files", action="append", default=[],
                   help="text file with one audio path per line (repeatable)")
    p.add_argument("--exclude", action="append", default=None,
                   help=f"glob of folder entries to skip (repeatable; default {list(DEFAULT_EXCLUDES)})")
    p.add_argument("--normalize", choices=("none", "peak", "rms"), default="none",
                   help="per-file level normalisation")
    p.add_argument("--level-db", type=finite_float, default=None,
                   help="normalisation target in dBFS, -90.3 to 0 (default -1 for peak, -26 for rms)")
    p.add_argument("--silence-db", type=finite_float, default=-60.0,
                   help="skip files whose peak is at most this level (dBFS, below 0)")
    p.add_argument("--manifest", default=None, help="manifest JSON path (default OUTPUT.json)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args) -> int:
    if not args.inputs and not args.list_files:
        raise LpcnetError("no inputs given (expected audio files, folders or --list FILE)")
    t0 = time.perf_counter()
    man = prepare(args.inputs, args.output, list_files=args.list_files,
                  exclude=DEFAULT_EXCLUDES if args.exclude is None else args.exclude,
                  normalize=args.normalize, level_db=args.level_db, silence_db=args.silence_db,
                  manifest_path=args.manifest, progress=not args.no_progress)
    for s in man.skipped:
        print(f"skipped {s['path']}: {s['reason']}")
    print(f"wrote {man.output}: {len(man.sources)} files, {man.duration_s:.1f} s "
          f"({man.total_samples} samples at 16 kHz) in {time.perf_counter() - t0:.1f} s; "
          f"{len(man.skipped)} skipped; manifest {args.manifest or man.output + '.json'}")
    return 0


def main(argv=None) -> int:
    from lpcnet.cli import module_main

    return module_main(__name__, "python -m lpcnet.data", argv)


if __name__ == "__main__":
    raise SystemExit(main())


# =============================================================================
# Training loader (docs/training.md, Data): memory-mapped features.f32 + data.u8 -> batches
# =============================================================================
#
# Sequence s (0 <= s < N) is
#   audio    = frames 15 s + 2 .. 15 s + 16 of data.u8 (2400 samples; first 2 frames skipped),
#   features = frames 15 s     .. 15 s + 18 of features.f32 (19 frames, overlapping by 4),
# so output frame k of the 'valid' conv stack is centred on feature frame k + 2.
# N = (frames // 15 - 1) // batch * batch, as in the seed. Both files stay memory-mapped:
# a batch reads only its own sequences.

# --- which targets a data.u8 holds (docs/formats.md, data.u8) ------------------------
#: Sampled runs of consecutive records, and records per run, of :func:`target_kind`.
KIND_RUNS, KIND_RUN_RECORDS = 128, 33
#: Pairs whose signal and excitation codes differ by more than this many codes vote.
KIND_MIN_GAP = 8
#: Votes needed to decide, and the share of them one kind must win.
KIND_MIN_VOTES, KIND_MIN_SHARE = 64, 0.75


def target_kind(data) -> str | None:
    """What byte 3 of ``data.u8`` records holds, judged from a sample of the records.

    In both kinds byte 0 of record n+1 is µ-law(ŝ[n]), the reconstructed signal, and byte 2
    of record n+1 the noisy excitation code e[n] + noise[n]. Byte 3 of record n is the
    target excitation e[n] (``dump-data -train``), so it equals byte 2 of n+1 up to the
    noise, or µ-law(s[n]) (``--end2end``), within a few codes of byte 0 of n+1. Over
    :data:`KIND_RUNS` runs of consecutive records spread evenly over the file, each pair
    whose two candidate codes differ by more than :data:`KIND_MIN_GAP` votes for the one
    byte 3 is closer to (measured: 99.5-100 % of the votes on real data, with and
    without the training noise).

    Args:
        data: ``(samples, 4)`` uint8 records (e.g. the memory map of ``read_data``).
    Returns:
        ``"excitation"``, ``"signal"``, or ``None`` when the sample cannot tell (too few
        votes, e.g. silence, or no clear majority, e.g. random bytes).
    """
    n = len(data)
    if n < 2:
        return None
    run = min(KIND_RUN_RECORDS, n)
    starts = np.unique(np.linspace(0, n - run, num=KIND_RUNS).astype(np.int64))
    recs = np.stack([np.asarray(data[s:s + run]) for s in starts]).astype(np.int16)
    b3, b0_next, b2_next = recs[:, :-1, 3], recs[:, 1:, 0], recs[:, 1:, 2]
    voting = np.abs(b0_next - b2_next) > KIND_MIN_GAP
    to_signal = np.abs(b3 - b0_next)[voting]
    to_excitation = np.abs(b3 - b2_next)[voting]
    votes = len(to_signal)
    if votes < KIND_MIN_VOTES:
        return None
    if np.count_nonzero(to_signal < to_excitation) >= KIND_MIN_SHARE * votes:
        return "signal"
    if np.count_nonzero(to_excitation < to_signal) >= KIND_MIN_SHARE * votes:
        return "excitation"
    return None


def check_target_kind(data_path, end2end: bool, data=None) -> None:
    """Refuse a ``data.u8`` whose byte 3 is not what the model trains on (one line).

    A standard model learns the excitation (``lpcnet dump-data -train``), an ``--end2end``
    model the signal (``lpcnet dump-data --end2end -train``); data the sample cannot
    classify (:func:`target_kind`) is accepted. ``data``: the records if already read.
    Cost: one memory-mapped read of 128 x 33 records (well under 50 ms).

    Raises:
        LpcnetError: the file holds the other kind of targets.
    """
    from lpcnet.formats import read_data

    kind = target_kind(read_data(data_path) if data is None else data)
    if end2end and kind == "excitation":
        raise LpcnetError(f"{data_path}: byte 3 holds the excitation (prepared without --end2end); "
                          f"an --end2end model needs `lpcnet dump-data --end2end -train` data")
    if not end2end and kind == "signal":
        raise LpcnetError(f"{data_path}: byte 3 holds the signal (prepared with `lpcnet dump-data "
                          f"--end2end`); a standard model needs data prepared without --end2end")


class TrainingLoader:
    """Batches of LPCNet training sequences, reshuffled per data epoch, shardable by rank.

    The order is a pure function of ``(seed, epoch)``: data epoch ``e`` uses the
    permutation ``default_rng((seed, e)).permutation(N)``, identical on every
    rank, with ``N`` the usable sequences rounded down to a multiple of the global
    batch ``batch_size * world_size`` (the remainder is dropped evenly: every rank
    gets the same number of batches). Batch ``i`` of rank ``k`` is
    ``perm[(i * world_size + k) * B:(i * world_size + k + 1) * B]``: the ranks'
    shards are disjoint and together cover all ``N`` sequences exactly once per
    epoch (the seed's ranks shuffled independently), and global batch ``i`` of W ranks at batch B holds the
    same sequences as batch ``i`` of one process at batch ``W * B``.
    Global step ``g`` of a run maps to batch ``g % batches_per_rank`` of data
    epoch ``g // batches_per_rank``, so a resumed run sees exactly the batches
    an uninterrupted run would.

    Args:
        features_path: ``features.f32`` (36 float32 per frame).
        data_path: ``data.u8`` (4 µ-law bytes per sample).
        batch_size: sequences per batch on this rank.
        seed: shuffle seed.
        rank, world_size: this process's shard (Horovod); default 0 / 1.
        nb_features: features fed to the network (the first 20).
        end2end: the model is the end-to-end variant: ``data.u8`` must hold signal targets
            (``dump-data --end2end``), else excitation targets (:func:`check_target_kind`).

    Raises:
        LpcnetError: files that disagree, hold NaN/Inf, hold the other kind of targets, or
            are too short for one batch.
    """

    def __init__(self, features_path, data_path, batch_size: int, *, seed: int = 0,
                 rank: int = 0, world_size: int = 1, nb_features: int = 20, end2end: bool = False):
        from lpcnet.config import SEQ_FEATURE_FRAMES, SEQ_FRAMES, SEQ_SAMPLES
        from lpcnet.formats import FRAME_SIZE, read_training_pair

        if batch_size < 1:
            raise LpcnetError(f"batch size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise LpcnetError(f"rank {rank} outside world size {world_size}")
        feats, data = read_training_pair(features_path, data_path)
        check_target_kind(data_path, end2end, data)
        frames = len(feats)
        global_batch = batch_size * world_size
        n = max(frames // SEQ_FRAMES - 1, 0) // global_batch * global_batch
        batches = n // batch_size
        if batches // world_size < 1:
            need = SEQ_FRAMES * (batch_size * world_size + 1)
            raise LpcnetError(
                f"{features_path}: {frames} frames ({frames * FRAME_SIZE / SAMPLE_RATE:.1f} s) are too short "
                f"for one batch of {batch_size} sequences x {world_size} rank(s); need at least "
                f"{need} frames ({need * FRAME_SIZE / SAMPLE_RATE:.1f} s)")
        self.features_path, self.data_path = str(features_path), str(data_path)
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.nb_features = int(nb_features)
        self.frames, self.nb_sequences = frames, n
        self.batches_per_rank = batches // world_size
        # Views on the memory maps (no copy): (N, 2400, 4) audio and (N, 19, 36) features.
        start = 2 * FRAME_SIZE
        self._audio = data[start:start + n * SEQ_SAMPLES].reshape(n, SEQ_SAMPLES, data.shape[1])
        self._feats = np.lib.stride_tricks.as_strided(
            feats, shape=(n, SEQ_FEATURE_FRAMES, feats.shape[1]),
            strides=(SEQ_FRAMES * feats.strides[0], feats.strides[0], feats.strides[1]),
            writeable=False)

    def __len__(self) -> int:
        """Batches per data epoch on this rank."""
        return self.batches_per_rank

    def permutation(self, epoch: int) -> np.ndarray:
        """The global (all-rank) order of sequence indices for data epoch ``epoch``."""
        return np.random.default_rng((self.seed, int(epoch))).permutation(self.nb_sequences)

    def indices(self, step: int) -> np.ndarray:
        """Sequence indices of global step ``step`` on this rank."""
        epoch, i = divmod(int(step), self.batches_per_rank)
        lo = (i * self.world_size + self.rank) * self.batch_size
        return self.permutation(epoch)[lo:lo + self.batch_size]

    def sequences(self, idx) -> tuple:
        """``([pcm (B,2400,3), features (B,19,nb), pitch (B,19,1)], target (B,2400,1))`` of sequences ``idx``."""
        from lpcnet.formats import PITCH_INDEX, decode_pitch

        idx = np.asarray(idx)
        audio = np.asarray(self._audio[idx])
        f = np.asarray(self._feats[idx])
        pcm = audio[:, :, :3].astype(np.int32)
        target = audio[:, :, 3:4].astype(np.int32)
        feat = np.ascontiguousarray(f[:, :, :self.nb_features], dtype=np.float32)
        pitch = decode_pitch(f[:, :, PITCH_INDEX:PITCH_INDEX + 1]).astype(np.int32)
        return (pcm, feat, pitch), target

    def batch(self, step: int) -> tuple:
        """Batch of global step ``step`` (see the class docstring)."""
        return self.sequences(np.sort(self.indices(step)))   # ascending reads on the memory maps

    def as_dataset(self, start_step: int = 0, prefetch: int = 2):
        """Endless ``tf.data.Dataset`` of batches from global step ``start_step`` on."""
        import tensorflow as tf

        from lpcnet.config import SEQ_FEATURE_FRAMES, SEQ_SAMPLES

        def gen():
            step = start_step
            while True:
                yield self.batch(step)
                step += 1

        b = self.batch_size
        sig = ((tf.TensorSpec((b, SEQ_SAMPLES, 3), tf.int32),
                tf.TensorSpec((b, SEQ_FEATURE_FRAMES, self.nb_features), tf.float32),
                tf.TensorSpec((b, SEQ_FEATURE_FRAMES, 1), tf.int32)),
               tf.TensorSpec((b, SEQ_SAMPLES, 1), tf.int32))
        ds = tf.data.Dataset.from_generator(gen, output_signature=sig)
        return ds.prefetch(prefetch)
