"""Native library under AddressSanitizer/UBSan, SIMD kernel self-test, and parity of the C tool."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lpcnet import features as F
from lpcnet import native
from lpcnet.errors import LpcnetError
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


@pytest.fixture(scope="module")
def kernel_blob(tmp_path_factory) -> Path:
    """Weight blob written by the kit's exporter (int8 copies) of a small LPCNet (GRU A 64, GRU B
    16: the tree4 path) at initialisation, GRU A block-pruned to the densities of training."""
    from lpcnet.config import ModelConfig
    from lpcnet.export import blob_from_weights, write_blob
    from lpcnet.model import build_lpcnet, model_weights
    from lpcnet.sparsity import sparsify_gates

    cfg = ModelConfig(gru_a=64, gru_b=16, cond_size=40)
    weights = model_weights(build_lpcnet(cfg, training=False, seed=3).model)
    weights["gru_a"]["recurrent_kernel"] = sparsify_gates(
        weights["gru_a"]["recurrent_kernel"], cfg.gru_a, (0.1, 0.1, 0.3), keep_diagonal=True)
    return write_blob(tmp_path_factory.mktemp("blob") / "w.bin", blob_from_weights(weights, cfg, int8=True))


def _kernel_test(build_dir, target, slice_s16, kernel_blob) -> str:
    """native/tests/test_kernels.c: every kernel slot at every SIMD level of this CPU vs its
    scalar reference, on random inputs and on the slice's speech and an exported blob."""
    res = subprocess.run(["make", "-s", "-C", str(NATIVE), target, f"BUILD={build_dir}",
                          f"REAL_SPEECH={slice_s16}", f"BLOB={kernel_blob}"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    last = res.stdout.strip().splitlines()[-1]
    assert last.startswith("PASS") and "0 failures" in last, res.stdout[-3000:]
    assert "real inputs:" in res.stdout and "weights from" in res.stdout
    return res.stdout


def test_every_kernel_matches_its_scalar_reference_at_every_simd_level(build_dir, slice_s16,
                                                                       kernel_blob):
    out = _kernel_test(build_dir, "test", slice_s16, kernel_blob)
    cpu = int(out.strip().rsplit("..", 1)[1])                    # "SIMD levels 0..N"
    F.set_simd_level("auto")
    assert cpu >= native.SIMD_LEVELS[F.simd_level()]             # the same detector
    for level in (0, 2, 3, 4):
        assert (f"level {level}: tables" in out) == (level <= cpu)


def test_kernel_test_under_address_and_undefined_behaviour_sanitizers(build_dir, slice_s16,
                                                                     kernel_blob):
    _kernel_test(build_dir, "asan-kernels", slice_s16, kernel_blob)


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
    speech = tmp_path / "s.s16"
    np.zeros(4 * FRAME_SIZE, np.int16).tofile(speech)
    res = _run(asan_tool, "-max-frames", 3, "-test", speech, tmp_path / "o.f32")   # -train only
    assert res.returncode == 1 and "usage" in res.stderr and not (tmp_path / "o.f32").exists()
    assert _run(asan_tool, "-test", tmp_path / "missing.s16", tmp_path / "o.f32").returncode == 1


def test_one_simd_scale_for_the_three_libraries():
    """Levels forced through each library's API mean the same on all three (lpcnet.h)."""
    from lpcnet import fused_gru, synth

    setters = (F.load_library().lpcnet_set_simd_level,
               synth.load_library().lpcnet_synth_set_simd_level,
               fused_gru.load_library().lpcnet_gru_set_simd_level)
    try:
        assert [force(native.SIMD_LEVELS["scalar"]) for force in setters] == [0, 0, 0]
        features, synthesis, gru = (force(native.SIMD_LEVELS["auto"]) for force in setters)
        assert features == synthesis and synthesis in (0, 2, 3)
        assert gru in (0, 3, 4) and (gru >= 3) == (synthesis == 3)   # AVX-512 kernels only
        if synthesis >= 2:                    # the GRU has no AVX2 kernels: portable C there
            assert [force(native.SIMD_LEVELS["avx2"]) for force in setters] == [2, 2, 0]
    finally:
        for force in setters:
            force(native.SIMD_LEVELS["auto"])


def test_loader_takes_the_environment_variable_then_the_newest_build(tmp_path, monkeypatch):
    lib = native.LIBRARIES["synth"]
    chosen = tmp_path / "chosen.so"
    chosen.write_bytes(b"")
    monkeypatch.setenv(lib.env, str(chosen))
    assert lib.candidates()[0] == chosen
    monkeypatch.delenv(lib.env)
    package, make_build = tmp_path / "_lpcnet_synth.x.so", tmp_path / "build" / "liblpcnet_synth.so"
    make_build.parent.mkdir()
    package.write_bytes(b"")
    make_build.write_bytes(b"")
    monkeypatch.setattr(native, "PACKAGE_DIR", tmp_path)
    monkeypatch.setattr(native, "NATIVE_DIR", tmp_path)
    os.utime(package, (1e9, 1e9))                                  # the make build is newer
    assert lib.candidates() == [make_build, package]


def test_loader_says_how_to_build_a_missing_library(tmp_path, monkeypatch):
    monkeypatch.setattr(native, "_loaded", {})
    monkeypatch.setattr(native, "PACKAGE_DIR", tmp_path)
    monkeypatch.setattr(native, "NATIVE_DIR", tmp_path)             # no Makefile: no build
    monkeypatch.delenv("LPCNET_GRU_LIB", raising=False)
    with pytest.raises(LpcnetError, match="native GRU kernel not built"):
        native.load("gru", {})
