"""Synthesis: native C engine vs Keras reference engine, copy-synthesis, CLI, sanitizer build.

The model is a tiny LPCNet (GRU A 32, GRU B 16) trained for a few steps in a
session fixture with ``lpcnet.train.train`` on the training speaker of the
bundled slice; synthesis uses the held-out speaker (arctic_a0007).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lpcnet.errors import LpcnetError

ROOT = Path(__file__).resolve().parents[1]
HELDOUT = ROOT / "data" / "slice" / "arctic_a0007.wav"
TRAIN = ROOT / "data" / "slice" / "arctic_a0009.wav"
NATIVE = ROOT / "native"
#: Float engines: per-sample bit probabilities agree within this (max abs).
PROB_TOL_FLOAT = 1e-5
#: int8 engine (both engines teacher-forced on the same codes): max / mean abs difference.
PROB_TOL_INT8_MAX, PROB_TOL_INT8_MEAN = 0.1, 0.01
#: Frames compared sample by sample (30 frames = 4800 samples of voiced speech).
FRAMES = slice(40, 70)


def _pcm(path):
    from lpcnet.audio import load_speech
    from lpcnet.formats import to_int16

    return to_int16(load_speech(path)[0].astype(np.float64) * 32768.0)


@pytest.fixture(scope="session")
def synth_lib():
    """Fresh build of the native engine (make), used by every native test."""
    if (NATIVE / "Makefile").is_file():
        subprocess.run(["make", "-s", "-C", str(NATIVE), "synth"], check=True, capture_output=True,
                       timeout=300)
        os.environ["LPCNET_SYNTH_LIB"] = str(NATIVE / "build" / "liblpcnet_synth.so")
    from lpcnet import synth

    return synth.load_library()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """Tiny model trained briefly with the kit's trainer -> (.keras checkpoint path, how)."""
    from lpcnet.config import ModelConfig, TrainConfig
    from lpcnet.features import extract_training
    from lpcnet.formats import write_data, write_features
    from lpcnet.train import train

    tmp = tmp_path_factory.mktemp("tiny")
    feats, data = extract_training(_pcm(TRAIN), seed=1)
    write_features(tmp / "features.f32", feats)
    write_data(tmp / "data.u8", data)
    mcfg = ModelConfig(gru_a=32, gru_b=16)
    tcfg = TrainConfig(features=str(tmp / "features.f32"), data=str(tmp / "data.u8"),
                       model_dir=str(tmp / "model"), output="tiny", batch_size=4, epochs=1,
                       steps_per_epoch=12, seed=1, progress=False)
    summary = train(mcfg, tcfg)
    ckpt = Path(summary["checkpoint"]) if summary.get("checkpoint") else None
    if ckpt is None or not ckpt.is_file():
        ckpt = sorted((tmp / "model").glob("tiny_32_*.keras"))[-1]
    return ckpt


@pytest.fixture(scope="session")
def heldout_features():
    from lpcnet.features import extract

    return extract(_pcm(HELDOUT))


@pytest.fixture(scope="session")
def engines(tiny_checkpoint, synth_lib):
    """(weights, cfg, NativeModel with int8 copies) of the tiny checkpoint."""
    from lpcnet import synth

    weights, cfg = synth.load_weights(tiny_checkpoint)
    model = synth.NativeModel(synth.blob_bytes(tiny_checkpoint, int8=True))
    return weights, cfg, model


@pytest.fixture(scope="session")
def keras_run(engines, heldout_features):
    """Keras reference samples and probabilities on the compared frames (seed 5)."""
    from lpcnet import synth

    weights, cfg, _ = engines
    return synth.KerasEngine(weights, cfg, seed=5).run(heldout_features[FRAMES], probs=True)


