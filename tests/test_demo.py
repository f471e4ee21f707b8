"""The README's demo command runs the whole chain on real speech and reports its outputs."""

import subprocess
import sys

import numpy as np
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
