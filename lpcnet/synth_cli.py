"""``lpcnet synth``: the command line of :mod:`lpcnet.synth` (one file, or many files as streams).

Kept apart from the engines so that :mod:`lpcnet.synth_batch` (many files, K streams per core)
can build on :mod:`lpcnet.synth` without an import cycle. ``python -m lpcnet.synth_cli`` is
``lpcnet synth``.
"""

from __future__ import annotations

import os
from pathlib import Path

from lpcnet.argtypes import positive_int
from lpcnet.errors import LpcnetError
from lpcnet.formats import SAMPLE_RATE
from lpcnet.synth import NativeModel, check_output_suffix, copy_synthesis, synthesize, write_output

# --- command line ------------------------------------------------------------------------
def add_arguments(p) -> None:
    p.add_argument("--checkpoint", required=True,
                   help="kit checkpoint (.keras), seed-style weights (.h5) or an exported blob (.bin)")
    p.add_argument("--features", nargs="+", action="extend", default=[], metavar="F",
                   help="feature files from `lpcnet dump-data -test` (.f32), or folders of them")
    p.add_argument("--audio", nargs="+", action="extend", default=[], metavar="A",
                   help="speech files for copy-synthesis (features extracted first), or folders")
    p.add_argument("--list", dest="lists", action="append", default=[], metavar="LIST",
                   help="text file naming one input per line (.f32: features, else speech; "
                        "relative paths: relative to the list's folder)")
    p.add_argument("--output", default=None,
                   help="one input: the output file, .wav or raw .s16 (.sw/.pcm/.raw); inside "
                        "--output_dir if given")
    p.add_argument("--output_dir", "--output-dir", dest="output_dir", default=None,
                   help="folder of the outputs (created if missing): for one input, where --output "
                        "goes (seed-compatible); for several, each input's name + --format")
    p.add_argument("--format", choices=("wav", "s16"), default="wav",
                   help="output format of several inputs")
    p.add_argument("--engine", choices=("native", "keras"), default="native", help="synthesis engine")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the sampling random stream (the same for every input)")
    p.add_argument("--int8", action="store_true", help="native: int8 GRU matrices (VNNI when available)")
    p.add_argument("--sharpen", action="store_true",
                   help="pitch-correlation sharpening of the bit probabilities")
    p.add_argument("--argmax", action="store_true", help="deterministic sampling (each bit: p > 0.5)")
    p.add_argument("--lpc-from-cepstrum", action="store_true",
                   help="native: LPC computed from the cepstrum (as the seed's C decoder) instead of "
                        "features 20..35")
    p.add_argument("--streams", type=positive_int, default=None, metavar="K",
                   help="several inputs: files synthesised at once on each core (None: 8 with "
                        "--int8 on AVX-512 VNNI CPUs, else 1)")
    p.add_argument("--jobs", type=positive_int, default=None, metavar="J",
                   help="several inputs: worker threads, one per core (None: one per CPU)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar over files")


def _native_options(args) -> dict:
    return dict(int8=args.int8, sharpen=args.sharpen, argmax=args.argmax,
                lpc_from_cepstrum=args.lpc_from_cepstrum)


def _run_one(args, source: Path, out: Path) -> int:
    """One input: native synthesis in blocks (memory flat in the input's length), or Keras."""
    import time

    from lpcnet.synth_batch import synthesize_file

    w0, c0 = time.perf_counter(), time.process_time()
    if args.engine == "native":
        model = NativeModel.from_checkpoint(args.checkpoint, int8=args.int8)
        w1, c1 = time.perf_counter(), time.process_time()
        n = synthesize_file(source, out, model, seed=args.seed, **_native_options(args))
    else:
        w1, c1 = w0, c0
        opts = dict(engine="keras", seed=args.seed, sharpen=args.sharpen, argmax=args.argmax,
                    int8=args.int8, lpc_from_cepstrum=args.lpc_from_cepstrum)
        samples = (copy_synthesis(source, args.checkpoint, **opts) if source.suffix.lower() != ".f32"
                   else synthesize(source, args.checkpoint, **opts))
        write_output(out, samples)
        n = len(samples)
    w2, c2 = time.perf_counter(), time.process_time()
    secs = n / SAMPLE_RATE
    print(f"wrote {out}: {n} samples ({secs:.2f} s) with the {args.engine} engine in "
          f"{w2 - w0:.2f} s (model {w1 - w0:.2f} s; synthesis {w2 - w1:.2f} s wall, {c2 - c1:.2f} s CPU)")
    return 0


def _run_batch(args, inputs: list) -> int:
    """Several inputs: native multi-stream synthesis on all cores, or Keras one by one."""
    from lpcnet.formats import check_outputs
    from lpcnet.synth_batch import batch_outputs, synthesize_files

    if args.output is not None:
        raise LpcnetError(f"--output names one file, but {len(inputs)} inputs were given: name the "
                          f"output folder with --output_dir (files: input name + .{args.format})")
    if args.output_dir is None:
        raise LpcnetError(f"{len(inputs)} inputs need an output folder: give --output_dir")
    outputs = batch_outputs(inputs, args.output_dir, "." + args.format)
    check_outputs({f"--checkpoint {args.checkpoint}": args.checkpoint,
                   **{f"input {p}": p for p in inputs}},
                  {f"output {o}": o for o in outputs})       # before any work
    if args.engine == "keras":
        for src, out in zip(inputs, outputs):
            _run_one(args, src, out)
        return 0
    model = NativeModel.from_checkpoint(args.checkpoint, int8=args.int8)
    r = synthesize_files(list(zip(inputs, outputs)), model, streams=args.streams, workers=args.jobs,
                         seed=args.seed, progress=not args.no_progress, **_native_options(args))
    print(f"wrote {r['files']} files ({r['audio_seconds']:.1f} s of audio) to {args.output_dir} in "
          f"{r['wall_seconds']:.1f} s with {r['workers']} jobs x {r['streams']} streams: "
          f"{r['audio_seconds'] / max(r['wall_seconds'], 1e-9):.1f} x real time, "
          f"{r['audio_seconds'] / max(r['cpu_seconds'], 1e-9):.1f} s of audio per CPU-second")
    return 0


def run(args) -> int:
    from lpcnet.formats import check_outputs

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")      # the Keras engine: no TF banner lines
    from lpcnet.synth_batch import collect_inputs

    if not (args.features or args.audio or args.lists):
        raise LpcnetError("no input: give --features, --audio or --list")
    inputs, batch = collect_inputs(args.features, args.audio, args.lists)
    if batch:
        return _run_batch(args, inputs)
    if args.output is None:
        raise LpcnetError("--output: the output file is required for one input")
    out = Path(args.output_dir) / args.output if args.output_dir else Path(args.output)
    flag = "--features" if args.features else "--audio"
    check_outputs({f"--checkpoint {args.checkpoint}": args.checkpoint, f"{flag} {inputs[0]}": inputs[0]},
                  {f"--output {out}": out})          # before any work (docs/promises.md)
    check_output_suffix(out)
    return _run_one(args, inputs[0], out)


def main(argv=None) -> int:
    from lpcnet.cli import module_main

    return module_main("lpcnet.synth_cli", "python -m lpcnet.synth_cli", argv)


if __name__ == "__main__":
    raise SystemExit(main())
