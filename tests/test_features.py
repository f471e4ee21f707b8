"""Native feature extraction (lpcnet.features) against docs/features.md and the NumPy reference."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import lfilter

from lpcnet import features as F
from lpcnet.features_reference import pcg32_uniform, reference_features
from lpcnet.formats import (FRAME_SIZE, LPC, NB_TOTAL_FEATURES, PITCH_CORR_INDEX, PITCH_INDEX,
                            decode_pitch, lin2ulaw, read_features, read_s16, read_training_pair,
                            ulaw2lin)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def slice_pcm(slice_s16) -> np.ndarray:
    return np.array(read_s16(slice_s16))


@pytest.fixture(scope="module")
def slice_feats(slice_pcm) -> np.ndarray:
    return F.extract(slice_pcm)


# --- layout and constants ----------------------------------------------------------
def test_native_header_constants_match_python():
    header = (ROOT / "native" / "include" / "lpcnet.h").read_text()
    consts = dict(re.findall(r"#define LPCNET_(\w+) (\d+)", header))
    assert int(consts["FRAME_SIZE"]) == FRAME_SIZE
    assert int(consts["NB_TOTAL_FEATURES"]) == NB_TOTAL_FEATURES
    assert int(consts["NB_FEATURES"]) == 20
    assert int(consts["LPC_ORDER"]) == LPC.stop - LPC.start
    assert int(consts["GAIN_CHANGE_FRAMES"]) == F.AUGMENT_PERIOD_FRAMES


def test_native_mulaw_is_exactly_the_python_mulaw():
    lib = F.load_library()
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-40000, 40000, 3000), np.arange(-300, 300, 0.25),
                        ulaw2lin(np.arange(256)), [0.0, -0.0, 32767, -32768]])
    ours = np.array([lib.lpcnet_lin2ulaw(float(v)) for v in x])
    np.testing.assert_array_equal(ours, lin2ulaw(x))
    # data.u8 uses a threshold table (exact for float inputs): check it on many floats
    # including every code boundary +- a few ulps.
    import ctypes

    bounds = ulaw2lin(np.arange(256) - 0.5 * np.sign(np.arange(256) - 128)).astype(np.float32)
    near = (bounds[:, None].view(np.int32) + np.arange(-4, 5)[None, :]).view(np.float32).ravel()
    probe = np.concatenate([near, rng.uniform(-70000, 70000, 200000).astype(np.float32),
                            rng.standard_normal(100000).astype(np.float32)]).astype(np.float32)
    probe = probe[np.isfinite(probe)]
    lib.lpcnet_ulaw_selftest.argtypes = [ctypes.c_void_p, ctypes.c_long]
    lib.lpcnet_ulaw_selftest.restype = ctypes.c_long
    assert lib.lpcnet_ulaw_selftest(probe.ctypes.data, len(probe)) == 0
    back = np.array([lib.lpcnet_ulaw2lin(u) for u in range(256)])
    np.testing.assert_allclose(back, ulaw2lin(np.arange(256)), rtol=1e-15, atol=0)


# --- C against the NumPy reference, frame by frame ------------------------------------
def test_c_matches_numpy_reference_on_real_speech(slice_pcm, slice_feats):
    ref = reference_features(slice_pcm, seed=F.DEFAULT_TEST_SEED)
    assert ref.shape == slice_feats.shape == (len(slice_pcm) // FRAME_SIZE, NB_TOTAL_FEATURES)
    err = np.abs(ref.astype(np.float64) - slice_feats)
    # Cepstrum: float32 FFT/band sums vs float64 (the reference emulates the original's
    # float32 DC-blocking filter, whose rounding would otherwise dominate at ~5e-3).
    assert err[:, :18].max() < 1e-4, err[:, :18].max()
    # LPC: Levinson on a 16th-order autocorrelation is ill-conditioned; float32 vs
    # float64 recursion moves coefficients by ~1e-3 at most on this speech.
    assert err[:, LPC].max() < 5e-3, err[:, LPC].max()
    # Pitch: the tracker's argmax decisions must agree; a float near-tie may flip one.
    same = decode_pitch(ref[:, PITCH_INDEX]) == decode_pitch(slice_feats[:, PITCH_INDEX])
    assert same.mean() >= 0.99, np.nonzero(~same)
    assert err[same, PITCH_CORR_INDEX].max() < 1e-3


def test_simd_paths_are_bit_identical_to_scalar(slice_pcm, slice_feats):
    try:
        for level in ("scalar", "avx2"):
            F.set_simd_level(level)
            np.testing.assert_array_equal(F.extract(slice_pcm[:300 * FRAME_SIZE]),
                                          slice_feats[:300])
    finally:
        F.set_simd_level("auto")


# --- timing, counts, reproducibility ----------------------------------------------------
def test_frame_counts_and_one_frame_lag(slice_pcm, slice_feats):
    n = len(slice_pcm) // FRAME_SIZE
    assert len(slice_feats) == n
    # A trailing partial frame is ignored.
    np.testing.assert_array_equal(F.extract(slice_pcm[:50 * FRAME_SIZE + 99]), slice_feats[:50])
    # Record k only sees input before sample 160k: record 0 is the all-zero frame.
    changed = slice_pcm[:60 * FRAME_SIZE].copy()
    changed[40 * FRAME_SIZE:] = 0
    out = F.extract(changed)
    np.testing.assert_array_equal(out[:41], slice_feats[:41])
    assert not np.array_equal(out[41:], slice_feats[41:60])
    zero = F.extract(np.zeros(3 * FRAME_SIZE, np.int16))
    np.testing.assert_array_equal(zero[0], slice_feats[0])


def test_test_mode_is_reproducible_and_seeded(slice_pcm, slice_feats):
    np.testing.assert_array_equal(F.extract(slice_pcm), slice_feats)
    other = F.extract(slice_pcm, seed=123)
    assert not np.array_equal(other, slice_feats)
    # The dither only moves features a little on speech frames.
    loud = slice_feats[:, 0] > 0
    assert np.abs(other[loud, :18] - slice_feats[loud, :18]).max() < 0.05


def test_independent_states_in_parallel_threads(slice_pcm):
    """The C call releases the GIL and states share nothing: threads give the serial result."""
    from concurrent.futures import ThreadPoolExecutor

    seeds = [1, 2, 3, 4]
    serial = [F.extract(slice_pcm, seed=s) for s in seeds]
    with ThreadPoolExecutor(max_workers=2) as pool:
        parallel = list(pool.map(lambda s: F.extract(slice_pcm, seed=s), seeds))
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)


def test_float_input_at_int16_scale(slice_pcm, slice_feats):
    np.testing.assert_array_equal(F.extract(slice_pcm.astype(np.float32)), slice_feats)


def test_reference_prng_matches_native():
    # test mode draws exactly 160 dither values per frame; record 0 is dither only
    u = pcg32_uniform(7, 4)
    assert np.all((u >= 0) & (u < 1)) and len(set(u)) == 4
    a = F.extract(np.zeros(2 * FRAME_SIZE, np.int16), seed=7)
    b = reference_features(np.zeros(2 * FRAME_SIZE, np.int16), seed=7)
    np.testing.assert_allclose(a[:, :18], b[:, :18], atol=1e-4)


# --- properties of the features -------------------------------------------------------------
@pytest.mark.parametrize("period", [33, 40, 47, 57, 64, 80, 100, 128, 150, 190, 230, 255])
def test_harmonic_signal_gives_its_pitch(period):
    n = np.arange(FRAME_SIZE * 60)
    f0 = 1.0 / period
    harmonics = np.arange(1, int(0.5 / f0) + 1)
    # glottal-like 1/k spectrum
    x = sum(np.cos(2 * np.pi * k * f0 * n + 0.3 * k) / k for k in harmonics)
    x = 8000 * x / np.abs(x).max()
    feats = F.extract(x)
    periods = decode_pitch(feats[10:, PITCH_INDEX])
    assert abs(np.median(periods) - period) <= 1, (period, np.unique(periods))
    assert np.mean(np.abs(periods - period) <= 1.5) > 0.9
    assert np.median(feats[10:, PITCH_CORR_INDEX]) > 0.3   # strongly voiced


def test_lpc_prediction_lowers_residual_energy_on_voiced_speech(slice_pcm, slice_feats):
    x = lfilter([1, -0.85], [1], slice_pcm.astype(np.float64))
    gains = []
    for k in np.nonzero(slice_feats[:, PITCH_CORR_INDEX] > 0.2)[0]:
        start = FRAME_SIZE * k - 240          # the half-frame-aligned samples of record k
        if start < 16:
            continue
        seg = x[start - 16:start + FRAME_SIZE]
        a = slice_feats[k, LPC].astype(np.float64)
        residual = lfilter(np.concatenate([[1.0], a]), [1.0], seg)[16:]
        gains.append(np.sum(seg[16:] ** 2) / np.sum(residual ** 2))
    gains = np.array(gains)
    assert len(gains) > 100
    assert np.median(gains) > 4, np.median(gains)      # > 6 dB prediction gain
    assert np.mean(gains > 1) > 0.95


# --- training mode and data.u8 ----------------------------------------------------------
def test_data_bytes_are_consistent(slice_training_pair):
    feats, data = read_training_pair(*slice_training_pair)
    feats, data = np.array(feats), np.array(data)
    assert len(data) == len(feats) * FRAME_SIZE
    n = 80 * FRAME_SIZE                           # replay the first 80 frames
    e_noisy = data[1:n + 1, 2].astype(int)
    table = ulaw2lin(np.arange(256)).astype(np.float32)
    hist = np.zeros(16, np.float32)               # s_hat[n-1], s_hat[n-2], ...
    sig_codes, pred_codes = np.empty(n, int), np.empty(n, int)
    for t in range(n):
        a = feats[t // FRAME_SIZE, LPC]           # the CURRENT frame's LPC (docs/features.md, deviation 1)
        p = np.float32(0)
        for j in range(16):
            p = np.float32(p - np.float32(a[j] * hist[j]))
        sig_codes[t] = lin2ulaw(float(hist[0]))
        pred_codes[t] = lin2ulaw(float(p))
        hist[1:] = hist[:-1].copy()
        hist[0] = np.float32(p + table[e_noisy[t]])
    # byte 0 = mu-law of the previous reconstructed sample, byte 1 = mu-law of the prediction
    np.testing.assert_array_equal(sig_codes, data[:n, 0])
    np.testing.assert_array_equal(pred_codes, data[:n, 1])
    # No augmentation draw before frame index 2821: noise_std = 0, so input excitation = target.
    np.testing.assert_array_equal(data[1:n + 1, 2], data[:n, 3])
    assert data[0, 2] == 128 and data[0, 0] == 128 and data[0, 1] == 128


def test_training_features_match_test_mode_before_first_draw(slice_training_pair, train_s16):
    feats, _ = read_training_pair(*slice_training_pair)
    test = F.extract(np.array(read_s16(train_s16)), seed=0)
    # Same signal chain, but -train also draws excitation noise, so the dither differs.
    assert feats.shape == test.shape
    loud = test[:, 0] > 0
    assert np.abs(feats[loud, :18] - test[loud, :18]).max() < 0.05


def test_training_wraps_around_and_augments(train_s16):
    pcm = np.array(read_s16(train_s16))
    n = len(pcm) // FRAME_SIZE
    total = 3000                                   # past the first draw (frame index 2821)
    feats, data = F.extract_training(pcm, seed=5, max_frames=total)
    assert feats.shape == (total, NB_TOTAL_FEATURES) and data.shape == (total * FRAME_SIZE, 4)
    assert np.isfinite(feats).all()
    # Same seed -> identical bytes; other seed -> other noise.
    feats2, data2 = F.extract_training(pcm, seed=5, max_frames=total)
    np.testing.assert_array_equal(data, data2)
    _, data3 = F.extract_training(pcm, seed=6, max_frames=total)
    # The first augmentation draw happens in the 2822nd frame (index 2821, docs/features.md, Modes).
    start = 2821 * FRAME_SIZE
    assert not np.array_equal(data[start:], data3[start:])
    # Before the first draw: no excitation noise; after it, noise with noise_std > 0.
    np.testing.assert_array_equal(data[1:start, 2], data[:start - 1, 3])
    noise = data[start + 1:, 2].astype(int) - data[start:-1, 3].astype(int)
    assert np.any(noise != 0)
    # One pass by default: record count = complete input frames.
    f1, d1 = F.extract_training(pcm, seed=5)
    assert len(f1) == n and len(d1) == n * FRAME_SIZE
    np.testing.assert_array_equal(d1, data[:n * FRAME_SIZE])


# --- files and CLI ---------------------------------------------------------------------------
def test_dump_data_test_mode_file_and_wav_input(tmp_path, train_s16, train_wav):
    out = tmp_path / "f.f32"
    summary = F.dump_data(train_s16, out, progress=False)
    feats = read_features(out)
    np.testing.assert_array_equal(feats, F.extract(np.array(read_s16(train_s16))))
    assert summary["frames"] == len(feats) == (train_s16.stat().st_size // 2) // FRAME_SIZE
    # A wav is decoded (never read as samples): same features as the prepared .s16.
    out_wav = tmp_path / "w.f32"
    F.dump_data(train_wav, out_wav, progress=False)
    np.testing.assert_array_equal(read_features(out_wav), feats)


@pytest.mark.parametrize("rate", [8000, 44100])
def test_audio_at_other_rates_is_resampled(tmp_path, train_wav, rate):
    import soundfile as sf

    from lpcnet.audio import load_speech, resample

    x, _ = load_speech(train_wav)
    src = tmp_path / f"speech_{rate}.flac"
    sf.write(src, resample(x, 16000, rate), rate)
    summary = F.dump_data(src, tmp_path / "f.f32", progress=False)
    feats = read_features(tmp_path / "f.f32")
    assert len(feats) == summary["frames"]
    assert abs(len(feats) - len(x) // FRAME_SIZE) <= 1
    assert np.isfinite(feats).all()


def test_cli_train_and_test(tmp_path, train_s16, capsys):
    from lpcnet.cli import main

    f, d = tmp_path / "f.f32", tmp_path / "d.u8"
    assert main(["dump-data", "-train", str(train_s16), str(f), str(d), "--seed", "0",
                 "--no-progress"]) == 0
    out = capsys.readouterr()
    assert "seed 0" in out.out
    feats, data = read_training_pair(f, d)
    assert len(feats) == (train_s16.stat().st_size // 2) // FRAME_SIZE
    # One pass of this short slice stays before the first augmentation draw: one warning line.
    assert len(feats) < 2822
    warn = out.err.strip().splitlines()
    assert len(warn) == 1 and warn[0].startswith("lpcnet dump-data: warning: ") and "have none" in warn[0], warn
    assert main(["dump-data", "-train", str(train_s16), str(f), str(d), "--max-frames", "2822",
                 "--no-progress"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["dump-data", "-test", str(train_s16), str(tmp_path / "t.f32"), "--no-progress"]) == 0
    assert "warning" not in capsys.readouterr().err


def _bad(tmp_path, capsys, argv, must_mention):
    from lpcnet.cli import main

    before = set(tmp_path.rglob("*"))
    rc = main(["dump-data", *argv])
    err = capsys.readouterr().err.strip()
    assert rc != 0
    assert len(err.splitlines()) == 1, err
    assert must_mention in err, err
    assert set(tmp_path.rglob("*")) == before       # no partial output left behind


def test_cli_bad_inputs(tmp_path, capsys):
    out = str(tmp_path / "o.f32")
    _bad(tmp_path, capsys, ["-test", str(tmp_path / "missing.s16"), out], "missing.s16")
    empty = tmp_path / "empty.s16"
    empty.write_bytes(b"")
    _bad(tmp_path, capsys, ["-test", str(empty), out], "empty")
    odd = tmp_path / "odd.s16"
    odd.write_bytes(b"\x01\x02\x03")
    _bad(tmp_path, capsys, ["-test", str(odd), out], "odd")
    short = tmp_path / "short.s16"
    short.write_bytes(b"\x00\x00" * 100)
    _bad(tmp_path, capsys, ["-test", str(short), out], "one frame")
    wav_as_s16 = tmp_path / "riff.s16"
    wav_as_s16.write_bytes(b"RIFF" + b"\x00" * 400)
    _bad(tmp_path, capsys, ["-test", str(wav_as_s16), out], "WAV")
    _bad(tmp_path, capsys, ["-test", str(short)], "2 file arguments")
    _bad(tmp_path, capsys, ["-train", str(short), out], "3 file arguments")
    _bad(tmp_path, capsys, [str(short), out], "missing mode")
    _bad(tmp_path, capsys, ["-qtrain", str(short), out, out], "not supported")


def test_cli_unwritable_output(tmp_path, capsys, train_s16):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if (locked / "probe").exists() or _writable(locked):
            pytest.skip("running with permissions that ignore directory modes (root)")
        _bad(locked, capsys, ["-test", str(train_s16), str(locked / "o.f32")], "o.f32")
    finally:
        locked.chmod(0o700)


def _writable(folder: Path) -> bool:
    try:
        (folder / ".probe").write_bytes(b"")
        (folder / ".probe").unlink()
        return True
    except OSError:
        return False


def test_cli_output_in_a_file_path_is_a_clear_error(tmp_path, capsys, train_s16):
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"x")
    # the parent of the output is a regular file: cannot be created (even as root)
    _bad(tmp_path, capsys, ["-test", str(train_s16), str(blocker / "o.f32")], "o.f32")


def test_streaming_memory_is_constant(tmp_path):
    """Peak RSS for 1 and 10 minutes of (sparse) audio must be about the same."""
    code = ("import resource, sys; from lpcnet.features import dump_data; "
            "dump_data(sys.argv[1], sys.argv[2], progress=False); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    peaks = []
    for minutes in (1, 10):
        src = tmp_path / f"{minutes}.s16"
        with open(src, "wb") as f:
            f.truncate(minutes * 60 * 16000 * 2)       # sparse file of zeros
        res = subprocess.run([sys.executable, "-c", code, str(src), str(tmp_path / "o.f32")],
                             capture_output=True, text=True, check=True, cwd=ROOT,
                             env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
        peaks.append(int(res.stdout.strip()))
    # 10 min of int16 alone would be 19 MB (and its features 8.6 MB); allow 5 MB of noise.
    assert peaks[1] - peaks[0] < 5 * 1024, peaks


# --- plots (lpcnet.plots) ------------------------------------------------------------------------
def test_plots_return_figures_with_the_data(slice_pcm, slice_feats, slice_training_pair):
    from matplotlib.figure import Figure

    from lpcnet import plots

    _, data = read_training_pair(*slice_training_pair)
    fig = plots.pitch_track(slice_pcm, slice_feats)
    line = fig.axes[0].lines[0]
    f0 = 16000 / decode_pitch(slice_feats[:, PITCH_INDEX])
    voiced = slice_feats[:, PITCH_CORR_INDEX] >= 0
    np.testing.assert_allclose(line.get_ydata()[voiced], f0[voiced])
    assert np.isnan(line.get_ydata()[~voiced]).all()
    hist = plots.ulaw_histogram(data)
    assert sum(p.get_height() for p in hist.axes[0].patches) == len(data)
    for fig in (plots.waveform(slice_pcm), plots.cepstrogram(slice_feats), hist):
        assert isinstance(fig, Figure) and fig.axes
    assert plots.excitation_audio(data).shape == (len(data),)


def test_lpc_envelope_follows_the_spectrum(slice_pcm, slice_feats):
    from lpcnet import plots

    loud_voiced = np.where(slice_feats[:, 0] > 5, slice_feats[:, PITCH_CORR_INDEX], -9)
    fig = plots.lpc_envelope(slice_pcm, slice_feats, int(np.argmax(loud_voiced)))
    spec, env = (np.asarray(line.get_ydata()) for line in fig.axes[0].lines)
    smooth = np.convolve(spec, np.ones(9) / 9, mode="same")
    assert np.corrcoef(smooth[5:-5], env[5:-5])[0, 1] > 0.7


def test_bench_features_runs_and_reports(capsys):
    import os

    from lpcnet.bench import BENCHMARKS

    cpus = os.sched_getaffinity(0)
    result = BENCHMARKS["features"].function(seconds=2.0, reference_seconds=0.5, repeat=1)
    assert os.sched_getaffinity(0) == cpus          # the one-core pinning is undone
    assert result["audio_s"] == 2.0 and result["simd"] == F.simd_level()
    for key in ("test_x_realtime", "train_x_realtime", "reference_x_realtime", "c_over_reference"):
        assert result[key] > 0
    assert "x real time" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["-foo", "a.s16", "b.f32"], ["-test", "-train", "a.s16", "b.f32"],
                                  ["-test", "a.s16", "b.f32", "--bogus"]])
def test_cli_usage_errors_are_one_line(argv, capsys):
    from lpcnet.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["dump-data", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "usage: lpcnet dump-data -train" in err, err


def test_dump_data_warns_about_a_truncated_wav_and_refuses_nan(tmp_path, train_wav, capsys):
    """A WAV cut short (header 3.1 s, data 0.15 s): one warning line naming both lengths."""
    import soundfile as sf

    from lpcnet.cli import main

    cut = tmp_path / "cut.wav"
    cut.write_bytes(train_wav.read_bytes()[:44 + 4800])
    assert main(["dump-data", "-test", str(cut), str(tmp_path / "f.f32"), "--no-progress"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lpcnet dump-data: warning: ") and "cut.wav: truncated: " \
        "its header claims 3.10 s of audio, the file holds 0.15 s" in err[0], err
    assert len(read_features(tmp_path / "f.f32")) == 2400 // FRAME_SIZE
    x, _ = sf.read(train_wav, dtype="float32")
    x[:] = np.inf
    sf.write(tmp_path / "inf.wav", x, 16000, subtype="FLOAT")
    _bad(tmp_path, capsys, ["-test", str(tmp_path / "inf.wav"), str(tmp_path / "g.f32")],
         f"{tmp_path / 'inf.wav'}: 49520 of 49520 samples are NaN or Inf")
