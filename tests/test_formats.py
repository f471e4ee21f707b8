"""lpcnet.formats: µ-law against the exact formula of docs/formats.md, round trips, every bad-file case."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from lpcnet import formats as F
from lpcnet.errors import FormatError


# --- µ-law (docs/formats.md) -------------------------------------------------
def _lin2ulaw_scalar(x: float) -> int:
    """docs/formats.md's µ-law formula with the math module; Python's round() is half-to-even too."""
    s = 255.0 / 32768.0
    sign = (x > 0) - (x < 0)
    u = 128 + round(sign * 128 * math.log(1 + s * abs(x)) / math.log(256))
    return min(255, max(0, u))


def _ulaw2lin_scalar(u: int) -> float:
    d = u - 128
    sign = (d > 0) - (d < 0)
    return sign * (32768.0 / 255.0) * (math.exp(abs(d) / 128 * math.log(256)) - 1)


def test_ulaw_exact_anchor_values():
    assert F.ulaw2lin(0) == pytest.approx(-32768.0, abs=1e-9)
    assert F.ulaw2lin(128) == 0.0
    # The formula gives 128.5 * (256**(127/128) - 1) = 31373.3; the value "~ +31 443" sometimes
    # quoted for it is a slip of the pen (see docs/formats.md, µ-law); the formula is normative.
    assert F.ulaw2lin(255) == pytest.approx(32768 / 255 * (256 ** (127 / 128) - 1), rel=1e-12)
    assert 31373 < F.ulaw2lin(255) < 31374
    assert F.lin2ulaw(0) == 128
    assert F.lin2ulaw(-32768) == 0
    assert F.lin2ulaw(32767) == 255
    assert F.lin2ulaw(1e9) == 255 and F.lin2ulaw(-1e9) == 0  # clipped, not wrapped


def test_ulaw_matches_scalar_formula_on_dense_grid():
    x = np.concatenate([np.linspace(-32768, 32767, 200_001), np.arange(-300, 300, 0.25)])
    ours = F.lin2ulaw(x)
    ref = np.array([_lin2ulaw_scalar(float(v)) for v in x])
    assert ours.dtype == np.int16
    np.testing.assert_array_equal(ours, ref)
    u = np.arange(256)
    np.testing.assert_allclose(F.ulaw2lin(u), [_ulaw2lin_scalar(int(v)) for v in u], rtol=1e-12, atol=1e-9)


def test_ulaw_round_half_to_even():
    # Inputs whose companded value lies exactly halfway between two codes.
    s = 255.0 / 32768.0
    for half in (0.5, 1.5, 2.5, 10.5):
        x = (math.exp(half / 128 * math.log(256)) - 1) / s
        expected = 128 + round(half)          # 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 10.5 -> 10
        got = int(F.lin2ulaw(x))
        assert got in (expected, expected + 1)  # float error may push just above the tie
        assert int(F.lin2ulaw(-x)) == 256 - got


def test_ulaw_round_trip_all_codes_and_monotonic():
    u = np.arange(256)
    np.testing.assert_array_equal(F.lin2ulaw(F.ulaw2lin(u)), u)
    assert np.all(np.diff(F.ulaw2lin(u)) > 0)
    assert np.all(np.diff(F.lin2ulaw(np.arange(-32768, 32768))) >= 0)


def _encode_pitch(p0, p1):
    """The feature extractor's pitch feature (docs/formats.md), in float32 as the file holds it."""
    return (0.01 * (np.clip(np.asarray(p0) + np.asarray(p1), 66, 510) - 200)).astype(np.float32)


def test_pitch_encode_decode_round_trip():
    p = np.arange(33, 256)
    np.testing.assert_array_equal(F.decode_pitch(_encode_pitch(p, p)), p)
    # Unequal half-frame periods decode to the truncated mean.
    assert int(F.decode_pitch(_encode_pitch(100, 101))) == 100
    assert F.decode_pitch(_encode_pitch(600, 600)) == 255


# --- layout ------------------------------------------------------------------
def test_layout_constants_are_consistent():
    assert F.NB_TOTAL_FEATURES == 36 and F.NB_FEATURES == 20
    covered = sorted(i for a, b in F.LAYOUT.values() for i in range(a, b))
    assert covered == list(range(36))
    assert F.LAYOUT["pitch"] == (F.PITCH_INDEX, F.PITCH_INDEX + 1)
    assert F.LAYOUT["pitch_corr"] == (F.PITCH_CORR_INDEX, F.PITCH_CORR_INDEX + 1)
    assert (F.LPC.start, F.LPC.stop) == F.LAYOUT["lpc"] and F.LPC.stop - F.LPC.start == F.LPC_ORDER
    assert F.FEATURE_BYTES_PER_FRAME == 144 and F.DATA_BYTES_PER_FRAME == 640


# --- round trips ---------------------------------------------------------------
def test_s16_round_trip_is_memmapped(tmp_path, rng):
    x = rng.integers(-32768, 32768, 16000).astype(np.int16)
    path = F.write_s16(tmp_path / "a.s16", x)
    assert path.stat().st_size == 32000
    back = F.read_s16(path)
    assert isinstance(back, np.memmap)
    np.testing.assert_array_equal(back, x)
    # Float input is rounded and clipped, never wrapped.
    F.write_s16(tmp_path / "b.s16", np.array([0.6, -0.6, 40000.0, -40000.0]))
    np.testing.assert_array_equal(F.read_s16(tmp_path / "b.s16"), [1, -1, 32767, -32768])


