"""The README's demo command runs the chain on real speech and reports its outputs."""

import subprocess
import sys

import numpy as np
import soundfile as sf


def test_demo_writes_wav_and_plot(tmp_path):
    r = subprocess.run([sys.executable, "-m", "lpcnet", "demo", "--out-dir", str(tmp_path),
                        "--max-files", "3", "--no-progress"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Outputs:" in r.stdout
    wav = tmp_path / "heldout_reference.wav"
    png = tmp_path / "heldout_reference.png"
    assert str(wav) in r.stdout and str(png) in r.stdout
    x, rate = sf.read(wav, dtype="int16")
    assert rate == 16000 and len(x) == 64000 and np.abs(x).max() > 1000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "input.s16").stat().st_size > 0
