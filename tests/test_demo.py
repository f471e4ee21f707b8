"""The README's demo command runs the whole chain on real speech and reports its outputs."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from lpcnet.demo import DEMO_BLOB
from lpcnet.formats import read_training_pair


def test_demo_runs_the_chain_and_writes_wavs_and_plots(tmp_path):
    r = subprocess.run([sys.executable, "-m", "lpcnet", "demo", "--out-dir", str(tmp_path),
                        "--max-files", "3", "--steps", "6", "--grua-size", "16", "--batch-size", "4",
                        "--no-progress"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Outputs:" in r.stdout
    names = ["heldout_lpcnet.wav", "heldout_reference.wav", "heldout_spectrograms.png",
             "heldout_pitch.png"] + (["heldout_demo_model.wav"] if DEMO_BLOB.is_file() else [])
    for name in names:
        assert str(tmp_path / name) in r.stdout, name
    ref, rate = sf.read(tmp_path / "heldout_reference.wav", dtype="int16")
    syn, rate2 = sf.read(tmp_path / "heldout_lpcnet.wav", dtype="int16")
    # Held-out a0007: 4.0 s = 400 frames; synthesis is exactly frames x 160, finite int16.
    assert rate == rate2 == 16000 and len(ref) == 64000 and len(syn) == 64000
    assert np.abs(ref).max() > 1000 and np.abs(syn).max() > 0
    for png in ("heldout_spectrograms.png", "heldout_pitch.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    feats, data = read_training_pair(tmp_path / "features.f32", tmp_path / "data.u8")
    assert len(feats) == (tmp_path / "input.s16").stat().st_size // 2 // 160
    assert list(tmp_path.glob("model/demo_16_01.keras"))
    if DEMO_BLOB.is_file():
        demo, rate3 = sf.read(tmp_path / "heldout_demo_model.wav", dtype="int16")
        assert rate3 == 16000 and len(demo) == 64000 and np.abs(demo).max() > 1000


@pytest.mark.parametrize("flags", [["--max-files", "0"], ["--max-files", "-3"], ["--steps", "-1"],
                                   ["--batch-size", "0"], ["--grua-size", "7"], ["--seed", "-1"]])
def test_demo_refuses_impossible_numbers_before_writing(flags, tmp_path, capsys):
    """Checked by argparse (exit 2, one line) before prepare or dump-data write anything."""
    from lpcnet.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["demo", "--out-dir", str(tmp_path / "out"), *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and flags[0] in err[0], err
    assert not (tmp_path / "out").exists()


def test_demo_out_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    from lpcnet.cli import main
    from lpcnet.demo import run_demo
    from lpcnet.errors import LpcnetError

    (tmp_path / "afile").write_text("x")
    for out_dir in (tmp_path / "afile", tmp_path / "afile" / "sub"):
        assert main(["demo", "--out-dir", str(out_dir), "--no-progress"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"--out-dir {out_dir}" in err[0], err
    assert (tmp_path / "afile").read_text() == "x"
    with pytest.raises(LpcnetError, match="--steps: expected a whole number >= 1, got 0"):
        run_demo(tmp_path / "out", steps=0)
    assert not (tmp_path / "out").exists()
