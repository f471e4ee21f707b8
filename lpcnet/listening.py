"""Listening tests (MOS and MUSHRA): plan, blind randomised sessions, results file, statistics.

The logic lives here, apart from any display, so it is tested without a browser;
:mod:`lpcnet.listening_ui` draws it with ipywidgets.

* **Plan**: conditions x utterances. Conditions are the reference, the anchors
  computed here (a 3.5 kHz low-pass of the reference, the MUSHRA low anchor of
  ITU-R BS.1534, and 8-bit µ-law quantisation of the reference) and any systems
  passed in (e.g. LPCNet copy-synthesis of one or more checkpoints) as arrays or
  wav paths. Audio is float32 in [-1, 1] at 16 kHz, shape ``(samples,)``.
* **MOS** (ITU-T P.800 absolute category rating): one trial per stimulus, rated
  1 (bad) .. 5 (excellent).
* **MUSHRA** (ITU-R BS.1534): one trial per utterance; the open reference plus
  every condition (hidden reference and anchors included) behind blind letters,
  each rated 0..100.
* **Sessions**: per-listener order drawn from ``(seed, listener)``; every answer
  rewrites the listener's JSON-lines file atomically (temp file + rename), so a
  crash loses at most the current trial; reopening the same file resumes at the
  first unanswered trial. The file is a log: re-answering a trial (after *back*)
  appends a record, and the last record of a trial wins in the summary.
* **Statistics**: mean per condition with a t-based 95 % confidence interval
  (bootstrap optional); MUSHRA post-screening excludes listeners who rate the
  hidden reference below 90 in more than 15 % of their trials.
"""

from __future__ import annotations

import json
import re
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lpcnet.errors import LpcnetError
from lpcnet.formats import SAMPLE_RATE, atomic_output, lin2ulaw, ulaw2lin

REFERENCE = "reference"
LOWPASS_ANCHOR = "anchor_lp3500"
ULAW_ANCHOR = "anchor_ulaw8"
KINDS = ("mos", "mushra")

#: ACR scale of ITU-T P.800 (value -> label).
MOS_LABELS = {5: "Excellent", 4: "Good", 3: "Fair", 2: "Poor", 1: "Bad"}
#: MUSHRA scale bands of ITU-R BS.1534 (lower bound -> label).
MUSHRA_BANDS = {80: "Excellent", 60: "Good", 40: "Fair", 20: "Poor", 0: "Bad"}

#: Known degradation (0 = transparent .. 1 = worst) used by the simulated listener;
#: conditions not listed (e.g. LPCNet checkpoints) get ``DEFAULT_DEGRADATION``.
DEGRADATION = {REFERENCE: 0.0, ULAW_ANCHOR: 0.35, LOWPASS_ANCHOR: 0.6}
DEFAULT_DEGRADATION = 0.3
_LISTENER_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


