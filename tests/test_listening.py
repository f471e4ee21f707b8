"""Listening tests on real held-out speech: lpcnet.listening (plan, blind keys, sessions),
lpcnet.listening_results (aggregation, CIs, BS.1534 post-screening, CSV) and the widgets of
lpcnet.listening_ui, clicked programmatically."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import signal, stats

from lpcnet import listening as L
from lpcnet import listening_results as R
from lpcnet.errors import LpcnetError
from lpcnet.formats import lin2ulaw

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def heldout():
    """Held-out utterances of three speakers: ARCTIC a0007 (m), a0009 (f), 2 Allison prompts."""
    return L.heldout_speech(2)


@pytest.fixture(scope="module")
def speech(heldout):
    """The four held-out utterances, 1.2 s each to keep the tests fast."""
    return {u: L.as_audio(p)[:19200] for u, p in heldout.items()}


@pytest.fixture(scope="module")
def plan(speech):
    rng = np.random.default_rng(0)
    noisy = {u: (x + rng.normal(0, 0.01, x.shape)).astype(np.float32) for u, x in speech.items()}
    # an int16 "checkpoint" output, 160 samples shorter, as lpcnet.synth returns it
    int16 = {u: np.round(x[:-160] * 32768).astype(np.int16) for u, x in speech.items()}
    return L.build_plan(speech, {"ckpt_noisy": noisy, "ckpt_int16": int16})


def take_trial(session, rating):
    """What a listener does on one trial: play every sample, rate, go on."""
    for label in session.required_plays():
        session.play(label)
    session.answer(rating)
    session.next()


def mushra_rating(session, scores: dict) -> list:
    """``{condition: score}`` -> slot-ordered list for the trial on screen."""
    return [scores[session.condition_name(k)] for k in session.current["slots"]]


def band_energy(x, lo, hi):
    f, p = signal.welch(x, fs=16000, nperseg=1024)
    return p[(f >= lo) & (f < hi)].sum()


# --- stimuli and plan ------------------------------------------------------------------------
def test_heldout_speech_spans_three_speakers_and_only_heldout_prompts(heldout, monkeypatch, tmp_path):
    assert list(heldout)[:2] == ["arctic_a0007", "arctic_a0009"] and len(heldout) == 4
    listed = (ROOT / "models" / "demo" / "heldout_prompts.txt").read_text().split()
    prompts = [p for u, p in heldout.items() if u.startswith("allison_")]
    assert len(prompts) == 2 and all(any(str(p).endswith(rel) for rel in listed) for p in prompts)
    every = L.heldout_speech()
    assert len(every) == 2 + len(listed) == 10
    import lpcnet.demo
    monkeypatch.setattr(lpcnet.demo, "ASTERISK_EN", tmp_path / "nothing")
    with pytest.raises(LpcnetError, match="nothing/agent-loginok.g722.*asterisk-core-sounds-en-g722"):
        L.heldout_speech(2)


def test_anchors_are_the_expected_degradations(speech):
    x = speech["arctic_a0009"]  # female voice: real energy above 4 kHz
    lp = L.lowpass_anchor(x)
    assert band_energy(lp, 4500, 8000) < 1e-4 * band_energy(x, 4500, 8000)
    assert band_energy(lp, 100, 3000) == pytest.approx(band_energy(x, 100, 3000), rel=0.05)
    u = L.ulaw_anchor(x)
    codes = lin2ulaw(x * 32768.0)
    assert len(np.unique(u)) == len(np.unique(codes)) <= 256
    snr = 10 * np.log10(np.sum(x ** 2) / np.sum((u - x) ** 2))
    assert 20 < snr < 45            # 8-bit µ-law: audible but mild quantisation noise


def test_plan_conditions_lengths_levels_and_errors(plan, speech):
    assert plan.conditions == ["reference", "anchor_lp3500", "anchor_ulaw8", "ckpt_noisy", "ckpt_int16"]
    for u in plan.utterances:
        assert {len(plan.stimulus(u, c)) for c in plan.conditions} == {19200 - 160}
    # the int16 system was scaled back to [-1, 1]
    assert np.allclose(plan.stimulus("arctic_a0007", "ckpt_int16"), speech["arctic_a0007"][:19040],
                       atol=1 / 32768)
    # level_db: every reference at -26 dBFS RMS, one gain per utterance (relative levels kept)
    levelled = L.build_plan(speech, {"ckpt_noisy": {u: 0.5 * x for u, x in speech.items()}},
                            level_db=-26)
    for u in levelled.utterances:
        ref = levelled.stimulus(u, "reference")
        assert 20 * np.log10(np.sqrt(np.mean(ref.astype(np.float64) ** 2))) == pytest.approx(-26, abs=0.01)
        assert np.allclose(levelled.stimulus(u, "ckpt_noisy"), 0.5 * ref, atol=1e-6)
    with pytest.raises(LpcnetError, match="lacks utterance"):
        L.build_plan(speech, {"x": {"arctic_a0007": speech["arctic_a0007"]}})
    with pytest.raises(LpcnetError, match="reserved"):
        L.build_plan(speech, {"reference": speech})
    with pytest.raises(LpcnetError, match="unknown condition"):
        L.build_plan(speech, degradation={"nope": 0.5})
    with pytest.raises(LpcnetError, match="mono audio"):
        L.build_plan({"u": np.zeros((10, 2))})


def test_order_is_blind_random_and_reproducible(plan):
    a = L.make_trials(plan, "mos", seed=3, listener="ann")
    assert a == L.make_trials(plan, "mos", seed=3, listener="ann")
    assert a != L.make_trials(plan, "mos", seed=3, listener="bob")
    assert a != L.make_trials(plan, "mos", seed=4, listener="ann")
    assert sorted(t["id"] for t in a) == sorted(f"{u}|{c}" for u in plan.utterances for c in plan.conditions)
    m = L.make_trials(plan, "mushra", seed=3, listener="ann")
    assert sorted(t["utterance"] for t in m) == sorted(plan.utterances)
    assert all(sorted(t["slots"]) == sorted(plan.conditions) for t in m)
    slot_orders = {tuple(t["slots"]) for lst in ("ann", "bob", "cy") for t in
                   L.make_trials(plan, "mushra", 3, lst)}
    assert len(slot_orders) > 1   # the hidden reference is not always in the same slot


# --- blind keys ------------------------------------------------------------------------------
def test_session_files_do_not_reveal_condition_names(plan, tmp_path):
    for kind in ("mos", "mushra"):
        L.simulate_listener(L.ListeningSession(plan, kind, "ann", tmp_path, seed=1))
    texts = [p.read_text() for p in (tmp_path / "sessions").iterdir()]
    assert len(texts) == 2 and all(len(t.splitlines()) >= 4 for t in texts)
    for name in plan.conditions + ["anchor", "ckpt", "lp3500", "ulaw"]:
        assert all(name not in t for t in texts), name
    # the key map lives beside sessions/, not in it, and differs per folder (random secret)
    keys = json.loads((tmp_path / "conditions.json").read_text())["keys"]
    assert set(keys) == set(plan.conditions) and len(set(keys.values())) == len(keys)
    other = L.ConditionKeys.open(tmp_path / "other", plan.conditions)
    assert all(other.key(c) != keys[c] for c in plan.conditions)
    # analysis decodes them; a session file moved into a folder with another key map is refused
    recs = R.load_results(tmp_path, "mushra")
    assert all(set(r["ratings"]) == set(plan.conditions) for r in recs)
    (tmp_path / "other" / "sessions").mkdir()
    (tmp_path / "other" / "sessions" / "mos_ann.jsonl").write_text(
        (tmp_path / "sessions" / "mos_ann.jsonl").read_text())
    with pytest.raises(LpcnetError, match="other/sessions/mos_ann.jsonl: recorded with another"):
        R.load_results(tmp_path / "other", "mos")
    with pytest.raises(LpcnetError, match="another condition key file"):
        L.ListeningSession(plan, "mos", "ann", tmp_path / "other", seed=1)
    (tmp_path / "conditions.json").write_text("{not json")
    with pytest.raises(LpcnetError, match="conditions.json: not a condition key file"):
        L.ListeningSession(plan, "mos", "bob", tmp_path)


# --- sessions --------------------------------------------------------------------------------
def test_a_sample_must_be_played_before_it_is_rated(plan, tmp_path):
    s = L.ListeningSession(plan, "mos", "ann", tmp_path, seed=7)
    with pytest.raises(LpcnetError, match="play the sample before rating it"):
        s.answer(4)
    x = s.play("Sample")
    assert np.array_equal(x, plan.stimulus(s.current["utterance"], s.condition_name(s.current["condition"])))
    with pytest.raises(LpcnetError, match="choose a rating first"):
        s.answer(None)
    s.answer(4)
    assert len((tmp_path / "sessions" / "mos_ann.jsonl").read_text().splitlines()) == 1
    m = L.ListeningSession(plan, "mushra", "ann", tmp_path, seed=7)
    assert m.required_plays() == ["A", "B", "C", "D", "E"]
    for label in ("Reference", "A", "C"):
        m.play(label)
    scores = {c: 50 for c in plan.conditions}
    with pytest.raises(LpcnetError, match=r"play sample\(s\) B, D, E before rating"):
        m.answer(mushra_rating(m, scores))
    for label in ("B", "D", "E"):
        m.play(label)
    with pytest.raises(LpcnetError, match="no slider was moved"):
        m.answer([None] * 5)
    with pytest.raises(LpcnetError, match="the slider of B, E was not moved"):
        m.answer([10, None, 30, 40, None])
    assert not (tmp_path / "sessions" / "mushra_ann.jsonl").exists()
    m.answer(mushra_rating(m, scores))
    assert L.read_records(tmp_path / "sessions" / "mushra_ann.jsonl")[0]["ratings"] \
        == {m.keys.key(c): 50.0 for c in plan.conditions}


def test_mos_session_saves_resumes_and_overwrites(plan, tmp_path):
    s = L.ListeningSession(plan, "mos", "ann", tmp_path, seed=7)
    assert s.progress() == f"trial 1 of {len(plan.utterances) * len(plan.conditions)}"
    with pytest.raises(LpcnetError, match="not answered"):
        s.next()
    s.play("Sample")
    for bad in (0, 6, 2.5, "4", True):
        with pytest.raises(LpcnetError, match="1..5"):
            s.answer(bad)
    first = s.current["id"]
    s.answer(4)
    s.next()
    take_trial(s, 2)
    path = tmp_path / "sessions" / "mos_ann.jsonl"
    assert [json.loads(x)["rating"] for x in path.read_text().splitlines()] == [4, 2]
    # "kernel restart": a new session over the same file resumes at trial 3
    s2 = L.ListeningSession(plan, "mos", "ann", tmp_path, seed=7)
    assert s2.index == 2 and s2.answers[first] == 4 and s2.unplayed() == ["Sample"]
    # back to trial 1 (played before it was answered) and change its answer: the last counts
    s2.back(); s2.back(); s2.back()
    assert s2.index == 0 and s2.current["id"] == first and s2.current_answer() == 4
    assert s2.unplayed() == []
    s2.answer(1)
    recs = R.load_results(tmp_path, "mos")
    assert len(recs) == 2 and {r["trial_id"]: r["rating"] for r in recs}[first] == 1
    assert len(path.read_text().splitlines()) == 3
    with pytest.raises(LpcnetError, match="seed"):
        L.ListeningSession(plan, "mos", "ann", tmp_path, seed=8)
    with pytest.raises(LpcnetError, match="listener id"):
        L.ListeningSession(plan, "mos", "../x", tmp_path)


def test_crash_during_save_loses_only_the_current_trial(plan, tmp_path, monkeypatch):
    s = L.ListeningSession(plan, "mos", "cy", tmp_path, seed=1)
    L.simulate_listener(s, max_trials=3)
    path = tmp_path / "sessions" / "mos_cy.jsonl"
    before = path.read_bytes()
    s.play("Sample")

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(L.json, "dumps", boom)
    with pytest.raises(OSError):
        s.answer(3)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert not list(path.parent.glob(".*.tmp"))
    s2 = L.ListeningSession(plan, "mos", "cy", tmp_path, seed=1)
    assert s2.index == 3
    assert L.simulate_listener(s2) == s2.n_trials - 3 and s2.done


# --- results ---------------------------------------------------------------------------------
MOS_BY_CONDITION = {"reference": [5, 5, 4, 5], "anchor_lp3500": [2, 3, 2, 2], "anchor_ulaw8": [4, 3, 4, 4],
                    "ckpt_noisy": [3, 4, 3, 3], "ckpt_int16": [5, 4, 5, 5]}


def answer_mos_by_utterance(plan, tmp_path, listener, offset=0):
    """A listener who rates condition c of the i-th utterance MOS_BY_CONDITION[c][i] (+ offset)."""
    s = L.ListeningSession(plan, "mos", listener, tmp_path, seed=11)
    while not s.finished:
        t = s.current
        i = plan.utterances.index(t["utterance"])
        take_trial(s, int(np.clip(MOS_BY_CONDITION[s.condition_name(t["condition"])][i] + offset, 1, 5)))
    return s


def test_one_listener_times_four_utterances_gives_finite_t_intervals(plan, tmp_path):
    answer_mos_by_utterance(plan, tmp_path, "ann")
    res = R.summarize_results(tmp_path, "mos", plan.conditions)
    assert res.listeners == ["ann"] and len(res.utterances) == 4 and not res.simulated
    rows = {r["condition"]: r for r in res.rows}
    for cond, ratings in MOS_BY_CONDITION.items():
        x = np.array(ratings, float)
        assert rows[cond]["n"] == 4 and rows[cond]["mean"] == pytest.approx(x.mean())
        if x.std() > 0:
            lo, hi = stats.t.interval(0.95, 3, loc=x.mean(), scale=stats.sem(x))
            assert (rows[cond]["ci_low"], rows[cond]["ci_high"]) == pytest.approx((lo, hi))
    text = R.format_results(res)
    assert text.splitlines()[0] == "MOS: 1 listener(s) x 4 utterance(s)" and "nan" not in text


def test_results_aggregate_a_folder_of_listeners_with_csv_export(plan, tmp_path):
    for who, offset in (("ann", 0), ("bob", -1), ("cy", 1)):
        answer_mos_by_utterance(plan, tmp_path, who, offset)
    res = R.summarize_results(tmp_path, "mos", plan.conditions)
    assert res.listeners == ["ann", "bob", "cy"]
    pooled = {c: [] for c in plan.conditions}
    for rec in (json.loads(line) for p in sorted((tmp_path / "sessions").glob("mos_*.jsonl"))
                for line in p.read_text().splitlines()):
        pooled[L.ConditionKeys.open(tmp_path).name(rec["condition"])].append(rec["rating"])
    for row in res.rows:
        x = np.array(pooled[row["condition"]], float)
        assert row["n"] == 12 == x.size    # 3 listeners x 4 utterances
        lo, hi = stats.t.interval(0.95, x.size - 1, loc=x.mean(), scale=stats.sem(x))
        assert (row["mean"], row["ci_low"], row["ci_high"]) == pytest.approx((x.mean(), lo, hi))
        m, blo, bhi = R.mean_ci(x, bootstrap=2000)
        assert blo < m < bhi
    ratings_csv, summary_csv = R.export_csv(res, tmp_path / "results")
    with open(ratings_csv) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 4 * len(plan.conditions)
    assert {r["listener"] for r in rows} == {"ann", "bob", "cy"} and {r["counted"] for r in rows} == {"1"}
    with open(summary_csv) as f:
        summary = {r["condition"]: r for r in csv.DictReader(f)}
    for row in res.rows:
        assert float(summary[row["condition"]]["mean"]) == pytest.approx(row["mean"], abs=1e-4)
        assert float(summary[row["condition"]]["ci95_low"]) == pytest.approx(row["ci_low"], abs=1e-4)
    fig = R.plot_results(res)
    assert len(fig.axes[0].patches) == len(plan.conditions)
    assert "SIMULAT" not in fig.axes[0].get_title()


def test_post_screening_rule_of_bs1534(plan):
    def recs(who, refs):
        return [{"listener": who, "ratings": {"reference": v, "anchor_lp3500": 20}} for v in refs]
    records = (recs("ok", [100] * 7) + recs("one_in_7", [89.9] + [95] * 6)       # 14 % <= 15 %: kept
               + recs("two_in_7", [80, 85] + [100] * 5)                            # 29 %: excluded
               + recs("at_90", [90] * 7))                                          # 90 is not below 90
    kept, excluded = R.mushra_post_screening(records)
    assert kept == ["at_90", "ok", "one_in_7"] and excluded == {"two_in_7": pytest.approx(2 / 7)}


def test_mushra_results_apply_and_report_the_post_screening(plan, tmp_path):
    scores = {"reference": 100, "anchor_lp3500": 25, "anchor_ulaw8": 60, "ckpt_noisy": 55, "ckpt_int16": 95}
    for who in ("g1", "g2"):
        s = L.ListeningSession(plan, "mushra", who, tmp_path, seed=2)
        while not s.finished:
            take_trial(s, mushra_rating(s, scores))
    # rates the hidden reference 80 in one of 4 items (25 % > 15 %): excluded
    s = L.ListeningSession(plan, "mushra", "sloppy", tmp_path, seed=2)
    for i in range(4):
        take_trial(s, mushra_rating(s, {**scores, "reference": 80 if i == 0 else 100}))
    res = R.summarize_results(tmp_path, "mushra", plan.conditions)
    assert res.listeners == ["g1", "g2"] and res.excluded == {"sloppy": 0.25}
    rows = {r["condition"]: r for r in res.rows}
    assert rows["reference"]["n"] == 8 and rows["anchor_lp3500"]["mean"] == 25
    report = R.format_results(res)
    assert "BS.1534-3" in report and "sloppy (25% of items); kept 2" in report
    ratings_csv, _ = R.export_csv(res, tmp_path / "results")
    with open(ratings_csv) as f:
        counted = {(r["listener"], r["counted"]) for r in csv.DictReader(f)}
    assert counted == {("g1", "1"), ("g2", "1"), ("sloppy", "0")}


def test_simulated_listeners_are_labelled_and_kept_apart(plan, tmp_path):
    for i in range(3):
        L.simulate_listener(L.ListeningSession(plan, "mushra", f"sim{i}", tmp_path / "sim", 2), seed=i)
    L.simulate_listener(L.ListeningSession(plan, "mushra", "careless", tmp_path / "sim", 2),
                        seed=9, careless=True)
    sim = R.summarize_results(tmp_path / "sim", "mushra", plan.conditions)
    assert sim.simulated and "careless" in sim.excluded
    rows = {r["condition"]: r for r in sim.rows}
    assert rows["reference"]["mean"] > 90 > rows["anchor_ulaw8"]["mean"] > rows["anchor_lp3500"]["mean"]
    assert R.SIMULATION_NOTE in R.format_results(sim).splitlines()[0]
    fig = R.plot_results(sim)
    assert "SIMULATED" in fig.axes[0].get_title()
    # a real listener in the same folder: refused rather than mixed
    s = L.ListeningSession(plan, "mushra", "real", tmp_path / "sim", 2)
    take_trial(s, [70] * len(plan.conditions))
    with pytest.raises(LpcnetError, match="mixes simulated and real listeners"):
        R.summarize_results(tmp_path / "sim", "mushra")
    with pytest.raises(LpcnetError, match="no MOS ratings yet"):
        R.summarize_results(tmp_path / "sim", "mos")


def test_objective_table_fits_a_page():
    rows = [{"condition": c, "n": 4, "pesq_wb": 3.1, "stoi": 0.9, "lsd_db": 5.0, "gpe_pct": 1.0,
             "f0_rmse_cents": 20.0, "vde_pct": 2.0, "dnsmos_ovrl": 3.0, "dnsmos_sig": 3.2,
             "dnsmos_bak": 3.9, "dnsmos_p808": 3.4}
            for c in ("reference", "anchor_lp3500", "anchor_ulaw8", "lpcnet")]
    text = R.objective_table(rows)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert text.splitlines()[0].split() == ["metric", "reference", "anchor_lp3500", "anchor_ulaw8", "lpcnet"]
    assert "pesq_wb ↑" in text and "lsd_db ↓" in text and len(text.splitlines()) == 12


def test_notebook_shows_objective_scores_first_and_simulation_last():
    nb = json.loads((ROOT / "notebooks" / "05_listening_mos.ipynb").read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    where = {key: next(i for i, src in enumerate(code) if key in src)
             for key in ("quality.evaluate", "listening_page(plan, \"mos\"", "summarize_results(TEST_DIR",
                         "simulate_listener")}
    assert list(where) == sorted(where, key=where.get)
    # the simulation rates only the reference and the anchors, never the model's condition
    assert "sim_plan = listening.build_plan({u: plan.stimulus(u, \"reference\")" in code[where["simulate_listener"]]
    assert "ListeningSession(plan," not in "".join(code[where["simulate_listener"]:])
    text = "".join("".join(c["source"]) for c in nb["cells"])
    assert "Error displaying widget" in text and "OUTPUT_DIR" not in text


# --- widgets (lpcnet.listening_ui): built and clicked programmatically ------------------------
def test_mos_page_needs_play_then_rating_and_says_so(plan, tmp_path):
    from lpcnet import listening_ui as ui_mod
    ui = ui_mod.listening_page(plan, "mos", "ui1", tmp_path, seed=4)
    n = ui.session.n_trials
    path = tmp_path / "sessions" / "mos_ui1.jsonl"
    assert ui.progress.value == f"trial 1 of {n}" and ui.back_button.disabled
    assert ui.radio.disabled and ui.radio.value is None and "<audio" not in ui.players["Sample"].value
    assert ui.status.value == "Play the sample, then choose a rating."
    ui.next_button.click()
    assert ui.status.value == "Not saved: play the sample before rating it." and not path.exists()
    ui.play_buttons["Sample"].click()
    assert "<audio" in ui.players["Sample"].value and "autoplay" in ui.players["Sample"].value
    assert not ui.radio.disabled and ui.status.value == "Choose a rating."
    ui.next_button.click()
    assert ui.status.value == "Not saved: choose a rating first." and not path.exists()
    ui.radio.value = 5
    assert ui.status.value == "Rating 5 (Excellent) chosen: press Next to save it."
    first = ui.session.current["id"]
    ui.next_button.click()
    assert ui.progress.value == f"trial 2 of {n}" and ui.radio.value is None and ui.radio.disabled
    assert ui.status.value == "Saved to mos_ui1.jsonl. Play the sample, then choose a rating."
    ui.back_button.click()                      # back shows the earlier answer; change it
    assert ui.radio.value == 5 and not ui.radio.disabled
    ui.radio.value = 2
    ui.next_button.click()
    assert {r["trial_id"]: r["rating"] for r in R.load_results(tmp_path, "mos")} == {first: 2}
    for i in range(n - 1):
        ui.play_buttons["Sample"].click()
        ui.radio.value = 3 + (i % 2)
        if i == n - 2:
            assert ui.status.value.endswith("press Finish to save it.")
        ui.next_button.click()
    assert ui.session.done and ui.next_button.disabled and ui.progress.value.startswith("done")
    status = ui.status.value
    ui._on_next()                               # a second click on Finish: nothing changes
    assert ui.status.value == status == f"Saved to mos_ui1.jsonl. All {n} trials answered and saved."
    page = ui.results.children
    assert "Thank you" in page[0].value and "1 listener(s) x 4 utterance(s)" in page[0].value
    assert "nan" not in page[0].value and page[1].value[:4] == b"\x89PNG"
    # a new page for the same listener resumes finished: straight to the results
    again = ui_mod.listening_page(plan, "mos", "ui1", tmp_path, seed=4)
    assert again.session.finished and again.results.children


def test_mushra_page_needs_every_sample_played_and_every_slider_moved(plan, tmp_path):
    from lpcnet import listening_ui as ui_mod
    ui = ui_mod.listening_page(plan, "mushra", "ui2", tmp_path, seed=4)
    letters = ["A", "B", "C", "D", "E"]
    assert list(ui.sliders) == letters and list(ui.play_buttons) == ["Reference"] + letters
    assert all(s.disabled and not s.readout for s in ui.sliders.values())
    ui.play_buttons["Reference"].click()
    ui.play_buttons["A"].click()
    assert not ui.sliders["A"].disabled and ui.sliders["B"].disabled
    assert ui.status.value == "Play sample(s) B, C, D, E, then rate each one with its slider."
    for lab in letters[1:]:
        ui.play_buttons[lab].click()
    assert ui.status.value == "Move the slider of A, B, C, D, E (every sample needs a rating)."
    ui.next_button.click()
    assert ui.status.value == "Not saved: no slider was moved: rate every sample."
    slots = ui.session.current["slots"]
    names = [ui.session.condition_name(k) for k in slots]
    for lab, name in list(zip(letters, names))[:3]:
        ui.sliders[lab].value = 100 if name == "reference" else 40
    ui.next_button.click()
    assert ui.status.value == "Not saved: rate every sample: the slider of D, E was not moved."
    for lab, name in list(zip(letters, names))[3:]:
        ui.sliders[lab].value = 100 if name == "reference" else 40
    assert ui.status.value == "Every sample rated: press Next to save."
    ui.next_button.click()
    rec = L.read_records(tmp_path / "sessions" / "mushra_ui2.jsonl")[-1]
    assert rec["ratings"] == {k: 100.0 if n == "reference" else 40.0 for k, n in zip(slots, names)}
    assert ui.progress.value == "trial 2 of 4" and all(s.disabled for s in ui.sliders.values())
    ui.back_button.click()
    assert [s.value for s in ui.sliders.values()] == [100 if n == "reference" else 40 for n in names]
    assert ui.status.value == "Every sample rated: press Next to save."


# --- hostile input: one-line refusals ----------------------------------------------------------
def _session_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _rewrite(path, records) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))


def _simulated_folder(plan, folder, kind, *listeners):
    for i, who in enumerate(listeners):
        L.simulate_listener(L.ListeningSession(plan, kind, who, folder, seed=3), seed=i)
    return folder


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(rating=float("nan")), r"'rating' is nan, expected an integer 1\.\.5"),
    (lambda r: r.update(rating=42), r"'rating' is 42, expected an integer 1\.\.5"),
    (lambda r: r.update(rating="good"), r"'rating' is 'good'"),
    (lambda r: r.update(rating=None), r"'rating' is None"),
    (lambda r: r.pop("rating"), r"has no 'rating'"),
    (lambda r: r.pop("listener"), r"has no 'listener'"),
    (lambda r: r.pop("condition"), r"'condition' is None"),
    (lambda r: r.update(listener="b"), r"'listener' is 'b', expected 'a'"),
    (lambda r: r.update(listener="../x"), r"'listener' is '\.\./x', expected 'a'"),
    (lambda r: r.update(kind="mushra"), r"'kind' is 'mushra', expected 'mos'"),
])
def test_bad_mos_records_are_refused_naming_file_and_line(plan, tmp_path, change, message):
    folder = _simulated_folder(plan, tmp_path, "mos", "a", "b")
    path = tmp_path / "sessions" / "mos_a.jsonl"
    records = _session_lines(path)
    change(records[0])
    _rewrite(path, records)
    with pytest.raises(LpcnetError, match=f"^{re.escape(str(path))}: line 1: record {message}") as exc:
        R.summarize_results(folder, "mos", plan.conditions)
    assert "\n" not in str(exc.value)
    with pytest.raises(LpcnetError, match=message):     # resuming the session refuses it too
        L.ListeningSession(plan, "mos", "a", folder, seed=3)


def test_bad_session_files_are_refused_in_one_line(plan, tmp_path):
    folder = _simulated_folder(plan, tmp_path, "mos", "a")
    sessions = tmp_path / "sessions"
    good = (sessions / "mos_a.jsonl").read_text()
    cases = {"[1, 2, 3]\n": "line 1: record expected a JSON object",
             b"\xff\xfe\x00garbage": "not UTF-8 text"}
    for content, message in cases.items():
        (sessions / "mos_a.jsonl").write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(LpcnetError, match=message):
            R.summarize_results(folder, "mos")
    (sessions / "mos_a.jsonl").write_text(good)
    (sessions / "mos_a_copy.jsonl").write_text(good)      # a copied file: its name disagrees
    with pytest.raises(LpcnetError, match="mos_a_copy.jsonl: line 1: record 'listener' is 'a', expected 'a_copy'"):
        R.summarize_results(folder, "mos")
    (sessions / "mos_a_copy.jsonl").unlink()
    (sessions / "mos_z.jsonl").mkdir()
    with pytest.raises(LpcnetError, match="mos_z.jsonl: is a folder"):
        R.summarize_results(folder, "mos")
    (sessions / "mos_z.jsonl").rmdir()
    (tmp_path / "conditions.json").rename(tmp_path / "keys.bak")
    (tmp_path / "conditions.json").mkdir()
    with pytest.raises(LpcnetError, match="conditions.json: is a folder"):
        R.summarize_results(folder, "mos")


@pytest.mark.parametrize("score, message", [(150, "expected numbers 0..100"),
                                            (float("nan"), "expected numbers 0..100"),
                                            (None, "expected numbers 0..100")])
def test_bad_mushra_scores_are_refused_not_averaged_or_screened(plan, tmp_path, score, message):
    folder = _simulated_folder(plan, tmp_path, "mushra", "a", "b")
    path = tmp_path / "sessions" / "mushra_a.jsonl"
    records = _session_lines(path)
    for r in records:
        r["ratings"] = {k: score for k in r["ratings"]}
    _rewrite(path, records)
    with pytest.raises(LpcnetError, match=f"{path}: line 1: record 'ratings' holds .*{message}"):
        R.summarize_results(folder, "mushra", plan.conditions)


def test_mushra_record_without_the_reference_score_is_refused(plan, tmp_path):
    folder = _simulated_folder(plan, tmp_path, "mushra", "a")
    path = tmp_path / "sessions" / "mushra_a.jsonl"
    ref = json.loads((tmp_path / "conditions.json").read_text())["keys"]["reference"]
    records = _session_lines(path)
    records[0]["ratings"].pop(ref)
    _rewrite(path, records)
    with pytest.raises(LpcnetError, match=r"line 1: record 'ratings' is .*expected one score per slot"):
        R.summarize_results(folder, "mushra")
    records[0]["slots"].remove(ref)       # consistent, but the hidden reference is gone
    _rewrite(path, records)
    with pytest.raises(LpcnetError, match="line 1: MUSHRA record has no score of the hidden 'reference'"):
        R.summarize_results(folder, "mushra")


def test_order_and_kind_are_checked(plan, tmp_path):
    folder = _simulated_folder(plan, tmp_path, "mos", "a")
    with pytest.raises(LpcnetError, match="unknown condition.*lpcnet_typo in the order"):
        R.summarize_results(folder, "mos", ["reference", "lpcnet_typo"])
    with pytest.raises(LpcnetError, match="rated condition.*anchor_lp3500.*missing from the order"):
        R.summarize_results(folder, "mos", ["reference"])
    for kind in ("MOS", "abx"):
        with pytest.raises(LpcnetError, match=f"unknown kind '{kind}': expected mos or mushra"):
            R.summarize_results(folder, kind)


def test_a_single_rating_per_condition_says_no_ci_in_table_and_plot(speech, tmp_path):
    one = L.build_plan({"arctic_a0009": speech["arctic_a0009"]})
    take = L.ListeningSession(one, "mos", "solo", tmp_path)
    while not take.finished:
        take_trial(take, 4)
    res = R.summarize_results(tmp_path, "mos", one.conditions)
    text = R.format_results(res)
    assert "nan" not in text and text.count("no CI (n=1)") == len(one.conditions)
    ax = R.plot_results(res).axes[0]
    assert [t.get_text() for t in ax.texts] == ["no CI (n=1)"] * len(one.conditions)
    assert not any(len(c.get_segments()) for c in ax.collections)      # no error bar drawn


def test_plan_session_and_folder_arguments_are_checked(speech, plan, tmp_path, monkeypatch):
    x = speech["arctic_a0007"]
    with pytest.raises(LpcnetError, match="level_db: expected a finite level"):
        L.build_plan({"u": x}, level_db=float("nan"))
    with pytest.raises(LpcnetError, match="u/reference: audio of 1 sample.*too short"):
        L.build_plan({"u": x[:1]})
    with pytest.raises(LpcnetError, match="u/reference: integer audio must be int16"):
        L.build_plan({"u": np.arange(1, 3, dtype=np.int64) * 10**9})
    with pytest.raises(LpcnetError, match=r"u/reference: float audio must lie in \[-1, 1\].*peak of 5"):
        L.build_plan({"u": np.full(1600, 5.0, np.float32)})
    for bad in (-1, 1.5, True):
        with pytest.raises(LpcnetError, match="n_prompts: expected a whole number >= 0"):
            L.heldout_speech(bad)
    monkeypatch.setenv("LPCNET_LISTENING_DIR", str(tmp_path))
    assert L.default_test_dir("epoch20") == tmp_path / "epoch20"
    for name in ("../../x", "/etc", "..", "a/b", ""):
        with pytest.raises(LpcnetError, match="expected one folder name"):
            L.default_test_dir(name)
    from lpcnet import listening_ui as ui_mod
    for seed in (-1, "abc", 1.5):
        with pytest.raises(LpcnetError, match="seed: expected a whole number >= 0"):
            ui_mod.listening_page(plan, "mos", "a", tmp_path, seed=seed)


def test_results_page_shows_a_bad_record_in_the_status_line(speech, tmp_path):
    from lpcnet import listening_ui as ui_mod
    one = L.build_plan({"arctic_a0009": speech["arctic_a0009"]})
    _simulated_folder(one, tmp_path, "mos", "other")
    path = tmp_path / "sessions" / "mos_other.jsonl"
    records = _session_lines(path)
    records[0]["rating"] = "good"
    _rewrite(path, records)
    ui = ui_mod.listening_page(one, "mos", "me", tmp_path, seed=3)
    while not ui.session.finished:
        ui.play_buttons["Sample"].click()
        ui.radio.value = 3
        ui.next_button.click()
    assert ui.status.value.startswith("Saved to mos_me.jsonl. All 3 trials answered and saved. "
                                      f"Results not shown: {path}: line 1: record 'rating' is 'good'")