def test_features_and_data_round_trip(tmp_path, rng, slice_training_pair):
    feats = np.array(F.read_features(slice_training_pair[0])[100:107])   # the extractor's values
    data = rng.integers(0, 256, (7 * 160, 4)).astype(np.uint8)
    F.write_features(tmp_path / "f.f32", feats)
    F.write_data(tmp_path / "d.u8", data)
    f2, d2 = F.read_training_pair(tmp_path / "f.f32", tmp_path / "d.u8")
    assert f2.shape == (7, 36) and f2.dtype == np.float32
    assert d2.shape == (1120, 4) and d2.dtype == np.uint8
    np.testing.assert_array_equal(f2, feats)
    np.testing.assert_array_equal(d2, data)
    assert (tmp_path / "f.f32").stat().st_size == 7 * 144
    assert (tmp_path / "d.u8").stat().st_size == 7 * 640


# --- bad files -------------------------------------------------------------------
def test_missing_and_empty_files(tmp_path):
    for reader in (F.read_s16, F.read_features, F.read_data):
        with pytest.raises(FormatError, match="not found"):
            reader(tmp_path / "nope.bin")
        (tmp_path / "empty").write_bytes(b"")
        with pytest.raises(FormatError, match=r"empty.*expected"):
            reader(tmp_path / "empty")


@pytest.mark.parametrize("reader,size,multiple", [
    (F.read_s16, 3, 2), (F.read_features, 145, 144), (F.read_features, 100, 144),
    (F.read_data, 641, 640), (F.read_data, 644, 640)])
def test_truncated_files_name_size_and_multiple(tmp_path, reader, size, multiple):
    path = tmp_path / "bad.bin"
    path.write_bytes(b"\x00" * size)
    with pytest.raises(FormatError) as err:
        reader(path)
    msg = str(err.value)
    assert str(path) in msg and f"size {size} bytes" in msg and f"multiple of {multiple}" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features_rejected(tmp_path, bad):
    feats = np.zeros((5, 36), np.float32)
    feats[3, 19] = bad
    feats.tofile(tmp_path / "f.f32")
    with pytest.raises(FormatError, match=r"frame 3, index 19"):
        F.read_features(tmp_path / "f.f32")
    with pytest.raises(FormatError, match="non-finite"):
        F.write_features(tmp_path / "g.f32", feats)
    assert not (tmp_path / "g.f32").exists()


def test_pair_frame_count_mismatch(tmp_path):
    np.zeros((4, 36), np.float32).tofile(tmp_path / "f.f32")
    np.zeros((3 * 160, 4), np.uint8).tofile(tmp_path / "d.u8")
    with pytest.raises(FormatError, match=r"3 frames .*4 frames.*2560 bytes"):
        F.read_training_pair(tmp_path / "f.f32", tmp_path / "d.u8")


def test_wav_given_as_s16_is_rejected(tmp_path, train_wav):
    with pytest.raises(FormatError, match="WAV file"):
        F.read_s16(train_wav)


def test_writers_validate_shapes(tmp_path):
    with pytest.raises(FormatError, match=r"\(frames>0, 36\)"):
        F.write_features(tmp_path / "f.f32", np.zeros((3, 20)))
    with pytest.raises(FormatError, match="0..255"):
        F.write_data(tmp_path / "d.u8", np.full((160, 4), 300))
    with pytest.raises(FormatError, match="frames"):
        F.write_data(tmp_path / "d.u8", np.zeros((100, 4), np.uint8))
    assert not list(tmp_path.iterdir())


def test_atomic_output_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with F.atomic_output(path) as f:
            f.write(b"partial new content")
            raise RuntimeError("crash mid-write")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


# --- list files (--list of prepare and synth) -------------------------------------------------
def test_list_file_reader_shared_by_prepare_and_synth(tmp_path, train_wav, heldout_wav):
    from lpcnet.data import collect_inputs as prepare_inputs
    from lpcnet.synth_batch import collect_inputs as synth_inputs

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.wav").write_bytes(heldout_wav.read_bytes())
    lst = tmp_path / "l.txt"
    # a BOM, a comment, blank lines, a relative path (to the list's folder), an absolute one
    lst.write_bytes("\ufeff# speech\n\n  sub/a.wav  \n".encode() + f"{train_wav}\n".encode())
    want = [tmp_path / "sub" / "a.wav", train_wav]
    assert F.read_list_file(lst) == want
    assert prepare_inputs([], list_files=[lst]) == want
    assert synth_inputs(lists=[lst]) == (want, True)


@pytest.mark.parametrize("content,expect", [
    (bytes(range(256)), "not UTF-8 text (byte 0x80 at offset 128); expected a text file"),
    (b"\x00" * 10, "holds NUL bytes"),
    (b"# only a comment\n\n", "lists no inputs"),
    (b"sub\n", "entry 1 (line 1: sub): is not a file"),
    (b"# one\nnot_there.wav\n", "entry 1 (line 2: not_there.wav): file not found"),
])
def test_bad_list_files_are_one_line_errors(tmp_path, content, expect):
    from lpcnet.errors import LpcnetError
    from lpcnet.synth_batch import collect_inputs as synth_inputs

    (tmp_path / "sub").mkdir()
    lst = tmp_path / "l.txt"
    lst.write_bytes(content)
    for read in (F.read_list_file, lambda p: synth_inputs(lists=[p])):
        with pytest.raises(LpcnetError, match=re.escape(f"--list {lst}: {expect}")):
            read(lst)
    with pytest.raises(LpcnetError, match=re.escape(f"--list {tmp_path / 'no.txt'}: file not found")):
        F.read_list_file(tmp_path / "no.txt")
    with pytest.raises(LpcnetError, match=re.escape(f"--list {tmp_path / 'sub'}: is a folder; expected a text")):
        F.read_list_file(tmp_path / "sub")