# --- anchors ---------------------------------------------------------------------------------
def lowpass_anchor(x, cutoff_hz: float = 3500.0, rate: int = SAMPLE_RATE) -> np.ndarray:
    """BS.1534 low anchor: ``(samples,)`` float -> zero-phase 8th-order Butterworth low-pass."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(8, cutoff_hz, btype="low", fs=rate, output="sos")
    return sosfiltfilt(sos, np.asarray(x, np.float64)).astype(np.float32)


def ulaw_anchor(x) -> np.ndarray:
    """8-bit µ-law quantisation (spec A.6, via lpcnet.formats) of float speech in [-1, 1]."""
    codes = lin2ulaw(np.asarray(x, np.float64) * 32768.0)
    return (ulaw2lin(codes) / 32768.0).astype(np.float32)


def as_audio(source, name: str = "audio") -> np.ndarray:
    """A wav path, int16 array (int16 scale) or float array -> ``(samples,)`` float32 in [-1, 1]."""
    if isinstance(source, (str, Path)):
        from lpcnet.audio import load_speech

        x, _ = load_speech(source)
        return np.asarray(x, np.float32)
    x = np.asarray(source)
    if x.ndim != 1 or len(x) == 0:
        raise LpcnetError(f"{name}: expected mono audio of shape (samples>0,), got {x.shape}")
    if np.issubdtype(x.dtype, np.integer):
        return (x.astype(np.float32) / 32768.0)
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise LpcnetError(f"{name}: audio holds NaN or Inf")
    return x


# --- plan ------------------------------------------------------------------------------------
@dataclass
class TestPlan:
    """Conditions x utterances. ``audio[(utterance, condition)]`` is float32 ``(samples,)``."""

    utterances: list
    conditions: list
    audio: dict
    degradation: dict = field(default_factory=dict)
    rate: int = SAMPLE_RATE
    reference: str = REFERENCE
    low_anchor: str | None = LOWPASS_ANCHOR

    def stimulus(self, utterance: str, condition: str) -> np.ndarray:
        return self.audio[(utterance, condition)]


def build_plan(references: dict, systems: dict | None = None, anchors: bool = True,
               degradation: dict | None = None) -> TestPlan:
    """Build a plan from ``{utterance: ref}`` and ``{condition: {utterance: audio}}``.

    Audio items are wav paths or arrays (int16 or float in [-1, 1], 16 kHz). Every
    stimulus of an utterance is cut to the shortest of them, so MUSHRA items have
    equal length. Anchors (3.5 kHz low-pass, 8-bit µ-law) are added when ``anchors``.
    ``degradation`` ({condition: 0..1}) overrides the simulated listener's defaults.
    """
    if not references:
        raise LpcnetError("a listening test needs at least one reference utterance")
    systems = dict(systems or {})
    for name in systems:
        if name in (REFERENCE, LOWPASS_ANCHOR, ULAW_ANCHOR):
            raise LpcnetError(f"condition name '{name}' is reserved")
        missing = set(references) - set(systems[name])
        if missing:
            raise LpcnetError(f"condition '{name}' lacks utterance(s) {sorted(missing)}")
    conditions = [REFERENCE] + ([LOWPASS_ANCHOR, ULAW_ANCHOR] if anchors else []) + list(systems)
    audio = {}
    for utt, src in references.items():
        ref = as_audio(src, f"{utt}/{REFERENCE}")
        items = {REFERENCE: ref}
        if anchors:
            items[LOWPASS_ANCHOR] = lowpass_anchor(ref)
            items[ULAW_ANCHOR] = ulaw_anchor(ref)
        for name, by_utt in systems.items():
            items[name] = as_audio(by_utt[utt], f"{utt}/{name}")
        n = min(len(v) for v in items.values())
        for cond, x in items.items():
            audio[(utt, cond)] = x[:n]
    known = {**DEGRADATION, **(degradation or {})}
    unknown = set(degradation or {}) - set(conditions)
    if unknown:
        raise LpcnetError(f"degradation given for unknown condition(s) {sorted(unknown)}")
    degradation = {c: float(known.get(c, DEFAULT_DEGRADATION)) for c in conditions}
    return TestPlan(list(references), conditions, audio, degradation,
                    low_anchor=LOWPASS_ANCHOR if anchors else None)


# --- trials and order --------------------------------------------------------------------------
def listener_rng(seed: int, listener: str) -> np.random.Generator:
    """Deterministic generator per (seed, listener): same pair -> same order."""
    return np.random.default_rng([int(seed), zlib.crc32(listener.encode())])


def make_trials(plan: TestPlan, kind: str, seed: int, listener: str) -> list[dict]:
    """Blind randomised trial list for one listener.

    MOS: ``{"id", "utterance", "condition"}`` per stimulus. MUSHRA: one per utterance,
    ``{"id", "utterance", "slots": [condition, ...]}`` where slot i is shown as letter i.
    """
    rng = listener_rng(seed, listener)
    if kind == "mos":
        trials = [{"id": f"{u}|{c}", "utterance": u, "condition": c}
                  for u in plan.utterances for c in plan.conditions]
        return [trials[i] for i in rng.permutation(len(trials))]
    if kind == "mushra":
        trials = []
        for u in (plan.utterances[i] for i in rng.permutation(len(plan.utterances))):
            slots = [plan.conditions[i] for i in rng.permutation(len(plan.conditions))]
            trials.append({"id": u, "utterance": u, "slots": slots})
        return trials
    raise LpcnetError(f"unknown test kind '{kind}' (expected one of {', '.join(KINDS)})")


def slot_label(i: int) -> str:
    """Blind label of MUSHRA slot i: A, B, C, ..."""
    return chr(ord("A") + i)


# --- session (state machine) -------------------------------------------------------------------
def results_path(directory, kind: str, listener: str) -> Path:
    """``directory/<kind>_<listener>.jsonl``."""
    return Path(directory) / f"{kind}_{listener}.jsonl"


def read_records(path) -> list[dict]:
    """Read a results JSON-lines file -> list of records (missing file -> [])."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise LpcnetError(f"{path}: line {n} is not valid JSON (corrupt results file?)") from None
    return records


