"""Build hook for the native libraries (metadata lives in pyproject.toml).

The C libraries in native/ are plain C99 + libm and are loaded with ctypes
(lpcnet/native.py; they have no Python C-API code), so each is built as an
extension-shaped shared library ``lpcnet/_lpcnet_<name>*.so``. Sources and
compiler flags come from native/build.mk, which native/Makefile includes too, so
both builds compile the same files with the same flags. Works for
``pip install -e .`` and ``python setup.py build_ext --inplace``.
"""

import re
from pathlib import Path

from setuptools import Extension, setup

NATIVE = Path("native")


def read_build_mk(path: Path = NATIVE / "build.mk") -> dict:
    """The plain ``NAME = words`` assignments of build.mk, as lists of words."""
    found = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Z_]+)\s*=\s*(.*)$", line)
        if m:
            found[m.group(1)] = m.group(2).split()
    return found


def native_extension(name: str, mk: dict) -> Extension:
    """Extension ``lpcnet._lpcnet_<name>`` from build.mk's <NAME>_SRC and <NAME>_LIBS."""
    key = name.upper()
    return Extension(
        f"lpcnet._lpcnet_{name}",
        sources=[str(NATIVE / src) for src in mk[f"{key}_SRC"]],
        include_dirs=[str(NATIVE / "include")],
        depends=[str(p) for p in sorted(NATIVE.glob("*/*.h"))] + [str(NATIVE / "build.mk")],
        extra_compile_args=mk["BASE_CFLAGS"],
        libraries=[lib[2:] for lib in mk[f"{key}_LIBS"]],
    )


MK = read_build_mk()
setup(ext_modules=[native_extension(name, MK) for name in ("features", "synth", "gru")])
