"""env.sh and the run scripts' optional NP: junk counts refused in one line before anything runs."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("var,value", [("LPCNET_NUM_THREADS", "abc"), ("NP", "0"),
                                       ("TF_NUM_INTEROP_THREADS", "-1"), ("OMP_NUM_THREADS", "2.5"),
                                       ("LPCNET_THREADS_PER_RANK", "abc")])
def test_env_sh_refuses_a_count_that_is_not_a_whole_number(var, value):
    r = subprocess.run(["bash", "-c", f"set -e; source {ROOT}/env.sh; echo reached"],
                       env={**os.environ, var: value}, capture_output=True, text=True)
    assert r.returncode == 2 and "reached" not in r.stdout
    assert r.stderr.strip() == f"env.sh: {var}={value}: expected a whole number >= 1"


@pytest.mark.parametrize("script,argv", [("train_hvd.sh", ["fp32"]), ("train_hvd_ci_smoke.sh", [])])
def test_np_may_be_left_out_before_train_flags(script, argv, tmp_path):
    """`train_hvd.sh fp32 --batch_size 8` (NP omitted, as the usage allows) takes env.sh's NP."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done > "$CAPTURE"\n')
    (fake / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
           "CAPTURE": str(tmp_path / "argv"), "NP": "3", "OUTPUT_DIR": str(tmp_path)}
    r = subprocess.run(["bash", str(ROOT / "run_scripts" / script), *argv, "--batch_size", "8"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    call = (tmp_path / "argv").read_text().split()
    assert call[call.index("-np") + 1] == "3" and call[-2:] == ["--batch_size", "8"]
