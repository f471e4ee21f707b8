"""Quality tracked while training: held-out speech copy-synthesised and scored beside training.

Every ``--eval-every`` steps and at each epoch end, rank 0 hands the current weights (as a
native weight blob) to a scoring process. That process copy-synthesises each held-out
utterance with the native engine, scores it against the recording with the kit's metrics
(:mod:`lpcnet.quality`: STOI, PESQ-WB, gross pitch error, f0 RMSE, DNSMOS, ...) and writes

* ``<model_dir>/eval/quality.jsonl`` and ``quality.csv``: one row per (step, utterance);
* TensorBoard scalars ``quality/<metric>`` (mean over utterances) and ``quality_<group>/<metric>``
  (per voice), and the synthesised audio of the first utterances, in ``<model_dir>/tensorboard/eval``;
* ``<model_dir>/eval/step_<step>/<utterance>.wav``, the synthesised audio.

Training never waits for scoring: the scoring process runs at a lower priority, and an
evaluation that falls due while the previous one is still being scored is skipped (and
counted). The time the callback itself takes (a weight snapshot and a blob export) is
reported at the end of training. ``score_checkpoints`` scores saved checkpoints the same way
after the fact (e.g. a run started without ``--eval-audio``).

Utterance names: the file stem; the *group* (voice) is the part before ``__`` in the stem
(``it_IT_m_Carlo__vm-intro`` -> ``it_IT_m_Carlo``), else the stem itself.
"""

from __future__ import annotations

import csv
import json
import multiprocessing as mp
import os
import queue
import time
import warnings
from pathlib import Path

import numpy as np

from lpcnet.errors import LpcnetError, LpcnetWarning
from lpcnet.formats import SAMPLE_RATE, atomic_output, check_outputs, read_text

EVAL_DIR = "eval"
ROWS_JSONL = "quality.jsonl"
ROWS_CSV = "quality.csv"
#: Metrics written to TensorBoard and plotted (all of lpcnet.quality's are kept in the rows).
TRACKED = ("stoi", "pesq_wb", "gpe_pct", "f0_rmse_cents", "dnsmos_ovrl", "lsd_db", "feature_gpe_pct")
#: Utterances whose audio goes to TensorBoard at every evaluation.
TB_AUDIO_UTTERANCES = 4


def utterance_group(path) -> str:
    """Voice group of an evaluation file: the stem's part before ``__`` (else the stem)."""
    stem = Path(path).stem
    return stem.split("__", 1)[0]


def eval_files(inputs) -> list[Path]:
    """Evaluation audio from files and folders (folders: audio files, sorted); at least one."""
    from lpcnet.data import collect_inputs

    try:
        files = collect_inputs(list(inputs), exclude=())
    except LpcnetError as exc:
        raise LpcnetError(f"--eval-audio {exc}") from None
    if not files:
        raise LpcnetError(f"--eval-audio {' '.join(map(str, inputs))}: no audio files found")
    names = [Path(f).stem for f in files]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise LpcnetError(f"--eval-audio: utterance names must be unique, repeated: {dup[:5]}")
    return [Path(f) for f in files]


#: Shortest evaluation audio that can be scored (lpcnet.quality.score_pair needs 100 ms).
MIN_EVAL_SECONDS = 0.1


def check_eval_audio(inputs) -> list[Path]:
    """:func:`eval_files`, each read once: refused (one line naming the file and why) before a
    run starts, since a file that cannot be scored would fail every evaluation (docs/training.md,
    Quality): not audio, or shorter than :data:`MIN_EVAL_SECONDS`."""
    from lpcnet.audio import load_speech

    files = eval_files(inputs)
    for f in files:
        try:
            x, _ = load_speech(f)
        except LpcnetError as exc:
            raise LpcnetError(f"--eval-audio {exc}") from None
        if len(x) < MIN_EVAL_SECONDS * SAMPLE_RATE:
            raise LpcnetError(f"--eval-audio {f}: {len(x)} samples at {SAMPLE_RATE} Hz, too short to "
                              f"score (expected at least {MIN_EVAL_SECONDS * 1000:.0f} ms of speech)")
    return files


# --- scoring (runs in the scoring process, or directly) -------------------------------------
def score_blob(blob_path, files, *, step: int, sequences: int, epoch: int | None = None,
               audio_dir=None, seed: int = 0, use_dnsmos: bool = True, **synth_options) -> list[dict]:
    """Copy-synthesise every file with the native engine from ``blob_path`` and score it.

    Returns one row per file: ``step``, ``sequences``, ``epoch``, ``utterance``, ``group``,
    the metrics of :func:`lpcnet.quality.score_pair` (any pair is scored: an early
    model's output need not resemble speech), ``synth_s`` (wall seconds of synthesis + scoring).
    With ``audio_dir`` the synthesised speech is written there as ``<utterance>.wav``.
    ``synth_options``: sampling options of :func:`lpcnet.synth.synthesize` (e.g. ``sharpen``).
    """
    from lpcnet.audio import load_speech, write_wav
    from lpcnet.features import extract
    from lpcnet.formats import float_to_int16
    from lpcnet.quality import score_pair
    from lpcnet.synth import copy_synthesis

    rows = []
    for f in files:
        t0 = time.perf_counter()
        syn = copy_synthesis(f, blob_path, engine="native", align=True, seed=seed, **synth_options)
        ref, _ = load_speech(f)
        n = min(len(ref), len(syn))
        row = {"step": int(step), "sequences": int(sequences), "epoch": epoch,
               "utterance": Path(f).stem, "group": utterance_group(f)}
        try:
            row.update(score_pair(ref[:n], syn[:n].astype(np.float32) / 32768.0, use_dnsmos=use_dnsmos,
                                  min_envelope_corr=-1.0, features=extract(float_to_int16(ref))))
        except LpcnetError as exc:            # e.g. a silent synthesis: keep the row, say why
            row["error"] = str(exc)
        row["synth_s"] = round(time.perf_counter() - t0, 3)
        if audio_dir is not None:
            write_wav(Path(audio_dir) / f"{Path(f).stem}.wav", syn)
        rows.append(row)
    return rows


