"""Nothing lost, nothing silently wrong (docs/promises.md): outputs that would overwrite inputs,
output paths that cannot be files, implausible inputs, truthful ``lpcnet eval`` and crash safety,
each through the commands themselves on files the kit's own tools wrote."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lpcnet import cli
from lpcnet import formats as F
from lpcnet.errors import FormatError, LpcnetWarning

ROOT = Path(__file__).resolve().parents[1]


def _run(argv, capsys) -> tuple[int, list[str], list[str]]:
    """``lpcnet ARGV`` in this process -> (exit status, stdout lines, stderr lines)."""
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out.strip().splitlines(), err.strip().splitlines()


def _snapshot(folder: Path) -> dict:
    """{relative path: bytes} of every file below ``folder`` (hidden temp files included)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def files(tmp_path_factory, train_wav, heldout_wav):
    """Real inputs written by the kit: speech (wav, .s16), features, a checkpoint, a blob."""
    from lpcnet.audio import load_speech
    from lpcnet.config import ModelConfig
    from lpcnet.export import export_checkpoint
    from lpcnet.features import dump_data
    from lpcnet.model import build_lpcnet

    d = tmp_path_factory.mktemp("inputs")
    shutil.copy(train_wav, d / "speech.wav")
    shutil.copy(heldout_wav, d / "heldout.wav")
    F.write_s16(d / "speech.s16", F.float_to_int16(load_speech(train_wav)[0]))
    dump_data(d / "heldout.wav", d / "heldout.f32", mode="test", progress=False)
    build_lpcnet(ModelConfig(gru_a=16, gru_b=8), seed=3).model.save(d / "tiny.keras")
    export_checkpoint(d / "tiny.keras", d / "tiny.bin")
    return d


@pytest.fixture
def work(files, tmp_path):
    """A private copy of the inputs (commands under test may only read them)."""
    for p in files.iterdir():
        shutil.copy(p, tmp_path / p.name)
    return tmp_path


# --- 1. outputs never destroy inputs ---------------------------------------------------------
def _links(w: Path) -> None:
    os.link(w / "speech.s16", w / "hardlink.s16")
    os.symlink(w / "heldout.wav", w / "symlink.wav")


SAME_FILE_CASES = {
    "prepare_over_its_input": (["prepare", "speech.wav", "-o", "speech.wav"], "is the same file as the input"),
    "prepare_manifest_over_input": (["prepare", "speech.wav", "-o", "out.s16", "--manifest", "speech.wav"],
                                    "is the same file as the input"),
    "prepare_two_outputs": (["prepare", "speech.wav", "-o", "out.s16", "--manifest", "./out.s16"],
                            "is the same file as the output"),
    "dump_data_over_its_input": (["dump-data", "-test", "speech.s16", "speech.s16"], "same file as the input"),
    "dump_data_over_a_hard_link": (["dump-data", "-test", "speech.s16", "hardlink.s16"], "same file as the input"),
    "dump_data_two_outputs": (["dump-data", "-train", "speech.s16", "f.f32", "sub/../f.f32"],
                              "same file as the output"),
    "export_over_its_checkpoint": (["export", "tiny.keras", "tiny.keras"], "same file as the input"),
    "synth_over_its_features": (["synth", "--checkpoint", "tiny.bin", "--features", "heldout.f32",
                                 "--output", "heldout.f32"], "same file as the input"),
    "synth_over_a_symlink": (["synth", "--checkpoint", "tiny.bin", "--audio", "heldout.wav",
                              "--output", "symlink.wav"], "same file as the input"),
    "eval_json_over_reference": (["eval", "--reference", "heldout.wav", "--synth", "a=speech.wav",
                                  "--json", "heldout.wav", "--no-dnsmos"], "same file as the input"),
}


