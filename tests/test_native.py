"""Native library under AddressSanitizer/UBSan, SIMD kernel self-test, and parity of the C tool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lpcnet import features as F
from lpcnet.formats import FRAME_SIZE, NB_TOTAL_FEATURES, read_s16

NATIVE = Path(__file__).resolve().parents[1] / "native"

pytestmark = pytest.mark.skipif(shutil.which("make") is None or shutil.which("cc") is None,
                                reason="needs make and a C compiler")


def _make(target: str, build: Path) -> None:
    res = subprocess.run(["make", "-s", "-C", str(NATIVE), target, f"BUILD={build}"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("native_build")


@pytest.fixture(scope="module")
def asan_tool(build_dir) -> Path:
    _make("asan", build_dir)
    return build_dir / "dump_data_asan"


def _run(tool: Path, *args) -> subprocess.CompletedProcess:
    env = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=99",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=98", "PATH": "/usr/bin:/bin"}
    return subprocess.run([str(tool), *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env)


def test_simd_kernels_match_scalar(build_dir):
    _make("test", build_dir)
    res = subprocess.run([str(build_dir / "test_xcorr")], capture_output=True, text=True)
    assert res.returncode == 0 and "PASS" in res.stdout, res.stdout


def test_asan_on_real_speech_matches_python(asan_tool, slice_s16, tmp_path):
    out = tmp_path / "f.f32"
    res = _run(asan_tool, "-test", slice_s16, out)
    assert res.returncode == 0, res.stderr
    feats = np.fromfile(out, np.float32).reshape(-1, NB_TOTAL_FEATURES)
    # Same sources, -O1 + sanitizers: bit-identical to the package build (no FMA contraction).
    np.testing.assert_array_equal(feats, F.extract(np.array(read_s16(slice_s16))))
    res = _run(asan_tool, "-seed", 0, "-train", slice_s16, tmp_path / "t.f32", tmp_path / "t.u8")
    assert res.returncode == 0, res.stderr
    f, d = F.extract_training(np.array(read_s16(slice_s16)), seed=0)
    np.testing.assert_array_equal(np.fromfile(tmp_path / "t.f32", np.float32).reshape(f.shape), f)
    np.testing.assert_array_equal(np.fromfile(tmp_path / "t.u8", np.uint8).reshape(d.shape), d)


def _fuzz_inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(42)
    n = 16000 * 2
    t = np.arange(n)
    square = np.where((t // 40) % 2 == 0, 32767, -32768).astype(np.int16)
    clipped = np.clip(3 * 32767 * np.sin(2 * np.pi * 220 * t / 16000), -32768, 32767)
    return {
        "random_bytes": rng.integers(-32768, 32768, n).astype(np.int16),
        "zeros": np.zeros(n, np.int16),
        "square_full_scale": square,
        "nyquist": np.where(t % 2 == 0, 32767, -32768).astype(np.int16),
        "clipped_sine": clipped.astype(np.int16),
        "impulses": np.where(t % 997 == 0, -32768, 0).astype(np.int16),
        "dc_full_scale": np.full(n, -32768, np.int16),
        "tiny": rng.integers(-1, 2, FRAME_SIZE + 7).astype(np.int16),
    }


@pytest.mark.parametrize("name", list(_fuzz_inputs()))
def test_asan_fuzz(asan_tool, tmp_path, name):
    pcm = _fuzz_inputs()[name]
    src = tmp_path / f"{name}.s16"
    pcm.tofile(src)
    res = _run(asan_tool, "-test", src, tmp_path / "f.f32")
    assert res.returncode == 0, res.stderr
    feats = np.fromfile(tmp_path / "f.f32", np.float32).reshape(-1, NB_TOTAL_FEATURES)
    assert len(feats) == len(pcm) // FRAME_SIZE
    assert np.isfinite(feats).all()
    # Training: run past the first augmentation draw (frame index 2821), wrapping around.
    res = _run(asan_tool, "-seed", 1, "-max-frames", 2900, "-train", src, tmp_path / "t.f32",
               tmp_path / "t.u8")
    assert res.returncode == 0, res.stderr
    feats = np.fromfile(tmp_path / "t.f32", np.float32)
    assert len(feats) == 2900 * NB_TOTAL_FEATURES and np.isfinite(feats).all()
    assert (tmp_path / "t.u8").stat().st_size == 2900 * FRAME_SIZE * 4


def test_asan_tool_rejects_bad_arguments(asan_tool, tmp_path):
    assert _run(asan_tool, "-test").returncode == 1
    assert _run(asan_tool, "-train", "a", "b").returncode == 1
    assert _run(asan_tool, "-test", tmp_path / "missing.s16", tmp_path / "o.f32").returncode == 1