def test_native_matches_keras_float(engines, heldout_features, keras_run):
    from lpcnet import synth

    feats = heldout_features[FRAMES]
    ref, q_ref = keras_run
    for level in ("scalar", "avx2", "avx512", "auto"):
        synth.set_simd_level(level)
        out, q = synth.NativeStream(engines[2], seed=5).run(feats, probs=True)
        assert len(out) == len(feats) * 160
        mismatch = np.flatnonzero(out != ref)
        first = mismatch[0] if len(mismatch) else len(out)
        # Engines may only part at a genuine tie (bit probability within 1e-5 of its
        # threshold, float32 rounding decides); with float weights that is rare.
        assert first >= 3000 or _near_tie(q_ref[first], first, seed=5), \
            f"{level}: first differing sample {first}"
        n = first   # probabilities compared while both engines saw the same past
        np.testing.assert_allclose(q[:n, 1:], q_ref[:n, 1:], atol=PROB_TOL_FLOAT, rtol=0)
    synth.set_simd_level("auto")
    assert np.abs(ref.astype(np.int32)).max() > 100     # real signal, not silence


def _near_tie(q, t, seed, tol=1e-5) -> bool:
    """Whether sampling sample ``t`` from bit probabilities ``q`` meets a near-tie."""
    from lpcnet import synth

    thresholds = synth.bit_thresholds()
    k = synth.random_bytes(seed, 8 * t, 8)
    v = 0
    for b in range(8):
        p = q[(1 << b) + v]
        if abs(p - thresholds[k[b]]) < tol:
            return True
        v = 2 * v + int(p > thresholds[k[b]])
    return False


def test_forced_codes_give_same_probabilities_in_both_engines(engines, heldout_features):
    from lpcnet import synth

    weights, cfg, model = engines
    feats = heldout_features[FRAMES][:6]
    codes = np.random.default_rng(0).integers(100, 156, len(feats) * 160).astype(np.uint8)
    ko, kq = synth.KerasEngine(weights, cfg, seed=1).run(feats, probs=True, forced=codes)
    no, nq = synth.NativeStream(model, seed=1).run(feats, probs=True, forced=codes)
    np.testing.assert_allclose(nq[:, 1:], kq[:, 1:], atol=PROB_TOL_FLOAT, rtol=0)
    assert np.abs(no.astype(np.int32) - ko).max() <= 1
    _, iq = synth.NativeStream(model, seed=1, int8=True).run(feats, probs=True, forced=codes)
    d = np.abs(iq[:, 1:] - kq[:, 1:])
    assert d.max() < PROB_TOL_INT8_MAX and d.mean() < PROB_TOL_INT8_MEAN


def test_argmax_and_sharpen_match(engines, heldout_features):
    from lpcnet import synth

    weights, cfg, model = engines
    feats = heldout_features[FRAMES][:12]
    for opts in ({"argmax": True}, {"sharpen": True}):
        ref = synth.KerasEngine(weights, cfg, seed=2, **opts).run(feats)
        out = synth.NativeStream(model, seed=2, **opts).run(feats)
        assert np.array_equal(out, ref), opts


def test_streaming_equals_whole_utterance(engines, heldout_features):
    from lpcnet import synth

    model = engines[2]
    feats = heldout_features[:25]
    whole = synth.NativeStream(model, seed=9).run(feats)
    st = synth.NativeStream(model, seed=9)
    parts = [st.frame(f) for f in feats] + [st.flush()]
    assert [len(p) for p in parts[:3]] == [0, 0, 160]
    assert np.array_equal(np.concatenate(parts), whole)
    one = synth.NativeStream(model, seed=9).run(feats[:1])      # one frame works (docs/synthesis.md)
    assert len(one) == 160


def test_blocks_equal_whole_utterance(engines, heldout_features, tmp_path):
    """Long inputs go through in blocks (memory flat): any block size gives the whole-file samples."""
    from lpcnet import synth
    from lpcnet.formats import read_s16, write_features
    from lpcnet.synth_batch import synthesize_file

    model = engines[2]
    feats = heldout_features[:61]
    for int8 in (False, True):
        whole = synth.NativeStream(model, seed=4, int8=int8).run(feats)
        st = synth.NativeStream(model, seed=4, int8=int8)
        parts = [st.frames(feats[i:i + n]) for i, n in ((0, 1), (1, 2), (3, 17), (20, 41))] + [st.flush()]
        assert np.array_equal(np.concatenate(parts), whole), int8
        write_features(tmp_path / "f.f32", feats)
        n = synthesize_file(tmp_path / "f.f32", tmp_path / "o.s16", model, seed=4, int8=int8, block=7)
        assert n == len(whole) and np.array_equal(read_s16(tmp_path / "o.s16"), whole), int8