class ListeningSession:
    """One listener's MOS or MUSHRA session: order, navigation, answers, resume.

    ``index`` is the trial on screen (0-based); ``answers`` maps trial id -> the last
    answer (MOS: int 1..5; MUSHRA: ``{condition: 0..100}``).
    """

    def __init__(self, plan: TestPlan, kind: str, listener: str, directory, seed: int = 0):
        if kind not in KINDS:
            raise LpcnetError(f"unknown test kind '{kind}' (expected one of {', '.join(KINDS)})")
        if not _LISTENER_RE.match(listener or ""):
            raise LpcnetError(f"listener id '{listener}' must be 1-64 of letters, digits, _ . -")
        self.plan, self.kind, self.listener, self.seed = plan, kind, listener, int(seed)
        self.path = results_path(directory, kind, listener)
        self.trials = make_trials(plan, kind, self.seed, listener)
        self._by_id = {t["id"]: t for t in self.trials}
        self.records = read_records(self.path)
        self.answers = {}
        for r in self.records:
            if r.get("seed") != self.seed:
                raise LpcnetError(f"{self.path}: was recorded with seed {r.get('seed')}, "
                                  f"not {self.seed} (use the same seed to resume)")
            if r.get("trial_id") not in self._by_id:
                raise LpcnetError(f"{self.path}: trial '{r.get('trial_id')}' is not in this "
                                  f"test plan (different conditions or utterances?)")
            self.answers[r["trial_id"]] = r["rating"] if kind == "mos" else r["ratings"]
        self.index = self.first_unanswered()

    # navigation
    @property
    def n_trials(self) -> int:
        return len(self.trials)

    @property
    def done(self) -> bool:
        return len(self.answers) == self.n_trials

    @property
    def finished(self) -> bool:
        """True when the navigation has moved past the last trial."""
        return self.index >= self.n_trials

    @property
    def current(self) -> dict | None:
        return None if self.finished else self.trials[self.index]

    def first_unanswered(self) -> int:
        return next((i for i, t in enumerate(self.trials) if t["id"] not in self.answers),
                    self.n_trials)

    def progress(self) -> str:
        if self.finished:
            return f"done: {len(self.answers)} of {self.n_trials} trials answered"
        return f"trial {self.index + 1} of {self.n_trials}"

    def back(self) -> None:
        self.index = max(0, self.index - 1)

    def next(self) -> None:
        """Move on; refuses to leave an unanswered trial."""
        if self.finished:
            return
        if self.trials[self.index]["id"] not in self.answers:
            raise LpcnetError(f"{self.progress()} is not answered yet")
        self.index += 1

    def current_answer(self):
        """Earlier answer of the trial on screen (None when not answered)."""
        t = self.current
        return None if t is None else self.answers.get(t["id"])

    def stimuli(self, trial: dict | None = None) -> list[tuple[str, np.ndarray]]:
        """Blind ``(label, audio)`` list of a trial: MOS one item; MUSHRA ref + lettered slots."""
        t = trial or self.current
        if self.kind == "mos":
            return [("Sample", self.plan.stimulus(t["utterance"], t["condition"]))]
        items = [("Reference", self.plan.stimulus(t["utterance"], self.plan.reference))]
        items += [(slot_label(i), self.plan.stimulus(t["utterance"], c))
                  for i, c in enumerate(t["slots"])]
        return items

    # answers
    def answer(self, rating) -> dict:
        """Record the answer of the trial on screen and save the file atomically.

        MOS: an int 1..5. MUSHRA: a sequence of 0..100 per slot (in slot order) or a
        ``{condition: score}`` dict. Returns the record written.
        """
        t = self.current
        if t is None:
            raise LpcnetError("the session is finished: no trial to answer")
        record = {"listener": self.listener, "kind": self.kind, "seed": self.seed,
                  "trial": self.index, "trial_id": t["id"], "utterance": t["utterance"],
                  "time": round(time.time(), 3)}
        if self.kind == "mos":
            if not _is_mos_rating(rating):
                raise LpcnetError(f"MOS rating must be an integer 1..5, got {rating!r}")
            record.update(condition=t["condition"], rating=int(rating))
            value = int(rating)
        else:
            if isinstance(rating, dict):
                if set(rating) != set(t["slots"]):
                    raise LpcnetError(f"MUSHRA ratings must cover conditions {sorted(t['slots'])}")
                rating = [rating[c] for c in t["slots"]]
            rating = list(rating)
            if len(rating) != len(t["slots"]):
                raise LpcnetError(f"MUSHRA needs {len(t['slots'])} ratings, got {len(rating)}")
            try:
                value = {c: float(r) for c, r in zip(t["slots"], rating)}
            except (TypeError, ValueError):
                raise LpcnetError(f"MUSHRA ratings must be numbers 0..100, got {rating}") from None
            if any(not 0 <= v <= 100 for v in value.values()):
                raise LpcnetError(f"MUSHRA ratings must lie in 0..100, got {value}")
            record.update(slots=t["slots"], ratings=value)
        self._save(self.records + [record])
        self.records.append(record)
        self.answers[t["id"]] = value
        return record

    def _save(self, records: list[dict]) -> None:
        with atomic_output(self.path, "w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")


