"""End-to-end variant, native and data side: ``dump-data --end2end`` targets, the data-kind
check of the training loader, the weight blob's END2END flag (version 2; version 1 still
read) and the native engine's LPC from the conditioning (step-up recursion).

Data tests run on the training speaker of the slice (data/slice/arctic_a0009.wav), and on
the same speech wrapped past the first augmentation draw (frame 2822) so that the training
noise is on. Engine tests use random weights (NumPy, no TensorFlow) of a small model and
the held-out speaker's features; the reference decoder below is written from the Keras
weight layout (kernel (inputs, 3N), gates z, r, h, reset_after), independent of the blob.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from lpcnet import export as E
from lpcnet.errors import FormatError, LpcnetError
from lpcnet.formats import LPC, PCM_SCALE, lin2ulaw, ulaw2lin

ROOT = Path(__file__).resolve().parents[1]
NATIVE = ROOT / "native"
TRAIN_WAV = ROOT / "data" / "slice" / "arctic_a0009.wav"
HELDOUT_WAV = ROOT / "data" / "slice" / "arctic_a0007.wav"
#: Records past the first augmentation draw (frame 2822): training noise on from there.
NOISY_FRAMES = 2950
#: Float engine vs the float64 NumPy reference: bit probabilities (max abs).
PROB_TOL = 1e-5


def _pcm(path):
    from lpcnet.audio import load_speech
    from lpcnet.formats import to_int16

    return to_int16(load_speech(path)[0].astype(np.float64) * PCM_SCALE)


# --- data: dump-data --end2end -------------------------------------------------------------
@pytest.fixture(scope="module")
def train_pcm():
    return _pcm(TRAIN_WAV)


@pytest.fixture(scope="module")
def pairs(train_pcm):
    """{(frames, end2end): (features, data)} from the same speech and seed."""
    from lpcnet.features import extract_training

    return {(mf, e2e): extract_training(train_pcm, seed=3, max_frames=mf, end2end=e2e)
            for mf in (None, NOISY_FRAMES) for e2e in (False, True)}


def test_end2end_data_differs_from_standard_only_in_byte_3(pairs):
    for mf in (None, NOISY_FRAMES):
        (f_std, d_std), (f_e2e, d_e2e) = pairs[mf, False], pairs[mf, True]
        np.testing.assert_array_equal(f_e2e, f_std)               # features, augmentation
        np.testing.assert_array_equal(d_e2e[:, :3], d_std[:, :3])  # inputs, noise, random draws
        assert np.mean(d_e2e[:, 3] != d_std[:, 3]) > 0.9, mf
    # the noisy run does inject noise: byte 2 of n+1 (noisy excitation) != byte 3 of n somewhere
    _, d = pairs[NOISY_FRAMES, False]
    assert np.mean(d[1:, 2] != d[:-1, 3]) > 0.01


def _prediction_and_reconstruction(features, data):
    """p[n] and ŝ[n] of the data.u8 recursion, in float32 as the C code computes them, from
    each frame's LPC (features 20..35) and the noisy excitation e_noisy[n] = byte 2 of n+1."""
    table = ulaw2lin(np.arange(256)).astype(np.float32)
    lpc = np.asarray(features[:, LPC], np.float32)
    mem = [np.float32(0)] * 16
    n = len(data) - 1
    p_all, s_all = np.empty(n, np.float32), np.empty(n, np.float32)
    for i in range(n):
        a, p = lpc[i // 160], np.float32(0)
        for j in range(16):
            p = np.float32(p - a[j] * mem[j])
        s = np.float32(p + table[data[i + 1, 2]])
        p_all[i], s_all[i] = p, s
        mem = [s] + mem[:15]
    return p_all, s_all


def _code_interval(codes):
    """Linear values [lo, hi] that the exact µ-law maps to each code (codes 0 / 255 unbounded)."""
    def mag(m):
        return (PCM_SCALE / 255.0) * np.expm1(m / 128.0 * np.log(256.0))

    m = np.asarray(codes, np.int64) - 128
    lo = np.where(m > 0, mag(np.abs(m) - 0.5), -mag(np.abs(m) + 0.5))
    hi = np.where(m < 0, -mag(np.abs(m) - 0.5), mag(np.abs(m) + 0.5))
    lo = np.where(m == 0, -mag(0.5), lo)
    hi = np.where(m == 0, mag(0.5), hi)
    return np.where(m == -128, -np.inf, lo), np.where(m == 127, np.inf, hi)


def test_end2end_byte_3_is_the_clean_signal(pairs):
    """Byte 3 = µ-law(s[n]). s[n] is not stored, but the standard data pins it: its byte 3 is
    e[n] = µ-law(s[n] - p[n]) with p[n] reconstructed exactly (checked against bytes 0 and 1),
    so s[n] lies in p[n] + the interval of code e[n], which must meet the interval of the
    end-to-end byte 3, for every sample."""
    (f, d_std), (_, d_e2e) = pairs[None, False], pairs[None, True]
    p, s_hat = _prediction_and_reconstruction(f, d_std)
    np.testing.assert_array_equal(lin2ulaw(p), d_std[:-1, 1])      # the recursion is the C one
    np.testing.assert_array_equal(lin2ulaw(s_hat), d_std[1:, 0])
    p = p.astype(np.float64)
    e_lo, e_hi = _code_interval(d_std[:-1, 3])
    s_lo, s_hi = _code_interval(d_e2e[:-1, 3])
    slack = 1e-2 + 1e-6 * np.abs(p)                                  # float32 s - p in the C code
    assert np.all(np.maximum(p + e_lo, s_lo) <= np.minimum(p + e_hi, s_hi) + slack)
    # ... which a misaligned byte 3 (one sample late) would fail
    late_lo, late_hi = _code_interval(np.roll(d_e2e[:-1, 3], 1))
    assert np.mean(np.maximum(p + e_lo, late_lo) <= np.minimum(p + e_hi, late_hi) + slack) < 0.5


def test_end2end_byte_3_near_next_signal_code_where_no_noise(pairs):
    """Where no noise was injected (byte 2 of n+1 == standard byte 3 of n), ŝ[n] = p[n] +
    ulaw2lin(e[n]) and the next record's byte 0 is within a code of byte 3; where noise was
    injected the two differ (byte 3 is the clean signal, not the noisy reconstruction)."""
    for mf in (None, NOISY_FRAMES):
        (_, d_std), (_, d_e2e) = pairs[mf, False], pairs[mf, True]
        clean = d_std[1:, 2] == d_std[:-1, 3]
        gap = np.abs(d_e2e[:-1, 3].astype(int) - d_std[1:, 0].astype(int))
        assert np.mean(gap[clean] <= 1) > 0.99 and np.median(gap[clean]) == 0, mf
        if mf is not None:
            assert (~clean).sum() > 1000 and np.mean(gap[~clean] == 0) < 0.6


def test_cli_end2end_and_c_tool(train_pcm, tmp_path, pairs):
    """`lpcnet dump-data --end2end -train` (Python CLI) and the standalone C tool's -end2end
    write the same files as the API; -end2end with -test is refused."""
    from lpcnet.formats import read_data, read_features, write_s16

    src = write_s16(tmp_path / "in.s16", train_pcm)
    f_want, d_want = pairs[None, True]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "lpcnet.features", "--end2end", "-train", str(src),
                        str(tmp_path / "f.f32"), str(tmp_path / "d.u8"), "--seed", "3",
                        "--no-progress"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "end-to-end targets" in r.stdout
    np.testing.assert_array_equal(read_features(tmp_path / "f.f32"), f_want)
    np.testing.assert_array_equal(read_data(tmp_path / "d.u8"), d_want)
    r = subprocess.run([sys.executable, "-m", "lpcnet.features", "--end2end", "-test", str(src),
                        str(tmp_path / "t.f32")], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and "--end2end applies to -train only" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "t.f32").exists()
    if shutil.which("make") is None or shutil.which("cc") is None:
        pytest.skip("no C compiler for the standalone tool")
    build = tmp_path / "build"
    r = subprocess.run(["make", "-s", "-C", str(NATIVE), f"BUILD={build}", f"{build}/dump_data"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    tool = build / "dump_data"
    r = subprocess.run([str(tool), "-seed", "3", "-end2end", "-train", str(src),
                        str(tmp_path / "c.f32"), str(tmp_path / "c.u8")], capture_output=True)
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.fromfile(tmp_path / "c.u8", np.uint8).reshape(-1, 4), d_want)
    np.testing.assert_array_equal(np.fromfile(tmp_path / "c.f32", np.float32).reshape(f_want.shape),
                                  f_want)
    assert subprocess.run([str(tool), "-end2end", "-test", str(src), str(tmp_path / "x.f32")],
                          capture_output=True).returncode == 1


# --- data: which targets a data.u8 holds -------------------------------------------------------
def test_target_kind_on_real_data(pairs):
    from lpcnet.data import target_kind

    for mf in (None, NOISY_FRAMES):
        assert target_kind(pairs[mf, False][1]) == "excitation", mf
        assert target_kind(pairs[mf, True][1]) == "signal", mf
    rng = np.random.default_rng(0)
    assert target_kind(rng.integers(0, 256, (50_000, 4), dtype=np.uint8)) is None   # no majority
    assert target_kind(np.full((50_000, 4), 128, np.uint8)) is None                 # silence
    assert target_kind(pairs[None, True][1][:1]) is None


def test_check_target_kind_refuses_the_other_kind(pairs, tmp_path):
    from lpcnet.data import TrainingLoader, check_target_kind
    from lpcnet.formats import write_data, write_features

    paths = {}
    for e2e in (False, True):
        f, d = pairs[None, e2e]
        paths[e2e] = (write_features(tmp_path / f"f{int(e2e)}.f32", f),
                      write_data(tmp_path / f"d{int(e2e)}.u8", d))
        check_target_kind(paths[e2e][1], end2end=e2e)                # the right kind passes
    with pytest.raises(LpcnetError, match=r"d0\.u8: byte 3 holds the excitation \(prepared without "
                                          r"--end2end\); an --end2end model needs"):
        check_target_kind(paths[False][1], end2end=True)
    with pytest.raises(LpcnetError, match=r"d1\.u8: byte 3 holds the signal .*a standard model"):
        check_target_kind(paths[True][1], end2end=False)
    # through the training loader's checks
    assert TrainingLoader(*paths[True], batch_size=2, end2end=True).nb_sequences > 0
    assert TrainingLoader(*paths[False], batch_size=2).nb_sequences > 0
    with pytest.raises(LpcnetError, match="byte 3 holds the signal"):
        TrainingLoader(*paths[True], batch_size=2)
    with pytest.raises(LpcnetError, match="byte 3 holds the excitation"):
        TrainingLoader(*paths[False], batch_size=2, end2end=True)


# --- weight blob: END2END flag, version 2, version 1 still read -----------------------------------
CFG = SimpleNamespace(gru_a=32, gru_b=16, cond_size=40, nb_features=20, embed_size=24,
                      pitch_embed=8, frame_size=160, pcm_levels=256)


def _random_weights(cfg, seed: int, end2end: bool) -> dict:
    """Random weights in the checkpoint layout (``{layer: {var: array}}``), sized so that the
    conditioning spreads over (-1, 1) and GRU A's recurrent kernel is 4x8 block-sparse."""
    rng = np.random.default_rng(seed)

    def w(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale / np.sqrt(shape[-2] if len(shape) > 1 else 1)
                ).astype(np.float32)

    na, nb, c, e, p = cfg.gru_a, cfg.gru_b, cfg.cond_size, cfg.embed_size, cfg.pitch_embed
    rec = w(na, 3 * na)
    mask = rng.random((na // 4, 3 * na // 8)) < 0.4
    rec *= np.repeat(np.repeat(mask, 4, 0), 8, 1)
    weights = {
        "embed_pitch": {"embeddings": w(256, p, scale=2.0) / 4},
        "feature_conv1": {"kernel": w(3, 20 + p, c, scale=1.5), "bias": w(c) * 0.1},
        "feature_conv2": {"kernel": w(3, c, c, scale=1.5), "bias": w(c) * 0.1},
        "feature_dense1": {"kernel": w(c, c, scale=1.5), "bias": w(c) * 0.1},
        "feature_dense2": {"kernel": w(c, c, scale=1.5), "bias": w(c) * 0.1},
        "embed_sig": {"embeddings": w(256, e) * 0.5},
        "gru_a": {"kernel": w(3 * e + c, 3 * na), "recurrent_kernel": rec, "bias": w(2, 3 * na) * 0.1},
        "gru_b": {"kernel": w(na + c, 3 * nb), "recurrent_kernel": w(nb, 3 * nb),
                  "bias": w(2, 3 * nb) * 0.1},
        "dual_fc": {"kernel": w(256, nb, 2), "bias": w(256, 2) * 0.1,
                    "factor": (1 + rng.random((256, 2))).astype(np.float32)},
    }
    if end2end:
        weights["rc2lpc"] = {}
    return weights


@pytest.fixture(scope="module")
def synth_lib():
    """Fresh build of the native engine (make), as tests/test_synth.py does."""
    if (NATIVE / "Makefile").is_file() and shutil.which("make") and shutil.which("cc"):
        subprocess.run(["make", "-s", "-C", str(NATIVE), "synth"], check=True, capture_output=True,
                       timeout=300)
        os.environ["LPCNET_SYNTH_LIB"] = str(NATIVE / "build" / "liblpcnet_synth.so")
    from lpcnet import synth

    return synth.load_library()


@pytest.fixture(scope="module")
def blobs():
    """{end2end: WeightBlob} of the same random weights, with int8 copies."""
    return {e2e: E.blob_from_weights(_random_weights(CFG, 5, e2e), CFG, int8=True)
            for e2e in (False, True)}


def _with_header(raw: bytes, version: int, flags: int) -> bytes:
    """The blob with another version / flags in its header and a matching CRC."""
    body = bytearray(raw[:-4])
    body[8:16] = struct.pack("<II", version, flags)
    return bytes(body) + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def test_export_sets_the_end2end_flag(blobs):
    assert E.VERSION == 2 and E.FLAG_END2END == 2
    assert blobs[True].end2end and blobs[True].has_int8 and not blobs[False].end2end
    raw = E.blob_to_bytes(blobs[True])
    assert struct.unpack_from("<II", raw, 8) == (2, E.FLAG_INT8 | E.FLAG_END2END)
    back = E.blob_from_bytes(raw)
    assert back.end2end and set(back.tensors) == set(blobs[False].tensors)   # same tensors
    with pytest.raises(LpcnetError, match="at least 16"):
        E.blob_from_weights(_random_weights(SimpleNamespace(**{**vars(CFG), "cond_size": 8}), 1, True),
                            SimpleNamespace(**{**vars(CFG), "cond_size": 8}))


def test_version_1_blobs_still_load(blobs, synth_lib):
    from lpcnet import synth

    raw = E.blob_to_bytes(blobs[False])
    v1 = _with_header(raw, 1, E.FLAG_INT8)
    assert E.blob_from_bytes(v1).has_int8 and not E.blob_from_bytes(v1).end2end
    model = synth.NativeModel(v1)
    assert model.has_int8 and not model.end2end
    feats = _heldout_features()[40:44]
    np.testing.assert_array_equal(synth.NativeStream(model, seed=2).run(feats),
                                  synth.NativeStream(synth.NativeModel(raw), seed=2).run(feats))
    # the carried demo model's blob (re-exported as version 2) loads in both readers
    demo = ROOT / "models" / "demo" / "lpcnet_demo_256.bin"
    assert struct.unpack_from("<I", demo.read_bytes()[:16], 8)[0] == E.VERSION
    assert synth.NativeModel(demo.read_bytes()).gru_a == 256
    assert E.read_blob(demo).sizes["gru_a"] == 256
    # refused: END2END in a version-1 header, unknown flags, a later version (both readers)
    for bad, what in ((_with_header(raw, 1, E.FLAG_END2END), "unknown flags"),
                      (_with_header(raw, 2, 4), "unknown flags"),
                      (_with_header(raw, 3, 0), "version 3")):
        with pytest.raises(FormatError, match=what):
            E.blob_from_bytes(bad)
        with pytest.raises(FormatError, match=what):
            synth.NativeModel(bad)


# --- native engine: LPC from the conditioning ------------------------------------------------
_HELDOUT = {}


def _heldout_features():
    if "f" not in _HELDOUT:
        from lpcnet.features import extract

        _HELDOUT["f"] = extract(_pcm(HELDOUT_WAV))
    return _HELDOUT["f"]


@pytest.fixture(scope="module")
def models(blobs, synth_lib):
    from lpcnet import synth

    return {e2e: synth.NativeModel(E.blob_to_bytes(b)) for e2e, b in blobs.items()}


def _step_up(rc: np.ndarray) -> np.ndarray:
    """(..., 16) reflection coefficients -> LPCs by the step-up recursion, in float32."""
    k = np.asarray(rc, np.float32)
    a = np.zeros(k.shape, np.float32)
    for i in range(16):
        prev = a[..., :i].copy()
        a[..., :i] = prev + k[..., i:i + 1] * prev[..., ::-1]
        a[..., i] = k[..., i]
    return a


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _conditioning(weights, features) -> np.ndarray:
    """Frame-rate network of the checkpoint layout, float64: 'same' 3-tap convolutions."""
    from lpcnet.formats import decode_pitch

    f = np.asarray(features, np.float64)
    period = np.clip(decode_pitch(f[:, 18]), 33, 255)
    x = np.concatenate([f[:, :20], weights["embed_pitch"]["embeddings"][period]], 1)

    def conv(x, layer):
        k, b = weights[layer]["kernel"].astype(np.float64), weights[layer]["bias"]
        pad = np.pad(x, ((1, 1), (0, 0)))
        return np.tanh(b + pad[:-2] @ k[0] + pad[1:-1] @ k[1] + pad[2:] @ k[2])

    h = conv(conv(x, "feature_conv1"), "feature_conv2")
    for layer in ("feature_dense1", "feature_dense2"):
        h = np.tanh(h @ weights[layer]["kernel"].astype(np.float64) + weights[layer]["bias"])
    return h


def _gru(x, h, kernel, rkernel, bias):
    """Keras GRU step, reset_after, gates (z, r, h)."""
    n = len(h)
    xs = x @ kernel + bias[0]
    rs = h @ rkernel + bias[1]
    z = _sigmoid(xs[:n] + rs[:n])
    r = _sigmoid(xs[n:2 * n] + rs[n:2 * n])
    c = np.tanh(xs[2 * n:] + r * rs[2 * n:])
    return z * h + (1 - z) * c


def _reference_decoder(weights, cond, lpc, forced):
    """Bit probabilities (T, 256) of the decoder teacher-forced on ``forced`` codes, with each
    frame's LPC ``lpc`` (F, 16) and conditioning ``cond`` (F, C); float64."""
    w = {k: {n: np.asarray(a, np.float64) for n, a in v.items()} for k, v in weights.items()}
    emb = w["embed_sig"]["embeddings"]
    ga, gb, md = w["gru_a"], w["gru_b"], w["dual_fc"]
    ha, hb = np.zeros(CFG.gru_a), np.zeros(CFG.gru_b)
    hist, sig, exc = np.zeros(16), 128, 128
    probs = np.zeros((len(forced), 256))
    for t, v in enumerate(forced):
        f = t // 160
        pred = -np.dot(lpc[f].astype(np.float64), hist)
        codes = [sig, int(lin2ulaw(pred)), exc]
        x = np.concatenate([emb[c] for c in codes] + [cond[f]])
        ha = _gru(x, ha, ga["kernel"], ga["recurrent_kernel"], ga["bias"])
        hb = _gru(np.concatenate([ha, cond[f]]), hb, gb["kernel"], gb["recurrent_kernel"], gb["bias"])
        logits = (np.tanh(np.einsum("i,uic->uc", hb, md["kernel"]) + md["bias"]) * md["factor"]).sum(-1)
        probs[t] = _sigmoid(logits)
        pcm = pred + ulaw2lin(v)
        sig, exc = int(lin2ulaw(pcm)), int(v)
        hist = np.concatenate([[pcm], hist[:-1]])
    return probs


def test_native_end2end_lpc_is_the_step_up_of_its_conditioning(models):
    from lpcnet import synth

    feats = _heldout_features()[30:46]
    out, (cond, lpc) = synth.NativeStream(models[True], seed=1).run(feats, trace=True)
    assert cond.shape == (16, CFG.cond_size) and np.ptp(cond[:, :16]) > 0.5     # spread in (-1, 1)
    np.testing.assert_array_equal(lpc, _step_up(cond[:, :16]))                   # same float32 ops
    np.testing.assert_allclose(cond, _conditioning(_random_weights(CFG, 5, True), feats),
                               atol=1e-5, rtol=0)
    assert np.abs(lpc).max() > 0.5 and np.all(np.isfinite(out))
    # a standard model's trace holds the features' LPC; the conditioning is the same network
    _, (cond_std, lpc_std) = synth.NativeStream(models[False], seed=1).run(feats, trace=True)
    np.testing.assert_array_equal(lpc_std, feats[:, LPC])
    np.testing.assert_array_equal(cond_std, cond)


def test_native_end2end_matches_numpy_decoder_teacher_forced(models):
    """Each frame's samples use the LPC of that frame's own conditioning (a frame late or
    early, or the features' LPC, would change the prediction codes and the probabilities)."""
    from lpcnet import synth

    feats = _heldout_features()[40:46]
    rng = np.random.default_rng(7)
    forced = np.clip(128 + np.round(rng.laplace(0, 12, len(feats) * 160)), 0, 255).astype(np.uint8)
    weights = _random_weights(CFG, 5, True)
    _, q, (cond, lpc) = synth.NativeStream(models[True], seed=1).run(feats, probs=True, forced=forced,
                                                                     trace=True)
    want = _reference_decoder(weights, _conditioning(weights, feats), _step_up(cond[:, :16]), forced)
    np.testing.assert_allclose(q[:, 1:], want[:, 1:], atol=PROB_TOL, rtol=0)
    # the same reference with the features' LPC instead is far off: the LPC matters here
    other = _reference_decoder(weights, _conditioning(weights, feats), feats[:, LPC], forced)
    assert np.abs(other[:, 1:] - q[:, 1:]).max() > 100 * PROB_TOL


def test_native_end2end_ignores_feature_lpc_and_refuses_lpc_from_cepstrum(models):
    from lpcnet import synth

    feats = _heldout_features()[40:50]
    junk = feats.copy()
    junk[:, LPC] = np.linspace(-3, 3, 16, dtype=np.float32)
    for int8 in (False, True):
        a = synth.NativeStream(models[True], seed=4, int8=int8).run(feats)
        assert np.array_equal(a, synth.NativeStream(models[True], seed=4, int8=int8).run(junk))
    std = synth.NativeStream(models[False], seed=4).run(feats)
    assert not np.array_equal(std, synth.NativeStream(models[False], seed=4).run(junk))
    for make in (lambda: synth.NativeStream(models[True], lpc_from_cepstrum=True),
                 lambda: synth.NativeMulti(models[True], 2, lpc_from_cepstrum=True)):
        with pytest.raises(LpcnetError, match="no meaning for an end-to-end model"):
            make()
    assert synth.NativeStream(models[False], lpc_from_cepstrum=True) is not None
    # the C API refuses it too
    lib = models[True].lib
    assert not lib.lpcnet_synth_create(models[True]._ptr, synth.FLAG_LPC_CEPSTRUM, 0)
    assert not lib.lpcnet_synth_multi_create(models[True]._ptr, synth.FLAG_LPC_CEPSTRUM, 2)


@pytest.mark.parametrize("int8", [False, True])
def test_native_end2end_multi_stream_equals_single_streams(models, int8):
    from lpcnet import synth

    feats = _heldout_features()
    utterances = [feats[a:b] for a, b in ((40, 52), (3, 9), (20, 31))]
    want = [synth.NativeStream(models[True], seed=8 + u, int8=int8, sharpen=True).run(x)
            for u, x in enumerate(utterances)]
    multi = synth.NativeMulti(models[True], 2, int8=int8, sharpen=True)
    got = [[] for _ in utterances]
    # stream 0 takes utterance 0 then 2, stream 1 utterance 1 (different lengths and starts)
    queue = {0: [0, 2], 1: [1]}
    pos = {0: None, 1: None}
    while True:
        cmd = np.zeros((1, 2), np.int8)
        frame = np.zeros((1, 2, 36), np.float32)
        for s in (0, 1):
            if pos[s] is None and queue[s]:
                u = queue[s].pop(0)
                multi.start(s, seed=8 + u)
                pos[s] = [u, 0]
            if pos[s] is None:
                continue
            u, i = pos[s]
            if i < len(utterances[u]):
                cmd[0, s], frame[0, s] = synth.FEED, utterances[u][i]
            else:
                cmd[0, s] = synth.END
            pos[s][1] += 1
        if not cmd.any():
            break
        out, counts = multi.step(frame, cmd)
        for s in (0, 1):
            if pos[s] is not None:
                got[pos[s][0]].append(out[0, s, :counts[0, s]])
                if pos[s][1] == len(utterances[pos[s][0]]) + synth.DELAY_FRAMES:
                    pos[s] = None
    for u, w in enumerate(want):
        assert np.array_equal(np.concatenate(got[u]), w), u


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("gcc") is None,
                    reason="no C compiler")
def test_sanitizer_build_with_end2end_blob(blobs, tmp_path):
    """ASan + UBSan driver on an end-to-end blob: every option x SIMD level (LPC_CEPSTRUM
    refused), streaming, multi-stream, its LPC vs an independent step-up, bad blobs."""
    from lpcnet.formats import write_features

    blob = E.write_blob(tmp_path / "e2e.bin", blobs[True])
    feats = write_features(tmp_path / "f.f32", _heldout_features()[40:46])
    r = subprocess.run(["make", "-s", "-C", str(NATIVE), "asan-synth", f"BUILD={tmp_path / 'b'}",
                        f"BLOB={blob}", f"FEATURES={feats}"], capture_output=True, text=True,
                       timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("ok") and "end-to-end 1" in last, r.stdout