def _finite_mean(values) -> float | None:
    """Mean of the finite numbers among ``values``, or None when there are none."""
    vals = [v for v in values if isinstance(v, (int, float)) and np.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def _check_rows(rows, keys, user: str) -> None:
    """Refuse (one line) rows that are not quality rows with ``keys`` (e.g. a JSONL of something else)."""
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or not all(k in r for k in keys):
            have = sorted(r)[:8] if isinstance(r, dict) else type(r).__name__
            raise LpcnetError(f"{user}: row {i + 1} is not a quality row (expected the keys "
                              f"{', '.join(keys)} of lpcnet.train_eval rows; has {have})")


def summarize(rows: list[dict]) -> dict:
    """Rows of one evaluation -> ``{"all": {metric: mean}, group: {metric: mean}, ...}``."""
    _check_rows(rows, ("group",), "summarize")
    out = {}
    for name, mine in [("all", rows)] + [(g, [r for r in rows if r["group"] == g])
                                         for g in dict.fromkeys(r["group"] for r in rows)]:
        out[name] = {m: v for m in TRACKED if (v := _finite_mean(r.get(m) for r in mine)) is not None}
    return out


def append_rows(eval_dir, rows: list[dict]) -> None:
    """Append rows to ``quality.jsonl`` and rewrite ``quality.csv`` from it (atomically)."""
    eval_dir = Path(eval_dir)
    eval_dir.mkdir(parents=True, exist_ok=True)
    jsonl = eval_dir / ROWS_JSONL
    # the rows already there, re-serialised (a cut last line, see load_rows, is dropped)
    old = "".join(json.dumps(r) + "\n" for r in load_rows(jsonl)) if jsonl.is_file() else ""
    with atomic_output(jsonl, "w") as f:
        f.write(old + "".join(json.dumps(r) + "\n" for r in rows))
    all_rows = load_rows(eval_dir)
    keys = list(dict.fromkeys(k for r in all_rows for k in r))
    with atomic_output(eval_dir / ROWS_CSV, "w") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(all_rows)


def load_rows(path) -> list[dict]:
    """Rows of ``quality.jsonl`` (``path``: the file, its eval folder, or the model_dir).

    A file that is not UTF-8 JSON lines of quality rows (objects with ``step`` and ``group``)
    is refused in one line naming the file and line. One exception (docs/training.md,
    Quality): a last line without its newline that does not parse, i.e. a copy taken while a
    writer was cut off, is skipped with a warning (LpcnetWarning).
    """
    p = Path(path)
    for cand in (p, p / ROWS_JSONL, p / EVAL_DIR / ROWS_JSONL):
        if cand.is_file():
            text = read_text(cand, str(cand), f"{ROWS_JSONL} rows of a training run (JSON lines)")
            lines = text.splitlines()
            rows = []
            for i, line in enumerate(lines):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    if i == len(lines) - 1 and not text.endswith("\n"):
                        warnings.warn(f"{cand}: skipped its cut-off last line {i + 1} ({exc.msg})",
                                      LpcnetWarning, stacklevel=2)
                        continue
                    raise LpcnetError(f"{cand}: line {i + 1} is not JSON ({exc.msg}); expected "
                                      f"{ROWS_JSONL} rows of a training run") from None
            _check_rows(rows, ("step", "group"), str(cand))
            return rows
    raise LpcnetError(f"{path}: no {ROWS_JSONL} (expected a training run evaluated with --eval-audio)")


def history(rows: list[dict], group: str = "all") -> list[dict]:
    """Per-evaluation means: ``[{"step", "sequences", metric: mean, ...}]`` sorted by step."""
    _check_rows(rows, ("step", "sequences", "group"), "history")
    out = []
    for step in sorted({r["step"] for r in rows}):
        mine = [r for r in rows if r["step"] == step]
        means = summarize(mine).get(group)
        if means is not None:
            out.append({"step": step, "sequences": mine[0]["sequences"], **means})
    return out


def trend(rows: list[dict], metric: str, target: float, since_step: int, group: str = "all") -> dict:
    """Where a metric is heading: a least-squares line of the per-evaluation means against
    log2(sequences seen), fitted on the evaluations at ``step >= since_step``.

    Returns ``{"per_doubling": change per doubling of the sequences, "fit_now": the line at the
    last evaluation, "sequences_to_target": sequences where the line reaches ``target`` (None when
    it heads away from it, the last evaluation's sequences when already there), "points": n}``.
    """
    if not np.isfinite(target):
        raise LpcnetError(f"trend: target {target!r}; expected a finite {metric} value")
    h = [p for p in history(rows, group) if p["step"] >= since_step and metric in p]
    if any(not (p["sequences"] > 0) for p in h):
        raise LpcnetError(f"trend: evaluations with sequences <= 0 since step {since_step} "
                          f"(steps {[p['step'] for p in h if not p['sequences'] > 0][:5]}); the line "
                          f"is fitted against log2(sequences), pass a later since_step")
    if len(h) < 3:
        raise LpcnetError(f"{metric}: {len(h)} evaluations since step {since_step}, need at least 3")
    x = np.log2([p["sequences"] for p in h])
    y = np.array([p[metric] for p in h])
    slope, icept = np.polyfit(x, y, 1)
    now = float(slope * x[-1] + icept)
    better_up = metric not in ("gpe_pct", "f0_rmse_cents", "lsd_db")
    gap = (target - now) if better_up else (now - target)
    if gap <= 0:
        to_target = float(h[-1]["sequences"])
    elif (slope > 0) == better_up and slope != 0:
        to_target = float(2.0 ** ((target - icept) / slope))
    else:
        to_target = None
    return {"per_doubling": float(slope), "fit_now": now, "sequences_to_target": to_target,
            "points": len(h)}


def _tb_write(writer, rows: list[dict], files, audio_dir) -> None:
    import tensorflow as tf

    from lpcnet.audio import load_speech

    step = rows[0]["step"]
    with writer.as_default(step=step):
        for group, means in summarize(rows).items():
            prefix = "quality" if group == "all" else f"quality_{group}"
            for m, v in means.items():
                tf.summary.scalar(f"{prefix}/{m}", v)
        for f in list(files)[:TB_AUDIO_UTTERANCES]:
            wav = Path(audio_dir) / f"{Path(f).stem}.wav"
            if wav.is_file():
                x, _ = load_speech(wav)
                tf.summary.audio(f"audio/{Path(f).stem}", x[None, :, None], SAMPLE_RATE, max_outputs=1)
    writer.flush()


def _scoring_process(jobs, done, files, model_dir, use_dnsmos: bool, tensorboard: bool) -> None:
    """Body of the scoring process: score each job's blob until ``None`` arrives."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for k in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[k] = "1"
    try:
        os.nice(10)                   # training keeps priority on a busy machine
    except OSError:
        pass
    eval_dir = Path(model_dir) / EVAL_DIR
    writer = None
    while True:
        job = jobs.get()
        if job is None:
            break
        audio_dir = eval_dir / f"step_{job['step']:07d}"
        audio_dir.mkdir(parents=True, exist_ok=True)
        try:
            rows = score_blob(job["blob"], files, step=job["step"], sequences=job["sequences"],
                              epoch=job["epoch"], audio_dir=audio_dir, use_dnsmos=use_dnsmos)
            append_rows(eval_dir, rows)
            if tensorboard:
                if writer is None:
                    import tensorflow as tf

                    writer = tf.summary.create_file_writer(str(Path(model_dir) / "tensorboard" / "eval"))
                _tb_write(writer, rows, files, audio_dir)
            done.put({"step": job["step"], "ok": True, "all": summarize(rows)["all"]})
        except Exception as exc:                       # report, keep serving the next jobs
            done.put({"step": job["step"], "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        finally:
            Path(job["blob"]).unlink(missing_ok=True)
    if writer is not None:
        writer.close()


class QualityTracker:
    """Owns the scoring process and its queues; the training side only calls :meth:`submit`.

    ``submit`` exports the given weights to a blob file and queues it, unless a previous
    evaluation is still waiting (then it returns False: skipped). ``close`` waits for the
    queued evaluations to finish (``timeout`` seconds at most) and stops the process.
    """

    def __init__(self, files, model_dir, *, use_dnsmos: bool = True, tensorboard: bool = True):
        self.files = [str(f) for f in files]
        self.model_dir = Path(model_dir)
        (self.model_dir / EVAL_DIR).mkdir(parents=True, exist_ok=True)
        ctx = mp.get_context("spawn")                  # no fork of a TensorFlow process
        self.jobs, self.done = ctx.Queue(), ctx.Queue()
        self.proc = ctx.Process(target=_scoring_process, name="lpcnet-quality",
                                args=(self.jobs, self.done, self.files, str(self.model_dir),
                                      use_dnsmos, tensorboard), daemon=True)
        self.proc.start()
        self.pending = 0
        self.submitted = self.skipped = 0
        self.callback_s = 0.0
        self.results: list[dict] = []

    def _collect(self) -> None:
        while True:
            try:
                r = self.done.get_nowait()
            except queue.Empty:
                return
            self.pending -= 1
            self.results.append(r)
            if not r["ok"]:
                print(f"quality evaluation at step {r['step']} failed: {r['error']}", flush=True)

    def submit(self, weights: dict, cfg, *, step: int, sequences: int, epoch: int | None) -> bool:
        """Queue an evaluation of ``weights`` (``{layer: {var: array}}``); False when skipped."""
        from lpcnet.export import blob_from_weights, write_blob

        t0 = time.perf_counter()
        self._collect()
        if self.pending > 0 or not self.proc.is_alive():
            self.skipped += 1
            self.callback_s += time.perf_counter() - t0
            return False
        blob = self.model_dir / EVAL_DIR / f".step_{step:07d}.bin"
        write_blob(blob, blob_from_weights(weights, cfg))
        self.jobs.put({"blob": str(blob), "step": int(step), "sequences": int(sequences), "epoch": epoch})
        self.pending += 1
        self.submitted += 1
        self.callback_s += time.perf_counter() - t0
        return True

    def drain(self, timeout: float = 600.0) -> None:
        """Wait until the queued evaluations are scored (at most ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while self.pending > 0 and self.proc.is_alive() and time.monotonic() < deadline:
            try:
                self.results.append(self.done.get(timeout=1.0))
                self.pending -= 1
            except queue.Empty:
                pass

    def close(self, timeout: float = 600.0) -> None:
        """Finish the queued evaluations (at most ``timeout`` s), then stop the process."""
        deadline = time.monotonic() + timeout
        self.drain(timeout)
        self.jobs.put(None)
        self.proc.join(timeout=max(1.0, deadline - time.monotonic()))
        if self.proc.is_alive():
            self.proc.terminate()
        self._collect()

    def report(self, train_s: float) -> str:
        """One line: evaluations done / skipped and the training-side time they cost."""
        share = 100.0 * self.callback_s / train_s if train_s > 0 else 0.0
        ok = sum(1 for r in self.results if r["ok"])
        failed = [r for r in self.results if not r["ok"]]
        why = f", {len(failed)} failed (first: {failed[0]['error']})" if failed else ""
        return (f"quality: {ok} evaluations scored{why}, {self.skipped} skipped (scorer busy); "
                f"training-side cost {self.callback_s:.2f} s ({share:.2f} % of {train_s:.0f} s)")


# --- after the fact: score saved checkpoints --------------------------------------------------
def checkpoint_epoch(path) -> int | None:
    """Epoch of a ``<prefix>_<grua>_<epoch>.keras`` checkpoint; None for another name
    (e.g. ``lpcnet_16_best.keras``)."""
    last = Path(path).stem.rsplit("_", 1)[-1]
    return int(last) if last.isdigit() else None


def score_checkpoints(checkpoints, files, model_dir, *, steps_per_epoch: int, global_batch: int,
                      use_dnsmos: bool = True, progress: bool = True) -> list[dict]:
    """Score saved checkpoints (``<prefix>_<grua>_<epoch>.keras``) not yet in ``quality.jsonl``.

    Step of a checkpoint = epoch x ``steps_per_epoch``; sequences = step x ``global_batch``.
    Returns the new rows (also appended to ``<model_dir>/eval``).
    """
    from tqdm.auto import tqdm

    from lpcnet.export import blob_from_weights, write_blob
    from lpcnet.model import config_from_weights, read_checkpoint_weights

    eval_dir = Path(model_dir) / EVAL_DIR
    try:
        seen = {r["step"] for r in load_rows(eval_dir)}
    except LpcnetError:
        seen = set()
    new = []
    for ckpt in tqdm(list(checkpoints), desc="score checkpoints", unit="ckpt", disable=not progress):
        epoch = checkpoint_epoch(ckpt)
        if epoch is None:
            raise LpcnetError(f"{ckpt}: expected a checkpoint named <prefix>_<grua>_<epoch>.keras")
        step = epoch * steps_per_epoch
        if step in seen:
            continue
        weights = read_checkpoint_weights(ckpt)
        blob = eval_dir / f".step_{step:07d}.bin"
        eval_dir.mkdir(parents=True, exist_ok=True)
        write_blob(blob, blob_from_weights(weights, config_from_weights(weights)))
        try:
            rows = score_blob(blob, files, step=step, sequences=step * global_batch, epoch=epoch,
                              audio_dir=eval_dir / f"step_{step:07d}", use_dnsmos=use_dnsmos)
        finally:
            blob.unlink(missing_ok=True)
        append_rows(eval_dir, rows)
        new += rows
    return new


def compare_sampling(blob_path, files, options: dict, seeds=(0, 1), use_dnsmos: bool = True) -> list[dict]:
    """Score the same weights under several sampling settings, side by side.

    ``options``: ``{name: synth options}`` (e.g. ``{"plain": {}, "sharpen": {"sharpen": True}}``).
    Returns rows of :func:`score_blob` with ``condition`` and ``seed`` added; compare the
    conditions with :func:`summarize` per condition (same files, same seeds).
    """
    rows = []
    for name, opts in options.items():
        for seed in seeds:
            for r in score_blob(blob_path, files, step=0, sequences=0, seed=seed,
                                use_dnsmos=use_dnsmos, **opts):
                rows.append({"condition": name, "seed": seed, **r})
    return rows


def paired_differences(rows: list[dict], base: str, other: str, metrics=TRACKED) -> dict:
    """Side-by-side comparison of two conditions of :func:`compare_sampling` rows.

    Pairs are (utterance, seed) scored under both. Returns ``{metric: {"base", "other": means,
    "diff": mean of other - base, "ci95": half-width of its 95 % t interval, "pairs": n}}``;
    a metric missing or non-finite in either row of a pair leaves that pair out.
    """
    from scipy import stats

    by = {c: {(r["utterance"], r["seed"]): r for r in rows if r["condition"] == c} for c in (base, other)}
    for c in (base, other):
        if not by[c]:
            raise LpcnetError(f"no rows of condition {c!r} (have: {sorted({r['condition'] for r in rows})})")
    keys = sorted(set(by[base]) & set(by[other]))
    out = {}
    for m in metrics:
        pairs = [(by[base][k].get(m), by[other][k].get(m)) for k in keys]
        pairs = np.array([p for p in pairs if all(isinstance(v, (int, float)) and np.isfinite(v) for v in p)],
                         dtype=np.float64).reshape(-1, 2)
        if len(pairs) == 0:
            continue
        d = pairs[:, 1] - pairs[:, 0]
        half = (float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
                if len(d) > 1 else float("nan"))
        out[m] = {"base": float(pairs[:, 0].mean()), "other": float(pairs[:, 1].mean()),
                  "diff": float(d.mean()), "ci95": half, "pairs": len(d)}
    return out


def _plotted_metrics(metrics, row_lists, user: str) -> list[str]:
    """The metrics of lpcnet.quality.METRICS among ``metrics`` that some row has; refused (one
    line) when none is, rather than an empty figure."""
    from lpcnet.quality import METRICS

    known = [m for m in metrics if m in METRICS]
    found = [m for m in known if any(m in r for rows in row_lists for r in rows)]
    if not found:
        raise LpcnetError(f"{user}: none of the metrics {list(metrics)} is in the rows (expected "
                          f"some of {', '.join(METRICS)})")
    return found


def plot_time_to_quality(rows: list[dict], metrics=("stoi", "pesq_wb", "gpe_pct", "dnsmos_ovrl"),
                         by_group: bool = True, reference: dict | None = None):
    """Quality against training sequences seen -> Figure, one panel per metric.

    ``by_group`` adds one thin line per voice group under the bold mean; ``reference``
    (``{metric: value}``, e.g. the recordings' own DNSMOS or a target) draws dashed lines.
    """
    from matplotlib.figure import Figure

    from lpcnet.quality import METRICS

    if not rows:
        raise LpcnetError("no quality rows to plot")
    metrics = _plotted_metrics(metrics, [rows], "plot_time_to_quality")
    fig = Figure(figsize=(4.2 * len(metrics), 3.2), layout="constrained")
    groups = list(dict.fromkeys(r["group"] for r in rows)) if by_group else []
    for i, m in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        for g in groups:
            h = [p for p in history(rows, g) if m in p]
            ax.plot([p["sequences"] for p in h], [p[m] for p in h], lw=0.8, alpha=0.6, label=g)
        h = [p for p in history(rows) if m in p]
        ax.plot([p["sequences"] for p in h], [p[m] for p in h], "k-o", lw=2, ms=3, label="mean")
        if reference and m in reference:
            ax.axhline(reference[m], ls="--", c="gray", lw=1)
        ax.set(xlabel="training sequences seen", title=f"{m} ({'higher' if METRICS[m] else 'lower'} is better)")
        ax.grid(alpha=0.3)
    if groups:
        fig.axes[0].legend(fontsize=7)
    return fig


def plot_runs_quality(runs: dict, metrics=("stoi", "pesq_wb", "gpe_pct", "dnsmos_ovrl"),
                      max_step: int | None = None):
    """Mean quality of several runs against training steps -> Figure, one panel per metric.

    ``runs``: ``{label: rows}`` (rows of :func:`load_rows`, e.g. a standard and an end-to-end
    run scored on the same files); ``max_step``: leave out later evaluations (compare the
    runs over the steps they share).
    """
    from matplotlib.figure import Figure

    from lpcnet.quality import METRICS

    if not runs or not all(runs.values()):
        raise LpcnetError("plot_runs_quality needs at least one run with quality rows")
    metrics = _plotted_metrics(metrics, runs.values(), "plot_runs_quality")
    fig = Figure(figsize=(4.2 * len(metrics), 3.2), layout="constrained")
    for i, m in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        for (label, rows), style in zip(runs.items(), ("k-o", "C3-s", "C0-^", "C2-d")):
            h = [p for p in history(rows) if m in p and (max_step is None or p["step"] <= max_step)]
            ax.plot([p["step"] for p in h], [p[m] for p in h], style, lw=1.5, ms=3, label=label)
        ax.set(xlabel="training steps", title=f"{m} ({'higher' if METRICS[m] else 'lower'} is better)")
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=8)
    return fig


def loss_curve(tensorboard_dir) -> list[dict]:
    """``[{"step", "loss", "sequences_per_s"}]`` from a run's TensorBoard batch scalars, sorted by step."""
    import tensorflow as tf

    by_step: dict = {}
    files = sorted(Path(tensorboard_dir).glob("events.out.tfevents.*"))
    if not files:
        raise LpcnetError(f"{tensorboard_dir}: no TensorBoard event files (train with --enable_tensorboard)")
    for f in files:
        try:
            for e in tf.compat.v1.train.summary_iterator(str(f)):
                for v in e.summary.value:
                    if v.tag in ("batch/loss", "batch/sequences_per_s"):
                        val = float(tf.make_ndarray(v.tensor)) if v.HasField("tensor") else v.simple_value
                        by_step.setdefault(int(e.step), {})[v.tag.split("/")[1]] = val
        except (tf.errors.DataLossError, tf.errors.OpError) as exc:
            msg = (exc.message or type(exc).__name__).splitlines()[0]
            raise LpcnetError(f"{f}: not a readable TensorBoard event file ({msg})") from None
    if not any("loss" in v for v in by_step.values()):
        raise LpcnetError(f"{tensorboard_dir}: no batch/loss scalars in its event files (expected the "
                          f"TensorBoard folder of a run trained with --enable_tensorboard)")
    return [{"step": k, **by_step[k]} for k in sorted(by_step)]


# --- per-voice table of a finished model (docs/demo-model.md) ---------------------------------
#: Targets of a vocoder that works on unseen voices, per voice: ``{key: (direction, bound)}``;
#: ``dnsmos_diff`` = the synthesis's DNSMOS OVRL minus the recording's own (at most 0.3 below).
VOICE_TARGETS = {"gpe_pct": ("<=", 5.0), "stoi": (">=", 0.90), "pesq_wb": (">=", 2.0),
                 "dnsmos_diff": (">=", -0.3)}
#: Metrics averaged per voice in :func:`voice_table`.
VOICE_METRICS = ("gpe_pct", "stoi", "pesq_wb", "dnsmos_ovrl", "f0_rmse_cents", "feature_gpe_pct")
#: Row ``set`` values, in table order, and their headings.
VOICE_SETS = {"heldout": "Training voices, held-out prompts", "unseen": "Unseen voices"}


def reference_dnsmos(files) -> dict:
    """``{utterance: DNSMOS OVRL (1..5)}`` of the recordings themselves (scored as
    :func:`lpcnet.quality.score_pair` scores a synthesis)."""
    from lpcnet.audio import load_speech
    from lpcnet.quality import dnsmos

    return {Path(f).stem: dnsmos(load_speech(f)[0])["dnsmos_ovrl"] for f in files}


def score_voice_sets(blob_path, sets: dict, *, use_dnsmos: bool = True, audio_dir=None,
                     **synth_options) -> list[dict]:
    """Score a blob on ``{set name: files}`` (:func:`score_blob`, step 0); rows gain ``set``.

    With ``audio_dir`` the synthesised speech goes to ``<audio_dir>/<set>/<utterance>.wav``.
    """
    rows = []
    for name, files in sets.items():
        sub = None if audio_dir is None else Path(audio_dir) / name
        if sub is not None:
            sub.mkdir(parents=True, exist_ok=True)
        for r in score_blob(blob_path, files, step=0, sequences=0, audio_dir=sub,
                            use_dnsmos=use_dnsmos, **synth_options):
            rows.append({"set": name, **r})
    return rows


def voice_table(rows: list[dict], reference_dnsmos: dict | None = None, unseen_groups=()) -> list[dict]:
    """Rows of one model's scoring -> one dict per voice, each target marked met or not.

    A row belongs to set ``row["set"]`` when it has one, else ``"unseen"`` for a group in
    ``unseen_groups`` and ``"heldout"`` otherwise; voice = ``row["group"]``. Per voice:
    ``set``, ``voice``, ``utterances``, ``scored`` (rows without ``error``), the mean of each of
    :data:`VOICE_METRICS` over the scored rows with a finite value (None if none: e.g. GPE of
    a voice with no frame voiced in both), ``dnsmos_ref`` (mean of ``reference_dnsmos``
    ``{utterance: OVRL}`` over the voice's scored utterances) and ``dnsmos_diff`` (synthesis
    minus reference), ``met`` ``{target key: bool}`` (:data:`VOICE_TARGETS`; a missing value
    is not met) and ``all_met``. Order: held-out voices, then unseen, each as first seen.
    Refuses rows of several evaluations (steps).
    """
    if not rows:
        raise LpcnetError("voice_table: no scored rows")
    _check_rows(rows, ("group", "utterance"), "voice_table")
    steps = sorted({r.get("step") for r in rows}, key=str)
    if len(steps) > 1:
        raise LpcnetError(f"voice_table: rows of {len(steps)} evaluations (steps {steps[:5]}); "
                          "pass the rows of one model")
    unseen_groups = set(unseen_groups)

    def set_of(r):
        return r.get("set") or ("unseen" if r["group"] in unseen_groups else "heldout")

    keys = list(dict.fromkeys((set_of(r), r["group"]) for r in rows))
    keys.sort(key=lambda k: list(VOICE_SETS).index(k[0]) if k[0] in VOICE_SETS else len(VOICE_SETS))
    table = []
    for set_name, voice in keys:
        mine = [r for r in rows if set_of(r) == set_name and r["group"] == voice]
        ok = [r for r in mine if "error" not in r]
        entry = {"set": set_name, "voice": voice, "utterances": len(mine), "scored": len(ok)}
        means = summarize(ok)["all"]
        for m in VOICE_METRICS:
            entry[m] = means.get(m)
        ref = None
        if reference_dnsmos is not None:
            ref = _finite_mean(reference_dnsmos.get(r["utterance"]) for r in ok)
        entry["dnsmos_ref"] = ref
        entry["dnsmos_diff"] = (None if ref is None or entry["dnsmos_ovrl"] is None
                                else entry["dnsmos_ovrl"] - ref)
        entry["met"] = {}
        for key, (op, bound) in VOICE_TARGETS.items():
            v = entry[key]
            entry["met"][key] = v is not None and (v <= bound if op == "<=" else v >= bound)
        entry["all_met"] = all(entry["met"].values())
        table.append(entry)
    return table


def format_voice_table(table: list[dict]) -> str:
    """Markdown of :func:`voice_table`: one table per set under its heading; each target
    value marked ✓ (met) or ✗ (not met), a missing value shown as –."""

    def cell(entry, key, fmt):
        v = entry[key]
        text = "–" if v is None else format(v, fmt)
        if key in VOICE_TARGETS:
            text += " ✓" if entry["met"][key] else " ✗"
        return text

    head = ("| voice | utterances | GPE % (≤ 5) | features' GPE % | STOI (≥ 0.90) | PESQ-WB (≥ 2.0) "
            "| DNSMOS OVRL | recording's DNSMOS OVRL | difference (≥ −0.3) | f0 RMSE cents | targets |")
    out = []
    for set_name in list(dict.fromkeys(e["set"] for e in table)):
        mine = [e for e in table if e["set"] == set_name]
        out += [f"**{VOICE_SETS.get(set_name, set_name)}** "
                f"({sum(e['all_met'] for e in mine)} of {len(mine)} voices meet every target)", "",
                head, "|" + " --- |" * 11]
        for e in mine:
            missed = [k for k, ok in e["met"].items() if not ok]
            n = str(e["utterances"])
            if e["scored"] != e["utterances"]:
                n += f" ({e['scored']} scored)"
            out.append(f"| {e['voice']} | {n} | {cell(e, 'gpe_pct', '.1f')} "
                       f"| {cell(e, 'feature_gpe_pct', '.1f')} | {cell(e, 'stoi', '.3f')} "
                       f"| {cell(e, 'pesq_wb', '.2f')} | {cell(e, 'dnsmos_ovrl', '.2f')} "
                       f"| {cell(e, 'dnsmos_ref', '.2f')} | {cell(e, 'dnsmos_diff', '+.2f')} "
                       f"| {cell(e, 'f0_rmse_cents', '.0f')} "
                       f"| {'all met' if not missed else 'not met: ' + ', '.join(missed)} |")
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _cmd_voice_table(args) -> int:
    sets = {"heldout": eval_files(args.heldout)}
    if args.unseen:
        sets["unseen"] = eval_files(args.unseen)
    files = [f for fs in sets.values() for f in fs]
    names = [f.stem for f in files]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise LpcnetError(f"--heldout/--unseen: utterance names must be unique, repeated: {dup[:5]}")
    outputs = {f"--json {args.json}": args.json, f"--markdown {args.markdown}": args.markdown}
    if args.audio_dir is not None:
        outputs |= {f"--audio-dir {args.audio_dir}: {name}/{f.name}": Path(args.audio_dir) / name / f"{f.stem}.wav"
                    for name, fs in sets.items() for f in fs}
    check_outputs({f"blob {args.blob}": args.blob} | {f"audio {f}": f for f in files}, outputs)
    t0 = time.perf_counter()
    rows = score_voice_sets(args.blob, sets, use_dnsmos=not args.no_dnsmos, audio_dir=args.audio_dir,
                            int8=args.int8)
    refs = None if args.no_dnsmos else reference_dnsmos(files)
    table = voice_table(rows, refs)
    text = format_voice_table(table)
    doc = {"blob": str(args.blob), "int8": args.int8, "targets": VOICE_TARGETS,
           "scoring_s": round(time.perf_counter() - t0, 1), "voices": table,
           "reference_dnsmos": refs, "rows": rows}
    with atomic_output(args.json, "w") as f:
        json.dump(doc, f, indent=1)
    if args.markdown:
        with atomic_output(args.markdown, "w") as f:
            f.write(text)
    print(text, end="")
    return 0


def _cmd_compare_sampling(args) -> int:
    files = eval_files(args.files)
    check_outputs({f"blob {args.blob}": args.blob} | {f"--files {f}": f for f in files},
                  {f"--json {args.json}": args.json})
    rows = compare_sampling(args.blob, files, {"plain": {"int8": args.int8},
                                               "sharpen": {"int8": args.int8, "sharpen": True}},
                            seeds=tuple(args.seeds), use_dnsmos=not args.no_dnsmos)
    diffs = paired_differences(rows, "plain", "sharpen")
    with atomic_output(args.json, "w") as f:
        json.dump({"blob": str(args.blob), "int8": args.int8, "seeds": args.seeds,
                   "differences": diffs, "rows": rows}, f, indent=1)
    print(f"{len(files)} files x {len(args.seeds)} seeds; sharpen - plain, mean +- 95 % CI")
    print(f"{'metric':<16}{'plain':>9}{'sharpen':>9}{'difference':>20}")
    for m, d in diffs.items():
        print(f"{m:<16}{d['base']:9.3f}{d['other']:9.3f}{d['diff']:+12.3f} +- {d['ci95']:.3f}")
    return 0


def _cmd_score(args) -> int:
    model_dir = Path(args.model_dir)
    configs = sorted(model_dir.glob("*_config.json"))
    if not configs:
        raise LpcnetError(f"{model_dir}: no *_config.json (expected a training run folder)")
    expected = "the JSON config a training run writes, with train.steps_per_epoch and train.batch_size"
    try:
        config = json.loads(read_text(configs[0], str(configs[0]), expected))
    except json.JSONDecodeError as exc:
        raise LpcnetError(f"{configs[0]}: not JSON ({exc.msg} at line {exc.lineno}); expected {expected}") from None
    train = config.get("train") if isinstance(config, dict) else None
    try:
        steps_per_epoch, batch = int(train["steps_per_epoch"]), int(train["batch_size"])
    except (TypeError, KeyError, ValueError):
        raise LpcnetError(f"{configs[0]}: no whole train.steps_per_epoch and train.batch_size; "
                          f"expected {expected}") from None
    if steps_per_epoch < 1 or batch < 1:
        raise LpcnetError(f"{configs[0]}: train.steps_per_epoch {steps_per_epoch}, train.batch_size "
                          f"{batch}; expected whole numbers >= 1")
    prefix = configs[0].name[: -len("_config.json")]
    ckpts = []
    for c in model_dir.glob(f"{prefix}_*.keras"):
        if checkpoint_epoch(c) is None:          # e.g. a copy named <prefix>_<grua>_best.keras
            warnings.warn(f"skipped {c}: not <prefix>_<grua>_<epoch>.keras", LpcnetWarning, stacklevel=2)
        elif checkpoint_epoch(c) % args.every == 0:
            ckpts.append(c)
    ckpts.sort(key=checkpoint_epoch)
    files = eval_files(args.eval_audio)
    eval_dir = model_dir / EVAL_DIR
    outputs = {f"{eval_dir / ROWS_JSONL}": eval_dir / ROWS_JSONL, f"{eval_dir / ROWS_CSV}": eval_dir / ROWS_CSV}
    for c in ckpts:                               # the synthesised speech of each checkpoint
        step_dir = eval_dir / f"step_{checkpoint_epoch(c) * steps_per_epoch:07d}"
        outputs |= {str(step_dir / f"{f.stem}.wav"): step_dir / f"{f.stem}.wav" for f in files}
    check_outputs({f"--eval-audio {f}": f for f in files} | {f"checkpoint {c}": c for c in ckpts}
                  | {f"config {configs[0]}": configs[0]}, outputs)
    rows = score_checkpoints(ckpts, files, model_dir, steps_per_epoch=steps_per_epoch,
                             global_batch=batch * args.world_size, use_dnsmos=not args.no_dnsmos)
    for p in history(rows):
        print(f"step {p['step']:7d}  " + "  ".join(f"{m} {p[m]:.3f}" for m in TRACKED if m in p))
    return 0


def _cmd_loss_curve(args) -> int:
    events = sorted(Path(args.tensorboard_dir).glob("events.out.tfevents.*"))
    check_outputs({f"event file {f}": f for f in events}, {f"output {args.output}": args.output})
    rows = loss_curve(args.tensorboard_dir)
    with atomic_output(args.output, "w") as f:
        w = csv.DictWriter(f, fieldnames=["step", "loss", "sequences_per_s"])
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {args.output}: {len(rows)} steps")
    return 0


def main(argv=None) -> int:
    """``python -m lpcnet.train_eval score RUN_DIR --eval-audio WAV...`` | ``loss-curve TB_DIR OUT.csv``
    | ``voice-table BLOB --heldout DIR --unseen DIR --json OUT``
    | ``compare-sampling BLOB --files DIR... --json OUT``."""
    import argparse

    from lpcnet.argtypes import nonnegative_int, positive_int

    ap = argparse.ArgumentParser(prog="python -m lpcnet.train_eval",
                                 description="quality and loss curves of a training run")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sc = sub.add_parser("score", help="score a run's saved checkpoints on held-out speech")
    sc.add_argument("model_dir")
    sc.add_argument("--eval-audio", nargs="+", required=True, help="held-out wavs or folders")
    sc.add_argument("--every", type=positive_int, default=1, help="score every N-th checkpoint (default all)")
    sc.add_argument("--world-size", type=positive_int, default=1, help="Horovod processes of the run")
    sc.add_argument("--no-dnsmos", action="store_true")
    lc = sub.add_parser("loss-curve", help="the training loss per logged step, as CSV")
    lc.add_argument("tensorboard_dir")
    lc.add_argument("output")
    vt = sub.add_parser("voice-table", help="score a weight blob per voice (held-out prompts of "
                        "the training voices, unseen voices): JSON and a markdown table")
    vt.add_argument("blob", help="native weight blob (lpcnet export)")
    vt.add_argument("--heldout", nargs="+", required=True, help="training voices' held-out wavs or folders")
    vt.add_argument("--unseen", nargs="+", default=[], help="unseen voices' wavs or folders")
    vt.add_argument("--json", required=True, help="rows, per-voice table and reference DNSMOS")
    vt.add_argument("--markdown", help="also write the markdown table here")
    vt.add_argument("--audio-dir", help="write the synthesised speech here (<set>/<utterance>.wav)")
    vt.add_argument("--int8", action="store_true", help="int8 synthesis (blob exported with --int8)")
    vt.add_argument("--no-dnsmos", action="store_true")
    cs = sub.add_parser("compare-sampling", help="score a blob with and without --sharpen on the "
                        "same files and seeds: paired differences with 95 %% CIs")
    cs.add_argument("blob", help="native weight blob (lpcnet export)")
    cs.add_argument("--files", nargs="+", required=True, help="held-out wavs or folders")
    cs.add_argument("--seeds", nargs="+", type=nonnegative_int, default=[0, 1], help="sampling seeds (default 0 1)")
    cs.add_argument("--json", required=True, help="rows and differences")
    cs.add_argument("--int8", action="store_true", help="int8 synthesis (blob exported with --int8)")
    cs.add_argument("--no-dnsmos", action="store_true")
    args = ap.parse_args(argv)
    from lpcnet.cli import one_line_warnings

    try:
        with one_line_warnings("python -m lpcnet.train_eval"):
            return {"score": _cmd_score, "loss-curve": _cmd_loss_curve, "voice-table": _cmd_voice_table,
                    "compare-sampling": _cmd_compare_sampling}[args.cmd](args)
    except LpcnetError as exc:
        print(f"error: {exc}", file=__import__("sys").stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