def test_a_bad_frame_in_a_later_block_is_reported_at_its_place_in_the_file(engines, heldout_features,
                                                                          tmp_path):
    """A NaN met block by block is named by its frame in the file (as `lpcnet info` names it);
    nothing is written."""
    from lpcnet.errors import FormatError
    from lpcnet.synth_batch import synthesize_file

    feats = np.array(heldout_features[:40])
    feats[23, 5] = np.nan
    feats.astype(np.float32).tofile(tmp_path / "f.f32")       # write_features refuses NaN
    with pytest.raises(FormatError, match=r"f\.f32: non-finite value nan at frame 23, index 5"):
        synthesize_file(tmp_path / "f.f32", tmp_path / "o.s16", engines[2], block=7)
    assert not (tmp_path / "o.s16").exists()


def _multi_run(model, utterances, streams, seed, **options):
    """Synthesise utterances with NativeMulti: stream s starts at step 3 s, and a stream whose
    utterance ends takes the next one left -> {index: samples}."""
    from lpcnet import synth

    multi = synth.NativeMulti(model, streams, **options)
    todo = list(range(len(utterances)))
    slot = [None] * streams          # [utterance index, frames fed, end steps done]
    got = {i: [] for i in todo}
    step = 0
    while todo or any(slot):
        feats = np.zeros((1, streams, 36), np.float32)
        cmd = np.zeros((1, streams), np.int8)
        for s in range(streams):
            if slot[s] is None and todo and step >= 3 * s:
                slot[s] = [todo.pop(0), 0, 0]
                multi.start(s, seed)
            if slot[s] is None:
                continue
            u, fed, ended = slot[s]
            if fed < len(utterances[u]):
                feats[0, s], cmd[0, s] = utterances[u][fed], synth.FEED
                slot[s][1] += 1
            else:
                cmd[0, s] = synth.END
                slot[s][2] += 1
        out, counts = multi.step(feats, cmd)
        for s in range(streams):
            if slot[s] is not None:
                got[slot[s][0]].append(out[0, s, :counts[0, s]])
                if slot[s][2] == synth.DELAY_FRAMES:
                    slot[s] = None
        step += 1
    return {u: np.concatenate(parts) for u, parts in got.items()}


@pytest.mark.parametrize("int8", [False, True])
def test_multi_stream_equals_single_stream(engines, heldout_features, int8):
    """Streams synthesised together (the int8 products shared by all of them) give, stream by
    stream, exactly the samples of a single stream with the same seed, at every SIMD level."""
    from lpcnet import synth

    model = engines[2]
    utterances = [heldout_features[a:b] for a, b in ((40, 70), (10, 22), (0, 1), (55, 80), (5, 9))]
    for level in ("scalar", "avx2", "avx512"):
        synth.set_simd_level(level)
        want = [synth.NativeStream(model, seed=3, int8=int8).run(u) for u in utterances]
        for streams in (1, 2, 4):
            got = _multi_run(model, utterances, streams, seed=3, int8=int8)
            for u, w in enumerate(want):
                assert np.array_equal(got[u], w), (level, streams, u)
    synth.set_simd_level("auto")


def test_multi_stream_odd_sizes(heldout_features, synth_lib):
    """Odd sizes (GRU A 24: an odd number of 8-output groups) and 3 streams (a pad stream)."""
    from lpcnet import synth
    from lpcnet.config import ModelConfig
    from lpcnet.export import blob_from_weights, blob_to_bytes
    from lpcnet.model import build_lpcnet, model_weights

    cfg = ModelConfig(gru_a=24, gru_b=8, cond_size=40)
    weights = model_weights(build_lpcnet(cfg, training=False, seed=4).model)
    model = synth.NativeModel(blob_to_bytes(blob_from_weights(weights, cfg, int8=True)))
    utterances = [heldout_features[a:b] for a, b in ((40, 52), (3, 9), (20, 31))]
    for int8 in (False, True):
        want = [synth.NativeStream(model, seed=8, int8=int8, sharpen=True).run(u) for u in utterances]
        got = _multi_run(model, utterances, 3, seed=8, int8=int8, sharpen=True)
        assert all(np.array_equal(got[u], w) for u, w in enumerate(want)), int8
    with pytest.raises(LpcnetError):
        synth.NativeMulti(model, 0)
    multi = synth.NativeMulti(model, 2)
    with pytest.raises(LpcnetError):
        multi.step(np.zeros((1, 2, 36), np.float32), np.array([[1, 9]], np.int8))


