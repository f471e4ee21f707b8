"""Per-voice table of a finished demo model (lpcnet.train_eval.voice_table / format_voice_table,
``python -m lpcnet.train_eval voice-table``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lpcnet import train_eval as TE

ROOT = Path(__file__).resolve().parents[1]
CARRIED = ROOT / "models" / "training_demo_v2"
DEMO_BLOB = ROOT / "models" / "demo" / "lpcnet_demo_256.bin"
UNSEEN = {"arctic_a0007", "arctic_a0009", "psx_an4", "psx_cards"}


@pytest.fixture(scope="module")
def last_eval_rows():
    """The carried v2 run's quality rows of its last evaluation (14 utterances, 9 voices)."""
    rows = TE.load_rows(CARRIED)
    last = max(r["step"] for r in rows)
    return [r for r in rows if r["step"] == last]


def test_voice_table_on_the_carried_rows(last_eval_rows):
    rows = last_eval_rows
    refs = {r["utterance"]: 3.0 for r in rows}
    table = TE.voice_table(rows, refs, unseen_groups=UNSEEN)
    assert [e["set"] for e in table] == ["heldout"] * 5 + ["unseen"] * 4
    assert {e["voice"] for e in table if e["set"] == "unseen"} == UNSEEN
    assert sum(e["utterances"] for e in table) == len(rows)
    carlo = next(e for e in table if e["voice"] == "it_IT_m_Carlo")
    mine = [r for r in rows if r["group"] == "it_IT_m_Carlo"]
    assert carlo["utterances"] == 2
    np.testing.assert_allclose(carlo["stoi"], np.mean([r["stoi"] for r in mine]))
    # the per-voice means agree with summarize's
    for e in table:
        np.testing.assert_allclose(e["pesq_wb"], TE.summarize(rows)[e["voice"]]["pesq_wb"])
        assert e["dnsmos_ref"] == 3.0
        np.testing.assert_allclose(e["dnsmos_diff"], e["dnsmos_ovrl"] - 3.0)
        assert e["met"]["stoi"] == (e["stoi"] >= 0.90)
        assert e["met"]["pesq_wb"] == (e["pesq_wb"] >= 2.0)
        assert e["met"]["dnsmos_diff"] == (e["dnsmos_diff"] >= -0.3)
        assert e["all_met"] == all(e["met"].values())


def test_voice_table_set_field_missing_values_and_errors(last_eval_rows):
    rows = [dict(r, set="unseen" if r["group"].startswith("psx") else "heldout") for r in last_eval_rows]
    rows[0] = {k: v for k, v in rows[0].items() if k not in TE.VOICE_METRICS} | {"error": "silent"}
    for r in rows:
        if r["group"] == "psx_cards":
            r["gpe_pct"] = math.nan            # no frame voiced in both
    table = TE.voice_table(rows, unseen_groups=UNSEEN)     # no reference DNSMOS
    by = {e["voice"]: e for e in table}
    assert by["arctic_a0007"]["set"] == "heldout"      # the row's own set wins over unseen_groups
    assert by[rows[0]["group"]]["scored"] == by[rows[0]["group"]]["utterances"] - 1
    assert by["psx_cards"]["gpe_pct"] is None and not by["psx_cards"]["met"]["gpe_pct"]
    assert all(e["dnsmos_ref"] is None and not e["met"]["dnsmos_diff"] for e in table)
    with pytest.raises(Exception, match="2 evaluations"):
        TE.voice_table(TE.load_rows(CARRIED)[:len(last_eval_rows) + 1])
    with pytest.raises(Exception, match="no scored rows"):
        TE.voice_table([])


def test_format_voice_table_marks_targets():
    def entry(set_, voice, gpe, stoi, pesq, ovrl, ref):
        rows = [{"step": 0, "set": set_, "group": voice, "utterance": f"{voice}__1", "gpe_pct": gpe,
                 "stoi": stoi, "pesq_wb": pesq, "dnsmos_ovrl": ovrl, "f0_rmse_cents": 40.0,
                 "feature_gpe_pct": gpe / 2}]
        return rows, {f"{voice}__1": ref}

    r1, f1 = entry("heldout", "en_US_f_Allison", 2.0, 0.95, 2.5, 3.1, 3.3)
    r2, f2 = entry("unseen", "psx_an4", 12.5, 0.88, 1.4, 2.0, 3.0)
    table = TE.voice_table(r1 + r2, f1 | f2)
    assert table[0]["all_met"] and not table[1]["all_met"]
    text = TE.format_voice_table(table)
    lines = text.splitlines()
    assert lines[0].startswith("**Training voices, held-out prompts** (1 of 1 voices")
    assert "**Unseen voices** (0 of 1 voices" in text
    allison = next(ln for ln in lines if ln.startswith("| en_US_f_Allison"))
    assert "| 2.0 ✓ | 1.0 | 0.950 ✓ | 2.50 ✓ | 3.10 | 3.30 | -0.20 ✓ | 40 | all met |" in allison
    psx = next(ln for ln in lines if ln.startswith("| psx_an4"))
    assert "| 12.5 ✗ | 6.2 | 0.880 ✗ | 1.40 ✗ | 2.00 | 3.00 | -1.00 ✗ |" in psx
    assert psx.endswith("not met: gpe_pct, stoi, pesq_wb, dnsmos_diff |")
    # every table row has as many cells as its header
    for ln in lines:
        if ln.startswith("|"):
            assert ln.count("|") == 12


