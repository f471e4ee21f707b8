"""Elastic Horovod training (lpcnet/elastic.py, docs/distributed.md "Elastic training").

Shares of a constant global batch (no Horovod needed); then runs of two workers on one machine
acting as two hosts (``localhost`` and ``127.0.0.1``, so that Horovod can exclude the host of a
lost worker and keep the other): a worker killed mid-epoch (SIGKILL, tests/train_hooks.py), the
survivor continuing alone to the end, and a killed worker's host coming back and rejoining. Each
run's final checkpoint is compared with a fixed-size run of the same steps on the same data.
Tiny model (GRU A 16 / GRU B 8), global batch 4, noise off (``--noise-std 0``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from lpcnet import distributed as D
from lpcnet import launcher as L
from lpcnet.data import TrainingLoader
from lpcnet.elastic import ShardLoader
from lpcnet.errors import LpcnetError

ROOT = Path(__file__).resolve().parents[1]
horovod = pytest.mark.horovod
needs_hvd = pytest.mark.skipif(not D.horovod_available(), reason="Horovod is not installed")


# --- shares of the global batch (no Horovod) ----------------------------------------------
def test_shards_of_a_constant_global_batch(slice_training_pair):
    f, d = slice_training_pair
    g = 6
    for world in (1, 2, 3, 4, 5):
        shards = [ShardLoader(f, d, g, seed=3, rank=k, world_size=world) for k in range(world)]
        assert sum(s.batch_size for s in shards) == g and max(s.batch_size for s in shards) - \
            min(s.batch_size for s in shards) <= 1
        assert len({len(s) for s in shards}) == 1
        one = TrainingLoader(f, d, g, seed=3)                 # one process, the whole global batch
        assert len(shards[0]) == len(one) and shards[0].nb_sequences == one.nb_sequences
        for step in (0, 1, len(one) - 1, len(one), 2 * len(one) + 3):   # across data epochs
            together = np.concatenate([s.indices(step) for s in shards])
            np.testing.assert_array_equal(together, one.indices(step))
        # The share weights make the average of weighted per-rank means the global mean.
        assert abs(sum(s.share for s in shards) / world - 1.0) < 1e-12
    # A world that divides the global batch: exactly the fixed-size loader's shards.
    for k in range(3):
        np.testing.assert_array_equal(ShardLoader(f, d, g, seed=3, rank=k, world_size=3).indices(7),
                                      TrainingLoader(f, d, 2, seed=3, rank=k, world_size=3).indices(7))
    with pytest.raises(LpcnetError, match="cannot share"):
        ShardLoader(f, d, 2, rank=0, world_size=3)


def test_elastic_settings_are_checked(slice_training_pair, tmp_path):
    from lpcnet.config import ModelConfig, TrainConfig
    from lpcnet.train import train

    f, d = map(str, slice_training_pair)
    base = TrainConfig(features=f, data=d, model_dir=str(tmp_path / "m"), elastic=True)
    with pytest.raises(LpcnetError, match="--elastic needs --max-np"):
        train(ModelConfig(gru_a=16, gru_b=8), base)
    with pytest.raises(LpcnetError, match="min-np"):
        train(ModelConfig(gru_a=16, gru_b=8), base.replace(min_np=3, max_np=2))
    # Not started by a launcher and not from the command line: says how to start it.
    with pytest.raises(LpcnetError, match="lpcnet launch --elastic"):
        train(ModelConfig(gru_a=16, gru_b=8), base.replace(max_np=2))
    assert not (tmp_path / "m").exists()


# --- elastic runs ---------------------------------------------------------------------------
TINY = ["--grua-size", "16", "--grub-size", "8", "--output", "t", "--no-progress", "--noise-std", "0",
        "--seed", "7", "--batch_size", "2"]


def _elastic_run(pair, tmp_path, *extra, env=None, cooldown=None):
    """Two workers (two local host names), max 2, min 1; returns (summary, rank-0 output text)."""
    f, d = pair
    names = L.local_host_names()[:2]
    hosts = L.write_hosts_file(tmp_path / "hosts.txt", {names[0]: 1, names[1]: 1})
    args = ["--features", str(f), "--data", str(d), "--model_dir", str(tmp_path / "m"), *TINY,
            "--use_performance", "True", "--callbacks-module", "train_hooks", *extra]
    path = os.pathsep.join(p for p in (str(ROOT / "tests"), os.environ.get("PYTHONPATH")) if p)
    out = tmp_path / "out.txt"
    with open(out, "w") as fh:
        summary = L.launch(2, args, elastic=L.Elastic(1, 2, hosts_file=str(hosts), cooldown=cooldown),
                           timeout=400, out=fh, log_file=tmp_path / "all.log", cwd=tmp_path,
                           env={"PYTHONPATH": path, **(env or {})})
    return summary, out.read_text()


def _fixed_run(pair, tmp_path, epochs: int, steps: int) -> dict:
    """The same steps in one process at the global batch (4): the reference checkpoint."""
    from lpcnet.config import ModelConfig, TrainConfig
    from lpcnet.model import read_checkpoint_weights
    from lpcnet.train import train

    f, d = map(str, pair)
    res = train(ModelConfig(gru_a=16, gru_b=8, noise_std=0.0),
                TrainConfig(features=f, data=d, output="t", model_dir=str(tmp_path / "fixed"),
                            batch_size=4, epochs=epochs, steps_per_epoch=steps, seed=7, progress=False))
    return {"weights": read_checkpoint_weights(res["checkpoint"]), "history": res["history"]}


def _max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float(np.max(np.abs(a[layer][k] - b[layer][k]))) for layer in a for k in a[layer])


@horovod
@needs_hvd
def test_killed_worker_survivor_finishes_like_a_fixed_run(slice_training_pair, tmp_path):
    """Rank 1 is SIGKILLed after step 7 of 12 (mid-epoch 2; commits every 3 steps and at epoch
    ends): the survivor restores the commit of step 6, continues alone and finishes; its final
    checkpoint equals a one-process run of the same 12 steps at the same global batch."""
    from lpcnet.model import read_checkpoint_weights

    summary, out = _elastic_run(slice_training_pair, tmp_path, "--epochs", "3", "--steps_per_epoch", "4",
                                "--commit-every", "3", env={"LPCNET_TEST_FAIL_AT": "1:7:kill"})
    meta = summary["metadata"]
    assert meta["elastic"]["world_sizes"] == [[0, 2], [6, 1]]
    assert "elastic: 1 worker(s) from step 6 of 12 (epoch 2)" in out
    assert "trained epochs 1..3" in out
    # Global batch unchanged across the change; every step of the run timed once.
    assert summary["overall_stats"]["batch_size"] == 4 and meta["global_batch"] == 4
    assert meta["world_size"] == 1 and meta["batch_size_per_rank"] == 4
    assert meta["steps_timed"] == 12 and len(meta["loss_per_step"]) == 12
    assert len(meta["history"]["loss"]) == 3
    mdir = tmp_path / "m"
    assert sorted(p.name for p in mdir.iterdir()) == ["summary", "t_16_01.keras", "t_16_02.keras",
                                                      "t_16_03.keras", "t_16_config.json"]
    saved = json.loads((mdir / "t_16_config.json").read_text())
    assert saved["run"]["world_size"] == 2 and saved["run"]["elastic"] is True
    fixed = _fixed_run(slice_training_pair, tmp_path, 3, 4)
    diff = _max_difference(read_checkpoint_weights(mdir / "t_16_03.keras"), fixed["weights"])
    assert diff < 1e-5, diff       # Adam moves weights by ~lr=1e-3 per step: a lost step would show
    # Epochs 1 and 3 were logged whole; epoch 2's mean covers the steps after the restore.
    np.testing.assert_allclose([meta["history"]["loss"][i] for i in (0, 2)],
                               [fixed["history"]["loss"][i] for i in (0, 2)], rtol=1e-5)


@horovod
@needs_hvd
@pytest.mark.slow
def test_lost_worker_rejoins_and_run_matches_a_fixed_run(slice_training_pair, tmp_path):
    """Rank 1 is killed after 5 steps; its host is excluded for a 2 s cool-down, then listed again:
    a new worker starts, receives the committed state and the run ends with two workers. The
    survivor sleeps 1 s a step while alone, so that the rejoin comes before the end on any machine."""
    from lpcnet.model import read_checkpoint_weights

    summary, out = _elastic_run(slice_training_pair, tmp_path, "--epochs", "3", "--steps_per_epoch", "16",
                                "--commit-every", "2", cooldown=(1, 2),
                                env={"LPCNET_TEST_FAIL_AT": "1:5:kill",
                                     "LPCNET_TEST_FAIL_ONCE": str(tmp_path / "failed-once"),
                                     "LPCNET_TEST_SLOW_ALONE": "1"})
    worlds = summary["metadata"]["elastic"]["world_sizes"]
    assert [w for _, w in worlds] == [2, 1, 2], worlds
    assert worlds[1][0] == 4 and worlds[2][0] > 4
    assert summary["metadata"]["world_size"] == 2 and summary["metadata"]["steps_timed"] == 48
    assert "elastic: 2 worker(s) from step" in out
    fixed = _fixed_run(slice_training_pair, tmp_path, 3, 16)
    diff = _max_difference(read_checkpoint_weights(tmp_path / "m" / "t_16_03.keras"), fixed["weights"])
    assert diff < 1e-5, diff


def test_change_hosts_when_trigger_appears(tmp_path):
    """The notebook's stand-in for a cluster taking a machine away: rewrite on a trigger file."""
    import io

    from lpcnet.launcher import change_hosts_when, write_hosts_file

    hosts = write_hosts_file(tmp_path / "hosts.txt", {"localhost": 1, "127.0.0.1": 1})
    out = io.StringIO()
    thread = change_hosts_when(hosts, {"localhost": 1}, tmp_path / "ckpt", timeout=30, out=out)
    assert hosts.read_text() == "localhost:1\n127.0.0.1:1\n"      # not before the trigger
    (tmp_path / "ckpt").write_text("x")
    thread.join(timeout=10)
    assert hosts.read_text() == "localhost:1\n" and "localhost:1" in out.getvalue()
