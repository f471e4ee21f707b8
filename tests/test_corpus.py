"""The multi-speaker corpus split (lpcnet.corpus): held-out prompts never trained on."""

from __future__ import annotations

from pathlib import Path

import pytest

from lpcnet import corpus

EN = Path("/usr/share/asterisk/sounds/en_US_f_Allison")


@pytest.mark.skipif(not EN.is_dir(), reason="asterisk-core-sounds-en-g722 not installed")
def test_english_set_holds_out_demo_v1_prompts():
    train, held = corpus.split(EN.parent, voices=(corpus.VOICES[0],))
    v1 = set(corpus.V1_HELDOUT.read_text().split())
    assert {p.relative_to(EN).as_posix() for p, _ in held} == v1
    assert not {p for p, _ in train} & {p for p, _ in held}
    assert len(train) > 500 and not any("silence/" in str(p) for p, _ in train)


def test_hash_split_per_voice_is_stable_and_disjoint(tmp_path):
    voice = corpus.Voice("pkg", "xx_XX_m_Test", "Test", "m", "xx", "CC0")
    folder = tmp_path / voice.folder
    folder.mkdir()
    for i in range(30):      # sizes 1..30 s of G.722: 2..7 s are eligible for holding out
        (folder / f"p{i:02d}.g722").write_bytes(b"\0" * (corpus.G722_BYTES_PER_SECOND * (i + 1)))
    train, held = corpus.split(tmp_path, voices=(voice,), per_voice=4)
    assert len(held) == 4 and len(train) == 26
    assert all(2 <= p.stat().st_size / corpus.G722_BYTES_PER_SECOND <= 7 for p, _ in held)
    assert corpus.split(tmp_path, voices=(voice,), per_voice=4)[1] == held


def test_missing_voice_folder_names_the_package(tmp_path):
    with pytest.raises(Exception, match="asterisk-core-sounds-fr-g722"):
        corpus.split(tmp_path, voices=(corpus.VOICES[2],))
