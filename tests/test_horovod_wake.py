"""The kit's Horovod patch (third_party/horovod/): the background thread wakes on enqueue.

Stock Horovod runs a cross-rank cycle every HOROVOD_CYCLE_TIME ms even while no tensor waits;
with HOROVOD_WAKE_ON_ENQUEUE=1 (set by the kit's launcher) an idle rank sleeps until a tensor
is enqueued. Counted on rank 0's Horovod timeline (CYCLE_START marks) over an idle 1.5 s
between collectives, np=2 with gloo, both settings of the same patched library; the
collectives' results are checked in both.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from lpcnet import distributed as D

pytestmark = pytest.mark.horovod

RANK_SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    import horovod.tensorflow as hvd
    import tensorflow as tf
    hvd.init()
    x = tf.constant(np.arange(1000, dtype=np.float32) * (hvd.rank() + 1))
    want = np.arange(1000, dtype=np.float32) * 3
    assert np.array_equal(hvd.allreduce(x, op=hvd.Sum, name="warm").numpy(), want)
    time.sleep(float(sys.argv[1]))                       # idle: no tensor waits
    for i in range(5):
        assert np.array_equal(hvd.allreduce(x, op=hvd.Sum, name="g").numpy(), want)
    hvd.shutdown()
    print("ok", flush=True)
""")


def test_setup_installed_the_patched_horovod():
    assert D.horovod_wakes_on_enqueue(), "Horovod lacks the kit's patch: run run_scripts/setup.sh"


def _cycles(tmp_path, wake: str, idle_s: float) -> int:
    script = tmp_path / "ranks.py"
    script.write_text(RANK_SCRIPT)
    timeline = tmp_path / f"timeline_wake{wake}.json"
    env = {**os.environ, "HOROVOD_WAKE_ON_ENQUEUE": wake, "HOROVOD_CYCLE_TIME": "2",
           "HOROVOD_TIMELINE": str(timeline), "HOROVOD_TIMELINE_MARK_CYCLES": "1",
           "TF_CPP_MIN_LOG_LEVEL": "3", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    horovodrun = os.path.join(os.path.dirname(sys.executable), "horovodrun")
    proc = subprocess.run([horovodrun, "-np", "2", "-H", "localhost:2", "--gloo", sys.executable, str(script),
                           str(idle_s)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.count("ok") == 2
    return timeline.read_text().count("CYCLE_START")


def test_idle_rank_sleeps_until_a_tensor_is_enqueued(tmp_path):
    idle = 1.5
    polling = _cycles(tmp_path, "0", idle)
    waking = _cycles(tmp_path, "1", idle)
    # Stock: one cycle per 2 ms, ~700 in the idle 1.5 s. Patched: one per idle timeout (100 ms)
    # plus a few around each collective.
    assert polling > 200, polling
    assert waking < 60, waking