@pytest.mark.parametrize("case", sorted(SAME_FILE_CASES))
def test_an_output_that_is_an_input_is_refused_before_anything_is_written(case, work, capsys, monkeypatch):
    argv, expect = SAME_FILE_CASES[case]
    _links(work)
    monkeypatch.chdir(work)
    before = _snapshot(work)
    rc, _, err = _run(argv, capsys)
    assert rc == 1 and len(err) == 1 and expect in err[0], err
    assert _snapshot(work) == before                  # nothing written, nothing left behind


def test_training_that_would_overwrite_its_finetune_checkpoint_is_refused(work, capsys, slice_training_pair):
    feats, data = slice_training_pair
    (work / "m").mkdir()
    shutil.copy(work / "tiny.keras", work / "m" / "m_16_01.keras")
    before = _snapshot(work)
    rc, _, err = _run(["train", "--features", feats, "--data", data, "--model_dir", work / "m",
                       "--output", "m", "--epochs", "1", "--batch_size", "4", "--no-progress",
                       "--finetune", work / "m" / "m_16_01.keras"], capsys)
    assert rc == 1 and len(err) == 1 and "m_16_01.keras: is the same file as the input --finetune" in err[0], err
    assert _snapshot(work) == before


# --- 2. output paths that cannot be files: one line, every command -------------------------
PATH_COMMANDS = {
    "prepare": lambda out: ["prepare", "speech.wav", "-o", out],
    "dump-data": lambda out: ["dump-data", "-test", "speech.s16", out],
    "export": lambda out: ["export", "tiny.keras", out],
    "synth": lambda out: ["synth", "--checkpoint", "tiny.bin", "--features", "heldout.f32", "--output", out],
    "eval": lambda out: ["eval", "--reference", "heldout.wav", "--synth", "a=heldout.wav",
                         "--no-dnsmos", "--json", out],
}


@pytest.mark.parametrize("command", sorted(PATH_COMMANDS))
@pytest.mark.parametrize("where,expect", [("a_folder", "is a folder"),
                                          ("a_file/out.x", "a_file is a file, not a folder"),
                                          ("a_file/sub/out.x", "a_file is a file, not a folder")])
def test_output_path_errors_are_one_line(command, where, expect, work, capsys, monkeypatch):
    (work / "a_folder").mkdir()
    (work / "a_file").write_text("x")
    monkeypatch.chdir(work)
    before = _snapshot(work)
    rc, _, err = _run(PATH_COMMANDS[command](where), capsys)
    assert rc == 1 and len(err) == 1 and expect in err[0] and where in err[0], err
    assert _snapshot(work) == before


def test_a_device_is_never_replaced(work, capsys, monkeypatch):
    monkeypatch.chdir(work)
    rc, _, err = _run(["export", "tiny.keras", "/dev/null"], capsys)
    assert rc == 1 and len(err) == 1 and "not a regular file" in err[0]
    assert Path("/dev/null").is_char_device()


# --- 5. implausible inputs ------------------------------------------------------------------
def _x1_layout(feats: np.ndarray) -> np.ndarray:
    """36-float features rearranged into the older 55-float layout (floats 18..35 never written)."""
    old = np.zeros((len(feats), 55), np.float32)
    old[:, :18] = feats[:, :18]
    old[:, 36:38] = feats[:, 18:20]
    old[:, 38] = -1.5                                  # log10 of the prediction error (X1 only)
    old[:, 39:55] = feats[:, 20:36]
    return old


def test_55_float_features_are_recognised(files, tmp_path, capsys):
    feats = np.array(F.read_features(files / "heldout.f32"))
    n = len(feats) // 36 * 36                          # 220 n is then a multiple of 144 too
    _x1_layout(feats[:n]).tofile(tmp_path / "x1.f32")
    assert (tmp_path / "x1.f32").stat().st_size % 144 == 0
    rc, _, err = _run(["info", tmp_path / "x1.f32"], capsys)
    assert rc == 1 and len(err) == 1 and "older 55-float generation" in err[0], err
    _x1_layout(feats[:n - 1]).tofile(tmp_path / "x1b.f32")       # not a multiple of 144
    with pytest.raises(FormatError, match="55-float features of the older generation"):
        F.read_features(tmp_path / "x1b.f32")


