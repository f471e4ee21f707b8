"""Horovod data-parallel training (issue 6): sharding, launcher, run scripts, np=2 runs.

Runs with ``@pytest.mark.horovod`` start ``horovodrun -np 2 --gloo`` (through
``lpcnet.launcher.launch``) on a tiny model (GRU A 16 / GRU B 8) and the real speech
slice; each costs about 20 s on two cores. Test hooks (tests/train_hooks.py, passed to every
rank with ``--callbacks-module train_hooks``, driven by environment variables):
``LPCNET_TEST_WEIGHTS_DIR`` (every rank saves its final weights and logged history) and
``LPCNET_TEST_FAIL_AT="RANK:STEP[:kill]"`` (that rank fails mid-run).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from lpcnet import distributed as D
from lpcnet import launcher as L
from lpcnet.data import TrainingLoader
from lpcnet.errors import LpcnetError

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "run_scripts").glob("train_*.sh"))
TINY = ["--grua-size", "16", "--grub-size", "8", "--output", "t", "--no-progress"]
#: The test hooks of tests/train_hooks.py, importable by every rank.
HOOKS = ["--callbacks-module", "train_hooks"]


def _hooks_env(**env) -> dict:
    """Environment of a launched run: ``env`` plus tests/ on PYTHONPATH (for ``HOOKS``)."""
    path = os.pathsep.join(p for p in (str(ROOT / "tests"), os.environ.get("PYTHONPATH")) if p)
    return {**env, "PYTHONPATH": path}

horovod = pytest.mark.horovod
needs_hvd = pytest.mark.skipif(not D.horovod_available(), reason="Horovod is not installed")


# --- sharding (no Horovod needed) -------------------------------------------------------
@pytest.mark.parametrize("world", [2, 3])
def test_shards_disjoint_and_covering(slice_training_pair, world):
    b = 2
    ranks = [TrainingLoader(*slice_training_pair, b, seed=5, rank=k, world_size=world)
             for k in range(world)]
    one = TrainingLoader(*slice_training_pair, b * world, seed=5)
    n = ranks[0].nb_sequences
    assert n % (b * world) == 0 and n == one.nb_sequences
    assert len({len(r) for r in ranks}) == 1 and len(ranks[0]) * b * world == n   # even split
    for epoch in range(2):
        steps = range(epoch * len(ranks[0]), (epoch + 1) * len(ranks[0]))
        shards = [np.concatenate([r.indices(s) for s in steps]) for r in ranks]
        for a in range(world):
            for c in range(a + 1, world):
                assert not set(shards[a]) & set(shards[c])
        # Every sequence exactly once per epoch across ranks, all ranks from one permutation.
        assert sorted(np.concatenate(shards)) == sorted(ranks[0].permutation(epoch))
        assert sorted(np.concatenate(shards)) == list(range(n))
        # Global batch i of W ranks at batch b == batch i of one process at batch W*b.
        for s in steps:
            np.testing.assert_array_equal(np.concatenate([r.indices(s) for r in ranks]),
                                          one.indices(s))
    # --steps_per_epoch longer than an epoch continues into the next data epoch.
    s = len(ranks[0]) + 1
    np.testing.assert_array_equal(ranks[1].indices(s), ranks[1].permutation(1)[(world + 1) * b:(world + 2) * b])


# --- launcher and run scripts (no Horovod run) ------------------------------------------
def _train_parser():
    from lpcnet.train import add_arguments

    p = argparse.ArgumentParser()
    add_arguments(p)
    return p


def _run_script(script, tmp_path, *argv, check=True):
    """Run a run script with stand-ins for ``python`` and ``horovodrun`` -> (exit status, their argvs)."""
    fake, capture = tmp_path / "bin", tmp_path / "calls.txt"
    fake.mkdir(exist_ok=True)
    for name in ("python", "horovodrun"):
        (fake / name).write_text('#!/bin/sh\nfor a in "$0" "$@"; do echo "$a"; done >> "$CAPTURE"\n'
                                 'echo ---END--- >> "$CAPTURE"\n')
        (fake / name).chmod(0o755)
    venv = ROOT / ".venv" / "bin"           # on PATH already, so env.sh does not put it first
    env = {**os.environ, "PATH": os.pathsep.join([str(fake), str(venv), os.environ["PATH"]]),
           "CAPTURE": str(capture), "OUTPUT_DIR": str(tmp_path / "out"), "DATA_DIR": str(tmp_path / "d"),
           "MODEL_DIR": str(tmp_path / "m"), "NP": "2", "HOSTS": "", "HOSTFILE": ""}
    rc = subprocess.run(["bash", str(script), *argv], env=env, cwd=tmp_path, timeout=60,
                        capture_output=True).returncode
    calls = [c.strip().splitlines() for c in capture.read_text().split("---END---\n")
             if c.strip()] if capture.exists() else []
    return rc, calls


#: Arguments the run scripts need (the rest take their defaults from env.sh).
SCRIPT_ARGS = {"train_hvd.sh": ("amp",), "train_hvd_elastic.sh": ("fp32", "1", "2")}


def _launcher_parser():
    from lpcnet.cli import OneLineErrorParser

    p = OneLineErrorParser()
    L.add_arguments(p)
    return p


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_run_scripts_use_existing_flags(script, tmp_path):
    """Each script, run with stand-ins for python/horovodrun, starts lpcnet.train with valid flags
    (the Horovod scripts through the kit's launcher, python -m lpcnet.launcher)."""
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    rc, calls = _run_script(script, tmp_path, *SCRIPT_ARGS.get(script.name, ()))
    assert rc == 0
    if "hvd" in script.name:
        call = next(c for c in calls if "lpcnet.launcher" in c)
        launcher = _launcher_parser().parse_args(call[call.index("lpcnet.launcher") + 1:])
        assert launcher.np == 2 and launcher.train_args[0] == "--"
        train_args = launcher.train_args[1:]
        assert "--use_horovod" not in train_args          # the launcher adds it
        assert launcher.elastic is ("elastic" in script.name)
        if launcher.elastic:
            assert (launcher.min_np, launcher.max_np) == (1, 2)
    else:
        call = next(c for c in calls if "lpcnet.train" in c)
        train_args = call[call.index("lpcnet.train") + 1:]
    args = _train_parser().parse_args(train_args)
    assert args.features.endswith("features.f32") and args.batch_size > 0
    assert args.use_horovod is False
    precision = "amp" if "amp" in script.name or "amp" in SCRIPT_ARGS.get(script.name, ()) else "fp32"
    if "ci_smoke" not in script.name and "demo" not in script.name:
        assert args.use_amp is (precision == "amp") and args.model_dir.endswith(precision)


def test_hvd_script_wants_a_precision(tmp_path):
    rc, calls = _run_script(ROOT / "run_scripts" / "train_hvd.sh", tmp_path, "fp16")
    assert rc == 2 and calls == []
    rc, calls = _run_script(ROOT / "run_scripts" / "train_hvd_elastic.sh", tmp_path, "fp32", "2")
    assert rc == 2 and calls == []


def test_discovery_script_reads_hosts_file_then_hosts(tmp_path):
    script = ROOT / "run_scripts" / "discover_hosts.sh"

    def hosts(**env):
        base = {k: v for k, v in os.environ.items()
                if k not in ("LPCNET_HOSTS_FILE", "HOSTS", "NP", "LPCNET_ELASTIC_MAX_NP")}
        return subprocess.run(["bash", str(script)], env={**base, **env}, capture_output=True,
                              text=True, check=True).stdout.split()

    f = L.write_hosts_file(tmp_path / "hosts.txt", {"node1": 4, "node2": 2})
    assert hosts(LPCNET_HOSTS_FILE=str(f), HOSTS="x:1") == ["node1:4", "node2:2"]
    f.write_text("node1:4\n# node2 is gone\n\n")       # edited while a run goes on
    assert hosts(LPCNET_HOSTS_FILE=str(f)) == ["node1:4"]
    assert hosts(LPCNET_HOSTS_FILE=str(tmp_path / "none")) == []
    assert hosts(HOSTS="a:2,b:2") == ["a:2", "b:2"]
    assert hosts(NP="3") == ["localhost:3"]
    # An elastic launch without hosts offers its --max-np slots here, not env.sh's NP.
    run_env = L.launch_environment(2, elastic=L.Elastic(1, 4), env={"NP": "2", "HOSTS": ""})
    assert hosts(**{k: run_env[k] for k in ("NP", "LPCNET_ELASTIC_MAX_NP")}) == ["localhost:4"]
    assert "LPCNET_ELASTIC_MAX_NP" not in L.launch_environment(2, env={"NP": "2"})


def test_train_command_hosts_threads(tmp_path, monkeypatch):
    import sys

    assert L.train_command(1, ["--epochs", "1"])[:3] == [sys.executable, "-m", "lpcnet.train"]
    if D.horovod_available():
        cmd = L.train_command(2, ["--epochs", "1"])
        assert cmd[1:6] == ["-np", "2", "--gloo", "-H", "localhost:2"] and cmd[-2:] == ["--use_horovod", "True"]
        cmd = L.train_command(2, ["--use_horovod", "False", "--epochs", "1"])
        assert cmd.count("--use_horovod") == 1 and cmd[-2:] == ["--use_horovod", "True"]
        hf = tmp_path / "hosts"
        hf.write_text("node1 slots=4\nnode2 slots=4\n")
        cmd = L.train_command(8, ["--epochs", "1"], hostfile=hf)
        assert cmd[cmd.index("--hostfile") + 1] == str(hf)
        cmd = L.train_command(8, ["--epochs", "1"], hosts="node1:4,node2:4")
        assert cmd[cmd.index("-H") + 1] == "node1:4,node2:4"
        cmd = L.train_command(8, ["--epochs", "1"], hosts="node1:4,node2:4", network_interface="eth1")
        assert cmd[cmd.index("--network-interface") + 1] == "eth1"     # fixed-size runs too
        el = L.train_command(2, ["--epochs", "1", "--elastic", "False"],
                             elastic=L.Elastic(1, 3, hosts_file=None, cooldown=(5, 60)))
        assert el[el.index("--min-np") + 1] == "1" and el[el.index("--max-np") + 1] == "3"
        assert el[el.index("--host-discovery-script") + 1] == str(L.DISCOVERY_SCRIPT)
        assert el[el.index("--blacklist-cooldown-range") + 1:][:2] == ["5", "60"]
        assert el[-8:] == ["--use_horovod", "True", "--elastic", "True", "--min-np", "1", "--max-np", "3"]
        assert el.count("--elastic") == 1
        # A bare boolean flag (`--elastic` with no value) does not take the next flag with it.
        el = L.train_command(2, ["--elastic", "--max-np", "2", "--epochs", "1"], elastic=L.Elastic(1, 2))
        assert el.count("--max-np") == 2 and el[el.index("--epochs") + 1] == "1"   # horovodrun's + train's
        local = L.write_hosts_file(tmp_path / "local", {"localhost": 1, "127.0.0.1": 1})
        el = L.train_command(2, [], elastic=L.Elastic(1, 2, hosts_file=str(local)))
        assert el[el.index("--network-interface") + 1] == "lo"     # one machine acting as two hosts
        monkeypatch.delenv("HOSTS", raising=False)
        assert "lo" in L.train_command(2, [], elastic=L.Elastic(1, 2))       # default: localhost:NP
        monkeypatch.setenv("HOSTS", "node1:2,node2:2")
        assert "--network-interface" not in L.train_command(2, [], elastic=L.Elastic(1, 2))
        with pytest.raises(LpcnetError, match="min-np"):
            L.train_command(3, [], elastic=L.Elastic(1, 2))
    with pytest.raises(LpcnetError):
        L.train_command(0, [])
    assert L.threads_per_rank(2, cores=2) == 1 and L.threads_per_rank(4, cores=16) == 4
    assert L.threads_per_rank(8, cores=2) == 1


def test_rank_environment_threads_pinning_cycle_time(monkeypatch):
    monkeypatch.delenv("HOROVOD_CYCLE_TIME", raising=False)
    monkeypatch.delenv("HOROVOD_WAKE_ON_ENQUEUE", raising=False)
    env = L.rank_environment(2, cores=2)
    assert env["HOROVOD_WAKE_ON_ENQUEUE"] == "1"
    assert env["TF_NUM_INTRAOP_THREADS"] == "1" and env["TF_NUM_INTEROP_THREADS"] == "1"
    assert env["HOROVOD_CYCLE_TIME"] == L.CYCLE_TIME_MS and L.PIN_ENV not in env
    assert L.rank_environment(2, cores=8)["TF_NUM_INTRAOP_THREADS"] == "4"
    assert L.rank_environment(2, cores=2, pin=True)[L.PIN_ENV] == "1"
    assert L.PIN_ENV not in L.rank_environment(1, cores=2, pin=True)      # one process: nothing to split
    assert L.PIN_ENV not in L.rank_environment(4, cores=2, pin=True)      # more ranks than cores
    assert L.PIN_ENV not in L.rank_environment(2, cores=2, pin=True, one_host=False)
    monkeypatch.setenv("HOROVOD_CYCLE_TIME", "3")                          # the user's choice wins
    assert L.rank_environment(2, cores=2)["HOROVOD_CYCLE_TIME"] == "3"
    monkeypatch.setenv("HOROVOD_WAKE_ON_ENQUEUE", "0")
    assert L.rank_environment(2, cores=2)["HOROVOD_WAKE_ON_ENQUEUE"] == "0"
    # Each rank's share of the cores: contiguous, disjoint, equal.
    assert D.pin_to_cores(0, 2, cores={0, 1, 2, 3}) == {0, 1}
    assert D.pin_to_cores(1, 2, cores={0, 1, 2, 3}) == {2, 3}
    assert D.pin_to_cores(2, 3, cores=range(7)) == {4, 5}
    assert D.pin_to_cores(0, 4, cores={0, 1}) is None                     # fewer cores than ranks


def test_flag_differences_name_each_flag_and_rank():
    from lpcnet.config import ModelConfig, TrainConfig

    a = D.flag_values(ModelConfig(gru_a=16), TrainConfig(features="f", data="d", lr=1e-3))
    assert a["--grua-size"] == 16 and a["--lr"] == 1e-3 and a["--batch_size"] == 128
    b = {**a, "--lr": 2e-3}
    assert D.flag_differences([a, a]) == []
    assert D.flag_differences([a, b, a]) == ["--lr (ranks 0,2: 0.001; rank 1: 0.002)"]
    assert D.flag_differences([a, {**b, "--features": "g"}]) == [
        "--features (rank 0: 'f'; rank 1: 'g')", "--lr (rank 0: 0.001; rank 1: 0.002)"]


def test_launch_timeout_kills_the_run(slice_training_pair, tmp_path):
    t0 = time.monotonic()
    with pytest.raises(LpcnetError, match="timed out after 3 s"):
        L.launch(1, _args(slice_training_pair, tmp_path / "m", "--epochs", "100"), timeout=3,
                 out=open(tmp_path / "o", "w"))
    assert time.monotonic() - t0 < 20


def test_scale_lr_needs_horovod(slice_training_pair, tmp_path):
    from lpcnet.config import ModelConfig, TrainConfig
    from lpcnet.train import train

    f, d = map(str, slice_training_pair)
    with pytest.raises(LpcnetError, match="scale_lr"):
        train(ModelConfig(gru_a=16, gru_b=8), TrainConfig(features=f, data=d, model_dir=str(tmp_path),
                                                          scale_lr=True))


# --- np=2 runs ----------------------------------------------------------------------------
def _args(pair, model_dir, *extra):
    f, d = pair
    return ["--features", str(f), "--data", str(d), "--model_dir", str(model_dir), *TINY, *extra]


def _weights(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


@horovod
@needs_hvd
def test_np2_weights_masks_identical_rank0_files(slice_training_pair, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                 # the seed's ./summary/summary.json lands here
    wdir, mdir, log = tmp_path / "w", tmp_path / "m", tmp_path / "log.txt"
    # Sparsify from step 1 to 3 (every step) down to low densities: masks must match too.
    summary = L.launch(2, _args(slice_training_pair, mdir, "--batch_size", "2", "--epochs", "2",
                                "--steps_per_epoch", "2", "--seed", "3", "--density", "0.1",
                                "--sparsify-schedule", "1", "3", "1", "--use_performance", "True",
                                "--enable_tensorboard", "True", *HOOKS),
                       timeout=180, env=_hooks_env(LPCNET_TEST_WEIGHTS_DIR=str(wdir)), log_file=log,
                       out=open(tmp_path / "rank0.txt", "w"))
    w0, w1 = _weights(wdir / "rank0.npz"), _weights(wdir / "rank1.npz")
    assert w0.keys() == w1.keys() and len(w0) > 10
    for k in w0:
        np.testing.assert_array_equal(w0[k], w1[k], err_msg=k)      # bitwise
    # The schedule acted (GRU A recurrent kernel now block-sparse) with one mask on both ranks.
    rk = w0["gru_a/recurrent_kernel"]
    assert (rk == 0).mean() > 0.5
    np.testing.assert_array_equal(rk == 0, w1["gru_a/recurrent_kernel"] == 0)
    # Logged metrics are averaged across ranks (the ranks saw different data).
    h0, h1 = (json.loads((wdir / f"rank{r}.json").read_text()) for r in (0, 1))
    assert h0 == h1 and len(h0["loss"]) == 2
    # Throughput JSON: global batch, world size; written by rank 0 only.
    assert summary["overall_stats"]["batch_size"] == 4
    assert summary["metadata"]["world_size"] == 2 and summary["metadata"]["batch_size_per_rank"] == 2
    assert summary["metadata"]["steps_timed"] == 4
    # Rank 0 alone writes: one TensorBoard event file, one tmp-free checkpoint set.
    names = sorted(p.name for p in mdir.iterdir())
    assert names == ["summary", "t_16_01.keras", "t_16_02.keras", "t_16_config.json", "tensorboard"]
    assert len(list((mdir / "tensorboard").glob("events.*"))) == 1
    assert (tmp_path / "summary" / "summary.json").is_file()
    # Other ranks are quiet: no rank-1 output in a successful run but for TF/absl start-up noise.
    rank1 = [ln for ln in log.read_text().splitlines() if ln.startswith("[1]<stdout>:") and ln[12:].strip()]
    assert rank1 == []
    assert "trained epochs 1..2" in (tmp_path / "rank0.txt").read_text()


@horovod
@needs_hvd
def test_np2_step_equals_single_process_double_batch(slice_training_pair, tmp_path):
    """One step at np=2, batch b == one step of one process at batch 2b (noise and sparsify off)."""
    from lpcnet.config import ModelConfig, TrainConfig
    from lpcnet.model import model_weights
    from lpcnet.train import train

    common = ["--epochs", "1", "--steps_per_epoch", "1", "--seed", "11", "--noise-std", "0",
              "--lr", "1e-3", "--decay", "0"]
    wdir = tmp_path / "w"
    L.launch(2, _args(slice_training_pair, tmp_path / "m2", "--batch_size", "2", *common, *HOOKS),
             timeout=180, env=_hooks_env(LPCNET_TEST_WEIGHTS_DIR=str(wdir)), out=open(tmp_path / "o", "w"))
    hvd_w = _weights(wdir / "rank0.npz")
    f, d = map(str, slice_training_pair)
    res = train(ModelConfig(gru_a=16, gru_b=8, noise_std=0.0),
                TrainConfig(features=f, data=d, output="t", model_dir=str(tmp_path / "m1"),
                            batch_size=4, epochs=1, steps_per_epoch=1, seed=11, lr=1e-3, decay=0.0,
                            progress=False))
    single = {f"{layer}/{k}": v for layer, vs in model_weights(res["model"]).items() for k, v in vs.items()}
    assert single.keys() == hvd_w.keys()
    worst = max(float(np.max(np.abs(single[k] - hvd_w[k]))) for k in single)
    # Adam's first step moves every weight by ~lr, so a wrong average would show as ~1e-3.
    assert worst <= 1e-6, worst
    assert res["world_size"] == 1 and res["global_batch"] == 4


@horovod
@needs_hvd
def test_killed_rank_ends_run_quickly_and_resume_works(slice_training_pair, tmp_path):
    mdir = tmp_path / "m"
    args = _args(slice_training_pair, mdir, "--batch_size", "2", "--epochs", "3",
                 "--steps_per_epoch", "3", "--seed", "4", *HOOKS)
    t0 = time.monotonic()
    with pytest.raises(LpcnetError, match=r"rank 1 was killed \(signal 9\)"):
        L.launch(2, args, timeout=170, env=_hooks_env(LPCNET_TEST_FAIL_AT="1:4:kill"),
                 out=open(tmp_path / "o", "w"))
    assert time.monotonic() - t0 < 90           # start-up (~15 s) + 4 steps + a few s to stop
    # The last good checkpoint (epoch 1) is intact and no temp files are left.
    assert sorted(p.name for p in mdir.iterdir()) == ["t_16_01.keras", "t_16_config.json"]
    # An exception (not a kill) during the resumed epoch 2 is reported by name; epoch 1 stays.
    # Rank 0's collective may fail first; the blame still goes to rank 1 (see _failure_reason).
    with pytest.raises(LpcnetError, match=r"rank 1 (exited with status 1|failed|was killed \(signal 15\)): "
                                          r"RuntimeError: LPCNET_TEST_FAIL_AT"):
        L.launch(2, [*args, "--resume", "True"], timeout=170, env=_hooks_env(LPCNET_TEST_FAIL_AT="1:2"),
                 out=open(tmp_path / "o2", "w"))
    assert sorted(p.name for p in mdir.iterdir()) == ["t_16_01.keras", "t_16_config.json"]
    # --resume continues from the last good checkpoint on two ranks.
    out = tmp_path / "o3"
    L.launch(2, [*args, "--resume", "True", "--epochs", "2"], timeout=170, env=_hooks_env(),
             out=open(out, "w"))
    assert (mdir / "t_16_02.keras").is_file()
    assert "trained epochs 2..2" in out.read_text()


def test_failure_reason_blames_the_root_cause_not_the_first_exit():
    graph = "tensorflow.python.framework.errors_impl.UnknownError: Graph execution error:"
    boom = "RuntimeError: LPCNET_TEST_FAIL_AT=1:2"
    # Rank 0's collective lost its peer and exited first; rank 1 raised the real error.
    assert L._failure_reason([(0, 1), (1, 1)], {0: graph, 1: boom}) == (1, f": rank 1 exited with status 1: {boom}")
    # horovodrun SIGTERMed rank 1 before its own exit was reported: its error line still wins.
    assert L._failure_reason([(0, 1), (1, -15)], {0: graph, 1: boom}) == (1, f": rank 1 was killed (signal 15): {boom}")
    assert L._failure_reason([(0, 1)], {0: graph, 1: boom}) == (1, f": rank 1 failed: {boom}")
    # A SIGKILLed rank (no error line) is the cause; the survivor's Horovod error is not.
    assert L._failure_reason([(0, 1), (1, 137)], {0: "HorovodInternalError: x"}) == (1, ": rank 1 was killed (signal 9)")
    # Only consequences: the first rank to exit is named.
    assert L._failure_reason([(1, 1), (0, 1)], {0: graph, 1: graph}) == (1, f": rank 1 exited with status 1: {graph}")
    assert L._failure_reason([], {-1: "ValueError: bad hostfile"}) == (-1, ": ValueError: bad hostfile")
    assert L._failure_reason([], {}) == (None, "")


@horovod
@needs_hvd
def test_failing_rank_error_is_the_first_line_of_the_run_script(slice_training_pair, tmp_path):
    """Under the run scripts' path (train_hvd_ci_smoke.sh -> lpcnet launch -> horovodrun) the first
    line of a failed run is the failing rank's own error, not rank 0's or horovodrun's tracebacks."""
    f, d = slice_training_pair
    data = tmp_path / "d"
    data.mkdir()
    (data / "features.f32").symlink_to(f)
    (data / "data.u8").symlink_to(d)
    env = {**os.environ, **_hooks_env(LPCNET_TEST_FAIL_AT="1:2"), "DATA_DIR": str(data),
           "MODEL_DIR": str(tmp_path / "m"), "HOSTS": "", "HOSTFILE": ""}
    res = subprocess.run(["bash", str(ROOT / "run_scripts" / "train_hvd_ci_smoke.sh"), "2", *HOOKS,
                          "--no-progress"], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=170)
    assert res.returncode == 1
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.strip()]
    # (horovodrun may SIGTERM rank 1 before its own exit is reported: the cause is still its error)
    assert re.match(r"training with np=2 failed \(exit 1\) after \d+ s: rank 1 (exited with status 1|"
                    r"was killed \(signal 15\)|failed): RuntimeError: LPCNET_TEST_FAIL_AT: rank 1 fails on "
                    r"purpose after 2 steps \(test hook\)$", lines[0]), lines[0]
    assert lines[1] == "--- rank 1 (the cause): last lines ---"
    # The consequences follow, after the cause: rank 0's lost collective, horovodrun's summary.
    text = "\n".join(lines)
    assert text.index("Horovod has been shut down") > text.index("--- rank 1 (the cause)")
    assert lines[-1].startswith("python -m lpcnet.launcher: error: training with np=2 failed")


@horovod
@needs_hvd
def test_flag_differing_between_ranks_is_refused(slice_training_pair, tmp_path):
    """Ranks started with different --lr: every rank refuses, naming the flag and each rank's value."""
    import shlex
    import sys

    train = [sys.executable, "-m", "lpcnet.train", *_args(slice_training_pair, tmp_path / "m"),
             "--batch_size", "2", "--epochs", "1", "--steps_per_epoch", "2", "--use_horovod", "True"]
    # Rank 1's command line says --lr 0.002 (as a per-node wrapper script might), rank 0's 0.001.
    cmd = ["horovodrun", "-np", "2", "-H", "localhost:2", "--gloo", "bash", "-c",
           shlex.join(train) + ' --lr "$([ "$HOROVOD_RANK" = 1 ] && echo 0.002 || echo 0.001)"']
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=170, cwd=tmp_path,
                         env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    assert res.returncode != 0
    refusals = [ln for ln in (res.stdout + res.stderr).splitlines() if "error: the ranks were started with different flags" in ln]
    assert {ln[:3] for ln in refusals} == {"[0]", "[1]"}                 # every rank refuses
    assert all("--lr (rank 0: 0.001; rank 1: 0.002)" in ln for ln in refusals)
    assert not (tmp_path / "m").exists()                                  # nothing written


@horovod
@needs_hvd
def test_scaling_bench_prints_the_overhead_line(tmp_path):
    from lpcnet.bench import bench_scaling

    out = tmp_path / "bench.txt"
    with open(out, "w") as fh:
        res = bench_scaling(gru_a=16, gru_b=8, batch=2, steps=8, rounds=1, out=fh)
    text = out.read_text()
    line = next(ln for ln in text.splitlines() if "per-step overhead at np=2" in ln)
    assert f"{res['overhead_ms_per_step']:+.0f} ms wall" in line and "ms CPU per rank" in line
    assert [r["processes"] for r in res["rows"]] == [1, 2]
    assert all(0 < r["cpu_s_per_step_per_rank"] < 10 for r in res["rows"])   # measured on every rank
    assert "efficiency at np=2" in text
    # The ranks ran with the kit's Horovod patch on (set by the launcher, installed by setup).
    assert "Horovod background thread: sleeps until a tensor is enqueued" in text
    # The hardware ceiling: two independent single-process runs at once, relative to one alone.
    assert 0.2 < res["ceiling"] < 1.5
    assert f"hardware ceiling at np=2 (2 independent single-process runs at once): {res['ceiling']:.2f}" in text


def test_scaling_rows_and_figure():
    from lpcnet.bench import BENCHMARKS
    from lpcnet.bench.report import scaling_figure, scaling_rows

    def summary(n, thr, loss):
        return {"overall_stats": {"batch_size": 2 * n, "throughput_mean": thr, "e2e": 2 * n / thr},
                "metadata": {"world_size": n, "loss_per_step": loss}}

    runs = [summary(2, 19.0, [5.5, 5.2]), summary(1, 10.0, [5.5, 5.3, 5.1])]
    rows = scaling_rows(runs)
    assert [r["processes"] for r in rows] == [1, 2] and [r["global_batch"] for r in rows] == [2, 4]
    assert rows[0]["efficiency"] == 1.0 and abs(rows[1]["efficiency"] - 0.95) < 1e-12
    fig = scaling_figure(runs)
    axes = fig.get_axes()
    assert len(axes) == 3 and axes[0].get_xlabel() == "processes"
    assert list(axes[2].lines[0].get_ydata()) == [5.5, 5.2]          # np=2 loss curve
    assert "scaling" in BENCHMARKS


def test_launcher_refuses_elastic_only_flags_without_elastic(capsys):
    """Flags that only an elastic run uses are refused in one line, not silently dropped."""
    for flags in (["--min-np", "1"], ["--blacklist-cooldown", "5", "60"], ["--hosts-file", "h.txt"]):
        with pytest.raises(LpcnetError, match="need --elastic"):
            L.run(_launcher_parser().parse_args(["-np", "2", *flags, "--", "--epochs", "1"]))


def test_launch_log_that_is_an_input_or_a_folder_is_refused_before_the_run(slice_training_pair, tmp_path):
    """--log naming an input of the run (the features file) or a folder is refused in one line
    before anything starts; the input is left as it was."""
    import shutil

    feats = tmp_path / "features.f32"
    shutil.copy(slice_training_pair[0], feats)
    before = feats.read_bytes()
    args = _args((feats, slice_training_pair[1]), tmp_path / "m")
    with pytest.raises(LpcnetError, match=r"--log .*features.f32: is the same file as the input --features"):
        L.launch(1, args, log_file=feats, out=open(tmp_path / "o", "w"))
    with pytest.raises(LpcnetError, match="is the same file as the input --data"):
        L.launch(1, ["--features=" + str(feats), "--data=" + str(slice_training_pair[1])],
                 log_file=slice_training_pair[1], out=open(tmp_path / "o", "w"))
    with pytest.raises(LpcnetError, match=r"^--log .*: is a folder"):
        L.launch(1, args, log_file=tmp_path, out=open(tmp_path / "o", "w"))
    assert feats.read_bytes() == before and not (tmp_path / "m").exists()


@pytest.mark.parametrize("flags", [["--timeout", "-5"], ["--timeout", "nan"], ["-np", "0"],
                                   ["--threads", "0"], ["--max-np", "-1"]])
def test_launcher_refuses_impossible_numbers_at_parse_time(flags, capsys):
    with pytest.raises(SystemExit) as exc:
        _launcher_parser().parse_args(["-np", "1", *flags, "--", "--epochs", "1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flags[0] in err


def test_launch_timeout_must_be_positive(tmp_path):
    with pytest.raises(LpcnetError, match="timeout must be"):
        L.launch(1, ["--epochs", "1"], timeout=-5, out=open(tmp_path / "o", "w"))


@pytest.mark.parametrize("value", [0, -3, 1.5, float("nan"), "2", "abc", True])
def test_launcher_api_refuses_bad_process_and_thread_counts(value, slice_training_pair, tmp_path):
    args = _args(slice_training_pair, tmp_path / "m")
    with pytest.raises(LpcnetError, match=r"^np \(number of processes\): expected a whole number >= 1"):
        L.train_command(value, args)
    with pytest.raises(LpcnetError, match=r"^np \(number of processes\): expected a whole number >= 1"):
        D.launch(value, args, timeout=60)
    with pytest.raises(LpcnetError, match=r"^threads \(intra-op threads per rank\): expected a whole number >= 1"):
        L.rank_environment(2, value, cores=2)
    with pytest.raises(LpcnetError, match=r"^threads .*: expected a whole number >= 1") as exc:
        D.launch(1, args, threads=value, timeout=60)     # refused before any rank starts
    assert "\n" not in str(exc.value) and not (tmp_path / "m").exists()
    assert L.rank_environment(2, None, cores=2)["TF_NUM_INTRAOP_THREADS"] == "1"
    assert L.rank_environment(2, np.int64(3), cores=8)["TF_NUM_INTRAOP_THREADS"] == "3"
