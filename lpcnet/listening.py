"""Listening tests (MOS and MUSHRA): held-out stimuli, blind keys, randomised sessions.

The logic lives here, apart from any display, so it is tested without a browser;
:mod:`lpcnet.listening_ui` draws it with ipywidgets and :mod:`lpcnet.listening_results`
aggregates the saved sessions (means, 95 % intervals, MUSHRA post-screening, CSV).

* **Plan**: conditions x utterances. Conditions are the reference, the anchors
  computed here (a 3.5 kHz low-pass of the reference, the MUSHRA low anchor of
  ITU-R BS.1534, and 8-bit µ-law quantisation of the reference) and any systems
  passed in (e.g. LPCNet copy-synthesis) as arrays or wav paths. Audio is float32
  in [-1, 1] at 16 kHz, shape ``(samples,)``. :func:`heldout_speech` lists the kit's
  held-out utterances (two unseen CMU ARCTIC speakers, held-out Asterisk prompts).
* **MOS** (ITU-T P.800 absolute category rating): one trial per stimulus, 1 (bad) .. 5.
* **MUSHRA** (ITU-R BS.1534-3): one trial per utterance; the open reference plus every
  condition (hidden reference and anchors included) behind blind letters, 0..100 each.
* **Test folder** (``test_dir``): ``sessions/<kind>_<listener>.jsonl`` holds the answers
  with conditions as blind keys only; ``conditions.json`` beside it maps keys to names
  (a random secret per folder), so a listener looking at the session files learns
  nothing about which sample is which.
* **Sessions**: per-listener order drawn from ``(seed, listener)``; a sample must be
  played before it can be rated (MUSHRA: every lettered sample, and every slider
  moved); every answer rewrites the listener's file atomically (temp file + rename),
  so a crash loses at most the current trial, and reopening the same file resumes at
  the first unanswered trial. Re-answering a trial (after *back*) appends a record;
  the last record of a trial counts.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lpcnet.argtypes import check_whole
from lpcnet.errors import LpcnetError
from lpcnet.formats import SAMPLE_RATE, atomic_output, lin2ulaw, read_text, ulaw2lin

REFERENCE = "reference"
LOWPASS_ANCHOR = "anchor_lp3500"
ULAW_ANCHOR = "anchor_ulaw8"
KINDS = ("mos", "mushra")
SESSIONS = "sessions"           # listener-visible part of a test folder
KEY_FILE = "conditions.json"    # blind key -> condition name, beside (not inside) sessions/

#: ACR scale of ITU-T P.800 (value -> label).
MOS_LABELS = {5: "Excellent", 4: "Good", 3: "Fair", 2: "Poor", 1: "Bad"}
#: MUSHRA scale bands of ITU-R BS.1534 (lower bound -> label).
MUSHRA_BANDS = {80: "Excellent", 60: "Good", 40: "Fair", 20: "Poor", 0: "Bad"}

#: Assumed degradation (0 = transparent .. 1 = worst) from which the *simulated*
#: listener rates; conditions not listed (e.g. LPCNet) get ``DEFAULT_DEGRADATION``.
#: Made-up numbers for demonstrating the analysis, not measurements.
DEGRADATION = {REFERENCE: 0.0, ULAW_ANCHOR: 0.35, LOWPASS_ANCHOR: 0.6}
DEFAULT_DEGRADATION = 0.3
_LISTENER_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


# --- held-out speech ---------------------------------------------------------------------------
def heldout_speech(n_prompts: int | None = None) -> dict[str, Path]:
    """The demo model's held-out speech -> ``{utterance id: path}``, unseen speakers first.

    CMU ARCTIC ``arctic_a0007`` (male) and ``arctic_a0009`` (female) from the bundled
    slice (``$LPCNET_SLICE_DIR``), then the Asterisk prompts of
    ``models/demo/heldout_prompts.txt`` (Allison, the training voice, prompts kept out of
    training), the first ``n_prompts`` of them (all when None). The prompts come from
    the Debian package ``asterisk-core-sounds-en-g722`` that ``run_scripts/setup.sh``
    installs (``$LPCNET_ASTERISK_DIR``).
    """
    from lpcnet.demo import ASTERISK_EN, DEMO_MODEL_DIR, SLICE_DIR

    if n_prompts is not None:
        check_whole(n_prompts, "n_prompts", minimum=0)
    out = {}
    for name in ("arctic_a0007", "arctic_a0009"):
        out[name] = SLICE_DIR / f"{name}.wav"
    listed = DEMO_MODEL_DIR / "heldout_prompts.txt"
    prompts = listed.read_text().split()
    for rel in prompts[:n_prompts] if n_prompts is not None else prompts:
        out["allison_" + Path(rel).with_suffix("").as_posix().replace("/", "_")] = ASTERISK_EN / rel
    for utt, path in out.items():
        if not path.is_file():
            hint = (" (apt-get install asterisk-core-sounds-en-g722; run_scripts/setup.sh does)"
                    if utt.startswith("allison_") else "")
            raise LpcnetError(f"{path}: held-out utterance '{utt}' not found{hint}")
    return out


def default_test_dir(name: str) -> Path:
    """Folder of a listening test, outside the repository and the notebook tree.

    ``$LPCNET_LISTENING_DIR/<name>``, else ``$XDG_DATA_HOME/lpcnet-kit/listening/<name>``
    (``~/.local/share/...``): it persists across kernel restarts so listeners resume.
    ``name`` is one folder name (no ``/``, not ``..``), so the test stays inside that base.
    """
    if not isinstance(name, str) or not _LISTENER_RE.fullmatch(name) or name in (".", ".."):
        raise LpcnetError(f"listening test name {name!r}: expected one folder name of 1-64 "
                          f"letters, digits, _ . - (not a path)")
    base = os.environ.get("LPCNET_LISTENING_DIR")
    if not base:
        data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
        base = Path(data) / "lpcnet-kit" / "listening"
    return Path(base) / name


# --- anchors -----------------------------------------------------------------------------------
def lowpass_anchor(x, cutoff_hz: float = 3500.0, rate: int = SAMPLE_RATE) -> np.ndarray:
    """BS.1534 low anchor: ``(samples,)`` float -> zero-phase 8th-order Butterworth low-pass."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(8, cutoff_hz, btype="low", fs=rate, output="sos")
    x = np.asarray(x, np.float64)
    try:
        return sosfiltfilt(sos, x).astype(np.float32)
    except ValueError:      # zero-phase filtering pads both ends: too few samples for that
        raise LpcnetError(f"audio of {x.size} sample(s) is too short for the zero-phase "
                          f"{cutoff_hz:.0f} Hz low-pass anchor (expected speech, seconds long)") from None


