"""The multi-speaker training corpus built from packaged speech (demo model v2).

Debian ships professional voice prompts for the Asterisk PBX as G.722 (true 16 kHz
wideband). Five prompt sets give four distinct voices (Allison Smith recorded both the
English and the Mexican Spanish set). ``VOICES`` names each set, its speaker and licence;
``split`` divides every set into training prompts and a few held-out prompts per voice,
so that the model is scored on speech of its training voices that it never heard, next to
the bundled CMU ARCTIC utterances of two speakers it never heard at all.

Command line (used by ``run_scripts/prepare_multispeaker.sh``)::

    python -m lpcnet.corpus OUT_DIR [--sounds /usr/share/asterisk/sounds]

writes ``OUT_DIR/train.list`` and ``OUT_DIR/heldout.list`` (one audio path per line, the
format of ``lpcnet prepare --list``) and ``OUT_DIR/heldout_voices.json`` (path -> voice).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from lpcnet.data import DEFAULT_EXCLUDES, collect_inputs
from lpcnet.errors import LpcnetError
from lpcnet.formats import atomic_output

#: G.722 at 64 kbit/s: 8000 bytes per second of 16 kHz audio (duration from the size).
G722_BYTES_PER_SECOND = 8000
#: Held-out prompts per voice, and the duration range they are drawn from (seconds).
HELDOUT_PER_VOICE = 8
HELDOUT_MIN_S, HELDOUT_MAX_S = 2.0, 7.0
#: The held-out prompts of the English set are demo model v1's, so v1 and v2 compare.
V1_HELDOUT = Path(__file__).resolve().parent.parent / "data" / "heldout_v1_en.txt"


@dataclass(frozen=True)
class Voice:
    """One Asterisk prompt set: Debian package, folder under the sounds root, speaker."""

    package: str
    folder: str
    speaker: str
    sex: str          # "f" or "m"
    language: str
    licence: str


VOICES = (
    Voice("asterisk-core-sounds-en-g722", "en_US_f_Allison", "Allison Smith", "f", "en-US", "CC-BY-SA-3.0"),
    Voice("asterisk-core-sounds-es-g722", "es_MX_f_Allison", "Allison Smith", "f", "es-MX", "CC-BY-SA-3.0"),
    Voice("asterisk-core-sounds-fr-g722", "fr_CA_f_June", "June Wallack", "f", "fr-CA", "CC-BY-SA-3.0"),
    Voice("asterisk-core-sounds-it-g722", "it_IT_m_Carlo", "Carlo Flora", "m", "it-IT", "CC-BY-SA-3.0"),
    Voice("asterisk-core-sounds-ru-g722", "ru_RU_f_IvrvoiceRU", "Maxim Topal (ivrvoice.ru)", "f", "ru-RU",
          "CC-BY-3.0"),
)
PACKAGES = tuple(v.package for v in VOICES)


#: Voices never trained on (evaluation only): Debian ``pocketsphinx-testdata`` (CMU, BSD; male
#: speakers, 16 kHz; ``.raw`` = headerless int16) -> ``group__name`` of the written wav.
POCKETSPHINX_DIR = Path("/usr/share/pocketsphinx/test/data")
POCKETSPHINX_FILES = {"cards/001.wav": "psx_cards__001", "cards/002.wav": "psx_cards__002",
                      "cards/003.wav": "psx_cards__003", "cards/004.wav": "psx_cards__004",
                      "cards/005.wav": "psx_cards__005", "goforward.raw": "psx_an4__goforward",
                      "numbers.raw": "psx_an4__numbers", "something.raw": "psx_an4__something"}


def unseen_sources(slice_dir, pocketsphinx_dir=POCKETSPHINX_DIR):
    """``(name, (samples,) float32 at 16 kHz)`` of every unseen-voice utterance that is installed.

    The bundled CMU ARCTIC pair (``arctic_a0007`` male, ``arctic_a0009`` female) and, when
    Debian's ``pocketsphinx-testdata`` is installed, its male 16 kHz recordings.
    """
    import numpy as np

    from lpcnet.audio import load_speech

    for wav in sorted(Path(slice_dir).glob("arctic_*.wav")):
        yield wav.stem, load_speech(wav)[0]
    for rel, name in POCKETSPHINX_FILES.items():
        path = Path(pocketsphinx_dir) / rel
        if not path.is_file():
            continue
        if path.suffix == ".raw":
            yield name, np.fromfile(path, "<i2").astype(np.float32) / 32768.0
        else:
            yield name, load_speech(path)[0]


def _score(rel: str) -> str:
    """A stable pseudo-random order of prompts (independent of the file system)."""
    return hashlib.sha1(rel.encode()).hexdigest()


def split(sounds_root, voices=VOICES, per_voice: int = HELDOUT_PER_VOICE) -> tuple[list, list]:
    """Training and held-out prompts of every voice.

    Returns:
        ``(train, heldout)``: lists of ``(path, voice)``. Held out per voice: ``per_voice``
        speech prompts of 2-7 s chosen by a hash of their path (the English set keeps demo
        model v1's list), never in ``train``.
    """
    root = Path(sounds_root)
    v1 = set(V1_HELDOUT.read_text().split()) if V1_HELDOUT.is_file() else set()
    train, heldout = [], []
    for voice in voices:
        folder = root / voice.folder
        if not folder.is_dir():
            raise LpcnetError(f"{folder}: voice folder missing (install the Debian package {voice.package})")
        files = collect_inputs([folder], DEFAULT_EXCLUDES)
        rel = {f: f.relative_to(folder).as_posix() for f in files}
        if voice.folder == "en_US_f_Allison" and v1:
            held = {f for f in files if rel[f] in v1}
        else:
            fit = [f for f in files if f.suffix == ".g722"
                   and HELDOUT_MIN_S <= f.stat().st_size / G722_BYTES_PER_SECOND <= HELDOUT_MAX_S]
            held = set(sorted(fit, key=lambda f: _score(rel[f]))[:per_voice])
        heldout += [(f, voice) for f in files if f in held]
        train += [(f, voice) for f in files if f not in held]
    return train, heldout


def write_lists(out_dir, sounds_root) -> dict:
    """Write ``train.list``, ``heldout.list`` and ``heldout_voices.json`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train, heldout = split(sounds_root)
    for name, rows in (("train.list", train), ("heldout.list", heldout)):
        with atomic_output(out / name, "w") as f:
            f.writelines(f"{p}\n" for p, _ in rows)
    voices = {str(p): v.folder for p, v in heldout}
    with atomic_output(out / "heldout_voices.json", "w") as f:
        json.dump(voices, f, indent=1)
    return {"train": len(train), "heldout": len(heldout)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lpcnet.corpus", description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", help="folder for train.list, heldout.list, heldout_voices.json")
    ap.add_argument("--sounds", default="/usr/share/asterisk/sounds", help="Asterisk sounds root")
    args = ap.parse_args(argv)
    n = write_lists(args.out_dir, args.sounds)
    print(f"{args.out_dir}: {n['train']} training prompts, {n['heldout']} held out "
          f"({len(VOICES)} prompt sets)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