IMPOSSIBLE = {   # column(s), change, what the message names
    "pitch": (slice(18, 19), lambda v: v * 0 + 7.0, "pitch feature (index 18) 7 outside [-1.36, 3.12]"),
    "pitch_corr": (slice(19, 20), lambda v: v * 0 + 2.0, "pitch correlation (index 19) 2 outside"),
    "cepstrum": (slice(0, 1), lambda v: v + 80.0, "band log-energy encoded by the cepstrum"),
    "lpc": (slice(20, 36), lambda v: v * 0 + 1e5, "LPC coefficient / binomial(16, k)"),
}


@pytest.mark.parametrize("case", sorted(IMPOSSIBLE))
def test_impossible_feature_values_are_refused_with_numbers(case, files, tmp_path, capsys):
    cols, change, what = IMPOSSIBLE[case]
    feats = np.array(F.read_features(files / "heldout.f32"))
    feats[100:110, cols] = change(feats[100:110, cols])
    F.write_features(tmp_path / "bad.f32", feats)      # finite: the writer accepts it
    rc, _, err = _run(["info", tmp_path / "bad.f32"], capsys)
    assert rc == 1 and len(err) == 1, err
    assert f"10 of {len(feats)} frames" in err[0] and "first at frame 100" in err[0] and what in err[0], err
    rc, _, err = _run(["synth", "--checkpoint", files / "tiny.bin", "--features", tmp_path / "bad.f32",
                       "--output", tmp_path / "out.wav"], capsys)
    assert rc == 1 and len(err) == 1 and what in err[0] and not (tmp_path / "out.wav").exists()


def test_extracted_features_of_extreme_signals_are_accepted(tmp_path):
    """Full-scale noise, a Nyquist square wave and silence: the extractor's own extremes pass."""
    from lpcnet.features import extract

    t = np.arange(160 * 200)
    for sig in (np.random.default_rng(0).integers(-32768, 32767, len(t)),
                np.where(t % 2, 32767, -32768), np.zeros(len(t))):
        F.check_feature_values(extract(np.asarray(sig, np.int16)))


def test_prepare_warns_about_clipping_and_refuses_a_peak_above_full_scale(speech_loud, tmp_path, capsys):
    rc, _, err = _run(["prepare", speech_loud, "-o", tmp_path / "a.s16", "--normalize", "peak",
                       "--level-db", "3", "--no-progress"], capsys)
    assert rc == 1 and len(err) == 1 and "clips every file" in err[0] and not (tmp_path / "a.s16").exists()
    rc, out, err = _run(["prepare", speech_loud, "-o", tmp_path / "b.s16", "--no-progress"], capsys)
    assert rc == 0 and len(err) == 1 and err[0].startswith("lpcnet prepare: warning: 1 of 1 file(s)"), err
    manifest = json.loads((tmp_path / "b.s16.json").read_text())
    clipped = manifest["sources"][0]["clipped_samples"]
    assert clipped > 0.001 * manifest["total_samples"] and f"{clipped} samples in all" in err[0]
    assert manifest["warnings"] == [err[0].split("warning: ", 1)[1]]
    from lpcnet.data import prepare

    with pytest.warns(LpcnetWarning, match="clipped"):           # the library warns too
        prepare([speech_loud], tmp_path / "c.s16", progress=False)


@pytest.fixture
def speech_loud(train_wav, tmp_path):
    """The slice at +12 dB as a float WAV (peaks beyond full scale, as float files can hold)."""
    import soundfile as sf

    x, rate = sf.read(train_wav, dtype="float32")
    sf.write(tmp_path / "loud.wav", 4.0 * x, rate, subtype="FLOAT")
    return tmp_path / "loud.wav"