def _is_mos_rating(rating) -> bool:
    if isinstance(rating, (bool, str)):
        return False
    try:
        return float(rating) == int(rating) and 1 <= int(rating) <= 5
    except (TypeError, ValueError):
        return False


# --- simulated listener ------------------------------------------------------------------------
def simulated_rating(kind: str, degradation: float, rng: np.random.Generator,
                     bias: float = 0.0, noise: float = 1.0, careless: bool = False):
    """One rating of a stimulus with known ``degradation`` (0..1).

    MOS: ``round(1 + 4 (1 - d) + bias + N(0, 0.4 noise))`` in 1..5; MUSHRA:
    ``100 (1 - d) + 20 bias + N(0, 6 noise)`` in 0..100 (the hidden reference, d = 0:
    ``100 - |N(0, 3 noise)|``). A careless listener answers
    uniformly at random.
    """
    if kind == "mos":
        if careless:
            return int(rng.integers(1, 6))
        return int(np.clip(np.round(1 + 4 * (1 - degradation) + bias
                                    + rng.normal(0, 0.4 * noise)), 1, 5))
    if careless:
        return float(rng.integers(0, 101))
    if degradation == 0:            # the hidden reference is recognised: close to 100
        return float(np.clip(np.round(100 - abs(rng.normal(0, 3 * noise))), 0, 100))
    return float(np.clip(np.round(100 * (1 - degradation) + 20 * bias
                                  + rng.normal(0, 6 * noise)), 0, 100))


def simulate_listener(session: ListeningSession, seed: int = 0, noise: float = 1.0,
                      careless: bool = False, max_trials: int | None = None) -> int:
    """Answer the session's remaining trials like a listener who hears the known degradation.

    Drives the same state machine as the UI (``answer`` then ``next``); returns the
    number of trials answered. ``max_trials`` stops early (to simulate a closed tab).
    """
    rng = np.random.default_rng([int(seed), zlib.crc32(session.listener.encode())])
    bias = 0.0 if careless else float(rng.normal(0, 0.15))
    n = 0
    while not session.finished and (max_trials is None or n < max_trials):
        t = session.current
        d = session.plan.degradation
        if session.kind == "mos":
            session.answer(simulated_rating("mos", d[t["condition"]], rng, bias, noise, careless))
        else:
            session.answer([simulated_rating("mushra", d[c], rng, bias, noise, careless)
                            for c in t["slots"]])
        session.next()
        n += 1
    return n


# --- results and statistics --------------------------------------------------------------------
def load_results(directory, kind: str) -> list[dict]:
    """Last answer per (listener, trial) from every ``<kind>_*.jsonl`` file in ``directory``."""
    latest = {}
    for path in sorted(Path(directory).glob(f"{kind}_*.jsonl")):
        for r in read_records(path):
            if r.get("kind") == kind:
                latest[(r["listener"], r["trial_id"])] = r
    return list(latest.values())


def mos_scores(records: list[dict]) -> dict[str, list[float]]:
    """MOS records -> ``{condition: [rating, ...]}``."""
    out = {}
    for r in records:
        out.setdefault(r["condition"], []).append(float(r["rating"]))
    return out


def mushra_post_screening(records: list[dict], reference: str = REFERENCE, threshold: float = 90.0,
                          max_fraction: float = 0.15) -> tuple[list[str], dict[str, float]]:
    """BS.1534 post-screening -> ``(kept listeners, {excluded listener: fraction of trials})``.

    A listener is excluded when the hidden reference is rated below ``threshold`` in
    more than ``max_fraction`` of that listener's trials.
    """
    low, total = {}, {}
    for r in records:
        who = r["listener"]
        total[who] = total.get(who, 0) + 1
        low[who] = low.get(who, 0) + (r["ratings"].get(reference, 100.0) < threshold)
    fractions = {w: low[w] / total[w] for w in total}
    kept = sorted(w for w, f in fractions.items() if f <= max_fraction)
    return kept, {w: f for w, f in sorted(fractions.items()) if f > max_fraction}


