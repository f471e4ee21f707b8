"""``lpcnet demo`` / ``make demo``: the kit's main job on real speech, end to end.

prepare audio -> extract features -> train a tiny model briefly -> synthesise the
held-out speaker -> write a wav and plots, printing where everything is.

Training speech: the Debian Asterisk English prompts (one female speaker, G.722,
~24 min) when installed, else the bundled CMU ARCTIC female utterance. Held out
from all training: the bundled CMU ARCTIC male utterance (arctic_a0007).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from lpcnet.argtypes import check_whole, positive_int
from lpcnet.config import gru_units, seed_value
from lpcnet.errors import LpcnetError
from lpcnet.formats import FRAME_SIZE, SAMPLE_RATE, read_s16

ROOT = Path(__file__).resolve().parents[1]
SLICE_DIR = Path(os.environ.get("LPCNET_SLICE_DIR", ROOT / "data" / "slice"))
ASTERISK_EN = Path(os.environ.get("LPCNET_ASTERISK_DIR", "/usr/share/asterisk/sounds")) / "en_US_f_Allison"
HELDOUT_WAV = SLICE_DIR / "arctic_a0007.wav"
SLICE_TRAIN_WAV = SLICE_DIR / "arctic_a0009.wav"
#: The kit's demo model (docs/demo-model.md): GRU A 256 trained for hours on five voices of the Asterisk
#: prompts. Seed-style weights (for --checkpoint / --finetune) and its native blob (int8 too).
DEMO_MODEL_DIR = ROOT / "models" / "demo"
DEMO_CHECKPOINT = DEMO_MODEL_DIR / "lpcnet_demo_256.h5"
DEMO_BLOB = DEMO_MODEL_DIR / "lpcnet_demo_256.bin"


def training_sources(max_files: int | None = None) -> list[Path]:
    """Training audio for the demo: Asterisk prompts if installed, else the slice's female voice."""
    if ASTERISK_EN.is_dir():
        from lpcnet.data import DEFAULT_EXCLUDES, collect_inputs

        files = collect_inputs([ASTERISK_EN], DEFAULT_EXCLUDES)
        return files[:max_files] if max_files is not None else files
    return [SLICE_TRAIN_WAV]


def _save_figure(fig, path) -> str:
    """Write a matplotlib figure as PNG atomically; return the path."""
    import matplotlib.pyplot as plt

    from lpcnet.formats import atomic_output

    with atomic_output(path) as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return str(path)


def _check_settings(out_dir, max_files, steps: int, gru_a: int, batch_size: int) -> Path:
    """Refuse (one line) settings the demo cannot run with, before any work: counts below 1, a
    GRU A size the model cannot have (config.ModelConfig's rule), an ``out_dir`` that is a file
    or cannot be created or written. Returns ``out_dir``, created."""
    from lpcnet.config import ModelConfig

    for flag, value in (("--max-files", max_files if max_files is not None else 1), ("--steps", steps),
                        ("--batch-size", batch_size)):
        check_whole(value, flag)
    ModelConfig(gru_a=gru_a, gru_b=16)                  # the model-size rules
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise LpcnetError(f"--out-dir {out_dir}: exists and is not a folder; expected a folder for "
                          f"the demo's files")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LpcnetError(f"--out-dir {out_dir}: cannot create it ({exc.strerror or exc})") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise LpcnetError(f"--out-dir {out_dir}: no write permission")
    return out_dir