# --- 4. truthful evaluation -----------------------------------------------------------------
@pytest.fixture(scope="module")
def synthesis(files, tmp_path_factory):
    """Copy-synthesis of the held-out male utterance by the demo model (``lpcnet synth``)."""
    from lpcnet.demo import DEMO_BLOB

    if not DEMO_BLOB.is_file():
        pytest.skip("no demo model in models/demo")
    out = tmp_path_factory.mktemp("synth") / "syn.wav"
    assert cli.main(["synth", "--checkpoint", str(DEMO_BLOB), "--audio", str(files / "heldout.wav"),
                     "--output", str(out)]) == 0
    return out


def test_eval_never_scores_a_pair_it_cannot_fully_score(files, synthesis, tmp_path, capsys):
    import soundfile as sf

    from lpcnet.audio import load_speech, write_wav

    syn, _ = load_speech(synthesis)
    write_wav(tmp_path / "short40ms.wav", syn[:-640])                 # within the tolerance
    write_wav(tmp_path / "half.wav", syn[:len(syn) // 2])             # half the audio missing
    write_wav(tmp_path / "silent.wav", np.zeros(len(syn)))
    nan = syn.copy()
    nan[1000:1010] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT")
    conds = {"full": synthesis, "short40ms": tmp_path / "short40ms.wav", "half": tmp_path / "half.wav",
             "silent": tmp_path / "silent.wav", "nan": tmp_path / "nan.wav"}
    rc, out, err = _run(["eval", "--reference", files / "heldout.wav", "--synth",
                         *[f"{k}={v}" for k, v in conds.items()], "--min-envelope-corr", "-1",
                         "--no-dnsmos", "--json", tmp_path / "r.json"], capsys)
    assert rc == 1 and len(err) == 1 and "3 of 5 pair(s) not scored" in err[0], err
    text = "\n".join(out)
    assert "half: heldout.wav: NOT SCORED: synthesis is " in text and "only the overlap" in text
    assert "silent: heldout.wav: NOT SCORED: synthesis " in text and "silent.wav: silent (all zero" in text
    assert "nan: heldout.wav: NOT SCORED: synthesis" in text and "10 of" in text and "NaN or Inf" in text
    result = json.loads((tmp_path / "r.json").read_text())
    table = {r["condition"]: r for r in result["table"]}
    assert table["full"]["n"] == table["short40ms"]["n"] == 1 and table["full"]["not_scored"] == 0
    assert table["full"]["stoi"] > 0.7 and abs(table["short40ms"]["stoi"] - table["full"]["stoi"]) < 0.05
    for bad in ("half", "silent", "nan"):
        assert table[bad]["n"] == 0 and table[bad]["not_scored"] == 1 and "stoi" not in table[bad]
    assert result["not_scored"] == 3


def test_eval_pairs_file_must_be_complete_and_without_repeats(files, synthesis, tmp_path, capsys):
    ref, ref2 = files / "heldout.wav", files / "speech.wav"
    (tmp_path / "rep.csv").write_text(f"condition,reference,synthesis\nlp,{ref},{synthesis}\n"
                                      f"lp,{ref2},{ref2}\nlp,{ref},{ref}\n")
    rc, _, err = _run(["eval", "--pairs", tmp_path / "rep.csv", "--no-dnsmos"], capsys)
    assert rc == 1 and len(err) == 1 and "line 4 repeats condition 'lp'" in err[0] and "line 2" in err[0], err
    (tmp_path / "gap.csv").write_text(f"condition,reference,synthesis\na,{ref},{synthesis}\n"
                                      f"a,{ref2},{ref2}\nb,{ref},{synthesis}\n")
    rc, _, err = _run(["eval", "--pairs", tmp_path / "gap.csv", "--no-dnsmos"], capsys)
    assert rc == 1 and len(err) == 1 and "condition 'b' has 1 synthesis file(s) for 2 reference(s)" in err[0]
    rc, _, err = _run(["eval", "--reference", ref, ref, "--synth", f"a={synthesis}", f"a={synthesis}",
                       "--no-dnsmos"], capsys)
    assert rc == 1 and len(err) == 1 and "given twice" in err[0]


# --- 3. training never produces garbage silently ----------------------------------------------
@pytest.mark.parametrize("flags,expect", [
    (["--lr", "nan"], "--lr must be a finite number > 0, got nan"),
    (["--lr", "inf"], "--lr must be a finite number > 0, got inf"),
    (["--lr", "0"], "--lr must be a finite number > 0, got 0.0"),
    (["--lr=-1e-3"], "--lr must be a finite number > 0, got -0.001"),
    (["--decay", "nan"], "--decay must be a finite number >= 0"),
    (["--decay", "-1"], "--decay must be a finite number >= 0")])
def test_bad_learning_rates_are_refused_at_start(flags, expect, slice_training_pair, tmp_path, capsys):
    rc, _, err = _run(["train", "--features", slice_training_pair[0], "--data", slice_training_pair[1],
                       "--model_dir", tmp_path / "m", *flags], capsys)
    assert rc == 1 and len(err) == 1 and expect in err[0], err
    assert not (tmp_path / "m").exists()


def _tiny(pair, model_dir, **kw):
    from lpcnet.config import ModelConfig, TrainConfig

    base = dict(features=str(pair[0]), data=str(pair[1]), output="m", model_dir=str(model_dir),
                batch_size=4, epochs=2, steps_per_epoch=2, seed=5, progress=False)
    base.update(kw)
    return ModelConfig(gru_a=16, gru_b=8), TrainConfig(**base)


def _poison_at(step: int):
    """Test-only fault: a callback that makes GRU B's kernel NaN after global step ``step`` (as a
    diverging optimizer step would leave it)."""
    import keras

    class Poison(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) == step:
                v = self.model.get_layer("gru_b").cell.kernel
                v.assign(np.full(v.shape, np.nan, np.float32))
    return Poison()


@pytest.mark.parametrize("poison_step,error_step,kept", [(3, 4, "m_16_01.keras"), (2, 2, None)])
def test_a_diverging_run_stops_with_the_step_and_keeps_the_last_good_checkpoint(
        poison_step, error_step, kept, slice_training_pair, tmp_path):
    from lpcnet.errors import LpcnetError
    from lpcnet.model import read_checkpoint_weights
    from lpcnet.train import train

    mcfg, tcfg = _tiny(slice_training_pair, tmp_path / "m")
    with pytest.raises(LpcnetError) as exc:
        train(mcfg, tcfg, callbacks=[_poison_at(poison_step)])
    msg = str(exc.value)
    assert f"training diverged at step {error_step}" in msg, msg
    names = sorted(p.name for p in (tmp_path / "m").glob("*.keras"))
    if kept:     # NaN spreads with the next update; the epoch-1 checkpoint stays, epoch 2's is not written
        assert "NaN/Inf value(s)" in msg and f"last good checkpoint is {tmp_path / 'm' / kept}" in msg
        assert names == [kept]
        read_checkpoint_weights(tmp_path / "m" / kept)            # finite: readable
    else:        # NaN weights at the last step of epoch 1: found before its checkpoint
        assert "weight gru_b/" in msg and "no checkpoint of this run was written" in msg
        assert names == []


def test_non_finite_weights_are_refused_by_export_synth_and_finetune(files, slice_training_pair,
                                                                     tmp_path, capsys):
    import keras

    from lpcnet.export import blob_from_weights, write_blob
    from lpcnet.model import config_from_weights, model_weights

    m = keras.saving.load_model(files / "tiny.keras")
    w = m.get_layer("gru_a").cell.recurrent_kernel
    w.assign(np.where(np.eye(*w.shape, dtype=bool), np.inf, keras.ops.convert_to_numpy(w)))
    m.save(tmp_path / "inf.keras")
    weights = model_weights(m)
    write_blob(tmp_path / "inf.bin", blob_from_weights(weights, config_from_weights(weights)))
    for argv in (["export", tmp_path / "inf.keras", tmp_path / "out.bin"],
                 ["synth", "--checkpoint", tmp_path / "inf.keras", "--features", files / "heldout.f32",
                  "--output", tmp_path / "a.wav"],
                 ["synth", "--checkpoint", tmp_path / "inf.bin", "--features", files / "heldout.f32",
                  "--output", tmp_path / "b.wav"],
                 ["train", "--features", slice_training_pair[0], "--data", slice_training_pair[1],
                  "--batch_size", "4", "--model_dir", tmp_path / "ft", "--finetune", tmp_path / "inf.keras"]):
        rc, _, err = _run(argv, capsys)
        assert rc == 1 and len(err) == 1 and ("NaN or Inf" in err[0] or "NaN/Inf" in err[0]), (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inf.bin", "inf.keras"]


@pytest.fixture(scope="module")
def one_epoch_run(slice_training_pair, tmp_path_factory):
    from lpcnet.train import train

    d = tmp_path_factory.mktemp("run") / "m"
    train(*_tiny(slice_training_pair, d, epochs=1))
    return d


@pytest.mark.parametrize("flags,run_world,expect", [
    (["--batch_size", "8"], 1, "--batch_size 8 (run: 4)"),
    (["--batch_size", "4", "--use_amp"], 1, "precision amp_bfloat16 (run: fp32)"),
    (["--batch_size", "4", "--grua-size", "32"], 1, "--grua-size 32 (run: 16)"),
    (["--batch_size", "4"], 2, "1 process(es) (run: 2)")])
def test_resume_with_settings_that_differ_from_the_run_is_refused(flags, run_world, expect, one_epoch_run,
                                                                  slice_training_pair, tmp_path, capsys):
    run = tmp_path / "m"
    shutil.copytree(one_epoch_run, run)
    cfg = json.loads((run / "m_16_config.json").read_text())
    assert cfg["run"] == {"world_size": 1, "replicas": 1, "precision": "fp32"}
    if run_world != 1:           # the run as a Horovod run of run_world processes records it
        cfg["run"]["world_size"] = run_world
        (run / "m_16_config.json").write_text(json.dumps(cfg))
    before = _snapshot(run)
    rc, _, err = _run(["train", "--features", slice_training_pair[0], "--data", slice_training_pair[1],
                       "--model_dir", run, "--output", "m", "--epochs", "2", "--resume", "--no-progress",
                       *flags], capsys)
    assert rc == 1 and len(err) == 1 and expect in err[0] and "differ from the run" in err[0], err
    assert _snapshot(run) == before


# --- 6. crash safety --------------------------------------------------------------------------
def test_fsync_of_the_file_before_the_rename_and_of_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(a, b):
        events.append(("rename", str(a), str(b)))
        real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    with F.atomic_output(tmp_path / "out.bin") as f:
        f.write(b"data")
    tmp = str(tmp_path / ".out.bin.tmp.bin")
    assert events == [("fsync", tmp), ("rename", tmp, str(tmp_path / "out.bin")), ("fsync", str(tmp_path))]


def test_a_killed_prepare_leaves_a_temp_file_that_the_next_run_reuses(train_wav, tmp_path):
    src = tmp_path / "src"                 # 400 names of one file (hard links: each file once)
    src.mkdir()
    shutil.copy(train_wav, src / "s0.wav")
    for i in range(1, 400):
        os.link(src / "s0.wav", src / f"s{i}.wav")
    (tmp_path / "list.txt").write_text("\n".join(str(src / f"s{i}.wav") for i in range(400)))
    out, tmp = tmp_path / "input.s16", tmp_path / ".input.s16.tmp.s16"
    cmd = [sys.executable, "-m", "lpcnet.data", "--list", str(tmp_path / "list.txt"), "-o", str(out),
           "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    while not (tmp.exists() and tmp.stat().st_size > 0) and time.monotonic() - t0 < 60:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert tmp.exists() and not out.exists()           # the kill left a partial temp file, no output
    (tmp_path / "list.txt").write_text(str(train_wav))
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.s16", "input.s16.json", "list.txt", "src"]
    assert len(F.read_s16(out)) == json.loads((tmp_path / "input.s16.json").read_text())["total_samples"]


@pytest.mark.parametrize("sig,status,word", [(signal.SIGTERM, 143, "terminated"),
                                             (signal.SIGINT, 130, "interrupted")])
def test_sigterm_and_ctrl_c_remove_the_temp_files_and_write_no_output(sig, status, word, train_wav, tmp_path):
    """SIGTERM (what a job scheduler sends) cleans up as Ctrl-C does: no temp file, no output."""
    from lpcnet.audio import load_speech

    pcm = F.float_to_int16(load_speech(train_wav)[0])
    F.write_s16(tmp_path / "long.s16", np.tile(pcm, 16000 * 600 // len(pcm) + 1))   # 10 minutes
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lpcnet.cli", "dump-data", "-train", str(tmp_path / "long.s16"),
           str(out / "features.f32"), str(out / "data.u8")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while not (out.is_dir() and any(p.name.startswith(".") for p in out.iterdir())) \
            and time.monotonic() - t0 < 60:
        time.sleep(0.01)
    time.sleep(0.1)
    proc.send_signal(sig)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == status, err[-2000:]
    assert err.strip().splitlines()[-1] == f"lpcnet dump-data: {word}"
    assert list(out.iterdir()) == []


KILL_AT_CHECKPOINT = """
import os, signal, sys
real = os.replace
def replace(src, dst):          # die after the checkpoint temp is written, before its rename
    if str(dst).endswith(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)
    real(src, dst)
os.replace = replace
from lpcnet.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_killed_training_then_truncated_checkpoint_resume_from_the_newest_intact(
        slice_training_pair, tmp_path, capsys):
    feats, data = slice_training_pair
    run = tmp_path / "m"
    args = ["train", "--features", str(feats), "--data", str(data), "--model_dir", str(run), "--output", "m",
            "--grua-size", "16", "--grub-size", "8", "--batch_size", "4", "--steps_per_epoch", "2",
            "--seed", "5", "--no-progress"]
    proc = subprocess.run([sys.executable, "-c", KILL_AT_CHECKPOINT, "m_16_02.keras", *args,
                           "--epochs", "2"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert sorted(p.name for p in run.iterdir()) == [".m_16_02.keras.tmp.keras", "m_16_01.keras",
                                                     "m_16_config.json"]
    # The next run removes the leftover and says so; it continues from epoch 1.
    rc, out, err = _run(args + ["--epochs", "2", "--resume"], capsys)
    assert rc == 0, err
    assert any("removed 1 temporary file(s)" in line and ".m_16_02.keras.tmp.keras" in line for line in out)
    assert any(line.startswith("trained epochs 2..2") for line in out), out
    assert sorted(p.name for p in run.iterdir()) == ["m_16_01.keras", "m_16_02.keras", "m_16_config.json"]
    # A newest checkpoint cut short (a full disk, a copy) is skipped with a message.
    newest = run / "m_16_02.keras"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    rc, out, err = _run(args + ["--epochs", "3", "--resume"], capsys)
    assert rc == 0, err
    assert any("--resume: skipped m_16_02.keras (truncated or corrupt" in line and
               f"resuming from the newest intact checkpoint {run / 'm_16_01.keras'} (epoch 1)" in line
               for line in out), out
    assert any(line.startswith("trained epochs 2..3") for line in out), out
    from lpcnet.model import read_checkpoint_weights

    for epoch in (1, 2, 3):
        read_checkpoint_weights(run / f"m_16_{epoch:02d}.keras")      # all intact again
