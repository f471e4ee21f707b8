"""Results of listening tests: every listener's session file -> means, 95 % CIs, screening, CSV.

* :func:`load_results` reads every ``sessions/<kind>_*.jsonl`` of a test folder and
  decodes the blind condition keys with the folder's ``conditions.json``
  (:class:`lpcnet.listening.ConditionKeys`); the last answer of each (listener, trial) counts.
* :func:`summarize_results` -> :class:`Results`: per condition the mean and a Student-t
  95 % confidence interval over all its ratings (listeners x utterances); MUSHRA first
  applies the post-screening of ITU-R BS.1534-3 (an assessor who rates the hidden
  reference below 90 for more than 15 % of the items is excluded).
* :func:`format_results`, :func:`plot_results` and :func:`export_csv` report them; results
  of simulated listeners are labelled as a simulation wherever they are shown.
* :func:`objective_table`: the ``lpcnet eval`` table turned on its side (metrics as rows),
  so it fits a notebook page.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lpcnet.errors import LpcnetError
from lpcnet.formats import atomic_output
from lpcnet.listening import KINDS, REFERENCE, SESSIONS, ConditionKeys, read_numbered_records

HIDDEN_REFERENCE_MIN = 90.0     # BS.1534-3 post-screening: hidden reference below this ...
MAX_LOW_FRACTION = 0.15         # ... for more than this fraction of the items -> excluded
NO_CI = "no CI (n=1)"          # one rating: no interval, shown so in tables and plots
SIMULATION_NOTE = "SIMULATED listeners: made-up ratings from assumed degradations, not a measurement"


def load_results(test_dir, kind: str) -> list[dict]:
    """Decoded last answer per (listener, trial) of every ``<kind>_*.jsonl`` in the folder.

    Records name conditions (``condition`` for MOS, ``ratings``/``slots`` for MUSHRA) by
    name. Every record is checked (:func:`lpcnet.listening.record_problem`: ratings on the
    kind's scale, the listener of the file's name); a bad one, or one made with another key
    file, is refused with its file and line named.
    """
    check_kind(kind)
    test_dir = Path(test_dir)
    files = sorted((test_dir / SESSIONS).glob(f"{kind}_*.jsonl"))
    if not files:
        return []
    keys = ConditionKeys.open(test_dir)
    latest = {}
    for path in files:
        for n, r in read_numbered_records(path, kind):
            if r["keys"] != keys.key_id:
                raise LpcnetError(f"{path}: recorded with another condition key file than "
                                  f"{keys.path} (copy that folder's {keys.path.name} to listeners)")
            r = dict(r)
            if kind == "mos":
                r["condition"] = keys.name(r["condition"], path)
            else:
                r["slots"] = [keys.name(k, path) for k in r["slots"]]
                r["ratings"] = {keys.name(k, path): v for k, v in r["ratings"].items()}
                if REFERENCE not in r["ratings"]:
                    raise LpcnetError(f"{path}: line {n}: MUSHRA record has no score of the hidden "
                                      f"'{REFERENCE}' (needed by the post-screening)")
            latest[(r["listener"], r["trial_id"])] = r
    return list(latest.values())


def check_kind(kind) -> str:
    """``kind`` when it is a test kind, else LpcnetError."""
    if kind not in KINDS:
        raise LpcnetError(f"unknown kind {kind!r}: expected {' or '.join(KINDS)}")
    return kind


def mos_scores(records: list[dict]) -> dict[str, list[float]]:
    """Decoded MOS records -> ``{condition: [rating, ...]}``."""
    out = {}
    for r in records:
        out.setdefault(r["condition"], []).append(float(r["rating"]))
    return out


def mushra_post_screening(records: list[dict], reference: str = REFERENCE,
                          threshold: float = HIDDEN_REFERENCE_MIN,
                          max_fraction: float = MAX_LOW_FRACTION) -> tuple[list[str], dict[str, float]]:
    """BS.1534-3 post-screening -> ``(kept listeners, {excluded listener: fraction of items})``.

    A listener is excluded when the hidden reference is rated below ``threshold`` in
    more than ``max_fraction`` of that listener's items (MUSHRA trials).
    """
    low, total = {}, {}
    for r in records:
        who = r["listener"]
        total[who] = total.get(who, 0) + 1
        low[who] = low.get(who, 0) + (r["ratings"][reference] < threshold)
    fractions = {w: low[w] / total[w] for w in total}
    kept = sorted(w for w, f in fractions.items() if f <= max_fraction)
    return kept, {w: f for w, f in sorted(fractions.items()) if f > max_fraction}


def mushra_scores(records: list[dict], listeners=None) -> dict[str, list[float]]:
    """Decoded MUSHRA records (optionally only ``listeners``) -> ``{condition: [score, ...]}``."""
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
    """``{condition: ratings}`` -> rows ``{condition, n, mean, std, ci_low, ci_high}``.

    ``order`` (condition names) sets the rows' order; it must name every rated condition.
    A condition of ``order`` nobody rated yet has no row.
    """
    left_out = [c for c in scores if order is not None and c not in order]
    if left_out:
        raise LpcnetError(f"rated condition(s) {', '.join(left_out)} missing from the order "
                          f"{list(order)}")
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


@dataclass
class Results:
    """Summary of one test folder and kind; ``records`` are the counted (kept) ones."""

    kind: str
    rows: list
    listeners: list
    excluded: dict = field(default_factory=dict)
    utterances: list = field(default_factory=list)
    simulated: bool = False
    records: list = field(default_factory=list)
    all_records: list = field(default_factory=list)


def summarize_results(test_dir, kind: str, order=None, bootstrap: int = 0) -> Results:
    """Every listener's session in ``test_dir`` -> :class:`Results` (MUSHRA post-screened).

    Raises LpcnetError when there are no ratings, when every MUSHRA listener fails the
    post-screening, or when simulated and real listeners share the folder.
    """
    records = load_results(test_dir, kind)
    if order is not None and records:
        keys = ConditionKeys.open(test_dir)
        unknown = [c for c in order if c not in keys.by_name]
        if unknown:
            raise LpcnetError(f"unknown condition(s) {', '.join(map(str, unknown))} in the order "
                              f"(expected names of {keys.path}: {', '.join(keys.by_name)})")
    if not records:
        raise LpcnetError(f"{Path(test_dir) / SESSIONS}: no {kind.upper()} ratings yet")
    flags = {bool(r.get("simulated")) for r in records}
    if len(flags) > 1:
        raise LpcnetError(f"{Path(test_dir) / SESSIONS}: mixes simulated and real listeners; "
                          f"keep simulations in a folder of their own")
    listeners = sorted({r["listener"] for r in records})
    excluded = {}
    if kind == "mushra":
        listeners, excluded = mushra_post_screening(records)
        if not listeners:
            raise LpcnetError(f"{Path(test_dir) / SESSIONS}: every MUSHRA listener failed the "
                              f"post-screening ({', '.join(excluded)})")
    kept = [r for r in records if r["listener"] in listeners]
    scores = mos_scores(kept) if kind == "mos" else mushra_scores(kept)
    return Results(kind, summarize(scores, order, bootstrap), listeners, excluded,
                   sorted({r["utterance"] for r in kept}), flags == {True}, kept, records)


def title_of(res: Results) -> str:
    """One-line title: kind, listeners x utterances, and the simulation label when simulated."""
    head = (f"{res.kind.upper()}: {len(res.listeners)} listener(s) x "
            f"{len(res.utterances)} utterance(s)")
    return f"{head} - {SIMULATION_NOTE}" if res.simulated else head


def screening_report(res: Results) -> str:
    """What the MUSHRA post-screening did (empty for MOS)."""
    if res.kind != "mushra":
        return ""
    rule = (f"post-screening (ITU-R BS.1534-3): hidden reference below {HIDDEN_REFERENCE_MIN:.0f} "
            f"in more than {MAX_LOW_FRACTION:.0%} of the items -> excluded")
    if not res.excluded:
        return f"{rule}: nobody (kept {len(res.listeners)})"
    who = ", ".join(f"{w} ({f:.0%} of items)" for w, f in res.excluded.items())
    return f"{rule}: {who}; kept {len(res.listeners)}"


def format_summary(rows: list[dict], title: str = "") -> str:
    """Plain-text table of :func:`summarize` rows (mean and 95 % CI; ``no CI (n=1)`` for a
    single rating, which has no interval)."""
    lines = [title] if title else []
    lines.append(f"{'condition':24s} {'n':>4s} {'mean':>7s} {'95% CI':>17s}")
    for r in rows:
        ci = (f"[{r['ci_low']:6.2f}, {r['ci_high']:6.2f}]" if np.isfinite([r["ci_low"], r["ci_high"]]).all()
              else f"{NO_CI:>16s}")
        lines.append(f"{r['condition']:24s} {r['n']:4d} {r['mean']:7.2f} {ci}")
    return "\n".join(lines)


def format_results(res: Results) -> str:
    """Title, table and (MUSHRA) post-screening report as plain text."""
    text = format_summary(res.rows, title_of(res))
    report = screening_report(res)
    return f"{text}\n{report}" if report else text


def plot_summary(rows: list[dict], kind: str = "mos", title: str | None = None):
    """Mean per condition with 95 % CI error bars -> matplotlib Figure.

    A condition with a single rating has no interval: no error bar, labelled ``no CI (n=1)``.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(4.5, 1.2 * len(rows) + 1.5), 3.4), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    means = np.array([r["mean"] for r in rows])
    err = np.array([[r["mean"] - r["ci_low"] for r in rows], [r["ci_high"] - r["mean"] for r in rows]])
    ax.bar(x, means, color="#9ab7d3", edgecolor="#3b5b7a")
    has_ci = np.isfinite(err).all(axis=0)
    ax.errorbar(x[has_ci], means[has_ci], yerr=err[:, has_ci], fmt="none", ecolor="k", capsize=4)
    for i in np.flatnonzero(~has_ci):
        ax.text(x[i], means[i], NO_CI, ha="center", va="bottom", fontsize=8, color="#c0392b")
    ax.set_xticks(x, [r["condition"] for r in rows], rotation=20, ha="right")
    if kind == "mos":
        ax.set(ylim=(1, 5), ylabel="MOS (ACR 1-5)")
    else:
        ax.set(ylim=(0, 100), ylabel="MUSHRA score (0-100)")
    ax.set_title(title or f"{kind.upper()}: mean and 95% confidence interval", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_results(res: Results):
    """:func:`plot_summary` of a :class:`Results`, titled by :func:`title_of` (simulation marked)."""
    title = title_of(res)
    if res.simulated:
        title = title.replace(" - ", "\n", 1)
    fig = plot_summary(res.rows, res.kind, title)
    if res.simulated:
        fig.axes[0].text(0.5, 0.5, "SIMULATION", transform=fig.axes[0].transAxes, ha="center",
                         va="center", fontsize=28, color="#c0392b", alpha=0.25, rotation=15)
    return fig


def export_csv(res: Results, out_dir) -> tuple[Path, Path]:
    """Write ``<kind>_ratings.csv`` (one row per rating) and ``<kind>_summary.csv``, atomically.

    The ratings file holds every rating, excluded listeners included (column ``counted``);
    the summary holds the rows of :func:`summarize_results`. Returns both paths.
    """
    out_dir = Path(out_dir)
    ratings, summary = out_dir / f"{res.kind}_ratings.csv", out_dir / f"{res.kind}_summary.csv"
    with atomic_output(ratings, "w") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["kind", "listener", "utterance", "condition", "rating", "counted", "simulated"])
        for r in res.all_records:
            items = ([(r["condition"], r["rating"])] if res.kind == "mos"
                     else [(c, r["ratings"][c]) for c in r["slots"]])
            for cond, value in items:
                w.writerow([res.kind, r["listener"], r["utterance"], cond, value,
                            int(r["listener"] in res.listeners), int(res.simulated)])
    with atomic_output(summary, "w") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["kind", "condition", "n", "mean", "std", "ci95_low", "ci95_high",
                    "listeners", "excluded", "simulated"])
        for row in res.rows:
            w.writerow([res.kind, row["condition"], row["n"]]
                       + [f"{row[k]:.4f}" for k in ("mean", "std", "ci_low", "ci_high")]
                       + [len(res.listeners), " ".join(res.excluded), int(res.simulated)])
    return ratings, summary


def objective_table(rows: list[dict]) -> str:
    """``lpcnet eval`` table rows (:func:`lpcnet.quality.condition_table`) -> text with one
    row per metric and one column per condition (arrow: better direction), to fit a page."""
    from lpcnet.quality import METRICS

    metrics = [m for m in METRICS if any(m in r for r in rows)]
    width = max(9, *(len(r["condition"]) for r in rows)) + 1
    lines = [f"{'metric':16s}" + "".join(f"{r['condition']:>{width}s}" for r in rows),
             f"{'utterances':16s}" + "".join(f"{r['n']:>{width}d}" for r in rows)]
    for m in metrics:
        name = m + (" ↑" if METRICS[m] else " ↓")
        lines.append(f"{name:16s}" + "".join(f"{r[m]:>{width}.3f}" if m in r else f"{'-':>{width}s}"
                                              for r in rows))
    return "\n".join(lines)