def test_odd_sizes_random_init(heldout_features, synth_lib):
    """GRU sizes that are not multiples of 16 exercise the SIMD tails (random init, no training)."""
    from lpcnet import synth
    from lpcnet.config import ModelConfig
    from lpcnet.export import blob_from_weights, blob_to_bytes
    from lpcnet.model import build_lpcnet, model_weights

    cfg = ModelConfig(gru_a=24, gru_b=8, cond_size=40)
    weights = model_weights(build_lpcnet(cfg, training=False, seed=4).model)
    model = synth.NativeModel(blob_to_bytes(blob_from_weights(weights, cfg, int8=True)))
    feats = heldout_features[FRAMES][:8]
    ref, q_ref = synth.KerasEngine(weights, cfg, seed=6).run(feats, probs=True)
    for level in ("scalar", "avx2", "avx512"):
        synth.set_simd_level(level)
        out, q = synth.NativeStream(model, seed=6).run(feats, probs=True)
        assert np.array_equal(out, ref), level
        np.testing.assert_allclose(q[:, 1:], q_ref[:, 1:], atol=PROB_TOL_FLOAT, rtol=0)
        assert len(synth.NativeStream(model, seed=6, int8=True).run(feats)) == len(ref)
    synth.set_simd_level("auto")


def test_random_stream_matches_native_draws():
    from lpcnet import synth

    k = synth.random_bytes(123, 0, 64)
    assert k.dtype == np.uint8 and len(k) == 64 and len(set(k.tolist())) > 30
    np.testing.assert_array_equal(synth.random_bytes(123, 8, 8), k[8:16])


def _marginal_checkpoint(tiny_checkpoint, path):
    """The tiny model with its output layer replaced by the training data's excitation marginal.

    A dozen training steps leave the bit probabilities close to 0.5, and white
    µ-law noise through the LPC synthesis filter saturates. With the dual FC's
    kernel zeroed and its factors set to the empirical P(bit | prefix) of the
    data.u8 targets, synthesis is a noise-excited LPC vocoder: a strict check of
    the LPC sign, the frame alignment and the de-emphasis, whatever the training.
    Written in the seed's .h5 layout (exercises that loader too).
    """
    from lpcnet import synth
    from lpcnet.features import extract_training
    from lpcnet.model import assign_weights, build_lpcnet, save_seed_h5

    weights, cfg = synth.load_weights(tiny_checkpoint)
    codes = extract_training(_pcm(TRAIN), seed=1)[1][:, 3].astype(np.int64)
    logit = np.zeros(256)
    for b in range(8):
        prefix = codes >> (8 - b)
        bit = (codes >> (7 - b)) & 1
        for node in range(1 << b):
            sel = prefix == node
            p = (bit[sel].sum() + 1.0) / (sel.sum() + 2.0)
            logit[(1 << b) + node] = np.log(p / (1 - p))
    md = weights["dual_fc"]
    md["kernel"] = np.zeros_like(md["kernel"])
    md["bias"] = np.zeros_like(md["bias"])
    md["bias"][:, 0] = 1.0
    md["factor"] = np.zeros_like(md["factor"])
    md["factor"][:, 0] = (logit / np.tanh(1.0)).astype(np.float32)
    model = build_lpcnet(cfg, training=False).model
    assign_weights(model, weights)
    return save_seed_h5(model, path)


