"""Build hook for the native feature extractor (metadata lives in pyproject.toml).

The C library in native/ is plain C99 + libm and is loaded with ctypes (it has no
Python C-API code), so it is built as an extension-shaped shared library
``lpcnet/_lpcnet_features*.so``. Works for ``pip install -e .`` and
``python setup.py build_ext --inplace``.
"""

from pathlib import Path

from setuptools import Extension, setup

NATIVE = Path("native")
SOURCES = [str(NATIVE / "src" / name) for name in ("enc.c", "freq.c", "fft.c", "xcorr.c")]

setup(
    ext_modules=[
        Extension(
            "lpcnet._lpcnet_features",
            sources=SOURCES,
            include_dirs=[str(NATIVE / "include")],
            depends=[str(p) for p in sorted(NATIVE.glob("*/*.h"))],
            # Exact, reproducible float arithmetic: no FMA contraction, no fast-math.
            extra_compile_args=["-std=c99", "-D_DEFAULT_SOURCE", "-O3", "-ffp-contract=off"],
            libraries=["m"],
        ),
        # Native synthesis engine (lpcnet synth): SIMD kernels are chosen at run time
        # (function target attributes), so no -march flag; it reuses freq.c's B.6 LPC.
        Extension(
            "lpcnet._lpcnet_synth",
            sources=[str(NATIVE / "src" / name) for name in (
                "synth.c", "nnet.c", "nnet_avx2.c", "nnet_avx512.c", "freq.c", "fft.c")],
            include_dirs=[str(NATIVE / "include")],
            depends=[str(p) for p in sorted(NATIVE.glob("*/*.h"))],
            extra_compile_args=["-std=c99", "-D_DEFAULT_SOURCE", "-O3", "-ffp-contract=off"],
            libraries=["m"],
        ),
        # Fused GRU recurrence for training (lpcnet.fused_gru): AVX-512 chosen at run time,
        # rows of the batch split over POSIX threads.
        Extension(
            "lpcnet._lpcnet_gru",
            sources=[str(NATIVE / "src" / "gru_train.c")],
            include_dirs=[str(NATIVE / "include")],
            depends=[str(NATIVE / "include" / "lpcnet_gru.h")],
            extra_compile_args=["-std=c99", "-D_DEFAULT_SOURCE", "-O3"],
            libraries=["m", "pthread"],
        ),
    ]
)
