"""Figures of the end-to-end sections of notebooks 02 and 03 (lpcnet.plots): LPC envelopes of the
features' LPCs and of rc2lpc, and the standard vs end-to-end training curves of real tiny runs."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lpcnet import end2end as E  # noqa: E402
from lpcnet import plots  # noqa: E402
from lpcnet.config import ModelConfig, TrainConfig  # noqa: E402
from lpcnet.errors import LpcnetError  # noqa: E402
from lpcnet.formats import LPC, SAMPLE_RATE  # noqa: E402


@pytest.fixture(scope="module")
def train_features(train_wav) -> np.ndarray:
    from lpcnet.audio import load_speech
    from lpcnet.features import extract
    from lpcnet.formats import float_to_int16

    return extract(float_to_int16(load_speech(train_wav)[0]))


def test_lpc_envelopes_of_features_and_of_rc2lpc(train_features):
    # A loud frame: the features' LPCs, and the same LPCs rebuilt by the rc2lpc layer from
    # their reflection coefficients (the end-to-end model's path), give the same envelope.
    frame = int(np.argmax(train_features[:, 0]))
    a = train_features[frame, LPC].astype(np.float64)
    k = E.lpc2rc_numpy(a)
    assert np.abs(k).max() < 1
    rebuilt = np.asarray(E.RC2LPC()(k[None].astype("float32")))[0]
    fig = plots.lpc_envelopes({"features": a, "rc2lpc": rebuilt})
    ax = fig.axes[0]
    (f0, env), (f1, env_rc) = (line.get_data() for line in ax.get_lines())
    assert f0[0] == 0 and f0[-1] == SAMPLE_RATE / 2 and len(f0) == 161
    expected = -10 * np.log10(np.abs(np.fft.rfft(np.concatenate([[1.0], a]), 320)) ** 2)
    np.testing.assert_allclose(env, expected, atol=1e-9)
    np.testing.assert_allclose(env_rc, env, atol=0.05)          # float32 layer, dB
    assert env.max() - env.min() > 20                           # a speech envelope, not flat
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["features", "rc2lpc"]
    with pytest.raises(LpcnetError, match="'bad'.*expected finite"):
        plots.lpc_envelopes({"bad": np.full(16, np.nan)})
    with pytest.raises(LpcnetError, match="no LPCs"):
        plots.lpc_envelopes({})


@pytest.fixture(scope="module")
def variant_histories(slice_training_pair, train_s16, tmp_path_factory):
    """Histories of a tiny standard and a tiny end-to-end run (2 epochs x 2 steps, same speech, seed)."""
    from lpcnet.features import dump_data
    from lpcnet.train import train

    out = tmp_path_factory.mktemp("variants")
    e2e = out / "features.f32", out / "data.u8"
    dump_data(train_s16, *e2e, mode="train", seed=0, progress=False, end2end=True)
    tiny = ModelConfig(gru_a=16, gru_b=8)
    hist = {}
    for name, mcfg, (feats, data) in (("standard", tiny, slice_training_pair),
                                      ("end2end", tiny.replace(end2end=True), e2e)):
        tcfg = TrainConfig(features=str(feats), data=str(data), output="m", model_dir=str(out / name),
                           batch_size=4, epochs=2, steps_per_epoch=2, lr=3e-3, seed=0, progress=False)
        hist[name] = train(mcfg, tcfg)["history"]
    return hist


def test_variant_losses_plots_own_losses_and_the_comparable_pair(variant_histories):
    std, e2e = variant_histories["standard"], variant_histories["end2end"]
    fig = plots.variant_losses(std, e2e)
    own, same = fig.axes
    assert [line.get_ydata().tolist() for line in own.get_lines()] == [std["loss"], e2e["loss"]]
    assert [line.get_ydata().tolist() for line in same.get_lines()] == [std["loss"], e2e["cross_entropy"]]
    assert own.get_lines()[0].get_xdata().tolist() == [1, 2]
    # The end-to-end loss adds gamma * |e - 128| / 128 * ln 256 >= 0 to its cross-entropy.
    assert all(loss > ce for loss, ce in zip(e2e["loss"], e2e["interp_cross_entropy"]))
    with pytest.raises(LpcnetError, match="first history is not a standard"):
        plots.variant_losses(e2e, std)
    with pytest.raises(LpcnetError, match="second history is not an end-to-end"):
        plots.variant_losses(std, std)
