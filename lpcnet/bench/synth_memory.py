"""``lpcnet bench synth-memory``: peak memory of synthesis against the length of the input.

For inputs of ``minutes / 30``, ``minutes / 3`` and ``minutes`` minutes (default 1, 10 and
30) of real speech features (the bundled speech's features tiled), each run is a fresh
process whose peak resident memory is printed: its own ``VmHWM`` (/proc/self/status), read
when it exits. (``ru_maxrss`` of a child would not do: Linux carries the high-water mark of
the forking parent, here a process with TensorFlow loaded, across ``exec``.)

* ``lpcnet synth --int8`` (features in and audio out in blocks, docs/synthesis.md), and
* for comparison, the whole-array API (``lpcnet.synth.synthesize`` on the loaded features,
  the samples written at the end), which holds the input and the output in memory.

A small model (GRU A 16, GRU B 16, int8) keeps 30 minutes of audio to seconds of CPU; the
memory of the synthesis state does not depend on the model beyond its weights.
Results: docs/benchmarks.md#synth-memory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from lpcnet.bench.harness import ROOT, speech
from lpcnet.formats import FRAME_SIZE, SAMPLE_RATE

#: Child: write this process's VmHWM (kB) to argv[1] at exit, then run argv[2:] as
#: ``python -m lpcnet ...`` (argv[2] == "lpcnet") or as the whole-array script (argv[2] == "whole").
_CHILD = ("import atexit, runpy, sys\n"
          "def _hwm(path=sys.argv[1]):\n"
          "    for line in open('/proc/self/status'):\n"
          "        if line.startswith('VmHWM:'):\n"
          "            open(path, 'w').write(line.split()[1])\n"
          "atexit.register(_hwm)\n"
          "args = sys.argv[3:]\n"
          "if sys.argv[2] == 'lpcnet':\n"
          "    sys.argv = ['lpcnet'] + args\n"
          "    runpy.run_module('lpcnet', run_name='__main__', alter_sys=True)\n"
          "else:\n"
          "    import numpy as np\n"
          "    from lpcnet.formats import read_features, write_s16\n"
          "    from lpcnet.synth import synthesize\n"
          "    f = np.asarray(read_features(args[0], mmap=False))\n"
          "    write_s16(args[2], synthesize(f, args[1], int8=True))\n")


def _peak_mb(what: str, args: list, tmp: Path) -> float:
    """Peak resident memory (MB) of a fresh process running ``what`` ("lpcnet" or "whole")."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    hwm = tmp / "hwm.txt"
    r = subprocess.run([sys.executable, "-c", _CHILD, str(hwm), what, *args], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0 or not hwm.is_file():
        raise RuntimeError(f"{what} {' '.join(args)} failed: {r.stderr.strip()}")
    return int(hwm.read_text()) / 1024.0


def _small_blob(path: Path) -> None:
    from lpcnet.config import ModelConfig
    from lpcnet.export import blob_from_weights, write_blob
    from lpcnet.model import build_lpcnet, model_weights

    cfg = ModelConfig(gru_a=16, gru_b=16)
    write_blob(path, blob_from_weights(model_weights(build_lpcnet(cfg, training=False, seed=0).model),
                                       cfg, int8=True))


def bench_synth_memory(*, minutes: float = 30.0, whole: bool = True) -> dict:
    """Peak RSS of ``lpcnet synth`` (and of the whole-array API) for three input lengths.

    Args:
        minutes: the longest input in minutes; also ``minutes / 30`` and ``minutes / 3``.
        whole: also measure the whole-array API (for comparison).
    """
    from lpcnet.features import extract
    from lpcnet.formats import write_features

    lengths = [minutes / 30.0, minutes / 3.0, minutes]
    base = extract(speech(30.0))                    # 30 s of real speech features, tiled below
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _small_blob(tmp / "small.bin")
        for m in lengths:
            frames = max(3, int(m * 60 * SAMPLE_RATE / FRAME_SIZE))
            feats = np.tile(base, (frames // len(base) + 1, 1))[:frames]
            write_features(tmp / "f.f32", feats)
            del feats
            cli = _peak_mb("lpcnet", ["synth", "--checkpoint", str(tmp / "small.bin"), "--features",
                                      str(tmp / "f.f32"), "--output", str(tmp / "o.s16"), "--int8"], tmp)
            row = {"minutes": m, "frames": frames, "cli_peak_mb": cli,
                   "output_mb": frames * FRAME_SIZE * 2 / 2 ** 20}
            if whole:
                row["whole_peak_mb"] = _peak_mb("whole", [str(tmp / "f.f32"), str(tmp / "small.bin"),
                                                          str(tmp / "w.s16")], tmp)
            rows.append(row)
            for name in ("f.f32", "o.s16", "w.s16"):
                (tmp / name).unlink(missing_ok=True)
    print("synthesis peak memory (RSS of a fresh process), GRU A 16 int8 model, real speech features tiled")
    print(f"{'audio':>10}{'output':>10}{'lpcnet synth':>15}" + (f"{'whole-array API':>18}" if whole else ""))
    for r in rows:
        line = f"{r['minutes']:>7.1f} min{r['output_mb']:>7.1f} MB{r['cli_peak_mb']:>12.1f} MB"
        if whole:
            line += f"{r['whole_peak_mb']:>15.1f} MB"
        print(line)
    growth = (rows[-1]["cli_peak_mb"] - rows[0]["cli_peak_mb"]) / max(1e-9, lengths[-1] - lengths[0])
    print(f"lpcnet synth: {growth:+.3f} MB per minute of audio")
    return {"benchmark": "synth-memory", "rows": rows, "cli_mb_per_minute": growth}