def run_demo(out_dir, max_files: int | None = None, steps: int = 60, gru_a: int = 32,
             batch_size: int = 8, progress: bool = True, seed: int = 0) -> dict:
    """prepare -> dump-data -> train (tiny, few steps) -> copy-synthesis of the held-out speaker.

    Writes into ``out_dir`` and returns ``{name: path}`` of every output. Settings it cannot
    run with are refused (LpcnetError) before anything is written.
    """
    from lpcnet import plots, synth
    from lpcnet.audio import write_wav
    from lpcnet.config import ModelConfig, TrainConfig
    from lpcnet.data import prepare
    from lpcnet.features import dump_data
    from lpcnet.formats import read_features
    from lpcnet.train import train

    out_dir = _check_settings(out_dir, max_files, steps, gru_a, batch_size)
    outputs: dict[str, str] = {}
    t0 = time.perf_counter()

    sources = training_sources(max_files)
    print(f"[1/5] prepare: {len(sources)} training files -> 16 kHz mono s16")
    man = prepare(sources, out_dir / "input.s16", progress=progress)
    held = prepare([HELDOUT_WAV], out_dir / "heldout.s16", progress=False)
    print(f"      training audio {man.duration_s:.1f} s; held-out speaker {held.duration_s:.1f} s "
          f"(never trained on)")
    outputs["training_audio"] = man.output

    print("[2/5] dump-data: features.f32 + data.u8 (training mode), held-out features (test mode)")
    info = dump_data(out_dir / "input.s16", out_dir / "features.f32", out_dir / "data.u8",
                     mode="train", seed=seed, progress=progress)
    dump_data(out_dir / "heldout.s16", out_dir / "heldout_features.f32", mode="test", progress=False)
    print(f"      {info['frames']} training frames")
    outputs["features"] = str(out_dir / "features.f32")
    outputs["data"] = str(out_dir / "data.u8")
    heldout = np.asarray(read_s16(out_dir / "heldout.s16"))
    held_feats = np.asarray(read_features(out_dir / "heldout_features.f32"))
    outputs["features_plot"] = _save_figure(plots.pitch_track(heldout, held_feats),
                                            out_dir / "heldout_pitch.png")

    print(f"[3/5] train: tiny model (GRU A {gru_a}) for {steps} steps of batch {batch_size}")
    result = train(ModelConfig(gru_a=gru_a, gru_b=16),
                   TrainConfig(features=str(out_dir / "features.f32"), data=str(out_dir / "data.u8"),
                               output="demo", model_dir=str(out_dir / "model"), batch_size=batch_size,
                               epochs=1, steps_per_epoch=steps, seed=seed, progress=progress))
    print(f"      loss after {steps} steps: {result['loss']:.3f}")
    outputs["checkpoint"] = result["checkpoint"]

    print("[4/5] synthesise: copy-synthesis of the held-out speaker (native engine)")
    speech = synth.synthesize(held_feats, result["checkpoint"], engine="native", seed=seed)
    outputs["synthesis_wav"] = str(write_wav(out_dir / "heldout_lpcnet.wav", speech))
    outputs["reference_wav"] = str(write_wav(out_dir / "heldout_reference.wav", heldout))
    lag = synth.COPY_SYNTHESIS_LAG  # output sample t reproduces input sample t - lag
    rows = {"held-out reference (CMU ARCTIC a0007)": heldout[:len(speech) - lag]}
    if DEMO_BLOB.is_file():
        # The kit's demo model, trained for hours (docs/demo-model.md): what LPCNet sounds like
        # once trained, next to the tiny model that this run trained in a minute.
        demo_speech = synth.synthesize(held_feats, DEMO_BLOB, engine="native", seed=seed)
        outputs["demo_model_wav"] = str(write_wav(out_dir / "heldout_demo_model.wav", demo_speech))
        rows["LPCNet copy-synthesis, the kit's demo model (GRU A 256)"] = demo_speech[lag:]
    rows[f"LPCNet copy-synthesis, tiny model after {steps} steps"] = speech[lag:]
    outputs["synthesis_plot"] = _save_figure(synth.plot_spectrograms(rows),
                                             out_dir / "heldout_spectrograms.png")

    print(f"[5/5] done in {time.perf_counter() - t0:.1f} s. Outputs:")
    for name, path in outputs.items():
        print(f"      {name:16s} {path}")
    return outputs


def add_arguments(p) -> None:
    p.add_argument("--out-dir", default=os.path.join(os.environ.get("OUTPUT_DIR", "work/output"), "demo"),
                   help="where the demo writes its files")
    p.add_argument("--max-files", type=positive_int, default=None,
                   help="use only the first N training files (quick look)")
    p.add_argument("--steps", type=positive_int, default=60, help="training steps of the tiny model")
    p.add_argument("--grua-size", type=gru_units, default=32, help="GRU A units of the tiny model "
                   "(a multiple of 8)")
    p.add_argument("--batch-size", type=positive_int, default=8, help="training sequences per step")
    p.add_argument("--seed", type=seed_value, default=0, help="seed for augmentation, training, sampling")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args) -> int:
    run_demo(args.out_dir, args.max_files, steps=args.steps, gru_a=args.grua_size,
             batch_size=args.batch_size, progress=not args.no_progress, seed=args.seed)
    return 0


def main(argv=None) -> int:
    from lpcnet.cli import module_main

    return module_main(__name__, "python -m lpcnet.demo", argv)


if __name__ == "__main__":
    raise SystemExit(main())