def _frame_energy(x):
    x = x[:len(x) // 160 * 160].astype(np.float64).reshape(-1, 160)
    return np.log10(1.0 + (x ** 2).mean(axis=1))


def test_copy_synthesis_heldout(tiny_checkpoint, synth_lib, tmp_path):
    from lpcnet import synth

    pcm = _pcm(HELDOUT)
    ckpt = _marginal_checkpoint(tiny_checkpoint, tmp_path / "marginal.h5")
    out = synth.copy_synthesis(HELDOUT, ckpt, seed=3)
    assert out.dtype == np.int16 and len(out) == len(pcm) // 160 * 160
    assert np.all(np.isfinite(out.astype(np.float64))) and out.std() > 10
    clipped = (np.abs(out.astype(np.int32)) >= 32767).reshape(-1, 160)
    assert clipped.mean() < 0.005, f"{clipped.sum()} clipped samples"
    assert clipped.mean(axis=1).max() < 0.2, "a clipping burst (>= 20% of a frame)"
    aligned = synth.copy_synthesis(HELDOUT, ckpt, seed=3, align=True)
    lag = synth.COPY_SYNTHESIS_LAG
    assert len(aligned) == len(out) and np.array_equal(aligned[:-lag], out[lag:])


@pytest.mark.parametrize("engine", ["native", "keras"])
def test_output_aligned_with_frames(engines, heldout_features, engine):
    """Sample t belongs to frame t // 160 (no dropped frame, no 17-sample shift: docs/synthesis.md)."""
    from lpcnet import synth
    from lpcnet.formats import LPC

    weights, cfg, model = engines
    feats = np.array(heldout_features[40:52])
    k = 7
    lpc_changed = feats.copy()
    lpc_changed[k, LPC] *= 0.5                  # LPC is used by frame k's samples only
    net_changed = feats.copy()
    net_changed[k, :18] += 0.5                  # network input: 2 frames of lookahead
    run = ((lambda f: synth.NativeStream(model, seed=1, argmax=True).run(f)) if engine == "native"
           else (lambda f: synth.KerasEngine(weights, cfg, seed=1, argmax=True).run(f)))
    base = run(feats)
    assert len(base) == len(feats) * 160
    first = lambda a: int(np.flatnonzero(a != base)[0])          # noqa: E731
    assert first(run(lpc_changed)) == 160 * k
    assert 160 * (k - 2) <= first(run(net_changed)) < 160 * (k - 1)   # argmax may hide a few


def _cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "lpcnet", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_cli_synth_outputs(tiny_checkpoint, heldout_features, tmp_path, synth_lib):
    import soundfile as sf

    from lpcnet.formats import read_s16, write_features

    feats = tmp_path / "test_features.f32"
    write_features(feats, heldout_features[:20])
    r = _cli("synth", "--checkpoint", str(tiny_checkpoint), "--features", str(feats),
             "--output", str(tmp_path / "out.wav"))
    assert r.returncode == 0, r.stderr
    wav, rate = sf.read(tmp_path / "out.wav", dtype="int16")
    assert rate == 16000 and len(wav) == 20 * 160
    # Seed-compatible flags: --output_dir + file name, raw s16, Keras engine.
    r = _cli("synth", "--checkpoint", str(tiny_checkpoint), "--features", str(feats),
             "--output_dir", str(tmp_path / "mlu_model_infer"), "--output", "lpcnet_infer_output.s16",
             "--engine", "keras", "--seed", "4")
    assert r.returncode == 0, r.stderr
    raw = read_s16(tmp_path / "mlu_model_infer" / "lpcnet_infer_output.s16")
    assert len(raw) == 20 * 160
    from lpcnet import synth

    native = synth.synthesize(heldout_features[:20], tiny_checkpoint, engine="native", seed=4)
    assert np.mean(native == raw) > 0.9        # same engines, same seed (float rounding aside)


def test_cli_bad_inputs(tiny_checkpoint, heldout_features, tmp_path):
    from lpcnet.formats import write_features

    feats = tmp_path / "f.f32"
    write_features(feats, heldout_features[:5])
    bad_feats = tmp_path / "bad.f32"
    bad_feats.write_bytes(b"\0" * 100)
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    cases = [("--checkpoint", str(tmp_path / "missing.keras"), "--features", str(feats)),
             ("--checkpoint", str(corrupt), "--features", str(feats)),
             ("--checkpoint", str(tiny_checkpoint), "--features", str(bad_feats)),
             ("--checkpoint", str(tiny_checkpoint), "--features", str(tmp_path / "nope.f32"))]
    for case in cases:
        out = tmp_path / "o.wav"
        r = _cli("synth", *case, "--output", str(out))
        assert r.returncode == 1, (case, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "error" in r.stderr, r.stderr
        assert not out.exists() and not list(tmp_path.glob(".o.wav*"))


def test_cli_several_inputs(engines, heldout_features, tmp_path):
    """Several --features, a folder and a list: each output is the single-stream synthesis of
    its input with the same seed (float and int8, several streams and jobs)."""
    import soundfile as sf

    from lpcnet import synth
    from lpcnet.formats import read_s16, write_features

    blob, model = _export_tmp(engines), engines[2]
    spans = {"a": (40, 70), "b": (0, 9), "c": (12, 31), "d": (50, 53)}
    feats = tmp_path / "feats"
    feats.mkdir()
    for name, (a, b) in spans.items():
        write_features(feats / f"{name}.f32", heldout_features[a:b])
    want = {(name, int8): synth.NativeStream(model, seed=6, int8=int8).run(heldout_features[a:b])
            for name, (a, b) in spans.items() for int8 in (False, True)}
    (tmp_path / "list.txt").write_text("# inputs\nfeats/b.f32\n\nfeats/c.f32\n")
    runs = [("several", ["--features", str(feats / "a.f32"), "--features", str(feats / "d.f32"),
                         str(feats / "c.f32")], ("a", "d", "c")),
            ("folder", ["--features", str(feats)], tuple(spans)),
            ("list", ["--list", str(tmp_path / "list.txt")], ("b", "c"))]
    for label, args, names in runs:
        for int8, extra in ((False, ["--streams", "3", "--jobs", "2"]), (True, [])):
            out = tmp_path / f"out_{label}_{int8}"
            r = _cli("synth", "--checkpoint", str(blob), *args, "--output_dir", str(out), "--seed", "6",
                     "--no-progress", *(["--int8"] if int8 else []), *extra)
            assert r.returncode == 0, r.stderr
            assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.wav" for n in names)
            for name in names:
                wav, rate = sf.read(out / f"{name}.wav", dtype="int16")
                assert rate == 16000 and np.array_equal(wav, want[name, int8]), (label, int8, name)
    r = _cli("synth", "--checkpoint", str(blob), "--features", str(feats), "--output_dir",
             str(tmp_path / "raw"), "--format", "s16", "--seed", "6", "--int8", "--streams", "1",
             "--no-progress")
    assert r.returncode == 0, r.stderr
    assert np.array_equal(read_s16(tmp_path / "raw" / "c.s16"), want["c", True])


def test_cli_several_audio_inputs(engines, tmp_path):
    """Copy-synthesis of several speech files (a folder), 2 streams: each output equals
    copy_synthesis() of its file."""
    import soundfile as sf

    from lpcnet import synth

    blob = _export_tmp(engines)
    speech = tmp_path / "speech"
    speech.mkdir()
    for wav in (HELDOUT, TRAIN):
        (speech / wav.name).write_bytes(wav.read_bytes())
    r = _cli("synth", "--checkpoint", str(blob), "--audio", str(speech), "--output_dir",
             str(tmp_path / "out"), "--int8", "--streams", "2", "--jobs", "1", "--seed", "2",
             "--no-progress")
    assert r.returncode == 0, r.stderr
    for wav in (HELDOUT, TRAIN):
        got, _ = sf.read(tmp_path / "out" / f"{wav.stem}.wav", dtype="int16")
        want = synth.copy_synthesis(wav, blob, seed=2, int8=True)
        assert np.array_equal(got, want), wav.name


def test_cli_several_inputs_bad(tiny_checkpoint, heldout_features, tmp_path, synth_lib):
    """Bad batches fail in one line, before anything is written."""
    from lpcnet.formats import write_features

    feats = tmp_path / "feats"
    feats.mkdir()
    write_features(feats / "a.f32", heldout_features[:5])
    write_features(feats / "b.f32", heldout_features[5:9])
    (tmp_path / "other").mkdir()
    write_features(tmp_path / "other" / "a.f32", heldout_features[:3])
    (tmp_path / "empty").mkdir()
    (tmp_path / "afile").write_text("x")
    (tmp_path / "list.txt").write_text("feats/a.f32\nfeats/missing.f32\n")
    (tmp_path / "blank.txt").write_text("# nothing\n\n")
    ckpt = str(tiny_checkpoint)
    a, b = str(feats / "a.f32"), str(feats / "b.f32")
    out = str(tmp_path / "out")
    cases = [(["--features", a, str(tmp_path / "nope.f32")], "nope.f32: file not found"),
             (["--features", a, b, "--output_dir", str(tmp_path / "afile")], "is a file"),
             (["--features", a, b, "--output", str(tmp_path / "o.wav")], "--output_dir"),
             (["--features", a, b], "--output_dir"),
             (["--features", a, str(tmp_path / "other" / "a.f32"), "--output_dir", out], "file names"),
             (["--features", a, a, "--output_dir", out], "given twice"),
             (["--features", str(tmp_path / "afile"), "--output", out], "expected a feature file named *.f32"),
             (["--audio", a, "--output", out], "a .f32 feature file; give it with --features"),
             (["--features", str(tmp_path / "empty"), "--output_dir", out], "no .f32"),
             (["--list", str(tmp_path / "list.txt"), "--output_dir", out], "entry 2"),
             (["--list", str(tmp_path / "blank.txt"), "--output_dir", out], "lists no inputs"),
             ([], "no input")]
    for args, words in cases:
        r = _cli("synth", "--checkpoint", ckpt, *args, "--no-progress")
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "error" in lines[0] and words in lines[0], (args, r.stderr)
        assert not (tmp_path / "out").exists(), args
    # an output that would replace an input (copy synthesis into the speech folder) is refused
    speech = tmp_path / "speech"
    speech.mkdir()
    for name in ("x.wav", "y.wav"):
        (speech / name).write_bytes(HELDOUT.read_bytes())
    r = _cli("synth", "--checkpoint", ckpt, "--audio", str(speech), "--output_dir", str(speech),
             "--no-progress")
    assert r.returncode == 1 and "same file as the input" in r.stderr, r.stderr
    assert (speech / "x.wav").read_bytes() == HELDOUT.read_bytes()


@pytest.mark.parametrize("flags", [["--streams", "0"], ["--streams", "-1"], ["--jobs", "0"],
                                   ["--jobs", "-2"]])
@pytest.mark.parametrize("inputs", [1, 2])
def test_cli_impossible_streams_or_jobs_refused_at_parse_time(flags, inputs, heldout_features, tmp_path,
                                                             capsys):
    """--streams / --jobs below 1 are refused by argparse (exit 2) with one input as with several."""
    from lpcnet.cli import main
    from lpcnet.formats import write_features

    feats = [tmp_path / f"{n}.f32" for n in "ab"[:inputs]]
    for f in feats:
        write_features(f, heldout_features[:5])
    out = ["--output", str(tmp_path / "o.wav")] if inputs == 1 else ["--output_dir", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exc:
        main(["synth", "--checkpoint", "unused.bin", "--features", *map(str, feats), *out, *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and flags[0] in err[0], err
    assert not (tmp_path / "o.wav").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["x.mp3", "noext", "x.f32"])
def test_cli_output_extension_synth_does_not_write_is_refused(name, engines, heldout_features, tmp_path,
                                                              capsys):
    from lpcnet.cli import main
    from lpcnet.formats import write_features

    feats = tmp_path / "f.f32"
    write_features(feats, heldout_features[:5])
    rc = main(["synth", "--checkpoint", str(_export_tmp(engines)), "--features", str(feats),
               "--output", str(tmp_path / name)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and f"--output {tmp_path / name}: expected a file name ending in .wav" \
        in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.f32"]


def test_int8_with_a_float_blob_names_the_blob(engines, heldout_features, tmp_path, capsys):
    from lpcnet import synth
    from lpcnet.cli import main
    from lpcnet.export import blob_from_weights, write_blob
    from lpcnet.formats import write_features

    weights, cfg, _ = engines
    blob = tmp_path / "float.bin"
    write_blob(blob, blob_from_weights(weights, cfg, int8=False))
    with pytest.raises(LpcnetError, match=r"float\.bin: a float weight blob without int8 copies"):
        synth.NativeModel.from_checkpoint(blob, int8=True)
    write_features(tmp_path / "f.f32", heldout_features[:5])
    rc = main(["synth", "--checkpoint", str(blob), "--features", str(tmp_path / "f.f32"), "--int8",
               "--output", str(tmp_path / "o.wav")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and str(blob) in err[0] and "export --int8" in err[0], err
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize("content", [b"\0" * 4096, b"hello, not weights\n"])
@pytest.mark.parametrize("engine", ["native", "keras"])
def test_a_file_that_is_no_checkpoint_says_what_was_expected(content, engine, heldout_features, tmp_path,
                                                             capsys, synth_lib):
    """A zeroed or text .bin: one line naming it and the formats expected, no HDF5 jargon."""
    from lpcnet.cli import main
    from lpcnet.formats import write_features

    ckpt = tmp_path / "weights.bin"
    ckpt.write_bytes(content)
    write_features(tmp_path / "f.f32", heldout_features[:5])
    rc = main(["synth", "--checkpoint", str(ckpt), "--features", str(tmp_path / "f.f32"), "--engine", engine,
               "--output", str(tmp_path / "o.wav")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and f"{ckpt}: expected" in err[0], err
    assert "Keras checkpoint (.keras zip archive)" in err[0] and "signature" not in err[0]
    assert ("LPCNWGT" in err[0]) == (engine == "native")


def test_bad_blob_rejected_by_native_loader(engines, synth_lib):
    from lpcnet import synth
    from lpcnet.errors import FormatError

    good = bytearray(Path(_export_tmp(engines)).read_bytes())
    for n in (0, 10, 60, len(good) // 2, len(good) - 1):
        with pytest.raises(FormatError):
            synth.NativeModel(bytes(good[:n]))
    for pos in range(0, len(good), max(1, len(good) // 23)):
        bad = bytearray(good)
        bad[pos] ^= 0x41
        with pytest.raises(FormatError):
            synth.NativeModel(bytes(bad))


def _export_tmp(engines):
    import tempfile

    from lpcnet.export import blob_from_weights, write_blob

    weights, cfg, _ = engines
    path = Path(tempfile.mkdtemp()) / "w.bin"
    write_blob(path, blob_from_weights(weights, cfg, int8=True))
    return path


@pytest.mark.skipif(subprocess.run(["which", "gcc"], capture_output=True).returncode != 0,
                    reason="no C compiler")
def test_sanitizer_build(engines, heldout_features, tmp_path):
    """ASan + UBSan build of the engine: all options x SIMD levels, streaming, bad blobs."""
    from lpcnet.formats import write_features

    blob = _export_tmp(engines)
    feats = tmp_path / "f.f32"
    write_features(feats, heldout_features[40:46])
    r = subprocess.run(["make", "-s", "-C", str(NATIVE), "asan-synth", f"BLOB={blob}",
                        f"FEATURES={feats}"], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1].startswith("ok"), r.stdout


@pytest.mark.skipif(subprocess.run(["which", "gcc"], capture_output=True).returncode != 0,
                    reason="no C compiler")
def test_profiling_driver_prints_cpu_time_per_sample(engines, heldout_features, tmp_path):
    """`make -C native profile-synth` (the C timing loop of docs/benchmarks.md): the driver built
    like the library reports a positive CPU time per sample, single- and multi-stream."""
    from lpcnet.formats import write_features

    blob = _export_tmp(engines)
    feats = tmp_path / "f.f32"
    write_features(feats, heldout_features[40:46])
    for extra, unit in (([], "sample"), (["STREAMS=3"], "stream-sample")):
        r = subprocess.run(["make", "-s", "-C", str(NATIVE), "profile-synth", f"BUILD={tmp_path / 'b'}",
                            f"BLOB={blob}", f"FEATURES={feats}", "REPEAT=2", "FLAGS=1", *extra],
                           capture_output=True, text=True, timeout=240)
        assert r.returncode == 0, r.stdout + r.stderr
        m = re.search(r"profile: 6 frames x 2 repeats, flags 1, (\d+) stream\(s\): ([\d.]+) us CPU per (\S+)",
                      r.stdout)
        assert m and m[3] == unit and float(m[2]) > 0, r.stdout
        assert int(m[1]) == (3 if extra else 1)
