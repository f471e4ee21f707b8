"""Quality tracked while training (lpcnet.train_eval): scoring, rows, TensorBoard, skipping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lpcnet import train_eval as TE
from lpcnet.errors import LpcnetError, LpcnetWarning

ROOT = Path(__file__).resolve().parents[1]
DEMO_BLOB = ROOT / "models" / "demo" / "lpcnet_demo_256.bin"


def test_groups_and_file_collection(slice_dir, tmp_path):
    assert TE.utterance_group("x/it_IT_m_Carlo__vm-intro.wav") == "it_IT_m_Carlo"
    assert TE.utterance_group("arctic_a0007.wav") == "arctic_a0007"
    files = TE.eval_files([slice_dir])
    assert [f.name for f in files] == ["arctic_a0007.wav", "arctic_a0009.wav"]
    with pytest.raises(Exception, match="unique|given twice"):   # the same file (data.collect_inputs)
        TE.eval_files([slice_dir / "arctic_a0007.wav", slice_dir / "arctic_a0007.wav"])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "arctic_a0007.wav").write_bytes((slice_dir / "arctic_a0007.wav").read_bytes())
    with pytest.raises(Exception, match="unique"):                # two files, one utterance name
        TE.eval_files([slice_dir / "arctic_a0007.wav", tmp_path / "other" / "arctic_a0007.wav"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="no audio files"):
        TE.eval_files([tmp_path / "empty"])


@pytest.mark.skipif(not DEMO_BLOB.is_file(), reason="demo model not carried")
def test_score_blob_demo_model_beats_noise(heldout_wav, tmp_path):
    """The trained demo model scores far above an untrained tiny model on unseen speech."""
    from lpcnet.config import ModelConfig
    from lpcnet.export import blob_from_weights, write_blob
    from lpcnet.model import build_lpcnet, model_weights

    good = TE.score_blob(DEMO_BLOB, [heldout_wav], step=7, sequences=112, audio_dir=tmp_path / "a",
                         use_dnsmos=False)
    cfg = ModelConfig(gru_a=16, gru_b=8)
    write_blob(tmp_path / "tiny.bin", blob_from_weights(model_weights(build_lpcnet(cfg).model), cfg))
    bad = TE.score_blob(tmp_path / "tiny.bin", [heldout_wav], step=0, sequences=0, use_dnsmos=False)
    assert good[0]["step"] == 7 and good[0]["group"] == "arctic_a0007"
    assert (tmp_path / "a" / "arctic_a0007.wav").is_file()
    assert good[0]["stoi"] > 0.6 > bad[0]["stoi"]
    assert good[0]["gpe_pct"] < 60
    # the features' own pitch error on this male voice, the floor of any vocoder told it
    assert 0 <= good[0]["feature_gpe_pct"] < 20 and "told_gross_pct" in good[0]


def test_tracker_writes_rows_csv_tensorboard_and_skips_when_busy(slice_dir, tmp_path):
    from lpcnet.config import ModelConfig
    from lpcnet.model import build_lpcnet, model_weights

    cfg = ModelConfig(gru_a=16, gru_b=8)
    weights = model_weights(build_lpcnet(cfg).model)
    files = TE.eval_files([slice_dir])
    tracker = TE.QualityTracker(files, tmp_path, use_dnsmos=False)
    assert tracker.submit(weights, cfg, step=10, sequences=80, epoch=None)
    # Scoring two utterances takes seconds: an evaluation due right away is skipped, not queued.
    assert not tracker.submit(weights, cfg, step=20, sequences=160, epoch=None)
    tracker.close(timeout=300)
    assert tracker.skipped == 1 and tracker.submitted == 1
    assert all(r["ok"] for r in tracker.results), tracker.results
    assert "1 evaluations scored, 1 skipped" in tracker.report(100.0)

    rows = TE.load_rows(tmp_path)
    assert {r["utterance"] for r in rows} == {"arctic_a0007", "arctic_a0009"}
    assert all(r["step"] == 10 and r["sequences"] == 80 for r in rows)
    assert all(np.isfinite(r["stoi"]) and 0 <= r["stoi"] <= 1 for r in rows)
    csv_text = (tmp_path / "eval" / "quality.csv").read_text().splitlines()
    assert csv_text[0].startswith("step,sequences,epoch,utterance,group") and len(csv_text) == 3
    assert sorted(p.name for p in (tmp_path / "eval" / "step_0000010").iterdir()) == [
        "arctic_a0007.wav", "arctic_a0009.wav"]
    assert not list((tmp_path / "eval").glob(".step_*.bin"))          # blobs removed after use

    import tensorflow as tf

    tags = set()
    for ev in (tmp_path / "tensorboard" / "eval").glob("events.*"):
        for e in tf.compat.v1.train.summary_iterator(str(ev)):
            tags |= {v.tag for v in e.summary.value}
    assert {"quality/stoi", "quality/pesq_wb", "quality_arctic_a0007/stoi"} <= tags
    assert any(t.startswith("audio/arctic_a0007") for t in tags)

    hist = TE.history(rows)
    assert hist[0]["step"] == 10 and "stoi" in hist[0]
    fig = TE.plot_time_to_quality(rows)
    assert len(fig.axes) == 3          # dnsmos_ovrl was not scored


def test_load_rows_missing_is_one_line_error(tmp_path):
    with pytest.raises(Exception, match="quality.jsonl"):
        TE.load_rows(tmp_path)


def test_append_rows_accumulates(tmp_path):
    TE.append_rows(tmp_path, [{"step": 1, "sequences": 2, "utterance": "u", "group": "g", "stoi": 0.5}])
    TE.append_rows(tmp_path, [{"step": 2, "sequences": 4, "utterance": "u", "group": "g", "stoi": 0.7}])
    rows = TE.load_rows(tmp_path)
    assert [r["stoi"] for r in rows] == [0.5, 0.7]
    assert [h["stoi"] for h in TE.history(rows)] == [0.5, 0.7]
    assert json.loads((tmp_path / "quality.jsonl").read_text().splitlines()[1])["step"] == 2


def test_train_with_eval_audio_scores_beside_training(slice_training_pair, heldout_wav, tmp_path, capsys):
    """`lpcnet train --eval-audio A --eval-every 2`: rows at step 2 and at the end, one report line."""
    from lpcnet.config import ModelConfig, TrainConfig
    from lpcnet.train import add_arguments, configs_from_args, train
    import argparse

    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--features", str(slice_training_pair[0]), "--data", str(slice_training_pair[1]),
                         "--eval-audio", str(heldout_wav), "--eval-every", "2", "--eval-dnsmos", "False"])
    _, parsed = configs_from_args(args)
    assert parsed.eval_audio == (str(heldout_wav),) and parsed.eval_every == 2 and not parsed.eval_dnsmos

    tcfg = TrainConfig(features=str(slice_training_pair[0]), data=str(slice_training_pair[1]),
                       output="m", model_dir=str(tmp_path), batch_size=4, epochs=1, steps_per_epoch=3,
                       seed=11, progress=False, enable_tensorboard=True, eval_audio=(str(heldout_wav),),
                       eval_every=2, eval_dnsmos=False, log_every=1)
    train(ModelConfig(gru_a=16, gru_b=8), tcfg)
    out = capsys.readouterr().out
    assert "quality:" in out and "training-side cost" in out
    rows = TE.load_rows(tmp_path)
    steps = sorted({r["step"] for r in rows})
    assert steps[-1] == 3 and set(steps) <= {2, 3}          # step 2 unless the scorer was busy; the end always
    assert all(r["sequences"] == 4 * r["step"] and r["utterance"] == "arctic_a0007" for r in rows)
    assert (tmp_path / "tensorboard" / "eval").is_dir()
    curve = TE.loss_curve(tmp_path / "tensorboard")
    assert [c["step"] for c in curve] == [1, 2, 3] and all(np.isfinite(c["loss"]) for c in curve)
    assert TE.main(["loss-curve", str(tmp_path / "tensorboard"), str(tmp_path / "loss.csv")]) == 0
    assert (tmp_path / "loss.csv").read_text().startswith("step,loss,sequences_per_s")
    # the run's own event file as the output: refused, the event file unchanged
    tb = tmp_path / "tensorboard"
    event = sorted(tb.glob("events.out.tfevents.*"))[0]
    before = event.read_bytes()
    assert TE.main(["loss-curve", str(tb), str(event)]) == 1
    assert "refusing to overwrite an input" in capsys.readouterr().err and event.read_bytes() == before
    # no batch/loss (the scorer's eval folder), junk, a cut-off event file: one line, loss.csv kept
    kept = (tmp_path / "loss.csv").read_text()
    junk, cut = tmp_path / "junk", tmp_path / "cut"
    junk.mkdir(), cut.mkdir()
    (junk / event.name).write_text("not an event file\n" * 10)
    (cut / event.name).write_bytes(before[: len(before) - 7])
    for folder, words in ((tb / "eval", "no batch/loss scalars"), (junk, "not a readable TensorBoard"),
                          (cut, "not a readable TensorBoard")):
        assert TE.main(["loss-curve", str(folder), str(tmp_path / "loss.csv")]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
        assert (tmp_path / "loss.csv").read_text() == kept


def test_train_refuses_missing_eval_audio(slice_training_pair, tmp_path):
    from lpcnet.config import ModelConfig, TrainConfig
    from lpcnet.train import train

    tcfg = TrainConfig(features=str(slice_training_pair[0]), data=str(slice_training_pair[1]),
                       output="m", model_dir=str(tmp_path), batch_size=4, epochs=1, steps_per_epoch=2,
                       progress=False, eval_audio=(str(tmp_path / "nope.wav"),))
    with pytest.raises(Exception, match="nope.wav"):
        train(ModelConfig(gru_a=16, gru_b=8), tcfg)


@pytest.mark.parametrize("kind", ["text", "one_sample", "no_audio_folder", "missing"])
def test_train_refuses_unscorable_eval_audio_before_writing_anything(kind, slice_training_pair, tmp_path,
                                                                     capsys):
    """Eval audio that could never be scored (not audio, 1 sample, a folder without audio, a
    missing file) is refused in one line naming it, before model_dir is created."""
    import soundfile as sf

    from lpcnet.cli import main

    bad = {"text": tmp_path / "text.wav", "one_sample": tmp_path / "one.wav",
           "no_audio_folder": tmp_path / "notes", "missing": tmp_path / "nope.wav"}[kind]
    if kind == "text":
        bad.write_text("not audio\n")
    elif kind == "one_sample":
        sf.write(bad, np.array([0.1], np.float32), 16000)
    elif kind == "no_audio_folder":
        bad.mkdir()
        (bad / "readme.txt").write_text("x")
    model_dir = tmp_path / "m"
    rc = main(["train", "--features", str(slice_training_pair[0]), "--data", str(slice_training_pair[1]),
               "--model_dir", str(model_dir), "--grua-size", "16", "--grub-size", "8",
               "--batch_size", "4", "--epochs", "1", "--steps_per_epoch", "2", "--no-progress",
               "--eval-audio", str(bad)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "--eval-audio" in err[0] and bad.name in err[0], err
    assert not model_dir.exists()
    if kind == "one_sample":
        assert "too short" in err[0]


def test_tracker_report_says_why_evaluations_failed():
    tracker = TE.QualityTracker.__new__(TE.QualityTracker)
    tracker.results = [{"step": 2, "ok": False, "error": "FormatError: x.wav: shorter than one frame"}]
    tracker.skipped, tracker.callback_s = 0, 0.0
    line = tracker.report(10.0)
    assert "0 evaluations scored, 1 failed (first: FormatError: x.wav" in line


def test_plot_runs_quality_on_the_carried_demo_curve():
    """Two runs' means against steps (the carried demo-model v2 curve, and the same rows cut at
    step 2000 as a second run): one line each, cut at max_step."""
    rows = TE.load_rows(ROOT / "models" / "training_demo_v2")
    early = [r for r in rows if r["step"] <= 2000]
    fig = TE.plot_runs_quality({"standard": rows, "early": early}, metrics=("stoi", "pesq_wb"),
                               max_step=3000)
    assert len(fig.axes) == 2
    lines = fig.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == ["standard", "early"]
    steps = sorted({r["step"] for r in rows if r["step"] <= 3000})
    assert list(lines[0].get_xdata()) == steps
    assert list(lines[1].get_xdata()) == [s for s in steps if s <= 2000]
    np.testing.assert_allclose(lines[0].get_ydata(), [h["stoi"] for h in TE.history(rows) if h["step"] <= 3000])
    with pytest.raises(Exception, match="at least one run"):
        TE.plot_runs_quality({"empty": []})


@pytest.mark.skipif(not DEMO_BLOB.is_file(), reason="demo model not carried")
def test_compare_sampling_paired_differences_through_the_cli(slice_dir, tmp_path, capsys):
    """``compare-sampling``: the same files and seeds under plain and sharpened sampling, the
    paired differences equal the per-pair rows' differences, and the CI is a real t interval."""
    out = tmp_path / "cmp.json"
    assert TE.main(["compare-sampling", str(DEMO_BLOB), "--files", str(slice_dir), "--seeds", "0", "1",
                    "--int8", "--no-dnsmos", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    rows, diffs = doc["rows"], doc["differences"]
    assert sorted((r["condition"], r["utterance"], r["seed"]) for r in rows) == sorted(
        (c, u, s) for c in ("plain", "sharpen") for u in ("arctic_a0007", "arctic_a0009") for s in (0, 1))
    by = {(r["condition"], r["utterance"], r["seed"]): r for r in rows}
    d = [by["sharpen", u, s]["stoi"] - by["plain", u, s]["stoi"]
         for u in ("arctic_a0007", "arctic_a0009") for s in (0, 1)]
    assert diffs["stoi"]["pairs"] == 4
    np.testing.assert_allclose(diffs["stoi"]["diff"], np.mean(d))
    np.testing.assert_allclose(diffs["stoi"]["ci95"], 3.182446 * np.std(d, ddof=1) / 2, rtol=1e-5)
    # sharpening changes what is sampled, and the two seeds draw different speech
    assert by["sharpen", "arctic_a0007", 0]["stoi"] != by["plain", "arctic_a0007", 0]["stoi"]
    assert by["plain", "arctic_a0007", 0]["stoi"] != by["plain", "arctic_a0007", 1]["stoi"]
    assert "stoi" in capsys.readouterr().out
    with pytest.raises(Exception, match="no rows of condition 'argmax'"):
        TE.paired_differences(rows, "plain", "argmax")


def test_trend_on_the_carried_demo_curve():
    """The line of each metric against log2(sequences) on the carried v2 curve: the same fit as
    np.polyfit of the per-evaluation means, and the target crossing consistent with it."""
    rows = TE.load_rows(ROOT / "models" / "training_demo_v2")
    h = [p for p in TE.history(rows) if p["step"] >= 10000]
    t = TE.trend(rows, "stoi", 0.95, since_step=10000)
    slope, icept = np.polyfit(np.log2([p["sequences"] for p in h]), [p["stoi"] for p in h], 1)
    assert t["points"] == len(h) and np.isclose(t["per_doubling"], slope)
    assert t["per_doubling"] > 0          # STOI still rises on this run
    assert np.isclose(np.log2(t["sequences_to_target"]) * slope + icept, 0.95)
    assert t["sequences_to_target"] > h[-1]["sequences"]
    # a target already passed by the line: reached at the last evaluation
    assert TE.trend(rows, "stoi", 0.5, since_step=10000)["sequences_to_target"] == h[-1]["sequences"]
    # lower is better for pitch errors: a line heading down reaches a lower target later
    g = TE.trend(rows, "gpe_pct", 0.0, since_step=10000)
    assert g["sequences_to_target"] is None or g["sequences_to_target"] > h[-1]["sequences"]
    with pytest.raises(Exception, match="need at least 3"):
        TE.trend(rows, "stoi", 0.9, since_step=10 ** 9)


CARRIED = ROOT / "models" / "training_demo_v2"


def test_load_rows_refuses_bad_files_and_skips_a_cut_off_last_line(tmp_path, capsys):
    """quality.jsonl cut mid-line (a copy of a live run): the whole rows load, a warning says
    which line was skipped, and appending after it keeps the file valid. A bad middle line,
    binary bytes, or rows that are not quality rows: one line naming the file."""
    text = (CARRIED / "quality.jsonl").read_text()
    lines = text.splitlines(keepends=True)
    cut = tmp_path / "cut" / "quality.jsonl"
    cut.parent.mkdir()
    cut.write_text("".join(lines[:5]) + lines[5][:30])
    with pytest.warns(LpcnetWarning, match="skipped its cut-off last line 6"):
        assert len(TE.load_rows(cut)) == 5
    TE.append_rows(cut.parent, [dict(json.loads(lines[5]), step=10 ** 6)])
    assert [r["step"] for r in TE.load_rows(cut)][-1] == 10 ** 6
    bad = tmp_path / "bad.jsonl"
    for content, words in ((lines[0][:30] + "\n" + "".join(lines[1:3]), "line 1 is not JSON"),
                           (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "not UTF-8"),
                           ('{"loss": 1.0}\n', "row 1 is not a quality row"), ("[1, 2]\n", "row 1 is not")):
        bad.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(LpcnetError, match=words) as e:
            TE.load_rows(bad)
        assert str(bad) in str(e.value) and "\n" not in str(e.value)
    for f in (TE.history, TE.summarize, TE.voice_table):
        with pytest.raises(LpcnetError, match="not a quality row"):
            f([{"utterance": "u", "stoi": 0.5}])


def test_trend_and_plots_refuse_what_they_cannot_draw_or_fit():
    rows = TE.load_rows(CARRIED)
    with pytest.raises(LpcnetError, match="expected a finite stoi"):
        TE.trend(rows, "stoi", float("nan"), since_step=10000)
    zero = [dict(r, sequences=0) if r["step"] == min(r["step"] for r in rows) else r for r in rows]
    with pytest.raises(LpcnetError, match="sequences <= 0"):
        TE.trend(zero, "stoi", 0.9, since_step=0)
    assert TE.trend(zero, "stoi", 0.9, since_step=10000)["points"] >= 3
    for call in (lambda: TE.plot_time_to_quality(rows, metrics=("bogus",)),
                 lambda: TE.plot_runs_quality({"a": rows}, metrics=("bogus", "loss")),
                 lambda: TE.plot_time_to_quality([{k: v for k, v in r.items() if k not in TE.TRACKED}
                                                  for r in rows])):
        with pytest.raises(LpcnetError, match="none of the metrics"):
            call()


def _run_dir(tmp_path, config_text=None):
    run = tmp_path / "run"
    run.mkdir()
    cfg = CARRIED / "demo2_256_config.json"
    (run / cfg.name).write_text(cfg.read_text() if config_text is None else config_text)
    return run


@pytest.mark.parametrize("config_text, words", [
    ('{"train": {"steps_per_epoch": 5', "not JSON"),
    ('{"model": {}}', "no whole train.steps_per_epoch"),
    ('{"train": {"steps_per_epoch": 0, "batch_size": 4}}', "expected whole numbers >= 1")])
def test_score_refuses_a_bad_config_in_one_line(config_text, words, tmp_path, heldout_wav, capsys):
    run = _run_dir(tmp_path, config_text)
    assert TE.main(["score", str(run), "--eval-audio", str(heldout_wav), "--no-dnsmos"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "demo2_256_config.json" in err[0] and words in err[0], err


def test_score_checks_flags_names_and_outputs_before_any_work(tmp_path, heldout_wav, capsys):
    run = _run_dir(tmp_path)
    (run / "demo2_256_best.keras").symlink_to(CARRIED / "demo2_256_109.keras")
    for flag in ("--every", "--world-size"):
        with pytest.raises(SystemExit) as e:
            TE.main(["score", str(run), "--eval-audio", str(heldout_wav), flag, "0"])
        assert e.value.code == 2
    capsys.readouterr()
    # a name that is not <prefix>_<grua>_<epoch>: skipped with a note (no checkpoint left: nothing scored)
    assert TE.main(["score", str(run), "--eval-audio", str(heldout_wav), "--no-dnsmos"]) == 0
    assert "skipped" in capsys.readouterr().err and not (run / "eval").exists()
    # the eval audio is the synthesis the checkpoint's scoring would write: refused, unchanged
    (run / "demo2_256_109.keras").symlink_to(CARRIED / "demo2_256_109.keras")
    steps = json.loads((run / "demo2_256_config.json").read_text())["train"]["steps_per_epoch"]
    wav = run / "eval" / f"step_{109 * steps:07d}" / heldout_wav.name
    wav.parent.mkdir(parents=True)
    wav.write_bytes(heldout_wav.read_bytes())
    assert TE.main(["score", str(run), "--eval-audio", str(wav), "--no-dnsmos"]) == 1
    assert "refusing to overwrite an input" in capsys.readouterr().err
    assert wav.read_bytes() == heldout_wav.read_bytes() and not (run / "eval" / "quality.jsonl").exists()


def test_epoch_and_variant_plots_refuse_what_they_cannot_draw():
    """Curves of the carried demo-model runs (standard and end-to-end loss.csv): mixed epoch
    key types, a missing history, NaN-only histories are one-line errors, not empty figures."""
    from lpcnet import plots
    from lpcnet import quality as Q

    rows = TE.load_rows(CARRIED)
    by_step = {p["step"]: {m: p[m] for m in ("stoi", "pesq_wb") if m in p} for p in TE.history(rows)[:4]}
    assert len(Q.plot_over_epochs(by_step).axes) == 2
    mixed = {str(k) if i % 2 else k: v for i, (k, v) in enumerate(by_step.items())}
    nan = {k: {m: float("nan") for m in v} for k, v in by_step.items()}
    for bad, words in ((mixed, "not numbers"), (nan, "has a finite value"), ({}, "no epochs")):
        with pytest.raises(LpcnetError, match=words):
            Q.plot_over_epochs(bad)

    def losses(path):
        return [float(line.split(",")[1]) for line in path.read_text().splitlines()[1:6]]

    std = {"loss": losses(CARRIED / "loss.csv")}
    e2e = {"loss": losses(CARRIED / "end2end" / "loss.csv"), "cross_entropy": losses(CARRIED / "loss.csv")}
    assert len(plots.variant_losses(std, e2e).axes) == 2
    for a, b, words in ((None, e2e, "first history is NoneType"), (std, None, "second history is NoneType"),
                        ({"loss": [float("nan")] * 3}, e2e, "'loss' has no finite value"),
                        (std, dict(e2e, cross_entropy=[]), "'cross_entropy' has no finite value")):
        with pytest.raises(LpcnetError, match=words):
            plots.variant_losses(a, b)
