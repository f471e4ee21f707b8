"""The demo model carried in models/demo (docs/demo-model.md): consistent files, real quality."""

import numpy as np
import pytest

from lpcnet.demo import DEMO_BLOB, DEMO_CHECKPOINT, DEMO_MODEL_DIR, HELDOUT_WAV, SLICE_TRAIN_WAV

pytestmark = pytest.mark.skipif(not DEMO_BLOB.is_file(), reason="no demo model in models/demo")


def test_demo_model_files_are_small_and_the_blob_is_the_export_of_the_checkpoint():
    from lpcnet.export import blob_from_weights, blob_to_bytes
    from lpcnet.model import config_from_weights, read_checkpoint_weights

    total = sum(p.stat().st_size for p in DEMO_MODEL_DIR.iterdir())
    assert total <= 10 * 2 ** 20, total
    weights = read_checkpoint_weights(DEMO_CHECKPOINT)
    cfg = config_from_weights(weights)
    assert (cfg.gru_a, cfg.gru_b) == (256, 16)
    assert blob_to_bytes(blob_from_weights(weights, cfg, int8=True)) == DEMO_BLOB.read_bytes()


# Floors a little under the scores of docs/demo-model.md (demo model v2, step 33 500; float /
# int8, seed 0: a0007 (male) STOI 0.90 / 0.90, PESQ-WB 1.43 / 1.59, gross pitch error 15 % / 6 %;
# a0009 (female) STOI 0.93 / 0.87, PESQ-WB 1.48 / 1.66, GPE 0.6 % / 1.3 %). Neither voice was
# trained on.
FLOORS = {"arctic_a0007.wav": dict(stoi=0.85, pesq_wb=1.30, gpe_pct=25.0),
          "arctic_a0009.wav": dict(stoi=0.80, pesq_wb=1.35, gpe_pct=5.0)}


@pytest.mark.parametrize("wav", [HELDOUT_WAV, SLICE_TRAIN_WAV], ids=["male_a0007", "female_a0009"])
def test_demo_model_copy_synthesis_is_the_same_speech(wav):
    """Neither ARCTIC speaker was trained on: the speech must stay intelligible."""
    from lpcnet.audio import load_speech
    from lpcnet.quality import score_pair
    from lpcnet.synth import copy_synthesis

    ref, _ = load_speech(wav)
    floor = FLOORS[wav.name]
    for int8 in (False, True):
        syn = copy_synthesis(wav, DEMO_BLOB, seed=0, int8=int8)
        assert len(syn) == len(ref) // 160 * 160 and np.isfinite(syn).all()
        s = score_pair(ref, syn, use_dnsmos=False)
        assert s["stoi"] >= floor["stoi"] and s["pesq_wb"] >= floor["pesq_wb"], (int8, s)
        if floor["gpe_pct"] is not None:
            assert s["gpe_pct"] <= floor["gpe_pct"], (int8, s)