def mushra_scores(records: list[dict], listeners=None) -> dict[str, list[float]]:
    """MUSHRA records (optionally only ``listeners``) -> ``{condition: [score, ...]}``."""
    out = {}
    for r in records:
        if listeners is None or r["listener"] in listeners:
            for c, v in r["ratings"].items():
                out.setdefault(c, []).append(float(v))
    return out


def mean_ci(values, confidence: float = 0.95, bootstrap: int = 0, seed: int = 0):
    """Mean and confidence interval ``(mean, low, high)`` of 1-D ``values``.

    t-based (Student, n-1 degrees of freedom) by default; with ``bootstrap`` > 0 the
    percentile interval of that many resampled means. n = 1 gives a NaN interval.
    """
    from scipy import stats

    x = np.asarray(values, np.float64)
    if x.size == 0:
        raise LpcnetError("no ratings to summarise")
    m = float(x.mean())
    if x.size < 2:
        return m, float("nan"), float("nan")
    if bootstrap:
        rng = np.random.default_rng(seed)
        means = x[rng.integers(0, x.size, size=(bootstrap, x.size))].mean(axis=1)
        a = (1 - confidence) / 2
        return m, float(np.quantile(means, a)), float(np.quantile(means, 1 - a))
    half = stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return m, m - float(half), m + float(half)


def summarize(scores: dict[str, list[float]], order=None, bootstrap: int = 0) -> list[dict]:
    """``{condition: ratings}`` -> rows ``{condition, n, mean, std, ci_low, ci_high}``."""
    rows = []
    for c in (order or list(scores)):
        if c not in scores:
            continue
        x = np.asarray(scores[c], np.float64)
        m, lo, hi = mean_ci(x, bootstrap=bootstrap)
        rows.append({"condition": c, "n": int(x.size), "mean": m,
                     "std": float(x.std(ddof=1)) if x.size > 1 else float("nan"),
                     "ci_low": lo, "ci_high": hi})
    return rows


def format_summary(rows: list[dict], title: str = "") -> str:
    """Plain-text table of :func:`summarize` rows (mean and 95 % CI)."""
    lines = [title] if title else []
    lines.append(f"{'condition':24s} {'n':>4s} {'mean':>7s} {'95% CI':>17s}")
    for r in rows:
        lines.append(f"{r['condition']:24s} {r['n']:4d} {r['mean']:7.2f} "
                     f"[{r['ci_low']:6.2f}, {r['ci_high']:6.2f}]")
    return "\n".join(lines)


def plot_summary(rows: list[dict], kind: str = "mos", title: str | None = None):
    """Mean per condition with 95 % CI error bars -> matplotlib Figure."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(4.0, 1.2 * len(rows) + 1.5), 3.2), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    means = np.array([r["mean"] for r in rows])
    err = np.array([[r["mean"] - r["ci_low"] for r in rows], [r["ci_high"] - r["mean"] for r in rows]])
    ax.bar(x, means, color="#9ab7d3", edgecolor="#3b5b7a")
    ax.errorbar(x, means, yerr=np.nan_to_num(err), fmt="none", ecolor="k", capsize=4)
    ax.set_xticks(x, [r["condition"] for r in rows], rotation=20, ha="right")
    if kind == "mos":
        ax.set(ylim=(1, 5), ylabel="MOS (ACR 1-5)")
    else:
        ax.set(ylim=(0, 100), ylabel="MUSHRA score (0-100)")
    ax.set_title(title or f"{kind.upper()}: mean and 95% confidence interval")
    ax.grid(axis="y", alpha=0.3)
    return fig


def summarize_results(directory, kind: str, order=None, bootstrap: int = 0) -> tuple[list[dict], dict]:
    """All listeners' results in ``directory`` -> ``(summary rows, excluded listeners)``.

    MUSHRA results go through :func:`mushra_post_screening` first; MOS has no exclusion.
    """
    records = load_results(directory, kind)
    if not records:
        raise LpcnetError(f"{directory}: no {kind} results yet")
    if kind == "mos":
        return summarize(mos_scores(records), order, bootstrap), {}
    kept, excluded = mushra_post_screening(records)
    if not kept:
        raise LpcnetError(f"{directory}: every MUSHRA listener failed the post-screening")
    return summarize(mushra_scores(records, kept), order, bootstrap), excluded
