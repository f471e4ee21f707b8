"""One ctypes loader for the kit's three native libraries (``native/``, docs/native.md).

``features`` (``lpcnet.features``), ``synth`` (``lpcnet.synth``) and ``gru``
(``lpcnet.fused_gru``) are each looked for in their environment variable
(``LIBRARIES[name].env``) first, then as the newest of the package build
(``lpcnet/_lpcnet_<name>*.so``, ``pip install -e .``) and the make build
(``native/build/liblpcnet_<name>.so``, ``make -C native``). In a source tree with none of
them, the library is built with make on first use. Each is loaded once; ctypes releases
the GIL during its calls.
"""

from __future__ import annotations

import ctypes
import glob
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lpcnet.errors import LpcnetError

PACKAGE_DIR = Path(__file__).resolve().parent
NATIVE_DIR = PACKAGE_DIR.parent / "native"

#: The LPCNET_SIMD_* levels of native/include/lpcnet.h, by name (one scale for the three
#: libraries; "auto" forces nothing: the best the CPU supports).
SIMD_LEVELS = {"auto": -1, "scalar": 0, "avx2": 2, "avx512": 3, "avx512_bf16": 4}


@dataclass(frozen=True)
class Library:
    """Where one native library is found and what to say when it is not."""

    name: str
    env: str
    missing: str

    def candidates(self) -> list[Path]:
        """``$env`` if set, then the existing package and make builds, newest first."""
        found = [Path(p) for p in glob.glob(str(PACKAGE_DIR / f"_lpcnet_{self.name}*.so"))]
        found.append(NATIVE_DIR / "build" / f"liblpcnet_{self.name}.so")
        found = sorted((p for p in found if p.is_file()), key=lambda p: p.stat().st_mtime,
                       reverse=True)
        env = os.environ.get(self.env)
        return ([Path(env)] if env else []) + found


LIBRARIES = {
    "features": Library("features", "LPCNET_NATIVE_LIB",
                        "native feature library not built (run `pip install -e .` or "
                        "`python setup.py build_ext --inplace` in the kit folder)"),
    "synth": Library("synth", "LPCNET_SYNTH_LIB",
                     "native synthesis library not built (run `pip install -e .` or "
                     "`make -C native synth`), or use --engine keras"),
    "gru": Library("gru", "LPCNET_GRU_LIB",
                   "native GRU kernel not built (run `pip install -e .` in the kit folder)"),
}

_loaded: dict[str, ctypes.CDLL] = {}


def _build_with_make(lib: Library) -> None:
    """Development fallback: ``make -C native build/liblpcnet_<name>.so``."""
    if (NATIVE_DIR / "Makefile").is_file():
        subprocess.run(["make", "-s", "-C", str(NATIVE_DIR), f"build/liblpcnet_{lib.name}.so"],
                       check=False, capture_output=True, timeout=300)


def load(name: str, signatures: dict) -> ctypes.CDLL:
    """Load (once) native library ``name`` and declare its functions.

    Args:
        name: ``"features"``, ``"synth"`` or ``"gru"``.
        signatures: ``{function: (argtypes, restype)}`` (argtypes ``None``: undeclared).
    Raises:
        LpcnetError: no build found (the message says how to build it).
    """
    if name in _loaded:
        return _loaded[name]
    lib = LIBRARIES[name]
    paths = [p for p in lib.candidates() if p.is_file()]
    if not paths:
        _build_with_make(lib)
        paths = [p for p in lib.candidates() if p.is_file()]
    if not paths:
        raise LpcnetError(lib.missing)
    cdll = ctypes.CDLL(str(paths[0]))
    for function, (argtypes, restype) in signatures.items():
        fn = getattr(cdll, function)
        if argtypes is not None:
            fn.argtypes = argtypes
        fn.restype = restype
    _loaded[name] = cdll
    return cdll