def ulaw_anchor(x) -> np.ndarray:
    """8-bit µ-law quantisation (docs/formats.md, via lpcnet.formats) of float speech in [-1, 1]."""
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
        if x.min() < -32768 or x.max() > 32767:
            raise LpcnetError(f"{name}: integer audio must be int16 samples (-32768..32767), "
                              f"got values {x.min()}..{x.max()}")
        return (x.astype(np.float32) / 32768.0)
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise LpcnetError(f"{name}: audio holds NaN or Inf")
    peak = float(np.max(np.abs(x)))
    if peak > 1.0:
        raise LpcnetError(f"{name}: float audio must lie in [-1, 1] (full scale), got a peak of "
                          f"{peak:.4g} (int16-scale samples? pass them as an int16 array)")
    return x


# --- plan --------------------------------------------------------------------------------------
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
               degradation: dict | None = None, level_db: float | None = None) -> TestPlan:
    """Build a plan from ``{utterance: ref}`` and ``{condition: {utterance: audio}}``.

    Audio items are wav paths or arrays (int16 or float in [-1, 1], 16 kHz). Every
    stimulus of an utterance is cut to the shortest of them, so MUSHRA items have
    equal length. Anchors (3.5 kHz low-pass, 8-bit µ-law) are added when ``anchors``.
    ``level_db`` (dBFS RMS, e.g. -26) scales all stimuli of an utterance by one gain so
    every reference has that level (peaks kept below 0.99), making utterances of
    different recordings equally loud while each trial keeps its relative levels.
    ``degradation`` ({condition: 0..1}) overrides the simulated listener's assumptions.
    """
    if not references:
        raise LpcnetError("a listening test needs at least one reference utterance")
    if level_db is not None and not (isinstance(level_db, (int, float, np.number))
                                     and math.isfinite(level_db)):
        raise LpcnetError(f"level_db: expected a finite level in dBFS (e.g. -26), got {level_db!r}")
    systems = dict(systems or {})
    for name in systems:
        if name in (REFERENCE, LOWPASS_ANCHOR, ULAW_ANCHOR):
            raise LpcnetError(f"condition name '{name}' is reserved")
        missing = set(references) - set(systems[name])
        if missing:
            raise LpcnetError(f"condition '{name}' lacks utterance(s) {sorted(missing)}")
    conditions = [REFERENCE] + ([LOWPASS_ANCHOR, ULAW_ANCHOR] if anchors else []) + list(systems)
    unknown = set(degradation or {}) - set(conditions)
    if unknown:
        raise LpcnetError(f"degradation given for unknown condition(s) {sorted(unknown)}")
    audio = {}
    for utt, src in references.items():
        ref = as_audio(src, f"{utt}/{REFERENCE}")
        items = {REFERENCE: ref}
        if anchors:
            try:
                items[LOWPASS_ANCHOR] = lowpass_anchor(ref)
            except LpcnetError as exc:
                raise LpcnetError(f"{utt}/{REFERENCE}: {exc}") from None
            items[ULAW_ANCHOR] = ulaw_anchor(ref)
        for name, by_utt in systems.items():
            items[name] = as_audio(by_utt[utt], f"{utt}/{name}")
        n = min(len(v) for v in items.values())
        gain = 1.0
        if level_db is not None:
            rms = float(np.sqrt(np.mean(np.square(ref[:n], dtype=np.float64))))
            if rms == 0:
                raise LpcnetError(f"{utt}: the reference is silent, cannot set its level")
            peak = max(float(np.max(np.abs(x[:n]))) for x in items.values())
            gain = min(10 ** (level_db / 20) / rms, 0.99 / peak)
        for cond, x in items.items():
            audio[(utt, cond)] = (x[:n] * gain).astype(np.float32) if gain != 1.0 else x[:n]
    known = {**DEGRADATION, **(degradation or {})}
    degradation = {c: float(known.get(c, DEFAULT_DEGRADATION)) for c in conditions}
    return TestPlan(list(references), conditions, audio, degradation,
                    low_anchor=LOWPASS_ANCHOR if anchors else None)