@pytest.mark.skipif(not DEMO_BLOB.is_file(), reason="demo model not carried")
def test_voice_table_cli_scores_a_real_blob(slice_dir, tmp_path, capsys):
    """The carried demo blob, int8, on the slice's two ARCTIC utterances (one as 'held out',
    one as 'unseen'); no DNSMOS (speed)."""
    held, unseen = tmp_path / "held", tmp_path / "unseen"
    held.mkdir(), unseen.mkdir()
    (held / "arctic_a0009.wav").symlink_to(slice_dir / "arctic_a0009.wav")
    (unseen / "arctic_a0007.wav").symlink_to(slice_dir / "arctic_a0007.wav")
    out = tmp_path / "vt.json"
    assert TE.main(["voice-table", str(DEMO_BLOB), "--int8", "--no-dnsmos", "--heldout", str(held),
                    "--unseen", str(unseen), "--json", str(out), "--markdown", str(tmp_path / "vt.md"),
                    "--audio-dir", str(tmp_path / "audio")]) == 0
    printed = capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert [(e["set"], e["voice"]) for e in doc["voices"]] == [("heldout", "arctic_a0009"),
                                                               ("unseen", "arctic_a0007")]
    assert doc["int8"] and doc["reference_dnsmos"] is None
    assert (tmp_path / "vt.md").read_text() == printed
    assert (tmp_path / "audio" / "unseen" / "arctic_a0007.wav").is_file()
    # Real speech out (docs/demo-model.md: int8, seed 0, a0009 STOI 0.79 GPE 0 %, a0007 STOI 0.88
    # GPE 6 %), and each mark is the target applied to the value shown.
    a9, a7 = doc["voices"]
    assert a9["stoi"] > 0.7 and a7["stoi"] > 0.7 and a9["gpe_pct"] <= 5
    for v in (a9, a7):
        assert v["met"]["gpe_pct"] == (v["gpe_pct"] <= 5) and v["met"]["stoi"] == (v["stoi"] >= 0.90)
    assert TE.main(["voice-table", str(DEMO_BLOB), "--heldout", str(tmp_path / "nothing"),
                    "--json", str(out)]) == 1
    assert "nothing: no such file or folder" in capsys.readouterr().err
    assert TE.main(["voice-table", str(DEMO_BLOB), "--heldout", str(held), "--unseen", str(held),
                    "--json", str(out)]) == 1
    assert "must be unique, repeated: ['arctic_a0009']" in capsys.readouterr().err


@pytest.mark.skipif(not DEMO_BLOB.is_file(), reason="demo model not carried")
def test_voice_table_and_compare_sampling_never_overwrite_an_input_or_another_output(slice_dir, tmp_path,
                                                                                      capsys):
    """--json/--markdown/--audio-dir onto the blob, an input wav, each other: refused in one line
    before any scoring; every file unchanged."""
    blob = tmp_path / "blob.bin"
    blob.write_bytes(DEMO_BLOB.read_bytes())
    ev = tmp_path / "ev"
    ev.mkdir()
    wav = ev / "short.wav"
    wav.write_bytes((slice_dir / "arctic_a0007.wav").read_bytes())
    held = tmp_path / "w" / "heldout"
    held.mkdir(parents=True)
    (held / "a__x.wav").write_bytes((slice_dir / "arctic_a0009.wav").read_bytes())
    vt = tmp_path / "vt.json"
    vt.write_text('{"kept": true}\n')
    before = {p: p.read_bytes() for p in (blob, wav, held / "a__x.wav", vt)}
    for argv, words in (
            (["voice-table", blob, "--heldout", ev, "--json", blob], "same file as the input blob"),
            (["voice-table", blob, "--heldout", ev, "--json", wav], "same file as the input audio"),
            (["voice-table", blob, "--heldout", held, "--audio-dir", tmp_path / "w", "--json",
              tmp_path / "o.json"], "--audio-dir"),
            (["voice-table", blob, "--heldout", ev, "--json", vt, "--markdown", vt], "same file as the output"),
            (["compare-sampling", blob, "--files", ev, "--json", blob], "same file as the input blob"),
            (["compare-sampling", blob, "--files", ev, "--json", wav], "same file as the input")):
        assert TE.main([str(a) for a in argv] + ["--no-dnsmos"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
        assert {p: p.read_bytes() for p in before} == before
        assert not (tmp_path / "o.json").exists()
