"""``lpcnet demo`` / ``make demo``: the kit's main job on real speech, end to end.

prepare audio -> extract features -> train a tiny model briefly -> synthesise the
held-out speaker -> write a wav and plots, printing where everything is.

Training speech: the Debian Asterisk English prompts (one female speaker, G.722,
~24 min) when installed, else the bundled CMU ARCTIC female utterance. Held out
from all training: the bundled CMU ARCTIC male utterance (arctic_a0007).
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import numpy as np

from lpcnet.formats import FRAME_SIZE, SAMPLE_RATE, read_s16

ROOT = Path(__file__).resolve().parents[1]
SLICE_DIR = Path(os.environ.get("LPCNET_SLICE_DIR", ROOT / "data" / "slice"))
ASTERISK_EN = Path(os.environ.get("LPCNET_ASTERISK_DIR", "/usr/share/asterisk/sounds")) / "en_US_f_Allison"
HELDOUT_WAV = SLICE_DIR / "arctic_a0007.wav"
SLICE_TRAIN_WAV = SLICE_DIR / "arctic_a0009.wav"


def training_sources(max_files: int | None = None) -> list[Path]:
    """Training audio for the demo: Asterisk prompts if installed, else the slice's female voice."""
    if ASTERISK_EN.is_dir():
        from lpcnet.data import DEFAULT_EXCLUDES, collect_inputs

        files = collect_inputs([ASTERISK_EN], DEFAULT_EXCLUDES)
        return files[:max_files] if max_files else files
    return [SLICE_TRAIN_WAV]


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def plot_speech(samples: np.ndarray, path, title: str):
    """Waveform and log spectrogram of ``(samples,)`` int16 speech at 16 kHz -> PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lpcnet.formats import atomic_output

    x = samples.astype(np.float32) / 32768.0
    t = np.arange(len(x)) / SAMPLE_RATE
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    ax1.plot(t, x, lw=0.4)
    ax1.set_ylabel("amplitude")
    ax1.set_title(title)
    ax2.specgram(x, NFFT=320, Fs=SAMPLE_RATE, noverlap=160, cmap="magma")
    ax2.set_ylabel("frequency (Hz)")
    ax2.set_xlabel("time (s)")
    fig.tight_layout()
    with atomic_output(path) as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return Path(path)


def run_demo(out_dir, max_files: int | None = None, progress: bool = True) -> dict:
    """Run every stage of the chain that the installed kit provides; return output paths."""
    from lpcnet.audio import write_wav
    from lpcnet.data import prepare

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs: dict[str, str] = {}
    t0 = time.perf_counter()

    sources = training_sources(max_files)
    print(f"[1/5] prepare: {len(sources)} training files -> 16 kHz mono s16")
    man = prepare(sources, out_dir / "input.s16", progress=progress)
    held = prepare([HELDOUT_WAV], out_dir / "heldout.s16", progress=False)
    print(f"      training audio {man.duration_s:.1f} s, held-out speaker {held.duration_s:.1f} s")
    outputs["training_audio"] = man.output
    outputs["heldout_audio"] = held.output

    heldout = np.asarray(read_s16(out_dir / "heldout.s16"))
    outputs["heldout_wav"] = str(write_wav(out_dir / "heldout_reference.wav", heldout))
    outputs["heldout_plot"] = str(plot_speech(heldout, out_dir / "heldout_reference.png",
                                              "held-out speaker (CMU ARCTIC a0007), reference"))

    for step, module in (("2/5] features", "lpcnet.features"), ("3/5] train", "lpcnet.train"),
                         ("4/5] synthesise", "lpcnet.synth")):
        if not _have(module):
            print(f"[{step}: not in this version of the kit yet ({module})")
    print(f"[5/5] done in {time.perf_counter() - t0:.1f} s. Outputs:")
    for name, path in outputs.items():
        print(f"      {name:16s} {path}")
    return outputs


def add_arguments(p) -> None:
    p.add_argument("--out-dir", default=os.path.join(os.environ.get("OUTPUT_DIR", "work/output"), "demo"),
                   help="where the demo writes its files")
    p.add_argument("--max-files", type=int, default=None,
                   help="use only the first N training files (quick look)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args) -> int:
    run_demo(args.out_dir, args.max_files, progress=not args.no_progress)
    return 0


def main(argv=None) -> int:
    from lpcnet.cli import module_main

    return module_main(__name__, "python -m lpcnet.demo", argv)


if __name__ == "__main__":
    raise SystemExit(main())
