"""lpcnet prepare: real multi-rate / multichannel / G.722 inputs made from the speech slice."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import av
import librosa
import numpy as np
import pytest
import soundfile as sf

from lpcnet import cli
from lpcnet.audio import load_speech, read_audio
from lpcnet.data import Manifest, collect_inputs, prepare
from lpcnet.errors import AudioError, LpcnetError, LpcnetWarning
from lpcnet.formats import float_to_int16, read_s16, write_s16


@pytest.fixture(scope="module")
def speech(train_wav):
    x, rate = sf.read(train_wav, dtype="float32")
    assert rate == 16000
    return x


def _corr(a, b):
    n = min(len(a), len(b))
    a, b = a[:n] - a[:n].mean(), b[:n] - b[:n].mean()
    return float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)))


def _encode_g722(x16k: np.ndarray, path):
    """Encode 16 kHz float speech as raw G.722 with FFmpeg (as Asterisk's prompts are)."""
    with av.open(str(path), "w", format="g722") as out:
        stream = out.add_stream("g722", rate=16000, layout="mono")
        pcm = (np.clip(x16k, -1, 1) * 32767).astype(np.int16)
        for start in range(0, len(pcm), 1600):
            frame = av.AudioFrame.from_ndarray(pcm[None, start:start + 1600], format="s16", layout="mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, speech):
    """A folder of the slice re-encoded at several rates, channel counts and formats."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "sub" / "deeper").mkdir(parents=True)
    x44 = librosa.resample(speech, orig_sr=16000, target_sr=44100, res_type="soxr_hq")
    sf.write(root / "a_44k_stereo.wav", np.stack([x44, 0.5 * x44], axis=1), 44100)
    x8 = librosa.resample(speech, orig_sr=16000, target_sr=8000, res_type="soxr_hq")
    sf.write(root / "sub" / "b_8k.flac", x8, 8000)
    x48 = librosa.resample(speech, orig_sr=16000, target_sr=48000, res_type="soxr_hq")
    sf.write(root / "sub" / "deeper" / "c_48k_3ch.wav", np.stack([x48] * 3, axis=1), 48000,
             subtype="FLOAT")
    _encode_g722(speech, root / "d_prompt.g722")
    sf.write(root / "silent.wav", np.zeros(16000, np.float32), 16000)
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    (root / "notes.txt").write_text("not audio")
    (root / "sub" / "beep.wav").write_bytes(b"")  # excluded by the default globs
    return root


def test_collect_inputs_recursive_and_excludes(corpus):
    names = sorted(p.name for p in collect_inputs([corpus]))
    assert names == ["a_44k_stereo.wav", "b_8k.flac", "broken.wav", "c_48k_3ch.wav",
                     "d_prompt.g722", "silent.wav"]


def test_g722_decodes_at_16k(corpus, speech):
    x, rate = read_audio(corpus / "d_prompt.g722")
    assert rate == 16000 and x.shape[1] == 1
    assert abs(len(x) - len(speech)) < 400
    # G.722 is a lossy ADPCM codec, but the waveform survives closely (codec delay aside).
    lag = np.argmax(np.correlate(x[:8000, 0], speech[:6000], "valid"))
    assert _corr(x[lag:, 0], speech) > 0.9


def test_prepare_multirate_multichannel(corpus, speech, tmp_path):
    out = tmp_path / "input.s16"
    man = prepare([corpus], out, progress=False)
    pcm = np.asarray(read_s16(out)).astype(np.float32) / 32768

    # Folder order: sorted paths (a, d, sub/b, sub/deeper/c).
    assert [s.source_rate for s in man.sources] == [44100, 16000, 8000, 48000]
    assert [s.source_channels for s in man.sources] == [2, 1, 1, 3]
    assert {s["path"].rsplit("/", 1)[-1] for s in man.skipped} == {"silent.wav", "broken.wav"}
    assert any("silent" in s["reason"] for s in man.skipped)
    # Offsets tile the output exactly.
    assert man.sources[0].offset == 0
    for prev, cur in zip(man.sources, man.sources[1:]):
        assert cur.offset == prev.offset + prev.samples
    assert man.total_samples == len(pcm) == out.stat().st_size // 2
    for s in man.sources:
        assert abs(s.samples - len(speech)) <= 2
        assert s.duration_s == pytest.approx(len(speech) / 16000, abs=1e-3)

    seg = {s.path.rsplit("/", 1)[-1]: pcm[s.offset:s.offset + s.samples] for s in man.sources}
    # 44.1 kHz stereo (L + 0.5 L) mixed to mono = 0.75 x speech, resampled back to 16 kHz.
    assert _corr(seg["a_44k_stereo.wav"], speech) > 0.999
    assert np.std(seg["a_44k_stereo.wav"]) / np.std(speech) == pytest.approx(0.75, rel=0.02)
    assert _corr(seg["c_48k_3ch.wav"], speech) > 0.999
    # 8 kHz keeps only the band below 4 kHz.
    low = librosa.resample(librosa.resample(speech, orig_sr=16000, target_sr=8000), orig_sr=8000,
                           target_sr=16000)
    assert _corr(seg["b_8k.flac"], low) > 0.99

    on_disk = Manifest.load(str(out) + ".json")
    assert on_disk.total_samples == man.total_samples and len(on_disk.sources) == 4
    assert json.loads((tmp_path / "input.s16.json").read_text())["duration_s"] == pytest.approx(
        man.total_samples / 16000)


def test_prepare_peak_and_rms_normalisation(train_wav, tmp_path):
    man = prepare([train_wav], tmp_path / "p.s16", normalize="peak", progress=False)
    pcm = np.asarray(read_s16(tmp_path / "p.s16")).astype(np.float64)
    assert 20 * np.log10(np.abs(pcm).max() / 32768) == pytest.approx(-1.0, abs=0.01)
    assert man.sources[0].clipped_samples == 0
    prepare([train_wav], tmp_path / "r.s16", normalize="rms", level_db=-30, progress=False)
    pcm = np.asarray(read_s16(tmp_path / "r.s16")).astype(np.float64) / 32768
    assert 20 * np.log10(np.sqrt(np.mean(pcm ** 2))) == pytest.approx(-30.0, abs=0.05)


def test_prepare_list_file_and_resample_quality(tmp_path, speech):
    sf.write(tmp_path / "x22.wav", librosa.resample(speech, orig_sr=16000, target_sr=22050), 22050)
    (tmp_path / "list.txt").write_text("# one per line\nx22.wav\n")
    man = prepare([], tmp_path / "o.s16", list_files=[tmp_path / "list.txt"], progress=False)
    assert len(man.sources) == 1
    y, info = load_speech(tmp_path / "x22.wav")
    assert info == {"sample_rate": 22050, "channels": 1, "duration_s": pytest.approx(len(speech) / 16000, abs=1e-3)}
    assert _corr(y, speech) > 0.999


def test_prepare_empty_result_is_an_error_and_writes_nothing(corpus, tmp_path):
    out = tmp_path / "none.s16"
    with pytest.raises(LpcnetError, match=r"no usable audio in 2 input file\(s\) \(2 skipped, the first: "
                                          r".*silent.wav: silent \(peak below -60.0 dBFS\)\); nothing written"):
        prepare([corpus / "silent.wav", corpus / "broken.wav"], out, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_prepare_missing_input(tmp_path):
    with pytest.raises(LpcnetError, match="no such file or folder"):
        prepare([tmp_path / "absent"], tmp_path / "o.s16", progress=False)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "lpcnet", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


def test_cli_prepare_and_info(corpus, tmp_path):
    r = _cli("prepare", corpus / "a_44k_stereo.wav", corpus / "silent.wav", "-o", tmp_path / "in.s16",
             "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "skipped" in r.stdout and "1 files" in r.stdout
    r = _cli("info", tmp_path / "in.s16")
    assert r.returncode == 0 and "s16, samples=" in r.stdout


@pytest.mark.parametrize("args,expect", [
    (("prepare", "-o", "x.s16"), "no inputs given"),
    (("prepare", "/nonexistent/dir", "-o", "x.s16"), "/nonexistent/dir: no such file or folder"),
    (("info", "/nonexistent.f32"), "/nonexistent.f32: file not found"),
])
def test_cli_user_errors_are_one_line(args, expect, tmp_path):
    r = _cli(*args)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0] and "Traceback" not in r.stderr


def test_cli_help_for_every_command():
    from lpcnet.cli import COMMANDS

    for name in COMMANDS:
        r = _cli(name, "--help")
        assert r.returncode == 0 and "usage: lpcnet " + name in r.stdout, name


# --- hostile inputs: one line naming the file, nothing written (docs/promises.md) --------------
def _run(argv, capsys) -> tuple[int, list[str], list[str]]:
    """``lpcnet ARGV`` in this process -> (exit status, stdout lines, stderr lines)."""
    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as exc:            # argparse: a value its type refuses (exit 2)
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out.strip().splitlines(), err.strip().splitlines()


@pytest.fixture
def bad_audio(speech, tmp_path):
    """The slice as float WAVs with 10 NaN samples, one Inf sample, and all NaN."""
    d = tmp_path / "bad"
    d.mkdir()
    for name, lo, hi, value in (("somenan", 1000, 1010, np.nan), ("oneinf", 1000, 1001, np.inf),
                                ("allnan", 0, len(speech), np.nan)):
        x = speech.copy()
        x[lo:hi] = value
        sf.write(d / f"{name}.wav", x, 16000, subtype="FLOAT")
    return d


@pytest.mark.parametrize("name,count", [("somenan", 10), ("oneinf", 1), ("allnan", 49520)])
@pytest.mark.parametrize("normalize", ["none", "peak", "rms"])
def test_prepare_skips_nan_and_inf_audio_with_the_count(bad_audio, train_wav, tmp_path, capsys,
                                                        name, count, normalize):
    bad = bad_audio / f"{name}.wav"
    with pytest.raises(AudioError, match=rf"{name}.wav: {count} of 49520 samples are NaN or Inf"):
        read_audio(bad)
    out = tmp_path / "o.s16"
    rc, _, err = _run(["prepare", bad, "-o", out, "--normalize", normalize, "--no-progress"], capsys)
    assert rc == 1 and len(err) == 1, err
    assert f"(1 skipped: {bad}: {count} of 49520 samples are NaN or Inf" in err[0], err
    assert not out.exists() and not Path(f"{out}.json").exists()
    # with good audio beside it: the bad file is skipped, the reason printed and kept (valid JSON)
    rc, lines, err = _run(["prepare", bad, train_wav, "-o", out, "--normalize", normalize,
                           "--no-progress"], capsys)
    assert rc == 0 and f"skipped {bad}: {count} of 49520 samples are NaN or Inf" in lines[0], lines
    man = json.loads(Path(f"{out}.json").read_text())
    assert [s["path"] for s in man["sources"]] == [str(train_wav)]
    assert np.isfinite(man["sources"][0]["gain_db"]) and "NaN or Inf" in man["skipped"][0]["reason"]
    assert np.abs(read_s16(out).astype(np.int32)).max() > 1000


def test_every_command_refuses_nan_audio_in_one_line(bad_audio, tmp_path, capsys):
    from lpcnet.demo import DEMO_BLOB

    bad = bad_audio / "somenan.wav"
    for argv in (["dump-data", "-test", bad, tmp_path / "f.f32"],
                 ["synth", "--checkpoint", DEMO_BLOB, "--audio", bad, "--output", tmp_path / "s.wav"]):
        rc, _, err = _run(argv, capsys)
        assert rc == 1 and len(err) == 1, (argv, err)
        assert f"{bad}: 10 of 49520 samples are NaN or Inf" in err[0], (argv, err)
    assert list(tmp_path.glob("*.*")) == []


def test_prepare_writes_neither_output_when_the_manifest_cannot_be_written(train_wav, heldout_wav,
                                                                            tmp_path, capsys):
    out = tmp_path / "x2.s16"
    assert _run(["prepare", heldout_wav, "-o", out, "--no-progress"], capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    # /proc takes no new files, not even root's (a read-only folder would not stop root)
    rc, _, err = _run(["prepare", train_wav, "-o", out, "--manifest", "/proc/m.json", "--no-progress"],
                      capsys)
    assert rc == 1 and len(err) == 1 and "/proc/m.json: cannot write" in err[0], err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.fixture
def junk(tmp_path, train_wav):
    """Files that are not what a flag or list expects, and lists naming them."""
    d = tmp_path / "junk"
    d.mkdir()
    (d / "binary.lst").write_bytes(bytes(range(256)) * 4)
    (d / "nul.lst").write_bytes(b"\x00" * 64)
    (d / "empty.lst").write_text("# nothing here\n\n")
    (d / "missing.lst").write_text(f"{train_wav}\n\nnot_there.wav\n")
    (d / "twice.lst").write_text(f"{train_wav}\n# again\n{train_wav}\n")
    (d / "text.wav").write_text("hello, this is text\n")
    (d / "empty.flac").write_bytes(b"")
    return d


@pytest.mark.parametrize("args,status,expect", [
    (("W", "-o", ""), 1, "--output: empty path"),
    (("W", "-o", "o.s16", "--manifest", ""), 1, "--manifest: empty path"),
    (("--list", "J/binary.lst", "-o", "o.s16"), 1, "binary.lst: not UTF-8 text (byte 0x80 at offset 128)"),
    (("--list", "J/nul.lst", "-o", "o.s16"), 1, "nul.lst: holds NUL bytes"),
    (("--list", "J/empty.lst", "-o", "o.s16"), 1, "empty.lst: lists no audio files"),
    (("--list", "J/missing.lst", "-o", "o.s16"), 1,
     "missing.lst: entry 2 (line 3: not_there.wav): file not found"),
    (("--list", "J/twice.lst", "-o", "o.s16"), 1, "arctic_a0009.wav: given twice as an input"),
    (("W", "W", "-o", "o.s16"), 1, "arctic_a0009.wav: given twice as an input"),
    (("W", "-o", "o.s16", "--level-db", "nan"), 2, "argument --level-db: expected a finite number"),
    (("W", "-o", "o.s16", "--normalize", "rms", "--level-db", "inf"), 2, "expected a finite number"),
    (("W", "-o", "o.s16", "--silence-db", "nan"), 2, "argument --silence-db: expected a finite number"),
    (("W", "-o", "o.s16", "--silence-db", "3"), 1, "--silence-db 3: expected a finite level below 0 dBFS"),
    (("W", "-o", "o.s16", "--level-db", "-20"), 1, "--level-db -20 applies only with --normalize"),
    (("W", "-o", "o.s16", "--normalize", "rms", "--level-db", "2"), 1, "an RMS above 0 dBFS"),
    (("W", "-o", "o.s16", "--normalize", "rms", "--level-db", "-400"), 1, "below -90.3 dBFS"),
    (("J/text.wav", "-o", "o.s16"), 1, "(1 skipped: J/text.wav: cannot decode audio"),
    (("J/empty.flac", "J/text.wav", "-o", "o.s16"), 1, "(2 skipped, the first: J/empty.flac: no audio"),
])
def test_prepare_bad_input_is_one_line_and_writes_nothing(args, status, expect, junk, train_wav, tmp_path,
                                                          capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = [str(train_wav) if a == "W" else a.replace("J/", "junk/") for a in args]
    rc, _, err = _run(["prepare", *args, "--no-progress"], capsys)
    assert rc == status and len(err) == 1, err
    assert expect.replace("J/", "junk/") in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk"]


def test_prepare_reads_the_kits_headerless_s16(train_s16, train_wav, tmp_path):
    """A .s16 (what prepare writes) is read as 16 kHz mono int16: prepared again, unchanged."""
    out = tmp_path / "again.s16"
    man = prepare([train_s16], out, progress=False)
    assert out.read_bytes() == train_s16.read_bytes()
    assert (man.sources[0].source_rate, man.sources[0].source_channels) == (16000, 1)
    (tmp_path / "odd.s16").write_bytes(train_s16.read_bytes()[:-1])
    with pytest.raises(LpcnetError, match=r"\(1 skipped: .*odd.s16: size 99039 bytes is not a multiple of 2"):
        prepare([tmp_path / "odd.s16"], tmp_path / "o.s16", progress=False)


def test_a_truncated_wav_is_used_with_a_warning(train_wav, tmp_path, capsys):
    """The header claims 3.1 s, the data holds 0.15 s: one warning line, also in the manifest."""
    cut = tmp_path / "cut.wav"
    cut.write_bytes(train_wav.read_bytes()[:44 + 4800])
    with pytest.warns(LpcnetWarning, match=r"cut.wav: truncated: its header claims 3.10 s of audio, the "
                                           r"file holds 0.15 s"):
        x, _ = load_speech(cut)
    assert len(x) == 2400
    rc, _, err = _run(["prepare", cut, "-o", tmp_path / "o.s16", "--no-progress"], capsys)
    assert rc == 0 and len(err) == 1 and "warning: " in err[0] and "truncated" in err[0], err
    assert json.loads((tmp_path / "o.s16.json").read_text())["warnings"] == [err[0].split("warning: ", 1)[1]]


def test_a_file_reached_twice_through_overlapping_inputs_is_refused(corpus, tmp_path):
    with pytest.raises(LpcnetError, match=r"b_8k.flac: given twice as an input"):
        collect_inputs([corpus / "sub", corpus / "sub" / "b_8k.flac"])
    with pytest.raises(LpcnetError, match=r"given twice as an input"):
        collect_inputs([corpus, corpus / "sub"])
    # a symbolic link beside its target inside one folder is kept, as before
    d = tmp_path / "linked"
    d.mkdir()
    shutil.copy(corpus / "sub" / "b_8k.flac", d / "a.flac")
    (d / "b.flac").symlink_to(d / "a.flac")
    assert [p.name for p in collect_inputs([d])] == ["a.flac", "b.flac"]