# --- blind condition keys ----------------------------------------------------------------------
@dataclass(frozen=True)
class ConditionKeys:
    """Blind keys of condition names for one test folder (``test_dir/conditions.json``).

    key = first 12 hex digits of sha256(secret + ":" + name), secret random per folder;
    ``key_id`` (a hash of the secret) is written into every record, so a session file
    made with another key file is recognised.
    """

    path: Path
    key_id: str
    by_name: dict

    @classmethod
    def open(cls, test_dir, conditions=()) -> "ConditionKeys":
        """Read the key file, adding ``conditions`` not in it yet (created when missing)."""
        path = Path(test_dir) / KEY_FILE
        if path.exists():
            text = read_text(path, str(path), "a condition key file (JSON with 'secret' and 'keys')")
            try:
                data = json.loads(text)
                secret, by_name = str(data["secret"]), dict(data["keys"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                raise LpcnetError(f"{path}: not a condition key file (expected JSON with "
                                  f"'secret' and 'keys')") from None
        elif conditions:
            secret, by_name = secrets.token_hex(16), {}
        else:
            raise LpcnetError(f"{path}: missing (the condition key file of a listening-test "
                              f"folder; it is written when the first session opens)")
        new = [c for c in conditions if c not in by_name]
        for c in new:
            by_name[c] = hashlib.sha256(f"{secret}:{c}".encode()).hexdigest()[:12]
        if new:
            with atomic_output(path, "w") as f:
                json.dump({"secret": secret, "keys": by_name}, f, indent=1)
        return cls(path, hashlib.sha256(secret.encode()).hexdigest()[:8], by_name)

    def key(self, name: str) -> str:
        return self.by_name[name]

    def name(self, key: str, where="") -> str:
        for n, k in self.by_name.items():
            if k == key:
                return n
        raise LpcnetError(f"{where or self.path}: condition key '{key}' is not in {self.path}")


# --- trials and order --------------------------------------------------------------------------
def listener_rng(seed: int, listener: str) -> np.random.Generator:
    """Deterministic generator per (seed, listener): same pair -> same order."""
    return np.random.default_rng([int(seed), zlib.crc32(listener.encode())])


def make_trials(plan: TestPlan, kind: str, seed: int, listener: str,
                keys: dict | None = None) -> list[dict]:
    """Blind randomised trial list for one listener, conditions as ``keys[name]``.

    MOS: ``{"id", "utterance", "condition"}`` per stimulus. MUSHRA: one per utterance,
    ``{"id", "utterance", "slots": [condition, ...]}`` where slot i is shown as letter i.
    ``keys`` maps names to blind keys (identity when None).
    """
    keys = keys or {c: c for c in plan.conditions}
    rng = listener_rng(seed, listener)
    if kind == "mos":
        trials = [{"id": f"{u}|{keys[c]}", "utterance": u, "condition": keys[c]}
                  for u in plan.utterances for c in plan.conditions]
        return [trials[i] for i in rng.permutation(len(trials))]
    if kind == "mushra":
        trials = []
        for u in (plan.utterances[i] for i in rng.permutation(len(plan.utterances))):
            slots = [keys[plan.conditions[i]] for i in rng.permutation(len(plan.conditions))]
            trials.append({"id": u, "utterance": u, "slots": slots})
        return trials
    raise LpcnetError(f"unknown test kind '{kind}' (expected one of {', '.join(KINDS)})")


def slot_label(i: int) -> str:
    """Blind label of MUSHRA slot i: A, B, C, ..."""
    return chr(ord("A") + i)


# --- session (state machine) -------------------------------------------------------------------
def session_path(test_dir, kind: str, listener: str) -> Path:
    """``test_dir/sessions/<kind>_<listener>.jsonl``."""
    return Path(test_dir) / SESSIONS / f"{kind}_{listener}.jsonl"


def session_listener(path, kind: str) -> str:
    """Listener named by a session file's name ``<kind>_<listener>.jsonl``."""
    return Path(path).name[len(kind) + 1:-len(".jsonl")]


def _is_text(v) -> bool:
    return isinstance(v, str) and v != ""


def _is_score(v, low: float, high: float) -> bool:
    """A finite number (not a bool) within low..high."""
    return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            and low <= v <= high)


def record_problem(r, kind: str, listener: str) -> str | None:
    """What is wrong with one session record of ``kind`` in ``listener``'s file (None: nothing).

    The record layout is the one :meth:`ListeningSession.answer` writes (docs/listening.md,
    Session files): MOS ratings are integers 1..5, MUSHRA scores numbers 0..100, one per slot.
    """
    if not isinstance(r, dict):
        return f"expected a JSON object (a session record), got {type(r).__name__}"
    for key, ok, what in (("kind", lambda v: v == kind, f"'{kind}'"),
                          ("listener", _is_text, "a listener id"),
                          ("seed", lambda v: isinstance(v, int) and not isinstance(v, bool),
                           "a whole number"),
                          ("keys", _is_text, "a key-file id"),
                          ("trial_id", _is_text, "a trial id"),
                          ("utterance", _is_text, "an utterance id")):
        if key not in r:
            return f"has no '{key}' (expected {what})"
        if not ok(r[key]):
            return f"'{key}' is {r[key]!r}, expected {what}"
    if r["listener"] != listener:
        return (f"'listener' is {r['listener']!r}, expected {listener!r} (the listener of the "
                f"file's name, sessions/{kind}_<listener>.jsonl)")
    if "simulated" in r and not isinstance(r["simulated"], bool):
        return f"'simulated' is {r['simulated']!r}, expected true or false"
    if kind == "mos":
        if not _is_text(r.get("condition")):
            return f"'condition' is {r.get('condition')!r}, expected a condition key"
        if "rating" not in r:
            return "has no 'rating' (expected an integer 1..5)"
        if not (_is_mos_rating(r["rating"]) and _is_score(r["rating"], 1, 5)):
            return f"'rating' is {r['rating']!r}, expected an integer 1..5 (ITU-T P.800 ACR)"
        return None
    slots, ratings = r.get("slots"), r.get("ratings")
    if not (isinstance(slots, list) and slots and all(_is_text(k) for k in slots)):
        return f"'slots' is {slots!r}, expected a list of condition keys"
    if not isinstance(ratings, dict) or set(ratings) != set(slots):
        return f"'ratings' is {ratings!r}, expected one score per slot {slots}"
    bad = {k: v for k, v in ratings.items() if not _is_score(v, 0, 100)}
    if bad:
        return f"'ratings' holds {bad}, expected numbers 0..100 (MUSHRA scale)"
    return None


def read_numbered_records(path, kind: str) -> list[tuple[int, dict]]:
    """``(line number, record)`` of a session file, every record checked (missing file -> []).

    The listener is the one of the file's name (``<kind>_<listener>.jsonl``). Raises
    LpcnetError naming the file and line of the first bad record (:func:`record_problem`).
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return []
    listener = session_listener(path, kind)
    if not path.name.startswith(f"{kind}_") or not _LISTENER_RE.fullmatch(listener):
        raise LpcnetError(f"{path}: expected a session file named {kind}_<listener>.jsonl "
                          f"(listener: 1-64 of letters, digits, _ . -)")
    text = read_text(path, str(path), f"a {kind.upper()} session file (JSON lines)")
    records = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            raise LpcnetError(f"{path}: line {n} is not valid JSON (corrupt session file?)") from None
        problem = record_problem(r, kind, listener)
        if problem:
            raise LpcnetError(f"{path}: line {n}: record {problem}")
        records.append((n, r))
    return records


def read_records(path, kind: str | None = None) -> list[dict]:
    """Checked records of a session file (missing file -> []); the kind defaults to the
    one of the file's name. See :func:`read_numbered_records`."""
    path = Path(path)
    kind = kind or next((k for k in KINDS if path.name.startswith(f"{k}_")), KINDS[0])
    return [r for _, r in read_numbered_records(path, kind)]


def _letters(labels) -> str:
    return ", ".join(labels)


class ListeningSession:
    """One listener's MOS or MUSHRA session: order, playing, answers, navigation, resume.

    ``index`` is the trial on screen (0-based); ``answers`` maps trial id -> the last
    answer (MOS: int 1..5; MUSHRA: ``{condition key: 0..100}``). Stimulus labels are
    ``"Sample"`` (MOS) or ``"Reference"``, ``"A"``, ``"B"``, ... (MUSHRA).
    """

    def __init__(self, plan: TestPlan, kind: str, listener: str, test_dir, seed: int = 0):
        if not isinstance(plan, TestPlan):
            raise LpcnetError(f"plan: expected a TestPlan (listening.build_plan), got {type(plan).__name__}")
        if kind not in KINDS:
            raise LpcnetError(f"unknown test kind '{kind}' (expected one of {', '.join(KINDS)})")
        if not (isinstance(listener, str) and _LISTENER_RE.fullmatch(listener)):
            raise LpcnetError(f"listener id '{listener}' must be 1-64 of letters, digits, _ . -")
        self.plan, self.kind, self.listener = plan, kind, listener
        self.seed = check_whole(seed, "seed", minimum=0)
        self.test_dir = Path(test_dir)
        self.keys = ConditionKeys.open(test_dir, plan.conditions)
        self.path = session_path(test_dir, kind, listener)
        self.trials = make_trials(plan, kind, self.seed, listener,
                                  {c: self.keys.key(c) for c in plan.conditions})
        self._by_id = {t["id"]: t for t in self.trials}
        self.records = read_records(self.path, kind)
        self.answers, self._played = {}, {}
        for r in self.records:
            if r.get("seed") != self.seed:
                raise LpcnetError(f"{self.path}: was recorded with seed {r.get('seed')}, "
                                  f"not {self.seed} (use the same seed to resume)")
            if r.get("keys") != self.keys.key_id:
                raise LpcnetError(f"{self.path}: was recorded with another condition key file "
                                  f"than {self.keys.path}")
            if r.get("trial_id") not in self._by_id:
                raise LpcnetError(f"{self.path}: trial '{r.get('trial_id')}' is not in this "
                                  f"test plan (different conditions or utterances?)")
            self.answers[r["trial_id"]] = r["rating"] if kind == "mos" else r["ratings"]
            self._played[r["trial_id"]] = set(self.labels(self._by_id[r["trial_id"]]))
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

    def condition_name(self, key: str) -> str:
        """Blind key -> condition name (for analysis code, never shown to the listener)."""
        return self.keys.name(key, self.path)

    # stimuli and playing
    def labels(self, trial: dict | None = None) -> list[str]:
        """Stimulus labels of a trial: ``["Sample"]`` or ``["Reference", "A", "B", ...]``."""
        t = trial or self.current
        if self.kind == "mos":
            return ["Sample"]
        return ["Reference"] + [slot_label(i) for i in range(len(t["slots"]))]

    def required_plays(self, trial: dict | None = None) -> list[str]:
        """Labels that must be played before the trial can be answered (all but Reference)."""
        return [lab for lab in self.labels(trial) if lab != "Reference"]

    def stimulus(self, label: str, trial: dict | None = None) -> np.ndarray:
        """Audio behind a label of a trial, float32 ``(samples,)``."""
        t = trial or self.current
        if self.kind == "mos" and label == "Sample":
            cond = t["condition"]
        elif self.kind == "mushra" and label == "Reference":
            cond = self.keys.key(self.plan.reference)
        elif self.kind == "mushra" and len(label) == 1 and 0 <= ord(label) - 65 < len(t["slots"]):
            cond = t["slots"][ord(label) - 65]
        else:
            raise LpcnetError(f"no stimulus '{label}' in {self.kind} trial '{t['id']}'")
        return self.plan.stimulus(t["utterance"], self.condition_name(cond))

    def stimuli(self, trial: dict | None = None) -> list[tuple[str, np.ndarray]]:
        """Blind ``(label, audio)`` list of a trial (does not count as played)."""
        return [(lab, self.stimulus(lab, trial)) for lab in self.labels(trial)]

    def play(self, label: str) -> np.ndarray:
        """Mark ``label`` of the trial on screen as played and return its audio."""
        t = self.current
        if t is None:
            raise LpcnetError("all trials are answered: nothing to play")
        x = self.stimulus(label, t)
        self._played.setdefault(t["id"], set()).add(label)
        return x

    def played(self, label: str) -> bool:
        t = self.current
        return t is not None and label in self._played.get(t["id"], ())

    def unplayed(self) -> list[str]:
        """Required labels of the trial on screen not played yet."""
        t = self.current
        return [] if t is None else [lab for lab in self.required_plays(t)
                                     if lab not in self._played.get(t["id"], ())]

    # answers
    def answer(self, rating, simulated: bool = False) -> dict:
        """Record the answer of the trial on screen and save the file atomically.

        MOS: an int 1..5. MUSHRA: one 0..100 per slot (in slot order, None for a slider
        never moved) or a ``{condition name: score}`` dict. Refused (LpcnetError) until
        every required sample was played, and for MUSHRA while any slider is unmoved.
        ``simulated`` marks answers of :func:`simulate_listener`. Returns the record.
        """
        t = self.current
        if t is None:
            raise LpcnetError("all trials are answered: nothing left to rate")
        missing = self.unplayed()
        if missing:
            raise LpcnetError("play the sample before rating it" if self.kind == "mos"
                              else f"play sample(s) {_letters(missing)} before rating")
        record = {"listener": self.listener, "kind": self.kind, "seed": self.seed,
                  "keys": self.keys.key_id, "trial": self.index, "trial_id": t["id"],
                  "utterance": t["utterance"], "time": round(time.time(), 3)}
        if simulated:
            record["simulated"] = True
        if self.kind == "mos":
            if rating is None:
                raise LpcnetError("choose a rating first")
            if not _is_mos_rating(rating):
                raise LpcnetError(f"MOS rating must be an integer 1..5, got {rating!r}")
            record.update(condition=t["condition"], rating=int(rating))
            value = int(rating)
        else:
            value = self._mushra_value(t, rating)
            record.update(slots=t["slots"], ratings=value)
        self._save(self.records + [record])
        self.records.append(record)
        self.answers[t["id"]] = value
        return record

    def _mushra_value(self, t: dict, rating) -> dict:
        if isinstance(rating, dict):
            names = {self.condition_name(k): k for k in t["slots"]}
            if set(rating) != set(names):
                raise LpcnetError(f"MUSHRA ratings must cover conditions {sorted(names)}")
            rating = [rating[self.condition_name(k)] for k in t["slots"]]
        rating = list(rating)
        if len(rating) != len(t["slots"]):
            raise LpcnetError(f"MUSHRA needs {len(t['slots'])} ratings, got {len(rating)}")
        unmoved = [slot_label(i) for i, r in enumerate(rating) if r is None]
        if len(unmoved) == len(rating):
            raise LpcnetError("no slider was moved: rate every sample")
        if unmoved:
            raise LpcnetError(f"rate every sample: the slider of {_letters(unmoved)} was not moved")
        try:
            value = {k: float(r) for k, r in zip(t["slots"], rating)}
        except (TypeError, ValueError):
            raise LpcnetError(f"MUSHRA ratings must be numbers 0..100, got {rating}") from None
        if any(not 0 <= v <= 100 for v in value.values()):
            raise LpcnetError(f"MUSHRA ratings must lie in 0..100, got {rating}")
        return value

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
    """One made-up rating of a stimulus with assumed ``degradation`` (0..1).

    MOS: ``round(1 + 4 (1 - d) + bias + N(0, 0.4 noise))`` in 1..5; MUSHRA:
    ``100 (1 - d) + 20 bias + N(0, 6 noise)`` in 0..100 (the hidden reference, d = 0:
    ``100 - |N(0, 3 noise)|``). A careless listener answers uniformly at random.
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
    """Answer the session's remaining trials from the plan's assumed degradations.

    A simulation, for demonstrating and testing the analysis: it plays every sample
    and answers through the same state machine as the page, and its records carry
    ``"simulated": true``. Returns the number of trials answered; ``max_trials`` stops
    early (a closed tab).
    """
    rng = np.random.default_rng([int(seed), zlib.crc32(session.listener.encode())])
    bias = 0.0 if careless else float(rng.normal(0, 0.15))
    n = 0
    while not session.finished and (max_trials is None or n < max_trials):
        t = session.current
        for label in session.required_plays():
            session.play(label)
        d = {k: session.plan.degradation[session.condition_name(k)]
             for k in ([t["condition"]] if session.kind == "mos" else t["slots"])}
        if session.kind == "mos":
            rating = simulated_rating("mos", d[t["condition"]], rng, bias, noise, careless)
        else:
            rating = [simulated_rating("mushra", d[k], rng, bias, noise, careless) for k in t["slots"]]
        session.answer(rating, simulated=True)
        session.next()
        n += 1
    return n
