"""Notebooks leave the repository tree untouched: outputs go under $OUTPUT_DIR (work/, ignored).

Every notebook run by ``pytest --nbmake`` is checked: files created or changed in ``notebooks/``
or created at the top of the repository (where a notebook's relative paths land; the output area
``work/``, the virtual environment, build folders and caches excepted) fail that notebook's run.
Edits to the kit's own sources while notebooks run are not counted.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".git", ".venv", "work", "build", "__pycache__", ".ipynb_checkpoints", ".pytest_cache"}


def tree_snapshot(root: Path = ROOT) -> dict:
    """``{relative path: (size, mtime_ns)}`` of the repository's files outside the skipped folders."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        for name in filenames:
            p = Path(dirpath) / name
            try:
                st = p.stat()
            except OSError:
                continue
            snap[p.relative_to(root).as_posix()] = (st.st_size, st.st_mtime_ns)
    return snap


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    if not str(item.path).endswith(".ipynb"):
        yield
        return
    before = tree_snapshot()
    outcome = yield
    after = tree_snapshot()
    changed = sorted(k for k in after if before.get(k) != after[k]
                     and (k.startswith("notebooks/") or ("/" not in k and k not in before)))
    if changed and outcome.excinfo is None:
        raise AssertionError(f"{item.path.name} wrote inside the repository tree: {changed[:10]}")
