"""Listening-test logic (lpcnet.listening) and its widgets (lpcnet.listening_ui) on real speech."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import signal, stats

from lpcnet import listening as L
from lpcnet.audio import load_speech
from lpcnet.errors import LpcnetError
from lpcnet.formats import lin2ulaw


@pytest.fixture(scope="module")
def speech(heldout_wav, train_wav):
    """The two slice utterances, 1.5 s each to keep the tests fast."""
    return {"a0007": load_speech(heldout_wav)[0][:24000], "a0009": load_speech(train_wav)[0][:24000]}


@pytest.fixture(scope="module")
def plan(speech):
    rng = np.random.default_rng(0)
    noisy = {u: (x + rng.normal(0, 0.01, x.shape)).astype(np.float32) for u, x in speech.items()}
    # an int16 "checkpoint" output, 160 samples shorter, as lpcnet.synth returns it
    int16 = {u: np.round(x[:-160] * 32768).astype(np.int16) for u, x in speech.items()}
    return L.build_plan(speech, {"ckpt_noisy": noisy, "ckpt_int16": int16})


def band_energy(x, lo, hi):
    f, p = signal.welch(x, fs=16000, nperseg=1024)
    return p[(f >= lo) & (f < hi)].sum()


def test_anchors_are_the_expected_degradations(speech):
    x = speech["a0009"]  # female voice: real energy above 4 kHz
    lp = L.lowpass_anchor(x)
    assert band_energy(lp, 4500, 8000) < 1e-4 * band_energy(x, 4500, 8000)
    assert band_energy(lp, 100, 3000) == pytest.approx(band_energy(x, 100, 3000), rel=0.05)
    u = L.ulaw_anchor(x)
    codes = lin2ulaw(x * 32768.0)
    assert len(np.unique(u)) == len(np.unique(codes)) <= 256
    snr = 10 * np.log10(np.sum(x ** 2) / np.sum((u - x) ** 2))
    assert 20 < snr < 45            # 8-bit µ-law: audible but mild quantisation noise


def test_plan_conditions_lengths_and_errors(plan, speech):
    assert plan.conditions == ["reference", "anchor_lp3500", "anchor_ulaw8", "ckpt_noisy", "ckpt_int16"]
    for u in plan.utterances:
        lengths = {len(plan.stimulus(u, c)) for c in plan.conditions}
        assert lengths == {24000 - 160}
    # the int16 system was scaled back to [-1, 1]
    assert np.allclose(plan.stimulus("a0007", "ckpt_int16"), speech["a0007"][:23840], atol=1 / 32768)
    with pytest.raises(LpcnetError, match="lacks utterance"):
        L.build_plan(speech, {"x": {"a0007": speech["a0007"]}})
    with pytest.raises(LpcnetError, match="reserved"):
        L.build_plan(speech, {"reference": speech})
    with pytest.raises(LpcnetError, match="unknown condition"):
        L.build_plan(speech, degradation={"nope": 0.5})
    custom = L.build_plan({"a0007": speech["a0007"]}, {"ep1": {"a0007": speech["a0007"]}},
                          anchors=False, degradation={"ep1": 0.9})
    assert custom.conditions == ["reference", "ep1"] and custom.degradation == {"reference": 0.0, "ep1": 0.9}
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


def test_mos_session_saves_resumes_and_overwrites(plan, tmp_path):
    s = L.ListeningSession(plan, "mos", "ann", tmp_path, seed=7)
    assert s.progress() == f"trial 1 of {len(plan.utterances) * len(plan.conditions)}"
    with pytest.raises(LpcnetError, match="not answered"):
        s.next()
    for bad in (0, 6, 2.5, "4", True):
        with pytest.raises(LpcnetError, match="1..5"):
            s.answer(bad)
    first = s.current["id"]
    s.answer(4)
    s.next()
    s.answer(2)
    s.next()
    lines = (tmp_path / "mos_ann.jsonl").read_text().splitlines()
    assert [json.loads(x)["rating"] for x in lines] == [4, 2]
    # "kernel restart": a new session over the same file resumes at trial 3
    s2 = L.ListeningSession(plan, "mos", "ann", tmp_path, seed=7)
    assert s2.index == 2 and s2.answers[first] == 4
    # back to trial 1 and change its answer: the file keeps both, the summary the last
    s2.back(); s2.back(); s2.back()
    assert s2.index == 0 and s2.current["id"] == first and s2.current_answer() == 4
    s2.answer(1)
    recs = L.load_results(tmp_path, "mos")
    assert len(recs) == 2 and {r["trial_id"]: r["rating"] for r in recs}[first] == 1
    assert len((tmp_path / "mos_ann.jsonl").read_text().splitlines()) == 3
    with pytest.raises(LpcnetError, match="seed"):
        L.ListeningSession(plan, "mos", "ann", tmp_path, seed=8)
    with pytest.raises(LpcnetError, match="listener id"):
        L.ListeningSession(plan, "mos", "../x", tmp_path)


def test_crash_during_save_loses_only_the_current_trial(plan, tmp_path, monkeypatch):
    s = L.ListeningSession(plan, "mos", "cy", tmp_path, seed=1)
    L.simulate_listener(s, max_trials=3)
    before = (tmp_path / "mos_cy.jsonl").read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(L.json, "dumps", boom)
    with pytest.raises(OSError):
        s.answer(3)
    monkeypatch.undo()
    assert (tmp_path / "mos_cy.jsonl").read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))
    s2 = L.ListeningSession(plan, "mos", "cy", tmp_path, seed=1)
    assert s2.index == 3
    assert L.simulate_listener(s2) == s2.n_trials - 3 and s2.done


def test_mos_summary_ranks_conditions_with_t_intervals(plan, tmp_path):
    for who in ("l1", "l2", "l3", "l4"):
        L.simulate_listener(L.ListeningSession(plan, "mos", who, tmp_path, seed=0), seed=5)
    recs = L.load_results(tmp_path, "mos")
    assert len(recs) == 4 * len(plan.utterances) * len(plan.conditions)
    scores = L.mos_scores(recs)
    rows = {r["condition"]: r for r in L.summarize(scores, plan.conditions)}
    assert rows["reference"]["mean"] > rows["anchor_ulaw8"]["mean"] > rows["anchor_lp3500"]["mean"]
    x = np.array(scores["anchor_ulaw8"])
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert rows["anchor_ulaw8"]["ci_low"] == pytest.approx(lo)
    assert rows["anchor_ulaw8"]["ci_high"] == pytest.approx(hi)
    m, blo, bhi = L.mean_ci(x, bootstrap=2000)
    assert blo < m < bhi and bhi - blo == pytest.approx(hi - lo, rel=0.4)
    text = L.format_summary(L.summarize(scores, plan.conditions), "MOS")
    assert "anchor_lp3500" in text and "95% CI" in text
    fig = L.plot_summary(L.summarize(scores, plan.conditions), "mos")
    assert len(fig.axes[0].patches) == len(plan.conditions)


def test_mushra_post_screening_excludes_a_careless_listener(plan, tmp_path):
    for who in ("g1", "g2", "g3"):
        L.simulate_listener(L.ListeningSession(plan, "mushra", who, tmp_path, seed=2), seed=1)
    s = L.ListeningSession(plan, "mushra", "careless", tmp_path, seed=2)
    L.simulate_listener(s, seed=1, careless=True)
    with pytest.raises(LpcnetError, match="cover conditions"):
        L.ListeningSession(plan, "mushra", "g9", tmp_path, seed=2).answer({"reference": 100})
    recs = L.load_results(tmp_path, "mushra")
    kept, excluded = L.mushra_post_screening(recs)
    assert kept == ["g1", "g2", "g3"] and set(excluded) == {"careless"}
    rows = {r["condition"]: r for r in L.summarize(L.mushra_scores(recs, kept))}
    assert rows["reference"]["mean"] > 90 > rows["anchor_ulaw8"]["mean"] > rows["anchor_lp3500"]["mean"]
    assert rows["reference"]["n"] == 3 * len(plan.utterances)
    g1 = [r for r in recs if r["listener"] == "g1"]
    assert all(r["ratings"]["reference"] >= 90 and set(r["slots"]) == set(plan.conditions) for r in g1)


# --- widgets (lpcnet.listening_ui): built and clicked programmatically ------------------------
def test_mos_page_clicks_save_through_the_session(plan, tmp_path):
    from lpcnet import listening_ui as ui_mod
    ui = ui_mod.listening_page(plan, "mos", "ui1", tmp_path, seed=4)
    n = ui.session.n_trials
    assert ui.progress.value == f"trial 1 of {n}" and ui.back_button.disabled
    assert "<audio" in ui.stimuli.children[0].value and ui.radio.value is None
    ui.next_button.click()                      # no rating chosen: nothing saved
    assert ui.status.value.startswith("Choose") and not (tmp_path / "mos_ui1.jsonl").exists()
    first = ui.session.current["id"]
    ui.radio.value = 5
    ui.next_button.click()
    assert ui.progress.value == f"trial 2 of {n}" and ui.radio.value is None
    ui.back_button.click()                      # back shows the earlier answer; change it
    assert ui.radio.value == 5
    ui.radio.value = 2
    ui.next_button.click()
    assert {r["trial_id"]: r["rating"] for r in L.load_results(tmp_path, "mos")} == {first: 2}
    for _ in range(n - 1):
        ui.radio.value = 3
        ui.next_button.click()
    assert ui.session.done and ui.next_button.disabled and ui.progress.value.startswith("done")
    page = ui.results.children
    assert "Thank you" in page[0].value and "reference" in page[0].value
    assert page[1].value[:4] == b"\x89PNG"
    # a new page for the same listener resumes finished: straight to the results
    again = ui_mod.listening_page(plan, "mos", "ui1", tmp_path, seed=4)
    assert again.session.finished and again.results.children


def test_mushra_page_sliders_save_ratings_per_condition(plan, tmp_path):
    from lpcnet import listening_ui as ui_mod
    ui = ui_mod.listening_page(plan, "mushra", "ui2", tmp_path, seed=4)
    assert len(ui.sliders) == len(plan.conditions)
    assert len(ui.stimuli.children) == len(plan.conditions) + 1     # open reference + letters
    slots = ui.session.current["slots"]
    for slider, cond in zip(ui.sliders, slots):
        slider.value = 100 if cond == "reference" else 40
    ui.next_button.click()
    rec = L.read_records(tmp_path / "mushra_ui2.jsonl")[-1]
    assert rec["ratings"]["reference"] == 100 and rec["ratings"]["anchor_lp3500"] == 40
    assert ui.progress.value == "trial 2 of 2"
    ui.back_button.click()
    assert [s.value for s in ui.sliders] == [100 if c == "reference" else 40 for c in slots]
