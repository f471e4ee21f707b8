"""``lpcnet info``: validate kit files (.s16, .f32, .u8) and print a one-line summary each."""

from __future__ import annotations

import json

from lpcnet.formats import describe, read_training_pair


def add_arguments(p) -> None:
    p.add_argument("files", nargs="+", help=".s16, .f32 or .u8 files")
    p.add_argument("--pair", action="store_true",
                   help="treat the files as FEATURES.f32 DATA.u8 and check their frame counts agree")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args) -> int:
    if args.pair:
        from lpcnet.errors import LpcnetError

        if len(args.files) != 2:
            raise LpcnetError("--pair expects exactly two files: FEATURES.f32 DATA.u8")
        feats, _ = read_training_pair(*args.files)
        print(f"ok: {args.files[0]} and {args.files[1]} agree on {len(feats)} frames")
        return 0
    for path in args.files:
        d = describe(path)
        if args.json:
            print(json.dumps(d))
        else:
            print(f"{d['file']}: {d['kind']}, " + ", ".join(
                f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                for k, v in d.items() if k not in ("file", "kind")))
    return 0


def main(argv=None) -> int:
    from lpcnet.cli import module_main

    return module_main(__name__, "python -m lpcnet.info", argv)


if __name__ == "__main__":
    raise SystemExit(main())
