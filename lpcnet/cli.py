"""The ``lpcnet`` command: one entry point, one sub-command per pipeline stage.

Each sub-command lives in its stage module, which provides ``add_arguments(parser)``
and ``run(args) -> int``; modules are imported only when their command runs, so
``lpcnet prepare`` never loads TensorFlow. User mistakes (:class:`LpcnetError`)
print one line on stderr and exit 1, without a traceback; warnings about suspicious input
(:class:`LpcnetWarning`) print one line each and the command goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
import warnings

from lpcnet.errors import LpcnetError, LpcnetWarning

#: sub-command -> (module, one-line help)
COMMANDS = {
    "prepare": ("lpcnet.data", "audio files or folders -> one 16 kHz mono input.s16 + manifest"),
    "info": ("lpcnet.info", "validate and summarise .s16 / .f32 / .u8 files"),
    "demo": ("lpcnet.demo", "run the whole chain on the bundled speech and print the outputs"),
    "bench": ("lpcnet.bench.cli", "benchmarks (features, train, train-e2e, scaling, quality, synth, synth-memory, eval-memory): speed ratios measured side by side"),
    "dump-data": ("lpcnet.features", "speech -> features.f32 (-test) or features.f32 + data.u8 (-train), native C"),
    "train": ("lpcnet.train", "train LPCNet on features.f32 + data.u8 (checkpoints, sparsity, AMP)"),
    "launch": ("lpcnet.launcher", "run `lpcnet train` on N Horovod processes, fixed or elastic "
               "(a failed rank's own error first)"),
    "synth": ("lpcnet.synth_cli", "features (.f32) or speech (copy-synthesis) -> speech, native C or Keras engine"),
    "export": ("lpcnet.export", "checkpoint -> versioned weight blob for the native synthesis engine"),
    "eval": ("lpcnet.quality", "objective quality of synthesis vs reference: PESQ-WB, STOI, LSD, pitch, DNSMOS"),
}


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse that reports usage mistakes on one line (with a --help hint), exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: X)`` to a flag's help, except where the help already states its default,
    the default is None or empty, or the flag is an on/off switch (its default is the switch not given)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (action.default is None or action.default in ((), []) or "default" in text.lower()
                or isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction,
                                       argparse._StoreConstAction))):
            return text
        return super()._get_help_string(action)


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """Top-level parser; only the ``selected`` command's module is imported for its flags."""
    parser = OneLineErrorParser(
        prog="lpcnet", description="LPCNet research kit: data preparation, features, "
        "training, synthesis and evaluation. `lpcnet COMMAND --help` for each command.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text,
                           formatter_class=DefaultsHelpFormatter)
        p.set_defaults(_module=module)
        if name == selected:
            importlib.import_module(module).add_arguments(p)
    return parser


def _warning_printer(prog: str):
    """``warnings.showwarning`` that prints LpcnetWarning as ``<prog>: warning: <message>``."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, LpcnetWarning):
            print(f"{prog}: warning: {message}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)
    return show


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same clean-up runs (temporary files removed,
    finished outputs and checkpoints kept; docs/promises.md)."""


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM -> :class:`Terminated` while a command runs in this process's main thread.

    Not in a rank started by horovodrun (``HOROVOD_RANK`` set): there the process manager owns
    termination, and a rank blocked in a collective must not outlive its SIGTERM."""
    if "HOROVOD_RANK" in os.environ or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def one_line_warnings(prog: str):
    """Within: every LpcnetWarning is shown (not only once) as ``<prog>: warning: <message>``."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", LpcnetWarning)
        warnings.showwarning = _warning_printer(prog)
        yield


def run_command(module_name: str, args: argparse.Namespace, prog: str) -> int:
    """Run ``module.run(args)``, turning user errors into one stderr line and exit 1;
    Ctrl-C exits 130 and SIGTERM 143, each after the command's own clean-up."""
    try:
        with one_line_warnings(prog), _sigterm_as_interrupt():
            return int(importlib.import_module(module_name).run(args) or 0)
    except LpcnetError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except Terminated:
        print(f"{prog}: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def module_main(module_name: str, prog: str, argv=None) -> int:
    """``python -m lpcnet.<stage>`` entry: same flags and errors as ``lpcnet <command>``."""
    parser = OneLineErrorParser(prog=prog, formatter_class=DefaultsHelpFormatter)
    importlib.import_module(module_name).add_arguments(parser)
    return run_command(module_name, parser.parse_args(argv), prog)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    selected = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(selected if selected in COMMANDS else None)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    return run_command(args._module, args, f"lpcnet {args.command}")


if __name__ == "__main__":
    sys.exit(main())
